/*
 * worker.c - the queue worker: one thread, two database connections (one
 * claims, one records results), one poll loop for them, signals
 * (signalfd), handler pipes and HTTP transfers (curl multi).
 *
 * Each turn of the loop records finished tasks in one statement, extends
 * leases, claims a batch, starts what fits, then sleeps until something
 * happens.  Nothing in it blocks for long except a database round trip.
 */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "cfg.h"
#include "cmd.h"
#include "db.h"
#include "handler.h"
#include "health.h"
#include "log.h"
#include "notify.h"
#include "proc.h"
#include "taskdb.h"
#include "worker.h"

#define MAX_TYPES	64
#define MAX_CLAIM	1000
#define MAX_WAITFDS	(3 * 256 + 2)
#define HEARTBEAT_MS	15000
#define RECONNECT_MAX_MS 30000
#define NRSLOT		3	/* result connections */

/* A connection that records results without waiting. */
struct rslot {
	PGconn			*c;
	struct taskq		 q;	/* tasks whose results are in flight */
	int			 n;
	int			 busy;		/* a batch is in flight */
	int			 settling;	/* ... a settle, then */
	int			 nbatch;	/* settle: tasks sent */
	int			*lost;		/* settle: nbatch flags */
	struct taskdb_settle	 st;
	int64_t			 next_connect;
};

struct worker {
	struct agent		*agent;
	const struct cfg	*cfg;		/* borrowed from agent */
	const struct worker_opts *opts;
	char			 id[101], host[65];
	char			*types[MAX_TYPES];
	int			 ntypes;
	char			*types_lit;
	struct taskdb_worker	 reg;
	int			 concurrency, prefetch, lease_s, poll_ms;
	int			 grace_s, listen, unleased_s;
	long			 retry_base, retry_cap;
	PGconn			*conn;		/* claims and the rest */
	struct rslot		 rs[NRSLOT];
	int64_t			 next_connect, down_since;
	long			 connect_delay;
	CURLM			*multi;
	int			 sfd;
	struct taskq		 prefetched, running, done;
	int			 nprefetched, nrunning, ndone;
	/* Held claims: tasks locked in a transaction open on conn. */
	int			 hold_ms, holding, nheld, nhdone;
	struct taskq		 hdone;		/* held tasks that ended */
	int64_t			 hold_deadline, hold_off_until;
	int			 reregister;
	int			 sync_next;	/* record the next batch in line */
	int			 stopping, want_claim, claimed_none;
	int64_t			 grace_deadline, next_claim, next_extend;
	int64_t			 next_heartbeat, next_rescue, next_watchdog;
	uint64_t		 watchdog_usec;
	unsigned long		 finished, failed, retried, lost;
	struct health		*health;	/* NULL: [health] listen off */
};

static double
jitter(void)
{
	unsigned int r = 0;

	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (unsigned int)now_ms();
	return (double)r / 4294967296.0;
}

static void
free_types(struct worker *w)
{
	int i;

	for (i = 0; i < w->ntypes; i++)
		free(w->types[i]);
	w->ntypes = 0;
	free(w->types_lit);
	w->types_lit = NULL;
}

