/*
 * test_gcp.c - auth and secret against the fake Google server: the
 * service-account JWT flow, the metadata server, caching and refresh,
 * retries, and Secret Manager's answers.  Needs no PostgreSQL; it lives in
 * the integration binary so make check runs it.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "fake.h"
#include "helpers.h"
#include "secret.h"

static struct fake f;

static void
up(void)
{
	fake_start(&f);
}

static void
down(void)
{
	fake_stop(&f);
}

TestSuite(gcp, .init = up, .fini = down, .timeout = 60);

static void
config(const char *json)
{
	free(fake_post(&f, "/_fake/config", json));
}

static void
fault(const char *json)
{
	free(fake_post(&f, "/_fake/faults", json));
}

/* The requests the fake logged for op, as a json-c array (caller puts). */
static json_object *
log_of(const char *op)
{
	char		 path[128], *body;
	json_object	*o, *e;

	snprintf(path, sizeof(path), "/_fake/log?op=%s", op);
	cr_assert_eq(fake_get(&f, path, &body), 200);
	o = json_tokener_parse(body);
	cr_assert(o != NULL && json_object_object_get_ex(o, "entries", &e),
	    "%s", body);
	json_object_get(e);
	json_object_put(o);
	free(body);
	return e;
}

static size_t
count_of(const char *op)
{
	json_object	*e = log_of(op);
	size_t		 n = json_object_array_length(e);

	json_object_put(e);
	return n;
}

/* A registered key for email in a 0600 file; caller frees the path. */
static char *
key_for(const char *email)
{
	char json[256], *body, *path;

	snprintf(json, sizeof(json), "{\"client_email\":\"%s\","
	    "\"project_id\":\"p\"}", email);
	body = fake_post(&f, "/_fake/make_key", json);
	path = write_temp(body, 0600);
	free(body);
	return path;
}

static struct auth *
key_auth(const char *path)
{
	struct auth_opts o = { 0, path, NULL, NULL };
	struct auth	*a;
	char		 err[1024];

	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL, "%s", err);
	return a;
}

static struct auth *
metadata_auth(void)
{
	struct auth_opts o = { 0, NULL, fake_host(&f), NULL };
	struct auth	*a;
	char		 err[1024];

	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL, "%s", err);
	return a;
}

/* No secret in an error text: no JWT, no key, no token. */
static void
clean_error(const char *err)
{
	cr_expect(strstr(err, "eyJ") == NULL, "assertion in error: %s", err);
	cr_expect(strstr(err, "PRIVATE KEY") == NULL, "key in error: %s", err);
	cr_expect(strstr(err, "ya29.") == NULL, "token in error: %s", err);
}

Test(gcp, service_account_token_is_cached_and_works)
{
	char		*path = key_for("sa@p.iam.gserviceaccount.com"), *t1;
	char		 err[1024], *value = NULL;
	const char	*tok;
	struct auth	*a;

	config("{\"auth\":true,\"secrets\":{\"projects/p/secrets/pw\":"
	    "[\"s3cret\\n\"]}}");
	a = key_auth(path);
	cr_assert_str_eq(auth_kind(a),
	    "service-account sa@p.iam.gserviceaccount.com");
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	cr_assert(tok != NULL && strncmp(tok, "ya29.", 5) == 0);
	t1 = strdup(tok);
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(tok, t1);
	cr_assert_eq(count_of("token"), 1, "second call was not cached");

	/* The token is accepted by an API that requires one. */
	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/pw/versions/latest", &value, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(value, "s3cret");
	cr_assert_eq(count_of("token"), 1);
	secret_free(value);
	free(t1);
	auth_free(a);
	unlink(path);
	free(path);
}

/* A key file claiming account a but holding b's private key. */
static char *
mixed_key(void)
{
	char		*pa = key_for("a@p.iam.gserviceaccount.com");
	char		*pb = key_for("b@p.iam.gserviceaccount.com");
	char		*ta = read_file(pa), *tb = read_file(pb), *path;
	json_object	*oa = json_tokener_parse(ta), *ob = json_tokener_parse(tb);
	json_object	*pk;

	cr_assert(oa != NULL && ob != NULL);
	cr_assert(json_object_object_get_ex(ob, "private_key", &pk));
	json_object_object_add(oa, "private_key", json_object_get(pk));
	path = write_temp(json_object_to_json_string(oa), 0600);
	json_object_put(oa);
	json_object_put(ob);
	unlink(pa);
	unlink(pb);
	free(pa);
	free(pb);
	free(ta);
	free(tb);
	return path;
}

