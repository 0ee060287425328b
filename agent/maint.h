/*
 * maint.h - the steps of "maintain": rescue abandoned tasks, delete old
 * ones in small batches, vacuum the queue tables, rebuild bloated indexes.
 */
#ifndef MAINT_H
#define MAINT_H

#include <json-c/json.h>
#include <libpq-fe.h>

struct cfg;

/* In the order a full run takes them. */
enum maint_step {
	MAINT_RESCUE,
	MAINT_CLEANUP,
	MAINT_VACUUM,
	MAINT_REINDEX,
	MAINT_NSTEPS
};

/* What one step did. */
struct maint_result {
	int		 rc;		/* EX_OK, or the exit code of its failure */
	char		 line[2048];	/* "cleanup: deleted ..." (no duration) */
	char		 error[1024];	/* on failure: what failed; else "" */
	json_object	*facts;		/* counts for --json and the state file;
					   owned, freed by maint_result_clear */
};

/* "rescue", "cleanup", ...; static strings. */
const char	*maint_step_name(enum maint_step);

/* The step called name (borrowed), or -1. */
int		 maint_step_find(const char *name);

/*
 * Run one step on conn (borrowed; its session timeouts are changed) with
 * cfg (borrowed).  With dry_run nothing is changed and the line says what
 * would be done.  Failures are logged with what to do.  Fills r (clear it
 * first with maint_result_clear or zero it) and returns r->rc.
 */
int		 maint_step_run(enum maint_step, PGconn *, const struct cfg *,
		    int dry_run, struct maint_result *r);

/* Free r's facts and reset it.  NULL-tolerant. */
void		 maint_result_clear(struct maint_result *r);

#endif
