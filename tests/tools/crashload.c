/* SPDX-License-Identifier: MIT */
/*
 * crashload: the driver of tests/93-crash-load.bats (README "Reliability", fault 1) and of
 * tests/torture/soak.bash (README "Reliability", soak). One process: an epoll loop holding every
 * subscriber, a publisher thread on one keep-alive connection, and in soak mode a monitor thread.
 *
 * Crash mode (default): N subscribers connect; then M messages are published at an even pace over
 * --seconds while the broker is SIGKILLed --broker-kills times, evenly between the publishes
 * (gitpubsub-run restarts it), and --kill-percent of the subscribers' frontends are SIGKILLed
 * every second, each killed subscriber being replaced by a new one. Then the history ring is dumped (gpsctl dump --json): it is the
 * truth about what was stored, including a publish answered 503 because the broker died after
 * storing it and before answering (frontend/publish.c never resends such a request).
 *
 * Soak mode (--soak): the same subscribers and publisher, no crashes; every --churn-ms,
 * --churn-percent of the subscribers hang up and as many new ones connect; a monitor thread
 * checks after each churn that X-Subscribers (a trusted HEAD, PROTOCOL 6.1) equals the streams
 * this process holds open, and samples the broker's memory and the file descriptors of the
 * broker and of the listener (systemd-socket-activate) every --sample-ms.
 *
 * Every subscriber parses its stream incrementally and strictly (PROTOCOL 3.1-3.4): the head, one
 * chunk per message, each message one of: a keepalive, a gap notice, or a published message
 * byte for byte as it was sent. What it received is kept run-length encoded, then checked against
 * the ring's order: each message once, in order, no skip without a gap notice whose "missed" is
 * exact; everything published while it was connected (sent after its head arrived; for one that
 * hung up, answered 200 at least --grace-ms before it did; for one still connected, everything).
 *
 * Prints "name=value" figures on stdout (the caller judges them) and a summary on stderr.
 * Built by its callers: cc -I. -std=gnu11 -O2 -pthread -o crashload tests/tools/crashload.c
 * Exit status: 0 when the run was measured (whatever the figures), 1 on a runtime failure, 2 on
 * a usage error.
 */
#ifndef _GNU_SOURCE /* the Makefile's analysers pass -D_GNU_SOURCE; its callers' cc does not */
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define US_PER_MS UINT64_C(1000)
#define US_PER_S  UINT64_C(1000000)

/* Subscribers whose response head has not come yet: the service starts a process for each, so
 * opening hundreds at once only queues them in the listener. */
#define CONNECT_INFLIGHT 32
/* The longest response head we accept, and the longest message (ours are under 200 bytes; a
 * gap notice or keepalive under 100). Anything longer is malformed. */
#define HEAD_MAX	 2048
#define MSG_MAX		 1024
/* Bytes read from a socket at a time. */
#define READ_BUF	 (64 * 1024)
/* The padding of a published message: PAD_MIN + n % PAD_SPREAD letters, so chunk sizes vary. */
#define PAD_MIN		 16U
#define PAD_SPREAD	 97U
/* The publisher's socket timeouts: a broker restart is a fraction of a second, and a frontend
 * answers 503 after at most 5 s (frontend/publish.c BROKER_TIMEOUT_MS). */
#define PUB_TIMEOUT_S	 15
#define PUB_BUF		 8192
/* Longest epoll sleep: timers (kills, churn) are never later than this. */
#define POLL_MS		 20
/* How long a subscriber may take to catch up with the last stored message at the end. */
#define DRAIN_S		 20
/* How long the set-up may take to connect every subscriber. */
#define SETUP_S		 120
/* X-Subscribers must be exact within this long after a churn (README "Reliability", soak). */
#define XSUB_WITHIN_MS	 2000U
/* ... and is measured up to this long, to report how late it was. */
#define XSUB_WATCH_MS	 10000U
/* Pause between two HEADs while the count settles. */
#define XSUB_POLL_MS	 100U
/* fds besides the subscribers: stdio, epoll, publisher, monitor, slack. */
#define FD_SLACK	 64
/* Most frontends killed in one round, and passes of a round to replace ones not found. */
#define KILL_MAX	 64U
#define KILL_PASSES	 3U
/* Random picks per subscriber to kill or hang up: most picks find one streaming (the rest ended). */
#define PICK_TRIES	 50U
/* A sample's fd count is the fewest of FD_READS reads this far apart (steady_fds). */
#define FD_READS	 5U
#define FD_READ_GAP_MS	 50U
/* Room for a process's fd list in a diagnostic line. */
#define FD_LIST_MAX	 2048
/* Samples whose fds differ from the first that get their fds listed on stderr. */
#define FD_REPORTS	 5U
/* Most broker/listener samples kept (soak): one every 10 s for over 11 hours. */
#define MAX_SAMPLES	 4096

enum sub_state { S_CONNECTING, S_HEAD, S_SIZE, S_SIZE_LF, S_DATA, S_TRAILER_CR, S_TRAILER_LF };

/* A run of received events: messages first..first+count-1, or (first == 0) a gap notice. */
struct run {
	uint32_t first;
	uint32_t count; /* messages in the run; for a gap notice its "missed" */
};

struct sub {
	int fd; /* -1 once closed */
	uint8_t state;
	bool head_done;
	bool ended;	   /* closed, by us or by the server */
	bool killed;	   /* its frontend was SIGKILLed by us (crash mode) */
	bool hung_up;	   /* we closed it (soak churn) */
	bool unexpected;   /* the server closed a connection we did not end */
	bool malformed;	   /* a framing or content violation: its stream is not checked further */
	bool counted_open; /* counted in open_subs */
	bool initial;	   /* streaming before the first publish */
	uint16_t lport;
	const char *topic;
	uint64_t open_us, head_us, end_us;
	uint64_t chunk_left;
	size_t size_digits;
	char head[HEAD_MAX];
	size_t head_len;
	char msg[MSG_MAX];
	size_t msg_len;
	uint64_t keepalives, messages, gaps;
	struct run *runs;
	size_t nruns, runs_cap;
};

struct pub_rec {
	uint16_t status;      /* 0: no answer */
	uint64_t timestamp;   /* X-Timestamp */
	uint64_t cursor_seq;  /* the seq of X-Cursor, 0 if absent */
	uint64_t sent_us;     /* monotonic, just before the request was sent */
	uint64_t answered_us; /* monotonic, once the answer was read */
};

struct sample {
	uint64_t at_us;
	long rss_kib, anon_kib, file_kib, shmem_kib, pss_kib, pss_anon_kib;
	long broker_fds, listener_fds;
	long broker_pid;
};

struct options {
	int port;
	const char *run_dir;
	const char *gpsctl;
	const char *ring;
	unsigned subs;
	unsigned messages; /* crash: how many; soak: derived from rate and seconds */
	unsigned seconds;
	unsigned broker_kills;
	unsigned kill_percent;
	bool soak;
	unsigned rate;
	unsigned churn_percent;
	unsigned churn_ms;
	unsigned warmup_s;
	unsigned sample_ms;
	unsigned grace_ms;
	unsigned deadline_s;
	struct sockaddr_in sa;
};

static struct options opt = {
	.subs = 500,
	.messages = 10000,
	.seconds = 30,
	.broker_kills = 20,
	.kill_percent = 1,
	.rate = 20,
	.churn_percent = 5,
	.churn_ms = 5000,
	.warmup_s = 60,
	.sample_ms = 10000,
	.grace_ms = 1000,
	.deadline_s = 600,
};

static struct sub *subs;
static size_t nsubs, subs_cap;
static int epfd = -1;
static struct pub_rec *pubs; /* [1..messages] */
static atomic_uint pub_done; /* publishes answered (or failed) */
static atomic_bool pub_finished;
static int pub_fd_left = -1;	/* the publisher's connection, closed at the very end */
static atomic_int open_subs;	/* streams with a head, not ended: what X-Subscribers should be */
static atomic_uint churn_epoch; /* soak: bumped by each churn */
static atomic_bool monitor_stop;
static uint64_t t_start_us;
/* --deadline after the process started: set-up, run and drain all end by then, so that the
 * caller's own timeout (a little longer) never kills the driver before it reports. */
