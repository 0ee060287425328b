/*
 * batch.c - the worker's batches: claims (held in an open transaction, or
 * written at once with hold_ms = 0), the settle that writes a held batch,
 * results sent on the result connections without waiting, lease
 * extension, and what happens when any of those connections is lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "worker_int.h"

static void	settled(struct worker *, int, int);

void
batch_to_done(struct worker *w, struct task *t, struct taskq *from, int *count)
{
	TAILQ_REMOVE(from, t, entry);
	(*count)--;
	if (t->held) {		/* written when the held batch settles */
		TAILQ_INSERT_TAIL(&w->hdone, t, entry);
		w->nhdone++;
		return;
	}
	TAILQ_INSERT_TAIL(&w->done, t, entry);
	w->ndone++;
}

static void
count_outcome(struct worker *w, const struct task *t)
{
	health_outcome(w->health, t);
	switch (t->outcome) {
	case OUT_FINISHED:
		w->finished++;
		break;
	case OUT_RETRY:
		w->retried++;
		log_warnx("worker: task %s (%s) attempt %d of %d failed: %s",
		    t->id, t->type, t->attempt, t->max_attempts,
		    t->error ? t->error : "?");
		break;
	case OUT_FAIL:
		w->failed++;
		log_warnx("worker: task %s (%s) failed without retry: %s",
		    t->id, t->type, t->error ? t->error : "?");
		break;
	default:
		break;
	}
}

/* Retry delays for a batch (caller frees). */
static long *
delays_for(struct worker *w, struct task **v, int n)
{
	long	*delays;
	int	 i;

	delays = calloc((size_t)n, sizeof(*delays));
	if (delays == NULL)
		fatal("worker: calloc");
	for (i = 0; i < n; i++)
		delays[i] = v[i]->outcome == OUT_RETRY ?
		    handler_backoff_ms(w->retry_base, w->retry_cap,
		    v[i]->attempt, worker_jitter()) : 0;
	return delays;
}

static void
account(struct worker *w, struct task **v, int n, const int *lost)
{
	int i;

	for (i = 0; i < n; i++) {
		if (lost[i]) {
			w->lost++;
			log_warnx("worker: task %s: our lease had expired and "
			    "the task was rescued; this result is discarded "
			    "(raise [worker] lease_seconds if handlers stall)",
			    v[i]->id);
		} else
			count_outcome(w, v[i]);
	}
}

/* Record a batch on the main connection and wait for the answer. */
static int
record(struct worker *w, struct task **v, int n)
{
	long	*delays;
	int	*lost, rc;

	delays = delays_for(w, v, n);
	lost = calloc((size_t)n, sizeof(*lost));
	if (lost == NULL)
		fatal("worker: calloc");
	rc = taskdb_complete(w->conn, w->id, v, delays, n, lost);
	if (rc == 0)
		account(w, v, n, lost);
	free(delays);
	free(lost);
	return rc;
}

static struct task **
list_array(struct taskq *q, int n)
{
	struct task	**v, *t;
	int		  i = 0;

	v = calloc((size_t)n + 1, sizeof(*v));
	if (v == NULL)
		fatal("worker: calloc");
	TAILQ_FOREACH(t, q, entry)
		v[i++] = t;
	return v;
}

/*
 * Results go out on the result connections without waiting, so PostgreSQL
 * records one batch while the main connection claims the next: more than
 * one backend at work.  Any trouble with them and results are recorded on
 * the main connection instead.
 */
static struct rslot *
rslot_idle(struct worker *w)
{
	struct rslot	*s;
	char		 err[1024];
	int		 i;

	for (i = 0; i < NRSLOT; i++)
		if (w->rs[i].c != NULL && !w->rs[i].busy)
			return &w->rs[i];
	for (i = 0; i < NRSLOT; i++) {
		s = &w->rs[i];
		if (s->c != NULL || now_ms() < s->next_connect)
			continue;
		s->c = db_connect_quiet(w->cfg, "worker results", err,
		    sizeof(err));
		/* It may become the main connection: same session, LISTEN. */
		if (s->c != NULL && (taskdb_session(s->c) == -1 ||
		    (w->listen && taskdb_listen(s->c) == -1))) {
			PQfinish(s->c);
			s->c = NULL;
		}
		if (s->c == NULL) {
			log_debug("worker: results connection: %s", err);
			s->next_connect = now_ms() + 5000;
			continue;
		}
		return s;
	}
	return NULL;
}

