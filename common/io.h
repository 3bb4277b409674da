/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_IO_H
#define GPS_COMMON_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/macro.h"

/*
 * EINTR is retried here and nowhere else. Every function returns >= 0 on success and -errno on
 * failure; a timeout set with SO_SNDTIMEO/SO_RCVTIMEO shows up as -EAGAIN.
 */

/* One read(2): bytes read (0 at end of file) or -errno. */
_must_check_ ssize_t io_read(int fd, void *buf, size_t len);
/* Write all of buf: 0, or -errno (what was written before the error is lost to the caller). */
_must_check_ int io_write_full(int fd, const void *buf, size_t len);
/* writev(2) until every iovec is written; iov is modified. 0 or -errno. */
_must_check_ int io_writev_full(int fd, struct iovec *iov, int iovcnt);
/* Read exactly len bytes at offset: 0, -EIO at a short file, or -errno. */
_must_check_ int io_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* poll(2) one fd for events with a timeout in ms (-1: none): revents, 0 at timeout, -errno. */
_must_check_ int io_poll1(int fd, short events, int timeout_ms);
_must_check_ int io_set_nonblock(int fd, bool on);

/* CLOCK_MONOTONIC and CLOCK_REALTIME in microseconds. */
uint64_t io_now_mono_us(void);
uint64_t io_now_real_us(void);

#endif
