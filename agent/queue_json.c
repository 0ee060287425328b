/*
 * queue_json.c - JSON input for the queue.
 *
 * json-c parses, but even in strict mode it accepts text PostgreSQL's
 * jsonb refuses, and it rounds numbers it cannot hold (integers past 2^64
 * come back as 18446744073709551615).  So a second pass checks tokens the
 * way PostgreSQL's lexer does, and what reaches the database is always the
 * text as written, never json-c's re-serialisation.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"
#include "queue.h"
#include "queue_json.h"

static int
is_ws(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* "column C" or "line L, column C" of byte off of text, into buf. */
static const char *
where(const char *text, size_t off, char *buf, size_t len)
{
	size_t	i, line = 1, col = 1;

	for (i = 0; i < off; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80)
			col++;	/* count characters, not UTF-8 bytes */
	}
	if (line == 1)
		snprintf(buf, len, "column %zu", col);
	else
		snprintf(buf, len, "line %zu, column %zu", line, col);
	return buf;
}

/* Four hex digits at s (n bytes available) into *out; 0 or -1. */
static int
hex4(const char *s, size_t n, unsigned *out)
{
	unsigned	v = 0;
	size_t		i;
	int		c;

	if (n < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		c = (unsigned char)s[i];
		v <<= 4;
		if (is_digit(c))
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/*
 * Check the string at t[*ip] == '"' (t borrowed).  Returns NULL with *ip
 * past it, or why (static) with *ip at the offending byte.
 */
static const char *
scan_string(const char *t, size_t len, size_t *ip)
{
	size_t		i = *ip + 1;
	unsigned	u, lo;
	int		c;

	for (;;) {
		if (i >= len)
			return "unterminated string";
		c = (unsigned char)t[i];
		if (c == '"')
			break;
		if (c < 0x20) {
			*ip = i;
			return "control character in a string (write it "
			    "escaped, e.g. \\n or \\u0009)";
		}
		if (c != '\\') {
			i++;
			continue;
		}
		*ip = i;
		if (i + 1 >= len || strchr("\"\\/bfnrtu", t[i + 1]) == NULL ||
		    t[i + 1] == '\0')
			return "invalid escape in a string";
		if (t[i + 1] != 'u') {
			i += 2;
			continue;
		}
		if (hex4(t + i + 2, len - i - 2, &u) == -1)
			return "\\u needs four hex digits";
		if (u == 0)
			return "\\u0000 cannot be stored by PostgreSQL jsonb";
		if (u >= 0xdc00 && u <= 0xdfff)
			return "lone low surrogate in a \\u escape";
		if (u >= 0xd800 && u <= 0xdbff) {
			if (i + 7 >= len || t[i + 6] != '\\' ||
			    t[i + 7] != 'u' ||
			    hex4(t + i + 8, len - i - 8, &lo) == -1 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return "high surrogate not followed by a low "
				    "surrogate in a \\u escape";
			i += 6;
		}
		i += 6;
	}
	*ip = i + 1;
	return NULL;
}

/*
 * Check the number at t[*ip] against JSON's grammar,
 * -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?  Returns NULL with *ip past it,
 * or why (static).
 */
static const char *
scan_number(const char *t, size_t len, size_t *ip)
{
	size_t i = *ip;

	if (i < len && t[i] == '-')
		i++;
	if (i < len && t[i] == '0')
		i++;
	else if (i < len && is_digit(t[i]))
		while (i < len && is_digit(t[i]))
			i++;
	else
		return "malformed number";
	if (i < len && t[i] == '.') {
		i++;
		if (i >= len || !is_digit(t[i]))
			return "malformed number (a '.' needs digits after it)";
		while (i < len && is_digit(t[i]))
			i++;
	}
	if (i < len && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		if (i < len && (t[i] == '+' || t[i] == '-'))
			i++;
		if (i >= len || !is_digit(t[i]))
			return "malformed number (an exponent needs digits)";
		while (i < len && is_digit(t[i]))
			i++;
	}
	if (i < len && (is_digit(t[i]) || t[i] == '.' ||
	    (t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z')))
		return "malformed number";
	*ip = i;
	return NULL;
}

/*
 * Check every token of t.  json-c has vouched for the structure and the
 * UTF-8; this refuses the tokens PostgreSQL would.  Returns NULL, or why
 * with *bad at the offending byte.
 */
static const char *
strict_scan(const char *t, size_t len, size_t *bad)
{
	static const char *const lits[] = { "true", "false", "null" };
	const char	*why;
	size_t		 i = 0, k, n;

	while (i < len) {
		*bad = i;
		switch (t[i]) {
		case ' ': case '\t': case '\n': case '\r':
		case '{': case '}': case '[': case ']': case ',': case ':':
			i++;
			continue;
		case '"':
			why = scan_string(t, len, &i);
			if (why != NULL) {
				*bad = i;
				return why;
			}
			continue;
		case 't': case 'f': case 'n':
			for (k = 0; k < 3; k++) {
				n = strlen(lits[k]);
				if (lits[k][0] == t[i] && len - i >= n &&
				    memcmp(t + i, lits[k], n) == 0)
					break;
			}
			if (k == 3 || (i + n < len &&
			    ((t[i + n] >= 'a' && t[i + n] <= 'z') ||
			    (t[i + n] >= 'A' && t[i + n] <= 'Z') ||
			    is_digit(t[i + n]))))
				return "unexpected word (only true, false and "
				    "null are allowed)";
			i += n;
			continue;
		default:
			if (t[i] == '-' || is_digit(t[i])) {
				why = scan_number(t, len, &i);
				if (why != NULL)
					return why;
				continue;
			}
			if (t[i] == '\'')
				return "single quotes (JSON strings use \")";
			return "unexpected character";
		}
	}
	return NULL;
}

struct json_object *
queue_json_parse(const char *text, size_t len, char *why, size_t whylen)
{
	struct json_tokener	*tok = NULL;
	struct json_object	*obj = NULL;
	enum json_tokener_error	 err;
	const char		*bad;
	char			 at[64];
	size_t			 i, end;
	int			 ok = 0;

	for (i = 0; i < len && is_ws((unsigned char)text[i]); i++)
		;
	if (i == len) {
		snprintf(why, whylen, "is empty: no JSON value");
		goto out;
	}
	if (len > INT_MAX) {
		snprintf(why, whylen, "is too large to parse");
		goto out;
	}
	tok = json_tokener_new_ex(QUEUE_JSON_DEPTH);
	if (tok == NULL)
		fatalx("queue: out of memory parsing JSON");
	/* Trailing text is ours to report, with a clearer message. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_ALLOW_TRAILING_CHARS | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	err = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (err == json_tokener_continue) {
		snprintf(why, whylen, "is not valid JSON: it ends before the "
		    "value is complete");
		goto out;
	}
	if (err == json_tokener_error_depth) {
		snprintf(why, whylen, "is not valid JSON: nested deeper than "
		    "%d levels at %s", QUEUE_JSON_DEPTH,
		    where(text, end, at, sizeof(at)));
		goto out;
	}
	if (err != json_tokener_success) {
		snprintf(why, whylen, "is not valid JSON: %s at %s",
		    json_tokener_error_desc(err),
		    where(text, end, at, sizeof(at)));
		goto out;
	}
	for (i = end; i < len && is_ws((unsigned char)text[i]); i++)
		;
	if (i < len) {
		snprintf(why, whylen, "is not one JSON value: more text "
		    "follows at %s", where(text, i, at, sizeof(at)));
		goto out;
	}
	bad = strict_scan(text, len, &i);
	if (bad != NULL) {
		snprintf(why, whylen, "is not valid JSON: %s at %s", bad,
		    where(text, i, at, sizeof(at)));
		goto out;
	}
	ok = 1;
out:
	if (!ok) {
		json_object_put(obj);
		obj = NULL;
	}
	if (tok != NULL)
		json_tokener_free(tok);	/* not NULL-tolerant */
	return obj;
}

/* Past the string starting at t[i] == '"'; the text is known valid. */
static size_t
skip_string(const char *t, size_t len, size_t i)
{
	for (i++; i < len && t[i] != '"'; i++)
		if (t[i] == '\\')
			i++;
	return i + 1;
}

/* Past the value starting at t[i]; the text is known valid. */
static size_t
skip_value(const char *t, size_t len, size_t i)
{
	int depth = 0;

	if (t[i] == '"')
		return skip_string(t, len, i);
	if (t[i] != '{' && t[i] != '[') {
		while (i < len && t[i] != ',' && t[i] != '}' && t[i] != ']' &&
		    !is_ws(t[i]))
			i++;
		return i;
	}
	while (i < len) {
		if (t[i] == '"') {
			i = skip_string(t, len, i);
			continue;
		}
		if (t[i] == '{' || t[i] == '[')
			depth++;
		else if (t[i] == '}' || t[i] == ']') {
			depth--;
			if (depth == 0)
				return i + 1;
		}
		i++;
	}
	return i;
}

static size_t
skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && is_ws((unsigned char)t[i]))
		i++;
	return i;
}

int
queue_json_members(const char *t, size_t len, struct queue_member *m,
    int max)
{
	size_t	i, k;
	int	n = 0;

	i = skip_ws(t, len, 0);
	if (i >= len || t[i] != '{')
		return 0;
	i = skip_ws(t, len, i + 1);
	while (i < len && t[i] == '"') {
		k = i + 1;
		i = skip_string(t, len, i);
		if (n == max)
			return -1;
		m[n].key = t + k;
		m[n].keylen = i - 1 - k;
		i = skip_ws(t, len, i);
		i = skip_ws(t, len, i + 1);	/* past ':' */
		m[n].val = t + i;
		i = skip_value(t, len, i);
		m[n].vallen = i - (size_t)(m[n].val - t);
		n++;
		i = skip_ws(t, len, i);
		if (i < len && t[i] == ',')
			i = skip_ws(t, len, i + 1);
	}
	return n;
}

static void
too_large(const char *what, int *rc)
{
	log_errx("%s: the JSON is larger than the %d byte (1 MiB) limit; "
	    "keep large payloads out of the task and refer to them instead",
	    what, QUEUE_JSON_MAX);
	*rc = EX_DATAERR;
}

char *
queue_json_read_arg(const char *arg, const char *what, size_t *lenp, int *rc)
{
	FILE		*fp = NULL;
	const char	*path;
	char		*buf = NULL, *ret = NULL;
	size_t		 len = 0, n;

	if (strcmp(arg, "-") != 0 && arg[0] != '@') {
		len = strlen(arg);
		if (len > QUEUE_JSON_MAX) {
			too_large(what, rc);
			return NULL;
		}
		ret = strdup(arg);
		if (ret == NULL)
			fatal("queue: strdup");
		*lenp = len;
		return ret;
	}
	path = arg[0] == '@' ? arg + 1 : "stdin";
	fp = arg[0] == '@' ? fopen(path, "r") : stdin;
	if (fp == NULL) {
		log_errx("%s: cannot open %s: %s; check the path after '@' "
		    "and its permissions", what, path, strerror(errno));
		*rc = EX_NOINPUT;
		goto out;
	}
	/* One byte over the limit tells "too large" from "exactly full". */
	buf = malloc(QUEUE_JSON_MAX + 2);
	if (buf == NULL)
		fatal("queue: malloc");
	while (len <= QUEUE_JSON_MAX) {
		n = fread(buf + len, 1, QUEUE_JSON_MAX + 1 - len, fp);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(fp)) {
		log_errx("%s: cannot read %s: %s", what, path,
		    strerror(errno));
		*rc = EX_NOINPUT;
		goto out;
	}
	if (len > QUEUE_JSON_MAX) {
		too_large(what, rc);
		goto out;
	}
	buf[len] = '\0';
	*lenp = len;
	ret = buf;
	buf = NULL;
out:
	if (fp != NULL && fp != stdin)
		fclose(fp);
	free(buf);
	return ret;
}

const char *
queue_json_kind(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	case json_type_int:
		return "a whole number";
	case json_type_double:
		return "a fractional number";
	case json_type_boolean:
		return "a boolean";
	default:
		return "null";
	}
}

struct json_object *
queue_json_raw(const char *text)
{
	struct json_object	*o;
	char			*copy;

	o = json_object_new_object();
	copy = strdup(text);
	if (o == NULL || copy == NULL)
		fatalx("queue: out of memory building JSON");
	json_object_set_serializer(o, json_object_userdata_to_json_string,
	    copy, json_object_free_userdata);
	return o;
}
