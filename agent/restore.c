/*
 * restore.c - read a stored backup back through its decompressor into
 * pg_restore: to check it (every block read, checksums compared with the
 * record) or to restore it.
 *
 * "pg_restore --list" passes on a truncated dump because it reads only the
 * table of contents; verification therefore has pg_restore write the whole
 * archive to /dev/null, and compares size, CRC32C and MD5 of the stored
 * bytes with what was recorded when the backup was made.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#include "backup.h"
#include "cfg.h"
#include "db.h"
#include "hash.h"
#include "log.h"
#include "restore.h"
#include "store.h"

#define IOBUF	(256 * 1024)
#define ERRTAIL	2048

extern char **environ;

/* The decompressor for one stored object. */
struct unpack {
	int		 kind;	/* 0 none, 1 zstd, 2 gzip */
	ZSTD_DCtx	*zd;
	z_stream	 gz;
	int		 gz_live;
	int		 ended;	/* the compressed stream reached its end */
};

static const char *
rec_str(json_object *rec, const char *key)
{
	json_object *v = json_object_object_get(rec, key);

	return v ? json_object_get_string(v) : "";
}

/*
 * The record of the backup named which ("latest" for the newest).  Returns
 * it with a reference the caller puts, or NULL after logging.
 */
static json_object *
find_record(struct store *st, const char *which)
{
	json_object	*arr, *rec = NULL, *o;
	char		 err[1024];
	size_t		 i, n;

	arr = store_records(st, err, sizeof(err));
	if (arr == NULL) {
		log_errx("restore: cannot list %s: %s", store_target(st), err);
		return NULL;
	}
	n = json_object_array_length(arr);
	if (strcmp(which, "latest") == 0 && n > 0)
		rec = json_object_array_get_idx(arr, n - 1);
	for (i = 0; rec == NULL && i < n; i++) {
		o = json_object_array_get_idx(arr, i);
		if (strcmp(rec_str(o, "name"), which) == 0)
			rec = o;
	}
	if (rec == NULL)
		log_errx("restore: no backup %s in %s; 'orchestrator-agent "
		    "backup list' shows what there is", n ? which : "at all",
		    store_target(st));
	else
		json_object_get(rec);
	json_object_put(arr);
	return rec;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Decompress in (len bytes) and write the output to fd. */
static int
unpack_feed(struct unpack *u, const void *in, size_t len, unsigned char *out,
    int fd, char *err, size_t errlen)
{
	ZSTD_inBuffer	in_b = { in, len, 0 };
	ZSTD_outBuffer	out_b;
	size_t		ret;
	int		zrc;

	if (u->kind == 0)
		return write_all(fd, in, len) == -1 ? -1 : 0;
	if (u->kind == 1) {
		while (in_b.pos < in_b.size) {
			out_b.dst = out;
			out_b.size = IOBUF;
			out_b.pos = 0;
			ret = ZSTD_decompressStream(u->zd, &out_b, &in_b);
			if (ZSTD_isError(ret)) {
				snprintf(err, errlen, "zstd: %s",
				    ZSTD_getErrorName(ret));
				return -1;
			}
			u->ended = ret == 0;
			if (out_b.pos > 0 && write_all(fd, out, out_b.pos) == -1)
				return -1;
		}
		return 0;
	}
	u->gz.next_in = (Bytef *)(uintptr_t)in;
	u->gz.avail_in = (uInt)len;
	while (u->gz.avail_in > 0 && !u->ended) {
		u->gz.next_out = out;
		u->gz.avail_out = IOBUF;
		zrc = inflate(&u->gz, Z_NO_FLUSH);
		if (zrc != Z_OK && zrc != Z_STREAM_END) {
			snprintf(err, errlen, "gzip: %s", u->gz.msg ? u->gz.msg :
			    "corrupt data");
			return -1;
		}
		u->ended = zrc == Z_STREAM_END;
		if (IOBUF - u->gz.avail_out > 0 && write_all(fd, out,
		    IOBUF - u->gz.avail_out) == -1)
			return -1;
	}
	return 0;
}

static void
keep_tail(int fd, char *tail, size_t *tlen)
{
	char	buf[4096];
	ssize_t	n;
	size_t	k;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			return;
		k = (size_t)n > ERRTAIL ? ERRTAIL : (size_t)n;
		if (*tlen + k > ERRTAIL) {
			memmove(tail, tail + (*tlen + k - ERRTAIL), ERRTAIL - k);
			*tlen = ERRTAIL - k;
		}
		memcpy(tail + *tlen, buf + n - k, k);
		*tlen += k;
		tail[*tlen] = '\0';
	}
}

