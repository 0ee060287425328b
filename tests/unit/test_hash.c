/*
 * test_hash.c - CRC32C and MD5 in the forms Cloud Storage uses.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

Test(hash, crc32c_known_vectors)
{
	/* RFC 3720 B.4 and the usual check value. */
	unsigned char zeros[32] = { 0 }, ones[32], inc[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++)
		inc[i] = (unsigned char)i;
	cr_assert_eq(hash_crc32c(0, "123456789", 9), 0xe3069283u);
	cr_assert_eq(hash_crc32c(0, zeros, 32), 0x8a9136aau);
	cr_assert_eq(hash_crc32c(0, ones, 32), 0x62a8ab43u);
	cr_assert_eq(hash_crc32c(0, inc, 32), 0x46dd794eu);
	cr_assert_eq(hash_crc32c(0, "", 0), 0u);
}

Test(hash, crc32c_streams_in_any_chunking)
{
	size_t n = 1 << 20;
	unsigned char *buf = malloc(n);
	uint32_t whole, parts = 0;
	size_t off = 0, step = 1;

	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 2654435761u >> 13);
	whole = hash_crc32c(0, buf, n);
	while (off < n) {
		size_t len = step < n - off ? step : n - off;

		parts = hash_crc32c(parts, buf + off, len);
		off += len;
		step = step * 3 + 1;
	}
	cr_assert_eq(parts, whole);
	free(buf);
}

Test(hash, gcs_forms)
{
	char crc[9], md5b[25];
	unsigned char md5[16], back[16];
	struct hash_md5 *h = hash_md5_new(), *d;

	/* GCS documents crc32c "yZRlqg==" for "hello world". */
	hash_crc32c_b64(hash_crc32c(0, "hello world", 11), crc);
	cr_assert_str_eq(crc, "yZRlqg==");
	hash_md5_update(h, "hello ", 6);
	d = hash_md5_dup(h);
	hash_md5_update(h, "world", 5);
	hash_md5_peek(h, md5);
	hash_md5_b64(md5, md5b);
	cr_assert_str_eq(md5b, "XrY7u+Ae7tCTyyK7j1rNww==");
	/* The copy rewinds to the checkpoint. */
	hash_md5_update(d, "world", 5);
	hash_md5_peek(d, back);
	cr_assert_eq(memcmp(md5, back, 16), 0);
	cr_assert_eq(hash_unbase64(md5b, back, sizeof(back)), 16);
	cr_assert_eq(memcmp(md5, back, 16), 0);
	cr_assert_eq(hash_unbase64("not base64!", back, sizeof(back)), -1);
	hash_md5_free(h);
	hash_md5_free(d);
	hash_md5_free(NULL);
}
