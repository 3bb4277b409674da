/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the ring reader fed arbitrary ring bytes (shm/ring.h).
 *
 * Readers trust nothing in the mapping but what ring_validate() checked: head, tail, positions
 * and lengths are whatever the bytes say (a broker bug, a torn write, a stray scribbler). So
 * the input is a ring image, validated, and for a valid one every reader entry point runs over
 * it on a heap block of exactly the mapping's size: ASan reports any read outside.
 *
 * Input: [mode: 1 byte][struct ring_hdr][idx entries][data bytes], each part as long as the
 * input lasts; the rest of the mapping is zero. Mode bit 0 "fixup" stamps the creation
 * constants (magic, version, layout, hdr_size) and bends nidx and data_size to small powers of
 * two, so that most inputs reach the reader; without it the header is taken as it is, and only
 * ring_validate() runs unless the image happens to be valid and small. fuzz/ring-seed.c makes
 * seeds of every kind with the writer API.
 *
 * Mode bit 1 "writer" (input [mode][ops: FUZZ_OPS_LEN bytes][hdr][idx][data]) also runs the
 * writer (shm/ring-writer.c) on the image as a broker that restarts on a ring left by a crash, a
 * bug or a scribbler: the image (index of the writer's RING_MIN_IDX entries) goes into a shared
 * memory object of its own, ring_writer_open() validates and recovers it, the ops publish, expire
 * and skip, and a reader attached by name must read every message published since back, whole
 * and byte for byte, whatever the ring held before (fuzz_writer()).
 *
 * Mode bit 2 "owner" (with bit 1) first plants the ring, its statistics object or both as
 * shm/ring.h section 1 says nobody may use them (ops[OP_OWNER]): writable by group or others, a
 * FIFO, a symbolic link, another user's; or as they may be (ours, or the user [History]
 * ringOwner names). Readers, ring_refusal() and the writer must refuse exactly the first kind,
 * with -EPERM and a line naming the file, and leave it as it was (plant_owner()).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz/fuzz.h"
#include "shm/ring.h"
#include "shm/topic.h"

/* Largest index and data area an image is built with: small, so a run makes many images. */
#define FUZZ_RING_MAX_IDX  256U
#define FUZZ_RING_MAX_DATA (4U * (uint64_t)RING_MIN_DATA)
#define FUZZ_RING_MAX_MAP  (RING_HDR_SIZE + RING_MIN_IDX * 32U + FUZZ_RING_MAX_DATA)

/* Consecutive seqs read from the tail on, as a subscriber that starts there would. */
#define FUZZ_RING_WALK 64U

#define FUZZ_RING_FIXUP	 0x01U
#define FUZZ_RING_WRITER 0x02U
#define FUZZ_RING_OWNER	 0x04U
#define FUZZ_OPS_LEN	 16U

/* Where a reader copies a record to: as large as the biggest record a valid image can hold. */
static uint8_t copy_buf[FUZZ_RING_MAX_DATA];
static uint8_t topic_buf[TOPIC_MAX_BYTES];
static char path_buf[256];

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* Locate message seq and copy it as a subscriber does, checking what ring_rec_get gave. */
static void read_one(const struct ring *r, uint64_t seq)
{
	struct ring_rec rec;
	uint64_t len;
	int err = ring_rec_get(r, seq, &rec);

	FUZZ_CHECK(err == 0 || err == -EAGAIN || err == -ESTALE, "ring_rec_get: %d", err);
	if (err < 0)
		return;
	len = ring_rec_len(&rec);
	FUZZ_CHECK(rec.seq == seq, "asked for %llu, got %llu", (unsigned long long)seq,
		   (unsigned long long)rec.seq);
	FUZZ_CHECK(rec.id == r->data + (rec.pos & r->data_mask), "record not at its position");
	FUZZ_CHECK(fuzz_inside(r->data, r->data_size, rec.id, len),
		   "record of %llu bytes at %llu outside the data area", (unsigned long long)len,
		   (unsigned long long)(rec.pos & r->data_mask));
	FUZZ_CHECK(rec.topic == rec.id + rec.id_len && rec.payload == rec.topic + rec.topic_len,
		   "id, topic and payload not adjacent");
	FUZZ_CHECK(rec.topic_len <= RING_MAX_TOPIC && rec.id_len <= RING_MAX_ID, "field widths");

	/* One copy of the whole record, then its parts as a subscriber copies them. */
	ring_copy_from(copy_buf, rec.id, (size_t)len);
	(void)ring_rec_valid(r, &rec);
	ring_copy_from(topic_buf, rec.topic, rec.topic_len);
	ring_copy_from(copy_buf, rec.payload, rec.payload_len);
	(void)ring_rec_valid(r, &rec);
	(void)topic_format(topic_buf, rec.topic_len, path_buf, sizeof(path_buf));
}

/* A subscriber's walk from seq from through the public reader (shm/ring.h): every step is the
 * message at the cursor, a gap that moves it forward, or the end. */
