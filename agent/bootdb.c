/*
 * bootdb.c - the bootstrap's database step: the role with the Secret
 * Manager password, its database, pg_monitor, and the migrations run as
 * the role.  The password never reaches argv, logs or the server's log:
 * the SCRAM verifier is computed here and only the verifier is sent, and
 * a role whose verifier already matches is left alone.
 *
 * Pointers passed to functions here are borrowed for the call unless a
 * comment says otherwise.
 */
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bootdb.h"
#include "bootstrap.h"
#include "hash.h"
#include "migrate.h"
#include "secret.h"

#define BOOT_CONNECT_TRIES	60	/* a second apart: a restarting server */
#define BOOT_LOGIN_TRIES	10	/* 300 ms apart: a reload in flight */

static void
trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/*
 * Connect to db as the superuser.  As root over a socket, the connection
 * is made with the superuser's OS uid as effective uid, because Debian's
 * pg_hba lets "postgres" in by peer authentication only.  A server that is
 * (re)starting is waited for.  Returns a connection owned by the caller,
 * or NULL with err filled.
 */
PGconn *
bootdb_super_connect(struct bootstrap *b, const char *db, char *err, size_t errlen)
{
	const char	*k[] = { "host", "port", "dbname", "user",
	    "application_name", "connect_timeout", NULL };
	const char	*v[] = { b->pg_host, b->pg_port, db, b->superuser,
	    "orchestrator-agent bootstrap", "10", NULL };
	struct passwd	*pw = NULL;
	PGconn		*conn = NULL;
	PGPing		 ping;
	int		 i;

	if (geteuid() == 0 && b->pg_host[0] == '/')
		pw = getpwnam(b->superuser);
	for (i = 0; i < BOOT_CONNECT_TRIES; i++) {
		PQfinish(conn);
		if (pw != NULL && seteuid(pw->pw_uid) == -1) {
			snprintf(err, errlen, "cannot act as the OS user %s "
			    "for peer authentication: %s", b->superuser,
			    strerror(errno));
			return NULL;
		}
		conn = PQconnectdbParams(k, v, 0);
		ping = PQpingParams(k, v, 0);
		if (pw != NULL && seteuid(0) == -1) {
			PQfinish(conn);
			snprintf(err, errlen, "cannot return to root after "
			    "connecting: %s", strerror(errno));
			return NULL;
		}
		if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
			return conn;
		if (ping != PQPING_NO_RESPONSE && ping != PQPING_REJECT)
			break;
		sleep(1);
	}
	snprintf(err, errlen, "cannot connect to PostgreSQL at %s port %s as "
	    "%s: %s; check that the cluster runs (pg_lsclusters)", b->pg_host,
	    b->pg_port, b->superuser, conn ? PQerrorMessage(conn) :
	    "out of memory");
	trim(err);
	PQfinish(conn);
	return NULL;
}

/* The first value of a one-parameter query; caller frees; NULL + err. */
static char *
query1(PGconn *conn, const char *sql, const char *param, char *err,
    size_t errlen)
{
	PGresult	*res;
	char		*v = NULL;

	res = PQexecParams(conn, sql, param ? 1 : 0, NULL, &param, NULL, NULL,
	    0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
		trim(err);
	} else {
		v = strdup(PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ?
		    PQgetvalue(res, 0, 0) : "");
		if (v == NULL)
			snprintf(err, errlen, "out of memory");
	}
	PQclear(res);
	return v;
}

/* Run one statement built by the caller; 0 or -1 with err. */
int
bootdb_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult	*res = PQexec(conn, sql);
	int		 rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK &&
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
		trim(err);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Restart with restart_cmd (shell words, no shell) or pg_ctlcluster. */

