/* SPDX-License-Identifier: MIT */
/*
 * gpsctl: a read-only look into the history ring (it maps the ring PROT_READ, like a
 * frontend). status, stats, check, dump and tail.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/io.h"
#include "common/log.h"
#include "shm/ring.h"
#include "shm/topic.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gpsctl [OPTIONS] COMMAND [ARGS]\n"
		"\n"
		"Inspect a GitPubSub history ring, read-only.\n"
		"\n"
		"Commands:\n"
		"  status                 ring geometry, head, tail, held messages, broker\n"
		"  stats                  the counters of PROTOCOL 6\n"
		"  check                  validate the ring; exit 0 if sound, 1 if not\n"
		"  dump [TOPIC]           print held messages (one JSON text per line) and exit\n"
		"  tail [TOPIC]           follow the ring like a subscriber (Ctrl-C stops)\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE      configuration file (default " CONFIG_DEFAULT_PATH ")\n"
		"  -r, --ring NAME        ring name (default: [History] ring, " CONFIG_DEFAULT_RING ")\n"
		"      --since TIME       dump/tail: start at this unix time (decimal)\n"
		"      --topic            dump/tail: prefix each line with its time and topic\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure (no ring, invalid ring), 2 usage.\n");
}

static void print_time(const char *label, uint64_t us)
{
	time_t s = (time_t)(us / 1000000u);
	struct tm tm;
	char buf[64] = "-";

	if (us && gmtime_r(&s, &tm))
		(void)strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%-18s %s (%" PRIu64 ".%06" PRIu64 ")\n", label, buf, us / 1000000u,
	       us % 1000000u);
}

static int cmd_status(const struct ring *r, const char *name)
{
	const struct ring_hdr *h = r->hdr;
	uint64_t head = ring_head(r), tail = ring_tail(r);
	uint64_t pid = atomic_load_explicit(&h->broker_pid, memory_order_relaxed);
	struct ring_rec rec;

	printf("%-18s %s\n", "ring", name);
	printf("%-18s %u\n", "version", h->version);
	printf("%-18s %" PRIu64 "\n", "generation", h->generation);
	printf("%-18s %" PRIu64 " bytes\n", "data size", h->data_size);
	printf("%-18s %" PRIu64 "\n", "index entries", h->nidx);
	printf("%-18s %" PRIu64 "\n", "head", head);
	printf("%-18s %" PRIu64 "\n", "tail", tail);
	printf("%-18s %" PRIu64 "\n", "messages held", head - tail);
	printf("%-18s %" PRIu64 "\n", "bytes held",
	       atomic_load_explicit(&h->data_head, memory_order_relaxed) -
		       atomic_load_explicit(&h->data_tail, memory_order_relaxed));
	if (ring_rec_get(r, tail, &rec) == 0)
		print_time("oldest message", rec.time_us);
	print_time("newest message", atomic_load_explicit(&h->last_time_us, memory_order_relaxed));
	printf("%-18s %" PRIu64 " s\n", "retention",
	       atomic_load_explicit(&h->retention_us, memory_order_relaxed) / 1000000u);
	printf("%-18s %" PRIu64 " (%s)\n", "broker pid", pid,
	       pid == 0			    ? "stopped cleanly"
	       : kill((pid_t)pid, 0) == 0 || errno == EPERM ? "running"
							     : "not running");
	print_time("broker started", atomic_load_explicit(&h->broker_start_us, memory_order_relaxed));
	return 0;
}

static int cmd_stats(const char *name)
{
	struct ring_stats *s;
	int err = ring_stats_attach(name, false, &s);

	if (err < 0) {
		log_error("unable to read statistics of '%s': %s", name, strerror(-err));
		return 1;
	}
	printf("connections %" PRIu64 "\nsubscribers %" PRIu64 "\nreceived %" PRIu64
	       "\nsent %" PRIu64 "\n",
	       atomic_load_explicit(&s->connections, memory_order_relaxed),
	       atomic_load_explicit(&s->subscribers, memory_order_relaxed),
	       atomic_load_explicit(&s->received, memory_order_relaxed),
	       atomic_load_explicit(&s->sent, memory_order_relaxed));
	ring_stats_detach(s);
	return 0;
}

/* Walk every held entry: seqs, times strictly increasing, positions inside the data. */
static int cmd_check(const struct ring *r)
{
	uint64_t head = ring_head(r), tail = ring_tail(r), prev_t = 0, bad = 0;

	for (uint64_t seq = tail; seq < head; seq++) {
		struct ring_rec rec;
		if (ring_rec_get(r, seq, &rec) < 0)
			continue; /* evicted under us */
		if (rec.time_us <= prev_t) {
			printf("seq %" PRIu64 ": time does not increase\n", seq);
			bad++;
		}
		prev_t = rec.time_us;
	}
	if (head < tail) {
		printf("head %" PRIu64 " below tail %" PRIu64 "\n", head, tail);
		bad++;
	}
	printf("%s: %" PRIu64 " messages checked, %" PRIu64 " problems\n", bad ? "BAD" : "ok",
	       head - tail, bad);
	return bad ? 1 : 0;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int cmd_follow(const struct ring *r, const struct topic_pattern *pat, bool has_since,
		      uint64_t since, bool follow, bool show_topic)
{
	static uint8_t topic[TOPIC_MAX_BYTES];
	uint64_t next = ring_head(r), lo;
	char *payload = NULL;
	size_t cap = 0;

	if (!follow || has_since) {
		if (has_since) {
			while (ring_find_time(r, since, &next, &lo) < 0)
				;
		} else {
			next = ring_tail(r);
		}
	}
	(void)signal(SIGINT, on_signal);
	(void)signal(SIGTERM, on_signal);
	while (!stop) {
		uint32_t w = ring_wake_word(r);
		uint64_t head = ring_head(r);

		for (; next < head; next++) {
			struct ring_rec rec;
			if (next < ring_tail(r))
				next = ring_tail(r);
			if (ring_rec_get(r, next, &rec) < 0)
				continue;
			if (rec.payload_len + 1 > cap) {
				char *p = realloc(payload, rec.payload_len + 1);
				if (!p)
					return 1;
				payload = p;
				cap = rec.payload_len + 1;
			}
			ring_copy_from(topic, rec.topic, rec.topic_len);
			ring_copy_from(payload, rec.payload, rec.payload_len);
			if (!ring_rec_valid(r, &rec) || !topic_match(pat, topic, rec.topic_len))
				continue;
			if (show_topic) {
				char path[1024];
				(void)topic_format(topic, rec.topic_len, path, sizeof(path));
				printf("%" PRIu64 ".%06" PRIu64 " %s ", rec.time_us / 1000000u,
				       rec.time_us % 1000000u, path);
			}
			fwrite(payload, 1, rec.payload_len, stdout);
			putchar('\n');
		}
		fflush(stdout);
		if (!follow)
			break;
		(void)!ring_wait(r, w, 1000);
	}
	free(payload);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "ring", required_argument, NULL, 'r' },
		{ "since", required_argument, NULL, 'S' },  { "topic", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },	    { 0 },
	};
	static struct topic_pattern pat;
	const char *config_path = NULL, *ring_name = NULL, *cmd;
	struct config cfg;
	bool has_since = false, show_topic = false;
	uint64_t since = 0;
	struct ring r;
	int opt, err, rc;

	log_open(argv[0]);
	while ((opt = getopt_long(argc, argv, "c:r:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'r':
			ring_name = optarg;
			break;
		case 'S': {
			char *end;
			double v = strtod(optarg, &end);
			if (*end || v < 0) {
				log_error("invalid --since '%s'", optarg);
				return 2;
			}
			since = (uint64_t)(v * 1e6);
			has_since = true;
			break;
		}
		case 'T':
			show_topic = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	config_defaults(&cfg);
	err = config_load(config_path ? config_path : CONFIG_DEFAULT_PATH, &cfg);
	if (err < 0 && !(err == -ENOENT && !config_path)) {
		log_error("unable to load configuration: %s", strerror(-err));
		return 1;
	}
	if (!ring_name)
		ring_name = cfg.ring_name;
	if (strcmp(cmd, "stats") == 0)
		return cmd_stats(ring_name);
	if (strcmp(cmd, "status") && strcmp(cmd, "check") && strcmp(cmd, "dump") &&
	    strcmp(cmd, "tail")) {
		log_error("unknown command '%s'", cmd);
		usage(stderr);
		return 2;
	}
	{
		const char *t = optind < argc ? argv[optind] : "/";
		if (topic_pattern_parse(t, strlen(t), &pat) < 0) {
			log_error("invalid topic '%s'", t);
			return 2;
		}
	}
	err = ring_attach(ring_name, &r);
	if (err < 0) {
		log_error("unable to attach ring '%s': %s%s", ring_name, strerror(-err),
			  err == -ENOENT ? " (is the broker running?)" : "");
		return 1;
	}
	if (strcmp(cmd, "status") == 0)
		rc = cmd_status(&r, ring_name);
	else if (strcmp(cmd, "check") == 0)
		rc = cmd_check(&r);
	else
		rc = cmd_follow(&r, &pat, has_since, since, strcmp(cmd, "tail") == 0, show_topic);
	ring_detach(&r);
	return rc;
}