static void walk(const struct ring *r, uint64_t from, size_t cap)
{
	struct ring_cursor c;

	ring_cursor_init(&c, from);
	for (unsigned int i = 0; i < FUZZ_RING_WALK; i++) {
		struct ring_rec rec;
		struct ring_gap gap;
		uint64_t at = c.next;
		int err = ring_read(r, &c, copy_buf, cap, &rec, &gap);

		if (err == -EMSGSIZE) {
			/* too small a buffer leaves the cursor where it was: the whole one */
			FUZZ_CHECK(c.next == at && (size_t)rec.topic_len + rec.payload_len > cap,
				   "-EMSGSIZE for %u + %u bytes into %zu", rec.topic_len,
				   rec.payload_len, cap);
			cap = sizeof(copy_buf);
			err = ring_read(r, &c, copy_buf, cap, &rec, &gap);
		}
		FUZZ_CHECK(err == RING_NEXT_MSG || err == RING_NEXT_GAP || err == -EAGAIN,
			   "ring_read: %d", err);
		if (err == RING_NEXT_MSG)
			FUZZ_CHECK(rec.seq == at && c.next == at + 1,
				   "read %llu at %llu, now at %llu", (unsigned long long)rec.seq,
				   (unsigned long long)at, (unsigned long long)c.next);
		else if (err == RING_NEXT_GAP)
			FUZZ_CHECK(gap.missed >= 1 && gap.resume_seq > at &&
					   c.next == gap.resume_seq,
				   "gap of %llu from %llu to %llu", (unsigned long long)gap.missed,
				   (unsigned long long)at, (unsigned long long)gap.resume_seq);
		else
			return;
	}
}

static void find_one(const struct ring *r, uint64_t time_us)
{
	struct ring_cursor c;
	struct ring_gap gap;
	int serr = ring_cursor_seek_time(r, time_us, &c, &gap);
	uint64_t head = ring_head(r), seq = 0, lo = 0;
	int err = ring_find_time(r, time_us, &seq, &lo);

	FUZZ_CHECK(err == 0 || err == -EAGAIN, "ring_find_time: %d", err);
	FUZZ_CHECK(serr == 0 || serr == RING_NEXT_GAP || serr == -EAGAIN,
		   "ring_cursor_seek_time: %d", serr);
	if (err < 0)
		return;
	FUZZ_CHECK(lo >= 1 && lo <= seq, "lo %llu, seq %llu", (unsigned long long)lo,
		   (unsigned long long)seq);
	/* A ring's head starts at 1; a zeroed head still gives seq 1, which reads nothing. */
	FUZZ_CHECK(seq <= (head ? head : 1), "seq %llu past head %llu", (unsigned long long)seq,
		   (unsigned long long)head);
	/* the search starts at the oldest index entry still held, or at first_seq when that is
	 * later (shm/ring.h section 8: a cluster node's ring skips what it never held) */
	{
		uint64_t first = atomic_load_explicit(&r->hdr->first_seq, memory_order_relaxed);
		uint64_t want = MAX(head > r->nidx ? head - r->nidx : 1, MIN(first, head));

		FUZZ_CHECK(lo == want, "lo %llu, want %llu (head %llu, nidx %llu, first_seq %llu)",
			   (unsigned long long)lo, (unsigned long long)want,
			   (unsigned long long)head, (unsigned long long)r->nidx,
			   (unsigned long long)first);
	}
	if (seq < head)
		read_one(r, seq);
}

/* Every reader entry point over a validated image. */
static void read_image(uint8_t *base, size_t map_size, uint64_t seed)
{
	struct ring r;
	uint64_t head, tail, t, ka_head;

	ring_init_handle(&r, base, map_size);
	FUZZ_CHECK(fuzz_inside(base, map_size, r.idx, r.nidx * sizeof(struct ring_idx)),
		   "index outside the mapping");
	FUZZ_CHECK(fuzz_inside(base, map_size, r.data, r.data_size), "data outside the mapping");
	FUZZ_CHECK(r.data == (uint8_t *)(r.idx + r.nidx), "data does not follow the index");

	head = ring_head(&r);
	tail = ring_tail(&r);
	(void)ring_closed(&r);
	(void)ring_wake_word(&r);

	/* Around the ends, whatever they say, then a subscriber's walk from the tail. */
	{
		const uint64_t edge[] = {
			0,    1,	tail - 1,   tail,	   head - 1,
			head, head + 1, UINT64_MAX, head - r.nidx, tail + r.nidx
		};

		for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++)
			read_one(&r, edge[i]);
	}
	walk(&r, tail, sizeof(copy_buf));
	/* from behind the tail (lapped), into a buffer that may be too small */
	walk(&r, tail - 1 - fuzz_range(&seed, 0, 3), fuzz_range(&seed, 0, 64));
	/* Whatever seq each index entry claims to hold. */
	for (uint64_t k = 0; k < r.nidx; k++)
		read_one(&r, atomic_load_explicit(&r.idx[k].seq, memory_order_relaxed));

	/* Replays: times around the entries' own, the ends of time, and one from the input. */
	find_one(&r, 0);
	find_one(&r, UINT64_MAX);
	find_one(&r, fuzz_rand(&seed));
	find_one(&r, atomic_load_explicit(&r.hdr->last_time_us, memory_order_relaxed));
	for (uint64_t k = 0; k < r.nidx && k < 8; k++) {
		t = atomic_load_explicit(&r.idx[k].time_us, memory_order_relaxed);
		find_one(&r, t);
		find_one(&r, t + 1);
	}

	/* A keepalive's resume time; an odd stamp (a writer mid-publish) makes it spin, skip. */
	FUZZ_CHECK(ring_wait(&r, ring_wake_word(&r) + 1U, 0) == 0, "a wait on a moved word");
	if (!(atomic_load_explicit(&r.hdr->stamp, memory_order_relaxed) & 1U)) {
		int err = ring_keepalive_time(&r, &t, &ka_head);

		FUZZ_CHECK(err == 0 && ka_head == head, "keepalive time: %d", err);
	}
}

