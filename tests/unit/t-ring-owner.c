/* SPDX-License-Identifier: MIT */
/*
 * Issue 14, item 1: shared memory belongs to the service (shm/ring.h section 1). A ring or
 * statistics object that another user owns, that group or others may write, or that is not a
 * regular file is refused by every opener (-EPERM) and never touched, not even by --recreate;
 * ring_refusal() names the file, its owner and mode. The broker makes objects complete before
 * they have a name and replaces them by rename(2): a reader never finds the name missing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"
#include "tests/tap.h"

#define KIB	      UINT64_C(1024)
#define NOBODY	      65534u /* a uid that is neither ours nor root's */
#define RECREATES     200    /* replacements watched for a missing name */
#define RACE_ROUNDS   20     /* rounds of two brokers creating the same ring at once */
#define WATCH_SECONDS 30     /* a watcher or racer that outlives this is killed */

static char ring_a[64], ring_b[64]; /* a ring the test made, and the planted copy */

static void path_of(const char *name, char *buf, size_t len)
{
	if (ring_shm_path(name, buf, len) < 0)
		buf[0] = '\0';
}

static bool file_stat(const char *name, struct stat *st)
{
	char path[256];

	path_of(name, path, sizeof(path));
	return lstat(path, st) == 0;
}

static int make_writer(const char *name, uint64_t size, bool recreate, struct ring_writer *w,
		       bool *created)
{
	struct ring_params p = { .data_size = size, .recreate = recreate };

	return ring_writer_open(name, &p, w, created);
}

