/* SPDX-License-Identifier: MIT */
/*
 * GET (PROTOCOL 3): the subscriber's stream, read straight from the ring; and for browsers
 * (README 3.8-3.12) the same stream as Server-Sent Events, resumption by cursor, and the live
 * page that opens it.
 *
 * The loop: take everything between our position and head that matches the topic, frame it
 * into one buffer and send it with one write; then sleep on the ring's futex until a publish or
 * the next keepalive. Nothing is allocated per message: the output buffer is sized once from
 * the body limit, which bounds every message. The three formats differ only in framing: the
 * chunked stream makes each message a chunk (3.2), HTTP/1.0 a bare line (3.6), SSE an event
 * with the message's cursor as its id, a whole batch being one chunk (3.10).
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/cursor.h"
#include "frontend/frontend.h"
#include "frontend/sse.h"
#include "shm/topic.h"

#define BATCH_BYTES	   ((size_t)256 * 1024u) /* a batch beyond one maximal message */
/*
 * The most framing one message gets: SSE's "id: <cursor>\ndata: " and "\n\n" (4 + 37 + 7 + 2
 * bytes) and the CRLF that closes an SSE chunk after it. A chunk of the stream needs 14.
 */
#define FRAME_OVERHEAD	   64u
#define CHUNK_HEAD_ROOM	   24u /* in front of the batch: an SSE chunk's size line (16 hex + CRLF) */
#define ATTACH_RETRY_MS	   200u /* ring replaced (--recreate): re-attach pace */
/* What an idle stream keeps of its output buffer: a few batches of everyday messages. Beyond
 * it, pages a burst touched (a replay, a lapped reader catching up) go back to the kernel. */
#define OUT_KEEP_BYTES	   ((size_t)16 * 1024u)
#define CLIENT_DRAIN_BYTES 512u /* check_client()'s read size */
#define TOPIC_SHORT_BYTES  256u /* topics up to this are copied into struct stream */
/*
 * SSE "retry:" (README 3.10): how long a browser waits before it reconnects. Two seconds: a
 * frontend killed or restarted is back well within it, and a thousand browsers reconnecting after
 * a blip do not come back all in the same instant as they would with 0.
 */
#define SSE_RETRY_MS	   2000u
/* A response head: the fixed lines plus [Stream] allowOrigin (less than 256 bytes). */
#define HEAD_MAX	   1024u
/* The live page's Content-Security-Policy (README 3.11): inline script and style only, and
 * connections back to us, so the page can load nothing from anywhere else. */
#define PAGE_CSP                                                                      \
	"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " \
	"connect-src 'self'; img-src data:"

enum stream_format {
	STREAM_CHUNKED, /* PROTOCOL 3.2: a chunk per message */
	STREAM_LINES,	/* PROTOCOL 3.6 (HTTP/1.0): a line per message, close-delimited */
	STREAM_SSE,	/* README 3.10: an event per message; chunks of batches on HTTP/1.1 */
};

/* Where a stream starts (PROTOCOL 3.5, README 3.9). */
struct resume {
	enum { RESUME_LIVE, RESUME_TIME, RESUME_CURSOR } kind;
	uint64_t since;	   /* RESUME_TIME: X-Fetch-Since in us */
	struct cursor cur; /* RESUME_CURSOR */
};

struct stream {
	struct conn *c;
	struct ring r;
	struct topic_pattern *pat;
	enum stream_format fmt;
	bool chunked;  /* HTTP/1.1: chunked transfer coding; HTTP/1.0: close-delimited */
	uint64_t next; /* seq of the next message to look at */
	uint8_t *out;  /* framed bytes waiting for the next write; CHUNK_HEAD_ROOM bytes before */
	size_t out_len, out_cap;
	size_t out_touched;  /* bytes of the output mapping written since the last trim_out() */
	bool gap_due;	     /* the start point calls for a gap notice (PROTOCOL 3.4) */
	uint64_t gap_missed; /* ... saying this many messages were missed */
	uint8_t *topic;	     /* a message's topic, copied out of the ring */
	/* ... or here when it is short, the usual case: these bytes share a page the process
	 * touches anyway, where s->topic (TOPIC_MAX_BYTES) would cost a page of its own */
	uint8_t topic_short[TOPIC_SHORT_BYTES];
	uint64_t next_keepalive_us; /* monotonic */
	uint64_t sent;		    /* bytes handed to the kernel */
	uint64_t acked;		    /* bytes the client has taken: sent - unsent queue */
	uint64_t acked_at_us;	    /* when acked last moved (monotonic) */
};

