/*
 * worker_int.h - the worker's state, shared by worker.c (the loop,
 * connections, signals, registry) and batch.c (claims, held batches and
 * their settles, results, leases).  Private to those two files.
 */
#ifndef WORKER_INT_H
#define WORKER_INT_H

#include <libpq-fe.h>
#include <stdint.h>

#include "cfg.h"
#include "cmd.h"
#include "handler.h"
#include "health.h"
#include "taskdb.h"
#include "worker.h"

#define MAX_TYPES	64
#define MAX_CLAIM	1000
#define MAX_WAITFDS	(3 * 256 + 2)
#define HEARTBEAT_MS	15000
#define RECONNECT_MAX_MS 30000
#define NRSLOT		3	/* result connections (four in all) */

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
	void			*multi;		/* CURLM *; NULL without http handlers */
	int			 sfd;
	struct taskq		 prefetched, running, done;
	int			 nprefetched, nrunning, ndone;
	/* Held claims: tasks locked in a transaction open on conn. */
	int			 hold_ms, nheld, nhdone;	/* nheld > 0: holding */
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

/* worker.c */
double	 worker_jitter(void);
void	 worker_db_down(struct worker *, const char *why);
void	 worker_db_failed(struct worker *);
/* Handle the notifications libpq holds for c (borrowed). */
void	 worker_drain_notifies(struct worker *, PGconn *c);

/* batch.c; tasks are owned by the worker's lists they are on. */
void	 batch_to_done(struct worker *, struct task *, struct taskq *from,
	    int *count);
void	 batch_free_tasks(struct worker *, struct taskq *);
void	 batch_claim(struct worker *);
int	 batch_pending(struct worker *);
void	 batch_start(struct worker *);
void	 batch_extend(struct worker *);
int	 batch_settle(struct worker *, int force);
void	 batch_hold_lost(struct worker *);
void	 batch_collect(struct worker *);
void	 batch_flush(struct worker *);
int	 batch_nbusy(const struct worker *);
int	 batch_can_send(const struct worker *);
void	 batch_slot_done(struct rslot *);
void	 batch_slot_drop(struct worker *, struct rslot *, const char *why);

#endif
