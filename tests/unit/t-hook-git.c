/* SPDX-License-Identifier: MIT */
/* hook/git.c: running a plumbing command with input, output and a deadline, no shell. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/io.h"
#include "hook/git.h"
#include "tests/tap.h"

int main(void)
{
	static const char *const version[] = { "git", "--version", NULL };
	static const char *const hash[] = { "git", "hash-object", "--stdin", NULL };
	static const char *const cat[] = { "cat", NULL };
	static const char *const sleeper[] = { "sleep", "5", NULL };
	static const char *const missing[] = { "gitpubsub-no-such-program", NULL };
	static const char *const failing[] = {
		"git", "rev-parse", "--verify", "-q", "no-such-ref-anywhere", NULL
	};
	static const char *const shellish[] = { "echo", "$(touch /tmp/t-hook-git-injected);",
						NULL };
	uint64_t t0, took;
	struct jbuf out = JBUF_INIT;
	char big[200000];

	is(git_run(version, NULL, 0, io_now_mono_us() + 5000000, &out), 0, "git --version runs");
	ok(out.data && strncmp(out.data, "git version ", 12) == 0, "and its output is captured");

	jbuf_reset(&out);
	is(git_run(hash, "hello\n", 6, io_now_mono_us() + 5000000, &out), 0,
	   "hash-object --stdin runs");
	is_str(out.data, "ce013625030ba8dba906f756967f9e9ca394464a\n",
	       "standard input reaches the child");

	/* more than a pipe holds, both ways: no deadlock */
	memset(big, 'z', sizeof(big));
	jbuf_reset(&out);
	is(git_run(cat, big, sizeof(big), io_now_mono_us() + 5000000, &out), 0, "cat of 200 kB");
	ok(out.len == sizeof(big) && memcmp(out.data, big, sizeof(big)) == 0,
	   "everything comes back");

	jbuf_reset(&out);
	t0 = io_now_mono_us();
	is(git_run(sleeper, NULL, 0, t0 + 200000, &out), -ETIMEDOUT, "a child past the deadline");
	took = io_now_mono_us() - t0;
	ok(took < 1500000, "is killed at the deadline (%llu us)", (unsigned long long)took);

	is(git_run(missing, NULL, 0, io_now_mono_us() + 5000000, &out), 127,
	   "a missing program exits 127");
	is(git_run(failing, NULL, 0, io_now_mono_us() + 5000000, &out), 1,
	   "a failing git gives its exit status");

	jbuf_reset(&out);
	(void)remove("/tmp/t-hook-git-injected");
	is(git_run(shellish, NULL, 0, io_now_mono_us() + 5000000, &out), 0, "echo runs");
	is_str(out.data, "$(touch /tmp/t-hook-git-injected);\n", "arguments reach it verbatim");
	ok(access("/tmp/t-hook-git-injected", F_OK) != 0, "and no shell ran them");

	jbuf_free(&out);
	return done_testing();
}
