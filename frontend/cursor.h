/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_CURSOR_H
#define GPS_FRONTEND_CURSOR_H

/*
 * Cursors (README "Browsers and exact resume", 3.8): the name of one message for the life of
 * the history, "<ring generation as 16 lowercase hex digits>-<seq in decimal>", e.g.
 * "0005f1c2a3b4c5d6-42". Clients treat it as opaque; the frontend resumes a stream exactly after
 * the message it names (X-Fetch-Since-Cursor, Last-Event-ID, ?lastEventId=).
 *
 * Everything here is pure: no I/O, no ring access, so the unit tests reach every branch.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

#define CURSOR_GEN_DIGITS 16u /* a uint64_t generation in hex, zero-padded */
#define CURSOR_SEQ_DIGITS 20u /* the longest uint64_t in decimal */
/* Bytes of the longest cursor with its NUL: 16 hex, '-', 20 digits, NUL. */
#define CURSOR_MAX	  (CURSOR_GEN_DIGITS + 1u + CURSOR_SEQ_DIGITS + 1u)

struct cursor {
	uint64_t gen; /* struct ring_hdr.generation of the ring the message was stored in */
	uint64_t seq; /* its sequence number in that ring; 0 names "before the first message" */
};

/* Write the cursor of (gen, seq) into buf (at least CURSOR_MAX bytes), NUL-terminated; returns
 * its length. */
size_t cursor_format(char *buf, size_t len, uint64_t gen, uint64_t seq);

/*
 * Parse s[0..len) as a cursor: exactly 16 lowercase hex digits, '-', then 1 to 20 decimal
 * digits without a leading zero (but "0" itself) whose value fits 64 bits. Nothing else, no
 * spaces: a cursor is only ever a token the server made. 0 with *ret set, or -EINVAL (*ret
 * untouched).
 */
_must_check_ int cursor_parse(const char *s, size_t len, struct cursor *ret);

/*
 * Where a stream resumed from cursor c starts, on a ring of generation gen whose held messages
 * are [tail, head). When c names this generation and its successor is still held (c->seq + 1 >=
 * tail) and c->seq < head, the stream goes on exactly after it: *ret_next = c->seq + 1, and the
 * result is false. Otherwise (another generation, an evicted successor, a seq not yet
 * published) the result is true: one gap notice (PROTOCOL 3.4) is due, *ret_next = tail and
 * *ret_missed = tail - (c->seq + 1) if the generation matches and that is positive, else 0.
 */
bool cursor_start(const struct cursor *c, uint64_t gen, uint64_t tail, uint64_t head,
		  uint64_t *ret_next, uint64_t *ret_missed);

/*
 * Find the query parameter name (case-sensitive, as in a URL) in the query of the request target
 * target[0..len) (after its first '?'), and %-decode its value into out (capacity outcap, NUL
 * added). The first occurrence counts. 1 with *ret_len set when found, 0 when absent (no query,
 * or no such parameter), -EINVAL for an invalid %-escape, -ENOBUFS when the decoded value does
 * not fit outcap - 1 bytes.
 */
_must_check_ int cursor_query_value(const char *target, size_t len, const char *name, char *out,
				    size_t outcap, size_t *ret_len);

#endif
