/*
 * queue_load.h - bulk loading of tasks from NDJSON with COPY.
 */
#ifndef QUEUE_LOAD_H
#define QUEUE_LOAD_H

#include <libpq-fe.h>
#include <stdio.h>

/*
 * Load the tasks of NDJSON stream fp, one JSON object a line, into tasks
 * with one COPY in one transaction on conn.  fp and conn are borrowed;
 * name ("stdin" or the path) is for messages.  Returns 0 with *rows set;
 * or, after logging (bad lines by number), 65 for bad input, 66 when fp
 * cannot be read, else an exit code as queue_fail, and nothing is queued.
 */
int	queue_load_ndjson(PGconn *conn, FILE *fp, const char *name,
	    long *rows);

#endif
