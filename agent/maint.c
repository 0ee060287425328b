/*
 * maint.c - the steps of "maintain".
 *
 * Everything here runs beside a live worker, so nothing may hold a lock
 * the worker needs for long: deletions go in batches of [maintenance]
 * batch_size rows, each its own transaction under a short lock_timeout,
 * taking rows with SKIP LOCKED; VACUUM skips a table it cannot lock at
 * once; REINDEX is CONCURRENTLY.  A batch that hits a lock timeout is
 * tried again a few times, then the step is reported failed and the run
 * goes on with the next step.
 */
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cfg.h"
#include "db.h"
#include "log.h"
#include "maint.h"
#include "queue.h"

#define MAINT_TRIES	3	/* attempts of one batch before giving up */

/* The queue's tables: as a regclass[] literal, and as VACUUM's list. */
#define QUEUE_TABLES	"{tasks,task_history,workers,triage_results_cache}"
#define QUEUE_TABLE_LIST "tasks, task_history, workers, triage_results_cache"

static const char *const step_names[MAINT_NSTEPS] = {
	[MAINT_RESCUE] = "rescue",
	[MAINT_CLEANUP] = "cleanup",
	[MAINT_VACUUM] = "vacuum",
	[MAINT_REINDEX] = "reindex",
};

/* reset_stuck_tasks() (sql/0002_worker.sql) decides; we count. */
static const char rescue_sql[] =
	"SELECT count(*) FILTER (WHERE action = 'requeue'), "
	"count(*) FILTER (WHERE action = 'fail') "
	"FROM reset_stuck_tasks($1 * interval '1 second', $2::boolean)";

/* $1 retention in days: the cutoff for tasks, and now for the cache. */
static const char cutoff_sql[] =
	"SELECT (now() - $1 * interval '1 day')::text, now()::text";

/*
 * Ended tasks past the cutoff $1, by ended_at or, for a task that never
 * ran, created_at.  Found through idx_tasks_created_at: a task ends after
 * it is created, so created_at < $1 loses none.
 */
#define DOOMED \
	"created_at < $1::timestamptz " \
	"AND status IN ('finished', 'failed', 'cancelled') " \
	"AND COALESCE(ended_at, created_at) < $1::timestamptz"

static const char count_sql[] =
	"SELECT (SELECT count(*) FROM tasks WHERE " DOOMED "), "
	"(SELECT count(*) FROM task_history WHERE task_id IN "
	"(SELECT task_id FROM tasks WHERE " DOOMED ")), "
	"(SELECT count(*) FROM triage_results_cache "
	"WHERE expires_at < $2::timestamptz)";

/*
 * One batch: at most $3 tasks from the keyset position $2 (created_at of
 * the last batch's newest), skipping rows another session has locked.
 * History rows are deleted in the same statement so they can be counted
 * (the foreign key's ON DELETE CASCADE would delete them anyway).
 */
static const char batch_sql[] =
	"WITH batch AS ("
	"SELECT task_id FROM tasks "
	"WHERE created_at >= $2::timestamptz AND " DOOMED " "
	"ORDER BY created_at LIMIT $3::int FOR UPDATE SKIP LOCKED"
	"), history AS ("
	"DELETE FROM task_history WHERE task_id IN (SELECT task_id FROM batch) "
	"RETURNING 1"
	"), gone AS ("
	"DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM batch) "
	"RETURNING created_at"
	") SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM history), "
	"coalesce((SELECT max(created_at) FROM gone)::text, '-infinity')";

static const char cache_sql[] =
	"WITH gone AS (DELETE FROM triage_results_cache WHERE id IN ("
	"SELECT id FROM triage_results_cache WHERE expires_at < $1::timestamptz "
	"ORDER BY expires_at LIMIT $2::int FOR UPDATE SKIP LOCKED) RETURNING 1) "
	"SELECT count(*) FROM gone";

