/*
 * cmd_schema.c - "schema init" and "schema status".
 */
#include <getopt.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cfg.h"
#include "cmd.h"
#include "db.h"
#include "migrate.h"

static int
schema_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct cfg	*cfg;
	PGconn		*conn = NULL;
	const char	*sub;
	int		 rc, ch, json = 0;

	if (argc < 2)
		return cmd_usage_error(&cmd_schema, "expected 'init' or "
		    "'status'");
	sub = argv[1];
	if (strcmp(sub, "init") != 0 && strcmp(sub, "status") != 0)
		return cmd_usage_error(&cmd_schema, "unknown subcommand '%s'",
		    sub);
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc - 1, argv + 1, "+", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 'j' && strcmp(sub, "status") == 0)
			json = 1;
		else
			return cmd_usage_error(&cmd_schema, "unknown option "
			    "'%s' for 'schema %s'", argv[optind], sub);
	}
	if (optind + 1 != argc)
		return cmd_usage_error(&cmd_schema, "unexpected argument '%s'",
		    argv[optind + 1]);
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		return rc;
	conn = db_connect(cfg, "schema");
	if (conn == NULL)
		return EX_UNAVAILABLE;
	if (strcmp(sub, "init") == 0)
		rc = migrate_apply(conn, stdout);
	else
		rc = migrate_status(conn, stdout, json);
	PQfinish(conn);
	return rc;
}

const struct cmd cmd_schema = {
	"schema", "init | status [--json]", "apply or list schema migrations",
	"init: apply the pending migrations built into this binary, each in "
	"its own transaction, under an advisory lock so several agents "
	"starting at once never race; each is recorded in schema_migrations "
	"with its SHA-256.  A second run applies nothing and says so.  If an "
	"applied migration no longer matches this binary's copy, or the "
	"database has one this agent does not know, nothing is applied "
	"(exit 65).\n"
	"status: list every migration as applied, pending, changed or "
	"unknown.",
	schema_run,
};
