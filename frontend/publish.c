/* SPDX-License-Identifier: MIT */
/* POST and PUT (PROTOCOL 4): read the body under its framing and limits, hand it to the
 * broker (common/proto.h), and answer only with what the broker says. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/proto.h"
#include "frontend/cursor.h"
#include "frontend/frontend.h"
#include "shm/topic.h"

/* How long a publisher waits for the broker before it gets a 503 (PROTOCOL 4.6). */
#define BROKER_TIMEOUT_MS 5000

static char *body_buf;	     /* max_body + 1 bytes, allocated at the first publish */
static uint8_t *topic_buf;   /* the stored topic */
static uint8_t *dgram_buf;   /* the request datagram: struct proto_req + message id + topic */

static int broker_connect(struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(c->cfg.socket_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, c->cfg.socket_path, strlen(c->cfg.socket_path) + 1);
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

static int send_request(struct conn *c, const char *id, size_t id_len, size_t topic_len,
			size_t body_len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct proto_req req = { .magic = PROTO_MAGIC,
				 .topic_len = (uint32_t)topic_len,
				 .body_len = body_len,
				 .id_len = (uint32_t)id_len };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;
	ssize_t n;

	memset(&ctl, 0, sizeof(ctl));
	memcpy(dgram_buf, &req, sizeof(req));
	if (id_len)
		memcpy(dgram_buf + sizeof(req), id, id_len);
	memcpy(dgram_buf + sizeof(req) + id_len, topic_buf, topic_len);
	iov.iov_base = dgram_buf;
	iov.iov_len = sizeof(req) + id_len + topic_len;
	cm = &ctl.align; /* CMSG_FIRSTHDR(&mh), which the compiler cannot prove non-NULL */
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->memfd, sizeof(int));
	do
		n = sendmsg(c->broker_fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)iov.iov_len ? 0 : -EIO;
}

static int recv_reply(struct conn *c, struct proto_resp *ret)
{
	struct proto_resp r;
	ssize_t n;
	int p = io_poll1(c->broker_fd, POLLIN, BROKER_TIMEOUT_MS);

	if (p < 0)
		return p;
	if (p == 0)
		return -ETIMEDOUT;
	do
		n = recv(c->broker_fd, &r, sizeof(r), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(r) || r.magic != PROTO_MAGIC)
		return -EPROTO;
	r.reason[sizeof(r.reason) - 1] = '\0';
	*ret = r;
	return 0;
}

static void broker_close(struct conn *c)
{
	if (c->broker_fd >= 0)
		(void)close(c->broker_fd);
	c->broker_fd = -1;
}

/*
 * Hand body[0..len) for the stored topic to the broker and wait for its answer. A request that
 * could not even be sent (the broker restarted since our last publish) is sent once more on a
 * new connection; one that was sent but not answered is not, as it may be stored already.
 */
static int broker_publish(struct conn *c, const char *id, size_t id_len, size_t topic_len,
			  size_t body_len, struct proto_resp *ret)
{
	int err;

	if (c->memfd < 0) {
		c->memfd = memfd_create("gitpubsub-body", MFD_CLOEXEC);
		if (c->memfd < 0)
			return -errno;
	}
	/* The broker reads body_len bytes from offset 0 (pread), so bytes of an earlier, longer
	 * body beyond them do no harm: no ftruncate, which would free the pages for the next
	 * write to allocate and zero again. */
	if (lseek(c->memfd, 0, SEEK_SET) < 0)
		return -errno;
	err = io_write_full(c->memfd, body_buf, body_len);
	if (err < 0)
		return err;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->broker_fd < 0) {
			c->broker_fd = broker_connect(c);
			if (c->broker_fd < 0)
				return c->broker_fd;
		}
		err = send_request(c, id, id_len, topic_len, body_len);
		if (err == 0)
			break;
		broker_close(c);
	}
	if (err < 0)
		return err;
	err = recv_reply(c, ret);
	if (err < 0)
		broker_close(c);
	return err;
}