/* ---- the writer and its recovery, on a shared-memory copy of the image ---- */

/* The ops block of a writer input, byte by byte. */
enum {
	OP_COUNT,  /* publishes: low 3 bits; 0x08 expire, 0x10 skip, 0x20 recreate, 0x40 defer */
	OP_STATS,  /* % 3: the stats object left alone, of the wrong size, or without its magic */
	OP_PAY_LO, /* payload length: 16 bits, up to a little past RING_MAX_RECORD */
	OP_PAY_HI,
	OP_TOPIC_LEN, /* topic bytes */
	OP_ID_LEN,    /* id bytes */
	OP_STEP,      /* us between publish times; 0: the ring clock */
	OP_RETENTION, /* ms of retention for the writer; 0: none */
	OP_SKIP,      /* how far ring_skip_to() jumps past head */
	OP_OWNER,     /* with mode bit 2: the objects planted, and ringOwner (plant_owner) */
};

#define FUZZ_PUB_MAX 8U

/* What a publish stored, to read back. */
struct fuzz_pub {
	uint64_t seq;
	uint32_t id_len, topic_len, payload_len;
};

static uint8_t pub_buf[FUZZ_RING_MAX_DATA];

/* The bytes of message seq: id, topic, payload in one run, different for every seq. */
static void pub_fill(uint64_t seq, size_t len)
{
	for (size_t i = 0; i < len; i++)
		pub_buf[i] = (uint8_t)('a' + (seq * 7 + i) % 26);
}

/* A shared-memory object called name holding len bytes from src (and a stats object beside it,
 * spoiled as ops says). */
static void shm_put(const char *name, const void *src, size_t len, uint8_t stats_op)
{
	char stats[80];
	int fd;

	(void)!ring_unlink(name);
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0 && pwrite(fd, src, len, 0) == (ssize_t)len, "shm object %s", name);
	(void)close(fd);
	FUZZ_CHECK(ring_stats_name(name, stats, 4) == -ENAMETOOLONG, "a short stats name buffer");
	FUZZ_CHECK(ring_stats_name(name, stats, sizeof(stats)) == 0, "stats name");
	if (stats_op % 3 == 0)
		return; /* ring_writer_open() makes it */
	fd = shm_open(stats, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "stats object %s", stats);
	/* the wrong size, or the right one all zero (no magic) */
	FUZZ_CHECK(ftruncate(fd, stats_op % 3 == 1 ? 100 : (off_t)sizeof(struct ring_stats)) == 0,
		   "stats size");
	(void)close(fd);
}

/* Publish up to FUZZ_PUB_MAX messages as ops says; the ones stored go into pubs. */
static size_t publish_ops(struct ring_writer *w, const uint8_t *ops, struct fuzz_pub *pubs)
{
	const uint64_t max = RING_MAX_RECORD(w->r.data_size);
	uint64_t t = ops[OP_STEP] ? atomic_load(&w->r.hdr->last_time_us) : 0;
	size_t n = 0;

	for (unsigned int k = 0; k < (ops[OP_COUNT] & 7U); k++) {
		struct fuzz_pub p = {
			.id_len = ops[OP_ID_LEN] % 40U,
			.topic_len = (ops[OP_TOPIC_LEN] + k) % 64U,
			.payload_len =
				(uint32_t)(((uint64_t)(ops[OP_PAY_HI] << 8 | ops[OP_PAY_LO]) *
					    (k + 1)) %
					   (max + 64)),
		};
		uint64_t len = (uint64_t)p.id_len + p.topic_len + p.payload_len, seq, time_us;
		const uint64_t head = ring_head(&w->r), last = atomic_load(&w->r.hdr->last_time_us);
		int err;

		pub_fill(head, (size_t)MIN(len, sizeof(pub_buf)));
		t += ops[OP_STEP];
		err = len > sizeof(pub_buf)
			      ? -EMSGSIZE
			      : ring_publish_id(w, pub_buf, p.id_len, pub_buf + p.id_len,
						p.topic_len, pub_buf + p.id_len + p.topic_len,
						p.payload_len, t, &seq, &time_us);
		FUZZ_CHECK(err == (len > max ? -EMSGSIZE : 0), "publish of %llu bytes: %d",
			   (unsigned long long)len, err);
		if (err < 0)
			continue;
		/* times strictly increase, and are never before the one asked for */
		FUZZ_CHECK(time_us > last && time_us >= t, "time %llu after %llu, asked %llu",
			   (unsigned long long)time_us, (unsigned long long)last,
			   (unsigned long long)t);
		FUZZ_CHECK(seq == head && ring_head(&w->r) == head + 1,
			   "published %llu at head %llu", (unsigned long long)seq,
			   (unsigned long long)head);
		p.seq = seq;
		pubs[n++] = p;
	}
	return n;
}

