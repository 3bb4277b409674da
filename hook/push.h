/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_PUSH_H
#define GPS_HOOK_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "hook/repo.h"

/*
 * From ref updates to messages: what one push made reachable, and what to say about it.
 *
 * A commit is published when the push made it reachable and no ref had it before the push.
 * "Before the push" is known exactly when the hook sees the whole push (post-receive's standard
 * input): every ref the push did not touch, plus the old value of every ref it did. The refs are
 * taken in the order git lists them and each commit goes to the first ref that reaches it, so
 * two refs pushed to the same new commits publish them once. Called once per ref (the three
 * argument form), the hook cannot tell the other refs of the same push from older ones.
 */

/* Longest ref name accepted: git's own limit is the file system's path length. */
#define PUSH_MAX_REF 4096

struct update {
	char old_hex[REPO_HEX_MAX + 1]; /* all zeros: the ref was created */
	char new_hex[REPO_HEX_MAX + 1]; /* all zeros: the ref was deleted */
	char *ref;			/* full name; owned */
};

/*
 * Fill u from the three fields git gives ("<old> <new> <ref>"). Hex digits are lowercased. 0, or
 * -EINVAL (u untouched) if a name is not 40 or 64 hex digits, the two differ in length, or the ref
 * is empty, longer than PUSH_MAX_REF or holds a space or control character; -ENOMEM.
 */
_must_check_ int update_set(struct update *u, const char *old_hex, const char *new_hex,
			    const char *ref);
/* The same from one line of post-receive's input (without its newline). */
_must_check_ int update_parse(const char *line, size_t len, struct update *u);
void update_free(struct update *u);
/* Whether hex is the all-zero name git uses for "no object". */
bool hex_is_zero(const char *hex);

struct msg_list {
	char **v; /* each a NUL-terminated JSON text; owned */
	size_t n;
	size_t cap;
};

void msg_list_free(struct msg_list *l);
/* Append a copy of the n bytes at p. 0 or -ENOMEM. */
_must_check_ int msg_list_add(struct msg_list *l, const char *p, size_t n);

struct push_stats {
	size_t skipped; /* updates whose objects could not be read: nothing published for them */
};

/*
 * Append to out the messages for updates u[0..n) of repository r, in that order, each update's
 * oldest first; at most max_commits commits per update (then a notice first). Returns 0, or
 * -ETIMEDOUT / -ENOMEM / -errno when it had to stop: the messages of the updates finished before
 * stay in out, so what was read can still be sent.
 */
_must_check_ int push_build(const struct repo *r, const struct update *u, size_t n,
			    uint32_t max_commits, struct msg_list *out, struct push_stats *stats,
			    uint64_t deadline_us);

#endif
