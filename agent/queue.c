/*
 * queue.c - what the queue commands share: input checks, durations, ids,
 * COPY text encoding, statement errors mapped to exit codes, and output.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "queue_json.h"

/* Type OIDs from pg_type.h, which is a server header. */
#define OID_BOOL	16
#define OID_INT8	20
#define OID_INT2	21
#define OID_INT4	23
#define OID_JSON	114
#define OID_FLOAT4	700
#define OID_FLOAT8	701
#define OID_NUMERIC	1700
#define OID_JSONB	3802

const char *const queue_statuses[] = {
	"queued", "started", "finished", "failed", "cancelled", NULL
};

static const struct {
	const char	*option;
	const char	*key;
} fields[QF_COUNT] = {
	[QF_ID] = { "--id", "task_id" },
	[QF_SKILL] = { "--skill", "skill_name" },
	[QF_TYPE] = { "--type", "task_type" },
	[QF_SOURCE] = { "--source", "source_repo" },
	[QF_TARGET] = { "--target", "target_repo" },
	[QF_CHANGE_EVENT] = { "--change-event", "change_event" },
	[QF_RELATIONSHIP_CONFIG] = { "--relationship-config",
	    "relationship_config" },
	[QF_RUN_AT] = { "--run-at", "run_at" },
	[QF_MAX_ATTEMPTS] = { "--max-attempts", "max_attempts" },
	[QF_PRIORITY] = { "--priority", "priority" },
};

int
queue_status_valid(const char *s)
{
	size_t i;

	for (i = 0; queue_statuses[i] != NULL; i++)
		if (strcmp(s, queue_statuses[i]) == 0)
			return 1;
	return 0;
}

const char *
queue_field_option(enum queue_field f)
{
	return fields[f].option;
}

const char *
queue_field_key(enum queue_field f)
{
	return fields[f].key;
}

int
queue_field_by_key(const char *key, size_t len)
{
	int i;

	for (i = 0; i < QF_COUNT; i++)
		if (strlen(fields[i].key) == len &&
		    memcmp(fields[i].key, key, len) == 0)
			return i;
	return -1;
}

/* Letters, digits, '.', '_', '-': GitHub's names, and our type names. */
static int
name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Describe byte i of s (borrowed) into the caller's why. */
static void
bad_char(const char *s, size_t i, const char *allowed, char *why,
    size_t whylen)
{
	unsigned char c = (unsigned char)s[i];

	if (c > 0x20 && c < 0x7f)
		snprintf(why, whylen, "has '%c' at position %zu; %s", c,
		    i + 1, allowed);
	else
		snprintf(why, whylen, "has byte 0x%02x at position %zu; %s",
		    c, i + 1, allowed);
}

/* OWNER/REPO check of len bytes at s (borrowed); as queue_check_text. */
static int
check_repo(const char *s, size_t len, char *why, size_t whylen)
{
	const char	*slash;
	size_t		 i, nslash = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '/') {
			nslash++;
			continue;
		}
		if (!name_char((unsigned char)s[i])) {
			bad_char(s, i, "OWNER/REPO may use only letters, "
			    "digits, '.', '_', '-' and one '/'", why, whylen);
			return -1;
		}
	}
	slash = memchr(s, '/', len);
	if (nslash != 1)
		snprintf(why, whylen, "is not OWNER/REPO: '%.*s' has %zu '/' "
		    "where exactly one is needed (e.g. acme/api)", (int)len, s,
		    nslash);
	else if (slash == s)
		snprintf(why, whylen, "is not OWNER/REPO: the owner before '/' "
		    "is empty in '%.*s'", (int)len, s);
	else if (slash == s + len - 1)
		snprintf(why, whylen, "is not OWNER/REPO: the repository name "
		    "after '/' is empty in '%.*s'", (int)len, s);
	else
		return 0;
	return -1;
}

