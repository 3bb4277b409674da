/* SPDX-License-Identifier: MIT */
/* gpsctl status and gpsctl stats: the ring, the broker and the counters of PROTOCOL 6. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/io.h"
#include "common/log.h"
#include "gpsctl/gpsctl.h"

/* Reads of the oldest held message retried while a fast writer evicts it under us. */
#define OLDEST_TRIES 16

/* The broker as seen from outside: does a process hold the ring's writer lock? */
enum broker_state {
	BROKER_RUNNING, /* a process holds flock(LOCK_EX) on the ring */
	BROKER_STOPPED, /* broker_pid is 0: the last broker shut down cleanly */
	BROKER_DEAD,	/* broker_pid is set but nobody holds the lock: it died */
	BROKER_UNKNOWN, /* /proc/locks unreadable; fell back to kill(pid, 0) */
};

/* Everything status and stats print, read once. */
struct snapshot {
	uint64_t head, tail, bytes;
	uint64_t oldest_us, newest_us; /* 0: none held */
	uint64_t published, retention_us, created_us, generation;
	uint64_t data_size, nidx;
	uint64_t broker_pid, broker_start_us, now_us;
	enum broker_state state;
	pid_t lock_pid; /* holder of the writer lock, when BROKER_RUNNING */
	bool has_stats;
	bool stats_refused; /* not the service's (shm/ring.h section 1): logged, exit 1 */
	uint64_t connections, subscribers, received, sent;
	/* cluster mode (shm/ring.h section 8), from the statistics object */
	uint64_t cluster, cluster_seq, cluster_lag;
	char cluster_server[sizeof(((struct ring_stats *)NULL)->cluster_server)];
	char cluster_stream[sizeof(((struct ring_stats *)NULL)->cluster_stream)];
};

/* Time of the oldest held message, 0 if none is held (retried under a fast writer). */
static uint64_t oldest_time(const struct ring *r)
{
	for (int i = 0; i < OLDEST_TRIES; i++) {
		struct ring_rec rec;
		uint64_t tail = ring_tail(r);

		if (tail >= ring_head(r))
			return 0;
		if (ring_rec_get(r, tail, &rec) == 0)
			return rec.time_us;
	}
	return 0;
}

static void take_snapshot(const struct ring *r, const char *name, struct snapshot *s)
{
	const struct ring_hdr *h = r->hdr;
	struct ring_stats *st = NULL;
	pid_t holder = 0;
	int err;

	memset(s, 0, sizeof(*s));
	s->now_us = io_now_real_us();
	s->head = ring_head(r);
	s->tail = ring_tail(r);
	s->bytes = atomic_load_explicit(&h->data_head, memory_order_relaxed) -
		   atomic_load_explicit(&h->data_tail, memory_order_relaxed);
	s->oldest_us = oldest_time(r);
	s->newest_us = s->head > s->tail
			       ? atomic_load_explicit(&h->last_time_us, memory_order_relaxed)
			       : 0;
	s->published = atomic_load_explicit(&h->published, memory_order_relaxed);
	s->retention_us = atomic_load_explicit(&h->retention_us, memory_order_relaxed);
	s->created_us = h->created_us;
	s->generation = h->generation;
	s->data_size = h->data_size;
	s->nidx = h->nidx;
	s->broker_pid = atomic_load_explicit(&h->broker_pid, memory_order_relaxed);
	s->broker_start_us = atomic_load_explicit(&h->broker_start_us, memory_order_relaxed);

	if (gpsctl_writer_lock_holder(name, &holder) == 0) {
		if (holder > 0) {
			s->state = BROKER_RUNNING;
			s->lock_pid = holder;
		} else {
			s->state = s->broker_pid ? BROKER_DEAD : BROKER_STOPPED;
		}
	} else if (s->broker_pid == 0) {
		s->state = BROKER_STOPPED;
	} else {
		/* no /proc/locks: a live pid is the best we can tell (it may have been reused) */
		bool alive = kill((pid_t)s->broker_pid, 0) == 0 || errno == EPERM;

		s->state = alive ? BROKER_UNKNOWN : BROKER_DEAD;
	}

	err = ring_stats_attach(name, false, &st);
	s->stats_refused = err == -EPERM;
	if (s->stats_refused)
		gpsctl_log_refusal(name); /* the rest of the status is still the ring's */
	if (err == 0) {
		s->has_stats = true;
		s->connections = atomic_load_explicit(&st->connections, memory_order_relaxed);
		s->subscribers = ring_stats_subscribers(st);
		s->received = atomic_load_explicit(&st->received, memory_order_relaxed);
		s->sent = atomic_load_explicit(&st->sent, memory_order_relaxed);
		s->cluster = atomic_load_explicit(&st->cluster, memory_order_relaxed);
		s->cluster_seq = atomic_load_explicit(&st->cluster_seq, memory_order_relaxed);
		s->cluster_lag = atomic_load_explicit(&st->cluster_lag, memory_order_relaxed);
		/* display only: copied and terminated, whatever the broker is writing */
		memcpy(s->cluster_server, st->cluster_server, sizeof(s->cluster_server));
		s->cluster_server[sizeof(s->cluster_server) - 1] = '\0';
		memcpy(s->cluster_stream, st->cluster_stream, sizeof(s->cluster_stream));
		s->cluster_stream[sizeof(s->cluster_stream) - 1] = '\0';
		ring_stats_detach(st);
	}
}

