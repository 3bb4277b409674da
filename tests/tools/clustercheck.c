/* SPDX-License-Identifier: MIT */
/*
 * clustercheck: the publisher and the checker of tests/96-cluster.bats (README "Running a cluster").
 *
 *   clustercheck publish --ports P1,P2,... --count N [--conns C] [--tag T] [--topic /t]
 *     N publishes of {"tag":"T","n":k}, k = 0..N-1, spread over C keep-alive connections (one
 *     thread each), connection i to port P[i % #ports] on 127.0.0.1: a publisher per node. Each
 *     publish gets X-Message-Id: T-k. Prints "k status" per publish on stdout (status 0: no
 *     answer: the connection failed or the answer took longer than REQ_TIMEOUT_S), then on
 *     stderr the count per status and the time taken.
 *
 *   clustercheck check --acked FILE --tag T STREAM...
 *     FILE holds "k status" lines (publish's output); each STREAM is what one subscriber got
 *     (curl -N's output: one JSON message per line). For each stream, every message of tag T:
 *     "dup" counts repeats, "lost" the acknowledged (200) ones never received, "reorder" the
 *     positions where its order departs from the first stream's (the same messages in the same
 *     order on every node), "gaps" the gap notices.
 *     Prints "stream=I received=R dup=D lost=L reorder=O gaps=G" per stream; exit 0 when
 *     dup, lost and reorder are all 0, else 1.
 *
 * Built by make test-programs (build/tests/tools/clustercheck).
 * Exit status: 0 success (check: all clean), 1 failure (check: a fault found), 2 usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS     16
#define MAX_CONNS     64
#define MAX_COUNT     1000000 /* publishes of one run */
#define REQ_TIMEOUT_S 20      /* an answer later than this counts as none (status 0) */
#define RESP_MAX      4096    /* bytes of a publish answer we read */
#define LINE_MAX_LEN  65536   /* bytes of one stream line we look at */
#define MAX_STREAMS   16

struct pub {
	int ports[MAX_PORTS], nports, conns;
	long count;
	const char *tag, *topic;
	int *status; /* per k */
};

struct worker {
	struct pub *p;
	int index;
};

static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = REQ_TIMEOUT_S };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		(void)close(fd);
		return err;
	}
	return fd;
}