/* What the read callback needs while an object streams in. */
struct feed {
	struct unpack	*u;
	unsigned char	*out;
	int		 to, from;	/* child's stdin, child's stderr */
	char		*tail;
	size_t		*tlen;
	uint32_t	 crc;
	struct hash_md5	*md5;
	uint64_t	 stored;
	int		 broken;
	char		*err;
	size_t		 errlen;
};

static void	keep_tail(int, char *, size_t *);

static int
feed_cb(void *arg, const void *buf, size_t len)
{
	struct feed *f = arg;

	f->crc = hash_crc32c(f->crc, buf, len);
	hash_md5_update(f->md5, buf, len);
	f->stored += len;
	/* Keep reading after a failure: the checksums decide. */
	if (!f->broken && unpack_feed(f->u, buf, len, f->out, f->to, f->err,
	    f->errlen) == -1)
		f->broken = 1;
	keep_tail(f->from, f->tail, f->tlen);
	return 0;
}

/*
 * Stream the object of rec from st through its decompressor into argv's
 * stdin (env borrowed), then compare what was read with rec.  Returns 0,
 * EX_DATAERR for a damaged backup, or another sysexits code; err says why.
 */
static int
replay(struct store *st, json_object *rec, char *const argv[], char **env,
    char *err, size_t errlen)
{
	posix_spawn_file_actions_t	 fa;
	struct unpack			 u;
	struct hash_md5			*md5 = hash_md5_new();
	unsigned char			*out = NULL, digest[16];
	char				 tail[ERRTAIL + 1] = "", crc_b[9];
	char				 md5_b[25];
	const char			*comp = rec_str(rec, "compression");
	int				 pin[2] = { -1, -1 }, per[2] = { -1, -1 };
	struct feed			 f;
	char				 rerr[1024] = "";
	int				 status, rc = EX_SOFTWARE, broken = 0;
	int				 rd;
	size_t				 tlen = 0;
	uint64_t			 stored = 0;
	uint32_t			 crc = 0;
	pid_t				 pid = -1;

	memset(&u, 0, sizeof(u));
	u.kind = strcmp(comp, "zstd") == 0 ? 1 : strcmp(comp, "gzip") == 0 ?
	    2 : 0;
	if (u.kind == 1)
		u.zd = ZSTD_createDCtx();
	if (u.kind == 2) {
		if (inflateInit2(&u.gz, 15 + 32) != Z_OK)
			fatalx("restore: zlib init");
		u.gz_live = 1;
	}
	out = malloc(IOBUF);
	if (out == NULL)
		fatal("restore: malloc");
	if (pipe2(pin, O_CLOEXEC) == -1 || pipe2(per, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, per[1], 2);
	status = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	close(pin[0]);
	close(per[1]);
	pin[0] = per[1] = -1;
	if (status != 0) {
		snprintf(err, errlen, "cannot run %s: %s (set [backup] "
		    "pg_restore)", argv[0], strerror(status));
		pid = -1;
		goto out;
	}
	(void)fcntl(per[0], F_SETFL, O_NONBLOCK);
	memset(&f, 0, sizeof(f));
	f.u = &u;
	f.out = out;
	f.to = pin[1];
	f.from = per[0];
	f.tail = tail;
	f.tlen = &tlen;
	f.md5 = md5;
	f.err = err;
	f.errlen = errlen;
	rd = store_read(st, rec, feed_cb, &f, rerr, sizeof(rerr));
	crc = f.crc;
	stored = f.stored;
	broken = f.broken;
	close(pin[1]);
	pin[1] = -1;
	(void)fcntl(per[0], F_SETFL, 0);
	keep_tail(per[0], tail, &tlen);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	pid = -1;
	hash_crc32c_b64(crc, crc_b);
	hash_md5_peek(md5, digest);
	hash_md5_b64(digest, md5_b);
	while (tlen > 0 && strchr("\r\n ", tail[tlen - 1]) != NULL)
		tail[--tlen] = '\0';
	rc = EX_DATAERR;
	if (rd == -1)
		snprintf(err, errlen, "reading the backup: %.900s", rerr);
	else if (stored != (uint64_t)json_object_get_int64(json_object_object_get(
	    rec, "stored_bytes")))
		snprintf(err, errlen, "%llu bytes stored but %s were recorded: "
		    "the backup is truncated or was replaced",
		    (unsigned long long)stored, rec_str(rec, "stored_bytes"));
	else if (strcmp(crc_b, rec_str(rec, "crc32c")) != 0)
		snprintf(err, errlen, "crc32c %s but %s was recorded: the "
		    "backup was altered", crc_b, rec_str(rec, "crc32c"));
	else if (strcmp(md5_b, rec_str(rec, "md5")) != 0)
		snprintf(err, errlen, "md5 %s but %s was recorded: the backup "
		    "was altered", md5_b, rec_str(rec, "md5"));
	else if (broken && err[0] == '\0')
		snprintf(err, errlen, "pg_restore stopped reading early: %.900s",
		    tlen ? tail + (tlen > 900 ? tlen - 900 : 0) : "no message");
	else if (broken)
		;	/* err already says what the decompressor found */
	else if (u.kind != 0 && !u.ended)
		snprintf(err, errlen, "the compressed stream ends early: the "
		    "backup is truncated");
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		snprintf(err, errlen, "pg_restore failed (%s %d): %.900s",
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		    tlen ? tail + (tlen > 900 ? tlen - 900 : 0) : "no message");
	else
		rc = EX_OK;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
	}
	if (pin[1] != -1)
		close(pin[1]);
	if (per[0] != -1)
		close(per[0]);
	ZSTD_freeDCtx(u.zd);
	if (u.gz_live)
		inflateEnd(&u.gz);
	hash_md5_free(md5);
	free(out);
	return rc;
}

