/* SPDX-License-Identifier: MIT */
/*
 * slowloris: the driver of tests/91-slowloris.bats (README "Reliability"), one process with one
 * poll loop.
 *
 * It opens N connections and trickles one byte of a request head on each, the first at connect
 * and then one every --interval-ms, which never completes a head. A server that counts its
 * header deadline from the connect closes each of them that deadline after its connect, with a
 * 408; one that counts from the last byte never does, since a byte always comes sooner.
 *
 * Each connection is a frontend process (systemd Accept=yes, inetd), and its deadline starts
 * when that process does. So connections are opened no faster than the server starts
 * frontends: at most --backlog connections may be open that no frontend has counted yet (the
 * ring's statistics object counts every frontend that starts, shm/ring.h), and no faster than
 * N over --open-ms. A sanitizer build, whose processes take tens of milliseconds to start, is
 * then attacked more slowly, and "after its connect" still means it.
 *
 * Once half of the N are open, a subscriber connects (the delay of its response head is
 * measured) and a publisher posts a message every --publish-ms on one keep-alive connection,
 * until every slow connection is closed; each message carries its send time, so the
 * subscriber's receive time gives the publish-to-receive latency (CLOCK_MONOTONIC, one process).
 *
 * Prints "name=value" lines on stdout (figures; the test judges them) and a summary on stderr.
 * Built by the test itself: cc -I. -D_GNU_SOURCE -O2 -o slowloris tests/tools/slowloris.c
 * Exit status: 0 when the run was measured (whatever the figures), 1 on a runtime failure, 2 on
 * a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shm/ring.h"

/* The head trickled on every slow connection; a 408 comes long before its end. */
#define SLOW_REQUEST "GET /slowloris HTTP/1.1\r\nHost: slowloris\r\nUser-Agent: slowloris\r\n\r\n"
/* Bytes of a slow connection's answer kept: a 408 head and its one-line body fit. */
#define ANSWER_MAX   512
/* Most messages measured: 100 ms apart, more than six minutes of publishing. */
#define MAX_SAMPLES  4096
/* The subscriber's buffer: far more than one poll round of 100 ms messages and keepalives. */
#define SUB_BUF_SIZE ((size_t)256 * 1024)
/* The publisher's answer buffer: one "200 Message sent!" answer is about 150 bytes. */
#define PUB_BUF_SIZE 4096
/* Longest poll sleep: scheduled sends are never late by more than this. */
#define POLL_MAX_MS  5
/* After the last slow connection closed: publishing goes on this long, then the drain. */
#define TAIL_US	     ((uint64_t)500 * 1000)
/* How long the drain waits for the subscriber to receive what was published. */
#define DRAIN_US     ((uint64_t)3 * 1000 * 1000)
/* fds besides the slow connections: subscriber, publisher, stdio and slack. */
#define FD_SLACK     64

#define US_PER_MS 1000U
#define US_PER_S  1000000U

struct slow {
	int fd;		       /* -1 once closed */
	bool connected;	       /* connect() completed */
	uint64_t connect_us;   /* when it completed */
	uint64_t next_send_us; /* when the next head byte goes out */
	size_t sent;	       /* head bytes sent */
	uint64_t close_us;     /* when the server's close was seen; 0 while open */
	bool reset;	       /* closed by a reset rather than an orderly close */
	bool failed;	       /* never connected, or an error on our side */
	char answer[ANSWER_MAX];
	size_t answer_len;
};

struct options {
	const char *host;
	int port;
	const char *ring; /* the service's ring: its statistics object paces the opening */
	unsigned conns;
	unsigned backlog;
	unsigned interval_ms;
	unsigned open_ms;
	unsigned publish_ms;
	unsigned deadline_s;
	const char *topic;
	struct sockaddr_in sa; /* host and port */
};

/* The server's count of started frontends, from "<ring>.stats" mapped read-only. */
struct started {
	const struct ring_stats *stats; /* NULL: no ring given, no pacing by the server */
	uint64_t base;			/* the count before our first connection */
};