static uint64_t t_begin_us, t_deadline_us;

/* Soak monitor results. */
static struct sample samples[MAX_SAMPLES];
static unsigned nsamples;
static unsigned xsub_checks, xsub_late, xsub_never, xsub_errors;
static uint64_t xsub_max_settle_ms;

/* Crash-mode counters. */
static atomic_uint broker_kills_done;
static unsigned frontends_killed, kill_misses, kill_rounds;
static uint64_t t_published_us; /* when the publisher finished */
static unsigned churns, hung_up_total, connect_failures;

static unsigned broker_kills_due(unsigned answered);

static uint64_t now_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * US_PER_S + (uint64_t)ts.tv_nsec / 1000U;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / US_PER_S),
			       .tv_nsec = (long)(t % US_PER_S) * 1000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* The body of message n: {"n":N,"pad":"<letters>"}, the letters a function of n. */
static size_t message_body(unsigned n, char *buf, size_t cap)
{
	unsigned pad = PAD_MIN + n % PAD_SPREAD;
	int h = snprintf(buf, cap, "{\"n\":%u,\"pad\":\"", n);
	size_t len = (size_t)h;
	uint64_t x = n * UINT64_C(0x9e3779b97f4a7c15) + 1U;

	for (unsigned i = 0; i < pad && len + 3 < cap; i++) {
		x ^= x >> 29;
		x *= UINT64_C(0xbf58476d1ce4e5b9);
		buf[len++] = (char)('a' + x % 26U);
	}
	buf[len++] = '"';
	buf[len++] = '}';
	buf[len] = '\0';
	return len;
}

/* ---- subscribers ---------------------------------------------------------------------- */

static struct sub *sub_new(void)
{
	struct sub *s;

	if (nsubs == subs_cap) {
		size_t cap = subs_cap ? subs_cap * 2 : 1024;
		struct sub *p = realloc(subs, cap * sizeof(*p));

		if (!p)
			return NULL;
		subs = p;
		subs_cap = cap;
	}
	s = &subs[nsubs++];
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	/* half on the published topic, half on the root: both get every message (PROTOCOL 2.2) */
	s->topic = nsubs % 2 ? "/crash" : "/";
	return s;
}

static int sub_index(const struct sub *s)
{
	return (int)(s - subs);
}

static void sub_end(struct sub *s)
{
	if (s->fd >= 0) {
		(void)epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
		(void)close(s->fd);
		s->fd = -1;
	}
	if (s->counted_open) {
		atomic_fetch_sub(&open_subs, 1);
		s->counted_open = false;
	}
	s->ended = true;
	s->end_us = now_us();
}

/* Open subscriber s: 0, or -errno (it is then ended). */
static int sub_open(struct sub *s)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT };
	struct sockaddr_in me = { 0 };
	socklen_t len = sizeof(me);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	s->open_us = now_us();
	if (connect(fd, (const struct sockaddr *)&opt.sa, sizeof(opt.sa)) < 0 &&
	    errno != EINPROGRESS) {
		int err = -errno;

		(void)close(fd);
		s->ended = true;
		return err;
	}
	if (getsockname(fd, (struct sockaddr *)&me, &len) == 0)
		s->lport = ntohs(me.sin_port);
	s->fd = fd;
	s->state = S_CONNECTING;
	ev.data.u32 = (uint32_t)sub_index(s);
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = -errno;

		sub_end(s);
		return err;
	}
	return 0;
}

static void sub_bad(struct sub *s, const char *why)
{
	if (!s->malformed)
		fprintf(stderr, "crashload: subscriber %d (port %u): malformed: %s\n", sub_index(s),
			s->lport, why);
	s->malformed = true;
}

static int sub_push(struct sub *s, uint32_t first, uint32_t count)
{
	if (first && s->nruns) {
		struct run *r = &s->runs[s->nruns - 1];

		if (r->first && r->first + r->count == first) {
			r->count++;
			return 0;
		}
	}
	if (s->nruns == s->runs_cap) {
		size_t cap = s->runs_cap ? s->runs_cap * 2 : 8;
		struct run *p = realloc(s->runs, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->runs = p;
		s->runs_cap = cap;
	}
	s->runs[s->nruns++] = (struct run){ .first = first, .count = count };
	return 0;
}

/* Whether text[0..len) is "<digits>.<6 digits>" followed by end. */
static bool is_time6(const char *p, size_t len)
{
	size_t i = 0, d = 0;

	while (i < len && isdigit((unsigned char)p[i]))
		i++;
	if (i == 0 || i >= len || p[i] != '.')
		return false;
	for (i++; i < len && isdigit((unsigned char)p[i]); i++)
		d++;
	return d == 6 && i == len;
}

/* One message of the stream (PROTOCOL 3.2-3.4), text without its CRLF. */
static void sub_message(struct sub *s, const char *text, size_t len)
{
	static const char ka[] = "{\"stillalive\": ";
	static const char gap[] = "{\"gap\": {\"missed\": ";
	unsigned long n;
	char *end;

	if (len > sizeof(ka) && memcmp(text, ka, sizeof(ka) - 1) == 0 && text[len - 1] == '}' &&
	    is_time6(text + sizeof(ka) - 1, len - sizeof(ka))) {
		s->keepalives++;
		return;
	}
	if (len > sizeof(gap) && memcmp(text, gap, sizeof(gap) - 1) == 0) {
		const char *p = text + sizeof(gap) - 1;
		static const char mid[] = ", \"resume\": ";

		errno = 0;
		n = strtoul(p, &end, 10);
		if (errno || end == p || n == 0 || n > UINT32_MAX ||
		    (size_t)(text + len - end) < sizeof(mid) + 2 ||
		    memcmp(end, mid, sizeof(mid) - 1) != 0 ||
		    memcmp(text + len - 2, "}}", 2) != 0 ||
		    !is_time6(end + sizeof(mid) - 1,
			      (size_t)(text + len - 2 - (end + sizeof(mid) - 1)))) {
			sub_bad(s, "a gap notice that is not PROTOCOL 3.4's");
			return;
		}
		s->gaps++;
		if (sub_push(s, 0, (uint32_t)n) < 0)
			sub_bad(s, "out of memory");
		return;
	}
	if (len > 6 && memcmp(text, "{\"n\":", 5) == 0) {
		char want[MSG_MAX];

		errno = 0;
		n = strtoul(text + 5, &end, 10);
		if (!errno && n >= 1 && n <= opt.messages &&
		    message_body((unsigned)n, want, sizeof(want)) == len &&
		    memcmp(want, text, len) == 0) {
			s->messages++;
			if (sub_push(s, (uint32_t)n, 1) < 0)
				sub_bad(s, "out of memory");
			return;
		}
	}
	sub_bad(s, "a message that is not one we published, a keepalive or a gap notice");
}

/* The response head is complete: PROTOCOL 3.1. Returns false if it is not a stream's. */
static bool sub_head_ok(struct sub *s)
{
	const char *te;

	s->head[s->head_len] = '\0';
	if (strncmp(s->head, "HTTP/1.1 200 ", 13) != 0)
		return false;
	te = strcasestr(s->head, "\r\ntransfer-encoding: chunked\r\n");
	return te != NULL;
}

/* Feed received bytes to the strict, incremental chunked parser. */
static void sub_feed(struct sub *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n && !s->malformed;) {
		char c = p[i];

		switch (s->state) {
		case S_CONNECTING:
		case S_HEAD:
			if (s->head_len >= HEAD_MAX - 1) {
				sub_bad(s, "response head too long");
				return;
			}
			s->head[s->head_len++] = c;
			i++;
			if (s->head_len >= 4 &&
			    memcmp(s->head + s->head_len - 4, "\r\n\r\n", 4) == 0) {
				if (!sub_head_ok(s)) {
					char why[128];

					(void)snprintf(why, sizeof(why),
						       "not a 200 stream head: %.*s",
						       (int)strcspn(s->head, "\r\n"), s->head);
					sub_bad(s, why);
					return;
				}
				s->head_done = true;
				s->head_us = now_us();
				s->counted_open = true;
				atomic_fetch_add(&open_subs, 1);
				s->state = S_SIZE;
				s->chunk_left = 0;
				s->size_digits = 0;
			}
			break;
		case S_SIZE:
			if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) {
				if (++s->size_digits > 4) {
					sub_bad(s, "chunk size too large");
					return;
				}
				s->chunk_left = s->chunk_left * 16U +
						(uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
			} else if (c == '\r' && s->size_digits) {
				s->state = S_SIZE_LF;
			} else {
				sub_bad(s, "chunk size line is not lowercase hex and CRLF");
				return;
			}
			i++;
			break;
		case S_SIZE_LF:
			if (c != '\n' || s->chunk_left < 3 || s->chunk_left > MSG_MAX) {
				sub_bad(s, "chunk size line, or a chunk size out of bounds");
				return;
			}
			s->msg_len = 0;
			s->state = S_DATA;
			i++;
			break;
		case S_DATA: {
			size_t take = n - i;

			if (take > s->chunk_left)
				take = (size_t)s->chunk_left;
			memcpy(s->msg + s->msg_len, p + i, take);
			s->msg_len += take;
			s->chunk_left -= take;
			i += take;
			if (s->chunk_left)
				break;
			/* one message per chunk, ending in CRLF, no other line break */
			if (memcmp(s->msg + s->msg_len - 2, "\r\n", 2) != 0 ||
			    memchr(s->msg, '\r', s->msg_len - 2) ||
			    memchr(s->msg, '\n', s->msg_len - 2)) {
				sub_bad(s, "chunk data is not one line ending in CRLF");
				return;
			}
			sub_message(s, s->msg, s->msg_len - 2);
			s->state = S_TRAILER_CR;
			break;
		}
		case S_TRAILER_CR:
			if (c != '\r') {
				sub_bad(s, "chunk not followed by CRLF");
				return;
			}
			s->state = S_TRAILER_LF;
			i++;
			break;
		case S_TRAILER_LF:
			if (c != '\n') {
				sub_bad(s, "chunk not followed by CRLF");
				return;
			}
			s->size_digits = 0;
			s->chunk_left = 0;
			s->state = S_SIZE;
			i++;
			break;
		}
	}
}

