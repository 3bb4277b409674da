/* SPDX-License-Identifier: MIT */
/*
 * README "Reliability", fault 4: wake-ups. One writer process appends small records with
 * ring_publish() while reader processes follow the ring the way frontend/stream.c does (load the
 * futex word, drain to head, ring_wait()). No reader may wait longer than the keepalive period
 * (PROTOCOL 3.3, 5 s) while a record it should get is in the ring. The readers' timeout is longer
 * than that (WAKE_TIMEOUT_MS), so only the writer's wake-ups can keep the waits under it.
 *
 * Each reader measures, every time it looks at the ring (after each wake-up, and after each
 * batch it drained), the age of the oldest record it has not yet seen: now minus the record's
 * publish time (CLOCK_MONOTONIC, carried in the payload: one clock for every process). The ages
 * go into a per-reader histogram in shared memory; the writer merges them and reports the
 * maximum and the 99.99th percentile, which must both stay below the keepalive period.
 *
 * The writer publishes in bursts (a quarter of them a single record) separated by random pauses,
 * so readers keep falling asleep and being woken, rather than always finding something new.
 *
 * Separate processes, each with its own read-only mapping (ring_attach), like frontends: the
 * futex is a shared one, keyed by the object's page, not by an address in one process.
 *
 * Size: WAKE_PUBLISHES and WAKE_READERS in the environment. make check runs a scaled run
 * (WAKE_PUBLISHES_CHECK x WAKE_READERS_FULL); make torture the 1,000,000 x 200.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/macro.h"
#include "shm/ring.h"
#include "tests/tap.h"

/* The figures, and the scaled run of make check (a few seconds on two cores). */
#define WAKE_PUBLISHES_FULL   UINT64_C(1000000)
#define WAKE_PUBLISHES_CHECK  UINT64_C(5000)
#define WAKE_READERS_FULL     200U
#define WAKE_READERS_MAX      1000U /* a sanity bound on WAKE_READERS */
/* PROTOCOL 3.3's default keepalive: the bound on every wait. */
#define WAKE_KEEPALIVE_MS     5000U
/*
 * The readers' futex timeout. A frontend sleeps at most the keepalive, which would hide a lost
 * wake-up behind a wait just under the bound; here only a wake-up can end a wait that soon, so a
 * lost one fails the test (it waits up to this long) instead of passing at 4.99 s.
 */
#define WAKE_TIMEOUT_MS	      (6U * WAKE_KEEPALIVE_MS)
/*
 * 64 MiB of data gives 262,144 index entries: a reader is lapped only if it falls that many
 * records (minutes of this writer) behind, which no reader that honours the bound does.
 */
#define WAKE_RING_BYTES	      (UINT64_C(64) << 20)
/*
 * Bursts: a quarter are one record, the rest 1..WAKE_BURST_MAX; then a pause of up to
 * WAKE_PAUSE_MAX_US, long enough for every reader to drain and fall asleep. The cost is the
 * writer's FUTEX_WAKE of every sleeping reader, nearly once per record: about 1,200 records a
 * second on two busy cores, so 1,000,000 take about a quarter of an hour (make torture).
 */
#define WAKE_BURST_MAX	      100U
#define WAKE_PAUSE_MAX_US     4000U
/* How long the writer waits for every reader to attach, and for all to finish after the last
 * publish (a reader a whole futex timeout late still finishes within it). */
#define WAKE_READY_TIMEOUT_S  60U
#define WAKE_FINISH_TIMEOUT_S 60U
/* A reader that sees no new record for this long gives up (the writer died, say). */
#define WAKE_READER_IDLE_S    120U
/* A wait or a publish call this long is reported as slow (diagnostics only). */
#define WAKE_SLOW_US	      UINT64_C(1000000)
/* The record's payload: its expected seq and its publish time. */
#define WAKE_PAYLOAD_LEN      16U
/* A stored topic of one segment, "w" (shm/topic.h). */
#define WAKE_TOPIC	      "w"
#define WAKE_TOPIC_LEN	      1U

