/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_HTTP_H
#define GPS_FRONTEND_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"

/*
 * An HTTP/1.x request-head parser in picohttpparser's shape: the caller owns the buffer, the
 * results point into it, and the return says how much was used. It knows the syntax of
 * RFC 9112 and the limits of PROTOCOL 7; what a request means is the frontend's business.
 */

#define HTTP_MAX_HEADERS 100 /* PROTOCOL 7.2: more header lines is a 431 */

struct http_limits {
	size_t max_target;	 /* request-target bytes; more is 414 (default 8 KiB) */
	size_t max_header;	 /* bytes of the header lines after the request line; more is 431 */
	size_t max_header_lines; /* header lines; more is 431; at most HTTP_MAX_HEADERS */
};

struct http_header {
	const char *name; /* token, as sent (compare case-insensitively) */
	size_t name_len;
	const char *value; /* without leading and trailing SP/HT */
	size_t value_len;
};

struct http_request {
	const char *method; /* token, case-sensitive */
	size_t method_len;
	const char *target; /* no SP, no control bytes */
	size_t target_len;
	int minor_version; /* HTTP/1.<minor_version>: 0 or 1 */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_HEADERS];
};

struct http_error {
	int status;	    /* 400, 414, 431 or 505 */
	const char *reason; /* one line for the response body, static storage */
};

/*
 * Parse the request head at buf[0..len). Lines end in CRLF or a bare LF (RFC 9112 2.2 lets a
 * recipient accept LF; a bare CR is an error). Empty lines before the request line are skipped
 * (RFC 9112 2.2).
 *
 * Returns the length of the head, blank line included (> 0), with *req filled; -2 if the head
 * is incomplete and no limit is crossed yet (read more and call again with the whole buffer);
 * -1 on a malformed head or a crossed limit, with *err filled. An error is reported as soon as
 * the bytes already show it: "\x16\x03" (TLS) fails at once, a target over max_target fails
 * before its end arrives.
 *
 * Errors: 400 malformed request line (not exactly one SP between method, target and version;
 * method not a token; control byte, SP or DEL in the target; target not starting with '/' or
 * "http://"/"https://" (absolute form), or "*"), malformed header line (no colon, space before
 * the colon, name not a token, obsolete line folding, bare CR, NUL or other control byte but HT
 * in a value), version not HTTP/1.0 or HTTP/1.1 (but 505 for HTTP/2 and later, e.g. the
 * HTTP/2 preface "PRI * HTTP/2.0"); 414 target longer than max_target; 431 header section
 * larger than max_header or with more than max_header_lines lines.
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
		       struct http_request *req, struct http_error *err);

/* The first header named name (case-insensitive), or NULL. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* Whether a comma-separated header value lists token (case-insensitive), e.g. "close" in
 * Connection: "keep-alive, Close". */
bool http_value_has_token(const char *value, size_t len, const char *token);

/* Parse a Content-Length value: 1*DIGIT, no sign, no space, no overflow past UINT64_MAX.
 * 0 or -EINVAL; *ret untouched on failure. */
_must_check_ int http_parse_content_length(const char *value, size_t len, uint64_t *ret);

/*
 * Chunked transfer coding (RFC 9112 7.1), decoded in place and incrementally like
 * picohttpparser's phr_decode_chunked: feed it each piece of input once, as it arrives.
 */
struct http_chunked {
	uint64_t remaining; /* data bytes left in the current chunk */
	uint64_t total;	    /* data bytes decoded so far */
	size_t ext_len;	    /* bytes of the current size line after its first digit */
	size_t trailer_len; /* bytes of trailer section seen */
	int state;	    /* internal */
};

#define HTTP_CHUNK_EXT_MAX 4096 /* chunk-extension bytes per size line; more is a 400 */

void http_chunked_init(struct http_chunked *c);

/*
 * Decode the next piece of a chunked body in place, as picohttpparser's phr_decode_chunked does.
 * Each call takes only bytes not given to an earlier call: buf[0..*len) on entry is new input.
 * On return buf[0..*len) holds the body data decoded from that input (chunk sizes, extensions,
 * CRLFs and trailers removed; never more bytes than came in). So a caller that collects the body
 * in one buffer does:
 *
 *	size_t have = 0;	(body bytes decoded so far, at body[0..have))
 *	http_chunked_init(&c);
 *	loop: n = read(fd, body + have, size - have);
 *	      r = http_chunked_decode(&c, body + have, &n);
 *	      have += n;
 *	      r == -2: loop (check have, or c.total, against the body limit first);
 *	      r == -1: refuse the request (400) and close;
 *	      r >= 0:  done; body[0..have) is the body and body[have..have + r) are the r bytes
 *	               received after it (a pipelined request), moved there by the call.
 *
 * Returns:
 *   >= 0  the body is complete (last chunk, trailers and final CRLF seen); the value is how
 *         many input bytes followed it, now at buf + *len. Further calls decode nothing and give
 *         back all their input as left over;
 *   -2    more input is needed; all of it was consumed;
 *   -1    malformed: a chunk size that is not hex or is 2^63 or more, a size line (digits after
 *         the first, chunk-extension) over HTTP_CHUNK_EXT_MAX bytes, something other than CRLF
 *         or LF after chunk data, a trailer section over 16 KiB or with a malformed field line,
 *         a bare CR or a control byte outside the data. buf[0..*len) holds what was decoded
 *         before the error. Further calls return -1 with *len = 0.
 * Size lines and the end of chunk data take CRLF only (RFC 9112 7.1; a bare LF there is where a
 * proxy in front and we could disagree about where the body ends); trailer field lines and the
 * final line may end in a bare LF, as header fields may. Trailer fields are checked and
 * discarded. c->total counts
 * the data bytes decoded so far.
 */
ssize_t http_chunked_decode(struct http_chunked *c, char *buf, size_t *len);

#endif
