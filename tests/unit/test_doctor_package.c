/*
 * test_doctor_package.c - doctor's agent.package check against fixture
 * state files of the VM installer, table-driven: each branch (absent, ok,
 * refused, failed, another version, unusable files), and files written to
 * hurt: garbage, oversized, deeply nested, a FIFO, control characters and
 * broken UTF-8 in "message" that must come out escaped, never raw.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "doctor.h"
#include "helpers.h"
#include "version.h"

#define SHA	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define OBJ	"gs://bkt/packages/orchestrator-agent_x_amd64.deb"
/* An installed record; %s is the version. */
#define INSTALLED(v) "\"installed\": {\"version\": \"" v "\", \"sha256\": \"" \
	SHA "\", \"object\": \"" OBJ "\", \"at\": \"2026-12-02T18:00:00Z\"}"
#define LAST(result, msg) "\"last\": {\"result\": \"" result "\", \"at\": " \
	"\"2026-12-02T18:05:00Z\", \"object\": \"gs://bkt/packages/new.deb\", " \
	"\"version\": null, \"sha256\": null, \"message\": \"" msg "\"}"

enum kind { K_FILE, K_ABSENT, K_DIR, K_FIFO, K_BIG, K_DEEP };

struct pkg_case {
	const char	*name;
	enum kind	 kind;
	const char	*text;		/* K_FILE; "@V" is this agent's version */
	const char	*status;
	const char	*summary_has;	/* "@V" too */
	const char	*fix_has;
};

static const struct pkg_case cases[] = {
	{ "no state file: not installed by the installer", K_ABSENT, NULL,
	    "skipped", "orchestrator-agent @V, not installed by the VM "
	    "installer", NULL },
	{ "installed this version", K_FILE, "{" INSTALLED("@V") ", "
	    LAST("ok", "installed") "}", "ok", "orchestrator-agent @V "
	    "(sha256 0123456789ab...) from " OBJ ", installed "
	    "2026-12-02T18:00:00Z", NULL },
	{ "refused", K_FILE, "{" INSTALLED("0.1.0+300.gaaaaaaaaaaaa") ", "
	    LAST("refused", "sha256 mismatch") "}", "crit",
	    "the installer refused gs://bkt/packages/new.deb (sha256 "
	    "mismatch); still running 0.1.0+300.gaaaaaaaaaaaa",
	    "oa-agent-sha256" },
	{ "refused before anything was installed", K_FILE,
	    "{" LAST("refused", "not a package") "}", "crit",
	    "(not a package); still running @V",
	    "systemctl restart orchestrator-agent-install.service" },
	{ "failed", K_FILE, "{" INSTALLED("@V") ", " LAST("failed",
	    "dpkg: dependency problems") "}", "crit", "the installer failed "
	    "on gs://bkt/packages/new.deb: dpkg: dependency problems",
	    "journalctl -u orchestrator-agent-install" },
	{ "installed another version", K_FILE,
	    "{" INSTALLED("0.1.0+1.gbbbbbbbbbbbb") ", " LAST("ok", "") "}",
	    "warn", "the installer installed 0.1.0+1.gbbbbbbbbbbbb, but this "
	    "is orchestrator-agent @V", "systemctl restart "
	    "orchestrator-agent.target" },
	{ "control characters are escaped", K_FILE, "{" LAST("failed",
	    "bad\\u001b[2J\\r\\u0007\\ttab\\nline\\u007f\\u0085 \\\\ end") "}",
	    "crit", "bad\\x1b[2J\\x0d\\x07\\ttab\\nline\\x7f\\xc2\\x85 "
	    "\\\\ end", NULL },
	{ "raw bytes that are not UTF-8 are escaped", K_FILE,
	    "{" LAST("failed", "a\xff\xc2z \xe2\x82\xac") "}", "crit",
	    "a\\xff\\xc2z \xe2\x82\xac", NULL },
	{ "a long message is cut", K_FILE, NULL, "crit", "...", NULL },
	{ "empty file", K_FILE, "", "warn", "it ends inside the JSON "
	    "document", "install_state" },
	{ "garbage", K_FILE, "\x01\x02garbage\x00\xff", "warn",
	    "it is not JSON", "orchestrator-agent-install" },
	{ "cut short", K_FILE, "{\"last\": {\"result\": \"ok\"", "warn",
	    "it ends inside the JSON document", NULL },
	{ "two documents", K_FILE, "{" LAST("failed", "x") "} {}", "warn",
	    "data after the JSON document", NULL },
	{ "not an object", K_FILE, "[1, 2]", "warn",
	    "it is JSON but not an object", NULL },
	{ "no last", K_FILE, "{" INSTALLED("@V") "}", "warn",
	    "it has no \"last\" object", NULL },
	{ "unknown result", K_FILE, "{" LAST("maybe", "") "}", "warn",
	    "\"last\".\"result\" is neither ok, refused nor failed", NULL },
	{ "message of the wrong type", K_FILE, "{\"last\": {\"result\": "
	    "\"failed\", \"at\": \"x\", \"object\": \"y\", \"version\": null, "
	    "\"sha256\": null, \"message\": [\"\\u001b\"]}}", "warn",
	    "\"last\".\"message\" is not a string", NULL },
	{ "version of the wrong type", K_FILE, "{\"installed\": "
	    "{\"version\": 7, \"sha256\": \"" SHA "\", \"object\": \"o\", "
	    "\"at\": \"t\"}, " LAST("ok", "") "}", "warn",
	    "\"installed\".\"version\" is not a string", NULL },
	{ "ok without installed", K_FILE, "{" LAST("ok", "") "}", "warn",
	    "\"last\" says ok but there is no \"installed\" object", NULL },
	{ "sha256 not hex", K_FILE, "{\"installed\": {\"version\": \"@V\", "
	    "\"sha256\": \"\\u001b[31m\", \"object\": \"o\", \"at\": \"t\"}, "
	    LAST("ok", "") "}", "warn", "\"installed\".\"sha256\" is not 64 "
	    "lowercase hex digits", NULL },
	{ "a directory", K_DIR, NULL, "warn", "it is not a regular file",
	    NULL },
	{ "a FIFO does not hang doctor", K_FIFO, NULL, "warn",
	    "it is not a regular file", NULL },
	{ "oversized", K_BIG, NULL, "warn", "it is larger than 64 KiB",
	    NULL },
	{ "nested too deep", K_DEEP, NULL, "warn", "it is not JSON", NULL },
};