/*
 * Histogram of ages in microseconds, log-linear: values below 2^HIST_SUB_BITS exactly, above in
 * 2^HIST_SUB_BITS buckets per power of two (relative error under 1/64), up to 2^HIST_MAX_BITS us
 * (12 days): far beyond any wait. The reported percentile is its bucket's upper bound.
 */
#define HIST_SUB_BITS 6U
#define HIST_SUB      (1U << HIST_SUB_BITS)
#define HIST_MAX_BITS 40U
#define HIST_BUCKETS  ((HIST_MAX_BITS - HIST_SUB_BITS + 1U) * HIST_SUB)

struct reader_result {
	_Atomic uint32_t ready; /* attached, about to wait for the first record */
	_Atomic uint32_t done;	/* finished (saw every record, or gave up) */
	uint64_t records;	/* records seen */
	uint64_t order_errors;	/* a record whose payload named another seq, or torn */
	uint64_t lapped;	/* records lost to lapping (ESTALE) */
	uint64_t samples;	/* looks at the ring with a record pending */
	uint64_t idle_wakes;	/* looks at the ring with nothing pending (timeouts, spurious) */
	uint64_t waits;		/* calls of ring_wait */
	uint64_t max_us;	/* largest age seen */
	uint64_t max_at_us;	/* when (monotonic) */
	uint64_t sum_us;	/* for the mean */
	uint64_t hist[HIST_BUCKETS];
};

