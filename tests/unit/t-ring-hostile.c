/* SPDX-License-Identifier: MIT */
/*
 * A corrupt or hostile ring cannot hang a reader or mislead the writer (README "Reliability",
 * fault 7). The ring is made by the writer, then spoiled through the writer's mapping as a
 * broker bug or a scribbler would, and each reader entry point must come back, within a bound:
 *   - a record whose copy is refused every time (ring_rec_valid) while the tail has not moved:
 *     a gap of one after at most RING_READ_TRIES reads, then the next message;
 *   - a cursor below the tail whose entry never reads right: one gap to the tail at once;
 *   - ring_find_time() and ring_cursor_seek_time() over an index whose entries never hold their
 *     seq, whose times go backwards, or whose head is near 2^64: an answer or -EAGAIN, in a few
 *     microseconds;
 *   - the writer refuses (-EPROTO) to publish into a ring whose positions, lengths or times no
 *     writer leaves, and --recreate replaces it.
 * A watchdog (SIGALRM) turns a call that spins into a failed test point instead of a hang.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/io.h"
#include "shm/ring.h"
#include "tests/tap.h"

#define DATA	   (UINT64_C(64) * 1024)
#define NMSG	   10u	 /* messages published before the ring is spoiled */
#define PAYLOAD	   100u	 /* bytes of each */
#define TOPIC_LEN  4u	 /* "test" */
#define WATCHDOG_S 10u	 /* a call still running after this long spins */
#define FIND_US	   1000u /* what one ring_find_time() may take on a spoiled index */

static const char *watched = "nothing";

static void on_alarm(int sig)
{
	static const char head[] = "not ok - spun for the watchdog's time in: ";

	(void)sig;
	(void)!write(STDOUT_FILENO, head, sizeof(head) - 1);
	(void)!write(STDOUT_FILENO, watched, strlen(watched));
	(void)!write(STDOUT_FILENO, "\n", 1);
	_exit(1);
}

static void watch(const char *what)
{
	watched = what;
	alarm(WATCHDOG_S);
}

static void unwatch(void)
{
	alarm(0);
	watched = "nothing";
}

/* A fresh ring called name holding messages 1..NMSG; 0 or -errno. */
static int make_ring(const char *name, struct ring_writer *w)
{
	struct ring_params p = { .data_size = DATA };
	uint8_t payload[PAYLOAD];
	uint64_t seq, t;
	bool created;
	int err;

	(void)!ring_unlink(name);
	err = ring_writer_open(name, &p, w, &created);
	for (unsigned int k = 1; err == 0 && k <= NMSG; k++) {
		memset(payload, '0' + (int)k, sizeof(payload));
		err = ring_publish(w, (const uint8_t *)"test", TOPIC_LEN, payload, PAYLOAD,
				   UINT64_C(1000000) * k, &seq, &t);
	}
	return err;
}

