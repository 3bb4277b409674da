/* SPDX-License-Identifier: MIT */
/*
 * broker/json.c: validation and normalisation of published bodies (PROTOCOL 4.3), each jsmn gap
 * of STYLE 12, the token and depth limits, and utf8_valid.
 *
 * Every input is copied into a heap block of exactly its length and every output buffer is
 * exactly outcap bytes, so a sanitizer build catches a read or write one byte past either.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "broker/json.h"
#include "common/utf8.h"
#include "tests/tap.h"

/*
 * A CPU-time bound for the adversarial bodies: linear work takes milliseconds even under
 * sanitizers, while the quadratic paths these bodies aim at take many seconds.
 */
#define SLOW_SECONDS 3.0

/* Nesting that must neither overflow the stack nor take quadratic time. */
#define DEEP 100000u

struct json_case {
	const char *in;
	size_t len;
	ssize_t want;	 /* -errno, or 0 for "valid" */
	const char *out; /* expected message when valid; NULL means the input itself */
};

#define VALID(s)                                                        \
	{                                                               \
		.in = (s), .len = sizeof(s) - 1, .want = 0, .out = NULL \
	}
#define NORM(s, o)                                                     \
	{                                                              \
		.in = (s), .len = sizeof(s) - 1, .want = 0, .out = (o) \
	}
#define INVALID(s)                                                            \
	{                                                                     \
		.in = (s), .len = sizeof(s) - 1, .want = -EINVAL, .out = NULL \
	}

