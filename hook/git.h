/* SPDX-License-Identifier: MIT */
#ifndef GPS_HOOK_GIT_H
#define GPS_HOOK_GIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macro.h"
#include "hook/jbuf.h"

/*
 * Running git plumbing, with no shell in between: argv goes to execvp() as it is, so no ref name,
 * path or hash can be read as anything but one argument, and the ones that come from a push are
 * passed on standard input (--stdin), never on the command line.
 */

/*
 * Whether git's own error messages reach our stderr (and so the pusher). Off by default: the
 * hook speaks to a person in its own words, and a failing plumbing command is reported by its
 * exit status. main() turns it on for GITPUBSUB_LOG_LEVEL=debug.
 */
void git_set_show_errors(bool show);

/* Exit status of a child whose execvp() failed, as a shell reports "command not found". */
#define GIT_EXEC_FAILED 127

/*
 * Run argv (argv[0] is "git", NULL-terminated) with in[0..in_len) as its standard input
 * (/dev/null when in_len is 0) and append its standard output to *out. The child is killed if
 * it is still running at deadline_us (CLOCK_MONOTONIC, io_now_mono_us()).
 *
 * Returns git's exit status (0-255; 128 + N if a signal N ended it; GIT_EXEC_FAILED if it could
 * not be started), -ETIMEDOUT if the deadline
 * passed, -E2BIG if the output outgrew JBUF_MAX, -ENOMEM, or the -errno of a failed pipe, fork or
 * read. What was read before an error stays in *out. The child is always reaped.
 */
_must_check_ int git_run(const char *const argv[], const void *in, size_t in_len,
			 uint64_t deadline_us, struct jbuf *out);

#endif
