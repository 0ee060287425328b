/*
 * test_bootstrap.c - "bootstrap" against the harness's PostgreSQL and the
 * fake metadata server and Secret Manager: two runs converge, the role
 * logs in with the secret's password over TCP with SCRAM, a rotated secret
 * is applied, a run that fails half-way is finished by the next, bad
 * metadata is named, and the disk logic on an image file.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake.h"
#include "helpers.h"

#define PW1	"first-Pw-4711"
#define PW2	"second-Pw-0815"

struct boot {
	struct fake	 f;
	char		 dir[64];
	char		 cfg[128], confdir[128], hba[256];
	char		 db[64], secret[96], meta[96];
};

/* A fake with the metadata of a VM for database t->db; hba: the file. */
static void
boot_setup(struct boot *t, const char *tag, const char *hba)
{
	char json[2048], ini[256];
	FILE *fp;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/oa-boot.XXXXXX");
	cr_assert(mkdtemp(t->dir) != NULL);
	/* The server reads its settings directory, as on a VM. */
	cr_assert(chmod(t->dir, 0755) == 0);
	snprintf(t->db, sizeof(t->db), "boot_%s_%d", tag, (int)getpid());
	snprintf(t->secret, sizeof(t->secret), "projects/p/secrets/%s", t->db);
	snprintf(t->cfg, sizeof(t->cfg), "%s/agent.ini", t->dir);
	snprintf(t->confdir, sizeof(t->confdir), "%s/conf.d", t->dir);
	snprintf(t->hba, sizeof(t->hba), "%s", hba);
	fake_start(&t->f);
	snprintf(t->meta, sizeof(t->meta), "GCE_METADATA_HOST=%s", fake_host(&t->f));
	snprintf(json, sizeof(json), "{\"auth\": true, \"metadata\": {\"project_id\": \"p\", "
	    "\"ip\": \"127.0.0.1\", \"attributes\": {\"oa-db-name\": \"%s\", \"oa-db-user\": \"%s\", "
	    "\"oa-password-secret\": \"%s\", \"oa-backup-target\": \"gs://backups/db\", "
	    "\"oa-connector-cidr\": \"10.8.0.0/28\", \"oa-workers\": \"2\"}}, "
	    "\"secrets\": {\"%s\": [\"" PW1 "\\n\"]}}", t->db, t->db, t->secret, t->secret);
	free(fake_post(&t->f, "/_fake/config", json));
	/* The operator's own key, which the bootstrap must keep. */
	snprintf(ini, sizeof(ini), "[gcs]\nsecretmanager_endpoint = %s\n", fake_url(&t->f));
	fp = fopen(t->cfg, "w");
	cr_assert(fp != NULL);
	fputs(ini, fp);
	fclose(fp);
}

static void
boot_cleanup(struct boot *t)
{
	char cmd[128];

	fake_stop(&t->f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	cr_expect(system(cmd) == 0);
}

static int
boot_run(struct boot *t, struct run *r)
{
	const char *env[] = { t->meta, NULL };

	return run_agent(r, env, NULL, (const char *[]){ "-c", t->cfg, "bootstrap",
	    "--data-device", "/nonexistent/oa-test-disk", "--pg-conf-dir", t->confdir,
	    "--pg-hba", t->hba, "--restart-cmd", "true", "--config-out", t->cfg,
	    "--no-systemd", NULL });
}

/* Can the role log in over TCP with password pw? */
static int
tcp_login(const char *db, const char *pw)
{
	char conninfo[512];
	PGconn *c;
	int ok;

	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%s dbname=%s user=%s "
	    "password=%s sslmode=disable", getenv("PGPORT"), db, db, pw);
	c = PQconnectdb(conninfo);
	ok = PQstatus(c) == CONNECTION_OK;
	PQfinish(c);
	return ok;
}

static void
no_password_in(const struct run *r)
{
	cr_expect(strstr(r->out, PW1) == NULL && strstr(r->err, PW1) == NULL);
	cr_expect(strstr(r->out, PW2) == NULL && strstr(r->err, PW2) == NULL);
}

