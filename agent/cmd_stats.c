/*
 * cmd_stats.c - "stats": the queue at a glance, in the shape of the seed's
 * get_queue_stats(), plus per-type counts, live workers, and the types
 * that have queued tasks but no live worker to run them.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"

/* Statements, all read in one snapshot. */
enum { Q_STATUS, Q_TYPES24, Q_SCALARS, Q_PER_TYPE, Q_WORKERS, Q_COUNT };

static const char *const stats_sql[Q_COUNT] = {
	[Q_STATUS] = "SELECT status, count(*) FROM tasks GROUP BY status",
	[Q_TYPES24] = "SELECT task_type, count(*) FROM tasks "
	    "WHERE created_at > now() - interval '24 hours' "
	    "GROUP BY task_type ORDER BY task_type",
	[Q_SCALARS] = "SELECT round(avg(extract(epoch FROM ended_at - "
	    "started_at)) FILTER (WHERE status = 'finished' AND ended_at > "
	    "now() - interval '24 hours'), 3) AS avg_duration_seconds, "
	    "floor(extract(epoch FROM now() - min(created_at) FILTER (WHERE "
	    "status = 'queued')))::bigint AS oldest_queued_age_seconds "
	    "FROM tasks",
	/* Columns 1-5 follow queue_statuses[]. */
	[Q_PER_TYPE] = "SELECT t.task_type, "
	    "count(*) FILTER (WHERE t.status = 'queued') AS queued, "
	    "count(*) FILTER (WHERE t.status = 'started') AS started, "
	    "count(*) FILTER (WHERE t.status = 'finished') AS finished, "
	    "count(*) FILTER (WHERE t.status = 'failed') AS failed, "
	    "count(*) FILTER (WHERE t.status = 'cancelled') AS cancelled, "
	    "EXISTS (SELECT 1 FROM workers w WHERE " QUEUE_LIVE_WORKER("w")
	    " AND t.task_type = ANY (w.task_types)) AS served, "
	    "CASE WHEN EXISTS (SELECT 1 FROM workers w WHERE "
	    QUEUE_LIVE_WORKER("w") " AND t.task_type = ANY (w.task_types)) "
	    "THEN 'yes' ELSE 'no' END AS served_text "
	    "FROM tasks t GROUP BY t.task_type ORDER BY t.task_type",
	[Q_WORKERS] = "SELECT worker_id, host, pid, version, "
	    "array_to_json(task_types) AS task_types, concurrency, "
	    QUEUE_TS("started_at") " AS started_at, "
	    QUEUE_TS("heartbeat_at") " AS heartbeat_at, "
	    "array_to_string(task_types, ',') AS types_text "
	    "FROM workers w WHERE " QUEUE_LIVE_WORKER("w")
	    " ORDER BY worker_id",
};

struct stats {
	PGresult	*res[Q_COUNT];
};

static void
stats_free(struct stats *st)
{
	int i;

	if (st == NULL)
		return;
	for (i = 0; i < Q_COUNT; i++) {
		PQclear(st->res[i]);
		st->res[i] = NULL;
	}
}

/* Run every statement in one read-only snapshot.  Returns an exit code. */
static int
stats_load(PGconn *conn, struct stats *st)
{
	PGresult	*res;
	int		 i, rc = EX_OK;

	res = queue_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ "
	    "ONLY", 0, NULL);
	if (!queue_ok(res))
		goto out;
	for (i = 0; i < Q_COUNT; i++) {
		PQclear(res);
		res = queue_exec(conn, stats_sql[i], 0, NULL);
		if (!queue_ok(res))
			goto out;
		st->res[i] = res;	/* now owned by st */
		res = NULL;
	}
out:
	if (res != NULL) {
		rc = queue_fail(conn, res, "stats: reading the queue");
		PQclear(res);
	}
	queue_rollback(conn);	/* read-only: nothing to commit */
	return rc;
}

static long long
status_count(const struct stats *st, const char *status)
{
	const PGresult	*res = st->res[Q_STATUS];
	int		 row;

	for (row = 0; row < PQntuples(res); row++)
		if (strcmp(PQgetvalue(res, row, 0), status) == 0)
			return strtoll(PQgetvalue(res, row, 1), NULL, 10);
	return 0;
}

static int
unserved(const PGresult *res, int row)
{
	return strcmp(PQgetvalue(res, row, 1), "0") != 0 &&
	    PQgetvalue(res, row, 6)[0] == 'f';
}

static struct json_object *
count(long long n)
{
	return json_object_new_int64(n);
}

