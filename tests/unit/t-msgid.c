/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of publish idempotency (README 4.7, "Publishing exactly once"): the id syntax
 * (common/proto.h), the broker's id table (broker/msgid.h) against a model, with the ring (window,
 * eviction, rebuild after a restart), the [History] messageIdWindow key, and the hook's ids
 * (hook/msgid.h, hook/sha256.h). Prints the table's speed at the default ring's size and how long
 * a broker takes to rebuild it from a full 64 MiB ring.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/msgid.h"
#include "common/config.h"
#include "common/io.h"
#include "common/proto.h"
#include "hook/msgid.h"
#include "shm/ring.h"
#include "tests/tap.h"
#include <openssl/sha.h>

#define SEC UINT64_C(1000000) /* microseconds */

/* The model test: a small table, many random operations, few distinct hashes (long chains). */
#define MODEL_CAP    64U
#define MODEL_OPS    20000U
#define MODEL_TOKENS 300U
#define MODEL_HASHES 7U

/* The speed test: the default ring's index count (64 MiB / RING_IDX_DIVISOR). */
#define BENCH_CAP ((UINT64_C(64) << 20) / RING_IDX_DIVISOR)

/* Ring tests: the smallest ring; the rebuild figure: the default ring size. */
#define SMALL_DATA   ((uint64_t)RING_MIN_DATA)
#define BIG_DATA     (UINT64_C(64) << 20)
#define BIG_PAYLOAD  150U
#define T_TOPIC	     "t"
#define T_TOPIC_LEN  1U
#define PAYLOAD	     "{\"n\":1}"
#define PAYLOAD_LEN  7U
#define HOOK_ID_TEXT "gph1-00000000000000000042-"

static unsigned ring_counter;

static void ring_name(char *buf, size_t len)
{
	(void)snprintf(buf, len, "/t-msgid-%ld-%u", (long)getpid(), ring_counter++);
}

/* Remove a test ring; one already gone is fine. */
static void drop_ring(const char *name)
{
	int err = ring_unlink(name);

	if (err < 0 && err != -ENOENT)
		diag("unable to unlink ring '%s': %s", name, strerror(-err));
}

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible, and enough for choosing operations */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(0x2545f4914f6cdd1d);
}

static bool valid(const char *s)
{
	return proto_id_valid((const uint8_t *)s, strlen(s));
}

static void test_syntax(void)
{
	char buf[PROTO_MAX_ID + 2];

	diag("id syntax");
	ok(valid("a"), "one byte");
	ok(valid("!~"), "0x21 and 0x7e");
	ok(valid("550e8400-e29b-41d4-a716-446655440000"), "a UUID");
	ok(valid("a,b;c\"d"), "commas, semicolons and quotes are ordinary bytes");
	ok(!valid(""), "empty");
	ok(!valid("a b"), "a space");
	ok(!valid("a\tb"), "a tab");
	ok(!valid("a\x7f"), "DEL");
	ok(!valid("caf\xc3\xa9"), "non-ASCII");
	memset(buf, 'x', sizeof(buf));
	ok(proto_id_valid((const uint8_t *)buf, PROTO_MAX_ID), "%u bytes", PROTO_MAX_ID);
	ok(!proto_id_valid((const uint8_t *)buf, PROTO_MAX_ID + 1), "%u bytes", PROTO_MAX_ID + 1);
}

static void test_siphash(void)
{
	struct msgid_table t;
	uint8_t msg[15];

	diag("SipHash-2-4");
	if (msgid_init(&t, 8) < 0) {
		ok(0, "siphash: init");
		return;
	}
	/* the reference vectors of the SipHash paper (appendix A): key 00..0f */
	t.key[0] = UINT64_C(0x0706050403020100);
	t.key[1] = UINT64_C(0x0f0e0d0c0b0a0908);
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	is(msgid_hash(&t, msg, 15) == UINT64_C(0xa129ca6149be45e5), 1, "15 bytes 00..0e");
	is(msgid_hash(&t, msg, 0) == UINT64_C(0x726fdb47dd0e0e31), 1, "empty message");
	is(msgid_hash(&t, msg, 8) == UINT64_C(0x93f5f5799a932462), 1, "8 bytes, one full word");
	msgid_free(&t);
}

/* The model: which token each seq carries, and which seqs the table should still hold. */
struct model {
	uint64_t
		token_of[MODEL_OPS * 6 + 8]; /* seq -> token + 1; 0: no id (seq grows <= 5 an op) */
	uint64_t seq_of[MODEL_TOKENS];	     /* token -> held seq; 0: none */
	uint64_t hash_of[MODEL_TOKENS];
};

