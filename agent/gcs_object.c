/*
 * gcs_object.c - object resources and the operations on existing objects:
 * list, stat, download, delete, and testIamPermissions on a bucket.
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

/* Copy of string member key, "" when absent (caller frees); NULL: no memory. */
static char *
jdup(json_object *o, const char *key)
{
	const char *s = gcs_jstr(o, key);

	return strdup(s ? s : "");
}

struct gcs_object *
gcs_object_parse(json_object *o)
{
	struct gcs_object	*obj;
	json_object		*m;
	const char		*s;

	if (o == NULL || !json_object_is_type(o, json_type_object))
		return NULL;
	obj = calloc(1, sizeof(*obj));
	if (obj == NULL)
		return NULL;
	obj->bucket = jdup(o, "bucket");
	obj->name = jdup(o, "name");
	obj->content_type = jdup(o, "contentType");
	obj->time_created = jdup(o, "timeCreated");
	/* int64 fields are strings in the JSON API. */
	s = gcs_jstr(o, "size");
	obj->size = s ? strtoll(s, NULL, 10) : -1;
	s = gcs_jstr(o, "generation");
	obj->generation = s ? strtoll(s, NULL, 10) : 0;
	snprintf(obj->crc32c, sizeof(obj->crc32c), "%s",
	    gcs_jstr(o, "crc32c") ? gcs_jstr(o, "crc32c") : "");
	snprintf(obj->md5, sizeof(obj->md5), "%s",
	    gcs_jstr(o, "md5Hash") ? gcs_jstr(o, "md5Hash") : "");
	if (json_object_object_get_ex(o, "metadata", &m) &&
	    json_object_is_type(m, json_type_object))
		obj->metadata = json_object_get(m);
	if (obj->bucket == NULL || obj->name == NULL ||
	    obj->content_type == NULL || obj->time_created == NULL) {
		gcs_object_free(obj);
		return NULL;
	}
	return obj;
}

const char *
gcs_object_meta(const struct gcs_object *obj, const char *key)
{
	return gcs_jstr(obj->metadata, key);
}

void
gcs_object_free(struct gcs_object *obj)
{
	if (obj == NULL)
		return;
	free(obj->bucket);
	free(obj->name);
	free(obj->content_type);
	free(obj->time_created);
	json_object_put(obj->metadata);
	free(obj);
}

/* endpoint/storage/v1/b/BUCKET/o/NAME (NAME NULL: .../o); caller frees. */
static char *
object_url(struct gcs *g, const char *bucket, const char *name,
    const char *query)
{
	char	*b = gcs_escape(g, bucket), *n = NULL, *url = NULL;

	if (name != NULL)
		n = gcs_escape(g, name);
	if (b == NULL || (name != NULL && n == NULL))
		goto out;
	if (asprintf(&url, "%s/storage/v1/b/%s/o%s%s%s%s", g->endpoint, b,
	    n ? "/" : "", n ? n : "", query ? "?" : "", query ? query : "") ==
	    -1)
		url = NULL;
out:
	free(b);
	free(n);
	return url;
}

int
gcs_list(struct gcs *g, const char *bucket, const char *prefix,
    gcs_list_cb cb, void *arg, char *err, size_t errlen)
{
	struct gcs_req		 r = { .method = "GET" };
	struct gcs_object	*obj;
	json_object		*o = NULL, *items;
	char			*url = NULL, *q = NULL, *pfx = NULL, *tok = NULL;
	const char		*next;
	size_t			 i, n;
	int			 rv = GCS_ERR;

	pfx = gcs_escape(g, prefix ? prefix : "");
	if (pfx == NULL)
		goto nomem;
	for (;;) {
		free(q);
		free(url);
		url = NULL;
		if (asprintf(&q, "prefix=%s&maxResults=%d%s%s", pfx,
		    g->page_size > 0 ? g->page_size : 1000, tok ? "&pageToken=" :
		    "", tok ? tok : "") == -1) {
			q = NULL;
			goto nomem;
		}
		url = object_url(g, bucket, NULL, q);
		if (url == NULL)
			goto nomem;
		r.url = url;
		rv = gcs_call(g, &r, "list", bucket, NULL,
		    "storage.objects.list", NULL, err, errlen);
		if (rv != GCS_OK)
			goto out;
		json_object_put(o);
		o = gcs_resp_json(&r);
		if (o == NULL) {
			snprintf(err, errlen, "gcs: list gs://%s: the answer is "
			    "not JSON", bucket);
			rv = GCS_ERR;
			goto out;
		}
		n = json_object_object_get_ex(o, "items", &items) ?
		    json_object_array_length(items) : 0;
		for (i = 0; i < n; i++) {
			obj = gcs_object_parse(json_object_array_get_idx(items,
			    i));
			if (obj == NULL)
				goto nomem;
			rv = cb(arg, obj);
			gcs_object_free(obj);
			if (rv != 0)
				goto out;
		}
		next = gcs_jstr(o, "nextPageToken");
		if (next == NULL || *next == '\0')
			break;
		free(tok);
		tok = gcs_escape(g, next);
		if (tok == NULL)
			goto nomem;
	}
	rv = GCS_OK;
	goto out;
nomem:
	snprintf(err, errlen, "gcs: list gs://%s: out of memory", bucket);
	rv = GCS_ERR;
out:
	json_object_put(o);
	gcs_req_reset(&r);
	free(url);
	free(q);
	free(pfx);
	free(tok);
	return rv;
}