/* A connection like base (borrowed) but to dbname; caller PQfinishes. */
static PGconn *
connect_to(PGconn *base, const char *dbname)
{
	PQconninfoOption	*opts, *o;
	const char		*k[64], *v[64];
	PGconn			*c;
	int			 n = 0;

	opts = PQconninfo(base);
	if (opts == NULL)
		return NULL;
	for (o = opts; o->keyword != NULL && n < 62; o++) {
		if (o->val == NULL || strcmp(o->keyword, "dbname") == 0)
			continue;
		k[n] = o->keyword;
		v[n++] = o->val;
	}
	k[n] = "dbname";
	v[n++] = dbname;
	k[n] = NULL;
	v[n] = NULL;
	c = PQconnectdbParams(k, v, 0);
	PQconninfoFree(opts);
	if (c != NULL && PQstatus(c) != CONNECTION_OK) {
		log_errx("restore: cannot connect to database %s: %s", dbname,
		    PQerrorMessage(c));
		PQfinish(c);
		c = NULL;
	}
	return c;
}

/* CREATE or DROP DATABASE with a quoted name. */
static int
db_ddl(PGconn *conn, const char *verb, const char *name, const char *suffix)
{
	char	*q, sql[512];
	int	 rc;

	q = PQescapeIdentifier(conn, name, strlen(name));
	if (q == NULL)
		return -1;
	snprintf(sql, sizeof(sql), "%s DATABASE %s%s", verb, q, suffix);
	PQfreemem(q);
	rc = db_cmd(conn, "restore: database", sql);
	return rc;
}