int
queue_check_text(enum queue_field f, const char *s, size_t len, char *why,
    size_t whylen)
{
	size_t	max, i;
	int	c;

	switch (f) {
	case QF_ID:
		max = QUEUE_ID_MAX;
		break;
	case QF_SKILL:
		max = QUEUE_SKILL_MAX;
		break;
	case QF_TYPE:
		max = QUEUE_TYPE_MAX;
		break;
	case QF_SOURCE:
	case QF_TARGET:
		max = QUEUE_REPO_MAX;
		break;
	case QF_RUN_AT:
		max = QUEUE_RUN_AT_MAX;
		break;
	default:
		fatalx("queue: %s is not a text field", fields[f].key);
	}
	if (len == 0) {
		snprintf(why, whylen, "is empty");
		return -1;
	}
	if (len > max) {
		snprintf(why, whylen, "is %zu characters long; the limit is "
		    "%zu", len, max);
		return -1;
	}
	if (f == QF_SOURCE || f == QF_TARGET)
		return check_repo(s, len, why, whylen);
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (f == QF_ID && (c <= 0x20 || c >= 0x7f)) {
			bad_char(s, i, "a task id may use printable ASCII "
			    "without spaces", why, whylen);
			return -1;
		}
		if (f == QF_RUN_AT && (c < 0x20 || c >= 0x7f)) {
			bad_char(s, i, "a time is printable ASCII", why,
			    whylen);
			return -1;
		}
		if ((f == QF_TYPE || f == QF_SKILL) && !name_char(c)) {
			bad_char(s, i, "it may use only letters, digits, '.', "
			    "'_' and '-'", why, whylen);
			return -1;
		}
	}
	return 0;
}

void
queue_int_range(enum queue_field f, long long *min, long long *max)
{
	*min = f == QF_PRIORITY ? QUEUE_PRIORITY_MIN : 1;
	*max = f == QF_PRIORITY ? QUEUE_PRIORITY_MAX : QUEUE_ATTEMPTS_MAX;
}

/*
 * The seed's client chose trigger_consumer_triage for consumer_triage and
 * trigger_template_triage for template_triage: both are trigger_TYPE.
 */
const char *
queue_default_skill(const char *type, char *buf, size_t len)
{
	snprintf(buf, len, "trigger_%s", type);
	return buf;
}

int
queue_parse_duration(const char *s, long long *secs, char *why,
    size_t whylen)
{
	static const char hint[] = "use a number and a unit: 90s, 10m, 2h, "
	    "1d (or a sum such as 1h30m)";
	const char	*p = s;
	long long	 total = 0, n, mult;

	if (*s == '\0') {
		snprintf(why, whylen, "is empty; %s", hint);
		return -1;
	}
	while (*p != '\0') {
		if (!isdigit((unsigned char)*p)) {
			snprintf(why, whylen, "is not a duration: '%s'; %s", s,
			    hint);
			return -1;
		}
		for (n = 0; isdigit((unsigned char)*p); p++) {
			n = n * 10 + (*p - '0');
			if (n > QUEUE_DURATION_MAX)
				goto toolong;
		}
		switch (*p) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		case '\0':
			snprintf(why, whylen, "has no unit: '%s'; %s", s, hint);
			return -1;
		default:
			snprintf(why, whylen, "has an unknown unit '%c' in "
			    "'%s'; %s", isprint((unsigned char)*p) ? *p : '?', s,
			    hint);
			return -1;
		}
		p++;
		total += n * mult;
		if (total > QUEUE_DURATION_MAX)
			goto toolong;
	}
	*secs = total;
	return 0;
toolong:
	snprintf(why, whylen, "is too long: '%s' (the limit is %lldd)", s,
	    QUEUE_DURATION_MAX / 86400);
	return -1;
}

const char *
queue_interval(long long secs, char *buf, size_t len)
{
	snprintf(buf, len, "%lld seconds", secs);
	return buf;
}