struct model_q {
	const struct model *m;
	uint64_t token;
};

static bool model_eq(void *ctx, uint64_t seq)
{
	const struct model_q *q = ctx;

	return q->m->token_of[seq] == q->token + 1;
}

static uint64_t model_find(const struct msgid_table *t, const struct model *m, uint64_t token)
{
	struct model_q q = { .m = m, .token = token };

	return msgid_find(t, m->hash_of[token], model_eq, &q);
}

/* Every token the model holds is found at its seq; every other one is not. */
static bool model_check(const struct msgid_table *t, const struct model *m, uint64_t *ret_held)
{
	uint64_t held = 0;

	for (uint64_t k = 0; k < MODEL_TOKENS; k++) {
		if (model_find(t, m, k) != m->seq_of[k])
			return false;
		held += m->seq_of[k] != 0;
	}
	*ret_held = held;
	return held == t->count;
}

static void model_forget_below(struct model *m, uint64_t before)
{
	for (uint64_t k = 0; k < MODEL_TOKENS; k++)
		if (m->seq_of[k] && m->seq_of[k] < before)
			m->seq_of[k] = 0;
}

static void test_model(void)
{
	static struct model m;
	struct msgid_table t;
	uint64_t seq = 1, held = 0, max_held = 0, inserts = 0, expires = 0, bad_at = 0;
	bool good = true;

	diag("table against a model: capacity %u, %u hashes for %u ids, %u operations", MODEL_CAP,
	     MODEL_HASHES, MODEL_TOKENS, MODEL_OPS);
	is(msgid_init(&t, 0), -EINVAL, "capacity 0 is refused");
	is(msgid_init(&t, 5), 0, "capacity 5");
	is(t.seq_mask, 7, "rounded up to 8");
	is(t.slot_mask, 15, "twice as many slots");
	msgid_free(&t);
	if (msgid_init(&t, MODEL_CAP) < 0) {
		ok(0, "model: init");
		return;
	}
	/* few distinct hashes, two of them homed in the last slots, so runs wrap around */
	for (uint64_t k = 0; k < MODEL_TOKENS; k++) {
		uint64_t h = k % MODEL_HASHES;

		m.hash_of[k] = h < 2 ? (t.slot_mask - h) | (h << 40) : h * 37 + 1;
	}
	for (unsigned op = 0; op < MODEL_OPS && good; op++) {
		uint64_t r = rnd() % 100, k = rnd() % MODEL_TOKENS;

		if (r < 70 && m.seq_of[k] == 0) {
			seq += rnd() % 10 ? 0 : 1 + rnd() % 2; /* a few messages carry no id */
			msgid_insert(&t, m.hash_of[k], seq);
			/* the table keeps at most capacity seqs: older ones go */
			if (seq >= MODEL_CAP)
				model_forget_below(&m, seq - MODEL_CAP + 1);
			m.token_of[seq] = k + 1;
			m.seq_of[k] = seq;
			seq++;
			inserts++;
		} else if (r < 73) {
			uint64_t before = t.oldest + rnd() % 6;

			msgid_expire(&t, before);
			model_forget_below(&m, before);
			if (seq < before)
				seq = before;
			expires++;
		}
		if (!model_check(&t, &m, &held)) {
			good = false;
			bad_at = op;
		}
		max_held = MAX(max_held, held);
	}
	ok(good, "every operation left the table equal to the model%s", good ? "" : " (see diag)");
	if (!good)
		diag("  first difference after operation %llu", (unsigned long long)bad_at);
	is(max_held, MODEL_CAP, "the table filled up to its capacity, never beyond");
	diag("model: %llu inserts, %llu expiries, up to %llu ids held", (unsigned long long)inserts,
	     (unsigned long long)expires, (unsigned long long)max_held);
	msgid_expire(&t, seq + 1);
	is(t.count, 0, "expiring past the newest empties the table");
	for (uint64_t i = 0; i <= t.slot_mask && t.slots; i++)
		if (t.slots[i]) {
			ok(0, "slot %llu still used", (unsigned long long)i);
			break;
		}
	msgid_free(&t);
	msgid_free(&t);
	ok(t.slots == NULL, "msgid_free twice is harmless");
}

static int open_ring(const char *name, uint64_t size, struct ring_writer *w)
{
	struct ring_params p = { .data_size = size };
	bool created;

	return ring_writer_open(name, &p, w, &created);
}

