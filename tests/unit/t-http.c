/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "frontend/http.h"
#include "tests/tap.h"

/*
 * Every parse and decode in this file runs on input that ends exactly where a PROT_NONE page
 * begins, so reading one byte past the end kills the test (picohttpparser's test.c does the
 * same). The area in front of the guard holds the largest input below (a 16 KiB header block).
 */
#define GUARD_AREA ((size_t)64 * 1024)

/* A string literal and its length, NULs included. */
#define S(x) x, sizeof(x) - 1

static uint8_t *guard_base;
static size_t guard_size; /* usable bytes in front of the guard page */
static size_t guard_page;

static const struct http_limits lim_default = { 8192, 16384, 100 };
static const struct http_limits lim_small = { 16, 64, 3 };

static int guard_setup(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	void *m;

	if (ps <= 0)
		return -EINVAL;
	guard_page = (size_t)ps;
	guard_size = ALIGN_UP((size_t)GUARD_AREA, guard_page);
	m = mmap(NULL, guard_size + guard_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	if (m == MAP_FAILED)
		return -errno;
	if (mprotect((uint8_t *)m + guard_size, guard_page, PROT_NONE) < 0)
		return -errno;
	guard_base = m;
	return 0;
}

/* Copy s[0..n) so that it ends right at the guard page; the copy's address. */
static char *at_guard(const void *s, size_t n)
{
	char *dst;

	if (n > guard_size) {
		diag("input of %zu bytes does not fit the guard area", n);
		abort();
	}
	dst = (char *)guard_base + guard_size - n;
	if (n)
		memcpy(dst, s, n);
	return dst;
}

static int parse(const char *s, size_t n, const struct http_limits *lim, struct http_request *req,
		 struct http_error *err)
{
	return http_parse_request(at_guard(s, n), n, lim, req, err);
}

/* The guard must really be there, or every test below proves nothing about over-reads. */
static void test_guard_works(void)
{
	pid_t pid = fork();
	int status = 0;

	if (pid == 0) {
		/* The default action, not a sanitizer's report, so the parent sees the signal. */
		(void)signal(SIGSEGV, SIG_DFL);
		volatile const char *p = (const char *)guard_base + guard_size;

		(void)*p;
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status) &&
		   WTERMSIG(status) == SIGSEGV,
	   "reading the guard page kills the reader");
}

static bool span_is(const char *p, size_t n, const char *want)
{
	return p && n == strlen(want) && memcmp(p, want, n) == 0;
}

/* Every proper prefix is -2 and the whole input returns want; name the first prefix that is not. */
static void check_prefixes(const char *name, const char *s, size_t n, const struct http_limits *lim,
			   int want)
{
	struct http_request req;
	struct http_error err;
	size_t bad = SIZE_MAX;
	int r = 0;

	for (size_t k = 0; k < n && bad == SIZE_MAX; k++) {
		r = parse(s, k, lim, &req, &err);
		if (r != -2)
			bad = k;
	}
	if (bad != SIZE_MAX) {
		ok(0, "%s: every prefix is incomplete", name);
		diag("  prefix of %zu bytes returned %d", bad, r);
		return;
	}
	r = parse(s, n, lim, &req, &err);
	if (!ok(r == want, "%s: every prefix is incomplete, the whole returns %d", name, want))
		diag("  got %d", r);
}

/* --- request heads that parse ------------------------------------------------------------ */

static void test_simple_request(void)
{
	static const char in[] = "GET /json HTTP/1.1\r\nHost: example.org\r\nAccept: */*\r\n\r\n";
	struct http_request req;
	struct http_error err;
	int r = parse(S(in), &lim_default, &req, &err);

	is(r, sizeof(in) - 1, "simple GET: head length");
	ok(span_is(req.method, req.method_len, "GET"), "simple GET: method");
	ok(span_is(req.target, req.target_len, "/json"), "simple GET: target");
	is(req.minor_version, 1, "simple GET: HTTP/1.1");
	is(req.nheaders, 2, "simple GET: two headers");
	ok(span_is(req.headers[0].name, req.headers[0].name_len, "Host") &&
		   span_is(req.headers[0].value, req.headers[0].value_len, "example.org"),
	   "simple GET: first header");
	ok(span_is(req.headers[1].name, req.headers[1].name_len, "Accept") &&
		   span_is(req.headers[1].value, req.headers[1].value_len, "*/*"),
	   "simple GET: second header");
	check_prefixes("simple GET", S(in), &lim_default, (int)sizeof(in) - 1);
}

static void test_http10_bare_lf_leading_empty(void)
{
	static const char in[] = "\r\n\nPOST /a/b HTTP/1.0\nContent-Length: 5\r\nX:y\n\nhello";
	const size_t head = sizeof(in) - 1 - 5;
	struct http_request req;
	struct http_error err;
	int r = parse(S(in), &lim_default, &req, &err);

	is(r, head, "HTTP/1.0, bare LF, leading empty lines: head length stops before the body");
	is(req.minor_version, 0, "HTTP/1.0: minor version 0");
	ok(span_is(req.method, req.method_len, "POST"), "leading empty lines skipped");
	is(req.nheaders, 2, "mixed line ends: two headers");
	ok(span_is(req.headers[1].name, req.headers[1].name_len, "X") &&
		   span_is(req.headers[1].value, req.headers[1].value_len, "y"),
	   "header without space after the colon");
	check_prefixes("HTTP/1.0 with bare LF", in, head, &lim_default, (int)head);
}

