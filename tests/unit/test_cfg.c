/*
 * test_cfg.c - configuration parsing: table-driven good and bad files,
 * precedence, secrets.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "helpers.h"

static void
clean_env(void)
{
	static const char *vars[] = { "PGHOST", "PGPORT", "PGDATABASE",
	    "PGUSER", "PGPASSWORD", "PGSSLMODE", "PGAPPNAME",
	    "PGCONNECT_TIMEOUT", "PGSSLROOTCERT", "POSTGRES_HOST",
	    "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER",
	    "POSTGRES_PASSWORD", "POSTGRES_PASSWORD_FILE", "DATABASE_URL",
	    CFG_ENV_PATH, NULL };

	for (const char **v = vars; *v; v++)
		unsetenv(*v);
}

TestSuite(cfg, .init = clean_env);

struct bad_case {
	const char	*text;
	const char	*want;	/* substring after "FILE" */
};

static const struct bad_case bad_cases[] = {
	{ "[database]\nhost = db\nbogus = 1\n",
	    ":3: unknown key 'bogus' in section [database]" },
	{ "# c\n\n[nosuch]\n", ":3: unknown section [nosuch]" },
	{ "[database]\n[nosuch]\nx = 1\n", ":2: unknown section [nosuch]" },
	{ "port = 5\n", ":1: key 'port' is outside any section" },
	{ "[database]\nport = abc\n", ":2: database.port: 'abc' is not a whole number" },
	{ "[database]\nport = 70000\n", ":2: database.port: 70000 is out of range (1 to 65535)" },
	{ "[database]\nport =\n", ":2: database.port: '' is not a whole number" },
	{ "[database]\nsslmode = maybe\n", ":2: database.sslmode: 'maybe' is not one of" },
	{ "[database]\nhost\n", ":2: malformed line" },
	{ "[database\nhost = x\n", ":1: malformed line" },
	{ "[database]\npassword = hunter2\n", ":2: database.password must not be written in a config file" },
	{ "[database]\nhost = a\nhost = b\n", ":3: database.host is set twice (first on line 2)" },
	{ "[database]\nurl = postgresql://h/x?nosuchparam=1\n", ":2: database.url: not a valid connection string" },
	{ "[database]\nconnect_timeout = 0\n", ":2: database.connect_timeout: 0 is out of range" },
	{ "[database]\nhost = xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
	    ":2: line is longer than" },
};

/* Table-driven: one test walks every case so a failure names the case. */
Test(cfg, bad_files)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		char err[1024], want[1200];
		char *path = write_temp(c->text, 0600);
		struct cfg *cfg = cfg_load(path, err, sizeof(err));

		cr_expect_null(cfg, "case %zu: accepted bad config: %s", i, c->text);
		cfg_free(cfg);
		snprintf(want, sizeof(want), "%s%s", path, c->want);
		cr_expect(strstr(err, want) != NULL,
		    "case %zu: error '%s' lacks '%s'", i, err, want);
		/* No secret value may leak into an error. */
		cr_expect(strstr(err, "hunter2") == NULL, "case %zu leaks", i);
		unlink(path);
		free(path);
	}
}

Test(cfg, good_file_with_comments_indent_and_crlf)
{
	char err[512];
	char *path = write_temp(
	    "; leading comment\r\n"
	    "# another\r\n"
	    "[database]\r\n"
	    "   host = db.internal   # inline comment\r\n"
	    "\tport = 6543 ; inline\r\n"
	    "dbname = queue\r\n"
	    "url = \r\n"
	    "sslmode = verify-full\r\n", 0644);
	struct cfg *cfg = cfg_load(path, err, sizeof(err));

	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_HOST), "db.internal");
	cr_assert_eq(cfg_int(cfg, CFG_DB_PORT), 6543);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_NAME), "queue");
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_SSLMODE), "verify-full");
	cr_assert_eq(cfg_source(cfg, CFG_DB_HOST), CFG_SRC_FILE);
	cr_assert_eq(cfg_source(cfg, CFG_DB_USER), CFG_SRC_DEFAULT);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_USER), "orchestrator");
	cfg_free(cfg);
	unlink(path);
	free(path);
}

Test(cfg, missing_explicit_file_is_an_error)
{
	char err[512];

	cr_assert_null(cfg_load("/nonexistent/agent.ini", err, sizeof(err)));
	cr_assert(strstr(err, "/nonexistent/agent.ini: cannot read") != NULL, "%s", err);
	setenv(CFG_ENV_PATH, "/nonexistent/env.ini", 1);
	cr_assert_null(cfg_load(NULL, err, sizeof(err)));
	cr_assert(strstr(err, "/nonexistent/env.ini") != NULL, "%s", err);
}

Test(cfg, env_variable_names_the_file)
{
	char err[512];
	char *path = write_temp("[database]\nhost = fromenvfile\n", 0600);
	struct cfg *cfg;

	setenv(CFG_ENV_PATH, path, 1);
	cfg = cfg_load(NULL, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_HOST), "fromenvfile");
	cr_assert_str_eq(cfg_path(cfg), path);
	cfg_free(cfg);
	unlink(path);
	free(path);
}

