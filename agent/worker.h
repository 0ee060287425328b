/*
 * worker.h - the built-in queue worker.
 */
#ifndef WORKER_H
#define WORKER_H

struct agent;

struct worker_opts {
	int		 concurrency;	/* 0: [worker] concurrency */
	const char	*types;		/* "a,b" or NULL: every handler's type */
	int		 exit_when_empty;
	const char	*health_listen;	/* NULL: [health] listen; "off" */
};

/*
 * Run until SIGTERM/SIGINT (or, with exit_when_empty, until nothing of our
 * types is queued or running).  Uses two database connections whatever
 * the concurrency.  a is borrowed; its cfg may be replaced on SIGHUP.  Returns
 * a sysexits code.
 */
int	worker_run(struct agent *a, const struct worker_opts *o);

#endif
