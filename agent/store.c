/*
 * store.c - backup storage: a directory or a Cloud Storage bucket.
 *
 * A directory writes NAME.partial and renames it once fsynced, so a crash
 * or a failed dump never leaves something that looks like a backup.  A
 * bucket gets a resumable upload created with ifGenerationMatch=0 (a
 * retried run never overwrites), whose checksums the service verifies.
 * Either way the record NAME.json is written last and removed first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cfg.h"
#include "gcs.h"
#include "log.h"
#include "store.h"

enum { STORE_FILE, STORE_GCS };

struct store {
	int		 kind;
	char		 target[1024];
	char		 dir[2048];		/* file */
	char		 bucket[256];		/* gcs */
	char		 prefix[768];		/* gcs, no trailing '/' */
	size_t		 chunk;
	struct auth	*auth;
	struct gcs	*gcs;
};

struct store_writer {
	struct store		*st;
	char			 name[600];
	int			 fd;
	char			 partial[2700], final[2700];
	struct gcs_upload	*up;
};

/* gcs_token_fn over auth_token. */
static int
token(void *arg, const char **tok, char *err, size_t errlen)
{
	return auth_token(arg, tok, err, errlen);
}

/* mkdir -p with private permissions. */
int
store_mkdirs(const char *path)
{
	char	buf[2700], *p;

	snprintf(buf, sizeof(buf), "%.2690s", path);
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

static void
full_name(const struct store *st, const char *name, char *out, size_t len)
{
	if (st->prefix[0] != '\0')
		snprintf(out, len, "%s/%s", st->prefix, name);
	else
		snprintf(out, len, "%s", name);
}

struct store *
store_open(const struct cfg *cfg, char *err, size_t errlen)
{
	struct auth_opts	 ao;
	struct store		*st;
	const char		*t = cfg_str(cfg, CFG_B_TARGET), *emu, *slash;
	char			*endpoint = NULL;

	st = calloc(1, sizeof(*st));
	if (st == NULL)
		fatal("store: calloc");
	snprintf(st->target, sizeof(st->target), "%s", t);
	st->chunk = (size_t)cfg_int(cfg, CFG_B_CHUNK_KIB) * 1024;
	if (strncmp(t, "file://", 7) == 0 && t[7] == '/') {
		st->kind = STORE_FILE;
		snprintf(st->dir, sizeof(st->dir), "%s", t + 7);
		return st;
	}
	if (strncmp(t, "gs://", 5) != 0 || t[5] == '\0' || t[5] == '/') {
		snprintf(err, errlen, "[backup] target %s: expected "
		    "gs://BUCKET/PREFIX or file:///ABSOLUTE/DIR", t);
		goto fail;
	}
	st->kind = STORE_GCS;
	slash = strchr(t + 5, '/');
	snprintf(st->bucket, sizeof(st->bucket), "%.*s", slash ?
	    (int)(slash - (t + 5)) : (int)strlen(t + 5), t + 5);
	snprintf(st->prefix, sizeof(st->prefix), "%s", slash ? slash + 1 : "");
	while (st->prefix[0] != '\0' &&
	    st->prefix[strlen(st->prefix) - 1] == '/')
		st->prefix[strlen(st->prefix) - 1] = '\0';
	memset(&ao, 0, sizeof(ao));
	emu = getenv("STORAGE_EMULATOR_HOST");
	if (emu != NULL && *emu != '\0') {
		/* The emulator takes no credentials. */
		ao.no_auth = 1;
		endpoint = gcs_endpoint_normalize(emu);
	} else {
		endpoint = gcs_endpoint_normalize(cfg_str(cfg,
		    CFG_GCS_ENDPOINT));
		if (*cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE) != '\0')
			ao.credentials_file = cfg_str(cfg,
			    CFG_GCS_CREDENTIALS_FILE);
		ao.metadata_host = cfg_str(cfg, CFG_GCS_METADATA_HOST);
	}
	st->auth = auth_new(&ao, err, errlen);
	if (st->auth == NULL || endpoint == NULL)
		goto fail;
	st->gcs = gcs_new(endpoint, token, st->auth);
	if (st->gcs == NULL) {
		snprintf(err, errlen, "cannot set up the Cloud Storage client");
		goto fail;
	}
	free(endpoint);
	return st;
fail:
	free(endpoint);
	store_free(st);
	return NULL;
}

