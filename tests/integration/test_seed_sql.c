/*
 * test_seed_sql.c - the orchestrator's existing client SQL, unchanged,
 * against the migrated schema; and cleanup that keeps live tasks.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static PGconn *
migrated(char **dbp)
{
	char *db = fresh_db();
	char dbvar[128];
	struct run r;

	snprintf(dbvar, sizeof(dbvar), "POSTGRES_DB=%s", db);
	run_agent(&r, (const char *[]){ dbvar, "POSTGRES_USER=postgres", NULL }, NULL,
	    (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	*dbp = db;
	return db_open(db);
}

/* Parameterised like psycopg2 would send them. */
static PGresult *
q(PGconn *c, const char *sql, int n, const char *const *p)
{
	PGresult *res = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);

	cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK ||
	    PQresultStatus(res) == PGRES_COMMAND_OK, "%s: %s", sql,
	    PQresultErrorMessage(res));
	return res;
}

Test(seed_sql, client_queries_work_unchanged)
{
	char *db;
	PGconn *c = migrated(&db);
	PGresult *res;
	const char *ins[] = { "task-uuid-1", "trigger_consumer_triage", "consumer_triage",
	    "queued", "owner/source", "owner/consumer",
	    "{\"commit_sha\":\"abc\"}", "{\"interface_files\":[\"api.py\"]}" };
	const char *w1[] = { "w1" };
	const char *upd[] = { "task-uuid-1", "finished", "{\"requires_action\":false}" };

	res = q(c, "INSERT INTO tasks (task_id, skill_name, task_type, status, source_repo, "
	    "target_repo, change_event, relationship_config) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	    8, ins);
	PQclear(res);

	res = q(c, "SELECT * FROM get_next_task($1)", 1, w1);
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_eq(PQnfields(res), 7);
	cr_assert_str_eq(PQgetvalue(res, 0, PQfnumber(res, "task_id")), "task-uuid-1");
	cr_assert_str_eq(PQgetvalue(res, 0, PQfnumber(res, "relationship_config")),
	    "{\"interface_files\": [\"api.py\"]}");
	PQclear(res);

	/* Nothing left to claim. */
	res = q(c, "SELECT * FROM get_next_task($1)", 1, w1);
	cr_assert_eq(PQntuples(res), 0);
	PQclear(res);

	res = q(c, "SELECT update_task_status($1, $2, $3::jsonb, NULL)", 3, upd);
	PQclear(res);

	res = q(c, "SELECT status, started_at IS NOT NULL, ended_at IS NOT NULL, worker_id, "
	    "attempt_count, result->>'requires_action' FROM tasks WHERE task_id = 'task-uuid-1'", 0, NULL);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "finished");
	cr_assert_str_eq(PQgetvalue(res, 0, 1), "t");
	cr_assert_str_eq(PQgetvalue(res, 0, 2), "t");
	cr_assert_str_eq(PQgetvalue(res, 0, 3), "w1");
	cr_assert_str_eq(PQgetvalue(res, 0, 4), "1");
	cr_assert_str_eq(PQgetvalue(res, 0, 5), "false");
	PQclear(res);

	/* History: started, then finished with a duration. */
	res = q(c, "SELECT status, worker_id, duration_ms IS NOT NULL FROM task_history "
	    "WHERE task_id = 'task-uuid-1' ORDER BY id", 0, NULL);
	cr_assert_eq(PQntuples(res), 2);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "started");
	cr_assert_str_eq(PQgetvalue(res, 1, 0), "finished");
	cr_assert_str_eq(PQgetvalue(res, 1, 1), "w1");
	cr_assert_str_eq(PQgetvalue(res, 1, 2), "t");
	PQclear(res);

	res = q(c, "SELECT * FROM task_statistics", 0, NULL);
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_str_eq(PQgetvalue(res, 0, PQfnumber(res, "task_type")), "consumer_triage");
	cr_assert_str_eq(PQgetvalue(res, 0, PQfnumber(res, "status")), "finished");
	cr_assert_str_eq(PQgetvalue(res, 0, PQfnumber(res, "count")), "1");
	cr_assert(PQfnumber(res, "avg_duration_seconds") >= 0);
	cr_assert(PQfnumber(res, "last_completed") >= 0);
	PQclear(res);

	res = q(c, "SELECT status, COUNT(*) FROM tasks GROUP BY status", 0, NULL);
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_str_eq(PQgetvalue(res, 0, 1), "1");
	PQclear(res);

	/* The seed's status strings are enforced. */
	res = PQexec(c, "UPDATE tasks SET status = 'bogus'");
	cr_assert_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	cr_assert_str_eq(PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME), "tasks_status_check");
	PQclear(res);

	/* An update for an unknown task is an error, not a silent no-op. */
	res = PQexec(c, "SELECT update_task_status('nope', 'finished')");
	cr_assert_eq(PQresultStatus(res), PGRES_FATAL_ERROR);
	PQclear(res);

	PQfinish(c);
	free(db);
}

