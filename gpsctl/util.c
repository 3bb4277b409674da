/* SPDX-License-Identifier: MIT */
/* gpsctl's output helpers, its TIME parser and the writer-lock probe: see gpsctl/gpsctl.h. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "common/config.h"
#include "common/io.h"
#include "common/log.h"
#include "gpsctl/gpsctl.h"

/* Print a time in microseconds as the protocol does: seconds with exactly 6 decimals. */
void gpsctl_print_unix_us(FILE *f, uint64_t us)
{
	fprintf(f, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

/* "2026-11-26T16:27:06.563379Z"; "-" for 0 (no such time). */
void gpsctl_format_iso(char *buf, size_t len, uint64_t us)
{
	time_t s = (time_t)(us / 1000000u);
	struct tm tm;
	char date[32];

	if (us == 0 || !gmtime_r(&s, &tm) ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		(void)snprintf(buf, len, "-");
		return;
	}
	(void)snprintf(buf, len, "%s.%06" PRIu64 "Z", date, us % 1000000u);
}

/* A JSON string for bytes[0..len): quotes, backslashes and control bytes escaped. The bytes
 * are ours (ring and topic names) or stored topics, which hold no control bytes (PROTOCOL
 * 2.5), and are passed through otherwise. */
void gpsctl_print_json_string(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* A JSON number for a time, or null when there is none. */
void gpsctl_print_json_time(FILE *f, uint64_t us)
{
	if (us)
		gpsctl_print_unix_us(f, us);
	else
		fputs("null", f);
}

/*
 * Parse TIME (see usage()) into microseconds since the epoch: 0 or -EINVAL. Plain decimals
 * follow X-Fetch-Since (PROTOCOL 3.5): digits, optionally a dot and up to 6 more digits.
 */
int gpsctl_parse_time(const char *s, uint64_t *ret_us)
{
	uint64_t now = io_now_real_us();

	if (strcmp(s, "now") == 0) {
		*ret_us = now;
		return 0;
	}
	if (s[0] == '-') {
		uint64_t ms;

		if (config_parse_duration_ms(s + 1, &ms) < 0 || ms > now / 1000u)
			return -EINVAL;
		*ret_us = now - ms * 1000u;
		return 0;
	}
	if (strchr(s, 'T')) {
		struct tm tm = { 0 };
		const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
		uint64_t frac = 0, scale = 100000u;
		time_t t;

		if (!p)
			return -EINVAL;
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			for (; *p >= '0' && *p <= '9'; p++) {
				if (scale == 0)
					return -EINVAL; /* finer than a microsecond */
				frac += (uint64_t)(*p - '0') * scale;
				scale /= 10u;
			}
		}
		if (strcmp(p, "Z") != 0)
			return -EINVAL; /* only UTC: a local time would depend on TZ */
		t = timegm(&tm);
		if (t < 0)
			return -EINVAL;
		*ret_us = (uint64_t)t * 1000000u + frac;
		return 0;
	}
	{
		uint64_t secs = 0, frac = 0, scale = 100000u;
		const char *p = s;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (secs > (UINT64_MAX / 1000000u - 9u) / 10u)
				return -EINVAL;
			secs = secs * 10u + (uint64_t)(*p - '0');
		}
		if (*p == '.') {
			p++;
			for (; *p >= '0' && *p <= '9'; p++) {
				/* past microseconds digits are dropped: the ring keeps no finer */
				frac += (uint64_t)(*p - '0') * scale;
				scale /= 10u;
			}
		}
		if (*p)
			return -EINVAL;
		*ret_us = secs * 1000000u + frac;
		return 0;
	}
}

void gpsctl_log_refusal(const char *name)
{
	char why[1024];

	(void)ring_refusal(name, why, sizeof(why));
	log_error("refusing ring '%s': %s", name, why);
}

/* "/dev/shm/<name without its slash>" into buf; 0 or -ENAMETOOLONG. */
int gpsctl_ring_file(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, SHM_DIR "/%s", name[0] == '/' ? name + 1 : name);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/*
 * The pid holding flock(LOCK_EX) on ring 'name' (the broker holds it while it runs: shm/ring.h
 * section 1), read from /proc/locks so that nothing is locked or probed: *ret_pid is 0 if no
 * process holds it. 0, or -errno if the ring or /proc/locks cannot be read.
 */
int gpsctl_writer_lock_holder(const char *name, pid_t *ret_pid)
{
	char path[PATH_MAX], line[256];
	struct stat st;
	pid_t found = 0;
	FILE *f;
	int err;

	err = gpsctl_ring_file(name, path, sizeof(path));
	if (err < 0)
		return err;
	if (stat(path, &st) < 0)
		return -errno;
	f = fopen("/proc/locks", "re");
	if (!f)
		return -errno;
	/* "1: FLOCK  ADVISORY  WRITE 27250 00:19:1234 0 EOF"; waiters read "1: -> FLOCK ..." */
	while (fgets(line, sizeof(line), f)) {
		char *tok[6], *save = NULL, *end;
		unsigned long maj, min, ino;
		long pid;
		size_t n = 0;

		for (char *t = strtok_r(line, " \t\n", &save); t && n < ARRAY_SIZE(tok);
		     t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		if (n < ARRAY_SIZE(tok) || strcmp(tok[1], "FLOCK") != 0 ||
		    strcmp(tok[3], "WRITE") != 0)
			continue;
		errno = 0;
		pid = strtol(tok[4], &end, 10);
		if (errno || *end || pid <= 0)
			continue;
		maj = strtoul(tok[5], &end, 16);
		if (*end != ':')
			continue;
		min = strtoul(end + 1, &end, 16);
		if (*end != ':')
			continue;
		ino = strtoul(end + 1, &end, 10);
		if (errno || *end)
			continue;
		if (makedev((unsigned int)maj, (unsigned int)min) == st.st_dev &&
		    (ino_t)ino == st.st_ino) {
			found = (pid_t)pid;
			break;
		}
	}
	(void)fclose(f);
	*ret_pid = found;
	return 0;
}
