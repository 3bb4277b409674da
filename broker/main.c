/* SPDX-License-Identifier: MIT */
/*
 * gitpubsub-broker: the single writer of the history ring.
 *
 * One epoll loop: the local socket where frontends hand over publishes (common/proto.h), a
 * signalfd for SIGTERM/SIGINT, and a timerfd that expires old messages once a second. Each
 * publish is validated (broker/json.h), appended (shm/ring.h) and only then answered, so a 200
 * always means "in the ring".
 *
 * Cluster mode ([Cluster] nats, broker/cluster.h): a validated publish goes to the JetStream
 * stream instead, and is answered once JetStream acknowledged it and this node's ring holds it
 * (consumed back from the stream, which is the only way into the ring then). Answers wait in
 * struct pending, in request order, since a frontend pairs replies with requests by order.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "broker/broker.h"
#include "common/config.h"
#include "common/io.h"
#include "common/log.h"
#include "common/proto.h"
#include "shm/ring.h"
#include "shm/topic.h"

#define MAX_EVENTS	64
#define LISTEN_BACKLOG	512 /* a reconnect storm of frontends must not see ECONNREFUSED */
#define EXPIRE_PERIOD_S 1   /* how often age retention runs */
/* Requests taken from one frontend before the others get their turn: enough for a publisher's
 * whole pipeline in one wake-up of the readers, few enough that no frontend waits long. */
#define REQUEST_BATCH	64
/* A frontend's connection in epoll data: its fd, and whether its last request was refused. The
 * broker's own fds (listener, signals, timer) are registered with data.u64 = fd too. */
#define CONN_FD_MASK	UINT64_C(0xffffffff)
#define CONN_REFUSED	(UINT64_C(1) << 32)
/* Out of descriptors, the listener is left alone this long: a frontend waiting to be accepted
 * makes its socket readable until accepted, so watching it would wake the loop without end
 * (100% CPU). Ten tries a second cost nothing, and one comes soon after a descriptor frees. */
#define ACCEPT_PAUSE_MS 100

/* what the wire may carry must fit the ring's index fields */
_Static_assert(PROTO_MAX_TOPIC <= RING_MAX_TOPIC, "a stored topic fits ring_idx.topic_len");
_Static_assert(PROTO_MAX_ID <= RING_MAX_ID, "a message id fits ring_idx.id_len");

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: gitpubsub-broker [OPTIONS]\n"
		"\n"
		"The single writer of GitPubSub's history ring: takes publishes from frontends on a\n"
		"local socket, validates them, appends them to the shared-memory ring and wakes the\n"
		"subscribers' frontends.\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   configuration file (default " CONFIG_DEFAULT_PATH ";\n"
		"                      a missing default file means built-in defaults)\n"
		"  -r, --ring NAME     shared-memory ring name (default: [History] ring, " CONFIG_DEFAULT_RING
		")\n"
		"  -s, --socket PATH   local socket for frontends (default: [Broker] socket,\n"
		"                      " CONFIG_DEFAULT_SOCKET ")\n"
		"      --ready-fd N    write a newline to fd N once ready, then close it (s6 style)\n"
		"      --recreate      replace an existing ring of another size or version\n"
		"                      (its history is lost)\n"
		"      --check-config  validate the configuration, print the effective one, exit\n"
		"  -v, --verbose       log more (repeatable);  -q, --quiet  log less\n"
		"  -h, --help          this text;  -V, --version  the version\n"
		"\n"
		"Environment: GITPUBSUB_LOG_LEVEL (error, warning, notice, info, debug).\n"
		"Readiness is also signalled with sd_notify(READY=1) under systemd.\n"
		"Exit status: 0 after SIGTERM or SIGINT, 1 on a runtime failure, 2 on a usage error.\n");
}

int broker_send_resp(int fd, const struct proto_resp *r)
{
	ssize_t n = send(fd, r, sizeof(*r), MSG_NOSIGNAL | MSG_DONTWAIT);

	if (n != (ssize_t)sizeof(*r))
		return n < 0 ? -errno : -EIO;
	return 0;
}