static void test_values(void)
{
	static const char in[] = "PUT / HTTP/1.1\r\n"
				 "A: \t b c \t \r\n"
				 "Empty:\r\n"
				 "Blank: \t \r\n"
				 "Colons: x:y: z\r\n"
				 "Utf8: caf\xc3\xa9\tok\r\n"
				 "\r\n";
	struct http_request req;
	struct http_error err;
	int r = parse(S(in), &lim_default, &req, &err);

	is(r, sizeof(in) - 1, "values: head length");
	is(req.nheaders, 5, "values: five headers");
	ok(span_is(req.headers[0].value, req.headers[0].value_len, "b c"),
	   "OWS trimmed on both sides, inner whitespace kept");
	ok(req.headers[1].value_len == 0 && req.headers[1].value != NULL, "empty value");
	ok(req.headers[2].value_len == 0, "value of only whitespace is empty");
	ok(span_is(req.headers[3].value, req.headers[3].value_len, "x:y: z"),
	   "colons inside a value");
	ok(span_is(req.headers[4].value, req.headers[4].value_len, "caf\xc3\xa9\tok"),
	   "obs-text and HT inside a value");
}

struct good_case {
	const char *name;
	const char *in;
	size_t len;
	const struct http_limits *lim;
	const char *method;
	const char *target;
	int minor;
	size_t nheaders;
};

static const struct good_case good_cases[] = {
	{ "no headers", S("GET / HTTP/1.1\r\n\r\n"), &lim_default, "GET", "/", 1, 0 },
	{ "origin form with query", S("GET /json?x=1 HTTP/1.1\r\n\r\n"), &lim_default, "GET",
	  "/json?x=1", 1, 0 },
	{ "absolute form http", S("GET http://host:2069/json HTTP/1.1\r\n\r\n"), &lim_default,
	  "GET", "http://host:2069/json", 1, 0 },
	{ "absolute form HTTPS, any case", S("GET HTTPS://h/ HTTP/1.1\r\n\r\n"), &lim_default,
	  "GET", "HTTPS://h/", 1, 0 },
	{ "asterisk form", S("OPTIONS * HTTP/1.1\r\n\r\n"), &lim_default, "OPTIONS", "*", 1, 0 },
	{ "lower-case method is a token", S("get / HTTP/1.0\n\n"), &lim_default, "get", "/", 0, 0 },
	{ "every tchar in a method", S("M!#$%&'*+-.^_`|~9z / HTTP/1.1\r\n\r\n"), &lim_default,
	  "M!#$%&'*+-.^_`|~9z", "/", 1, 0 },
	{ "obs-text in the target", S("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n"), &lim_default, "GET",
	  "/caf\xc3\xa9", 1, 0 },
	{ "target of exactly max_target", S("GET /234567890123456 HTTP/1.1\r\n\r\n"), &lim_small,
	  "GET", "/234567890123456", 1, 0 },
	{ "exactly max_header_lines headers", S("GET / HTTP/1.1\r\nA:1\r\nB:2\r\nC:3\r\n\r\n"),
	  &lim_small, "GET", "/", 1, 3 },
	{ "empty lines and headers together at max_header_lines",
	  S("\r\n\nGET / HTTP/1.1\r\nA:1\r\n\r\n"), &lim_small, "GET", "/", 1, 1 },
	{ "header section of exactly max_header bytes",
	  S("GET / HTTP/1.1\r\nA: 34567890123456789012345678901234567890123456789012345678901\r\n"
	    "\r\n"),
	  &lim_small, "GET", "/", 1, 1 },
	{ "eight leading empty lines", S("\r\n\r\n\r\n\r\n\n\n\n\nHEAD / HTTP/1.1\r\n\r\n"),
	  &lim_default, "HEAD", "/", 1, 0 },
	{ "HTTP/2 preface's method parsed as a token", S("PRI / HTTP/1.1\r\n\r\n"), &lim_default,
	  "PRI", "/", 1, 0 },
	{ "method of 32 bytes", S("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 / HTTP/1.1\r\n\r\n"),
	  &lim_default, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345", "/", 1, 0 },
};

static void test_good_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(good_cases); i++) {
		const struct good_case *t = &good_cases[i];
		struct http_request req;
		struct http_error err;
		int r = parse(t->in, t->len, t->lim, &req, &err);

		if (!ok(r == (int)t->len && span_is(req.method, req.method_len, t->method) &&
				span_is(req.target, req.target_len, t->target) &&
				req.minor_version == t->minor && req.nheaders == t->nheaders,
			"parses: %s", t->name))
			diag("  returned %d (status %d: %s)", r, r == -1 ? err.status : 0,
			     r == -1 ? err.reason : "");
		check_prefixes(t->name, t->in, t->len, t->lim, (int)t->len);
	}
}

/* --- malformed heads and crossed limits -------------------------------------------------- */

/*
 * Each input ends at the byte that shows the error, so every shorter prefix must still be
 * incomplete (-2) and the whole input must fail: errors are reported exactly as early as the
 * bytes allow. tail, if any, is more input after that byte, which must not change the verdict.
 */
struct bad_case {
	const char *name;
	const char *in;
	size_t len;
	int status;
	const struct http_limits *lim;
	const char *tail;
	const char *why; /* if set, a word the reason must contain */
};

#define RL "GET / HTTP/1.1\r\n"