/* Copy object 'from' to a new file 'to' with mode; 0 or -1. */
static int copy_object(const char *from, const char *to, mode_t mode)
{
	char src[256], dst[256], buf[65536];
	ssize_t n;
	int in, out, rc = 0;

	path_of(from, src, sizeof(src));
	path_of(to, dst, sizeof(dst));
	in = open(src, O_RDONLY | O_CLOEXEC);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (in < 0 || out < 0 || fchmod(out, mode) < 0)
		rc = -1;
	while (rc == 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			rc = -1;
	if (in >= 0)
		(void)close(in);
	if (out >= 0)
		(void)close(out);
	return rc;
}

/* Whether file 'name' still has these bytes (a checksum) and this inode. */
static uint64_t checksum(const char *name)
{
	char path[256], buf[65536];
	uint64_t sum = 1469598103934665603u;
	ssize_t n;
	int fd;

	path_of(name, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			sum = (sum ^ (uint8_t)buf[i]) * 1099511628211u;
	(void)close(fd);
	return sum;
}

/* Files in RING_SHM_DIR whose name starts with prefix (without its slash) and contains part. */
static int count_files(const char *prefix, const char *part)
{
	DIR *d = opendir(RING_SHM_DIR);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strstr(de->d_name, prefix + 1) == de->d_name && strstr(de->d_name, part))
			n++;
	(void)closedir(d);
	return n;
}

static void test_created_modes(void)
{
	struct ring_writer w;
	struct stat st;
	char stats[96];
	bool created = false;
	int err = make_writer(ring_a, 64 * KIB, false, &w, &created);

	is(err, 0, "14.1 create: the broker makes ring %s", ring_a);
	if (err < 0)
		return;
	(void)!ring_stats_name(ring_a, stats, sizeof(stats));
	ok(file_stat(ring_a, &st) && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 &&
		   st.st_uid == geteuid(),
	   "14.1 create: the ring is a regular file, mode 0644, owned by the broker's user");
	diag("ring: mode %04o uid %u", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	ok(file_stat(stats, &st) && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0644 &&
		   st.st_uid == geteuid(),
	   "14.1 create: the statistics object is mode 0644 (not 0666), owned by the broker's user");
	diag("stats: mode %04o uid %u", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	is(count_files(ring_a, ".new-"), 0, "14.1 create: no temporary name is left in /dev/shm");
	ring_writer_close(&w);
}

/* A copy of a valid ring under the name, writable by others: nobody uses it. */
static void test_planted_world_writable(void)
{
	struct ring_writer w;
	struct ring r = { 0 };
	struct stat before, after;
	char why[1024], path[256];
	uint64_t sum;
	bool created = false;
	void *base = NULL;
	size_t size = 0;

	path_of(ring_b, path, sizeof(path));
	ok(copy_object(ring_a, ring_b, 0666) == 0, "14.1 planted: a copy of the ring, mode 0666");
	sum = checksum(ring_b);
	(void)file_stat(ring_b, &before);
	is(ring_attach(ring_b, &r), -EPERM, "14.1 planted 0666: ring_attach (frontend) refuses");
	is(ring_map(ring_b, false, &base, &size), -EPERM,
	   "14.1 planted 0666: ring_map (gpsctl check) refuses");
	is(make_writer(ring_b, 64 * KIB, false, &w, &created), -EPERM,
	   "14.1 planted 0666: the broker refuses it");
	is(make_writer(ring_b, 128 * KIB, true, &w, &created), -EPERM,
	   "14.1 planted 0666: the broker refuses it with --recreate too");
	(void)file_stat(ring_b, &after);
	ok(checksum(ring_b) == sum && after.st_ino == before.st_ino &&
		   (after.st_mode & 07777) == 0666,
	   "14.1 planted 0666: the file is untouched (same inode, bytes and mode)");
	is(ring_refusal(ring_b, why, sizeof(why)), -EPERM, "14.1 planted 0666: ring_refusal");
	diag("refusal: %s", why);
	ok(strstr(why, path) && strstr(why, "mode 0666") && strstr(why, "owned by") &&
		   !strchr(why, '\n'),
	   "14.1 planted 0666: one line naming the file, its owner and its mode");
	(void)chmod(path, 0664);
	is(ring_attach(ring_b, &r), -EPERM, "14.1 planted 0664: group-writable is refused too");
	(void)chmod(path, 0644);
	is(ring_attach(ring_b, &r), 0, "14.1 the same copy at 0644, ours: attached");
	ring_detach(&r);
}

/* Owned by another user (tests run as root, so chown works): refused unless ringOwner. */
static void test_planted_other_owner(void)
{
	struct ring_writer w;
	struct ring r = { 0 };
	char why[1024], path[256];
	bool created = false;

	path_of(ring_b, path, sizeof(path));
	if (geteuid() != 0 || chown(path, NOBODY, NOBODY) < 0) {
		diag("skipped: chown to uid %u needs root", NOBODY);
		return;
	}
	is(ring_attach(ring_b, &r), -EPERM, "14.1 owned by uid %u, mode 0644: refused", NOBODY);
	is(make_writer(ring_b, 64 * KIB, true, &w, &created), -EPERM,
	   "14.1 owned by uid %u: the broker (root) refuses it, --recreate or not", NOBODY);
	(void)ring_refusal(ring_b, why, sizeof(why));
	diag("refusal: %s", why);
	ok(strstr(why, "uid 65534") && strstr(why, "mode 0644") && strstr(why, path),
	   "14.1 owned by uid %u: the line names the owner, the mode and the file", NOBODY);
	ring_set_owner("65534");
	is(ring_attach(ring_b, &r), 0, "14.1 [History] ringOwner 65534: that owner is trusted");
	ring_detach(&r);
	ring_set_owner("no-such-user-gps");
	is(ring_attach(ring_b, &r), -EPERM, "14.1 ringOwner naming no user trusts no one more");
	ring_set_owner(NULL);
	is(ring_attach(ring_b, &r), -EPERM, "14.1 ringOwner unset: refused again");
}

/* The statistics object: a world-writable one (today's 0666) is refused by every reader; the
 * broker replaces its own (an upgrade), and refuses another user's. */
static void test_planted_stats(void)
{
	struct ring_writer w;
	struct ring_stats *s = NULL;
	struct stat before, after;
	char stats[96], path[256], why[1024];
	bool created = false;
	int err;

	(void)!ring_stats_name(ring_a, stats, sizeof(stats));
	path_of(stats, path, sizeof(path));
	(void)chmod(path, 0666);
	is(ring_stats_attach(ring_a, true, &s), -EPERM,
	   "14.1 stats 0666: a frontend refuses to count into it");
	is(ring_stats_attach(ring_a, false, &s), -EPERM, "14.1 stats 0666: gpsctl refuses it");
	is(ring_refusal(ring_a, why, sizeof(why)), -EPERM,
	   "14.1 stats 0666: ring_refusal names it");
	diag("refusal: %s", why);
	ok(strstr(why, path) && strstr(why, "mode 0666"), "14.1 stats 0666: file and mode named");

	(void)file_stat(stats, &before);
	is(make_writer(ring_a, 64 * KIB, false, &w, &created), 0,
	   "14.1 stats 0666 of the broker's own user (made so before issue 14): the broker starts");
	ring_writer_close(&w);
	ok(file_stat(stats, &after) && (after.st_mode & 07777) == 0644 &&
		   after.st_ino != before.st_ino,
	   "14.1 ... on a new 0644 statistics object, renamed over the old one");
	is(ring_stats_attach(ring_a, true, &s), 0, "14.1 ... which a frontend counts into");
	if (s) {
		/* another version's object, ours: the broker replaces it in one rename */
		s->version = RING_VERSION + 1;
		ring_stats_detach(s);
		s = NULL;
	}
	is(make_writer(ring_a, 64 * KIB, false, &w, &created), 0,
	   "14.1 stats of another version: the broker starts");
	ring_writer_close(&w);
	if (ring_stats_attach(ring_a, false, &s) == 0) {
		ok(s->version == RING_VERSION,
		   "14.1 ... and replaced the stats object with its own");
		ring_stats_detach(s);
	} else {
		ok(0, "14.1 ... and replaced the stats object with its own");
	}

	if (geteuid() != 0 || chown(path, NOBODY, NOBODY) < 0) {
		diag("skipped: chown to uid %u needs root", NOBODY);
		return;
	}
	(void)chmod(path, 0666);
	(void)file_stat(stats, &before);
	is(make_writer(ring_a, 64 * KIB, false, &w, &created), -EPERM,
	   "14.1 stats 0666 of uid %u: the broker refuses to start on it", NOBODY);
	(void)ring_refusal(ring_a, why, sizeof(why));
	diag("refusal: %s", why);
	ok(strstr(why, path) && strstr(why, "uid 65534") && strstr(why, "mode 0666"),
	   "14.1 ... with one line naming the file, its owner and its mode");
	ok(file_stat(stats, &after) && after.st_ino == before.st_ino &&
		   (after.st_mode & 07777) == 0666,
	   "14.1 ... and leaves it as it was");
	(void)chmod(path, 0644);
	is(ring_stats_attach(ring_a, false, &s), -EPERM,
	   "14.1 stats 0644 of uid %u: still refused (another owner)", NOBODY);
	(void)unlink(path);
	err = make_writer(ring_a, 64 * KIB, false, &w, &created);
	is(err, 0, "14.1 once it is removed, the broker makes its own again");
	if (err == 0)
		ring_writer_close(&w);
}

/* A FIFO or a symbolic link under the name: refused at once, never followed or waited on. */
static void test_planted_special(void)
{
	struct ring r = { 0 };
	char path[256], target[256];
	uint64_t sum;

	path_of(ring_b, path, sizeof(path));
	(void)unlink(path);
	ok(mkfifo(path, 0644) == 0, "14.1 planted: a FIFO under the name");
	alarm(WATCH_SECONDS); /* an open that blocked on the FIFO would hang here */
	is(ring_attach(ring_b, &r), -EPERM, "14.1 FIFO: refused, without blocking on it");
	alarm(0);
	(void)unlink(path);
	path_of(ring_a, target, sizeof(target));
	sum = checksum(ring_a);
	ok(symlink(target, path) == 0, "14.1 planted: a symbolic link to our own ring");
	is(ring_attach(ring_b, &r), -EPERM, "14.1 symbolic link: refused, not followed");
	ok(checksum(ring_a) == sum, "14.1 symbolic link: its target untouched");
	(void)unlink(path);
}

/* --recreate opens no window: a watcher stat()ing the name never finds it missing. */
static void test_recreate_window(void)
{
	struct ring_writer w;
	struct ring old = { 0 }, fresh = { 0 };
	char path[256];
	bool created = false;
	int pipefd[2], status = 0, replaced = 0;
	long missing = -1;
	pid_t pid;

	path_of(ring_a, path, sizeof(path));
	if (pipe(pipefd) < 0)
		return;
	pid = fork();
	if (pid == 0) {
		long counts[2] = { 0, 0 };
		struct stat st;
		char c;

		alarm(WATCH_SECONDS);
		(void)close(pipefd[1]);
		(void)fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
		while (read(pipefd[0], &c, 1) < 0) {
			counts[0]++;
			if (stat(path, &st) < 0 && errno == ENOENT)
				counts[1]++;
		}
		printf("# watcher: %ld looks, %ld missing\n", counts[0], counts[1]);
		fflush(stdout);
		_exit(counts[1] > 255 ? 255 : (int)counts[1]);
	}
	(void)close(pipefd[0]);
	is(ring_attach(ring_a, &old), 0, "14.1 recreate: a reader attached to the old ring");
	for (int i = 0; i < RECREATES; i++) {
		/* another size each time: --recreate replaces it */
		if (make_writer(ring_a, (i & 1) ? 64 * KIB : 128 * KIB, true, &w, &created) == 0) {
			replaced += created;
			ring_writer_close(&w);
		}
	}
	(void)!write(pipefd[1], "x", 1);
	(void)close(pipefd[1]);
	(void)waitpid(pid, &status, 0);
	if (WIFEXITED(status))
		missing = WEXITSTATUS(status);
	is(replaced, RECREATES, "14.1 recreate: %d replacements", RECREATES);
	is(missing, 0, "14.1 recreate: the watcher never found the name missing");
	ok(old.hdr && ring_closed(&old),
	   "14.1 recreate: the old ring's readers were told (closed)");
	is(ring_attach(ring_a, &fresh), 0, "14.1 recreate: re-attaching by name finds a ring");
	ok(fresh.hdr && !ring_closed(&fresh) && fresh.generation != old.generation,
	   "14.1 recreate: ... the new one, of another generation");
	ring_detach(&fresh);
	ring_detach(&old);
	is(count_files(ring_a, ".new-"), 0, "14.1 recreate: no temporary name is left");
}

/* One broker of the race: waits for go, tries, reports 'w' (writer), 'b' (-EBUSY) or 'e', and
 * holds the ring until release ends. */
static void racer(int go, int result, int release)
{
	struct ring_writer w;
	bool created;
	char c;
	int err;

	alarm(WATCH_SECONDS);
	(void)!read(go, &c, 1); /* EOF: both are ready */
	err = make_writer(ring_b, 64 * KIB, false, &w, &created);
	c = (char)(err == 0 ? 'w' : err == -EBUSY ? 'b' : 'e');
	(void)!write(result, &c, 1);
	(void)!read(release, &c, 1); /* EOF: the other has tried */
	_exit(0);
}

/* Two brokers creating the same absent ring at once: one writes, the other is told -EBUSY. */
static void test_create_race(void)
{
	int one_busy = 0, two = 0;

	for (int round = 0; round < RACE_ROUNDS; round++) {
		int go[2], result[2], release[2];
		char got[2] = { 0, 0 };
		pid_t pids[2];

		(void)!ring_unlink(ring_b);
		if (pipe(go) < 0 || pipe(result) < 0 || pipe(release) < 0)
			break;
		for (int k = 0; k < 2; k++) {
			pids[k] = fork();
			if (pids[k] == 0) {
				(void)close(go[1]);
				(void)close(release[1]);
				racer(go[0], result[1], release[0]);
			}
		}
		(void)close(go[0]);
		(void)close(go[1]); /* go */
		(void)close(result[1]);
		for (int k = 0; k < 2; k++)
			if (read(result[0], &got[k], 1) != 1)
				got[k] = '?';
		(void)close(release[1]); /* both tried: the writer may go */
		(void)close(release[0]);
		(void)close(result[0]);
		for (int k = 0; k < 2; k++)
			if (pids[k] > 0)
				(void)waitpid(pids[k], NULL, 0);
		one_busy += (got[0] == 'w' && got[1] == 'b') || (got[0] == 'b' && got[1] == 'w');
		two += got[0] == 'w' && got[1] == 'w';
	}
	diag("create race: %d of %d rounds one writer and one -EBUSY, %d with two writers",
	     one_busy, RACE_ROUNDS, two);
	is(one_busy, RACE_ROUNDS, "14.1 create race: always exactly one writer, the other -EBUSY");
	is(count_files(ring_b, ".new-"), 0, "14.1 create race: no temporary name is left");
	(void)!ring_unlink(ring_b);
}

int main(void)
{
	(void)snprintf(ring_a, sizeof(ring_a), "/gps-t-owner-a-%d", (int)getpid());
	(void)snprintf(ring_b, sizeof(ring_b), "/gps-t-owner-b-%d", (int)getpid());
	(void)!ring_unlink(ring_a);
	(void)!ring_unlink(ring_b);
	test_created_modes();
	test_planted_world_writable();
	test_planted_other_owner();
	test_planted_stats();
	test_planted_special();
	test_recreate_window();
	test_create_race();
	(void)!ring_unlink(ring_a);
	(void)!ring_unlink(ring_b);
	return done_testing();
}
