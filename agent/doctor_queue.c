/*
 * doctor_queue.c - checks of the task queue: depth, the oldest runnable
 * task, types nobody serves, expired leases, the failure rate of the last
 * hour and the workers' heartbeats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "doctor.h"
#include "queue.h"

#define TH(id)	DR_TH(ctx, id)

static void
check_depth(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 runnable = 0, later = 0, n;
	char		 labels[64];
	int		 i;
	size_t		 s;

	res = dr_query(ctx, r, "SELECT status, count(*), count(*) FILTER "
	    "(WHERE status = 'queued' AND run_at <= now()) FROM tasks GROUP BY "
	    "status", 0, NULL);
	if (res == NULL)
		return;
	/* Every status gets a series, zero included, so alerts see it. */
	for (s = 0; queue_statuses[s] != NULL; s++) {
		n = 0;
		for (i = 0; i < PQntuples(res); i++)
			if (strcmp(PQgetvalue(res, i, 0), queue_statuses[s]) ==
			    0)
				n = dr_num(res, i, 1);
		snprintf(labels, sizeof(labels), "status=\"%s\"",
		    queue_statuses[s]);
		dr_metric(r, "orchestrator_queue_tasks", labels, n);
		if (strcmp(queue_statuses[s], "queued") == 0)
			later = n;
	}
	for (i = 0; i < PQntuples(res); i++)
		runnable += dr_num(res, i, 2);
	PQclear(res);
	later -= runnable;
	dr_metric(r, "orchestrator_queue_runnable_tasks", "", runnable);
	r->status = dr_level(runnable, TH(CFG_D_DEPTH_WARN),
	    TH(CFG_D_DEPTH_CRIT));
	dr_set(r, r->status, "%.0f runnable, %.0f scheduled for later", runnable,
	    later);
	if (r->status != DR_OK)
		dr_fix(r, "workers are not keeping up: check queue.workers, "
		    "then add workers (systemctl start "
		    "orchestrator-agent-worker@2) or raise [worker] concurrency");
}

static void
check_age(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 age;
	char		 oldest[128] = "";

	res = dr_query(ctx, r, "SELECT extract(epoch FROM now() - run_at), "
	    "task_id, task_type FROM tasks WHERE status = 'queued' AND run_at "
	    "<= now() ORDER BY run_at LIMIT 1", 0, NULL);
	if (res == NULL)
		return;
	if (PQntuples(res) == 0) {
		PQclear(res);
		dr_metric(r, "orchestrator_queue_oldest_runnable_age_seconds", "",
		    0);
		dr_set(r, DR_OK, "no task is waiting");
		return;
	}
	age = dr_num(res, 0, 0);
	snprintf(oldest, sizeof(oldest), "%s (%s)", PQgetvalue(res, 0, 1),
	    PQgetvalue(res, 0, 2));
	PQclear(res);
	dr_metric(r, "orchestrator_queue_oldest_runnable_age_seconds", "", age);
	r->status = dr_level(age, TH(CFG_D_AGE_WARN_S), TH(CFG_D_AGE_CRIT_S));
	dr_set(r, r->status, "the oldest runnable task has waited %.0f s: %s",
	    age, oldest);
	if (r->status != DR_OK)
		dr_fix(r, "check queue.workers and queue.unserved; 'orchestrator-"
		    "agent stats' shows which types wait");
}