static const struct bad_case bad_cases[] = {
	/* bytes that cannot start a request */
	{ "TLS ClientHello, first byte", S("\x16"), 400, &lim_default, NULL, "method" },
	{ "TLS ClientHello, more bytes", S("\x16"), 400, &lim_default, "\x03\x01\x02\x7f", NULL },
	{ "leading space", S(" "), 400, &lim_default, "GET / HTTP/1.1\r\n\r\n", NULL },
	{ "leading '@'", S("@"), 400, &lim_default, NULL, NULL },
	{ "leading NUL", S("\0"), 400, &lim_default, NULL, NULL },
	{ "bare CR before the request line", S("\rG"), 400, &lim_default, NULL, "bare CR" },
	{ "nine leading empty lines", S("\n\n\n\n\n\n\n\n\n"), 400, &lim_default, NULL,
	  "empty lines" },
	/* method */
	{ "non-token byte in the method", S("GE("), 400, &lim_default, NULL, NULL },
	{ "high byte in the method", S("G\xc3"), 400, &lim_default, NULL, NULL },
	{ "method then CR", S("GET\r"), 400, &lim_default, "\n\r\n", NULL },
	{ "method then LF", S("GET\n"), 400, &lim_default, NULL, NULL },
	{ "method then HT", S("GET\t"), 400, &lim_default, "/ HTTP/1.1\r\n\r\n", NULL },
	{ "method of 33 bytes", S("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"), 400, &lim_default, NULL,
	  "too long" },
	/* target */
	{ "two spaces after the method", S("GET  "), 400, &lim_default, "/ HTTP/1.1\r\n\r\n",
	  "more than one space" },
	{ "HTTP/0.9 two-part line, CRLF", S("GET /x\r"), 400, &lim_default, "\n\r\n",
	  "no HTTP version" },
	{ "HTTP/0.9 two-part line, LF", S("GET /x\n"), 400, &lim_default, NULL, NULL },
	{ "control byte in the target", S("GET /a\x01"), 400, &lim_default, NULL, NULL },
	{ "DEL in the target", S("GET /a\x7f"), 400, &lim_default, NULL, NULL },
	{ "NUL in the target", S("GET /a\0"), 400, &lim_default, NULL, NULL },
	{ "HT in the target", S("GET /a\t"), 400, &lim_default, "b HTTP/1.1\r\n\r\n", NULL },
	{ "ESC in the target", S("GET /\x1b"), 400, &lim_default, NULL, NULL },
	{ "target not starting with '/'", S("GET x"), 400, &lim_default, "/ HTTP/1.1\r\n\r\n",
	  NULL },
	{ "relative target, long", S("GET a"), 400, &lim_small,
	  "bcdefghijklmnopqrstuvwxyz HTTP/1.1\r\n", NULL },
	{ "ftp URL", S("GET f"), 400, &lim_default, "tp://h/ HTTP/1.1\r\n\r\n", NULL },
	{ "scheme httpx", S("GET httpx"), 400, &lim_default, NULL, NULL },
	{ "scheme http:/ without the second slash", S("GET http:/x"), 400, &lim_default, NULL,
	  NULL },
	{ "scheme https:x", S("GET https:x"), 400, &lim_default, NULL, NULL },
	{ "scheme cut short by SP", S("GET http: "), 400, &lim_default, "HTTP/1.1\r\n\r\n", NULL },
	{ "'*' followed by more", S("GET *x"), 400, &lim_default, NULL, "path" },
	{ "'**'", S("GET **"), 400, &lim_default, " HTTP/1.1\r\n\r\n", NULL },
	/* version */
	{ "two spaces after the target", S("GET /  "), 400, &lim_default, "HTTP/1.1\r\n\r\n",
	  "more than one space" },
	{ "lower-case http", S("GET / h"), 400, &lim_default, "ttp/1.1\r\n\r\n", NULL },
	{ "HTTX", S("GET / HTTX"), 400, &lim_default, NULL, NULL },
	{ "HTTP/1.2", S("GET / HTTP/1.2"), 400, &lim_default, "\r\n\r\n", NULL },
	{ "HTTP/0.9", S("GET / HTTP/0"), 400, &lim_default, ".9\r\n\r\n", NULL },
	{ "HTTP/1 without minor", S("GET / HTTP/1\r"), 400, &lim_default, "\n\r\n", NULL },
	{ "HTTP/10.0", S("GET / HTTP/10"), 400, &lim_default, ".0\r\n\r\n", NULL },
	{ "HTTP/1.1x", S("GET / HTTP/1.1x"), 400, &lim_default, NULL, NULL },
	{ "SP after the version", S("GET / HTTP/1.1 "), 400, &lim_default, "\r\n\r\n", NULL },
	{ "missing version, CR", S("GET / \r"), 400, &lim_default, "\n\r\n", NULL },
	{ "missing version, LF", S("GET / \n"), 400, &lim_default, NULL, NULL },
	{ "bare CR after the version", S("GET / HTTP/1.1\rX"), 400, &lim_default, NULL, "bare CR" },
	{ "HTTP/2", S("GET / HTTP/2"), 505, &lim_default, "\r\n\r\n", "not supported" },
	{ "HTTP/2 preface", S("PRI * HTTP/2"), 505, &lim_default, ".0\r\n\r\nSM\r\n\r\n", NULL },
	{ "HTTP/3", S("GET / HTTP/3"), 505, &lim_default, "\r\n\r\n", NULL },
	{ "HTTP/9.9", S("GET / HTTP/9"), 505, &lim_default, ".9\r\n\r\n", NULL },
	/* header lines */
	{ "obs-fold with SP", S(RL "A: b\r\n "), 400, &lim_default, "c\r\n\r\n", "folding" },
	{ "obs-fold with HT", S(RL "A: b\n\t"), 400, &lim_default, "c\r\n\r\n", "folding" },
	{ "whitespace before the first header", S(RL " "), 400, &lim_default, "A: b\r\n\r\n",
	  "folding" },
	{ "space before the colon", S(RL "Host "), 400, &lim_default, ": x\r\n\r\n",
	  "before the colon" },
	{ "HT before the colon", S(RL "Host\t"), 400, &lim_default, ": x\r\n\r\n",
	  "before the colon" },
	{ "header line without a colon, CRLF", S(RL "Host\r"), 400, &lim_default, "\n\r\n", NULL },
	{ "header line without a colon, LF", S(RL "Host\n"), 400, &lim_default, "\n",
	  "without a colon" },
	{ "empty header name", S(RL ":"), 400, &lim_default, " x\r\n\r\n", "empty header name" },
	{ "non-token byte in a header name", S(RL "Ho("), 400, &lim_default, "st): x\r\n\r\n",
	  NULL },
	{ "high byte in a header name", S(RL "H\x80"), 400, &lim_default, NULL, NULL },
	{ "NUL in a header value", S(RL "A: b\0"), 400, &lim_default, "\r\n\r\n", "control byte" },
	{ "SOH in a header value", S(RL "A: \x01"), 400, &lim_default, NULL, NULL },
	{ "ESC in a header value", S(RL "A: b\x1b"), 400, &lim_default, NULL, NULL },
	{ "DEL in a header value", S(RL "A: b\x7f"), 400, &lim_default, NULL, NULL },
	{ "bare CR in a header value", S(RL "A: b\rc"), 400, &lim_default, "\r\n\r\n", "bare CR" },
	{ "bare CR ending a header line", S(RL "A: b\r\r"), 400, &lim_default, NULL, NULL },
	{ "bare CR in the blank line", S(RL "A: b\r\n\rX"), 400, &lim_default, NULL, NULL },
	{ "bare CR as the blank line, right after the request line", S(RL "\r\r"), 400,
	  &lim_default, NULL, NULL },
	/* limits */
	{ "target over max_target", S("GET /2345678901234567"), 414, &lim_small,
	  " HTTP/1.1\r\n\r\n", "too long" },
	{ "absolute target over max_target", S("GET http://h/89012345"), 414, &lim_small,
	  " HTTP/1.1\r\n\r\n", NULL },
	{ "target over max_target 0", S("GET /"), 414, &(const struct http_limits){ 0, 64, 3 },
	  NULL, NULL },
	{ "more than max_header_lines headers", S(RL "A:1\r\nB:2\r\nC:3\r\nD"), 431, &lim_small,
	  ":4\r\n\r\n", "too many header lines" },
	{ "empty lines count as header lines", S("\n\nGET / HTTP/1.1\nA:1\nB"), 431, &lim_small,
	  ":2\n\n", NULL },
	{ "too many empty lines for max_header_lines", S("\r\n\r\n\r\n\r\n"), 431, &lim_small, NULL,
	  NULL },
	{ "header line crossing max_header",
	  S(RL "A: 34567890123456789012345678901234567890123456789012345678901234"), 431,
	  &lim_small, "\r\n\r\n", "too large" },
	{ "new header line once max_header is used up",
	  S(RL "A: 34567890123456789012345678901234567890123456789012345678901\r\nB"), 431,
	  &lim_small, ": x\r\n\r\n", NULL },
	{ "max_header 0", S(RL "A"), 431, &(const struct http_limits){ 16, 0, 3 }, ": b\r\n\r\n",
	  NULL },
	{ "empty lines count toward max_header", S("\r\n\r\n\r\n"), 431,
	  &(const struct http_limits){ 16, 4, 100 }, "GET / HTTP/1.1\r\n\r\n", NULL },
	{ "empty lines and headers toward max_header", S("\r\n" RL "A: 3456789012345678"), 431,
	  &(const struct http_limits){ 16, 20, 100 }, "\r\n\r\n", NULL },
};

