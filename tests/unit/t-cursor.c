/* SPDX-License-Identifier: MIT */
/*
 * Cursors and content negotiation for browsers (README 3.8-3.12): frontend/cursor.c and
 * frontend/sse.c. Inputs that a parser reads end at a PROT_NONE page, so reading one byte past
 * the end kills the test (as in t-http.c).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/macro.h"
#include "frontend/cursor.h"
#include "frontend/http.h"
#include "frontend/sse.h"
#include "tests/tap.h"

#define GUARD_AREA ((size_t)4096) /* every input below is far shorter */

static char *guard_base;
static size_t guard_size;

static int guard_setup(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *m;

	if (ps <= 0)
		return -EINVAL;
	guard_size = ALIGN_UP(GUARD_AREA, (size_t)ps);
	m = mmap(NULL, guard_size + (size_t)ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	if (mprotect((char *)m + guard_size, (size_t)ps, PROT_NONE) < 0)
		return -errno;
	guard_base = m;
	return 0;
}

/* A copy of s (without its NUL) ending right at the guard page. */
static const char *at_guard(const char *s)
{
	size_t n = strlen(s);
	char *dst = guard_base + guard_size - n;

	/* no NUL: the parsers get the length, and a read past it hits the guard */
	memcpy(dst, s, n); /* NOLINT(bugprone-not-null-terminated-result) */
	return dst;
}

static int parse(const char *s, struct cursor *ret)
{
	return cursor_parse(at_guard(s), strlen(s), ret);
}

static void test_format(void)
{
	char buf[CURSOR_MAX];
	struct cursor c;

	is(cursor_format(buf, sizeof(buf), UINT64_C(0x0005f1c2a3b4c5d6), 42), 19,
	   "format: the example's length");
	is_str(buf, "0005f1c2a3b4c5d6-42", "format: 16 lowercase hex digits, '-', decimal seq");
	is(cursor_format(buf, sizeof(buf), 0, 0), 18, "format: zero generation and seq");
	is_str(buf, "0000000000000000-0", "format: zeros are padded, seq 0 is '0'");
	is(cursor_format(buf, sizeof(buf), UINT64_MAX, UINT64_MAX), CURSOR_MAX - 1,
	   "format: the longest cursor fills CURSOR_MAX - 1 bytes");
	is_str(buf, "ffffffffffffffff-18446744073709551615", "format: the largest values");
	ok(parse(buf, &c) == 0 && c.gen == UINT64_MAX && c.seq == UINT64_MAX,
	   "format then parse: the largest values round-trip");
	is(cursor_format(buf, 8, 1, 1), 7, "format: a short buffer truncates, NUL-terminated");
	is_str(buf, "0000000", "format: the truncated text");
}

static void test_parse(void)
{
	static const char *const bad[][2] = {
		{ "", "empty" },
		{ "-", "no generation" },
		{ "0005f1c2a3b4c5d6", "no seq" },
		{ "0005f1c2a3b4c5d6-", "empty seq" },
		{ "0005F1C2A3B4C5D6-42", "upper case: not a cursor we gave out" },
		{ "005f1c2a3b4c5d6-42", "15 hex digits" },
		{ "00005f1c2a3b4c5d6-42", "17 hex digits" },
		{ "0005f1c2a3b4c5d6-042", "leading zero" },
		{ "0005f1c2a3b4c5d6-00", "two zeros" },
		{ "0005f1c2a3b4c5d6-+4", "sign" },
		{ "0005f1c2a3b4c5d6--4", "sign" },
		{ "0005f1c2a3b4c5d6-4 ", "trailing space" },
		{ " 0005f1c2a3b4c5d6-4", "leading space" },
		{ "0005f1c2a3b4c5d6-4a", "hex seq" },
		{ "0005f1c2a3b4c5d6_4", "wrong separator" },
		{ "0005f1c2a3b4c5g6-4", "not hex" },
		{ "0x05f1c2a3b4c5d6-4", "prefix" },
		{ "0005f1c2a3b4c5d6-18446744073709551616", "2^64" },
		{ "0005f1c2a3b4c5d6-99999999999999999999", "20 digits, overflows" },
		{ "0005f1c2a3b4c5d6-100000000000000000000", "21 digits" },
		{ "1795734746.123456", "an X-Fetch-Since value" },
	};
	struct cursor c = { 7, 7 };

	ok(parse("0005f1c2a3b4c5d6-42", &c) == 0 && c.gen == UINT64_C(0x0005f1c2a3b4c5d6) &&
		   c.seq == 42,
	   "parse: the example");
	ok(parse("0000000000000000-0", &c) == 0 && c.gen == 0 && c.seq == 0, "parse: zeros");
	ok(parse("abcdef0123456789-18446744073709551615", &c) == 0 && c.seq == UINT64_MAX &&
		   c.gen == UINT64_C(0xabcdef0123456789),
	   "parse: seq 2^64 - 1 fits");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		c.gen = 7;
		c.seq = 7;
		ok(parse(bad[i][0], &c) == -EINVAL && c.gen == 7 && c.seq == 7,
		   "parse: '%s' (%s) is -EINVAL and leaves *ret alone", bad[i][0], bad[i][1]);
	}
	{
		/* an embedded NUL: the length counts, not the terminator */
		static const char nul[] = "0005f1c2a3b4c5d6-4\0";
		ok(cursor_parse(nul, sizeof(nul) - 1, &c) == -EINVAL, "parse: a NUL inside");
	}
}

