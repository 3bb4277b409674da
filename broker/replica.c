/* SPDX-License-Identifier: MIT */
/*
 * The broker's side of cluster mode (broker/broker.h; README, "Running a cluster"; shm/ring.h
 * section 8). A validated publish goes to the stream (replica_publish) and waits in struct
 * pending; each round of the loop takes what broker/cluster.c queued (messages of the stream,
 * appended to the ring in stream order; JetStream's acknowledgements; the stream's state), then
 * answers what is acknowledged and held here, or late, in each frontend's request order.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "broker/broker.h"
#include "common/io.h"
#include "common/log.h"
#include "shm/topic.h"

/* Cluster mode: hand the message to JetStream; its answer comes with a CLUSTER_ACK event. */
int replica_publish(struct broker *b, int fd, const uint8_t *id, uint32_t id_len,
		    const uint8_t *topic, uint32_t topic_len, uint32_t len)
{
	const uint64_t token = b->pend_next;
	struct pending *p = broker_pend_push(b, fd);
	int err;

	if (!p)
		return -ENOBUFS;
	err = cluster_publish(b->cl, token, id, id_len, topic, topic_len, b->msg, len);
	if (err < 0) {
		p->state = PEND_DONE;
		p->resp = (struct proto_resp){ .magic = PROTO_MAGIC, .status = 503 };
		(void)snprintf(p->resp.reason, sizeof(p->resp.reason), "%s",
			       err == -ENOTCONN ? "the cluster (NATS) is unreachable"
						: "unable to send the message to the cluster");
		return 0;
	}
	p->state = PEND_SENT;
	p->deadline_us = io_now_mono_us() + (uint64_t)b->cfg.publish_timeout_ms * 1000u;
	return 0;
}

/* ---- cluster mode: answers in order, events from the stream ---------------------------- */

static void pend_done(struct pending *p, uint32_t status, const char *reason)
{
	p->state = PEND_DONE;
	p->resp = (struct proto_resp){ .magic = PROTO_MAGIC, .status = status };
	(void)snprintf(p->resp.reason, sizeof(p->resp.reason), "%s", reason);
}

void replica_forget(struct broker *b, int fd)
{
	for (uint64_t k = b->pend_first; k < b->pend_next; k++)
		if (b->pend[k % MAX_PENDING].fd == fd)
			b->pend[k % MAX_PENDING].state = PEND_FREE;
}

/* Whether fd was marked in this round of flush_answers; marks it. */
static bool fd_marked(struct broker *b, int fd, bool mark)
{
	if ((size_t)fd >= b->fd_mark_cap) {
		size_t cap = MAX((size_t)fd + 1, b->fd_mark_cap * 2);
		uint32_t *m = realloc(b->fd_mark, cap * sizeof(*m));

		if (!m)
			return true; /* hold its answers back until memory is found */
		memset(m + b->fd_mark_cap, 0, (cap - b->fd_mark_cap) * sizeof(*m));
		b->fd_mark = m;
		b->fd_mark_cap = cap;
	}
	if (b->fd_mark[fd] == b->mark_epoch)
		return true;
	if (mark)
		b->fd_mark[fd] = b->mark_epoch;
	return false;
}

/* Send every ready answer whose fd has no earlier answer still waiting. */
static void flush_answers(struct broker *b)
{
	if (++b->mark_epoch == 0)
		b->mark_epoch = 1; /* 0 is what a new mark slot holds */
	for (uint64_t k = b->pend_first; k < b->pend_next; k++) {
		struct pending *p = &b->pend[k % MAX_PENDING];

		if (p->state == PEND_FREE)
			continue;
		if (p->state != PEND_DONE) {
			(void)fd_marked(b, p->fd, true);
			continue;
		}
		if (fd_marked(b, p->fd, false))
			continue;
		if (broker_send_resp(p->fd, &p->resp) < 0)
			log_info("unable to answer a frontend: it left");
		p->state = PEND_FREE;
	}
	while (b->pend_first < b->pend_next &&
	       b->pend[b->pend_first % MAX_PENDING].state == PEND_FREE)
		b->pend_first++;
}

/* 200: the message is in the stream, and in this node's ring as seq. */
static void pend_stored(struct broker *b, struct pending *p, uint64_t seq, uint64_t time_us)
{
	if (p->flags & PROTO_RESP_DUPLICATE)
		b->duplicates++;
	p->state = PEND_DONE;
	p->resp = (struct proto_resp){
		.magic = PROTO_MAGIC,
		.status = 200,
		.seq = seq,
		.time_us = time_us,
		.generation = b->w.r.generation,
		.flags = p->flags,
		.reason = "Message sent!",
	};
}

