/*
 * queue_load.c - NDJSON into the queue: streamed line by line into one
 * COPY in one transaction, so memory stays bounded by the longest line and
 * a bad line anywhere means nothing is queued.
 *
 * Each line is checked here first, with the rules of a single enqueue, so
 * bad input names its line; what only the server can judge (a task_id
 * that exists, a run_at it cannot read) is mapped back from COPY's error
 * context to the NDJSON line.
 */
#include <errno.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "log.h"
#include "queue.h"
#include "queue_json.h"
#include "queue_load.h"

#define ANALYZE_AT	10000	/* rows after which the load ANALYZEs */
#define FLUSH_AT	(256 * 1024)	/* COPY data sent in chunks this big */
#define SHOW_ERRORS	10		/* invalid lines reported one by one */

/* From this COPY row on, NDJSON line = row + (line - row). */
struct rowmap {
	long	row;
	long	line;
};

struct loader {
	PGconn		*conn;		/* borrowed */
	FILE		*fp;		/* borrowed */
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

static const char copy_sql[] =
	"COPY tasks (task_id, skill_name, task_type, source_repo, target_repo, "
	"change_event, relationship_config, max_attempts, run_at, priority) "
	"FROM STDIN";

static const char keys_hint[] = "a task has task_type, source_repo, "
    "target_repo, change_event, relationship_config and optionally "
    "task_id, skill_name, max_attempts, run_at, priority";

/* Free what l owns (not conn or fp); NULL-tolerant. */
static void
loader_free(struct loader *l)
{
	if (l == NULL)
		return;
	free(l->buf);
	free(l->map);
	queue_buf_free(&l->out);
	memset(l, 0, sizeof(*l));
}

/* Log an invalid line (the first few) and count it.  l is borrowed. */
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
 * Returns 1, or 0 at the end; else an exit code after logging: 65 for a
 * line longer than QUEUE_LINE_MAX (it would otherwise grow without
 * bound), 66 for a read error.
 */
static int
next_line(struct loader *l, const char **line, size_t *len)
{
	const char	*nl;
	size_t		 n, end;
	char		*p;

	for (;;) {
		nl = memchr(l->buf + l->scan, '\n', l->end - l->scan);
		end = nl ? (size_t)(nl - l->buf) : l->end;
		/* Whole or partial: either way it is too long. */
		if (end - l->start > QUEUE_LINE_MAX) {
			log_errx("enqueue: %s line %ld is longer than %d bytes "
			    "(two JSON values at their 1 MiB limit fit); nothing "
			    "was queued: is it NDJSON, one task per line?",
			    l->name, l->lineno + 1, QUEUE_LINE_MAX);
			return EX_DATAERR;
		}
		if (nl != NULL || (l->eof && l->start < l->end)) {
			*line = l->buf + l->start;
			*len = end - l->start;
			l->start = l->scan = nl ? end + 1 : end;
			l->lineno++;
			return 1;
		}
		if (l->eof)
			return 0;
		l->scan = l->end;
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
			log_errx("enqueue: reading %s after line %ld: %s; "
			    "nothing was queued", l->name, l->lineno,
			    strerror(errno));
			return EX_NOINPUT;
		}
		if (n == 0)
			l->eof = 1;
		l->end += n;
	}
}

/* 1 if the len bytes at s (borrowed) are only JSON whitespace. */
static int
blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/* "YYYY-MM-DD HH:MM:SS.ffffff+00" for base + secs, into buf (returned). */
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

/* Append s (borrowed) as a COPY field, then a tab, or a newline if last. */
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
		    queue_json_kind(obj));
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
				    queue_field_key(f), queue_json_kind(v));
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
				    queue_field_key(f), queue_json_kind(v));
				goto out;
			}
			/* The text as written: json-c clamps big numbers. */
			queue_int_range(f, &min, &max);
			if (queue_parse_int(s[f], slen[f], min, max, &num[f],
			    why, sizeof(why)) == -1) {
				bad_line(l, "%s %s", queue_field_key(f), why);
				goto out;
			}
			break;
		default:
			if (!json_object_is_type(v, json_type_string)) {
				bad_line(l, "%s must be a string, not %s",
				    queue_field_key(f), queue_json_kind(v));
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

/* Remember where COPY rows and NDJSON lines part (after blank lines). */
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

/* The NDJSON line of COPY row (1-based), from l's map (borrowed). */
static long
row_line(const struct loader *l, long row)
{
	size_t i;

	for (i = l->nmap; i > 0; i--)
		if (l->map[i - 1].row <= row)
			return row + l->map[i - 1].line - l->map[i - 1].row;
	return row;
}

/* Send the buffered rows; 0, or -1 after logging. */
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

/*
 * Report a COPY the server refused (res, borrowed) at the NDJSON line it
 * names; returns the exit code.
 */
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

/* BEGIN, read the transaction's now(), and start the COPY. */
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

int
queue_load_ndjson(PGconn *conn, FILE *fp, const char *name, long *rows)
{
	struct loader	 l;
	PGresult	*res = NULL;
	const char	*line;
	size_t		 len;
	int		 rc, got;

	memset(&l, 0, sizeof(l));
	l.conn = conn;
	l.fp = fp;
	l.name = name;
	l.cap = 256 * 1024;
	l.buf = malloc(l.cap);
	if (l.buf == NULL)
		fatal("enqueue: malloc");
	rc = start_load(&l);
	if (rc != EX_OK)
		goto out;
	for (;;) {
		got = next_line(&l, &line, &len);
		if (got == 0)
			break;
		if (got != 1) {
			rc = got;
			goto out;
		}
		if (blank(line, len))
			continue;
		if (load_line(&l, line, len) == -1) {
			if (l.copying) {
				PQclear(end_copy(&l, "invalid input"));
				queue_rollback(conn);
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
		    "again", name, l.bad, l.bad == 1 ? "" : "s", l.first_bad,
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
	res = queue_exec(conn, "COMMIT", 0, NULL);
	if (!queue_ok(res)) {
		rc = queue_fail(conn, res, "enqueue: committing the load; "
		    "nothing was queued");
		goto out;
	}
	PQclear(res);
	res = NULL;
	/*
	 * A big load leaves the planner's statistics describing a queue that
	 * no longer exists until autovacuum gets round to it; the workers'
	 * batch statements are planned on them now.  The load is committed:
	 * a failure here is only worth a warning.
	 */
	if (l.rows >= ANALYZE_AT) {
		res = queue_exec(conn, "ANALYZE tasks", 0, NULL);
		if (!queue_ok(res))
			log_warnx("enqueue: %ld tasks queued, but ANALYZE tasks "
			    "failed: %s", l.rows, PQresultErrorMessage(res));
	}
	*rows = l.rows;
	rc = EX_OK;
out:
	PQclear(res);
	if (l.copying)
		PQclear(end_copy(&l, "enqueue stopped"));
	queue_rollback(conn);
	loader_free(&l);
	return rc;
}
