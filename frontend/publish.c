/* SPDX-License-Identifier: MIT */
/*
 * POST and PUT (PROTOCOL 4): read the body under its framing and limits as its bytes arrive,
 * hand it to the broker (common/proto.h), and answer only with what the broker says.
 *
 * Pipelined publishes (PROTOCOL 1.3) go to the broker together: the requests already read from
 * the client are handed over in one sendmmsg() and answered in one write, so a publisher that
 * pipelines costs one round trip to the broker, one wake-up of the readers and one write per
 * batch instead of per message. Nothing waits for more requests to come: the batch leaves as
 * soon as the client's bytes at hand hold no further complete request. While the broker works,
 * the connection reads nothing more; every other connection of the process goes on.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/proto.h"
#include "frontend/frontend.h"
#include "shm/topic.h"

/*
 * At most PUB_PIPELINE requests in a batch, below the broker's REQUEST_BATCH so that one round
 * of its loop takes them all, and PUB_BATCH_BYTES of datagrams, well within a local socket's
 * send buffer (208 KiB), so handing them over never waits for the broker to read.
 */
#define PUB_PIPELINE	32u
#define PUB_BATCH_BYTES ((size_t)128 * 1024u)
#define PUB_ANSWER_MAX	512u  /* one 200 answer: fixed lines, a timestamp and a cursor */
#define BODY_MIN	4096u /* first size of a body buffer: it grows to the body limit */

enum body_framing { BODY_LENGTH, BODY_CHUNKED, BODY_LINE };

/* A publish handed to (or about to be handed to) the broker, waiting for its answer. */
struct pending {
	size_t off, len; /* its datagram in batch */
	bool keep_alive; /* its answer leaves the connection open */
	bool in_memfd;	 /* its body is in memfd (larger than PROTO_INLINE_MAX) */
};

struct pub {
	struct conn *c;

	/* The request whose body is being read (or waits, complete, for a batch: ready). */
	enum body_framing framing;
	uint64_t want; /* BODY_LENGTH: body bytes still to come */
	struct http_chunked dec;
	char *body;
	size_t body_len, body_cap;
	uint8_t *topic; /* its stored topic */
	size_t topic_len, topic_cap;
	char id[PROTO_MAX_ID]; /* its X-Message-Id */
	size_t id_len;
	bool keep_alive;
	bool ready; /* complete, waiting for the batch in flight to be answered */

	/* The batch. */
	struct pending pending[PUB_PIPELINE];
	size_t npending; /* queued */
	size_t nsent;	 /* handed to the broker (CONN_BROKER) */
	size_t got;	 /* replies received */
	uint8_t *batch;
	size_t batch_len;
	struct proto_resp replies[PUB_PIPELINE];
	int broker_fd;
	struct loop_io broker_io;
	int memfd;
	int err;	  /* why no request of the batch reached the broker */
	uint64_t batches; /* batches answered so far (batch_done) */
};

static int broker_connect(const struct conn *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = c->fe->cfg.socket_path;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;
		(void)close(fd);
		return err;
	}
	return fd;
}

static void broker_close(struct pub *p)
{
	if (p->broker_fd < 0)
		return;
	loop_del(&p->c->fe->loop, &p->broker_io);
	(void)close(p->broker_fd);
	p->broker_fd = -1;
}

void publish_free(struct conn *c)
{
	struct pub *p = c->pub;

	if (!p)
		return;
	broker_close(p);
	if (p->memfd >= 0)
		(void)close(p->memfd);
	free(p->body);
	free(p->topic);
	free(p->batch);
	free(p);
	c->pub = NULL;
}

bool publish_pending(const struct conn *c)
{
	return c->pub && c->pub->npending > 0 && c->state != CONN_BROKER;
}

static void batch_done(struct conn *c, int err);