/* A second run changed nothing. */
static void
expect_converged(const struct run *r)
{
	static const char *const acts[] = { "created", "written", "password set", "reloaded",
	    "restarted", "granted", "migration applied", "migrations applied", "now owned" };

	cr_expect_eq(r->status, 0, "%s", r->err);
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		cr_expect(strstr(r->out, acts[i]) == NULL, "second run did '%s':\n%s", acts[i],
		    r->out);
	cr_expect(strstr(r->out, "bootstrap: done") != NULL, "%s", r->out);
}

Test(bootstrap, converges_logs_in_with_scram_and_rotates, .timeout = 120)
{
	struct boot t;
	struct run r;
	char hba[256], sql[512], *v, *text;
	const char *env[2];
	PGconn *c;

	/* The harness's own pg_hba.conf: the block must work for real. */
	snprintf(hba, sizeof(hba), "%s/pg_hba.conf", getenv("OA_PGDATA"));
	boot_setup(&t, "a", hba);

	boot_run(&t, &r);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_expect(strstr(r.out, "database: role") && strstr(r.out, "created with the password"),
	    "%s", r.out);
	cr_expect(strstr(r.out, "owned by") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "applied; database is at version") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "granted pg_monitor") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "configuration reloaded") != NULL, "%s", r.out);
	no_password_in(&r);
	run_free(&r);

	boot_run(&t, &r);
	expect_converged(&r);
	cr_expect(strstr(r.out, "exists with this password; unchanged") != NULL, "%s", r.out);
	cr_expect(strstr(r.out, "schema: up to date") != NULL, "%s", r.out);
	no_password_in(&r);
	run_free(&r);

	/* SCRAM over TCP with the secret's password; pg_monitor; the block. */
	cr_expect(tcp_login(t.db, PW1), "the role cannot log in with the secret's password");
	cr_expect(!tcp_login(t.db, "wrong"));
	c = db_open(NULL);
	/* CREATEDB: restore --to NEWDB and verify --restore make databases. */
	snprintf(sql, sizeof(sql), "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' AND "
	    "rolcreatedb AND pg_has_role('%s', 'pg_monitor', 'MEMBER') FROM pg_authid "
	    "WHERE rolname = '%s'", t.db, t.db);
	v = db_value(c, sql);
	cr_expect_str_eq(v, "t");
	free(v);
	text = read_file(hba);
	snprintf(sql, sizeof(sql), "host\t%s\t%s\t10.8.0.0/28\tscram-sha-256\n", t.db, t.db);
	cr_expect(strstr(text, sql) != NULL, "%s", text);
	snprintf(sql, sizeof(sql), "local\tall\t%s\t\t\tscram-sha-256\n", t.db);
	cr_expect(strstr(text, sql) != NULL, "%s", text);
	free(text);

	/* The written configuration is valid and connects with the secret. */
	text = read_file(t.cfg);
	cr_expect(strstr(text, "secretmanager_endpoint") != NULL, "operator key lost:\n%s", text);
	cr_expect(strstr(text, "password_secret = projects/p/secrets/") != NULL, "%s", text);
	cr_expect(strstr(text, "target = gs://backups/db\n") != NULL, "%s", text);
	cr_expect(strstr(text, PW1) == NULL);
	free(text);
	env[0] = t.meta;
	env[1] = NULL;
	run_agent(&r, env, NULL, (const char *[]){ "-c", t.cfg, "config", "check", NULL });
	cr_expect_eq(r.status, 0, "%s", r.err);
	run_free(&r);
	run_agent(&r, env, NULL, (const char *[]){ "-c", t.cfg, "schema", "status", NULL });
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, " 0 pending") != NULL, "%s", r.out);
	run_free(&r);

	/* Rotation: a new secret version is the new password. */
	snprintf(sql, sizeof(sql), "{\"secrets\": {\"%s\": [\"" PW1 "\", \"" PW2 "\"]}}", t.secret);
	free(fake_post(&t.f, "/_fake/config", sql));
	boot_run(&t, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "password set from") != NULL, "%s", r.out);
	no_password_in(&r);
	run_free(&r);
	cr_expect(tcp_login(t.db, PW2));
	cr_expect(!tcp_login(t.db, PW1));
	boot_run(&t, &r);
	expect_converged(&r);
	run_free(&r);

	PQfinish(c);
	boot_cleanup(&t);
}

