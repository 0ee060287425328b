/*
 * test_queue.c - the queue commands against the harness's PostgreSQL,
 * each test on its own freshly migrated database.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char dbvar[128];

static const char **
env(void)
{
	static const char *e[3];

	e[0] = dbvar;
	e[1] = "POSTGRES_USER=postgres";
	e[2] = NULL;
	return e;
}

/* A fresh database with the schema applied; its name stays in dbvar. */
static PGconn *
migrated(void)
{
	char *db = fresh_db();
	struct run r;
	PGconn *c;

	snprintf(dbvar, sizeof(dbvar), "POSTGRES_DB=%s", db);
	run_agent(&r, env(), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	c = db_open(db);
	free(db);
	return c;
}

static int
agent(struct run *r, const char *in, const char *const *args)
{
	return run_agent(r, env(), in, args);
}

static void
expect_value(PGconn *c, const char *sql, const char *want)
{
	char *v = db_value(c, sql);

	cr_expect_str_eq(v ? v : "(null)", want, "%s: got '%s'", sql,
	    v ? v : "(null)");
	free(v);
}

/* The last line of out (which it modifies). */
static const char *
last_line(char *out)
{
	size_t	 n = strlen(out);
	char	*p;

	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	p = strrchr(out, '\n');
	return p ? p + 1 : out;
}

/* stdout parsed as JSON; the caller puts it. */
static struct json_object *
parse_out(const char *out)
{
	struct json_object *o = json_tokener_parse(out);

	cr_assert_not_null(o, "not JSON: %s", out);
	return o;
}

/* The object's keys, comma-separated, in order, into buf. */
static const char *
keys_of(struct json_object *o, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	json_object_object_foreach(o, k, v) {
		(void)v;
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", k);
		cr_assert(n < len);
	}
	return buf;
}

static const char *
str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "no key %s", key);
	return v ? json_object_get_string(v) : "(null)";
}

#define ARGS(...)	((const char *[]){ __VA_ARGS__, NULL })
#define TASK_ARGS	"enqueue", "--type", "consumer_triage", "--source", \
			"acme/api", "--target", "acme/web"

