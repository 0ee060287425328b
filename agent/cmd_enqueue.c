/*
 * cmd_enqueue.c - "enqueue": one task from options, or many from NDJSON
 * (queue_load.c).  Every value is checked before the database sees it, so
 * bad input names its option or line and nothing is inserted.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "cmd.h"
#include "db.h"
#include "log.h"
#include "queue.h"
#include "queue_json.h"
#include "queue_load.h"

#define OPT_FIELD	256		/* getopt value of field f: 256 + f */

struct opts {
	const char	*v[QF_COUNT];	/* borrowed from argv */
	const char	*ndjson;
};

static const char insert_sql[] =
	"INSERT INTO tasks (task_id, skill_name, task_type, source_repo, "
	"target_repo, change_event, relationship_config, max_attempts, "
	"priority, run_at) VALUES ($1, $2, "
	"$3, $4, $5, $6::jsonb, $7::jsonb, $8::integer, $9::integer, "
	"COALESCE($10::timestamptz, now() + $11::interval, now())) "
	"RETURNING task_id";

/* Load the NDJSON file path ("-": stdin), borrowed; returns an exit code. */
static int
enqueue_ndjson(struct agent *a, const char *path)
{
	struct cfg	*cfg;
	struct timespec	 t0, t1;
	PGconn		*conn = NULL;
	FILE		*fp;
	const char	*name;
	double		 secs;
	long		 rows = 0;
	int		 rc;

	name = strcmp(path, "-") == 0 ? "stdin" : path;
	fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (fp == NULL) {
		log_errx("enqueue: --ndjson: cannot open %s: %s; check the "
		    "path and its permissions", path, strerror(errno));
		return EX_NOINPUT;
	}
	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		goto out;
	conn = db_connect(cfg, "enqueue");
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (PQsetClientEncoding(conn, "UTF8") != 0)
		log_warnx("enqueue: cannot set client_encoding to UTF8: %s",
		    PQerrorMessage(conn));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = queue_load_ndjson(conn, fp, name, &rows);
	if (rc != EX_OK)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("enqueue: queued %ld task%s from %s in %.2f s (%.0f tasks/s)\n",
	    rows, rows == 1 ? "" : "s", name, secs,
	    secs > 0 ? (double)rows / secs : 0.0);
out:
	if (conn != NULL)
		PQfinish(conn);
	if (fp != stdin)
		fclose(fp);
	return rc;
}

/*
 * Check every option of o (borrowed), filling num[] and *secs (-1 unless
 * --run-at is relative); the JSON texts are read into json[], which the
 * caller frees whatever the outcome.  Returns an exit code.
 */
static int
check_one(const struct opts *o, char *json[2], long long num[QF_COUNT],
    long long *secs)
{
	static const enum queue_field text[] = { QF_ID, QF_SKILL, QF_TYPE,
	    QF_SOURCE, QF_TARGET };
	static const enum queue_field ints[] = { QF_MAX_ATTEMPTS,
	    QF_PRIORITY };
	static const enum queue_field js[2] = { QF_CHANGE_EVENT,
	    QF_RELATIONSHIP_CONFIG };
	struct json_object	*obj;
	const char		*opt;
	char			 why[512], what[64];
	size_t			 i, len;
	long long		 min, max;
	int			 rc = EX_DATAERR, f;

	for (i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		f = text[i];
		if (o->v[f] != NULL && queue_check_text(f, o->v[f],
		    strlen(o->v[f]), why, sizeof(why)) == -1) {
			log_errx("enqueue: %s %s", queue_field_option(f), why);
			return EX_DATAERR;
		}
	}
	num[QF_MAX_ATTEMPTS] = QUEUE_DEFAULT_MAX_ATTEMPTS;
	num[QF_PRIORITY] = QUEUE_DEFAULT_PRIORITY;
	for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		f = ints[i];
		if (o->v[f] == NULL)
			continue;
		queue_int_range(f, &min, &max);
		if (queue_parse_int(o->v[f], strlen(o->v[f]), min, max,
		    &num[f], why, sizeof(why)) == -1) {
			log_errx("enqueue: %s %s", queue_field_option(f), why);
			return EX_DATAERR;
		}
	}
	*secs = -1;
	if (o->v[QF_RUN_AT] != NULL) {
		if (o->v[QF_RUN_AT][0] == '+' &&
		    queue_parse_duration(o->v[QF_RUN_AT] + 1, secs, why,
		    sizeof(why)) == -1) {
			log_errx("enqueue: --run-at %s", why);
			return EX_DATAERR;
		}
		if (o->v[QF_RUN_AT][0] != '+' && queue_check_text(QF_RUN_AT,
		    o->v[QF_RUN_AT], strlen(o->v[QF_RUN_AT]), why,
		    sizeof(why)) == -1) {
			log_errx("enqueue: --run-at %s", why);
			return EX_DATAERR;
		}
	}
	for (i = 0; i < 2; i++) {
		opt = queue_field_option(js[i]);
		snprintf(what, sizeof(what), "enqueue: %s", opt);
		json[i] = queue_json_read_arg(o->v[js[i]], what, &len, &rc);
		if (json[i] == NULL)
			return rc;
		obj = queue_json_parse(json[i], len, why, sizeof(why));
		if (obj == NULL) {
			log_errx("enqueue: %s %s", opt, why);
			return EX_DATAERR;
		}
		if (!json_object_is_type(obj, json_type_object)) {
			log_errx("enqueue: %s must be a JSON object ({...}), "
			    "not %s", opt, queue_json_kind(obj));
			json_object_put(obj);
			return EX_DATAERR;
		}
		json_object_put(obj);
	}
	return EX_OK;
}

