/*
 * metrics.c - Prometheus text format (version 0.0.4) from a doctor run.
 * Every series a check records is a gauge; names are grouped so each
 * metric's HELP and TYPE appear once, as the format requires.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "doctor.h"
#include "metrics.h"
#include "version.h"

struct series {
	char			 name[128];
	const char		*key;	/* "name{labels}", borrowed from run */
	json_object		*val;	/* borrowed */
	const struct dr_result	*from;
	size_t			 order;
};

static int
by_name(const void *a, const void *b)
{
	const struct series	*x = a, *y = b;
	int			 c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Nagios-style code of a status for orchestrator_check_status. */
static int
code(enum dr_status s)
{
	switch (s) {
	case DR_WARN:
		return 1;
	case DR_CRIT:
		return 2;
	case DR_UNKNOWN:
		return 3;
	case DR_OK:
	case DR_SKIPPED:
		break;
	}
	return 0;
}

char *
metrics_render(const struct dr_run *run)
{
	struct series	*s = NULL;
	char		*buf = NULL;
	size_t		 len = 0, n = 0, cap = 0, i;
	FILE		*fp;
	const char	*brace;

	fp = open_memstream(&buf, &len);
	if (fp == NULL)
		return NULL;
	for (i = 0; i < run->n; i++) {
		if (run->results[i].metrics == NULL)
			continue;
		json_object_object_foreach(run->results[i].metrics, key, val) {
			if (n == cap) {
				struct series *ns;

				cap = cap ? cap * 2 : 64;
				ns = realloc(s, cap * sizeof(*s));
				if (ns == NULL)
					goto fail;
				s = ns;
			}
			brace = strchr(key, '{');
			snprintf(s[n].name, sizeof(s[n].name), "%.*s",
			    brace ? (int)(brace - key) : (int)strlen(key), key);
			s[n].key = key;
			s[n].val = val;
			s[n].from = &run->results[i];
			s[n].order = n;
			n++;
		}
	}
	if (n > 0)
		qsort(s, n, sizeof(*s), by_name);
	for (i = 0; i < n; i++) {
		if (i == 0 || strcmp(s[i].name, s[i - 1].name) != 0)
			fprintf(fp, "# HELP %s From the doctor check %s (%s).\n"
			    "# TYPE %s gauge\n", s[i].name, s[i].from->id,
			    s[i].from->title, s[i].name);
		fprintf(fp, "%s %.15g\n", s[i].key,
		    json_object_get_double(s[i].val));
	}
	fprintf(fp, "# HELP orchestrator_check_status Result of each doctor "
	    "check: 0 ok, 1 warning, 2 critical, 3 unknown (skipped checks "
	    "are left out).\n# TYPE orchestrator_check_status gauge\n");
	for (i = 0; i < run->n; i++)
		if (run->results[i].status != DR_SKIPPED)
			fprintf(fp, "orchestrator_check_status{check=\"%s\"} "
			    "%d\n", run->results[i].id,
			    code(run->results[i].status));
	fprintf(fp, "# HELP orchestrator_agent_build_info The agent that "
	    "wrote these metrics.\n# TYPE orchestrator_agent_build_info gauge\n"
	    "orchestrator_agent_build_info{version=\"%s\"} 1\n", agent_version);
	free(s);
	if (fclose(fp) == EOF) {
		free(buf);
		return NULL;
	}
	return buf;
fail:
	free(s);
	fclose(fp);
	free(buf);
	return NULL;
}