static void sub_send_request(struct sub *s)
{
	char req[256];
	int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
			   s->topic, opt.port);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)sub_index(s) };
	ssize_t n = send(s->fd, req, (size_t)len, MSG_NOSIGNAL);

	if (n != len) {
		connect_failures++;
		sub_end(s);
		return;
	}
	s->state = S_HEAD;
	(void)epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

static void sub_event(struct sub *s, uint32_t events)
{
	static char buf[READ_BUF];

	if (s->fd < 0)
		return;
	if (s->state == S_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			connect_failures++;
			sub_end(s);
			return;
		}
		if (events & EPOLLOUT)
			sub_send_request(s);
		return;
	}
	for (;;) {
		ssize_t n = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			sub_feed(s, buf, (size_t)n);
			if ((size_t)n < sizeof(buf))
				return;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* the server closed: expected only for a subscriber whose frontend we killed */
		if (!s->killed && !s->hung_up) {
			s->unexpected = true;
			fprintf(stderr,
				"crashload: subscriber %d (port %u) closed by the server%s\n",
				sub_index(s), s->lport, s->head_done ? "" : " before its head");
		}
		sub_end(s);
		return;
	}
}

/* Subscribers not yet streaming (connecting or waiting for the head). */
static unsigned pending_heads(void)
{
	unsigned n = 0;

	for (size_t i = 0; i < nsubs; i++)
		if (subs[i].fd >= 0 && !subs[i].head_done)
			n++;
	return n;
}

/* Open up to 'want' new subscribers, CONNECT_INFLIGHT at a time; returns how many opened. */
static unsigned open_more(unsigned want)
{
	unsigned inflight = pending_heads(), opened = 0;

	while (opened < want && inflight < CONNECT_INFLIGHT) {
		struct sub *s = sub_new();

		if (!s)
			break;
		if (sub_open(s) < 0) {
			connect_failures++;
			continue;
		}
		opened++;
		inflight++;
	}
	return opened;
}

static void poll_once(int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(epfd, evs, 256, timeout_ms);

	for (int i = 0; i < n; i++)
		sub_event(&subs[evs[i].data.u32], evs[i].events);
}

/* ---- finding and killing processes ----------------------------------------------------- */

/*
 * The number in base at *ps, advancing *ps past it: 0, or -1 if no digit is there or it
 * overflows. sscanf("%lu") would skip blanks, take a sign and saturate without a word.
 */
static int take_ull(const char **ps, int base, unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	if (!isxdigit((unsigned char)**ps))
		return -1;
	errno = 0;
	v = strtoull(*ps, &end, base);
	if (errno || end == *ps)
		return -1;
	*ps = end;
	*ret = v;
	return 0;
}

/* The whole of s as a number in base: 0 or -1. */
static int parse_ull(const char *s, int base, unsigned long long *ret)
{
	return take_ull(&s, base, ret) < 0 || *s ? -1 : 0;
}

static long read_pid_file(const char *name)
{
	char path[512], buf[32];
	unsigned long long pid;
	FILE *f;
	bool got;

	(void)snprintf(path, sizeof(path), "%s/%s", opt.run_dir, name);
	f = fopen(path, "re");
	if (!f)
		return -1;
	got = fgets(buf, sizeof(buf), f) != NULL;
	(void)fclose(f);
	if (!got)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	if (parse_ull(buf, 10, &pid) < 0 || pid > LONG_MAX)
		return -1;
	return (long)pid;
}

/* Whether pid is alive and its command name starts with prefix (not a zombie). */
static bool pid_is(long pid, const char *prefix)
{
	char path[64], buf[256];
	FILE *f;
	bool ok = false;

	(void)snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f)) {
		char *l = strchr(buf, '('), *r = strrchr(buf, ')');

		if (l && r && r[1] == ' ' && r[2] != 'Z' && !strncmp(l + 1, prefix, strlen(prefix)))
			ok = true;
	}
	(void)fclose(f);
	return ok;
}

/* A frontend to kill: our subscriber, the server side's socket inode, the frontend's pid. */
struct victim {
	size_t sub;
	unsigned long inode;
	long pid;
};

/* Fill in the inodes of the server's side of the victims' connections: one read of
 * /proc/net/tcp (loopback IPv4; local port the service's, remote port the subscriber's). */
static void victims_inodes(struct victim *v, unsigned n)
{
	FILE *f = fopen("/proc/net/tcp", "re");
	char line[512];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		/* "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...", ports in hex */
		char *field[10], *save = NULL;
		const char *lcolon, *rcolon;
		unsigned long long lp, rp, inode;
		unsigned nf = 0;

		for (char *tok = strtok_r(line, " \n", &save); tok && nf < 10;
		     tok = strtok_r(NULL, " \n", &save))
			field[nf++] = tok;
		if (nf < 10 || !(lcolon = strchr(field[1], ':')) ||
		    !(rcolon = strchr(field[2], ':')) || parse_ull(lcolon + 1, 16, &lp) < 0 ||
		    parse_ull(rcolon + 1, 16, &rp) < 0 || parse_ull(field[9], 10, &inode) < 0 ||
		    lp != (unsigned)opt.port || !inode)
			continue;
		for (unsigned k = 0; k < n; k++)
			if (subs[v[k].sub].lport == rp)
				v[k].inode = inode;
	}
	(void)fclose(f);
}

