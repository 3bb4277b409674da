/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "frontend/http.h"

/*
 * The longest registered method (IANA's "UPDATEREDIRECTREF") has 17 bytes; anything much longer
 * is not a method we could ever serve, and the bound keeps the request line finite even before
 * max_target applies.
 */
#define HTTP_METHOD_MAX 32

/*
 * RFC 9112 2.2 asks a server to ignore "at least one" empty line before the request line (left
 * over from a previous POST body). A few are tolerated; a stream of them is not HTTP.
 */
#define HTTP_LEADING_EMPTY_MAX 8

/* Trailer section of a chunked body (PROTOCOL 7.2's header block limit); more is malformed. */
#define HTTP_CHUNK_TRAILER_MAX ((size_t)16 * 1024)

/*
 * Chunk sizes must fit in an int64_t, so no sum or cast a caller makes with them can wrap. The
 * body limit (2 MiB) stops any real body long before.
 */
#define HTTP_CHUNK_SIZE_MAX ((uint64_t)INT64_MAX)

#define PARSE_ERROR	 (-1)
#define PARSE_INCOMPLETE (-2)

/* Where the request parser stands in buf; one per call, since every call starts afresh. */
struct parse {
	const uint8_t *p;
	size_t len;
	size_t hdr_end; /* header-line bytes at or past this index cross max_header */
	struct http_error *err;
};

static int parse_fail(struct parse *ps, int status, const char *reason)
{
	ps->err->status = status;
	ps->err->reason = reason;
	return PARSE_ERROR;
}

/*
 * RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA
 */
static bool is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Request-target bytes: visible ASCII and anything with the high bit (left to the topic code). */
static bool is_target_byte(uint8_t c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* field-value bytes (RFC 9110 5.5): HT, SP, VCHAR, obs-text. */
static bool is_value_byte(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80;
}

static bool is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static bool is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static uint8_t hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return (uint8_t)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (uint8_t)(c - 'a' + 10);
	return (uint8_t)(c - 'A' + 10);
}

/* ASCII only: tolower(3) would follow the locale. */
static uint8_t ascii_lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

static bool ascii_caseeq(const uint8_t *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower((uint8_t)b[i]))
			return false;
	return true;
}

static bool span_caseeq(const uint8_t *a, size_t a_len, const char *b, size_t b_len)
{
	return a_len == b_len && ascii_caseeq(a, b, a_len);
}

/*
 * Whether the n target bytes seen so far can begin an absolute-form target. While the target
 * is still arriving (!complete) a prefix of "http://" is enough, so "GET ftp:" fails at the 'f'
 * and "GET h" waits.
 */
static bool absolute_prefix_ok(const uint8_t *t, size_t n, bool complete)
{
	static const char *const schemes[] = { "http://", "https://" };

	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
		size_t slen = strlen(schemes[i]);

		if (ascii_caseeq(t, schemes[i], MIN(n, slen)) && (n >= slen || !complete))
			return true;
	}
	return false;
}

/*
 * Consume the CRLF or bare LF at *pos. A CR not followed by LF is a bare CR, and any other byte
 * there is junk after the line's last element: both are 400 with the given reason for junk.
 */
static int parse_eol(struct parse *ps, size_t *pos, const char *junk)
{
	size_t i = *pos;

	if (i == ps->len)
		return PARSE_INCOMPLETE;
	if (ps->p[i] == '\n') {
		*pos = i + 1;
		return 0;
	}
	if (ps->p[i] != '\r')
		return parse_fail(ps, 400, junk);
	if (i + 1 == ps->len)
		return PARSE_INCOMPLETE;
	if (ps->p[i + 1] != '\n')
		return parse_fail(ps, 400, "bare CR in the request head");
	*pos = i + 2;
	return 0;
}

/*
 * Skip the empty lines before the request line. They count toward the header limits like the
 * header lines do, so a client cannot pad a head past them for free.
 */
static int parse_leading_empty(struct parse *ps, const struct http_limits *lim, size_t max_lines,
			       size_t *pos, size_t *nempty)
{
	for (;;) {
		size_t i = *pos;
		int r;

		if (i == ps->len)
			return PARSE_INCOMPLETE;
		if (ps->p[i] != '\r' && ps->p[i] != '\n')
			return 0;
		r = parse_eol(ps, pos, "bare CR in the request head");
		if (r < 0)
			return r;
		(*nempty)++;
		if (*nempty > HTTP_LEADING_EMPTY_MAX)
			return parse_fail(ps, 400, "too many empty lines before the request line");
		if (*nempty > max_lines)
			return parse_fail(ps, 431, "too many header lines");
		if (*pos > lim->max_header)
			return parse_fail(ps, 431, "header section too large");
	}
}