/* Print each user table's exact row count in db. */
static int
row_counts(PGconn *c, FILE *out)
{
	PGresult	*res, *cnt;
	int		 i;

	res = db_exec(c, "restore: listing tables",
	    "SELECT format('%I.%I', schemaname, relname), "
	    "format('SELECT count(*) FROM %I.%I', schemaname, relname) "
	    "FROM pg_stat_user_tables ORDER BY 1", 0, NULL);
	if (res == NULL)
		return -1;
	for (i = 0; i < PQntuples(res); i++) {
		cnt = db_exec(c, "restore: counting rows", PQgetvalue(res, i, 1),
		    0, NULL);
		if (cnt == NULL)
			continue;
		fprintf(out, "  %-48s %12s rows\n", PQgetvalue(res, i, 0),
		    PQgetvalue(cnt, 0, 0));
		PQclear(cnt);
	}
	PQclear(res);
	return 0;
}

/* Remember the verify for doctor and metrics (verify-state.json). */
static void
record_verify(const struct cfg *cfg, json_object *rec, int restored,
    const char *error)
{
	json_object	*att = json_object_new_object();
	char		 when[32], err[512];
	time_t		 now = time(NULL);

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	json_object_object_add(att, "name",
	    json_object_new_string(rec_str(rec, "name")));
	json_object_object_add(att, "verified_at", json_object_new_string(when));
	json_object_object_add(att, "restored",
	    json_object_new_boolean(restored));
	if (error != NULL)
		json_object_object_add(att, "error",
		    json_object_new_string(error));
	if (store_state_record(cfg_str(cfg, CFG_AGENT_STATE_DIR),
	    "verify-state.json", att, error == NULL, err, sizeof(err)) == -1)
		log_warnx("verify: cannot record the state (%s); doctor will "
		    "not see this verify: fix [agent] state_dir", err);
	json_object_put(att);
}

int
restore_verify(const struct cfg *cfg, const char *which, int do_restore,
    FILE *out)
{
	struct store	*st;
	json_object	*rec = NULL;
	PGconn		*conn = NULL, *scratch = NULL;
	char		 err[1024] = "", name[64];
	char		*argv[9], **env = NULL;
	int		 rc;

	st = store_open(cfg, err, sizeof(err));
	if (st == NULL) {
		log_errx("verify: %s", err);
		return EX_CONFIG;
	}
	rec = find_record(st, which);
	if (rec == NULL) {
		rc = EX_NOINPUT;
		goto out;
	}
	if (!do_restore) {
		argv[0] = (char *)cfg_str(cfg, CFG_B_PG_RESTORE);
		argv[1] = "--file=/dev/null";
		argv[2] = NULL;
		rc = replay(st, rec, argv, environ, err, sizeof(err));
		goto done;
	}
	conn = db_connect(cfg, "verify");
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	snprintf(name, sizeof(name), "oa_verify_%d", (int)getpid());
	if (db_ddl(conn, "CREATE", name, "") == -1) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	env = backup_child_env(conn);
	argv[0] = (char *)cfg_str(cfg, CFG_B_PG_RESTORE);
	argv[1] = "--no-owner";
	argv[2] = "--no-privileges";
	argv[3] = "--exit-on-error";
	argv[4] = "--dbname";
	argv[5] = name;
	argv[6] = NULL;
	rc = replay(st, rec, argv, env, err, sizeof(err));
	if (rc == EX_OK) {
		scratch = connect_to(conn, name);
		if (scratch == NULL || db_cmd(scratch, "restore: analyze",
		    "ANALYZE") == -1) {
			rc = EX_SOFTWARE;
			snprintf(err, sizeof(err), "the restored copy could not "
			    "be analysed");
		} else {
			fprintf(out, "verify: restored %s into scratch database "
			    "%s:\n", rec_str(rec, "name"), name);
			(void)row_counts(scratch, out);
		}
		PQfinish(scratch);
	}
	(void)db_ddl(conn, "DROP", name, " WITH (FORCE)");
done:
	record_verify(cfg, rec, do_restore, rc == EX_OK ? NULL : err);
	if (rc == EX_OK)
		fprintf(out, "verify: %s is good: %s bytes, crc32c %s, md5 %s "
		    "match the record and pg_restore read every block\n",
		    rec_str(rec, "name"), rec_str(rec, "stored_bytes"),
		    rec_str(rec, "crc32c"), rec_str(rec, "md5"));
	else
		log_errx("verify: %s is NOT restorable: %s; make a new backup "
		    "now and keep this one for investigation",
		    rec_str(rec, "name"), err);
out:
	backup_env_free(env);
	PQfinish(conn);
	json_object_put(rec);
	store_free(st);
	return rc;
}