static const char dead_sql[] =
	"SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables "
	"WHERE relid = ANY($1::regclass[])";

/* Invalid indexes a failed REINDEX CONCURRENTLY leaves behind. */
static const char leftovers_sql[] =
	"SELECT format('%I.%I', n.nspname, c.relname) "
	"FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
	"JOIN pg_namespace n ON n.oid = c.relnamespace "
	"WHERE i.indrelid = ANY($1::regclass[]) AND NOT i.indisvalid "
	"AND c.relname ~ '_cc(new|old)[0-9]*$'";

/*
 * Estimated bloat of each btree index of the queue tables, from the
 * planner's statistics (after ioguix's btree estimate, as check_postgres
 * does; pgstattuple would need an extension and a superuser): the pages
 * reltuples entries need at the index's fillfactor - one metapage, and per
 * entry a 4-byte line pointer, an 8-byte tuple header (16 with a null
 * bitmap) and the columns' average width from pg_stats, MAXALIGNed, on
 * pages less the 24-byte header and 16-byte btree special space - against
 * relpages.  NULL when a column has no statistics (expressions, never
 * analyzed).  Deduplicated indexes of few distinct values come out below
 * their estimate, so they read as 0.
 */
static const char bloat_sql[] =
	"WITH idx AS ("
	"SELECT c.oid, i.indrelid, format('%I.%I', n.nspname, c.relname) AS "
	"qname, c.reltuples, c.relpages::numeric AS relpages, "
	"pg_relation_size(c.oid) AS bytes, coalesce((SELECT split_part(o, "
	"'=', 2)::int FROM unnest(c.reloptions) o WHERE o LIKE 'fillfactor=%'), "
	"90) AS ff, current_setting('block_size')::int AS bs "
	"FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
	"JOIN pg_namespace n ON n.oid = c.relnamespace "
	"JOIN pg_am am ON am.oid = c.relam "
	"WHERE i.indrelid = ANY($1::regclass[]) AND i.indisvalid "
	"AND am.amname = 'btree'"
	"), cols AS ("
	"SELECT x.oid, count(*) AS ncols, count(s.avg_width) AS nstats, "
	"sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS w, "
	"bool_or(coalesce(s.null_frac, 0) > 0) AS nulls "
	"FROM idx x JOIN pg_attribute a ON a.attrelid = x.oid AND a.attnum > 0 "
	"JOIN pg_class t ON t.oid = x.indrelid "
	"JOIN pg_namespace tn ON tn.oid = t.relnamespace "
	"LEFT JOIN pg_stats s ON s.schemaname = tn.nspname "
	"AND s.tablename = t.relname "
	"AND s.attname = pg_get_indexdef(x.oid, a.attnum, true) "
	"GROUP BY x.oid"
	"), est AS ("
	"SELECT x.qname, x.bytes, x.relpages, "
	"c.ncols = c.nstats AND x.reltuples >= 0 AND x.relpages > 0 AS known, "
	"1 + ceil(greatest(x.reltuples, 0) / greatest(floor((x.bs - 40) * "
	"x.ff / 100.0 / (4 + CASE WHEN c.nulls THEN 16 ELSE 8 END + "
	"ceil(c.w / 8.0) * 8)), 1)) AS want "
	"FROM idx x JOIN cols c ON c.oid = x.oid"
	") SELECT qname, bytes, CASE WHEN known THEN greatest(0, round(100 * "
	"(relpages - want) / relpages))::int END FROM est ORDER BY qname";

const char *
maint_step_name(enum maint_step s)
{
	return s >= 0 && s < MAINT_NSTEPS ? step_names[s] : "?";
}

int
maint_step_find(const char *name)
{
	int i;

	for (i = 0; i < MAINT_NSTEPS; i++)
		if (strcmp(step_names[i], name) == 0)
			return i;
	return -1;
}

