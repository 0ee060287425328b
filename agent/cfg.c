/*
 * cfg.c - configuration keys in one table, in the manner of pgbouncer.
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
#include <sys/stat.h>
#include <unistd.h>

#include "cfg.h"

enum cfg_type { T_STR, T_INT, T_BOOL, T_ENUM };

#define F_SECRET	0x01	/* never printed */
#define F_NOFILE	0x02	/* environment only: secrets stay out of files */
#define F_CONNINFO	0x04	/* libpq conninfo or URI; printed redacted */

struct cfg_key {
	const char	*section;
	const char	*name;
	enum cfg_type	 type;
	const char	*def;
	long long	 min, max;
	const char	*choices;	/* T_ENUM: "a|b|c" */
	const char	*env_low;	/* below the file: libpq's variable */
	const char	*env;		/* above the file: the seed's variable */
	int		 flags;
};

static const struct cfg_key keys[CFG_NKEYS] = {
	[CFG_DB_URL] = { "database", "url", T_STR, "", 0, 0, NULL,
	    NULL, "DATABASE_URL", F_CONNINFO },
	[CFG_DB_HOST] = { "database", "host", T_STR, "", 0, 0, NULL,
	    "PGHOST", "POSTGRES_HOST", 0 },
	[CFG_DB_PORT] = { "database", "port", T_INT, "5432", 1, 65535, NULL,
	    "PGPORT", "POSTGRES_PORT", 0 },
	[CFG_DB_NAME] = { "database", "dbname", T_STR, "orchestrator", 0, 0,
	    NULL, "PGDATABASE", "POSTGRES_DB", 0 },
	[CFG_DB_USER] = { "database", "user", T_STR, "orchestrator", 0, 0,
	    NULL, "PGUSER", "POSTGRES_USER", 0 },
	[CFG_DB_PASSWORD] = { "database", "password", T_STR, "", 0, 0, NULL,
	    "PGPASSWORD", "POSTGRES_PASSWORD", F_SECRET | F_NOFILE },
	[CFG_DB_PASSWORD_FILE] = { "database", "password_file", T_STR, "", 0,
	    0, NULL, NULL, "POSTGRES_PASSWORD_FILE", 0 },
	[CFG_DB_SSLMODE] = { "database", "sslmode", T_ENUM, "prefer", 0, 0,
	    "disable|allow|prefer|require|verify-ca|verify-full",
	    "PGSSLMODE", NULL, 0 },
	[CFG_DB_SSLROOTCERT] = { "database", "sslrootcert", T_STR, "", 0, 0,
	    NULL, "PGSSLROOTCERT", NULL, 0 },
	[CFG_DB_CONNECT_TIMEOUT] = { "database", "connect_timeout", T_INT,
	    "10", 1, 3600, NULL, "PGCONNECT_TIMEOUT", NULL, 0 },
	[CFG_DB_STATEMENT_TIMEOUT_MS] = { "database", "statement_timeout_ms",
	    T_INT, "60000", 0, 86400000, NULL, NULL, NULL, 0 },
	[CFG_DB_LOCK_TIMEOUT_MS] = { "database", "lock_timeout_ms", T_INT,
	    "10000", 0, 86400000, NULL, NULL, NULL, 0 },
	[CFG_DB_APPLICATION_NAME] = { "database", "application_name", T_STR,
	    "orchestrator-agent", 0, 0, NULL, "PGAPPNAME", NULL, 0 },
};

struct cfg_val {
	char		*str;
	long long	 num;
	enum cfg_src	 src;
	int		 line;
	const char	*env;	/* static: points into keys[] */
};

struct cfg {
	char		*path;
	struct cfg_val	 v[CFG_NKEYS];
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
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return i;
	return -1;
}

static int
section_known(const char *section)
{
	int i;

	for (i = 0; i < CFG_NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0)
			return 1;
	return 0;
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

/* Validate value for key id; on success store it with its origin. */
static int
val_set(struct cfg *cfg, int id, const char *value, enum cfg_src src,
    int line, const char *env, char *err, size_t errlen)
{
	const struct cfg_key	*k = &keys[id];
	struct cfg_val		*v = &cfg->v[id];
	long long		 num = 0;
	char			*end, *copy, *msg = NULL;
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
	char			*p, *s;
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
	for (p = s; *p != '\0'; p++) {
		if (*p == '#' && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
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
	if (*section == '\0')
		snprintf(msg, sizeof(msg), "key '%s' is outside any section "
		    "(put it under [database] or another section)", name);
	else if (id == -1)
		snprintf(msg, sizeof(msg), "unknown key '%s' in section [%s]",
		    name, section);
	else if (keys[id].flags & F_NOFILE)
		snprintf(msg, sizeof(msg), "%s.%s must not be written in a "
		    "config file; use password_file (mode 0600) or the %s "
		    "variable", section, name, keys[id].env);
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
		name = high ? keys[i].env : keys[i].env_low;
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

struct cfg *
cfg_load(const char *path, char *err, size_t errlen)
{
	struct cfg	*cfg;
	const char	*envpath;
	int		 i, must_exist = 1;

	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (i = 0; i < CFG_NKEYS; i++)
		if (val_set(cfg, i, keys[i].def, CFG_SRC_DEFAULT, 0, NULL, err,
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
	int i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CFG_NKEYS; i++) {
		if (cfg->v[i].str != NULL && (keys[i].flags & F_SECRET))
			explicit_bzero(cfg->v[i].str, strlen(cfg->v[i].str));
		free(cfg->v[i].str);
	}
	free(cfg->path);
	free(cfg);
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
	return keys[id].section;
}

const char *
cfg_key_name(enum cfg_id id)
{
	return keys[id].name;
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

void
cfg_show(const struct cfg *cfg, FILE *fp)
{
	const char		*section = "";
	const struct cfg_val	*v;
	int			 i, len;

	for (i = 0; i < CFG_NKEYS; i++) {
		v = &cfg->v[i];
		if (strcmp(section, keys[i].section) != 0) {
			section = keys[i].section;
			fprintf(fp, "%s[%s]\n", i ? "\n" : "", section);
		}
		len = fprintf(fp, "%s = ", keys[i].name);
		if (keys[i].flags & F_SECRET)
			len += fprintf(fp, "%s", v->str[0] ? "(redacted)" :
			    "(not set)");
		else if ((keys[i].flags & F_CONNINFO) && v->str[0] != '\0')
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
			fprintf(fp, "read from %s\n",
			    cfg->v[CFG_DB_PASSWORD_FILE].str);
			break;
		}
	}
}