Test(bootstrap, half_way_failure_then_converges, .timeout = 120)
{
	struct boot t;
	struct run r;
	char hba[128], sql[256], *v, *text;
	PGconn *c;
	FILE *fp;

	/* A copy of the harness's pg_hba.conf: only one test edits the real one. */
	snprintf(hba, sizeof(hba), "/tmp/oa-boot-hba.%d", (int)getpid());
	snprintf(sql, sizeof(sql), "%s/pg_hba.conf", getenv("OA_PGDATA"));
	text = read_file(sql);
	cr_assert(text != NULL);
	fp = fopen(hba, "w");
	cr_assert(fp != NULL);
	fputs(text, fp);
	fclose(fp);
	free(text);
	boot_setup(&t, "b", hba);

	/* Secret Manager refuses once: settings are done, the role is not. */
	free(fake_post(&t.f, "/_fake/faults", "[{\"op\": \"secret\", \"kind\": \"403\", \"count\": 1}]"));
	boot_run(&t, &r);
	cr_expect_eq(r.status, 69, "%s\n%s", r.out, r.err);
	cr_expect(strstr(r.err, "step database failed") != NULL, "%s", r.err);
	cr_expect(strstr(r.err, t.secret) != NULL && strstr(r.err, "secretAccessor") != NULL,
	    "%s", r.err);
	cr_expect(strstr(r.out, "block for the connector and the agent written") != NULL, "%s",
	    r.out);
	cr_expect(strstr(r.out, "bootstrap: done") == NULL);
	run_free(&r);
	c = db_open(NULL);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_roles WHERE rolname = '%s'", t.db);
	v = db_value(c, sql);
	cr_expect_str_eq(v, "0");
	free(v);

	boot_run(&t, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "created with the password") != NULL, "%s", r.out);
	snprintf(sql, sizeof(sql), "%s: unchanged", hba);
	cr_expect(strstr(r.out, sql) != NULL, "the block was written by the failed run:\n%s", r.out);
	run_free(&r);
	boot_run(&t, &r);
	expect_converged(&r);
	run_free(&r);
	cr_expect(tcp_login(t.db, PW1));

	PQfinish(c);
	boot_cleanup(&t);
	unlink(hba);
}

