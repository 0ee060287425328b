/*
 * test_queue.c - the queue module: input checks, durations, COPY text
 * escaping, skill defaults, strict JSON.  Table-driven: one Test walks
 * each table so a failure names its case (Criterion's ParameterizedTest
 * crashes on pointers to static data under PIE).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sysexits.h>

#include "cmd.h"
#include "queue.h"
#include "queue_json.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

struct text_case {
	enum queue_field	 f;
	const char		*in;
	const char		*want;	/* NULL: accepted; else in the reason */
};

static char long_repo[300];
static char long_id[80];

static void
fill(void)
{
	memset(long_repo, 'a', 256);
	long_repo[100] = '/';
	long_repo[256] = '\0';
	memset(long_id, 'x', 65);
	long_id[65] = '\0';
}

static const struct text_case text_cases[] = {
	{ QF_SOURCE, "acme/api", NULL },
	{ QF_TARGET, "a/b", NULL },
	{ QF_SOURCE, "Acme-1/api.v2_x", NULL },
	{ QF_SOURCE, "", "is empty" },
	{ QF_SOURCE, "acme", "is not OWNER/REPO: 'acme' has 0 '/' where exactly one is needed" },
	{ QF_SOURCE, "a/b/c", "has 2 '/' where exactly one is needed" },
	{ QF_SOURCE, "/api", "the owner before '/' is empty in '/api'" },
	{ QF_TARGET, "acme/", "the repository name after '/' is empty" },
	{ QF_SOURCE, "acme /api", "has byte 0x20 at position 5" },
	{ QF_SOURCE, "acme/ap!", "has '!' at position 8" },
	{ QF_SOURCE, "ac\tme/x", "has byte 0x09 at position 3" },
	{ QF_SOURCE, "\xc3\xa4/b", "has byte 0xc3 at position 1" },
	{ QF_SOURCE, "https://github.com/a/b", "has ':' at position 6" },
	{ QF_SOURCE, long_repo, "is 256 characters long; the limit is 255" },
	{ QF_TYPE, "consumer_triage", NULL },
	{ QF_TYPE, "", "is empty" },
	{ QF_TYPE, "bad type", "has byte 0x20 at position 4" },
	{ QF_TYPE, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	    "is 51 characters long; the limit is 50" },
	{ QF_SKILL, "trigger_x", NULL },
	{ QF_SKILL, "a;b", "has ';' at position 2" },
	{ QF_ID, "3f1c-uuid:1", NULL },
	{ QF_ID, long_id, "is 65 characters long; the limit is 64" },
	{ QF_ID, "a b", "has byte 0x20 at position 2" },
	{ QF_RUN_AT, "2026-11-28 09:00:00+00", NULL },
	{ QF_RUN_AT, "tomorrow\n", "has byte 0x0a at position 9" },
};

Test(queue, text_fields, .init = fill)
{
	for (size_t i = 0; i < NELEM(text_cases); i++) {
		const struct text_case *c = &text_cases[i];
		char why[512] = "";
		int rc = queue_check_text(c->f, c->in, strlen(c->in), why,
		    sizeof(why));

		if (c->want == NULL)
			cr_expect_eq(rc, 0, "case %zu '%s' refused: %s", i,
			    c->in, why);
		else {
			cr_expect_eq(rc, -1, "case %zu '%s' accepted", i, c->in);
			cr_expect(strstr(why, c->want) != NULL,
			    "case %zu: '%s' lacks '%s'", i, why, c->want);
		}
	}
}

struct dur_case {
	const char	*in;
	long long	 secs;
	const char	*want;
};

