/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the shared-memory history ring (shm/ring.h): creation and geometry, the writer
 * and reader protocols, eviction by space, by index and by age, lapping and torn copies, the
 * time index, restart and crash recovery, header validation, the futex, keepalive times, and
 * one writer racing four readers over ONE mapping, which is what `make tsan` checks
 * (STYLE 12: ThreadSanitizer sees threads, not processes).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"
#include "shm/ring.h"
#include "tests/tap.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#if UNDER_TSAN
/*
 * Every overwrite of bytes a reader copied earlier is a race for TSan (readers never
 * synchronise with the writer: they are read-only), suppressed by tests/tsan.supp. TSan's
 * de-duplication by address searches a list that grows with each report, which made the
 * concurrency test quadratic (minutes). Turning it off only reports more; what is reported
 * is still decided by the suppression file and TSAN_OPTIONS, which is applied after this.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "suppress_equal_addresses=0";
}
#endif

#define KIB (UINT64_C(1) << 10)
#define MS  UINT64_C(1000)    /* microseconds */
#define SEC UINT64_C(1000000) /* microseconds */

/* Every test message: a stored topic "t\0NNNNNN" (the path /t/NNNNNN, seq mod 10^6) and a
 * payload that starts with its seq and ends with a checksum of what precedes it, so a copy that
 * mixes two records, or shows another message, is detected. */
#define T_TOPIC_LEN 8u
#define MSG_MIN	    16u /* seq + checksum */

/* The 64 KiB ring (RING_MIN_DATA) fills with exactly 64 records of 1 KiB: easy to reason about. */
#define SMALL_DATA (64 * KIB)
#define REC_1K	   1024u
#define PAYLOAD_1K (REC_1K - T_TOPIC_LEN)
#define SMALL_RECS (SMALL_DATA / REC_1K)

/* Largest payload a single-threaded test publishes: RING_MAX_RECORD of the largest ring used. */
#define SCRATCH_SIZE (128 * KIB)

/* The concurrency test: a small ring, many messages, several readers (PROTOCOL 3.4 lapping). */
#define CONC_DATA	     (256 * KIB)
#define CONC_N		     (UNDER_TSAN ? UINT64_C(20000) : UINT64_C(200000))
#define CONC_READERS	     4
#define CONC_SMALL_LEN	     100u /* nidx records of this size fill less than half of CONC_DATA */
#define SLOW_N		     UINT64_C(200) /* slow phase: fewer than nidx, and it all fits the data */
#define SLOW_GAP_US	     1000u	   /* pause between slow publishes */
#define READER_WAIT_MS	     100u  /* a reader's ring_wait timeout: a lost wake-up costs this */
#define READER_MAX_ANOMALIES 1000u /* stop a reader that the ring misleads, rather than spin */

static uint8_t scratch[SCRATCH_SIZE];
static uint8_t readbuf[SCRATCH_SIZE];
static unsigned ring_counter;

static void ring_name(char *buf, size_t len)
{
	(void)snprintf(buf, len, "/t-ring-%ld-%u", (long)getpid(), ring_counter++);
}

/* Remove a test ring; a ring already gone is fine (a failed set-up may not have made it). */
static void drop_ring(const char *name)
{
	int err = ring_unlink(name);

	if (err < 0 && err != -ENOENT)
		diag("unable to unlink ring '%s': %s", name, strerror(-err));
}

static uint64_t mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* FNV-1a over 8-byte words, then the odd bytes: cheap enough for 200,000 messages. */
static uint64_t sum64(const uint8_t *p, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	size_t i = 0;

	for (; i + 8 <= len; i += 8)
		h = (h ^ get64(p + i)) * UINT64_C(0x100000001b3);
	for (; i < len; i++)
		h = (h ^ p[i]) * UINT64_C(0x100000001b3);
	return h;
}

static void msg_topic(uint64_t seq, uint8_t topic[T_TOPIC_LEN])
{
	char tmp[16];

	(void)snprintf(tmp, sizeof(tmp), "t/%06u", (unsigned)(seq % 1000000u));
	memcpy(topic, tmp, T_TOPIC_LEN);
	topic[1] = 0; /* segments joined by NUL (shm/topic.h) */
}

static void msg_fill(uint8_t *p, size_t len, uint64_t seq)
{
	uint64_t x = mix64(seq);

	put64(p, seq);
	for (size_t i = 8; i < len - 8; i++)
		p[i] = (uint8_t)((x >> ((i & 7u) * 8u)) + i);
	put64(p + len - 8, sum64(p, len - 8));
}

static bool msg_check(const uint8_t *p, size_t len, uint64_t seq)
{
	return len >= MSG_MIN && get64(p) == seq && get64(p + len - 8) == sum64(p, len - 8);
}

/* Whether buf (a copied record) is test message seq, with payload_len bytes unless 0. */
static bool msg_verify(const uint8_t *buf, const struct ring_rec *rec, uint64_t seq,
		       uint32_t payload_len)
{
	uint8_t topic[T_TOPIC_LEN];

	msg_topic(seq, topic);
	return rec->seq == seq && rec->topic_len == T_TOPIC_LEN &&
	       memcmp(buf, topic, T_TOPIC_LEN) == 0 &&
	       (payload_len == 0 || rec->payload_len == payload_len) &&
	       msg_check(buf + T_TOPIC_LEN, rec->payload_len, seq);
}

static int open_ring(const char *name, uint64_t data_size, uint64_t retention_us, bool recreate,
		     struct ring_writer *w, bool *ret_created)
{
	struct ring_params p = { .data_size = data_size,
				 .retention_us = retention_us,
				 .recreate = recreate };

	return ring_writer_open(name, &p, w, ret_created);
}

/* Publish test message seq with a payload of payload_len bytes, built in buf. 0 or -errno;
 * -EILSEQ if the ring numbered it otherwise. */
static int pub_msg(struct ring_writer *w, uint64_t seq, uint32_t payload_len, uint64_t now_us,
		   uint8_t *buf, uint64_t *ret_time_us)
{
	uint8_t topic[T_TOPIC_LEN];
	uint64_t got, t;
	int err;

	msg_topic(seq, topic);
	msg_fill(buf, payload_len, seq);
	err = ring_publish(w, topic, T_TOPIC_LEN, buf, payload_len, now_us, &got, &t);
	if (err < 0)
		return err;
	if (got != seq)
		return -EILSEQ;
	if (ret_time_us)
		*ret_time_us = t;
	return 0;
}

/* Publish seqs [from, to) with payload_len bytes each, message k at time k * step_us (step 0:
 * the real clock); the number that failed. */
static unsigned pub_range(struct ring_writer *w, uint64_t from, uint64_t to, uint32_t payload_len,
			  uint64_t step_us)
{
	unsigned bad = 0;

	for (uint64_t s = from; s < to; s++)
		if (pub_msg(w, s, payload_len, step_us ? s * step_us : io_now_real_us(), scratch,
			    NULL) < 0)
			bad++;
	return bad;
}

/* Copy message seq whole into buf (topic, then payload) with the public reader. 0, -EAGAIN,
 * -ESTALE (gone, torn, or unreadable), -EMSGSIZE. */
static int read_msg(const struct ring *r, uint64_t seq, uint8_t *buf, size_t cap,
		    struct ring_rec *ret_rec)
{
	struct ring_cursor c;
	struct ring_gap gap;
	int err;

	ring_cursor_init(&c, seq);
	err = ring_read(r, &c, buf, cap, ret_rec, &gap);
	return err == RING_NEXT_GAP ? -ESTALE : err;
}

/* Read and verify test message seq: 0, -EAGAIN, -ESTALE, or -EBADMSG for wrong bytes. */
static int check_msg(const struct ring *r, uint64_t seq, uint32_t payload_len)
{
	struct ring_rec rec;
	int err = read_msg(r, seq, readbuf, sizeof(readbuf), &rec);

	if (err < 0)
		return err;
	return msg_verify(readbuf, &rec, seq, payload_len) ? 0 : -EBADMSG;
}

/* Messages in [from, to) that do not read back intact. */
static unsigned check_range(const struct ring *r, uint64_t from, uint64_t to, uint32_t payload_len)
{
	unsigned bad = 0;

	for (uint64_t s = from; s < to; s++)
		if (check_msg(r, s, payload_len) != 0)
			bad++;
	return bad;
}

static uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

