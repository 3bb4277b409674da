/* SPDX-License-Identifier: MIT */
/* The broker's table of recent message ids: see broker/msgid.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker/msgid.h"

/* 2^36 index entries would be a 16 TiB data area: far beyond RING_MAX_DATA / RING_IDX_DIVISOR. */
#define MSGID_MAX_CAPACITY (UINT64_C(1) << 36)

/* ---- SipHash-2-4 (Aumasson and Bernstein, 2012), 64-bit output --------------------------- */

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64U - b));
}

static inline uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8U * i);
	return v;
}

/* One SipRound over the state v[0..3]. */
static inline void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl64(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl64(v[0], 32);
	v[2] += v[3];
	v[3] = rotl64(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl64(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl64(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl64(v[2], 32);
}

static uint64_t siphash24(const uint64_t key[2], const uint8_t *p, size_t len)
{
	uint64_t v[4] = {
		UINT64_C(0x736f6d6570736575) ^ key[0],
		UINT64_C(0x646f72616e646f6d) ^ key[1],
		UINT64_C(0x6c7967656e657261) ^ key[0],
		UINT64_C(0x7465646279746573) ^ key[1],
	};
	uint64_t b = (uint64_t)len << 56;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		const uint64_t m = load_le64(p + i);

		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	for (unsigned j = 0; i + j < len; j++)
		b |= (uint64_t)p[i + j] << (8U * j);
	v[3] ^= b;
	sipround(v);
	sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int r = 0; r < 4; r++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- the table ----------------------------------------------------------------------------- */

int msgid_init(struct msgid_table *t, uint64_t capacity)
{
	struct msgid_table n = { 0 };
	uint64_t cap = 1;

	if (capacity == 0 || capacity > MSGID_MAX_CAPACITY)
		return -EINVAL;
	while (cap < capacity)
		cap <<= 1;
	/* A weak key only weakens flood resistance, never correctness (hits are compared byte
	 * for byte): if getrandom fails, go on with what it left, plus the address of n. */
	if (getrandom(n.key, sizeof(n.key), GRND_NONBLOCK) != (ssize_t)sizeof(n.key))
		n.key[0] ^= (uint64_t)(uintptr_t)&n;
	n.slots = malloc((size_t)(2 * cap) * sizeof(*n.slots));
	n.hashes = malloc((size_t)cap * sizeof(*n.hashes));
	if (!n.slots || !n.hashes) {
		free(n.slots);
		free(n.hashes);
		return -ENOMEM;
	}
	/* memset, not calloc: touch every page now, so the broker's RSS does not creep up as ids
	 * arrive (a soak test holds its growth to 1 MiB) */
	memset(n.slots, 0, (size_t)(2 * cap) * sizeof(*n.slots));
	memset(n.hashes, 0, (size_t)cap * sizeof(*n.hashes));
	n.slot_mask = 2 * cap - 1;
	n.seq_mask = cap - 1;
	n.oldest = 1; /* seqs start at 1 (shm/ring.h) */
	n.next = 1;
	*t = n;
	return 0;
}

void msgid_free(struct msgid_table *t)
{
	free(t->slots);
	free(t->hashes);
	t->slots = NULL;
	t->hashes = NULL;
	t->count = 0;
}

void msgid_clear(struct msgid_table *t)
{
	if (!t->slots)
		return;
	memset(t->slots, 0, (size_t)(t->slot_mask + 1) * sizeof(*t->slots));
	memset(t->hashes, 0, (size_t)(t->seq_mask + 1) * sizeof(*t->hashes));
	t->count = 0;
	t->oldest = 1;
	t->next = 1;
}

uint64_t msgid_hash(const struct msgid_table *t, const uint8_t *id, size_t len)
{
	uint64_t h = siphash24(t->key, id, len);

	return h ? h : 1;
}

uint64_t msgid_find(const struct msgid_table *t, uint64_t hash, msgid_eq_fn eq, void *ctx)
{
	uint64_t i, s;

	if (!t->slots)
		return 0;
	hash = hash ? hash : 1;
	/* ends: at most capacity of the 2 * capacity slots are used, so an empty one comes */
	for (i = hash & t->slot_mask; (s = t->slots[i]) != 0; i = (i + 1) & t->slot_mask)
		if (t->hashes[s & t->seq_mask] == hash && eq(ctx, s))
			return s;
	return 0;
}

/* Remove seq (whose id hash is hash) from the slots: backward-shift deletion. */
static void slots_delete(struct msgid_table *t, uint64_t hash, uint64_t seq)
{
	uint64_t i = hash & t->slot_mask, k, home, s;

	while (t->slots[i] != seq) {
		if (t->slots[i] == 0)
			return; /* not there: cannot happen while hashes[] and slots agree */
		i = (i + 1) & t->slot_mask;
	}
	for (;;) {
		t->slots[i] = 0;
		/*
		 * Move back the first later entry of the run that may live at i: one whose home
		 * slot is not cyclically in (i, k]. An entry whose home is in (i, k] would become
		 * unreachable (its probe starts after the hole), so it stays.
		 */
		for (k = (i + 1) & t->slot_mask;; k = (k + 1) & t->slot_mask) {
			s = t->slots[k];
			if (s == 0)
				return;
			home = t->hashes[s & t->seq_mask] & t->slot_mask;
			if (i <= k ? (home <= i || home > k) : (home <= i && home > k))
				break;
		}
		t->slots[i] = s;
		i = k;
	}
}

/* Forget seq's id, if it has one. */
static void forget(struct msgid_table *t, uint64_t seq)
{
	uint64_t *hp = &t->hashes[seq & t->seq_mask];

	if (*hp == 0)
		return;
	slots_delete(t, *hp, seq);
	*hp = 0;
	t->count--;
}

void msgid_expire(struct msgid_table *t, uint64_t before)
{
	uint64_t end;

	if (!t->slots || before <= t->oldest)
		return;
	/* only seqs below next were ever inserted; the walk is at most capacity long */
	end = MIN(before, t->next);
	if (t->count == 0)
		end = t->oldest;
	for (uint64_t s = t->oldest; s < end; s++)
		forget(t, s);
	t->oldest = before;
	if (t->next < before)
		t->next = before;
}

void msgid_insert(struct msgid_table *t, uint64_t hash, uint64_t seq)
{
	uint64_t i;

	if (!t->slots || seq < t->next)
		return; /* out of order: refuse rather than corrupt the seq-indexed hashes */
	hash = hash ? hash : 1;
	/* hashes[] has one entry per seq modulo capacity: the seq that shared it must go */
	if (seq - t->oldest > t->seq_mask)
		msgid_expire(t, seq - t->seq_mask);
	for (i = hash & t->slot_mask; t->slots[i] != 0; i = (i + 1) & t->slot_mask)
		;
	t->slots[i] = seq;
	t->hashes[seq & t->seq_mask] = hash;
	t->count++;
	t->next = seq + 1;
}

/* ---- with the ring -------------------------------------------------------------------------- */

static uint64_t entry_time(const struct ring *r, uint64_t seq)
{
	return atomic_load_explicit(&r->idx[seq & r->idx_mask].time_us, memory_order_relaxed);
}

void msgid_expire_ring(struct msgid_table *t, const struct ring *r, uint64_t now_us,
		       uint64_t window_us)
{
	const uint64_t head = ring_head(r), tail = ring_tail(r);
	const uint64_t cutoff = now_us > window_us ? now_us - window_us : 0;
	uint64_t s = MAX(t->oldest, tail);

	/* times increase with seq (shm/ring.h, writer a): the expired ones are a prefix */
	while (s < head && s < t->next && entry_time(r, s) < cutoff)
		s++;
	msgid_expire(t, s);
}

struct lookup_ctx {
	const struct ring *r;
	const uint8_t *id;
	size_t len;
};

static bool lookup_eq(void *ctx, uint64_t seq)
{
	const struct lookup_ctx *l = ctx;
	struct ring_rec rec;

	/* the broker is the writer: the record cannot change under it, no seqlock retry needed */
	if (ring_rec_get(l->r, seq, &rec) < 0)
		return false;
	return rec.id_len == l->len && memcmp(rec.id, l->id, l->len) == 0;
}

uint64_t msgid_lookup(const struct msgid_table *t, const struct ring *r, const uint8_t *id,
		      size_t len, uint64_t hash)
{
	struct lookup_ctx l = { .r = r, .id = id, .len = len };

	return msgid_find(t, hash, lookup_eq, &l);
}

uint64_t msgid_rebuild(struct msgid_table *t, const struct ring *r, uint64_t now_us,
		       uint64_t window_us)
{
	const uint64_t head = ring_head(r), tail = ring_tail(r);
	const uint64_t cutoff = now_us > window_us ? now_us - window_us : 0;
	uint64_t s, lo;

	msgid_clear(t);
	t->oldest = t->next = tail;
	/* skip the messages older than the window in O(log n): the ring may hold days of them */
	if (ring_find_time(r, cutoff, &s, &lo) < 0 || s < tail)
		s = tail;
	for (; s < head; s++) {
		struct ring_rec rec;
		uint64_t h;

		if (ring_rec_get(r, s, &rec) < 0 || rec.time_us < cutoff || rec.id_len == 0)
			continue;
		h = msgid_hash(t, rec.id, rec.id_len);
		if (msgid_lookup(t, r, rec.id, rec.id_len, h) == 0)
			msgid_insert(t, h, s);
	}
	return t->count;
}
