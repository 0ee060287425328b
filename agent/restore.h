/*
 * restore.h - read a stored backup back: verify it, or restore it.
 */
#ifndef RESTORE_H
#define RESTORE_H

#include <stdio.h>

struct cfg;

/*
 * Check the backup named (or "latest") against its record (size, CRC32C,
 * MD5), decompress it and have pg_restore read every block; with
 * do_restore also restore it into a scratch database, ANALYZE it and report
 * per-table row counts.  Returns a sysexits code (65 when the backup is
 * damaged).
 */
int	restore_verify(const struct cfg *, const char *which, int do_restore,
	    FILE *out);

/*
 * Restore the backup named (or "latest") into database to, creating it
 * if needed.  An existing non-empty database needs force; the configured
 * (live) database also needs live.  Returns a sysexits code.
 */
int	restore_run(const struct cfg *, const char *which, const char *to,
	    int force, int live, FILE *out);

#endif
