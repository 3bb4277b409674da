/* SPDX-License-Identifier: MIT */
/*
 * Crash inside the append (README "Reliability", fault 2). For every crash point of the writer
 * (shm/ring.h, enum ring_crash_point: one between each two steps of section 5), a forked writer
 * process appends records until it is SIGKILLed at that point, while reader processes read the ring
 * continuously as frontends do and verify every record they deliver (each carries its seq and
 * a checksum, so a partial or mixed record is caught). Then ring_writer_open() recovers the
 * ring: timed (the figure: under 500 ms for a 64 MiB ring), checked field by field against
 * section 6, and appends continue at the old head with increasing times. At the end every
 * reader must have delivered up to the last message, with no bad record.
 *
 * Readers are processes with their own read-only mapping, like frontends; the writer is a
 * process so that the kernel drops its writer lock (flock) when it is killed, like a broker's.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"
#include "shm/ring.h"
#include "tests/tap.h"

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)

#define BIG_DATA	   (64 * MIB) /* the ring size the recovery figure is about */
#define BIG_MAX_PAYLOAD	   (48 * KIB) /* about 2,700 records a lap */
#define SMALL_DATA	   (64 * KIB) /* RING_MIN_DATA: a lap every few records, many skips */
#define SMALL_MAX_PAYLOAD  (12 * KIB)
#define SMALL_ROUNDS	   4	   /* crashes per point on the small ring */
#define FILL_LAPS	   5	   /* the ring is filled past one lap: a publish evicts */
#define FILL_LAPS_DIV	   4	   /* ... FILL_LAPS / FILL_LAPS_DIV laps */
#define READERS		   2	   /* reader processes */
#define MAX_COUNTDOWN	   64u	   /* a writer dies at the 1st..64th pass of its point */
#define WRITER_MAX_PUBLISH 100000  /* a writer that never reaches its point gives up */
#define AFTER_RECOVERY	   16	   /* messages the test appends itself after each recovery */
#define RECOVERY_LIMIT_US  500000u /* README "Reliability": the ring recovered in under 500 ms */
#define READER_WAIT_MS	   10u	   /* a reader's futex timeout: the crashed writer wakes nobody */
#define READER_DEADLINE_US (UINT64_C(60) * 1000000) /* a reader gives up after a minute */
#define READER_MAX_STALE   1000000u		    /* -ESTALE in a row without a lapping: a bug */
#define T_TOPIC_LEN	   8u			    /* "t\0NNNNNN" */
#define MSG_MIN		   16u			    /* seq + checksum */

static const char *const point_names[RING_CRASH_POINTS] = {
	[RING_CRASH_STAMPED] = "a: stamped",
	[RING_CRASH_TAIL] = "c: tail stored, data_tail not",
	[RING_CRASH_EVICTED] = "c: evicted",
	[RING_CRASH_BYTES_HALF] = "d: half the bytes",
	[RING_CRASH_BYTES] = "d: bytes copied",
	[RING_CRASH_ENTRY_CLEARED] = "e: entry cleared",
	[RING_CRASH_ENTRY_HALF] = "e: entry half set",
	[RING_CRASH_ENTRY] = "e: entry set",
	[RING_CRASH_DATA_HEAD] = "f: data_head moved",
	[RING_CRASH_LAST_TIME] = "f: last_time moved",
	[RING_CRASH_HEAD] = "f: head moved",
	[RING_CRASH_STAMP_EVEN] = "f: stamp even",
	[RING_CRASH_WOKEN] = "g: readers woken",
};

/* What each reader process reports, in a shared anonymous mapping. */
struct reader_report {
	_Atomic uint64_t delivered; /* records copied, validated and checked */
	_Atomic uint64_t torn;	    /* copies ring_rec_valid() refused (caught, not delivered) */
	_Atomic uint64_t gaps;	    /* lappings: jumps to the tail */
	_Atomic uint64_t bad;	    /* delivered records whose bytes were wrong: must stay 0 */
	_Atomic uint64_t anomalies; /* sizes out of range, -ESTALE without lapping, a deadline */
	_Atomic uint64_t last_seq;  /* the last seq delivered */
	_Atomic uint32_t finished;  /* reached final_head */
};