Test(seed_sql, get_next_task_skips_locked_and_exhausted)
{
	char *db;
	PGconn *c = migrated(&db), *c2 = db_open(db);
	PGresult *res;

	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, source_repo, target_repo, "
	    "change_event, relationship_config, created_at, attempt_count) VALUES "
	    "('old', 's', 'consumer_triage', 'a/b', 'c/d', '{}', '{}', now() - interval '1 hour', 0),"
	    "('spent', 's', 'consumer_triage', 'a/b', 'c/d', '{}', '{}', now() - interval '2 hour', 3),"
	    "('new', 's', 'template_triage', 'a/b', 'c/d', '{}', '{}', now(), 0)");
	db_do(c, "BEGIN");
	res = q(c, "SELECT task_id FROM get_next_task('w1')", 0, NULL);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "old");
	PQclear(res);
	/* A second worker skips the locked row rather than waiting. */
	res = q(c2, "SELECT task_id FROM get_next_task('w2')", 0, NULL);
	cr_assert_eq(PQntuples(res), 1);
	cr_assert_str_eq(PQgetvalue(res, 0, 0), "new");
	PQclear(res);
	db_do(c, "COMMIT");
	PQfinish(c2);
	PQfinish(c);
	free(db);
}

Test(seed_sql, cleanup_keeps_live_tasks)
{
	char *db;
	PGconn *c = migrated(&db);
	char *v;

	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, status, source_repo, target_repo, "
	    "change_event, relationship_config, created_at, started_at, ended_at) VALUES "
	    "('old-queued', 's', 'consumer_triage', 'queued', 'a/b', 'c/d', '{}', '{}', now() - interval '30 days', NULL, NULL),"
	    "('old-started', 's', 'consumer_triage', 'started', 'a/b', 'c/d', '{}', '{}', now() - interval '30 days', now() - interval '29 days', NULL),"
	    "('old-finished', 's', 'consumer_triage', 'finished', 'a/b', 'c/d', '{}', '{}', now() - interval '30 days', now() - interval '30 days', now() - interval '30 days'),"
	    "('old-failed', 's', 'consumer_triage', 'failed', 'a/b', 'c/d', '{}', '{}', now() - interval '9 days', now() - interval '9 days', now() - interval '8 days'),"
	    "('recent-finished', 's', 'consumer_triage', 'finished', 'a/b', 'c/d', '{}', '{}', now() - interval '30 days', now() - interval '1 day', now() - interval '1 day')");
	db_do(c, "INSERT INTO task_history (task_id, status) VALUES ('old-finished', 'finished')");
	db_do(c, "INSERT INTO triage_results_cache (source_repo, target_repo, commit_sha, relationship_type, "
	    "requires_action, result_data, expires_at) VALUES "
	    "('a/b', 'c/d', 'sha1', 'api_consumer', false, '{}', now() - interval '1 minute'),"
	    "('a/b', 'c/d', 'sha2', 'api_consumer', true, '{}', now() + interval '1 day')");

	v = db_value(c, "SELECT cleanup_old_tasks()");
	cr_assert_str_eq(v, "2");
	free(v);
	v = db_value(c, "SELECT string_agg(task_id, ',' ORDER BY task_id) FROM tasks");
	cr_assert_str_eq(v, "old-queued,old-started,recent-finished");
	free(v);
	v = db_value(c, "SELECT count(*) FROM task_history WHERE task_id = 'old-finished'");
	cr_assert_str_eq(v, "0");
	free(v);
	v = db_value(c, "SELECT string_agg(commit_sha, ',') FROM triage_results_cache");
	cr_assert_str_eq(v, "sha2");
	free(v);
	PQfinish(c);
	free(db);
}

