/*
 * notify.c - sd_notify(3) without linking libsystemd.
 *
 * libsystemd would pull itself and five more libraries (libgcrypt, lz4,
 * lzma, libcap, libgpg-error) into every worker's memory for three calls.
 * systemd documents the notification protocol as a stable interface meant
 * to be reimplemented by services that do not want the library
 * (sd_notify(3), NOTES, which also gives a reference implementation): one
 * datagram of newline-separated VAR=VALUE lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET, a file system path or, after a leading '@', an
 * abstract name.  The watchdog variables follow sd_watchdog_enabled(3).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* Fill *sa from $NOTIFY_SOCKET: 1 done, 0 unset, -1 unusable (errno). */
static int
notify_addr(struct sockaddr_un *sa, socklen_t *salen)
{
	const char	*e = getenv("NOTIFY_SOCKET");
	size_t		 len;

	if (e == NULL || *e == '\0')
		return 0;
	len = strlen(e);
	/* An abstract name has no terminating NUL; a path keeps one. */
	if ((e[0] != '/' && e[0] != '@') || len < 2) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (len + (e[0] == '/') > sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, e, len);
	if (e[0] == '@')
		sa->sun_path[0] = '\0';
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
	    (e[0] == '/'));
	return 1;
}

int
notify_send(const char *state)
{
	struct sockaddr_un	 sa;
	socklen_t		 salen = 0;
	size_t			 len;
	ssize_t			 n;
	int			 fd, r, saved;

	if (state == NULL) {
		errno = EINVAL;
		return -1;
	}
	r = notify_addr(&sa, &salen);
	if (r != 1)
		return r;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	len = strlen(state);
	/* MSG_NOSIGNAL: a vanished manager must not kill us with SIGPIPE. */
	n = sendto(fd, state, len, MSG_NOSIGNAL, (struct sockaddr *)&sa,
	    salen);
	saved = errno;
	close(fd);
	if (n == -1) {
		errno = saved;
		return -1;
	}
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 1;
}

int
notify_sendf(const char *fmt, ...)
{
	va_list	 ap;
	char	*s = NULL;
	int	 r;

	/* Nothing to format when nobody listens (the common interactive case). */
	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r == -1)
		return -1;
	r = notify_send(s);
	free(s);
	return r;
}

/* A decimal unsigned number, the whole string: 0 ok, -1 not one. */
static int
parse_u64(const char *s, unsigned long long *v)
{
	char	*end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return 0;
}

int
notify_watchdog(uint64_t *usec)
{
	const char		*us = getenv("WATCHDOG_USEC");
	const char		*pid = getenv("WATCHDOG_PID");
	unsigned long long	 u, p;

	*usec = 0;
	if (us == NULL)
		return 0;
	/* 0 and infinity (all ones) are not intervals: sd_watchdog_enabled. */
	if (parse_u64(us, &u) == -1 || u == 0 || u == UINT64_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (pid != NULL) {
		if (parse_u64(pid, &p) == -1 || p == 0 || p > INT32_MAX) {
			errno = EINVAL;
			return -1;
		}
		/* Meant for another process (e.g. our parent's). */
		if ((pid_t)p != getpid())
			return 0;
	}
	*usec = (uint64_t)u;
	return 1;
}