void
store_free(struct store *st)
{
	if (st == NULL)
		return;
	gcs_free(st->gcs);
	auth_free(st->auth);
	free(st);
}

const char *
store_target(const struct store *st)
{
	return st->target;
}

struct store_writer *
store_create(struct store *st, const char *name, const char *const *meta,
    char *err, size_t errlen)
{
	struct store_writer	*w;
	char			 obj[1400], *slash;

	w = calloc(1, sizeof(*w));
	if (w == NULL)
		fatal("store: calloc");
	w->st = st;
	w->fd = -1;
	snprintf(w->name, sizeof(w->name), "%s", name);
	if (st->kind == STORE_GCS) {
		full_name(st, name, obj, sizeof(obj));
		if (gcs_upload_begin(st->gcs, st->bucket, obj,
		    "application/octet-stream", meta, st->chunk, &w->up, err,
		    errlen) != GCS_OK) {
			free(w);
			return NULL;
		}
		return w;
	}
	snprintf(w->final, sizeof(w->final), "%.2040s/%.600s", st->dir, name);
	snprintf(w->partial, sizeof(w->partial), "%.2650s.partial", w->final);
	slash = strrchr(w->partial, '/');
	*slash = '\0';
	if (store_mkdirs(w->partial) == -1) {
		snprintf(err, errlen, "cannot create %.800s: %s", w->partial,
		    strerror(errno));
		free(w);
		return NULL;
	}
	*slash = '/';
	w->fd = open(w->partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	if (w->fd == -1) {
		snprintf(err, errlen, "cannot create %.800s: %s", w->partial,
		    strerror(errno));
		free(w);
		return NULL;
	}
	return w;
}

int
store_write(struct store_writer *w, const void *buf, size_t len, char *err,
    size_t errlen)
{
	const char	*p = buf;
	ssize_t		 n;

	if (w->up != NULL)
		return gcs_upload_write(w->up, buf, len, err, errlen) == GCS_OK ?
		    0 : -1;
	while (len > 0) {
		n = write(w->fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "writing %.800s: %s", w->partial,
			    strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write text to path atomically (temp file, fsync, rename). */
int
store_write_atomic(const char *path, const char *text, char *err, size_t errlen)
{
	return store_write_file(path, text, 0600, err, errlen);
}

int
store_write_file(const char *path, const char *text, int mode, char *err,
    size_t errlen)
{
	char	tmp[2800];
	size_t	len = strlen(text);
	int	fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%.2700s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "%.800s: %s", tmp, strerror(errno));
		return -1;
	}
	/* fchmod: the umask must not narrow what readers need. */
	if (fchmod(fd, (mode_t)mode) == -1 || write(fd, text, len) !=
	    (ssize_t)len || fsync(fd) == -1)
		snprintf(err, errlen, "%.800s: %s", tmp, strerror(errno));
	else if (rename(tmp, path) == -1)
		snprintf(err, errlen, "%.800s: %s", path, strerror(errno));
	else
		rc = 0;
	close(fd);
	if (rc == -1)
		(void)unlink(tmp);
	return rc;
}

json_object *
store_state_read(const char *dir, const char *name)
{
	char		 path[2800];
	json_object	*st;

	snprintf(path, sizeof(path), "%.2600s/%.100s", dir, name);
	st = json_object_from_file(path);
	if (st == NULL || !json_object_is_type(st, json_type_object)) {
		json_object_put(st);
		st = json_object_new_object();
	}
	return st;
}

int
store_state_write(const char *dir, const char *name, json_object *st,
    char *err, size_t errlen)
{
	char path[2800];

	snprintf(path, sizeof(path), "%.2600s/%.100s", dir, name);
	if (store_mkdirs(dir) == -1) {
		snprintf(err, errlen, "cannot create %.800s: %s", dir,
		    strerror(errno));
		return -1;
	}
	return store_write_atomic(path, json_object_to_json_string_ext(st,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE), err,
	    errlen);
}

static const char *
rec_text(json_object *rec)
{
	return json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PRETTY |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Every field of rec as the object's custom metadata. */
static int
patch_record(struct store *st, const char *obj, int64_t gen, json_object *rec,
    char *err, size_t errlen)
{
	const char	*meta[41];
	int		 n = 0, rc;

	json_object_object_foreach(rec, key, val) {
		if (n >= 38)
			break;
		meta[n++] = key;
		meta[n++] = json_object_get_string(val);
	}
	meta[n] = NULL;
	rc = gcs_patch_metadata(st->gcs, st->bucket, obj, gen, meta, err,
	    errlen);
	return rc == GCS_OK ? 0 : -1;
}

int
store_commit(struct store_writer *w, json_object *rec, char *err,
    size_t errlen)
{
	struct gcs_object	*info = NULL;
	struct gcs_upload	*up = NULL;
	const char		*text;
	char			 obj[1400], side[2800], dir[2700], *slash;
	char			 why[512];
	int			 rc = -1, dfd;

	if (w->up != NULL) {
		if (gcs_upload_finish(w->up, &info, err, errlen) != GCS_OK) {
			w->up = NULL;	/* finish frees it */
			goto out;
		}
		w->up = NULL;
		json_object_object_add(rec, "generation",
		    json_object_new_int64(info->generation));
		full_name(w->st, w->name, obj, sizeof(obj));
		/*
		 * The object's metadata gets the whole record too, for people
		 * browsing the bucket.  Best effort: the NAME.json record
		 * object below is what list, verify and prune read, so a
		 * service without objects.patch still works.
		 */
		if (patch_record(w->st, obj, info->generation, rec, why,
		    sizeof(why)) == -1)
			log_warnx("store: the record could not be added to the "
			    "metadata of gs://%s/%s (%s); the record object "
			    "has it", w->st->bucket, obj, why);
		text = rec_text(rec);
		strncat(obj, ".json", sizeof(obj) - strlen(obj) - 1);
		if (gcs_upload_begin(w->st->gcs, w->st->bucket, obj,
		    "application/json", NULL, w->st->chunk, &up, err,
		    errlen) != GCS_OK)
			goto out;
		if (gcs_upload_write(up, text, strlen(text), err, errlen) !=
		    GCS_OK) {
			gcs_upload_abort(up);
			goto out;
		}
		if (gcs_upload_finish(up, NULL, err, errlen) != GCS_OK)
			goto out;
		rc = 0;
		goto out;
	}
	if (fsync(w->fd) == -1) {
		snprintf(err, errlen, "fsync %.800s: %s", w->partial,
		    strerror(errno));
		goto out;
	}
	if (rename(w->partial, w->final) == -1) {
		snprintf(err, errlen, "rename to %.800s: %s", w->final,
		    strerror(errno));
		goto out;
	}
	snprintf(dir, sizeof(dir), "%.2690s", w->final);
	slash = strrchr(dir, '/');
	*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	snprintf(side, sizeof(side), "%.2700s.json", w->final);
	if (store_write_atomic(side, rec_text(rec), err, errlen) == -1) {
		(void)unlink(w->final);
		goto out;
	}
	rc = 0;
out:
	gcs_object_free(info);
	if (w->fd != -1)
		close(w->fd);
	if (rc == -1 && w->fd != -1)
		(void)unlink(w->partial);
	free(w);
	return rc;
}

void
store_abort(struct store_writer *w)
{
	if (w == NULL)
		return;
	if (w->up != NULL)
		gcs_upload_abort(w->up);
	if (w->fd != -1) {
		close(w->fd);
		(void)unlink(w->partial);
	}
	free(w);
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(json_object_get_string(json_object_object_get(
	    *(json_object *const *)a, "name")), json_object_get_string(
	    json_object_object_get(*(json_object *const *)b, "name")));
}

/* Collect NAME.json records below dir into arr. */
static void
walk(const char *dir, json_object *arr)
{
	char		 path[2700];
	struct stat	 sb;
	DIR		*d;
	struct dirent	*e;
	json_object	*o;
	size_t		 len;

	d = opendir(dir);
	if (d == NULL)
		return;
	for (;;) {
		e = readdir(d);
		if (e == NULL)
			break;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%.2400s/%.255s", dir, e->d_name);
		if (lstat(path, &sb) == -1)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			walk(path, arr);
			continue;
		}
		len = strlen(path);
		if (len < 10 || strcmp(path + len - 5, ".json") != 0 ||
		    strstr(path, ".dump") == NULL)
			continue;
		o = json_object_from_file(path);
		if (o != NULL && json_object_object_get(o, "name") != NULL)
			json_object_array_add(arr, o);
		else
			json_object_put(o);
	}
	closedir(d);
}

struct collect {
	json_object	*names;
};

static int
collect_cb(void *arg, const struct gcs_object *obj)
{
	struct collect	*c = arg;
	size_t		 len = strlen(obj->name);

	if (len > 5 && strcmp(obj->name + len - 5, ".json") == 0 &&
	    strstr(obj->name, ".dump") != NULL)
		json_object_array_add(c->names,
		    json_object_new_string(obj->name));
	return 0;
}

struct membuf {
	char	*buf;
	size_t	 len;
};

static int
mem_cb(void *arg, const void *buf, size_t len)
{
	struct membuf	*m = arg;
	char		*nb;

	if (m->len + len > 1024 * 1024)
		return -1;	/* no record is that large */
	nb = realloc(m->buf, m->len + len + 1);
	if (nb == NULL)
		return -1;
	m->buf = nb;
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	m->buf[m->len] = '\0';
	return 0;
}

json_object *
store_records(struct store *st, char *err, size_t errlen)
{
	struct collect	 c;
	struct membuf	 m;
	json_object	*arr, *o;
	const char	*name;
	char		 prefix[800];
	size_t		 i;

	arr = json_object_new_array();
	if (st->kind == STORE_FILE) {
		walk(st->dir, arr);
		json_object_array_sort(arr, cmp_names);
		return arr;
	}
	c.names = json_object_new_array();
	snprintf(prefix, sizeof(prefix), "%s%s", st->prefix,
	    st->prefix[0] ? "/" : "");
	if (gcs_list(st->gcs, st->bucket, prefix[0] ? prefix : NULL,
	    collect_cb, &c, err, errlen) != GCS_OK)
		goto fail;
	for (i = 0; i < json_object_array_length(c.names); i++) {
		name = json_object_get_string(json_object_array_get_idx(c.names,
		    i));
		memset(&m, 0, sizeof(m));
		if (gcs_download(st->gcs, st->bucket, name, 0, mem_cb, &m, NULL,
		    err, errlen) != GCS_OK) {
			free(m.buf);
			goto fail;
		}
		o = m.buf ? json_tokener_parse(m.buf) : NULL;
		free(m.buf);
		if (o == NULL || json_object_object_get(o, "name") == NULL) {
			log_warnx("store: %s is not a backup record; ignored",
			    name);
			json_object_put(o);
			continue;
		}
		json_object_array_add(arr, o);
	}
	json_object_put(c.names);
	json_object_array_sort(arr, cmp_names);
	return arr;
fail:
	json_object_put(c.names);
	json_object_put(arr);
	return NULL;
}

static const char *
rec_name(json_object *rec)
{
	json_object *v = json_object_object_get(rec, "name");

	return v ? json_object_get_string(v) : "";
}

int
store_read(struct store *st, json_object *rec, store_read_fn fn, void *arg,
    char *err, size_t errlen)
{
	char		 path[2700], obj[1400], buf[65536];
	json_object	*g;
	ssize_t		 n;
	int		 fd, rc = 0;

	if (st->kind == STORE_GCS) {
		full_name(st, rec_name(rec), obj, sizeof(obj));
		g = json_object_object_get(rec, "generation");
		return gcs_download(st->gcs, st->bucket, obj, g ?
		    json_object_get_int64(g) : 0, fn, arg, NULL, err,
		    errlen) == GCS_OK ? 0 : -1;
	}
	snprintf(path, sizeof(path), "%.2040s/%.600s", st->dir, rec_name(rec));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		snprintf(err, errlen, "cannot read %.800s: %s", path,
		    strerror(errno));
		return -1;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "reading %.800s: %s", path,
			    strerror(errno));
			rc = -1;
		}
		if (n <= 0)
			break;
		if (fn(arg, buf, (size_t)n) != 0)
			break;
	}
	close(fd);
	return rc;
}

