/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/io.h"
#include "common/log.h"
#include "tests/tap.h"

/* What config_load wrote to stderr during the last load_text(); more is cut off. */
static char logged[16384];

/* The path of the file load_text() wrote, for the "file:line:" part of messages. */
static char cfg_path[64];

/* Count the occurrences of needle in haystack. */
static unsigned count_of(const char *haystack, const char *needle)
{
	unsigned n = 0;

	for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* "PATH:LINE:" for the last file loaded, to look for in logged. */
static const char *at_line(unsigned line)
{
	static char buf[96];

	(void)snprintf(buf, sizeof(buf), "%s:%u:", cfg_path, line);
	return buf;
}

/*
 * Load path into c with fd 2 sent to a temporary file, whose text ends up in logged: log.c
 * writes straight to fd 2, so that is where its lines are caught.
 */
static int load_capture(const char *path, struct config *c)
{
	char tmpl[] = "/tmp/t-config-log-XXXXXX";
	int fd, saved, rc;
	ssize_t n;

	logged[0] = '\0';
	fd = mkstemp(tmpl);
	saved = dup(2);
	if (fd < 0 || saved < 0 || dup2(fd, 2) < 0) {
		diag("unable to capture stderr: %s", strerror(errno));
		return -999;
	}
	rc = config_load(path, c);
	(void)dup2(saved, 2);
	(void)close(saved);
	n = pread(fd, logged, sizeof(logged) - 1, 0);
	logged[n > 0 ? n : 0] = '\0';
	(void)close(fd);
	(void)unlink(tmpl);
	return rc;
}

/* Write len bytes of text to a fresh temporary file and load it into c over the defaults. */
static int load_bytes(const char *text, size_t len, struct config *c)
{
	int fd, rc;

	config_defaults(c); /* first: the caller reads c even when the file cannot be written */
	(void)snprintf(cfg_path, sizeof(cfg_path), "/tmp/t-config-XXXXXX");
	fd = mkstemp(cfg_path);
	if (fd < 0 || io_write_full(fd, text, len) < 0) {
		diag("unable to write a temporary config: %s", strerror(errno));
		if (fd >= 0) {
			(void)close(fd);
			(void)unlink(cfg_path);
		}
		return -999;
	}
	(void)close(fd);
	rc = load_capture(cfg_path, c);
	(void)unlink(cfg_path);
	return rc;
}

static int load_text(const char *text, struct config *c)
{
	return load_bytes(text, strlen(text), c);
}

static void test_defaults(void)
{
	struct config c;

	memset(&c, 0x5a, sizeof(c));
	config_defaults(&c);
	is_str(c.listen_ip, "127.0.0.1", "default IP");
	is(c.port, 2069, "default port");
	is_str(c.trusted_peers, "127.0.0.1 ::1", "default trustedPeers");
	is_str(c.proxies, "", "default proxies: none");
	is(c.max_body, 2 * 1024 * 1024, "default maxBodySize is 2 MiB");
	is(c.max_target, 8 * 1024, "default maxTargetSize is 8 KiB");
	is(c.max_header, 16 * 1024, "default maxHeaderSize is 16 KiB");
	is(c.max_header_lines, 100, "default maxHeaderLines");
	is(c.header_timeout_ms, 10000, "default headerTimeout is 10 s");
	is(c.body_timeout_ms, 30000, "default bodyTimeout is 30 s");
	is(c.keepalive_ms, 5000, "default keepalive is 5 s");
	is(c.send_timeout_ms, 60000, "default sendTimeout is 60 s");
	is(c.retention_s, 48 * 3600, "default retention is 48 h");
	is(c.ring_size, 64 * 1024 * 1024, "default ringSize is 64 MiB");
	is_str(c.ring_name, CONFIG_DEFAULT_RING, "default ring");
	is_str(c.socket_path, CONFIG_DEFAULT_SOCKET, "default socket");
}

static void test_every_key(void)
{
	static const char text[] = "# GitPubSub test configuration\n"
				   "; a semicolon comment\n"
				   "\n"
				   "[Server]\n"
				   "port: 8080\n"
				   "IP = 0.0.0.0\n"
				   "   # an indented comment\n"
				   "\t; a tab-indented comment\n"
				   "   \t  \n"
				   "  [Clients]  \n"
				   "trustedPeers:   10.0.0.0/8   192.168.0.*  ::1  \n"
				   "[Limits]\n"
				   "maxBodySize = 4M\n"
				   "maxTargetSize: 4K\n"
				   "maxHeaderSize:32KiB\n"
				   "maxHeaderLines=50\n"
				   "  headerTimeout  :  2500ms  \n"
				   "bodyTimeout: 1m\n"
				   "[ Stream ]\n"
				   "keepalive: 2s\n"
				   "sendTimeout = 90\n"
				   "[History]\n"
				   "retention: 2d\n"
				   "ringSize: 1G\n"
				   "ring: /gps-test\n"
				   "[Broker]\n"
				   "socket = /tmp/gps-test.sock\n";
	struct config c;

	is(load_text(text, &c), 0, "a file setting every key loads");
	is_str(logged, "", "and logs nothing");
	is(c.port, 8080, "[Server] port");
	is_str(c.listen_ip, "0.0.0.0", "[Server] IP with '='");
	is_str(c.trusted_peers, "10.0.0.0/8   192.168.0.*  ::1", "[Clients] trustedPeers, trimmed");
	is(c.max_body, 4 * 1024 * 1024, "[Limits] maxBodySize 4M");
	is(c.max_target, 4096, "[Limits] maxTargetSize 4K");
	is(c.max_header, 32 * 1024, "[Limits] maxHeaderSize 32KiB, no space after ':'");
	is(c.max_header_lines, 50, "[Limits] maxHeaderLines, no spaces around '='");
	is(c.header_timeout_ms, 2500, "[Limits] headerTimeout 2500ms, spaces around key and ':'");
	is(c.body_timeout_ms, 60000, "[Limits] bodyTimeout 1m");
	is(c.keepalive_ms, 2000, "[Stream] keepalive 2s, header with inner spaces");
	is(c.send_timeout_ms, 90000, "[Stream] sendTimeout 90 (bare seconds)");
	is(c.retention_s, 2 * 86400, "[History] retention 2d");
	is(c.ring_size, 1024 * 1024 * 1024, "[History] ringSize 1G");
	is_str(c.ring_name, "/gps-test", "[History] ring");
	is_str(c.socket_path, "/tmp/gps-test.sock", "[Broker] socket");
}

static void test_syntax(void)
{
	struct config c;

	is(load_text("[SERVER]\nPORT: 1234\n[clients]\nTRUSTEDPEERS = ::1\n"
		     "[hIsToRy]\nRingSize: 1m\nRING: /x\n",
		     &c),
	   0, "section and key names are case-insensitive");
	is(c.port, 1234, "PORT in [SERVER]");
	is_str(c.trusted_peers, "::1", "TRUSTEDPEERS in [clients]");
	is(c.ring_size, 1024 * 1024, "RingSize in [hIsToRy]");
	is_str(c.ring_name, "/x", "RING in [hIsToRy]");
	is_str(logged, "", "case differences log nothing");

	is(load_text("[Server]\nIP = ::1\n", &c), 0, "'IP = ::1' loads");
	is_str(c.listen_ip, "::1", "the first separator ('=') splits: value '::1'");
	is(load_text("[Server]\nIP: ::1\n", &c), 0, "'IP: ::1' loads");
	is_str(c.listen_ip, "::1", "the first separator (':') splits: value '::1'");
	is(load_text("[Broker]\nsocket: /tmp/a=b.sock\n", &c), 0, "'=' inside a ':' value");
	is_str(c.socket_path, "/tmp/a=b.sock", "an '=' after the ':' belongs to the value");
	is(load_text("[Broker]\nsocket = /tmp/a:b.sock\n", &c), 0, "':' inside a '=' value");
	is_str(c.socket_path, "/tmp/a:b.sock", "a ':' after the '=' belongs to the value");

	is(load_text("[Server]\r\nport: 81\r\nIP: 10.1.1.1\r\n", &c), 0, "CRLF line ends load");
	is(c.port, 81, "CRLF: port has no CR");
	is_str(c.listen_ip, "10.1.1.1", "CRLF: IP has no CR");
	is(load_text("[Server]\nport: 82", &c), 0, "a last line without newline loads");
	is(c.port, 82, "the unterminated last line counts");
	is(load_text("\xef\xbb\xbf[Server]\nport: 83\n", &c), 0, "a UTF-8 BOM is skipped");
	is(c.port, 83, "the line after a BOM-led header counts");
	is(load_text("", &c), 0, "an empty file loads");
	is(c.port, 2069, "an empty file keeps the defaults");
	is(load_text("[Server]\nport: 84\nport: 85\n", &c), 0, "a repeated key loads");
	is(c.port, 85, "the last of a repeated key wins");
	is(load_text("[Server]\n#port: 86\n;port: 87\n  # port: 88\n", &c), 0,
	   "commented-out keys load");
	is(c.port, 2069, "commented-out keys are not applied");

	{
		struct config pre;

		config_defaults(&pre);
		pre.port = 4000;
		c = pre;
		(void)snprintf(cfg_path, sizeof(cfg_path), "/tmp/t-config-XXXXXX");
		{
			int fd = mkstemp(cfg_path);

			if (fd < 0 || io_write_full(fd, "[Server]\nIP: ::\n",
						    strlen("[Server]\nIP: ::\n")) < 0)
				diag("unable to write a temporary config");
			(void)close(fd);
		}
		is(load_capture(cfg_path, &c), 0, "loading over earlier values");
		(void)unlink(cfg_path);
		is(c.port, 4000, "a key absent from the file keeps its earlier value");
		is_str(c.listen_ip, "::", "a key in the file replaces its earlier value");
	}
}

static void test_unknown(void)
{
	struct config c;

	is(load_text("[Server]\nport: 1\nbogus: 3\nIP: 1.2.3.4\n", &c), 0,
	   "an unknown key still loads");
	ok(strstr(logged, "warning: ") && strstr(logged, at_line(3)) &&
		   strstr(logged, "unknown key 'bogus' in section '[Server]', ignoring"),
	   "the unknown key is a warning naming file, line, key and section");
	if (!strstr(logged, "unknown key 'bogus'"))
		diag("  logged: %s", logged);
	is(count_of(logged, "\n"), 1, "exactly one line is logged");
	is(count_of(logged, "error"), 0, "no error is logged");
	is(c.port, 1, "the key before the unknown one is applied");
	is_str(c.listen_ip, "1.2.3.4", "the key after the unknown one is applied");

	is(load_text("[Nope]\nfoo = bar\nport: 9\n[Server]\nport: 7\n", &c), 0,
	   "an unknown section still loads");
	ok(strstr(logged, "unknown key 'foo' in section '[Nope]', ignoring") &&
		   strstr(logged, at_line(2)) &&
		   strstr(logged, "unknown key 'port' in section '[Nope]', ignoring") &&
		   strstr(logged, at_line(3)),
	   "each key of an unknown section is warned about");
	is(c.port, 7, "a known key's name in an unknown section is not applied");

	is(load_text("[Stream]\nport: 5\n", &c), 0, "a known key in the wrong section loads");
	ok(strstr(logged, "unknown key 'port' in section '[Stream]'") != NULL,
	   "a known key in the wrong section is unknown there");
	is(c.port, 2069, "a known key in the wrong section is not applied");
}

struct bad_case {
	const char *text;  /* a whole file */
	unsigned line;	   /* the line the error names */
	const char *about; /* what the message must contain */
};

static char long_ip[128], long_ring[128], long_socket[256], long_peers[4200], long_line[9000];

static const struct bad_case bad_cases[] = {
	{ "[Server]\nport: 0\n", 2, "'0'" },
	{ "[Server]\nport: 65536\n", 2, "'65536'" },
	{ "[Server]\nport: -1\n", 2, "'-1'" },
	{ "[Server]\nport: +80\n", 2, "'+80'" },
	{ "[Server]\nport: http\n", 2, "'http'" },
	{ "[Server]\nport: 80x\n", 2, "'80x'" },
	{ "[Server]\nport: 80 # web\n", 2, "'80 # web'" },
	{ "[Server]\nport:\n", 2, "port" },
	{ "[Server]\nport: 99999999999999999999999\n", 2, "port" },
	{ "[Server]\nIP:\n", 2, "IP" },
	{ long_ip, 2, "IP" },
	{ "[Clients]\ntrustedPeers: 127.0.0.1 10.0.0.0/33\n", 2, "'10.0.0.0/33'" },
	{ "[Clients]\ntrustedPeers: example.com\n", 2, "'example.com'" },
	{ "[Clients]\ntrustedPeers: 10.*.0.1\n", 2, "'10.*.0.1'" },
	{ long_peers, 2, "trustedPeers" },
	{ "[Clients]\nproxies: proxy.example.org\n", 2, "'proxy.example.org'" },
	{ "[Limits]\nmaxBodySize: 0\n", 2, "maxBodySize" },
	{ "[Limits]\nmaxBodySize:\n", 2, "maxBodySize" },
	{ "[Limits]\nmaxBodySize: 2X\n", 2, "'2X'" },
	{ "[Limits]\nmaxBodySize: -1\n", 2, "'-1'" },
	{ "[Limits]\nmaxBodySize: 1.5M\n", 2, "'1.5M'" },
	{ "[Limits]\nmaxBodySize: 99999999999G\n", 2, "'99999999999G'" },
	{ "[Limits]\nmaxTargetSize: 4G\n", 2, "maxTargetSize" },
	{ "[Limits]\nmaxTargetSize: 0K\n", 2, "maxTargetSize" },
	{ "[Limits]\nmaxHeaderSize: big\n", 2, "maxHeaderSize" },
	{ "[Limits]\nmaxHeaderLines: 0\n", 2, "maxHeaderLines" },
	{ "[Limits]\nmaxHeaderLines: 10K\n", 2, "maxHeaderLines" },
	{ "[Limits]\nmaxHeaderLines: 4294967296\n", 2, "maxHeaderLines" },
	{ "[Limits]\nheaderTimeout: 0\n", 2, "headerTimeout" },
	{ "[Limits]\nheaderTimeout: 5x\n", 2, "'5x'" },
	{ "[Limits]\nheaderTimeout: -5\n", 2, "'-5'" },
	{ "[Limits]\nheaderTimeout: 50d\n", 2, "'50d'" },
	{ "[Limits]\nbodyTimeout: 1.0005s\n", 2, "bodyTimeout" },
	{ "[Stream]\nkeepalive: 0ms\n", 2, "keepalive" },
	{ "[Stream]\nkeepalive: 5 s\n", 2, "keepalive" },
	{ "[Stream]\nsendTimeout:\n", 2, "sendTimeout" },
	{ "[History]\nretention: 500ms\n", 2, "retention" },
	{ "[History]\nretention: 0\n", 2, "retention" },
	{ "[History]\nretention: h\n", 2, "retention" },
	{ "[History]\nringSize: 0\n", 2, "ringSize" },
	{ "[History]\nring: gitpubsub\n", 2, "'gitpubsub'" },
	{ "[History]\nring: /a/b\n", 2, "'/a/b'" },
	{ "[History]\nring: /\n", 2, "ring" },
	{ "[History]\nring:\n", 2, "ring" },
	{ long_ring, 2, "ring" },
	{ "[Broker]\nsocket:\n", 2, "socket" },
	{ long_socket, 2, "socket" },
	/* malformed lines */
	{ "port: 1\n", 1, "outside any section" },
	{ "\n\n[Server\n", 3, "']'" },
	{ "[]\n", 1, "section" },
	{ "[Server]]\n", 1, "section" },
	{ "[Server]\njust some words\n", 2, "'just some words'" },
	{ "[Server]\n: 5\n", 2, "no key" },
	{ "[Server]\n = 5\n", 2, "no key" },
	{ long_line, 2, "8192" },
};

static void fill_long_cases(void)
{
	char *p;

	(void)snprintf(long_ip, sizeof(long_ip), "[Server]\nIP: %064d\n", 0);
	(void)snprintf(long_ring, sizeof(long_ring), "[History]\nring: /%063d\n", 0);
	(void)snprintf(long_socket, sizeof(long_socket), "[Broker]\nsocket: /%0107d\n", 0);

	p = long_peers + sprintf(long_peers, "[Clients]\ntrustedPeers:");
	while (p < long_peers + sizeof(long_peers) - 24)
		p += sprintf(p, " 127.0.0.1");
	(void)sprintf(p, "\n");

	p = long_line + sprintf(long_line, "[Server]\nIP: ");
	memset(p, 'a', 8500);
	(void)sprintf(p + 8500, "\n");
}

/*
 * Whether a and b hold the same settings. Field by field, not memcmp(): struct config has
 * padding, and bytes after a string's NUL, that config_defaults() leaves indeterminate. A field
 * added to struct config must be added here too.
 */
static bool config_equal(const struct config *a, const struct config *b)
{
	return strcmp(a->listen_ip, b->listen_ip) == 0 && a->port == b->port &&
	       strcmp(a->trusted_peers, b->trusted_peers) == 0 && a->max_body == b->max_body &&
	       a->max_target == b->max_target && a->max_header == b->max_header &&
	       a->max_header_lines == b->max_header_lines &&
	       a->header_timeout_ms == b->header_timeout_ms &&
	       a->body_timeout_ms == b->body_timeout_ms && a->keepalive_ms == b->keepalive_ms &&
	       a->send_timeout_ms == b->send_timeout_ms &&
	       strcmp(a->allow_origin, b->allow_origin) == 0 && a->retention_s == b->retention_s &&
	       a->ring_size == b->ring_size && strcmp(a->ring_name, b->ring_name) == 0 &&
	       a->msgid_window_s == b->msgid_window_s &&
	       strcmp(a->socket_path, b->socket_path) == 0;
}

static void test_bad_values(void)
{
	struct config defaults;

	fill_long_cases();
	config_defaults(&defaults);
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *bc = &bad_cases[i];
		struct config c;
		char name[64];
		const char *nl;

		nl = strchr(bc->text, '\n');
		(void)snprintf(name, sizeof(name), "%.40s", nl && nl[1] ? nl + 1 : bc->text);
		name[strcspn(name, "\n")] = '\0';

		is(load_text(bc->text, &c), -EINVAL, "bad '%s' is -EINVAL", name);
		ok(strstr(logged, "error: ") && strstr(logged, at_line(bc->line)) &&
			   strstr(logged, bc->about),
		   "bad '%s' logs an error at line %u about %s", name, bc->line, bc->about);
		if (!strstr(logged, bc->about) || !strstr(logged, at_line(bc->line)))
			diag("  logged: %s", logged);
		is(count_of(logged, "\n"), 1, "bad '%s' logs one line", name);
		ok(config_equal(&c, &defaults), "bad '%s' changes nothing", name);
	}
}