static int parse_method(struct parse *ps, size_t *pos, struct http_request *req)
{
	const size_t start = *pos;
	size_t i = start;

	while (i < ps->len && is_tchar(ps->p[i])) {
		i++;
		if (i - start > HTTP_METHOD_MAX)
			return parse_fail(ps, 400, "request method too long");
	}
	/* Checked before running out, so a TLS ClientHello fails on its first byte. */
	if (i == start && i < ps->len)
		return parse_fail(ps, 400, "request does not start with an HTTP method");
	if (i == ps->len)
		return PARSE_INCOMPLETE;
	if (ps->p[i] == '\r' || ps->p[i] == '\n')
		return parse_fail(ps, 400, "request line has no request target");
	if (ps->p[i] != ' ')
		return parse_fail(ps, 400, "invalid byte in the request method");
	req->method = (const char *)ps->p + start;
	req->method_len = i - start;
	*pos = i + 1;
	return 0;
}

/*
 * Whether the first n target bytes have a form we serve (RFC 9112 3.2): origin-form, "*", or an
 * absolute-form http(s) URL. complete says whether the target has ended.
 */
static bool target_form_ok(const uint8_t *t, size_t n, bool complete)
{
	switch (t[0]) {
	case '/':
		return true;
	case '*':
		return n == 1;
	default:
		return absolute_prefix_ok(t, n, complete);
	}
}

static int parse_target(struct parse *ps, const struct http_limits *lim, size_t *pos,
			struct http_request *req)
{
	static const char bad_form[] = "request target is not a path, \"*\" or an http(s) URL";
	const size_t start = *pos;
	size_t i = start;

	if (i == ps->len)
		return PARSE_INCOMPLETE;
	if (ps->p[i] == ' ')
		return parse_fail(ps, 400, "more than one space after the request method");
	while (i < ps->len && ps->p[i] != ' ') {
		uint8_t c = ps->p[i];

		if (c == '\r' || c == '\n')
			return parse_fail(ps, 400, "request line has no HTTP version");
		if (!is_target_byte(c))
			return parse_fail(ps, 400, "control byte or DEL in the request target");
		if (i - start >= lim->max_target)
			return parse_fail(ps, 414, "request target too long");
		i++;
		/*
		 * The form is checked as each byte arrives, not only at the target's end: a wrong
		 * form shows in the first bytes and is reported rather than the length, and the
		 * reason a bad target gets does not depend on where a read cut the head ("GET f\n"
		 * read at once was "no HTTP version", read as "GET f" then "\n" a bad form; found
		 * by fuzz/fuzz-http.c). Past "https://", the longest scheme, the form is settled.
		 */
		if (i - start <= STRLEN("https://") &&
		    !target_form_ok(ps->p + start, i - start, false))
			return parse_fail(ps, 400, bad_form);
	}
	if (!target_form_ok(ps->p + start, i - start, i < ps->len))
		return parse_fail(ps, 400, bad_form);
	if (i == ps->len)
		return PARSE_INCOMPLETE;
	req->target = (const char *)ps->p + start;
	req->target_len = i - start;
	*pos = i + 1;
	return 0;
}

/*
 * HTTP-version, byte by byte so that "HTTP/2" is answered before the line ends: the HTTP/2
 * preface "PRI * HTTP/2.0\r\n\r\nSM..." must get its 505 without waiting for more.
 */
