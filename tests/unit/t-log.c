/* SPDX-License-Identifier: MIT */
/*
 * common/log.c: the sink log_open() picks for fd 2 (STYLE 6), and the line each sink writes.
 * fd 2 is pointed at a temporary file (or a socket) for each case and given back afterwards;
 * TAP goes to stdout, so the test's own output is untouched.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/tap.h"

static char log_path[] = "/tmp/t-log-XXXXXX";
static int log_fd = -1; /* the temporary file fd 2 points at */
static int saved_stderr = -1;

/* Point fd 2 at the temporary file, emptied; 0 or -1. */
static int stderr_to_file(void)
{
	if (ftruncate(log_fd, 0) < 0 || lseek(log_fd, 0, SEEK_SET) < 0)
		return -1;
	return dup2(log_fd, 2) < 0 ? -1 : 0;
}

static void stderr_restore(void)
{
	(void)dup2(saved_stderr, 2);
}

/* What was written to the temporary file, NUL-terminated in buf. */
static const char *logged(char *buf, size_t len)
{
	ssize_t n = pread(log_fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* "dev:ino" of fd 2, as journald would put it in $JOURNAL_STREAM; plus delta on the inode. */
static void stream_of_stderr(char *buf, size_t len, unsigned long long delta)
{
	struct stat st;

	if (fstat(2, &st) < 0) {
		(void)snprintf(buf, len, "fstat failed");
		return;
	}
	(void)snprintf(buf, len, "%llu:%llu", (unsigned long long)st.st_dev,
		       (unsigned long long)st.st_ino + delta);
}

/* The sink log_open() picks with fd 2 on the temporary file and $JOURNAL_STREAM = js. */
static enum log_sink sink_with(const char *js)
{
	enum log_sink sink;

	if (js)
		(void)setenv("JOURNAL_STREAM", js, 1);
	else
		(void)unsetenv("JOURNAL_STREAM");
	log_open("t-log");
	sink = log_get_sink();
	(void)unsetenv("JOURNAL_STREAM");
	return sink;
}

static void test_journal(void)
{
	char js[128], bad[160], buf[512];
	static const char *const malformed[] = {
		"", ":", "1", "1:", ":1", "x:1", "1:x",
	};

	if (stderr_to_file() < 0) {
		ok(0, "journal: fd 2 on a temporary file");
		return;
	}
	stream_of_stderr(js, sizeof(js), 0);
	is(sink_with(js), LOG_SINK_JOURNAL, "$JOURNAL_STREAM naming fd 2: the journal");
	log_error("disk %s", "full");
	log_info("started");
	is_str(logged(buf, sizeof(buf)), "<3>disk full\n<6>started\n",
	       "journal lines carry the sd-daemon priority, no program name");

	is(sink_with(NULL), LOG_SINK_STDERR, "no $JOURNAL_STREAM: plain stderr");
	stream_of_stderr(bad, sizeof(bad), 1);
	is(sink_with(bad), LOG_SINK_STDERR, "$JOURNAL_STREAM naming another inode: plain stderr");

	/* the same numbers, spelled in ways that are not "dev:ino" */
	(void)snprintf(bad, sizeof(bad), " %s", js);
	is(sink_with(bad), LOG_SINK_STDERR, "a leading blank is refused");
	(void)snprintf(bad, sizeof(bad), "+%s", js);
	is(sink_with(bad), LOG_SINK_STDERR, "a leading '+' is refused");
	(void)snprintf(bad, sizeof(bad), "%s:1", js);
	is(sink_with(bad), LOG_SINK_STDERR, "a third field is refused");
	(void)snprintf(bad, sizeof(bad), "%sx", js);
	is(sink_with(bad), LOG_SINK_STDERR, "trailing bytes are refused");
	(void)snprintf(bad, sizeof(bad), "%s", js);
	*strchr(bad, ':') = ' ';
	is(sink_with(bad), LOG_SINK_STDERR, "a blank instead of ':' is refused");
	(void)snprintf(bad, sizeof(bad), "99999999999999999999999%s", strchr(js, ':'));
	is(sink_with(bad), LOG_SINK_STDERR, "a device number past 64 bits is refused");
	for (size_t i = 0; i < ARRAY_SIZE(malformed); i++)
		is(sink_with(malformed[i]), LOG_SINK_STDERR, "'%s' is refused", malformed[i]);
	stderr_restore();
}

static void test_stderr(void)
{
	char buf[512];

	if (stderr_to_file() < 0) {
		ok(0, "stderr: fd 2 on a temporary file");
		return;
	}
	is(sink_with(NULL), LOG_SINK_STDERR, "fd 2 a file: plain stderr");
	log_warning("unable to read '%s', ignoring", "x");
	log_notice("listening");
	is_str(logged(buf, sizeof(buf)),
	       "t-log: warning: unable to read 'x', ignoring\nt-log: listening\n",
	       "stderr lines: program, level (none for notice and info), message");
	stderr_restore();
}

/* inetd: fds 0, 1 and 2 are the client's socket. Nothing may be logged into it. */
static void test_client_socket(void)
{
	int sv[2], saved_stdin;
	enum log_sink sink;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		ok(0, "client socket: socketpair: %s", strerror(errno));
		return;
	}
	saved_stdin = dup(0);
	if (saved_stdin < 0 || dup2(sv[0], 0) < 0 || dup2(sv[0], 2) < 0) {
		ok(0, "client socket: fds 0 and 2 on one socket");
	} else {
		sink = sink_with(NULL);
		stderr_restore();
		is(sink, LOG_SINK_SYSLOG, "fd 2 the same socket as fd 0: syslog");
	}
	if (saved_stdin >= 0) {
		(void)dup2(saved_stdin, 0);
		(void)close(saved_stdin);
	}
	stderr_restore();

	/* a socket on fd 2 that is not fd 0 is some other stream: plain stderr */
	if (dup2(sv[0], 2) < 0) {
		ok(0, "client socket: fd 2 on a socket");
	} else {
		sink = sink_with(NULL);
		stderr_restore();
		is(sink, LOG_SINK_STDERR, "fd 2 a socket that is not fd 0: plain stderr");
	}
	(void)close(sv[0]);
	(void)close(sv[1]);
}

static void test_no_stderr(void)
{
	enum log_sink sink;

	(void)close(2);
	sink = sink_with(NULL);
	stderr_restore();
	is(sink, LOG_SINK_SYSLOG, "fd 2 closed: syslog");
}

int main(void)
{
	saved_stderr = fcntl(2, F_DUPFD_CLOEXEC, 3);
	log_fd = mkstemp(log_path);
	if (saved_stderr < 0 || log_fd < 0) {
		ok(0, "set up: %s", strerror(errno));
		return done_testing();
	}
	(void)unlink(log_path);
	(void)unsetenv("GITPUBSUB_LOG_LEVEL"); /* log_open() would take it over ours */
	log_set_level(LOG_DEBUG);

	test_journal();
	test_stderr();
	test_client_socket();
	test_no_stderr();

	(void)close(log_fd);
	return done_testing();
}
