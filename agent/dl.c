/*
 * dl.c - the libcurl, libmicrohttpd and libzstd functions the agent uses,
 * forwarding to the libraries dlopen()ed at first use (see dl.h for why).
 *
 * Every function the agent or its tests call from these libraries must be
 * defined here (the link fails otherwise, since nothing else provides
 * them).  Each library's symbols are resolved all at once when it loads,
 * so a library lacking one fails at that point, with a clear message, and
 * never later in the middle of some request.  The libraries stay loaded
 * for the life of the process.
 *
 * The definitions are parenthesised, (name)(...), so that function-like
 * macros of the same name (curl's type-checking curl_easy_setopt) do not
 * expand here; they still check the callers.  The prototypes are the
 * headers' own, so the compiler checks that each forwarder matches.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sysexits.h>
#include <zstd.h>

#include "dl.h"
#include "log.h"

/* The symbols resolved from each library; ID() names their slots. */
#define CURL_SYMS(X) \
	X(curl_global_init) X(curl_global_cleanup) X(curl_easy_init) \
	X(curl_easy_setopt) X(curl_easy_perform) X(curl_easy_cleanup) \
	X(curl_easy_getinfo) X(curl_easy_reset) X(curl_easy_strerror) \
	X(curl_easy_escape) X(curl_easy_header) X(curl_free) \
	X(curl_getdate) X(curl_slist_append) X(curl_slist_free_all) \
	X(curl_multi_init) X(curl_multi_add_handle) \
	X(curl_multi_remove_handle) X(curl_multi_perform) \
	X(curl_multi_info_read) X(curl_multi_poll) X(curl_multi_cleanup) \
	X(curl_url) X(curl_url_cleanup) X(curl_url_get) X(curl_url_set)
#define MHD_SYMS(X) \
	X(MHD_start_daemon_va) X(MHD_stop_daemon) \
	X(MHD_create_response_from_buffer) X(MHD_add_response_header) \
	X(MHD_queue_response) X(MHD_destroy_response)
#define ZSTD_SYMS(X) \
	X(ZSTD_createCCtx) X(ZSTD_freeCCtx) X(ZSTD_CCtx_setParameter) \
	X(ZSTD_compressStream2) X(ZSTD_createDCtx) X(ZSTD_freeDCtx) \
	X(ZSTD_decompressStream) X(ZSTD_isError) X(ZSTD_getErrorName)

#define ID(name)	ID_##name
#define ENUM_ITEM(name)	ID(name),
#define NAME_ITEM(name)	#name,

enum { CURL_SYMS(ENUM_ITEM) NCURL };
enum { MHD_SYMS(ENUM_ITEM) NMHD };
enum { ZSTD_SYMS(ENUM_ITEM) NZSTD };

static const char *const curl_names[] = { CURL_SYMS(NAME_ITEM) };
static const char *const mhd_names[] = { MHD_SYMS(NAME_ITEM) };
static const char *const zstd_names[] = { ZSTD_SYMS(NAME_ITEM) };
static void	*curl_fns[NCURL], *mhd_fns[NMHD], *zstd_fns[NZSTD];

struct lib {
	const char	*soname;
	const char	*used_for;	/* for the error message */
	const char	*package;	/* the Debian/Ubuntu package shipping it */
	const char	*const *names;
	void		**fns;
	size_t		 n;
	atomic_int	 ready;
};

static struct lib libs[] = {
	[DL_CURL] = { "libcurl.so.4", "HTTP (http handlers, Cloud Storage, "
	    "metadata and Secret Manager)", "libcurl4 (libcurl4t64 on "
	    "Ubuntu 24.04)", curl_names, curl_fns, NCURL, 0 },
	[DL_MHD] = { "libmicrohttpd.so.12", "the [health] listen endpoint",
	    "libmicrohttpd12 (libmicrohttpd12t64 on Ubuntu 24.04)",
	    mhd_names, mhd_fns, NMHD, 0 },
	[DL_ZSTD] = { "libzstd.so.1", "zstd backups and restores", "libzstd1",
	    zstd_names, zstd_fns, NZSTD, 0 },
};

static pthread_mutex_t	load_mtx = PTHREAD_MUTEX_INITIALIZER;

/* dlopen and resolve everything, or say what to install and exit. */
static void
load(struct lib *l)
{
	void	*h;
	size_t	 i;

	/* RTLD_LOCAL: its symbols serve only the lookups below. */
	h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		log_errx("dl: %s is needed for %s but does not load (%s); "
		    "install the package %s", l->soname, l->used_for,
		    dlerror(), l->package);
		exit(EX_OSFILE);
	}
	for (i = 0; i < l->n; i++) {
		l->fns[i] = dlsym(h, l->names[i]);
		if (l->fns[i] == NULL) {
			log_errx("dl: %s lacks %s, so it is too old or not the "
			    "library the agent was built for; install the "
			    "package %s from the distribution", l->soname,
			    l->names[i], l->package);
			exit(EX_OSFILE);
		}
	}
}