static void test_bad_cases(void)
{
	char whole[256];

	diag("%zu malformed or oversized heads", ARRAY_SIZE(bad_cases));
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *t = &bad_cases[i];
		size_t tail_len = t->tail ? strlen(t->tail) : 0;
		struct http_request req;
		struct http_error err = { 0, NULL };
		size_t bad = SIZE_MAX;
		int r = 0;

		for (size_t k = 0; k < t->len && bad == SIZE_MAX; k++) {
			r = parse(t->in, k, t->lim, &req, &err);
			if (r != -2)
				bad = k;
		}
		if (!ok(bad == SIZE_MAX, "%s: incomplete until its last byte", t->name))
			diag("  prefix of %zu bytes returned %d (status %d)", bad, r, err.status);

		err.status = 0;
		err.reason = NULL;
		r = parse(t->in, t->len, t->lim, &req, &err);
		if (!ok(r == -1 && err.status == t->status && err.reason && err.reason[0] &&
				!strchr(err.reason, '\n') &&
				(!t->why || strstr(err.reason, t->why)),
			"%s: %d at its last byte", t->name, t->status))
			diag("  returned %d, status %d, reason '%s'", r, err.status,
			     err.reason ? err.reason : "(null)");

		/* The verdict holds whatever follows, up to the whole tail. */
		if (t->len + tail_len > sizeof(whole))
			abort();
		memcpy(whole, t->in, t->len);
		if (tail_len)
			memcpy(whole + t->len, t->tail, tail_len);
		bad = SIZE_MAX;
		for (size_t k = t->len; k <= t->len + tail_len && bad == SIZE_MAX; k++) {
			err.status = 0;
			r = parse(whole, k, t->lim, &req, &err);
			if (r != -1 || err.status != t->status)
				bad = k;
		}
		if (!ok(bad == SIZE_MAX, "%s: still %d with more bytes", t->name, t->status))
			diag("  %zu bytes returned %d, status %d", bad, r, err.status);
	}
}

