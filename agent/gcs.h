/*
 * gcs.h - a Cloud Storage JSON API client: streaming resumable uploads,
 * listing, stat, verified downloads, conditional deletes and permission
 * checks.
 *
 * One struct gcs is used by one thread at a time: it keeps one curl handle
 * so requests reuse the connection.  Every function that can fail returns
 * GCS_OK or a negative GCS_E* code and writes a one-line message, with the
 * "gcs: " prefix, into err.
 */
#ifndef GCS_H
#define GCS_H

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define GCS_ENDPOINT		"https://storage.googleapis.com"
#define GCS_CHUNK_GRAIN		(256 * 1024)	/* chunks are multiples */

enum gcs_result {
	GCS_OK = 0,
	GCS_ERR = -1,		/* failed; err says why */
	GCS_EPRECOND = -2,	/* 412: the object exists or was replaced */
	GCS_ENOTFOUND = -3,	/* 404: no such object (or bucket) */
	GCS_ERESTART = -4,	/* upload session lost: rerun the upload */
};

/*
 * Gives a bearer token (owned by the provider, valid until the next call)
 * or *token = NULL to send no Authorization header (emulator).  Returns 0,
 * or -1 with err filled.
 */
typedef int	(*gcs_token_fn)(void *arg, const char **token, char *err,
		    size_t errlen);

struct gcs {
	char		*endpoint;	/* owned; no trailing '/' */
	gcs_token_fn	 token_fn;
	void		*token_arg;
	void		*curl;		/* CURL *, owned, reused */
	/* Retries of 408, 429, 5xx, transport errors and stalls. */
	int		 max_attempts;	/* consecutive failures */
	long		 retry_total_ms;	/* per operation */
	long		 backoff_base_ms, backoff_cap_ms;
	/* A transfer slower than this many bytes/s for this long stalled. */
	long		 low_speed_limit, low_speed_time;
	long		 connect_timeout_ms;
	int		 page_size;	/* list maxResults; 0: server's */
	time_t		 last_date;	/* Date of the last answer; clock skew */
};

/* One object's resource.  Owned by whoever the function says. */
struct gcs_object {
	char		*bucket, *name, *content_type, *time_created;
	int64_t		 size, generation;
	char		 crc32c[16];	/* base64, "" if absent */
	char		 md5[32];	/* base64, "" if absent */
	json_object	*metadata;	/* custom metadata or NULL; owned */
};

/*
 * endpoint: base URL; NULL means GCS_ENDPOINT.  The token provider and arg
 * are borrowed and must outlive the gcs.  Returns a gcs owned by the caller
 * (free with gcs_free), or NULL when memory or curl fails.
 */
struct gcs	*gcs_new(const char *endpoint, gcs_token_fn, void *arg);
void		 gcs_free(struct gcs *);

/*
 * The endpoint: STORAGE_EMULATOR_HOST normalised when set, else
 * GCS_ENDPOINT.  Returns a string the caller frees, or NULL (no memory).
 */
char		*gcs_endpoint_from_env(void);
/* "host:port" -> "http://host:port"; trailing '/' dropped (caller frees). */
char		*gcs_endpoint_normalize(const char *);

/* Value of custom metadata key, or NULL; owned by obj. */
const char	*gcs_object_meta(const struct gcs_object *obj, const char *key);
void		 gcs_object_free(struct gcs_object *);

/*
 * Called for each listed object; obj is owned by gcs_list and valid only
 * during the call.  A non-zero return stops the listing and is returned.
 */
typedef int	(*gcs_list_cb)(void *arg, const struct gcs_object *obj);

/* All objects whose names start with prefix (NULL: all), every page. */
int	 gcs_list(struct gcs *, const char *bucket, const char *prefix,
	    gcs_list_cb, void *arg, char *err, size_t errlen);

/* *info (caller frees with gcs_object_free) on success. */
int	 gcs_stat(struct gcs *, const char *bucket, const char *name,
	    struct gcs_object **info, char *err, size_t errlen);

/*
 * Receives downloaded bytes in order; non-zero aborts the download.  The
 * bytes are verified only when gcs_download returns GCS_OK: the caller
 * must discard what it got on any other result.
 */
typedef int	(*gcs_write_fn)(void *arg, const void *buf, size_t len);

/*
 * Stream an object (generation 0: the live one) to fn.  A broken transfer
 * resumes where it stopped, pinned to the generation first seen.  info
 * (may be NULL) receives the resource (caller frees).
 */
int	 gcs_download(struct gcs *, const char *bucket, const char *name,
	    int64_t generation, gcs_write_fn fn, void *arg,
	    struct gcs_object **info, char *err, size_t errlen);

/*
 * Delete, only if the live generation is generation (0: any).
 * GCS_EPRECOND: the object was replaced and was not deleted.
 */
int	 gcs_delete(struct gcs *, const char *bucket, const char *name,
	    int64_t generation, char *err, size_t errlen);

