/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the HTTP request-head parser and the chunked decoder (frontend/http.h).
 *
 * The frontend reads a head in pieces and parses the whole buffer again after each read, then
 * copies the head and parses the copy; it decodes a chunked body in place, one read at a time.
 * So each input is parsed whole and as a series of growing prefixes cut where the input's hash
 * says, under the default limits and under small limits drawn from the hash, and the answers
 * must agree: a prefix that fails fails the same way when whole, a prefix that parses parses
 * the same when whole, and a copy of the head parses the same as the head. The bytes after a
 * parsed head (or the whole input) are then decoded as a chunked body in one piece and in
 * random pieces, and checked against each other and against a naive decoder in this file.
 *
 * Every parse reads from an exact-size heap copy, so a read past the end is an ASan report.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "frontend/http.h"
#include "fuzz/fuzz.h"

/* Prefixes parsed per input and limit set: enough to hit most read boundaries of a short head
 * while keeping an 8 KiB input to a few hundred microseconds. */
#define FUZZ_HTTP_PREFIXES 12

/* Inputs up to this long are parsed at every prefix: a few thousand bytes parsed in all. */
#define FUZZ_HTTP_ALL_PREFIXES 64

/* Pieces a chunked body is fed in, at most. */
#define FUZZ_HTTP_PIECES 24

/* PROTOCOL 7.2's defaults, as the frontend passes them. */
static const struct http_limits lim_default = { 8192, 16384, HTTP_MAX_HEADERS };

/* What one parse gave: the head length or -1/-2, and the error it reported. */
struct outcome {
	int r;
	struct http_error err;
};

static struct http_request req_a, req_b;

static bool is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static bool prefix_caseeq(const uint8_t *p, size_t n, const char *s)
{
	size_t sl = strlen(s);

	if (n < sl)
		return false;
	for (size_t i = 0; i < sl; i++)
		if (lower(p[i]) != lower((uint8_t)s[i]))
			return false;
	return true;
}

/* Parse buf[0..len) from an exact-size copy; req points into that copy, which *ret_copy keeps. */
static struct outcome parse_copy(const uint8_t *buf, size_t len, const struct http_limits *lim,
				 struct http_request *req, uint8_t **ret_copy)
{
	struct outcome o;
	uint8_t *copy = fuzz_dup(buf, len);

	memset(&o, 0, sizeof(o));
	o.r = http_parse_request((const char *)copy, len, lim, req, &o.err);
	*ret_copy = copy;
	return o;
}

