/*
 * cmd.h - the command table; it dispatches and also generates help.
 */
#ifndef CMD_H
#define CMD_H

#include <stdio.h>

struct cfg;

/* Process-wide state shared by commands. */
struct agent {
	const char	*config_path;	/* -c FILE, or NULL; borrowed from argv */
	struct cfg	*cfg;		/* owned; loaded on first agent_cfg() */
};

struct cmd {
	const char	*name;
	const char	*usage;		/* arguments after the name */
	const char	*summary;	/* one line for the command list */
	const char	*help;		/* paragraph(s) for help COMMAND */
	int		(*run)(struct agent *, int argc, char **argv);
};

/*
 * Load the configuration once.  On success *cfg is borrowed from agent and
 * EX_OK is returned; otherwise the error (naming FILE:LINE) is logged and
 * EX_CONFIG returned.
 */
int	agent_cfg(struct agent *, struct cfg **);
void	agent_free(struct agent *);

/* Look up a command by exact name; NULL if unknown. */
const struct cmd *cmd_find(const char *);

/* Run argv[0] with its arguments; returns a sysexits code. */
int	cmd_dispatch(struct agent *, int argc, char **argv);

void	cmd_usage(FILE *, const struct cmd *);
void	cmd_list(FILE *);

/*
 * Report a usage error for c ("config: unknown subcommand 'x'") with its
 * usage line, and return EX_USAGE.
 */
int	cmd_usage_error(const struct cmd *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

extern const struct cmd cmd_bootstrap;
extern const struct cmd cmd_cancel;
extern const struct cmd cmd_backup;
extern const struct cmd cmd_config;
extern const struct cmd cmd_doctor;
extern const struct cmd cmd_metrics;
extern const struct cmd cmd_restore;
extern const struct cmd cmd_run;
extern const struct cmd cmd_enqueue;
extern const struct cmd cmd_help;
extern const struct cmd cmd_list_tasks;
extern const struct cmd cmd_maintain;
extern const struct cmd cmd_reset_stuck;
extern const struct cmd cmd_retry;
extern const struct cmd cmd_schema;
extern const struct cmd cmd_stats;
extern const struct cmd cmd_status;
extern const struct cmd cmd_version;
extern const struct cmd cmd_worker;

#endif