static struct ring_stats *volatile counted_stats; /* for the SIGTERM handler */

static void leave(int sig)
{
	(void)sig;
	if (counted_stats)
		atomic_fetch_sub_explicit(&counted_stats->subscribers, 1, memory_order_relaxed);
	_exit(0);
}

_noreturn_ static void stream_end(struct stream *s, const char *why)
{
	log_debug("%s: stream ended: %s", s->c->peer, why);
	if (counted_stats) {
		atomic_fetch_sub_explicit(&counted_stats->subscribers, 1, memory_order_relaxed);
		counted_stats = NULL;
	}
	(void)close(s->c->fd);
	exit(0);
}

static size_t put_hex(uint8_t *p, size_t v);

static void flush(struct stream *s)
{
	uint8_t *p = s->out;
	size_t n = s->out_len;
	int err;

	if (!n)
		return;
	if (s->fmt == STREAM_SSE && s->chunked) {
		/* README 3.10: the whole batch is one chunk; its size line goes in the room left
		 * in front of it, and frame_begin() left room for the CRLF after it */
		uint8_t size[CHUNK_HEAD_ROOM];
		size_t h = put_hex(size, n);

		size[h++] = '\r';
		size[h++] = '\n';
		p -= h;
		memcpy(p, size, h);
		p[h + n] = '\r';
		p[h + n + 1] = '\n';
		n += h + 2;
	}
	/* the end of what this batch wrote, from the start of the mapping (see trim_out) */
	s->out_touched = MAX(s->out_touched, CHUNK_HEAD_ROOM + (size_t)(p + n - s->out));
	err = conn_send(s->c, p, n);
	if (err == 0)
		s->sent += n;
	if (err == -EAGAIN)
		stream_end(s, "send timeout: the client reads nothing");
	if (err < 0)
		stream_end(s, "the client left");
	s->out_len = 0;
}

/*
 * Before sleeping: give back the output pages beyond OUT_KEEP_BYTES that a burst touched, so a
 * subscriber that once replayed a lot does not hold a batch of memory while idle (issue 5). One
 * madvise per burst, none in steady traffic.
 */
static void trim_out(struct stream *s)
{
	uint8_t *base = s->out - CHUNK_HEAD_ROOM; /* the mapping's start: page-aligned */

	if (s->out_touched <= OUT_KEEP_BYTES)
		return;
	frontend_release(base + OUT_KEEP_BYTES, s->out_touched - OUT_KEEP_BYTES);
	s->out_touched = 0;
}

/* Reserve room for a frame of n payload bytes; flushes first if the batch is full. */
static uint8_t *frame_begin(struct stream *s, size_t n)
{
	/* One write per BATCH_BYTES at most: a batch that stays in the cache between our copy and
	 * the kernel's is faster to send than one filling the whole buffer (issue 5, replay). An
	 * empty batch takes any message: out_cap has room for a maximal one beyond BATCH_BYTES. */
	if (s->out_len && s->out_len + n + FRAME_OVERHEAD > BATCH_BYTES)
		flush(s);
	return s->out + s->out_len;
}

/* Lowercase hex of v at p, no leading zeros; returns its length (1 to 16). A chunk size per
 * message: snprintf would cost more than the rest of the framing. */
static size_t put_hex(uint8_t *p, size_t v)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 1;

	for (size_t t = v >> 4; t; t >>= 4)
		n++;
	for (size_t i = n; i-- > 0; v >>= 4)
		p[i] = (uint8_t)digits[v & 15u];
	return n;
}

/* Write the frame head for message seq, a payload of n bytes, at p; returns its length. */
static size_t frame_head(const struct stream *s, uint8_t *p, size_t n, uint64_t seq)
{
	size_t h;

	switch (s->fmt) {
	case STREAM_CHUNKED:
		h = put_hex(p, n + 2);
		p[h] = '\r';
		p[h + 1] = '\n';
		return h + 2;
	case STREAM_LINES:
		break;
	case STREAM_SSE:
		memcpy(p, "id: ", STRLEN("id: "));
		h = STRLEN("id: ");
		h += cursor_format((char *)p + h, CURSOR_MAX, s->r.generation, seq);
		memcpy(p + h, "\ndata: ", STRLEN("\ndata: "));
		return h + STRLEN("\ndata: ");
	}
	return 0;
}

