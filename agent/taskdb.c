/*
 * taskdb.c - the worker's SQL.  Every statement handles a whole batch in
 * one round trip and writes its task_history rows in the same statement,
 * so the audit trail costs no extra trip.  Completions are fenced by
 * (worker_id, attempt_count): a worker whose lease was lost and whose task
 * was claimed again cannot record a second result.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "taskdb.h"
#include "version.h"

static const char claim_sql[] =
    "WITH c AS ("
    " SELECT task_id FROM tasks"
    "  WHERE status = 'queued' AND run_at <= now()"
    "    AND task_type = ANY($2::text[])"
    "    AND attempt_count < max_attempts"
    "  ORDER BY priority DESC, run_at, created_at"
    "  LIMIT $3"
    "  FOR UPDATE SKIP LOCKED"
    "), u AS ("
    " UPDATE tasks t SET status = 'started', started_at = now(),"
    "   ended_at = NULL, worker_id = $1,"
    "   attempt_count = t.attempt_count + 1,"
    "   lease_expires_at = now() + $4 * interval '1 second',"
    "   cancel_requested = false"
    "  FROM c WHERE t.task_id = c.task_id"
    "  RETURNING t.task_id, t.task_type, t.skill_name, t.source_repo,"
    "   t.target_repo, t.change_event, t.relationship_config,"
    "   t.attempt_count, t.max_attempts, t.priority, t.run_at"
    "), h AS ("
    " INSERT INTO task_history (task_id, status, worker_id)"
    " SELECT task_id, 'started', $1 FROM u"
    ")"
    " SELECT task_id, task_type, skill_name, source_repo, target_repo,"
    "  change_event, relationship_config, attempt_count, max_attempts"
    " FROM u ORDER BY priority DESC, run_at";

/*
 * A held claim: lock due tasks in the caller's open transaction without
 * writing them.  attempt_count + 1 is the attempt they will run as.
 */
static const char hold_sql[] =
    "SELECT task_id, task_type, skill_name, source_repo, target_repo,"
    "  change_event, relationship_config, attempt_count + 1, max_attempts"
    " FROM tasks"
    " WHERE status = 'queued' AND run_at <= now()"
    "   AND task_type = ANY($1::text[])"
    "   AND attempt_count < max_attempts"
    " ORDER BY priority DESC, run_at, created_at"
    " LIMIT $2"
    " FOR UPDATE SKIP LOCKED";

/*
 * Settle held tasks in the transaction that holds them: those that ended
 * get their final state at once (one write instead of claim + complete)
 * and both history rows; 'start' marks the rest started with a lease, as
 * an ordinary claim would have.  now() is the transaction's start, i.e.
 * the claim.  No status fence: this transaction holds the rows' locks
 * since the claim, so they are still queued, and a condition on status
 * would let the planner (with a freshly loaded queue's stale statistics)
 * read every queued task through a status index to find a thousand,
 * instead of probing the primary key.
 */
