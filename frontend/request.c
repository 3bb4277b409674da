/* SPDX-License-Identifier: MIT */
/*
 * The request loop (PROTOCOL 1.2, 1.3): parse each request head as its bytes arrive and hand it
 * to its handler; answers leave in request order. HEAD (PROTOCOL 6) is answered here.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/frontend.h"
#include "frontend/sse.h"
#include "shm/topic.h"

#define HEAD_ANSWER_MAX 1024u /* a HEAD answer with every statistics header */

static bool is_method(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

/* Whether any header called name lists token (RFC 9110 5.3: several lines are one list). */
static bool headers_list(const struct http_request *req, const char *name, const char *token)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (h->name_len == n && strncasecmp(h->name, name, n) == 0 &&
		    http_value_has_token(h->value, h->value_len, token))
			return true;
	}
	return false;
}

/* Whether the whitespace-separated list holds word[0..len) exactly. */
static bool list_has(const char *list, const char *word, size_t len)
{
	for (const char *p = list; *p;) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, " \t");
		if (n && n == len && memcmp(p, word, len) == 0)
			return true;
		p += n;
	}
	return false;
}

/* Without an Authorization line: the peer's address, and no browser's page of another origin. */
static int address_trust(const struct conn *c, const struct http_request *req,
			 const char **ret_reason)
{
	const struct http_header *origin = http_find_header(req, "Origin");
	const struct http_header *site = http_find_header(req, "Sec-Fetch-Site");

	/* PROTOCOL 4.1 fixes this body byte for byte (compat) */
	*ret_reason = "Only trusted sources may send data!";
	if (!c->trusted)
		return 403;
	/* A browser names the page's origin; curl, the hook and other programs send neither
	 * header. A page on any site a user of this machine opens could otherwise publish
	 * through the user's trusted address, or read statistics (DNS rebinding). */
	*ret_reason = "publishes from web pages are refused unless their origin is in [Clients] "
		      "publishOrigins";
	if (origin)
		return list_has(c->fe->cfg.publish_origins, origin->value, origin->value_len) ? 0
											      : 403;
	if (site && !(site->value_len == 4 && strncasecmp(site->value, "none", 4) == 0) &&
	    !(site->value_len == 11 && strncasecmp(site->value, "same-origin", 11) == 0))
		return 403;
	return 0;
}

/* Whether known token i may publish to req's target (an invalid topic is no one's). */
static bool token_covers(const struct frontend *fe, size_t i, const struct http_request *req)
{
	static uint8_t topic[TOPIC_MAX_BYTES]; /* the target's stored form: not on the stack */
	long len = topic_publish_parse(req->target, req->target_len, topic, sizeof(topic));

	return len >= 0 && tokens_allows(&fe->tokens, i, topic, (size_t)len);
}

/*
 * With n Authorization lines, the last of them auth. The token's digest is looked up whatever
 * the line looks like (several lines, another scheme, a token of bad syntax), so a malformed
 * token costs what an unknown one does: the answer and its time are the same.
 */
static int token_trust(const struct conn *c, const struct http_request *req,
		       const struct http_header *auth, size_t n, const char **ret_reason)
{
	static const char bearer[] = "Bearer ";
	struct frontend *fe = c->fe;
	const char *tok = auth->value;
	size_t len = auth->value_len;
	bool well_formed = false;
	long i;

	if (len > sizeof(bearer) - 1 && strncasecmp(tok, bearer, sizeof(bearer) - 1) == 0) {
		tok += sizeof(bearer) - 1;
		len -= sizeof(bearer) - 1;
		while (len > 0 && *tok == ' ') {
			tok++;
			len--;
		}
		well_formed = n == 1 && tokens_syntax_ok(tok, len);
	}
	/* A worker looks on its timer. A one-connection process reads the file when the first
	 * token comes, not at start: a subscriber's process (inetd, Accept=yes) never needs it.
	 * It may live on as a keep-alive publisher, so it looks again now and then. */
	if (fe->single && fe->cfg.tokens_file[0] &&
	    (!fe->tokens.checked_us || io_now_mono_us() - fe->tokens.checked_us >= TOKENS_CHECK_US))
		(void)tokens_refresh(fe->cfg.tokens_file, &fe->tokens, io_now_mono_us());
	i = tokens_find(&fe->tokens, tok, MIN(len, (size_t)TOKEN_MAX));
	if (!well_formed || i < 0) {
		*ret_reason = "a valid bearer token is required: this one is unknown or malformed";
		return 401;
	}
	*ret_reason = "this token may not publish to this topic";
	return token_covers(fe, (size_t)i, req) ? 0 : 403;
}

