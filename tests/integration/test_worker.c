/*
 * test_worker.c - the built-in worker against the harness's PostgreSQL:
 * throughput with several workers, SIGKILL chaos, SIGTERM drain, retries
 * and backoff, exec timeouts, NOTIFY wake-ups, cancel, reload, bad input.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static void
insert_tasks(PGconn *c, const char *type, int n, const char *prefix,
    int max_attempts)
{
	char sql[768];

	snprintf(sql, sizeof(sql), "INSERT INTO tasks (task_id, skill_name, task_type, "
	    "source_repo, target_repo, change_event, relationship_config, max_attempts) "
	    "SELECT '%s' || g, 'trigger_%s', '%s', 'acme/api', 'acme/web', "
	    "jsonb_build_object('n', g), '{}', %d FROM generate_series(1, %d) g",
	    prefix, type, type, max_attempts, n);
	db_do(c, sql);
}

static char *
config(const char *body)
{
	return write_temp(body, 0600);
}

static int
run_worker(const char *db, const char *cfg, const char *const *args)
{
	struct run r;
	const char *argv[12] = { "worker" };
	int n = 1, st;

	for (; args && *args && n < 11; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	run_agent(&r, db_env_cfg(db, cfg), NULL, argv);
	st = r.status;
	if (st != 0)
		fprintf(stderr, "worker exited %d: %s\n", st, r.err);
	run_free(&r);
	return st;
}

static int
start_worker(const char *db, const char *cfg, const char *const *args)
{
	const char *argv[12] = { "worker" };
	int n = 1;

	for (; args && *args && n < 11; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return spawn_agent(db_env_cfg(db, cfg), NULL, argv);
}

/* The end of most tests: close, remove the config file, free. */
static void
done(char *db, char *cfg, PGconn *c)
{
	PQfinish(c);
	unlink(cfg);
	free(cfg);
	free(db);
}

static void
assert_exactly_once(PGconn *c)
{
	char *v;

	v = db_value(c, "SELECT count(*) FROM (SELECT task_id FROM task_history "
	    "WHERE status = 'finished' GROUP BY task_id HAVING count(*) > 1) d");
	cr_assert_str_eq(v, "0", "a task was finished twice");
	free(v);
	v = db_value(c, "SELECT count(*) FROM tasks t WHERE status = 'finished' AND "
	    "(SELECT count(*) FROM task_history h WHERE h.task_id = t.task_id "
	    "AND h.status = 'finished') <> 1");
	cr_assert_str_eq(v, "0", "finished task without exactly one history row");
	free(v);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE attempt_count > max_attempts");
	cr_assert_str_eq(v, "0", "attempt_count exceeded max_attempts");
	free(v);
}

/* Four workers, 20k tasks: every task finished exactly once. */
Test(worker, four_workers_drain_20k, .timeout = 120)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nprefetch = 200\n[handler.noop]\nkind = noop\n");
	PGconn *c = db_open(db);
	int pids[4];
	char *v;

	insert_tasks(c, "noop", 20000, "t", 3);
	for (int i = 0; i < 4; i++)
		pids[i] = start_worker(db, cfg, (const char *[]){ "--exit-when-empty",
		    "--concurrency", "16", NULL });
	for (int i = 0; i < 4; i++)
		cr_assert_eq(wait_agent(pids[i]), 0, "worker %d failed", i);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'");
	cr_assert_str_eq(v, "20000");
	free(v);
	v = db_value(c, "SELECT count(*) FROM task_history WHERE status = 'finished'");
	cr_assert_str_eq(v, "20000");
	free(v);
	v = db_value(c, "SELECT count(DISTINCT worker_id) > 1 FROM tasks");
	cr_assert_str_eq(v, "t", "only one worker did the work");
	free(v);
	v = db_value(c, "SELECT count(*) FROM workers WHERE stopped_at IS NOT NULL");
	cr_assert_str_eq(v, "4", "workers did not record themselves");
	free(v);
	assert_exactly_once(c);
	done(db, cfg, c);
}