int
batch_nbusy(const struct worker *w)
{
	int i, n = 0;

	for (i = 0; i < NRSLOT; i++)
		n += w->rs[i].busy;
	return n;
}

/* Can results be sent now (a slot is free, or none is busy and results
 * would go on the main connection)? */
int
batch_can_send(const struct worker *w)
{
	int i;

	for (i = 0; i < NRSLOT; i++)
		if (!w->rs[i].busy && (w->rs[i].c != NULL ||
		    now_ms() >= w->rs[i].next_connect))
			return 1;
	return batch_nbusy(w) == 0;
}

void
batch_free_tasks(struct worker *w, struct taskq *q)
{
	struct task *t;

	for (;;) {
		t = TAILQ_FIRST(q);
		if (t == NULL)
			break;
		TAILQ_REMOVE(q, t, entry);
		task_free(t, w->multi);
	}
}

void
batch_slot_done(struct rslot *s)
{
	s->busy = s->settling = 0;
	s->n = 0;
	free(s->lost);
	s->lost = NULL;
}

/*
 * Drop a result connection.  An ordinary batch in flight is recorded
 * again (the fence turns an already recorded task into a no-op); a settle
 * in flight died with its transaction, so its tasks are back in the queue.
 */
void
batch_slot_drop(struct worker *w, struct rslot *s, const char *why)
{
	struct task *t;

	log_debug("worker: results connection dropped: %s", why);
	PQfinish(s->c);
	s->c = NULL;
	s->next_connect = now_ms() + 1000;
	if (s->settling) {
		settled(w, (int)(s - w->rs), 0);
		if (s->n > 0)
			log_warnx("worker: lost a database connection while "
			    "recording %d results (%s); those tasks are back in "
			    "the queue with no attempt counted and will run "
			    "again", s->n, why);
		batch_free_tasks(w, &s->q);
	}
	for (;;) {
		t = TAILQ_LAST(&s->q, taskq);
		if (t == NULL)
			break;
		TAILQ_REMOVE(&s->q, t, entry);
		TAILQ_INSERT_HEAD(&w->done, t, entry);
		w->ndone++;
	}
	batch_slot_done(s);
}

static int
send_done(struct worker *w, struct rslot *s)
{
	struct task	**v;
	long		 *delays;
	int		  rc;

	v = list_array(&w->done, w->ndone);
	delays = delays_for(w, v, w->ndone);
	rc = taskdb_complete_send(s->c, w->id, v, delays, w->ndone);
	free(delays);
	free(v);
	if (rc == -1) {
		batch_slot_drop(w, s, "send failed");
		return 0;
	}
	TAILQ_CONCAT(&s->q, &w->done, entry);
	s->n = w->ndone;
	s->busy = 1;
	w->ndone = 0;
	w->want_claim = 1;
	return 1;
}

/*
 * The settle on slot k has been answered: its tasks that were still
 * running or waiting are now leased (ok), or, after a rollback, back in
 * the queue and possibly claimed elsewhere, so stop them here.
 */
static void
settled(struct worker *w, int k, int ok)
{
	struct taskq	*qs[3] = { &w->prefetched, &w->running, &w->done };
	int		*ns[3] = { &w->nprefetched, &w->nrunning, &w->ndone };
	struct task	*t, *next;
	int		 i, j, dropped = 0;

	for (i = 0; i < NRSLOT; i++)
		TAILQ_FOREACH(t, &w->rs[i].q, entry)
			if (t->settling == k + 1)
				t->settling = 0;
	for (j = 0; j < 3; j++)
		for (t = TAILQ_FIRST(qs[j]); t != NULL; t = next) {
			next = TAILQ_NEXT(t, entry);
			if (t->settling != k + 1)
				continue;
			t->settling = 0;
			if (ok)
				continue;
			if (t->outcome == OUT_NONE)
				handler_abort(t, OUT_RELEASE, "claim lost",
				    w->multi);
			TAILQ_REMOVE(qs[j], t, entry);
			(*ns[j])--;
			task_free(t, w->multi);
			dropped++;
		}
	if (dropped > 0)
		log_warnx("worker: %d claimed tasks went back to the queue when "
		    "their batch could not be recorded; their handlers are "
		    "stopped and they will run again", dropped);
}

