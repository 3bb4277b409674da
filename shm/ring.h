/* SPDX-License-Identifier: MIT */
#ifndef GPS_SHM_RING_H
#define GPS_SHM_RING_H

/*
 * THE CONTRACT FOR EVERY SHARED BYTE.
 *
 * The history ring is a POSIX shared-memory object holding every accepted message with its
 * topic and publish time (PROTOCOL 8). This header describes all of it; no other file does.
 *
 * 1. Roles and lifetime
 *
 *   gitpubsub-broker is the single writer. gitpubsub-frontend and gpsctl open the ring O_RDONLY
 *   and map it PROT_READ: the kernel enforces that they cannot corrupt history. gitpubsub-hook
 *   never maps it. The writer holds flock(LOCK_EX) on the object while it runs, so a second
 *   broker on the same ring refuses to start (-EBUSY). The default name is "/gitpubsub"
 *   ([History] ring), the file /dev/shm/gitpubsub (RING_SHM_DIR).
 *
 *   A second object, "<name>.stats" (struct ring_stats, at the end of this file), holds the
 *   connection and byte counters of PROTOCOL 6. Frontends map it read-write and add to it with
 *   relaxed atomics, so counting needs no broker round trip. It holds no history: a frontend
 *   that scribbles on it can spoil statistics, never messages.
 *
 *   Ownership (issue 14, item 1). /dev/shm is writable by every local user, so a name there
 *   proves nothing: anyone could have made the file first. Both objects belong to the broker's
 *   user (the packaged units run broker and frontends as the static user "gitpubsub") and have
 *   mode 0644: only that user writes, anyone may read. Frontends count into the statistics
 *   object as its owner; a frontend of another user cannot open it for writing and counts
 *   nothing. Every open goes through ring_shm_open(), which never follows a symbolic link and
 *   refuses (-EPERM) a file that is not a regular file, that group or others may write, or
 *   whose owner is not trusted: readers trust their own effective user, root, and the user
 *   [History] ringOwner names (the shipped configuration names "gitpubsub", so gpsctl run by
 *   root or an administrator reads the service's ring); the broker opens objects read-write,
 *   which the kernel allows on a 0644 object only to its owner or root. A refused object is
 *   never mapped, written, unlinked or replaced, not even by --recreate: the programs log one
 *   line naming the file, its owner and its mode (ring_refusal()), and an administrator
 *   removes it. So a copy of a ring planted under the name before the broker first runs is
 *   used by nobody.
 *
 *   Creation leaves no window. The broker makes each object complete before it has a name:
 *   open(RING_SHM_DIR, O_TMPFILE|O_RDWR|O_CLOEXEC), fchmod (the umask does not narrow the
 *   mode), posix_fallocate so a full /dev/shm fails at start-up with -ENOSPC instead of SIGBUS
 *   later, flock(LOCK_EX) (the ring), the header with magic last; then linkat() of
 *   /proc/self/fd/N to the name, which fails with EEXIST rather than replace anything (the
 *   broker then opens what is there, as a second broker starting at the same moment would).
 *   No reader ever sees a half-made object, and a broker that dies while making one leaves
 *   nothing in /dev/shm. shm_open(3) has no rename; on Linux it is open(2) of /dev/shm/<name>,
 *   so the link and the rename(2) below work on the same files (decided for issue 14: this
 *   code runs on Linux only, futexes and all).
 *
 *   Replacing (section 6, --recreate, a cluster stream made again) links the new complete
 *   object under a temporary name "<name>.new-<pid>-<n>" and rename(2)s it over the old one,
 *   which is atomic: the name always names one of the two, and nobody else can take it in
 *   between. A statistics object of another version is replaced the same way, and so is one of
 *   the broker's own user that others may write (versions before issue 14 made it 0666; its
 *   bytes are never used): an upgrade needs no hand. Another user's is refused as above.
 *
 * 2. Layout (offsets in bytes from the start of the mapping)
 *
 *   0       +------------------------------------------+
 *           | struct ring_hdr: creation constants      |  line 0, read-mostly
 *   64      | head tail data_head data_tail ...        |  line 1, writer-hot
 *   128     | broker pid, start time                   |  line 2
 *           | (zero up to RING_HDR_SIZE)               |
 *   4096    +------------------------------------------+
 *           | struct ring_idx idx[nidx]                |  32 bytes each, nidx a power of two
 *   4096 +  +------------------------------------------+
 *   32*nidx | uint8_t data[data_size]                  |  data_size a power of two
 *           +------------------------------------------+
 *
 *   Message seq lives in idx[seq & (nidx - 1)]. Its bytes, [id][topic][payload], live in data
 *   at logical byte position pos (a 64-bit offset that only grows; the byte is
 *   data[pos & (data_size - 1)]). A record never wraps around the end of data: when it does not
 *   fit before the end, the writer skips to the start (pos moves to the next multiple of
 *   data_size). Records start on 8-byte boundaries.
 *
 *   The id is the publisher's X-Message-Id (README 4.7, "Publishing exactly once"): id_len
 *   bytes, 0 when the message has none. It lives in the record, not in broker memory, so a
 *   broker that restarts rebuilds its duplicate table from the ring (broker/msgid.h). Readers
 *   that only deliver messages skip it: ring_rec_get() points topic past it.
 *
 *   The stored topic is the list of decoded segments of PROTOCOL 2.1 joined by a single NUL byte
 *   (published topics cannot contain NUL, PROTOCOL 2.5); the root topic "/" is the empty string.
 *   See shm/topic.h. The payload is the normalised JSON text (PROTOCOL 4.3), one line, no CRLF.
 *
 * 3. Magic, version, layout
 *
 *   magic is stored last, with release, at creation: a reader that sees RING_MAGIC (acquire)
 *   sees every other creation constant. version is bumped on ANY change to this file's structs
 *   or protocol; layout is a digest of sizes and offsets, so a process built from other sources
 *   refuses the ring with -EPROTO instead of misreading it.
 *
 * 4. Fields: see the comment of each. All are fixed-width; no pointers (positions and indices),
 *   padding is explicit, 32- and 64-bit atomics are asserted lock-free below. Memory ordering is
 *   written in C11 <stdatomic.h> terms (one vocabulary for the whole ring).
 *
 * 5. The protocol
 *
 *   Writer (append message seq = head, topic+payload of len bytes, time t):
 *     a. stamp += 1 (relaxed, now odd) then a seq_cst fence; read the ring clock (below);
 *        t = max(now, last_time + 1): times strictly increase.
 *     b. pos = data_head, moved to the next multiple of data_size if the record would wrap;
 *        end = pos + ALIGN_UP(len, 8).
 *     c. Evict from the tail while the oldest message overlaps the bytes about to be written
 *        (idx[tail].pos < end - data_size), or the index is full (head - tail == nidx):
 *        evicted_time = its time, tail += 1. Then data_tail = idx[tail].pos (or pos if nothing
 *        is left). Store evicted_time, tail and data_tail (release), then a release fence, so
 *        that these stores are visible before any byte of the new record.
 *     d. Copy the bytes into data (ring_copy_to).
 *     e. Seqlock the index entry: entry.seq = 0 (relaxed), release fence, store time, pos,
 *        topic_len, id_len, payload_len (relaxed), entry.seq = seq (release).
 *     f. data_head = end (relaxed), last_time = t (relaxed), head = seq + 1 (release);
 *        stamp += 1 (release, even again).
 *     g. wake += 1 (release), then FUTEX_WAKE(INT_MAX) on wake *without* FUTEX_PRIVATE_FLAG: the
 *        waiters are other processes. A writer appending several messages in a row may do
 *        this step once, after the last: readers look at head, not at wake, so one wake-up
 *        covers every message below head. The broker does so per batch of requests, since
 *        waking a hundred readers costs far more than an append (README "Performance").
 *        Readers need no change for it, so the version did not move.
 *   Expiry by age (PROTOCOL 8.1) is step c with the condition idx[tail].time < now - retention.
 *
 *   Reader (message seq):
 *     a. head (acquire): seq >= head means not yet published (-EAGAIN).
 *     b. tail (acquire): seq < tail means evicted (-ESTALE): the reader was lapped.
 *     c. entry.seq (acquire) must equal seq; load the fields (relaxed); acquire fence; entry.seq
 *        (relaxed) must still equal seq. Otherwise the entry was reused: -ESTALE.
 *     d. Copy out what it needs of the record (ring_copy_from), then ring_rec_valid(): acquire
 *        fence, data_tail (relaxed) <= pos. The fence pairs with the writer's release fence in
 *        step c: a copy that saw any byte of a newer record also sees the data_tail that
 *        condemned this one. A failed check means the copy may be torn: drop it, treat as lapped.
 *   Gaps (PROTOCOL 3.4): a lapped reader resumes at tail; it missed tail - seq messages, whatever
 *   their topics (the ring does not keep the topics of overwritten messages). A ring holds at most
 *   nidx messages, so a reader that meets an unreadable entry below head - nidx resumes there
 *   even if tail says less: a corrupt header cannot keep it reading beyond one index.
 *
 *   Waiting: w = wake (acquire); check head; if nothing new, FUTEX_WAIT(wake, w, timeout). A
 *   publish between the load and the wait changes wake, so the kernel returns EAGAIN at once: no
 *   lost wake-up. The timeout is the keepalive tick, so a frontend on a quiet ring still sends
 *   keepalives and notices a departed client. Spurious wake-ups, EAGAIN and EINTR all just mean
 *   "look again".
 *
 *   Time index: times strictly increase with seq, so the first message at or after a time is
 *   found by binary search over idx for seq in [max(1, head - nidx), head), in O(log n):
 *   each probe is a seqlocked entry read (step c); a probe that fails restarts the search.
 *   Entries of evicted messages stay readable until their slot is reused, which is how a replay
 *   learns how many messages it asked for that are gone (PROTOCOL 3.4, 3.5).
 *
 *   Keepalive times (PROTOCOL 3.3): a reader that sends {"stillalive": T} must make T a valid
 *   resume point: every message before it in the stream has a time < T and every later one a
 *   time >= T. It loads stamp (acquire; odd: retry), head (acquire), reads the clock, acquire
 *   fence, loads stamp again (equal: no message was being stamped meanwhile), sends what is
 *   below head and then T = max(now, last_time + 1), now read from the ring clock.
 *
 *   The ring clock: ring time = CLOCK_MONOTONIC + clock_offset, in us. The writer reads
 *   CLOCK_REALTIME too and raises clock_offset (release) whenever the wall clock is ahead of ring
 *   time; it never lowers it. So ring time follows the wall clock forward (steps and NTP alike)
 *   but never goes back, for every process at once: a keepalive T handed out by a frontend is
 *   never later than a message stamped after it, even when the wall clock steps back between
 *   the two. After a backward step, ring time runs ahead of the wall clock by the step, for the
 *   life of the ring (gpsctl status shows both). CLOCK_MONOTONIC is one clock for the whole
 *   machine, and /dev/shm does not outlive a boot, so the offset stays meaningful.
 *
 * 6. Restart and generation
 *
 *   The ring outlives the broker: a new broker opens the existing object (section 1: it must be
 *   the service's), locks it, validates it as a reader would, checks it was made with the
 *   configured size, and resumes at head. A publish cut short by a crash never moved head, so
 *   its entry and bytes are simply rewritten (a reader never looks past head). A crash between
 *   steps a and f leaves stamp odd: the new broker makes it even. A ring of an older version
 *   (an upgrade: this build cannot read its history) is replaced at open, and
 *   ring_writer.replaced_version says so for the broker's log; a newer one is refused (a
 *   downgrade). Otherwise only an explicit
 *   `gitpubsub-broker --recreate` replaces a ring: the new object, with a new generation, takes
 *   the name by rename(2) (section 1), then the old one gets closed = 1 and everyone is woken;
 *   readers check closed after each wake-up and timeout, then re-attach by name (or exit), and
 *   find the new ring at once: the name is never missing.
 *
 * 7. Errors returned by ring_*()
 *
 *   -ENOENT  no ring by that name: the broker never ran (frontend: 503 to publishers and
 *            subscribers; gpsctl: says so).
 *   -EPROTO  magic, version, layout or sizes do not match this build: refuse, never guess.
 *   -ESTALE  the message is gone (lapped) or the ring was replaced (closed).
 *   -EAGAIN  the message is not published yet.
 *   -ENOSPC  /dev/shm cannot hold the ring (posix_fallocate at creation).
 *   -EMSGSIZE a record larger than RING_MAX_RECORD(data_size), or a topic or id longer than
 *            its index field holds (RING_MAX_TOPIC, RING_MAX_ID).
 *   -EEXIST  a ring exists with another size (the broker refuses unless --recreate).
 *   -EBUSY   another writer holds the ring (flock(LOCK_EX) on the object): a second broker
 *            on the same ring refuses to start.
 *   -EPERM   the ring or its statistics object is not the service's (section 1): another
 *            owner, group- or world-writable, or not a regular file. Refused, never touched;
 *            ring_refusal() says which file, its owner and mode.
 *   other    -errno from shm_open, fstat, mmap.
 *
 * 8. Cluster mode (README, "Running a cluster")
 *
 *   With [Cluster] nats set, the ring is this node's copy of one NATS JetStream stream, and the
 *   broker appends only what it consumes from the stream, in stream order:
 *   - seq is the stream sequence, and generation is the stream's creation time in us (the
 *     creating broker's clock, written in the stream's description: servers disagree on
 *     jsStreamInfo.Created), so a cursor (README 3.8) names the same message on every node. A
 *     stream recreated (another creation time) means a new ring (section 6, with the stream's
 *     generation).
 *   - time_us is the time the stream stored the message (max(that, previous + 1), writer a), the
 *     same on every node that holds the messages before it.
 *   - The ring always holds a contiguous range of stream sequences: when the next message the
 *     stream gives is not head (messages gone from the stream: retention, a purge, or a node
 *     that was down longer than the stream keeps), ring_skip_to() evicts every held message
 *     and moves tail and head to that seq. Readers see it as being lapped (section 5, reader b)
 *     and send the one gap notice of PROTOCOL 3.4. Writer: evict as step c (tail, data_tail,
 *     release fence), store first_seq (release), then head = tail = seq (release), wake.
 *     ring_find_time() searches from max(head - nidx, first_seq): entries below first_seq were
 *     never written with their own seq.
 *   - stream_time is 1: message times come from the stream's clock, not the ring clock, so a
 *     keepalive may not use the ring clock (a message stored in the stream before the keepalive
 *     can arrive after it). ring_keepalive_time() returns last_time + 1 instead: still a valid
 *     resume point, since every later message has a later time.
 */

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "common/macro.h"

