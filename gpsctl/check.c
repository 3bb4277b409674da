/* SPDX-License-Identifier: MIT */
/* gpsctl check: the header, the counters, the index and every held record, one by one. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "common/trust.h"
#include "gpsctl/gpsctl.h"

/* Passes over a ring that keeps changing before the problems seen are reported anyway. A pass
 * over a 64 MiB ring takes milliseconds, so a quiet moment comes soon on any ring that is not
 * published to continuously. */
#define CHECK_TRIES 5

/* Problems listed one by one; past this only their number is given. */
#define CHECK_MAX_LISTED 100

struct problems {
	char *list[CHECK_MAX_LISTED];
	size_t n; /* problems found, listed or not */
};

static void problems_clear(struct problems *p)
{
	for (size_t i = 0; i < MIN(p->n, (size_t)CHECK_MAX_LISTED); i++)
		free(p->list[i]);
	p->n = 0;
}

_printf_(2, 3) static void problem(struct problems *p, const char *fmt, ...)
{
	if (p->n < CHECK_MAX_LISTED) {
		char buf[512];
		va_list ap;

		va_start(ap, fmt);
		(void)vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		p->list[p->n] = strdup(buf); /* NULL on OOM: printed as such, still counted */
	}
	p->n++;
}

/* Another process's header, refused with ring_validate_why()'s reason. 0 or -EPROTO. */
static int check_header(const struct ring_hdr *h, size_t map_size, struct problems *p)
{
	char why[256];
	int err = ring_validate_why(h, map_size, why, sizeof(why));

	if (err < 0)
		problem(p, "header: %s", why);
	return err;
}

/*
 * Copy message seq into rd->buf through the reader protocol (shm/ring.h section 5). 0 and *rec
 * filled; -EAGAIN not published yet; -ESTALE gone (evicted, or the copy may be torn); -ENOMEM.
 * check walks seqs itself rather than with a cursor: it looks at every held record, and an
 * evicted one is no gap to report but a record to leave out.
 */
static int copy_record(struct reader *rd, uint64_t seq, struct ring_rec *rec)
{
	size_t len;
	int err = ring_rec_get(&rd->r, seq, rec);

	if (err < 0)
		return err;
	len = (size_t)rec->topic_len + rec->payload_len;
	if (len > rd->cap) {
		uint8_t *b = realloc(rd->buf, len);

		if (!b)
			return -ENOMEM;
		rd->buf = b;
		rd->cap = len;
	}
	ring_copy_from(rd->buf, rec->topic, len);
	return ring_rec_valid(&rd->r, rec) ? 0 : -ESTALE;
}

/* Whether the payload is one line with no control byte: what the broker stores (PROTOCOL 4.3:
 * CR, LF and TAB outside strings become spaces; inside strings JSON allows no raw control). */
static bool payload_one_line(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] < 0x20)
			return false;
	return true;
}

/* The counters one pass looks at, read once at its start. */
struct pass {
	uint64_t head, tail, data_head, data_tail, last_time, evicted;
};

/* The counters against each other: whatever else a pass walks trusts them. */
static void check_counters(const struct ring *r, const struct pass *c, struct problems *p)
{
	if (atomic_load_explicit(&r->hdr->closed, memory_order_acquire))
		problem(p, "ring: closed (replaced by a recreate; no longer written)");
	if (c->head == 0)
		problem(p, "counters: head is 0; sequences start at 1");
	if (c->tail > c->head)
		problem(p, "counters: tail %" PRIu64 " is above head %" PRIu64, c->tail, c->head);
	else if (c->head - c->tail > r->nidx)
		problem(p,
			"counters: %" PRIu64 " messages held, more than the %" PRIu64
			" index entries",
			c->head - c->tail, r->nidx);
	if (c->data_tail > c->data_head)
		problem(p, "counters: data_tail %" PRIu64 " is above data_head %" PRIu64,
			c->data_tail, c->data_head);
	else if (c->data_head - c->data_tail > r->data_size)
		problem(p, "counters: %" PRIu64 " bytes held, more than the data area's %" PRIu64,
			c->data_head - c->data_tail, r->data_size);
}

/* The index: every entry is unused (seq 0) or holds a seq that maps to it, below head. */
static void check_index(const struct ring *r, const struct pass *c, struct problems *p)
{
	for (uint64_t i = 0; i < r->nidx; i++) {
		uint64_t seq = atomic_load_explicit(&r->idx[i].seq, memory_order_acquire);

		if (seq == 0)
			continue;
		if ((seq & r->idx_mask) != i)
			problem(p,
				"index: entry %" PRIu64 " holds seq %" PRIu64
				", which belongs in entry %" PRIu64,
				i, seq, seq & r->idx_mask);
		else if (seq > c->head)
			problem(p,
				"index: entry %" PRIu64 " holds seq %" PRIu64
				", beyond head %" PRIu64,
				i, seq, c->head);
	}
}

