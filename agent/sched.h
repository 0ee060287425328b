/*
 * sched.h - when the scheduled jobs of "run" are due: [schedule] values
 * ("off", a daily "HH:MM" in UTC, or an interval such as "1h", "90s") and
 * the next due time after a given moment.
 */
#ifndef SCHED_H
#define SCHED_H

#include <stddef.h>
#include <stdint.h>

enum sched_kind { SCHED_OFF, SCHED_DAILY, SCHED_EVERY };

struct sched_spec {
	enum sched_kind	 kind;
	int		 minute_of_day;	/* SCHED_DAILY: 0..1439, UTC */
	long long	 every_s;	/* SCHED_EVERY: seconds, >= 1 */
};

/*
 * Parse a [schedule] value: "off", "HH:MM" (daily, UTC) or a duration
 * ("90s", "10m", "1h", "1d", "1h30m").  s is borrowed.  Returns 0 with *out
 * set, or -1 with why in the caller's buffer.
 */
int	 sched_parse(const char *s, struct sched_spec *out, char *why,
	    size_t whylen);

/* The same as a configuration check (cfg.c's key table): 0 or -1. */
int	 sched_check(const char *s, char *why, size_t whylen);

/*
 * The next due time strictly after now (milliseconds since the epoch,
 * wall clock): the next HH:MM UTC, or now + the interval.  -1 for off.
 */
int64_t	 sched_next(const struct sched_spec *, int64_t now);

/* Wall clock in milliseconds since the epoch. */
int64_t	 sched_wall_ms(void);

/*
 * A restart delay that doubles from base_ms per consecutive failure up to
 * cap_ms (failures counts from 1).
 */
long	 sched_backoff_ms(int failures, long base_ms, long cap_ms);

/*
 * Start this binary (/proc/self/exe) with argv (borrowed; argv[0] is the
 * process name) as a child: no shell, default signal handling, an empty
 * signal mask, and SIGTERM when the parent dies.  hold: keep SIGTERM,
 * SIGINT and SIGHUP blocked across exec, for a child that takes them from
 * a signalfd (the worker), so one sent before it is ready waits for it
 * instead of killing it.  Returns the pid, or -1 with errno.
 */
int	 sched_spawn(char *const *argv, int hold);

/* "exit status 3" / "killed by signal 9" for a wait status, in buf. */
const char *sched_status_text(int status, char *buf, size_t len);

#endif
