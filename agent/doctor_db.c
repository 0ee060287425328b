/*
 * doctor_db.c - checks of the PostgreSQL server: reachable, version,
 * schema, connection slots, size, disk, wraparound, sessions that hold
 * vacuum back, and dead tuples in the queue tables.  Thresholds are the
 * [doctor] keys; the defaults follow check_postgres.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cfg.h"
#include "doctor.h"
#include "migrate.h"

#define TH(id)	DR_TH(ctx, id)

static void
check_connect(struct dr_ctx *ctx, struct dr_result *r)
{
	PGconn *conn = dr_connect(ctx);

	dr_metric(r, "orchestrator_database_up", "", conn != NULL);
	if (conn == NULL) {
		dr_set(r, DR_CRIT, "cannot connect to the database");
		dr_detail(r, "%s", ctx->db_err);
		dr_fix(r, "check that PostgreSQL runs (systemctl status "
		    "postgresql; pg_lsclusters) and that [database] host, "
		    "port, user and password are right (orchestrator-agent "
		    "config show)");
		return;
	}
	dr_metric(r, "orchestrator_database_connect_seconds", "",
	    (double)ctx->connect_ms / 1000);
	r->status = dr_level((double)ctx->connect_ms,
	    TH(CFG_D_CONNECT_WARN_MS), 0);
	dr_set(r, r->status, "connected to %s:%s/%s as %s in %ld ms",
	    PQhost(conn), PQport(conn), PQdb(conn), PQuser(conn),
	    ctx->connect_ms);
	if (r->status != DR_OK)
		dr_fix(r, "a slow connect means a loaded server or network; "
		    "look at the server's load and the db.sessions check");
}

static void
check_version(struct dr_ctx *ctx, struct dr_result *r)
{
	PGconn	*conn = dr_need_db(ctx, r);
	int	 v;

	if (conn == NULL)
		return;
	v = PQserverVersion(conn);
	dr_metric(r, "orchestrator_database_server_version_num", "", v);
	if (v < 150000) {
		dr_set(r, DR_WARN, "PostgreSQL %d.%d is older than 15, which "
		    "the agent is tested with", v / 10000, v % 10000);
		dr_fix(r, "upgrade the server to PostgreSQL 15 or later");
		return;
	}
	dr_set(r, DR_OK, "PostgreSQL %d.%d", v / 10000, v % 10000);
}

static void
check_schema(struct dr_ctx *ctx, struct dr_result *r)
{
	PGconn	*conn = dr_need_db(ctx, r);
	char	 err[512];
	int	 pending;

	if (conn == NULL)
		return;
	pending = migrate_check(conn, err, sizeof(err));
	if (pending == -1) {
		dr_set(r, DR_CRIT, "the schema does not match this agent");
		dr_detail(r, "%s", err);
		dr_fix(r, "see 'orchestrator-agent schema status'");
		return;
	}
	dr_metric(r, "orchestrator_schema_pending_migrations", "", pending);
	if (pending > 0) {
		dr_set(r, DR_WARN, "%d migration%s pending", pending,
		    pending == 1 ? "" : "s");
		dr_fix(r, "run 'orchestrator-agent schema init' (safe beside "
		    "running workers)");
		return;
	}
	dr_set(r, DR_OK, "current (%zu migrations applied)", migrate_count);
}

static void
check_connections(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 used, max, reserved, usable, pct;

	res = dr_query(ctx, r, "SELECT (SELECT count(*) FROM pg_stat_activity "
	    "WHERE backend_type = 'client backend'), "
	    "current_setting('max_connections')::int, "
	    "current_setting('superuser_reserved_connections')::int", 0, NULL);
	if (res == NULL)
		return;
	used = dr_num(res, 0, 0);
	max = dr_num(res, 0, 1);
	reserved = dr_num(res, 0, 2);
	PQclear(res);
	usable = max - reserved > 0 ? max - reserved : 1;
	pct = 100 * used / usable;
	dr_metric(r, "orchestrator_database_connections", "", used);
	dr_metric(r, "orchestrator_database_connections_max", "", usable);
	r->status = dr_level(pct, TH(CFG_D_CONN_WARN_PCT),
	    TH(CFG_D_CONN_CRIT_PCT));
	dr_set(r, r->status, "%.0f of %.0f connections in use (%.0f%%)", used,
	    usable, pct);
	if (r->status != DR_OK)
		dr_fix(r, "find who holds them: SELECT application_name, "
		    "client_addr, count(*) FROM pg_stat_activity GROUP BY 1, 2; "
		    "each agent worker uses 2");
}

static void
check_size(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 bytes;

	res = dr_query(ctx, r, "SELECT pg_database_size(current_database())",
	    0, NULL);
	if (res == NULL)
		return;
	bytes = dr_num(res, 0, 0);
	PQclear(res);
	dr_metric(r, "orchestrator_database_size_bytes", "", bytes);
	dr_set(r, DR_OK, "%.1f MiB", bytes / 1048576);
}

/* Is the server on this host (a socket directory or a loopback name)? */
static int
local_server(PGconn *conn)
{
	const char *h = PQhost(conn);

	return h == NULL || h[0] == '/' || strcmp(h, "localhost") == 0 ||
	    strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

static void
check_disk(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	struct statvfs	 sv;
	char		 dir[1024], *slash;
	double		 total, avail, pct;

	if (dr_need_db(ctx, r) == NULL)
		return;
	if (!local_server(ctx->conn)) {
		dr_set(r, DR_SKIPPED, "the database server is on another "
		    "host (%s)", PQhost(ctx->conn));
		return;
	}
	res = dr_query(ctx, r, "SELECT current_setting('data_directory')", 0,
	    NULL);
	if (res == NULL)
		return;
	snprintf(dir, sizeof(dir), "%s", PQgetvalue(res, 0, 0));
	PQclear(res);
	/*
	 * The data directory's parents are often closed to other users
	 * (a 0700 mount point); the nearest one we may search is on the same
	 * file system in the usual layouts, and statvfs needs no more.
	 */
	while (statvfs(dir, &sv) == -1) {
		slash = strrchr(dir, '/');
		if (slash == NULL || slash == dir) {
			dr_set(r, DR_UNKNOWN, "cannot read the free space of "
			    "the data directory");
			dr_fix(r, "run doctor as root or as the postgres user");
			return;
		}
		*slash = '\0';
	}
	total = (double)sv.f_blocks * sv.f_frsize;
	avail = (double)sv.f_bavail * sv.f_frsize;
	pct = total > 0 ? 100 * avail / total : 0;
	dr_metric(r, "orchestrator_data_disk_free_bytes", "", avail);
	dr_metric(r, "orchestrator_data_disk_size_bytes", "", total);
	/* Inverted: less free is worse. */
	r->status = DR_OK;
	if (TH(CFG_D_DISK_CRIT_PCT) > 0 && pct <= TH(CFG_D_DISK_CRIT_PCT))
		r->status = DR_CRIT;
	else if (TH(CFG_D_DISK_WARN_PCT) > 0 && pct <= TH(CFG_D_DISK_WARN_PCT))
		r->status = DR_WARN;
	dr_set(r, r->status, "%.0f%% free on %s (%.1f of %.1f GiB)", pct, dir,
	    avail / 1073741824, total / 1073741824);
	if (r->status != DR_OK)
		dr_fix(r, "run 'orchestrator-agent maintain cleanup' to drop old "
		    "tasks, then VACUUM; or grow the data disk (gcloud compute "
		    "disks resize, then resize2fs)");
}

static void
check_wraparound(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 age;
	char		 db[128];

	res = dr_query(ctx, r, "SELECT datname, age(datfrozenxid) FROM "
	    "pg_database ORDER BY 2 DESC LIMIT 1", 0, NULL);
	if (res == NULL)
		return;
	snprintf(db, sizeof(db), "%s", PQgetvalue(res, 0, 0));
	age = dr_num(res, 0, 1);
	PQclear(res);
	dr_metric(r, "orchestrator_database_xid_age", "", age);
	r->status = dr_level(age, TH(CFG_D_XID_WARN), TH(CFG_D_XID_CRIT));
	dr_set(r, r->status, "oldest unfrozen transaction ID is %.0f old "
	    "(database %s; PostgreSQL stops writes at 2147483647)", age, db);
	if (r->status != DR_OK)
		dr_fix(r, "end long transactions (db.sessions), then run "
		    "VACUUM (FREEZE) in database %s", db);
}

static void
check_sessions(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 idle_n, idle_max, xact_max;
	enum dr_status	 s1, s2;

	res = dr_query(ctx, r, "SELECT count(*) FILTER (WHERE state LIKE "
	    "'idle in transaction%'), coalesce(max(extract(epoch FROM now() - "
	    "state_change)) FILTER (WHERE state LIKE 'idle in transaction%'), "
	    "0), coalesce(max(extract(epoch FROM now() - xact_start)), 0), "
	    "(SELECT format('pid %s (%s, user %s, %s for %s s): %s', pid, "
	    "coalesce(nullif(application_name, ''), 'no application_name'), "
	    "usename, state, round(extract(epoch FROM now() - "
	    "coalesce(xact_start, state_change))), left(regexp_replace(query, "
	    "'\\s+', ' ', 'g'), 80)) FROM pg_stat_activity WHERE backend_type "
	    "= 'client backend' AND pid <> pg_backend_pid() AND xact_start IS "
	    "NOT NULL ORDER BY xact_start LIMIT 1) "
	    "FROM pg_stat_activity WHERE backend_type = 'client backend' AND "
	    "pid <> pg_backend_pid()", 0, NULL);
	if (res == NULL)
		return;
	idle_n = dr_num(res, 0, 0);
	idle_max = dr_num(res, 0, 1);
	xact_max = dr_num(res, 0, 2);
	if (!PQgetisnull(res, 0, 3))
		dr_detail(r, "oldest: %s", PQgetvalue(res, 0, 3));
	PQclear(res);
	dr_metric(r, "orchestrator_database_idle_in_transaction_sessions", "",
	    idle_n);
	dr_metric(r, "orchestrator_database_idle_in_transaction_max_seconds",
	    "", idle_max);
	dr_metric(r, "orchestrator_database_oldest_transaction_seconds", "",
	    xact_max);
	s1 = dr_level(idle_max, TH(CFG_D_IDLE_XACT_WARN_S),
	    TH(CFG_D_IDLE_XACT_CRIT_S));
	s2 = dr_level(xact_max, TH(CFG_D_LONG_XACT_WARN_S),
	    TH(CFG_D_LONG_XACT_CRIT_S));
	r->status = s1 > s2 ? s1 : s2;
	if (r->status == DR_OK) {
		dr_set(r, DR_OK, "no session holds vacuum back (oldest "
		    "transaction %.0f s, %.0f idle in transaction)", xact_max,
		    idle_n);
		return;
	}
	if (s1 >= s2)
		dr_set(r, r->status, "%.0f session%s idle in transaction, the "
		    "longest for %.0f s: vacuum cannot clean the queue",
		    idle_n, idle_n == 1 ? "" : "s", idle_max);
	else
		dr_set(r, r->status, "a transaction has been open for %.0f s: "
		    "vacuum cannot clean the queue", xact_max);
	dr_fix(r, "find the client by application_name and fix it to commit; "
	    "meanwhile SELECT pg_terminate_backend(PID) ends it, and "
	    "idle_in_transaction_session_timeout stops it recurring");
}

static void
check_vacuum(struct dr_ctx *ctx, struct dr_result *r)
{
	PGresult	*res;
	double		 live, dead, pct, worst = 0;
	char		 labels[128], worst_tab[64] = "";
	int		 i;
	enum dr_status	 s;

	res = dr_query(ctx, r, "SELECT relname, n_live_tup, n_dead_tup, "
	    "extract(epoch FROM greatest(last_vacuum, last_autovacuum)), "
	    "coalesce(to_char(greatest(last_vacuum, last_autovacuum) AT TIME "
	    "ZONE 'UTC', 'YYYY-MM-DD HH24:MI\"Z\"'), 'never') "
	    "FROM pg_stat_user_tables WHERE relname IN ('tasks', "
	    "'task_history', 'workers', 'triage_results_cache') "
	    "ORDER BY relname", 0, NULL);
	if (res == NULL)
		return;
	r->status = DR_OK;
	for (i = 0; i < PQntuples(res); i++) {
		live = dr_num(res, i, 1);
		dead = dr_num(res, i, 2);
		pct = live + dead > 0 ? 100 * dead / (live + dead) : 0;
		snprintf(labels, sizeof(labels), "table=\"%s\"",
		    PQgetvalue(res, i, 0));
		dr_metric(r, "orchestrator_table_live_tuples", labels, live);
		dr_metric(r, "orchestrator_table_dead_tuples", labels, dead);
		if (!PQgetisnull(res, i, 3))
			dr_metric(r, "orchestrator_table_last_vacuum_"
			    "timestamp_seconds", labels, dr_num(res, i, 3));
		if (dead < TH(CFG_D_DEAD_MIN))
			continue;
		s = dr_level(pct, TH(CFG_D_DEAD_WARN_PCT),
		    TH(CFG_D_DEAD_CRIT_PCT));
		if (s > r->status || pct > worst) {
			if (s > r->status)
				r->status = s;
			worst = pct;
			snprintf(worst_tab, sizeof(worst_tab), "%s (last vacuum "
			    "%s)", PQgetvalue(res, i, 0), PQgetvalue(res, i,
			    4));
		}
	}
	PQclear(res);
	if (r->status == DR_OK) {
		dr_set(r, DR_OK, "queue tables are clean%s%s",
		    worst_tab[0] ? "; most dead tuples: " : "", worst_tab);
		return;
	}
	dr_set(r, r->status, "%.0f%% dead tuples in %s", worst, worst_tab);
	dr_fix(r, "run 'orchestrator-agent maintain vacuum'; if it keeps "
	    "coming back, a long transaction holds vacuum back (db.sessions)");
}

const struct dr_check dr_db_checks[] = {
	{ "db.connect", "database reachable", check_connect, 0 },
	{ "db.version", "server version", check_version, 0 },
	{ "db.schema", "schema current", check_schema, 0 },
	{ "db.connections", "connection slots", check_connections, 0 },
	{ "db.size", "database size", check_size, 0 },
	{ "db.disk", "disk free", check_disk, 0 },
	{ "db.wraparound", "transaction ID wraparound", check_wraparound, 0 },
	{ "db.sessions", "long and idle-in-transaction sessions",
	    check_sessions, 0 },
	{ "db.vacuum", "dead tuples in queue tables", check_vacuum, 0 },
};
const size_t dr_db_nchecks = sizeof(dr_db_checks) / sizeof(dr_db_checks[0]);
