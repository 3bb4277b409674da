/* SPDX-License-Identifier: MIT */
/*
 * t-stats: open streams per process in the statistics object (shm/ring.h, "The statistics
 * object"; issue 14 item 9). Children count streams in their slots; a child SIGKILLed with its
 * streams open leaves the sum exact; a dead slot is taken again; a process without a slot
 * counts in the shared counter; processes per connection mark untrusted peers' slots, which
 * die with them; and the sum over 20,000 slots is timed (a HEAD pays it).
 */
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "shm/ring.h"
#include "tests/tap.h"

/* The sum with this many live slots is timed; a HEAD in per-connection mode with 20,000
 * subscribers pays it (a multiplexed worker holds one slot for all of its streams). */
#define TIMED_SLOTS  20000u
#define TIMED_ROUNDS 200

static char ring_name[64];
static struct ring_writer writer;
static struct ring_stats *stats;

/* A child that counts n streams, says so on the pipe, and waits to be killed (or exits when
 * told by closing the other pipe). */
struct child {
	pid_t pid;
	int done_fd; /* write end: closing it lets the child exit normally */
};

static bool child_start(int n, struct child *ret)
{
	int ready[2], done[2];
	char b;
	pid_t pid;

	if (pipe(ready) < 0 || pipe(done) < 0)
		return false;
	pid = fork();
	if (pid < 0)
		return false;
	if (pid == 0) {
		bool slotted = true;

		(void)close(ready[0]);
		(void)close(done[1]);
		for (int k = 0; k < n; k++)
			slotted = ring_stats_count_subscriber(stats, 1) && slotted;
		b = slotted ? 's' : 'u';
		(void)!write(ready[1], &b, 1);
		(void)!read(done[0], &b, 1); /* until the parent closes it, or kills us */
		_exit(0);
	}
	(void)close(ready[1]);
	(void)close(done[0]);
	if (read(ready[0], &b, 1) != 1 || b != 's') {
		(void)close(ready[0]);
		return false;
	}
	(void)close(ready[0]);
	ret->pid = pid;
	ret->done_fd = done[1];
	return true;
}

static void child_kill(struct child *c, int sig)
{
	int status;

	if (c->pid <= 0)
		return;
	if (sig)
		(void)kill(c->pid, sig);
	(void)close(c->done_fd);
	(void)waitpid(c->pid, &status, 0);
}

static void test_kill(void)
{
	struct child a = { 0 }, b = { 0 }, c = { 0 };

	diag("counting per process, and a SIGKILL");
	is(ring_stats_subscribers(stats), 0, "a new object counts no subscriber");
	ok(child_start(3, &a), "child a counts 3 streams in a slot of its own");
	ok(child_start(5, &b), "child b counts 5");
	is(ring_stats_subscribers(stats), 8, "the sum is 8");
	child_kill(&a, SIGKILL);
	is(ring_stats_subscribers(stats), 5, "a SIGKILLed with 3 open: the sum is 5 at once");
	child_kill(&b, 0);
	is(ring_stats_subscribers(stats), 0, "b exits without closing its 5: 0");
	is(atomic_load(&stats->subscribers), 0, "nothing went to the shared counter");
	ok(child_start(2, &c), "child c counts 2");
	is(atomic_load(&stats->slots_used), 2, "c took a dead slot again: 2 ever taken");
	is(ring_stats_subscribers(stats), 2, "the sum is c's 2, none of the dead's");
	child_kill(&c, SIGKILL);
	is(ring_stats_subscribers(stats), 0, "c killed: 0");
}

static void test_untrusted(void)
{
	struct child a = { 0 }, b = { 0 };
	int ready[2];
	char ch = 0;
	pid_t pid;

	diag("processes per connection serving untrusted peers");
	is(ring_stats_untrusted(stats), 0, "none marked");
	ok(pipe(ready) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		/* a process per connection: marks itself, then waits to be killed */
		ch = ring_stats_mark_untrusted(stats) ? 'm' : 'n';
		(void)!write(ready[1], &ch, 1);
		pause();
		_exit(0);
	}
	(void)!read(ready[0], &ch, 1);
	ok(ch == 'm', "a child marks its slot untrusted");
	ok(child_start(2, &a), "another counts 2 streams, unmarked");
	is(ring_stats_untrusted(stats), 1, "one untrusted process");
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	is(ring_stats_untrusted(stats), 0, "killed: none");
	ok(child_start(1, &b), "a third takes the dead slot");
	is(ring_stats_untrusted(stats), 0, "and starts unmarked");
	child_kill(&a, SIGKILL);
	child_kill(&b, SIGKILL);
	(void)close(ready[0]);
	(void)close(ready[1]);
}

