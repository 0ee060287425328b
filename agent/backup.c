/*
 * backup.c - pg_dump -Fc -Z0 as a child process, compressed here (zstd or
 * gzip), checksummed (CRC32C and MD5, the forms Cloud Storage uses) while
 * it streams to the target.
 *
 * Memory stays at a few buffers whatever the database size.  pg_dump gets
 * the connection settings, password included, through its environment
 * only: nothing secret is on a command line.  Its exit status and stderr
 * decide success; a failed dump never becomes a backup (a file target
 * writes NAME.partial and renames it only at the end).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "backup.h"
#include "cfg.h"
#include "db.h"
#include "hash.h"
#include "log.h"
#include "store.h"
#include "version.h"

#define IOBUF		(256 * 1024)
#define ERRTAIL		2048

extern char **environ;


/* The compressor and the object being written. */
struct stream {
	struct store_writer	*w;
	ZSTD_CCtx		*zc;
	z_stream		 gz;
	int			 gz_live;
	int			 kind;	/* 0 none, 1 zstd, 2 gzip */
	unsigned char		*out;
	uint32_t		 crc;
	struct hash_md5		*md5;
	uint64_t		 raw, stored;
};

/*
 * The child's environment: ours minus any PG settings, plus exactly the
 * settings of conn (borrowed).  Returns an array the caller frees with
 * free_env(); its strings are owned by it.
 */
char **
backup_child_env(PGconn *conn)
{
	PQconninfoOption	*opts, *o;
	char			**env;
	size_t			 n = 0, k = 0, i;

	opts = PQconninfo(conn);
	if (opts == NULL)
		return NULL;
	while (environ[n] != NULL)
		n++;
	for (o = opts; o->keyword != NULL; o++)
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		goto out;
	for (i = 0; environ[i] != NULL; i++)
		if (strncmp(environ[i], "PG", 2) != 0 &&
		    strncmp(environ[i], "POSTGRES_", 9) != 0 &&
		    strncmp(environ[i], "DATABASE_URL=", 13) != 0)
			env[k++] = strdup(environ[i]);
	for (o = opts; o->keyword != NULL; o++) {
		if (o->envvar == NULL || o->val == NULL || *o->val == '\0')
			continue;
		if (asprintf(&env[k], "%s=%s", o->envvar, o->val) == -1)
			env[k] = NULL;
		else
			k++;
	}
	env[k] = NULL;
out:
	PQconninfoFree(opts);
	return env;
}

void
backup_env_free(char **env)
{
	char **e;

	if (env == NULL)
		return;
	for (e = env; *e != NULL; e++) {
		explicit_bzero(*e, strlen(*e));
		free(*e);
	}
	free(env);
}

static int
put_stored(struct stream *s, const void *buf, size_t len, char *err,
    size_t errlen)
{
	s->crc = hash_crc32c(s->crc, buf, len);
	hash_md5_update(s->md5, buf, len);
	s->stored += len;
	return store_write(s->w, buf, len, err, errlen);
}

/* Feed raw dump bytes (or, with last, flush the compressor). */
static int
feed(struct stream *s, const void *buf, size_t len, int last, char *err,
    size_t errlen)
{
	ZSTD_inBuffer	 in = { buf, len, 0 };
	ZSTD_outBuffer	 zo;
	size_t		 left;
	int		 zrc;

	s->raw += len;
	if (s->kind == 0)
		return len ? put_stored(s, buf, len, err, errlen) : 0;
	if (s->kind == 1) {
		do {
			zo.dst = s->out;
			zo.size = IOBUF;
			zo.pos = 0;
			left = ZSTD_compressStream2(s->zc, &zo, &in,
			    last ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left)) {
				snprintf(err, errlen, "zstd: %s",
				    ZSTD_getErrorName(left));
				return -1;
			}
			if (zo.pos > 0 && put_stored(s, s->out, zo.pos, err,
			    errlen) == -1)
				return -1;
		} while (in.pos < in.size || (last && left != 0));
		return 0;
	}
	s->gz.next_in = (Bytef *)(uintptr_t)buf;
	s->gz.avail_in = (uInt)len;
	do {
		s->gz.next_out = s->out;
		s->gz.avail_out = IOBUF;
		zrc = deflate(&s->gz, last ? Z_FINISH : Z_NO_FLUSH);
		if (zrc == Z_STREAM_ERROR) {
			snprintf(err, errlen, "gzip: deflate failed");
			return -1;
		}
		if (IOBUF - s->gz.avail_out > 0 && put_stored(s, s->out,
		    IOBUF - s->gz.avail_out, err, errlen) == -1)
			return -1;
	} while (s->gz.avail_out == 0 || (last && zrc != Z_STREAM_END));
	return 0;
}

