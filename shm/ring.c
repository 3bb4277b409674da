/* SPDX-License-Identifier: MIT */
/* The reader side of the history ring: attach, validate, read, wait. Protocol: shm/ring.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "shm/ring.h"

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* Refuse with a reason: -EPROTO, and the reason in why when there is room for it. */
_printf_(3, 4) static int refuse(char *why, size_t len, const char *fmt, ...)
{
	if (why && len) {
		va_list ap;

		va_start(ap, fmt);
		(void)vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

int ring_validate_why(const struct ring_hdr *h, size_t map_size, char *why, size_t len)
{
	uint32_t magic;

	if (map_size < RING_HDR_SIZE)
		return refuse(why, len, "the object is %zu bytes, smaller than the %u-byte header",
			      map_size, RING_HDR_SIZE);
	magic = atomic_load_explicit(&h->magic, memory_order_acquire);
	if (magic != RING_MAGIC)
		return refuse(why, len, "magic is 0x%08x, not 0x%08x: not a GitPubSub ring", magic,
			      RING_MAGIC);
	if (h->version != RING_VERSION)
		return refuse(why, len, "version %u, this build reads version %u", h->version,
			      RING_VERSION);
	if (h->layout != RING_LAYOUT)
		return refuse(why, len, "layout digest 0x%08x, this build's is 0x%08x", h->layout,
			      RING_LAYOUT);
	if (h->hdr_size != RING_HDR_SIZE)
		return refuse(why, len, "hdr_size %u, expected %u", h->hdr_size, RING_HDR_SIZE);
	if (!is_pow2(h->nidx) || h->nidx > RING_MAX_DATA / sizeof(struct ring_idx))
		return refuse(why, len, "nidx %" PRIu64 " is not a power of two in range", h->nidx);
	if (!is_pow2(h->data_size) || h->data_size < RING_MIN_DATA || h->data_size > RING_MAX_DATA)
		return refuse(why, len,
			      "data_size %" PRIu64 " is not a power of two in [%" PRIu64
			      ", %" PRIu64 "]",
			      h->data_size, RING_MIN_DATA, RING_MAX_DATA);
	if ((uint64_t)map_size != RING_HDR_SIZE + h->nidx * sizeof(struct ring_idx) + h->data_size)
		return refuse(why, len, "the object is %zu bytes, the header describes %" PRIu64,
			      map_size,
			      RING_HDR_SIZE + h->nidx * sizeof(struct ring_idx) + h->data_size);
	return 0;
}

int ring_validate(const struct ring_hdr *h, size_t map_size)
{
	return ring_validate_why(h, map_size, NULL, 0);
}

void ring_init_handle(struct ring *r, void *base, size_t map_size)
{
	struct ring_hdr *h = base;

	r->hdr = h;
	r->idx = (struct ring_idx *)((uint8_t *)base + RING_HDR_SIZE);
	r->data = (uint8_t *)base + RING_HDR_SIZE + h->nidx * sizeof(struct ring_idx);
	r->map_size = map_size;
	r->nidx = h->nidx;
	r->idx_mask = h->nidx - 1;
	r->data_size = h->data_size;
	r->data_mask = h->data_size - 1;
	r->generation = h->generation;
}

/* ---- section 1: where the objects live and whom they must belong to ---- */

static const char *ring_owner_user; /* [History] ringOwner; NULL: this user and root only */

void ring_set_owner(const char *user)
{
	ring_owner_user = user && *user ? user : NULL;
}

int ring_shm_path(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", RING_SHM_DIR, name[0] == '/' ? name + 1 : name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

static void copy_name(char *buf, size_t len, const char *name)
{
	size_t n = len ? MIN(strlen(name), len - 1) : 0;

	if (!len)
		return;
	memcpy(buf, name, n);
	buf[n] = '\0';
}

/*
 * Look a user up in /etc/passwd: by name (*ret_uid set) when name is given, else by *ret_uid
 * (its name into buf). Read by hand, not through NSS: the frontend is a static binary, and the
 * service's user is a local system user (systemd/gitpubsub.sysusers). false when not found.
 */
static bool passwd_lookup(const char *name, uid_t *ret_uid, char *buf, size_t len)
{
	char line[1024], *end;
	bool found = false;
	FILE *f = fopen("/etc/passwd", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *uid = colon ? strchr(colon + 1, ':') : NULL;
		unsigned long n;

		if (!uid) /* name:password:uid:... */
			continue;
		*colon = '\0';
		n = strtoul(uid + 1, &end, 10);
		if (end == uid + 1 || *end != ':' || n >= UINT32_MAX)
			continue;
		if (name ? strcmp(line, name) == 0 : (uid_t)n == *ret_uid) {
			if (name)
				*ret_uid = (uid_t)n;
			else
				copy_name(buf, len, line);
			found = true;
		}
	}
	(void)fclose(f);
	return found;
}

/* 'user' of ring_set_owner(): a decimal uid or a name. */
static bool user_uid(const char *user, uid_t *ret_uid)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(user, &end, 10);
	if (*user >= '0' && *user <= '9' && !*end && !errno && n < UINT32_MAX) {
		*ret_uid = (uid_t)n;
		return true;
	}
	return passwd_lookup(user, ret_uid, NULL, 0);
}

/* "name (uid N)", or "uid N" for a uid without a name. */
static void format_user(uid_t uid, char *buf, size_t len)
{
	char name[64];

	if (passwd_lookup(NULL, &uid, name, sizeof(name)))
		(void)snprintf(buf, len, "%s (uid %u)", name, (unsigned)uid);
	else
		(void)snprintf(buf, len, "uid %u", (unsigned)uid);
}

static bool owner_trusted(uid_t uid)
{
	uid_t want;

	if (uid == geteuid() || uid == 0)
		return true;
	return ring_owner_user && user_uid(ring_owner_user, &want) && want == uid;
}

int ring_shm_trusted(const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || (st->st_mode & (S_IWGRP | S_IWOTH)) ||
	    !owner_trusted(st->st_uid))
		return -EPERM;
	return 0;
}

int ring_shm_open(const char *name, int flags, struct stat *ret_st)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, err;

	err = ring_shm_path(name, path, sizeof(path));
	if (err < 0)
		return err;
	/* as shm_open(3), and no symbolic link, nor a FIFO to block on: refused below */
	fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ELOOP ? -EPERM : -errno;
	if (fstat(fd, &st) < 0)
		err = -errno;
	else
		err = ring_shm_trusted(&st);
	if (err < 0) {
		(void)close(fd);
		return err;
	}
	if (ret_st)
		*ret_st = st;
	return fd;
}

