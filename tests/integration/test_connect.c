/*
 * test_connect.c - connection settings from the seed's POSTGRES_* names,
 * DATABASE_URL and password_file, over TCP with SCRAM authentication.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* A login role owning a fresh database; names are unique per process. */
static void
make_role(char *role, size_t rlen, char **db, const char *password)
{
	PGconn *c = db_open(NULL);
	char sql[256];

	snprintf(role, rlen, "r_%d", (int)getpid());
	snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN PASSWORD '%s'", role, password);
	db_do(c, sql);
	*db = fresh_db();
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s OWNER TO %s", *db, role);
	db_do(c, sql);
	PQfinish(c);
}

Test(connect, seed_environment_names_over_tcp)
{
	char role[64], *db, host[64], port[64], dbv[96], user[96];
	struct run r;

	make_role(role, sizeof(role), &db, "s3cret-pw");
	snprintf(host, sizeof(host), "POSTGRES_HOST=127.0.0.1");
	snprintf(port, sizeof(port), "POSTGRES_PORT=%s", getenv("PGPORT"));
	snprintf(dbv, sizeof(dbv), "POSTGRES_DB=%s", db);
	snprintf(user, sizeof(user), "POSTGRES_USER=%s", role);

	run_agent(&r, (const char *[]){ host, port, dbv, user, "POSTGRES_PASSWORD=s3cret-pw",
	    "PGHOST=/nonexistent", NULL }, NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "applied") != NULL);
	run_free(&r);

	/* A wrong password is refused with exit 69, and never echoed. */
	run_agent(&r, (const char *[]){ host, port, dbv, user, "POSTGRES_PASSWORD=wrong-pw-xyz",
	    NULL }, NULL, (const char *[]){ "schema", "status", NULL });
	cr_assert_eq(r.status, 69, "%s", r.err);
	cr_assert(strstr(r.err, "password authentication failed") != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "wrong-pw-xyz") == NULL);
	cr_assert(strstr(r.out, "wrong-pw-xyz") == NULL);
	run_free(&r);

	/* config show never prints it. */
	run_agent(&r, (const char *[]){ host, port, dbv, user, "POSTGRES_PASSWORD=s3cret-pw",
	    NULL }, NULL, (const char *[]){ "config", "show", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "s3cret-pw") == NULL, "%s", r.out);
	cr_assert(strstr(r.out, "environment POSTGRES_HOST") != NULL, "%s", r.out);
	cr_assert(strstr(r.out, "environment POSTGRES_PASSWORD") != NULL, "%s", r.out);
	run_free(&r);
	free(db);
}

Test(connect, password_file_and_database_url)
{
	char role[64], *db, url[256], ini[512];
	char *pw, *cfgpath;
	struct run r;

	make_role(role, sizeof(role), &db, "file-pw-123");
	pw = write_temp("file-pw-123\n", 0600);
	snprintf(url, sizeof(url), "postgresql://%s@127.0.0.1:%s/%s", role, getenv("PGPORT"), db);
	snprintf(ini, sizeof(ini), "[database]\nurl = %s\npassword_file = %s\n", url, pw);
	cfgpath = write_temp(ini, 0600);

	run_agent(&r, (const char *[]){ "PGHOST=/nonexistent", NULL }, NULL,
	    (const char *[]){ "-c", cfgpath, "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	run_free(&r);

	/* The same URL from DATABASE_URL, password from the environment. */
	run_agent(&r, (const char *[]){ "DATABASE_URL", "PGHOST=/nonexistent", NULL }, NULL, NULL);
	run_free(&r);
	{
		char dburl[300];

		snprintf(dburl, sizeof(dburl), "DATABASE_URL=%s", url);
		run_agent(&r, (const char *[]){ dburl, "POSTGRES_PASSWORD=file-pw-123", NULL }, NULL,
		    (const char *[]){ "-c", "/dev/null", "schema", "status", NULL });
		cr_assert_eq(r.status, 0, "%s", r.err);
		cr_assert(strstr(r.out, "applied") != NULL, "%s", r.out);
		run_free(&r);
	}

	/* A group-readable password file is refused before connecting. */
	cr_assert(chmod(pw, 0640) == 0);
	run_agent(&r, NULL, NULL, (const char *[]){ "-c", cfgpath, "schema", "init", NULL });
	cr_assert_eq(r.status, 78, "%s", r.err);
	cr_assert(strstr(r.err, "chmod 600") != NULL, "%s", r.err);
	run_free(&r);
	unlink(pw);
	unlink(cfgpath);
	free(pw);
	free(cfgpath);
	free(db);
}

Test(connect, config_check_cli)
{
	char *bad = write_temp("[database]\nport = 5432\nnot_a_key = 1\n", 0600);
	char want[128];
	struct run r;

	run_agent(&r, NULL, NULL, (const char *[]){ "-c", bad, "config", "check", NULL });
	cr_assert_eq(r.status, 78);
	snprintf(want, sizeof(want), "%s:3:", bad);
	cr_assert(strstr(r.err, want) != NULL, "%s", r.err);
	cr_assert(strstr(r.err, "not_a_key") != NULL, "%s", r.err);
	run_free(&r);
	run_agent(&r, NULL, NULL, (const char *[]){ "-c", "/dev/null", "config", "check", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "configuration OK") != NULL);
	run_free(&r);
	unlink(bad);
	free(bad);
}

/* Under systemd (JOURNAL_STREAM = stderr's dev:ino) lines carry <N>. */
Test(connect, journald_priority_prefix)
{
	char path[] = "/tmp/oa-journal.XXXXXX", js[64];
	int fd = mkstemp(path), st;
	struct stat sb;
	pid_t pid;
	char *text;

	cr_assert(fd != -1 && fstat(fd, &sb) == 0);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)sb.st_dev,
	    (unsigned long long)sb.st_ino);
	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		dup2(fd, 2);
		setenv("JOURNAL_STREAM", js, 1);
		execl(getenv("AGENT_BIN"), "orchestrator-agent", "nosuch", (char *)NULL);
		_exit(127);
	}
	cr_assert(waitpid(pid, &st, 0) == pid);
	cr_assert_eq(WEXITSTATUS(st), 64);
	text = read_file(path);
	cr_assert(strncmp(text, "<3>unknown command 'nosuch'", 27) == 0, "%s", text);
	free(text);
	close(fd);
	unlink(path);

	/* A JOURNAL_STREAM inherited by a redirected child: plain prefix. */
	struct run r;
	run_agent(&r, (const char *[]){ "JOURNAL_STREAM=1:1", NULL }, NULL,
	    (const char *[]){ "nosuch", NULL });
	cr_assert_eq(r.status, 64);
	cr_assert(strncmp(r.err, "orchestrator-agent: error: ", 27) == 0, "%s", r.err);
	run_free(&r);
}