/* Find which children of the listener hold the victims' sockets: one pass over their fds. */
static void victims_owners(long listener, struct victim *v, unsigned n)
{
	char path[128], kids[65536];
	char *save = NULL;
	unsigned left = 0;
	size_t len;
	FILE *f;

	for (unsigned k = 0; k < n; k++)
		left += v[k].inode != 0;
	(void)snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", listener, listener);
	f = fopen(path, "re");
	if (!f)
		return;
	len = fread(kids, 1, sizeof(kids) - 1, f);
	(void)fclose(f);
	kids[len] = '\0';
	for (char *tok = strtok_r(kids, " \n", &save); tok && left;
	     tok = strtok_r(NULL, " \n", &save)) {
		long pid = strtol(tok, NULL, 10);
		struct dirent *e;
		DIR *d;

		(void)snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		d = opendir(path);
		if (!d)
			continue;
		while ((e = readdir(d))) {
			char target[64], *close_bracket;
			unsigned long long inode;
			ssize_t t;

			if (e->d_name[0] == '.')
				continue;
			t = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
			if (t <= 0)
				continue;
			target[t] = '\0';
			close_bracket = strchr(target, ']');
			if (strncmp(target, "socket:[", 8) != 0 || !close_bracket ||
			    close_bracket[1] != '\0')
				continue;
			*close_bracket = '\0';
			if (parse_ull(target + 8, 10, &inode) < 0)
				continue;
			for (unsigned k = 0; k < n; k++)
				if (v[k].inode == inode && v[k].pid <= 0) {
					v[k].pid = pid;
					left--;
				}
		}
		(void)closedir(d);
	}
}

/*
 * SIGKILL the frontends of 'count' random streaming subscribers (crash mode). A round reads
 * /proc/net/tcp once and the listener's children's fds once: cheap enough for the epoll loop.
 */
static void kill_frontends(unsigned count)
{
	long listener = read_pid_file("listener.pid");
	struct victim v[KILL_MAX];
	unsigned done = 0;

	if (listener <= 0)
		return;
	if (count > KILL_MAX)
		count = KILL_MAX;
	for (unsigned pass = 0; pass < KILL_PASSES && done < count; pass++) {
		unsigned n = 0, tries = 0;

		while (n < count - done && tries++ < (count - done) * PICK_TRIES) {
			size_t i = (size_t)(rnd() % nsubs);
			bool dup = false;

			if (subs[i].fd < 0 || !subs[i].head_done || subs[i].killed)
				continue;
			for (unsigned k = 0; k < n; k++)
				dup |= v[k].sub == i;
			if (!dup)
				v[n++] = (struct victim){ .sub = i };
		}
		victims_inodes(v, n);
		victims_owners(listener, v, n);
		for (unsigned k = 0; k < n; k++) {
			if (v[k].pid <= 0 || kill((pid_t)v[k].pid, SIGKILL) < 0) {
				kill_misses++;
				continue;
			}
			subs[v[k].sub].killed = true;
			frontends_killed++;
			done++;
		}
	}
}

/* SIGKILL the broker if one runs that we did not kill yet; whether we did. */
static bool kill_broker(long *last_killed)
{
	long pid = read_pid_file("broker.pid");

	if (pid <= 0 || pid == *last_killed || !pid_is(pid, "gitpubsub-brok"))
		return false;
	if (kill((pid_t)pid, SIGKILL) < 0)
		return false;
	*last_killed = pid;
	atomic_fetch_add(&broker_kills_done, 1);
	return true;
}

/* Soak churn: hang up 'count' random streaming subscribers. */
static void hang_up(unsigned count)
{
	unsigned tries = 0, max_tries = count * PICK_TRIES;

	while (count > 0 && tries++ < max_tries) {
		struct sub *s = &subs[rnd() % nsubs];

		if (s->fd < 0 || !s->head_done)
			continue;
		s->hung_up = true;
		sub_end(s);
		hung_up_total++;
		count--;
	}
}

/* ---- the publisher --------------------------------------------------------------------- */

static int pub_connect(void)
{
	struct timeval tv = { .tv_sec = PUB_TIMEOUT_S };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)&opt.sa, sizeof(opt.sa)) < 0) {
		int err = -errno;

		(void)close(fd);
		return err;
	}
	return fd;
}

/* The value of header name in head (NUL-terminated, CRLF lines), or NULL. */
static const char *header_value(const char *head, const char *name)
{
	size_t nlen = strlen(name);

	for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n")) {
		const char *p = l + 2;

		if (!strncasecmp(p, name, nlen) && p[nlen] == ':') {
			p += nlen + 1;
			while (*p == ' ' || *p == '\t')
				p++;
			return p;
		}
	}
	return NULL;
}

/*
 * One recv() into buf (PUB_BUF + 1 bytes) after the *have bytes there, kept NUL-terminated:
 * 0, -errno, or -ECONNRESET when the server closed or buf is full.
 */
static int recv_more(int fd, char *buf, size_t *have)
{
	ssize_t r;

	do
		r = recv(fd, buf + *have, PUB_BUF - *have, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r < 0 ? -errno : -ECONNRESET;
	*have += (size_t)r;
	buf[*have] = '\0';
	return 0;
}

/*
 * One request on fd and its answer into *rec; 0, or -errno with the connection unusable. *close
 * is set when the server ends the connection after this answer.
 */
static int pub_exchange(int fd, unsigned n, struct pub_rec *rec, bool *close_after)
{
	char body[MSG_MAX], req[MSG_MAX + 256], buf[PUB_BUF + 1];
	size_t blen = message_body(n, body, sizeof(body)), have = 0, need;
	int rlen = snprintf(req, sizeof(req),
			    "POST /crash HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
			    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			    opt.port, blen, body);
	const char *v, *end;

	rec->sent_us = now_us();
	for (size_t off = 0; off < (size_t)rlen;) {
		ssize_t w = send(fd, req + off, (size_t)rlen - off, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		off += (size_t)w;
	}
	for (;;) {
		int err = recv_more(fd, buf, &have);

		if (err < 0)
			return err;
		end = strstr(buf, "\r\n\r\n");
		if (end)
			break;
		if (have == PUB_BUF)
			return -EMSGSIZE;
	}
	need = (size_t)(end - buf) + 4;
	v = header_value(buf, "Content-Length");
	if (v)
		need += strtoul(v, NULL, 10);
	while (have < need) {
		int err = recv_more(fd, buf, &have);

		if (err < 0)
			return err;
	}
	if (strncmp(buf, "HTTP/1.1 ", 9) != 0)
		return -EPROTO;
	rec->status = (uint16_t)strtoul(buf + 9, NULL, 10);
	v = header_value(buf, "X-Timestamp");
	rec->timestamp = v ? strtoull(v, NULL, 10) : 0;
	v = header_value(buf, "X-Cursor");
	if (v && (v = strchr(v, '-')))
		rec->cursor_seq = strtoull(v + 1, NULL, 10);
	v = header_value(buf, "Connection");
	*close_after = v && !strncasecmp(v, "close", 5);
	rec->answered_us = now_us();
	return 0;
}

static void *publisher(void *arg)
{
	uint64_t interval = (uint64_t)opt.seconds * US_PER_S / opt.messages;
	unsigned slack = opt.messages / (2U * (opt.broker_kills + 1U));
	int fd = -1;

	(void)arg;
	for (unsigned n = 1; n <= opt.messages; n++) {
		struct pub_rec *rec = &pubs[n];
		bool close_after = false;

		sleep_until(t_start_us + (uint64_t)(n - 1) * interval);
		/* crash mode: a broker kill overdue by half a period comes first (bounded by the
		 * main loop's deadline, which ends the process) */
		while (!opt.soak && n - 1U > slack &&
		       atomic_load(&broker_kills_done) < broker_kills_due(n - 1U - slack))
			sleep_until(now_us() + US_PER_MS);
		if (fd < 0)
			fd = pub_connect();
		if (fd < 0) {
			rec->sent_us = rec->answered_us = now_us();
			fd = -1;
		} else {
			int err = pub_exchange(fd, n, rec, &close_after);

			if (err < 0) {
				rec->status = 0;
				rec->answered_us = now_us();
			}
			if (err < 0 || close_after || rec->status != 200) {
				(void)close(fd);
				fd = -1;
			}
		}
		atomic_fetch_add(&pub_done, 1);
	}
	/* the connection stays until the end: the broker's last fd sample must see it, as the
	 * first did */
	pub_fd_left = fd;
	atomic_store(&pub_finished, true);
	return NULL;
}

/* ---- the soak monitor ------------------------------------------------------------------ */

/* X-Subscribers of a trusted HEAD; -1 on failure. */
static long head_subscribers(void)
{
	static const char req[] = "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	char buf[PUB_BUF + 1];
	size_t have = 0;
	const char *v;
	int fd = pub_connect();

	if (fd < 0)
		return -1;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
		(void)close(fd);
		return -1;
	}
	while (recv_more(fd, buf, &have) == 0 && !strstr(buf, "\r\n\r\n"))
		;
	(void)close(fd);
	buf[have] = '\0';
	if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0)
		return -1;
	v = header_value(buf, "X-Subscribers");
	return v ? strtol(v, NULL, 10) : -1;
}