Test(bootstrap, bad_metadata_is_named, .timeout = 120)
{
	static const struct {
		const char *attrs;	/* JSON members merged into the good ones */
		const char *flag, *arg;	/* an extra flag */
		const char *want1, *want2;
	} t[] = {
		{ "\"oa-password-secret\": null", NULL, NULL,
		    "metadata attribute oa-password-secret is not set", "--password-secret" },
		{ "\"oa-connector-cidr\": \"10.8.0.1/28\"", NULL, NULL,
		    "metadata attribute oa-connector-cidr", "host bits" },
		{ "\"oa-connector-cidr\": \"everywhere\"", NULL, NULL,
		    "metadata attribute oa-connector-cidr", "CIDR" },
		{ "\"oa-db-name\": \"Bad-Name\"", NULL, NULL, "oa-db-name", "Bad-Name" },
		{ "\"oa-db-user\": \"x;drop\"", NULL, NULL, "oa-db-user", "plain name" },
		{ "\"oa-workers\": \"0\"", NULL, NULL, "oa-workers", "1 to 64" },
		{ "\"oa-backup-target\": \"s3://b\"", NULL, NULL, "oa-backup-target", "gs://" },
		{ "\"oa-password-secret\": \"pw\"", NULL, NULL, "oa-password-secret",
		    "not a secret version name" },
		{ "\"oa-data-device\": \"Disk_1\"", NULL, NULL, "oa-data-device", "device name" },
		{ "\"oa-connector-cidr\": \"10.8.0.0/28\"", "--connector-cidr", "10.8.0.0/40",
		    "--connector-cidr", "CIDR" },
		{ "\"oa-connector-cidr\": \"10.8.0.0/28\"", "--no-metadata", NULL,
		    "--password-secret", "--no-metadata" },
	};
	struct fake f;
	struct run r;
	char json[1024], meta[96], out[128], good[512];
	const char *env[2];

	fake_start(&f);
	snprintf(meta, sizeof(meta), "GCE_METADATA_HOST=%s", fake_host(&f));
	snprintf(out, sizeof(out), "/tmp/oa-boot-bad.%d.ini", (int)getpid());
	env[0] = meta;
	env[1] = NULL;
	snprintf(good, sizeof(good), "\"oa-password-secret\": \"projects/p/secrets/s\", "
	    "\"oa-backup-target\": \"gs://b/p\", \"oa-connector-cidr\": \"10.8.0.0/28\", "
	    "\"oa-db-name\": \"orch\", \"oa-db-user\": \"orch\", \"oa-workers\": \"1\", "
	    "\"oa-data-device\": \"pgdata\"");
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(json, sizeof(json), "{\"metadata\": {\"attributes\": {%s}}}", good);
		free(fake_post(&f, "/_fake/config", json));
		snprintf(json, sizeof(json), "{\"metadata\": {\"attributes\": {%s}}}", t[i].attrs);
		free(fake_post(&f, "/_fake/config", json));
		run_agent(&r, env, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap",
		    "--only", "config", "--config-out", out, t[i].flag ? t[i].flag : "--no-systemd",
		    t[i].arg, NULL });
		cr_expect_eq(r.status, 78, "case %zu: %s", i, r.err);
		cr_expect(strstr(r.err, t[i].want1) && strstr(r.err, t[i].want2),
		    "case %zu: %s", i, r.err);
		cr_expect(access(out, F_OK) == -1, "case %zu wrote the config", i);
		run_free(&r);
	}
	/* The good values pass and the config step alone writes the file. */
	snprintf(json, sizeof(json), "{\"metadata\": {\"attributes\": {%s}}}", good);
	free(fake_post(&f, "/_fake/config", json));
	run_agent(&r, env, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap", "--only",
	    "config", "--config-out", out, NULL });
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "secret projects/p/secrets/s/versions/latest") != NULL, "%s", r.out);
	run_free(&r);
	cr_expect(access(out, F_OK) == 0);
	unlink(out);

	/* No metadata server: the attribute it was reading is named. */
	fake_stop(&f);
	run_agent(&r, (const char *[]){ "GCE_METADATA_HOST=127.0.0.1:9", NULL }, NULL,
	    (const char *[]){ "-c", "/dev/null", "bootstrap", "--only", "config",
	    "--config-out", out, NULL });
	cr_expect_eq(r.status, 78, "%s", r.err);
	cr_expect(strstr(r.err, "reading metadata attribute oa-db-name") != NULL, "%s", r.err);
	run_free(&r);
}

/* The values every run needs, with no metadata server. */
#define NO_META	"--no-metadata", "--password-secret", "projects/p/secrets/s", \
	"--connector-cidr", "10.8.0.0/28", "--backup-target", "gs://b/p"

/* First line of a command's output (a test-side shell; paths are ours). */
static char *
sh_line(const char *cmd)
{
	char buf[512] = "";
	FILE *p = popen(cmd, "r");

	cr_assert(p != NULL);
	if (fgets(buf, sizeof(buf), p) == NULL)
		buf[0] = '\0';
	pclose(p);
	buf[strcspn(buf, "\n")] = '\0';
	return strdup(buf);
}

static int
mounted_at(const char *path)
{
	char cmd[256], *v;
	int yes;

	snprintf(cmd, sizeof(cmd), "awk '$5 == \"%s\"' /proc/self/mountinfo", path);
	v = sh_line(cmd);
	yes = *v != '\0';
	free(v);
	return yes;
}

struct disk {
	char dir[64], img[128], mnt[128], fstab[128], cmd[512];
};

static void
disk_setup(struct disk *d)
{
	int fd;

	snprintf(d->dir, sizeof(d->dir), "/tmp/oa-boot-disk.XXXXXX");
	cr_assert(mkdtemp(d->dir) != NULL);
	snprintf(d->img, sizeof(d->img), "%s/disk.img", d->dir);
	snprintf(d->mnt, sizeof(d->mnt), "%s/mnt", d->dir);
	snprintf(d->fstab, sizeof(d->fstab), "%s/fstab", d->dir);
	fd = open(d->img, O_CREAT | O_WRONLY, 0600);
	cr_assert(fd != -1 && ftruncate(fd, 64 << 20) == 0);
	close(fd);
	fd = open(d->fstab, O_CREAT | O_WRONLY, 0644);
	cr_assert(fd != -1);
	cr_assert(write(fd, "# test\n/dev/sda1 / ext4 defaults 0 1\n", 38) == 38);
	close(fd);
}

