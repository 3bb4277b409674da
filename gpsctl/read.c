/* SPDX-License-Identifier: MIT */
/*
 * gpsctl dump, tail and topics: the verbs that read messages. They read only through the
 * reader of shm/ring.h (ring_read, ring_cursor_seek_time), as a frontend does, so what they
 * print is what a subscriber to the same topic would get, gap notices included.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "gpsctl/gpsctl.h"

/* tail: longest sleep on the ring's futex before looking at signals and at a replaced ring. */
#define TAIL_WAIT_MS 1000u

/* tail: pause between attempts to re-attach a ring that was replaced or removed. */
#define REATTACH_RETRY_MS 200u

/* Searches by time retried while a fast writer laps the index under them. */
#define SEEK_TRIES 16

/* First size of the copy buffer; it grows to the largest record read. */
#define READ_BUF_MIN 4096u

volatile sig_atomic_t gpsctl_stop;

static void on_stop_signal(int sig)
{
	(void)sig;
	gpsctl_stop = 1;
}

/* PROTOCOL 3.4's gap notice, as a subscriber would get it. */
static void print_gap(const struct reader *rd, const struct ring_gap *gap)
{
	if (!rd->gaps_to_log) {
		printf("{\"gap\": {\"missed\": %" PRIu64 ", \"resume\": ", gap->missed);
		gpsctl_print_unix_us(stdout, gap->resume_us);
		printf("}}\n");
	}
	log_warning("lapped by the writer: %" PRIu64 " messages missed", gap->missed);
}

static void print_message(struct reader *rd, const struct ring_rec *rec)
{
	static char path[TOPIC_PATH_MAX];
	const uint8_t *payload = rd->buf + rec->topic_len;

	(void)topic_format(rd->buf, rec->topic_len, path, sizeof(path));
	if (rd->o->json) {
		printf("{\"seq\": %" PRIu64 ", \"time\": ", rec->seq);
		gpsctl_print_unix_us(stdout, rec->time_us);
		printf(", \"topic\": ");
		gpsctl_print_json_string(stdout, path, strlen(path));
		printf(", \"message\": ");
		fwrite(payload, 1, rec->payload_len, stdout);
		printf("}\n");
	} else {
		if (rd->o->show_topic) {
			gpsctl_print_unix_us(stdout, rec->time_us);
			printf(" %s ", path);
		}
		fwrite(payload, 1, rec->payload_len, stdout);
		putchar('\n');
	}
	rd->printed++;
}

/*
 * Where dump, tail and topics start: at seq start, or with --since at the first message at or
 * after it (PROTOCOL 3.5), with the gap notice a subscriber would get if messages at or after
 * it were evicted. 0, or 1 after logging the failure.
 */
static int reader_start(struct reader *rd, uint64_t start)
{
	struct ring_gap gap;
	int err = -EAGAIN;

	ring_cursor_init(&rd->cur, start);
	if (!rd->o->has_since)
		return 0;
	for (int i = 0; i < SEEK_TRIES && err == -EAGAIN; i++)
		err = ring_cursor_seek_time(&rd->r, rd->o->since_us, &rd->cur, &gap);
	if (err < 0) {
		log_error("unable to find time in ring '%s': %s", rd->name, strerror(-err));
		return 1;
	}
	if (err == RING_NEXT_GAP)
		print_gap(rd, &gap);
	return 0;
}

enum {
	READ_NONE,  /* seq end or the head reached: nothing more for now */
	READ_MSG,   /* a matching message, in rd->buf */
	READ_UNTIL, /* the first message at or after --until: the verb is done */
};

/*
 * The next message below seq end that matches TOPIC, copied into rd->buf: READ_MSG with *rec,
 * READ_NONE or READ_UNTIL, or -errno. Gaps on the way are reported as they come.
 */
