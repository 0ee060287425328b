/*
 * cmd_run.c - "run": one foreground supervisor for hosts without systemd
 * (a container).  It starts [schedule] workers worker processes and the
 * scheduled jobs (backup, maintain, metrics) as children of its own binary
 * (no shell), restarts crashed workers with capped backoff, never lets a
 * job overlap itself, and forwards stop and reload signals.
 *
 * One thread, one poll on a signalfd: children are reaped on SIGCHLD and
 * the poll sleeps until the next due job or restart.  As a container's
 * PID 1 it also reaps orphans that are not its own children.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "cfg.h"
#include "cmd.h"
#include "handler.h"
#include "health.h"
#include "log.h"
#include "proc.h"
#include "sched.h"

#define MAX_WORKERS	64
#define RESTART_BASE_MS	1000
#define RESTART_CAP_MS	60000
#define STABLE_MS	60000	/* a worker up this long starts backoff over */
#define KILL_EXTRA_S	15	/* past grace_seconds before SIGKILL */

enum { JOB_BACKUP, JOB_MAINTAIN, JOB_METRICS, NJOBS };

struct child {
	char			 name[32];	/* "worker 2", "backup" */
	pid_t			 pid;		/* 0: not running */
	int64_t			 started;	/* monotonic ms */
	/* Workers. */
	int			 failures;
	int64_t			 restart_at;	/* monotonic ms */
	char			 health[80];	/* --health-listen, or "" */
	/* Jobs. */
	struct sched_spec	 spec;
	int64_t			 due;		/* wall ms; -1: off */
};

struct sup {
	struct agent		*agent;
	const struct cfg	*cfg;
	struct child		 workers[MAX_WORKERS];
	struct child		 jobs[NJOBS];
	int			 nworkers;
	int			 sfd;
	int			 stopping;
	int64_t			 kill_at;	/* monotonic ms; 0: none */
	int			 rc;
};

/* Job argv after the global options; NULL-terminated. */
static const char *const job_args[NJOBS][4] = {
	[JOB_BACKUP] = { "backup", NULL },
	[JOB_MAINTAIN] = { "maintain", NULL },
	[JOB_METRICS] = { "metrics", "--textfile", NULL, NULL },
};
static const enum cfg_id job_keys[NJOBS] = {
	CFG_S_BACKUP, CFG_S_MAINTAIN, CFG_S_METRICS,
};

/*
 * With several workers on one host each needs its own health port: worker
 * k gets [health] listen's port + k - 1.  Returns 0, or -1 with why.
 */
static int
health_addr(const char *listen, int k, char *out, size_t outlen,
    char *why, size_t whylen)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	char			 host[INET6_ADDRSTRLEN];
	size_t			 len;
	int			 port;

	out[0] = '\0';
	if (*listen == '\0' || strcmp(listen, "off") == 0)
		return 0;
	if (health_parse_listen(listen, &ss, &len, why, whylen) == -1)
		return -1;
	port = ntohs(ss.ss_family == AF_INET ? sin->sin_port :
	    sin6->sin6_port) + k - 1;
	if (port > 65535) {
		snprintf(why, whylen, "health.listen: worker %d would need "
		    "port %d; lower the port or the number of workers", k, port);
		return -1;
	}
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%d", host, port);
	} else {
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "[%s]:%d", host, port);
	}
	return 0;
}

/* Global options for a child: the same file and verbosity as ours. */
static int
base_argv(const struct sup *s, const char **argv)
{
	const char	*path = cfg_path(s->cfg);
	int		 n = 0;

	argv[n++] = "orchestrator-agent";
	if (path != NULL) {
		argv[n++] = "-c";
		argv[n++] = path;
	}
	if (log_verbosity() < 0)
		argv[n++] = "-q";
	else if (log_verbosity() > 0)
		argv[n++] = "-v";
	return n;
}