/* The resource of name (generation 0: the live one). */
static int
stat_gen(struct gcs *g, const char *bucket, const char *name, int64_t gen,
    struct gcs_object **info, char *err, size_t errlen)
{
	struct gcs_req	 r = { .method = "GET" };
	json_object	*o = NULL;
	char		*url, q[64];
	int		 rv;

	*info = NULL;
	snprintf(q, sizeof(q), "generation=%" PRId64, gen);
	url = object_url(g, bucket, name, gen ? q : NULL);
	if (url == NULL) {
		snprintf(err, errlen, "gcs: out of memory");
		return GCS_ERR;
	}
	r.url = url;
	rv = gcs_call(g, &r, "stat", bucket, name, "storage.objects.get",
	    NULL, err, errlen);
	if (rv != GCS_OK)
		goto out;
	o = gcs_resp_json(&r);
	*info = gcs_object_parse(o);
	if (*info == NULL) {
		snprintf(err, errlen, "gcs: stat gs://%s/%s: the answer is not "
		    "an object resource", bucket, name);
		rv = GCS_ERR;
	}
out:
	json_object_put(o);
	gcs_req_reset(&r);
	free(url);
	return rv;
}

int
gcs_stat(struct gcs *g, const char *bucket, const char *name,
    struct gcs_object **info, char *err, size_t errlen)
{
	return stat_gen(g, bucket, name, 0, info, err, errlen);
}

struct dl {
	struct gcs_req	*req;
	gcs_write_fn	 fn;
	void		*arg;
	int64_t		 got;		/* bytes passed to fn */
	int64_t		 skip;		/* a 200 to a Range request: resent */
	uint32_t	 crc;
	struct hash_md5	*md5;
};

static int
dl_sink(void *arg, const void *buf, size_t len)
{
	struct dl		*d = arg;
	const unsigned char	*p = buf;
	size_t			 n;

	if (d->req->status == 200 && d->skip > 0) {
		n = (int64_t)len < d->skip ? len : (size_t)d->skip;
		d->skip -= (int64_t)n;
		p += n;
		len -= n;
	}
	if (len == 0)
		return 0;
	d->crc = hash_crc32c(d->crc, p, len);
	hash_md5_update(d->md5, p, len);
	d->got += (int64_t)len;
	return d->fn(d->arg, p, len);
}

/* Compare the computed hashes with what Cloud Storage stated. */
static int
dl_verify(const struct dl *d, const struct gcs_object *obj,
    const char *want_crc, const char *want_md5, char *err, size_t errlen)
{
	unsigned char	md5[16];
	char		crc_b64[9], md5_b64[25];

	if (d->got != obj->size) {
		snprintf(err, errlen, "gcs: download gs://%s/%s: got %" PRId64
		    " bytes but the object has %" PRId64 "; download it again",
		    obj->bucket, obj->name, d->got, obj->size);
		return GCS_ERR;
	}
	hash_crc32c_b64(d->crc, crc_b64);
	hash_md5_peek(d->md5, md5);
	hash_md5_b64(md5, md5_b64);
	if (*want_crc != '\0' && strcmp(crc_b64, want_crc) != 0) {
		snprintf(err, errlen, "gcs: download gs://%s/%s: CRC32C of the "
		    "data is %s but Cloud Storage says %s: corrupted in transit "
		    "or at rest; download it again", obj->bucket, obj->name,
		    crc_b64, want_crc);
		return GCS_ERR;
	}
	if (*want_md5 != '\0' && strcmp(md5_b64, want_md5) != 0) {
		snprintf(err, errlen, "gcs: download gs://%s/%s: MD5 of the "
		    "data is %s but Cloud Storage says %s: corrupted in transit "
		    "or at rest; download it again", obj->bucket, obj->name,
		    md5_b64, want_md5);
		return GCS_ERR;
	}
	return GCS_OK;
}

