/*
 * gcs.c - Cloud Storage JSON API: the endpoint, requests, retries and
 * error messages.  Object operations are in gcs_object.c, uploads in
 * gcs_upload.c.
 *
 * Every request goes through gcs_perform (one attempt) on the gcs's curl
 * handle, so connections are reused; the callers own the retry loops
 * because what "retry" means differs (a download resumes, an upload asks
 * the session what it has).
 */
#include <curl/curl.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "gcs.h"
#include "handler.h"
#include "hash.h"
#include "log.h"
#include "version.h"

#define RESP_MAX	(32L * 1024 * 1024)	/* a list page is ~1 MB */

struct gcs *
gcs_new(const char *endpoint, gcs_token_fn fn, void *arg)
{
	struct gcs *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->endpoint = gcs_endpoint_normalize(endpoint ? endpoint :
	    GCS_ENDPOINT);
	g->curl = curl_easy_init();
	if (g->endpoint == NULL || g->curl == NULL) {
		gcs_free(g);
		return NULL;
	}
	g->token_fn = fn;
	g->token_arg = arg;
	g->max_attempts = 8;
	g->retry_total_ms = 10 * 60 * 1000;
	g->backoff_base_ms = 1000;
	g->backoff_cap_ms = 32000;
	g->low_speed_limit = 1024;
	g->low_speed_time = 60;
	g->connect_timeout_ms = 15000;
	return g;
}

void
gcs_free(struct gcs *g)
{
	if (g == NULL)
		return;
	curl_easy_cleanup(g->curl);
	free(g->endpoint);
	free(g);
}

char *
gcs_endpoint_normalize(const char *in)
{
	char	*s;
	size_t	 len;

	while (isspace((unsigned char)*in))
		in++;
	if (strstr(in, "://") != NULL)
		s = strdup(in);
	else if (asprintf(&s, "http://%s", in) == -1)
		s = NULL;
	if (s == NULL)
		return NULL;
	len = strlen(s);
	while (len > 0 && (s[len - 1] == '/' || isspace((unsigned char)
	    s[len - 1])))
		s[--len] = '\0';
	return s;
}

char *
gcs_endpoint_from_env(void)
{
	const char *e = getenv("STORAGE_EMULATOR_HOST");

	if (e != NULL && *e != '\0')
		return gcs_endpoint_normalize(e);
	return strdup(GCS_ENDPOINT);
}

void
gcs_content_range(char *buf, size_t buflen, int64_t start, size_t len,
    int64_t total)
{
	char t[32];

	if (total >= 0)
		snprintf(t, sizeof(t), "%" PRId64, total);
	else
		snprintf(t, sizeof(t), "*");
	if (len == 0)
		snprintf(buf, buflen, "bytes */%s", t);
	else
		snprintf(buf, buflen, "bytes %" PRId64 "-%" PRId64 "/%s",
		    start, start + (int64_t)len - 1, t);
}

int
gcs_parse_range(const char *v, int64_t *persisted)
{
	char		*end;
	long long	 a, b;

	while (isspace((unsigned char)*v))
		v++;
	if (strncasecmp(v, "bytes=", 6) != 0)
		return -1;
	v += 6;
	if (!isdigit((unsigned char)*v))
		return -1;
	a = strtoll(v, &end, 10);
	if (a != 0 || *end != '-' || !isdigit((unsigned char)end[1]))
		return -1;
	b = strtoll(end + 1, &end, 10);
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0' || b < 0 || b == LLONG_MAX)
		return -1;
	*persisted = b + 1;
	return 0;
}

char *
gcs_escape(struct gcs *g, const char *s)
{
	char *e = curl_easy_escape(g->curl, s, 0), *r;

	if (e == NULL)
		return NULL;
	r = strdup(e);	/* so callers free with free() */
	curl_free(e);
	return r;
}

void
gcs_req_reset(struct gcs_req *r)
{
	free(r->resp);
	free(r->location);
	free(r->range);
	r->resp = r->location = r->range = NULL;
	r->resp_len = 0;
	r->status = 0;
	r->hash_crc[0] = r->hash_md5[0] = '\0';
	r->xgen = 0;
	r->stored_len = -1;
	r->date = 0;
	r->cerr[0] = '\0';
	r->sink_stop = 0;
}

/* A header value without surrounding blanks (caller frees), or NULL. */
static char *
dup_value(const char *v, size_t len)
{
	char *s;

	while (len > 0 && isspace((unsigned char)*v)) {
		v++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)v[len - 1]))
		len--;
	s = malloc(len + 1);
	if (s == NULL)
		return NULL;
	memcpy(s, v, len);
	s[len] = '\0';
	return s;
}

