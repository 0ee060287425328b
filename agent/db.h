/*
 * db.h - PostgreSQL connections and query helpers over libpq.
 */
#ifndef DB_H
#define DB_H

#include <libpq-fe.h>

struct cfg;

/*
 * Connect with the configured settings.  purpose is appended to
 * application_name so pg_stat_activity says which command holds a session.
 * Returns a connection owned by the caller (PQfinish it), or NULL after
 * logging why and what to check.
 */
PGconn		*db_connect(const struct cfg *, const char *purpose);

/* "host:port/dbname" of a connection, for messages; static buffer. */
const char	*db_describe(PGconn *);

/*
 * Run a parameterised statement.  Returns the result owned by the caller
 * (PQclear it) when its status is COMMAND_OK or TUPLES_OK; otherwise logs
 * "what: error" and returns NULL.
 */
PGresult	*db_exec(PGconn *, const char *what, const char *sql, int nparams,
		    const char *const *params);

/* Prepare a named statement on this connection; 0 or -1 logged. */
int		 db_prepare(PGconn *, const char *what, const char *name,
		    const char *sql, int nparams);

/* Like db_exec for a statement prepared with db_prepare. */
PGresult	*db_exec_prepared(PGconn *, const char *what, const char *name,
		    int nparams, const char *const *params);

/* Run a statement that returns nothing; 0 ok, -1 logged error. */
int		 db_cmd(PGconn *, const char *what, const char *sql);

/* Parameterised statement whose rows are not needed; 0 or -1 logged. */
int		 db_cmd_params(PGconn *, const char *what, const char *sql,
		    int nparams, const char *const *params);

/*
 * Like db_connect, but on failure puts libpq's reason in err instead of
 * logging, for callers that retry and log only changes of state.
 */
PGconn		*db_connect_quiet(const struct cfg *, const char *purpose,
		    char *err, size_t errlen);

/* SQLSTATE of a failed result, or "" */
const char	*db_sqlstate(const PGresult *);

/*
 * The advisory lock (classid, objid) that keeps maintenance-class jobs
 * apart: maintain and backup never run beside each other, nor two of
 * either.  Same class as migrate.h's lock, another object.  Advisory locks
 * are per database, so jobs on other databases do not conflict.
 */
#define DB_OPLOCK_CLASS		20289	/* 0x4f41, "OA" */
#define DB_OPLOCK_OBJ		2

/*
 * Try to take the maintenance lock for the rest of conn's session (it is
 * released when the connection closes).  Returns 0 when taken; 1 when
 * another session holds it, with that session described in the caller's
 * holder buffer ("orchestrator-agent backup, server pid 4242, client
 * 10.0.0.5, connected since 2026-11-28T03:15:00Z"); -1 after logging an
 * error.
 */
int		 db_oplock_try(PGconn *, char *holder, size_t holderlen);

#endif