Test(seed_sql, updated_at_is_maintained)
{
	char *db;
	PGconn *c = migrated(&db);
	char *v;

	db_do(c, "INSERT INTO repositories (repo_name, created_at, updated_at) VALUES "
	    "('o/r', now() - interval '1 day', now() - interval '1 day')");
	db_do(c, "UPDATE repositories SET metadata = '{\"x\":1}'");
	v = db_value(c, "SELECT updated_at > now() - interval '1 minute' FROM repositories");
	cr_assert_str_eq(v, "t");
	free(v);
	PQfinish(c);
	free(db);
}

/* SQLSTATE of sql ("" when it succeeded); caller frees. */
static char *
state_of(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char *out = strdup(s ? s : "");

	PQclear(res);
	return out;
}

/*
 * task_history's link to tasks (migration 0004 checks it per statement
 * instead of per row): the foreign key's guarantees, one row each.
 */
Test(seed_sql, history_link_to_tasks)
{
	static const struct {
		const char *sql, *state, *check, *want;
	} steps[] = {
		{ "INSERT INTO task_history (task_id, status) VALUES ('nope', 'started')",
		  "23503", "SELECT count(*) FROM task_history", "0" },
		{ "INSERT INTO task_history (task_id, status) VALUES ('a', 'started'), "
		  "('nope', 'started')",
		  "23503", "SELECT count(*) FROM task_history", "0" },
		{ "INSERT INTO task_history (task_id, status) VALUES ('a', 'started'), "
		  "('a', 'finished'), ('b', 'started')",
		  "", "SELECT count(*) FROM task_history", "3" },
		{ "UPDATE task_history SET task_id = 'nope' WHERE status = 'finished'",
		  "23503", "SELECT count(*) FROM task_history WHERE task_id = 'a'", "2" },
		{ "UPDATE tasks SET task_id = 'a2' WHERE task_id = 'a'",
		  "23503", "SELECT count(*) FROM tasks WHERE task_id = 'a'", "1" },
		{ "UPDATE tasks SET task_id = 'c2' WHERE task_id = 'c'",
		  "", "SELECT count(*) FROM tasks WHERE task_id = 'c2'", "1" },
		{ "DELETE FROM tasks WHERE task_id = 'a'",
		  "", "SELECT string_agg(task_id, ',') FROM task_history", "b" },
		{ "TRUNCATE tasks",
		  "", "SELECT count(*) FROM task_history", "0" },
	};
	char *db, *st, *v;
	PGconn *c = migrated(&db);

	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, source_repo, "
	    "target_repo, change_event, relationship_config) SELECT x, 's', "
	    "'consumer_triage', 'a/b', 'c/d', '{}', '{}' FROM unnest("
	    "ARRAY['a', 'b', 'c']) x");
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		st = state_of(c, steps[i].sql);
		cr_expect_str_eq(st, steps[i].state, "%s", steps[i].sql);
		v = db_value(c, steps[i].check);
		cr_expect_str_eq(v ? v : "(null)", steps[i].want, "after %s: %s",
		    steps[i].sql, steps[i].check);
		free(st);
		free(v);
	}
	PQfinish(c);
	free(db);
}
