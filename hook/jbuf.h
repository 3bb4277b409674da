/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_JBUF_H
#define GPS_HOOK_JBUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/*
 * A growable byte buffer for building JSON messages and collecting git's output.
 *
 * Appends do not return errors: the first failure (out of memory, or growing past JBUF_MAX) is
 * kept in 'err' and every later append is a no-op, so a message is built with a run of appends
 * and checked once with jbuf_error() (the shape of git's strbuf, without dying). The data is
 * always NUL-terminated once anything was appended, so it can be handed to C string functions
 * when it holds no NUL itself.
 */

/*
 * Nothing the hook builds or reads comes near this: a message is capped far below the server's
 * 2 MiB body limit (hook/msg.h), and git's output for one push is a few megabytes even for a
 * mirror of a large repository. It exists so that a runaway git or a corrupt spool file ends in
 * -E2BIG instead of exhausting memory.
 */
#define JBUF_MAX ((size_t)256 << 20)

struct jbuf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
	int err; /* 0, or the first -errno of a failed append (sticky) */
};

#define JBUF_INIT             \
	{                     \
		NULL, 0, 0, 0 \
	}

/* Free the data and reset to JBUF_INIT. Accepts a zeroed or already freed buffer. */
void jbuf_free(struct jbuf *b);
/* Forget the contents and the error, keep the memory. */
void jbuf_reset(struct jbuf *b);

/*
 * Make room for n more bytes (and the NUL) so the caller can write into data + len directly,
 * then add what it wrote to len and store the NUL itself. 0, or the buffer's error.
 */
_must_check_ int jbuf_reserve(struct jbuf *b, size_t n);

void jbuf_put(struct jbuf *b, const void *p, size_t n);
void jbuf_puts(struct jbuf *b, const char *s);
void jbuf_putc(struct jbuf *b, char c);
void jbuf_printf(struct jbuf *b, const char *fmt, ...) _printf_(2, 3);

/*
 * Append p[0..n) as a JSON string, quotes included. The result is always valid JSON in valid
 * UTF-8 whatever the input: '"' and '\' are escaped, control characters (U+0000-U+001F, U+007F)
 * become \b \f \n \r \t or \u00XX, U+2028 and U+2029 become \u2028 and \u2029 (so the text is
 * also valid JavaScript), and each ill-formed UTF-8 sequence (stray continuation bytes, overlong
 * forms, surrogates, code points past U+10FFFF, truncated sequences) is replaced by one U+FFFD per
 * maximal subpart, as Unicode recommends (chapter 3, "U+FFFD Substitution of Maximal Subparts").
 */
void jbuf_put_json_str(struct jbuf *b, const void *p, size_t n);
/* The same without the quotes, to build one JSON string from several pieces. */
void jbuf_put_json_chars(struct jbuf *b, const void *p, size_t n);

/* 0, or the -errno that stopped an append (-ENOMEM, -E2BIG). */
_must_check_ int jbuf_error(const struct jbuf *b);

#endif