/* --- the default limits, at and one past their values ------------------------------------ */

static void test_default_limits(void)
{
	static char in[40 * 1024];
	struct http_request req;
	struct http_error err;
	size_t n;
	int r;

	/* A target of exactly 8 KiB is served; one byte more is 414 before the SP arrives. */
	n = (size_t)sprintf(in, "GET /");
	memset(in + n, 'a', 8191);
	n += 8191;
	n += (size_t)sprintf(in + n, " HTTP/1.1\r\n\r\n");
	r = parse(in, n, &lim_default, &req, &err);
	ok(r == (int)n && req.target_len == 8192, "target of 8192 bytes is accepted");
	in[5 + 8191] = 'a';
	r = parse(in, 5 + 8192, &lim_default, &req, &err);
	ok(r == -1 && err.status == 414, "target of 8193 bytes, no SP yet: 414");
	r = parse(in, 5 + 8191, &lim_default, &req, &err);
	is(r, -2, "target of 8192 bytes, no SP yet: incomplete");

	/* A header section of exactly 16 KiB: 64 lines of 256 bytes; then one byte more. */
	n = (size_t)sprintf(in, RL);
	for (int i = 0; i < 64; i++) {
		const size_t line = 256;

		n += (size_t)sprintf(in + n, "X%03d: ", i);
		memset(in + n, 'v', line - 8);
		n += line - 8;
		n += (size_t)sprintf(in + n, "\r\n");
	}
	memcpy(in + n, "\r\n", STRLEN("\r\n"));
	r = parse(in, n + 2, &lim_default, &req, &err);
	ok(r == (int)n + 2 && req.nheaders == 64, "header section of 16384 bytes is accepted");
	memcpy(in + n - 2, "v\r\n\r\n", STRLEN("v\r\n\r\n"));
	r = parse(in, n, &lim_default, &req, &err);
	is(r, -2, "16385 header bytes whose last is the LF: incomplete until it arrives");
	r = parse(in, n + 1, &lim_default, &req, &err);
	ok(r == -1 && err.status == 431, "header section of 16385 bytes: 431");
}

static void test_header_count_limits(void)
{
	static char in[8192];
	struct http_request req;
	struct http_error err;
	size_t n = (size_t)sprintf(in, RL), head;
	int r;

	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(in + n, "H%d: %d\r\n", i, i);
	head = n;
	n += (size_t)sprintf(in + n, "\r\n");
	r = parse(in, n, &lim_default, &req, &err);
	ok(r == (int)n && req.nheaders == 100, "100 headers are accepted");
	ok(span_is(req.headers[99].name, req.headers[99].name_len, "H99") &&
		   span_is(req.headers[99].value, req.headers[99].value_len, "99"),
	   "the 100th header is stored");

	n = head + (size_t)sprintf(in + head, "H");
	r = parse(in, n, &lim_default, &req, &err);
	ok(r == -1 && err.status == 431, "the 101st header line is 431 at its first byte");

	/* max_header_lines past the array is clamped to HTTP_MAX_HEADERS, not overflowed. */
	r = parse(in, n, &(const struct http_limits){ 8192, 1 << 20, 1000 }, &req, &err);
	ok(r == -1 && err.status == 431, "max_header_lines above HTTP_MAX_HEADERS is clamped");
}

static void test_header_bytes_limit(void)
{
	static char in[20 * 1024];
	struct http_request req;
	struct http_error err;
	size_t n = (size_t)sprintf(in, RL "Big: "), start = strlen(RL);
	int r;

	memset(in + n, 'b', sizeof(in) - n);
	/* The line's bytes up to 16384 are within the limit; byte 16385 crosses it. */
	r = parse(in, start + 16384, &lim_default, &req, &err);
	is(r, -2, "16384 header bytes without a line end: incomplete");
	r = parse(in, start + 16385, &lim_default, &req, &err);
	ok(r == -1 && err.status == 431, "16385 header bytes: 431 before the line ends");
}

/* --- helpers ----------------------------------------------------------------------------- */

static void test_find_header(void)
{
	static const char in[] =
		RL "Host: a\r\nX-Fetch-Since: 1\r\nhost: b\r\nConnection: close\r\n\r\n";
	struct http_request req;
	struct http_error err;
	const struct http_header *h;
	int r = parse(S(in), &lim_default, &req, &err);

	is(r, sizeof(in) - 1, "find_header: request parses");
	h = http_find_header(&req, "HOST");
	ok(h && span_is(h->value, h->value_len, "a"), "find_header: case-insensitive, first match");
	h = http_find_header(&req, "x-fetch-since");
	ok(h && span_is(h->value, h->value_len, "1"), "find_header: lower-case name");
	ok(http_find_header(&req, "Hos") == NULL, "find_header: a prefix is not a match");
	ok(http_find_header(&req, "Hostx") == NULL, "find_header: a longer name is not a match");
	ok(http_find_header(&req, "Content-Length") == NULL, "find_header: absent header is NULL");
	ok(http_find_header(&req, "") == NULL, "find_header: empty name is NULL");
}