/* Every message published since the writer opened and still held reads back whole. */
static void read_back(const struct ring *r, const struct fuzz_pub *pubs, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct fuzz_pub *p = &pubs[k];
		const uint64_t len = (uint64_t)p->id_len + p->topic_len + p->payload_len;
		struct ring_rec rec;
		int err;

		if (p->seq < ring_tail(r))
			continue; /* evicted by a later one */
		err = ring_rec_get(r, p->seq, &rec);
		FUZZ_CHECK(err == 0, "message %llu, published, not readable: %d",
			   (unsigned long long)p->seq, err);
		FUZZ_CHECK(rec.id_len == p->id_len && rec.topic_len == p->topic_len &&
				   rec.payload_len == p->payload_len,
			   "message %llu read with other lengths", (unsigned long long)p->seq);
		ring_copy_from(copy_buf, rec.id, (size_t)len);
		FUZZ_CHECK(ring_rec_valid(r, &rec), "message %llu, just published, refused",
			   (unsigned long long)p->seq);
		pub_fill(p->seq, (size_t)len);
		FUZZ_CHECK(memcmp(copy_buf, pub_buf, (size_t)len) == 0,
			   "message %llu read back other bytes", (unsigned long long)p->seq);
	}
}

/* ---- section 1: objects that are not the service's, planted under the names ---- */

/*
 * OP_OWNER, with mode bit 2: how the ring, its statistics object or both are planted before
 * anyone opens them, and what [History] ringOwner says. Bits 0-2 the plant (enum plant), bit
 * 3 the statistics object rather than the ring, bit 7 both, bits 4-6 an index in owner_users.
 */
enum plant {
	PLANT_OURS,	 /* control: a regular file of ours, mode 0644, as the writer makes */
	PLANT_0666,	 /* ours, but anyone may write it (what versions before issue 14 made) */
	PLANT_0620,	 /* ours, group-writable */
	PLANT_0602,	 /* ours, others may write it */
	PLANT_FIFO,	 /* a FIFO: an opener that did not look would block on it */
	PLANT_SYMLINK,	 /* a symbolic link to a valid copy, which a follower would use */
	PLANT_OTHER,	 /* FUZZ_OTHER_UID's, mode 0644: trusted only if ringOwner names it */
	PLANT_OTHER_0664 /* FUZZ_OTHER_UID's and group-writable: ringOwner cannot excuse that */
};
#define PLANT_KIND(op) ((enum plant)((op)&7U))
#define PLANT_STATS    0x08U
#define PLANT_BOTH     0x80U

/* A uid that is neither ours nor root's (the harness runs as root, so it can give files away). */
#define FUZZ_OTHER_UID 65534U

/* [History] ringOwner as OP_OWNER's bits 4-6 choose: none, empty, names and uids that trust
 * FUZZ_OTHER_UID or not (owner_names_other() decides, without shm/ring.c's reader). */
static const char *const owner_users[8] = {
	NULL, "", "nobody", "65534", "root", "daemon", "gitpubsub-fuzz-nobody", "65534x",
};

/* What a file is, to see that a refused one was left alone. */
struct file_id {
	bool exists;
	ino_t ino;
	mode_t mode;
	uid_t uid;
	off_t size;
};

/* One object under test: its shm name, path, how it was planted and whether openers refuse it. */
struct planted {
	char name[96], path[128];
	bool planted, refused;
	enum plant kind;
	struct file_id before;
};

static char long_name[PATH_MAX + 8]; /* longer than any path: every opener says -ENAMETOOLONG */

/* Where a symbolic link plant points: a valid copy of the object, under a name of the pid as
 * fuzz/run-fuzz's clean-up expects. */
static void target_name(char *buf, size_t len, bool stats)
{
	(void)snprintf(buf, len, "/gitpubsub-fuzz-ring-target-%ld%s", (long)getpid(),
		       stats ? RING_STATS_SUFFIX : "");
}

