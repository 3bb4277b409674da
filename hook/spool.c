/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "hook/spool.h"

/* How often a lock held by another run is tried again. */
#define SPOOL_LOCK_POLL_NS (20L * 1000 * 1000)

/* mkdirat with an exact mode (umask ignored): 0 if it exists or was made, else -errno. */
static int spool_mkdirat(int at, const char *name, mode_t mode)
{
	if (mkdirat(at, name, mode) < 0)
		return errno == EEXIST ? 0 : -errno;
	/* mkdir applies the umask; a shared repository wants its group bits as they are */
	if (fchmodat(at, name, mode, 0) < 0)
		return -errno;
	return 0;
}

int spool_open(struct spool *s, const char *git_dir, bool create)
{
	struct stat st;
	mode_t mode;
	int git_fd, err;

	*s = (struct spool){ .base_fd = -1, .dir_fd = -1, .deliver_fd = -1 };
	git_fd = open(git_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (git_fd < 0)
		return -errno;
	if (create) {
		if (fstat(git_fd, &st) < 0) {
			err = -errno;
			goto out_close_git;
		}
		mode = (st.st_mode & 07777) | 0700;
		err = spool_mkdirat(git_fd, SPOOL_BASE_DIR, mode);
		if (err < 0)
			goto out_close_git;
	}
	s->base_fd = openat(git_fd, SPOOL_BASE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->base_fd < 0) {
		err = -errno;
		goto out_close_git;
	}
	if (create) {
		err = spool_mkdirat(s->base_fd, SPOOL_DIR, mode);
		if (err < 0)
			goto out_close_base;
	}
	s->dir_fd = openat(s->base_fd, SPOOL_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dir_fd < 0) {
		err = -errno;
		goto out_close_base;
	}
	if (asprintf(&s->path, "%s/%s/%s", git_dir, SPOOL_BASE_DIR, SPOOL_DIR) < 0) {
		s->path = NULL;
		err = -ENOMEM;
		goto out_close_dir;
	}
	(void)close(git_fd);
	return 0;

out_close_dir:
	(void)close(s->dir_fd);
	s->dir_fd = -1;
out_close_base:
	(void)close(s->base_fd);
	s->base_fd = -1;
out_close_git:
	(void)close(git_fd);
	return err;
}

void spool_close(struct spool *s)
{
	spool_unlock_delivery(s);
	if (s->dir_fd >= 0)
		(void)close(s->dir_fd);
	if (s->base_fd >= 0)
		(void)close(s->base_fd);
	free(s->path);
	*s = (struct spool){ .base_fd = -1, .dir_fd = -1, .deliver_fd = -1 };
}

/*
 * Open lock file name in the spool and flock it, trying until deadline_us. The file is opened
 * read-only: flock needs no write access, so any user who can read the spool can lock it.
 */
static int spool_lock(struct spool *s, const char *name, uint64_t deadline_us)
{
	const struct timespec tick = { .tv_sec = 0, .tv_nsec = SPOOL_LOCK_POLL_NS };
	int fd;

	fd = openat(s->dir_fd, name, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int err = -errno;

			(void)close(fd);
			return err;
		}
		if (io_now_mono_us() >= deadline_us) {
			(void)close(fd);
			return -ETIMEDOUT;
		}
		(void)nanosleep(&tick, NULL);
	}
}

/* Whether name is a message file: SPOOL_DIGITS digits and SPOOL_SUFFIX. */
static bool spool_is_message(const char *name)
{
	for (int i = 0; i < SPOOL_DIGITS; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	return strcmp(name + SPOOL_DIGITS, SPOOL_SUFFIX) == 0;
}

static int spool_cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

int spool_list(struct spool *s, struct spool_names *out)
{
	time_t now = time(NULL);
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd, err = 0;

	*out = (struct spool_names){ NULL, 0 };
	fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		err = -errno;
		(void)close(fd);
		return err;
	}
	while ((errno = 0, de = readdir(d))) {
		if (strncmp(de->d_name, SPOOL_TMP_PREFIX, strlen(SPOOL_TMP_PREFIX)) == 0) {
			struct stat st;

			if (fstatat(s->dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    now - st.st_mtime > SPOOL_TMP_MAX_AGE_S)
				(void)unlinkat(s->dir_fd, de->d_name, 0); /* a dead writer's */
			continue;
		}
		if (!spool_is_message(de->d_name))
			continue;
		if (out->n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			char(*nv)[SPOOL_NAME_MAX] = realloc(out->v, ncap * sizeof(*nv));

			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			out->v = nv;
			cap = ncap;
		}
		memcpy(out->v[out->n++], de->d_name, SPOOL_NAME_MAX);
	}
	if (errno)
		err = -errno;
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), spool_cmp_name);
out:
	(void)closedir(d);
	if (err < 0)
		spool_names_free(out);
	return err;
}

