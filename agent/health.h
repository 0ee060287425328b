/*
 * health.h - the worker's optional HTTP endpoint ([health] listen):
 * GET /healthz (200 or 503 with the reason) and GET /metrics (Prometheus
 * text), served by libmicrohttpd on its own thread from a snapshot the
 * worker loop updates, so HTTP clients never hold up the loop.
 */
#ifndef HEALTH_H
#define HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct cfg;
struct task;
struct taskq;
struct health;

/* What the worker loop reports on each turn. */
struct health_state {
	int	db_connected;
	int	stopping;
	int	running, prefetched, concurrency;
};

/*
 * Parse "HOST:PORT" (an IPv4 address, or [IPv6]:PORT) into buf (a struct
 * sockaddr_storage, or NULL to only check) with its length in *len.  An
 * empty value means off and is accepted.  Returns 0, or -1 with why.
 */
int	health_parse_listen(const char *s, void *buf, size_t *len, char *why,
	    size_t whylen);

/* The same as a configuration check (cfg.c's key table): 0 or -1. */
int	health_check_listen(const char *s, char *why, size_t whylen);

/*
 * Start serving on listen (NULL: [health] listen; "" or "off": off).
 * types (borrowed, ntypes of them) get zeroed series from the start.
 * Call with the worker's signals already blocked: the server thread
 * inherits the mask.  On success *out is a new server owned by the caller
 * (health_stop), or NULL when off; returns EX_OK, EX_CONFIG for a bad
 * address, or EX_UNAVAILABLE when it cannot be bound (port in use).
 */
int	health_start(const struct cfg *, const char *listen,
	    char *const *types, int ntypes, struct health **out);
void	health_stop(struct health *);

/* The loop is alive; st is copied.  NULL h: no-op, like the others. */
void	health_beat(struct health *h, const struct health_state *st);
/* A claim succeeded: the last n tasks of q are new (q borrowed). */
void	health_claimed(struct health *h, const struct taskq *q, int n);
/* t (borrowed) has a recorded outcome. */
void	health_outcome(struct health *h, const struct task *t);

/*
 * Render the current snapshot (for tests and the server): /healthz's
 * status (200/503) and JSON body, or /metrics' text.  Return a new string
 * owned by the caller (free).
 */
char	*health_render_healthz(struct health *h, int64_t now, int *status);
char	*health_render_metrics(struct health *h, int64_t wall_ms);

#endif
