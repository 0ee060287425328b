/*
 * test_bootfile.c - the bootstrap's text edits and checks: CIDR and name
 * checks, settings sized for the machine, the pg_hba block, postgresql.conf
 * lines, agent.ini managed keys, and SCRAM verifier matching.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bootdb.h"
#include "bootfile.h"

Test(bootfile, cidr_check)
{
	static const struct { const char *cidr; int ok; const char *msg; } t[] = {
		{ "10.8.0.0/28", 1, NULL },
		{ "0.0.0.0/0", 1, NULL },
		{ "192.168.1.7/32", 1, NULL },
		{ "fd00::/8", 1, NULL },
		{ "10.8.0.1/28", 0, "host bits" },
		{ "10.8.0.16/27", 0, "host bits" },
		{ "10.8.0.0", 0, "CIDR" },
		{ "10.8.0.0/", 0, "CIDR" },
		{ "10.8.0.0/33", 0, "CIDR" },
		{ "10.8.0.0/28x", 0, "CIDR" },
		{ "x/8", 0, "CIDR" },
		{ "", 0, "CIDR" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		int r = bootfile_cidr_check(t[i].cidr, err, sizeof(err));

		cr_expect_eq(r, t[i].ok ? 0 : -1, "%s", t[i].cidr);
		if (!t[i].ok)
			cr_expect(strstr(err, t[i].msg) != NULL, "%s: %s", t[i].cidr, err);
	}
}

Test(bootfile, ident_and_ip_check)
{
	static const struct { const char *s; int ok; } t[] = {
		{ "orchestrator", 1 }, { "orch_1", 1 }, { "_x", 1 },
		{ "Orch", 0 }, { "1abc", 0 }, { "a-b", 0 }, { "", 0 }, { "a b", 0 },
		{ "a234567890123456789012345678901234567890123456789012345678901234", 0 },
	};
	char err[128];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_eq(bootfile_ident_check(t[i].s), t[i].ok ? 0 : -1, "%s", t[i].s);
	cr_expect_eq(bootfile_ip_check("10.128.0.2", err, sizeof(err)), 0);
	cr_expect_eq(bootfile_ip_check("::1", err, sizeof(err)), 0);
	cr_expect_eq(bootfile_ip_check("10.128.0", err, sizeof(err)), -1);
	cr_expect_eq(bootfile_ip_check("10.0.0.1,1.2.3.4", err, sizeof(err)), -1);
}

Test(bootfile, settings_sized_for_the_machine)
{
	static const struct { long long kib; const char *ip; const char *want[8]; } t[] = {
		/* an e2-micro's MemTotal */
		{ 1006148, "10.128.0.2", { "listen_addresses = 'localhost,10.128.0.2'\n",
		    "max_connections = 50\n", "shared_buffers = 128MB\n",
		    "effective_cache_size = 491MB\n", "work_mem = 4MB\n",
		    "maintenance_work_mem = 61MB\n", "password_encryption = 'scram-sha-256'\n",
		    NULL } },
		{ 16 * 1024 * 1024, NULL, { "listen_addresses = 'localhost'\n",
		    "max_connections = 100\n", "shared_buffers = 4096MB\n",
		    "effective_cache_size = 12288MB\n", "work_mem = 30MB\n",
		    "maintenance_work_mem = 1024MB\n", "max_wal_size = 2048MB\n", NULL } },
		{ 256 * 1024, "", { "listen_addresses = 'localhost'\n",
		    "shared_buffers = 32MB\n", "work_mem = 1MB\n",
		    "maintenance_work_mem = 16MB\n", NULL } },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *s = bootfile_pg_settings(t[i].kib, t[i].ip);

		cr_assert_not_null(s);
		for (size_t k = 0; t[i].want[k] != NULL; k++)
			cr_expect(strstr(s, t[i].want[k]) != NULL, "%lld kB: no %s in\n%s",
			    t[i].kib, t[i].want[k], s);
		free(s);
	}
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