Test(gcp, bad_signature_is_refused_at_once)
{
	char		*path = mixed_key(), err[1024];
	const char	*tok;
	struct auth	*a = key_auth(path);

	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), -1);
	cr_expect(strstr(err, "HTTP 400") != NULL, "%s", err);
	cr_expect(strstr(err, "invalid_grant: Invalid JWT Signature.") !=
	    NULL, "%s", err);
	cr_expect(strstr(err, "a@p.iam.gserviceaccount.com") != NULL, "%s",
	    err);
	clean_error(err);
	cr_expect_eq(count_of("token"), 1, "a 400 must not be retried");
	auth_free(a);
	unlink(path);
	free(path);
}

Test(gcp, wrong_audience_is_refused)
{
	char		*path = key_for("sa@p.iam.gserviceaccount.com");
	char		 json[256], err[1024];
	const char	*tok;
	struct auth	*a = key_auth(path);

	snprintf(json, sizeof(json), "{\"token_uri\":\"%s/oauth2/v4/token\"}",
	    fake_url(&f));
	config(json);
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), -1);
	cr_expect(strstr(err, "Failed audience check") != NULL, "%s", err);
	clean_error(err);
	auth_free(a);
	unlink(path);
	free(path);
}

Test(gcp, metadata_token)
{
	struct auth	*a;
	const char	*tok, *flavor;
	char		 err[1024], *t1;
	json_object	*e, *h, *v;

	config("{\"auth\":true,\"metadata\":{\"email\":"
	    "\"vm@p.iam.gserviceaccount.com\"}}");
	a = metadata_auth();
	cr_assert_str_eq(auth_kind(a), "metadata");
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	cr_assert(tok != NULL && strncmp(tok, "ya29.", 5) == 0);
	t1 = strdup(tok);
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(tok, t1);
	e = log_of("metadata_token");
	cr_assert_eq(json_object_array_length(e), 1);
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(e, 0),
	    "headers", &h));
	cr_assert(json_object_object_get_ex(h, "Metadata-Flavor", &v));
	flavor = json_object_get_string(v);
	cr_assert_str_eq(flavor, "Google");
	json_object_put(e);
	free(t1);
	auth_free(a);
}

Test(gcp, metadata_attribute_get_and_not_set)
{
	struct auth	*a;
	char		 err[1024], *value = NULL;

	config("{\"metadata\":{\"attributes\":{\"pg-secret\":"
	    "\"projects/p/secrets/pw/versions/2\"}}}");
	a = metadata_auth();
	cr_assert_eq(auth_metadata_get(a, "instance/attributes/pg-secret",
	    &value, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(value, "projects/p/secrets/pw/versions/2");
	free(value);
	value = NULL;
	cr_assert_eq(auth_metadata_get(a, "instance/attributes/nope", &value,
	    err, sizeof(err)), 1, "%s", err);
	cr_assert_null(value);
	cr_assert_eq(auth_metadata_get(a, "../token", &value, err,
	    sizeof(err)), -1);
	auth_free(a);
}

Test(gcp, short_lived_token_is_refreshed)
{
	char		*path = key_for("sa@p.iam.gserviceaccount.com");
	char		 err[1024], *t1;
	const char	*tok;
	struct auth	*a = key_auth(path);

	config("{\"token_ttl\":1}");
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	t1 = strdup(tok);
	usleep(1000000);	/* past 0.9 s: a tenth of the lifetime left */
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_neq(tok, t1);
	cr_assert_eq(count_of("token"), 2);
	free(t1);
	auth_free(a);
	unlink(path);
	free(path);
}

Test(gcp, transient_failures_are_retried)
{
	char		*path = key_for("sa@p.iam.gserviceaccount.com");
	char		 err[1024], *value = NULL;
	const char	*tok;
	struct auth	*a = key_auth(path), *m;
	json_object	*e, *st;

	fault("{\"op\":\"token\",\"kind\":\"503\",\"count\":2}");
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0, "%s", err);
	cr_assert(tok != NULL);
	e = log_of("token");
	cr_assert_eq(json_object_array_length(e), 3);
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(e, 0),
	    "status", &st));
	cr_assert_eq(json_object_get_int(st), 503);
	json_object_put(e);

	/* A 403 from the metadata server is final. */
	fault("{\"op\":\"metadata_token\",\"kind\":\"403\"}");
	m = metadata_auth();
	cr_assert_eq(auth_token(m, &tok, err, sizeof(err)), -1);
	cr_expect(strstr(err, "HTTP 403") != NULL, "%s", err);
	cr_expect_eq(count_of("metadata_token"), 1);

	/* Persistent 503s give up with a clear message. */
	fault("{\"op\":\"metadata\",\"kind\":\"503\",\"count\":10}");
	cr_assert_eq(auth_metadata_get(m, "instance/attributes/x", &value,
	    err, sizeof(err)), -1);
	cr_expect(strstr(err, "failed 4 times") != NULL, "%s", err);
	cr_expect(strstr(err, "HTTP 503") != NULL, "%s", err);
	auth_free(m);
	auth_free(a);
	unlink(path);
	free(path);
}