static int pub(struct ring_writer *w, const char *id, uint64_t now_us, uint64_t *ret_seq)
{
	uint64_t t;

	if (!id) /* no id: what ring_publish() passes, an empty one */
		id = "";
	return ring_publish_id(w, (const uint8_t *)id, (uint32_t)strlen(id),
			       (const uint8_t *)T_TOPIC, T_TOPIC_LEN, (const uint8_t *)PAYLOAD,
			       PAYLOAD_LEN, now_us, ret_seq, &t);
}

static uint64_t lookup(const struct msgid_table *t, const struct ring *r, const char *id)
{
	return msgid_lookup(t, r, (const uint8_t *)id, strlen(id),
			    msgid_hash(t, (const uint8_t *)id, strlen(id)));
}

static void test_ring(void)
{
	struct ring_writer w;
	struct msgid_table t;
	uint64_t sa = 0, sb = 0, sc = 0, sd = 0, sd2 = 0, s, seq, x;
	char name[64];
	int err;

	diag("with the ring: window, eviction, restart");
	ring_name(name, sizeof(name));
	if (open_ring(name, SMALL_DATA, &w) < 0 || msgid_init(&t, w.r.nidx) < 0) {
		ok(0, "ring: set up");
		drop_ring(name);
		return;
	}
	ok(pub(&w, "a", 1 * SEC, &sa) == 0 && pub(&w, NULL, 1 * SEC + 1, &s) == 0 &&
		   pub(&w, "b", 2 * SEC, &sb) == 0 && pub(&w, "c", 3 * SEC, &sc) == 0 &&
		   pub(&w, "d", 3 * SEC + 1, &sd) == 0 && pub(&w, "d", 3 * SEC + 2, &sd2) == 0,
	   "ring: a, (none), b, c, d, d");
	is(msgid_rebuild(&t, &w.r, 3 * SEC + 3, 10 * SEC), 4, "rebuild: 4 distinct ids");
	is(lookup(&t, &w.r, "a"), sa, "rebuild: a found");
	is(lookup(&t, &w.r, "c"), sc, "rebuild: c found");
	is(lookup(&t, &w.r, "d"), sd, "rebuild: an id held twice names its oldest message");
	is(lookup(&t, &w.r, "e"), 0, "rebuild: e not found");
	is(lookup(&t, &w.r, "aa"), 0, "rebuild: a longer id with the same start not found");
	/* a hash collision is not a duplicate: the bytes in the ring decide */
	x = msgid_hash(&t, (const uint8_t *)"a", 1);
	is(msgid_lookup(&t, &w.r, (const uint8_t *)"z", 1, x), 0,
	   "collision: another id under a's hash is not taken for a");

	is(msgid_rebuild(&t, &w.r, 12 * SEC + SEC / 2, 10 * SEC), 2,
	   "rebuild 12.5 s later with a 10 s window: c and d");
	is(lookup(&t, &w.r, "b"), 0, "rebuild: b is outside the window");

	is(msgid_rebuild(&t, &w.r, 3 * SEC + 3, 10 * SEC), 4, "rebuild again at 3 s");
	msgid_expire_ring(&t, &w.r, 12 * SEC + SEC / 2, 10 * SEC);
	is(t.count, 2, "expire at 12.5 s: a and b forgotten");
	is(lookup(&t, &w.r, "a"), 0, "expire: a gone");
	is(lookup(&t, &w.r, "c"), sc, "expire: c kept");

	/* the broker's order after an append: expire (frees what eviction took), then insert */
	err = pub(&w, "e", 4 * SEC, &seq);
	msgid_expire_ring(&t, &w.r, 4 * SEC, 10 * SEC);
	msgid_insert(&t, msgid_hash(&t, (const uint8_t *)"e", 1), seq);
	ok(err == 0 && lookup(&t, &w.r, "e") == seq, "insert after publish: e found");

	/* a broker restart: the ids come back from the ring */
	ring_writer_close(&w);
	msgid_free(&t);
	if (open_ring(name, SMALL_DATA, &w) < 0 || msgid_init(&t, w.r.nidx) < 0) {
		ok(0, "restart: reopen");
		drop_ring(name);
		return;
	}
	is(msgid_rebuild(&t, &w.r, 5 * SEC, 10 * SEC), 5, "restart: a, b, c, d, e rebuilt");
	is(lookup(&t, &w.r, "b"), sb, "restart: b found at its seq");

	/* eviction: fill the index with id-less messages until a..e are gone from the ring */
	for (uint64_t i = 0; i < w.r.nidx; i++)
		if (pub(&w, NULL, 6 * SEC + i, &seq) < 0)
			break;
	ok(ring_tail(&w.r) > sd2 + 1, "evict: the ring no longer holds a..e");
	msgid_expire_ring(&t, &w.r, 6 * SEC + w.r.nidx, 10 * SEC);
	is(t.count, 0, "evict: their ids are forgotten with them");
	is(lookup(&t, &w.r, "c"), 0, "evict: c not found");
	ring_writer_close(&w);
	msgid_free(&t);
	drop_ring(name);
}

