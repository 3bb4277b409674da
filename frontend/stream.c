/* SPDX-License-Identifier: MIT */
/*
 * GET (PROTOCOL 3): one subscriber's stream; and for browsers (README 3.8-3.12) the same stream
 * as Server-Sent Events, resumption by cursor, and the live page that opens it.
 *
 * A subscriber that is caught up gets new messages from fanout.c, which frames each message once
 * for every subscriber. Here is the rest: where a stream starts, its head and first notices, and
 * the pump that takes one subscriber from its own position up to the ring's head (a replay, a
 * subscriber that was blocked, a keepalive, a gap), framing into the process's scratch buffer
 * and sending everything pending in one write. Nothing is allocated per message.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/cursor.h"
#include "frontend/sse.h"
#include "frontend/stream.h"
#include "shm/topic.h"

#define HEAD_MAX	   1024u /* a stream's response head (less than 300 bytes) */
#define CLIENT_DRAIN_BYTES 512u	 /* what one read of a subscriber's socket takes */
/* What an idle stream keeps of the scratch buffer: a few writes of everyday messages. */
#define OUT_KEEP_BYTES	   ((size_t)16 * 1024u)
/*
 * SSE "retry:" (README 3.10): how long a browser waits before it reconnects. Two seconds: a
 * frontend killed or restarted is back well within it, and a thousand browsers reconnecting after
 * a blip do not come back all in the same instant as they would with 0.
 */
#define SSE_RETRY_MS	   2000u

/* A write being built in the process's scratch buffer for one subscriber. */
struct out {
	uint8_t *base; /* the scratch buffer */
	uint8_t *buf;  /* CHUNK_HEAD_ROOM bytes after its start */
	size_t len, cap;
	struct mark marks[BATCH_FRAMES];
	size_t nmarks;
	uint64_t next0; /* the subscriber's position before this write */
};

/* ---- topics ---- */

/*
 * A subscription's pattern as a group key: a byte that says whether it can match at all, then
 * each segment as a 32-bit length (UINT32_MAX for "*", which matches any one segment) and its
 * bytes. Equal subscriptions have equal keys, and the key is all a match needs, so a group holds
 * a few bytes instead of a parsed pattern sized for the longest topic.
 */
#define KEY_ANY UINT32_MAX

static size_t pattern_key(const struct topic_pattern *p, uint8_t *out)
{
	size_t n = 1;

	out[0] = p->never ? 1 : 0;
	for (uint32_t k = 0; k < p->nseg; k++) {
		const struct topic_seg *s = &p->seg[k];
		uint32_t len = s->any ? KEY_ANY : s->len;

		memcpy(out + n, &len, sizeof(len));
		n += sizeof(len);
		if (!s->any) {
			memcpy(out + n, p->bytes + s->off, s->len);
			n += s->len;
		}
	}
	return n;
}

/* Bytes a key of pattern p needs. */
static size_t pattern_key_len(const struct topic_pattern *p)
{
	size_t n = 1;

	for (uint32_t k = 0; k < p->nseg; k++)
		n += sizeof(uint32_t) + (p->seg[k].any ? 0 : p->seg[k].len);
	return n;
}

bool stream_key_match(const uint8_t *key, size_t keylen, const uint8_t *topic, size_t len)
{
	size_t i = 0, k = 1;

	if (key[0])
		return false; /* a segment holds a NUL: no stored topic can match */
	while (k < keylen) {
		const uint8_t *end;
		uint32_t slen;
		size_t n;

		memcpy(&slen, key + k, sizeof(slen));
		k += sizeof(slen);
		if (i >= len)
			return false; /* the topic has fewer segments than the pattern */
		end = memchr(topic + i, 0, len - i);
		n = end ? (size_t)(end - (topic + i)) : len - i;
		if (slen != KEY_ANY) {
			if (n != slen || memcmp(topic + i, key + k, n) != 0)
				return false;
			k += slen;
		}
		i += n + 1; /* past the separator; > len after the last segment */
	}
	return true;
}

/* ---- framing ---- */

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

size_t stream_chunk_head(uint8_t *out, size_t n)
{
	size_t h = put_hex(out, n);

	out[h++] = '\r';
	out[h++] = '\n';
	return h;
}

