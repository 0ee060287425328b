/*
 * cmd_enqueue.c - "enqueue": one task from options, or many from NDJSON.
 *
 * Every value is checked here before the database sees it, so bad input
 * names its option or line.  An NDJSON file is streamed into one COPY in
 * one transaction: memory stays bounded by the longest line, and a bad
 * line anywhere means nothing is queued.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "queue_json.h"

#define OPT_FIELD	256		/* getopt value of field f: 256 + f */
#define FLUSH_AT	(256 * 1024)	/* COPY data sent in chunks this big */
#define SHOW_ERRORS	10		/* invalid lines reported one by one */

struct opts {
	const char	*v[QF_COUNT];	/* borrowed from argv */
	const char	*ndjson;
};

/* From this COPY row on, NDJSON line = row + (line - row). */
struct rowmap {
	long	row;
	long	line;
};

struct loader {
	PGconn		*conn;		/* borrowed */
	FILE		*fp;		/* owned unless stdin */
	const char	*name;		/* for messages; borrowed */
	char		*buf;		/* line reader: [start, end) unread */
	size_t		 cap, start, end, scan;
	int		 eof;
	long		 lineno;
	struct queue_buf out;		/* COPY rows not yet sent */
	long long	 base_us;	/* the transaction's now(), in µs */
	long		 rows;
	struct rowmap	*map;
	size_t		 nmap, capmap;
	long		 bad, first_bad;
	int		 copying;
};

static const char insert_sql[] =
	"INSERT INTO tasks (task_id, skill_name, task_type, source_repo, "
	"target_repo, change_event, relationship_config, max_attempts, "
	"priority, run_at) VALUES (COALESCE($1, gen_random_uuid()::text), $2, "
	"$3, $4, $5, $6::jsonb, $7::jsonb, $8::integer, $9::integer, "
	"COALESCE($10::timestamptz, now() + $11::interval, now())) "
	"RETURNING task_id";

static const char copy_sql[] =
	"COPY tasks (task_id, skill_name, task_type, source_repo, target_repo, "
	"change_event, relationship_config, max_attempts, run_at, priority) "
	"FROM STDIN";

static const char keys_hint[] = "a task has task_type, source_repo, "
    "target_repo, change_event, relationship_config and optionally "
    "task_id, skill_name, max_attempts, run_at, priority";

static void
loader_free(struct loader *l)
{
	if (l == NULL)
		return;
	if (l->fp != NULL && l->fp != stdin)
		fclose(l->fp);
	free(l->buf);
	free(l->map);
	queue_buf_free(&l->out);
	memset(l, 0, sizeof(*l));
}

/* Log an invalid line (the first few) and count it. */
static void __attribute__((format(printf, 2, 3)))
bad_line(struct loader *l, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	l->bad++;
	if (l->bad == 1)
		l->first_bad = l->lineno;
	if (l->bad > SHOW_ERRORS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_errx("enqueue: %s line %ld: %s", l->name, l->lineno, msg);
}

/*
 * The next line without its newline, borrowed until the next call.
 * Returns 1, 0 at the end, or -1 after logging a read error or a line
 * longer than QUEUE_LINE_MAX (which would otherwise grow without bound).
 */
static int
next_line(struct loader *l, const char **line, size_t *len)
{
	const char	*nl;
	size_t		 n;
	char		*p;

	for (;;) {
		nl = memchr(l->buf + l->scan, '\n', l->end - l->scan);
		if (nl != NULL || (l->eof && l->start < l->end)) {
			*line = l->buf + l->start;
			*len = (nl ? (size_t)(nl - l->buf) : l->end) - l->start;
			l->start = l->scan = nl ? (size_t)(nl - l->buf) + 1 :
			    l->end;
			l->lineno++;
			return 1;
		}
		if (l->eof)
			return 0;
		l->scan = l->end;
		if (l->end - l->start > QUEUE_LINE_MAX) {
			log_errx("enqueue: %s line %ld is longer than %d bytes "
			    "(two JSON values at their 1 MiB limit fit); is it "
			    "NDJSON, one task per line?", l->name,
			    l->lineno + 1, QUEUE_LINE_MAX);
			return -1;
		}
		/* Keep the partial line, at the front, and read more. */
		memmove(l->buf, l->buf + l->start, l->end - l->start);
		l->end -= l->start;
		l->scan -= l->start;
		l->start = 0;
		if (l->end == l->cap) {
			p = realloc(l->buf, l->cap * 2);
			if (p == NULL)
				fatal("enqueue: growing the line buffer");
			l->buf = p;
			l->cap *= 2;
		}
		n = fread(l->buf + l->end, 1, l->cap - l->end, l->fp);
		if (n == 0 && ferror(l->fp)) {
			log_errx("enqueue: reading %s after line %ld: %s",
			    l->name, l->lineno, strerror(errno));
			return -1;
		}
		if (n == 0)
			l->eof = 1;
		l->end += n;
	}
}

/* What a JSON value is, for "must be X, not Y". */
static const char *
jtype(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	case json_type_int:
		return "a whole number";
	case json_type_double:
		return "a fractional number";
	case json_type_boolean:
		return "a boolean";
	default:
		return "null";
	}
}