/* A copy refused every time, and an entry below the tail that never reads right. */
static void test_reader(const char *name)
{
	struct ring_writer w;
	struct ring_cursor c;
	struct ring_rec rec;
	struct ring_gap gap;
	struct ring r;
	uint8_t buf[512];
	unsigned int reads = 0;
	int err;

	if (make_ring(name, &w) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "reader: set up");
		return;
	}
	/* data_tail past message 5's position while the tail stays at 1: its copy is always
	 * refused, as if it were being overwritten, and the tail never says it was */
	err = ring_rec_get(&r, 5, &rec);
	is(err, 0, "reader: message 5 located");
	atomic_store(&w.r.hdr->data_tail, rec.pos + 8);
	ring_cursor_init(&c, 5);
	watch("ring_next on a copy refused every time");
	for (;;) {
		err = ring_next(&r, &c, &rec, &gap);
		reads++;
		if (err != RING_NEXT_MSG || reads > 10u * RING_READ_TRIES)
			break;
		ring_copy_from(buf, rec.topic, (size_t)rec.topic_len + rec.payload_len);
		if (ring_rec_valid(&r, &rec))
			break;
	}
	unwatch();
	diag("figure: a copy refused every time: a gap after %u reads (limit %d)", reads,
	     RING_READ_TRIES);
	ok(err == RING_NEXT_GAP && reads <= RING_READ_TRIES + 1,
	   "reader: a refused copy ends in a gap within RING_READ_TRIES reads, not a spin");
	ok(err == RING_NEXT_GAP && gap.missed == 1 && gap.resume_seq == 6 && c.next == 6,
	   "reader: the gap is of that one message, going on at 6");
	ring_cursor_init(&c, 5);
	watch("ring_read on a copy refused every time");
	err = ring_read(&r, &c, buf, sizeof(buf), &rec, &gap);
	unwatch();
	ok(err == RING_NEXT_GAP && gap.missed == 1 && c.next == 6,
	   "reader: ring_read, the same in one call");
	err = ring_read(&r, &c, buf, sizeof(buf), &rec, &gap);
	ok(err == RING_NEXT_MSG && rec.seq == 6 && buf[TOPIC_LEN] == '6',
	   "reader: then message 6, whole");

	/* the tail moved to 8 and entry 3 holds another seq: a reader at 3 is lapped, at once */
	atomic_store(&w.r.idx[3 & w.r.idx_mask].seq, 12345);
	atomic_store(&w.r.hdr->tail, 8);
	ring_cursor_init(&c, 3);
	watch("ring_next below the tail");
	err = ring_next(&r, &c, &rec, &gap);
	unwatch();
	ok(err == RING_NEXT_GAP && gap.missed == 5 && gap.resume_seq == 8 && c.next == 8,
	   "reader: an unreadable entry below the tail: one gap of 5 to the tail, at once");

	/* head four indexes past the tail, the entries between never written: the reader is
	 * lapped to head - nidx at once, then each of those nidx entries is a gap of one */
	atomic_store(&w.r.hdr->tail, NMSG + 1);
	atomic_store(&w.r.hdr->head, NMSG + 1 + 4 * w.r.nidx);
	ring_cursor_init(&c, NMSG + 1);
	reads = 0;
	watch("ring_next to a head four indexes past the tail");
	while (ring_next(&r, &c, &rec, &gap) != -EAGAIN && reads <= 8 * w.r.nidx)
		reads++;
	unwatch();
	diag("figure: a head %llu messages past the tail, entries never written: reached in %u "
	     "steps (index of %llu)",
	     4 * (unsigned long long)w.r.nidx, reads, (unsigned long long)w.r.nidx);
	ok(c.next == ring_head(&r) && reads <= w.r.nidx + 1,
	   "reader: reaches it in at most nidx + 1 steps, not one per message the header claims");
	ring_detach(&r);
	ring_writer_close(&w);
	(void)!ring_unlink(name);
}

/* ring_find_time and ring_cursor_seek_time over r, under the watchdog, timed. */
static int find(const struct ring *r, uint64_t t, const char *what, uint64_t *ret_seq,
		uint64_t *ret_lo)
{
	struct ring_cursor c;
	struct ring_gap gap;
	uint64_t t0;
	int err, serr;

	watch(what);
	t0 = io_now_mono_us();
	err = ring_find_time(r, t, ret_seq, ret_lo);
	t0 = io_now_mono_us() - t0;
	serr = ring_cursor_seek_time(r, t, &c, &gap);
	unwatch();
	diag("figure: ring_find_time, %s: %d in %llu us", what, err, (unsigned long long)t0);
	ok(t0 < FIND_US, "find: %s answers within %u us", what, FIND_US);
	ok(serr == err || (err == 0 && serr == RING_NEXT_GAP),
	   "find: ring_cursor_seek_time agrees (%d, %d)", serr, err);
	return err;
}

static void test_find_time(const char *name)
{
	struct ring_writer w;
	uint64_t seq = 0, lo = 0, head;
	struct ring r;
	int err;

	if (make_ring(name, &w) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "find: set up");
		return;
	}
	/* times going backwards: any seq in range, but an answer */
	for (uint64_t s = 1; s <= NMSG; s++)
		atomic_store(&w.r.idx[s & w.r.idx_mask].time_us, (NMSG + 1 - s) * 1000000u);
	err = find(&r, 5500000, "times going backwards", &seq, &lo);
	ok(err == 0 && lo <= seq && seq <= ring_head(&r), "find: seq %llu in [%llu, head]",
	   (unsigned long long)seq, (unsigned long long)lo);

	/* no entry holds its seq: every search restarts, a bounded number of times */
	for (uint64_t s = 0; s < w.r.nidx; s++)
		atomic_store(&w.r.idx[s].seq, 0);
	err = find(&r, 5500000, "no entry holds its seq", &seq, &lo);
	is(err, -EAGAIN, "find: -EAGAIN, the caller's to retry a bounded number of times");

	/* head near 2^64 with nothing in the index: 64 probes at most, then -EAGAIN */
	head = UINT64_MAX - 2;
	atomic_store(&w.r.hdr->head, head);
	atomic_store(&w.r.hdr->tail, head - 5);
	err = find(&r, UINT64_MAX / 2, "head near 2^64", &seq, &lo);
	ok(err == -EAGAIN || (err == 0 && seq <= head), "find: an answer or -EAGAIN (%d)", err);
	ring_detach(&r);
	ring_writer_close(&w);
	(void)!ring_unlink(name);
}

