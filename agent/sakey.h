/*
 * sakey.h - a Google service-account key file and the JWT it signs.
 */
#ifndef SAKEY_H
#define SAKEY_H

#include <openssl/evp.h>
#include <stddef.h>
#include <time.h>

/* A loaded key; the fields are read-only for callers. */
struct sakey {
	char		*path;		/* the key file */
	char		*email;		/* client_email */
	char		*key_id;	/* private_key_id, or NULL */
	char		*token_uri;
	EVP_PKEY	*key;		/* RSA */
};

/*
 * Read and check the key file at path (borrowed): a regular file not
 * readable by group or others, a service_account JSON key with
 * client_email, token_uri and an RSA private_key.  Returns a key owned by
 * the caller (sakey_free), or NULL with err filled with what to do.
 */
struct sakey	*sakey_load(const char *path, char *err, size_t errlen);

/*
 * The signed RS256 JWT assertion for scope (borrowed) at time iat,
 * audience token_uri.  Returns a string owned by the caller (wipe and
 * free), or NULL with err filled.
 */
char		*sakey_jwt(const struct sakey *, const char *scope, time_t iat,
		    char *err, size_t errlen);

/* NULL-tolerant. */
void		 sakey_free(struct sakey *);

#endif
