/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_MSGID_H
#define GPS_HOOK_MSGID_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "hook/spool.h"

/*
 * The X-Message-Id the hook sends with each message (README 4.7, "Publishing exactly once";
 * hook/README.md says why this form):
 *
 *   gph1-<the message's spool number, 20 digits>-<first 32 hex digits of SHA-256(message)>
 *
 * Both parts come from the spool entry (its name and its bytes), so a delivery retried from the
 * spool, by this run or any later one, sends the same id and the server stores the message once.
 * The number tells apart two messages with the same bytes queued at different times (a branch
 * deleted and pushed again republishes the same commit); the digest tells apart messages of
 * different repositories that got the same number (it is a time in microseconds).
 */

#define HOOK_MSGID_PREFIX   "gph1-"
#define HOOK_MSGID_HASH_HEX 32 /* 128 bits of the digest: no accidental collision, ever */
#define HOOK_MSGID_LEN	    (sizeof(HOOK_MSGID_PREFIX) - 1 + SPOOL_DIGITS + 1 + HOOK_MSGID_HASH_HEX)
#define HOOK_MSGID_SIZE	    (HOOK_MSGID_LEN + 1)

/* The id of message msg[0..len) queued as number num, NUL-terminated into out. */
void hook_msgid(uint64_t num, const char *msg, size_t len, char out[HOOK_MSGID_SIZE]);

/* The number of spool file name ("<20 digits>.json"). 0, or -EINVAL if it is not one. */
_must_check_ int hook_msgid_number(const char *name, uint64_t *ret);

#endif
