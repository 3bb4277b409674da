/* SPDX-License-Identifier: MIT */
/*
 * Where a stream starts (PROTOCOL 3.5, README 3.9): the live head, the replay point of
 * X-Fetch-Since, or the message after a cursor (X-Fetch-Since-Cursor, Last-Event-ID,
 * ?lastEventId=).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "frontend/stream.h"

/* ring_cursor_seek_time() restarts under a writer that laps the index during the search: this
 * many, then the replay starts at the oldest held message. */
#define SEEK_TRIES 100u

/* X-Fetch-Since (PROTOCOL 3.5): plain decimal, optional fraction, rounded up to the
 * microsecond (times are whole microseconds: t >= v iff t >= ceil(v)). Huge values saturate
 * (the future replays nothing). 0 or -EINVAL. */
static int parse_since(const char *v, size_t len, uint64_t *ret)
{
	uint64_t sec = 0, frac = 0, us;
	size_t i = 0, digits = 0;
	bool more = false, sat = false;

	while (i < len && v[i] >= '0' && v[i] <= '9') {
		if (__builtin_mul_overflow(sec, 10, &sec) ||
		    __builtin_add_overflow(sec, (uint64_t)(v[i] - '0'), &sec))
			sat = true;
		i++;
		digits++;
	}
	if (digits == 0)
		return -EINVAL;
	if (i < len && v[i] == '.') {
		size_t fd = 0;
		i++;
		while (i < len && v[i] >= '0' && v[i] <= '9') {
			if (fd < 6)
				frac = frac * 10 + (uint64_t)(v[i] - '0');
			else if (v[i] != '0')
				more = true;
			fd++;
			i++;
		}
		if (fd == 0)
			return -EINVAL;
		for (; fd < 6; fd++)
			frac *= 10;
	}
	if (i != len)
		return -EINVAL;
	/* a time past what 64 bits of microseconds hold is in the future: it replays nothing
	 * (PROTOCOL 3.5), never wraps around to the past */
	if (sat || __builtin_mul_overflow(sec, UINT64_C(1000000), &us) ||
	    __builtin_add_overflow(us, frac + (more ? 1 : 0), &us))
		us = UINT64_MAX;
	*ret = us;
	return 0;
}

/*
 * How many messages at or after since_us a replay that starts at gap->resume_seq will never
 * receive (PROTOCOL 3.4). The time index reaches back only nidx messages, so the ring counts
 * those it can still see (gap->missed). A time at or before the ring's creation on one machine
 * (X-Fetch-Since: 0, "everything") precedes every message ever stored: all of them from the
 * first one up to resume_seq are gone, exactly as many as a cursor at the first would count.
 * In cluster mode messages may be older than the ring (copied from the stream), so the count
 * stays what the index shows; so does a time between the creation and the oldest entry, which
 * no part of the ring can place among the evicted messages (README, "Reliability").
 */
static uint64_t since_missed(const struct ring *r, uint64_t since_us, const struct ring_gap *gap)
{
	const uint64_t first = atomic_load_explicit(&r->hdr->first_seq, memory_order_acquire);

	if (since_us <= r->hdr->created_us &&
	    !atomic_load_explicit(&r->hdr->stream_time, memory_order_relaxed) &&
	    gap->resume_seq > first && gap->resume_seq - first > gap->missed)
		return gap->resume_seq - first;
	return gap->missed;
}

/*
 * Where the stream starts: the live head, the replay point of X-Fetch-Since, or the message after
 * a cursor (README 3.9). Sets s->next, and s->gap_due and s->gap_missed when the start calls for
 * a gap notice (PROTOCOL 3.4), which goes out after the stream's preamble.
 */
