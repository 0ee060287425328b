/*
 * cmd_restore.c - "restore NAME|latest --to DB".
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cmd.h"
#include "restore.h"

static int
restore_cmd(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{ "live", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg	*cfg;
	const char	*to = NULL, *which = "latest";
	int		 ch, rc, force = 0, live = 0;

	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, "", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 't')
			to = optarg;
		else if (ch == 'f')
			force = 1;
		else if (ch == 'l')
			live = 1;
		else
			return cmd_usage_error(&cmd_restore, "unknown option "
			    "'%s'", argv[optind - 1]);
	}
	if (optind < argc)
		which = argv[optind++];
	if (optind < argc)
		return cmd_usage_error(&cmd_restore, "unexpected argument '%s'",
		    argv[optind]);
	if (to == NULL || *to == '\0')
		return cmd_usage_error(&cmd_restore, "--to DBNAME is required");
	if (live && !force)
		return cmd_usage_error(&cmd_restore, "--live needs --force");
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	return restore_run(cfg, which, to, force, live, stdout);
}

const struct cmd cmd_restore = {
	"restore", "[NAME|latest] --to DBNAME [--force [--live]]",
	"restore a backup into a database",
	"Stream the backup (default the newest) from [backup] target through "
	"its decompressor into pg_restore --dbname DBNAME, creating the "
	"database if it does not exist.  The stored bytes are checked against "
	"the backup's record on the way.  An existing database with tables is "
	"refused unless --force (its objects are then replaced); the live "
	"database this agent is configured for is refused unless --force "
	"--live.",
	restore_cmd,
};
