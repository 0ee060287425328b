/*
 * test_doctor.c - doctor and metrics against the real PostgreSQL: a healthy
 * setup exits 0; table-driven fixtures turn each check ok, warn or crit;
 * an unreachable server or a broken configuration exits 2 with the other
 * checks unknown; the JSON validates against docs/doctor.schema.json and
 * the textfile parses with prometheus_client.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fake.h"
#include "helpers.h"
#include "version.h"

struct dt {
	char		*db;
	char		 dir[64], ini[128];
	const char	*env[8];
	char		 dbv[128], cfgv[192], extra_env[160];
};

/* An ISO 8601 UTC time 'ago' seconds in the past. */
static void
iso_ago(char *buf, size_t len, long ago)
{
	time_t t = time(NULL) - ago;

	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	cr_assert_not_null(fp, "%s", path);
	fputs(text, fp);
	fclose(fp);
}

/* State files as backup and verify write them, 'ago' seconds old. */
static void
write_backup_state(struct dt *t, long ago, int last_ok)
{
	char path[256], when[32], text[1024];

	iso_ago(when, sizeof(when), ago);
	snprintf(text, sizeof(text), "{\"last_success\": {\"name\": "
	    "\"db/x.dump.zst\", \"created\": \"%s\", \"stored_bytes\": 100, "
	    "\"duration_ms\": 10, \"ok\": true}, \"last_attempt\": {\"name\": "
	    "\"db/y.dump.zst\", \"created\": \"%s\", \"ok\": %s%s}}", when, when,
	    last_ok ? "true" : "false", last_ok ? "" :
	    ", \"error\": \"pg_dump exited 1\"");
	snprintf(path, sizeof(path), "%s/state/backup-state.json", t->dir);
	write_file(path, text);
}

static void
write_verify_state(struct dt *t, long ago, int last_ok)
{
	char path[256], when[32], text[1024];

	iso_ago(when, sizeof(when), ago);
	snprintf(text, sizeof(text), "{\"last_success\": {\"name\": "
	    "\"db/x.dump.zst\", \"verified_at\": \"%s\", \"restored\": true, "
	    "\"ok\": true}, \"last_attempt\": {\"name\": \"db/x.dump.zst\", "
	    "\"verified_at\": \"%s\", \"ok\": %s}}", when, when,
	    last_ok ? "true" : "false");
	snprintf(path, sizeof(path), "%s/state/verify-state.json", t->dir);
	write_file(path, text);
}

/* maintain-state.json 'ago' seconds old; ago < 0: none; ok 0: failed. */
static void
write_maintain_state(struct dt *t, long ago, int last_ok)
{
	char path[256], when[32], text[1024];

	snprintf(path, sizeof(path), "%s/state/maintain-state.json", t->dir);
	if (ago < 0) {
		unlink(path);
		return;
	}
	iso_ago(when, sizeof(when), ago);
	snprintf(text, sizeof(text), "{\"last_success\": {\"started\": "
	    "\"%s\", \"ok\": true}, \"last_run\": {\"started\": \"%s\", "
	    "\"ok\": %s, \"error\": \"cleanup: lock timeout\"}}", when, when,
	    last_ok ? "true" : "false");
	write_file(path, text);
}

/*
 * A migrated database, a configuration with extra appended, a live
 * worker serving noop, and fresh backup and verify states: healthy.
 */
static void
dt_setup(struct dt *t, const char *extra)
{
	char	 text[2048], cmd[256];
	PGconn	*c;

	memset(t, 0, sizeof(*t));
	t->db = migrated_db();
	snprintf(t->dir, sizeof(t->dir), "/tmp/oa-dt-%d-%ld", (int)getpid(),
	    (long)random());
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/state %s/backups",
	    t->dir, t->dir, t->dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(t->ini, sizeof(t->ini), "%s/agent.ini", t->dir);
	/* No installer state (agent.package skipped), whatever the host has. */
	snprintf(text, sizeof(text), "[agent]\nstate_dir = %s/state\n[backup]\n"
	    "target = file://%s/backups\n[handler.noop]\nkind = noop\n"
	    "[doctor]\ninstall_state = %s/install-state.json\n%s", t->dir,
	    t->dir, t->dir, extra ? extra : "");
	write_file(t->ini, text);
	snprintf(t->dbv, sizeof(t->dbv), "POSTGRES_DB=%s", t->db);
	t->env[0] = t->dbv;
	t->env[1] = "POSTGRES_USER=postgres";
	t->env[2] = "NO_COLOR=1";
	t->env[3] = NULL;
	c = db_open(t->db);
	db_do(c, "INSERT INTO workers (worker_id, host, pid, version, "
	    "task_types, concurrency) VALUES ('w1', 'test', 1, 'test', "
	    "'{noop}', 4)");
	PQfinish(c);
	write_backup_state(t, 3600, 1);
	write_verify_state(t, 86400, 1);
	write_maintain_state(t, 600, 1);
}