static size_t frame_tail(const struct stream *s, uint8_t *p)
{
	switch (s->fmt) {
	case STREAM_CHUNKED:
		memcpy(p, "\r\n\r\n", STRLEN("\r\n\r\n"));
		return STRLEN("\r\n\r\n");
	case STREAM_LINES:
		break;
	case STREAM_SSE:
		memcpy(p, "\n\n", STRLEN("\n\n"));
		return STRLEN("\n\n");
	}
	memcpy(p, "\r\n", STRLEN("\r\n"));
	return STRLEN("\r\n");
}

/* Append a keepalive or gap notice: text[0..n) as a message of the chunked stream or the lines,
 * or for SSE event[0..event_len), which the caller built as it goes on the wire. */
static void emit_notice(struct stream *s, const char *text, size_t n, const char *event,
			size_t event_len)
{
	uint8_t *p;
	size_t h;

	if (s->fmt == STREAM_SSE) {
		p = frame_begin(s, event_len);
		memcpy(p, event, event_len);
		s->out_len += event_len;
		return;
	}
	if (!text)
		return; /* an SSE-only notice (the id block) */
	p = frame_begin(s, n);
	h = frame_head(s, p, n, 0);
	memcpy(p + h, text, n);
	s->out_len += h + n + frame_tail(s, p + h + n);
}