static int reader_next(struct reader *rd, uint64_t end, struct ring_rec *rec)
{
	while (rd->cur.next < end && !gpsctl_stop) {
		struct ring_gap gap;
		int err = ring_read(&rd->r, &rd->cur, rd->buf, rd->cap, rec, &gap);

		if (err == -EMSGSIZE) {
			size_t cap = MAX((size_t)rec->topic_len + rec->payload_len, READ_BUF_MIN);
			uint8_t *p = realloc(rd->buf, cap);

			if (!p)
				return -ENOMEM;
			rd->buf = p;
			rd->cap = cap;
			continue;
		}
		if (err == -EAGAIN)
			return READ_NONE;
		if (err < 0)
			return err;
		if (err == RING_NEXT_GAP) {
			print_gap(rd, &gap);
			continue;
		}
		if (rd->o->has_until && rec->time_us >= rd->o->until_us)
			return READ_UNTIL;
		if (topic_match(rd->pat, rd->buf, rec->topic_len))
			return READ_MSG;
	}
	return READ_NONE;
}

/* Whether the wanted number of messages has been printed (--count). */
static bool reader_done(const struct reader *rd)
{
	return rd->o->has_count && rd->printed >= rd->o->count;
}

/*
 * Print every matching message up to (not including) seq end, or up to the first at or after
 * --until. Returns 1 once --until or --count is reached, 0 when end (or the head) is reached,
 * -errno on failure.
 */
static int reader_drain(struct reader *rd, uint64_t end)
{
	struct ring_rec rec;
	int err;

	while ((err = reader_next(rd, end, &rec)) == READ_MSG) {
		print_message(rd, &rec);
		if (reader_done(rd))
			return 1;
	}
	if (err < 0)
		return err;
	return err == READ_UNTIL ? 1 : 0;
}

int gpsctl_dump(struct reader *rd)
{
	uint64_t end = ring_head(&rd->r); /* the history held now; later messages are tail's */
	int err;

	if (rd->o->has_count && rd->o->count == 0)
		return 0;
	if (reader_start(rd, ring_tail(&rd->r)))
		return 1;
	err = reader_drain(rd, end);
	if (err < 0) {
		log_error("unable to read ring '%s': %s", rd->name, strerror(-err));
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The ring was replaced (shm/ring.h section 6) or removed: attach its successor by name. */
static int reader_reattach(struct reader *rd)
{
	struct ring fresh;

	ring_detach(&rd->r);
	while (!gpsctl_stop) {
		if (ring_attach(rd->name, &fresh) == 0 && !ring_closed(&fresh)) {
			rd->r = fresh;
			ring_cursor_init(&rd->cur, ring_tail(&rd->r));
			log_notice("ring '%s' was replaced; following the new one", rd->name);
			return 0;
		}
		if (fresh.hdr)
			ring_detach(&fresh);
		(void)usleep(REATTACH_RETRY_MS * 1000u);
	}
	return -EINTR;
}

int gpsctl_tail(struct reader *rd)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };

	/* no SA_RESTART: the futex wait returns at once on Ctrl-C */
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);

	if (rd->o->has_count && rd->o->count == 0)
		return 0;
	if (reader_start(rd, ring_head(&rd->r)))
		return 1;
	while (!gpsctl_stop) {
		uint32_t w = ring_wake_word(&rd->r);
		int err = reader_drain(rd, UINT64_MAX);

		if (fflush(stdout) != 0)
			return 1;
		if (err < 0) {
			log_error("unable to read ring '%s': %s", rd->name, strerror(-err));
			return 1;
		}
		if (err > 0)
			return 0;
		if (rd->cur.next < ring_head(&rd->r))
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

int gpsctl_topics(struct reader *rd)
{
	static char path[TOPIC_PATH_MAX];
	struct topic_row *rows = NULL;
	size_t n = 0, cap = 0, m = 0;
	uint64_t end = ring_head(&rd->r);
	struct ring_rec rec;
	int err, rc = 1;

	rd->gaps_to_log = true;
	if (reader_start(rd, ring_tail(&rd->r)))
		return 1;
	while ((err = reader_next(rd, end, &rec)) == READ_MSG) {
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
	if (err < 0)
		goto out_free;
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
			gpsctl_print_json_string(stdout, path, strlen(path));
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