static void
start_child(struct sup *s, struct child *c, const char *const *args,
    int hold)
{
	const char	*argv[16];
	int		 n;

	n = base_argv(s, argv);
	for (; *args != NULL && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	c->pid = sched_spawn((char *const *)argv, hold);
	c->started = now_ms();
	if (c->pid == -1) {
		log_warn("run: cannot start %s: fork", c->name);
		c->pid = 0;
		return;
	}
	log_info("run: started %s (pid %d)", c->name, (int)c->pid);
}

static void
start_worker(struct sup *s, struct child *c)
{
	const char *args[4] = { "worker", NULL, NULL, NULL };

	if (c->health[0] != '\0') {
		args[1] = "--health-listen";
		args[2] = c->health;
	}
	start_child(s, c, args, 1);
	if (c->pid == 0) {
		c->failures++;
		c->restart_at = now_ms() + sched_backoff_ms(c->failures,
		    RESTART_BASE_MS, RESTART_CAP_MS);
	}
}

static void
run_job(struct sup *s, int j)
{
	struct child	*c = &s->jobs[j];
	const char	*args[4];
	int64_t		 wall = sched_wall_ms();

	c->due = sched_next(&c->spec, wall);
	if (c->pid != 0) {
		log_warnx("run: %s is due but the previous run (pid %d) has "
		    "been going for %lld s; skipping this run (next in %lld s)",
		    c->name, (int)c->pid, (long long)((now_ms() - c->started) /
		    1000), (long long)((c->due - wall) / 1000));
		return;
	}
	memcpy(args, job_args[j], sizeof(args));
	if (j == JOB_METRICS)
		args[2] = cfg_str(s->cfg, CFG_S_METRICS_TEXTFILE);
	start_child(s, c, args, 0);
}

static void
signal_all(struct sup *s, int sig)
{
	int i;

	for (i = 0; i < s->nworkers; i++)
		if (s->workers[i].pid != 0)
			kill(s->workers[i].pid, sig);
	for (i = 0; i < NJOBS; i++)
		if (s->jobs[i].pid != 0)
			kill(s->jobs[i].pid, sig);
}

static void
begin_stop(struct sup *s, const char *why)
{
	int64_t grace = cfg_int(s->cfg, CFG_W_GRACE_SECONDS);

	if (s->stopping) {
		log_info("run: second stop request; passed on (workers stop "
		    "their handlers now)");
		signal_all(s, SIGTERM);
		return;
	}
	s->stopping = 1;
	s->kill_at = now_ms() + (grace + KILL_EXTRA_S) * 1000;
	log_info("run: stopping (%s): SIGTERM to every child; workers get "
	    "up to %lld s for running handlers", why, (long long)grace);
	signal_all(s, SIGTERM);
}

static void
worker_exited(struct sup *s, struct child *c, int st)
{
	char	how[64];
	int64_t	now = now_ms();
	long	delay;

	sched_status_text(st, how, sizeof(how));
	c->pid = 0;
	if (s->stopping) {
		log_info("run: %s stopped (%s)", c->name, how);
		return;
	}
	if (WIFEXITED(st) && (WEXITSTATUS(st) == EX_USAGE ||
	    WEXITSTATUS(st) == EX_CONFIG)) {
		log_errx("run: %s ended with %s, a usage or configuration "
		    "error that restarting cannot fix; stopping everything: fix "
		    "the configuration ('orchestrator-agent config check') and "
		    "start again", c->name, how);
		s->rc = WEXITSTATUS(st);
		begin_stop(s, "a worker cannot run");
		return;
	}
	if (now - c->started >= STABLE_MS)
		c->failures = 0;
	c->failures++;
	delay = sched_backoff_ms(c->failures, RESTART_BASE_MS, RESTART_CAP_MS);
	c->restart_at = now + delay;
	log_warnx("run: %s ended unexpectedly after %lld s: %s; "
	    "restarting in %ld ms (its log above says why)", c->name,
	    (long long)((now - c->started) / 1000), how, delay);
}

static void
job_exited(struct sup *s, struct child *c, int st)
{
	char	how[64];
	int64_t	secs = (now_ms() - c->started) / 1000;

	c->pid = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		log_info("run: %s finished in %lld s", c->name,
		    (long long)secs);
		return;
	}
	log_warnx("run: %s failed with %s after %lld s%s (its log above "
	    "says why)", c->name, sched_status_text(st, how, sizeof(how)),
	    (long long)secs, s->stopping ? "" : "; it runs again when next "
	    "due");
}

/* Reap every exited child, ours or (as PID 1) an orphan's. */
static void
reap(struct sup *s)
{
	pid_t	pid;
	int	st, i;

	for (;;) {
		pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		for (i = 0; i < s->nworkers; i++)
			if (s->workers[i].pid == pid)
				worker_exited(s, &s->workers[i], st);
		for (i = 0; i < NJOBS; i++)
			if (s->jobs[i].pid == pid)
				job_exited(s, &s->jobs[i], st);
	}
}

static void
read_signals(struct sup *s)
{
	struct signalfd_siginfo	si;
	int			i;

	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(s);
			break;
		case SIGHUP:
			log_info("run: SIGHUP passed on to the workers");
			for (i = 0; i < s->nworkers; i++)
				if (s->workers[i].pid != 0)
					kill(s->workers[i].pid, SIGHUP);
			break;
		default:
			begin_stop(s, si.ssi_signo == SIGINT ? "SIGINT" :
			    "SIGTERM");
			break;
		}
	}
}

static int
children_left(const struct sup *s)
{
	int i;

	for (i = 0; i < s->nworkers; i++)
		if (s->workers[i].pid != 0)
			return 1;
	for (i = 0; i < NJOBS; i++)
		if (s->jobs[i].pid != 0)
			return 1;
	return 0;
}

