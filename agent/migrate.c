/*
 * migrate.c - apply the embedded migrations, once each, under a lock.
 *
 * Several agents may boot at once (cloud-init, systemd units, a second VM):
 * a session-level advisory lock serialises them, and whoever gets it second
 * finds nothing left to apply.  Each migration runs in its own transaction
 * together with its schema_migrations row, so a failure leaves the database
 * at the previous version, never half-way.
 */
#include <json-c/json.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "db.h"
#include "log.h"
#include "migrate.h"
#include "version.h"

#define XSTR(x)	STR(x)
#define STR(x)	#x
#define LOCK_ARGS	"(" XSTR(MIGRATE_LOCK_CLASS) ", " XSTR(MIGRATE_LOCK_OBJ) ")"

struct applied {
	int	version;
	char	name[128];
	char	checksum[65];
	char	applied_at[32];
};

static const char create_table_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version integer PRIMARY KEY,"
	" name text NOT NULL,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now(),"
	" agent_version text,"
	" duration_ms integer)";

void
migrate_checksum(const struct migration *m, char hex[65])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0, i;

	if (EVP_Digest(m->sql, m->len, md, &mdlen, EVP_sha256(), NULL) != 1)
		fatalx("schema: sha-256 failed");
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	hex[64] = '\0';
}

static const struct migration *
find_migration(int version)
{
	size_t i;

	for (i = 0; i < migrate_count; i++)
		if (migrate_list[i].version == version)
			return &migrate_list[i];
	return NULL;
}

static void
notice_debug(void *arg, const char *msg)
{
	(void)arg;
	log_debug("db: %.*s", (int)strcspn(msg, "\n"), msg);
}

/*
 * Read schema_migrations into *out (caller frees).  A missing table means
 * nothing is applied yet.  Returns count or -1 after logging.
 */
static int
load_applied(PGconn *conn, struct applied **out)
{
	PGresult	*res = NULL;
	struct applied	*a = NULL;
	int		 n = -1, i;

	*out = NULL;
	res = db_exec(conn, "schema: reading schema_migrations",
	    "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL);
	if (res == NULL)
		goto out;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		n = 0;
		goto out;
	}
	PQclear(res);
	res = db_exec(conn, "schema: reading schema_migrations",
	    "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE "
	    "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations "
	    "ORDER BY version", 0, NULL);
	if (res == NULL)
		goto out;
	a = calloc((size_t)PQntuples(res) + 1, sizeof(*a));
	if (a == NULL)
		fatal("schema: calloc");
	for (i = 0; i < PQntuples(res); i++) {
		a[i].version = atoi(PQgetvalue(res, i, 0));
		snprintf(a[i].name, sizeof(a[i].name), "%s",
		    PQgetvalue(res, i, 1));
		snprintf(a[i].checksum, sizeof(a[i].checksum), "%s",
		    PQgetvalue(res, i, 2));
		snprintf(a[i].applied_at, sizeof(a[i].applied_at), "%s",
		    PQgetvalue(res, i, 3));
	}
	n = PQntuples(res);
	*out = a;
	a = NULL;
out:
	free(a);
	PQclear(res);
	return n;
}

/*
 * Refuse when an applied migration is unknown or was edited afterwards;
 * -1 with err saying which and what to do.
 */
static int
check_drift(const struct applied *a, int n, char *err, size_t errlen)
{
	const struct migration	*m;
	char			 sum[65];
	int			 i;

	for (i = 0; i < n; i++) {
		m = find_migration(a[i].version);
		if (m == NULL) {
			snprintf(err, errlen, "the database has migration "
			    "%04d_%s applied, which this agent (%s) does not "
			    "know; a newer agent applied it: upgrade "
			    "orchestrator-agent on this host", a[i].version,
			    a[i].name, agent_version);
			return -1;
		}
		migrate_checksum(m, sum);
		if (strcmp(sum, a[i].checksum) != 0) {
			snprintf(err, errlen, "migration %s was applied with "
			    "checksum %.12s but this agent's copy has %.12s: the "
			    "file was edited after it was applied; restore the "
			    "original and put the change in a new migration",
			    m->file, a[i].checksum, sum);
			return -1;
		}
	}
	return 0;
}

static int
is_applied(const struct applied *a, int n, int version)
{
	int i;

	for (i = 0; i < n; i++)
		if (a[i].version == version)
			return 1;
	return 0;
}