/* Read "Key: <n> kB" values from a /proc file. */
static long proc_kib(const char *path, const char *key)
{
	FILE *f = fopen(path, "re");
	char line[256];
	size_t klen = strlen(key);
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	}
	(void)fclose(f);
	return v;
}

/* How many fds pid has; their numbers and targets into list (FD_LIST_MAX bytes) if not NULL. */
static long count_fds(long pid, char *list)
{
	char path[64], target[128];
	DIR *d;
	struct dirent *e;
	size_t used = 0;
	long n = 0;

	(void)snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		ssize_t t;

		if (e->d_name[0] == '.')
			continue;
		n++;
		if (!list)
			continue;
		t = readlinkat(dirfd(d), e->d_name, target, sizeof(target) - 1);
		target[t > 0 ? t : 0] = '\0';
		used += (size_t)snprintf(list + used, FD_LIST_MAX - used, " %s=%s", e->d_name,
					 target);
		if (used >= FD_LIST_MAX)
			used = FD_LIST_MAX - 1;
	}
	(void)closedir(d);
	return n;
}

/*
 * The fds pid holds steadily: the fewest of FD_READS counts FD_READ_GAP_MS apart, so an fd that
 * lives a moment (a connection being accepted, a publish's body) does not count, and one that
 * leaks does. list gets the fds of that fewest read.
 */
static long steady_fds(long pid, char *list)
{
	char cur[FD_LIST_MAX];
	long best = -1;

	list[0] = '\0';
	for (unsigned i = 0; i < FD_READS; i++) {
		long n;

		cur[0] = '\0';
		n = count_fds(pid, cur);
		if (n >= 0 && (best < 0 || n < best)) {
			best = n;
			memcpy(list, cur, FD_LIST_MAX);
		}
		if (i + 1 < FD_READS)
			sleep_until(now_us() + FD_READ_GAP_MS * US_PER_MS);
	}
	return best;
}

static void take_sample(void)
{
	static unsigned fd_reports;
	char broker_list[FD_LIST_MAX], listener_list[FD_LIST_MAX];
	struct sample *x;
	long broker = read_pid_file("broker.pid"), listener = read_pid_file("listener.pid");
	char path[64];

	if (nsamples >= MAX_SAMPLES || broker <= 0)
		return;
	x = &samples[nsamples++];
	x->at_us = now_us();
	x->broker_pid = broker;
	(void)snprintf(path, sizeof(path), "/proc/%ld/status", broker);
	x->rss_kib = proc_kib(path, "VmRSS");
	x->anon_kib = proc_kib(path, "RssAnon");
	x->file_kib = proc_kib(path, "RssFile");
	x->shmem_kib = proc_kib(path, "RssShmem");
	(void)snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", broker);
	x->pss_kib = proc_kib(path, "Pss");
	x->pss_anon_kib = proc_kib(path, "Pss_Anon");
	x->broker_fds = steady_fds(broker, broker_list);
	x->listener_fds = listener > 0 ? steady_fds(listener, listener_list) : -1;
	if (nsamples == 1 || ((x->broker_fds != samples[0].broker_fds ||
			       x->listener_fds != samples[0].listener_fds) &&
			      fd_reports++ < FD_REPORTS))
		fprintf(stderr,
			"crashload: sample %u at %" PRIu64
			" s: broker fds %ld:%s; listener fds %ld:%s\n",
			nsamples, (x->at_us - t_start_us) / US_PER_S, x->broker_fds, broker_list,
			x->listener_fds, listener > 0 ? listener_list : "");
}

static void ms_sleep(unsigned ms)
{
	sleep_until(now_us() + ms * US_PER_MS);
}

/* After a churn: poll X-Subscribers until it equals the streams we hold (and they hold still). */
static void check_xsubs(uint64_t churn_at)
{
	uint64_t settle_ms = UINT64_MAX;

	xsub_checks++;
	while (now_us() - churn_at < XSUB_WATCH_MS * US_PER_MS && !atomic_load(&monitor_stop)) {
		int before = atomic_load(&open_subs);
		long got = head_subscribers();
		int after = atomic_load(&open_subs);

		if (got < 0)
			xsub_errors++;
		else if (got == before && before == after) {
			settle_ms = (now_us() - churn_at) / US_PER_MS;
			break;
		}
		ms_sleep(XSUB_POLL_MS);
	}
	if (settle_ms == UINT64_MAX) {
		xsub_never++;
		xsub_late++;
		fprintf(stderr, "crashload: X-Subscribers not exact within %u ms of a churn\n",
			XSUB_WATCH_MS);
		return;
	}
	if (settle_ms > XSUB_WITHIN_MS) {
		xsub_late++;
		fprintf(stderr,
			"crashload: X-Subscribers exact only %" PRIu64 " ms after a churn\n",
			settle_ms);
	}
	if (settle_ms > xsub_max_settle_ms)
		xsub_max_settle_ms = settle_ms;
}

static void *monitor(void *arg)
{
	unsigned seen_epoch = atomic_load(&churn_epoch);
	uint64_t next_sample = t_start_us + (uint64_t)opt.warmup_s * US_PER_S;

	(void)arg;
	while (!atomic_load(&monitor_stop)) {
		unsigned e = atomic_load(&churn_epoch);

		if (e != seen_epoch) {
			seen_epoch = e;
			check_xsubs(now_us());
			/* sample between churns, once the count has settled: the listener's fds
			 * are then not caught in the middle of an accept */
			if (now_us() >= next_sample) {
				take_sample();
				next_sample += (uint64_t)opt.sample_ms * US_PER_S / 1000U;
			}
		}
		ms_sleep(XSUB_POLL_MS);
	}
	return NULL;
}

/* ---- the ring's truth and the checks ---------------------------------------------------- */

struct stored {
	int64_t *pos;	    /* [1..messages]: position in the ring's order, -1 if not stored */
	uint64_t *seq;	    /* [1..messages]: its seq */
	uint64_t *time_s;   /* [1..messages]: the whole seconds of its time */
	unsigned count;	    /* messages stored */
	unsigned last;	    /* n of the last one stored */
	unsigned foreign;   /* stored records that are not a message we published */
	unsigned disorder;  /* stored out of publish order */
	unsigned duplicate; /* stored twice */
};

/*
 * Soak mode: no crash, so what was stored is what got a 200, in publish order, numbered by
 * X-Cursor. The soak's ring is small on purpose (its pages are all touched before the memory
 * figures start), so it no longer holds the early messages: the 200s are the truth. A seq that
 * does not follow the previous one means something else was stored: counted as foreign.
 */
static int load_acked(struct stored *st)
{
	uint64_t prev_seq = 0;

	for (unsigned n = 1; n <= opt.messages; n++) {
		const struct pub_rec *p = &pubs[n];

		if (p->status != 200)
			continue;
		if (prev_seq && p->cursor_seq != prev_seq + 1U)
			st->foreign++;
		prev_seq = p->cursor_seq;
		st->pos[n] = st->count++;
		st->seq[n] = p->cursor_seq;
		st->time_s[n] = p->timestamp;
		st->last = n;
	}
	return 0;
}

/*
 * Start "gpsctl --ring RING dump --json" with its stdout on a pipe: the read end as a stream,
 * the child in *ret_pid for dump_close(); NULL on failure. Not popen(): no shell, so paths need
 * no quoting.
 */