/* Whether a store through the reader's mapping kills a forked child with SIGSEGV. */
static bool store_faults(const struct ring *r)
{
	int status = 0;
	pid_t pid = fork();

	if (pid < 0)
		return false;
	if (pid == 0) {
		struct sigaction sa;

		/* the kernel's verdict, not a sanitizer's handler */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		(void)sigaction(SIGSEGV, &sa, NULL);
		*(volatile uint8_t *)r->data = 0x5a;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return false;
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

static void test_create(void)
{
	struct ring_writer w, w2;
	struct ring_stats *s = NULL, *s2 = NULL;
	uint64_t before, after;
	char name[64];
	struct ring r = { 0 };
	struct stat st;
	bool created = false;
	int fd, err;

	diag("create");
	ring_name(name, sizeof(name));
	before = io_now_real_us();
	err = open_ring(name, 100000, 42 * SEC, false, &w, &created);
	after = io_now_real_us();
	is(err, 0, "create: ring_writer_open makes a new ring");
	if (err < 0)
		return;
	ok(created, "create: *ret_created is true for a new ring");
	is(w.r.data_size, 128 * KIB, "create: data size 100000 rounded up to 128 KiB");
	is(w.r.nidx, RING_MIN_IDX, "create: index at least RING_MIN_IDX entries");
	is(w.r.map_size, RING_HDR_SIZE + RING_MIN_IDX * sizeof(struct ring_idx) + 128 * KIB,
	   "create: mapping is header + index + data");
	is(atomic_load(&w.r.hdr->magic), RING_MAGIC, "create: magic");
	is(w.r.hdr->version, RING_VERSION, "create: version");
	is(w.r.hdr->layout, RING_LAYOUT, "create: layout digest");
	is(w.r.hdr->hdr_size, RING_HDR_SIZE, "create: hdr_size");
	is(w.r.hdr->nidx, RING_MIN_IDX, "create: hdr nidx");
	is(w.r.hdr->data_size, 128 * KIB, "create: hdr data_size");
	is(ring_head(&w.r), 1, "create: head starts at 1");
	is(ring_tail(&w.r), 1, "create: tail starts at 1 (empty)");
	is(ld(&w.r.hdr->data_head), 0, "create: data_head 0");
	is(ld(&w.r.hdr->last_time_us), 0, "create: last_time_us 0");
	is(atomic_load(&w.r.hdr->stamp), 0, "create: stamp even");
	ok(!ring_closed(&w.r), "create: not closed");
	ok(w.r.hdr->created_us >= before && w.r.hdr->created_us <= after,
	   "create: created_us is the creation time");
	ok(w.r.hdr->generation != 0, "create: generation set");
	is(ld(&w.r.hdr->broker_pid), getpid(), "create: broker_pid is the writer's pid");
	is(ld(&w.r.hdr->retention_us), 42 * SEC, "create: retention_us recorded");

	fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	ok(fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 0777) == 0644 &&
		   (uint64_t)st.st_size == w.r.map_size,
	   "create: object is mode 0644 and exactly map_size bytes");
	if (fd >= 0)
		(void)close(fd);

	err = ring_attach(name, &r);
	is(err, 0, "create: ring_attach by a reader");
	if (err == 0) {
		ok(r.hdr != w.r.hdr, "create: the reader has its own mapping");
		is(r.generation, w.r.generation, "create: reader sees the generation");
		is(r.data_size, w.r.data_size, "create: reader sees the data size");
		is(r.nidx, w.r.nidx, "create: reader sees nidx");
		ok(store_faults(&r),
		   "create: a store through the reader's mapping dies of SIGSEGV");
		is(r.data[0], 0, "create: and nothing was written");
	}

	err = ring_stats_attach(name, false, &s);
	is(err, 0, "create: stats object exists (read-only attach)");
	err = ring_stats_attach(name, true, &s2);
	is(err, 0, "create: stats object attaches writable");
	if (s && s2) {
		is(atomic_load(&s->magic), RING_STATS_MAGIC, "create: stats magic");
		is(s->version, RING_VERSION, "create: stats version");
		ring_stats_add(s2, &s2->connections, 3);
		is(atomic_load(&s->connections), 3, "create: stats counters are shared");
	}
	ring_stats_detach(s);
	ring_stats_detach(s2);

	err = open_ring(name, 100000, 0, false, &w2, &created);
	is(err, -EBUSY, "create: a second writer on the same ring gets -EBUSY");
	if (err == 0)
		ring_writer_close(&w2);

	ring_writer_close(&w);
	ok(w.r.hdr == NULL, "create: ring_writer_close unmaps");
	if (r.hdr) {
		is(ld(&r.hdr->broker_pid), 0, "create: clean close zeroes broker_pid");
		ring_detach(&r);
	}
	is(ring_unlink(name), 0, "create: ring_unlink");
	is(ring_attach(name, &r), -ENOENT, "create: attach after unlink is -ENOENT");
	is(ring_stats_attach(name, false, &s), -ENOENT, "create: stats unlinked too");
	is(ring_unlink(name), -ENOENT, "create: unlinking twice is -ENOENT");

	/* other sizes: the minimum, a non-power of two above it, and a larger one */
	{
		static const struct {
			uint64_t ask, data, nidx;
		} sizes[] = {
			{ 0, 64 * KIB, RING_MIN_IDX },
			{ 64 * KIB + 1, 128 * KIB, RING_MIN_IDX },
			{ 1024 * KIB, 1024 * KIB, 4096 },
		};
		for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
			ring_name(name, sizeof(name));
			err = open_ring(name, sizes[i].ask, 0, false, &w, &created);
			ok(err == 0 && w.r.data_size == sizes[i].data && w.r.nidx == sizes[i].nidx,
			   "create: ask %llu bytes, get %llu data and %llu index entries",
			   (unsigned long long)sizes[i].ask, (unsigned long long)sizes[i].data,
			   (unsigned long long)sizes[i].nidx);
			if (err == 0)
				ring_writer_close(&w);
			drop_ring(name);
		}
	}
}

/* Sizes far beyond /dev/shm: -ENOSPC at creation (posix_fallocate), no object left behind, and
 * no hang on a size whose next power of two does not fit 64 bits. */
static void test_create_too_big(void)
{
	struct ring_writer w;
	char name[64];
	struct ring r;
	bool created;
	int err, status = 0;
	pid_t pid;

	diag("create: too big");
	ring_name(name, sizeof(name));
	err = open_ring(name, RING_MAX_DATA, 0, false, &w, &created);
	is(err, -ENOSPC, "too big: a 1 TiB ring is -ENOSPC at creation, not SIGBUS later");
	if (err == 0)
		ring_writer_close(&w);
	is(ring_attach(name, &r), -ENOENT, "too big: the failed creation left no object");

	pid = fork();
	if (pid == 0) {
		alarm(10);
		err = open_ring(name, UINT64_MAX, 0, false, &w, &created);
		_exit(err == -ENOSPC ? 0 : 1);
	}
	ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		   WEXITSTATUS(status) == 0,
	   "too big: data size UINT64_MAX is clamped to RING_MAX_DATA (-ENOSPC, no endless loop)");
	drop_ring(name);
}

static void test_publish_read(void)
{
	static const struct {
		const char *topic;
		uint32_t topic_len;
		const char *payload;
		uint64_t now, want_time;
	} msgs[] = {
		{ "json\0git", 8, "{\"x\":1}", 5000, 5000 }, { "", 0, "[2]", 7000, 7000 },
		{ "a", 1, "\"back in time\"", 3000, 7001 }, /* the clock stepped back */
		{ "a\0b\0c", 5, "null", 7001, 7002 },	    /* equal to the previous time */
		{ "z", 1, "{\"y\":[1,2,3]}", 9000, 9000 },
	};
	struct ring_writer w;
	uint64_t seq, t, bytes = 0;
	char name[64];
	struct ring r;
	bool created;
	int err;

	diag("publish/read");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "publish: open and attach");
		drop_ring(name);
		return;
	}
	is(ring_rec_get(&r, 1, &(struct ring_rec){ 0 }), -EAGAIN, "publish: empty ring: -EAGAIN");
	for (size_t i = 0; i < ARRAY_SIZE(msgs); i++) {
		uint32_t plen = (uint32_t)strlen(msgs[i].payload);

		err = ring_publish(&w, (const uint8_t *)msgs[i].topic, msgs[i].topic_len,
				   (const uint8_t *)msgs[i].payload, plen, msgs[i].now, &seq, &t);
		ok(err == 0 && seq == i + 1 && t == msgs[i].want_time,
		   "publish: message %zu gets seq %zu, time %llu (now %llu)", i + 1, i + 1,
		   (unsigned long long)msgs[i].want_time, (unsigned long long)msgs[i].now);
		bytes += ALIGN_UP((uint64_t)msgs[i].topic_len + plen, 8);
	}
	for (size_t i = 0; i < ARRAY_SIZE(msgs); i++) {
		uint32_t plen = (uint32_t)strlen(msgs[i].payload);
		struct ring_rec rec;

		err = read_msg(&r, i + 1, readbuf, sizeof(readbuf), &rec);
		ok(err == 0 && rec.seq == i + 1 && rec.time_us == msgs[i].want_time &&
			   rec.topic_len == msgs[i].topic_len && rec.payload_len == plen &&
			   memcmp(readbuf, msgs[i].topic, msgs[i].topic_len) == 0 &&
			   memcmp(readbuf + rec.topic_len, msgs[i].payload, plen) == 0 &&
			   rec.pos % 8 == 0 && rec.payload == rec.topic + rec.topic_len,
		   "read: message %zu reads back exactly (topic, payload, time, 8-byte aligned)",
		   i + 1);
	}
	is(ring_head(&r), ARRAY_SIZE(msgs) + 1, "publish: head is the next seq");
	is(ring_tail(&r), 1, "publish: nothing evicted");
	is(ld(&r.hdr->data_head), bytes, "publish: data_head is the aligned bytes written");
	is(ld(&r.hdr->last_time_us), 9000, "publish: last_time_us is the newest message's");
	is(ld(&r.hdr->published), ARRAY_SIZE(msgs), "publish: published counts messages");
	is(ring_wake_word(&r), ARRAY_SIZE(msgs), "publish: the futex word moved once per publish");
	is(ring_rec_get(&r, ring_head(&r), &(struct ring_rec){ 0 }), -EAGAIN,
	   "read: seq == head is -EAGAIN");
	is(ring_rec_get(&r, ring_head(&r) + 1000, &(struct ring_rec){ 0 }), -EAGAIN,
	   "read: seq past head is -EAGAIN");
	is(ring_rec_get(&r, 0, &(struct ring_rec){ 0 }), -ESTALE, "read: seq 0 is -ESTALE");

	/* RING_MAX_RECORD counts the topic and the payload together */
	memset(scratch, 'x', SMALL_DATA / 2);
	err = ring_publish(&w, (const uint8_t *)"t", 1, scratch, (uint32_t)(SMALL_DATA / 2), 10000,
			   &seq, &t);
	is(err, -EMSGSIZE, "publish: topic + payload one byte over RING_MAX_RECORD: -EMSGSIZE");
	is(ring_head(&r), ARRAY_SIZE(msgs) + 1, "publish: a refused message takes no seq");
	err = pub_msg(&w, ARRAY_SIZE(msgs) + 1, (uint32_t)(SMALL_DATA / 2 - T_TOPIC_LEN), 10000,
		      scratch, NULL);
	is(err, 0, "publish: a record of exactly RING_MAX_RECORD is accepted");
	is(check_msg(&r, ARRAY_SIZE(msgs) + 1, (uint32_t)(SMALL_DATA / 2 - T_TOPIC_LEN)), 0,
	   "read: and reads back intact");

	ring_detach(&r);
	ring_writer_close(&w);
	drop_ring(name);
}

