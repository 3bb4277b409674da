/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "common/trust.h"
#include "tests/tap.h"

/* Bytes of a struct trust_entry address that count for a family. */
#define ADDR_LEN(family) ((family) == 4 ? 4u : 16u)

struct parse_case {
	const char *list;
	int rc;
	size_t n;	       /* entries, when rc == 0 */
	uint8_t family;	       /* of the first entry, when n > 0 */
	uint8_t prefix;	       /* of the first entry */
	const char *addr;      /* the first entry's address after masking */
	const char *err_names; /* what the error must quote, when rc < 0 */
};

static const struct parse_case parse_cases[] = {
	/* addresses */
	{ "127.0.0.1", 0, 1, 4, 32, "127.0.0.1", NULL },
	{ "::1", 0, 1, 6, 128, "::1", NULL },
	{ "255.255.255.255", 0, 1, 4, 32, "255.255.255.255", NULL },
	{ "::ffff:127.0.0.1", 0, 1, 6, 128, "::ffff:127.0.0.1", NULL },
	{ "2001:db8::42", 0, 1, 6, 128, "2001:db8::42", NULL },
	/* CIDR blocks, host bits masked */
	{ "10.0.0.0/8", 0, 1, 4, 8, "10.0.0.0", NULL },
	{ "10.1.2.3/8", 0, 1, 4, 8, "10.0.0.0", NULL },
	{ "192.168.1.77/20", 0, 1, 4, 20, "192.168.0.0", NULL },
	{ "1.2.3.4/32", 0, 1, 4, 32, "1.2.3.4", NULL },
	{ "0.0.0.0/0", 0, 1, 4, 0, "0.0.0.0", NULL },
	{ "9.9.9.9/0", 0, 1, 4, 0, "0.0.0.0", NULL },
	{ "fd00::/8", 0, 1, 6, 8, "fd00::", NULL },
	{ "fd12:3456::1/16", 0, 1, 6, 16, "fd12::", NULL },
	{ "febf::1/10", 0, 1, 6, 10, "fe80::", NULL },
	{ "::/0", 0, 1, 6, 0, "::", NULL },
	{ "::1/128", 0, 1, 6, 128, "::1", NULL },
	{ "::ffff:10.9.8.7/104", 0, 1, 6, 104, "::ffff:10.0.0.0", NULL },
	/* patterns */
	{ "192.168.0.*", 0, 1, 4, 24, "192.168.0.0", NULL },
	{ "192.168.*.*", 0, 1, 4, 16, "192.168.0.0", NULL },
	{ "10.*.*.*", 0, 1, 4, 8, "10.0.0.0", NULL },
	{ "*.*.*.*", 0, 1, 4, 0, "0.0.0.0", NULL },
	/* lists */
	{ "", 0, 0, 0, 0, NULL, NULL },
	{ "   \t\n  ", 0, 0, 0, 0, NULL, NULL },
	{ "127.0.0.1 ::1", 0, 2, 4, 32, "127.0.0.1", NULL },
	{ "  10.0.0.0/8\t\t192.168.0.*\n::1  ", 0, 3, 4, 8, "10.0.0.0", NULL },
	/* refused */
	{ "192.168.0", -EINVAL, 0, 0, 0, NULL, "'192.168.0'" },
	{ "1.2.3.4.5", -EINVAL, 0, 0, 0, NULL, "'1.2.3.4.5'" },
	{ "10.*.0.1", -EINVAL, 0, 0, 0, NULL, "'10.*.0.1'" },
	{ "*.168.0.1", -EINVAL, 0, 0, 0, NULL, "'*.168.0.1'" },
	{ "192.168.*", -EINVAL, 0, 0, 0, NULL, "'192.168.*'" },
	{ "192.168..*", -EINVAL, 0, 0, 0, NULL, "'192.168..*'" },
	{ "1.2.3.4.*", -EINVAL, 0, 0, 0, NULL, "'1.2.3.4.*'" },
	{ "192.168.256.*", -EINVAL, 0, 0, 0, NULL, "'192.168.256.*'" },
	{ "192.168.01.*", -EINVAL, 0, 0, 0, NULL, "'192.168.01.*'" },
	{ "1.2.3.4*", -EINVAL, 0, 0, 0, NULL, "'1.2.3.4*'" },
	{ "**.*.*.*", -EINVAL, 0, 0, 0, NULL, "'**.*.*.*'" },
	{ "*", -EINVAL, 0, 0, 0, NULL, "'*'" },
	{ "192.168.0.*/24", -EINVAL, 0, 0, 0, NULL, "'192.168.0.*/24'" },
	{ "example.com", -EINVAL, 0, 0, 0, NULL, "'example.com'" },
	{ "localhost", -EINVAL, 0, 0, 0, NULL, "'localhost'" },
	{ "256.1.1.1", -EINVAL, 0, 0, 0, NULL, "'256.1.1.1'" },
	{ "10.0.0.0/33", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/33'" },
	{ "::/129", -EINVAL, 0, 0, 0, NULL, "'::/129'" },
	{ "10.0.0.0/", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/'" },
	{ "10.0.0.0/-1", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/-1'" },
	{ "10.0.0.0/+8", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/+8'" },
	{ "10.0.0.0/08", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/08'" },
	{ "10.0.0.0/8/8", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/8/8'" },
	{ "10.0.0.0/a", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/a'" },
	{ "/8", -EINVAL, 0, 0, 0, NULL, "'/8'" },
	{ "10.0.0.0/ 8", -EINVAL, 0, 0, 0, NULL, "'10.0.0.0/'" },
	{ "::1%lo", -EINVAL, 0, 0, 0, NULL, "'::1%lo'" },
	{ "fe80:::1", -EINVAL, 0, 0, 0, NULL, "'fe80:::1'" },
	{ "127.0.0.1 bogus ::1", -EINVAL, 0, 0, 0, NULL, "'bogus'" },
	{ "127.0.0.1,::1", -EINVAL, 0, 0, 0, NULL, "'127.0.0.1,::1'" },
	{ "00000000000000000000000000000000000000000000000000000000000000000000000001.2.3.4",
	  -EINVAL, 0, 0, 0, NULL, "too long" },
};

/* s with tabs and newlines spelled out, so a TAP test name stays on one line. */
static const char *printable(const char *s)
{
	static char buf[256];
	size_t o = 0;

	for (; *s && o + 3 < sizeof(buf); s++) {
		if (*s == '\n' || *s == '\t') {
			buf[o++] = '\\';
			buf[o++] = *s == '\n' ? 'n' : 't';
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return buf;
}

static void test_parse_table(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(parse_cases); i++) {
		const struct parse_case *pc = &parse_cases[i];
		struct trust t;
		char err[256], name[256];
		int rc;

		(void)snprintf(name, sizeof(name), "%s", printable(pc->list));

		memset(&t, 0xa5, sizeof(t));
		t.n = 999;
		rc = trust_parse(pc->list, &t, err, sizeof(err));
		is(rc, pc->rc, "parse '%s' returns %d", name, pc->rc);
		if (pc->rc < 0) {
			is(t.n, 999, "parse '%s' leaves *ret untouched", name);
			ok(strstr(err, pc->err_names) != NULL, "parse '%s' error names %s", name,
			   pc->err_names);
			if (!strstr(err, pc->err_names))
				diag("  error was '%s'", err);
			continue;
		}
		if (rc < 0)
			continue;
		is(t.n, pc->n, "parse '%s' gives %zu entries", name, pc->n);
		if (pc->n == 0 || t.n == 0)
			continue;
		{
			uint8_t want[16] = { 0 };
			int fam = pc->family == 4 ? AF_INET : AF_INET6;

			if (inet_pton(fam, pc->addr, want) != 1)
				diag("  bad test address '%s'", pc->addr);
			ok(t.e[0].family == pc->family && t.e[0].prefix == pc->prefix &&
				   memcmp(t.e[0].addr, want, ADDR_LEN(pc->family)) == 0,
			   "parse '%s' first entry is %s/%u (v%u)", name, pc->addr, pc->prefix,
			   pc->family);
			if (t.e[0].family != pc->family || t.e[0].prefix != pc->prefix)
				diag("  got family %u prefix %u", t.e[0].family, t.e[0].prefix);
		}
	}
}

/* A list of n IPv4 addresses 10.0.x.y. */
static void make_list(char *buf, size_t size, unsigned n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < n && off < size; i++) {
		int w = snprintf(buf + off, size - off, "10.0.%u.%u ", i / 256, i % 256);

		if (w < 0)
			break;
		off += (size_t)w;
	}
}

static void test_parse_limits(void)
{
	static struct trust t;
	static char list[TRUST_MAX * 16 + 64];
	char err[128], tiny[8];

	make_list(list, sizeof(list), TRUST_MAX);
	is(trust_parse(list, &t, err, sizeof(err)), 0, "exactly TRUST_MAX entries are accepted");
	is(t.n, TRUST_MAX, "all TRUST_MAX entries are kept");
	ok(t.e[TRUST_MAX - 1].addr[2] == (TRUST_MAX - 1) / 256 &&
		   t.e[TRUST_MAX - 1].addr[3] == (TRUST_MAX - 1) % 256,
	   "the last entry is the last address listed");

	make_list(list, sizeof(list), TRUST_MAX + 1);
	t.n = 7;
	is(trust_parse(list, &t, err, sizeof(err)), -EINVAL, "TRUST_MAX + 1 entries are refused");
	is(t.n, 7, "too many entries leave *ret untouched");
	ok(strstr(err, "more than 256") != NULL, "the error says there are too many (%s)", err);

	is(trust_parse("bogus", &t, NULL, 0), -EINVAL, "a NULL error buffer is allowed");
	memset(tiny, 'x', sizeof(tiny));
	is(trust_parse("bogus", &t, tiny, sizeof(tiny)), -EINVAL, "a tiny error buffer is allowed");
	ok(memchr(tiny, '\0', sizeof(tiny)) != NULL, "a tiny error buffer is NUL-terminated");
	is(trust_parse(NULL, &t, err, sizeof(err)), -EINVAL, "a NULL list is refused");
	err[0] = 'x';
	is(trust_parse("::1", &t, err, sizeof(err)), 0, "success returns 0");
	is(err[0], '\0', "success leaves an empty error");
}

struct check_case {
	const char *list;
	const char *peer; /* "1.2.3.4" is an AF_INET peer, anything with ':' an AF_INET6 one */
	bool want;
};

static const struct check_case check_cases[] = {
	{ "127.0.0.1 ::1", "127.0.0.1", true },
	{ "127.0.0.1 ::1", "127.0.0.2", false },
	{ "127.0.0.1 ::1", "::1", true },
	{ "127.0.0.1 ::1", "::2", false },
	{ "127.0.0.1 ::1", "::ffff:127.0.0.1", true },
	{ "127.0.0.1 ::1", "::ffff:127.0.0.2", false },
	{ "127.0.0.1", "::127.0.0.1", false }, /* IPv4-compatible is not IPv4-mapped */
	{ "127.0.0.1", "::1", false },
	{ "::1", "127.0.0.1", false },
	{ "10.0.0.0/8", "10.255.255.255", true },
	{ "10.0.0.0/8", "10.0.0.0", true },
	{ "10.0.0.0/8", "11.0.0.0", false },
	{ "10.0.0.0/8", "9.255.255.255", false },
	{ "10.0.0.0/8", "::ffff:10.1.2.3", true },
	{ "10.0.0.0/8", "::ffff:11.1.2.3", false },
	{ "10.1.2.3/8", "10.200.0.1", true },
	{ "192.168.0.0/23", "192.168.1.255", true },
	{ "192.168.0.0/23", "192.168.2.0", false },
	{ "1.2.3.4/32", "1.2.3.4", true },
	{ "1.2.3.4/32", "1.2.3.5", false },
	{ "0.0.0.0/0", "203.0.113.9", true },
	{ "0.0.0.0/0", "::ffff:8.8.8.8", true },
	{ "0.0.0.0/0", "::1", false },
	{ "0.0.0.0/0", "2001:db8::1", false },
	{ "::/0", "2001:db8::1", true },
	{ "::/0", "::1", true },
	{ "::/0", "::ffff:1.2.3.4", true },
	{ "::/0", "1.2.3.4", true }, /* same answer as on a dual-stack socket */
	{ "2001:db8::1/128", "2001:db8::1", true },
	{ "2001:db8::1/128", "2001:db8::2", false },
	{ "2001:db8::/32", "2001:db8:ffff::1", true },
	{ "2001:db8::/32", "2001:db9::", false },
	{ "fe80::/10", "febf::1", true },
	{ "fe80::/10", "fec0::1", false },
	{ "192.168.0.*", "192.168.0.200", true },
	{ "192.168.0.*", "192.168.1.1", false },
	{ "192.168.0.*", "::ffff:192.168.0.5", true },
	{ "192.168.*.*", "192.168.77.1", true },
	{ "192.168.*.*", "192.169.0.1", false },
	{ "10.*.*.*", "10.9.9.9", true },
	{ "10.*.*.*", "100.9.9.9", false },
	{ "*.*.*.*", "203.0.113.9", true },
	{ "*.*.*.*", "::ffff:203.0.113.9", true },
	{ "*.*.*.*", "2001:db8::1", false },
	{ "::ffff:10.0.0.0/104", "10.2.3.4", true }, /* a mapped entry trusts the IPv4 peer */
	{ "::ffff:10.0.0.0/104", "::ffff:10.2.3.4", true },
	{ "::ffff:10.0.0.0/104", "11.0.0.1", false },
	{ "::ffff:127.0.0.1", "127.0.0.1", true },
	{ "", "127.0.0.1", false },
	{ "", "::1", false },
	{ "10.0.0.0/8 2001:db8::/32", "2001:db8::7", true },
	{ "10.0.0.0/8 2001:db8::/32", "10.3.3.3", true },
	{ "10.0.0.0/8 2001:db8::/32", "192.0.2.1", false },
};

static bool check_peer(const struct trust *t, const char *peer)
{
	struct sockaddr_in6 sin6;
	struct sockaddr_in sin;

	if (strchr(peer, ':')) {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(40000);
		if (inet_pton(AF_INET6, peer, &sin6.sin6_addr) != 1)
			diag("  bad test address '%s'", peer);
		return trust_check(t, (const struct sockaddr *)&sin6, sizeof(sin6));
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	if (inet_pton(AF_INET, peer, &sin.sin_addr) != 1)
		diag("  bad test address '%s'", peer);
	return trust_check(t, (const struct sockaddr *)&sin, sizeof(sin));
}

static void test_check_table(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(check_cases); i++) {
		const struct check_case *cc = &check_cases[i];
		struct trust t;
		char err[128];

		if (trust_parse(cc->list, &t, err, sizeof(err)) < 0) {
			ok(0, "parse '%s' for check: %s", cc->list, err);
			continue;
		}
		is(check_peer(&t, cc->peer), cc->want, "'%s' %s peer %s", cc->list,
		   cc->want ? "trusts" : "does not trust", cc->peer);
	}
}

static void test_check_odd(void)
{
	struct trust t;
	struct sockaddr_in sin;
	struct sockaddr_un sun;
	char err[128];

	if (trust_parse("0.0.0.0/0 ::/0", &t, err, sizeof(err)) < 0)
		diag("  unexpected: %s", err);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ok(!trust_check(&t, (const struct sockaddr *)&sun, sizeof(sun)),
	   "an AF_UNIX peer is never trusted, even by 0.0.0.0/0 ::/0");

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok(trust_check(&t, (const struct sockaddr *)&sin, sizeof(sin)), "127.0.0.1 full length");
	ok(!trust_check(&t, (const struct sockaddr *)&sin, sizeof(sin) - 1),
	   "a truncated sockaddr_in is not trusted");
	ok(!trust_check(&t, NULL, 0), "a NULL address is not trusted");
	ok(!trust_check(NULL, (const struct sockaddr *)&sin, sizeof(sin)),
	   "a NULL list trusts nobody");

	{
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_addr = in6addr_loopback;
		ok(trust_check(&t, (const struct sockaddr *)&sin6, sizeof(sin6)),
		   "::1 full length");
		ok(!trust_check(&t, (const struct sockaddr *)&sin6, sizeof(sin6) - 1),
		   "a truncated sockaddr_in6 is not trusted");
	}
}

/* trust_overlap: a trusted entry and a reverse proxy's (gpsctl check, README). */
static void test_overlap(void)
{
	static const struct {
		const char *a, *b;
		bool overlap;
	} cases[] = {
		{ "127.0.0.1", "127.0.0.1", true },
		{ "127.0.0.1", "127.0.0.2", false },
		{ "127.0.0.0/8", "127.0.0.2", true },
		{ "127.0.0.2", "127.0.0.0/8", true },
		{ "10.0.0.0/8", "192.168.0.*", false },
		{ "192.168.*.*", "192.168.7.1", true },
		{ "::1", "::1", true },
		{ "::1", "127.0.0.1", false },
		{ "::/0", "127.0.0.1", true }, /* ::/0 trusts IPv4 peers too (trust_check) */
		{ "::ffff:127.0.0.1", "127.0.0.1", true },
		{ "::ffff:0:0/96", "10.1.2.3", true },
		{ "fd00::/8", "fd12::1", true },
		{ "fd00::/8", "fe80::1", false },
		{ "0.0.0.0/0", "::1", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		static struct trust a, b; /* 4.6 KiB each */
		char err[128];

		if (trust_parse(cases[i].a, &a, err, sizeof(err)) < 0 ||
		    trust_parse(cases[i].b, &b, err, sizeof(err)) < 0) {
			ok(0, "overlap '%s' '%s': %s", cases[i].a, cases[i].b, err);
			continue;
		}
		ok(trust_overlap(&a.e[0], &b.e[0]) == cases[i].overlap &&
			   trust_overlap(&b.e[0], &a.e[0]) == cases[i].overlap,
		   "'%s' and '%s' %s", cases[i].a, cases[i].b,
		   cases[i].overlap ? "overlap" : "do not overlap");
	}
}

int main(void)
{
	test_parse_table();
	test_parse_limits();
	test_check_table();
	test_check_odd();
	test_overlap();
	return done_testing();
}