static void
stream_init(struct stream *s, const struct cfg *cfg)
{
	const char	*comp = cfg_str(cfg, CFG_B_COMPRESSION);
	long		 cores = sysconf(_SC_NPROCESSORS_ONLN);

	memset(s, 0, sizeof(*s));
	s->kind = strcmp(comp, "zstd") == 0 ? 1 : strcmp(comp, "gzip") == 0 ?
	    2 : 0;
	s->out = malloc(IOBUF);
	s->md5 = hash_md5_new();
	if (s->out == NULL)
		fatal("backup: malloc");
	if (s->kind == 1) {
		s->zc = ZSTD_createCCtx();
		if (s->zc == NULL)
			fatalx("backup: zstd context");
		ZSTD_CCtx_setParameter(s->zc, ZSTD_c_compressionLevel,
		    (int)cfg_int(cfg, CFG_B_ZSTD_LEVEL));
		ZSTD_CCtx_setParameter(s->zc, ZSTD_c_checksumFlag, 1);
		/*
		 * Worker threads when there is more than one core, with small
		 * jobs: each job is buffered in memory, and the default (four
		 * windows) would take peak RSS past 50 MiB.
		 */
		if (cores > 1) {
			ZSTD_CCtx_setParameter(s->zc, ZSTD_c_nbWorkers,
			    (int)(cores - 1));
			ZSTD_CCtx_setParameter(s->zc, ZSTD_c_jobSize, 1 << 20);
		}
	} else if (s->kind == 2) {
		if (deflateInit2(&s->gz, 6, Z_DEFLATED, 15 + 16, 8,
		    Z_DEFAULT_STRATEGY) != Z_OK)
			fatalx("backup: zlib init");
		s->gz_live = 1;
	}
}

static void
stream_done(struct stream *s)
{
	ZSTD_freeCCtx(s->zc);
	if (s->gz_live)
		deflateEnd(&s->gz);
	free(s->out);
	hash_md5_free(s->md5);
	store_abort(s->w);
	memset(s, 0, sizeof(*s));
}

static json_object *
info_json(const struct backup_info *b)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(b->name));
	json_object_object_add(o, "database",
	    json_object_new_string(b->database));
	json_object_object_add(o, "server_version",
	    json_object_new_string(b->server_version));
	json_object_object_add(o, "agent_version",
	    json_object_new_string(agent_version));
	json_object_object_add(o, "compression",
	    json_object_new_string(b->compression));
	json_object_object_add(o, "raw_bytes",
	    json_object_new_int64((int64_t)b->raw_bytes));
	json_object_object_add(o, "stored_bytes",
	    json_object_new_int64((int64_t)b->stored_bytes));
	json_object_object_add(o, "crc32c", json_object_new_string(b->crc32c));
	json_object_object_add(o, "md5", json_object_new_string(b->md5));
	json_object_object_add(o, "created", json_object_new_string(b->created));
	json_object_object_add(o, "duration_ms",
	    json_object_new_int64(b->duration_ms));
	return o;
}

/*
 * Record the attempt (and, when ok, the success) in the state file that
 * doctor and metrics read; keeps the previous success on failure.
 */
