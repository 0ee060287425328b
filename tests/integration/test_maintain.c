/*
 * test_maintain.c - "maintain" against the harness's real PostgreSQL:
 * cleanup in batches (proved by a statement-level trigger), what it keeps,
 * dry runs, rescue without a worker, vacuum, reindex of a bloated index,
 * and the lock shared with backup.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

struct mt {
	char	*db;
	char	 dir[96];
	char	 ini[160];
};

/* Write m's config: a state dir, a file:// backup target, [maintenance] keys. */
static void
reconfigure(struct mt *m, const char *maintenance)
{
	char text[1024];
	FILE *fp;

	snprintf(text, sizeof(text), "[agent]\nstate_dir = %s/state\n[backup]\n"
	    "target = file://%s/store\n[maintenance]\n%s\n", m->dir, m->dir,
	    maintenance ? maintenance : "");
	fp = fopen(m->ini, "w");
	cr_assert_not_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* A database with the schema, and a config with extra [maintenance] keys. */
static void
setup(struct mt *m, const char *maintenance)
{
	static unsigned seq;
	char cmd[256];

	m->db = migrated_db();
	snprintf(m->dir, sizeof(m->dir), "/tmp/oa-mt-%d-%u", (int)getpid(), seq++);
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", m->dir, m->dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(m->ini, sizeof(m->ini), "%s/agent.ini", m->dir);
	reconfigure(m, maintenance);
}

static void
teardown(struct mt *m)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", m->dir);
	(void)!system(cmd);
	free(m->db);
}

static int
maintain(struct mt *m, struct run *r, const char *a1, const char *a2)
{
	return run_agent(r, db_env_cfg(m->db, m->ini), NULL,
	    (const char *[]){ "maintain", a1, a2, NULL });
}

static void
assert_value(PGconn *c, const char *sql, const char *want)
{
	char *v = db_value(c, sql);

	cr_assert(v != NULL && strcmp(v, want) == 0, "%s: got %s, want %s", sql,
	    v ? v : "NULL", want);
	free(v);
}

#define INSERT_TASK \
	"INSERT INTO tasks (task_id, skill_name, task_type, source_repo, " \
	"target_repo, change_event, relationship_config, status, created_at, " \
	"started_at, ended_at, lease_expires_at, attempt_count) "

/* Tasks that cleanup must keep or delete, whatever else is there. */
static const char *const mixed_tasks[] = {
	/* kept: queued and started are never deleted, however old */
	INSERT_TASK "VALUES ('old-queued', 's', 'x', 'a/b', 'c/d', '{}', '{}', "
	"'queued', now() - interval '30 days', NULL, NULL, NULL, 0)",
	INSERT_TASK "VALUES ('old-started', 's', 'x', 'a/b', 'c/d', '{}', '{}', "
	"'started', now() - interval '30 days', now(), NULL, now() + "
	"interval '1 hour', 1)",
	/* kept: created long ago but ended within the retention */
	INSERT_TASK "VALUES ('recent-finished', 's', 'x', 'a/b', 'c/d', '{}', "
	"'{}', 'finished', now() - interval '10 days', now() - interval "
	"'1 day', now() - interval '1 day', NULL, 1)",
	/* deleted: ended past the retention */
	INSERT_TASK "VALUES ('old-failed', 's', 'x', 'a/b', 'c/d', '{}', '{}', "
	"'failed', now() - interval '9 days', now() - interval '9 days', "
	"now() - interval '8 days', NULL, 3)",
	/* deleted: never ran, so by created_at */
	INSERT_TASK "VALUES ('old-cancelled', 's', 'x', 'a/b', 'c/d', '{}', "
	"'{}', 'cancelled', now() - interval '30 days', NULL, NULL, NULL, 0)",
	"INSERT INTO task_history (task_id, status) VALUES ('old-queued', "
	"'queued'), ('old-started', 'started'), ('recent-finished', "
	"'finished'), ('old-failed', 'failed')",
	"INSERT INTO triage_results_cache (source_repo, target_repo, "
	"commit_sha, relationship_type, requires_action, result_data, "
	"expires_at) VALUES ('a/b', 'c/d', 'expired', 'api_consumer', false, "
	"'{}', now() - interval '1 hour'), ('a/b', 'c/d', 'fresh', "
	"'api_consumer', false, '{}', now() + interval '1 hour'), ('a/b', "
	"'c/d', 'forever', 'api_consumer', false, '{}', NULL)",
};

