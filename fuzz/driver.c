/* SPDX-License-Identifier: MIT */
/*
 * A main() for a harness built without libFuzzer: runs LLVMFuzzerTestOneInput once on each
 * file named, or on each file in each directory named. `make fuzz-cov` links it with a
 * coverage build of a harness to measure what the corpus reaches; it also replays a crash file
 * under a debugger without libFuzzer in the way. Exit codes: 0 done, 1 unreadable input,
 * 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/fuzz.h"

/* Largest input read: far above any corpus file (libFuzzer's default max_len is 4 KiB). */
#define DRIVER_MAX_INPUT ((size_t)16 * 1024 * 1024)

/* The harness may have no initialiser: a weak reference is NULL then. */
#pragma weak LLVMFuzzerInitialize

static int run_file(const char *path, size_t *count)
{
	FILE *f = fopen(path, "rbe");
	uint8_t *buf;
	size_t n;

	if (!f) {
		fprintf(stderr, "driver: unable to open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	buf = malloc(DRIVER_MAX_INPUT);
	if (!buf) {
		(void)fclose(f);
		return -1;
	}
	n = fread(buf, 1, DRIVER_MAX_INPUT, f);
	(void)fclose(f);
	/* An exact-size copy, as libFuzzer passes it. */
	{
		uint8_t *in = fuzz_dup(buf, n);

		free(buf);
		(void)LLVMFuzzerTestOneInput(in, n);
		free(in);
	}
	(*count)++;
	return 0;
}

static int run_path(const char *path, size_t *count)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int ret = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "driver: unable to read '%s': %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return run_file(path, count);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "driver: unable to open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char sub[4096];

		if (e->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub))
			continue;
		if (stat(sub, &st) == 0 && S_ISREG(st.st_mode) && run_file(sub, count) < 0)
			ret = -1;
	}
	(void)closedir(d);
	return ret;
}

int main(int argc, char **argv)
{
	size_t count = 0;
	int ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	if (LLVMFuzzerInitialize)
		(void)LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i], &count) < 0)
			ret = 1;
	fprintf(stderr, "driver: %zu inputs run\n", count);
	return ret;
}
