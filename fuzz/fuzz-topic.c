/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: topics, their stored form and subscription patterns (shm/topic.h,
 * PROTOCOL 2).
 *
 * The input is a publish target, a LF, then a subscription target (no LF: the same bytes serve
 * as both). The properties:
 *   - a published topic's stored form is valid, fits in len bytes, and formats to a path that
 *     publishes to the same stored form again (the path gpsctl prints is one you can use);
 *   - a pattern matches its own topic, every prefix of it and every '*' spelling of it, and
 *     not the topic one segment shorter; "/" matches everything (PROTOCOL 2.2-2.4);
 *   - topic_match() agrees with a reference matcher in this file, which splits and decodes
 *     the subscription path itself (PROTOCOL 2.1-2.3);
 *   - the input read raw as a stored topic, when valid, also formats and parses back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz/fuzz.h"
#include "shm/topic.h"

/* Segments the prefix and '*' properties are tried on; each try parses a pattern. */
#define FUZZ_TOPIC_SEGS 8

/* Large (TOPIC_MAX_BYTES of bytes and segments): static, as the frontend keeps it. */
static struct topic_pattern pat;

/* The reference's decoded pattern: segments of the subscription path. */
struct ref_pattern {
	size_t nseg;
	bool never;
	bool any[TOPIC_MAX_BYTES / 2];
	size_t off[TOPIC_MAX_BYTES / 2];
	size_t len[TOPIC_MAX_BYTES / 2];
	uint8_t bytes[TOPIC_MAX_BYTES];
};

static struct ref_pattern ref;

static int ref_hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (uint8_t)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * PROTOCOL 2.1 and 2.6 read literally: drop "scheme://authority" of an http(s) URL, drop the
 * query, split on '/', drop empty segments, decode %XX in each; then 2.3's trailing '*'. 0 or
 * -EINVAL for a bad escape.
 */
static int ref_parse(const uint8_t *t, size_t n, struct ref_pattern *p)
{
	size_t i = 0, o = 0, end = n;

	if (n > (size_t)TOPIC_MAX_BYTES)
		return -ENOBUFS;
	if ((n >= 7 && strncasecmp((const char *)t, "http://", 7) == 0) ||
	    (n >= 8 && strncasecmp((const char *)t, "https://", 8) == 0)) {
		i = t[4] == ':' ? 7 : 8;
		while (i < n && t[i] != '/' && t[i] != '?')
			i++;
	}
	for (size_t q = i; q < n; q++) {
		if (t[q] == '?') {
			end = q;
			break;
		}
	}
	p->nseg = 0;
	p->never = false;
	while (i < end) {
		size_t start = o;

		if (t[i] == '/') {
			i++;
			continue;
		}
		while (i < end && t[i] != '/') {
			if (t[i] == '%') {
				if (end - i < 3 || ref_hex(t[i + 1]) < 0 || ref_hex(t[i + 2]) < 0)
					return -EINVAL;
				p->bytes[o++] =
					(uint8_t)(ref_hex(t[i + 1]) * 16 + ref_hex(t[i + 2]));
				i += 3;
			} else {
				p->bytes[o++] = t[i++];
			}
		}
		p->off[p->nseg] = start;
		p->len[p->nseg] = o - start;
		p->any[p->nseg] = o - start == 1 && p->bytes[start] == '*';
		if (memchr(p->bytes + start, 0, o - start))
			p->never = true;
		p->nseg++;
	}
	if (p->nseg > 0 && p->any[p->nseg - 1])
		p->nseg--;
	return 0;
}

/* Whether the stored topic (segments joined by NUL, "" for "/") is covered by p. */
static bool ref_match(const struct ref_pattern *p, const uint8_t *s, size_t n)
{
	size_t i = 0;

	if (p->never)
		return false;
	for (size_t k = 0; k < p->nseg; k++) {
		size_t start = i;

		if (n == 0 || i > n)
			return false;
		while (i < n && s[i] != 0)
			i++;
		if (!p->any[k] && (i - start != p->len[k] ||
				   memcmp(s + start, p->bytes + p->off[k], i - start) != 0))
			return false;
		i++;
	}
	return true;
}