static const char settle_sql[] =
    "WITH d AS ("
    " SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],"
    "   $6::int[], $7::bigint[]) WITH ORDINALITY"
    "  AS d(task_id, outcome, result, error, duration_ms, delay_ms, ord)"
    "), u AS ("
    " UPDATE tasks t SET"
    "  status = CASE"
    "   WHEN d.outcome = 'start' THEN 'started'"
    "   WHEN d.outcome IN ('finished', 'cancelled') THEN d.outcome"
    "   WHEN d.outcome = 'retry' AND t.attempt_count + 1 < t.max_attempts"
    "    THEN 'queued'"
    "   ELSE 'failed' END,"
    "  attempt_count = t.attempt_count + 1,"
    "  started_at = now(),"
    "  ended_at = CASE WHEN d.outcome = 'start' OR (d.outcome = 'retry'"
    "   AND t.attempt_count + 1 < t.max_attempts) THEN NULL"
    "   ELSE clock_timestamp() END,"
    "  run_at = CASE WHEN d.outcome = 'retry'"
    "   AND t.attempt_count + 1 < t.max_attempts"
    "   THEN clock_timestamp() + d.delay_ms * interval '1 millisecond'"
    "   ELSE t.run_at END,"
    "  result = CASE WHEN d.outcome = 'finished' THEN d.result::jsonb"
    "   ELSE t.result END,"
    "  error = d.error,"
    "  worker_id = $1,"
    "  lease_expires_at = CASE WHEN d.outcome = 'start'"
    "   THEN now() + $8 * interval '1 second' END,"
    "  cancel_requested = false"
    "  FROM d"
    "  WHERE t.task_id = d.task_id"
    "  RETURNING t.task_id, t.status, d.outcome, d.error, d.duration_ms,"
    "   d.ord"
    "), h AS ("
    " INSERT INTO task_history (task_id, status, \"timestamp\", worker_id,"
    "  error, duration_ms)"
    " SELECT task_id, 'started', now(), $1, NULL, NULL FROM u"
    " UNION ALL"
    " SELECT task_id, CASE WHEN status = 'queued' THEN 'retry'"
    "   ELSE status END, clock_timestamp(), $1, error, duration_ms"
    "  FROM u WHERE outcome <> 'start'"
    ")"
    " SELECT ord FROM u";

/* A retry while attempts remain requeues; otherwise it fails. */
static const char complete_sql[] =
    "WITH d AS ("
    " SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[],"
    "   $6::text[], $7::int[], $8::bigint[]) WITH ORDINALITY"
    "  AS d(task_id, attempt, outcome, result, error, duration_ms, delay_ms,"
    "   ord)"
    "), u AS ("
    " UPDATE tasks t SET"
    "  status = CASE"
    "   WHEN d.outcome IN ('finished', 'cancelled') THEN d.outcome"
    "   WHEN d.outcome = 'release' THEN 'queued'"
    "   WHEN d.outcome = 'retry' AND t.attempt_count < t.max_attempts"
    "    THEN 'queued'"
    "   ELSE 'failed' END,"
    "  attempt_count = CASE WHEN d.outcome = 'release'"
    "   THEN t.attempt_count - 1 ELSE t.attempt_count END,"
    "  ended_at = CASE WHEN d.outcome = 'release' OR (d.outcome = 'retry'"
    "   AND t.attempt_count < t.max_attempts) THEN NULL"
    "   ELSE clock_timestamp() END,"
    "  run_at = CASE WHEN d.outcome = 'retry'"
    "   AND t.attempt_count < t.max_attempts"
    "   THEN clock_timestamp() + d.delay_ms * interval '1 millisecond'"
    "   ELSE t.run_at END,"
    "  result = CASE WHEN d.outcome = 'finished' THEN d.result::jsonb"
    "   ELSE t.result END,"
    "  error = d.error,"
    "  worker_id = CASE WHEN d.outcome = 'release' THEN NULL"
    "   ELSE t.worker_id END,"
    "  lease_expires_at = NULL,"
    "  cancel_requested = false"
    "  FROM d"
    "  WHERE t.task_id = d.task_id AND t.status = 'started'"
    "   AND t.worker_id = $1 AND t.attempt_count = d.attempt"
    "  RETURNING t.task_id, t.status, d.outcome, d.error, d.duration_ms,"
    "   d.ord"
    "), h AS ("
    " INSERT INTO task_history (task_id, status, worker_id, error,"
    "  duration_ms)"
    " SELECT task_id, CASE WHEN outcome = 'release' THEN 'released'"
    "   WHEN status = 'queued' THEN 'retry' ELSE status END,"
    "  $1, error, duration_ms FROM u"
    ")"
    " SELECT ord FROM u";

static const char extend_sql[] =
    "UPDATE tasks t SET lease_expires_at = now() + $4 * interval '1 second'"
    "  FROM unnest($2::text[], $3::int[]) WITH ORDINALITY"
    "   AS d(task_id, attempt, ord)"
    " WHERE t.task_id = d.task_id AND t.attempt_count = d.attempt"
    "   AND t.worker_id = $1 AND t.status = 'started'"
    " RETURNING d.ord, t.cancel_requested";

