/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "shm/topic.h"

void topic_target_path(const char *target, size_t len, const char **ret_path, size_t *ret_len)
{
	const char *p = target, *end = target + len, *q;

	/*
	 * Each scheme under its own length check: "https:/" (7 bytes) read one byte past the target
	 * (found by fuzz/fuzz-topic.c; seed fuzz/corpus/topic/https-short).
	 */
	if ((len >= 7 && strncasecmp(p, "http://", 7) == 0) ||
	    (len >= 8 && strncasecmp(p, "https://", 8) == 0)) {
		p += p[4] == ':' ? 7 : 8;
		while (p < end && *p != '/' && *p != '?')
			p++; /* the authority */
	}
	q = memchr(p, '?', (size_t)(end - p));
	if (q)
		end = q;
	*ret_path = p;
	*ret_len = (size_t)(end - p);
}

int topic_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_ctl(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}

/*
 * Walk the segments of path[0..len), decoding each into out (segments joined by NUL).
 * For each segment calls back with its decoded bytes; returns the bytes written or -errno.
 */
static long decode_segments(const char *path, size_t len, uint8_t *out, size_t outcap,
			    bool (*seg_ok)(const uint8_t *seg, size_t n, void *ctx), void *ctx)
{
	size_t i = 0, o = 0;

	while (i < len) {
		size_t start;

		while (i < len && path[i] == '/')
			i++;
		if (i >= len)
			break;
		if (o > 0) {
			if (o >= outcap)
				return -ENOBUFS;
			out[o++] = 0;
		}
		start = o;
		while (i < len && path[i] != '/') {
			uint8_t c = (uint8_t)path[i];
			if (c == '%') {
				int hi, lo;
				if (i + 2 >= len)
					return -EINVAL;
				hi = topic_hex_value(path[i + 1]);
				lo = topic_hex_value(path[i + 2]);
				if (hi < 0 || lo < 0)
					return -EINVAL;
				c = (uint8_t)(hi << 4 | lo);
				i += 3;
			} else {
				i++;
			}
			if (o >= outcap)
				return -ENOBUFS;
			out[o++] = c;
		}
		if (seg_ok && !seg_ok(out + start, o - start, ctx))
			return -EINVAL;
	}
	return (long)o;
}

static bool publish_seg_ok(const uint8_t *seg, size_t n, void *ctx)
{
	(void)ctx;
	if (n == 1 && seg[0] == '*')
		return false;
	for (size_t i = 0; i < n; i++)
		if (is_ctl(seg[i]))
			return false;
	return true;
}

long topic_publish_parse(const char *target, size_t len, uint8_t *out, size_t outcap)
{
	const char *path;
	size_t plen;

	for (size_t i = 0; i < len; i++)
		if (is_ctl((uint8_t)target[i]))
			return -EINVAL;
	topic_target_path(target, len, &path, &plen);
	return decode_segments(path, plen, out, outcap, publish_seg_ok, NULL);
}

bool topic_stored_valid(const uint8_t *stored, size_t len)
{
	size_t start = 0;

	if (len == 0)
		return true;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && stored[i] != 0) {
			if (is_ctl(stored[i]))
				return false;
			continue;
		}
		/* a segment ends at i: not empty, not "*" */
		if (i == start || (i - start == 1 && stored[start] == '*'))
			return false;
		start = i + 1;
	}
	return true;
}

struct pattern_ctx {
	struct topic_pattern *p;
	const uint8_t *base;
};

static bool pattern_seg(const uint8_t *seg, size_t n, void *ctx)
{
	struct pattern_ctx *c = ctx;
	struct topic_seg *s = &c->p->seg[c->p->nseg++];

	s->off = (uint32_t)(seg - c->base);
	s->len = (uint32_t)n;
	s->any = n == 1 && seg[0] == '*';
	if (memchr(seg, 0, n))
		c->p->never = true;
	return true;
}

int topic_pattern_parse(const char *target, size_t len, struct topic_pattern *ret)
{
	struct pattern_ctx ctx = { .p = ret, .base = ret->bytes };
	const char *path;
	size_t plen;
	long n;

	topic_target_path(target, len, &path, &plen);
	if (plen > TOPIC_MAX_BYTES)
		return -ENOBUFS;
	ret->nseg = 0;
	ret->never = false;
	n = decode_segments(path, plen, ret->bytes, sizeof(ret->bytes), pattern_seg, &ctx);
	if (n < 0)
		return (int)n;
	/* one trailing "*" matches zero or more segments: the same as the prefix without it */
	if (ret->nseg > 0 && ret->seg[ret->nseg - 1].any)
		ret->nseg--;
	return 0;
}

bool topic_match(const struct topic_pattern *p, const uint8_t *topic, size_t len)
{
	size_t i = 0;

	if (p->never)
		return false;
	for (uint32_t k = 0; k < p->nseg; k++) {
		const struct topic_seg *s = &p->seg[k];
		const uint8_t *end;
		size_t n;

		if (i >= len)
			return false; /* the topic has fewer segments than the pattern */
		end = memchr(topic + i, 0, len - i);
		n = end ? (size_t)(end - (topic + i)) : len - i;
		if (!s->any && (n != s->len || memcmp(topic + i, p->bytes + s->off, n) != 0))
			return false;
		i += n + 1; /* past the separator; > len after the last segment */
	}
	return true;
}

size_t topic_format(const uint8_t *stored, size_t len, char *buf, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

#define PUT(ch)                        \
	do {                           \
		if (o + 1 < cap)       \
			buf[o] = (ch); \
		o++;                   \
	} while (0)

	PUT('/');
	for (size_t i = 0; i < len; i++) {
		uint8_t c = stored[i];
		if (c == 0) {
			PUT('/');
		} else if (c == '/' || c == '%' || is_ctl(c) || c == ' ' || c == '?' || c == '#') {
			/*
			 * '?' and '#' too: a raw '?' would start a query, which topic_target_path()
			 * drops, so the path printed for "a%3Fb" would name topic "a" (found by
			 * fuzz/fuzz-topic.c; seed fuzz/corpus/topic/query-escaped).
			 */
			PUT('%');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else {
			PUT((char)c);
		}
	}
	if (cap)
		buf[o < cap ? o : cap - 1] = '\0';
#undef PUT
	return o;
}
