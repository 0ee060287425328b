/*
 * helpers.h - shared test helpers: run the agent binary, make databases.
 */
#ifndef TEST_HELPERS_H
#define TEST_HELPERS_H

#include <libpq-fe.h>

struct run {
	int	 status;	/* exit code, or 128 + signal */
	char	*out;		/* stdout, NUL-terminated; owned */
	char	*err;		/* stderr, NUL-terminated; owned */
};

/*
 * Run $AGENT_BIN with args (NULL-terminated).  env: NULL-terminated list of
 * "NAME=value" to set or "NAME" to unset in the child.  in: stdin text or
 * NULL.  Fills r (free with run_free).  Returns r->status.
 */
int	 run_agent(struct run *r, const char *const *env, const char *in,
	    const char *const *args);
void	 run_free(struct run *r);

/* Start an agent without waiting; returns pid.  Output goes to files. */
int	 spawn_agent(const char *const *env, const char *out_path,
	    const char *const *args);
/* Wait for pid; returns exit code or 128 + signal. */
int	 wait_agent(int pid);

/* Create a fresh empty database; returns its name (caller frees). */
char	*fresh_db(void);
/* Superuser connection to dbname (NULL: postgres); criterion-asserted. */
PGconn	*db_open(const char *dbname);
/* Execute sql, assert success; returns first value (caller frees) or NULL. */
char	*db_value(PGconn *, const char *sql);
/* Execute sql and assert success. */
void	 db_do(PGconn *, const char *sql);
/* Write text to a new temporary file with mode; returns path (caller frees). */
char	*write_temp(const char *text, int mode);
/* Read a whole file; NULL if unreadable (caller frees). */
char	*read_file(const char *path);

#endif

/* A fresh database with the schema applied by the agent (caller frees). */
char	*migrated_db(void);
/* Environment pointing the agent at db as the superuser; static storage. */
const char **db_env(const char *db);
/* Same plus ORCHESTRATOR_AGENT_CONFIG=cfgpath; static storage. */
const char **db_env_cfg(const char *db, const char *cfgpath);
/* Poll sql until its first value equals want or ms pass; returns 1 if it did. */
int	 wait_value(PGconn *, const char *sql, const char *want, int ms);
/* A curl CURLOPT_WRITEFUNCTION that appends to a NUL-terminated buffer
 * (buf owned by whoever set up the struct; NULL to start). */
struct http_body {
	char	*buf;
	size_t	 len;
};
size_t	 http_body_cb(char *data, size_t size, size_t n, void *arg);
/* GET url with libcurl; returns the body (caller frees), *status the HTTP
 * status (0 when the connection failed). */
char	*http_get(const char *url, long *status);
/* A loopback TCP port that was free a moment ago. */
int	 free_port(void);
/*
 * A base port such that base .. base + n - 1 are free on 127.0.0.1, chosen
 * below the ephemeral range so no outgoing connection takes one meanwhile.
 */
int	 free_ports(int n);
/* Run the harness's pg_ctl (OA_PGCTL) with action, e.g. "stop -m fast";
 * asserted to succeed.  Only for suites that run alone (tests/restart). */
void	 pg_ctl(const char *action);
/* The parent pid of pid from /proc, or -1 when it is gone. */
int	 parent_of(int pid);