static const struct json_case cases[] = {
	/* Each kind of value, alone and nested: relayed byte for byte. */
	VALID("{}"),
	VALID("[]"),
	VALID("{\"a\":1}"),
	VALID("[1,2,3]"),
	VALID("\"x\""),
	VALID("\"\""),
	VALID("42"),
	VALID("0"),
	VALID("-0"),
	VALID("true"),
	VALID("false"),
	VALID("null"),
	VALID("1e5"),
	VALID("1.5E-3"),
	VALID("-12.25e+10"),
	VALID("[-0,0.0,1E0,10,0e0,1e-0,-1.0e+1]"),
	VALID("{\"a\":{\"b\":[true,false,null]}}"),
	VALID("[[[[]]]]"),
	VALID("{\"k\":[{},[],\"\",0,{\"x\":{}}]}"),
	VALID("[1,\"a\",{\"b\":null},[2]]"),
	VALID("{\"a\":\"b\",\"c\":\"d\",\"e\":[],\"f\":{}}"),
	VALID("{\"a\" : 1 , \"b\" : [ 1 , 2 ] }"),
	VALID("[ ]"),
	VALID("{ }"),
	VALID("{\"a\":1,\"a\":2}"),
	VALID("{\"commit\":{\"repository\":\"git\",\"project\":\"p\",\"ref\":\"refs/heads/main\","
	      "\"files\":[\"a.c\",\"b.c\"],\"changes\":\"2 files\"}}"),
	/* Escapes and Unicode. */
	VALID("\"\\u00e9\\u20AC\\uD83D\\uDE00\""),
	VALID("\"\\uD800\""),
	VALID("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\""),
	VALID("\"\\u0000\""),
	VALID("\"a\\\"b\""),
	VALID("\"[{\\\"}]\""),
	VALID("{\"]\":\"}\",\"\\\\\":\",:\"}"),
	VALID("\"\xc3\xa9\""),
	VALID("\"\xe2\x82\xac\""),
	VALID("\"\xf0\x9f\x98\x80\""),
	VALID("\"\xf4\x8f\xbf\xbf\""),
	VALID("\"\xed\x9f\xbf\xee\x80\x80\""),
	VALID("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xf0\x90\x80\x80\""),
	VALID("{\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}"),
	VALID("\"~\x7f\""),
	VALID("\"a b\""),

	/* Surrounding whitespace goes; CR, LF and TAB between tokens become one space each. */
	NORM(" {\"a\":1} ", "{\"a\":1}"),
	NORM("\r\n\t [1]\n", "[1]"),
	NORM("{\r\n\"a\":\t1,\r\n\"b\":2\r\n}", "{  \"a\": 1,  \"b\":2  }"),
	NORM("[1,\t2]", "[1, 2]"),
	NORM(" 42 ", "42"),
	NORM("\n\"x\"\n", "\"x\""),
	NORM("\ttrue\r\n", "true"),
	NORM("[\"a\\tb\",\n\"c\\nd\"]", "[\"a\\tb\", \"c\\nd\"]"),
	NORM("{\"a\"\r:\r[\r]\r}", "{\"a\" : [ ] }"),

	/* Empty or only whitespace. */
	INVALID(""),
	INVALID("   "),
	INVALID("\r\n\t"),

	/* What strict jsmn accepts (STYLE 12). */
	INVALID("{\"a\":tru}"),
	INVALID("{\"a\" \"b\"}"),
	INVALID("[1,]"),
	INVALID("{}{}"),
	INVALID("[01]"),
	INVALID("[\"a\x01\"]"),
	INVALID("[\"\xff\"]"),
	INVALID("{\"a\":1}:}"),
	INVALID("[1 :2]"),
	INVALID("[\"a\":1]"),
	INVALID("{\"a\"::1}"),
	INVALID("{\"a\":\"b\":1}"),
	INVALID("{\"a\":1 \"b\":2}"),
	INVALID("[t\" ,1]"),
	INVALID("[1\"x\"]"),
	INVALID("[1[2]]"),

	/* Structure. */
	INVALID("[1] x"),
	INVALID("[1],"),
	INVALID("[1]:"),
	INVALID("{} ,"),
	INVALID("\"x\":"),
	INVALID("\"x\","),
	INVALID("[1]x"),
	INVALID("1 2"),
	INVALID("\"a\" \"b\""),
	INVALID("[1 2]"),
	INVALID("[,1]"),
	INVALID("[1,,2]"),
	INVALID("{\"a\":1,}"),
	INVALID("{,}"),
	INVALID("{\"a\":}"),
	INVALID("{\"a\"}"),
	INVALID("{\"a\":1,\"b\"}"),
	INVALID("{1:2}"),
	INVALID("{[]:1}"),
	INVALID("{true:1}"),
	INVALID("[1]]"),
	INVALID("[[1]"),
	INVALID("{\"a\":1]"),
	INVALID("[}"),
	INVALID(","),
	INVALID(":"),
	INVALID("]"),
	INVALID("/* c */ {}"),
	INVALID("{} /* c */"),
	INVALID("// c\n{}"),
	INVALID("\xef\xbb\xbf{}"),
	INVALID("\f{}"),
	INVALID("{}\v"),
	INVALID("[1]\0"),
	INVALID("\0[1]"),
	INVALID("\0"),

	/* Strings. */
	INVALID("\"abc"),
	INVALID("[\"abc]"),
	INVALID("\"\\\""),
	INVALID("\"\\x\""),
	INVALID("\"\\u12G4\""),
	INVALID("\"\\u12\""),
	INVALID("\"\\U0041\""),
	INVALID("\"\\'\""),
	INVALID("\"a\x01b\""),
	INVALID("\"a\tb\""),
	INVALID("\"a\nb\""),
	INVALID("[\"a\rb\"]"),
	INVALID("\"a\0b\""),
	INVALID("\"\xc0\xaf\""),
	INVALID("\"\xc1\xbf\""),
	INVALID("\"\xe0\x80\xaf\""),
	INVALID("\"\xf0\x8f\xbf\xbf\""),
	INVALID("\"\xed\xa0\x80\""),
	INVALID("\"\xed\xbf\xbf\""),
	INVALID("\"\xf4\x90\x80\x80\""),
	INVALID("\"\xf5\x80\x80\x80\""),
	INVALID("\"\xe2\x82\""),
	INVALID("\"\xf0\x9f\x98\""),
	INVALID("\"\xc3\""),
	INVALID("\"\x80\""),
	INVALID("\"a\xbf\""),
	INVALID("\"\xe2\x28\xa1\""),
	INVALID("{\"\xc0\xaf\":1}"),
	INVALID("'a'"),
	INVALID("['a']"),

	/* Primitives. */
	INVALID("01"),
	INVALID("-01"),
	INVALID("-"),
	INVALID("[-]"),
	INVALID("1."),
	INVALID("[1.]"),
	INVALID("[1.e5]"),
	INVALID(".5"),
	INVALID("[.5]"),
	INVALID("+1"),
	INVALID("[+1]"),
	INVALID("[1e]"),
	INVALID("[1e+]"),
	INVALID("[1E-]"),
	INVALID("[0x10]"),
	INVALID("[1.5.2]"),
	INVALID("[--1]"),
	INVALID("NaN"),
	INVALID("[NaN]"),
	INVALID("Infinity"),
	INVALID("[-Infinity]"),
	INVALID("True"),
	INVALID("nul"),
	INVALID("[nulll]"),
	INVALID("[truefalse]"),
	INVALID("tru e"),
	INVALID("[undefined]"),
};

