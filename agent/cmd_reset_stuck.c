/*
 * cmd_reset_stuck.c - "reset-stuck": rescue tasks abandoned by dead
 * workers with reset_stuck_tasks() (sql/0002_worker.sql), which decides;
 * this command chooses the age for leaseless tasks and reports.
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

#define RESET_DEFAULT	"10m"

static const char reset_sql[] =
	"SELECT action, task_id, worker_id, attempt_count, max_attempts, "
	QUEUE_TS("stuck_since") " AS stuck_since "
	"FROM reset_stuck_tasks($1::interval, $2::boolean)";

static const int table_cols[] = { 0, 1, 2, 3, 4, 5 };
static const char *const table_heads[] = { "ACTION", "TASK_ID", "WORKER",
    "ATTEMPTS", "MAX", "STUCK SINCE (UTC)" };

static int
reset_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg	*cfg;
	PGconn		*conn = NULL;
	PGresult	*res = NULL;
	const char	*older = RESET_DEFAULT, *p[2];
	char		 why[256], interval[48];
	long long	 secs;
	int		 ch, dry = 0, rc, row, requeued = 0, failed = 0;

	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 'o')
			older = optarg;
		else if (ch == 'n')
			dry = 1;
		else
			return queue_bad_option(&cmd_reset_stuck, ch, argv);
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_reset_stuck, "unexpected argument "
		    "'%s'", argv[optind]);
	if (queue_parse_duration(older, &secs, why, sizeof(why)) == -1)
		return cmd_usage_error(&cmd_reset_stuck, "--older-than %s",
		    why);
	/* Zero would take every leaseless running task from its worker. */
	if (secs == 0)
		return cmd_usage_error(&cmd_reset_stuck, "--older-than must be "
		    "at least 1s");
	p[0] = queue_interval(secs, interval, sizeof(interval));
	p[1] = dry ? "true" : "false";

	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	conn = db_connect(cfg, "reset-stuck");
	if (conn == NULL)
		return EX_UNAVAILABLE;
	res = queue_exec(conn, reset_sql, 2, p);
	if (!queue_ok(res)) {
		rc = queue_fail(conn, res, "reset-stuck: running "
		    "reset_stuck_tasks()");
		goto out;
	}
	for (row = 0; row < PQntuples(res); row++) {
		if (strcmp(PQgetvalue(res, row, 0), "requeue") == 0)
			requeued++;
		else
			failed++;
	}
	if (PQntuples(res) == 0)
		printf("reset-stuck: nothing to do (no expired leases, no "
		    "leaseless task started over %s ago, no queued task out of "
		    "attempts)\n", older);
	else {
		queue_print_table(stdout, res, table_cols, table_heads,
		    (int)(sizeof(table_cols) / sizeof(table_cols[0])));
		printf("reset-stuck: %s%d requeued, %d failed%s\n",
		    dry ? "dry run: would have " : "", requeued, failed,
		    dry ? "; nothing was changed" : "");
	}
	rc = EX_OK;
out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_reset_stuck = {
	"reset-stuck", "[--older-than DURATION] [--dry-run]",
	"requeue or fail tasks abandoned by dead workers",
	"Run reset_stuck_tasks(): a started task whose lease has expired, or "
	"that has no lease (claimed through get_next_task()) and started more "
	"than DURATION ago (default " RESET_DEFAULT "; e.g. 90s, 10m, 2h, 1d), "
	"is queued again while it has attempts left, else failed with the "
	"reason; a queued task with no attempts left is failed.  A task "
	"whose lease is still fresh is never touched.  Prints one line per "
	"task (action, task, worker, attempts, stuck since) and a summary, "
	"or 'nothing to do'.  --dry-run reports the same and changes nothing.",
	reset_run,
};