static const struct dur_case dur_cases[] = {
	{ "90s", 90, NULL },
	{ "10m", 600, NULL },
	{ "2h", 7200, NULL },
	{ "1d", 86400, NULL },
	{ "1h30m", 5400, NULL },
	{ "0s", 0, NULL },
	{ "3650d", 3650LL * 86400, NULL },
	{ "", 0, "is empty" },
	{ "10", 0, "has no unit: '10'" },
	{ "5x", 0, "unknown unit 'x' in '5x'" },
	{ "1.5h", 0, "unknown unit '.'" },
	{ "m", 0, "is not a duration: 'm'" },
	{ "-5m", 0, "is not a duration" },
	{ "10m ", 0, "is not a duration" },
	{ "3651d", 0, "is too long: '3651d' (the limit is 3650d)" },
	{ "99999999999999999999s", 0, "is too long" },
};

Test(queue, durations)
{
	for (size_t i = 0; i < NELEM(dur_cases); i++) {
		const struct dur_case *c = &dur_cases[i];
		char why[512] = "";
		long long secs = -1;
		int rc = queue_parse_duration(c->in, &secs, why, sizeof(why));

		if (c->want == NULL) {
			cr_expect_eq(rc, 0, "case %zu '%s': %s", i, c->in, why);
			cr_expect_eq(secs, c->secs, "case %zu '%s': %lld", i,
			    c->in, secs);
		} else {
			cr_expect_eq(rc, -1, "case %zu '%s' accepted", i, c->in);
			cr_expect(strstr(why, c->want) != NULL,
			    "case %zu: '%s' lacks '%s'", i, why, c->want);
			cr_expect(strstr(why, "90s, 10m, 2h, 1d") != NULL ||
			    strstr(why, "too long") != NULL,
			    "case %zu: no hint in '%s'", i, why);
		}
	}
}

struct copy_case {
	const char	*in;
	size_t		 len;	/* 0: strlen */
	const char	*out;
};

static const struct copy_case copy_cases[] = {
	{ "plain text", 0, "plain text" },
	{ "", 0, "" },
	{ "a\\b", 0, "a\\\\b" },
	{ "a\tb", 0, "a\\tb" },
	{ "a\nb", 0, "a\\nb" },
	{ "a\rb", 0, "a\\rb" },
	{ "\\N", 0, "\\\\N" },		/* not NULL */
	{ "\\.", 0, "\\\\." },		/* not end-of-data */
	{ "\r\n\t\\", 0, "\\r\\n\\t\\\\" },
	{ "{\"a\": \"x\\ty\"}\n", 0, "{\"a\": \"x\\\\ty\"}\\n" },
	{ "\xc3\xa4\x01", 0, "\xc3\xa4\x01" },	/* other bytes as they are */
};

Test(queue, copy_escape)
{
	for (size_t i = 0; i < NELEM(copy_cases); i++) {
		const struct copy_case *c = &copy_cases[i];
		struct queue_buf b = { 0 };

		queue_buf_add(&b, "x", 1);	/* appends, keeps what is there */
		queue_copy_escape(&b, c->in, c->len ? c->len : strlen(c->in));
		cr_expect_str_eq(b.data + 1, c->out, "case %zu", i);
		cr_expect_eq(b.data[0], 'x');
		queue_buf_free(&b);
	}
	queue_buf_free(NULL);
}

Test(queue, copy_escape_large_input_grows_buffer)
{
	struct queue_buf b = { 0 };
	char *in = malloc(100000);

	memset(in, '\t', 100000);
	queue_copy_escape(&b, in, 100000);
	cr_assert_eq(b.len, 200000);
	cr_assert_eq(memcmp(b.data, "\\t\\t", 4), 0);
	queue_buf_free(&b);
	free(in);
}

struct skill_case {
	const char	*type;
	const char	*skill;
};

static const struct skill_case skill_cases[] = {
	{ "consumer_triage", "trigger_consumer_triage" },
	{ "template_triage", "trigger_template_triage" },
	{ "dependency_scan", "trigger_dependency_scan" },
	{ "x", "trigger_x" },
};