static const char *const outcome_names[] = {
	[OUT_NONE] = "retry",	/* never recorded as such */
	[OUT_FINISHED] = "finished",
	[OUT_RETRY] = "retry",
	[OUT_FAIL] = "fail",
	[OUT_CANCELLED] = "cancelled",
	[OUT_RELEASE] = "release",
};

/* Append s to *buf, growing it; the buffer is owned by the caller. */
static void
put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	char *nb;

	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 256;

		while (c < *len + n + 1)
			c *= 2;
		nb = realloc(*buf, c);
		if (nb == NULL)
			fatal("taskdb: realloc");
		*buf = nb;
		*cap = c;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
}

char *
taskdb_array(const char *const *v, int n)
{
	char		*buf = NULL;
	size_t		 len = 0, cap = 0;
	const char	*p;
	int		 i;

	put(&buf, &len, &cap, "{", 1);
	for (i = 0; i < n; i++) {
		if (i)
			put(&buf, &len, &cap, ",", 1);
		if (v[i] == NULL) {
			put(&buf, &len, &cap, "NULL", 4);
			continue;
		}
		put(&buf, &len, &cap, "\"", 1);
		for (p = v[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				put(&buf, &len, &cap, "\\", 1);
			put(&buf, &len, &cap, p, 1);
		}
		put(&buf, &len, &cap, "\"", 1);
	}
	put(&buf, &len, &cap, "}", 1);
	return buf;
}

/* An array literal of integers (caller frees). */
static char *
int_array(const long *v, int n)
{
	char	*buf = NULL, num[24];
	size_t	 len = 0, cap = 0;
	int	 i, k;

	put(&buf, &len, &cap, "{", 1);
	for (i = 0; i < n; i++) {
		k = snprintf(num, sizeof(num), "%s%ld", i ? "," : "", v[i]);
		put(&buf, &len, &cap, num, (size_t)k);
	}
	put(&buf, &len, &cap, "}", 1);
	return buf;
}

/*
 * Rows come back in no particular order, each with the 1-based position of
 * its task in the arrays we sent: clear lost[] for those, and set cancel[]
 * from the second column when asked.
 */
static void
mark_rows(const PGresult *res, int n, int *lost, int *cancel)
{
	int k, i;

	for (k = 0; k < PQntuples(res); k++) {
		i = atoi(PQgetvalue(res, k, 0)) - 1;
		if (i < 0 || i >= n)
			continue;
		lost[i] = 0;
		if (cancel != NULL)
			cancel[i] = PQgetvalue(res, k, 1)[0] == 't';
	}
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fatal("taskdb: strdup");
	return d;
}

/* Append the claimed rows of res to q as tasks (owned by q's holder). */
static int
add_tasks(const PGresult *res, struct taskq *q, int held)
{
	struct task	*t;
	int		 i, rows;

	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		t = calloc(1, sizeof(*t));
		if (t == NULL)
			fatal("taskdb: calloc");
		t->id = xstrdup(PQgetvalue(res, i, 0));
		t->type = xstrdup(PQgetvalue(res, i, 1));
		t->skill = xstrdup(PQgetvalue(res, i, 2));
		t->source = xstrdup(PQgetvalue(res, i, 3));
		t->target = xstrdup(PQgetvalue(res, i, 4));
		t->change_event = xstrdup(PQgetvalue(res, i, 5));
		t->relationship_config = xstrdup(PQgetvalue(res, i, 6));
		t->attempt = atoi(PQgetvalue(res, i, 7));
		t->max_attempts = atoi(PQgetvalue(res, i, 8));
		t->held = held;
		TAILQ_INSERT_TAIL(q, t, entry);
	}
	return rows;
}

int
taskdb_claim(PGconn *conn, const struct taskdb_worker *w, int n,
    int lease_seconds, struct taskq *q)
{
	const char	*params[4];
	char		 lim[16], lease[16];
	PGresult	*res;
	int		 rows;

	snprintf(lim, sizeof(lim), "%d", n);
	snprintf(lease, sizeof(lease), "%d", lease_seconds);
	params[0] = w->id;
	params[1] = w->types_literal;
	params[2] = lim;
	params[3] = lease;
	res = db_exec_prepared(conn, "worker: claiming tasks", "oa_claim", 4,
	    params);
	if (res == NULL)
		return -1;
	rows = add_tasks(res, q, 0);
	PQclear(res);
	return rows;
}