/* Workers running an exec handler are SIGKILLed and restarted repeatedly. */
Test(worker, sigkill_chaos, .timeout = 180)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nlease_seconds = 3\nretry_base_ms = 100\n"
	    "retry_cap_ms = 500\npoll_interval_ms = 200\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'cat >/dev/null; sleep 0.05; echo \"{\\\"ok\\\": 1}\"'\n"
	    "timeout_seconds = 20\n");
	PGconn *c = db_open(db);
	int pids[3];
	unsigned seed = (unsigned)getpid();
	char *v;

	insert_tasks(c, "consumer_triage", 400, "k", 5);
	for (int i = 0; i < 3; i++)
		pids[i] = start_worker(db, cfg, (const char *[]){ "--concurrency", "8", NULL });
	for (int round = 0; round < 8; round++) {
		int victim = (int)(rand_r(&seed) % 3);

		usleep(300000 + rand_r(&seed) % 400000);
		kill(pids[victim], SIGKILL);
		wait_agent(pids[victim]);
		pids[victim] = start_worker(db, cfg, (const char *[]){ "--concurrency", "8", NULL });
	}
	for (int i = 0; i < 3; i++) {
		kill(pids[i], SIGKILL);
		wait_agent(pids[i]);
	}
	/* A survivor drains the rest, rescuing the dead workers' leases. */
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty",
	    "--concurrency", "8", NULL }), 0);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE status NOT IN ('finished', 'failed')");
	cr_assert_str_eq(v, "0", "tasks left unfinished");
	free(v);
	v = db_value(c, "SELECT count(*) FROM tasks");
	cr_assert_str_eq(v, "400", "tasks lost");
	free(v);
	v = db_value(c, "SELECT count(*) FROM task_history WHERE status = 'rescued'");
	cr_assert(atoi(v) > 0, "no lease was ever rescued: the chaos did not bite");
	free(v);
	assert_exactly_once(c);
	done(db, cfg, c);
}

/* SIGTERM: prefetched tasks go back, running ones finish within grace. */
Test(worker, sigterm_drain, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nprefetch = 4\ngrace_seconds = 20\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'cat >/dev/null; sleep 1; echo {}'\n");
	PGconn *c = db_open(db);
	int pid;
	char *v;

	insert_tasks(c, "consumer_triage", 10, "d", 3);
	pid = start_worker(db, cfg, (const char *[]){ "--concurrency", "2", NULL });
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'started'", "6", 10000),
	    "worker did not claim 2 running + 4 prefetched");
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'");
	cr_assert_str_eq(v, "2", "running handlers were not allowed to finish");
	free(v);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE status = 'queued' AND attempt_count = 0 "
	    "AND worker_id IS NULL AND lease_expires_at IS NULL");
	cr_assert_str_eq(v, "8", "prefetched tasks were not returned intact");
	free(v);
	v = db_value(c, "SELECT count(*) FROM task_history WHERE status = 'released'");
	cr_assert_str_eq(v, "4");
	free(v);
	done(db, cfg, c);
}

/* After grace_seconds a still-running handler is killed and requeued. */
Test(worker, sigterm_grace_expires, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nprefetch = 0\ngrace_seconds = 1\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 60'\n");
	PGconn *c = db_open(db);
	int pid;
	time_t t0;
	char *v;

	insert_tasks(c, "consumer_triage", 1, "g", 3);
	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT status FROM tasks", "started", 10000));
	usleep(200000);
	t0 = time(NULL);
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	cr_assert(time(NULL) - t0 < 10, "grace was not enforced");
	v = db_value(c, "SELECT status || ':' || attempt_count FROM tasks");
	cr_assert_str_eq(v, "queued:0");
	free(v);
	done(db, cfg, c);
}

/* Failures retry with backoff until max_attempts, then fail. */
Test(worker, retries_with_backoff_then_fails, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nretry_base_ms = 400\nretry_cap_ms = 10000\n"
	    "poll_interval_ms = 50\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'echo boom-detail >&2; exit 75'\n");
	PGconn *c = db_open(db);
	char *v;

	insert_tasks(c, "consumer_triage", 1, "r", 3);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL }), 0);
	v = db_value(c, "SELECT status || ':' || attempt_count FROM tasks");
	cr_assert_str_eq(v, "failed:3");
	free(v);
	v = db_value(c, "SELECT error FROM tasks");
	cr_assert(strstr(v, "status 75") && strstr(v, "boom-detail"), "%s", v);
	free(v);
	v = db_value(c, "SELECT string_agg(status, ',' ORDER BY id) FROM task_history");
	cr_assert_str_eq(v, "started,retry,started,retry,started,failed");
	free(v);
	/* Exponential: the second wait is longer than the first (>= base/2). */
	v = db_value(c, "WITH h AS (SELECT status, timestamp, row_number() OVER (ORDER BY id) n "
	    "FROM task_history) SELECT (SELECT timestamp FROM h WHERE n = 3) - "
	    "(SELECT timestamp FROM h WHERE n = 2) >= interval '190 ms' AND "
	    "(SELECT timestamp FROM h WHERE n = 5) - (SELECT timestamp FROM h WHERE n = 4) >= "
	    "interval '390 ms'");
	cr_assert_str_eq(v, "t", "retries did not back off");
	free(v);
	v = db_value(c, "SELECT count(*) FROM task_history WHERE status = 'retry' AND duration_ms IS NOT NULL");
	cr_assert_str_eq(v, "2");
	free(v);
	done(db, cfg, c);
}

