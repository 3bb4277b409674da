/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "hook/jbuf.h"

/* Smallest allocation: most appends are short, and a few doublings reach any message. */
#define JBUF_MIN_CAP 256

void jbuf_free(struct jbuf *b)
{
	free(b->data);
	*b = (struct jbuf)JBUF_INIT;
}

void jbuf_reset(struct jbuf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for n more bytes and the NUL; false (error recorded) if that is impossible. */
static bool jbuf_grow(struct jbuf *b, size_t n)
{
	size_t need, cap;
	char *p;

	if (b->err)
		return false;
	if (n > JBUF_MAX - b->len) {
		b->err = -E2BIG;
		return false;
	}
	need = b->len + n + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : JBUF_MIN_CAP;
	while (cap < need)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		b->err = -ENOMEM;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

int jbuf_reserve(struct jbuf *b, size_t n)
{
	return jbuf_grow(b, n) ? 0 : b->err;
}

void jbuf_put(struct jbuf *b, const void *p, size_t n)
{
	if (!jbuf_grow(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void jbuf_puts(struct jbuf *b, const char *s)
{
	jbuf_put(b, s, strlen(s));
}

void jbuf_putc(struct jbuf *b, char c)
{
	jbuf_put(b, &c, 1);
}

void jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t room;
	int n;

	if (!jbuf_grow(b, 0))
		return;
	room = b->cap - b->len;
	va_start(ap, fmt);
	/*
	 * clang-tidy 14 reports this va_list as uninitialized when another file precedes this one
	 * on its command line (as in `make lint`), never when it checks this file alone.
	 */
	n = vsnprintf(b->data + b->len, room, fmt, ap); /* NOLINT(clang-analyzer-valist.*) */
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	if ((size_t)n >= room) {
		/* did not fit: grow to the size it told us, and format again */
		if (!jbuf_grow(b, (size_t)n))
			return;
		va_start(ap, fmt);
		(void)vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

int jbuf_error(const struct jbuf *b)
{
	return b->err;
}

void jbuf_put_json_str(struct jbuf *b, const void *p, size_t n)
{
	jbuf_putc(b, '"');
	jbuf_put_json_chars(b, p, n);
	jbuf_putc(b, '"');
}

void jbuf_put_json_chars(struct jbuf *b, const void *vp, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *p = vp;
	size_t i = 0;

	while (i < n) {
		size_t start = i;
		uint32_t cp = 0;
		size_t bad = 0, len = 0;
		char esc[6];

		/* the longest run that needs no escaping goes out in one append */
		for (;;) {
			if (i >= n)
				break;
			len = utf8_decode(p + i, n - i, &cp, &bad);
			if (!len || cp < 0x20 || cp == '"' || cp == '\\' || cp == 0x7F ||
			    cp == 0x2028 || cp == 0x2029)
				break;
			i += len;
		}
		jbuf_put(b, p + start, i - start);
		if (i >= n)
			break;
		if (!len) {
			jbuf_put(b, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
			i += bad;
			continue;
		}
		i += len;
		switch (cp) {
		case '"':
			jbuf_put(b, "\\\"", 2);
			break;
		case '\\':
			jbuf_put(b, "\\\\", 2);
			break;
		case '\b':
			jbuf_put(b, "\\b", 2);
			break;
		case '\f':
			jbuf_put(b, "\\f", 2);
			break;
		case '\n':
			jbuf_put(b, "\\n", 2);
			break;
		case '\r':
			jbuf_put(b, "\\r", 2);
			break;
		case '\t':
			jbuf_put(b, "\\t", 2);
			break;
		default:
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = hex[(cp >> 12) & 0xF];
			esc[3] = hex[(cp >> 8) & 0xF];
			esc[4] = hex[(cp >> 4) & 0xF];
			esc[5] = hex[cp & 0xF];
			jbuf_put(b, esc, 6);
			break;
		}
	}
}