struct token_case {
	const char *value;
	size_t len;
	const char *token;
	bool want;
};

static const struct token_case token_cases[] = {
	{ S("close"), "close", true },
	{ S("keep-alive, Close"), "close", true },
	{ S("keep-alive, Close"), "KEEP-ALIVE", true },
	{ S(" \tclose \t"), "close", true },
	{ S(",,close,,"), "close", true },
	{ S("a,b , c"), "b", true },
	{ S("a,b , c"), "c", true },
	{ S("closed"), "close", false },
	{ S("xclose"), "close", false },
	{ S("clo se"), "close", false },
	{ S("close;q=1"), "close", false },
	{ S(""), "close", false },
	{ S(" , "), "close", false },
	{ "close", 3, "close", false },
	{ "close", 3, "clo", true },
	{ S("close"), "", false },
	{ S("upgrade, keep-alive"), "close", false },
};

static void test_value_has_token(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(token_cases); i++) {
		const struct token_case *t = &token_cases[i];
		const char *v = at_guard(t->value, t->len);

		is(http_value_has_token(v, t->len, t->token), t->want,
		   "value_has_token('%.*s', '%s') is %s", (int)t->len, t->value, t->token,
		   t->want ? "true" : "false");
	}
}

struct cl_case {
	const char *value;
	size_t len;
	int ret;
	uint64_t want;
};

static const struct cl_case cl_cases[] = {
	{ S("0"), 0, 0 },
	{ S("5"), 0, 5 },
	{ S("007"), 0, 7 },
	{ S("2097152"), 0, 2097152 },
	{ S("18446744073709551615"), 0, UINT64_MAX },
	{ "123", 2, 0, 12 },
	{ S("18446744073709551616"), -EINVAL, 0 },
	{ S("99999999999999999999"), -EINVAL, 0 },
	{ S("+5"), -EINVAL, 0 },
	{ S("-1"), -EINVAL, 0 },
	{ S("5 "), -EINVAL, 0 },
	{ S(" 5"), -EINVAL, 0 },
	{ S(""), -EINVAL, 0 },
	{ S("0x10"), -EINVAL, 0 },
	{ S("1.0"), -EINVAL, 0 },
	{ S("1e3"), -EINVAL, 0 },
	{ S("5,5"), -EINVAL, 0 },
	{ S("5\0"), -EINVAL, 0 },
};

static void test_content_length(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(cl_cases); i++) {
		const struct cl_case *t = &cl_cases[i];
		const char *v = at_guard(t->value, t->len);
		uint64_t got = 424242;
		int r = http_parse_content_length(v, t->len, &got);

		if (t->ret == 0)
			ok(r == 0 && got == t->want, "content_length('%.*s') = %" PRIu64,
			   (int)t->len, t->value, t->want);
		else
			ok(r == t->ret && got == 424242,
			   "content_length('%.*s') is -EINVAL, result untouched", (int)t->len,
			   t->value);
	}
}

/* --- chunked decoding -------------------------------------------------------------------- */

#define DEC_MAX ((size_t)40 * 1024)

struct dec_result {
	ssize_t r;	 /* the last call's return */
	size_t body_len; /* decoded data, all calls */
	size_t rest_len; /* bytes after the body: left over by the last call, then not fed */
	uint64_t total;	 /* c.total at the end */
	bool overflowed; /* a call returned more data than its input */
	char body[DEC_MAX];
	char rest[DEC_MAX];
};

/*
 * Feed in[0..n) in pieces as a socket would deliver them (step 0: all at once; otherwise the
 * piece sizes come from steps[], cycled), each piece at the guard so any over-read crashes.
 * Stops at the first return other than -2.
 */
static void decode_pieces(const char *in, size_t n, const size_t *steps, size_t nsteps,
			  struct dec_result *res)
{
	struct http_chunked c;
	size_t off = 0, s = 0;

	memset(res, 0, sizeof(*res));
	res->r = -2;
	http_chunked_init(&c);
	while (off < n) {
		size_t piece = nsteps ? steps[s++ % nsteps] : n - off;
		char *buf;
		size_t got;

		piece = MIN(piece, n - off);
		buf = at_guard(in + off, piece);
		got = piece;

		off += piece;
		res->r = http_chunked_decode(&c, buf, &got);
		if (got > piece || res->body_len + got > DEC_MAX) {
			res->overflowed = true;
			return;
		}
		memcpy(res->body + res->body_len, buf, got);
		res->body_len += got;
		if (res->r >= 0) {
			memcpy(res->rest, buf + got, (size_t)res->r);
			res->rest_len = (size_t)res->r;
			memcpy(res->rest + res->rest_len, in + off, n - off);
			res->rest_len += n - off;
		}
		if (res->r != -2)
			break;
	}
	res->total = c.total;
}

struct chunk_case {
	const char *name;
	const char *in;
	size_t len;
	int want; /* 0: complete, -1, -2 */
	const char *body;
	size_t body_len;
	const char *rest;
};