static void
int_range(enum queue_field f, long long *min, long long *max)
{
	*min = f == QF_PRIORITY ? QUEUE_PRIORITY_MIN : 1;
	*max = f == QF_PRIORITY ? QUEUE_PRIORITY_MAX : QUEUE_ATTEMPTS_MAX;
}

static int
blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* "YYYY-MM-DD HH:MM:SS.ffffff+00" for base + secs, into buf. */
static const char *
timestamp(long long base_us, long long secs, char *buf, size_t len)
{
	long long	us = base_us + secs * 1000000;
	time_t		t = (time_t)(us / 1000000);
	struct tm	tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, us % 1000000);
	return buf;
}

static void
copy_field(struct queue_buf *b, const char *s, size_t n, int last)
{
	queue_copy_escape(b, s, n);
	queue_buf_add(b, last ? "\n" : "\t", 1);
}

/*
 * Check one NDJSON line (borrowed) and, while every line so far was good,
 * append its COPY row.  Returns 0, or -1 after bad_line().
 */
static int
load_line(struct loader *l, const char *line, size_t len)
{
	struct queue_member	 m[QF_COUNT + 1];
	struct json_object	*obj, *v;
	const char		*s[QF_COUNT];
	size_t			 slen[QF_COUNT];
	long long		 num[QF_COUNT], secs = 0, min, max;
	char			 why[512], id[37], skill[QUEUE_SKILL_MAX + 1];
	char			 ts[48], digits[2][24];
	int			 n, i, f, rc = -1;

	memset(s, 0, sizeof(s));
	memset(slen, 0, sizeof(slen));
	num[QF_MAX_ATTEMPTS] = QUEUE_DEFAULT_MAX_ATTEMPTS;
	num[QF_PRIORITY] = QUEUE_DEFAULT_PRIORITY;
	obj = queue_json_parse(line, len, why, sizeof(why));
	if (obj == NULL) {
		bad_line(l, "%s", why);
		return -1;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		bad_line(l, "is %s; each line must be one JSON object (a task)",
		    jtype(obj));
		goto out;
	}
	n = queue_json_members(line, len, m, QF_COUNT + 1);
	if (n == -1) {
		bad_line(l, "has more than %d keys; %s", QF_COUNT, keys_hint);
		goto out;
	}
	for (i = 0; i < n; i++) {
		f = queue_field_by_key(m[i].key, m[i].keylen);
		if (f == -1) {
			bad_line(l, "unknown key \"%.*s\"; %s", m[i].keylen > 64 ?
			    64 : (int)m[i].keylen, m[i].key, keys_hint);
			goto out;
		}
		if (s[f] != NULL) {
			bad_line(l, "key \"%s\" appears twice",
			    queue_field_key(f));
			goto out;
		}
		s[f] = m[i].val;
		slen[f] = m[i].vallen;
	}
	for (f = 0; f < QF_COUNT; f++) {
		if (s[f] == NULL || !json_object_object_get_ex(obj,
		    queue_field_key(f), &v) || v == NULL) {
			/* Absent, or null: the default if it has one. */
			if (f == QF_TYPE || f == QF_SOURCE || f == QF_TARGET ||
			    f == QF_CHANGE_EVENT ||
			    f == QF_RELATIONSHIP_CONFIG) {
				bad_line(l, "%s is %s; it is required",
				    queue_field_key(f), s[f] ? "null" :
				    "missing");
				goto out;
			}
			s[f] = NULL;
			continue;
		}
		switch (f) {
		case QF_CHANGE_EVENT:
		case QF_RELATIONSHIP_CONFIG:
			if (!json_object_is_type(v, json_type_object)) {
				bad_line(l, "%s must be a JSON object, not %s",
				    queue_field_key(f), jtype(v));
				goto out;
			}
			if (slen[f] > QUEUE_JSON_MAX) {
				bad_line(l, "%s is %zu bytes; the limit is %d "
				    "(1 MiB)", queue_field_key(f), slen[f],
				    QUEUE_JSON_MAX);
				goto out;
			}
			break;	/* the text as written goes to COPY */
		case QF_MAX_ATTEMPTS:
		case QF_PRIORITY:
			if (!json_object_is_type(v, json_type_int)) {
				bad_line(l, "%s must be a whole number, not %s",
				    queue_field_key(f), jtype(v));
				goto out;
			}
			/* The text as written: json-c clamps big numbers. */
			int_range(f, &min, &max);
			if (queue_parse_int(s[f], slen[f], min, max, &num[f],
			    why, sizeof(why)) == -1) {
				bad_line(l, "%s %s", queue_field_key(f), why);
				goto out;
			}
			break;
		default:
			if (!json_object_is_type(v, json_type_string)) {
				bad_line(l, "%s must be a string, not %s",
				    queue_field_key(f), jtype(v));
				goto out;
			}
			s[f] = json_object_get_string(v);
			slen[f] = (size_t)json_object_get_string_len(v);
			if (queue_check_text(f, s[f], slen[f], why,
			    sizeof(why)) == -1) {
				bad_line(l, "%s %s", queue_field_key(f), why);
				goto out;
			}
		}
	}
	if (s[QF_RUN_AT] != NULL && s[QF_RUN_AT][0] == '+' &&
	    queue_parse_duration(s[QF_RUN_AT] + 1, &secs, why,
	    sizeof(why)) == -1) {
		bad_line(l, "run_at %s", why);
		goto out;
	}
	rc = 0;
	if (l->bad > 0)
		goto out;	/* nothing more will be sent */

	if (s[QF_ID] == NULL) {
		queue_uuid(id);
		s[QF_ID] = id;
		slen[QF_ID] = strlen(id);
	}
	if (s[QF_SKILL] == NULL) {
		s[QF_SKILL] = queue_default_skill(s[QF_TYPE], skill,
		    sizeof(skill));
		slen[QF_SKILL] = strlen(skill);
	}
	copy_field(&l->out, s[QF_ID], slen[QF_ID], 0);
	copy_field(&l->out, s[QF_SKILL], slen[QF_SKILL], 0);
	copy_field(&l->out, s[QF_TYPE], slen[QF_TYPE], 0);
	copy_field(&l->out, s[QF_SOURCE], slen[QF_SOURCE], 0);
	copy_field(&l->out, s[QF_TARGET], slen[QF_TARGET], 0);
	copy_field(&l->out, s[QF_CHANGE_EVENT], slen[QF_CHANGE_EVENT], 0);
	copy_field(&l->out, s[QF_RELATIONSHIP_CONFIG],
	    slen[QF_RELATIONSHIP_CONFIG], 0);
	snprintf(digits[0], sizeof(digits[0]), "%lld", num[QF_MAX_ATTEMPTS]);
	copy_field(&l->out, digits[0], strlen(digits[0]), 0);
	/* Absent: the transaction's now(), as the column default has it. */
	if (s[QF_RUN_AT] == NULL || s[QF_RUN_AT][0] == '+') {
		timestamp(l->base_us, secs, ts, sizeof(ts));
		copy_field(&l->out, ts, strlen(ts), 0);
	} else
		copy_field(&l->out, s[QF_RUN_AT], slen[QF_RUN_AT], 0);
	snprintf(digits[1], sizeof(digits[1]), "%lld", num[QF_PRIORITY]);
	copy_field(&l->out, digits[1], strlen(digits[1]), 1);
out:
	json_object_put(obj);
	return rc;
}