static const char *broker_state_text(const struct snapshot *s)
{
	switch (s->state) {
	case BROKER_RUNNING:
		return "running";
	case BROKER_STOPPED:
		return "stopped: shut down cleanly";
	case BROKER_DEAD:
		return "not running: no process holds the ring's writer lock";
	case BROKER_UNKNOWN:
	default:
		return "probably running: the pid is alive, /proc/locks unreadable";
	}
}

/* PROTOCOL 6.1 X-Uptime: seconds since the running broker started; 0 when none runs. */
static uint64_t uptime_s(const struct snapshot *s)
{
	if (s->state != BROKER_RUNNING && s->state != BROKER_UNKNOWN)
		return 0;
	if (!s->broker_start_us || s->now_us < s->broker_start_us)
		return 0;
	return (s->now_us - s->broker_start_us) / 1000000u;
}

/* ---- status and stats ------------------------------------------------------------------ */

static void print_line_time(const char *label, uint64_t us)
{
	char iso[48];

	gpsctl_format_iso(iso, sizeof(iso), us);
	if (us)
		printf("%-20s %s (%" PRIu64 ".%06" PRIu64 ")\n", label, iso, us / 1000000u,
		       us % 1000000u);
	else
		printf("%-20s -\n", label);
}

static void print_line_counter(const char *label, const struct snapshot *s, uint64_t v)
{
	if (s->has_stats)
		printf("%-20s %" PRIu64 "\n", label, v);
	else
		printf("%-20s - (no statistics object)\n", label);
}