static int started_open(const char *ring, struct started *ret)
{
	char name[256];
	struct stat st;
	void *p;
	int fd;

	ret->stats = NULL;
	ret->base = 0;
	if (!ring)
		return 0;
	if (snprintf(name, sizeof(name), "%s%s", ring, RING_STATS_SUFFIX) >= (int)sizeof(name))
		return -ENAMETOOLONG;
	fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_size != (off_t)sizeof(struct ring_stats)) {
		(void)close(fd);
		return -EPROTO;
	}
	p = mmap(NULL, sizeof(struct ring_stats), PROT_READ, MAP_SHARED, fd, 0);
	(void)close(fd);
	if (p == MAP_FAILED)
		return -errno;
	ret->stats = p;
	if (atomic_load_explicit(&ret->stats->magic, memory_order_acquire) != RING_STATS_MAGIC)
		return -EPROTO;
	ret->base = atomic_load_explicit(&ret->stats->connections, memory_order_relaxed);
	return 0;
}

/* How many of our connections the server has started a frontend for. */
static uint64_t started_count(const struct started *s)
{
	if (!s->stats)
		return UINT64_MAX;
	return atomic_load_explicit(&s->stats->connections, memory_order_relaxed) - s->base;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * US_PER_S + (uint64_t)ts.tv_nsec / 1000U;
}

/* A nonblocking TCP socket connecting to the server: fd, or -errno. */
static int open_conn(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 && errno != EINPROGRESS) {
		int err = -errno;

		(void)close(fd);
		return err;
	}
	return fd;
}