static void
disk_cleanup(struct disk *d)
{
	if (mounted_at(d->mnt)) {
		snprintf(d->cmd, sizeof(d->cmd), "umount %s", d->mnt);
		cr_expect(system(d->cmd) == 0);
	}
	snprintf(d->cmd, sizeof(d->cmd), "rm -rf %s", d->dir);
	cr_expect(system(d->cmd) == 0);
}

static int
disk_run(struct disk *d, struct run *r)
{
	return run_agent(r, NULL, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap",
	    NO_META, "--data-device", d->img, "--mount-point", d->mnt, "--fstab", d->fstab,
	    "--only", "disk", NULL });
}

static char *
blkid(struct disk *d, const char *tag)
{
	snprintf(d->cmd, sizeof(d->cmd), "blkid -p -s %s -o value %s", tag, d->img);
	return sh_line(d->cmd);
}

Test(bootstrap, disk_formatted_once_then_never, .timeout = 120)
{
	struct disk d;
	struct run r;
	char *uuid, *uuid2, *fstab, line[300];
	int st;

	disk_setup(&d);
	st = disk_run(&d, &r);
	cr_assert(st == 0 || st == 71, "%s\n%s", r.out, r.err);
	cr_expect(strstr(r.out, "was empty; made an ext4 filesystem") != NULL, "%s", r.out);
	uuid = blkid(&d, "UUID");
	cr_assert(*uuid != '\0', "no filesystem after the first run");
	fstab = read_file(d.fstab);
	snprintf(line, sizeof(line), "UUID=%s %s ext4 defaults,nofail,noatime 0 2\n", uuid, d.mnt);
	cr_expect(strstr(fstab, line) != NULL, "%s", fstab);
	cr_expect(strstr(fstab, "/dev/sda1 / ext4 defaults 0 1\n") != NULL, "%s", fstab);
	free(fstab);
	if (st == 0) {
		cr_expect(mounted_at(d.mnt), "reported mounted but is not");
	} else {
		/* No loop devices here (a container): mounting cannot be tested. */
		cr_expect(strstr(r.err, "step disk failed") && strstr(r.err, "mounting"), "%s", r.err);
		cr_log_info("bootstrap: mounting an image needs loop devices; not tested here (%s)",
		    r.err);
	}
	run_free(&r);

	cr_expect_eq(disk_run(&d, &r), st, "%s", r.err);
	cr_expect(strstr(r.out, "already has a ext4 filesystem; not formatting") != NULL, "%s",
	    r.out);
	cr_expect(strstr(r.out, "made an ext4") == NULL, "%s", r.out);
	snprintf(line, sizeof(line), "%s: unchanged", d.fstab);
	cr_expect(strstr(r.out, line) != NULL, "%s", r.out);
	if (st == 0)
		cr_expect(strstr(r.out, "already mounted") != NULL, "%s", r.out);
	uuid2 = blkid(&d, "UUID");
	cr_expect_str_eq(uuid2, uuid, "the disk was formatted again");
	run_free(&r);
	free(uuid);
	free(uuid2);
	disk_cleanup(&d);
}

Test(bootstrap, disk_with_any_filesystem_is_not_formatted, .timeout = 60)
{
	struct disk d;
	struct run r;
	char *type, *uuid, *uuid2;

	disk_setup(&d);
	/* Not ext4 and not mountable: still never formatted. */
	snprintf(d.cmd, sizeof(d.cmd), "mkswap -q -L keepme %s", d.img);
	cr_assert(system(d.cmd) == 0);
	uuid = blkid(&d, "UUID");
	disk_run(&d, &r);
	cr_expect_eq(r.status, 71, "%s\n%s", r.out, r.err);
	cr_expect(strstr(r.out, "already has a swap filesystem; not formatting") != NULL, "%s",
	    r.out);
	cr_expect(strstr(r.err, "step disk failed") && strstr(r.err, "mounting"), "%s", r.err);
	run_free(&r);
	type = blkid(&d, "TYPE");
	uuid2 = blkid(&d, "UUID");
	cr_expect_str_eq(type, "swap");
	cr_expect_str_eq(uuid2, uuid);
	free(type);
	free(uuid);
	free(uuid2);
	disk_cleanup(&d);
}

