/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_FRONTEND_H
#define GPS_FRONTEND_FRONTEND_H

/*
 * gitpubsub-frontend, in layers, each calling only the one below it:
 *
 *   main.c      how the process came to be: one connection (inetd, Accept=yes, a forked child)
 *               or a listening socket (per-connection children, or multiplexed workers)
 *   request.c   the request loop of PROTOCOL 1.2-1.3: parse, dispatch, HEAD
 *   publish.c   POST/PUT: bodies, batches to the broker, answers          (PROTOCOL 4)
 *   stream.c    GET: a subscriber's position, framing, keepalives, gaps   (PROTOCOL 3)
 *   fanout.c    the process's ring: one wake-up per ring advance, each message framed once
 *               and written to every subscriber it matches
 *   response.c  every response head, in one place
 *   conn.c      the transport: buffers, reads, writes, deadlines, closing
 *   loop.c      epoll and timers
 *
 * One process serves one connection or thousands through the same code; everything here is per
 * process, so nothing is locked (the ring waiter thread of fanout.c only writes an eventfd).
 */

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/macro.h"
#include "common/tokens.h"
#include "common/trust.h"
#include "frontend/http.h"
#include "frontend/loop.h"
#include "shm/ring.h"

#define SERVER_NAME "GitPubSub/" GPS_VERSION

/* How often a process looks (one stat) whether [Clients] tokensFile changed: a multiplexed
 * worker on a timer of its loop, a one-connection process when a request brings a token, the
 * per-connection listener before each fork. A change is in force within this. */
#define TOKENS_CHECK_US UINT64_C(1000000)

struct pub;
struct sub;
struct group;

enum conn_state {
	CONN_HEAD,   /* reading a request head */
	CONN_BODY,   /* reading a publish body */
	CONN_BROKER, /* publishes handed to the broker; the client waits for their answers */
	CONN_STREAM, /* a subscription stream (the rest of the connection) */
	CONN_LINGER, /* answered with an error; reading what the client still sends, then closing */
	CONN_CLOSED, /* closed; freed once the loop is done with this round */
};

struct conn {
	struct frontend *fe;
	struct conn *prev, *next; /* fe->conns, or fe->dead once closed */
	struct loop_io io;
	struct timer timer; /* the one deadline of the current state */
	int fd;		    /* the client's socket; -1: a test's connection without one */
	enum conn_state state;
	bool trusted;
	bool keep_alive;		 /* the current request leaves the connection open */
	bool read_closed;		 /* the client half-closed (end of input) */
	uint64_t requests;		 /* request heads read */
	char peer[INET6_ADDRSTRLEN + 8]; /* for logs: "addr port" */

	/* Input: request bytes not yet consumed. Grows on demand up to in_max: an everyday
	 * request needs one small buffer, a subscriber none once its stream has started. */
	char *in;
	size_t in_len, in_cap, in_max;
	/* Output: response bytes the client has not taken yet (streams write on their own). */
	char *out;
	size_t out_off, out_len, out_cap;

	/* An error to answer once the publishes before it are answered (PROTOCOL 1.3). */
	int fail_status;
	char fail_reason[128];
	size_t linger_bytes; /* CONN_LINGER: bytes dropped so far */

	struct pub *pub; /* publish state, from the first POST/PUT on */
	struct sub *sub; /* CONN_STREAM */
};

/* The process: its loop, its connections, its view of the ring. */
struct frontend {
	struct loop loop;
	struct config cfg;
	const char *ring_name;
	struct trust *trust;	   /* [Clients] trustedPeers, parsed once; NULL: trust nobody */
	struct tokens tokens;	   /* [Clients] tokensFile, read at start and when it changes */
	struct timer tokens_timer; /* a worker's look at the file (TIMER_TOKENS) */
	struct ring_stats *stats;
	bool stats_unslotted; /* streams counted without a slot of ours (said once) */
	struct conn *conns, *dead;
	size_t nconns, max_conns;
	/* Connections from peers not in trustedPeers, and how many of those may be open: the rest
	 * of max_conns, [Frontend] trustedReserve, is kept for trusted peers (main.c). */
	size_t nuntrusted, untrusted_max;
	/* Connections refused for want of room since refusals were last logged, and when. */
	uint64_t refused, refused_logged_us;
	bool full;     /* no room for untrusted peers: said once */
	bool single;   /* serves the one connection it was given, then exits */
	bool draining; /* SIGTERM: no new connections, streams end, publishes are answered */