static void
dt_teardown(struct dt *t)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	(void)!system(cmd);
	free(t->db);
}

/* doctor --json [more]; returns the parsed document (caller puts). */
static json_object *
doctor_json(struct dt *t, int *status, const char *more)
{
	const char	*args[8] = { "-c", t->ini, "doctor", "--json", NULL };
	struct run	 r;
	json_object	*doc;

	if (more != NULL) {
		args[4] = more;
		args[5] = NULL;
	}
	*status = run_agent(&r, t->env, NULL, args);
	doc = json_tokener_parse(r.out);
	cr_assert_not_null(doc, "doctor --json printed no JSON: %s / %s",
	    r.out, r.err);
	run_free(&r);
	return doc;
}

static json_object *
find_check(json_object *doc, const char *id)
{
	json_object	*arr = json_object_object_get(doc, "checks"), *c;
	size_t		 i;

	for (i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		if (strcmp(json_object_get_string(json_object_object_get(c,
		    "id")), id) == 0)
			return c;
	}
	cr_assert_fail("check %s missing", id);
	return NULL;
}

static const char *
field(json_object *c, const char *key)
{
	return json_object_get_string(json_object_object_get(c, key));
}

Test(doctor, healthy_setup_exits_0_and_validates, .timeout = 60)
{
	struct dt	 t;
	json_object	*doc, *arr, *c;
	char		 path[256], cmd[768];
	int		 status;
	size_t		 i;
	FILE		*fp;

	dt_setup(&t, NULL);
	doc = doctor_json(&t, &status, NULL);
	arr = json_object_object_get(doc, "checks");
	cr_assert_geq(json_object_array_length(arr), 20);
	for (i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		cr_expect(strcmp(field(c, "status"), "ok") == 0 ||
		    strcmp(field(c, "status"), "skipped") == 0,
		    "%s is %s: %s / %s", field(c, "id"), field(c, "status"),
		    field(c, "summary"), field(c, "detail"));
	}
	cr_assert_eq(status, 0);
	cr_assert_str_eq(field(doc, "status"), "ok");
	cr_assert_str_eq(field(find_check(doc, "clock"), "status"), "skipped");

	/* The document validates against the published schema. */
	snprintf(path, sizeof(path), "%s/doctor.json", t.dir);
	fp = fopen(path, "w");
	fputs(json_object_to_json_string(doc), fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "%s/tests/check_formats.py doctor-json "
	    "%s/docs/doctor.schema.json %s", getenv("OA_SOURCE_DIR"),
	    getenv("OA_SOURCE_DIR"), path);
	cr_assert_eq(system(cmd), 0, "doctor --json does not match "
	    "docs/doctor.schema.json");
	json_object_put(doc);
	dt_teardown(&t);
}

/* One fixture: configuration, SQL and state that make check id status. */
struct fixture {
	const char	*name;
	const char	*ini;		/* [doctor] (or later) keys */
	const char	*sql;		/* run in the test database, or NULL */
	long		 backup_ago;	/* backup state age; -1: no state */
	int		 backup_ok;	/* last attempt succeeded */
	long		 verify_ago;	/* -1: no state */
	int		 verify_ok;
	const char	*id;
	const char	*want;		/* status */
	int		 exit_code;	/* doctor's, -1: do not check */
	const char	*fix_has;	/* substring of the fix line, or NULL */
	long		 maintain_ago;	/* 0: fresh; -1: no state */
	int		 maintain_failed;
};

#define STARTED(id, lease) "INSERT INTO tasks (task_id, skill_name, " \
	"task_type, status, source_repo, target_repo, change_event, " \
	"relationship_config, started_at, attempt_count, worker_id, " \
	"lease_expires_at) VALUES ('" id "', 's', 'noop', 'started', 'a/b', " \
	"'c/d', '{}', '{}', now() - interval '5 minutes', 1, 'gone', " lease ")"