/* Start what is due; returns how long poll may sleep (ms). */
static int
due_work(struct sup *s)
{
	int64_t	now = now_ms(), wall = sched_wall_ms(), wait = 60000;
	int	i;

	if (s->stopping) {
		if (now >= s->kill_at) {
			log_warnx("run: children still running %lld s after "
			    "the stop request; killing them",
			    (long long)(cfg_int(s->cfg, CFG_W_GRACE_SECONDS) +
			    KILL_EXTRA_S));
			signal_all(s, SIGKILL);
			s->kill_at = now + 60000;
		}
		return (int)(s->kill_at - now);
	}
	for (i = 0; i < s->nworkers; i++) {
		if (s->workers[i].pid != 0)
			continue;
		if (now >= s->workers[i].restart_at)
			start_worker(s, &s->workers[i]);
		if (s->workers[i].pid == 0 && s->workers[i].restart_at - now <
		    wait)
			wait = s->workers[i].restart_at - now;
	}
	for (i = 0; i < NJOBS; i++) {
		if (s->jobs[i].due == -1)
			continue;
		if (wall >= s->jobs[i].due)
			run_job(s, i);
		if (s->jobs[i].due - wall < wait)
			wait = s->jobs[i].due - wall;
	}
	return wait < 0 ? 0 : (int)wait;
}

static int
setup(struct sup *s)
{
	const char	*listen = cfg_str(s->cfg, CFG_H_LISTEN);
	char		 why[256];
	int64_t		 wall = sched_wall_ms();
	int		 i, active = 0;

	s->nworkers = (int)cfg_int(s->cfg, CFG_S_WORKERS);
	for (i = 0; i < s->nworkers; i++) {
		snprintf(s->workers[i].name, sizeof(s->workers[i].name),
		    "worker %d", i + 1);
		if (s->nworkers > 1 && health_addr(listen, i + 1,
		    s->workers[i].health, sizeof(s->workers[i].health), why,
		    sizeof(why)) == -1) {
			log_errx("run: %s", why);
			return EX_CONFIG;
		}
	}
	for (i = 0; i < NJOBS; i++) {
		snprintf(s->jobs[i].name, sizeof(s->jobs[i].name), "%s",
		    job_args[i][0]);
		if (sched_parse(cfg_str(s->cfg, job_keys[i]), &s->jobs[i].spec,
		    why, sizeof(why)) == -1) {
			log_errx("run: schedule.%s: %s", job_args[i][0], why);
			return EX_CONFIG;
		}
		s->jobs[i].due = sched_next(&s->jobs[i].spec, wall);
		active += s->jobs[i].due != -1;
	}
	if (s->nworkers + active == 0) {
		log_errx("run: nothing to run: [schedule] workers = 0 and every "
		    "job is off; set workers or a job's schedule");
		return EX_CONFIG;
	}
	s->sfd = proc_signalfd("run");
	log_info("run: %d worker%s; backup %s, maintain %s, metrics %s",
	    s->nworkers, s->nworkers == 1 ? "" : "s",
	    cfg_str(s->cfg, CFG_S_BACKUP), cfg_str(s->cfg, CFG_S_MAINTAIN),
	    cfg_str(s->cfg, CFG_S_METRICS));
	return EX_OK;
}

static int
run_cmd(struct agent *a, int argc, char **argv)
{
	struct sup	 s;
	struct cfg	*cfg;
	struct pollfd	 pfd;
	int		 rc, ms;

	(void)argv;
	if (argc > 1)
		return cmd_usage_error(&cmd_run, "takes no arguments (the "
		    "[schedule] section says what to run)");
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	memset(&s, 0, sizeof(s));
	s.agent = a;
	s.cfg = cfg;
	s.sfd = -1;
	rc = setup(&s);
	if (rc != EX_OK)
		goto out;
	for (;;) {
		ms = due_work(&s);
		if (s.stopping && !children_left(&s))
			break;
		pfd.fd = s.sfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ms) == -1 && errno != EINTR)
			fatal("run: poll");
		read_signals(&s);
	}
	log_info("run: every child has stopped");
	rc = s.rc;
out:
	if (s.sfd != -1)
		close(s.sfd);
	return rc;
}

const struct cmd cmd_run = {
	"run", "", "supervise workers and scheduled jobs (no systemd)",
	"For hosts without systemd, such as a container: run [schedule] "
	"workers worker processes and the scheduled jobs (backup, maintain, "
	"metrics --textfile) as children of this binary, without a shell.  "
	"A job's schedule is HH:MM (daily, UTC), an interval (90s, 10m, 1h) "
	"or off; a job still running when it is due again is skipped with a "
	"warning, and a failed job is logged with its exit status.  A worker "
	"that exits is restarted with backoff (1 s doubling to 60 s), except "
	"after exit 64 or 78 (usage or configuration error): then everything "
	"stops and run exits with that status.  With several workers, worker "
	"k serves [health] on the configured port + k - 1.\n"
	"SIGTERM/SIGINT: passed to every child; run waits for them "
	"(grace_seconds, then 15 s more before SIGKILL) and exits 0.  SIGHUP: "
	"passed to the workers (they reload their handlers).",
	run_cmd,
};