/* A timeout kills the whole process group, not just the direct child. */
Test(worker, exec_timeout_kills_process_group, .timeout = 60)
{
	char *db = migrated_db();
	char pidfile[64], ini[512], *cfg, *v, *text;
	PGconn *c = db_open(db);
	char stat[64], buf[256];
	FILE *fp;
	int bg;

	snprintf(pidfile, sizeof(pidfile), "/tmp/oa-bg-%d.pid", (int)getpid());
	snprintf(ini, sizeof(ini), "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 300 & echo $! > %s; wait'\ntimeout_seconds = 1\n", pidfile);
	cfg = config(ini);
	insert_tasks(c, "consumer_triage", 1, "x", 1);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL }), 0);
	v = db_value(c, "SELECT status || ':' || error FROM tasks");
	cr_assert(strstr(v, "failed:handler timed out after 1 s") != NULL, "%s", v);
	free(v);
	text = read_file(pidfile);
	cr_assert_not_null(text, "handler never ran");
	bg = atoi(text);
	free(text);
	cr_assert(bg > 0);
	/* Gone, or at most a zombie waiting for init to reap it. */
	snprintf(stat, sizeof(stat), "/proc/%d/stat", bg);
	for (int i = 0; i < 50; i++) {
		fp = fopen(stat, "r");
		if (fp == NULL)
			break;
		buf[0] = '\0';
		(void)!fgets(buf, sizeof(buf), fp);
		fclose(fp);
		if (strstr(buf, ") Z ") != NULL)
			break;
		usleep(100000);
		cr_assert(i < 49, "background child %d survived the timeout: %s", bg, buf);
	}
	unlink(pidfile);
	done(db, cfg, c);
}

/* stdout must be JSON: invalid output is an error, not a success. */
Test(worker, exec_result_must_be_json, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'echo not-json'\n"
	    "[handler.template_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'cat'\n");
	PGconn *c = db_open(db);
	char *v;

	insert_tasks(c, "consumer_triage", 1, "j", 1);
	insert_tasks(c, "template_triage", 1, "p", 1);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL }), 0);
	v = db_value(c, "SELECT status || ':' || error FROM tasks WHERE task_id = 'j1'");
	cr_assert(strstr(v, "failed:handler exited 0 but its output is not a single JSON value") != NULL, "%s", v);
	free(v);
	/* The task JSON on stdin, echoed back as the result. */
	v = db_value(c, "SELECT status || ':' || (result->>'task_id') || ':' || "
	    "(result->'change_event'->>'n') || ':' || (result->>'attempt') FROM tasks WHERE task_id = 'p1'");
	cr_assert_str_eq(v, "finished:p1:1:1");
	free(v);
	done(db, cfg, c);
}

/* A seed-style INSERT wakes an idle worker through NOTIFY, not polling. */
Test(worker, notify_wakes_idle_worker, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\npoll_interval_ms = 600000\n[handler.consumer_triage]\nkind = noop\n");
	PGconn *c = db_open(db);
	int pid;

	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT count(*) FROM workers WHERE stopped_at IS NULL", "1", 10000));
	usleep(300000);
	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, status, source_repo, "
	    "target_repo, change_event, relationship_config) VALUES ('seed-1', "
	    "'trigger_consumer_triage', 'consumer_triage', 'queued', 'o/s', 'o/c', '{}', '{}')");
	cr_assert(wait_value(c, "SELECT status FROM tasks WHERE task_id = 'seed-1'", "finished", 5000),
	    "the insert did not wake the worker");
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

/* listen = off (behind a transaction pooler): polling still finds work. */
Test(worker, poll_fallback_without_listen, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nlisten = off\npoll_interval_ms = 100\n"
	    "[handler.consumer_triage]\nkind = noop\n");
	PGconn *c = db_open(db);
	int pid;

	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT count(*) FROM workers", "1", 10000));
	insert_tasks(c, "consumer_triage", 5, "p", 3);
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'", "5", 5000));
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

/* A task type no worker serves stays queued; it is never reported done. */
Test(worker, unserved_type_stays_queued, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[handler.noop]\nkind = noop\n");
	PGconn *c = db_open(db);
	char *v;

	insert_tasks(c, "noop", 3, "n", 3);
	insert_tasks(c, "mystery", 2, "m", 3);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL }), 0);
	v = db_value(c, "SELECT string_agg(task_type || ':' || status, ',' ORDER BY task_id) FROM tasks");
	cr_assert_str_eq(v, "mystery:queued,mystery:queued,noop:finished,noop:finished,noop:finished");
	free(v);
	done(db, cfg, c);
}