int
migrate_check(PGconn *conn, char *err, size_t errlen)
{
	struct applied	*a = NULL;
	int		 n, pending = 0;
	size_t		 i;

	n = load_applied(conn, &a);
	if (n == -1) {
		snprintf(err, errlen, "cannot read schema_migrations: %s",
		    PQerrorMessage(conn));
		return -1;
	}
	if (check_drift(a, n, err, errlen) == -1) {
		free(a);
		return -1;
	}
	for (i = 0; i < migrate_count; i++)
		if (!is_applied(a, n, migrate_list[i].version))
			pending++;
	free(a);
	return pending;
}

int
migrate_pending(PGconn *conn)
{
	char	err[512];
	int	n;

	n = migrate_check(conn, err, sizeof(err));
	if (n == -1)
		log_errx("schema: %s", err);
	return n;
}

/* Line of the failing statement inside a migration, from the error position. */
static int
error_line(const struct migration *m, const PGresult *res)
{
	const char	*pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	long		 p, i;
	int		 line = 1;

	if (pos == NULL)
		return 0;
	p = strtol(pos, NULL, 10);
	for (i = 0; i < p - 1 && (size_t)i < m->len; i++)
		if (m->sql[i] == '\n')
			line++;
	return line;
}

static long
elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* Apply one migration in its own transaction. */
static int
apply_one(PGconn *conn, const struct migration *m, FILE *out)
{
	struct timespec	 t0;
	PGresult	*res = NULL;
	const char	*params[5];
	char		 sum[65], ver[16], dur[24];
	int		 rc = EX_DATAERR, line;

	migrate_checksum(m, sum);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (db_cmd(conn, "schema: begin", "BEGIN") == -1 ||
	    db_cmd(conn, "schema: begin", "SET LOCAL statement_timeout = 0") ==
	    -1)
		goto out;
	res = PQexec(conn, m->sql);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		line = res ? error_line(m, res) : 0;
		log_errx("schema: migration %s failed%s%.0d: %s", m->file,
		    line ? " at line " : "", line,
		    strtok(res ? PQresultErrorMessage(res) :
		    PQerrorMessage(conn), "\n"));
		goto out;
	}
	PQclear(res);
	res = NULL;
	snprintf(ver, sizeof(ver), "%d", m->version);
	snprintf(dur, sizeof(dur), "%ld", elapsed_ms(&t0));
	params[0] = ver;
	params[1] = m->name;
	params[2] = sum;
	params[3] = agent_version;
	params[4] = dur;
	res = db_exec(conn, "schema: recording migration",
	    "INSERT INTO schema_migrations (version, name, checksum, "
	    "agent_version, duration_ms) VALUES ($1, $2, $3, $4, $5)", 5,
	    params);
	if (res == NULL)
		goto out;
	if (db_cmd(conn, "schema: commit", "COMMIT") == -1)
		goto out;
	fprintf(out, "schema: applied %s (%ld ms)\n", m->file, elapsed_ms(&t0));
	rc = EX_OK;
out:
	PQclear(res);
	if (rc != EX_OK) {
		if (PQstatus(conn) != CONNECTION_OK)
			rc = EX_TEMPFAIL;
		else
			(void)db_cmd(conn, "schema: rollback", "ROLLBACK");
	}
	return rc;
}

