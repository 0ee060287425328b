/*
 * cmd_maintain.c - "maintain [STEP] [--dry-run] [--json]": the steps of
 * maint.c under the maintenance lock (never beside a backup or another
 * maintain), one line each, and the result in
 * [agent] state_dir/maintain-state.json for doctor and metrics.
 */
#include <getopt.h>
#include <stdint.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cfg.h"
#include "cmd.h"
#include "db.h"
#include "handler.h"
#include "log.h"
#include "maint.h"
#include "queue.h"
#include "store.h"

#define STATE_FILE	"maintain-state.json"

/* The time now as ISO 8601 UTC, in the caller's buffer. */
static void
iso_now(char *buf, size_t len)
{
	time_t		now = time(NULL);
	struct tm	tm;

	gmtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "850 ms", "1.2 s" in the caller's buffer, which is returned. */
static const char *
dur(long ms, char *buf, size_t len)
{
	if (ms < 1000)
		snprintf(buf, len, "%ld ms", ms);
	else
		snprintf(buf, len, "%.1f s", ms / 1000.0);
	return buf;
}

/*
 * Merge run (borrowed) into the state file: last_run, last_success when
 * it succeeded, and under steps the latest result of each step it ran.
 */
static void
record_state(const struct cfg *cfg, json_object *run, int ok)
{
	const char	*dir = cfg_str(cfg, CFG_AGENT_STATE_DIR);
	json_object	*st, *steps, *ran;
	char		 err[1024];

	st = store_state_read(dir, STATE_FILE);
	if (!json_object_object_get_ex(st, "steps", &steps) ||
	    !json_object_is_type(steps, json_type_object)) {
		steps = json_object_new_object();
		json_object_object_add(st, "steps", steps);
	}
	if (json_object_object_get_ex(run, "steps", &ran)) {
		json_object_object_foreach(ran, name, val)
			json_object_object_add(steps, name,
			    json_object_get(val));
	}
	json_object_object_add(st, "last_run", json_object_get(run));
	if (ok)
		json_object_object_add(st, "last_success",
		    json_object_get(run));
	if (store_state_write(dir, STATE_FILE, st, err, sizeof(err)) == -1)
		log_warnx("maintain: cannot record the result in %s (%s); "
		    "doctor and metrics will not see this run: fix [agent] "
		    "state_dir", dir, err);
	json_object_put(st);
}

/* The JSON of one step's result; the caller owns it. */
static json_object *
step_json(const struct maint_result *r, long ms)
{
	json_object	*o = json_object_get(r->facts);
	char		 now[32];

	iso_now(now, sizeof(now));
	json_object_object_add(o, "ok", json_object_new_boolean(r->rc ==
	    EX_OK));
	json_object_object_add(o, "exit_code", json_object_new_int(r->rc));
	json_object_object_add(o, "finished", json_object_new_string(now));
	json_object_object_add(o, "duration_ms", json_object_new_int64(ms));
	json_object_object_add(o, "summary", json_object_new_string(r->line));
	if (r->rc != EX_OK)
		json_object_object_add(o, "error",
		    json_object_new_string(r->error));
	return o;
}

/*
 * Run the selected steps (only: one step, or -1 for all) on conn with cfg
 * (both borrowed), printing a line each unless json, and add their results
 * under "steps" of run (borrowed).  Returns the first failure's exit code.
 */
static int
run_steps(PGconn *conn, const struct cfg *cfg, int only, int dry, int json,
    json_object *run)
{
	struct maint_result	 r;
	json_object		*steps = json_object_new_object();
	char			 d[32], failed[128] = "";
	int64_t			 t0;
	long			 ms;
	int			 s, rc = EX_OK;

	memset(&r, 0, sizeof(r));
	json_object_object_add(run, "steps", steps);
	for (s = 0; s < MAINT_NSTEPS; s++) {
		if (only != -1 && s != only)
			continue;
		t0 = now_ms();
		maint_step_run(s, conn, cfg, dry, &r);
		ms = (long)(now_ms() - t0);
		if (r.line[0] == '\0')
			snprintf(r.line, sizeof(r.line), "%s: FAILED: %.1900s",
			    maint_step_name(s), r.error);
		if (!json)
			printf("%s (%s)\n", r.line, dur(ms, d, sizeof(d)));
		fflush(stdout);
		json_object_object_add(steps, maint_step_name(s),
		    step_json(&r, ms));
		if (r.rc != EX_OK) {
			if (rc == EX_OK)
				rc = r.rc;
			snprintf(failed + strlen(failed), sizeof(failed) -
			    strlen(failed), "%s%s", failed[0] ? ", " : "",
			    maint_step_name(s));
		}
		maint_result_clear(&r);
	}
	if (rc != EX_OK)
		json_object_object_add(run, "error", json_object_new_string(
		    failed));
	return rc;
}

static int
maintain_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg	*cfg;
	int64_t		 t0;
	PGconn		*conn = NULL;
	json_object	*run = NULL;
	char		 holder[512], started[32], d[32], msg[700];
	int		 ch, dry = 0, json = 0, only = -1, rc;

	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 'n')
			dry = 1;
		else if (ch == 'j')
			json = 1;
		else
			return queue_bad_option(&cmd_maintain, ch, argv);
	}
	if (optind < argc) {
		only = maint_step_find(argv[optind]);
		if (only == -1)
			return cmd_usage_error(&cmd_maintain, "unknown step "
			    "'%s' (steps: rescue, cleanup, vacuum, reindex)",
			    argv[optind]);
		if (optind + 1 < argc)
			return cmd_usage_error(&cmd_maintain, "unexpected "
			    "argument '%s' (one step at a time, or none for "
			    "all)", argv[optind + 1]);
	}
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	t0 = now_ms();
	iso_now(started, sizeof(started));
	run = json_object_new_object();
	json_object_object_add(run, "started", json_object_new_string(started));
	json_object_object_add(run, "dry_run", json_object_new_boolean(dry));
	conn = db_connect(cfg, "maintain");
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		json_object_object_add(run, "error", json_object_new_string(
		    "database unreachable"));
		goto out;
	}
	switch (db_oplock_try(conn, holder, sizeof(holder))) {
	case 0:
		break;
	case 1:
		log_errx("maintain: another maintain or backup is running (%s); "
		    "nothing was done: the timer runs maintain again later, or "
		    "run it by hand once that one has finished", holder);
		snprintf(msg, sizeof(msg), "skipped: another maintain or backup "
		    "was running (%s)", holder);
		json_object_object_add(run, "skipped",
		    json_object_new_boolean(1));
		json_object_object_add(run, "error",
		    json_object_new_string(msg));
		rc = EX_TEMPFAIL;
		goto out;
	default:
		rc = EX_UNAVAILABLE;
		json_object_object_add(run, "error", json_object_new_string(
		    "cannot take the maintenance lock"));
		goto out;
	}
	rc = run_steps(conn, cfg, only, dry, json, run);
	if (!json) {
		if (rc == EX_OK)
			printf("maintain: %sok (%s)\n", dry ? "dry run, nothing "
			    "changed: " : "", dur((long)(now_ms() - t0), d, sizeof(d)));
		else
			printf("maintain: FAILED: %s (exit %d; see the messages "
			    "above); the other steps ran\n", json_object_get_string(
			    json_object_object_get(run, "error")), rc);
	}
