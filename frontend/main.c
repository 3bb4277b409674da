/* SPDX-License-Identifier: MIT */
/*
 * gitpubsub-frontend: how the process came to be, and the loop it runs.
 *
 *   a connection (inetd: fd 0; systemd Accept=yes: fd 3)  serve it, then exit
 *   a listening socket (systemd Accept=no), [Frontend] mode:
 *     multiplexed      a supervisor and N workers, each accepting from the shared socket and
 *                      serving thousands of connections from one event loop
 *     per-connection   accept and fork a process per connection, which serves it as above
 *
 * Every way ends in the same event loop over the same handlers (frontend/frontend.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "frontend/stream.h"

/* Connections a worker takes per wake-up of its listening socket, so one busy worker does not
 * starve its streams while a reconnect storm lasts. */
#define ACCEPT_BURST	 64
/* Descriptors a worker keeps back from its limit for itself: the ring, statistics, epoll,
 * eventfd, and a publisher's broker socket and memfd (which cost 2 beyond its connection). */
#define FD_RESERVE	 ((size_t)64)
/* How long a draining worker (SIGTERM) lets its publishers finish before it exits anyway. */
#define DRAIN_MS	 10000u
/* A worker that dies this soon after it started is restarted ever more slowly: from
 * RESTART_MIN_MS, doubling up to RESTART_MAX_MS. */
#define RESTART_QUICK_US UINT64_C(1000000)
#define RESTART_MIN_MS	 100u
#define RESTART_MAX_MS	 5000u
/* How long the supervisor waits for its workers to exit after SIGTERM before it kills them. */
#define STOP_WAIT_MS	 (DRAIN_MS + 2000u)
#define MAX_WORKERS	 256u

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGTERM, SIGINT and SIGHUP end the process's loop: no SA_RESTART, so a wait returns EINTR. */
static void catch_stop_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop };
	sigset_t set;

	(void)sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGHUP, &sa, NULL);
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGHUP);
	(void)sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/*
 * systemd's socket-activation protocol (sd_listen_fds(3)), in the few lines the frontend needs:
 * linking libsystemd for it maps ten shared libraries into every connection's process. Returns
 * the number of fds from 3 on (0: not socket-activated) or -EINVAL for malformed variables.
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

/* What fd is, as sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, listening) tells. */
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

/* ---- the process ---- */

static int frontend_init(struct frontend *fe, bool single)
{
	const uint64_t periods[TIMER_NCLASSES] = {
		[TIMER_HEADER] = (uint64_t)fe->cfg.header_timeout_ms * 1000u,
		[TIMER_BODY] = (uint64_t)fe->cfg.body_timeout_ms * 1000u,
		[TIMER_KEEPALIVE] = (uint64_t)fe->cfg.keepalive_ms * 1000u,
		/* PROTOCOL 4.6: how long a publisher waits for the broker before its 503; in
		 * cluster mode the broker answers within [Cluster] publishTimeout + 1 s */
		[TIMER_BROKER] = (fe->cfg.nats[0] ? (uint64_t)fe->cfg.publish_timeout_ms + 2000u
						  : UINT64_C(5000)) *
				 1000u,
		/* after an error: how long we read what the client still sends */
		[TIMER_LINGER] = UINT64_C(1000) * 1000u,
		[TIMER_RETRY] = (uint64_t)LISTEN_PAUSE_MS * 2000u,
		[TIMER_SOON] = 0,
		[TIMER_TOKENS] = TOKENS_CHECK_US,
	};
	int err;

	fe->single = single;
	fe->ring_name = fe->cfg.ring_name;
	fe->listen_fd = -1;
	fe->listen_io.fd = -1;
	fe->wake_fd = -1;
	fe->wake_io.fd = -1;
	fe->kick_io.fd = -1;
	err = ring_stats_attach(fe->ring_name, true, &fe->stats);
	if (err == -EPERM)
		fanout_log_refusal(fe); /* not the service's: never counted into */
	if (err < 0)
		fe->stats = NULL; /* broker never ran: serve anyway, count nothing */
	return loop_init(&fe->loop, periods);
}

