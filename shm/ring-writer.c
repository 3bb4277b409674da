/* SPDX-License-Identifier: MIT */
/* The writer side of the history ring: create, publish, expire. Linked only into the broker
 * and the ring tests. Protocol: shm/ring.h, section 5. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "shm/ring.h"

/* Both clocks are read in whole microseconds, so their difference jitters by one: one more keeps
 * ring time at or after any wall clock reading taken later. */
#define RING_CLOCK_SLACK_US 1u

#define RING_MODE  0644 /* frontends and gpsctl of any user may read history; one user writes */
#define STATS_MODE 0666 /* every frontend adds to the counters; they hold nothing of value */

static uint64_t round_pow2(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

static void ring_geometry(const struct ring_params *p, uint64_t *ret_data, uint64_t *ret_nidx)
{
	/* clamp before rounding: above 2^63 the next power of two overflows and round_pow2 loops */
	uint64_t data = round_pow2(MIN(MAX(p->data_size, (uint64_t)RING_MIN_DATA), RING_MAX_DATA));
	uint64_t nidx = round_pow2(MAX(data / RING_IDX_DIVISOR, (uint64_t)RING_MIN_IDX));

	*ret_data = data;
	*ret_nidx = nidx;
}

static int create_stats(const char *ring_name)
{
	char name[NAME_MAX + 1];
	struct ring_stats *s;
	int fd, err;

	err = ring_stats_name(ring_name, name, sizeof(name));
	if (err < 0)
		return err;
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, STATS_MODE);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno; /* kept across restarts, like the ring */
	/* not narrowed by the umask */
	(void)fchmod(fd, STATS_MODE);
	err = posix_fallocate(fd, 0, sizeof(*s));
	if (err) {
		err = -err;
		goto out_unlink;
	}
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED) {
		err = -errno;
		goto out_unlink;
	}
	s->version = RING_VERSION;
	atomic_store_explicit(&s->magic, RING_STATS_MAGIC, memory_order_release);
	(void)munmap(s, sizeof(*s));
	(void)close(fd);
	return 0;

out_unlink:
	(void)shm_unlink(name);
	(void)close(fd);
	return err;
}

static int create_ring(const char *name, const struct ring_params *p, struct ring *ret)
{
	uint64_t data_size, nidx, mono;
	struct ring_hdr *h;
	size_t size;
	void *base;
	int fd, err;

	ring_geometry(p, &data_size, &nidx);
	size = (size_t)(RING_HDR_SIZE + nidx * sizeof(struct ring_idx) + data_size);
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, RING_MODE);
	if (fd < 0)
		return -errno;
	(void)fchmod(fd, RING_MODE);
	/* Reserve every page now: on a full tmpfs ftruncate succeeds and the first store to a
	 * missing page is a SIGBUS; posix_fallocate fails here instead (and returns the error). */
	err = posix_fallocate(fd, 0, (off_t)size);
	if (err) {
		err = -err;
		goto out_unlink;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		goto out_unlink;
	}
	h = base; /* the object is zero-filled: only non-zero fields are set */
	h->version = RING_VERSION;
	h->layout = RING_LAYOUT;
	h->hdr_size = RING_HDR_SIZE;
	h->nidx = nidx;
	h->data_size = data_size;
	mono = io_now_mono_us(); /* first: ring time starts at, never behind, the wall clock */
	h->created_us = io_now_real_us();
	h->generation = p->generation ? p->generation : h->created_us;
	atomic_store_explicit(&h->clock_offset_us, h->created_us - mono + RING_CLOCK_SLACK_US,
			      memory_order_relaxed);
	atomic_store_explicit(&h->head, 1, memory_order_relaxed);
	atomic_store_explicit(&h->tail, 1, memory_order_relaxed);
	atomic_store_explicit(&h->first_seq, 1, memory_order_relaxed);
	atomic_store_explicit(&h->magic, RING_MAGIC, memory_order_release);
	(void)close(fd);
	ring_init_handle(ret, base, size);
	return 0;

out_unlink:
	(void)shm_unlink(name);
	(void)close(fd);
	return err;
}

/* Whether another process holds the writer lock on ring 'name'. */
static bool writer_running(const char *name)
{
	int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	bool busy;

	if (fd < 0)
		return false;
	busy = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	(void)close(fd); /* drops the lock if we got it */
	return busy;
}

