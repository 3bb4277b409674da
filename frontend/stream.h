/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_STREAM_H
#define GPS_FRONTEND_STREAM_H

/*
 * What stream.c (one subscriber) and fanout.c (all the subscribers of the process) share: a
 * subscriber's state, the framings, and how a write that the socket took only in part is
 * settled.
 *
 * A subscriber's state is its position in the ring, its topic (its group's), and what is left of
 * a frame the socket took only in part: never a queue of copies. Everything after its position
 * is still in the ring, and is read again from there when the socket has room.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frontend/cursor.h"
#include "frontend/frontend.h"

enum stream_format {
	FMT_CHUNKED,	 /* PROTOCOL 3.2: a chunk per message */
	FMT_LINES,	 /* PROTOCOL 3.6 (HTTP/1.0): a line per message, close-delimited */
	FMT_SSE,	 /* README 3.10 on HTTP/1.0: an event per message, close-delimited */
	FMT_SSE_CHUNKED, /* README 3.10: events, all those of one write in one chunk */
	FMT_COUNT,
};

/*
 * The most framing one message gets: SSE's "id: <cursor>\ndata: " and "\n\n" (4 + 37 + 7 + 2
 * bytes) and the CRLF that closes an SSE chunk after it. A chunk of the stream needs 14.
 */
#define FRAME_OVERHEAD	64u
#define CHUNK_HEAD_ROOM 24u /* an SSE chunk's size line (16 hex + CRLF), and its CRLF */
/* One write per BATCH_BYTES at most: a batch that stays in the cache between our copy and the
 * kernel's is faster to send than a larger one. */
#define BATCH_BYTES	((size_t)256 * 1024u)
/* Frames in one write: at most IOV_MAX iovecs, and the two of an SSE chunk's framing. */
#define BATCH_FRAMES	1000u

/* Where a frame of a write ends, and what it settles once the socket has taken all of it. */
struct mark {
	size_t end;    /* offset in the write just past the frame */
	uint64_t next; /* the subscriber's position once the frame is out */
	uint32_t flags;
};
#define MARK_START_GAP 1u /* the gap notice of the start (PROTOCOL 3.4): due again if dropped */
#define MARK_START_ID  2u /* SSE's retry/id block of the start (README 3.10): likewise */

struct sub {
	struct conn *c;
	struct group *group;
	struct sub *gprev, *gnext; /* the group's subscribers */
	enum stream_format fmt;
	uint64_t next; /* seq of the next message to look at */
	uint8_t *pend; /* the rest of a frame the socket took in part (malloc) */
	size_t pend_off, pend_len;
	bool blocked;	      /* the socket is full: EPOLLOUT will say when it has room */
	bool gap_due;	      /* the start point calls for a gap notice (PROTOCOL 3.4) ... */
	uint64_t gap_missed;  /* ... saying this many messages were missed */
	bool id_due;	      /* SSE: an id block is due (the start, a replaced ring) */
	bool retry_due;	      /* ... with the reconnection delay (the start) */
	bool keepalive_due;   /* the keepalive tick came while messages were pending */
	bool counted;	      /* counted in stats->subscribers */
	uint64_t sent;	      /* bytes handed to the kernel */
	uint64_t acked;	      /* bytes the client has taken: sent - unsent queue */
	uint64_t acked_at_us; /* when acked last moved (monotonic) */
};

/* Subscribers whose topics are equal share a group: a message is matched once per group. */
struct group {
	struct group *prev, *next;
	struct sub *subs;
	size_t nsubs;
	size_t keylen;
	uint8_t key[]; /* the topic pattern, as stream.c encodes it */
};

/* Where a stream starts (PROTOCOL 3.5, README 3.9). */
struct resume {
	enum { RESUME_LIVE, RESUME_TIME, RESUME_CURSOR } kind;
	uint64_t since;	   /* RESUME_TIME: X-Fetch-Since in us */
	struct cursor cur; /* RESUME_CURSOR */
};

/* resume.c: where the request asks its stream to start; false when answered 400. */
bool resume_parse(struct conn *c, const struct http_request *req, struct resume *rs);
/* Where s starts on the ring: s->next, and s->gap_due / s->gap_missed when the start calls for
 * a gap notice (PROTOCOL 3.4). */
void resume_position(struct sub *s, const struct resume *rs);

/* Whether the stored topic[0..len) is covered by the encoded pattern key[0..keylen). */
bool stream_key_match(const uint8_t *key, size_t keylen, const uint8_t *topic, size_t len);

/* Frame message (gen, seq) of payload[0..n) for fmt at out (n + FRAME_OVERHEAD bytes);
 * returns the frame's length. */
size_t stream_frame(enum stream_format fmt, uint8_t *out, const uint8_t *payload, size_t n,
		    uint64_t gen, uint64_t seq);
/* The size line of an SSE chunk of n bytes, with its CRLF, at out; its length. */
size_t stream_chunk_head(uint8_t *out, size_t n);

/*
 * The socket took written bytes (or failed: written < 0, -errno) of a write of iov[0..iovcnt),
 * whose frames the marks describe: settle s, which was at next0 before the write and is at
 * next_all once all of it is out (past messages that did not match, after the last frame).
 * Frames the socket took are done; the rest of one it took in part goes to s->pend (for
 * FMT_SSE_CHUNKED, the rest of the whole chunk); frames it did not start are dropped, to be read
 * again from the ring. Returns true when everything was taken; false when s must wait for room
 * (blocked) or is gone (closed).
 */
bool stream_settle(struct sub *s, const struct iovec *iov, int iovcnt, const struct mark *marks,
		   size_t nmarks, uint64_t next0, uint64_t next_all, ssize_t written);

#endif
