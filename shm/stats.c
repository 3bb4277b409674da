/* SPDX-License-Identifier: MIT */
/*
 * Open streams per process in the statistics object, so that a process killed with its streams
 * open takes them out of X-Subscribers (shm/ring.h, "The statistics object"). The kernel does
 * the bookkeeping: the slot's owner word is this process's only robust futex, marked
 * FUTEX_OWNER_DIED when its main thread exits, however it exits.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shm/ring.h"

/* How often a claimer that lost the race for a fresh slot tries again before it counts in the
 * shared counter (each round is a scan and one fresh slot: only a crowd of claimers loses). */
#define CLAIM_ROUNDS 8

/* This process's slot. Process-local: a forked child sees another pid here and claims its own
 * (the kernel gives a child no robust list). */
static struct {
	struct robust_list_head head; /* registered with set_robust_list: one entry, node */
	struct robust_list node;      /* futex_offset leads from here to the slot's owner */
	struct ring_stats *stats;     /* the object the slot is in */
	pid_t pid;		      /* the process that claimed it */
	long slot;		      /* index; -1: none, the shared counter counts */
} self = { .slot = -1 };

static bool slot_live(uint32_t owner)
{
	return owner != 0 && owner != RING_STATS_CLAIMING && !(owner & FUTEX_OWNER_DIED);
}

/* Take slot i if it is free or its owner died; true if ours (owner RING_STATS_CLAIMING). */
static bool slot_take(struct ring_stats *s, uint32_t i)
{
	uint32_t w = atomic_load_explicit(&s->slot[i].owner, memory_order_relaxed);

	if (w != 0 && (w == RING_STATS_CLAIMING || !(w & FUTEX_OWNER_DIED)))
		return false;
	return atomic_compare_exchange_strong_explicit(&s->slot[i].owner, &w, RING_STATS_CLAIMING,
						       memory_order_acquire, memory_order_relaxed);
}

/* Find and take a slot: its index, or -1 when every slot is live. */
static long slot_find(struct ring_stats *s)
{
	for (int round = 0; round < CLAIM_ROUNDS; round++) {
		uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_relaxed);
		uint32_t i;

		/* a dead or abandoned slot first, so slot[] stays as short as the live set */
		for (i = 0; i < used && i < RING_STATS_SLOTS; i++)
			if (slot_take(s, i))
				return (long)i;
		i = atomic_fetch_add_explicit(&s->slots_used, 1, memory_order_relaxed);
		if (i >= RING_STATS_SLOTS)
			return -1;
		if (slot_take(s, i))
			return (long)i;
	}
	return -1;
}

/* Claim a slot for this process; its index or -errno (-ENOSPC: none free). */
static long slot_claim(struct ring_stats *s)
{
	struct ring_stats_slot *sl;
	long i = slot_find(s);

	if (i < 0)
		return -ENOSPC;
	sl = &s->slot[i];
	atomic_store_explicit(&sl->subscribers, 0, memory_order_relaxed);
	atomic_store_explicit(&sl->untrusted, 0, memory_order_relaxed);
	self.node.next = &self.head.list;
	self.head.list.next = &self.node;
	self.head.futex_offset = (long)((uintptr_t)&sl->owner - (uintptr_t)&self.node);
	self.head.list_op_pending = NULL;
	if (syscall(SYS_set_robust_list, &self.head, sizeof(self.head)) < 0) {
		long err = -errno;

		atomic_store_explicit(&sl->owner, 0, memory_order_release);
		return err;
	}
	/* from here a death marks it: the kernel matches the word against our thread id */
	atomic_store_explicit(&sl->owner, (uint32_t)syscall(SYS_gettid), memory_order_release);
	return i;
}

/* This process's slot in s, claimed on first use; -1 when it has none. */
static long own_slot(struct ring_stats *s)
{
	pid_t pid = getpid();

	if (self.stats != s || self.pid != pid) {
		self.stats = s;
		self.pid = pid;
		self.slot = slot_claim(s);
	}
	return self.slot;
}

bool ring_stats_mark_untrusted(struct ring_stats *s)
{
	if (own_slot(s) < 0)
		return false;
	atomic_store_explicit(&s->slot[self.slot].untrusted, 1, memory_order_relaxed);
	return true;
}

bool ring_stats_count_subscriber(struct ring_stats *s, int delta)
{
	if (own_slot(s) < 0) {
		atomic_fetch_add_explicit(&s->subscribers, (uint64_t)(int64_t)delta,
					  memory_order_relaxed);
		return false;
	}
	atomic_fetch_add_explicit(&s->slot[self.slot].subscribers, (uint64_t)(int64_t)delta,
				  memory_order_relaxed);
	return true;
}

/* The sum of the live slots' subscribers, or of their untrusted marks. */
static uint64_t slots_sum(const struct ring_stats *s, bool untrusted)
{
	uint32_t used = atomic_load_explicit(&s->slots_used, memory_order_relaxed);
	uint64_t n = 0;

	if (used > RING_STATS_SLOTS)
		used = RING_STATS_SLOTS;
	for (uint32_t i = 0; i < used; i++) {
		const struct ring_stats_slot *sl = &s->slot[i];

		/* acquire: a live owner's reset of its counts is seen */
		if (!slot_live(atomic_load_explicit(&sl->owner, memory_order_acquire)))
			continue;
		n += untrusted ? atomic_load_explicit(&sl->untrusted, memory_order_relaxed)
			       : atomic_load_explicit(&sl->subscribers, memory_order_relaxed);
	}
	return n;
}

uint64_t ring_stats_subscribers(const struct ring_stats *s)
{
	return atomic_load_explicit(&s->subscribers, memory_order_relaxed) + slots_sum(s, false);
}

uint64_t ring_stats_untrusted(const struct ring_stats *s)
{
	return slots_sum(s, true);
}
