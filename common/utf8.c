/* SPDX-License-Identifier: MIT */
/* UTF-8 decoding, validation and cutting: see common/utf8.h. */
#include "common/utf8.h"

size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *ret_cp, size_t *ret_bad)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xBF;
	size_t need, i;
	uint32_t cp;

	if (c < 0x80) {
		*ret_cp = c;
		return 1;
	}
	if (c < 0xC2 || c > 0xF4) {
		*ret_bad = 1;
		return 0;
	}
	need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
	cp = c & (0x7FU >> need); /* the lead byte's payload bits */
	/* table 3-7: only these lead bytes narrow the second byte's range */
	if (c == 0xE0)
		lo = 0xA0; /* no overlong 3-byte form */
	else if (c == 0xED)
		hi = 0x9F; /* no surrogate */
	else if (c == 0xF0)
		lo = 0x90; /* no overlong 4-byte form */
	else if (c == 0xF4)
		hi = 0x8F; /* nothing past U+10FFFF */
	for (i = 1; i < need; i++) {
		if (i >= n || p[i] < lo || p[i] > hi) {
			*ret_bad = i;
			return 0;
		}
		cp = cp << 6 | (p[i] & 0x3FU);
		lo = 0x80;
		hi = 0xBF;
	}
	*ret_cp = cp;
	return need;
}

bool utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t bad, len;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		len = utf8_decode(p + i, n - i, &cp, &bad);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

size_t utf8_cut(const void *vp, size_t n, size_t max)
{
	const uint8_t *p = vp;
	size_t cut, k;

	if (n <= max)
		return n;
	cut = max;
	/* back up over at most 3 continuation bytes to the lead byte of the cut sequence */
	for (k = 0; k < 3 && cut > 0 && (p[cut] & 0xC0) == 0x80; k++)
		cut--;
	if ((p[cut] & 0xC0) == 0x80)
		return max; /* not UTF-8 here: any cut is as good as another */
	return cut;
}
