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
/*
 * Pipelined publishes (PROTOCOL 1.3) go to the broker together: the requests already read from
 * the client are handed over in one sendmmsg() and answered in one write, so a publisher that
 * pipelines costs one round trip to the broker, one wake-up of the readers and one write per
 * batch instead of per message (issue 5, scenario 2). Nothing waits for more requests to come:
 * the batch leaves as soon as the next read from the client would block (conn_fill). At most
 * PUB_PIPELINE requests, below the broker's REQUEST_BATCH so that one round of its loop takes
 * them all, and PUB_BATCH_BYTES of datagrams, well within a local socket's send buffer (208
 * KiB), so handing them over never waits for the broker to read.
 */
#define PUB_PIPELINE	  32u
#define PUB_BATCH_BYTES	  ((size_t)128 * 1024u)
#define PUB_ANSWER_MAX	  512u /* one 200 answer: fixed lines, a timestamp and a cursor */

/* A publish handed to (or about to be handed to) the broker, waiting for its answer. */
struct pending {
	size_t off, len; /* its datagram in batch_buf */
	bool keep_alive; /* its answer leaves the connection open */
	bool in_memfd;	 /* its body is in c->memfd (larger than PROTO_INLINE_MAX) */
};

static char *body_buf;	   /* max_body + 1 bytes, allocated at the first publish */
static uint8_t *topic_buf; /* the stored topic */
static uint8_t *batch_buf; /* the datagrams of the pending publishes */
static size_t batch_len;
static char *answer_buf; /* PUB_PIPELINE answers */
static struct pending pending[PUB_PIPELINE];
static size_t npending;
static struct proto_resp replies[PUB_PIPELINE];

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

static void broker_close(struct conn *c)
{
	if (c->broker_fd >= 0)
		(void)close(c->broker_fd);
	c->broker_fd = -1;
}

/*
 * Hand the first n pending requests to the broker, in order; a request with its body in the
 * memfd carries the fd. A batch that could not even start (the broker restarted since our last
 * publish) is sent once more on a new connection; requests that were sent are not, as they may
 * be stored already. Returns how many were sent: n, or fewer with *ret_err set.
 */
static size_t send_batch(struct conn *c, size_t n, int *ret_err)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct mmsghdr msgs[PUB_PIPELINE];
	struct iovec iov[PUB_PIPELINE];
	/* not CMSG_FIRSTHDR, which the compiler cannot prove non-NULL */
	struct cmsghdr *cm = &ctl.align;
	size_t sent = 0;
	bool retried = false;

	memset(&ctl, 0, sizeof(ctl));
	memset(msgs, 0, sizeof(msgs));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &c->memfd, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = batch_buf + pending[i].off;
		iov[i].iov_len = pending[i].len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		if (pending[i].in_memfd) {
			msgs[i].msg_hdr.msg_control = ctl.buf;
			msgs[i].msg_hdr.msg_controllen = sizeof(ctl.buf);
		}
	}
	while (sent < n) {
		int r;

		if (c->broker_fd < 0) {
			c->broker_fd = broker_connect(c);
			if (c->broker_fd < 0) {
				*ret_err = c->broker_fd;
				return sent;
			}
		}
		r = sendmmsg(c->broker_fd, msgs + sent, (unsigned)(n - sent), MSG_NOSIGNAL);
		if (r > 0) {
			sent += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		*ret_err = r < 0 ? -errno : -EIO;
		broker_close(c);
		if (sent > 0 || retried)
			return sent;
		retried = true;
	}
	return sent;
}

/* Read the broker's replies to n requests into replies[]: 0, or -errno with *ret_got of them
 * read (-ETIMEDOUT: none came for BROKER_TIMEOUT_MS). Replies already there cost no wait. */
