/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the body validator and normaliser (broker/json.h).
 *
 * json_normalize() finds the structure with jsmn and checks the rest with its own walk, in three
 * passes that must agree on where strings and brackets are. This file holds a second opinion: a
 * plain recursive-descent RFC 8259 parser and a UTF-8 decoder written from the definitions, not
 * from json.c's tables. The two must accept the same bodies (bar the depth limit), and what is
 * accepted must be one line, the input with only its whitespace changed, and a fixed point:
 * normalising the output again gives the output.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "broker/json.h"
#include "common/utf8.h"
#include "fuzz/fuzz.h"

/* One validator for the whole run: it owns a 5 MiB token array, as the broker's does. */
static struct json_validator *validator;

/* Where the reference parser stands. */
struct ref {
	const uint8_t *s;
	size_t n;
	size_t i;
	unsigned depth;
	bool deep; /* stopped at JSON_MAX_DEPTH + 1 levels: json.c must refuse, either way */
};

/*
 * The code point at s, by the definition (RFC 3629 section 3): its length, or 0 if the bytes are
 * not a shortest-form encoding of a scalar value. Written differently from json_utf8_seq on
 * purpose: decode first, judge the number after.
 */
static size_t ref_utf8(const uint8_t *s, size_t avail)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = s[0] & 0x1FU;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0FU;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = s[0] & 0x07U;
	} else {
		return 0;
	}
	if (avail < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3FU);
	}
	if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static bool ref_utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k) {
		k = ref_utf8(s + i, n - i);
		if (!k)
			return false;
	}
	return true;
}

static bool ref_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void ref_skip_ws(struct ref *r)
{
	while (r->i < r->n && ref_ws(r->s[r->i]))
		r->i++;
}

static bool ref_digit(struct ref *r)
{
	return r->i < r->n && r->s[r->i] >= '0' && r->s[r->i] <= '9';
}

static bool ref_eat(struct ref *r, char c)
{
	if (r->i < r->n && r->s[r->i] == (uint8_t)c) {
		r->i++;
		return true;
	}
	return false;
}

/* number = [ minus ] int [ frac ] [ exp ] (RFC 8259 section 6) */
static bool ref_number(struct ref *r)
{
	(void)ref_eat(r, '-');
	if (ref_eat(r, '0')) {
		/* no leading zeros */
	} else if (ref_digit(r)) {
		while (ref_digit(r))
			r->i++;
	} else {
		return false;
	}
	if (ref_eat(r, '.')) {
		if (!ref_digit(r))
			return false;
		while (ref_digit(r))
			r->i++;
	}
	if (ref_eat(r, 'e') || ref_eat(r, 'E')) {
		if (!ref_eat(r, '+'))
			(void)ref_eat(r, '-');
		if (!ref_digit(r))
			return false;
		while (ref_digit(r))
			r->i++;
	}
	return true;
}

/* string = quotation-mark *char quotation-mark (RFC 8259 section 7), in UTF-8 (section 8.1) */
static bool ref_string(struct ref *r)
{
	if (!ref_eat(r, '"'))
		return false;
	while (r->i < r->n) {
		uint8_t c = r->s[r->i];
		size_t k;

		if (c == '"') {
			r->i++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c == '\\') {
			if (r->i + 1 >= r->n)
				return false;
			c = r->s[r->i + 1];
			if (c == 'u') {
				if (r->n - r->i < 6)
					return false;
				for (size_t h = 2; h < 6; h++)
					if (!strchr("0123456789abcdefABCDEF", r->s[r->i + h]) ||
					    r->s[r->i + h] == 0)
						return false;
				r->i += 6;
			} else if (c != 0 && strchr("\"\\/bfnrt", c)) {
				r->i += 2;
			} else {
				return false;
			}
			continue;
		}
		k = ref_utf8(r->s + r->i, r->n - r->i);
		if (!k)
			return false;
		r->i += k;
	}
	return false;
}

static bool ref_literal(struct ref *r, const char *word)
{
	size_t len = strlen(word);

	if (r->n - r->i < len || memcmp(r->s + r->i, word, len) != 0)
		return false;
	r->i += len;
	return true;
}

static bool ref_value(struct ref *r);

