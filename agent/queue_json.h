/*
 * queue_json.h - JSON input for the queue: json-c parsing made as strict as
 * PostgreSQL's jsonb input, raw member spans, and JSON arguments.
 */
#ifndef QUEUE_JSON_H
#define QUEUE_JSON_H

#include <stddef.h>

struct json_object;

/* A top-level member of a JSON object: spans borrowed from its text. */
struct queue_member {
	const char	*key;		/* between the quotes, still escaped */
	size_t		 keylen;
	const char	*val;		/* the value's text as written */
	size_t		 vallen;
};

/*
 * Parse len bytes at text (borrowed) as exactly one JSON value.  json-c
 * checks the structure and UTF-8; a second pass then refuses what json-c's
 * strict mode lets through but PostgreSQL's jsonb input rejects ('quotes',
 * NaN, Infinity, "1.", raw control characters in strings, lone UTF-16
 * surrogates, \u0000).  Returns the value, owned by the caller
 * (json_object_put), or NULL with why ("... at line 2, column 5") in the
 * caller's buffer.  Whitespace-only text is reported as empty.
 */
struct json_object *queue_json_parse(const char *text, size_t len,
		    char *why, size_t whylen);

/*
 * The top-level members of an object text that queue_json_parse accepted,
 * in order, as spans into text.  Returns the count, or -1 if there are
 * more than max.
 */
int		 queue_json_members(const char *text, size_t len,
		    struct queue_member *m, int max);

/*
 * Read a JSON argument: the text itself, "@FILE", or "-" for stdin; at
 * most QUEUE_JSON_MAX bytes.  what ("enqueue: --change-event") prefixes
 * messages.  Returns NUL-terminated text owned by the caller, its length
 * in *lenp; or NULL after logging why, with *rc set to 65 (too large) or
 * 66 (cannot read).
 */
char		*queue_json_read_arg(const char *arg, const char *what,
		    size_t *lenp, int *rc);

/* What v (borrowed) is, for "must be X, not Y": "an array"; static. */
const char	*queue_json_kind(struct json_object *v);

/* A value that prints as text (copied) verbatim; the caller owns it. */
struct json_object *queue_json_raw(const char *text);

#endif
