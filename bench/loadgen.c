/* SPDX-License-Identifier: MIT */
/*
 * loadgen: the load generator of the benchmark suite (README "Performance").
 *
 * One process, one epoll loop, no threads: many subscriber connections, each parsing its
 * response head, then the chunked stream (PROTOCOL 3.2) or a close-delimited one (3.6)
 * incrementally into lines, and one or more keep-alive publisher connections POSTing
 * {"bench":{"p":P,"seq":N,"t":<CLOCK_REALTIME ns>,"pad":"..."}} (pipelined up to a window,
 * rate-limited or saturating). Every subscriber keeps a bitmap of the sequence numbers it got
 * from each publisher, so loss, duplication and reordering are exact, not sampled; latency is
 * receive time minus the embedded send time, kept in a log-bucket histogram (HdrHistogram's
 * idea: 128 linear sub-buckets per power of two, under 0.8 % error).
 *
 * It speaks to our service and to nchan. nchan's "http-chunked" subscriber (asked for with
 * "TE: chunked") sends each message as one chunk holding the published body; the publisher
 * appends CRLF to every body sent to nchan (--server nchan), so both servers put the very same
 * bytes on the wire: "<hex len+2>\r\n<json>\r\n\r\n". Our server strips the CRLF (PROTOCOL 4.3)
 * and adds it back in its framing. A close-delimited stream of lines (nchan's http-raw-stream,
 * our HTTP/1.0 form) parses too; only the framing check (one message per chunk) is then moot.
 *
 * Modes (each prints readable lines starting with '#' and one machine-readable line starting
 * with "result "; see --help):
 *   latency  subscribe N, warm up, publish (rate or saturating), drain: latency, rates, loss
 *   connect  open N subscribers as fast as possible (a window of connects in flight), each
 *            counted when its response head arrives; they stay open
 *   idle     open N subscribers, check each is live with one message, print "ready", hold
 *            until SIGTERM/SIGINT or --hold seconds while the runner measures memory
 *   replay   publish --count messages with no subscriber, then one subscriber asks for all of
 *            them (X-Fetch-Since: 0, or nchan's oldest-first location): MB/s until live
 *
 * Exit status: 0 when the run completed (its figures, errors included, are in the result
 * line), 1 on a runtime failure (no server, a phase timed out), 2 on a usage error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"
#include "shm/topic.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h; glibc 2.36's netinet/in.h lacks it */
#endif

#define NSEC_PER_SEC UINT64_C(1000000000)
#define NSEC_PER_MS  UINT64_C(1000000)

#define LG_MAX_SUBS	    100000u /* fds: RLIMIT_NOFILE is raised to fit, within the hard limit */
#define LG_MAX_PUBS	    64u	    /* publisher connections; each is a process on our side */
#define LG_MAX_WINDOW	    1024u   /* requests in flight per publisher (pipelining depth) */
#define LG_FIFO		    2048u   /* > LG_MAX_WINDOW: kinds of the requests awaiting answers */
#define LG_HEAD_MAX	    2048u   /* a response head larger than this is an error */
#define LG_LINE_MAX	    ((size_t)4 * 1024 * 1024) /* longest stream line: 2 MiB bodies and slack */
#define LG_READ_BUF	    ((size_t)256 * 1024)      /* one read(2) of a subscriber socket */
#define LG_PUB_IN	    ((size_t)64 * 1024)	      /* a publisher's unparsed answers */
#define LG_REQ_HEAD_MAX	    512u		      /* a POST's request line and headers */
#define LG_MSG_MAX	    ((size_t)1024 * 1024) /* --size limit: half the default body limit */
#define LG_EVENTS	    512			  /* epoll events taken per wake */
#define LG_SRC_ADDRS_MAX    250u		  /* 127.0.0.1 .. 127.0.0.250 as source addresses */
#define LG_CONNECT_TRIES    3u /* a refused or reset connect is retried this often */
#define LG_WARM_PERIOD_NS   (20 * NSEC_PER_MS)	/* warm-up message pace */
#define LG_PHASE_TIMEOUT    (60 * NSEC_PER_SEC) /* connect, warm-up, replay: each bounded */
#define LG_LIVE_TIMEOUT	    (10 * NSEC_PER_SEC) /* replay: the live message after it */
#define LG_DEFAULT_DURATION 3.0		/* seconds of publishing without --duration or --count */
#define LG_LATE_NS	    NSEC_PER_MS /* rate mode: a message sent this late was held back */
#define LG_SIG_TAG	    UINT64_C(0xffffffff)
#define LG_MAX_PROCS	    16u			/* subscriber processes of one run (--procs) */
#define LG_FINAL_TIMEOUT    (10 * NSEC_PER_SEC) /* children's final figures, once asked */
#define LG_MAX_NODES	    16u /* --ports: servers of one cluster (the bench runs three) */

/*
 * Without --procs, one process per LG_SUBS_PER_PROC subscribers: each under this machine's
 * 20,000-descriptor hard limit with room to spare. Without --src-addrs, one source address per
 * LG_SUBS_PER_ADDR: each address has about 28,000 ephemeral ports to the server.
 */
#define LG_SUBS_PER_PROC 16000u
#define LG_SUBS_PER_ADDR 16000u

/* Histogram: values in ns; HIST_SUB linear buckets below HIST_SUB, then HIST_HALF per octave. */
#define HIST_SUB_BITS 8u
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_HALF     (HIST_SUB / 2u)
#define HIST_BUCKETS  (HIST_SUB + (64u - HIST_SUB_BITS) * HIST_HALF)

enum mode { MODE_LATENCY, MODE_CONNECT, MODE_IDLE, MODE_REPLAY };
static const char *const mode_names[] = { "latency", "connect", "idle", "replay" };

enum server { SERVER_OURS, SERVER_NCHAN };

enum sub_state { SUB_UNUSED, SUB_CONNECTING, SUB_HEAD, SUB_STREAM, SUB_DEAD };

/* Chunked decoder states (RFC 9112 7.1), byte by byte except for chunk data. */
enum chunk_state { CS_SIZE, CS_EXT, CS_SIZE_LF, CS_DATA, CS_DATA_CR, CS_DATA_LF, CS_DONE };

enum req_kind { REQ_BENCH, REQ_WARM };

struct hist {
	uint64_t n[HIST_BUCKETS];
	uint64_t count, min, max;
	double sum;
};

/* One subscriber's view of one publisher's sequence: which numbers came, exactly. */
struct track {
	uint64_t *bits;
	uint64_t cap; /* bits */
	uint64_t unique, max_plus1, dups, reorders;
};

struct sub {
	int fd;
	uint8_t state; /* enum sub_state */
	uint8_t cs;    /* enum chunk_state */
	uint8_t tries;
	bool chunked, warmed;
	uint16_t head_len;
	uint16_t src;	      /* index of the source address */
	uint32_t chunk_lines; /* lines ended inside the current chunk */
	uint64_t chunk_left;
	uint64_t t_start, t_head; /* monotonic ns: connect(2) called, head complete */
	char *line;		  /* a line split across reads or chunks */
	uint32_t line_len, line_cap;
	struct track *tr; /* [npubs], allocated at the first bench message */
	char head[LG_HEAD_MAX];
};

struct pub {
	int fd;
	uint32_t id;
	uint32_t outstanding; /* requests sent or queued whose answer has not been read */
	uint64_t next_seq;
	uint64_t ok, errors;
	char *out; /* requests not yet written */
	size_t out_len, out_off, out_cap;
	char in[LG_PUB_IN];
	size_t in_len;
	uint64_t body_left; /* of the answer being read */
	bool in_body, want_out, closing;
	int status;
	uint8_t fifo[LG_FIFO];	  /* enum req_kind of each request in flight, in order */
	uint64_t fifo_t[LG_FIFO]; /* when each was queued (monotonic ns) */
	uint32_t fifo_head, fifo_tail;
};

struct opts {
	enum mode mode;
	enum server server;
	const char *host, *label, *sub_path, *pub_path, *replay_path, *hist_file, *ports_arg;
	uint16_t port;
	uint16_t ports[LG_MAX_NODES]; /* --ports: node k's port; subscriber i and publisher j */
	uint32_t nodes;		      /* go to node i % nodes and j % nodes (1: --port alone) */
	uint32_t subs, pubs, window, connect_window, src_addrs, size, procs;
	double rate, duration, drain, hold, timeout, replay_timeout;
	uint64_t count;
	bool verify, go_signal;
};

/*
 * --procs N > 1: the subscribers are spread over N child processes (a process may hold at most
 * 20,000 descriptors here); the parent holds the publishers and no subscriber. Each child
 * writes its counters into its slot of a shared anonymous mapping after every turn of its loop;
 * the parent adds them up (gather) and, at the end, asks for the final figures: it stores the
 * acknowledged counts and final (release), each child writes its loss and histograms and done
 * (release). Plain fields are read and written with relaxed atomics (SH_GET, SH_SET).
 */
#define SH_GET(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SH_SET(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

struct proc_slot {
	uint64_t heads, warmed, dead, connect_failed, closed_by_server, connect_retries;
	uint64_t unique, dups, reorders, gaps, keepalives, warm_msgs, unknown, framing_errors;
	uint64_t chunks, body_bytes, payload_bytes, t_last_delivery, t_last_head, loss;
	uint64_t t_first_connect;
	int64_t err;   /* the child's first failure (-errno), or 0 */
	uint64_t done; /* 1: loss and the histograms below are final (release) */
	struct hist lat, head_lat, cross_lat, local_lat;
};

struct lg_shared {
	uint64_t stop;		 /* the parent says: children, close and exit */
	uint64_t record_latency; /* the measured part has begun */
	uint64_t final;		 /* ok[] is set: write the final figures (release) */
	uint64_t ok[LG_MAX_PUBS];
	struct proc_slot slot[LG_MAX_PROCS];
};

struct lg {
	struct opts o;
	int ep, sigfd;
	struct sockaddr_in dst[LG_MAX_NODES]; /* node k (--ports), or dst[0] alone */
	uint8_t *rbuf;
	char sub_req[512];
	size_t sub_req_len;

	struct sub *subs;
	uint32_t started, heads, warmed, dead, connect_failed, connect_retries, closed_by_server;
	uint32_t src_base;	 /* added to every source index after EADDRNOTAVAIL */
	uint32_t sub_lo, sub_hi; /* this process opens subs[sub_lo..sub_hi) */
	int proc;		 /* -1: the parent (or the only process); else the child's index */
	pid_t parent;		 /* a child: its parent, whose end ends it too */
	pid_t kids[LG_MAX_PROCS];
	struct lg_shared *sh; /* --procs > 1 */
	bool go;	      /* --go-signal: SIGUSR1 came */
	struct pub *pubs;
	uint64_t warm_seq;
	bool stop;
	int err; /* the first failure (-errno), said when it happened; loop_once returns it */

