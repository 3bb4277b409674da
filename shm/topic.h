/* SPDX-License-Identifier: MIT */
#ifndef GPS_SHM_TOPIC_H
#define GPS_SHM_TOPIC_H

/*
 * Topics (PROTOCOL 2) and their stored form in the ring (shm/ring.h, section 2).
 *
 * A request target's path is split on '/', empty segments dropped, %XX decoded inside each
 * segment. The stored form of a published topic is its decoded segments joined by one NUL byte:
 * "/json/git/x%2Fy" is "json\0git\0x/y", "/" is "" (zero bytes). Publishers cannot put NUL or
 * another control byte in a topic (PROTOCOL 2.5), so the form is unambiguous.
 *
 * A subscription is a pattern: its segments, each literal or "*" (any one segment); one
 * trailing "*" is dropped since it matches zero or more segments, which a prefix match does
 * anyway (PROTOCOL 2.3). A message matches when the pattern's segments are a prefix of its own.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/* Longest target path we take apart: 64 KiB, past any sane maxTargetSize (default 8 KiB). */
#define TOPIC_MAX_BYTES ((size_t)64 * 1024)

/*
 * The path of target[0..len): origin-form "/a/b?q" or absolute-form "http://host/a/b" (the
 * authority is skipped); the query is dropped. *ret_path and *ret_len point into target.
 */
void topic_target_path(const char *target, size_t len, const char **ret_path, size_t *ret_len);

/*
 * Turn a publish target into the stored form in out (capacity outcap: len bytes always
 * suffice). Returns the stored length, or -EINVAL for a '*' segment, an invalid %-escape, or a
 * NUL or control byte (0x00-0x1F, 0x7F), raw or escaped (PROTOCOL 2.5); -ENOBUFS if outcap is
 * too small.
 */
_must_check_ long topic_publish_parse(const char *target, size_t len, uint8_t *out, size_t outcap);

/* The value of hex digit c (either case), or -1: for %-escapes, and bench/loadgen's chunk
 * sizes. */
int topic_hex_value(char c);

/* Whether stored[0..len) is a well-formed stored topic: what the broker accepts. */
bool topic_stored_valid(const uint8_t *stored, size_t len);

struct topic_seg {
	uint32_t off; /* in topic_pattern.bytes */
	uint32_t len;
	bool any; /* "*": matches any one segment */
};

struct topic_pattern {
	uint32_t nseg;
	bool never; /* a segment holds a NUL: no stored topic can match */
	struct topic_seg seg[TOPIC_MAX_BYTES / 2];
	uint8_t bytes[TOPIC_MAX_BYTES];
};

/* Parse a subscription target into *ret (large: keep it static or on the heap). 0, or
 * -EINVAL for an invalid %-escape, -ENOBUFS for a path over TOPIC_MAX_BYTES. */
_must_check_ int topic_pattern_parse(const char *target, size_t len, struct topic_pattern *ret);

/* Whether the stored topic[0..len) is covered by the pattern (PROTOCOL 2.2-2.4). */
bool topic_match(const struct topic_pattern *p, const uint8_t *topic, size_t len);

/* Write the stored topic as a path ("/a/b", with '%', '/', '?', '#', space and control bytes
 * inside a segment escaped) into buf; returns the length it needs (like snprintf). */
size_t topic_format(const uint8_t *stored, size_t len, char *buf, size_t cap);

#endif