static void
record_state(const struct cfg *cfg, const struct backup_info *b, int ok,
    const char *error)
{
	char		 err[512];
	json_object	*att;

	att = info_json(b);
	if (error != NULL)
		json_object_object_add(att, "error",
		    json_object_new_string(error));
	if (store_state_record(cfg_str(cfg, CFG_AGENT_STATE_DIR),
	    "backup-state.json", att, ok, err, sizeof(err)) == -1)
		log_warnx("backup: cannot record the state (%s); doctor will "
		    "not see this backup: fix [agent] state_dir", err);
	json_object_put(att);
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * Run pg_dump and pump its output into s.  Returns 0 when pg_dump
 * succeeded and everything was written, else -1 with err filled.
 */
static int
pump(const struct cfg *cfg, PGconn *conn, struct stream *s, char *err,
    size_t errlen)
{
	posix_spawn_file_actions_t	 fa;
	int				 out[2] = { -1, -1 }, er[2] = { -1, -1 };
	char				*argv[6], **env = NULL, tail[ERRTAIL + 1];
	unsigned char			*buf = NULL;
	struct pollfd			 pfd[2];
	size_t				 tlen = 0;
	ssize_t				 n;
	pid_t				 pid = -1;
	int				 st, rc = -1, failed = 0;

	tail[0] = '\0';
	env = backup_child_env(conn);
	buf = malloc(IOBUF);
	if (env == NULL || buf == NULL || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(er, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "cannot prepare pg_dump: %s",
		    strerror(errno));
		goto out;
	}
	argv[0] = (char *)cfg_str(cfg, CFG_B_PG_DUMP);
	argv[1] = "--format=custom";
	argv[2] = "--compress=0";
	argv[3] = "--no-password";
	argv[4] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, er[1], 2);
	st = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(er[1]);
	out[1] = er[1] = -1;
	if (st != 0) {
		snprintf(err, errlen, "cannot run %s: %s (set [backup] pg_dump)",
		    argv[0], strerror(st));
		pid = -1;
		goto out;
	}
	/* A larger pipe means fewer wake-ups between pg_dump and us. */
	(void)fcntl(out[0], F_SETPIPE_SZ, 1 << 20);
	while (out[0] != -1 || er[0] != -1) {
		pfd[0].fd = out[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = er[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (out[0] != -1 && (pfd[0].revents & (POLLIN | POLLHUP))) {
			n = read(out[0], buf, IOBUF);
			if (n > 0 && !failed &&
			    feed(s, buf, (size_t)n, 0, err, errlen) == -1)
				failed = 1;	/* keep draining pg_dump */
			if (n == 0 || (n == -1 && errno != EINTR)) {
				close(out[0]);
				out[0] = -1;
			}
		}
		if (er[0] != -1 && (pfd[1].revents & (POLLIN | POLLHUP))) {
			n = read(er[0], buf, IOBUF);
			if (n > 0) {
				size_t k = (size_t)n > ERRTAIL ? ERRTAIL :
				    (size_t)n;

				if (tlen + k > ERRTAIL) {
					memmove(tail, tail + (tlen + k - ERRTAIL),
					    ERRTAIL - k);
					tlen = ERRTAIL - k;
				}
				memcpy(tail + tlen, buf + n - k, k);
				tlen += k;
				tail[tlen] = '\0';
			}
			if (n == 0 || (n == -1 && errno != EINTR)) {
				close(er[0]);
				er[0] = -1;
			}
		}
	}
	while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
		;
	pid = -1;
	while (tlen > 0 && strchr("\r\n ", tail[tlen - 1]) != NULL)
		tail[--tlen] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(err, errlen, "pg_dump failed (%s %d): %.900s",
		    WIFEXITED(st) ? "exit status" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		    tlen ? tail + (tlen > 900 ? tlen - 900 : 0) : "no message");
		goto out;
	}
	if (failed || feed(s, "", 0, 1, err, errlen) == -1)
		goto out;
	if (tlen > 0)
		log_warnx("backup: pg_dump said: %s", tail);
	rc = 0;
out:
	if (out[0] != -1)
		close(out[0]);
	if (er[0] != -1)
		close(er[0]);
	if (pid > 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
	}
	free(buf);
	backup_env_free(env);
	return rc;
}

int
backup_run(const struct cfg *cfg, FILE *out)
{
	struct backup_info	 b;
	struct stream		 s;
	struct timespec		 t0;
	struct tm		 tm;
	struct store		*st = NULL;
	time_t			 now = time(NULL);
	json_object		*rec = NULL;
	PGconn			*conn = NULL;
	const char		*meta[9], *ext;
	char			 err[1024] = "", ts[32], holder[512];
	unsigned char		 md5[16];
	int			 rc = EX_SOFTWARE;

	memset(&b, 0, sizeof(b));
	memset(&s, 0, sizeof(s));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	gmtime_r(&now, &tm);
	strftime(b.created, sizeof(b.created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(b.compression, sizeof(b.compression), "%s",
	    cfg_str(cfg, CFG_B_COMPRESSION));
	st = store_open(cfg, err, sizeof(err));
	if (st == NULL) {
		log_errx("backup: %s", err);
		return EX_CONFIG;
	}
	conn = db_connect(cfg, "backup");
	if (conn == NULL) {
		snprintf(b.database, sizeof(b.database), "%s",
		    cfg_str(cfg, CFG_DB_NAME));
		record_state(cfg, &b, 0, "database unreachable");
		rc = EX_UNAVAILABLE;
		goto out;
	}
	snprintf(b.database, sizeof(b.database), "%s", PQdb(conn));
	snprintf(b.server_version, sizeof(b.server_version), "%d",
	    PQserverVersion(conn));
	/* Held until conn closes, i.e. for the whole dump. */
	switch (db_oplock_try(conn, holder, sizeof(holder))) {
	case 0:
		break;
	case 1:
		log_errx("backup: another maintain or backup is running (%s); "
		    "nothing was stored: run the backup again once it has "
		    "finished", holder);
		record_state(cfg, &b, 0, "skipped: another maintain or backup "
		    "was running");
		rc = EX_TEMPFAIL;
		goto out;
	default:
		record_state(cfg, &b, 0, "cannot take the maintenance lock");
		rc = EX_UNAVAILABLE;
		goto out;
	}
	ext = strcmp(b.compression, "zstd") == 0 ? ".zst" :
	    strcmp(b.compression, "gzip") == 0 ? ".gz" : "";
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(b.name, sizeof(b.name), "%s/%04d/%02d/%02d/%s-%s.dump%s",
	    b.database, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    b.database, ts, ext);
	/* What is known before the dump goes on the object itself. */
	meta[0] = "database";
	meta[1] = b.database;
	meta[2] = "server_version";
	meta[3] = b.server_version;
	meta[4] = "agent_version";
	meta[5] = agent_version;
	meta[6] = "compression";
	meta[7] = b.compression;
	meta[8] = NULL;
	stream_init(&s, cfg);
	s.w = store_create(st, b.name, meta, err, sizeof(err));
	if (s.w == NULL)
		goto fail;
	if (pump(cfg, conn, &s, err, sizeof(err)) == -1)
		goto fail;
	hash_crc32c_b64(s.crc, b.crc32c);
	hash_md5_peek(s.md5, md5);
	hash_md5_b64(md5, b.md5);
	b.raw_bytes = s.raw;
	b.stored_bytes = s.stored;
	b.duration_ms = ms_since(&t0);
	rec = info_json(&b);
	rc = store_commit(s.w, rec, err, sizeof(err));
	s.w = NULL;	/* commit frees the writer */
	if (rc == -1)
		goto fail;
	record_state(cfg, &b, 1, NULL);
	fprintf(out, "backup: stored %s in %s\n", b.name, store_target(st));
	fprintf(out, "backup: %llu bytes from pg_dump, %llu stored (%s), "
	    "crc32c %s, md5 %s, %ld ms\n", (unsigned long long)b.raw_bytes,
	    (unsigned long long)b.stored_bytes, b.compression, b.crc32c, b.md5,
	    b.duration_ms);
	rc = EX_OK;
	goto out;
fail:
	log_errx("backup: %s; nothing was stored", err);
	b.duration_ms = ms_since(&t0);
	record_state(cfg, &b, 0, err);
	rc = EX_SOFTWARE;
out:
	stream_done(&s);
	json_object_put(rec);
	PQfinish(conn);
	store_free(st);
	return rc;
}

int
backup_list(const struct cfg *cfg, FILE *out, int json)
{
	struct store	*st;
	json_object	*arr, *o;
	char		 err[1024];
	size_t		 i, n;

	st = store_open(cfg, err, sizeof(err));
	arr = st ? store_records(st, err, sizeof(err)) : NULL;
	if (arr == NULL) {
		log_errx("backup: cannot list %s: %s", cfg_str(cfg,
		    CFG_B_TARGET), err);
		store_free(st);
		return st ? EX_UNAVAILABLE : EX_CONFIG;
	}
	n = json_object_array_length(arr);
	if (json)
		fprintf(out, "%s\n", json_object_to_json_string_ext(arr,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	else {
		fprintf(out, "%-64s %-20s %12s %12s %s\n", "NAME", "CREATED",
		    "STORED", "RAW", "CRC32C");
		for (i = 0; i < n; i++) {
			o = json_object_array_get_idx(arr, i);
			fprintf(out, "%-64s %-20s %12s %12s %s\n",
			    json_object_get_string(json_object_object_get(o,
			    "name")), json_object_get_string(
			    json_object_object_get(o, "created")),
			    json_object_get_string(json_object_object_get(o,
			    "stored_bytes")), json_object_get_string(
			    json_object_object_get(o, "raw_bytes")),
			    json_object_get_string(json_object_object_get(o,
			    "crc32c")));
		}
		fprintf(out, "backup: %zu backup%s in %s\n", n, n == 1 ? "" :
		    "s", store_target(st));
	}
	json_object_put(arr);
	store_free(st);
	return EX_OK;
}

/* Seconds since the epoch of an ISO 8601 UTC time as we write it; -1. */
static time_t
parse_created(const char *s)
{
	struct tm	tm;
	char		*end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	return timegm(&tm);
}

int
backup_prune(const struct cfg *cfg, int dry_run, FILE *out)
{
	struct store	*st;
	json_object	*arr, *o;
	char		 err[1024];
	const char	*name;
	long long	 keep_last = cfg_int(cfg, CFG_B_KEEP_LAST);
	long long	 keep_days = cfg_int(cfg, CFG_B_KEEP_DAYS);
	time_t		 now = time(NULL), created;
	size_t		 i, n;
	int		 deleted = 0, kept = 0, rc = EX_OK;

	st = store_open(cfg, err, sizeof(err));
	arr = st ? store_records(st, err, sizeof(err)) : NULL;
	if (arr == NULL) {
		log_errx("backup: cannot list %s: %s", cfg_str(cfg,
		    CFG_B_TARGET), err);
		store_free(st);
		return st ? EX_UNAVAILABLE : EX_CONFIG;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(arr, i);
		name = json_object_get_string(json_object_object_get(o,
		    "name"));
		created = parse_created(json_object_get_string(
		    json_object_object_get(o, "created")));
		/* Newest keep_last by name (names sort by time), and young. */
		if ((long long)(n - i) <= keep_last || created == -1 ||
		    now - created < (time_t)keep_days * 86400) {
			kept++;
			continue;
		}
		fprintf(out, "backup: %s %s\n", dry_run ? "would delete" :
		    "deleting", name);
		deleted++;
		if (!dry_run && store_delete(st, o, err, sizeof(err)) == -1) {
			log_errx("backup: cannot delete %s: %s", name, err);
			rc = EX_SOFTWARE;
		}
	}
	fprintf(out, "backup: %d kept, %d %s (keep_last %lld, keep_days "
	    "%lld)\n", kept, deleted, dry_run ? "to delete" : "deleted",
	    keep_last, keep_days);
	json_object_put(arr);
	store_free(st);
	return rc;
}
