/* SPDX-License-Identifier: MIT */
/* The writer side of the history ring: create, publish, expire. Linked only into the broker
 * and the ring tests. Protocol: shm/ring.h, section 5. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
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

/* Section 1: only the owner writes; anyone may read (frontends and gpsctl of other users). A
 * frontend counts into the statistics object as its owner, the service's user. */
#define RING_MODE  0644
#define STATS_MODE 0644

/* Names tried for a replacement before it is renamed over the old object (section 1). */
#define NAME_TRIES 16
/* Rounds of "absent: create; another broker named its own first: open that" (section 1). */
#define OPEN_TRIES 3

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

/*
 * A new object of size bytes with its final mode, not yet named: O_TMPFILE in RING_SHM_DIR, so
 * nothing is left behind if we die before it is complete, and nobody sees it half made. Every
 * page is reserved now: on a full tmpfs ftruncate succeeds and the first store to a missing
 * page is a SIGBUS; posix_fallocate fails here instead (-ENOSPC). The fd, or -errno.
 */
static int shm_new(size_t size, mode_t mode)
{
	int fd = open(RING_SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	int err;

	if (fd < 0)
		return -errno;
	/* not narrowed by the umask */
	if (fchmod(fd, mode) < 0) {
		err = -errno;
		goto out_close_fd;
	}
	err = -posix_fallocate(fd, 0, (off_t)size);
	if (err < 0)
		goto out_close_fd;
	return fd;

out_close_fd:
	(void)close(fd);
	return err;
}

/*
 * Name the complete object fd 'name' (section 1): never over an existing one (-EEXIST), or with
 * replace atomically over it (a link under a temporary name, then rename(2)), so the name is
 * never missing and never anyone else's. 0 or -errno.
 */
static int shm_name(int fd, const char *name, bool replace)
{
	char self[64], path[PATH_MAX], tmp[PATH_MAX];
	int err = ring_shm_path(name, path, sizeof(path));

	if (err < 0)
		return err;
	/* linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the /proc link does not */
	(void)snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (!replace)
		return linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	for (unsigned i = 0; i < NAME_TRIES; i++) {
		int n = snprintf(tmp, sizeof(tmp), "%s.new-%ld-%llx", path, (long)getpid(),
				 (unsigned long long)io_now_mono_us() + i);

		if (n < 0 || (size_t)n >= sizeof(tmp))
			return -ENAMETOOLONG;
		if (linkat(AT_FDCWD, self, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0) {
			if (errno == EEXIST)
				continue; /* someone else's: another name */
			return -errno;
		}
		if (rename(tmp, path) == 0)
			return 0;
		err = -errno;
		(void)unlink(tmp);
		return err;
	}
	return -EEXIST;
}

/* Make statistics object 'name' (zero counters), named as shm_name() does. 0 or -errno. */
static int make_stats(const char *name, bool replace)
{
	struct ring_stats *s;
	int fd, err;

	fd = shm_new(sizeof(*s), STATS_MODE);
	if (fd < 0)
		return fd;
	s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED) {
		err = -errno;
		goto out_close_fd;
	}
	s->version = RING_VERSION;
	atomic_store_explicit(&s->magic, RING_STATS_MAGIC, memory_order_release);
	(void)munmap(s, sizeof(*s));
	err = shm_name(fd, name, replace);

out_close_fd:
	(void)close(fd);
	return err;
}

/* Whether object 'name' is a regular file of this process's user. */
static bool own_file(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	return ring_shm_path(name, path, sizeof(path)) == 0 && lstat(path, &st) == 0 &&
	       S_ISREG(st.st_mode) && st.st_uid == geteuid();
}

/*
 * The statistics object of ring 'ring_name': kept across restarts, like the ring; made when
 * absent, replaced when of another version, or when it is ours but others may write it (an
 * upgrade from the versions that made it 0666: its counters are not worth a refusal to start,
 * and none of its bytes is used). 0, or -EPERM (another user's: refused), or -errno.
 */
static int create_stats(const char *ring_name)
{
	char name[NAME_MAX + 1];
	struct ring_stats *s;
	int err;

	err = ring_stats_name(ring_name, name, sizeof(name));
	if (err < 0)
		return err;
	err = ring_stats_attach(ring_name, false, &s);
	if (err == 0) {
		ring_stats_detach(s);
		return 0;
	}
	if (err == -EPERM && own_file(name))
		err = -EPROTO; /* ours but writable by others, as made before issue 14: replaced */
	if (err != -ENOENT && err != -EPROTO)
		return err;
	err = make_stats(name, err == -EPROTO);
	return err == -EEXIST ? 0 : err; /* -EEXIST: another broker made it meanwhile */
}

/*
 * Make ring 'name' (section 1), complete and locked before it is named: the fd holding the
 * writer lock, with *ret mapped; -EEXIST when another object took the name first (without
 * replace); -ENOSPC; -errno.
 */
static int create_ring(const char *name, const struct ring_params *p, bool replace,
		       struct ring *ret)
{
	uint64_t data_size, nidx, mono;
	struct ring_hdr *h;
	size_t size;
	void *base;
	int fd, err;

	ring_geometry(p, &data_size, &nidx);
	size = (size_t)(RING_HDR_SIZE + nidx * sizeof(struct ring_idx) + data_size);
	fd = shm_new(size, RING_MODE);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) { /* nobody else can see it yet: cannot fail */
		err = -errno;
		goto out_close_fd;
	}
	base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		err = -errno;
		goto out_close_fd;
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
	/* complete before it has a name: a reader that attaches at once (section 6: a replaced
	 * ring's readers do) must see how its times are made (stream_time, section 8) */
	atomic_store_explicit(&h->retention_us, p->retention_us, memory_order_relaxed);
	atomic_store_explicit(&h->stream_time, p->stream_time ? 1u : 0u, memory_order_relaxed);
	atomic_store_explicit(&h->broker_pid, (uint64_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&h->broker_start_us, h->created_us, memory_order_relaxed);
	atomic_store_explicit(&h->magic, RING_MAGIC, memory_order_release);
	err = shm_name(fd, name, replace);
	if (err < 0) {
		(void)munmap(base, size);
		goto out_close_fd;
	}
	ring_init_handle(ret, base, size);
	return fd;

out_close_fd:
	(void)close(fd);
	return err;
}

/*
 * The existing object 'name', opened read-write (if trusted, section 1) and locked: the fd, with
 * *r mapped if it holds a valid ring (r->hdr NULL if not); -ENOENT, -EBUSY (another writer holds
 * it), -EPERM (not ours), -errno.
 */
static int lock_existing(const char *name, struct ring *r, uint32_t *ret_old_version)
{
	struct stat st = { 0 };
	size_t size = 0;
	void *base = NULL;
	int fd;

	r->hdr = NULL;
	*ret_old_version = 0;
	fd = ring_shm_open(name, O_RDWR, &st);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		const int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		(void)close(fd);
		return err;
	}
	if (ring_map_fd(fd, (size_t)st.st_size, true, &base, &size) == 0 && base) {
		const struct ring_hdr *h = base;

		if (ring_validate(base, size) == 0) {
			ring_init_handle(r, base, size);
		} else {
			/* a ring of ours that an older build wrote (section 6: replaced at open) */
			if (size >= RING_HDR_SIZE &&
			    atomic_load_explicit(&h->magic, memory_order_acquire) == RING_MAGIC &&
			    h->version && h->version < RING_VERSION)
				*ret_old_version = h->version;
			(void)munmap(base, size);
		}
	}
	return fd;
}