void
maint_result_clear(struct maint_result *r)
{
	if (r == NULL)
		return;
	json_object_put(r->facts);
	memset(r, 0, sizeof(*r));
}

/* Add a count to r's facts (r borrowed). */
static void
fact(struct maint_result *r, const char *key, long long v)
{
	json_object_object_add(r->facts, key, json_object_new_int64(v));
}

/*
 * Record a failed statement (res borrowed; NULL: the connection's error):
 * queue_fail logs it with what to do and picks the exit code.
 */
static int
step_fail(struct maint_result *r, PGconn *conn, const PGresult *res,
    const char *what)
{
	const char *msg = res ? PQresultErrorField(res,
	    PG_DIAG_MESSAGE_PRIMARY) : NULL, *w = strstr(what, ": ");

	r->rc = queue_fail(conn, res, what);
	/* Without the "step: " prefix: the line and the state name it. */
	snprintf(r->error, sizeof(r->error), "%s: %s", w ? w + 2 : what,
	    msg ? msg : PQerrorMessage(conn));
	r->error[strcspn(r->error, "\n")] = '\0';
	return r->rc;
}

/*
 * Set lock_timeout and statement_timeout (milliseconds) for the current
 * transaction (local) or the session.  Returns the result, the caller's
 * to check and PQclear.
 */
static PGresult *
set_timeouts(PGconn *conn, long long lock_ms, long long stmt_ms, int local)
{
	char		 l[24], s[24];
	const char	*p[3];

	snprintf(l, sizeof(l), "%lld", lock_ms);
	snprintf(s, sizeof(s), "%lld", stmt_ms);
	p[0] = l;
	p[1] = s;
	p[2] = local ? "true" : "false";
	return queue_exec(conn, "SELECT set_config('lock_timeout', $1, "
	    "$3::boolean), set_config('statement_timeout', $2, $3::boolean)",
	    3, p);
}

/* Worth another try (state borrowed): a lock or statement timeout, a
 * deadlock, a serialization failure. */
static int
transient(const char *state)
{
	return strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0 ||
	    strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
}

/*
 * Run one batch statement in its own transaction under the maintenance
 * lock_timeout and the configured statement_timeout, MAINT_TRIES times at
 * most while it fails in a way that may clear.  Returns its result, owned
 * by the caller, or NULL after step_fail.
 */
static PGresult *
batch(PGconn *conn, const struct cfg *cfg, const char *sql, int n,
    const char *const *p, const char *what, struct maint_result *r)
{
	PGresult	*res = NULL, *c;
	const char	*msg;
	int		 try;

	for (try = 1; ; try++) {
		PQclear(res);
		res = queue_exec(conn, "BEGIN", 0, NULL);
		if (queue_ok(res)) {
			PQclear(res);
			res = set_timeouts(conn, cfg_int(cfg,
			    CFG_M_LOCK_TIMEOUT_MS), cfg_int(cfg,
			    CFG_DB_STATEMENT_TIMEOUT_MS), 1);
		}
		if (queue_ok(res)) {
			PQclear(res);
			res = queue_exec(conn, sql, n, p);
		}
		if (queue_ok(res)) {
			c = queue_exec(conn, "COMMIT", 0, NULL);
			if (queue_ok(c)) {
				PQclear(c);
				return res;
			}
			PQclear(res);
			res = c;
		}
		queue_rollback(conn);
		if (try >= MAINT_TRIES || PQstatus(conn) != CONNECTION_OK ||
		    !transient(db_sqlstate(res)))
			break;
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		log_warnx("maintain: %s: %s (attempt %d of %d); trying again",
		    what, msg ? msg : "?", try, MAINT_TRIES);
		usleep((useconds_t)try * 250000);
	}
	step_fail(r, conn, res, what);
	PQclear(res);
	return NULL;
}

/*
 * The steps.  conn and cfg are borrowed; r is the caller's, filled with
 * the step's line, facts and exit code, which is also returned.
 */