/* End every stream, and every connection that holds no request in progress (SIGTERM). */
static void drain(struct frontend *fe)
{
	struct conn *c, *next;

	fe->draining = true;
	for (c = fe->conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_STREAM || (c->state == CONN_HEAD && c->in_len == 0 &&
						!publish_pending(c) && !conn_backlogged(c)))
			conn_close(c, "the server is stopping");
	}
}

/* The only stream of a one-connection process, when a futex wait is all it needs. */
static struct sub *sole_stream(const struct frontend *fe)
{
	const struct conn *c = fe->conns;

	if (!fe->single || fe->nconns != 1 || c->state != CONN_STREAM || !c->sub ||
	    c->sub->blocked || c->sub->pend_len || !fe->ring.hdr)
		return NULL;
	return c->sub;
}

static void accept_balance(struct frontend *fe);

/* Run the loop until the process has nothing left to serve. */
static void run(struct frontend *fe)
{
	uint64_t drain_end = 0;

	for (;;) {
		int timeout;
		struct sub *s;

		conn_reap(fe);
		if (!fe->single)
			accept_balance(fe);
		if (stop_requested && !fe->draining) {
			drain(fe);
			drain_end = io_now_mono_us() + (uint64_t)DRAIN_MS * 1000u;
			if (fe->listen_fd >= 0) {
				loop_del(&fe->loop, &fe->listen_io);
				(void)close(fe->listen_fd);
				fe->listen_fd = -1;
			}
		}
		if ((fe->single || fe->draining) && fe->nconns == 0)
			break;
		if (fe->draining && io_now_mono_us() >= drain_end)
			break;
		timeout = loop_timeout_ms(&fe->loop, fe->draining ? 100 : -1);
		s = sole_stream(fe);
		if (s) {
			/* one stream and nothing else to wait for: sleep on the ring itself */
			uint32_t w = ring_wake_word(&fe->ring);

			if (ring_head(&fe->ring) == s->next && !ring_closed(&fe->ring) &&
			    ring_wait(&fe->ring, w, (uint32_t)(timeout < 0 ? 60000 : timeout)) < 0)
				(void)poll(NULL, 0,
					   1); /* futex unusable: poll gently, never spin */
			fanout_wake(fe);
			loop_run_timers(&fe->loop);
			continue;
		}
		if (loop_once(&fe->loop, timeout) < 0) {
			log_error("unable to wait for events: %s", strerror(errno));
			break;
		}
	}
	conn_reap(fe);
}

/* ---- one connection ---- */

/* Serve connection fd, then exit; alone: started for it by systemd or inetd (not forked by
 * our listener, which bounds its children itself). */
static int serve_one(struct frontend *fe, int fd, bool alone)
{
	struct conn *c;

	if (frontend_init(fe, true) < 0) {
		log_error("unable to create the event loop: %s", strerror(errno));
		return 1;
	}
	catch_stop_signals();
	if (alone && !listen_alone(fe, fd))
		return 0; /* refused: no room for another untrusted peer */
	c = conn_new(fe, fd);
	/* the trusted list is only needed for that one check */
	free(fe->trust);
	fe->trust = NULL;
	if (!c) {
		log_error("unable to serve a connection: out of memory");
		return 1;
	}
	if (request_start(c))
		request_process(c);
	run(fe);
	return 0;
}

/* ---- a multiplexed worker ---- */

/*
 * The workers share one listening socket, and EPOLLEXCLUSIVE wakes one of them per connection:
 * the same one, mostly, while it is idle, so a few hundred subscribers would all land on one
 * worker and one core. So each worker publishes its connection count in a page the supervisor
 * shares with every worker (MAP_SHARED before the forks), and one that holds more than
 * BALANCE_SLACK above the least loaded worker that accepts stops watching the socket until
 * the others catch up: the kernel then wakes one of them. A worker that cannot accept (full,
 * draining, or not running) shows LOAD_NONE and is no measure. A paused worker looks again on
 * every round of its loop and at least every TIMER_RETRY.
 */
