/* SPDX-License-Identifier: MIT */
/* Content negotiation for browsers: the stream, Server-Sent Events, or the live page. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "frontend/sse.h"

/* Optional whitespace of RFC 9110 5.6.3. */
static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* s[0..*len) without leading and trailing whitespace; returns the new start. */
static const char *trim(const char *s, size_t *len)
{
	while (*len && is_ows(s[0])) {
		s++;
		(*len)--;
	}
	while (*len && is_ows(s[*len - 1]))
		(*len)--;
	return s;
}

static bool token_is(const char *s, size_t len, const char *want)
{
	return len == strlen(want) && strncasecmp(s, want, len) == 0;
}

/*
 * A qvalue (RFC 9110 12.4.2): "0" or "1", optionally followed by '.' and up to three digits,
 * never above 1. Thousandths, or -1 when malformed.
 */
static int parse_q(const char *s, size_t len)
{
	int q, scale = 100;
	size_t i;

	if (len == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	q = (s[0] - '0') * SSE_Q_MAX;
	if (len == 1)
		return q;
	if (s[1] != '.' || len > 5)
		return -1;
	for (i = 2; i < len; i++, scale /= 10) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		q += (s[i] - '0') * scale;
	}
	return q > SSE_Q_MAX ? -1 : q;
}

/* One media range with its parameters, e.g. "text/html;level=1; q=0.8": the type's weight, or
 * -1 when its q is malformed. */
static int entry_weight(const char *params, size_t len)
{
	int q = SSE_Q_MAX;

	while (len) {
		const char *semi = memchr(params, ';', len);
		size_t plen = semi ? (size_t)(semi - params) : len;
		const char *p = trim(params, &plen);

		if (plen >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			q = parse_q(p + 2, plen - 2);
			if (q < 0)
				return -1;
		}
		if (!semi)
			break;
		len -= (size_t)(semi - params) + 1;
		params = semi + 1;
	}
	return q;
}

void sse_accept_init(struct sse_accept *a)
{
	a->html = SSE_Q_ABSENT;
	a->events = SSE_Q_ABSENT;
}

void sse_accept_scan(struct sse_accept *a, const char *value, size_t len)
{
	while (len) {
		const char *comma = memchr(value, ',', len);
		size_t elen = comma ? (size_t)(comma - value) : len;
		const char *semi = memchr(value, ';', elen);
		size_t tlen = semi ? (size_t)(semi - value) : elen;
		const char *type = trim(value, &tlen);
		int *slot = token_is(type, tlen, "text/html")		? &a->html
			    : token_is(type, tlen, "text/event-stream") ? &a->events
									: NULL;

		if (slot) {
			int q = semi ? entry_weight(semi + 1, elen - (size_t)(semi - value) - 1)
				     : SSE_Q_MAX;

			if (q > *slot)
				*slot = q;
		}
		if (!comma)
			break;
		len -= elen + 1;
		value = comma + 1;
	}
}

enum sse_kind sse_accept_choose(const struct sse_accept *a)
{
	/* a tie goes to the events: EventSource asks for nothing else, a browser's navigation
	 * lists text/html first and never text/event-stream */
	if (a->events > 0 && a->events >= a->html)
		return SSE_KIND_EVENTS;
	if (a->html > 0)
		return SSE_KIND_PAGE;
	return SSE_KIND_STREAM;
}

enum sse_kind sse_negotiate(const struct http_request *req)
{
	struct sse_accept a;

	sse_accept_init(&a);
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (token_is(h->name, h->name_len, "Accept"))
			sse_accept_scan(&a, h->value, h->value_len);
	}
	return sse_accept_choose(&a);
}