/* Describe object 'name' (one line) if it is refused; true then. */
static bool describe_refusal(const char *name, char *why, size_t len)
{
	char path[PATH_MAX], owner[96], me[96] = "", also[96] = "";
	struct stat st;

	if (ring_shm_path(name, path, sizeof(path)) < 0 || lstat(path, &st) < 0 ||
	    ring_shm_trusted(&st) == 0)
		return false;
	format_user(st.st_uid, owner, sizeof(owner));
	if (geteuid() != 0) {
		format_user(geteuid(), me, sizeof(me));
		(void)snprintf(me + strlen(me), sizeof(me) - strlen(me), " or ");
	}
	if (ring_owner_user)
		(void)snprintf(also, sizeof(also), " or %s ([History] ringOwner)", ring_owner_user);
	(void)snprintf(why, len,
		       "'%s'%s is owned by %s with mode %04o; this service's shared memory must be "
		       "a file of %sroot%s that group and others may not write: %s",
		       path, S_ISREG(st.st_mode) ? "" : ", not a regular file,", owner,
		       (unsigned)(st.st_mode & 07777), me, also,
		       !S_ISREG(st.st_mode) || (st.st_mode & (S_IWGRP | S_IWOTH))
			       ? "remove it"
			       : "remove it, or if its owner runs the service, name that user in "
				 "[History] ringOwner");
	return true;
}

int ring_refusal(const char *ring_name, char *why, size_t len)
{
	char stats[NAME_MAX + 1];

	if (describe_refusal(ring_name, why, len))
		return -EPERM;
	if (ring_stats_name(ring_name, stats, sizeof(stats)) == 0 &&
	    describe_refusal(stats, why, len))
		return -EPERM;
	(void)snprintf(why, len, "%s", strerror(EPERM));
	return 0;
}

/* Open shm object 'name' for reading, or reading and writing, and give its size: the fd
 * (caller closes), or -errno. */
static int shm_open_sized(const char *name, bool writable, off_t *ret_size)
{
	struct stat st = { 0 };
	int fd = ring_shm_open(name, writable ? O_RDWR : O_RDONLY, &st);

	if (fd >= 0)
		*ret_size = st.st_size;
	return fd;
}

