/*
 * cmd_list.c - "list": recent tasks, newest first, optionally filtered.
 *
 * The struct is cmd_list_tasks because cmd_list() already names the
 * function that prints the command list.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"

#define LIST_DEFAULT	"50"
#define LIST_MAX	10000

static const char list_sql[] =
	"SELECT task_id, status, task_type, skill_name, source_repo, "
	"target_repo, priority, attempt_count, max_attempts, worker_id, "
	QUEUE_TS("created_at") " AS created_at, "
	QUEUE_TS("run_at") " AS run_at, "
	QUEUE_TS("started_at") " AS started_at, "
	QUEUE_TS("ended_at") " AS ended_at, error "
	"FROM tasks "
	"WHERE ($1::text IS NULL OR status = $1) "
	"AND ($2::text IS NULL OR task_type = $2) "
	"ORDER BY created_at DESC, task_id DESC LIMIT $3";

/* Columns of list_sql shown in the table; the JSON has them all. */
static const int table_cols[] = { 0, 1, 2, 6, 7, 8, 10, 9, 4, 5 };
static const char *const table_heads[] = { "TASK_ID", "STATUS", "TYPE",
    "PRIO", "TRIES", "MAX", "CREATED (UTC)", "WORKER", "SOURCE", "TARGET" };

static int
list_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "type", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_object	*arr;
	struct cfg		*cfg;
	PGconn			*conn = NULL;
	PGresult		*res = NULL;
	const char		*p[3] = { NULL, NULL, LIST_DEFAULT };
	char			 why[256];
	long long		 limit;
	int			 ch, json = 0, rc, row;

	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 's':
			if (!queue_status_valid(optarg))
				return cmd_usage_error(&cmd_list_tasks,
				    "--status '%s' is not one of queued, "
				    "started, finished, failed, cancelled",
				    optarg);
			p[0] = optarg;
			break;
		case 't':
			p[1] = optarg;
			break;
		case 'n':
			if (queue_parse_int(optarg, strlen(optarg), 1,
			    LIST_MAX, &limit, why, sizeof(why)) == -1)
				return cmd_usage_error(&cmd_list_tasks,
				    "--limit %s", why);
			p[2] = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			return queue_bad_option(&cmd_list_tasks, ch, argv);
		}
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_list_tasks, "unexpected argument "
		    "'%s'", argv[optind]);

	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	conn = db_connect(cfg, "list");
	if (conn == NULL)
		return EX_UNAVAILABLE;
	res = queue_exec(conn, list_sql, 3, p);
	if (!queue_ok(res)) {
		rc = queue_fail(conn, res, "list: reading tasks");
		goto out;
	}
	if (json) {
		arr = json_object_new_array();
		for (row = 0; row < PQntuples(res); row++)
			json_object_array_add(arr, queue_json_row(res, row));
		queue_json_print(stdout, arr);
		json_object_put(arr);
	} else if (PQntuples(res) == 0)
		printf("no tasks%s\n", p[0] || p[1] ? " match the filter" : "");
	else
		queue_print_table(stdout, res, table_cols, table_heads,
		    (int)(sizeof(table_cols) / sizeof(table_cols[0])));
	rc = EX_OK;
out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_list_tasks = {
	"list", "[--status STATUS] [--type TYPE] [--limit N] [--json]",
	"list recent tasks",
	"List tasks newest first (by created_at), at most N of them (default "
	LIST_DEFAULT ", at most 10000).  --status is one of queued, started, "
	"finished, failed, cancelled; --type is a task type.  --json prints "
	"an array of objects with task_id, status, task_type, skill_name, "
	"source_repo, target_repo, priority, attempt_count, max_attempts, "
	"worker_id, created_at, run_at, started_at, ended_at, error.",
	list_run,
};