/* Entries still readable, evicted ones included: times strictly increase (the time search of
 * ring_find_time() relies on it). */
static void check_index_times(const struct ring *r, const struct pass *c, struct problems *p)
{
	uint64_t prev_time = 0;
	uint64_t lo = c->head > r->nidx ? c->head - r->nidx + 1 : 1;

	for (uint64_t seq = lo; seq < c->head; seq++) {
		const struct ring_idx *e = &r->idx[seq & r->idx_mask];
		uint64_t t;

		if (atomic_load_explicit(&e->seq, memory_order_acquire) != seq)
			continue; /* never written (a young ring) or being rewritten */
		t = atomic_load_explicit(&e->time_us, memory_order_relaxed);
		if (prev_time && t <= prev_time)
			problem(p,
				"index: seq %" PRIu64 " has time %" PRIu64 ".%06" PRIu64
				", not after the previous message's %" PRIu64 ".%06" PRIu64,
				seq, t / 1000000u, t % 1000000u, prev_time / 1000000u,
				prev_time % 1000000u);
		prev_time = t;
	}
}

/* Where held record rec lies: aligned, inside the held bytes, after the previous one (which
 * ended at prev_end, 0 for none), within the record limit. Returns where it ends. */
static uint64_t check_record_place(const struct ring *r, const struct pass *c,
				   const struct ring_rec *rec, uint64_t prev_end,
				   struct problems *p)
{
	uint64_t seq = rec->seq, len = ring_rec_len(rec);
	uint64_t end = rec->pos + ALIGN_UP(len, (uint64_t)8);

	if (rec->pos % 8u)
		problem(p, "seq %" PRIu64 ": position %" PRIu64 " is not 8-byte aligned", seq,
			rec->pos);
	if (rec->pos < c->data_tail || end > c->data_head)
		problem(p,
			"seq %" PRIu64 ": bytes [%" PRIu64 ", %" PRIu64
			") outside the held area [%" PRIu64 ", %" PRIu64 ")",
			seq, rec->pos, end, c->data_tail, c->data_head);
	if (seq == c->tail && rec->pos != c->data_tail)
		problem(p,
			"seq %" PRIu64 ": the oldest record starts at %" PRIu64
			", data_tail says %" PRIu64,
			seq, rec->pos, c->data_tail);
	if (seq + 1 == c->head && end != c->data_head)
		problem(p,
			"seq %" PRIu64 ": the newest record ends at %" PRIu64
			", data_head says %" PRIu64,
			seq, end, c->data_head);
	if (prev_end && rec->pos < prev_end)
		problem(p,
			"seq %" PRIu64 ": starts at %" PRIu64
			", inside the previous record (ends at %" PRIu64 ")",
			seq, rec->pos, prev_end);
	if (len > RING_MAX_RECORD(r->data_size))
		problem(p, "seq %" PRIu64 ": %" PRIu64 " bytes, over the record limit %" PRIu64,
			seq, len, RING_MAX_RECORD(r->data_size));
	if ((rec->pos & r->data_mask) + len > r->data_size)
		problem(p, "seq %" PRIu64 ": wraps around the end of the data area", seq);
	return end;
}

/* What held record rec says: its time against its neighbours' and the header's, its topic
 * and payload (copied in rd->buf). */
static void check_record_content(const struct reader *rd, const struct pass *c,
				 const struct ring_rec *rec, uint64_t prev_time, struct problems *p)
{
	uint64_t seq = rec->seq;

	if (prev_time && rec->time_us <= prev_time)
		problem(p, "seq %" PRIu64 ": time does not increase", seq);
	if (rec->time_us > c->last_time)
		problem(p, "seq %" PRIu64 ": time is after last_time", seq);
	if (seq + 1 == c->head && rec->time_us != c->last_time)
		problem(p, "seq %" PRIu64 ": the newest message's time differs from last_time",
			seq);
	if (seq == c->tail && c->evicted && rec->time_us <= c->evicted)
		problem(p,
			"seq %" PRIu64 ": the oldest held message is not newer than the "
			"newest evicted one",
			seq);
	if (!topic_stored_valid(rd->buf, rec->topic_len))
		problem(p, "seq %" PRIu64 ": invalid stored topic", seq);
	if (rec->payload_len == 0)
		problem(p, "seq %" PRIu64 ": empty payload", seq);
	else if (!payload_one_line(rd->buf + rec->topic_len, rec->payload_len))
		problem(p, "seq %" PRIu64 ": payload holds a control byte (CR, LF, NUL, ...)", seq);
}