static int
in_list(const char *list, const char *type)
{
	size_t		 n = strlen(type);
	const char	*p = list;

	while (p != NULL && *p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && strncmp(p, type, n) == 0)
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

/*
 * The types this worker serves: those with a handler, narrowed by --types.
 * Returns 0, or -1 with a message (the configuration cannot run).
 */
static int
load_types(struct worker *w, const struct cfg *cfg, char *err, size_t errlen)
{
	const char	*only = w->opts->types, *p;
	char		 name[64];
	int		 i, n;

	free_types(w);
	for (p = only; p != NULL && *p != '\0';) {
		n = (int)strcspn(p, ",");
		snprintf(name, sizeof(name), "%.*s", n, p);
		if (cfg_handler_find(cfg, name) == NULL) {
			snprintf(err, errlen, "--types names '%s' but the "
			    "configuration has no [handler.%s] section", name,
			    name);
			return -1;
		}
		p += n + (p[n] == ',');
	}
	for (i = 0; i < cfg_handler_count(cfg) && w->ntypes < MAX_TYPES; i++) {
		const char *t = cfg_handler_at(cfg, i)->type;

		if (only == NULL || in_list(only, t))
			w->types[w->ntypes++] = strdup(t);
	}
	if (w->ntypes == 0) {
		snprintf(err, errlen, "no [handler.TYPE] section to serve; add "
		    "one per task type (see agent.ini.example)");
		return -1;
	}
	w->types_lit = taskdb_array((const char *const *)w->types, w->ntypes);
	w->reg.types_literal = w->types_lit;
	return 0;
}

static void
apply_cfg(struct worker *w, const struct cfg *cfg)
{
	w->cfg = cfg;
	w->concurrency = w->opts->concurrency > 0 ? w->opts->concurrency :
	    (int)cfg_int(cfg, CFG_W_CONCURRENCY);
	w->prefetch = (int)cfg_int(cfg, CFG_W_PREFETCH);
	w->lease_s = (int)cfg_int(cfg, CFG_W_LEASE_SECONDS);
	w->poll_ms = (int)cfg_int(cfg, CFG_W_POLL_INTERVAL_MS);
	w->grace_s = (int)cfg_int(cfg, CFG_W_GRACE_SECONDS);
	w->listen = cfg_bool(cfg, CFG_W_LISTEN);
	w->unleased_s = (int)cfg_int(cfg, CFG_W_UNLEASED_AFTER_SECONDS);
	w->hold_ms = (int)cfg_int(cfg, CFG_W_HOLD_MS);
	w->retry_base = (long)cfg_int(cfg, CFG_W_RETRY_BASE_MS);
	w->retry_cap = (long)cfg_int(cfg, CFG_W_RETRY_CAP_MS);
	w->reg.concurrency = w->concurrency;
}

static void
notify_status(struct worker *w)
{
	notify_sendf("STATUS=%s; %d running, %d prefetched; %lu finished, "
	    "%lu failed, %lu retried", w->conn ? "database connected" :
	    "database unreachable, reconnecting", w->nrunning, w->nprefetched,
	    w->finished, w->failed, w->retried);
}

static void	hold_lost(struct worker *);

/* The connection broke: log once, keep running handlers, reconnect. */
static void
db_down(struct worker *w, const char *why)
{
	if (w->conn == NULL)
		return;
	log_warnx("worker: lost the database connection (%s); %d running "
	    "tasks carry on and their results wait; reconnecting with "
	    "backoff", why, w->nrunning);
	hold_lost(w);
	PQfinish(w->conn);
	w->conn = NULL;
	w->down_since = now_ms();
	w->connect_delay = 250;
	w->next_connect = now_ms() + w->connect_delay;
	notify_status(w);
}

/* After a failed statement: a broken connection, or a transient error. */
static void
db_failed(struct worker *w)
{
	if (w->conn != NULL && PQstatus(w->conn) != CONNECTION_OK)
		db_down(w, "connection closed");
	else
		w->next_claim = now_ms() + w->poll_ms;
}

static void
db_up(struct worker *w)
{
	char	 err[1024];
	PGconn	*c;

	c = db_connect_quiet(w->cfg, "worker", err, sizeof(err));
	if (c == NULL) {
		if (w->down_since == 0) {
			log_warnx("worker: %s; retrying with backoff", err);
			w->down_since = now_ms();
		} else
			log_debug("worker: reconnect failed: %s", err);
		w->connect_delay = w->connect_delay ? w->connect_delay * 2 : 250;
		if (w->connect_delay > RECONNECT_MAX_MS)
			w->connect_delay = RECONNECT_MAX_MS;
		w->next_connect = now_ms() + w->connect_delay +
		    (int64_t)(jitter() * (double)w->connect_delay / 4);
		return;
	}
	w->conn = c;
	if (taskdb_session(c) == -1 || (w->listen && taskdb_listen(c) == -1) ||
	    taskdb_register(c, &w->reg) == -1) {
		PQfinish(c);
		w->conn = NULL;
		w->next_connect = now_ms() + RECONNECT_MAX_MS / 10;
		return;
	}
	if (w->down_since != 0)
		log_info("worker: database connection restored after %lld ms",
		    (long long)(now_ms() - w->down_since));
	w->down_since = 0;
	w->connect_delay = 0;
	w->want_claim = 1;
	notify_status(w);
}

static void
to_done(struct worker *w, struct task *t, struct taskq *from, int *count)
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
		    v[i]->attempt, jitter()) : 0;
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