#define BALANCE_SLACK 4u
#define LOAD_NONE     UINT64_MAX

struct worker_load {
	_Alignas(64) _Atomic uint64_t
		conns; /* written by its worker only; LOAD_NONE: not accepting */
};

static void listen_io(struct loop *l, struct loop_io *io, uint32_t events);

static void accept_resume(struct frontend *fe)
{
	if (fe->accepting || fe->listen_fd < 0 || fe->draining)
		return;
	if (loop_add(&fe->loop, &fe->listen_io, fe->listen_fd, EPOLLIN | EPOLLEXCLUSIVE,
		     listen_io) == 0)
		fe->accepting = true;
}

static void accept_retry(struct loop *l, struct timer *t);

/* Accept what waits in the backlog now (at most ACCEPT_BURST). */
static void accept_pending(struct frontend *fe)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(fe->listen_fd, (struct sockaddr *)&ss, &len,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct conn *c;
		bool trusted;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN) {
				/* out of descriptors or memory: a pause, then try again */
				log_warning("unable to accept a connection: %s", strerror(errno));
				timer_arm(&fe->loop, &fe->accept_timer, TIMER_RETRY, accept_retry);
			}
			return;
		}
		trusted = listen_trusted(fe, &ss, len);
		if (!listen_room(fe, trusted)) {
			listen_refuse(fe, fd, trusted);
			continue;
		}
		c = conn_new(fe, fd);
		if (c && request_start(c))
			request_process(c);
	}
}

/*
 * Stop watching the listening socket. A connection that came after the kernel last woke us but
 * before this would wait for the next one to wake a sibling: take what waits now, so nothing
 * is left behind unannounced.
 */
static void accept_pause(struct frontend *fe)
{
	loop_del(&fe->loop, &fe->listen_io);
	fe->accepting = false;
	/* (a full worker leaves them: it has no descriptors to spare, and the next connection
	 * wakes a sibling for all that wait) */
	if (fe->listen_fd >= 0 && !fe->draining && fe->nconns < fe->max_conns)
		accept_pending(fe);
}

static void accept_retry(struct loop *l, struct timer *t)
{
	(void)l;
	accept_resume(container_of(t, struct frontend, accept_timer));
}

/* Whether this worker holds no more than its share: within BALANCE_SLACK of the least loaded
 * worker that accepts, whose slot goes to *ret_least (SIZE_MAX: none). */
static bool fair_share(const struct frontend *fe, size_t *ret_least)
{
	uint64_t least = LOAD_NONE;

	*ret_least = SIZE_MAX;
	for (size_t i = 0; i < fe->nworkers; i++) {
		uint64_t n = atomic_load_explicit(&fe->loads[i].conns, memory_order_relaxed);

		if (i != fe->slot && n < least) {
			least = n;
			*ret_least = i;
		}
	}
	return least == LOAD_NONE || fe->nconns <= least + BALANCE_SLACK;
}

/*
 * Each worker's eventfd, made by the supervisor before the forks: a worker that stops accepting
 * writes to the least loaded sibling's, which then looks again at once whether it should
 * accept. Without it that sibling, paused itself a moment ago while it was ahead, would look
 * only at its next event or TIMER_RETRY later, and a reconnect storm (or a flood with a
 * trusted publisher behind it) would be taken at 64 connections per worker per TIMER_RETRY.
 */
static int kick_fds[MAX_WORKERS];

static void kick(size_t slot)
{
	uint64_t one = 1;

	if (slot < MAX_WORKERS && kick_fds[slot] >= 0)
		(void)!write(kick_fds[slot], &one, sizeof(one));
}