/*
 * Merge custom metadata (NULL-terminated key, value, ... list) into the
 * object, only if its live generation is generation.  GCS_EPRECOND: the
 * object was replaced.
 */
int	 gcs_patch_metadata(struct gcs *, const char *bucket, const char *name,
	    int64_t generation, const char *const *meta, char *err,
	    size_t errlen);

/* Bit i of *granted is set when perms[i] is granted on bucket (n <= 64). */
int	 gcs_test_permissions(struct gcs *, const char *bucket,
	    const char *const *perms, size_t n, uint64_t *granted, char *err,
	    size_t errlen);

/*
 * Streaming resumable upload (gcs_upload.c).  begin creates the session
 * (the name must not exist yet); write buffers at most chunk_bytes and
 * sends full chunks; finish sends the rest, verifies the object's CRC32C,
 * MD5 and size and frees the upload.  abort cancels and frees.  meta:
 * NULL-terminated key, value, key, value... or NULL.  On success *up is
 * owned by the caller until finish or abort.
 */
struct gcs_upload;

int	 gcs_upload_begin(struct gcs *, const char *bucket, const char *name,
	    const char *content_type, const char *const *meta,
	    size_t chunk_bytes, struct gcs_upload **up, char *err,
	    size_t errlen);
int	 gcs_upload_write(struct gcs_upload *, const void *buf, size_t len,
	    char *err, size_t errlen);
/* info (may be NULL) receives the new object (caller frees). */
int	 gcs_upload_finish(struct gcs_upload *, struct gcs_object **info,
	    char *err, size_t errlen);
void	 gcs_upload_abort(struct gcs_upload *);

/*
 * Shared by gcs.c and gcs_upload.c; exposed for unit tests.
 */

/*
 * The Content-Range value for len bytes at start of a stream of total
 * bytes (-1: unknown): "bytes A-B/T", or with total unknown "bytes A-B/"
 * and a star; len 0 gives a star for the range.
 */
void	 gcs_content_range(char *buf, size_t buflen, int64_t start,
	    size_t len, int64_t total);
/* A 308's Range value "bytes=0-N": *persisted = N + 1; -1 if malformed. */
int	 gcs_parse_range(const char *value, int64_t *persisted);

/* One HTTP exchange (internal; see gcs.c). */
struct gcs_req {
	const char	*method;	/* GET, POST, PUT, PATCH, DELETE */
	const char	*url;		/* borrowed */
	const char	*ctype;		/* request Content-Type or NULL */
	const char	*extra[4];	/* more headers, NULL-terminated */
	const void	*body;		/* borrowed; NULL: none */
	size_t		 body_len;
	int		 no_auth;	/* session URIs are the credential */
	gcs_write_fn	 sink;		/* 2xx body goes here, else buffered */
	void		*sink_arg;
	/* Filled by gcs_perform. */
	long		 status;	/* 0: no response (transport error) */
	char		*resp;		/* body (non-2xx, or no sink); owned */
	size_t		 resp_len;
	char		*location;	/* owned */
	char		*range;		/* owned */
	char		 hash_crc[16], hash_md5[32];	/* x-goog-hash */
	int64_t		 xgen;		/* x-goog-generation, 0 if none */
	int64_t		 stored_len;	/* x-goog-stored-content-length, -1 */
	time_t		 date;		/* Date header, 0 if none */
	char		 cerr[256];	/* transport error text */
	int		 sink_stop;	/* the sink asked to stop */
};

/* One attempt; 0 with req->status set, or -1 with req->cerr (transport). */
int	 gcs_perform(struct gcs *, struct gcs_req *);
/* Drop what gcs_perform filled, so req can be performed again. */
void	 gcs_req_reset(struct gcs_req *);
int	 gcs_retryable(const struct gcs_req *);
/* Sleep before retry attempt (1-based); 0, or -1 when out of budget. */
int	 gcs_backoff(const struct gcs *, int attempt, int64_t started_ms);
/*
 * An error message for a failed request (no answer, or not 2xx) after
 * attempts tries; returns the GCS_E* code.  perm: the IAM permission the
 * request needs, named when it is denied.
 */
int	 gcs_http_error(const struct gcs *, const struct gcs_req *,
	    const char *what, const char *bucket, const char *name,
	    const char *perm, int attempts, char *err, size_t errlen);
/* Perform r, retrying what is retryable; GCS_OK on 2xx, else as above. */
int	 gcs_call(struct gcs *, struct gcs_req *, const char *what,
	    const char *bucket, const char *name, const char *perm,
	    int *attempts, char *err, size_t errlen);
/* Parse an object resource (caller frees), or NULL. */
struct gcs_object *gcs_object_parse(json_object *);
/* Parse the response body as JSON (caller puts), or NULL. */
json_object	*gcs_resp_json(const struct gcs_req *);
/* The string member key of o, or NULL; owned by o. */
const char	*gcs_jstr(json_object *o, const char *key);
/* Percent-encode s, '/' too (caller frees with free), or NULL. */
char	*gcs_escape(struct gcs *, const char *s);

#endif
