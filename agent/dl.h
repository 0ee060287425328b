/*
 * dl.h - libcurl, libmicrohttpd and libzstd loaded at first use.
 *
 * The agent is not linked against these three: an idle worker needs none
 * of them, and each one mapped at start-up costs resident memory in every
 * worker process (with libcurl's own tree, about a megabyte).  dl.c
 * defines the library functions the agent calls under their own names
 * (curl_easy_init, MHD_start_daemon, ZSTD_createCCtx ...); each forwards
 * to the real one, which is dlopen()ed by SONAME the first time any of its
 * library's functions runs.  Callers keep including <curl/curl.h>,
 * <microhttpd.h> and <zstd.h> and need nothing from here unless they want
 * the library loaded (or the start-up refused) at a point of their choice.
 */
#ifndef DL_H
#define DL_H

enum dl_lib {
	DL_CURL,	/* libcurl.so.4 */
	DL_MHD,		/* libmicrohttpd.so.12 */
	DL_ZSTD,	/* libzstd.so.1 */
};

/*
 * Load the library and every function the agent uses from it now (once;
 * later calls return at once, from any thread).  If that fails, logs one
 * line naming the package to install and exits EX_OSFILE: a missing
 * library is an installation fault, never something to run without.
 */
void	dl_need(enum dl_lib);

#endif
