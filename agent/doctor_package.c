/*
 * doctor_package.c - the installed package: this binary's version and what
 * the VM installer (orchestrator-agent-install.service) last did, from the
 * state file it writes ([doctor] install_state):
 *
 *   {"installed": {"version", "sha256", "object", "at"},
 *    "last": {"result": "ok"|"refused"|"failed", "at", "object",
 *             "version" or null, "sha256" or null, "message"}}
 *
 * "installed" is absent until a package went in.  The file is another
 * program's output, so it is read with limits and every string from it is
 * escaped before it reaches a terminal: a control character in "message"
 * must not be able to rewrite the screen of whoever runs doctor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "doctor.h"
#include "version.h"

/* The installer's file is a few hundred bytes; more is not its file. */
#define STATE_MAX	(64 * 1024)
/* Enough of any one field for a line of doctor's output. */
#define FIELD_MAX	200

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t	len, i;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates, past U+10FFFF; C1 controls too. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff ||
	    (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

/*
 * s made printable into buf: control characters, DEL, C1 controls and
 * bytes that are not UTF-8 become \n, \t or \xNN; longer than FIELD_MAX
 * bytes is cut with "...".  NULL is "(none)".
 */
static const char *
printable(const char *s, char *buf, size_t size)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 o = 0, n, len, in = 0;

	if (s == NULL)
		return "(none)";
	len = strlen(s);
	while (in < len) {
		if (in >= FIELD_MAX || o + 8 >= size) {
			snprintf(buf + o, size - o, "...");
			return buf;
		}
		n = utf8_len(p + in, len - in);
		if (n == 1 && p[in] >= 0x20 && p[in] != 0x7f && p[in] != '\\') {
			buf[o++] = (char)p[in];
		} else if (n > 1) {
			memcpy(buf + o, p + in, n);
			o += n;
		} else {
			n = 1;
			if (p[in] == '\n')
				o += snprintf(buf + o, size - o, "\\n");
			else if (p[in] == '\t')
				o += snprintf(buf + o, size - o, "\\t");
			else if (p[in] == '\\')
				o += snprintf(buf + o, size - o, "\\\\");
			else
				o += snprintf(buf + o, size - o, "\\x%02x",
				    p[in]);
		}
		in += n;
	}
	buf[o] = '\0';
	return buf;
}

/*
 * The string under key of o: 0 with *v set (NULL when null and
 * null_ok), or -1 with why saying what is wrong.
 */
static int
member(json_object *o, const char *obj, const char *key, int null_ok,
    const char **v, char *why, size_t whylen)
{
	json_object *m;

	*v = NULL;
	if (!json_object_object_get_ex(o, key, &m)) {
		snprintf(why, whylen, "\"%s\" has no \"%s\"", obj, key);
		return -1;
	}
	if (m == NULL && null_ok)
		return 0;
	if (!json_object_is_type(m, json_type_string)) {
		snprintf(why, whylen, "\"%s\".\"%s\" is not a string%s", obj,
		    key, null_ok ? " or null" : "");
		return -1;
	}
	*v = json_object_get_string(m);
	return 0;
}

static int
is_sha256(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0')
			return 0;
	return s[64] == '\0';
}

/*
 * Read and parse path: 0 with *doc (the caller puts it), 1 when the file
 * does not exist, -1 with why.  A FIFO or device named by mistake (or on
 * purpose) must not hang or flood doctor: regular files only, and only
 * STATE_MAX bytes.
 */