/* Every held record: where it is, how big, what it holds. The number checked. */
static uint64_t check_records(struct reader *rd, const struct pass *c, struct problems *p)
{
	const struct ring *r = &rd->r;
	uint64_t prev_time = 0, prev_end = 0, checked = 0;

	for (uint64_t seq = c->tail; seq < c->head; seq++) {
		struct ring_rec rec;
		int err = copy_record(rd, seq, &rec);

		if (err == -ESTALE && seq < ring_tail(r))
			continue; /* evicted while we looked: not a problem */
		if (err == -EAGAIN)
			break;
		if (err == -ENOMEM) {
			problem(p, "seq %" PRIu64 ": out of memory copying the record", seq);
			break;
		}
		if (err < 0) {
			const struct ring_idx *e = &r->idx[seq & r->idx_mask];

			problem(p,
				"seq %" PRIu64 ": index entry holds seq %" PRIu64
				" (or the record lies outside the data area)",
				seq, atomic_load_explicit(&e->seq, memory_order_relaxed));
			continue;
		}
		checked++;
		prev_end = check_record_place(r, c, &rec, prev_end, p);
		check_record_content(rd, c, &rec, prev_time, p);
		prev_time = rec.time_us;
	}
	return checked;
}

/* One pass over the counters, every index entry and every held record. */
static void check_pass(struct reader *rd, struct problems *p, uint64_t *ret_checked)
{
	const struct ring_hdr *h = rd->r.hdr;
	struct pass c = {
		.head = ring_head(&rd->r),
		.tail = ring_tail(&rd->r),
		.data_head = atomic_load_explicit(&h->data_head, memory_order_acquire),
		.data_tail = atomic_load_explicit(&h->data_tail, memory_order_acquire),
		.last_time = atomic_load_explicit(&h->last_time_us, memory_order_acquire),
		.evicted = atomic_load_explicit(&h->evicted_time_us, memory_order_acquire),
	};

	*ret_checked = 0;
	check_counters(&rd->r, &c, p);
	if (p->n)
		return; /* the walks below trust the counters */
	check_index(&rd->r, &c, p);
	check_index_times(&rd->r, &c, p);
	*ret_checked = check_records(rd, &c, p);
}

/*
 * The next entry of a trustedPeers-style list at *p (whitespace-separated, as trust_parse()
 * reads it) into *ret_entry, its text at *ret_tok for *ret_len bytes; false at the end. The
 * configuration parser checked every entry already, so one that does not parse is skipped.
 */
static bool next_entry(const char **p, struct trust_entry *ret_entry, const char **ret_tok,
		       size_t *ret_len)
{
	static struct trust one; /* 4.6 KiB: not on the stack */
	char buf[128];

	for (;;) {
		const char *s = *p;
		size_t len;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			return false;
		for (len = 0; s[len] && !isspace((unsigned char)s[len]); len++)
			;
		*p = s + len;
		if (len >= sizeof(buf))
			continue;
		memcpy(buf, s, len);
		buf[len] = '\0';
		if (trust_parse(buf, &one, NULL, 0) < 0 || one.n != 1)
			continue;
		*ret_entry = one.e[0];
		*ret_tok = s;
		*ret_len = len;
		return true;
	}
}

/*
 * README "Behind a reverse proxy": every client of a proxy arrives with the proxy's address, so
 * a trustedPeers entry covering an address of [Clients] proxies lets anyone who reaches the
 * proxy publish. One warning per such pair into w; a warning, not a failed check, since a proxy
 * that lets only some clients publish (nginx limit_except) may be trusted on purpose.
 */
static void check_proxies(const struct config *cfg, struct problems *w)
{
	const char *tp = cfg->trusted_peers, *ttok, *ptok;
	struct trust_entry te, pe;
	size_t tlen, plen;

	while (next_entry(&tp, &te, &ttok, &tlen)) {
		const char *pp = cfg->proxies;

		while (next_entry(&pp, &pe, &ptok, &plen))
			if (trust_overlap(&te, &pe))
				problem(w,
					"WARNING: [Clients] trustedPeers entry '%.*s' covers the "
					"reverse proxy '%.*s' of [Clients] proxies: every client of "
					"the proxy arrives with its address and may publish; give "
					"publishers an address of their own, or tokens",
					(int)tlen, ttok, (int)plen, ptok);
	}
}