static void test_errors_continue(void)
{
	static const char text[] = "[Server]\n"
				   "port: 0\n"
				   "IP: 10.0.0.1\n"
				   "[Stream]\n"
				   "keepalive: soon\n"
				   "sendTimeout: 7s\n"
				   "wat: 1\n";
	struct config c;

	is(load_text(text, &c), -EINVAL, "errors make the load -EINVAL");
	is(count_of(logged, "error: "), 2, "both errors are logged");
	ok(strstr(logged, at_line(2)) && strstr(logged, at_line(5)),
	   "the errors name lines 2 and 5");
	ok(strstr(logged, "unknown key 'wat'") && strstr(logged, at_line(7)),
	   "the unknown key after them is still warned about");
	is(c.port, 2069, "the bad port is not applied");
	is_str(c.listen_ip, "10.0.0.1", "the good key after an error is applied");
	is(c.keepalive_ms, 5000, "the bad keepalive is not applied");
	is(c.send_timeout_ms, 7000, "the good key after a second error is applied");

	is(load_text("[Server\nport: 1\n[Server]\nport: 2\n", &c), -EINVAL,
	   "a malformed header is an error");
	is(count_of(logged, "\n"), 1, "the keys under a malformed header add no noise");
	is(c.port, 2, "the keys under a malformed header are ignored; later ones apply");

	{
		static const char nul[] = "[Server]\nport: 1\0 2\nIP: ::\n";

		is(load_bytes(nul, sizeof(nul) - 1, &c), -EINVAL, "a NUL byte is an error");
		ok(strstr(logged, "NUL") && strstr(logged, at_line(2)), "the NUL line is named");
		is(c.port, 2069, "the NUL line is not applied");
		is_str(c.listen_ip, "::", "the line after the NUL line is applied");
	}
}

