/*
 * helpers.c - shared test helpers.  The database is the harness's real
 * PostgreSQL (tests/pgtest.sh), reached through PGHOST/PGPORT/PGUSER.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static const char *
agent_bin(void)
{
	const char *b = getenv("AGENT_BIN");

	cr_assert(b != NULL && *b, "AGENT_BIN is not set; run through make check");
	return b;
}

static void
apply_env(const char *const *env)
{
	const char *eq;
	char name[256];

	for (; env && *env; env++) {
		eq = strchr(*env, '=');
		if (eq == NULL) {
			unsetenv(*env);
			continue;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - *env), *env);
		setenv(name, eq + 1, 1);
	}
}

static void
exec_agent(const char *const *args)
{
	const char *argv[64];
	int n = 0;

	argv[n++] = "orchestrator-agent";
	for (; args && *args && n < 63; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	execv(agent_bin(), (char *const *)argv);
	_exit(127);
}

static int
decode(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

static void
append(char **buf, size_t *len, const char *data, size_t n)
{
	*buf = realloc(*buf, *len + n + 1);
	cr_assert(*buf != NULL);
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
}

int
run_agent(struct run *r, const char *const *env, const char *in,
    const char *const *args)
{
	int op[2], ep[2], ip[2], st;
	size_t olen = 0, elen = 0, inlen = in ? strlen(in) : 0, inoff = 0;
	char buf[8192];
	struct pollfd pfd[3];
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	cr_assert(pipe(op) == 0 && pipe(ep) == 0 && pipe(ip) == 0);
	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		dup2(ip[0], 0);
		dup2(op[1], 1);
		dup2(ep[1], 2);
		close(op[0]); close(ep[0]); close(ip[1]);
		apply_env(env);
		exec_agent(args);
	}
	close(op[1]);
	close(ep[1]);
	close(ip[0]);
	signal(SIGPIPE, SIG_IGN);
	if (inlen == 0) {
		close(ip[1]);
		ip[1] = -1;
	}
	for (;;) {
		pfd[0].fd = op[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = ep[0];
		pfd[1].events = POLLIN;
		pfd[2].fd = ip[1];
		pfd[2].events = POLLOUT;
		if (pfd[0].fd == -1 && pfd[1].fd == -1)
			break;
		if (poll(pfd, 3, -1) == -1) {
			cr_assert(errno == EINTR);
			continue;
		}
		if (pfd[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
			n = write(ip[1], in + inoff, inlen - inoff);
			if (n > 0)
				inoff += (size_t)n;
			if (n <= 0 || inoff == inlen) {
				close(ip[1]);
				ip[1] = -1;
			}
		}
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd == -1 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pfd[i].fd, buf, sizeof(buf));
			if (n <= 0) {
				close(pfd[i].fd);
				if (i == 0) op[0] = -1; else ep[0] = -1;
				continue;
			}
			if (i == 0)
				append(&r->out, &olen, buf, (size_t)n);
			else
				append(&r->err, &elen, buf, (size_t)n);
		}
	}
	if (ip[1] != -1)
		close(ip[1]);
	cr_assert(waitpid(pid, &st, 0) == pid);
	r->status = decode(st);
	return r->status;
}

void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int
spawn_agent(const char *const *env, const char *out_path,
    const char *const *args)
{
	pid_t pid;
	int fd;

	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		/* A failed test must not leave workers behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fd = open(out_path ? out_path : "/dev/null",
		    O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd == -1)
			_exit(126);
		dup2(fd, 1);
		apply_env(env);
		exec_agent(args);
	}
	return pid;
}

int
wait_agent(int pid)
{
	int st;

	while (waitpid(pid, &st, 0) == -1)
		cr_assert(errno == EINTR);
	return decode(st);
}

PGconn *
db_open(const char *dbname)
{
	const char *k[] = { "dbname", NULL };
	const char *v[] = { dbname ? dbname : "postgres", NULL };
	PGconn *c = PQconnectdbParams(k, v, 0);

	cr_assert(PQstatus(c) == CONNECTION_OK, "test database: %s",
	    PQerrorMessage(c));
	return c;
}

void
db_do(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);

	cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK,
	    "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

char *
db_value(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	char *v = NULL;

	cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK,
	    "%s: %s", sql, PQerrorMessage(c));
	if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

char *
fresh_db(void)
{
	static unsigned seq;
	char name[64], sql[128];
	PGconn *c;

	snprintf(name, sizeof(name), "t_%d_%u", (int)getpid(), seq++);
	c = db_open(NULL);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	db_do(c, sql);
	PQfinish(c);
	return strdup(name);
}

char *
write_temp(const char *text, int mode)
{
	char path[] = "/tmp/oa-test.XXXXXX";
	int fd = mkstemp(path);
	size_t len = strlen(text);

	cr_assert(fd != -1);
	cr_assert(write(fd, text, len) == (ssize_t)len);
	cr_assert(fchmod(fd, (mode_t)mode) == 0);
	close(fd);
	return strdup(path);
}

char *
read_file(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;
	char chunk[4096];
	size_t n;

	if (fp == NULL)
		return NULL;
	buf = calloc(1, 1);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		append(&buf, &len, chunk, n);
	fclose(fp);
	return buf;
}

const char **
db_env_cfg(const char *db, const char *cfgpath)
{
	static char dbvar[128], cfgvar[512];
	static const char *env[4];
	int n = 0;

	snprintf(dbvar, sizeof(dbvar), "POSTGRES_DB=%s", db);
	env[n++] = dbvar;
	env[n++] = "POSTGRES_USER=postgres";
	if (cfgpath != NULL) {
		snprintf(cfgvar, sizeof(cfgvar), "ORCHESTRATOR_AGENT_CONFIG=%s", cfgpath);
		env[n++] = cfgvar;
	}
	env[n] = NULL;
	return env;
}

const char **
db_env(const char *db)
{
	return db_env_cfg(db, NULL);
}

char *
migrated_db(void)
{
	char *db = fresh_db();
	struct run r;

	run_agent(&r, db_env(db), NULL, (const char *[]){ "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "schema init: %s", r.err);
	run_free(&r);
	return db;
}

int
wait_value(PGconn *c, const char *sql, const char *want, int ms)
{
	char *v;
	int ok;

	for (int waited = 0; ; waited += 50) {
		v = db_value(c, sql);
		ok = v != NULL && strcmp(v, want) == 0;
		free(v);
		if (ok)
			return 1;
		if (waited >= ms)
			return 0;
		usleep(50000);
	}
}

size_t
http_body_cb(char *data, size_t size, size_t n, void *arg)
{
	struct http_body *b = arg;

	if (b->buf == NULL)
		b->buf = calloc(1, 1);
	append(&b->buf, &b->len, data, size * n);
	return size * n;
}

char *
http_get(const char *url, long *status)
{
	struct http_body b = { calloc(1, 1), 0 };
	CURL *c = curl_easy_init();

	cr_assert_not_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	*status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	return b.buf;
}

int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert(fd != -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	cr_assert(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

int
free_ports(int n)
{
	struct sockaddr_in sin;
	int fds[8], base, i, k, ok;

	cr_assert(n >= 1 && n <= 8);
	/* Below the kernel's ephemeral range, where outgoing connections
	 * (and free_port) take ports from; pgtest.sh uses 20000 and up. */
	for (int tries = 0; tries < 200; tries++) {
		base = 10000 + (int)(((unsigned)getpid() * 7919u +
		    (unsigned)tries * 104729u + (unsigned)time(NULL)) %
		    (unsigned)(20000 - 10000 - n));
		ok = 1;
		for (i = 0; i < n && ok; i++) {
			fds[i] = socket(AF_INET, SOCK_STREAM, 0);
			cr_assert(fds[i] != -1);
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sin.sin_port = htons((unsigned short)(base + i));
			if (bind(fds[i], (struct sockaddr *)&sin, sizeof(sin)) == -1)
				ok = 0;
		}
		for (k = 0; k < i; k++)
			close(fds[k]);
		if (ok)
			return base;
	}
	cr_assert_fail("no %d consecutive free ports", n);
	return -1;
}

int
parent_of(int pid)
{
	char path[64], *text, *p;
	int ppid = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	text = read_file(path);
	if (text == NULL)
		return -1;
	/* pid (comm) state ppid: comm may hold spaces, so after the last ')'. */
	p = strrchr(text, ')');
	if (p != NULL && sscanf(p + 1, " %*c %d", &ppid) != 1)
		ppid = -1;
	free(text);
	return ppid;
}

void
pg_ctl(const char *action)
{
	char cmd[1024];
	const char *ctl = getenv("OA_PGCTL");

	cr_assert_not_null(ctl, "OA_PGCTL is not set; run under tests/pgtest.sh");
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", ctl, action);
	cr_assert_eq(system(cmd), 0, "pg_ctl %s failed", action);
}
