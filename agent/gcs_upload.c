/*
 * gcs_upload.c - streaming resumable uploads of unknown total size.
 *
 * The caller pushes data as it is produced; memory is one chunk.  A chunk
 * stays in memory until the session confirms it (a 308's Range), because
 * the server may persist less than was sent, or a lost answer may hide
 * whether anything was persisted.  The CRC32C and MD5 cover exactly the
 * confirmed bytes, so they need no rewinding.  A lost session cannot be
 * recovered: the stream cannot be replayed, the caller reruns the upload.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs.h"
#include "handler.h"
#include "hash.h"
#include "log.h"

struct gcs_upload {
	struct gcs	*g;		/* borrowed */
	char		*bucket, *name, *session;
	unsigned char	*buf;		/* the unconfirmed bytes */
	size_t		 cap, len;
	int64_t		 off;		/* stream offset of buf[0]: confirmed */
	uint32_t	 crc;		/* of bytes [0, off) */
	struct hash_md5	*md5;		/* of bytes [0, off) */
	char		 goog_hash[80];	/* X-Goog-Hash of the whole stream */
	int		 broken;	/* a write failed: only abort is left */
};

static void
upload_free(struct gcs_upload *up)
{
	if (up == NULL)
		return;
	free(up->bucket);
	free(up->name);
	free(up->session);
	free(up->buf);
	hash_md5_free(up->md5);
	free(up);
}

/* The metadata JSON of begin (caller frees), or NULL. */
static char *
begin_json(const char *name, const char *content_type,
    const char *const *meta)
{
	json_object	*o = json_object_new_object(), *m = NULL;
	char		*s;
	size_t		 i;

	json_object_object_add(o, "name", json_object_new_string(name));
	if (content_type != NULL)
		json_object_object_add(o, "contentType",
		    json_object_new_string(content_type));
	for (i = 0; meta != NULL && meta[i] != NULL && meta[i + 1] != NULL;
	    i += 2) {
		if (m == NULL) {
			m = json_object_new_object();
			json_object_object_add(o, "metadata", m);
		}
		json_object_object_add(m, meta[i],
		    json_object_new_string(meta[i + 1]));
	}
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

int
gcs_upload_begin(struct gcs *g, const char *bucket, const char *name,
    const char *content_type, const char *const *meta, size_t chunk_bytes,
    struct gcs_upload **upp, char *err, size_t errlen)
{
	struct gcs_req		 r = { .method = "POST" };
	struct gcs_upload	*up = NULL;
	char			*b = NULL, *n = NULL, *url = NULL, *body = NULL;
	int			 rv = GCS_ERR;

	*upp = NULL;
	if (chunk_bytes == 0 || chunk_bytes % GCS_CHUNK_GRAIN != 0) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: chunk size %zu "
		    "is not a positive multiple of 256 KiB", bucket, name,
		    chunk_bytes);
		return GCS_ERR;
	}
	up = calloc(1, sizeof(*up));
	if (up == NULL)
		goto nomem;
	up->g = g;
	up->cap = chunk_bytes;
	up->bucket = strdup(bucket);
	up->name = strdup(name);
	up->buf = malloc(chunk_bytes);
	b = gcs_escape(g, bucket);
	n = gcs_escape(g, name);
	body = begin_json(name, content_type, meta);
	if (up->bucket == NULL || up->name == NULL || up->buf == NULL ||
	    b == NULL || n == NULL || body == NULL)
		goto nomem;
	/* ifGenerationMatch=0: a backup never overwrites an object. */
	if (asprintf(&url, "%s/upload/storage/v1/b/%s/o?uploadType=resumable"
	    "&name=%s&ifGenerationMatch=0", g->endpoint, b, n) == -1) {
		url = NULL;
		goto nomem;
	}
	up->md5 = hash_md5_new();
	r.url = url;
	r.ctype = "application/json; charset=UTF-8";
	r.body = body;
	r.body_len = strlen(body);
	rv = gcs_call(g, &r, "upload", bucket, name, "storage.objects.create",
	    NULL, err, errlen);
	if (rv == GCS_EPRECOND)
		snprintf(err, errlen, "gcs: upload gs://%s/%s: the object "
		    "already exists and uploads never overwrite; use a new "
		    "name or delete the old object", bucket, name);
	if (rv != GCS_OK)
		goto out;
	if (r.location == NULL || strncmp(r.location, "http", 4) != 0) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: Cloud Storage "
		    "gave no session URI (HTTP %ld without Location)", bucket,
		    name, r.status);
		rv = GCS_ERR;
		goto out;
	}
	up->session = r.location;
	r.location = NULL;
	*upp = up;
	up = NULL;
	rv = GCS_OK;
	goto out;
nomem:
	snprintf(err, errlen, "gcs: upload gs://%s/%s: out of memory",
	    bucket, name);
	rv = GCS_ERR;
out:
	upload_free(up);
	gcs_req_reset(&r);
	free(url);
	free(body);
	free(b);
	free(n);
	return rv;
}