static FILE *dump_open(pid_t *ret_pid)
{
	int fds[2];
	pid_t pid;
	FILE *f;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid == 0) {
		if (dup2(fds[1], STDOUT_FILENO) >= 0) /* the copy is not close-on-exec */
			(void)execl(opt.gpsctl, opt.gpsctl, "--ring", opt.ring, "dump", "--json",
				    (char *)NULL);
		_exit(127);
	}
	(void)close(fds[1]);
	f = pid > 0 ? fdopen(fds[0], "re") : NULL;
	if (!f) {
		(void)close(fds[0]);
		if (pid > 0)
			(void)waitpid(pid, NULL, 0);
		return NULL;
	}
	*ret_pid = pid;
	return f;
}

/* Close the dump and reap gpsctl: 0 if it exited 0, else -1. */
static int dump_close(FILE *f, pid_t pid)
{
	int status;

	(void)fclose(f);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The head of a dump line, '{"seq": N, "time": S.': 0 with N and S, or -1. */
static int dump_line_head(const char *p, uint64_t *ret_seq, uint64_t *ret_sec)
{
	static const char seq_key[] = "{\"seq\": ", time_key[] = ", \"time\": ";
	unsigned long long seq, sec;

	if (strncmp(p, seq_key, sizeof(seq_key) - 1) != 0)
		return -1;
	p += sizeof(seq_key) - 1;
	if (take_ull(&p, 10, &seq) < 0 || strncmp(p, time_key, sizeof(time_key) - 1) != 0)
		return -1;
	p += sizeof(time_key) - 1;
	if (take_ull(&p, 10, &sec) < 0 || *p != '.')
		return -1;
	*ret_seq = seq;
	*ret_sec = sec;
	return 0;
}

/* The ring's messages in order (gpsctl dump --json), or the 200s in order (soak). 0 or -1. */
static int load_stored(struct stored *st)
{
	char line[4096];
	FILE *f;
	pid_t pid;
	unsigned prev = 0;

	st->pos = calloc(opt.messages + 1U, sizeof(*st->pos));
	st->seq = calloc(opt.messages + 1U, sizeof(*st->seq));
	st->time_s = calloc(opt.messages + 1U, sizeof(*st->time_s));
	if (!st->pos || !st->seq || !st->time_s)
		return -1;
	for (unsigned n = 0; n <= opt.messages; n++)
		st->pos[n] = -1;
	if (opt.soak)
		return load_acked(st);
	f = dump_open(&pid);
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		uint64_t seq, sec;
		char want[MSG_MAX];
		const char *m;
		unsigned long n;
		size_t len;

		if (dump_line_head(line, &seq, &sec) < 0 ||
		    !(m = strstr(line, "\"message\": {\"n\":"))) {
			st->foreign++;
			continue;
		}
		m += 11; /* past "message": */
		n = strtoul(m + 5, NULL, 10);
		len = n >= 1 && n <= opt.messages ? message_body((unsigned)n, want, sizeof(want))
						  : 0;
		if (!len || strncmp(m, want, len) != 0 || strcmp(m + len, "}\n") != 0) {
			st->foreign++;
			continue;
		}
		if (st->pos[n] >= 0) {
			st->duplicate++;
			continue;
		}
		if (n < prev)
			st->disorder++;
		prev = (unsigned)n;
		st->pos[n] = st->count++;
		st->seq[n] = seq;
		st->time_s[n] = sec;
		st->last = (unsigned)n;
	}
	return dump_close(f, pid);
}

struct verdict {
	uint64_t deliveries, duplicates, reorders, lost, phantom, gaps, gaps_exact, gaps_inexact;
	unsigned malformed, survivors, survivors_initial, checked_subs, unexpected, late_start;
};

/*
 * Check one subscriber's runs against the stored order. start: the first position it must get
 * (-1: none required); end: the last it must get (-1: none).
 */
static void check_sub(const struct sub *s, const struct stored *st, int64_t start, int64_t end,
		      struct verdict *v)
{
	int64_t prev = -1;
	int64_t gap = -1; /* a gap notice waiting for the message after it */

	for (size_t r = 0; r < s->nruns; r++) {
		const struct run *run = &s->runs[r];

		if (!run->first) {
			v->gaps++;
			if (gap >= 0)
				v->gaps_inexact++; /* two notices in a row */
			gap = run->count;
			continue;
		}
		for (uint32_t k = 0; k < run->count; k++) {
			int64_t p = st->pos[run->first + k];
			int64_t skipped;

			v->deliveries++;
			if (p < 0) {
				v->phantom++;
				continue;
			}
			if (prev >= 0 && p == prev) {
				v->duplicates++;
				continue;
			}
			if (prev >= 0 && p < prev) {
				v->reorders++;
				continue;
			}
			/* messages between the last one (or the required start) and this one */
			if (prev >= 0)
				skipped = p - prev - 1;
			else
				skipped = start >= 0 && p > start ? p - start : 0;
			if (gap >= 0) {
				if (gap == skipped)
					v->gaps_exact++;
				else
					v->gaps_inexact++;
			} else if (skipped > 0) {
				v->lost += (uint64_t)skipped;
				if (prev < 0)
					v->late_start++;
			}
			gap = -1;
			prev = p;
		}
	}
	if (end >= 0 && start >= 0 && end >= start) {
		int64_t from = prev >= 0 ? prev + 1 : start;

		if (gap >= 0)
			v->gaps_inexact++; /* a notice with nothing after it */
		if (end >= from)
			v->lost += (uint64_t)(end - from + 1);
	}
}

/*
 * The first stored position whose publish was sent at or after t; -1 if none. The publisher is
 * sequential, so sent_us and answered_us grow with n: binary searches.
 */
static int64_t first_sent_after(const struct stored *st, uint64_t t)
{
	unsigned lo = 1, hi = opt.messages + 1U;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2U;

		if (pubs[mid].sent_us >= t)
			hi = mid;
		else
			lo = mid + 1U;
	}
	for (unsigned n = lo; n <= opt.messages; n++)
		if (st->pos[n] >= 0)
			return st->pos[n];
	return -1;
}

/* The last stored position whose 200 came at or before t; -1 if none. */
static int64_t last_acked_before(const struct stored *st, uint64_t t)
{
	unsigned lo = 1, hi = opt.messages + 1U;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2U;

		if (pubs[mid].answered_us > t)
			hi = mid;
		else
			lo = mid + 1U;
	}
	for (unsigned n = lo - 1U; n >= 1; n--)
		if (pubs[n].status == 200 && st->pos[n] >= 0)
			return st->pos[n];
	return -1;
}

