/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/trust.h"

/*
 * Longest entry we look at: an IPv6 address in its longest text form (INET6_ADDRSTRLEN is 46
 * with the NUL, e.g. "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") plus "/128". Anything
 * longer cannot be valid, so it is refused before any copy.
 */
#define TRUST_ENTRY_MAX (INET6_ADDRSTRLEN + 8)

/* How much of a bad entry an error message quotes: enough to recognise it. */
#define TRUST_QUOTE_MAX 64

/* The first 12 bytes of an IPv4-mapped IPv6 address (RFC 4291 2.5.5.2): ::ffff:a.b.c.d */
static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Clear every bit of addr (len bytes) past the first prefix bits. */
static void trust_mask(uint8_t *addr, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned bit = (unsigned)i * 8;

		if (bit >= prefix)
			addr[i] = 0;
		else if (prefix - bit < 8)
			addr[i] &= (uint8_t)(0xffU << (8 - (prefix - bit)));
	}
}

/* Whether the first prefix bits of a and b are equal. */
static bool trust_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	size_t whole = prefix / 8;
	unsigned rest = prefix % 8;
	uint8_t mask;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xffU << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/*
 * One decimal number of at most maxdigits digits and no leading zero (inet_pton refuses "01"
 * too, so patterns and addresses agree). 0 or -EINVAL.
 */
_must_check_ static int trust_parse_uint(const char *s, size_t maxdigits, unsigned *ret)
{
	unsigned v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (!isdigit((unsigned char)s[i]) || i >= maxdigits)
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (i == 0 || (i > 1 && s[0] == '0'))
		return -EINVAL;
	*ret = v;
	return 0;
}

/*
 * A dotted IPv4 pattern: four parts, the leading ones octets, the trailing ones '*', at least
 * one '*' (the caller saw one). "192.168.0.*" is 192.168.0.0/24, "*.*.*.*" is 0.0.0.0/0.
 * s is modified. 0, or -EINVAL with *why set.
 */
_must_check_ static int trust_parse_pattern(char *s, struct trust_entry *e, const char **why)
{
	unsigned nparts = 0, noctets = 0;
	char *part, *save = NULL;
	bool star = false;

	/* strtok_r would merge "1..2" into two parts; empty parts must be refused */
	for (part = s;; part = save + 1) {
		unsigned v;

		save = strchr(part, '.');
		if (save)
			*save = '\0';
		if (++nparts > 4) {
			*why = "a pattern has four parts";
			return -EINVAL;
		}
		if (strcmp(part, "*") == 0) {
			star = true;
		} else if (star) {
			*why = "only trailing octets of a pattern may be '*'";
			return -EINVAL;
		} else if (trust_parse_uint(part, 3, &v) < 0 || v > 255) {
			*why = "not an IPv4 pattern like '192.168.0.*'";
			return -EINVAL;
		} else {
			e->addr[noctets++] = (uint8_t)v;
		}
		if (!save)
			break;
	}
	if (nparts != 4) {
		*why = "a pattern has four parts";
		return -EINVAL;
	}
	e->family = 4;
	e->prefix = (uint8_t)(noctets * 8);
	return 0;
}

/* Parse one entry (len bytes at tok, no whitespace) into *e. 0, or -EINVAL with *why set. */
_must_check_ static int trust_parse_entry(const char *tok, size_t len, struct trust_entry *e,
					  const char **why)
{
	char buf[TRUST_ENTRY_MAX];
	char *slash;
	unsigned maxprefix, prefix;

	if (len >= sizeof(buf)) {
		*why = "too long for an address";
		return -EINVAL;
	}
	memcpy(buf, tok, len);
	buf[len] = '\0';
	memset(e, 0, sizeof(*e));

	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';

	if (strchr(buf, '*')) {
		if (slash) {
			*why = "a '*' pattern takes no prefix length";
			return -EINVAL;
		}
		return trust_parse_pattern(buf, e, why);
	}

	if (inet_pton(AF_INET, buf, e->addr) == 1) {
		e->family = 4;
		maxprefix = 32;
	} else if (inet_pton(AF_INET6, buf, e->addr) == 1) {
		e->family = 6;
		maxprefix = 128;
	} else {
		*why = "not an IPv4 or IPv6 address, CIDR block or IPv4 pattern";
		return -EINVAL;
	}

	prefix = maxprefix;
	if (slash) {
		int err = trust_parse_uint(slash + 1, 3, &prefix);

		/* "/08" is refused by trust_parse_uint; "/0" is the only number led by a zero */
		if (err < 0 || prefix > maxprefix) {
			*why = e->family == 4 ? "prefix length must be 0-32"
					      : "prefix length must be 0-128";
			return -EINVAL;
		}
	}
	e->prefix = (uint8_t)prefix;
	/* host bits past the prefix ("10.1.2.3/8") are allowed and simply do not count */
	trust_mask(e->addr, e->family == 4 ? 4 : 16, prefix);
	return 0;
}

