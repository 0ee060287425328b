/*
 * db.c - connections built from the key table, never from a string we
 * paste together, so no value can inject another conninfo keyword.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cfg.h"
#include "db.h"
#include "log.h"
#include "secret.h"

#define DB_MAXPARAMS	16

/*
 * A key is passed to libpq when it has a value.  With a url, defaults and
 * libpq's own PG* variables are not passed, so they do not override the
 * url's parts (libpq still applies PG* to what the url leaves out); keys
 * set in the file or by POSTGRES_* override the url.
 */
static void
add(const struct cfg *cfg, enum cfg_id id, const char *kw, int have_url,
    const char **k, const char **v, int *n)
{
	const char *val = cfg_str(cfg, id);

	if (val == NULL || *val == '\0')
		return;
	if (have_url && cfg_source(cfg, id) <= CFG_SRC_ENV_LOW)
		return;
	k[*n] = kw;
	v[*n] = val;
	(*n)++;
}

/* libpq messages span lines ("...failed: x\n\tIs the server..."): join. */
static char *
one_line(char *msg)
{
	char	*r, *w;
	size_t	 len;

	for (r = w = msg; *r != '\0'; r++) {
		if (*r == '\n' || *r == '\t') {
			if (w > msg && w[-1] != ' ')
				*w++ = ' ';
			continue;
		}
		*w++ = *r;
	}
	*w = '\0';
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == ' ')
		msg[--len] = '\0';
	return msg;
}

/*
 * The password from Secret Manager, fetched once per process when
 * [database] password_secret is set and no other password was given.
 * Kept in memory only; the process owns it.
 */
static char *secret_pw;

static int
resolve_secret(const struct cfg *cfg, char *err, size_t errlen)
{
	struct auth_opts	 ao;
	struct auth		*auth;
	char			 why[700];
	int			 rc;

	if (secret_pw != NULL)
		return 0;
	memset(&ao, 0, sizeof(ao));
	if (*cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE) != '\0')
		ao.credentials_file = cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE);
	ao.metadata_host = cfg_str(cfg, CFG_GCS_METADATA_HOST);
	auth = auth_new(&ao, why, sizeof(why));
	if (auth == NULL) {
		snprintf(err, errlen, "database.password_secret: %s", why);
		return -1;
	}
	rc = secret_access(auth, cfg_str(cfg, CFG_GCS_SECRETMANAGER_ENDPOINT),
	    cfg_str(cfg, CFG_DB_PASSWORD_SECRET), &secret_pw, why,
	    sizeof(why));
	auth_free(auth);
	if (rc == -1) {
		snprintf(err, errlen, "database.password_secret: %s", why);
		return -1;
	}
	return 0;
}

PGconn *
db_connect_quiet(const struct cfg *cfg, const char *purpose, char *err,
    size_t errlen)
{
	const char	*k[DB_MAXPARAMS + 1], *v[DB_MAXPARAMS + 1];
	const char	*url = cfg_str(cfg, CFG_DB_URL);
	const char	*tp[2];
	char		 appname[64], timeout[16], stmt[32], lockt[32];
	PGconn		*conn = NULL;
	PGresult	*res;
	int		 n = 0, have_url = url[0] != '\0';

	if (have_url) {
		k[n] = "dbname";	/* expanded: expand_dbname = 1 */
		v[n++] = url;
	}
	add(cfg, CFG_DB_HOST, "host", have_url, k, v, &n);
	add(cfg, CFG_DB_PORT, "port", have_url, k, v, &n);
	add(cfg, CFG_DB_NAME, "dbname", have_url, k, v, &n);
	add(cfg, CFG_DB_USER, "user", have_url, k, v, &n);
	add(cfg, CFG_DB_PASSWORD, "password", have_url, k, v, &n);
	if (*cfg_str(cfg, CFG_DB_PASSWORD_SECRET) != '\0' &&
	    *cfg_str(cfg, CFG_DB_PASSWORD) == '\0') {
		if (resolve_secret(cfg, err, errlen) == -1)
			return NULL;
		k[n] = "password";
		v[n++] = secret_pw;
	}
	add(cfg, CFG_DB_SSLMODE, "sslmode", have_url, k, v, &n);
	add(cfg, CFG_DB_SSLROOTCERT, "sslrootcert", have_url, k, v, &n);
	snprintf(appname, sizeof(appname), "%s%s%s",
	    cfg_str(cfg, CFG_DB_APPLICATION_NAME), purpose ? " " : "",
	    purpose ? purpose : "");
	k[n] = "application_name";
	v[n++] = appname;
	snprintf(timeout, sizeof(timeout), "%lld",
	    cfg_int(cfg, CFG_DB_CONNECT_TIMEOUT));
	k[n] = "connect_timeout";
	v[n++] = timeout;
	/* Notice a dead peer (VM gone, network cut) within about a minute. */
	k[n] = "keepalives_idle";
	v[n++] = "30";
	k[n] = "keepalives_interval";
	v[n++] = "10";
	k[n] = "keepalives_count";
	v[n++] = "3";
	k[n] = NULL;
	v[n] = NULL;

	conn = PQconnectdbParams(k, v, 1);
	if (conn == NULL) {
		snprintf(err, errlen, "out of memory creating a connection");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to database '%s' as user "
		    "'%s' (host %s, port %s): %s", PQdb(conn) ? PQdb(conn) : "?",
		    PQuser(conn) ? PQuser(conn) : "?",
		    PQhost(conn) && *PQhost(conn) ? PQhost(conn) : "(socket)",
		    PQport(conn) ? PQport(conn) : "?",
		    one_line(PQerrorMessage(conn)));
		PQfinish(conn);
		return NULL;
	}
	/*
	 * Timeouts go in with SET rather than the startup packet's "options",
	 * which connection poolers such as pgbouncer refuse.
	 */
	snprintf(stmt, sizeof(stmt), "%lld",
	    cfg_int(cfg, CFG_DB_STATEMENT_TIMEOUT_MS));
	snprintf(lockt, sizeof(lockt), "%lld",
	    cfg_int(cfg, CFG_DB_LOCK_TIMEOUT_MS));
	tp[0] = stmt;
	tp[1] = lockt;
	res = PQexecParams(conn, "SELECT set_config('statement_timeout', $1, "
	    "false), set_config('lock_timeout', $2, false)", 2, NULL, tp, NULL,
	    NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "setting timeouts: %s",
		    one_line(PQerrorMessage(conn)));
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	log_debug("db: connected to %s", db_describe(conn));
	return conn;
}