	/* counters over every subscriber */
	uint64_t unique, dups, reorders, gaps, keepalives, warm_msgs, unknown, framing_errors;
	uint64_t chunks, body_bytes, payload_bytes, bad_pub;
	bool record_latency;
	uint64_t t_first_pub, t_last_answer, t_last_delivery, t_send_end, t_last_head;
	uint64_t t_first_connect;	    /* the first subscriber's connect(2), monotonic ns */
	uint64_t late, sent;		    /* late: sent over LG_LATE_NS after due */
	struct hist lat, head_lat, ack_lat; /* ack: publish request queued to its answer read */
	/* --ports: deliveries of a message published on another node than the subscriber's
	 * (cross), and on its own node (local) */
	struct hist cross_lat, local_lat;
};

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	(void)clock_gettime(clk, &ts); /* cannot fail for these clocks */
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t real_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

_printf_(1, 2) static void say(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* --- histogram ------------------------------------------------------------------------ */

static unsigned hist_index(uint64_t v)
{
	unsigned e, shift;

	if (v < HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
	shift = e - HIST_SUB_BITS + 1u;		/* so v >> shift is in [HIST_HALF, HIST_SUB) */
	return HIST_SUB + (shift - 1u) * HIST_HALF + (unsigned)((v >> shift) - HIST_HALF);
}

/* The middle of bucket i: the value every sample in it is reported as. */
static uint64_t hist_value(unsigned i)
{
	unsigned shift;
	uint64_t m;

	if (i < HIST_SUB)
		return i;
	shift = (i - HIST_SUB) / HIST_HALF + 1u;
	m = (i - HIST_SUB) % HIST_HALF + HIST_HALF;
	return (m << shift) + ((UINT64_C(1) << shift) >> 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->n[hist_index(v)]++;
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count++;
	h->sum += (double)v;
}

/* The value at quantile q (0..1]: the smallest bucket whose cumulative count reaches q. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;
	unsigned i;

	if (!h->count)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->n[i];
		if (seen >= rank)
			return MIN(MAX(hist_value(i), h->min), h->max);
	}
	return h->max;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* CDF for gnuplot: "<value in us> <fraction of samples at or below>", one bucket a line. */
static int hist_write(const struct hist *h, const char *path)
{
	uint64_t seen = 0;
	unsigned i;
	FILE *f;
	int err = 0;

	f = fopen(path, "we");
	if (!f)
		return -errno;
	fprintf(f, "# value_us cumulative_fraction (%" PRIu64 " samples)\n", h->count);
	for (i = 0; i < HIST_BUCKETS && h->count; i++) {
		if (!h->n[i])
			continue;
		seen += h->n[i];
		fprintf(f, "%.3f %.6f\n", us(MIN(MAX(hist_value(i), h->min), h->max)),
			(double)seen / (double)h->count);
	}
	if (ferror(f))
		err = -EIO;
	if (fclose(f) != 0 && !err)
		err = -errno;
	return err;
}

/* --- small parsers ---------------------------------------------------------------------- */

/* Skip the literal lit at *p; false if the bytes differ or run out. */
static bool eat(const char **p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* A decimal at *p; false without a digit or on overflow. */
static bool eat_u64(const char **p, const char *end, uint64_t *ret)
{
	const char *s = *p;
	uint64_t v = 0;

	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9u) / 10u)
			return false;
		v = v * 10u + (uint64_t)(*s - '0');
		s++;
	}
	if (s == *p)
		return false;
	*p = s;
	*ret = v;
	return true;
}

/* Find "\r\n\r\n" in p[0..n): the head's length including it, or 0. */
static size_t head_end(const char *p, size_t n)
{
	const char *e = memmem(p, n, "\r\n\r\n", 4);

	return e ? (size_t)(e - p) + 4u : 0;
}

/* The value of header name in head (case-insensitive name), or NULL; *len gets its length. */
static const char *head_value(const char *head, size_t n, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', n), *end = head + n;

	while (p && p + 1 < end) {
		const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line));

		if (!eol)
			break;
		if ((size_t)(eol - line) > nl && line[nl] == ':' && !strncasecmp(line, name, nl)) {
			const char *v = line + nl + 1, *ve = eol;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*len = (size_t)(ve - v);
			return v;
		}
		p = eol;
	}
	return NULL;
}

/* "HTTP/1.x NNN ..." to NNN, or -1. */
static int head_status(const char *head, size_t n)
{
	if (n < 12 || memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
		return -1;
	if (head[9] < '1' || head[9] > '5' || head[10] < '0' || head[10] > '9' || head[11] < '0' ||
	    head[11] > '9')
		return -1;
	return (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
}

/* --- subscribers: stream parsing -------------------------------------------------------- */

static void sub_kill(struct lg *g, struct sub *s, bool by_server);

/* Record the run's first failure (err: -errno) and say what it was; the loop stops on it. */
_printf_(3, 4) static void fail(struct lg *g, int err, const char *fmt, ...)
{
	va_list ap;

	if (g->err)
		return;
	g->err = err;
	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The seq bitmap of track t must hold bit seq. 0 or -ENOMEM. */
static int track_reserve(struct track *t, uint64_t seq)
{
	uint64_t cap = t->cap ? t->cap : 4096u, *bits;

	if (seq < t->cap)
		return 0;
	while (cap <= seq)
		cap *= 2u;
	bits = realloc(t->bits, cap / 8u);
	if (!bits)
		return -ENOMEM;
	memset((uint8_t *)bits + t->cap / 8u, 0, (cap - t->cap) / 8u);
	t->bits = bits;
	t->cap = cap;
	return 0;
}

static void sub_bench(struct lg *g, struct sub *s, uint64_t p, uint64_t seq, uint64_t t,
		      uint64_t now_real, uint64_t now_mono)
{
	struct track *tr;
	uint64_t bit;

	if (p >= g->o.pubs) {
		g->unknown++;
		return;
	}
	if (!s->tr)
		s->tr = calloc(g->o.pubs, sizeof(*s->tr));
	tr = s->tr ? &s->tr[p] : NULL;
	if (!tr || track_reserve(tr, seq) < 0) {
		fail(g, -ENOMEM, "out of memory for the sequence bitmaps");
		sub_kill(g, s, false);
		return;
	}
	bit = UINT64_C(1) << (seq % 64u);
	if (tr->bits[seq / 64u] & bit) {
		tr->dups++;
		g->dups++;
		return;
	}
	tr->bits[seq / 64u] |= bit;
	tr->unique++;
	g->unique++;
	if (seq + 1u < tr->max_plus1) {
		tr->reorders++;
		g->reorders++;
	} else {
		tr->max_plus1 = seq + 1u;
	}
	g->t_last_delivery = now_mono;
	if (g->record_latency || (g->sh && SH_GET(g->sh->record_latency))) {
		uint64_t d = now_real > t ? now_real - t : 0;

		hist_add(&g->lat, d);
		/* publisher p writes to node p % nodes, subscriber i reads node i % nodes */
		if (g->o.nodes > 1)
			hist_add(p % g->o.nodes == (uint64_t)(s - g->subs) % g->o.nodes
					 ? &g->local_lat
					 : &g->cross_lat,
				 d);
	}
}

/* One line of the stream (CR LF stripped by the caller). */
static void sub_line(struct lg *g, struct sub *s, const char *l, size_t n, uint64_t now_real,
		     uint64_t now_mono)
{
	const char *p = l, *end = l + n;
	uint64_t pub, seq, t;

	if (n && l[n - 1] == '\r')
		end--;
	if (eat(&p, end, "{\"bench\":{\"p\":")) {
		if (eat_u64(&p, end, &pub) && eat(&p, end, ",\"seq\":") && eat_u64(&p, end, &seq) &&
		    eat(&p, end, ",\"t\":") && eat_u64(&p, end, &t)) {
			g->payload_bytes += (uint64_t)(end - l);
			sub_bench(g, s, pub, seq, t, now_real, now_mono);
		} else {
			g->unknown++;
		}
	} else if (eat(&p, end, "{\"bench\":{\"warm\":")) {
		g->warm_msgs++;
		if (!s->warmed) {
			s->warmed = true;
			g->warmed++;
		}
	} else if (eat(&p, end, "{\"stillalive\":")) {
		g->keepalives++;
	} else if (eat(&p, end, "{\"gap\":")) {
		g->gaps++;
	} else {
		g->unknown++;
	}
}

/* Body bytes that are stream text: cut into lines; a line split across calls is kept. */
static void sub_text(struct lg *g, struct sub *s, const char *p, size_t n, uint64_t now_real,
		     uint64_t now_mono)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1u : n;

		if (nl && !s->line_len) {
			sub_line(g, s, p, take - 1u, now_real, now_mono); /* in place: no copy */
		} else {
			if (s->line_len + take > s->line_cap) {
				size_t cap = s->line_cap ? s->line_cap : 1024u;
				char *b;

				while (cap < s->line_len + take)
					cap *= 2u;
				if (cap > LG_LINE_MAX) {
					g->unknown++;
					sub_kill(g, s, false);
					return;
				}
				b = realloc(s->line, cap);
				if (!b) {
					fail(g, -ENOMEM, "out of memory for a stream line");
					sub_kill(g, s, false);
					return;
				}
				s->line = b;
				s->line_cap = (uint32_t)cap;
			}
			memcpy(s->line + s->line_len, p, take);
			s->line_len += (uint32_t)take;
			if (nl) {
				sub_line(g, s, s->line, s->line_len - 1u, now_real, now_mono);
				s->line_len = 0;
			}
		}
		if (nl)
			s->chunk_lines++;
		p += take;
		n -= take;
	}
}

/*
 * Chunked body bytes. PROTOCOL 3.2 puts exactly one message (one line) in each chunk: a chunk
 * that ends inside a line or holds more than one counts as a framing error (legal HTTP, but
 * not the contract). A malformed chunk kills the connection.
 */
static void sub_chunked(struct lg *g, struct sub *s, const char *p, size_t n, uint64_t now_real,
			uint64_t now_mono)
{
	while (n && s->state == SUB_STREAM) {
		char c = *p;
		int v;

		switch (s->cs) {
		case CS_SIZE:
			v = topic_hex_value(c);
			if (v >= 0 && s->chunk_left < (UINT64_C(1) << 59)) {
				s->chunk_left = s->chunk_left * 16u + (uint64_t)v;
			} else if (c == ';') {
				s->cs = CS_EXT;
			} else if (c == '\r') {
				s->cs = CS_SIZE_LF;
			} else {
				g->framing_errors++;
				sub_kill(g, s, false);
				return;
			}
			p++;
			n--;
			break;
		case CS_EXT:
			if (c == '\r')
				s->cs = CS_SIZE_LF;
			p++;
			n--;
			break;
		case CS_SIZE_LF:
			if (c != '\n') {
				g->framing_errors++;
				sub_kill(g, s, false);
				return;
			}
			s->cs = s->chunk_left ? CS_DATA : CS_DONE;
			s->chunk_lines = 0;
			g->chunks++;
			p++;
			n--;
			break;
		case CS_DATA: {
			size_t take = (size_t)MIN((uint64_t)n, s->chunk_left);

			sub_text(g, s, p, take, now_real, now_mono);
			if (s->state != SUB_STREAM)
				return;
			s->chunk_left -= take;
			p += take;
			n -= take;
			if (!s->chunk_left) {
				if (s->line_len || s->chunk_lines != 1u)
					g->framing_errors++;
				s->cs = CS_DATA_CR;
			}
			break;
		}
		case CS_DATA_CR:
		case CS_DATA_LF:
			if (c != (s->cs == CS_DATA_CR ? '\r' : '\n')) {
				g->framing_errors++;
				sub_kill(g, s, false);
				return;
			}
			s->cs = s->cs == CS_DATA_CR ? CS_DATA_LF : CS_SIZE;
			p++;
			n--;
			break;
		default: /* CS_DONE: the stream ended; PROTOCOL 3.1 says it never does */
			g->framing_errors++;
			sub_kill(g, s, true);
			return;
		}
	}
}

static void sub_body(struct lg *g, struct sub *s, const char *p, size_t n, uint64_t now_real,
		     uint64_t now_mono)
{
	g->body_bytes += n;
	if (s->chunked)
		sub_chunked(g, s, p, n, now_real, now_mono);
	else
		sub_text(g, s, p, n, now_real, now_mono);
}

/* Bytes read from a subscriber: the head first, then the body. */
static void sub_input(struct lg *g, struct sub *s, const char *p, size_t n)
{
	uint64_t now_real = real_ns(), now_mono = mono_ns();

	if (s->state == SUB_HEAD) {
		size_t take = MIN(n, (size_t)(LG_HEAD_MAX - s->head_len)), end, vlen;
		const char *te;
		int status;

		memcpy(s->head + s->head_len, p, take);
		end = head_end(s->head, s->head_len + take);
		if (!end) {
			s->head_len = (uint16_t)(s->head_len + take);
			if (s->head_len >= LG_HEAD_MAX) {
				say("subscriber: response head larger than %u bytes", LG_HEAD_MAX);
				sub_kill(g, s, false);
			}
			return;
		}
		status = head_status(s->head, end);
		if (status != 200) {
			say("subscriber: status %d instead of 200: %.*s", status,
			    (int)strcspn(s->head, "\r\n"), s->head);
			sub_kill(g, s, false);
			return;
		}
		te = head_value(s->head, end, "Transfer-Encoding", &vlen);
		s->chunked = te && vlen == 7 && !strncasecmp(te, "chunked", 7);
		s->state = SUB_STREAM;
		s->cs = CS_SIZE;
		s->t_head = now_mono;
		g->t_last_head = MAX(g->t_last_head, now_mono);
		hist_add(&g->head_lat, now_mono - s->t_start);
		g->heads++;
		/* What followed the head in this read is body. */
		take = end - s->head_len;
		s->head_len = (uint16_t)end;
		p += take;
		n -= take;
	}
	if (n && s->state == SUB_STREAM)
		sub_body(g, s, p, n, now_real, now_mono);
}

/* --- subscribers: connections ------------------------------------------------------------ */

static void sub_close_fd(struct sub *s, bool reset)
{
	if (s->fd < 0)
		return;
	if (reset) {
		/* RST, not FIN: no TIME_WAIT left behind to eat the next run's ports. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		(void)setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	(void)close(s->fd);
	s->fd = -1;
}

static void sub_kill(struct lg *g, struct sub *s, bool by_server)
{
	if (s->state == SUB_DEAD)
		return;
	if (s->state == SUB_CONNECTING || s->state == SUB_HEAD)
		g->connect_failed++;
	if (by_server && s->state == SUB_STREAM)
		g->closed_by_server++;
	s->state = SUB_DEAD;
	g->dead++;
	sub_close_fd(s, true);
}

static int ep_add(struct lg *g, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int ep_mod(struct lg *g, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };

	return epoll_ctl(g->ep, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

static uint64_t tag_sub(uint32_t i)
{
	return i;
}

static uint64_t tag_pub(uint32_t i)
{
	return (UINT64_C(1) << 32) | i;
}

/* Start connecting subscriber i (non-blocking). 0, or -errno when no source address works. */
static int sub_connect(struct lg *g, uint32_t i)
{
	struct sub *s = &g->subs[i];
	int one = 1, fd, err;

	for (;;) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		uint32_t a = (s->src + g->src_base) % LG_SRC_ADDRS_MAX;

		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (g->o.src_addrs > 1 || g->src_base) {
			/* Several 127.0.0.x: each has its own ephemeral port space to the server. */
			(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
					 sizeof(one));
			src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + a);
			if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
				err = -errno;
				(void)close(fd);
				return err;
			}
		}
		s->t_start = mono_ns();
		if (!g->t_first_connect)
			g->t_first_connect = s->t_start;
		if (connect(fd, (const struct sockaddr *)&g->dst[i % g->o.nodes],
			    sizeof(g->dst[0])) == 0 ||
		    errno == EINPROGRESS)
			break;
		err = -errno;
		(void)close(fd);
		if (err != -EADDRNOTAVAIL || g->src_base + 1u >= LG_SRC_ADDRS_MAX)
			return err;
		g->src_base++; /* ports ran short on this address: move every later one on */
		say("ephemeral ports ran short; source addresses now start at 127.0.0.%u",
		    1u + g->src_base);
	}
	s->fd = fd;
	s->state = SUB_CONNECTING;
	s->head_len = 0;
	err = ep_add(g, fd, EPOLLOUT, tag_sub(i));
	if (err < 0) {
		(void)close(fd);
		s->fd = -1;
		return err;
	}
	return 0;
}

