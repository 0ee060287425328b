/*
 * log.c - logging in the manner of OpenBSD daemons.
 *
 * Everything goes to stderr: results belong on stdout, and under systemd
 * stderr is the journal.  We detect the journal through JOURNAL_STREAM
 * (device:inode of the stream systemd connected) rather than trusting that
 * the variable is merely set, because a child of a service inherits it even
 * when its stderr has been redirected.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "log.h"

static int	log_verbose;
static int	log_to_journal;

static int
journal_matches(void)
{
	const char		*js;
	unsigned long long	 dev, ino;
	struct stat		 st;

	js = getenv("JOURNAL_STREAM");
	if (js == NULL || *js == '\0')
		return 0;
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return 0;
	if (fstat(fileno(stderr), &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(int verbosity)
{
	log_verbose = verbosity;
	log_to_journal = journal_matches();
}

int
log_verbosity(void)
{
	return log_verbose;
}

int
log_journal(void)
{
	return log_to_journal;
}

void
log_vmsg(enum log_level lvl, int with_errno, const char *fmt, va_list ap)
{
	char		 buf[4096];
	const char	*tag = "";
	int		 saved = errno;

	if (lvl == LOG_LVL_DEBUG && log_verbose < 1)
		return;
	if (lvl == LOG_LVL_INFO && log_verbose < 0)
		return;
	if (lvl == LOG_LVL_WARN && log_verbose < 0)
		return;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (log_to_journal) {
		if (with_errno)
			fprintf(stderr, "<%d>%s: %s\n", lvl, buf,
			    strerror(saved));
		else
			fprintf(stderr, "<%d>%s\n", lvl, buf);
	} else {
		if (lvl == LOG_LVL_ERR)
			tag = "error: ";
		else if (lvl == LOG_LVL_WARN)
			tag = "warning: ";
		if (with_errno)
			fprintf(stderr, "orchestrator-agent: %s%s: %s\n", tag,
			    buf, strerror(saved));
		else
			fprintf(stderr, "orchestrator-agent: %s%s\n", tag, buf);
	}
	fflush(stderr);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_WARN, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_WARN, 0, fmt, ap);
	va_end(ap);
}

/* An error that ends the command; the caller returns the exit code. */
void
log_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, 1, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}
