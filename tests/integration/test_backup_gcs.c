/*
 * test_backup_gcs.c - backups to Cloud Storage (the project's fake, with
 * faults): stored object checksums, list, restore, prune, verify of a
 * truncated object, and an unreachable service.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake.h"
#include "helpers.h"

struct gb {
	struct fake	 f;
	char		*db;
	char		 ini[128], dir[64], emu[96], dbv[96];
	const char	*env[6];
};

static void
gb_setup(struct gb *g, const char *extra)
{
	char text[1024], cmd[512];
	FILE *fp;

	fake_start(&g->f);
	free(fake_post(&g->f, "/_fake/config", "{\"buckets\": {\"backups\": {}, "
	    "\"ro\": {\"deny\": [\"storage.objects.create\"]}}}"));
	g->db = migrated_db();
	snprintf(cmd, sizeof(cmd), "%s/pgbench -q -i -s 1 %s >/dev/null 2>&1",
	    getenv("OA_PGBIN"), g->db);
	cr_assert_eq(system(cmd), 0);
	snprintf(g->dir, sizeof(g->dir), "/tmp/oa-gb-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", g->dir, g->dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(g->ini, sizeof(g->ini), "%s/agent.ini", g->dir);
	snprintf(text, sizeof(text), "[agent]\nstate_dir = %s/state\n[backup]\n"
	    "target = gs://backups/pg\nchunk_kib = 256\npg_dump = %s/pg_dump\n"
	    "pg_restore = %s/pg_restore\n%s", g->dir, getenv("OA_PGBIN"),
	    getenv("OA_PGBIN"), extra ? extra : "");
	fp = fopen(g->ini, "w");
	fputs(text, fp);
	fclose(fp);
	snprintf(g->emu, sizeof(g->emu), "STORAGE_EMULATOR_HOST=%s", fake_host(&g->f));
	snprintf(g->dbv, sizeof(g->dbv), "POSTGRES_DB=%s", g->db);
	g->env[0] = g->emu;
	g->env[1] = g->dbv;
	g->env[2] = "POSTGRES_USER=postgres";
	g->env[3] = NULL;
}

static void
gb_teardown(struct gb *g)
{
	char cmd[128];

	fake_stop(&g->f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g->dir);
	(void)!system(cmd);
	free(g->db);
}

static int
agent(struct gb *g, struct run *r, const char *const *args)
{
	const char *argv[12] = { "-c", g->ini };
	int n = 2;

	for (; *args && n < 11; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	return run_agent(r, g->env, NULL, argv);
}

Test(backup_gcs, backup_list_restore_with_faults, .timeout = 180)
{
	struct gb g;
	struct run r;
	json_object *arr, *objs, *rec;
	char *body, to[96], path[512];
	const char *name;
	PGconn *c;
	char *v;

	gb_setup(&g, "compression = none\n");
	/* Faults in the middle of a multi-chunk upload. */
	free(fake_post(&g.f, "/_fake/faults", "["
	    "{\"op\": \"upload_chunk\", \"kind\": \"503\", \"skip\": 2},"
	    "{\"op\": \"upload_chunk\", \"kind\": \"partial\", \"respond\": \"308\", \"skip\": 1},"
	    "{\"op\": \"upload_chunk\", \"kind\": \"drop_after_persist\", \"skip\": 1}]"));
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", NULL }), 0, "%s", r.err);
	cr_assert(strstr(r.out, "backup: stored ") != NULL, "%s", r.out);
	run_free(&r);

	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "list", "--json", NULL }), 0, "%s", r.err);
	arr = json_tokener_parse(r.out);
	cr_assert_eq(json_object_array_length(arr), 1, "%s", r.out);
	run_free(&r);
	rec = json_object_array_get_idx(arr, 0);
	name = json_object_get_string(json_object_object_get(rec, "name"));
	cr_assert(json_object_get_int64(json_object_object_get(rec, "stored_bytes")) > 3 * 262144,
	    "the dump is too small to span several chunks");

	/* The service's object matches what we computed. */
	cr_assert_eq(fake_get(&g.f, "/_fake/objects/backups", &body), 200);
	objs = json_tokener_parse(body);
	free(body);
	cr_assert_not_null(objs);
	snprintf(path, sizeof(path), "pg/%s", name);
	{
		int found = 0;
		json_object *items = json_object_is_type(objs, json_type_array) ? objs :
		    json_object_object_get(objs, "items");

		for (size_t i = 0; items && i < json_object_array_length(items); i++) {
			json_object *o = json_object_array_get_idx(items, i);

			if (strcmp(json_object_get_string(json_object_object_get(o, "name")), path) != 0)
				continue;
			found = 1;
			cr_assert_str_eq(json_object_get_string(json_object_object_get(o, "crc32c")),
			    json_object_get_string(json_object_object_get(rec, "crc32c")));
			cr_assert_str_eq(json_object_get_string(json_object_object_get(o, "md5Hash")),
			    json_object_get_string(json_object_object_get(rec, "md5")));
			/* The object says what it is in its custom metadata. */
			{
				json_object *md = json_object_object_get(o, "metadata");

				cr_assert_not_null(md);
				cr_assert_str_eq(json_object_get_string(json_object_object_get(md, "database")), g.db);
				cr_assert_str_eq(json_object_get_string(json_object_object_get(md, "raw_bytes")),
				    json_object_get_string(json_object_object_get(rec, "raw_bytes")));
				cr_assert_str_eq(json_object_get_string(json_object_object_get(md, "crc32c")),
				    json_object_get_string(json_object_object_get(rec, "crc32c")));
				cr_assert_not_null(json_object_object_get(md, "server_version"));
				cr_assert_not_null(json_object_object_get(md, "duration_ms"));
			}
		}
		cr_assert(found, "object %s not in the bucket", path);
	}
	json_object_put(objs);

	/* Restore into a new database: same row counts. */
	snprintf(to, sizeof(to), "%s_gs", g.db);
	cr_assert_eq(agent(&g, &r, (const char *[]){ "restore", "latest", "--to", to, NULL }), 0, "%s", r.err);
	run_free(&r);
	c = db_open(to);
	v = db_value(c, "SELECT count(*) FROM pgbench_accounts");
	cr_assert_str_eq(v, "100000");
	free(v);
	PQfinish(c);
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "verify", NULL }), 0, "%s", r.err);
	run_free(&r);
	json_object_put(arr);
	gb_teardown(&g);
}

