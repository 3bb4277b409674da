/* SPDX-License-Identifier: MIT */
/*
 * Room for a connection, in every process that accepts connections (a multiplexed worker, the
 * per-connection listener) or is started for one (systemd Accept=yes, inetd), and the
 * per-connection listener itself.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/frontend.h"

/*
 * Connections are bounded in every mode: a multiplexed worker holds at most max_conns, the
 * per-connection listener keeps at most max_conns children, and processes started one per
 * connection count one another (listen_alone). Of those,
 * [Frontend] trustedReserve are kept for peers in trustedPeers (known by address at accept):
 * untrusted peers get no more than untrusted_max, and a connection there is no room for is
 * answered 503 at once and closed, never left in the backlog, where a trusted publisher would
 * wait behind it. So trusted publishers get through however many connections the others hold.
 * (A token publisher from another address is an untrusted peer here: its token is in a request
 * not read yet.)
 */
/* Per-connection modes, [Frontend] maxConnections 0: children the listener keeps at most, and
 * processes per connection (systemd, inetd) at most, as gitpubsub-accept.socket's
 * MaxConnections=. */
#define FORK_MAX_DEFAULT 4096u
/* Refusals are logged at most once a second, with their count: a flood is one line a second. */
#define REFUSED_LOG_US	 UINT64_C(1000000)

void listen_bounds(struct frontend *fe, size_t max)
{
	size_t reserve = MIN((size_t)fe->cfg.trusted_reserve, max / 2);

	fe->max_conns = max;
	fe->untrusted_max = max - reserve;
}

bool listen_room(const struct frontend *fe, bool trusted)
{
	return fe->nconns < fe->max_conns && (trusted || fe->nuntrusted < fe->untrusted_max);
}

bool listen_trusted(const struct frontend *fe, const struct sockaddr_storage *ss, socklen_t len)
{
	return fe->trust && trust_check(fe->trust, (const struct sockaddr *)ss, len);
}

/* What the client has sent already is read first, so that the close sends a FIN, not a reset
 * that could destroy the answer before the client reads it. */
void listen_refuse(struct frontend *fe, int fd, bool trusted)
{
	char buf[1024];
	uint64_t now = io_now_mono_us();
	size_t n;
	int k = 0;

	while (k++ < 4 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		; /* dropped */
	n = response_error(buf, sizeof(buf), 503,
			   trusted ? "Too many connections; try again later"
				   : "Too many connections from untrusted peers; try again later");
	if (n)
		(void)!send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)shutdown(fd, SHUT_WR);
	(void)close(fd);
	fe->refused++;
	if (now - fe->refused_logged_us < REFUSED_LOG_US)
		return;
	log_warning("refused %" PRIu64 " connection(s) with 503: %zu open, %zu of them untrusted; "
		    "room for %zu, %zu untrusted ([Frontend] maxConnections, trustedReserve)",
		    fe->refused, fe->nconns, fe->nuntrusted, fe->max_conns, fe->untrusted_max);
	fe->refused = 0;
	fe->refused_logged_us = now;
}

/*
 * Processes per connection started by systemd or inetd see nothing of one another but the
 * statistics object: an untrusted peer's marks its slot there (shm/ring.h), and counts the
 * marked live slots, its own included. Over the bound it refuses; its slot dies with it. Two
 * that start together at the bound may both refuse; none gets past it. Without the object (no
 * broker yet) or a slot, nothing can be counted, and the connection is served.
 */
bool listen_alone(struct frontend *fe, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	uint64_t n;

	if (!fe->stats || getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    listen_trusted(fe, &ss, len))
		return true;
	listen_bounds(fe, fe->cfg.max_connections ? fe->cfg.max_connections : FORK_MAX_DEFAULT);
	if (!ring_stats_mark_untrusted(fe->stats))
		return true;
	n = ring_stats_untrusted(fe->stats);
	if (n <= fe->untrusted_max)
		return true;
	fe->nconns = fe->nuntrusted = (size_t)n - 1; /* the others, for the log */
	listen_refuse(fe, fd, false);
	return false;
}

/* The per-connection listener's children: which are trusted peers', to count them out. */
struct child {
	pid_t pid; /* 0: a free entry */
	bool trusted;
};