Test(bootstrap, systemd_units_enabled, .timeout = 60)
{
	char dir[64] = "/tmp/oa-boot-sd.XXXXXX", script[128], log[128], body[256], *got;
	struct run r;
	FILE *fp;

	cr_assert(mkdtemp(dir) != NULL);
	snprintf(script, sizeof(script), "%s/systemctl", dir);
	snprintf(log, sizeof(log), "%s/args", dir);
	snprintf(body, sizeof(body), "#!/bin/sh\necho \"$@\" > %s\n[ \"$OA_FAIL\" != 1 ]\n", log);
	fp = fopen(script, "w");
	cr_assert(fp != NULL);
	fputs(body, fp);
	fclose(fp);
	chmod(script, 0755);

	run_agent(&r, NULL, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap", NO_META,
	    "--workers", "3", "--only", "systemd", "--systemctl", script, NULL });
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "3 workers and the backup, maintain and metrics timers") != NULL,
	    "%s", r.out);
	run_free(&r);
	got = read_file(log);
	cr_expect_str_eq(got, "enable --now orchestrator-agent-worker@1.service "
	    "orchestrator-agent-worker@2.service orchestrator-agent-worker@3.service "
	    "orchestrator-agent-backup.timer orchestrator-agent-maintain.timer "
	    "orchestrator-agent-metrics.timer\n");
	free(got);

	run_agent(&r, (const char *[]){ "OA_FAIL=1", NULL }, NULL, (const char *[]){ "-c",
	    "/dev/null", "bootstrap", NO_META, "--only", "systemd", "--systemctl", script, NULL });
	cr_expect_eq(r.status, 71, "%s", r.err);
	cr_expect(strstr(r.err, "step systemd failed") != NULL, "%s", r.err);
	run_free(&r);

	run_agent(&r, NULL, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap", NO_META,
	    "--only", "systemd", "--no-systemd", NULL });
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "systemd: skipped (--no-systemd)") != NULL, "%s", r.out);
	run_free(&r);
	if (access("/run/systemd/system", F_OK) == -1) {
		run_agent(&r, NULL, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap",
		    NO_META, "--only", "systemd", NULL });
		cr_expect_eq(r.status, 0, "%s", r.err);
		cr_expect(strstr(r.out, "systemd is not running") != NULL, "%s", r.out);
		run_free(&r);
	}
	unlink(log);
	unlink(script);
	rmdir(dir);
}

Test(bootstrap, usage_errors)
{
	static const char *const bad[][3] = {
		{ "--only", "disk,nosuch", NULL },
		{ "--frobnicate", NULL, NULL },
		{ "extra", NULL, NULL },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run_agent(&r, NULL, NULL, (const char *[]){ "-c", "/dev/null", "bootstrap",
		    bad[i][0], bad[i][1], NULL });
		cr_expect_eq(r.status, 64, "%s: %s", bad[i][0], r.err);
		run_free(&r);
	}
}

static void
put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	cr_assert(fp != NULL, "%s", path);
	fputs(text, fp);
	fclose(fp);
}

/*
 * The cluster moved onto a mounted disk: a stand-in Debian cluster (its
 * postgresql.conf beside --pg-conf-dir) and a stand-in pg_ctlcluster in
 * PATH that logs its arguments, since the harness's server must keep
 * running.  Needs root and loop devices for the mount.
 */
