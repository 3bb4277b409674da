/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "hook/git.h"

/* Bytes asked of read(2) at a time: a pipe holds 64 KiB by default. */
#define GIT_READ_CHUNK ((size_t)64 << 10)

/* How often a child that closed its output is checked for having exited. */
#define GIT_REAP_POLL_NS 1000000L

static bool git_show_errors;

void git_set_show_errors(bool show)
{
	git_show_errors = show;
}

/*
 * The input goes into a memfd, not a pipe: the child reads it at its own pace while we read its
 * output, so neither side can block on a full pipe, and no second fd needs polling.
 */
static int git_input_fd(const void *in, size_t len)
{
	int fd, err;

	if (len == 0) {
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		return fd < 0 ? -errno : fd;
	}
	fd = memfd_create("gitpubsub-hook-stdin", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = io_write_full(fd, in, len);
	if (err < 0)
		goto out_close;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		err = -errno;
		goto out_close;
	}
	return fd;

out_close:
	(void)close(fd);
	return err;
}

/* Only async-signal-safe calls here: this runs between fork() and exec. */
static _noreturn_ void git_child(const char *const argv[], int in_fd, int out_fd)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	char *const *av;

	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0)
		_exit(GIT_EXEC_FAILED);
	if (!git_show_errors) {
		int null_fd = open("/dev/null", O_WRONLY);

		if (null_fd < 0 || dup2(null_fd, 2) < 0)
			_exit(GIT_EXEC_FAILED);
	}
	/* the hook ignores SIGPIPE, and an ignored signal stays ignored across exec */
	(void)sigaction(SIGPIPE, &sa, NULL);
	/* execvp's prototype predates const; it does not modify argv (copied, not cast away) */
	memcpy(&av, &argv, sizeof(av));
	execvp(argv[0], av);
	_exit(GIT_EXEC_FAILED);
}

/* Milliseconds from now to deadline_us, rounded up; 0 once it has passed. */
static int git_ms_left(uint64_t deadline_us)
{
	uint64_t now = io_now_mono_us();

	if (now >= deadline_us)
		return 0;
	return (int)MIN((deadline_us - now + 999) / 1000, (uint64_t)INT32_MAX);
}

/* Wait for pid until deadline_us: its exit status, or -ETIMEDOUT (pid still running). */
static int git_reap(pid_t pid, uint64_t deadline_us)
{
	const struct timespec tick = { .tv_sec = 0, .tv_nsec = GIT_REAP_POLL_NS };
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, deadline_us ? WNOHANG : 0);

		if (r < 0)
			return -errno;
		if (r == pid)
			break;
		if (io_now_mono_us() >= deadline_us)
			return -ETIMEDOUT;
		(void)nanosleep(&tick, NULL);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int git_run(const char *const argv[], const void *in, size_t in_len, uint64_t deadline_us,
	    struct jbuf *out)
{
	int in_fd, pipefd[2], err = 0, r;
	pid_t pid;

	in_fd = git_input_fd(in, in_len);
	if (in_fd < 0)
		return in_fd;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		err = -errno;
		goto out_close_in;
	}
	pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out_close_pipe;
	}
	if (pid == 0)
		git_child(argv, in_fd, pipefd[1]);
	(void)close(pipefd[1]);
	pipefd[1] = -1;

	for (;;) {
		int ms = git_ms_left(deadline_us);
		ssize_t n;

		if (ms == 0) {
			err = -ETIMEDOUT;
			break;
		}
		r = io_poll1(pipefd[0], POLLIN, ms);
		if (r < 0) {
			err = r;
			break;
		}
		if (r == 0)
			continue; /* timeout or signal: the deadline check above decides */
		if (jbuf_reserve(out, GIT_READ_CHUNK) < 0) {
			err = jbuf_error(out);
			break;
		}
		n = io_read(pipefd[0], out->data + out->len, out->cap - out->len - 1);
		if (n < 0) {
			err = (int)n;
			break;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->data[out->len] = '\0';
	}

	if (err < 0) {
		(void)kill(pid, SIGKILL); /* our own child, by pid */
		(void)git_reap(pid, 0);
		goto out_close_pipe;
	}
	r = git_reap(pid, deadline_us);
	if (r == -ETIMEDOUT) {
		(void)kill(pid, SIGKILL);
		(void)git_reap(pid, 0);
	}
	err = r;

out_close_pipe:
	(void)close(pipefd[0]);
	if (pipefd[1] >= 0)
		(void)close(pipefd[1]);
out_close_in:
	(void)close(in_fd);
	return err;
}
