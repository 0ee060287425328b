/*
 * test_backup.c - pg_dump streamed through zstd/gzip to a file:// target:
 * what is stored restores, its checksums are right, failures store nothing.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "hash.h"
#include "helpers.h"

struct bk {
	char	*db;
	char	 dir[64];
	char	 ini[128];
};

static void
setup(struct bk *b, const char *compression, const char *pg_dump)
{
	char text[1024], cmd[512];
	FILE *fp;

	b->db = migrated_db();
	snprintf(cmd, sizeof(cmd), "%s/pgbench -q -i -s 1 %s >/dev/null 2>&1",
	    getenv("OA_PGBIN"), b->db);
	cr_assert_eq(system(cmd), 0, "pgbench -i failed");
	snprintf(b->dir, sizeof(b->dir), "/tmp/oa-bk-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", b->dir, b->dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(b->ini, sizeof(b->ini), "%s/agent.ini", b->dir);
	snprintf(text, sizeof(text), "[agent]\nstate_dir = %s/state\n[backup]\n"
	    "target = file://%s/store\ncompression = %s\npg_dump = %s\n",
	    b->dir, b->dir, compression, pg_dump);
	fp = fopen(b->ini, "w");
	fputs(text, fp);
	fclose(fp);
}

static void
teardown(struct bk *b)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", b->dir);
	(void)!system(cmd);
	free(b->db);
}

static char *
pg_dump_path(void)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/pg_dump", getenv("OA_PGBIN"));
	return p;
}

/* The list of backups, asserted to hold exactly one (caller puts it). */
static json_object *
only_record(struct bk *b)
{
	json_object *arr;
	struct run r;

	run_agent(&r, db_env_cfg(b->db, b->ini), NULL, (const char *[]){ "backup", "list", "--json", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	arr = json_tokener_parse(r.out);
	cr_assert_not_null(arr, "%s", r.out);
	cr_assert_eq(json_object_array_length(arr), 1, "%s", r.out);
	run_free(&r);
	return arr;
}

Test(backup, zstd_backup_checksums_and_restores, .timeout = 120)
{
	struct bk b;
	struct run r;
	json_object *arr, *rec;
	char path[512], raw[512], cmd[1024], *data;
	const char *name;
	FILE *fp;
	long len;

	setup(&b, "zstd", pg_dump_path());
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "backup: stored ") != NULL, "%s", r.out);
	run_free(&r);

	arr = only_record(&b);
	rec = json_object_array_get_idx(arr, 0);
	name = json_object_get_string(json_object_object_get(rec, "name"));
	cr_assert(strstr(name, "/") && strstr(name, ".dump.zst"), "%s", name);
	cr_assert_str_eq(json_object_get_string(json_object_object_get(rec, "compression")), "zstd");

	/* The stored bytes match the recorded CRC32C, MD5 and size. */
	snprintf(path, sizeof(path), "%s/store/%s", b.dir, name);
	fp = fopen(path, "rb");
	cr_assert_not_null(fp, "%s", path);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	data = malloc((size_t)len);
	cr_assert_eq(fread(data, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	cr_assert_eq(len, json_object_get_int64(json_object_object_get(rec, "stored_bytes")));
	{
		char crc[9], md5b[25];
		unsigned char md5[16];
		struct hash_md5 *h = hash_md5_new();

		hash_crc32c_b64(hash_crc32c(0, data, (size_t)len), crc);
		hash_md5_update(h, data, (size_t)len);
		hash_md5_peek(h, md5);
		hash_md5_b64(md5, md5b);
		hash_md5_free(h);
		cr_assert_str_eq(crc, json_object_get_string(json_object_object_get(rec, "crc32c")));
		cr_assert_str_eq(md5b, json_object_get_string(json_object_object_get(rec, "md5")));
	}
	/* It decompresses to a pg_dump archive pg_restore reads to the end. */
	{
		ZSTD_DCtx *d = ZSTD_createDCtx();
		ZSTD_inBuffer in = { data, (size_t)len, 0 };
		char out[65536];
		FILE *rf;

		snprintf(raw, sizeof(raw), "%s/raw.dump", b.dir);
		rf = fopen(raw, "wb");
		while (in.pos < in.size) {
			ZSTD_outBuffer o = { out, sizeof(out), 0 };
			size_t ret = ZSTD_decompressStream(d, &o, &in);

			cr_assert(!ZSTD_isError(ret), "%s", ZSTD_getErrorName(ret));
			fwrite(out, 1, o.pos, rf);
		}
		fclose(rf);
		ZSTD_freeDCtx(d);
	}
	cr_assert_eq(json_object_get_int64(json_object_object_get(rec, "raw_bytes")) > len, 1);
	snprintf(cmd, sizeof(cmd), "%s/pg_restore -f /dev/null %s", getenv("OA_PGBIN"), raw);
	cr_assert_eq(system(cmd), 0, "pg_restore could not read the dump");
	/* Restored into a new database, the rows are all there. */
	{
		char *db2 = fresh_db(), *v;
		PGconn *c;

		snprintf(cmd, sizeof(cmd), "%s/pg_restore --no-owner -d %s %s", getenv("OA_PGBIN"), db2, raw);
		cr_assert_eq(system(cmd), 0, "restore failed");
		c = db_open(db2);
		v = db_value(c, "SELECT count(*) FROM pgbench_accounts");
		cr_assert_str_eq(v, "100000");
		free(v);
		v = db_value(c, "SELECT count(*) FROM schema_migrations");
		cr_assert(atoi(v) >= 2);
		free(v);
		PQfinish(c);
		free(db2);
	}
	/* The state file names it as the last success. */
	snprintf(path, sizeof(path), "%s/state/backup-state.json", b.dir);
	{
		json_object *st = json_object_from_file(path), *ls;

		cr_assert_not_null(st);
		ls = json_object_object_get(st, "last_success");
		cr_assert_str_eq(json_object_get_string(json_object_object_get(ls, "name")), name);
		json_object_put(st);
	}
	free(data);
	json_object_put(arr);
	teardown(&b);
}

Test(backup, failed_dump_stores_nothing, .timeout = 60)
{
	struct bk b;
	struct run r;
	char path[256], cmd[512];
	json_object *st, *la;

	setup(&b, "zstd", "/nonexistent/pg_dump");
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 70, "%s", r.err);
	cr_assert(strstr(r.err, "cannot run /nonexistent/pg_dump") && strstr(r.err, "nothing was stored"), "%s", r.err);
	run_free(&r);
	snprintf(cmd, sizeof(cmd), "test -z \"$(find %s/store -type f 2>/dev/null)\"", b.dir);
	cr_assert_eq(system(cmd), 0, "a failed backup left files behind");
	snprintf(path, sizeof(path), "%s/state/backup-state.json", b.dir);
	st = json_object_from_file(path);
	cr_assert_not_null(st);
	la = json_object_object_get(st, "last_attempt");
	cr_assert_eq(json_object_get_boolean(json_object_object_get(la, "ok")), 0);
	cr_assert_null(json_object_object_get(st, "last_success"));
	json_object_put(st);
	teardown(&b);
}

/* pg_dump that fails half-way (a broken server or disk): nothing published. */
Test(backup, dump_error_midway_stores_nothing, .timeout = 60)
{
	struct bk b;
	struct run r;
	char script[128], cmd[512];
	FILE *fp;

	snprintf(script, sizeof(script), "/tmp/oa-fake-dump-%d.sh", (int)getpid());
	fp = fopen(script, "w");
	fputs("#!/bin/sh\nhead -c 300000 /dev/urandom\necho 'pg_dump: error: query failed: server closed the connection' >&2\nexit 1\n", fp);
	fclose(fp);
	chmod(script, 0755);
	setup(&b, "gzip", script);
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 70, "%s", r.err);
	cr_assert(strstr(r.err, "pg_dump failed (exit status 1): pg_dump: error: query failed") != NULL, "%s", r.err);
	run_free(&r);
	snprintf(cmd, sizeof(cmd), "test -z \"$(find %s/store -type f 2>/dev/null)\"", b.dir);
	cr_assert_eq(system(cmd), 0, "a failed backup left files behind");
	unlink(script);
	teardown(&b);
}