int ring_map(const char *name, bool writable, void **ret_base, size_t *ret_size)
{
	off_t size = 0;
	int fd, err;

	fd = shm_open_sized(name, writable, &size);
	if (fd < 0)
		return fd;
	err = ring_map_fd(fd, (size_t)size, writable, ret_base, ret_size);
	(void)close(fd); /* the mapping keeps the object alive */
	return err;
}

int ring_map_fd(int fd, size_t size, bool writable, void **ret_base, size_t *ret_size)
{
	void *base;

	if (size < RING_HDR_SIZE) {
		*ret_size = size;
		return -EPROTO; /* being created, or not ours */
	}
	base = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	*ret_base = base;
	*ret_size = size;
	return 0;
}

int ring_attach(const char *name, struct ring *ret_ring)
{
	return ring_open(name, false, ret_ring);
}

int ring_open(const char *name, bool writable, struct ring *ret_ring)
{
	struct ring r;
	size_t size = 0; /* ring_map() sets both only on success (size on -EPROTO) */
	void *base = NULL;
	int err;

	err = ring_map(name, writable, &base, &size);
	if (err < 0)
		return err;
	if (!base)
		return -EIO; /* not reached: ring_map() sets base on success */
	err = ring_validate(base, size);
	if (err < 0) {
		(void)munmap(base, size);
		return err;
	}
	ring_init_handle(&r, base, size);
	*ret_ring = r;
	return 0;
}

void ring_detach(struct ring *r)
{
	if (r->hdr)
		(void)munmap(r->hdr, r->map_size);
	r->hdr = NULL;
}

int ring_rec_get(const struct ring *r, uint64_t seq, struct ring_rec *ret)
{
	const struct ring_idx *e = &r->idx[seq & r->idx_mask];
	struct ring_rec rec;
	uint64_t off;

	if (seq >= ring_head(r))
		return -EAGAIN;
	if (seq < ring_tail(r))
		return -ESTALE;
	if (atomic_load_explicit(&e->seq, memory_order_acquire) != seq)
		return -ESTALE;
	rec.seq = seq;
	rec.time_us = atomic_load_explicit(&e->time_us, memory_order_relaxed);
	rec.pos = atomic_load_explicit(&e->pos, memory_order_relaxed);
	rec.topic_len = atomic_load_explicit(&e->topic_len, memory_order_relaxed);
	rec.id_len = atomic_load_explicit(&e->id_len, memory_order_relaxed);
	rec.payload_len = atomic_load_explicit(&e->payload_len, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&e->seq, memory_order_relaxed) != seq)
		return -ESTALE;
	/* A validated entry cannot describe a wrapping or oversized record; check anyway, since
	 * a bug here would read outside the mapping. */
	off = rec.pos & r->data_mask;
	if (ring_rec_len(&rec) > r->data_size - off)
		return -ESTALE;
	rec.id = r->data + off;
	rec.topic = rec.id + rec.id_len;
	rec.payload = rec.topic + rec.topic_len;
	*ret = rec;
	return 0;
}

bool ring_rec_valid(const struct ring *r, const struct ring_rec *rec)
{
	atomic_thread_fence(memory_order_acquire);
	return atomic_load_explicit(&r->hdr->data_tail, memory_order_acquire) <= rec->pos;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define RING_COPY_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RING_COPY_SANITIZED 1
#endif

/*
 * Below this, a library memcpy beats rep movsb's start-up; above it, rep movsb streams a record
 * out of the ring faster than musl's memcpy and as fast as glibc's (README "Performance", replay:
 * measured 1.3, 1.9 and 3.9 GB/s copying 1 KiB records out of 256 MiB).
 */
#define RING_COPY_MOVSB_MIN 256u

/* The seqlock's deliberate race lives here alone (tests/tsan.supp names this function). */
__attribute__((noinline)) void ring_copy_from(void *dst, const uint8_t *src, size_t len)
{
#if defined(__x86_64__) && !defined(RING_COPY_SANITIZED)
	/* Sanitizer builds take memcpy, which they can see into. */
	if (len >= RING_COPY_MOVSB_MIN) {
		__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(len) : : "memory");
		return;
	}
#endif
	memcpy(dst, src, len);
}