static int
nbusy(const struct worker *w)
{
	int i, n = 0;

	for (i = 0; i < NRSLOT; i++)
		n += w->rs[i].busy;
	return n;
}

/* Can results be sent now (a slot is free, or none is busy and results
 * would go on the main connection)? */
static int
can_send(const struct worker *w)
{
	int i;

	for (i = 0; i < NRSLOT; i++)
		if (!w->rs[i].busy && (w->rs[i].c != NULL ||
		    now_ms() >= w->rs[i].next_connect))
			return 1;
	return nbusy(w) == 0;
}

static void
free_tasks(struct worker *w, struct taskq *q)
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

static void
rslot_done(struct rslot *s)
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
static void
rslot_drop(struct worker *w, struct rslot *s, const char *why)
{
	struct task *t;

	log_debug("worker: results connection dropped: %s", why);
	PQfinish(s->c);
	s->c = NULL;
	s->next_connect = now_ms() + 1000;
	if (s->settling) {
		if (s->n > 0)
			log_warnx("worker: lost a database connection while "
			    "recording %d results (%s); those tasks are back in "
			    "the queue with no attempt counted and will run "
			    "again", s->n, why);
		free_tasks(w, &s->q);
	}
	for (;;) {
		t = TAILQ_LAST(&s->q, taskq);
		if (t == NULL)
			break;
		TAILQ_REMOVE(&s->q, t, entry);
		TAILQ_INSERT_HEAD(&w->done, t, entry);
		w->ndone++;
	}
	rslot_done(s);
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
		rslot_drop(w, s, "send failed");
		return 0;
	}
	TAILQ_CONCAT(&s->q, &w->done, entry);
	s->n = w->ndone;
	s->busy = 1;
	w->ndone = 0;
	w->want_claim = 1;
	return 1;
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
	if (r == -1) {
		w->hold_off_until = now_ms() + 60000;
		if (PQstatus(s->c) != CONNECTION_OK ||
		    PQtransactionStatus(s->c) != PQTRANS_IDLE) {
			rslot_drop(w, s, "recording failed");
			return;
		}
		log_warnx("worker: %d results were refused and are not "
		    "recorded; those tasks are back in the queue and will run "
		    "again, claimed the ordinary way for a minute", s->n);
		free_tasks(w, &s->q);
		rslot_done(s);
		return;
	}
	v = list_array(&s->q, s->n);
	account(w, v, s->n, s->lost);
	free(v);
	free_tasks(w, &s->q);
	rslot_done(s);
}

/* Take the answers that have come. */
static void
collect(struct worker *w)
{
	struct task	**v;
	struct rslot	 *s;
	int		 *lost, n, rc, i;

	for (i = 0; i < NRSLOT; i++) {
		s = &w->rs[i];
		if (!s->busy)
			continue;
		if (PQconsumeInput(s->c) == 0) {
			rslot_drop(w, s, PQerrorMessage(s->c));
			continue;
		}
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
			rslot_drop(w, s, "batch refused");
		} else {
			account(w, v, n, lost);
			free_tasks(w, &s->q);
			rslot_done(s);
		}
		free(v);
		free(lost);
	}
}