static void sub_event(struct lg *g, uint32_t i, uint32_t events)
{
	struct sub *s = &g->subs[i];
	ssize_t n;

	if (s->state == SUB_CONNECTING) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		(void)getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (!soerr && !(events & (EPOLLERR | EPOLLHUP))) {
			n = write(s->fd, g->sub_req, g->sub_req_len);
			if (n == (ssize_t)g->sub_req_len &&
			    ep_mod(g, s->fd, EPOLLIN, tag_sub(i)) == 0) {
				s->state = SUB_HEAD;
				return;
			}
			soerr = n < 0 ? errno : EIO;
		}
		sub_close_fd(s, false);
		if (++s->tries < LG_CONNECT_TRIES && sub_connect(g, i) == 0) {
			g->connect_retries++;
			return;
		}
		say("subscriber %u: unable to connect: %s", i, strerror(soerr));
		s->state = SUB_CONNECTING;
		sub_kill(g, s, false);
		return;
	}
	if (s->state != SUB_HEAD && s->state != SUB_STREAM)
		return;
	n = read(s->fd, g->rbuf, LG_READ_BUF);
	if (n > 0) {
		sub_input(g, s, (const char *)g->rbuf, (size_t)n);
	} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
		if (s->state == SUB_HEAD)
			say("subscriber %u: closed before the response head", i);
		sub_kill(g, s, true);
	}
}

/* --- publishers -------------------------------------------------------------------------- */

static int pub_open(struct lg *g, struct pub *p)
{
	int one = 1, fd;

	if (p->fd >= 0)
		return 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Blocking connect: a handful of publishers, before anything is measured. */
	if (connect(fd, (const struct sockaddr *)&g->dst[p->id % g->o.nodes], sizeof(g->dst[0])) <
	    0) {
		int err = -errno;

		(void)close(fd);
		return err;
	}
	p->fd = fd;
	p->want_out = false;
	p->closing = false;
	p->in_body = false;
	p->in_len = 0;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	return ep_add(g, fd, EPOLLIN, tag_pub(p->id));
}

/* A publisher broke the run: record why, and drop its connection and requests. */
static void pub_fail(struct lg *g, struct pub *p, const char *why)
{
	fail(g, -EPROTO, "publisher %u: %s", p->id, why);
	if (p->fd >= 0)
		(void)close(p->fd);
	p->fd = -1;
	p->out_off = p->out_len = 0;
	p->in_len = 0;
	p->outstanding = 0;
	p->fifo_head = p->fifo_tail;
}

/*
 * The server closed an idle keep-alive connection (ours answers 408 after headerTimeout on a
 * connection that sends nothing; nginx closes after keepalive_timeout): legal HTTP, so the
 * next request opens a new one. Closing it with requests in flight is a failure.
 */
static void pub_reset(struct lg *g, struct pub *p)
{
	if (p->outstanding) {
		pub_fail(g, p,
			 p->closing ? "the server closed after an error answer"
				    : "the server closed the connection");
		return;
	}
	(void)close(p->fd);
	p->fd = -1;
	p->out_off = p->out_len = 0;
}

/* Queue one POST with the JSON text body[0..len); the kind says how its answer counts. */
static void pub_queue(struct lg *g, struct pub *p, const char *body, size_t len, enum req_kind k)
{
	bool crlf = g->o.server == SERVER_NCHAN; /* nchan relays the body as the chunk: add CRLF */
	int h, err;

	if (g->err)
		return;
	err = pub_open(g, p);
	if (err < 0) {
		fail(g, err, "publisher %u: unable to connect: %s", p->id, strerror(-err));
		return;
	}
	if (p->out_off == p->out_len)
		p->out_off = p->out_len = 0;
	h = snprintf(p->out + p->out_len, p->out_cap - p->out_len,
		     "POST %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     g->o.pub_path, g->o.host, g->o.ports[p->id % g->o.nodes],
		     len + (crlf ? 2u : 0u));
	p->out_len += (size_t)h;
	memcpy(p->out + p->out_len, body, len);
	p->out_len += len;
	if (crlf) {
		memcpy(p->out + p->out_len, "\r\n", 2);
		p->out_len += 2;
	}
	p->fifo_t[p->fifo_tail % LG_FIFO] = mono_ns();
	p->fifo[p->fifo_tail++ % LG_FIFO] = (uint8_t)k;
	p->outstanding++;
}

/* Room for one more request of the largest kind. */
static bool pub_room(const struct lg *g, const struct pub *p)
{
	size_t used = p->out_off == p->out_len ? 0 : p->out_len;

	return p->outstanding < g->o.window && used + g->o.size + LG_REQ_HEAD_MAX <= p->out_cap;
}

static char msg_buf[LG_MSG_MAX + 128];

