/* SPDX-License-Identifier: MIT */
/*
 * The transport under the protocol handlers: a connection's buffers, its reads and writes, its
 * deadline, and how it ends. Nothing here knows HTTP beyond the error answer of PROTOCOL 7.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/frontend.h"

#define LINGER_BYTES \
	(1u << 20)	   /* after an error: how much of what the client still sends we read */
#define HEAD_SLACK   1024u /* request-line bytes besides the target */
#define OUT_MIN	     512u  /* first size of an output buffer: most answers fit */
#define ERROR_MAX    512u  /* an error answer: fixed lines and a one-line reason */
#define LINGER_CHUNK 4096u /* what one read of a lingering connection takes */

static void describe_peer(struct conn *c)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC }; /* in case len comes back short */
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	(void)snprintf(c->peer, sizeof(c->peer), "?");
	if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
		(void)inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
		(void)inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	}
	(void)snprintf(c->peer, sizeof(c->peer), "%s %u", addr, port);
	c->trusted = c->fe->trust && trust_check(c->fe->trust, (const struct sockaddr *)&ss, len);
}

struct conn *conn_new(struct frontend *fe, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		(void)close(fd);
		return NULL;
	}
	c->fe = fe;
	c->fd = fd;
	c->io.fd = -1;
	c->state = CONN_HEAD;
	c->in_max = (size_t)fe->cfg.max_target + fe->cfg.max_header + HEAD_SLACK;
	if (fd >= 0) {
		(void)!io_set_nonblock(fd, true);
		/* Every write is a whole answer or a whole batch of messages: Nagle could only
		 * hold one back until the client's ACK. Fails harmlessly on a unix socket. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	describe_peer(c);
	c->next = fe->conns;
	if (fe->conns)
		fe->conns->prev = c;
	fe->conns = c;
	fe->nconns++;
	fe->nuntrusted += !c->trusted;
	ring_stats_add(fe->stats, fe->stats ? &fe->stats->connections : NULL, 1);
	log_debug("%s: connected%s", c->peer, c->trusted ? " (trusted)" : "");
	return c;
}

void conn_count_received(const struct conn *c, size_t n)
{
	ring_stats_add(c->fe->stats, c->fe->stats ? &c->fe->stats->received : NULL, n);
}

void conn_count_sent(const struct conn *c, size_t n)
{
	ring_stats_add(c->fe->stats, c->fe->stats ? &c->fe->stats->sent : NULL, n);
}

void conn_consume(struct conn *c, size_t n)
{
	if (n >= c->in_len) {
		c->in_len = 0;
		return;
	}
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/* What the connection watches: its state's events, and EPOLLOUT while answers wait. */
static void conn_watch(struct conn *c)
{
	uint32_t ev = EPOLLRDHUP;

	if (c->state != CONN_BROKER)
		ev |= EPOLLIN;
	if (c->out_len)
		ev |= EPOLLOUT;
	if (c->state != CONN_STREAM && loop_mod(&c->fe->loop, &c->io, ev) < 0)
		conn_close(c, "unable to watch the connection");
}

void conn_enter(struct conn *c, enum conn_state st)
{
	c->state = st;
	conn_watch(c);
}

bool conn_send(struct conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	if (c->state == CONN_CLOSED)
		return false;
	while (c->out_len == 0 && len > 0 && c->fd >= 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0) {
			conn_close(c, "the client left");
			return false;
		}
		conn_count_sent(c, (size_t)n);
		p += n;
		len -= (size_t)n;
	}
	if (len == 0)
		return true;
	if (c->out_off + c->out_len + len > c->out_cap) {
		if (c->out_off) {
			memmove(c->out, c->out + c->out_off, c->out_len);
			c->out_off = 0;
		}
		if (c->out_len + len > c->out_cap) {
			size_t cap = MAX(MAX((size_t)OUT_MIN, c->out_cap * 2), c->out_len + len);
			char *nb = realloc(c->out, cap);

			if (!nb) {
				conn_close(c, "out of memory for an answer");
				return false;
			}
			c->out = nb;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_off + c->out_len, p, len);
	c->out_len += len;
	conn_watch(c);
	return c->state != CONN_CLOSED;
}

/* EPOLLOUT: write what waits; true once nothing does. */
static bool conn_flush(struct conn *c)
{
	while (c->out_len > 0) {
		ssize_t n =
			send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return false;
		if (n < 0) {
			conn_close(c, "the client left");
			return false;
		}
		conn_count_sent(c, (size_t)n);
		c->out_off += (size_t)n;
		c->out_len -= (size_t)n;
	}
	c->out_off = 0;
	return true;
}

static void linger_timeout(struct loop *l, struct timer *t)
{
	(void)l;
	conn_close(container_of(t, struct conn, timer), "linger time over");
}

/* After an error answer: once it is out, read and drop what the client still sends for a while,
 * so closing does not reset the connection under the answer (a reset can destroy unread data at
 * the client). */
static void linger_io(struct conn *c, uint32_t events)
{
	char buf[LINGER_CHUNK];

	if ((events & EPOLLOUT) && conn_flush(c) && c->fd >= 0) {
		(void)shutdown(c->fd, SHUT_WR);
		conn_watch(c);
	}
	if (c->state == CONN_CLOSED || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			conn_close(c, "closed after an error");
			return;
		}
		c->linger_bytes += (size_t)n;
		if (c->linger_bytes >= LINGER_BYTES) {
			conn_close(c, "lingered long enough");
			return;
		}
	}
}