/* array or object, after its opening bracket; close is ']' or '}' */
/* Recursive, bounded: depth stops at JSON_MAX_DEPTH + 1. */
static bool ref_container(struct ref *r, char close) /* NOLINT(misc-no-recursion) */
{
	if (++r->depth > JSON_MAX_DEPTH) {
		r->deep = true;
		return false;
	}
	ref_skip_ws(r);
	if (!ref_eat(r, close)) {
		for (;;) {
			if (close == '}') {
				if (!ref_string(r))
					return false;
				ref_skip_ws(r);
				if (!ref_eat(r, ':'))
					return false;
				ref_skip_ws(r);
			}
			if (!ref_value(r))
				return false;
			ref_skip_ws(r);
			if (ref_eat(r, close))
				break;
			if (!ref_eat(r, ','))
				return false;
			ref_skip_ws(r);
		}
	}
	r->depth--;
	return true;
}

static bool ref_value(struct ref *r) /* NOLINT(misc-no-recursion) */
{
	if (r->i >= r->n)
		return false;
	switch (r->s[r->i]) {
	case '{':
		r->i++;
		return ref_container(r, '}');
	case '[':
		r->i++;
		return ref_container(r, ']');
	case '"':
		return ref_string(r);
	case 't':
		return ref_literal(r, "true");
	case 'f':
		return ref_literal(r, "false");
	case 'n':
		return ref_literal(r, "null");
	default:
		return ref_number(r);
	}
}

/* JSON-text = ws value ws */
static bool ref_text(struct ref *r)
{
	ref_skip_ws(r);
	if (!ref_value(r))
		return false;
	ref_skip_ws(r);
	return r->i == r->n;
}

/* libFuzzer's signature: argc is not const. */
int LLVMFuzzerInitialize(int *argc, char ***argv) /* NOLINT(readability-non-const-parameter) */
{
	(void)argc;
	(void)argv;
	validator = json_validator_new();
	FUZZ_CHECK(validator != NULL, "json_validator_new");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ref r = { .s = data, .n = size };
	size_t first = 0, last = size;
	uint8_t *in = fuzz_dup(data, size), *out = malloc(size), *again;
	bool ok;
	ssize_t n, m;

	FUZZ_CHECK(out || size == 0, "out of memory");

	/* Two UTF-8 validators, two ways: they agree on every input. */
	FUZZ_CHECK(!utf8_valid(in, size) == !ref_utf8_valid(data, size), "utf8_valid says %d",
		   utf8_valid(in, size));

	ok = ref_text(&r);
	n = json_normalize(validator, (const char *)in, size, (char *)out, size);
	if (ok) {
		FUZZ_CHECK(n > 0, "a valid body refused: %zd", n);
	} else if (r.deep) {
		FUZZ_CHECK(n == -ELOOP || n == -EINVAL, "a body over the depth limit: %zd", n);
	} else {
		FUZZ_CHECK(n == -EINVAL || n == -E2BIG || n == -ELOOP, "an invalid body: %zd", n);
	}
	if (size > 0) {
		/* Less room than the input is refused up front, whatever the input. */
		FUZZ_CHECK(json_normalize(validator, (const char *)in, size, (char *)out,
					  size - 1) == -ENOBUFS,
			   "outcap below len");
		n = json_normalize(validator, (const char *)in, size, (char *)out, size);
	}
	if (n <= 0)
		goto out;

	/* The message: the trimmed input with CR, LF and TAB turned into spaces, one line. */
	while (first < last && ref_ws(data[first]))
		first++;
	while (last > first && ref_ws(data[last - 1]))
		last--;
	FUZZ_CHECK((size_t)n == last - first, "message of %zd bytes from %zu", n, last - first);
	FUZZ_CHECK(!ref_ws(out[0]) && !ref_ws(out[n - 1]), "message not trimmed");
	for (size_t i = 0; i < (size_t)n; i++) {
		uint8_t a = data[first + i], b = out[i];

		FUZZ_CHECK(b >= 0x20, "control byte 0x%02x at %zu in a message", b, i);
		FUZZ_CHECK(a == b || (b == ' ' && ref_ws(a)), "byte %zu changed: 0x%02x to 0x%02x",
			   i, a, b);
	}
	FUZZ_CHECK(utf8_valid(out, (size_t)n), "message is not UTF-8");

	/* Idempotent: the message is its own normal form, byte for byte. */
	again = malloc((size_t)n);
	FUZZ_CHECK(again != NULL, "out of memory");
	m = json_normalize(validator, (const char *)out, (size_t)n, (char *)again, (size_t)n);
	FUZZ_CHECK(m == n && memcmp(again, out, (size_t)n) == 0,
		   "normalising a message again gave %zd", m);
	free(again);
out:
	free(in);
	free(out);
	return 0;
}