static int
rescue(PGconn *conn, const struct cfg *cfg, int dry, struct maint_result *r)
{
	PGresult	*res;
	const char	*p[2];
	char		 secs[24];
	long long	 requeued, failed;

	snprintf(secs, sizeof(secs), "%lld",
	    cfg_int(cfg, CFG_W_UNLEASED_AFTER_SECONDS));
	p[0] = secs;
	p[1] = dry ? "true" : "false";
	res = set_timeouts(conn, cfg_int(cfg, CFG_M_LOCK_TIMEOUT_MS),
	    cfg_int(cfg, CFG_DB_STATEMENT_TIMEOUT_MS), 0);
	if (queue_ok(res)) {
		PQclear(res);
		res = queue_exec(conn, rescue_sql, 2, p);
	}
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "rescue: running reset_stuck_tasks()");
		goto out;
	}
	requeued = atoll(PQgetvalue(res, 0, 0));
	failed = atoll(PQgetvalue(res, 0, 1));
	fact(r, "requeued", requeued);
	fact(r, "failed", failed);
	snprintf(r->line, sizeof(r->line), "rescue: %s %lld and %s %lld "
	    "abandoned task%s (expired lease, or no lease for %ss)",
	    dry ? "would requeue" : "requeued", requeued,
	    dry ? "fail" : "failed", failed, requeued + failed == 1 ? "" : "s",
	    secs);
	r->rc = EX_OK;
out:
	PQclear(res);
	return r->rc;
}

/*
 * Delete expired cache rows in batches (now: the run's clock, borrowed);
 * adds to *n.  0, or -1 with r filled by step_fail.
 */
static int
cleanup_cache(PGconn *conn, const struct cfg *cfg, const char *now,
    long long *n, struct maint_result *r)
{
	PGresult	*res;
	const char	*p[2];
	char		 size[24];
	long long	 got, bs = cfg_int(cfg, CFG_M_BATCH_SIZE);

	snprintf(size, sizeof(size), "%lld", bs);
	p[0] = now;
	p[1] = size;
	do {
		res = batch(conn, cfg, cache_sql, 2, p,
		    "cleanup: deleting expired triage_results_cache rows", r);
		if (res == NULL)
			return -1;
		got = atoll(PQgetvalue(res, 0, 0));
		*n += got;
		PQclear(res);
	} while (got == bs);
	return 0;
}