void spool_names_free(struct spool_names *l)
{
	free(l->v);
	*l = (struct spool_names){ NULL, 0 };
}

/* Write one message as tmp, then rename it to its number. */
static int spool_write(struct spool *s, const char *msg, uint64_t seq, size_t i)
{
	char tmp[64], name[SPOOL_NAME_MAX + 1];
	int fd, err;

	(void)snprintf(tmp, sizeof(tmp), "%s%ld-%zu", SPOOL_TMP_PREFIX, (long)getpid(), i);
	(void)snprintf(name, sizeof(name), "%0*" PRIu64 "%s", SPOOL_DIGITS, seq, SPOOL_SUFFIX);
	fd = openat(s->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (fd < 0)
		return -errno;
	err = io_write_full(fd, msg, strlen(msg));
	if (err == 0)
		err = io_write_full(fd, "\n", 1);
	if (close(fd) < 0 && err == 0)
		err = -errno;
	if (err == 0 && renameat(s->dir_fd, tmp, s->dir_fd, name) < 0)
		err = -errno;
	if (err < 0)
		(void)unlinkat(s->dir_fd, tmp, 0);
	return err;
}

int spool_add(struct spool *s, char *const msgs[], size_t n, size_t *ret_added,
	      uint64_t deadline_us)
{
	struct spool_names names;
	uint64_t seq, now = io_now_real_us();
	int lock_fd, err;

	*ret_added = 0;
	if (n == 0)
		return 0;
	lock_fd = spool_lock(s, SPOOL_QUEUE_LOCK, deadline_us);
	if (lock_fd < 0)
		return lock_fd;
	err = spool_list(s, &names);
	if (err < 0)
		goto out_unlock;
	seq = now;
	if (names.n) {
		uint64_t last = strtoull(names.v[names.n - 1], NULL, 10);

		/* only a planted file gets near this: refuse rather than wrap and sort first */
		if (last >= UINT64_MAX - n) {
			spool_names_free(&names);
			err = -EOVERFLOW;
			goto out_unlock;
		}
		if (last >= seq)
			seq = last + 1;
	}
	spool_names_free(&names);
	for (size_t i = 0; i < n; i++) {
		err = spool_write(s, msgs[i], seq + i, i);
		if (err < 0)
			break;
		(*ret_added)++;
	}
out_unlock:
	(void)close(lock_fd); /* releases the flock */
	return err;
}

int spool_lock_delivery(struct spool *s, uint64_t deadline_us)
{
	int fd;

	if (s->deliver_fd >= 0)
		return 0;
	fd = spool_lock(s, SPOOL_DELIVER_LOCK, deadline_us);
	if (fd < 0)
		return fd;
	s->deliver_fd = fd;
	return 0;
}

void spool_unlock_delivery(struct spool *s)
{
	if (s->deliver_fd >= 0)
		(void)close(s->deliver_fd);
	s->deliver_fd = -1;
}

int spool_read(struct spool *s, const char *name, struct jbuf *out)
{
	struct stat st;
	int fd, err = 0;

	jbuf_reset(out);
	fd = openat(s->dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SPOOL_MAX_FILE) {
		err = -EFBIG;
		goto out;
	}
	for (;;) {
		ssize_t r;

		err = jbuf_reserve(out, (size_t)st.st_size + 1);
		if (err < 0)
			goto out;
		r = io_read(fd, out->data + out->len, out->cap - out->len - 1);
		if (r < 0) {
			err = (int)r;
			goto out;
		}
		if (r == 0)
			break;
		out->len += (size_t)r;
		out->data[out->len] = '\0';
		if (out->len > SPOOL_MAX_FILE) {
			err = -EFBIG;
			goto out;
		}
	}
	while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r' ||
			    out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
		out->data[--out->len] = '\0';
out:
	(void)close(fd);
	return err;
}

int spool_remove(struct spool *s, const char *name)
{
	if (unlinkat(s->dir_fd, name, 0) < 0)
		return -errno;
	return 0;
}

int spool_reject(struct spool *s, const char *name)
{
	char target[sizeof(SPOOL_REJECTED_DIR) + SPOOL_NAME_MAX + 1];
	struct stat st;
	int err;

	if (fstat(s->dir_fd, &st) < 0)
		return -errno;
	err = spool_mkdirat(s->base_fd, SPOOL_REJECTED_DIR, st.st_mode & 07777);
	if (err < 0)
		return err;
	(void)snprintf(target, sizeof(target), "%s/%s", SPOOL_REJECTED_DIR, name);
	if (renameat(s->dir_fd, name, s->base_fd, target) < 0)
		return -errno;
	return 0;
}