/* A model of writer steps b and c (shm/ring.h section 5), to check the ring against. */
struct model {
	uint64_t data_size, nidx, data_head, tail;
	uint64_t *pos; /* by seq */
	unsigned skips;
};

static void model_publish(struct model *m, uint64_t seq, uint64_t len)
{
	uint64_t pos = m->data_head, off = pos & (m->data_size - 1), end;

	if (off + len > m->data_size) {
		pos += m->data_size - off;
		m->skips++;
	}
	end = pos + ALIGN_UP(len, 8);
	while (m->tail < seq && (seq - m->tail >= m->nidx || m->pos[m->tail] + m->data_size < end))
		m->tail++;
	m->pos[seq] = pos;
	m->data_head = end;
}

static uint32_t wrap_len(uint64_t seq)
{
	return MSG_MIN + (uint32_t)(mix64(seq ^ 0x77) % 3000u);
}

static void test_wrap(void)
{
	enum { N = 2000 };
	struct model m = { .data_size = SMALL_DATA, .nidx = RING_MIN_IDX, .tail = 1 };
	unsigned pub_bad = 0, tail_bad = 0, edge_bad = 0, wraps = 0, stale_bad = 0, pos_bad = 0;
	struct ring_writer w;
	uint64_t held_bytes = 0;
	char name[64];
	struct ring r;
	bool created;

	diag("wrap and full ring");
	m.pos = calloc(N + 1, sizeof(*m.pos));
	ring_name(name, sizeof(name));
	if (!m.pos || open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 ||
	    ring_attach(name, &r) < 0) {
		ok(0, "wrap: set up");
		free(m.pos);
		drop_ring(name);
		return;
	}
	for (uint64_t s = 1; s <= N; s++) {
		uint32_t plen = wrap_len(s);
		uint64_t tail;

		if (pub_msg(&w, s, plen, s, scratch, NULL) < 0)
			pub_bad++;
		model_publish(&m, s, T_TOPIC_LEN + plen);
		tail = ring_tail(&r);
		if (tail != m.tail)
			tail_bad++;
		/* the newest and the oldest held message are intact after every publish */
		if (check_msg(&r, s, plen) != 0 || check_msg(&r, tail, wrap_len(tail)) != 0)
			edge_bad++;
	}
	is(pub_bad, 0, "wrap: %d variable-length messages published into 64 KiB", N);
	ok(m.tail > N / 2, "wrap: the tail advanced (to %llu)", (unsigned long long)m.tail);
	is(tail_bad, 0, "wrap: tail after each publish is what section 5 step c gives");
	is(edge_bad, 0, "wrap: newest and oldest held message intact after each publish");
	is(check_range(&r, ring_tail(&r), ring_head(&r), 0), 0,
	   "wrap: every message in [tail, head) reads back intact");
	for (uint64_t s = ring_tail(&r); s < ring_head(&r); s++) {
		struct ring_rec rec;

		if (ring_rec_get(&r, s, &rec) != 0 || rec.pos != m.pos[s] ||
		    (rec.pos & r.data_mask) + rec.topic_len + rec.payload_len > r.data_size)
			pos_bad++;
		held_bytes += ALIGN_UP((uint64_t)rec.topic_len + rec.payload_len, 8);
	}
	is(pos_bad, 0, "wrap: held records sit where the model puts them, none wraps the end");
	ok(held_bytes <= SMALL_DATA, "wrap: held bytes fit the data area (%llu)",
	   (unsigned long long)held_bytes);
	ok(m.skips > 0, "wrap: %u records skipped to the start of data instead of wrapping",
	   m.skips);
	for (uint64_t s = 2; s <= N; s++)
		if (m.pos[s] / SMALL_DATA != m.pos[s - 1] / SMALL_DATA)
			wraps++;
	ok(wraps > 10, "wrap: the data area was reused %u times", wraps);
	for (uint64_t s = 1; s < ring_tail(&r); s++)
		if (ring_rec_get(&r, s, &(struct ring_rec){ 0 }) != -ESTALE)
			stale_bad++;
	is(stale_bad, 0, "wrap: every evicted message gives -ESTALE");
	is(ld(&r.hdr->data_tail), m.pos[ring_tail(&r)],
	   "wrap: data_tail is the oldest record's pos");
	is(ld(&r.hdr->data_head), m.data_head, "wrap: data_head is the end of the newest record");
	is(ld(&r.hdr->evicted_time_us), ring_tail(&r) - 1,
	   "wrap: evicted_time_us is the newest evicted message's time");
	ring_detach(&r);
	ring_writer_close(&w);
	drop_ring(name);
	free(m.pos);
}

static void test_index_capacity(void)
{
	enum { N = 3000 };
	unsigned over = 0, pub_bad = 0;
	struct ring_writer w;
	char name[64];
	struct ring r;
	bool created;

	diag("index capacity");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "index: set up");
		drop_ring(name);
		return;
	}
	for (uint64_t s = 1; s <= N; s++) {
		if (pub_msg(&w, s, MSG_MIN, s, scratch, NULL) < 0)
			pub_bad++;
		if (ring_head(&r) - ring_tail(&r) > r.nidx)
			over++;
	}
	is(pub_bad, 0, "index: %d tiny messages published", N);
	is(over, 0, "index: head - tail <= nidx after every publish");
	is(ring_head(&r) - ring_tail(&r), r.nidx,
	   "index: a full index holds exactly nidx messages");
	ok(ld(&r.hdr->data_head) - ld(&r.hdr->data_tail) < r.data_size / 2,
	   "index: evicted by index capacity while data had room");
	is(check_range(&r, ring_tail(&r), ring_head(&r), MSG_MIN), 0,
	   "index: all nidx held messages intact");
	is(ring_rec_get(&r, ring_tail(&r) - 1, &(struct ring_rec){ 0 }), -ESTALE,
	   "index: the message before tail is -ESTALE");
	ring_detach(&r);
	ring_writer_close(&w);
	drop_ring(name);
}

static void test_lapping(void)
{
	struct ring_writer w;
	uint64_t s, tail, missed, accepted = 1;
	char name[64];
	struct ring r;
	struct ring_rec rec;
	bool created;
	int err;

	diag("lapping");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "lap: set up");
		drop_ring(name);
		return;
	}
	is(pub_range(&w, 1, 2, PAYLOAD_1K, MS), 0, "lap: message 1 published");
	is(check_msg(&r, 1, PAYLOAD_1K), 0, "lap: reader reads message 1 and holds seq 2 next");
	s = 2;
	is(pub_range(&w, 2, 101, PAYLOAD_1K, MS), 0, "lap: writer publishes 99 more 1 KiB records");
	/* 64 records of 1 KiB fill 64 KiB: after 100, messages 37..100 are held */
	tail = ring_tail(&r);
	is(tail, 100 - SMALL_RECS + 1, "lap: the ring holds exactly the newest 64 records");
	is(ring_rec_get(&r, s, &rec), -ESTALE, "lap: the lapped reader's seq gives -ESTALE");
	missed = tail - s;
	is(ring_rec_get(&r, tail - 1, &rec), -ESTALE, "lap: tail - 1 is gone");
	is(check_msg(&r, tail, PAYLOAD_1K), 0, "lap: tail is readable");
	for (s = tail; s < ring_head(&r); s++)
		if (check_msg(&r, s, PAYLOAD_1K) == 0)
			accepted++;
	is(accepted + missed, 100, "lap: accepted + missed (tail - s = %llu) == published",
	   (unsigned long long)missed);

	/* lapped after ring_rec_get succeeded: the copy is refused instead */
	s = ring_tail(&r);
	err = ring_rec_get(&r, s, &rec);
	is(err, 0, "lap: reader locates the oldest message");
	is(pub_range(&w, 101, 102, PAYLOAD_1K, MS), 0, "lap: writer publishes one more");
	ring_copy_from(readbuf, rec.topic, (size_t)rec.topic_len + rec.payload_len);
	ok(err == 0 && !ring_rec_valid(&r, &rec), "lap: ring_rec_valid is false for the copy");
	is(ring_tail(&r) - s, 1, "lap: the reader missed exactly one message");
	ring_detach(&r);
	ring_writer_close(&w);
	drop_ring(name);
}

