/*
 * fake.c - the fake Google server as a child of the test: forked and
 * exec'd with PR_SET_PDEATHSIG so a crashed test leaves nothing behind,
 * ready when its port file appears, driven over its /_fake/ API by curl.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake.h"
#include "helpers.h"

#define FAKE_PYTHON	"/usr/bin/python3"
#define FAKE_WAIT_MS	20000

void
fake_start(struct fake *f)
{
	const char	*src = getenv("OA_SOURCE_DIR");
	char		 server[1024], portfile[128];
	FILE		*fp;
	int		 waited, st;
	pid_t		 pid, parent = getpid();

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/oa-fake.XXXXXX");
	cr_assert(mkdtemp(f->dir) != NULL);
	snprintf(portfile, sizeof(portfile), "%s/port", f->dir);
	snprintf(server, sizeof(server), "%s/tests/fakegcs/server.py",
	    src && *src ? src : ".");
	pid = fork();
	cr_assert(pid != -1);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		execl(FAKE_PYTHON, FAKE_PYTHON, "-B", server, "--port", "0",
		    "--port-file", portfile, (char *)NULL);
		_exit(127);
	}
	f->pid = pid;
	for (waited = 0; ; waited += 20) {
		if (access(portfile, R_OK) == 0)
			break;
		cr_assert(waitpid(pid, &st, WNOHANG) == 0, "fake: server.py "
		    "exited at start (are python3-crcmod and "
		    "python3-cryptography installed?)");
		cr_assert(waited < FAKE_WAIT_MS, "fake: no port file after "
		    "%d ms", FAKE_WAIT_MS);
		usleep(20000);
	}
	fp = fopen(portfile, "r");
	cr_assert(fp != NULL);
	cr_assert(fscanf(fp, "%d", &f->port) == 1);
	fclose(fp);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
	snprintf(f->host, sizeof(f->host), "127.0.0.1:%d", f->port);
}

const char *
fake_url(const struct fake *f)
{
	return f->url;
}

const char *
fake_host(const struct fake *f)
{
	return f->host;
}

/* One request to the fake; returns the status, *body owned by caller. */
static long
request(struct fake *f, const char *method, const char *path,
    const char *json, char **body)
{
	struct curl_slist	*hd = NULL;
	struct http_body	 b = { NULL, 0 };
	char			 url[2048];
	CURL			*e = curl_easy_init();
	CURLcode		 c;
	long			 status = 0;

	cr_assert(e != NULL);
	snprintf(url, sizeof(url), "%s%s", f->url, path);
	hd = curl_slist_append(hd, "Content-Type: application/json");
	hd = curl_slist_append(hd, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	if (json != NULL || strcmp(method, "POST") == 0)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, json ? json : "");
	c = curl_easy_perform(e);
	cr_assert(c == CURLE_OK, "fake: %s %s: %s", method, path,
	    curl_easy_strerror(c));
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hd);
	curl_easy_cleanup(e);
	*body = b.buf ? b.buf : strdup("");
	return status;
}

char *
fake_post(struct fake *f, const char *path, const char *json)
{
	char	*body;
	long	 status = request(f, "POST", path, json, &body);

	cr_assert(status >= 200 && status < 300, "fake: POST %s: HTTP %ld: "
	    "%s", path, status, body);
	return body;
}

long
fake_get(struct fake *f, const char *path, char **body)
{
	return request(f, "GET", path, NULL, body);
}

void
fake_stop(struct fake *f)
{
	char	 path[128];
	int	 st;

	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		waitpid(f->pid, &st, 0);
		f->pid = 0;
	}
	if (f->dir[0] != '\0') {
		snprintf(path, sizeof(path), "%s/port", f->dir);
		unlink(path);
		rmdir(f->dir);
		f->dir[0] = '\0';
	}
}