Test(backup, gzip_and_unreachable_database, .timeout = 60)
{
	struct bk b;
	struct run r;
	json_object *arr;
	const char *name;
	char path[512];
	unsigned char magic[2];
	FILE *fp;

	setup(&b, "gzip", pg_dump_path());
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	arr = only_record(&b);
	name = json_object_get_string(json_object_object_get(json_object_array_get_idx(arr, 0), "name"));
	cr_assert(strstr(name, ".dump.gz") != NULL, "%s", name);
	snprintf(path, sizeof(path), "%s/store/%s", b.dir, name);
	fp = fopen(path, "rb");
	cr_assert_eq(fread(magic, 1, 2, fp), 2);
	fclose(fp);
	cr_assert(magic[0] == 0x1f && magic[1] == 0x8b, "not gzip");
	json_object_put(arr);

	run_agent(&r, (const char *[]){ "POSTGRES_HOST=127.0.0.1", "POSTGRES_PORT=1",
	    "PGCONNECT_TIMEOUT=2", NULL }, NULL, (const char *[]){ "-c", b.ini, "backup", NULL });
	cr_assert_eq(r.status, 69, "%s", r.err);
	run_free(&r);
	teardown(&b);
}

static char *
stored_path(struct bk *b)
{
	json_object *arr = only_record(b);
	char *p;

	cr_assert(asprintf(&p, "%s/store/%s", b->dir, json_object_get_string(
	    json_object_object_get(json_object_array_get_idx(arr, 0), "name"))) > 0);
	json_object_put(arr);
	return p;
}