/* Take the answer for a settle in flight, if it has all come. */
static void
collect_settle(struct worker *w, struct rslot *s)
{
	struct task	**v;
	int		  r;

	r = taskdb_settle_poll(s->c, &s->st, s->nbatch, s->lost);
	if (r == 0)
		return;
	settled(w, (int)(s - w->rs), r == 1);
	if (r == -1) {
		w->hold_off_until = now_ms() + 60000;
		if (PQstatus(s->c) != CONNECTION_OK ||
		    PQtransactionStatus(s->c) != PQTRANS_IDLE) {
			batch_slot_drop(w, s, "recording failed");
			return;
		}
		log_warnx("worker: %d results were refused and are not "
		    "recorded; those tasks are back in the queue and will run "
		    "again, claimed the ordinary way for a minute", s->n);
		batch_free_tasks(w, &s->q);
		batch_slot_done(s);
		return;
	}
	v = list_array(&s->q, s->n);
	account(w, v, s->n, s->lost);
	free(v);
	batch_free_tasks(w, &s->q);
	batch_slot_done(s);
}

/* Take the answers that have come. */
void
batch_collect(struct worker *w)
{
	struct task	**v;
	struct rslot	 *s;
	int		 *lost, n, rc, i;

	for (i = 0; i < NRSLOT; i++) {
		s = &w->rs[i];
		if (!s->busy)
			continue;
		if (PQconsumeInput(s->c) == 0) {
			batch_slot_drop(w, s, PQerrorMessage(s->c));
			continue;
		}
		worker_drain_notifies(w, s->c);
		if (s->settling) {
			collect_settle(w, s);
			continue;
		}
		if (PQisBusy(s->c))
			continue;
		n = s->n;
		v = list_array(&s->q, n);
		lost = calloc((size_t)n, sizeof(*lost));
		if (lost == NULL)
			fatal("worker: calloc");
		rc = taskdb_complete_result(s->c, n, lost);
		if (rc == -1) {
			/* A value the server refused: redo it in line,
			 * task by task. */
			w->sync_next = 1;
			batch_slot_drop(w, s, "batch refused");
		} else {
			account(w, v, n, lost);
			batch_free_tasks(w, &s->q);
			batch_slot_done(s);
		}
		free(v);
		free(lost);
	}
}

void
batch_flush(struct worker *w)
{
	struct task	**v;
	struct rslot	 *s;
	int		  n = w->ndone, i;

	/* Never inside a held transaction: results wait for its settle. */
	if (w->nheld > 0)
		return;
	if (!w->sync_next) {
		s = rslot_idle(w);
		if (s != NULL && send_done(w, s))
			return;
		if (batch_nbusy(w) > 0)
			return;		/* wait for a slot */
	}
	w->sync_next = 0;
	v = list_array(&w->done, n);
	if (record(w, v, n) == -1) {
		if (PQstatus(w->conn) != CONNECTION_OK) {
			free(v);
			worker_db_down(w, "connection closed while recording results");
			return;
		}
		/* One bad value must not block the rest. */
		for (i = 0; i < n; i++) {
			if (record(w, &v[i], 1) == 0)
				continue;
			task_end(v[i], OUT_RETRY, NULL, "the database refused "
			    "this result; see the worker's log");
			if (record(w, &v[i], 1) == -1)
				log_warnx("worker: task %s: result could not be "
				    "recorded; it will be rescued when its lease "
				    "expires", v[i]->id);
		}
	}
	for (i = 0; i < n; i++) {
		TAILQ_REMOVE(&w->done, v[i], entry);
		task_free(v[i], w->multi);
	}
	w->ndone = 0;
	free(v);
	/* Slots were freed: look for more work now rather than at the poll. */
	w->want_claim = 1;
}

/*
 * The held batch is over (all ended, its time is up, or the worker
 * stops): write it in the transaction that holds it.  Ended tasks get
 * their final state in that one write; the rest become ordinary leased
 * claims.  Sent without waiting, after which the main connection trades
 * places with an idle result connection.  Returns 0 when it must wait for
 * a result connection to come free.
 */