/* The properties of a parsed head at b[0..r) (r > 0) that do not depend on another parse. */
static void check_request(const uint8_t *b, size_t len, int r, const struct http_limits *lim,
			  const struct http_request *req)
{
	size_t n = (size_t)r, lead, line_end, blank, hdr_bytes;
	size_t max_lines =
		lim->max_header_lines < HTTP_MAX_HEADERS ? lim->max_header_lines : HTTP_MAX_HEADERS;
	const uint8_t *m = (const uint8_t *)req->method, *t = (const uint8_t *)req->target;

	FUZZ_CHECK(n <= len, "head of %zu bytes in %zu", n, len);
	FUZZ_CHECK(b[n - 1] == '\n', "head does not end in LF");

	/* The request line: method SP target SP HTTP/1.x, all inside the head. */
	FUZZ_CHECK(fuzz_inside(b, n, m, req->method_len), "method outside the head");
	FUZZ_CHECK(req->method_len >= 1 && req->method_len <= 32, "method length %zu",
		   req->method_len);
	for (size_t i = 0; i < req->method_len; i++)
		FUZZ_CHECK(is_tchar(m[i]), "method byte 0x%02x", m[i]);
	lead = (size_t)(m - b);
	for (size_t i = 0; i < lead; i++)
		FUZZ_CHECK(b[i] == '\r' || b[i] == '\n', "junk before the method");
	FUZZ_CHECK(t == m + req->method_len + 1 && m[req->method_len] == ' ',
		   "method and target not one SP apart");
	FUZZ_CHECK(fuzz_inside(b, n, t, req->target_len), "target outside the head");
	FUZZ_CHECK(req->target_len >= 1 && req->target_len <= lim->max_target,
		   "target length %zu, limit %zu", req->target_len, lim->max_target);
	for (size_t i = 0; i < req->target_len; i++)
		FUZZ_CHECK(t[i] > 0x20 && t[i] != 0x7f, "target byte 0x%02x", t[i]);
	FUZZ_CHECK(t[0] == '/' || (t[0] == '*' && req->target_len == 1) ||
			   prefix_caseeq(t, req->target_len, "http://") ||
			   prefix_caseeq(t, req->target_len, "https://"),
		   "target form");
	line_end = (size_t)(t - b) + req->target_len + 1;
	FUZZ_CHECK(line_end + 8 <= n && memcmp(b + line_end - 1, " HTTP/1.", 8) == 0,
		   "version not where the target ends");
	FUZZ_CHECK(req->minor_version == 0 || req->minor_version == 1, "minor version %d",
		   req->minor_version);
	FUZZ_CHECK(b[line_end + 7] == (uint8_t)('0' + req->minor_version), "minor version byte");
	line_end += 8;
	line_end += b[line_end] == '\r' ? 2 : 1;
	FUZZ_CHECK(line_end <= n && b[line_end - 1] == '\n', "request line end");

	/* The head ends at its first blank line, and only there. */
	blank = n >= 2 && b[n - 2] == '\r' ? 2 : 1;
	FUZZ_CHECK(n - blank >= line_end, "blank line overlaps the request line");
	for (size_t i = line_end; i + 1 < n; i++) {
		if (b[i] != '\n' || i + 1 == n - blank)
			continue;
		FUZZ_CHECK(b[i + 1] != '\n' && !(b[i + 1] == '\r' && i + 2 < n && b[i + 2] == '\n'),
			   "a blank line at %zu inside the head", i);
	}

	/* The header block: its size and line count within the limits, each field well formed. */
	hdr_bytes = n - blank - line_end;
	FUZZ_CHECK(lead + hdr_bytes <= lim->max_header, "header block %zu + %zu over %zu", lead,
		   hdr_bytes, lim->max_header);
	FUZZ_CHECK(req->nheaders <= max_lines, "%zu header lines over %zu", req->nheaders,
		   max_lines);
	for (size_t k = 0; k < req->nheaders; k++) {
		const struct http_header *h = &req->headers[k];
		const uint8_t *nm = (const uint8_t *)h->name, *v = (const uint8_t *)h->value;

		FUZZ_CHECK(fuzz_inside(b + line_end, hdr_bytes, nm, h->name_len),
			   "header %zu name outside the block", k);
		FUZZ_CHECK(fuzz_inside(b + line_end, hdr_bytes, v, h->value_len),
			   "header %zu value outside the block", k);
		FUZZ_CHECK(h->name_len >= 1 && nm[h->name_len] == ':', "header %zu name", k);
		FUZZ_CHECK(k == 0 || nm > (const uint8_t *)req->headers[k - 1].value,
			   "headers out of order");
		for (size_t i = 0; i < h->name_len; i++)
			FUZZ_CHECK(is_tchar(nm[i]), "header name byte 0x%02x", nm[i]);
		FUZZ_CHECK(v >= nm + h->name_len + 1, "value before the colon");
		if (h->value_len) {
			FUZZ_CHECK(!is_ows(v[0]) && !is_ows(v[h->value_len - 1]),
				   "value not trimmed");
		}
		for (size_t i = 0; i < h->value_len; i++)
			FUZZ_CHECK(v[i] == '\t' || (v[i] >= 0x20 && v[i] != 0x7f),
				   "value byte 0x%02x", v[i]);
	}
}

/* Two parses of the same head (maybe at different addresses) must say the same. */
static void check_same(const uint8_t *a, const struct http_request *ra, const uint8_t *b,
		       const struct http_request *rb)
{
	FUZZ_CHECK((const uint8_t *)ra->method - a == (const uint8_t *)rb->method - b &&
			   ra->method_len == rb->method_len,
		   "method differs");
	FUZZ_CHECK((const uint8_t *)ra->target - a == (const uint8_t *)rb->target - b &&
			   ra->target_len == rb->target_len,
		   "target differs");
	FUZZ_CHECK(ra->minor_version == rb->minor_version, "version differs");
	FUZZ_CHECK(ra->nheaders == rb->nheaders, "%zu headers, then %zu", ra->nheaders,
		   rb->nheaders);
	for (size_t k = 0; k < ra->nheaders; k++) {
		const struct http_header *x = &ra->headers[k], *y = &rb->headers[k];

		FUZZ_CHECK((const uint8_t *)x->name - a == (const uint8_t *)y->name - b &&
				   x->name_len == y->name_len &&
				   (const uint8_t *)x->value - a == (const uint8_t *)y->value - b &&
				   x->value_len == y->value_len,
			   "header %zu differs", k);
	}
}

