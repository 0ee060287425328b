/*
 * hash.h - the checksums Cloud Storage speaks: CRC32C (Castagnoli) and MD5,
 * computed while data streams by, and their base64 forms.
 */
#ifndef HASH_H
#define HASH_H

#include <stddef.h>
#include <stdint.h>

/* Running CRC32C: start with 0, feed chunks, the value is the CRC. */
uint32_t	hash_crc32c(uint32_t crc, const void *buf, size_t len);

struct hash_md5;

/* A running MD5 owned by the caller (free with hash_md5_free). */
struct hash_md5	*hash_md5_new(void);
void		 hash_md5_update(struct hash_md5 *, const void *, size_t);
/* Copy of the state, so a resumable upload can rewind to a checkpoint. */
struct hash_md5	*hash_md5_dup(const struct hash_md5 *);
/* The digest so far (the state stays usable). */
void		 hash_md5_peek(const struct hash_md5 *, unsigned char out[16]);
void		 hash_md5_free(struct hash_md5 *);

/* Standard base64 of len bytes into out (at least 4*((len+2)/3)+1). */
void		 hash_base64(const unsigned char *in, size_t len, char *out);

/* The GCS forms: base64 of the big-endian CRC, base64 of the MD5. */
void		 hash_crc32c_b64(uint32_t crc, char out[9]);
void		 hash_md5_b64(const unsigned char md5[16], char out[25]);

/*
 * Decode base64 (standard alphabet, padded) into out (capacity outcap).
 * Returns the decoded length, or -1 if the text is not base64.
 */
long		 hash_unbase64(const char *in, unsigned char *out, size_t outcap);

#endif
