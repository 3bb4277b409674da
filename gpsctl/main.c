/* SPDX-License-Identifier: MIT */
/*
 * gpsctl: a read-only inspector of the history ring, for operators and scripts.
 *
 * It opens the ring O_RDONLY and maps it PROT_READ, exactly as a frontend does (shm/ring.h,
 * section 1), so nothing it does can change history or slow the broker down: it never takes a
 * lock, and every record it reads goes through the reader protocol of shm/ring.h section 5
 * (seqlocked index entry, copy, then ring_rec_valid()). The statistics object is mapped
 * read-only too.
 *
 * Commands: status, stats, check, dump, tail, topics. Human-readable output by default, --json
 * for scripts. Exit status: 0 success, 1 runtime failure (no ring, invalid ring, check failed),
 * 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/io.h"
#include "common/log.h"
#include "shm/ring.h"
#include "shm/topic.h"

#define GPSCTL_VERSION "1.0.0"

/* Where POSIX shared-memory objects live on Linux: shm_open("/x") is the file /dev/shm/x. */
#define SHM_DIR "/dev/shm"

/* The runtime directory's file naming the current broker (gitpubsub-run writes it). */
#define RUNTIME_PID_FILE "broker.pid"

/* tail: longest sleep on the ring's futex before looking at signals and at a replaced ring. */
#define TAIL_WAIT_MS 1000u

/* tail: pause between attempts to re-attach a ring that was replaced or removed. */
#define REATTACH_RETRY_MS 200u

/* check: passes over a ring that keeps changing before the problems seen are reported anyway.
 * A pass over a 64 MiB ring takes milliseconds, so a quiet moment comes soon on any ring
 * that is not published to continuously. */
#define CHECK_TRIES 5

/* check: problems listed one by one; past this only their number is given. */
#define CHECK_MAX_LISTED 100

/* Reads of the oldest held message retried while a fast writer evicts it under us. */
#define OLDEST_TRIES 16

/* Longest topic as a path: every stored byte may become a %XX escape. */
#define TOPIC_PATH_MAX (3u * TOPIC_MAX_BYTES + 2u)

enum command {
	CMD_STATUS,
	CMD_STATS,
	CMD_CHECK,
	CMD_DUMP,
	CMD_TAIL,
	CMD_TOPICS,
};

static const char *const command_names[] = {
	[CMD_STATUS] = "status", [CMD_STATS] = "stats", [CMD_CHECK] = "check",
	[CMD_DUMP] = "dump",	 [CMD_TAIL] = "tail",	[CMD_TOPICS] = "topics",
};

struct options {
	const char *config_path;
	const char *ring_name;
	const char *runtime_dir;
	bool json;
	bool show_topic;
	bool prometheus;
	bool has_since, has_until, has_count;
	uint64_t since_us, until_us, count;
	const char *topic;
};

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
	uint64_t connections, subscribers, received, sent;
	/* cluster mode (shm/ring.h section 8), from the statistics object */
	uint64_t cluster, cluster_seq, cluster_lag;
	char cluster_server[sizeof(((struct ring_stats *)NULL)->cluster_server)];
	char cluster_stream[sizeof(((struct ring_stats *)NULL)->cluster_stream)];
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpsctl [OPTIONS] COMMAND [TOPIC]\n"
		"\n"
		"Inspect a GitPubSub history ring, read-only.\n"
		"\n"
		"Commands:\n"
		"  status            ring, size, messages and bytes held, oldest and newest message,\n"
		"                    head, generation, broker pid and whether it runs, subscribers,\n"
		"                    and the counters of PROTOCOL 6\n"
		"  stats             the counters of PROTOCOL 6 (--prometheus: Prometheus text format)\n"
		"  check             validate the header, the index and every held record;\n"
		"                    exit 1 and say what is wrong if anything is\n"
		"  dump [TOPIC]      print the held messages matching TOPIC, one JSON text a line\n"
		"  tail [TOPIC]      follow the ring like a subscriber to TOPIC (Ctrl-C stops)\n"
		"  topics [TOPIC]    messages and bytes per topic over the held history, busiest first\n"
		"\n"
		"TOPIC is a subscription path with the server's matching rules (default \"/\": all).\n"
		"\n"
		"Options:\n"
		"  -r, --ring NAME        ring to inspect (default: [History] ring of the configuration,\n"
		"                         " CONFIG_DEFAULT_RING ")\n"
		"  -d, --runtime-dir DIR  inspect the ring written by the broker whose pid is in\n"
		"                         DIR/" RUNTIME_PID_FILE " (a gitpubsub-run instance)\n"
		"  -c, --config FILE      configuration file (default " CONFIG_DEFAULT_PATH ")\n"
		"  -j, --json             JSON output (tail and dump: one object per message)\n"
		"      --since TIME       dump, tail, topics: from the first message at or after TIME\n"
		"      --until TIME       dump, topics: stop before the first message at or after TIME\n"
		"  -t, --topic            dump, tail: prefix each message with its time and topic\n"
		"  -n, --count N          dump, tail: exit after N messages\n"
		"      --prometheus       stats: Prometheus text exposition format\n"
		"  -h, --help             this text\n"
		"  -V, --version          the version\n"
		"\n"
		"TIME is a unix time (1795700000 or 1795700000.250000, as X-Fetch-Since), a UTC time\n"
		"(2026-11-26T16:27:06Z, a fraction allowed), 'now', or a duration before now (-10m, -2h).\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure (no ring, invalid ring, a failed check),\n"
		"2 usage error.\n");
}

/* ---- small helpers --------------------------------------------------------------------- */