/* backup → verify → restore into a new database → same row counts. */
Test(backup, verify_and_restore_round_trip, .timeout = 120)
{
	struct bk b;
	struct run r;
	PGconn *c;
	char *v, *src;

	setup(&b, "zstd", pg_dump_path());
	c = db_open(b.db);
	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, source_repo, target_repo, "
	    "change_event, relationship_config) SELECT 'r' || g, 's', 'consumer_triage', 'a/b', 'c/d', "
	    "'{}', '{}' FROM generate_series(1, 1234) g");
	PQfinish(c);
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);

	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "verify", "latest", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "is good") != NULL, "%s", r.out);
	run_free(&r);

	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "verify", "--restore", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "public.pgbench_accounts") && strstr(r.out, "100000 rows"), "%s", r.out);
	cr_assert(strstr(r.out, "public.tasks") && strstr(r.out, "1234 rows"), "%s", r.out);
	run_free(&r);

	/* The live database is refused; a new one is created and filled. */
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "restore", "latest", "--to", b.db, NULL });
	cr_assert_eq(r.status, 64, "%s", r.err);
	cr_assert(strstr(r.err, "refusing to restore over") != NULL, "%s", r.err);
	run_free(&r);
	{
		char to[64];

		snprintf(to, sizeof(to), "%s_copy", b.db);
		run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "restore", "--to", to, NULL });
		cr_assert_eq(r.status, 0, "%s", r.err);
		run_free(&r);
		c = db_open(to);
		v = db_value(c, "SELECT (SELECT count(*) FROM tasks) || '/' || (SELECT count(*) FROM pgbench_accounts)");
		cr_assert_str_eq(v, "1234/100000");
		free(v);
		PQfinish(c);
		/* Again over the now non-empty copy: refused without --force. */
		run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "restore", "--to", to, NULL });
		cr_assert_eq(r.status, 65, "%s", r.err);
		cr_assert(strstr(r.err, "pass --force") != NULL, "%s", r.err);
		run_free(&r);
		run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "restore", "--to", to, "--force", NULL });
		cr_assert_eq(r.status, 0, "%s", r.err);
		run_free(&r);
	}
	src = stored_path(&b);
	free(src);
	teardown(&b);
}