/*
 * The public reader (shm/ring.h): a message at the cursor, -EMSGSIZE that leaves the cursor,
 * -EAGAIN when caught up, one gap with the exact count and resume time when lapped, an entry
 * that never reads right skipped as a gap of one after RING_READ_TRIES reads, and a seek by
 * time that reports the messages evicted at or after it.
 */
static void test_reader(void)
{
	struct ring_writer w;
	struct ring_cursor c;
	struct ring_rec rec, oldest;
	struct ring_gap gap;
	struct ring_idx *e;
	uint64_t tail, saved;
	char name[64];
	bool created;
	int err;

	diag("reader");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0) {
		ok(0, "reader: set up");
		drop_ring(name);
		return;
	}
	is(pub_range(&w, 1, 3, PAYLOAD_1K, MS), 0, "reader: 2 messages published");
	ring_cursor_init(&c, 1);
	err = ring_read(&w.r, &c, readbuf, sizeof(readbuf), &rec, &gap);
	ok(err == RING_NEXT_MSG && rec.seq == 1 && c.next == 2 &&
		   msg_verify(readbuf, &rec, 1, PAYLOAD_1K),
	   "reader: message 1, intact, and the cursor at 2");
	is(ring_read(&w.r, &c, readbuf, 16, &rec, &gap), -EMSGSIZE,
	   "reader: a buffer too small is -EMSGSIZE");
	ok(c.next == 2 && rec.payload_len == PAYLOAD_1K,
	   "reader: which keeps the cursor and gives the size");
	is(ring_read(&w.r, &c, readbuf, sizeof(readbuf), &rec, &gap), RING_NEXT_MSG,
	   "reader: message 2");
	is(ring_read(&w.r, &c, readbuf, sizeof(readbuf), &rec, &gap), -EAGAIN,
	   "reader: caught up is -EAGAIN");

	is(pub_range(&w, 3, 101, PAYLOAD_1K, MS), 0, "reader: 98 more, which lap it");
	tail = ring_tail(&w.r);
	is(ring_rec_get(&w.r, tail, &oldest), 0, "reader: the oldest held message");
	is(ring_read(&w.r, &c, readbuf, sizeof(readbuf), &rec, &gap), RING_NEXT_GAP,
	   "reader: a lapped cursor gets a gap");
	ok(gap.missed == tail - 3 && gap.resume_seq == tail && c.next == tail,
	   "reader: missed %llu (tail - 3), going on at tail", (unsigned long long)gap.missed);
	is(gap.resume_us, oldest.time_us, "reader: the gap resumes at the oldest message's time");

	/* an entry that does not hold its seq though the message is held: a gap of one */
	e = &w.r.idx[(tail + 1) & w.r.idx_mask];
	saved = atomic_load(&e->seq);
	atomic_store(&e->seq, saved + w.r.nidx);
	is(ring_read(&w.r, &c, readbuf, sizeof(readbuf), &rec, &gap), RING_NEXT_MSG,
	   "reader: message tail");
	is(ring_read(&w.r, &c, readbuf, sizeof(readbuf), &rec, &gap), RING_NEXT_GAP,
	   "reader: an unreadable held entry ends in a gap, not a loop");
	ok(gap.missed == 1 && gap.resume_seq == tail + 2 && c.next == tail + 2,
	   "reader: of one message, going on after it");
	atomic_store(&e->seq, saved);

	/* seeking by time (message s has time s ms) */
	is(ring_cursor_seek_time(&w.r, 1 * MS, &c, &gap), RING_NEXT_GAP,
	   "reader: a seek before the evicted messages reports a gap");
	ok(gap.missed == tail - 1 && c.next == tail,
	   "reader: of the %llu evicted, going on at tail", (unsigned long long)(tail - 1));
	is(ring_cursor_seek_time(&w.r, (tail + 5) * MS, &c, &gap), 0,
	   "reader: a seek inside the held messages");
	is(c.next, tail + 5, "reader: lands on the first message at or after the time");
	ring_writer_close(&w);
	drop_ring(name);
}

static void test_torn(void)
{
	struct ring_rec rec1, rec2, rec3;
	struct ring_writer w;
	char name[64];
	struct ring r;
	bool created;
	int e1, e2, e3;

	diag("torn reads");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "torn: set up");
		drop_ring(name);
		return;
	}
	is(pub_range(&w, 1, SMALL_RECS + 1, PAYLOAD_1K, MS), 0,
	   "torn: fill 64 KiB with 1 KiB records");
	is(ring_tail(&r), 1, "torn: the ring is exactly full, nothing evicted");
	e1 = ring_rec_get(&r, 1, &rec1);
	e2 = ring_rec_get(&r, 2, &rec2);
	e3 = ring_rec_get(&r, 3, &rec3);
	ok(e1 == 0 && e2 == 0 && e3 == 0, "torn: reader locates messages 1, 2 and 3");
	if (e1 || e2 || e3)
		goto out;

	/* message 65 lands exactly on message 1's bytes */
	is(pub_range(&w, SMALL_RECS + 1, SMALL_RECS + 2, PAYLOAD_1K, MS), 0,
	   "torn: writer overwrites message 1's region");
	ring_copy_from(readbuf, rec1.topic, rec1.topic_len);
	ring_copy_from(readbuf + rec1.topic_len, rec1.payload, rec1.payload_len);
	ok(msg_check(readbuf + T_TOPIC_LEN, PAYLOAD_1K, SMALL_RECS + 1),
	   "torn: the late copy of message 1 holds message 65's bytes");
	ok(!ring_rec_valid(&r, &rec1), "torn: ring_rec_valid is false for it");

	/* a shorter message 66 covers the first half of message 2: a mixed copy */
	is(pub_range(&w, SMALL_RECS + 2, SMALL_RECS + 3, 500, MS), 0,
	   "torn: writer overwrites half of message 2");
	ring_copy_from(readbuf, rec2.topic, rec2.topic_len);
	ring_copy_from(readbuf + rec2.topic_len, rec2.payload, rec2.payload_len);
	msg_fill(scratch, PAYLOAD_1K, 2);
	ok(get64(readbuf + T_TOPIC_LEN) == SMALL_RECS + 2 &&
		   memcmp(readbuf + 512, scratch + 512 - T_TOPIC_LEN, REC_1K - 512) == 0 &&
		   !msg_check(readbuf + T_TOPIC_LEN, PAYLOAD_1K, 2) &&
		   !msg_check(readbuf + T_TOPIC_LEN, PAYLOAD_1K, SMALL_RECS + 2),
	   "torn: the late copy of message 2 starts as message 66 and ends as message 2");
	ok(!ring_rec_valid(&r, &rec2), "torn: ring_rec_valid is false for it");

	ring_copy_from(readbuf, rec3.topic, rec3.topic_len);
	ring_copy_from(readbuf + rec3.topic_len, rec3.payload, rec3.payload_len);
	ok(ring_rec_valid(&r, &rec3) && msg_verify(readbuf, &rec3, 3, PAYLOAD_1K),
	   "torn: message 3, untouched, still copies whole and valid");
out:
	ring_detach(&r);
	ring_writer_close(&w);
	drop_ring(name);
}

struct find_case {
	uint64_t time_us, seq;
};

static void test_find_time(void)
{
	static const struct find_case cases[] = {
		{ 0, 1 },      { 1, 1 },      { 999, 1 },	  { 1000, 1 }, { 1001, 2 },
		{ 1500, 2 },   { 2000, 2 },   { 5000, 5 },	  { 5001, 6 }, { 9999, 10 },
		{ 10000, 10 }, { 10001, 11 }, { UINT64_MAX, 11 },
	};
	struct ring_writer w;
	uint64_t seq = 0, lo = 0, tail, head;
	unsigned bad = 0;
	char name[64];
	struct ring r;
	bool created;
	int err;

	diag("time index");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "find: set up");
		drop_ring(name);
		return;
	}
	err = ring_find_time(&r, 5, &seq, &lo);
	ok(err == 0 && seq == 1 && lo == 1, "find: empty ring gives head (1)");
	is(pub_range(&w, 1, 11, MSG_MIN, MS), 0, "find: messages 1..10 at times 1000..10000");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		err = ring_find_time(&r, cases[i].time_us, &seq, &lo);
		ok(err == 0 && seq == cases[i].seq && lo == 1, "find: time %llu -> seq %llu, lo 1",
		   (unsigned long long)cases[i].time_us, (unsigned long long)cases[i].seq);
	}

	/* index full: the oldest held message is still found */
	is(pub_range(&w, 11, 3001, MSG_MIN, MS), 0, "find: 2990 more, the index is full");
	head = ring_head(&r);
	tail = ring_tail(&r);
	is(head - tail, r.nidx, "find: head - tail == nidx");
	err = ring_find_time(&r, tail * MS, &seq, &lo);
	ok(err == 0 && seq == tail, "find: a time equal to the oldest held message's finds it");
	err = ring_find_time(&r, tail * MS - 500, &seq, &lo);
	ok(err == 0 && seq == tail && lo <= tail,
	   "find: a time just before the oldest held message finds it (seq %llu, tail %llu)",
	   (unsigned long long)seq, (unsigned long long)tail);
	err = ring_find_time(&r, (tail + 5) * MS + 1, &seq, &lo);
	ok(err == 0 && seq == tail + 6, "find: a time between held messages");
	err = ring_find_time(&r, 1, &seq, &lo);
	ok(err == 0 && seq == lo && lo > 1 && lo + r.nidx >= head,
	   "find: a time before every readable entry gives lo");
	for (uint64_t s = tail; s < head; s += 7) {
		if (ring_find_time(&r, s * MS, &seq, &lo) != 0 || seq != s)
			bad++;
		if (ring_find_time(&r, s * MS - 1, &seq, &lo) != 0 || seq != s)
			bad++;
	}
	is(bad, 0, "find: every held message is found by its time and by the time before it");
	ring_writer_close(&w);
	ring_detach(&r);
	drop_ring(name);

	/* evicted by data space: entries of evicted messages stay readable (ret_lo) */
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "find: set up");
		drop_ring(name);
		return;
	}
	is(pub_range(&w, 1, 101, PAYLOAD_1K, MS), 0, "find: 100 records of 1 KiB, 37..100 held");
	tail = ring_tail(&r);
	is(tail, 37, "find: tail is 37");
	err = ring_find_time(&r, 10 * MS, &seq, &lo);
	ok(err == 0 && seq == 10 && lo == 1,
	   "find: an evicted message's time is still found (seq 10, lo 1)");
	is(ring_rec_get(&r, 10, &(struct ring_rec){ 0 }), -ESTALE,
	   "find: while the message itself is gone");
	err = ring_find_time(&r, 50 * MS + 1, &seq, &lo);
	ok(err == 0 && seq == 51, "find: a held message's time after eviction");
	err = ring_find_time(&r, 200 * MS, &seq, &lo);
	ok(err == 0 && seq == 101, "find: a time after every message gives head");
	ring_writer_close(&w);
	ring_detach(&r);
	drop_ring(name);
}