/* After an owner input: no link target left in /dev/shm, and ringOwner back to none. */
static void owner_cleanup(void)
{
	char target[96];

	for (int i = 0; i < 2; i++) {
		target_name(target, sizeof(target), i == 1);
		(void)shm_unlink(target);
	}
	ring_set_owner(NULL);
}

static struct file_id file_id_of(const char *path)
{
	struct file_id id = { 0 };
	struct stat st;

	if (lstat(path, &st) == 0)
		id = (struct file_id){ true, st.st_ino, st.st_mode, st.st_uid, st.st_size };
	return id;
}

static bool file_id_same(const struct file_id *a, const struct file_id *b)
{
	return a->exists == b->exists && a->ino == b->ino && a->mode == b->mode &&
	       a->uid == b->uid && a->size == b->size;
}

/* Whether ringOwner = user names FUZZ_OTHER_UID: a decimal uid, or a name NSS gives that uid. */
static bool owner_names_other(const char *user)
{
	const struct passwd *pw;

	if (!user || !*user)
		return false;
	if (strspn(user, "0123456789") == strlen(user))
		return strtoul(user, NULL, 10) == FUZZ_OTHER_UID;
	pw = getpwnam(user);
	return pw && pw->pw_uid == FUZZ_OTHER_UID;
}

/* A valid statistics object 'name' of ours (mode 0600), replacing whatever shm_put left. */
static void stats_put(const char *name)
{
	struct ring_stats s;
	int fd;

	memset(&s, 0, sizeof(s));
	s.version = RING_VERSION;
	atomic_store_explicit(&s.magic, RING_STATS_MAGIC, memory_order_relaxed);
	(void)shm_unlink(name);
	fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0 && pwrite(fd, &s, sizeof(s), 0) == (ssize_t)sizeof(s), "stats object %s",
		   name);
	(void)close(fd);
}

/* Plant the existing object o as o->kind says; false if this process cannot (not root). */
static bool plant(struct planted *o, const char *target)
{
	char target_path[128];

	switch (o->kind) {
	case PLANT_OURS:
		return chmod(o->path, 0644) == 0;
	case PLANT_0666:
		return chmod(o->path, 0666) == 0;
	case PLANT_0620:
		return chmod(o->path, 0620) == 0;
	case PLANT_0602:
		return chmod(o->path, 0602) == 0;
	case PLANT_FIFO:
		return unlink(o->path) == 0 && mkfifo(o->path, 0644) == 0;
	case PLANT_SYMLINK:
		return ring_shm_path(target, target_path, sizeof(target_path)) == 0 &&
		       rename(o->path, target_path) == 0 && symlink(target_path, o->path) == 0;
	case PLANT_OTHER:
		return chown(o->path, FUZZ_OTHER_UID, FUZZ_OTHER_UID) == 0 &&
		       chmod(o->path, 0644) == 0;
	case PLANT_OTHER_0664:
		return chown(o->path, FUZZ_OTHER_UID, FUZZ_OTHER_UID) == 0 &&
		       chmod(o->path, 0664) == 0;
	}
	return false;
}

/* Whether a uid appears in why as format_user() writes it: "uid N" and no further digit. */
static bool names_uid(const char *why, uid_t uid)
{
	char want[32];
	const char *p = why;
	size_t n = (size_t)snprintf(want, sizeof(want), "uid %u", (unsigned)uid);

	while ((p = strstr(p, want)) != NULL) {
		if (p[n] < '0' || p[n] > '9')
			return true;
		p += n;
	}
	return false;
}

static bool ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), e = strlen(end);

	return n >= e && strcmp(s + n - e, end) == 0;
}

/* ring_refusal() names the first refused object (the ring before its statistics object), its
 * owner and mode, and advice that fits: ringOwner only when the owner alone is wrong. */
static void check_refusal(const char *ring_name, const struct planted *ring,
			  const struct planted *stats)
{
	const struct planted *o = ring->refused ? ring : stats->refused ? stats : NULL;
	char why[512], small[8], mode[16];
	struct stat st;
	int err = ring_refusal(ring_name, why, sizeof(why));

	FUZZ_CHECK(ring_refusal(ring_name, small, sizeof(small)) == err &&
			   strlen(small) < sizeof(small),
		   "ring_refusal into %zu bytes", sizeof(small));
	if (!o) {
		FUZZ_CHECK(err == 0 && strcmp(why, strerror(EPERM)) == 0,
			   "ring_refusal without a refused object: %d, '%s'", err, why);
		return;
	}
	FUZZ_CHECK(err == -EPERM && lstat(o->path, &st) == 0, "ring_refusal: %d for %s", err,
		   o->path);
	(void)snprintf(mode, sizeof(mode), "mode %04o", (unsigned)(st.st_mode & 07777));
	FUZZ_CHECK(strstr(why, o->path) && strstr(why, mode) && names_uid(why, st.st_uid),
		   "the refusal of %s (%s, uid %u) says '%s'", o->path, mode, (unsigned)st.st_uid,
		   why);
	FUZZ_CHECK(ends_with(why, o->kind == PLANT_OTHER ? "[History] ringOwner" : "remove it"),
		   "advice for plant %d: '%s'", o->kind, why);
}

