/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_SHA256_H
#define GPS_COMMON_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * SHA-256 (FIPS 180-4), for the publish tokens' digests ([Clients] tokensFile): the frontend is
 * a static musl program that links no crypto library, so it has this one small implementation,
 * shared with gpsctl. Not for bulk hashing: a token is a few dozen bytes.
 */

#define SHA256_BYTES	   32u
#define SHA256_BLOCK_BYTES 64u

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	uint8_t block[SHA256_BLOCK_BYTES];
	size_t fill; /* bytes waiting in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* Write the digest to out; s must be initialised again before more use. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES]);
/* The digest of data[0..len) in one call. */
void sha256_digest(const void *data, size_t len, uint8_t out[SHA256_BYTES]);

/* Whether a and b are equal, in a time that does not depend on where they differ. */
bool sha256_equal(const uint8_t a[SHA256_BYTES], const uint8_t b[SHA256_BYTES]);

#endif