/* The framing before a payload of n bytes, for message (gen, seq), at out; its length. */
static size_t frame_head(enum stream_format fmt, uint8_t *out, size_t n, uint64_t gen, uint64_t seq)
{
	size_t h;

	switch (fmt) {
	case FMT_CHUNKED:
		return stream_chunk_head(out, n + 2);
	case FMT_SSE:
	case FMT_SSE_CHUNKED:
		memcpy(out, "id: ", STRLEN("id: "));
		h = STRLEN("id: ");
		h += cursor_format((char *)out + h, CURSOR_MAX, gen, seq);
		memcpy(out + h, "\ndata: ", STRLEN("\ndata: "));
		return h + STRLEN("\ndata: ");
	case FMT_LINES:
	case FMT_COUNT:
		break;
	}
	return 0;
}

/* The framing after a payload, at out; its length. */
static size_t frame_tail(enum stream_format fmt, uint8_t *out)
{
	switch (fmt) {
	case FMT_CHUNKED:
		memcpy(out, "\r\n\r\n", STRLEN("\r\n\r\n"));
		return STRLEN("\r\n\r\n");
	case FMT_SSE:
	case FMT_SSE_CHUNKED:
		memcpy(out, "\n\n", STRLEN("\n\n"));
		return STRLEN("\n\n");
	case FMT_LINES:
	case FMT_COUNT:
		break;
	}
	memcpy(out, "\r\n", STRLEN("\r\n"));
	return STRLEN("\r\n");
}

size_t stream_frame(enum stream_format fmt, uint8_t *out, const uint8_t *payload, size_t n,
		    uint64_t gen, uint64_t seq)
{
	size_t h = frame_head(fmt, out, n, gen, seq);

	memcpy(out + h, payload, n);
	return h + n + frame_tail(fmt, out + h + n);
}

static bool is_sse(const struct sub *s)
{
	return s->fmt == FMT_SSE || s->fmt == FMT_SSE_CHUNKED;
}

/* ---- writing ---- */

static void stream_end(struct sub *s, const char *why)
{
	conn_close(s->c, why);
}

bool stream_settle(struct sub *s, const struct iovec *iov, int iovcnt, const struct mark *marks,
		   size_t nmarks, uint64_t next0, uint64_t next_all, ssize_t written)
{
	size_t total = marks[nmarks - 1].end, w, k, from, to;
	uint64_t next = next0;

	if (written < 0) {
		stream_end(s, written == -EAGAIN ? "send timeout" : "the client left");
		return false;
	}
	w = (size_t)written;
	s->sent += w;
	conn_count_sent(s->c, w);
	if (w == total) {
		s->next = next_all;
		return true;
	}
	/* frames 0..k-1 are out; frame k is out in part or not at all */
	for (k = 0; k < nmarks && marks[k].end <= w; k++)
		next = marks[k].next;
	from = w;
	to = w;
	if (s->fmt == FMT_SSE_CHUNKED && w > 0) {
		/* the chunk's size is on the wire: all of it must follow */
		to = total;
		next = next_all;
		k = nmarks;
	} else if (k < nmarks && w > (k ? marks[k - 1].end : 0)) {
		to = marks[k].end;
		next = marks[k].next;
		k++;
	}
	/* what was dropped is due again: it is read from the ring, or made again */
	for (size_t j = k; j < nmarks; j++) {
		if (marks[j].flags & MARK_START_GAP)
			s->gap_due = true;
		if (marks[j].flags & MARK_START_ID)
			s->id_due = s->retry_due = true;
	}
	s->next = next;
	if (to > from) {
		size_t off = 0, o = 0;

		s->pend = malloc(to - from);
		if (!s->pend) {
			stream_end(s, "out of memory for a partial write");
			return false;
		}
		for (int i = 0; i < iovcnt && o < to - from; i++) {
			size_t len = iov[i].iov_len, a = MAX(from, off), b = MIN(to, off + len);

			if (a < b) {
				memcpy(s->pend + o, (const uint8_t *)iov[i].iov_base + (a - off),
				       b - a);
				o += b - a;
			}
			off += len;
		}
		s->pend_off = 0;
		s->pend_len = to - from;
	}
	s->blocked = true;
	conn_stream_watch(s->c, true);
	return false;
}

