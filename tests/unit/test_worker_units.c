/*
 * test_worker_units.c - pieces of the worker that need no database:
 * command splitting and running, backoff, handler configuration, array
 * literals.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "handler.h"
#include "helpers.h"
#include "proc.h"
#include "taskdb.h"

struct split_case {
	const char	*cmd;
	const char	*want;	/* words joined by '|', or NULL for an error */
	const char	*err;	/* substring of the error */
};

static const struct split_case split_cases[] = {
	{ "/bin/echo a b", "/bin/echo|a|b", NULL },
	{ "  tool   --x=1\t y ", "tool|--x=1|y", NULL },
	{ "/bin/sh -c 'echo \"hi\" | wc -c'", "/bin/sh|-c|echo \"hi\" | wc -c", NULL },
	{ "a \"b c\" 'd e' f\\ g", "a|b c|d e|f g", NULL },
	{ "a \"q\\\"uote\"", "a|q\"uote", NULL },
	{ "a ''", "a|", NULL },
	{ "tool a|b", NULL, "'|' needs a shell" },
	{ "tool > out", NULL, "'>' needs a shell" },
	{ "tool $HOME", NULL, "'$' needs a shell" },
	{ "tool *.json", NULL, "'*' needs a shell" },
	{ "a \"$HOME\"", NULL, "would need a shell to expand" },
	{ "a 'unterminated", NULL, "unterminated ' quote" },
	{ "a \"unterminated", NULL, "unterminated \" quote" },
	{ "a \\", NULL, "ends with a backslash" },
	{ "   ", NULL, "command is empty" },
};

Test(units, proc_split_table)
{
	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const struct split_case *c = &split_cases[i];
		char err[256] = "", joined[512] = "";
		char **argv = proc_split(c->cmd, err, sizeof(err));

		if (c->want == NULL) {
			cr_expect_null(argv, "case %zu (%s) accepted", i, c->cmd);
			cr_expect(strstr(err, c->err) != NULL, "case %zu: '%s' lacks '%s'", i, err, c->err);
			proc_argv_free(argv);
			continue;
		}
		cr_expect_not_null(argv, "case %zu (%s): %s", i, c->cmd, err);
		if (argv == NULL)
			continue;
		for (char **a = argv; *a; a++) {
			if (a != argv)
				strcat(joined, "|");
			strcat(joined, *a);
		}
		cr_expect_str_eq(joined, c->want, "case %zu", i);
		proc_argv_free(argv);
	}
}

