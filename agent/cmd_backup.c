/*
 * cmd_backup.c - "backup" and "backup list".
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "backup.h"
#include "cmd.h"

static int
backup_cmd(struct agent *a, int argc, char **argv)
{
	struct cfg	*cfg;
	int		 rc, json = 0;

	if (argc > 1 && strcmp(argv[1], "list") != 0)
		return cmd_usage_error(&cmd_backup, "unknown subcommand '%s'",
		    argv[1]);
	if (argc > 2 && strcmp(argv[2], "--json") == 0 && argc == 3)
		json = 1;
	else if (argc > 2)
		return cmd_usage_error(&cmd_backup, "unexpected argument '%s'",
		    argv[2]);
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	if (argc > 1)
		return backup_list(cfg, stdout, json);
	return backup_run(cfg, stdout);
}

const struct cmd cmd_backup = {
	"backup", "| list [--json]", "back up the database, or list backups",
	"Without arguments: run pg_dump (custom format, uncompressed) as a "
	"child, compress its output ([backup] compression = zstd, gzip or "
	"none; zstd_level) and stream it to [backup] target "
	"(file:///DIR in this build) as "
	"DB/YYYY/MM/DD/DB-YYYYMMDDTHHMMSSZ.dump.zst, computing CRC32C and MD5 "
	"on the way, with a NAME.json record beside it (database, server and "
	"agent versions, sizes, compression, checksums, duration).  pg_dump "
	"gets the connection settings and password through its environment "
	"only.  A failed dump stores nothing.  The last attempt and the last "
	"success are recorded in [agent] state_dir/backup-state.json.\n"
	"list: the backups at the target, oldest first.",
	backup_cmd,
};