#define RING_MAGIC   UINT32_C(0x52535047) /* "GPSR" in memory order */
/*
 * Bump on ANY change to what other processes read: the shared structs and constants of this file
 * (the RING_AT assertions below list them; process-local types and prototypes do not count).
 * History:
 *   1  first shape.
 *   2  records carry the publisher's message id first ([id][topic][payload]); the index entry's
 *      topic_len shrank to 16 bits to make room for id_len, so entries stay 32 bytes. A version 1
 *      ring is refused (-EPROTO): its entries would be misread.
 *   3  clock_offset_us: message and keepalive times come from the ring clock (section 5), so a
 *      backward step of the wall clock cannot make a keepalive later than the next message.
 *   4  cluster mode (section 8): head may skip forward (ring_skip_to), first_seq bounds the
 *      time index, stream_time makes keepalives take the last message's time.
 *   5  the statistics object counts subscribers per process, in slots a killed process cannot
 *      leave wrong (struct ring_stats_slot, slots_used); it grew from 512 bytes to 1 MiB.
 */
#define RING_VERSION UINT32_C(5)

#define RING_HDR_SIZE		   4096u		 /* the header owns a page */
#define RING_MIN_DATA		   (UINT64_C(64) * 1024) /* smallest data area */
#define RING_MAX_DATA		   (UINT64_C(1) << 40)	 /* 1 TiB: far beyond any /dev/shm */
#define RING_IDX_DIVISOR	   256u /* one index entry per 256 data bytes: the mean record we plan for */
#define RING_MIN_IDX		   1024u
/* A record may use at most half the data area, so one message never evicts everything. */
#define RING_MAX_RECORD(data_size) ((data_size) / 2)