/* Write what is left of a frame; true once it is all out. */
static bool write_pend(struct sub *s)
{
	while (s->pend_len > 0) {
		ssize_t n = send(s->c->fd, s->pend + s->pend_off, s->pend_len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			s->blocked = true;
			conn_stream_watch(s->c, true);
			return false;
		}
		if (n < 0) {
			stream_end(s, "the client left");
			return false;
		}
		s->sent += (size_t)n;
		conn_count_sent(s->c, (size_t)n);
		s->pend_off += (size_t)n;
		s->pend_len -= (size_t)n;
	}
	free(s->pend);
	s->pend = NULL;
	s->pend_off = 0;
	return true;
}

/* Room for a frame of n bytes: its place, or NULL when this write is full (send it first). */
static uint8_t *frame_room(struct out *o, size_t n)
{
	if (o->nmarks == BATCH_FRAMES || (o->len && o->len + n + FRAME_OVERHEAD > BATCH_BYTES) ||
	    o->len + n + FRAME_OVERHEAD > o->cap)
		return NULL;
	return o->buf + o->len;
}

static void frame_done(struct out *o, size_t len, uint64_t next, uint32_t flags)
{
	o->len += len;
	o->marks[o->nmarks].end = o->len;
	o->marks[o->nmarks].next = next;
	o->marks[o->nmarks].flags = flags;
	o->nmarks++;
}

/* Append a notice: text[0..tlen) as a message of the chunked stream or the lines, or for SSE
 * event[0..elen) as it goes on the wire (an SSE-only notice has no text). false when the write
 * is full. */
static bool add_notice(struct sub *s, struct out *o, const char *text, size_t tlen,
		       const char *event, size_t elen, uint32_t flags)
{
	const char *t = is_sse(s) ? event : text;
	size_t n = is_sse(s) ? elen : tlen;
	uint8_t *p;

	if (!t)
		return true;
	p = frame_room(o, n);
	if (!p)
		return false;
	if (is_sse(s)) {
		memcpy(p, t, n);
		frame_done(o, n, s->next, flags);
	} else {
		frame_done(o, stream_frame(s->fmt, p, (const uint8_t *)t, n, 0, 0), s->next, flags);
	}
	return true;
}

/* snprintf's length, or 0 when it failed */
static size_t printed(int n, size_t cap)
{
	return n > 0 ? MIN((size_t)n, cap - 1) : 0;
}

