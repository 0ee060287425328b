/*
 * test_secret_pw.c - the database password from Secret Manager (the fake),
 * with a metadata-server token, used by a command that connects.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake.h"
#include "helpers.h"

Test(secret_pw, password_from_secret_manager, .timeout = 60)
{
	struct fake f;
	struct run r;
	char role[64], sql[256], *db, ini[1024], *cfgpath, meta[96];
	PGconn *c;
	const char *env[4];

	fake_start(&f);
	free(fake_post(&f, "/_fake/config", "{\"auth\": true, \"metadata\": {\"project_id\": \"p\"}, "
	    "\"secrets\": {\"projects/p/secrets/pgpw\": [\"old-pw\", \"sm-pw-4711\\n\"]}}"));
	snprintf(role, sizeof(role), "sm_%d", (int)getpid());
	c = db_open(NULL);
	snprintf(sql, sizeof(sql), "CREATE ROLE %s LOGIN PASSWORD 'sm-pw-4711'", role);
	db_do(c, sql);
	db = fresh_db();
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s OWNER TO %s", db, role);
	db_do(c, sql);
	PQfinish(c);
	snprintf(ini, sizeof(ini), "[database]\nhost = 127.0.0.1\nport = %s\ndbname = %s\nuser = %s\n"
	    "password_secret = projects/p/secrets/pgpw/versions/latest\n"
	    "[gcs]\nsecretmanager_endpoint = %s\n", getenv("PGPORT"), db, role, fake_url(&f));
	cfgpath = write_temp(ini, 0600);
	snprintf(meta, sizeof(meta), "GCE_METADATA_HOST=%s", fake_host(&f));
	env[0] = meta;
	env[1] = "PGPASSWORD";
	env[2] = "PGHOST";
	env[3] = NULL;

	run_agent(&r, env, NULL, (const char *[]){ "-c", cfgpath, "schema", "init", NULL });
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "sm-pw-4711") == NULL && strstr(r.out, "sm-pw-4711") == NULL);
	run_free(&r);

	/* A corrupted payload is refused, not used. */
	free(fake_post(&f, "/_fake/faults", "[{\"op\": \"secret\", \"kind\": \"bad_hash\", \"count\": 10}]"));
	run_agent(&r, env, NULL, (const char *[]){ "-c", cfgpath, "schema", "status", NULL });
	cr_assert_eq(r.status, 69, "%s", r.err);
	cr_assert(strstr(r.err, "password_secret") && strstr(r.err, "corrupted"), "%s", r.err);
	run_free(&r);

	/* A malformed name is a configuration error. */
	{
		char *bad = write_temp("[database]\npassword_secret = not/a/secret\n", 0600);

		run_agent(&r, NULL, NULL, (const char *[]){ "-c", bad, "config", "check", NULL });
		cr_assert_eq(r.status, 78, "%s", r.err);
		cr_assert(strstr(r.err, "password_secret") != NULL, "%s", r.err);
		run_free(&r);
		unlink(bad);
		free(bad);
	}
	fake_stop(&f);
	unlink(cfgpath);
	free(cfgpath);
	free(db);
}
