/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_TOKENS_H
#define GPS_COMMON_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "common/sha256.h"

/*
 * Publish tokens ([Clients] tokensFile, README "Publishing with a token"). The file holds lines
 *
 *   sha256:<64 lowercase hex digits> <prefix> [<prefix> ...]
 *
 * ('#' comments and blank lines ignored): the SHA-256 of a token and the topic prefixes it may
 * publish to. A prefix is a topic path ("/json/git/project-a") that covers itself and every
 * topic below it, segment by segment as a subscription does (PROTOCOL 2.2): "/" covers every
 * topic. Prefixes are written plainly: no '%' escape and no '*' segment.
 *
 * The file is a secret's neighbour: one readable or writable by group or others is refused
 * whole. A malformed line is reported with its number and skipped; the rest load.
 *
 * A token is what RFC 6750 calls a b64token: 1 to TOKEN_MAX bytes of letters, digits and
 * "-._~+/", then optional '='. Only its digest is kept, and tokens_find() compares the digest
 * of a presented token with every known one, in a time that depends only on the number of
 * known tokens and the presented token's length.
 */

#define TOKEN_MAX	   512u	   /* longest token taken: a generated one is 47 bytes */
#define TOKENS_LINE_MAX	   8192u   /* longest line of the file */
#define TOKENS_MAX	   100000u /* entries; O(n) per check: fine, a check is 32 bytes each */
#define TOKEN_PREFIXES_MAX 64u	   /* prefixes on one line */

struct token_prefix {
	uint32_t off, len; /* stored form (shm/topic.h) in tokens.bytes */
};

struct token {
	uint8_t digest[SHA256_BYTES];
	uint32_t first, n; /* its prefixes: tokens.prefixes[first..first + n) */
};

/* The file's identity when it was last read: any change of these means "read it again".
 * Only uint64_t fields, so that memcmp() compares them all and nothing else. */
struct tokens_stamp {
	uint64_t present; /* 1: the file was there; 0: the rest is 0 too */
	uint64_t dev, ino, size, mode, mtime_ns, ctime_ns;
};

struct tokens {
	struct token *t;
	size_t n;
	struct token_prefix *prefixes;
	size_t nprefixes;
	uint8_t *bytes;
	size_t nbytes;
	struct tokens_stamp stamp; /* of the file these came from */
	uint64_t checked_us;	   /* monotonic time of the last tokens_refresh() look */
};

/*
 * Read the tokens file at path into *ret (empty before: tokens_done() what it held). Problems
 * are logged with path and line. Returns the number of tokens loaded, or -EINVAL when a line was
 * bad (the others loaded), -EPERM when the file's mode lets group or others in (nothing loaded),
 * -ENOMEM, or the -errno of opening or reading it (nothing loaded). *ret is always usable.
 */
_must_check_ int tokens_load(const char *path, struct tokens *ret);

/* Release what t holds; t is empty afterwards. */
void tokens_done(struct tokens *t);

/*
 * If t was never looked at (checked_us 0), or the file at path is not the one t was read from
 * (a stat(2): device, inode, size, mode, times), read it (again) and replace t's tokens (logged,
 * as tokens_load). Returns 1 when it did, 0 when nothing changed. now_us is the monotonic time
 * (never 0), kept as t->checked_us.
 */
int tokens_refresh(const char *path, struct tokens *t, uint64_t now_us);

/* Whether token[0..len) has the syntax of a token. */
bool tokens_syntax_ok(const char *token, size_t len);

/*
 * The index of the known token whose digest is that of token[0..len), or -1. Every entry is
 * compared whatever matches (sha256_equal), so the time says nothing of how close a guess was.
 */
long tokens_find(const struct tokens *t, const char *token, size_t len);

/* Whether token i may publish to the stored topic[0..len) (shm/topic.h's form). */
bool tokens_allows(const struct tokens *t, size_t i, const uint8_t *topic, size_t len);

/*
 * Parse one prefix ("/a/b") into its stored form in out (capacity cap: len bytes suffice).
 * Returns the stored length, or -EINVAL (no leading '/', a '%' or '*' segment, a control or
 * space byte).
 */
_must_check_ long tokens_prefix_parse(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
