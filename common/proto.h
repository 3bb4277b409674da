/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_PROTO_H
#define GPS_COMMON_PROTO_H

/*
 * The broker's local socket: how frontends (and trusted local tools) hand it a publish.
 *
 * An AF_UNIX SOCK_SEQPACKET socket ([Broker] socket, mode 0660 in a directory only the service
 * user can enter): the kernel keeps message boundaries, so neither side reassembles anything.
 * The broker accepts a connection only from its own uid or root (SO_PEERCRED); any other peer is
 * closed at once.
 *
 * Request: one datagram, struct proto_req, then the publisher's message id (id_len bytes, none
 * when id_len is 0), then the stored topic (shm/topic.h), then the body when it is at most
 * PROTO_INLINE_MAX bytes. A larger body travels as one file descriptor in SCM_RIGHTS instead: a
 * memfd holding it at offset 0, which keeps a 2 MiB body out of the socket buffers (one write
 * into the memfd, one pread in the broker). Inline, an everyday publish costs no fd passing, no
 * memfd write and no pread (README "Performance"), and a frontend can hand over several at once.
 * That memfd is the only descriptor a request may carry, and only with a body over
 * PROTO_INLINE_MAX: the broker closes every descriptor that comes with a request at once and
 * refuses (400, with the reason) a request with more than one, with one it does not call for, or
 * with one that is not a memfd (broker/recv.c); one it had no room to take (EMFILE) is a 503.
 * Reply: one datagram, struct proto_resp, sent only after the message is in the ring (status
 * 200) or was refused. One connection carries any number of request/reply pairs, in order; a
 * frontend may send several requests before it reads their replies (pipelining).
 *
 * Message ids (README 4.7, "Publishing exactly once"): a request whose id the broker has
 * stored within [History] messageIdWindow is not stored again; the reply is 200 with the
 * original message's seq and time_us and PROTO_RESP_DUPLICATE in flags.
 *
 * Deadlines (PROTOCOL 4.6: a 503 means "not stored"). A frontend answers 503 when the broker has
 * not answered within its wait; a broker that was only stalled (SIGSTOP, swapped out, a long
 * fsync of a neighbour) would still store the request when it resumes, and a publisher that
 * retries without an id (the original hook sends none) would publish it twice. So each request
 * carries deadline_us, a CLOCK_MONOTONIC time (one clock for every process of the machine)
 * PROTO_DEADLINE_SLACK_US before the frontend's own wait ends: the broker refuses a request it
 * comes to after its deadline with 503, unread and unstored, and the frontend, when its wait
 * ends, takes whatever answers are already in its socket before it answers 503. What is left is
 * a broker stalled for more than the slack between its check of the deadline and its append,
 * a few microseconds of code. In cluster mode the check happens before the message is handed to
 * NATS; once handed over, it cannot be called back (README, "Running a cluster").
 *
 * "GPS2" added the id and flags; "GPS3" the generation, so a frontend names a message's cursor
 * (README 3.8) from the ring the broker stored it in, without mapping the ring itself; "GPS4"
 * inline bodies; "GPS5" the deadline. A frontend and a broker of different versions refuse each other's datagrams by
 * magic, which a publisher sees as a 503 (try again), never a wrong 200.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC	 UINT32_C(0x35535047) /* "GPS5" */
/* Bytes of stored topic in a request: what the ring's 16-bit topic_len holds (shm/ring.h). */
#define PROTO_MAX_TOPIC	 (64u * 1024u - 1u)
#define PROTO_MAX_REASON 120u
/* Bytes of an X-Message-Id: room for a UUID, a 64-hex digest with a prefix, or the hook's id;
 * small enough that the ids of a full ring cost little (shm/ring.h stores one per message). */
#define PROTO_MAX_ID	 128u
/* Bodies up to this travel inside the request datagram: every everyday message (a commit is a
 * few KiB), and with the largest topic still far below a local socket's send buffer (208 KiB). */
#define PROTO_INLINE_MAX ((size_t)64 * 1024)

/* How long before the end of its wait for the broker a frontend sets a request's deadline: time
 * for the answer of a request stored just before it to reach the frontend. */
#define PROTO_DEADLINE_SLACK_US UINT64_C(1000000)

/*
 * flags of struct proto_req. CHAINED: sent in one batch with the request before it on this
 * connection, before that one was answered. If that one was refused (or skipped), this one is
 * refused unread: the frontend answers the client's pipeline up to the first refusal and then
 * closes, and nothing the client sent after it may be stored (RFC 9112 9.6).
 */
#define PROTO_REQ_CHAINED UINT32_C(1)

/* flags of struct proto_resp */
#define PROTO_RESP_DUPLICATE UINT32_C(1) /* the id was seen: nothing stored, the original told */

struct proto_req {
	uint32_t magic;	    /* PROTO_MAGIC */
	uint32_t topic_len; /* bytes of stored topic, after the id */
	uint64_t body_len;  /* bytes of body: after the topic, or in the memfd if one is passed */
	uint32_t id_len;    /* bytes of message id right after this struct; 0: none */
	uint32_t flags;	    /* PROTO_REQ_* */
	/* CLOCK_MONOTONIC us: the broker refuses the request (503) when it comes to it later; 0:
	 * no deadline (a local tool's request) */
	uint64_t deadline_us;
};

struct proto_resp {
	uint32_t magic;	  /* PROTO_MAGIC */
	uint32_t status;  /* HTTP status: 200, 400 (JSON, topic, after a refusal), 413, 500, 503 */
	uint64_t seq;	  /* 200: the message's sequence number (the original's for a duplicate) */
	uint64_t time_us; /* 200: its publish time, CLOCK_REALTIME microseconds */
	uint64_t generation;	       /* 200: the generation of the ring that holds it */
	uint32_t flags;		       /* PROTO_RESP_* */
	uint32_t _pad;		       /* zero */
	char reason[PROTO_MAX_REASON]; /* NUL-terminated one line for the response body */
};

/*
 * Whether id[0..len) is a message id: 1 to PROTO_MAX_ID bytes, each visible ASCII (0x21-0x7E).
 * Nothing else is asked of it (commas and quotes are ordinary bytes): the id is opaque, compared
 * byte for byte. Checked by the frontend (400) and again by the broker.
 */
static inline bool proto_id_valid(const uint8_t *id, size_t len)
{
	if (len == 0 || len > PROTO_MAX_ID)
		return false;
	for (size_t i = 0; i < len; i++)
		if (id[i] < 0x21 || id[i] > 0x7e)
			return false;
	return true;
}

#endif
