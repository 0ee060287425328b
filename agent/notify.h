/*
 * notify.h - the systemd service-manager notification protocol
 * (sd_notify(3)) without libsystemd: readiness, status and watchdog pings
 * as datagrams to $NOTIFY_SOCKET, and the watchdog interval systemd asks
 * for in $WATCHDOG_USEC.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stdint.h>

/*
 * Send newline-separated assignments such as "READY=1" (the caller keeps
 * state).  Returns 1 when sent, 0 when no service manager listens
 * (NOTIFY_SOCKET unset or empty), -1 with errno set when the socket
 * address is unusable or the send failed.
 */
int	notify_send(const char *state);
int	notify_sendf(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/*
 * The watchdog interval in microseconds, as sd_watchdog_enabled(0, usec):
 * 1 and *usec set when WATCHDOG_USEC asks for pings and WATCHDOG_PID is
 * unset or this process; 0 when no watchdog applies to this process; -1
 * (errno EINVAL) when either variable does not parse.  *usec is 0 unless
 * 1 is returned.
 */
int	notify_watchdog(uint64_t *usec);

#endif
