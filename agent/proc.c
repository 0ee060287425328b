/*
 * proc.c - exec-handler child processes.
 *
 * No shell runs: a command line is split into words here, and characters
 * that only mean something to a shell are refused so that nobody believes a
 * pipe or a redirection happens.  The child gets its own process group (a
 * timeout kills everything it started) and dies with the worker
 * (PR_SET_PDEATHSIG), and it never sees the database password.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

extern char **environ;

struct proc {
	pid_t		 pid;
	int		 in_fd, out_fd, err_fd;
	const char	*in;
	size_t		 inlen, inoff;
	char		*out;
	size_t		 outlen, outcap;
	long		 out_limit;
	int		 overflow;
	char		 errbuf[2 * PROC_ERRTAIL];
	size_t		 errlen;
	int		 exited, status;
};

/* Never handed to a handler: the database password and friends. */
static const char *const scrubbed[] = {
	"POSTGRES_PASSWORD", "PGPASSWORD", "POSTGRES_PASSWORD_FILE",
	"DATABASE_URL", "PGPASSFILE", "GOOGLE_APPLICATION_CREDENTIALS",
	"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS",
	"LISTEN_PID", "LISTEN_FDNAMES", NULL,
};

void
proc_argv_free(char **argv)
{
	char **a;

	if (argv == NULL)
		return;
	for (a = argv; *a != NULL; a++)
		free(*a);
	free(argv);
}

static int
push_word(char ***argv, size_t *argc, const char *w, size_t len)
{
	char **n;

	n = realloc(*argv, (*argc + 2) * sizeof(**argv));
	if (n == NULL)
		return -1;
	*argv = n;
	n[*argc] = strndup(w, len);
	if (n[*argc] == NULL)
		return -1;
	n[++*argc] = NULL;
	return 0;
}

char **
proc_split(const char *cmd, char *err, size_t errlen)
{
	const char	*p = cmd;
	char		**argv = NULL, *word = NULL;
	size_t		 argc = 0, wl = 0;
	int		 inword = 0, ok = 0;

	word = malloc(strlen(cmd) + 1);
	if (word == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (*p != '\0') {
		if (*p == ' ' || *p == '\t') {
			if (inword && push_word(&argv, &argc, word, wl) == -1)
				goto nomem;
			inword = 0;
			wl = 0;
			p++;
		} else if (*p == '\'') {
			inword = 1;
			for (p++; *p != '\0' && *p != '\''; p++)
				word[wl++] = *p;
			if (*p == '\0') {
				snprintf(err, errlen, "unterminated ' quote in "
				    "command");
				goto out;
			}
			p++;
		} else if (*p == '"') {
			inword = 1;
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0' &&
				    strchr("\"\\$`", p[1]) != NULL)
					p++;
				else if (*p == '$' || *p == '`') {
					snprintf(err, errlen, "'%c' inside \"...\" "
					    "would need a shell to expand, and "
					    "none runs; use '...' or /bin/sh -c",
					    *p);
					goto out;
				}
				word[wl++] = *p;
			}
			if (*p == '\0') {
				snprintf(err, errlen, "unterminated \" quote in "
				    "command");
				goto out;
			}
			p++;
		} else if (*p == '\\') {
			if (p[1] == '\0') {
				snprintf(err, errlen, "command ends with a "
				    "backslash");
				goto out;
			}
			word[wl++] = p[1];
			inword = 1;
			p += 2;
		} else if (strchr("|&;<>()$`*?", *p) != NULL ||
		    (*p == '~' && !inword)) {
			snprintf(err, errlen, "'%c' needs a shell, and the "
			    "command runs without one: quote it, or run "
			    "/bin/sh -c '...' explicitly", *p);
			goto out;
		} else {
			word[wl++] = *p++;
			inword = 1;
		}
	}
	if (inword && push_word(&argv, &argc, word, wl) == -1)
		goto nomem;
	if (argc == 0) {
		snprintf(err, errlen, "command is empty");
		goto out;
	}
	ok = 1;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	free(word);
	if (!ok) {
		proc_argv_free(argv);
		argv = NULL;
	}
	return argv;
}

static int
scrub(const char *kv)
{
	size_t i, n;

	for (i = 0; scrubbed[i] != NULL; i++) {
		n = strlen(scrubbed[i]);
		if (strncmp(kv, scrubbed[i], n) == 0 && kv[n] == '=')
			return 1;
	}
	return 0;
}

/* Our environment minus secrets, plus extra; the array is caller-owned,
 * the strings borrowed. */
static char **
child_env(const char *const extra[])
{
	size_t	 n = 0, k = 0, i;
	char	**env;

	while (environ[n] != NULL)
		n++;
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (i = 0; environ[i] != NULL; i++)
		if (!scrub(environ[i]))
			env[k++] = environ[i];
	for (i = 0; extra != NULL && extra[i] != NULL; i++)
		env[k++] = (char *)extra[i];
	env[k] = NULL;
	return env;
}

