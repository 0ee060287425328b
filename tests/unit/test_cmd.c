/*
 * test_cmd.c - the command table, help generated from it, exit codes.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "cmd.h"
#include "helpers.h"

static const char *const names[] = { "schema", "config", "help", "version",
    "maintain", "bootstrap" };

static char *
capture_list(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);

	cmd_list(fp);
	fclose(fp);
	return buf;
}

Test(cmd, every_command_is_in_the_table_and_in_help)
{
	char *list = capture_list();

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct cmd *c = cmd_find(names[i]);

		cr_assert_not_null(c, "%s missing from table", names[i]);
		cr_assert(c->summary && *c->summary && c->help && *c->help);
		cr_assert(strstr(list, c->summary) != NULL);
	}
	cr_assert_null(cmd_find("nosuch"));
	cr_assert_null(cmd_find(""));
	/* Exit codes are documented in help. */
	for (int code = 64; code <= 78; code++) {
		char want[8];

		if (code != 64 && code != 65 && code != 69 && code != 70 &&
		    code != 75 && code != 78)
			continue;
		snprintf(want, sizeof(want), "  %d ", code);
		cr_assert(strstr(list, want) != NULL, "exit code %d undocumented", code);
	}
	free(list);
}

struct dispatch_case {
	const char	*argv[4];
	int		 want;
};

static const struct dispatch_case dispatch_cases[] = {
	{ { "nosuch" }, EX_USAGE },
	{ { "help", "nosuch" }, EX_USAGE },
	{ { "help", "a", "b" }, EX_USAGE },
	{ { "help" }, EX_OK },
	{ { "help", "schema" }, EX_OK },
	{ { "schema", "--help" }, EX_OK },
	{ { "config", "-h" }, EX_OK },
	{ { "version" }, EX_OK },
	{ { "version", "x" }, EX_USAGE },
	{ { "config" }, EX_USAGE },
	{ { "config", "frobnicate" }, EX_USAGE },
	{ { "schema" }, EX_USAGE },
	{ { "schema", "drop" }, EX_USAGE },
	{ { "schema", "init", "extra" }, EX_USAGE },
	{ { "schema", "init", "--json" }, EX_USAGE },
	{ { "schema", "status", "--bogus" }, EX_USAGE },
	{ { "maintain", "bogus" }, EX_USAGE },
	{ { "maintain", "--frob" }, EX_USAGE },
	{ { "maintain", "cleanup", "vacuum" }, EX_USAGE },
	{ { "maintain", "--dry-run", "x" }, EX_USAGE },
	{ { "maintain", "--help" }, EX_OK },
};

Test(cmd, dispatch_exit_codes, .init = cr_redirect_stdout)
{
	for (size_t i = 0; i < sizeof(dispatch_cases) / sizeof(dispatch_cases[0]); i++) {
		const struct dispatch_case *c = &dispatch_cases[i];
		struct agent a = { 0 };
		char *argv[5] = { 0 };
		int argc = 0;

		while (argc < 4 && c->argv[argc]) {
			argv[argc] = (char *)c->argv[argc];
			argc++;
		}
		cr_expect_eq(cmd_dispatch(&a, argc, argv), c->want,
		    "case %zu (%s %s)", i, c->argv[0], c->argv[1] ? c->argv[1] : "");
		agent_free(&a);
	}
}

Test(cmd, config_check_on_bad_file_is_78)
{
	char *path = write_temp("[database]\nhost = x\nunknown_key = 1\n", 0600);
	struct agent a = { .config_path = path };
	char *argv[] = { "config", "check", NULL };

	cr_assert_eq(cmd_dispatch(&a, 2, argv), EX_CONFIG);
	agent_free(&a);
	unlink(path);
	free(path);
}