void conn_finish(struct conn *c)
{
	if (c->state == CONN_CLOSED || c->state == CONN_LINGER)
		return;
	c->state = CONN_LINGER;
	timer_arm(&c->fe->loop, &c->timer, TIMER_LINGER, linger_timeout);
	if (!c->out_len && c->fd >= 0)
		(void)shutdown(c->fd, SHUT_WR);
	conn_watch(c);
}

/* The error answer, now: the answers before it are out or queued. */
static void conn_answer_failure(struct conn *c)
{
	char buf[ERROR_MAX];
	size_t n = response_error(buf, sizeof(buf), c->fail_status, c->fail_reason);

	log_info("%s: %d %s", c->peer, c->fail_status, c->fail_reason);
	if (conn_send(c, buf, n))
		conn_finish(c);
}

void conn_fail(struct conn *c, int status, const char *reason)
{
	if (c->state == CONN_CLOSED || c->state == CONN_LINGER || c->fail_status)
		return;
	c->fail_status = status;
	(void)snprintf(c->fail_reason, sizeof(c->fail_reason), "%s", reason);
	if (publish_pending(c)) {
		publish_flush(c); /* the answers to earlier requests go first (PROTOCOL 1.3) */
		return;
	}
	if (c->state != CONN_BROKER)
		conn_answer_failure(c);
}

bool conn_failure_due(struct conn *c)
{
	if (!c->fail_status || c->state == CONN_LINGER || c->state == CONN_CLOSED)
		return false;
	conn_answer_failure(c);
	return true;
}

/* Events of a connection in any state but CONN_STREAM's (stream.c has its own). */
static void conn_io(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct conn *c = container_of(io, struct conn, io);

	(void)l;
	if (c->state == CONN_STREAM) {
		stream_io(c, events);
		return;
	}
	if (c->state == CONN_LINGER) {
		linger_io(c, events);
		return;
	}
	if ((events & EPOLLOUT) && !conn_flush(c))
		return;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		if (c->state == CONN_BROKER && (events & (EPOLLHUP | EPOLLERR))) {
			conn_close(c, "the client left while its publishes were stored");
			return;
		}
		if (c->state != CONN_BROKER && !c->read_closed) {
			for (;;) {
				ssize_t n;

				if (c->in_len == c->in_cap) {
					size_t cap = c->in_cap ? c->in_cap * 2 : 4096u;
					char *nb;

					if (c->in_cap >= c->in_max)
						break; /* full: request_process says 431 */
					cap = MIN(cap, c->in_max);
					nb = realloc(c->in, cap);
					if (!nb) {
						conn_close(c, "out of memory for a request");
						return;
					}
					c->in = nb;
					c->in_cap = cap;
				}
				n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
					 MSG_DONTWAIT);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0 && errno == EAGAIN)
					break;
				if (n < 0) {
					/* a reset is no orderly end of a body (PROTOCOL 4.2) */
					conn_close(c, "the connection failed");
					return;
				}
				if (n == 0) {
					c->read_closed = true;
					break;
				}
				conn_count_received(c, (size_t)n);
				c->in_len += (size_t)n;
			}
		}
	}
	request_process(c);
}

bool conn_watch_start(struct conn *c)
{
	if (c->fd < 0)
		return true;
	if (loop_add(&c->fe->loop, &c->io, c->fd, EPOLLIN | EPOLLRDHUP, conn_io) < 0) {
		conn_close(c, "unable to watch the connection");
		return false;
	}
	return true;
}

void conn_stream_watch(struct conn *c, bool want_out)
{
	if (loop_mod(&c->fe->loop, &c->io, EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0u)) < 0)
		conn_close(c, "unable to watch the connection");
}

void conn_close(struct conn *c, const char *why)
{
	struct frontend *fe = c->fe;

	if (c->state == CONN_CLOSED)
		return;
	log_debug("%s: closed: %s", c->peer, why);
	timer_disarm(&c->timer);
	if (c->sub)
		stream_free(c);
	if (c->pub)
		publish_free(c);
	loop_del(&fe->loop, &c->io);
	if (c->fd >= 0)
		(void)close(c->fd);
	c->fd = -1;
	c->state = CONN_CLOSED;
	/* from fe->conns to fe->dead: the loop may still hold an event for it this round */
	if (c->prev)
		c->prev->next = c->next;
	else
		fe->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = fe->dead;
	fe->dead = c;
	fe->nconns--;
	fe->nuntrusted -= !c->trusted;
}

void conn_reap(struct frontend *fe)
{
	while (fe->dead) {
		struct conn *c = fe->dead;

		fe->dead = c->next;
		/* a close does this; a timer armed on the way out of a callback must not outlive
		 * the connection either */
		timer_disarm(&c->timer);
		free(c->in);
		free(c->out);
		free(c);
	}
}
