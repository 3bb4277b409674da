/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_SSE_H
#define GPS_FRONTEND_SSE_H

/*
 * Browsers (README "Browsers and exact resume", 3.8-3.12): which answer a GET gets, from its
 * Accept headers (3.11). Pure functions over the parsed request, for the unit tests; the stream
 * and the page themselves are served by stream.c.
 */

#include <stddef.h>
#include <stdint.h>

#include "frontend/http.h"

/* What a GET asked for. */
enum sse_kind {
	SSE_KIND_STREAM, /* the chunked stream of PROTOCOL 3 (or 3.6's lines): any other client */
	SSE_KIND_EVENTS, /* Server-Sent Events (3.10): text/event-stream, q > 0, >= text/html */
	SSE_KIND_PAGE,	 /* the live page (3.11): text/html, q > 0, above text/event-stream */
};

/* Weights are RFC 9110 qvalues in thousandths, 0 to 1000; SSE_Q_ABSENT when not listed. */
#define SSE_Q_ABSENT (-1)
#define SSE_Q_MAX    1000

struct sse_accept {
	int html;   /* highest weight of a text/html entry */
	int events; /* highest weight of a text/event-stream entry */
};

/* Start a scan: both types absent. */
void sse_accept_init(struct sse_accept *a);

/*
 * Add one Accept header value (value[0..len), a comma-separated list of media ranges with
 * parameters) to a: for each entry naming text/html or text/event-stream exactly (case-
 * insensitive; wildcard ranges name neither, so curl's default gets the stream), raise the
 * type's weight to the entry's q (default 1). An entry whose q is malformed (not 0, 1, or 0. /
 * 1. with up to three digits, at most 1) is ignored, as if it were not listed.
 */
void sse_accept_scan(struct sse_accept *a, const char *value, size_t len);

/* The answer for weights a: events when text/event-stream has q > 0 and is not below
 * text/html; the page when text/html has q > 0 and is above text/event-stream; else the
 * stream. */
enum sse_kind sse_accept_choose(const struct sse_accept *a);

/* sse_accept_scan() over every Accept header of req, then sse_accept_choose(). */
enum sse_kind sse_negotiate(const struct http_request *req);

/* The live page, frontend/page.html, embedded by frontend/page.S: sse_page_len bytes. */
extern const char sse_page[];
extern const uint64_t sse_page_len;

#endif