/* n finished tasks that ended 29 days ago, each with a history row. */
static void
old_finished(PGconn *c, int n)
{
	char sql[1024];

	snprintf(sql, sizeof(sql), INSERT_TASK "SELECT 'done-' || g, "
	    "'trigger_x', 'x', 'o/src', 'o/dst', '{\"n\": 1}', '{}', "
	    "'finished', now() - interval '30 days' + g * interval '1 ms', "
	    "now() - interval '30 days', now() - interval '29 days', NULL, 1 "
	    "FROM generate_series(1, %d) g", n);
	db_do(c, sql);
	db_do(c, "INSERT INTO task_history (task_id, status, worker_id) "
	    "SELECT task_id, 'finished', 'w1' FROM tasks "
	    "WHERE task_id LIKE 'done-%'");
}

Test(maintain, cleanup_200k_in_batches_keeps_what_it_must, .timeout = 600)
{
	struct mt m;
	struct run r;
	PGconn *c;
	char path[256];
	json_object *st, *cl;

	setup(&m, NULL);
	c = db_open(m.db);
	/* Every DELETE statement on tasks records how many rows it took. */
	db_do(c, "CREATE TABLE del_log (n bigint)");
	db_do(c, "CREATE FUNCTION log_del() RETURNS trigger LANGUAGE plpgsql "
	    "AS $$ BEGIN INSERT INTO del_log SELECT count(*) FROM gone; "
	    "RETURN NULL; END $$");
	db_do(c, "CREATE TRIGGER tasks_del_log AFTER DELETE ON tasks "
	    "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
	    "EXECUTE FUNCTION log_del()");
	old_finished(c, 200000);
	for (size_t i = 0; i < sizeof(mixed_tasks) / sizeof(mixed_tasks[0]); i++)
		db_do(c, mixed_tasks[i]);

	maintain(&m, &r, "cleanup", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "cleanup: deleted 200002 tasks") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "200001 history rows") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "1 expired cache rows") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "vacuum:") == NULL, "only cleanup ran: %s", r.out);
	run_free(&r);

	/* No statement deleted more than batch_size (5000) tasks. */
	assert_value(c, "SELECT max(n) <= 5000 AND sum(n) = 200002 AND "
	    "count(*) FILTER (WHERE n > 0) >= 41 FROM del_log", "t");
	assert_value(c, "SELECT string_agg(task_id, ',' ORDER BY task_id) "
	    "FROM tasks", "old-queued,old-started,recent-finished");
	assert_value(c, "SELECT string_agg(task_id, ',' ORDER BY task_id) "
	    "FROM task_history", "old-queued,old-started,recent-finished");
	assert_value(c, "SELECT string_agg(commit_sha, ',' ORDER BY commit_sha) "
	    "FROM triage_results_cache", "forever,fresh");

	/* The result is in the state file for doctor and metrics. */
	snprintf(path, sizeof(path), "%s/state/maintain-state.json", m.dir);
	st = json_object_from_file(path);
	cr_assert_not_null(st, "no %s", path);
	cr_assert(json_object_get_boolean(json_object_object_get(
	    json_object_object_get(st, "last_run"), "ok")));
	cl = json_object_object_get(json_object_object_get(st, "steps"), "cleanup");
	cr_assert_eq(json_object_get_int64(json_object_object_get(cl,
	    "tasks_deleted")), 200002);
	json_object_put(st);

	/* Nothing left: a second run deletes nothing. */
	maintain(&m, &r, "cleanup", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "deleted 0 tasks") != NULL, "%s", r.out);
	run_free(&r);
	PQfinish(c);
	teardown(&m);
}