int trust_parse(const char *list, struct trust *ret, char *err, size_t errlen)
{
	struct trust t;
	const char *p = list;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!list || !ret) {
		if (err && errlen > 0)
			(void)snprintf(err, errlen, "no list of trusted peers");
		return -EINVAL;
	}

	t.n = 0;
	for (;;) {
		const char *tok, *why = NULL;
		size_t len;

		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		tok = p;
		while (*p != '\0' && !isspace((unsigned char)*p))
			p++;
		len = (size_t)(p - tok);

		if (t.n >= TRUST_MAX) {
			if (err && errlen > 0)
				(void)snprintf(
					err, errlen, "more than %d entries, starting at '%.*s'",
					TRUST_MAX, (int)MIN(len, (size_t)TRUST_QUOTE_MAX), tok);
			return -EINVAL;
		}
		if (trust_parse_entry(tok, len, &t.e[t.n], &why) < 0) {
			if (err && errlen > 0)
				(void)snprintf(err, errlen, "bad entry '%.*s': %s",
					       (int)MIN(len, (size_t)TRUST_QUOTE_MAX), tok, why);
			return -EINVAL;
		}
		t.n++;
	}

	ret->n = t.n;
	memcpy(ret->e, t.e, t.n * sizeof(t.e[0]));
	return 0;
}

/*
 * An IPv4 peer has two spellings: a.b.c.d on an AF_INET socket and ::ffff:a.b.c.d on a
 * dual-stack AF_INET6 one, and which one a frontend sees depends only on how its socket was
 * opened. So both kinds of peer are checked in both spellings: the IPv4 form against the IPv4
 * entries, the mapped IPv6 form against the IPv6 entries. The answer then never depends on
 * the socket: "127.0.0.1" and "::ffff:127.0.0.1" trust the same peer, and "::/0" (which covers
 * ::ffff:0:0/96) trusts IPv4 peers as well as IPv6 ones, as it would on a dual-stack socket.
 * O(n) in entries; n is at most TRUST_MAX and this runs once per publish.
 */
bool trust_check(const struct trust *t, const struct sockaddr *sa, socklen_t len)
{
	uint8_t v4[4], v6[16];
	bool has_v4 = false;

	if (!t || !sa)
		return false;

	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		if (len < sizeof(sin))
			return false;
		memcpy(&sin, sa, sizeof(sin));
		memcpy(v4, &sin.sin_addr, sizeof(v4));
		memcpy(v6, v4mapped_prefix, sizeof(v4mapped_prefix));
		memcpy(v6 + sizeof(v4mapped_prefix), v4, sizeof(v4));
		has_v4 = true;
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		if (len < sizeof(sin6))
			return false;
		memcpy(&sin6, sa, sizeof(sin6));
		memcpy(v6, &sin6.sin6_addr, sizeof(v6));
		if (memcmp(v6, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
			memcpy(v4, v6 + sizeof(v4mapped_prefix), sizeof(v4));
			has_v4 = true;
		}
	} else {
		return false;
	}

	for (size_t i = 0; i < t->n && i < TRUST_MAX; i++) {
		const struct trust_entry *e = &t->e[i];

		if (e->family == 4 && has_v4 && e->prefix <= 32 &&
		    trust_prefix_equal(e->addr, v4, e->prefix))
			return true;
		if (e->family == 6 && e->prefix <= 128 &&
		    trust_prefix_equal(e->addr, v6, e->prefix))
			return true;
	}
	return false;
}

/* Entry e as an IPv6 block: an IPv4 entry as the IPv4-mapped block of its addresses. */
static void trust_as_v6(const struct trust_entry *e, uint8_t addr[16], unsigned *ret_prefix)
{
	if (e->family == 4) {
		memcpy(addr, v4mapped_prefix, sizeof(v4mapped_prefix));
		memcpy(addr + sizeof(v4mapped_prefix), e->addr, 4);
		*ret_prefix = 96u + MIN(e->prefix, 32u);
	} else {
		memcpy(addr, e->addr, 16);
		*ret_prefix = MIN(e->prefix, 128u);
	}
}

bool trust_overlap(const struct trust_entry *a, const struct trust_entry *b)
{
	uint8_t va[16], vb[16];
	unsigned pa, pb;

	if (!a || !b)
		return false;
	trust_as_v6(a, va, &pa);
	trust_as_v6(b, vb, &pb);
	/* two blocks share an address exactly when the wider one holds the other's start */
	return trust_prefix_equal(va, vb, MIN(pa, pb));
}