/* A running task whose cancel is requested is stopped and recorded. */
Test(worker, cancel_running_task, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[handler.consumer_triage]\nkind = exec\ncommand = /bin/sh -c 'sleep 60'\n");
	PGconn *c = db_open(db);
	int pid;

	insert_tasks(c, "consumer_triage", 1, "c", 3);
	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT status FROM tasks", "started", 10000));
	db_do(c, "UPDATE tasks SET cancel_requested = true WHERE task_id = 'c1'");
	db_do(c, "SELECT pg_notify('orchestrator_cancel', 'c1')");
	cr_assert(wait_value(c, "SELECT status FROM tasks", "cancelled", 5000));
	cr_assert(wait_value(c, "SELECT count(*) FROM task_history WHERE status = 'cancelled'", "1", 2000));
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

/* A completion after the lease was lost and the task rescued is refused. */
Test(worker, lost_lease_result_is_discarded, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nlease_seconds = 30\n[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 1; echo {}'\n");
	PGconn *c = db_open(db);
	int pid;
	char *v;

	insert_tasks(c, "consumer_triage", 1, "l", 3);
	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT status FROM tasks", "started", 10000));
	/* Pretend the lease ran out and another worker rescued and took it. */
	db_do(c, "UPDATE tasks SET lease_expires_at = now() - interval '1 s'");
	db_do(c, "SELECT * FROM reset_stuck_tasks()");
	db_do(c, "UPDATE tasks SET status = 'started', worker_id = 'other', "
	    "attempt_count = attempt_count + 1, lease_expires_at = now() + interval '1 h'");
	sleep(2);
	v = db_value(c, "SELECT status || ':' || worker_id FROM tasks");
	cr_assert_str_eq(v, "started:other", "the old worker overwrote the new owner's task");
	free(v);
	v = db_value(c, "SELECT count(*) FROM task_history WHERE status = 'finished'");
	cr_assert_str_eq(v, "0");
	free(v);
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

/* SIGHUP reloads handlers; a broken file keeps the running configuration. */
Test(worker, sighup_reload, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[handler.alpha]\nkind = noop\n");
	PGconn *c = db_open(db);
	FILE *fp;
	int pid;

	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT count(*) FROM workers", "1", 10000));
	insert_tasks(c, "beta", 1, "b", 3);
	usleep(500000);
	fp = fopen(cfg, "w");
	fputs("[handler.alpha]\nkind = noop\n[handler.beta]\nkind = noop\n", fp);
	fclose(fp);
	kill(pid, SIGHUP);
	cr_assert(wait_value(c, "SELECT status FROM tasks WHERE task_id = 'b1'", "finished", 5000),
	    "reloaded handler did not run");
	fp = fopen(cfg, "w");
	fputs("[handler.alpha]\nkind = bogus\n", fp);
	fclose(fp);
	kill(pid, SIGHUP);
	usleep(300000);
	insert_tasks(c, "beta", 1, "bb", 3);
	cr_assert(wait_value(c, "SELECT status FROM tasks WHERE task_id = 'bb1'", "finished", 5000),
	    "a bad reload broke the running configuration");
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

Test(worker, bad_input)
{
	char *db = migrated_db();
	char *none = config("[worker]\nconcurrency = 2\n");
	char *bad = config("[handler.x]\nkind = exec\n");
	char *ok = config("[handler.x]\nkind = noop\n");
	struct run r;
	char want[128];

	run_agent(&r, db_env_cfg(db, none), NULL, (const char *[]){ "worker", NULL });
	cr_assert_eq(r.status, 78, "%s", r.err);
	cr_assert(strstr(r.err, "no [handler.TYPE] section") != NULL, "%s", r.err);
	run_free(&r);
	run_agent(&r, db_env_cfg(db, bad), NULL, (const char *[]){ "worker", NULL });
	cr_assert_eq(r.status, 78, "%s", r.err);
	snprintf(want, sizeof(want), "%s:1: [handler.x] kind = exec needs command", bad);
	cr_assert(strstr(r.err, want) != NULL, "%s", r.err);
	run_free(&r);
	run_agent(&r, db_env_cfg(db, ok), NULL, (const char *[]){ "worker", "--types", "y", NULL });
	cr_assert_eq(r.status, 78, "%s", r.err);
	cr_assert(strstr(r.err, "--types names 'y'") != NULL, "%s", r.err);
	run_free(&r);
	run_agent(&r, db_env_cfg(db, ok), NULL, (const char *[]){ "worker", "--concurrency", "0", NULL });
	cr_assert_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	run_agent(&r, db_env_cfg(db, ok), NULL, (const char *[]){ "worker", "--bogus", NULL });
	cr_assert_eq(r.status, 64, "%s", r.err);
	run_free(&r);
	unlink(none);
	unlink(bad);
	unlink(ok);
	free(none);
	free(bad);
	free(ok);
	free(db);
}

/*
 * A tiny HTTP server for the http handler: the path picks the answer.
 * Runs in a child process until the test ends.
 */
static int
http_fixture(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(listen(s, 16) == 0);
	getsockname(s, (struct sockaddr *)&sa, &len);
	if (fork() == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (;;) {
			char req[8192], resp[512];
			const char *body = "{\"r\": 1}", *status = "200 OK";
			ssize_t n, got = 0;
			int c = accept(s, NULL, NULL);

			if (c == -1)
				continue;
			/* Read headers and the (small) body. */
			while (got < (ssize_t)sizeof(req) - 1) {
				n = read(c, req + got, sizeof(req) - 1 - (size_t)got);
				if (n <= 0)
					break;
				got += n;
				req[got] = '\0';
				char *hend = strstr(req, "\r\n\r\n");
				char *cl = strcasestr(req, "Content-Length:");
				if (hend && (!cl || (ssize_t)(hend + 4 - req) + atoi(cl + 15) <= got))
					break;
			}
			if (strstr(req, "POST /bad "))
				status = "400 Bad Request", body = "{\"error\": \"no\"}";
			else if (strstr(req, "POST /busy "))
				status = "503 Service Unavailable", body = "";
			else if (strstr(req, "POST /rate "))
				status = "429 Too Many Requests", body = "";
			else if (strstr(req, "POST /notjson "))
				body = "nope";
			else if (strstr(req, "POST /echo ")) {
				char *b = strstr(req, "\r\n\r\n");
				body = b ? b + 4 : "";
			}
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n", status, strlen(body));
			(void)!write(c, resp, (size_t)n);
			(void)!write(c, body, strlen(body));
			close(c);
		}
	}
	close(s);
	return ntohs(sa.sin_port);
}

Test(worker, http_handler_status_mapping, .timeout = 60)
{
	char *db = migrated_db();
	char ini[1024], *cfg, *v;
	PGconn *c = db_open(db);
	int port = http_fixture();

	snprintf(ini, sizeof(ini), "[worker]\nretry_base_ms = 20\nretry_cap_ms = 40\npoll_interval_ms = 50\n"
	    "[handler.ok]\nkind = http\nurl = http://127.0.0.1:%d/echo\n"
	    "[handler.bad]\nkind = http\nurl = http://127.0.0.1:%d/bad\n"
	    "[handler.busy]\nkind = http\nurl = http://127.0.0.1:%d/busy\n"
	    "[handler.rate]\nkind = http\nurl = http://127.0.0.1:%d/rate\n"
	    "[handler.notjson]\nkind = http\nurl = http://127.0.0.1:%d/notjson\n"
	    "[handler.down]\nkind = http\nurl = http://127.0.0.1:1/x\n",
	    port, port, port, port, port);
	cfg = config(ini);
	insert_tasks(c, "ok", 1, "ok", 3);
	insert_tasks(c, "bad", 1, "bad", 3);
	insert_tasks(c, "busy", 1, "busy", 3);
	insert_tasks(c, "rate", 1, "rate", 2);
	insert_tasks(c, "notjson", 1, "notjson", 2);
	insert_tasks(c, "down", 1, "down", 2);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL }), 0);

	v = db_value(c, "SELECT status || ':' || (result->>'task_id') || ':' || (result->>'source_repo') FROM tasks WHERE task_type = 'ok'");
	cr_assert_str_eq(v, "finished:ok1:acme/api");
	free(v);
	/* 4xx: failed at once, no retry. */
	v = db_value(c, "SELECT status || ':' || attempt_count || ':' || error FROM tasks WHERE task_type = 'bad'");
	cr_assert(strncmp(v, "failed:1:http handler: HTTP 400", 31) == 0, "%s", v);
	free(v);
	/* 5xx, 429, transport errors and bad JSON: retried until attempts run out. */
	v = db_value(c, "SELECT string_agg(task_type || ':' || status || ':' || attempt_count, ',' ORDER BY task_type) "
	    "FROM tasks WHERE task_type IN ('busy', 'rate', 'notjson', 'down')");
	cr_assert_str_eq(v, "busy:failed:3,down:failed:2,notjson:failed:2,rate:failed:2");
	free(v);
	v = db_value(c, "SELECT error FROM tasks WHERE task_type = 'notjson'");
	cr_assert(strstr(v, "HTTP 200 but the response output is not a single JSON value") != NULL, "%s", v);
	free(v);
	done(db, cfg, c);
}

/* Under systemd (Type=notify): READY, STATUS, WATCHDOG and STOPPING. */
Test(worker, systemd_notify_protocol, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[handler.noop]\nkind = noop\n");
	char path[108], envsock[160], got[4096] = "", buf[512];
	struct sockaddr_un sa;
	const char **base = db_env_cfg(db, cfg);
	const char *env[8];
	int s, pid, n = 0;
	ssize_t r;

	snprintf(path, sizeof(path), "/tmp/oa-notify-%d.sock", (int)getpid());
	unlink(path);
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	snprintf(envsock, sizeof(envsock), "NOTIFY_SOCKET=%s", path);
	while (base[n] != NULL) {
		env[n] = base[n];
		n++;
	}
	env[n++] = envsock;
	env[n++] = "WATCHDOG_USEC=400000";
	env[n] = NULL;
	pid = spawn_agent(env, NULL, (const char *[]){ "worker", NULL });
	struct timeval tv = { 0, 200000 };
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int i = 0; i < 30 && !(strstr(got, "READY=1") && strstr(got, "WATCHDOG=1") &&
	    strstr(got, "STATUS=")); i++) {
		r = recv(s, buf, sizeof(buf) - 1, 0);
		if (r > 0) {
			buf[r] = '\0';
			strncat(got, buf, sizeof(got) - strlen(got) - 2);
			strcat(got, "\n");
		}
	}
	cr_assert(strstr(got, "READY=1") != NULL, "%s", got);
	cr_assert(strstr(got, "STATUS=database connected") != NULL, "%s", got);
	cr_assert(strstr(got, "WATCHDOG=1") != NULL, "%s", got);
	kill(pid, SIGTERM);
	for (int i = 0; i < 30 && !strstr(got, "STOPPING=1"); i++) {
		r = recv(s, buf, sizeof(buf) - 1, 0);
		if (r > 0) {
			buf[r] = '\0';
			strncat(got, buf, sizeof(got) - strlen(got) - 2);
		}
	}
	cr_assert(strstr(got, "STOPPING=1") != NULL, "%s", got);
	cr_assert_eq(wait_agent(pid), 0);
	close(s);
	unlink(path);
	unlink(cfg);
	free(cfg);
	free(db);
}