/* Remember where COPY rows and NDJSON lines part (at blank lines). */
static void
map_row(struct loader *l)
{
	struct rowmap	*p;
	long		 line = l->rows;

	if (l->nmap > 0)
		line += l->map[l->nmap - 1].line - l->map[l->nmap - 1].row;
	if (line == l->lineno)
		return;
	if (l->nmap == l->capmap) {
		l->capmap = l->capmap ? l->capmap * 2 : 16;
		p = reallocarray(l->map, l->capmap, sizeof(*p));
		if (p == NULL)
			fatal("enqueue: growing the line map");
		l->map = p;
	}
	l->map[l->nmap].row = l->rows;
	l->map[l->nmap].line = l->lineno;
	l->nmap++;
}

static long
row_line(const struct loader *l, long row)
{
	size_t i;

	for (i = l->nmap; i > 0; i--)
		if (l->map[i - 1].row <= row)
			return row + l->map[i - 1].line - l->map[i - 1].row;
	return row;
}

static int
flush(struct loader *l)
{
	if (l->out.len == 0)
		return 0;
	if (PQputCopyData(l->conn, l->out.data, (int)l->out.len) != 1) {
		log_errx("enqueue: sending %s to the database: %s", l->name,
		    PQerrorMessage(l->conn));
		return -1;
	}
	l->out.len = 0;
	return 0;
}

