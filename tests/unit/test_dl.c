/*
 * test_dl.c - every function agent/dl.c forwards resolves in the
 * libraries installed here (a misspelt or missing name would exit 72 at
 * first use in production), and the forwarders reach the real code.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "dl.h"

Test(dl, every_symbol_resolves)
{
	static const enum dl_lib libs[] = { DL_CURL, DL_MHD, DL_ZSTD };

	/* Each loads once; the second round must return at once. */
	for (int round = 0; round < 2; round++)
		for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
			dl_need(libs[i]);
}

Test(dl, forwarders_reach_the_libraries)
{
	CURL			*c = curl_easy_init();
	char			*esc;
	void			*back = NULL;
	struct curl_slist	*l = NULL;
	ZSTD_CCtx		*z = ZSTD_createCCtx();

	cr_assert(c != NULL && z != NULL);
	/* One option of each argument type the variadic forwarder sorts. */
	cr_expect_eq(curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L), CURLE_OK);
	cr_expect_eq(curl_easy_setopt(c, CURLOPT_URL, "http://127.0.0.1:1/"),
	    CURLE_OK);
	cr_expect_eq(curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fwrite),
	    CURLE_OK);
	cr_expect_eq(curl_easy_setopt(c, CURLOPT_MAX_RECV_SPEED_LARGE,
	    (curl_off_t)1 << 40), CURLE_OK);
	cr_expect_eq(curl_easy_setopt(c, CURLOPT_PORT, 70000L),
	    CURLE_BAD_FUNCTION_ARGUMENT);
	cr_expect_eq(curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)&l),
	    CURLE_OK);
	cr_expect_eq(curl_easy_getinfo(c, CURLINFO_PRIVATE, &back), CURLE_OK);
	cr_expect_eq(back, (void *)&l);
	esc = curl_easy_escape(c, "a b/c", 0);
	cr_expect_str_eq(esc, "a%20b%2Fc");
	curl_free(esc);
	cr_expect_eq(curl_getdate("Sun, 06 Nov 1994 08:49:37 GMT", NULL),
	    (time_t)784111777);
	l = curl_slist_append(l, "X-Test: 1");
	cr_expect_str_eq(l->data, "X-Test: 1");
	curl_slist_free_all(l);
	cr_expect_str_eq(curl_easy_strerror(CURLE_OK), "No error");
	curl_easy_cleanup(c);
	cr_expect(ZSTD_isError(ZSTD_CCtx_setParameter(z,
	    ZSTD_c_compressionLevel, 3)) == 0);
	cr_expect(ZSTD_isError((size_t)-1));
	cr_expect(strlen(ZSTD_getErrorName((size_t)-1)) > 0);
	cr_expect_eq(ZSTD_freeCCtx(z), 0u);
	/* Freeing nothing needs no library (and loads none). */
	cr_expect_eq(ZSTD_freeDCtx(NULL), 0u);
	curl_easy_cleanup(NULL);
	curl_free(NULL);
}
