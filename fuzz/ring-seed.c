/* SPDX-License-Identifier: MIT */
/*
 * ring-seed DIR: write seed images for fuzz/fuzz-ring.c into DIR, made by the writer API.
 *
 * A real ring is created in /dev/shm under a name of its own, messages are published to it as
 * the broker publishes them (stored topics, normalised JSON, some with a message id), and the
 * mapping is written out in fuzz-ring's input format: [mode][struct ring_hdr][idx][data]. The
 * writer's index has at least RING_MIN_IDX entries, most of them zero; the image keeps the
 * SEED_NIDX newest ones (each entry in the slot seq & (SEED_NIDX - 1), where a reader of the
 * smaller index looks) and the data bytes up to the newest record, so a seed stays a few KiB.
 * The ring is unlinked before exiting.
 *
 * `make fuzz` runs this before the fuzzers, so the seeds follow shm/ring.h when it changes;
 * fuzz/corpus/ring/ holds a copy made by it. Exit codes: 0 done, 1 failure, 2 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shm/ring.h"

/* Index entries kept in an image: a power of two, below fuzz-ring's FUZZ_RING_MAX_IDX. */
#define SEED_NIDX 16U

/* fuzz-ring's mode byte: stamp the creation constants, or take the header as it is. */
#define SEED_MODE_FIXUP	 0x01U
#define SEED_MODE_RAW	 0x00U
/* ... and run the writer on it: the mode byte is followed by fuzz-ring's ops block */
#define SEED_MODE_WRITER 0x03U
/* ... with the ring or its statistics object planted first, as ops[SEED_OP_OWNER] says */
#define SEED_MODE_OWNER	 0x07U
#define SEED_OPS_LEN	 16U
#define SEED_OP_OWNER	 9U

/* A fixed clock (2023-11-14), one message a second: seeds come out the same on every run. */
#define SEED_T0_US UINT64_C(1700000000000000)
#define SEED_STEP  UINT64_C(1000000)

struct seed_msg {
	const char *id; /* NULL: none */
	const char *topic;
	size_t topic_len; /* the stored form has NULs: its length is given */
	const char *payload;
};

#define TOPIC(s) s, sizeof(s) - 1