static void test_retention(void)
{
	const uint64_t t0 = UINT64_C(1000000000000), ret = 10 * SEC;
	struct ring_writer w;
	uint32_t wake;
	char name[64];
	struct ring r;
	bool created;
	unsigned bad = 0;

	diag("retention");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, ret, false, &w, &created) < 0 ||
	    ring_attach(name, &r) < 0) {
		ok(0, "expire: set up");
		drop_ring(name);
		return;
	}
	for (uint64_t k = 1; k <= 10; k++)
		if (pub_msg(&w, k, 100, t0 + k * SEC, scratch, NULL) < 0)
			bad++;
	is(bad, 0, "expire: 10 messages, one second apart");
	is(ring_expire(&w, t0 + 4 * SEC + ret), 3, "expire: at t0+14s the 3 older than t0+4s go");
	is(ring_expire(&w, t0 + 5 * SEC + ret), 1, "expire: at t0+15s one more goes");
	is(ring_tail(&r), 5, "expire: tail is the first message young enough");
	is(ld(&r.hdr->evicted_time_us), t0 + 4 * SEC, "expire: evicted_time_us is the newest gone");
	is(ring_rec_get(&r, 4, &(struct ring_rec){ 0 }), -ESTALE, "expire: message 4 is gone");
	is(check_range(&r, 5, 11, 100), 0, "expire: messages 5..10 intact");
	is(ld(&r.hdr->data_tail), (uint64_t)ALIGN_UP(T_TOPIC_LEN + 100u, 8u) * 4,
	   "expire: data_tail is message 5's position");
	is(ring_expire(&w, t0 + 5 * SEC + ret), 0, "expire: again at the same time: none");
	wake = ring_wake_word(&r);
	is(ring_expire(&w, t0 + 100 * SEC), 6, "expire: far in the future: all 6 left go");
	ok(ring_wake_word(&r) != wake, "expire: an eviction wakes the readers");
	is(ring_tail(&r), ring_head(&r), "expire: the ring is empty");
	is(ld(&r.hdr->data_tail), ld(&r.hdr->data_head),
	   "expire: data_tail == data_head when empty");
	is(ld(&r.hdr->evicted_time_us), t0 + 10 * SEC, "expire: evicted_time_us is message 10's");
	is(pub_msg(&w, 11, 100, t0 + 101 * SEC, scratch, NULL), 0,
	   "expire: publish after emptying");
	is(check_msg(&r, 11, 100), 0, "expire: and it reads back valid");
	is(ring_expire(&w, ret - 1), 0,
	   "expire: a clock earlier than the retention evicts nothing");
	ring_writer_close(&w);

	/* no retention configured: nothing expires */
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) == 0) {
		is(ring_expire(&w, UINT64_MAX), 0, "expire: retention 0 never expires");
		is(ld(&r.hdr->retention_us), 0, "expire: the reopened writer records retention 0");
		ring_writer_close(&w);
	}
	ring_detach(&r);
	drop_ring(name);
}

static void test_restart(void)
{
	struct ring_writer w;
	uint64_t head, t, gen;
	char name[64];
	struct ring r, r2;
	uint32_t stamp;
	bool created = true;
	int err;

	diag("restart");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "restart: set up");
		drop_ring(name);
		return;
	}
	is(pub_range(&w, 1, 6, 100, MS), 0, "restart: 5 messages");
	ring_writer_close(&w);
	is(ld(&r.hdr->broker_pid), 0, "restart: closed cleanly");
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	is(err, 0, "restart: reopen the same ring");
	if (err < 0)
		goto out_detach;
	ok(!created, "restart: not created again");
	is(ld(&w.r.hdr->broker_pid), getpid(), "restart: broker_pid set again");
	is(ring_head(&w.r), 6, "restart: head intact");
	is(check_range(&w.r, 1, 6, 100), 0, "restart: history intact (writer's mapping)");
	is(check_range(&r, 1, 6, 100), 0, "restart: history intact (reader attached before)");
	err = pub_msg(&w, 6, 100, 1, scratch, &t);
	ok(err == 0 && t == 5 * MS + 1,
	   "restart: publishing continues at seq head, times increase");
	is(check_msg(&r, 6, 100), 0, "restart: the old reader reads the new message");

	/* a crash between stamp steps a and f: stamp odd, an entry and bytes half written */
	head = ring_head(&w.r);
	stamp = atomic_fetch_add(&w.r.hdr->stamp, 1) + 1;
	ok((stamp & 1u) != 0, "restart: stamp left odd (crash simulated)");
	is(ring_keepalive_time(&r, &t, &head), -EAGAIN, "restart: no keepalive time while odd");
	atomic_store(&w.r.idx[head & w.r.idx_mask].seq, 0);
	memset(w.r.data + (ld(&w.r.hdr->data_head) & w.r.data_mask), 0xee, 200);
	ring_writer_close(&w);
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	is(err, 0, "restart: reopen after the crash");
	if (err < 0)
		goto out_detach;
	ok(!(atomic_load(&w.r.hdr->stamp) & 1u), "restart: stamp repaired to even");
	is(ring_keepalive_time(&r, &t, &head), 0, "restart: keepalive times work again");
	is(ring_head(&r), 7, "restart: the cut-short publish never moved head");
	is(pub_msg(&w, 7, 100, io_now_real_us(), scratch, NULL), 0,
	   "restart: its seq is simply published anew");
	is(check_range(&r, 1, 8, 100), 0, "restart: every message intact for the old reader");
	ring_writer_close(&w);

	/* another size: refused, and the ring is left alone */
	err = open_ring(name, 2 * SMALL_DATA, 0, false, &w, &created);
	is(err, -EEXIST, "restart: reopen with another size is -EEXIST");
	if (err == 0)
		ring_writer_close(&w);
	is(ring_head(&r), 8, "restart: the refused open changed nothing");
	ok(!ring_closed(&r), "restart: not closed");

	/* --recreate: a new ring; readers of the old one learn it is closed */
	gen = r.generation;
	err = open_ring(name, 2 * SMALL_DATA, 0, true, &w, &created);
	is(err, 0, "restart: recreate with another size");
	if (err < 0)
		goto out_detach;
	ok(created, "restart: recreate makes a new ring");
	ok(ring_closed(&r), "restart: the old reader sees ring_closed()");
	ok(w.r.generation != gen, "restart: the new ring has a new generation");
	is(ring_head(&w.r), 1, "restart: the new ring is empty");
	is(check_msg(&r, 7, 100), 0, "restart: the old mapping still reads its history");
	err = ring_attach(name, &r2);
	is(err, 0, "restart: re-attach by name");
	if (err == 0) {
		ok(r2.generation == w.r.generation && r2.data_size == 2 * SMALL_DATA &&
			   !ring_closed(&r2),
		   "restart: re-attach finds the new ring");
		ring_detach(&r2);
	}
	ring_writer_close(&w);
out_detach:
	ring_detach(&r);
	drop_ring(name);
}

/*
 * A crash inside step c of a publish whose record skipped to the start of data and evicted
 * every message: tail == head and data_tail = the skipped-to position, but data_head (step f)
 * still behind it. Also a crash between the tail and data_tail stores. After recovery, records
 * must validate and data_tail must be the oldest held record's position.
 */
