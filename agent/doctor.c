/*
 * doctor.c - the check runner: selection (--only/--skip), timing, the
 * shared database connection and backup target, and the two outputs
 * (one line per check with its fix for people, a JSON document for
 * machines).  The checks themselves live in doctor_env.c,
 * doctor_package.c, doctor_db.c, doctor_queue.c and doctor_backup.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "doctor.h"
#include "store.h"

const char *
dr_status_name(enum dr_status s)
{
	switch (s) {
	case DR_OK:
		return "ok";
	case DR_WARN:
		return "warn";
	case DR_CRIT:
		return "crit";
	case DR_UNKNOWN:
		return "unknown";
	case DR_SKIPPED:
		break;
	}
	return "skipped";
}

void
dr_set(struct dr_result *r, enum dr_status s, const char *fmt, ...)
{
	va_list ap;

	r->status = s;
	va_start(ap, fmt);
	vsnprintf(r->summary, sizeof(r->summary), fmt, ap);
	va_end(ap);
}

void
dr_detail(struct dr_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

void
dr_fix(struct dr_result *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->fix, sizeof(r->fix), fmt, ap);
	va_end(ap);
}

void
dr_metric(struct dr_result *r, const char *name, const char *labels,
    double value)
{
	char key[512];

	if (r->metrics == NULL)
		r->metrics = json_object_new_object();
	if (labels != NULL && *labels != '\0')
		snprintf(key, sizeof(key), "%s{%s}", name, labels);
	else
		snprintf(key, sizeof(key), "%s", name);
	if (value == floor(value) && fabs(value) < 9e15)
		json_object_object_add(r->metrics, key,
		    json_object_new_int64((int64_t)value));
	else
		json_object_object_add(r->metrics, key,
		    json_object_new_double(value));
}

double
dr_num(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? 0 :
	    strtod(PQgetvalue(res, row, col), NULL);
}

enum dr_status
dr_level(double value, double warn, double crit)
{
	if (crit > 0 && value >= crit)
		return DR_CRIT;
	if (warn > 0 && value >= warn)
		return DR_WARN;
	return DR_OK;
}

static long ms_since(const struct timespec *);

PGconn *
dr_connect(struct dr_ctx *ctx)
{
	struct timespec t0;

	if (!ctx->db_tried) {
		ctx->db_tried = 1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ctx->conn = db_connect_quiet(ctx->cfg, "doctor", ctx->db_err,
		    sizeof(ctx->db_err));
		ctx->connect_ms = ms_since(&t0);
	}
	return ctx->conn;
}

PGconn *
dr_need_db(struct dr_ctx *ctx, struct dr_result *r)
{
	if (dr_connect(ctx) != NULL && PQstatus(ctx->conn) == CONNECTION_OK)
		return ctx->conn;
	/* The cause and its fix are on the db.connect line. */
	dr_set(r, DR_UNKNOWN, "not checked: the database is unreachable "
	    "(db.connect)");
	return NULL;
}

PGresult *
dr_query(struct dr_ctx *ctx, struct dr_result *r, const char *sql,
    int nparams, const char *const *params)
{
	PGresult	*res;
	PGconn		*conn = dr_need_db(ctx, r);

	if (conn == NULL)
		return NULL;
	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	dr_set(r, DR_UNKNOWN, "query failed: %s",
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
	    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) :
	    PQerrorMessage(conn));
	dr_fix(r, "the role needs pg_monitor (GRANT pg_monitor TO %s) and "
	    "the schema must be current (orchestrator-agent schema init)",
	    PQuser(conn));
	PQclear(res);
	return NULL;
}

struct store *
dr_need_store(struct dr_ctx *ctx, struct dr_result *r)
{
	if (!ctx->store_tried) {
		ctx->store_tried = 1;
		ctx->store = store_open(ctx->cfg, ctx->store_err,
		    sizeof(ctx->store_err));
	}
	if (ctx->store == NULL) {
		dr_set(r, DR_UNKNOWN, "cannot open the backup target");
		dr_detail(r, "%s", ctx->store_err);
		dr_fix(r, "check [backup] target and the gcs.* settings "
		    "(orchestrator-agent config show)");
	}
	return ctx->store;
}

