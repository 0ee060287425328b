/*
 * bootstrap.h - turn a fresh database VM into a running agent: the
 * per-deployment values from the GCE metadata server, PostgreSQL settings
 * and pg_hba, agent.ini and the systemd units (the disk is bootdisk.c, the
 * role, database and schema bootdb.c).  Each step converges: run it
 * again and it reports "unchanged".
 */
#ifndef BOOTSTRAP_H
#define BOOTSTRAP_H

#include <stddef.h>
#include <stdio.h>

struct auth;

/* The per-deployment values; order matches the table in bootstrap.c. */
enum boot_val {
	BV_DB_NAME,
	BV_DB_USER,
	BV_SECRET,
	BV_BACKUP,
	BV_CIDR,
	BV_DEVICE,
	BV_WORKERS,
	BV_LISTEN_IP,
	BV_N
};

struct bootstrap {
	/* Values: set from flags first, the rest from metadata.  Owned. */
	char		*val[BV_N];
	const char	*from[BV_N];	/* "--X" or "metadata attribute X";
					   static storage */
	/* Paths and commands; borrowed (argv or defaults). */
	const char	*pg_host;	/* socket directory (or host) */
	const char	*pg_port;
	const char	*superuser;	/* connect as; peer auth as this OS user */
	const char	*pg_conf_dir;	/* NULL: the cluster's conf.d */
	const char	*pg_hba;	/* NULL: the cluster's pg_hba.conf */
	const char	*restart_cmd;	/* NULL: pg_ctlcluster MAJOR main restart */
	const char	*config_out;
	const char	*systemctl;	/* NULL: systemctl, when systemd runs */
	int		 no_systemd;
	char		 major[16];	/* PostgreSQL major of the cluster */
	char		*password;	/* from Secret Manager; wiped, owned */
	FILE		*out;		/* the report */
};

/* Flag name (without --) and metadata attribute of a value; static. */
const char	*bootstrap_flag(enum boot_val);
const char	*bootstrap_attr(enum boot_val);

/*
 * Fill the values still NULL from the metadata server (auth NULL: use the
 * defaults only, as with --no-metadata), then check them all.  A missing
 * required attribute or a bad value is an error naming it.  0, or -1 with
 * err filled.
 */
int	 bootstrap_values(struct bootstrap *, struct auth *, char *err,
	    size_t errlen);

/*
 * The installed PostgreSQL major (the highest /etc/postgresql/N with a
 * main/postgresql.conf) into b->major.  0, or -1 with err filled.
 */
int	 bootstrap_detect_major(struct bootstrap *, char *err, size_t errlen);

/*
 * Settings file and pg_hba block; restart PostgreSQL when the settings
 * changed, reload when only pg_hba did.  0, or -1 with err filled.
 */
int	 bootstrap_postgres(struct bootstrap *, long long mem_kib, char *err,
	    size_t errlen);

/* Set the managed keys of b->config_out.  0, or -1 with err filled. */
int	 bootstrap_config(struct bootstrap *, char *err, size_t errlen);

/* Enable and start the workers and timers.  0, or -1 with err filled. */
int	 bootstrap_systemd(struct bootstrap *, char *err, size_t errlen);

/* Free the values and wipe the password; the struct itself is the
 * caller's.  NULL-tolerant. */
void	 bootstrap_clear(struct bootstrap *);

#endif
