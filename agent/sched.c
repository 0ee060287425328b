/*
 * sched.c - [schedule] values and due times for "run".
 *
 * Times are wall-clock milliseconds since the epoch: a daily job follows
 * the clock (03:15 UTC stays 03:15 after an NTP step), and an interval is
 * counted from the moment the previous run was due or skipped.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "queue.h"
#include "sched.h"

#define DAY_MS	(86400LL * 1000)

/* "HH:MM" with two digits each; returns minutes or -1. */
static int
parse_hhmm(const char *s)
{
	int h, m;

	if (strlen(s) != 5 || s[2] != ':' || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[3]) ||
	    !isdigit((unsigned char)s[4]))
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || m > 59)
		return -1;
	return h * 60 + m;
}

int
sched_parse(const char *s, struct sched_spec *out, char *why, size_t whylen)
{
	char		 msg[200];
	long long	 secs;

	memset(out, 0, sizeof(*out));
	if (strcasecmp(s, "off") == 0) {
		out->kind = SCHED_OFF;
		return 0;
	}
	if (strchr(s, ':') != NULL) {
		out->minute_of_day = parse_hhmm(s);
		if (out->minute_of_day == -1) {
			snprintf(why, whylen, "'%s' is not a time of day; use "
			    "HH:MM in UTC from 00:00 to 23:59", s);
			return -1;
		}
		out->kind = SCHED_DAILY;
		return 0;
	}
	if (queue_parse_duration(s, &secs, msg, sizeof(msg)) == -1) {
		snprintf(why, whylen, "%s (or HH:MM daily in UTC, or off)",
		    msg);
		return -1;
	}
	if (secs < 1) {
		snprintf(why, whylen, "'%s' is not a usable interval; it must "
		    "be at least 1s", s);
		return -1;
	}
	out->kind = SCHED_EVERY;
	out->every_s = secs;
	return 0;
}

int
sched_check(const char *s, char *why, size_t whylen)
{
	struct sched_spec spec;

	return sched_parse(s, &spec, why, whylen);
}

int64_t
sched_next(const struct sched_spec *sp, int64_t now)
{
	int64_t day_start, at;

	switch (sp->kind) {
	case SCHED_EVERY:
		return now + sp->every_s * 1000;
	case SCHED_DAILY:
		/* The epoch is midnight UTC and UTC has no leap seconds in
		 * time_t, so a day is always 86400 s here. */
		day_start = now - now % DAY_MS;
		at = day_start + (int64_t)sp->minute_of_day * 60 * 1000;
		return at > now ? at : at + DAY_MS;
	default:
		return -1;
	}
}

int64_t
sched_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long
sched_backoff_ms(int failures, long base_ms, long cap_ms)
{
	long	d = base_ms;
	int	i;

	for (i = 1; i < failures && d < cap_ms; i++)
		d *= 2;
	return d < cap_ms ? d : cap_ms;
}

int
sched_spawn(char *const *argv, int hold)
{
	sigset_t	all;
	pid_t		pid, parent = getpid();
	int		sig;

	fflush(stderr);
	pid = fork();
	if (pid != 0)
		return pid;
	/* The child: undo what the supervisor set up for itself. */
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	sigemptyset(&all);
	if (hold) {
		sigaddset(&all, SIGTERM);
		sigaddset(&all, SIGINT);
		sigaddset(&all, SIGHUP);
	}
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* A container's supervisor killed outright takes its children. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 || getppid() != parent)
		_exit(EX_OSERR);
	execv("/proc/self/exe", argv);
	dprintf(2, "run: cannot execute /proc/self/exe: %s\n", strerror(errno));
	_exit(EX_OSERR);
}

const char *
sched_status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (SIG%s)",
		    WTERMSIG(status), sigabbrev_np(WTERMSIG(status)) ?
		    sigabbrev_np(WTERMSIG(status)) : "?");
	else
		snprintf(buf, len, "wait status %#x", (unsigned)status);
	return buf;
}
