/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_PROTO_H
#define GPS_COMMON_PROTO_H

/*
 * The broker's local socket: how frontends (and trusted local tools) hand it a publish.
 *
 * An AF_UNIX SOCK_SEQPACKET socket ([Broker] socket, mode 0660 in a directory only the service
 * user can enter): the kernel keeps message boundaries, so neither side reassembles anything.
 * The broker accepts a connection only from its own uid or root (SO_PEERCRED); any other peer is
 * closed at once.
 *
 * Request: one datagram, struct proto_req then the stored topic (shm/topic.h), with one file
 * descriptor in SCM_RIGHTS: a memfd holding the body at offset 0. Passing the body as a memfd
 * keeps a 2 MiB body out of the socket buffers (one write into the memfd, one pread in the
 * broker) and the datagram small whatever the body size.
 * Reply: one datagram, struct proto_resp, sent only after the message is in the ring (status
 * 200) or was refused. One connection carries any number of request/reply pairs, in order.
 */

#include <stdint.h>

#define PROTO_MAGIC	 UINT32_C(0x31535047) /* "GPS1" */
#define PROTO_MAX_TOPIC	 (64u * 1024u)	      /* bytes of stored topic in a request */
#define PROTO_MAX_REASON 120u

struct proto_req {
	uint32_t magic;	    /* PROTO_MAGIC */
	uint32_t topic_len; /* bytes of stored topic following this struct */
	uint64_t body_len;  /* bytes of body in the memfd */
};

struct proto_resp {
	uint32_t magic;	 /* PROTO_MAGIC */
	uint32_t status; /* an HTTP status: 200, 400 (JSON or topic), 413, 500, 503 */
	uint64_t seq;	 /* 200: the message's sequence number */
	uint64_t time_us; /* 200: its publish time, CLOCK_REALTIME microseconds */
	char reason[PROTO_MAX_REASON]; /* NUL-terminated one line for the response body */
};

#endif
