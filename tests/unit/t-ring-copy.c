/* SPDX-License-Identifier: MIT */
/*
 * ring_copy_from() (shm/ring.c): the one function that copies record bytes out of the ring. On
 * x86-64 it copies records of RING_COPY_MOVSB_MIN bytes and more with rep movsb and shorter ones
 * with memcpy (README "Performance", replay speed), so both paths and the switch between them are
 * checked: every length up to 4 KiB and a few large ones, at every source and destination alignment
 * within 8 bytes, against the bytes they must equal, with guard bytes around the destination
 * that must stay untouched, and straight up to the end of a mapping followed by a PROT_NONE
 * page (the ring's data area ends at the mapping's end; a copy that read one byte past its
 * record there would fault).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shm/ring.h"
#include "tests/tap.h"

#define COPY_MAX_SMALL	4096u	   /* every length up to this */
#define COPY_GUARD	16u	   /* untouched bytes checked on each side of the destination */
#define COPY_GUARD_BYTE 0xa5u	   /* what they hold */
#define COPY_BIG	(1u << 20) /* the largest length tried: a replay batch is 256 KiB */
#define COPY_SWITCH	256u	   /* RING_COPY_MOVSB_MIN in shm/ring.c */

static uint8_t pattern_at(size_t i)
{
	/* not periodic in any power of two, so a shifted copy cannot match by chance */
	return (uint8_t)((i * 131u + (i >> 8) * 7u + 1u) % 251u);
}

/* Copy len bytes from src offset so to dst offset do; whether the copy and the guards are right. */
static int check_copy(const uint8_t *src, uint8_t *dst, size_t so, size_t d_o, size_t len)
{
	memset(dst, COPY_GUARD_BYTE, d_o + len + 2 * (size_t)COPY_GUARD);
	ring_copy_from(dst + COPY_GUARD + d_o, src + so, len);
	for (size_t i = 0; i < COPY_GUARD + d_o; i++)
		if (dst[i] != COPY_GUARD_BYTE)
			return 0;
	if (memcmp(dst + COPY_GUARD + d_o, src + so, len) != 0)
		return 0;
	for (size_t i = 0; i < COPY_GUARD; i++)
		if (dst[COPY_GUARD + d_o + len + i] != COPY_GUARD_BYTE)
			return 0;
	return 1;
}

int main(void)
{
	static const size_t big[] = { 65535, 65536, 65537, 262143, 262144, COPY_BIG };
	size_t page = (size_t)sysconf(_SC_PAGESIZE), span;
	uint8_t *src = malloc(COPY_BIG + 64), *dst = malloc(COPY_BIG + 64 + 2 * COPY_GUARD);
	uint8_t *map, *end;
	size_t bad = 0, first_bad = 0;

	if (!src || !dst) {
		free(src);
		free(dst);
		return 1;
	}
	for (size_t i = 0; i < COPY_BIG + 64; i++)
		src[i] = pattern_at(i);

	for (size_t len = 0; len <= COPY_MAX_SMALL; len++)
		for (size_t so = 0; so < 8; so++)
			for (size_t d_o = 0; d_o < 8; d_o++)
				if (!check_copy(src, dst, so, d_o, len) && bad++ == 0)
					first_bad = len;
	is(bad, 0, "lengths 0-%u at every alignment: right bytes, guards untouched",
	   COPY_MAX_SMALL);
	if (bad)
		diag("first wrong length: %zu", first_bad);
	ok(check_copy(src, dst, 0, 0, COPY_SWITCH - 1) && check_copy(src, dst, 3, 5, COPY_SWITCH) &&
		   check_copy(src, dst, 7, 1, COPY_SWITCH + 1),
	   "either side of the switch to rep movsb (%u bytes)", COPY_SWITCH);
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
		ok(check_copy(src, dst, i % 8, (i * 3) % 8, big[i]), "a %zu-byte copy", big[i]);

	/* Up to the very end of a mapping whose next page is PROT_NONE. */
	span = 3 * page;
	map = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED || mprotect(map + span, page, PROT_NONE) < 0) {
		ok(0, "a mapping with a guard page");
		goto out_free;
	}
	end = map + span;
	for (size_t i = 0; i < span; i++)
		map[i] = pattern_at(i);
	bad = 0;
	for (size_t len = 1; len <= span; len += (len < 1024 ? 1 : 997))
		if (!check_copy(end - len, dst, 0, len % 8, len))
			bad++;
	ring_copy_from(dst, end - span, span);
	is(bad, 0, "records that end where the mapping ends are copied whole");
	ok(memcmp(dst, map, span) == 0, "a copy of the whole mapping, up to its guard page");
	(void)munmap(map, span + page);
out_free:
	free(src);
	free(dst);
	return done_testing();
}
