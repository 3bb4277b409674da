/* SPDX-License-Identifier: MIT */
/*
 * gitpubsub-frontend: serves one client connection, handed over by systemd (Accept=yes, the
 * connection is fd 3) or inetd (fds 0 and 1). Reads requests under the limits of PROTOCOL 7,
 * answers HEAD itself, passes POST/PUT to the broker, and turns a GET into a stream read
 * straight from the shared-memory ring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/frontend.h"
#include "frontend/sse.h"

#define LINGER_MS	1000u /* after an error: how long we read what the client still sends */
#define LINGER_BYTES	(1u << 20) /* ... and how much of it */
#define HEAD_SLACK	1024u	   /* request-line bytes besides the target */
/* accept_loop: how long the listener waits when it is out of descriptors, memory or processes
 * before it tries again (the clients wait in the backlog meanwhile) */
#define ACCEPT_PAUSE_MS 100

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

int conn_send(struct conn *c, const void *buf, size_t len)
{
	int err = io_write_full(c->fd, buf, len);

	if (err == 0 && c->stats)
		ring_stats_add(c->stats, &c->stats->sent, len);
	return err;
}

ssize_t conn_fill(struct conn *c, uint64_t deadline_us)
{
	if (c->in_len < c->in_cap && publish_pending()) {
		/* Answers wait in a batch while requests keep coming (publish.c): take what the
		 * client has sent already, and send them before waiting for more. */
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);

		if (n > 0) {
			ring_stats_add(c->stats, c->stats ? &c->stats->received : NULL,
				       (uint64_t)n);
			c->in_len += (size_t)n;
			return n;
		}
		if (!publish_flush(c))
			return 0; /* the client left */
	}
	for (;;) {
		uint64_t now = io_now_mono_us();
		ssize_t n;
		int r;

		if (c->in_len >= c->in_cap)
			return -ENOBUFS;
		if (now >= deadline_us)
			return -ETIMEDOUT;
		r = io_poll1(c->fd, POLLIN, (int)MIN((deadline_us - now + 999) / 1000, 60000u));
		if (r < 0)
			return r;
		if (r == 0)
			continue;
		n = io_read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == -EAGAIN)
			continue;
		if (n < 0)
			return n == -ECONNRESET ? 0 : n;
		if (n > 0 && c->stats)
			ring_stats_add(c->stats, &c->stats->received, (uint64_t)n);
		c->in_len += (size_t)n;
		return n;
	}
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

void *frontend_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void frontend_release(void *buf, size_t len)
{
	/* MADV_DONTNEED on private anonymous pages: freed now, zero-filled if touched again */
	(void)madvise(buf, len, MADV_DONTNEED);
}

/* Read and drop what the client still sends, so closing does not reset the connection under
 * the response we just wrote (a reset can destroy unread data at the client). */
static void linger_close(struct conn *c)
{
	uint64_t deadline = io_now_mono_us() + (uint64_t)LINGER_MS * 1000u;
	size_t total = 0;
	char buf[4096];

	(void)shutdown(c->fd, SHUT_WR);
	while (total < LINGER_BYTES) {
		uint64_t now = io_now_mono_us();
		ssize_t n;

		if (now >= deadline ||
		    io_poll1(c->fd, POLLIN, (int)((deadline - now) / 1000u + 1)) <= 0)
			break;
		n = io_read(c->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		total += (size_t)n;
	}
	(void)close(c->fd);
}

void conn_fail(struct conn *c, int status, const char *reason)
{
	char head[512];
	const char *extra = status == 405   ? "Allow: GET, HEAD, POST, PUT\r\n"
			    : status == 503 ? "Retry-After: 1\r\n"
					    : "";
	/* PROTOCOL 4.1 and 4.3 fix these bodies byte for byte (compat); the rest end in CRLF */
	bool bare = status == 403;
	size_t blen = strlen(reason) + (bare ? 0 : 2);
	int n;

	if (!publish_flush(c)) /* the answers to earlier requests go first (PROTOCOL 1.3) */
		exit(0);       /* the client left */

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nServer: " SERVER_NAME "\r\nContent-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s%s",
		     status, http_status_text(status), blen, extra, reason, bare ? "" : "\r\n");
	if (n > 0 && (size_t)n < sizeof(head))
		(void)!conn_send(c, head, (size_t)n);
	log_info("%s: %d %s", c->peer, status, reason);
	linger_close(c);
	exit(0);
}