/* s with every "@V" replaced by this agent's version; caller frees. */
static char *
expand(const char *s)
{
	size_t	 vl = strlen(agent_version), n = strlen(s) + 1;
	char	*out, *o;

	for (const char *p = strstr(s, "@V"); p; p = strstr(p + 2, "@V"))
		n += vl;
	out = o = malloc(n);
	cr_assert_not_null(out);
	while (*s != '\0') {
		if (s[0] == '@' && s[1] == 'V') {
			memcpy(o, agent_version, vl);
			o += vl;
			s += 2;
		} else
			*o++ = *s++;
	}
	*o = '\0';
	return out;
}

static void
write_bytes(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	cr_assert_not_null(fp, "%s", path);
	cr_assert_eq(fwrite(data, 1, len, fp), len);
	fclose(fp);
}

/* Make the state file of c at path. */
static void
make_state(const struct pkg_case *c, const char *path)
{
	char	*text, *buf;
	size_t	 i, n;

	switch (c->kind) {
	case K_ABSENT:
		break;
	case K_DIR:
		cr_assert_eq(mkdir(path, 0755), 0);
		break;
	case K_FIFO:
		cr_assert_eq(mkfifo(path, 0644), 0);
		break;
	case K_BIG:
		n = 70 * 1024;
		buf = malloc(n + 64);
		i = (size_t)snprintf(buf, 64, "{\"last\": {\"message\": \"");
		memset(buf + i, 'x', n - i);
		memcpy(buf + n, "\"}}", 4);
		write_bytes(path, buf, strlen(buf));
		free(buf);
		break;
	case K_DEEP:
		n = 5000;
		buf = malloc(2 * n + 1);
		memset(buf, '[', n);
		memset(buf + n, ']', n);
		write_bytes(path, buf, 2 * n);
		free(buf);
		break;
	case K_FILE:
		if (c->text == NULL) {
			/* A long message: 5000 bytes, under the file limit. */
			buf = malloc(6000);
			n = (size_t)snprintf(buf, 6000, "{\"last\": {\"result\": "
			    "\"failed\", \"at\": \"t\", \"object\": \"o\", "
			    "\"version\": null, \"sha256\": null, \"message\": "
			    "\"");
			memset(buf + n, 'm', 5000);
			strcpy(buf + n + 5000, "\"}}");
			write_bytes(path, buf, strlen(buf));
			free(buf);
			break;
		}
		/* "garbage" holds a NUL: all of it, as it is. */
		if (strcmp(c->name, "garbage") == 0) {
			write_bytes(path, c->text,
			    sizeof("\x01\x02garbage\x00\xff") - 1);
			break;
		}
		text = expand(c->text);
		write_bytes(path, text, strlen(text));
		free(text);
		break;
	}
}

/* No terminal control characters, no bytes that are not UTF-8. */
static void
assert_printable(const char *name, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len; i++) {
		cr_assert(p[i] == '\n' || (p[i] >= 0x20 && p[i] != 0x7f),
		    "%s: raw control character 0x%02x at %zu", name, p[i], i);
		cr_assert(p[i] != 0xff && !(p[i] == 0xc2 && i + 1 < len &&
		    p[i + 1] >= 0x80 && p[i + 1] <= 0x9f),
		    "%s: raw byte 0x%02x at %zu", name, p[i], i);
	}
}