out:
	json_object_object_add(run, "ok", json_object_new_boolean(rc ==
	    EX_OK));
	json_object_object_add(run, "exit_code", json_object_new_int(rc));
	json_object_object_add(run, "duration_ms",
	    json_object_new_int64(now_ms() - t0));
	if (json)
		queue_json_print(stdout, run);
	/* A dry run changes nothing, the state file included. */
	if (!dry)
		record_state(cfg, run, rc == EX_OK);
	json_object_put(run);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_maintain = {
	"maintain", "[rescue|cleanup|vacuum|reindex] [--dry-run] [--json]",
	"rescue, clean up, vacuum and reindex the queue (run by a timer)",
	"Run the maintenance steps, in this order, or only the one named:\n"
	"  rescue   reset_stuck_tasks(), as reset-stuck does with [worker] "
	"unleased_after_seconds: tasks of dead workers are requeued (or failed "
	"when out of attempts) even when no worker runs.\n"
	"  cleanup  delete finished, failed and cancelled tasks that ended "
	"more than [maintenance] retention_days ago (by ended_at, else "
	"created_at), with their task_history rows, and expired "
	"triage_results_cache rows; never queued or started tasks.  In "
	"batches of batch_size rows, each its own transaction under "
	"lock_timeout_ms, skipping locked rows, so the worker is never held "
	"up; a batch that times out is tried 3 times, then the step fails.\n"
	"  vacuum   VACUUM (ANALYZE, SKIP_LOCKED) tasks, task_history, "
	"workers and triage_results_cache.\n"
	"  reindex  REINDEX INDEX CONCURRENTLY each btree index of those "
	"tables larger than reindex_min_kib whose bloat, estimated from the "
	"planner's statistics, is at least reindex_bloat_percent (0: never).\n"
	"Takes the maintenance advisory lock that backup takes too: when "
	"either is running, exits 75 naming the session that holds it.  "
	"Prints one line per step with counts and duration, then a summary; "
	"--json prints the result as JSON instead.  The result is recorded in "
	"[agent] state_dir/maintain-state.json.  --dry-run says what each "
	"step would do and changes nothing (not even the state file).  A "
	"failed step is reported and the others still run; the exit status "
	"is the first failure's.",
	maintain_run,
};
