/*
 * cmd_retry.c - "retry TASK_ID": put a failed or cancelled task back in
 * the queue with a fresh set of attempts.
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"

#define RETRY_REASON	"retried by operator"

/* Queuing it fires tasks_notify_requeue, which wakes the workers. */
static const char retry_sql[] =
	"WITH u AS (UPDATE tasks SET status = 'queued', attempt_count = 0, "
	"run_at = now(), error = NULL, result = NULL, ended_at = NULL, "
	"worker_id = NULL, lease_expires_at = NULL, cancel_requested = false "
	"WHERE task_id = $1 RETURNING task_id) "
	"INSERT INTO task_history (task_id, status, error) "
	"SELECT task_id, 'queued', '" RETRY_REASON "' FROM u";

static int
retry_run(struct agent *a, int argc, char **argv)
{
	PGconn		*conn = NULL;
	PGresult	*row = NULL, *res = NULL;
	const char	*id, *status;
	int		 rc;

	rc = queue_one_task(a, &cmd_retry, argc, argv, &id, &conn, &row);
	if (rc != EX_OK)
		return rc;
	status = PQgetvalue(row, 0, 0);
	rc = EX_DATAERR;
	if (strcmp(status, "queued") == 0) {
		log_errx("retry: task %s is already queued (attempt %s of %s "
		    "used); nothing to retry", id, PQgetvalue(row, 0, 2),
		    PQgetvalue(row, 0, 3));
		goto out;
	}
	if (strcmp(status, "started") == 0) {
		log_errx("retry: task %s is running on worker %s; wait for it "
		    "to end, or cancel it first (orchestrator-agent cancel %s)",
		    id, PQgetisnull(row, 0, 1) ? "(unknown)" :
		    PQgetvalue(row, 0, 1), id);
		goto out;
	}
	if (strcmp(status, "finished") == 0) {
		log_errx("retry: task %s finished successfully; to run it "
		    "again, enqueue a new task", id);
		goto out;
	}
	res = queue_exec(conn, retry_sql, 1, &id);
	if (!queue_ok(res)) {
		rc = queue_fail(conn, res, "retry: updating the task");
		goto out;
	}
	rc = queue_commit(conn, "retry: committing");
	if (rc != EX_OK)
		goto out;
	printf("retry: task %s queued again (was %s; attempts reset to 0 of "
	    "%s)\n", id, status, PQgetvalue(row, 0, 3));
out:
	PQclear(res);
	PQclear(row);
	queue_rollback(conn);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_retry = {
	"retry", "TASK_ID", "queue a failed or cancelled task again",
	"A failed or cancelled task is queued again to run now: attempt_count "
	"0, error, result, ended_at, worker and lease cleared, "
	"cancel_requested false, and a history row 'queued' with the error "
	"'retried by operator'.  A queued, running or finished task exits 65; "
	"an unknown id exits 69.",
	retry_run,
};