static int load_cfg(const char *text, struct config *c)
{
	char path[] = "/tmp/t-msgid-cfg-XXXXXX";
	int fd = mkstemp(path), err;

	config_defaults(c);
	if (fd < 0)
		return -errno;
	err = io_write_full(fd, text, strlen(text));
	(void)close(fd);
	if (err == 0)
		err = config_load(path, c);
	(void)unlink(path);
	return err;
}

static void test_config(void)
{
	struct config c;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	diag("[History] messageIdWindow");
	config_defaults(&c);
	is(c.msgid_window_s, 600, "default 10 minutes");
	is(load_cfg("[History]\nmessageIdWindow: 0\n", &c), 0, "0 is accepted");
	is(c.msgid_window_s, 0, "0: off");
	is(load_cfg("[History]\nmessageIdWindow = 90\n", &c), 0, "90");
	is(c.msgid_window_s, 90, "a bare number is seconds");
	is(load_cfg("[history]\nMESSAGEIDWINDOW: 1h\n", &c), 0, "1h, names in any case");
	is(c.msgid_window_s, 3600, "1h is 3600 s");
	is(load_cfg("[History]\nmessageIdWindow: 500ms\n", &c), -EINVAL, "less than a second");
	is(load_cfg("[History]\nmessageIdWindow: -1\n", &c), -EINVAL, "negative");
	is(load_cfg("[History]\nmessageIdWindow: soon\n", &c), -EINVAL, "not a duration");
	config_defaults(&c);
	c.msgid_window_s = 42;
	f = open_memstream(&out, &len);
	if (f) {
		config_write(&c, f);
		(void)fclose(f);
	}
	ok(out && strstr(out, "\nmessageIdWindow: 42s\n"), "config_write shows it");
	free(out);
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		(void)sprintf(out + 2 * i, "%02x", p[i]);
}

static void sha(const void *p, size_t n, char out[2 * SHA256_DIGEST_LENGTH + 1])
{
	uint8_t d[SHA256_DIGEST_LENGTH];

	(void)SHA256(p, n, d);
	hex(d, sizeof(d), out);
}

static void test_hook(void)
{
	char h[2 * SHA256_DIGEST_LENGTH + 1], id[HOOK_MSGID_SIZE], id2[HOOK_MSGID_SIZE];
	const char *msg = "{\"commit\": {\"hash\": \"3f786850e387550fdab836ed7e6dc881de23001b\"}}";
	uint64_t n = 0;

	diag("the hook's ids");
	/* FIPS 180-4's example: the digest is libcrypto's SHA-256 */
	sha("abc", 3, h);
	is_str(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	       "sha256('abc')");

	hook_msgid(42, msg, strlen(msg), id);
	is(strlen(id), HOOK_MSGID_LEN, "hook id: %zu bytes", (size_t)HOOK_MSGID_LEN);
	ok(strncmp(id, HOOK_ID_TEXT, strlen(HOOK_ID_TEXT)) == 0, "hook id: prefix and number: %s",
	   id);
	sha(msg, strlen(msg), h);
	ok(strncmp(id + strlen(HOOK_ID_TEXT), h, HOOK_MSGID_HASH_HEX) == 0,
	   "hook id: then the digest's first %d hex digits", HOOK_MSGID_HASH_HEX);
	ok(valid(id), "hook id: a valid X-Message-Id");
	hook_msgid(42, msg, strlen(msg), id2);
	is_str(id2, id, "hook id: the same entry, the same id (a retry)");
	hook_msgid(43, msg, strlen(msg), id2);
	ok(strcmp(id2, id) != 0, "hook id: another number, another id");
	hook_msgid(42, msg, strlen(msg) - 1, id2);
	ok(strcmp(id2, id) != 0, "hook id: other bytes, another id");

	is(hook_msgid_number("00000000000000000042.json", &n), 0, "spool name: parsed");
	is(n, 42, "spool name: its number");
	is(hook_msgid_number("18446744073709551615.json", &n), 0, "spool name: UINT64_MAX");
	is(hook_msgid_number("18446744073709551616.json", &n), -EINVAL, "spool name: overflow");
	is(hook_msgid_number("0000000000000000042.json", &n), -EINVAL, "spool name: 19 digits");
	is(hook_msgid_number("00000000000000000042.jso", &n), -EINVAL, "spool name: suffix");
	is(hook_msgid_number(".tmp-1-2", &n), -EINVAL, "spool name: a temporary file");
}

