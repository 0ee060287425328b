/*
 * test_sched.c - [schedule] values, due times and restart backoff for
 * "run", and [health] listen addresses; tables, no processes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "health.h"
#include "sched.h"

struct parse_case {
	const char	*in;
	int		 ok;
	enum sched_kind	 kind;
	long long	 value;	/* minute of day or seconds */
	const char	*err;	/* substring when !ok */
};

static const struct parse_case parse_cases[] = {
	{ "off", 1, SCHED_OFF, 0, NULL },
	{ "OFF", 1, SCHED_OFF, 0, NULL },
	{ "03:15", 1, SCHED_DAILY, 3 * 60 + 15, NULL },
	{ "00:00", 1, SCHED_DAILY, 0, NULL },
	{ "23:59", 1, SCHED_DAILY, 23 * 60 + 59, NULL },
	{ "1h", 1, SCHED_EVERY, 3600, NULL },
	{ "60s", 1, SCHED_EVERY, 60, NULL },
	{ "5s", 1, SCHED_EVERY, 5, NULL },
	{ "1h30m", 1, SCHED_EVERY, 5400, NULL },
	{ "1d", 1, SCHED_EVERY, 86400, NULL },
	{ "24:00", 0, 0, 0, "is not a time of day" },
	{ "3:15", 0, 0, 0, "is not a time of day" },
	{ "03:60", 0, 0, 0, "is not a time of day" },
	{ "03:15:00", 0, 0, 0, "is not a time of day" },
	{ "0s", 0, 0, 0, "at least 1s" },
	{ "10", 0, 0, 0, "has no unit" },
	{ "hourly", 0, 0, 0, "is not a duration" },
	{ "", 0, 0, 0, "is empty" },
	{ "5x", 0, 0, 0, "unknown unit" },
};

Test(sched, parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct sched_spec sp;
		char why[256] = "";
		int rc = sched_parse(c->in, &sp, why, sizeof(why));

		if (!c->ok) {
			cr_expect_eq(rc, -1, "case %zu (%s) accepted", i, c->in);
			cr_expect(strstr(why, c->err) != NULL, "case %zu: '%s' lacks '%s'", i, why,
			    c->err);
			continue;
		}
		cr_expect_eq(rc, 0, "case %zu (%s): %s", i, c->in, why);
		cr_expect_eq(sp.kind, c->kind, "case %zu", i);
		if (c->kind == SCHED_DAILY)
			cr_expect_eq(sp.minute_of_day, c->value, "case %zu", i);
		if (c->kind == SCHED_EVERY)
			cr_expect_eq(sp.every_s, c->value, "case %zu", i);
	}
}

/* 2026-11-28T00:00:00Z in ms. */
#define DAY0	1795824000000LL
#define MIN	60000LL

struct next_case {
	const char	*spec;
	int64_t		 now, want;
};

static const struct next_case next_cases[] = {
	{ "03:15", DAY0, DAY0 + 195 * MIN },			/* later today */
	{ "03:15", DAY0 + 195 * MIN - 1, DAY0 + 195 * MIN },
	{ "03:15", DAY0 + 195 * MIN, DAY0 + 1440 * MIN + 195 * MIN },	/* strictly after */
	{ "03:15", DAY0 + 1000 * MIN, DAY0 + 1440 * MIN + 195 * MIN },	/* tomorrow */
	{ "00:00", DAY0 + 1439 * MIN, DAY0 + 1440 * MIN },
	{ "1h", DAY0 + 7, DAY0 + 7 + 60 * MIN },
	{ "5s", DAY0, DAY0 + 5000 },
	{ "off", DAY0, -1 },
};

Test(sched, next_table)
{
	for (size_t i = 0; i < sizeof(next_cases) / sizeof(next_cases[0]); i++) {
		struct sched_spec sp;
		char why[256];

		cr_assert_eq(sched_parse(next_cases[i].spec, &sp, why, sizeof(why)), 0);
		cr_expect_eq(sched_next(&sp, next_cases[i].now), next_cases[i].want,
		    "case %zu: %lld", i, (long long)sched_next(&sp, next_cases[i].now));
	}
}

Test(sched, backoff_table)
{
	static const struct { int failures; long want; } cases[] = {
		{ 1, 1000 }, { 2, 2000 }, { 3, 4000 }, { 6, 32000 }, { 7, 60000 }, { 50, 60000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_expect_eq(sched_backoff_ms(cases[i].failures, 1000, 60000), cases[i].want,
		    "case %zu", i);
}

Test(sched, status_text)
{
	char buf[64];

	cr_expect_str_eq(sched_status_text(3 << 8, buf, sizeof(buf)), "exit status 3");
	cr_expect_str_eq(sched_status_text(9, buf, sizeof(buf)), "killed by signal 9 (SIGKILL)");
}

struct listen_case {
	const char	*in;
	const char	*err;	/* NULL: accepted */
};

static const struct listen_case listen_cases[] = {
	{ "", NULL },
	{ "off", NULL },
	{ "127.0.0.1:9187", NULL },
	{ "10.8.0.2:1", NULL },
	{ "[::1]:9187", NULL },
	{ "0.0.0.0:65535", NULL },
	{ "127.0.0.1", "is not HOST:PORT" },
	{ ":9187", "is not HOST:PORT" },
	{ "localhost:9187", "is not an IP address" },
	{ "127.0.0.1:0", "is not a number from 1 to 65535" },
	{ "127.0.0.1:65536", "is not a number from 1 to 65535" },
	{ "127.0.0.1:http", "is not a number from 1 to 65535" },
	{ "::1:9187", "in brackets" },
};

Test(health, listen_table)
{
	for (size_t i = 0; i < sizeof(listen_cases) / sizeof(listen_cases[0]); i++) {
		const struct listen_case *c = &listen_cases[i];
		char why[256] = "";
		int rc = health_check_listen(c->in, why, sizeof(why));

		if (c->err == NULL) {
			cr_expect_eq(rc, 0, "case %zu (%s): %s", i, c->in, why);
			continue;
		}
		cr_expect_eq(rc, -1, "case %zu (%s) accepted", i, c->in);
		cr_expect(strstr(why, c->err) != NULL, "case %zu: '%s' lacks '%s'", i, why, c->err);
	}
}