Test(backup_gcs, prune_and_truncated_object, .timeout = 180)
{
	struct gb g;
	struct run r;
	json_object *arr;
	char path[600], *body;
	long st;

	/* keep_last alone: fresh backups beyond it go too. */
	gb_setup(&g, "keep_last = 2\n");
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", NULL }), 0, "%s", r.err);
		run_free(&r);
		sleep(1);	/* names have one-second resolution */
	}
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "prune", NULL }), 0, "%s", r.err);
	cr_assert(strstr(r.out, "2 kept, 1 deleted") != NULL, "%s", r.out);
	run_free(&r);
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "list", "--json", NULL }), 0, "%s", r.err);
	arr = json_tokener_parse(r.out);
	cr_assert_eq(json_object_array_length(arr), 2, "%s", r.out);
	run_free(&r);

	/* Replace the newest object with a truncated copy that keeps its
	 * generation and its record, as silent damage would. */
	snprintf(path, sizeof(path), "/_fake/object/backups/pg/%s",
	    json_object_get_string(json_object_object_get(json_object_array_get_idx(arr, 1), "name")));
	st = fake_get(&g.f, path, &body);
	cr_assert_eq(st, 200);
	{
		char url[8192], *objs_text, *esc;
		json_object *objs, *items, *md = NULL;
		CURL *cu = curl_easy_init();

		cr_assert_eq(fake_get(&g.f, "/_fake/objects/backups", &objs_text), 200);
		objs = json_tokener_parse(objs_text);
		items = json_object_object_get(objs, "items");
		for (size_t i = 0; i < json_object_array_length(items); i++) {
			json_object *o = json_object_array_get_idx(items, i);

			if (strcmp(json_object_get_string(json_object_object_get(o, "name")),
			    path + strlen("/_fake/object/backups/")) == 0)
				md = json_object_object_get(o, "metadata");
		}
		cr_assert_not_null(md);
		esc = curl_easy_escape(cu, json_object_to_json_string(md), 0);
		snprintf(url, sizeof(url), "%s?keepGeneration=1&metadata=%s", path, esc);
		curl_free(esc);
		curl_easy_cleanup(cu);
		body[100] = '\0';
		free(fake_post(&g.f, url, body));
		json_object_put(objs);
		free(objs_text);
	}
	free(body);
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "verify", NULL }), 65, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "NOT restorable") != NULL, "%s", r.err);
	run_free(&r);
	json_object_put(arr);
	gb_teardown(&g);
}

Test(backup_gcs, denied_bucket_and_stopped_service, .timeout = 120)
{
	struct gb g;
	struct run r;
	FILE *fp;

	gb_setup(&g, NULL);
	fp = fopen(g.ini, "a");
	fputs("", fp);
	fclose(fp);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "sed -i 's|gs://backups/pg|gs://ro/pg|' %s", g.ini);
		cr_assert_eq(system(cmd), 0);
	}
	cr_assert_neq(agent(&g, &r, (const char *[]){ "backup", NULL }), 0);
	cr_assert(strstr(r.err, "ro") && strstr(r.err, "storage.objects.create"), "%s", r.err);
	run_free(&r);
	fake_stop(&g.f);

	cr_assert_neq(agent(&g, &r, (const char *[]){ "backup", NULL }), 0);
	cr_assert(strstr(r.err, "nothing was stored") != NULL, "%s", r.err);
	run_free(&r);
	gb_teardown(&g);
}

/*
 * A server that refuses objects.patch (some GCS-compatible stores) still
 * gets a complete backup: the NAME.json record is the catalogue, the
 * metadata patch only a convenience.
 */
Test(backup_gcs, metadata_patch_refused_is_not_fatal, .timeout = 120)
{
	struct gb g;
	struct run r;
	json_object *arr;

	gb_setup(&g, NULL);
	free(fake_post(&g.f, "/_fake/faults",
	    "[{\"op\": \"patch\", \"kind\": \"501\", \"count\": 10}]"));
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", NULL }), 0, "%s", r.err);
	cr_assert(strstr(r.err, "the record could not be added to the metadata"), "the "
	    "patch was not refused: %s", r.err);
	run_free(&r);
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "list", "--json", NULL }), 0,
	    "%s", r.err);
	arr = json_tokener_parse(r.out);
	cr_assert_eq(json_object_array_length(arr), 1, "%s", r.out);
	json_object_put(arr);
	run_free(&r);
	cr_assert_eq(agent(&g, &r, (const char *[]){ "backup", "verify", "latest", NULL }), 0,
	    "%s", r.err);
	run_free(&r);
	gb_teardown(&g);
}