#define QUEUED(n, type, runat) "INSERT INTO tasks (task_id, skill_name, " \
	"task_type, source_repo, target_repo, change_event, " \
	"relationship_config, run_at) SELECT 'q' || g, 's', '" type "', " \
	"'a/b', 'c/d', '{}', '{}', " runat " FROM generate_series(1, " n ") g"

static const struct fixture fixtures[] = {
	{ "expired lease warns", NULL,
	    STARTED("s1", "now() - interval '1 minute'"), 3600, 1, 3600, 1,
	    "queue.stuck", "warn", 1, "reset-stuck", 0, 0 },
	{ "expired leases over stuck_crit", "stuck_crit = 2\n",
	    STARTED("s1", "now() - interval '1 minute'") ";"
	    STARTED("s2", "now() - interval '1 minute'"), 3600, 1, 3600, 1,
	    "queue.stuck", "crit", 2, "reset-stuck", 0, 0 },
	{ "fresh lease is fine", NULL,
	    STARTED("s1", "now() + interval '1 minute'"), 3600, 1, 3600, 1,
	    "queue.stuck", "ok", 0, NULL, 0, 0 },
	{ "unserved type", NULL, QUEUED("2", "mystery", "now()"), 3600, 1,
	    3600, 1, "queue.unserved", "warn", 1, "[handler.TYPE]", 0, 0 },
	{ "depth warn", "queue_depth_warn = 3\nqueue_depth_crit = 10\n",
	    QUEUED("4", "noop", "now()"), 3600, 1, 3600, 1, "queue.depth",
	    "warn", -1, "add workers", 0, 0 },
	{ "depth crit", "queue_depth_warn = 3\nqueue_depth_crit = 4\n",
	    QUEUED("4", "noop", "now()"), 3600, 1, 3600, 1, "queue.depth",
	    "crit", -1, NULL, 0, 0 },
	{ "later tasks are not depth", "queue_depth_warn = 3\n",
	    QUEUED("4", "noop", "now() + interval '1 hour'"), 3600, 1, 3600,
	    1, "queue.depth", "ok", -1, NULL, 0, 0 },
	{ "old runnable task", NULL,
	    QUEUED("1", "noop", "now() - interval '2 hours'"), 3600, 1, 3600,
	    1, "queue.age", "crit", 2, NULL, 0, 0 },
	{ "waiting task warns", NULL,
	    QUEUED("1", "noop", "now() - interval '20 minutes'"), 3600, 1,
	    3600, 1, "queue.age", "warn", -1, NULL, 0, 0 },
	{ "failure rate", NULL, STARTED("s1", "now() + interval '1 minute'")
	    "; INSERT INTO task_history (task_id, status) SELECT 's1', "
	    "CASE WHEN g % 4 = 0 THEN 'finished' ELSE 'failed' END FROM "
	    "generate_series(1, 20) g", 3600, 1, 3600, 1, "queue.failures",
	    "crit", 2, "list --status failed", 0, 0 },
	{ "few failures are not judged", NULL,
	    STARTED("s1", "now() + interval '1 minute'") "; INSERT INTO "
	    "task_history (task_id, status) SELECT 's1', 'failed' FROM "
	    "generate_series(1, 3) g", 3600, 1, 3600, 1, "queue.failures",
	    "ok", 0, NULL, 0, 0 },
	{ "no worker, nothing waiting", NULL, "DELETE FROM workers", 3600, 1,
	    3600, 1, "queue.workers", "warn", 1, "systemctl start", 0, 0 },
	{ "no worker, tasks waiting", NULL, "DELETE FROM workers;"
	    QUEUED("1", "noop", "now()"), 3600, 1, 3600, 1, "queue.workers",
	    "crit", 2, NULL, 0, 0 },
	{ "silent worker is not alive", NULL, "UPDATE workers SET "
	    "heartbeat_at = now() - interval '10 minutes'", 3600, 1, 3600, 1,
	    "queue.workers", "warn", -1, NULL, 0, 0 },
	{ "wraparound threshold", "xid_age_warn = 1\n", NULL, 3600, 1, 3600,
	    1, "db.wraparound", "warn", 1, "VACUUM (FREEZE)", 0, 0 },
	{ "disk threshold warn", "disk_free_warn_percent = 100\n"
	    "disk_free_crit_percent = 0\n", NULL, 3600, 1, 3600, 1, "db.disk",
	    "warn", 1, "resize", 0, 0 },
	{ "disk threshold crit", "disk_free_crit_percent = 100\n", NULL, 3600,
	    1, 3600, 1, "db.disk", "crit", 2, NULL, 0, 0 },
	{ "pending migration", NULL, "DELETE FROM schema_migrations WHERE "
	    "version = (SELECT max(version) FROM schema_migrations)", 3600, 1,
	    3600, 1, "db.schema", "warn", -1, "schema init", 0, 0 },
	{ "edited migration", NULL, "UPDATE schema_migrations SET checksum = "
	    "repeat('0', 64) WHERE version = 1", 3600, 1, 3600, 1, "db.schema",
	    "crit", 2, "schema status", 0, 0 },
	{ "backup a day and a bit old", NULL, NULL, 30 * 3600, 1, 3600, 1,
	    "backup.age", "warn", 1, "orchestrator-agent backup", 0, 0 },
	{ "backup two days old", NULL, NULL, 60 * 3600, 1, 3600, 1,
	    "backup.age", "crit", 2, NULL, 0, 0 },
	{ "no backup at all", NULL, NULL, -1, 1, 3600, 1, "backup.age",
	    "warn", 1, "list-timers", 0, 0 },
	{ "last backup attempt failed", NULL, NULL, 3600, 0, 3600, 1,
	    "backup.age", "warn", 1, NULL, 0, 0 },
	{ "backup age thresholds", "backup_age_warn_hours = 0\n"
	    "backup_age_crit_hours = 0\n", NULL, 100 * 3600, 1, 3600, 1,
	    "backup.age", "ok", 0, NULL, 0, 0 },
	{ "never verified", NULL, NULL, 3600, 1, -1, 1, "backup.verify",
	    "warn", 1, "--restore", 0, 0 },
	{ "verify too old", NULL, NULL, 3600, 1, 9 * 86400, 1,
	    "backup.verify", "warn", 1, NULL, 0, 0 },
	{ "verify failed", NULL, NULL, 3600, 1, 3600, 0, "backup.verify",
	    "crit", 2, "new backup", 0, 0 },
	{ "maintenance never ran", NULL, NULL, 3600, 1, 3600, 1, "maintain",
	    "warn", 1, "orchestrator-agent maintain", -1, 0 },
	{ "maintenance is late", NULL, NULL, 3600, 1, 3600, 1, "maintain",
	    "warn", 1, "maintain", 5 * 3600, 0 },
	{ "last maintenance failed", NULL, NULL, 3600, 1, 3600, 1, "maintain",
	    "warn", 1, "which step", 0, 1 },
};

