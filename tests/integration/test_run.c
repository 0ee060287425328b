/*
 * test_run.c - "run", the supervisor for hosts without systemd: workers
 * drain the queue, the scheduled backup lands in its target, a killed
 * worker comes back, SIGTERM stops everything with exit 0, and bad
 * [schedule] values or a worker's configuration error end it with 78.
 * Also the worker's [health] listen errors that need no server restart.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "helpers.h"

/* How many files under dir end in suffix. */
static int
count_files(const char *dir, const char *suffix)
{
	char cmd[512], line[64];
	FILE *fp;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "find %s -name '*%s' 2>/dev/null | wc -l", dir, suffix);
	fp = popen(cmd, "r");
	cr_assert_not_null(fp);
	if (fgets(line, sizeof(line), fp) != NULL)
		n = atoi(line);
	pclose(fp);
	return n;
}

/* spawn_agent with the child's stderr in logpath (ours, briefly). */
static int
spawn_logged(const char *const *env, const char *logpath, const char *const *args)
{
	int fd, saved, pid;

	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd != -1);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	pid = spawn_agent(env, NULL, args);
	dup2(saved, 2);
	close(saved);
	close(fd);
	return pid;
}

/* Poll logpath until it holds want n times (or ms pass); returns 1 if so. */
static int
wait_log(const char *logpath, const char *want, int n, int ms)
{
	for (int waited = 0; waited <= ms; waited += 100) {
		char *log = read_file(logpath);
		int seen = 0;

		for (const char *p = log; p != NULL && (p = strstr(p, want)) != NULL; p++)
			seen++;
		free(log);
		if (seen >= n)
			return 1;
		usleep(100 * 1000);
	}
	return 0;
}

/* Live worker pids from the registry, up to max; returns how many. */
static int
worker_pids(PGconn *c, int *pids, int max)
{
	PGresult *r = PQexec(c, "SELECT pid FROM workers WHERE stopped_at IS NULL ORDER BY pid");
	int n = 0;

	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	for (int i = 0; i < PQntuples(r) && n < max; i++) {
		int pid = atoi(PQgetvalue(r, i, 0));

		if (kill(pid, 0) == 0)	/* rows of killed workers stay behind */
			pids[n++] = pid;
	}
	PQclear(r);
	return n;
}

