/*
 * cmd_backup.c - "backup", "backup list" and "backup verify".
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "backup.h"
#include "cmd.h"
#include "restore.h"

static int
backup_cmd(struct agent *a, int argc, char **argv)
{
	struct cfg	*cfg;
	const char	*which = "latest";
	int		 rc, i, json = 0, do_restore = 0, dry_run = 0;

	if (argc > 1 && strcmp(argv[1], "list") != 0 &&
	    strcmp(argv[1], "verify") != 0 && strcmp(argv[1], "prune") != 0)
		return cmd_usage_error(&cmd_backup, "unknown subcommand '%s'",
		    argv[1]);
	for (i = 2; i < argc; i++) {
		if (strcmp(argv[1], "list") == 0 && strcmp(argv[i], "--json") ==
		    0)
			json = 1;
		else if (strcmp(argv[1], "prune") == 0 &&
		    strcmp(argv[i], "--dry-run") == 0)
			dry_run = 1;
		else if (strcmp(argv[1], "verify") == 0 &&
		    strcmp(argv[i], "--restore") == 0)
			do_restore = 1;
		else if (strcmp(argv[1], "verify") == 0 && argv[i][0] != '-' &&
		    i == 2)
			which = argv[i];
		else
			return cmd_usage_error(&cmd_backup, "unexpected "
			    "argument '%s'", argv[i]);
	}
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	if (argc == 1)
		return backup_run(cfg, stdout);
	if (strcmp(argv[1], "list") == 0)
		return backup_list(cfg, stdout, json);
	if (strcmp(argv[1], "prune") == 0)
		return backup_prune(cfg, dry_run, stdout);
	return restore_verify(cfg, which, do_restore, stdout);
}

const struct cmd cmd_backup = {
	"backup", "| list [--json] | prune [--dry-run] | verify [NAME|latest] "
	"[--restore]", "back up the database; list, prune or verify backups",
	"Without arguments: run pg_dump (custom format, uncompressed) as a "
	"child, compress its output ([backup] compression = zstd, gzip or "
	"none; zstd_level) and stream it to [backup] target "
	"(gs://BUCKET/PREFIX with a resumable, checksummed upload, or "
	"file:///DIR) as "
	"DB/YYYY/MM/DD/DB-YYYYMMDDTHHMMSSZ.dump.zst, computing CRC32C and MD5 "
	"on the way, with a NAME.json record beside it (database, server and "
	"agent versions, sizes, compression, checksums, duration).  pg_dump "
	"gets the connection settings and password through its environment "
	"only.  A failed dump stores nothing.  The last attempt and the last "
	"success are recorded in [agent] state_dir/backup-state.json.  It holds "
	"the maintenance lock for the whole dump: while a maintain or another "
	"backup runs it stores nothing and exits 75, naming the holder.\n"
	"list: the backups at the target, oldest first.\n"
	"prune: delete backups beyond [backup] keep_last that are also older "
	"than keep_days (when set); the newest is never deleted.\n"
	"verify: compare the stored bytes with the record (size, CRC32C, MD5), "
	"decompress them and have pg_restore read every block (exit 65 when "
	"the backup is damaged); --restore also restores it into a scratch "
	"database, runs ANALYZE, prints per-table row counts and drops it.",
	backup_cmd,
};
