/* SPDX-License-Identifier: MIT */
/*
 * brokerfds: the driver of tests/20-broker-fds.bats (issue 14 item 4), a frontend that
 * misbehaves on the broker's local socket (common/proto.h).
 *
 *   brokerfds send SOCKET CASE   one request to topic /fds, carrying descriptors as CASE says:
 *       memfd      a body over PROTO_INLINE_MAX in a memfd: the one descriptor a request may
 *                  carry (stored: 200)
 *       stray      an inline body, and a pipe's write end it does not call for
 *       two        a large body in its memfd, and a pipe's write end beside it
 *       many       an inline body, and MANY_PIPES pipes' write ends
 *       pipe-body  a large body whose one descriptor is a pipe's write end, not a memfd
 *       empty      a datagram of no bytes, with a pipe's write end
 *     and prints "status=N reason=TEXT closed=K/M": the broker's answer (status=none when the
 *     connection closed without one), and of the M pipes sent, how many the broker closed: the
 *     read end, whose every write end is then closed, reports POLLHUP.
 *   brokerfds hold SOCKET N      open N connections, print "connected=N", and hold them until
 *     SIGTERM or SIGINT (the broker accepts what its descriptor limit allows; the rest wait).
 *
 * Exit status: 0 when it ran (whatever the answer), 1 on a runtime failure, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/proto.h"

/* Pipes of the "many" case: more than the broker's control buffer holds (RECV_FDS_ROOM). */
#define MANY_PIPES  8
/* Bytes of a large body: over PROTO_INLINE_MAX, far under the tests' maxBodySize. */
#define LARGE_BODY  (PROTO_INLINE_MAX + 4096)
/* How long to wait for the broker's answer, and then for it to close each pipe (ms). */
#define WAIT_MS	    3000
/* The stored form of topic /fds (shm/topic.h: decoded segments joined by NUL). */
#define TOPIC	    "fds"
#define INLINE_BODY "{\"fds\":1}"

struct req {
	uint8_t dgram[sizeof(struct proto_req) + sizeof(TOPIC) + sizeof(INLINE_BODY)];
	size_t len;
	int fds[MANY_PIPES + 1];
	size_t nfds;
	int hup[MANY_PIPES]; /* the read ends of the pipes sent */
	size_t npipes;
};

static int connect_broker(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		(void)close(fd);
		return err;
	}
	return fd;
}

/* A pipe: its write end goes with the request, its read end stays to see the broker close it. */
static int add_pipe(struct req *r)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r->hup[r->npipes++] = p[0];
	r->fds[r->nfds++] = p[1];
	return 0;
}