static void test_missing(void)
{
	struct config c, defaults;

	config_defaults(&defaults);
	c = defaults;
	is(load_capture("/tmp/t-config-no-such-dir/gitpubsub.cfg", &c), -ENOENT,
	   "a missing file is -ENOENT");
	is_str(logged, "", "a missing file logs nothing");
	ok(config_equal(&c, &defaults), "a missing file changes nothing");
	is(load_capture("/tmp", &c), -EISDIR, "a directory is -EISDIR, not a parse error");
}

struct size_case {
	const char *s;
	int rc;
	uint64_t want;
};

static const struct size_case size_cases[] = {
	{ "0", 0, 0 },
	{ "1", 0, 1 },
	{ "2097152", 0, 2097152 },
	{ "2M", 0, 2097152 },
	{ "2MiB", 0, 2097152 },
	{ "2m", 0, 2097152 },
	{ "2mib", 0, 2097152 },
	{ "64K", 0, 65536 },
	{ "64k", 0, 65536 },
	{ "64KiB", 0, 65536 },
	{ "1G", 0, 1073741824 },
	{ "1GiB", 0, 1073741824 },
	{ "16G", 0, UINT64_C(17179869184) },
	{ "007", 0, 7 },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "17179869183G", 0, UINT64_C(17179869183) << 30 },
	{ "", -EINVAL, 0 },
	{ " 1", -EINVAL, 0 },
	{ "1 ", -EINVAL, 0 },
	{ "2 M", -EINVAL, 0 },
	{ "-1", -EINVAL, 0 },
	{ "+1", -EINVAL, 0 },
	{ "1.5M", -EINVAL, 0 },
	{ "1T", -EINVAL, 0 },
	{ "1KB", -EINVAL, 0 },
	{ "1MiBB", -EINVAL, 0 },
	{ "K", -EINVAL, 0 },
	{ "0x10", -EINVAL, 0 },
	{ "1e3", -EINVAL, 0 },
	{ "abc", -EINVAL, 0 },
	{ "18446744073709551616", -EINVAL, 0 },
	{ "99999999999999999999999", -EINVAL, 0 },
	{ "17179869184G", -EINVAL, 0 },
	{ "18014398509481984K", -EINVAL, 0 },
};