/*
 * Notifications that arrive while the worker runs a statement are queued
 * inside libpq, not on the socket: none may be lost.  With polling off in
 * practice (10 minutes), each insert must be picked up by its NOTIFY.
 */
Test(worker, notify_never_lost, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\npoll_interval_ms = 600000\n[handler.noop]\nkind = noop\n");
	PGconn *c = db_open(db);
	char sql[256];
	int pid;

	pid = start_worker(db, cfg, NULL);
	cr_assert(wait_value(c, "SELECT count(*) FROM workers", "1", 10000));
	usleep(200000);
	/* One at a time, as an idle queue sees them. */
	for (int i = 0; i < 300; i++) {
		char want[16];

		snprintf(sql, sizeof(sql), "INSERT INTO tasks (task_id, skill_name, task_type, "
		    "source_repo, target_repo, change_event, relationship_config) VALUES "
		    "('q%d', 's', 'noop', 'a/b', 'c/d', '{}', '{}')", i);
		db_do(c, sql);
		snprintf(want, sizeof(want), "%d", i + 1);
		cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'", want, 1500),
		    "task %d waited: its NOTIFY was lost", i);
	}
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

/*
 * Held claims.  n_tup_upd counts row writes: a task that ends within
 * hold_ms is written once (queued -> finished), otherwise twice (claim,
 * then result).  Backends report it when they exit, so wait for it.
 */
