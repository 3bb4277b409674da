/* SPDX-License-Identifier: MIT */
#ifndef GPS_BROKER_BROKER_H
#define GPS_BROKER_BROKER_H

/*
 * The broker's state, shared by its two halves: broker/main.c (the loop, the frontends'
 * requests, the ring on one machine) and broker/replica.c (cluster mode: publishing to the
 * JetStream stream, copying it into the ring, answering in request order).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "broker/cluster.h"
#include "broker/json.h"
#include "broker/msgid.h"
#include "common/config.h"
#include "common/macro.h"
#include "common/proto.h"
#include "shm/ring.h"

/* Cluster mode: publishes waiting for JetStream (or answers queued behind one), at most. A
 * frontend that would add one more is disconnected (its publisher gets 503), never answered out
 * of order. */
#define MAX_PENDING	16384u
#define CLUSTER_TICK_MS 50 /* how often publish deadlines are looked at */
/* An acknowledged publish waits this long after its deadline for this node to consume it; the
 * frontend waits publishTimeout + 2 s for the answer (frontend/publish.c). */
#define APPEND_GRACE_US 1000000u
/* How long a starting broker waits to copy the stream before it says it is ready anyway (the
 * runner gives it 10 s): subscribers are answered from a ring caught up with the stream. */
#define CATCHUP_MAX_MS	8000u

struct broker {
	struct config cfg;
	struct ring_writer w;
	struct json_validator *json;
	char *body;	/* max_body bytes: the body as received */
	char *msg;	/* max_body bytes: the normalised message */
	uint8_t *dgram; /* one request datagram */
	size_t dgram_cap;
	int epfd, lfd, sigfd, timerfd;
	uint64_t published, refused;
	struct msgid_table ids; /* recent message ids (README 4.7), if msgid_window_us */
	uint64_t msgid_window_us;
	uint64_t duplicates; /* publishes answered from the id table */
	uint64_t late;	     /* publishes refused after their deadline (common/proto.h) */
	uint64_t late_logged, late_log_us; /* late when last logged, and when (mono) */
	/* cluster mode (broker/cluster.h); cl NULL on one machine */
	struct cluster *cl;
	struct ring_params rp;	  /* how the ring was opened: reopened for a new stream */
	struct ring_stats *stats; /* the cluster lines of the statistics (shm/ring.h section 8) */
	struct pending *pend;	  /* MAX_PENDING answers, by token % MAX_PENDING */
	uint64_t pend_first;	  /* token of the oldest answer not sent */
	uint64_t pend_next;	  /* token of the next publish */
	uint32_t *fd_mark;	  /* flush_answers(): fds with an earlier answer not ready */
	size_t fd_mark_cap;
	uint32_t mark_epoch;
	uint64_t stream_last; /* the stream's last seq, last seen */
	int ready_fd;	      /* signalled once caught up with the stream; -1 once done */
	uint64_t ready_deadline_us;
	/* Out of descriptors (EMFILE): the listener is not watched until this CLOCK_MONOTONIC time
	 * (0: watched), so a waiting connection that cannot be accepted does not wake the loop
	 * again and again; accept_pauses counts the pauses of this shortage, for its log lines. */
	uint64_t accept_resume_us;
	uint64_t accept_pauses;
};

enum pending_state {
	PEND_FREE,  /* answered, or its frontend left */
	PEND_SENT,  /* sent to JetStream, no acknowledgement yet */
	PEND_ACKED, /* acknowledged as seq, not in this node's ring yet */
	PEND_DONE,  /* resp is the answer, to be sent in order */
};

struct pending {
	enum pending_state state;
	int fd;
	uint64_t deadline_us; /* CLOCK_MONOTONIC: a 503 then */
	uint64_t seq;	      /* PEND_ACKED: the stream's sequence */
	uint32_t flags;	      /* PEND_ACKED: PROTO_RESP_DUPLICATE when JetStream had it */
	struct proto_resp resp;
};

/* ---- broker/main.c ---- */

/* Send one answer to a frontend now; 0 or -errno. */
_must_check_ int broker_send_resp(int fd, const struct proto_resp *r);
/* Cluster mode: a slot for the next answer on fd, in request order; NULL when MAX_PENDING wait. */
struct pending *broker_pend_push(struct broker *b, int fd);
/* Append b->msg[0..len) with id and topic at time now_us (0: the ring clock) and remember the id
 * (README 4.7): the one way into the ring. 0 or -errno. */
_must_check_ int broker_store(struct broker *b, const uint8_t *id, uint32_t id_len,
			      const uint8_t *topic, uint32_t topic_len, uint32_t len,
			      uint64_t now_us, uint64_t *ret_seq, uint64_t *ret_time_us);
/* Tell systemd and the runner (--ready-fd) that the broker serves. */
void broker_signal_ready(int ready_fd);

/* ---- broker/recv.c: a request's datagram and descriptors ---- */

/*
 * What came with a request datagram besides its bytes (common/proto.h): no descriptor, or the
 * one memfd of a large body. Anything else is refused with its reason, every descriptor that
 * came with it closed, so that no frontend can fill the broker's file table.
 */
enum req_fds {
	REQ_FDS_OK,	 /* none, or one: *ret_body_fd */
	REQ_FDS_MANY,	 /* more than one (each closed) */
	REQ_FDS_DROPPED, /* one was sent, but the broker had no descriptor free to take it */
};

/*
 * Receive one request datagram from fd into b->dgram: its size (> 0), 0 when none waits, or
 * -errno (-ECONNRESET: the frontend went away). *ret_body_fd is the memfd passed with it, or -1
 * (the caller closes it); every other descriptor is closed; *ret_fds says what came;
 * *ret_trunc that the datagram did not fit.
 */
ssize_t broker_recv_request(struct broker *b, int fd, int *ret_body_fd, enum req_fds *ret_fds,
			    bool *ret_trunc);
/* Why what came with request req (broker_recv_request: fds, body_fd) is not the descriptor it
 * calls for, with the status in *ret_status; NULL when it is. */
const char *broker_fds_refusal(enum req_fds fds, int body_fd, const struct proto_req *req,
			       uint32_t *ret_status);

/* ---- broker/replica.c: cluster mode ---- */

/* Whether s is a stream name we accept: letters, digits, '-' and '_'. */
bool replica_stream_name_valid(const char *s);
/* The answers' queue, the statistics, the cluster thread and its eventfd in b->epfd. 0 or -errno. */
_must_check_ int replica_setup(struct broker *b);
/* Hand a validated message (b->msg[0..len)) to JetStream; answered later, in order. 0 or -errno
 * (-ENOBUFS: MAX_PENDING wait; drop the frontend). */
_must_check_ int replica_publish(struct broker *b, int fd, const uint8_t *id, uint32_t id_len,
				 const uint8_t *topic, uint32_t topic_len, uint32_t len);
/* fd is closed: its answers have nowhere to go. */
void replica_forget(struct broker *b, int fd);
/* Everything the cluster thread and the NATS library queued, then the answers that became ready,
 * sent in order. <0: the ring is lost (exit). */
_must_check_ int replica_round(struct broker *b);

#endif