static void kick_io(struct loop *l, struct loop_io *io, uint32_t events)
{
	uint64_t n;

	(void)l;
	(void)events;
	(void)!read(io->fd, &n, sizeof(n)); /* the loop's next round looks (accept_balance) */
}

/* The loop's next round decides (accept_balance). */
static void balance_again(struct loop *l, struct timer *t)
{
	(void)l;
	(void)t;
}

/*
 * Once per round of a worker's loop: publish our load, and watch the socket or not. A worker
 * without room for untrusted peers shows LOAD_NONE, and leaves new connections to a sibling
 * that has room; when none has, every worker accepts, to serve trusted peers from the reserve
 * and to answer the others 503 at once instead of leaving them all in the backlog.
 */
static void accept_balance(struct frontend *fe)
{
	bool able = !fe->draining && fe->listen_fd >= 0 && !timer_armed(&fe->accept_timer);
	bool room = listen_room(fe, false);
	size_t least = SIZE_MAX;

	if (fe->loads)
		atomic_store_explicit(&fe->loads[fe->slot].conns,
				      able && room ? fe->nconns : LOAD_NONE, memory_order_relaxed);
	if (!room && !fe->full)
		log_warning("worker %d holds %zu connections, %zu of them untrusted: its maximum "
			    "for untrusted peers; new ones go to other workers or get 503",
			    (int)getpid(), fe->nconns, fe->nuntrusted);
	fe->full = !room;
	if (able && (!fe->loads || fair_share(fe, &least))) {
		accept_resume(fe);
		return;
	}
	if (fe->accepting) {
		accept_pause(fe);
		kick(least);
	}
	/* look again soon even if nothing else wakes this loop (a full worker waits for one of
	 * its connections to end, which wakes it anyway) */
	if (able && !timer_armed(&fe->balance_timer))
		timer_arm(&fe->loop, &fe->balance_timer, TIMER_RETRY, balance_again);
}

static void listen_io(struct loop *l, struct loop_io *io, uint32_t events)
{
	(void)l;
	(void)events;
	accept_pending(container_of(io, struct frontend, listen_io));
}

/* The most descriptors this process may have, raised to the hard limit. */
static size_t fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? (size_t)1 << 20 : (size_t)rl.rlim_cur;
}

/* A worker's look at the tokens file: read again when it changed, without touching a
 * connection (each request checks the tokens there are when it arrives). */
static void tokens_tick(struct loop *l, struct timer *t)
{
	struct frontend *fe = container_of(t, struct frontend, tokens_timer);

	(void)tokens_refresh(fe->cfg.tokens_file, &fe->tokens, io_now_mono_us());
	timer_arm(l, t, TIMER_TOKENS, tokens_tick);
}

static int worker_main(struct frontend *fe, int lfd)
{
	size_t limit = fd_limit();

	if (frontend_init(fe, false) < 0) {
		log_error("unable to create the event loop: %s", strerror(errno));
		return 1;
	}
	catch_stop_signals();
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor gone, drain and go */
	limit = limit > FD_RESERVE * 2 ? limit - FD_RESERVE : limit / 2;
	if (fe->cfg.max_connections && fe->cfg.max_connections < limit)
		limit = fe->cfg.max_connections;
	listen_bounds(fe, limit);
	fe->listen_fd = lfd;
	(void)!io_set_nonblock(lfd, true);
	if (fe->loads && kick_fds[fe->slot] >= 0 &&
	    loop_add(&fe->loop, &fe->kick_io, kick_fds[fe->slot], EPOLLIN, kick_io) < 0)
		log_warning("unable to watch the workers' eventfd: %s; balancing more slowly",
			    strerror(errno));
	accept_resume(fe);
	if (!fe->accepting) {
		log_error("unable to watch the listening socket: %s", strerror(errno));
		return 1;
	}
	/* the ring's waiter starts now, not at the first stream: the first subscriber's first
	 * message should not wait for a thread to start */
	(void)!fanout_attach(fe);
	if (fe->cfg.tokens_file[0])
		timer_arm(&fe->loop, &fe->tokens_timer, TIMER_TOKENS, tokens_tick);
	log_debug("worker %d: serving up to %zu connections, %zu from untrusted peers",
		  (int)getpid(), fe->max_conns, fe->untrusted_max);
	for (;;) {
		run(fe);
		if (fe->draining)
			break;
	}
	return 0;
}

