/*
 * cmd_worker.c - "worker": run the queue worker in the foreground.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cmd.h"
#include "health.h"
#include "worker.h"

static int
worker_cmd(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "types", required_argument, NULL, 't' },
		{ "exit-when-empty", no_argument, NULL, 'e' },
		{ "health-listen", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker_opts	 o;
	char			*end, err[256];
	long			 n;
	int			 ch;

	memset(&o, 0, sizeof(o));
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, "+", longopts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'c':
			n = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || n < 1 || n > 256)
				return cmd_usage_error(&cmd_worker,
				    "--concurrency takes a number from 1 to 256, "
				    "not '%s'", optarg);
			o.concurrency = (int)n;
			break;
		case 't':
			if (*optarg == '\0')
				return cmd_usage_error(&cmd_worker,
				    "--types needs a comma-separated list");
			o.types = optarg;
			break;
		case 'e':
			o.exit_when_empty = 1;
			break;
		case 'H':
			if (health_check_listen(optarg, err, sizeof(err)) == -1)
				return cmd_usage_error(&cmd_worker,
				    "--health-listen: %s", err);
			o.health_listen = optarg;
			break;
		default:
			return cmd_usage_error(&cmd_worker, "unknown option "
			    "'%s'", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cmd_usage_error(&cmd_worker, "unexpected argument '%s'",
		    argv[optind]);
	return worker_run(a, &o);
}

const struct cmd cmd_worker = {
	"worker", "[--concurrency N] [--types a,b] [--exit-when-empty] "
	"[--health-listen ADDR|off]",
	"run the queue worker",
	"Claim and run tasks of the types that have a [handler.TYPE] section "
	"(narrowed by --types), up to --concurrency at a time (default "
	"[worker] concurrency), using four database connections (one claims, "
	"three record results) whatever the concurrency.  Tasks are "
	"claimed in batches with FOR UPDATE SKIP LOCKED and woken by "
	"LISTEN/NOTIFY (poll_interval_ms as a fallback).  Tasks that end "
	"within [worker] hold_ms are written once, in the claim's "
	"transaction; the others are marked started with a lease that is "
	"extended while their handler runs.  Failures "
	"are retried with exponential backoff until max_attempts.  Leases "
	"abandoned by dead workers are rescued.\n"
	"SIGTERM/SIGINT: stop claiming, return prefetched tasks, wait "
	"grace_seconds for running handlers, then kill and requeue them; exit "
	"0.  SIGHUP: reload the handlers (the old configuration stays on "
	"error).  Under systemd (Type=notify) it reports READY, STATUS, "
	"STOPPING and WATCHDOG.\n"
	"--exit-when-empty: return once no task of its types is queued "
	"(retries scheduled for later included) or running.\n"
	"--health-listen: serve /healthz and /metrics on ADDR (HOST:PORT) "
	"instead of [health] listen; off: not at all.  A port in use exits "
	"69.",
	worker_cmd,
};