static void
drain_and_count_writes(int hold_ms, const char *want_updates)
{
	char *db = migrated_db();
	char body[160], *cfg, *v;
	PGconn *c = db_open(db);

	snprintf(body, sizeof(body), "[worker]\nhold_ms = %d\nprefetch = 100\n"
	    "[handler.noop]\nkind = noop\n", hold_ms);
	cfg = config(body);
	insert_tasks(c, "noop", 500, "h", 3);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty",
	    NULL }), 0);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished' "
	    "AND attempt_count = 1 AND worker_id IS NOT NULL AND started_at "
	    "IS NOT NULL AND ended_at >= started_at AND lease_expires_at IS NULL");
	cr_assert_str_eq(v, "500", "hold_ms %d", hold_ms);
	free(v);
	/* Both transitions are in the audit, in order, with the claim time. */
	v = db_value(c, "SELECT count(*) FROM (SELECT task_id, string_agg(status, "
	    "',' ORDER BY id) s FROM task_history GROUP BY task_id) x "
	    "WHERE s <> 'started,finished'");
	cr_assert_str_eq(v, "0", "hold_ms %d: history not started,finished", hold_ms);
	free(v);
	v = db_value(c, "SELECT count(*) FROM tasks t JOIN task_history h USING "
	    "(task_id) WHERE h.status = 'started' AND h.timestamp <> t.started_at");
	cr_assert_str_eq(v, "0", "hold_ms %d: 'started' row is not the claim", hold_ms);
	free(v);
	cr_assert(wait_value(c, "SELECT n_tup_upd FROM pg_stat_user_tables "
	    "WHERE relname = 'tasks'", want_updates, 10000),
	    "hold_ms %d: tasks were not written %s times", hold_ms, want_updates);
	assert_exactly_once(c);
	done(db, cfg, c);
}

Test(worker, hold_writes_quick_tasks_once, .timeout = 60)
{
	drain_and_count_writes(1000, "500");
}