static int
cleanup(PGconn *conn, const struct cfg *cfg, int dry, struct maint_result *r)
{
	PGresult	*res = NULL;
	const char	*p[3];
	char		 days[24], size[24], cutoff[64], now[64], from[64];
	long long	 bs = cfg_int(cfg, CFG_M_BATCH_SIZE), got;
	long long	 tasks = 0, hist = 0, cache = 0, batches = 0;

	snprintf(days, sizeof(days), "%lld",
	    cfg_int(cfg, CFG_M_RETENTION_DAYS));
	snprintf(size, sizeof(size), "%lld", bs);
	p[0] = days;
	res = queue_exec(conn, cutoff_sql, 1, p);
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "cleanup: reading the clock");
		goto out;
	}
	snprintf(cutoff, sizeof(cutoff), "%s", PQgetvalue(res, 0, 0));
	snprintf(now, sizeof(now), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	res = NULL;
	p[0] = cutoff;
	p[1] = now;
	if (dry) {
		res = queue_exec(conn, count_sql, 2, p);
		if (!queue_ok(res)) {
			step_fail(r, conn, res, "cleanup: counting old tasks");
			goto out;
		}
		tasks = atoll(PQgetvalue(res, 0, 0));
		hist = atoll(PQgetvalue(res, 0, 1));
		cache = atoll(PQgetvalue(res, 0, 2));
		batches = (tasks + bs - 1) / bs;
		r->rc = EX_OK;
		goto out;
	}
	/* Keyset: each batch starts at the newest created_at of the last. */
	snprintf(from, sizeof(from), "-infinity");
	p[1] = from;
	p[2] = size;
	do {
		res = batch(conn, cfg, batch_sql, 3, p,
		    "cleanup: deleting a batch of old tasks", r);
		if (res == NULL)
			goto out;
		got = atoll(PQgetvalue(res, 0, 0));
		tasks += got;
		hist += atoll(PQgetvalue(res, 0, 1));
		batches += got > 0;
		snprintf(from, sizeof(from), "%s", PQgetvalue(res, 0, 2));
		PQclear(res);
		res = NULL;
	} while (got == bs);
	if (cleanup_cache(conn, cfg, now, &cache, r) == -1)
		goto out;
	r->rc = EX_OK;
out:
	PQclear(res);
	fact(r, "tasks_deleted", tasks);
	fact(r, "history_deleted", hist);
	fact(r, "cache_deleted", cache);
	fact(r, "batches", batches);
	fact(r, "batch_size", bs);
	fact(r, "retention_days", cfg_int(cfg, CFG_M_RETENTION_DAYS));
	if (r->rc == EX_OK)
		snprintf(r->line, sizeof(r->line), "cleanup: %s %lld task%s "
		    "ended over %s days ago and %lld history rows (%lld "
		    "batch%s of at most %lld), %lld expired cache rows",
		    dry ? "would delete" : "deleted", tasks, tasks == 1 ? "" :
		    "s", days, hist, batches, batches == 1 ? "" : "es", bs,
		    cache);
	else
		snprintf(r->line, sizeof(r->line), "cleanup: FAILED after "
		    "deleting %lld tasks in %lld batches and %lld cache rows: "
		    "%.900s", tasks, batches, cache, r->error);
	return r->rc;
}

/*
 * libpq notice receiver: logs VACUUM's warnings ("skipping vacuum of ...
 * lock not available") and appends them to arg, a 1024-byte buffer owned
 * by the caller.
 */
static void
vacuum_notice(void *arg, const PGresult *res)
{
	char		*buf = arg;
	const char	*msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	size_t		 len = strlen(buf);

	if (msg == NULL)
		return;
	log_warnx("vacuum: %s", msg);
	snprintf(buf + len, 1024 - len, "%s%s", len ? "; " : "", msg);
}

static int
vacuum(PGconn *conn, const struct cfg *cfg, int dry, struct maint_result *r)
{
	PGresult		*res;
	PQnoticeReceiver	 old;
	const char		*p[1] = { QUEUE_TABLES };
	char			 notes[1024] = "";
	long long		 dead;

	/* The statistics lag a just-finished cleanup: only for dry runs. */
	if (dry) {
		res = queue_exec(conn, dead_sql, 1, p);
		if (!queue_ok(res)) {
			step_fail(r, conn, res, "vacuum: reading "
			    "pg_stat_user_tables");
			goto out;
		}
		dead = atoll(PQgetvalue(res, 0, 0));
		snprintf(r->line, sizeof(r->line), "vacuum: would VACUUM "
		    "(ANALYZE) %s (%lld dead rows, per the statistics)",
		    QUEUE_TABLE_LIST, dead);
		r->rc = EX_OK;
		goto out;
	}
	/*
	 * VACUUM takes no lock the worker needs (SHARE UPDATE EXCLUSIVE), so
	 * it may run as long as it needs; a table it cannot lock at once
	 * (autovacuum is on it, or DDL) is skipped with a warning.
	 */
	res = set_timeouts(conn, cfg_int(cfg, CFG_M_LOCK_TIMEOUT_MS), 0, 0);
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "vacuum: setting timeouts");
		goto out;
	}
	PQclear(res);
	old = PQsetNoticeReceiver(conn, vacuum_notice, notes);
	res = PQexec(conn, "VACUUM (ANALYZE, SKIP_LOCKED) " QUEUE_TABLE_LIST);
	PQsetNoticeReceiver(conn, old, NULL);
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "vacuum: VACUUM (ANALYZE)");
		snprintf(r->line, sizeof(r->line), "vacuum: FAILED: %.900s",
		    r->error);
		goto out;
	}
	fact(r, "skipped", notes[0] != '\0');
	snprintf(r->line, sizeof(r->line), "vacuum: VACUUM (ANALYZE) %s%s%s",
	    QUEUE_TABLE_LIST, notes[0] ? "; " : "", notes);
	r->rc = EX_OK;
