/*
 * test_gcs.c - the pure parts of the Cloud Storage client: endpoints,
 * Content-Range values and a 308's Range header.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "gcs.h"

static void
norm_is(const char *in, const char *want)
{
	char *s = gcs_endpoint_normalize(in);

	cr_assert_str_eq(s, want, "%s", in);
	free(s);
}

Test(gcs, endpoint_normalisation)
{
	char *s;

	norm_is("localhost:9023", "http://localhost:9023");
	norm_is("127.0.0.1:4443/", "http://127.0.0.1:4443");
	norm_is("http://127.0.0.1:4443", "http://127.0.0.1:4443");
	norm_is("https://storage.googleapis.com/", "https://storage.googleapis.com");
	norm_is(" [::1]:80 ", "http://[::1]:80");

	setenv("STORAGE_EMULATOR_HOST", "fake:1234", 1);
	s = gcs_endpoint_from_env();
	cr_assert_str_eq(s, "http://fake:1234");
	free(s);
	setenv("STORAGE_EMULATOR_HOST", "", 1);
	s = gcs_endpoint_from_env();
	cr_assert_str_eq(s, "https://storage.googleapis.com");
	free(s);
	unsetenv("STORAGE_EMULATOR_HOST");
	s = gcs_endpoint_from_env();
	cr_assert_str_eq(s, GCS_ENDPOINT);
	free(s);
}

Test(gcs, content_range)
{
	char b[64];

	gcs_content_range(b, sizeof(b), 0, 262144, -1);
	cr_assert_str_eq(b, "bytes 0-262143/*");
	gcs_content_range(b, sizeof(b), 262144, 262144, -1);
	cr_assert_str_eq(b, "bytes 262144-524287/*");
	gcs_content_range(b, sizeof(b), 524288, 10, 524298);
	cr_assert_str_eq(b, "bytes 524288-524297/524298");
	gcs_content_range(b, sizeof(b), 524288, 0, 524288);
	cr_assert_str_eq(b, "bytes */524288");
	gcs_content_range(b, sizeof(b), 0, 0, 0);
	cr_assert_str_eq(b, "bytes */0");
	gcs_content_range(b, sizeof(b), 7, 0, -1);
	cr_assert_str_eq(b, "bytes */*");
	gcs_content_range(b, sizeof(b), 5000000000LL, 1, 5000000001LL);
	cr_assert_str_eq(b, "bytes 5000000000-5000000000/5000000001");
}

Test(gcs, range_header)
{
	int64_t p = -7;

	cr_assert_eq(gcs_parse_range("bytes=0-262143", &p), 0);
	cr_assert_eq(p, 262144);
	cr_assert_eq(gcs_parse_range(" bytes=0-0 ", &p), 0);
	cr_assert_eq(p, 1);
	cr_assert_eq(gcs_parse_range("Bytes=0-4999999999", &p), 0);
	cr_assert_eq(p, 5000000000LL);
	p = -7;
	cr_assert_eq(gcs_parse_range("bytes=1-5", &p), -1);
	cr_assert_eq(gcs_parse_range("bytes=0-", &p), -1);
	cr_assert_eq(gcs_parse_range("bytes 0-5", &p), -1);
	cr_assert_eq(gcs_parse_range("bytes=0-5x", &p), -1);
	cr_assert_eq(gcs_parse_range("", &p), -1);
	cr_assert_eq(gcs_parse_range("bytes=0--5", &p), -1);
	cr_assert_eq(p, -7);
}
