/* SPDX-License-Identifier: MIT */
/*
 * t-tokens: common/tokens.c. Prefix syntax and matching by whole segments (PROTOCOL 2.2), the
 * token syntax (RFC 6750 b64token), the file: bad lines skipped with the rest loaded, a mode
 * open to others refused, a change noticed by tokens_refresh().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/io.h"
#include "common/sha256.h"
#include "common/tokens.h"
#include "tests/tap.h"

static char path[] = "/tmp/t-tokens.XXXXXX";

/* Write the tokens file: a line per argument, each "TOKEN PREFIXES" turned into its digest. */
static void write_file(mode_t mode, const char *const *lines, size_t n)
{
	FILE *f = fopen(path, "w");

	if (!f)
		exit(1);
	for (size_t i = 0; i < n; i++) {
		const char *sp = strchr(lines[i], ' ');
		uint8_t d[SHA256_BYTES];

		if (lines[i][0] == '!') { /* written as it is */
			fprintf(f, "%s\n", lines[i] + 1);
			continue;
		}
		sha256_digest(lines[i], sp ? (size_t)(sp - lines[i]) : strlen(lines[i]), d);
		fprintf(f, "sha256:");
		for (size_t k = 0; k < sizeof(d); k++)
			fprintf(f, "%02x", d[k]);
		fprintf(f, "%s\n", sp ? sp : "");
	}
	(void)fclose(f);
	if (chmod(path, mode) < 0)
		exit(1);
}

/* The timing figure: the fastest of TIMING_RUNS runs of TIMING_ROUNDS look-ups, so a run that
 * the scheduler interrupted does not count. */
#define TIMING_RUNS   5
#define TIMING_ROUNDS 40000

/* Nanoseconds per tokens_find() of token. */
static double find_ns(const struct tokens *t, const char *token)
{
	double best = 0;
	long sink = 0;

	for (int r = 0; r < TIMING_RUNS; r++) {
		uint64_t start = io_now_mono_us();
		double ns;

		for (int i = 0; i < TIMING_ROUNDS; i++)
			sink += tokens_find(t, token, strlen(token));
		ns = (double)(io_now_mono_us() - start) * 1000.0 / TIMING_ROUNDS;
		if (r == 0 || ns < best)
			best = ns;
	}
	if (sink == 42)
		diag("(unreachable: keeps the loop)");
	return best;
}

static bool allows(const struct tokens *t, const char *token, const char *stored, size_t len)
{
	long i = tokens_find(t, token, strlen(token));

	return i >= 0 && tokens_allows(t, (size_t)i, (const uint8_t *)stored, len);
}

int main(void)
{
	static const char *const good[] = {
		"!# comment",	  "tokA /json/git/a",	"!",
		"tokB /x /y//z/", "!sha256:12 /bad",	"tokC",
		"tokD /a/*/b",	  "tokE /a%2Fb",	"tokAll /",
		"!SHA256:00 /x",  "tokF json/relative",
	};
	struct tokens t = { 0 };
	uint8_t out[64];
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	(void)close(fd);

	is(tokens_prefix_parse("/json//git/", 11, out, sizeof(out)), 8,
	   "prefix: empty segments go");
	ok(memcmp(out, "json\0git", 8) == 0, "prefix: segments joined by NUL");
	is(tokens_prefix_parse("/", 1, out, sizeof(out)), 0, "prefix: / is every topic");
	is(tokens_prefix_parse("/a/*", 4, out, sizeof(out)), -EINVAL, "prefix: no * segment");
	is(tokens_prefix_parse("/a*", 3, out, sizeof(out)), 2, "prefix: a* is a plain segment");
	is(tokens_prefix_parse("/a%20", 5, out, sizeof(out)), -EINVAL, "prefix: no %% escape");
	is(tokens_prefix_parse("a", 1, out, sizeof(out)), -EINVAL, "prefix: starts with /");

	ok(tokens_syntax_ok("abc-._~+/09==", 13), "token: b64token bytes and = padding");
	ok(!tokens_syntax_ok("", 0), "token: not empty");
	ok(!tokens_syntax_ok("a b", 3), "token: no space");
	ok(!tokens_syntax_ok("=a", 2), "token: = only at the end");
	ok(!tokens_syntax_ok("a;", 2), "token: no ;");

	write_file(0600, good, ARRAY_SIZE(good));
	is(tokens_load(path, &t), -EINVAL, "a file with bad lines: -EINVAL");
	is(t.n, 3, "and its good lines loaded");
	ok(allows(&t, "tokA", "json\0git\0a", 10), "A: its prefix itself");
	ok(allows(&t, "tokA", "json\0git\0a\0refs", 15), "A: below its prefix");
	ok(!allows(&t, "tokA", "json\0git\0ab", 11), "A: not a longer segment");
	ok(!allows(&t, "tokA", "json\0git", 8), "A: not above its prefix");
	ok(allows(&t, "tokB", "y\0z\0w", 5), "B: its second prefix");
	ok(allows(&t, "tokAll", "", 0) && allows(&t, "tokAll", "q", 1), "/: every topic");
	is(tokens_find(&t, "tokC", 4), -1, "a line without prefix is skipped");
	is(tokens_find(&t, "tokZ", 4), -1, "an unknown token is not found");
	{
		double warm = find_ns(&t, "warmup"); /* caches and clock speed settle first */
		double known = find_ns(&t, "tokAll"), near = find_ns(&t, "tokAlm"),
		       unknown = find_ns(&t, "zzzzzz");

		diag("figure: tokens_find over 3 tokens: known %.0f ns, almost right %.0f ns, "
		     "unknown %.0f ns (warm-up %.0f ns)",
		     known, near, unknown, warm);
		/* a generous bound, so that a loaded machine cannot make it flake */
		ok(near < unknown * 3 && unknown < near * 3 && known < unknown * 3,
		   "the time of a look-up does not tell how close a token was");
	}

	tokens_done(&t);
	t.checked_us = 0;
	is(tokens_refresh(path, &t, 1), 1, "refresh: never looked at, the file is read");
	is(t.n, 3, "all of it");
	is(tokens_refresh(path, &t, 2), 0, "refresh: nothing changed, nothing read");
	write_file(0644, good, 2);
	is(tokens_refresh(path, &t, 2), 1, "refresh: a changed file is read again");
	is(t.n, 0, "a file readable by others is refused whole");
	is(tokens_load(path, &t), -EPERM, "with -EPERM");
	(void)chmod(path, 0400);
	is(tokens_refresh(path, &t, 3), 1, "refresh: a chmod is a change");
	is(t.n, 1, "mode 0400 is accepted");
	(void)unlink(path);
	is(tokens_refresh(path, &t, 4), 1, "refresh: a removed file is a change");
	is(t.n, 0, "and leaves no token");
	tokens_done(&t);
	return done_testing();
}