static void fmt_time(char *buf, size_t len, uint64_t us)
{
	(void)snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

/* A resume time that is valid right now (PROTOCOL 3.3): nothing unsent is older. */
static uint64_t resume_time(const struct stream *s)
{
	uint64_t t, head;

	if (ring_keepalive_time(&s->r, &t, &head) < 0)
		t = atomic_load_explicit(&s->r.hdr->last_time_us, memory_order_relaxed) + 1;
	return t;
}

/* PROTOCOL 3.4: one notice, then the stream goes on at the oldest message still held. */
static void emit_gap(struct stream *s, uint64_t missed, uint64_t resume_seq)
{
	struct ring_rec rec;
	char text[160], event[192], ts[32];
	int n, e;

	if (ring_rec_get(&s->r, resume_seq, &rec) == 0)
		fmt_time(ts, sizeof(ts), rec.time_us);
	else
		fmt_time(ts, sizeof(ts), resume_time(s));
	n = snprintf(text, sizeof(text), "{\"gap\": {\"missed\": %" PRIu64 ", \"resume\": %s}}",
		     missed, ts);
	e = snprintf(event, sizeof(event), "event: gap\ndata: %s\n\n", text);
	emit_notice(s, text, (size_t)n, event, (size_t)e);
	log_info("%s: gap notice, %" PRIu64 " messages missed", s->c->peer, missed);
}

/* The reader finds its seq gone: jump to the tail and say what was missed. */
static void lapped(struct stream *s)
{
	uint64_t tail = ring_tail(&s->r);

	if (tail <= s->next)
		return; /* a torn entry that was not ours after all: look again */
	emit_gap(s, tail - s->next, tail);
	s->next = tail;
}

/* Send everything between s->next and head that matches. Returns the head reached. */
static uint64_t drain(struct stream *s)
{
	uint64_t head = ring_head(&s->r);

	while (s->next < head) {
		struct ring_rec rec;
		uint8_t *p, *topic;
		size_t h, mark;
		int err = ring_rec_get(&s->r, s->next, &rec);

		if (err == -EAGAIN)
			break;
		if (err < 0) {
			lapped(s);
			continue;
		}
		topic = rec.topic_len <= sizeof(s->topic_short) ? s->topic_short : s->topic;
		ring_copy_from(topic, rec.topic, rec.topic_len);
		if (!ring_rec_valid(&s->r, &rec)) {
			lapped(s);
			continue;
		}
		if (!topic_match(s->pat, topic, rec.topic_len)) {
			s->next++;
			continue;
		}
		/* copy the payload into its frame, then make sure it was whole (seqlock) */
		p = frame_begin(s, rec.payload_len);
		mark = s->out_len;
		h = frame_head(s, p, rec.payload_len, s->next);
		ring_copy_from(p + h, rec.payload, rec.payload_len);
		if (!ring_rec_valid(&s->r, &rec)) {
			s->out_len = mark;
			lapped(s);
			continue;
		}
		s->out_len += h + rec.payload_len + frame_tail(s, p + h + rec.payload_len);
		s->next++;
	}
	return head;
}

static void keepalive(struct stream *s)
{
	uint64_t t, head;
	char text[64], event[128], ts[32], cur[CURSOR_MAX];
	int n, e;

	/* every message below the resume time's head must go out first */
	if (ring_keepalive_time(&s->r, &t, &head) < 0)
		return; /* the broker keeps stamping: next tick */
	while (s->next < head)
		(void)drain(s);
	fmt_time(ts, sizeof(ts), t);
	n = snprintf(text, sizeof(text), "{\"stillalive\": %s}", ts);
	/*
	 * README 3.10: a comment, which EventSource skips and proxies see as traffic, then the id
	 * of the last message looked at (any topic): the browser's lastEventId moves on while its
	 * topic is quiet, so a reconnect resumes here, not behind messages evicted since.
	 */
	(void)cursor_format(cur, sizeof(cur), s->r.generation, s->next ? s->next - 1 : 0);
	e = snprintf(event, sizeof(event), ": stillalive %s\nid: %s\n\n", ts, cur);
	emit_notice(s, text, (size_t)n, event, (size_t)e);
}

/*
 * PROTOCOL 3.7: a client that takes no bytes for the send timeout is dropped. SO_SNDTIMEO alone
 * does not see it: small keepalive writes still fit in the send buffer. So watch what the
 * client actually took: sent minus the kernel's unsent queue (SIOCOUTQ).
 */
static void check_progress(struct stream *s, uint64_t now)
{
	int outq = 0;
	uint64_t acked;

	if (ioctl(s->c->fd, SIOCOUTQ, &outq) < 0 || outq < 0)
		return;
	acked = s->sent - MIN((uint64_t)outq, s->sent);
	if (outq == 0 || acked != s->acked) {
		s->acked = acked;
		s->acked_at_us = now;
		return;
	}
	if (now - s->acked_at_us >= (uint64_t)s->c->cfg.send_timeout_ms * 1000u)
		stream_end(s, "send timeout: the client takes no bytes");
}

/* PROTOCOL 3.7: a departed client shows up as end of input; what it sends is dropped. */
static void check_client(struct stream *s)
{
	/* What a subscriber sends is dropped, and it normally sends nothing: a small buffer keeps
	 * this frame below a page, which stack-clash probing would otherwise touch (issue 5). */
	char buf[CLIENT_DRAIN_BYTES];

	for (;;) {
		ssize_t n = recv(s->c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			stream_end(s, "the client closed the connection");
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			stream_end(s, "the connection failed");
		}
		if (s->c->stats)
			ring_stats_add(s->c->stats, &s->c->stats->received, (uint64_t)n);
	}
}

/* X-Fetch-Since (PROTOCOL 3.5): plain decimal, optional fraction, rounded up to the
 * microsecond (times are whole microseconds: t >= v iff t >= ceil(v)). Huge values saturate
 * (the future replays nothing). 0 or -EINVAL. */
static int parse_since(const char *v, size_t len, uint64_t *ret)
{
	uint64_t sec = 0, frac = 0;
	size_t i = 0, digits = 0;
	bool more = false, sat = false;

	while (i < len && v[i] >= '0' && v[i] <= '9') {
		if (sec > (UINT64_MAX / 1000000u - 9) / 10)
			sat = true;
		else
			sec = sec * 10 + (uint64_t)(v[i] - '0');
		i++;
		digits++;
	}
	if (digits == 0)
		return -EINVAL;
	if (i < len && v[i] == '.') {
		size_t fd = 0;
		i++;
		while (i < len && v[i] >= '0' && v[i] <= '9') {
			if (fd < 6)
				frac = frac * 10 + (uint64_t)(v[i] - '0');
			else if (v[i] != '0')
				more = true;
			fd++;
			i++;
		}
		if (fd == 0)
			return -EINVAL;
		for (; fd < 6; fd++)
			frac *= 10;
	}
	if (i != len)
		return -EINVAL;
	*ret = sat ? UINT64_MAX : sec * 1000000u + frac + (more ? 1 : 0);
	return 0;
}

/*
 * Where the stream starts: the live head, the replay point of X-Fetch-Since, or the message after
 * a cursor (README 3.9). Sets s->next, and s->gap_due and s->gap_missed when the start calls for
 * a gap notice (PROTOCOL 3.4), which the caller sends once the stream's preamble is out.
 */
static void start_position(struct stream *s, const struct resume *rs)
{
	uint64_t first, lo, tail, head, evicted;

	s->gap_due = false;
	switch (rs->kind) {
	case RESUME_LIVE:
		s->next = ring_head(&s->r);
		return;
	case RESUME_CURSOR:
		/* tail first: head only grows, so the head read after it is not below it */
		tail = ring_tail(&s->r);
		head = ring_head(&s->r);
		s->gap_due = cursor_start(&rs->cur, s->r.generation, tail, head, &s->next,
					  &s->gap_missed);
		return;
	case RESUME_TIME:
		break;
	}
	while (ring_find_time(&s->r, rs->since, &first, &lo) < 0)
		; /* only under a writer that laps the index during the search */
	tail = ring_tail(&s->r);
	evicted = atomic_load_explicit(&s->r.hdr->evicted_time_us, memory_order_relaxed);
	s->next = MAX(first, tail);
	/* PROTOCOL 3.4: messages at or after 'since' are gone: say how many we know of */
	if (evicted && evicted >= rs->since) {
		s->gap_due = true;
		s->gap_missed = first < tail ? tail - first : 1;
	}
}

/*
 * Every header called name holds a cursor, all the same one (1, *ret set), or there is none
 * (0). A header that is not a cursor is a 400 (README 3.9); so is an empty one, unless
 * empty_absent: a browser sends Last-Event-ID only with a value, other clients may send it
 * empty to mean "no id yet".
 */
static int header_cursor(struct conn *c, const struct http_request *req, const char *name,
			 bool empty_absent, struct cursor *ret)
{
	size_t nlen = strlen(name);
	bool found = false;
	char why[128];

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		struct cursor cur;

		if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0)
			continue;
		if (h->value_len == 0 && empty_absent)
			continue;
		if (cursor_parse(h->value, h->value_len, &cur) < 0) {
			(void)snprintf(why, sizeof(why), "%s is not a cursor", name);
			conn_fail(c, 400, why);
		}
		if (found && (cur.gen != ret->gen || cur.seq != ret->seq)) {
			(void)snprintf(why, sizeof(why), "conflicting %s headers", name);
			conn_fail(c, 400, why);
		}
		found = true;
		*ret = cur;
	}
	return found;
}

