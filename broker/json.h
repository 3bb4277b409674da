/* SPDX-License-Identifier: MIT */
#ifndef GPS_BROKER_JSON_H
#define GPS_BROKER_JSON_H

#include <stddef.h>
#include <sys/types.h>

#include "common/macro.h"

/*
 * Validation and normalisation of a published body (PROTOCOL 4.3).
 *
 * The body must be exactly one JSON text (RFC 8259: object, array, string, number, true, false,
 * null) in valid UTF-8, optionally surrounded by whitespace (SP, HT, LF, CR). jsmn (strict mode)
 * finds the structure; a walk over its tokens then checks what jsmn does not (see STYLE 12):
 * separators, primitive spelling, RFC 8259 numbers, string escapes, UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF) and no raw control bytes inside strings.
 */

/* Most jsmn tokens one body may have: a body that needs more is refused (-E2BIG). Each token
 * is 20 bytes (jsmn with parent links), so the broker reserves 5 MiB for the array once, at
 * start-up. */
#define JSON_MAX_TOKENS (256u * 1024u)

/* Deepest nesting of arrays and objects one body may have: deeper is refused (-E2BIG) before
 * jsmn runs. jsmn closes a bracket by walking up from its newest token, so its time grows with
 * tokens times depth: 100,000 nested '[' take it 18 s, while at 64 a worst-case body takes
 * about 30 ms. A hook message nests 3 deep. */
#define JSON_MAX_DEPTH 64u

struct json_validator; /* owns the token array; one per broker */

/* NULL on OOM. */
struct json_validator *json_validator_new(void);
void json_validator_free(struct json_validator *v);

/*
 * Validate in[0..len) and write the message into out (capacity outcap >= len): surrounding
 * whitespace removed, any CR, LF or TAB outside strings replaced by a space. A body that is
 * one line and has no surrounding whitespace comes out byte for byte.
 * Returns the message length (> 0); -EINVAL if the body is not one valid JSON text in UTF-8;
 * -E2BIG if it needs more than JSON_MAX_TOKENS tokens, nests deeper than JSON_MAX_DEPTH or is
 * longer than INT_MAX bytes (jsmn's offsets are int); -ENOBUFS if outcap < len.
 * out is unspecified on failure.
 */
_must_check_ ssize_t json_normalize(struct json_validator *v, const char *in, size_t len, char *out,
				    size_t outcap);

#endif
