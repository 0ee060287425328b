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
