/* SPDX-License-Identifier: MIT */
#ifndef GPS_FRONTEND_LOOP_H
#define GPS_FRONTEND_LOOP_H

/*
 * The event loop under the frontend, in the shape of Redis's ae.c: it knows file descriptors and
 * timers and calls function pointers; it never names a client. One loop serves one connection
 * (inetd, Accept=yes, a forked child) or thousands (a multiplexed worker): the code above it is
 * the same.
 *
 * Timers come in classes of one fixed period each (the header deadline, the body deadline, the
 * keepalive tick, ...). A timer armed in a class expires period after it was armed, so a class's
 * timers expire in the order they were armed: each class is a FIFO list, arming is an append and
 * the next expiry is the first entry, all O(1) (libev's "constant timeouts" trick). Nothing ever
 * scans the connections.
 */

#include <stdbool.h>
#include <stdint.h>

#include "common/macro.h"

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct loop;
struct loop_io;
struct timer;

typedef void (*loop_io_fn)(struct loop *l, struct loop_io *io, uint32_t events);
typedef void (*timer_fn)(struct loop *l, struct timer *t);

/* A watched descriptor, embedded in its owner (container_of finds the owner). */
struct loop_io {
	int fd;		 /* -1 while not watched */
	uint32_t events; /* EPOLL* asked for */
	loop_io_fn fn;
};

/* A timer, embedded in its owner; linked into its class's FIFO while armed. */
struct timer {
	struct timer *prev, *next; /* NULL while disarmed */
	uint64_t due_us;	   /* monotonic */
	timer_fn fn;
};

enum timer_class {
	TIMER_HEADER,	 /* a request head must be complete ([Limits] headerTimeout) */
	TIMER_BODY,	 /* a request body must be complete ([Limits] bodyTimeout) */
	TIMER_KEEPALIVE, /* a stream's keepalive tick ([Stream] keepalive) */
	TIMER_BROKER,	 /* the broker must answer a batch of publishes (PROTOCOL 4.6) */
	TIMER_LINGER,	 /* after an error, how long we read what the client still sends */
	TIMER_RETRY,	 /* short pauses: re-attaching a replaced ring, a full fd table */
	TIMER_SOON,	 /* period 0: once the loop is done with this round of events */
	TIMER_TOKENS,	 /* a worker's look at whether [Clients] tokensFile changed */
	TIMER_NCLASSES,
};

struct timer_fifo {
	struct timer head; /* sentinel of a circular list */
	uint64_t period_us;
};

struct loop {
	int epfd;
	struct timer_fifo fifo[TIMER_NCLASSES];
	uint64_t now_us; /* monotonic time of the last wake-up: what timers are armed from */
};

/* Create the loop; periods in us per class. 0 or -errno. */
_must_check_ int loop_init(struct loop *l, const uint64_t period_us[TIMER_NCLASSES]);
void loop_done(struct loop *l);

/* Watch fd for events (EPOLL*), calling fn; 0 or -errno. */
_must_check_ int loop_add(struct loop *l, struct loop_io *io, int fd, uint32_t events,
			  loop_io_fn fn);
/* Change what io watches; 0 or -errno. No call when nothing changes. */
_must_check_ int loop_mod(struct loop *l, struct loop_io *io, uint32_t events);
/* Stop watching (before the fd is closed); accepts an io that is not watched. */
void loop_del(struct loop *l, struct loop_io *io);

/* Arm t in class c (disarming it first): it fires period_us from now. */
void timer_arm(struct loop *l, struct timer *t, enum timer_class c, timer_fn fn);
/* Disarm; accepts a disarmed timer. */
void timer_disarm(struct timer *t);
static inline bool timer_armed(const struct timer *t)
{
	return t->next != NULL;
}

/* Milliseconds until the next timer is due (0 if one is due), or -1 when none is armed;
 * at most cap_ms when cap_ms >= 0. */
int loop_timeout_ms(const struct loop *l, int cap_ms);
/* Update l->now_us and run every timer that is due. */
void loop_run_timers(struct loop *l);
/* Wait up to timeout_ms (-1: until an event) for events and dispatch them, then run the due
 * timers. 0 or -errno (not -EINTR). */
_must_check_ int loop_once(struct loop *l, int timeout_ms);

#endif