int
queue_parse_int(const char *s, size_t len, long long min, long long max,
    long long *out, char *why, size_t whylen)
{
	unsigned long long	 mag = 0;
	long long		 v;
	size_t			 i = 0;
	int			 neg = 0, big = 0;

	if (len == 0) {
		snprintf(why, whylen, "is empty; expected a whole number");
		return -1;
	}
	if (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-';
		i++;
	}
	if (i == len)
		goto notnum;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto notnum;
		/* Past 2^63 the value is out of range whatever follows. */
		if (mag > (1ULL << 63) / 10)
			big = 1;
		else
			mag = mag * 10 + (unsigned long long)(s[i] - '0');
	}
	if (big || mag > (1ULL << 63) || (!neg && mag == (1ULL << 63)))
		goto range;
	if (neg)
		v = mag == (1ULL << 63) ? -0x7fffffffffffffffLL - 1 :
		    -(long long)mag;
	else
		v = (long long)mag;
	if (v < min || v > max)
		goto range;
	*out = v;
	return 0;
range:
	snprintf(why, whylen, "is out of range (%lld to %lld): %.*s", min,
	    max, len > 24 ? 24 : (int)len, s);
	return -1;
notnum:
	snprintf(why, whylen, "is not a whole number: '%.*s'",
	    len > 24 ? 24 : (int)len, s);
	return -1;
}

void
queue_uuid(char out[37])
{
	static uint64_t	last_ms;
	static unsigned	seq;
	struct timespec	ts;
	unsigned char	b[16];
	uint64_t	ms;
	ssize_t		n;
	int		i;

	do
		n = getrandom(b, sizeof(b), 0);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof(b))
		fatal("queue: getrandom for a task id");
	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	/*
	 * Ids from one process only grow, even within a millisecond or
	 * when the clock steps back: the 12 bits after the version count
	 * (RFC 9562, 6.2 method 1), starting from a random point with room
	 * to count.
	 */
	if (ms > last_ms) {
		last_ms = ms;
		seq = ((unsigned)b[6] << 8 | b[7]) & 0x7ff;
	} else if (++seq > 0xfff) {
		last_ms++;
		seq = 0;
	}
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(last_ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (seq >> 8));	/* version 7 */
	b[7] = (unsigned char)(seq & 0xff);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);	/* RFC 9562 variant */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	    b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

void
queue_buf_add(struct queue_buf *b, const char *s, size_t n)
{
	size_t	 cap;
	char	*p;

	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL)
			fatal("queue: growing a buffer to %zu bytes", cap);
		b->data = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
queue_buf_free(struct queue_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
queue_copy_escape(struct queue_buf *b, const char *s, size_t n)
{
	size_t	i, start = 0;
	char	esc[2] = { '\\', '\\' };

	for (i = 0; i < n; i++) {
		switch (s[i]) {
		case '\\':
			esc[1] = '\\';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		default:
			continue;
		}
		queue_buf_add(b, s + start, i - start);
		queue_buf_add(b, esc, 2);
		start = i + 1;
	}
	queue_buf_add(b, s + start, n - start);
}

PGresult *
queue_exec(PGconn *conn, const char *sql, int nparams,
    const char *const *params)
{
	PGresult *res;

	res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	/* NULL when out of memory or nothing could be sent: keep the error. */
	if (res == NULL)
		res = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
	if (res == NULL)
		fatalx("queue: out of memory running a statement");
	return res;
}

int
queue_ok(const PGresult *res)
{
	return res != NULL && (PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK);
}

/* The first line of a libpq message (borrowed), into buf (returned). */
static const char *
first_line(const char *msg, char *buf, size_t len)
{
	if (msg == NULL || *msg == '\0')
		msg = "unknown error";
	if (strncmp(msg, "ERROR:  ", 8) == 0)
		msg += 8;
	snprintf(buf, len, "%.*s", (int)strcspn(msg, "\n"), msg);
	return buf;
}

int
queue_fail(PGconn *conn, const PGresult *res, const char *what)
{
	const char	*state, *detail, *msg;
	char		 line[1024], full[1400];

	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		state = "";
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (msg == NULL)
		msg = first_line(*PQresultErrorMessage(res) ?
		    PQresultErrorMessage(res) : PQerrorMessage(conn), line,
		    sizeof(line));
	snprintf(full, sizeof(full), "%s%s%s%s", msg, detail ? " (" : "",
	    detail ? detail : "", detail ? ")" : "");

	if (PQstatus(conn) != CONNECTION_OK || strncmp(state, "08", 2) == 0) {
		log_errx("%s: %s; the connection to the database was lost: "
		    "check that PostgreSQL is up, then run the command again",
		    what, full);
		return EX_TEMPFAIL;
	}
	if (strcmp(state, "57014") == 0) {
		log_errx("%s: %s; the statement ran longer than "
		    "statement_timeout_ms or was cancelled: try again, or raise "
		    "[database] statement_timeout_ms", what, full);
		return EX_TEMPFAIL;
	}
	if (strcmp(state, "55P03") == 0) {
		log_errx("%s: %s; another session holds the rows locked for "
		    "longer than lock_timeout_ms: try again", what, full);
		return EX_TEMPFAIL;
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strncmp(state, "53", 2) == 0 || strncmp(state, "57P", 3) == 0) {
		log_errx("%s: %s; a transient server condition: try again",
		    what, full);
		return EX_TEMPFAIL;
	}
	if (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0 ||
	    strcmp(state, "42883") == 0) {
		log_errx("%s: %s; the database %s lacks the queue schema: run "
		    "'orchestrator-agent schema init'", what, full,
		    db_describe(conn));
		return EX_UNAVAILABLE;
	}
	if (strcmp(state, "42501") == 0) {
		log_errx("%s: %s; the agent's database user lacks a privilege "
		    "on the queue tables: grant it, or connect as their owner",
		    what, full);
		return EX_UNAVAILABLE;
	}
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0) {
		log_errx("%s: %s", what, full);
		return EX_DATAERR;
	}
	log_errx("%s: %s (SQLSTATE %s); unexpected: report it with this "
	    "message", what, full, *state ? state : "none");
	return EX_SOFTWARE;
}