static void check_error(const struct outcome *o)
{
	const char *reason = o->err.reason;

	FUZZ_CHECK(o->err.status == 400 || o->err.status == 414 || o->err.status == 431 ||
			   o->err.status == 505,
		   "status %d", o->err.status);
	FUZZ_CHECK(reason != NULL && reason[0] != '\0', "no reason");
	FUZZ_CHECK(strpbrk(reason, "\r\n") == NULL, "reason is not one line");
}

/* Element v[from..to) of a comma-separated value, trimmed, must be found as a token of it. */
static void check_element(const struct http_header *h, size_t from, size_t to, char *token,
			  size_t cap)
{
	const uint8_t *v = (const uint8_t *)h->value;

	while (from < to && is_ows(v[from]))
		from++;
	while (to > from && is_ows(v[to - 1]))
		to--;
	if (to == from || to - from >= cap)
		return;
	memcpy(token, v + from, to - from);
	token[to - from] = '\0';
	FUZZ_CHECK(http_value_has_token(h->value, h->value_len, token),
		   "'%s' is not a token of its own value", token);
}

/* http_find_header, http_value_has_token and http_parse_content_length on a parsed head. */
static void check_helpers(const struct http_request *req)
{
	char name[64], token[64];

	/* A name no header line can have (a space is not a token byte). */
	FUZZ_CHECK(http_find_header(req, "no such header") == NULL, "found a name with a space");
	for (size_t k = 0; k < req->nheaders; k++) {
		const struct http_header *h = &req->headers[k];
		const uint8_t *v = (const uint8_t *)h->value;
		size_t i = 0;
		uint64_t cl = 0;
		bool digits = h->value_len > 0;

		/* The first header of that name, compared case-insensitively, is at or before k. */
		if (h->name_len < sizeof(name)) {
			const struct http_header *f;

			memcpy(name, h->name, h->name_len);
			name[h->name_len] = '\0';
			f = http_find_header(req, name);
			FUZZ_CHECK(f != NULL && f <= h && f->name_len == h->name_len,
				   "find_header '%s'", name);
			FUZZ_CHECK(strncasecmp(f->name, name, h->name_len) == 0,
				   "find_header '%s': wrong name", name);
		}

		/* The first and the last element of a list value are tokens of it. */
		while (i < h->value_len && v[i] != ',')
			i++;
		check_element(h, 0, i, token, sizeof(token));
		i = h->value_len;
		while (i > 0 && v[i - 1] != ',')
			i--;
		check_element(h, i, h->value_len, token, sizeof(token));
		FUZZ_CHECK(!http_value_has_token(h->value, h->value_len, ""), "empty token found");
		/* A value never holds a control byte, so a token with one is never in it. */
		FUZZ_CHECK(!http_value_has_token(h->value, h->value_len, "\x01"), "token \\x01");

		/* Content-Length: all digits and no overflow, checked by strtoull. */
		for (i = 0; i < h->value_len; i++)
			digits = digits && v[i] >= '0' && v[i] <= '9';
		if (http_parse_content_length(h->value, h->value_len, &cl) == 0) {
			char num[32];

			FUZZ_CHECK(digits, "content length of a non-number");
			if (h->value_len < sizeof(num)) {
				memcpy(num, h->value, h->value_len);
				num[h->value_len] = '\0';
				errno = 0;
				FUZZ_CHECK(strtoull(num, NULL, 10) == cl && errno == 0,
					   "content length '%s' read as %llu", num,
					   (unsigned long long)cl);
			}
		} else if (digits) {
			size_t nz = 0;

			while (nz < h->value_len && v[nz] == '0')
				nz++;
			/* Refused digits must overflow: more than 20 significant ones, or 20 over
			 * "18446744073709551615". */
			FUZZ_CHECK(h->value_len - nz >= 20,
				   "refused a content length of %zu digits", h->value_len - nz);
		}
	}
}