/* Queue the next bench message of p, stamped with the current real time. */
static void pub_bench(struct lg *g, struct pub *p)
{
	int n = snprintf(msg_buf, sizeof(msg_buf),
			 "{\"bench\":{\"p\":%u,\"seq\":%" PRIu64 ",\"t\":%" PRIu64 ",\"pad\":\"",
			 p->id, p->next_seq, real_ns());
	size_t len = (size_t)n, want = g->o.size;

	/* Pad to exactly --size bytes of JSON when it is larger than the fields need. */
	if (want > len + 3u) {
		memset(msg_buf + len, 'x', want - len - 3u);
		len = want - 3u;
	}
	msg_buf[len++] = '"';
	msg_buf[len++] = '}';
	msg_buf[len++] = '}';
	pub_queue(g, p, msg_buf, len, REQ_BENCH);
	p->next_seq++;
	g->sent++;
}

static void pub_warm(struct lg *g, struct pub *p)
{
	int n = snprintf(msg_buf, sizeof(msg_buf), "{\"bench\":{\"warm\":%" PRIu64 "}}",
			 g->warm_seq++);

	pub_queue(g, p, msg_buf, (size_t)n, REQ_WARM);
}

static void pub_flush(struct lg *g, struct pub *p)
{
	while (p->out_off < p->out_len) {
		ssize_t n = write(p->fd, p->out + p->out_off, p->out_len - p->out_off);

		if (n < 0) {
			if (errno == EAGAIN)
				break;
			if (errno == EINTR)
				continue;
			pub_fail(g, p, strerror(errno));
			return;
		}
		p->out_off += (size_t)n;
	}
	if ((p->out_off < p->out_len) != p->want_out) {
		p->want_out = p->out_off < p->out_len;
		if (ep_mod(g, p->fd, EPOLLIN | (p->want_out ? EPOLLOUT : 0u), tag_pub(p->id)) < 0)
			pub_fail(g, p, "epoll_ctl failed");
	}
}

static void pub_answer(struct lg *g, struct pub *p)
{
	enum req_kind k;

	if (p->fifo_head == p->fifo_tail) {
		p->closing = true; /* unasked: a 408 on an idle connection, which closes next */
		return;
	}
	g->t_last_answer = mono_ns();
	k = (enum req_kind)p->fifo[p->fifo_head % LG_FIFO];
	if (k == REQ_BENCH)
		hist_add(&g->ack_lat, g->t_last_answer - p->fifo_t[p->fifo_head % LG_FIFO]);
	p->fifo_head++;
	p->outstanding--;
	if (p->status < 200 || p->status > 299) {
		if (!p->errors)
			say("publisher %u: status %d", p->id, p->status);
		p->errors++;
		return;
	}
	if (k == REQ_BENCH)
		p->ok++;
}

/* Parse every complete answer in p->in (Content-Length framed, in request order). */
static void pub_parse(struct lg *g, struct pub *p)
{
	size_t off = 0;

	while (off < p->in_len) {
		if (p->in_body) {
			uint64_t take = MIN(p->body_left, (uint64_t)(p->in_len - off));

			off += (size_t)take;
			p->body_left -= take;
			if (p->body_left)
				break;
			p->in_body = false;
			pub_answer(g, p);
			continue;
		}
		size_t end = head_end(p->in + off, p->in_len - off), vlen;
		const char *cl;
		const char *v;
		uint64_t len = 0;

		if (!end)
			break;
		p->status = head_status(p->in + off, end);
		if (p->status < 0) {
			pub_fail(g, p, "malformed answer");
			return;
		}
		cl = head_value(p->in + off, end, "Content-Length", &vlen);
		v = cl;
		if (p->status != 100 && (!cl || !eat_u64(&v, cl + vlen, &len))) {
			pub_fail(g, p, "answer without Content-Length");
			return;
		}
		v = head_value(p->in + off, end, "Connection", &vlen);
		if (v && vlen == 5 && !strncasecmp(v, "close", 5))
			p->closing = true;
		off += end;
		if (p->status == 100)
			continue;
		p->body_left = len;
		p->in_body = true;
	}
	if (p->in_body && !p->body_left) {
		p->in_body = false;
		pub_answer(g, p);
	}
	memmove(p->in, p->in + off, p->in_len - off);
	p->in_len -= off;
	if (p->in_len == sizeof(p->in))
		pub_fail(g, p, "answer head too large");
}

static void pub_event(struct lg *g, uint32_t i, uint32_t events)
{
	struct pub *p = &g->pubs[i];

	if (p->fd < 0)
		return;
	if (events & EPOLLOUT)
		pub_flush(g, p);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		ssize_t n = read(p->fd, p->in + p->in_len, sizeof(p->in) - p->in_len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			pub_reset(g, p);
			return;
		}
		p->in_len += (size_t)n;
		pub_parse(g, p);
		if (p->fd >= 0 && p->closing && !p->outstanding)
			pub_reset(g, p);
	}
}

/* --- the loop ------------------------------------------------------------------------------ */

static void on_signal(struct lg *g)
{
	struct signalfd_siginfo si;

	while (read(g->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			g->go = true;
			continue;
		}
		if (si.ssi_signo == SIGALRM)
			say("--timeout reached");
		g->stop = true;
	}
}

/* --- several processes (--procs) --------------------------------------------------------- */

/* A child: its counters into its slot, for the parent to add up. */
static void child_sync(const struct lg *g)
{
	struct proc_slot *sl = &g->sh->slot[g->proc];

	SH_SET(sl->heads, g->heads);
	SH_SET(sl->warmed, g->warmed);
	SH_SET(sl->dead, g->dead);
	SH_SET(sl->connect_failed, g->connect_failed);
	SH_SET(sl->closed_by_server, g->closed_by_server);
	SH_SET(sl->connect_retries, g->connect_retries);
	SH_SET(sl->unique, g->unique);
	SH_SET(sl->dups, g->dups);
	SH_SET(sl->reorders, g->reorders);
	SH_SET(sl->gaps, g->gaps);
	SH_SET(sl->keepalives, g->keepalives);
	SH_SET(sl->warm_msgs, g->warm_msgs);
	SH_SET(sl->unknown, g->unknown);
	SH_SET(sl->framing_errors, g->framing_errors);
	SH_SET(sl->chunks, g->chunks);
	SH_SET(sl->body_bytes, g->body_bytes);
	SH_SET(sl->payload_bytes, g->payload_bytes);
	SH_SET(sl->t_last_delivery, g->t_last_delivery);
	SH_SET(sl->t_last_head, g->t_last_head);
	SH_SET(sl->t_first_connect, g->t_first_connect);
	if (g->err && !SH_GET(sl->err))
		SH_SET(sl->err, (int64_t)g->err);
}

/* The parent: every child's counters added up into its own (it holds no subscriber). */
static void gather(struct lg *g)
{
	uint64_t heads = 0, warmed = 0, dead = 0, failed = 0, closed = 0, retries = 0;
	uint64_t unique = 0, dups = 0, reorders = 0, gaps = 0, keepalives = 0, warm_msgs = 0;
	uint64_t unknown = 0, framing = 0, chunks = 0, body = 0, payload = 0;
	uint32_t k;

	for (k = 0; k < g->o.procs; k++) {
		const struct proc_slot *sl = &g->sh->slot[k];
		int64_t err = SH_GET(sl->err);

		heads += SH_GET(sl->heads);
		warmed += SH_GET(sl->warmed);
		dead += SH_GET(sl->dead);
		failed += SH_GET(sl->connect_failed);
		closed += SH_GET(sl->closed_by_server);
		retries += SH_GET(sl->connect_retries);
		unique += SH_GET(sl->unique);
		dups += SH_GET(sl->dups);
		reorders += SH_GET(sl->reorders);
		gaps += SH_GET(sl->gaps);
		keepalives += SH_GET(sl->keepalives);
		warm_msgs += SH_GET(sl->warm_msgs);
		unknown += SH_GET(sl->unknown);
		framing += SH_GET(sl->framing_errors);
		chunks += SH_GET(sl->chunks);
		body += SH_GET(sl->body_bytes);
		payload += SH_GET(sl->payload_bytes);
		g->t_last_delivery = MAX(g->t_last_delivery, SH_GET(sl->t_last_delivery));
		g->t_last_head = MAX(g->t_last_head, SH_GET(sl->t_last_head));
		if (SH_GET(sl->t_first_connect) &&
		    (!g->t_first_connect || SH_GET(sl->t_first_connect) < g->t_first_connect))
			g->t_first_connect = SH_GET(sl->t_first_connect);
		if (err)
			fail(g, (int)err, "subscriber process %u failed: %s", k,
			     strerror((int)-err));
	}
	g->heads = (uint32_t)heads;
	g->warmed = (uint32_t)warmed;
	g->dead = (uint32_t)dead;
	g->connect_failed = (uint32_t)failed;
	g->closed_by_server = (uint32_t)closed;
	g->connect_retries = (uint32_t)retries;
	g->unique = unique;
	g->dups = dups;
	g->reorders = reorders;
	g->gaps = gaps;
	g->keepalives = keepalives;
	g->warm_msgs = warm_msgs;
	g->unknown = unknown;
	g->framing_errors = framing;
	g->chunks = chunks;
	g->body_bytes = body;
	g->payload_bytes = payload;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
	unsigned i;

	if (!from->count)
		return;
	for (i = 0; i < HIST_BUCKETS; i++)
		to->n[i] += from->n[i];
	if (!to->count || from->min < to->min)
		to->min = from->min;
	to->max = MAX(to->max, from->max);
	to->count += from->count;
	to->sum += from->sum;
}

/* Wait up to timeout_ns for events and handle them. 0, or the run's failure (-errno). */
static int loop_once(struct lg *g, uint64_t timeout_ns)
{
	struct epoll_event ev[LG_EVENTS];
	struct timespec ts = { .tv_sec = (time_t)(timeout_ns / NSEC_PER_SEC),
			       .tv_nsec = (long)(timeout_ns % NSEC_PER_SEC) };
	int n, k;

	if (g->err)
		return g->err;
	n = epoll_pwait2(g->ep, ev, LG_EVENTS, &ts, NULL);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (k = 0; k < n; k++) {
		uint64_t tag = ev[k].data.u64;

		if (tag == LG_SIG_TAG)
			on_signal(g);
		else if (tag >> 32)
			pub_event(g, (uint32_t)tag, ev[k].events);
		else
			sub_event(g, (uint32_t)tag, ev[k].events);
	}
	if (g->sh && g->proc >= 0)
		child_sync(g);
	else if (g->sh)
		gather(g);
	return g->err;
}

static uint64_t secs_ns(double s)
{
	return (uint64_t)(s * (double)NSEC_PER_SEC);
}

/* Every publisher's queued requests written and every answer read. */
static bool pubs_idle(const struct lg *g)
{
	uint32_t i;

	for (i = 0; i < g->o.pubs; i++)
		if (g->pubs[i].outstanding)
			return false;
	return true;
}