static void test_parse_size(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(size_cases); i++) {
		const struct size_case *sc = &size_cases[i];
		uint64_t v = 424242;
		int rc = config_parse_size(sc->s, &v);

		is(rc, sc->rc, "size '%s' returns %d", sc->s, sc->rc);
		if (sc->rc == 0)
			ok(v == sc->want, "size '%s' is %" PRIu64 " (got %" PRIu64 ")", sc->s,
			   sc->want, v);
		else
			ok(v == 424242, "size '%s' leaves *ret untouched", sc->s);
	}
	{
		uint64_t v = 1;

		is(config_parse_size(NULL, &v), -EINVAL, "size NULL is -EINVAL");
	}
}

static const struct size_case duration_cases[] = {
	{ "0", 0, 0 },
	{ "5", 0, 5000 },
	{ "250ms", 0, 250 },
	{ "5s", 0, 5000 },
	{ "10m", 0, 600000 },
	{ "48h", 0, 172800000 },
	{ "2d", 0, 172800000 },
	{ "0ms", 0, 0 },
	{ "1.5s", 0, 1500 },
	{ "1.5", 0, 1500 },
	{ "0.25s", 0, 250 },
	{ "1.5h", 0, 5400000 },
	{ "0.5m", 0, 30000 },
	{ "2.0ms", 0, 2 },
	{ "1.000000000s", 0, 1000 },
	{ "0.001s", 0, 1 },
	{ "18446744073709551615ms", 0, UINT64_MAX },
	{ "213503982334d", 0, UINT64_C(213503982334) * 86400000 },
	{ "", -EINVAL, 0 },
	{ "-5", -EINVAL, 0 },
	{ "+5", -EINVAL, 0 },
	{ " 5", -EINVAL, 0 },
	{ "5 ", -EINVAL, 0 },
	{ "5 s", -EINVAL, 0 },
	{ "5x", -EINVAL, 0 },
	{ "5S", -EINVAL, 0 },
	{ "5sec", -EINVAL, 0 },
	{ "5ss", -EINVAL, 0 },
	{ "1.0005s", -EINVAL, 0 },
	{ "0.5ms", -EINVAL, 0 },
	{ "0.0001s", -EINVAL, 0 },
	{ ".5s", -EINVAL, 0 },
	{ "5.s", -EINVAL, 0 },
	{ "5.", -EINVAL, 0 },
	{ "1.5.5s", -EINVAL, 0 },
	{ "1.0000000000s", -EINVAL, 0 },
	{ "ms", -EINVAL, 0 },
	{ "s", -EINVAL, 0 },
	{ "1e3", -EINVAL, 0 },
	{ "0x10", -EINVAL, 0 },
	{ "18446744073709551616ms", -EINVAL, 0 },
	{ "18446744073709551615s", -EINVAL, 0 },
	{ "213503982335d", -EINVAL, 0 },
	{ "18446744073709551615.5ms", -EINVAL, 0 },
};

static void test_parse_duration(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(duration_cases); i++) {
		const struct size_case *dc = &duration_cases[i];
		uint64_t v = 424242;
		int rc = config_parse_duration_ms(dc->s, &v);

		is(rc, dc->rc, "duration '%s' returns %d", dc->s, dc->rc);
		if (dc->rc == 0)
			ok(v == dc->want, "duration '%s' is %" PRIu64 " ms (got %" PRIu64 ")",
			   dc->s, dc->want, v);
		else
			ok(v == 424242, "duration '%s' leaves *ret untouched", dc->s);
	}
	{
		uint64_t v = 1;

		is(config_parse_duration_ms(NULL, &v), -EINVAL, "duration NULL is -EINVAL");
	}
}

int main(void)
{
	/* log_open() is not called: its sink choice could follow a $JOURNAL_STREAM; stderr it is */
	log_set_level(LOG_DEBUG);
	test_defaults();
	test_every_key();
	test_syntax();
	test_unknown();
	test_bad_values();
	test_errors_continue();
	test_missing();
	test_parse_size();
	test_parse_duration();
	return done_testing();
}
