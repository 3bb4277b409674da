/* SPDX-License-Identifier: MIT */
/* Cursors: formatting, parsing, and where a resumed stream starts. See frontend/cursor.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "frontend/cursor.h"

size_t cursor_format(char *buf, size_t len, uint64_t gen, uint64_t seq)
{
	int n = snprintf(buf, len, "%016" PRIx64 "-%" PRIu64, gen, seq);

	return n > 0 ? MIN((size_t)n, len ? len - 1 : 0) : 0;
}

/* The value of hex digit ch, or -1; upper case only when upper_ok (%-escapes take either). */
static int hex_value(char ch, bool upper_ok)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (upper_ok && ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int cursor_parse(const char *s, size_t len, struct cursor *ret)
{
	uint64_t gen = 0, seq = 0;
	size_t i;

	/* the shortest cursor is "<16 hex>-0"; the longest has 20 decimal digits */
	if (len < CURSOR_GEN_DIGITS + 2 || len > CURSOR_MAX - 1 || s[CURSOR_GEN_DIGITS] != '-')
		return -EINVAL;
	for (i = 0; i < CURSOR_GEN_DIGITS; i++) {
		int v = hex_value(s[i], false);

		if (v < 0)
			return -EINVAL;
		gen = gen << 4 | (uint64_t)v;
	}
	/* one spelling per cursor: "007" is not the cursor the server gave out */
	if (s[CURSOR_GEN_DIGITS + 1] == '0' && len > CURSOR_GEN_DIGITS + 2)
		return -EINVAL;
	for (i = CURSOR_GEN_DIGITS + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(seq, 10, &seq) ||
		    __builtin_add_overflow(seq, (uint64_t)(s[i] - '0'), &seq))
			return -EINVAL;
	}
	ret->gen = gen;
	ret->seq = seq;
	return 0;
}

bool cursor_start(const struct cursor *c, uint64_t gen, uint64_t tail, uint64_t head,
		  uint64_t *ret_next, uint64_t *ret_missed)
{
	/* c->seq < head first: it keeps c->seq + 1 from overflowing below */
	bool known = c->gen == gen && c->seq < head;

	if (known && c->seq + 1 >= tail) {
		*ret_next = c->seq + 1;
		*ret_missed = 0;
		return false;
	}
	*ret_next = tail;
	*ret_missed = known ? tail - (c->seq + 1) : 0;
	return true;
}

int cursor_query_value(const char *target, size_t len, const char *name, char *out, size_t outcap,
		       size_t *ret_len)
{
	const char *q = memchr(target, '?', len), *end = target + len;
	size_t nlen = strlen(name);

	if (!q || outcap == 0)
		return 0;
	for (const char *p = q + 1, *stop; p <= end; p = stop + 1) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		size_t o = 0;

		stop = amp ? amp : end;
		if ((size_t)(stop - p) <= nlen || memcmp(p, name, nlen) != 0 || p[nlen] != '=') {
			if (!amp)
				break;
			continue;
		}
		for (const char *v = p + nlen + 1; v < stop; v++) {
			char ch = *v;

			if (ch == '%') {
				int hi = stop - v > 2 ? hex_value(v[1], true) : -1;
				int lo = stop - v > 2 ? hex_value(v[2], true) : -1;

				if (hi < 0 || lo < 0)
					return -EINVAL;
				ch = (char)(hi << 4 | lo);
				v += 2;
			}
			if (o + 1 >= outcap)
				return -ENOBUFS;
			out[o++] = ch;
		}
		out[o] = '\0';
		*ret_len = o;
		return 1;
	}
	return 0;
}