struct shared {
	_Atomic uint32_t stop;	     /* set with final_head: read up to it, then exit */
	_Atomic uint64_t final_head; /* head after the last append */
	struct reader_report rd[READERS];
};

static struct shared *sh;
static uint8_t *pay_buf;  /* a writer's payload */
static uint8_t *read_buf; /* a reader's copy */

/* The crash the writer process is to die at. */
static enum ring_crash_point crash_point;
static unsigned crash_countdown;

static uint64_t rng_state = UINT64_C(0x2545f4914f6cdd1d);

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
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

/* FNV-1a over 8-byte words, then the odd bytes. */
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

/* A payload that starts with its seq and ends with the checksum of what precedes it; the bytes
 * between depend on seq and position, so stale bytes of another record never pass. */
static void msg_fill(uint8_t *p, size_t len, uint64_t seq)
{
	uint64_t x = seq * UINT64_C(0x9e3779b97f4a7c15);

	put64(p, seq);
	for (size_t i = 8; i < len - 8; i++)
		p[i] = (uint8_t)((x >> ((i & 7u) * 8u)) + i);
	put64(p + len - 8, sum64(p, len - 8));
}

static bool msg_check(const uint8_t *topic, const uint8_t *p, size_t len, uint64_t seq)
{
	uint8_t want[T_TOPIC_LEN];

	msg_topic(seq, want);
	return memcmp(topic, want, T_TOPIC_LEN) == 0 && len >= MSG_MIN && get64(p) == seq &&
	       get64(p + len - 8) == sum64(p, len - 8);
}

static uint32_t payload_len(uint64_t max)
{
	return (uint32_t)(MSG_MIN + rng() % (max - MSG_MIN + 1));
}

/* Append message seq; 0 or -errno (-EILSEQ if the ring numbered it otherwise). */
static int pub_msg(struct ring_writer *w, uint64_t seq, uint32_t len, uint64_t *ret_time)
{
	uint8_t topic[T_TOPIC_LEN];
	uint64_t got, t;
	int err;

	msg_topic(seq, topic);
	msg_fill(pay_buf, len, seq);
	err = ring_publish(w, topic, T_TOPIC_LEN, pay_buf, len, 0, &got, &t);
	if (err < 0)
		return err;
	if (got != seq)
		return -EILSEQ;
	if (ret_time)
		*ret_time = t;
	return 0;
}

/* Read and check message seq as a frontend would: 0, -EAGAIN, -ESTALE (gone or torn: caught),
 * -EBADMSG (validated but wrong bytes), -ERANGE (sizes impossible for a validated record). */
static int read_msg(const struct ring *r, uint64_t seq, uint64_t max_payload)
{
	struct ring_rec rec;
	int err = ring_rec_get(r, seq, &rec);

	if (err < 0)
		return err;
	if (rec.topic_len != T_TOPIC_LEN || rec.payload_len > max_payload)
		return ring_rec_valid(r, &rec) ? -ERANGE : -ESTALE;
	ring_copy_from(read_buf, rec.topic, rec.topic_len);
	ring_copy_from(read_buf + T_TOPIC_LEN, rec.payload, rec.payload_len);
	if (!ring_rec_valid(r, &rec))
		return -ESTALE;
	return msg_check(read_buf, read_buf + T_TOPIC_LEN, rec.payload_len, seq) ? 0 : -EBADMSG;
}

/* A reader process: follows the ring from its tail until told to stop at final_head. */
_noreturn_ static void reader_main(const char *name, struct reader_report *rep,
				   uint64_t max_payload)
{
	uint64_t deadline = io_now_mono_us() + READER_DEADLINE_US, next, stale = 0;
	struct ring r;

	if (ring_attach(name, &r) < 0) {
		atomic_fetch_add(&rep->anomalies, 1);
		_exit(1);
	}
	next = ring_tail(&r);
	for (;;) {
		uint32_t w = ring_wake_word(&r);
		uint64_t head = ring_head(&r);

		while (next < head) {
			int err = read_msg(&r, next, max_payload);

			if (err == -EAGAIN)
				break;
			if (err == -ESTALE) {
				/* gone or torn: caught, not delivered; resume at the tail */
				uint64_t tail = ring_tail(&r);

				atomic_fetch_add(&rep->torn, 1);
				if (tail > next) {
					atomic_fetch_add(&rep->gaps, 1);
					next = tail;
					stale = 0;
				} else if (++stale > READER_MAX_STALE) {
					atomic_fetch_add(&rep->anomalies, 1);
					next++;
				}
				continue;
			}
			stale = 0;
			if (err == -EBADMSG)
				atomic_fetch_add(&rep->bad, 1);
			else if (err < 0)
				atomic_fetch_add(&rep->anomalies, 1);
			else
				atomic_fetch_add(&rep->delivered, 1);
			atomic_store(&rep->last_seq, next);
			next++;
		}
		if (atomic_load(&sh->stop) && next >= atomic_load(&sh->final_head))
			break;
		if (io_now_mono_us() > deadline) {
			atomic_fetch_add(&rep->anomalies, 1);
			break;
		}
		(void)!ring_wait(&r, w, READER_WAIT_MS);
	}
	atomic_store(&rep->finished, 1);
	ring_detach(&r);
	_exit(0);
}