/* Field widths of struct ring_idx: the broker's limits (common/proto.h) are checked against them. */
#define RING_MAX_TOPIC UINT16_MAX /* bytes of stored topic */
#define RING_MAX_ID    UINT16_MAX /* bytes of message id */

struct ring_hdr {
	/* Line 0: set once at creation, magic last (release). */
	_Atomic uint32_t magic; /* RING_MAGIC */
	uint32_t version;	/* RING_VERSION */
	uint32_t layout;	/* RING_LAYOUT */
	uint32_t hdr_size;	/* RING_HDR_SIZE: offset of idx[] */
	uint64_t nidx;		/* index entries, a power of two */
	uint64_t data_size;	/* data bytes, a power of two, >= RING_MIN_DATA */
	uint64_t generation;	/* creation time in us: differs for every ring made */
	uint64_t created_us;	/* CLOCK_REALTIME at creation */
	uint64_t _pad0[2];	/* zero */

	/* Line 1, writer-hot: the broker stores, readers load, with the orders of section 5. */
	alignas(64) _Atomic uint64_t head; /* seq of the next message; starts at 1 (release) */
	_Atomic uint64_t tail;		   /* seq of the oldest held message; == head if none */
	_Atomic uint64_t data_head;	   /* position after the newest record (relaxed) */
	_Atomic uint64_t data_tail;	   /* position of the oldest held byte (release) */
	_Atomic uint64_t last_time_us;	   /* time of message head - 1; 0 if none (relaxed) */
	_Atomic uint64_t evicted_time_us;  /* time of the newest evicted message; 0 if none */
	_Atomic uint32_t wake;		   /* futex word: += 1 after head moves (release) */
	_Atomic uint32_t closed;	   /* 1: ring replaced; re-attach by name (release) */
	_Atomic uint32_t stamp;		   /* odd while a message is being timed (section 5) */
	_Atomic uint32_t stream_time;	   /* 1: times come from a stream (section 8; relaxed) */