static void
flush_done(struct worker *w)
{
	struct task	**v;
	struct rslot	 *s;
	int		  n = w->ndone, i;

	/* Never inside a held transaction: results wait for its settle. */
	if (w->holding)
		return;
	if (!w->sync_next) {
		s = rslot_idle(w);
		if (s != NULL && send_done(w, s))
			return;
		if (nbusy(w) > 0)
			return;		/* wait for a slot */
	}
	w->sync_next = 0;
	v = list_array(&w->done, n);
	if (record(w, v, n) == -1) {
		if (PQstatus(w->conn) != CONNECTION_OK) {
			free(v);
			db_down(w, "connection closed while recording results");
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
static int
settle(struct worker *w, int force)
{
	struct task	**v, *t, *next;
	struct rslot	 *s;
	long		 *delays;
	int		 *lost, n = 0, nd, i, r;
	PGconn		 *c;

	s = rslot_idle(w);
	if (s == NULL && nbusy(w) > 0 && !force)
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
	w->holding = 0;
	w->nheld = 0;
	if (n > nd)
		w->next_extend = now_ms() + w->lease_s * 1000 / 3;
	if (n == 0) {
		if (db_cmd(w->conn, "worker: claiming tasks", "COMMIT") == -1)
			db_failed(w);
		free(v);
		return 1;
	}
	delays = delays_for(w, v, n);
	if (s != NULL && s->busy == 0 && taskdb_settle_send(w->conn, w->id,
	    v, delays, n, w->lease_s) == 0) {
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
	if (PQpipelineStatus(w->conn) != PQ_PIPELINE_OFF)
		r = taskdb_rollback(w->conn) == 0 ? -2 : -1;
	else
		r = taskdb_settle(w->conn, w->id, v, delays, n, w->lease_s,
		    lost);
	if (r == 0)
		account(w, v, nd, lost);
	else {
		log_warnx("worker: %d results could not be recorded; those "
		    "tasks are back in the queue and will run again", nd);
		w->hold_off_until = now_ms() + 60000;
	}
	free_tasks(w, &w->hdone);
	w->nhdone = 0;
	free(lost);
	if (r != 0 && (PQstatus(w->conn) != CONNECTION_OK ||
	    PQtransactionStatus(w->conn) != PQTRANS_IDLE))
		db_down(w, "connection lost while recording results");
	w->want_claim = 1;
out:
	free(delays);
	free(v);
	return 1;
}

/* The held transaction is gone with its connection: its tasks are back in
 * the queue, so stop them here. */
static void
hold_lost(struct worker *w)
{
	struct task *t, *next;

	if (!w->holding)
		return;
	log_warnx("worker: %d claimed tasks went back to the queue with the "
	    "connection that held them; they will run again", w->nheld);
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
	free_tasks(w, &w->hdone);
	w->nhdone = 0;
	w->holding = 0;
	w->nheld = 0;
}

static void
claim(struct worker *w)
{
	int want, got;

	/* Results waiting to be sent still hold their slots. */
	if (w->holding)
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
			w->holding = 1;
			w->nheld = got;
			w->hold_deadline = now_ms() + w->hold_ms;
		}
	} else
		got = taskdb_claim(w->conn, &w->reg, want, w->lease_s,
		    &w->prefetched);
	if (got == -1) {
		db_failed(w);
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
static int
idle_check(struct worker *w)
{
	int r;

	r = taskdb_pending(w->conn, w->types_lit);
	if (r == -1) {
		db_failed(w);
		return 1;
	}
	return r;
}

static void
start_tasks(struct worker *w)
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
			to_done(w, t, &w->running, &w->nrunning);
	}
}

static void
extend(struct worker *w)
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
		db_failed(w);
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
			to_done(w, t, &w->running, &w->nrunning);
		else
			to_done(w, t, &w->prefetched, &w->nprefetched);
	}
out:
	free(v);
	free(cancel);
	free(lost);
}