/* The input printed safely in a test name: non-printable bytes as \xNN, long ones cut. */
static const char *show(const char *s, size_t len)
{
	static char buf[96];
	size_t i, o = 0;

	for (i = 0; i < len && o + 8 < sizeof(buf); i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
	}
	if (i < len)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "...");
	buf[o] = '\0';
	return buf;
}

/*
 * Run one body through json_normalize with both buffers exactly sized on the heap; the
 * message, when there is one, is copied into *ret_msg (caller frees).
 */
static ssize_t run(struct json_validator *v, const char *in, size_t len, size_t outcap,
		   char **ret_msg)
{
	char *inb = malloc(len ? len : 1), *outb = malloc(outcap ? outcap : 1);
	ssize_t r;

	if (!inb || !outb) {
		free(inb);
		free(outb);
		return -ENOMEM;
	}
	memcpy(inb, in, len);
	r = json_normalize(v, inb, len, outb, outcap);
	if (r > 0 && ret_msg) {
		*ret_msg = malloc((size_t)r + 1);
		if (*ret_msg) {
			memcpy(*ret_msg, outb, (size_t)r);
			(*ret_msg)[r] = '\0';
		}
	}
	free(inb);
	free(outb);
	return r;
}

static void test_table(struct json_validator *v)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct json_case *c = &cases[i];
		char *msg = NULL;
		ssize_t r = run(v, c->in, c->len, c->len, &msg);

		if (c->want < 0) {
			is(r, c->want, "'%s' is refused with %zd", show(c->in, c->len), c->want);
		} else {
			const char *want = c->out ? c->out : c->in;
			size_t wlen = c->out ? strlen(c->out) : c->len;

			ok(r == (ssize_t)wlen && msg && memcmp(msg, want, wlen) == 0,
			   "'%s' is valid and comes out as '%s'", show(c->in, c->len),
			   c->out ? c->out : "(itself)");
			if (r != (ssize_t)wlen)
				diag("  got %zd, want %zu", r, wlen);
		}
		free(msg);
	}
}

static double cpu_seconds(void)
{
	return (double)clock() / CLOCKS_PER_SEC;
}

/* pre, then n copies of open, mid, n copies of close, post; caller frees. */
static char *build(const char *pre, const char *open, size_t n, const char *mid, const char *close,
		   const char *post, size_t *ret_len)
{
	size_t len =
		strlen(pre) + n * strlen(open) + strlen(mid) + n * strlen(close) + strlen(post);
	char *b = malloc(len + 1), *o;
	size_t i;

	if (!b)
		return NULL;
	/* each stpcpy() ends the string so far; the next one writes over its NUL */
	o = stpcpy(b, pre);
	for (i = 0; i < n; i++)
		o = stpcpy(o, open);
	o = stpcpy(o, mid);
	for (i = 0; i < n; i++)
		o = stpcpy(o, close);
	(void)stpcpy(o, post);
	*ret_len = len;
	return b;
}

/* Run a built body, checking the result and that it took linear time. */
static void check_built(struct json_validator *v, char *b, size_t len, ssize_t want,
			const char *name)
{
	char *msg = NULL;
	double t0 = cpu_seconds();
	ssize_t r;

	if (!b) {
		ok(0, "%s: out of memory building it", name);
		return;
	}
	r = run(v, b, len, len, &msg);
	if (want == 0) {
		ok(r == (ssize_t)len && msg && memcmp(msg, b, len) == 0,
		   "%s: valid, relayed byte for byte", name);
		if (r != (ssize_t)len)
			diag("  got %zd, want %zu", r, len);
	} else {
		is(r, want, "%s: refused with %zd", name, want);
	}
	ok(cpu_seconds() - t0 < SLOW_SECONDS, "%s: done in under %.0f s of CPU", name,
	   SLOW_SECONDS);
	free(msg);
	free(b);
}