/* Time of entry seq, or -ESTALE if the entry is being rewritten. */
static int entry_time(const struct ring *r, uint64_t seq, uint64_t *ret_time)
{
	const struct ring_idx *e = &r->idx[seq & r->idx_mask];
	uint64_t t;

	if (atomic_load_explicit(&e->seq, memory_order_acquire) != seq)
		return -ESTALE;
	t = atomic_load_explicit(&e->time_us, memory_order_relaxed);
	atomic_thread_fence(memory_order_acquire);
	if (atomic_load_explicit(&e->seq, memory_order_relaxed) != seq)
		return -ESTALE;
	*ret_time = t;
	return 0;
}

#define FIND_TIME_TRIES 16 /* restarts of the search before giving up to the caller */

int ring_find_time(const struct ring *r, uint64_t time_us, uint64_t *ret_seq, uint64_t *ret_lo)
{
	for (int tries = 0; tries < FIND_TIME_TRIES; tries++) {
		uint64_t head = ring_head(r);
		/*
		 * Entries below head - nidx have had their slots reused (or never existed). Entry
		 * head - nidx is the oldest held message of a full index until the next publish
		 * reuses it, which the check of lo after the search catches.
		 */
		uint64_t lo = head > r->nidx ? head - r->nidx : 1;
		const uint64_t first =
			atomic_load_explicit(&r->hdr->first_seq, memory_order_acquire);
		uint64_t a, b = head, t;
		bool torn = false;

		lo = MAX(lo, MIN(first, head)); /* section 8: nothing below first_seq */
		a = lo;
		/* invariant: every seq < a has time < time_us, every seq >= b has time >= time_us */
		while (a < b) {
			uint64_t mid = a + (b - a) / 2;
			if (entry_time(r, mid, &t) < 0) {
				torn = true;
				break;
			}
			if (t < time_us)
				a = mid + 1;
			else
				b = mid;
		}
		if (torn)
			continue;
		/* the lowest entry may have been reused during the search: check it still holds */
		if (lo > 1 && lo < head && entry_time(r, lo, &t) < 0)
			continue;
		*ret_seq = a;
		*ret_lo = lo;
		return 0;
	}
	return -EAGAIN;
}

int ring_wait(const struct ring *r, uint32_t seen, uint32_t timeout_ms)
{
	struct timespec ts = {
		.tv_sec = (time_t)(timeout_ms / 1000u),
		.tv_nsec = (long)(timeout_ms % 1000u) * 1000000L,
	};
	long rc;

	/* Shared futex (no FUTEX_PRIVATE_FLAG): the waker is another process. */
	rc = syscall(SYS_futex, &r->hdr->wake, FUTEX_WAIT, seen, &ts, NULL, 0);
	if (rc == 0 || errno == EAGAIN || errno == EINTR || errno == ETIMEDOUT)
		return 0;
	return -errno;
}

uint64_t ring_now_us(const struct ring *r)
{
	return io_now_mono_us() +
	       atomic_load_explicit(&r->hdr->clock_offset_us, memory_order_acquire);
}

#define KEEPALIVE_STAMP_TRIES 64 /* a stamp window is a few microseconds of the broker's time */

int ring_keepalive_time(const struct ring *r, uint64_t *ret_time_us, uint64_t *ret_head)
{
	for (int i = 0; i < KEEPALIVE_STAMP_TRIES; i++) {
		uint32_t s1 = atomic_load_explicit(&r->hdr->stamp, memory_order_acquire);
		uint64_t head, now, last;

		if (s1 & 1u) {
			(void)sched_yield();
			continue;
		}
		head = ring_head(r);
		last = atomic_load_explicit(&r->hdr->last_time_us, memory_order_relaxed);
		now = ring_now_us(r);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&r->hdr->stamp, memory_order_relaxed) != s1)
			continue;
		/* section 8: a stream's times may be behind this machine's clock */
		if (atomic_load_explicit(&r->hdr->stream_time, memory_order_relaxed))
			now = 0;
		*ret_time_us = MAX(now, last + 1);
		*ret_head = head;
		return 0;
	}
	return -EAGAIN;
}

uint64_t ring_resume_time(const struct ring *r, uint64_t seq)
{
	struct ring_rec rec;
	uint64_t t, head;

	if (ring_rec_get(r, seq, &rec) == 0)
		return rec.time_us;
	if (ring_keepalive_time(r, &t, &head) == 0)
		return t;
	/* the writer kept stamping: one past the newest message is valid as well */
	return atomic_load_explicit(&r->hdr->last_time_us, memory_order_relaxed) + 1;
}