/* Whether a pending connect has finished: 1 done, 0 not yet, -errno failed. */
static int connect_done(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0;
	socklen_t len = sizeof(err);

	if (poll(&p, 1, 0) <= 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return err ? -err : 1;
}

/* Send all of buf on a socket whose buffer is known to have room (small writes): 0 or -errno. */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The status code of the response head at buf ("HTTP/1.1 200 ..."), or -1. */
static int status_of(const char *buf)
{
	static const char prefix[] = "HTTP/1.1 ";
	char *end;
	unsigned long v;

	if (strncmp(buf, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	v = strtoul(buf + sizeof(prefix) - 1, &end, 10);
	return *end == ' ' && v >= 100 && v <= 999 ? (int)v : -1;
}

/* A message the publisher sent, {"lat":SEQ,"t":US}: 0 with both set, or -EINVAL. */
static int parse_lat(const char *data, size_t len, unsigned long *seq, unsigned long long *t)
{
	static const char k1[] = "{\"lat\":", k2[] = ",\"t\":";
	char *end;

	if (len < sizeof(k1) || memcmp(data, k1, sizeof(k1) - 1) != 0)
		return -EINVAL;
	*seq = strtoul(data + sizeof(k1) - 1, &end, 10);
	if (strncmp(end, k2, sizeof(k2) - 1) != 0)
		return -EINVAL;
	*t = strtoull(end + sizeof(k2) - 1, &end, 10);
	return *end == '}' ? 0 : -EINVAL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The value at fraction q of sorted v[0..n) (nearest rank), 0 when n is 0. */
static uint64_t percentile(const uint64_t *v, size_t n, double q)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(q * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	return v[(rank > n ? n : rank) - 1];
}

struct subscriber {
	int fd;
	bool connected;
	uint64_t start_us; /* connect started */
	uint64_t head_us;  /* response head complete; 0 before */
	int status;	   /* of the response head */
	char *buf;
	size_t len;
	uint64_t *latency; /* per message seq; UINT64_MAX until received */
	unsigned received;
	unsigned bad_frames;
	bool closed;
};

struct publisher {
	int fd;
	bool waiting;	     /* a POST is out, its answer not yet complete */
	uint64_t next_us;    /* when the next POST is due */
	unsigned published;  /* POSTs sent */
	unsigned ok;	     /* 200 answers */
	unsigned failed;     /* other answers or a lost connection */
	uint64_t sent_us;    /* when the POST out now was sent */
	uint64_t rtt_max_us; /* slowest answer */
	char buf[PUB_BUF_SIZE];
	size_t len;
};

/* Parse the subscriber's chunked stream in s->buf: record each {"lat":N,"t":US} message. */
static void sub_parse(struct subscriber *s, uint64_t now)
{
	size_t off = 0;

	if (!s->head_us) {
		char *end = memmem(s->buf, s->len, "\r\n\r\n", 4);

		if (!end)
			return;
		s->head_us = now;
		s->status = status_of(s->buf);
		off = (size_t)(end - s->buf) + 4;
	}
	for (;;) {
		char *crlf = memmem(s->buf + off, s->len - off, "\r\n", 2);
		unsigned long size, seq;
		unsigned long long t;
		char *data;

		if (!crlf)
			break;
		size = strtoul(s->buf + off, NULL, 16);
		data = crlf + 2;
		/* the chunk: data (message and its CRLF), then the chunk's own CRLF */
		if ((size_t)(data - s->buf) + size + 2 > s->len)
			break;
		if (size < 2 || memcmp(data + size, "\r\n", 2) != 0) {
			s->bad_frames++;
			s->len = 0;
			return;
		}
		if (parse_lat(data, size - 2, &seq, &t) == 0 && seq < MAX_SAMPLES &&
		    s->latency[seq] == UINT64_MAX) {
			s->latency[seq] = now - (uint64_t)t;
			s->received++;
		}
		off = (size_t)(data - s->buf) + size + 2;
	}
	memmove(s->buf, s->buf + off, s->len - off);
	s->len -= off;
}

static void sub_read(struct subscriber *s, uint64_t now)
{
	for (;;) {
		ssize_t n;

		if (s->len == SUB_BUF_SIZE) {
			s->bad_frames++;
			s->len = 0;
		}
		n = recv(s->fd, s->buf + s->len, SUB_BUF_SIZE - s->len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			s->closed = true;
			(void)close(s->fd);
			s->fd = -1;
			break;
		}
		s->len += (size_t)n;
		sub_parse(s, now);
	}
}

static int pub_send(struct publisher *p, const char *host, const char *topic, uint64_t now)
{
	char body[128], req[512];
	int blen, rlen;

	blen = snprintf(body, sizeof(body), "{\"lat\":%u,\"t\":%" PRIu64 "}", p->published, now);
	rlen = snprintf(req, sizeof(req),
			"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			"Content-Length: %d\r\n\r\n%s",
			topic, host, blen, body);
	if (blen < 0 || rlen < 0 || (size_t)rlen >= sizeof(req))
		return -EINVAL;
	p->sent_us = now;
	p->waiting = true;
	p->published++;
	return send_all(p->fd, req, (size_t)rlen);
}

/* Read the publisher's answer; count it once complete. */
static void pub_read(struct publisher *p, uint64_t now)
{
	for (;;) {
		ssize_t n = recv(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len, MSG_DONTWAIT);
		char *end, *cl;
		size_t need;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			/* the server closed a keep-alive connection: a failure here */
			p->failed += p->waiting;
			p->waiting = false;
			(void)close(p->fd);
			p->fd = -1;
			return;
		}
		p->len += (size_t)n;
		p->buf[p->len] = '\0';
		end = strstr(p->buf, "\r\n\r\n");
		if (!end)
			continue;
		cl = strcasestr(p->buf, "\r\nContent-Length:");
		need = (size_t)(end - p->buf) + 4 +
		       (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
		if (p->len < need)
			continue;
		if (status_of(p->buf) == 200)
			p->ok++;
		else
			p->failed++;
		if (now - p->sent_us > p->rtt_max_us)
			p->rtt_max_us = now - p->sent_us;
		p->waiting = false;
		memmove(p->buf, p->buf + need, p->len - need);
		p->len -= need;
	}
}

/* A slow connection's socket is readable: keep its answer, note its close. */
static void slow_read(struct slow *c, uint64_t now)
{
	for (;;) {
		char tmp[1024];
		ssize_t n = recv(c->fd, tmp, sizeof(tmp), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n > 0) {
			size_t take = (size_t)n;

			if (take > ANSWER_MAX - c->answer_len)
				take = ANSWER_MAX - c->answer_len;
			memcpy(c->answer + c->answer_len, tmp, take);
			c->answer_len += take;
			continue;
		}
		c->reset = n < 0;
		c->close_us = now;
		(void)close(c->fd);
		c->fd = -1;
		return;
	}
}

static void slow_send(struct slow *c, unsigned interval_ms)
{
	if (c->sent >= sizeof(SLOW_REQUEST) - 1)
		return;
	if (send(c->fd, &SLOW_REQUEST[c->sent], 1, MSG_NOSIGNAL) == 1)
		c->sent++;
	/* a failed send is the server closing: the read side notices it */
	c->next_send_us += (uint64_t)interval_ms * US_PER_MS;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: slowloris --port PORT [--host 127.0.0.1] [--ring NAME] [--conns 1000]\n"
		"                 [--backlog 16] [--interval-ms 9000] [--open-ms 2000]\n"
		"                 [--publish-ms 100] [--deadline-s 45] [--topic /slowloris/latency]\n"
		"Prints name=value figures on stdout. Exit status: 0 measured, 1 runtime "
		"failure, 2 usage error.\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "ring", required_argument, NULL, 'r' },
		{ "conns", required_argument, NULL, 'n' },
		{ "backlog", required_argument, NULL, 'b' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "open-ms", required_argument, NULL, 'o' },
		{ "publish-ms", required_argument, NULL, 'P' },
		{ "deadline-s", required_argument, NULL, 'd' },
		{ "topic", required_argument, NULL, 't' },
		{ 0 },
	};
	int opt;

	*o = (struct options){ .host = "127.0.0.1",
			       .conns = 1000,
			       .interval_ms = 9000,
			       .open_ms = 2000,
			       .publish_ms = 100,
			       .backlog = 16,
			       .deadline_s = 45,
			       .topic = "/slowloris/latency" };
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			o->host = optarg;
			break;
		case 'p':
			o->port = (int)strtol(optarg, NULL, 10);
			break;
		case 'r':
			o->ring = optarg;
			break;
		case 'n':
			o->conns = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			o->backlog = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'i':
			o->interval_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			o->open_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'P':
			o->publish_ms = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			o->deadline_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 't':
			o->topic = optarg;
			break;
		default:
			return -EINVAL;
		}
	}
	if (o->port <= 0 || o->port > 65535 || o->conns == 0 || o->publish_ms == 0 ||
	    o->interval_ms == 0 || o->backlog == 0 || optind != argc)
		return -EINVAL;
	o->sa.sin_family = AF_INET;
	o->sa.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, o->host, &o->sa.sin_addr) != 1)
		return -EINVAL;
	return 0;
}

