/* SPDX-License-Identifier: MIT */
/*
 * Body validation in three linear passes over one buffer, with no allocation per call:
 *
 *  1. json_lex_copy() copies the trimmed body to out, turning CR, LF and TAB outside strings
 *     into spaces, and lexes it on the way: it refuses bytes no JSON text has outside strings,
 *     control bytes inside them, and nesting deeper than JSON_MAX_DEPTH, before jsmn runs.
 *  2. jsmn (strict, with parent links) finds the structure in out.
 *  3. json_walk() goes over jsmn's tokens in document order, without recursion, and checks
 *     what jsmn does not (STYLE 12): the bytes between tokens, keys, primitive spelling,
 *     string escapes and UTF-8.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
/*
 * Parent links make jsmn's ',' O(1) and its closing bracket O(depth). Without them both scan
 * back over earlier tokens: 100,000 sibling "[]" take seconds.
 */
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "broker/json.h"
#include "common/utf8.h"

/* jsmn keeps offsets in int: a longer body cannot be described by its tokens. */
#define JSON_MAX_LEN ((size_t)INT_MAX)

struct json_validator {
	unsigned int ntokens;
	jsmntok_t tokens[]; /* ntokens entries, reused by every call */
};

struct json_validator *json_validator_new(void)
{
	struct json_validator *v;

	v = calloc(1, sizeof(*v) + (size_t)JSON_MAX_TOKENS * sizeof(v->tokens[0]));
	if (!v)
		return NULL;
	v->ntokens = JSON_MAX_TOKENS;
	return v;
}

void json_validator_free(struct json_validator *v)
{
	free(v);
}

static int json_is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int json_is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int json_is_hex(uint8_t c)
{
	return json_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A byte that can appear in true, false, null or a number; the spelling is checked later. */
static int json_is_primitive_byte(uint8_t c)
{
	return json_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '+' ||
	       c == '-' || c == '.';
}

/* Whether s[0..len) is true, false, null or an RFC 8259 number. */
static int json_primitive_ok(const uint8_t *s, size_t len)
{
	size_t i = 0;

	if ((len == 4 && memcmp(s, "true", 4) == 0) || (len == 5 && memcmp(s, "false", 5) == 0) ||
	    (len == 4 && memcmp(s, "null", 4) == 0))
		return 1;
	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0') {
		i++;
	} else if (i < len && s[i] >= '1' && s[i] <= '9') {
		while (i < len && json_is_digit(s[i]))
			i++;
	} else {
		return 0;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !json_is_digit(s[i]))
			return 0;
		while (i < len && json_is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !json_is_digit(s[i]))
			return 0;
		while (i < len && json_is_digit(s[i]))
			i++;
	}
	return i == len;
}

/*
 * Whether the string contents s[0..len) (quotes excluded) have only valid escapes, no control
 * bytes and valid UTF-8. An escaped lone surrogate (\uD800) passes: RFC 8259 allows it.
 */
static int json_string_ok(const uint8_t *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		uint8_t c = s[i];

		if (c >= 0x20 && c < 0x80 && c != '\\') {
			i++;
			continue;
		}
		if (c < 0x20)
			return 0;
		if (c >= 0x80) {
			uint32_t cp;
			size_t bad;

			n = utf8_decode(s + i, len - i, &cp, &bad);
			if (!n)
				return 0;
			i += n;
			continue;
		}
		if (i + 1 >= len)
			return 0;
		switch (s[i + 1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			i += 2;
			break;
		case 'u':
			if (len - i < 6 || !json_is_hex(s[i + 2]) || !json_is_hex(s[i + 3]) ||
			    !json_is_hex(s[i + 4]) || !json_is_hex(s[i + 5]))
				return 0;
			i += 6;
			break;
		default:
			return 0;
		}
	}
	return 1;
}

enum json_lex_state {
	JSON_LEX_OUTSIDE,
	JSON_LEX_PRIMITIVE,
	JSON_LEX_STRING,
	JSON_LEX_ESCAPE,
};

/*
 * Copy in[0..len) to out[0..len) with CR, LF and TAB outside strings turned into spaces.
 * in may equal out: each byte is read before its place is written.
 *
 * On the way, lex as JSON does and refuse early what no JSON text contains: a stray byte
 * outside strings (NUL, a comment, a quote), a control byte inside a string, a primitive
 * followed by anything but whitespace, ',', ']' or '}', an unterminated string, unbalanced
 * brackets. Refusing a primitive followed by '"' or '[' also keeps this lexer's idea of where
 * strings are the same as jsmn's, which runs a strict primitive on to the next delimiter; so
 * the depth counted here is the depth jsmn will see, and a deep body is refused before jsmn
 * spends time quadratic in its depth on it.
 *
 * Returns 0, -EINVAL, or -ELOOP when brackets nest deeper than JSON_MAX_DEPTH.
 */