int
store_delete(struct store *st, json_object *rec, char *err, size_t errlen)
{
	char		 path[2700], obj[1400];
	json_object	*g;
	int		 r;

	if (st->kind == STORE_GCS) {
		full_name(st, rec_name(rec), obj, sizeof(obj));
		strncat(obj, ".json", sizeof(obj) - strlen(obj) - 1);
		r = gcs_delete(st->gcs, st->bucket, obj, 0, err, errlen);
		if (r != GCS_OK && r != GCS_ENOTFOUND)
			return -1;
		full_name(st, rec_name(rec), obj, sizeof(obj));
		g = json_object_object_get(rec, "generation");
		r = gcs_delete(st->gcs, st->bucket, obj, g ?
		    json_object_get_int64(g) : 0, err, errlen);
		return r == GCS_OK || r == GCS_ENOTFOUND ? 0 : -1;
	}
	/* The record first: a crash leaves an unlisted file, never a listed
	 * backup that is not there. */
	snprintf(path, sizeof(path), "%.2040s/%.600s.json", st->dir,
	    rec_name(rec));
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot delete %.800s: %s", path,
		    strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%.2040s/%.600s", st->dir, rec_name(rec));
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot delete %.800s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

const char *const store_perms[STORE_NPERMS] = {
	"storage.objects.create", "storage.objects.get",
	"storage.objects.list", "storage.objects.delete",
};

int
store_is_remote(const struct store *st)
{
	return st->kind == STORE_GCS;
}

int
store_probe(struct store *st, unsigned *granted, time_t *server_time,
    char *err, size_t errlen)
{
	uint64_t	bits = 0;
	unsigned	all = (1u << STORE_NPERMS) - 1;

	*granted = 0;
	*server_time = 0;
	if (st->kind == STORE_FILE) {
		/* What backup, list, verify and prune do to a directory. */
		if (access(st->dir, R_OK | W_OK | X_OK) == -1) {
			snprintf(err, errlen, "%s: %s", st->dir,
			    strerror(errno));
			return -1;
		}
		*granted = all;
		return 0;
	}
	st->gcs->last_date = 0;
	if (gcs_test_permissions(st->gcs, st->bucket, store_perms,
	    STORE_NPERMS, &bits, err, errlen) != GCS_OK)
		return -1;
	*granted = (unsigned)bits & all;
	*server_time = st->gcs->last_date;
	return 0;
}

int
store_state_record(const char *dir, const char *file, json_object *att,
    int ok, char *err, size_t errlen)
{
	json_object	*st = store_state_read(dir, file);
	int		 rv;

	json_object_object_add(att, "ok", json_object_new_boolean(ok));
	if (ok)
		json_object_object_add(st, "last_success",
		    json_object_get(att));
	json_object_object_add(st, "last_attempt", json_object_get(att));
	rv = store_state_write(dir, file, st, err, errlen);
	json_object_put(st);
	return rv;
}