Test(maintain, dry_run_changes_nothing, .timeout = 120)
{
	struct mt m;
	struct run r;
	PGconn *c;
	char path[256];

	setup(&m, NULL);
	c = db_open(m.db);
	old_finished(c, 20);
	for (size_t i = 0; i < sizeof(mixed_tasks) / sizeof(mixed_tasks[0]); i++)
		db_do(c, mixed_tasks[i]);
	db_do(c, INSERT_TASK "VALUES ('stuck', 's', 'x', 'a/b', 'c/d', '{}', "
	    "'{}', 'started', now(), now(), NULL, now() - interval '1 minute', 1)");

	maintain(&m, &r, "--dry-run", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "rescue: would requeue 1") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "cleanup: would delete 22 tasks") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "21 history rows") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "vacuum: would") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "reindex:") != NULL, "%s", r.out);
	run_free(&r);

	assert_value(c, "SELECT count(*) FROM tasks", "26");
	assert_value(c, "SELECT count(*) FROM task_history", "24");
	assert_value(c, "SELECT count(*) FROM triage_results_cache", "3");
	assert_value(c, "SELECT status FROM tasks WHERE task_id = 'stuck'", "started");
	assert_value(c, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = "
	    "'tasks' AND last_vacuum IS NULL", "1");
	snprintf(path, sizeof(path), "%s/state/maintain-state.json", m.dir);
	cr_assert(access(path, F_OK) == -1, "a dry run wrote %s", path);
	PQfinish(c);
	teardown(&m);
}

Test(maintain, rescue_requeues_an_expired_lease_without_a_worker, .timeout = 60)
{
	struct mt m;
	struct run r;
	PGconn *c;

	setup(&m, NULL);
	c = db_open(m.db);
	db_do(c, INSERT_TASK "VALUES ('stuck', 's', 'x', 'a/b', 'c/d', '{}', "
	    "'{}', 'started', now(), now(), NULL, now() - interval '1 minute', 1)");
	db_do(c, INSERT_TASK "VALUES ('busy', 's', 'x', 'a/b', 'c/d', '{}', "
	    "'{}', 'started', now(), now(), NULL, now() + interval '1 hour', 1)");
	maintain(&m, &r, "rescue", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "rescue: requeued 1 and failed 0") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "cleanup:") == NULL, "%s", r.out);
	run_free(&r);
	assert_value(c, "SELECT status FROM tasks WHERE task_id = 'stuck'", "queued");
	assert_value(c, "SELECT status FROM tasks WHERE task_id = 'busy'", "started");
	assert_value(c, "SELECT count(*) FROM task_history WHERE task_id = 'stuck' "
	    "AND status = 'rescued'", "1");
	PQfinish(c);
	teardown(&m);
}

Test(maintain, vacuum_analyzes_the_queue_tables, .timeout = 60)
{
	struct mt m;
	struct run r;
	PGconn *c;

	setup(&m, NULL);
	c = db_open(m.db);
	maintain(&m, &r, "vacuum", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "vacuum: VACUUM (ANALYZE) tasks") != NULL, "%s", r.out);
	run_free(&r);
	assert_value(c, "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN "
	    "('tasks', 'task_history', 'workers', 'triage_results_cache') AND "
	    "last_vacuum IS NOT NULL AND last_analyze IS NOT NULL", "4");
	/* The migration's autovacuum settings are in place. */
	assert_value(c, "SELECT 'autovacuum_vacuum_scale_factor=0.01' = ANY(reloptions) "
	    "FROM pg_class WHERE relname = 'tasks'", "t");
	assert_value(c, "SELECT 'autovacuum_vacuum_insert_scale_factor=0.05' = "
	    "ANY(reloptions) FROM pg_class WHERE relname = 'task_history'", "t");
	PQfinish(c);
	teardown(&m);
}

static char *
filenodes(PGconn *c)
{
	return db_value(c, "SELECT string_agg(relname || '=' || relfilenode, ',' "
	    "ORDER BY relname) FROM pg_class WHERE relname IN ('tasks_pkey', "
	    "'idx_tasks_created_at', 'idx_tasks_queued')");
}