/*
 * Plant the objects of ring 'name' as op says (shm/ring.h section 1), then check every reader's
 * verdict: ring_attach() and ring_stats_attach() refuse (-EPERM) exactly the objects that are
 * not regular files, that group or others may write, or whose owner is not ours, root's or
 * ringOwner's, and ring_refusal() says which. The writer's turn is check_owner_writer().
 */
static void plant_owner(const char *name, uint8_t op, uint8_t stats_op, struct planted *ring,
			struct planted *stats)
{
	const char *user = owner_users[(op >> 4) & 7U];
	const bool other_ok = owner_names_other(user);
	struct planted *objs[2] = { ring, stats };
	struct ring_stats *st = NULL;
	struct ring r;
	char why[64];
	int err;

	ring_set_owner(user);
	(void)snprintf(ring->name, sizeof(ring->name), "%s", name);
	FUZZ_CHECK(ring_stats_name(name, stats->name, sizeof(stats->name)) == 0, "stats name");
	for (int i = 0; i < 2; i++) {
		struct planted *o = objs[i];
		char target[96];

		FUZZ_CHECK(ring_shm_path(o->name, o->path, sizeof(o->path)) == 0, "the path of %s",
			   o->name);
		o->kind = PLANT_KIND(op);
		o->planted = (op & PLANT_BOTH) || ((op & PLANT_STATS) != 0) == (i == 1);
		if (o->planted && i == 1)
			stats_put(o->name);
		target_name(target, sizeof(target), i == 1);
		/* a plant this process cannot make (chown, when not root) leaves the object ours */
		if (o->planted && !plant(o, target))
			o->kind = PLANT_OURS;
		o->refused = o->planted && o->kind != PLANT_OURS &&
			     (o->kind != PLANT_OTHER || !other_ok);
		o->before = file_id_of(o->path);
	}

	err = ring_attach(name, &r);
	FUZZ_CHECK(err == (ring->refused ? -EPERM : 0),
		   "ring_attach of plant %d (ringOwner %s): %d", ring->kind, user ? user : "none",
		   err);
	if (err == 0)
		ring_detach(&r);
	for (int writable = 0; writable < 2; writable++) {
		/* unplanted, as shm_put left it: absent, of the wrong size, or without magic */
		int want = stats_op % 3 == 0 ? -ENOENT : -EPROTO;

		if (stats->planted)
			want = stats->refused ? -EPERM : 0;
		err = ring_stats_attach(name, writable, &st);
		FUZZ_CHECK(err == want, "ring_stats_attach (writable %d) of plant %d: %d, want %d",
			   writable, stats->kind, err, want);
		if (err == 0)
			ring_stats_detach(st);
	}
	check_refusal(name, ring, stats);

	/* a name too long for a path is refused whole, never cut to another object's name */
	if (!long_name[0]) {
		memset(long_name, 'x', sizeof(long_name) - 1);
		long_name[0] = '/';
	}
	FUZZ_CHECK(ring_attach(long_name, &r) == -ENAMETOOLONG &&
			   ring_stats_attach(long_name, false, &st) == -ENAMETOOLONG &&
			   ring_refusal(long_name, why, sizeof(why)) == 0,
		   "a name of %zu bytes", strlen(long_name));
}

/*
 * The writer's verdict on the planted objects (err from ring_writer_open()): a refused ring is
 * -EPERM and neither object is touched, not even under --recreate; a refused statistics object
 * of ours that is only writable by others is replaced by one of mode 0644, any other is -EPERM
 * and left alone. -EPROTO (a ring no writer leaves, without --recreate) comes before the
 * statistics object is looked at.
 */
static void check_owner_writer(int err, bool recreate, const struct planted *ring,
			       const struct planted *stats)
{
	const bool replaceable =
		stats->kind == PLANT_0666 || stats->kind == PLANT_0620 || stats->kind == PLANT_0602;
	const struct file_id ring_after = file_id_of(ring->path);
	const struct file_id stats_after = file_id_of(stats->path);

	if (ring->refused) {
		FUZZ_CHECK(err == -EPERM, "the writer on ring plant %d: %d", ring->kind, err);
	} else if (stats->refused && !replaceable) {
		FUZZ_CHECK(err == -EPERM || (err == -EPROTO && !recreate),
			   "the writer on stats plant %d: %d", stats->kind, err);
	} else {
		FUZZ_CHECK(err == 0 || (err == -EPROTO && !recreate), "the writer: %d", err);
	}
	/* a refused object is never touched; a refused ring keeps the writer off both */
	if (ring->refused)
		FUZZ_CHECK(file_id_same(&ring->before, &ring_after) &&
				   file_id_same(&stats->before, &stats_after),
			   "the writer refused ring plant %d (%d) and touched an object",
			   ring->kind, err);
	else if (stats->refused && (!replaceable || err != 0))
		FUZZ_CHECK(file_id_same(&stats->before, &stats_after),
			   "the writer refused stats plant %d (%d) and touched it", stats->kind,
			   err);
	else if (err == 0 && stats->refused)
		FUZZ_CHECK(stats_after.exists && S_ISREG(stats_after.mode) &&
				   (stats_after.mode & 07777) == 0644 &&
				   stats_after.uid == geteuid() &&
				   stats_after.ino != stats->before.ino,
			   "stats plant %d not replaced: mode %04o uid %u", stats->kind,
			   (unsigned)(stats_after.mode & 07777), (unsigned)stats_after.uid);
}

