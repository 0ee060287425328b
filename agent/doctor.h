/*
 * doctor.h - health checks shared by "doctor" (text or JSON for people)
 * and "metrics" (Prometheus text for node_exporter): one run of the checks
 * produces both the verdicts and the numbers behind them.
 */
#ifndef DOCTOR_H
#define DOCTOR_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>

struct cfg;
struct store;

/* Ordered by how bad: the worst status of a run wins (Nagios order). */
enum dr_status { DR_SKIPPED, DR_OK, DR_WARN, DR_UNKNOWN, DR_CRIT };

struct dr_result {
	const char	*id;		/* static, e.g. "db.connect" */
	const char	*title;		/* static */
	enum dr_status	 status;
	char		 summary[256];
	char		 detail[1024];
	char		 fix[512];
	json_object	*metrics;	/* owned; "series{labels}" -> number */
	long		 duration_ms;
};

/* What the checks share; filled as the run goes. */
struct dr_ctx {
	const struct cfg *cfg;		/* borrowed; NULL when it did not load */
	char		 cfg_err[1024];	/* why it did not load */
	PGconn		*conn;		/* owned; NULL when unreachable */
	char		 db_err[512];	/* why the connection failed */
	int		 db_tried;
	long		 connect_ms;
	struct store	*store;		/* owned; NULL until opened or on error */
	char		 store_err[512];
	int		 store_tried;
	int		 want_remote;	/* metrics: skip slow remote checks */
};

struct dr_check {
	const char	*id;
	const char	*title;
	/* Fill r (status, summary, ...); ctx is borrowed. */
	void		(*run)(struct dr_ctx *, struct dr_result *);
	int		 remote;	/* talks to Google's services */
};

/* The checks, in report order; the tables live in doctor_*.c. */
extern const struct dr_check	dr_env_checks[];
extern const size_t		dr_env_nchecks;
extern const struct dr_check	dr_package_checks[];
extern const size_t		dr_package_nchecks;
extern const struct dr_check	dr_db_checks[];
extern const size_t		dr_db_nchecks;
extern const struct dr_check	dr_queue_checks[];
extern const size_t		dr_queue_nchecks;
extern const struct dr_check	dr_backup_checks[];
extern const size_t		dr_backup_nchecks;

/* Set r's status and a printf-style summary. */
void	dr_set(struct dr_result *, enum dr_status, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* printf-style into r->detail / r->fix. */
void	dr_detail(struct dr_result *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	dr_fix(struct dr_result *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Record a number: name is a Prometheus series name, labels "" or
 * 'key="value",...'; both are copied. */
void	dr_metric(struct dr_result *, const char *name, const char *labels,
	    double value);
/* A numeric cell (NULL is 0). */
double	dr_num(const PGresult *, int row, int col);
/* A [doctor] threshold as a double. */
#define DR_TH(ctx, id)	((double)cfg_int((ctx)->cfg, (id)))

/* Status by threshold: value >= crit -> crit, >= warn -> warn; a
 * threshold <= 0 is off. */
enum dr_status dr_level(double value, double warn, double crit);

/*
 * Connect once per run (timed into ctx->connect_ms); ctx->conn, or NULL
 * with ctx->db_err saying why.
 */
PGconn	*dr_connect(struct dr_ctx *);
/*
 * The database is needed: returns ctx->conn, or NULL after marking r
 * unknown ("database unreachable") so a dead server never crashes a check.
 */
PGconn	*dr_need_db(struct dr_ctx *, struct dr_result *);
/*
 * Run sql (no parameters or nparams params) and return the result owned
 * by the caller, or NULL after marking r unknown with the server's error.
 */
PGresult *dr_query(struct dr_ctx *, struct dr_result *, const char *sql,
	    int nparams, const char *const *params);
/* The backup target, opened once; NULL (r unknown) on error. */
struct store *dr_need_store(struct dr_ctx *, struct dr_result *);

/* Run-wide options from the command line. */
struct dr_opts {
	const char	*only;		/* "id,id" or NULL */
	const char	*skip;
	int		 json;
	int		 verbose;
	int		 color;		/* decided by the caller (TTY, NO_COLOR) */
};

struct dr_run {
	struct dr_result *results;	/* owned */
	size_t		  n;
	enum dr_status	  worst;
	char		  generated_at[32];
};

/*
 * Run the selected checks.  cfg may be NULL (cfg_err says why).  Fills
 * run (free with dr_run_free).  Returns 0, or -1 with err filled when an
 * --only/--skip id is unknown.
 */
int	dr_run_checks(const struct cfg *, const char *cfg_err,
	    const struct dr_opts *, int want_remote, struct dr_run *,
	    char *err, size_t errlen);
void	dr_run_free(struct dr_run *);

/* Print for people (text) or as the documented JSON document. */
void	dr_print_text(FILE *, const struct dr_run *, const struct dr_opts *);
void	dr_print_json(FILE *, const struct dr_run *);

/* The Nagios exit code of a run: 0 ok, 1 warn, 2 crit, 3 unknown. */
int	dr_exit_code(const struct dr_run *);

const char *dr_status_name(enum dr_status);

#endif
