/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_LOG_H
#define GPS_COMMON_LOG_H

#include <syslog.h>

#include "common/macro.h"

/*
 * The logging funnel: one line per call on stderr.
 *
 * Three sinks, chosen once by log_open():
 *   - the journal (stderr is the socket named by $JOURNAL_STREAM): "<N>message", N being the
 *     sd-daemon priority, so journald files each line at its level;
 *   - syslog(3), when stderr is the client's socket (inetd passes the connection as fds 0, 1
 *     and 2): a log line must never reach the HTTP client;
 *   - otherwise plain stderr in skarnet's form: "prog: warning: message".
 * Levels are syslog's LOG_ERR .. LOG_DEBUG; the default is LOG_INFO, overridden by
 * $GITPUBSUB_LOG_LEVEL (a number 0-7 or a name: error, warning, notice, info, debug) and by
 * log_set_level().
 */

enum log_sink {
	LOG_SINK_STDERR,
	LOG_SINK_JOURNAL,
	LOG_SINK_SYSLOG,
};

void log_open(const char *progname);
void log_set_level(int level);
int log_get_level(void);
enum log_sink log_get_sink(void);
/* Parse a level name or number; the level, or -1. */
int log_level_from_string(const char *s);

void log_emit(int level, const char *fmt, ...) _printf_(2, 3);

#define log_error(...)	 log_emit(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_emit(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)	 log_emit(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)	 log_emit(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	 log_emit(LOG_DEBUG, __VA_ARGS__)

#endif