/* Raise the soft fd limit to what N connections need (the hard limit permitting). */
static int raise_fd_limit(unsigned conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)conns + FD_SLACK;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want)
		return -EMFILE;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

/* What the run saw besides the connections themselves. */
struct run {
	uint64_t start_us;
	uint64_t all_open_us;	/* the last slow connection connected; 0 before */
	uint64_t all_closed_us; /* the last slow connection closed; 0 before */
	uint64_t max_backlog;	/* most connections open at once that no frontend counted yet */
};

static void report(const struct options *o, const struct slow *slow, const struct run *run,
		   const struct subscriber *sub, const struct publisher *pub)
{
	unsigned connected = 0, closed = 0, answered = 0, resets = 0, failed = 0, lost = 0;
	uint64_t cmin = UINT64_MAX, cmax = 0;
	static uint64_t lat[MAX_SAMPLES];
	uint64_t *after = calloc(o->conns, sizeof(*after));
	size_t nlat = 0;

	for (unsigned i = 0; i < o->conns; i++) {
		const struct slow *c = &slow[i];
		uint64_t d;

		connected += c->connected;
		failed += c->failed;
		resets += c->reset;
		if (!c->close_us)
			continue;
		closed++;
		/* a PROTOCOL 7.1 answer: the status line, and the connection closed after it */
		if (c->answer_len >= 13 && memcmp(c->answer, "HTTP/1.1 408 ", 13) == 0 &&
		    memmem(c->answer, c->answer_len, "\r\nConnection: close\r\n", 21))
			answered++;
		d = c->close_us - c->connect_us;
		if (after)
			after[closed - 1] = d;
		cmin = d < cmin ? d : cmin;
		cmax = d > cmax ? d : cmax;
	}
	for (unsigned i = 0; i < pub->published && i < MAX_SAMPLES; i++) {
		if (sub->latency[i] == UINT64_MAX)
			lost++;
		else
			lat[nlat++] = sub->latency[i];
	}
	qsort(lat, nlat, sizeof(lat[0]), cmp_u64);
	if (!closed)
		cmin = 0;
	printf("connections=%u\nconnected=%u\nfailed=%u\nclosed=%u\nanswered_408=%u\nresets=%u\n",
	       o->conns, connected, failed, closed, answered, resets);
	printf("open_spread_ms=%" PRIu64 "\nmax_backlog=%" PRIu64 "\n",
	       run->all_open_us ? (run->all_open_us - run->start_us) / US_PER_MS : 0,
	       run->max_backlog);
	if (after)
		qsort(after, closed, sizeof(after[0]), cmp_u64);
	/* the latest closes, for a reader of a failed run: when in the attack they connected */
	for (unsigned i = 0; after && closed > 0 && i < o->conns; i++) {
		const struct slow *c = &slow[i];

		if (c->close_us &&
		    c->close_us - c->connect_us >= after[closed - 1 - MIN(closed - 1, 2)])
			fprintf(stderr,
				"slowloris: connection %u, connected %.3f s into the run, closed "
				"%.3f s after its connect\n",
				i, (double)(c->connect_us - run->start_us) / US_PER_S,
				(double)(c->close_us - c->connect_us) / US_PER_S);
	}
	printf("close_min_ms=%" PRIu64 "\nclose_p50_ms=%" PRIu64 "\nclose_p99_ms=%" PRIu64
	       "\nclose_max_ms=%" PRIu64 "\n",
	       cmin / US_PER_MS, after ? percentile(after, closed, 0.50) / US_PER_MS : 0,
	       after ? percentile(after, closed, 0.99) / US_PER_MS : 0, cmax / US_PER_MS);
	free(after);
	printf("sub_status=%d\nsub_head_ms=%" PRIu64 "\nsub_bad_frames=%u\nsub_closed=%d\n",
	       sub->status, sub->head_us ? (sub->head_us - sub->start_us) / US_PER_MS : 0,
	       sub->bad_frames, sub->closed);
	printf("published=%u\npublish_ok=%u\npublish_failed=%u\npublish_rtt_max_ms=%" PRIu64 "\n",
	       pub->published, pub->ok, pub->failed, pub->rtt_max_us / US_PER_MS);
	printf("received=%u\nlost=%u\n", sub->received, lost);
	printf("latency_p50_us=%" PRIu64 "\nlatency_p99_us=%" PRIu64 "\nlatency_max_us=%" PRIu64
	       "\n",
	       percentile(lat, nlat, 0.50), percentile(lat, nlat, 0.99), nlat ? lat[nlat - 1] : 0);
	fprintf(stderr,
		"slowloris: %u connections opened over %.1f s, %u closed with a 408 (%u closed in "
		"all, %u resets, %u failed), %.3f to %.3f s after their connect\n",
		o->conns,
		run->all_open_us ? (double)(run->all_open_us - run->start_us) / US_PER_S : -1.0,
		answered, closed, resets, failed, (double)cmin / US_PER_S, (double)cmax / US_PER_S);
	fprintf(stderr,
		"slowloris: subscriber head after %.1f ms; %u published (%u failed), %u received, "
		"%u lost; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		sub->head_us ? (double)(sub->head_us - sub->start_us) / US_PER_MS : -1.0,
		pub->published, pub->failed, sub->received, lost,
		(double)percentile(lat, nlat, 0.50) / US_PER_MS,
		(double)percentile(lat, nlat, 0.99) / US_PER_MS,
		nlat ? (double)lat[nlat - 1] / US_PER_MS : 0.0);
}