static int parse_version(struct parse *ps, size_t *pos, struct http_request *req)
{
	static const char prefix[] = "HTTP/";
	size_t i = *pos;
	uint8_t c;

	for (size_t k = 0; k < sizeof(prefix) - 1; k++, i++) {
		if (i == ps->len)
			return PARSE_INCOMPLETE;
		if (k == 0 && ps->p[i] == ' ')
			return parse_fail(ps, 400, "more than one space after the request target");
		if (ps->p[i] != (uint8_t)prefix[k])
			return parse_fail(ps, 400, "malformed HTTP version");
	}
	if (i == ps->len)
		return PARSE_INCOMPLETE;
	c = ps->p[i++];
	if (c >= '2' && c <= '9')
		return parse_fail(ps, 505, "HTTP version not supported");
	if (c != '1')
		return parse_fail(ps, 400, "malformed HTTP version");
	if (i == ps->len)
		return PARSE_INCOMPLETE;
	if (ps->p[i++] != '.')
		return parse_fail(ps, 400, "malformed HTTP version");
	if (i == ps->len)
		return PARSE_INCOMPLETE;
	c = ps->p[i++];
	if (c != '0' && c != '1')
		return parse_fail(ps, 400, "malformed HTTP version");
	req->minor_version = c - '0';
	*pos = i;
	return parse_eol(ps, pos, "malformed HTTP version");
}

/* Whether byte i of a header line may be read: 0, -2 (not received yet) or -1 (431). */
static int header_byte(struct parse *ps, size_t i)
{
	if (i >= ps->len)
		return PARSE_INCOMPLETE;
	if (i >= ps->hdr_end)
		return parse_fail(ps, 431, "header section too large");
	return 0;
}

/* One field line at *pos, which is known not to be the blank line ending the head. */
static int parse_header_line(struct parse *ps, size_t *pos, struct http_header *h)
{
	size_t i = *pos;
	size_t value_start;
	size_t value_end;
	bool seen_value = false;
	uint8_t c;
	int r;

	for (;;) {
		r = header_byte(ps, i);
		if (r < 0)
			return r;
		if (!is_tchar(ps->p[i]))
			break;
		i++;
	}
	c = ps->p[i];
	if (i == *pos) {
		if (is_ows(c))
			return parse_fail(ps, 400, "obsolete line folding in the request head");
		if (c == ':')
			return parse_fail(ps, 400, "empty header name");
		return parse_fail(ps, 400, "invalid byte in a header name");
	}
	if (c != ':') {
		if (is_ows(c))
			return parse_fail(ps, 400, "whitespace before the colon of a header");
		if (c == '\r' || c == '\n')
			return parse_fail(ps, 400, "header line without a colon");
		return parse_fail(ps, 400, "invalid byte in a header name");
	}
	h->name = (const char *)ps->p + *pos;
	h->name_len = i - *pos;
	i++;
	/* Both stay here for a value of only OWS: empty, pointing after the colon. */
	value_start = value_end = i;
	for (;;) {
		r = header_byte(ps, i);
		if (r < 0)
			return r;
		c = ps->p[i];
		if (c == '\n') {
			i++;
			break;
		}
		if (c == '\r') {
			r = header_byte(ps, i + 1);
			if (r < 0)
				return r;
			if (ps->p[i + 1] != '\n')
				return parse_fail(ps, 400, "bare CR in the request head");
			i += 2;
			break;
		}
		if (!is_value_byte(c))
			return parse_fail(ps, 400, "control byte in a header value");
		if (!is_ows(c)) {
			if (!seen_value)
				value_start = i;
			seen_value = true;
			value_end = i + 1;
		}
		i++;
	}
	h->value = (const char *)ps->p + value_start;
	h->value_len = value_end - value_start;
	*pos = i;
	return 0;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req, struct http_error *err)
{
	struct parse ps = { .p = (const uint8_t *)buf, .len = len, .err = err };
	size_t max_lines = MIN(lim->max_header_lines, (size_t)HTTP_MAX_HEADERS);
	size_t pos = 0;
	size_t nempty = 0;
	size_t lead;
	int r;

	req->nheaders = 0;
	r = parse_leading_empty(&ps, lim, max_lines, &pos, &nempty);
	if (r < 0)
		return r;
	lead = pos;
	r = parse_method(&ps, &pos, req);
	if (r < 0)
		return r;
	r = parse_target(&ps, lim, &pos, req);
	if (r < 0)
		return r;
	r = parse_version(&ps, &pos, req);
	if (r < 0)
		return r;

	/* The leading empty lines already used lead bytes of max_header (checked above). */
	ps.hdr_end = pos + (lim->max_header - lead);
	if (ps.hdr_end < pos)
		ps.hdr_end = SIZE_MAX;
	for (;;) {
		if (pos == len)
			return PARSE_INCOMPLETE;
		if (ps.p[pos] == '\r' || ps.p[pos] == '\n') {
			r = parse_eol(&ps, &pos, "bare CR in the request head");
			if (r < 0)
				return r;
			break;
		}
		if (req->nheaders + nempty >= max_lines)
			return parse_fail(&ps, 431, "too many header lines");
		r = parse_header_line(&ps, &pos, &req->headers[req->nheaders]);
		if (r < 0)
			return r;
		req->nheaders++;
	}
	/* Only reachable with limits far beyond PROTOCOL 7's, but the return is an int. */
	if (pos > INT_MAX)
		return parse_fail(&ps, 431, "request head too large");
	return (int)pos;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
	size_t name_len = strlen(name);

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (span_caseeq((const uint8_t *)h->name, h->name_len, name, name_len))
			return h;
	}
	return NULL;
}

