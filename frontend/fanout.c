/* SPDX-License-Identifier: MIT */
/*
 * The process's view of the ring, and the fan-out: one wake-up per ring advance for the whole
 * process, never one per subscriber, and each new message read from the ring once, framed once
 * per framing in use, matched once per topic, and written to every subscriber it matches with
 * one writev each.
 *
 * Wake-ups. A futex cannot be polled, so a multiplexed process keeps one thread blocked on the
 * ring's futex word (shm/ring.h section 5, Waiting) that writes an eventfd the loop watches
 * whenever head moves or the ring is replaced. The thread touches nothing else of the process:
 * it has its own mapping of the ring, and the eventfd is the only thing it shares. A process
 * serving one connection needs no thread: main.c waits on the futex itself while its one stream
 * has nothing else to wait for.
 *
 * Subscribers of one topic form a group; a message is matched against each group once. A
 * subscriber whose position is where the process's last round ended gets the round's frames
 * straight from the batch (the fast path); any other (replaying, just unblocked, lapped) is
 * pumped from its own position by stream.c. Groups are a list: matching costs O(groups) per
 * message, fine for the hundreds of topics a git host has, not for a topic per subscriber.
 */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <urcu/futex.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/stream.h"
#include "shm/topic.h"

/* The waiter thread's futex timeout: how soon it notices a ring that was replaced without a
 * wake (a broker killed during --recreate), and the pause between tries to attach one. */
#define WAITER_TICK_MS	1000u
#define WAITER_RETRY_US 200000u

struct fanout_msg {
	uint64_t seq;
	size_t topic_off, pay_off; /* in batch->data */
	uint32_t topic_len, pay_len;
	size_t frame_off[FMT_COUNT]; /* in batch->frames[fmt] */
	size_t frame_len[FMT_COUNT];
};

struct fanout_batch {
	uint64_t first, end; /* the messages [first, end) */
	size_t n;
	struct fanout_msg msg[BATCH_FRAMES];
	uint8_t *data; /* topics and payloads, copied once from the ring */
	size_t data_len, data_cap;
	uint8_t *frames[FMT_COUNT]; /* each message framed for fmt, made when a subscriber asks */
	size_t frames_len[FMT_COUNT], frames_cap;
	bool framed[FMT_COUNT];
	uint32_t match[BATCH_FRAMES]; /* the messages that the group at hand matches */
	size_t nmatch;
	struct iovec iov[BATCH_FRAMES + 2];
	struct mark marks[BATCH_FRAMES];
};

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* ---- the waiter thread ---- */

static void poke(int fd)
{
	uint64_t one = 1;

	(void)!write(fd, &one, sizeof(one));
}

/*
 * Sleep until the ring's futex word differs from seen or WAITER_TICK_MS pass: 0 (look again), or
 * -errno. liburcu's futex_async() (urcu/futex.h), as its own wait queues use it: a shared futex
 * (no FUTEX_PRIVATE_FLAG, the waker is the broker), and a fallback where the kernel has none.
 */
static int wait_word(const struct ring *r, uint32_t seen)
{
	const struct timespec ts = { .tv_sec = WAITER_TICK_MS / 1000u,
				     .tv_nsec = (long)(WAITER_TICK_MS % 1000u) * 1000000L };
	/* the word, by its offset (futex(2) takes a plain int; FUTEX_WAIT only reads it) */
	int32_t *word = (int32_t *)(void *)((char *)r->hdr + offsetof(struct ring_hdr, wake));

	if (futex_async(word, FUTEX_WAIT, (int32_t)seen, &ts, NULL, 0) == 0 || errno == EAGAIN ||
	    errno == EINTR || errno == ETIMEDOUT)
		return 0;
	return -errno;
}

static void *waiter_main(void *arg)
{
	const struct frontend *fe = arg;
	struct ring r = { 0 };
	uint64_t seen = UINT64_MAX;

	for (;;) {
		uint32_t w;
		uint64_t h;
		bool closed;

		if (!r.hdr && ring_attach(fe->ring_name, &r) < 0) {
			r.hdr = NULL;
			(void)usleep(WAITER_RETRY_US);
			continue;
		}
		w = ring_wake_word(&r); /* before head: a publish after this read changes it */
		h = ring_head(&r);
		closed = ring_closed(&r);
		if (h != seen || closed) {
			seen = h;
			poke(fe->wake_fd);
		}
		if (closed) {
			ring_detach(&r);
			r.hdr = NULL;
			(void)usleep(WAITER_RETRY_US);
			continue;
		}
		if (wait_word(&r, w) < 0)
			(void)usleep(1000); /* futex unusable: poll gently rather than spin */
	}
	return NULL;
}

