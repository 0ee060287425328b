/*
 * cmd_bootstrap.c - "bootstrap": provision the database VM from its
 * metadata, every step idempotent (bootstrap.c, bootdisk.c, bootdb.c,
 * bootfile.c).
 *
 * Pointers passed to functions here are borrowed for the call unless a
 * comment says otherwise.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "auth.h"
#include "bootdb.h"
#include "bootdisk.h"
#include "bootstrap.h"
#include "cfg.h"
#include "cmd.h"
#include "log.h"

enum step { S_DISK, S_DATADIR, S_POSTGRES, S_DATABASE, S_CONFIG, S_SYSTEMD,
    S_N };

/* Name and exit status of each step, in the order they run. */
static const struct {
	const char	*name;
	int		 code;
} steps[S_N] = {
	[S_DISK] = { "disk", EX_OSERR },
	[S_DATADIR] = { "datadir", EX_OSERR },
	[S_POSTGRES] = { "postgres", EX_UNAVAILABLE },
	[S_DATABASE] = { "database", EX_UNAVAILABLE },
	[S_CONFIG] = { "config", EX_CANTCREAT },
	[S_SYSTEMD] = { "systemd", EX_OSERR },
};

enum {
	O_NO_METADATA = 256, O_MOUNT, O_FSTAB, O_CONFDIR, O_HBA, O_HOST,
	O_PORT, O_SUPER, O_RESTART, O_CONFIG_OUT, O_SYSTEMCTL, O_NO_SYSTEMD,
	O_ONLY, O_SKIP, O_MAJOR, O_VAL	/* O_VAL + enum boot_val */
};

struct bopts {
	struct bootstrap	 b;
	struct bootdisk_opts	 disk;
	int			 no_metadata;
	int			 run[S_N];
	char			 device[600];
};

/* Mark the steps of a comma-separated list; -1 on an unknown one. */
static int
parse_steps(const char *list, int *run, int value)
{
	char	 buf[256], *tok, *save = NULL;
	int	 i, found;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		found = 0;
		for (i = 0; i < S_N; i++)
			if (strcmp(tok, steps[i].name) == 0) {
				run[i] = value;
				found = 1;
			}
		if (!found)
			return -1;
	}
	return 0;
}

static int
parse(struct bopts *o, int argc, char **argv)
{
	struct option	 lo[32 + BV_N];
	int		 n = 0, ch, i, only = 0;
	static const struct { const char *name; int val; } fixed[] = {
		{ "no-metadata", O_NO_METADATA }, { "mount-point", O_MOUNT },
		{ "fstab", O_FSTAB }, { "pg-conf-dir", O_CONFDIR },
		{ "pg-hba", O_HBA }, { "pg-host", O_HOST },
		{ "pg-port", O_PORT }, { "superuser", O_SUPER },
		{ "restart-cmd", O_RESTART }, { "config-out", O_CONFIG_OUT },
		{ "systemctl", O_SYSTEMCTL }, { "no-systemd", O_NO_SYSTEMD },
		{ "only", O_ONLY }, { "skip", O_SKIP },
		{ "pg-major", O_MAJOR },
	};

	for (i = 0; i < (int)(sizeof(fixed) / sizeof(fixed[0])); i++) {
		lo[n].name = fixed[i].name;
		lo[n].has_arg = fixed[i].val == O_NO_METADATA ||
		    fixed[i].val == O_NO_SYSTEMD ? no_argument :
		    required_argument;
		lo[n].flag = NULL;
		lo[n++].val = fixed[i].val;
	}
	for (i = 0; i < BV_N; i++) {
		lo[n].name = bootstrap_flag((enum boot_val)i);
		lo[n].has_arg = required_argument;
		lo[n].flag = NULL;
		lo[n++].val = O_VAL + i;
	}
	memset(&lo[n], 0, sizeof(lo[n]));
	for (i = 0; i < S_N; i++)
		o->run[i] = 1;
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, "+", lo, NULL);
		if (ch == -1)
			break;
		if (ch >= O_VAL && ch < O_VAL + BV_N) {
			free(o->b.val[ch - O_VAL]);
			o->b.val[ch - O_VAL] = strdup(optarg);
			if (o->b.val[ch - O_VAL] == NULL)
				fatal("bootstrap: strdup");
			continue;
		}
		switch (ch) {
		case O_NO_METADATA: o->no_metadata = 1; break;
		case O_MOUNT: o->disk.mountpoint = optarg; break;
		case O_FSTAB: o->disk.fstab = optarg; break;
		case O_CONFDIR: o->b.pg_conf_dir = optarg; break;
		case O_HBA: o->b.pg_hba = optarg; break;
		case O_HOST: o->b.pg_host = optarg; break;
		case O_PORT: o->b.pg_port = optarg; break;
		case O_SUPER: o->b.superuser = optarg; break;
		case O_RESTART: o->b.restart_cmd = optarg; break;
		case O_CONFIG_OUT: o->b.config_out = optarg; break;
		case O_SYSTEMCTL: o->b.systemctl = optarg; break;
		case O_NO_SYSTEMD: o->b.no_systemd = 1; break;
		case O_MAJOR:
			if (*optarg == '\0' || strlen(optarg) > 3 ||
			    strspn(optarg, "0123456789") != strlen(optarg))
				return cmd_usage_error(&cmd_bootstrap,
				    "--pg-major takes a PostgreSQL major "
				    "version such as 16, not '%s'", optarg);
			snprintf(o->b.major, sizeof(o->b.major), "%s", optarg);
			break;
		case O_ONLY:
		case O_SKIP:
			if (ch == O_ONLY && !only) {
				memset(o->run, 0, sizeof(o->run));
				only = 1;
			}
			if (parse_steps(optarg, o->run, ch == O_ONLY) == -1)
				return cmd_usage_error(&cmd_bootstrap, "unknown "
				    "step in '%s'; the steps are disk, datadir, "
				    "postgres, database, config, systemd",
				    optarg);
			break;
		default:
			return cmd_usage_error(&cmd_bootstrap, "unknown option "
			    "'%s'", argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cmd_usage_error(&cmd_bootstrap, "unexpected argument "
		    "'%s'", argv[optind]);
	return EX_OK;
}

/* MemTotal in kB, or 1 GB when /proc/meminfo cannot be read. */
static long long
mem_total_kib(void)
{
	FILE		*fp = fopen("/proc/meminfo", "re");
	char		 line[256];
	long long	 kib = 0;

	while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "MemTotal: %lld kB", &kib) == 1)
			break;
	if (fp != NULL)
		fclose(fp);
	return kib > 0 ? kib : 1024 * 1024;
}

