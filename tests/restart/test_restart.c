/*
 * test_restart.c - the worker survives a PostgreSQL restart.  Its own
 * binary and server (run serially), since restarting the server would
 * break the other integration tests running in parallel.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static void
insert(const char *db, const char *prefix, int n)
{
	PGconn *c = db_open(db);
	char sql[512];

	snprintf(sql, sizeof(sql), "INSERT INTO tasks (task_id, skill_name, task_type, "
	    "source_repo, target_repo, change_event, relationship_config) SELECT '%s' || g, "
	    "'s', 'noop', 'a/b', 'c/d', '{}', '{}' FROM generate_series(1, %d) g", prefix, n);
	db_do(c, sql);
	PQfinish(c);
}

Test(restart, worker_survives_postgres_restart, .timeout = 120)
{
	char *db = migrated_db();
	char *cfg = write_temp("[worker]\npoll_interval_ms = 200\n[handler.noop]\nkind = noop\n", 0600);
	PGconn *c;
	int pid, st;

	insert(db, "a", 500);
	pid = spawn_agent(db_env_cfg(db, cfg), NULL, (const char *[]){ "worker", NULL });
	c = db_open(db);
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'", "500", 20000));
	PQfinish(c);

	pg_ctl("restart -m fast");
	insert(db, "b", 500);
	pg_ctl("stop -m immediate");
	sleep(2);	/* the worker retries against a server that is down */
	pg_ctl("start");
	insert(db, "c", 500);

	c = db_open(db);
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'", "1500", 60000),
	    "the worker did not drain the queue after the restarts");
	cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the worker exited");
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	{
		char *v = db_value(c, "SELECT count(*) FROM (SELECT task_id FROM task_history WHERE "
		    "status = 'finished' GROUP BY task_id HAVING count(*) > 1) d");
		cr_assert_str_eq(v, "0");
		free(v);
	}
	PQfinish(c);
	unlink(cfg);
	free(cfg);
	free(db);
}