/* x-goog-hash: crc32c=...,md5=... (one header or one per hash). */
static void
parse_goog_hash(struct gcs_req *r, const char *v)
{
	const char	*p = v, *e;
	size_t		 n;

	while (*p != '\0') {
		while (*p == ' ' || *p == ',')
			p++;
		e = p + strcspn(p, ",");
		n = (size_t)(e - p);
		if (n > 7 && strncmp(p, "crc32c=", 7) == 0 &&
		    n - 7 < sizeof(r->hash_crc))
			snprintf(r->hash_crc, sizeof(r->hash_crc), "%.*s",
			    (int)(n - 7), p + 7);
		else if (n > 4 && strncmp(p, "md5=", 4) == 0 &&
		    n - 4 < sizeof(r->hash_md5))
			snprintf(r->hash_md5, sizeof(r->hash_md5), "%.*s",
			    (int)(n - 4), p + 4);
		p = e;
	}
}

static size_t
on_header(char *data, size_t size, size_t n, void *arg)
{
	struct gcs_req	*r = arg;
	size_t		 len = size * n, klen;
	const char	*colon = memchr(data, ':', len), *p;
	char		*v;

	/* Status lines come here too (100, then the answer): on_body needs it. */
	if (len > 9 && strncmp(data, "HTTP/", 5) == 0) {
		p = memchr(data, ' ', len);
		if (p != NULL)
			r->status = strtol(p + 1, NULL, 10);
		return len;
	}
	if (colon == NULL)
		return len;
	klen = (size_t)(colon - data);
	v = dup_value(colon + 1, len - klen - 1);
	if (v == NULL)
		return 0;
	if (klen == 8 && strncasecmp(data, "location", 8) == 0) {
		free(r->location);
		r->location = v;
		v = NULL;
	} else if (klen == 5 && strncasecmp(data, "range", 5) == 0) {
		free(r->range);
		r->range = v;
		v = NULL;
	} else if (klen == 11 && strncasecmp(data, "x-goog-hash", 11) == 0)
		parse_goog_hash(r, v);
	else if (klen == 17 && strncasecmp(data, "x-goog-generation", 17) == 0)
		r->xgen = strtoll(v, NULL, 10);
	else if (klen == 28 && strncasecmp(data,
	    "x-goog-stored-content-length", 28) == 0)
		r->stored_len = strtoll(v, NULL, 10);
	else if (klen == 4 && strncasecmp(data, "date", 4) == 0)
		r->date = curl_getdate(v, NULL);
	free(v);
	return len;
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct gcs_req	*r = arg;
	size_t		 len = size * n;
	char		*nb;

	if (r->sink != NULL && r->status >= 200 && r->status < 300) {
		if (r->sink(r->sink_arg, data, len) != 0) {
			r->sink_stop = 1;
			return 0;
		}
		return len;
	}
	if (r->resp_len + len > (size_t)RESP_MAX)
		return 0;
	nb = realloc(r->resp, r->resp_len + len + 1);
	if (nb == NULL)
		return 0;
	r->resp = nb;
	memcpy(r->resp + r->resp_len, data, len);
	r->resp_len += len;
	r->resp[r->resp_len] = '\0';
	return len;
}

int
gcs_perform(struct gcs *g, struct gcs_req *r)
{
	CURL			*c = g->curl;
	struct curl_slist	*hd = NULL;
	const char		*token = NULL;
	char			 auth[4096], ct[128], terr[CURL_ERROR_SIZE];
	CURLcode		 cc;
	int			 i, rv = -1;

	gcs_req_reset(r);
	curl_easy_reset(c);
	if (!r->no_auth && g->token_fn != NULL &&
	    g->token_fn(g->token_arg, &token, terr, sizeof(terr)) != 0) {
		snprintf(r->cerr, sizeof(r->cerr), "no access token: %.200s", terr);
		return -1;
	}
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hd = curl_slist_append(hd, auth);
		explicit_bzero(auth, sizeof(auth));
	}
	if (r->ctype != NULL) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", r->ctype);
		hd = curl_slist_append(hd, ct);
	}
	/* A 100-continue round trip per chunk only costs time. */
	hd = curl_slist_append(hd, "Expect:");
	for (i = 0; i < 4 && r->extra[i] != NULL; i++)
		hd = curl_slist_append(hd, r->extra[i]);
	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, agent_user_agent);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, g->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, g->low_speed_limit);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, g->low_speed_time);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, terr);
	terr[0] = '\0';
	if (r->body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->body_len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
	}
	if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (cc != CURLE_OK) {
		snprintf(r->cerr, sizeof(r->cerr), "%s", terr[0] ? terr :
		    curl_easy_strerror(cc));
		r->status = 0;
		goto out;
	}
	if (r->date > 0)
		g->last_date = r->date;
	rv = 0;
out:
	curl_slist_free_all(hd);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	return rv;
}

int
gcs_retryable(const struct gcs_req *r)
{
	if (r->sink_stop)
		return 0;
	return r->status == 0 || r->status == 408 || r->status == 429 ||
	    r->status >= 500;
}