/* ---- the supervisor ---- */

struct worker {
	pid_t pid;
	uint64_t started_us;
	uint32_t delay_ms; /* before the next restart */
	uint64_t restart_at_us;
};

static pid_t worker_spawn(struct frontend *fe, int lfd, struct worker *w, size_t slot)
{
	pid_t pid = fork();

	if (pid == 0) {
		sigset_t none;

		fe->slot = slot;
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		exit(worker_main(fe, lfd));
	}
	if (pid < 0) {
		log_error("unable to start a worker: %s", strerror(errno));
		w->pid = 0;
		w->restart_at_us = io_now_mono_us() + (uint64_t)RESTART_MAX_MS * 1000u;
		return pid;
	}
	w->pid = pid;
	w->started_us = io_now_mono_us();
	return pid;
}

static size_t worker_count(const struct config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = cfg->workers ? cfg->workers : (size_t)(cpus > 0 ? cpus : 1);

	return MIN(n, (size_t)MAX_WORKERS);
}

/* What the workers share to balance their connections: the load page and the eventfds. */
static void balance_setup(struct frontend *fe, size_t nworkers)
{
	fe->loads = mmap(NULL, MAX_WORKERS * sizeof(*fe->loads), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (fe->loads == MAP_FAILED)
		fe->loads = NULL; /* no balancing: every worker accepts when it can */
	fe->nworkers = nworkers;
	for (size_t i = 0; fe->loads && i < MAX_WORKERS; i++)
		atomic_store(&fe->loads[i].conns, LOAD_NONE);
	for (size_t i = 0; i < MAX_WORKERS; i++)
		kick_fds[i] = i < nworkers ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
}

/*
 * multiplexed: start the workers and keep them running. A worker that dies takes only its own
 * connections (their clients resume with cursors) and is started again; SIGTERM goes on to the
 * workers, which drain and exit, and then so does the supervisor.
 */
static int supervise(struct frontend *fe, int lfd, size_t nworkers)
{
	static struct worker workers[MAX_WORKERS];
	sigset_t set;
	bool stopping = false;
	uint64_t stop_deadline = 0;
	size_t alive = 0;

	balance_setup(fe, nworkers);
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGCHLD);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGHUP);
	(void)sigprocmask(SIG_BLOCK, &set, NULL);
	/* read once here, so every worker starts with the tokens (and a bad line is logged once) */
	if (fe->cfg.tokens_file[0])
		(void)tokens_refresh(fe->cfg.tokens_file, &fe->tokens, io_now_mono_us());
	for (size_t i = 0; i < nworkers; i++) {
		workers[i].delay_ms = RESTART_MIN_MS;
		if (worker_spawn(fe, lfd, &workers[i], i) > 0)
			alive++;
	}
	log_info("serving with %zu multiplexed workers", nworkers);
	for (;;) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000L }; /* 100 ms */
		uint64_t now;
		pid_t pid;
		int sig, status;

		sig = sigtimedwait(&set, NULL, &ts);
		if ((sig == SIGTERM || sig == SIGINT || sig == SIGHUP) && !stopping) {
			stopping = true;
			stop_deadline = io_now_mono_us() + (uint64_t)STOP_WAIT_MS * 1000u;
			for (size_t i = 0; i < nworkers; i++)
				if (workers[i].pid > 0)
					(void)kill(workers[i].pid, SIGTERM);
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (size_t i = 0; i < nworkers; i++) {
				struct worker *w = &workers[i];

				if (w->pid != pid)
					continue;
				w->pid = 0;
				alive--;
				if (fe->loads) /* its connections are gone with it */
					atomic_store(&fe->loads[i].conns, LOAD_NONE);
				if (stopping)
					break;
				now = io_now_mono_us();
				if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
					/* a worker exits 0 only when told to stop (SIGTERM):
					 * the service is being stopped around us (systemd
					 * signals the whole group); stop with it */
					log_info("worker %d stopped; stopping the others",
						 (int)pid);
					stopping = true;
					stop_deadline = now + (uint64_t)STOP_WAIT_MS * 1000u;
					for (size_t j = 0; j < nworkers; j++)
						if (workers[j].pid > 0)
							(void)kill(workers[j].pid, SIGTERM);
					break;
				}
				if (WIFSIGNALED(status))
					log_warning(
						"worker %d was killed by signal %d; restarting it",
						(int)pid, WTERMSIG(status));
				else
					log_warning(
						"worker %d exited with status %d; restarting it",
						(int)pid, WEXITSTATUS(status));
				w->delay_ms = now - w->started_us < RESTART_QUICK_US
						      ? MIN(w->delay_ms * 2, RESTART_MAX_MS)
						      : RESTART_MIN_MS;
				w->restart_at_us = now + (uint64_t)w->delay_ms * 1000u;
			}
		}
		now = io_now_mono_us();
		if (stopping) {
			if (alive == 0)
				return 0;
			if (now >= stop_deadline) {
				for (size_t i = 0; i < nworkers; i++)
					if (workers[i].pid > 0)
						(void)kill(workers[i].pid, SIGKILL);
				stop_deadline = UINT64_MAX;
			}
			continue;
		}
		for (size_t i = 0; i < nworkers; i++)
			if (workers[i].pid == 0 && now >= workers[i].restart_at_us &&
			    worker_spawn(fe, lfd, &workers[i], i) > 0)
				alive++;
	}
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gitpubsub-frontend [OPTIONS]\n"
		"\n"
		"Serves GitPubSub clients; started by systemd or inetd, not by hand.\n"
		"Given a connection (inetd: stdin/stdout; systemd Accept=yes: fd 3), it serves\n"
		"that one. Given a listening socket as fd 3 (systemd Accept=no), it serves every\n"
		"connection, in the mode [Frontend] mode names:\n"
		"  multiplexed      a few worker processes (one per CPU), each serving thousands\n"
		"                   of connections from one event loop (the default)\n"
		"  per-connection   one process per connection, forked at accept\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (default " CONFIG_DEFAULT_PATH ")\n"
		"  -r, --ring NAME     shared-memory ring name (default: [History] ring)\n"
		"  -s, --socket PATH   the broker's local socket (default: [Broker] socket)\n"
		"  -m, --mode MODE     multiplexed or per-connection (default: [Frontend] mode)\n"
		"  -w, --workers N     multiplexed workers (default: [Frontend] workers, 0: one\n"
		"                      per CPU)\n"
		"  -h, --help          this text;  -V, --version  the version\n"
		"\n"
		"Environment: GITPUBSUB_LOG_LEVEL. Logs go to the journal, or to syslog when stderr\n"
		"is the client's socket (inetd), never to the client.\n"
		"Exit status: 0 when the connection ends or after SIGTERM, 1 on a configuration or\n"
		"start-up error, 2 on a usage error.\n");
}