void resume_position(struct sub *s, const struct resume *rs)
{
	const struct ring *r = &s->c->fe->ring;
	struct ring_cursor cur;
	struct ring_gap gap;
	uint64_t tail, head;
	unsigned tries = 0;
	int err;

	s->gap_due = false;
	switch (rs->kind) {
	case RESUME_LIVE:
		s->next = ring_head(r);
		return;
	case RESUME_CURSOR:
		/* tail first: head only grows, so the head read after it is not below it */
		tail = ring_tail(r);
		head = ring_head(r);
		s->gap_due =
			cursor_start(&rs->cur, r->generation, tail, head, &s->next, &s->gap_missed);
		return;
	case RESUME_TIME:
		break;
	}
	/* -EAGAIN only under a writer that laps the index during the search: bounded, then the
	 * oldest held message is where the replay starts */
	do
		err = ring_cursor_seek_time(r, rs->since, &cur, &gap);
	while (err == -EAGAIN && ++tries < SEEK_TRIES);
	if (err < 0) {
		s->next = ring_tail(r);
		return;
	}
	s->next = cur.next;
	/* PROTOCOL 3.4: messages at or after 'since' are gone: say how many */
	if (err == RING_NEXT_GAP) {
		s->gap_due = true;
		s->gap_missed = since_missed(r, rs->since, &gap);
	}
}

/*
 * Every header called name holds a cursor, all the same one (1, *ret set), or there is none
 * (0). A header that is not a cursor is a 400 (README 3.9: -1, answered); so is an empty one,
 * unless empty_absent: a browser sends Last-Event-ID only with a value, other clients may send
 * it empty to mean "no id yet".
 */
static int header_cursor(struct conn *c, const struct http_request *req, const char *name,
			 bool empty_absent, struct cursor *ret)
{
	size_t nlen = strlen(name);
	bool found = false;
	char why[128];

	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		struct cursor cur;

		if (h->name_len != nlen || strncasecmp(h->name, name, nlen) != 0)
			continue;
		if (h->value_len == 0 && empty_absent)
			continue;
		if (cursor_parse(h->value, h->value_len, &cur) < 0) {
			(void)snprintf(why, sizeof(why), "%s is not a cursor", name);
			conn_fail(c, 400, why);
			return -1;
		}
		if (found && (cur.gen != ret->gen || cur.seq != ret->seq)) {
			(void)snprintf(why, sizeof(why), "conflicting %s headers", name);
			conn_fail(c, 400, why);
			return -1;
		}
		found = true;
		*ret = cur;
	}
	return found;
}

/*
 * Where the request asks its stream to start. The most exact request wins: X-Fetch-Since-Cursor,
 * then Last-Event-ID (a reconnecting EventSource: newer than its URL), then ?lastEventId= in the
 * query, then X-Fetch-Since (PROTOCOL 3.5). Each one present must be well-formed: false when
 * answered 400.
 */
bool resume_parse(struct conn *c, const struct http_request *req, struct resume *rs)
{
	char qval[CURSOR_MAX + 1];
	struct cursor cur;
	size_t qlen = 0;
	int q, h;

	rs->kind = RESUME_LIVE;
	for (size_t i = 0; i < req->nheaders; i++) {
		const struct http_header *hd = &req->headers[i];
		uint64_t v;

		if (hd->name_len != 13 || strncasecmp(hd->name, "X-Fetch-Since", 13) != 0)
			continue;
		if (parse_since(hd->value, hd->value_len, &v) < 0) {
			conn_fail(c, 400, "X-Fetch-Since must be a plain decimal unix time");
			return false;
		}
		if (rs->kind == RESUME_TIME && v != rs->since) {
			conn_fail(c, 400, "conflicting X-Fetch-Since headers");
			return false;
		}
		rs->kind = RESUME_TIME;
		rs->since = v;
	}
	q = cursor_query_value(req->target, req->target_len, "lastEventId", qval, sizeof(qval),
			       &qlen);
	if (q < 0 || (q > 0 && qlen > 0 && cursor_parse(qval, qlen, &cur) < 0)) {
		conn_fail(c, 400, "lastEventId is not a cursor");
		return false;
	}
	if (q > 0 && qlen > 0) {
		rs->kind = RESUME_CURSOR;
		rs->cur = cur;
	}
	h = header_cursor(c, req, "Last-Event-ID", true, &cur);
	if (h < 0)
		return false;
	if (h > 0) {
		rs->kind = RESUME_CURSOR;
		rs->cur = cur;
	}
	h = header_cursor(c, req, "X-Fetch-Since-Cursor", false, &cur);
	if (h < 0)
		return false;
	if (h > 0) {
		rs->kind = RESUME_CURSOR;
		rs->cur = cur;
	}
	return true;
}
