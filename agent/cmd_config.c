/*
 * cmd_config.c - "config check" and "config show".
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "cmd.h"

static int
config_run(struct agent *a, int argc, char **argv)
{
	struct cfg	*cfg;
	int		 rc;

	if (argc != 2)
		return cmd_usage_error(&cmd_config, "expected 'check' or "
		    "'show'");
	if (strcmp(argv[1], "check") != 0 && strcmp(argv[1], "show") != 0)
		return cmd_usage_error(&cmd_config, "unknown subcommand '%s'",
		    argv[1]);
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	if (strcmp(argv[1], "show") == 0)
		cfg_show(cfg, stdout);
	else if (cfg_path(cfg) != NULL)
		printf("configuration OK (%s)\n", cfg_path(cfg));
	else
		printf("configuration OK (no file; defaults and environment)\n");
	return EX_OK;
}

const struct cmd cmd_config = {
	"config", "check|show", "validate or print the configuration",
	"check: read the configuration file and the environment and report "
	"the first problem as FILE:LINE (exit 78), or 'configuration OK'.\n"
	"show: print the effective configuration, each key with where its "
	"value came from (default, FILE:LINE or the environment variable); "
	"secrets are printed as (redacted).",
	config_run,
};