static void pubs_flush(struct lg *g)
{
	uint32_t i;

	for (i = 0; i < g->o.pubs; i++)
		if (g->pubs[i].out_off < g->pubs[i].out_len)
			pub_flush(g, &g->pubs[i]);
}

/* Answers over every publisher: the 2xx ones, or (errors) the others. */
static uint64_t pubs_answers(const struct lg *g, bool errors)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = 0; i < g->o.pubs; i++)
		n += errors ? g->pubs[i].errors : g->pubs[i].ok;
	return n;
}

/* One turn of the event loop (up to wait ns), then whether the phase may go on: 0, or -errno
 * (the loop failed; -EINTR interrupted, -ETIMEDOUT past the deadline, both said). */
static int phase_step(struct lg *g, uint64_t wait, uint64_t deadline, const char *phase)
{
	int err = loop_once(g, wait);

	if (err < 0)
		return err;
	if (g->stop) {
		say("%s: interrupted", phase);
		return -EINTR;
	}
	if (mono_ns() >= deadline) {
		say("%s: timed out", phase);
		return -ETIMEDOUT;
	}
	return 0;
}

/*
 * Open subscribers first..n-1 with at most window connects in flight (connect started, no
 * head yet); returns once each has its head or has failed. 0 or -errno.
 */
static int phase_connect(struct lg *g, uint32_t n, uint32_t window, uint64_t timeout)
{
	uint64_t deadline = mono_ns() + timeout;
	/* This process opens its own share; the parent of children waits for all of them. */
	uint32_t end = MIN(n, g->sub_hi), want = g->proc >= 0 ? end - g->sub_lo : n;
	int err;

	g->started = MAX(g->started, g->sub_lo);
	while (g->heads + g->connect_failed < want) {
		while (g->started < end &&
		       g->started - g->sub_lo - g->heads - g->connect_failed < window) {
			err = sub_connect(g, g->started);
			if (err < 0) {
				say("unable to connect subscriber %u: %s", g->started,
				    strerror(-err));
				return err;
			}
			g->started++;
		}
		err = phase_step(g, 10 * NSEC_PER_MS, deadline, "connect");
		if (err < 0)
			return err;
	}
	return 0;
}

/*
 * Publish warm-up messages (not measured) until every live subscriber has received one: a
 * head can come before the server's subscription is in place (nchan subscribes across
 * workers), and a message published before that would count as lost.
 */
static int phase_warm(struct lg *g)
{
	uint64_t deadline = mono_ns() + LG_PHASE_TIMEOUT, next = 0;
	int err;

	while (g->warmed < g->heads - g->closed_by_server) {
		uint64_t now = mono_ns();
		/* every publisher in turn, so each node's publishing path is open and warm */
		struct pub *p = &g->pubs[g->warm_seq % g->o.pubs];

		if (now >= next && pubs_idle(g)) {
			pub_warm(g, p);
			pub_flush(g, p);
			next = now + LG_WARM_PERIOD_NS;
		}
		err = phase_step(g, LG_WARM_PERIOD_NS, deadline, "warm-up");
		if (err < 0)
			return err;
	}
	/* Wait for the last warm-up answers, so the bench answers start in a clean state. */
	while (!pubs_idle(g)) {
		err = phase_step(g, LG_WARM_PERIOD_NS, deadline, "warm-up");
		if (err < 0)
			return err;
	}
	return 0;
}

/* The publisher with room for a request, round-robin; NULL if every window is full. */
static struct pub *pub_pick(struct lg *g, uint32_t *rr)
{
	uint32_t k;

	for (k = 0; k < g->o.pubs; k++) {
		struct pub *p = &g->pubs[(*rr + k) % g->o.pubs];

		if (pub_room(g, p)) {
			*rr = (*rr + k + 1u) % g->o.pubs;
			return p;
		}
	}
	return NULL;
}

/*
 * Publish --count messages or for --duration seconds, whichever ends first: at --rate per
 * second (message i is due at i / rate), or saturating (every window kept full). Returns when
 * every answer is in. 0 or -errno.
 */
static int phase_publish(struct lg *g, uint64_t count, double duration)
{
	uint64_t t0 = mono_ns(), dur = secs_ns(duration), deadline = t0 + dur + LG_PHASE_TIMEOUT;
	bool sending = true;
	uint32_t rr = 0;

	g->t_first_pub = t0;
	g->t_last_delivery = t0;
	while (sending || !pubs_idle(g)) {
		uint64_t now = mono_ns(), wait = 10 * NSEC_PER_MS;

		if (sending) {
			uint64_t due = count;

			if (g->o.rate > 0) {
				due = (uint64_t)((double)(now - t0) * g->o.rate / 1e9) + 1u;
				due = MIN(due, count);
			}
			while (g->sent < due) {
				struct pub *p = pub_pick(g, &rr);

				/* a publisher that cannot connect queues nothing: stop, not spin */
				if (!p || g->err)
					break;
				if (g->o.rate > 0 &&
				    now > t0 + (uint64_t)((double)g->sent * 1e9 / g->o.rate) +
						    LG_LATE_NS)
					g->late++;
				pub_bench(g, p);
			}
			pubs_flush(g);
			if (g->sent >= count || now - t0 >= dur) {
				sending = false;
				g->t_send_end = now;
			} else if (g->o.rate > 0) {
				uint64_t next = t0 + (uint64_t)((double)g->sent * 1e9 / g->o.rate);

				wait = next > now ? next - now : 0;
			}
			wait = MIN(wait, t0 + dur > now ? t0 + dur - now : 0);
		}
		int err = phase_step(g, wait, deadline, "publish");
		if (err < 0)
			return err;
	}
	return 0;
}

/* Wait (up to drain seconds) until every live subscriber has every acknowledged message. */
static int phase_drain(struct lg *g, uint32_t nsubs, double drain)
{
	uint64_t deadline = mono_ns() + secs_ns(drain), want = pubs_answers(g, false) * nsubs;

	while (g->unique < want && mono_ns() < deadline && !g->stop) {
		int err = loop_once(g, 10 * NSEC_PER_MS);

		if (err < 0)
			return err;
	}
	if (g->unique < want)
		say("drain: %" PRIu64 " of %" PRIu64 " deliveries after %.1f s", g->unique, want,
		    drain);
	return 0;
}

/* Loss: acknowledged messages (ok[publisher]) a subscriber of this process never got. */
static uint64_t loss_of(const struct lg *g, uint32_t nsubs, const uint64_t *ok)
{
	uint64_t loss = 0;
	uint32_t i, k;

	for (i = g->sub_lo; i < MIN(nsubs, g->sub_hi); i++) {
		for (k = 0; k < g->o.pubs; k++) {
			uint64_t got = g->subs[i].tr ? g->subs[i].tr[k].unique : 0;

			if (got < ok[k])
				loss += ok[k] - got;
		}
	}
	return loss;
}

/*
 * The parent of children: ask them for their final figures, wait for them (bounded), add up
 * their loss and merge their histograms into its own. Returns the loss; once only.
 */
static uint64_t collect(struct lg *g)
{
	static bool collected;
	static uint64_t loss;
	uint64_t deadline = mono_ns() + LG_FINAL_TIMEOUT;
	uint32_t k, done = 0;

	if (collected)
		return loss;
	collected = true;
	for (k = 0; k < g->o.pubs; k++)
		g->sh->ok[k] = g->pubs[k].ok;
	__atomic_store_n(&g->sh->final, 1, __ATOMIC_RELEASE);
	while (done < g->o.procs && mono_ns() < deadline) {
		for (done = 0, k = 0; k < g->o.procs; k++)
			done += __atomic_load_n(&g->sh->slot[k].done, __ATOMIC_ACQUIRE) ? 1u : 0u;
		if (done < g->o.procs)
			(void)nanosleep(&(struct timespec){ .tv_nsec = 5 * (long)NSEC_PER_MS },
					NULL);
	}
	if (done < g->o.procs)
		say("only %u of %u subscriber processes gave their final figures", done,
		    g->o.procs);
	gather(g);
	for (k = 0; k < g->o.procs; k++) {
		const struct proc_slot *sl = &g->sh->slot[k];

		if (!__atomic_load_n(&sl->done, __ATOMIC_ACQUIRE))
			continue;
		loss += sl->loss;
		hist_merge(&g->lat, &sl->lat);
		hist_merge(&g->head_lat, &sl->head_lat);
		hist_merge(&g->cross_lat, &sl->cross_lat);
		hist_merge(&g->local_lat, &sl->local_lat);
	}
	return loss;
}

/* Loss over the first nsubs subscribers, whichever processes hold them. */
static uint64_t count_loss(struct lg *g, uint32_t nsubs)
{
	uint64_t ok[LG_MAX_PUBS];
	uint32_t k;

	if (g->sh)
		return collect(g);
	for (k = 0; k < g->o.pubs; k++)
		ok[k] = g->pubs[k].ok;
	return loss_of(g, nsubs, ok);
}

/*
 * A child's whole run: open its share of the subscribers, then read them until the parent
 * says stop (or is gone), giving its final figures when asked. Exit status 0 or 1.
 */
static int run_child(struct lg *g)
{
	struct proc_slot *sl = &g->sh->slot[g->proc];
	uint64_t deadline = mono_ns() + secs_ns(g->o.timeout) + LG_PHASE_TIMEOUT;
	uint32_t window = MAX(1u, g->o.connect_window / g->o.procs);
	int err;

	err = phase_connect(g, g->sub_hi, window, LG_PHASE_TIMEOUT);
	while (err >= 0 && !g->stop && !SH_GET(g->sh->stop) && getppid() == g->parent &&
	       mono_ns() < deadline) {
		if (__atomic_load_n(&g->sh->final, __ATOMIC_ACQUIRE) && !SH_GET(sl->done)) {
			sl->loss = loss_of(g, g->o.subs, g->sh->ok);
			sl->lat = g->lat;
			sl->head_lat = g->head_lat;
			sl->cross_lat = g->cross_lat;
			sl->local_lat = g->local_lat;
			child_sync(g);
			__atomic_store_n(&sl->done, 1, __ATOMIC_RELEASE);
		}
		err = loop_once(g, 10 * NSEC_PER_MS);
	}
	if (err < 0) {
		g->err = g->err ? g->err : err;
		child_sync(g);
	}
	return err < 0 ? 1 : 0;
}

static double per_s(uint64_t n, uint64_t ns)
{
	return ns ? (double)n * 1e9 / (double)ns : 0.0;
}