static void test_crash_recovery(void)
{
	struct ring_writer w;
	uint64_t head, tail;
	char name[64];
	struct ring r;
	bool created;
	int err;

	diag("crash recovery");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "crash: set up");
		drop_ring(name);
		return;
	}
	/* records of 8 KiB at 0 and 32 KiB at 8 KiB: data_head 40 KiB */
	ok(pub_msg(&w, 1, 8 * 1024 - T_TOPIC_LEN, MS, scratch, NULL) == 0 &&
		   pub_msg(&w, 2, 32 * 1024 - T_TOPIC_LEN, 2 * MS, scratch, NULL) == 0,
	   "crash: two records, 8 and 32 KiB");
	is(ld(&w.r.hdr->data_head), 40 * 1024, "crash: data_head at 40 KiB");
	/* what step c of a 32 KiB publish leaves: pos 64 KiB, both evicted, stamp odd */
	atomic_fetch_add(&w.r.hdr->stamp, 1);
	atomic_store(&w.r.hdr->evicted_time_us, 2 * MS);
	atomic_store(&w.r.hdr->tail, 3);
	atomic_store(&w.r.hdr->data_tail, SMALL_DATA);
	ring_writer_close(&w);
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	is(err, 0, "crash: reopen");
	if (err < 0)
		goto out;
	is(pub_msg(&w, 3, 100, 3 * MS, scratch, NULL), 0, "crash: publish after recovery");
	is(check_msg(&r, 3, 100), 0, "crash: the new message validates (not taken for torn)");
	ok(ld(&r.hdr->data_tail) <= ld(&w.r.idx[3 & w.r.idx_mask].pos),
	   "crash: data_tail not past the only held record");

	/* a crash between the tail and data_tail stores of step c */
	is(pub_range(&w, 4, 10, 100, MS), 0, "crash: more messages");
	head = ring_head(&w.r);
	tail = ring_tail(&w.r);
	atomic_fetch_add(&w.r.hdr->stamp, 1);
	atomic_store(&w.r.hdr->tail, tail + 2);
	ring_writer_close(&w);
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	is(err, 0, "crash: reopen again");
	if (err < 0)
		goto out;
	is(ld(&r.hdr->data_tail), ld(&r.idx[(tail + 2) & r.idx_mask].pos),
	   "crash: recovery sets data_tail to the oldest held record's position");
	is(ring_head(&r), head, "crash: head unchanged");
	is(check_range(&r, tail + 2, head, 100), 0, "crash: held messages intact");
	ring_writer_close(&w);
out:
	ring_detach(&r);
	drop_ring(name);
}

/* Version 2 records: [id][topic][payload], id_len in the index entry (shm/ring.h section 2). */
static void test_ids(void)
{
	static const uint8_t id[] = "gph1-00000000000000000001-0123456789abcdef";
	const uint32_t id_len = (uint32_t)sizeof(id) - 1;
	uint8_t topic[T_TOPIC_LEN], copy[256];
	struct ring_writer w;
	struct ring_rec rec;
	uint64_t seq, t, pos, end;
	char name[64];
	struct ring r;
	bool created;
	int err;

	diag("message ids in records");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "ids: set up");
		drop_ring(name);
		return;
	}
	is(r.hdr->version, RING_VERSION,
	   "the ring is this build's RING_VERSION (4 on: ids in records)");
	msg_topic(1, topic);
	msg_fill(scratch, 100, 1);
	err = ring_publish_id(&w, id, id_len, topic, T_TOPIC_LEN, scratch, 100, MS, &seq, &t);
	is(err, 0, "ids: publish with an id");
	is(ring_rec_get(&r, 1, &rec), 0, "ids: read it");
	is(rec.id_len, id_len, "ids: id_len");
	is(rec.topic_len, T_TOPIC_LEN, "ids: topic_len");
	is(rec.payload_len, 100, "ids: payload_len");
	ok(rec.id == r.data + (rec.pos & r.data_mask), "ids: the id comes first");
	ok(rec.topic == rec.id + id_len && rec.payload == rec.topic + T_TOPIC_LEN,
	   "ids: then the topic, then the payload");
	ring_copy_from(copy, rec.id, (size_t)ring_rec_len(&rec));
	ok(ring_rec_valid(&r, &rec) && memcmp(copy, id, id_len) == 0 &&
		   memcmp(copy + id_len, topic, T_TOPIC_LEN) == 0 &&
		   msg_check(copy + id_len + T_TOPIC_LEN, 100, 1),
	   "ids: one copy from id holds id, topic and payload");
	is(check_msg(&r, 1, 100), 0,
	   "ids: a reader that ignores ids reads topic and payload intact");
	is(ld(&r.hdr->data_head), ALIGN_UP((uint64_t)id_len + T_TOPIC_LEN + 100, 8),
	   "ids: data_head counts the id");

	is(pub_msg(&w, 2, 100, 2 * MS, scratch, NULL), 0, "ids: publish without an id");
	is(ring_rec_get(&r, 2, &rec), 0, "ids: read it");
	ok(rec.id_len == 0 && rec.topic == rec.id, "ids: no id, the topic is at pos");

	/* limits */
	is(ring_publish_id(&w, scratch, RING_MAX_ID + 1, topic, T_TOPIC_LEN, scratch, 100, 3 * MS,
			   &seq, &t),
	   -EMSGSIZE, "ids: an id over RING_MAX_ID is refused");
	is(ring_publish(&w, scratch, RING_MAX_TOPIC + 1, scratch, 100, 3 * MS, &seq, &t), -EMSGSIZE,
	   "ids: a topic over RING_MAX_TOPIC is refused");
	is(ring_publish_id(&w, id, id_len, topic, T_TOPIC_LEN, scratch,
			   (uint32_t)(RING_MAX_RECORD(SMALL_DATA) - T_TOPIC_LEN), 3 * MS, &seq, &t),
	   -EMSGSIZE, "ids: the id counts against RING_MAX_RECORD");
	is(ring_head(&r), 3, "ids: nothing refused was stored");

	/* a record whose topic and payload would fit before the end of data, but not with its id,
	 * starts over at the beginning: fill up to 24 bytes before the end (two records, as one
	 * may not take half the ring), then 8 bytes of topic, 8 of payload and the id */
	pos = ld(&r.hdr->data_head);
	end = (SMALL_DATA - pos - 24) / 2 & ~UINT64_C(7);
	ok(pub_msg(&w, 3, (uint32_t)(end - T_TOPIC_LEN), 3 * MS, scratch, NULL) == 0 &&
		   pub_msg(&w, 4, (uint32_t)(SMALL_DATA - pos - 24 - end - T_TOPIC_LEN), 3 * MS,
			   scratch, NULL) == 0,
	   "ids: fill up to 24 bytes before the end");
	is(ld(&r.hdr->data_head), SMALL_DATA - 24, "ids: 24 bytes left");
	msg_topic(5, topic);
	msg_fill(scratch, 8, 5);
	is(ring_publish_id(&w, id, id_len, topic, T_TOPIC_LEN, scratch, 8, 4 * MS, &seq, &t), 0,
	   "ids: a record that fits only without its id");
	is(ring_rec_get(&r, 5, &rec), 0, "ids: read it");
	is(rec.pos, SMALL_DATA, "ids: it starts over at the beginning of data");
	is(check_msg(&r, 4, 0), 0, "ids: the record before it is intact");

	/* recovery computes the end of the newest record with its id */
	end = rec.pos + ALIGN_UP(ring_rec_len(&rec), 8);
	atomic_store(&w.r.hdr->data_head, rec.pos);
	atomic_fetch_add(&w.r.hdr->stamp, 1);
	ring_writer_close(&w);
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	is(err, 0, "ids: reopen after a crash");
	if (err == 0) {
		is(ld(&r.hdr->data_head), end,
		   "ids: recovery puts data_head after the id'd record");
		ring_writer_close(&w);
	}
	ring_detach(&r);
	drop_ring(name);
}

static void test_validation(void)
{
	static _Alignas(64) uint8_t copy[RING_HDR_SIZE];
	struct ring_hdr *h = (struct ring_hdr *)copy;
	struct ring_writer w;
	char name[64], junk[64];
	struct ring r;
	bool created;
	size_t map, size;
	uint32_t saved;
	void *base;
	int fd, err;

	diag("validation");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0) {
		ok(0, "validate: set up");
		drop_ring(name);
		return;
	}
	map = w.r.map_size;

	/* corruptions of a copy of the header page */
#define VALIDATE_COPY(what, stmt)                                                    \
	do {                                                                         \
		memcpy(copy, (const void *)w.r.hdr, sizeof(copy));                   \
		stmt;                                                                \
		is(ring_validate(h, map), -EPROTO, "validate: %s is -EPROTO", what); \
	} while (0)
	memcpy(copy, (const void *)w.r.hdr, sizeof(copy));
	is(ring_validate(h, map), 0, "validate: an intact copy validates");
	VALIDATE_COPY("wrong magic", atomic_store(&h->magic, RING_MAGIC ^ 1u));
	VALIDATE_COPY("magic 0 (being created)", atomic_store(&h->magic, 0));
	VALIDATE_COPY("another version", h->version = RING_VERSION + 1);
	VALIDATE_COPY("another layout", h->layout = RING_LAYOUT + 1);
	VALIDATE_COPY("another hdr_size", h->hdr_size = RING_HDR_SIZE * 2);
	VALIDATE_COPY("nidx not a power of two", h->nidx = 1000);
	VALIDATE_COPY("nidx not matching the size", h->nidx = UINT64_C(2) * RING_MIN_IDX);
	VALIDATE_COPY("data_size below RING_MIN_DATA", h->data_size = 32 * KIB);
	VALIDATE_COPY("data_size not matching the size", h->data_size = 2 * SMALL_DATA);
	VALIDATE_COPY("data_size not a power of two", h->data_size = SMALL_DATA + 8);
	memcpy(copy, (const void *)w.r.hdr, sizeof(copy));
	h->version = RING_VERSION + 1;
	ok(ring_validate_why(h, map, junk, sizeof(junk)) == -EPROTO && strstr(junk, "version"),
	   "validate: the reason names the version ('%s')", junk);
	memcpy(copy, (const void *)w.r.hdr, sizeof(copy));
	ok(ring_validate_why(h, map - 1, junk, sizeof(junk)) == -EPROTO &&
		   strstr(junk, "the header describes"),
	   "validate: the reason names the size ('%s')", junk);
	ok(ring_validate_why(h, map, junk, sizeof(junk)) == 0,
	   "validate: no reason for a good one");
	is(ring_validate(h, map - 1), -EPROTO, "validate: a mapping one byte short is -EPROTO");
	is(ring_validate(h, map + 4096), -EPROTO, "validate: a mapping too long is -EPROTO");
	is(ring_validate(h, RING_HDR_SIZE - 1), -EPROTO, "validate: smaller than a header");