Test(gcp, secret_access_answers)
{
	struct auth_opts o = { 1, NULL, NULL, NULL };
	struct auth	*a;
	char		 err[1024], *value = NULL;

	config("{\"secrets\":{\"projects/p/secrets/pw\":[\"old\","
	    "\"line1\\nline2\\n\\n\"],\"projects/p/secrets/no\":"
	    "{\"versions\":[\"x\"],\"deny\":true}}}");
	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL);

	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/pw/versions/1", &value, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_str_eq(value, "old");
	secret_free(value);
	/* Only one trailing newline goes. */
	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/pw/versions/latest", &value, err,
	    sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(value, "line1\nline2\n");
	secret_free(value);
	value = NULL;

	fault("{\"op\":\"secret\",\"kind\":\"bad_hash\"}");
	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/pw/versions/latest", &value, err,
	    sizeof(err)), -1);
	cr_expect(strstr(err, "payload corrupted in transit; retry") != NULL,
	    "%s", err);
	cr_expect(strstr(err, "line1") == NULL, "value in error: %s", err);
	cr_assert_null(value);

	fault("{\"op\":\"secret\",\"kind\":\"corrupt\"}");
	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/pw/versions/latest", &value, err,
	    sizeof(err)), -1);
	cr_expect(strstr(err, "payload corrupted in transit; retry") != NULL,
	    "%s", err);

	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/no/versions/1", &value, err, sizeof(err)), -1);
	cr_expect(strstr(err, "roles/secretmanager.secretAccessor") != NULL,
	    "%s", err);
	cr_expect(strstr(err, "projects/p/secrets/no/versions/1") != NULL,
	    "%s", err);

	cr_assert_eq(secret_access(a, fake_url(&f),
	    "projects/p/secrets/gone/versions/1", &value, err, sizeof(err)),
	    -1);
	cr_expect(strstr(err, "secret or version not found") != NULL, "%s",
	    err);

	/* A bad name is refused before any request. */
	cr_assert_eq(secret_access(a, fake_url(&f), "pw", &value, err,
	    sizeof(err)), -1);
	cr_expect_eq(count_of("secret"), 6);
	auth_free(a);
}

Test(gcp, not_a_metadata_server)
{
	struct sockaddr_in	 sa;
	socklen_t		 sl = sizeof(sa);
	struct auth_opts	 o = { 0, NULL, NULL, NULL };
	struct auth		*a;
	char			 host[32], err[1024], buf[4096], *value;
	const char		*resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
	    "Connection: close\r\n\r\nhi";
	int			 s, c, st;
	pid_t			 pid;

	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(listen(s, 4) == 0);
	cr_assert(getsockname(s, (struct sockaddr *)&sa, &sl) == 0);
	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		c = accept(s, NULL, NULL);
		if (read(c, buf, sizeof(buf)) > 0 &&
		    write(c, resp, strlen(resp)) > 0)
			close(c);
		_exit(0);
	}
	close(s);
	snprintf(host, sizeof(host), "127.0.0.1:%d", ntohs(sa.sin_port));
	o.metadata_host = host;
	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL);
	cr_assert_eq(auth_metadata_get(a, "instance/attributes/x", &value,
	    err, sizeof(err)), -1);
	cr_expect(strstr(err, "Metadata-Flavor") != NULL, "%s", err);
	auth_free(a);
	waitpid(pid, &st, 0);
}