/* Cluster mode: a slot for the next answer on fd, in request order; NULL when MAX_PENDING wait. */
struct pending *broker_pend_push(struct broker *b, int fd)
{
	struct pending *p;

	if (b->pend_next - b->pend_first >= MAX_PENDING)
		return NULL;
	p = &b->pend[b->pend_next++ % MAX_PENDING];
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	return p;
}

/* An answer: at once on one machine; in cluster mode after the earlier ones on fd. */
static int answer(struct broker *b, int fd, const struct proto_resp *r)
{
	struct pending *p;

	if (!b->cl)
		return broker_send_resp(fd, r);
	p = broker_pend_push(b, fd);
	if (!p)
		return -ENOBUFS;
	p->state = PEND_DONE;
	p->resp = *r;
	return 0;
}

/* A refusal: status and the one-line reason the publisher sees. */
static int reply(struct broker *b, int fd, uint32_t status, const char *reason)
{
	struct proto_resp r = { .magic = PROTO_MAGIC, .status = status };

	(void)snprintf(r.reason, sizeof(r.reason), "%s", reason);
	return answer(b, fd, &r);
}

/* A 200: message seq of the current ring, published at time_us. */
static int reply_stored(struct broker *b, int fd, uint64_t seq, uint64_t time_us, uint32_t flags)
{
	struct proto_resp r = { .magic = PROTO_MAGIC,
				.status = 200,
				.seq = seq,
				.time_us = time_us,
				.generation = b->w.r.generation,
				.flags = flags,
				.reason = "Message sent!" };

	return answer(b, fd, &r);
}

/*
 * README 4.7: whether the message id[0..len) (hash h) is held within the window; if so, answer
 * with the original message and return 1 (or <0 if the reply failed). The body of a repeat is
 * not even read: the id names the message.
 */
static int reply_if_duplicate(struct broker *b, int fd, const uint8_t *id, size_t len, uint64_t h)
{
	const struct ring *r = &b->w.r;
	uint64_t seq, t;
	int err;

	msgid_expire_ring(&b->ids, r, io_now_real_us(), b->msgid_window_us);
	seq = msgid_lookup(&b->ids, r, id, len, h);
	if (seq == 0)
		return 0;
	t = atomic_load_explicit(&r->idx[seq & r->idx_mask].time_us, memory_order_relaxed);
	b->duplicates++;
	log_debug("message id '%.*s' repeats seq %llu: not stored again", (int)len,
		  (const char *)id, (unsigned long long)seq);
	err = reply_stored(b, fd, seq, t, PROTO_RESP_DUPLICATE);
	return err < 0 ? err : 1;
}

/*
 * Append b->msg[0..len) with its id and topic to the ring at time now_us (0: the ring clock) and
 * remember the id (README 4.7). The one way into the ring, on one machine and in a cluster.
 */
int broker_store(struct broker *b, const uint8_t *id, uint32_t id_len, const uint8_t *topic,
		 uint32_t topic_len, uint32_t len, uint64_t now_us, uint64_t *ret_seq,
		 uint64_t *ret_time_us)
{
	uint64_t seq, t;
	int err = ring_publish_id(&b->w, id, id_len, topic, topic_len, (const uint8_t *)b->msg, len,
				  now_us, &seq, &t);

	if (err < 0)
		return err;
	b->published++;
	if (id_len && b->msgid_window_us) {
		/* first forget what the append evicted: it frees the hash slot seq reuses */
		msgid_expire_ring(&b->ids, &b->w.r, t, b->msgid_window_us);
		msgid_insert(&b->ids, msgid_hash(&b->ids, id, id_len), seq);
	}
	if (log_get_level() >= LOG_DEBUG) {
		char path[256];
		(void)topic_format(topic, topic_len, path, sizeof(path));
		log_debug("stored seq %llu to '%s', %u bytes", (unsigned long long)seq, path, len);
	}
	*ret_seq = seq;
	*ret_time_us = t;
	return 0;
}