static void fmt_time(char *buf, size_t len, uint64_t us)
{
	(void)snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

/* PROTOCOL 3.4: one notice, then the stream goes on at resume_seq. */
static bool add_gap(struct sub *s, struct out *o, const struct ring_gap *gap, uint32_t flags)
{
	char text[160], event[192], ts[32];
	uint64_t missed = gap->missed;
	size_t tlen, elen;

	fmt_time(ts, sizeof(ts), gap->resume_us);
	tlen = printed(snprintf(text, sizeof(text),
				"{\"gap\": {\"missed\": %" PRIu64 ", \"resume\": %s}}", missed, ts),
		       sizeof(text));
	elen = printed(snprintf(event, sizeof(event), "event: gap\ndata: %s\n\n", text),
		       sizeof(event));
	if (!frame_room(o, elen))
		return false;
	s->next = gap->resume_seq;
	if (!add_notice(s, o, text, tlen, event, elen, flags))
		return false;
	log_info("%s: gap notice, %" PRIu64 " messages missed", s->c->peer, missed);
	return true;
}

/*
 * README 3.10: an id-only block naming the message before s->next, so a browser that got no
 * message since still resumes exactly from here; with the reconnection delay first at the start
 * of the stream. Also sent when the ring was replaced, whose cursors are of another generation.
 */
static bool add_id_block(struct sub *s, struct out *o)
{
	char text[64], cur[CURSOR_MAX];
	size_t n;

	(void)cursor_format(cur, sizeof(cur), s->c->fe->ring.generation, s->next ? s->next - 1 : 0);
	if (s->retry_due)
		n = printed(
			snprintf(text, sizeof(text), "retry: %u\nid: %s\n\n", SSE_RETRY_MS, cur),
			sizeof(text));
	else
		n = printed(snprintf(text, sizeof(text), "id: %s\n\n", cur), sizeof(text));
	if (!add_notice(s, o, NULL, 0, text, n, MARK_START_ID))
		return false;
	s->id_due = s->retry_due = false;
	return true;
}

static bool add_keepalive(struct sub *s, struct out *o, uint64_t t)
{
	char text[64], event[128], ts[32], cur[CURSOR_MAX];

	size_t tlen, elen;

	fmt_time(ts, sizeof(ts), t);
	tlen = printed(snprintf(text, sizeof(text), "{\"stillalive\": %s}", ts), sizeof(text));
	/*
	 * README 3.10: a comment, which EventSource skips and proxies see as traffic, then the id
	 * of the last message looked at (any topic): the browser's lastEventId moves on while its
	 * topic is quiet, so a reconnect resumes here, not behind messages evicted since.
	 */
	(void)cursor_format(cur, sizeof(cur), s->c->fe->ring.generation, s->next ? s->next - 1 : 0);
	elen = printed(snprintf(event, sizeof(event), ": stillalive %s\nid: %s\n\n", ts, cur),
		       sizeof(event));
	return add_notice(s, o, text, tlen, event, elen, 0);
}

/* A gap of missed messages, going on at resume_seq. */
static struct ring_gap gap_at(const struct ring *r, uint64_t missed, uint64_t resume_seq)
{
	struct ring_gap gap = { .missed = missed, .resume_seq = resume_seq };

	gap.resume_us = ring_resume_time(r, resume_seq);
	return gap;
}

/* The scratch buffer's size before scratch_fits() grew it; 0 when it is not grown. */
static size_t scratch_normal;

/*
 * Room in o (the scratch buffer) for one frame of n bytes of topic or payload. Each length comes
 * from the ring, which may hold messages stored under a larger maxBodySize than this frontend's
 * (the limit was lowered since, or the broker reads another configuration): such a message grows
 * the buffer, which trim_scratch() gives back after the write, so that the replay delivers it
 * whole. false only when memory runs out (the caller skips the message with a gap notice). n is
 * at most half the ring's data area (shm/ring.h: ring_rec_get() checks it against the area).
 */
static bool scratch_fits(struct frontend *fe, struct out *o, size_t n)
{
	size_t cap = CHUNK_HEAD_ROOM + BATCH_BYTES + n + FRAME_OVERHEAD;
	uint8_t *p;

	if (cap <= fe->scratch_cap)
		return true;
	p = mremap(fe->scratch, fe->scratch_cap, cap, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		log_warning("no memory for a stored message of %zu bytes: %s", n, strerror(errno));
		return false;
	}
	if (!scratch_normal)
		scratch_normal = fe->scratch_cap;
	log_info("a stored message of %zu bytes, over maxBodySize: the write buffer grows to %zu",
		 n, cap);
	fe->scratch = p;
	fe->scratch_cap = cap;
	o->base = p;
	o->buf = p + CHUNK_HEAD_ROOM;
	o->cap = cap - CHUNK_HEAD_ROOM;
	return true;
}

/*
 * Frame the messages from s->next up to head that match into o, until o is full, through the
 * ring's reader (shm/ring.h): a message lapped or unreadable becomes a gap notice. Returns
 * whether head was reached.
 */
static bool fill(struct sub *s, struct out *o, uint64_t head)
{
	const struct ring *r = &s->c->fe->ring;
	struct ring_cursor cur;

	ring_cursor_init(&cur, s->next);
	while (cur.next < head) {
		struct ring_rec rec;
		struct ring_gap gap;
		uint8_t *p;
		size_t h;
		int err = ring_next(r, &cur, &rec, &gap);

		if (err == -EAGAIN)
			return true; /* not published yet: the writer is at it */
		if (err == RING_NEXT_GAP) {
			if (!add_gap(s, o, &gap, 0))
				return false; /* said next time: s->next is still before it */
			continue;
		}
		if (!scratch_fits(s->c->fe, o, MAX(rec.topic_len, rec.payload_len))) {
			/* larger than our limit and no memory to grow into: skip it, and say so */
			gap = gap_at(r, 1, cur.next + 1);
			if (!add_gap(s, o, &gap, 0))
				return false;
			ring_cursor_advance(&cur);
			continue;
		}
		/* the topic, copied into the frame's room and matched, then the payload over it;
		 * each copy checked whole afterwards (seqlock): a torn one is read again */
		p = frame_room(o, MAX(rec.topic_len, rec.payload_len));
		if (!p)
			return false;
		ring_copy_from(p, rec.topic, rec.topic_len);
		if (!ring_rec_valid(r, &rec))
			continue;
		if (!stream_key_match(s->group->key, s->group->keylen, p, rec.topic_len)) {
			ring_cursor_advance(&cur);
			s->next = cur.next;
			continue;
		}
		h = frame_head(s->fmt, p, rec.payload_len, r->generation, cur.next);
		ring_copy_from(p + h, rec.payload, rec.payload_len);
		if (!ring_rec_valid(r, &rec))
			continue;
		h += rec.payload_len;
		h += frame_tail(s->fmt, p + h);
		ring_cursor_advance(&cur);
		s->next = cur.next;
		frame_done(o, h, s->next, 0);
	}
	return true;
}

/* The write being built: one per process, as pumps run one at a time. */
static struct out out_state;

/* Send o in one write (for SSE on HTTP/1.1, wrapped in one chunk); true when all of it went. */
static bool send_out(struct sub *s, struct out *o)
{
	uint8_t *p = o->buf;
	size_t len = o->len;
	struct iovec iov;
	ssize_t w;

	if (s->fmt == FMT_SSE_CHUNKED) {
		/* README 3.10: the whole write is one chunk; its size line goes in the room left
		 * in front of it, and frame_room() left room for the CRLF after it */
		uint8_t size[CHUNK_HEAD_ROOM];
		size_t h = stream_chunk_head(size, len);

		p = o->base + (CHUNK_HEAD_ROOM - h);
		memcpy(p, size, h);
		memcpy(p + h + len, "\r\n", STRLEN("\r\n"));
		len += h + 2;
		for (size_t i = 0; i < o->nmarks; i++)
			o->marks[i].end += h;
		o->marks[o->nmarks - 1].end += 2;
	}
	do
		w = send(s->c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		w = errno == EAGAIN ? 0 : -errno;
	iov.iov_base = p;
	iov.iov_len = len;
	return stream_settle(s, &iov, 1, o->marks, o->nmarks, o->next0, s->next, w);
}

/* Bytes of the scratch buffer that writes touched since the last trim. */
static size_t scratch_touched;

/*
 * A process that serves one stream gives back the scratch pages beyond OUT_KEEP_BYTES that a
 * burst touched (a replay, a lapped reader catching up), so an idle subscriber does not hold a
 * batch of memory: one madvise per burst, none in steady traffic. A multiplexed process keeps
 * its one scratch buffer: it is shared by all its streams.
 */
static void trim_scratch(struct frontend *fe)
{
	/* a buffer grown for one large stored message shrinks back in place (never fails) */
	if (scratch_normal &&
	    mremap(fe->scratch, fe->scratch_cap, scratch_normal, 0) != MAP_FAILED) {
		fe->scratch_cap = scratch_normal;
		scratch_touched = MIN(scratch_touched, scratch_normal);
		scratch_normal = 0;
	}
	if (!fe->single || scratch_touched <= OUT_KEEP_BYTES)
		return;
	(void)madvise(fe->scratch + OUT_KEEP_BYTES, scratch_touched - OUT_KEEP_BYTES,
		      MADV_DONTNEED);
	scratch_touched = 0;
}

static void pump(struct sub *s);

void stream_pump(struct sub *s)
{
	struct frontend *fe = s->c->fe; /* pump() frees s when the stream ends */

	pump(s);
	trim_scratch(fe);
}

static void pump(struct sub *s)
{
	struct frontend *fe = s->c->fe;
	struct out *o = &out_state;

	if (s->blocked || !fe->ring.hdr || !fe->scratch || s->c->state != CONN_STREAM)
		return;
	if (s->pend_len && !write_pend(s))
		return;
	for (;;) {
		uint64_t head = ring_head(&fe->ring), kt = 0, kh = 0;
		bool done, ka = false;

		o->base = fe->scratch;
		o->buf = fe->scratch + CHUNK_HEAD_ROOM;
		o->cap = fe->scratch_cap - CHUNK_HEAD_ROOM;
		o->len = 0;
		o->nmarks = 0;
		o->next0 = s->next;
		if (s->id_due)
			(void)add_id_block(s, o); /* an empty write has room for it */
		if (s->gap_due) {
			struct ring_gap gap = gap_at(&fe->ring, s->gap_missed, s->next);

			s->gap_due = false;
			(void)add_gap(s, o, &gap, MARK_START_GAP);
		}
		/* PROTOCOL 3.3: every message below the keepalive's head goes out before it */
		if (s->keepalive_due && ring_keepalive_time(&fe->ring, &kt, &kh) == 0) {
			ka = true;
			head = MAX(head, kh);
		}
		done = fill(s, o, head);
		if (done && ka && s->next >= kh) {
			if (add_keepalive(s, o, kt))
				s->keepalive_due = false;
			else
				done = false;
		}
		scratch_touched = MAX(scratch_touched, CHUNK_HEAD_ROOM + o->len + 2);
		if (o->nmarks == 0 || !send_out(s, o))
			return;
		if (done)
			return;
	}
}

/* PROTOCOL 3.7: a departed client shows up as end of input; what it sends is dropped. Returns
 * false when the stream ended. */
static bool check_client(struct sub *s)
{
	char buf[CLIENT_DRAIN_BYTES];

	for (;;) {
		ssize_t n = recv(s->c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			conn_count_received(s->c, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		stream_end(s,
			   n == 0 ? "the client closed the connection" : "the connection failed");
		return false;
	}
}

/*
 * PROTOCOL 3.7: a client that takes no bytes for the send timeout is dropped. What it took is
 * what we sent minus the kernel's unsent queue (SIOCOUTQ): a subscriber whose socket is full
 * costs nothing while it waits, until then.
 */
static bool check_progress(struct sub *s, uint64_t now)
{
	int outq = 0;
	uint64_t acked;

	if (ioctl(s->c->fd, SIOCOUTQ, &outq) < 0 || outq < 0)
		return true;
	acked = s->sent - MIN((uint64_t)outq, s->sent);
	if ((outq == 0 && !s->pend_len) || acked != s->acked) {
		s->acked = acked;
		s->acked_at_us = now;
		return true;
	}
	if (now - s->acked_at_us < (uint64_t)s->c->fe->cfg.send_timeout_ms * 1000u)
		return true;
	stream_end(s, "send timeout: the client takes no bytes");
	return false;
}

static void keepalive_tick(struct loop *l, struct timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);
	struct sub *s = c->sub;

	timer_arm(l, t, TIMER_KEEPALIVE, keepalive_tick);
	if (!check_client(s) || !check_progress(s, l->now_us))
		return;
	s->keepalive_due = true;
	stream_pump(s);
}

void stream_io(struct conn *c, uint32_t events)
{
	struct sub *s = c->sub;

	if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !check_client(s))
		return;
	if (events & (EPOLLHUP | EPOLLERR)) {
		stream_end(s, "the connection failed");
		return;
	}
	if ((events & EPOLLOUT) && s->blocked) {
		s->blocked = false;
		conn_stream_watch(c, false);
		if (c->state == CONN_STREAM)
			stream_pump(s);
	}
}

void stream_ring_replaced(struct sub *s)
{
	const uint64_t before = s->next;

	/* section 6 of shm/ring.h: follow the new ring from its start */
	s->next = ring_tail(&s->c->fe->ring);
	if (is_sse(s))
		s->id_due = true;
	/* section 8: a cluster's stream was recreated: PROTOCOL 3.4 (not when the old ring never
	 * held a message: a node's first copy of a stream) */
	if (atomic_load_explicit(&s->c->fe->ring.hdr->stream_time, memory_order_relaxed) &&
	    before > 1) {
		s->gap_due = true;
		s->gap_missed = s->next - 1;
	}
}

void stream_free(struct conn *c)
{
	struct sub *s = c->sub;
	struct ring_stats *st = c->fe->stats;

	if (!s)
		return;
	if (s->group)
		fanout_leave(c->fe, s);
	if (s->counted && st)
		(void)ring_stats_count_subscriber(st, -1);
	free(s->pend);
	free(s);
	c->sub = NULL;
}

/* ---- where a stream starts ---- */

/* The parsed pattern of a subscription: sized for the longest topic, so one per process, its
 * pages touched only as far as a topic reaches. */
static struct topic_pattern *pattern;

static struct topic_pattern *pattern_buf(void)
{
	if (!pattern) {
		void *p = mmap(NULL, sizeof(*pattern), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		pattern = p == MAP_FAILED ? NULL : p;
	}
	return pattern;
}

/* A process that serves one connection needs the parsed pattern once: its pages (three, for an
 * everyday topic) go back rather than stay with an idle subscriber. */
static void pattern_done(const struct frontend *fe)
{
	if (!fe->single || !pattern)
		return;
	(void)munmap(pattern, sizeof(*pattern));
	pattern = NULL;
}

/* The group key of the request's topic into *ret_key (malloc, caller frees); false when
 * answered. */
static bool topic_key(struct conn *c, const struct http_request *req, uint8_t **ret_key,
		      size_t *ret_len)
{
	struct topic_pattern *pat = pattern_buf();
	uint8_t *key;

	if (!pat) {
		conn_fail(c, 500, "out of memory");
		return false;
	}
	if (topic_pattern_parse(req->target, req->target_len, pat) < 0) {
		conn_fail(c, 400, "invalid topic: bad %-escape");
		return false;
	}
	*ret_len = pattern_key_len(pat);
	key = malloc(*ret_len);
	if (!key) {
		conn_fail(c, 500, "out of memory");
		return false;
	}
	(void)pattern_key(pat, key);
	pattern_done(c->fe);
	*ret_key = key;
	return true;
}

void stream_page(struct conn *c, const struct http_request *req)
{
	size_t page_len = (size_t)sse_page_len, key_len, n;
	char head[HEAD_MAX];
	uint8_t *key;

	/* the page subscribes to this very path: refuse it now as its stream would be refused */
	if (!topic_key(c, req, &key, &key_len))
		return;
	free(key);
	n = response_page(head, sizeof(head), page_len, c->fe->cfg.allow_origin, c->keep_alive);
	if (!n) {
		conn_fail(c, 500, "response head too long");
		return;
	}
	/* head and page in one write: a second small write could wait for a delayed ACK */
	if (!conn_send(c, head, n) || !conn_send(c, sse_page, page_len))
		return;
	log_debug("%s: served the live page", c->peer);
	if (!c->keep_alive)
		conn_finish(c);
}

void stream_begin(struct conn *c, const struct http_request *req)
{
	struct frontend *fe = c->fe;
	bool chunked = req->minor_version >= 1, sse = sse_negotiate(req) == SSE_KIND_EVENTS;
	char head[HEAD_MAX];
	struct resume rs;
	struct sub *s;
	uint8_t *key;
	size_t key_len, n;
	int err;

	if (!topic_key(c, req, &key, &key_len))
		return;
	if (!resume_parse(c, req, &rs)) {
		free(key);
		return;
	}
	err = fanout_attach(fe);
	s = err == 0 ? calloc(1, sizeof(*s)) : NULL;
	n = response_stream(head, sizeof(head), sse, chunked, fe->cfg.allow_origin);
	if (s)
		s->pend = malloc(n);
	if (!s || !s->pend || !n || !fanout_join(fe, s, key, key_len)) {
		free(key);
		if (s)
			free(s->pend);
		free(s);
		if (err == -EMFILE || err == -ENFILE)
			conn_fail(c, 503, "the server is out of file descriptors; try again");
		else if (err == -EPERM) /* shm/ring.h section 1: not the service's (logged) */
			conn_fail(c, 503, "history is not available: the server refuses its ring");
		else if (err < 0)
			conn_fail(c, 503, "history is not available: is the broker running?");
		else
			conn_fail(c, 500, "out of memory");
		return;
	}
	free(key);
	s->c = c;
	c->sub = s;
	if (sse)
		s->fmt = chunked ? FMT_SSE_CHUNKED : FMT_SSE;
	else
		s->fmt = chunked ? FMT_CHUNKED : FMT_LINES;
	s->id_due = s->retry_due = sse;
	/* before the head: whatever is published once the client has it is in its stream */
	resume_position(s, &rs);
	/* the head is the first thing the stream has to write */
	memcpy(s->pend, head, n);
	s->pend_len = n;
	if (fe->stats) {
		/* counted in this process's slot, which its death takes out of the sum (shm/ring.h);
		 * in the shared counter only when no slot could be had, said once */
		if (!ring_stats_count_subscriber(fe->stats, 1) && !fe->stats_unslotted) {
			fe->stats_unslotted = true;
			log_warning("no statistics slot for this process: its subscribers stay in "
				    "X-Subscribers if it is killed");
		}
		s->counted = true;
	}
	/* A GET ends the request loop (PROTOCOL 1.3): the request buffers are done with, and an
	 * idle subscriber should not keep them. */
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	c->state = CONN_STREAM;
	if (c->fd >= 0)
		conn_stream_watch(c, false);
	if (c->state != CONN_STREAM)
		return; /* it could not be watched: closed, and s with it */
	s->acked_at_us = fe->loop.now_us;
	timer_arm(&fe->loop, &c->timer, TIMER_KEEPALIVE, keepalive_tick);
	log_debug("%s: streaming", c->peer);
	stream_pump(s);
}