/* Whether every streaming subscriber still connected has the last stored message. */
static bool all_caught_up(const struct stored *st)
{
	for (size_t i = 0; i < nsubs; i++) {
		const struct sub *s = &subs[i];
		const struct run *r;

		if (s->fd < 0 || !s->head_done || s->malformed)
			continue;
		if (first_sent_after(st, s->head_us) < 0)
			continue; /* connected after the last publish: nothing to wait for */
		if (!s->nruns)
			return false;
		r = &s->runs[s->nruns - 1];
		if (!r->first || r->first + r->count - 1 != st->last)
			return false;
	}
	return true;
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: crashload --port N --run-dir DIR --gpsctl PATH --ring NAME [OPTIONS]\n"
		"  --subscribers N     subscribers held open (500)\n"
		"  --messages N        crash mode: messages published (10000)\n"
		"  --seconds S         publishing lasts S seconds (crash 30; soak: the soak)\n"
		"  --broker-kills N    crash mode: SIGKILLs of the broker (20)\n"
		"  --kill-percent P    crash mode: %% of subscribers' frontends killed a second (1)\n"
		"  --soak              soak mode: no crashes, churn, X-Subscribers and samples\n"
		"  --rate R            soak: messages a second (20)\n"
		"  --churn-percent P   soak: %% of subscribers replaced at each churn (5)\n"
		"  --churn-ms MS       soak: time between churns (5000)\n"
		"  --warmup S          soak: first sample after S seconds (60)\n"
		"  --sample-ms MS      soak: time between samples (10000)\n"
		"  --grace-ms MS       soak: a hung-up subscriber must have every message answered\n"
		"                      200 this long before it hung up (1000)\n"
		"  --deadline S        give up S seconds after the start (600): set-up, run and\n"
		"                      the final drain all end by then\n");
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "run-dir", required_argument, NULL, 'd' },
		{ "gpsctl", required_argument, NULL, 'g' },
		{ "ring", required_argument, NULL, 'r' },
		{ "subscribers", required_argument, NULL, 'n' },
		{ "messages", required_argument, NULL, 'm' },
		{ "seconds", required_argument, NULL, 's' },
		{ "broker-kills", required_argument, NULL, 'b' },
		{ "kill-percent", required_argument, NULL, 'k' },
		{ "soak", no_argument, NULL, 'S' },
		{ "rate", required_argument, NULL, 'R' },
		{ "churn-percent", required_argument, NULL, 'c' },
		{ "churn-ms", required_argument, NULL, 'C' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "sample-ms", required_argument, NULL, 'M' },
		{ "grace-ms", required_argument, NULL, 'G' },
		{ "deadline", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 10) : 0;

		switch (c) {
		case 'p':
			opt.port = (int)v;
			break;
		case 'd':
			opt.run_dir = optarg;
			break;
		case 'g':
			opt.gpsctl = optarg;
			break;
		case 'r':
			opt.ring = optarg;
			break;
		case 'n':
			opt.subs = (unsigned)v;
			break;
		case 'm':
			opt.messages = (unsigned)v;
			break;
		case 's':
			opt.seconds = (unsigned)v;
			break;
		case 'b':
			opt.broker_kills = (unsigned)v;
			break;
		case 'k':
			opt.kill_percent = (unsigned)v;
			break;
		case 'S':
			opt.soak = true;
			break;
		case 'R':
			opt.rate = (unsigned)v;
			break;
		case 'c':
			opt.churn_percent = (unsigned)v;
			break;
		case 'C':
			opt.churn_ms = (unsigned)v;
			break;
		case 'w':
			opt.warmup_s = (unsigned)v;
			break;
		case 'M':
			opt.sample_ms = (unsigned)v;
			break;
		case 'G':
			opt.grace_ms = (unsigned)v;
			break;
		case 'D':
			opt.deadline_s = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc || opt.port <= 0 || opt.port > 65535 || !opt.run_dir || !opt.gpsctl ||
	    !opt.ring || !opt.subs || !opt.seconds || (opt.soak && (!opt.rate || !opt.churn_ms)))
		return -1;
	if (opt.soak)
		opt.messages = opt.rate * opt.seconds;
	if (!opt.messages)
		return -1;
	opt.sa.sin_family = AF_INET;
	opt.sa.sin_port = htons((uint16_t)opt.port);
	opt.sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 0;
}

static void figure_u(const char *name, uint64_t v)
{
	printf("%s=%" PRIu64 "\n", name, v);
}

static void figure_l(const char *name, long v)
{
	printf("%s=%ld\n", name, v);
}