/* PATH lookup in the parent: after fork only async-signal-safe calls. */
static char *
resolve(const char *name)
{
	const char	*path, *p, *colon;
	char		 buf[4096];
	size_t		 len;

	if (strchr(name, '/') != NULL)
		return strdup(name);
	path = getenv("PATH");
	if (path == NULL || *path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; p != NULL; p = colon ? colon + 1 : NULL) {
		colon = strchr(p, ':');
		len = colon ? (size_t)(colon - p) : strlen(p);
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)len,
		    len ? p : ".", name);
		if (access(buf, X_OK) == 0)
			return strdup(buf);
	}
	return NULL;
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl != -1)
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

struct proc *
proc_start(char *const argv[], const char *const env[], const char *input,
    size_t inlen, long out_limit, char *err, size_t errlen)
{
	int		 in[2] = { -1, -1 }, out[2] = { -1, -1 };
	int		 er[2] = { -1, -1 }, ex[2] = { -1, -1 }, child_errno = 0;
	struct proc	*p = NULL;
	char		*path = NULL, **envp = NULL;
	sigset_t	 none;
	pid_t		 parent = getpid();
	ssize_t		 n;

	path = resolve(argv[0]);
	if (path == NULL) {
		snprintf(err, errlen, "%s: not found in PATH", argv[0]);
		goto fail;
	}
	envp = child_env(env);
	p = calloc(1, sizeof(*p));
	if (envp == NULL || p == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->in_fd = p->out_fd = p->err_fd = -1;
	if (pipe2(in, O_CLOEXEC) == -1 || pipe2(out, O_CLOEXEC) == -1 ||
	    pipe2(er, O_CLOEXEC) == -1 || pipe2(ex, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	p->pid = fork();
	if (p->pid == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		goto fail;
	}
	if (p->pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(er[1], 2);
		execve(path, argv, envp);
		child_errno = errno;
		(void)!write(ex[1], &child_errno, sizeof(child_errno));
		_exit(127);
	}
	(void)setpgid(p->pid, p->pid);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&er[1]);
	close_fd(&ex[1]);
	do
		n = read(ex[0], &child_errno, sizeof(child_errno));
	while (n == -1 && errno == EINTR);
	close_fd(&ex[0]);
	if (n > 0) {
		snprintf(err, errlen, "cannot run %s: %s", path,
		    strerror(child_errno));
		(void)waitpid(p->pid, NULL, 0);
		p->pid = 0;
		goto fail;
	}
	p->in_fd = in[1];
	p->out_fd = out[0];
	p->err_fd = er[0];
	p->in = input;
	p->inlen = inlen;
	p->out_limit = out_limit;
	set_nonblock(p->in_fd);
	set_nonblock(p->out_fd);
	set_nonblock(p->err_fd);
	if (inlen == 0)
		close_fd(&p->in_fd);
	free(path);
	free(envp);
	return p;
fail:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&er[0]);
	close_fd(&er[1]);
	close_fd(&ex[0]);
	close_fd(&ex[1]);
	free(path);
	free(envp);
	free(p);
	return NULL;
}

static void
keep_out(struct proc *p, const char *buf, size_t n)
{
	char	*nb;
	size_t	 room;

	room = p->out_limit > (long)p->outlen ?
	    (size_t)p->out_limit - p->outlen : 0;
	if (n > room) {
		p->overflow = 1;
		n = room;
	}
	if (n == 0)
		return;
	if (p->outlen + n + 1 > p->outcap) {
		size_t cap = p->outcap ? p->outcap * 2 : 4096;

		while (cap < p->outlen + n + 1)
			cap *= 2;
		nb = realloc(p->out, cap);
		if (nb == NULL) {
			p->overflow = 1;
			return;
		}
		p->out = nb;
		p->outcap = cap;
	}
	memcpy(p->out + p->outlen, buf, n);
	p->outlen += n;
	p->out[p->outlen] = '\0';
}

static void
keep_err(struct proc *p, const char *buf, size_t n)
{
	if (n >= PROC_ERRTAIL) {
		memcpy(p->errbuf, buf + n - PROC_ERRTAIL, PROC_ERRTAIL);
		p->errlen = PROC_ERRTAIL;
		return;
	}
	if (p->errlen + n > sizeof(p->errbuf)) {
		memmove(p->errbuf, p->errbuf + p->errlen - PROC_ERRTAIL,
		    PROC_ERRTAIL);
		p->errlen = PROC_ERRTAIL;
	}
	memcpy(p->errbuf + p->errlen, buf, n);
	p->errlen += n;
}

/* Drain one output pipe; closes it at EOF. */
static void
drain(struct proc *p, int *fd, int is_out)
{
	char	buf[16384];
	ssize_t	n;

	while (*fd != -1) {
		n = read(*fd, buf, sizeof(buf));
		if (n > 0) {
			if (is_out)
				keep_out(p, buf, (size_t)n);
			else
				keep_err(p, buf, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		close_fd(fd);
	}
}

void
proc_io(struct proc *p)
{
	ssize_t n;

	while (p->in_fd != -1 && p->inoff < p->inlen) {
		n = write(p->in_fd, p->in + p->inoff, p->inlen - p->inoff);
		if (n > 0) {
			p->inoff += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			break;
		close_fd(&p->in_fd);	/* EPIPE: it does not read stdin */
	}
	if (p->in_fd != -1 && p->inoff == p->inlen)
		close_fd(&p->in_fd);
	drain(p, &p->out_fd, 1);
	drain(p, &p->err_fd, 0);
}

int
proc_fds(const struct proc *p, int fds[3], short events[3])
{
	int n = 0;

	if (p->in_fd != -1) {
		fds[n] = p->in_fd;
		events[n++] = 0x004;	/* POLLOUT */
	}
	if (p->out_fd != -1) {
		fds[n] = p->out_fd;
		events[n++] = 0x001;	/* POLLIN */
	}
	if (p->err_fd != -1) {
		fds[n] = p->err_fd;
		events[n++] = 0x001;
	}
	return n;
}

pid_t
proc_pid(const struct proc *p)
{
	return p->pid;
}

void
proc_reaped(struct proc *p, int status)
{
	p->exited = 1;
	p->status = status;
}

int
proc_exited(const struct proc *p)
{
	return p->exited;
}

int
proc_done(const struct proc *p)
{
	return p->exited && p->out_fd == -1 && p->err_fd == -1;
}

int
proc_status(const struct proc *p)
{
	return p->status;
}

void
proc_kill(struct proc *p, int sig)
{
	if (p->pid > 0 && !p->exited)
		(void)kill(-p->pid, sig);
	else if (p->pid > 0)
		(void)kill(-p->pid, sig);	/* leftovers in the group */
}

void
proc_close_pipes(struct proc *p)
{
	close_fd(&p->in_fd);
	close_fd(&p->out_fd);
	close_fd(&p->err_fd);
}

const char *
proc_stdout(const struct proc *p, size_t *len, int *overflow)
{
	*len = p->outlen;
	*overflow = p->overflow;
	return p->out ? p->out : "";
}

void
proc_stderr_tail(const struct proc *p, char *buf, size_t len)
{
	size_t n = p->errlen > PROC_ERRTAIL ? PROC_ERRTAIL : p->errlen;
	const char *s = p->errbuf + p->errlen - n;

	if (len == 0)
		return;
	if (n > len - 1) {
		s += n - (len - 1);
		n = len - 1;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
}

void
proc_free(struct proc *p)
{
	if (p == NULL)
		return;
	if (p->pid > 0 && !p->exited) {
		(void)kill(-p->pid, SIGKILL);
		while (waitpid(p->pid, NULL, 0) == -1 && errno == EINTR)
			;
	}
	proc_close_pipes(p);
	free(p->out);
	free(p);
}

int
proc_signalfd(const char *who)
{
	sigset_t	set;
	int		fd;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		fatal("%s: sigprocmask", who);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		fatal("%s: signalfd", who);
	return fd;
}

int
proc_run(char *const argv[], char *out, size_t outlen, char *err,
    size_t errlen)
{
	struct pollfd	 pfd[3];
	struct proc	*p;
	const char	*o;
	size_t		 n;
	short		 ev[3];
	int		 fds[3], i, k, st, overflow, rc = -1;
	pid_t		 w;

	if (outlen > 0)
		out[0] = '\0';
	p = proc_start(argv, NULL, NULL, 0, 65536, err, errlen);
	if (p == NULL)
		return -1;
	for (;;) {
		k = proc_fds(p, fds, ev);
		for (i = 0; i < k; i++) {
			pfd[i].fd = fds[i];
			pfd[i].events = ev[i];
			pfd[i].revents = 0;
		}
		if (k > 0 && poll(pfd, (nfds_t)k, 200) == -1 &&
		    errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			goto out;
		}
		proc_io(p);
		w = waitpid(proc_pid(p), &st, k > 0 ? WNOHANG : 0);
		if (w == -1 && errno != EINTR) {
			snprintf(err, errlen, "waitpid: %s", strerror(errno));
			goto out;
		}
		if (w != proc_pid(p))
			continue;
		/*
		 * Exited: take what is buffered and stop, since a daemon it
		 * started (pg_ctl start) may hold the pipes open forever.
		 */
		proc_reaped(p, st);
		proc_io(p);
		proc_close_pipes(p);
		break;
	}
	o = proc_stdout(p, &n, &overflow);
	if (outlen > 0)
		snprintf(out, outlen, "%.*s", (int)n, o);
	proc_stderr_tail(p, err, errlen);
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
out:
	proc_free(p);
	return rc;
}
