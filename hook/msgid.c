/* SPDX-License-Identifier: MIT */
/* The hook's message ids: see hook/msgid.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "hook/msgid.h"

void hook_msgid(uint64_t num, const char *msg, size_t len, char out[HOOK_MSGID_SIZE])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t digest[SHA256_DIGEST_LENGTH];
	int n;

	(void)SHA256((const unsigned char *)msg, len, digest);
	n = snprintf(out, HOOK_MSGID_SIZE, HOOK_MSGID_PREFIX "%0*llu-", SPOOL_DIGITS,
		     (unsigned long long)num);
	for (unsigned i = 0; i < HOOK_MSGID_HASH_HEX / 2 && n >= 0; i++) {
		out[n++] = hex[digest[i] >> 4];
		out[n++] = hex[digest[i] & 15];
	}
	out[HOOK_MSGID_LEN] = '\0';
}

int hook_msgid_number(const char *name, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < SPOOL_DIGITS; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(name[i] - '0'), &v))
			return -EINVAL;
	}
	if (strcmp(name + SPOOL_DIGITS, SPOOL_SUFFIX) != 0)
		return -EINVAL;
	*ret = v;
	return 0;
}
