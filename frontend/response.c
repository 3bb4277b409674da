/* SPDX-License-Identifier: MIT */
/*
 * Every response head the frontend writes, in one place (as tipidee's responses.c and nginx's
 * status-line table): a handler says what to answer, never how a status line is spelled.
 * Each function writes into the caller's buffer and returns the length, or 0 when it did not
 * fit (every caller's buffer is sized for its longest answer, so 0 is a bug, answered 500).
 */
#include <stdio.h>
#include <string.h>

#include "frontend/cursor.h"
#include "frontend/frontend.h"

/* The live page's Content-Security-Policy (README 3.11): inline script and style only, and
 * connections back to us, so the page can load nothing from anywhere else. */
#define PAGE_CSP                                                                      \
	"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " \
	"connect-src 'self'; img-src data:"

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

static size_t fitted(int n, size_t cap)
{
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t response_error(char *buf, size_t cap, int status, const char *reason)
{
	/* 401: RFC 6750 3.1, a token was sent and is not valid */
	const char *extra = status == 401   ? "WWW-Authenticate: Bearer realm=\"gitpubsub\", "
					      "error=\"invalid_token\"\r\n"
			    : status == 405 ? "Allow: GET, HEAD, POST, PUT\r\n"
			    : status == 503 ? "Retry-After: 1\r\n"
					    : "";
	/* PROTOCOL 4.1 fixes the 403 body byte for byte (compat); the rest end in CRLF */
	bool bare = status == 403;

	return fitted(snprintf(buf, cap,
			       "HTTP/1.1 %d %s\r\nServer: " SERVER_NAME
			       "\r\nContent-Type: text/plain\r\n"
			       "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s%s",
			       status, http_status_text(status), strlen(reason) + (bare ? 0 : 2),
			       extra, reason, bare ? "" : "\r\n"),
		      cap);
}

/* PROTOCOL 4.5, README 3.8: the cursor names the ring the broker stored the message in. */
size_t response_published(char *buf, size_t cap, uint64_t time_us, uint64_t gen, uint64_t seq,
			  bool keep_alive)
{
	char cursor[CURSOR_MAX];

	(void)cursor_format(cursor, sizeof(cursor), gen, seq);
	return fitted(snprintf(buf, cap,
			       "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\nX-Timestamp: %llu\r\n"
			       "X-Cursor: %s\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
			       "%s\r\nMessage sent!\r\n",
			       (unsigned long long)(time_us / 1000000u), cursor,
			       keep_alive ? "" : "Connection: close\r\n"),
		      cap);
}

size_t response_continue(char *buf, size_t cap)
{
	return fitted(snprintf(buf, cap, "HTTP/1.1 100 Continue\r\n\r\n"), cap);
}

/* PROTOCOL 6: statistics for trusted peers (st), a bare health check for the rest (NULL). */
size_t response_head(char *buf, size_t cap, const struct response_stats *st, bool keep_alive)
{
	const char *close = keep_alive ? "" : "Connection: close\r\n";
	char lag[48] = ""; /* "X-Cluster-Lag: <20 digits>\r\n" */

	if (st && st->cluster)
		(void)snprintf(lag, sizeof(lag), "X-Cluster-Lag: %llu\r\n",
			       (unsigned long long)st->cluster_lag);
	if (!st)
		return fitted(snprintf(buf, cap,
				       "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME
				       "\r\nContent-Length: 0\r\n%s\r\n",
				       close),
			      cap);
	return fitted(
		snprintf(buf, cap,
			 "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\nContent-Length: 0\r\n"
			 "X-Uptime: %llu\r\nX-Connections: %llu\r\nX-Subscribers: %llu\r\n"
			 "X-Total-Connections: %llu\r\nX-Received: %llu\r\nX-Sent: %llu\r\n"
			 "X-Messages: %llu\r\nX-History-Bytes: %llu\r\n"
			 "X-Oldest-Message: %llu\r\n%s%s\r\n",
			 (unsigned long long)st->uptime_s, (unsigned long long)st->subscribers,
			 (unsigned long long)st->subscribers, (unsigned long long)st->connections,
			 (unsigned long long)st->received, (unsigned long long)st->sent,
			 (unsigned long long)st->held, (unsigned long long)st->bytes,
			 (unsigned long long)st->oldest_s, lag, close),
		cap);
}

/* PROTOCOL 3.1 and 3.6; README 3.10 (SSE) and 3.12 (Access-Control-Allow-Origin). */
size_t response_stream(char *buf, size_t cap, bool sse, bool chunked, const char *allow_origin)
{
	const char *acao = *allow_origin ? "Access-Control-Allow-Origin: " : "";
	const char *crlf = *allow_origin ? "\r\n" : "";
	const char *te = chunked ? "Transfer-Encoding: chunked\r\n" : "";

	if (sse)
		return fitted(
			snprintf(buf, cap,
				 "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n"
				 "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
				 "X-Accel-Buffering: no\r\n%s%s%s%s\r\n",
				 acao, allow_origin, crlf, te),
			cap);
	return fitted(snprintf(buf, cap,
			       "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n%s"
			       "Content-Type: application/x-gitpubsub\r\n"
			       "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n%s%s%s\r\n",
			       te, acao, allow_origin, crlf),
		      cap);
}

/* README 3.11: the live page's head; the page itself follows it. */
size_t response_page(char *buf, size_t cap, size_t page_len, const char *allow_origin,
		     bool keep_alive)
{
	return fitted(snprintf(buf, cap,
			       "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n"
			       "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
			       "Cache-Control: no-cache\r\nContent-Security-Policy: " PAGE_CSP
			       "\r\n"
			       "%s%s%s%s\r\n",
			       page_len, *allow_origin ? "Access-Control-Allow-Origin: " : "",
			       allow_origin, *allow_origin ? "\r\n" : "",
			       keep_alive ? "" : "Connection: close\r\n"),
		      cap);
}