/* Parse target t as a pattern from an exact-size copy; 0 or -errno. */
static int pattern_from(const void *t, size_t n)
{
	uint8_t *copy = fuzz_dup(t, n);
	int r = topic_pattern_parse((const char *)copy, n, &pat);

	free(copy);
	if (r == 0) {
		FUZZ_CHECK(pat.nseg <= TOPIC_MAX_BYTES / 2, "%u segments", pat.nseg);
		for (uint32_t k = 0; k < pat.nseg; k++)
			FUZZ_CHECK((size_t)pat.seg[k].off + pat.seg[k].len <=
					   (size_t)TOPIC_MAX_BYTES,
				   "segment %u outside the pattern", k);
	}
	return r;
}

static bool matches(const void *t, size_t n, const uint8_t *stored, size_t len)
{
	int r = pattern_from(t, n);

	FUZZ_CHECK(r == 0, "pattern '%.*s' refused: %d", (int)n, (const char *)t, r);
	return topic_match(&pat, stored, len);
}

/* Format a stored topic: the path, NUL-terminated, caller frees; *ret_len its length. */
static char *format(const uint8_t *stored, size_t len, size_t *ret_len)
{
	size_t need = topic_format(stored, len, NULL, 0), half;
	char *buf = malloc(need + 1), *part;

	FUZZ_CHECK(buf != NULL, "out of memory");
	FUZZ_CHECK(topic_format(stored, len, buf, need + 1) == need && strlen(buf) == need,
		   "format needs %zu", need);
	FUZZ_CHECK(buf[0] == '/', "a path starts with '/'");
	/* A short buffer gets a NUL-terminated prefix of the same path. */
	half = need / 2 + 1;
	part = malloc(half);
	FUZZ_CHECK(part != NULL, "out of memory");
	(void)topic_format(stored, len, part, half);
	FUZZ_CHECK(strlen(part) == half - 1 && memcmp(part, buf, half - 1) == 0,
		   "truncated format");
	free(part);
	*ret_len = need;
	return buf;
}

/* A valid stored topic formats to a path that publishes to it again. */
static void check_round_trip(const uint8_t *stored, size_t len)
{
	size_t plen;
	char *path = format(stored, len, &plen);
	uint8_t *again = malloc(plen);
	long r;

	FUZZ_CHECK(again != NULL || plen == 0, "out of memory");
	r = topic_publish_parse(path, plen, again, plen);
	FUZZ_CHECK(r >= 0 && (size_t)r == len && memcmp(again, stored, len) == 0,
		   "'%s' publishes to %ld bytes, not the %zu it was formatted from", path, r, len);
	FUZZ_CHECK(matches("/", 1, stored, len), "'/' does not match '%s'", path);
	free(again);
	free(path);
}