/* Insert the one task described by o (borrowed); returns an exit code. */
static int
enqueue_one(struct agent *a, const struct opts *o)
{
	struct cfg	*cfg;
	PGconn		*conn = NULL;
	PGresult	*res = NULL;
	const char	*p[11], *state;
	char		*json[2] = { NULL, NULL };
	char		 skill[QUEUE_SKILL_MAX + 1], maxa[24], prio[24];
	char		 interval[48], id[37];
	long long	 num[QF_COUNT], secs;
	int		 rc;

	rc = check_one(o, json, num, &secs);
	if (rc != EX_OK)
		goto out;
	snprintf(maxa, sizeof(maxa), "%lld", num[QF_MAX_ATTEMPTS]);
	snprintf(prio, sizeof(prio), "%lld", num[QF_PRIORITY]);
	if (o->v[QF_ID] == NULL)
		queue_uuid(id);
	p[0] = o->v[QF_ID] != NULL ? o->v[QF_ID] : id;
	p[1] = o->v[QF_SKILL] ? o->v[QF_SKILL] :
	    queue_default_skill(o->v[QF_TYPE], skill, sizeof(skill));
	p[2] = o->v[QF_TYPE];
	p[3] = o->v[QF_SOURCE];
	p[4] = o->v[QF_TARGET];
	p[5] = json[0];
	p[6] = json[1];
	p[7] = maxa;
	p[8] = prio;
	p[9] = secs < 0 ? o->v[QF_RUN_AT] : NULL;
	p[10] = secs < 0 ? NULL : queue_interval(secs, interval,
	    sizeof(interval));

	rc = agent_cfg(a, &cfg);
	if (rc != EX_OK)
		goto out;
	conn = db_connect(cfg, "enqueue");
	if (conn == NULL) {
		rc = EX_UNAVAILABLE;
		goto out;
	}
	if (PQsetClientEncoding(conn, "UTF8") != 0)
		log_warnx("enqueue: cannot set client_encoding to UTF8: %s",
		    PQerrorMessage(conn));
	res = queue_exec(conn, insert_sql, 11, p);
	if (queue_ok(res)) {
		printf("%s\n", PQgetvalue(res, 0, 0));
		rc = EX_OK;
		goto out;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		state = "";
	if (strcmp(state, "23505") == 0 && p[0] != NULL) {
		log_errx("enqueue: task id '%s' already exists; choose another "
		    "--id, or leave it out to get a generated one", p[0]);
		rc = EX_DATAERR;
	} else if (p[9] != NULL && strncmp(state, "22", 2) == 0 &&
	    strcmp(state, "22P02") != 0 && strcmp(state, "22P05") != 0) {
		/* The only date/time parameter is --run-at. */
		log_errx("enqueue: --run-at: PostgreSQL cannot read '%s' as a "
		    "time: %s; use ISO 8601 such as 2026-11-28T09:00:00Z, or "
		    "+30s, +5m, +2h", p[9], PQresultErrorField(res,
		    PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(res,
		    PG_DIAG_MESSAGE_PRIMARY) : "invalid value");
		rc = EX_DATAERR;
	} else
		rc = queue_fail(conn, res, "enqueue: inserting the task");
out:
	PQclear(res);
	if (conn != NULL)
		PQfinish(conn);
	free(json[0]);
	free(json[1]);
	return rc;
}

static int
enqueue_run(struct agent *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "id", required_argument, NULL, OPT_FIELD + QF_ID },
		{ "skill", required_argument, NULL, OPT_FIELD + QF_SKILL },
		{ "type", required_argument, NULL, OPT_FIELD + QF_TYPE },
		{ "source", required_argument, NULL, OPT_FIELD + QF_SOURCE },
		{ "target", required_argument, NULL, OPT_FIELD + QF_TARGET },
		{ "change-event", required_argument, NULL,
		    OPT_FIELD + QF_CHANGE_EVENT },
		{ "relationship-config", required_argument, NULL,
		    OPT_FIELD + QF_RELATIONSHIP_CONFIG },
		{ "run-at", required_argument, NULL, OPT_FIELD + QF_RUN_AT },
		{ "max-attempts", required_argument, NULL,
		    OPT_FIELD + QF_MAX_ATTEMPTS },
		{ "priority", required_argument, NULL,
		    OPT_FIELD + QF_PRIORITY },
		{ "ndjson", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	static const enum queue_field required[] = { QF_TYPE, QF_SOURCE,
	    QF_TARGET, QF_CHANGE_EVENT, QF_RELATIONSHIP_CONFIG };
	struct opts	o;
	size_t		i;
	int		ch, f;

	memset(&o, 0, sizeof(o));
	optind = 0;
	opterr = 0;
	for (;;) {
		ch = getopt_long(argc, argv, ":", longopts, NULL);
		if (ch == -1)
			break;
		if (ch == 'n' && o.ndjson != NULL)
			return cmd_usage_error(&cmd_enqueue, "--ndjson given "
			    "twice");
		if (ch == 'n') {
			o.ndjson = optarg;
			continue;
		}
		if (ch < OPT_FIELD || ch >= OPT_FIELD + QF_COUNT)
			return queue_bad_option(&cmd_enqueue, ch, argv);
		f = ch - OPT_FIELD;
		if (o.v[f] != NULL)
			return cmd_usage_error(&cmd_enqueue, "%s given twice",
			    queue_field_option(f));
		o.v[f] = optarg;
	}
	if (optind < argc)
		return cmd_usage_error(&cmd_enqueue, "unexpected argument "
		    "'%s'", argv[optind]);
	if (o.ndjson != NULL) {
		for (f = 0; f < QF_COUNT; f++)
			if (o.v[f] != NULL)
				return cmd_usage_error(&cmd_enqueue, "%s cannot "
				    "be combined with --ndjson, which reads "
				    "every field from the file",
				    queue_field_option(f));
		return enqueue_ndjson(a, o.ndjson);
	}
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (o.v[required[i]] == NULL)
			return cmd_usage_error(&cmd_enqueue, "%s is required",
			    queue_field_option(required[i]));
	if (strcmp(o.v[QF_CHANGE_EVENT], "-") == 0 &&
	    strcmp(o.v[QF_RELATIONSHIP_CONFIG], "-") == 0)
		return cmd_usage_error(&cmd_enqueue, "only one of "
		    "--change-event and --relationship-config can read stdin "
		    "('-'); give the other as text or @FILE");
	return enqueue_one(a, &o);
}

const struct cmd cmd_enqueue = {
	"enqueue",
	"--type TYPE --source OWNER/REPO --target OWNER/REPO "
	"--change-event JSON --relationship-config JSON [--id ID] "
	"[--skill NAME] [--run-at TIME] [--max-attempts N] [--priority N] | "
	"--ndjson FILE",
	"add tasks to the queue",
	"Add one task; its id is printed as the last line (a generated UUID "
	"unless --id is given).  JSON arguments are the text itself, @FILE, "
	"or - for stdin (one of them at most); change_event and "
	"relationship_config must be JSON objects, at most 1 MiB each.  "
	"Repositories are OWNER/REPO (letters, digits, '.', '_', '-'); TYPE "
	"and NAME use the same characters, at most 50 and 100 of them; an "
	"id is at most 64 printable ASCII characters without spaces.  The "
	"skill defaults to trigger_TYPE.  --run-at takes what PostgreSQL "
	"reads as a timestamptz (ISO 8601 such as 2026-11-28T09:00:00Z; "
	"without a zone, the server's time zone) or +DURATION such as +30s, "
	"+5m, +2h.  --max-attempts is 1 to 100 (default 3), --priority "
	"-1000000 to 1000000 (default 0; higher runs first).\n"
	"--ndjson FILE (- for stdin): one JSON object per line with the "
	"keys task_type, source_repo, target_repo, change_event, "
	"relationship_config and optionally task_id, skill_name, "
	"max_attempts, run_at, priority; blank lines are skipped, other keys "
	"refused, lines are at most 3 MiB.  The file is loaded with COPY in "
	"one transaction: a bad line, or a task id that exists already, "
	"means nothing is queued, and the line is named.\n"
	"Bad input exits 65 and inserts nothing; an unreadable file 66.",
	enqueue_run,
};
