/*
 * bootstrap.c - the bootstrap's steps after the disk.  Each one compares
 * what is with what should be and acts only on a difference, so a second
 * boot, or a run after one that failed half-way, converges.  Whether
 * PostgreSQL must reload or restart is asked of PostgreSQL itself, so a
 * run that wrote the files and died before applying them is finished by
 * the next one.
 *
 * Pointers passed to functions here are borrowed for the call unless a
 * comment says otherwise.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "bootdb.h"
#include "bootfile.h"
#include "bootstrap.h"
#include "proc.h"
#include "secret.h"

#define BOOT_MAX_WORKERS	64
#define BOOT_SETTINGS_FILE	"orchestrator-agent.conf"
#define BOOT_AGENT_GROUP	"orchestrator-agent"

static const struct {
	const char	*flag;
	const char	*attr;
	const char	*path;	/* under computeMetadata/v1/ */
	const char	*def;	/* NULL: required */
} vals[BV_N] = {
	[BV_DB_NAME] = { "db-name", "oa-db-name",
	    "instance/attributes/oa-db-name", "orchestrator" },
	[BV_DB_USER] = { "db-user", "oa-db-user",
	    "instance/attributes/oa-db-user", "orchestrator" },
	[BV_SECRET] = { "password-secret", "oa-password-secret",
	    "instance/attributes/oa-password-secret", NULL },
	[BV_BACKUP] = { "backup-target", "oa-backup-target",
	    "instance/attributes/oa-backup-target", NULL },
	[BV_CIDR] = { "connector-cidr", "oa-connector-cidr",
	    "instance/attributes/oa-connector-cidr", NULL },
	[BV_DEVICE] = { "data-device", "oa-data-device",
	    "instance/attributes/oa-data-device", "pgdata" },
	[BV_WORKERS] = { "workers", "oa-workers",
	    "instance/attributes/oa-workers", "1" },
	[BV_LISTEN_IP] = { "listen-ip", "network-interfaces/0/ip",
	    "instance/network-interfaces/0/ip", "" },
};

static const char *const timers[] = {
	"orchestrator-agent-backup.timer",
	"orchestrator-agent-maintain.timer",
	"orchestrator-agent-metrics.timer",
};
#define NTIMERS	(sizeof(timers) / sizeof(timers[0]))

const char *
bootstrap_flag(enum boot_val v)
{
	return vals[v].flag;
}

const char *
bootstrap_attr(enum boot_val v)
{
	return vals[v].attr;
}

static void
trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Check (and normalise) value v; -1 with err naming where it came from. */
static int
check_value(struct bootstrap *b, enum boot_val v, char *err, size_t errlen)
{
	char		 why[600], *s = b->val[v], *full;
	const char	*hint = strncmp(b->from[v], "--", 2) == 0 ? "" :
	    "; fix the value in the Terraform postgres-vm module (or the VM's "
	    "metadata) and run 'orchestrator-agent bootstrap' again";
	long		 n;
	char		*end;

	why[0] = '\0';
	switch (v) {
	case BV_DB_NAME:
	case BV_DB_USER:
		if (bootfile_ident_check(s) == -1)
			snprintf(why, sizeof(why), "'%.100s' is not a plain "
			    "name: use 1-63 of a-z, 0-9 and _, not starting "
			    "with a digit", s);
		break;
	case BV_SECRET:
		if (strstr(s, "/versions/") == NULL) {
			if (asprintf(&full, "%s/versions/latest", s) == -1) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			free(b->val[v]);
			b->val[v] = s = full;
		}
		(void)secret_name_check(s, why, sizeof(why));
		break;
	case BV_BACKUP:
		if ((strncmp(s, "gs://", 5) != 0 &&
		    strncmp(s, "file:///", 8) != 0) || strlen(s) > 180 ||
		    strpbrk(s, " \t\r\n;#") != NULL)
			snprintf(why, sizeof(why), "'%.100s' is not gs://BUCKET"
			    "/PREFIX or file:///DIR (at most 180 characters, "
			    "no spaces)", s);
		break;
	case BV_CIDR:
		(void)bootfile_cidr_check(s, why, sizeof(why));
		break;
	case BV_DEVICE:
		if (s[0] != '/' && (strlen(s) > 63 || *s == '\0' ||
		    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
		    strlen(s)))
			snprintf(why, sizeof(why), "'%.100s' is not a GCE disk "
			    "device name (1-63 of a-z, 0-9, -)", s);
		break;
	case BV_WORKERS:
		errno = 0;
		n = strtol(s, &end, 10);
		if (*s == '\0' || *end != '\0' || errno != 0 || n < 1 ||
		    n > BOOT_MAX_WORKERS)
			snprintf(why, sizeof(why), "'%.100s' is not a number "
			    "of workers from 1 to %d", s, BOOT_MAX_WORKERS);
		break;
	case BV_LISTEN_IP:
		if (*s != '\0')
			(void)bootfile_ip_check(s, why, sizeof(why));
		break;
	case BV_N:
		break;
	}
	if (why[0] == '\0')
		return 0;
	snprintf(err, errlen, "%s: %s%s", b->from[v], why, hint);
	return -1;
}