Test(maintain, reindex_rebuilds_only_bloated_indexes, .timeout = 300)
{
	struct mt m;
	struct run r;
	PGconn *c;
	char *before, *after;

	setup(&m, "reindex_min_kib = 64\nreindex_bloat_percent = 95");
	c = db_open(m.db);
	/* Nine rows in ten deleted all over the index: pages stay, mostly empty. */
	db_do(c, INSERT_TASK "SELECT 'bloat-' || g, 's', 'x', 'a/b', 'c/d', '{}', "
	    "'{}', 'finished', now() - interval '1 day' + g * interval '1 ms', "
	    "NULL, now(), NULL, 1 FROM generate_series(1, 100000) g");
	db_do(c, "DELETE FROM tasks WHERE substr(task_id, 7)::int % 10 <> 0");
	db_do(c, "VACUUM ANALYZE tasks");
	before = filenodes(c);

	/* Below the threshold: nothing is rebuilt. */
	maintain(&m, &r, "reindex", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "reindex: nothing to rebuild") != NULL, "%s", r.out);
	run_free(&r);
	after = filenodes(c);
	cr_assert_str_eq(after, before);
	free(after);

	/* Off. */
	reconfigure(&m, "reindex_min_kib = 64\nreindex_bloat_percent = 0");
	maintain(&m, &r, "reindex", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "reindex: off") != NULL, "%s", r.out);
	run_free(&r);

	/* A dry run names them and leaves them. */
	reconfigure(&m, "reindex_min_kib = 64\nreindex_bloat_percent = 30");
	maintain(&m, &r, "reindex", "--dry-run");
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "would rebuild") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "public.tasks_pkey (") != NULL, "%s", r.out);
	run_free(&r);
	after = filenodes(c);
	cr_assert_str_eq(after, before);
	free(after);

	/* Above it: the bloated ones are rebuilt, the small one is not. */
	maintain(&m, &r, "reindex", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "reindex: rebuilt ") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "public.idx_tasks_created_at (") != NULL, "%s", r.out);
	run_free(&r);
	assert_value(c, "SELECT count(*) FROM pg_index WHERE NOT indisvalid", "0");
	after = filenodes(c);
	{
		char *b_pk = strstr(before, "tasks_pkey="), *a_pk = strstr(after, "tasks_pkey=");
		char *b_ca = strstr(before, "idx_tasks_created_at="), *a_ca = strstr(after, "idx_tasks_created_at=");
		char *b_q = strstr(before, "idx_tasks_queued="), *a_q = strstr(after, "idx_tasks_queued=");

		cr_assert(atol(strchr(b_pk, '=') + 1) != atol(strchr(a_pk, '=') + 1), "%s / %s", before, after);
		cr_assert(atol(strchr(b_ca, '=') + 1) != atol(strchr(a_ca, '=') + 1), "%s / %s", before, after);
		cr_assert(atol(strchr(b_q, '=') + 1) == atol(strchr(a_q, '=') + 1), "%s / %s", before, after);
	}
	free(before);
	free(after);
	PQfinish(c);
	teardown(&m);
}

/* Another session holds the maintenance lock: maintain and backup wait their turn. */
Test(maintain, lock_held_elsewhere_means_exit_75_naming_the_holder, .timeout = 60)
{
	struct mt m;
	struct run r;
	PGconn *c;
	char *pid, want[64], path[256];
	json_object *st;

	setup(&m, NULL);
	c = db_open(m.db);
	db_do(c, "SET application_name = 'oa-test-holder'");
	db_do(c, "SELECT pg_advisory_lock(20289, 2)");
	pid = db_value(c, "SELECT pg_backend_pid()");
	snprintf(want, sizeof(want), "server pid %s", pid);

	maintain(&m, &r, NULL, NULL);
	cr_assert_eq(r.status, 75, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "maintain: another maintain or backup is running") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "oa-test-holder") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, want) != NULL, "%s", r.err);
	run_free(&r);
	snprintf(path, sizeof(path), "%s/state/maintain-state.json", m.dir);
	st = json_object_from_file(path);
	cr_assert_not_null(st);
	cr_assert(json_object_get_boolean(json_object_object_get(
	    json_object_object_get(st, "last_run"), "skipped")));
	json_object_put(st);

	run_agent(&r, db_env_cfg(m.db, m.ini), NULL, (const char *[]){ "backup", NULL });
	cr_assert_eq(r.status, 75, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "backup: another maintain or backup is running") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "oa-test-holder") != NULL, "%s", r.err);
	run_free(&r);
	run_agent(&r, db_env_cfg(m.db, m.ini), NULL, (const char *[]){ "backup", "list", NULL });
	cr_assert(strstr(r.out, "0 backups") != NULL, "%s%s", r.out, r.err);
	run_free(&r);

	/* Released: both run. */
	db_do(c, "SELECT pg_advisory_unlock(20289, 2)");
	maintain(&m, &r, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "maintain: ok") != NULL, "%s", r.out);
	run_free(&r);
	free(pid);
	PQfinish(c);
	teardown(&m);
}

