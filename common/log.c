/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/log.h"

static const char *log_prog = "gitpubsub";
static int log_level = LOG_INFO;
static enum log_sink log_sink = LOG_SINK_STDERR;

static const char *const level_names[] = {
	[LOG_EMERG] = "emergency", [LOG_ALERT] = "alert",     [LOG_CRIT] = "critical",
	[LOG_ERR] = "error",	   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",	   [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s)
{
	if (!s || !*s)
		return -1;
	if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
		return s[0] - '0';
	for (int i = 0; i < (int)ARRAY_SIZE(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	return -1;
}

/*
 * A decimal number at s, up to *ret_end: 0, or -EINVAL when s does not start with a digit or the
 * value overflows. strtoull() alone would take leading blanks, a sign and ULLONG_MAX on overflow.
 */
static int parse_ull(const char *s, const char **ret_end, unsigned long long *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	*ret_end = end;
	*ret = v;
	return 0;
}

/* $JOURNAL_STREAM is "dev:ino" of the stream journald gave us; it only counts if fd 2 is it. */
static int stderr_is_journal(const struct stat *st)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;

	if (!js || parse_ull(js, &js, &dev) < 0 || *js != ':' || parse_ull(js + 1, &js, &ino) < 0 ||
	    *js != '\0')
		return 0;
	return (unsigned long long)st->st_dev == dev && (unsigned long long)st->st_ino == ino;
}

/* inetd and StandardInput=socket may hand us the client's socket as stderr. */
static int stderr_is_stdin_socket(const struct stat *st2)
{
	struct stat st0;

	if (!S_ISSOCK(st2->st_mode) || fstat(0, &st0) < 0)
		return 0;
	return st0.st_dev == st2->st_dev && st0.st_ino == st2->st_ino;
}

void log_open(const char *progname)
{
	struct stat st;
	int have_st, lvl;

	if (progname) {
		const char *slash = strrchr(progname, '/');
		log_prog = slash ? slash + 1 : progname;
	}
	lvl = log_level_from_string(getenv("GITPUBSUB_LOG_LEVEL"));
	if (lvl >= 0)
		log_level = lvl;

	/* No stderr, or stderr is the client's socket: syslog, so nothing reaches the client. */
	have_st = fstat(2, &st) == 0;
	if (have_st && stderr_is_journal(&st))
		log_sink = LOG_SINK_JOURNAL;
	else if (!have_st || stderr_is_stdin_socket(&st))
		log_sink = LOG_SINK_SYSLOG;
	else
		log_sink = LOG_SINK_STDERR;
	if (log_sink == LOG_SINK_SYSLOG)
		openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

enum log_sink log_get_sink(void)
{
	return log_sink;
}

void log_emit(int level, const char *fmt, ...)
{
	char msg[1024];
	char line[1200];
	va_list ap;
	int saved = errno; /* callers may log between a failure and reading errno */
	int n;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	switch (log_sink) {
	case LOG_SINK_SYSLOG:
		syslog(level, "%s", msg);
		break;
	case LOG_SINK_JOURNAL:
		n = snprintf(line, sizeof(line), "<%d>%s\n", level, msg);
		if (n > 0)
			(void)!write(2, line, MIN((size_t)n, sizeof(line) - 1));
		break;
	case LOG_SINK_STDERR:
	default:
		/* info and notice read best without a tag; the rest say what they are */
		if (level == LOG_INFO || level == LOG_NOTICE)
			n = snprintf(line, sizeof(line), "%s: %s\n", log_prog, msg);
		else
			n = snprintf(line, sizeof(line), "%s: %s: %s\n", log_prog,
				     level_names[level], msg);
		if (n > 0)
			(void)!write(2, line, MIN((size_t)n, sizeof(line) - 1));
		break;
	}
	errno = saved;
}