	/* Line 2: the broker that writes now, for gpsctl and PROTOCOL 6 (relaxed). */
	alignas(64) _Atomic uint64_t broker_pid; /* 0 after a clean shutdown */
	_Atomic uint64_t broker_start_us;	 /* CLOCK_REALTIME when it attached */
	_Atomic uint64_t published;		 /* messages appended since creation */
	_Atomic uint64_t retention_us;		 /* the age limit the broker applies */
	_Atomic uint64_t clock_offset_us; /* ring time - CLOCK_MONOTONIC; only grows (section 5) */
	_Atomic uint64_t first_seq;	  /* lowest seq whose entry may be read; 1, or the last skip
				     * (section 8); stored before head (release) */
};

/* One index entry: a seqlock around a message's metadata (section 5, writer e / reader c). */
struct ring_idx {
	_Atomic uint64_t seq;	      /* the message's seq; 0 while being written (release) */
	_Atomic uint64_t time_us;     /* publish time, CLOCK_REALTIME in us, strictly increasing */
	_Atomic uint64_t pos;	      /* logical position of its bytes in data */
	_Atomic uint16_t topic_len;   /* bytes of stored topic, right after the id */
	_Atomic uint16_t id_len;      /* bytes of message id at pos; 0: none (version 2) */
	_Atomic uint32_t payload_len; /* bytes of payload, right after the topic */
};

/*
 * Every offset and size another process relies on, spelled out: a field added, moved or
 * resized fails the build here, and whoever changes a number also bumps RING_VERSION.
 */
#define RING_AT(type, field, off) (offsetof(struct type, field) == (off))
_Static_assert(RING_AT(ring_hdr, magic, 0) && RING_AT(ring_hdr, version, 4) &&
		       RING_AT(ring_hdr, layout, 8) && RING_AT(ring_hdr, hdr_size, 12) &&
		       RING_AT(ring_hdr, nidx, 16) && RING_AT(ring_hdr, data_size, 24) &&
		       RING_AT(ring_hdr, generation, 32) && RING_AT(ring_hdr, created_us, 40) &&
		       RING_AT(ring_hdr, _pad0, 48) && RING_AT(ring_hdr, head, 64) &&
		       RING_AT(ring_hdr, tail, 72) && RING_AT(ring_hdr, data_head, 80) &&
		       RING_AT(ring_hdr, data_tail, 88) && RING_AT(ring_hdr, last_time_us, 96) &&
		       RING_AT(ring_hdr, evicted_time_us, 104) && RING_AT(ring_hdr, wake, 112) &&
		       RING_AT(ring_hdr, closed, 116) && RING_AT(ring_hdr, stamp, 120) &&
		       RING_AT(ring_hdr, stream_time, 124),
	       "a field of the header's line 0 or of its writer-hot line moved: bump RING_VERSION");
_Static_assert(RING_AT(ring_hdr, broker_pid, 128) && RING_AT(ring_hdr, broker_start_us, 136) &&
		       RING_AT(ring_hdr, published, 144) && RING_AT(ring_hdr, retention_us, 152) &&
		       RING_AT(ring_hdr, clock_offset_us, 160) &&
		       RING_AT(ring_hdr, first_seq, 168) && sizeof(struct ring_hdr) == 192,
	       "a field of the broker line moved, or one was added: bump RING_VERSION");
_Static_assert(sizeof(struct ring_hdr) <= RING_HDR_SIZE, "header fits its page");
_Static_assert(offsetof(struct ring_idx, seq) == 0 && offsetof(struct ring_idx, time_us) == 8 &&
		       offsetof(struct ring_idx, pos) == 16 &&
		       offsetof(struct ring_idx, topic_len) == 24 &&
		       offsetof(struct ring_idx, id_len) == 26 &&
		       offsetof(struct ring_idx, payload_len) == 28 &&
		       sizeof(struct ring_idx) == 32,
	       "a ring_idx field moved: update this assertion and bump RING_VERSION");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free across processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free across processes");
_Static_assert(ATOMIC_SHORT_LOCK_FREE == 2, "16-bit atomics must be lock-free across processes");

/* The layout digest: changes whenever a size or a field offset does. */
#define RING_LAYOUT                                                                                \
	((uint32_t)(sizeof(struct ring_hdr) * 1u + offsetof(struct ring_hdr, head) * 3u +          \
		    offsetof(struct ring_hdr, stamp) * 5u +                                        \
		    offsetof(struct ring_hdr, broker_pid) * 7u +                                   \
		    offsetof(struct ring_hdr, retention_us) * 11u +                                \
		    sizeof(struct ring_idx) * 13u + offsetof(struct ring_idx, payload_len) * 17u + \
		    (size_t)RING_HDR_SIZE * 19u + offsetof(struct ring_idx, id_len) * 23u))