/* Set up: raise the fd limit, connect every subscriber. 0 or -1. */
static int setup(void)
{
	struct rlimit rl;
	uint64_t deadline;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t want = opt.subs * 2U + FD_SLACK;

		if (rl.rlim_cur < want) {
			rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	pubs = calloc(opt.messages + 1U, sizeof(*pubs));
	if (epfd < 0 || !pubs)
		return -1;
	deadline = now_us() + SETUP_S * US_PER_S;
	if (deadline > t_deadline_us)
		deadline = t_deadline_us;
	for (;;) {
		unsigned streaming = 0, open = 0;

		for (size_t i = 0; i < nsubs; i++) {
			open += subs[i].fd >= 0;
			streaming += subs[i].fd >= 0 && subs[i].head_done;
		}
		if (streaming == opt.subs)
			return 0;
		if (now_us() > deadline) {
			fprintf(stderr,
				"crashload: only %u of %u subscribers streaming after %" PRIu64
				" s (set-up limit %d s, deadline %u s)\n",
				streaming, opt.subs, (now_us() - t_begin_us) / US_PER_S, SETUP_S,
				opt.deadline_s);
			return -1;
		}
		if (open < opt.subs)
			(void)open_more(opt.subs - open);
		poll_once(POLL_MS);
	}
}

/*
 * The broker kills are spread over the publishes, not over time: kill k (1..K) is due once
 * k * M / (K + 1) publishes are answered, and the publisher waits for it if it is half a period
 * late (a restart still going on). So all K land inside the run however slow the machine, each
 * followed by publishes into the outage it causes; and since the publisher does not stop for a
 * kill that is on time, it may hit the broker in the middle of a publish.
 */
static unsigned broker_kills_due(unsigned answered)
{
	uint64_t k = (uint64_t)answered * (opt.broker_kills + 1U) / opt.messages;

	return (unsigned)(k < opt.broker_kills ? k : opt.broker_kills);
}

static bool broker_kill_due(void)
{
	return atomic_load(&broker_kills_done) < broker_kills_due(atomic_load(&pub_done));
}

/* The run: publishing with crashes (or churn) until the publisher is done. */
static int run_load(void)
{
	uint64_t next_broker = 0, next_kill = t_start_us + US_PER_S;
	uint64_t next_churn = t_start_us + (uint64_t)opt.churn_ms * US_PER_MS;
	uint64_t deadline = t_deadline_us;
	long last_broker = -1;
	pthread_t pub_thread, mon_thread;

	if (pthread_create(&pub_thread, NULL, publisher, NULL) != 0)
		return -1;
	if (opt.soak && pthread_create(&mon_thread, NULL, monitor, NULL) != 0)
		return -1;
	while (!atomic_load(&pub_finished)) {
		uint64_t now = now_us();
		unsigned open = 0;

		if (now > deadline) {
			fprintf(stderr,
				"crashload: deadline of %u s: %u of %u published in %" PRIu64
				" s, %u broker kills\n",
				opt.deadline_s, atomic_load(&pub_done), opt.messages,
				(now - t_start_us) / US_PER_S, atomic_load(&broker_kills_done));
			return -1;
		}
		if (!opt.soak && broker_kill_due() && now >= next_broker &&
		    !kill_broker(&last_broker))
			next_broker = now + 50 * US_PER_MS; /* not back yet: a bit later */
		if (!opt.soak && opt.kill_percent && now >= next_kill) {
			unsigned n = (opt.subs * opt.kill_percent + 99U) / 100U;

			kill_frontends(n);
			kill_rounds++;
			next_kill += US_PER_S;
		}
		if (opt.soak && now >= next_churn) {
			hang_up((opt.subs * opt.churn_percent + 99U) / 100U);
			churns++;
			atomic_fetch_add(&churn_epoch, 1);
			next_churn += (uint64_t)opt.churn_ms * US_PER_MS;
		}
		/* keep the population: replace every subscriber that ended */
		for (size_t i = 0; i < nsubs; i++)
			open += subs[i].fd >= 0;
		if (open < opt.subs)
			(void)open_more(opt.subs - open);
		poll_once(POLL_MS);
	}
	(void)pthread_join(pub_thread, NULL);
	t_published_us = now_us();
	if (opt.soak) {
		/* a last churn-free moment: the final sample and X-Subscribers check */
		uint64_t quiet = now_us() + XSUB_WITHIN_MS * US_PER_MS;

		while (now_us() < quiet)
			poll_once(POLL_MS);
		atomic_fetch_add(&churn_epoch, 1);
		quiet = now_us() + (XSUB_WATCH_MS + 2000U) * US_PER_MS;
		while (now_us() < quiet && xsub_checks < churns + 1U)
			poll_once(POLL_MS);
		atomic_store(&monitor_stop, true);
		(void)pthread_join(mon_thread, NULL);
		take_sample();
	}
	if (pub_fd_left >= 0)
		(void)close(pub_fd_left);
	return 0;
}

int main(int argc, char **argv)
{
	struct stored st = { 0 };
	struct verdict v = { 0 };
	unsigned ok200 = 0, s503 = 0, other = 0, stored503 = 0, acked_lost = 0, ts_bad = 0;
	unsigned cursor_bad = 0, killed_subs = 0, hung = 0, ts_back = 0;
	uint64_t drain_deadline, prev_ts = 0, t_end;
	int64_t last_pos;

	if (parse_args(argc, argv) < 0) {
		usage(stderr);
		return 2;
	}
	(void)signal(SIGPIPE, SIG_IGN);
	rng_state ^= (uint64_t)getpid() << 16;
	t_begin_us = now_us();
	t_deadline_us = t_begin_us + (uint64_t)opt.deadline_s * US_PER_S;
	if (setup() < 0)
		return 1;
	for (size_t i = 0; i < nsubs; i++)
		subs[i].initial = subs[i].fd >= 0 && subs[i].head_done;
	t_start_us = now_us();
	fprintf(stderr, "crashload: %u subscribers streaming after %.1f s\n", opt.subs,
		(double)(t_start_us - t_begin_us) / (double)US_PER_S);
	if (run_load() < 0)
		return 1;
	t_end = now_us();

	if (load_stored(&st) < 0) {
		fprintf(stderr, "crashload: unable to read the ring with '%s'\n", opt.gpsctl);
		return 1;
	}
	/* let every connected subscriber catch up with the last stored message */
	drain_deadline = now_us() + DRAIN_S * US_PER_S;
	if (drain_deadline > t_deadline_us)
		drain_deadline = t_deadline_us;
	while (st.count && !all_caught_up(&st) && now_us() < drain_deadline)
		poll_once(POLL_MS);

	/* the publishes */
	for (unsigned n = 1; n <= opt.messages; n++) {
		const struct pub_rec *p = &pubs[n];

		if (p->status == 200) {
			ok200++;
			if (st.pos[n] < 0)
				acked_lost++;
			else {
				if (p->timestamp != st.time_s[n])
					ts_bad++;
				if (p->cursor_seq != st.seq[n])
					cursor_bad++;
			}
			if (p->timestamp < prev_ts)
				ts_back++;
			prev_ts = p->timestamp;
		} else if (p->status == 503) {
			s503++;
			if (st.pos[n] >= 0)
				stored503++;
		} else {
			other++;
		}
	}

	/* the subscribers */
	last_pos = st.count ? (int64_t)st.count - 1 : -1;
	for (size_t i = 0; i < nsubs; i++) {
		const struct sub *s = &subs[i];
		int64_t start, end = -1;

		if (s->killed)
			killed_subs++;
		if (s->hung_up)
			hung++;
		if (s->unexpected)
			v.unexpected++;
		if (s->malformed) {
			v.malformed++;
			continue;
		}
		if (!s->head_done)
			continue;
		start = first_sent_after(&st, s->head_us);
		if (s->fd >= 0) {
			end = last_pos; /* still connected: everything */
			v.survivors++;
			v.survivors_initial += s->initial;
		} else if (s->hung_up) {
			end = last_acked_before(&st, s->end_us - opt.grace_ms * US_PER_MS);
		}
		if (start < 0 || (end >= 0 && end < start))
			end = -1;
		check_sub(s, &st, start, end, &v);
		v.checked_subs++;
	}

	figure_u("mode_soak", opt.soak);
	figure_u("seconds", (t_end - t_start_us) / US_PER_S);
	figure_u("publish_seconds", (t_published_us - t_start_us) / US_PER_S);
	figure_u("subscribers", opt.subs);
	figure_u("published", opt.messages);
	figure_u("status_200", ok200);
	figure_u("status_503", s503);
	figure_u("status_other", other);
	figure_u("stored", st.count);
	figure_u("stored_503", stored503);
	figure_u("acked_lost", acked_lost);
	figure_u("stored_foreign", st.foreign);
	figure_u("stored_duplicate", st.duplicate);
	figure_u("stored_disorder", st.disorder);
	figure_u("timestamp_mismatch", ts_bad);
	figure_u("timestamp_backwards", ts_back);
	figure_u("cursor_mismatch", cursor_bad);
	figure_u("broker_kills", atomic_load(&broker_kills_done));
	figure_u("frontends_killed", frontends_killed);
	figure_u("kill_rounds", kill_rounds);
	figure_u("kill_misses", kill_misses);
	figure_u("subscribers_killed", killed_subs);
	figure_u("subscribers_hung_up", hung);
	figure_u("churns", churns);
	figure_u("subscribers_total", nsubs);
	figure_u("subscribers_checked", v.checked_subs);
	figure_u("survivors", v.survivors);
	figure_u("survivors_initial", v.survivors_initial);
	figure_u("unexpected_closes", v.unexpected);
	figure_u("connect_failures", connect_failures);
	figure_u("deliveries_checked", v.deliveries);
	figure_u("duplicates", v.duplicates);
	figure_u("reorders", v.reorders);
	figure_u("lost", v.lost);
	figure_u("late_starts", v.late_start);
	figure_u("phantom", v.phantom);
	figure_u("malformed", v.malformed);
	figure_u("gaps", v.gaps);
	figure_u("gaps_exact", v.gaps_exact);
	figure_u("gaps_inexact", v.gaps_inexact);
	if (opt.soak) {
		const struct sample *first = NULL, *last = nsamples ? &samples[nsamples - 1] : NULL;
		long bfd_min = LONG_MAX, bfd_max = -1, lfd_min = LONG_MAX, lfd_max = -1;

		for (unsigned i = 0; i < nsamples; i++) {
			const struct sample *x = &samples[i];

			if (!first)
				first = x;
			bfd_min = x->broker_fds < bfd_min ? x->broker_fds : bfd_min;
			bfd_max = x->broker_fds > bfd_max ? x->broker_fds : bfd_max;
			lfd_min = x->listener_fds < lfd_min ? x->listener_fds : lfd_min;
			lfd_max = x->listener_fds > lfd_max ? x->listener_fds : lfd_max;
		}
		figure_u("xsub_checks", xsub_checks);
		figure_u("xsub_late", xsub_late);
		figure_u("xsub_never", xsub_never);
		figure_u("xsub_errors", xsub_errors);
		figure_u("xsub_max_settle_ms", xsub_max_settle_ms);
		figure_u("samples", nsamples);
		if (first && last) {
			figure_l("broker_pid_first", first->broker_pid);
			figure_l("broker_pid_last", last->broker_pid);
			figure_l("broker_rss_kib_first", first->rss_kib);
			figure_l("broker_rss_kib_last", last->rss_kib);
			figure_l("broker_private_kib_first", first->anon_kib + first->file_kib);
			figure_l("broker_private_kib_last", last->anon_kib + last->file_kib);
			figure_l("broker_anon_kib_first", first->anon_kib);
			figure_l("broker_anon_kib_last", last->anon_kib);
			figure_l("broker_shmem_kib_first", first->shmem_kib);
			figure_l("broker_shmem_kib_last", last->shmem_kib);
			figure_l("broker_pss_kib_first", first->pss_kib);
			figure_l("broker_pss_kib_last", last->pss_kib);
			figure_l("broker_pss_anon_kib_first", first->pss_anon_kib);
			figure_l("broker_pss_anon_kib_last", last->pss_anon_kib);
			figure_l("broker_fds_first", first->broker_fds);
			figure_l("broker_fds_last", last->broker_fds);
			figure_l("broker_fds_min", bfd_min);
			figure_l("broker_fds_max", bfd_max);
			figure_l("listener_fds_first", first->listener_fds);
			figure_l("listener_fds_last", last->listener_fds);
			figure_l("listener_fds_min", lfd_min);
			figure_l("listener_fds_max", lfd_max);
		}
	}
	fflush(stdout);
	fprintf(stderr,
		"crashload: %u published: %u 200, %u 503 (%u of them stored anyway), %u other; "
		"%" PRIu64 " deliveries checked over %u subscribers: %" PRIu64 " duplicates, "
		"%" PRIu64 " reorders, %" PRIu64 " lost, %u malformed, %" PRIu64 " gaps\n",
		opt.messages, ok200, s503, stored503, other, v.deliveries, v.checked_subs,
		v.duplicates, v.reorders, v.lost, v.malformed, v.gaps);
	return 0;
}