/* The parts of a request datagram of n bytes (common/proto.h), or false when it is malformed. */
static bool parse_request(const struct broker *b, size_t n, bool trunc, struct proto_req *req,
			  const uint8_t **ret_id, const uint8_t **ret_topic, const char **ret_body)
{
	uint64_t inline_len;

	if (trunc || n < sizeof(*req))
		return false;
	memcpy(req, b->dgram, sizeof(*req));
	*ret_id = b->dgram + sizeof(*req);
	*ret_topic = *ret_id + req->id_len;
	/* a body inline after the topic, or (larger) in a memfd: broker_fds_refusal() */
	inline_len = req->body_len > PROTO_INLINE_MAX ? 0 : req->body_len;
	if (req->magic != PROTO_MAGIC || req->id_len > PROTO_MAX_ID ||
	    (uint64_t)req->id_len + req->topic_len + inline_len != (uint64_t)n - sizeof(*req))
		return false;
	*ret_body = (const char *)*ret_topic + req->topic_len;
	return true;
}

/* A body json_normalize() refused with err: PROTOCOL 4.3's answer, or the limit it passed
 * (broker/json.h says why each is where it is; README, "Limits"). */
static int reply_json_refused(struct broker *b, int fd, int err)
{
	char why[PROTO_MAX_REASON];

	switch (err) {
	case -ELOOP:
		(void)snprintf(why, sizeof(why), "JSON nests deeper than %u levels",
			       JSON_MAX_DEPTH);
		return reply(b, fd, 400, why);
	case -E2BIG:
		(void)snprintf(why, sizeof(why), "JSON has more than %u values", JSON_MAX_TOKENS);
		return reply(b, fd, 400, why);
	case -EFBIG:
		return reply(b, fd, 413, "body larger than JSON validation takes (2 GiB)");
	default:
		return reply(b, fd, 400, "Invalid JSON data posted :(");
	}
}

/* A publish refused after its deadline: logged at most once a second (a stalled broker may
 * find a whole backlog of them), with how many since the last line. */
static void note_late(struct broker *b, uint64_t late_us)
{
	const uint64_t now = io_now_mono_us();

	b->late++;
	if (b->late_logged && now - b->late_log_us < 1000000u)
		return;
	log_warning(
		"%llu publish(es) came after their frontend's deadline (the last %llu ms late): "
		"not stored, their publishers were answered 503",
		(unsigned long long)(b->late - b->late_logged),
		(unsigned long long)(late_us / 1000u));
	b->late_logged = b->late;
	b->late_log_us = now;
}

/*
 * Check, validate and store one parsed request, answering it: what handle_request() does once
 * the datagram is in. *ok says whether it was stored (or found stored: a repeated id). The
 * answer's -errno, or 0.
 */
