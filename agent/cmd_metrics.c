/*
 * cmd_metrics.c - "metrics": the doctor's facts as Prometheus text, to
 * stdout or atomically into node_exporter's textfile directory.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "cmd.h"
#include "doctor.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "store.h"

static int
metrics_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "textfile", required_argument, NULL, 't' },
		{ "remote", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct dr_opts	 o;
	struct dr_run	 run;
	struct cfg	*cfg = NULL;
	const char	*file = NULL;
	char		 cfg_err[1024] = "", err[4400], *text = NULL;
	int		 ch, remote = 0, rc = EX_OK;

	memset(&o, 0, sizeof(o));
	memset(&run, 0, sizeof(run));
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 't')
			file = optarg;
		else if (ch == 'r')
			remote = 1;
		else
			return queue_bad_option(&cmd_metrics, ch, argv);
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_metrics, "unexpected argument '%s'",
		    argv[optind]);
	if (file != NULL && *file == '\0')
		return cmd_usage_error(&cmd_metrics, "--textfile needs a path");
	/* Exported even when broken: orchestrator_config_valid says 0. */
	cfg = cfg_load(a->config_path, cfg_err, sizeof(cfg_err));
	if (cfg == NULL)
		log_warnx("metrics: config: %s", cfg_err);
	if (dr_run_checks(cfg, cfg_err, &o, remote, &run, err,
	    sizeof(err)) == -1) {
		log_errx("metrics: %s", err);
		rc = EX_SOFTWARE;
		goto out;
	}
	text = metrics_render(&run);
	if (text == NULL) {
		log_errx("metrics: out of memory");
		rc = EX_OSERR;
		goto out;
	}
	if (file == NULL) {
		fputs(text, stdout);
		if (fflush(stdout) == EOF)
			rc = EX_IOERR;
	} else if (store_write_file(file, text, 0644, err,
	    sizeof(err)) == -1) {
		log_errx("metrics: cannot write the textfile %s; the old one "
		    "stays in place: check that its directory exists and is "
		    "writable by this user", err);
		rc = EX_CANTCREAT;
	}
out:
	free(text);
	dr_run_free(&run);
	cfg_free(cfg);
	return rc;
}

const struct cmd cmd_metrics = {
	"metrics", "[--textfile FILE] [--remote]",
	"write health metrics in Prometheus text format",
	"Runs the doctor's checks and prints what they measured in the "
	"Prometheus text format (gauges such as orchestrator_queue_tasks"
	"{status=\"queued\"}, orchestrator_backup_last_success_timestamp_"
	"seconds, orchestrator_database_up, and orchestrator_check_status"
	"{check=ID} with 0 ok, 1 warning, 2 critical, 3 unknown).  With "
	"--textfile the text replaces FILE atomically (mode 0644), for "
	"node_exporter's textfile collector, e.g. /var/lib/prometheus/"
	"node-exporter/orchestrator-agent.prom.  Checks that call Google's "
	"services (secrets, credentials, clock, backup.size, backup.bucket) "
	"run only with --remote, so a timer every minute stays cheap.  Exit "
	"status is 0 whenever the metrics were written, whatever they say.",
	metrics_run,
};
