/*
 * test_gcs.c - the Cloud Storage client against tests/fakegcs/server.py:
 * uploads under every fault the fake injects, listing across pages,
 * verified downloads, conditional deletes and the error messages.
 *
 * Each test starts its own fake (fork/exec, dies with the test).  The
 * fake helpers are local on purpose (a generic tests/fake.[ch] is coming).
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gcs.h"
#include "hash.h"

#define KIB	1024
#define MIB	(1024 * 1024)

static pid_t	 fake_pid;
static int	 fake_port;
static char	 fake_dir[64];
static char	 base[64];

static void
fake_start(void)
{
	char	 pf[128], script[512], portarg[8] = "0", *src = getenv("OA_SOURCE_DIR");
	FILE	*f;
	int	 i;

	snprintf(fake_dir, sizeof(fake_dir), "/tmp/gcs-test-XXXXXX");
	cr_assert_not_null(mkdtemp(fake_dir));
	snprintf(pf, sizeof(pf), "%s/port", fake_dir);
	snprintf(script, sizeof(script), "%s/tests/fakegcs/server.py", src ? src : ".");
	fake_pid = fork();
	cr_assert_neq(fake_pid, -1);
	if (fake_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/usr/bin/python3", "python3", "-B", script, "--port", portarg,
		    "--port-file", pf, "--data-dir", fake_dir, "--bucket", "b", (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		f = fopen(pf, "r");
		if (f != NULL && fscanf(f, "%d", &fake_port) == 1) {
			fclose(f);
			snprintf(base, sizeof(base), "http://127.0.0.1:%d", fake_port);
			return;
		}
		if (f != NULL)
			fclose(f);
		usleep(50 * 1000);
	}
	cr_assert_fail("the fake did not start");
}

static void
fake_stop(void)
{
	char cmd[128];

	if (fake_pid > 0) {
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
		fake_pid = 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fake_dir);
	if (fake_dir[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fake_dir);
}

struct buf {
	char	*p;
	size_t	 len;
};

static size_t
buf_add(char *d, size_t s, size_t n, void *arg)
{
	struct buf *b = arg;

	b->p = realloc(b->p, b->len + s * n + 1);
	memcpy(b->p + b->len, d, s * n);
	b->len += s * n;
	b->p[b->len] = '\0';
	return s * n;
}

/* A control API call; returns the parsed JSON answer (caller puts). */
static json_object *
ctl(const char *method, const char *path, const char *body)
{
	CURL		*c = curl_easy_init();
	struct buf	 b = { NULL, 0 };
	char		 url[512];
	long		 st = 0;
	json_object	*o;

	snprintf(url, sizeof(url), "%s/_fake/%s", base, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_add);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK, "%s", url);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	cr_assert(st < 300, "%s: HTTP %ld: %s", url, st, b.p ? b.p : "");
	o = b.p ? json_tokener_parse(b.p) : NULL;
	free(b.p);
	return o;
}

static void
ctl_do(const char *method, const char *path, const char *body)
{
	json_object_put(ctl(method, path, body));
}