/* HEAD (PROTOCOL 6): statistics for trusted peers, a bare health check for the rest. */
static bool handle_head(struct conn *c, bool keep_alive)
{
	char buf[1024];
	size_t n;

	n = (size_t)snprintf(buf, sizeof(buf),
			     "HTTP/1.1 200 OK\r\nServer: " SERVER_NAME "\r\nContent-Length: 0\r\n");
	if (c->trusted) {
		struct ring r = { 0 };
		uint64_t now = io_now_real_us(), start = 0, held = 0, bytes = 0, oldest = 0;
		uint64_t subs = 0, conns = 0, rx = 0, tx = 0;

		if (ring_attach(c->ring_name, &r) == 0) {
			uint64_t tail = ring_tail(&r), head = ring_head(&r);
			struct ring_rec rec;

			start = atomic_load_explicit(&r.hdr->broker_start_us, memory_order_relaxed);
			held = head - tail;
			bytes = atomic_load_explicit(&r.hdr->data_head, memory_order_relaxed) -
				atomic_load_explicit(&r.hdr->data_tail, memory_order_relaxed);
			if (ring_rec_get(&r, tail, &rec) == 0)
				oldest = rec.time_us / 1000000u;
			ring_detach(&r);
		}
		if (c->stats) {
			subs = atomic_load_explicit(&c->stats->subscribers, memory_order_relaxed);
			conns = atomic_load_explicit(&c->stats->connections, memory_order_relaxed);
			rx = atomic_load_explicit(&c->stats->received, memory_order_relaxed);
			tx = atomic_load_explicit(&c->stats->sent, memory_order_relaxed);
		}
		n += (size_t)snprintf(
			buf + n, sizeof(buf) - n,
			"X-Uptime: %llu\r\nX-Connections: %llu\r\nX-Subscribers: %llu\r\n"
			"X-Total-Connections: %llu\r\nX-Received: %llu\r\nX-Sent: %llu\r\n"
			"X-Messages: %llu\r\nX-History-Bytes: %llu\r\nX-Oldest-Message: %llu\r\n",
			(unsigned long long)(start && now > start ? (now - start) / 1000000u : 0),
			(unsigned long long)subs, (unsigned long long)subs,
			(unsigned long long)conns, (unsigned long long)rx, (unsigned long long)tx,
			(unsigned long long)held, (unsigned long long)bytes,
			(unsigned long long)oldest);
		/* cluster mode (shm/ring.h section 8): messages of the stream not in this ring yet */
		if (c->stats && atomic_load_explicit(&c->stats->cluster, memory_order_relaxed))
			n += (size_t)snprintf(
				buf + n, sizeof(buf) - n, "X-Cluster-Lag: %llu\r\n",
				(unsigned long long)atomic_load_explicit(&c->stats->cluster_lag,
									 memory_order_relaxed));
	}
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\r\n",
			      keep_alive ? "" : "Connection: close\r\n");
	if (conn_send(c, buf, n) < 0)
		return false;
	return keep_alive;
}

static bool is_method(const struct http_request *req, const char *m)
{
	return req->method_len == strlen(m) && memcmp(req->method, m, req->method_len) == 0;
}

static bool wants_keep_alive(const struct http_request *req)
{
	const struct http_header *h = http_find_header(req, "Connection");

	if (h && http_value_has_token(h->value, h->value_len, "close"))
		return false;
	if (req->minor_version == 0)
		return h && http_value_has_token(h->value, h->value_len, "keep-alive");
	return true;
}

/*
 * Whether a request declares a body: any Transfer-Encoding, or a Content-Length other than 0.
 * GET and HEAD take none (RFC 9110 9.3.1, 9.3.2), and leaving one unread would make its bytes
 * the next request: a HEAD whose "body" is a POST would smuggle that POST past whatever proxy
 * framed it as one request. So such a request is refused (400) and its bytes never parsed.
 */
static bool declares_body(const struct http_request *req)
{
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		uint64_t len;

		if (h->name_len == 17 && strncasecmp(h->name, "Transfer-Encoding", 17) == 0)
			return true;
		if (h->name_len == 14 && strncasecmp(h->name, "Content-Length", 14) == 0 &&
		    (http_parse_content_length(h->value, h->value_len, &len) < 0 || len != 0))
			return true;
	}
	return false;
}

