/*
 * fake.h - start, drive and stop the fake Google server
 * (tests/fakegcs/server.py) from a C test.  Failures are criterion
 * assertions.
 */
#ifndef TEST_FAKE_H
#define TEST_FAKE_H

struct fake {
	int	 pid;		/* server.py */
	int	 port;
	char	 dir[64];	/* temporary directory of the port file */
	char	 url[64];	/* http://127.0.0.1:PORT */
	char	 host[32];	/* 127.0.0.1:PORT, the GCE_METADATA_HOST form */
};

/* Start a fresh server on a free port; it dies with the test process. */
void		 fake_start(struct fake *);
/* "http://127.0.0.1:PORT"; owned by f. */
const char	*fake_url(const struct fake *);
/* "127.0.0.1:PORT"; owned by f. */
const char	*fake_host(const struct fake *);
/*
 * POST json (NULL: empty body) to path (e.g. "/_fake/config") and assert a
 * 2xx answer.  Returns the body, owned by the caller (free).
 */
char		*fake_post(struct fake *, const char *path, const char *json);
/* GET path; returns the HTTP status, *body owned by the caller (free). */
long		 fake_get(struct fake *, const char *path, char **body);
/* Stop the server (SIGTERM, then wait) and remove its directory. */
void		 fake_stop(struct fake *);

#endif