	/* The listening socket (multiplexed workers). */
	int listen_fd;
	struct loop_io listen_io;
	struct timer accept_timer;  /* pause after EMFILE */
	struct timer balance_timer; /* look again while others hold fewer (main.c) */
	bool accepting;
	struct loop_io kick_io; /* a sibling's call to look again (main.c) */
	/* Multiplexed: every worker's connection count, shared with its siblings (main.c), and
	 * this worker's slot in it. */
	struct worker_load *loads;
	size_t nworkers, slot;

	/* The ring, shared by every stream of the process (fanout.c). */
	struct ring ring;	 /* hdr NULL while not attached */
	struct timer ring_timer; /* re-attach retry */
	uint64_t pos;		 /* head when the last fan-out round ended */
	struct group *groups;	 /* subscribers by topic */
	size_t nsubs;
	int wake_fd; /* eventfd the waiter thread writes; -1 without one */
	struct loop_io wake_io;
	pthread_t waiter;
	bool waiter_running;
	struct fanout_batch *batch; /* the messages of the current round, framed once */
	uint8_t *scratch;	    /* one stream's bytes on the way to its socket */
	size_t scratch_cap;
};

/* ---- conn.c: the transport ---- */

/* Take connection fd (connected, ours to close) into fe; NULL when out of memory (fd closed). */
struct conn *conn_new(struct frontend *fe, int fd);
/* Queue buf for the client and write what the socket takes now; false if the client is gone
 * (the connection is closed). */
bool conn_send(struct conn *c, const void *buf, size_t len);
/* Whether response bytes are waiting for the client to take them (never, without a socket:
 * a test's connection keeps all it sends). */
static inline bool conn_backlogged(const struct conn *c)
{
	return c->out_len > 0 && c->fd >= 0;
}
/* Answer with an error (PROTOCOL 7.1) once the publishes before it are answered, then linger
 * and close. The caller returns to the loop at once. */
void conn_fail(struct conn *c, int status, const char *reason);
/* The broker has answered every publish of c: answer the failure that waits, if one does
 * (true). */
bool conn_failure_due(struct conn *c);
/* Answer nothing more: once what waits is out, close (gently, as after an error). */
void conn_finish(struct conn *c);
/* Start watching c's socket in the loop; false if it could not be (closed). */
bool conn_watch_start(struct conn *c);
/* A stream's socket: watch for input and the client leaving, and EPOLLOUT when want_out. */
void conn_stream_watch(struct conn *c, bool want_out);
/* Enter state st, watching the socket as st needs. */
void conn_enter(struct conn *c, enum conn_state st);
/* Close the connection now (the client left, or the stream ended). */
void conn_close(struct conn *c, const char *why);
/* Drop the first n bytes of input. */
void conn_consume(struct conn *c, size_t n);
/* Count bytes for PROTOCOL 6. */
void conn_count_received(const struct conn *c, size_t n);
void conn_count_sent(const struct conn *c, size_t n);
/* Free the connections closed this round. */
void conn_reap(struct frontend *fe);

/* ---- listen.c: room for a connection, and the per-connection listener ---- */

/* The listener's pause when it is out of descriptors, memory or processes, before it tries
 * again (the clients wait in the backlog meanwhile); a worker's is TIMER_RETRY, twice this. */
#define LISTEN_PAUSE_MS 100

/* Set fe's bounds: max connections, of which [Frontend] trustedReserve (at most half) only for
 * trusted peers. */
void listen_bounds(struct frontend *fe, size_t max);
/* Whether fe has room for one more connection from a peer trusted or not. */
bool listen_room(const struct frontend *fe, bool trusted);
/* Whether the peer at ss (len bytes, from accept) is in trustedPeers. */
bool listen_trusted(const struct frontend *fe, const struct sockaddr_storage *ss, socklen_t len);
/* Answer connection fd (ours to close), which there is no room for, 503 with its one-line
 * reason, and close it at once: it costs no process, memory or deadline. Logged at most once
 * a second, with the count. */
void listen_refuse(struct frontend *fe, int fd, bool trusted);
/* A process started for connection fd by systemd (Accept=yes) or inetd: whether it may serve
 * it. An untrusted peer's is counted among the others in the statistics object's slots and
 * refused (answered 503, false) beyond maxConnections less trustedReserve. */
bool listen_alone(struct frontend *fe, int fd);
/* The per-connection listener on lfd: accept, and fork a process per connection. Returns only
 * in a child, its connection (the caller serves it), or -errno when lfd fails. */
int listen_fork(struct frontend *fe, int lfd);