static json_object *
jget(json_object *o, const char *key)
{
	json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *
js(json_object *o, const char *key)
{
	json_object *v = jget(o, key);

	return v ? json_object_get_string(v) : NULL;
}

static struct gcs *
client(void)
{
	struct gcs *g = gcs_new(base, NULL, NULL);

	cr_assert_not_null(g);
	g->backoff_base_ms = 5;
	g->backoff_cap_ms = 50;
	g->max_attempts = 6;
	g->retry_total_ms = 20000;
	return g;
}

/* Deterministic pseudo-random bytes (xorshift). */
static unsigned char *
random_data(size_t n, uint32_t seed)
{
	unsigned char	*p = malloc(n);
	uint32_t	 x = seed | 1;
	size_t		 i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
	return p;
}

static void
hashes(const unsigned char *p, size_t n, char crc[9], char md5[25])
{
	struct hash_md5	*h = hash_md5_new();
	unsigned char	 d[16];

	hash_crc32c_b64(hash_crc32c(0, p, n), crc);
	hash_md5_update(h, p, n);
	hash_md5_peek(h, d);
	hash_md5_b64(d, md5);
	hash_md5_free(h);
}

/* Upload n bytes in uneven writes; returns the gcs result. */
static int
upload(struct gcs *g, const char *bucket, const char *name, const unsigned char *p,
    size_t n, struct gcs_object **info, char *err, size_t errlen)
{
	struct gcs_upload	*up;
	size_t			 off = 0, step;
	int			 rv;

	rv = gcs_upload_begin(g, bucket, name, "application/octet-stream",
	    (const char *[]){ "backup-kind", "base", "lsn", "0/16B3748", NULL },
	    256 * KIB, &up, err, errlen);
	if (rv != GCS_OK)
		return rv;
	while (off < n) {
		step = 100003 < n - off ? 100003 : n - off;
		rv = gcs_upload_write(up, p + off, step, err, errlen);
		if (rv != GCS_OK) {
			gcs_upload_abort(up);
			return rv;
		}
		off += step;
	}
	return gcs_upload_finish(up, info, err, errlen);
}

/* The fake's own record of the object matches the data. */
static void
assert_stored(const char *bucket, const char *name, const unsigned char *p, size_t n)
{
	char		 crc[9], md5[25], path[256], sz[32];
	json_object	*o, *items, *it;
	size_t		 i;
	int		 found = 0;

	hashes(p, n, crc, md5);
	snprintf(path, sizeof(path), "objects/%s", bucket);
	o = ctl("GET", path, NULL);
	items = jget(o, "items");
	for (i = 0; items && i < json_object_array_length(items); i++) {
		it = json_object_array_get_idx(items, i);
		if (strcmp(js(it, "name"), name) != 0)
			continue;
		found = 1;
		snprintf(sz, sizeof(sz), "%zu", n);
		cr_assert_str_eq(json_object_to_json_string(jget(it, "size")), sz);
		cr_assert_str_eq(js(it, "crc32c"), crc);
		cr_assert_str_eq(js(it, "md5Hash"), md5);
	}
	cr_assert(found, "%s not stored", name);
	json_object_put(o);
}

/* No request carried Expect; non-final chunks are 256 KiB multiples. */
static void
assert_chunks_clean(void)
{
	json_object	*o = ctl("GET", "log?op=upload_chunk", NULL), *e, *h;
	const char	*cr;
	long long	 a, b;
	size_t		 i, n;

	e = jget(o, "entries");
	n = e ? json_object_array_length(e) : 0;
	cr_assert(n > 1);
	for (i = 0; i < n; i++) {
		h = jget(json_object_array_get_idx(e, i), "headers");
		cr_assert_null(jget(h, "Expect"), "Expect sent");
		cr = js(h, "Content-Range");
		cr_assert_not_null(cr);
		if (sscanf(cr, "bytes %lld-%lld/*", &a, &b) == 2 &&
		    strchr(cr, '*') != NULL)
			cr_assert_eq((b - a + 1) % (256 * KIB), 0, "%s", cr);
	}
	json_object_put(o);
}

TestSuite(gcs, .init = fake_start, .fini = fake_stop, .timeout = 60);

Test(gcs, upload_happy_path)
{
	size_t			 n = 3 * MIB + 12345;
	unsigned char		*p = random_data(n, 1);
	struct gcs		*g = client();
	struct gcs_object	*info = NULL;
	char			 err[1024], crc[9], md5[25];

	cr_assert_eq(upload(g, "b", "dir/base.tar", p, n, &info, err, sizeof(err)), GCS_OK,
	    "%s", err);
	hashes(p, n, crc, md5);
	cr_assert_eq(info->size, (int64_t)n);
	cr_assert_str_eq(info->crc32c, crc);
	cr_assert_str_eq(info->md5, md5);
	cr_assert_str_eq(gcs_object_meta(info, "lsn"), "0/16B3748");
	cr_assert_gt(info->generation, 0);
	assert_stored("b", "dir/base.tar", p, n);
	assert_chunks_clean();
	gcs_object_free(info);

	/* ifGenerationMatch=0: the same name again is refused. */
	cr_assert_eq(upload(g, "b", "dir/base.tar", p, 1000, NULL, err, sizeof(err)),
	    GCS_EPRECOND);
	cr_assert(strstr(err, "already exists") != NULL, "%s", err);
	gcs_free(g);
	free(p);
}

Test(gcs, upload_small_and_empty)
{
	unsigned char	*p = random_data(256 * KIB, 2);
	struct gcs	*g = client();
	char		 err[1024];

	cr_assert_eq(upload(g, "b", "small", p, 1000, NULL, err, sizeof(err)), GCS_OK, "%s", err);
	assert_stored("b", "small", p, 1000);
	cr_assert_eq(upload(g, "b", "empty", p, 0, NULL, err, sizeof(err)), GCS_OK, "%s", err);
	assert_stored("b", "empty", p, 0);
	/* Exactly one chunk: the final request carries no data. */
	cr_assert_eq(upload(g, "b", "one", p, 256 * KIB, NULL, err, sizeof(err)), GCS_OK,
	    "%s", err);
	assert_stored("b", "one", p, 256 * KIB);
	gcs_free(g);
	free(p);
}

/* A multi-chunk upload with fault queued still stores the right object. */
static void
upload_with_fault(const char *fault, int stall)
{
	size_t		 n = 2 * MIB + 777;
	unsigned char	*p = random_data(n, 3);
	struct gcs	*g = client();
	json_object	*f, *fired;
	char		 err[1024];

	if (stall) {
		g->low_speed_limit = 1;
		g->low_speed_time = 1;
	}
	ctl_do("POST", "faults", fault);
	cr_assert_eq(upload(g, "b", "obj", p, n, NULL, err, sizeof(err)), GCS_OK,
	    "%s: %s", fault, err);
	assert_stored("b", "obj", p, n);
	f = ctl("GET", "faults", NULL);
	fired = jget(f, "fired");
	cr_assert(fired && json_object_array_length(fired) > 0, "%s did not fire", fault);
	json_object_put(f);
	assert_chunks_clean();
	gcs_free(g);
	free(p);
}

Test(gcs, fault_503)
{
	upload_with_fault("[{\"op\":\"upload_chunk\",\"kind\":\"503\",\"skip\":2,\"count\":2},"
	    "{\"op\":\"upload_init\",\"kind\":\"503\"}]", 0);
}

Test(gcs, fault_429_and_status_query)
{
	upload_with_fault("[{\"op\":\"upload_chunk\",\"kind\":\"429\",\"skip\":1},"
	    "{\"op\":\"status_query\",\"kind\":\"500\"}]", 0);
}

Test(gcs, fault_partial_308)
{
	upload_with_fault("[{\"op\":\"upload_chunk\",\"kind\":\"partial\",\"respond\":\"308\",\"skip\":1},"
	    "{\"op\":\"upload_chunk\",\"kind\":\"partial\",\"respond\":\"308\",\"skip\":2}]", 0);
}

Test(gcs, fault_partial_503)
{
	upload_with_fault("{\"op\":\"upload_chunk\",\"kind\":\"partial\",\"respond\":\"503\",\"skip\":3}", 0);
}

Test(gcs, fault_drop_after_persist)
{
	upload_with_fault("{\"op\":\"upload_chunk\",\"kind\":\"drop_after_persist\",\"skip\":2}", 0);
}

Test(gcs, fault_drop_after_persist_final)
{
	/* 2 MiB + 777 = 8 full chunks, then the final request (the 9th). */
	upload_with_fault("{\"op\":\"upload_chunk\",\"kind\":\"drop_after_persist\",\"skip\":8}", 0);
}

Test(gcs, fault_drop_before_persist)
{
	upload_with_fault("[{\"op\":\"upload_chunk\",\"kind\":\"drop_before_persist\",\"skip\":1},"
	    "{\"op\":\"upload_chunk\",\"kind\":\"drop_before_persist\",\"skip\":7}]", 0);
}

Test(gcs, fault_stall)
{
	upload_with_fault("{\"op\":\"upload_chunk\",\"kind\":\"stall\",\"seconds\":3,\"skip\":2}", 1);
}

Test(gcs, fault_expire_session)
{
	size_t		 n = 2 * MIB;
	unsigned char	*p = random_data(n, 4);
	struct gcs	*g = client();
	char		 err[1024];

	ctl_do("POST", "faults", "{\"op\":\"upload_chunk\",\"kind\":\"expire_session\",\"skip\":2}");
	cr_assert_eq(upload(g, "b", "obj", p, n, NULL, err, sizeof(err)), GCS_ERESTART);
	cr_assert(strstr(err, "gcs: upload gs://b/obj: the upload session is gone") != NULL,
	    "%s", err);
	cr_assert(strstr(err, "run the upload again") != NULL, "%s", err);
	gcs_free(g);
	free(p);
}

Test(gcs, upload_bad_hash_in_answer_is_caught)
{
	size_t		 n = 600 * KIB;
	unsigned char	*p = random_data(n, 5);
	struct gcs	*g = client();
	char		 err[1024];

	ctl_do("POST", "faults", "{\"op\":\"upload_chunk\",\"kind\":\"bad_hash\",\"skip\":2}");
	cr_assert_eq(upload(g, "b", "obj", p, n, NULL, err, sizeof(err)), GCS_ERR);
	cr_assert(strstr(err, "cannot be trusted") != NULL, "%s", err);
	gcs_free(g);
	free(p);
}

Test(gcs, denied_and_missing_buckets)
{
	struct gcs	*g = client();
	char		 err[1024];
	uint64_t	 mask;

	ctl_do("POST", "config", "{\"buckets\":{\"ro\":{\"deny\":[\"storage.objects.create\"]}}}");
	cr_assert_eq(upload(g, "ro", "x", (const unsigned char *)"", 0, NULL, err,
	    sizeof(err)), GCS_ERR);
	cr_assert(strstr(err, "permission storage.objects.create denied on bucket ro") !=
	    NULL, "%s", err);
	cr_assert(strncmp(err, "gcs: ", 5) == 0);

	cr_assert_eq(upload(g, "nosuch", "x", (const unsigned char *)"", 0, NULL, err,
	    sizeof(err)), GCS_ENOTFOUND);
	cr_assert(strstr(err, "bucket nosuch does not exist") != NULL, "%s", err);

	cr_assert_eq(gcs_test_permissions(g, "ro", (const char *[]){ "storage.objects.create",
	    "storage.objects.list", "storage.objects.delete" }, 3, &mask, err, sizeof(err)),
	    GCS_OK, "%s", err);
	cr_assert_eq(mask, 6);
	gcs_free(g);
}

Test(gcs, unreachable_endpoint)
{
	struct gcs		*g = gcs_new("127.0.0.1:1", NULL, NULL);
	struct gcs_object	*info;
	char			 err[1024];

	g->backoff_base_ms = 5;
	g->max_attempts = 2;
	cr_assert_eq(gcs_stat(g, "b", "x", &info, err, sizeof(err)), GCS_ERR);
	cr_assert(strstr(err, "cannot talk to Cloud Storage") != NULL, "%s", err);
	cr_assert(strstr(err, "http://127.0.0.1:1") != NULL, "%s", err);
	cr_assert(strstr(err, "2 attempts") != NULL, "%s", err);
	gcs_free(g);
}

struct listed {
	int	 n;
	int	 with_meta;
	int64_t	 total;
};

static int
count_cb(void *arg, const struct gcs_object *o)
{
	struct listed *l = arg;

	l->n++;
	l->total += o->size;
	if (gcs_object_meta(o, "k") != NULL && strcmp(gcs_object_meta(o, "k"), "v") == 0)
		l->with_meta++;
	cr_assert_neq(o->crc32c[0], '\0');
	cr_assert_neq(o->md5[0], '\0');
	cr_assert_gt(o->generation, 0);
	cr_assert_neq(o->time_created[0], '\0');
	return 0;
}

Test(gcs, list_across_pages)
{
	struct gcs	*g = client();
	struct listed	 l = { 0, 0, 0 };
	char		 err[1024], path[128];
	json_object	*o, *e;
	int		 i;

	for (i = 0; i < 7; i++) {
		snprintf(path, sizeof(path), "object/b/wal/%03d?metadata=%%7B%%22k%%22:%%22v%%22%%7D", i);
		ctl_do("POST", path, "0123456789");
	}
	ctl_do("POST", "object/b/other", "x");
	g->page_size = 3;
	ctl_do("DELETE", "log", NULL);
	cr_assert_eq(gcs_list(g, "b", "wal/", count_cb, &l, err, sizeof(err)), GCS_OK, "%s", err);
	cr_assert_eq(l.n, 7);
	cr_assert_eq(l.with_meta, 7);
	cr_assert_eq(l.total, 70);
	o = ctl("GET", "log?op=list", NULL);
	e = jget(o, "entries");
	cr_assert_eq(json_object_array_length(e), 3);
	json_object_put(o);
	memset(&l, 0, sizeof(l));
	cr_assert_eq(gcs_list(g, "b", NULL, count_cb, &l, err, sizeof(err)), GCS_OK, "%s", err);
	cr_assert_eq(l.n, 8);
	cr_assert_eq(gcs_list(g, "nosuch", NULL, count_cb, &l, err, sizeof(err)), GCS_ENOTFOUND);
	gcs_free(g);
}

struct sink {
	unsigned char	*p;
	size_t		 len;
};

static int
sink_cb(void *arg, const void *buf, size_t len)
{
	struct sink *s = arg;

	s->p = realloc(s->p, s->len + len);
	memcpy(s->p + s->len, buf, len);
	s->len += len;
	return 0;
}

/* Replaces the object under the download on its first bytes. */
static int
replace_cb(void *arg, const void *buf, size_t len)
{
	struct sink *s = arg;

	if (s->len == 0)
		ctl_do("POST", "object/b/f", "new content");
	return sink_cb(arg, buf, len);
}

static int
download(struct gcs *g, const char *name, struct sink *s, char *err, size_t errlen)
{
	free(s->p);
	s->p = NULL;
	s->len = 0;
	return gcs_download(g, "b", name, 0, sink_cb, s, NULL, err, errlen);
}

Test(gcs, download_verifies)
{
	size_t			 n = MIB + 3;
	unsigned char		*p = random_data(n, 6);
	struct gcs		*g = client();
	struct gcs_object	*info = NULL;
	struct sink		 s = { NULL, 0 };
	char			 err[1024];
	json_object		*o;

	cr_assert_eq(upload(g, "b", "f", p, n, NULL, err, sizeof(err)), GCS_OK, "%s", err);
	cr_assert_eq(gcs_download(g, "b", "f", 0, sink_cb, &s, &info, err, sizeof(err)),
	    GCS_OK, "%s", err);
	cr_assert_eq(s.len, n);
	cr_assert_eq(memcmp(s.p, p, n), 0);
	cr_assert_eq(info->size, (int64_t)n);

	ctl_do("POST", "faults", "{\"op\":\"download\",\"kind\":\"corrupt\"}");
	cr_assert_eq(download(g, "f", &s, err, sizeof(err)), GCS_ERR);
	cr_assert(strstr(err, "CRC32C of the data") != NULL, "%s", err);

	ctl_do("POST", "faults", "{\"op\":\"download\",\"kind\":\"bad_hash\"}");
	cr_assert_eq(download(g, "f", &s, err, sizeof(err)), GCS_ERR);
	cr_assert(strstr(err, "corrupted") != NULL, "%s", err);

	/* A cut transfer resumes with a Range, pinned to the generation. */
	ctl_do("DELETE", "log", NULL);
	ctl_do("POST", "faults", "{\"op\":\"download\",\"kind\":\"truncate\"}");
	cr_assert_eq(download(g, "f", &s, err, sizeof(err)), GCS_OK, "%s", err);
	cr_assert_eq(s.len, n);
	cr_assert_eq(memcmp(s.p, p, n), 0);
	o = ctl("GET", "log?op=download", NULL);
	cr_assert_eq(json_object_array_length(jget(o, "entries")), 2);
	cr_assert_not_null(jget(jget(json_object_array_get_idx(jget(o, "entries"), 1),
	    "headers"), "Range"));
	cr_assert(strstr(js(json_object_array_get_idx(jget(o, "entries"), 1), "query"),
	    "ifGenerationMatch=") != NULL);
	json_object_put(o);

	/* Replaced between the cut and the resume: detected, not spliced. */
	ctl_do("POST", "faults", "{\"op\":\"download\",\"kind\":\"truncate\"}");
	free(s.p);
	s.p = NULL;
	s.len = 0;
	cr_assert_eq(gcs_download(g, "b", "f", 0, replace_cb, &s, NULL, err, sizeof(err)),
	    GCS_EPRECOND);
	cr_assert(strstr(err, "replaced during the download") != NULL, "%s", err);
	cr_assert_eq(download(g, "nothere", &s, err, sizeof(err)), GCS_ENOTFOUND);
	cr_assert(strstr(err, "no such object") != NULL, "%s", err);
	gcs_object_free(info);
	free(s.p);
	gcs_free(g);
	free(p);
}

Test(gcs, delete_with_generation)
{
	struct gcs		*g = client();
	struct gcs_object	*info = NULL;
	char			 err[1024];

	cr_assert_eq(upload(g, "b", "d/x", (const unsigned char *)"hello", 5, &info, err,
	    sizeof(err)), GCS_OK, "%s", err);
	cr_assert_eq(gcs_delete(g, "b", "d/x", info->generation + 1, err, sizeof(err)),
	    GCS_EPRECOND);
	cr_assert(strstr(err, "object replaced; not deleted") != NULL, "%s", err);
	cr_assert_eq(gcs_delete(g, "b", "d/x", info->generation, err, sizeof(err)), GCS_OK,
	    "%s", err);
	gcs_object_free(info);
	info = NULL;
	cr_assert_eq(gcs_stat(g, "b", "d/x", &info, err, sizeof(err)), GCS_ENOTFOUND);
	cr_assert_null(info);
	gcs_free(g);
}

static int
token_cb(void *arg, const char **token, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	*token = arg;
	return 0;
}

Test(gcs, bearer_token_sent_never_to_session_uris)
{
	json_object	*t, *o, *e, *it;
	struct gcs	*g;
	char		 err[1024], tok[256];
	unsigned char	*p = random_data(600 * KIB, 7);
	size_t		 i;

	ctl_do("POST", "config", "{\"auth\":true}");
	t = ctl("POST", "token", "{\"principal\":\"sa@p.iam.gserviceaccount.com\","
	    "\"scopes\":[\"https://www.googleapis.com/auth/devstorage.read_write\"]}");
	snprintf(tok, sizeof(tok), "%s", js(t, "access_token"));
	json_object_put(t);
	g = gcs_new(base, token_cb, tok);
	cr_assert_eq(upload(g, "b", "authed", p, 600 * KIB, NULL, err, sizeof(err)), GCS_OK,
	    "%s", err);
	o = ctl("GET", "log", NULL);
	e = jget(o, "entries");
	for (i = 0; i < json_object_array_length(e); i++) {
		it = json_object_array_get_idx(e, i);
		cr_assert_eq(json_object_get_boolean(jget(it, "authorization")),
		    strcmp(js(it, "op"), "upload_init") == 0, "%s", js(it, "op"));
	}
	json_object_put(o);
	/* A refused token: a clear 401, and the token is never echoed. */
	gcs_free(g);
	g = gcs_new(base, token_cb, "ya29.not-a-real-token");
	cr_assert_eq(gcs_upload_begin(g, "b", "x", NULL, NULL, 256 * KIB,
	    &(struct gcs_upload *){ NULL }, err, sizeof(err)), GCS_ERR);
	cr_assert(strstr(err, "access token was refused") != NULL, "%s", err);
	cr_assert(strstr(err, "ya29.not-a-real") == NULL, "%s", err);
	gcs_free(g);
	free(p);
}