Test(units, backoff_is_exponential_capped_and_jittered)
{
	/* attempt n waits between d/2 and d, d = base * 2^(n-1), capped. */
	struct { int attempt; long lo, hi; } t[] = {
		{ 1, 500, 1000 }, { 2, 1000, 2000 }, { 3, 2000, 4000 },
		{ 4, 4000, 8000 }, { 5, 4000, 8000 }, { 30, 4000, 8000 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		cr_expect_eq(handler_backoff_ms(1000, 8000, t[i].attempt, 0.0), t[i].lo);
		cr_expect_eq(handler_backoff_ms(1000, 8000, t[i].attempt, 0.999999), t[i].hi - 1);
		long mid = handler_backoff_ms(1000, 8000, t[i].attempt, 0.5);
		cr_expect(mid > t[i].lo && mid < t[i].hi);
	}
	cr_expect_eq(handler_backoff_ms(0, 0, 3, 0.7), 0);
}

Test(units, array_literal_escaping)
{
	const char *v[] = { "a", "b\"c", "d\\e", NULL, "", "x,y" };
	char *s = taskdb_array(v, 6);

	cr_assert_str_eq(s, "{\"a\",\"b\\\"c\",\"d\\\\e\",NULL,\"\",\"x,y\"}");
	free(s);
	s = taskdb_array(v, 0);
	cr_assert_str_eq(s, "{}");
	free(s);
}

struct hcfg_case {
	const char	*text;
	const char	*err;	/* NULL: valid */
};

static const struct hcfg_case hcfg_cases[] = {
	{ "[handler.a]\nkind = noop\n", NULL },
	{ "[handler.a]\nkind = exec\ncommand = /bin/true\ntimeout_seconds = 5\n", NULL },
	{ "[handler.a]\nkind = http\nurl = https://x.internal/t\n", NULL },
	{ "[handler.a]\n", ":1: [handler.a] has no kind" },
	{ "[handler.a]\nkind = exec\n", ":1: [handler.a] kind = exec needs command" },
	{ "[handler.a]\nkind = exec\ncommand = a | b\n", "'|' needs a shell" },
	{ "[handler.a]\nkind = http\nurl = ftp://x\n", "kind = http needs url = http(s)://" },
	{ "[handler.a]\nkind = noop\nurl = http://x\n", "kind = noop takes neither" },
	{ "[handler.a]\nkind = http\nurl = http://x\ncommand = /bin/true\n", "command does not apply" },
	{ "[handler.a]\nkind = exec\ncommand = x\nurl = http://y\n", "url does not apply" },
	{ "[handler.a]\nkind = exec\ncommand = x\ntimeout_seconds = 0\n", ":4: [handler.a] timeout_seconds: 0 is out of range" },
	{ "[handler.a]\nkind = fancy\n", ":2: [handler.a] kind: 'fancy' is not one of exec|http|noop" },
	{ "[handler.a]\nkind = noop\nflavour = x\n", ":3: unknown key 'flavour' in section [handler.a]" },
	{ "[handler.]\nkind = noop\n", ":1: unknown section [handler.]" },
	{ "[handler.a b]\nkind = noop\n", ":1: unknown section [handler.a b]" },
	{ "[handler.a]\nkind = noop\nkind = exec\n", ":3: handler.a.kind is set twice (first on line 2)" },
	{ "[worker]\nconcurrency = 0\n", ":2: worker.concurrency: 0 is out of range" },
	{ "[worker]\nlisten = maybe\n", ":2: worker.listen: 'maybe' is not a boolean" },
};

Test(units, handler_config_table)
{
	for (size_t i = 0; i < sizeof(hcfg_cases) / sizeof(hcfg_cases[0]); i++) {
		char err[1024] = "";
		char *path = write_temp(hcfg_cases[i].text, 0600);
		struct cfg *cfg = cfg_load(path, err, sizeof(err));

		if (hcfg_cases[i].err == NULL) {
			cr_expect_not_null(cfg, "case %zu: %s", i, err);
		} else {
			cr_expect_null(cfg, "case %zu accepted", i);
			cr_expect(strstr(err, hcfg_cases[i].err) != NULL,
			    "case %zu: '%s' lacks '%s'", i, err, hcfg_cases[i].err);
		}
		cfg_free(cfg);
		unlink(path);
		free(path);
	}
}

Test(units, handler_lookup)
{
	char err[512];
	char *path = write_temp("[handler.consumer_triage]\nkind = exec\ncommand = /usr/bin/triage --consumer  # comment\n"
	    "timeout_seconds = 7\noutput_limit_kib = 2\n[handler.noop]\nkind = noop\n", 0600);
	struct cfg *cfg = cfg_load(path, err, sizeof(err));
	const struct cfg_handler *h;

	cr_assert_not_null(cfg, "%s", err);
	cr_assert_eq(cfg_handler_count(cfg), 2);
	h = cfg_handler_find(cfg, "consumer_triage");
	cr_assert_not_null(h);
	cr_assert_eq(h->kind, HANDLER_EXEC);
	cr_assert_str_eq(h->command, "/usr/bin/triage --consumer");
	cr_assert_eq(h->timeout_seconds, 7);
	cr_assert_eq(h->output_limit, 2048);
	cr_assert_eq(cfg_handler_find(cfg, "noop")->kind, HANDLER_NOOP);
	cr_assert_null(cfg_handler_find(cfg, "other"));
	cfg_free(cfg);
	unlink(path);
	free(path);
}

/* proc_run: status, stdout, stderr tail; a daemon it leaves does not hold it. */
Test(proc, run_to_completion, .timeout = 20)
{
	static const struct {
		const char *argv[5];
		int status;
		const char *out, *err;
	} t[] = {
		{ { "sh", "-c", "echo out; echo err >&2; exit 3", NULL }, 3, "out\n", "err" },
		{ { "true", NULL }, 0, "", "" },
		{ { "sh", "-c", "kill -TERM $$", NULL }, 128 + 15, "", "" },
		{ { "no-such-program-oa", NULL }, -1, "", "not found" },
		/* A child left running with the pipes open (like pg_ctl start). */
		{ { "sh", "-c", "sleep 10 & echo started", NULL }, 0, "started\n", "" },
	};
	char out[256], err[256];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int st = proc_run((char *const *)t[i].argv, out, sizeof(out), err, sizeof(err));

		cr_expect_eq(st, t[i].status, "case %zu: %d (%s)", i, st, err);
		if (st != -1)
			cr_expect_str_eq(out, t[i].out, "case %zu", i);
		cr_expect(strstr(err, t[i].err) != NULL, "case %zu: %s", i, err);
	}
}