int
taskdb_hold(PGconn *conn, const char *types_literal, int n, struct taskq *q)
{
	const char	*params[2];
	char		 lim[16];
	PGresult	*res;
	int		 rows;

	if (db_cmd(conn, "worker: claiming tasks", "BEGIN") == -1)
		return -1;
	snprintf(lim, sizeof(lim), "%d", n);
	params[0] = types_literal;
	params[1] = lim;
	res = db_exec_prepared(conn, "worker: claiming tasks", "oa_hold", 2,
	    params);
	if (res == NULL) {
		(void)taskdb_rollback(conn);
		return -1;
	}
	rows = add_tasks(res, q, 1);
	PQclear(res);
	if (rows == 0 && db_cmd(conn, "worker: claiming tasks", "COMMIT") ==
	    -1)
		return -1;
	return rows;
}

int
taskdb_rollback(PGconn *conn)
{
	PGresult	*res;
	int		 i;

	/* Take what a settle left in the pipeline, then leave the mode. */
	for (i = 0; i < 64 && PQpipelineStatus(conn) != PQ_PIPELINE_OFF; i++) {
		if (PQstatus(conn) != CONNECTION_OK)
			return -1;
		res = PQgetResult(conn);
		if (res != NULL) {
			PQclear(res);
			continue;
		}
		(void)PQexitPipelineMode(conn);
	}
	if (PQstatus(conn) != CONNECTION_OK ||
	    PQpipelineStatus(conn) != PQ_PIPELINE_OFF)
		return -1;
	if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
		res = PQexec(conn, "ROLLBACK");
		PQclear(res);
	}
	return PQtransactionStatus(conn) == PQTRANS_IDLE ? 0 : -1;
}

/* The arrays of a completion batch; free with free_complete(). */
struct complete_args {
	char		*a[7];
	const char	*params[8];
};

static void
build_complete(struct complete_args *ca, const char *worker_id,
    struct task **v, const long *delays, int n)
{
	const char	**ids, **outs, **results, **errors;
	long		*attempts, *durs;
	int		 i, k;

	ids = calloc((size_t)n, sizeof(*ids));
	outs = calloc((size_t)n, sizeof(*outs));
	results = calloc((size_t)n, sizeof(*results));
	errors = calloc((size_t)n, sizeof(*errors));
	attempts = calloc((size_t)n, sizeof(*attempts));
	durs = calloc((size_t)n, sizeof(*durs));
	if (!ids || !outs || !results || !errors || !attempts || !durs)
		fatal("taskdb: calloc");
	for (i = 0; i < n; i++) {
		ids[i] = v[i]->id;
		outs[i] = outcome_names[v[i]->outcome];
		results[i] = v[i]->result;
		errors[i] = v[i]->error;
		attempts[i] = v[i]->attempt;
		durs[i] = v[i]->duration_ms;
	}
	ca->a[0] = taskdb_array(ids, n);
	ca->a[1] = int_array(attempts, n);
	ca->a[2] = taskdb_array(outs, n);
	ca->a[3] = taskdb_array(results, n);
	ca->a[4] = taskdb_array(errors, n);
	ca->a[5] = int_array(durs, n);
	ca->a[6] = int_array(delays, n);
	ca->params[0] = worker_id;
	for (k = 0; k < 7; k++)
		ca->params[k + 1] = ca->a[k];
	free(ids);
	free(outs);
	free(results);
	free(errors);
	free(attempts);
	free(durs);
}

static void
free_complete(struct complete_args *ca)
{
	int k;

	for (k = 0; k < 7; k++)
		free(ca->a[k]);
}