/* Fill the unset paths with the installed defaults. */
static void
defaults(struct bopts *o)
{
	const char *e;

	if (o->disk.mountpoint == NULL)
		o->disk.mountpoint = "/mnt/pgdata";
	if (o->disk.fstab == NULL)
		o->disk.fstab = "/etc/fstab";
	e = getenv("PGHOST");
	if (o->b.pg_host == NULL)
		o->b.pg_host = e && *e ? e : "/var/run/postgresql";
	e = getenv("PGPORT");
	if (o->b.pg_port == NULL)
		o->b.pg_port = e && *e ? e : "5432";
	if (o->b.superuser == NULL)
		o->b.superuser = "postgres";
	if (o->b.config_out == NULL)
		o->b.config_out = CFG_DEFAULT_PATH;
	o->b.out = stdout;
}

static int
run_step(struct bopts *o, enum step s, struct auth *auth,
    const struct cfg *cfg, int *mounted, char *err, size_t errlen)
{
	const char	*slash;
	char		 conf[600];

	switch (s) {
	case S_DISK:
		if (o->b.val[BV_DEVICE][0] == '/')
			snprintf(o->device, sizeof(o->device), "%s",
			    o->b.val[BV_DEVICE]);
		else
			snprintf(o->device, sizeof(o->device),
			    "/dev/disk/by-id/google-%s", o->b.val[BV_DEVICE]);
		o->disk.device = o->device;
		return bootdisk_prepare(&o->disk, stdout, mounted, err,
		    errlen);
	case S_DATADIR:
		if (!*mounted && !bootdisk_mounted(o->disk.mountpoint)) {
			printf("datadir: no data disk mounted; PostgreSQL "
			    "keeps its data directory\n");
			return 0;
		}
		if (o->b.major[0] == '\0' &&
		    bootstrap_detect_major(&o->b, err, errlen) == -1)
			return -1;
		/* The cluster's directory holds conf.d and postgresql.conf. */
		slash = o->b.pg_conf_dir ? strrchr(o->b.pg_conf_dir, '/') :
		    NULL;
		if (slash != NULL)
			snprintf(conf, sizeof(conf), "%.*s/postgresql.conf",
			    (int)(slash - o->b.pg_conf_dir), o->b.pg_conf_dir);
		else if (o->b.pg_conf_dir != NULL)
			snprintf(conf, sizeof(conf), "postgresql.conf");
		else
			snprintf(conf, sizeof(conf), "/etc/postgresql/%s/main/"
			    "postgresql.conf", o->b.major);
		if (bootdisk_datadir(conf, o->b.major, o->disk.mountpoint,
		    stdout, err, errlen) == -1)
			return -1;
		return bootdisk_unit_dropin(o->disk.mountpoint, stdout, err,
		    errlen);
	case S_POSTGRES:
		if (o->b.major[0] == '\0' && (o->b.pg_conf_dir == NULL ||
		    o->b.pg_hba == NULL || o->b.restart_cmd == NULL) &&
		    bootstrap_detect_major(&o->b, err, errlen) == -1)
			return -1;
		return bootstrap_postgres(&o->b, mem_total_kib(), err, errlen);
	case S_DATABASE:
		if (bootdb_password(&o->b, auth, cfg_str(cfg,
		    CFG_GCS_SECRETMANAGER_ENDPOINT), err, errlen) == -1)
			return -1;
		return bootdb_database(&o->b, err, errlen);
	case S_CONFIG:
		return bootstrap_config(&o->b, err, errlen);
	case S_SYSTEMD:
		return bootstrap_systemd(&o->b, err, errlen);
	case S_N:
		break;
	}
	return 0;
}

