/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_TRUST_H
#define GPS_COMMON_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/macro.h"

/*
 * Trusted peers (PROTOCOL 5). Entries: an address ("127.0.0.1", "::1"), a CIDR block
 * ("10.0.0.0/8", "fd00::/8"), or a dotted IPv4 pattern whose trailing octets are '*'
 * ("192.168.0.*" is 192.168.0.0/24; "10.*.*.*" is 10.0.0.0/8). An IPv4-mapped IPv6 peer
 * (::ffff:a.b.c.d) is checked as its IPv4 address.
 */

#define TRUST_MAX 256 /* entries; a list longer than this is a configuration error */

struct trust_entry {
	uint8_t family; /* 4 or 6 */
	uint8_t prefix; /* bits that must match: 0-32 or 0-128 */
	uint8_t addr[16];
};

struct trust {
	size_t n;
	struct trust_entry e[TRUST_MAX];
};

/*
 * Parse a whitespace-separated list into *ret. 0, or -EINVAL with a one-line reason naming the
 * first bad entry in err (errlen bytes, NUL-terminated); *ret is untouched on failure.
 */
_must_check_ int trust_parse(const char *list, struct trust *ret, char *err, size_t errlen);

/* Whether the socket address sa (AF_INET or AF_INET6) matches an entry. */
bool trust_check(const struct trust *t, const struct sockaddr *sa, socklen_t len);

/*
 * Whether some peer would match both entries a and b, by trust_check()'s rules (an IPv4 entry
 * also covers the IPv4-mapped spelling of its addresses, "::/0" covers IPv4 peers): what
 * gpsctl check asks of a trusted entry and a reverse proxy's ([Clients] proxies).
 */
bool trust_overlap(const struct trust_entry *a, const struct trust_entry *b);

#endif