/* default < PG* < file < POSTGRES_* */
Test(cfg, precedence)
{
	char err[512];
	char *path = write_temp("[database]\nhost = file\nport = 7000\n", 0600);
	struct cfg *cfg;

	setenv("PGHOST", "pghost", 1);
	setenv("PGUSER", "pguser", 1);
	setenv("PGPORT", "6000", 1);
	setenv("POSTGRES_PORT", "8000", 1);
	setenv("POSTGRES_DB", "seeddb", 1);
	cfg = cfg_load(path, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_HOST), "file");
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_USER), "pguser");
	cr_assert_eq(cfg_source(cfg, CFG_DB_USER), CFG_SRC_ENV_LOW);
	cr_assert_eq(cfg_int(cfg, CFG_DB_PORT), 8000);
	cr_assert_eq(cfg_source(cfg, CFG_DB_PORT), CFG_SRC_ENV);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_NAME), "seeddb");
	cfg_free(cfg);
	unlink(path);
	free(path);
}

Test(cfg, bad_environment_value_names_the_variable)
{
	char err[512];
	char *path = write_temp("", 0600);

	setenv("POSTGRES_PORT", "fivefour", 1);
	cr_assert_null(cfg_load(path, err, sizeof(err)));
	cr_assert(strstr(err, "environment POSTGRES_PORT: database.port: 'fivefour'") != NULL, "%s", err);
	unlink(path);
	free(path);
}

static char *
show(struct cfg *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	cfg_show(cfg, fp);
	fclose(fp);
	return buf;
}

Test(cfg, show_redacts_secrets_and_names_origins)
{
	char err[512];
	char *path = write_temp("[database]\n\nhost = h1\n", 0600);
	struct cfg *cfg;
	char *out;

	setenv("POSTGRES_PASSWORD", "hunter2-secret", 1);
	setenv("DATABASE_URL", "postgresql://u:url-secret@h/db", 1);
	cfg = cfg_load(path, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_PASSWORD), "hunter2-secret");
	out = show(cfg);
	cr_assert(strstr(out, "hunter2") == NULL, "%s", out);
	cr_assert(strstr(out, "url-secret") == NULL, "%s", out);
	cr_assert(strstr(out, "password = (redacted)") != NULL, "%s", out);
	cr_assert(strstr(out, "environment POSTGRES_PASSWORD") != NULL, "%s", out);
	cr_assert(strstr(out, "password=(redacted)") != NULL, "%s", out);
	char want[600];
	snprintf(want, sizeof(want), "# %s:3", path);
	cr_assert(strstr(out, want) != NULL, "%s", out);
	cr_assert(strstr(out, "port = 5432") != NULL, "%s", out);
	free(out);
	cfg_free(cfg);
	unlink(path);
	free(path);
}

Test(cfg, password_file_must_be_private)
{
	char err[1024], ini[512];
	char *pw = write_temp("file-secret\n", 0644);
	char *path;
	struct cfg *cfg;

	snprintf(ini, sizeof(ini), "[database]\npassword_file = %s\n", pw);
	path = write_temp(ini, 0600);
	cr_assert_null(cfg_load(path, err, sizeof(err)));
	cr_assert(strstr(err, "readable by group or others (mode 0644)") != NULL, "%s", err);
	cr_assert(strstr(err, "chmod 600") != NULL, "%s", err);
	cr_assert(strstr(err, ":2:") != NULL, "%s", err);

	cr_assert(chmod(pw, 0600) == 0);
	cfg = cfg_load(path, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_PASSWORD), "file-secret");
	cr_assert_eq(cfg_source(cfg, CFG_DB_PASSWORD), CFG_SRC_DERIVED);
	char *out = show(cfg);
	cr_assert(strstr(out, "file-secret") == NULL, "%s", out);
	free(out);
	cfg_free(cfg);

	/* POSTGRES_PASSWORD outranks the file. */
	setenv("POSTGRES_PASSWORD", "env-secret", 1);
	cfg = cfg_load(path, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_str_eq(cfg_str(cfg, CFG_DB_PASSWORD), "env-secret");
	cfg_free(cfg);
	unlink(pw);
	unlink(path);
	free(pw);
	free(path);
}

Test(cfg, password_file_missing_or_empty)
{
	char err[1024];
	char *empty = write_temp("", 0600);

	setenv("POSTGRES_PASSWORD_FILE", "/nonexistent/pw", 1);
	cr_assert_null(cfg_load("/dev/null", err, sizeof(err)));
	cr_assert(strstr(err, "environment POSTGRES_PASSWORD_FILE: database.password_file /nonexistent/pw") != NULL, "%s", err);
	setenv("POSTGRES_PASSWORD_FILE", empty, 1);
	cr_assert_null(cfg_load("/dev/null", err, sizeof(err)));
	cr_assert(strstr(err, "is empty") != NULL, "%s", err);
	unlink(empty);
	free(empty);
}

Test(cfg, sample_config_is_valid)
{
	char err[512], path[1024];
	const char *src = getenv("OA_SOURCE_DIR");
	struct cfg *cfg;

	cr_assert_not_null(src, "OA_SOURCE_DIR is not set; run through make check");
	snprintf(path, sizeof(path), "%s/docs/agent.ini.example", src);
	cfg = cfg_load(path, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cfg_free(cfg);
}