int
taskdb_complete(PGconn *conn, const char *worker_id, struct task **v,
    const long *delays, int n, int *lost)
{
	struct complete_args	 ca;
	PGresult		*res;
	int			 i;

	for (i = 0; i < n; i++)
		lost[i] = 1;
	build_complete(&ca, worker_id, v, delays, n);
	res = db_exec_prepared(conn, "worker: recording results",
	    "oa_complete", 8, ca.params);
	free_complete(&ca);
	if (res == NULL)
		return -1;
	mark_rows(res, n, lost, NULL);
	PQclear(res);
	return 0;
}

int
taskdb_complete_send(PGconn *conn, const char *worker_id, struct task **v,
    const long *delays, int n)
{
	struct complete_args	ca;
	int			ok;

	build_complete(&ca, worker_id, v, delays, n);
	ok = PQsendQueryPrepared(conn, "oa_complete", 8, ca.params, NULL,
	    NULL, 0);
	free_complete(&ca);
	if (!ok) {
		log_warnx("worker: sending results: %s", PQerrorMessage(conn));
		return -1;
	}
	return 0;
}

int
taskdb_complete_result(PGconn *conn, int n, int *lost)
{
	PGresult	*res;
	int		 i, rc = -1, got = 0;

	for (i = 0; i < n; i++)
		lost[i] = 1;
	for (;;) {
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		if (PQresultStatus(res) == PGRES_TUPLES_OK && !got) {
			mark_rows(res, n, lost, NULL);
			got = 1;
			rc = 0;
		} else if (PQresultStatus(res) != PGRES_TUPLES_OK)
			log_warnx("worker: recording results: %s",
			    PQresultErrorMessage(res));
		PQclear(res);
	}
	return rc;
}

int
taskdb_settle_send(PGconn *conn, const char *worker_id, struct task **v,
    const long *delays, int n, int lease_seconds)
{
	const char	**ids, **outs, **results, **errors, *params[8];
	long		*durs;
	char		*a[6] = { NULL }, lease[16];
	int		 i, k, rc = -1;

	ids = calloc((size_t)n, sizeof(*ids));
	outs = calloc((size_t)n, sizeof(*outs));
	results = calloc((size_t)n, sizeof(*results));
	errors = calloc((size_t)n, sizeof(*errors));
	durs = calloc((size_t)n, sizeof(*durs));
	if (!ids || !outs || !results || !errors || !durs)
		fatal("taskdb: calloc");
	for (i = 0; i < n; i++) {
		ids[i] = v[i]->id;
		/* Still running or waiting: becomes an ordinary claim. */
		outs[i] = v[i]->outcome == OUT_NONE ? "start" :
		    outcome_names[v[i]->outcome];
		results[i] = v[i]->result;
		errors[i] = v[i]->error;
		durs[i] = v[i]->duration_ms;
	}
	a[0] = taskdb_array(ids, n);
	a[1] = taskdb_array(outs, n);
	a[2] = taskdb_array(results, n);
	a[3] = taskdb_array(errors, n);
	a[4] = int_array(durs, n);
	a[5] = int_array(delays, n);
	snprintf(lease, sizeof(lease), "%d", lease_seconds);
	params[0] = worker_id;
	for (k = 0; k < 6; k++)
		params[k + 1] = a[k];
	params[7] = lease;
	/* Settle and COMMIT in one round trip: a pipeline of two. */
	if (PQenterPipelineMode(conn) == 0 ||
	    PQsendQueryPrepared(conn, "oa_settle", 8, params, NULL, NULL,
	    0) == 0 ||
	    PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL,
	    0) == 0 ||
	    PQpipelineSync(conn) == 0) {
		log_warnx("worker: sending results: %s", PQerrorMessage(conn));
		goto out;
	}
	rc = 0;
out:
	for (k = 0; k < 6; k++)
		free(a[k]);
	free(ids);
	free(outs);
	free(results);
	free(errors);
	free(durs);
	return rc;
}

