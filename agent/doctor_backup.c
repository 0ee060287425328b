/*
 * doctor_backup.c - checks of the backups: age of the last success (the
 * state file backup writes), a size out of line with the recent ones (the
 * catalogue at the target), the last verify, and whether the agent may
 * use the bucket at all (testIamPermissions).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg.h"
#include "doctor.h"
#include "store.h"

#define TH(id)	DR_TH(ctx, id)

/* ISO 8601 UTC "YYYY-MM-DDTHH:MM:SSZ" to time_t; 0 if unparsable. */
static time_t
iso_time(const char *s)
{
	struct tm	 tm;
	const char	*e;

	if (s == NULL)
		return 0;
	memset(&tm, 0, sizeof(tm));
	e = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (e == NULL)
		return 0;
	return timegm(&tm);
}

static const char *
jstr(json_object *o, const char *key)
{
	json_object *v;

	if (o == NULL || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return json_object_get_string(v);
}

/* The state file DIR/FILE's "last_success"/"last_attempt"; owned by st. */
static json_object *
state_get(json_object *st, const char *key)
{
	json_object *v;

	if (st == NULL || !json_object_object_get_ex(st, key, &v) ||
	    !json_object_is_type(v, json_type_object))
		return NULL;
	return v;
}

static int
jbool(json_object *o, const char *key)
{
	return json_object_get_boolean(json_object_object_get(o, key));
}

/* A state file's last success and last attempt, both borrowed from st. */
struct state {
	json_object	*st;		/* owned; state_close puts it */
	json_object	*ok, *last;	/* NULL when absent */
	time_t		 t;		/* of the last success; 0: none */
};

/*
 * Read [agent] state_dir/FILE (written by store_state_*): last is the
 * object under last_key, t the time under time_key of last_success.
 */
static void
state_open(const struct dr_ctx *ctx, const char *file, const char *last_key,
    const char *time_key, struct state *s)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s",
	    cfg_str(ctx->cfg, CFG_AGENT_STATE_DIR), file);
	s->st = json_object_from_file(path);
	s->ok = state_get(s->st, "last_success");
	s->last = state_get(s->st, last_key);
	s->t = iso_time(jstr(s->ok, time_key));
}

static void
state_close(struct state *s)
{
	json_object_put(s->st);
	s->st = NULL;
}