int
bootdb_password(struct bootstrap *b, struct auth *auth,
    const char *endpoint, char *err, size_t errlen)
{
	char why[1024];

	secret_free(b->password);
	b->password = NULL;
	if (secret_access(auth, endpoint, b->val[BV_SECRET], &b->password,
	    why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	if (b->password[0] == '\0') {
		snprintf(err, errlen, "secret: %s is empty; add a version with "
		    "the password", b->val[BV_SECRET]);
		return -1;
	}
	return 0;
}

int
bootdb_scram_matches(const char *verifier, const char *password)
{
	unsigned char	 salt[128], stored[64], server[64], salted[32];
	unsigned char	 ck[EVP_MAX_MD_SIZE], sk[EVP_MAX_MD_SIZE], st[32];
	unsigned int	 ckl = 0, skl = 0;
	char		 b64[3][200], *end;
	const char	*p;
	long		 iter, saltlen, storedlen, serverlen;
	int		 ok = 0;

	for (p = password; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			return 0;
	if (strncmp(verifier, "SCRAM-SHA-256$", 14) != 0)
		return 0;
	iter = strtol(verifier + 14, &end, 10);
	if (*end != ':' || iter < 1 || iter > 100000000 ||
	    sscanf(end + 1, "%199[^$]$%199[^:]:%199s", b64[0], b64[1],
	    b64[2]) != 3)
		return 0;
	saltlen = hash_unbase64(b64[0], salt, sizeof(salt));
	storedlen = hash_unbase64(b64[1], stored, sizeof(stored));
	serverlen = hash_unbase64(b64[2], server, sizeof(server));
	if (saltlen <= 0 || storedlen != 32 || serverlen != 32)
		return 0;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt,
	    (int)saltlen, (int)iter, EVP_sha256(), sizeof(salted),
	    salted) != 1 ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
	    (const unsigned char *)"Client Key", 10, ck, &ckl) == NULL ||
	    HMAC(EVP_sha256(), salted, sizeof(salted),
	    (const unsigned char *)"Server Key", 10, sk, &skl) == NULL ||
	    ckl != 32 || skl != 32)
		goto out;
	SHA256(ck, 32, st);
	ok = CRYPTO_memcmp(st, stored, 32) == 0 &&
	    CRYPTO_memcmp(sk, server, 32) == 0;
out:
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(ck, sizeof(ck));
	OPENSSL_cleanse(sk, sizeof(sk));
	return ok;
}

/*
 * "CREATE ROLE r LOGIN PASSWORD 'v'" or "ALTER ROLE r PASSWORD 'v'" (verb
 * and rest given) with the verifier computed here.  0 or -1 with err.
 */