/* Cancel requested through NOTIFY: the payload is the task id. */
static void
cancel_task(struct worker *w, const char *id)
{
	struct task *t;

	TAILQ_FOREACH(t, &w->running, entry) {
		if (strcmp(t->id, id) != 0 || t->outcome != OUT_NONE)
			continue;
		log_info("worker: task %s: cancelled by operator; stopping its "
		    "handler", id);
		handler_abort(t, OUT_CANCELLED, "cancelled by operator",
		    w->multi);
		to_done(w, t, &w->running, &w->nrunning);
		return;
	}
	TAILQ_FOREACH(t, &w->prefetched, entry) {
		if (strcmp(t->id, id) != 0)
			continue;
		task_end(t, OUT_CANCELLED, NULL, "cancelled by operator");
		to_done(w, t, &w->prefetched, &w->nprefetched);
		return;
	}
}

/*
 * Notifications that libpq already read while a query ran wait in its
 * queue, not on the socket: they must be taken before sleeping, or the
 * wake-up is lost until the next poll.
 */
static void
drain_notifies(struct worker *w)
{
	PGnotify *n;

	for (;;) {
		n = PQnotifies(w->conn);
		if (n == NULL)
			break;
		if (strcmp(n->relname, TASKDB_CHANNEL_CANCEL) == 0)
			cancel_task(w, n->extra);
		else
			w->want_claim = 1;
		PQfreemem(n);
	}
}

static void
read_notifies(struct worker *w)
{
	if (w->conn == NULL)
		return;
	if (PQconsumeInput(w->conn) == 0) {
		db_down(w, "connection closed while listening");
		return;
	}
	drain_notifies(w);
}

/* SIGHUP: load the configuration again; keep the old one on error. */
static void
reload(struct worker *w)
{
	struct cfg	*n;
	char		 err[1024];
	char		*old_types[MAX_TYPES], *old_lit;
	int		 i, old_n;

	n = cfg_load(w->agent->config_path, err, sizeof(err));
	if (n == NULL) {
		log_warnx("worker: reload failed, keeping the running "
		    "configuration: %s", err);
		return;
	}
	old_n = w->ntypes;
	old_lit = w->types_lit;
	memcpy(old_types, w->types, sizeof(old_types));
	w->ntypes = 0;
	w->types_lit = NULL;
	if (load_types(w, n, err, sizeof(err)) == -1) {
		log_warnx("worker: reload failed, keeping the running "
		    "configuration: %s", err);
		free_types(w);
		memcpy(w->types, old_types, sizeof(old_types));
		w->ntypes = old_n;
		w->types_lit = old_lit;
		w->reg.types_literal = old_lit;
		cfg_free(n);
		return;
	}
	for (i = 0; i < old_n; i++)
		free(old_types[i]);
	free(old_lit);
	cfg_free(w->agent->cfg);
	w->agent->cfg = n;
	apply_cfg(w, n);
	w->reregister = 1;	/* by periodic(), outside a held batch */
	log_info("worker: configuration reloaded; serving %s", w->types_lit);
}

static void
reap(struct worker *w)
{
	struct task	*t;
	int		 st;
	pid_t		 pid;

	for (;;) {
		pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		TAILQ_FOREACH(t, &w->running, entry)
			if (handler_reaped(t, pid, st))
				break;
	}
}

static void
read_signals(struct worker *w)
{
	struct signalfd_siginfo	si;
	ssize_t			n;

	for (;;) {
		n = read(w->sfd, &si, sizeof(si));
		if (n != sizeof(si))
			break;
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(w);
			break;
		case SIGHUP:
			reload(w);
			break;
		default:	/* SIGTERM, SIGINT */
			if (w->stopping) {
				log_info("worker: second stop signal; stopping "
				    "handlers now");
				w->grace_deadline = now_ms();
				break;
			}
			w->stopping = 1;
			w->grace_deadline = now_ms() + (int64_t)w->grace_s *
			    1000;
			log_info("worker: stopping: no new claims, %d "
			    "prefetched tasks go back to the queue, %d running "
			    "handlers get up to %d s", w->nprefetched,
			    w->nrunning, w->grace_s);
			notify_send("STOPPING=1");
			break;
		}
	}
}