static void test_depth(struct json_validator *v)
{
	size_t len = 0;
	char *b;

	b = build("", "[", JSON_MAX_DEPTH, "", "]", "", &len);
	check_built(v, b, len, 0, "arrays nested JSON_MAX_DEPTH deep");
	b = build("", "{\"a\":", JSON_MAX_DEPTH - 1, "{}", "}", "", &len);
	check_built(v, b, len, 0, "objects nested JSON_MAX_DEPTH deep");
	b = build("", "[", JSON_MAX_DEPTH + 1, "", "]", "", &len);
	check_built(v, b, len, -ELOOP, "arrays nested one deeper than JSON_MAX_DEPTH");
	b = build("", "[", DEEP, "", "]", "", &len);
	check_built(v, b, len, -ELOOP, "arrays nested 100,000 deep");
	b = build("", "{\"a\":", DEEP, "1", "}", "", &len);
	check_built(v, b, len, -ELOOP, "objects nested 100,000 deep");
	b = build("", "[", DEEP, "", "", "", &len);
	check_built(v, b, len, -ELOOP, "100,000 '[' never closed");
	b = build("", "", DEEP, "", "]", "", &len);
	check_built(v, b, len, -EINVAL, "100,000 ']' never opened");
	b = build("", "[", JSON_MAX_DEPTH, "", "]", "]", &len);
	check_built(v, b, len, -EINVAL, "JSON_MAX_DEPTH '[' and one ']' too many");
	/*
	 * jsmn runs the primitive t" on to the space, so it sees the brackets that follow, while a
	 * lexer taking the '"' for a string would not count them (the string ends at ,"] here).
	 */
	b = build("[t\" ,", "[", DEEP, "", "]", ",\"]", &len);
	check_built(v, b, len, -EINVAL, "'[t\" ,' then 100,000-deep arrays");
	b = build("[\"[[[[\",", "[", JSON_MAX_DEPTH - 1, "\"]]]]]\"", "]", "]", &len);
	check_built(v, b, len, 0, "brackets inside strings do not count as depth");
}

/* "[0,0,...,0]" with n zeros: n + 1 tokens. */
static char *zeros(size_t n, size_t *ret_len)
{
	size_t len = 2 * n + 1, i;
	char *b = malloc(len + 1);

	if (!b)
		return NULL;
	b[0] = '[';
	for (i = 0; i < n; i++) {
		b[1 + 2 * i] = '0';
		b[2 + 2 * i] = ',';
	}
	b[len - 1] = ']';
	b[len] = '\0';
	*ret_len = len;
	return b;
}

/*
 * Blocks of arrays nested JSON_MAX_DEPTH deep (with the outer one), up to the token limit:
 * jsmn's costliest shape.
 */
static char *worst_case(size_t *ret_len)
{
	size_t d = JSON_MAX_DEPTH - 1, blocks = (JSON_MAX_TOKENS - 1) / d;
	size_t len = 2 + blocks * (2 * d + 1) - 1, o = 0, i;
	char *b = malloc(len + 1);

	if (!b)
		return NULL;
	b[o++] = '[';
	for (i = 0; i < blocks; i++) {
		if (i)
			b[o++] = ',';
		memset(b + o, '[', d);
		o += d;
		memset(b + o, ']', d);
		o += d;
	}
	b[o++] = ']';
	b[o] = '\0';
	*ret_len = len;
	return b;
}

/* A 2 MiB body: an array of strings in several scripts, with escapes. */
static char *big_body(size_t *ret_len)
{
	static const char item[] = "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\n\\u00e9\"";
	size_t isz = sizeof(item) - 1, n = (2u << 20) / (isz + 1), len = n * (isz + 1) + 1, o = 0;
	size_t i;
	char *b = malloc(len + 1);

	if (!b)
		return NULL;
	b[o++] = '[';
	for (i = 0; i < n; i++) {
		if (i)
			b[o++] = ',';
		memcpy(b + o, item, isz);
		o += isz;
	}
	b[o++] = ']';
	b[o] = '\0';
	*ret_len = o;
	return b;
}

static void test_limits(struct json_validator *v)
{
	size_t len = 0;
	char *b;

	b = zeros(JSON_MAX_TOKENS - 1, &len);
	check_built(v, b, len, 0, "exactly JSON_MAX_TOKENS tokens");
	b = zeros((size_t)JSON_MAX_TOKENS, &len);
	check_built(v, b, len, -E2BIG, "JSON_MAX_TOKENS + 1 tokens");
	b = worst_case(&len);
	check_built(v, b, len, 0, "nested blocks up to both limits");
	b = big_body(&len);
	check_built(v, b, len, 0, "a 2 MiB body of UTF-8 strings");
}