static const struct seed_msg seed_msgs[] = {
	{ NULL, TOPIC("json"), "{\"hello\":\"world\"}" },
	{ "a1b2c3d4", TOPIC("git\0gitpubsub\0commit"),
	  "{\"commit\":{\"repository\":\"gitpubsub\",\"ref\":\"refs/heads/main\","
	  "\"hash\":\"0123456789abcdef0123456789abcdef01234567\",\"author\":\"A. U. Thor\","
	  "\"subject\":\"Fix the parser\",\"log\":\"Fix the parser\\n\\nIt read past the end.\","
	  "\"files\":[\"frontend/http.c\"]}}" },
	{ NULL, TOPIC(""), "[1,2.5,-3e2,true,false,null]" },
	{ "x", TOPIC("json\0x/y"), "\"\\u00e9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"" },
	{ "retry-7", TOPIC("git\0*x\0refs"), "{\"stillalive\":false}" },
};

/* Write [mode][ops, writer seeds only][hdr][idx of SEED_NIDX][data up to data_head] to
 * dir/name. ops: SEED_OPS_LEN bytes (fuzz-ring.c's OP_*), or NULL. 0 or -errno. */
static int write_image(const struct ring *r, const char *dir, const char *name, uint8_t mode,
		       const uint8_t *ops)
{
	struct ring_hdr hdr;
	struct ring_idx idx[SEED_NIDX];
	uint64_t head = ring_head(r), data_head, used;
	char path[4096];
	FILE *f;
	int err = 0;

	memcpy(&hdr, r->hdr, sizeof(hdr));
	hdr.nidx = SEED_NIDX;
	memset(idx, 0, sizeof(idx));
	for (uint64_t s = head > SEED_NIDX ? head - SEED_NIDX : 1; s < head; s++)
		memcpy(&idx[s & (SEED_NIDX - 1)], &r->idx[s & r->idx_mask], sizeof(idx[0]));
	data_head = atomic_load_explicit(&r->hdr->data_head, memory_order_relaxed);
	/* The seeds never fill the data area, so the newest record ends at data_head. */
	used = data_head < r->data_size ? data_head : r->data_size;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	if (fwrite(&mode, 1, 1, f) != 1 || (ops && fwrite(ops, SEED_OPS_LEN, 1, f) != 1) ||
	    fwrite(&hdr, sizeof(hdr), 1, f) != 1 || fwrite(idx, sizeof(idx), 1, f) != 1 ||
	    fwrite(r->data, 1, (size_t)used, f) != used)
		err = -EIO;
	if (fclose(f) != 0 && err == 0)
		err = -errno;
	return err;
}

/*
 * fuzz-ring's OP_OWNER: the plant (bits 0-2: 0 ours, 1 mode 0666, 2 0620, 3 0602, 4 a FIFO, 5 a
 * symbolic link, 6 another user's, 7 another user's and 0664), bit 3 the statistics object,
 * bit 7 both, bits 4-6 [History] ringOwner (0 none, 2 "nobody", 3 "65534", 4 "root", 5
 * "daemon", 6 a user that does not exist, 7 "65534x"). One seed each for a refusal of every
 * kind and for every way an object is still accepted.
 */
static const struct owner_seed {
	const char *name;
	uint8_t op;
} owner_seeds[] = {
	{ "owner-ring-0666", 0x01 },
	{ "owner-ring-fifo", 0x24 }, /* refused though ringOwner is set */
	{ "owner-ring-symlink", 0x05 },
	{ "owner-ring-other", 0x06 },	       /* refused: ringOwner unset */
	{ "owner-ring-other-named", 0x26 },    /* accepted: ringOwner "nobody" */
	{ "owner-ring-other-daemon", 0x56 },   /* refused: ringOwner names another user */
	{ "owner-stats-other-uid", 0x3e },     /* accepted: ringOwner "65534" */
	{ "owner-stats-0620", 0x0a },	       /* ours: the writer replaces it */
	{ "owner-stats-other-0664", 0x5f },    /* refused: ringOwner "daemon" */
	{ "owner-stats-symlink", 0x4d },       /* refused: ringOwner "root" */
	{ "owner-stats-ours", 0x68 },	       /* accepted: ours, whatever ringOwner says */
	{ "owner-stats-other-unknown", 0x6e }, /* refused: ringOwner names no user */
	{ "owner-both-0602", 0xf3 },	       /* the ring is named first */
};

/* Publish n messages, cycling through seed_msgs, at one a second from t. 0 or -errno. */
static int publish(struct ring_writer *w, size_t n, uint64_t *t)
{
	for (size_t i = 0; i < n; i++) {
		const struct seed_msg *m =
			&seed_msgs[i % (sizeof(seed_msgs) / sizeof(seed_msgs[0]))];
		uint64_t seq, time_us;
		int err;

		err = ring_publish_id(w, (const uint8_t *)m->id,
				      m->id ? (uint32_t)strlen(m->id) : 0,
				      (const uint8_t *)m->topic, (uint32_t)m->topic_len,
				      (const uint8_t *)m->payload, (uint32_t)strlen(m->payload), *t,
				      &seq, &time_us);
		if (err < 0)
			return err;
		*t += SEED_STEP;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct ring_params p = { .data_size = (uint64_t)RING_MIN_DATA,
				 .retention_us = 10 * SEED_STEP };
	struct ring_writer w;
	char name[64];
	uint64_t t = SEED_T0_US;
	bool created;
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: ring-seed DIR\n");
		return 2;
	}
	(void)snprintf(name, sizeof(name), "/gitpubsub-fuzz-seed-%ld", (long)getpid());
	err = ring_writer_open(name, &p, &w, &created);
	if (err < 0) {
		fprintf(stderr, "ring-seed: unable to create ring '%s': %s\n", name,
			strerror(-err));
		return 1;
	}

	/* A few messages: every record and entry readable. */
	err = publish(&w, 5, &t);
	if (!err)
		err = write_image(&w.r, argv[1], "writer-few", SEED_MODE_FIXUP, NULL);
	if (!err)
		err = write_image(&w.r, argv[1], "writer-few-raw", SEED_MODE_RAW, NULL);
	/* the writer restarting on it: three publishes, expiry and a skip; then seven that
	 * wrap the data area (up to 50 KiB each, a 64 KiB ring), the stats object spoiled */
	if (!err)
		err = write_image(&w.r, argv[1], "writer-few-restart", SEED_MODE_WRITER,
				  (const uint8_t[SEED_OPS_LEN]){ 0x1b, 0, 200, 1, 5, 3, 10, 1, 4 });
	if (!err)
		err = write_image(
			&w.r, argv[1], "writer-few-wrap", SEED_MODE_WRITER,
			(const uint8_t[SEED_OPS_LEN]){ 0x47, 1, 0x50, 0x50, 9, 0, 0, 0, 0 });
	/* and on objects planted under its names; every other one with --recreate, same verdict */
	for (size_t i = 0; !err && i < sizeof(owner_seeds) / sizeof(owner_seeds[0]); i++) {
		uint8_t ops[SEED_OPS_LEN] = { 0x1b, 0, 200, 1, 5, 3, 10, 1, 4 };

		ops[0] |= i & 1 ? 0x20 : 0;
		ops[SEED_OP_OWNER] = owner_seeds[i].op;
		err = write_image(&w.r, argv[1], owner_seeds[i].name, SEED_MODE_OWNER, ops);
	}

	/* More than the image's index holds, the oldest expired: tail, lo and -ESTALE in play. */
	if (!err)
		err = publish(&w, 35, &t);
	if (!err) {
		(void)ring_expire(&w, t);
		err = write_image(&w.r, argv[1], "writer-many", SEED_MODE_FIXUP, NULL);
	}

	ring_writer_close(&w);
	if (ring_unlink(name) < 0)
		fprintf(stderr, "ring-seed: unable to remove ring '%s', ignoring\n", name);
	if (err < 0) {
		fprintf(stderr, "ring-seed: unable to write the seeds to '%s': %s\n", argv[1],
			strerror(-err));
		return 1;
	}
	return 0;
}