Test(run, workers_backup_restart_and_stop, .timeout = 120)
{
	char *db = migrated_db(), dir[64], text[1024], url[128], logpath[96], *cfg, *body;
	int run, pids[8], n = 0, killed, fresh = 0, port = free_ports(2);
	long st;
	PGconn *c;

	snprintf(dir, sizeof(dir), "/tmp/oa-run-%d", (int)getpid());
	snprintf(text, sizeof(text), "rm -rf %s && mkdir -p %s", dir, dir);
	cr_assert_eq(system(text), 0);
	snprintf(text, sizeof(text), "[worker]\npoll_interval_ms = 200\ngrace_seconds = 5\n"
	    "[handler.noop]\nkind = noop\n[agent]\nstate_dir = %s/state\n[backup]\n"
	    "target = file://%s/store\npg_dump = %s/pg_dump\n[schedule]\nworkers = 2\n"
	    "backup = 2s\nmaintain = off\nmetrics = off\n[health]\nlisten = 127.0.0.1:%d\n", dir,
	    dir, getenv("OA_PGBIN"), port);
	cfg = write_temp(text, 0600);
	snprintf(logpath, sizeof(logpath), "%s/run.log", dir);
	run = spawn_logged(db_env_cfg(db, cfg), logpath, (const char *[]){ "run", NULL });

	c = db_open(db);
	db_do(c, "INSERT INTO tasks (task_id, skill_name, task_type, source_repo, target_repo, "
	    "change_event, relationship_config) SELECT 'r' || g, 's', 'noop', 'a/b', 'c/d', '{}', "
	    "'{}' FROM generate_series(1, 200) g");
	cr_assert(wait_value(c, "SELECT count(*) FROM tasks WHERE status = 'finished'", "200", 30000),
	    "the workers did not drain the queue");
	for (int i = 0; i < 150 && count_files(dir, ".dump.zst") == 0; i++)
		usleep(100 * 1000);
	cr_assert_geq(count_files(dir, ".dump.zst"), 1, "no scheduled backup in %s", dir);
	/* Worker k serves [health] on the configured port + k - 1. */
	for (int k = 0; k < 2; k++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port + k);
		/* A worker restarted by run may still be starting up. */
		for (int t = 0; t < 50; t++) {
			body = http_get(url, &st);
			if (st == 200)
				break;
			free(body);
			usleep(100 * 1000);
		}
		cr_assert_eq(st, 200, "%s: %ld %s", url, st, body);
		free(body);
	}

	cr_assert(wait_value(c, "SELECT count(*) FROM workers WHERE stopped_at IS NULL", "2", 10000));
	n = worker_pids(c, pids, 8);
	cr_assert_eq(n, 2);
	for (int i = 0; i < n; i++)
		cr_assert_eq(parent_of(pids[i]), run, "worker %d is not a child of run", pids[i]);
	killed = pids[0];
	cr_assert_eq(kill(killed, SIGKILL), 0);
	for (int t = 0; t < 100 && fresh == 0; t++) {
		int now[8], k = worker_pids(c, now, 8);

		for (int i = 0; i < k; i++)
			if (now[i] != killed && now[i] != pids[1] && parent_of(now[i]) == run)
				fresh = now[i];
		usleep(100 * 1000);
	}
	cr_assert_neq(fresh, 0, "the killed worker was not restarted");
	cr_assert(wait_log(logpath, "run: worker 1 ended unexpectedly after", 1, 1000));

	/* SIGHUP reaches both workers: each reloads its handlers. */
	cr_assert(wait_log(logpath, "serving {\"noop\"}", 3, 10000));
	cr_assert_eq(kill(run, SIGHUP), 0);
	cr_assert(wait_log(logpath, "worker: configuration reloaded", 2, 10000),
	    "SIGHUP was not passed to both workers");

	cr_assert_eq(kill(run, SIGTERM), 0);
	cr_assert_eq(wait_agent(run), 0);
	cr_assert(kill(pids[1], 0) == -1 && errno == ESRCH, "worker %d outlived run", pids[1]);
	cr_assert(kill(fresh, 0) == -1 && errno == ESRCH, "worker %d outlived run", fresh);
	PQfinish(c);
	snprintf(text, sizeof(text), "rm -rf %s", dir);
	(void)!system(text);
	unlink(cfg);
	free(cfg);
	free(db);
}

/*
 * A job never overlaps itself: a backup whose pg_dump takes 2.5 s and
 * fails, due every second, is skipped while it runs and its failure is
 * logged with the job's name and status.  No workers at all.
 */
Test(run, job_skipped_while_running_and_failure_logged, .timeout = 60)
{
	char *db = migrated_db(), text[1024], logpath[64], *cfg, *slow, *log;
	int run;

	slow = write_temp("#!/bin/sh\nsleep 2.5\nexit 3\n", 0700);
	snprintf(text, sizeof(text), "[agent]\nstate_dir = /tmp/oa-run-job-%d\n[backup]\n"
	    "target = file:///tmp/oa-run-job-%d/store\npg_dump = %s\n[schedule]\nworkers = 0\n"
	    "backup = 1s\nmaintain = off\n", (int)getpid(), (int)getpid(), slow);
	cfg = write_temp(text, 0600);
	snprintf(logpath, sizeof(logpath), "/tmp/oa-run-job-%d.log", (int)getpid());
	run = spawn_logged(db_env_cfg(db, cfg), logpath, (const char *[]){ "run", NULL });
	(void)wait_log(logpath, "run: backup failed with exit status", 1, 10000);
	(void)wait_log(logpath, "run: backup is due but the previous run", 1, 5000);
	cr_assert_eq(kill(run, SIGTERM), 0);
	cr_assert_eq(wait_agent(run), 0);
	log = read_file(logpath);
	cr_assert(strstr(log, "run: backup is due but the previous run") != NULL, "%s", log);
	cr_assert(strstr(log, "run: backup failed with exit status") != NULL, "%s", log);
	cr_assert(strstr(log, "run: started worker") == NULL, "%s", log);
	free(log);
	snprintf(text, sizeof(text), "rm -rf /tmp/oa-run-job-%d %s", (int)getpid(), logpath);
	(void)!system(text);
	unlink(slow);
	unlink(cfg);
	free(slow);
	free(cfg);
	free(db);
}