/*
 * The statistics object "<ring name>.stats" (PROTOCOL 6). Every counter is added to with
 * relaxed atomic adds by frontends (each on its own line: no false sharing between them) and
 * read with relaxed loads.
 *
 * Open streams are a level, not a total: a process that dies without closing its streams
 * (SIGKILL, a crash) must take them out of the count, which a shared counter it would have
 * decremented cannot do. So each frontend process that serves a stream claims a slot and counts
 * its own streams there, and the slot dies with the process, by the kernel's robust-futex
 * mechanism (set_robust_list(2)): slot.owner is a futex word holding the owner's thread id, and
 * the owner registers it, alone, as its main thread's robust list, so when that thread exits
 * for any reason the kernel sets FUTEX_OWNER_DIED in the word. A reader (HEAD, gpsctl) sums
 * the subscribers of the slots whose owner is live (a thread id, FUTEX_OWNER_DIED clear) and
 * the shared counter subscribers; nothing has to reclaim anything, and no pid can be reused
 * into a dead slot: the next process to claim one resets it.
 *
 * Slot protocol (shm/stats.c). A claimer scans slot[0..slots_used) for an owner of 0 (never
 * used) or with FUTEX_OWNER_DIED (dead) and takes it with a CAS to RING_STATS_CLAIMING; none
 * free, it takes slot[fetch_add(slots_used)] the same way. It stores subscribers = 0, registers
 * the robust list, then stores its thread id in owner (release): readers (acquire) count the
 * slot from then on. A claimer killed in between leaves RING_STATS_CLAIMING, which no one
 * counts or takes (one slot lost). Only the owner changes its slot's counts. A process
 * that finds no slot (all RING_STATS_SLOTS live, or set_robust_list refused by a seccomp
 * filter) counts in subscribers, which a SIGKILL does leave high: the old behaviour, logged.
 *
 * The same slots bound the connections of processes started one per connection by systemd
 * (Accept=yes) or inetd, which see nothing of one another otherwise: such a process from an
 * untrusted peer sets its slot's untrusted to 1, then sums the live slots' (its own counted),
 * and refuses its connection when the sum passes the bound (README "Limits on connections").
 * Two that start together may both refuse at the bound; none is let past it.
 */
#define RING_STATS_MAGIC    UINT32_C(0x53535047) /* "GPSS" */
/* Slots: a multiplexed worker takes one, a process per connection (fork, inetd, Accept=yes)
 * one per subscriber; 65,536 is 16 times gitpubsub-accept.socket's MaxConnections, in 1 MiB. */
#define RING_STATS_SLOTS    65536u
/* owner while a claimer resets the slot: all thread-id bits, which no thread has (pid_max is
 * at most 2^22), so no reader counts it and no claimer takes it. */
#define RING_STATS_CLAIMING UINT32_C(0x3fffffff)
struct ring_stats_slot {
	_Atomic uint32_t owner;	      /* 0 free; owner's tid (release); | FUTEX_OWNER_DIED: dead */
	_Atomic uint32_t untrusted;   /* a process per connection: 1 for an untrusted peer's */
	_Atomic uint64_t subscribers; /* the owner's open streams (owner only, relaxed) */
};
struct ring_stats {
	_Atomic uint32_t magic; /* RING_STATS_MAGIC, stored last at creation (release) */
	uint32_t version;	/* RING_VERSION */
	/* Section 8, written by the broker only (relaxed), read by gpsctl and HEAD (X-Cluster-Lag) */
	_Atomic uint64_t cluster;     /* RING_CLUSTER_*: 0 on one machine */
	_Atomic uint64_t cluster_seq; /* the stream's last seq when the broker last looked */
	_Atomic uint64_t cluster_lag; /* messages of the stream not yet in the ring */
	_Atomic uint32_t slots_used;  /* slot[] entries ever taken; may pass RING_STATS_SLOTS */
	uint32_t _pad0[7];
	alignas(64) _Atomic uint64_t connections; /* connections accepted since creation */
	alignas(64) _Atomic uint64_t subscribers; /* streams of processes without a slot */
	alignas(64) _Atomic uint64_t received;	  /* bytes read from clients */
	alignas(64) _Atomic uint64_t sent;	  /* bytes written to clients */
	/* Section 8, display only: the broker rewrites them when it (re)connects; a reader may see
	 * one half-written for that instant. NUL-terminated. */
	alignas(64) char cluster_server[128]; /* the NATS server connected to; "" none */
	char cluster_stream[64];	      /* the stream's name */
	/* Open streams per process (above). */
	alignas(64) struct ring_stats_slot slot[RING_STATS_SLOTS];
};
_Static_assert(
	RING_AT(ring_stats, magic, 0) && RING_AT(ring_stats, version, 4) &&
		RING_AT(ring_stats, cluster, 8) && RING_AT(ring_stats, cluster_seq, 16) &&
		RING_AT(ring_stats, cluster_lag, 24) && RING_AT(ring_stats, slots_used, 32) &&
		RING_AT(ring_stats, _pad0, 36) && RING_AT(ring_stats, connections, 64) &&
		RING_AT(ring_stats, subscribers, 128) && RING_AT(ring_stats, received, 192) &&
		RING_AT(ring_stats, sent, 256) && RING_AT(ring_stats, cluster_server, 320) &&
		RING_AT(ring_stats, cluster_stream, 448) && RING_AT(ring_stats, slot, 512) &&
		RING_AT(ring_stats_slot, owner, 0) && RING_AT(ring_stats_slot, untrusted, 4) &&
		RING_AT(ring_stats_slot, subscribers, 8) && sizeof(struct ring_stats_slot) == 16 &&
		sizeof(struct ring_stats) == 512 + 16 * RING_STATS_SLOTS,
	"a ring_stats field moved: update this assertion and bump RING_VERSION");
#define RING_CLUSTER_OFF       0u /* one machine */
#define RING_CLUSTER_DOWN      1u /* cluster mode, NATS unreachable (publishes get 503) */
#define RING_CLUSTER_CONNECTED 2u /* cluster mode, connected to NATS */
#define RING_STATS_SUFFIX      ".stats"