struct bench_q {
	const uint64_t *tokens;
	uint64_t want;
};

static bool bench_eq(void *ctx, uint64_t seq)
{
	const struct bench_q *q = ctx;

	return q->tokens[seq] == q->want;
}

/* Figures for the README: the table at the default ring's size, and a rebuild from 64 MiB. */
static void test_figures(void)
{
	const uint64_t n = BENCH_CAP;
	uint64_t *tokens = calloc(n + 1, sizeof(*tokens)), *hashes = calloc(n + 1, sizeof(*hashes));
	uint64_t t0, t_ins, t_hit, t_miss, found = 0, wrong = 0, seq, built;
	struct msgid_table t;
	struct ring_writer w;
	char name[64], id[64];
	uint8_t payload[BIG_PAYLOAD];

	diag("figures");
	if (!tokens || !hashes || msgid_init(&t, n) < 0) {
		ok(0, "figures: allocate");
		free(tokens);
		free(hashes);
		return;
	}
	for (uint64_t s = 1; s <= n; s++) {
		int len = snprintf(id, sizeof(id), "id-%llu", (unsigned long long)s);

		tokens[s] = s;
		hashes[s] = msgid_hash(&t, (const uint8_t *)id, (size_t)len);
	}
	t0 = io_now_mono_us();
	for (uint64_t s = 1; s <= n; s++)
		msgid_insert(&t, hashes[s], s);
	t_ins = io_now_mono_us() - t0;
	t0 = io_now_mono_us();
	for (uint64_t s = 1; s <= n; s++) {
		struct bench_q q = { .tokens = tokens, .want = s };

		seq = msgid_find(&t, hashes[s], bench_eq, &q);
		found += seq == s;
		wrong += seq != s;
	}
	t_hit = io_now_mono_us() - t0;
	t0 = io_now_mono_us();
	for (uint64_t s = 1; s <= n; s++) {
		struct bench_q q = { .tokens = tokens, .want = 0 };

		wrong +=
			msgid_find(&t, hashes[s] ^ UINT64_C(0x5555555555555555), bench_eq, &q) != 0;
	}
	t_miss = io_now_mono_us() - t0;
	is(found, n, "figures: all %llu ids found", (unsigned long long)n);
	is(wrong, 0, "figures: no wrong answer");
	is(t.count, n, "figures: the table holds its capacity");
	diag("table of %llu ids (%llu KiB): insert %.0f ns, hit %.0f ns, miss %.0f ns per id",
	     (unsigned long long)n, (unsigned long long)((t.slot_mask + 1 + n) * 8 / 1024),
	     (double)t_ins * 1000.0 / (double)n, (double)t_hit * 1000.0 / (double)n,
	     (double)t_miss * 1000.0 / (double)n);
	msgid_free(&t);
	free(tokens);
	free(hashes);

	/* a restart of a broker whose 64 MiB ring is full of messages with ids */
	ring_name(name, sizeof(name));
	if (open_ring(name, BIG_DATA, &w) < 0 || msgid_init(&t, w.r.nidx) < 0) {
		ok(0, "figures: a 64 MiB ring");
		drop_ring(name);
		return;
	}
	memset(payload, '1', sizeof(payload));
	for (uint64_t s = 0; s < w.r.nidx; s++) {
		int len = snprintf(id, sizeof(id), "gph1-%020llu-%032llx", (unsigned long long)s,
				   (unsigned long long)s * 7919U);
		uint64_t tt;

		if (ring_publish_id(&w, (const uint8_t *)id, (uint32_t)len,
				    (const uint8_t *)T_TOPIC, T_TOPIC_LEN, payload, sizeof(payload),
				    0, &seq, &tt) < 0)
			break;
	}
	t0 = io_now_mono_us();
	built = msgid_rebuild(&t, &w.r, io_now_real_us(), 600 * SEC);
	t_ins = io_now_mono_us() - t0;
	is(built, ring_head(&w.r) - ring_tail(&w.r), "figures: every held id rebuilt");
	diag("rebuild at start-up: %llu ids from a full 64 MiB ring in %.1f ms",
	     (unsigned long long)built, (double)t_ins / 1000.0);
	ring_writer_close(&w);
	msgid_free(&t);
	drop_ring(name);
}

int main(void)
{
	test_syntax();
	test_siphash();
	test_model();
	test_ring();
	test_config();
	test_hook();
	test_figures();
	return done_testing();
}