static const struct chunk_case chunk_cases[] = {
	{ "one chunk", S("5\r\nhello\r\n0\r\n\r\n"), 0, S("hello"), "" },
	{ "two chunks", S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 0, S("hello world"), "" },
	{ "empty body", S("0\r\n\r\n"), 0, S(""), "" },
	{ "hex in both cases", S("a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n"), 0,
	  S("0123456789abcdefghijk"), "" },
	{ "leading zeros", S("0005\r\nhello\r\n000\r\n\r\n"), 0, S("hello"), "" },
	{ "bare LF ending a size line (RFC 9112 7.1: CRLF)", S("5\nhello\r\n0\r\n\r\n"), -1, S(""),
	  "" },
	{ "bare LF after chunk data", S("5\r\nhello\n0\r\n\r\n"), -1, S("hello"), "" },
	{ "bare LF ending the last chunk's size line", S("5\r\nhello\r\n0\n\n"), -1, S("hello"),
	  "" },
	{ "bare LF ending the trailer section (a field line: allowed)", S("5\r\nhello\r\n0\r\n\n"),
	  0, S("hello"), "" },
	{ "extensions", S("5;name=value\r\nhello\r\n3 ; a=\"b c\" ;d\r\nabc\r\n0;last\r\n\r\n"), 0,
	  S("helloabc"), "" },
	{ "BWS before the line end", S("5 \t\r\nhello\r\n0\r\n\r\n"), 0, S("hello"), "" },
	{ "trailers", S("5\r\nhello\r\n0\r\nX-Foo: bar\r\nX-Baz:\r\nE: \xc3\xa9\n\r\n"), 0,
	  S("hello"), "" },
	{ "data with CRLF, NUL and high bytes", S("6\r\n\r\n\0\xff\r\n\r\n0\r\n\r\n"), 0,
	  S("\r\n\0\xff\r\n"), "" },
	{ "pipelined request left over", S("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 0,
	  S("hello"), "GET / HTTP/1.1\r\n\r\n" },
	{ "leftover after trailers", S("1\r\nx\r\n0\r\nA: b\r\n\r\nXY"), 0, S("x"), "XY" },
	{ "largest chunk size waits for data", S("7fffffffffffffff\r\nab"), -2, S("ab"), "" },
	{ "cut in the data", S("5\r\nhel"), -2, S("hel"), "" },
	{ "cut before the final CRLF", S("5\r\nhello\r\n0\r\n"), -2, S("hello"), "" },
	{ "cut in the trailers", S("0\r\nA: b\r\n"), -2, S(""), "" },
	{ "cut in a size line", S("5;ext"), -2, S(""), "" },
	{ "size of 2^63", S("8000000000000000\r\n"), -1, S(""), "" },
	{ "size of 17 hex digits", S("10000000000000000\r\n"), -1, S(""), "" },
	{ "size of UINT64_MAX", S("ffffffffffffffff\r\n"), -1, S(""), "" },
	{ "size not hex", S("g\r\n"), -1, S(""), "" },
	{ "empty size line", S("\r\n"), -1, S(""), "" },
	{ "negative size", S("-1\r\n"), -1, S(""), "" },
	{ "space before the size", S(" 5\r\nhello\r\n0\r\n\r\n"), -1, S(""), "" },
	{ "junk after the size", S("5x\r\nhello\r\n"), -1, S(""), "" },
	{ "junk after BWS", S("5 x\r\nhello\r\n"), -1, S(""), "" },
	{ "control byte in an extension", S("5;a\x01\r\nhello\r\n"), -1, S(""), "" },
	{ "bare CR in a size line", S("5\rX"), -1, S(""), "" },
	{ "data not followed by CRLF", S("5\r\nhelloX\r\n0\r\n\r\n"), -1, S("hello"), "" },
	{ "data followed by a bare CR", S("5\r\nhello\rX"), -1, S("hello"), "" },
	{ "second chunk short", S("5\r\nhello\r\n2\r\nabc\r\n0\r\n\r\n"), -1, S("helloab"), "" },
	{ "bare CR ending the body", S("0\r\n\rX"), -1, S(""), "" },
	{ "trailer without a name", S("0\r\n: x\r\n\r\n"), -1, S(""), "" },
	{ "trailer with space before the colon", S("0\r\nA b\r\n\r\n"), -1, S(""), "" },
	{ "folded trailer", S("0\r\nA: b\r\n c\r\n\r\n"), -1, S(""), "" },
	{ "bare CR in a trailer", S("0\r\nA: b\rX"), -1, S(""), "" },
	{ "control byte in a trailer", S("0\r\nA: \x01\r\n\r\n"), -1, S(""), "" },
};

static bool dec_equal(const struct dec_result *a, const struct dec_result *b)
{
	return (a->r >= 0) == (b->r >= 0) && (a->r < 0 ? a->r == b->r : true) &&
	       a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0 &&
	       a->rest_len == b->rest_len && memcmp(a->rest, b->rest, a->rest_len) == 0 &&
	       a->total == b->total && !a->overflowed && !b->overflowed;
}

static void check_chunked(const char *name, const char *in, size_t n, int want, const char *body,
			  size_t body_len, const char *rest)
{
	static struct dec_result whole, piece;
	static const size_t one[] = { 1 };
	static const size_t three[] = { 3 };
	static const size_t odd[] = { 2, 7, 1, 13, 5, 64, 3 };
	static const struct {
		const char *how;
		const size_t *steps;
		size_t nsteps;
	} feeds[] = {
		{ "byte by byte", one, 1 },
		{ "three bytes at a time", three, 1 },
		{ "in uneven pieces", odd, ARRAY_SIZE(odd) },
	};
	bool good;

	decode_pieces(in, n, NULL, 0, &whole);
	good = want == 0 ? whole.r >= 0 : whole.r == want;
	good = good && whole.body_len == body_len && memcmp(whole.body, body, body_len) == 0;
	good = good && whole.total == body_len && !whole.overflowed;
	if (want == 0)
		good = good && whole.r == (ssize_t)strlen(rest) && whole.rest_len == strlen(rest) &&
		       memcmp(whole.rest, rest, whole.rest_len) == 0;
	if (!ok(good, "chunked, %s: in one go returns %d with the expected data", name, want))
		diag("  returned %zd, %zu data bytes, %zu left over", whole.r, whole.body_len,
		     whole.rest_len);

	for (size_t i = 0; i < ARRAY_SIZE(feeds); i++) {
		decode_pieces(in, n, feeds[i].steps, feeds[i].nsteps, &piece);
		if (!ok(dec_equal(&whole, &piece), "chunked, %s: same result fed %s", name,
			feeds[i].how))
			diag("  returned %zd, %zu data bytes, %zu left over", piece.r,
			     piece.body_len, piece.rest_len);
	}
}

static void test_chunked_cases(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(chunk_cases); i++) {
		const struct chunk_case *t = &chunk_cases[i];

		check_chunked(t->name, t->in, t->len, t->want, t->body, t->body_len, t->rest);
	}
}