Test(doctor, fixtures_turn_checks_ok_warn_crit, .timeout = 240)
{
	const struct fixture	*f;
	struct dt		 t;
	json_object		*doc, *c;
	PGconn			*conn;
	char			 path[256];
	size_t			 i;
	int			 status;

	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		f = &fixtures[i];
		dt_setup(&t, f->ini);
		if (f->sql != NULL) {
			conn = db_open(t.db);
			db_do(conn, f->sql);
			PQfinish(conn);
		}
		snprintf(path, sizeof(path), "%s/state/backup-state.json",
		    t.dir);
		if (f->backup_ago < 0)
			unlink(path);
		else
			write_backup_state(&t, f->backup_ago, f->backup_ok);
		snprintf(path, sizeof(path), "%s/state/verify-state.json",
		    t.dir);
		if (f->verify_ago < 0)
			unlink(path);
		else
			write_verify_state(&t, f->verify_ago, f->verify_ok);
		if (f->maintain_ago != 0 || f->maintain_failed)
			write_maintain_state(&t, f->maintain_ago == 0 ? 600 :
			    f->maintain_ago, !f->maintain_failed);
		doc = doctor_json(&t, &status, NULL);
		c = find_check(doc, f->id);
		cr_expect_str_eq(field(c, "status"), f->want,
		    "%s: %s is %s (%s), want %s", f->name, f->id,
		    field(c, "status"), field(c, "summary"), f->want);
		if (f->exit_code >= 0)
			cr_expect_eq(status, f->exit_code, "%s: doctor exited "
			    "%d, want %d", f->name, status, f->exit_code);
		if (f->fix_has != NULL)
			cr_expect(strstr(field(c, "fix"), f->fix_has) != NULL,
			    "%s: fix '%s' lacks '%s'", f->name, field(c, "fix"),
			    f->fix_has);
		json_object_put(doc);
		dt_teardown(&t);
	}
}