/* The request parser under one limit set; the head's length (> 0) or 0. */
static size_t fuzz_request(const uint8_t *data, size_t size, const struct http_limits *lim,
			   uint64_t seed)
{
	struct outcome whole, part;
	uint8_t *wbuf, *pbuf;
	size_t k = 0, head = 0;

	whole = parse_copy(data, size, lim, &req_a, &wbuf);
	FUZZ_CHECK(whole.r > 0 || whole.r == -1 || whole.r == -2, "returned %d", whole.r);
	if (whole.r > 0) {
		check_request(wbuf, size, whole.r, lim, &req_a);
		check_helpers(&req_a);
		head = (size_t)whole.r;
		/* The frontend copies the head away from the body and parses the copy. */
		part = parse_copy(wbuf, head, lim, &req_b, &pbuf);
		FUZZ_CHECK(part.r == whole.r, "the head's copy gave %d, the head %d", part.r,
			   whole.r);
		check_same(wbuf, &req_a, pbuf, &req_b);
		free(pbuf);
	} else if (whole.r == -1) {
		check_error(&whole);
	}

	/*
	 * Growing prefixes, as successive reads deliver them: all of a short input, a few of a
	 * long one, then always the one a byte short, so that a seed replays its split.
	 */
	for (int i = 0; k + 1 < size; i++) {
		size_t left = size - 1 - k;

		if (size <= FUZZ_HTTP_ALL_PREFIXES)
			k++;
		else if (i >= FUZZ_HTTP_PREFIXES)
			k = size - 1;
		else
			k += fuzz_range(&seed, 1, (i & 1) || left < 16 ? left : 16);
		part = parse_copy(data, k, lim, &req_b, &pbuf);
		if (part.r == -1) {
			check_error(&part);
			FUZZ_CHECK(whole.r == -1 && whole.err.status == part.err.status &&
					   whole.err.reason == part.err.reason,
				   "prefix of %zu: %d '%s'; whole: %d '%s'", k, part.err.status,
				   part.err.reason, whole.err.status,
				   whole.r == -1 ? whole.err.reason : "");
		} else if (part.r > 0) {
			FUZZ_CHECK(part.r == whole.r, "prefix of %zu: head of %d; whole: %d", k,
				   part.r, whole.r);
			check_same(pbuf, &req_b, wbuf, &req_a);
		} else {
			FUZZ_CHECK(part.r == -2, "prefix of %zu: returned %d", k, part.r);
		}
		free(pbuf);
		if (part.r != -2)
			break;
	}
	free(wbuf);
	return head;
}

/* A naive decoder of a chunked body that the real one accepted: its data, and the bytes the body
 * took. Sizes are hex, a size line ends at LF, data ends in CRLF or LF, trailers end at LF. */
