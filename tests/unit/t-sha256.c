/* SPDX-License-Identifier: MIT */
/*
 * t-sha256: common/sha256.c against the FIPS 180-4 examples (NIST's "SHA256.pdf" and
 * "SHA2_Additional.pdf"): the empty message, "abc", the 448-bit two-block message, a million
 * 'a's; and lengths around the padding boundary (55, 56, 64 bytes), fed whole and byte by byte.
 */
#include <stdio.h>
#include <string.h>

#include "common/sha256.h"
#include "tests/tap.h"

static const char *hex(const uint8_t d[SHA256_BYTES])
{
	static char buf[2 * SHA256_BYTES + 1];

	for (size_t i = 0; i < SHA256_BYTES; i++)
		(void)snprintf(buf + 2 * i, 3, "%02x", d[i]);
	return buf;
}

static void vector(const char *msg, size_t len, const char *want, const char *name)
{
	uint8_t d[SHA256_BYTES];
	struct sha256 s;

	sha256_digest(msg, len, d);
	is_str(hex(d), want, "%s", name);
	sha256_init(&s);
	for (size_t i = 0; i < len; i++)
		sha256_update(&s, msg + i, 1);
	sha256_final(&s, d);
	is_str(hex(d), want, "%s, a byte at a time", name);
}

int main(void)
{
	static char million[1000000];
	char buf[128];
	uint8_t a[SHA256_BYTES], b[SHA256_BYTES];
	struct sha256 s;

	vector("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
	vector("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
	vector("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
	       "448 bits: the length goes in a second block");
	memset(buf, 'a', sizeof(buf));
	vector(buf, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
	       "55 bytes: one block");
	vector(buf, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
	       "64 bytes: a whole block, padding in the next");
	memset(million, 'a', sizeof(million));
	sha256_init(&s);
	for (size_t off = 0; off < sizeof(million); off += 1000)
		sha256_update(&s, million + off, 1000);
	sha256_final(&s, a);
	is_str(hex(a), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
	       "a million 'a's, in pieces");

	sha256_digest("abc", 3, b);
	ok(!sha256_equal(a, b), "different digests are not equal");
	memcpy(b, a, sizeof(a));
	ok(sha256_equal(a, b), "equal digests are equal");
	b[SHA256_BYTES - 1] ^= 1;
	ok(!sha256_equal(a, b), "a difference in the last bit is seen");
	return done_testing();
}