/*
 * Where the request asks its stream to start. The most exact request wins: X-Fetch-Since-Cursor,
 * then Last-Event-ID (a reconnecting EventSource: newer than its URL), then ?lastEventId= in the
 * query, then X-Fetch-Since (PROTOCOL 3.5). Each one present must be well-formed (400).
 */
static void parse_resume(struct conn *c, const struct http_request *req, struct resume *rs)
{
	char qval[CURSOR_MAX + 1];
	struct cursor cur;
	size_t qlen = 0;
	int q;

	rs->kind = RESUME_LIVE;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		uint64_t v;

		if (h->name_len != 13 || strncasecmp(h->name, "X-Fetch-Since", 13) != 0)
			continue;
		if (parse_since(h->value, h->value_len, &v) < 0)
			conn_fail(c, 400, "X-Fetch-Since must be a plain decimal unix time");
		if (rs->kind == RESUME_TIME && v != rs->since)
			conn_fail(c, 400, "conflicting X-Fetch-Since headers");
		rs->kind = RESUME_TIME;
		rs->since = v;
	}
	q = cursor_query_value(req->target, req->target_len, "lastEventId", qval, sizeof(qval),
			       &qlen);
	if (q < 0 || (q > 0 && qlen > 0 && cursor_parse(qval, qlen, &cur) < 0))
		conn_fail(c, 400, "lastEventId is not a cursor");
	if (q > 0 && qlen > 0) {
		rs->kind = RESUME_CURSOR;
		rs->cur = cur;
	}
	if (header_cursor(c, req, "Last-Event-ID", true, &cur) > 0) {
		rs->kind = RESUME_CURSOR;
		rs->cur = cur;
	}
	if (header_cursor(c, req, "X-Fetch-Since-Cursor", false, &cur) > 0) {
		rs->kind = RESUME_CURSOR;
		rs->cur = cur;
	}
}