#undef VALIDATE_COPY

	/* the same through the writer's mapping, as a reader would find it */
	saved = atomic_load(&w.r.hdr->magic);
	atomic_store(&w.r.hdr->magic, UINT32_C(0x12345678));
	is(ring_attach(name, &r), -EPROTO, "validate: attach to a ring with bad magic: -EPROTO");
	atomic_store(&w.r.hdr->magic, saved);
	w.r.hdr->version = RING_VERSION + 1;
	is(ring_attach(name, &r), -EPROTO,
	   "validate: attach to a ring of another version: -EPROTO");
	w.r.hdr->version = RING_VERSION;
	w.r.hdr->layout = RING_LAYOUT ^ 0x100u;
	is(ring_attach(name, &r), -EPROTO, "validate: attach to a ring of another layout: -EPROTO");
	w.r.hdr->layout = RING_LAYOUT;
	err = ring_attach(name, &r);
	is(err, 0, "validate: restored, it attaches");
	if (err == 0)
		ring_detach(&r);

	/* the writer refuses positions no writer leaves: more held than the index, tail past head */
	{
		const uint64_t head = atomic_load(&w.r.hdr->head),
			       tail = atomic_load(&w.r.hdr->tail);
		const uint64_t bad[][2] = { { head + w.r.nidx + 1, 1 },
					    { head, head + 1 },
					    { head, 0 } };

		for (size_t k = 0; k < ARRAY_SIZE(bad); k++) {
			atomic_store(&w.r.hdr->head, bad[k][0]);
			atomic_store(&w.r.hdr->tail, bad[k][1]);
			ring_writer_close(&w);
			is(open_ring(name, SMALL_DATA, 0, false, &w, &created), -EPROTO,
			   "validate: writer refuses head %" PRIu64 ", tail %" PRIu64, bad[k][0],
			   bad[k][1]);
			err = ring_map(name, true, &base, &size);
			ok(err == 0, "validate: mapped to restore it");
			if (err < 0) {
				drop_ring(name);
				return;
			}
			atomic_store(&((struct ring_hdr *)base)->head, head);
			atomic_store(&((struct ring_hdr *)base)->tail, tail);
			(void)munmap(base, size);
			err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
			ok(err == 0 && !created, "validate: restored, the writer opens it again");
			if (err < 0) {
				drop_ring(name);
				return;
			}
		}
	}

	/* the writer refuses a ring of a newer version (a downgrade), unless told to recreate it */
	w.r.hdr->version = RING_VERSION + 1;
	ring_writer_close(&w);
	is(open_ring(name, SMALL_DATA, 0, false, &w, &created), -EPROTO,
	   "validate: writer refuses a ring of a newer version with -EPROTO");
	err = open_ring(name, SMALL_DATA, 0, true, &w, &created);
	ok(err == 0 && created && !w.replaced_version, "validate: recreate replaces it");
	if (err < 0) {
		drop_ring(name);
		return;
	}
	/* an older version's ring (an upgrade) is replaced at open, and says which it was */
	w.r.hdr->version = RING_VERSION - 1;
	ring_writer_close(&w);
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	ok(err == 0 && created, "validate: an older version's ring is replaced without recreate");
	is(err == 0 ? w.replaced_version : 0, RING_VERSION - 1,
	   "validate: replaced_version names the older version");
	if (err == 0) {
		ok(w.r.hdr->version == RING_VERSION, "validate: the new ring is of this version");
		ring_writer_close(&w);
	}
	err = open_ring(name, SMALL_DATA, 0, false, &w, &created);
	ok(err == 0 && !created && !w.replaced_version, "validate: then it is kept as usual");
	if (err == 0)
		ring_writer_close(&w);
	drop_ring(name);

	/* objects that are not rings */
	ring_name(junk, sizeof(junk));
	fd = shm_open(junk, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	ok(fd >= 0, "validate: scratch object");
	if (fd >= 0) {
		ok(ftruncate(fd, 100) == 0, "validate: truncated to 100 bytes");
		is(ring_attach(junk, &r), -EPROTO, "validate: a truncated object is -EPROTO");
		ok(ftruncate(fd, (off_t)map) == 0, "validate: zeros, ring-sized");
		is(ring_attach(junk, &r), -EPROTO, "validate: a zeroed object is -EPROTO");
		is(open_ring(junk, SMALL_DATA, 0, false, &w, &created), -EPROTO,
		   "validate: the writer refuses it too, rather than guessing");
		(void)close(fd);
		(void)shm_unlink(junk);
	}
	is(ring_attach(junk, &r), -ENOENT, "validate: a missing ring is -ENOENT");
}

struct waiter {
	const struct ring *r;
	uint32_t seen, timeout_ms;
	atomic_bool ready;
	int err;
	uint64_t start_us, elapsed_us, head_before, head_after;
};

static void *waiter_main(void *arg)
{
	struct waiter *wt = arg;

	wt->head_before = ring_head(wt->r);
	wt->seen = ring_wake_word(wt->r);
	wt->start_us = io_now_mono_us();
	atomic_store(&wt->ready, true);
	wt->err = ring_wait(wt->r, wt->seen, wt->timeout_ms);
	wt->elapsed_us = io_now_mono_us() - wt->start_us;
	wt->head_after = ring_head(wt->r);
	return NULL;
}

static void test_futex(void)
{
	struct waiter wt = { .timeout_ms = 5000 };
	struct ring_writer w;
	uint64_t t0, el;
	pthread_t tid;
	char name[64];
	struct ring r;
	bool created;
	int err;

	diag("futex");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "futex: set up");
		drop_ring(name);
		return;
	}
	/* The waiter uses its own mapping: a private futex would key on the address and never
	 * be woken through the writer's mapping. */
	wt.r = &r;
	if (pthread_create(&tid, NULL, waiter_main, &wt) != 0) {
		ok(0, "futex: thread");
		goto out;
	}
	while (!atomic_load(&wt.ready))
		(void)usleep(1000);
	(void)usleep(100 * 1000);
	err = pub_msg(&w, 1, MSG_MIN, io_now_real_us(), scratch, NULL);
	(void)pthread_join(tid, NULL);
	is(err, 0, "futex: publish");
	is(wt.err, 0, "futex: ring_wait returns 0 on a wake-up");
	ok(wt.elapsed_us >= 90 * MS, "futex: the waiter slept until the publish (%llu us)",
	   (unsigned long long)wt.elapsed_us);
	ok(wt.elapsed_us < 1000 * MS, "futex: woken well before the 5 s timeout");
	ok(wt.head_after > wt.head_before, "futex: the waiter sees the new head");

	t0 = io_now_mono_us();
	err = ring_wait(&r, ring_wake_word(&r), 200);
	el = io_now_mono_us() - t0;
	is(err, 0, "futex: ring_wait on a quiet ring returns 0 at the timeout");
	ok(el >= 190 * MS && el < 2000 * MS, "futex: after about 200 ms (%llu us)",
	   (unsigned long long)el);

	t0 = io_now_mono_us();
	err = ring_wait(&r, ring_wake_word(&r) - 1, 5000);
	el = io_now_mono_us() - t0;
	ok(err == 0 && el < 100 * MS,
	   "futex: a stale seen value returns at once (no lost wake-up)");
out:
	ring_detach(&r);
	ring_writer_close(&w);
	drop_ring(name);
}

static void test_keepalive(void)
{
	struct ring_writer w;
	uint64_t t = 0, head = 0, mt = 0, now; /* mt: pub_msg() sets it only on success */
	char name[64];
	struct ring r;
	bool created;
	int err;

	diag("keepalive");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "keepalive: set up");
		drop_ring(name);
		return;
	}
	now = io_now_real_us();
	err = ring_keepalive_time(&r, &t, &head);
	ok(err == 0 && t >= now && head == 1, "keepalive: empty ring: the clock, head 1");
	/* a message stamped 10 s in the future: the keepalive must not go before it */
	err = pub_msg(&w, 1, MSG_MIN, io_now_real_us() + 10 * SEC, scratch, &mt);
	is(err, 0, "keepalive: a message timed 10 s ahead");
	err = ring_keepalive_time(&r, &t, &head);
	ok(err == 0 && t == mt + 1, "keepalive: time is last message time + 1");
	is(head, ring_head(&r), "keepalive: head equals the ring's head");
	err = pub_msg(&w, 2, MSG_MIN, io_now_real_us(), scratch, &mt);
	ok(err == 0 && mt > t - 1, "keepalive: the next message's time is >= the keepalive time");

	ring_writer_close(&w);
	ring_detach(&r);
	drop_ring(name);

	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, 0, false, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "keepalive: set up");
		drop_ring(name);
		return;
	}
	err = pub_msg(&w, 1, MSG_MIN, 1000, scratch, &mt);
	now = io_now_real_us();
	err = err ? err : ring_keepalive_time(&r, &t, &head);
	ok(err == 0 && t >= now && t > mt && head == 2,
	   "keepalive: after an old message the time is the clock");
	ring_writer_close(&w);
	ring_detach(&r);
	drop_ring(name);
}