/* The size line, extension and trailer bounds, at their value and one past it. */
static void test_chunked_limits(void)
{
	static char in[DEC_MAX], body[DEC_MAX];
	size_t n;

	/* ext_len counts the size line after its first digit: "5;" is 1, each 'a' one more. */
	n = (size_t)sprintf(in, "5;");
	memset(in + n, 'a', HTTP_CHUNK_EXT_MAX - 1);
	n += HTTP_CHUNK_EXT_MAX - 1;
	n += (size_t)sprintf(in + n, "\r\nhello\r\n0\r\n\r\n");
	check_chunked("extension at HTTP_CHUNK_EXT_MAX", in, n, 0, S("hello"), "");
	n = (size_t)sprintf(in, "5;");
	memset(in + n, 'a', HTTP_CHUNK_EXT_MAX);
	n += HTTP_CHUNK_EXT_MAX;
	check_chunked("extension over HTTP_CHUNK_EXT_MAX", in, n, -1, S(""), "");

	memset(in, '0', 5000);
	n = 5000 + (size_t)sprintf(in + 5000, "5\r\nhello\r\n0\r\n\r\n");
	check_chunked("5000 leading zeros", in, n, -1, S(""), "");

	/* Trailer fields of 16 KiB in all, line ends included, then the blank line. */
	n = (size_t)sprintf(in, "0\r\nA: ");
	memset(in + n, 'b', 16384 - 5);
	n += 16384 - 5;
	n += (size_t)sprintf(in + n, "\r\n\r\nNEXT");
	check_chunked("trailers of 16384 bytes", in, n, 0, S(""), "NEXT");
	n = (size_t)sprintf(in, "0\r\nA: ");
	memset(in + n, 'b', 16384 - 4);
	n += 16384 - 4;
	n += (size_t)sprintf(in + n, "\r\n\r\n");
	check_chunked("trailers of 16385 bytes", in, n, -1, S(""), "");

	/* A chunk larger than any one piece of input. */
	n = (size_t)sprintf(in, "1000\r\n");
	for (size_t i = 0; i < 4096; i++)
		body[i] = (char)('a' + i % 26);
	memcpy(in + n, body, 4096);
	n += 4096;
	n += (size_t)sprintf(in + n, "\r\n0\r\n\r\n");
	check_chunked("4096-byte chunk", in, n, 0, body, 4096, "");
}

static void test_chunked_after_end(void)
{
	struct http_chunked c;
	char buf[64];
	size_t n;
	ssize_t r;

	http_chunked_init(&c);
	n = (size_t)sprintf(buf, "3\r\nabc\r\n0\r\n\r\n");
	r = http_chunked_decode(&c, buf, &n);
	ok(r == 0 && n == 3 && memcmp(buf, "abc", 3) == 0 && c.total == 3,
	   "chunked: body complete, nothing left over");
	n = (size_t)sprintf(buf, "XYZ");
	r = http_chunked_decode(&c, buf, &n);
	ok(r == 3 && n == 0 && memcmp(buf, "XYZ", 3) == 0,
	   "chunked: after the end all input is left over, untouched");

	http_chunked_init(&c);
	n = (size_t)sprintf(buf, "3\r\nabcX");
	r = http_chunked_decode(&c, buf, &n);
	ok(r == -1 && n == 3 && memcmp(buf, "abc", 3) == 0,
	   "chunked: an error keeps the data decoded before it");
	n = (size_t)sprintf(buf, "\r\n0\r\n\r\n");
	r = http_chunked_decode(&c, buf, &n);
	ok(r == -1 && n == 0, "chunked: an error is sticky");
	n = 0;
	r = http_chunked_decode(&c, buf, &n);
	ok(r == -1 && n == 0, "chunked: an error is sticky even without input");

	http_chunked_init(&c);
	n = 0;
	r = http_chunked_decode(&c, buf, &n);
	ok(r == -2 && n == 0, "chunked: no input needs more");
}

int main(void)
{
	int r = guard_setup();

	if (!ok(r == 0, "guard page set up")) {
		diag("  %s", strerror(-r));
		return done_testing();
	}
	test_guard_works();
	test_simple_request();
	test_http10_bare_lf_leading_empty();
	test_values();
	test_good_cases();
	test_bad_cases();
	test_default_limits();
	test_header_count_limits();
	test_header_bytes_limit();
	test_find_header();
	test_value_has_token();
	test_content_length();
	test_chunked_cases();
	test_chunked_limits();
	test_chunked_after_end();
	return done_testing();
}