int
bootstrap_values(struct bootstrap *b, struct auth *auth, char *err,
    size_t errlen)
{
	static char	 from[BV_N][80];
	char		 why[1024];
	int		 i, r;

	for (i = 0; i < BV_N; i++) {
		if (b->val[i] != NULL) {
			snprintf(from[i], sizeof(from[i]), "--%s",
			    vals[i].flag);
			b->from[i] = from[i];
			continue;
		}
		snprintf(from[i], sizeof(from[i]), "metadata %s%s",
		    i == BV_LISTEN_IP ? "" : "attribute ", vals[i].attr);
		b->from[i] = from[i];
		r = 1;
		if (auth != NULL) {
			r = auth_metadata_get(auth, vals[i].path, &b->val[i],
			    why, sizeof(why));
			if (r == -1) {
				snprintf(err, errlen, "reading %s: %s",
				    from[i], why);
				return -1;
			}
		}
		if (r == 0) {
			trim(b->val[i]);
			if (b->val[i][0] != '\0')
				continue;
			free(b->val[i]);
			b->val[i] = NULL;
		}
		if (vals[i].def == NULL) {
			snprintf(err, errlen, "%s is not set%s; set it in the "
			    "Terraform postgres-vm module, or pass --%s",
			    from[i], auth ? " on this VM" : " (--no-metadata)",
			    vals[i].flag);
			return -1;
		}
		b->val[i] = strdup(vals[i].def);
		if (b->val[i] == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	for (i = 0; i < BV_N; i++)
		if (check_value(b, (enum boot_val)i, err, errlen) == -1)
			return -1;
	return 0;
}

int
bootstrap_detect_major(struct bootstrap *b, char *err, size_t errlen)
{
	DIR		*d = opendir("/etc/postgresql");
	struct dirent	*e;
	struct stat	 st;
	char		 path[600];
	long		 best = 0, v;
	char		*end;

	for (e = d ? readdir(d) : NULL; e != NULL; e = readdir(d)) {
		v = strtol(e->d_name, &end, 10);
		snprintf(path, sizeof(path), "/etc/postgresql/%s/main/"
		    "postgresql.conf", e->d_name);
		if (*end == '\0' && v > best && stat(path, &st) == 0)
			best = v;
	}
	if (d != NULL)
		closedir(d);
	if (best == 0) {
		snprintf(err, errlen, "no PostgreSQL cluster under "
		    "/etc/postgresql/N/main; install postgresql (cloud-init "
		    "does), or give --pg-conf-dir, --pg-hba and --restart-cmd");
		return -1;
	}
	snprintf(b->major, sizeof(b->major), "%ld", best);
	return 0;
}

static int
restart_server(struct bootstrap *b, char *err, size_t errlen)
{
	char	*def[] = { "pg_ctlcluster", b->major, "main", "restart", NULL };
	char	**argv = def, why[1024];
	int	 st, rc = -1;

	if (b->restart_cmd != NULL) {
		argv = proc_split(b->restart_cmd, why, sizeof(why));
		if (argv == NULL) {
			snprintf(err, errlen, "--restart-cmd: %s", why);
			return -1;
		}
	}
	st = proc_run(argv, NULL, 0, why, sizeof(why));
	trim(why);
	if (st != 0)
		snprintf(err, errlen, "restarting PostgreSQL with %s: %s "
		    "(status %d)%s%s", argv[0], st == -1 ? "could not run" :
		    "failed", st, *why ? ": " : "", why);
	else
		rc = 0;
	if (argv != def)
		proc_argv_free(argv);
	return rc;
}

int
bootstrap_postgres(struct bootstrap *b, long long mem_kib, char *err,
    size_t errlen)
{
	char		 confdir[512], conf[600], hba[512], why[1024], *q;
	char		*text = NULL, *old = NULL;
	const char	*p[2];
	PGconn		*conn = NULL;
	PGresult	*res = NULL;
	int		 ch_conf, ch_hba, r, restart, reload, rc = -1;

	err[0] = '\0';
	snprintf(confdir, sizeof(confdir), "%s", b->pg_conf_dir ?
	    b->pg_conf_dir : "");
	if (b->pg_conf_dir == NULL)
		snprintf(confdir, sizeof(confdir), "/etc/postgresql/%s/main/"
		    "conf.d", b->major);
	snprintf(hba, sizeof(hba), "%s", b->pg_hba ? b->pg_hba : "");
	if (b->pg_hba == NULL)
		snprintf(hba, sizeof(hba), "/etc/postgresql/%s/main/"
		    "pg_hba.conf", b->major);
	snprintf(conf, sizeof(conf), "%s/%s", confdir, BOOT_SETTINGS_FILE);
	if (mkdir(confdir, 0755) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", confdir, strerror(errno));
		return -1;
	}
	text = bootfile_pg_settings(mem_kib, b->val[BV_LISTEN_IP]);
	if (text == NULL || bootfile_write(conf, text, 0644, NULL, &ch_conf,
	    err, errlen) == -1)
		goto out;
	fprintf(b->out, "postgres: %s: %s\n", conf, ch_conf ? "written" :
	    "unchanged");
	free(text);
	text = NULL;
	r = bootfile_read(hba, &old, err, errlen);
	if (r == 1)
		snprintf(err, errlen, "%s does not exist; give the cluster's "
		    "pg_hba.conf with --pg-hba", hba);
	if (r != 0)
		goto out;
	text = bootfile_hba(old, b->val[BV_DB_NAME], b->val[BV_DB_USER],
	    b->val[BV_CIDR]);
	if (text == NULL || bootfile_write(hba, text, 0640, NULL, &ch_hba,
	    err, errlen) == -1)
		goto out;
	fprintf(b->out, "postgres: %s: %s\n", hba, ch_hba ? "block for "
	    "the connector and the agent written" : "unchanged");
	/*
	 * Ask the server rather than remember: a run that wrote the files
	 * and then failed left them unapplied, and this one sees it.
	 */
	conn = bootdb_super_connect(b, "postgres", err, errlen);
	if (conn == NULL)
		goto out;
	p[0] = conf;
	p[1] = hba;
	res = PQexecParams(conn, "SELECT "
	    "EXISTS (SELECT 1 FROM pg_file_settings WHERE sourcefile = $1 "
	    "AND error IS NOT NULL), "
	    "COALESCE((pg_stat_file($1, true)).modification >= "
	    "pg_conf_load_time(), false) OR "
	    "COALESCE((pg_stat_file($2, true)).modification >= "
	    "pg_conf_load_time(), false)", 2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "asking PostgreSQL whether its "
		    "configuration is current: %s", PQerrorMessage(conn));
		trim(err);
		goto out;
	}
	restart = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	reload = ch_conf || ch_hba || strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	if (reload) {
		q = "SELECT pg_reload_conf()";
		if (bootdb_exec(conn, q, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "reloading: %s", why);
			goto out;
		}
		fprintf(b->out, "postgres: configuration reloaded\n");
	}
	PQfinish(conn);
	conn = NULL;
	if (restart) {
		if (restart_server(b, err, errlen) == -1)
			goto out;
		fprintf(b->out, "postgres: restarted (listen_addresses or "
		    "memory settings changed)\n");
	}
	if (!reload && !restart)
		fprintf(b->out, "postgres: running with these settings; "
		    "nothing to reload\n");
	rc = 0;
out:
	if (text == NULL && rc == -1 && err[0] == '\0')
		snprintf(err, errlen, "out of memory");
	PQclear(res);
	PQfinish(conn);
	free(text);
	free(old);
	return rc;
}

int
bootstrap_config(struct bootstrap *b, char *err, size_t errlen)
{
	const struct bootfile_kv kv[] = {
		{ "database", "host", b->pg_host },
		{ "database", "port", b->pg_port },
		{ "database", "dbname", b->val[BV_DB_NAME] },
		{ "database", "user", b->val[BV_DB_USER] },
		{ "database", "password_secret", b->val[BV_SECRET] },
		{ "backup", "target", b->val[BV_BACKUP] },
	};
	char	 dir[512], *old = NULL, *text = NULL, *slash;
	int	 changed, rc = -1;

	snprintf(dir, sizeof(dir), "%s", b->config_out);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", dir,
			    strerror(errno));
			return -1;
		}
	}
	if (bootfile_read(b->config_out, &old, err, errlen) == -1)
		return -1;
	text = bootfile_ini(old, kv, sizeof(kv) / sizeof(kv[0]));
	if (text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (bootfile_write(b->config_out, text, 0640, BOOT_AGENT_GROUP,
	    &changed, err, errlen) == -1)
		goto out;
	fprintf(b->out, "config: %s: %s\n", b->config_out, changed ?
	    "managed keys written" : "unchanged");
	rc = 0;
out:
	free(old);
	free(text);
	return rc;
}

