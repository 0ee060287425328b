/*
 * cmd_cancel.c - "cancel TASK_ID": a queued task is cancelled at once; a
 * running one is flagged and its worker signalled, and the worker, which
 * owns the handler, stops it and records the cancellation.
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

#define CANCEL_REASON	"cancelled by operator"

static const char cancel_queued_sql[] =
	"WITH u AS (UPDATE tasks SET status = 'cancelled', ended_at = now(), "
	"error = '" CANCEL_REASON "', lease_expires_at = NULL, "
	"cancel_requested = false WHERE task_id = $1 RETURNING task_id) "
	"INSERT INTO task_history (task_id, status, error) "
	"SELECT task_id, 'cancelled', '" CANCEL_REASON "' FROM u";

/* The notification is sent when the transaction commits. */
static const char cancel_started_sql[] =
	"WITH u AS (UPDATE tasks SET cancel_requested = true "
	"WHERE task_id = $1 RETURNING task_id) "
	"SELECT pg_notify('orchestrator_cancel', task_id) FROM u";

static int
cancel_run(struct agent *a, int argc, char **argv)
{
	PGconn		*conn = NULL;
	PGresult	*row = NULL, *res = NULL;
	const char	*id, *status, *worker;
	int		 rc, started;

	rc = queue_one_task(a, &cmd_cancel, argc, argv, &id, &conn, &row);
	if (rc != EX_OK)
		return rc;
	status = PQgetvalue(row, 0, 0);
	worker = PQgetisnull(row, 0, 1) ? "(unknown)" : PQgetvalue(row, 0, 1);
	started = strcmp(status, "started") == 0;
	if (!started && strcmp(status, "queued") != 0) {
		log_errx("cancel: task %s is already %s; nothing to cancel",
		    id, status);
		rc = EX_DATAERR;
		goto out;
	}
	res = queue_exec(conn, started ? cancel_started_sql :
	    cancel_queued_sql, 1, &id);
	if (!queue_ok(res)) {
		rc = queue_fail(conn, res, "cancel: updating the task");
		goto out;
	}
	rc = queue_commit(conn, "cancel: committing");
	if (rc != EX_OK)
		goto out;
	if (!started)
		printf("cancel: task %s cancelled (it was queued)\n", id);
	else
		printf("cancel: task %s is running on worker %s; the worker "
		    "was signalled to stop it and will record the "
		    "cancellation\n", id, worker);
	/* get_next_task() takes no lease, and its callers do not listen. */
	if (started && PQgetvalue(row, 0, 4)[0] == 'f')
		log_warnx("cancel: task %s was claimed without a lease (by a "
		    "client calling get_next_task()), which may not listen "
		    "for cancellation; cancel_requested is set for it to see",
		    id);
out:
	PQclear(res);
	PQclear(row);
	queue_rollback(conn);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_cancel = {
	"cancel", "TASK_ID", "cancel a queued or running task",
	"A queued task becomes cancelled at once (ended_at set, a history row "
	"'cancelled' with the error 'cancelled by operator').  For a running "
	"(started) task, cancel_requested is set and its worker is signalled "
	"(NOTIFY orchestrator_cancel); the worker stops the handler and "
	"records the cancellation.  A task that has already ended (finished, "
	"failed, cancelled) exits 65; an unknown id exits 69.",
	cancel_run,
};