/* The session says bytes [0, persisted) are stored: drop them from buf. */
static int
confirm(struct gcs_upload *up, int64_t persisted, char *err, size_t errlen)
{
	size_t n;

	if (persisted < up->off) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: the session lost "
		    "bytes it had confirmed (stored %" PRId64 ", before %"
		    PRId64 "); the data cannot be sent again, so run the "
		    "upload again", up->bucket, up->name, persisted, up->off);
		return GCS_ERESTART;
	}
	if (persisted > up->off + (int64_t)up->len) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: the session "
		    "claims %" PRId64 " bytes but only %" PRId64 " were sent; "
		    "run the upload again", up->bucket, up->name, persisted,
		    up->off + (int64_t)up->len);
		return GCS_ERESTART;
	}
	n = (size_t)(persisted - up->off);
	up->crc = hash_crc32c(up->crc, up->buf, n);
	hash_md5_update(up->md5, up->buf, n);
	memmove(up->buf, up->buf + n, up->len - n);
	up->len -= n;
	up->off = persisted;
	return GCS_OK;
}

static int
session_gone(struct gcs_upload *up, long status, char *err, size_t errlen)
{
	snprintf(err, errlen, "gcs: upload gs://%s/%s: the upload session "
	    "is gone (HTTP %ld: expired or cancelled) after %" PRId64 " bytes "
	    "were stored; the data cannot be sent again, so run the upload "
	    "again", up->bucket, up->name, status, up->off);
	return GCS_ERESTART;
}

/*
 * The answer to a chunk or a status query: 308 confirms bytes; 200/201
 * completes (final only: *obj).  Returns GCS_OK, 1 to retry, or an error.
 */
static int
answer(struct gcs_upload *up, struct gcs_req *r, int final,
    struct gcs_object **obj, char *err, size_t errlen)
{
	json_object	*o;
	int64_t		 persisted = 0;

	if (r->status == 308) {
		/* No Range: nothing is stored yet. */
		if (r->range != NULL && gcs_parse_range(r->range,
		    &persisted) != 0) {
			snprintf(err, errlen, "gcs: upload gs://%s/%s: bad "
			    "Range header '%.40s' in a 308", up->bucket,
			    up->name, r->range);
			return GCS_ERR;
		}
		return confirm(up, persisted, err, errlen);
	}
	if (r->status == 200 || r->status == 201) {
		if (!final) {
			snprintf(err, errlen, "gcs: upload gs://%s/%s: the "
			    "session completed before the data ended; run the "
			    "upload again", up->bucket, up->name);
			return GCS_ERESTART;
		}
		o = gcs_resp_json(r);
		*obj = gcs_object_parse(o);
		json_object_put(o);
		if (*obj == NULL) {
			snprintf(err, errlen, "gcs: upload gs://%s/%s: the "
			    "answer is not an object resource", up->bucket,
			    up->name);
			return GCS_ERR;
		}
		return GCS_OK;
	}
	if (r->status == 404 || r->status == 410)
		return session_gone(up, r->status, err, errlen);
	if (gcs_retryable(r))
		return 1;
	return gcs_http_error(up->g, r, "upload", up->bucket, up->name,
	    "storage.objects.create", 1, err, errlen);
}

/*
 * Send buffered bytes.  Not final: until some are confirmed (so buf has
 * room again); only whole 256 KiB units go, as the API requires.  Final:
 * until the object exists (*obj, caller frees; NULL on entry).  After any doubt the session is asked
 * what it has before anything is sent again.
 */
static int
flush(struct gcs_upload *up, int final, struct gcs_object **obj, char *err,
    size_t errlen)
{
	struct gcs_req	 r = { .method = "PUT", .no_auth = 1 };
	char		 cr[96], hcr[128];
	int64_t		 started = now_ms(), start_off = up->off, before;
	size_t		 n;
	int		 rv, attempt = 0, doubt = 0;

	r.url = up->session;
	for (;;) {
		if (final ? *obj != NULL : up->off > start_off) {
			rv = GCS_OK;
			goto out;
		}
		before = up->off;
		if (doubt) {
			/* What did the session keep? */
			r.body = "";
			r.body_len = 0;
			r.ctype = NULL;
			r.extra[0] = "Content-Range: bytes */*";
			r.extra[1] = NULL;
		} else {
			n = final ? up->len : up->len - up->len %
			    GCS_CHUNK_GRAIN;
			gcs_content_range(cr + 15, sizeof(cr) - 15, up->off, n,
			    final ? up->off + (int64_t)up->len : -1);
			memcpy(cr, "Content-Range: ", 15);
			r.body = up->buf;
			r.body_len = n;
			r.ctype = "application/octet-stream";
			r.extra[0] = cr;
			r.extra[1] = NULL;
			if (final) {
				snprintf(hcr, sizeof(hcr), "X-Goog-Hash: %s",
				    up->goog_hash);
				r.extra[1] = hcr;
				r.extra[2] = NULL;
			}
		}
		if (gcs_perform(up->g, &r) != 0)
			rv = 1;
		else
			rv = answer(up, &r, final, obj, err, errlen);
		if (rv == GCS_OK && (*obj != NULL || up->off > before)) {
			attempt = 0;	/* progress: a fresh budget */
			doubt = 0;
			started = now_ms();
			continue;
		}
		if (rv < 0)
			goto out;
		if (rv == 1)
			doubt = 1;
		else
			doubt = 0;	/* answered, but nothing new stored */
		attempt++;
		if (gcs_backoff(up->g, attempt, started) != 0) {
			rv = rv == 1 ? gcs_http_error(up->g, &r, "upload",
			    up->bucket, up->name, "storage.objects.create",
			    attempt, err, errlen) : GCS_ERR;
			if (rv == GCS_ERR && r.status == 308)
				snprintf(err, errlen, "gcs: upload gs://%s/%s: "
				    "no progress after %d attempts at byte %"
				    PRId64 "; try again later", up->bucket,
				    up->name, attempt, up->off);
			goto out;
		}
		log_debug("gcs: upload gs://%s/%s: retrying at byte %" PRId64
		    " after %s", up->bucket, up->name, up->off, r.status ?
		    "an HTTP error" : r.cerr);
	}
out:
	gcs_req_reset(&r);
	return rv;
}