static void wake_all(struct ring_hdr *h)
{
	atomic_fetch_add_explicit(&h->wake, 1, memory_order_release);
	(void)syscall(SYS_futex, &h->wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
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
	const uint64_t dtail = atomic_load_explicit(&h->data_tail, memory_order_relaxed);
	uint64_t first = 0, end = 0, last_t = 0;

	if (tail < 1 || tail > head || head - tail > r->nidx || head >= RING_SANE_LIMIT ||
	    atomic_load_explicit(&h->data_head, memory_order_relaxed) >= RING_SANE_LIMIT ||
	    dtail >= RING_SANE_LIMIT ||
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
	/* step c stores tail before data_tail: a crash leaves data_tail behind the oldest held
	 * record, never past it (past it, every later record would fail ring_rec_valid) */
	if (head > tail && (dtail > first || first - dtail > r->data_size))
		return false;
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

/* Whether the locked existing ring r is the one p asks for: 0, -EPROTO (not a valid ring of
 * this version), -EEXIST (another size), -ESTALE (section 8: another stream's copy). */
static int existing_fits(const struct ring *r, const struct ring_params *p)
{
	uint64_t data_size, nidx;

	ring_geometry(p, &data_size, &nidx);
	if (!r->hdr)
		return -EPROTO;
	if (r->data_size != data_size || r->nidx != nidx)
		return -EEXIST;
	if (p->generation && r->generation != p->generation)
		return -ESTALE;
	return 0;
}

/*
 * Section 6: the new ring takes the name in one step (rename), then readers of the old one are
 * told (closed) and re-attach by name: the name never goes missing, so no one else can take it
 * in between. old (locked by old_fd) is released. The new ring's locked fd, or -errno.
 */
static int replace_ring(const char *name, const struct ring_params *p, struct ring *old, int old_fd,
			struct ring *ret)
{
	int fd = create_ring(name, p, true, ret);

	if (fd < 0)
		return fd;
	if (old->hdr) {
		atomic_store_explicit(&old->hdr->closed, 1, memory_order_release);
		wake_all(old->hdr);
		ring_detach(old);
	}
	(void)close(old_fd);
	return fd;
}

int ring_writer_open(const char *name, const struct ring_params *p, struct ring_writer *w,
		     bool *ret_created)
{
	struct ring r = { 0 }, made = { 0 };
	uint32_t old_version = 0;
	bool created = false;
	int err, fd;

	/* Absent: make it; when another broker named its own first, open that one instead. */
	fd = lock_existing(name, &r, &old_version);
	for (int i = 0; fd == -ENOENT && i < OPEN_TRIES; i++) {
		fd = create_ring(name, p, false, &r);
		created = fd >= 0;
		if (fd == -EEXIST)
			fd = lock_existing(name, &r, &old_version);
	}
	if (fd < 0)
		return fd; /* -EPERM: never touched, even with p->recreate */
	err = created ? 0 : existing_fits(&r, p);
	/* what no writer leaves (ring_sane): refused, or replaced under --recreate as the broker's
	 * error says (the lock is ours: no broker is live on it) */
	if (err == 0 && !created && !ring_sane(&r))
		err = -EPROTO;
	if (err < 0 && (p->recreate || old_version)) {
		err = replace_ring(name, p, &r, fd, &made);
		if (err < 0)
			goto out_unlock;
		fd = err;
		r = made;
		created = true;
		err = 0;
	}
	if (err == 0)
		err = create_stats(name);
	if (err < 0)
		goto out_unlock;
	if (!created)
		recover(&r);
	atomic_store_explicit(&r.hdr->broker_pid, (uint64_t)getpid(), memory_order_relaxed);
	atomic_store_explicit(&r.hdr->broker_start_us, io_now_real_us(), memory_order_relaxed);
	atomic_store_explicit(&r.hdr->retention_us, p->retention_us, memory_order_relaxed);
	atomic_store_explicit(&r.hdr->stream_time, p->stream_time ? 1u : 0u, memory_order_relaxed);
	w->r = r;
	w->lock_fd = fd;
	w->retention_us = p->retention_us;
	w->stats = NULL;
	w->defer_wake = false;
	w->wake_pending = false;
	w->replaced_version = old_version;
	*ret_created = created;
	return 0;

out_unlock:
	ring_detach(&r);
	(void)close(fd);
	return err;
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