static void crash_here(enum ring_crash_point point)
{
	if (point == crash_point && --crash_countdown == 0)
		(void)kill(getpid(), SIGKILL);
}

/* A writer process: opens the ring (the recovery path), appends until its crash point. */
_noreturn_ static void writer_main(const char *name, const struct ring_params *p,
				   uint64_t max_payload)
{
	struct ring_writer w;
	bool created;

	if (ring_writer_open(name, p, &w, &created) < 0 || created)
		_exit(2);
	ring_crash_hook = crash_here;
	for (uint64_t seq = ring_head(&w.r), n = 0; n < WRITER_MAX_PUBLISH; seq++, n++)
		if (pub_msg(&w, seq, payload_len(max_payload), NULL) < 0)
			_exit(2);
	_exit(3); /* never reached the crash point */
}

static uint64_t ld(const _Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

/* The end of record seq's bytes, aligned: what data_head must be once seq is the newest. */
static uint64_t rec_end(const struct ring *r, uint64_t seq)
{
	struct ring_rec rec;

	if (ring_rec_get(r, seq, &rec) < 0)
		return UINT64_MAX;
	return rec.pos + ALIGN_UP(ring_rec_len(&rec), 8);
}

/* Messages in [from, to) that do not read back intact. */
static unsigned check_range(const struct ring *r, uint64_t from, uint64_t to, uint64_t max)
{
	unsigned bad = 0;

	for (uint64_t s = from; s < to; s++)
		if (read_msg(r, s, max) != 0)
			bad++;
	return bad;
}

struct suite {
	const char *label;
	uint64_t data_size, max_payload;
	unsigned rounds;
	uint64_t recovery_max_us, recovery_sum_us;
	unsigned recoveries;
};

/*
 * Section 6 after a crash at point pt: recovery leaves head alone (a cut-short publish never
 * counted), makes stamp even, puts data_head right after the newest record and data_tail on
 * the oldest held one, and keeps every held record intact. Then appends continue.
 */
static bool check_recovered(struct suite *su, const struct ring *rd, struct ring_writer *w,
			    uint64_t head_before, uint64_t last_before, enum ring_crash_point pt)
{
	uint64_t head = ring_head(&w->r), tail = ring_tail(&w->r), t = 0, prev, from;
	bool good = true;

	good &= ok(head == head_before, "%s, %s: head unchanged by recovery (%llu)", su->label,
		   point_names[pt], (unsigned long long)head);
	good &= ok(!(atomic_load(&w->r.hdr->stamp) & 1u), "%s, %s: stamp even", su->label,
		   point_names[pt]);
	if (tail < head) {
		good &= ok(ld(&w->r.hdr->data_head) == rec_end(&w->r, head - 1) &&
				   ld(&w->r.hdr->data_tail) ==
					   ld(&w->r.idx[tail & w->r.idx_mask].pos),
			   "%s, %s: data_head after the newest record, data_tail on the oldest",
			   su->label, point_names[pt]);
		good &= ok(check_range(rd, tail, head, su->max_payload) == 0,
			   "%s, %s: the %llu held records read back intact", su->label,
			   point_names[pt], (unsigned long long)(head - tail));
	}
	good &= ok(ld(&w->r.hdr->last_time_us) >= last_before, "%s, %s: last_time not moved back",
		   su->label, point_names[pt]);
	prev = ld(&w->r.hdr->last_time_us);
	for (unsigned i = 0; i < AFTER_RECOVERY; i++) {
		int err = pub_msg(w, head + i, payload_len(su->max_payload), &t);

		if (err < 0 || t <= prev) {
			good &= ok(0, "%s, %s: append %u after recovery (%s, time %llu after %llu)",
				   su->label, point_names[pt], i, strerror(-err),
				   (unsigned long long)t, (unsigned long long)prev);
			return good;
		}
		prev = t;
	}
	/* on the small ring the first of them may be evicted already by the last */
	from = MAX(head, ring_tail(rd));
	good &= ok(from < head + AFTER_RECOVERY &&
			   check_range(rd, from, head + AFTER_RECOVERY, su->max_payload) == 0,
		   "%s, %s: %d appends after recovery, at seq %llu on, read back intact (the "
		   "%llu still held)",
		   su->label, point_names[pt], AFTER_RECOVERY, (unsigned long long)head,
		   (unsigned long long)(head + AFTER_RECOVERY - from));
	return good;
}

/* Crash one writer at point pt; recover and check. */
static void crash_once(struct suite *su, const char *name, const struct ring_params *p,
		       const struct ring *rd, enum ring_crash_point pt)
{
	uint64_t head_before, last_before, t0, us;
	struct ring_writer w;
	int status = 0, err;
	bool created, odd;
	pid_t pid;

	crash_point = pt;
	crash_countdown = 1 + (unsigned)(rng() % MAX_COUNTDOWN);
	(void)fflush(stdout);
	pid = fork();
	if (pid == 0)
		writer_main(name, p, su->max_payload);
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		ok(0, "%s, %s: fork and wait for the writer", su->label, point_names[pt]);
		return;
	}
	if (!ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		"%s, %s: the writer died at its crash point (pass %u)", su->label, point_names[pt],
		crash_countdown))
		diag("  status %#x", status);
	head_before = ring_head(rd);
	last_before = ld(&rd->hdr->last_time_us);
	odd = atomic_load(&rd->hdr->stamp) & 1u;
	ok(odd == (pt < RING_CRASH_STAMP_EVEN), "%s, %s: the crash left the stamp %s", su->label,
	   point_names[pt], odd ? "odd" : "even");

	t0 = io_now_mono_us();
	err = ring_writer_open(name, p, &w, &created);
	us = io_now_mono_us() - t0;
	if (!ok(err == 0 && !created, "%s, %s: ring_writer_open recovers the ring in %llu us",
		su->label, point_names[pt], (unsigned long long)us))
		return;
	su->recovery_max_us = MAX(su->recovery_max_us, us);
	su->recovery_sum_us += us;
	su->recoveries++;
	(void)check_recovered(su, rd, &w, head_before, last_before, pt);
	ring_writer_close(&w);
}

