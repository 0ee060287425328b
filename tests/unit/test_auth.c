/*
 * test_auth.c - the service-account JWT (fields, base64url, a signature
 * the public key verifies), key-file checks and secret names; no network.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "helpers.h"
#include "secret.h"

static EVP_PKEY *key;

/* A fresh RSA key as PKCS#8 PEM (caller frees). */
static char *
key_pem(void)
{
	BIO	*b = BIO_new(BIO_s_mem());
	char	*data, *pem;
	long	 n;

	if (key == NULL)
		key = EVP_RSA_gen(2048);
	cr_assert(key != NULL && b != NULL);
	cr_assert(PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL,
	    NULL) == 1);
	n = BIO_get_mem_data(b, &data);
	pem = strndup(data, (size_t)n);
	BIO_free(b);
	return pem;
}

/* A key file: drop (NULL) or replace one member; caller frees the path. */
static char *
key_file(const char *member, const char *value, int mode)
{
	json_object	*o = json_object_new_object();
	char		*pem = key_pem(), *path;

	json_object_object_add(o, "type",
	    json_object_new_string("service_account"));
	json_object_object_add(o, "project_id", json_object_new_string("p"));
	json_object_object_add(o, "private_key_id",
	    json_object_new_string("kid-1"));
	json_object_object_add(o, "private_key", json_object_new_string(pem));
	json_object_object_add(o, "client_email",
	    json_object_new_string("sa@p.iam.gserviceaccount.com"));
	json_object_object_add(o, "token_uri",
	    json_object_new_string("https://oauth2.googleapis.com/token"));
	if (member != NULL) {
		json_object_object_del(o, member);
		if (value != NULL)
			json_object_object_add(o, member,
			    json_object_new_string(value));
	}
	path = write_temp(json_object_to_json_string(o), mode);
	json_object_put(o);
	free(pem);
	return path;
}

/* base64url text (no padding) decoded to a NUL-terminated buffer. */
static unsigned char *
unb64url(const char *s, size_t len, size_t *outlen)
{
	char		*t = calloc(1, len + 4);
	unsigned char	*out = calloc(1, len + 4);
	size_t		 i;
	int		 n;

	for (i = 0; i < len; i++) {
		cr_assert(strchr("+/=", s[i]) == NULL, "not base64url: %.*s",
		    (int)len, s);
		t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	}
	while (i % 4 != 0)
		t[i++] = '=';
	n = EVP_DecodeBlock(out, (unsigned char *)t, (int)i);
	cr_assert(n >= 0);
	while (i > 0 && t[i - 1] == '=') {
		n--;
		i--;
	}
	*outlen = (size_t)n;
	out[n] = '\0';
	free(t);
	return out;
}

static struct auth *
auth_for(const char *path, char *err, size_t errlen)
{
	struct auth_opts o = { 0, path, NULL, NULL };

	return auth_new(&o, err, errlen);
}