/* A published topic against patterns made from it. */
static void check_own_patterns(const uint8_t *target, size_t tlen, const uint8_t *stored,
			       size_t len)
{
	size_t plen, nseg = 0, cut[FUZZ_TOPIC_SEGS + 1];
	char *path, *longer;

	FUZZ_CHECK(matches(target, tlen, stored, len), "a topic does not match its own target");
	check_round_trip(stored, len);

	/*
	 * Where the formatted path's first segments start (a '/' there is a separator: one inside
	 * a segment is escaped); cut[nseg] is where the last of them ends.
	 */
	path = format(stored, len, &plen);
	cut[0] = 0;
	for (size_t i = 1; i <= plen; i++) {
		if (i < plen && path[i] != '/')
			continue;
		cut[++nseg] = i;
		if (nseg == FUZZ_TOPIC_SEGS)
			break;
	}
	for (size_t k = 1; k <= nseg; k++) {
		char *star;
		size_t slen;

		/* Every prefix of whole segments matches. */
		FUZZ_CHECK(matches(path, cut[k], stored, len), "prefix '%.*s' of '%s'", (int)cut[k],
			   path, path);

		/* Segment k - 1 spelled '*' still matches (the last one as a trailing '*'). */
		slen = cut[k - 1] + 2 + (plen - cut[k]);
		star = malloc(slen);
		FUZZ_CHECK(star != NULL, "out of memory");
		memcpy(star, path, cut[k - 1] + 1);
		star[cut[k - 1] + 1] = '*';
		memcpy(star + cut[k - 1] + 2, path + cut[k], plen - cut[k]);
		FUZZ_CHECK(matches(star, slen, stored, len), "'%.*s' does not match '%s'",
			   (int)slen, star, path);
		free(star);
	}
	/* One more segment than the topic has is not a prefix of it. */
	longer = malloc(plen + 3);
	FUZZ_CHECK(longer != NULL, "out of memory");
	(void)snprintf(longer, plen + 3, "%s/x", path);
	FUZZ_CHECK(!matches(longer, plen + 2, stored, len), "'%s/x' matches '%s'", path, path);
	free(longer);
	free(path);
}

/* A subscription target against a stored topic: topic_match agrees with ref_match. */
static void check_pattern(const uint8_t *sub, size_t slen, const uint8_t *stored, size_t len)
{
	int r = pattern_from(sub, slen), rr = ref_parse(sub, slen, &ref);
	uint8_t *s = fuzz_dup(stored, len);

	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOBUFS, "pattern parse: %d", r);
	if (r != -ENOBUFS)
		FUZZ_CHECK(r == rr, "pattern parse %d, reference %d", r, rr);
	if (r == 0) {
		FUZZ_CHECK(pat.nseg == ref.nseg && pat.never == ref.never,
			   "%u segments (never %d), reference %zu (never %d)", pat.nseg, pat.never,
			   ref.nseg, ref.never);
		FUZZ_CHECK(topic_match(&pat, s, len) == ref_match(&ref, stored, len),
			   "match says %d", topic_match(&pat, s, len));
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *lf = memchr(data, '\n', size);
	const uint8_t *sub = lf ? lf + 1 : data;
	size_t alen = lf ? (size_t)(lf - data) : size;
	size_t slen = lf ? size - alen - 1 : size;
	uint8_t *a = fuzz_dup(data, alen), *stored = malloc(alen);
	const char *path;
	size_t plen;
	long n;

	FUZZ_CHECK(stored != NULL || alen == 0, "out of memory");

	/* The path is a part of the target, without its query. */
	topic_target_path((const char *)a, alen, &path, &plen);
	FUZZ_CHECK(fuzz_inside(a, alen, path, plen), "path outside the target");
	FUZZ_CHECK(!memchr(path, '?', plen), "query left in the path");

	/* len bytes always suffice (topic.h). */
	n = topic_publish_parse((const char *)a, alen, stored, alen);
	FUZZ_CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= alen), "publish parse: %ld", n);
	if (n >= 0) {
		FUZZ_CHECK(topic_stored_valid(stored, (size_t)n), "stored form is not valid");
		if (n > 0) {
			uint8_t *tight = malloc((size_t)n);

			FUZZ_CHECK(tight != NULL, "out of memory");
			FUZZ_CHECK(topic_publish_parse((const char *)a, alen, tight, (size_t)n) ==
					   n,
				   "exact room");
			FUZZ_CHECK(topic_publish_parse((const char *)a, alen, tight,
						       (size_t)n - 1) == -ENOBUFS,
				   "one byte short");
			free(tight);
		}
		check_own_patterns(a, alen, stored, (size_t)n);
		check_pattern(sub, slen, stored, (size_t)n);
	}

	/* The input itself as a stored topic, as a reader takes it from the ring. */
	if (topic_stored_valid(data, size)) {
		check_round_trip(data, size);
		check_pattern(sub, slen, data, size);
	}
	free(stored);
	free(a);
	return 0;
}
