/*
 * test_doctor_down.c - doctor with the PostgreSQL server stopped: exit 2,
 * db.connect critical with its fix, the database checks unknown, no crash;
 * then healthy again once the server is back.  Runs in the restart suite
 * (one test at a time) because it stops the shared server.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers.h"

static const char *
check_status(json_object *doc, const char *id)
{
	json_object	*arr = json_object_object_get(doc, "checks"), *c;
	size_t		 i;

	for (i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		if (strcmp(json_object_get_string(json_object_object_get(c,
		    "id")), id) == 0)
			return json_object_get_string(json_object_object_get(c,
			    "status"));
	}
	return "missing";
}

Test(doctor_down, stopped_server_exits_2, .timeout = 120)
{
	static const char *const db_checks[] = { "db.version", "db.schema",
	    "db.sessions", "queue.depth", "queue.stuck", "queue.workers" };
	char		*db = migrated_db();
	const char	*args[] = { "doctor", "--json", "--skip",
	    "backup.age,backup.verify", NULL };
	struct run	 r;
	json_object	*doc;
	size_t		 i;
	time_t		 t0;

	pg_ctl("stop -m fast");
	t0 = time(NULL);
	run_agent(&r, db_env(db), NULL, args);
	cr_expect_leq(time(NULL) - t0, 10, "doctor must answer quickly when the server is down");
	pg_ctl("start");
	cr_assert_eq(r.status, 2, "%s", r.err);
	doc = json_tokener_parse(r.out);
	cr_assert_not_null(doc, "%s", r.out);
	cr_assert_str_eq(check_status(doc, "db.connect"), "crit");
	for (i = 0; i < sizeof(db_checks) / sizeof(db_checks[0]); i++)
		cr_expect_str_eq(check_status(doc, db_checks[i]), "unknown",
		    "%s", db_checks[i]);
	json_object_put(doc);
	run_free(&r);

	/* Back: the database checks answer again. */
	run_agent(&r, db_env(db), NULL, (const char *[]){ "doctor", "--json",
	    "--only", "db.connect,db.schema", NULL });
	cr_assert_eq(r.status, 0, "%s", r.out);
	run_free(&r);
	free(db);
}