out:
	PQclear(res);
	return r->rc;
}

/* "2.1 MiB", "640 KiB" in the caller's buffer, which is returned. */
static const char *
human(long long bytes, char *buf, size_t len)
{
	if (bytes >= 1024LL * 1024 * 1024)
		snprintf(buf, len, "%.1f GiB", bytes / 1073741824.0);
	else if (bytes >= 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
	else
		snprintf(buf, len, "%lld KiB", bytes / 1024);
	return buf;
}

/* {"index", "bloat_percent", "bytes_before", "bytes_after"}; caller owns. */
static json_object *
index_fact(const char *name, int bloat, long long before, long long after)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "index", json_object_new_string(name));
	json_object_object_add(o, "bloat_percent", json_object_new_int(bloat));
	json_object_object_add(o, "bytes_before", json_object_new_int64(before));
	json_object_object_add(o, "bytes_after", json_object_new_int64(after));
	return o;
}

/*
 * Drop what interrupted REINDEX CONCURRENTLY runs left (conn and r
 * borrowed); 0, or -1 with r filled by step_fail.
 */
static int
drop_leftovers(PGconn *conn, struct maint_result *r)
{
	PGresult	*res, *d;
	const char	*p[1] = { QUEUE_TABLES };
	char		 sql[600];
	int		 i, rc = 0;

	res = queue_exec(conn, leftovers_sql, 1, p);
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "reindex: looking for invalid indexes");
		PQclear(res);
		return -1;
	}
	for (i = 0; i < PQntuples(res); i++) {
		/* The name was quoted by the server's format('%I'). */
		snprintf(sql, sizeof(sql), "DROP INDEX CONCURRENTLY IF EXISTS %s",
		    PQgetvalue(res, i, 0));
		d = PQexec(conn, sql);
		if (queue_ok(d))
			log_info("reindex: dropped %s, left by an interrupted "
			    "REINDEX CONCURRENTLY", PQgetvalue(res, i, 0));
		else {
			step_fail(r, conn, d, "reindex: dropping the invalid "
			    "index left by an interrupted REINDEX");
			rc = -1;
		}
		PQclear(d);
	}
	PQclear(res);
	return rc;
}