/* The request loop (PROTOCOL 1.2, 1.3): requests are answered in order until one closes. */
static void serve(struct conn *c)
{
	const struct http_limits lim = {
		.max_target = c->cfg.max_target,
		.max_header = c->cfg.max_header,
		.max_header_lines = MIN(c->cfg.max_header_lines, HTTP_MAX_HEADERS),
	};
	static struct http_request req;

	for (;;) {
		uint64_t deadline = io_now_mono_us() + (uint64_t)c->cfg.header_timeout_ms * 1000u;
		struct http_error herr = { 0 };
		bool keep_alive;
		int hlen;

		for (;;) {
			ssize_t n;

			hlen = c->in_len ? http_parse_request(c->in, c->in_len, &lim, &req, &herr)
					 : -2;
			if (hlen != -2)
				break;
			n = conn_fill(c, deadline);
			if (n == -ETIMEDOUT) {
				/* an idle keep-alive connection just ends; a started head is a 408 */
				if (c->in_len == 0 && c->requests > 0)
					return;
				conn_fail(c, 408, "request header not complete in time");
			}
			if (n == -ENOBUFS)
				conn_fail(c, 431, "request header section too large");
			if (n == 0 && c->in_len == 0)
				return; /* the client closed between requests */
			if (n == 0)
				conn_fail(c, 400, "connection closed in the middle of a request");
			if (n < 0)
				return;
		}
		if (hlen < 0)
			conn_fail(c, herr.status ? herr.status : 400,
				  herr.reason ? herr.reason : "malformed request");
		/* The body and any pipelined request follow the head in c->in; keep the head's
		 * bytes (which req points into) apart before c->in moves on. */
		memcpy(c->head, c->in, (size_t)hlen);
		conn_consume(c, (size_t)hlen);
		if (http_parse_request(c->head, (size_t)hlen, &lim, &req, &herr) != hlen)
			conn_fail(c, 500, "request head changed when copied");
		c->requests++;
		keep_alive = wants_keep_alive(&req);
		if ((is_method(&req, "GET") || is_method(&req, "HEAD")) && declares_body(&req))
			conn_fail(c, 400, "a GET or HEAD request may not carry a body");

		/* publishes waiting for answers: theirs go first (PROTOCOL 1.3) */
		if (!is_method(&req, "POST") && !is_method(&req, "PUT") && !publish_flush(c))
			return;
		if (is_method(&req, "GET") && sse_negotiate(&req) == SSE_KIND_PAGE) {
			/* README 3.11: a browser's navigation; its EventSource may follow here */
			if (!stream_page_handle(c, &req, keep_alive))
				return;
		} else if (is_method(&req, "GET")) {
			stream_handle(c, &req);
		} else if (is_method(&req, "HEAD")) {
			if (!handle_head(c, keep_alive))
				return;
		} else if (is_method(&req, "POST") || is_method(&req, "PUT")) {
			if (!publish_handle(c, &req, keep_alive))
				return;
		} else {
			conn_fail(c, 405, "method not allowed: use GET, HEAD, POST or PUT");
		}
	}
}

/*
 * systemd's socket-activation protocol (sd_listen_fds(3)), in the few lines the frontend needs:
 * linking libsystemd for it maps ten shared libraries into every connection's process, which
 * costs start-up time and memory at thousands of connections. LISTEN_FDS counts the sockets
 * from fd 3 on, and only counts if LISTEN_PID is our pid (the variables may be inherited by
 * mistake). Like sd_listen_fds(1) we unset both and mark the fds close-on-exec. Returns the
 * number of fds (0: not socket-activated) or -EINVAL for malformed variables.
 */
#define LISTEN_FDS_START 3    /* SD_LISTEN_FDS_START */
#define LISTEN_FDS_MAX	 1024 /* beyond any unit's socket count: a garbled variable */

static int parse_env_uint(const char *name, unsigned long *ret)
{
	const char *v = getenv(name);
	char *end;

	if (!v)
		return -ENOENT;
	errno = 0;
	*ret = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || v[0] == '+' || v[0] == ' ')
		return -EINVAL;
	return 0;
}

static int listen_fds(void)
{
	unsigned long pid, n = 0;
	int err;

	/* As sd_listen_fds(1): no LISTEN_PID, another process's, or no LISTEN_FDS mean "not
	 * socket-activated" (0); an unreadable value or a count of 0 is an error. */
	err = parse_env_uint("LISTEN_PID", &pid);
	if (err == 0 && pid == 0)
		err = -EINVAL;
	if (err == 0 && pid == (unsigned long)getpid()) {
		err = parse_env_uint("LISTEN_FDS", &n);
		if (err == 0 && (n == 0 || n > LISTEN_FDS_MAX))
			err = -EINVAL;
	}
	(void)unsetenv("LISTEN_PID");
	(void)unsetenv("LISTEN_FDS");
	(void)unsetenv("LISTEN_FDNAMES");
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	for (int fd = LISTEN_FDS_START; fd < LISTEN_FDS_START + (int)n; fd++)
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
			return -errno;
	return (int)n;
}