static int recv_replies(struct conn *c, size_t n, size_t *ret_got)
{
	struct mmsghdr msgs[PUB_PIPELINE];
	struct iovec iov[PUB_PIPELINE];
	size_t got = 0;
	int err = 0;

	memset(msgs, 0, sizeof(msgs));
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = &replies[i];
		iov[i].iov_len = sizeof(replies[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (got < n) {
		int r = recvmmsg(c->broker_fd, msgs + got, (unsigned)(n - got), MSG_DONTWAIT, NULL);

		if (r < 0 && errno == EAGAIN) {
			/* cluster mode: the broker answers within [Cluster] publishTimeout + 1 s */
			r = io_poll1(c->broker_fd, POLLIN,
				     c->cfg.nats[0] ? (int)c->cfg.publish_timeout_ms + 2000
						    : BROKER_TIMEOUT_MS);
			if (r == 0)
				err = -ETIMEDOUT;
			if (r <= 0 && err == 0)
				err = r;
			if (err < 0)
				break;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		for (int i = 0; i < r && err == 0; i++, got++) {
			struct proto_resp *p = &replies[got];

			if (msgs[got].msg_len == 0)
				err = -ECONNRESET; /* the broker went away */
			else if (msgs[got].msg_len != sizeof(*p) || p->magic != PROTO_MAGIC)
				err = -EPROTO;
			p->reason[sizeof(p->reason) - 1] = '\0';
		}
		if (err < 0) {
			got--; /* the bad one */
			break;
		}
	}
	*ret_got = got;
	return err;
}

/* The 200 answer to a stored publish (PROTOCOL 4.5, README 3.8) into out; its length. */
static size_t format_answer(char *out, const struct proto_resp *r, bool keep_alive)
{
	char cursor[CURSOR_MAX];
	int n;

	/* README 3.8: the cursor names the ring the broker stored the message in */
	(void)cursor_format(cursor, sizeof(cursor), r->generation, r->seq);
	n = snprintf(out, PUB_ANSWER_MAX,
		     "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\nX-Timestamp: %llu\r\n"
		     "X-Cursor: %s\r\n"
		     "Content-Type: text/plain\r\nContent-Length: 15\r\n%s\r\nMessage sent!\r\n",
		     (unsigned long long)(r->time_us / 1000000u), cursor,
		     keep_alive ? "" : "Connection: close\r\n");
	return n > 0 ? MIN((size_t)n, PUB_ANSWER_MAX - 1) : 0;
}

bool publish_pending(void)
{
	return npending > 0;
}

bool publish_flush(struct conn *c)
{
	size_t n = npending, sent, got = 0, i, out_len = 0;
	int err = 0;

	if (!n)
		return true;
	/* whatever happens below, these requests are done with (conn_fail calls us again) */
	npending = 0;
	batch_len = 0;
	sent = send_batch(c, n, &err);
	if (sent > 0) {
		int rerr = recv_replies(c, sent, &got);

		if (rerr < 0) {
			err = rerr;
			broker_close(c); /* its replies are out of step now */
		}
	}
	for (i = 0; i < got && replies[i].status == 200; i++)
		out_len += format_answer(answer_buf + out_len, &replies[i], pending[i].keep_alive);
	if (out_len && conn_send(c, answer_buf, out_len) < 0)
		return false;
	if (i < got)
		conn_fail(c, (int)replies[i].status, replies[i].reason);
	if (got < n) {
		log_warning("%s: unable to reach the broker at '%s': %s", c->peer,
			    c->cfg.socket_path, strerror(-err));
		conn_fail(c, 503,
			  err == -EMFILE || err == -ENFILE
				  ? "the server is out of file descriptors; try again"
				  : "the message could not be stored; try again");
	}
	return true;
}

/*
 * Queue the publish of body_buf[0..body_len) to the stored topic in topic_buf for the broker;
 * a body over PROTO_INLINE_MAX goes into the memfd. 0, or -errno (the memfd failed).
 */
static int queue_publish(struct conn *c, const char *id, size_t id_len, size_t topic_len,
			 size_t body_len, bool keep_alive)
{
	const bool in_memfd = body_len > PROTO_INLINE_MAX;
	struct proto_req req = { .magic = PROTO_MAGIC,
				 .topic_len = (uint32_t)topic_len,
				 .body_len = body_len,
				 .id_len = (uint32_t)id_len,
				 .flags = npending ? PROTO_REQ_CHAINED : 0 };
	struct pending *p = &pending[npending];
	uint8_t *d = batch_buf + batch_len;

	if (in_memfd) {
		int err;

		if (c->memfd < 0) {
			c->memfd = memfd_create("gitpubsub-body", MFD_CLOEXEC);
			if (c->memfd < 0)
				return -errno;
		}
		/* The broker reads body_len bytes from offset 0 (pread), so bytes of an earlier,
		 * longer body beyond them do no harm: no ftruncate, which would free the pages for
		 * the next write to allocate and zero again. */
		if (lseek(c->memfd, 0, SEEK_SET) < 0)
			return -errno;
		err = io_write_full(c->memfd, body_buf, body_len);
		if (err < 0)
			return err;
	}
	memcpy(d, &req, sizeof(req));
	if (id_len)
		memcpy(d + sizeof(req), id, id_len);
	memcpy(d + sizeof(req) + id_len, topic_buf, topic_len);
	if (!in_memfd)
		memcpy(d + sizeof(req) + id_len + topic_len, body_buf, body_len);
	p->off = batch_len;
	p->len = sizeof(req) + id_len + topic_len + (in_memfd ? 0 : body_len);
	p->keep_alive = keep_alive;
	p->in_memfd = in_memfd;
	batch_len += p->len;
	npending++;
	return 0;
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
	/* a batch below PUB_BATCH_BYTES always has room for one more maximal datagram */
	batch_buf = frontend_map(PUB_BATCH_BYTES + sizeof(struct proto_req) + PROTO_MAX_ID +
				 c->in_cap + PROTO_INLINE_MAX);
	answer_buf = frontend_map((size_t)PUB_PIPELINE * PUB_ANSWER_MAX);
	return body_buf && topic_buf && batch_buf && answer_buf;
}

bool publish_handle(struct conn *c, const struct http_request *req, bool keep_alive)
{
	const struct http_header *te = http_find_header(req, "Transfer-Encoding");
	const struct http_header *expect = http_find_header(req, "Expect");
	uint64_t deadline, clen = 0;
	const char *msg_id = NULL;
	size_t body_len, msg_id_len = 0;
	long tlen;
	int has_cl, err;

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
		conn_fail(c, 400,
			  "invalid topic: no '*' segment, control character or bad %-escape");

	switch (message_id(req, &msg_id, &msg_id_len)) {
	case -1:
		conn_fail(c, 400,
			  "invalid X-Message-Id: 1 to 128 visible ASCII characters (0x21-0x7E)");
	case -2:
		conn_fail(c, 400, "several differing X-Message-Id headers");
	default:
		break;
	}

	if (expect && expect->value_len == 12 &&
	    strncasecmp(expect->value, "100-continue", 12) == 0) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		/* the answers to earlier requests go first (PROTOCOL 1.3) */
		if (c->in_len == 0 &&
		    (!publish_flush(c) || conn_send(c, cont, sizeof(cont) - 1) < 0))
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

	/* a full batch leaves first; a body in the memfd goes alone, which is rare and keeps one
	 * memfd enough */
	if (npending &&
	    (npending == PUB_PIPELINE || batch_len > PUB_BATCH_BYTES ||
	     body_len > PROTO_INLINE_MAX) &&
	    !publish_flush(c))
		return false;
	err = queue_publish(c, msg_id, msg_id_len, (size_t)tlen, body_len, keep_alive);
	if (err < 0) {
		log_warning("%s: unable to pass a body to the broker: %s", c->peer, strerror(-err));
		conn_fail(c, 503, "the message could not be stored; try again");
	}
	/* The answer leaves with the batch: when the client has sent nothing more (conn_fill), or
	 * now if nothing may follow. */
	if (!keep_alive || body_len > PROTO_INLINE_MAX)
		return publish_flush(c) && keep_alive;
	return true;
}