int
taskdb_settle_poll(PGconn *conn, struct taskdb_settle *st, int n, int *lost)
{
	PGresult	*res;
	int		 s, isnull;

	if (st->step == 0)
		for (s = 0; s < n; s++)
			lost[s] = 1;
	for (;;) {
		if (PQstatus(conn) != CONNECTION_OK)
			return -1;
		if (PQisBusy(conn))
			return 0;
		res = PQgetResult(conn);
		isnull = res == NULL;
		s = !isnull ? (int)PQresultStatus(res) : -1;
		switch (st->step) {
		case 0:		/* the settle statement */
			if (s == PGRES_TUPLES_OK)
				mark_rows(res, n, lost, NULL);
			else {
				st->failed = 1;
				log_warnx("worker: recording results: %s",
				    res != NULL ? PQresultErrorMessage(res) :
				    PQerrorMessage(conn));
			}
			break;
		case 2:		/* COMMIT, or skipped after an error */
			if (s != PGRES_COMMAND_OK) {
				if (!st->failed && res != NULL)
					log_warnx("worker: recording results: "
					    "%s", PQresultErrorMessage(res));
				st->failed = 1;
			}
			break;
		case 4:		/* the pipeline's end */
			if (s != PGRES_PIPELINE_SYNC)
				st->failed = 1;
			break;
		default:	/* the NULL after each statement's results */
			break;
		}
		PQclear(res);
		if (st->step == 4 || isnull != (st->step % 2 == 1)) {
			/* Done, or out of step: either way, leave the pipeline. */
			if (st->step != 4)
				st->failed = 1;
			st->step = 5;
			if (st->failed) {
				(void)taskdb_rollback(conn);
				return -1;
			}
			return PQexitPipelineMode(conn) == 1 ? 1 : -1;
		}
		st->step++;
	}
}

int
taskdb_settle(PGconn *conn, const char *worker_id, struct task **v,
    const long *delays, int n, int lease_seconds, int *lost)
{
	struct taskdb_settle	st = { 0, 0 };
	struct pollfd		pfd;
	int			r;

	if (taskdb_settle_send(conn, worker_id, v, delays, n,
	    lease_seconds) == -1) {
		(void)taskdb_rollback(conn);
		return -1;
	}
	for (;;) {
		r = taskdb_settle_poll(conn, &st, n, lost);
		if (r != 0)
			return r == 1 ? 0 : -1;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		(void)poll(&pfd, 1, 1000);
		if (PQconsumeInput(conn) == 0)
			return -1;
	}
}

int
taskdb_extend(PGconn *conn, const char *worker_id, struct task **v, int n,
    int lease_seconds, int *cancel, int *lost)
{
	const char	**ids, *params[4];
	long		*att;
	char		*a_ids = NULL, *a_att = NULL, lease[16];
	PGresult	*res = NULL;
	int		 i, rc = -1;

	ids = calloc((size_t)n, sizeof(*ids));
	att = calloc((size_t)n, sizeof(*att));
	if (ids == NULL || att == NULL)
		fatal("taskdb: calloc");
	for (i = 0; i < n; i++) {
		ids[i] = v[i]->id;
		att[i] = v[i]->attempt;
		lost[i] = 1;
		cancel[i] = 0;
	}
	a_ids = taskdb_array(ids, n);
	a_att = int_array(att, n);
	snprintf(lease, sizeof(lease), "%d", lease_seconds);
	params[0] = worker_id;
	params[1] = a_ids;
	params[2] = a_att;
	params[3] = lease;
	res = db_exec_prepared(conn, "worker: extending leases", "oa_extend", 4,
	    params);
	if (res == NULL)
		goto out;
	mark_rows(res, n, lost, cancel);
	rc = 0;
out:
	PQclear(res);
	free(a_ids);
	free(a_att);
	free(ids);
	free(att);
	return rc;
}

