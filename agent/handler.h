/*
 * handler.h - a claimed task and the handlers that run it (exec, http,
 * noop), each ending in one outcome for the worker to record.
 */
#ifndef HANDLER_H
#define HANDLER_H

#include <stdint.h>
#include <sys/queue.h>

#include "cfg.h"

enum task_outcome {
	OUT_NONE,	/* still running */
	OUT_FINISHED,
	OUT_RETRY,	/* requeue with backoff while attempts remain */
	OUT_FAIL,	/* failed, no retry (e.g. HTTP 4xx) */
	OUT_CANCELLED,
	OUT_RELEASE,	/* back to the queue, attempt not counted */
};

struct proc;

struct task {
	TAILQ_ENTRY(task) entry;
	/* From the claim; all owned. */
	char		*id, *type, *skill, *source, *target;
	char		*change_event, *relationship_config;
	int		 attempt, max_attempts;
	int		 held;		/* claimed in an open transaction */
	int		 settling;	/* 1 + the result slot whose settle
					 * makes it started; 0 once known */
	/* While running. */
	enum handler_kind kind;
	int64_t		 started_ms, deadline_ms, exited_ms;
	char		*payload;
	struct proc	*proc;
	void		*easy;		/* CURL * */
	void		*hdrs;		/* struct curl_slist * */
	char		*resp;
	size_t		 resp_len;
	long		 resp_limit;
	int		 resp_overflow;
	char		*curl_err;
	/* The end. */
	enum task_outcome outcome;
	char		*result;	/* JSON text or NULL */
	char		*error;		/* or NULL */
	int		 duration_ms;
};

TAILQ_HEAD(taskq, task);

/* Monotonic clock in milliseconds. */
int64_t	 now_ms(void);

/*
 * Start t with handler h.  multi is the CURLM * for http handlers (may be
 * NULL when none is configured).  A noop completes at once; a start failure
 * becomes a retry outcome with the reason.  h is only read during the call.
 */
void	 handler_start(struct task *t, const struct cfg_handler *h, void *multi);

/*
 * Move exec I/O and check for the end or the deadline.  Returns 1 when t
 * has an outcome.
 */
int	 handler_poll(struct task *t, int64_t now);

/* Pass a reaped child's status; returns 1 if it belonged to t. */
int	 handler_reaped(struct task *t, int pid, int status);

/* The curl transfer of t ended with result code. */
void	 handler_http_done(struct task *t, int curlcode, void *multi);

/* Stop t now (kill its process group / drop its transfer). */
void	 handler_abort(struct task *t, enum task_outcome, const char *why,
	    void *multi);

/* File descriptors to wait on for t; returns how many were written. */
int	 handler_fds(const struct task *t, int fds[3], short events[3]);

/* Set the outcome and its texts (copied; error made valid UTF-8). */
void	 task_end(struct task *t, enum task_outcome, const char *result,
	    const char *error);

/* Retry delay for the attempt that just failed: exponential, capped,
 * half of it jittered by rnd (0..1). */
long	 handler_backoff_ms(long base_ms, long cap_ms, int attempt, double rnd);

/* Free t and whatever still runs for it.  NULL-tolerant. */
void	 task_free(struct task *t, void *multi);

#endif