/* ---- process-local handles and the reader API (shm/ring.c) ------------------------------ */

struct ring {
	struct ring_hdr *hdr; /* PROT_READ for readers: never store through it outside the writer */
	struct ring_idx *idx;
	uint8_t *data;
	size_t map_size;
	uint64_t nidx, idx_mask;
	uint64_t data_size, data_mask;
	uint64_t generation;
};

/* A message located in the ring; id, topic and payload point into the shared mapping and may be
 * overwritten at any moment: copy what you need with ring_copy_from(), then ring_rec_valid().
 * The three are adjacent, in that order: one copy from id (or from topic) takes them together. */
struct ring_rec {
	uint64_t seq;
	uint64_t time_us;
	uint64_t pos;
	uint32_t topic_len;
	uint32_t payload_len;
	uint32_t id_len;
	const uint8_t *id;
	const uint8_t *topic;
	const uint8_t *payload;
};

/* Bytes of the record at rec->pos, before alignment: id, topic and payload. */
static inline uint64_t ring_rec_len(const struct ring_rec *rec)
{
	return (uint64_t)rec->id_len + rec->topic_len + rec->payload_len;
}

/*
 * Section 1: where the objects live and whom they must belong to. Every open of a ring or
 * statistics object goes through ring_shm_open().
 */
#define RING_SHM_DIR "/dev/shm" /* shm_open("/x") is the file /dev/shm/x on Linux */

/* Also trust objects owned by 'user' (a name in /etc/passwd or a decimal uid: [History]
 * ringOwner); NULL or "": only this process's effective user and root. Process-wide, set once
 * at start; the string must outlive every ring_*() call. */
void ring_set_owner(const char *user);
/* RING_SHM_DIR "/<name without its slash>" into buf; 0 or -ENAMETOOLONG. */
_must_check_ int ring_shm_path(const char *name, char *buf, size_t len);
/* Whether an object with this stat may be used (section 1): 0, or -EPERM when it is not a
 * regular file, belongs to an untrusted user, or group or others may write it. */
_must_check_ int ring_shm_trusted(const struct stat *st);
/* Open object 'name' (O_RDONLY or O_RDWR in flags), never through a symbolic link, and refuse
 * it unless ring_shm_trusted(): the fd (O_CLOEXEC; caller closes) with its stat in *ret_st
 * (may be NULL), -EPERM, or -errno. */
_must_check_ int ring_shm_open(const char *name, int flags, struct stat *ret_st);
/* After -EPERM from a ring_*() call about ring 'ring_name': one line naming the refused file
 * (the ring or its statistics object), its owner and mode, and what to do, into why. -EPERM
 * with that line, or 0 (why says only "Operation not permitted") if neither is refused now. */
int ring_refusal(const char *ring_name, char *why, size_t len);

/* Map ring 'name' read-only into *ret_ring; 0 or -errno (section 7). *ret_ring untouched on
 * failure. */
_must_check_ int ring_attach(const char *name, struct ring *ret_ring);
/* ring_attach(), or for the writer read-write (shm/ring-writer.c reopens an existing ring). */
_must_check_ int ring_open(const char *name, bool writable, struct ring *ret_ring);
/* Open and map shm object 'name' (read-only, or read-write for the writer) without validating
 * it: 0 with *ret_base and *ret_size set; -EPROTO (with *ret_size set) if it is smaller than a
 * header; -errno otherwise. ring_attach() and gpsctl's check build on it. */
_must_check_ int ring_map(const char *name, bool writable, void **ret_base, size_t *ret_size);
/* ring_map() of an open object of 'size' bytes (the writer maps the object it has locked). */
_must_check_ int ring_map_fd(int fd, size_t size, bool writable, void **ret_base, size_t *ret_size);
/* Unmap; accepts a ring that was never attached (hdr NULL). */
void ring_detach(struct ring *r);
/* Check a mapping of map_size bytes: 0 or -EPROTO. Used by attach and by the writer. */
_must_check_ int ring_validate(const struct ring_hdr *h, size_t map_size);
/* The same, and on -EPROTO the first reason in why[0..len) ("version 2, this build reads 3");
 * why may be NULL. For a tool that must say what is wrong (gpsctl check). */
_must_check_ int ring_validate_why(const struct ring_hdr *h, size_t map_size, char *why,
				   size_t len);
/* Fill the process-local fields of r from a validated header at base. */
void ring_init_handle(struct ring *r, void *base, size_t map_size);

static inline uint64_t ring_head(const struct ring *r)
{
	return atomic_load_explicit(&r->hdr->head, memory_order_acquire);
}

static inline uint64_t ring_tail(const struct ring *r)
{
	return atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
}

static inline uint32_t ring_wake_word(const struct ring *r)
{
	return atomic_load_explicit(&r->hdr->wake, memory_order_acquire);
}

/* Whether the ring was replaced (section 6): re-attach. */
static inline bool ring_closed(const struct ring *r)
{
	return atomic_load_explicit(&r->hdr->closed, memory_order_acquire) != 0;
}

/* Ring time (section 5): what readers compare with message times. */
uint64_t ring_now_us(const struct ring *r);

/* Locate message seq: 0 and *ret filled; -EAGAIN not published yet; -ESTALE gone. */
_must_check_ int ring_rec_get(const struct ring *r, uint64_t seq, struct ring_rec *ret);
/* After copying from rec: whether the copy is whole (section 5, reader d). */
bool ring_rec_valid(const struct ring *r, const struct ring_rec *rec);
/* The one place that reads record bytes from the mapping (a deliberate, validated race). */
void ring_copy_from(void *dst, const uint8_t *src, size_t len);

/*
 * The first seq whose time is >= time_us among the entries still readable, in O(log n):
 * *ret_seq is in [lo, head] (head: every held message is older). *ret_lo is the lowest seq whose
 * entry could be read: messages in [*ret_lo, tail) were evicted but their times are known.
 * 0, or -EAGAIN after too many restarts under a fast writer (try again).
 */
