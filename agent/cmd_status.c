/*
 * cmd_status.c - "status TASK_ID": one task, with the fields of the seed's
 * get_task_status() plus the scheduling ones.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <sysexits.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"

/* The column names are the JSON keys, in this order. */
static const char status_sql[] =
	"SELECT task_id, status, skill_name, task_type, source_repo, "
	"target_repo, "
	QUEUE_TS("created_at") " AS created_at, "
	QUEUE_TS("started_at") " AS started_at, "
	QUEUE_TS("ended_at") " AS ended_at, "
	"result, error, worker_id, attempt_count, max_attempts, "
	QUEUE_TS("run_at") " AS run_at, priority "
	"FROM tasks WHERE task_id = $1";

static void
print_not_found(const char *id, int json)
{
	struct json_object *o;

	if (!json) {
		printf("task_id: %s\nstatus:  not_found\n", id);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "task_id", json_object_new_string(id));
	json_object_object_add(o, "status",
	    json_object_new_string("not_found"));
	queue_json_print(stdout, o);
	json_object_put(o);
}

static int
status_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct json_object	*o;
	struct cfg		*cfg;
	PGconn			*conn = NULL;
	PGresult		*res = NULL;
	const char		*id;
	int			 ch, json = 0, rc;

	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch != 'j')
			return queue_bad_option(&cmd_status, ch, argv);
		json = 1;
	}
	if (optind == argc)
		return cmd_usage_error(&cmd_status, "expected a task id");
	if (optind + 1 < argc)
		return cmd_usage_error(&cmd_status, "unexpected argument '%s'",
		    argv[optind + 1]);
	id = argv[optind];

	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	conn = db_connect(cfg, "status");
	if (conn == NULL)
		return EX_UNAVAILABLE;
	res = queue_exec(conn, status_sql, 1, &id);
	if (!queue_ok(res)) {
		rc = queue_fail(conn, res, "status: reading the task");
		goto out;
	}
	if (PQntuples(res) == 0) {
		print_not_found(id, json);
		log_errx("status: no task has id '%s'; 'orchestrator-agent "
		    "list' shows recent tasks", id);
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (json) {
		o = queue_json_row(res, 0);
		queue_json_print(stdout, o);
		json_object_put(o);
	} else
		queue_print_row(stdout, res, 0);
	rc = EX_OK;
out:
	PQclear(res);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_status = {
	"status", "TASK_ID [--json]", "show one task",
	"Print a task's status, skill, type, repositories, times (ISO 8601 "
	"UTC, or - / null when unset), result, error, worker, attempts, "
	"max_attempts, run_at and priority.  --json prints one object with "
	"the keys task_id, status, skill_name, task_type, source_repo, "
	"target_repo, created_at, started_at, ended_at, result, error, "
	"worker_id, attempt_count, max_attempts, run_at, priority.  An "
	"unknown id prints status not_found ({\"task_id\": ..., \"status\": "
	"\"not_found\"} with --json) and exits 69.",
	status_run,
};
