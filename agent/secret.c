/*
 * secret.c - Secret Manager's versions/V:access, the one call the agent
 * needs (the database password on a fresh VM).  The payload carries a
 * CRC32C that is checked, since a flipped bit would be a wrong password
 * that fails far from here.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "hash.h"
#include "secret.h"

/* A path segment: 1..max of [A-Za-z0-9_.:-] (project ids may hold ':'). */
static int
segment(const char **p, size_t max, const char *allowed)
{
	size_t n = strspn(*p, allowed);

	if (n == 0 || n > max)
		return -1;
	*p += n;
	return 0;
}

int
secret_name_check(const char *name, char *err, size_t errlen)
{
	static const char id[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
	static const char proj[] = "abcdefghijklmnopqrstuvwxyz"
	    "0123456789-.:";
	const char *p = name;

	if (strncmp(p, "projects/", 9) != 0)
		goto bad;
	p += 9;
	if (segment(&p, 100, proj) == -1 || strncmp(p, "/secrets/", 9) != 0)
		goto bad;
	p += 9;
	if (segment(&p, 255, id) == -1 || strncmp(p, "/versions/", 10) != 0)
		goto bad;
	p += 10;
	if (segment(&p, 63, id) == -1 || *p != '\0')
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "secret: '%.300s' is not a secret version name; "
	    "write projects/PROJECT/secrets/NAME/versions/VERSION (VERSION "
	    "a number or latest)", name);
	return -1;
}

/* Decode and check payload.data against payload.dataCrc32c; -1 + err. */
static int
payload(const char *name, const char *body, char **value, char *err,
    size_t errlen)
{
	json_object	*o, *p, *d, *c;
	const char	*b64, *crcs;
	unsigned char	*buf = NULL;
	unsigned long	 want;
	char		*end;
	long		 n;
	size_t		 cap;
	int		 rc = -1;

	o = json_tokener_parse(body);
	if (o == NULL || !json_object_object_get_ex(o, "payload", &p) ||
	    !json_object_object_get_ex(p, "data", &d) ||
	    !json_object_is_type(d, json_type_string)) {
		snprintf(err, errlen, "secret: %s: the answer has no "
		    "payload.data; is the endpoint really Secret Manager?",
		    name);
		goto out;
	}
	b64 = json_object_get_string(d);
	cap = strlen(b64) / 4 * 3 + 1;
	buf = malloc(cap);
	if (buf == NULL) {
		snprintf(err, errlen, "secret: out of memory");
		goto out;
	}
	n = *b64 == '\0' ? 0 : hash_unbase64(b64, buf, cap - 1);
	if (n < 0) {
		snprintf(err, errlen, "secret: %s: payload.data is not base64; "
		    "payload corrupted in transit; retry", name);
		goto out;
	}
	if (!json_object_object_get_ex(p, "dataCrc32c", &c)) {
		snprintf(err, errlen, "secret: %s: the answer has no "
		    "payload.dataCrc32c, so it cannot be checked; retry",
		    name);
		goto out;
	}
	crcs = json_object_get_string(c);
	want = strtoul(crcs, &end, 10);
	if (*crcs == '\0' || *end != '\0' || want > 0xffffffffUL ||
	    hash_crc32c(0, buf, (size_t)n) != (uint32_t)want) {
		snprintf(err, errlen, "secret: %s: the payload does not match "
		    "its CRC32C; payload corrupted in transit; retry", name);
		goto out;
	}
	if (memchr(buf, '\0', (size_t)n) != NULL) {
		snprintf(err, errlen, "secret: %s holds a NUL byte, so it "
		    "cannot be used as text; store the value as plain text",
		    name);
		goto out;
	}
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	*value = (char *)buf;
	buf = NULL;
	rc = 0;
out:
	if (buf != NULL)
		explicit_bzero(buf, cap);
	free(buf);
	/* json-c does not wipe: clear its copy of the payload. */
	if (o != NULL && json_object_object_get_ex(o, "payload", &p) &&
	    json_object_object_get_ex(p, "data", &d) &&
	    json_object_is_type(d, json_type_string))
		explicit_bzero((char *)json_object_get_string(d),
		    (size_t)json_object_get_string_len(d));
	json_object_put(o);
	return rc;
}

/* Who needs the role, for the 403 message; static storage. */
static const char *
principal(const struct auth *a)
{
	static char	 buf[320];
	const char	*k = auth_kind(a);

	if (strncmp(k, "service-account ", 16) == 0)
		snprintf(buf, sizeof(buf), "%s", k + 16);
	else if (strcmp(k, "metadata") == 0)
		snprintf(buf, sizeof(buf), "the VM's service account");
	else
		snprintf(buf, sizeof(buf), "the caller");
	return buf;
}

int
secret_access(struct auth *a, const char *endpoint, const char *name,
    char **value, char *err, size_t errlen)
{
	char	 why[1024], text[400];
	char	*url = NULL, *body = NULL;
	long	 status;
	int	 rc = -1;

	*value = NULL;
	if (secret_name_check(name, err, errlen) == -1)
		return -1;
	if (endpoint == NULL || *endpoint == '\0')
		endpoint = SECRET_DEFAULT_ENDPOINT;
	if (asprintf(&url, "%s/v1/%s:access", endpoint, name) == -1) {
		url = NULL;
		snprintf(err, errlen, "secret: out of memory");
		goto out;
	}
	if (auth_get(a, url, &status, &body, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "secret: reading %s: %s", name, why);
		goto out;
	}
	if (status == 200) {
		rc = payload(name, body, value, err, errlen);
		goto out;
	}
	auth_error_text(body, text, sizeof(text));
	if (status == 403)
		snprintf(err, errlen, "secret: access to %s denied (%s); grant "
		    "%s the role roles/secretmanager.secretAccessor on the "
		    "secret", name, text, principal(a));
	else if (status == 404)
		snprintf(err, errlen, "secret: %s: secret or version not found "
		    "(%s); check the name and that the version exists", name,
		    text);
	else if (status == 401)
		snprintf(err, errlen, "secret: %s: the token was refused "
		    "(%s); check the credentials (%s)", name, text,
		    auth_kind(a));
	else
		snprintf(err, errlen, "secret: %s: HTTP %ld: %s", name,
		    status, text);
out:
	if (body != NULL)
		explicit_bzero(body, strlen(body));
	free(body);
	free(url);
	return rc;
}

void
secret_free(char *value)
{
	if (value == NULL)
		return;
	explicit_bzero(value, strlen(value));
	free(value);
}
