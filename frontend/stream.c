/* SPDX-License-Identifier: MIT */
/*
 * GET (PROTOCOL 3): the subscriber's stream, read straight from the ring.
 *
 * The loop: take everything between our position and head that matches the topic, frame it
 * into one buffer and send it with one write; then sleep on the ring's futex until a publish or
 * the next keepalive. Nothing is allocated per message: the output buffer is sized once from
 * the body limit, which bounds every message.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/frontend.h"
#include "shm/topic.h"

#define BATCH_BYTES	 (256u * 1024u) /* a batch beyond one maximal message */
#define FRAME_OVERHEAD	 32u		/* chunk size line + CRLFs around one message */
#define ATTACH_RETRY_MS	 200u		/* ring replaced (--recreate): re-attach pace */

struct stream {
	struct conn *c;
	struct ring r;
	struct topic_pattern *pat;
	bool chunked; /* HTTP/1.1: chunks; HTTP/1.0: bare lines (PROTOCOL 3.6) */
	uint64_t next; /* seq of the next message to look at */
	uint8_t *out;  /* framed bytes waiting for the next write */
	size_t out_len, out_cap;
	uint8_t *topic; /* a message's topic, copied out of the ring */
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

static void flush(struct stream *s)
{
	int err;

	if (!s->out_len)
		return;
	err = conn_send(s->c, s->out, s->out_len);
	if (err == 0)
		s->sent += s->out_len;
	if (err == -EAGAIN)
		stream_end(s, "send timeout: the client reads nothing");
	if (err < 0)
		stream_end(s, "the client left");
	s->out_len = 0;
}

/* Reserve room for a frame of n payload bytes; flushes first if the batch is full. */
static uint8_t *frame_begin(struct stream *s, size_t n)
{
	if (s->out_len + n + FRAME_OVERHEAD > s->out_cap)
		flush(s);
	return s->out + s->out_len;
}

/* Write the frame head for a payload of n bytes at p; returns its length. */
static size_t frame_head(const struct stream *s, uint8_t *p, size_t n)
{
	return s->chunked ? (size_t)sprintf((char *)p, "%zx\r\n", n + 2) : 0;
}

static size_t frame_tail(const struct stream *s, uint8_t *p)
{
	memcpy(p, s->chunked ? "\r\n\r\n" : "\r\n", s->chunked ? 4 : 2);
	return s->chunked ? 4 : 2;
}

/* Append a complete message held in text[0..n). */
static void emit(struct stream *s, const char *text, size_t n)
{
	uint8_t *p = frame_begin(s, n);
	size_t h = frame_head(s, p, n);

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
	char text[160], ts[32];
	int n;

	if (ring_rec_get(&s->r, resume_seq, &rec) == 0)
		fmt_time(ts, sizeof(ts), rec.time_us);
	else
		fmt_time(ts, sizeof(ts), resume_time(s));
	n = snprintf(text, sizeof(text), "{\"gap\": {\"missed\": %" PRIu64 ", \"resume\": %s}}",
		     missed, ts);
	emit(s, text, (size_t)n);
	log_info("%s: lapped, %" PRIu64 " messages missed", s->c->peer, missed);
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
		uint8_t *p;
		size_t h, mark;
		int err = ring_rec_get(&s->r, s->next, &rec);

		if (err == -EAGAIN)
			break;
		if (err < 0) {
			lapped(s);
			continue;
		}
		ring_copy_from(s->topic, rec.topic, rec.topic_len);
		if (!ring_rec_valid(&s->r, &rec)) {
			lapped(s);
			continue;
		}
		if (!topic_match(s->pat, s->topic, rec.topic_len)) {
			s->next++;
			continue;
		}
		/* copy the payload into its frame, then make sure it was whole (seqlock) */
		p = frame_begin(s, rec.payload_len);
		mark = s->out_len;
		h = frame_head(s, p, rec.payload_len);
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
	char text[64], ts[32];
	int n;

	/* every message below the resume time's head must go out first */
	if (ring_keepalive_time(&s->r, &t, &head) < 0)
		return; /* the broker keeps stamping: next tick */
	while (s->next < head)
		(void)drain(s);
	fmt_time(ts, sizeof(ts), t);
	n = snprintf(text, sizeof(text), "{\"stillalive\": %s}", ts);
	emit(s, text, (size_t)n);
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
	char buf[4096];

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

/* Where the stream starts: the live head, or the replay point of X-Fetch-Since. */
static void start_position(struct stream *s, bool has_since, uint64_t since)
{
	uint64_t first, lo, tail, evicted;

	if (!has_since) {
		s->next = ring_head(&s->r);
		return;
	}
	while (ring_find_time(&s->r, since, &first, &lo) < 0)
		; /* only under a writer that laps the index during the search */
	tail = ring_tail(&s->r);
	evicted = atomic_load_explicit(&s->r.hdr->evicted_time_us, memory_order_relaxed);
	s->next = MAX(first, tail);
	/* PROTOCOL 3.4: messages at or after 'since' are gone: say how many we know of */
	if (evicted && evicted >= since)
		emit_gap(s, first < tail ? tail - first : 1, s->next);
}

static int attach_ring(struct conn *c, struct ring *r)
{
	int err = ring_attach(c->ring_name, r);

	if (err < 0)
		log_warning("%s: unable to attach ring '%s': %s", c->peer, c->ring_name,
			    strerror(-err));
	return err;
}

void stream_handle(struct conn *c, const struct http_request *req)
{
	static const char head11[] = "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n"
				     "Transfer-Encoding: chunked\r\n"
				     "Content-Type: application/x-gitpubsub\r\n"
				     "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n";
	static const char head10[] = "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\n"
				     "Content-Type: application/x-gitpubsub\r\n"
				     "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n\r\n";
	static struct stream s;
	const uint32_t ka_ms = c->cfg.keepalive_ms;
	bool has_since = false;
	uint64_t since = 0;

	s.c = c;
	s.chunked = req->minor_version >= 1;
	s.pat = malloc(sizeof(*s.pat));
	if (!s.pat)
		conn_fail(c, 500, "out of memory");
	if (topic_pattern_parse(req->target, req->target_len, s.pat) < 0)
		conn_fail(c, 400, "invalid topic: bad %-escape");
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		uint64_t v;

		if (h->name_len != 13 || strncasecmp(h->name, "X-Fetch-Since", 13) != 0)
			continue;
		if (parse_since(h->value, h->value_len, &v) < 0)
			conn_fail(c, 400, "X-Fetch-Since must be a plain decimal unix time");
		if (has_since && v != since)
			conn_fail(c, 400, "conflicting X-Fetch-Since headers");
		has_since = true;
		since = v;
	}
	if (attach_ring(c, &s.r) < 0)
		conn_fail(c, 503, "history is not available: is the broker running?");

	/* one maximal message always fits beside a batch; untouched pages cost nothing */
	s.out_cap = c->cfg.max_body + FRAME_OVERHEAD + BATCH_BYTES;
	s.out = mmap(NULL, s.out_cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s.topic = malloc(TOPIC_MAX_BYTES);
	if (s.out == MAP_FAILED || !s.topic)
		conn_fail(c, 500, "out of memory");

	if (c->stats) {
		counted_stats = c->stats;
		atomic_fetch_add_explicit(&c->stats->subscribers, 1, memory_order_relaxed);
	}
	(void)signal(SIGTERM, leave);
	(void)signal(SIGINT, leave);
	(void)signal(SIGHUP, leave);

	if (conn_send(c, s.chunked ? head11 : head10,
		      s.chunked ? sizeof(head11) - 1 : sizeof(head10) - 1) < 0)
		stream_end(&s, "the client left before the head");
	start_position(&s, has_since, since);
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
			s.next = ring_tail(&s.r);
			continue;
		}
		now = io_now_mono_us();
		woke = now < s.next_keepalive_us;
		if (woke && ring_wait(&s.r, w, (uint32_t)((s.next_keepalive_us - now + 999) / 1000u)) < 0)
			(void)usleep(1000); /* futex unusable: poll gently rather than spin */
	}
}