static int store_request(struct broker *b, int fd, const struct proto_req *req, const uint8_t *id,
			 const uint8_t *topic, const char *body, int body_fd, bool *ok)
{
	uint64_t seq, t;
	ssize_t mlen;
	int err;

	if (!topic_stored_valid(topic, req->topic_len))
		return reply(b, fd, 400, "invalid topic");
	if (req->id_len && !proto_id_valid(id, req->id_len))
		return reply(b, fd, 400, "invalid X-Message-Id");
	if (req->id_len && b->msgid_window_us) {
		err = reply_if_duplicate(b, fd, id, req->id_len,
					 msgid_hash(&b->ids, id, req->id_len));
		*ok = err > 0;
		if (err != 0)
			return err;
	}
	if (req->body_len > b->cfg.max_body)
		return reply(b, fd, 413, "body larger than the limit");
	if (body_fd >= 0) {
		err = io_pread_full(body_fd, b->body, (size_t)req->body_len, 0);
		if (err < 0) {
			log_warning("unable to read a published body: %s", strerror(-err));
			return reply(b, fd, 400, "unable to read the body");
		}
		body = b->body;
	}
	mlen = json_normalize(b->json, body, (size_t)req->body_len, b->msg, b->cfg.max_body);
	if (mlen < 0) {
		b->refused++;
		return reply_json_refused(b, fd, (int)mlen);
	}
	if (RING_MAX_RECORD(b->w.r.data_size) <
	    (uint64_t)req->id_len + req->topic_len + (size_t)mlen)
		return reply(b, fd, 413, "message larger than the history ring can hold");
	/* common/proto.h, deadlines: the frontend has answered 503 by now, so it must not be
	 * stored; checked last, right before the append, to leave the smallest window */
	if (req->deadline_us && io_now_mono_us() > req->deadline_us) {
		note_late(b, io_now_mono_us() - req->deadline_us);
		return reply(b, fd, 503, "not stored: the server answered too late; try again");
	}
	if (b->cl) {
		*ok = true; /* not known yet: what is chained after it is sent along (README) */
		return replica_publish(b, fd, id, req->id_len, topic, req->topic_len,
				       (uint32_t)mlen);
	}
	/* now_us 0: the ring reads the clock inside its stamp window (shm/ring.h, writer a) */
	err = broker_store(b, id, req->id_len, topic, req->topic_len, (uint32_t)mlen, 0, &seq, &t);
	if (err < 0) {
		log_error("unable to append to the ring: %s", strerror(-err));
		return reply(b, fd, 503, "unable to store the message");
	}
	*ok = true;
	return reply_stored(b, fd, seq, t, 0);
}

/*
 * Read one request on fd, handle it, answer it: 1 done, 0 none was waiting, <0 drop the
 * connection. *refused says whether the last request on fd was refused: in and out, since a
 * chained request after a refused one is refused unread (common/proto.h, PROTO_REQ_CHAINED).
 */
static int handle_request(struct broker *b, int fd, bool *refused)
{
	struct proto_req req;
	const uint8_t *topic = NULL, *id = NULL;
	const char *body = NULL, *why;
	enum req_fds fds;
	int body_fd, err;
	uint32_t status;
	bool ok = false, trunc = false;
	ssize_t n = broker_recv_request(b, fd, &body_fd, &fds, &trunc);

	if (n <= 0)
		return (int)n;
	if (!parse_request(b, (size_t)n, trunc, &req, &id, &topic, &body)) {
		err = reply(b, fd, 400, "malformed request to the broker");
	} else if ((why = broker_fds_refusal(fds, body_fd, &req, &status))) {
		log_warning("refusing a request from a frontend: %s", why);
		err = reply(b, fd, status, why);
	} else if ((req.flags & PROTO_REQ_CHAINED) && *refused) {
		/* RFC 9112 9.6: after the answer that closes the connection, nothing more of it is
		 * processed; the frontend had sent this one along before it knew */
		err = reply(b, fd, 400, "not stored: a request before it was refused");
	} else {
		err = store_request(b, fd, &req, id, topic, body, body_fd, &ok);
	}
	if (body_fd >= 0)
		(void)close(body_fd);
	*refused = !ok;
	return err < 0 ? err : 1;
}

/*
 * Every request waiting on fd, up to REQUEST_BATCH, each answered as soon as it is stored. The
 * readers are woken once, after the whole loop (serve), so a frontend that pipelines its
 * publishes makes one wake-up for all of them, and its answers do not wait behind it.
 */
static int handle_requests(struct broker *b, uint64_t conn)
{
	const int fd = (int)(conn & CONN_FD_MASK);
	const bool was_refused = conn & CONN_REFUSED;
	bool refused = was_refused;
	int err = 0;

	for (int i = 0; i < REQUEST_BATCH && err >= 0; i++) {
		err = handle_request(b, fd, &refused);
		if (err == 0)
			break;
	}
	if (err >= 0 && refused != was_refused) {
		/* remembered across rounds: the rest of a pipeline may come in the next one */
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = (uint64_t)fd | (refused ? CONN_REFUSED : 0) };

		if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
			return -errno;
	}
	return err < 0 ? err : 0;
}