/*
 * End the COPY: with errmsg it is abandoned.  Returns the server's
 * verdict, owned by the caller; the rest of the results are drained.
 */
static PGresult *
end_copy(struct loader *l, const char *errmsg)
{
	PGresult *res, *extra;

	l->copying = 0;
	if (PQputCopyEnd(l->conn, errmsg) != 1)
		log_debug("enqueue: ending COPY: %s", PQerrorMessage(l->conn));
	res = PQgetResult(l->conn);
	if (res == NULL)
		res = PQmakeEmptyPGresult(l->conn, PGRES_FATAL_ERROR);
	for (;;) {
		extra = PQgetResult(l->conn);
		if (extra == NULL)
			break;
		PQclear(extra);
	}
	return res;
}

/* Report a COPY the server refused, at the NDJSON line it names. */
static int
copy_failed(struct loader *l, PGresult *res)
{
	const char	*ctx, *state, *p, *detail, *msg, *key, *end, *col;
	char		 what[512], column[80] = "";
	long		 row = 0;

	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	ctx = PQresultErrorField(res, PG_DIAG_CONTEXT);
	p = ctx ? strstr(ctx, "COPY tasks, line ") : NULL;
	if (p != NULL)
		row = strtol(p + strlen("COPY tasks, line "), NULL, 10);
	col = p ? strstr(p, ", column ") : NULL;
	if (col != NULL)
		snprintf(column, sizeof(column), "%.*s: ",
		    (int)strcspn(col + 9, ":"), col + 9);
	if (state == NULL || row <= 0 || (strncmp(state, "22", 2) != 0 &&
	    strncmp(state, "23", 2) != 0)) {
		snprintf(what, sizeof(what), "enqueue: loading %s; nothing "
		    "was queued", l->name);
		return queue_fail(l->conn, res, what);
	}
	msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	key = detail ? strstr(detail, "=(") : NULL;
	end = key ? strstr(key, ") already exists") : NULL;
	if (strcmp(state, "23505") == 0 && end != NULL)
		log_errx("enqueue: %s line %ld: task id '%.*s' already exists "
		    "(in the queue, or earlier in this file); nothing was "
		    "queued: give the line another task_id, or leave it out "
		    "to get a generated one", l->name, row_line(l, row),
		    (int)(end - key - 2), key + 2);
	else
		log_errx("enqueue: %s line %ld: %s%s%s%s%s; nothing was queued",
		    l->name, row_line(l, row), column,
		    msg ? msg : "invalid value",
		    detail ? " (" : "", detail ? detail : "",
		    detail ? ")" : "");
	return EX_DATAERR;
}