static int
state_load(const char *path, json_object **doc, char *why, size_t whylen)
{
	struct json_tokener	*tok = NULL;
	struct stat		 st;
	char			*buf = NULL;
	ssize_t			 n;
	size_t			 len = 0, off;
	int			 fd, rc = -1;

	*doc = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 1;
		snprintf(why, whylen, "cannot open it: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "it is not a regular file");
		goto out;
	}
	if ((buf = malloc(STATE_MAX + 1)) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	while (len <= STATE_MAX && (n = read(fd, buf + len,
	    STATE_MAX + 1 - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(why, whylen, "cannot read it: %s",
			    strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len > STATE_MAX) {
		snprintf(why, whylen, "it is larger than %d KiB", STATE_MAX / 1024);
		goto out;
	}
	if ((tok = json_tokener_new()) == NULL) {
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	*doc = json_tokener_parse_ex(tok, buf, (int)len);
	if (*doc == NULL && json_tokener_get_error(tok) ==
	    json_tokener_continue) {
		snprintf(why, whylen, "it ends inside the JSON document "
		    "(%zu bytes; cut short?)", len);
		goto out;
	}
	if (*doc == NULL) {
		snprintf(why, whylen, "it is not JSON (%s at byte %zu)",
		    json_tokener_error_desc(json_tokener_get_error(tok)),
		    json_tokener_get_parse_end(tok));
		goto out;
	}
	/* One document: a second one or junk after it is not the format. */
	for (off = json_tokener_get_parse_end(tok); off < len; off++)
		if (buf[off] != ' ' && buf[off] != '\t' && buf[off] != '\r' &&
		    buf[off] != '\n') {
			snprintf(why, whylen, "it has data after the JSON "
			    "document (byte %zu)", off);
			goto out;
		}
	if (!json_object_is_type(*doc, json_type_object)) {
		snprintf(why, whylen, "it is JSON but not an object");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0) {
		json_object_put(*doc);
		*doc = NULL;
	}
	if (tok != NULL)
		json_tokener_free(tok);
	free(buf);
	close(fd);
	return rc;
}

/* The installer's record, checked for types; strings borrowed from doc. */
struct install {
	const char	*version, *sha256, *object, *at;	/* NULL: none */
	const char	*result, *last_at, *last_object, *message;
};

static int
state_fields(json_object *doc, struct install *in, char *why, size_t whylen)
{
	json_object	*inst, *last;
	const char	*unused;

	memset(in, 0, sizeof(*in));
	if (!json_object_object_get_ex(doc, "last", &last) ||
	    !json_object_is_type(last, json_type_object)) {
		snprintf(why, whylen, "it has no \"last\" object");
		return -1;
	}
	if (member(last, "last", "result", 0, &in->result, why, whylen) ||
	    member(last, "last", "at", 0, &in->last_at, why, whylen) ||
	    member(last, "last", "object", 0, &in->last_object, why,
	    whylen) ||
	    member(last, "last", "message", 0, &in->message, why, whylen) ||
	    member(last, "last", "version", 1, &unused, why, whylen) ||
	    member(last, "last", "sha256", 1, &unused, why, whylen))
		return -1;
	if (strcmp(in->result, "ok") != 0 &&
	    strcmp(in->result, "refused") != 0 &&
	    strcmp(in->result, "failed") != 0) {
		snprintf(why, whylen, "\"last\".\"result\" is neither ok, "
		    "refused nor failed");
		return -1;
	}
	if (!json_object_object_get_ex(doc, "installed", &inst)) {
		if (strcmp(in->result, "ok") == 0) {
			snprintf(why, whylen, "\"last\" says ok but there is "
			    "no \"installed\" object");
			return -1;
		}
		return 0;
	}
	if (!json_object_is_type(inst, json_type_object)) {
		snprintf(why, whylen, "\"installed\" is not an object");
		return -1;
	}
	if (member(inst, "installed", "version", 0, &in->version, why,
	    whylen) ||
	    member(inst, "installed", "sha256", 0, &in->sha256, why, whylen) ||
	    member(inst, "installed", "object", 0, &in->object, why, whylen) ||
	    member(inst, "installed", "at", 0, &in->at, why, whylen))
		return -1;
	if (!is_sha256(in->sha256)) {
		snprintf(why, whylen, "\"installed\".\"sha256\" is not 64 "
		    "lowercase hex digits");
		return -1;
	}
	return 0;
}

static void
check_package(struct dr_ctx *ctx, struct dr_result *r)
{
	const char	*path = cfg_str(ctx->cfg, CFG_D_INSTALL_STATE);
	json_object	*doc = NULL;
	struct install	 in;
	char		 why[512], p[4 * FIELD_MAX + 8], v[4 * FIELD_MAX + 8];
	char		 o[4 * FIELD_MAX + 8], m[4 * FIELD_MAX + 8];
	char		 at[4 * FIELD_MAX + 8];
	const char	*running;

	switch (state_load(path, &doc, why, sizeof(why))) {
	case 1:
		dr_set(r, DR_SKIPPED, "orchestrator-agent %s, not installed "
		    "by the VM installer (no %s)", agent_version,
		    printable(path, p, sizeof(p)));
		goto out;
	case -1:
		goto bad;
	}
	if (state_fields(doc, &in, why, sizeof(why)) == -1)
		goto bad;

	dr_metric(r, "orchestrator_agent_install_last_ok", "",
	    strcmp(in.result, "ok") == 0);
	running = in.version != NULL ? in.version : agent_version;
	if (strcmp(in.result, "refused") == 0) {
		dr_set(r, DR_CRIT, "the installer refused %s (%s); still "
		    "running %s", printable(in.last_object, o, sizeof(o)),
		    printable(in.message, m, sizeof(m)),
		    printable(running, v, sizeof(v)));
		dr_detail(r, "at %s, recorded in %s",
		    printable(in.last_at, at, sizeof(at)),
		    printable(path, p, sizeof(p)));
		dr_fix(r, "check the package Terraform uploaded (the VM's "
		    "oa-agent-package and oa-agent-sha256 metadata must name "
		    "the same .deb), then: systemctl restart "
		    "orchestrator-agent-install.service");
		goto out;
	}
	if (strcmp(in.result, "failed") == 0) {
		dr_set(r, DR_CRIT, "the installer failed on %s: %s; still "
		    "running %s", printable(in.last_object, o, sizeof(o)),
		    printable(in.message, m, sizeof(m)),
		    printable(running, v, sizeof(v)));
		dr_detail(r, "at %s, recorded in %s",
		    printable(in.last_at, at, sizeof(at)),
		    printable(path, p, sizeof(p)));
		dr_fix(r, "read why in journalctl -u "
		    "orchestrator-agent-install, fix it, then: systemctl "
		    "restart orchestrator-agent-install.service");
		goto out;
	}
	if (strcmp(in.version, agent_version) != 0) {
		dr_set(r, DR_WARN, "the installer installed %s, but this is "
		    "orchestrator-agent %s", printable(in.version, v,
		    sizeof(v)), agent_version);
		dr_detail(r, "from %s at %s", printable(in.object, o,
		    sizeof(o)), printable(in.at, at, sizeof(at)));
		dr_fix(r, "if /usr/bin/orchestrator-agent --version says %s, "
		    "workers may still run the old binary: systemctl restart "
		    "orchestrator-agent.target; else run doctor from "
		    "/usr/bin", v);
		goto out;
	}
	if (strstr(in.version, "+dirty") != NULL) {
		dr_set(r, DR_WARN, "orchestrator-agent %s was built from a "
		    "tree with uncommitted changes", agent_version);
		dr_detail(r, "from %s at %s", printable(in.object, o,
		    sizeof(o)), printable(in.at, at, sizeof(at)));
		dr_fix(r, "commit the changes (or git stash them), build "
		    "the package again and let Terraform upload it: a "
		    "+dirty version names no commit");
		goto out;
	}
	dr_set(r, DR_OK, "orchestrator-agent %s (sha256 %.12s...) from %s, "
	    "installed %s", agent_version, in.sha256, printable(in.object, o,
	    sizeof(o)), printable(in.at, at, sizeof(at)));
	goto out;
bad:
	dr_set(r, DR_WARN, "cannot use the installer's state %s: %s",
	    printable(path, p, sizeof(p)), why);
	dr_detail(r, "this is orchestrator-agent %s", agent_version);
	dr_fix(r, "orchestrator-agent-install.service writes the file; "
	    "systemctl restart orchestrator-agent-install.service rewrites "
	    "it (see journalctl -u orchestrator-agent-install); [doctor] "
	    "install_state names another path");
out:
	json_object_put(doc);
}

const struct dr_check dr_package_checks[] = {
	{ "agent.package", "installed package", check_package, 0 },
};
const size_t dr_package_nchecks = sizeof(dr_package_checks) /
    sizeof(dr_package_checks[0]);
