/*
 * handler.c - run one claimed task: exec (a child process, no shell), http
 * (a POST through the worker's curl multi handle) or noop.
 *
 * Whatever happens ends in task_end(): the worker records the outcome in
 * one batched statement.  Texts that go to the database are made valid
 * UTF-8 and results are re-serialised by json-c, because one value the
 * server refuses would fail the whole batch.
 */
#include <curl/curl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "handler.h"
#include "log.h"
#include "proc.h"
#include "version.h"

#define DRAIN_MS	2000	/* after exit, wait this long for pipes' EOF */

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long
handler_backoff_ms(long base_ms, long cap_ms, int attempt, double rnd)
{
	long	d = base_ms;
	int	i;

	for (i = 1; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	return d / 2 + (long)((double)(d - d / 2) * rnd);
}

/* Copy s replacing bytes that are not valid UTF-8 with '?'. */
static char *
utf8_clean(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	char			*out, *w;
	size_t			 n, k;

	out = malloc(strlen(s) + 1);
	if (out == NULL)
		return NULL;
	w = out;
	while (*p != '\0') {
		if (*p < 0x80)
			n = 1;
		else if ((*p & 0xe0) == 0xc0 && *p >= 0xc2)
			n = 2;
		else if ((*p & 0xf0) == 0xe0)
			n = 3;
		else if ((*p & 0xf8) == 0xf0 && *p <= 0xf4)
			n = 4;
		else
			n = 0;
		for (k = 1; k < n; k++)
			if ((p[k] & 0xc0) != 0x80)
				n = 0;
		if (n == 0) {
			*w++ = '?';
			p++;
			continue;
		}
		memcpy(w, p, n);
		w += n;
		p += n;
	}
	*w = '\0';
	return out;
}

void
task_end(struct task *t, enum task_outcome o, const char *result,
    const char *error)
{
	t->outcome = o;
	free(t->result);
	free(t->error);
	t->result = result ? strdup(result) : NULL;
	t->error = error ? utf8_clean(error) : NULL;
	t->duration_ms = t->started_ms ? (int)(now_ms() - t->started_ms) : 0;
}

/*
 * Check that text is one strict JSON value that PostgreSQL's jsonb takes.
 * Returns the canonical text (caller frees), NULL for an empty text with
 * *empty set, or NULL with why filled.
 */
static char *
result_json(const char *text, size_t len, int *empty, char *why,
    size_t whylen)
{
	struct json_tokener	*tok;
	json_object		*obj = NULL;
	enum json_tokener_error	 jerr;
	const char		*s;
	char			*out = NULL;
	size_t			 end;

	*empty = 0;
	while (len > 0 && strchr(" \t\r\n", text[len - 1]) != NULL)
		len--;
	while (len > 0 && strchr(" \t\r\n", *text) != NULL) {
		text++;
		len--;
	}
	if (len == 0) {
		*empty = 1;
		return NULL;
	}
	tok = json_tokener_new();
	if (tok == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (jerr != json_tokener_success || end != len) {
		snprintf(why, whylen, "output is not a single JSON value "
		    "(%s at byte %zu)", jerr != json_tokener_success ?
		    json_tokener_error_desc(jerr) : "trailing data", end);
		goto out;
	}
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (strstr(s, "\\u0000") != NULL) {
		snprintf(why, whylen, "output contains a NUL character, which "
		    "PostgreSQL's jsonb cannot store");
		goto out;
	}
	out = strdup(s);
out:
	json_object_put(obj);
	json_tokener_free(tok);
	return out;
}

static json_object *
json_or_string(const char *text)
{
	json_object *o = json_tokener_parse(text);

	return o ? o : json_object_new_string(text);
}

/* The JSON a handler receives (caller frees). */
static char *
task_payload(const struct task *t)
{
	json_object	*o = json_object_new_object();
	char		*s;

	json_object_object_add(o, "task_id", json_object_new_string(t->id));
	json_object_object_add(o, "task_type",
	    json_object_new_string(t->type));
	json_object_object_add(o, "skill_name",
	    json_object_new_string(t->skill));
	json_object_object_add(o, "source_repo",
	    json_object_new_string(t->source));
	json_object_object_add(o, "target_repo",
	    json_object_new_string(t->target));
	json_object_object_add(o, "change_event",
	    json_or_string(t->change_event));
	json_object_object_add(o, "relationship_config",
	    json_or_string(t->relationship_config));
	json_object_object_add(o, "attempt", json_object_new_int(t->attempt));
	json_object_object_add(o, "max_attempts",
	    json_object_new_int(t->max_attempts));
	s = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return s;
}

static void
exec_start(struct task *t, const struct cfg_handler *h)
{
	char		**argv = NULL, err[512], e_id[128], e_type[80], e_att[32];
	const char	*env[4];

	argv = proc_split(h->command, err, sizeof(err));
	if (argv == NULL) {
		task_end(t, OUT_RETRY, NULL, err);
		return;
	}
	snprintf(e_id, sizeof(e_id), "TASK_ID=%s", t->id);
	snprintf(e_type, sizeof(e_type), "TASK_TYPE=%s", t->type);
	snprintf(e_att, sizeof(e_att), "TASK_ATTEMPT=%d", t->attempt);
	env[0] = e_id;
	env[1] = e_type;
	env[2] = e_att;
	env[3] = NULL;
	t->payload = task_payload(t);
	if (t->payload == NULL) {
		task_end(t, OUT_RETRY, NULL, "out of memory");
		goto out;
	}
	t->proc = proc_start(argv, env, t->payload, strlen(t->payload),
	    h->output_limit, err, sizeof(err));
	if (t->proc == NULL)
		task_end(t, OUT_RETRY, NULL, err);
out:
	proc_argv_free(argv);
}

static size_t
http_write(char *data, size_t size, size_t n, void *arg)
{
	struct task	*t = arg;
	size_t		 len = size * n, room;
	char		*nb;

	room = t->resp_limit > (long)t->resp_len ?
	    (size_t)t->resp_limit - t->resp_len : 0;
	if (len > room) {
		t->resp_overflow = 1;
		return 0;	/* aborts the transfer */
	}
	nb = realloc(t->resp, t->resp_len + len + 1);
	if (nb == NULL)
		return 0;
	t->resp = nb;
	memcpy(t->resp + t->resp_len, data, len);
	t->resp_len += len;
	t->resp[t->resp_len] = '\0';
	return len;
}

static void
http_start(struct task *t, const struct cfg_handler *h, CURLM *multi)
{
	struct curl_slist	*hd = NULL;
	CURL			*e;

	if (multi == NULL) {
		task_end(t, OUT_RETRY, NULL, "http handler without a curl "
		    "handle (internal error)");
		return;
	}
	t->payload = task_payload(t);
	t->curl_err = calloc(1, CURL_ERROR_SIZE);
	e = curl_easy_init();
	if (t->payload == NULL || t->curl_err == NULL || e == NULL) {
		curl_easy_cleanup(e);
		task_end(t, OUT_RETRY, NULL, "out of memory");
		return;
	}
	hd = curl_slist_append(hd, "Content-Type: application/json");
	hd = curl_slist_append(hd, "Accept: application/json");
	hd = curl_slist_append(hd, "Expect:");
	t->hdrs = hd;
	t->resp_limit = h->output_limit;
	curl_easy_setopt(e, CURLOPT_URL, h->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->payload);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(e, CURLOPT_USERAGENT, agent_user_agent);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_seconds *
	    1000L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->curl_err);
	curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	t->easy = e;
	if (curl_multi_add_handle(multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		t->easy = NULL;
		task_end(t, OUT_RETRY, NULL, "cannot start the HTTP request");
	}
}

void
handler_start(struct task *t, const struct cfg_handler *h, void *multi)
{
	t->kind = h->kind;
	t->started_ms = now_ms();
	t->deadline_ms = t->started_ms + (int64_t)h->timeout_seconds * 1000;
	switch (h->kind) {
	case HANDLER_NOOP:
		task_end(t, OUT_FINISHED, NULL, NULL);
		break;
	case HANDLER_EXEC:
		exec_start(t, h);
		break;
	case HANDLER_HTTP:
		http_start(t, h, multi);
		break;
	}
}

/* The exec handler ended: map exit status and output to an outcome. */
static void
exec_finish(struct task *t)
{
	char		 tail[PROC_ERRTAIL + 1], why[300], msg[PROC_ERRTAIL + 400];
	const char	*out;
	char		*res;
	size_t		 len;
	int		 st = proc_status(t->proc), overflow, empty;

	proc_stderr_tail(t->proc, tail, sizeof(tail));
	len = strlen(tail);
	while (len > 0 && strchr(" \t\r\n", tail[len - 1]) != NULL)
		tail[--len] = '\0';
	if (WIFSIGNALED(st)) {
		snprintf(msg, sizeof(msg), "handler killed by signal %d%s%s",
		    WTERMSIG(st), len ? ": " : "", tail);
		task_end(t, OUT_RETRY, NULL, msg);
		return;
	}
	if (WEXITSTATUS(st) != 0) {
		snprintf(msg, sizeof(msg), "handler exited with status %d%s%s%s",
		    WEXITSTATUS(st), WEXITSTATUS(st) == 75 ?
		    " (temporary failure; retry)" : "", len ? ": " : "", tail);
		task_end(t, OUT_RETRY, NULL, msg);
		return;
	}
	out = proc_stdout(t->proc, &len, &overflow);
	if (overflow) {
		snprintf(msg, sizeof(msg), "handler wrote more than its "
		    "output_limit_kib to stdout");
		task_end(t, OUT_RETRY, NULL, msg);
		return;
	}
	res = result_json(out, len, &empty, why, sizeof(why));
	if (res == NULL && !empty) {
		snprintf(msg, sizeof(msg), "handler exited 0 but its %s", why);
		task_end(t, OUT_RETRY, NULL, msg);
		return;
	}
	task_end(t, OUT_FINISHED, res, NULL);
	free(res);
}

int
handler_poll(struct task *t, int64_t now)
{
	char msg[200];

	if (t->outcome != OUT_NONE)
		return 1;
	if (t->kind == HANDLER_EXEC && t->proc != NULL) {
		proc_io(t->proc);
		if (proc_exited(t->proc) && !proc_done(t->proc) &&
		    now - t->exited_ms > DRAIN_MS)
			proc_close_pipes(t->proc);	/* a child kept them */
		if (proc_done(t->proc)) {
			exec_finish(t);
			return 1;
		}
	}
	if (now >= t->deadline_ms) {
		snprintf(msg, sizeof(msg), "handler timed out after %lld s; "
		    "its process group was killed",
		    (long long)(t->deadline_ms - t->started_ms) / 1000);
		handler_abort(t, OUT_RETRY, msg, NULL);
		return 1;
	}
	return 0;
}

int
handler_reaped(struct task *t, int pid, int status)
{
	if (t->proc == NULL || proc_pid(t->proc) != pid)
		return 0;
	proc_reaped(t->proc, status);
	t->exited_ms = now_ms();
	/* Whatever it left behind in its group goes too. */
	proc_kill(t->proc, SIGKILL);
	return 1;
}

void
handler_http_done(struct task *t, int code, void *multi)
{
	char	 why[300], msg[600];
	long	 status = 0;
	char	*res;
	int	 empty;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (code != CURLE_OK) {
		if (t->resp_overflow)
			snprintf(msg, sizeof(msg), "http handler: response "
			    "larger than output_limit_kib");
		else
			snprintf(msg, sizeof(msg), "http handler: %s",
			    t->curl_err[0] ? t->curl_err :
			    curl_easy_strerror((CURLcode)code));
		task_end(t, OUT_RETRY, NULL, msg);
	} else if (status >= 200 && status < 300) {
		res = result_json(t->resp ? t->resp : "", t->resp_len, &empty,
		    why, sizeof(why));
		if (res == NULL && !empty) {
			snprintf(msg, sizeof(msg), "http handler: HTTP %ld but "
			    "the response %s", status, why);
			task_end(t, OUT_RETRY, NULL, msg);
		} else
			task_end(t, OUT_FINISHED, res, NULL);
		free(res);
	} else {
		snprintf(msg, sizeof(msg), "http handler: HTTP %ld%s%.300s",
		    status, t->resp_len ? ": " : "", t->resp ? t->resp : "");
		if (status == 408 || status == 429 || status >= 500)
			task_end(t, OUT_RETRY, NULL, msg);
		else
			task_end(t, OUT_FAIL, NULL, msg);
	}
	curl_multi_remove_handle(multi, t->easy);
	curl_easy_cleanup(t->easy);
	t->easy = NULL;
}

void
handler_abort(struct task *t, enum task_outcome o, const char *why,
    void *multi)
{
	if (t->proc != NULL)
		proc_kill(t->proc, SIGKILL);
	if (t->easy != NULL && multi != NULL) {
		curl_multi_remove_handle(multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	task_end(t, o, NULL, why);
}

int
handler_fds(const struct task *t, int fds[3], short events[3])
{
	if (t->proc == NULL || t->outcome != OUT_NONE)
		return 0;
	return proc_fds(t->proc, fds, events);
}

void
task_free(struct task *t, void *multi)
{
	if (t == NULL)
		return;
	if (t->easy != NULL) {
		if (multi != NULL)
			curl_multi_remove_handle(multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	curl_slist_free_all(t->hdrs);
	proc_free(t->proc);
	free(t->id);
	free(t->type);
	free(t->skill);
	free(t->source);
	free(t->target);
	free(t->change_event);
	free(t->relationship_config);
	free(t->payload);
	free(t->resp);
	free(t->curl_err);
	free(t->result);
	free(t->error);
	free(t);
}