static int json_lex_copy(const uint8_t *in, size_t len, uint8_t *out)
{
	enum json_lex_state st = JSON_LEX_OUTSIDE;
	size_t depth = 0, i;

	for (i = 0; i < len; i++) {
		uint8_t c = in[i];

		out[i] = c;
		switch (st) {
		case JSON_LEX_STRING:
			if (c == '"')
				st = JSON_LEX_OUTSIDE;
			else if (c == '\\')
				st = JSON_LEX_ESCAPE;
			else if (c < 0x20)
				return -EINVAL;
			continue;
		case JSON_LEX_ESCAPE:
			if (c < 0x20)
				return -EINVAL;
			st = JSON_LEX_STRING;
			continue;
		case JSON_LEX_PRIMITIVE:
			if (json_is_primitive_byte(c))
				continue;
			if (!json_is_ws(c) && c != ',' && c != ']' && c != '}')
				return -EINVAL;
			st = JSON_LEX_OUTSIDE;
			break;
		case JSON_LEX_OUTSIDE:
			break;
		}

		switch (c) {
		case '\t':
		case '\n':
		case '\r':
			out[i] = ' ';
			break;
		case ' ':
		case ',':
		case ':':
			break;
		case '"':
			st = JSON_LEX_STRING;
			break;
		case '[':
		case '{':
			if (++depth > JSON_MAX_DEPTH)
				return -ELOOP;
			break;
		case ']':
		case '}':
			if (depth == 0)
				return -EINVAL;
			depth--;
			break;
		case '-':
		case 't':
		case 'f':
		case 'n':
			st = JSON_LEX_PRIMITIVE;
			break;
		default:
			if (!json_is_digit(c))
				return -EINVAL;
			st = JSON_LEX_PRIMITIVE;
			break;
		}
	}
	if (st == JSON_LEX_STRING || st == JSON_LEX_ESCAPE || depth != 0)
		return -EINVAL;
	return 0;
}

/* Whether s[from..to) is whitespace, or whitespace around exactly one sep when sep is not 0. */
static int json_gap_ok(const uint8_t *s, size_t from, size_t to, uint8_t sep)
{
	if (from > to)
		return 0;
	while (from < to && json_is_ws(s[from]))
		from++;
	if (sep) {
		if (from == to || s[from] != sep)
			return 0;
		from++;
		while (from < to && json_is_ws(s[from]))
			from++;
	}
	return from == to;
}

/* Where the walk stands inside the innermost open container. */
enum json_walk_state {
	JSON_WALK_FIRST,       /* just after '[' or '{' */
	JSON_WALK_AFTER_KEY,   /* after an object key: ':' and a value come next */
	JSON_WALK_AFTER_VALUE, /* after a whole element or member: ',' or the close comes next */
};

/*
 * Whether container c, entered and walked up to pos, closes cleanly: no key left without a
 * value, nothing but whitespace before its bracket (no trailing ',').
 */
static int json_close_ok(const uint8_t *s, const jsmntok_t *c, size_t pos, enum json_walk_state st)
{
	size_t end = (size_t)c->end;

	return st != JSON_WALK_AFTER_KEY && end > pos &&
	       s[end - 1] == (c->type == JSMN_OBJECT ? '}' : ']') &&
	       json_gap_ok(s, pos, end - 1, 0);
}

/* The container holding container c: its parent, or the object whose key c is the value of. */
static int json_container_of(const jsmntok_t *tok, int c)
{
	int p = tok[c].parent;

	if (p >= 0 && tok[p].type == JSMN_STRING)
		p = tok[p].parent;
	return p;
}

/*
 * Check jsmn's ntok tokens for s[0..len) against the grammar, in document order (jsmn numbers
 * tokens by where they start). pos is the first byte not yet accounted for: each token must
 * follow it after exactly the right separator, and each container's bracket must follow its
 * last member. The open containers are found through parent links, so the walk needs no stack
 * and its depth costs nothing. Returns 0 or -EINVAL.
 */
