/*
 * test_schema.c - schema migrations and the seed's client SQL against the
 * harness's real PostgreSQL.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"


static const char **
env_for(const char *db)
{
	static char dbvar[128];
	static const char *env[4];

	snprintf(dbvar, sizeof(dbvar), "POSTGRES_DB=%s", db);
	env[0] = dbvar;
	env[1] = "POSTGRES_USER=postgres";
	env[2] = NULL;
	return env;
}

static void
init_ok(const char *db)
{
	struct run r;

	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "schema init: %s%s", r.out, r.err);
	run_free(&r);
}

Test(schema, init_twice_applies_once)
{
	char *db = fresh_db();
	struct run r;
	PGconn *c;
	char *v;

	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "applied 0001_baseline.sql") != NULL, "%s", r.out);
	run_free(&r);

	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "nothing to apply") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "applied 0001") == NULL, "%s", r.out);
	run_free(&r);

	c = db_open(db);
	v = db_value(c, "SELECT count(*) FROM schema_migrations WHERE version = 1");
	cr_assert_str_eq(v, "1");
	free(v);
	v = db_value(c, "SELECT checksum ~ '^[0-9a-f]{64}$' AND applied_at IS NOT NULL "
	    "AND name = 'baseline' FROM schema_migrations WHERE version = 1");
	cr_assert_str_eq(v, "t");
	free(v);
	/* Every table of the design loaded (the seed's left only one). */
	v = db_value(c, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
	    "('tasks','task_history','triage_results_cache','repositories','dependency_relationships')");
	cr_assert_str_eq(v, "5");
	free(v);
	v = db_value(c, "SELECT count(*) FROM pg_indexes WHERE indexname IN ('idx_tasks_status',"
	    "'idx_tasks_created_at','idx_tasks_source_repo','idx_tasks_target_repo','idx_tasks_type',"
	    "'idx_tasks_queued','idx_tasks_processing')");
	cr_assert_str_eq(v, "7");
	free(v);
	PQfinish(c);
	free(db);
}

Test(schema, status_lists_pending_then_applied)
{
	char *db = fresh_db();
	struct run r;

	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "status", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "baseline") && strstr(r.out, "pending"), "%s", r.out);
	run_free(&r);
	init_ok(db);
	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "status", "--json", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "\"status\":\"applied\"") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "\"pending\":0") != NULL, "%s", r.out);
	run_free(&r);
	free(db);
}

/* Four agents booting at once: all succeed, each migration applied once. */
Test(schema, concurrent_init)
{
	char *db = fresh_db();
	char outs[4][64];
	int pids[4];
	int applied = 0;
	PGconn *c;
	char *v;

	for (int i = 0; i < 4; i++) {
		snprintf(outs[i], sizeof(outs[i]), "/tmp/oa-conc-%d-%d.out", (int)getpid(), i);
		pids[i] = spawn_agent(env_for(db), outs[i],
		    (const char *[]){ "schema", "init", NULL });
	}
	for (int i = 0; i < 4; i++) {
		char *out;

		cr_assert_eq(wait_agent(pids[i]), 0, "agent %d failed", i);
		out = read_file(outs[i]);
		cr_assert_not_null(out);
		if (strstr(out, "applied 0001_baseline.sql"))
			applied++;
		free(out);
		unlink(outs[i]);
	}
	cr_assert_eq(applied, 1, "baseline applied by %d agents", applied);
	c = db_open(db);
	v = db_value(c, "SELECT count(*) = count(DISTINCT version) AND count(*) > 0 FROM schema_migrations");
	cr_assert_str_eq(v, "t");
	free(v);
	PQfinish(c);
	free(db);
}

Test(schema, refuses_checksum_drift)
{
	char *db = fresh_db();
	struct run r;
	PGconn *c;

	init_ok(db);
	c = db_open(db);
	db_do(c, "UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 1");
	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 65, "%s", r.err);
	cr_assert(strstr(r.err, "0001_baseline.sql was applied with checksum 000000000000") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "new migration") != NULL, "%s", r.err);
	run_free(&r);
	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "status", NULL });
	cr_assert_eq(r.status, 65);
	cr_assert(strstr(r.out, "changed") != NULL, "%s", r.out);
	run_free(&r);
	PQfinish(c);
	free(db);
}

Test(schema, refuses_unknown_newer_migration)
{
	char *db = fresh_db();
	struct run r;
	PGconn *c;

	init_ok(db);
	c = db_open(db);
	db_do(c, "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')");
	run_agent(&r, env_for(db), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 65, "%s", r.err);
	cr_assert(strstr(r.err, "9999_future") && strstr(r.err, "upgrade orchestrator-agent"), "%s", r.err);
	run_free(&r);
	PQfinish(c);
	free(db);
}

/* A database left half-loaded by the old guide is adopted. */
Test(schema, adopts_half_loaded_seed_database)
{
	char *db = fresh_db();
	PGconn *c = db_open(db);

	db_do(c, "CREATE TABLE repositories (id SERIAL PRIMARY KEY, repo_name VARCHAR(255) UNIQUE NOT NULL,"
	    " repo_type VARCHAR(50) DEFAULT 'service_provider', metadata JSONB,"
	    " created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now())");
	db_do(c, "INSERT INTO repositories (repo_name) VALUES ('owner/kept')");
	db_do(c, "CREATE FUNCTION cleanup_old_tasks() RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$");
	init_ok(db);
	char *v = db_value(c, "SELECT count(*) FROM repositories WHERE repo_name = 'owner/kept'");
	cr_assert_str_eq(v, "1");
	free(v);
	PQfinish(c);
	free(db);
}

Test(schema, unreachable_database_is_69)
{
	struct run r;

	run_agent(&r, (const char *[]){ "POSTGRES_HOST=127.0.0.1", "POSTGRES_PORT=1",
	    "PGCONNECT_TIMEOUT=2", NULL }, NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 69, "%s", r.err);
	cr_assert(strstr(r.err, "cannot connect to database") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "port 1") != NULL, "%s", r.err);
	run_free(&r);
}

/*
 * While another session holds the migration lock, schema init waits (it
 * does not race); its session is visible by application_name.
 */
Test(schema, waits_for_lock_and_names_itself)
{
	char *db = fresh_db();
	char out[64], *v = NULL;
	PGconn *c = db_open(db);
	int pid, waited = 0;

	db_do(c, "SELECT pg_advisory_lock(20289, 1)");
	snprintf(out, sizeof(out), "/tmp/oa-lock-%d.out", (int)getpid());
	pid = spawn_agent(env_for(db), out, (const char *[]){ "schema", "init", NULL });
	for (waited = 0; waited < 100; waited++) {
		free(v);
		v = db_value(c, "SELECT count(*) FROM pg_stat_activity WHERE "
		    "application_name = 'orchestrator-agent schema' AND wait_event_type = 'Lock'");
		if (strcmp(v, "1") == 0)
			break;
		usleep(100000);
	}
	cr_assert_str_eq(v, "1", "schema init did not wait on the lock");
	free(v);
	v = db_value(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'tasks'");
	cr_assert_str_eq(v, "0", "migrated while the lock was held");
	free(v);
	db_do(c, "SELECT pg_advisory_unlock(20289, 1)");
	cr_assert_eq(wait_agent(pid), 0);
	v = db_value(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'tasks'");
	cr_assert_str_eq(v, "1");
	free(v);
	unlink(out);
	PQfinish(c);
	free(db);
}
