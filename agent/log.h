/*
 * log.h - logging to stderr, journald-aware.
 *
 * Messages are lowercase and start with a "subsystem: " prefix. When stderr
 * is connected to the journal (JOURNAL_STREAM matches), each line carries a
 * <N> priority prefix so journald files it at the right level.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERR = 3,
	LOG_LVL_WARN = 4,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* verbosity: -1 quiet (errors only), 0 normal, 1+ debug. */
void	log_init(int verbosity);
int	log_verbosity(void);
int	log_journal(void);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_errx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_vmsg(enum log_level, int, const char *, va_list)
	    __attribute__((format(printf, 3, 0)));

/* fatal: internal error, exit EX_SOFTWARE; fatal appends strerror(errno). */
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