/* A truncated or altered object fails verify (and restore), exit 65. */
Test(backup, verify_catches_truncation_and_alteration, .timeout = 120)
{
	struct bk b;
	struct run r;
	char *path, cmd[1024];
	long size;
	FILE *fp;

	setup(&b, "zstd", pg_dump_path());
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	path = stored_path(&b);
	fp = fopen(path, "rb");
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fclose(fp);

	/* One byte flipped in the middle. */
	snprintf(cmd, sizeof(cmd), "cp %s %s.orig && printf '\\377\\000' | dd of=%s bs=1 seek=%ld conv=notrunc 2>/dev/null "
	    "&& ! cmp -s %s %s.orig", path, path, path, size / 2, path, path);
	cr_assert_eq(system(cmd), 0, "the byte flip did not change the file");
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "verify", NULL });
	cr_assert_eq(r.status, 65, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "NOT restorable") != NULL, "%s", r.err);
	run_free(&r);

	/* Truncated to half. */
	snprintf(cmd, sizeof(cmd), "cp %s.orig %s && truncate -s %ld %s", path, path, size / 2, path);
	cr_assert_eq(system(cmd), 0);
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "verify", NULL });
	cr_assert_eq(r.status, 65, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "truncated") != NULL, "%s", r.err);
	run_free(&r);
	{
		char to[64];

		snprintf(to, sizeof(to), "%s_bad", b.db);
		run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "restore", "--to", to, NULL });
		cr_assert_eq(r.status, 65, "%s", r.err);
		run_free(&r);
	}
	/* Restored original: good again. */
	snprintf(cmd, sizeof(cmd), "cp %s.orig %s", path, path);
	cr_assert_eq(system(cmd), 0);
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "verify", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	free(path);
	teardown(&b);
}

/* Plant a backup record (and its file) made days ago. */
static void
plant(struct bk *b, int days_ago, int idx)
{
	char path[512], cmd[1024], created[32], name[128];
	time_t t = time(NULL) - (time_t)days_ago * 86400;
	struct tm tm;
	FILE *fp;

	gmtime_r(&t, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(name, sizeof(name), "db/%04d/x/db-%02d-%03d.dump.zst", tm.tm_year + 1900, idx, days_ago);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/store/db/%04d/x", b->dir, tm.tm_year + 1900);
	cr_assert_eq(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/store/%s", b->dir, name);
	fp = fopen(path, "w");
	fputs("data", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/store/%s.json", b->dir, name);
	fp = fopen(path, "w");
	fprintf(fp, "{\"name\": \"%s\", \"created\": \"%s\", \"stored_bytes\": 4}", name, created);
	fclose(fp);
}

static int
count_listed(struct bk *b)
{
	json_object *arr;
	struct run r;
	int n;

	run_agent(&r, db_env_cfg(b->db, b->ini), NULL, (const char *[]){ "backup", "list", "--json", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	arr = json_tokener_parse(r.out);
	n = (int)json_object_array_length(arr);
	json_object_put(arr);
	run_free(&r);
	return n;
}

Test(backup, prune_keeps_what_the_policy_says, .timeout = 60)
{
	struct bk b;
	struct run r;
	FILE *fp;
	char cmd[256];

	setup(&b, "zstd", pg_dump_path());
	plant(&b, 30, 1);
	plant(&b, 20, 2);
	plant(&b, 10, 3);
	plant(&b, 2, 4);
	plant(&b, 1, 5);
	fp = fopen(b.ini, "a");
	fputs("keep_last = 2\nkeep_days = 15\n", fp);
	fclose(fp);
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "prune", "--dry-run", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "would delete db/") && strstr(r.out, "3 kept, 2 to delete"), "%s", r.out);
	run_free(&r);
	cr_assert_eq(count_listed(&b), 5, "dry run deleted something");
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "prune", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "3 kept, 2 deleted"), "%s", r.out);
	cr_assert(strstr(r.out, "-030.dump.zst") && strstr(r.out, "-020.dump.zst"), "%s", r.out);
	run_free(&r);
	cr_assert_eq(count_listed(&b), 3);
	snprintf(cmd, sizeof(cmd), "test $(find %s/store -name '*.dump.zst' | wc -l) -eq 3", b.dir);
	cr_assert_eq(system(cmd), 0, "data files were left behind");

	/* Everything old and keep_last = 1: the newest always stays. */
	fp = fopen(b.ini, "a");
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "sed -i 's/^keep_last = 2/keep_last = 1/; s/^keep_days = 15/keep_days = 0/' %s", b.ini);
	cr_assert_eq(system(cmd), 0);
	run_agent(&r, db_env_cfg(b.db, b.ini), NULL, (const char *[]){ "backup", "prune", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	cr_assert_eq(count_listed(&b), 1);
	teardown(&b);
}