_must_check_ int ring_find_time(const struct ring *r, uint64_t time_us, uint64_t *ret_seq,
				uint64_t *ret_lo);

/* Sleep until wake differs from seen or timeout_ms passes; 0 (look again) or -errno other than
 * EAGAIN/EINTR/ETIMEDOUT. */
_must_check_ int ring_wait(const struct ring *r, uint32_t seen, uint32_t timeout_ms);

/* A resume time for a keepalive (section 5): *ret_head is what must be sent before it. 0, or
 * -EAGAIN if the writer kept stamping (try later). */
_must_check_ int ring_keepalive_time(const struct ring *r, uint64_t *ret_time_us,
				     uint64_t *ret_head);

/* ---- the reader: one loop for the frontend, gpsctl, the fuzzers and the tests ------------ */

/*
 * Reads of one message that may fail before the reader gives up on it. A read fails when the
 * entry does not hold its seq though the message is not evicted (caught mid-rewrite), or when
 * the caller's copy is refused (ring_rec_valid) while tail has not moved yet: both end within
 * a few tries, so a message still failing after this many is skipped and reported as a gap
 * of one rather than retried forever.
 */
#define RING_READ_TRIES 16

/* A reader's place in the ring; process-local, any number per mapping. */
struct ring_cursor {
	uint64_t next;	/* seq of the next message to read */
	uint32_t tries; /* reads of next so far (RING_READ_TRIES) */
};

/* What a reader lost (PROTOCOL 3.4): missed messages, then it goes on at resume_seq. */
struct ring_gap {
	uint64_t missed;
	uint64_t resume_seq;
	uint64_t resume_us; /* the gap notice's "resume": a valid resume time (section 5) */
};

enum {
	RING_NEXT_MSG = 0, /* *ret_rec locates the message at the cursor */
	RING_NEXT_GAP = 1, /* *ret_gap says what was lost; the cursor moved past it */
};

/* Put c at seq (ring_head(): only what is published from now; ring_tail(): all held). */
static inline void ring_cursor_init(struct ring_cursor *c, uint64_t seq)
{
	c->next = seq;
	c->tries = 0;
}

/*
 * Put c at the first message at or after since_us (PROTOCOL 3.5: time >= since). 0; or
 * RING_NEXT_GAP with *ret_gap when messages at or after since_us were evicted already (a
 * subscriber is told); or -EAGAIN if a fast writer kept moving the index (try again).
 */
_must_check_ int ring_cursor_seek_time(const struct ring *r, uint64_t since_us,
				       struct ring_cursor *c, struct ring_gap *ret_gap);

/*
 * The next step of a reader at c: RING_NEXT_MSG with *ret_rec (copy what is needed with
 * ring_copy_from(), check it with ring_rec_valid(), then ring_cursor_advance(); on a refused
 * copy just call ring_next() again), RING_NEXT_GAP with *ret_gap (lapped, or a message
 * unreadable RING_READ_TRIES times), or -EAGAIN when nothing is published past c: wait with
 * ring_wake_word() taken before the call and ring_wait().
 */
_must_check_ int ring_next(const struct ring *r, struct ring_cursor *c, struct ring_rec *ret_rec,
			   struct ring_gap *ret_gap);

/* The message ring_next() gave was consumed (sent, printed, or skipped by topic): move on. */
static inline void ring_cursor_advance(struct ring_cursor *c)
{
	c->next++;
	c->tries = 0;
}

/*
 * ring_next(), the copy and the check in one: topic and payload of the next message into
 * buf[0..cap) (topic first, payload right after). RING_NEXT_MSG with *ret_rec (the cursor
 * advanced), RING_NEXT_GAP, -EAGAIN as ring_next(); -EMSGSIZE with ret_rec->topic_len and
 * payload_len set when cap is too small (the cursor stays: grow buf and call again).
 */
_must_check_ int ring_read(const struct ring *r, struct ring_cursor *c, uint8_t *buf, size_t cap,
			   struct ring_rec *ret_rec, struct ring_gap *ret_gap);

/* A gap notice's resume time for a reader going on at seq: that message's time if it is
 * held, else a keepalive time (nothing unsent is older). */
uint64_t ring_resume_time(const struct ring *r, uint64_t seq);

/* Statistics object: map "<ring name>.stats" read-write (frontends) or read-only; 0 or -errno. */
_must_check_ int ring_stats_attach(const char *ring_name, bool writable,
				   struct ring_stats **ret_stats);