/* Read until body_buf holds len bytes (Content-Length framing). 0 or conn_fail. */
static void read_length_body(struct conn *c, uint64_t len, uint64_t deadline)
{
	size_t have = MIN((size_t)len, c->in_len);

	memcpy(body_buf, c->in, have);
	conn_consume(c, have);
	while (have < len) {
		ssize_t n;

		/* read straight into the body buffer: c->in is empty by now */
		c->in_len = 0;
		n = conn_fill(c, deadline);
		if (n == -ETIMEDOUT)
			conn_fail(c, 408, "request body not complete in time");
		if (n <= 0)
			conn_fail(c, 400, "connection closed before the end of the body");
		{
			size_t take = MIN((size_t)(len - have), c->in_len);
			memcpy(body_buf + have, c->in, take);
			have += take;
			conn_consume(c, take);
		}
	}
}

/* Chunked framing (PROTOCOL 4.2): decode c->in in place, append to body_buf. */
static size_t read_chunked_body(struct conn *c, uint64_t deadline)
{
	struct http_chunked dec;
	size_t have = 0;

	http_chunked_init(&dec);
	for (;;) {
		size_t len = c->in_len;
		ssize_t r = len ? http_chunked_decode(&dec, c->in, &len) : -2;

		if (r == -1)
			conn_fail(c, 400, "malformed chunked body");
		/* A chunk size over the limit crosses it as soon as its digits arrive (PROTOCOL
		 * 4.4): waiting for its data would hold the connection until the body timeout.
		 * total is have + len, remaining the announced rest of the chunk (< 2^63). */
		if (dec.total + dec.remaining > c->cfg.max_body)
			conn_fail(c, 413, "body larger than the limit");
		memcpy(body_buf + have, c->in, len);
		have += len;
		if (r >= 0) {
			/* the r bytes after the body belong to the next request */
			memmove(c->in, c->in + len, (size_t)r);
			c->in_len = (size_t)r;
			return have;
		}
		c->in_len = 0;
		{
			ssize_t n = conn_fill(c, deadline);
			if (n == -ETIMEDOUT)
				conn_fail(c, 408, "request body not complete in time");
			if (n <= 0)
				conn_fail(c, 400, "connection closed before the end of the body");
		}
	}
}

/* No framing at all (PROTOCOL 4.2, compat): one line, ending at LF or when the client
 * half-closes. */
static size_t read_line_body(struct conn *c, uint64_t deadline)
{
	size_t have = 0;

	for (;;) {
		char *lf = memchr(c->in, '\n', c->in_len);
		size_t take = lf ? (size_t)(lf - c->in) + 1 : c->in_len;

		if (have + take > c->cfg.max_body)
			conn_fail(c, 413, "body larger than the limit");
		memcpy(body_buf + have, c->in, take);
		have += take;
		conn_consume(c, take);
		if (lf)
			return have;
		{
			ssize_t n = conn_fill(c, deadline);
			if (n == 0)
				return have;
			if (n == -ETIMEDOUT)
				conn_fail(c, 408, "request body not complete in time");
			if (n < 0)
				conn_fail(c, 400, "unable to read the body");
		}
	}
}

/* How many header lines are named name (case-insensitive). */
static size_t header_count(const struct http_request *req, const char *name)
{
	size_t n = 0, len = strlen(name);

	for (size_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].name_len == len &&
		    strncasecmp(req->headers[i].name, name, len) == 0)
			n++;
	return n;
}

/*
 * X-Message-Id headers (README, "Additions to the protocol", 4.7): none (0), one or several equal
 * ones (1, *ret_id and *ret_len set), an invalid value (-1), or several that differ (-2).
 */
static int message_id(const struct http_request *req, const char **ret_id, size_t *ret_len)
{
	static const char name[] = "X-Message-Id";
	const char *id = NULL;
	size_t len = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];

		if (h->name_len != sizeof(name) - 1 ||
		    strncasecmp(h->name, name, sizeof(name) - 1) != 0)
			continue;
		if (!proto_id_valid((const uint8_t *)h->value, h->value_len))
			return -1;
		if (id && (h->value_len != len || memcmp(h->value, id, len) != 0))
			return -2;
		id = h->value;
		len = h->value_len;
	}
	*ret_id = id;
	*ret_len = len;
	return id != NULL;
}

/* Content-Length headers: none (0), one or several equal ones (1), or a conflict (-1). */
static int content_length(const struct http_request *req, uint64_t *ret)
{
	bool seen = false;
	uint64_t v = 0;

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		uint64_t x;

		if (h->name_len != 14 || strncasecmp(h->name, "Content-Length", 14) != 0)
			continue;
		if (http_parse_content_length(h->value, h->value_len, &x) < 0)
			return -1;
		if (seen && x != v)
			return -1;
		seen = true;
		v = x;
	}
	*ret = v;
	return seen;
}