/* Print a time in microseconds as the protocol does: seconds with exactly 6 decimals. */
static void print_unix_us(FILE *f, uint64_t us)
{
	fprintf(f, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

/* "2026-11-26T16:27:06.563379Z"; "-" for 0 (no such time). */
static void format_iso(char *buf, size_t len, uint64_t us)
{
	time_t s = (time_t)(us / 1000000u);
	struct tm tm;
	char date[32];

	if (us == 0 || !gmtime_r(&s, &tm) ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		(void)snprintf(buf, len, "-");
		return;
	}
	(void)snprintf(buf, len, "%s.%06" PRIu64 "Z", date, us % 1000000u);
}

/* A JSON string for bytes[0..len): quotes, backslashes and control bytes escaped. The bytes
 * are ours (ring and topic names) or stored topics, which hold no control bytes (PROTOCOL
 * 2.5), and are passed through otherwise. */
static void print_json_string(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* A JSON number for a time, or null when there is none. */
static void print_json_time(FILE *f, uint64_t us)
{
	if (us)
		print_unix_us(f, us);
	else
		fputs("null", f);
}

/*
 * Parse TIME (see usage()) into microseconds since the epoch: 0 or -EINVAL. Plain decimals
 * follow X-Fetch-Since (PROTOCOL 3.5): digits, optionally a dot and up to 6 more digits.
 */
_must_check_ static int parse_time(const char *s, uint64_t *ret_us)
{
	uint64_t now = io_now_real_us();

	if (strcmp(s, "now") == 0) {
		*ret_us = now;
		return 0;
	}
	if (s[0] == '-') {
		uint64_t ms;

		if (config_parse_duration_ms(s + 1, &ms) < 0 || ms > now / 1000u)
			return -EINVAL;
		*ret_us = now - ms * 1000u;
		return 0;
	}
	if (strchr(s, 'T')) {
		struct tm tm = { 0 };
		const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
		uint64_t frac = 0, scale = 100000u;
		time_t t;

		if (!p)
			return -EINVAL;
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			for (; *p >= '0' && *p <= '9'; p++) {
				if (scale == 0)
					return -EINVAL; /* finer than a microsecond */
				frac += (uint64_t)(*p - '0') * scale;
				scale /= 10u;
			}
		}
		if (strcmp(p, "Z") != 0)
			return -EINVAL; /* only UTC: a local time would depend on TZ */
		t = timegm(&tm);
		if (t < 0)
			return -EINVAL;
		*ret_us = (uint64_t)t * 1000000u + frac;
		return 0;
	}
	{
		uint64_t secs = 0, frac = 0, scale = 100000u;
		const char *p = s;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (secs > (UINT64_MAX / 1000000u - 9u) / 10u)
				return -EINVAL;
			secs = secs * 10u + (uint64_t)(*p - '0');
		}
		if (*p == '.') {
			p++;
			for (; *p >= '0' && *p <= '9'; p++) {
				/* digits past microseconds are dropped: the ring keeps no finer time */
				frac += (uint64_t)(*p - '0') * scale;
				scale /= 10u;
			}
		}
		if (*p)
			return -EINVAL;
		*ret_us = secs * 1000000u + frac;
		return 0;
	}
}

/* "/dev/shm/<name without its slash>" into buf; 0 or -ENAMETOOLONG. */
_must_check_ static int ring_file(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, SHM_DIR "/%s", name[0] == '/' ? name + 1 : name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * The pid holding flock(LOCK_EX) on ring 'name' (the broker holds it while it runs: shm/ring.h
 * section 1), read from /proc/locks so that nothing is locked or probed: *ret_pid is 0 if no
 * process holds it. 0, or -errno if the ring or /proc/locks cannot be read.
 */
_must_check_ static int writer_lock_holder(const char *name, pid_t *ret_pid)
{
	char path[PATH_MAX], line[256];
	struct stat st;
	pid_t found = 0;
	FILE *f;
	int err;

	err = ring_file(name, path, sizeof(path));
	if (err < 0)
		return err;
	if (stat(path, &st) < 0)
		return -errno;
	f = fopen("/proc/locks", "re");
	if (!f)
		return -errno;
	/* "1: FLOCK  ADVISORY  WRITE 27250 00:19:1234 0 EOF"; waiters read "1: -> FLOCK ..." */
	while (fgets(line, sizeof(line), f)) {
		char *tok[6], *save = NULL, *end;
		unsigned long maj, min, ino;
		long pid;
		size_t n = 0;

		for (char *t = strtok_r(line, " \t\n", &save); t && n < ARRAY_SIZE(tok);
		     t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		if (n < ARRAY_SIZE(tok) || strcmp(tok[1], "FLOCK") != 0 ||
		    strcmp(tok[3], "WRITE") != 0)
			continue;
		errno = 0;
		pid = strtol(tok[4], &end, 10);
		if (errno || *end || pid <= 0)
			continue;
		maj = strtoul(tok[5], &end, 16);
		if (*end != ':')
			continue;
		min = strtoul(end + 1, &end, 16);
		if (*end != ':')
			continue;
		ino = strtoul(end + 1, &end, 10);
		if (errno || *end)
			continue;
		if (makedev((unsigned int)maj, (unsigned int)min) == st.st_dev &&
		    (ino_t)ino == st.st_ino) {
			found = (pid_t)pid;
			break;
		}
	}
	(void)fclose(f);
	*ret_pid = found;
	return 0;
}

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

	if (writer_lock_holder(name, &holder) == 0) {
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

	if (ring_stats_attach(name, false, &st) == 0) {
		s->has_stats = true;
		s->connections = atomic_load_explicit(&st->connections, memory_order_relaxed);
		s->subscribers = atomic_load_explicit(&st->subscribers, memory_order_relaxed);
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

	format_iso(iso, sizeof(iso), us);
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

static int cmd_status(const struct ring *r, const char *name, const struct options *o)
{
	struct snapshot s;
	char file[PATH_MAX];

	take_snapshot(r, name, &s);
	if (ring_file(name, file, sizeof(file)) < 0)
		file[0] = '\0';
	if (o->json) {
		printf("{\"ring\": ");
		print_json_string(stdout, name, strlen(name));
		printf(", \"file\": ");
		print_json_string(stdout, file, strlen(file));
		printf(", \"version\": %u, \"generation\": %" PRIu64 ", \"created\": ",
		       r->hdr->version, s.generation);
		print_json_time(stdout, s.created_us);
		printf(", \"size\": %" PRIu64 ", \"index_entries\": %" PRIu64 ", \"head\": %" PRIu64
		       ", \"tail\": %" PRIu64 ", \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
		       ", \"oldest\": ",
		       s.data_size, s.nidx, s.head, s.tail, s.head - s.tail, s.bytes);
		print_json_time(stdout, s.oldest_us);
		printf(", \"newest\": ");
		print_json_time(stdout, s.newest_us);
		printf(", \"retention\": %" PRIu64 ", \"published\": %" PRIu64
		       ", \"broker\": {\"pid\": %" PRIu64 ", \"running\": %s, \"state\": \"%s\", "
		       "\"started\": ",
		       s.retention_us / 1000000u, s.published, s.broker_pid,
		       s.state == BROKER_RUNNING || s.state == BROKER_UNKNOWN ? "true" : "false",
		       s.state == BROKER_RUNNING   ? "running"
		       : s.state == BROKER_STOPPED ? "stopped"
		       : s.state == BROKER_DEAD	   ? "dead"
						   : "unknown");
		print_json_time(stdout, s.broker_start_us);
		printf(", \"uptime\": %" PRIu64 "}", uptime_s(&s));
		if (s.cluster) {
			printf(", \"cluster\": {\"connected\": %s, \"server\": ",
			       s.cluster == RING_CLUSTER_CONNECTED ? "true" : "false");
			print_json_string(stdout, s.cluster_server, strlen(s.cluster_server));
			printf(", \"stream\": ");
			print_json_string(stdout, s.cluster_stream, strlen(s.cluster_stream));
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
		return 0;
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
	return 0;
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

static int cmd_stats(const struct ring *r, const char *name, const struct options *o)
{
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
		print_json_string(stdout, name, strlen(name));
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

/* ---- reading messages: dump, tail, topics ---------------------------------------------- */

struct reader {
	struct ring r;
	const char *name;
	const struct options *o;
	const struct topic_pattern *pat;
	uint64_t next;	  /* seq to read next */
	uint64_t printed; /* messages printed (gap notices not counted) */
	bool gaps_to_log; /* topics: a gap is a warning, not a line of the table */
	uint8_t *buf;	  /* the copy of the current record: topic then payload */
	size_t cap;
};

/*
 * Copy message seq into rd->buf through the reader protocol (shm/ring.h section 5). 0 and *rec
 * filled; -EAGAIN not published yet; -ESTALE gone (evicted, or the copy may be torn); -ENOMEM.
 */
_must_check_ static int reader_copy(struct reader *rd, uint64_t seq, struct ring_rec *rec)
{
	size_t len;
	int err = ring_rec_get(&rd->r, seq, rec);

	if (err < 0)
		return err;
	len = (size_t)rec->topic_len + rec->payload_len;
	if (len > rd->cap) {
		uint8_t *p = realloc(rd->buf, len);

		if (!p)
			return -ENOMEM;
		rd->buf = p;
		rd->cap = len;
	}
	/* topic and payload are adjacent in the ring: one copy */
	ring_copy_from(rd->buf, rec->topic, len);
	if (!ring_rec_valid(&rd->r, rec))
		return -ESTALE;
	return 0;
}

/* Time to put in a gap notice: the next message's, or a valid resume point if none is held. */
static uint64_t resume_time(const struct reader *rd, uint64_t seq)
{
	struct ring_rec rec;
	uint64_t t, head;

	if (ring_rec_get(&rd->r, seq, &rec) == 0)
		return rec.time_us;
	if (ring_keepalive_time(&rd->r, &t, &head) == 0)
		return t;
	return io_now_real_us();
}

/* PROTOCOL 3.4's gap notice, as a subscriber would get it. */
static void print_gap(struct reader *rd, uint64_t missed, uint64_t resume_seq)
{
	if (!rd->gaps_to_log) {
		printf("{\"gap\": {\"missed\": %" PRIu64 ", \"resume\": ", missed);
		print_unix_us(stdout, resume_time(rd, resume_seq));
		printf("}}\n");
	}
	log_warning("lapped by the writer: %" PRIu64 " messages missed", missed);
}

/* The reader's seq is gone: move to the tail and say what was missed (as a frontend does). */
static void reader_lapped(struct reader *rd)
{
	uint64_t tail = ring_tail(&rd->r);

	if (tail <= rd->next) {
		/* an entry that does not hold its seq although not evicted: skip it, loudly */
		log_warning("message %" PRIu64 " is unreadable, skipping it", rd->next);
		print_gap(rd, 1, rd->next + 1);
		rd->next++;
		return;
	}
	print_gap(rd, tail - rd->next, tail);
	rd->next = tail;
}

static void print_message(struct reader *rd, const struct ring_rec *rec)
{
	static char path[TOPIC_PATH_MAX];
	const uint8_t *payload = rd->buf + rec->topic_len;

	(void)topic_format(rd->buf, rec->topic_len, path, sizeof(path));
	if (rd->o->json) {
		printf("{\"seq\": %" PRIu64 ", \"time\": ", rec->seq);
		print_unix_us(stdout, rec->time_us);
		printf(", \"topic\": ");
		print_json_string(stdout, path, strlen(path));
		printf(", \"message\": ");
		fwrite(payload, 1, rec->payload_len, stdout);
		printf("}\n");
	} else {
		if (rd->o->show_topic) {
			print_unix_us(stdout, rec->time_us);
			printf(" %s ", path);
		}
		fwrite(payload, 1, rec->payload_len, stdout);
		putchar('\n');
	}
	rd->printed++;
}

/*
 * The first seq to read for --since (PROTOCOL 3.5 semantics: time >= since), with the gap notice
 * a subscriber would get if messages at or after since were evicted. 0 or -errno.
 */
_must_check_ static int reader_seek(struct reader *rd, uint64_t since_us)
{
	uint64_t first, lo, tail, evicted;
	int err = -EAGAIN;

	for (int i = 0; i < OLDEST_TRIES && err == -EAGAIN; i++)
		err = ring_find_time(&rd->r, since_us, &first, &lo);
	if (err < 0)
		return err;
	tail = ring_tail(&rd->r);
	evicted = atomic_load_explicit(&rd->r.hdr->evicted_time_us, memory_order_relaxed);
	rd->next = MAX(first, tail);
	if (evicted && evicted >= since_us)
		print_gap(rd, first < tail ? tail - first : 1, rd->next);
	return 0;
}

/* Whether the wanted number of messages has been printed (--count). */
static bool reader_done(const struct reader *rd)
{
	return rd->o->has_count && rd->printed >= rd->o->count;
}

/*
 * Print every matching message from rd->next up to (not including) seq end, or up to the first
 * at or after --until. Returns 1 once --until or --count is reached, 0 when end (or the head) is
 * reached, -errno on failure.
 */
_must_check_ static int reader_drain(struct reader *rd, uint64_t end)
{
	while (rd->next < end && !stop_requested) {
		struct ring_rec rec;
		int err = reader_copy(rd, rd->next, &rec);

		if (err == -EAGAIN)
			return 0;
		if (err == -ESTALE) {
			reader_lapped(rd);
			continue;
		}
		if (err < 0)
			return err;
		if (rd->o->has_until && rec.time_us >= rd->o->until_us)
			return 1;
		rd->next++;
		if (!topic_match(rd->pat, rd->buf, rec.topic_len))
			continue;
		print_message(rd, &rec);
		if (reader_done(rd))
			return 1;
	}
	return 0;
}

static int cmd_dump(struct reader *rd)
{
	uint64_t end = ring_head(&rd->r); /* the history held now; later messages are tail's */
	int err;

	if (rd->o->has_count && rd->o->count == 0)
		return 0;
	rd->next = ring_tail(&rd->r);
	if (rd->o->has_since) {
		err = reader_seek(rd, rd->o->since_us);
		if (err < 0) {
			log_error("unable to find time in ring '%s': %s", rd->name, strerror(-err));
			return 1;
		}
	}
	err = reader_drain(rd, end);
	if (err < 0) {
		log_error("unable to read ring '%s': %s", rd->name, strerror(-err));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The ring was replaced (shm/ring.h section 6) or removed: attach its successor by name. */
_must_check_ static int reader_reattach(struct reader *rd)
{
	struct ring fresh;

	ring_detach(&rd->r);
	while (!stop_requested) {
		if (ring_attach(rd->name, &fresh) == 0 && !ring_closed(&fresh)) {
			rd->r = fresh;
			rd->next = ring_tail(&rd->r);
			log_notice("ring '%s' was replaced; following the new one", rd->name);
			return 0;
		}
		if (fresh.hdr)
			ring_detach(&fresh);
		(void)usleep(REATTACH_RETRY_MS * 1000u);
	}
	return -EINTR;
}

static int cmd_tail(struct reader *rd)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };
	int err;

	/* no SA_RESTART: the futex wait returns at once on Ctrl-C */
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);

	if (rd->o->has_count && rd->o->count == 0)
		return 0;
	rd->next = ring_head(&rd->r);
	if (rd->o->has_since) {
		err = reader_seek(rd, rd->o->since_us);
		if (err < 0) {
			log_error("unable to find time in ring '%s': %s", rd->name, strerror(-err));
			return 1;
		}
	}
	while (!stop_requested) {
		uint32_t w = ring_wake_word(&rd->r);

		err = reader_drain(rd, UINT64_MAX);
		if (fflush(stdout) != 0)
			return 1;
		if (err < 0) {
			log_error("unable to read ring '%s': %s", rd->name, strerror(-err));
			return 1;
		}
		if (err > 0)
			return 0;
		if (rd->next < ring_head(&rd->r))
			continue;
		if (ring_closed(&rd->r)) {
			if (reader_reattach(rd) < 0)
				break;
			continue;
		}
		err = ring_wait(&rd->r, w, TAIL_WAIT_MS);
		if (err < 0)
			(void)usleep(TAIL_WAIT_MS * 1000u); /* futex unusable: poll gently */
	}
	return 0;
}

struct topic_row {
	uint8_t *topic; /* stored form, caller frees */
	uint32_t len;
	uint64_t messages;
	uint64_t bytes;
};

static int cmp_stored(const struct topic_row *a, const struct topic_row *b)
{
	int c = memcmp(a->topic, b->topic, MIN(a->len, b->len));

	if (c)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

static int cmp_by_topic(const void *pa, const void *pb)
{
	return cmp_stored(pa, pb);
}

/* Busiest first: messages, then bytes, then the topic, so the order is stable for scripts. */
static int cmp_by_load(const void *pa, const void *pb)
{
	const struct topic_row *a = pa, *b = pb;

	if (a->messages != b->messages)
		return a->messages > b->messages ? -1 : 1;
	if (a->bytes != b->bytes)
		return a->bytes > b->bytes ? -1 : 1;
	return cmp_stored(a, b);
}

static int cmd_topics(struct reader *rd)
{
	static char path[TOPIC_PATH_MAX];
	struct topic_row *rows = NULL;
	size_t n = 0, cap = 0, m = 0;
	uint64_t end = ring_head(&rd->r);
	int rc = 1;

	rd->gaps_to_log = true;
	rd->next = ring_tail(&rd->r);
	if (rd->o->has_since && reader_seek(rd, rd->o->since_us) < 0) {
		log_error("unable to find time in ring '%s'", rd->name);
		return 1;
	}
	while (rd->next < end) {
		struct ring_rec rec;
		int err = reader_copy(rd, rd->next, &rec);

		if (err == -EAGAIN)
			break;
		if (err == -ESTALE) {
			reader_lapped(rd);
			continue;
		}
		if (err < 0)
			goto out_free;
		if (rd->o->has_until && rec.time_us >= rd->o->until_us)
			break;
		rd->next++;
		if (!topic_match(rd->pat, rd->buf, rec.topic_len))
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 256;
			struct topic_row *p = realloc(rows, ncap * sizeof(*rows));

			if (!p)
				goto out_free;
			rows = p;
			cap = ncap;
		}
		rows[n].topic = malloc(rec.topic_len ? rec.topic_len : 1u);
		if (!rows[n].topic)
			goto out_free;
		memcpy(rows[n].topic, rd->buf, rec.topic_len);
		rows[n].len = rec.topic_len;
		rows[n].messages = 1;
		rows[n].bytes = rec.payload_len;
		n++;
	}
	/* O(n log n) in held messages: a few hundred thousand at most, fine for a command */
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_by_topic);
	for (size_t i = 0; i < n; i++) {
		if (m && cmp_stored(&rows[m - 1], &rows[i]) == 0) {
			rows[m - 1].messages++;
			rows[m - 1].bytes += rows[i].bytes;
			free(rows[i].topic);
			continue;
		}
		rows[m++] = rows[i];
	}
	n = m;
	if (n)
		qsort(rows, n, sizeof(*rows), cmp_by_load);
	if (rd->o->json)
		putchar('[');
	else
		printf("%10s %12s  %s\n", "MESSAGES", "BYTES", "TOPIC");
	for (size_t i = 0; i < n; i++) {
		(void)topic_format(rows[i].topic, rows[i].len, path, sizeof(path));
		if (rd->o->json) {
			printf("%s{\"topic\": ", i ? ", " : "");
			print_json_string(stdout, path, strlen(path));
			printf(", \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64 "}",
			       rows[i].messages, rows[i].bytes);
		} else {
			printf("%10" PRIu64 " %12" PRIu64 "  %s\n", rows[i].messages, rows[i].bytes,
			       path);
		}
	}
	if (rd->o->json)
		printf("]\n");
	rc = fflush(stdout) == 0 ? 0 : 1;

out_free:
	if (rc)
		log_error("unable to list the topics of ring '%s': out of memory", rd->name);
	for (size_t i = 0; i < n; i++)
		free(rows[i].topic);
	free(rows);
	return rc;
}

/* ---- check ----------------------------------------------------------------------------- */

struct problems {
	char *list[CHECK_MAX_LISTED];
	size_t n; /* problems found, listed or not */
};

static void problems_clear(struct problems *p)
{
	for (size_t i = 0; i < MIN(p->n, (size_t)CHECK_MAX_LISTED); i++)
		free(p->list[i]);
	p->n = 0;
}

_printf_(2, 3) static void problem(struct problems *p, const char *fmt, ...)
{
	if (p->n < CHECK_MAX_LISTED) {
		char buf[512];
		va_list ap;

		va_start(ap, fmt);
		(void)vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		p->list[p->n] = strdup(buf); /* NULL on OOM: printed as such, still counted */
	}
	p->n++;
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* The creation constants, one by one, so that check can say which is wrong (ring_validate()
 * only says -EPROTO). */
static void check_header(const struct ring_hdr *h, size_t map_size, struct problems *p)
{
	uint32_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);

	if (magic != RING_MAGIC) {
		problem(p, "header: magic is 0x%08x, not 0x%08x: not a GitPubSub ring", magic,
			RING_MAGIC);
		return; /* nothing else in it means anything */
	}
	if (h->version != RING_VERSION)
		problem(p, "header: version %u, this gpsctl reads version %u", h->version,
			RING_VERSION);
	if (h->layout != RING_LAYOUT)
		problem(p, "header: layout digest 0x%08x, this build's is 0x%08x", h->layout,
			RING_LAYOUT);
	if (h->hdr_size != RING_HDR_SIZE)
		problem(p, "header: hdr_size %u, expected %u", h->hdr_size, RING_HDR_SIZE);
	if (!is_pow2(h->nidx) || h->nidx > RING_MAX_DATA / sizeof(struct ring_idx))
		problem(p, "header: nidx %" PRIu64 " is not a power of two in range", h->nidx);
	if (!is_pow2(h->data_size) || h->data_size < RING_MIN_DATA || h->data_size > RING_MAX_DATA)
		problem(p,
			"header: data_size %" PRIu64 " is not a power of two in [%" PRIu64
			", %" PRIu64 "]",
			h->data_size, RING_MIN_DATA, RING_MAX_DATA);
	if (p->n == 0 &&
	    (uint64_t)map_size != RING_HDR_SIZE + h->nidx * sizeof(struct ring_idx) + h->data_size)
		problem(p, "header: the object is %zu bytes, the header describes %" PRIu64,
			map_size, RING_HDR_SIZE + h->nidx * sizeof(struct ring_idx) + h->data_size);
	if (p->n == 0 && ring_validate(h, map_size) < 0)
		problem(p, "header: refused by ring_validate()");
}

/* Whether the payload is one line with no control byte: what the broker stores (PROTOCOL 4.3:
 * CR, LF and TAB outside strings become spaces; inside strings JSON allows no raw control). */
static bool payload_one_line(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] < 0x20)
			return false;
	return true;
}

/* One pass over the counters, every index entry and every held record. */
static void check_pass(struct reader *rd, struct problems *p, uint64_t *ret_checked)
{
	const struct ring *r = &rd->r;
	const struct ring_hdr *h = r->hdr;
	uint64_t head = ring_head(r), tail = ring_tail(r);
	uint64_t data_head = atomic_load_explicit(&h->data_head, memory_order_acquire);
	uint64_t data_tail = atomic_load_explicit(&h->data_tail, memory_order_acquire);
	uint64_t last_time = atomic_load_explicit(&h->last_time_us, memory_order_acquire);
	uint64_t evicted = atomic_load_explicit(&h->evicted_time_us, memory_order_acquire);
	uint64_t prev_time = 0, prev_end = 0, checked = 0;
	uint64_t lo;

	if (atomic_load_explicit(&h->closed, memory_order_acquire))
		problem(p, "ring: closed (replaced by a recreate; no longer written)");
	if (head == 0)
		problem(p, "counters: head is 0; sequences start at 1");
	if (tail > head)
		problem(p, "counters: tail %" PRIu64 " is above head %" PRIu64, tail, head);
	else if (head - tail > r->nidx)
		problem(p,
			"counters: %" PRIu64 " messages held, more than the %" PRIu64
			" index entries",
			head - tail, r->nidx);
	if (data_tail > data_head)
		problem(p, "counters: data_tail %" PRIu64 " is above data_head %" PRIu64, data_tail,
			data_head);
	else if (data_head - data_tail > r->data_size)
		problem(p, "counters: %" PRIu64 " bytes held, more than the data area's %" PRIu64,
			data_head - data_tail, r->data_size);
	if (p->n)
		return; /* the walks below trust these */

	/* The index: every entry is unused (seq 0) or holds a seq that maps to it, below head. */
	for (uint64_t i = 0; i < r->nidx; i++) {
		uint64_t seq = atomic_load_explicit(&r->idx[i].seq, memory_order_acquire);

		if (seq == 0)
			continue;
		if ((seq & r->idx_mask) != i)
			problem(p,
				"index: entry %" PRIu64 " holds seq %" PRIu64
				", which belongs in entry %" PRIu64,
				i, seq, seq & r->idx_mask);
		else if (seq > head)
			problem(p,
				"index: entry %" PRIu64 " holds seq %" PRIu64
				", beyond head %" PRIu64,
				i, seq, head);
	}

	/* Entries still readable, evicted ones included: times strictly increase (the time
	 * search of ring_find_time() relies on it). */
	lo = head > r->nidx ? head - r->nidx + 1 : 1;
	for (uint64_t seq = lo; seq < head; seq++) {
		const struct ring_idx *e = &r->idx[seq & r->idx_mask];
		uint64_t t;

		if (atomic_load_explicit(&e->seq, memory_order_acquire) != seq)
			continue; /* never written (a young ring) or being rewritten */
		t = atomic_load_explicit(&e->time_us, memory_order_relaxed);
		if (prev_time && t <= prev_time)
			problem(p,
				"index: seq %" PRIu64 " has time %" PRIu64 ".%06" PRIu64
				", not after the previous message's %" PRIu64 ".%06" PRIu64,
				seq, t / 1000000u, t % 1000000u, prev_time / 1000000u,
				prev_time % 1000000u);
		prev_time = t;
	}

	/* Every held record: where it is, how big, what it holds. */
	prev_time = 0;
	for (uint64_t seq = tail; seq < head; seq++) {
		struct ring_rec rec;
		uint64_t off, end;
		int err = reader_copy(rd, seq, &rec);

		if (err == -ESTALE && seq < ring_tail(r))
			continue; /* evicted while we looked: not a problem */
		if (err == -EAGAIN)
			break;
		if (err == -ENOMEM) {
			problem(p, "seq %" PRIu64 ": out of memory copying the record", seq);
			break;
		}
		if (err < 0) {
			const struct ring_idx *e = &r->idx[seq & r->idx_mask];

			problem(p,
				"seq %" PRIu64 ": index entry holds seq %" PRIu64
				" (or the record lies outside the data area)",
				seq, atomic_load_explicit(&e->seq, memory_order_relaxed));
			continue;
		}
		checked++;
		off = rec.pos & r->data_mask;
		end = rec.pos + ALIGN_UP(ring_rec_len(&rec), (uint64_t)8);
		if (rec.pos % 8u)
			problem(p, "seq %" PRIu64 ": position %" PRIu64 " is not 8-byte aligned",
				seq, rec.pos);
		if (rec.pos < data_tail || end > data_head)
			problem(p,
				"seq %" PRIu64 ": bytes [%" PRIu64 ", %" PRIu64
				") outside the held area [%" PRIu64 ", %" PRIu64 ")",
				seq, rec.pos, end, data_tail, data_head);
		if (seq == tail && rec.pos != data_tail)
			problem(p,
				"seq %" PRIu64 ": the oldest record starts at %" PRIu64
				", data_tail says %" PRIu64,
				seq, rec.pos, data_tail);
		if (seq + 1 == head && end != data_head)
			problem(p,
				"seq %" PRIu64 ": the newest record ends at %" PRIu64
				", data_head says %" PRIu64,
				seq, end, data_head);
		if (prev_end && rec.pos < prev_end)
			problem(p,
				"seq %" PRIu64 ": starts at %" PRIu64
				", inside the previous record (ends at %" PRIu64 ")",
				seq, rec.pos, prev_end);
		if (ring_rec_len(&rec) > RING_MAX_RECORD(r->data_size))
			problem(p,
				"seq %" PRIu64 ": %" PRIu64
				" bytes, over the record limit %" PRIu64,
				seq, ring_rec_len(&rec), RING_MAX_RECORD(r->data_size));
		if (off + ring_rec_len(&rec) > r->data_size)
			problem(p, "seq %" PRIu64 ": wraps around the end of the data area", seq);
		if (prev_time && rec.time_us <= prev_time)
			problem(p, "seq %" PRIu64 ": time does not increase", seq);
		if (rec.time_us > last_time)
			problem(p, "seq %" PRIu64 ": time is after last_time", seq);
		if (seq + 1 == head && rec.time_us != last_time)
			problem(p,
				"seq %" PRIu64 ": the newest message's time differs from last_time",
				seq);
		if (seq == tail && evicted && rec.time_us <= evicted)
			problem(p,
				"seq %" PRIu64 ": the oldest held message is not newer than the "
				"newest evicted one",
				seq);
		if (!topic_stored_valid(rd->buf, rec.topic_len))
			problem(p, "seq %" PRIu64 ": invalid stored topic", seq);
		if (rec.payload_len == 0)
			problem(p, "seq %" PRIu64 ": empty payload", seq);
		else if (!payload_one_line(rd->buf + rec.topic_len, rec.payload_len))
			problem(p,
				"seq %" PRIu64 ": payload holds a control byte (CR, LF, NUL, ...)",
				seq);
		prev_time = rec.time_us;
		prev_end = end;
	}
	*ret_checked = checked;
}

static void print_check_result(const struct problems *p, const char *name, uint64_t checked,
			       const struct options *o)
{
	if (o->json) {
		printf("{\"ring\": ");
		print_json_string(stdout, name, strlen(name));
		printf(", \"ok\": %s, \"checked\": %" PRIu64 ", \"problems\": %zu, \"list\": [",
		       p->n ? "false" : "true", checked, p->n);
		for (size_t i = 0; i < p->n && i < CHECK_MAX_LISTED; i++) {
			const char *text = p->list[i] ? p->list[i] : "(out of memory)";

			if (i)
				printf(", ");
			print_json_string(stdout, text, strlen(text));
		}
		printf("]}\n");
		return;
	}
	for (size_t i = 0; i < p->n && i < CHECK_MAX_LISTED; i++)
		printf("%s\n", p->list[i] ? p->list[i] : "(out of memory)");
	if (p->n > CHECK_MAX_LISTED)
		printf("... and %zu more problems\n", p->n - CHECK_MAX_LISTED);
	if (p->n)
		printf("BAD: ring '%s': %zu problem%s, %" PRIu64 " messages checked\n", name, p->n,
		       p->n == 1 ? "" : "s", checked);
	else
		printf("ok: ring '%s': %" PRIu64 " messages checked\n", name, checked);
}

static int cmd_check(struct reader *rd, const struct options *o)
{
	struct problems p = { .n = 0 };
	struct ring_stats *st = NULL;
	uint64_t checked = 0;
	size_t size = 0;
	void *base = NULL;
	int err, rc;

	err = ring_map(rd->name, false, &base, &size);
	if (err == -EPROTO) {
		problem(&p, "header: the object is %zu bytes, smaller than the %u-byte header",
			size, RING_HDR_SIZE);
		goto out_report;
	}
	if (err != 0 || !base) {
		log_error("unable to open ring '%s': %s%s", rd->name,
			  strerror(err < 0 ? -err : EIO),
			  err == -ENOENT ? " (has the broker ever run?)" : "");
		return 1;
	}
	check_header(base, size, &p);
	if (p.n)
		goto out_report;
	ring_init_handle(&rd->r, base, size);
	base = NULL; /* rd->r owns the mapping now */

	for (int i = 0; i < CHECK_TRIES; i++) {
		const struct ring_hdr *h = rd->r.hdr;
		uint32_t stamp = atomic_load_explicit(&h->stamp, memory_order_acquire);
		uint64_t head = ring_head(&rd->r), tail = ring_tail(&rd->r);

		problems_clear(&p);
		check_pass(rd, &p, &checked);
		if (p.n == 0)
			break;
		/* problems seen while the writer moved may be artefacts of the moving: look again */
		if (atomic_load_explicit(&h->stamp, memory_order_acquire) == stamp &&
		    ring_head(&rd->r) == head && ring_tail(&rd->r) == tail)
			break;
	}
	if (atomic_load_explicit(&rd->r.hdr->stamp, memory_order_acquire) & 1u) {
		pid_t holder = 0;

		if (writer_lock_holder(rd->name, &holder) == 0 && holder == 0)
			problem(&p,
				"ring: a publish was cut short (stamp is odd and no broker runs); "
				"the next broker start repairs it");
	}
	err = ring_stats_attach(rd->name, false, &st);
	if (err < 0)
		problem(&p, "statistics: unable to open '%s%s': %s", rd->name, RING_STATS_SUFFIX,
			strerror(-err));
	ring_stats_detach(st);

out_report:
	print_check_result(&p, rd->name, checked, o);
	rc = p.n ? 1 : 0;
	problems_clear(&p);
	if (base)
		(void)munmap(base, size);
	return rc;
}

/* ---- choosing the ring ----------------------------------------------------------------- */

/* Whether s ends with suffix. */
static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/*
 * The ring written by the broker whose pid is in dir/broker.pid: every object in /dev/shm that
 * validates as a ring is looked at (read-only), and the one whose header names that pid is
 * chosen. 0 with the name ("/x") in buf, or -errno (-ESRCH: no ring names that broker).
 */
_must_check_ static int ring_from_runtime_dir(const char *dir, char *buf, size_t len)
{
	char path[PATH_MAX], line[32];
	unsigned long pid;
	struct dirent *de;
	int n, found = -ESRCH;
	char *end;
	FILE *f;
	DIR *d;

	n = snprintf(path, sizeof(path), "%s/" RUNTIME_PID_FILE, dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		(void)fclose(f);
		return -EINVAL;
	}
	(void)fclose(f);
	errno = 0;
	pid = strtoul(line, &end, 10);
	if (errno || end == line || (*end && *end != '\n') || pid == 0)
		return -EINVAL;

	d = opendir(SHM_DIR);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct ring r = { 0 };
		uint64_t writer;

		if (de->d_name[0] == '.' || ends_with(de->d_name, RING_STATS_SUFFIX))
			continue;
		n = snprintf(buf, len, "/%s", de->d_name);
		if (n < 0 || (size_t)n >= len || ring_attach(buf, &r) < 0)
			continue;
		writer = atomic_load_explicit(&r.hdr->broker_pid, memory_order_relaxed);
		ring_detach(&r);
		if (writer == pid) {
			found = 0;
			break;
		}
	}
	(void)closedir(d);
	return found;
}

/* Which commands take which options: a misplaced option is a usage error, not ignored. */
_must_check_ static int check_usage(enum command cmd, const struct options *o, int nargs)
{
	bool reads = cmd == CMD_DUMP || cmd == CMD_TAIL || cmd == CMD_TOPICS;

	if (nargs > (reads ? 1 : 0)) {
		log_error("too many arguments for '%s'", command_names[cmd]);
		return -EINVAL;
	}
	if (o->has_since && !reads) {
		log_error("--since applies to dump, tail and topics");
		return -EINVAL;
	}
	if (o->has_until && cmd != CMD_DUMP && cmd != CMD_TOPICS) {
		log_error("--until applies to dump and topics");
		return -EINVAL;
	}
	if (o->has_since && o->has_until && o->until_us < o->since_us) {
		log_error("--until is before --since");
		return -EINVAL;
	}
	if ((o->show_topic || o->has_count) && cmd != CMD_DUMP && cmd != CMD_TAIL) {
		log_error("--topic and --count apply to dump and tail");
		return -EINVAL;
	}
	if (o->prometheus && (cmd != CMD_STATS || o->json)) {
		log_error("--prometheus applies to stats, without --json");
		return -EINVAL;
	}
	if (o->show_topic && o->json) {
		log_error("--topic and --json exclude each other (--json carries the topic)");
		return -EINVAL;
	}
	if (o->ring_name && o->runtime_dir) {
		log_error("--ring and --runtime-dir exclude each other");
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		OPT_SINCE = 0x100,
		OPT_UNTIL,
		OPT_PROMETHEUS,
	};
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ring", required_argument, NULL, 'r' },
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "topic", no_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static struct topic_pattern pattern;
	static struct config cfg;
	static char found_name[NAME_MAX + 2];
	struct options o = { .topic = "/" };
	struct reader rd = { .o = &o, .pat = &pattern };
	enum command cmd = CMD_STATUS;
	bool known = false;
	int opt, err, rc;

	log_open(argv[0]);
	while ((opt = getopt_long(argc, argv, "c:r:d:jtn:hV", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o.config_path = optarg;
			break;
		case 'r':
			o.ring_name = optarg;
			break;
		case 'd':
			o.runtime_dir = optarg;
			break;
		case 'j':
			o.json = true;
			break;
		case 't':
			o.show_topic = true;
			break;
		case 'n': {
			char *end;

			errno = 0;
			o.count = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-') {
				log_error("invalid --count '%s': a number of messages", optarg);
				return 2;
			}
			o.has_count = true;
			break;
		}
		case OPT_SINCE:
			if (parse_time(optarg, &o.since_us) < 0) {
				log_error("invalid --since '%s' (see gpsctl --help for TIME)",
					  optarg);
				return 2;
			}
			o.has_since = true;
			break;
		case OPT_UNTIL:
			if (parse_time(optarg, &o.until_us) < 0) {
				log_error("invalid --until '%s' (see gpsctl --help for TIME)",
					  optarg);
				return 2;
			}
			o.has_until = true;
			break;
		case OPT_PROMETHEUS:
			o.prometheus = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("gpsctl " GPSCTL_VERSION "\n");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		log_error("no command given");
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < ARRAY_SIZE(command_names); i++) {
		if (strcmp(argv[optind], command_names[i]) == 0) {
			cmd = (enum command)i;
			known = true;
		}
	}
	if (!known) {
		log_error("unknown command '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	optind++;
	if (check_usage(cmd, &o, argc - optind) < 0)
		return 2;
	if (optind < argc)
		o.topic = argv[optind];
	if (topic_pattern_parse(o.topic, strlen(o.topic), &pattern) < 0) {
		log_error("invalid topic '%s'", o.topic);
		return 2;
	}

	config_defaults(&cfg);
	err = config_load(o.config_path ? o.config_path : CONFIG_DEFAULT_PATH, &cfg);
	if (err < 0 && !(err == -ENOENT && !o.config_path)) {
		log_error("unable to load configuration '%s': %s",
			  o.config_path ? o.config_path : CONFIG_DEFAULT_PATH, strerror(-err));
		return 1;
	}
	if (o.ring_name) {
		rd.name = o.ring_name;
	} else if (o.runtime_dir) {
		err = ring_from_runtime_dir(o.runtime_dir, found_name, sizeof(found_name));
		if (err < 0) {
			log_error("unable to find the ring of the broker in '%s': %s",
				  o.runtime_dir,
				  err == -ESRCH ? "no ring names its pid" : strerror(-err));
			return 1;
		}
		rd.name = found_name;
	} else {
		rd.name = cfg.ring_name;
	}

	if (cmd == CMD_CHECK) {
		rc = cmd_check(&rd, &o);
		goto out;
	}
	err = ring_attach(rd.name, &rd.r);
	if (err < 0) {
		log_error("unable to attach ring '%s': %s", rd.name,
			  err == -ENOENT   ? "no such ring (has the broker ever run?)"
			  : err == -EPROTO ? "not a valid ring of this version (see gpsctl check)"
					   : strerror(-err));
		return 1;
	}
	switch (cmd) {
	case CMD_STATUS:
		rc = cmd_status(&rd.r, rd.name, &o);
		break;
	case CMD_STATS:
		rc = cmd_stats(&rd.r, rd.name, &o);
		break;
	case CMD_DUMP:
		rc = cmd_dump(&rd);
		break;
	case CMD_TAIL:
		rc = cmd_tail(&rd);
		break;
	case CMD_TOPICS:
		rc = cmd_topics(&rd);
		break;
	case CMD_CHECK:
	default:
		rc = 2;
		break;
	}
out:
	ring_detach(&rd.r);
	free(rd.buf);
	if (fflush(stdout) != 0 && rc == 0)
		rc = 1;
	return rc;
}