int request_trust(const struct conn *c, const struct http_request *req, const char **ret_reason)
{
	const struct http_header *auth = NULL;
	size_t n = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (h->name_len == 13 && strncasecmp(h->name, "Authorization", 13) == 0) {
			auth = h;
			n++;
		}
	}
	/* a token that is present is checked, whatever the address */
	return auth ? token_trust(c, req, auth, n, ret_reason) : address_trust(c, req, ret_reason);
}

/* PROTOCOL 1.2: keep-alive unless a Connection line says close (any of them: RFC 9112 9.6
 * forbids serving what follows a close), or HTTP/1.0 without keep-alive. */
static bool wants_keep_alive(const struct http_request *req)
{
	if (headers_list(req, "Connection", "close"))
		return false;
	if (req->minor_version == 0)
		return headers_list(req, "Connection", "keep-alive");
	return true;
}

/*
 * Whether a request declares a body: any Transfer-Encoding, or a Content-Length other than 0.
 * GET and HEAD take none (RFC 9110 9.3.1, 9.3.2), and leaving one unread would make its bytes
 * the next request: a HEAD whose "body" is a POST would smuggle that POST past whatever proxy
 * framed it as one request. So such a request is refused (400) and its bytes never parsed.
 */
static bool declares_body(const struct http_request *req)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		uint64_t len;

		if (h->name_len == 17 && strncasecmp(h->name, "Transfer-Encoding", 17) == 0)
			return true;
		if (h->name_len == 14 && strncasecmp(h->name, "Content-Length", 14) == 0 &&
		    (http_parse_content_length(h->value, h->value_len, &len) < 0 || len != 0))
			return true;
	}
	return false;
}

/* HEAD (PROTOCOL 6): statistics for whoever may publish to its target (request_trust), a bare
 * health check for the rest, and 401 for a token that is unknown or malformed. */
static void handle_head(struct conn *c, const struct http_request *req)
{
	struct frontend *fe = c->fe;
	struct response_stats st = { 0 };
	const char *why;
	int status = request_trust(c, req, &why);
	bool trusted = status == 0;
	char buf[HEAD_ANSWER_MAX];
	size_t n;

	if (status == 401) {
		conn_fail(c, status, why);
		return;
	}
	if (trusted) {
		if (fanout_attach(fe) == 0) {
			const struct ring *r = &fe->ring;
			uint64_t now = io_now_real_us(), tail = ring_tail(r), head = ring_head(r);
			uint64_t start = atomic_load_explicit(&r->hdr->broker_start_us,
							      memory_order_relaxed);
			struct ring_rec rec;

			st.uptime_s = start && now > start ? (now - start) / 1000000u : 0;
			st.held = head - tail;
			st.bytes = atomic_load_explicit(&r->hdr->data_head, memory_order_relaxed) -
				   atomic_load_explicit(&r->hdr->data_tail, memory_order_relaxed);
			if (ring_rec_get(r, tail, &rec) == 0)
				st.oldest_s = rec.time_us / 1000000u;
		}
		if (fe->stats) {
			st.subscribers = ring_stats_subscribers(fe->stats);
			st.connections =
				atomic_load_explicit(&fe->stats->connections, memory_order_relaxed);
			st.received =
				atomic_load_explicit(&fe->stats->received, memory_order_relaxed);
			st.sent = atomic_load_explicit(&fe->stats->sent, memory_order_relaxed);
			st.cluster = atomic_load_explicit(&fe->stats->cluster,
							  memory_order_relaxed) != 0;
			st.cluster_lag =
				atomic_load_explicit(&fe->stats->cluster_lag, memory_order_relaxed);
		}
	}
	n = response_head(buf, sizeof(buf), trusted ? &st : NULL, c->keep_alive);
	if (!n) {
		conn_fail(c, 500, "response head too long");
		return;
	}
	if (conn_send(c, buf, n) && !c->keep_alive)
		conn_finish(c);
}

/*
 * RFC 9112 3.2: an HTTP/1.1 request without Host, or any request with several Host lines, is
 * 400. Every client of the original (curl, the hook, Python's urllib and requests, Node's
 * http, browsers, the Lua clients) sends one Host on HTTP/1.1; HTTP/1.0 needs none, so an old
 * hook speaking it is unaffected. Several lines may name several hosts, which a proxy in front
 * may read otherwise (README, "Decisions"). The reason, or NULL when the request is fine.
 */