static void broker_io(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct pub *p = container_of(io, struct pub, broker_io);
	struct mmsghdr msgs[PUB_PIPELINE];
	struct iovec iov[PUB_PIPELINE];
	size_t want = p->nsent - p->got;
	int r;

	(void)l;
	(void)events;
	if (p->c->state != CONN_BROKER || want == 0) {
		/* nothing asked: the broker closed, or spoke out of turn */
		broker_close(p);
		return;
	}
	memset(msgs, 0, sizeof(msgs));
	for (size_t i = 0; i < want; i++) {
		iov[i].iov_base = &p->replies[p->got + i];
		iov[i].iov_len = sizeof(p->replies[0]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	do
		r = recvmmsg(p->broker_fd, msgs, (unsigned)want, MSG_DONTWAIT, NULL);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return;
	if (r < 0) {
		batch_done(p->c, -errno);
		return;
	}
	for (int i = 0; i < r; i++) {
		struct proto_resp *resp = &p->replies[p->got];

		if (msgs[i].msg_len == 0) {
			batch_done(p->c, -ECONNRESET); /* the broker went away */
			return;
		}
		if (msgs[i].msg_len != sizeof(*resp) || resp->magic != PROTO_MAGIC) {
			batch_done(p->c, -EPROTO);
			return;
		}
		resp->reason[sizeof(resp->reason) - 1] = '\0';
		p->got++;
	}
	if (p->got == p->nsent)
		batch_done(p->c, p->nsent < p->npending ? -EPIPE : 0);
}

/*
 * Hand the queued requests to the broker, in order; a request with its body in the memfd carries
 * the fd. A batch that could not even start (the broker restarted since our last publish) is
 * sent once more on a new connection; requests that were sent are not, as they may be stored
 * already. Returns how many were sent, with *ret_err set when not all.
 */
static size_t send_batch(struct pub *p, int *ret_err)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct mmsghdr msgs[PUB_PIPELINE];
	struct iovec iov[PUB_PIPELINE];
	/* not CMSG_FIRSTHDR, which the compiler cannot prove non-NULL */
	struct cmsghdr *cm = &ctl.align;
	size_t n = p->npending, sent = 0;
	bool retried = false;

	memset(&ctl, 0, sizeof(ctl));
	memset(msgs, 0, sizeof(msgs));
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p->memfd, sizeof(int));
	for (size_t i = 0; i < n; i++) {
		iov[i].iov_base = p->batch + p->pending[i].off;
		iov[i].iov_len = p->pending[i].len;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		if (p->pending[i].in_memfd) {
			msgs[i].msg_hdr.msg_control = ctl.buf;
			msgs[i].msg_hdr.msg_controllen = sizeof(ctl.buf);
		}
	}
	while (sent < n) {
		int r;

		if (p->broker_fd < 0) {
			int fd = broker_connect(p->c);

			if (fd < 0) {
				*ret_err = fd;
				return sent;
			}
			p->broker_fd = fd;
			if (loop_add(&p->c->fe->loop, &p->broker_io, fd, EPOLLIN, broker_io) < 0) {
				*ret_err = -errno;
				(void)close(fd);
				p->broker_fd = -1;
				return sent;
			}
		}
		r = sendmmsg(p->broker_fd, msgs + sent, (unsigned)(n - sent), MSG_NOSIGNAL);
		if (r > 0) {
			sent += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		*ret_err = r < 0 ? -errno : -EIO;
		broker_close(p);
		if (sent > 0 || retried)
			return sent;
		retried = true;
	}
	return sent;
}

static void queue_ready(struct conn *c);

/* The broker answered the batch (err 0), or could not (err < 0: the requests it did not answer
 * get 503). Answer the client, then go on with what waits. */
static void batch_done(struct conn *c, int err)
{
	struct pub *p = c->pub;
	char answers[PUB_PIPELINE * PUB_ANSWER_MAX];
	size_t n = p->npending, got = p->got, i, len = 0;
	bool keep_alive = true;

	timer_disarm(&c->timer);
	p->batches++;
	if (err < 0 && err != -EPIPE)
		broker_close(p); /* its replies are out of step now */
	p->npending = p->nsent = p->got = 0;
	p->batch_len = 0;
	conn_enter(c, CONN_HEAD);
	for (i = 0; i < got && p->replies[i].status == 200; i++) {
		const struct proto_resp *r = &p->replies[i];

		keep_alive = p->pending[i].keep_alive;
		len += response_published(answers + len, PUB_ANSWER_MAX, r->time_us, r->generation,
					  r->seq, keep_alive);
	}
	if (len && !conn_send(c, answers, len))
		return;
	if (i < got || got < n) {
		/* a refusal, or an unreachable broker: the client's pipeline ends here */
		c->fail_status = 0;
		if (i < got) {
			conn_fail(c, (int)p->replies[i].status, p->replies[i].reason);
			return;
		}
		log_warning("%s: unable to reach the broker at '%s': %s", c->peer,
			    c->fe->cfg.socket_path, strerror(err < 0 ? -err : EIO));
		conn_fail(c, 503,
			  err == -EMFILE || err == -ENFILE
				  ? "the server is out of file descriptors; try again"
				  : "the message could not be stored; try again");
		return;
	}
	if (conn_failure_due(c))
		return;
	if (!keep_alive) {
		conn_finish(c);
		return;
	}
	if (p->ready)
		queue_ready(c);
	request_process(c);
}

static void broker_timeout(struct loop *l, struct timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);
	const uint64_t batch = c->pub->batches;

	/* answers already in the socket count (the loop may not have read them yet in a long
	 * round): what the broker stored before the deadline gets its 200, the rest a 503 that
	 * means "not stored", as the broker refuses them once past the deadline (common/proto.h) */
	if (c->pub->broker_fd >= 0)
		broker_io(l, &c->pub->broker_io, EPOLLIN);
	/* unless that answered the batch (and the connection went on, or was closed) */
	if (c->pub && c->pub->batches == batch)
		batch_done(c, -ETIMEDOUT);
}