bool http_value_has_token(const char *value, size_t len, const char *token)
{
	const uint8_t *v = (const uint8_t *)value;
	size_t token_len = strlen(token);
	size_t i = 0;

	if (token_len == 0)
		return false;
	while (i < len) {
		size_t start;
		size_t end;

		while (i < len && is_ows(v[i]))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && is_ows(v[end - 1]))
			end--;
		if (span_caseeq(v + start, end - start, token, token_len))
			return true;
		i++; /* past the comma, or past the end */
	}
	return false;
}

int http_parse_content_length(const char *value, size_t len, uint64_t *ret)
{
	uint64_t n = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = (uint8_t)value[i];
		uint64_t d;

		if (c < '0' || c > '9')
			return -EINVAL;
		d = (uint64_t)(c - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -EINVAL;
		n = n * 10 + d;
	}
	*ret = n;
	return 0;
}

/* struct http_chunked's state: where the next input byte belongs. */
enum {
	CHUNK_SIZE_FIRST, /* first hex digit of a chunk-size */
	CHUNK_SIZE,	  /* further hex digits */
	CHUNK_EXT_BWS,	  /* BWS after the size: only ';' or the line end may follow */
	CHUNK_EXT,	  /* inside chunk-ext, skipped up to the line end */
	CHUNK_SIZE_LF,	  /* CR seen at the end of the size line */
	CHUNK_DATA,	  /* c->remaining data bytes to go */
	CHUNK_DATA_CR,	  /* CRLF (or LF) after the data */
	CHUNK_DATA_LF,	  /* CR seen after the data */
	CHUNK_TRAILER,	  /* start of a trailer line, or of the final blank line */
	CHUNK_TRAILER_NAME,
	CHUNK_TRAILER_VALUE,
	CHUNK_TRAILER_LF, /* CR seen at the end of a trailer line */
	CHUNK_FINAL_LF,	  /* CR of the final blank line seen */
	CHUNK_DONE,
	CHUNK_ERROR,
};

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CHUNK_SIZE_FIRST;
}

/* Bytes of a trailer field line, line end included; the final blank line is not counted. */
static bool chunked_trailer_byte(struct http_chunked *c)
{
	c->trailer_len++;
	return c->trailer_len <= HTTP_CHUNK_TRAILER_MAX;
}

/* Bytes of a size line after the first digit, line end excluded. */
static bool chunked_ext_byte(struct http_chunked *c)
{
	c->ext_len++;
	return c->ext_len <= HTTP_CHUNK_EXT_MAX;
}

/* One byte of the trailer section (RFC 9112 7.1.2) and the final line: field lines as in a
 * header, checked and discarded. Returns false on malformed input. */
static bool chunked_trailer_step(struct http_chunked *c, uint8_t b)
{
	switch (c->state) {
	case CHUNK_TRAILER:
		if (b == '\r') {
			c->state = CHUNK_FINAL_LF;
			return true;
		}
		if (b == '\n') {
			c->state = CHUNK_DONE;
			return true;
		}
		if (!is_tchar(b))
			return false;
		c->state = CHUNK_TRAILER_NAME;
		return chunked_trailer_byte(c);
	case CHUNK_TRAILER_NAME:
		if (b == ':')
			c->state = CHUNK_TRAILER_VALUE;
		else if (!is_tchar(b))
			return false;
		return chunked_trailer_byte(c);
	case CHUNK_TRAILER_VALUE:
		if (b == '\r')
			c->state = CHUNK_TRAILER_LF;
		else if (b == '\n')
			c->state = CHUNK_TRAILER;
		else if (!is_value_byte(b))
			return false;
		return chunked_trailer_byte(c);
	case CHUNK_TRAILER_LF:
		if (b != '\n')
			return false;
		c->state = CHUNK_TRAILER;
		return chunked_trailer_byte(c);
	case CHUNK_FINAL_LF:
		if (b != '\n')
			return false;
		c->state = CHUNK_DONE;
		return true;
	default:
		return false;
	}
}