void
queue_rollback(PGconn *conn)
{
	PGresult *res;

	if (PQstatus(conn) != CONNECTION_OK ||
	    PQtransactionStatus(conn) == PQTRANS_IDLE)
		return;
	res = PQexec(conn, "ROLLBACK");
	PQclear(res);
}

int
queue_lock_task(PGconn *conn, const char *id, const char *cmd,
    PGresult **row)
{
	PGresult	*res;
	char		 what[64];
	int		 rc = EX_OK;

	*row = NULL;
	snprintf(what, sizeof(what), "%s: reading the task", cmd);
	res = queue_exec(conn, "BEGIN", 0, NULL);
	if (!queue_ok(res))
		goto out;
	PQclear(res);
	res = queue_exec(conn, "SELECT status, worker_id, attempt_count, "
	    "max_attempts, lease_expires_at IS NOT NULL AS leased "
	    "FROM tasks WHERE task_id = $1 FOR UPDATE", 1, &id);
	if (!queue_ok(res))
		goto out;
	if (PQntuples(res) == 0) {
		log_errx("%s: no task has id '%s'; 'orchestrator-agent list' "
		    "shows recent tasks", cmd, id);
		PQclear(res);
		res = NULL;
		rc = EX_UNAVAILABLE;
		goto out;
	}
	*row = res;
	res = NULL;
out:
	if (res != NULL) {
		rc = queue_fail(conn, res, what);
		PQclear(res);
	}
	if (rc != EX_OK)
		queue_rollback(conn);
	return rc;
}

int
queue_commit(PGconn *conn, const char *what)
{
	PGresult	*res;
	int		 rc = EX_OK;

	res = queue_exec(conn, "COMMIT", 0, NULL);
	if (!queue_ok(res))
		rc = queue_fail(conn, res, what);
	PQclear(res);
	return rc;
}

struct json_object *
queue_json_value(const PGresult *res, int row, int col)
{
	const char *v;

	if (PQgetisnull(res, row, col))
		return NULL;
	v = PQgetvalue(res, row, col);
	switch (PQftype(res, col)) {
	case OID_BOOL:
		return json_object_new_boolean(v[0] == 't');
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return json_object_new_int64(strtoll(v, NULL, 10));
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		/* The server's text is printed, not a re-rounded double. */
		return json_object_new_double_s(strtod(v, NULL), v);
	case OID_JSON:
	case OID_JSONB:
		return queue_json_raw(v);
	default:
		return json_object_new_string(v);
	}
}

