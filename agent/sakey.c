/*
 * sakey.c - a Google service-account key: the JSON key file read and
 * checked (mode, fields, an RSA private key in PEM form), and the RS256
 * JWT assertion it signs (OpenSSL EVP) for token_uri to trade for an
 * access token.  No network here: auth.c does the trading.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sakey.h"

#define SAKEY_MAXKEY	(64 * 1024)
#define SAKEY_JWT_LIFE	3600		/* the most Google accepts */

/* No passphrase prompt: service-account keys are not encrypted. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

/* A required non-empty string member of the key file, or NULL. */
static const char *
key_field(json_object *o, const char *name)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    *json_object_get_string(v) == '\0')
		return NULL;
	return json_object_get_string(v);
}

/*
 * Read and check the key file at path (borrowed).  Returns a key owned by
 * the caller (sakey_free), or NULL with err filled.
 */
struct sakey *
sakey_load(const char *path, char *err, size_t errlen)
{
	static const char *need[] = { "client_email", "private_key",
	    "token_uri", NULL };
	struct sakey	*k;
	const char	*type, *pem, **f;
	json_object	*o = NULL, *pk;
	json_tokener	*tok = NULL;
	enum json_tokener_error jerr;
	struct stat	 st;
	BIO		*bio = NULL;
	char		*buf = NULL;
	ssize_t		 n;
	size_t		 len = 0;
	int		 fd, rc = -1;

	k = calloc(1, sizeof(*k));
	if (k != NULL)
		k->path = strdup(path);
	if (k == NULL || k->path == NULL) {
		free(k);
		snprintf(err, errlen, "auth: out of memory");
		return NULL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		snprintf(err, errlen, "auth: cannot open service-account key "
		    "%s: %s; check GOOGLE_APPLICATION_CREDENTIALS or [gcs] "
		    "credentials_file", path, strerror(errno));
		sakey_free(k);
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "auth: service-account key %s is not a "
		    "regular file", path);
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "auth: service-account key %s is "
		    "readable by group or others (mode %04o); run: chmod 600 "
		    "%s", path, (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > SAKEY_MAXKEY) {
		snprintf(err, errlen, "auth: %s is %lld bytes, too large for "
		    "a service-account key", path, (long long)st.st_size);
		goto out;
	}
	buf = calloc(1, SAKEY_MAXKEY + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		goto out;
	}
	while (len < SAKEY_MAXKEY) {
		n = read(fd, buf + len, SAKEY_MAXKEY - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "auth: reading %s: %s", path,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	tok = json_tokener_new();
	if (tok == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		goto out;
	}
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr != json_tokener_success || !json_object_is_type(o,
	    json_type_object)) {
		snprintf(err, errlen, "auth: service-account key %s is not a "
		    "JSON object (%s); download the key again (IAM > Service "
		    "accounts > Keys > Add key > JSON)", path,
		    jerr != json_tokener_success ?
		    json_tokener_error_desc(jerr) : "another JSON value");
		goto out;
	}
	type = key_field(o, "type");
	if (type == NULL || strcmp(type, "service_account") != 0) {
		snprintf(err, errlen, "auth: %s is %s%.40s%s, not a "
		    "service-account key (\"type\": \"service_account\"); use "
		    "a service account's JSON key, or unset the key file to "
		    "use the VM's service account", path,
		    type ? "a \"" : "a file without \"type\"", type ? type : "",
		    type ? "\" credential" : "");
		goto out;
	}
	for (f = need; *f != NULL; f++) {
		if (key_field(o, *f) == NULL) {
			snprintf(err, errlen, "auth: service-account key %s "
			    "has no \"%s\"; download the key again (IAM > "
			    "Service accounts > Keys)", path, *f);
			goto out;
		}
	}
	k->email = strdup(key_field(o, "client_email"));
	k->token_uri = strdup(key_field(o, "token_uri"));
	k->key_id = key_field(o, "private_key_id") ?
	    strdup(key_field(o, "private_key_id")) : NULL;
	if (k->email == NULL || k->token_uri == NULL) {
		snprintf(err, errlen, "auth: out of memory");
		goto out;
	}
	pem = key_field(o, "private_key");
	bio = BIO_new_mem_buf(pem, -1);
	if (bio != NULL)
		k->key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase,
		    NULL);
	if (k->key == NULL || EVP_PKEY_get_base_id(k->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "auth: the private_key in %s is not an "
		    "RSA private key in PEM form; download the key again", path);
		goto out;
	}
	rc = 0;
out:
	/* json-c does not wipe: clear the PEM it copied before freeing. */
	if (o != NULL && json_object_object_get_ex(o, "private_key", &pk) &&
	    json_object_is_type(pk, json_type_string))
		explicit_bzero((char *)json_object_get_string(pk),
		    (size_t)json_object_get_string_len(pk));
	BIO_free(bio);
	json_object_put(o);
	if (tok != NULL)
		json_tokener_free(tok);
	if (buf != NULL)
		explicit_bzero(buf, SAKEY_MAXKEY);
	free(buf);
	close(fd);
	if (rc == -1) {
		sakey_free(k);
		return NULL;
	}
	return k;
}