PGconn *
db_connect(const struct cfg *cfg, const char *purpose)
{
	char	 err[1024];
	PGconn	*conn;

	conn = db_connect_quiet(cfg, purpose, err, sizeof(err));
	if (conn == NULL)
		log_errx("db: %s; check that PostgreSQL is running and that "
		    "[database] settings are right (orchestrator-agent config "
		    "show)", err);
	return conn;
}

const char *
db_describe(PGconn *conn)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s:%s/%s",
	    PQhost(conn) && *PQhost(conn) ? PQhost(conn) : "(socket)",
	    PQport(conn) ? PQport(conn) : "?", PQdb(conn) ? PQdb(conn) : "?");
	return buf;
}

const char *
db_sqlstate(const PGresult *res)
{
	const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}

/* The result if it succeeded; otherwise log "what: error" and NULL. */
static PGresult *
checked(PGconn *conn, PGresult *res, const char *what)
{
	char *msg;

	if (res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK))
		return res;
	msg = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(conn);
	log_errx("%s: %s", what, one_line(msg));
	PQclear(res);
	return NULL;
}

PGresult *
db_exec(PGconn *conn, const char *what, const char *sql, int nparams,
    const char *const *params)
{
	return checked(conn, PQexecParams(conn, sql, nparams, NULL, params,
	    NULL, NULL, 0), what);
}

PGresult *
db_exec_prepared(PGconn *conn, const char *what, const char *name,
    int nparams, const char *const *params)
{
	return checked(conn, PQexecPrepared(conn, name, nparams, params, NULL,
	    NULL, 0), what);
}

int
db_prepare(PGconn *conn, const char *what, const char *name, const char *sql,
    int nparams)
{
	PGresult *res = checked(conn, PQprepare(conn, name, sql, nparams, NULL),
	    what);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
db_cmd(PGconn *conn, const char *what, const char *sql)
{
	PGresult *res = db_exec(conn, what, sql, 0, NULL);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
db_cmd_params(PGconn *conn, const char *what, const char *sql, int nparams,
    const char *const *params)
{
	PGresult *res = db_exec(conn, what, sql, nparams, params);

	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* Who holds the maintenance lock, from pg_locks and pg_stat_activity. */
static const char holder_sql[] =
	"SELECT coalesce(nullif(a.application_name, ''), '(no application "
	"name)'), l.pid, coalesce(a.client_hostname, host(a.client_addr), "
	"'local socket'), coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', "
	"'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '?') "
	"FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
	"WHERE l.locktype = 'advisory' AND l.granted "
	"AND l.database = (SELECT oid FROM pg_database "
	"WHERE datname = current_database()) "
	"AND l.classid = $1::oid AND l.objid = $2::oid AND l.objsubid = 2 "
	"LIMIT 1";

int
db_oplock_try(PGconn *conn, char *holder, size_t holderlen)
{
	const char	*p[2];
	char		 cls[16], obj[16];
	PGresult	*res;
	int		 taken;

	snprintf(cls, sizeof(cls), "%d", DB_OPLOCK_CLASS);
	snprintf(obj, sizeof(obj), "%d", DB_OPLOCK_OBJ);
	p[0] = cls;
	p[1] = obj;
	res = db_exec(conn, "lock: taking the maintenance lock",
	    "SELECT pg_try_advisory_lock($1::int, $2::int)", 2, p);
	if (res == NULL)
		return -1;
	taken = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (taken)
		return 0;
	/* Best effort: the holder may be gone by now. */
	snprintf(holder, holderlen, "the holder has just finished; try again");
	res = db_exec(conn, "lock: finding who holds the maintenance lock",
	    holder_sql, 2, p);
	if (res != NULL && PQntuples(res) == 1)
		snprintf(holder, holderlen, "%s, server pid %s, client %s, "
		    "connected since %s", PQgetvalue(res, 0, 0),
		    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
		    PQgetvalue(res, 0, 3));
	PQclear(res);
	return 1;
}