static void broker_unreachable(struct loop *l, struct timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	(void)l;
	batch_done(c, c->pub->err);
}

/* Each queued request is refused by the broker after deadline_us (common/proto.h), before our
 * own wait (TIMER_BROKER, armed after this) ends. */
static void set_deadline(struct pub *p, uint64_t deadline_us)
{
	for (size_t i = 0; i < p->npending; i++)
		memcpy(p->batch + p->pending[i].off + offsetof(struct proto_req, deadline_us),
		       &deadline_us, sizeof(deadline_us));
}

void publish_flush(struct conn *c)
{
	struct pub *p = c->pub;
	int err = 0;

	if (!p || p->npending == 0 || c->state == CONN_BROKER)
		return;
	timer_disarm(&c->timer);
	conn_enter(c, CONN_BROKER);
	if (c->state != CONN_BROKER)
		return; /* it could not be watched: closed */
	p->got = 0;
	set_deadline(p, io_now_mono_us() + c->fe->loop.fifo[TIMER_BROKER].period_us -
				PROTO_DEADLINE_SLACK_US);
	p->nsent = send_batch(p, &err);
	if (p->nsent == 0) {
		/* answered as soon as the loop is done with this round: never from here, which
		 * the answer's own path may have called */
		p->err = err;
		timer_arm(&c->fe->loop, &c->timer, TIMER_SOON, broker_unreachable);
		return;
	}
	if (p->nsent < p->npending)
		log_warning("%s: the broker took %zu of %zu publishes: %s", c->peer, p->nsent,
			    p->npending, strerror(-err));
	timer_arm(&c->fe->loop, &c->timer, TIMER_BROKER, broker_timeout);
}

void publish_timeout(struct conn *c)
{
	conn_fail(c, 408, "request body not complete in time");
}

