/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_UTF8_H
#define GPS_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The one UTF-8 decoder of the tree (RFC 3629; the Unicode standard's table 3-7): the broker's
 * JSON validation and the hook's JSON writer both read text through it.
 */

/*
 * Decode the sequence at p[0..n), n >= 1. Returns its length (1-4) with the code point in
 * *ret_cp, or 0 when it is ill-formed, with *ret_bad set to the length of its maximal subpart:
 * the longest prefix that could still have begun a well-formed sequence (at least 1). The
 * second-byte ranges rule out overlong forms (E0, F0), surrogates (ED) and code points past
 * U+10FFFF (F4); C0, C1 and F5..FF never start a sequence.
 */
size_t utf8_decode(const uint8_t *p, size_t n, uint32_t *ret_cp, size_t *ret_bad);

/* Whether p[0..n) is valid UTF-8. */
bool utf8_valid(const uint8_t *p, size_t n);

/*
 * Length of the longest prefix of p[0..n) that is at most max bytes and does not end inside a
 * UTF-8 sequence (only the last 3 bytes are looked at, so ill-formed input is cut anywhere).
 */
size_t utf8_cut(const void *p, size_t n, size_t max);

#endif