static unsigned hist_bucket(uint64_t v)
{
	unsigned shift = 0;

	if (v >= HIST_SUB) {
		unsigned msb = 63U - (unsigned)__builtin_clzll(v);

		if (msb >= HIST_MAX_BITS)
			return HIST_BUCKETS - 1U;
		shift = msb - HIST_SUB_BITS; /* v >> shift is in [HIST_SUB, 2 * HIST_SUB) */
	}
	return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The largest value that falls into bucket b. */
static uint64_t hist_upper(unsigned b)
{
	unsigned shift = b < 2U * HIST_SUB ? 0 : b / HIST_SUB - 1U;
	uint64_t m = b - shift * HIST_SUB;

	return ((m + 1U) << shift) - 1U;
}

/* Remove the test ring; one already gone is fine. */
static void drop_ring(const char *name)
{
	int err = ring_unlink(name);

	if (err < 0 && err != -ENOENT)
		diag("unable to unlink ring '%s': %s", name, strerror(-err));
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return dflt;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n == 0)
		return dflt;
	return (uint64_t)n;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void sample(struct reader_result *res, uint64_t age)
{
	res->samples++;
	res->sum_us += age;
	if (age > res->max_us) {
		res->max_us = age;
		res->max_at_us = io_now_mono_us();
	}
	res->hist[hist_bucket(age)]++;
}

/* The record a reader copies: the one-byte topic, then the payload. */
#define WAKE_RECORD_LEN (WAKE_TOPIC_LEN + WAKE_PAYLOAD_LEN)

/* The age of the oldest record not yet seen, if there is one: a sample. The reader only looks
 * (ring_next() without ring_cursor_advance()); reader_drain() takes it. */
static void reader_look(const struct ring *r, struct reader_result *res, struct ring_cursor *c)
{
	uint8_t buf[WAKE_PAYLOAD_LEN];

	for (;;) {
		struct ring_rec rec;
		struct ring_gap gap;
		uint64_t now;
		int err = ring_next(r, c, &rec, &gap);

		if (err == -EAGAIN) {
			res->idle_wakes++;
			return;
		}
		if (err == RING_NEXT_GAP) {
			res->lapped += gap.missed;
			continue;
		}
		if (rec.payload_len != WAKE_PAYLOAD_LEN) {
			res->order_errors++;
			return;
		}
		ring_copy_from(buf, rec.payload, WAKE_PAYLOAD_LEN);
		now = io_now_mono_us();
		if (!ring_rec_valid(r, &rec))
			continue; /* overwritten while we looked: ring_next() says how */
		sample(res, now - MIN(now, get_u64(buf + 8)));
		return;
	}
}

/* Take every record up to head through the public reader; false once the last record (seq
 * total) is seen. */
static bool reader_drain(const struct ring *r, struct reader_result *res, struct ring_cursor *c,
			 uint64_t total)
{
	uint64_t head = ring_head(r);
	uint8_t buf[WAKE_RECORD_LEN];

	while (c->next < head) {
		struct ring_rec rec;
		struct ring_gap gap;
		int err = ring_read(r, c, buf, sizeof(buf), &rec, &gap);

		if (err == -EAGAIN)
			break;
		if (err == RING_NEXT_GAP) {
			res->lapped += gap.missed;
			continue;
		}
		if (err < 0) {
			res->order_errors++; /* -EMSGSIZE: not a record of ours */
			ring_cursor_advance(c);
			continue;
		}
		if (rec.payload_len != WAKE_PAYLOAD_LEN || get_u64(buf + WAKE_TOPIC_LEN) != rec.seq)
			res->order_errors++;
		res->records++;
	}
	return c->next <= total;
}

/* A reader process: follows the ring like frontend/stream.c's loop. Exits 0, or 1 if it could
 * not attach. */
_noreturn_ static void reader_main(const char *name, struct reader_result *res, uint64_t total)
{
	struct ring_cursor c;
	struct ring r;
	uint64_t last_progress;

	if (ring_attach(name, &r) < 0)
		_exit(1);
	ring_cursor_init(&c, ring_head(&r));
	last_progress = io_now_mono_us();
	atomic_store_explicit(&res->ready, 1, memory_order_release);
	for (;;) {
		uint32_t w = ring_wake_word(&r);
		uint64_t before = c.next;

		reader_look(&r, res, &c);
		if (!reader_drain(&r, res, &c, total))
			break;
		if (c.next != before)
			last_progress = io_now_mono_us();
		else if (io_now_mono_us() - last_progress > WAKE_READER_IDLE_S * UINT64_C(1000000))
			break;
		if (c.next < ring_head(&r))
			continue; /* more arrived while we were draining */
		res->waits++;
		if (ring_wait(&r, w, WAKE_TIMEOUT_MS) < 0)
			(void)usleep(1000);
	}
	atomic_store_explicit(&res->done, 1, memory_order_release);
	ring_detach(&r);
	_exit(0);
}

static bool all_flagged(struct reader_result *res, unsigned n, bool done)
{
	for (unsigned i = 0; i < n; i++) {
		_Atomic uint32_t *f = done ? &res[i].done : &res[i].ready;

		if (!atomic_load_explicit(f, memory_order_acquire))
			return false;
	}
	return true;
}

/* Wait (bounded) until every reader is ready or done; whether they all got there. */
static bool wait_flagged(struct reader_result *res, unsigned n, bool done, unsigned timeout_s)
{
	uint64_t deadline = io_now_mono_us() + (uint64_t)timeout_s * 1000000U;

	while (!all_flagged(res, n, done)) {
		if (io_now_mono_us() > deadline)
			return false;
		(void)usleep(10000);
	}
	return true;
}

/*
 * What the writer saw of its own scheduling: the longest ring_publish() call (a record is
 * visible from step f, its wake-up leaves in step g: a writer descheduled in between delays
 * every reader) and how many took over WAKE_SLOW_US. A wait that only the writer explains is
 * the machine's doing, not a lost wake-up.
 */
struct writer_stats {
	uint64_t max_publish_us;
	uint64_t slow_publishes;
};

/* Publish total records in bursts; 0 or -errno. */
static int writer_run(struct ring_writer *w, uint64_t total, uint64_t seed, struct writer_stats *ws)
{
	uint64_t rng = seed;
	uint8_t payload[WAKE_PAYLOAD_LEN];
	uint64_t n = 0;

	while (n < total) {
		uint64_t burst =
			xorshift(&rng) % 4U == 0 ? 1U : 1U + xorshift(&rng) % WAKE_BURST_MAX;

		for (uint64_t b = 0; b < burst && n < total; b++) {
			uint64_t seq, t;
			int err;

			uint64_t start = io_now_mono_us(), took;

			put_u64(payload, n + 1U);
			put_u64(payload + 8, start);
			err = ring_publish(w, (const uint8_t *)WAKE_TOPIC, WAKE_TOPIC_LEN, payload,
					   WAKE_PAYLOAD_LEN, 0, &seq, &t);
			if (err < 0)
				return err;
			took = io_now_mono_us() - start;
			ws->max_publish_us = MAX(ws->max_publish_us, took);
			ws->slow_publishes += took > WAKE_SLOW_US;
			if (seq != n + 1U)
				return -EILSEQ;
			n++;
		}
		(void)usleep((useconds_t)(xorshift(&rng) % WAKE_PAUSE_MAX_US));
	}
	return 0;
}

int main(void)
{
	uint64_t total = env_u64("WAKE_PUBLISHES", WAKE_PUBLISHES_CHECK);
	uint64_t nreaders64 = env_u64("WAKE_READERS", WAKE_READERS_FULL);
	unsigned nreaders = (unsigned)MIN(nreaders64, (uint64_t)WAKE_READERS_MAX);
	uint64_t seed = env_u64("WAKE_SEED", UINT64_C(0x5eed5eed));
	struct ring_params p = { .data_size = WAKE_RING_BYTES };
	static uint64_t hist[HIST_BUCKETS] = { 0 };
	struct reader_result *res;
	struct ring_writer w;
	struct writer_stats ws = { 0 };
	size_t res_size = sizeof(*res) * nreaders;
	char name[64];
	pid_t *pids;
	bool created, ready, finished;
	uint64_t t0, t1, samples = 0, records = 0, order = 0, lapped = 0, max_us = 0, sum = 0;
	uint64_t idle = 0, waits = 0, rank, seen = 0, p9999 = 0;
	uint64_t slow_readers = 0, slow_first = UINT64_MAX, slow_last = 0;
	unsigned started = 0, exited_ok = 0;
	int err;

	if (total == WAKE_PUBLISHES_FULL && nreaders == WAKE_READERS_FULL)
		diag("wake: full run, %" PRIu64
		     " publishes x %u readers (README \"Reliability\", fault 4)",
		     total, nreaders);
	else
		diag("wake: scaled run, %" PRIu64 " publishes x %u readers; make torture runs the "
		     "full %" PRIu64 " x %u (WAKE_PUBLISHES, WAKE_READERS)",
		     total, nreaders, WAKE_PUBLISHES_FULL, WAKE_READERS_FULL);

	(void)snprintf(name, sizeof(name), "/t-wake-%ld", (long)getpid());
	drop_ring(name); /* a leftover of a killed run, if any */
	err = ring_writer_open(name, &p, &w, &created);
	if (!ok(err == 0, "wake: create a %" PRIu64 " MiB ring", WAKE_RING_BYTES >> 20)) {
		diag("  ring_writer_open: %s", strerror(-err));
		return done_testing();
	}

	res = mmap(NULL, res_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pids = calloc(nreaders, sizeof(*pids));
	if (res == MAP_FAILED || !pids) {
		ok(0, "wake: allocate the readers' results");
		free(pids);
		if (res != MAP_FAILED)
			(void)munmap(res, res_size);
		ring_writer_close(&w);
		drop_ring(name);
		return done_testing();
	}
	(void)fflush(stdout);
	for (unsigned i = 0; i < nreaders; i++) {
		pid_t pid = fork();

		if (pid == 0)
			reader_main(name, &res[i], total);
		if (pid < 0) {
			diag("  fork: %s", strerror(errno));
			break;
		}
		pids[i] = pid;
		started++;
	}
	ready = started == nreaders && wait_flagged(res, nreaders, false, WAKE_READY_TIMEOUT_S);
	ok(ready, "wake: %u reader processes attached read-only and waiting", started);

	t0 = io_now_mono_us();
	err = ready ? writer_run(&w, total, seed, &ws) : -ECANCELED;
	t1 = io_now_mono_us();
	ok(err == 0, "wake: %" PRIu64 " records published in %.1f s (%.0f a second)", total,
	   (double)(t1 - t0) / 1e6, (double)total * 1e6 / (double)MAX(t1 - t0, UINT64_C(1)));
	if (err < 0)
		diag("  writer: %s", strerror(-err));

	finished = wait_flagged(res, started, true, WAKE_FINISH_TIMEOUT_S);
	ok(finished, "wake: every reader finished within %u s of the last publish",
	   WAKE_FINISH_TIMEOUT_S);
	for (unsigned i = 0; i < started; i++) {
		int status = 0;

		if (!finished)
			(void)kill(pids[i], SIGKILL);
		if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0)
			exited_ok++;
	}

	for (unsigned i = 0; i < started; i++) {
		const struct reader_result *x = &res[i];

		records += x->records;
		order += x->order_errors;
		lapped += x->lapped;
		samples += x->samples;
		idle += x->idle_wakes;
		waits += x->waits;
		sum += x->sum_us;
		max_us = MAX(max_us, x->max_us);
		if (x->max_us > WAKE_SLOW_US) {
			slow_readers++;
			slow_first = MIN(slow_first, x->max_at_us);
			slow_last = MAX(slow_last, x->max_at_us);
		}
		for (unsigned b = 0; b < HIST_BUCKETS; b++)
			hist[b] += x->hist[b];
	}
	/* the 99.99th percentile: the smallest bucket holding rank ceil(0.9999 n) */
	rank = samples - samples / 10000U;
	for (unsigned b = 0; b < HIST_BUCKETS && samples; b++) {
		seen += hist[b];
		if (seen >= rank) {
			p9999 = MIN(hist_upper(b), max_us);
			break;
		}
	}

	is(exited_ok, started, "wake: every reader exited cleanly");
	ok(records == total * started && order == 0 && lapped == 0,
	   "wake: every reader saw all %" PRIu64 " records once, in order (%" PRIu64
	   " record reads; %" PRIu64 " out of order or torn; %" PRIu64 " lost to lapping)",
	   total, records, order, lapped);
	diag("figure: wake publishes=%" PRIu64 " readers=%u seconds=%.1f", total, started,
	     (double)(t1 - t0) / 1e6);
	diag("figure: wake samples=%" PRIu64 " waits=%" PRIu64 " idle_wakes=%" PRIu64
	     " mean_us=%" PRIu64,
	     samples, waits, idle, samples ? sum / samples : 0);
	diag("figure: wake max_wait_us=%" PRIu64 " p99.99_wait_us=%" PRIu64 " keepalive_us=%u",
	     max_us, p9999, WAKE_KEEPALIVE_MS * 1000U);
	diag("figure: wake writer_max_publish_us=%" PRIu64 " writer_publishes_over_1s=%" PRIu64
	     " readers_waiting_over_1s=%" PRIu64 " their_worst_within_ms=%" PRIu64,
	     ws.max_publish_us, ws.slow_publishes, slow_readers,
	     slow_readers ? (slow_last - slow_first) / 1000U : 0);
	ok(samples > 0 && waits > 0, "wake: the readers slept and were woken (%" PRIu64 " waits)",
	   waits);
	ok(max_us < WAKE_KEEPALIVE_MS * UINT64_C(1000), "wake: max wait %.3f ms < keepalive %u ms",
	   (double)max_us / 1e3, WAKE_KEEPALIVE_MS);
	ok(p9999 < WAKE_KEEPALIVE_MS * UINT64_C(1000),
	   "wake: p99.99 wait %.3f ms < keepalive %u ms", (double)p9999 / 1e3, WAKE_KEEPALIVE_MS);

	ring_writer_close(&w);
	drop_ring(name);
	(void)munmap(res, res_size);
	free(pids);
	return done_testing();
}
