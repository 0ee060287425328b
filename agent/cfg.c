/*
 * cfg.c - configuration: the INI file and the environment read against the
 * key table in cfg_keys.c (pgbouncer's manner), provenance, reload.
 *
 * The INI file is read with inih through our own line reader so that we
 * know the line of every entry (Debian builds inih without
 * INI_HANDLER_LINENO), can strip '#' inline comments, and can refuse
 * indented lines being glued onto the previous key as inih's multi-line
 * continuation would otherwise do.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"
#include "cfg_keys.h"
#include "proc.h"
#include "secret.h"

#define HANDLER_PREFIX		"handler."
#define HANDLER_PREFIX_LEN	8
#define MAX_HANDLERS		64

struct cfg_val {
	char		*str;
	long long	 num;
	enum cfg_src	 src;
	int		 line;
	const char	*env;	/* static: points into cfg_keys[] */
};

struct cfg_hsec {
	char		*type;
	int		 line;
	struct cfg_val	 v[HK_N];
};

struct cfg {
	char			*path;
	struct cfg_val		 v[CFG_NKEYS];
	struct cfg_hsec		 hs[MAX_HANDLERS];
	int			 nhs;
	struct cfg_handler	 handlers[MAX_HANDLERS];
};

struct parse_state {
	struct cfg	*cfg;
	FILE		*fp;
	char		*buf;
	size_t		 bufcap;
	int		 lineno;
	int		 err_line;
	char		 err[512];
};

static int
key_find(const char *section, const char *name)
{
	int i;

	for (i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].section, section) == 0 &&
		    strcmp(cfg_keys[i].name, name) == 0)
			return i;
	return -1;
}