/* ---- one writer, several readers, one mapping --------------------------------------- */

struct conc_reader {
	pthread_t tid;
	struct ring r; /* a copy of the writer's handle: the same mapping */
	uint64_t total;
	uint64_t accepted, missed, waits, bad, disorder, anomalies, errors;
	uint8_t buf[RING_MAX_RECORD(CONC_DATA)];
};

struct conc_writer {
	pthread_t tid;
	struct ring_writer *w;
	uint64_t total;
	unsigned gap_us;
	uint32_t max_len;
	uint64_t errors;
	uint8_t buf[RING_MAX_RECORD(CONC_DATA)];
};

/* Payload sizes: mostly small, one in 97 large, so records often skip to the start of data. */
static uint32_t conc_len(uint64_t seq, uint32_t max_len)
{
	uint64_t h = mix64(seq ^ 0x5eed);
	uint32_t len = h % 97 == 0 ? 16000 + (uint32_t)((h >> 8) % 16000u)
				   : MSG_MIN + (uint32_t)((h >> 8) % 1200u);

	return MIN(len, max_len);
}

static void *conc_writer_main(void *arg)
{
	struct conc_writer *cw = arg;

	for (uint64_t s = 1; s <= cw->total; s++) {
		if (pub_msg(cw->w, s, conc_len(s, cw->max_len), io_now_real_us(), cw->buf, NULL) <
		    0)
			cw->errors++;
		if (cw->gap_us)
			(void)usleep(cw->gap_us);
	}
	return NULL;
}

/* Follow the ring from seq 1 with the public reader, as a frontend does (PROTOCOL 3.4). */
static void *conc_reader_main(void *arg)
{
	struct conc_reader *rd = arg;
	const struct ring *r = &rd->r;
	uint64_t last_seq = 0, last_time = 0;
	struct ring_cursor c;

	ring_cursor_init(&c, 1);
	while (c.next <= rd->total && rd->anomalies < READER_MAX_ANOMALIES) {
		uint32_t seen = ring_wake_word(r);
		struct ring_rec rec;
		struct ring_gap gap;
		int err = ring_read(r, &c, rd->buf, sizeof(rd->buf), &rec, &gap);

		if (err == -EAGAIN) {
			if (ring_wait(r, seen, READER_WAIT_MS) < 0)
				rd->errors++;
			rd->waits++;
		} else if (err == RING_NEXT_GAP) {
			/* lapped: resumed at a tail past the cursor; a skip (resume_seq past the
			 * tail) would mean an entry unreadable though held */
			if (gap.resume_seq > ring_tail(r))
				rd->anomalies++;
			rd->missed += gap.missed;
		} else if (err == RING_NEXT_MSG) {
			if (!msg_verify(rd->buf, &rec, rec.seq, 0))
				rd->bad++;
			if (rec.seq <= last_seq || rec.time_us <= last_time)
				rd->disorder++;
			last_seq = rec.seq;
			last_time = rec.time_us;
			rd->accepted++;
		} else {
			rd->errors++;
			ring_cursor_advance(&c);
		}
	}
	return NULL;
}

static void run_conc(const char *what, uint64_t total, unsigned gap_us, uint32_t max_len,
		     bool expect_all)
{
	struct conc_reader *rd[CONC_READERS] = { NULL };
	struct conc_writer *cw = calloc(1, sizeof(*cw));
	struct ring_writer w;
	uint64_t t0 = io_now_mono_us();
	char name[64];
	bool created;
	int started = 0;

	ring_name(name, sizeof(name));
	if (!cw || open_ring(name, CONC_DATA, 0, false, &w, &created) < 0) {
		ok(0, "%s: set up", what);
		free(cw);
		drop_ring(name);
		return;
	}
	for (int i = 0; i < CONC_READERS; i++) {
		rd[i] = calloc(1, sizeof(*rd[i]));
		if (!rd[i])
			break;
		rd[i]->r = w.r;
		rd[i]->total = total;
		if (pthread_create(&rd[i]->tid, NULL, conc_reader_main, rd[i]) != 0)
			break;
		started++;
	}
	cw->w = &w;
	cw->total = total;
	cw->gap_us = gap_us;
	cw->max_len = max_len;
	/* the writer runs even if a thread failed to start, so every started reader ends */
	if (pthread_create(&cw->tid, NULL, conc_writer_main, cw) == 0)
		(void)pthread_join(cw->tid, NULL);
	else
		(void)conc_writer_main(cw);
	is(cw->errors, 0, "%s: writer published %llu messages", what, (unsigned long long)total);
	for (int i = 0; i < started; i++) {
		struct conc_reader *x = rd[i];

		(void)pthread_join(x->tid, NULL);
		diag("%s: reader %d: accepted %llu, missed %llu, waits %llu", what, i,
		     (unsigned long long)x->accepted, (unsigned long long)x->missed,
		     (unsigned long long)x->waits);
		is(x->bad, 0, "%s: reader %d: every accepted message intact (seq, topic, checksum)",
		   what, i);
		is(x->disorder, 0, "%s: reader %d: seqs and times strictly increase", what, i);
		is(x->anomalies + x->errors, 0, "%s: reader %d: lapped always means tail > seq",
		   what, i);
		is(x->accepted + x->missed, total, "%s: reader %d: accepted + missed == total",
		   what, i);
		if (expect_all) {
			is(x->accepted, total, "%s: reader %d: kept up, missed nothing", what, i);
			ok(x->waits > 0, "%s: reader %d: slept in ring_wait", what, i);
		}
		free(x);
	}
	is(started, CONC_READERS, "%s: %d reader threads ran", what, CONC_READERS);
	is(ring_head(&w.r), total + 1, "%s: head is total + 1", what);
	diag("%s: %.2f s", what, (double)(io_now_mono_us() - t0) / 1e6);
	ring_writer_close(&w);
	drop_ring(name);
	free(cw);
}

static void test_concurrency(void)
{
	diag("concurrency: 1 writer, %d readers, %llu messages, 256 KiB ring%s", CONC_READERS,
	     (unsigned long long)CONC_N, UNDER_TSAN ? " (scaled down for TSan)" : "");
	run_conc("conc", CONC_N, 0, UINT32_MAX, false);
	/* small messages: the index, not the data, runs out, so entries are reused under readers */
	run_conc("index", CONC_N, 0, CONC_SMALL_LEN, false);
	/* a slow writer: readers sleep on the futex between messages; all fit, none is lost */
	run_conc("slow", SLOW_N, SLOW_GAP_US, 200, true);
}

/* shm/ring.h section 8: a copy of a stream skips, keeps the stream's times and generation. */
static void test_cluster(void)
{
	struct ring_params p = { .data_size = SMALL_DATA, .generation = 777, .stream_time = true };
	uint8_t buf[128];
	struct ring_writer w;
	struct ring_rec rec;
	uint64_t seq, t, lo, head;
	char name[64];
	struct ring r;
	bool created;

	diag("cluster mode: skips, stream times, generations");
	ring_name(name, sizeof(name));
	if (ring_writer_open(name, &p, &w, &created) < 0 || ring_attach(name, &r) < 0) {
		ok(0, "cluster: set up");
		drop_ring(name);
		return;
	}
	is(r.generation, 777, "the generation is the one asked for (the stream's)");
	for (uint64_t i = 1; i <= 3; i++)
		is(pub_msg(&w, i, 50, 1000 * MS + i, buf, &t), 0, "message %llu stored",
		   (unsigned long long)i);
	ring_skip_to(&w, 2); /* behind head: nothing */
	is(ring_head(&r), 4, "a skip to a held seq changes nothing");
	ring_skip_to(&w, 10);
	is(ring_head(&r), 10, "skip: head is the seq skipped to");
	is(ring_tail(&r), 10, "skip: everything before it is evicted");
	is(ring_rec_get(&r, 3, &rec), -ESTALE, "skip: a reader at an old seq is lapped");
	is(pub_msg(&w, 10, 50, 2000 * MS, buf, &t), 0, "the next message gets the seq skipped to");
	is(t, 2000 * MS, "its time is the one given (the stream's)");
	is(ring_find_time(&r, 1500 * MS, &seq, &lo), 0, "find_time after a skip answers");
	is(seq, 10, "find_time: the first message at or after the time");
	ok(lo >= 10, "find_time: nothing below first_seq is searched");
	is(ring_keepalive_time(&r, &t, &head), 0, "keepalive time");
	is(t, 2000 * MS + 1, "stream times: a keepalive is the last message's time + 1");
	ring_writer_close(&w);
	p.generation = 778;
	is(ring_writer_open(name, &p, &w, &created), -ESTALE,
	   "another generation without recreate is refused");
	p.recreate = true;
	is(ring_writer_open(name, &p, &w, &created), 0, "recreate for another generation");
	ok(created && ring_closed(&r), "a new ring; the old one is closed for its readers");
	ring_writer_close(&w);
	ring_detach(&r);
	drop_ring(name);
}

int main(void)
{
	test_create();
	test_create_too_big();
	test_publish_read();
	test_wrap();
	test_index_capacity();
	test_lapping();
	test_reader();
	test_torn();
	test_find_time();
	test_retention();
	test_restart();
	test_crash_recovery();
	test_ids();
	test_validation();
	test_futex();
	test_keepalive();
	test_concurrency();
	test_cluster();
	return done_testing();
}