static int parse_workers(const char *s, uint32_t *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > MAX_WORKERS)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* What the command line asks; NULL or unset: the configuration's. */
struct options {
	const char *config, *ring, *socket, *mode;
	uint32_t workers;
	bool workers_set;
};

/* Read the command line into o: 0 to go on, 1 when done (help or version printed: exit 0),
 * -1 on a usage error (said: exit 2). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ring", required_argument, NULL, 'r' },
		{ "socket", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "workers", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:r:s:m:w:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->config = optarg;
			break;
		case 'r':
			o->ring = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'm':
			if (strcmp(optarg, "multiplexed") != 0 &&
			    strcmp(optarg, "per-connection") != 0) {
				fprintf(stderr,
					"gitpubsub-frontend: --mode is 'multiplexed' or "
					"'per-connection', not '%s'\n",
					optarg);
				return -1;
			}
			o->mode = optarg;
			break;
		case 'w':
			if (parse_workers(optarg, &o->workers) < 0) {
				fprintf(stderr,
					"gitpubsub-frontend: --workers is a number from 0 to %u\n",
					MAX_WORKERS);
				return -1;
			}
			o->workers_set = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("gitpubsub-frontend " GPS_VERSION "\n");
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	return 0;
}

/* The configuration, with the command line's overrides, and the trusted peers; false when it
 * cannot be read (logged). */