Test(queue, skill_defaults)
{
	char buf[QUEUE_SKILL_MAX + 1];

	for (size_t i = 0; i < NELEM(skill_cases); i++)
		cr_expect_str_eq(queue_default_skill(skill_cases[i].type, buf,
		    sizeof(buf)), skill_cases[i].skill, "case %zu", i);
}

struct int_case {
	const char	*in;
	long long	 min, max, want;
	const char	*err;
};

static const struct int_case int_cases[] = {
	{ "3", 1, 100, 3, NULL },
	{ "+7", 1, 100, 7, NULL },
	{ "-5", -10, 10, -5, NULL },
	{ "-0", -10, 10, 0, NULL },
	{ "-9223372036854775808", LLONG_MIN, LLONG_MAX, LLONG_MIN, NULL },
	{ "9223372036854775807", LLONG_MIN, LLONG_MAX, LLONG_MAX, NULL },
	{ "9223372036854775808", LLONG_MIN, LLONG_MAX, 0, "out of range" },
	{ "-9223372036854775809", LLONG_MIN, LLONG_MAX, 0, "out of range" },
	{ "99999999999999999999999", 1, 100, 0, "is out of range (1 to 100): 99999999999999999999999" },
	{ "0", 1, 100, 0, "is out of range (1 to 100): 0" },
	{ "-1", 1, 100, 0, "out of range" },
	{ "1.5", 1, 100, 0, "is not a whole number: '1.5'" },
	{ "12a", 1, 100, 0, "not a whole number" },
	{ "-", 1, 100, 0, "not a whole number" },
	{ " 3", 1, 100, 0, "not a whole number" },
	{ "", 1, 100, 0, "is empty" },
};

Test(queue, integers)
{
	for (size_t i = 0; i < NELEM(int_cases); i++) {
		const struct int_case *c = &int_cases[i];
		char why[256] = "";
		long long v = 12345;
		int rc = queue_parse_int(c->in, strlen(c->in), c->min, c->max,
		    &v, why, sizeof(why));

		if (c->err == NULL) {
			cr_expect_eq(rc, 0, "case %zu '%s': %s", i, c->in, why);
			cr_expect_eq(v, c->want, "case %zu: %lld", i, v);
		} else {
			cr_expect_eq(rc, -1, "case %zu '%s' accepted", i, c->in);
			cr_expect(strstr(why, c->err) != NULL,
			    "case %zu: '%s' lacks '%s'", i, why, c->err);
		}
	}
}

struct json_case {
	const char	*in;
	const char	*err;	/* NULL: accepted */
};

static char deep[200];

static void
fill_deep(void)
{
	memset(deep, '[', 70);
	memset(deep + 70, ']', 70);
	deep[140] = '\0';
}

static const struct json_case json_cases[] = {
	{ "{\"a\":1}", NULL },
	{ " {\"a\": [1, 2.5, -0.1e+3, true, false, null, \"\\u00e9\\n\"]}\n", NULL },
	{ "{\"big\":123456789012345678901234567890}", NULL },
	{ "{\"e\":\"\\ud83d\\ude00\"}", NULL },
	{ "[1]", NULL },
	{ "", "is empty" },
	{ " \n\t ", "is empty" },
	{ "{'a':1}", "single quotes" },
	{ "{\"a\":NaN}", "unexpected character at column 6" },
	{ "{\"a\":Infinity}", "unexpected character" },
	{ "{\"a\":-Infinity}", "malformed number" },
	{ "{\"a\":1.}", "a '.' needs digits" },
	{ "{\"a\":\"x\ty\"}", "control character in a string" },
	{ "{\"a\":\"\\u0000\"}", "\\u0000 cannot be stored" },
	{ "{\"a\":\"\\ud800\"}", "high surrogate not followed" },
	{ "{\"a\":\"\\udc00\"}", "lone low surrogate" },
	{ "{\"a\":1} {\"b\":2}", "more text follows at column 9" },
	{ "{\"a\":1", "ends before the value is complete" },
	{ "{\"a\":1,}", "is not valid JSON" },
	{ "{\"a\":tru}", "is not valid JSON" },
	{ "{\"a\":\"\xc3\x28\"}", "invalid utf-8" },
	{ "{\n  \"a\": 1,\n  \"b\": x\n}", "at line 3, column 8" },
	{ deep, "nested deeper than 64 levels" },
};