static void
stats_json(const struct stats *st)
{
	const PGresult		*res;
	struct json_object	*root, *o, *t, *arr;
	int			 row, i;

	root = json_object_new_object();
	json_object_object_add(root, "backend",
	    json_object_new_string("postgresql"));
	o = json_object_new_object();
	for (i = 0; queue_statuses[i] != NULL; i++)
		json_object_object_add(o, queue_statuses[i],
		    count(status_count(st, queue_statuses[i])));
	json_object_object_add(root, "status_counts", o);
	o = json_object_new_object();
	res = st->res[Q_TYPES24];
	for (row = 0; row < PQntuples(res); row++)
		json_object_object_add(o, PQgetvalue(res, row, 0),
		    queue_json_value(res, row, 1));
	json_object_object_add(root, "type_counts", o);
	json_object_object_add(root, "avg_duration_seconds",
	    queue_json_value(st->res[Q_SCALARS], 0, 0));
	/* The seed's names for the four it had. */
	json_object_object_add(root, "queued",
	    count(status_count(st, "queued")));
	json_object_object_add(root, "processing",
	    count(status_count(st, "started")));
	json_object_object_add(root, "completed",
	    count(status_count(st, "finished")));
	json_object_object_add(root, "failed",
	    count(status_count(st, "failed")));
	json_object_object_add(root, "cancelled",
	    count(status_count(st, "cancelled")));
	json_object_object_add(root, "oldest_queued_age_seconds",
	    queue_json_value(st->res[Q_SCALARS], 0, 1));
	o = json_object_new_object();
	arr = json_object_new_array();
	res = st->res[Q_PER_TYPE];
	for (row = 0; row < PQntuples(res); row++) {
		t = json_object_new_object();
		for (i = 1; i <= 6; i++)
			json_object_object_add(t, i == 6 ?
			    "served_by_live_workers" : PQfname(res, i),
			    queue_json_value(res, row, i));
		json_object_object_add(o, PQgetvalue(res, row, 0), t);
		if (unserved(res, row))
			json_object_array_add(arr, json_object_new_string(
			    PQgetvalue(res, row, 0)));
	}
	json_object_object_add(root, "per_type", o);
	json_object_object_add(root, "unserved_types", arr);
	arr = json_object_new_array();
	res = st->res[Q_WORKERS];
	for (row = 0; row < PQntuples(res); row++) {
		t = queue_json_row(res, row);
		json_object_object_del(t, "types_text");
		json_object_array_add(arr, t);
	}
	json_object_object_add(root, "workers", arr);
	queue_json_print(stdout, root);
	json_object_put(root);
}

static void
stats_print(const struct stats *st)
{
	static const int type_cols[] = { 0, 1, 2, 3, 4, 5, 7 };
	static const char *const type_heads[] = { "TYPE", "QUEUED", "STARTED",
	    "FINISHED", "FAILED", "CANCELLED", "SERVED" };
	static const int worker_cols[] = { 0, 1, 2, 3, 5, 8, 6, 7 };
	static const char *const worker_heads[] = { "WORKER", "HOST", "PID",
	    "VERSION", "CONCURRENCY", "TYPES", "STARTED (UTC)",
	    "HEARTBEAT (UTC)" };
	const PGresult	*res;
	int		 row, i, n;

	printf("backend:        postgresql\ntasks:         ");
	for (i = 0; queue_statuses[i] != NULL; i++)
		printf(" %lld %s%s", status_count(st, queue_statuses[i]),
		    queue_statuses[i], queue_statuses[i + 1] ? "," : "\n");
	res = st->res[Q_SCALARS];
	printf("oldest queued:  %s%s\n", PQgetisnull(res, 0, 1) ? "-" :
	    PQgetvalue(res, 0, 1), PQgetisnull(res, 0, 1) ? "" : " s");
	printf("avg duration:   %s%s (tasks finished in the last 24 h)\n",
	    PQgetisnull(res, 0, 0) ? "-" : PQgetvalue(res, 0, 0),
	    PQgetisnull(res, 0, 0) ? "" : " s");
	res = st->res[Q_TYPES24];
	printf("created (24 h):");
	for (row = 0; row < PQntuples(res); row++)
		printf(" %s %s%s", PQgetvalue(res, row, 0),
		    PQgetvalue(res, row, 1), row + 1 < PQntuples(res) ? "," : "");
	printf("%s\n", PQntuples(res) ? "" : " none");

	res = st->res[Q_PER_TYPE];
	if (PQntuples(res) > 0) {
		printf("\n");
		queue_print_table(stdout, res, type_cols, type_heads,
		    (int)(sizeof(type_cols) / sizeof(type_cols[0])));
	}
	n = 0;
	for (row = 0; row < PQntuples(res); row++) {
		if (!unserved(res, row))
			continue;
		printf("%s%s", n > 0 ? ", " : "\nunserved: ",
		    PQgetvalue(res, row, 0));
		n++;
	}
	if (n > 0)
		printf(" (queued tasks, no live worker serves the type)\n");

	res = st->res[Q_WORKERS];
	printf("\n");
	if (PQntuples(res) == 0)
		printf("no live workers (none heard from in the last %d s)\n",
		    QUEUE_LIVE_SECS);
	else
		queue_print_table(stdout, res, worker_cols, worker_heads,
		    (int)(sizeof(worker_cols) / sizeof(worker_cols[0])));
}

static int
stats_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct stats	 st;
	struct cfg	*cfg;
	PGconn		*conn = NULL;
	int		 ch, json = 0, rc;

	memset(&st, 0, sizeof(st));
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch != 'j')
			return queue_bad_option(&cmd_stats, ch, argv);
		json = 1;
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_stats, "unexpected argument '%s'",
		    argv[optind]);
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	conn = db_connect(cfg, "stats");
	if (conn == NULL)
		return EX_UNAVAILABLE;
	rc = stats_load(conn, &st);
	if (rc == EX_OK && json)
		stats_json(&st);
	else if (rc == EX_OK)
		stats_print(&st);
	stats_free(&st);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_stats = {
	"stats", "[--json]", "summarise the queue",
	"Counts by status; tasks created in the last 24 h by type; the "
	"average run time of tasks finished in the last 24 h; the age of the "
	"oldest queued task; counts per type with whether a live worker (not "
	"stopped, heartbeat within 60 s) serves it; the types that have "
	"queued tasks but no live worker; and the live workers.  --json "
	"prints the seed's get_queue_stats keys (backend, status_counts, "
	"type_counts, avg_duration_seconds, queued, processing, completed, "
	"failed) plus cancelled, oldest_queued_age_seconds, per_type, "
	"unserved_types and workers.",
	stats_run,
};