static void wake_io(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct frontend *fe = container_of(io, struct frontend, wake_io);
	uint64_t n;

	(void)l;
	(void)events;
	(void)!read(fe->wake_fd, &n, sizeof(n));
	fanout_wake(fe);
}

/* The waiter, with every signal blocked: they are the loop's. 0 or -errno. */
static int waiter_start(struct frontend *fe)
{
	sigset_t all, old;
	int err;

	fe->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fe->wake_fd < 0)
		return -errno;
	err = loop_add(&fe->loop, &fe->wake_io, fe->wake_fd, EPOLLIN, wake_io);
	if (err < 0)
		return err;
	(void)sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&fe->waiter, NULL, waiter_main, fe);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err < 0)
		return err;
	fe->waiter_running = true;
	return 0;
}

/* ---- attaching ---- */

void fanout_log_refusal(const struct frontend *fe)
{
	static bool logged; /* once a process: every subscribe would say it again */
	char why[1024];

	if (logged)
		return;
	logged = true;
	(void)ring_refusal(fe->ring_name, why, sizeof(why));
	log_error("refusing ring '%s': %s", fe->ring_name, why);
}

int fanout_attach(struct frontend *fe)
{
	int err;

	if (fe->ring.hdr)
		return 0;
	err = ring_attach(fe->ring_name, &fe->ring);
	if (err < 0) {
		fe->ring.hdr = NULL;
		if (err == -EPERM)
			fanout_log_refusal(fe);
		else
			log_warning("unable to attach ring '%s': %s", fe->ring_name,
				    strerror(-err));
		return err;
	}
	fe->pos = ring_head(&fe->ring);
	if (!fe->scratch) {
		/* a write of BATCH_BYTES, then one maximal frame or topic beyond it; untouched
		 * pages cost nothing */
		fe->scratch_cap = CHUNK_HEAD_ROOM + BATCH_BYTES +
				  MAX((size_t)fe->cfg.max_body, TOPIC_MAX_BYTES) + FRAME_OVERHEAD;
		fe->scratch = map_anon(fe->scratch_cap);
		if (!fe->scratch) {
			ring_detach(&fe->ring);
			fe->ring.hdr = NULL;
			return -ENOMEM;
		}
	}
	if (!fe->single && !fe->waiter_running) {
		err = waiter_start(fe);
		if (err < 0) {
			log_error("unable to start the ring waiter: %s", strerror(-err));
			return err;
		}
	}
	return 0;
}

void fanout_done(struct frontend *fe)
{
	if (fe->ring.hdr)
		ring_detach(&fe->ring);
	fe->ring.hdr = NULL;
}

/* ---- groups ---- */

bool fanout_join(struct frontend *fe, struct sub *s, const uint8_t *key, size_t len)
{
	struct group *g;

	for (g = fe->groups; g; g = g->next)
		if (g->keylen == len && memcmp(g->key, key, len) == 0)
			break;
	if (!g) {
		g = calloc(1, sizeof(*g) + len);
		if (!g)
			return false;
		memcpy(g->key, key, len);
		g->keylen = len;
		g->next = fe->groups;
		if (fe->groups)
			fe->groups->prev = g;
		fe->groups = g;
	}
	s->group = g;
	s->gprev = NULL;
	s->gnext = g->subs;
	if (g->subs)
		g->subs->gprev = s;
	g->subs = s;
	g->nsubs++;
	fe->nsubs++;
	return true;
}

static void group_free(struct frontend *fe, struct group *g)
{
	if (g->prev)
		g->prev->next = g->next;
	else
		fe->groups = g->next;
	if (g->next)
		g->next->prev = g->prev;
	free(g);
}

static bool in_wake; /* fanout_wake() is walking the groups: an empty one is freed after */