/* Is id listed in the comma-separated list? */
static int
listed(const char *list, const char *id)
{
	size_t		 n = strlen(id);
	const char	*p = list;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, id, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
		p = strchr(p, ',');
		if (p != NULL)
			p++;
	}
	return 0;
}

struct table {
	const struct dr_check	*checks;
	const size_t		*n;
};

static const struct table tables[] = {
	{ dr_env_checks, &dr_env_nchecks },
	{ dr_package_checks, &dr_package_nchecks },
	{ dr_db_checks, &dr_db_nchecks },
	{ dr_queue_checks, &dr_queue_nchecks },
	{ dr_backup_checks, &dr_backup_nchecks },
};
#define NTABLES	(sizeof(tables) / sizeof(tables[0]))

static int
known(const char *id, size_t len)
{
	size_t t, i;

	for (t = 0; t < NTABLES; t++)
		for (i = 0; i < *tables[t].n; i++)
			if (strlen(tables[t].checks[i].id) == len &&
			    strncmp(tables[t].checks[i].id, id, len) == 0)
				return 1;
	return 0;
}

/* Every id of an --only/--skip list must exist; a typo is not "ok". */
static int
check_list(const char *opt, const char *list, char *err, size_t errlen)
{
	const char	*p = list, *e;
	size_t		 len;

	while (p != NULL && *p != '\0') {
		e = strchr(p, ',');
		len = e != NULL ? (size_t)(e - p) : strlen(p);
		if (!known(p, len)) {
			snprintf(err, errlen, "%s: unknown check '%.*s' (the "
			    "ids are listed by 'orchestrator-agent doctor "
			    "--json')", opt, (int)len, p);
			return -1;
		}
		p = e != NULL ? e + 1 : NULL;
	}
	return 0;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 +
	    (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

int
dr_run_checks(const struct cfg *cfg, const char *cfg_err,
    const struct dr_opts *o, int want_remote, struct dr_run *run, char *err,
    size_t errlen)
{
	struct dr_ctx		 ctx;
	struct dr_result	*r;
	struct timespec		 t0;
	const struct dr_check	*c;
	size_t			 t, i, total = 0;
	time_t			 now = time(NULL);
	int			 rc = -1;

	memset(run, 0, sizeof(*run));
	memset(&ctx, 0, sizeof(ctx));
	if (check_list("--only", o->only, err, errlen) == -1 ||
	    check_list("--skip", o->skip, err, errlen) == -1)
		goto out;
	ctx.cfg = cfg;
	ctx.want_remote = want_remote;
	snprintf(ctx.cfg_err, sizeof(ctx.cfg_err), "%s",
	    cfg_err != NULL ? cfg_err : "");
	for (t = 0; t < NTABLES; t++)
		total += *tables[t].n;
	run->results = calloc(total, sizeof(*run->results));
	if (run->results == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	strftime(run->generated_at, sizeof(run->generated_at),
	    "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	run->worst = DR_SKIPPED;
	for (t = 0; t < NTABLES; t++) {
		for (i = 0; i < *tables[t].n; i++) {
			c = &tables[t].checks[i];
			if ((o->only != NULL && !listed(o->only, c->id)) ||
			    (o->skip != NULL && listed(o->skip, c->id)))
				continue;
			r = &run->results[run->n++];
			r->id = c->id;
			r->title = c->title;
			clock_gettime(CLOCK_MONOTONIC, &t0);
			if (cfg == NULL && strcmp(c->id, "config") != 0) {
				dr_set(r, DR_UNKNOWN, "not checked: the "
				    "configuration does not load (config)");
			} else if (c->remote && !want_remote) {
				dr_set(r, DR_SKIPPED, "not run by metrics");
			} else {
				c->run(&ctx, r);
			}
			r->duration_ms = ms_since(&t0);
			if (r->status > run->worst)
				run->worst = r->status;
		}
	}
	rc = 0;
out:
	if (ctx.conn != NULL)
		PQfinish(ctx.conn);
	store_free(ctx.store);
	return rc;
}

void
dr_run_free(struct dr_run *run)
{
	size_t i;

	if (run == NULL)
		return;
	for (i = 0; i < run->n; i++)
		json_object_put(run->results[i].metrics);
	free(run->results);
	run->results = NULL;
	run->n = 0;
}

int
dr_exit_code(const struct dr_run *run)
{
	switch (run->worst) {
	case DR_CRIT:
		return 2;
	case DR_UNKNOWN:
		return 3;
	case DR_WARN:
		return 1;
	case DR_OK:
	case DR_SKIPPED:
		break;
	}
	return 0;
}

static const char *
mark(enum dr_status s)
{
	switch (s) {
	case DR_OK:
		return "\u2713";	/* ✓ */
	case DR_WARN:
		return "!";
	case DR_CRIT:
		return "\u2717";	/* ✗ */
	case DR_UNKNOWN:
		return "?";
	case DR_SKIPPED:
		break;
	}
	return "-";
}

static const char *
colour(enum dr_status s)
{
	switch (s) {
	case DR_OK:
		return "\033[32m";
	case DR_WARN:
		return "\033[33m";
	case DR_CRIT:
		return "\033[31m";
	case DR_UNKNOWN:
		return "\033[35m";
	case DR_SKIPPED:
		break;
	}
	return "\033[2m";
}

void
dr_print_text(FILE *fp, const struct dr_run *run, const struct dr_opts *o)
{
	const struct dr_result	*r;
	size_t			 i, count[DR_CRIT + 1] = { 0 };

	for (i = 0; i < run->n; i++) {
		r = &run->results[i];
		count[r->status]++;
		fprintf(fp, "%s[%s]%s %-22s %s\n", o->color ?
		    colour(r->status) : "", mark(r->status), o->color ?
		    "\033[0m" : "", r->id, r->summary);
		if (r->detail[0] != '\0' && (o->verbose ||
		    r->status >= DR_WARN))
			fprintf(fp, "      %s\n", r->detail);
		if (r->fix[0] != '\0' && r->status >= DR_WARN)
			fprintf(fp, "    \u2192 %s\n", r->fix);
	}
	fprintf(fp, "\ndoctor: %s: %zu ok, %zu warning%s, %zu critical, "
	    "%zu unknown, %zu skipped\n", dr_status_name(run->worst ==
	    DR_SKIPPED ? DR_OK : run->worst), count[DR_OK], count[DR_WARN],
	    count[DR_WARN] == 1 ? "" : "s", count[DR_CRIT], count[DR_UNKNOWN],
	    count[DR_SKIPPED]);
}

void
dr_print_json(FILE *fp, const struct dr_run *run)
{
	json_object		*doc, *arr, *o;
	const struct dr_result	*r;
	size_t			 i;

	doc = json_object_new_object();
	arr = json_object_new_array();
	json_object_object_add(doc, "status", json_object_new_string(
	    dr_status_name(run->worst == DR_SKIPPED ? DR_OK : run->worst)));
	json_object_object_add(doc, "generated_at",
	    json_object_new_string(run->generated_at));
	for (i = 0; i < run->n; i++) {
		r = &run->results[i];
		o = json_object_new_object();
		json_object_object_add(o, "id", json_object_new_string(r->id));
		json_object_object_add(o, "title",
		    json_object_new_string(r->title));
		json_object_object_add(o, "status",
		    json_object_new_string(dr_status_name(r->status)));
		json_object_object_add(o, "summary",
		    json_object_new_string(r->summary));
		json_object_object_add(o, "detail",
		    json_object_new_string(r->detail));
		json_object_object_add(o, "fix", json_object_new_string(r->fix));
		json_object_object_add(o, "metrics", r->metrics != NULL ?
		    json_object_get(r->metrics) : json_object_new_object());
		json_object_object_add(o, "duration_ms",
		    json_object_new_int64(r->duration_ms));
		json_object_array_add(arr, o);
	}
	json_object_object_add(doc, "checks", arr);
	fprintf(fp, "%s\n", json_object_to_json_string_ext(doc,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(doc);
}