/* One spoiling of a ring's header or entry, for the writer to refuse. */
struct spoil {
	const char *what;
	void (*fn)(struct ring *r);
};

static void spoil_head_wrap(struct ring *r)
{
	atomic_store(&r->hdr->head, UINT64_MAX);
	atomic_store(&r->hdr->tail, UINT64_MAX);
}

static void spoil_pos_outside(struct ring *r)
{
	atomic_store(&r->idx[3 & r->idx_mask].pos, r->data_size - 8);
}

static void spoil_pos_back(struct ring *r)
{
	atomic_store(&r->idx[6 & r->idx_mask].pos, atomic_load(&r->idx[2 & r->idx_mask].pos));
}

static void spoil_time_back(struct ring *r)
{
	atomic_store(&r->idx[4 & r->idx_mask].time_us, 1);
}

static void spoil_seq(struct ring *r)
{
	atomic_store(&r->idx[7 & r->idx_mask].seq, 7 + r->nidx);
}

static void spoil_len(struct ring *r)
{
	atomic_store(&r->idx[2 & r->idx_mask].payload_len, UINT32_MAX);
}

static void spoil_last_time(struct ring *r)
{
	atomic_store(&r->hdr->last_time_us, UINT64_MAX);
}

static void test_writer(const char *name)
{
	static const struct spoil spoils[] = {
		{ "head and tail at 2^64 - 1", spoil_head_wrap },
		{ "a record past the end of data", spoil_pos_outside },
		{ "a record before the one before it", spoil_pos_back },
		{ "a time before the one before it", spoil_time_back },
		{ "a held entry holding another seq", spoil_seq },
		{ "a record longer than the data area", spoil_len },
		{ "the last time at 2^64 - 1", spoil_last_time },
	};
	struct ring_params p = { .data_size = DATA };
	struct ring_writer w;
	bool created;
	int err;

	for (size_t k = 0; k < sizeof(spoils) / sizeof(spoils[0]); k++) {
		if (make_ring(name, &w) < 0) {
			ok(0, "writer: set up");
			return;
		}
		spoils[k].fn(&w.r);
		ring_writer_close(&w);
		p.recreate = false;
		err = ring_writer_open(name, &p, &w, &created);
		is(err, -EPROTO, "writer: refuses a ring with %s", spoils[k].what);
		if (err == 0)
			ring_writer_close(&w);
		p.recreate = true;
		err = ring_writer_open(name, &p, &w, &created);
		ok(err == 0 && created && ring_head(&w.r) == 1,
		   "writer: --recreate replaces it with an empty ring");
		if (err == 0)
			ring_writer_close(&w);
	}
	/* and an unspoiled one is kept, history and all */
	if (make_ring(name, &w) == 0) {
		ring_writer_close(&w);
		p.recreate = false;
		err = ring_writer_open(name, &p, &w, &created);
		ok(err == 0 && !created && ring_head(&w.r) == NMSG + 1,
		   "writer: a sound ring reopens with its %u messages", NMSG);
		if (err == 0)
			ring_writer_close(&w);
	}
	(void)!ring_unlink(name);
}

int main(void)
{
	char name[64];

	(void)snprintf(name, sizeof(name), "/t-ring-hostile-%ld", (long)getpid());
	if (signal(SIGALRM, on_alarm) == SIG_ERR)
		return 1;
	diag("a copy refused every time, an entry below the tail");
	test_reader(name);
	diag("ring_find_time on a spoiled index");
	test_find_time(name);
	diag("the writer on a spoiled ring");
	test_writer(name);
	return done_testing();
}
