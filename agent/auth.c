/*
 * auth.c - access tokens for Google APIs, the way the client libraries get
 * them but without one: the emulator needs none; a service-account key
 * signs an RS256 JWT (sakey.c) that token_uri trades for a token; on
 * GCE the metadata server hands one out.  Tokens are cached until close to
 * expiry and never logged; transient failures are retried.
 */
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "handler.h"
#include "sakey.h"
#include "log.h"
#include "version.h"

#define AUTH_TRIES	4		/* attempts for transient failures */
#define AUTH_BACKOFF_MS	250
#define AUTH_BACKOFF_CAP 4000
#define AUTH_MAXBODY	(1024 * 1024)	/* no Google answer here is larger */
#define AUTH_MARGIN_MS	300000		/* refresh 5 minutes before expiry */

enum auth_mode { MODE_NONE, MODE_KEY, MODE_METADATA };

struct auth {
	enum auth_mode	 mode;
	char		 kind[320];
	char		*metadata_host;
	char		*scope;
	struct sakey	*sa;		/* service-account key, MODE_KEY */
	/* The cached token; refreshed at refresh_ms (monotonic). */
	char		*token;
	int64_t		 refresh_ms;
};

struct body {
	char	*buf;
	size_t	 len;
	int	 overflow;
};

/* Free a string that held a secret, wiping it first. */
static void
wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* Header lists can carry the bearer token: wipe them too. */
static void
slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist *p;

	for (p = l; p != NULL; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(l);
}

static size_t
collect(char *data, size_t size, size_t n, void *arg)
{
	struct body	*b = arg;
	size_t		 len = size * n;
	char		*nb;

	if (b->len + len > AUTH_MAXBODY) {
		b->overflow = 1;
		return 0;
	}
	nb = realloc(b->buf, b->len + len + 1);
	if (nb == NULL)
		return 0;
	b->buf = nb;
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return len;
}

