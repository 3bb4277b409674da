/* SPDX-License-Identifier: MIT */
/*
 * What a frontend's connection brings in (common/proto.h): one request datagram and the
 * descriptors that came with it. The one a request may carry is the memfd of a body over
 * PROTO_INLINE_MAX; every other is closed here, at once, and the request refused with its
 * reason, so that no frontend can fill the broker's file table (issue 14, item 4).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker.h"

/* Descriptors one received datagram may bring in: one is all a request carries (the memfd of
 * a large body); a few more fit so that a request carrying several is seen, each closed and
 * the request refused. Past these the kernel closes them itself (MSG_CTRUNC). */
#define RECV_FDS_ROOM 4

/* Close the descriptors of a SCM_RIGHTS control message cm but the first, which is returned
 * (-1 if cm holds none). *ret_n: how many cm held. */
static int take_first_fd(const struct cmsghdr *cm, size_t *ret_n)
{
	size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
	int first = -1;

	for (size_t i = 0; i < n; i++) {
		int fd;

		memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
		if (i == 0)
			first = fd;
		else
			(void)close(fd);
	}
	*ret_n = n;
	return first;
}

/*
 * The descriptors received with a datagram (mh, as recvmsg() left it): *ret_body_fd is the
 * one a request may carry, or -1; every other one is closed here, and the answer says what
 * came. The control buffer has room for RECV_FDS_ROOM: past that the kernel closes them
 * itself and sets MSG_CTRUNC (as it does when it cannot install one: EMFILE).
 */
static enum req_fds collect_fds(struct msghdr *mh, int *ret_body_fd)
{
	size_t total = 0;

	*ret_body_fd = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n;
		int fd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		fd = take_first_fd(cm, &n);
		total += n;
		if (fd < 0)
			continue;
		if (*ret_body_fd < 0)
			*ret_body_fd = fd;
		else
			(void)close(fd);
	}
	if (total > 1 || (total == 1 && (mh->msg_flags & MSG_CTRUNC))) {
		if (*ret_body_fd >= 0)
			(void)close(*ret_body_fd);
		*ret_body_fd = -1;
		return REQ_FDS_MANY;
	}
	/* no other control message is enabled on the socket (no SO_PASSCRED, SO_PASSSEC):
	 * truncated control data with no descriptor is one the kernel could not install */
	if (total == 0 && (mh->msg_flags & MSG_CTRUNC))
		return REQ_FDS_DROPPED;
	return REQ_FDS_OK;
}

/*
 * Receive one request datagram from fd into b->dgram: its size (> 0), 0 when none waits, or
 * -errno (-ECONNRESET: the frontend went away). *ret_body_fd is the memfd passed with it, or -1;
 * *ret_fds what came (collect_fds); *ret_trunc says the datagram did not fit.
 */
ssize_t broker_recv_request(struct broker *b, int fd, int *ret_body_fd, enum req_fds *ret_fds,
			    bool *ret_trunc)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(RECV_FDS_ROOM * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = b->dgram, .iov_len = b->dgram_cap };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;

	*ret_body_fd = -1;
	*ret_fds = REQ_FDS_OK;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	*ret_fds = collect_fds(&mh, ret_body_fd);
	if (n == 0) {
		/* the frontend went away; or sent an empty datagram, which no frontend does */
		if (*ret_body_fd >= 0)
			(void)close(*ret_body_fd);
		*ret_body_fd = -1;
		return -ECONNRESET;
	}
	*ret_trunc = (mh.msg_flags & MSG_TRUNC) != 0;
	return n;
}

/*
 * Why the descriptors that came with request req (collect_fds: fds, body_fd) are not the one it
 * calls for, with the status in *ret_status; NULL when they are. The memfd of a body larger
 * than PROTO_INLINE_MAX is the only one: a request with another, or with one it does not call
 * for, is refused (and the descriptor closed by the caller).
 */
const char *broker_fds_refusal(enum req_fds fds, int body_fd, const struct proto_req *req,
			       uint32_t *ret_status)
{
	*ret_status = 400;
	if (fds == REQ_FDS_MANY)
		return "more than one file descriptor with a request";
	if (fds == REQ_FDS_DROPPED) {
		*ret_status = 503;
		return "the broker is out of file descriptors; try again";
	}
	if (body_fd >= 0 && req->body_len <= PROTO_INLINE_MAX)
		return "a file descriptor the request does not call for";
	if (body_fd < 0 && req->body_len > PROTO_INLINE_MAX)
		return "a large body without its memfd";
	/* a memfd (shmem) answers F_GET_SEALS: its pread never waits on a pipe, a socket or a
	 * slow file system */
	if (body_fd >= 0 && fcntl(body_fd, F_GET_SEALS) < 0)
		return "the body's file descriptor is not a memfd";
	return NULL;
}