/* Connections opened so far: the slow ones, the subscriber's and the publisher's. */
static uint64_t ours_opened(unsigned opened, const struct subscriber *sub)
{
	return opened + (sub->start_us ? 2U : 0U);
}

/* Open the next slow connections that are due: at most N per open_ms, and at most backlog
 * that the server has not started a frontend for. */
static void open_due(const struct options *o, struct slow *slow, unsigned *opened,
		     const struct started *started, const struct subscriber *sub, struct run *run,
		     uint64_t now)
{
	while (*opened < o->conns) {
		uint64_t due =
			run->start_us + (uint64_t)o->open_ms * US_PER_MS * *opened / o->conns;
		uint64_t ours = ours_opened(*opened, sub), up = started_count(started);
		uint64_t backlog = ours > up ? ours - up : 0;
		struct slow *c;

		if (backlog > run->max_backlog)
			run->max_backlog = backlog;
		if (now < due || backlog >= o->backlog)
			return;
		c = &slow[(*opened)++];
		c->fd = open_conn(&o->sa);
		if (c->fd < 0) {
			fprintf(stderr, "slowloris: unable to connect: %s\n", strerror(-c->fd));
			c->failed = true;
			c->fd = -1;
		}
	}
}

/* Connect pending slow connections, trickle the bytes that are due; returns how many are still
 * open (pending or connected). */