static bool ensure_buffers(struct conn *c)
{
	if (body_buf)
		return true;
	/* sized for the worst case: mapped, so only the bytes a publish uses cost memory */
	body_buf = frontend_map(c->cfg.max_body + 1);
	topic_buf = frontend_map(c->in_cap);
	dgram_buf = frontend_map(sizeof(struct proto_req) + PROTO_MAX_ID + c->in_cap);
	return body_buf && topic_buf && dgram_buf;
}

bool publish_handle(struct conn *c, const struct http_request *req, bool keep_alive)
{
	const struct http_header *te = http_find_header(req, "Transfer-Encoding");
	const struct http_header *expect = http_find_header(req, "Expect");
	uint64_t deadline, clen = 0;
	struct proto_resp resp;
	const char *msg_id = NULL;
	size_t body_len, msg_id_len = 0;
	long tlen;
	int has_cl, err;
	char out[512], cursor[CURSOR_MAX];
	int n;

	/* PROTOCOL 4.1: untrusted peers are refused before a byte of body is read */
	if (!c->trusted)
		conn_fail(c, 403, "Only trusted sources may send data!");
	if (!ensure_buffers(c))
		conn_fail(c, 500, "out of memory");

	has_cl = content_length(req, &clen);
	if (has_cl < 0)
		conn_fail(c, 400, "invalid or conflicting Content-Length");
	if (te && has_cl)
		conn_fail(c, 400, "both Content-Length and Transfer-Encoding");
	/* Several Transfer-Encoding lines make one list (RFC 9110 5.3): "chunked" then "gzip" is
	 * "chunked, gzip", not chunked, however the first line reads. */
	if (te && (header_count(req, "Transfer-Encoding") > 1 ||
		   !(te->value_len == 7 && strncasecmp(te->value, "chunked", 7) == 0)))
		conn_fail(c, 501, "only the chunked transfer coding is supported");
	if (has_cl && clen > c->cfg.max_body)
		conn_fail(c, 413, "body larger than the limit");

	tlen = topic_publish_parse(req->target, req->target_len, topic_buf, c->in_cap);
	if (tlen < 0)
		conn_fail(c, 400, "invalid topic: no '*' segment, control character or bad %-escape");

	switch (message_id(req, &msg_id, &msg_id_len)) {
	case -1:
		conn_fail(c, 400,
			  "invalid X-Message-Id: 1 to 128 visible ASCII characters (0x21-0x7E)");
	case -2:
		conn_fail(c, 400, "several differing X-Message-Id headers");
	default:
		break;
	}

	if (expect && expect->value_len == 12 && strncasecmp(expect->value, "100-continue", 12) == 0) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (c->in_len == 0 && conn_send(c, cont, sizeof(cont) - 1) < 0)
			return false;
	}

	deadline = io_now_mono_us() + (uint64_t)c->cfg.body_timeout_ms * 1000u;
	if (has_cl) {
		read_length_body(c, clen, deadline);
		body_len = (size_t)clen;
	} else if (te) {
		body_len = read_chunked_body(c, deadline);
	} else {
		body_len = read_line_body(c, deadline);
		keep_alive = false; /* the original's hook half-closes: nothing can follow */
	}

	err = broker_publish(c, msg_id, msg_id_len, (size_t)tlen, body_len, &resp);
	if (err < 0) {
		log_warning("%s: unable to reach the broker at '%s': %s", c->peer,
			    c->cfg.socket_path, strerror(-err));
		conn_fail(c, 503,
			  err == -EMFILE || err == -ENFILE
				  ? "the server is out of file descriptors; try again"
				  : "the message could not be stored; try again");
	}
	if (resp.status != 200)
		conn_fail(c, (int)resp.status, resp.reason);

	/* README 3.8: the cursor names the ring the broker stored the message in */
	(void)cursor_format(cursor, sizeof(cursor), resp.generation, resp.seq);
	n = snprintf(out, sizeof(out),
		     "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\nX-Timestamp: %llu\r\n"
		     "X-Cursor: %s\r\n"
		     "Content-Type: text/plain\r\nContent-Length: 15\r\n%s\r\nMessage sent!\r\n",
		     (unsigned long long)(resp.time_us / 1000000u), cursor,
		     keep_alive ? "" : "Connection: close\r\n");
	if (conn_send(c, out, (size_t)n) < 0)
		return false;
	return keep_alive;
}