/*
 * The broker's start on this image, then its work: ring_writer_open() refuses it (-EPROTO) or
 * recovers it (shm/ring.h section 6), and then what is published reads back through a reader
 * attached by name; expiry and a skip (section 8) keep head, tail and the reader's bounds.
 */
static void fuzz_writer(const uint8_t *ops, bool owner, const uint8_t *image, size_t size)
{
	const struct ring_hdr *h = (const struct ring_hdr *)image;
	struct ring_params p = {
		.data_size = h->data_size,
		.retention_us = (uint64_t)ops[OP_RETENTION] * 1000U,
		.recreate = (ops[OP_COUNT] & 0x20U) != 0,
	};
	struct fuzz_pub pubs[FUZZ_PUB_MAX];
	struct planted ring_o = { 0 }, stats_o = { 0 };
	struct ring_stats *st = NULL;
	struct ring_writer w;
	struct ring r, r2;
	char name[64], stats[80];
	bool created;
	size_t n;
	int err;

	(void)snprintf(name, sizeof(name), "/gitpubsub-fuzz-ring-%ld", (long)getpid());
	shm_put(name, image, size, ops[OP_STATS]);
	if (owner)
		plant_owner(name, ops[OP_OWNER], ops[OP_STATS], &ring_o, &stats_o);
	err = ring_writer_open(name, &p, &w, &created);
	if (owner)
		check_owner_writer(err, p.recreate, &ring_o, &stats_o);
	if (err < 0) {
		FUZZ_CHECK(err == -EPROTO || (owner && err == -EPERM), "ring_writer_open: %d", err);
		if (err == -EPROTO) {
			FUZZ_CHECK(ring_attach(name, &r) == 0, "a valid image does not attach");
			ring_detach(&r);
		}
		(void)!ring_unlink(name);
		if (owner)
			owner_cleanup();
		return;
	}
	FUZZ_CHECK(!(atomic_load(&w.r.hdr->stamp) & 1U), "the stamp is odd after recovery");
	FUZZ_CHECK(ring_attach(name, &r) == 0, "the writer's ring does not attach");
	/* a spoiled statistics object of ours is made again (shm/ring-writer.c create_stats) */
	err = ring_stats_attach(name, false, &st);
	FUZZ_CHECK(err == 0, "stats attach: %d (stats op %u, created %d)", err, ops[OP_STATS],
		   created);
	ring_stats_detach(st);
	/* a ring by the stats object's name: smaller than a header, refused */
	FUZZ_CHECK(ring_stats_name(name, stats, sizeof(stats)) == 0 &&
			   ring_attach(stats, &r2) == -EPROTO,
		   "the stats object attaches as a ring");

	w.defer_wake = (ops[OP_COUNT] & 0x40U) != 0;
	n = publish_ops(&w, ops, pubs);
	ring_wake_flush(&w);
	read_back(&r, pubs, n);
	if (ops[OP_COUNT] & 0x08U)
		(void)ring_expire(&w, atomic_load(&w.r.hdr->last_time_us) + 1);
	if (ops[OP_COUNT] & 0x10U) {
		const uint64_t head = ring_head(&r), tail = ring_tail(&r), to = head + ops[OP_SKIP];

		ring_skip_to(&w, to);
		/* nothing moves unless to is past head */
		FUZZ_CHECK(to == head ? ring_head(&r) == head && ring_tail(&r) == tail
				      : ring_head(&r) == to && ring_tail(&r) == to,
			   "after a skip to %llu: head %llu, tail %llu", (unsigned long long)to,
			   (unsigned long long)ring_head(&r), (unsigned long long)ring_tail(&r));
		ring_wake_flush(&w);
		/* and publishing goes on from there */
		n = publish_ops(&w, ops, pubs);
		read_back(&r, pubs, n);
	}
	FUZZ_CHECK(ring_tail(&r) <= ring_head(&r) && ring_head(&r) - ring_tail(&r) <= r.nidx,
		   "head %llu, tail %llu", (unsigned long long)ring_head(&r),
		   (unsigned long long)ring_tail(&r));
	walk(&r, ring_tail(&r), sizeof(copy_buf));
	FUZZ_CHECK(ring_wait(&r, ring_wake_word(&r) + 1U, 0) == 0, "a wait on a moved word");
	ring_writer_close(&w);
	ring_detach(&r);
	FUZZ_CHECK(ring_unlink(name) == 0, "unlink %s", name);
	if (owner)
		owner_cleanup();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* As aligned as a mapping's first page: struct ring_hdr wants 64 (UBSan checks it). */
	static _Alignas(RING_HDR_SIZE) uint8_t hdr_page[RING_HDR_SIZE];
	struct ring_hdr *h = (struct ring_hdr *)hdr_page;
	const size_t hsz = sizeof(struct ring_hdr);
	uint64_t seed = fuzz_hash(data, size), claimed, idx_bytes;
	size_t in_hdr, off, n;
	uint8_t mode, *base = NULL, ops[FUZZ_OPS_LEN] = { 0 };
	char why[160];
	bool fits;

	if (size < 1)
		return 0;
	mode = data[0];
	off = 1;
	if (mode & FUZZ_RING_WRITER) {
		/* the writer's ops, then a fixed-up image with the writer's index (RING_MIN_IDX) */
		n = MIN(size - off, sizeof(ops));
		memcpy(ops, data + off, n);
		off += n;
		mode |= FUZZ_RING_FIXUP;
	}
	memset(hdr_page, 0, sizeof(hdr_page));
	in_hdr = size - off < hsz ? size - off : hsz;
	memcpy(hdr_page, data + off, in_hdr);
	off += in_hdr;

	if (mode & FUZZ_RING_FIXUP) {
		atomic_store_explicit(&h->magic, RING_MAGIC, memory_order_relaxed);
		h->version = RING_VERSION;
		/* NOLINTNEXTLINE(bugprone-implicit-widening-of-multiplication-result): ring.h's */
		h->layout = RING_LAYOUT;
		h->hdr_size = RING_HDR_SIZE;
		if (!is_pow2(h->nidx) || h->nidx > FUZZ_RING_MAX_IDX)
			h->nidx = UINT64_C(1) << (h->nidx % 9);
		if (!is_pow2(h->data_size) || h->data_size < (uint64_t)RING_MIN_DATA ||
		    h->data_size > FUZZ_RING_MAX_DATA)
			h->data_size = (uint64_t)RING_MIN_DATA << (h->data_size % 3);
		if (mode & FUZZ_RING_WRITER)
			h->nidx = RING_MIN_IDX; /* what the writer makes for these sizes */
	}

	/* The size the header implies, if it can be computed at all. */
	fits = !__builtin_mul_overflow(h->nidx, (uint64_t)sizeof(struct ring_idx), &idx_bytes) &&
	       !__builtin_add_overflow(idx_bytes, (uint64_t)RING_HDR_SIZE, &claimed) &&
	       !__builtin_add_overflow(claimed, h->data_size, &claimed);
	if (!fits)
		claimed = seed;

	/* Only the exact size is accepted, and never less than a header. */
	FUZZ_CHECK(ring_validate(h, 0) == -EPROTO && ring_validate(h, RING_HDR_SIZE - 1) == -EPROTO,
		   "a mapping smaller than a header validates");
	FUZZ_CHECK(ring_validate(h, (size_t)claimed + 1) == -EPROTO &&
			   ring_validate(h, (size_t)claimed - 1) == -EPROTO,
		   "a mapping of the wrong size validates");
	if (ring_validate_why(h, (size_t)claimed, why, sizeof(why)) < 0) {
		FUZZ_CHECK(!(mode & FUZZ_RING_FIXUP), "a fixed-up header does not validate");
		FUZZ_CHECK(why[0] != '\0', "a refusal without a reason");
		return 0;
	}
	FUZZ_CHECK(fits && is_pow2(h->nidx) && is_pow2(h->data_size) &&
			   h->data_size >= (uint64_t)RING_MIN_DATA,
		   "ring_validate accepted nidx %llu, data_size %llu", (unsigned long long)h->nidx,
		   (unsigned long long)h->data_size);
	if (claimed > FUZZ_RING_MAX_MAP)
		return 0; /* valid, but too large to build per input */

	/* The mapping, exactly claimed bytes: header page, idx, data, from the input in order. */
	/* posix_memalign bounds the block at claimed bytes, not at a page: ASan sees past it. */
	FUZZ_CHECK(posix_memalign((void **)&base, 64, (size_t)claimed) == 0, "out of memory");
	memset(base, 0, (size_t)claimed);
	memcpy(base, hdr_page, RING_HDR_SIZE);
	n = size - off < idx_bytes ? size - off : (size_t)idx_bytes;
	memcpy(base + RING_HDR_SIZE, data + off, n);
	off += n;
	n = size - off < h->data_size ? size - off : (size_t)h->data_size;
	memcpy(base + RING_HDR_SIZE + idx_bytes, data + off, n);

	read_image(base, (size_t)claimed, seed);
	if (mode & FUZZ_RING_WRITER)
		fuzz_writer(ops, (mode & FUZZ_RING_OWNER) != 0, base, (size_t)claimed);
	free(base);
	return 0;
}