struct json_object *
queue_json_row(const PGresult *res, int row)
{
	struct json_object	*o;
	int			 col;

	o = json_object_new_object();
	if (o == NULL)
		fatalx("queue: out of memory building JSON");
	for (col = 0; col < PQnfields(res); col++)
		json_object_object_add(o, PQfname(res, col),
		    queue_json_value(res, row, col));
	return o;
}

void
queue_json_print(FILE *fp, struct json_object *obj)
{
	fprintf(fp, "%s\n", json_object_to_json_string_ext(obj,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
}

void
queue_print_row(FILE *fp, const PGresult *res, int row)
{
	int	col, w = 0, n;

	for (col = 0; col < PQnfields(res); col++) {
		n = (int)strlen(PQfname(res, col));
		if (n > w)
			w = n;
	}
	for (col = 0; col < PQnfields(res); col++)
		fprintf(fp, "%s:%*s %s\n", PQfname(res, col),
		    w - (int)strlen(PQfname(res, col)), "",
		    PQgetisnull(res, row, col) ? "-" :
		    PQgetvalue(res, row, col));
}

void
queue_print_table(FILE *fp, const PGresult *res, const int *cols,
    const char *const *heads, int n)
{
	int	*w, i, row, len;

	w = calloc((size_t)n, sizeof(*w));
	if (w == NULL)
		fatal("queue: calloc");
	for (i = 0; i < n; i++) {
		w[i] = (int)strlen(heads[i]);
		for (row = 0; row < PQntuples(res); row++) {
			len = PQgetlength(res, row, cols[i]);
			if (len > w[i])
				w[i] = len;
		}
	}
	for (i = 0; i < n; i++)
		fprintf(fp, "%-*s%s", i + 1 < n ? w[i] : 0, heads[i],
		    i + 1 < n ? "  " : "\n");
	for (row = 0; row < PQntuples(res); row++)
		for (i = 0; i < n; i++)
			fprintf(fp, "%-*s%s", i + 1 < n ? w[i] : 0,
			    PQgetisnull(res, row, cols[i]) ? "-" :
			    PQgetvalue(res, row, cols[i]),
			    i + 1 < n ? "  " : "\n");
	free(w);
}

int
queue_bad_option(const struct cmd *c, int ch, char **argv)
{
	const char *arg = argv[optind - 1];

	if (ch == ':')
		return cmd_usage_error(c, "option '%s' needs a value", arg);
	/* In a cluster of short options argv names the cluster, not it. */
	if (optopt != 0 && strncmp(arg, "--", 2) != 0)
		return cmd_usage_error(c, "unknown option '-%c'", optopt);
	return cmd_usage_error(c, "unknown option '%s'", arg);
}

int
queue_one_task(struct agent *a, const struct cmd *c, int argc, char **argv,
    const char **id, PGconn **conn, PGresult **row)
{
	static const struct option longopts[] = {
		{ NULL, 0, NULL, 0 },
	};
	struct cfg	*cfg;
	int		 rc, ch;

	*conn = NULL;
	*row = NULL;
	optind = 0;
	opterr = 0;
	ch = getopt_long(argc, argv, ":", longopts, NULL);
	if (ch != -1)
		return queue_bad_option(c, ch, argv);
	if (optind == argc)
		return cmd_usage_error(c, "expected a task id");
	if (optind + 1 < argc)
		return cmd_usage_error(c, "unexpected argument '%s'",
		    argv[optind + 1]);
	*id = argv[optind];
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	*conn = db_connect(cfg, c->name);
	if (*conn == NULL)
		return EX_UNAVAILABLE;
	rc = queue_lock_task(*conn, *id, c->name, row);
	if (rc != EX_OK) {
		PQfinish(*conn);
		*conn = NULL;
	}
	return rc;
}