int
batch_settle(struct worker *w, int force)
{
	struct task	**v, *t, *next;
	struct rslot	 *s;
	long		 *delays;
	int		 *lost, n = 0, nd, i, r;
	PGconn		 *c;

	s = rslot_idle(w);
	if (s == NULL && batch_nbusy(w) > 0 && !force)
		return 0;
	/* Returned unstarted: the lock alone kept them; nothing to write. */
	for (t = TAILQ_FIRST(&w->hdone); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->outcome != OUT_RELEASE)
			continue;
		TAILQ_REMOVE(&w->hdone, t, entry);
		w->nhdone--;
		task_free(t, w->multi);
	}
	v = calloc((size_t)w->nheld + 1, sizeof(*v));
	if (v == NULL)
		fatal("worker: calloc");
	TAILQ_FOREACH(t, &w->hdone, entry)
		v[n++] = t;
	nd = n;
	TAILQ_FOREACH(t, &w->running, entry)
		if (t->held && n < w->nheld)
			v[n++] = t;
	TAILQ_FOREACH(t, &w->prefetched, entry)
		if (t->held && n < w->nheld)
			v[n++] = t;
	for (i = 0; i < n; i++)
		v[i]->held = 0;
	w->nheld = 0;
	if (n > nd)
		w->next_extend = now_ms() + w->lease_s * 1000 / 3;
	if (n == 0) {
		if (db_cmd(w->conn, "worker: claiming tasks", "COMMIT") == -1)
			worker_db_failed(w);
		free(v);
		return 1;
	}
	delays = delays_for(w, v, n);
	if (s != NULL && s->busy == 0 && taskdb_settle_send(w->conn, w->id,
	    v, delays, n, w->lease_s) == 0) {
		for (i = nd; i < n; i++)
			v[i]->settling = (int)(s - w->rs) + 1;
		s->lost = calloc((size_t)n, sizeof(*s->lost));
		if (s->lost == NULL)
			fatal("worker: calloc");
		TAILQ_CONCAT(&s->q, &w->hdone, entry);
		s->n = nd;
		s->nbatch = n;
		s->busy = s->settling = 1;
		memset(&s->st, 0, sizeof(s->st));
		w->nhdone = 0;
		c = s->c;
		s->c = w->conn;
		w->conn = c;
		w->want_claim = 1;
		goto out;
	}
	/* No result connection to hand over to: wait for the answer. */
	lost = calloc((size_t)n, sizeof(*lost));
	if (lost == NULL)
		fatal("worker: calloc");
	for (i = nd; i < n; i++)	/* slot NRSLOT: this call */
		v[i]->settling = NRSLOT + 1;
	if (PQpipelineStatus(w->conn) != PQ_PIPELINE_OFF)
		r = taskdb_rollback(w->conn) == 0 ? -2 : -1;
	else
		r = taskdb_settle(w->conn, w->id, v, delays, n, w->lease_s,
		    lost);
	settled(w, NRSLOT, r == 0);
	if (r == 0)
		account(w, v, nd, lost);
	else {
		log_warnx("worker: %d results could not be recorded; those "
		    "tasks are back in the queue and will run again", nd);
		w->hold_off_until = now_ms() + 60000;
	}
	batch_free_tasks(w, &w->hdone);
	w->nhdone = 0;
	free(lost);
	if (r != 0 && (PQstatus(w->conn) != CONNECTION_OK ||
	    PQtransactionStatus(w->conn) != PQTRANS_IDLE))
		worker_db_down(w, "connection lost while recording results");
	w->want_claim = 1;
out:
	free(delays);
	free(v);
	return 1;
}

/* The held transaction is gone with its connection: its tasks are back in
 * the queue, so stop them here. */
void
batch_hold_lost(struct worker *w)
{
	struct task *t, *next;

	if (w->nheld == 0)
		return;
	log_warnx("worker: %d claimed tasks went back to the queue with the "
	    "connection that held them (no attempt counted); their handlers "
	    "are stopped and they will run again", w->nheld);
	for (t = TAILQ_FIRST(&w->prefetched); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (!t->held)
			continue;
		TAILQ_REMOVE(&w->prefetched, t, entry);
		w->nprefetched--;
		task_free(t, w->multi);
	}
	for (t = TAILQ_FIRST(&w->running); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (!t->held)
			continue;
		handler_abort(t, OUT_RELEASE, "claim lost", w->multi);
		TAILQ_REMOVE(&w->running, t, entry);
		w->nrunning--;
		task_free(t, w->multi);
	}
	batch_free_tasks(w, &w->hdone);
	w->nhdone = 0;
	w->nheld = 0;
}