static void print_latency(const struct lg *g, const struct hist *h, const char *prefix)
{
	printf(" %sp50_us=%.1f %sp90_us=%.1f %sp99_us=%.1f %sp999_us=%.1f %smax_us=%.1f "
	       "%smean_us=%.1f",
	       prefix, us(hist_quantile(h, 0.50)), prefix, us(hist_quantile(h, 0.90)), prefix,
	       us(hist_quantile(h, 0.99)), prefix, us(hist_quantile(h, 0.999)), prefix, us(h->max),
	       prefix, h->count ? us((uint64_t)(h->sum / (double)h->count)) : 0.0);
	(void)g;
}

static void print_head(const struct lg *g)
{
	printf("result scenario=%s server=%s mode=%s", g->o.label,
	       g->o.server == SERVER_NCHAN ? "nchan" : "ours", mode_names[g->o.mode]);
}

static void print_errors(const struct lg *g, uint64_t loss)
{
	printf(" loss=%" PRIu64 " dup=%" PRIu64 " reorder=%" PRIu64 " gaps=%" PRIu64
	       " framing_errors=%" PRIu64 " unknown=%" PRIu64 " sub_errors=%u pub_errors=%" PRIu64,
	       loss, g->dups, g->reorders, g->gaps, g->framing_errors, g->unknown,
	       g->connect_failed + g->closed_by_server, pubs_answers(g, true));
}

static int run_latency(struct lg *g)
{
	uint64_t ok, loss, span, pub_span;
	int err;

	err = phase_connect(g, g->o.subs, g->o.connect_window, LG_PHASE_TIMEOUT);
	if (err < 0)
		return err;
	err = phase_warm(g);
	if (err < 0)
		return err;
	if (g->o.go_signal) {
		printf("ready subs=%u connected=%u verified=%u\n", g->o.subs, g->heads, g->warmed);
		(void)fflush(stdout);
		while (!g->go) {
			err = loop_once(g, 100 * NSEC_PER_MS);
			if (err < 0)
				return err;
			if (g->stop)
				return -EINTR;
		}
	}
	g->record_latency = true;
	if (g->sh)
		SH_SET(g->sh->record_latency, 1);
	err = phase_publish(g, g->o.count, g->o.duration);
	if (err < 0)
		return err;
	err = phase_drain(g, g->o.subs, g->o.drain);
	if (err < 0)
		return err;
	ok = pubs_answers(g, false);
	loss = count_loss(g, g->o.subs);
	span = g->t_last_delivery - g->t_first_pub;
	pub_span = g->t_last_answer - g->t_first_pub;

	printf("# scenario %s, %s: %u subscribers, %u publisher(s) x window %u, %s, %u-byte "
	       "messages\n",
	       g->o.label, g->o.server == SERVER_NCHAN ? "nchan" : "ours", g->o.subs, g->o.pubs,
	       g->o.window, g->o.rate > 0 ? "rate-limited" : "saturating", g->o.size);
	printf("#   published %" PRIu64 " in %.3f s (%.0f/s), delivered %" PRIu64 " of %" PRIu64
	       " in %.3f s (%.0f/s)\n",
	       ok, (double)pub_span / 1e9, per_s(ok, pub_span), g->unique, ok * g->o.subs,
	       (double)span / 1e9, per_s(g->unique, span));
	printf("#   publish answered in us: p50 %.1f  p99 %.1f  max %.1f\n",
	       us(hist_quantile(&g->ack_lat, 0.5)), us(hist_quantile(&g->ack_lat, 0.99)),
	       us(g->ack_lat.max));
	printf("#   latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
	       us(hist_quantile(&g->lat, 0.5)), us(hist_quantile(&g->lat, 0.9)),
	       us(hist_quantile(&g->lat, 0.99)), us(hist_quantile(&g->lat, 0.999)), us(g->lat.max));
	if (g->o.nodes > 1)
		printf("#   %u nodes; cross-node latency us: p50 %.1f  p99 %.1f  (same node: p50 %.1f  "
		       "p99 %.1f)\n",
		       g->o.nodes, us(hist_quantile(&g->cross_lat, 0.5)),
		       us(hist_quantile(&g->cross_lat, 0.99)),
		       us(hist_quantile(&g->local_lat, 0.5)),
		       us(hist_quantile(&g->local_lat, 0.99)));
	printf("#   loss %" PRIu64 ", duplicates %" PRIu64 ", reordered %" PRIu64 ", gaps %" PRIu64
	       ", framing errors %" PRIu64 "\n",
	       loss, g->dups, g->reorders, g->gaps, g->framing_errors);
	print_head(g);
	printf(" subs=%u pubs=%u window=%u rate=%g size=%u duration=%g published=%" PRIu64
	       " pub_per_s=%.1f deliveries=%" PRIu64 " expected=%" PRIu64
	       " deliveries_per_s=%.1f late=%" PRIu64 " keepalives=%" PRIu64,
	       g->o.subs, g->o.pubs, g->o.window, g->o.rate, g->o.size, g->o.duration, ok,
	       per_s(ok, pub_span), g->unique, ok * g->o.subs, per_s(g->unique, span), g->late,
	       g->keepalives);
	print_latency(g, &g->lat, "");
	print_latency(g, &g->ack_lat, "ack_");
	if (g->o.nodes > 1) {
		printf(" nodes=%u cross_deliveries=%" PRIu64, g->o.nodes, g->cross_lat.count);
		print_latency(g, &g->cross_lat, "cross_");
		print_latency(g, &g->local_lat, "local_");
	}
	print_errors(g, loss);
	printf("\n");
	/* several nodes: the CDF is the cross-node one, the figure that compares clusters */
	if (g->o.hist_file &&
	    (err = hist_write(g->o.nodes > 1 ? &g->cross_lat : &g->lat, g->o.hist_file)) < 0)
		say("unable to write '%s': %s", g->o.hist_file, strerror(-err));
	return 0;
}

static int run_connect(struct lg *g)
{
	uint64_t t0 = mono_ns(), last = 0, span;
	uint32_t verified = 0;
	int err;

	err = phase_connect(g, g->o.subs, g->o.connect_window, LG_PHASE_TIMEOUT);
	if (err < 0)
		return err;
	if (g->sh)
		(void)collect(g); /* the children's head times */
	t0 = g->t_first_connect ? MIN(t0, g->t_first_connect) : t0;
	last = g->t_last_head;
	span = last > t0 ? last - t0 : 0;
	if (g->o.verify) {
		err = phase_warm(g);
		if (err < 0)
			return err;
		verified = g->warmed;
	}
	printf("# scenario %s, %s: %u subscribers connected in %.3f s (%.0f/s, %u in flight at "
	       "most), %u verified live\n",
	       g->o.label, g->o.server == SERVER_NCHAN ? "nchan" : "ours", g->heads,
	       (double)span / 1e9, per_s(g->heads, span), g->o.connect_window, verified);
	print_head(g);
	printf(" subs=%u window=%u connected=%u verified=%u connect_s=%.3f subs_per_s=%.1f "
	       "retries=%u",
	       g->o.subs, g->o.connect_window, g->heads, verified, (double)span / 1e9,
	       per_s(g->heads, span), g->connect_retries);
	print_latency(g, &g->head_lat, "head_");
	print_errors(g, 0);
	printf("\n");
	if (g->o.hist_file && (err = hist_write(&g->head_lat, g->o.hist_file)) < 0)
		say("unable to write '%s': %s", g->o.hist_file, strerror(-err));
	return 0;
}

static int run_idle(struct lg *g)
{
	uint64_t t0, deadline;
	int err;

	err = phase_connect(g, g->o.subs, g->o.connect_window, LG_PHASE_TIMEOUT);
	if (err < 0)
		return err;
	if (g->o.verify) {
		err = phase_warm(g);
		if (err < 0)
			return err;
	}
	printf("ready subs=%u connected=%u verified=%u\n", g->o.subs, g->heads, g->warmed);
	(void)fflush(stdout);
	t0 = mono_ns();
	deadline = g->o.hold > 0 ? t0 + secs_ns(g->o.hold) : UINT64_MAX;
	while (!g->stop && mono_ns() < deadline) {
		err = loop_once(g, 100 * NSEC_PER_MS);
		if (err < 0)
			return err;
	}
	printf("# scenario %s, %s: held %u idle subscribers for %.1f s\n", g->o.label,
	       g->o.server == SERVER_NCHAN ? "nchan" : "ours", g->heads - g->closed_by_server,
	       (double)(mono_ns() - t0) / 1e9);
	print_head(g);
	printf(" subs=%u connected=%u verified=%u held_s=%.1f keepalives=%" PRIu64, g->o.subs,
	       g->heads, g->warmed, (double)(mono_ns() - t0) / 1e9, g->keepalives);
	print_errors(g, 0);
	printf("\n");
	return 0;
}

/*
 * Replay, defined: --count messages of --size bytes are published with no subscriber (the
 * prefill, saturating). Then one subscriber asks for all of them: t0 is when its connect(2)
 * starts (the request follows at once), t1 when the last prefilled message has arrived
 * complete. replay_mb_per_s is the JSON text bytes of the prefilled messages (framing
 * excluded) / 10^6 / (t1 - t0); wire_mb_per_s counts every body byte received by t1, framing
 * included. Then one live message is published and must arrive on the same connection
 * (live_ok), with no loss, duplicate or reordering over the whole stream.
 *
 * A replay still running after --replay-timeout seconds is cut short (replay_complete=0): t1
 * is then the cut, so the rates are over the whole window; loss is not counted (the rest never
 * came) and there is no live check (live_ok=0).
 */
