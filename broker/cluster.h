/* SPDX-License-Identifier: MIT */
#ifndef GPS_BROKER_CLUSTER_H
#define GPS_BROKER_CLUSTER_H

/*
 * Cluster mode (README, "Running a cluster"; shm/ring.h section 8): the broker's side of one
 * NATS JetStream stream shared by every node.
 *
 * Threads. cluster_start() spawns one thread of ours, which connects (and retries), makes sure
 * the stream exists, consumes it in order from where the ring is (an ordered consumer) and looks
 * at the stream once a second. The NATS client library runs its own threads too; the publish
 * acknowledgements arrive on one of them. Neither ever touches the ring: everything they learn
 * becomes a struct cluster_event on one liburcu wait-free queue (urcu/wfcqueue.h, many
 * producers, the broker's loop the only consumer), and an eventfd wakes the broker's epoll loop
 * when the queue goes from empty to not empty. The broker's loop stays the ring's only writer.
 *
 * Publishing is called from the broker's loop: cluster_publish() hands the message to the client
 * library, which sends it without waiting (pipelined: any number in flight); JetStream's answer
 * comes back later as a CLUSTER_ACK event naming the caller's token.
 */

#include <stdbool.h>
#include <stdint.h>
#include <urcu/wfcqueue.h>

#include "common/config.h"
#include "common/macro.h"

enum cluster_event_type {
	CLUSTER_MSG,	/* a message of the stream, in stream order */
	CLUSTER_ACK,	/* JetStream's answer to cluster_publish(token) */
	CLUSTER_STREAM, /* the stream as last looked at (about once a second), or NATS down */
};

#define CLUSTER_SERVER_MAX 128 /* bytes of a server URL we report (ring_stats.cluster_server) */

struct cluster_event {
	struct cds_wfcq_node node;
	enum cluster_event_type type;
	bool failed;	      /* ACK: refused or garbled; STREAM: NATS or the stream unreachable */
	bool duplicate;	      /* ACK: JetStream already held this Nats-Msg-Id */
	bool mine;	      /* MSG: published by this broker (cluster_publish), as token */
	uint64_t seq;	      /* MSG: stream sequence; ACK: the message's (the original's) */
	uint64_t time_us;     /* MSG: when the stream stored it, CLOCK_REALTIME us */
	uint64_t generation;  /* MSG, ACK, STREAM: the stream's creation time in us (0: unknown) */
	uint64_t token;	      /* ACK, MSG when mine: the token given to cluster_publish() */
	uint64_t last_seq;    /* STREAM: the stream's last sequence */
	uint32_t id_len;      /* MSG: bytes of message id (Nats-Msg-Id) at data */
	uint32_t topic_len;   /* MSG: bytes of stored topic (shm/topic.h) after the id */
	uint32_t payload_len; /* MSG: bytes of payload after the topic */
	char server[CLUSTER_SERVER_MAX]; /* STREAM: the server connected to, "" none */
	uint8_t data[];			 /* MSG: id, topic, payload */
};

struct cluster;

/*
 * Start the cluster thread for cfg's [Cluster] section (cfg->nats non-empty). retention_s and
 * msgid_window_s configure a stream it creates. next_seq and generation say where the ring is
 * (cluster_position). 0 or -errno; a NATS that cannot be reached is not an error (the thread
 * keeps trying and says so with CLUSTER_STREAM events).
 */
_must_check_ int cluster_start(const struct config *cfg, uint64_t generation, uint64_t next_seq,
			       struct cluster **ret_cluster);
/* Stop the thread, close the connection, free every queued event. Accepts NULL. */
void cluster_stop(struct cluster *c);
/* The eventfd to watch for EPOLLIN. */
int cluster_fd(const struct cluster *c);
/* Where the ring is: the next message it needs is next_seq of the stream made at generation.
 * The consumer restarts from there when it has to (reconnection, a new stream). */
void cluster_position(struct cluster *c, uint64_t generation, uint64_t next_seq);
/* Reset the eventfd; call before draining with cluster_next(). */
void cluster_clear_fd(const struct cluster *c);
/* The next event, or NULL when the queue is empty. Free it with free(). */
struct cluster_event *cluster_next(struct cluster *c);

/*
 * Send one message to the stream: stored topic, normalised payload, the publisher's id (id_len
 * 0: none; it becomes the Nats-Msg-Id JetStream deduplicates on). The answer comes as a
 * CLUSTER_ACK event with token, and the message, when the consumer reads it back, as a
 * CLUSTER_MSG event that is mine with the same token: its seq is that of the stream the ring
 * copies (an acknowledgement's seq may be of a stream deleted and made again since, which the
 * ack does not say). 0, -ENOTCONN when not connected (yet), or -errno.
 */
_must_check_ int cluster_publish(struct cluster *c, uint64_t token, const uint8_t *id,
				 uint32_t id_len, const uint8_t *topic, uint32_t topic_len,
				 const char *payload, uint32_t payload_len);

/* The subject that messages of stream are published to: "gitpubsub.<stream>". */
_must_check_ int cluster_subject(const char *stream, char *buf, size_t len);

/*
 * A stored topic as a NATS header value and back: each segment as "/" and the segment, with
 * '%', '/' and bytes outside 0x21-0x7E as %XX ("" is "/"). 0, or -EINVAL (decode: malformed)
 * or -ENOSPC (does not fit).
 */
_must_check_ int cluster_topic_encode(const uint8_t *topic, uint32_t len, char *buf, size_t cap);
_must_check_ int cluster_topic_decode(const char *s, uint8_t *buf, size_t cap, uint32_t *ret_len);

#endif