static void run_suite(struct suite *su)
{
	const struct ring_params p = { .data_size = su->data_size };
	char name[64];
	pid_t readers[READERS];
	struct ring_writer w;
	struct ring rd;
	uint64_t filled = 0, seq, t0;
	bool created;
	int nreaders = 0;

	diag("%s: %llu KiB ring, records up to %llu KiB, %u crash(es) per point, %d readers",
	     su->label, (unsigned long long)(su->data_size / KIB),
	     (unsigned long long)(su->max_payload / KIB), su->rounds, READERS);
	memset(sh, 0, sizeof(*sh));
	(void)snprintf(name, sizeof(name), "/t-ring-crash-%ld-%llu", (long)getpid(),
		       (unsigned long long)su->data_size);
	(void)!ring_unlink(name);
	/* Create the ring, then let go of it before forking readers: a reader must not inherit the
	 * writer lock's open file, or no other writer could ever take the lock. */
	if (!ok(ring_writer_open(name, &p, &w, &created) == 0 && created, "%s: create the ring",
		su->label))
		return;
	ring_writer_close(&w);
	if (!ok(ring_attach(name, &rd) == 0, "%s: attach the test's own reader", su->label))
		goto out_unlink;
	(void)fflush(stdout);
	for (int i = 0; i < READERS; i++) {
		pid_t pid = fork();

		if (pid == 0)
			reader_main(name, &sh->rd[i], su->max_payload);
		if (pid > 0)
			readers[nreaders++] = pid;
	}
	ok(nreaders == READERS, "%s: %d reader processes", su->label, nreaders);

	/* Fill past a lap while the readers follow, so that every later append evicts. */
	t0 = io_now_mono_us();
	if (ring_writer_open(name, &p, &w, &created) < 0) {
		ok(0, "%s: reopen to fill", su->label);
		goto out_readers;
	}
	for (seq = ring_head(&w.r); filled < su->data_size * FILL_LAPS / FILL_LAPS_DIV; seq++) {
		uint32_t len = payload_len(su->max_payload);

		if (pub_msg(&w, seq, len, NULL) < 0)
			break;
		filled += len + T_TOPIC_LEN;
	}
	ok(ring_tail(&w.r) > 1, "%s: filled past a lap: %llu messages, tail %llu, %.0f ms",
	   su->label, (unsigned long long)(ring_head(&w.r) - 1),
	   (unsigned long long)ring_tail(&w.r), (double)(io_now_mono_us() - t0) / 1e3);
	ring_writer_close(&w);

	for (unsigned round = 0; round < su->rounds; round++)
		for (int pt = 0; pt < RING_CRASH_POINTS; pt++)
			crash_once(su, name, &p, &rd, (enum ring_crash_point)pt);

out_readers:
	atomic_store(&sh->final_head, ring_head(&rd));
	atomic_store(&sh->stop, 1);
	for (int i = 0; i < nreaders; i++) {
		const struct reader_report *x = &sh->rd[i];
		int status = 0;

		(void)waitpid(readers[i], &status, 0);
		diag("%s: reader %d: delivered %llu, stale or torn copies caught %llu, lapped %llu, "
		     "last %llu",
		     su->label, i, (unsigned long long)atomic_load(&x->delivered),
		     (unsigned long long)atomic_load(&x->torn),
		     (unsigned long long)atomic_load(&x->gaps),
		     (unsigned long long)atomic_load(&x->last_seq));
		is(atomic_load(&x->bad), 0, "%s: reader %d delivered no partial or wrong record",
		   su->label, i);
		is(atomic_load(&x->anomalies), 0, "%s: reader %d saw no impossible record",
		   su->label, i);
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && atomic_load(&x->finished) &&
			   atomic_load(&x->last_seq) + 1 == atomic_load(&sh->final_head),
		   "%s: reader %d followed the ring through every crash, up to the last message",
		   su->label, i);
	}
	ring_detach(&rd);