void ring_stats_detach(struct ring_stats *s);
static inline void ring_stats_add(const struct ring_stats *s, _Atomic uint64_t *counter, uint64_t n)
{
	if (s)
		atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/*
 * Count delta (+1 or -1) open streams of this process (shm/stats.c). The first call of a
 * process claims its slot (struct ring_stats_slot) and makes the calling thread's robust list
 * that slot's alone: call it from the process's main thread only, in a process that uses no
 * robust pthread mutex. Without a slot the shared counter takes the count. Returns whether the
 * count went to a slot (false: the shared counter, which a SIGKILL leaves high).
 */
bool ring_stats_count_subscriber(struct ring_stats *s, int delta);
/* The open streams of every live process: the shared counter and the live slots. O(slots ever
 * taken): about 10 us at 20,000 (tests/unit/t-stats.c measures it). */
uint64_t ring_stats_subscribers(const struct ring_stats *s);
/* Mark this process (a process per connection, its main thread) as serving an untrusted peer,
 * in its slot, claimed as above; false when it has none (nothing counted). */
bool ring_stats_mark_untrusted(struct ring_stats *s);
/* The processes per connection serving untrusted peers: the live slots so marked. */
uint64_t ring_stats_untrusted(const struct ring_stats *s);

/* Build "<ring name>.stats" into buf; 0 or -ENAMETOOLONG. */
_must_check_ int ring_stats_name(const char *ring_name, char *buf, size_t len);

/* ---- the writer API (shm/ring-writer.c, linked only into the broker and the ring tests) ---- */

struct ring_writer {
	struct ring r;
	int lock_fd;	       /* holds flock(LOCK_EX) on the object: one writer at a time */
	uint64_t retention_us; /* 0: no age limit */
	struct ring_stats *stats;
	/* Process-local, nothing shared: with defer_wake, publishes leave step g of section 5 to
	 * ring_wake_flush(), which the broker calls once per batch of requests. */
	bool defer_wake;
	bool wake_pending;	   /* a publish since the last wake-up, under defer_wake */
	uint32_t replaced_version; /* ring_writer_open() replaced a ring of this older version */
};

struct ring_params {
	uint64_t data_size;    /* rounded up to a power of two, at least RING_MIN_DATA */
	uint64_t retention_us; /* 0: keep until space runs out */
	bool recreate;	       /* replace an existing ring of another size or version */
	uint64_t generation;   /* 0: the creation time; else the generation to make (section 8),
				* and an existing ring of another generation is replaced */
	bool stream_time;      /* section 8: times come from a stream (stored in the header) */
};

/*
 * Open ring 'name' for writing, creating it (and its stats object) when absent. An existing ring
 * is validated like a reader would and must have the requested size (-EEXIST otherwise) and this
 * build's version (-EPROTO otherwise; an older version's is replaced, section 6) unless
 * p->recreate, which replaces it (section 6). So is a
 * ring holding what no writer leaves (-EPROTO: a held entry without its seq, records outside
 * the data area, out of order or longer than a record may be, times not increasing, counters
 * near 2^64), checked under the writer lock before recovery. -EBUSY while another writer
 * holds it; -EPERM, whatever p says, when it or its statistics object is not the service's
 * (section 1). *ret_created tells whether a new ring was made. 0 or -errno; *w untouched on
 * failure.
 */
_must_check_ int ring_writer_open(const char *name, const struct ring_params *p,
				  struct ring_writer *w, bool *ret_created);
/* Mark a clean shutdown (broker_pid = 0) and unmap. The ring stays. */
void ring_writer_close(struct ring_writer *w);
/* Remove ring 'name' and its stats object (tests). 0 or -errno. */
_must_check_ int ring_unlink(const char *name);

/*
 * Append one message (section 5, writer). topic is the stored form (shm/topic.h). now_us is 0
 * in production: the clock is then read inside the stamp window (writer step a), which the
 * keepalive guarantee needs; tests pass a time to step the clock. The message time is
 * max(now, previous + 1). On success *ret_seq and *ret_time_us are the message's.
 * 0, or -EMSGSIZE if topic_len + payload_len > RING_MAX_RECORD(data_size) or topic_len >
 * RING_MAX_TOPIC. A message without an id: ring_publish_id() with id_len 0.
 */
_must_check_ int ring_publish(struct ring_writer *w, const uint8_t *topic, uint32_t topic_len,
			      const uint8_t *payload, uint32_t payload_len, uint64_t now_us,
			      uint64_t *ret_seq, uint64_t *ret_time_us);
/* The same with the publisher's message id (id_len bytes at id, stored first in the record;
 * -EMSGSIZE beyond RING_MAX_ID, or if the three together exceed RING_MAX_RECORD). */
_must_check_ int ring_publish_id(struct ring_writer *w, const uint8_t *id, uint32_t id_len,
				 const uint8_t *topic, uint32_t topic_len, const uint8_t *payload,
				 uint32_t payload_len, uint64_t now_us, uint64_t *ret_seq,
				 uint64_t *ret_time_us);

/*
 * Section 8: evict every held message and make seq (> head) the next one, so that the next
 * publish gets seq. Readers are woken (now, or with the batch under defer_wake). Nothing happens
 * when seq <= head.
 */
void ring_skip_to(struct ring_writer *w, uint64_t seq);

/* Step g of section 5 for every publish since the last one, under w->defer_wake: one
 * FUTEX_WAKE for the batch. Nothing to do (no syscall) when nothing was published. */
void ring_wake_flush(struct ring_writer *w);

/* Evict messages older than now_us - retention_us; the number evicted. Also moves the ring
 * clock up to the wall clock (section 5): the broker calls it every second. */
uint64_t ring_expire(struct ring_writer *w, uint64_t now_us);

/*
 * Test only: the writer calls ring_crash_hook (when set) at these points between the steps of
 * section 5, and tests/unit/t-ring-crash.c kills the writer there. NULL in production. Process
 * local: nothing shared changes, so RING_VERSION does not move for these.
 */
enum ring_crash_point {
	RING_CRASH_STAMPED,	  /* a: stamp odd, time taken, nothing else stored */
	RING_CRASH_TAIL,	  /* c: tail stored, data_tail not yet (also in ring_expire) */
	RING_CRASH_EVICTED,	  /* c: tail and data_tail stored, no byte of the record written */
	RING_CRASH_BYTES_HALF,	  /* d: id and topic copied, payload not */
	RING_CRASH_BYTES,	  /* d: the record copied, its entry untouched */
	RING_CRASH_ENTRY_CLEARED, /* e: entry.seq 0 */
	RING_CRASH_ENTRY_HALF,	  /* e: time and pos stored, the lengths not */
	RING_CRASH_ENTRY,	  /* e: entry complete, data_head not moved */
	RING_CRASH_DATA_HEAD,	  /* f: data_head moved */
	RING_CRASH_LAST_TIME,	  /* f: last_time_us and published moved, head not */
	RING_CRASH_HEAD,	  /* f: head moved, stamp still odd */
	RING_CRASH_STAMP_EVEN,	  /* f: done, readers not woken */
	RING_CRASH_WOKEN,	  /* g: done */
	RING_CRASH_POINTS
};
extern void (*ring_crash_hook)(enum ring_crash_point point);

#endif