/*
 * One byte of framing (not chunk data): the state machine of RFC 9112 7.1 with our bounds.
 * Returns false on malformed input.
 */
static bool chunked_step(struct http_chunked *c, uint8_t b)
{
	switch (c->state) {
	case CHUNK_SIZE_FIRST:
		if (!is_hex(b))
			return false;
		c->remaining = hex_value(b);
		c->ext_len = 0;
		c->state = CHUNK_SIZE;
		return true;
	case CHUNK_SIZE:
		if (is_hex(b)) {
			if (c->remaining > (HTTP_CHUNK_SIZE_MAX - hex_value(b)) / 16)
				return false;
			c->remaining = c->remaining * 16 + hex_value(b);
			/* Leading zeros would otherwise make the size line endless. */
			return chunked_ext_byte(c);
		}
		if (is_ows(b)) {
			c->state = CHUNK_EXT_BWS;
			return chunked_ext_byte(c);
		}
		if (b == ';') {
			c->state = CHUNK_EXT;
			return chunked_ext_byte(c);
		}
		break;
	case CHUNK_EXT_BWS:
		if (is_ows(b))
			return chunked_ext_byte(c);
		if (b == ';') {
			c->state = CHUNK_EXT;
			return chunked_ext_byte(c);
		}
		break;
	case CHUNK_EXT:
		if (b != '\r' && b != '\n') {
			if (!is_value_byte(b))
				return false;
			return chunked_ext_byte(c);
		}
		break;
	case CHUNK_SIZE_LF:
		if (b != '\n')
			return false;
		c->state = c->remaining ? CHUNK_DATA : CHUNK_TRAILER;
		return true;
	case CHUNK_DATA_CR:
		/* CRLF only: a bare LF after chunk data is where a front proxy and we could
		 * disagree about the body's end (RFC 9112 7.1; 2.2 allows LF in the start line
		 * and fields only) */
		if (b != '\r')
			return false;
		c->state = CHUNK_DATA_LF;
		return true;
	case CHUNK_DATA_LF:
		if (b != '\n')
			return false;
		c->state = CHUNK_SIZE_FIRST;
		return true;
	case CHUNK_TRAILER:
	case CHUNK_TRAILER_NAME:
	case CHUNK_TRAILER_VALUE:
	case CHUNK_TRAILER_LF:
	case CHUNK_FINAL_LF:
		return chunked_trailer_step(c, b);
	default:
		return false;
	}

	/* The end of a size line, from CHUNK_SIZE, CHUNK_EXT_BWS or CHUNK_EXT: CRLF only, as
	 * after chunk data. */
	if (b == '\r') {
		c->state = CHUNK_SIZE_LF;
		return true;
	}
	return false;
}

ssize_t http_chunked_decode(struct http_chunked *c, char *buf, size_t *len)
{
	size_t src = 0;
	size_t dst = 0;
	size_t n = *len;
	ssize_t ret = PARSE_INCOMPLETE;

	if (c->state == CHUNK_ERROR) {
		*len = 0;
		return PARSE_ERROR;
	}
	while (src < n && c->state != CHUNK_DONE) {
		if (c->state == CHUNK_DATA) {
			size_t take = (size_t)MIN((uint64_t)(n - src), c->remaining);

			if (dst != src)
				memmove(buf + dst, buf + src, take);
			src += take;
			dst += take;
			c->remaining -= take;
			c->total += take;
			if (c->remaining == 0)
				c->state = CHUNK_DATA_CR;
			continue;
		}
		if (!chunked_step(c, (uint8_t)buf[src])) {
			c->state = CHUNK_ERROR;
			ret = PARSE_ERROR;
			goto out;
		}
		src++;
	}
	if (c->state == CHUNK_DONE) {
		ret = (ssize_t)(n - src);
		if (dst != src)
			memmove(buf + dst, buf + src, n - src);
	}
out:
	*len = dst;
	return ret;
}