static size_t naive_chunked(const uint8_t *b, size_t n, uint8_t *out, size_t *ret_out)
{
	size_t i = 0, o = 0;

	for (;;) {
		uint64_t size = 0;

		while (i < n && ((b[i] >= '0' && b[i] <= '9') ||
				 (lower(b[i]) >= 'a' && lower(b[i]) <= 'f'))) {
			uint8_t c = lower(b[i++]);

			size = size * 16 + (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
		}
		while (i < n && b[i] != '\n')
			i++;
		FUZZ_CHECK(i < n, "naive: size line never ends");
		i++;
		if (size == 0)
			break;
		FUZZ_CHECK(size <= n - i, "naive: chunk of %llu past the end",
			   (unsigned long long)size);
		memcpy(out + o, b + i, (size_t)size);
		o += (size_t)size;
		i += (size_t)size;
		if (i < n && b[i] == '\r')
			i++;
		FUZZ_CHECK(i < n && b[i] == '\n', "naive: no line end after data");
		i++;
	}
	for (;;) {
		size_t start = i;

		while (i < n && b[i] != '\n')
			i++;
		FUZZ_CHECK(i < n, "naive: trailer line never ends");
		i++;
		if (i - start == 1 || (i - start == 2 && b[start] == '\r'))
			break;
	}
	*ret_out = o;
	return i;
}

/* One body, in one piece and in pieces: the same data, the same end, the same left-over. */
static void fuzz_chunked(const uint8_t *body, size_t n, uint64_t seed)
{
	struct http_chunked one, split;
	uint8_t *buf1 = fuzz_dup(body, n);
	uint8_t *dec2 = malloc(n + 1), *left2 = malloc(n + 1);
	size_t len1 = n, have2 = 0, nleft2 = 0, off = 0;
	ssize_t r1, r2 = -2;

	FUZZ_CHECK(dec2 && left2, "out of memory");
	http_chunked_init(&one);
	r1 = http_chunked_decode(&one, (char *)buf1, &len1);
	FUZZ_CHECK(r1 >= -2, "returned %zd", r1);
	FUZZ_CHECK(len1 <= n && one.total == len1, "decoded %zu of %zu, total %llu", len1, n,
		   (unsigned long long)one.total);
	if (r1 >= 0)
		FUZZ_CHECK(len1 + (size_t)r1 <= n, "left-over %zd past the input", r1);
	if (r1 == -2)
		FUZZ_CHECK(one.remaining <= (uint64_t)INT64_MAX, "chunk size %llu",
			   (unsigned long long)one.remaining);

	http_chunked_init(&split);
	for (int i = 0; off < n || i == 0; i++) {
		size_t left = n - off;
		size_t k = i + 1 >= FUZZ_HTTP_PIECES
				   ? left
				   : fuzz_range(&seed, 0, (i & 1) || left < 8 ? left : 8);
		uint8_t *piece = fuzz_dup(body + off, k);
		size_t len = k;
		ssize_t r = http_chunked_decode(&split, (char *)piece, &len);

		FUZZ_CHECK(len <= k, "piece of %zu decoded to %zu", k, len);
		if (r2 >= 0) {
			/* Done already: everything is left over, nothing decoded. */
			FUZZ_CHECK(r == (ssize_t)k && len == 0, "after the end: %zd, %zu", r, len);
		} else if (r2 == -1) {
			FUZZ_CHECK(r == -1 && len == 0, "after an error: %zd, %zu", r, len);
		}
		if (r2 == -2) {
			memcpy(dec2 + have2, piece, len);
			have2 += len;
		}
		if (r >= 0) {
			FUZZ_CHECK(len + (size_t)r <= k, "left-over %zd of a piece of %zu", r, k);
			memcpy(left2 + nleft2, piece + len, (size_t)r);
			nleft2 += (size_t)r;
		}
		r2 = r2 == -2 ? r : r2;
		free(piece);
		off += k;
	}
	FUZZ_CHECK((r1 < 0 ? r1 : 0) == (r2 < 0 ? r2 : 0), "whole: %zd; in pieces: %zd", r1, r2);
	FUZZ_CHECK(have2 == len1 && memcmp(dec2, buf1, len1) == 0,
		   "decoded %zu bytes whole, %zu in pieces", len1, have2);
	FUZZ_CHECK(split.total == have2, "total %llu, decoded %zu", (unsigned long long)split.total,
		   have2);
	if (r1 >= 0) {
		size_t nref = 0, used;

		FUZZ_CHECK((size_t)r1 == nleft2 && memcmp(buf1 + len1, left2, nleft2) == 0,
			   "left-over: %zd whole, %zu in pieces", r1, nleft2);
		used = naive_chunked(body, n, dec2, &nref);
		FUZZ_CHECK(used == n - (size_t)r1, "the body took %zu bytes, naive: %zu",
			   n - (size_t)r1, used);
		FUZZ_CHECK(nref == len1 && memcmp(dec2, buf1, len1) == 0, "naive decoding differs");
		/* The left-over is where the input ends: a pipelined request, untouched. */
		FUZZ_CHECK(memcmp(buf1 + len1, body + used, (size_t)r1) == 0, "left-over altered");
	}
	free(buf1);
	free(dec2);
	free(left2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = fuzz_hash(data, size);
	struct http_limits small;
	size_t head;

	head = fuzz_request(data, size, &lim_default, seed);

	/* Small limits, so that 414 and 431 and their edges come up in short inputs. */
	small.max_target = fuzz_range(&seed, 1, 64);
	small.max_header = fuzz_range(&seed, 0, 512);
	small.max_header_lines = fuzz_range(&seed, 0, 8);
	(void)fuzz_request(data, size, &small, seed);

	fuzz_chunked(data + head, size - head, seed);
	return 0;
}
