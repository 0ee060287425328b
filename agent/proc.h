/*
 * proc.h - child processes for exec handlers: argv from shell words
 * without a shell, stdin fed from memory, stdout captured up to a limit,
 * the tail of stderr kept, the whole process group killed on timeout.
 */
#ifndef PROC_H
#define PROC_H

#include <stddef.h>
#include <sys/types.h>

#define PROC_ERRTAIL	2048	/* bytes of stderr kept (the last ones) */

/*
 * Split cmd into words like a POSIX shell would (quotes, backslashes) but
 * with no expansion; unquoted shell operators are refused because no shell
 * runs.  Returns a NULL-terminated argv owned by the caller (free with
 * proc_argv_free), or NULL with the reason in err.
 */
char	**proc_split(const char *cmd, char *err, size_t errlen);
void	  proc_argv_free(char **);

struct proc;

/*
 * Start argv[0] (looked up in PATH) in its own process group, with input
 * (borrowed until proc_free) on stdin and env (NULL-terminated "K=V",
 * borrowed) added to a copy of our environment minus database secrets.
 * stdout beyond out_limit bytes is discarded and flagged.  Returns a proc
 * owned by the caller, or NULL with the reason (e.g. exec failure) in err.
 */
struct proc	*proc_start(char *const argv[], const char *const env[],
		    const char *input, size_t inlen, long out_limit, char *err,
		    size_t errlen);

/* Move data on the non-blocking pipes; call after every wake-up. */
void		 proc_io(struct proc *);

/* Pipe fds still open (for poll); returns count written to fds[]. */
int		 proc_fds(const struct proc *, int fds[3], short events[3]);

/* Record the wait status reaped for this pid. */
pid_t		 proc_pid(const struct proc *);
void		 proc_reaped(struct proc *, int status);

/* Exited and both output pipes at EOF. */
int		 proc_done(const struct proc *);
int		 proc_exited(const struct proc *);
int		 proc_status(const struct proc *);	/* wait status */

/* Kill the whole process group. */
void		 proc_kill(struct proc *, int sig);

/* Close output pipes early (a grandchild kept them open). */
void		 proc_close_pipes(struct proc *);

/* Captured stdout (NUL-terminated; owned by proc) and whether truncated. */
const char	*proc_stdout(const struct proc *, size_t *len, int *overflow);
/* Last PROC_ERRTAIL bytes of stderr into buf (NUL-terminated). */
void		 proc_stderr_tail(const struct proc *, char *buf, size_t len);

/*
 * Run argv to completion (no shell, no stdin, database secrets not in its
 * environment), for short administrative commands.  stdout (truncated) goes
 * to out and the tail of stderr to err.  Returns the exit status (128 +
 * signal when killed), or -1 when it could not run, with err filled.
 */
int		 proc_run(char *const argv[], char *out, size_t outlen,
		    char *err, size_t errlen);

/* Kill if still running, reap, close and free.  NULL-tolerant. */
void		 proc_free(struct proc *);

/*
 * Block SIGTERM, SIGINT, SIGHUP and SIGCHLD and return a non-blocking,
 * close-on-exec signalfd for them (owned by the caller) so that a poll loop
 * takes signals as events; who names the caller in a fatal message.
 */
int		 proc_signalfd(const char *who);

#endif
