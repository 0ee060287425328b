/*
 * backup.h - pg_dump streamed through a compressor to a backup target,
 * checksummed on the way, with a state file for doctor and metrics.
 */
#ifndef BACKUP_H
#define BACKUP_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

struct cfg;

/* What a finished backup is, as recorded next to it and in the state. */
struct backup_info {
	char		name[512];	/* object name relative to the target */
	char		database[128];
	char		server_version[32];
	char		compression[8];
	char		crc32c[12];	/* base64, as Cloud Storage writes it */
	char		md5[28];	/* base64 */
	char		created[32];	/* ISO 8601 UTC */
	uint64_t	raw_bytes;	/* pg_dump's output */
	uint64_t	stored_bytes;	/* after compression */
	long		duration_ms;
};

/*
 * Run one backup of the configured database to the configured target.
 * Prints what was stored on out; logs and records failures.  cfg is
 * borrowed.  Returns a sysexits code.
 */
int	backup_run(const struct cfg *, FILE *out);

/* List the backups at the target, oldest first; json selects JSON. */
int	backup_list(const struct cfg *, FILE *out, int json);

/*
 * Delete backups beyond the retention: the newest [backup] keep_last are
 * kept, and so is every backup younger than keep_days (0: off); the
 * newest is never deleted.  With dry_run only say what would go.  Returns
 * a sysexits code.
 */
int	backup_prune(const struct cfg *, int dry_run, FILE *out);

/*
 * Environment for pg_dump/pg_restore: ours minus PG* settings, plus the
 * settings conn (borrowed) connected with, password included, so nothing
 * goes on a command line.  Free with backup_env_free (wipes it).
 */
char	**backup_child_env(PGconn *conn);
void	  backup_env_free(char **);

#endif