/* A memfd holding a large JSON body: {"pad":"ppp..."}. */
static int add_memfd(struct req *r, size_t len)
{
	int fd = memfd_create("brokerfds-body", MFD_CLOEXEC);
	char *body = malloc(len);
	int err = 0, head;

	if (fd < 0 || !body) {
		err = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	head = snprintf(body, len, "{\"pad\":\"");
	memset(body + head, 'p', len - (size_t)head - 2);
	body[len - 2] = '"';
	body[len - 1] = '}';
	if (write(fd, body, len) != (ssize_t)len) {
		err = -EIO;
		goto out;
	}
	r->fds[r->nfds++] = fd;
	fd = -1;
out:
	free(body);
	if (fd >= 0)
		(void)close(fd);
	return err;
}

/* The request of case name into r: 0, -EINVAL for an unknown case, or -errno. */
static int build(const char *name, struct req *r)
{
	struct proto_req h = { .magic = PROTO_MAGIC, .topic_len = sizeof(TOPIC) - 1 };
	bool large = !strcmp(name, "memfd") || !strcmp(name, "two") || !strcmp(name, "pipe-body");
	int err = 0;

	h.body_len = large ? LARGE_BODY : sizeof(INLINE_BODY) - 1;
	memcpy(r->dgram, &h, sizeof(h));
	memcpy(r->dgram + sizeof(h), TOPIC, sizeof(TOPIC) - 1);
	r->len = sizeof(h) + sizeof(TOPIC) - 1;
	if (!large) {
		memcpy(r->dgram + r->len, INLINE_BODY, sizeof(INLINE_BODY) - 1);
		r->len += sizeof(INLINE_BODY) - 1;
	}
	if (!strcmp(name, "memfd")) {
		err = add_memfd(r, LARGE_BODY);
	} else if (!strcmp(name, "stray") || !strcmp(name, "pipe-body")) {
		err = add_pipe(r);
	} else if (!strcmp(name, "two")) {
		err = add_memfd(r, LARGE_BODY);
		if (!err)
			err = add_pipe(r);
	} else if (!strcmp(name, "many")) {
		for (int i = 0; i < MANY_PIPES && !err; i++)
			err = add_pipe(r);
	} else if (!strcmp(name, "empty")) {
		r->len = 0;
		err = add_pipe(r);
	} else {
		return -EINVAL;
	}
	return err;
}

/* Send r on fd with its descriptors in one SCM_RIGHTS message, then close our copies. */
static int send_req(int fd, struct req *r)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(r->fds))];
	} ctl;
	struct iovec iov = { .iov_base = r->dgram, .iov_len = r->len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm = &ctl.align;
	ssize_t n;

	memset(&ctl, 0, sizeof(ctl));
	if (r->nfds) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(r->nfds * sizeof(int));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(r->nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), r->fds, r->nfds * sizeof(int));
	}
	n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	for (size_t i = 0; i < r->nfds; i++)
		(void)close(r->fds[i]);
	return n == (ssize_t)r->len ? 0 : n < 0 ? -errno : -EIO;
}

/* How many of the pipes' read ends see every write end closed within WAIT_MS. */
static size_t count_closed(const struct req *r)
{
	size_t closed = 0;

	for (size_t i = 0; i < r->npipes; i++) {
		struct pollfd p = { .fd = r->hup[i], .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) == 1 && (p.revents & POLLHUP))
			closed++;
	}
	return closed;
}

static int run_send(const char *path, const char *name)
{
	struct req r = { .len = 0 };
	struct proto_resp resp;
	struct pollfd p;
	ssize_t n = -1;
	int fd, err;

	err = build(name, &r);
	if (err == -EINVAL) {
		fprintf(stderr, "brokerfds: unknown case '%s'\n", name);
		return 2;
	}
	fd = err < 0 ? err : connect_broker(path);
	if (fd < 0 || send_req(fd, &r) < 0) {
		fprintf(stderr, "brokerfds: unable to send to '%s': %s\n", path,
			strerror(fd < 0 ? -fd : errno));
		return 1;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&p, 1, WAIT_MS) == 1)
		n = recv(fd, &resp, sizeof(resp), 0);
	if (n == (ssize_t)sizeof(resp) && resp.magic == PROTO_MAGIC) {
		resp.reason[sizeof(resp.reason) - 1] = '\0';
		printf("status=%u reason=%s", resp.status, resp.reason);
	} else {
		printf("status=none reason=%s", n == 0 ? "closed" : n < 0 ? "no answer" : "short");
	}
	(void)close(fd); /* what the broker still holds of ours is its own, not the connection's */
	printf(" closed=%zu/%zu\n", count_closed(&r), r.npipes);
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;
}

static int run_hold(const char *path, const char *count)
{
	char *end;
	long n = strtol(count, &end, 10);
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t mask, old;

	if (*end || n < 1 || n > 100000) {
		fprintf(stderr, "brokerfds: invalid count '%s'\n", count);
		return 2;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	(void)sigprocmask(SIG_BLOCK, &mask, &old);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	for (long i = 0; i < n; i++) {
		int fd = connect_broker(path);

		if (fd < 0) {
			fprintf(stderr, "brokerfds: connection %ld: %s\n", i + 1, strerror(-fd));
			return 1;
		}
	}
	printf("connected=%ld\n", n);
	(void)fflush(stdout);
	(void)sigsuspend(&old); /* the connections close with the process */
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "send"))
		return run_send(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "hold"))
		return run_hold(argv[2], argv[3]);
	fprintf(stderr, "usage: brokerfds send SOCKET CASE | hold SOCKET N\n");
	return 2;
}