/* The response head of the stream into buf (HEAD_MAX bytes); its length. */
static size_t stream_head(const struct stream *s, char *buf)
{
	const char *origin = s->c->cfg.allow_origin;
	const char *acao = *origin ? "Access-Control-Allow-Origin: " : "";
	const char *crlf = *origin ? "\r\n" : "";
	int n;

	if (s->fmt == STREAM_SSE)
		n = snprintf(buf, HEAD_MAX,
			     "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n"
			     "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
			     "X-Accel-Buffering: no\r\n%s%s%s%s\r\n",
			     acao, origin, crlf,
			     s->chunked ? "Transfer-Encoding: chunked\r\n" : "");
	else
		n = snprintf(buf, HEAD_MAX,
			     "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n%s"
			     "Content-Type: application/x-gitpubsub\r\n"
			     "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n%s%s%s\r\n",
			     s->chunked ? "Transfer-Encoding: chunked\r\n" : "", acao, origin,
			     crlf);
	return n > 0 ? MIN((size_t)n, HEAD_MAX - 1) : 0;
}

/*
 * README 3.10: an id-only block naming the message before s->next, so a browser that got no
 * message since still resumes exactly from here; with the reconnection delay first at the start
 * of the stream. Also sent when the ring was replaced, whose cursors are of another generation.
 */
static void sse_id_block(struct stream *s, bool with_retry)
{
	char text[64], cur[CURSOR_MAX];
	int n;

	(void)cursor_format(cur, sizeof(cur), s->r.generation, s->next ? s->next - 1 : 0);
	if (with_retry)
		n = snprintf(text, sizeof(text), "retry: %u\nid: %s\n\n", SSE_RETRY_MS, cur);
	else
		n = snprintf(text, sizeof(text), "id: %s\n\n", cur);
	emit_notice(s, NULL, 0, text, (size_t)n);
}

static int attach_ring(struct conn *c, struct ring *r)
{
	int err = ring_attach(c->ring_name, r);

	if (err < 0)
		log_warning("%s: unable to attach ring '%s': %s", c->peer, c->ring_name,
			    strerror(-err));
	return err;
}

bool stream_page_handle(struct conn *c, const struct http_request *req, bool keep_alive)
{
	const char *origin = c->cfg.allow_origin;
	size_t page_len = (size_t)sse_page_len;
	struct topic_pattern *pat = malloc(sizeof(*pat));
	char *buf;
	int n, err;

	/* the page subscribes to this very path: refuse it now as its stream would be refused */
	if (!pat)
		conn_fail(c, 500, "out of memory");
	err = topic_pattern_parse(req->target, req->target_len, pat);
	free(pat);
	if (err < 0)
		conn_fail(c, 400, "invalid topic: bad %-escape");
	/* head and page in one write: a second small write could wait for a delayed ACK */
	buf = malloc(HEAD_MAX + page_len);
	if (!buf)
		conn_fail(c, 500, "out of memory");
	n = snprintf(buf, HEAD_MAX,
		     "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n"
		     "Content-Type: text/html; charset=utf-8\r\nContent-Length: %zu\r\n"
		     "Cache-Control: no-cache\r\nContent-Security-Policy: " PAGE_CSP "\r\n"
		     "%s%s%s%s\r\n",
		     page_len, *origin ? "Access-Control-Allow-Origin: " : "", origin,
		     *origin ? "\r\n" : "", keep_alive ? "" : "Connection: close\r\n");
	if (n <= 0 || (size_t)n >= HEAD_MAX) {
		free(buf);
		conn_fail(c, 500, "response head too long");
	}
	memcpy(buf + n, sse_page, page_len);
	err = conn_send(c, buf, (size_t)n + page_len);
	free(buf);
	if (err < 0)
		return false;
	log_debug("%s: served the live page", c->peer);
	return keep_alive;
}