int gpsctl_status(struct reader *rd)
{
	const struct ring *r = &rd->r;
	const char *name = rd->name;
	const struct options *o = rd->o;
	struct snapshot s;
	char file[PATH_MAX];

	take_snapshot(r, name, &s);
	if (gpsctl_ring_file(name, file, sizeof(file)) < 0)
		file[0] = '\0';
	if (o->json) {
		printf("{\"ring\": ");
		gpsctl_print_json_string(stdout, name, strlen(name));
		printf(", \"file\": ");
		gpsctl_print_json_string(stdout, file, strlen(file));
		printf(", \"version\": %u, \"generation\": %" PRIu64 ", \"created\": ",
		       r->hdr->version, s.generation);
		gpsctl_print_json_time(stdout, s.created_us);
		printf(", \"size\": %" PRIu64 ", \"index_entries\": %" PRIu64 ", \"head\": %" PRIu64
		       ", \"tail\": %" PRIu64 ", \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"oldest\": ",
		       s.data_size, s.nidx, s.head, s.tail, s.head - s.tail, s.bytes);
		gpsctl_print_json_time(stdout, s.oldest_us);
		printf(", \"newest\": ");
		gpsctl_print_json_time(stdout, s.newest_us);
		printf(", \"retention\": %" PRIu64 ", \"published\": %" PRIu64
		       ", \"broker\": {\"pid\": %" PRIu64 ", \"running\": %s, \"state\": \"%s\", "
		       "\"started\": ",
		       s.retention_us / 1000000u, s.published, s.broker_pid,
		       s.state == BROKER_RUNNING || s.state == BROKER_UNKNOWN ? "true" : "false",
		       s.state == BROKER_RUNNING   ? "running"
		       : s.state == BROKER_STOPPED ? "stopped"
		       : s.state == BROKER_DEAD	   ? "dead"
						   : "unknown");
		gpsctl_print_json_time(stdout, s.broker_start_us);
		printf(", \"uptime\": %" PRIu64 "}", uptime_s(&s));
		if (s.cluster) {
			printf(", \"cluster\": {\"connected\": %s, \"server\": ",
			       s.cluster == RING_CLUSTER_CONNECTED ? "true" : "false");
			gpsctl_print_json_string(stdout, s.cluster_server,
						 strlen(s.cluster_server));
			printf(", \"stream\": ");
			gpsctl_print_json_string(stdout, s.cluster_stream,
						 strlen(s.cluster_stream));
			printf(", \"stream_seq\": %" PRIu64 ", \"lag\": %" PRIu64 "}",
			       s.cluster_seq, s.cluster_lag);
		}
		if (s.has_stats)
			printf(", \"subscribers\": %" PRIu64 ", \"connections\": %" PRIu64
			       ", \"total_connections\": %" PRIu64 ", \"received\": %" PRIu64
			       ", \"sent\": %" PRIu64 "}\n",
			       s.subscribers, s.subscribers, s.connections, s.received, s.sent);
		else
			printf(", \"subscribers\": null, \"connections\": null, "
			       "\"total_connections\": null, \"received\": null, \"sent\": null}\n");
		return s.stats_refused ? 1 : 0;
	}
	printf("%-20s %s\n", "ring", name);
	printf("%-20s %s\n", "file", file);
	printf("%-20s %u\n", "version", r->hdr->version);
	printf("%-20s %" PRIu64 "\n", "generation", s.generation);
	print_line_time("created", s.created_us);
	printf("%-20s %" PRIu64 " bytes of messages, %" PRIu64 " index entries\n", "size",
	       s.data_size, s.nidx);
	printf("%-20s %" PRIu64 "\n", "messages held", s.head - s.tail);
	printf("%-20s %" PRIu64 "\n", "bytes held", s.bytes);
	print_line_time("oldest message", s.oldest_us);
	print_line_time("newest message", s.newest_us);
	printf("%-20s %" PRIu64 " (sequence of the next message)\n", "head", s.head);
	printf("%-20s %" PRIu64 "\n", "tail", s.tail);
	printf("%-20s %" PRIu64 " s\n", "retention", s.retention_us / 1000000u);
	printf("%-20s %" PRIu64 "\n", "published", s.published);
	if (s.state == BROKER_RUNNING && s.lock_pid != (pid_t)s.broker_pid)
		printf("%-20s %" PRIu64 " (running as pid %d)\n", "broker pid", s.broker_pid,
		       (int)s.lock_pid);
	else
		printf("%-20s %" PRIu64 " (%s)\n", "broker pid", s.broker_pid,
		       broker_state_text(&s));
	print_line_time("broker started", s.broker_start_us);
	printf("%-20s %" PRIu64 " s\n", "uptime", uptime_s(&s));
	print_line_counter("subscribers", &s, s.subscribers);
	print_line_counter("total connections", &s, s.connections);
	print_line_counter("received bytes", &s, s.received);
	print_line_counter("sent bytes", &s, s.sent);
	if (s.cluster) {
		printf("%-20s %s\n", "cluster",
		       s.cluster == RING_CLUSTER_CONNECTED ? "connected" : "NATS unreachable");
		printf("%-20s %s\n", "nats server", s.cluster_server[0] ? s.cluster_server : "-");
		printf("%-20s %s\n", "stream", s.cluster_stream);
		printf("%-20s %" PRIu64 " (last sequence seen)\n", "stream seq", s.cluster_seq);
		printf("%-20s %" PRIu64 " messages behind the stream\n", "ring lag", s.cluster_lag);
	}
	return s.stats_refused ? 1 : 0;
}