Test(doctor_package, fixtures, .timeout = 30)
{
	const struct pkg_case	*c;
	struct dr_opts		 o = { .only = "agent.package" };
	struct dr_run		 run;
	struct cfg		*cfg;
	json_object		*doc;
	char			 dir[] = "/tmp/oa-pkg-XXXXXX", path[128];
	char			 ini[256], err[512], *cfgpath, *want, *out;
	const char		*status, *summary;
	size_t			 i, outlen;
	FILE			*fp;
	int			 dirty = strstr(agent_version, "+dirty") != NULL;

	cr_assert_not_null(mkdtemp(dir));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		snprintf(path, sizeof(path), "%s/state-%zu.json", dir, i);
		make_state(c, path);
		snprintf(ini, sizeof(ini), "[doctor]\ninstall_state = %s\n",
		    path);
		cfgpath = write_temp(ini, 0600);
		cfg = cfg_load(cfgpath, err, sizeof(err));
		cr_assert_not_null(cfg, "%s", err);
		cr_assert_eq(dr_run_checks(cfg, NULL, &o, 0, &run, err,
		    sizeof(err)), 0, "%s", err);
		cr_assert_eq(run.n, 1);
		/*
		 * Built from a modified tree (make check before a commit),
		 * this binary's own version warns where a clean one is ok;
		 * tests/deb/version.sh sees both from the binary.
		 */
		status = c->status;
		summary = c->summary_has;
		if (dirty && strcmp(status, "ok") == 0) {
			status = "warn";
			summary = "was built from a tree with uncommitted "
			    "changes";
		}
		cr_expect_str_eq(dr_status_name(run.results[0].status),
		    status, "%s: %s (%s)", c->name,
		    dr_status_name(run.results[0].status),
		    run.results[0].summary);
		want = expand(summary);
		cr_expect(strstr(run.results[0].summary, want) != NULL,
		    "%s: summary \"%s\" lacks \"%s\"", c->name,
		    run.results[0].summary, want);
		free(want);
		if (c->fix_has != NULL)
			cr_expect(strstr(run.results[0].fix, c->fix_has) !=
			    NULL, "%s: fix \"%s\" lacks \"%s\"", c->name,
			    run.results[0].fix, c->fix_has);
		if (run.results[0].status >= DR_WARN)
			cr_expect(run.results[0].fix[0] != '\0',
			    "%s: a problem without a fix", c->name);

		/* What people see: nothing raw from the file. */
		fp = open_memstream(&out, &outlen);
		dr_print_text(fp, &run, &o);
		fclose(fp);
		assert_printable(c->name, out, outlen);
		free(out);
		/* What machines see: valid JSON, the same summary. */
		fp = open_memstream(&out, &outlen);
		dr_print_json(fp, &run);
		fclose(fp);
		assert_printable(c->name, out, outlen);
		doc = json_tokener_parse(out);
		cr_expect_not_null(doc, "%s: --json is not JSON: %s", c->name,
		    out);
		json_object_put(doc);
		free(out);

		dr_run_free(&run);
		cfg_free(cfg);
		unlink(cfgpath);
		free(cfgpath);
		if (c->kind == K_DIR)
			rmdir(path);
		else
			unlink(path);
	}
	rmdir(dir);
}

/* The installer's own file is world-readable; if not, say so. */
Test(doctor_package, unreadable_file_warns, .timeout = 10)
{
	struct dr_opts	 o = { .only = "agent.package" };
	struct dr_run	 run;
	struct cfg	*cfg;
	char		 ini[256], err[512], *state, *cfgpath;

	if (geteuid() == 0)
		cr_skip_test("root reads any file");
	state = write_temp("{}", 0000);
	snprintf(ini, sizeof(ini), "[doctor]\ninstall_state = %s\n", state);
	cfgpath = write_temp(ini, 0600);
	cfg = cfg_load(cfgpath, err, sizeof(err));
	cr_assert_not_null(cfg, "%s", err);
	cr_assert_eq(dr_run_checks(cfg, NULL, &o, 0, &run, err, sizeof(err)),
	    0);
	cr_expect_eq(run.results[0].status, DR_WARN);
	cr_expect(strstr(run.results[0].summary, "cannot open it: Permission "
	    "denied") != NULL, "%s", run.results[0].summary);
	cr_expect(strstr(run.results[0].summary, state) != NULL, "%s",
	    run.results[0].summary);
	dr_run_free(&run);
	cfg_free(cfg);
	unlink(state);
	unlink(cfgpath);
	free(state);
	free(cfgpath);
}