Test(auth, jwt_fields_and_signature)
{
	char		 err[512];
	char		*path = key_file(NULL, NULL, 0600), *jwt;
	const char	*dot1, *dot2;
	struct auth	*a = auth_for(path, err, sizeof(err));
	unsigned char	*hdr, *cl, *sig;
	size_t		 hl, cll, sl;
	json_object	*h, *c, *v;
	EVP_MD_CTX	*ctx;

	cr_assert(a != NULL, "%s", err);
	cr_assert_str_eq(auth_kind(a),
	    "service-account sa@p.iam.gserviceaccount.com");
	jwt = auth_jwt(a, 1700000000, err, sizeof(err));
	cr_assert(jwt != NULL, "%s", err);
	dot1 = strchr(jwt, '.');
	cr_assert(dot1 != NULL);
	dot2 = strchr(dot1 + 1, '.');
	cr_assert(dot2 != NULL && strchr(dot2 + 1, '.') == NULL);

	hdr = unb64url(jwt, (size_t)(dot1 - jwt), &hl);
	cl = unb64url(dot1 + 1, (size_t)(dot2 - dot1 - 1), &cll);
	sig = unb64url(dot2 + 1, strlen(dot2 + 1), &sl);
	h = json_tokener_parse((char *)hdr);
	c = json_tokener_parse((char *)cl);
	cr_assert(h != NULL && c != NULL);
	cr_assert(json_object_object_get_ex(h, "alg", &v));
	cr_assert_str_eq(json_object_get_string(v), "RS256");
	cr_assert(json_object_object_get_ex(h, "typ", &v));
	cr_assert_str_eq(json_object_get_string(v), "JWT");
	cr_assert(json_object_object_get_ex(h, "kid", &v));
	cr_assert_str_eq(json_object_get_string(v), "kid-1");
	cr_assert(json_object_object_get_ex(c, "iss", &v));
	cr_assert_str_eq(json_object_get_string(v),
	    "sa@p.iam.gserviceaccount.com");
	cr_assert(json_object_object_get_ex(c, "scope", &v));
	cr_assert_str_eq(json_object_get_string(v), AUTH_DEFAULT_SCOPE);
	cr_assert(json_object_object_get_ex(c, "aud", &v));
	cr_assert_str_eq(json_object_get_string(v),
	    "https://oauth2.googleapis.com/token");
	cr_assert(json_object_object_get_ex(c, "iat", &v));
	cr_assert_eq(json_object_get_int64(v), 1700000000);
	cr_assert(json_object_object_get_ex(c, "exp", &v));
	cr_assert_eq(json_object_get_int64(v), 1700000000 + 3600);

	/* The signature covers "header.claims" as sent. */
	cr_assert_eq(sl, 256);
	ctx = EVP_MD_CTX_new();
	cr_assert(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
	    key) == 1);
	cr_assert_eq(EVP_DigestVerify(ctx, sig, sl, (unsigned char *)jwt,
	    (size_t)(dot2 - jwt)), 1, "signature does not verify");
	EVP_MD_CTX_free(ctx);
	/* One changed byte of the claims must not verify. */
	jwt[dot1 - jwt + 2] ^= 1;
	ctx = EVP_MD_CTX_new();
	cr_assert(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL,
	    key) == 1);
	cr_assert_neq(EVP_DigestVerify(ctx, sig, sl, (unsigned char *)jwt,
	    (size_t)(dot2 - jwt)), 1);
	EVP_MD_CTX_free(ctx);

	json_object_put(h);
	json_object_put(c);
	free(hdr);
	free(cl);
	free(sig);
	free(jwt);
	auth_free(a);
	unlink(path);
	free(path);
}

Test(auth, jwt_uses_the_given_scope)
{
	struct auth_opts o = { 0, NULL, NULL, "https://x/scope" };
	char		 err[512], *jwt, *cl;
	const char	*d1, *d2;
	size_t		 n;
	struct auth	*a;

	o.credentials_file = key_file(NULL, NULL, 0600);
	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL, "%s", err);
	jwt = auth_jwt(a, 1, err, sizeof(err));
	cr_assert(jwt != NULL);
	d1 = strchr(jwt, '.');
	d2 = strchr(d1 + 1, '.');
	cl = (char *)unb64url(d1 + 1, (size_t)(d2 - d1 - 1), &n);
	cr_assert(strstr(cl, "\"scope\":\"https://x/scope\"") != NULL, "%s",
	    cl);
	free(cl);
	free(jwt);
	auth_free(a);
	unlink(o.credentials_file);
	free((char *)o.credentials_file);
}

struct bad_key {
	const char	*member, *value;
	int		 mode;
	const char	*want;
};

static const struct bad_key bad_keys[] = {
	{ NULL, NULL, 0644, "readable by group or others (mode 0644); run: "
	    "chmod 600" },
	{ NULL, NULL, 0640, "(mode 0640)" },
	{ "type", "authorized_user", 0600, "is a \"authorized_user\" "
	    "credential, not a service-account key" },
	{ "type", NULL, 0600, "without \"type\"" },
	{ "client_email", NULL, 0600, "has no \"client_email\"" },
	{ "private_key", NULL, 0600, "has no \"private_key\"" },
	{ "private_key", "", 0600, "has no \"private_key\"" },
	{ "token_uri", NULL, 0600, "has no \"token_uri\"" },
	{ "private_key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END "
	    "PRIVATE KEY-----\n", 0600, "not an RSA private key" },
	{ "token_uri", "http://oauth.example.com/token", 0600,
	    "refusing to send credentials" },
};