static void
curl_events(struct worker *w)
{
	struct task	*t;
	CURLMsg		*m;
	int		 still, left;

	curl_multi_perform(w->multi, &still);
	for (;;) {
		m = curl_multi_info_read(w->multi, &left);
		if (m == NULL)
			break;
		if (m->msg != CURLMSG_DONE)
			continue;
		t = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t != NULL)
			handler_http_done(t, (int)m->data.result, w->multi);
	}
}

static int64_t
earliest(int64_t a, int64_t b)
{
	return b < a ? b : a;
}

/* Sleep until the next thing to do or an event, then handle events. */
static void
wait_events(struct worker *w)
{
	struct curl_waitfd	 wfd[MAX_WAITFDS];
	struct pollfd		 pfd[MAX_WAITFDS];
	struct task		*t;
	int64_t			 now = now_ms(), until = now + 60000;
	int			 n = 0, k, i, fds[3];
	short			 ev[3];

	if (w->conn != NULL)
		drain_notifies(w);
	if (w->conn != NULL && !w->holding && w->want_claim && !w->stopping)
		until = now;
	if (w->conn == NULL)
		until = earliest(until, w->next_connect);
	else if (w->holding) {
		/* Only the held batch's end; the rest waits for its settle. */
		if ((w->nhdone == w->nheld || w->stopping) && can_send(w))
			until = now;
		else
			until = earliest(until, now >= w->hold_deadline ?
			    w->hold_deadline + 1000 : w->hold_deadline);
	} else {
		if (!w->stopping)
			until = earliest(until, w->next_claim);
		until = earliest(until, w->next_heartbeat);
		if (w->nrunning + w->nprefetched > 0)
			until = earliest(until, w->next_extend);
		if (!w->stopping)
			until = earliest(until, w->next_rescue);
		if (w->ndone > 0 && can_send(w))
			until = now;
	}
	if (w->stopping)
		until = earliest(until, w->grace_deadline);
	if (w->watchdog_usec)
		until = earliest(until, w->next_watchdog);
	if (w->health != NULL)	/* /healthz needs a fresh loop beat */
		until = earliest(until, now + 5000);
	wfd[n].fd = w->sfd;
	wfd[n++].events = CURL_WAIT_POLLIN;
	if (w->conn != NULL && w->listen) {
		wfd[n].fd = PQsocket(w->conn);
		wfd[n++].events = CURL_WAIT_POLLIN;
	}
	for (i = 0; i < NRSLOT; i++)
		if (w->rs[i].busy) {
			wfd[n].fd = PQsocket(w->rs[i].c);
			wfd[n++].events = CURL_WAIT_POLLIN;
		}
	TAILQ_FOREACH(t, &w->running, entry) {
		until = earliest(until, t->deadline_ms);
		if (t->exited_ms)
			until = earliest(until, t->exited_ms + 2001);
		k = handler_fds(t, fds, ev);
		for (i = 0; i < k && n < MAX_WAITFDS; i++) {
			wfd[n].fd = fds[i];
			wfd[n++].events = (short)ev[i];
		}
	}
	k = until > now ? (int)(until - now) : 0;
	if (w->multi != NULL)
		curl_multi_poll(w->multi, wfd, (unsigned)n, k, NULL);
	else {
		for (i = 0; i < n; i++) {
			pfd[i].fd = wfd[i].fd;
			pfd[i].events = wfd[i].events;
		}
		(void)poll(pfd, (nfds_t)n, k);
	}
	read_signals(w);
	read_notifies(w);
	if (w->multi != NULL)
		curl_events(w);
}

