/* SPDX-License-Identifier: MIT */
#ifndef GPS_BROKER_MSGID_H
#define GPS_BROKER_MSGID_H

/*
 * The broker's table of recent message ids (README 4.7, "Publishing exactly once"): which
 * held message, if any, a publisher's X-Message-Id already names.
 *
 * The ids themselves are not kept here: they are stored in the ring with their messages
 * (shm/ring.h, records are [id][topic][payload]), which is what lets a restarted broker rebuild
 * this table (msgid_rebuild). The table maps a 64-bit keyed hash of an id to the seq of the
 * message that carries it; a hit is confirmed by comparing the id bytes in the ring.
 *
 * Bounds: the table is sized once, from the ring's index count (nidx), which is the most
 * messages the ring can hold: an open-addressing array of 2 * nidx seqs (load at most 1/2, so a
 * probe sequence stays short) and one hash per index entry (hashes[seq & (nidx - 1)], which is
 * what deletion needs). 24 bytes per index entry: 6 MiB for the default 64 MiB ring. It is all
 * allocated and touched at start, so the broker's memory does not grow while it runs. Ids leave
 * the table in seq order, when their message is evicted from the ring or falls out of the
 * window; so the table never holds more than nidx ids, and lookups and inserts are O(1)
 * (expected), expiry O(1) amortised per message.
 *
 * Hash flooding: the hash is SipHash-2-4 under a key drawn from getrandom() at start, so a
 * publisher cannot choose ids that collide. (Publishers are trusted peers anyway.)
 *
 * Linear probing with backward-shift deletion (Knuth 6.4, algorithm R): no tombstones, so a
 * long-running broker does not slow down as ids come and go.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "shm/ring.h"

struct msgid_table {
	uint64_t *slots;  /* seq of the message whose id hashes to this slot's chain; 0: empty */
	uint64_t *hashes; /* hashes[seq & seq_mask]: that held message's id hash; 0: no id */
	uint64_t slot_mask;
	uint64_t seq_mask;
	uint64_t count;	 /* ids held */
	uint64_t oldest; /* every seq below this has been forgotten */
	uint64_t next;	 /* one past the newest seq inserted (inserts must be increasing) */
	uint64_t key[2]; /* SipHash key */
};

/*
 * Make an empty table for messages of a ring with capacity index entries (a power of two, the
 * ring's nidx; rounded up otherwise). The hash key comes from getrandom(). 0, -ENOMEM or
 * -EINVAL (capacity 0 or too large); *t untouched on failure.
 */
_must_check_ int msgid_init(struct msgid_table *t, uint64_t capacity);
/* Free the arrays; accepts a table that was never initialised (zeroed). */
void msgid_free(struct msgid_table *t);
/* Forget everything (the key stays). */
void msgid_clear(struct msgid_table *t);

/* The keyed hash of id[0..len); never 0 (0 marks "no id"). */
uint64_t msgid_hash(const struct msgid_table *t, const uint8_t *id, size_t len);

/*
 * Callback of msgid_find: whether the message seq really carries the id being looked up (the
 * hash matched). ctx is the caller's.
 */
typedef bool (*msgid_eq_fn)(void *ctx, uint64_t seq);

/* The seq of the held message whose id has this hash and for which eq says yes; 0 if none. */
uint64_t msgid_find(const struct msgid_table *t, uint64_t hash, msgid_eq_fn eq, void *ctx);

/*
 * Record that message seq carries an id of this hash (0 is taken as 1, like msgid_hash). seq
 * must be above every seq inserted before; ids of messages more than capacity seqs older are
 * forgotten first (the ring cannot hold them any more), so the bound holds whatever the caller
 * does. The caller checks msgid_find first: this does not look for an equal id.
 */
void msgid_insert(struct msgid_table *t, uint64_t hash, uint64_t seq);

/* Forget the ids of every message below seq before. */
void msgid_expire(struct msgid_table *t, uint64_t before);

/* ---- with the ring (the broker's own writer mapping) ------------------------------------- */

/*
 * Forget the ids of messages the ring no longer holds (seq < tail) and of messages older than
 * now_us - window_us, by walking from the oldest remembered seq: O(1) amortised per message.
 * Call before a lookup (so a hit is always inside the window) and after each append (so the
 * hash slot of the evicted seq is free before the new one is inserted).
 */
void msgid_expire_ring(struct msgid_table *t, const struct ring *r, uint64_t now_us,
		       uint64_t window_us);

/*
 * The held message whose id is id[0..len) (hash from msgid_hash): its seq, or 0. Compares the
 * bytes in the ring, so a hash collision is never taken for a duplicate. Expire first.
 */
uint64_t msgid_lookup(const struct msgid_table *t, const struct ring *r, const uint8_t *id,
		      size_t len, uint64_t hash);

/*
 * Rebuild the table from the ring after a (re)start: every held message newer than now_us -
 * window_us that carries an id, oldest first; an id held twice keeps its oldest message (the
 * original). Returns the number of ids now in the table.
 */
uint64_t msgid_rebuild(struct msgid_table *t, const struct ring *r, uint64_t now_us,
		       uint64_t window_us);

#endif