Test(doctor, idle_in_transaction_session, .timeout = 60)
{
	static const struct { const char *ini, *want; int code; } cases[] = {
		{ "idle_in_transaction_warn_seconds = 1\n", "warn", 1 },
		{ "idle_in_transaction_warn_seconds = 1\n"
		    "idle_in_transaction_crit_seconds = 1\n", "crit", 2 },
		{ "", "ok", 0 },
	};
	struct dt	 t;
	json_object	*doc, *c;
	PGconn		*idle;
	size_t		 i;
	int		 status;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dt_setup(&t, cases[i].ini);
		idle = db_open(t.db);
		db_do(idle, "SET application_name = 'stuck-client'");
		db_do(idle, "BEGIN");
		db_do(idle, "SELECT count(*) FROM tasks");
		sleep(2);
		doc = doctor_json(&t, &status, NULL);
		c = find_check(doc, "db.sessions");
		cr_expect_str_eq(field(c, "status"), cases[i].want, "%s: %s",
		    cases[i].ini, field(c, "summary"));
		if (cases[i].code != 0) {
			cr_expect_eq(status, cases[i].code);
			cr_expect(strstr(field(c, "detail"), "stuck-client"),
			    "the detail names the session: %s",
			    field(c, "detail"));
			cr_expect(strstr(field(c, "fix"), "pg_terminate_backend"),
			    "%s", field(c, "fix"));
		}
		json_object_put(doc);
		PQfinish(idle);
		dt_teardown(&t);
	}
}

Test(doctor, connection_slots, .timeout = 30)
{
	struct dt	 t;
	json_object	*doc, *c;
	PGconn		*held[3];
	int		 status, i;

	dt_setup(&t, "connections_warn_percent = 2\n"
	    "connections_crit_percent = 90\n");
	for (i = 0; i < 3; i++)
		held[i] = db_open(t.db);
	doc = doctor_json(&t, &status, NULL);
	c = find_check(doc, "db.connections");
	cr_assert_str_eq(field(c, "status"), "warn", "%s", field(c, "summary"));
	cr_assert(strstr(field(c, "fix"), "pg_stat_activity"), "%s",
	    field(c, "fix"));
	json_object_put(doc);
	for (i = 0; i < 3; i++)
		PQfinish(held[i]);
	dt_teardown(&t);
}

Test(doctor, dead_tuples_in_queue_tables, .timeout = 60)
{
	struct dt	 t;
	json_object	*doc = NULL, *c;
	PGconn		*conn;
	int		 status, tries;

	dt_setup(&t, "dead_tuples_min = 100\ndead_tuples_warn_percent = 20\n"
	    "dead_tuples_crit_percent = 90\n");
	conn = db_open(t.db);
	db_do(conn, "ALTER TABLE task_history SET (autovacuum_enabled = off)");
	db_do(conn, "INSERT INTO tasks (task_id, skill_name, task_type, "
	    "source_repo, target_repo, change_event, relationship_config, "
	    "status) VALUES ('h', 's', 'noop', 'a/b', 'c/d', '{}', '{}', "
	    "'finished')");
	db_do(conn, "INSERT INTO task_history (task_id, status) SELECT 'h', "
	    "'finished' FROM generate_series(1, 1000)");
	db_do(conn, "DELETE FROM task_history WHERE id % 2 = 0");
	PQfinish(conn);
	/* Statistics reach the cumulative stats system within a second. */
	for (tries = 0; tries < 40; tries++) {
		json_object_put(doc);
		doc = doctor_json(&t, &status, NULL);
		c = find_check(doc, "db.vacuum");
		if (strcmp(field(c, "status"), "warn") == 0)
			break;
		usleep(250000);
	}
	cr_assert_str_eq(field(c, "status"), "warn", "%s", field(c, "summary"));
	cr_assert(strstr(field(c, "summary"), "task_history"), "%s",
	    field(c, "summary"));
	cr_assert(strstr(field(c, "fix"), "maintain vacuum"), "%s",
	    field(c, "fix"));
	json_object_put(doc);
	dt_teardown(&t);
}