struct bad_case {
	const char	*ini;
	const char	*want;	/* in stderr, after "FILE:" */
};

static const struct bad_case bad_cases[] = {
	{ "[schedule]\nbackup = 7pm\n", ":2: schedule.backup:" },
	{ "[schedule]\nbackup = 24:00\n", ":2: schedule.backup: '24:00' is not a time of day" },
	{ "[schedule]\nmaintain = 0s\n", ":2: schedule.maintain:" },
	{ "[schedule]\nmaintain = hourly\n", ":2: schedule.maintain:" },
	{ "[schedule]\nmetrics = 1m\nmetrics_textfile =\n", ":3: schedule.metrics is set but" },
	{ "[schedule]\nworkers = 65\n", ":2: schedule.workers: 65 is out of range" },
	{ "[health]\nlisten = localhost:9187\n", ":2: health.listen: 'localhost' is not an IP" },
	{ "[health]\nlisten = 127.0.0.1:99999\n", ":2: health.listen: port '99999'" },
	{ "[health]\nlisten = 127.0.0.1\n", ":2: health.listen:" },
};

Test(run, bad_schedule_values_exit_78_naming_the_line)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char *cfg = write_temp(bad_cases[i].ini, 0600), want[256];
		struct run r;

		run_agent(&r, db_env_cfg("postgres", cfg), NULL, (const char *[]){ "run", NULL });
		cr_expect_eq(r.status, 78, "case %zu: status %d", i, r.status);
		snprintf(want, sizeof(want), "%s%s", cfg, bad_cases[i].want);
		cr_expect(strstr(r.err, want) != NULL, "case %zu: '%s' lacks '%s'", i, r.err, want);
		run_free(&r);
		unlink(cfg);
		free(cfg);
	}
}

/* A worker that exits 78 is not restarted: run stops and exits 78. */
Test(run, worker_config_error_stops_run, .timeout = 60)
{
	char *db = migrated_db();
	char *cfg = write_temp("[schedule]\nworkers = 1\nbackup = off\nmaintain = off\n", 0600);
	struct run r;

	run_agent(&r, db_env_cfg(db, cfg), NULL, (const char *[]){ "run", NULL });
	cr_assert_eq(r.status, 78, "%s", r.err);
	cr_assert(strstr(r.err, "no [handler.TYPE] section") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "run: worker 1 ended with exit status 78") != NULL, "%s", r.err);
	run_free(&r);
	unlink(cfg);
	free(cfg);
	free(db);
}

/* [health] listen on a port someone holds: a clear error and exit 69. */
Test(health, port_in_use_exits_69, .timeout = 60)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char *db = migrated_db(), text[256], *cfg, want[128];
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct run r;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(text, sizeof(text), "[health]\nlisten = 127.0.0.1:%d\n[handler.noop]\nkind = noop\n",
	    ntohs(sin.sin_port));
	cfg = write_temp(text, 0600);
	run_agent(&r, db_env_cfg(db, cfg), NULL, (const char *[]){ "worker", NULL });
	cr_assert_eq(r.status, 69, "%s", r.err);
	snprintf(want, sizeof(want), "health: cannot listen on 127.0.0.1:%d: Address already in use",
	    ntohs(sin.sin_port));
	cr_assert(strstr(r.err, want) != NULL, "%s", r.err);
	run_free(&r);
	/* --health-listen off overrides the file; --exit-when-empty ends it. */
	run_agent(&r, db_env_cfg(db, cfg), NULL, (const char *[]){ "worker", "--health-listen",
	    "off", "--exit-when-empty", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	close(fd);
	unlink(cfg);
	free(cfg);
	free(db);
}