/* A JSON array of the texts of p. */
static void print_json_list(const struct problems *p)
{
	printf("[");
	for (size_t i = 0; i < p->n && i < CHECK_MAX_LISTED; i++) {
		const char *text = p->list[i] ? p->list[i] : "(out of memory)";

		if (i)
			printf(", ");
		gpsctl_print_json_string(stdout, text, strlen(text));
	}
	printf("]");
}

static void print_check_result(const struct problems *p, const struct problems *w, const char *name,
			       uint64_t checked, const struct options *o)
{
	if (o->json) {
		printf("{\"ring\": ");
		gpsctl_print_json_string(stdout, name, strlen(name));
		printf(", \"ok\": %s, \"checked\": %" PRIu64 ", \"problems\": %zu, \"list\": ",
		       p->n ? "false" : "true", checked, p->n);
		print_json_list(p);
		printf(", \"warnings\": ");
		print_json_list(w);
		printf("}\n");
		return;
	}
	for (size_t i = 0; i < p->n && i < CHECK_MAX_LISTED; i++)
		printf("%s\n", p->list[i] ? p->list[i] : "(out of memory)");
	if (p->n > CHECK_MAX_LISTED)
		printf("... and %zu more problems\n", p->n - CHECK_MAX_LISTED);
	if (p->n)
		printf("BAD: ring '%s': %zu problem%s, %" PRIu64 " messages checked\n", name, p->n,
		       p->n == 1 ? "" : "s", checked);
	else
		printf("ok: ring '%s': %" PRIu64 " messages checked\n", name, checked);
}

int gpsctl_check(struct reader *rd)
{
	const struct options *o = rd->o;
	struct problems p = { .n = 0 }, w = { .n = 0 };
	struct ring_stats *st = NULL;
	uint64_t checked = 0;
	size_t size = 0;
	void *base = NULL;
	int err, rc, tokens_rc = gpsctl_check_tokens(rd);

	if (rd->cfg)
		check_proxies(rd->cfg, &w);
	if (!o->json) /* now: said even when the ring cannot be opened */
		for (size_t i = 0; i < w.n && i < CHECK_MAX_LISTED; i++)
			printf("%s\n", w.list[i] ? w.list[i] : "(out of memory)");

	err = ring_map(rd->name, false, &base, &size);
	if (err == -EPERM) {
		gpsctl_log_refusal(rd->name);
		return 1;
	}
	if (err == -EPROTO) {
		(void)check_header(NULL, size, &p); /* smaller than a header: says so */
		goto out_report;
	}
	if (err != 0 || !base) {
		log_error("unable to open ring '%s': %s%s", rd->name,
			  strerror(err < 0 ? -err : EIO),
			  err == -ENOENT ? " (has the broker ever run?)" : "");
		problems_clear(&w);
		return 1;
	}
	if (check_header(base, size, &p) < 0)
		goto out_report;
	ring_init_handle(&rd->r, base, size);
	base = NULL; /* rd->r owns the mapping now */

	for (int i = 0; i < CHECK_TRIES; i++) {
		const struct ring_hdr *h = rd->r.hdr;
		uint32_t stamp = atomic_load_explicit(&h->stamp, memory_order_acquire);
		uint64_t head = ring_head(&rd->r), tail = ring_tail(&rd->r);

		problems_clear(&p);
		check_pass(rd, &p, &checked);
		if (p.n == 0)
			break;
		/* problems seen while the writer moved may be its artefacts: look again */
		if (atomic_load_explicit(&h->stamp, memory_order_acquire) == stamp &&
		    ring_head(&rd->r) == head && ring_tail(&rd->r) == tail)
			break;
	}
	if (atomic_load_explicit(&rd->r.hdr->stamp, memory_order_acquire) & 1u) {
		pid_t holder = 0;

		if (gpsctl_writer_lock_holder(rd->name, &holder) == 0 && holder == 0)
			problem(&p,
				"ring: a publish was cut short (stamp is odd and no broker runs); "
				"the next broker start repairs it");
	}
	err = ring_stats_attach(rd->name, false, &st);
	if (err == -EPERM) {
		char why[1024];

		(void)ring_refusal(rd->name, why, sizeof(why));
		problem(&p, "statistics: refused: %s", why);
	} else if (err < 0)
		problem(&p, "statistics: unable to open '%s%s': %s", rd->name, RING_STATS_SUFFIX,
			strerror(-err));
	ring_stats_detach(st);

out_report:
	print_check_result(&p, &w, rd->name, checked, o);
	rc = p.n || tokens_rc ? 1 : 0;
	problems_clear(&p);
	problems_clear(&w);
	if (base)
		(void)munmap(base, size);
	return rc;
}