/*
 * 503 what waited too long; answer the duplicates JetStream acknowledged that the ring holds.
 * A message that JetStream stored anew is answered when this node reads it back (on_message):
 * its acknowledgement's seq alone could be of a stream deleted since (section 8 of
 * shm/ring.h), a ring this node has not yet left. A duplicate is not read back (JetStream
 * stored nothing): its seq is the original's, looked for in the ring.
 */
static void resolve_answers(struct broker *b)
{
	const struct ring *r = &b->w.r;
	const uint64_t head = ring_head(r), tail = ring_tail(r), now = io_now_mono_us();

	for (uint64_t k = b->pend_first; k < b->pend_next; k++) {
		struct pending *p = &b->pend[k % MAX_PENDING];
		const struct ring_idx *e;

		if (p->state == PEND_SENT && now >= p->deadline_us) {
			pend_done(p, 503, "the cluster did not acknowledge the message in time");
			continue;
		}
		if (p->state != PEND_ACKED)
			continue;
		if (!(p->flags & PROTO_RESP_DUPLICATE) || p->seq >= head) {
			/* acknowledged, but this node has not consumed it yet: a while more */
			if (now >= p->deadline_us + APPEND_GRACE_US)
				pend_done(p, 503, "stored in the cluster, not yet on this node");
			continue;
		}
		e = &r->idx[p->seq & r->idx_mask];
		if (p->seq < tail ||
		    atomic_load_explicit(&e->seq, memory_order_relaxed) != p->seq) {
			pend_done(p, 503, "stored in the cluster, no longer held on this node");
			continue;
		}
		pend_stored(b, p, p->seq, atomic_load_explicit(&e->time_us, memory_order_relaxed));
	}
}

/* This node's own publish token, read back from the stream as seq: answer it. */
static void on_mine(struct broker *b, uint64_t token, uint64_t seq, uint64_t time_us)
{
	struct pending *p;

	if (token < b->pend_first || token >= b->pend_next)
		return; /* answered already (late: 503), or of an earlier broker */
	p = &b->pend[token % MAX_PENDING];
	if (p->state == PEND_SENT || p->state == PEND_ACKED)
		pend_stored(b, p, seq, time_us);
}

static void on_ack(struct broker *b, const struct cluster_event *ev)
{
	struct pending *p;

	if (ev->token < b->pend_first || ev->token >= b->pend_next)
		return; /* answered already: too late */
	p = &b->pend[ev->token % MAX_PENDING];
	if (p->state != PEND_SENT)
		return;
	if (ev->failed) {
		pend_done(p, 503, "the cluster refused the message");
		return;
	}
	p->state = PEND_ACKED;
	p->seq = ev->seq;
	p->flags = ev->duplicate ? PROTO_RESP_DUPLICATE : 0;
}

/* shm/ring.h section 8: the stream is another one (recreated): so is the ring. */
static int switch_ring(struct broker *b, uint64_t generation)
{
	struct ring_params rp = b->rp;
	bool created;
	int err;

	rp.generation = generation;
	rp.recreate = true;
	ring_stats_detach(b->stats);
	b->stats = NULL;
	ring_writer_close(&b->w);
	err = ring_writer_open(b->cfg.ring_name, &rp, &b->w, &created);
	if (err < 0)
		return err;
	b->w.defer_wake = true;
	msgid_clear(&b->ids);
	if (ring_stats_attach(b->cfg.ring_name, true, &b->stats) < 0)
		b->stats = NULL;
	log_notice("the stream is another one (made at %llu us): ring '%s' %s, generation %llu",
		   (unsigned long long)generation, b->cfg.ring_name,
		   created ? "made again" : "kept", (unsigned long long)b->w.r.generation);
	return 0;
}