static void
check_age(struct dr_ctx *ctx, struct dr_result *r)
{
	struct state	 s;
	json_object	*ok, *att;
	time_t		 t;
	double		 hours;

	state_open(ctx, "backup-state.json", "last_attempt", "created", &s);
	ok = s.ok;
	att = s.last;
	t = s.t;
	if (t == 0) {
		dr_set(r, DR_WARN, "no successful backup recorded on this host");
		if (jstr(att, "error") != NULL)
			dr_detail(r, "last attempt failed: %s",
			    jstr(att, "error"));
		dr_fix(r, "run 'orchestrator-agent backup' now and check "
		    "that orchestrator-agent-backup.timer is enabled "
		    "(systemctl list-timers)");
		goto out;
	}
	hours = difftime(time(NULL), t) / 3600;
	dr_metric(r, "orchestrator_backup_last_success_timestamp_seconds", "",
	    (double)t);
	dr_metric(r, "orchestrator_backup_last_size_bytes", "",
	    json_object_get_double(json_object_object_get(ok,
	    "stored_bytes")));
	dr_metric(r, "orchestrator_backup_last_duration_seconds", "",
	    json_object_get_double(json_object_object_get(ok,
	    "duration_ms")) / 1000);
	if (att != NULL) {
		dr_metric(r, "orchestrator_backup_last_attempt_timestamp_"
		    "seconds", "", (double)iso_time(jstr(att, "created")));
		dr_metric(r, "orchestrator_backup_last_attempt_ok", "",
		    jbool(att, "ok"));
	}
	r->status = dr_level(hours, TH(CFG_D_BACKUP_WARN_H),
	    TH(CFG_D_BACKUP_CRIT_H));
	dr_set(r, r->status, "last good backup %.1f h ago: %s", hours,
	    jstr(ok, "name") ? jstr(ok, "name") : "?");
	if (att != NULL && !jbool(att, "ok")) {
		if (r->status < DR_WARN)
			r->status = DR_WARN;
		dr_detail(r, "the last attempt (%s) failed: %s",
		    jstr(att, "created") ? jstr(att, "created") : "?",
		    jstr(att, "error") ? jstr(att, "error") : "?");
	}
	if (r->status != DR_OK)
		dr_fix(r, "run 'orchestrator-agent backup' and read its error; "
		    "journalctl -u orchestrator-agent-backup shows the timer's "
		    "runs");
out:
	state_close(&s);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
check_size(struct dr_ctx *ctx, struct dr_result *r)
{
	struct store	*st = dr_need_store(ctx, r);
	json_object	*recs = NULL, *last;
	double		 prev[7], size, median, change;
	size_t		 n, i, k = 0;
	char		 err[700];

	if (st == NULL)
		return;
	recs = store_records(st, err, sizeof(err));
	if (recs == NULL) {
		dr_set(r, DR_UNKNOWN, "cannot list the backups");
		dr_detail(r, "%s", err);
		dr_fix(r, "see the backup.bucket check");
		return;
	}
	n = json_object_array_length(recs);
	dr_metric(r, "orchestrator_backup_count", "", (double)n);
	if (n < 4) {
		dr_set(r, DR_OK, "%zu backup%s at %s: too few to compare", n,
		    n == 1 ? "" : "s", store_target(st));
		goto out;
	}
	last = json_object_array_get_idx(recs, n - 1);
	size = json_object_get_double(json_object_object_get(last,
	    "stored_bytes"));
	for (i = n - 1; i > 0 && k < sizeof(prev) / sizeof(prev[0]); i--)
		prev[k++] = json_object_get_double(json_object_object_get(
		    json_object_array_get_idx(recs, i - 1), "stored_bytes"));
	qsort(prev, k, sizeof(prev[0]), cmp_double);
	median = prev[k / 2];
	change = median > 0 ? 100 * (size - median) / median : 0;
	dr_metric(r, "orchestrator_backup_size_change_percent", "", change);
	r->status = dr_level(change < 0 ? -change : change,
	    TH(CFG_D_BACKUP_SIZE_PCT), 0);
	dr_set(r, r->status, "latest %s is %.0f bytes, %+.0f%% against the "
	    "median of the %zu before", jstr(last, "name"), size, change, k);
	if (r->status != DR_OK)
		dr_fix(r, "a sudden change means lost or runaway data: compare "
		    "'orchestrator-agent stats' with yesterday and run "
		    "'orchestrator-agent backup verify --restore' for row "
		    "counts");
out:
	json_object_put(recs);
}

static void
check_verify(struct dr_ctx *ctx, struct dr_result *r)
{
	struct state	 s;
	json_object	*ok, *att;
	time_t		 t;
	double		 days;

	state_open(ctx, "verify-state.json", "last_attempt", "verified_at", &s);
	ok = s.ok;
	att = s.last;
	t = s.t;
	if (t == 0) {
		dr_set(r, TH(CFG_D_VERIFY_WARN_D) > 0 ? DR_WARN : DR_OK,
		    "no backup has been verified on this host");
		dr_fix(r, "run 'orchestrator-agent backup verify latest "
		    "--restore': a backup nobody restored is a hope");
		goto out;
	}
	days = difftime(time(NULL), t) / 86400;
	dr_metric(r, "orchestrator_backup_last_verify_timestamp_seconds", "",
	    (double)t);
	r->status = dr_level(days, TH(CFG_D_VERIFY_WARN_D), 0);
	dr_set(r, r->status, "last verified %.1f days ago: %s%s", days,
	    jstr(ok, "name") ? jstr(ok, "name") : "?",
	    jbool(ok, "restored") ? " (restored)" : "");
	if (att != NULL && !jbool(att, "ok")) {
		r->status = DR_CRIT;
		dr_set(r, DR_CRIT, "the last verify failed: %s is not "
		    "restorable", jstr(att, "name") ? jstr(att, "name") : "?");
		dr_detail(r, "%s", jstr(att, "error") ? jstr(att, "error") :
		    "?");
		dr_fix(r, "make a new backup now ('orchestrator-agent backup') "
		    "and verify it; keep the bad one for investigation");
		goto out;
	}
	if (r->status != DR_OK)
		dr_fix(r, "run 'orchestrator-agent backup verify latest "
		    "--restore'");
out:
	state_close(&s);
}

static void
check_bucket(struct dr_ctx *ctx, struct dr_result *r)
{
	struct store	*st = dr_need_store(ctx, r);
	unsigned	 granted = 0, i;
	time_t		 server;
	char		 err[700], missing[256] = "";
	size_t		 len;

	if (st == NULL)
		return;
	if (store_probe(st, &granted, &server, err, sizeof(err)) == -1) {
		dr_metric(r, "orchestrator_backup_target_ok", "", 0);
		dr_set(r, DR_CRIT, "cannot use the backup target %s",
		    store_target(st));
		dr_detail(r, "%s", err);
		dr_fix(r, store_is_remote(st) ? "check the bucket name and "
		    "network (Cloud NAT or Private Google Access)" :
		    "create the directory, owned by the agent's user");
		return;
	}
	for (i = 0; i < STORE_NPERMS; i++) {
		if (granted & (1u << i))
			continue;
		len = strlen(missing);
		snprintf(missing + len, sizeof(missing) - len, "%s%s",
		    len ? ", " : "", store_perms[i]);
	}
	dr_metric(r, "orchestrator_backup_target_ok", "", missing[0] == '\0');
	if (missing[0] != '\0') {
		dr_set(r, DR_CRIT, "missing permissions on %s: %s",
		    store_target(st), missing);
		dr_fix(r, "grant the VM's service account roles/storage."
		    "objectUser on the bucket (terraform apply does)");
		return;
	}
	dr_set(r, DR_OK, "%s: create, get, list and delete allowed",
	    store_target(st));
}

static void
check_maintain(struct dr_ctx *ctx, struct dr_result *r)
{
	struct state	 s;
	json_object	*last;
	time_t		 t;
	double		 hours;

	state_open(ctx, "maintain-state.json", "last_run", "started", &s);
	last = s.last;
	t = s.t;
	if (t == 0) {
		dr_set(r, DR_WARN, "maintenance has not succeeded on this host");
		if (jstr(last, "error") != NULL)
			dr_detail(r, "last run: %s", jstr(last, "error"));
		dr_fix(r, "run 'orchestrator-agent maintain' and check that "
		    "orchestrator-agent-maintain.timer is enabled");
		goto out;
	}
	hours = difftime(time(NULL), t) / 3600;
	dr_metric(r, "orchestrator_maintain_last_success_timestamp_seconds",
	    "", (double)t);
	if (last != NULL)
		dr_metric(r, "orchestrator_maintain_last_run_ok", "",
		    jbool(last, "ok"));
	r->status = dr_level(hours, TH(CFG_D_MAINTAIN_WARN_H), 0);
	dr_set(r, r->status, "last successful maintenance %.1f h ago", hours);
	if (last != NULL && !jbool(last, "ok") && !jbool(last, "skipped")) {
		if (r->status < DR_WARN)
			r->status = DR_WARN;
		dr_detail(r, "the last run (%s) failed: %s",
		    jstr(last, "started") ? jstr(last, "started") : "?",
		    jstr(last, "error") ? jstr(last, "error") : "see its steps");
	}
	if (r->status != DR_OK)
		dr_fix(r, "run 'orchestrator-agent maintain' and read which "
		    "step fails; journalctl -u orchestrator-agent-maintain");
out:
	state_close(&s);
}

const struct dr_check dr_backup_checks[] = {
	{ "backup.age", "last successful backup", check_age, 0 },
	{ "backup.size", "backup size anomaly", check_size, 1 },
	{ "backup.verify", "last verify", check_verify, 0 },
	{ "backup.bucket", "backup target permissions", check_bucket, 1 },
	{ "maintain", "last maintenance", check_maintain, 0 },
};
const size_t dr_backup_nchecks = sizeof(dr_backup_checks) /
    sizeof(dr_backup_checks[0]);