void
dl_need(enum dl_lib which)
{
	struct lib	*l = &libs[which];

	if (atomic_load_explicit(&l->ready, memory_order_acquire))
		return;
	pthread_mutex_lock(&load_mtx);
	if (!atomic_load_explicit(&l->ready, memory_order_relaxed)) {
		load(l);
		atomic_store_explicit(&l->ready, 1, memory_order_release);
	}
	pthread_mutex_unlock(&load_mtx);
}

/* The real function `name` of library `lib`, loading it if need be. */
static void *
fn(enum dl_lib which, int id)
{
	dl_need(which);
	return libs[which].fns[id];
}

#define REAL(lib, name)	((__typeof__(&name))fn(lib, ID(name)))
#define CURL(name)	REAL(DL_CURL, name)
#define MHD(name)	REAL(DL_MHD, name)
#define ZSTD(name)	REAL(DL_ZSTD, name)

/* libcurl */

CURLcode
(curl_global_init)(long flags)
{
	return CURL(curl_global_init)(flags);
}

void
(curl_global_cleanup)(void)
{
	/* Not loaded means not initialised: nothing to clean up. */
	if (atomic_load(&libs[DL_CURL].ready))
		CURL(curl_global_cleanup)();
}

CURL *
(curl_easy_init)(void)
{
	return CURL(curl_easy_init)();
}

/*
 * The one argument after the option has the type the option's number
 * range gives (curl.h, CURLOPTTYPE_*); libcurl reads it the same way.
 */
CURLcode
(curl_easy_setopt)(CURL *curl, CURLoption option, ...)
{
	__typeof__(&curl_easy_setopt)	 f = CURL(curl_easy_setopt);
	va_list				 ap;
	CURLcode			 r;

	va_start(ap, option);
	if (option < CURLOPTTYPE_OBJECTPOINT)
		r = f(curl, option, va_arg(ap, long));
	else if (option < CURLOPTTYPE_FUNCTIONPOINT)
		r = f(curl, option, va_arg(ap, void *));
	else if (option < CURLOPTTYPE_OFF_T)
		r = f(curl, option, va_arg(ap, void (*)(void)));
	else if (option < CURLOPTTYPE_BLOB)
		r = f(curl, option, va_arg(ap, curl_off_t));
	else
		r = f(curl, option, va_arg(ap, void *));
	va_end(ap);
	return r;
}

CURLcode
(curl_easy_perform)(CURL *curl)
{
	return CURL(curl_easy_perform)(curl);
}

