/*
 * queue.h - the built-in task queue: input limits and checks, durations,
 * COPY text encoding, and the SQL and output helpers its commands share.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

struct agent;
struct cmd;
struct json_object;

/*
 * Input limits.  The string ones are the column widths of tasks in
 * sql/0001_baseline.sql; every accepted character is ASCII, so bytes and
 * characters agree.
 */
#define QUEUE_ID_MAX		64
#define QUEUE_SKILL_MAX		100
#define QUEUE_TYPE_MAX		50
#define QUEUE_REPO_MAX		255
#define QUEUE_RUN_AT_MAX	64
#define QUEUE_JSON_MAX		(1024 * 1024)	/* bytes per JSON value */
#define QUEUE_JSON_DEPTH	64		/* nesting levels */
#define QUEUE_LINE_MAX		(3 * 1024 * 1024)	/* bytes per NDJSON line */
#define QUEUE_ATTEMPTS_MAX	100
#define QUEUE_PRIORITY_MIN	(-1000000)
#define QUEUE_PRIORITY_MAX	1000000
#define QUEUE_DURATION_MAX	(3650LL * 86400)	/* ten years, seconds */

/*
 * Column defaults of tasks (sql/0001, sql/0002), repeated here because COPY
 * cannot ask for a column's DEFAULT in one row and not in another.
 */
#define QUEUE_DEFAULT_MAX_ATTEMPTS	3
#define QUEUE_DEFAULT_PRIORITY		0

/* A timestamptz expression as ISO 8601 UTC text, in SQL. */
#define QUEUE_TS(col) \
	"to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/*
 * SQL: worker row w is live, i.e. not stopped and heard from within the
 * last QUEUE_LIVE_SECS seconds.
 */
#define QUEUE_LIVE_SECS		60
#define QUEUE_STR(x)		#x
#define QUEUE_XSTR(x)		QUEUE_STR(x)
#define QUEUE_LIVE_WORKER(w) \
	"(" w ".stopped_at IS NULL AND " w ".heartbeat_at > now() - " \
	"interval '" QUEUE_XSTR(QUEUE_LIVE_SECS) " seconds')"

/* The statuses of tasks_status_check, in lifecycle order; NULL-terminated. */
extern const char *const queue_statuses[];

/* 1 if s is one of queue_statuses. */
int		 queue_status_valid(const char *s);

/* The fields of a task as enqueue takes them. */
enum queue_field {
	QF_ID,
	QF_SKILL,
	QF_TYPE,
	QF_SOURCE,
	QF_TARGET,
	QF_CHANGE_EVENT,
	QF_RELATIONSHIP_CONFIG,
	QF_RUN_AT,
	QF_MAX_ATTEMPTS,
	QF_PRIORITY,
	QF_COUNT
};

/* Names for messages: the option ("--type") and the NDJSON key. Static. */
const char	*queue_field_option(enum queue_field);
const char	*queue_field_key(enum queue_field);

/* The field whose NDJSON key is the len bytes at key, or -1. key borrowed. */
int		 queue_field_by_key(const char *key, size_t len);

/*
 * Check the text fields (id, skill, type, source, target, run-at): not
 * empty, within the limit, allowed characters; repos must be OWNER/REPO.
 * s (len bytes, need not be NUL-terminated) is borrowed.  Returns 0, or -1
 * with why (not naming the field) written to the caller's buffer.
 */
int		 queue_check_text(enum queue_field, const char *s, size_t len,
		    char *why, size_t whylen);

/* The bounds of the integer fields max_attempts and priority. */
void		 queue_int_range(enum queue_field, long long *min,
		    long long *max);

/*
 * The skill_name a task gets when none is given, as the seed's client
 * chose it: trigger_consumer_triage, trigger_template_triage, else
 * trigger_TYPE.  Written to the caller's buf, which is returned.
 */
const char	*queue_default_skill(const char *type, char *buf, size_t len);

/*
 * Parse a duration: a number and unit (s, m, h, d), or several such as
 * "1h30m", at most QUEUE_DURATION_MAX seconds.  s is borrowed.  Returns 0
 * with *secs set, or -1 with why in the caller's buffer.
 */
int		 queue_parse_duration(const char *s, long long *secs, char *why,
		    size_t whylen);

/* "N seconds", text for an SQL interval parameter, in the caller's buf. */
const char	*queue_interval(long long secs, char *buf, size_t len);