void stream_handle(struct conn *c, const struct http_request *req)
{
	static struct stream s;
	const uint32_t ka_ms = c->cfg.keepalive_ms;
	struct resume rs;
	char head[HEAD_MAX];
	size_t head_len;
	uint8_t *base;

	s.c = c;
	s.chunked = req->minor_version >= 1;
	if (sse_negotiate(req) == SSE_KIND_EVENTS)
		s.fmt = STREAM_SSE;
	else
		s.fmt = s.chunked ? STREAM_CHUNKED : STREAM_LINES;
	s.pat = frontend_map(sizeof(*s.pat)); /* sized for the longest topic: map, not malloc */
	if (!s.pat)
		conn_fail(c, 500, "out of memory");
	if (topic_pattern_parse(req->target, req->target_len, s.pat) < 0)
		conn_fail(c, 400, "invalid topic: bad %-escape");
	parse_resume(c, req, &rs);
	switch (attach_ring(c, &s.r)) {
	case 0:
		break;
	case -EMFILE: /* a keep-alive publish holds two fds; a low RLIMIT_NOFILE leaves none */
	case -ENFILE:
		conn_fail(c, 503, "the server is out of file descriptors; try again");
	default:
		conn_fail(c, 503, "history is not available: is the broker running?");
	}

	/* one maximal message always fits beside a batch; untouched pages cost nothing */
	s.out_cap = c->cfg.max_body + FRAME_OVERHEAD + BATCH_BYTES;
	base = mmap(NULL, CHUNK_HEAD_ROOM + s.out_cap, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s.topic = frontend_map((size_t)TOPIC_MAX_BYTES);
	if (base == MAP_FAILED || !s.topic)
		conn_fail(c, 500, "out of memory");
	s.out = base + CHUNK_HEAD_ROOM;

	if (c->stats) {
		counted_stats = c->stats;
		atomic_fetch_add_explicit(&c->stats->subscribers, 1, memory_order_relaxed);
	}
	(void)signal(SIGTERM, leave);
	(void)signal(SIGINT, leave);
	(void)signal(SIGHUP, leave);

	/* before the head: whatever is published once the client has it is in its stream */
	start_position(&s, &rs);
	head_len = stream_head(&s, head);
	if (conn_send(c, head, head_len) < 0)
		stream_end(&s, "the client left before the head");
	if (s.fmt == STREAM_SSE)
		sse_id_block(&s, true);
	if (s.gap_due)
		emit_gap(&s, s.gap_missed, s.next);
	/* A GET ends the request loop (PROTOCOL 1.3): the request buffers are done with, and an
	 * idle subscriber should not keep their pages (issue 5, scenario 5). */
	frontend_release(c->in, c->in_cap);
	frontend_release(c->head, c->in_cap);
	c->in_len = 0;
	s.next_keepalive_us = io_now_mono_us() + (uint64_t)ka_ms * 1000u;
	s.acked_at_us = io_now_mono_us();

	for (;;) {
		uint32_t w = ring_wake_word(&s.r);
		uint64_t now;
		bool woke;

		(void)drain(&s);
		now = io_now_mono_us();
		if (now >= s.next_keepalive_us) {
			keepalive(&s);
			check_client(&s);
			check_progress(&s, now);
			s.next_keepalive_us = now + (uint64_t)ka_ms * 1000u;
		}
		flush(&s);
		if (s.next < ring_head(&s.r))
			continue; /* more arrived while we were writing */
		if (ring_closed(&s.r)) {
			uint64_t before;

			/* section 6 of shm/ring.h: the ring was replaced; follow it from its start */
			ring_detach(&s.r);
			/* the old object may still be there (a recreate cut short): wait for a
			 * live one rather than spin on it */
			while (attach_ring(c, &s.r) < 0 || ring_closed(&s.r)) {
				if (s.r.hdr)
					ring_detach(&s.r);
				check_client(&s);
				(void)usleep(ATTACH_RETRY_MS * 1000u);
			}
			before = s.next;
			s.next = ring_tail(&s.r);
			if (s.fmt == STREAM_SSE)
				sse_id_block(&s, false);
			/* shm/ring.h section 8: a cluster's stream was recreated: PROTOCOL 3.4 (not
			 * when the old ring never held a message: a node's first copy of a stream) */
			if (atomic_load_explicit(&s.r.hdr->stream_time, memory_order_relaxed) &&
			    before > 1)
				emit_gap(&s, s.next - 1, s.next);
			continue;
		}
		trim_out(&s);
		now = io_now_mono_us();
		woke = now < s.next_keepalive_us;
		if (woke &&
		    ring_wait(&s.r, w, (uint32_t)((s.next_keepalive_us - now + 999) / 1000u)) < 0)
			(void)usleep(1000); /* futex unusable: poll gently rather than spin */
	}
}