Test(worker, hold_off_writes_claim_and_result, .timeout = 60)
{
	drain_and_count_writes(0, "1000");
}

/* A handler that outlives hold_ms is marked started with a lease. */
Test(worker, slow_task_leaves_the_hold_leased, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nhold_ms = 50\nlease_seconds = 30\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 2; echo {}'\n");
	PGconn *c = db_open(db);
	int pid;
	char *v;

	insert_tasks(c, "consumer_triage", 1, "s", 3);
	pid = start_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL });
	cr_assert(wait_value(c, "SELECT status || ':' || attempt_count || ':' || "
	    "(lease_expires_at > now() + interval '20 s') FROM tasks",
	    "started:1:true", 5000), "not marked started with a lease");
	cr_assert_eq(wait_agent(pid), 0);
	v = db_value(c, "SELECT status || ':' || attempt_count FROM tasks");
	cr_assert_str_eq(v, "finished:1");
	free(v);
	v = db_value(c, "SELECT string_agg(status, ',' ORDER BY id) FROM task_history");
	cr_assert_str_eq(v, "started,finished");
	free(v);
	done(db, cfg, c);
}

/*
 * The connection holding a batch dies (here: terminated by the server):
 * its tasks are back in the queue with no attempt counted, the worker
 * reconnects and runs them again, and nothing is finished twice.
 */
Test(worker, hold_lost_with_its_connection, .timeout = 90)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nhold_ms = 1000\nconcurrency = 4\n"
	    "prefetch = 4\npoll_interval_ms = 100\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 0.4; echo {}'\n");
	PGconn *c = db_open(db);
	int pid;
	char *v;

	insert_tasks(c, "consumer_triage", 8, "k", 3);
	pid = start_worker(db, cfg, (const char *[]){ "--exit-when-empty", NULL });
	cr_assert(wait_value(c, "SELECT count(pg_terminate_backend(pid)) FROM "
	    "pg_stat_activity WHERE datname = current_database() AND state = "
	    "'idle in transaction'", "1", 10000), "no held batch seen");
	cr_assert_eq(wait_agent(pid), 0);
	v = db_value(c, "SELECT count(*) || ':' || max(attempt_count) FROM tasks "
	    "WHERE status = 'finished'");
	cr_assert_str_eq(v, "8:1", "a lost hold counted an attempt or lost a task");
	free(v);
	assert_exactly_once(c);
	done(db, cfg, c);
}

/*
 * The database refuses to record task_id as finished: a trigger stands in
 * for any value PostgreSQL rejects.
 */
static void
refuse_finished(PGconn *c, const char *task_id)
{
	char sql[256];

	db_do(c, "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
	    "$$BEGIN RAISE EXCEPTION 'refused by test'; END$$");
	snprintf(sql, sizeof(sql), "CREATE TRIGGER refuse BEFORE INSERT ON "
	    "task_history FOR EACH ROW WHEN (NEW.task_id = '%s' AND NEW.status "
	    "= 'finished') EXECUTE FUNCTION refuse()", task_id);
	db_do(c, sql);
}

/*
 * A result the database refuses (here: a trigger stands in for any value
 * PostgreSQL rejects) aborts the whole held batch; the worker must not
 * loop on it: the batch runs again outside a hold, the one bad result is
 * recorded as an error, the rest finish exactly once.
 */
Test(worker, refused_result_does_not_wedge_the_hold, .timeout = 90)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nretry_base_ms = 10\nretry_cap_ms = 20\n"
	    "poll_interval_ms = 50\n[handler.noop]\nkind = noop\n");
	PGconn *c = db_open(db);
	char *v;

	refuse_finished(c, "ok7");
	insert_tasks(c, "noop", 30, "ok", 3);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty",
	    NULL }), 0);
	v = db_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'");
	cr_assert_str_eq(v, "29");
	free(v);
	v = db_value(c, "SELECT status || ':' || (error LIKE '%refused%') FROM tasks "
	    "WHERE task_id = 'ok7'");
	cr_assert_str_eq(v, "failed:true");
	free(v);
	assert_exactly_once(c);
	done(db, cfg, c);
}

/*
 * Every connection LISTENs (a result connection becomes the main one after
 * a settle), so every one must be read even while idle: a flood of
 * notifications must not leave a backend blocked writing to the worker,
 * which would hold back the server's notification queue.
 */