void fanout_leave(struct frontend *fe, struct sub *s)
{
	struct group *g = s->group;

	if (s->gprev)
		s->gprev->gnext = s->gnext;
	else
		g->subs = s->gnext;
	if (s->gnext)
		s->gnext->gprev = s->gprev;
	s->group = NULL;
	g->nsubs--;
	fe->nsubs--;
	if (g->nsubs == 0 && !in_wake)
		group_free(fe, g);
}

/* ---- the fan-out ---- */

static struct fanout_batch *batch_get(struct frontend *fe)
{
	struct fanout_batch *b = fe->batch;

	if (b)
		return b;
	b = map_anon(sizeof(*b));
	if (!b)
		return NULL;
	b->data_cap = BATCH_BYTES + TOPIC_MAX_BYTES + fe->cfg.max_body;
	b->frames_cap = b->data_cap + (size_t)BATCH_FRAMES * FRAME_OVERHEAD;
	b->data = map_anon(b->data_cap);
	for (int f = 0; f < FMT_COUNT; f++)
		b->frames[f] = map_anon(b->frames_cap);
	for (int f = 0; f < FMT_COUNT; f++)
		if (!b->frames[f])
			b->data = NULL;
	if (!b->data)
		return NULL; /* out of memory: every stream takes the slow path */
	fe->batch = b;
	return b;
}

/* Copy the messages from seq first on (up to head, BATCH_FRAMES, BATCH_BYTES) out of the ring:
 * the batch ends early at an entry that is not readable (stream.c's pump deals with it). */
static void batch_read(struct frontend *fe, struct fanout_batch *b, uint64_t first, uint64_t head)
{
	const struct ring *r = &fe->ring;

	b->first = first;
	b->n = 0;
	b->data_len = 0;
	memset(b->framed, 0, sizeof(b->framed));
	for (uint64_t seq = first; seq < head && b->n < BATCH_FRAMES && b->data_len < BATCH_BYTES;
	     seq++) {
		struct fanout_msg *m = &b->msg[b->n];
		struct ring_rec rec;
		size_t need;

		if (ring_rec_get(r, seq, &rec) < 0)
			break;
		need = (size_t)rec.topic_len + rec.payload_len;
		if (b->data_len + need > b->data_cap)
			break;
		/* topic and payload are adjacent in the ring: one copy, then the seqlock check */
		ring_copy_from(b->data + b->data_len, rec.topic, need);
		if (!ring_rec_valid(r, &rec))
			break;
		m->seq = seq;
		m->topic_off = b->data_len;
		m->topic_len = rec.topic_len;
		m->pay_off = b->data_len + rec.topic_len;
		m->pay_len = rec.payload_len;
		b->data_len += need;
		b->n++;
	}
	b->end = first + b->n;
}

/* Frame every message of the batch for fmt, once per round. */
static void batch_frame(const struct frontend *fe, struct fanout_batch *b, enum stream_format fmt)
{
	size_t len = 0;

	if (b->framed[fmt])
		return;
	for (size_t i = 0; i < b->n; i++) {
		struct fanout_msg *m = &b->msg[i];

		m->frame_off[fmt] = len;
		m->frame_len[fmt] = stream_frame(fmt, b->frames[fmt] + len, b->data + m->pay_off,
						 m->pay_len, fe->ring.generation, m->seq);
		len += m->frame_len[fmt];
	}
	b->frames_len[fmt] = len;
	b->framed[fmt] = true;
}