/* One message of the stream, in stream order, into the ring. */
static int on_message(struct broker *b, const struct cluster_event *ev)
{
	const uint8_t *id = ev->data, *topic = ev->data + ev->id_len;
	const char *payload = (const char *)topic + ev->topic_len;
	uint64_t head, seq, t;
	ssize_t mlen;
	int err;

	if (ev->generation != b->w.r.generation) {
		err = switch_ring(b, ev->generation);
		if (err < 0) {
			log_error("unable to make ring '%s' again: %s", b->cfg.ring_name,
				  strerror(-err));
			return err;
		}
	}
	head = ring_head(&b->w.r);
	if (ev->seq < head)
		return 0; /* held already: a consumer that started again */
	if (ev->seq > head) {
		log_warning("stream: messages %llu to %llu are gone; subscribers get a gap notice",
			    (unsigned long long)head, (unsigned long long)ev->seq - 1);
		ring_skip_to(&b->w, ev->seq);
	}
	/* published by a broker, so normalised already; anything else must be JSON too */
	mlen = json_normalize(b->json, payload, ev->payload_len, b->msg, b->cfg.max_body);
	if (mlen < 0 || !topic_stored_valid(topic, ev->topic_len)) {
		log_warning("stream: message %llu is not a JSON message of a valid topic; skipped",
			    (unsigned long long)ev->seq);
		return 0;
	}
	err = broker_store(b, id, ev->id_len, topic, ev->topic_len, (uint32_t)mlen, ev->time_us,
			   &seq, &t);
	if (err < 0) {
		log_warning("stream: message %llu cannot be stored (%s); skipped",
			    (unsigned long long)ev->seq, strerror(-err));
		return 0;
	}
	if (ev->mine)
		on_mine(b, ev->token, seq, t);
	return 0;
}

static void on_stream(struct broker *b, const struct cluster_event *ev)
{
	if (!ev->failed)
		b->stream_last = ev->last_seq;
	/* ready once caught up, or when there is nothing to catch up with yet (NATS away) */
	if (b->ready_fd >= 0 &&
	    (ev->failed || ev->last_seq == 0 ||
	     (ev->generation == b->w.r.generation && ring_head(&b->w.r) > ev->last_seq))) {
		broker_signal_ready(b->ready_fd);
		b->ready_fd = -1;
	}
	if (!b->stats)
		return;
	atomic_store_explicit(&b->stats->cluster,
			      ev->failed ? RING_CLUSTER_DOWN : RING_CLUSTER_CONNECTED,
			      memory_order_relaxed);
	(void)snprintf(b->stats->cluster_server, sizeof(b->stats->cluster_server), "%s",
		       ev->server);
	(void)snprintf(b->stats->cluster_stream, sizeof(b->stats->cluster_stream), "%s",
		       b->cfg.stream);
}

/* Everything the cluster thread and the NATS library queued. <0: the ring is lost. */
static int cluster_events(struct broker *b)
{
	struct cluster_event *ev;
	int err = 0;

	cluster_clear_fd(b->cl);
	while (err >= 0 && (ev = cluster_next(b->cl))) {
		if (ev->type == CLUSTER_MSG)
			err = on_message(b, ev);
		else if (ev->type == CLUSTER_ACK)
			on_ack(b, ev);
		else
			on_stream(b, ev);
		free(ev);
	}
	cluster_position(b->cl, b->w.r.generation, ring_head(&b->w.r));
	if (b->stats) {
		const uint64_t held = ring_head(&b->w.r) - 1;

		atomic_store_explicit(&b->stats->cluster_seq, MAX(b->stream_last, held),
				      memory_order_relaxed);
		atomic_store_explicit(&b->stats->cluster_lag,
				      b->stream_last > held ? b->stream_last - held : 0,
				      memory_order_relaxed);
	}
	if (b->ready_fd >= 0 && io_now_mono_us() >= b->ready_deadline_us) {
		log_warning("not caught up with the stream after %u ms; serving anyway",
			    CATCHUP_MAX_MS);
		broker_signal_ready(b->ready_fd);
		b->ready_fd = -1;
	}
	return err;
}

/* JetStream stream names: no space, '.', '*', '>' or path separator; we ask for less. */
bool replica_stream_name_valid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return false;
	return true;
}

/* Cluster mode: the answers' queue, the statistics, the cluster thread and its eventfd. */
int replica_setup(struct broker *b)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int err;

	b->pend = calloc(MAX_PENDING, sizeof(*b->pend));
	if (!b->pend)
		return -ENOMEM;
	if (ring_stats_attach(b->cfg.ring_name, true, &b->stats) < 0)
		b->stats = NULL; /* statistics are not worth refusing to start */
	err = cluster_start(&b->cfg, b->w.r.generation, ring_head(&b->w.r), &b->cl);
	if (err < 0)
		return err;
	ev.data.u64 = (uint64_t)cluster_fd(b->cl);
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, cluster_fd(b->cl), &ev) < 0)
		return -errno;
	return 0;
}

int replica_round(struct broker *b)
{
	int err = cluster_events(b);

	if (err < 0)
		return err;
	resolve_answers(b);
	flush_answers(b);
	return 0;
}