static void test_own(void)
{
	diag("the counting process itself, and its fork");
	ok(ring_stats_count_subscriber(stats, 1), "+1 in our slot");
	ok(ring_stats_count_subscriber(stats, 1), "+1");
	ok(ring_stats_count_subscriber(stats, -1), "-1");
	is(ring_stats_subscribers(stats), 1, "the sum is 1");
	pid_t pid = fork();
	if (pid == 0) {
		/* a child of a slot holder counts in a slot of its own, not its parent's */
		(void)ring_stats_count_subscriber(stats, 1);
		_exit(ring_stats_subscribers(stats) == 2 ? 0 : 1);
	}
	int status = 0;
	(void)waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a forked child counts apart: 1 + 1");
	is(ring_stats_subscribers(stats), 1, "the child gone, ours is left: 1");
	ok(ring_stats_count_subscriber(stats, -1), "-1");
}

static void test_full(void)
{
	uint32_t used = atomic_load(&stats->slots_used);
	struct child c = { 0 };

	diag("every slot live");
	/* stand-ins for live owners: a thread id no one has, FUTEX_OWNER_DIED clear */
	for (uint32_t i = used; i < RING_STATS_SLOTS; i++)
		atomic_store(&stats->slot[i].owner, 4000000u);
	for (uint32_t i = 0; i < used; i++)
		if (!atomic_load(&stats->slot[i].owner) ||
		    (atomic_load(&stats->slot[i].owner) & FUTEX_OWNER_DIED))
			atomic_store(&stats->slot[i].owner, 4000000u);
	atomic_store(&stats->slots_used, RING_STATS_SLOTS);
	ok(!child_start(4, &c), "a child finds no slot and counts in the shared counter");
	is(atomic_load(&stats->subscribers), 4, "the shared counter holds its 4");
	for (uint32_t i = 0; i < RING_STATS_SLOTS; i++)
		atomic_store(&stats->slot[i].owner, 0);
	atomic_store(&stats->subscribers, 0);
	atomic_store(&stats->slots_used, 0);
}

static void test_timing(void)
{
	struct timespec t0, t1;
	uint64_t sum = 0;
	double us;

	diag("a HEAD's sum over %u live slots", TIMED_SLOTS);
	for (uint32_t i = 0; i < TIMED_SLOTS; i++) {
		atomic_store(&stats->slot[i].owner, 4000000u);
		atomic_store(&stats->slot[i].subscribers, 1);
	}
	atomic_store(&stats->slots_used, TIMED_SLOTS);
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int k = 0; k < TIMED_ROUNDS; k++)
		sum += ring_stats_subscribers(stats);
	(void)clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
	     TIMED_ROUNDS;
	is(sum, (uint64_t)TIMED_SLOTS * TIMED_ROUNDS, "the sum counts every live slot");
	diag("figure: X-Subscribers over %u per-process slots costs %.1f us per HEAD", TIMED_SLOTS,
	     us);
	ok(us < 2000, "under 2 ms (%.1f us)", us);
}

int main(void)
{
	struct ring_params p = { .data_size = 1 << 16 };
	bool created;

	(void)snprintf(ring_name, sizeof(ring_name), "/gps-t-stats-%d", (int)getpid());
	if (ring_writer_open(ring_name, &p, &writer, &created) < 0 ||
	    ring_stats_attach(ring_name, true, &stats) < 0) {
		diag("unable to create ring %s", ring_name);
		return 1;
	}
	test_kill();
	test_untrusted();
	test_own();
	test_full();
	test_timing();
	ring_stats_detach(stats);
	ring_writer_close(&writer);
	(void)!ring_unlink(ring_name);
	return done_testing();
}
