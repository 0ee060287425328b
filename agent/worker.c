/*
 * worker.c - the queue worker: one thread, four database connections (one
 * claims, three record results), one poll loop for them, signals
 * (signalfd), handler pipes and HTTP transfers (curl multi).  The batches
 * themselves are batch.c's.
 *
 * Each turn of the loop settles a held batch or records finished tasks in
 * one statement, extends leases, claims a batch, starts what fits, then
 * sleeps until something happens.  Nothing in it blocks for long except a
 * database round trip.
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
#include "worker_int.h"

double
worker_jitter(void)
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

/* The connection broke: log once, keep running handlers, reconnect. */
void
worker_db_down(struct worker *w, const char *why)
{
	if (w->conn == NULL)
		return;
	batch_hold_lost(w);
	log_warnx("worker: lost the database connection (%s); %d running "
	    "tasks carry on and their results wait; reconnecting with "
	    "backoff", why, w->nrunning);
	PQfinish(w->conn);
	w->conn = NULL;
	w->down_since = now_ms();
	w->connect_delay = 250;
	w->next_connect = now_ms() + w->connect_delay;
	notify_status(w);
}

/* After a failed statement: a broken connection, or a transient error. */
void
worker_db_failed(struct worker *w)
{
	if (w->conn != NULL && PQstatus(w->conn) != CONNECTION_OK)
		worker_db_down(w, "connection closed");
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
		    (int64_t)(worker_jitter() * (double)w->connect_delay / 4);
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
		batch_to_done(w, t, &w->running, &w->nrunning);
		return;
	}
	TAILQ_FOREACH(t, &w->prefetched, entry) {
		if (strcmp(t->id, id) != 0)
			continue;
		task_end(t, OUT_CANCELLED, NULL, "cancelled by operator");
		batch_to_done(w, t, &w->prefetched, &w->nprefetched);
		return;
	}
}

/*
 * Notifications that libpq already read while a query ran wait in its
 * queue, not on the socket: they must be taken before sleeping, or the
 * wake-up is lost until the next poll.  c (borrowed) is any of the
 * worker's connections: all of them LISTEN, since a result connection
 * becomes the main one after a settle.
 */
void
worker_drain_notifies(struct worker *w, PGconn *c)
{
	PGnotify *n;

	for (;;) {
		n = PQnotifies(c);
		if (n == NULL)
			break;
		if (strcmp(n->relname, TASKDB_CHANNEL_CANCEL) == 0)
			cancel_task(w, n->extra);
		else
			w->want_claim = 1;
		PQfreemem(n);
	}
}

/*
 * Read every connection, idle result connections included: a LISTENing
 * connection nobody reads fills its socket, and its backend would then
 * hold back the server's whole notification queue.
 */
static void
read_notifies(struct worker *w)
{
	struct rslot	*s;
	int		 i;

	for (i = 0; i < NRSLOT; i++) {
		s = &w->rs[i];
		if (s->c == NULL || s->busy)	/* busy: batch_collect() reads */
			continue;
		if (PQconsumeInput(s->c) == 0) {
			batch_slot_drop(w, s, PQerrorMessage(s->c));
			continue;
		}
		worker_drain_notifies(w, s->c);
	}
	if (w->conn == NULL)
		return;
	if (PQconsumeInput(w->conn) == 0) {
		worker_db_down(w, "connection closed while listening");
		return;
	}
	worker_drain_notifies(w, w->conn);
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
		worker_drain_notifies(w, w->conn);
	if (w->conn != NULL && w->nheld == 0 && w->want_claim && !w->stopping)
		until = now;
	if (w->conn == NULL)
		until = earliest(until, w->next_connect);
	else if (w->nheld > 0) {
		/* Only the held batch's end; the rest waits for its settle. */
		if ((w->nhdone == w->nheld || w->stopping) && batch_can_send(w))
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
		if (w->ndone > 0 && batch_can_send(w))
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
		if (w->rs[i].c != NULL) {
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
			batch_to_done(w, t, &w->running, &w->nrunning);
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
		batch_to_done(w, t, &w->prefetched, &w->nprefetched);
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
		batch_to_done(w, t, &w->running, &w->nrunning);
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
	if (w->conn == NULL || w->nheld > 0)
		return;
	if (w->reregister) {
		w->reregister = 0;
		if (taskdb_register(w->conn, &w->reg) == -1) {
			worker_db_failed(w);
			return;
		}
	}
	if (now >= w->next_heartbeat) {
		w->next_heartbeat = now + HEARTBEAT_MS;
		if (taskdb_heartbeat(w->conn, w->id) == -1) {
			worker_db_failed(w);
			return;
		}
		notify_status(w);
	}
	if (w->nrunning + w->nprefetched > 0 && now >= w->next_extend)
		batch_extend(w);
	if (w->conn != NULL && !w->stopping && now >= w->next_rescue) {
		w->next_rescue = now + (int64_t)w->lease_s * 1000;
		n = taskdb_rescue(w->conn, w->unleased_s);
		if (n == -1)
			worker_db_failed(w);
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
	log_info("worker: %s serving %s with concurrency %d (four database "
	    "connections)", w.id, w.types_lit, w.concurrency);
	db_up(&w);
	notify_send("READY=1");
	notify_status(&w);
	for (;;) {
		if (w.conn == NULL && now_ms() >= w.next_connect)
			db_up(&w);
		if (w.stopping)
			stop_work(&w);
		batch_collect(&w);
		if (w.conn != NULL && w.nheld > 0 && (w.nhdone == w.nheld ||
		    w.stopping || now_ms() >= w.hold_deadline))
			(void)batch_settle(&w, now_ms() >= w.hold_deadline + 1000);
		if (w.conn != NULL && w.ndone > 0)
			batch_flush(&w);
		periodic(&w);
		if (w.conn != NULL && !w.stopping &&
		    (w.want_claim || now_ms() >= w.next_claim))
			batch_claim(&w);
		batch_start(&w);
		if (w.conn != NULL && w.ndone > 0 && w.nheld == 0 && batch_can_send(&w))
			continue;	/* record before sleeping */
		if (w.stopping && w.nrunning == 0 && w.nprefetched == 0 &&
		    w.ndone == 0 && batch_nbusy(&w) == 0 && w.nheld == 0)
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
		    w.nprefetched == 0 && w.ndone == 0 && batch_nbusy(&w) == 0 &&
		    w.nheld == 0 &&
		    batch_pending(&w) == 0)
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
	batch_free_tasks(&w, &w.done);
	batch_free_tasks(&w, &w.hdone);
	for (i = 0; i < NRSLOT; i++) {
		batch_free_tasks(&w, &w.rs[i].q);
		batch_slot_done(&w.rs[i]);
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