int
taskdb_rescue(PGconn *conn, int unleased_after_seconds)
{
	const char	*params[1];
	char		 secs[16];
	PGresult	*res;
	int		 n;

	snprintf(secs, sizeof(secs), "%d", unleased_after_seconds);
	params[0] = secs;
	res = db_exec(conn, "worker: rescuing stuck tasks",
	    "SELECT count(*) FROM reset_stuck_tasks($1 * interval '1 second')",
	    1, params);
	if (res == NULL)
		return -1;
	n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

int
taskdb_pending(PGconn *conn, const char *types_literal)
{
	const char	*params[1] = { types_literal };
	PGresult	*res;
	int		 r;

	res = db_exec(conn, "worker: checking for remaining tasks",
	    "SELECT EXISTS (SELECT 1 FROM tasks WHERE task_type = "
	    "ANY($1::text[]) AND (status = 'started' OR (status = 'queued' "
	    "AND attempt_count < max_attempts)))", 1, params);
	if (res == NULL)
		return -1;
	r = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return r;
}

int
taskdb_register(PGconn *conn, const struct taskdb_worker *w)
{
	const char	*params[6];
	char		 pid[16], conc[16];

	snprintf(pid, sizeof(pid), "%d", w->pid);
	snprintf(conc, sizeof(conc), "%d", w->concurrency);
	params[0] = w->id;
	params[1] = w->host;
	params[2] = pid;
	params[3] = agent_version;
	params[4] = w->types_literal;
	params[5] = conc;
	return db_cmd_params(conn, "worker: registering",
	    "INSERT INTO workers (worker_id, host, pid, version, task_types, "
	    "concurrency) VALUES ($1, $2, $3, $4, $5::text[], $6) "
	    "ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), "
	    "stopped_at = NULL, task_types = EXCLUDED.task_types, "
	    "concurrency = EXCLUDED.concurrency", 6, params);
}

int
taskdb_heartbeat(PGconn *conn, const char *worker_id)
{
	const char *params[1] = { worker_id };

	return db_cmd_params(conn, "worker: heartbeat",
	    "UPDATE workers SET heartbeat_at = now() WHERE worker_id = $1", 1,
	    params);
}

int
taskdb_unregister(PGconn *conn, const char *worker_id)
{
	const char *params[1] = { worker_id };

	return db_cmd_params(conn, "worker: unregistering",
	    "UPDATE workers SET stopped_at = now(), heartbeat_at = now() "
	    "WHERE worker_id = $1", 1, params);
}

int
taskdb_listen(PGconn *conn)
{
	if (db_cmd(conn, "worker: LISTEN", "LISTEN " TASKDB_CHANNEL_TASKS) ==
	    -1 || db_cmd(conn, "worker: LISTEN", "LISTEN "
	    TASKDB_CHANNEL_CANCEL) == -1)
		return -1;
	return 0;
}

int
taskdb_session(PGconn *conn)
{
	/*
	 * After a burst of inserts the statistics are stale (autovacuum has
	 * not analysed yet) and the planner would sort the whole queue for
	 * each claim instead of walking idx_tasks_claim in order.  Every
	 * statement of this session is index-driven, so sorting is made the
	 * last resort here only.  The same staleness made the batch
	 * statements hash every queued task to join a thousand ids (the
	 * estimate for status = 'queued' was a few hundred), so joins probe
	 * the primary key, as they should for a batch.  JIT goes too: it
	 * costs more than these short statements run, and the sort penalty
	 * alone would trigger it.
	 */
	if (db_cmd(conn, "worker: session settings", "SET enable_sort = off") ==
	    -1 || db_cmd(conn, "worker: session settings",
	    "SET enable_hashjoin = off") == -1 || db_cmd(conn,
	    "worker: session settings", "SET enable_mergejoin = off") == -1 ||
	    db_cmd(conn, "worker: session settings", "SET jit = off") == -1)
		return -1;
	/* Prepared once per connection: planning is most of an idle claim. */
	if (db_prepare(conn, "worker: preparing", "oa_claim", claim_sql, 4) ==
	    -1 || db_prepare(conn, "worker: preparing", "oa_complete",
	    complete_sql, 8) == -1 || db_prepare(conn, "worker: preparing",
	    "oa_extend", extend_sql, 4) == -1 || db_prepare(conn,
	    "worker: preparing", "oa_hold", hold_sql, 2) == -1 ||
	    db_prepare(conn, "worker: preparing", "oa_settle", settle_sql,
	    8) == -1)
		return -1;
	return 0;
}