void
(curl_easy_cleanup)(CURL *curl)
{
	if (curl != NULL)
		CURL(curl_easy_cleanup)(curl);
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode
(curl_easy_getinfo)(CURL *curl, CURLINFO info, ...)
{
	va_list		 ap;
	CURLcode	 r;

	va_start(ap, info);
	r = CURL(curl_easy_getinfo)(curl, info, va_arg(ap, void *));
	va_end(ap);
	return r;
}

void
(curl_easy_reset)(CURL *curl)
{
	CURL(curl_easy_reset)(curl);
}

const char *
(curl_easy_strerror)(CURLcode code)
{
	return CURL(curl_easy_strerror)(code);
}

char *
(curl_easy_escape)(CURL *handle, const char *string, int length)
{
	return CURL(curl_easy_escape)(handle, string, length);
}

CURLHcode
(curl_easy_header)(CURL *easy, const char *name, size_t index,
    unsigned int origin, int request, struct curl_header **hout)
{
	return CURL(curl_easy_header)(easy, name, index, origin, request,
	    hout);
}

void
(curl_free)(void *p)
{
	if (p != NULL)
		CURL(curl_free)(p);
}

time_t
(curl_getdate)(const char *p, const time_t *unused)
{
	return CURL(curl_getdate)(p, unused);
}

struct curl_slist *
(curl_slist_append)(struct curl_slist *list, const char *data)
{
	return CURL(curl_slist_append)(list, data);
}

void
(curl_slist_free_all)(struct curl_slist *list)
{
	if (list != NULL)
		CURL(curl_slist_free_all)(list);
}

CURLM *
(curl_multi_init)(void)
{
	return CURL(curl_multi_init)();
}

CURLMcode
(curl_multi_add_handle)(CURLM *multi_handle, CURL *curl_handle)
{
	return CURL(curl_multi_add_handle)(multi_handle, curl_handle);
}

CURLMcode
(curl_multi_remove_handle)(CURLM *multi_handle, CURL *curl_handle)
{
	return CURL(curl_multi_remove_handle)(multi_handle, curl_handle);
}

CURLMcode
(curl_multi_perform)(CURLM *multi_handle, int *running_handles)
{
	return CURL(curl_multi_perform)(multi_handle, running_handles);
}

CURLMsg *
(curl_multi_info_read)(CURLM *multi_handle, int *msgs_in_queue)
{
	return CURL(curl_multi_info_read)(multi_handle, msgs_in_queue);
}

CURLMcode
(curl_multi_poll)(CURLM *multi_handle, struct curl_waitfd extra_fds[],
    unsigned int extra_nfds, int timeout_ms, int *ret)
{
	return CURL(curl_multi_poll)(multi_handle, extra_fds, extra_nfds,
	    timeout_ms, ret);
}

CURLMcode
(curl_multi_cleanup)(CURLM *multi_handle)
{
	if (multi_handle == NULL)
		return CURLM_OK;
	return CURL(curl_multi_cleanup)(multi_handle);
}

CURLU *
(curl_url)(void)
{
	return CURL(curl_url)();
}

void
(curl_url_cleanup)(CURLU *handle)
{
	if (handle != NULL)
		CURL(curl_url_cleanup)(handle);
}

CURLUcode
(curl_url_get)(CURLU *handle, CURLUPart what, char **part,
    unsigned int flags)
{
	return CURL(curl_url_get)(handle, what, part, flags);
}

CURLUcode
(curl_url_set)(CURLU *handle, CURLUPart what, const char *part,
    unsigned int flags)
{
	return CURL(curl_url_set)(handle, what, part, flags);
}

/* libmicrohttpd */

/* The options list goes on as a va_list (the library's own _va form). */
struct MHD_Daemon *
(MHD_start_daemon)(unsigned int flags, uint16_t port,
    MHD_AcceptPolicyCallback apc, void *apc_cls,
    MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	va_list			 ap;
	struct MHD_Daemon	*d;

	va_start(ap, dh_cls);
	d = MHD(MHD_start_daemon_va)(flags, port, apc, apc_cls, dh, dh_cls,
	    ap);
	va_end(ap);
	return d;
}

void
(MHD_stop_daemon)(struct MHD_Daemon *daemon)
{
	if (daemon != NULL)
		MHD(MHD_stop_daemon)(daemon);
}

struct MHD_Response *
(MHD_create_response_from_buffer)(size_t size, void *buffer,
    enum MHD_ResponseMemoryMode mode)
{
	return MHD(MHD_create_response_from_buffer)(size, buffer, mode);
}

enum MHD_Result
(MHD_add_response_header)(struct MHD_Response *response, const char *header,
    const char *content)
{
	return MHD(MHD_add_response_header)(response, header, content);
}

enum MHD_Result
(MHD_queue_response)(struct MHD_Connection *connection,
    unsigned int status_code, struct MHD_Response *response)
{
	return MHD(MHD_queue_response)(connection, status_code, response);
}

void
(MHD_destroy_response)(struct MHD_Response *response)
{
	if (response != NULL)
		MHD(MHD_destroy_response)(response);
}

/* libzstd; freeing NULL (a gzip backup's context) loads nothing. */

ZSTD_CCtx *
(ZSTD_createCCtx)(void)
{
	return ZSTD(ZSTD_createCCtx)();
}

size_t
(ZSTD_freeCCtx)(ZSTD_CCtx *cctx)
{
	if (cctx == NULL)
		return 0;
	return ZSTD(ZSTD_freeCCtx)(cctx);
}

size_t
(ZSTD_CCtx_setParameter)(ZSTD_CCtx *cctx, ZSTD_cParameter param, int value)
{
	return ZSTD(ZSTD_CCtx_setParameter)(cctx, param, value);
}

size_t
(ZSTD_compressStream2)(ZSTD_CCtx *cctx, ZSTD_outBuffer *output,
    ZSTD_inBuffer *input, ZSTD_EndDirective endOp)
{
	return ZSTD(ZSTD_compressStream2)(cctx, output, input, endOp);
}

ZSTD_DCtx *
(ZSTD_createDCtx)(void)
{
	return ZSTD(ZSTD_createDCtx)();
}

size_t
(ZSTD_freeDCtx)(ZSTD_DCtx *dctx)
{
	if (dctx == NULL)
		return 0;
	return ZSTD(ZSTD_freeDCtx)(dctx);
}

size_t
(ZSTD_decompressStream)(ZSTD_DStream *zds, ZSTD_outBuffer *output,
    ZSTD_inBuffer *input)
{
	return ZSTD(ZSTD_decompressStream)(zds, output, input);
}

unsigned
(ZSTD_isError)(size_t code)
{
	return ZSTD(ZSTD_isError)(code);
}

const char *
(ZSTD_getErrorName)(size_t code)
{
	return ZSTD(ZSTD_getErrorName)(code);
}
