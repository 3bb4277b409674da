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

/*
 * Most values one body may have (jsmn tokens: every object, array, string, number, literal and
 * key is one): a body that needs more is refused (-E2BIG, "JSON has more than 1048576 values").
 * The smallest value takes two bytes with its comma, so a body within the default 2 MiB
 * maxBodySize never meets it; only a larger maxBodySize can. Each token is 20 bytes (jsmn with
 * parent links): the broker reserves 20 MiB of address space for the array once, at start-up,
 * and the pages a body touches stay resident (a body of small values touches 10 bytes of tokens
 * per byte). Validation time grows with values (10 ms for 2 MiB of "0,") and with values times
 * depth, see JSON_MAX_DEPTH.
 */
#define JSON_MAX_TOKENS (1024u * 1024u)

/*
 * Deepest nesting of arrays and objects one body may have: deeper is refused (-ELOOP, "JSON
 * nests deeper than 64 levels") before jsmn runs. jsmn closes a bracket by walking up from its
 * newest token, so its time grows with values times depth: the costliest body, blocks of
 * brackets nested to the limit up to JSON_MAX_TOKENS, takes 63 ms at 64 levels, 132 ms at 128
 * and 499 ms at 512 (100,000 nested '[' would take 18 s), and the broker stores nothing else
 * meanwhile: so it stays at 64. A hook message nests 3 deep, and documents meant to be read
 * rarely pass 20.
 */
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
 * -E2BIG if it needs more than JSON_MAX_TOKENS tokens; -ELOOP if it nests deeper than
 * JSON_MAX_DEPTH; -EFBIG if it is longer than INT_MAX bytes (jsmn's offsets are int); -ENOBUFS
 * if outcap < len.
 * out is unspecified on failure.
 */
_must_check_ ssize_t json_normalize(struct json_validator *v, const char *in, size_t len, char *out,
				    size_t outcap);

#endif