/*
 * Parse a decimal integer in [min, max] from len bytes at s (borrowed).
 * Returns 0 with *out set, or -1 with why in the caller's buffer.
 */
int		 queue_parse_int(const char *s, size_t len, long long min,
		    long long max, long long *out, char *why, size_t whylen);

/*
 * A time-ordered (version 7) UUID, lowercase, into the caller's out.  Ids
 * made by one process increase, so a bulk load appends to the primary key
 * and to task_history's task_id index instead of writing all over them.
 */
void		 queue_uuid(char out[37]);

/* A growing byte buffer; data is owned by the buffer. */
struct queue_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

/* Append n bytes (borrowed); aborts on out of memory. */
void		 queue_buf_add(struct queue_buf *, const char *, size_t n);
/* Free the buffer's data and empty it; NULL-tolerant. */
void		 queue_buf_free(struct queue_buf *);

/*
 * Append n bytes of s (borrowed) escaped for COPY's text format: backslash,
 * tab, newline and carriage return become \\, \t, \n, \r.
 */
void		 queue_copy_escape(struct queue_buf *, const char *s, size_t n);

/*
 * Run a parameterised statement (params borrowed).  Never NULL: the
 * result, failed or not, is the caller's to PQclear.  Unlike db_exec it
 * keeps a failed result so the caller can act on its SQLSTATE.
 */
PGresult	*queue_exec(PGconn *, const char *sql, int nparams,
		    const char *const *params);

/* 1 if res is COMMAND_OK or TUPLES_OK. */
int		 queue_ok(const PGresult *res);

/*
 * Log a failed statement as "what: message (detail)" with what to do, and
 * return its exit code: 75 when the connection was lost or a lock or
 * timeout may clear, 65 for bad data, 69 when the queue schema is missing
 * (run schema init) or access is denied, else 70.  Both pointers borrowed.
 */
int		 queue_fail(PGconn *, const PGresult *res, const char *what);

/* Roll back the open transaction, if any, while the connection is up. */
void		 queue_rollback(PGconn *);

/*
 * The start of a command that acts on one task ("cancel ID"): check the
 * arguments, connect (purpose = c->name) and lock the task row as
 * queue_lock_task does.  On EX_OK *id is borrowed from argv and *conn and
 * *row are owned by the caller; otherwise the error was reported and
 * nothing is left to free.
 */
int	 queue_one_task(struct agent *a, const struct cmd *c, int argc,
	    char **argv, const char **id, PGconn **conn, PGresult **row);

/*
 * Begin a transaction and lock the row of task id (borrowed).  Returns 0
 * with *row, owned by the caller, holding its status, worker_id,
 * attempt_count, max_attempts and leased (lease_expires_at set); or 69
 * after logging that no task has the id, or an exit code as queue_fail;
 * on failure the transaction is rolled back.  cmd prefixes messages.
 */
int		 queue_lock_task(PGconn *, const char *id, const char *cmd,
		    PGresult **row);

/* Commit; on failure logs "what: ..." and returns queue_fail's code. */
int		 queue_commit(PGconn *, const char *what);

/*
 * A JSON value built from column col of row (borrowed res): integers,
 * booleans and numerics as numbers, json/jsonb verbatim (so nothing is
 * rounded), SQL NULL as null, anything else as a string.  The caller owns
 * the object (json_object_put), NULL for null.
 */
struct json_object *queue_json_value(const PGresult *, int row, int col);

/* Every column of row as an object keyed by column name; caller owns it. */
struct json_object *queue_json_row(const PGresult *, int row);

/* Print obj (borrowed) pretty, with a newline. */
void		 queue_json_print(FILE *, struct json_object *obj);

/* Print row as aligned "name: value" lines; NULL as "-". */
void		 queue_print_row(FILE *, const PGresult *, int row);

/*
 * Print columns cols[0..n-1] of res (borrowed) as a table under heads,
 * each as wide as its widest value; NULL as "-".
 */
void		 queue_print_table(FILE *, const PGresult *, const int *cols,
		    const char *const *heads, int n);

/*
 * Report a bad option found by getopt_long (ch is ':' or '?') as a usage
 * error of c; returns 64.  c and argv borrowed.
 */
int		 queue_bad_option(const struct cmd *c, int ch, char **argv);

#endif