int
gcs_download(struct gcs *g, const char *bucket, const char *name,
    int64_t generation, gcs_write_fn fn, void *arg,
    struct gcs_object **info, char *err, size_t errlen)
{
	struct gcs_req		 r = { .method = "GET" };
	struct gcs_object	*obj = NULL;
	struct dl		 d = { .req = &r, .fn = fn, .arg = arg };
	char			 q[96], range[64], want_crc[16] = "",
				 want_md5[32] = "";
	char			*url = NULL;
	int64_t			 started, before;
	int			 rv, attempt = 0;

	if (info != NULL)
		*info = NULL;
	rv = stat_gen(g, bucket, name, generation, &obj, err, errlen);
	if (rv != GCS_OK)
		goto out;
	/* Pinned, so resuming never splices two versions together. */
	if (generation != 0)
		snprintf(q, sizeof(q), "alt=media&generation=%" PRId64,
		    generation);
	else
		snprintf(q, sizeof(q), "alt=media&ifGenerationMatch=%" PRId64,
		    obj->generation);
	url = object_url(g, bucket, name, q);
	d.md5 = hash_md5_new();
	if (url == NULL) {
		snprintf(err, errlen, "gcs: out of memory");
		rv = GCS_ERR;
		goto out;
	}
	r.url = url;
	r.sink = dl_sink;
	r.sink_arg = &d;
	started = now_ms();
	for (;;) {
		attempt++;
		before = d.got;
		d.skip = d.got;
		r.extra[0] = NULL;
		if (d.got > 0) {
			snprintf(range, sizeof(range), "Range: bytes=%" PRId64
			    "-", d.got);
			r.extra[0] = range;
		}
		if (gcs_perform(g, &r) == 0 && (r.status == 200 ||
		    r.status == 206))
			break;
		/* Every answer states the whole object's hashes. */
		if (r.hash_crc[0] != '\0')
			memcpy(want_crc, r.hash_crc, sizeof(want_crc));
		if (r.hash_md5[0] != '\0')
			memcpy(want_md5, r.hash_md5, sizeof(want_md5));
		if (r.status == 412) {
			snprintf(err, errlen, "gcs: download gs://%s/%s: the "
			    "object was replaced during the download "
			    "(generation %" PRId64 " is gone); download it "
			    "again", bucket, name, obj->generation);
			rv = GCS_EPRECOND;
			goto out;
		}
		if (r.status == 416 && d.got == obj->size)
			break;	/* the last answer was lost, not the data */
		if (d.got > before)
			attempt = 1;	/* progress: a fresh budget */
		if (!gcs_retryable(&r) || gcs_backoff(g, attempt, started) !=
		    0) {
			rv = gcs_http_error(g, &r, "download", bucket, name,
			    "storage.objects.get", attempt, err, errlen);
			goto out;
		}
		log_debug("gcs: download gs://%s/%s: resuming at byte %" PRId64
		    " after %s", bucket, name, d.got, r.status ?
		    "an HTTP error" : r.cerr);
	}
	if (r.hash_crc[0] != '\0')
		memcpy(want_crc, r.hash_crc, sizeof(want_crc));
	if (r.hash_md5[0] != '\0')
		memcpy(want_md5, r.hash_md5, sizeof(want_md5));
	if (want_crc[0] == '\0' && want_md5[0] == '\0') {
		memcpy(want_crc, obj->crc32c, sizeof(want_crc));
		memcpy(want_md5, obj->md5, sizeof(want_md5));
	}
	rv = dl_verify(&d, obj, want_crc, want_md5, err, errlen);
out:
	if (rv == GCS_OK && info != NULL) {
		*info = obj;
		obj = NULL;
	}
	gcs_object_free(obj);
	hash_md5_free(d.md5);
	gcs_req_reset(&r);
	free(url);
	return rv;
}