static int run_replay(struct lg *g)
{
	uint64_t deadline, t0, t1, held, replayed, body_at_t1, payload_at_t1, loss = 0, span;
	bool live_ok = false, complete;
	int err;

	err = phase_publish(g, g->o.count, g->o.duration);
	if (err < 0)
		return err;
	held = pubs_answers(g, false);
	span = g->t_last_answer - g->t_first_pub;
	g->unique = 0;
	err = phase_connect(g, 1, 1, LG_PHASE_TIMEOUT);
	if (err < 0)
		return err;
	t0 = g->subs[0].t_start;
	deadline = mono_ns() + secs_ns(g->o.replay_timeout);
	while (g->unique < held && !g->dead && mono_ns() < deadline) {
		err = loop_once(g, 10 * NSEC_PER_MS);
		if (err < 0)
			return err;
		if (g->stop)
			return -EINTR;
	}
	complete = g->unique >= held;
	/* Cut short: the rate is over the whole window, stalls included. */
	t1 = complete ? g->t_last_delivery : mono_ns();
	t1 = t1 > t0 ? t1 : t0 + 1u;
	replayed = g->unique;
	body_at_t1 = g->body_bytes;
	payload_at_t1 = g->payload_bytes;
	if (!complete)
		say("replay: %" PRIu64 " of %" PRIu64 " messages after %.0f s; cut short", replayed,
		    held, g->o.replay_timeout);

	/* The seam: one live message after the replay, on the same connection. */
	if (complete && !g->dead) {
		pub_bench(g, &g->pubs[0]);
		pub_flush(g, &g->pubs[0]);
		deadline = mono_ns() + LG_LIVE_TIMEOUT;
		while (!g->stop && mono_ns() < deadline && !g->dead) {
			err = loop_once(g, 10 * NSEC_PER_MS);
			if (err < 0)
				return err;
			if (pubs_idle(g) && g->unique == pubs_answers(g, false)) {
				live_ok = true;
				break;
			}
		}
		loss = count_loss(g, 1);
	}
	printf("# scenario %s, %s: prefilled %" PRIu64 " x %u B in %.3f s (%.0f/s); replayed "
	       "%" PRIu64
	       "%s in %.3f s: %.2f MB/s of JSON, %.2f MB/s on the wire; live after: %s\n",
	       g->o.label, g->o.server == SERVER_NCHAN ? "nchan" : "ours", held, g->o.size,
	       (double)span / 1e9, per_s(held, span), replayed, complete ? "" : " (cut short)",
	       (double)(t1 - t0) / 1e9, per_s(payload_at_t1, t1 - t0) / 1e6,
	       per_s(body_at_t1, t1 - t0) / 1e6,
	       live_ok	  ? "yes"
	       : complete ? "NO"
			  : "not tried");
	print_head(g);
	printf(" count=%" PRIu64 " size=%u held=%" PRIu64 " prefill_per_s=%.1f replayed=%" PRIu64
	       " replay_complete=%d replay_s=%.4f replay_mb_per_s=%.3f wire_mb_per_s=%.3f "
	       "live_ok=%d",
	       g->o.count, g->o.size, held, per_s(held, span), replayed, complete,
	       (double)(t1 - t0) / 1e9, per_s(payload_at_t1, t1 - t0) / 1e6,
	       per_s(body_at_t1, t1 - t0) / 1e6, live_ok);
	print_latency(g, &g->ack_lat, "ack_");
	print_errors(g, loss);
	printf("\n");
	return 0;
}

/* --- setup ------------------------------------------------------------------------------- */

static int raise_nofile(rlim_t need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		say("need %llu file descriptors; the hard limit is %llu (raise it: ulimit -Hn)",
		    (unsigned long long)need, (unsigned long long)rl.rlim_max);
		return -EMFILE;
	}
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl) < 0 ? -errno : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: loadgen --mode latency|connect|idle|replay --port PORT [OPTIONS]\n"
		"\n"
		"Load generator of the GitPubSub benchmark suite (bench/README.md).\n"
		"\n"
		"  --host ADDR          server IPv4 address (default 127.0.0.1)\n"
		"  --port PORT          server port\n"
		"  --ports P1,P2,...    instead: the nodes of a cluster; subscriber i and\n"
		"                       publisher j use node i %% n and j %% n; latency mode\n"
		"                       also reports cross_* (published on another node than\n"
		"                       the subscriber's) and local_* figures; --hist: cross\n"
		"  --server ours|nchan  framing and replay request to use (default ours)\n"
		"  --label NAME         scenario name printed in the result line\n"
		"  --sub-path PATH      subscriber GET path (default /bench)\n"
		"  --pub-path PATH      publisher POST path (default /bench)\n"
		"  --replay-path PATH   replay GET path (default: --sub-path)\n"
		"  --subs N             subscribers (default 1)\n"
		"  --pubs N             publisher connections (default 1)\n"
		"  --window N           requests in flight per publisher (default 1)\n"
		"  --connect-window N   connects in flight (default 64)\n"
		"  --rate R             messages per second over all publishers; 0: saturate\n"
		"  --duration S         publishing time in seconds (default: 3, or none with\n"
		"                       --count)\n"
		"  --count N            stop publishing after N messages\n"
		"  --size B             bytes of each message's JSON (default 256)\n"
		"  --drain S            wait for deliveries after publishing (default 10)\n"
		"  --hold S             idle: hold this long (default: until SIGTERM/SIGINT)\n"
		"  --no-verify          connect/idle: skip the one-message liveness check\n"
		"  --src-addrs N        spread subscribers over 127.0.0.1..N (default: one\n"
		"                       address per 16,000 subscribers)\n"
		"  --procs N            spread subscribers over N child processes, each under\n"
		"                       the descriptor limit (default: one per 16,000)\n"
		"  --go-signal          latency: after the warm-up print 'ready' and publish\n"
		"                       only on SIGUSR1 (the runner measures memory meanwhile)\n"
		"  --hist FILE          write the latency CDF (connect: head latency CDF)\n"
		"  --replay-timeout S   replay: cut the replay short after S seconds (default 60)\n"
		"  --timeout S          give up after S seconds in all (default 300)\n"
		"\n"
		"Prints '#' lines for people and one 'result key=value ...' line per run.\n"
		"Exit status: 0 run completed, 1 runtime failure, 2 usage error.\n");
}

static bool arg_num(const char *s, double lo, double hi, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return false;
	*ret = v;
	return true;
}

/* What an option sets: a string, or a number of some width checked against a range. */
enum opt_kind { OPT_STR, OPT_U16, OPT_U32, OPT_U64, OPT_DBL };

struct opt_spec {
	const char *name;
	enum opt_kind kind;
	size_t off;    /* of the field in struct opts */
	double lo, hi; /* numbers: the values accepted */
};

/* Every option that sets one field; --mode, --server, --no-verify and --help are apart. */
static const struct opt_spec opt_specs[] = {
	{ "host", OPT_STR, offsetof(struct opts, host), 0, 0 },
	{ "label", OPT_STR, offsetof(struct opts, label), 0, 0 },
	{ "sub-path", OPT_STR, offsetof(struct opts, sub_path), 0, 0 },
	{ "pub-path", OPT_STR, offsetof(struct opts, pub_path), 0, 0 },
	{ "replay-path", OPT_STR, offsetof(struct opts, replay_path), 0, 0 },
	{ "hist", OPT_STR, offsetof(struct opts, hist_file), 0, 0 },
	{ "ports", OPT_STR, offsetof(struct opts, ports_arg), 0, 0 },
	{ "port", OPT_U16, offsetof(struct opts, port), 1, 65535 },
	{ "subs", OPT_U32, offsetof(struct opts, subs), 1, LG_MAX_SUBS },
	{ "pubs", OPT_U32, offsetof(struct opts, pubs), 1, LG_MAX_PUBS },
	{ "window", OPT_U32, offsetof(struct opts, window), 1, LG_MAX_WINDOW },
	{ "connect-window", OPT_U32, offsetof(struct opts, connect_window), 1, LG_MAX_SUBS },
	{ "src-addrs", OPT_U32, offsetof(struct opts, src_addrs), 1, LG_SRC_ADDRS_MAX },
	{ "procs", OPT_U32, offsetof(struct opts, procs), 1, LG_MAX_PROCS },
	{ "size", OPT_U32, offsetof(struct opts, size), 1, LG_MSG_MAX },
	{ "count", OPT_U64, offsetof(struct opts, count), 1, 1e12 },
	{ "rate", OPT_DBL, offsetof(struct opts, rate), 0, 1e7 },
	{ "duration", OPT_DBL, offsetof(struct opts, duration), 0, 86400 },
	{ "drain", OPT_DBL, offsetof(struct opts, drain), 0, 3600 },
	{ "hold", OPT_DBL, offsetof(struct opts, hold), 0, 86400 },
	{ "timeout", OPT_DBL, offsetof(struct opts, timeout), 1, 86400 },
	{ "replay-timeout", OPT_DBL, offsetof(struct opts, replay_timeout), 1, 86400 },
};

enum { OPT_MODE = 1, OPT_SERVER, OPT_NO_VERIFY, OPT_GO_SIGNAL, OPT_HELP, OPT_SPEC_BASE };

/* Set the field of *o that sp names from arg; false if arg is out of its range. */
static bool opt_set(struct opts *o, const struct opt_spec *sp, const char *arg)
{
	uint8_t *field = (uint8_t *)o + sp->off;
	union {
		uint16_t u16;
		uint32_t u32;
		uint64_t u64;
		double d;
	} x;
	size_t size;
	double v;

	if (sp->kind == OPT_STR) {
		memcpy(field, &arg, sizeof(arg));
		return true;
	}
	if (!arg_num(arg, sp->lo, sp->hi, &v))
		return false;
	switch (sp->kind) {
	case OPT_U16:
		x.u16 = (uint16_t)v;
		size = sizeof(x.u16);
		break;
	case OPT_U32:
		x.u32 = (uint32_t)v;
		size = sizeof(x.u32);
		break;
	case OPT_U64:
		x.u64 = (uint64_t)v;
		size = sizeof(x.u64);
		break;
	default:
		x.d = v;
		size = sizeof(x.d);
		break;
	}
	memcpy(field, &x, size);
	return true;
}

/* The index of name in names[0..n), or n. */
static size_t name_index(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n && strcmp(names[i], name) != 0; i++)
		;
	return i;
}

/* --ports "P1,P2,...": o->ports, o->nodes and o->port (the first). 0 or -EINVAL. */
static int parse_ports(const char *arg, struct opts *o)
{
	const char *p = arg;
	uint32_t n = 0;

	while (*p) {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || end == p || v < 1 || v > 65535 || n == LG_MAX_NODES ||
		    (*end && *end != ','))
			return -EINVAL;
		o->ports[n++] = (uint16_t)v;
		p = *end ? end + 1 : end;
		if (*end && !*p)
			return -EINVAL; /* a trailing comma */
	}
	if (!n)
		return -EINVAL;
	o->nodes = n;
	o->port = o->ports[0];
	return 0;
}

