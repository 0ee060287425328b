/*
 * taskdb.h - the worker's statements: claim, complete, extend, rescue and
 * the worker registry.  Each is one round trip for a whole batch.
 */
#ifndef TASKDB_H
#define TASKDB_H

#include <libpq-fe.h>

#include "handler.h"

#define TASKDB_CHANNEL_TASKS	"orchestrator_tasks"
#define TASKDB_CHANNEL_CANCEL	"orchestrator_cancel"

/* What a worker says about itself in the registry. */
struct taskdb_worker {
	const char	*id;
	const char	*host;
	int		 pid;
	int		 concurrency;
	const char	*types_literal;	/* PostgreSQL text[] literal */
};

/*
 * Build a PostgreSQL array literal from n strings (NULL elements allowed).
 * Returns a string owned by the caller.
 */
char	*taskdb_array(const char *const *v, int n);

/*
 * Claim up to n due tasks of the given types, appending them to q (tasks
 * owned by q's holder).  Returns the number claimed, or -1 after logging.
 */
int	 taskdb_claim(PGconn *, const struct taskdb_worker *, int n,
	    int lease_seconds, struct taskq *q);

/*
 * Held claims.  In one transaction: BEGIN and lock up to n due tasks of the
 * given types without writing them, appending them to q with held set
 * (tasks owned by q's holder).  Returns the number held; with none the
 * transaction is already committed, with some it stays open until a
 * settle.  -1 after logging, with the transaction rolled back.
 */
int	 taskdb_hold(PGconn *, const char *types_literal, int n,
	    struct taskq *q);

/*
 * Settle the n held tasks in v (borrowed) and COMMIT: a task with an
 * outcome gets its final state and both history rows ('started' and the
 * outcome) in one write; one without (OUT_NONE) becomes started with a
 * lease, like an ordinary claim.  delays[i] is the retry delay in ms.
 * The async form sends a pipeline; poll it with a zeroed
 * struct taskdb_settle after PQconsumeInput() until it returns 1 (done,
 * lost[] set) or -1 (nothing recorded: rolled back, or the connection is
 * gone).  taskdb_settle() does both, waiting; 0 or -1.
 */
struct taskdb_settle {
	int	step;
	int	failed;
};
int	 taskdb_settle_send(PGconn *, const char *worker_id, struct task **v,
	    const long *delays, int n, int lease_seconds);
int	 taskdb_settle_poll(PGconn *, struct taskdb_settle *, int n,
	    int *lost);
int	 taskdb_settle(PGconn *, const char *worker_id, struct task **v,
	    const long *delays, int n, int lease_seconds, int *lost);

/*
 * End whatever transaction or pipeline a failed hold or settle left open.
 * 0 when the connection is clean again, -1 when it should be dropped.
 */
int	 taskdb_rollback(PGconn *);

/*
 * Record the outcomes of the n tasks in v (borrowed) in one statement,
 * with their history rows; delays[i] is the retry delay in milliseconds.
 * Sets lost[i] for a task whose lease was gone (nothing recorded for it:
 * a task is never finished twice).  Returns 0, or -1 after logging, in
 * which case nothing was recorded.
 */
int	 taskdb_complete(PGconn *, const char *worker_id, struct task **v,
	    const long *delays, int n, int *lost);

/*
 * The same without waiting, for a second connection: send the batch, then
 * once PQisBusy() is false collect the answer.  The result function
 * returns 0 with lost[] filled, or -1 (logged) when nothing was recorded.
 */
int	 taskdb_complete_send(PGconn *, const char *worker_id, struct task **v,
	    const long *delays, int n);
int	 taskdb_complete_result(PGconn *, int n, int *lost);

/*
 * Extend the leases of the n tasks in v.  Sets cancel[i] when cancel was
 * requested and lost[i] when the task is no longer ours.  0 or -1.
 */
int	 taskdb_extend(PGconn *, const char *worker_id, struct task **v, int n,
	    int lease_seconds, int *cancel, int *lost);

/* Requeue or fail stuck tasks; returns how many, or -1. */
int	 taskdb_rescue(PGconn *, int unleased_after_seconds);

/* 1 if a queued or started task of these types exists, 0 if not, -1. */
int	 taskdb_pending(PGconn *, const char *types_literal);

int	 taskdb_register(PGconn *, const struct taskdb_worker *);
int	 taskdb_heartbeat(PGconn *, const char *worker_id);
int	 taskdb_unregister(PGconn *, const char *worker_id);

/* Session settings and prepared statements for the worker's connection. */
int	 taskdb_session(PGconn *);

/* LISTEN on the wake-up and cancel channels. */
int	 taskdb_listen(PGconn *);

#endif