Test(queue, strict_json, .init = fill_deep)
{
	for (size_t i = 0; i < NELEM(json_cases); i++) {
		const struct json_case *c = &json_cases[i];
		char why[512] = "";
		struct json_object *o = queue_json_parse(c->in, strlen(c->in),
		    why, sizeof(why));

		if (c->err == NULL)
			cr_expect_not_null(o, "case %zu '%s': %s", i, c->in, why);
		else {
			cr_expect_null(o, "case %zu '%s' accepted", i, c->in);
			cr_expect(strstr(why, c->err) != NULL,
			    "case %zu: '%s' lacks '%s'", i, why, c->err);
		}
		json_object_put(o);
	}
}

Test(queue, json_members_are_raw_spans)
{
	const char *t = " { \"a\" : 1 , \"b\":{\"x\":[1,\"}\\\"\"]},\"c\":\"q\\\"z\","
	    "\"d\":-2.5e3 ,\"e\":null}";
	struct queue_member m[8];
	char why[256];
	struct json_object *o = queue_json_parse(t, strlen(t), why, sizeof(why));
	static const char *const want[][2] = {
		{ "a", "1" }, { "b", "{\"x\":[1,\"}\\\"\"]}" },
		{ "c", "\"q\\\"z\"" }, { "d", "-2.5e3" }, { "e", "null" },
	};
	int n;

	cr_assert_not_null(o, "%s", why);
	json_object_put(o);
	n = queue_json_members(t, strlen(t), m, 8);
	cr_assert_eq(n, 5);
	for (int i = 0; i < n; i++) {
		cr_expect_eq(m[i].keylen, strlen(want[i][0]), "member %d", i);
		cr_expect_eq(strncmp(m[i].key, want[i][0], m[i].keylen), 0);
		cr_expect_eq(m[i].vallen, strlen(want[i][1]), "member %d: %.*s",
		    i, (int)m[i].vallen, m[i].val);
		cr_expect_eq(strncmp(m[i].val, want[i][1], m[i].vallen), 0,
		    "member %d: %.*s", i, (int)m[i].vallen, m[i].val);
	}
	cr_expect_eq(queue_json_members(t, strlen(t), m, 4), -1);
	cr_expect_eq(queue_json_members("{}", 2, m, 4), 0);
}

Test(queue, raw_json_prints_verbatim)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "r",
	    queue_json_raw("{\"n\": 123456789012345678901234567890}"));
	cr_expect_str_eq(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
	    "{\"r\":{\"n\": 123456789012345678901234567890}}");
	json_object_put(o);
}

Test(queue, uuid_v7)
{
	char a[37], b[37], prev[37];

	queue_uuid(a);
	queue_uuid(b);
	cr_assert_eq(strlen(a), 36);
	cr_assert_str_neq(a, b);
	/* Time-ordered: one process's ids only grow, also within a ms. */
	memcpy(prev, b, sizeof(prev));
	for (int i = 0; i < 10000; i++) {
		queue_uuid(b);
		cr_assert_gt(strcmp(b, prev), 0, "%s after %s", b, prev);
		memcpy(prev, b, sizeof(prev));
	}
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			cr_expect_eq(a[i], '-', "%s", a);
		else
			cr_expect(strchr("0123456789abcdef", a[i]) != NULL, "%s", a);
	}
	cr_expect_eq(a[14], '7', "%s", a);
	{
		/* The first 48 bits are the Unix time in milliseconds. */
		char		 hex[13];
		long long	 ms, now = (long long)time(NULL) * 1000;

		memcpy(hex, a, 8);
		memcpy(hex + 8, a + 9, 4);
		hex[12] = '\0';
		ms = strtoll(hex, NULL, 16);
		cr_expect(ms > now - 60000 && ms < now + 60000, "%s", a);
	}
	cr_expect(strchr("89ab", a[19]) != NULL, "%s", a);
}

