/*
 * bootdb.h - the bootstrap's database step: role, password, database,
 * pg_monitor and schema; and the superuser connection the steps share.
 */
#ifndef BOOTDB_H
#define BOOTDB_H

#include <libpq-fe.h>
#include <stddef.h>

struct auth;
struct bootstrap;

/*
 * Connect to db as b->superuser.  As root over a socket, the connection is
 * made with the superuser's OS uid as effective uid, because Debian's
 * pg_hba lets "postgres" in by peer authentication only.  A server that is
 * (re)starting is waited for.  Returns a connection owned by the caller
 * (PQfinish), or NULL with err filled.
 */
PGconn	*bootdb_super_connect(struct bootstrap *b, const char *db, char *err,
	    size_t errlen);

/* Run one statement with no parameters; 0, or -1 with err filled. */
int	 bootdb_exec(PGconn *, const char *sql, char *err, size_t errlen);

/*
 * Read the password (b->val[BV_SECRET]) from Secret Manager at endpoint
 * (NULL: the default) into b->password.  0, or -1 with err filled.
 */
int	 bootdb_password(struct bootstrap *b, struct auth *auth,
	    const char *endpoint, char *err, size_t errlen);

/*
 * Role (login, password as a SCRAM verifier computed here), database owned
 * by it, pg_monitor; then the migrations, connected as the role with the
 * password the way agent.ini connects.  0, or -1 with err filled naming
 * what failed.
 */
int	 bootdb_database(struct bootstrap *b, char *err, size_t errlen);

/*
 * Does the SCRAM-SHA-256 verifier (as in pg_authid.rolpassword) belong to
 * password?  1 yes, 0 no or not a SCRAM verifier.  Non-ASCII passwords
 * are never matched (the server would SASLprep them), so they are set
 * again on every run.
 */
int	 bootdb_scram_matches(const char *verifier, const char *password);

#endif