static int
set_password(PGconn *conn, const char *verb, const char *ident,
    const char *user, const char *password, char *err, size_t errlen)
{
	char	*ver, *lit = NULL, *sql = NULL;
	int	 rc = -1;

	ver = PQencryptPasswordConn(conn, password, user, "scram-sha-256");
	if (ver == NULL) {
		snprintf(err, errlen, "computing the SCRAM verifier: %s",
		    PQerrorMessage(conn));
		trim(err);
		return -1;
	}
	lit = PQescapeLiteral(conn, ver, strlen(ver));
	if (lit == NULL || asprintf(&sql, "%s ROLE %s %sPASSWORD %s", verb,
	    ident, strcmp(verb, "CREATE") == 0 ? "LOGIN CREATEDB " : "",
	    lit) == -1) {
		sql = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = bootdb_exec(conn, sql, err, errlen);
out:
	free(sql);
	PQfreemem(lit);
	PQfreemem(ver);
	return rc;
}

/* Role with login and the password; 0 or -1 with err. */
static int
ensure_role(struct bootstrap *b, PGconn *conn, const char *ident,
    char *err, size_t errlen)
{
	const char	*user = b->val[BV_DB_USER];
	const char	*p[1] = { user };
	PGresult	*res;
	char		 sql[200];
	int		 found, login, same, createdb, rc = -1;

	res = PQexecParams(conn, "SELECT rolcanlogin, COALESCE(rolpassword, "
	    "''), rolcreatedb FROM pg_authid WHERE rolname = $1", 1, NULL, p,
	    NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(conn));
		trim(err);
		goto out;
	}
	found = PQntuples(res) == 1;
	if (!found) {
		if (set_password(conn, "CREATE", ident, user, b->password,
		    err, errlen) == -1)
			goto out;
		fprintf(b->out, "database: role %s created with the password "
		    "from %s\n", user, b->val[BV_SECRET]);
		rc = 0;
		goto out;
	}
	login = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	same = bootdb_scram_matches(PQgetvalue(res, 0, 1), b->password);
	if (!login) {
		snprintf(sql, sizeof(sql), "ALTER ROLE %s LOGIN", ident);
		if (bootdb_exec(conn, sql, err, errlen) == -1)
			goto out;
		fprintf(b->out, "database: role %s may log in again\n", user);
	}
	/* restore --to NEWDB and verify --restore create databases. */
	createdb = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	if (!createdb) {
		snprintf(sql, sizeof(sql), "ALTER ROLE %s CREATEDB", ident);
		if (bootdb_exec(conn, sql, err, errlen) == -1)
			goto out;
		fprintf(b->out, "database: role %s may create databases (for "
		    "restores and verify --restore)\n", user);
	}
	if (!same) {
		if (set_password(conn, "ALTER", ident, user, b->password, err,
		    errlen) == -1)
			goto out;
		fprintf(b->out, "database: role %s: password set from %s\n",
		    user, b->val[BV_SECRET]);
	} else if (login && createdb) {
		fprintf(b->out, "database: role %s exists with this password; "
		    "unchanged\n", user);
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Database owned by the role, and the role in pg_monitor. */
static int
ensure_db(struct bootstrap *b, PGconn *conn, const char *ident,
    const char *dbident, char *err, size_t errlen)
{
	char	 sql[300], *owner = NULL, *member = NULL;
	int	 rc = -1;

	owner = query1(conn, "SELECT pg_get_userbyid(datdba) FROM pg_database "
	    "WHERE datname = $1", b->val[BV_DB_NAME], err, errlen);
	if (owner == NULL)
		goto out;
	if (*owner == '\0') {
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s",
		    dbident, ident);
		if (bootdb_exec(conn, sql, err, errlen) == -1)
			goto out;
		fprintf(b->out, "database: %s created, owned by %s\n",
		    b->val[BV_DB_NAME], b->val[BV_DB_USER]);
	} else if (strcmp(owner, b->val[BV_DB_USER]) != 0) {
		snprintf(sql, sizeof(sql), "ALTER DATABASE %s OWNER TO %s",
		    dbident, ident);
		if (bootdb_exec(conn, sql, err, errlen) == -1)
			goto out;
		fprintf(b->out, "database: %s now owned by %s (was %s)\n",
		    b->val[BV_DB_NAME], b->val[BV_DB_USER], owner);
	} else {
		fprintf(b->out, "database: %s exists, owned by %s; unchanged\n",
		    b->val[BV_DB_NAME], b->val[BV_DB_USER]);
	}
	/* doctor reads pg_stat_activity of every session. */
	member = query1(conn, "SELECT pg_has_role($1, 'pg_monitor', 'MEMBER')",
	    b->val[BV_DB_USER], err, errlen);
	if (member == NULL)
		goto out;
	if (strcmp(member, "t") != 0) {
		snprintf(sql, sizeof(sql), "GRANT pg_monitor TO %s", ident);
		if (bootdb_exec(conn, sql, err, errlen) == -1)
			goto out;
		fprintf(b->out, "database: granted pg_monitor to %s\n",
		    b->val[BV_DB_USER]);
	} else {
		fprintf(b->out, "database: %s has pg_monitor; unchanged\n",
		    b->val[BV_DB_USER]);
	}
	rc = 0;
out:
	free(owner);
	free(member);
	return rc;
}

/*
 * Log in as the role the way agent.ini will (socket, password), which
 * also proves pg_hba and the password; a reload may still be in flight.
 */
static PGconn *
role_connect(struct bootstrap *b, char *err, size_t errlen)
{
	const char	*k[] = { "host", "port", "dbname", "user", "password",
	    "application_name", "connect_timeout", NULL };
	const char	*v[] = { b->pg_host, b->pg_port, b->val[BV_DB_NAME],
	    b->val[BV_DB_USER], b->password, "orchestrator-agent bootstrap",
	    "10", NULL };
	PGconn		*conn = NULL;
	int		 i;

	for (i = 0; i < BOOT_LOGIN_TRIES; i++) {
		PQfinish(conn);
		if (i > 0)
			usleep(300000);
		conn = PQconnectdbParams(k, v, 0);
		if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
			return conn;
	}
	snprintf(err, errlen, "logging in as %s to %s with the password from "
	    "%s: %s; check the pg_hba.conf block", b->val[BV_DB_USER],
	    b->val[BV_DB_NAME], b->val[BV_SECRET], conn ?
	    PQerrorMessage(conn) : "out of memory");
	trim(err);
	PQfinish(conn);
	return NULL;
}

int
bootdb_database(struct bootstrap *b, char *err, size_t errlen)
{
	const char	*user = b->val[BV_DB_USER], *db = b->val[BV_DB_NAME];
	PGconn		*conn;
	char		*ident = NULL, *dbident = NULL, why[1024];
	int		 rc = -1;

	conn = bootdb_super_connect(b, "postgres", err, errlen);
	if (conn == NULL)
		return -1;
	ident = PQescapeIdentifier(conn, user, strlen(user));
	dbident = PQescapeIdentifier(conn, db, strlen(db));
	if (ident == NULL || dbident == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (ensure_role(b, conn, ident, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "role %s: %s", user, why);
		goto out;
	}
	if (ensure_db(b, conn, ident, dbident, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "database %s: %s", db, why);
		goto out;
	}
	PQfinish(conn);
	conn = role_connect(b, err, errlen);
	if (conn == NULL)
		goto out;
	if (migrate_apply(conn, b->out) != 0) {
		snprintf(err, errlen, "schema migrations failed (the reason is "
		    "logged above)");
		goto out;
	}
	rc = 0;
out:
	PQfreemem(ident);
	PQfreemem(dbident);
	PQfinish(conn);
	return rc;
}