/* base64url without padding (RFC 7515); caller frees. */
static char *
b64url(const unsigned char *in, size_t len)
{
	char	*out, *p;
	int	 n;

	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (p = out; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	return out;
}

/* json-c's compact text of o, base64url'd; caller frees. */
static char *
json_b64url(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	return s ? b64url((const unsigned char *)s, strlen(s)) : NULL;
}

char *
sakey_jwt(const struct sakey *k, const char *scope, time_t iat, char *err,
    size_t errlen)
{
	json_object	*hdr = NULL, *cl = NULL;
	EVP_MD_CTX	*ctx = NULL;
	unsigned char	*sig = NULL;
	char		*h64 = NULL, *c64 = NULL, *s64 = NULL, *input = NULL;
	char		*jwt = NULL;
	size_t		 siglen = 0;

	hdr = json_object_new_object();
	cl = json_object_new_object();
	if (hdr == NULL || cl == NULL)
		goto nomem;
	json_object_object_add(hdr, "alg", json_object_new_string("RS256"));
	json_object_object_add(hdr, "typ", json_object_new_string("JWT"));
	if (k->key_id != NULL)
		json_object_object_add(hdr, "kid",
		    json_object_new_string(k->key_id));
	json_object_object_add(cl, "iss", json_object_new_string(k->email));
	json_object_object_add(cl, "scope", json_object_new_string(scope));
	json_object_object_add(cl, "aud",
	    json_object_new_string(k->token_uri));
	json_object_object_add(cl, "iat", json_object_new_int64(iat));
	json_object_object_add(cl, "exp",
	    json_object_new_int64(iat + SAKEY_JWT_LIFE));
	h64 = json_b64url(hdr);
	c64 = json_b64url(cl);
	if (h64 == NULL || c64 == NULL ||
	    asprintf(&input, "%s.%s", h64, c64) == -1) {
		input = NULL;
		goto nomem;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx != NULL &&
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->key) == 1 &&
	    EVP_DigestSign(ctx, NULL, &siglen, (unsigned char *)input,
	    strlen(input)) == 1)
		sig = malloc(siglen);
	if (sig == NULL || EVP_DigestSign(ctx, sig, &siglen,
	    (unsigned char *)input, strlen(input)) != 1) {
		snprintf(err, errlen, "auth: signing the JWT for %s failed "
		    "(OpenSSL); the key in %s may be damaged", k->email,
		    k->path);
		goto out;
	}
	s64 = b64url(sig, siglen);
	if (s64 == NULL || asprintf(&jwt, "%s.%s", input, s64) == -1) {
		jwt = NULL;
		goto nomem;
	}
	goto out;
nomem:
	snprintf(err, errlen, "auth: out of memory");
out:
	EVP_MD_CTX_free(ctx);
	json_object_put(hdr);
	json_object_put(cl);
	free(sig);
	free(h64);
	free(c64);
	free(s64);
	free(input);
	return jwt;
}

void
sakey_free(struct sakey *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->key);
	free(k->path);
	free(k->email);
	free(k->key_id);
	free(k->token_uri);
	free(k);
}