static int
reindex(PGconn *conn, const struct cfg *cfg, int dry, struct maint_result *r)
{
	PGresult	*res = NULL, *x;
	json_object	*done = json_object_new_array();
	const char	*p[1] = { QUEUE_TABLES }, *name;
	char		 sql[600], b1[32], b2[32], list[1400] = "";
	long long	 pct = cfg_int(cfg, CFG_M_REINDEX_BLOAT_PERCENT);
	long long	 min = cfg_int(cfg, CFG_M_REINDEX_MIN_KIB) * 1024;
	long long	 bytes, after;
	int		 i, bloat, small = 0, fine = 0, unknown = 0, rebuilt = 0;
	size_t		 len;

	json_object_object_add(r->facts, "rebuilt", done);
	r->rc = EX_OK;
	if (pct == 0) {
		snprintf(r->line, sizeof(r->line), "reindex: off ([maintenance] "
		    "reindex_bloat_percent = 0)");
		return r->rc;
	}
	res = set_timeouts(conn, cfg_int(cfg, CFG_M_LOCK_TIMEOUT_MS), 0, 0);
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "reindex: setting timeouts");
		goto out;
	}
	PQclear(res);
	res = NULL;
	if (!dry && drop_leftovers(conn, r) == -1)
		goto out;
	res = queue_exec(conn, bloat_sql, 1, p);
	if (!queue_ok(res)) {
		step_fail(r, conn, res, "reindex: estimating index bloat");
		goto out;
	}
	for (i = 0; i < PQntuples(res); i++) {
		name = PQgetvalue(res, i, 0);
		bytes = atoll(PQgetvalue(res, i, 1));
		if (bytes < min) {
			small++;
			continue;
		}
		if (PQgetisnull(res, i, 2)) {
			unknown++;
			continue;
		}
		bloat = atoi(PQgetvalue(res, i, 2));
		if (bloat < pct) {
			fine++;
			continue;
		}
		after = bytes;
		if (!dry) {
			snprintf(sql, sizeof(sql), "REINDEX INDEX CONCURRENTLY "
			    "%s", name);
			x = PQexec(conn, sql);
			if (!queue_ok(x)) {
				step_fail(r, conn, x, "reindex: REINDEX INDEX "
				    "CONCURRENTLY");
				PQclear(x);
				(void)drop_leftovers(conn, r);
				continue;
			}
			PQclear(x);
			x = queue_exec(conn, "SELECT pg_relation_size($1::"
			    "regclass)", 1, &name);
			if (queue_ok(x))
				after = atoll(PQgetvalue(x, 0, 0));
			PQclear(x);
		}
		rebuilt++;
		json_object_array_add(done, index_fact(name, bloat, bytes,
		    after));
		len = strlen(list);
		if (dry)
			snprintf(list + len, sizeof(list) - len, "%s%s (%d%% "
			    "estimated bloat, %s)", len ? ", " : "", name, bloat,
			    human(bytes, b1, sizeof(b1)));
		else
			snprintf(list + len, sizeof(list) - len, "%s%s (%d%% "
			    "estimated bloat, %s -> %s)", len ? ", " : "", name,
			    bloat, human(bytes, b1, sizeof(b1)),
			    human(after, b2, sizeof(b2)));
	}
	fact(r, "below_threshold", fine);
	fact(r, "below_min_size", small);
	fact(r, "no_statistics", unknown);
	snprintf(r->line, sizeof(r->line), "reindex: %s%.1300s%s; %d below "
	    "%lld%% bloat, %d under %s, %d without statistics%s%.500s",
	    rebuilt == 0 ? "nothing to rebuild" : dry ? "would rebuild " :
	    "rebuilt ", list, r->rc == EX_OK ? "" : " (some FAILED)", fine,
	    pct, small, human(min, b1, sizeof(b1)), unknown,
	    r->rc == EX_OK ? "" : ": ", r->rc == EX_OK ? "" : r->error);
out:
	if (r->rc != EX_OK && r->line[0] == '\0')
		snprintf(r->line, sizeof(r->line), "reindex: FAILED: %.900s",
		    r->error);
	PQclear(res);
	return r->rc;
}

int
maint_step_run(enum maint_step s, PGconn *conn, const struct cfg *cfg,
    int dry_run, struct maint_result *r)
{
	json_object_put(r->facts);
	memset(r, 0, sizeof(*r));
	r->facts = json_object_new_object();
	r->rc = EX_SOFTWARE;
	switch (s) {
	case MAINT_RESCUE:
		return rescue(conn, cfg, dry_run, r);
	case MAINT_CLEANUP:
		return cleanup(conn, cfg, dry_run, r);
	case MAINT_VACUUM:
		return vacuum(conn, cfg, dry_run, r);
	case MAINT_REINDEX:
		return reindex(conn, cfg, dry_run, r);
	default:
		snprintf(r->error, sizeof(r->error), "unknown step");
		return r->rc;
	}
}