static void
check_unserved(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 tasks = 0;
	char		 types[512] = "";
	size_t		 len;
	int		 i;

	res = dr_query(ctx, r, "SELECT t.task_type, count(*) FROM tasks t "
	    "WHERE t.status = 'queued' AND NOT EXISTS (SELECT 1 FROM workers w "
	    "WHERE " QUEUE_LIVE_WORKER("w") " AND t.task_type = ANY "
	    "(w.task_types)) GROUP BY t.task_type ORDER BY 2 DESC", 0, NULL);
	if (res == NULL)
		return;
	for (i = 0; i < PQntuples(res); i++) {
		tasks += dr_num(res, i, 1);
		len = strlen(types);
		snprintf(types + len, sizeof(types) - len, "%s%s (%s)",
		    i ? ", " : "", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
	}
	dr_metric(r, "orchestrator_queue_unserved_types", "", PQntuples(res));
	dr_metric(r, "orchestrator_queue_unserved_tasks", "", tasks);
	if (PQntuples(res) == 0) {
		PQclear(res);
		dr_set(r, DR_OK, "every queued task type has a live worker");
		return;
	}
	PQclear(res);
	dr_set(r, DR_WARN, "queued tasks no live worker serves: %s", types);
	dr_fix(r, "add a [handler.TYPE] section for each type to the workers' "
	    "configuration and reload them (systemctl reload "
	    "'orchestrator-agent-worker@*')");
}

static void
check_stuck(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 expired, unleased;
	char		 secs[24];
	const char	*p[1];

	snprintf(secs, sizeof(secs), "%lld",
	    cfg_int(ctx->cfg, CFG_W_UNLEASED_AFTER_SECONDS));
	p[0] = secs;
	res = dr_query(ctx, r, "SELECT count(*) FILTER (WHERE lease_expires_at "
	    "< now()), count(*) FILTER (WHERE lease_expires_at IS NULL AND "
	    "started_at < now() - $1::int * interval '1 second') FROM tasks "
	    "WHERE status = 'started'", 1, p);
	if (res == NULL)
		return;
	expired = dr_num(res, 0, 0);
	unleased = dr_num(res, 0, 1);
	PQclear(res);
	dr_metric(r, "orchestrator_queue_expired_leases", "", expired);
	dr_metric(r, "orchestrator_queue_stuck_unleased", "", unleased);
	r->status = dr_level(expired + unleased, TH(CFG_D_STUCK_WARN),
	    TH(CFG_D_STUCK_CRIT));
	if (r->status == DR_OK) {
		dr_set(r, DR_OK, "no expired leases");
		return;
	}
	dr_set(r, r->status, "%.0f started task%s with an expired lease, %.0f "
	    "without a lease for over %s s: their worker died", expired,
	    expired == 1 ? "" : "s", unleased, secs);
	dr_fix(r, "live workers rescue them on their own; otherwise run "
	    "'orchestrator-agent reset-stuck' (or 'maintain rescue')");
}

static void
check_failures(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 ok, failed, retried, total, pct;

	res = dr_query(ctx, r, "SELECT count(*) FILTER (WHERE status = "
	    "'finished'), count(*) FILTER (WHERE status = 'failed'), count(*) "
	    "FILTER (WHERE status = 'retry') FROM task_history WHERE "
	    "\"timestamp\" > now() - interval '1 hour' AND status IN "
	    "('finished', 'failed', 'retry')", 0, NULL);
	if (res == NULL)
		return;
	ok = dr_num(res, 0, 0);
	failed = dr_num(res, 0, 1);
	retried = dr_num(res, 0, 2);
	PQclear(res);
	total = ok + failed + retried;
	pct = total > 0 ? 100 * (failed + retried) / total : 0;
	dr_metric(r, "orchestrator_queue_attempts_last_hour",
	    "outcome=\"finished\"", ok);
	dr_metric(r, "orchestrator_queue_attempts_last_hour",
	    "outcome=\"failed\"", failed);
	dr_metric(r, "orchestrator_queue_attempts_last_hour",
	    "outcome=\"retry\"", retried);
	r->status = total < TH(CFG_D_FAIL_MIN) ? DR_OK : dr_level(pct,
	    TH(CFG_D_FAIL_WARN_PCT), TH(CFG_D_FAIL_CRIT_PCT));
	dr_set(r, r->status, "%.0f%% of %.0f attempts in the last hour failed "
	    "(%.0f failed for good, %.0f will retry)", pct, total, failed,
	    retried);
	if (r->status != DR_OK)
		dr_fix(r, "read the errors: orchestrator-agent list --status "
		    "failed; the handler's stderr tail is in each task's error");
}

static void
check_workers(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 alive, dead, runnable;

	res = dr_query(ctx, r, "SELECT count(*) FILTER (WHERE "
	    QUEUE_LIVE_WORKER("w") "), count(*) FILTER (WHERE w.stopped_at IS "
	    "NULL AND NOT " QUEUE_LIVE_WORKER("w") "), (SELECT count(*) FROM "
	    "tasks WHERE status = 'queued' AND run_at <= now()) FROM workers w",
	    0, NULL);
	if (res == NULL)
		return;
	alive = dr_num(res, 0, 0);
	dead = dr_num(res, 0, 1);
	runnable = dr_num(res, 0, 2);
	PQclear(res);
	dr_metric(r, "orchestrator_workers_alive", "", alive);
	dr_metric(r, "orchestrator_workers_silent", "", dead);
	if (alive > 0) {
		dr_set(r, DR_OK, "%.0f worker%s alive (heartbeat within %d s)",
		    alive, alive == 1 ? "" : "s", QUEUE_LIVE_SECS);
		if (dead > 0)
			dr_detail(r, "%.0f registered worker%s stopped "
			    "heartbeating without a clean exit", dead,
			    dead == 1 ? "" : "s");
		return;
	}
	dr_set(r, runnable > 0 ? DR_CRIT : DR_WARN, "no worker alive%s",
	    runnable > 0 ? " and tasks are waiting" : "");
	dr_fix(r, "start one: systemctl start orchestrator-agent-worker@1 "
	    "(journalctl -u 'orchestrator-agent-worker@*' says why it stopped)");
}

const struct dr_check dr_queue_checks[] = {
	{ "queue.depth", "queue depth", check_depth, 0 },
	{ "queue.age", "oldest runnable task", check_age, 0 },
	{ "queue.unserved", "types without a worker", check_unserved, 0 },
	{ "queue.stuck", "expired leases", check_stuck, 0 },
	{ "queue.failures", "failure rate, last hour", check_failures, 0 },
	{ "queue.workers", "workers alive", check_workers, 0 },
};
const size_t dr_queue_nchecks = sizeof(dr_queue_checks) /
    sizeof(dr_queue_checks[0]);