/* Fill *o from the command line: 0, 1 when --help was printed, -EINVAL on a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const char *const server_names[] = { "ours", "nchan" };
	struct option longopts[ARRAY_SIZE(opt_specs) + 6] = {
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "server", required_argument, NULL, OPT_SERVER },
		{ "no-verify", no_argument, NULL, OPT_NO_VERIFY },
		{ "go-signal", no_argument, NULL, OPT_GO_SIGNAL },
		{ "help", no_argument, NULL, OPT_HELP },
	};
	size_t k;
	int c;

	for (k = 0; k < ARRAY_SIZE(opt_specs); k++)
		longopts[5 + k] = (struct option){ opt_specs[k].name, required_argument, NULL,
						   OPT_SPEC_BASE + (int)k };
	*o = (struct opts){ .mode = MODE_LATENCY,
			    .host = "127.0.0.1",
			    .label = "-",
			    .sub_path = "/bench",
			    .pub_path = "/bench",
			    .subs = 1,
			    .pubs = 1,
			    .window = 1,
			    .connect_window = 64,
			    .src_addrs = 0, /* auto: one address per LG_SUBS_PER_ADDR subscribers */
			    .procs = 0,	    /* auto: one process per LG_SUBS_PER_PROC subscribers */
			    .size = 256,
			    .duration = 0,
			    .drain = 10,
			    .timeout = 300,
			    .replay_timeout = 60,
			    .count = UINT64_MAX,
			    .verify = true };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_MODE:
			k = name_index(mode_names, ARRAY_SIZE(mode_names), optarg);
			if (k == ARRAY_SIZE(mode_names))
				goto bad;
			o->mode = (enum mode)k;
			break;
		case OPT_SERVER:
			k = name_index(server_names, ARRAY_SIZE(server_names), optarg);
			if (k == ARRAY_SIZE(server_names))
				goto bad;
			o->server = (enum server)k;
			break;
		case OPT_NO_VERIFY:
			o->verify = false;
			break;
		case OPT_GO_SIGNAL:
			o->go_signal = true;
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		default:
			if (c < OPT_SPEC_BASE || c - OPT_SPEC_BASE >= (int)ARRAY_SIZE(opt_specs)) {
				usage(stderr);
				return -EINVAL;
			}
			if (!opt_set(o, &opt_specs[c - OPT_SPEC_BASE], optarg))
				goto bad;
			break;
		}
	}
	if (o->ports_arg && parse_ports(o->ports_arg, o) < 0) {
		say("bad value '%s' for --ports: 1 to %u ports, separated by commas", o->ports_arg,
		    LG_MAX_NODES);
		return -EINVAL;
	}
	if (!o->ports_arg) {
		o->ports[0] = o->port;
		o->nodes = 1;
	}
	if (optind != argc || !o->port) {
		usage(stderr);
		return -EINVAL;
	}
	if (o->mode == MODE_REPLAY && o->count == UINT64_MAX) {
		say("--mode replay needs --count");
		return -EINVAL;
	}
	if (!o->src_addrs)
		o->src_addrs =
			MIN((o->subs + LG_SUBS_PER_ADDR - 1u) / LG_SUBS_PER_ADDR, LG_SRC_ADDRS_MAX);
	if (!o->procs)
		o->procs = (o->subs + LG_SUBS_PER_PROC - 1u) / LG_SUBS_PER_PROC;
	if (o->mode == MODE_REPLAY || o->procs > o->subs)
		o->procs = o->mode == MODE_REPLAY ? 1u : o->subs;
	/* Without --duration: 3 s, or no time limit when --count says when to stop. */
	if (o->duration <= 0)
		o->duration = o->count == UINT64_MAX ? LG_DEFAULT_DURATION : 86400;
	return 0;
bad:
	say("bad value '%s' for an option", optarg);
	return -EINVAL;
}

/*
 * --procs N > 1: fork N children, each to hold subs[sub_lo..sub_hi), before anything else is
 * opened (each makes its own epoll, signalfd and sockets). 1 in a child, 0 in the parent (or
 * with one process), -errno on failure.
 */
static int spawn_children(struct lg *g)
{
	uint32_t k;

	g->proc = -1;
	g->sub_lo = 0;
	g->sub_hi = g->o.subs;
	if (g->o.procs <= 1)
		return 0;
	g->sh = mmap(NULL, sizeof(*g->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		     0);
	if (g->sh == MAP_FAILED) {
		g->sh = NULL;
		return -errno;
	}
	g->parent = getpid();
	(void)fflush(stdout);
	(void)fflush(stderr);
	for (k = 0; k < g->o.procs; k++) {
		pid_t pid = fork();

		if (pid < 0)
			return -errno;
		if (pid == 0) {
			/* the parent gone (killed by the runner's bound), so are we */
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != g->parent)
				_exit(1);
			g->proc = (int)k;
			g->sub_lo = (uint32_t)((uint64_t)g->o.subs * k / g->o.procs);
			g->sub_hi = (uint32_t)((uint64_t)g->o.subs * (k + 1u) / g->o.procs);
			return 1;
		}
		g->kids[k] = pid;
	}
	g->sub_lo = g->sub_hi = 0; /* the parent: publishers only */
	return 0;
}

/* The parent: tell the children to close and exit, and reap them (bounded, then SIGKILL). */
static void stop_children(struct lg *g)
{
	uint64_t deadline = mono_ns() + 10 * NSEC_PER_SEC;
	uint32_t k, left;

	if (!g->sh || g->proc >= 0)
		return;
	SH_SET(g->sh->stop, 1);
	do {
		for (left = 0, k = 0; k < g->o.procs; k++) {
			if (g->kids[k] > 0 && waitpid(g->kids[k], NULL, WNOHANG) == 0)
				left++;
			else
				g->kids[k] = 0;
		}
		if (left)
			(void)nanosleep(&(struct timespec){ .tv_nsec = 10 * (long)NSEC_PER_MS },
					NULL);
	} while (left && mono_ns() < deadline);
	for (k = 0; k < g->o.procs; k++) {
		if (g->kids[k] > 0) {
			(void)kill(g->kids[k], SIGKILL);
			(void)waitpid(g->kids[k], NULL, 0);
		}
	}
}

static int setup(struct lg *g)
{
	const char *path =
		g->o.mode == MODE_REPLAY && g->o.replay_path ? g->o.replay_path : g->o.sub_path;
	rlim_t need = (rlim_t)(g->sub_hi - g->sub_lo) + g->o.pubs + 64u;
	sigset_t mask;
	uint32_t i;
	int err, n;

	err = raise_nofile(need);
	if (err < 0)
		return err;
	for (i = 0; i < g->o.nodes; i++) {
		g->dst[i].sin_family = AF_INET;
		g->dst[i].sin_port = htons(g->o.ports[i]);
		if (inet_pton(AF_INET, g->o.host, &g->dst[i].sin_addr) != 1) {
			say("'%s' is not an IPv4 address", g->o.host);
			return -EINVAL;
		}
	}
	/*
	 * nchan streams one chunk per message only when asked with "TE: chunked"; our server
	 * ignores the header. Replay: X-Fetch-Since: 0 on ours; nchan's replay location is
	 * configured with nchan_subscriber_first_message oldest.
	 */
	n = snprintf(g->sub_req, sizeof(g->sub_req), "GET %s HTTP/1.1\r\nHost: %s:%u\r\n%s%s\r\n",
		     path, g->o.host, g->o.port,
		     g->o.server == SERVER_NCHAN ? "TE: chunked\r\n" : "",
		     g->o.mode == MODE_REPLAY && g->o.server == SERVER_OURS ? "X-Fetch-Since: 0\r\n"
									    : "");
	if (n < 0 || (size_t)n >= sizeof(g->sub_req)) {
		say("subscriber path too long");
		return -EINVAL;
	}
	g->sub_req_len = (size_t)n;

	g->ep = epoll_create1(EPOLL_CLOEXEC);
	if (g->ep < 0)
		return -errno;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGALRM); /* --timeout */
	sigaddset(&mask, SIGUSR1); /* --go-signal */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	(void)signal(SIGPIPE, SIG_IGN);
	g->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (g->sigfd < 0)
		return -errno;
	err = ep_add(g, g->sigfd, EPOLLIN, LG_SIG_TAG);
	if (err < 0)
		return err;

	g->rbuf = malloc(LG_READ_BUF);
	g->subs = calloc(g->o.subs, sizeof(*g->subs));
	g->pubs = calloc(g->o.pubs, sizeof(*g->pubs));
	if (!g->rbuf || !g->subs || !g->pubs)
		return -ENOMEM;
	for (i = 0; i < g->o.subs; i++) {
		g->subs[i].fd = -1;
		g->subs[i].src = (uint16_t)(i % g->o.src_addrs);
	}
	if (g->o.mode == MODE_CONNECT || g->o.mode == MODE_IDLE)
		g->o.pubs = 1; /* the liveness check's publisher */
	/* Publishers connect when they first send (pub_queue), after the subscribers. */
	for (i = 0; i < g->o.pubs; i++) {
		struct pub *p = &g->pubs[i];

		p->id = i;
		p->fd = -1;
		p->out_cap = (size_t)g->o.window * (g->o.size + LG_REQ_HEAD_MAX) + LG_REQ_HEAD_MAX;
		p->out = malloc(p->out_cap);
		if (!p->out)
			return -ENOMEM;
	}
	return 0;
}

/* Close every connection; subscribers with RST (see sub_close_fd). */
static void teardown(struct lg *g)
{
	uint32_t i;

	for (i = 0; g->subs && i < g->o.subs; i++) {
		sub_close_fd(&g->subs[i], true);
		free(g->subs[i].line);
		if (g->subs[i].tr) {
			uint32_t k;

			for (k = 0; k < g->o.pubs; k++)
				free(g->subs[i].tr[k].bits);
			free(g->subs[i].tr);
		}
	}
	for (i = 0; g->pubs && i < g->o.pubs; i++) {
		if (g->pubs[i].fd >= 0)
			(void)close(g->pubs[i].fd);
		free(g->pubs[i].out);
	}
	free(g->subs);
	free(g->pubs);
	free(g->rbuf);
}

int main(int argc, char **argv)
{
	static struct lg g; /* large (histograms): static, not on the stack */
	int err;

	err = parse_args(argc, argv, &g.o);
	if (err)
		return err < 0 ? 2 : 0; /* a usage error, or --help */
	g.ep = g.sigfd = -1;
	/* A hard bound on the whole run, whatever a server does. */
	alarm((unsigned)ceil(g.o.timeout));
	err = spawn_children(&g);
	if (err < 0) {
		say("unable to start the subscriber processes: %s", strerror(-err));
		stop_children(&g);
		return 1;
	}
	if (err > 0) { /* a child */
		err = setup(&g);
		if (err < 0) {
			say("subscriber process %d: setup failed: %s", g.proc, strerror(-err));
			g.err = err;
			child_sync(&g);
		} else {
			err = run_child(&g);
		}
		teardown(&g);
		_exit(err ? 1 : 0);
	}
	err = setup(&g);
	if (err < 0) {
		if (err != -EINVAL)
			say("setup failed: %s", strerror(-err));
		stop_children(&g);
		teardown(&g);
		return err == -EINVAL ? 2 : 1;
	}
	switch (g.o.mode) {
	case MODE_LATENCY:
		err = run_latency(&g);
		break;
	case MODE_CONNECT:
		err = run_connect(&g);
		break;
	case MODE_IDLE:
		err = run_idle(&g);
		break;
	default:
		err = run_replay(&g);
		break;
	}
	(void)fflush(stdout);
	stop_children(&g);
	teardown(&g);
	if (err < 0)
		say("run failed (%s): %u of %u subscribers connected, %u closed by the server",
		    strerror(-err), g.heads, g.o.subs, g.closed_by_server);
	return err < 0 ? 1 : 0;
}