static int
bootstrap_run(struct agent *a, int argc, char **argv)
{
	struct bopts		 o;
	struct auth_opts	 ao;
	struct auth		*auth = NULL;
	struct cfg		*cfg;
	char			 err[2048];
	int			 rc, i, mounted = 0;

	memset(&o, 0, sizeof(o));
	rc = parse(&o, argc, argv);
	if (rc != EX_OK)
		goto out;
	defaults(&o);
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		goto out;
	memset(&ao, 0, sizeof(ao));
	if (*cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE) != '\0')
		ao.credentials_file = cfg_str(cfg, CFG_GCS_CREDENTIALS_FILE);
	ao.metadata_host = cfg_str(cfg, CFG_GCS_METADATA_HOST);
	ao.no_auth = getenv("STORAGE_EMULATOR_HOST") != NULL;
	auth = auth_new(&ao, err, sizeof(err));
	if (auth == NULL) {
		log_errx("bootstrap: %s", err);
		rc = EX_CONFIG;
		goto out;
	}
	if (bootstrap_values(&o.b, o.no_metadata ? NULL : auth, err,
	    sizeof(err)) == -1) {
		log_errx("bootstrap: %s", err);
		rc = EX_CONFIG;
		goto out;
	}
	printf("metadata: database %s, user %s, secret %s, connector %s, "
	    "%s workers, backups to %s\n", o.b.val[BV_DB_NAME],
	    o.b.val[BV_DB_USER], o.b.val[BV_SECRET], o.b.val[BV_CIDR],
	    o.b.val[BV_WORKERS], o.b.val[BV_BACKUP]);
	for (i = 0; i < S_N; i++) {
		if (!o.run[i])
			continue;
		fflush(stdout);
		if (run_step(&o, (enum step)i, auth, cfg, &mounted, err,
		    sizeof(err)) == -1) {
			fflush(stdout);
			log_errx("bootstrap: step %s failed: %s; fix that and "
			    "run 'orchestrator-agent bootstrap' again (it "
			    "redoes only what is not done)", steps[i].name,
			    err);
			rc = steps[i].code;
			goto out;
		}
	}
	printf("bootstrap: done\n");
	rc = EX_OK;
out:
	bootstrap_clear(&o.b);
	auth_free(auth);
	return rc;
}

const struct cmd cmd_bootstrap = {
	"bootstrap",
	"[--no-metadata] [--db-name N] [--db-user U] [--password-secret S] "
	"[--backup-target T] [--connector-cidr CIDR] [--data-device NAME|PATH] "
	"[--workers N] [--listen-ip IP] [--mount-point DIR] [--fstab FILE] "
	"[--pg-conf-dir DIR] [--pg-hba FILE] [--pg-host DIR] [--pg-port N] "
	"[--pg-major N] [--superuser NAME] [--restart-cmd CMD] "
	"[--config-out FILE] "
	"[--systemctl PROG] [--no-systemd] [--only STEPS] [--skip STEPS]",
	"provision this database VM from its metadata (idempotent)",
	"Read the per-deployment values from the GCE metadata server "
	"(instance attributes oa-db-name, oa-db-user, oa-password-secret, "
	"oa-backup-target, oa-connector-cidr, oa-data-device, oa-workers, and "
	"the internal IP); a flag of the same name overrides each, and "
	"--no-metadata uses only flags and defaults.  Then, in order:\n"
	"  disk      format /dev/disk/by-id/google-DEVICE only when blkid "
	"finds no filesystem, fstab by UUID with nofail, mount at "
	"--mount-point (/mnt/pgdata)\n"
	"  datadir   move the cluster to MOUNT/MAJOR/main (copied once, or "
	"adopted from a disk that outlived its VM); MAJOR is the newest "
	"/etc/postgresql/N/main unless --pg-major says, and postgresql.conf "
	"is the one beside --pg-conf-dir when given\n"
	"  postgres  conf.d/orchestrator-agent.conf (listen_addresses, "
	"memory sized from MemTotal, scram-sha-256) and a managed pg_hba.conf "
	"block (the connector CIDR and the agent's socket login); reload, or "
	"restart when PostgreSQL says a setting needs one\n"
	"  database  role with the Secret Manager password (sent as a SCRAM "
	"verifier), database owned by it, pg_monitor, schema migrations as "
	"the role\n"
	"  config    the managed keys of --config-out (agent.ini); other keys "
	"are kept\n"
	"  systemd   enable --now the workers and the backup, maintain and "
	"metrics timers (skipped when systemd does not run)\n"
	"Every step prints what it did or that nothing needed doing; a second "
	"run changes nothing.  --only and --skip take comma-separated steps.  "
	"On failure the step is named and the exit status is 78 (bad "
	"metadata), 71 (disk, datadir, systemd), 69 (PostgreSQL, Secret Manager) or "
	"73 (agent.ini).",
	bootstrap_run,
};
