/* SPDX-License-Identifier: MIT */
/*
 * hook/spool.c: one file per message, written atomically, listed oldest first, and the delivery
 * lock that keeps two hooks from sending the same message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "hook/spool.h"
#include "tests/tap.h"

static char root[] = "/tmp/t-hook-spool.XXXXXX";

/* Write a small file at root/rel (setup only): 0 or -1. */
static int put_file(const char *rel, const char *content)
{
	char path[512];
	int fd, r;

	(void)snprintf(path, sizeof(path), "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	r = io_write_full(fd, content, strlen(content));
	(void)close(fd);
	return r < 0 ? -1 : 0;
}

/* Files in root/gitpubsub/sub whose names start with prefix, or -1. */
static int count_files(const char *sub, const char *prefix)
{
	char path[512];
	struct dirent *de;
	DIR *d;
	int n = 0;

	(void)snprintf(path, sizeof(path), "%s/gitpubsub/%s", root, sub);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	(void)closedir(d);
	return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_open(void)
{
	struct spool s;

	is(spool_open(&s, root, false), -ENOENT, "no spool yet, and not asked to create one");
	if (!ok(spool_open(&s, root, true) == 0, "created"))
		return;
	ok(s.path && strstr(s.path, "/gitpubsub/spool") != NULL,
	   "path is $GIT_DIR/gitpubsub/spool");
	spool_close(&s);
	is(spool_open(&s, root, false), 0, "opens once it exists");
	spool_close(&s);
}

static void test_add_list(void)
{
	static char m1[] = "{\"n\":1}", m2[] = "{\"n\":2}", m3[] = "{\"n\":3}";
	static char m4[] = "{\"n\":4}", m5[] = "{\"n\":5}";
	char *first[] = { m1, m2, m3 };
	char *second[] = { m4, m5 };
	uint64_t far = io_now_mono_us() + 1000000;
	struct jbuf body = JBUF_INIT;
	struct spool_names names;
	struct spool s;
	size_t added = 9;
	char planted[256];

	if (!ok(spool_open(&s, root, true) == 0, "open"))
		return;
	is(spool_add(&s, first, 3, &added, far), 0, "three messages queued");
	is(added, 3, "all three written");
	is(spool_add(&s, second, 2, &added, far), 0, "two more queued");
	is(spool_list(&s, &names), 0, "listed");
	is(names.n, 5, "five messages");
	for (size_t i = 0; i < names.n && i < 5; i++) {
		char want[16];

		(void)snprintf(want, sizeof(want), "{\"n\":%zu}", i + 1);
		is(spool_read(&s, names.v[i], &body), 0, "read message %zu", i);
		is_str(body.data, want, "message %zu is the %zuth queued, its newline stripped", i,
		       i + 1);
		ok(strlen(names.v[i]) == SPOOL_DIGITS + strlen(SPOOL_SUFFIX),
		   "name '%s' is 20 digits and .json", names.v[i]);
	}
	is(count_files("spool", ".tmp-"), 0, "no temporary file left behind");

	/* a message far in the future (a clock that stepped back): new ones still sort after it */
	ok(put_file("gitpubsub/spool/10000000000000000000.json", "{\"n\":6}\n") == 0,
	   "planted a message numbered 10^19");
	is(spool_add(&s, second, 1, &added, far), 0, "queued after a future-dated message");
	spool_names_free(&names);
	is(spool_list(&s, &names), 0, "listed");
	if (ok(names.n == 7, "seven messages")) {
		is_str(names.v[5], "10000000000000000000.json", "the future one is sixth");
		is_str(names.v[6], "10000000000000000001.json", "the new one numbers after it");
	}

	for (size_t i = 0; i < names.n; i++)
		is(spool_remove(&s, names.v[i]), 0, "remove message %zu", i);
	spool_names_free(&names);
	is(spool_list(&s, &names), 0, "listed");
	is(names.n, 0, "removed: empty");
	spool_names_free(&names);

	ok(put_file("gitpubsub/spool/99999999999999999999.json", "x\n") == 0,
	   "planted a message with the largest name");
	is(spool_add(&s, second, 1, &added, far), -EOVERFLOW, "a planted maximal name: refused");
	is(added, 0, "nothing written");
	(void)snprintf(planted, sizeof(planted), "%s/gitpubsub/spool/99999999999999999999.json",
		       root);
	(void)unlink(planted);
	jbuf_free(&body);
	spool_close(&s);
}

static void test_reject_and_junk(void)
{
	static char bad[] = "{\"bad\":true}";
	char *one[] = { bad };
	uint64_t far = io_now_mono_us() + 1000000;
	struct jbuf body = JBUF_INIT;
	struct spool_names names;
	struct spool s;
	size_t added;
	char path[256];
	int fd;

	if (!ok(spool_open(&s, root, true) == 0, "open"))
		return;
	is(spool_add(&s, one, 1, &added, far), 0, "queued");
	is(spool_list(&s, &names), 0, "listed");
	if (ok(names.n == 1, "one message")) {
		is(spool_reject(&s, names.v[0]), 0, "rejected");
		is(count_files("rejected", "0"), 1, "moved to gitpubsub/rejected/");
	}
	spool_names_free(&names);

	/* junk: names that are not messages are never listed; a stale temporary file is removed */
	ok(put_file("gitpubsub/spool/notes.txt", "") == 0 &&
		   put_file("gitpubsub/spool/123.json", "{}") == 0 &&
		   put_file("gitpubsub/spool/.tmp-1-0", "{") == 0 &&
		   put_file("gitpubsub/spool/.tmp-2-0", "{") == 0,
	   "planted junk and two temporary files");
	(void)snprintf(path, sizeof(path), "%s/gitpubsub/spool/.tmp-1-0", root);
	{
		/* two hours old: a writer that died */
		struct timespec old[2] = { { .tv_sec = time(NULL) - 7200 },
					   { .tv_sec = time(NULL) - 7200 } };

		ok(utimensat(AT_FDCWD, path, old, 0) == 0, "aged one of them");
	}
	(void)snprintf(path, sizeof(path), "%s/gitpubsub/spool/.tmp-2-0", root);
	is(spool_list(&s, &names), 0, "listed");
	is(names.n, 0, "other files are not messages");
	spool_names_free(&names);
	is(access(path, F_OK), 0, "a fresh temporary file (a live writer's) is kept");
	(void)snprintf(path, sizeof(path), "%s/gitpubsub/spool/.tmp-1-0", root);
	ok(access(path, F_OK) != 0, "a temporary file older than an hour is removed");

	/* a file too large to be a message */
	(void)snprintf(path, sizeof(path), "%s/gitpubsub/spool/00000000000000000001.json", root);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	ok(fd >= 0 && ftruncate(fd, (off_t)SPOOL_MAX_FILE + 1) == 0, "made a huge spool file");
	if (fd >= 0)
		(void)close(fd);
	is(spool_read(&s, "00000000000000000001.json", &body), -EFBIG, "too large: -EFBIG");
	is(spool_read(&s, "00000000000000000002.json", &body), -ENOENT, "missing: -ENOENT");
	(void)unlink(path);
	jbuf_free(&body);
	spool_close(&s);
}

static void test_lock(void)
{
	uint64_t t0, waited;
	struct spool s;
	int ready[2] = { -1, -1 }, release[2] = { -1, -1 };
	char c = 0;
	pid_t pid;

	if (!ok(pipe(ready) == 0 && pipe(release) == 0, "pipes"))
		return;
	pid = fork();
	if (pid == 0) {
		struct spool cs;

		if (spool_open(&cs, root, true) < 0 ||
		    spool_lock_delivery(&cs, io_now_mono_us() + 1000000) < 0)
			_exit(1);
		(void)!write(ready[1], "r", 1);
		(void)!read(release[0], &c, 1);
		_exit(0); /* exiting releases the lock, as a crashed hook's would be */
	}
	ok(read(ready[0], &c, 1) == 1, "the other process holds the delivery lock");
	if (!ok(spool_open(&s, root, true) == 0, "open"))
		return;
	t0 = io_now_mono_us();
	is(spool_lock_delivery(&s, t0 + 150000), -ETIMEDOUT, "a second deliverer gives up");
	waited = io_now_mono_us() - t0;
	ok(waited >= 140000 && waited < 1000000, "at its deadline (%llu us)",
	   (unsigned long long)waited);
	(void)!write(release[1], "x", 1);
	(void)waitpid(pid, NULL, 0);
	is(spool_lock_delivery(&s, io_now_mono_us() + 1000000), 0,
	   "the lock is free once its holder is gone");
	spool_unlock_delivery(&s);
	is(s.deliver_fd, -1, "unlocked");
	spool_close(&s);
}

int main(void)
{
	if (!mkdtemp(root)) {
		ok(0, "mkdtemp");
		return done_testing();
	}
	test_open();
	test_add_list();
	test_reject_and_junk();
	test_lock();
	(void)nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