static int json_walk(const uint8_t *s, size_t len, const jsmntok_t *tok, int ntok)
{
	enum json_walk_state st = JSON_WALK_FIRST;
	size_t pos = 0;
	int cur = -1, key = -1, i;

	for (i = 0; i < ntok; i++) {
		const jsmntok_t *t = &tok[i];
		size_t start, end, lex_start;
		uint8_t sep;

		if (t->start < 0 || t->end < t->start)
			return -EINVAL;
		start = (size_t)t->start;
		end = (size_t)t->end;
		/* A string token spans its contents; its opening quote is the byte before. */
		lex_start = t->type == JSMN_STRING ? start - 1 : start;

		while (cur >= 0 && lex_start >= (size_t)tok[cur].end) {
			if (!json_close_ok(s, &tok[cur], pos, st))
				return -EINVAL;
			pos = (size_t)tok[cur].end;
			cur = json_container_of(tok, cur);
			st = JSON_WALK_AFTER_VALUE;
		}

		if (cur < 0) {
			/* The one top-level value; the text was trimmed, so it starts at 0. */
			if (i != 0)
				return -EINVAL;
			sep = 0;
		} else if (tok[cur].type == JSMN_ARRAY) {
			if (t->parent != cur)
				return -EINVAL;
			sep = st == JSON_WALK_FIRST ? 0 : ',';
		} else if (st == JSON_WALK_AFTER_KEY) {
			if (t->parent != key)
				return -EINVAL;
			sep = ':';
		} else {
			/* A key: a string that jsmn gave exactly one value. */
			if (t->type != JSMN_STRING || t->size != 1 || t->parent != cur ||
			    !json_gap_ok(s, pos, lex_start, st == JSON_WALK_FIRST ? 0 : ',') ||
			    !json_string_ok(s + start, end - start))
				return -EINVAL;
			pos = end + 1;
			key = i;
			st = JSON_WALK_AFTER_KEY;
			continue;
		}

		if (!json_gap_ok(s, pos, lex_start, sep))
			return -EINVAL;
		switch (t->type) {
		case JSMN_OBJECT:
		case JSMN_ARRAY:
			pos = start + 1;
			cur = i;
			st = JSON_WALK_FIRST;
			break;
		case JSMN_STRING:
			if (t->size != 0 || !json_string_ok(s + start, end - start))
				return -EINVAL;
			pos = end + 1;
			st = JSON_WALK_AFTER_VALUE;
			break;
		case JSMN_PRIMITIVE:
			if (t->size != 0 || !json_primitive_ok(s + start, end - start))
				return -EINVAL;
			pos = end;
			st = JSON_WALK_AFTER_VALUE;
			break;
		case JSMN_UNDEFINED:
		default:
			return -EINVAL;
		}
	}

	while (cur >= 0) {
		if (!json_close_ok(s, &tok[cur], pos, st))
			return -EINVAL;
		pos = (size_t)tok[cur].end;
		cur = json_container_of(tok, cur);
		st = JSON_WALK_AFTER_VALUE;
	}
	return pos == len ? 0 : -EINVAL;
}

ssize_t json_normalize(struct json_validator *v, const char *in, size_t len, char *out,
		       size_t outcap)
{
	const uint8_t *b = (const uint8_t *)in;
	size_t first = 0, last = len, tlen;
	jsmn_parser parser;
	int n, err;

	if (outcap < len)
		return -ENOBUFS;
	while (first < last && json_is_ws(b[first]))
		first++;
	while (last > first && json_is_ws(b[last - 1]))
		last--;
	if (first == last)
		return -EINVAL;
	tlen = last - first;
	if (tlen > JSON_MAX_LEN)
		return -EFBIG;

	err = json_lex_copy(b + first, tlen, (uint8_t *)out);
	if (err < 0)
		return err;

	/*
	 * jsmn calls a strict primitive partial unless a delimiter follows it, so a bare
	 * top-level number, true, false or null is checked here; it is the whole text.
	 */
	if (out[0] != '{' && out[0] != '[' && out[0] != '"')
		return json_primitive_ok((const uint8_t *)out, tlen) ? (ssize_t)tlen : -EINVAL;

	jsmn_init(&parser);
	n = jsmn_parse(&parser, out, tlen, v->tokens, v->ntokens);
	if (n == JSMN_ERROR_NOMEM)
		return -E2BIG;
	if (n <= 0)
		return -EINVAL;
	err = json_walk((const uint8_t *)out, tlen, v->tokens, n);
	if (err < 0)
		return err;
	return (ssize_t)tlen;
}