static void test_outcap(struct json_validator *v)
{
	char *msg = NULL;
	ssize_t r;

	is(run(v, "[1]", 3, 2, NULL), -ENOBUFS, "outcap one short of len: -ENOBUFS");
	is(run(v, "  [1]  ", 7, 3, NULL), -ENOBUFS,
	   "outcap fits the message but not len: -ENOBUFS");
	is(run(v, "[1]", 3, 0, NULL), -ENOBUFS, "outcap 0: -ENOBUFS");
	r = run(v, "  [1]  ", 7, 7, &msg);
	ok(r == 3 && msg && strcmp(msg, "[1]") == 0, "outcap equal to len is enough");
	free(msg);
	is(run(v, "", 0, 0, NULL), -EINVAL, "empty body with outcap 0: -EINVAL");
}

static void test_reuse(struct json_validator *v)
{
	char *msg = NULL;
	ssize_t r;

	/* A refused body leaves stale tokens behind; the next call must not see them. */
	is(run(v, "[[[[1,2,3", 9, 9, NULL), -EINVAL, "an unterminated body is refused");
	r = run(v, "[7]", 3, 3, &msg);
	ok(r == 3 && msg && strcmp(msg, "[7]") == 0,
	   "the next body on the same validator is valid");
	free(msg);
}

struct utf8_case {
	const char *s;
	size_t len;
	int want;
	const char *name;
};

#define U8(s, want, name)                    \
	{                                    \
		s, sizeof(s) - 1, want, name \
	}

static const struct utf8_case utf8_cases[] = {
	U8("", 1, "empty"),
	U8("plain ASCII\x01\x7f", 1, "ASCII with control bytes"),
	U8("\xc2\x80", 1, "U+0080"),
	U8("\xdf\xbf", 1, "U+07FF"),
	U8("\xe0\xa0\x80", 1, "U+0800"),
	U8("\xed\x9f\xbf", 1, "U+D7FF"),
	U8("\xee\x80\x80", 1, "U+E000"),
	U8("\xef\xbf\xbf", 1, "U+FFFF"),
	U8("\xf0\x90\x80\x80", 1, "U+10000"),
	U8("\xf4\x8f\xbf\xbf", 1, "U+10FFFF"),
	U8("a\xc3\xa9z\xf0\x9f\x98\x80", 1, "mixed"),
	U8("\xc0\xaf", 0, "overlong C0 AF"),
	U8("\xc1\xbf", 0, "overlong C1 BF"),
	U8("\xe0\x80\xaf", 0, "overlong E0 80 AF"),
	U8("\xe0\x9f\xbf", 0, "overlong E0 9F BF"),
	U8("\xf0\x8f\xbf\xbf", 0, "overlong F0 8F BF BF"),
	U8("\xed\xa0\x80", 0, "surrogate ED A0 80"),
	U8("\xed\xbf\xbf", 0, "surrogate ED BF BF"),
	U8("\xf4\x90\x80\x80", 0, "U+110000"),
	U8("\xf5\x80\x80\x80", 0, "F5 lead"),
	U8("\xff", 0, "FF"),
	U8("\x80", 0, "lone continuation"),
	U8("a\xe2\x82", 0, "truncated at the end"),
	U8("\xe2\x82z", 0, "3-byte sequence cut by ASCII"),
	U8("\xf0\x9f\x98", 0, "truncated 4-byte"),
	U8("\xc3\xa9\xa9", 0, "extra continuation"),
};

static void test_utf8(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(utf8_cases); i++) {
		const struct utf8_case *c = &utf8_cases[i];
		unsigned char *b = malloc(c->len ? c->len : 1);

		if (!b) {
			ok(0, "utf8_valid: out of memory");
			continue;
		}
		memcpy(b, c->s, c->len);
		is(utf8_valid(b, c->len), c->want, "utf8_valid: %s", c->name);
		free(b);
	}
	is(utf8_valid((const unsigned char *)"\xc3\xa9", 1), 0,
	   "utf8_valid: stops at len, inside a sequence");
}

int main(void)
{
	struct json_validator *v = json_validator_new();

	if (!ok(v != NULL, "json_validator_new"))
		return done_testing();
	test_table(v);
	test_outcap(v);
	test_reuse(v);
	test_depth(v);
	test_limits(v);
	test_utf8();
	json_validator_free(v);
	json_validator_free(NULL);
	return done_testing();
}