int
gcs_backoff(const struct gcs *g, int attempt, int64_t started_ms)
{
	struct timespec	ts;
	uint32_t	rnd = 0;
	long		ms;

	if (attempt >= g->max_attempts)
		return -1;
	/* Jitter keeps many agents from retrying in step. */
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint32_t)now_ms();
	ms = handler_backoff_ms(g->backoff_base_ms, g->backoff_cap_ms, attempt,
	    (double)rnd / 4294967296.0);
	if (now_ms() - started_ms + ms > g->retry_total_ms)
		return -1;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = ms % 1000 * 1000000;
	while (nanosleep(&ts, &ts) == -1)
		;
	return 0;
}

json_object *
gcs_resp_json(const struct gcs_req *r)
{
	if (r->resp == NULL || r->resp_len == 0)
		return NULL;
	return json_tokener_parse(r->resp);
}

const char *
gcs_jstr(json_object *o, const char *key)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The service's own words for an error, into buf. */
static void
service_message(const struct gcs_req *r, char *buf, size_t len)
{
	json_object	*o = gcs_resp_json(r), *e;
	const char	*m = NULL;
	size_t		 i;

	if (o != NULL && json_object_object_get_ex(o, "error", &e))
		m = gcs_jstr(e, "message");
	if (m == NULL && r->resp != NULL)
		m = r->resp;
	snprintf(buf, len, "%.300s", m ? m : "(no message)");
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	json_object_put(o);
}

int
gcs_http_error(const struct gcs *g, const struct gcs_req *r,
    const char *what, const char *bucket, const char *name, const char *perm,
    int attempts, char *err, size_t errlen)
{
	char	target[512], msg[400];
	long	s = r->status;

	snprintf(target, sizeof(target), "gs://%s%s%s", bucket,
	    name ? "/" : "", name ? name : "");
	if (s == 0) {
		snprintf(err, errlen, "gcs: %s %s: %s%s (%d attempt%s to %s); "
		    "check the network, the endpoint and the agent's "
		    "credentials", what, target, r->sink_stop ?
		    "stopped by the receiver: " : "cannot talk to Cloud Storage: ",
		    r->cerr, attempts, attempts == 1 ? "" : "s", g->endpoint);
		return GCS_ERR;
	}
	service_message(r, msg, sizeof(msg));
	switch (s) {
	case 401:
		snprintf(err, errlen, "gcs: %s %s: the access token was refused "
		    "(HTTP 401: %s); check the service account's credentials",
		    what, target, msg);
		return GCS_ERR;
	case 403:
		if (strstr(msg, "Insufficient Permission") != NULL)
			snprintf(err, errlen, "gcs: %s %s: the access token lacks "
			    "a storage scope (HTTP 403: %s); give the VM the "
			    "cloud-platform or devstorage.read_write scope",
			    what, target, msg);
		else
			snprintf(err, errlen, "gcs: %s %s: permission %s denied "
			    "on bucket %s (HTTP 403: %s); grant the agent's "
			    "service account a role with %s on the bucket",
			    what, target, perm, bucket, msg, perm);
		return GCS_ERR;
	case 404:
		if (name == NULL || strcasestr(msg, "bucket") != NULL) {
			snprintf(err, errlen, "gcs: %s %s: bucket %s does not "
			    "exist (HTTP 404: %s); check the bucket name",
			    what, target, bucket, msg);
			return GCS_ENOTFOUND;
		}
		snprintf(err, errlen, "gcs: %s %s: no such object (HTTP 404)",
		    what, target);
		return GCS_ENOTFOUND;
	case 412:
		snprintf(err, errlen, "gcs: %s %s: precondition failed: the "
		    "object exists or was replaced (HTTP 412: %s)", what,
		    target, msg);
		return GCS_EPRECOND;
	}
	if (s == 408 || s == 429 || s >= 500)
		snprintf(err, errlen, "gcs: %s %s: Cloud Storage kept failing "
		    "(HTTP %ld after %d attempt%s: %s); try again later", what,
		    target, s, attempts, attempts == 1 ? "" : "s", msg);
	else
		snprintf(err, errlen, "gcs: %s %s failed: HTTP %ld: %s", what,
		    target, s, msg);
	return GCS_ERR;
}

int
gcs_call(struct gcs *g, struct gcs_req *r, const char *what,
    const char *bucket, const char *name, const char *perm, int *attempts,
    char *err, size_t errlen)
{
	int64_t	started = now_ms();
	int	attempt = 0;

	for (;;) {
		attempt++;
		if (attempts != NULL)
			*attempts = attempt;
		if (gcs_perform(g, r) == 0 && r->status >= 200 &&
		    r->status < 300)
			return GCS_OK;
		if (!gcs_retryable(r) || gcs_backoff(g, attempt, started) != 0)
			break;
		log_debug("gcs: %s gs://%s/%s: retrying after %s (attempt %d)",
		    what, bucket, name ? name : "", r->status ? "an HTTP error" :
		    r->cerr, attempt);
	}
	return gcs_http_error(g, r, what, bucket, name, perm, attempt, err,
	    errlen);
}