Test(doctor, unreachable_database_exits_2_others_unknown, .timeout = 60)
{
	struct dt	 t;
	json_object	*doc, *arr, *c;
	const char	*id, *st;
	size_t		 i;
	int		 status;

	dt_setup(&t, NULL);
	/* Nothing listens on port 1. */
	t.env[3] = "POSTGRES_PORT=1";
	t.env[4] = "POSTGRES_HOST=127.0.0.1";
	t.env[5] = NULL;
	doc = doctor_json(&t, &status, NULL);
	cr_assert_eq(status, 2);
	cr_assert_str_eq(field(doc, "status"), "crit");
	cr_assert_str_eq(field(find_check(doc, "db.connect"), "status"),
	    "crit");
	cr_assert(strstr(field(find_check(doc, "db.connect"), "fix"),
	    "PostgreSQL runs"));
	arr = json_object_object_get(doc, "checks");
	for (i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		id = field(c, "id");
		st = field(c, "status");
		if ((strncmp(id, "db.", 3) == 0 && strcmp(id, "db.connect")) ||
		    strncmp(id, "queue.", 6) == 0)
			cr_expect_str_eq(st, "unknown", "%s is %s", id, st);
	}
	/* Checks that need no database still report. */
	cr_assert_str_eq(field(find_check(doc, "backup.age"), "status"), "ok");
	json_object_put(doc);
	dt_teardown(&t);
}

Test(doctor, broken_config_is_crit_not_a_crash, .timeout = 30)
{
	struct dt	 t;
	json_object	*doc;
	struct run	 r;
	int		 status;

	dt_setup(&t, "queue_depth_warn = lots\n");
	doc = doctor_json(&t, &status, NULL);
	cr_assert_eq(status, 2);
	cr_assert_str_eq(field(find_check(doc, "config"), "status"), "crit");
	cr_assert(strstr(field(find_check(doc, "config"), "detail"),
	    "agent.ini:"), "names FILE:LINE: %s",
	    field(find_check(doc, "config"), "detail"));
	cr_assert_str_eq(field(find_check(doc, "db.connect"), "status"),
	    "unknown");
	json_object_put(doc);

	/* Text output: one line per check, the fix under the problem. */
	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "doctor",
	    NULL });
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.out, "[\u2717] config"), "%s", r.out);
	cr_assert(strstr(r.out, "\u2192 correct the line"), "%s", r.out);
	cr_assert(strstr(r.out, "doctor: crit:"), "%s", r.out);
	cr_assert_null(strchr(r.out, '\033'), "no colour without a TTY");
	run_free(&r);
	dt_teardown(&t);
}

/*
 * The VM installer refused a package: doctor exits 2 naming it and the
 * installer's message, escaped (tests/unit/test_doctor_package.c has every
 * branch), with the fix under it; the version is this binary's.
 */
Test(doctor, installer_refused_package, .timeout = 30)
{
	struct dt	 t;
	struct run	 r;
	char		 path[256], ver[128];

	dt_setup(&t, NULL);
	snprintf(path, sizeof(path), "%s/install-state.json", t.dir);
	write_file(path, "{\"installed\": {\"version\": \"0.1.0+1.gaaaaaaaaaaaa\", "
	    "\"sha256\": \"0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef\", \"object\": \"gs://b/packages/old.deb\", "
	    "\"at\": \"2026-12-02T18:00:00Z\"}, \"last\": {\"result\": "
	    "\"refused\", \"at\": \"2026-12-02T19:00:00Z\", \"object\": "
	    "\"gs://b/packages/new.deb\", \"version\": null, \"sha256\": null, "
	    "\"message\": \"sha256 mismatch\\u001b]0;pwned\\u0007\"}}");
	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "doctor",
	    "--only", "agent.package", NULL });
	cr_assert_eq(r.status, 2, "%s / %s", r.out, r.err);
	cr_assert(strstr(r.out, "[\u2717] agent.package          the installer "
	    "refused gs://b/packages/new.deb (sha256 mismatch\\x1b]0;pwned"
	    "\\x07); still running 0.1.0+1.gaaaaaaaaaaaa"), "%s", r.out);
	cr_assert(strstr(r.out, "\u2192 check the package Terraform uploaded"),
	    "%s", r.out);
	cr_assert_null(strchr(r.out, '\033'), "%s", r.out);
	run_free(&r);

	run_agent(&r, t.env, NULL, (const char *[]){ "--version", NULL });
	snprintf(ver, sizeof(ver), "orchestrator-agent %s\n", agent_version);
	cr_assert_str_eq(r.out, ver);
	run_free(&r);
	dt_teardown(&t);
}

Test(doctor, only_skip_and_bad_arguments, .timeout = 30)
{
	struct dt	 t;
	struct run	 r;
	json_object	*doc;

	dt_setup(&t, NULL);
	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "doctor",
	    "--json", "--only", "db.connect,queue.depth", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	doc = json_tokener_parse(r.out);
	cr_assert_eq(json_object_array_length(json_object_object_get(doc,
	    "checks")), 2);
	json_object_put(doc);
	run_free(&r);

	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "doctor",
	    "--skip", "queue.dept", NULL });
	cr_assert_eq(r.status, 3, "a typo is unknown, not ok");
	cr_assert(strstr(r.err, "unknown check 'queue.dept'"), "%s", r.err);
	run_free(&r);

	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "doctor",
	    "--bogus", NULL });
	cr_assert_eq(r.status, 3);
	cr_assert(strstr(r.err, "--bogus"), "%s", r.err);
	run_free(&r);
	dt_teardown(&t);
}