/* One publish on *fd (reconnecting when needed); the status, 0 for none. */
static int publish_one(int *fd, int port, const struct pub *p, long k)
{
	char req[512], body[128], resp[RESP_MAX + 1];
	size_t have = 0;
	int n, blen, status = 0;

	blen = snprintf(body, sizeof(body), "{\"tag\":\"%s\",\"n\":%ld}", p->tag, k);
	n = snprintf(req, sizeof(req),
		     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Message-Id: %s-%ld\r\n"
		     "Content-Length: %d\r\n\r\n%s",
		     p->topic, p->tag, k, blen, body);
	if (*fd < 0)
		*fd = dial(port);
	if (*fd < 0)
		return 0;
	if (send(*fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto broken;
	/* the answer: a head with Content-Length and a short body; read until both are in */
	for (;;) {
		ssize_t r = recv(*fd, resp + have, RESP_MAX - have, 0);
		char *end, *cl;

		if (r <= 0)
			goto broken;
		have += (size_t)r;
		resp[have] = '\0';
		end = strstr(resp, "\r\n\r\n");
		if (!end)
			continue;
		cl = strcasestr(resp, "\r\nContent-Length:");
		if (cl && cl < end && have < (size_t)(end + 4 - resp) + strtoul(cl + 17, NULL, 10))
			continue;
		if (strncmp(resp, "HTTP/1.", 7) != 0 || have < 12)
			goto broken;
		status = (int)strtol(resp + 9, NULL, 10);
		cl = strcasestr(resp, "\r\nConnection: close");
		if (cl && cl < end) {
			(void)close(*fd);
			*fd = -1;
		}
		return status;
	}
broken:
	(void)close(*fd);
	*fd = -1;
	return status;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pub *p = w->p;
	const int port = p->ports[w->index % p->nports];
	int fd = -1;

	for (long k = w->index; k < p->count; k += p->conns)
		p->status[k] = publish_one(&fd, port, p, k);
	if (fd >= 0)
		(void)close(fd);
	return NULL;
}

static int parse_ports(const char *s, struct pub *p)
{
	char *end;

	for (p->nports = 0; *s && p->nports < MAX_PORTS; p->nports++) {
		long v = strtol(s, &end, 10);
		if (end == s || v < 1 || v > 65535)
			return -1;
		p->ports[p->nports] = (int)v;
		s = *end == ',' ? end + 1 : end;
	}
	return p->nports > 0 && !*s ? 0 : -1;
}

static int cmd_publish(int argc, char **argv)
{
	static const struct option opts[] = { { "ports", required_argument, NULL, 'p' },
					      { "count", required_argument, NULL, 'n' },
					      { "conns", required_argument, NULL, 'c' },
					      { "tag", required_argument, NULL, 't' },
					      { "topic", required_argument, NULL, 'T' },
					      { 0 } };
	struct pub p = { .conns = 6, .tag = "m", .topic = "/cluster" };
	struct worker w[MAX_CONNS];
	pthread_t th[MAX_CONNS];
	long counts[600] = { 0 };
	struct timespec t0, t1;
	int c, started;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'p' && parse_ports(optarg, &p) == 0)
			continue;
		if (c == 'n')
			p.count = strtol(optarg, NULL, 10);
		else if (c == 'c')
			p.conns = (int)strtol(optarg, NULL, 10);
		else if (c == 't')
			p.tag = optarg;
		else if (c == 'T')
			p.topic = optarg;
		else
			return 2;
	}
	if (p.nports == 0 || p.count < 1 || p.count > MAX_COUNT || p.conns < 1 ||
	    p.conns > MAX_CONNS)
		return 2;
	p.status = calloc((size_t)p.count, sizeof(int));
	if (!p.status)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (started = 0; started < p.conns; started++) {
		w[started] = (struct worker){ .p = &p, .index = started };
		if (pthread_create(&th[started], NULL, worker_main, &w[started]) != 0)
			break; /* join those started, then fail */
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (started < p.conns) {
		free(p.status);
		return 1;
	}
	for (long k = 0; k < p.count; k++) {
		printf("%ld %d\n", k, p.status[k]);
		if (p.status[k] >= 0 && p.status[k] < 600)
			counts[p.status[k]]++;
	}
	for (int s = 0; s < 600; s++)
		if (counts[s])
			fprintf(stderr, "status %d: %ld\n", s, counts[s]);
	fprintf(stderr, "%ld publishes in %.2f s\n", p.count,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	free(p.status);
	return 0;
}

/* The n of a message of tag in line, or -1. */
static long message_n(const char *line, const char *tag)
{
	char want[128];
	const char *p;

	(void)snprintf(want, sizeof(want), "\"tag\":\"%s\",\"n\":", tag);
	p = strstr(line, want);
	return p ? strtol(p + strlen(want), NULL, 10) : -1;
}

struct seen {
	long *order; /* n in arrival order, repeats included */
	long len;
	long gaps;
};

static int read_stream(const char *path, const char *tag, struct seen *s)
{
	static char line[LINE_MAX_LEN];
	FILE *f = fopen(path, "r");
	long cap = 1024;

	if (!f)
		return -errno;
	s->order = malloc((size_t)cap * sizeof(long));
	if (!s->order) {
		fclose(f);
		return -ENOMEM;
	}
	while (fgets(line, sizeof(line), f)) {
		long n = message_n(line, tag);

		if (strstr(line, "{\"gap\"") || strstr(line, "event: gap"))
			s->gaps++;
		if (n < 0)
			continue;
		if (s->len == cap) {
			long *o = realloc(s->order, (size_t)cap * 2 * sizeof(long));
			if (!o) {
				fclose(f);
				return -ENOMEM;
			}
			s->order = o;
			cap *= 2;
		}
		s->order[s->len++] = n;
	}
	fclose(f);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = { { "acked", required_argument, NULL, 'a' },
					      { "tag", required_argument, NULL, 't' },
					      { 0 } };
	const char *acked_path = NULL, *tag = "m";
	char line[128];
	struct seen s[MAX_STREAMS] = { 0 };
	bool clean = true;
	long max_n = 0;
	char *acked;
	FILE *f;
	int c, ns;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a')
			acked_path = optarg;
		else if (c == 't')
			tag = optarg;
		else
			return 2;
	}
	ns = argc - optind;
	if (!acked_path || ns < 1 || ns > MAX_STREAMS)
		return 2;
	f = fopen(acked_path, "r");
	if (!f) {
		perror(acked_path);
		return 1;
	}
	acked = calloc(MAX_COUNT, 1);
	if (!acked) {
		fclose(f);
		return 1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *end;
		const long k = strtol(line, &end, 10), status = strtol(end, NULL, 10);

		if (k >= 0 && k < MAX_COUNT && status == 200) {
			acked[k] = 1;
			max_n = k + 1 > max_n ? k + 1 : max_n;
		}
	}
	fclose(f);
	for (int i = 0; i < ns; i++) {
		char *got = calloc(MAX_COUNT, 1);
		long dup = 0, lost = 0, reorder = 0;

		if (!got || read_stream(argv[optind + i], tag, &s[i]) < 0) {
			perror(argv[optind + i]);
			free(got);
			for (int j = 0; j <= i; j++)
				free(s[j].order);
			free(acked);
			return 1;
		}
		for (long j = 0; j < s[i].len; j++) {
			long n = s[i].order[j];
			if (n < 0 || n >= MAX_COUNT)
				continue;
			if (got[n])
				dup++;
			got[n] = 1;
		}
		for (long n = 0; n < max_n; n++)
			if (acked[n] && !got[n])
				lost++;
		/* the same order as stream 0, over the part both hold */
		if (i > 0) {
			for (long j = 0; j < s[i].len && j < s[0].len; j++)
				if (s[i].order[j] != s[0].order[j])
					reorder++;
		}
		printf("stream=%d received=%ld dup=%ld lost=%ld reorder=%ld gaps=%ld\n", i,
		       s[i].len, dup, lost, reorder, s[i].gaps);
		if (dup || lost || reorder)
			clean = false;
		free(got);
	}
	for (int i = 0; i < ns; i++)
		free(s[i].order);
	free(acked);
	return clean ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "publish") == 0)
		return cmd_publish(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	fprintf(stderr, "usage: clustercheck publish|check ... (see the comment at its top)\n");
	return 2;
}