int
gcs_delete(struct gcs *g, const char *bucket, const char *name,
    int64_t generation, char *err, size_t errlen)
{
	struct gcs_req	 r = { .method = "DELETE" };
	char		 q[64], *url;
	int		 rv, attempts = 0;

	snprintf(q, sizeof(q), "ifGenerationMatch=%" PRId64, generation);
	url = object_url(g, bucket, name, generation ? q : NULL);
	if (url == NULL) {
		snprintf(err, errlen, "gcs: out of memory");
		return GCS_ERR;
	}
	r.url = url;
	rv = gcs_call(g, &r, "delete", bucket, name, "storage.objects.delete",
	    &attempts, err, errlen);
	/* A retry after a lost answer finds the object already gone. */
	if (rv == GCS_ENOTFOUND && attempts > 1 && r.status == 404)
		rv = GCS_OK;
	if (rv == GCS_EPRECOND)
		snprintf(err, errlen, "gcs: delete gs://%s/%s: object replaced; "
		    "not deleted (its generation is no longer %" PRId64 ")",
		    bucket, name, generation);
	gcs_req_reset(&r);
	free(url);
	return rv;
}

int
gcs_test_permissions(struct gcs *g, const char *bucket,
    const char *const *perms, size_t n, uint64_t *granted, char *err,
    size_t errlen)
{
	struct gcs_req	 r = { .method = "GET" };
	json_object	*o = NULL, *arr;
	char		*url = NULL, *b = NULL, *p, *nu;
	const char	*s;
	size_t		 i, j, m;
	int		 rv = GCS_ERR;

	*granted = 0;
	if (n == 0 || n > 64) {
		snprintf(err, errlen, "gcs: permission check: %zu permissions "
		    "(1 to 64 allowed)", n);
		return GCS_ERR;
	}
	b = gcs_escape(g, bucket);
	if (b == NULL || asprintf(&url, "%s/storage/v1/b/%s/iam/"
	    "testPermissions?", g->endpoint, b) == -1)
		goto nomem;
	for (i = 0; i < n; i++) {
		p = gcs_escape(g, perms[i]);
		if (p == NULL || asprintf(&nu, "%s%spermissions=%s", url,
		    i ? "&" : "", p) == -1) {
			free(p);
			goto nomem;
		}
		free(p);
		free(url);
		url = nu;
	}
	r.url = url;
	rv = gcs_call(g, &r, "permission check on", bucket, NULL,
	    "storage.buckets.getIamPolicy", NULL, err, errlen);
	if (rv != GCS_OK)
		goto out;
	o = gcs_resp_json(&r);
	m = o != NULL && json_object_object_get_ex(o, "permissions", &arr) ?
	    json_object_array_length(arr) : 0;
	for (j = 0; j < m; j++) {
		s = json_object_get_string(json_object_array_get_idx(arr, j));
		for (i = 0; s != NULL && i < n; i++)
			if (strcmp(s, perms[i]) == 0)
				*granted |= (uint64_t)1 << i;
	}
	goto out;
nomem:
	snprintf(err, errlen, "gcs: out of memory");
	rv = GCS_ERR;
out:
	json_object_put(o);
	gcs_req_reset(&r);
	free(url);
	free(b);
	return rv;
}

int
gcs_patch_metadata(struct gcs *g, const char *bucket, const char *name,
    int64_t generation, const char *const *meta, char *err, size_t errlen)
{
	struct gcs_req	 r = { .method = "PATCH" };
	json_object	*body = NULL, *md;
	const char	*text;
	char		*url, q[64];
	int		 rv, i;

	md = json_object_new_object();
	for (i = 0; meta != NULL && meta[i] != NULL && meta[i + 1] != NULL;
	    i += 2)
		json_object_object_add(md, meta[i],
		    json_object_new_string(meta[i + 1]));
	body = json_object_new_object();
	json_object_object_add(body, "metadata", md);
	text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	snprintf(q, sizeof(q), "ifGenerationMatch=%" PRId64, generation);
	url = object_url(g, bucket, name, generation ? q : NULL);
	if (url == NULL) {
		snprintf(err, errlen, "gcs: out of memory");
		json_object_put(body);
		return GCS_ERR;
	}
	r.url = url;
	r.ctype = "application/json";
	r.body = text;
	r.body_len = strlen(text);
	rv = gcs_call(g, &r, "patch", bucket, name, "storage.objects.update",
	    NULL, err, errlen);
	gcs_req_reset(&r);
	free(url);
	json_object_put(body);
	return rv;
}