Test(bootstrap, datadir_copied_once_adopted_and_checked, .timeout = 120)
{
	struct disk d;
	struct run r;
	char etc[160], confd[180], conf[200], data[160], bin[160], ctl[200], log[200];
	char path[300], pathenv[4200], body[512], want[300], *text;
	const char *env[2];
	const char *args[32];
	int n = 0;

	disk_setup(&d);
	disk_run(&d, &r);
	if (r.status != 0) {
		cr_log_info("bootstrap: datadir needs a mounted image (root, loop devices); not "
		    "tested here: %s", r.err);
		run_free(&r);
		disk_cleanup(&d);
		return;
	}
	run_free(&r);
	snprintf(etc, sizeof(etc), "%s/etc", d.dir);
	snprintf(confd, sizeof(confd), "%s/conf.d", etc);
	snprintf(conf, sizeof(conf), "%s/postgresql.conf", etc);
	snprintf(data, sizeof(data), "%s/var-main", d.dir);
	snprintf(bin, sizeof(bin), "%s/bin", d.dir);
	snprintf(ctl, sizeof(ctl), "%s/pg_ctlcluster", bin);
	snprintf(log, sizeof(log), "%s/ctl.log", d.dir);
	cr_assert(mkdir(etc, 0755) == 0 && mkdir(confd, 0755) == 0 && mkdir(bin, 0755) == 0);
	cr_assert(mkdir(data, 0700) == 0);
	snprintf(path, sizeof(path), "%s/base", data);
	cr_assert(mkdir(path, 0700) == 0);
	snprintf(path, sizeof(path), "%s/base/relfile", data);
	put(path, "rows\n");
	snprintf(path, sizeof(path), "%s/PG_VERSION", data);
	put(path, "16\n");
	snprintf(body, sizeof(body), "port = 5432\ndata_directory = '%s'\t\t# use data in "
	    "another directory\n", data);
	put(conf, body);
	snprintf(body, sizeof(body), "#!/bin/sh\necho \"$@\" >> %s\n", log);
	put(ctl, body);
	chmod(ctl, 0755);
	snprintf(pathenv, sizeof(pathenv), "PATH=%s:%s", bin, getenv("PATH"));
	env[0] = pathenv;
	env[1] = NULL;
	for (const char *a[] = { "-c", "/dev/null", "bootstrap", NO_META, "--only", "datadir",
	    "--pg-major", "16", "--pg-conf-dir", confd, "--mount-point", d.mnt, NULL }; a[n];
	    n++)
		args[n] = a[n];
	args[n] = NULL;

	/* First time: stopped, copied through main.copy, switched, started. */
	run_agent(&r, env, NULL, args);
	cr_assert_eq(r.status, 0, "%s\n%s", r.out, r.err);
	cr_expect(strstr(r.out, "datadir: copied") != NULL, "%s", r.out);
	run_free(&r);
	snprintf(path, sizeof(path), "%s/16/main/base/relfile", d.mnt);
	text = read_file(path);
	cr_expect(text != NULL && strcmp(text, "rows\n") == 0, "data not copied to %s", path);
	free(text);
	snprintf(path, sizeof(path), "%s/16/main.copy", d.mnt);
	cr_expect(access(path, F_OK) == -1, "%s left behind", path);
	text = read_file(conf);
	snprintf(want, sizeof(want), "data_directory = '%s/16/main'\n", d.mnt);
	cr_expect(strstr(text, want) != NULL && strstr(text, "port = 5432\n") != NULL, "%s",
	    text);
	free(text);
	text = read_file(log);
	cr_expect_str_eq(text, "16 main stop\n16 main start\n");
	free(text);

	/* Again: nothing to do, the cluster is neither stopped nor started. */
	run_agent(&r, env, NULL, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "already uses") != NULL, "%s", r.out);
	run_free(&r);
	text = read_file(log);
	cr_expect_str_eq(text, "16 main stop\n16 main start\n");
	free(text);

	/* A new VM (fresh config) with this disk: the cluster on it is adopted. */
	snprintf(body, sizeof(body), "data_directory = '%s'\n", data);
	put(conf, body);
	run_agent(&r, env, NULL, args);
	cr_expect_eq(r.status, 0, "%s", r.err);
	cr_expect(strstr(r.out, "adopted the PostgreSQL 16 cluster") != NULL, "%s", r.out);
	run_free(&r);

	/* A disk from another major version is refused, not started. */
	put(conf, body);
	snprintf(path, sizeof(path), "%s/16/main/PG_VERSION", d.mnt);
	put(path, "15\n");
	run_agent(&r, env, NULL, args);
	cr_expect_eq(r.status, 71, "%s", r.err);
	cr_expect(strstr(r.err, "step datadir failed") && strstr(r.err, "PostgreSQL 15 cluster"),
	    "%s", r.err);
	run_free(&r);
	text = read_file(conf);
	cr_expect_str_eq(text, body, "data_directory changed although the copy was refused");
	free(text);
	disk_cleanup(&d);
}
