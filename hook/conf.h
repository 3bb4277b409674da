/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_CONF_H
#define GPS_HOOK_CONF_H

#include <stdint.h>

#include "common/macro.h"

/*
 * The hook's settings: `git config gitpubsub.<key>`, overridden by the environment variable
 * GITPUBSUB_<KEY> (for use outside git, and by tests). A bad value is reported and the default
 * kept: a typo in a setting must not cost the pusher anything.
 *
 *   url         GITPUBSUB_URL         where to POST; "{project}" is replaced by the repository's
 *                                     directory name, percent-encoded
 *   timeout     GITPUBSUB_TIMEOUT     the most time the hook may add to a push: a duration
 *                                     (config_parse_duration_ms: "5", "1500ms", "0.5s", "1m")
 *   maxCommits  GITPUBSUB_MAXCOMMITS  the most commits published per ref update
 *   token       GITPUBSUB_TOKEN       a publish token ([Clients] tokensFile), sent as
 *                                     "Authorization: Bearer"; never printed
 *   tokenFile   GITPUBSUB_TOKENFILE   a file whose first line is the token, for a token kept
 *                                     out of the repository's config
 */

#define CONF_DEFAULT_URL	 "http://localhost:2069/json/git/{project}"
/* PROTOCOL's hook default: long enough for a loaded server, short enough not to annoy. */
#define CONF_DEFAULT_TIMEOUT_MS	 5000U
/* hook/README.md, gitpubsub.maxCommits: a push of more commits than this publishes the newest ones
 * and a notice. */
#define CONF_DEFAULT_MAX_COMMITS 100U
/* Bounds that turn nonsense into an error rather than a stalled push or an unbounded flood. */
#define CONF_MIN_TIMEOUT_MS	 10U
#define CONF_MAX_TIMEOUT_MS	 600000U /* 10 minutes */
#define CONF_MAX_MAX_COMMITS	 100000U
/* The placeholder in url. */
#define CONF_PROJECT_TOKEN	 "{project}"

struct conf {
	char *url; /* owned; the template, "{project}" not yet replaced */
	uint64_t timeout_ms;
	uint32_t max_commits;
	char *token; /* owned; NULL: none. A secret: no message quotes it */
};

/* The longest token file read: a token is far shorter (common/tokens.h TOKEN_MAX). */
#define CONF_TOKEN_FILE_MAX 4096u

/* Set the defaults; 0 or -ENOMEM. */
_must_check_ int conf_init(struct conf *c);
void conf_free(struct conf *c);

/*
 * Set key (case-insensitive: "url", "timeout", "maxCommits", "token", "tokenFile") to value. 0;
 * -EINVAL for a bad value (a tokenFile that cannot be read, or holds no token) and -ENOENT for
 * an unknown key (c untouched in these cases); -ENOMEM.
 */
_must_check_ int conf_set(struct conf *c, const char *key, const char *value);

/* A decimal integer without sign, 0 .. UINT32_MAX. 0 or -EINVAL (*ret untouched). */
_must_check_ int conf_parse_u32(const char *s, uint32_t *ret);

/*
 * The URL to post to: tmpl with every "{project}" replaced by project, each byte outside
 * RFC 3986's unreserved set percent-encoded (so a name cannot add a path segment or a query).
 * Caller frees; NULL on OOM.
 */
char *conf_expand_url(const char *tmpl, const char *project);

#endif