int
restore_run(const struct cfg *cfg, const char *which, const char *to,
    int force, int live, FILE *out)
{
	struct store	*st;
	json_object	*rec = NULL;
	PGconn		*conn = NULL, *target = NULL;
	PGresult	*res = NULL;
	const char	*params[1] = { to };
	char		 err[1024] = "", *argv[10], **env = NULL;
	int		 rc = EX_SOFTWARE, exists, tables = 0, a = 0;

	st = store_open(cfg, err, sizeof(err));
	if (st == NULL) {
		log_errx("restore: %s", err);
		return EX_CONFIG;
	}
	rec = find_record(st, which);
	if (rec == NULL) {
		rc = EX_NOINPUT;
		goto out;
	}
	conn = db_connect(cfg, "restore");
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (strcmp(to, PQdb(conn)) == 0 && !live) {
		log_errx("restore: refusing to restore over %s, the live "
		    "database this agent is configured for; restore into "
		    "another database and switch, or pass --force --live if "
		    "you really mean it", to);
		rc = EX_USAGE;
		goto out;
	}
	res = db_exec(conn, "restore: looking for the database",
	    "SELECT 1 FROM pg_database WHERE datname = $1", 1, params);
	if (res == NULL)
		goto out;
	exists = PQntuples(res) > 0;
	if (exists) {
		target = connect_to(conn, to);
		if (target == NULL)
			goto out;
		PQclear(res);
		res = db_exec(target, "restore: inspecting the database",
		    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
		    "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND "
		    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND "
		    "n.nspname NOT LIKE 'pg_toast%'", 0, NULL);
		if (res == NULL)
			goto out;
		tables = atoi(PQgetvalue(res, 0, 0));
		PQfinish(target);
		target = NULL;
		if (tables > 0 && !force) {
			log_errx("restore: database %s exists and has %d "
			    "tables; pass --force to replace its contents, or "
			    "restore into a new database", to, tables);
			rc = EX_DATAERR;
			goto out;
		}
	} else if (db_ddl(conn, "CREATE", to, "") == -1)
		goto out;
	env = backup_child_env(conn);
	argv[a++] = (char *)cfg_str(cfg, CFG_B_PG_RESTORE);
	argv[a++] = "--no-owner";
	argv[a++] = "--exit-on-error";
	if (tables > 0) {
		argv[a++] = "--clean";
		argv[a++] = "--if-exists";
	}
	argv[a++] = "--dbname";
	argv[a++] = (char *)to;
	argv[a] = NULL;
	rc = replay(st, rec, argv, env, err, sizeof(err));
	if (rc == EX_OK)
		fprintf(out, "restore: %s restored into database %s\n",
		    rec_str(rec, "name"), to);
	else
		log_errx("restore: %s into %s failed: %s", rec_str(rec, "name"),
		    to, err);
out:
	PQclear(res);
	backup_env_free(env);
	PQfinish(target);
	PQfinish(conn);
	json_object_put(rec);
	store_free(st);
	return rc;
}