static void on_child(int sig)
{
	(void)sig; /* only to end ppoll(): SIG_IGN would discard SIGCHLD, and reap for us */
}

/* Forget the children that ended. O(max_conns) each: a few microseconds at 4,096. */
static void children_reap(struct frontend *fe, struct child *children)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
		for (size_t i = 0; i < fe->max_conns; i++)
			if (children[i].pid == pid) {
				children[i].pid = 0;
				fe->nconns--;
				fe->nuntrusted -= !children[i].trusted;
				break;
			}
}

static void children_add(struct frontend *fe, struct child *children, pid_t pid, bool trusted)
{
	for (size_t i = 0; i < fe->max_conns; i++)
		if (children[i].pid == 0) {
			children[i] = (struct child){ .pid = pid, .trusted = trusted };
			fe->nconns++;
			fe->nuntrusted += !trusted;
			return;
		}
}

/*
 * per-connection: accept, and fork one child per connection. Only children return, each with its
 * connection; the listener itself runs until it is killed. It keeps at most max_conns children
 * ([Frontend] maxConnections, default FORK_MAX_DEFAULT), trustedReserve of them for trusted
 * peers; a connection beyond is refused with 503 by the listener itself (no fork). A shortage
 * of memory, of the system's files or of processes costs the connection at hand and a pause,
 * not the listener; its own fd limit (it keeps no fd per connection) ends it, as it ends
 * systemd-socket-activate, and its supervisor starts it again: the clients wait in the
 * backlog. The child of a small static process starts at once with the configuration already
 * read, where an Accept=yes listener forks a large one which then execs us. A crashing child
 * takes only its own connection.
 */
int listen_fork(struct frontend *fe, int lfd)
{
	struct sigaction sa = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP };
	struct child *children;
	sigset_t chld, waiting;

	listen_bounds(fe, fe->cfg.max_connections ? fe->cfg.max_connections : FORK_MAX_DEFAULT);
	children = calloc(fe->max_conns, sizeof(*children));
	if (!children)
		return -ENOMEM;
	(void)sigemptyset(&chld);
	(void)sigaddset(&chld, SIGCHLD);
	(void)sigprocmask(SIG_BLOCK, &chld, &waiting);
	(void)sigdelset(&waiting, SIGCHLD); /* SIGCHLD comes only while we wait */
	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGCHLD, &sa, NULL);
	(void)!io_set_nonblock(lfd, true);
	log_info("serving a process per connection: at most %zu, %zu for untrusted peers",
		 fe->max_conns, fe->untrusted_max);
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd;
		pid_t pid;
		bool trusted;

		children_reap(fe, children);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
		if (fd < 0) {
			struct pollfd pfd = { .fd = lfd, .events = POLLIN };

			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN) {
				(void)ppoll(&pfd, 1, NULL, &waiting); /* or a child ended */
				continue;
			}
			if (errno != ENFILE && errno != ENOBUFS && errno != ENOMEM) {
				int err = -errno;

				free(children);
				return err;
			}
			log_warning("unable to accept a connection: %s", strerror(errno));
			(void)poll(NULL, 0, LISTEN_PAUSE_MS);
			continue;
		}
		trusted = listen_trusted(fe, &ss, len);
		if (!listen_room(fe, trusted)) {
			listen_refuse(fe, fd, trusted);
			continue;
		}
		/* each child starts with the tokens file as it is now, read here (the first time,
		 * and when it changed) */
		if (fe->cfg.tokens_file[0] &&
		    (!fe->tokens.checked_us ||
		     io_now_mono_us() - fe->tokens.checked_us >= TOKENS_CHECK_US))
			(void)tokens_refresh(fe->cfg.tokens_file, &fe->tokens, io_now_mono_us());
		pid = fork();
		if (pid == 0) {
			(void)signal(SIGCHLD, SIG_DFL);
			(void)sigprocmask(SIG_UNBLOCK, &chld, NULL);
			(void)close(lfd);
			free(children);
			fe->nconns = fe->nuntrusted = 0; /* the listener's count, not the child's */
			return fd;
		}
		if (pid < 0) {
			log_warning("unable to start a process for a connection: %s",
				    strerror(errno));
			(void)poll(NULL, 0, LISTEN_PAUSE_MS);
		} else {
			children_add(fe, children, pid, trusted);
		}
		(void)close(fd);
	}
}