Test(auth, key_file_errors)
{
	char		 err[1024];
	char		*path;
	struct auth	*a;
	size_t		 i;

	for (i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
		path = key_file(bad_keys[i].member, bad_keys[i].value,
		    bad_keys[i].mode);
		err[0] = '\0';
		a = auth_for(path, err, sizeof(err));
		cr_expect(a == NULL, "case %zu accepted", i);
		cr_expect(strstr(err, bad_keys[i].want) != NULL,
		    "case %zu: want '%s' in '%s'", i, bad_keys[i].want, err);
		cr_expect(strncmp(err, "auth: ", 6) == 0, "%s", err);
		cr_expect(strstr(err, "PRIVATE KEY") == NULL, "key in error");
		auth_free(a);
		unlink(path);
		free(path);
	}
}

Test(auth, key_file_not_json)
{
	const char	*texts[] = { "{\"type\": \"service_account\",", "[1]",
	    "", NULL };
	char		 err[1024], *path;
	struct auth	*a;

	for (const char **t = texts; *t != NULL; t++) {
		path = write_temp(*t, 0600);
		a = auth_for(path, err, sizeof(err));
		cr_expect(a == NULL);
		cr_expect(strstr(err, "is not a JSON object") != NULL, "%s",
		    err);
		auth_free(a);
		unlink(path);
		free(path);
	}
	a = auth_for("/nonexistent/key.json", err, sizeof(err));
	cr_expect(a == NULL);
	cr_expect(strstr(err, "cannot open service-account key "
	    "/nonexistent/key.json: No such file") != NULL, "%s", err);
}

Test(auth, kinds_without_key)
{
	struct auth_opts o = { 1, NULL, NULL, NULL };
	const char	*tok = "x";
	char		 err[256];
	struct auth	*a;

	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL);
	cr_assert_str_eq(auth_kind(a), "none");
	cr_assert_eq(auth_token(a, &tok, err, sizeof(err)), 0);
	cr_assert_null(tok);
	cr_assert_null(auth_jwt(a, 1, err, sizeof(err)));
	auth_free(a);
	o.no_auth = 0;
	a = auth_new(&o, err, sizeof(err));
	cr_assert(a != NULL);
	cr_assert_str_eq(auth_kind(a), "metadata");
	auth_free(a);
	auth_free(NULL);
}

Test(auth, error_text_shapes)
{
	char out[200];

	auth_error_text("{\"error\":\"invalid_grant\",\"error_description\":"
	    "\"Invalid JWT Signature.\"}", out, sizeof(out));
	cr_assert_str_eq(out, "invalid_grant: Invalid JWT Signature.");
	auth_error_text("{\"error\":{\"code\":403,\"message\":\"denied\"}}",
	    out, sizeof(out));
	cr_assert_str_eq(out, "denied");
	auth_error_text("not found\n", out, sizeof(out));
	cr_assert_str_eq(out, "not found");
}

Test(secret, name_check)
{
	static const char *good[] = {
		"projects/p1-x/secrets/pg_pass/versions/latest",
		"projects/123456/secrets/a/versions/7",
		"projects/example.com:proj/secrets/A-b_c/versions/1",
		NULL };
	static const char *bad[] = {
		"", "projects/p/secrets/s", "projects/p/secrets/s/versions/",
		"projects//secrets/s/versions/1",
		"projects/p/secrets/s/versions/1/",
		"projects/p/secrets/s/versions/1:access",
		"projects/p/secrets/s t/versions/1",
		"projects/P/secrets/s/versions/1",
		"projects/p/secrets/../versions/1",
		"projects/p/secrets/s/versions/1?x=1",
		"https://secretmanager.googleapis.com/v1/projects/p/secrets/s/"
		    "versions/1",
		NULL };
	char err[512];

	for (const char **g = good; *g != NULL; g++)
		cr_expect_eq(secret_name_check(*g, err, sizeof(err)), 0,
		    "%s: %s", *g, err);
	for (const char **b = bad; *b != NULL; b++) {
		err[0] = '\0';
		cr_expect_eq(secret_name_check(*b, err, sizeof(err)), -1,
		    "accepted '%s'", *b);
		cr_expect(strstr(err, "projects/PROJECT/secrets/NAME/versions/"
		    "VERSION") != NULL, "%s", err);
	}
	secret_free(NULL);
}