/* The fast path: s is at the batch's first message; one writev of the frames it matches. */
static void fast_send(struct frontend *fe, struct fanout_batch *b, struct sub *s)
{
	uint8_t chunk[CHUNK_HEAD_ROOM];
	size_t niov = 0, total = 0;

	if (b->nmatch == 0) {
		s->next = b->end;
		return;
	}
	batch_frame(fe, b, s->fmt);
	if (s->fmt == FMT_SSE_CHUNKED) {
		/* README 3.10: everything of one write in one chunk */
		size_t body = 0;

		for (size_t i = 0; i < b->nmatch; i++)
			body += b->msg[b->match[i]].frame_len[s->fmt];
		total = stream_chunk_head(chunk, body);
		b->iov[niov].iov_base = chunk;
		b->iov[niov++].iov_len = total;
	}
	for (size_t i = 0; i < b->nmatch; i++) {
		const struct fanout_msg *m = &b->msg[b->match[i]];

		b->iov[niov].iov_base = b->frames[s->fmt] + m->frame_off[s->fmt];
		b->iov[niov++].iov_len = m->frame_len[s->fmt];
		total += m->frame_len[s->fmt];
		b->marks[i].end = total;
		b->marks[i].next = m->seq + 1;
		b->marks[i].flags = 0;
	}
	if (s->fmt == FMT_SSE_CHUNKED) {
		static char crlf[] = "\r\n";

		b->iov[niov].iov_base = crlf;
		b->iov[niov++].iov_len = 2;
		b->marks[b->nmatch - 1].end += 2;
	}
	{
		ssize_t w;

		do
			w = writev(s->c->fd, b->iov, (int)niov);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			w = errno == EAGAIN ? 0 : -errno;
		(void)stream_settle(s, b->iov, (int)niov, b->marks, b->nmatch, b->first, b->end, w);
	}
}

/* Whether s takes the fast path this round. */
static bool fast(const struct sub *s, const struct fanout_batch *b)
{
	return !s->blocked && !s->pend_len && !s->id_due && !s->gap_due && !s->keepalive_due &&
	       s->next == b->first && s->c->state == CONN_STREAM;
}

static void retry_attach(struct loop *l, struct timer *t)
{
	(void)l;
	fanout_wake(container_of(t, struct frontend, ring_timer));
}

/* Section 6 of shm/ring.h: the ring was replaced; every stream follows the new one. */
static bool replace_ring(struct frontend *fe)
{
	if (fe->ring.hdr && ring_closed(&fe->ring)) {
		log_info("ring '%s' was replaced; following the new one", fe->ring_name);
		ring_detach(&fe->ring);
		fe->ring.hdr = NULL;
	}
	if (!fe->ring.hdr) {
		/* the old object may still be there (a recreate cut short): wait for a live one */
		if (ring_attach(fe->ring_name, &fe->ring) < 0 || ring_closed(&fe->ring)) {
			if (fe->ring.hdr)
				ring_detach(&fe->ring);
			fe->ring.hdr = NULL;
			timer_arm(&fe->loop, &fe->ring_timer, TIMER_RETRY, retry_attach);
			return false;
		}
		fe->pos = ring_tail(&fe->ring);
		for (struct group *g = fe->groups; g; g = g->next)
			for (struct sub *s = g->subs; s; s = s->gnext)
				stream_ring_replaced(s);
	}
	return true;
}

void fanout_wake(struct frontend *fe)
{
	struct fanout_batch *b;
	uint64_t head;

	if (!fe->groups)
		return; /* no stream: nothing to do */
	if ((!fe->ring.hdr || ring_closed(&fe->ring)) && !replace_ring(fe))
		return;
	in_wake = true;
	head = ring_head(&fe->ring);
	b = fe->single ? NULL : batch_get(fe);
	while (b && fe->pos < head) {
		batch_read(fe, b, fe->pos, head);
		if (b->n == 0)
			break;
		for (struct group *g = fe->groups; g; g = g->next) {
			struct sub *s, *next;

			b->nmatch = 0;
			for (size_t i = 0; i < b->n; i++)
				if (stream_key_match(g->key, g->keylen,
						     b->data + b->msg[i].topic_off,
						     b->msg[i].topic_len))
					b->match[b->nmatch++] = (uint32_t)i;
			for (s = g->subs; s; s = next) {
				next = s->gnext;
				if (fast(s, b))
					fast_send(fe, b, s);
			}
		}
		fe->pos = b->end;
	}
	/* everyone else from their own positions: replays, the unblocked, what the batch left */
	for (struct group *g = fe->groups; g; g = g->next) {
		struct sub *s, *next;

		for (s = g->subs; s; s = next) {
			next = s->gnext;
			if (!s->blocked && s->next < head)
				stream_pump(s);
		}
	}
	fe->pos = MAX(fe->pos, head);
	in_wake = false;
	for (struct group *g = fe->groups, *next; g; g = next) {
		next = g->next;
		if (g->nsubs == 0)
			group_free(fe, g);
	}
}
