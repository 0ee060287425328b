/*
 * metrics.h - the doctor's facts in the Prometheus text exposition format,
 * for node_exporter's textfile collector.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdio.h>

struct dr_run;

/*
 * Render run (borrowed) as Prometheus text: every check's numbers, grouped
 * by metric name with HELP and TYPE lines, plus orchestrator_check_status
 * per check and build info.  Returns a string owned by the caller (free),
 * or NULL when out of memory.
 */
char	*metrics_render(const struct dr_run *);

#endif