static void body_timeout(struct loop *l, struct timer *t)
{
	(void)l;
	publish_timeout(container_of(t, struct conn, timer));
}

/*
 * Queue the complete body p->body[0..body_len) for the broker; a body over PROTO_INLINE_MAX goes
 * into the memfd. On failure the connection is answered 503.
 */
static void queue_ready(struct conn *c)
{
	struct pub *p = c->pub;
	const bool in_memfd = p->body_len > PROTO_INLINE_MAX;
	struct proto_req req = { .magic = PROTO_MAGIC,
				 .topic_len = (uint32_t)p->topic_len,
				 .body_len = p->body_len,
				 .id_len = (uint32_t)p->id_len,
				 .flags = p->npending ? PROTO_REQ_CHAINED : 0 };
	struct pending *q = &p->pending[p->npending];
	uint8_t *d = p->batch + p->batch_len;

	p->ready = false;
	if (in_memfd) {
		int err = 0;

		if (p->memfd < 0) {
			p->memfd = memfd_create("gitpubsub-body", MFD_CLOEXEC);
			if (p->memfd < 0)
				err = -errno;
		}
		/* The broker reads body_len bytes from offset 0 (pread), so bytes of an earlier,
		 * longer body beyond them do no harm: no ftruncate, which would free the pages for
		 * the next write to allocate and zero again. */
		if (!err && lseek(p->memfd, 0, SEEK_SET) < 0)
			err = -errno;
		if (!err)
			err = io_write_full(p->memfd, p->body, p->body_len);
		if (err < 0) {
			log_warning("%s: unable to pass a body to the broker: %s", c->peer,
				    strerror(-err));
			conn_fail(c, 503, "the message could not be stored; try again");
			return;
		}
	}
	/* an empty id, topic ("/") or body may have no buffer: copy only what there is */
	memcpy(d, &req, sizeof(req));
	if (p->id_len)
		memcpy(d + sizeof(req), p->id, p->id_len);
	if (p->topic_len)
		memcpy(d + sizeof(req) + p->id_len, p->topic, p->topic_len);
	if (!in_memfd && p->body_len)
		memcpy(d + sizeof(req) + p->id_len + p->topic_len, p->body, p->body_len);
	q->off = p->batch_len;
	q->len = sizeof(req) + p->id_len + p->topic_len + (in_memfd ? 0 : p->body_len);
	q->keep_alive = p->keep_alive;
	q->in_memfd = in_memfd;
	p->batch_len += q->len;
	p->npending++;
	/* nothing may follow it, or its body is in the memfd (which goes alone): it leaves now;
	 * otherwise with the batch, when the client's bytes at hand hold no further request */
	if (!p->keep_alive || in_memfd)
		publish_flush(c);
}

/* The body is complete: queue it, or let the batch in the way go first. */
static void body_complete(struct conn *c)
{
	struct pub *p = c->pub;

	timer_disarm(&c->timer);
	conn_enter(c, CONN_HEAD);
	p->ready = true;
	/* a full batch leaves first; a body in the memfd goes alone, which is rare and keeps one
	 * memfd enough */
	if (p->npending && (p->npending == PUB_PIPELINE || p->batch_len > PUB_BATCH_BYTES ||
			    p->body_len > PROTO_INLINE_MAX)) {
		publish_flush(c);
		return;
	}
	queue_ready(c);
}

/* Make room for n more body bytes; false (answered 413 or 500) when it cannot. */
static bool body_room(struct conn *c, size_t n)
{
	struct pub *p = c->pub;
	size_t need = p->body_len + n, cap;
	char *nb;

	if (need > c->fe->cfg.max_body) {
		conn_fail(c, 413, "body larger than the limit");
		return false;
	}
	if (need <= p->body_cap)
		return true;
	cap = MIN(MAX(MAX((size_t)BODY_MIN, p->body_cap * 2), need), (size_t)c->fe->cfg.max_body);
	nb = realloc(p->body, cap);
	if (!nb) {
		conn_fail(c, 500, "out of memory");
		return false;
	}
	p->body = nb;
	p->body_cap = cap;
	return true;
}