/* ---- response.c: every response head ---- */

const char *http_status_text(int status);
/* Each writes one response (head, and body where it has one) into buf (cap bytes) and returns
 * its length, 0 if it did not fit. */
size_t response_error(char *buf, size_t cap, int status, const char *reason);
size_t response_published(char *buf, size_t cap, uint64_t time_us, uint64_t gen, uint64_t seq,
			  bool keep_alive);
size_t response_continue(char *buf, size_t cap);
struct response_stats {
	uint64_t uptime_s, subscribers, connections, received, sent, held, bytes, oldest_s;
	bool cluster;	      /* shm/ring.h section 8: cluster mode, X-Cluster-Lag is sent */
	uint64_t cluster_lag; /* messages of the stream not in this node's ring yet */
};
size_t response_head(char *buf, size_t cap, const struct response_stats *st, bool keep_alive);
size_t response_stream(char *buf, size_t cap, bool sse, bool chunked, const char *allow_origin);
size_t response_page(char *buf, size_t cap, size_t page_len, const char *allow_origin,
		     bool keep_alive);

/* ---- request.c: the request loop ---- */

/*
 * Whether req may publish to its target or see statistics: 0 (yes), 401 or 403, with the
 * one-line reason to answer in *ret_reason (static text: never the token, nor its prefixes).
 * With an Authorization line: 0 for a known bearer token whose prefixes cover the target,
 * whatever the address; 403 for a known token and a target outside them; 401 for any other
 * token, malformed, or several Authorization lines. Without one: 0 when c's peer is trusted
 * (PROTOCOL 5) and the request is no browser's for a page whose origin is not in [Clients]
 * publishOrigins (an Origin not listed, or Sec-Fetch-Site other than none or same-origin);
 * 403 otherwise.
 */
int request_trust(const struct conn *c, const struct http_request *req, const char **ret_reason);
/* Watch c in fe's loop and serve it; false if it could not be watched (closed). */
bool request_start(struct conn *c);
/* Parse and handle what c->in holds, as far as it goes (called after reads and answers). */
void request_process(struct conn *c);

/* ---- publish.c: POST and PUT (PROTOCOL 4) ---- */

/* Handle a publish's head, c->in[0..hlen); the body follows in CONN_BODY. */
void publish_begin(struct conn *c, const struct http_request *req, size_t hlen);
/* Feed c->in to the body being read; request_process goes on when it is complete. */
void publish_body(struct conn *c);
/* Whether publishes wait to be handed to the broker. */
bool publish_pending(const struct conn *c);
/* Hand the waiting publishes to the broker (c goes to CONN_BROKER); their answers, and a
 * pending conn_fail(), follow when the broker replies. */
void publish_flush(struct conn *c);
/* Body deadline (the timer of CONN_BODY) and broker deadline (CONN_BROKER). */
void publish_timeout(struct conn *c);
/* Release c's publish state (the connection is closing). */
void publish_free(struct conn *c);

/* ---- stream.c: GET (PROTOCOL 3; README 3.8-3.12) ---- */

/* Start c's stream for req: the rest of the connection. */
void stream_begin(struct conn *c, const struct http_request *req);
/* GET preferring text/html (README 3.11): the live page. */
void stream_page(struct conn *c, const struct http_request *req);
/* Events on a stream's socket. */
void stream_io(struct conn *c, uint32_t events);
/* Write what is due to s: from its position up to the ring's head, after what it has pending. */
void stream_pump(struct sub *s);
/* The ring was replaced: s follows the new one from its start. */
void stream_ring_replaced(struct sub *s);
/* Release c's stream (the connection is closing). */
void stream_free(struct conn *c);

/* ---- fanout.c: the process's ring and the fan-out ---- */

/* Attach the ring if it is not (0 or -errno) and start the wake-ups. */
_must_check_ int fanout_attach(struct frontend *fe);
/* Log why the ring or its statistics object is refused (-EPERM: shm/ring.h section 1). */
void fanout_log_refusal(const struct frontend *fe);
/* Add s (a new stream of topic key[0..len)) to its topic's group; false when out of memory. */
bool fanout_join(struct frontend *fe, struct sub *s, const uint8_t *key, size_t len);
void fanout_leave(struct frontend *fe, struct sub *s);
/* The ring moved (an eventfd wake-up, or the single-connection futex wait): send every
 * subscriber what is new. */
void fanout_wake(struct frontend *fe);
/* Stop the waiter thread and detach. */
void fanout_done(struct frontend *fe);

#endif