/* What fd is, as sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, listening) tells: SOCKET_CONNECTION,
 * SOCKET_LISTENER (a socket unit without Accept=yes), or SOCKET_OTHER (not a stream socket). */
enum socket_kind { SOCKET_OTHER, SOCKET_CONNECTION, SOCKET_LISTENER };

static enum socket_kind socket_kind(int fd)
{
	int type = 0, listening = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
		return SOCKET_OTHER;
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return SOCKET_OTHER;
	return listening ? SOCKET_LISTENER : SOCKET_CONNECTION;
}

/*
 * A listening socket (a socket unit with Accept=no; gitpubsub-run --fork): accept, and fork one
 * child per connection. Only children return, each with its connection; the listener itself
 * runs until it is killed. A shortage of memory, of the system's files or of processes costs the
 * connection at hand and a pause, not the listener; its own fd limit (it keeps no fd per
 * connection, so only a limit set too low for it) ends it, as it ends systemd-socket-activate,
 * and its supervisor starts it again: the clients wait in the backlog. This is the cheap way to a process per connection (issue 5, scenario 6): the child
 * of a small static process starts at once, with the configuration already read, where an
 * Accept=yes listener forks a large one, which then execs us, and we start from nothing. What
 * the children share is what exec would have given each of them anyway (text and read-only
 * data), plus the listener's few written pages, copied on write. A crashing child still takes
 * only its own connection. The price: children share the listener's address-space layout.
 */
static int accept_loop(int lfd)
{
	(void)signal(SIGCHLD, SIG_IGN); /* the kernel reaps the children: no zombies */
	/* Non-blocking, waiting in poll(): a blocked accept() holds the fd it will return from
	 * before the connection comes, so a limit lowered meanwhile would be seen one connection
	 * late. In a burst the backlog is never empty and accept() alone does the work. */
	(void)!io_set_nonblock(lfd, true);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN) {
				(void)!io_poll1(lfd, POLLIN, -1);
				continue;
			}
			if (errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
				return -errno;
			/* out of the system's files or memory: the backlog waits for some to return */
			log_warning("unable to accept a connection: %s", strerror(errno));
			(void)poll(NULL, 0, ACCEPT_PAUSE_MS);
			continue;
		}
		pid = fork();
		if (pid == 0) {
			(void)signal(SIGCHLD, SIG_DFL);
			(void)close(lfd);
			return fd;
		}
		if (pid < 0) {
			/* the process limit: this client is refused, the next may find room */
			log_warning("unable to start a process for a connection: %s",
				    strerror(errno));
			(void)poll(NULL, 0, ACCEPT_PAUSE_MS);
		}
		(void)close(fd);
	}
}

/* Find the connection: LISTEN_FDS (systemd Accept=yes, or a listening socket: accept_loop) or
 * stdin (inetd). fd, or -errno. */
static int find_connection(void)
{
	int n = listen_fds();

	if (n < 0) {
		log_error("unable to read LISTEN_PID/LISTEN_FDS: %s", strerror(-n));
		return n;
	}
	if (n > 1) {
		log_error("got %d sockets from systemd; expected one (a connection or a listener)",
			  n);
		return -EINVAL;
	}
	if (n == 1) {
		if (socket_kind(LISTEN_FDS_START) == SOCKET_LISTENER) {
			int fd = accept_loop(LISTEN_FDS_START);

			if (fd < 0)
				log_error("unable to accept connections: %s", strerror(-fd));
			return fd;
		}
		if (socket_kind(LISTEN_FDS_START) != SOCKET_CONNECTION) {
			log_error("fd 3 is neither a connected nor a listening stream socket");
			return -EINVAL;
		}
		return LISTEN_FDS_START;
	}
	if (socket_kind(STDIN_FILENO) != SOCKET_CONNECTION) {
		log_error("no connection: stdin is not a connected stream socket; run me from "
			  "systemd (Accept=yes) or inetd");
		return -ENOTSOCK;
	}
	return STDIN_FILENO;
}

