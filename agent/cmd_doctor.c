/*
 * cmd_doctor.c - "doctor": every health check, one line each with how to
 * fix what is wrong; exit status in the Nagios plugin convention.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cfg.h"
#include "cmd.h"
#include "doctor.h"
#include "log.h"
#include "queue.h"

static int
doctor_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'o' },
		{ "skip", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	struct dr_opts	 o;
	struct dr_run	 run;
	struct cfg	*cfg = NULL;
	const char	*nc = getenv("NO_COLOR");
	char		 cfg_err[1024] = "", err[512];
	int		 ch, rc;

	memset(&o, 0, sizeof(o));
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":v", longopts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'j':
			o.json = 1;
			break;
		case 'o':
			o.only = optarg;
			break;
		case 's':
			o.skip = optarg;
			break;
		case 'v':
			o.verbose = 1;
			break;
		default:
			/* Usage errors are "unknown" to a monitoring system. */
			(void)queue_bad_option(&cmd_doctor, ch, argv);
			return 3;
		}
	}
	if (optind < argc) {
		(void)cmd_usage_error(&cmd_doctor, "unexpected argument '%s'",
		    argv[optind]);
		return 3;
	}
	o.color = !o.json && isatty(STDOUT_FILENO) && (nc == NULL ||
	    *nc == '\0');
	/* A configuration that does not load is a finding, not the end. */
	cfg = cfg_load(a->config_path, cfg_err, sizeof(cfg_err));
	if (dr_run_checks(cfg, cfg_err, &o, 1, &run, err, sizeof(err)) == -1) {
		cfg_free(cfg);
		(void)cmd_usage_error(&cmd_doctor, "%s", err);
		return 3;
	}
	if (o.json)
		dr_print_json(stdout, &run);
	else
		dr_print_text(stdout, &run, &o);
	rc = dr_exit_code(&run);
	dr_run_free(&run);
	cfg_free(cfg);
	if (fflush(stdout) == EOF)
		return 3;
	return rc;
}

const struct cmd cmd_doctor = {
	"doctor", "[--json] [--only ID,...] [--skip ID,...] [-v]",
	"check everything and say what to fix",
	"Runs every health check and prints one line per check: [\u2713] ok, "
	"[!] warning, [\u2717] critical, [?] unknown (could not be checked), "
	"[-] skipped (does not apply to this configuration), and under each "
	"problem a line saying how to fix it; -v also prints the details of "
	"healthy checks.  Colour only on a terminal, never with NO_COLOR set.  "
	"Checks: config, secrets, credentials, clock, agent.package, "
	"db.connect, db.version, "
	"db.schema, db.connections, db.size, db.disk, db.wraparound, "
	"db.sessions, db.vacuum, queue.depth, queue.age, queue.unserved, "
	"queue.stuck, queue.failures, queue.workers, backup.age, backup.size, "
	"backup.verify, backup.bucket, maintain; thresholds are the [doctor] keys.  "
	"--only and --skip take comma-separated ids.  --json prints {status, "
	"generated_at, checks: [{id, title, status (ok|warn|crit|unknown|"
	"skipped), summary, detail, fix, metrics, duration_ms}]}.  Exit "
	"status (Nagios): 0 ok, 1 warning, 2 critical, 3 unknown; the worst "
	"wins, critical over unknown over warning; skipped checks do not "
	"count.",
	doctor_run,
};