static void
poll_running(struct worker *w)
{
	struct task	*t, *next;
	int64_t		 now = now_ms();

	for (t = TAILQ_FIRST(&w->running); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (handler_poll(t, now))
			to_done(w, t, &w->running, &w->nrunning);
	}
}

/* Shutdown: prefetched tasks go back at once, late handlers at grace. */
static void
stop_work(struct worker *w)
{
	struct task *t, *next;

	for (t = TAILQ_FIRST(&w->prefetched); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		task_end(t, OUT_RELEASE, NULL, "returned unstarted when the "
		    "worker stopped");
		to_done(w, t, &w->prefetched, &w->nprefetched);
	}
	if (now_ms() < w->grace_deadline)
		return;
	for (t = TAILQ_FIRST(&w->running); t != NULL; t = next) {
		next = TAILQ_NEXT(t, entry);
		if (t->outcome != OUT_NONE)
			continue;
		log_warnx("worker: task %s: handler still running after "
		    "grace_seconds; killed and requeued", t->id);
		handler_abort(t, OUT_RELEASE, "worker stopped before the "
		    "handler finished; requeued", w->multi);
		to_done(w, t, &w->running, &w->nrunning);
	}
}

static void
periodic(struct worker *w)
{
	int64_t	now = now_ms();
	int	n;

	if (w->watchdog_usec && now >= w->next_watchdog) {
		notify_send("WATCHDOG=1");
		w->next_watchdog = now + (int64_t)(w->watchdog_usec / 2000);
	}
	/* Nothing else runs inside a held batch's transaction. */
	if (w->conn == NULL || w->holding)
		return;
	if (w->reregister) {
		w->reregister = 0;
		if (taskdb_register(w->conn, &w->reg) == -1) {
			db_failed(w);
			return;
		}
	}
	if (now >= w->next_heartbeat) {
		w->next_heartbeat = now + HEARTBEAT_MS;
		if (taskdb_heartbeat(w->conn, w->id) == -1) {
			db_failed(w);
			return;
		}
		notify_status(w);
	}
	if (w->nrunning + w->nprefetched > 0 && now >= w->next_extend)
		extend(w);
	if (w->conn != NULL && !w->stopping && now >= w->next_rescue) {
		w->next_rescue = now + (int64_t)w->lease_s * 1000;
		n = taskdb_rescue(w->conn, w->unleased_s);
		if (n == -1)
			db_failed(w);
		else if (n > 0) {
			log_info("worker: rescued %d stuck task%s", n,
			    n == 1 ? "" : "s");
			w->want_claim = 1;
		}
	}
}

static int
setup(struct worker *w)
{
	char		 err[1024], hn[256];
	unsigned short	 r = 0;

	if (load_types(w, w->cfg, err, sizeof(err)) == -1) {
		log_errx("worker: %s", err);
		return EX_CONFIG;
	}
	if (gethostname(hn, sizeof(hn)) == -1)
		snprintf(hn, sizeof(hn), "unknown");
	hn[sizeof(hn) - 1] = '\0';
	snprintf(w->host, sizeof(w->host), "%.64s", hn);
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (unsigned short)getpid();
	snprintf(w->id, sizeof(w->id), "%s-%d-%04x", w->host, (int)getpid(),
	    r);
	w->reg.id = w->id;
	w->reg.host = w->host;
	w->reg.pid = (int)getpid();
	w->sfd = proc_signalfd("worker");
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < cfg_handler_count(w->cfg); i++)
		if (cfg_handler_at(w->cfg, i)->kind == HANDLER_HTTP &&
		    w->multi == NULL) {
			if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
				fatalx("worker: curl_global_init failed");
			w->multi = curl_multi_init();
		}
	TAILQ_INIT(&w->prefetched);
	TAILQ_INIT(&w->running);
	TAILQ_INIT(&w->done);
	TAILQ_INIT(&w->hdone);
	for (int i = 0; i < NRSLOT; i++)
		TAILQ_INIT(&w->rs[i].q);
	if (notify_watchdog(&w->watchdog_usec) == -1)
		log_warnx("worker: ignoring the systemd watchdog: WATCHDOG_USEC "
		    "or WATCHDOG_PID does not parse; check the unit's "
		    "WatchdogSec=");
	return EX_OK;
}

