/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_SPOOL_H
#define GPS_HOOK_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "hook/jbuf.h"

/*
 * The spool: messages not yet delivered, one file each, in $GIT_DIR/gitpubsub/spool/.
 *
 * Every run first queues its new messages here, then delivers the whole spool oldest first; so a
 * message exists on disk before any attempt to send it, and whatever is not delivered simply
 * stays. Two locks (flock(2), released by the kernel if the holder dies), both files in the
 * spool folder:
 *   - .queue.lock, held for the few milliseconds it takes to number and write one run's
 *     messages, so a run's messages are consecutive and numbers never collide;
 *   - .deliver.lock, held by the one run that is sending. A message is removed only after the
 *     server's 200 and before the lock is released, so no two runs send the same file. A crash
 *     between the 200 and the removal sends that message again later: at least once, never lost.
 *
 * Names are the message's number as 20 decimal digits plus ".json", so sorting the names sorts
 * the messages oldest first. A run numbers its messages from max(now in microseconds, highest
 * name in the spool + 1): numbers grow even if the clock steps back while messages wait.
 * A file is written as ".tmp-<pid>-<n>" and renamed into place, so a reader never sees half a
 * message. Files are not fsync'ed: like git's own default, a power cut may lose the newest few;
 * an empty or torn file is refused by the server and set aside (spool_reject), never sent twice.
 *
 * A message the server refuses for good (400, 413) is moved to $GIT_DIR/gitpubsub/rejected/
 * rather than blocking every message after it.
 */

#define SPOOL_BASE_DIR	    "gitpubsub"
#define SPOOL_DIR	    "spool"
#define SPOOL_REJECTED_DIR  "rejected"
#define SPOOL_QUEUE_LOCK    ".queue.lock"
#define SPOOL_DELIVER_LOCK  ".deliver.lock"
#define SPOOL_TMP_PREFIX    ".tmp-"
#define SPOOL_SUFFIX	    ".json"
/* UINT64_MAX has 20 digits: any number fits, and fixed width makes names sort as numbers. */
#define SPOOL_DIGITS	    20
#define SPOOL_NAME_MAX	    (SPOOL_DIGITS + sizeof(SPOOL_SUFFIX))
/* A temporary file this old belongs to a writer that died: removed when the spool is listed. */
#define SPOOL_TMP_MAX_AGE_S 3600
/* A spool file larger than this is no message of ours (hook/msg.h caps them near 1 MiB). */
#define SPOOL_MAX_FILE	    ((size_t)4 << 20)

struct spool {
	int base_fd;	/* $GIT_DIR/gitpubsub */
	int dir_fd;	/* .../spool */
	int deliver_fd; /* the delivery lock, -1 unless held */
	char *path;	/* of the spool folder, for messages; owned */
};

struct spool_names {
	char (*v)[SPOOL_NAME_MAX];
	size_t n;
};

/*
 * Open the spool of the repository at git_dir, creating the folders if create is set (with the
 * permissions of git_dir itself, so a shared repository's spool is shared too). 0; -ENOENT if it
 * does not exist and create is false; -errno. On failure s holds nothing to close.
 */
_must_check_ int spool_open(struct spool *s, const char *git_dir, bool create);
/* Release the locks and fds. Accepts a spool that failed to open. */
void spool_close(struct spool *s);

/*
 * Queue msgs[0..n) (NUL-terminated JSON texts), in order, after everything already queued.
 * *ret_added is how many were written: on error, the first *ret_added are queued and the rest
 * are not. 0 or -errno (-ETIMEDOUT if the queue lock was not had by deadline_us).
 */
_must_check_ int spool_add(struct spool *s, char *const msgs[], size_t n, size_t *ret_added,
			   uint64_t deadline_us);

/* The names of the queued messages, oldest first. 0 or -errno; free with spool_names_free(). */
_must_check_ int spool_list(struct spool *s, struct spool_names *out);
void spool_names_free(struct spool_names *l);

/*
 * Take the delivery lock, trying until deadline_us. 0, -ETIMEDOUT if another run held it all
 * along, or -errno. Kept until spool_unlock_delivery() or spool_close().
 */
_must_check_ int spool_lock_delivery(struct spool *s, uint64_t deadline_us);
void spool_unlock_delivery(struct spool *s);

/* Read message name into out (reset first), without trailing whitespace. 0 or -errno. */
_must_check_ int spool_read(struct spool *s, const char *name, struct jbuf *out);
/* Remove a delivered message. 0 or -errno. */
_must_check_ int spool_remove(struct spool *s, const char *name);
/* Move a refused message to the rejected folder. 0 or -errno. */
_must_check_ int spool_reject(struct spool *s, const char *name);

#endif