/* One Prometheus sample with its HELP and TYPE lines; the ring is the one label. */
static void prom_metric(const char *name, const char *type, const char *help, const char *ring,
			uint64_t value)
{
	printf("# HELP %s %s\n# TYPE %s %s\n%s{ring=\"", name, help, name, type, name);
	/* label values escape backslash, double quote and newline (the text format's rules) */
	for (const char *p = ring; *p; p++) {
		if (*p == '\\' || *p == '"')
			printf("\\%c", *p);
		else if (*p == '\n')
			printf("\\n");
		else
			putchar(*p);
	}
	printf("\"} %" PRIu64 "\n", value);
}

int gpsctl_stats(struct reader *rd)
{
	const struct ring *r = &rd->r;
	const char *name = rd->name;
	const struct options *o = rd->o;
	struct snapshot s;

	take_snapshot(r, name, &s);
	if (!s.has_stats) {
		log_error("unable to read the statistics object of ring '%s'", name);
		return 1;
	}
	if (o->prometheus) {
		prom_metric("gitpubsub_broker_up", "gauge",
			    "Whether a broker holds the ring's writer lock.", name,
			    s.state == BROKER_RUNNING || s.state == BROKER_UNKNOWN);
		prom_metric("gitpubsub_uptime_seconds", "gauge",
			    "Seconds since the running broker started (X-Uptime).", name,
			    uptime_s(&s));
		prom_metric("gitpubsub_subscribers", "gauge",
			    "Open subscription streams (X-Subscribers).", name, s.subscribers);
		prom_metric("gitpubsub_connections_total", "counter",
			    "Connections accepted (X-Total-Connections).", name, s.connections);
		prom_metric("gitpubsub_received_bytes_total", "counter",
			    "Bytes read from clients (X-Received).", name, s.received);
		prom_metric("gitpubsub_sent_bytes_total", "counter",
			    "Bytes written to clients (X-Sent).", name, s.sent);
		prom_metric("gitpubsub_published_messages_total", "counter",
			    "Messages stored since the ring was created.", name, s.published);
		prom_metric("gitpubsub_held_messages", "gauge",
			    "Messages held in the history ring.", name, s.head - s.tail);
		prom_metric("gitpubsub_held_bytes", "gauge",
			    "Bytes of messages held in the history ring.", name, s.bytes);
		prom_metric("gitpubsub_ring_size_bytes", "gauge",
			    "Size of the ring's message area.", name, s.data_size);
		prom_metric("gitpubsub_oldest_message_timestamp_seconds", "gauge",
			    "Publish time of the oldest held message; 0 if none.", name,
			    s.oldest_us / 1000000u);
		prom_metric("gitpubsub_newest_message_timestamp_seconds", "gauge",
			    "Publish time of the newest held message; 0 if none.", name,
			    s.newest_us / 1000000u);
		return 0;
	}
	if (o->json) {
		printf("{\"ring\": ");
		gpsctl_print_json_string(stdout, name, strlen(name));
		printf(", \"uptime\": %" PRIu64 ", \"connections\": %" PRIu64
		       ", \"subscribers\": %" PRIu64 ", \"total_connections\": %" PRIu64
		       ", \"received\": %" PRIu64 ", \"sent\": %" PRIu64 ", \"messages\": %" PRIu64
		       ", \"history_bytes\": %" PRIu64 ", \"oldest_message\": %" PRIu64 "}\n",
		       uptime_s(&s), s.subscribers, s.subscribers, s.connections, s.received,
		       s.sent, s.head - s.tail, s.bytes, s.oldest_us / 1000000u);
		return 0;
	}
	/* the names of the HEAD statistics headers (PROTOCOL 6.1), same values */
	printf("%-20s %" PRIu64 "\n", "X-Uptime", uptime_s(&s));
	printf("%-20s %" PRIu64 "\n", "X-Connections", s.subscribers);
	printf("%-20s %" PRIu64 "\n", "X-Subscribers", s.subscribers);
	printf("%-20s %" PRIu64 "\n", "X-Total-Connections", s.connections);
	printf("%-20s %" PRIu64 "\n", "X-Received", s.received);
	printf("%-20s %" PRIu64 "\n", "X-Sent", s.sent);
	printf("%-20s %" PRIu64 "\n", "X-Messages", s.head - s.tail);
	printf("%-20s %" PRIu64 "\n", "X-History-Bytes", s.bytes);
	printf("%-20s %" PRIu64 "\n", "X-Oldest-Message", s.oldest_us / 1000000u);
	return 0;
}
