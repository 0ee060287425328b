/*
 * main.c - global options, then hand over to the command table.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cmd.h"
#include "log.h"
#include "version.h"

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent	a;
	int		ch, verbosity = 0, rc;

	memset(&a, 0, sizeof(a));
	log_init(0);
	/* '+': options after the command name belong to the command. */
	for (;;) {
		ch = getopt_long(argc, argv, "+c:vqh", longopts, NULL);
		if (ch == -1)
			break;
		switch (ch) {
		case 'c':
			a.config_path = optarg;
			break;
		case 'v':
			verbosity = verbosity < 0 ? 1 : verbosity + 1;
			break;
		case 'q':
			verbosity = -1;
			break;
		case 'h':
			cmd_list(stdout);
			return EX_OK;
		case 'V':
			printf("orchestrator-agent %s\n", agent_version);
			return EX_OK;
		default:
			cmd_list(stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	log_init(verbosity);
	if (argc == 0) {
		log_errx("no command given");
		cmd_list(stderr);
		return EX_USAGE;
	}
	rc = cmd_dispatch(&a, argc, argv);
	agent_free(&a);
	if (fflush(stdout) == EOF && rc == EX_OK) {
		log_warn("writing output");
		rc = EX_IOERR;
	}
	return rc;
}
