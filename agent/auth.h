/*
 * auth.h - OAuth2 access tokens for Google APIs without an SDK: none (the
 * emulator), a service-account key (a signed JWT traded at token_uri) or
 * the GCE metadata server; plus metadata attributes and a retried,
 * authenticated GET for the API clients.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>
#include <time.h>

#define AUTH_DEFAULT_SCOPE	"https://www.googleapis.com/auth/cloud-platform"
#define AUTH_DEFAULT_METADATA	"metadata.google.internal"

/* All strings are only read during auth_new (copied); NULL means unset. */
struct auth_opts {
	int		 no_auth;		/* STORAGE_EMULATOR_HOST is set */
	const char	*credentials_file;	/* service-account JSON key */
	const char	*metadata_host;		/* GCE_METADATA_HOST, host[:port] */
	const char	*scope;			/* for the JWT; default above */
};

struct auth;

/*
 * Set up from opts: with a key file it is read and checked here (mode,
 * JSON, fields, private key), so a bad key fails at start-up.  No network
 * is used yet.  Returns an object owned by the caller (auth_free), or NULL
 * with err filled.
 */
struct auth	*auth_new(const struct auth_opts *, char *err, size_t errlen);

/*
 * A valid access token, fetched or refreshed when needed.  0 with *token
 * pointing into auth (valid until the next auth_* call; NULL in no-auth
 * mode, meaning send no Authorization header), or -1 with err filled.
 */
int		 auth_token(struct auth *, const char **token, char *err,
		    size_t errlen);

/* "none", "service-account EMAIL" or "metadata"; owned by auth. */
const char	*auth_kind(const struct auth *);

/*
 * GET a metadata value, path under computeMetadata/v1/ (e.g.
 * "instance/attributes/KEY").  0 with *value owned by the caller (free),
 * 1 when the server says it is not set (404), -1 with err filled.
 */
int		 auth_metadata_get(struct auth *, const char *path, char **value,
		    char *err, size_t errlen);

/*
 * GET url with the bearer token (none in no-auth mode).  Connection
 * errors, 408, 429 and 5xx are retried with jittered backoff; a 401 drops
 * the cached token and tries once more.  0 with *status and *body (the
 * response, NUL-terminated, owned by the caller: free) for any final HTTP
 * status, or -1 with err filled when no answer came.  A token is never
 * sent over plain http except to a loopback host.
 */
int		 auth_get(struct auth *, const char *url, long *status,
		    char **body, char *err, size_t errlen);

/*
 * The message of a Google error body ({"error":{"message"}} or OAuth's
 * {"error","error_description"}) into out, else a cleaned prefix of it.
 */
void		 auth_error_text(const char *body, char *out, size_t outlen);

/*
 * The signed JWT assertion for the service-account key at time iat; for
 * tests.  Returns a string owned by the caller (wipe and free), or NULL
 * with err filled (also when auth holds no key).
 */
char		*auth_jwt(const struct auth *, time_t iat, char *err,
		    size_t errlen);

/* Wipe the token and key and free.  NULL-tolerant. */
void		 auth_free(struct auth *);

#endif