void
batch_claim(struct worker *w)
{
	int want, got;

	/* Results waiting to be sent still hold their slots. */
	if (w->nheld > 0)
		return;		/* the connection is in the held batch */
	want = (w->concurrency + w->prefetch) -
	    (w->nrunning + w->nprefetched + w->ndone + w->nhdone);
	if (want > MAX_CLAIM)
		want = MAX_CLAIM;
	w->want_claim = 0;
	w->next_claim = now_ms() + w->poll_ms;
	if (want <= 0)
		return;
	/*
	 * Quick handlers finish while the claim's transaction is still
	 * open: their tasks are then written once, queued to finished,
	 * instead of twice.
	 */
	if (w->hold_ms > 0 && now_ms() >= w->hold_off_until) {
		got = taskdb_hold(w->conn, w->types_lit, want, &w->prefetched);
		if (got > 0) {
			w->nheld = got;
			w->hold_deadline = now_ms() + w->hold_ms;
		}
	} else
		got = taskdb_claim(w->conn, &w->reg, want, w->lease_s,
		    &w->prefetched);
	if (got == -1) {
		worker_db_failed(w);
		return;
	}
	w->nprefetched += got;
	health_claimed(w->health, &w->prefetched, got);
	w->claimed_none = got == 0;
	/* More may be waiting; an empty answer is what ends a drain. */
	if (got > 0)
		w->want_claim = 1;
	if (got > 0)
		w->next_extend = now_ms() + w->lease_s * 1000 / 3;
}

/* With nothing claimable, check when the next retry is due. */
int
batch_pending(struct worker *w)
{
	int r;

	r = taskdb_pending(w->conn, w->types_lit);
	if (r == -1) {
		worker_db_failed(w);
		return 1;
	}
	return r;
}

void
batch_start(struct worker *w)
{
	const struct cfg_handler	*h;
	struct task			*t;

	while (w->nrunning < w->concurrency && w->nprefetched > 0) {
		t = TAILQ_FIRST(&w->prefetched);
		TAILQ_REMOVE(&w->prefetched, t, entry);
		w->nprefetched--;
		TAILQ_INSERT_TAIL(&w->running, t, entry);
		w->nrunning++;
		h = cfg_handler_find(w->cfg, t->type);
		if (h == NULL)
			handler_abort(t, OUT_RELEASE, "no handler for this "
			    "type after a configuration reload", w->multi);
		else
			handler_start(t, h, w->multi);
		if (t->outcome != OUT_NONE)
			batch_to_done(w, t, &w->running, &w->nrunning);
	}
}

void
batch_extend(struct worker *w)
{
	struct task	**v, *t;
	int		 *cancel, *lost, n = 0, i;

	w->next_extend = now_ms() + w->lease_s * 1000 / 3;
	if (w->nrunning + w->nprefetched == 0)
		return;
	v = calloc((size_t)(w->nrunning + w->nprefetched), sizeof(*v));
	cancel = calloc((size_t)(w->nrunning + w->nprefetched), sizeof(int));
	lost = calloc((size_t)(w->nrunning + w->nprefetched), sizeof(int));
	if (v == NULL || cancel == NULL || lost == NULL)
		fatal("worker: calloc");
	/* Held tasks have no lease yet. */
	TAILQ_FOREACH(t, &w->running, entry)
		if (!t->held)
			v[n++] = t;
	TAILQ_FOREACH(t, &w->prefetched, entry)
		if (!t->held)
			v[n++] = t;
	if (n == 0)
		goto out;
	if (taskdb_extend(w->conn, w->id, v, n, w->lease_s, cancel, lost) ==
	    -1) {
		worker_db_failed(w);
		goto out;
	}
	for (i = 0; i < n; i++) {
		t = v[i];
		if (!lost[i] && !cancel[i])
			continue;
		if (lost[i])
			log_warnx("worker: task %s: lease lost (rescued by "
			    "another worker); stopping its handler", t->id);
		handler_abort(t, OUT_CANCELLED, "cancelled by operator",
		    w->multi);
		if (lost[i]) {
			/* Not ours any more: drop without recording. */
			if (t->started_ms) {
				TAILQ_REMOVE(&w->running, t, entry);
				w->nrunning--;
			} else {
				TAILQ_REMOVE(&w->prefetched, t, entry);
				w->nprefetched--;
			}
			task_free(t, w->multi);
			continue;
		}
		if (t->started_ms)
			batch_to_done(w, t, &w->running, &w->nrunning);
		else
			batch_to_done(w, t, &w->prefetched, &w->nprefetched);
	}
out:
	free(v);
	free(cancel);
	free(lost);
}