int
bootstrap_systemd(struct bootstrap *b, char *err, size_t errlen)
{
	char		*argv[3 + BOOT_MAX_WORKERS + NTIMERS + 1];
	char		 names[BOOT_MAX_WORKERS][64], why[1024];
	struct stat	 st;
	long		 n = strtol(b->val[BV_WORKERS], NULL, 10), i;
	int		 k = 0, r;

	if (b->no_systemd) {
		fprintf(b->out, "systemd: skipped (--no-systemd)\n");
		return 0;
	}
	if (b->systemctl == NULL && stat("/run/systemd/system", &st) == -1) {
		fprintf(b->out, "systemd: skipped: systemd is not running here; "
		    "start the agent with 'orchestrator-agent run'\n");
		return 0;
	}
	argv[k++] = (char *)(b->systemctl ? b->systemctl : "systemctl");
	argv[k++] = "enable";
	argv[k++] = "--now";
	for (i = 0; i < n && i < BOOT_MAX_WORKERS; i++) {
		snprintf(names[i], sizeof(names[i]),
		    "orchestrator-agent-worker@%ld.service", i + 1);
		argv[k++] = names[i];
	}
	for (i = 0; i < (long)NTIMERS; i++)
		argv[k++] = (char *)timers[i];
	argv[k] = NULL;
	r = proc_run(argv, NULL, 0, why, sizeof(why));
	trim(why);
	if (r != 0) {
		snprintf(err, errlen, "%s enable --now failed (status %d)%s%s; "
		    "see systemctl status orchestrator-agent-worker@1",
		    argv[0], r, *why ? ": " : "", why);
		return -1;
	}
	fprintf(b->out, "systemd: %ld worker%s and the backup, maintain and "
	    "metrics timers enabled and started\n", n, n == 1 ? "" : "s");
	return 0;
}

void
bootstrap_clear(struct bootstrap *b)
{
	int i;

	if (b == NULL)
		return;
	for (i = 0; i < BV_N; i++) {
		free(b->val[i]);
		b->val[i] = NULL;
	}
	secret_free(b->password);
	b->password = NULL;
}
