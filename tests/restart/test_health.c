/*
 * test_health.c - the worker's /healthz and /metrics ([health] listen):
 * healthy, Prometheus text that parses, counters that follow the work,
 * 503 with the reason while PostgreSQL is stopped and 200 again after.
 * In the restart suite because it stops the server.
 */
#include <criterion/criterion.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "version.h"

/*
 * Every line is a comment (# HELP / # TYPE) or "name{labels} value" with
 * a Prometheus metric name, quoted label values and a number.
 */
static void
check_exposition(const char *text)
{
	regex_t sample, comment;
	char *copy = strdup(text), *line, *save = NULL;
	int n = 0;

	cr_assert_eq(regcomp(&sample, "^[a-zA-Z_:][a-zA-Z0-9_:]*"
	    "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\\})?"
	    " (-?[0-9.]+([eE][-+]?[0-9]+)?|\\+Inf|-Inf|NaN)$", REG_EXTENDED), 0);
	cr_assert_eq(regcomp(&comment, "^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$",
	    REG_EXTENDED), 0);
	for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#')
			cr_assert_eq(regexec(&comment, line, 0, NULL, 0), 0, "bad comment: %s", line);
		else
			cr_assert_eq(regexec(&sample, line, 0, NULL, 0), 0, "bad sample: %s", line);
		n++;
	}
	cr_assert_gt(n, 10, "too few lines:\n%s", text);
	regfree(&sample);
	regfree(&comment);
	free(copy);
}

/* The value of the sample whose name and labels are exactly key. */
static double
sample(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[klen] == ' ')
			return strtod(p + klen + 1, NULL);
		p += klen;
	}
	cr_assert_fail("no sample %s in:\n%s", key, text);
	return 0;
}

/* Poll url until it answers want (or ms pass); returns the last body. */
static char *
wait_status(const char *url, long want, int ms)
{
	long st = 0;
	char *body = NULL;

	for (int waited = 0; waited <= ms; waited += 200) {
		free(body);
		body = http_get(url, &st);
		if (st == want)
			return body;
		usleep(200 * 1000);
	}
	cr_assert_fail("%s did not answer %ld within %d ms (last %ld: %s)", url, want, ms, st,
	    body);
	return body;
}

Test(health, healthz_and_metrics_follow_the_database, .timeout = 180)
{
	char *db = migrated_db(), text[512], hz[128], mx[128], *cfg, *body, key[256];
	int port = free_ports(1), pid;
	long st;
	PGconn *c;

	snprintf(text, sizeof(text), "[worker]\npoll_interval_ms = 200\n"
	    "[health]\nlisten = 127.0.0.1:%d\n[handler.noop]\nkind = noop\n", port);
	cfg = write_temp(text, 0600);
	snprintf(hz, sizeof(hz), "http://127.0.0.1:%d/healthz", port);
	snprintf(mx, sizeof(mx), "http://127.0.0.1:%d/metrics", port);
	pid = spawn_agent(db_env_cfg(db, cfg), NULL, (const char *[]){ "worker", NULL });

	body = wait_status(hz, 200, 10000);
	cr_assert(strstr(body, "\"status\":\"ok\"") != NULL, "%s", body);
	free(body);
	body = http_get(mx, &st);
	cr_assert_eq(st, 200);
	check_exposition(body);
	cr_assert_eq(sample(body, "orchestrator_worker_tasks_finished_total{type=\"noop\"}"), 0);
	cr_assert_eq(sample(body, "orchestrator_worker_db_connected"), 1);
	/* The agent under test was linked with the same version.o. */
	snprintf(key, sizeof(key), "orchestrator_agent_build_info{version=\"%s\"}",
	    agent_version);
	cr_assert_eq(sample(body, key), 1);
	free(body);

	c = db_open(db);
	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, source_repo, target_repo, "
	    "change_event, relationship_config) SELECT 'h' || g, 's', 'noop', 'a/b', 'c/d', '{}', "
	    "'{}' FROM generate_series(1, 40) g");
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'", "40", 20000));
	PQfinish(c);
	/* The outcome is counted once recorded: poll briefly for the last batch. */
	for (int i = 0; i < 50; i++) {
		body = http_get(mx, &st);
		if (sample(body, "orchestrator_worker_tasks_finished_total{type=\"noop\"}") == 40)
			break;
		free(body);
		body = NULL;
		usleep(100 * 1000);
	}
	cr_assert_not_null(body, "finished_total never reached 40");
	check_exposition(body);
	cr_assert_eq(sample(body, "orchestrator_worker_tasks_claimed_total{type=\"noop\"}"), 40);
	cr_assert_eq(sample(body, "orchestrator_worker_handler_duration_seconds_count{type=\"noop\"}"), 40);
	cr_assert_eq(sample(body, "orchestrator_worker_handler_duration_seconds_bucket{type=\"noop\",le=\"+Inf\"}"), 40);
	cr_assert_gt(sample(body, "orchestrator_worker_last_claim_success_timestamp_seconds"), 1e9);
	free(body);

	pg_ctl("stop -m immediate");
	body = wait_status(hz, 503, 20000);
	cr_assert(strstr(body, "database unreachable") != NULL, "%s", body);
	free(body);
	body = http_get(mx, &st);
	cr_assert_eq(st, 200, "/metrics answers while the database is down");
	cr_assert_eq(sample(body, "orchestrator_worker_db_connected"), 0);
	free(body);
	pg_ctl("start");
	body = wait_status(hz, 200, 60000);
	free(body);
	body = http_get(mx, &st);
	cr_assert_geq(sample(body, "orchestrator_worker_db_reconnects_total"), 1);
	free(body);

	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	body = http_get(hz, &st);
	cr_assert_eq(st, 0, "the port is closed after the worker exits");
	free(body);
	unlink(cfg);
	free(cfg);
	free(db);
}