Test(queue, statuses)
{
	cr_expect(queue_status_valid("queued"));
	cr_expect(queue_status_valid("cancelled"));
	cr_expect(!queue_status_valid("running"));
	cr_expect(!queue_status_valid(""));
	cr_expect_eq(queue_field_by_key("task_type", 9), QF_TYPE);
	cr_expect_eq(queue_field_by_key("task_typ", 8), -1);
	cr_expect_str_eq(queue_field_option(QF_RELATIONSHIP_CONFIG),
	    "--relationship-config");
}

struct usage_case {
	const char	*argv[12];
	int		 want;
};

/* Usage errors are found before any connection is made. */
static const struct usage_case usage_cases[] = {
	{ { "enqueue" }, EX_USAGE },
	{ { "enqueue", "--type", "t" }, EX_USAGE },
	{ { "enqueue", "--bogus" }, EX_USAGE },
	{ { "enqueue", "--type" }, EX_USAGE },
	{ { "enqueue", "--ndjson", "f", "--id", "x" }, EX_USAGE },
	{ { "enqueue", "--ndjson", "f", "--ndjson", "g" }, EX_USAGE },
	{ { "enqueue", "--type", "t", "--source", "a/b", "--target", "c/d",
	    "--change-event", "{}", "--relationship-config", "{}" }, -1 },
	{ { "status" }, EX_USAGE },
	{ { "status", "a", "b" }, EX_USAGE },
	{ { "status", "a", "--yaml" }, EX_USAGE },
	{ { "status", "a", "--json" }, -1 },
	{ { "list", "--status", "running" }, EX_USAGE },
	{ { "list", "--limit", "0" }, EX_USAGE },
	{ { "list", "--limit" }, EX_USAGE },
	{ { "list", "x" }, EX_USAGE },
	{ { "list", "--status", "failed", "--type", "t", "--limit", "5" }, -1 },
	{ { "stats", "x" }, EX_USAGE },
	{ { "stats", "--yaml" }, EX_USAGE },
	{ { "stats", "--json" }, -1 },
	{ { "cancel" }, EX_USAGE },
	{ { "cancel", "a", "b" }, EX_USAGE },
	{ { "cancel", "--force", "a" }, EX_USAGE },
	{ { "cancel", "--", "-odd-id" }, -1 },
	{ { "retry" }, EX_USAGE },
	{ { "retry", "a", "b" }, EX_USAGE },
	{ { "retry", "a" }, -1 },
	{ { "reset-stuck", "--older-than", "10" }, EX_USAGE },
	{ { "reset-stuck", "--older-than", "0m" }, EX_USAGE },
	{ { "reset-stuck", "x" }, EX_USAGE },
	{ { "reset-stuck", "--older-than", "1h30m", "--dry-run" }, -1 },
};

Test(queue, usage_errors_exit_64, .init = cr_redirect_stderr)
{
	for (size_t i = 0; i < NELEM(usage_cases); i++) {
		const struct usage_case *c = &usage_cases[i];
		struct agent a = { .config_path = "/nonexistent/agent.ini" };
		char *argv[13] = { 0 };
		int argc = 0;

		while (argc < 12 && c->argv[argc]) {
			argv[argc] = (char *)c->argv[argc];
			argc++;
		}
		/* A good command line gets as far as the (missing) config. */
		cr_expect_eq(cmd_dispatch(&a, argc, argv),
		    c->want == -1 ? EX_CONFIG : c->want, "case %zu (%s %s)", i,
		    c->argv[0], c->argv[1] ? c->argv[1] : "");
		agent_free(&a);
	}
}
