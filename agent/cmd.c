/*
 * cmd.c - the command table (iproute2's cmds[]), help generated from it,
 * and the help and version commands that read it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "cmd.h"
#include "log.h"
#include "version.h"

static const struct cmd *const cmds[] = {
	&cmd_schema,
	&cmd_worker,
	&cmd_run,
	&cmd_backup,
	&cmd_restore,
	&cmd_maintain,
	&cmd_config,
	&cmd_enqueue,
	&cmd_status,
	&cmd_stats,
	&cmd_list_tasks,
	&cmd_cancel,
	&cmd_retry,
	&cmd_reset_stuck,
	&cmd_doctor,
	&cmd_metrics,
	&cmd_bootstrap,
	&cmd_help,
	&cmd_version,
};
#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

static const char exit_codes[] =
    "exit status:\n"
    "  0   success\n"
    "  64  usage error (bad command line)\n"
    "  65  bad data (invalid input, schema drift, a damaged backup)\n"
    "  66  an input file or backup cannot be found or read\n"
    "  69  service unavailable (database unreachable, unknown task)\n"
    "  70  internal error\n"
    "  71  operating-system step failed (bootstrap: disk, data directory,\n"
    "      systemd; run: a child cannot start)\n"
    "  72  a library loaded at first use is missing (libcurl, libmicrohttpd,\n"
    "      libzstd; the message names the package)\n"
    "  73  a file could not be created (bootstrap: agent.ini; metrics\n"
    "      --textfile)\n"
    "  74  output could not be written\n"
    "  75  temporary failure (lock or connection lost, maintain or backup\n"
    "      already running; try again)\n"
    "  78  configuration error\n"
    "doctor uses the Nagios codes instead: 0 ok, 1 warning, 2 critical, 3 "
    "unknown.\n";

int
agent_cfg(struct agent *a, struct cfg **out)
{
	char err[1024];

	if (a->cfg == NULL) {
		a->cfg = cfg_load(a->config_path, err, sizeof(err));
		if (a->cfg == NULL) {
			log_errx("config: %s", err);
			return EX_CONFIG;
		}
	}
	*out = a->cfg;
	return EX_OK;
}

void
agent_free(struct agent *a)
{
	if (a == NULL)
		return;
	cfg_free(a->cfg);
	a->cfg = NULL;
}

const struct cmd *
cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i]->name, name) == 0)
			return cmds[i];
	return NULL;
}

void
cmd_usage(FILE *fp, const struct cmd *c)
{
	fprintf(fp, "usage: orchestrator-agent [-c FILE] [-v|-q] %s%s%s\n",
	    c->name, *c->usage ? " " : "", c->usage);
}

void
cmd_list(FILE *fp)
{
	size_t i;

	fprintf(fp, "usage: orchestrator-agent [-c FILE] [-v|-q] COMMAND "
	    "[ARGS]\n       orchestrator-agent --version\n\n"
	    "options:\n"
	    "  -c FILE   configuration file (default $%s, then %s)\n"
	    "  -v        more log output (debug)\n"
	    "  -q        errors only\n\ncommands:\n", CFG_ENV_PATH,
	    CFG_DEFAULT_PATH);
	for (i = 0; i < NCMDS; i++)
		fprintf(fp, "  %-12s %s\n", cmds[i]->name, cmds[i]->summary);
	fprintf(fp, "\n'orchestrator-agent help COMMAND' describes a command."
	    "\n\n%s", exit_codes);
}

int
cmd_usage_error(const struct cmd *c, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_errx("%s: %s", c->name, msg);
	cmd_usage(stderr, c);
	return EX_USAGE;
}

static int
wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

static void
cmd_describe(FILE *fp, const struct cmd *c)
{
	cmd_usage(fp, c);
	fprintf(fp, "\n%s\n\n%s", c->help, exit_codes);
}

int
cmd_dispatch(struct agent *a, int argc, char **argv)
{
	const struct cmd *c;

	c = cmd_find(argv[0]);
	if (c == NULL) {
		log_errx("unknown command '%s'; 'orchestrator-agent help' "
		    "lists the commands", argv[0]);
		return EX_USAGE;
	}
	if (wants_help(argc, argv)) {
		cmd_describe(stdout, c);
		return EX_OK;
	}
	return c->run(a, argc, argv);
}

static int
help_run(struct agent *a, int argc, char **argv)
{
	const struct cmd *c;

	(void)a;
	if (argc == 1) {
		cmd_list(stdout);
		return EX_OK;
	}
	if (argc > 2)
		return cmd_usage_error(&cmd_help, "too many arguments");
	c = cmd_find(argv[1]);
	if (c == NULL)
		return cmd_usage_error(&cmd_help, "unknown command '%s'",
		    argv[1]);
	cmd_describe(stdout, c);
	return EX_OK;
}

static int
version_run(struct agent *a, int argc, char **argv)
{
	(void)a;
	(void)argv;
	if (argc > 1)
		return cmd_usage_error(&cmd_version, "takes no arguments");
	printf("orchestrator-agent %s\n", agent_version);
	return EX_OK;
}

const struct cmd cmd_help = {
	"help", "[COMMAND]", "describe the commands",
	"Without COMMAND, list every command; with one, describe it.  "
	"'COMMAND --help' does the same.",
	help_run,
};

const struct cmd cmd_version = {
	"version", "", "print the agent's version",
	"Print the version; the same as 'orchestrator-agent --version'.",
	version_run,
};