int
migrate_apply(PGconn *conn, FILE *out)
{
	struct applied	*a = NULL;
	int		 n, rc = EX_SOFTWARE, locked = 0, done = 0, top = 0;
	size_t		 i;
	char		 derr[512];

	PQsetNoticeProcessor(conn, notice_debug, NULL);
	/* Wait generously for another agent that is applying migrations. */
	if (db_cmd(conn, "schema: begin", "BEGIN") == -1 ||
	    db_cmd(conn, "schema: begin", "SET LOCAL lock_timeout = '300s'") ==
	    -1 ||
	    db_cmd(conn, "schema: begin",
	    "SET LOCAL statement_timeout = '310s'") == -1 ||
	    db_cmd(conn, "schema: waiting for the migration lock held by "
	    "another agent", "SELECT pg_advisory_lock" LOCK_ARGS) == -1 ||
	    db_cmd(conn, "schema: commit", "COMMIT") == -1) {
		rc = EX_TEMPFAIL;
		goto out;
	}
	locked = 1;
	if (db_cmd(conn, "schema: creating schema_migrations",
	    create_table_sql) == -1)
		goto out;
	n = load_applied(conn, &a);
	if (n == -1)
		goto out;
	if (check_drift(a, n, derr, sizeof(derr)) == -1) {
		log_errx("schema: %s", derr);
		rc = EX_DATAERR;
		goto out;
	}
	for (i = 0; i < migrate_count; i++) {
		if (is_applied(a, n, migrate_list[i].version)) {
			top = migrate_list[i].version;
			continue;
		}
		rc = apply_one(conn, &migrate_list[i], out);
		if (rc != EX_OK)
			goto out;
		top = migrate_list[i].version;
		done++;
	}
	if (done == 0)
		fprintf(out, "schema: up to date at version %d; nothing to "
		    "apply\n", top);
	else
		fprintf(out, "schema: %d migration%s applied; database is at "
		    "version %d\n", done, done == 1 ? "" : "s", top);
	rc = EX_OK;
out:
	if (locked && PQstatus(conn) == CONNECTION_OK)
		(void)db_cmd(conn, "schema: releasing the migration lock",
		    "SELECT pg_advisory_unlock" LOCK_ARGS);
	free(a);
	return rc;
}

int
migrate_status(PGconn *conn, FILE *out, int json)
{
	struct applied	*a = NULL;
	json_object	*root = NULL, *arr = NULL, *o;
	const char	*state, *when;
	char		 sum[65];
	int		 n, i, pending = 0, top = 0, drift = 0;
	size_t		 k;

	n = load_applied(conn, &a);
	if (n == -1)
		return EX_UNAVAILABLE;
	if (json) {
		root = json_object_new_object();
		arr = json_object_new_array();
	} else
		fprintf(out, "%-8s %-32s %-9s %s\n", "VERSION", "NAME",
		    "STATUS", "APPLIED AT");
	for (k = 0; k < migrate_count; k++) {
		const struct migration *m = &migrate_list[k];

		state = "pending";
		when = "";
		for (i = 0; i < n; i++) {
			if (a[i].version != m->version)
				continue;
			migrate_checksum(m, sum);
			state = strcmp(sum, a[i].checksum) ? "changed" :
			    "applied";
			when = a[i].applied_at;
			top = m->version;
		}
		if (strcmp(state, "pending") == 0)
			pending++;
		if (strcmp(state, "changed") == 0)
			drift++;
		if (json) {
			o = json_object_new_object();
			json_object_object_add(o, "version",
			    json_object_new_int(m->version));
			json_object_object_add(o, "name",
			    json_object_new_string(m->name));
			json_object_object_add(o, "status",
			    json_object_new_string(state));
			json_object_object_add(o, "applied_at", *when ?
			    json_object_new_string(when) : NULL);
			json_object_array_add(arr, o);
		} else
			fprintf(out, "%04d     %-32s %-9s %s\n", m->version,
			    m->name, state, when);
	}
	for (i = 0; i < n; i++) {
		if (find_migration(a[i].version) != NULL)
			continue;
		drift++;
		if (json) {
			o = json_object_new_object();
			json_object_object_add(o, "version",
			    json_object_new_int(a[i].version));
			json_object_object_add(o, "name",
			    json_object_new_string(a[i].name));
			json_object_object_add(o, "status",
			    json_object_new_string("unknown"));
			json_object_object_add(o, "applied_at",
			    json_object_new_string(a[i].applied_at));
			json_object_array_add(arr, o);
		} else
			fprintf(out, "%04d     %-32s %-9s %s\n", a[i].version,
			    a[i].name, "unknown", a[i].applied_at);
	}
	if (json) {
		json_object_object_add(root, "current_version",
		    json_object_new_int(top));
		json_object_object_add(root, "pending",
		    json_object_new_int(pending));
		json_object_object_add(root, "drift",
		    json_object_new_int(drift));
		json_object_object_add(root, "migrations", arr);
		fprintf(out, "%s\n", json_object_to_json_string_ext(root,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
	} else
		fprintf(out, "schema: version %d, %d pending, %d changed or "
		    "unknown\n", top, pending, drift);
	free(a);
	if (drift) {
		log_errx("schema: applied migrations differ from this agent's "
		    "(see 'changed'/'unknown' above); run 'orchestrator-agent "
		    "schema init' for details");
		return EX_DATAERR;
	}
	return EX_OK;
}
