/*
 * health.c - /healthz and /metrics for the worker, served by
 * libmicrohttpd's own polling thread.
 *
 * The worker loop writes a small snapshot under a mutex (a few stores per
 * turn); the server thread copies what it needs under the same mutex and
 * formats outside the loop's path.  The listening socket is made here, so
 * a port in use is reported with the kernel's reason, and it is
 * close-on-exec, so handler children never inherit it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#include "cfg.h"
#include "handler.h"
#include "health.h"
#include "log.h"
#include "sched.h"
#include "version.h"

#define H_MAX_TYPES	64
#define H_NBUCKETS	12

/* Handler durations in seconds: from a noop to a five-minute exec. */
static const double bucket_le[H_NBUCKETS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 300,
};

struct htype {
	char			 name[64];
	unsigned long long	 claimed, finished, failed, retried;
	unsigned long long	 bucket[H_NBUCKETS + 1];	/* last: +Inf */
	unsigned long long	 count;
	double			 sum;
};

struct health {
	struct MHD_Daemon	*daemon;
	int			 fd;
	pthread_mutex_t		 mu;
	/* Below: guarded by mu. */
	struct health_state	 st;
	int64_t			 beat_ms;	/* monotonic */
	int64_t			 down_since_ms;	/* monotonic; 0: up */
	int			 ever_connected, ever_beat;
	unsigned long long	 reconnects;
	int64_t			 last_claim_wall_ms;
	int64_t			 started_wall_ms;
	int			 stale_ms;
	struct htype		 types[H_MAX_TYPES];
	int			 ntypes;
};

int
health_parse_listen(const char *s, void *buf, size_t *len, char *why,
    size_t whylen)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	const char		*colon;
	char			 host[64], *end;
	long			 port;
	size_t			 hl;
	int			 bracketed;

	memset(&ss, 0, sizeof(ss));
	if (*s == '\0' || strcmp(s, "off") == 0)
		return 0;
	colon = strrchr(s, ':');
	if (colon == NULL || colon == s) {
		snprintf(why, whylen, "'%s' is not HOST:PORT; use an address "
		    "such as 127.0.0.1:9187 or [::1]:9187 (empty: off)", s);
		return -1;
	}
	hl = (size_t)(colon - s);
	bracketed = s[0] == '[' && hl >= 2 && s[hl - 1] == ']';
	if (bracketed) {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(why, whylen, "the address is too long");
		return -1;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (!bracketed && strchr(host, ':') != NULL) {
		snprintf(why, whylen, "write an IPv6 address in brackets: "
		    "[%s]:PORT", host);
		return -1;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 ||
	    port > 65535) {
		snprintf(why, whylen, "port '%s' is not a number from 1 to "
		    "65535", colon + 1);
		return -1;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		hl = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		hl = sizeof(*sin6);
	} else {
		snprintf(why, whylen, "'%s' is not an IP address; give a "
		    "numeric address (127.0.0.1, the VM's internal IP, or "
		    "[::1]) so only that interface is bound", host);
		return -1;
	}
	if (buf != NULL) {
		memcpy(buf, &ss, sizeof(ss));
		*len = hl;
	}
	return 0;
}

int
health_check_listen(const char *s, char *why, size_t whylen)
{
	return health_parse_listen(s, NULL, NULL, why, whylen);
}