/* A task type: what [handler.TYPE] may name (tasks.task_type is 50 long). */
static int
type_name_ok(const char *t)
{
	size_t n = strlen(t);

	return n > 0 && n <= 50 && strspn(t, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int
section_known(const char *section)
{
	int i;

	if (strncmp(section, HANDLER_PREFIX, HANDLER_PREFIX_LEN) == 0)
		return type_name_ok(section + HANDLER_PREFIX_LEN);
	for (i = 0; i < CFG_NKEYS; i++)
		if (strcmp(cfg_keys[i].section, section) == 0)
			return 1;
	return 0;
}

static int
hkey_find(const char *name)
{
	int i;

	for (i = 0; i < HK_N; i++)
		if (strcmp(cfg_hkeys[i].name, name) == 0)
			return i;
	return -1;
}

static int
choice_ok(const char *choices, const char *value)
{
	size_t		 n = strlen(value);
	const char	*p = choices;

	while (p != NULL && *p != '\0') {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && strncmp(p, value, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

static int
parse_bool(const char *s, long long *out)
{
	static const char *yes[] = { "1", "on", "yes", "true" };
	static const char *no[] = { "0", "off", "no", "false" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Validate value for key k; on success store it in v with its origin. */
static int
val_store(const struct cfg_key *k, struct cfg_val *v, const char *value,
    enum cfg_src src, int line, const char *env, char *err, size_t errlen)
{
	long long		 num = 0;
	char			*end, *copy, *msg = NULL, why[300];
	PQconninfoOption	*opts;

	switch (k->type) {
	case T_INT:
		errno = 0;
		num = strtoll(value, &end, 10);
		if (*value == '\0' || *end != '\0' || errno != 0) {
			snprintf(err, errlen, "%s.%s: '%s' is not a whole "
			    "number", k->section, k->name, value);
			return -1;
		}
		if (num < k->min || num > k->max) {
			snprintf(err, errlen, "%s.%s: %lld is out of range "
			    "(%lld to %lld)", k->section, k->name, num, k->min,
			    k->max);
			return -1;
		}
		break;
	case T_BOOL:
		if (parse_bool(value, &num) == -1) {
			snprintf(err, errlen, "%s.%s: '%s' is not a boolean "
			    "(use on or off)", k->section, k->name, value);
			return -1;
		}
		break;
	case T_ENUM:
		if (!choice_ok(k->choices, value)) {
			snprintf(err, errlen, "%s.%s: '%s' is not one of %s",
			    k->section, k->name, value, k->choices);
			return -1;
		}
		break;
	case T_STR:
		if (k->check != NULL && k->check(value, why, sizeof(why)) ==
		    -1) {
			snprintf(err, errlen, "%s.%s: %s", k->section, k->name,
			    why);
			return -1;
		}
		if ((k->flags & F_CONNINFO) && *value != '\0') {
			opts = PQconninfoParse(value, &msg);
			if (opts == NULL) {
				snprintf(err, errlen, "%s.%s: not a valid "
				    "connection string or URI: %s", k->section,
				    k->name, msg ? msg : "out of memory");
				PQfreemem(msg);
				return -1;
			}
			PQconninfoFree(opts);
		}
		break;
	}
	copy = strdup(value);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (v->str != NULL && (k->flags & F_SECRET))
		explicit_bzero(v->str, strlen(v->str));
	free(v->str);
	v->str = copy;
	v->num = num;
	v->src = src;
	v->line = line;
	v->env = env;
	return 0;
}

static int
val_set(struct cfg *cfg, int id, const char *value, enum cfg_src src,
    int line, const char *env, char *err, size_t errlen)
{
	return val_store(&cfg_keys[id], &cfg->v[id], value, src, line, env, err,
	    errlen);
}

/* Find or create the section for handler type; NULL when too many. */
static struct cfg_hsec *
hsec_get(struct cfg *cfg, const char *type, int line)
{
	struct cfg_hsec	*h;
	int		 i;

	for (i = 0; i < cfg->nhs; i++)
		if (strcmp(cfg->hs[i].type, type) == 0)
			return &cfg->hs[i];
	if (cfg->nhs == MAX_HANDLERS)
		return NULL;
	h = &cfg->hs[cfg->nhs];
	h->type = strdup(type);
	if (h->type == NULL)
		return NULL;
	h->line = line;
	/* Defaults are not validated: kind has none and must be set. */
	for (i = 0; i < HK_N; i++) {
		h->v[i].str = strdup(cfg_hkeys[i].def);
		if (h->v[i].str == NULL)
			return NULL;
		h->v[i].num = strtoll(cfg_hkeys[i].def, NULL, 10);
		h->v[i].src = CFG_SRC_DEFAULT;
	}
	cfg->nhs++;
	return h;
}

/* A key inside [handler.TYPE]; msg empty on success. */
static void
handler_key(struct parse_state *ps, const char *section, const char *name,
    const char *value, char *msg, size_t msglen)
{
	struct cfg_hsec	*h;
	int		 id;

	id = hkey_find(name);
	if (id == -1) {
		snprintf(msg, msglen, "unknown key '%s' in section [%s] (a "
		    "handler takes kind, command, url, timeout_seconds, "
		    "output_limit_kib)", name, section);
		return;
	}
	h = hsec_get(ps->cfg, section + HANDLER_PREFIX_LEN, ps->lineno);
	if (h == NULL) {
		snprintf(msg, msglen, "too many handler sections (at most %d)",
		    MAX_HANDLERS);
		return;
	}
	if (h->v[id].src == CFG_SRC_FILE) {
		snprintf(msg, msglen, "%s.%s is set twice (first on line %d)",
		    section, name, h->v[id].line);
		return;
	}
	if (val_store(&cfg_hkeys[id], &h->v[id], value, CFG_SRC_FILE, ps->lineno,
	    NULL, msg, msglen) == -1) {
		/* val_store names the key "handler.*.x"; name the section. */
		char		 tmp[400];
		const char	*why = strstr(msg, ": ");

		snprintf(tmp, sizeof(tmp), "[%.60s] %.40s: %.280s", section, name,
		    why ? why + 2 : msg);
		snprintf(msg, msglen, "%s", tmp);
	}
}

/*
 * inih line reader: counts lines, strips leading blanks (so an indented key
 * is not taken as a continuation of the previous one) and '#' comments that
 * follow whitespace.
 */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct parse_state	*ps = stream;
	ssize_t			 n;
	char			*p, *s, quote = 0;
	size_t			 len;

	n = getline(&ps->buf, &ps->bufcap, ps->fp);
	if (n == -1)
		return NULL;
	ps->lineno++;
	s = ps->buf;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	/* Outside quotes, so a quoted "echo #1" in a command survives. */
	for (p = s; *p != '\0'; p++) {
		if ((*p == '\'' || *p == '"') && quote == 0)
			quote = *p;
		else if (*p == quote)
			quote = 0;
		else if (*p == '#' && quote == 0 && p > s &&
		    (p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	}
	len = strlen(s);
	/* inih reports nothing for an empty section, so check names here. */
	p = strchr(s, ']');
	if (s[0] == '[' && p != NULL && ps->err_line == 0) {
		*p = '\0';
		if (!section_known(s + 1)) {
			ps->err_line = ps->lineno;
			snprintf(ps->err, sizeof(ps->err), "unknown section "
			    "[%.100s]", s + 1);
		} else if (strncmp(s + 1, HANDLER_PREFIX,
		    HANDLER_PREFIX_LEN) == 0 && hsec_get(ps->cfg,
		    s + 1 + HANDLER_PREFIX_LEN, ps->lineno) == NULL) {
			ps->err_line = ps->lineno;
			snprintf(ps->err, sizeof(ps->err), "too many handler "
			    "sections (at most %d)", MAX_HANDLERS);
		}
		*p = ']';
	}
	if (len + 2 > (size_t)num) {
		if (ps->err_line == 0) {
			ps->err_line = ps->lineno;
			snprintf(ps->err, sizeof(ps->err), "line is longer "
			    "than %d characters", num - 2);
		}
		/* An unterminated section header makes inih flag this line. */
		snprintf(str, (size_t)num, "[\n");
		return str;
	}
	memcpy(str, s, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	return str;
}

static int
cfg_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct parse_state	*ps = user;
	struct cfg_val		*v;
	char			 msg[400];
	int			 id;

	if (ps->err_line != 0)
		return 0;	/* report only the first problem */
	msg[0] = '\0';
	id = key_find(section, name);
	if (strncmp(section, HANDLER_PREFIX, HANDLER_PREFIX_LEN) == 0)
		handler_key(ps, section, name, value, msg, sizeof(msg));
	else if (*section == '\0')
		snprintf(msg, sizeof(msg), "key '%s' is outside any section "
		    "(put it under [database] or another section)", name);
	else if (id == -1)
		snprintf(msg, sizeof(msg), "unknown key '%s' in section [%s]",
		    name, section);
	else if (cfg_keys[id].flags & F_NOFILE)
		snprintf(msg, sizeof(msg), "%s.%s must not be written in a "
		    "config file; use password_file (mode 0600) or the %s "
		    "variable", section, name, cfg_keys[id].env);
	else {
		v = &ps->cfg->v[id];
		if (v->src == CFG_SRC_FILE)
			snprintf(msg, sizeof(msg), "%s.%s is set twice (first "
			    "on line %d)", section, name, v->line);
		else
			(void)val_set(ps->cfg, id, value, CFG_SRC_FILE,
			    ps->lineno, NULL, msg, sizeof(msg));
	}
	if (msg[0] == '\0')
		return 1;
	ps->err_line = ps->lineno;
	snprintf(ps->err, sizeof(ps->err), "%s", msg);
	return 0;
}

static int
load_file(struct cfg *cfg, const char *path, int must_exist, char *err,
    size_t errlen)
{
	struct parse_state	ps;
	int			rc = -1, line;

	memset(&ps, 0, sizeof(ps));
	ps.cfg = cfg;
	ps.fp = fopen(path, "re");
	if (ps.fp == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		snprintf(err, errlen, "%s: cannot read configuration: %s",
		    path, strerror(errno));
		return -1;
	}
	cfg->path = strdup(path);
	if (cfg->path == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	line = ini_parse_stream(cfg_reader, &ps, cfg_handler, &ps);
	if (line == 0 && ferror(ps.fp)) {
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	if (ps.err_line != 0 && (line == 0 || ps.err_line <= line)) {
		snprintf(err, errlen, "%s:%d: %s", path, ps.err_line, ps.err);
		goto out;
	}
	if (line != 0) {
		snprintf(err, errlen, "%s:%d: malformed line (expected "
		    "[section] or key = value)", path, line);
		goto out;
	}
	rc = 0;
out:
	free(ps.buf);
	fclose(ps.fp);
	return rc;
}

/* Read the first line of a private file into the password slot. */
static int
load_password_file(struct cfg *cfg, char *err, size_t errlen)
{
	struct cfg_val	*pf = &cfg->v[CFG_DB_PASSWORD_FILE];
	char		 where[300], buf[1024];
	struct stat	 st;
	ssize_t		 n;
	int		 fd, rc = -1;

	if (pf->src == CFG_SRC_FILE)
		snprintf(where, sizeof(where), "%s:%d: ", cfg->path, pf->line);
	else if (pf->src == CFG_SRC_ENV)
		snprintf(where, sizeof(where), "environment %s: ", pf->env);
	else
		where[0] = '\0';

	fd = open(pf->str, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		snprintf(err, errlen, "%sdatabase.password_file %s: %s", where,
		    pf->str, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%sdatabase.password_file %s: not a "
		    "regular file", where, pf->str);
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%sdatabase.password_file %s is "
		    "readable by group or others (mode %04o); run: chmod 600 "
		    "%s", where, pf->str, (unsigned)(st.st_mode & 07777),
		    pf->str);
		goto out;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n == -1) {
		snprintf(err, errlen, "%sdatabase.password_file %s: %s", where,
		    pf->str, strerror(errno));
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0') {
		snprintf(err, errlen, "%sdatabase.password_file %s is empty",
		    where, pf->str);
		goto out;
	}
	if (val_set(cfg, CFG_DB_PASSWORD, buf, CFG_SRC_DERIVED, 0, NULL, err,
	    errlen) == -1)
		goto out;
	rc = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

static int
apply_env(struct cfg *cfg, int high, char *err, size_t errlen)
{
	const char	*name, *value;
	char		 msg[400];
	int		 i;

	for (i = 0; i < CFG_NKEYS; i++) {
		name = high ? cfg_keys[i].env : cfg_keys[i].env_low;
		if (name == NULL)
			continue;
		value = getenv(name);
		if (value == NULL)
			continue;
		if (val_set(cfg, i, value, high ? CFG_SRC_ENV : CFG_SRC_ENV_LOW,
		    0, name, msg, sizeof(msg)) == -1) {
			snprintf(err, errlen, "environment %s: %s", name, msg);
			return -1;
		}
	}
	return 0;
}

/* Check each [handler.TYPE] as a whole and fill the public view. */
static int
resolve_handlers(struct cfg *cfg, char *err, size_t errlen)
{
	static const char *kinds[] = { "exec", "http", "noop" };
	struct cfg_handler	*h;
	struct cfg_hsec		*hs;
	const char		*kind, *cmd, *url, *bad = NULL;
	char			**argv = NULL;
	char			 why[200];
	int			 i, k;

	for (i = 0; i < cfg->nhs; i++) {
		hs = &cfg->hs[i];
		h = &cfg->handlers[i];
		kind = hs->v[HK_KIND].str;
		cmd = hs->v[HK_COMMAND].str;
		url = hs->v[HK_URL].str;
		if (*kind == '\0') {
			snprintf(err, errlen, "%s:%d: [handler.%s] has no kind; "
			    "set kind = exec, http or noop", cfg->path,
			    hs->line, hs->type);
			return -1;
		}
		for (k = 0; k < 3; k++)
			if (strcmp(kind, kinds[k]) == 0)
				h->kind = (enum handler_kind)k;
		if (h->kind == HANDLER_EXEC && *cmd == '\0')
			bad = "kind = exec needs command = PROGRAM [ARGS]";
		else if (h->kind == HANDLER_EXEC && *url != '\0')
			bad = "url does not apply to kind = exec";
		else if (h->kind == HANDLER_HTTP && *cmd != '\0')
			bad = "command does not apply to kind = http";
		else if (h->kind == HANDLER_HTTP && strncmp(url, "http://", 7) &&
		    strncmp(url, "https://", 8))
			bad = "kind = http needs url = http(s)://...";
		else if (h->kind == HANDLER_NOOP && (*cmd || *url))
			bad = "kind = noop takes neither command nor url";
		if (bad == NULL && h->kind == HANDLER_EXEC) {
			argv = proc_split(cmd, why, sizeof(why));
			if (argv == NULL)
				bad = why;
			proc_argv_free(argv);
		}
		if (bad != NULL) {
			snprintf(err, errlen, "%s:%d: [handler.%s] %s",
			    cfg->path, hs->line, hs->type, bad);
			return -1;
		}
		h->type = hs->type;
		h->command = cmd;
		h->url = url;
		h->timeout_seconds = (int)hs->v[HK_TIMEOUT].num;
		h->output_limit = (long)hs->v[HK_OUTPUT_LIMIT].num * 1024;
		h->line = hs->line;
	}
	return 0;
}

struct cfg *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg	*cfg;
	const char	*envpath;
	char		 msg[300];
	int		 i, must_exist = 1;

	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < CFG_NKEYS; i++)
		if (val_set(cfg, i, cfg_keys[i].def, CFG_SRC_DEFAULT, 0, NULL, err,
		    errlen) == -1)
			goto fail;
	if (apply_env(cfg, 0, err, errlen) == -1)
		goto fail;
	if (path == NULL) {
		envpath = getenv(CFG_ENV_PATH);
		if (envpath != NULL && *envpath != '\0')
			path = envpath;
		else {
			path = CFG_DEFAULT_PATH;
			must_exist = 0;
		}
	}
	if (load_file(cfg, path, must_exist, err, errlen) == -1)
		goto fail;
	if (apply_env(cfg, 1, err, errlen) == -1)
		goto fail;
	if (resolve_handlers(cfg, err, errlen) == -1)
		goto fail;
	if (cfg->v[CFG_DB_PASSWORD_SECRET].str[0] != '\0' &&
	    secret_name_check(cfg->v[CFG_DB_PASSWORD_SECRET].str, msg,
	    sizeof(msg)) == -1) {
		snprintf(err, errlen, "database.password_secret: %s", msg);
		goto fail;
	}
	/* Cloud Storage takes non-final chunks in multiples of 256 KiB. */
	if (cfg->v[CFG_B_CHUNK_KIB].num % 256 != 0) {
		if (cfg->v[CFG_B_CHUNK_KIB].src == CFG_SRC_FILE)
			snprintf(err, errlen, "%s:%d: backup.chunk_kib: %lld is "
			    "not a multiple of 256", cfg->path,
			    cfg->v[CFG_B_CHUNK_KIB].line,
			    cfg->v[CFG_B_CHUNK_KIB].num);
		else
			snprintf(err, errlen, "backup.chunk_kib: %lld is not a "
			    "multiple of 256", cfg->v[CFG_B_CHUNK_KIB].num);
		goto fail;
	}
	if (strcasecmp(cfg->v[CFG_S_METRICS].str, "off") != 0 &&
	    cfg->v[CFG_S_METRICS_TEXTFILE].str[0] == '\0') {
		snprintf(err, errlen, "%s:%d: schedule.metrics is set but "
		    "schedule.metrics_textfile is empty; name the file or set "
		    "metrics = off", cfg->path ? cfg->path : "(defaults)",
		    cfg->v[CFG_S_METRICS_TEXTFILE].line);
		goto fail;
	}
	if (cfg->v[CFG_DB_PASSWORD].src < CFG_SRC_FILE &&
	    cfg->v[CFG_DB_PASSWORD_FILE].str[0] != '\0' &&
	    load_password_file(cfg, err, errlen) == -1)
		goto fail;
	return cfg;
fail:
	cfg_free(cfg);
	return NULL;
}

void
cfg_free(struct cfg *cfg)
{
	int i, k;

	if (cfg == NULL)
		return;
	for (i = 0; i < CFG_NKEYS; i++) {
		if (cfg->v[i].str != NULL && (cfg_keys[i].flags & F_SECRET))
			explicit_bzero(cfg->v[i].str, strlen(cfg->v[i].str));
		free(cfg->v[i].str);
	}
	for (i = 0; i < cfg->nhs; i++) {
		for (k = 0; k < HK_N; k++)
			free(cfg->hs[i].v[k].str);
		free(cfg->hs[i].type);
	}
	free(cfg->path);
	free(cfg);
}

int
cfg_handler_count(const struct cfg *cfg)
{
	return cfg->nhs;
}

const struct cfg_handler *
cfg_handler_at(const struct cfg *cfg, int i)
{
	return i >= 0 && i < cfg->nhs ? &cfg->handlers[i] : NULL;
}

const struct cfg_handler *
cfg_handler_find(const struct cfg *cfg, const char *type)
{
	int i;

	for (i = 0; i < cfg->nhs; i++)
		if (strcmp(cfg->handlers[i].type, type) == 0)
			return &cfg->handlers[i];
	return NULL;
}

const char *
cfg_str(const struct cfg *cfg, enum cfg_id id)
{
	return cfg->v[id].str;
}

long long
cfg_int(const struct cfg *cfg, enum cfg_id id)
{
	return cfg->v[id].num;
}

int
cfg_bool(const struct cfg *cfg, enum cfg_id id)
{
	return cfg->v[id].num != 0;
}

enum cfg_src
cfg_source(const struct cfg *cfg, enum cfg_id id)
{
	return cfg->v[id].src;
}

const char *
cfg_path(const struct cfg *cfg)
{
	return cfg->path;
}

const char *
cfg_key_section(enum cfg_id id)
{
	return cfg_keys[id].section;
}

const char *
cfg_key_name(enum cfg_id id)
{
	return cfg_keys[id].name;
}

/* Print a conninfo with any password replaced, via libpq's own parser. */
static int
show_conninfo(const char *value, FILE *fp)
{
	PQconninfoOption	*opts, *o;
	int			 len = 0;

	opts = PQconninfoParse(value, NULL);
	if (opts == NULL)
		return fprintf(fp, "(unparsable)");
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		len += fprintf(fp, "%s%s=%s", len ? " " : "", o->keyword,
		    strcmp(o->keyword, "password") == 0 ? "(redacted)" :
		    o->val);
	}
	PQconninfoFree(opts);
	return len;
}

static void
show_value(const struct cfg *cfg, const struct cfg_key *k,
    const struct cfg_val *v, FILE *fp)
{
	int len;

	len = fprintf(fp, "%s = ", k->name);
	if (k->flags & F_SECRET)
		len += fprintf(fp, "%s", v->str[0] ? "(redacted)" : "(not set)");
	else if ((k->flags & F_CONNINFO) && v->str[0] != '\0')
		len += show_conninfo(v->str, fp);
	else
		len += fprintf(fp, "%s", v->str);
	fprintf(fp, "%*s# ", len < 40 ? 40 - len : 1, "");
	switch (v->src) {
	case CFG_SRC_DEFAULT:
		fputs("default\n", fp);
		break;
	case CFG_SRC_FILE:
		fprintf(fp, "%s:%d\n", cfg->path, v->line);
		break;
	case CFG_SRC_ENV_LOW:
	case CFG_SRC_ENV:
		fprintf(fp, "environment %s\n", v->env);
		break;
	case CFG_SRC_DERIVED:
		fprintf(fp, "read from %s\n", cfg->v[CFG_DB_PASSWORD_FILE].str);
		break;
	}
}

void
cfg_show(const struct cfg *cfg, FILE *fp)
{
	const char	*section = "";
	int		 i, k;

	for (i = 0; i < CFG_NKEYS; i++) {
		if (strcmp(section, cfg_keys[i].section) != 0) {
			section = cfg_keys[i].section;
			fprintf(fp, "%s[%s]\n", i ? "\n" : "", section);
		}
		show_value(cfg, &cfg_keys[i], &cfg->v[i], fp);
	}
	for (i = 0; i < cfg->nhs; i++) {
		fprintf(fp, "\n[handler.%s]\n", cfg->hs[i].type);
		for (k = 0; k < HK_N; k++)
			show_value(cfg, &cfg_hkeys[k], &cfg->hs[i].v[k], fp);
	}
}