void broker_signal_ready(int ready_fd)
{
	(void)sd_notify(0, "READY=1\nSTATUS=Accepting publishes");
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "\n", 1);
		(void)close(ready_fd);
	}
}

static int peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	return cred.uid == 0 || cred.uid == geteuid();
}

/*
 * Out of descriptors: stop watching the listener for ACCEPT_PAUSE_MS (serve() resumes it), so
 * the frontend that waits to be accepted does not wake the loop again at once. Said once per
 * shortage; watching the other descriptors goes on, and each one that closes makes room.
 */
static void pause_accepting(struct broker *b, int err)
{
	struct epoll_event ev = { .events = 0, .data.u64 = (uint64_t)b->lfd };

	if (b->accept_pauses++ == 0)
		log_warning("unable to accept a frontend: %s; trying again every %d ms until "
			    "a descriptor frees",
			    strerror(err), ACCEPT_PAUSE_MS);
	if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, b->lfd, &ev) < 0)
		log_warning("unable to pause watching the listener: %s", strerror(errno));
	b->accept_resume_us = io_now_mono_us() + ACCEPT_PAUSE_MS * UINT64_C(1000);
}

/* The pause is over: watch the listener again. */
static void resume_accepting(struct broker *b)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)b->lfd };

	b->accept_resume_us = 0;
	if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, b->lfd, &ev) < 0)
		log_warning("unable to watch the listener again: %s", strerror(errno));
}

/* serve()'s epoll timeout: the cluster's tick or none, shortened to the end of a pause. */
static int loop_timeout_ms(const struct broker *b)
{
	int ms = b->cl ? CLUSTER_TICK_MS : -1;
	uint64_t now;

	if (!b->accept_resume_us)
		return ms;
	now = io_now_mono_us();
	if (now >= b->accept_resume_us)
		return 0;
	/* + 1: epoll_wait rounds down, and waking before the end would only wait again */
	return (int)MIN((b->accept_resume_us - now) / 1000u + 1u, ms < 0 ? INT_MAX : (uint64_t)ms);
}

static void accept_clients(struct broker *b)
{
	for (;;) {
		struct epoll_event ev = { .events = EPOLLIN };
		int fd = accept4(b->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0 &&
		    (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)) {
			pause_accepting(b, errno);
			return;
		}
		if (fd < 0 && errno == EAGAIN && b->accept_pauses) {
			/* every frontend that waited is in: the shortage is over */
			log_notice("accepted every waiting frontend, after %llu pauses without a "
				   "free descriptor",
				   (unsigned long long)b->accept_pauses);
			b->accept_pauses = 0;
		}
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warning("unable to accept a frontend: %s", strerror(errno));
			return;
		}
		if (!peer_allowed(fd)) {
			log_warning("refusing a local client of another user");
			(void)close(fd);
			continue;
		}
		ev.data.u64 = (uint64_t)fd;
		if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			log_warning("unable to watch a frontend: %s", strerror(errno));
			(void)close(fd);
		}
	}
}

static int open_listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	char *slash;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	memcpy(dir, path, strlen(path) + 1);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path); /* a stale socket from a broker that died */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		int err = -errno;
		(void)close(fd);
		return err;
	}
	return fd;
}

static int setup_fds(struct broker *b)
{
	struct itimerspec its = { .it_interval = { EXPIRE_PERIOD_S, 0 },
				  .it_value = { EXPIRE_PERIOD_S, 0 } };
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	b->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	b->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->sigfd < 0 || b->timerfd < 0 || b->epfd < 0)
		return -errno;
	if (timerfd_settime(b->timerfd, 0, &its, NULL) < 0)
		return -errno;
	ev.data.u64 = (uint64_t)b->lfd;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->lfd, &ev) < 0)
		return -errno;
	ev.data.u64 = (uint64_t)b->sigfd;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->sigfd, &ev) < 0)
		return -errno;
	ev.data.u64 = (uint64_t)b->timerfd;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->timerfd, &ev) < 0)
		return -errno;
	return 0;
}