static int
start_load(struct loader *l)
{
	PGresult	*res;
	int		 rc = EX_OK;

	res = queue_exec(l->conn, "BEGIN", 0, NULL);
	if (!queue_ok(res))
		goto out;
	PQclear(res);
	/* The load takes as long as the input; it is not a runaway query. */
	res = queue_exec(l->conn, "SET LOCAL statement_timeout = 0", 0, NULL);
	if (!queue_ok(res))
		goto out;
	PQclear(res);
	res = queue_exec(l->conn, "SELECT (extract(epoch FROM now()) * "
	    "1000000)::bigint", 0, NULL);
	if (!queue_ok(res))
		goto out;
	l->base_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = queue_exec(l->conn, copy_sql, 0, NULL);
	if (PQresultStatus(res) != PGRES_COPY_IN)
		goto out;
	l->copying = 1;
	PQclear(res);
	res = NULL;
out:
	if (res != NULL) {
		rc = queue_fail(l->conn, res, "enqueue: starting the load");
		PQclear(res);
	}
	return rc;
}

static int
enqueue_ndjson(struct agent *a, const char *path)
{
	struct loader	 l;
	struct cfg	*cfg;
	struct timespec	 t0, t1;
	PGresult	*res = NULL;
	const char	*line;
	size_t		 len;
	double		 secs;
	int		 rc, got;

	memset(&l, 0, sizeof(l));
	l.name = strcmp(path, "-") == 0 ? "stdin" : path;
	l.fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (l.fp == NULL) {
		log_errx("enqueue: --ndjson: cannot open %s: %s; check the "
		    "path and its permissions", path, strerror(errno));
		return EX_NOINPUT;
	}
	l.cap = 256 * 1024;
	l.buf = malloc(l.cap);
	if (l.buf == NULL)
		fatal("enqueue: malloc");
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		goto out;
	l.conn = db_connect(cfg, "enqueue");
	if (l.conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (PQsetClientEncoding(l.conn, "UTF8") != 0)
		log_warnx("enqueue: cannot set client_encoding to UTF8: %s",
		    PQerrorMessage(l.conn));
	rc = start_load(&l);
	if (rc != EX_OK)
		goto out;
	for (;;) {
		got = next_line(&l, &line, &len);
		if (got == -1) {
			rc = EX_DATAERR;
			goto out;
		}
		if (got == 0)
			break;
		if (blank(line, len))
			continue;
		if (load_line(&l, line, len) == -1) {
			if (l.copying) {
				PQclear(end_copy(&l, "invalid input"));
				queue_rollback(l.conn);
			}
			continue;	/* to report the other bad lines */
		}
		if (l.bad > 0)
			continue;
		l.rows++;
		map_row(&l);
		if (l.out.len >= FLUSH_AT && flush(&l) == -1) {
			rc = EX_TEMPFAIL;
			goto out;
		}
	}
	if (l.bad > 0) {
		log_errx("enqueue: %s: %ld invalid line%s (the first is line "
		    "%ld%s); nothing was queued: fix %s and load the whole file "
		    "again", l.name, l.bad, l.bad == 1 ? "" : "s", l.first_bad,
		    l.bad > SHOW_ERRORS ? "; only the first ten are shown" : "",
		    l.bad == 1 ? "it" : "them");
		rc = EX_DATAERR;
		goto out;
	}
	if (flush(&l) == -1) {
		rc = EX_TEMPFAIL;
		goto out;
	}
	res = end_copy(&l, NULL);
	if (!queue_ok(res)) {
		rc = copy_failed(&l, res);
		goto out;
	}
	PQclear(res);
	res = queue_exec(l.conn, "COMMIT", 0, NULL);
	if (!queue_ok(res)) {
		rc = queue_fail(l.conn, res, "enqueue: committing the load; "
		    "nothing was queued");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("enqueue: queued %ld task%s from %s in %.2f s (%.0f tasks/s)\n",
	    l.rows, l.rows == 1 ? "" : "s", l.name, secs,
	    secs > 0 ? (double)l.rows / secs : 0.0);
	rc = EX_OK;
out:
	PQclear(res);
	if (l.conn != NULL) {
		if (l.copying)
			PQclear(end_copy(&l, "enqueue stopped"));
		queue_rollback(l.conn);
		PQfinish(l.conn);
	}
	loader_free(&l);
	return rc;
}

/* Check every option; the JSON texts are read into json[] (caller frees). */
static int
check_one(const struct opts *o, char *json[2], long long num[QF_COUNT],
    long long *secs)
{
	static const enum queue_field text[] = { QF_ID, QF_SKILL, QF_TYPE,
	    QF_SOURCE, QF_TARGET };
	static const enum queue_field ints[] = { QF_MAX_ATTEMPTS,
	    QF_PRIORITY };
	static const enum queue_field js[2] = { QF_CHANGE_EVENT,
	    QF_RELATIONSHIP_CONFIG };
	struct json_object	*obj;
	const char		*opt;
	char			 why[512], what[64];
	size_t			 i, len;
	long long		 min, max;
	int			 rc = EX_DATAERR, f;

	for (i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		f = text[i];
		if (o->v[f] != NULL && queue_check_text(f, o->v[f],
		    strlen(o->v[f]), why, sizeof(why)) == -1) {
			log_errx("enqueue: %s %s", queue_field_option(f), why);
			return EX_DATAERR;
		}
	}
	num[QF_MAX_ATTEMPTS] = QUEUE_DEFAULT_MAX_ATTEMPTS;
	num[QF_PRIORITY] = QUEUE_DEFAULT_PRIORITY;
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		f = ints[i];
		if (o->v[f] == NULL)
			continue;
		int_range(f, &min, &max);
		if (queue_parse_int(o->v[f], strlen(o->v[f]), min, max,
		    &num[f], why, sizeof(why)) == -1) {
			log_errx("enqueue: %s %s", queue_field_option(f), why);
			return EX_DATAERR;
		}
	}
	*secs = -1;
	if (o->v[QF_RUN_AT] != NULL) {
		if (o->v[QF_RUN_AT][0] == '+' &&
		    queue_parse_duration(o->v[QF_RUN_AT] + 1, secs, why,
		    sizeof(why)) == -1) {
			log_errx("enqueue: --run-at %s", why);
			return EX_DATAERR;
		}
		if (o->v[QF_RUN_AT][0] != '+' && queue_check_text(QF_RUN_AT,
		    o->v[QF_RUN_AT], strlen(o->v[QF_RUN_AT]), why,
		    sizeof(why)) == -1) {
			log_errx("enqueue: --run-at %s", why);
			return EX_DATAERR;
		}
	}
	for (i = 0; i < 2; i++) {
		opt = queue_field_option(js[i]);
		snprintf(what, sizeof(what), "enqueue: %s", opt);
		json[i] = queue_json_read_arg(o->v[js[i]], what, &len, &rc);
		if (json[i] == NULL)
			return rc;
		obj = queue_json_parse(json[i], len, why, sizeof(why));
		if (obj == NULL) {
			log_errx("enqueue: %s %s", opt, why);
			return EX_DATAERR;
		}
		if (!json_object_is_type(obj, json_type_object)) {
			log_errx("enqueue: %s must be a JSON object ({...}), "
			    "not %s", opt, jtype(obj));
			json_object_put(obj);
			return EX_DATAERR;
		}
		json_object_put(obj);
	}
	return EX_OK;
}

static int
enqueue_one(struct agent *a, const struct opts *o)
{
	struct cfg	*cfg;
	PGconn		*conn = NULL;
	PGresult	*res = NULL;
	const char	*p[11], *state;
	char		*json[2] = { NULL, NULL };
	char		 skill[QUEUE_SKILL_MAX + 1], maxa[24], prio[24];
	char		 interval[48];
	long long	 num[QF_COUNT], secs;
	int		 rc;

	rc = check_one(o, json, num, &secs);
	if (rc != EX_OK)
		goto out;
	snprintf(maxa, sizeof(maxa), "%lld", num[QF_MAX_ATTEMPTS]);
	snprintf(prio, sizeof(prio), "%lld", num[QF_PRIORITY]);
	p[0] = o->v[QF_ID];
	p[1] = o->v[QF_SKILL] ? o->v[QF_SKILL] :
	    queue_default_skill(o->v[QF_TYPE], skill, sizeof(skill));
	p[2] = o->v[QF_TYPE];
	p[3] = o->v[QF_SOURCE];
	p[4] = o->v[QF_TARGET];
	p[5] = json[0];
	p[6] = json[1];
	p[7] = maxa;
	p[8] = prio;
	p[9] = secs < 0 ? o->v[QF_RUN_AT] : NULL;
	p[10] = secs < 0 ? NULL : queue_interval(secs, interval,
	    sizeof(interval));

	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		goto out;
	conn = db_connect(cfg, "enqueue");
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (PQsetClientEncoding(conn, "UTF8") != 0)
		log_warnx("enqueue: cannot set client_encoding to UTF8: %s",
		    PQerrorMessage(conn));
	res = queue_exec(conn, insert_sql, 11, p);
	if (queue_ok(res)) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		rc = EX_OK;
		goto out;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		state = "";
	if (strcmp(state, "23505") == 0) {
		log_errx("enqueue: task id '%s' already exists; choose another "
		    "--id, or leave it out to get a generated one", p[0]);
		rc = EX_DATAERR;
	} else if (p[9] != NULL && strncmp(state, "22", 2) == 0 &&
	    strcmp(state, "22P02") != 0 && strcmp(state, "22P05") != 0) {
		/* The only date/time parameter is --run-at. */
		log_errx("enqueue: --run-at: PostgreSQL cannot read '%s' as a "
		    "time: %s; use ISO 8601 such as 2026-11-28T09:00:00Z, or "
		    "+30s, +5m, +2h", p[9], PQresultErrorField(res,
		    PG_DIAG_MESSAGE_PRIMARY));
		rc = EX_DATAERR;
	} else
		rc = queue_fail(conn, res, "enqueue: inserting the task");
out:
	PQclear(res);
	if (conn != NULL)
		PQfinish(conn);
	free(json[0]);
	free(json[1]);
	return rc;
}

static int
enqueue_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "id", required_argument, NULL, OPT_FIELD + QF_ID },
		{ "skill", required_argument, NULL, OPT_FIELD + QF_SKILL },
		{ "type", required_argument, NULL, OPT_FIELD + QF_TYPE },
		{ "source", required_argument, NULL, OPT_FIELD + QF_SOURCE },
		{ "target", required_argument, NULL, OPT_FIELD + QF_TARGET },
		{ "change-event", required_argument, NULL,
		    OPT_FIELD + QF_CHANGE_EVENT },
		{ "relationship-config", required_argument, NULL,
		    OPT_FIELD + QF_RELATIONSHIP_CONFIG },
		{ "run-at", required_argument, NULL, OPT_FIELD + QF_RUN_AT },
		{ "max-attempts", required_argument, NULL,
		    OPT_FIELD + QF_MAX_ATTEMPTS },
		{ "priority", required_argument, NULL,
		    OPT_FIELD + QF_PRIORITY },
		{ "ndjson", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	static const enum queue_field required[] = { QF_TYPE, QF_SOURCE,
	    QF_TARGET, QF_CHANGE_EVENT, QF_RELATIONSHIP_CONFIG };
	struct opts	o;
	size_t		i;
	int		ch, f;

	memset(&o, 0, sizeof(o));
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 'n' && o.ndjson != NULL)
			return cmd_usage_error(&cmd_enqueue, "--ndjson given "
			    "twice");
		if (ch == 'n') {
			o.ndjson = optarg;
			continue;
		}
		if (ch < OPT_FIELD || ch >= OPT_FIELD + QF_COUNT)
			return queue_bad_option(&cmd_enqueue, ch, argv);
		f = ch - OPT_FIELD;
		if (o.v[f] != NULL)
			return cmd_usage_error(&cmd_enqueue, "%s given twice",
			    queue_field_option(f));
		o.v[f] = optarg;
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_enqueue, "unexpected argument "
		    "'%s'", argv[optind]);
	if (o.ndjson != NULL) {
		for (f = 0; f < QF_COUNT; f++)
			if (o.v[f] != NULL)
				return cmd_usage_error(&cmd_enqueue, "%s cannot "
				    "be combined with --ndjson, which reads "
				    "every field from the file",
				    queue_field_option(f));
		return enqueue_ndjson(a, o.ndjson);
	}
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (o.v[required[i]] == NULL)
			return cmd_usage_error(&cmd_enqueue, "%s is required",
			    queue_field_option(required[i]));
	if (strcmp(o.v[QF_CHANGE_EVENT], "-") == 0 &&
	    strcmp(o.v[QF_RELATIONSHIP_CONFIG], "-") == 0)
		return cmd_usage_error(&cmd_enqueue, "only one of "
		    "--change-event and --relationship-config can read stdin "
		    "('-'); give the other as text or @FILE");
	return enqueue_one(a, &o);
}