int
gcs_upload_write(struct gcs_upload *up, const void *buf, size_t len,
    char *err, size_t errlen)
{
	const unsigned char	*p = buf;
	struct gcs_object	*none = NULL;
	size_t			 n;
	int			 rv;

	if (up->broken) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: an earlier "
		    "write failed; abort the upload", up->bucket, up->name);
		return GCS_ERR;
	}
	while (len > 0) {
		n = up->cap - up->len < len ? up->cap - up->len : len;
		memcpy(up->buf + up->len, p, n);
		up->len += n;
		p += n;
		len -= n;
		if (up->len < up->cap)
			continue;
		rv = flush(up, 0, &none, err, errlen);
		if (rv != GCS_OK) {
			up->broken = 1;
			return rv;
		}
	}
	return GCS_OK;
}

/* Does what Cloud Storage stored match what was sent? */
static int
verify(const struct gcs_upload *up, const struct gcs_object *obj,
    int64_t total, const char *crc, const char *md5, char *err,
    size_t errlen)
{
	if (obj->size != total || strcmp(obj->crc32c, crc) != 0 ||
	    (obj->md5[0] != '\0' && strcmp(obj->md5, md5) != 0)) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: Cloud Storage "
		    "stored size %" PRId64 ", crc32c %s, md5 %s but %" PRId64
		    " bytes with crc32c %s, md5 %s were sent; the object cannot "
		    "be trusted: delete it and run the upload again",
		    up->bucket, up->name, obj->size, obj->crc32c[0] ?
		    obj->crc32c : "(none)", obj->md5[0] ? obj->md5 : "(none)",
		    total, crc, md5);
		return GCS_ERR;
	}
	return GCS_OK;
}

int
gcs_upload_finish(struct gcs_upload *up, struct gcs_object **info,
    char *err, size_t errlen)
{
	struct gcs_object	*obj = NULL;
	struct hash_md5		*m;
	unsigned char		 digest[16];
	char			 crc[9], md5[25];
	int64_t			 total = up->off + (int64_t)up->len;
	int			 rv;

	if (info != NULL)
		*info = NULL;
	if (up->broken) {
		snprintf(err, errlen, "gcs: upload gs://%s/%s: an earlier "
		    "write failed; the upload was abandoned", up->bucket,
		    up->name);
		rv = GCS_ERR;
		goto out;
	}
	/* Whole-stream hashes: confirmed bytes plus the buffered rest. */
	hash_crc32c_b64(hash_crc32c(up->crc, up->buf, up->len), crc);
	m = hash_md5_dup(up->md5);
	hash_md5_update(m, up->buf, up->len);
	hash_md5_peek(m, digest);
	hash_md5_free(m);
	hash_md5_b64(digest, md5);
	snprintf(up->goog_hash, sizeof(up->goog_hash), "crc32c=%s,md5=%s",
	    crc, md5);
	rv = flush(up, 1, &obj, err, errlen);
	if (rv != GCS_OK)
		goto out;
	rv = verify(up, obj, total, crc, md5, err, errlen);
	if (rv == GCS_OK && info != NULL) {
		*info = obj;
		obj = NULL;
	}
	gcs_object_free(obj);
	upload_free(up);
	return rv;
out:
	gcs_object_free(obj);
	gcs_upload_abort(up);
	return rv;
}

void
gcs_upload_abort(struct gcs_upload *up)
{
	struct gcs_req r = { .method = "DELETE", .no_auth = 1 };

	if (up == NULL)
		return;
	/* Best effort: an abandoned session expires on its own in a week. */
	if (up->session != NULL) {
		r.url = up->session;
		gcs_perform(up->g, &r);
		gcs_req_reset(&r);
	}
	upload_free(up);
}