static void describe_peer(struct conn *c)
{
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC }; /* in case len comes back short */
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	struct trust *trust;
	char err[256];

	c->trusted = false;
	if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
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
	/* The parsed list (4.6 KiB) is needed only here: on the stack it would leave its pages
	 * touched for the life of the connection (issue 5), so it gets pages of its own. */
	trust = frontend_map(sizeof(*trust));
	if (!trust) {
		log_error("unable to check the peer against trustedPeers: out of memory; trusting "
			  "nobody");
		return;
	}
	if (trust_parse(c->cfg.trusted_peers, trust, err, sizeof(err)) < 0)
		log_error("trustedPeers: %s; trusting nobody", err);
	else
		c->trusted = trust_check(trust, (const struct sockaddr *)&ss, len);
	(void)munmap(trust, sizeof(*trust));
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gitpubsub-frontend [OPTIONS]\n"
		"\n"
		"Serves one GitPubSub client connection. Started per connection by systemd\n"
		"(gitpubsub.socket with Accept=yes: the connection is fd 3) or by inetd (the\n"
		"connection is stdin/stdout); not meant to be run by hand. Given a listening\n"
		"socket as fd 3 instead (Accept=no), it accepts connections and forks one\n"
		"process per connection itself.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (default " CONFIG_DEFAULT_PATH ")\n"
		"  -r, --ring NAME     shared-memory ring name (default: [History] ring)\n"
		"  -s, --socket PATH   the broker's local socket (default: [Broker] socket)\n"
		"  -h, --help          this text;  -V, --version  the version\n"
		"\n"
		"Environment: GITPUBSUB_LOG_LEVEL. Logs go to the journal, or to syslog when stderr\n"
		"is the client's socket (inetd), never to the client.\n"
		"Exit status: 0 when the connection ends, 1 on a configuration or start-up error,\n"
		"2 on a usage error.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ring", required_argument, NULL, 'r' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *config_path = NULL, *ring_name = NULL, *socket_path = NULL;
	static struct conn c;
	int opt, err;

	log_open(argv[0]);
	while ((opt = getopt_long(argc, argv, "c:r:s:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'r':
			ring_name = optarg;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("gitpubsub-frontend 1.0.0\n");
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	(void)signal(SIGPIPE, SIG_IGN); /* EPIPE from write() is the client leaving */
	/* The connection is ours to the end, whatever becomes of the listener that spawned us:
	 * systemd-socket-activate gives its children PR_SET_PDEATHSIG, and it exits when accept()
	 * or fork() fails (fd or process limit), which would end every open stream with it. */
	(void)prctl(PR_SET_PDEATHSIG, 0);

	config_defaults(&c.cfg);
	err = config_load(config_path ? config_path : CONFIG_DEFAULT_PATH, &c.cfg);
	if (err < 0 && !(err == -ENOENT && !config_path)) {
		log_error("unable to load configuration '%s': %s",
			  config_path ? config_path : CONFIG_DEFAULT_PATH, strerror(-err));
		return 1;
	}
	if (ring_name)
		(void)snprintf(c.cfg.ring_name, sizeof(c.cfg.ring_name), "%s", ring_name);
	if (socket_path)
		(void)snprintf(c.cfg.socket_path, sizeof(c.cfg.socket_path), "%s", socket_path);
	c.ring_name = c.cfg.ring_name;
	c.broker_fd = -1;
	c.memfd = -1;

	c.fd = find_connection();
	if (c.fd < 0)
		return 1;
	(void)!io_set_nonblock(c.fd, false);
	{
		struct timeval tv = { .tv_sec = c.cfg.send_timeout_ms / 1000u,
				      .tv_usec =
					      (suseconds_t)(c.cfg.send_timeout_ms % 1000u) * 1000 };
		(void)setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	{
		/* Every write we make is a whole response or a whole batch of messages: Nagle
		 * could only hold one back until the client's ACK (issue 5, latency). Fails
		 * harmlessly on a unix socket. */
		int one = 1;
		(void)setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	c.in_cap = c.cfg.max_target + c.cfg.max_header + HEAD_SLACK;
	c.in = frontend_map(c.in_cap);
	c.head = frontend_map(c.in_cap);
	if (!c.in || !c.head) {
		log_error("unable to allocate the request buffer: out of memory");
		return 1;
	}
	if (ring_stats_attach(c.ring_name, true, &c.stats) < 0)
		c.stats = NULL; /* broker never ran: serve anyway, count nothing */
	ring_stats_add(c.stats, c.stats ? &c.stats->connections : NULL, 1);
	describe_peer(&c);
	log_debug("%s: connected%s", c.peer, c.trusted ? " (trusted)" : "");

	serve(&c);
	(void)publish_flush(&c); /* serve() leaves none waiting; be sure */
	(void)close(c.fd);
	return 0;
}
