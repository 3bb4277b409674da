/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_REPO_H
#define GPS_HOOK_REPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "hook/jbuf.h"

/*
 * Reading the repository with git plumbing (hook/git.h). Every function takes the deadline of the
 * whole run (CLOCK_MONOTONIC microseconds) and returns -ETIMEDOUT once it has passed; a git that
 * fails returns -EIO (its message is shown only at debug level). Object names are lowercase hex:
 * 40 digits for SHA-1 repositories, 64 for SHA-256 ones.
 */

#define REPO_HEX_MAX 64

/* A byte range inside a buffer that outlives it; not NUL-terminated. */
struct span {
	const char *p;
	size_t n;
};

struct repo {
	char *git_dir; /* absolute path; owned */
	char *project; /* the repository's directory name; owned */
};

/*
 * Find the repository the hook runs in ($GIT_DIR, else the current directory) and name it: the
 * project is the git directory's name ("foo.git" for a bare repository), or for a ".git" folder
 * the name of the work tree around it. 0, -ENOENT when not inside a repository, -ENOEXEC when
 * git cannot be run, or -errno.
 */
_must_check_ int repo_open(struct repo *r, uint64_t deadline_us);
void repo_close(struct repo *r);

/*
 * The gitpubsub.* settings from `git config`, as pairs. 0 (also when none is set) or -errno.
 * Then repo_config_next() returns each pair in turn, the key without "gitpubsub." and
 * lowercased by git, both NUL-terminated inside *raw (which it modifies); false at the end.
 */
_must_check_ int repo_config(struct jbuf *raw, uint64_t deadline_us);
bool repo_config_next(struct jbuf *raw, size_t *pos, const char **ret_key, const char **ret_value);

enum obj_type {
	OBJ_MISSING = 0,
	OBJ_COMMIT,
	OBJ_TAG,
	OBJ_TREE,
	OBJ_BLOB,
};

const char *obj_type_name(enum obj_type t);

struct obj {
	char hex[REPO_HEX_MAX + 1];
	enum obj_type type;
};

/*
 * Resolve each of names[0..n) (a hex name, or one with a suffix such as "^{}" to peel tags) with
 * `git cat-file --batch-check` into out[i]; a name that does not resolve gets OBJ_MISSING and an
 * empty hex. 0 or -errno.
 */
_must_check_ int repo_resolve(const char *const names[], size_t n, struct obj *out,
			      uint64_t deadline_us);

/*
 * Append "<hex> <symref target> <refname>\n" for every ref (for-each-ref) to out; the target is
 * empty unless the ref is symbolic. 0 or -errno.
 */
_must_check_ int repo_refs(struct jbuf *out, uint64_t deadline_us);

/*
 * `git rev-list --topo-order --reverse --stdin` fed with revs (lines "<hex>" and "^<hex>"):
 * the commits reachable from the positive ones and from none of the negative ones, parents
 * before children. Appends "<hex>\n" lines to out. 0 or -errno.
 */
_must_check_ int repo_rev_list(const struct jbuf *revs, struct jbuf *out, uint64_t deadline_us);

struct commit {
	const char *hash;    /* full hex */
	const char *parents; /* full hexes, space-separated; "" for a root commit */
	const char *author;  /* author name, as recorded (no mailmap) */
	const char *email;
	const char *date; /* author date in git's default format */
	const char *log;  /* raw message, re-encoded to UTF-8 by git when it declares an encoding */
	size_t file0;	  /* its paths are files[file0 .. file0 + nfiles) of the set */
	size_t nfiles;
};

/* Commits read by one repo_commits() call; every string points into raw. */
struct commit_set {
	struct jbuf raw;
	struct commit *v; /* sorted by hash */
	size_t n;
	const char **files; /* paths changed: against the first parent, or all for a root commit */
	size_t nfiles;
};

/*
 * Read the commits hashes[0..n) (duplicates allowed) with one `git log --no-walk`. 0 or -errno
 * (-EBADMSG if git's output cannot be parsed); *out holds the result until commit_set_free().
 */
_must_check_ int repo_commits(const char *const hashes[], size_t n, struct commit_set *out,
			      uint64_t deadline_us);
/* The commit with this full hex in s, or NULL. */
const struct commit *commit_set_find(const struct commit_set *s, const char *hex);
void commit_set_free(struct commit_set *s);

struct tag {
	char hash[REPO_HEX_MAX + 1];
	struct span name;   /* the tag header: the name given at tagging time */
	struct span tagger; /* empty when the tag has no tagger line (very old tags) */
	struct span email;
	bool has_date;
	int64_t time;	 /* tagger date, unix seconds */
	int tz_minutes;	 /* its offset east of UTC */
	struct span msg; /* message without signature and trailing newlines */
};

/*
 * Read the annotated tags hashes[0..n) with `git cat-file --batch` into out[i] (spans point into
 * *raw, which must outlive them). A hash that is not a tag object gets an empty out[i].hash.
 * 0 or -errno.
 */
_must_check_ int repo_tags(const char *const hashes[], size_t n, struct tag *out, struct jbuf *raw,
			   uint64_t deadline_us);

/*
 * Parse a raw tag object's content (as `git cat-file tag` prints it) into t's spans and date;
 * t->hash is left alone. 0 or -EBADMSG.
 */
_must_check_ int repo_parse_tag(const char *p, size_t n, struct tag *t);

#endif
