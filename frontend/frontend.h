/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_FRONTEND_H
#define GPS_FRONTEND_FRONTEND_H

/*
 * One gitpubsub-frontend process serves one client connection: main.c reads requests and
 * answers HEAD and errors, publish.c takes POST/PUT bodies to the broker, stream.c turns the
 * ring into a subscriber's stream. Everything here is per process, so there is no locking.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/config.h"
#include "common/macro.h"
#include "common/trust.h"
#include "frontend/http.h"
#include "shm/ring.h"

#define SERVER_NAME "GitPubSub/1.0.0"

struct conn {
	int fd; /* the client's socket: fd 3 (systemd Accept=yes) or fd 0 (inetd) */
	struct config cfg;
	const char *ring_name;
	bool trusted;
	char peer[INET6_ADDRSTRLEN + 8]; /* for logs: "addr port" */

	char *in;   /* request bytes not yet consumed */
	char *head; /* the current request's head (in_cap bytes): the request points here */
	size_t in_len, in_cap;
	struct ring_stats *stats; /* NULL if the broker never ran: counting is best effort */

	int broker_fd; /* connection to the broker, opened on the first publish */
	int memfd;     /* carries bodies to the broker; reused */
	uint64_t requests;
};

/* Send all of buf to the client, counting it; 0 or -errno (-EAGAIN: send timeout). */
_must_check_ int conn_send(struct conn *c, const void *buf, size_t len);

/* Answer with an error (PROTOCOL 7.1), linger briefly so the client reads it, and exit. */
_noreturn_ void conn_fail(struct conn *c, int status, const char *reason);

/* Read more request bytes into c->in before the monotonic deadline (us). >0 bytes read,
 * 0 at end of input, -ETIMEDOUT at the deadline, -ENOBUFS when c->in is full, or -errno. */
_must_check_ ssize_t conn_fill(struct conn *c, uint64_t deadline_us);

/* Drop the first n bytes of c->in. */
void conn_consume(struct conn *c, size_t n);

/*
 * Buffers sized for the worst case (a maximal request head, body or topic) come from here:
 * anonymous pages cost nothing until touched, where malloc would carve them from an arena it
 * dirties. At thousands of one-connection processes every page counts (issue 5).
 * frontend_map: len bytes of zeroed pages, or NULL. frontend_release: give the touched pages
 * of a frontend_map() buffer back to the kernel; the buffer stays usable and reads as zeros.
 */
void *frontend_map(size_t len);
void frontend_release(void *buf, size_t len);

/* POST/PUT (PROTOCOL 4). Returns whether the connection may carry another request. The answer
 * may wait in a batch (publish.c): see publish_flush(). */
bool publish_handle(struct conn *c, const struct http_request *req, bool keep_alive);

/* Whether publishes are waiting for their answers. */
bool publish_pending(void);

/*
 * Hand the waiting publishes to the broker and answer them, in order, in one write: before
 * anything else goes to the client or the frontend waits for it. A refusal or an unreachable
 * broker ends the connection with its error (conn_fail) after the answers before it. Returns
 * false if the client left.
 */
bool publish_flush(struct conn *c);

/* GET (PROTOCOL 3; cursors, SSE and CORS: README 3.9, 3.10, 3.12). Never returns: the stream
 * ends with the process. */
_noreturn_ void stream_handle(struct conn *c, const struct http_request *req);

/* GET preferring text/html (README 3.11): the live page. Returns whether the connection may
 * carry another request (the browser opens its EventSource on it). */
bool stream_page_handle(struct conn *c, const struct http_request *req, bool keep_alive);

/* Reason phrase of a status code. */
const char *http_status_text(int status);

#endif
