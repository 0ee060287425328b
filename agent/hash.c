/*
 * hash.c - CRC32C and MD5 for Cloud Storage.
 *
 * Debian ships no C library for CRC32C (zlib's crc32 is the other
 * polynomial), so it is computed here: with the SSE4.2 instruction when the
 * CPU has it, else slicing-by-8 tables.  MD5 and base64 come from OpenSSL.
 */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

#define POLY	0x82f63b78u	/* CRC32C, reflected */

static uint32_t	table[8][256];
static int	have_table, have_sse42 = -1;

static void
make_table(void)
{
	uint32_t	c;
	int		i, j, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ ((c & 1) ? POLY : 0);
		table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			table[k][i] = (table[k - 1][i] >> 8) ^
			    table[0][table[k - 1][i] & 0xff];
	have_table = 1;
}

static uint32_t
crc_soft(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t v;

	if (!have_table)
		make_table();
	while (len >= 8) {
		memcpy(&v, p, 8);
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^
		    table[5][(v >> 16) & 0xff] ^ table[4][(v >> 24) & 0xff] ^
		    table[3][(v >> 32) & 0xff] ^ table[2][(v >> 40) & 0xff] ^
		    table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t
crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t c = crc, v;

	while (len >= 8) {
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len-- > 0)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}
#endif

uint32_t
hash_crc32c(uint32_t crc, const void *buf, size_t len)
{
	crc = ~crc;
#if defined(__x86_64__)
	if (have_sse42 == -1)
		have_sse42 = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (have_sse42)
		return ~crc_hw(crc, buf, len);
#endif
	return ~crc_soft(crc, buf, len);
}

struct hash_md5 {
	EVP_MD_CTX *ctx;
};

struct hash_md5 *
hash_md5_new(void)
{
	struct hash_md5 *h = calloc(1, sizeof(*h));

	if (h == NULL)
		fatal("hash: calloc");
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_md5(), NULL) != 1)
		fatalx("hash: cannot initialise MD5");
	return h;
}

void
hash_md5_update(struct hash_md5 *h, const void *buf, size_t len)
{
	if (EVP_DigestUpdate(h->ctx, buf, len) != 1)
		fatalx("hash: MD5 update failed");
}

struct hash_md5 *
hash_md5_dup(const struct hash_md5 *h)
{
	struct hash_md5 *d = calloc(1, sizeof(*d));

	if (d == NULL)
		fatal("hash: calloc");
	d->ctx = EVP_MD_CTX_new();
	if (d->ctx == NULL || EVP_MD_CTX_copy_ex(d->ctx, h->ctx) != 1)
		fatalx("hash: cannot copy MD5 state");
	return d;
}

void
hash_md5_peek(const struct hash_md5 *h, unsigned char out[16])
{
	struct hash_md5	*d = hash_md5_dup(h);
	unsigned int	 n = 16;

	if (EVP_DigestFinal_ex(d->ctx, out, &n) != 1)
		fatalx("hash: MD5 final failed");
	hash_md5_free(d);
}

void
hash_md5_free(struct hash_md5 *h)
{
	if (h == NULL)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

void
hash_base64(const unsigned char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

void
hash_crc32c_b64(uint32_t crc, char out[9])
{
	unsigned char be[4];

	be[0] = (unsigned char)(crc >> 24);
	be[1] = (unsigned char)(crc >> 16);
	be[2] = (unsigned char)(crc >> 8);
	be[3] = (unsigned char)crc;
	hash_base64(be, 4, out);
}

void
hash_md5_b64(const unsigned char md5[16], char out[25])
{
	hash_base64(md5, 16, out);
}

long
hash_unbase64(const char *in, unsigned char *out, size_t outcap)
{
	size_t		 len = strlen(in), pad = 0;
	unsigned char	*tmp;
	int		 n;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > outcap + 2)
		return -1;
	if (in[len - 1] == '=')
		pad++;
	if (in[len - 2] == '=')
		pad++;
	tmp = malloc(len / 4 * 3 + 1);
	if (tmp == NULL)
		return -1;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	if (n < 0 || (size_t)n - pad > outcap) {
		free(tmp);
		return -1;
	}
	memcpy(out, tmp, (size_t)n - pad);
	free(tmp);
	return (long)((size_t)n - pad);
}