static const char *host_problem(const struct http_request *req)
{
	size_t n = 0;

	for (size_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].name_len == 4 &&
		    strncasecmp(req->headers[i].name, "Host", 4) == 0)
			n++;
	if (n > 1)
		return "several Host headers";
	if (n == 0 && req->minor_version >= 1)
		return "an HTTP/1.1 request needs a Host header";
	return NULL;
}

/* One request whose head is c->in[0..hlen), parsed into req. */
static void handle_request(struct conn *c, const struct http_request *req, size_t hlen)
{
	bool get = is_method(req, "GET"), head = is_method(req, "HEAD");
	bool publish = is_method(req, "POST") || is_method(req, "PUT");
	const char *why;

	/* publishes waiting for answers: theirs go first (PROTOCOL 1.3); this request is parsed
	 * again once they are answered */
	if (!publish && publish_pending(c)) {
		publish_flush(c);
		return;
	}
	c->requests++;
	c->keep_alive = wants_keep_alive(req);
	timer_disarm(&c->timer);
	if ((get || head) && declares_body(req)) {
		conn_fail(c, 400, "a GET or HEAD request may not carry a body");
		return;
	}
	if ((get || head || publish) && (why = host_problem(req)) != NULL) {
		conn_fail(c, 400, why);
		return;
	}
	if (get && sse_negotiate(req) == SSE_KIND_PAGE) {
		stream_page(c, req); /* README 3.11: its EventSource may follow here */
		conn_consume(c, hlen);
	} else if (get) {
		stream_begin(c, req); /* the rest of the connection is the stream (PROTOCOL 1.3) */
	} else if (head) {
		handle_head(c, req);
		conn_consume(c, hlen);
	} else if (publish) {
		publish_begin(c, req, hlen);
		conn_consume(c, hlen);
	} else {
		conn_fail(c, 405, "method not allowed: use GET, HEAD, POST or PUT");
	}
}

static void header_timeout(struct loop *l, struct timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	(void)l;
	/* an idle keep-alive connection just ends; a started head is a 408 */
	if (c->in_len == 0 && c->requests > 0)
		conn_close(c, "idle keep-alive connection");
	else
		conn_fail(c, 408, "request header not complete in time");
}

void request_process(struct conn *c)
{
	struct frontend *fe = c->fe;
	const struct http_limits lim = {
		.max_target = fe->cfg.max_target,
		.max_header = fe->cfg.max_header,
		.max_header_lines = MIN(fe->cfg.max_header_lines, HTTP_MAX_HEADERS),
	};
	static struct http_request req; /* 3 KiB of header slots: not on the stack */

	while (c->state == CONN_HEAD || c->state == CONN_BODY) {
		struct http_error herr = { 0 };
		int hlen;

		if (c->state == CONN_HEAD && !timer_armed(&c->timer))
			timer_arm(&fe->loop, &c->timer, TIMER_HEADER, header_timeout);
		/* answers wait for the client to take them: read no further (EPOLLOUT resumes) */
		if (conn_backlogged(c))
			return;
		if (c->state == CONN_BODY) {
			publish_body(c);
			if (c->state == CONN_BODY)
				return; /* more body to come */
			continue;
		}
		if (c->in_len == 0)
			break;
		hlen = http_parse_request(c->in, c->in_len, &lim, &req, &herr);
		if (hlen == -2 && c->in_len < c->in_max)
			break;
		if (hlen == -2) {
			conn_fail(c, 431, "request header section too large");
			return;
		}
		if (hlen < 0) {
			conn_fail(c, herr.status ? herr.status : 400,
				  herr.reason ? herr.reason : "malformed request");
			return;
		}
		handle_request(c, &req, (size_t)hlen);
	}
	if (c->state != CONN_HEAD)
		return;
	/* nothing more to parse now: the batch leaves before we wait for the client */
	if (publish_pending(c)) {
		publish_flush(c);
		return;
	}
	if (c->read_closed) {
		if (c->in_len == 0)
			conn_close(c, "the client closed between requests");
		else
			conn_fail(c, 400, "connection closed in the middle of a request");
		return;
	}
	if (!timer_armed(&c->timer))
		timer_arm(&fe->loop, &c->timer, TIMER_HEADER, header_timeout);
}

bool request_start(struct conn *c)
{
	if (!conn_watch_start(c))
		return false;
	timer_arm(&c->fe->loop, &c->timer, TIMER_HEADER, header_timeout);
	return true;
}
