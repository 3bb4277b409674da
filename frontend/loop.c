/* SPDX-License-Identifier: MIT */
/* The frontend's event loop: epoll and FIFO timer classes (frontend/loop.h). */
#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/io.h"
#include "frontend/loop.h"

/* Events taken from the kernel per epoll_wait: enough that a busy worker seldom needs two
 * calls, small enough for the stack. */
#define LOOP_EVENTS 256

int loop_init(struct loop *l, const uint64_t period_us[TIMER_NCLASSES])
{
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	for (int c = 0; c < TIMER_NCLASSES; c++) {
		struct timer_fifo *f = &l->fifo[c];

		f->head.prev = f->head.next = &f->head;
		f->period_us = period_us[c];
	}
	l->now_us = io_now_mono_us();
	return 0;
}

void loop_done(struct loop *l)
{
	if (l->epfd >= 0)
		(void)close(l->epfd);
	l->epfd = -1;
}

int loop_add(struct loop *l, struct loop_io *io, int fd, uint32_t events, loop_io_fn fn)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	io->fd = fd;
	io->events = events;
	io->fn = fn;
	return 0;
}

int loop_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = io };

	if (io->fd < 0 || io->events == events)
		return 0;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

void loop_del(struct loop *l, struct loop_io *io)
{
	if (io->fd < 0)
		return;
	(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->fd = -1;
}

void timer_disarm(struct timer *t)
{
	if (!t->next)
		return;
	t->prev->next = t->next;
	t->next->prev = t->prev;
	t->prev = t->next = NULL;
}

void timer_arm(struct loop *l, struct timer *t, enum timer_class c, timer_fn fn)
{
	struct timer_fifo *f = &l->fifo[c];

	timer_disarm(t);
	/* now, not the round's start: a deadline counts from the event that armed it (a connection
	 * accepted late in a long round), and times only grow, so the class stays in order */
	l->now_us = io_now_mono_us();
	t->due_us = l->now_us + f->period_us;
	t->fn = fn;
	t->prev = f->head.prev;
	t->next = &f->head;
	f->head.prev->next = t;
	f->head.prev = t;
}

int loop_timeout_ms(const struct loop *l, int cap_ms)
{
	uint64_t now = io_now_mono_us(), due = UINT64_MAX;
	uint64_t ms;

	for (int c = 0; c < TIMER_NCLASSES; c++) {
		const struct timer *first = l->fifo[c].head.next;

		if (first != &l->fifo[c].head && first->due_us < due)
			due = first->due_us;
	}
	if (due == UINT64_MAX)
		return cap_ms;
	ms = due > now ? (due - now + 999) / 1000 : 0;
	if (cap_ms >= 0 && ms > (uint64_t)cap_ms)
		ms = (uint64_t)cap_ms;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

void loop_run_timers(struct loop *l)
{
	l->now_us = io_now_mono_us();
	for (int c = 0; c < TIMER_NCLASSES; c++) {
		struct timer_fifo *f = &l->fifo[c];

		/* A callback may re-arm its timer (it goes to the back, due later) or disarm
		 * others: take the first entry afresh each time. */
		while (f->head.next != &f->head && f->head.next->due_us <= l->now_us) {
			struct timer *t = f->head.next;

			timer_disarm(t);
			t->fn(l, t);
		}
	}
}

int loop_once(struct loop *l, int timeout_ms)
{
	struct epoll_event ev[LOOP_EVENTS];
	int n = epoll_wait(l->epfd, ev, LOOP_EVENTS, timeout_ms);

	if (n < 0 && errno != EINTR)
		return -errno;
	l->now_us = io_now_mono_us();
	for (int i = 0; i < n; i++) {
		struct loop_io *io = ev[i].data.ptr;

		/* A callback may have stopped watching a descriptor whose event is still in
		 * ev[] (one connection closing another's): loop_del set its fd to -1. */
		if (io->fd >= 0)
			io->fn(l, io, ev[i].events);
	}
	loop_run_timers(l);
	return 0;
}
