/* SPDX-License-Identifier: MIT */
/*
 * hook/jbuf.c: the JSON string escaper must turn any bytes into valid JSON in valid UTF-8
 * (PROTOCOL 10: the message is always valid JSON), replacing ill-formed UTF-8 by U+FFFD per maximal
 * subpart.
 */
#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "hook/jbuf.h"
#include "tests/tap.h"

#define FFFD "\xEF\xBF\xBD"

/* Escape n bytes of in; compare with want (quotes included). */
static void check(const char *in, size_t n, const char *want, const char *name)
{
	struct jbuf b = JBUF_INIT;

	jbuf_put_json_str(&b, in, n);
	ok(jbuf_error(&b) == 0, "%s: no error", name);
	is_str(b.data, want, "%s", name);
	jbuf_free(&b);
}

#define CHECK(lit, want, name) check(lit, sizeof(lit) - 1, want, name)

/*
 * An independent check of the escaper's output, written from RFC 8259 and RFC 3629 rather than
 * from jbuf.c: a quoted string, escapes only from the JSON set, no raw control byte, and every
 * multi-byte sequence well-formed (no overlong form, surrogate or code point past U+10FFFF).
 */
static int valid_json_string(const unsigned char *s, size_t n)
{
	size_t i = 1;

	if (n < 2 || s[0] != '"' || s[n - 1] != '"')
		return 0;
	while (i < n - 1) {
		unsigned char c = s[i];
		unsigned long cp;
		size_t len;

		if (c == '"' || c < 0x20 || c == 0x7F)
			return 0;
		if (c == '\\') {
			if (i + 1 >= n - 1)
				return 0;
			if (strchr("\"\\/bfnrt", s[i + 1]) && s[i + 1]) {
				i += 2;
				continue;
			}
			if (s[i + 1] != 'u' || i + 6 > n - 1)
				return 0;
			for (size_t k = 2; k < 6; k++)
				if (!strchr("0123456789abcdefABCDEF", s[i + k]) || !s[i + k])
					return 0;
			i += 6;
			continue;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			len = 2;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			len = 3;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + len > n - 1)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += len;
	}
	return 1;
}

static void test_escapes(void)
{
	CHECK("", "\"\"", "empty string");
	CHECK("plain text 123", "\"plain text 123\"", "ASCII passes through");
	CHECK("a\"b", "\"a\\\"b\"", "quote escaped");
	CHECK("a\\b", "\"a\\\\b\"", "backslash escaped");
	CHECK("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"", "short escapes");
	CHECK("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"", "other controls as \\u00XX");
	check("a\0b", 3, "\"a\\u0000b\"", "NUL as \\u0000");
	CHECK("/", "\"/\"", "slash left alone");
	CHECK("\xE2\x80\xA8\xE2\x80\xA9", "\"\\u2028\\u2029\"", "U+2028 and U+2029 escaped");
}

static void test_utf8(void)
{
	CHECK("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80",
	      "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"",
	      "valid 2, 3 and 4 byte sequences pass through");
	CHECK("\xEF\xBF\xBF\xF4\x8F\xBF\xBF", "\"\xEF\xBF\xBF\xF4\x8F\xBF\xBF\"",
	      "U+FFFF and U+10FFFF are valid");
	CHECK("a\x80z", "\"a" FFFD "z\"", "stray continuation byte");
	CHECK("\xFF\xFE", "\"" FFFD FFFD "\"", "bytes FF and FE");
	CHECK("\xC0\x80", "\"" FFFD FFFD "\"", "overlong NUL: two replacements");
	CHECK("\xC1\xBF", "\"" FFFD FFFD "\"", "overlong 2-byte form");
	CHECK("\xE0\x80\x80", "\"" FFFD FFFD FFFD "\"", "overlong 3-byte form");
	CHECK("\xF0\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"", "overlong 4-byte form");
	CHECK("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"", "surrogate U+D800");
	CHECK("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"", "past U+10FFFF");
	CHECK("\xF5\x80", "\"" FFFD FFFD "\"", "lead byte F5");
	CHECK("\xE2\x82", "\"" FFFD "\"", "truncated 3-byte sequence at the end: one replacement");
	CHECK("\xE2\x82z", "\"" FFFD "z\"", "truncated sequence then ASCII");
	CHECK("\xF0\x9F\x98", "\"" FFFD "\"", "truncated 4-byte sequence: one replacement");
	CHECK("\xE2\x82\"", "\"" FFFD "\\\"\"", "truncated sequence then a quote");
	CHECK("bad \xFF\xFE \"q\" back\\slash", "\"bad " FFFD FFFD " \\\"q\\\" back\\\\slash\"",
	      "invalid UTF-8 with a quote and a backslash (the hook tests' message)");
}

/* Random bytes, weighted towards the interesting ones, must always give a valid JSON string. */
static void test_random(void)
{
	static const unsigned char pick[] = { 0x00, 0x01, 0x1F, 0x20, '"',  '\\', 0x7F, 0x80,
					      0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE2, 0xED, 0xEF,
					      0xF0, 0xF4, 0xF5, 0xFF, 'a',  0xA0, 0x9F, 0x8F };
	unsigned char in[64];
	unsigned int seed = 12345;
	int bad = 0;

	for (int round = 0; round < 20000; round++) {
		struct jbuf b = JBUF_INIT;
		size_t n = (size_t)(rand_r(&seed) % (int)sizeof(in));

		for (size_t i = 0; i < n; i++)
			in[i] = rand_r(&seed) % 2 ? pick[(size_t)rand_r(&seed) % sizeof(pick)]
						  : (unsigned char)rand_r(&seed);
		jbuf_put_json_str(&b, in, n);
		if (jbuf_error(&b) || !valid_json_string((const unsigned char *)b.data, b.len)) {
			if (!bad)
				diag("first bad output: %s", b.data ? b.data : "(null)");
			bad++;
		}
		jbuf_free(&b);
	}
	is(bad, 0, "20000 random byte strings all give a valid JSON string in valid UTF-8");
	ok(!valid_json_string((const unsigned char *)"\"\xC0\x80\"", 4),
	   "the independent checker itself rejects an overlong form");
}

static void test_buffer(void)
{
	struct jbuf b = JBUF_INIT;
	char big[5000];

	memset(big, 'x', sizeof(big));
	jbuf_put(&b, big, sizeof(big));
	jbuf_printf(&b, "%s-%d", "n", 42);
	ok(jbuf_error(&b) == 0, "appends past the first allocation");
	is(b.len, sizeof(big) + 4, "length counts every append");
	is_str(b.data + sizeof(big), "n-42", "printf appends at the end and NUL-terminates");
	jbuf_reset(&b);
	is(b.len, 0, "reset empties");
	jbuf_puts(&b, "again");
	is_str(b.data, "again", "reuse after reset");
	jbuf_free(&b);
	ok(b.data == NULL && b.len == 0, "free resets");
}

static void test_cut(void)
{
	const char *s = "ab\xE2\x82\xAC"
			"cd"; /* a b EURO c d */

	is(utf8_cut(s, 7, 10), 7, "no cut when it fits");
	is(utf8_cut(s, 7, 5), 5, "cut after a whole character");
	is(utf8_cut(s, 7, 4), 2, "cut inside the euro sign backs up to its start");
	is(utf8_cut(s, 7, 3), 2, "cut after its lead byte backs up too");
	is(utf8_cut("\x80\x80\x80\x80\x80", 5, 4), 4, "all continuation bytes: cut anywhere");
}

int main(void)
{
	test_escapes();
	test_utf8();
	test_random();
	test_buffer();
	test_cut();
	return done_testing();
}
