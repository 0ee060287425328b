/*
 * test_notify.c - the sd_notify protocol without libsystemd: the exact
 * datagrams a listening AF_UNIX socket receives (path and abstract names),
 * no-ops without NOTIFY_SOCKET, errors for unusable values, and the
 * watchdog variables as sd_watchdog_enabled reads them.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/*
 * A datagram socket bound to name ("@..." abstract, else a path), with
 * NOTIFY_SOCKET pointing at it; returns the fd (caller closes).
 */
static int
listener(const char *name)
{
	struct sockaddr_un	 sa;
	socklen_t		 len;
	int			 fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd != -1);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, name);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(name));
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	else
		len++;
	cr_assert(bind(fd, (struct sockaddr *)&sa, len) == 0, "bind %s: %s",
	    name, strerror(errno));
	setenv("NOTIFY_SOCKET", name, 1);
	return fd;
}

/* The next datagram, which must be there already. */
static void
expect(int fd, const char *want)
{
	char	 buf[512];
	ssize_t	 n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	cr_assert(n >= 0, "no datagram: %s", strerror(errno));
	buf[n] = '\0';
	cr_assert_str_eq(buf, want);
}

Test(notify, path_socket_gets_exact_messages)
{
	char	path[] = "/tmp/oa-notify-XXXXXX", sock[64];
	int	fd;

	cr_assert(mkdtemp(path) != NULL);
	snprintf(sock, sizeof(sock), "%s/notify", path);
	fd = listener(sock);
	cr_assert_eq(notify_send("READY=1"), 1);
	expect(fd, "READY=1");
	cr_assert_eq(notify_sendf("STATUS=%s; %d running", "connected", 3), 1);
	expect(fd, "STATUS=connected; 3 running");
	cr_assert_eq(notify_send("STOPPING=1\nSTATUS=bye"), 1);
	expect(fd, "STOPPING=1\nSTATUS=bye");
	close(fd);
	unlink(sock);
	rmdir(path);
}

Test(notify, abstract_socket_gets_exact_messages)
{
	char	name[64];
	int	fd;

	snprintf(name, sizeof(name), "@oa-notify-test-%d", (int)getpid());
	fd = listener(name);
	cr_assert_eq(notify_send("WATCHDOG=1"), 1);
	expect(fd, "WATCHDOG=1");
	close(fd);
}

Test(notify, no_socket_is_a_noop)
{
	unsetenv("NOTIFY_SOCKET");
	cr_assert_eq(notify_send("READY=1"), 0);
	cr_assert_eq(notify_sendf("STATUS=%d", 1), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	cr_assert_eq(notify_send("READY=1"), 0);
	cr_assert_eq(notify_sendf("STATUS=%d", 1), 0);
}

Test(notify, unusable_sockets_are_errors)
{
	static const struct {
		const char	*value;
		int		 err;
	} cases[] = {
		{ "relative/path", EAFNOSUPPORT },
		{ "@", EAFNOSUPPORT },
		{ "vsock:2:1234", EAFNOSUPPORT },
		{ "/nonexistent-dir/notify", ENOENT },
		{ "@oa-notify-nobody-listens-here", ECONNREFUSED },
	};
	char	 longpath[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("NOTIFY_SOCKET", cases[i].value, 1);
		errno = 0;
		cr_expect_eq(notify_send("READY=1"), -1, "%s", cases[i].value);
		cr_expect_eq(errno, cases[i].err, "%s: errno %d",
		    cases[i].value, errno);
		cr_expect_eq(notify_sendf("STATUS=%s", "x"), -1, "%s",
		    cases[i].value);
	}
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longpath, 1);
	cr_expect_eq(notify_send("READY=1"), -1);
	cr_expect_eq(errno, ENAMETOOLONG);
	cr_expect_eq(notify_send(NULL), -1);
}

Test(notify, watchdog_variables)
{
	char	self[32], other[32];
	struct {
		const char	*usec, *pid;
		int		 ret;
		uint64_t	 want;
	} cases[] = {
		{ NULL, NULL, 0, 0 },
		{ "30000000", NULL, 1, 30000000 },
		{ "1", NULL, 1, 1 },
		{ "30000000", self, 1, 30000000 },
		{ "30000000", other, 0, 0 },
		{ NULL, self, 0, 0 },
		{ "0", NULL, -1, 0 },
		{ "", NULL, -1, 0 },
		{ "-5", NULL, -1, 0 },
		{ " 5", NULL, -1, 0 },
		{ "5s", NULL, -1, 0 },
		{ "18446744073709551615", NULL, -1, 0 },	/* infinity */
		{ "99999999999999999999", NULL, -1, 0 },	/* overflows */
		{ "30000000", "", -1, 0 },
		{ "30000000", "0", -1, 0 },
		{ "30000000", "12x", -1, 0 },
		{ "30000000", "99999999999", -1, 0 },
	};

	snprintf(self, sizeof(self), "%d", (int)getpid());
	snprintf(other, sizeof(other), "%d", (int)getpid() + 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t	usec = 42;
		int		r;

		if (cases[i].usec != NULL)
			setenv("WATCHDOG_USEC", cases[i].usec, 1);
		else
			unsetenv("WATCHDOG_USEC");
		if (cases[i].pid != NULL)
			setenv("WATCHDOG_PID", cases[i].pid, 1);
		else
			unsetenv("WATCHDOG_PID");
		r = notify_watchdog(&usec);
		cr_expect_eq(r, cases[i].ret, "case %zu (%s, %s): %d", i,
		    cases[i].usec ? cases[i].usec : "unset",
		    cases[i].pid ? cases[i].pid : "unset", r);
		cr_expect_eq(usec, cases[i].want, "case %zu: %llu", i,
		    (unsigned long long)usec);
		if (r == -1)
			cr_expect_eq(errno, EINVAL, "case %zu", i);
	}
}