static void
body_reset(struct body *b)
{
	if (b->buf != NULL)
		explicit_bzero(b->buf, b->len);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/* Failures that another attempt may not see: the network, not the ask. */
static int
curl_transient(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

static int
status_transient(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

void
auth_error_text(const char *body, char *out, size_t outlen)
{
	json_object	*o, *e, *m, *d;
	size_t		 i;

	out[0] = '\0';
	if (body == NULL)
		return;
	o = json_tokener_parse(body);
	if (o != NULL && json_object_object_get_ex(o, "error", &e)) {
		if (json_object_is_type(e, json_type_object) &&
		    json_object_object_get_ex(e, "message", &m))
			snprintf(out, outlen, "%s", json_object_get_string(m));
		else if (json_object_is_type(e, json_type_string)) {
			if (json_object_object_get_ex(o, "error_description",
			    &d) && *json_object_get_string(d) != '\0')
				snprintf(out, outlen, "%s: %s",
				    json_object_get_string(e),
				    json_object_get_string(d));
			else
				snprintf(out, outlen, "%s",
				    json_object_get_string(e));
		}
	}
	json_object_put(o);
	if (out[0] != '\0')
		return;
	/* Not JSON (the metadata server answers text): a one-line prefix. */
	snprintf(out, outlen, "%.200s", body);
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20)
			out[i] = ' ';
	while (i > 0 && out[i - 1] == ' ')
		out[--i] = '\0';
}

/*
 * One exchange, no retry.  form: POST body or NULL for GET.  metadata:
 * the answer must carry Metadata-Flavor: Google.  Returns 0 with *status
 * and b filled, 1 for a failure worth retrying, -1 for one that is not;
 * err filled when non-zero.
 */
static int
http_once(const char *url, struct curl_slist *hdrs, const char *form,
    int metadata, long *status, struct body *b, char *err, size_t errlen)
{
	char			 cerr[CURL_ERROR_SIZE];
	struct curl_header	*h = NULL;
	CURL			*e;
	CURLcode		 c;
	int			 rc = -1;

	*status = 0;
	cerr[0] = '\0';
	e = curl_easy_init();
	if (e == NULL) {
		snprintf(err, errlen, "cannot create an HTTP handle (out of "
		    "memory?)");
		return -1;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, agent_user_agent);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, metadata ? 3000L :
	    10000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, metadata ? 10000L : 30000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
	if (form != NULL)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
	c = curl_easy_perform(e);
	if (c != CURLE_OK) {
		if (b->overflow)
			snprintf(err, errlen, "answer larger than %d bytes",
			    AUTH_MAXBODY);
		else
			snprintf(err, errlen, "%s", cerr[0] ? cerr :
			    curl_easy_strerror(c));
		rc = curl_transient(c) && !b->overflow ? 1 : -1;
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
	if (metadata && (curl_easy_header(e, "Metadata-Flavor", 0,
	    CURLH_HEADER, -1, &h) != CURLHE_OK ||
	    strcmp(h->value, "Google") != 0)) {
		snprintf(err, errlen, "the answer (HTTP %ld) has no "
		    "\"Metadata-Flavor: Google\", so this is not a GCE "
		    "metadata server; check GCE_METADATA_HOST or the VM's DNS",
		    *status);
		goto out;
	}
	if (b->buf == NULL) {
		b->buf = calloc(1, 1);
		if (b->buf == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	rc = 0;
out:
	curl_easy_cleanup(e);
	return rc;
}

/*
 * http_once, retried with jittered backoff while failures are transient
 * (including 408, 429, 5xx).  what names the exchange in err.  Returns 0
 * with *status and *body (owned by the caller; it may hold a token, so
 * wipe it) for a final answer, or -1 with err filled.
 */
static int
http_retry(const char *what, const char *url, struct curl_slist *hdrs,
    const char *form, int metadata, long *status, char **body, char *err,
    size_t errlen)
{
	struct body	 b;
	char		 why[512], text[300];
	int		 attempt, r;
	long		 ms;

	memset(&b, 0, sizeof(b));
	*body = NULL;
	for (attempt = 1; ; attempt++) {
		body_reset(&b);
		r = http_once(url, hdrs, form, metadata, status, &b, why,
		    sizeof(why));
		if (r == 0 && !status_transient(*status)) {
			*body = b.buf;
			return 0;
		}
		if (r == 0) {
			auth_error_text(b.buf, text, sizeof(text));
			snprintf(why, sizeof(why), "HTTP %ld%s%s", *status,
			    text[0] ? ": " : "", text);
			r = 1;
		}
		if (r == -1 || attempt == AUTH_TRIES)
			break;
		ms = handler_backoff_ms(AUTH_BACKOFF_MS, AUTH_BACKOFF_CAP,
		    attempt, (double)arc4random() / UINT32_MAX);
		log_debug("auth: %s failed (%s); retrying in %ld ms", what,
		    why, ms);
		usleep((useconds_t)ms * 1000);
	}
	body_reset(&b);
	if (r == 1)
		snprintf(err, errlen, "%s failed %d times, last: %s; it is "
		    "probably a network or service outage, try again later",
		    what, AUTH_TRIES, why);
	else
		snprintf(err, errlen, "%s failed: %s", what, why);
	return -1;
}

/* May a bearer token or assertion go to url?  https, or http to loopback. */
static int
url_check(const char *url, char *err, size_t errlen)
{
	CURLU	*u = curl_url();
	char	*scheme = NULL, *host = NULL;
	int	 rc = -1;

	if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(err, errlen, "'%s' is not a valid URL", url);
		goto out;
	}
	if (strcmp(scheme, "https") == 0 || (strcmp(scheme, "http") == 0 &&
	    (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
	    strcmp(host, "[::1]") == 0))) {
		rc = 0;
		goto out;
	}
	snprintf(err, errlen, "refusing to send credentials to '%s': only "
	    "https (or http to a loopback test server) is allowed", url);
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

struct auth *
auth_new(const struct auth_opts *opts, char *err, size_t errlen)
{
	struct auth	*a;
	const char	*mh, *scope;
	char		 why[600];

	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		return NULL;
	}
	mh = opts->metadata_host && *opts->metadata_host ?
	    opts->metadata_host : AUTH_DEFAULT_METADATA;
	scope = opts->scope && *opts->scope ? opts->scope : AUTH_DEFAULT_SCOPE;
	a->metadata_host = strdup(mh);
	a->scope = strdup(scope);
	if (a->metadata_host == NULL || a->scope == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		goto fail;
	}
	if (opts->no_auth) {
		a->mode = MODE_NONE;
		snprintf(a->kind, sizeof(a->kind), "none");
	} else if (opts->credentials_file && *opts->credentials_file) {
		a->mode = MODE_KEY;
		a->sa = sakey_load(opts->credentials_file, err, errlen);
		if (a->sa == NULL)
			goto fail;
		if (url_check(a->sa->token_uri, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "auth: service-account key %s: "
			    "token_uri: %s", a->sa->path, why);
			goto fail;
		}
		snprintf(a->kind, sizeof(a->kind), "service-account %s",
		    a->sa->email);
	} else {
		a->mode = MODE_METADATA;
		snprintf(a->kind, sizeof(a->kind), "metadata");
	}
	return a;
fail:
	auth_free(a);
	return NULL;
}

const char *
auth_kind(const struct auth *a)
{
	return a->kind;
}

char *
auth_jwt(const struct auth *a, time_t iat, char *err, size_t errlen)
{
	if (a->mode != MODE_KEY || a->sa == NULL) {
		snprintf(err, errlen, "auth: no service-account key loaded");
		return NULL;
	}
	return sakey_jwt(a->sa, a->scope, iat, err, errlen);
}

/* Keep the token from a token answer; err filled on -1. */
static int
take_token(struct auth *a, const char *body, const char *from, char *err,
    size_t errlen)
{
	json_object	*o, *t, *x;
	int64_t		 life, margin, now = now_ms();
	int		 rc = -1;

	o = json_tokener_parse(body);
	if (o == NULL || !json_object_object_get_ex(o, "access_token", &t) ||
	    !json_object_is_type(t, json_type_string) ||
	    json_object_get_string_len(t) == 0) {
		snprintf(err, errlen, "auth: %s answered 200 without an "
		    "access_token; is it really a Google token endpoint?",
		    from);
		goto out;
	}
	life = 3600;
	if (json_object_object_get_ex(o, "expires_in", &x) &&
	    json_object_get_int64(x) > 0)
		life = json_object_get_int64(x);
	wipe_free(a->token);
	a->token = strdup(json_object_get_string(t));
	if (a->token == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		goto out;
	}
	/* Refresh 5 minutes early, or a tenth early for short lives. */
	margin = life * 100 < AUTH_MARGIN_MS ? life * 100 : AUTH_MARGIN_MS;
	a->refresh_ms = now + life * 1000 - margin;
	log_debug("auth: new access token from %s, valid %lld s", from,
	    (long long)life);
	rc = 0;
out:
	if (o != NULL && json_object_object_get_ex(o, "access_token", &t) &&
	    json_object_is_type(t, json_type_string))
		explicit_bzero((char *)json_object_get_string(t),
		    (size_t)json_object_get_string_len(t));
	json_object_put(o);
	return rc;
}

static int
fetch_key_token(struct auth *a, char *err, size_t errlen)
{
	struct curl_slist	*hd = NULL;
	char			 what[600], why[1024], text[512];
	char			*jwt = NULL, *form = NULL, *body = NULL;
	long			 status;
	int			 rc = -1;

	jwt = auth_jwt(a, time(NULL), err, errlen);
	if (jwt == NULL)
		return -1;
	if (asprintf(&form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
	    "grant-type%%3Ajwt-bearer&assertion=%s", jwt) == -1) {
		form = NULL;
		snprintf(err, errlen, "auth: out of memory");
		goto out;
	}
	hd = curl_slist_append(hd, "Content-Type: "
	    "application/x-www-form-urlencoded");
	hd = curl_slist_append(hd, "Expect:");
	snprintf(what, sizeof(what), "token request to %s for %s",
	    a->sa->token_uri, a->sa->email);
	if (http_retry(what, a->sa->token_uri, hd, form, 0, &status, &body, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "auth: %s", why);
		goto out;
	}
	if (status != 200) {
		auth_error_text(body, text, sizeof(text));
		snprintf(err, errlen, "auth: %s refused (HTTP %ld): %s; check "
		    "that the key in %s is still active for the service "
		    "account (IAM > Service accounts > Keys) and that the "
		    "system clock is right", what, status,
		    text[0] ? text : "no reason given", a->sa->path);
		goto out;
	}
	rc = take_token(a, body, a->sa->token_uri, err, errlen);
out:
	curl_slist_free_all(hd);
	wipe_free(body);
	wipe_free(form);
	wipe_free(jwt);
	return rc;
}

/*
 * GET computeMetadata/v1/path.  Returns 0 with *status and *body (caller
 * wipes and frees), or -1 with err filled.
 */
static int
metadata_request(struct auth *a, const char *path, long *status, char **body,
    char *err, size_t errlen)
{
	struct curl_slist	*hd = NULL;
	const char		*p;
	char			*url = NULL, what[600], why[1024];
	int			 rc = -1;

	*body = NULL;
	for (p = path; *p != '\0'; p++)
		if (strchr("abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./", *p) == NULL)
			break;
	if (*path == '\0' || *path == '/' || *p != '\0' ||
	    strstr(path, "..") != NULL) {
		snprintf(err, errlen, "auth: bad metadata path '%.100s' "
		    "(internal error)", path);
		return -1;
	}
	if (asprintf(&url, "http://%s/computeMetadata/v1/%s",
	    a->metadata_host, path) == -1) {
		url = NULL;
		snprintf(err, errlen, "auth: out of memory");
		goto out;
	}
	hd = curl_slist_append(hd, "Metadata-Flavor: Google");
	snprintf(what, sizeof(what), "metadata server %s, %s",
	    a->metadata_host, path);
	if (http_retry(what, url, hd, NULL, 1, status, body, why,
	    sizeof(why)) == -1) {
		/* No answer at all: most likely not on GCE. */
		snprintf(err, errlen, "auth: %s%s", why, *status == 0 ?
		    "; outside GCE, set GOOGLE_APPLICATION_CREDENTIALS to a "
		    "service-account key" : "");
		goto out;
	}
	rc = 0;
out:
	curl_slist_free_all(hd);
	free(url);
	return rc;
}

static int
fetch_metadata_token(struct auth *a, char *err, size_t errlen)
{
	static const char path[] = "instance/service-accounts/default/token";
	char	 from[300], text[300];
	char	*body = NULL;
	long	 status;
	int	 rc = -1;

	if (metadata_request(a, path, &status, &body, err, errlen) == -1)
		return -1;
	if (status == 404) {
		snprintf(err, errlen, "auth: metadata server %s has no token: "
		    "this VM has no service account; attach one (gcloud "
		    "compute instances set-service-account) or set "
		    "GOOGLE_APPLICATION_CREDENTIALS", a->metadata_host);
		goto out;
	}
	if (status != 200) {
		auth_error_text(body, text, sizeof(text));
		snprintf(err, errlen, "auth: metadata server %s refused the "
		    "token request (HTTP %ld): %s", a->metadata_host, status,
		    text);
		goto out;
	}
	snprintf(from, sizeof(from), "metadata server %s", a->metadata_host);
	rc = take_token(a, body, from, err, errlen);
out:
	wipe_free(body);
	return rc;
}

int
auth_token(struct auth *a, const char **token, char *err, size_t errlen)
{
	int rc = 0;

	*token = NULL;
	if (a->mode == MODE_NONE)
		return 0;
	if (a->token == NULL || now_ms() >= a->refresh_ms) {
		if (a->mode == MODE_KEY)
			rc = fetch_key_token(a, err, errlen);
		else
			rc = fetch_metadata_token(a, err, errlen);
	}
	if (rc == 0)
		*token = a->token;
	return rc;
}

int
auth_metadata_get(struct auth *a, const char *path, char **value, char *err,
    size_t errlen)
{
	char	 text[300];
	char	*body = NULL;
	long	 status;
	int	 rc = -1;

	*value = NULL;
	if (metadata_request(a, path, &status, &body, err, errlen) == -1)
		return -1;
	if (status == 404) {
		rc = 1;
		goto out;
	}
	if (status != 200) {
		auth_error_text(body, text, sizeof(text));
		snprintf(err, errlen, "auth: metadata server %s: %s: HTTP %ld: "
		    "%s", a->metadata_host, path, status, text);
		goto out;
	}
	*value = body;
	body = NULL;
	rc = 0;
out:
	wipe_free(body);
	return rc;
}

int
auth_get(struct auth *a, const char *url, long *status, char **body,
    char *err, size_t errlen)
{
	struct curl_slist	*hd = NULL;
	const char		*tok;
	char			*line = NULL, what[600], why[1024];
	int			 tries, rc = -1;

	*body = NULL;
	for (tries = 0; tries < 2; tries++) {
		if (auth_token(a, &tok, err, errlen) == -1)
			goto out;
		if (tok != NULL) {
			if (url_check(url, err, errlen) == -1)
				goto out;
			if (asprintf(&line, "Authorization: Bearer %s",
			    tok) == -1) {
				line = NULL;
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			hd = curl_slist_append(hd, line);
			wipe_free(line);
			line = NULL;
		}
		hd = curl_slist_append(hd, "Accept: application/json");
		snprintf(what, sizeof(what), "GET %s", url);
		if (http_retry(what, url, hd, NULL, 0, status, body, why,
		    sizeof(why)) == -1) {
			snprintf(err, errlen, "%s", why);
			goto out;
		}
		slist_wipe_free(hd);
		hd = NULL;
		/* A token revoked or expired early: one fresh try. */
		if (*status != 401 || tok == NULL || tries == 1)
			break;
		log_debug("auth: %s answered 401; fetching a new token", url);
		wipe_free(a->token);
		a->token = NULL;
		wipe_free(*body);
		*body = NULL;
	}
	rc = 0;
out:
	slist_wipe_free(hd);
	return rc;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	wipe_free(a->token);
	sakey_free(a->sa);
	free(a->metadata_host);
	free(a->scope);
	free(a);
}
