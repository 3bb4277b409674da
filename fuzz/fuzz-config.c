/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: the configuration file parser (common/config.h, PROTOCOL 9).
 *
 * config_load() takes a path, so the input is written to a memfd and loaded through
 * /proc/self/fd/N. Whatever the file, the result must be a configuration every program can run
 * with (strings terminated, numbers in range), and config_write() of it must load back, with no
 * error, to the same values. The first line is also given to the size and duration parsers, and
 * whatever they accept must print and parse back to the same number.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <syslog.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/trust.h"
#include "fuzz/fuzz.h"

static int memfd = -1;
static char memfd_path[64];
static struct trust peers; /* large: static */

/* Make the memfd hold exactly buf[0..len). */
static void memfd_set(const void *buf, size_t len)
{
	FUZZ_CHECK(ftruncate(memfd, 0) == 0, "ftruncate");
	FUZZ_CHECK(len == 0 || pwrite(memfd, buf, len, 0) == (ssize_t)len, "pwrite");
}

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

/* What every program relies on after a load, whatever the file said. */
static void check_config(const struct config *c)
{
	char why[160];

	FUZZ_CHECK(TERMINATED(c->listen_ip) && TERMINATED(c->trusted_peers) &&
			   TERMINATED(c->allow_origin) && TERMINATED(c->ring_name) &&
			   TERMINATED(c->socket_path) && TERMINATED(c->tokens_file),
		   "a string field is not terminated");
	FUZZ_CHECK(c->listen_ip[0] != '\0' && c->socket_path[0] != '\0', "empty IP or socket");
	FUZZ_CHECK(c->port >= 1 && c->port <= 65535, "port %" PRIu32, c->port);
	FUZZ_CHECK(c->max_body > 0 && c->max_target > 0 && c->max_header > 0 &&
			   c->max_header_lines > 0,
		   "a zero limit");
	FUZZ_CHECK(c->header_timeout_ms > 0 && c->body_timeout_ms > 0 && c->keepalive_ms > 0 &&
			   c->send_timeout_ms > 0,
		   "a zero timeout");
	FUZZ_CHECK(c->retention_s >= 1 && c->ring_size > 0, "retention or ring size");
	FUZZ_CHECK(c->ring_name[0] == '/' && c->ring_name[1] != '\0' &&
			   strchr(c->ring_name + 1, '/') == NULL,
		   "ring name '%s'", c->ring_name);
	for (const char *p = c->allow_origin; *p; p++)
		FUZZ_CHECK(*p >= 0x20 && *p <= 0x7e, "allowOrigin byte 0x%02x", (uint8_t)*p);
	FUZZ_CHECK(trust_parse(c->trusted_peers, &peers, why, sizeof(why)) == 0,
		   "trustedPeers '%s' does not parse: %s", c->trusted_peers, why);
}

static void check_same(const struct config *a, const struct config *b)
{
	FUZZ_CHECK(strcmp(a->listen_ip, b->listen_ip) == 0, "IP");
	FUZZ_CHECK(a->port == b->port, "port");
	FUZZ_CHECK(strcmp(a->trusted_peers, b->trusted_peers) == 0, "trustedPeers");
	FUZZ_CHECK(a->max_body == b->max_body && a->max_target == b->max_target &&
			   a->max_header == b->max_header &&
			   a->max_header_lines == b->max_header_lines,
		   "limits");
	FUZZ_CHECK(a->header_timeout_ms == b->header_timeout_ms &&
			   a->body_timeout_ms == b->body_timeout_ms,
		   "timeouts");
	FUZZ_CHECK(a->keepalive_ms == b->keepalive_ms && a->send_timeout_ms == b->send_timeout_ms,
		   "stream durations");
	FUZZ_CHECK(strcmp(a->allow_origin, b->allow_origin) == 0, "allowOrigin");
	FUZZ_CHECK(a->retention_s == b->retention_s && a->ring_size == b->ring_size &&
			   a->msgid_window_s == b->msgid_window_s,
		   "history");
	FUZZ_CHECK(strcmp(a->ring_name, b->ring_name) == 0, "ring");
	FUZZ_CHECK(strcmp(a->socket_path, b->socket_path) == 0, "socket");
	FUZZ_CHECK(strcmp(a->tokens_file, b->tokens_file) == 0, "tokensFile");
}

/* What the value parsers accept prints and parses back to the same number. */
static void check_value_parsers(const uint8_t *data, size_t size)
{
	const uint8_t *lf = memchr(data, '\n', size);
	size_t n = lf ? (size_t)(lf - data) : size;
	char *s = malloc(n + 1), again[32];
	uint64_t v = 0, w = 0;

	FUZZ_CHECK(s != NULL, "out of memory");
	memcpy(s, data, n);
	s[n] = '\0';
	if (config_parse_size(s, &v) == 0) {
		FUZZ_CHECK(s[0] >= '0' && s[0] <= '9', "size '%s' without a leading digit", s);
		(void)snprintf(again, sizeof(again), "%" PRIu64, v);
		FUZZ_CHECK(config_parse_size(again, &w) == 0 && w == v, "size '%s' is %" PRIu64, s,
			   v);
	}
	if (config_parse_duration_ms(s, &v) == 0) {
		FUZZ_CHECK(s[0] >= '0' && s[0] <= '9', "duration '%s' without a leading digit", s);
		(void)snprintf(again, sizeof(again), "%" PRIu64 "ms", v);
		FUZZ_CHECK(config_parse_duration_ms(again, &w) == 0 && w == v,
			   "duration '%s' is %" PRIu64 " ms", s, v);
	}
	free(s);
}

/* libFuzzer's signature: argc is not const. */
int LLVMFuzzerInitialize(int *argc, char ***argv) /* NOLINT(readability-non-const-parameter) */
{
	(void)argc;
	(void)argv;
	/* Every bad line is logged; millions of them would drown libFuzzer's own output. */
	if (!getenv("FUZZ_VERBOSE"))
		log_set_level(LOG_EMERG);
	memfd = memfd_create("gps-fuzz-config", MFD_CLOEXEC);
	FUZZ_CHECK(memfd >= 0, "memfd_create");
	(void)snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, back;
	char *text = NULL;
	size_t text_len = 0;
	FILE *f;
	int r;

	memfd_set(data, size);
	config_defaults(&c);
	r = config_load(memfd_path, &c);
	FUZZ_CHECK(r == 0 || r == -EINVAL, "config_load: %d", r);
	check_config(&c);

	/* The effective configuration, as the broker prints it, loads back as it is. */
	f = open_memstream(&text, &text_len);
	FUZZ_CHECK(f != NULL, "open_memstream");
	config_write(&c, f);
	FUZZ_CHECK(fclose(f) == 0, "fclose");
	memfd_set(text, text_len);
	config_defaults(&back);
	r = config_load(memfd_path, &back);
	FUZZ_CHECK(r == 0, "config_write's output does not load: %d\n%s", r, text);
	check_same(&c, &back);
	free(text);

	check_value_parsers(data, size);
	return 0;
}
