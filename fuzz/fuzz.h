/* SPDX-License-Identifier: MIT */
#ifndef GPS_FUZZ_FUZZ_H
#define GPS_FUZZ_FUZZ_H

/*
 * What every libFuzzer harness in fuzz/ shares: the entry points, a check that fails loudly,
 * exact-size copies for ASan, and a small generator for the harness's own choices.
 *
 * A harness never takes a choice (where to split the input, which limits to use) from anything
 * but the input itself, so a crash file replays exactly under the same binary.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/*
 * A broken invariant is a crash: abort() is reported by libFuzzer as a deadly signal and the
 * input is saved. The message says which property failed, which the stack alone would not.
 */
#define FUZZ_CHECK(cond, ...)                                                                    \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz: check failed at %s:%d: %s: ", __FILE__, __LINE__, \
				#cond);                                                          \
			fprintf(stderr, __VA_ARGS__);                                            \
			fputc('\n', stderr);                                                     \
			abort();                                                                 \
		}                                                                                \
	} while (0)

/*
 * A heap copy of exactly n bytes, so that reading one byte past the end is an ASan report
 * (libFuzzer's own buffer is exact too, but a harness often parses a part of it). ASan's
 * malloc(0) returns a real zero-byte block, so even an empty input is guarded.
 */
static inline uint8_t *fuzz_dup(const void *p, size_t n)
{
	uint8_t *d = malloc(n);

	FUZZ_CHECK(d != NULL || n == 0, "out of memory for %zu bytes", n);
	if (n)
		memcpy(d, p, n);
	return d;
}

/* FNV-1a: a seed for the harness's choices that changes with every byte of the input. */
static inline uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* splitmix64 (Steele, Lea, Flood): tiny, and every seed gives a full-period stream. */
static inline uint64_t fuzz_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A number in [lo, hi], lo <= hi. */
static inline size_t fuzz_range(uint64_t *state, size_t lo, size_t hi)
{
	return lo + (size_t)(fuzz_rand(state) % ((uint64_t)(hi - lo) + 1));
}

/* Whether [p, p + n) lies inside [base, base + len). */
static inline bool fuzz_inside(const void *base, size_t len, const void *p, size_t n)
{
	uintptr_t b = (uintptr_t)base, q = (uintptr_t)p;

	return q >= b && q - b <= len && n <= len - (q - b);
}

#endif