/* A backup in progress holds the lock for its whole dump. */
Test(maintain, not_beside_a_running_backup, .timeout = 120)
{
	struct mt m;
	struct run r;
	PGconn *c;
	char script[256], text[600], cfgtext[1024], outp[256];
	FILE *fp;
	int pid;

	setup(&m, NULL);
	snprintf(script, sizeof(script), "%s/slow_pg_dump", m.dir);
	snprintf(text, sizeof(text), "#!/bin/sh\nsleep 3\nexec %s/pg_dump \"$@\"\n",
	    getenv("OA_PGBIN"));
	fp = fopen(script, "w");
	fputs(text, fp);
	fclose(fp);
	cr_assert_eq(chmod(script, 0755), 0);
	snprintf(cfgtext, sizeof(cfgtext), "[agent]\nstate_dir = %s/state\n"
	    "[backup]\ntarget = file://%s/store\npg_dump = %s\n", m.dir, m.dir,
	    script);
	fp = fopen(m.ini, "w");
	fputs(cfgtext, fp);
	fclose(fp);
	c = db_open(m.db);

	snprintf(outp, sizeof(outp), "%s/backup.out", m.dir);
	pid = spawn_agent(db_env_cfg(m.db, m.ini), outp, (const char *[]){ "backup", NULL });
	cr_assert(wait_value(c, "SELECT count(*) FROM pg_locks WHERE locktype = "
	    "'advisory' AND classid = 20289 AND objid = 2 AND granted", "1", 20000),
	    "backup never took the lock");
	maintain(&m, &r, NULL, NULL);
	cr_assert_eq(r.status, 75, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "orchestrator-agent backup") != NULL, "%s", r.err);
	run_free(&r);
	cr_assert_eq(wait_agent(pid), 0, "the backup failed");
	maintain(&m, &r, NULL, NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	run_free(&r);
	PQfinish(c);
	teardown(&m);
}

/*
 * A table lock held elsewhere: cleanup's batches time out, are tried
 * again, then the step is reported failed; the other steps still run.
 */
Test(maintain, a_locked_table_fails_cleanup_not_the_run, .timeout = 120)
{
	struct mt m;
	struct run r;
	PGconn *c;

	setup(&m, "lock_timeout_ms = 100");
	c = db_open(m.db);
	old_finished(c, 10);
	db_do(c, "BEGIN");
	db_do(c, "LOCK TABLE tasks IN SHARE MODE");
	maintain(&m, &r, NULL, NULL);
	cr_assert_eq(r.status, 75, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "attempt 2 of 3") != NULL, "%s", r.err);
	cr_assert(strstr(r.out, "cleanup: FAILED") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "vacuum: VACUUM (ANALYZE)") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "skipping") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "reindex: ") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "maintain: FAILED: rescue, cleanup") != NULL, "%s", r.out);
	run_free(&r);
	db_do(c, "ROLLBACK");
	assert_value(c, "SELECT count(*) FROM tasks", "10");
	maintain(&m, &r, "cleanup", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "deleted 10 tasks") != NULL, "%s", r.out);
	run_free(&r);
	PQfinish(c);
	teardown(&m);
}

/* A worker drains the queue while cleanup deletes beside it: both finish. */
Test(maintain, worker_keeps_working_during_cleanup, .timeout = 300)
{
	struct mt m;
	struct run r;
	PGconn *c;
	int pid;

	setup(&m, "batch_size = 1000\n[handler.x]\nkind = noop");
	c = db_open(m.db);
	old_finished(c, 50000);
	db_do(c, INSERT_TASK "SELECT 'new-' || g, 's', 'x', 'a/b', 'c/d', '{}', "
	    "'{}', 'queued', now(), NULL, NULL, NULL, 0 "
	    "FROM generate_series(1, 3000) g");
	pid = spawn_agent(db_env_cfg(m.db, m.ini), NULL,
	    (const char *[]){ "worker", "--exit-when-empty", NULL });
	maintain(&m, &r, "cleanup", NULL);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "deleted 50000 tasks") != NULL, "%s", r.out);
	run_free(&r);
	cr_assert_eq(wait_agent(pid), 0, "the worker failed");
	assert_value(c, "SELECT count(*) FROM tasks WHERE task_id LIKE 'new-%' "
	    "AND status = 'finished'", "3000");
	assert_value(c, "SELECT count(*) FROM tasks", "3000");
	PQfinish(c);
	teardown(&m);
}
