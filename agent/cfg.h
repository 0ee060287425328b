/*
 * cfg.h - configuration: one key table, INI file, environment overrides.
 *
 * Precedence, lowest first: built-in default, libpq's own PG* variables,
 * the INI file, then the seed's POSTGRES_* / DATABASE_URL variables.
 */
#ifndef CFG_H
#define CFG_H

#include <stdio.h>

#define CFG_DEFAULT_PATH	"/etc/orchestrator-agent/agent.ini"
#define CFG_ENV_PATH		"ORCHESTRATOR_AGENT_CONFIG"

/* Key identifiers; the order matches the table in cfg.c. */
enum cfg_id {
	CFG_DB_URL,
	CFG_DB_HOST,
	CFG_DB_PORT,
	CFG_DB_NAME,
	CFG_DB_USER,
	CFG_DB_PASSWORD,
	CFG_DB_PASSWORD_FILE,
	CFG_DB_SSLMODE,
	CFG_DB_SSLROOTCERT,
	CFG_DB_CONNECT_TIMEOUT,
	CFG_DB_STATEMENT_TIMEOUT_MS,
	CFG_DB_LOCK_TIMEOUT_MS,
	CFG_DB_APPLICATION_NAME,
	CFG_W_CONCURRENCY,
	CFG_W_PREFETCH,
	CFG_W_LEASE_SECONDS,
	CFG_W_POLL_INTERVAL_MS,
	CFG_W_GRACE_SECONDS,
	CFG_W_LISTEN,
	CFG_W_RETRY_BASE_MS,
	CFG_W_RETRY_CAP_MS,
	CFG_W_HOLD_MS,
	CFG_W_UNLEASED_AFTER_SECONDS,
	CFG_AGENT_STATE_DIR,
	CFG_B_TARGET,
	CFG_B_COMPRESSION,
	CFG_B_ZSTD_LEVEL,
	CFG_B_PG_DUMP,
	CFG_B_PG_RESTORE,
	CFG_B_KEEP_LAST,
	CFG_B_KEEP_DAYS,
	CFG_B_CHUNK_KIB,
	CFG_GCS_ENDPOINT,
	CFG_GCS_CREDENTIALS_FILE,
	CFG_GCS_METADATA_HOST,
	CFG_DB_PASSWORD_SECRET,
	CFG_GCS_SECRETMANAGER_ENDPOINT,
	CFG_D_CONNECT_WARN_MS,
	CFG_D_CONN_WARN_PCT,
	CFG_D_CONN_CRIT_PCT,
	CFG_D_DISK_WARN_PCT,
	CFG_D_DISK_CRIT_PCT,
	CFG_D_XID_WARN,
	CFG_D_XID_CRIT,
	CFG_D_IDLE_XACT_WARN_S,
	CFG_D_IDLE_XACT_CRIT_S,
	CFG_D_LONG_XACT_WARN_S,
	CFG_D_LONG_XACT_CRIT_S,
	CFG_D_DEAD_WARN_PCT,
	CFG_D_DEAD_CRIT_PCT,
	CFG_D_DEAD_MIN,
	CFG_D_DEPTH_WARN,
	CFG_D_DEPTH_CRIT,
	CFG_D_AGE_WARN_S,
	CFG_D_AGE_CRIT_S,
	CFG_D_STUCK_WARN,
	CFG_D_STUCK_CRIT,
	CFG_D_FAIL_WARN_PCT,
	CFG_D_FAIL_CRIT_PCT,
	CFG_D_FAIL_MIN,
	CFG_D_BACKUP_WARN_H,
	CFG_D_BACKUP_CRIT_H,
	CFG_D_BACKUP_SIZE_PCT,
	CFG_D_VERIFY_WARN_D,
	CFG_D_SKEW_WARN_S,
	CFG_D_SKEW_CRIT_S,
	CFG_D_MAINTAIN_WARN_H,
	CFG_D_INSTALL_STATE,
	CFG_H_LISTEN,
	CFG_H_STALE_SECONDS,
	CFG_S_WORKERS,
	CFG_S_BACKUP,
	CFG_S_MAINTAIN,
	CFG_S_METRICS,
	CFG_S_METRICS_TEXTFILE,
	CFG_M_RETENTION_DAYS,
	CFG_M_BATCH_SIZE,
	CFG_M_LOCK_TIMEOUT_MS,
	CFG_M_REINDEX_BLOAT_PERCENT,
	CFG_M_REINDEX_MIN_KIB,
	CFG_NKEYS
};

enum handler_kind { HANDLER_EXEC, HANDLER_HTTP, HANDLER_NOOP };

/* A [handler.TYPE] section, resolved and validated. */
struct cfg_handler {
	const char		*type;		/* task_type it serves */
	enum handler_kind	 kind;
	const char		*command;	/* exec: command line (shell words) */
	const char		*url;		/* http: endpoint */
	int			 timeout_seconds;
	long			 output_limit;	/* bytes of stdout / response kept */
	int			 line;		/* where the section starts */
};

enum cfg_src {
	CFG_SRC_DEFAULT,
	CFG_SRC_ENV_LOW,	/* libpq's PG* variable */
	CFG_SRC_FILE,
	CFG_SRC_ENV,		/* POSTGRES_* and friends */
	CFG_SRC_DERIVED,	/* e.g. password read from password_file */
};

struct cfg;

/*
 * Load configuration.  path: -c argument or NULL to use
 * $ORCHESTRATOR_AGENT_CONFIG, then CFG_DEFAULT_PATH (which may be absent).
 * Returns a new cfg owned by the caller (free with cfg_free), or NULL with a
 * message naming FILE:LINE (or the variable) in err.
 */
struct cfg	*cfg_load(const char *path, char *err, size_t errlen);
void		 cfg_free(struct cfg *);

/* Returned strings are owned by the cfg; NULL when unset. */
const char	*cfg_str(const struct cfg *, enum cfg_id);
long long	 cfg_int(const struct cfg *, enum cfg_id);
int		 cfg_bool(const struct cfg *, enum cfg_id);
enum cfg_src	 cfg_source(const struct cfg *, enum cfg_id);
const char	*cfg_path(const struct cfg *);	/* NULL if no file read */

/* Handlers; the array and its strings are owned by the cfg. */
int		 cfg_handler_count(const struct cfg *);
const struct cfg_handler *cfg_handler_at(const struct cfg *, int);
const struct cfg_handler *cfg_handler_find(const struct cfg *, const char *);

/* Print the effective configuration with origins; secrets redacted. */
void		 cfg_show(const struct cfg *, FILE *);

/* Key metadata, for docs and tests. */
const char	*cfg_key_section(enum cfg_id);
const char	*cfg_key_name(enum cfg_id);

#endif