Test(doctor, metrics_textfile_parses_as_prometheus, .timeout = 60)
{
	struct dt	 t;
	struct run	 r;
	PGconn		*conn;
	char		 path[256], cmd[768], *text;
	FILE		*fp;
	char		 line[1024];
	int		 queued = 0, up = 0, status_lines = 0;
	struct stat	 sb;

	dt_setup(&t, NULL);
	conn = db_open(t.db);
	db_do(conn, QUEUED("3", "noop", "now()"));
	PQfinish(conn);
	snprintf(path, sizeof(path), "%s/orchestrator-agent.prom", t.dir);
	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "metrics",
	    "--textfile", path, NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0644, "node_exporter must read it");

	/* prometheus_client's parser reads it back; we check its view. */
	snprintf(cmd, sizeof(cmd), "%s/tests/check_formats.py prometheus %s",
	    getenv("OA_SOURCE_DIR"), path);
	fp = popen(cmd, "r");
	cr_assert_not_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (strcmp(line, "orchestrator_queue_tasks{status=\"queued\"} "
		    "3.0\n") == 0)
			queued = 1;
		if (strcmp(line, "orchestrator_database_up 1.0\n") == 0)
			up = 1;
		if (strncmp(line, "orchestrator_check_status{", 26) == 0)
			status_lines++;
	}
	cr_assert_eq(pclose(fp), 0, "the textfile does not parse");
	cr_assert(queued, "queued count missing");
	cr_assert(up, "orchestrator_database_up missing");
	cr_assert_geq(status_lines, 15);
	text = read_file(path);
	cr_assert(strstr(text, "orchestrator_backup_last_success_timestamp_"
	    "seconds "), "%s", text);
	free(text);

	/* An unwritable destination fails and keeps nothing half-written. */
	run_agent(&r, t.env, NULL, (const char *[]){ "-c", t.ini, "metrics",
	    "--textfile", "/nonexistent/dir/x.prom", NULL });
	cr_assert_neq(r.status, 0);
	cr_assert(strstr(r.err, "metrics: cannot write the textfile"), "%s",
	    r.err);
	run_free(&r);
	dt_teardown(&t);
}

/* Cloud Storage: the fake's clock and permissions drive clock and bucket. */
Test(doctor, bucket_permissions_and_clock_skew, .timeout = 90)
{
	static const struct {
		const char *config, *id, *want;
	} cases[] = {
		{ "{\"buckets\": {\"bk\": {}}}", "backup.bucket", "ok" },
		{ "{\"buckets\": {\"bk\": {\"deny\": "
		    "[\"storage.objects.delete\"]}}}", "backup.bucket", "crit" },
		{ "{\"buckets\": {\"bk\": {}}}", "clock", "ok" },
		{ "{\"buckets\": {\"bk\": {}}, \"clock_offset\": 30}", "clock",
		    "warn" },
		{ "{\"buckets\": {\"bk\": {}}, \"clock_offset\": -300}", "clock",
		    "crit" },
	};
	struct fake	 f;
	struct dt	 t;
	json_object	*doc, *c;
	char		 emu[96], ini[512];
	size_t		 i;
	int		 status;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_start(&f);
		free(fake_post(&f, "/_fake/config", cases[i].config));
		dt_setup(&t, NULL);
		snprintf(ini, sizeof(ini), "[agent]\nstate_dir = %s/state\n"
		    "[backup]\ntarget = gs://bk/pg\n", t.dir);
		write_file(t.ini, ini);
		snprintf(emu, sizeof(emu), "STORAGE_EMULATOR_HOST=%s",
		    fake_host(&f));
		t.env[3] = emu;
		t.env[4] = NULL;
		doc = doctor_json(&t, &status, NULL);
		c = find_check(doc, cases[i].id);
		cr_expect_str_eq(field(c, "status"), cases[i].want, "%s: %s "
		    "(%s)", cases[i].config, field(c, "summary"),
		    field(c, "detail"));
		if (strcmp(cases[i].want, "crit") == 0 &&
		    strcmp(cases[i].id, "backup.bucket") == 0)
			cr_expect(strstr(field(c, "summary"),
			    "storage.objects.delete"), "%s",
			    field(c, "summary"));
		json_object_put(doc);
		dt_teardown(&t);
		fake_stop(&f);
	}
}

