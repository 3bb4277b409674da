/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_POST_H
#define GPS_HOOK_POST_H

#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"

/*
 * Posting messages with libcurl: one easy handle for all the messages of a run, so they share one
 * keep-alive connection (PROTOCOL 1.2) instead of paying a connect each.
 */

struct post {
	void *curl;    /* CURL *; opaque here so only post.c needs curl.h */
	void *headers; /* struct curl_slist * */
	char *url;     /* owned */
	char *shown;   /* owned: url without its credentials, for messages */
	char *auth;    /* owned: "Authorization: Bearer <token>", NULL without a token */
	long status;   /* HTTP status of the last answer, 0 if none came */
	int curl_code; /* CURLcode of the last transfer */
	long connects; /* connections opened so far: 1 for a whole run when reuse works */
};

/* Once per process, before any other call: curl_global_init. 0 or -EIO. */
_must_check_ int post_global_init(void);
void post_global_cleanup(void);

/* Prepare to post to url (http or https only), with token (NULL: none) as a bearer token.
 * 0, -ENOMEM or -EINVAL. */
_must_check_ int post_open(struct post *p, const char *url, const char *token);
void post_close(struct post *p);

/*
 * POST body[0..len) as application/json, with "X-Message-Id: msg_id" unless msg_id is NULL
 * (hook/msgid.h), and wait for the answer, at most until deadline_us (CLOCK_MONOTONIC). Returns:
 *   0           the server answered 200: delivered;
 *   -EBADMSG    it answered 400 or 413: this message will never be accepted;
 *   -EPROTO     it answered another status (p->status): try again later;
 *   -ETIMEDOUT  no complete answer by the deadline;
 *   -ECONNREFUSED, -EHOSTUNREACH (cannot resolve or reach), -EIO (anything else curl reports),
 *   -ENOMEM.
 */
_must_check_ int post_send(struct post *p, const char *body, size_t len, const char *msg_id,
			   uint64_t deadline_us);

/* A short plain sentence for the last failure, for the person pushing (static storage). */
const char *post_strerror(const struct post *p, int err);

#endif