static bool configure(struct frontend *fe, const struct options *o)
{
	char why[256];

	if (config_read(o->config, &fe->cfg) < 0)
		return false;
	if (o->ring)
		(void)snprintf(fe->cfg.ring_name, sizeof(fe->cfg.ring_name), "%s", o->ring);
	if (o->socket)
		(void)snprintf(fe->cfg.socket_path, sizeof(fe->cfg.socket_path), "%s", o->socket);
	if (o->mode)
		(void)snprintf(fe->cfg.frontend_mode, sizeof(fe->cfg.frontend_mode), "%s", o->mode);
	if (o->workers_set)
		fe->cfg.workers = o->workers;
	ring_set_owner(fe->cfg.ring_owner); /* shm/ring.h section 1 */
	fe->trust = malloc(sizeof(*fe->trust));
	if (!fe->trust) {
		log_error("unable to check peers against trustedPeers: out of memory; trusting "
			  "nobody");
	} else if (trust_parse(fe->cfg.trusted_peers, fe->trust, why, sizeof(why)) < 0) {
		log_error("trustedPeers: %s; trusting nobody", why);
		free(fe->trust);
		fe->trust = NULL;
	}
	return true;
}

int main(int argc, char **argv)
{
	static struct frontend fe;
	struct options o = { 0 };
	int n;

	log_open(argv[0]);
	n = parse_options(argc, argv, &o);
	if (n != 0)
		return n > 0 ? 0 : 2;
	(void)signal(SIGPIPE, SIG_IGN); /* EPIPE from a write is the client leaving */
	/* The connection is ours to the end, whatever becomes of the listener that spawned us:
	 * systemd-socket-activate gives its children PR_SET_PDEATHSIG, and it exits when accept()
	 * or fork() fails (fd or process limit), which would end every open stream with it. */
	(void)prctl(PR_SET_PDEATHSIG, 0);
	if (!configure(&fe, &o))
		return 1;

	n = listen_fds();
	if (n < 0) {
		log_error("unable to read LISTEN_PID/LISTEN_FDS: %s", strerror(-n));
		return 1;
	}
	if (n > 1) {
		log_error("got %d sockets from systemd; expected one (a connection or a listener)",
			  n);
		return 1;
	}
	if (n == 1 && socket_kind(LISTEN_FDS_START) == SOCKET_LISTENER) {
		if (strcmp(fe.cfg.frontend_mode, "multiplexed") == 0)
			return supervise(&fe, LISTEN_FDS_START, worker_count(&fe.cfg));
		int fd = listen_fork(&fe, LISTEN_FDS_START);

		if (fd < 0) {
			log_error("unable to accept connections: %s", strerror(-fd));
			return 1;
		}
		return serve_one(&fe, fd, false);
	}
	if (n == 1 && socket_kind(LISTEN_FDS_START) != SOCKET_CONNECTION) {
		log_error("fd 3 is neither a connected nor a listening stream socket");
		return 1;
	}
	if (n == 0 && socket_kind(STDIN_FILENO) != SOCKET_CONNECTION) {
		log_error("no connection: stdin is not a connected stream socket; run me from "
			  "systemd or inetd");
		return 1;
	}
	return serve_one(&fe, n == 1 ? LISTEN_FDS_START : STDIN_FILENO, true);
}