/* The series for type, added on first sight; NULL when full. */
static struct htype *
type_get(struct health *h, const char *name)
{
	struct htype	*t;
	int		 i;

	for (i = 0; i < h->ntypes; i++)
		if (strcmp(h->types[i].name, name) == 0)
			return &h->types[i];
	if (h->ntypes == H_MAX_TYPES)
		return NULL;
	t = &h->types[h->ntypes++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	return t;
}

void
health_beat(struct health *h, const struct health_state *st)
{
	int64_t now;

	if (h == NULL)
		return;
	now = now_ms();
	pthread_mutex_lock(&h->mu);
	if (st->db_connected && !h->st.db_connected && h->ever_connected)
		h->reconnects++;
	if (st->db_connected) {
		h->ever_connected = 1;
		h->down_since_ms = 0;
	} else if (h->down_since_ms == 0)
		h->down_since_ms = now;
	h->st = *st;
	h->beat_ms = now;
	h->ever_beat = 1;
	pthread_mutex_unlock(&h->mu);
}

void
health_claimed(struct health *h, const struct taskq *q, int n)
{
	const struct task	*t;
	struct htype		*ht;
	int			 i = 0;

	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->last_claim_wall_ms = sched_wall_ms();
	for (t = TAILQ_LAST(q, taskq); t != NULL && i < n;
	    t = TAILQ_PREV(t, taskq, entry), i++) {
		ht = type_get(h, t->type);
		if (ht != NULL)
			ht->claimed++;
	}
	pthread_mutex_unlock(&h->mu);
}

void
health_outcome(struct health *h, const struct task *t)
{
	struct htype	*ht;
	double		 secs = (double)t->duration_ms / 1000.0;
	int		 b;

	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	ht = type_get(h, t->type);
	if (ht == NULL)
		goto out;
	if (t->outcome == OUT_FINISHED)
		ht->finished++;
	else if (t->outcome == OUT_RETRY)
		ht->retried++;
	else if (t->outcome == OUT_FAIL)
		ht->failed++;
	else
		goto out;
	for (b = 0; b < H_NBUCKETS && secs > bucket_le[b]; b++)
		;
	ht->bucket[b]++;
	ht->count++;
	ht->sum += secs;
out:
	pthread_mutex_unlock(&h->mu);
}

char *
health_render_healthz(struct health *h, int64_t now, int *status)
{
	struct health_state	 st;
	int64_t			 age, down;
	char			*body = NULL, reason[160];
	int			 ok = 0;

	pthread_mutex_lock(&h->mu);
	st = h->st;
	age = now - h->beat_ms;
	down = h->down_since_ms ? now - h->down_since_ms : 0;
	if (!h->ever_beat)
		snprintf(reason, sizeof(reason), "the worker is starting");
	else if (st.stopping)
		snprintf(reason, sizeof(reason), "the worker is stopping: no new "
		    "claims, running tasks draining");
	else if (age > h->stale_ms)
		snprintf(reason, sizeof(reason), "the worker loop has not run "
		    "for %lld s (stuck in a database call or a bug)",
		    (long long)(age / 1000));
	else if (!st.db_connected)
		snprintf(reason, sizeof(reason), "database unreachable for %lld "
		    "s; reconnecting with backoff", (long long)(down / 1000));
	else
		ok = 1;
	pthread_mutex_unlock(&h->mu);
	*status = ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	if (ok && asprintf(&body, "{\"status\":\"ok\",\"database\":"
	    "\"connected\",\"running\":%d,\"concurrency\":%d}\n", st.running,
	    st.concurrency) == -1)
		body = NULL;
	if (!ok && asprintf(&body, "{\"status\":\"unavailable\",\"reason\":"
	    "\"%s\",\"database\":\"%s\"}\n", reason, st.db_connected ?
	    "connected" : "unreachable") == -1)
		body = NULL;
	return body;
}

static void
metric_head(FILE *fp, const char *name, const char *type, const char *help)
{
	fprintf(fp, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
per_type(FILE *fp, const struct health *h, const char *what,
    size_t off, const char *help)
{
	char	name[128];
	int	i;

	snprintf(name, sizeof(name), "orchestrator_worker_tasks_%s_total",
	    what);
	metric_head(fp, name, "counter", help);
	for (i = 0; i < h->ntypes; i++)
		fprintf(fp, "%s{type=\"%s\"} %llu\n", name, h->types[i].name,
		    *(const unsigned long long *)(const void *)
		    ((const char *)&h->types[i] + off));
}

static void
histogram(FILE *fp, const struct health *h)
{
	static const char n[] = "orchestrator_worker_handler_duration_seconds";
	const struct htype	*t;
	unsigned long long	 cum;
	int			 i, b;

	metric_head(fp, n, "histogram", "Time from a handler's start to its "
	    "recorded outcome (finished, retried or failed).");
	for (i = 0; i < h->ntypes; i++) {
		t = &h->types[i];
		for (cum = 0, b = 0; b < H_NBUCKETS; b++) {
			cum += t->bucket[b];
			fprintf(fp, "%s_bucket{type=\"%s\",le=\"%g\"} %llu\n", n,
			    t->name, bucket_le[b], cum);
		}
		fprintf(fp, "%s_bucket{type=\"%s\",le=\"+Inf\"} %llu\n", n,
		    t->name, t->count);
		fprintf(fp, "%s_sum{type=\"%s\"} %.6f\n", n, t->name, t->sum);
		fprintf(fp, "%s_count{type=\"%s\"} %llu\n", n, t->name,
		    t->count);
	}
}

static void
gauge(FILE *fp, const char *name, const char *type, const char *help,
    double v)
{
	metric_head(fp, name, type, help);
	fprintf(fp, "%s %.17g\n", name, v);
}

char *
health_render_metrics(struct health *h, int64_t wall_ms)
{
	FILE	*fp;
	char	*buf = NULL;
	size_t	 len = 0;

	(void)wall_ms;
	fp = open_memstream(&buf, &len);
	if (fp == NULL)
		return NULL;
	pthread_mutex_lock(&h->mu);
	metric_head(fp, "orchestrator_agent_build_info", "gauge",
	    "The agent's version; always 1.");
	fprintf(fp, "orchestrator_agent_build_info{version=\"%s\"} 1\n",
	    agent_version);
	per_type(fp, h, "claimed", offsetof(struct htype, claimed),
	    "Tasks claimed from the queue.");
	per_type(fp, h, "finished", offsetof(struct htype, finished),
	    "Tasks recorded as finished.");
	per_type(fp, h, "failed", offsetof(struct htype, failed),
	    "Tasks recorded as failed without retry.");
	per_type(fp, h, "retried", offsetof(struct htype, retried),
	    "Task attempts that failed and were requeued (or failed for good "
	    "when out of attempts).");
	histogram(fp, h);
	gauge(fp, "orchestrator_worker_tasks_in_flight", "gauge",
	    "Handlers running now.", h->st.running);
	gauge(fp, "orchestrator_worker_tasks_prefetched", "gauge",
	    "Tasks claimed and waiting for a free slot.", h->st.prefetched);
	gauge(fp, "orchestrator_worker_concurrency", "gauge",
	    "Handlers allowed to run at once.", h->st.concurrency);
	gauge(fp, "orchestrator_worker_db_connected", "gauge",
	    "1 when the claim connection is up.", h->st.db_connected);
	gauge(fp, "orchestrator_worker_stopping", "gauge",
	    "1 once a stop signal has arrived.", h->st.stopping);
	gauge(fp, "orchestrator_worker_db_reconnects_total", "counter",
	    "Times the claim connection was restored after a loss.",
	    (double)h->reconnects);
	gauge(fp, "orchestrator_worker_last_claim_success_timestamp_seconds",
	    "gauge", "When a claim query last succeeded (0: never).",
	    (double)h->last_claim_wall_ms / 1000.0);
	gauge(fp, "orchestrator_worker_start_time_seconds", "gauge",
	    "When this worker started.", (double)h->started_wall_ms / 1000.0);
	pthread_mutex_unlock(&h->mu);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result
respond(struct MHD_Connection *c, unsigned int status, char *body,
    const char *type)
{
	struct MHD_Response	*r;
	enum MHD_Result		 ret;

	if (body == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body,
	    MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* MHD's access handler: GET or HEAD of /healthz or /metrics. */
static enum MHD_Result
serve(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct health	*h = cls;
	int		 status;
	char		*body;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    strdup("only GET and HEAD\n"), "text/plain");
	if (strcmp(url, "/healthz") == 0) {
		body = health_render_healthz(h, now_ms(), &status);
		return respond(c, (unsigned)status, body, "application/json");
	}
	if (strcmp(url, "/metrics") == 0)
		return respond(c, MHD_HTTP_OK, health_render_metrics(h,
		    sched_wall_ms()), "text/plain; version=0.0.4; "
		    "charset=utf-8");
	return respond(c, MHD_HTTP_NOT_FOUND, strdup("not found: try "
	    "/healthz or /metrics\n"), "text/plain");
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("health: libmicrohttpd: %s", msg);
}

/* A listening socket on exactly the configured address; -1 with errno. */
static int
listen_on(const struct sockaddr_storage *ss, size_t len)
{
	int fd, one = 1, saved;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    (ss->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &one, sizeof(one)) == -1) ||
	    bind(fd, (const struct sockaddr *)ss, (socklen_t)len) == -1 ||
	    listen(fd, 16) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
health_start(const struct cfg *cfg, const char *listen_addr,
    char *const *types, int ntypes, struct health **out)
{
	struct sockaddr_storage	 ss;
	struct health		*h = NULL;
	const char		*addr = listen_addr;
	size_t			 len = 0;
	char			 why[256];
	int			 i, rc;

	*out = NULL;
	if (addr == NULL)
		addr = cfg_str(cfg, CFG_H_LISTEN);
	if (*addr == '\0' || strcmp(addr, "off") == 0)
		return EX_OK;
	if (health_parse_listen(addr, &ss, &len, why, sizeof(why)) == -1) {
		log_errx("health: listen address: %s", why);
		return EX_CONFIG;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		fatal("health: calloc");
	h->fd = -1;
	pthread_mutex_init(&h->mu, NULL);
	h->stale_ms = (int)cfg_int(cfg, CFG_H_STALE_SECONDS) * 1000;
	h->beat_ms = now_ms();
	h->started_wall_ms = sched_wall_ms();
	for (i = 0; i < ntypes; i++)
		(void)type_get(h, types[i]);
	h->fd = listen_on(&ss, len);
	if (h->fd == -1) {
		log_errx("health: cannot listen on %s: %s; another process "
		    "(an older worker still stopping?) holds it, or set [health] "
		    "listen to a free port", addr, strerror(errno));
		rc = EX_UNAVAILABLE;
		goto out;
	}
	h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_AUTO | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ?
	    MHD_USE_IPv6 : 0), 0, NULL, NULL, serve, h,
	    MHD_OPTION_LISTEN_SOCKET, h->fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	    MHD_OPTION_END);
	if (h->daemon == NULL) {
		log_errx("health: could not start the HTTP server on %s (run "
		    "with -v for libmicrohttpd's reason)", addr);
		rc = EX_UNAVAILABLE;
		goto out;
	}
	h->fd = -1;	/* MHD_stop_daemon closes it now */
	log_info("health: serving /healthz and /metrics on http://%s", addr);
	*out = h;
	h = NULL;
	rc = EX_OK;
out:
	health_stop(h);
	return rc;
}

void
health_stop(struct health *h)
{
	if (h == NULL)
		return;
	if (h->daemon != NULL)
		MHD_stop_daemon(h->daemon);
	if (h->fd != -1)
		close(h->fd);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