/* The loop; returns at SIGTERM/SIGINT. */
static int serve(struct broker *b)
{
	struct epoll_event evs[MAX_EVENTS];

	for (;;) {
		int n = epoll_wait(b->epfd, evs, MAX_EVENTS, loop_timeout_ms(b));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (b->accept_resume_us && io_now_mono_us() >= b->accept_resume_us) {
			resume_accepting(b);
			/* at once: the last one waiting may be gone, and with it the event that
			 * would end the shortage (accept_clients says so at EAGAIN) */
			accept_clients(b);
		}
		for (int i = 0; i < n; i++) {
			int fd = (int)(evs[i].data.u64 & CONN_FD_MASK);

			if (fd == b->lfd) {
				accept_clients(b);
			} else if (fd == b->sigfd) {
				struct signalfd_siginfo si;
				if (read(fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
					continue;
				if (si.ssi_signo == SIGHUP) {
					log_notice("SIGHUP: nothing to reload; restart to apply a "
						   "new configuration");
					continue;
				}
				log_info("signal %u: shutting down after %llu publishes, %llu "
					 "repeated message ids and %llu refused as too late",
					 si.ssi_signo, (unsigned long long)b->published,
					 (unsigned long long)b->duplicates,
					 (unsigned long long)b->late);
				return 0;
			} else if (fd == b->timerfd) {
				uint64_t ticks, gone;
				if (read(fd, &ticks, sizeof(ticks)) < 0)
					continue;
				gone = ring_expire(&b->w, io_now_real_us());
				if (b->msgid_window_us)
					msgid_expire_ring(&b->ids, &b->w.r, io_now_real_us(),
							  b->msgid_window_us);
				if (gone)
					log_debug("expired %llu messages older than the retention",
						  (unsigned long long)gone);
			} else if (b->cl && fd == cluster_fd(b->cl)) {
				continue; /* below, every round */
			} else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				if (handle_requests(b, evs[i].data.u64) < 0) {
					(void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
					(void)close(fd);
					if (b->cl)
						replica_forget(b, fd);
				}
			}
		}
		if (b->cl) {
			int err = replica_round(b);

			if (err < 0)
				return err;
		}
		/* step g of shm/ring.h section 5, once for everything this round stored */
		ring_wake_flush(&b->w);
	}
}

/* What main allocates before it opens the ring; freed on the early exits too (LeakSanitizer
 * makes a leak at exit a failure, and a start-up refusal must exit 1, not abort). */
static void free_buffers(struct broker *b)
{
	json_validator_free(b->json);
	free(b->body);
	free(b->msg);
	free(b->dgram);
	msgid_free(&b->ids); /* allocated after the ring opens; harmless before */
}

/* What the command line asks. */
struct options {
	const char *config, *ring, *socket;
	int ready_fd;
	int verbosity;
	bool recreate, check_only;
};

/* Read the command line into o: 0 to go on, 1 when done (help or version printed: exit 0),
 * -1 on a usage error (said: exit 2). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ring", required_argument, NULL, 'r' },
		{ "socket", required_argument, NULL, 's' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "recreate", no_argument, NULL, 'X' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:r:s:vqhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'r':
			o->ring = optarg;
			break;
		case 's':
			o->socket = optarg;
			break;
		case 'R': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1023) {
				log_error("invalid --ready-fd '%s'", optarg);
				return -1;
			}
			o->ready_fd = (int)v;
			break;
		}
		case 'X':
			o->recreate = true;
			break;
		case 'C':
			o->check_only = true;
			break;
		case 'v':
			o->verbosity++;
			break;
		case 'q':
			o->verbosity--;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("gitpubsub-broker " GPS_VERSION "\n");
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* The buffers of one request; false (logged) when out of memory. */
static bool alloc_buffers(struct broker *b)
{
	b->json = json_validator_new();
	b->body = malloc(b->cfg.max_body + 1);
	b->msg = malloc(b->cfg.max_body + 1);
	b->dgram_cap = sizeof(struct proto_req) + PROTO_MAX_ID + PROTO_MAX_TOPIC + PROTO_INLINE_MAX;
	b->dgram = malloc(b->dgram_cap);
	if (b->json && b->body && b->msg && b->dgram)
		return true;
	log_error("unable to allocate buffers: out of memory");
	return false;
}

/* A ring or statistics object that is not the service's (shm/ring.h section 1). */
static void log_ring_refusal(const char *ring_name)
{
	char why[1024];

	(void)ring_refusal(ring_name, why, sizeof(why));
	log_error("refusing ring '%s': %s", ring_name, why);
}

/* Create or attach the ring (shm/ring.h section 1); false when it cannot be used (logged). */
static bool open_ring(struct broker *b, struct ring_params *rp)
{
	bool created;
	int err;

	rp->stream_time = b->cfg.nats[0] != '\0'; /* shm/ring.h section 8 */
	rp->data_size = b->cfg.ring_size;
	rp->retention_us = b->cfg.retention_s * 1000000u;
	err = ring_writer_open(b->cfg.ring_name, rp, &b->w, &created);
	if (err == -EEXIST || err == -EPROTO)
		log_error("ring '%s' exists with another size or version, or is corrupt (%s); "
			  "start once with --recreate to replace it (its history is lost)",
			  b->cfg.ring_name, strerror(-err));
	else if (err == -EBUSY)
		log_error("ring '%s' is in use by another broker", b->cfg.ring_name);
	else if (err == -ENOSPC)
		/* posix_fallocate at creation (shm/ring.h section 1): refused now, not SIGBUS later */
		log_error("unable to create ring '%s': no space left in /dev/shm for %llu KiB of "
			  "history; free some there or lower [History] ringSize",
			  b->cfg.ring_name, (unsigned long long)(rp->data_size >> 10));
	else if (err == -EPERM)
		log_ring_refusal(b->cfg.ring_name);
	else if (err < 0)
		log_error("unable to open ring '%s': %s", b->cfg.ring_name, strerror(-err));
	if (err < 0)
		return false;
	if (b->w.replaced_version)
		log_warning(
			"ring '%s' was of version %u, an older GitPubSub's that this one cannot "
			"read: replaced by a version %u ring, its history is lost",
			b->cfg.ring_name, b->w.replaced_version, RING_VERSION);
	b->rp = *rp;
	if (RING_MAX_RECORD(b->w.r.data_size) < b->cfg.max_body + PROTO_MAX_TOPIC)
		log_warning("ringSize %llu holds messages of at most %llu bytes, less than "
			    "maxBodySize %llu: larger bodies will get 413",
			    (unsigned long long)b->w.r.data_size,
			    (unsigned long long)RING_MAX_RECORD(b->w.r.data_size),
			    (unsigned long long)b->cfg.max_body);
	b->w.defer_wake = true; /* serve() wakes the readers once per round */
	log_info("%s ring '%s': %llu bytes of messages, %llu index entries, head %llu",
		 created ? "created" : "attached to", b->cfg.ring_name,
		 (unsigned long long)b->w.r.data_size, (unsigned long long)b->w.r.nidx,
		 (unsigned long long)ring_head(&b->w.r));
	return true;
}

/* The message-id table, rebuilt from the ring (README 4.7: a repeat must be caught even if the
 * original came before a restart); false (logged) when out of memory. */
static bool load_message_ids(struct broker *b)
{
	uint64_t t0 = io_now_mono_us(), n;
	int err;

	b->msgid_window_us = b->cfg.msgid_window_s * 1000000U;
	if (!b->msgid_window_us)
		return true;
	err = msgid_init(&b->ids, b->w.r.nidx);
	if (err < 0) {
		log_error("unable to allocate the message id table: %s", strerror(-err));
		return false;
	}
	n = msgid_rebuild(&b->ids, &b->w.r, io_now_real_us(), b->msgid_window_us);
	log_info("message ids: %llu held from the last %llu s, found in %llu us",
		 (unsigned long long)n, (unsigned long long)b->cfg.msgid_window_s,
		 (unsigned long long)(io_now_mono_us() - t0));
	return true;
}

/* Listen, set up the loop (and the cluster), and say ready; false (logged) on failure. */
static bool start(struct broker *b, int ready_fd)
{
	int err;

	b->lfd = open_listener(b->cfg.socket_path);
	if (b->lfd < 0) {
		log_error("unable to listen on '%s': %s", b->cfg.socket_path, strerror(-b->lfd));
		return false;
	}
	err = setup_fds(b);
	if (err == 0 && b->cfg.nats[0])
		err = replica_setup(b);
	if (err < 0) {
		log_error("unable to set up the event loop: %s", strerror(-err));
		return false;
	}
	(void)ring_expire(&b->w, io_now_real_us());
	b->ready_fd = -1;
	if (b->cl) {
		/* ready once the ring caught up with the stream (cluster_events) */
		b->ready_fd = ready_fd;
		b->ready_deadline_us = io_now_mono_us() + (uint64_t)CATCHUP_MAX_MS * 1000u;
		log_info("listening on '%s', catching up with stream '%s'", b->cfg.socket_path,
			 b->cfg.stream);
	} else {
		log_info("ready on '%s'", b->cfg.socket_path);
		broker_signal_ready(ready_fd);
	}
	return true;
}

/* Release everything b holds (any part may be missing). */
static void teardown(struct broker *b)
{
	cluster_stop(b->cl);
	free(b->pend);
	free(b->fd_mark);
	ring_stats_detach(b->stats);
	if (b->w.r.hdr)
		ring_writer_close(&b->w);
	free_buffers(b); /* and the message-id table */
}

int main(int argc, char **argv)
{
	struct broker b = { .epfd = -1, .lfd = -1, .sigfd = -1, .timerfd = -1 };
	struct options o = { .ready_fd = -1 };
	struct ring_params rp = { 0 };
	int err;

	log_open(argv[0]);
	err = parse_options(argc, argv, &o);
	if (err != 0)
		return err > 0 ? 0 : 2;
	if (o.verbosity)
		log_set_level(log_get_level() + o.verbosity);
	if (config_read(o.config, &b.cfg) < 0)
		return 1;
	if (o.ring)
		(void)snprintf(b.cfg.ring_name, sizeof(b.cfg.ring_name), "%s", o.ring);
	if (o.socket)
		(void)snprintf(b.cfg.socket_path, sizeof(b.cfg.socket_path), "%s", o.socket);
	if (o.check_only) {
		config_write(&b.cfg, stdout);
		return 0;
	}
	ring_set_owner(b.cfg.ring_owner); /* shm/ring.h section 1 */
	if (b.cfg.nats[0] && !replica_stream_name_valid(b.cfg.stream)) {
		log_error("invalid [Cluster] stream '%s': letters, digits, '-' and '_' only",
			  b.cfg.stream);
		return 1;
	}
	rp.recreate = o.recreate;
	if (!alloc_buffers(&b) || !open_ring(&b, &rp) || !load_message_ids(&b) ||
	    !start(&b, o.ready_fd)) {
		teardown(&b);
		return 1;
	}
	err = serve(&b);
	(void)sd_notify(0, "STOPPING=1");
	(void)unlink(b.cfg.socket_path);
	teardown(&b);
	if (err < 0) {
		log_error("event loop failed: %s", strerror(-err));
		return 1;
	}
	return 0;
}