int
worker_run(struct agent *a, const struct worker_opts *o)
{
	struct worker	 w;
	struct cfg	*cfg;
	int		 rc, i;

	memset(&w, 0, sizeof(w));
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	w.agent = a;
	w.opts = o;
	w.sfd = -1;
	apply_cfg(&w, cfg);
	rc = setup(&w);
	if (rc == EX_OK)	/* after setup: its thread inherits the mask */
		rc = health_start(cfg, o->health_listen, w.types, w.ntypes,
		    &w.health);
	if (rc != EX_OK)
		goto out;
	log_info("worker: %s serving %s with concurrency %d (up to three database "
	    "connections)", w.id, w.types_lit, w.concurrency);
	db_up(&w);
	notify_send("READY=1");
	notify_status(&w);
	for (;;) {
		if (w.conn == NULL && now_ms() >= w.next_connect)
			db_up(&w);
		if (w.stopping)
			stop_work(&w);
		collect(&w);
		if (w.conn != NULL && w.holding && (w.nhdone == w.nheld ||
		    w.stopping || now_ms() >= w.hold_deadline))
			(void)settle(&w, now_ms() >= w.hold_deadline + 1000);
		if (w.conn != NULL && w.ndone > 0)
			flush_done(&w);
		periodic(&w);
		if (w.conn != NULL && !w.stopping &&
		    (w.want_claim || now_ms() >= w.next_claim))
			claim(&w);
		start_tasks(&w);
		if (w.conn != NULL && w.ndone > 0 && !w.holding && can_send(&w))
			continue;	/* record before sleeping */
		if (w.stopping && w.nrunning == 0 && w.nprefetched == 0 &&
		    w.ndone == 0 && nbusy(&w) == 0 && !w.holding)
			break;
		if (w.stopping && w.conn == NULL && w.nrunning == 0 &&
		    now_ms() >= w.grace_deadline) {
			log_errx("worker: stopping without a database "
			    "connection; %d results were not recorded and will "
			    "run again after their leases expire", w.ndone);
			rc = EX_TEMPFAIL;
			goto out;
		}
		if (o->exit_when_empty && w.conn != NULL && !w.stopping &&
		    w.claimed_none && !w.want_claim && w.nrunning == 0 &&
		    w.nprefetched == 0 && w.ndone == 0 && nbusy(&w) == 0 &&
		    !w.holding &&
		    idle_check(&w) == 0)
			break;
		health_beat(w.health, &(struct health_state){ w.conn != NULL,
		    w.stopping, w.nrunning, w.nprefetched, w.concurrency });
		wait_events(&w);
		poll_running(&w);
	}
	rc = EX_OK;
out:
	if (w.conn != NULL && w.id[0] != '\0')
		(void)taskdb_unregister(w.conn, w.id);
	log_info("worker: stopped: %lu finished, %lu failed, %lu retried, "
	    "%lu results discarded after a lost lease", w.finished, w.failed,
	    w.retried, w.lost);
	free_tasks(&w, &w.done);
	free_tasks(&w, &w.hdone);
	for (i = 0; i < NRSLOT; i++) {
		free_tasks(&w, &w.rs[i].q);
		rslot_done(&w.rs[i]);
		PQfinish(w.rs[i].c);
	}
	health_stop(w.health);
	PQfinish(w.conn);
	if (w.multi != NULL) {
		curl_multi_cleanup(w.multi);
		curl_global_cleanup();
	}
	if (w.sfd != -1)
		close(w.sfd);
	free_types(&w);
	return rc;
}