out_unlink:
	(void)!ring_unlink(name);
}

int main(void)
{
	struct suite big = { .label = "64 MiB",
			     .data_size = BIG_DATA,
			     .max_payload = BIG_MAX_PAYLOAD,
			     .rounds = 1 };
	struct suite small = { .label = "64 KiB",
			       .data_size = SMALL_DATA,
			       .max_payload = SMALL_MAX_PAYLOAD,
			       .rounds = SMALL_ROUNDS };

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pay_buf = malloc(BIG_MAX_PAYLOAD);
	read_buf = malloc(T_TOPIC_LEN + BIG_MAX_PAYLOAD);
	if (sh == MAP_FAILED || !pay_buf || !read_buf) {
		ok(0, "allocate");
		return done_testing();
	}
	run_suite(&small);
	run_suite(&big);
	if (big.recoveries) {
		diag("figure: recovery of a 64 MiB ring after a crash inside the append: max %llu us, "
		     "mean %llu us over %u crashes (limit %u us)",
		     (unsigned long long)big.recovery_max_us,
		     (unsigned long long)(big.recovery_sum_us / big.recoveries), big.recoveries,
		     RECOVERY_LIMIT_US);
		ok(big.recovery_max_us < RECOVERY_LIMIT_US,
		   "64 MiB: every recovery under %u ms (max %llu us)", RECOVERY_LIMIT_US / 1000,
		   (unsigned long long)big.recovery_max_us);
	}
	ok(big.recoveries == RING_CRASH_POINTS &&
		   small.recoveries == RING_CRASH_POINTS * SMALL_ROUNDS,
	   "every crash point was crashed at and recovered from (%u + %u)", big.recoveries,
	   small.recoveries);
	free(pay_buf);
	free(read_buf);
	(void)munmap(sh, sizeof(*sh));
	return done_testing();
}