/* Report missed messages and move c to resume_seq. */
static int cursor_gap(const struct ring *r, struct ring_cursor *c, uint64_t missed,
		      uint64_t resume_seq, struct ring_gap *ret_gap)
{
	ret_gap->missed = missed;
	ret_gap->resume_seq = resume_seq;
	ret_gap->resume_us = ring_resume_time(r, resume_seq);
	ring_cursor_init(c, resume_seq);
	return RING_NEXT_GAP;
}

int ring_cursor_seek_time(const struct ring *r, uint64_t since_us, struct ring_cursor *c,
			  struct ring_gap *ret_gap)
{
	uint64_t first, lo, tail, evicted;
	int err;

	err = ring_find_time(r, since_us, &first, &lo);
	if (err < 0)
		return err;
	tail = ring_tail(r);
	evicted = atomic_load_explicit(&r->hdr->evicted_time_us, memory_order_relaxed);
	if (evicted && evicted >= since_us)
		return cursor_gap(r, c, first < tail ? tail - first : 1, MAX(first, tail), ret_gap);
	ring_cursor_init(c, MAX(first, tail));
	return 0;
}

int ring_next(const struct ring *r, struct ring_cursor *c, struct ring_rec *ret_rec,
	      struct ring_gap *ret_gap)
{
	for (;;) {
		uint64_t tail, head;
		int err = ring_rec_get(r, c->next, ret_rec);

		if (err == -EAGAIN)
			return -EAGAIN;
		if (err == 0 && c->tries < RING_READ_TRIES) {
			c->tries++;
			return RING_NEXT_MSG;
		}
		/* lapped: resume at the oldest held message. A ring holds at most nidx messages, so
		 * below head - nidx every slot was reused whatever tail says (read first, it may be
		 * behind): a corrupt ring keeps a reader busy for one index at most, not to 2^64 */
		tail = ring_tail(r);
		head = ring_head(r);
		tail = MAX(tail, head > r->nidx ? head - r->nidx : 0);
		if (tail > c->next)
			return cursor_gap(r, c, tail - c->next, tail, ret_gap);
		if (err < 0 && ++c->tries < RING_READ_TRIES)
			continue; /* caught mid-rewrite: look again */
		/* held, yet unreadable every time: skip it, and say so */
		return cursor_gap(r, c, 1, c->next + 1, ret_gap);
	}
}

int ring_read(const struct ring *r, struct ring_cursor *c, uint8_t *buf, size_t cap,
	      struct ring_rec *ret_rec, struct ring_gap *ret_gap)
{
	for (;;) {
		uint32_t tries = c->tries;
		size_t len;
		int err = ring_next(r, c, ret_rec, ret_gap);

		if (err != RING_NEXT_MSG)
			return err;
		len = (size_t)ret_rec->topic_len + ret_rec->payload_len;
		if (len > cap) {
			c->tries = tries; /* not a failed read: the caller grows buf */
			return -EMSGSIZE;
		}
		/* topic and payload are adjacent in the ring: one copy */
		ring_copy_from(buf, ret_rec->topic, len);
		if (ring_rec_valid(r, ret_rec)) {
			ring_cursor_advance(c);
			return RING_NEXT_MSG;
		}
	}
}

int ring_stats_name(const char *ring_name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s", ring_name, RING_STATS_SUFFIX);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int ring_stats_attach(const char *ring_name, bool writable, struct ring_stats **ret_stats)
{
	char name[NAME_MAX + 1];
	struct ring_stats *s;
	off_t size = 0;
	int fd, err;

	err = ring_stats_name(ring_name, name, sizeof(name));
	if (err < 0)
		return err;
	fd = shm_open_sized(name, writable, &size);
	if (fd < 0)
		return fd;
	if (size != (off_t)sizeof(struct ring_stats)) {
		err = -EPROTO;
		goto out_close_fd;
	}
	s = mmap(NULL, sizeof(*s), writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd,
		 0);
	if (s == MAP_FAILED) {
		err = -errno;
		goto out_close_fd;
	}
	if (atomic_load_explicit(&s->magic, memory_order_acquire) != RING_STATS_MAGIC ||
	    s->version != RING_VERSION) {
		(void)munmap(s, sizeof(*s));
		err = -EPROTO;
		goto out_close_fd;
	}
	(void)close(fd);
	*ret_stats = s;
	return 0;

out_close_fd:
	(void)close(fd);
	return err;
}

void ring_stats_detach(struct ring_stats *s)
{
	if (s)
		(void)munmap(s, sizeof(*s));
}