const struct cmd cmd_enqueue = {
	"enqueue",
	"--type TYPE --source OWNER/REPO --target OWNER/REPO "
	"--change-event JSON --relationship-config JSON [--id ID] "
	"[--skill NAME] [--run-at TIME] [--max-attempts N] [--priority N] | "
	"--ndjson FILE",
	"add tasks to the queue",
	"Add one task; its id is printed as the last line (a generated UUID "
	"unless --id is given).  JSON arguments are the text itself, @FILE, "
	"or - for stdin (one of them at most); change_event and "
	"relationship_config must be JSON objects, at most 1 MiB each.  "
	"Repositories are OWNER/REPO (letters, digits, '.', '_', '-'); TYPE "
	"and NAME use the same characters, at most 50 and 100 of them; an "
	"id is at most 64 printable ASCII characters without spaces.  The "
	"skill defaults to trigger_TYPE.  --run-at takes what PostgreSQL "
	"reads as a timestamptz (ISO 8601 such as 2026-11-28T09:00:00Z; "
	"without a zone, the server's time zone) or +DURATION such as +30s, "
	"+5m, +2h.  --max-attempts is 1 to 100 (default 3), --priority "
	"-1000000 to 1000000 (default 0; higher runs first).\n"
	"--ndjson FILE (- for stdin): one JSON object per line with the "
	"keys task_type, source_repo, target_repo, change_event, "
	"relationship_config and optionally task_id, skill_name, "
	"max_attempts, run_at, priority; blank lines are skipped, other keys "
	"refused, lines are at most 3 MiB.  The file is loaded with COPY in "
	"one transaction: a bad line, or a task id that exists already, "
	"means nothing is queued, and the line is named.\n"
	"Bad input exits 65 and inserts nothing; an unreadable file 66.",
	enqueue_run,
};
