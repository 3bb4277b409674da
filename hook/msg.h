/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_MSG_H
#define GPS_HOOK_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "hook/jbuf.h"
#include "hook/repo.h"

/*
 * The messages the hook publishes (PROTOCOL 10, documented in hook/README.md). Every message is
 * {"commit": {...}} with the original hook's fields in this order: repository, project, ref,
 * hash, shortHash, author, email, date, log, files, changes, then "merge" for a merge. Messages
 * that are not about one commit (a deletion, a tag, a ref to a tree or blob, the notice that
 * commits were left out) carry the same fields, well-formed, plus "type" and their own fields.
 * Builders append to a jbuf and never fail on their own: check jbuf_error() afterwards.
 */

/*
 * What one message may carry. The server refuses bodies over 2 MiB by default (PROTOCOL 4.4) and
 * a refused message is useless, so the long fields are capped on input bytes; even if every byte
 * had to be escaped as \u00XX (6 bytes each) a message stays under 1 MiB.
 */
#define MSG_MAX_LOG	    ((size_t)64 << 10) /* the commit or tag message */
#define MSG_MAX_FILES	    1000U	       /* paths listed in "files" */
#define MSG_MAX_FILES_BYTES ((size_t)64 << 10) /* their total length */
#define MSG_MAX_FIELD	    ((size_t)1 << 10)  /* author, email, tag name */
/* Appended to a log cut at MSG_MAX_LOG. */
#define MSG_TRUNCATED_LOG   "\n[message truncated]"
/* Digits of "shortHash" and of the parents in "merge": the original hook's 7. */
#define MSG_SHORT_HASH	    7
/* Room for a date in git's default format, "Thu Nov 26 16:15:36 2026 +0000" and then some. */
#define MSG_DATE_MAX	    64

/* What every message of one ref update shares. */
struct msg_ctx {
	const char *project;
	const char *ref;
	const char *now; /* the current date, for messages about no commit */
};

/*
 * A date in git's default format ("Thu Apr 7 15:13:13 2005 -0700"), in the given offset east of
 * UTC in minutes, into buf (always NUL-terminated).
 */
void msg_format_date(int64_t t, int tz_minutes, char buf[MSG_DATE_MAX]);
/* The current time the same way, in the local time zone. */
void msg_format_now(char buf[MSG_DATE_MAX]);

/* The message for commit c (its paths in s). */
void msg_commit(struct jbuf *b, const struct msg_ctx *m, const struct commit *c,
		const struct commit_set *s);
/* A ref deleted; old_hex is what it pointed at. */
void msg_delete(struct jbuf *b, const struct msg_ctx *m, const char *old_hex);
/* An annotated tag t, whose fully peeled target is target. */
void msg_tag_annotated(struct jbuf *b, const struct msg_ctx *m, const struct tag *t,
		       const struct obj *target);
/* A lightweight tag on commit c. */
void msg_tag_commit(struct jbuf *b, const struct msg_ctx *m, const struct commit *c);
/* A lightweight tag on a tree or blob. */
void msg_tag_object(struct jbuf *b, const struct msg_ctx *m, const struct obj *o);
/* A ref outside refs/tags/ set to a tree or blob. */
void msg_object(struct jbuf *b, const struct msg_ctx *m, const struct obj *o);
/* omitted commits of this update were left out, the newest of them newest_hex; limit per ref. */
void msg_truncated(struct jbuf *b, const struct msg_ctx *m, const char *newest_hex, size_t omitted,
		   uint32_t limit);

#endif