Test(worker, idle_connections_are_read, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nprefetch = 4\nconcurrency = 1\n"
	    "[handler.noop]\nkind = noop\n");
	PGconn *c = db_open(db);
	int pid;

	pid = start_worker(db, cfg, NULL);
	insert_tasks(c, "noop", 200, "f", 3);
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = "
	    "'finished'", "200", 20000));
	cr_assert(wait_value(c, "SELECT count(*) >= 3 FROM pg_stat_activity "
	    "WHERE datname = current_database() AND pid <> pg_backend_pid()",
	    "t", 5000), "the worker did not open its result connections");
	db_do(c, "SELECT count(pg_notify('orchestrator_tasks', g::text)) "
	    "FROM generate_series(1, 30000) g");
	sleep(2);
	cr_assert(wait_value(c, "SELECT count(*) FROM pg_stat_activity WHERE "
	    "datname = current_database() AND wait_event = 'ClientWrite'", "0",
	    5000), "a backend is stuck writing notifications to the worker");
	insert_tasks(c, "noop", 1, "g", 3);
	cr_assert(wait_value(c, "SELECT status FROM tasks WHERE task_id = 'g1'",
	    "finished", 10000));
	kill(pid, SIGTERM);
	cr_assert_eq(wait_agent(pid), 0);
	done(db, cfg, c);
}

/*
 * A settle that fails also covers the batch's tasks that were still
 * running (they were to become leased): they are back in the queue, so the
 * worker stops them instead of finishing them a second time beside the
 * rerun.  The handler writes its mark only when it completes.
 */
Test(worker, failed_settle_stops_its_running_tasks, .timeout = 90)
{
	char *db = migrated_db();
	char *marks = write_temp("", 0600);
	char body[512], *cfg, *v;
	PGconn *c = db_open(db);

	snprintf(body, sizeof(body), "[worker]\nhold_ms = 200\n"
	    "retry_base_ms = 10\nretry_cap_ms = 20\npoll_interval_ms = 50\n"
	    "[handler.noop]\nkind = noop\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 1; echo done >> %s; echo {}'\n", marks);
	cfg = config(body);
	refuse_finished(c, "ok7");
	insert_tasks(c, "consumer_triage", 1, "slow", 3);
	insert_tasks(c, "noop", 19, "ok", 3);
	cr_assert_eq(run_worker(db, cfg, (const char *[]){ "--exit-when-empty",
	    NULL }), 0);
	v = db_value(c, "SELECT status || ':' || attempt_count FROM tasks "
	    "WHERE task_id = 'slow1'");
	cr_assert_str_eq(v, "finished:1");
	free(v);
	v = read_file(marks);
	cr_assert_str_eq(v, "done\n", "the slow handler completed %s",
	    strcmp(v, "done\n") ? "more than once" : "");
	free(v);
	assert_exactly_once(c);
	unlink(marks);
	free(marks);
	done(db, cfg, c);
}

/*
 * No result connection can be opened (the worker's role may hold only one
 * connection): held batches are settled and results recorded on the main
 * connection instead, waiting for each answer, and the queue still drains
 * exactly once, through both the held and the leased path.
 */
Test(worker, one_connection_is_enough, .timeout = 90)
{
	char *db = migrated_db();
	char *cfg = config("[worker]\nprefetch = 20\nconcurrency = 4\n"
	    "hold_ms = 20\n[handler.noop]\nkind = noop\n"
	    "[handler.consumer_triage]\nkind = exec\n"
	    "command = /bin/sh -c 'sleep 0.1; echo {}'\n");
	PGconn *c = db_open(db);
	char role[96], sql[512], dbvar[128], uservar[128], cfgvar[512], *v;
	struct run r;

	snprintf(role, sizeof(role), "w_%s", db);
	snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN CONNECTION LIMIT 1; "
	    "GRANT ALL ON ALL TABLES IN SCHEMA public TO %s; GRANT ALL ON ALL "
	    "SEQUENCES IN SCHEMA public TO %s", role, role, role);
	db_do(c, sql);
	insert_tasks(c, "noop", 300, "n", 3);
	insert_tasks(c, "consumer_triage", 8, "e", 3);
	snprintf(dbvar, sizeof(dbvar), "POSTGRES_DB=%s", db);
	snprintf(uservar, sizeof(uservar), "POSTGRES_USER=%s", role);
	snprintf(cfgvar, sizeof(cfgvar), "ORCHESTRATOR_AGENT_CONFIG=%s", cfg);
	run_agent(&r, (const char *[]){ dbvar, uservar, cfgvar, NULL }, NULL,
	    (const char *[]){ "worker", "--exit-when-empty", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	v = db_value(c, "SELECT count(*) || ':' || count(DISTINCT worker_id) "
	    "FROM tasks WHERE status = 'finished' AND attempt_count = 1");
	cr_assert_str_eq(v, "308:1");
	free(v);
	v = db_value(c, "SELECT count(*) FROM (SELECT task_id, string_agg(status, "
	    "',' ORDER BY id) s FROM task_history GROUP BY task_id) x "
	    "WHERE s <> 'started,finished'");
	cr_assert_str_eq(v, "0");
	free(v);
	assert_exactly_once(c);
	snprintf(sql, sizeof(sql), "DROP OWNED BY %s; DROP ROLE %s", role, role);
	db_do(c, sql);
	done(db, cfg, c);
}