Test(enqueue, one_task_with_defaults)
{
	PGconn *c = migrated();
	struct run r;
	char sql[256];
	const char *id;

	agent(&r, NULL, ARGS(TASK_ARGS, "--change-event",
	    "{\"commit_sha\": \"abc\", \"n\": 123456789012345678901234567890}",
	    "--relationship-config", "{\"interface_files\": [\"api.py\"]}"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	id = last_line(r.out);
	cr_assert_eq(strlen(id), 36, "not a UUID: '%s'", id);
	snprintf(sql, sizeof(sql), "SELECT concat_ws('|', status, skill_name, "
	    "task_type, source_repo, target_repo, max_attempts, priority, "
	    "attempt_count, run_at = created_at, change_event->>'n') FROM tasks "
	    "WHERE task_id = '%s'", id);
	expect_value(c, sql, "queued|trigger_consumer_triage|consumer_triage|"
	    "acme/api|acme/web|3|0|0|t|123456789012345678901234567890");
	run_free(&r);
	PQfinish(c);
}

Test(enqueue, file_stdin_and_every_option)
{
	PGconn *c = migrated();
	struct run r;
	char *path = write_temp("{\n  \"commit_sha\": \"def\"\n}\n", 0600);
	char at[300];

	snprintf(at, sizeof(at), "@%s", path);
	agent(&r, "{\"k\": [1, 2]}", ARGS(TASK_ARGS, "--change-event", at,
	    "--relationship-config", "-", "--id", "my-task-1", "--skill",
	    "custom_skill", "--priority", "-5", "--max-attempts", "7",
	    "--run-at", "+5m"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect_str_eq(last_line(r.out), "my-task-1");
	run_free(&r);
	expect_value(c, "SELECT concat_ws('|', skill_name, priority, "
	    "max_attempts, change_event->>'commit_sha', relationship_config, "
	    "run_at - created_at) FROM tasks WHERE task_id = 'my-task-1'",
	    "custom_skill|-5|7|def|{\"k\": [1, 2]}|00:05:00");

	agent(&r, NULL, ARGS("enqueue", "--type", "template_triage", "--source",
	    "a/b", "--target", "c/d", "--change-event", "{}",
	    "--relationship-config", "{}", "--id", "t2", "--run-at",
	    "2030-01-02T03:04:05Z"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT skill_name || ' ' || to_char(run_at AT TIME "
	    "ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') FROM tasks WHERE task_id = "
	    "'t2'", "trigger_template_triage 2030-01-02 03:04:05");
	unlink(path);
	free(path);
	PQfinish(c);
}

#define CE		"--change-event", "{}"
#define RC		"--relationship-config", "{}"
#define REPOS		"--source", "acme/api", "--target", "acme/web"

struct bad_case {
	const char	*args[20];	/* "@BIG": a file over the limit */
	const char	*in;
	int		 status;
	const char	*err;
};

static const struct bad_case bad_cases[] = {
	{ { TASK_ARGS, "--change-event", "{'a': 1}", RC }, NULL, 65,
	    "--change-event is not valid JSON: single quotes" },
	{ { TASK_ARGS, "--change-event", "{\"a\": 1", RC }, NULL, 65,
	    "--change-event is not valid JSON: it ends before" },
	{ { TASK_ARGS, "--change-event", "{\"a\": 1} x", RC }, NULL, 65,
	    "--change-event is not one JSON value" },
	{ { TASK_ARGS, "--change-event", "[1, 2]", RC }, NULL, 65,
	    "--change-event must be a JSON object ({...}), not an array" },
	{ { TASK_ARGS, CE, "--relationship-config", "\"text\"" }, NULL, 65,
	    "--relationship-config must be a JSON object ({...}), not a string" },
	{ { TASK_ARGS, "--change-event", "", RC }, NULL, 65,
	    "--change-event is empty" },
	{ { TASK_ARGS, "--change-event", "-", RC }, "  \n", 65,
	    "--change-event is empty" },
	{ { TASK_ARGS, "--change-event", "@BIG", RC }, NULL, 65,
	    "--change-event: the JSON is larger than the 1048576 byte (1 MiB) limit" },
	{ { TASK_ARGS, CE, "--relationship-config", "@/nonexistent/x.json" },
	    NULL, 66, "--relationship-config: cannot open /nonexistent/x.json" },
	{ { "enqueue", "--type", "t", "--source", "acme", "--target", "a/b",
	    CE, RC }, NULL, 65, "--source is not OWNER/REPO: 'acme' has 0 '/'" },
	{ { "enqueue", "--type", "t", "--source", "a/b", "--target",
	    "acme/web/x", CE, RC }, NULL, 65, "--target is not OWNER/REPO" },
	{ { "enqueue", "--type", "t", "--source", "a/b", "--target", "/web",
	    CE, RC }, NULL, 65, "--target is not OWNER/REPO: the owner" },
	{ { "enqueue", "--type", "t", "--source", "a/b", "--target",
	    "acme/w b", CE, RC }, NULL, 65,
	    "--target has byte 0x20 at position 7" },
	{ { "enqueue", "--type", "", REPOS, CE, RC }, NULL, 65,
	    "--type is empty" },
	{ { "enqueue", "--type", "a;drop", REPOS, CE, RC }, NULL, 65,
	    "--type has ';' at position 2" },
	{ { TASK_ARGS, CE, RC, "--id",
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" },
	    NULL, 65, "--id is 65 characters long; the limit is 64" },
	{ { TASK_ARGS, CE, RC, "--priority", "high" }, NULL, 65,
	    "--priority is not a whole number: 'high'" },
	{ { TASK_ARGS, CE, RC, "--priority", "99999999" }, NULL, 65,
	    "--priority is out of range (-1000000 to 1000000)" },
	{ { TASK_ARGS, CE, RC, "--max-attempts", "0" }, NULL, 65,
	    "--max-attempts is out of range (1 to 100): 0" },
	{ { TASK_ARGS, CE, RC, "--run-at", "+5 minutes" }, NULL, 65,
	    "--run-at has an unknown unit ' '" },
	{ { TASK_ARGS, CE, RC, "--run-at", "not a time" }, NULL, 65,
	    "--run-at: PostgreSQL cannot read 'not a time' as a time" },
	{ { TASK_ARGS, CE, RC, "--run-at", "2026-13-45" }, NULL, 65,
	    "--run-at: PostgreSQL cannot read" },
	{ { TASK_ARGS, CE, RC, "--bogus" }, NULL, 64,
	    "unknown option '--bogus'" },
	{ { TASK_ARGS, CE, RC, "extra" }, NULL, 64,
	    "unexpected argument 'extra'" },
	{ { TASK_ARGS, CE, RC, "--type", "y" }, NULL, 64, "--type given twice" },
	{ { TASK_ARGS, CE }, NULL, 64, "--relationship-config is required" },
	{ { "enqueue", REPOS, CE, RC }, NULL, 64, "--type is required" },
	{ { TASK_ARGS, "--change-event", "-", "--relationship-config", "-" },
	    "{}", 64, "only one of --change-event and --relationship-config" },
	{ { TASK_ARGS, "--ndjson", "-" }, "", 64,
	    "--type cannot be combined with --ndjson" },
	{ { "enqueue", "--ndjson", "/nonexistent/x.ndjson" }, NULL, 66,
	    "--ndjson: cannot open /nonexistent/x.ndjson" },
};

Test(enqueue, bad_input_inserts_nothing)
{
	PGconn *c = migrated();
	char *big = malloc(1024 * 1024 + 16), *bigpath, at[300];

	/* Valid JSON one byte over the limit. */
	memset(big, ' ', 1024 * 1024 + 1);
	memcpy(big, "{}", 2);
	big[1024 * 1024 + 1] = '\0';
	bigpath = write_temp(big, 0600);
	snprintf(at, sizeof(at), "@%s", bigpath);
	for (size_t i = 0; i < NELEM(bad_cases); i++) {
		const struct bad_case *b = &bad_cases[i];
		const char *args[20];
		struct run r;

		for (size_t k = 0; k < 20; k++)
			args[k] = b->args[k] && strcmp(b->args[k], "@BIG") == 0 ?
			    at : b->args[k];
		agent(&r, b->in, args);
		cr_expect_eq(r.status, b->status, "case %zu: exit %d: %s", i,
		    r.status, r.err);
		cr_expect(strstr(r.err, b->err) != NULL,
		    "case %zu: stderr lacks '%s': %s", i, b->err, r.err);
		cr_expect_str_empty(r.out, "case %zu printed '%s'", i, r.out);
		run_free(&r);
	}
	expect_value(c, "SELECT count(*) FROM tasks", "0");
	unlink(bigpath);
	free(bigpath);
	free(big);
	PQfinish(c);
}

Test(enqueue, duplicate_id_is_65)
{
	PGconn *c = migrated();
	struct run r;

	for (int i = 0; i < 2; i++) {
		agent(&r, NULL, ARGS(TASK_ARGS, "--change-event", "{}",
		    "--relationship-config", "{}", "--id", "dup-1"));
		cr_assert_eq(r.status, i == 0 ? 0 : 65, "%s", r.err);
		if (i == 1)
			cr_expect(strstr(r.err, "task id 'dup-1' already exists") != NULL,
			    "%s", r.err);
		run_free(&r);
	}
	expect_value(c, "SELECT count(*) FROM tasks", "1");
	PQfinish(c);
}

/* n tasks, one a line, with blank lines here and there. */
static char *
ndjson_file(int n)
{
	char path[] = "/tmp/oa-ndjson.XXXXXX";
	int fd = mkstemp(path);
	FILE *fp = fdopen(fd, "w");

	cr_assert_not_null(fp);
	for (int i = 0; i < n; i++) {
		if (i % 5000 == 1)
			fputs("\n  \n", fp);
		fprintf(fp, "{\"task_type\": \"consumer_triage\", \"source_repo\": "
		    "\"acme/api\", \"target_repo\": \"acme/w%d\", \"change_event\": "
		    "{\"i\": %d,\t\"s\": \"tab\\there\\\\back\\nnl\\r\"}, "
		    "\"relationship_config\": {\"k\": [1, 2]}}\n", i, i);
	}
	cr_assert_eq(fclose(fp), 0);
	return strdup(path);
}

Test(enqueue, ndjson_loads_20000)
{
	PGconn *c = migrated();
	struct run r;
	char *path = ndjson_file(20000);

	agent(&r, NULL, ARGS("enqueue", "--ndjson", path));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "queued 20000 tasks from") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, "SELECT count(*) || ' ' || count(DISTINCT task_id) || "
	    "' ' || count(*) FILTER (WHERE status = 'queued' AND skill_name = "
	    "'trigger_consumer_triage' AND max_attempts = 3 AND priority = 0) "
	    "FROM tasks", "20000 20000 20000");
	/* COPY's escapes round-trip: tab, backslash, newline, CR. */
	expect_value(c, "SELECT change_event->>'s' = E'tab\\there\\\\back\\nnl\\r' "
	    "AND change_event->>'i' = '7' FROM tasks WHERE target_repo = 'acme/w7'",
	    "t");
	/* Ids are version 7 UUIDs; run_at is the transaction's now(), like
	 * the default. */
	expect_value(c, "SELECT bool_and(task_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7"
	    "[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AND run_at = created_at) "
	    "FROM tasks", "t");
	/* ... that grow in the file's order (COPY stores rows in order). */
	expect_value(c, "SELECT count(*) FROM (SELECT task_id, lag(task_id) "
	    "OVER (ORDER BY ctid) AS prev FROM tasks) s WHERE task_id <= prev",
	    "0");
	/* A load this big refreshes the planner's statistics. */
	expect_value(c, "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
	    "WHERE relname = 'tasks'", "t");
	unlink(path);
	free(path);
	PQfinish(c);
}

static const char good_line[] = "{\"task_type\": \"t\", \"source_repo\": "
    "\"a/b\", \"target_repo\": \"c/d\", \"change_event\": {}, "
    "\"relationship_config\": {}";

Test(enqueue, ndjson_bad_line_3_inserts_nothing)
{
	PGconn *c = migrated();
	struct run r;
	char text[2048];

	snprintf(text, sizeof(text), "%s}\n%s}\n%s, \"priority\": \"high\"}\n"
	    "%s}\n", good_line, good_line, good_line, good_line);
	agent(&r, text, ARGS("enqueue", "--ndjson", "-"));
	cr_assert_eq(r.status, 65, "%s", r.err);
	cr_expect(strstr(r.err, "stdin line 3: priority must be a whole number, "
	    "not a string") != NULL, "%s", r.err);
	cr_expect(strstr(r.err, "1 invalid line (the first is line 3); nothing "
	    "was queued") != NULL, "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT count(*) FROM tasks", "0");
	PQfinish(c);
}

struct ndjson_case {
	const char	*line;	/* appended to good_line; NULL: verbatim */
	const char	*raw;
	const char	*err;
};

static const struct ndjson_case ndjson_cases[] = {
	{ ", \"bogus\": 1}", NULL, "line 2: unknown key \"bogus\"" },
	{ ", \"task_type\": \"u\"}", NULL, "line 2: key \"task_type\" appears twice" },
	{ NULL, "{\"task_type\": \"t\"}", "line 2: source_repo is missing; it is required" },
	{ NULL, "[1]", "line 2: is an array; each line must be one JSON object" },
	{ NULL, "{'task_type': \"x\"}", "line 2: is not valid JSON: single quotes" },
	{ NULL, "{\"a\": 1} {}", "line 2: is not one JSON value" },
	{ ", \"max_attempts\": 0}", NULL, "line 2: max_attempts is out of range (1 to 100): 0" },
	{ ", \"max_attempts\": 2.5}", NULL, "line 2: max_attempts must be a whole number, not a fractional number" },
	{ ", \"task_id\": \"a b\"}", NULL, "line 2: task_id has byte 0x20" },
	{ ", \"run_at\": \"+1y\"}", NULL, "line 2: run_at has an unknown unit 'y'" },
	{ ", \"run_at\": \"soonish\"}", NULL, "line 2: run_at: invalid input syntax for type timestamp" },
	{ NULL, "{\"task_type\": \"t\", \"source_repo\": \"a\", \"target_repo\": \"c/d\", "
	    "\"change_event\": {}, \"relationship_config\": {}}",
	    "line 2: source_repo is not OWNER/REPO" },
	{ NULL, "{\"task_type\": \"t\", \"source_repo\": \"a/b\", \"target_repo\": \"c/d\", "
	    "\"change_event\": null, \"relationship_config\": {}}",
	    "line 2: change_event is null; it is required" },
};

Test(enqueue, ndjson_every_bad_line_names_itself)
{
	PGconn *c = migrated();

	for (size_t i = 0; i < NELEM(ndjson_cases); i++) {
		const struct ndjson_case *n = &ndjson_cases[i];
		char text[2048];
		struct run r;

		if (n->line)
			snprintf(text, sizeof(text), "%s}\n%s%s\n", good_line,
			    good_line, n->line);
		else
			snprintf(text, sizeof(text), "%s}\n%s\n", good_line, n->raw);
		agent(&r, text, ARGS("enqueue", "--ndjson", "-"));
		cr_expect_eq(r.status, 65, "case %zu: %d %s", i, r.status, r.err);
		cr_expect(strstr(r.err, n->err) != NULL, "case %zu: lacks '%s': %s",
		    i, n->err, r.err);
		run_free(&r);
	}
	expect_value(c, "SELECT count(*) FROM tasks", "0");
	PQfinish(c);
}

Test(enqueue, ndjson_size_limits)
{
	PGconn *c = migrated();
	size_t big = 1024 * 1024 + 10, n;
	char *text = malloc(4 * 1024 * 1024);
	struct run r;

	/* A change_event one over 1 MiB, on line 2. */
	n = (size_t)sprintf(text, "%s}\n{\"task_type\": \"t\", \"source_repo\": "
	    "\"a/b\", \"target_repo\": \"c/d\", \"relationship_config\": {}, "
	    "\"change_event\": {\"a\": \"", good_line);
	memset(text + n, 'x', big);
	strcpy(text + n + big, "\"}}\n");
	agent(&r, text, ARGS("enqueue", "--ndjson", "-"));
	cr_expect_eq(r.status, 65, "%s", r.err);
	cr_expect(strstr(r.err, "stdin line 2: change_event is 1048595 bytes; the "
	    "limit is 1048576 (1 MiB)") != NULL, "%s", r.err);
	run_free(&r);

	/* A line over 3 MiB is refused without being read whole. */
	memset(text, ' ', 3 * 1024 * 1024 + 100);
	strcpy(text + 3 * 1024 * 1024 + 100, "{}\n");
	agent(&r, text, ARGS("enqueue", "--ndjson", "-"));
	cr_expect_eq(r.status, 65, "%s", r.err);
	cr_expect(strstr(r.err, "stdin line 1 is longer than 3145728 bytes") != NULL,
	    "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT count(*) FROM tasks", "0");
	free(text);
	PQfinish(c);
}

Test(enqueue, ndjson_duplicate_id_names_the_line)
{
	PGconn *c = migrated();
	struct run r;
	char text[2048], *path;

	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, source_repo, "
	    "target_repo, change_event, relationship_config) VALUES "
	    "('old-1', 's', 't', 'a/b', 'c/d', '{}', '{}')");
	/* Blank lines 2 and 3 part COPY rows from NDJSON lines. */
	snprintf(text, sizeof(text), "%s, \"task_id\": \"new-1\"}\n\n\n"
	    "%s, \"task_id\": \"new-2\"}\n%s, \"task_id\": \"old-1\"}\n",
	    good_line, good_line, good_line);
	path = write_temp(text, 0600);
	agent(&r, NULL, ARGS("enqueue", "--ndjson", path));
	cr_assert_eq(r.status, 65, "%s", r.err);
	cr_expect(strstr(r.err, "line 5: task id 'old-1' already exists") != NULL,
	    "%s", r.err);
	run_free(&r);
	unlink(path);
	free(path);

	/* The same id twice in one file. */
	snprintf(text, sizeof(text), "%s, \"task_id\": \"n\"}\n%s, "
	    "\"task_id\": \"n\"}\n", good_line, good_line);
	agent(&r, text, ARGS("enqueue", "--ndjson", "-"));
	cr_assert_eq(r.status, 65, "%s", r.err);
	cr_expect(strstr(r.err, "stdin line 2: task id 'n' already exists") != NULL,
	    "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT string_agg(task_id, ',') FROM tasks", "old-1");
	PQfinish(c);
}

Test(enqueue, ndjson_optional_fields)
{
	PGconn *c = migrated();
	struct run r;
	char text[2048];

	snprintf(text, sizeof(text), "%s, \"task_id\": \"o1\", \"skill_name\": "
	    "\"sk\", \"max_attempts\": 9, \"priority\": -3, \"run_at\": \"+1h\"}\r\n"
	    "%s, \"task_id\": \"o2\", \"run_at\": \"2030-01-02 03:04:05+00\", "
	    "\"skill_name\": null}", good_line, good_line);
	agent(&r, text, ARGS("enqueue", "--ndjson", "-"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "queued 2 tasks from stdin") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, "SELECT string_agg(concat_ws('|', task_id, skill_name, "
	    "max_attempts, priority, CASE WHEN task_id = 'o1' THEN "
	    "(run_at - created_at)::text ELSE to_char(run_at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD HH24:MI:SS') END), ' ' ORDER BY task_id) FROM tasks",
	    "o1|sk|9|-3|01:00:00 o2|trigger_t|3|0|2030-01-02 03:04:05");
	PQfinish(c);
}

/* Tasks in every state, oldest first: q1, q2 (other type), s1, f1, x1. */
static void
seed_tasks(PGconn *c)
{
	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, status, "
	    "source_repo, target_repo, change_event, relationship_config, "
	    "created_at) VALUES "
	    "('q1', 's', 'consumer_triage', 'queued', 'a/b', 'c/d', '{}', '{}', now() - interval '5 min'),"
	    "('q2', 's', 'template_triage', 'queued', 'a/b', 'c/d', '{}', '{}', now() - interval '4 min'),"
	    "('s1', 's', 'consumer_triage', 'queued', 'a/b', 'c/d', '{}', '{}', now() - interval '3 min'),"
	    "('f1', 's', 'consumer_triage', 'queued', 'a/b', 'c/d', '{}', '{}', now() - interval '2 min'),"
	    "('x1', 's', 'consumer_triage', 'cancelled', 'a/b', 'c/d', '{}', '{}', now() - interval '1 min')");
	/* Through the seed's functions, as a worker would. */
	db_do(c, "UPDATE tasks SET priority = 1 WHERE task_id IN ('s1', 'f1')");
	db_do(c, "SELECT get_next_task('w1')");
	db_do(c, "SELECT get_next_task('w1')");
	db_do(c, "SELECT update_task_status('f1', 'finished', "
	    "'{\"requires_action\": true, \"big\": 123456789012345678901234567890}'::jsonb)");
}

Test(status, json_has_exactly_the_listed_keys)
{
	PGconn *c = migrated();
	struct json_object *o, *v;
	struct run r;
	char keys[512];

	seed_tasks(c);
	agent(&r, NULL, ARGS("status", "f1", "--json"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	o = parse_out(r.out);
	cr_expect_str_eq(keys_of(o, keys, sizeof(keys)), "task_id,status,"
	    "skill_name,task_type,source_repo,target_repo,created_at,started_at,"
	    "ended_at,result,error,worker_id,attempt_count,max_attempts,run_at,"
	    "priority");
	cr_expect_str_eq(str_of(o, "status"), "finished");
	cr_expect_str_eq(str_of(o, "worker_id"), "w1");
	cr_expect_str_eq(str_of(o, "error"), "(null)");
	json_object_object_get_ex(o, "attempt_count", &v);
	cr_expect(json_object_is_type(v, json_type_int) && json_object_get_int(v) == 1);
	json_object_object_get_ex(o, "result", &v);
	cr_expect(json_object_is_type(v, json_type_object));
	/* The result's numbers are printed as stored, not rounded. */
	cr_expect(strstr(r.out, "123456789012345678901234567890") != NULL, "%s", r.out);
	for (const char *const *k = (const char *const[]){ "created_at",
	    "started_at", "ended_at", "run_at", NULL }; *k; k++) {
		const char *t = str_of(o, *k);

		cr_expect(strlen(t) == 20 && t[10] == 'T' && t[19] == 'Z',
		    "%s is not ISO 8601 UTC: %s", *k, t);
	}
	json_object_put(o);
	run_free(&r);

	agent(&r, NULL, ARGS("status", "q1"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "status:        queued\n") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "started_at:    -\n") != NULL, "%s", r.out);
	run_free(&r);
	PQfinish(c);
}

Test(status, unknown_task_is_not_found_69)
{
	PGconn *c = migrated();
	struct json_object *o;
	struct run r;
	char keys[128];

	agent(&r, NULL, ARGS("status", "--json", "no-such-task"));
	cr_assert_eq(r.status, 69, "%s", r.err);
	o = parse_out(r.out);
	cr_expect_str_eq(keys_of(o, keys, sizeof(keys)), "task_id,status");
	cr_expect_str_eq(str_of(o, "task_id"), "no-such-task");
	cr_expect_str_eq(str_of(o, "status"), "not_found");
	cr_expect(strstr(r.err, "no task has id 'no-such-task'") != NULL, "%s", r.err);
	json_object_put(o);
	run_free(&r);
	agent(&r, NULL, ARGS("status", "no-such-task"));
	cr_assert_eq(r.status, 69, "%s", r.err);
	cr_expect(strstr(r.out, "not_found") != NULL, "%s", r.out);
	run_free(&r);
	agent(&r, NULL, ARGS("status"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	agent(&r, NULL, ARGS("status", "a", "b"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	PQfinish(c);
}

/* The task ids of a JSON array of tasks, comma-separated, into buf. */
static const char *
ids_of(const char *out, char *buf, size_t len)
{
	struct json_object *a = parse_out(out);
	size_t n = 0;

	buf[0] = '\0';
	cr_assert(json_object_is_type(a, json_type_array), "%s", out);
	for (size_t i = 0; i < json_object_array_length(a); i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "",
		    str_of(json_object_array_get_idx(a, i), "task_id"));
	json_object_put(a);
	return buf;
}

struct list_case {
	const char	*args[8];
	const char	*ids;
};

static const struct list_case list_cases[] = {
	{ { "list", "--json" }, "x1,f1,s1,q2,q1" },
	{ { "list", "--json", "--status", "queued" }, "q2,q1" },
	{ { "list", "--json", "--type", "template_triage" }, "q2" },
	{ { "list", "--status", "queued", "--type", "consumer_triage", "--json" }, "q1" },
	{ { "list", "--json", "--limit", "2" }, "x1,f1" },
	{ { "list", "--json", "--status", "started" }, "s1" },
	{ { "list", "--json", "--status", "failed" }, "" },
};

Test(list, filters_newest_first)
{
	PGconn *c = migrated();
	struct run r;
	char ids[256];

	seed_tasks(c);
	for (size_t i = 0; i < NELEM(list_cases); i++) {
		agent(&r, NULL, list_cases[i].args);
		cr_assert_eq(r.status, 0, "case %zu: %s", i, r.err);
		cr_expect_str_eq(ids_of(r.out, ids, sizeof(ids)),
		    list_cases[i].ids, "case %zu", i);
		run_free(&r);
	}
	agent(&r, NULL, ARGS("list"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strncmp(r.out, "TASK_ID", 7) == 0, "%s", r.out);
	cr_expect(strstr(r.out, "\nx1 ") != NULL, "%s", r.out);
	run_free(&r);
	PQfinish(c);
}

Test(list, bad_options_are_64)
{
	static const char *const bad[][4] = {
		{ "list", "--status", "running" },
		{ "list", "--limit", "0" },
		{ "list", "--limit", "ten" },
		{ "list", "--limit", "10001" },
		{ "list", "extra" },
		{ "list", "--bogus" },
	};
	struct run r;

	for (size_t i = 0; i < NELEM(bad); i++) {
		agent(&r, NULL, bad[i]);
		cr_expect_eq(r.status, 64, "case %zu: %s", i, r.err);
		run_free(&r);
	}
	agent(&r, NULL, ARGS("list", "--status", "running"));
	cr_expect(strstr(r.err, "--status 'running' is not one of queued, "
	    "started, finished, failed, cancelled") != NULL, "%s", r.err);
	run_free(&r);
}

static long long
int_at(struct json_object *o, const char *path)
{
	char buf[128], *save = NULL, *k;
	struct json_object *v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
		cr_assert(json_object_object_get_ex(v, k, &v), "no %s", path);
	cr_assert(json_object_is_type(v, json_type_int), "%s is not an int", path);
	return json_object_get_int64(v);
}

Test(stats, json_keys_counts_and_unserved_types)
{
	PGconn *c = migrated();
	struct json_object *o, *v;
	struct run r;
	char keys[512];

	seed_tasks(c);
	/* Live; stale heartbeat; stopped.  Only w-live serves anything. */
	db_do(c, "INSERT INTO workers (worker_id, host, pid, version, task_types, "
	    "concurrency, heartbeat_at, stopped_at) VALUES "
	    "('w-live', 'vm1', 10, '0.1.0', '{consumer_triage}', 2, now(), NULL),"
	    "('w-stale', 'vm1', 11, '0.1.0', '{template_triage}', 1, now() - interval '2 min', NULL),"
	    "('w-stopped', 'vm1', 12, '0.1.0', '{template_triage}', 1, now(), now())");
	agent(&r, NULL, ARGS("stats", "--json"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	o = parse_out(r.out);
	cr_expect_str_eq(keys_of(o, keys, sizeof(keys)), "backend,status_counts,"
	    "type_counts,avg_duration_seconds,queued,processing,completed,failed,"
	    "cancelled,oldest_queued_age_seconds,per_type,unserved_types,workers");
	cr_expect_str_eq(str_of(o, "backend"), "postgresql");
	json_object_object_get_ex(o, "status_counts", &v);
	cr_expect_str_eq(keys_of(v, keys, sizeof(keys)),
	    "queued,started,finished,failed,cancelled");
	cr_expect_eq(int_at(o, "status_counts.queued"), 2);
	cr_expect_eq(int_at(o, "status_counts.started"), 1);
	cr_expect_eq(int_at(o, "queued"), 2);
	cr_expect_eq(int_at(o, "processing"), 1);
	cr_expect_eq(int_at(o, "completed"), 1);
	cr_expect_eq(int_at(o, "failed"), 0);
	cr_expect_eq(int_at(o, "cancelled"), 1);
	cr_expect_eq(int_at(o, "type_counts.consumer_triage"), 4);
	cr_expect_eq(int_at(o, "type_counts.template_triage"), 1);
	cr_expect_geq(int_at(o, "oldest_queued_age_seconds"), 299);
	json_object_object_get_ex(o, "avg_duration_seconds", &v);
	cr_expect(json_object_is_type(v, json_type_double), "%s", r.out);
	json_object_object_get_ex(o, "per_type", &v);
	json_object_object_get_ex(v, "consumer_triage", &v);
	cr_expect_str_eq(keys_of(v, keys, sizeof(keys)), "queued,started,"
	    "finished,failed,cancelled,served_by_live_workers");
	cr_expect_eq(int_at(o, "per_type.consumer_triage.started"), 1);
	cr_expect_str_eq(str_of(v, "served_by_live_workers"), "true");
	json_object_object_get_ex(o, "per_type", &v);
	json_object_object_get_ex(v, "template_triage", &v);
	cr_expect_str_eq(str_of(v, "served_by_live_workers"), "false");
	json_object_object_get_ex(o, "unserved_types", &v);
	cr_expect_str_eq(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
	    "[\"template_triage\"]");
	json_object_object_get_ex(o, "workers", &v);
	cr_assert_eq(json_object_array_length(v), 1, "%s", r.out);
	v = json_object_array_get_idx(v, 0);
	cr_expect_str_eq(keys_of(v, keys, sizeof(keys)), "worker_id,host,pid,"
	    "version,task_types,concurrency,started_at,heartbeat_at");
	cr_expect_str_eq(str_of(v, "worker_id"), "w-live");
	json_object_put(o);
	run_free(&r);

	agent(&r, NULL, ARGS("stats"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "unserved: template_triage") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "w-live") != NULL && strstr(r.out, "w-stale") == NULL,
	    "%s", r.out);
	run_free(&r);
	PQfinish(c);
}

Test(stats, empty_queue_has_nulls)
{
	PGconn *c = migrated();
	struct json_object *o, *v;
	struct run r;

	agent(&r, NULL, ARGS("stats", "--json"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	o = parse_out(r.out);
	cr_expect(json_object_object_get_ex(o, "avg_duration_seconds", &v) && v == NULL);
	cr_expect(json_object_object_get_ex(o, "oldest_queued_age_seconds", &v) && v == NULL);
	cr_expect_eq(int_at(o, "status_counts.queued"), 0);
	json_object_object_get_ex(o, "unserved_types", &v);
	cr_expect_eq(json_object_array_length(v), 0);
	json_object_put(o);
	run_free(&r);
	agent(&r, NULL, ARGS("stats", "extra"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	PQfinish(c);
}

Test(cancel, queued_task_is_cancelled)
{
	PGconn *c = migrated();
	struct run r;

	seed_tasks(c);
	agent(&r, NULL, ARGS("cancel", "q1"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "task q1 cancelled") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, "SELECT concat_ws('|', status, ended_at IS NOT NULL, error, "
	    "cancel_requested) FROM tasks WHERE task_id = 'q1'",
	    "cancelled|t|cancelled by operator|f");
	expect_value(c, "SELECT string_agg(status || ':' || error, ',') FROM "
	    "task_history WHERE task_id = 'q1'", "cancelled:cancelled by operator");
	PQfinish(c);
}

Test(cancel, started_task_is_flagged_and_its_worker_signalled)
{
	PGconn *c = migrated(), *l;
	PGnotify *n = NULL;
	struct run r;
	char *db = strchr(dbvar, '=') + 1;

	seed_tasks(c);
	l = db_open(db);
	db_do(l, "LISTEN orchestrator_cancel");
	agent(&r, NULL, ARGS("cancel", "s1"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "running on worker w1; the worker was signalled")
	    != NULL, "%s", r.out);
	run_free(&r);
	/* The worker records the end; the row stays started until then. */
	expect_value(c, "SELECT status || '|' || cancel_requested FROM tasks "
	    "WHERE task_id = 's1'", "started|true");
	expect_value(c, "SELECT count(*) FROM task_history WHERE task_id = 's1' "
	    "AND status = 'cancelled'", "0");
	for (int i = 0; i < 50 && n == NULL; i++) {
		cr_assert_eq(PQconsumeInput(l), 1);
		n = PQnotifies(l);
		if (n == NULL)
			usleep(20000);
	}
	cr_assert_not_null(n, "no NOTIFY orchestrator_cancel");
	cr_expect_str_eq(n->extra, "s1");
	PQfreemem(n);
	PQfinish(l);
	PQfinish(c);
}

Test(cancel, ended_unknown_and_usage)
{
	static const struct {
		const char	*id;
		int		 status;
		const char	*err;
	} cases[] = {
		{ "f1", 65, "task f1 is already finished; nothing to cancel" },
		{ "x1", 65, "task x1 is already cancelled; nothing to cancel" },
		{ "nope", 69, "no task has id 'nope'" },
	};
	PGconn *c = migrated();
	struct run r;

	seed_tasks(c);
	db_do(c, "UPDATE tasks SET status = 'failed' WHERE task_id = 'q2'");
	for (size_t i = 0; i < NELEM(cases); i++) {
		agent(&r, NULL, ARGS("cancel", cases[i].id));
		cr_expect_eq(r.status, cases[i].status, "case %zu: %s", i, r.err);
		cr_expect(strstr(r.err, cases[i].err) != NULL, "case %zu: %s", i, r.err);
		run_free(&r);
	}
	agent(&r, NULL, ARGS("cancel", "q2"));
	cr_expect_eq(r.status, 65, "%s", r.err);
	cr_expect(strstr(r.err, "is already failed") != NULL, "%s", r.err);
	run_free(&r);
	agent(&r, NULL, ARGS("cancel"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	agent(&r, NULL, ARGS("cancel", "a", "b"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT string_agg(task_id || ':' || status, ',' ORDER BY "
	    "task_id) FROM tasks", "f1:finished,q1:queued,q2:failed,s1:started,"
	    "x1:cancelled");
	PQfinish(c);
}

Test(retry, failed_and_cancelled_tasks_are_queued_afresh)
{
	PGconn *c = migrated();
	struct run r;

	seed_tasks(c);
	db_do(c, "UPDATE tasks SET status = 'failed', attempt_count = 3, "
	    "error = 'boom', result = '{\"partial\": 1}', worker_id = 'w9', "
	    "ended_at = now(), run_at = now() - interval '1 day', "
	    "lease_expires_at = now(), cancel_requested = true "
	    "WHERE task_id = 'q2'");
	agent(&r, NULL, ARGS("retry", "q2"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "task q2 queued again (was failed; attempts "
	    "reset to 0 of 3)") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, "SELECT concat_ws('|', status, attempt_count, "
	    "run_at > now() - interval '1 minute', error IS NULL, result IS NULL, "
	    "ended_at IS NULL, worker_id IS NULL, lease_expires_at IS NULL, "
	    "cancel_requested) FROM tasks WHERE task_id = 'q2'",
	    "queued|0|t|t|t|t|t|t|f");
	expect_value(c, "SELECT status || ':' || error FROM task_history WHERE "
	    "task_id = 'q2'", "queued:retried by operator");
	/* And the seed's get_next_task() can claim it again. */
	db_do(c, "UPDATE tasks SET status = 'cancelled' WHERE task_id = 'q1'");
	expect_value(c, "SELECT string_agg(task_id, ',') FROM "
	    "get_next_task('w2')", "q2");

	agent(&r, NULL, ARGS("retry", "x1"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT status FROM tasks WHERE task_id = 'x1'", "queued");
	PQfinish(c);
}

Test(retry, other_states_are_65)
{
	static const struct {
		const char	*id;
		int		 status;
		const char	*err;
	} cases[] = {
		{ "q1", 65, "task q1 is already queued" },
		{ "s1", 65, "task s1 is running on worker w1; wait for it to end, "
		    "or cancel it first" },
		{ "f1", 65, "task f1 finished successfully; to run it again, "
		    "enqueue a new task" },
		{ "nope", 69, "no task has id 'nope'" },
	};
	PGconn *c = migrated();
	struct run r;

	seed_tasks(c);
	for (size_t i = 0; i < NELEM(cases); i++) {
		agent(&r, NULL, ARGS("retry", cases[i].id));
		cr_expect_eq(r.status, cases[i].status, "case %zu: %s", i, r.err);
		cr_expect(strstr(r.err, cases[i].err) != NULL, "case %zu: %s", i, r.err);
		run_free(&r);
	}
	agent(&r, NULL, ARGS("retry", "--all"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	expect_value(c, "SELECT count(*) FROM task_history WHERE status = 'queued'", "0");
	PQfinish(c);
}

/*
 * Running tasks in every situation reset_stuck_tasks() distinguishes:
 * expired lease with attempts left, expired lease out of attempts, fresh
 * lease, leaseless started 20 minutes ago, and queued out of attempts.
 */
static void
seed_stuck(PGconn *c)
{
	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, status, "
	    "source_repo, target_repo, change_event, relationship_config, "
	    "worker_id, started_at, attempt_count, max_attempts, lease_expires_at) VALUES "
	    "('expired', 's', 't', 'started', 'a/b', 'c/d', '{}', '{}', 'w1', now() - interval '3 min', 1, 3, now() - interval '1 min'),"
	    "('spent', 's', 't', 'started', 'a/b', 'c/d', '{}', '{}', 'w1', now() - interval '3 min', 3, 3, now() - interval '1 min'),"
	    "('fresh', 's', 't', 'started', 'a/b', 'c/d', '{}', '{}', 'w2', now() - interval '3 min', 3, 3, now() + interval '5 min'),"
	    "('leaseless', 's', 't', 'started', 'a/b', 'c/d', '{}', '{}', 'old-client', now() - interval '20 min', 1, 3, NULL),"
	    "('queued-spent', 's', 't', 'queued', 'a/b', 'c/d', '{}', '{}', NULL, NULL, 3, 3, NULL)");
}

static const char stuck_state_sql[] = "SELECT string_agg(task_id || ':' || "
    "status, ',' ORDER BY task_id) FROM tasks";
static const char stuck_before[] = "expired:started,fresh:started,"
    "leaseless:started,queued-spent:queued,spent:started";

Test(reset_stuck, dry_run_changes_nothing)
{
	PGconn *c = migrated();
	struct run r;

	seed_stuck(c);
	agent(&r, NULL, ARGS("reset-stuck", "--dry-run"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "requeue  expired ") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "fail     spent ") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "fresh") == NULL, "%s", r.out);
	cr_expect(strstr(r.out, "dry run: would have 2 requeued, 2 failed; "
	    "nothing was changed") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, stuck_state_sql, stuck_before);
	expect_value(c, "SELECT count(*) FROM task_history", "0");
	PQfinish(c);
}

Test(reset_stuck, requeues_fails_and_never_touches_a_fresh_lease)
{
	PGconn *c = migrated();
	struct run r;

	seed_stuck(c);
	/* Leaseless tasks wait for --older-than; 20 minutes is not 1 hour. */
	agent(&r, NULL, ARGS("reset-stuck", "--older-than", "1h"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "leaseless") == NULL, "%s", r.out);
	cr_expect(strstr(r.out, "reset-stuck: 1 requeued, 2 failed") != NULL,
	    "%s", r.out);
	cr_expect(strstr(r.out, "w1") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, stuck_state_sql, "expired:queued,fresh:started,"
	    "leaseless:started,queued-spent:failed,spent:failed");
	expect_value(c, "SELECT concat_ws('|', attempt_count, lease_expires_at IS NULL, "
	    "run_at > now() - interval '1 minute') FROM tasks WHERE task_id = 'expired'",
	    "1|t|t");
	expect_value(c, "SELECT error LIKE 'abandoned by worker w1%' FROM tasks "
	    "WHERE task_id = 'spent'", "t");
	expect_value(c, "SELECT status FROM task_history WHERE task_id = 'expired'",
	    "rescued");

	/* The default, 10m, takes the leaseless one; the fresh lease stays. */
	agent(&r, NULL, ARGS("reset-stuck"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "requeue  leaseless  old-client") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, stuck_state_sql, "expired:queued,fresh:started,"
	    "leaseless:queued,queued-spent:failed,spent:failed");

	agent(&r, NULL, ARGS("reset-stuck"));
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "reset-stuck: nothing to do") != NULL, "%s", r.out);
	run_free(&r);
	expect_value(c, "SELECT status || ':' || (lease_expires_at > now()) FROM "
	    "tasks WHERE task_id = 'fresh'", "started:true");
	PQfinish(c);
}

Test(reset_stuck, bad_durations_are_64)
{
	static const char *const bad[] = { "10", "5x", "", "0s", "-1m", "3651d" };
	struct run r;

	for (size_t i = 0; i < NELEM(bad); i++) {
		agent(&r, NULL, ARGS("reset-stuck", "--older-than", bad[i]));
		cr_expect_eq(r.status, 64, "case %zu '%s': %s", i, bad[i], r.err);
		cr_expect(strstr(r.err, "--older-than") != NULL, "%s", r.err);
		run_free(&r);
	}
	agent(&r, NULL, ARGS("reset-stuck", "--now"));
	cr_expect_eq(r.status, 64, "%s", r.err);
	run_free(&r);
}