struct start_case {
	const char *name;
	struct cursor c;
	uint64_t gen, tail, head;
	bool gap;
	uint64_t next, missed;
};

static void test_start(void)
{
	static const struct start_case cases[] = {
		{ "the last message: live from head", { 5, 9 }, 5, 1, 10, false, 10, 0 },
		{ "seq 0, nothing evicted: everything", { 5, 0 }, 5, 1, 10, false, 1, 0 },
		{ "seq 0 on an empty new ring", { 5, 0 }, 5, 1, 1, false, 1, 0 },
		{ "a held message: right after it", { 5, 4 }, 5, 3, 10, false, 5, 0 },
		{ "the one before the tail: its successor is held",
		  { 5, 2 },
		  5,
		  3,
		  10,
		  false,
		  3,
		  0 },
		{ "successor evicted: gap, exact count", { 5, 1 }, 5, 3, 10, true, 3, 1 },
		{ "long evicted: gap, exact count", { 5, 2 }, 5, 100, 120, true, 100, 97 },
		{ "seq 0 after evictions: gap", { 5, 0 }, 5, 4, 10, true, 4, 3 },
		{ "seq == head (not yet published): gap, 0", { 5, 10 }, 5, 3, 10, true, 3, 0 },
		{ "seq far ahead: gap, 0", { 5, 1000 }, 5, 3, 10, true, 3, 0 },
		{ "seq 2^64 - 1: gap, 0, no overflow", { 5, UINT64_MAX }, 5, 3, 10, true, 3, 0 },
		{ "another generation: gap, 0", { 6, 4 }, 5, 3, 10, true, 3, 0 },
		{ "another generation, seq 0: gap, 0", { 6, 0 }, 5, 1, 10, true, 1, 0 },
		{ "another generation, empty ring: gap, 0", { 6, 4 }, 5, 7, 7, true, 7, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct start_case *t = &cases[i];
		uint64_t next = 77, missed = 77;
		bool gap = cursor_start(&t->c, t->gen, t->tail, t->head, &next, &missed);

		ok(gap == t->gap && next == t->next && missed == t->missed, "start: %s", t->name);
		if (gap != t->gap || next != t->next || missed != t->missed)
			diag("  got gap %d next %llu missed %llu", gap, (unsigned long long)next,
			     (unsigned long long)missed);
	}
}

static int query(const char *target, char *out, size_t cap, size_t *len)
{
	return cursor_query_value(at_guard(target), strlen(target), "lastEventId", out, cap, len);
}

static void test_query(void)
{
	char out[CURSOR_MAX + 1];
	size_t len = 0;

	is(query("/json", out, sizeof(out), &len), 0, "query: no query");
	is(query("/json?", out, sizeof(out), &len), 0, "query: empty query");
	is(query("/json?x=1&y=2", out, sizeof(out), &len), 0, "query: other parameters");
	is(query("/json?lastEventIdx=1", out, sizeof(out), &len), 0, "query: a longer name");
	is(query("/json?xlastEventId=1", out, sizeof(out), &len), 0, "query: a longer name");
	is(query("/json?lasteventid=1", out, sizeof(out), &len), 0, "query: names are exact");
	is(query("/json?lastEventId", out, sizeof(out), &len), 0, "query: a name without '='");
	is(query("/json?&&", out, sizeof(out), &len), 0, "query: empty parameters");
	is(query("/json?lastEventId=0005f1c2a3b4c5d6-42", out, sizeof(out), &len), 1,
	   "query: found");
	ok(len == 19 && strcmp(out, "0005f1c2a3b4c5d6-42") == 0, "query: the value");
	is(query("/json?a=b&lastEventId=1-2&lastEventId=3", out, sizeof(out), &len), 1,
	   "query: after another parameter");
	ok(len == 3 && strcmp(out, "1-2") == 0, "query: the first occurrence counts");
	is(query("/json?lastEventId=", out, sizeof(out), &len), 1, "query: an empty value");
	is(len, 0, "query: its length is 0");
	is(query("http://h:2069/json?lastEventId=%30%2d%4A&x", out, sizeof(out), &len), 1,
	   "query: absolute form, escapes");
	ok(len == 3 && strcmp(out, "0-J") == 0, "query: escapes are decoded, either case");
	is(query("/json?lastEventId=%3", out, sizeof(out), &len), -EINVAL,
	   "query: a cut escape is -EINVAL");
	is(query("/json?lastEventId=%3&x", out, sizeof(out), &len), -EINVAL,
	   "query: an escape cut by '&' is -EINVAL");
	is(query("/json?lastEventId=%zz", out, sizeof(out), &len), -EINVAL,
	   "query: a non-hex escape is -EINVAL");
	is(query("/json?lastEventId=0005f1c2a3b4c5d6-1844674407370955161500", out, sizeof(out),
		 &len),
	   -ENOBUFS, "query: a value longer than the buffer is -ENOBUFS");
	is(query("/json?lastEventId=0005f1c2a3b4c5d6-18446744073709551615", out, sizeof(out), &len),
	   1, "query: the longest cursor fits CURSOR_MAX + 1");
}

/* Negotiate over one Accept value (NULL: no Accept header at all). */
static enum sse_kind choose(const char *accept)
{
	struct http_request req;

	memset(&req, 0, sizeof(req));
	if (accept) {
		req.nheaders = 1;
		req.headers[0].name = "accept";
		req.headers[0].name_len = 6;
		req.headers[0].value = at_guard(accept);
		req.headers[0].value_len = strlen(accept);
	}
	return sse_negotiate(&req);
}

struct accept_case {
	const char *accept;
	enum sse_kind want;
	const char *why;
};

static void test_accept(void)
{
	static const struct accept_case cases[] = {
		{ NULL, SSE_KIND_STREAM, "no Accept: the stream" },
		{ "*/*", SSE_KIND_STREAM, "curl's */* is not html" },
		{ "text/*", SSE_KIND_STREAM, "text/* names neither" },
		{ "", SSE_KIND_STREAM, "empty" },
		{ "application/json", SSE_KIND_STREAM, "another type" },
		{ "text/event-stream", SSE_KIND_EVENTS, "EventSource" },
		{ "TEXT/Event-Stream", SSE_KIND_EVENTS, "types are case-insensitive" },
		{ "text/event-stream;q=0", SSE_KIND_STREAM, "q=0 means not acceptable" },
		{ "text/event-stream; q=0.001", SSE_KIND_EVENTS, "any q > 0" },
		{ "text/html", SSE_KIND_PAGE, "html" },
		{ "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
		  "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
		  SSE_KIND_PAGE, "Chromium's navigation" },
		{ "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", SSE_KIND_PAGE,
		  "Firefox's navigation" },
		{ "text/html;q=0", SSE_KIND_STREAM, "html with q=0" },
		{ "text/html, text/event-stream", SSE_KIND_EVENTS, "equal weights: events win" },
		{ "text/event-stream;q=0.5, text/html;q=0.5", SSE_KIND_EVENTS,
		  "equal weights, html last: events win" },
		{ "text/html;q=0.9, text/event-stream;q=0.5", SSE_KIND_PAGE, "html preferred" },
		{ "text/html;q=0.4, text/event-stream;q=0.5", SSE_KIND_EVENTS, "events preferred" },
		{ "text/html, text/event-stream;q=0", SSE_KIND_PAGE, "events refused" },
		{ "text/html;level=1;q=1.000", SSE_KIND_PAGE, "other parameters, q=1.000" },
		{ "text/html ; Q=0.7 ", SSE_KIND_PAGE, "spaces, Q upper case" },
		{ "text/html;q=1.5", SSE_KIND_STREAM, "q above 1: the entry is ignored" },
		{ "text/html;q=0.1234", SSE_KIND_STREAM, "four decimals: ignored" },
		{ "text/html;q=x", SSE_KIND_STREAM, "malformed q: ignored" },
		{ "text/html;q=", SSE_KIND_STREAM, "empty q: ignored" },
		{ "text/html;q=1.", SSE_KIND_PAGE, "q=1. is 1" },
		{ "text/html;q=0, text/html;q=0.3", SSE_KIND_PAGE, "the highest weight counts" },
		{ "text/htmlx, xtext/html", SSE_KIND_STREAM, "near misses" },
		{ ",,text/event-stream,,", SSE_KIND_EVENTS, "empty entries" },
		{ "text/html;", SSE_KIND_PAGE, "an empty parameter list" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		is(choose(cases[i].accept), cases[i].want, "accept: %s ('%s')", cases[i].why,
		   cases[i].accept ? cases[i].accept : "(none)");

	{
		/* several Accept headers are one list (RFC 9110 5.3) */
		struct http_request req;

		memset(&req, 0, sizeof(req));
		req.nheaders = 3;
		req.headers[0] = (struct http_header){ "Accept", 6, "text/html;q=0.5", 15 };
		req.headers[1] = (struct http_header){ "Host", 4, "text/event-stream", 17 };
		req.headers[2] = (struct http_header){ "ACCEPT", 6, "text/event-stream;q=0.6", 23 };
		is(sse_negotiate(&req), SSE_KIND_EVENTS, "accept: weights add up across headers");
		req.headers[2].value_len = 15; /* "text/event-stre": no type */
		is(sse_negotiate(&req), SSE_KIND_PAGE, "accept: other header names are ignored");
	}
}

int main(void)
{
	if (guard_setup() < 0) {
		printf("Bail out! no guard page\n");
		return 1;
	}
	test_format();
	test_parse();
	test_start();
	test_query();
	test_accept();
	return done_testing();
}