Test(bootfile, hba_block_first_and_replaced)
{
	static const char debian[] =
	    "# PostgreSQL Client Authentication Configuration File\n"
	    "# comment\n\n"
	    "# Database administrative login by Unix domain socket\n"
	    "local   all             postgres                                peer\n"
	    "local   all             all                                     peer\n"
	    "host    all             all             127.0.0.1/32            scram-sha-256\n";
	static const struct { const char *old; } t[] = {
		{ debian }, { NULL }, { "" }, { "local all all trust" }, { "# only comments\n" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *a = bootfile_hba(t[i].old, "orch", "orch", "10.8.0.0/28");
		char *b, *c;
		const char *rule;

		cr_assert_not_null(a);
		cr_expect_eq(count(a, BOOTFILE_HBA_BEGIN), 1, "%s", a);
		cr_expect(strstr(a, "local\tall\torch\t\t\tscram-sha-256\n") != NULL, "%s", a);
		cr_expect(strstr(a, "host\torch\torch\t10.8.0.0/28\tscram-sha-256\n") != NULL, "%s", a);
		/* First match wins: the block precedes every other rule. */
		rule = strstr(a, "local   all");
		if (rule == NULL)
			rule = strstr(a, "local all all trust");
		if (rule != NULL)
			cr_expect(strstr(a, BOOTFILE_HBA_END) < rule, "%s", a);
		if (t[i].old == debian)
			cr_expect(strncmp(a, debian, strstr(debian, "local") - debian) == 0,
			    "comments before the rules stay first:\n%s", a);
		/* Idempotent. */
		b = bootfile_hba(a, "orch", "orch", "10.8.0.0/28");
		cr_expect_str_eq(b, a);
		/* A new CIDR replaces the block in place; the rest is kept. */
		c = bootfile_hba(a, "orch", "orch", "10.9.0.0/28");
		cr_expect_eq(count(c, BOOTFILE_HBA_BEGIN), 1, "%s", c);
		cr_expect(strstr(c, "10.8.0.0/28") == NULL && strstr(c, "10.9.0.0/28") != NULL, "%s", c);
		cr_expect_eq(strlen(c), strlen(a), "%s", c);
		if (t[i].old == debian)
			cr_expect(strstr(c, "host    all             all             127.0.0.1/32") != NULL);
		free(a);
		free(b);
		free(c);
	}
}

Test(bootfile, conf_set_and_get)
{
	static const char conf[] =
	    "# data_directory = 'commented'\n"
	    "data_directory = '/var/lib/postgresql/16/main'\t\t# use data in another directory\n"
	    "hba_file = '/etc/postgresql/16/main/pg_hba.conf'\n"
	    "port = 5432";
	char v[256], *s, *t;

	cr_assert_eq(bootfile_conf_get(conf, "data_directory", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "/var/lib/postgresql/16/main");
	cr_assert_eq(bootfile_conf_get(conf, "port", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "5432");
	cr_expect_eq(bootfile_conf_get(conf, "listen_addresses", v, sizeof(v)), -1);
	s = bootfile_conf_set(conf, "data_directory", "/mnt/pgdata/16/main");
	cr_assert_not_null(s);
	cr_expect(strstr(s, "# data_directory = 'commented'\n") != NULL, "%s", s);
	cr_expect(strstr(s, "\ndata_directory = '/mnt/pgdata/16/main'\n") != NULL, "%s", s);
	cr_expect(strstr(s, "/var/lib/postgresql") == NULL, "%s", s);
	cr_expect(strstr(s, "port = 5432\n") != NULL, "%s", s);
	cr_assert_eq(bootfile_conf_get(s, "data_directory", v, sizeof(v)), 0);
	cr_expect_str_eq(v, "/mnt/pgdata/16/main");
	t = bootfile_conf_set(s, "data_directory", "/mnt/pgdata/16/main");
	cr_expect_str_eq(t, s);
	free(t);
	t = bootfile_conf_set("port = 1\n", "data_directory", "/x");
	cr_expect_str_eq(t, "port = 1\ndata_directory = '/x'\n");
	free(t);
	free(s);
}

Test(bootfile, ini_managed_keys)
{
	static const struct bootfile_kv kv[] = {
		{ "database", "host", "/var/run/postgresql" },
		{ "database", "dbname", "orch" },
		{ "database", "password_secret", "projects/p/secrets/s/versions/latest" },
		{ "backup", "target", "gs://b/p" },
	};
	static const char edited[] =
	    "; operator notes\n"
	    "[gcs]\nsecretmanager_endpoint = http://x\n"
	    "[database]\n"
	    "host = 10.0.0.1   ; old\n"
	    "# dbname = commented\n"
	    "statement_timeout_ms = 5000\n"
	    "[handler.build]\nkind = noop\n";
	char *a, *b;

	a = bootfile_ini(NULL, kv, 4);
	cr_assert_not_null(a);
	cr_expect(strstr(a, "[database]\nhost = /var/run/postgresql\ndbname = orch\n"
	    "password_secret = projects/p/secrets/s/versions/latest\n") != NULL, "%s", a);
	cr_expect(strstr(a, "[backup]\ntarget = gs://b/p\n") != NULL, "%s", a);
	b = bootfile_ini(a, kv, 4);
	cr_expect_str_eq(b, a);
	free(a);
	free(b);

	a = bootfile_ini(edited, kv, 4);
	cr_assert_not_null(a);
	cr_expect(strstr(a, "; operator notes\n[gcs]\nsecretmanager_endpoint = http://x\n") != NULL, "%s", a);
	cr_expect(strstr(a, "host = /var/run/postgresql\n") != NULL, "%s", a);
	cr_expect(strstr(a, "10.0.0.1") == NULL, "%s", a);
	cr_expect(strstr(a, "# dbname = commented\n") != NULL, "%s", a);
	cr_expect(strstr(a, "statement_timeout_ms = 5000\n") != NULL, "%s", a);
	cr_expect(strstr(a, "[handler.build]\nkind = noop\n") != NULL, "%s", a);
	cr_expect_eq(count(a, "dbname = orch\n"), 1, "%s", a);
	cr_expect_eq(count(a, "[database]"), 1, "%s", a);
	cr_expect(strstr(a, "[backup]\ntarget = gs://b/p\n") != NULL, "%s", a);
	b = bootfile_ini(a, kv, 4);
	cr_expect_str_eq(b, a);
	free(a);
	free(b);
}

Test(bootfile, scram_verifier_matches)
{
	/* Computed independently (Python hashlib) for "s3cret-pw". */
	static const char v[] = "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$"
	    "S9YxkjfxnsMi1Bpgjsqz4mKwjWqDBp3G64qVI5SIQlM=:"
	    "TykcoKL/E3wDHKYyCsdDmhCr39V0PjTs8LYl0z0t3xs=";
	static const struct { const char *ver, *pw; int want; } t[] = {
		{ v, "s3cret-pw", 1 },
		{ v, "s3cret-pw2", 0 },
		{ v, "", 0 },
		{ v, "s3cret-p\xc3\xa9", 0 },
		{ "md5a3556571e93b0d20722ba62be61e8c2d", "s3cret-pw", 0 },
		{ "", "s3cret-pw", 0 },
		{ "SCRAM-SHA-256$4096:MDEy$bad", "s3cret-pw", 0 },
		{ "SCRAM-SHA-256$0:MDEyMzQ1Njc4OWFiY2RlZg==$S9Yx:Tykc", "s3cret-pw", 0 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_expect_eq(bootdb_scram_matches(t[i].ver, t[i].pw), t[i].want, "case %zu", i);
}
