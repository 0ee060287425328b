/*
 * secret.h - read one Secret Manager secret version over the REST API.
 */
#ifndef SECRET_H
#define SECRET_H

#include <stddef.h>

#define SECRET_DEFAULT_ENDPOINT	"https://secretmanager.googleapis.com"

struct auth;

/*
 * Is name "projects/P/secrets/S/versions/V"?  0, or -1 with err filled
 * saying what is wrong with it.
 */
int	 secret_name_check(const char *name, char *err, size_t errlen);

/*
 * Access the version name (endpoint NULL: the default) with auth's token,
 * checking the payload's CRC32C.  One trailing newline is dropped.  0 with
 * *value owned by the caller (release with secret_free, which wipes it),
 * or -1 with err filled (never containing the value).
 */
int	 secret_access(struct auth *, const char *endpoint, const char *name,
	    char **value, char *err, size_t errlen);

/* Wipe and free a value from secret_access.  NULL-tolerant. */
void	 secret_free(char *value);

#endif