static void wake_all(struct ring_hdr *h)
{
	atomic_fetch_add_explicit(&h->wake, 1, memory_order_release);
	(void)syscall(SYS_futex, &h->wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Section 6: readers of the old object see closed, re-attach by name, find the new one. */
static int replace_ring(const char *name)
{
	struct ring old;
	int err;

	if (ring_open(name, true, &old) == 0) {
		atomic_store_explicit(&old.hdr->closed, 1, memory_order_release);
		wake_all(old.hdr);
		ring_detach(&old);
	}
	err = ring_unlink(name);
	return err == -ENOENT ? 0 : err;
}

/* Far beyond any real ring (a million messages, or megabytes, a second for 146,000 years) and
 * far from the 64-bit wrap: a seq, position or time past it was not written by this code. */
#define RING_SANE_LIMIT (UINT64_C(1) << 62)

/*
 * Under the writer lock nothing moves. What recovery, every later append and every loop from
 * tail to head (the broker's id rebuild) trust: 1 <= tail <= head and at most nidx messages held;
 * each held entry holds its seq and a record inside the data area, after the record before it
 * and later in time, all of them within one data area's length; counters far from wrapping. A
 * ring that breaks this was not written by this code (a bug, a scribbler): refuse it, never
 * publish into it (a record placed after a bogus position would be refused by every reader).
 */
static bool ring_sane(const struct ring *r)
{
	const struct ring_hdr *h = r->hdr;
	const uint64_t head = atomic_load_explicit(&h->head, memory_order_relaxed);
	const uint64_t tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
	uint64_t first = 0, end = 0, last_t = 0;

	if (tail < 1 || tail > head || head - tail > r->nidx || head >= RING_SANE_LIMIT ||
	    atomic_load_explicit(&h->data_head, memory_order_relaxed) >= RING_SANE_LIMIT ||
	    atomic_load_explicit(&h->data_tail, memory_order_relaxed) >= RING_SANE_LIMIT ||
	    atomic_load_explicit(&h->last_time_us, memory_order_relaxed) >= RING_SANE_LIMIT)
		return false;
	for (uint64_t s = tail; s < head; s++) {
		const struct ring_idx *e = &r->idx[s & r->idx_mask];
		const uint64_t pos = atomic_load_explicit(&e->pos, memory_order_relaxed);
		const uint64_t t = atomic_load_explicit(&e->time_us, memory_order_relaxed);
		const uint64_t len =
			(uint64_t)atomic_load_explicit(&e->id_len, memory_order_relaxed) +
			atomic_load_explicit(&e->topic_len, memory_order_relaxed) +
			atomic_load_explicit(&e->payload_len, memory_order_relaxed);

		if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s ||
		    pos >= RING_SANE_LIMIT || t >= RING_SANE_LIMIT ||
		    len > RING_MAX_RECORD(r->data_size) ||
		    (pos & r->data_mask) + len > r->data_size ||
		    (s > tail && (pos < end || t <= last_t)))
			return false;
		if (s == tail)
			first = pos;
		end = pos + ALIGN_UP(len, 8);
		last_t = t;
	}
	return end - first <= r->data_size;
}

/* A crash in the middle of a publish (section 6): nothing past head counts; even the stamp. */
static void recover(struct ring *r)
{
	uint32_t stamp = atomic_load_explicit(&r->hdr->stamp, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
	uint64_t last = 0, tail, dhead, dtail, want;

	if (stamp & 1u)
		atomic_store_explicit(&r->hdr->stamp, stamp + 1, memory_order_release);
	if (head > atomic_load_explicit(&r->hdr->tail, memory_order_relaxed)) {
		const struct ring_idx *e = &r->idx[(head - 1) & r->idx_mask];
		const uint64_t rec_len =
			(uint64_t)atomic_load_explicit(&e->id_len, memory_order_relaxed) +
			atomic_load_explicit(&e->topic_len, memory_order_relaxed) +
			atomic_load_explicit(&e->payload_len, memory_order_relaxed);
		const uint64_t end_pos =
			atomic_load_explicit(&e->pos, memory_order_relaxed) + ALIGN_UP(rec_len, 8);

		last = atomic_load_explicit(&e->time_us, memory_order_relaxed);
		/* data_head is stored after the bytes; a crash may have left it behind them */
		if (atomic_load_explicit(&r->hdr->data_head, memory_order_relaxed) != end_pos)
			atomic_store_explicit(&r->hdr->data_head, end_pos, memory_order_relaxed);
	}
	/*
	 * Step c stores tail, then data_tail, then the bytes go in: a crash in between leaves
	 * data_tail behind the oldest held record (a torn copy could pass ring_rec_valid), or, when
	 * a record skipped to the start of data and evicted everything, past data_head, so every
	 * record written from data_head on fails ring_rec_valid until the next eviction. Redo step
	 * c's result; both positions only move forward.
	 */
	tail = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
	dhead = atomic_load_explicit(&r->hdr->data_head, memory_order_relaxed);
	dtail = atomic_load_explicit(&r->hdr->data_tail, memory_order_relaxed);
	if (tail < head) {
		want = atomic_load_explicit(&r->idx[tail & r->idx_mask].pos, memory_order_relaxed);
	} else {
		want = dhead;
		if (dtail > dhead) {
			want = dtail;
			atomic_store_explicit(&r->hdr->data_head, want, memory_order_relaxed);
		}
	}
	if (dtail < want)
		atomic_store_explicit(&r->hdr->data_tail, want, memory_order_release);
	if (last > atomic_load_explicit(&r->hdr->last_time_us, memory_order_relaxed))
		atomic_store_explicit(&r->hdr->last_time_us, last, memory_order_relaxed);
}

/* ring_writer_open(), but -EUCLEAN for a ring that ring_sane() refuses. */
static int writer_open(const char *name, const struct ring_params *p, struct ring_writer *w,
		       bool *ret_created)
{
	uint64_t data_size, nidx;
	struct ring r;
	bool created = false;
	int err, lock_fd;

	ring_geometry(p, &data_size, &nidx);
	err = ring_open(name, true, &r);
	if (err == 0 && (r.data_size != data_size || r.nidx != nidx)) {
		ring_detach(&r);
		err = -EEXIST;
	}
	if (err == 0 && p->generation && r.generation != p->generation) {
		ring_detach(&r); /* section 8: the copy of another stream */
		err = -ESTALE;
	}
	if (err < 0 && err != -ENOENT) {
		if (!p->recreate)
			return err;
		if (writer_running(name))
			return -EBUSY; /* never pull a ring from under a live broker */
		err = replace_ring(name);
		if (err < 0)
			return err;
		err = -ENOENT;
	}
	if (err == -ENOENT) {
		err = create_ring(name, p, &r);
		if (err < 0)
			return err;
		created = true;
	}
	err = create_stats(name);
	if (err < 0) {
		ring_detach(&r);
		return err;
	}
	/* One writer at a time: an exclusive lock on the object, held until we exit. */
	lock_fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (lock_fd >= 0)
			(void)close(lock_fd);
		ring_detach(&r);
		return err;
	}
	if (!created && !ring_sane(&r)) {
		(void)close(lock_fd);
		ring_detach(&r);
		return -EUCLEAN;
	}
	if (!created)
		recover(&r);
	atomic_store_explicit(&r.hdr->broker_pid, (uint64_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&r.hdr->broker_start_us, io_now_real_us(), memory_order_relaxed);
	atomic_store_explicit(&r.hdr->retention_us, p->retention_us, memory_order_relaxed);
	atomic_store_explicit(&r.hdr->stream_time, p->stream_time ? 1u : 0u, memory_order_relaxed);
	w->r = r;
	w->lock_fd = lock_fd;
	w->retention_us = p->retention_us;
	w->stats = NULL;
	w->defer_wake = false;
	w->wake_pending = false;
	*ret_created = created;
	return 0;
}

int ring_writer_open(const char *name, const struct ring_params *p, struct ring_writer *w,
		     bool *ret_created)
{
	int err = writer_open(name, p, w, ret_created);

	/* a ring no writer leaves is refused, or replaced under --recreate as the broker's error
	 * says: writer_open() held its lock, so no broker is live on it */
	if (err == -EUCLEAN && p->recreate) {
		err = replace_ring(name);
		if (err == 0)
			err = writer_open(name, p, w, ret_created);
	}
	return err == -EUCLEAN ? -EPROTO : err;
}

void ring_writer_close(struct ring_writer *w)
{
	if (!w->r.hdr)
		return;
	atomic_store_explicit(&w->r.hdr->broker_pid, 0, memory_order_relaxed);
	ring_detach(&w->r);
	(void)close(w->lock_fd); /* releases the writer lock */
	w->lock_fd = -1;
}

int ring_unlink(const char *name)
{
	char stats[NAME_MAX + 1];
	int err = 0;

	if (shm_unlink(name) < 0)
		err = -errno;
	if (ring_stats_name(name, stats, sizeof(stats)) == 0)
		(void)shm_unlink(stats);
	return err;
}

/* Drop the oldest message (section 5, writer c); the caller publishes tail and data_tail. */
static void evict_one(struct ring *r, uint64_t *tail)
{
	const struct ring_idx *e = &r->idx[*tail & r->idx_mask];

	atomic_store_explicit(&r->hdr->evicted_time_us,
			      atomic_load_explicit(&e->time_us, memory_order_relaxed),
			      memory_order_relaxed);
	(*tail)++;
}

/*
 * Crash points (shm/ring.h, ring_crash_hook): tests/unit/t-ring-crash.c kills the writer between
 * the steps of section 5 and checks that no reader delivers a partial record and that the next
 * ring_writer_open() recovers. A hook set at run time rather than a -DRING_CRASH_POINTS build
 * of this file: the test then crashes the very object the broker links, compiled with the same
 * flags (a second build could order the stores otherwise, and it would need a variant rule in
 * the Makefile). The cost in production, where the hook is NULL: ring_publish loads it once and
 * each point is a branch that is never taken, next to the futex syscall of step g.
 */
void (*ring_crash_hook)(enum ring_crash_point point);

#define CRASH_POINT(hook, point)              \
	do {                                  \
		if (unlikely((hook) != NULL)) \
			(hook)(point);        \
	} while (0)

static void publish_tail(struct ring *r, uint64_t tail, uint64_t head, uint64_t empty_pos)
{
	uint64_t dtail = tail < head ? atomic_load_explicit(&r->idx[tail & r->idx_mask].pos,
							    memory_order_relaxed)
				     : empty_pos;

	atomic_store_explicit(&r->hdr->tail, tail, memory_order_release);
	CRASH_POINT(ring_crash_hook, RING_CRASH_TAIL);
	atomic_store_explicit(&r->hdr->data_tail, dtail, memory_order_release);
	/* Store-store: readers that see a byte written after this fence see the new data_tail. */
	atomic_thread_fence(memory_order_release);
}

/* The writer's half of the deliberate race of ring_copy_from (tests/tsan.supp). */
__attribute__((noinline)) static void ring_copy_to(uint8_t *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
}

int ring_publish(struct ring_writer *w, const uint8_t *topic, uint32_t topic_len,
		 const uint8_t *payload, uint32_t payload_len, uint64_t now_us, uint64_t *ret_seq,
		 uint64_t *ret_time_us)
{
	return ring_publish_id(w, (const uint8_t *)"", 0, topic, topic_len, payload, payload_len,
			       now_us, ret_seq, ret_time_us);
}

/* The ring clock (shm/ring.h, section 5): raised to the wall clock when that is ahead, never
 * lowered, so ring time only moves forward for readers and the writer alike. */
static uint64_t ring_clock(struct ring_hdr *h)
{
	uint64_t mono = io_now_mono_us(), real = io_now_real_us();
	uint64_t off = atomic_load_explicit(&h->clock_offset_us, memory_order_relaxed);

	if (real > mono + off) {
		off = real - mono + RING_CLOCK_SLACK_US;
		atomic_store_explicit(&h->clock_offset_us, off, memory_order_release);
	}
	return mono + off;
}

int ring_publish_id(struct ring_writer *w, const uint8_t *id, uint32_t id_len, const uint8_t *topic,
		    uint32_t topic_len, const uint8_t *payload, uint32_t payload_len,
		    uint64_t now_us, uint64_t *ret_seq, uint64_t *ret_time_us)
{
	struct ring *r = &w->r;
	struct ring_hdr *h = r->hdr;
	const uint64_t len = (uint64_t)id_len + topic_len + payload_len;
	uint64_t head, tail, pos, end, t, last, off;
	struct ring_idx *e;
	uint32_t stamp;
	bool evicted = false;
	void (*const crash)(enum ring_crash_point) = ring_crash_hook; /* one load per publish */

	if (len > RING_MAX_RECORD(r->data_size) || topic_len > RING_MAX_TOPIC ||
	    id_len > RING_MAX_ID)
		return -EMSGSIZE;

	/* a: open the stamp window, then time the message: strictly after the previous one */
	stamp = atomic_load_explicit(&h->stamp, memory_order_relaxed);
	atomic_store_explicit(&h->stamp, stamp + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (now_us == 0)
		now_us = ring_clock(h);
	last = atomic_load_explicit(&h->last_time_us, memory_order_relaxed);
	t = MAX(now_us, last + 1);
	CRASH_POINT(crash, RING_CRASH_STAMPED);

	/* b: place the record; it never wraps */
	head = atomic_load_explicit(&h->head, memory_order_relaxed);
	tail = atomic_load_explicit(&h->tail, memory_order_relaxed);
	pos = atomic_load_explicit(&h->data_head, memory_order_relaxed);
	off = pos & r->data_mask;
	if (off + len > r->data_size)
		pos += r->data_size - off;
	end = pos + ALIGN_UP(len, 8);

	/* c: make room */
	while (tail < head &&
	       (head - tail >= r->nidx ||
		atomic_load_explicit(&r->idx[tail & r->idx_mask].pos, memory_order_relaxed) +
				r->data_size <
			end)) {
		evict_one(r, &tail);
		evicted = true;
	}
	if (evicted) {
		publish_tail(r, tail, head, pos);
		CRASH_POINT(crash, RING_CRASH_EVICTED);
	}

	/* d: the bytes */
	if (id_len) /* id may be NULL then, and memcpy's arguments must not be */
		ring_copy_to(r->data + (pos & r->data_mask), id, id_len);
	ring_copy_to(r->data + (pos & r->data_mask) + id_len, topic, topic_len);
	CRASH_POINT(crash, RING_CRASH_BYTES_HALF);
	ring_copy_to(r->data + (pos & r->data_mask) + id_len + topic_len, payload, payload_len);
	CRASH_POINT(crash, RING_CRASH_BYTES);

	/* e: the index entry, seqlocked */
	e = &r->idx[head & r->idx_mask];
	atomic_store_explicit(&e->seq, 0, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	CRASH_POINT(crash, RING_CRASH_ENTRY_CLEARED);
	atomic_store_explicit(&e->time_us, t, memory_order_relaxed);
	atomic_store_explicit(&e->pos, pos, memory_order_relaxed);
	CRASH_POINT(crash, RING_CRASH_ENTRY_HALF);
	atomic_store_explicit(&e->topic_len, (uint16_t)topic_len, memory_order_relaxed);
	atomic_store_explicit(&e->id_len, (uint16_t)id_len, memory_order_relaxed);
	atomic_store_explicit(&e->payload_len, payload_len, memory_order_relaxed);
	atomic_store_explicit(&e->seq, head, memory_order_release);
	CRASH_POINT(crash, RING_CRASH_ENTRY);

	/* f: publish */
	atomic_store_explicit(&h->data_head, end, memory_order_relaxed);
	CRASH_POINT(crash, RING_CRASH_DATA_HEAD);
	atomic_store_explicit(&h->last_time_us, t, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->published, 1, memory_order_relaxed);
	CRASH_POINT(crash, RING_CRASH_LAST_TIME);
	atomic_store_explicit(&h->head, head + 1, memory_order_release);
	CRASH_POINT(crash, RING_CRASH_HEAD);
	atomic_store_explicit(&h->stamp, stamp + 2, memory_order_release);
	CRASH_POINT(crash, RING_CRASH_STAMP_EVEN);

	/* g: wake the readers, now or once for the whole batch (ring_wake_flush) */
	if (w->defer_wake) {
		w->wake_pending = true;
	} else {
		wake_all(h);
		CRASH_POINT(crash, RING_CRASH_WOKEN);
	}

	*ret_seq = head;
	*ret_time_us = t;
	return 0;
}

void ring_skip_to(struct ring_writer *w, uint64_t seq)
{
	struct ring *r = &w->r;
	const uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
	const uint64_t dhead = atomic_load_explicit(&r->hdr->data_head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);

	if (seq <= head)
		return;
	while (tail < head)
		evict_one(r, &tail);
	publish_tail(r, head, head, dhead);
	atomic_store_explicit(&r->hdr->first_seq, seq, memory_order_release);
	atomic_store_explicit(&r->hdr->tail, seq, memory_order_release);
	atomic_store_explicit(&r->hdr->head, seq, memory_order_release);
	if (w->defer_wake)
		w->wake_pending = true;
	else
		wake_all(r->hdr);
}

void ring_wake_flush(struct ring_writer *w)
{
	if (!w->wake_pending)
		return;
	w->wake_pending = false;
	wake_all(w->r.hdr);
}

uint64_t ring_expire(struct ring_writer *w, uint64_t now_us)
{
	struct ring *r = &w->r;
	uint64_t head, tail, n = 0;

	/* called every second: ring time follows the wall clock forward */
	(void)ring_clock(r->hdr);
	if (!w->retention_us || now_us < w->retention_us)
		return 0;
	head = atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
	tail = atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
	while (tail < head &&
	       atomic_load_explicit(&r->idx[tail & r->idx_mask].time_us, memory_order_relaxed) <
		       now_us - w->retention_us) {
		evict_one(r, &tail);
		n++;
	}
	if (n) {
		publish_tail(r, tail, head,
			     atomic_load_explicit(&r->hdr->data_head, memory_order_relaxed));
		wake_all(r->hdr); /* lapped readers learn of their gap without waiting */
	}
	return n;
}