/* Secret Manager and credentials through the fake metadata server. */
Test(doctor, secrets_and_credentials, .timeout = 90)
{
	static const struct {
		const char *secret, *faults, *secrets_want, *cred_want;
	} cases[] = {
		{ "projects/p/secrets/pgpw/versions/latest", NULL, "ok", "ok" },
		{ "projects/p/secrets/nosuch/versions/latest", NULL, "crit",
		    "ok" },
		/* The metadata server refuses tokens: nothing works. */
		{ "projects/p/secrets/pgpw/versions/latest", "[{\"op\": "
		    "\"metadata_token\", \"kind\": \"403\", \"count\": 100}]",
		    "crit", "crit" },
	};
	struct fake	 f;
	struct dt	 t;
	json_object	*doc, *c;
	char		 meta[96], ini[1024];
	size_t		 i;
	int		 status;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_start(&f);
		free(fake_post(&f, "/_fake/config", "{\"auth\": true, "
		    "\"metadata\": {\"project_id\": \"p\"}, \"secrets\": "
		    "{\"projects/p/secrets/pgpw\": [\"pw\"]}}"));
		if (cases[i].faults != NULL)
			free(fake_post(&f, "/_fake/faults", cases[i].faults));
		dt_setup(&t, NULL);
		snprintf(ini, sizeof(ini), "[agent]\nstate_dir = %s/state\n"
		    "[backup]\ntarget = file://%s/backups\n[database]\n"
		    "password_secret = %s\n[gcs]\nsecretmanager_endpoint = %s\n",
		    t.dir, t.dir, cases[i].secret, fake_url(&f));
		write_file(t.ini, ini);
		snprintf(meta, sizeof(meta), "GCE_METADATA_HOST=%s",
		    fake_host(&f));
		t.env[3] = meta;
		t.env[4] = "PGPASSWORD";
		t.env[5] = NULL;
		doc = doctor_json(&t, &status, NULL);
		c = find_check(doc, "secrets");
		cr_expect_str_eq(field(c, "status"), cases[i].secrets_want,
		    "%s: %s (%s)", cases[i].secret, field(c, "summary"),
		    field(c, "detail"));
		if (strcmp(cases[i].secrets_want, "crit") == 0)
			cr_expect(strstr(field(c, "fix"), "secretAccessor"), "%s",
			    field(c, "fix"));
		c = find_check(doc, "credentials");
		cr_expect_str_eq(field(c, "status"), cases[i].cred_want, "%s (%s)",
		    field(c, "summary"), field(c, "detail"));
		if (strcmp(cases[i].cred_want, "crit") == 0)
			cr_expect(strstr(field(c, "fix"), "service account"), "%s",
			    field(c, "fix"));
		json_object_put(doc);
		dt_teardown(&t);
		fake_stop(&f);
	}
}

/* backup.size: the latest backup against the median of those before. */
Test(doctor, backup_size_anomaly, .timeout = 60)
{
	static const struct { long latest; const char *want; } cases[] = {
		{ 1000, "ok" }, { 1300, "ok" }, { 3000, "warn" }, { 100, "warn" },
	};
	struct dt	 t;
	json_object	*doc, *c;
	char		 path[256], text[256];
	size_t		 i;
	int		 k, status;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dt_setup(&t, NULL);
		/* Five earlier records, then the latest; names sort by time. */
		for (k = 0; k < 6; k++) {
			snprintf(path, sizeof(path), "%s/backups/db-2026112%dT031500Z"
			    ".dump.zst.json", t.dir, k);
			snprintf(text, sizeof(text), "{\"name\": \"db-2026112%dT031500Z"
			    ".dump.zst\", \"stored_bytes\": %ld}", k, k < 5 ?
			    1000 + 10L * k : cases[i].latest);
			write_file(path, text);
		}
		doc = doctor_json(&t, &status, NULL);
		c = find_check(doc, "backup.size");
		cr_expect_str_eq(field(c, "status"), cases[i].want, "latest %ld: %s",
		    cases[i].latest, field(c, "summary"));
		if (strcmp(cases[i].want, "warn") == 0)
			cr_expect(strstr(field(c, "fix"), "verify --restore"), "%s",
			    field(c, "fix"));
		json_object_put(doc);
		dt_teardown(&t);
	}
}