static void body_append(struct conn *c, const char *src, size_t n)
{
	if (n == 0)
		return; /* the body (and the input) may have no buffer yet */
	memcpy(c->pub->body + c->pub->body_len, src, n);
	c->pub->body_len += n;
}

void publish_body(struct conn *c)
{
	struct pub *p = c->pub;

	switch (p->framing) {
	case BODY_LENGTH: {
		size_t take = (size_t)MIN(p->want, (uint64_t)c->in_len);

		if (!body_room(c, take))
			return;
		body_append(c, c->in, take);
		conn_consume(c, take);
		p->want -= take;
		if (p->want == 0)
			body_complete(c);
		else if (c->read_closed)
			conn_fail(c, 400, "connection closed before the end of the body");
		return;
	}
	case BODY_CHUNKED: {
		size_t len = c->in_len;
		ssize_t r = len ? http_chunked_decode(&p->dec, c->in, &len) : -2;

		if (r == -1) {
			conn_fail(c, 400, "malformed chunked body");
			return;
		}
		/* A chunk size over the limit crosses it as soon as its digits arrive (PROTOCOL
		 * 4.4): waiting for its data would hold the connection until the body timeout. */
		if (p->dec.total + p->dec.remaining > c->fe->cfg.max_body) {
			conn_fail(c, 413, "body larger than the limit");
			return;
		}
		if (!body_room(c, len))
			return;
		body_append(c, c->in, len);
		if (r >= 0) {
			/* the r bytes after the body belong to the next request */
			memmove(c->in, c->in + len, (size_t)r);
			c->in_len = (size_t)r;
			body_complete(c);
			return;
		}
		c->in_len = 0;
		if (c->read_closed)
			conn_fail(c, 400, "connection closed before the end of the body");
		return;
	}
	case BODY_LINE: {
		/* No framing at all (PROTOCOL 4.2, compat): one line, ending at LF or when the
		 * client half-closes. */
		const char *lf = c->in_len ? memchr(c->in, '\n', c->in_len) : NULL;
		size_t take = lf ? (size_t)(lf - c->in) + 1 : c->in_len;

		if (!body_room(c, take))
			return;
		body_append(c, c->in, take);
		conn_consume(c, take);
		if (lf || c->read_closed)
			body_complete(c);
		return;
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
 * X-Message-Id headers (README 4.7, "Publishing exactly once"): none (0), one or several equal
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

/* The publish state of c, made at its first publish; NULL when out of memory. */
static struct pub *pub_get(struct conn *c)
{
	struct pub *p = c->pub;

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	/* a batch below PUB_BATCH_BYTES always has room for one more maximal datagram */
	if (p)
		p->batch = malloc(PUB_BATCH_BYTES + sizeof(struct proto_req) + PROTO_MAX_ID +
				  c->in_max + PROTO_INLINE_MAX);
	if (!p || !p->batch) {
		free(p);
		return NULL;
	}
	p->c = c;
	p->broker_fd = -1;
	p->broker_io.fd = -1;
	p->memfd = -1;
	c->pub = p;
	return p;
}

/* The stored topic of the request into p->topic; false when answered 400 or 500. */
static bool parse_topic(struct conn *c, struct pub *p, const struct http_request *req)
{
	long tlen;

	if (req->target_len > p->topic_cap) {
		uint8_t *nt = realloc(p->topic, req->target_len);

		if (!nt) {
			conn_fail(c, 500, "out of memory");
			return false;
		}
		p->topic = nt;
		p->topic_cap = req->target_len;
	}
	tlen = topic_publish_parse(req->target, req->target_len, p->topic, p->topic_cap);
	if (tlen < 0) {
		conn_fail(c, 400,
			  "invalid topic: no '*' segment, control character or bad %-escape");
		return false;
	}
	p->topic_len = (size_t)tlen;
	return true;
}

void publish_begin(struct conn *c, const struct http_request *req, size_t hlen)
{
	const struct http_header *te = http_find_header(req, "Transfer-Encoding");
	const struct http_header *expect = http_find_header(req, "Expect");
	uint64_t clen = 0;
	const char *msg_id = NULL, *why;
	size_t msg_id_len = 0;
	struct pub *p;
	int has_cl, status;

	/* PROTOCOL 4.1: untrusted peers (and unknown tokens, and tokens for other topics) are
	 * refused before a byte of body is read */
	status = request_trust(c, req, &why);
	if (status) {
		conn_fail(c, status, why);
		return;
	}
	p = pub_get(c);
	if (!p) {
		conn_fail(c, 500, "out of memory");
		return;
	}
	has_cl = content_length(req, &clen);
	if (has_cl < 0) {
		conn_fail(c, 400, "invalid or conflicting Content-Length");
		return;
	}
	if (te && has_cl) {
		conn_fail(c, 400, "both Content-Length and Transfer-Encoding");
		return;
	}
	/* RFC 9112 6.1: HTTP/1.0 has no transfer codings; a message that names one has faulty
	 * framing, answered and closed */
	if (te && req->minor_version == 0) {
		conn_fail(c, 400, "Transfer-Encoding in an HTTP/1.0 request");
		return;
	}
	/* Several Transfer-Encoding lines make one list (RFC 9110 5.3): "chunked" then "gzip" is
	 * "chunked, gzip", not chunked, however the first line reads. */
	if (te && (header_count(req, "Transfer-Encoding") > 1 ||
		   !(te->value_len == 7 && strncasecmp(te->value, "chunked", 7) == 0))) {
		conn_fail(c, 501, "only the chunked transfer coding is supported");
		return;
	}
	if (has_cl && clen > c->fe->cfg.max_body) {
		conn_fail(c, 413, "body larger than the limit");
		return;
	}
	if (!parse_topic(c, p, req))
		return;
	switch (message_id(req, &msg_id, &msg_id_len)) {
	case -1:
		conn_fail(c, 400,
			  "invalid X-Message-Id: 1 to 128 visible ASCII characters (0x21-0x7E)");
		return;
	case -2:
		conn_fail(c, 400, "several differing X-Message-Id headers");
		return;
	default:
		break;
	}
	if (msg_id_len)
		memcpy(p->id, msg_id, msg_id_len);
	p->id_len = msg_id_len;
	p->keep_alive = c->keep_alive;
	p->body_len = 0;
	if (has_cl) {
		p->framing = BODY_LENGTH;
		p->want = clen;
	} else if (te) {
		p->framing = BODY_CHUNKED;
		http_chunked_init(&p->dec);
	} else {
		p->framing = BODY_LINE;
		p->keep_alive = false; /* the original's hook half-closes: nothing can follow */
	}
	/* The client waits for this before it sends the body; not when publishes before it wait
	 * for their answers (PROTOCOL 1.3 keeps answers in order), when it sends the body after
	 * its own wait (RFC 9110 10.1.1 allows a server to skip 100), and never to HTTP/1.0,
	 * which has no 1xx answers (RFC 9110 15.2). */
	if (expect && req->minor_version >= 1 && expect->value_len == 12 &&
	    strncasecmp(expect->value, "100-continue", 12) == 0 && c->in_len == hlen &&
	    !publish_pending(c)) {
		char cont[64];

		if (!conn_send(c, cont, response_continue(cont, sizeof(cont))))
			return;
	}
	conn_enter(c, CONN_BODY);
	timer_arm(&c->fe->loop, &c->timer, TIMER_BODY, body_timeout);
}