static unsigned tend_slow(const struct options *o, struct slow *slow, unsigned opened, uint64_t now)
{
	unsigned open_left = 0;

	for (unsigned i = 0; i < opened; i++) {
		struct slow *c = &slow[i];

		if (c->fd < 0)
			continue;
		open_left++;
		if (!c->connected) {
			int r = connect_done(c->fd);

			if (r == 0)
				continue;
			if (r < 0) {
				c->failed = true;
				(void)close(c->fd);
				c->fd = -1;
				open_left--;
				continue;
			}
			c->connected = true;
			c->connect_us = now;
			c->next_send_us = now;
		}
		if (now >= c->next_send_us)
			slow_send(c, o->interval_ms);
	}
	return open_left;
}

int main(int argc, char **argv)
{
	struct options o;
	struct slow *slow = NULL;
	struct pollfd *pfd = NULL;
	struct subscriber sub = { .fd = -1 };
	struct publisher pub = { .fd = -1 };
	struct started started;
	struct run run = { 0 };
	uint64_t deadline, stop_publishing = 0, drain_end = 0;
	unsigned opened = 0;
	int err, rc = 1;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	(void)signal(SIGPIPE, SIG_IGN);
	err = raise_fd_limit(o.conns);
	if (err < 0) {
		fprintf(stderr, "slowloris: unable to raise the fd limit: %s\n", strerror(-err));
		return 1;
	}
	err = started_open(o.ring, &started);
	if (err < 0) {
		fprintf(stderr, "slowloris: unable to map the statistics of ring '%s': %s\n",
			o.ring, strerror(-err));
		return 1;
	}
	slow = calloc(o.conns, sizeof(*slow));
	pfd = calloc(o.conns + 2, sizeof(*pfd));
	sub.buf = malloc(SUB_BUF_SIZE);
	sub.latency = malloc((size_t)MAX_SAMPLES * sizeof(*sub.latency));
	if (!slow || !pfd || !sub.buf || !sub.latency) {
		fprintf(stderr, "slowloris: out of memory\n");
		goto out;
	}
	for (unsigned i = 0; i < MAX_SAMPLES; i++)
		sub.latency[i] = UINT64_MAX;
	for (unsigned i = 0; i < o.conns; i++)
		slow[i].fd = -1;

	run.start_us = now_us();
	deadline = run.start_us + (uint64_t)o.deadline_s * US_PER_S;
	for (;;) {
		uint64_t now = now_us();
		unsigned npfd = 0, open_left;
		int n;

		if (now >= deadline) {
			fprintf(stderr, "slowloris: deadline of %u s reached\n", o.deadline_s);
			break;
		}
		open_due(&o, slow, &opened, &started, &sub, &run, now);
		open_left = tend_slow(&o, slow, opened, now);
		if (opened == o.conns && !run.all_open_us) {
			bool pending = false;

			for (unsigned i = 0; i < o.conns; i++)
				pending |= slow[i].fd >= 0 && !slow[i].connected;
			if (!pending)
				run.all_open_us = now;
		}
		/* The subscriber and the publisher join once half of the attack is open. */
		if (!sub.start_us && opened >= o.conns / 2) {
			sub.start_us = now;
			sub.fd = open_conn(&o.sa);
			pub.fd = open_conn(&o.sa);
			if (sub.fd < 0 || pub.fd < 0) {
				fprintf(stderr, "slowloris: unable to connect the subscriber\n");
				goto out;
			}
		}
		if (sub.fd >= 0 && !sub.connected && connect_done(sub.fd) == 1) {
			char req[256];
			int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
					   o.topic, o.host);

			sub.connected = true;
			if (send_all(sub.fd, req, (size_t)len) < 0) {
				fprintf(stderr, "slowloris: unable to subscribe\n");
				goto out;
			}
		}
		/* Publish once the subscriber has its head, until TAIL_US after the last close. */
		if (run.all_open_us && open_left == 0 && !run.all_closed_us) {
			run.all_closed_us = now;
			stop_publishing = now + TAIL_US;
		}
		if (pub.fd >= 0 && sub.head_us && !pub.waiting && now >= pub.next_us &&
		    (!stop_publishing || now < stop_publishing) && pub.published < MAX_SAMPLES &&
		    connect_done(pub.fd) == 1) {
			if (pub_send(&pub, o.host, o.topic, now) < 0)
				pub.failed++;
			pub.next_us = (pub.next_us ? pub.next_us : now) +
				      (uint64_t)o.publish_ms * US_PER_MS;
			if (pub.next_us < now)
				pub.next_us = now + (uint64_t)o.publish_ms * US_PER_MS;
		}
		if (stop_publishing && now >= stop_publishing && !pub.waiting) {
			if (!drain_end)
				drain_end = now + DRAIN_US;
			if (sub.received >= pub.published || now >= drain_end) {
				rc = 0;
				break;
			}
		}
		if (sub.closed) {
			fprintf(stderr, "slowloris: the server closed the subscriber's stream\n");
			rc = 0;
			break;
		}

		for (unsigned i = 0; i < opened; i++) {
			if (slow[i].fd < 0 || !slow[i].connected)
				continue;
			pfd[npfd++] = (struct pollfd){ .fd = slow[i].fd, .events = POLLIN };
		}
		if (sub.fd >= 0 && sub.connected)
			pfd[npfd++] = (struct pollfd){ .fd = sub.fd, .events = POLLIN };
		if (pub.fd >= 0)
			pfd[npfd++] = (struct pollfd){ .fd = pub.fd, .events = POLLIN };
		n = poll(pfd, npfd, POLL_MAX_MS);
		if (n < 0 && errno != EINTR) {
			perror("slowloris: poll");
			goto out;
		}
		now = now_us();
		for (unsigned k = 0, i = 0; n > 0 && k < npfd; k++) {
			if (!pfd[k].revents)
				continue;
			if (pfd[k].fd == sub.fd) {
				sub_read(&sub, now);
				continue;
			}
			if (pfd[k].fd == pub.fd) {
				pub_read(&pub, now);
				continue;
			}
			/* slow connections were added in index order: find this one */
			while (i < opened && slow[i].fd != pfd[k].fd)
				i++;
			if (i < opened)
				slow_read(&slow[i], now);
		}
	}
	report(&o, slow, &run, &sub, &pub);
out:
	for (unsigned i = 0; slow && i < o.conns; i++)
		if (slow[i].fd >= 0)
			(void)close(slow[i].fd);
	if (sub.fd >= 0)
		(void)close(sub.fd);
	if (pub.fd >= 0)
		(void)close(pub.fd);
	free(sub.latency);
	free(sub.buf);
	free(pfd);
	free(slow);
	return rc;
}
