/* SPDX-License-Identifier: MIT */
/*
 * t-request: the frontend's request handlers without a socket. A connection with no file
 * descriptor keeps everything it would send in its output buffer, so these tests feed request
 * bytes in, run the same request loop every frontend runs, and read the answers back
 * (PROTOCOL 1.2-1.3, 4.1, 4.6, 6, 7).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/io.h"
#include "common/sha256.h"
#include "frontend/frontend.h"
#include "tests/tap.h"

static struct frontend fe;

static void setup(void)
{
	const uint64_t periods[TIMER_NCLASSES] = {
		[TIMER_HEADER] = 10000000u, [TIMER_BODY] = 30000000u,  [TIMER_KEEPALIVE] = 5000000u,
		[TIMER_BROKER] = 5000000u,  [TIMER_LINGER] = 1000000u, [TIMER_RETRY] = 200000u,
	};

	config_defaults(&fe.cfg);
	/* no broker answers here: a publish finds nobody at this path */
	(void)snprintf(fe.cfg.socket_path, sizeof(fe.cfg.socket_path), "/nonexistent/broker.sock");
	(void)snprintf(fe.cfg.ring_name, sizeof(fe.cfg.ring_name), "/t-request-no-such-ring");
	fe.ring_name = fe.cfg.ring_name;
	fe.listen_fd = fe.wake_fd = -1;
	fe.listen_io.fd = fe.wake_io.fd = -1;
	fe.single = true;
	if (loop_init(&fe.loop, periods) < 0) {
		perror("loop_init");
		exit(1);
	}
}

/* A connection without a socket; trusted as a peer in trustedPeers would be. */
static struct conn *connect_test(bool trusted)
{
	struct conn *c = conn_new(&fe, -1);

	if (!c || !request_start(c))
		exit(1);
	c->trusted = trusted;
	return c;
}

/* The client sends s. */
static void feed(struct conn *c, const char *s)
{
	size_t n = strlen(s);

	if (c->in_len + n > c->in_cap) {
		c->in = realloc(c->in, c->in_len + n);
		if (!c->in)
			exit(1);
		c->in_cap = c->in_len + n;
	}
	memcpy(c->in + c->in_len, s, n);
	c->in_len += n;
	request_process(c);
}

/* What the connection has sent, as a string (the buffer is kept; NUL added past it). */
static const char *sent(struct conn *c)
{
	static char buf[8192];
	size_t n = c->out_len < sizeof(buf) - 1 ? c->out_len : sizeof(buf) - 1;

	memcpy(buf, c->out ? c->out + c->out_off : "", n);
	buf[n] = '\0';
	return buf;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_head(void)
{
	struct conn *c = connect_test(false);

	feed(c, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
	ok(strncmp(sent(c), "HTTP/1.1 200 OK\r\n", 17) == 0, "6.2: an untrusted HEAD gets 200");
	ok(strstr(sent(c), "Content-Length: 0\r\n") != NULL, "6.2: with Content-Length: 0");
	ok(strstr(sent(c), "\r\nX-") == NULL, "6.2: and no statistics header");
	is(c->state, CONN_HEAD, "1.2: the connection stays open for the next request");
	conn_close(c, "test done");
}

static void test_pipeline(void)
{
	struct conn *c = connect_test(false);

	/* half a head: nothing yet */
	feed(c, "HEAD /a HTTP/1.1\r\nHo");
	is(c->out_len, 0, "an incomplete head is not answered");
	feed(c, "st: x\r\n\r\nHEAD /b HTTP/1.0\r\n\r\nHEAD /c HTTP/1.1\r\nHost: t\r\n\r\n");
	is(count(sent(c), "HTTP/1.1 200 OK\r\n"), 2,
	   "1.3: pipelined requests are answered in order");
	ok(strstr(sent(c), "Connection: close\r\n") != NULL,
	   "1.2: the HTTP/1.0 request without keep-alive is answered with Connection: close");
	is(c->state, CONN_LINGER, "1.2: and nothing after it is served");
	conn_close(c, "test done");
}

static void test_connection_lines(void)
{
	struct conn *c = connect_test(false);

	/* RFC 9110 5.3: several lines are one list; RFC 9112 9.6: nothing after a close */
	feed(c, "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
		"HEAD /2 HTTP/1.1\r\nHost: t\r\n\r\n");
	is(count(sent(c), "HTTP/1.1 200 OK\r\n"), 1,
	   "1.2: a close in a second Connection line counts");
	ok(strstr(sent(c), "Connection: close\r\n") != NULL, "1.2: it is answered with close");
	is(c->state, CONN_LINGER, "1.2: and the pipelined request after it is not served");
	conn_close(c, "test done");
}

static void test_expect(void)
{
	struct conn *c = connect_test(true);

	feed(c, "POST /t HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	is_str(sent(c), "HTTP/1.1 100 Continue\r\n\r\n", "4.2: Expect: 100-continue is answered");
	conn_close(c, "test done");
	c = connect_test(true);
	feed(c, "POST /t HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
	is(c->out_len, 0, "RFC 9110 15.2: but not to HTTP/1.0, which has no 1xx answers");
	is(c->state, CONN_BODY, "the body is read all the same");
	conn_close(c, "test done");
}

static void test_errors(void)
{
	static const struct {
		const char *what, *request, *status, *extra;
	} cases[] = {
		{ "a malformed request line", "GET / HTTP/1.1 x\r\n\r\n",
		  "HTTP/1.1 400 Bad Request\r\n", NULL },
		{ "an unknown method", "DELETE / HTTP/1.1\r\nHost: t\r\n\r\n",
		  "HTTP/1.1 405 Method Not Allowed\r\n", "Allow: GET, HEAD, POST, PUT\r\n" },
		{ "HTTP/2", "GET / HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n",
		  NULL },
		{ "a HEAD with a body",
		  "HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
		  "HTTP/1.1 400 Bad Request\r\n", "a GET or HEAD request may not carry a body" },
		{ "a bad X-Fetch-Since",
		  "GET /t HTTP/1.1\r\nHost: t\r\nX-Fetch-Since: soon\r\n\r\n",
		  "HTTP/1.1 400 Bad Request\r\n",
		  "X-Fetch-Since must be a plain decimal unix time" },
		{ "a subscription with a bad escape", "GET /a%zz HTTP/1.1\r\nHost: t\r\n\r\n",
		  "HTTP/1.1 400 Bad Request\r\n", "invalid topic" },
		{ "an untrusted publish",
		  "POST /t HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}",
		  "HTTP/1.1 403 Forbidden\r\n", "\r\n\r\nOnly trusted sources may send data!" },
		/* RFC 9112 3.2 */
		{ "an HTTP/1.1 GET without Host", "GET /t HTTP/1.1\r\n\r\n",
		  "HTTP/1.1 400 Bad Request\r\n", "an HTTP/1.1 request needs a Host header\r\n" },
		{ "an HTTP/1.1 POST without Host",
		  "POST /t HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 400 Bad Request\r\n",
		  "an HTTP/1.1 request needs a Host header\r\n" },
		{ "a HEAD with two Host lines", "HEAD / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
		  "HTTP/1.1 400 Bad Request\r\n", "several Host headers\r\n" },
		{ "an HTTP/1.0 GET with two Host lines",
		  "GET /t HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n",
		  "several Host headers\r\n" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct conn *c = connect_test(false);

		feed(c, cases[i].request);
		ok(strncmp(sent(c), cases[i].status, strlen(cases[i].status)) == 0,
		   "7.2: %s gets %.3s", cases[i].what, cases[i].status + 9);
		ok(strstr(sent(c), "Connection: close\r\n") && strstr(sent(c), "Server: "),
		   "7.1: a complete answer that closes the connection");
		ok(!cases[i].extra || strstr(sent(c), cases[i].extra), "with its reason");
		is(c->state, CONN_LINGER, "and the connection lingers, then closes");
		conn_close(c, "test done");
	}
}

/* RFC 9112 3.2: HTTP/1.0 needs no Host (an old hook may send none); an empty one is a Host. */
static void test_host_10(void)
{
	struct conn *c = connect_test(true);

	feed(c, "HEAD / HTTP/1.0\r\n\r\n");
	ok(strncmp(sent(c), "HTTP/1.1 200 OK\r\n", 17) == 0,
	   "3.2: HTTP/1.0 without Host is served");
	conn_close(c, "test done");
	c = connect_test(true);
	feed(c, "HEAD / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n");
	ok(strncmp(sent(c), "HTTP/1.1 200 OK\r\n", 17) == 0,
	   "3.2: HTTP/1.1 with an empty Host is served (a target with no authority)");
	conn_close(c, "test done");
}

/* RFC 9112 6.1: an HTTP/1.0 message naming a transfer coding has faulty framing. */
static void test_te_10(void)
{
	struct conn *c = connect_test(true);

	feed(c, "POST /t HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
	ok(strncmp(sent(c), "HTTP/1.1 400 Bad Request\r\n", 26) == 0,
	   "RFC 9112 6.1: Transfer-Encoding on HTTP/1.0 is a 400");
	ok(strstr(sent(c), "Connection: close\r\n") != NULL, "and the connection is closed");
	is(c->state, CONN_LINGER, "nothing of the body is read as a request");
	conn_close(c, "test done");
}

static void test_431(void)
{
	struct conn *c;
	char big[4096];

	fe.cfg.max_header = 1024;
	c = connect_test(false);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	feed(c, "HEAD / HTTP/1.1\r\nHost: t\r\nX-Big: ");
	feed(c, big);
	ok(strncmp(sent(c), "HTTP/1.1 431 ", 13) == 0, "7.2: a header section over the limit: 431");
	conn_close(c, "test done");
	fe.cfg.max_header = 16 * 1024;
}

static void test_publish_without_broker(void)
{
	struct conn *c = connect_test(true);

	feed(c, "POST /t HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{\"a\":1}\r\n");
	is(c->out_len, 0, "4.5: no answer before the broker's");
	is(c->state, CONN_BROKER, "the publish went to the broker");
	loop_run_timers(&fe.loop); /* the unreachable broker is answered in the loop's next round */
	ok(strncmp(sent(c), "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0,
	   "4.6: no broker: 503, never 200");
	ok(strstr(sent(c), "Retry-After: 1\r\n") != NULL, "4.6: with Retry-After");
	conn_close(c, "test done");
}

/* A token that may publish to /tok/a, and one whose digest is in no file. */
#define TOKEN_A	      "gps_unit-token-A"
#define TOKEN_UNKNOWN "gps_unit-token-Z"

/* The tokens file with TOKEN_A, loaded as the frontend loads it at start. */
static void load_tokens(void)
{
	char path[] = "/tmp/t-request-tokens.XXXXXX";
	uint8_t d[SHA256_BYTES];
	FILE *f;
	int fd = mkstemp(path); /* mode 0600 */

	if (fd < 0 || !(f = fdopen(fd, "w")))
		exit(1);
	sha256_digest(TOKEN_A, strlen(TOKEN_A), d);
	fprintf(f, "sha256:");
	for (size_t i = 0; i < sizeof(d); i++)
		fprintf(f, "%02x", d[i]);
	fprintf(f, " /tok/a\n");
	(void)fclose(f);
	(void)snprintf(fe.cfg.tokens_file, sizeof(fe.cfg.tokens_file), "%s", path);
	is(tokens_load(path, &fe.tokens), 1, "the tokens file loads");
	fe.tokens.checked_us = io_now_mono_us();
	(void)unlink(path);
}

/* The answer to a request from a trusted or untrusted peer, its connection closed. */
static const char *answer(bool trusted, const char *request)
{
	struct conn *c = connect_test(trusted);
	const char *s;

	feed(c, request);
	s = sent(c);
	conn_close(c, "test done");
	return s;
}

static void test_tokens(void)
{
	static const char unauthorized[] = "HTTP/1.1 401 Unauthorized\r\n";
	static const char *const malformed[] = {
		"Authorization: Bearer\r\n",
		"Authorization: Bearer " TOKEN_A "\r\nAuthorization: Bearer " TOKEN_A "\r\n",
		"Authorization: Bearer gps_unit token-A\r\n",
		"Authorization: Basic " TOKEN_A "\r\n",
		"Authorization: Bearer " TOKEN_UNKNOWN "\r\n",
	};
	char req[512];
	const char *s;

	load_tokens();
	for (int trusted = 0; trusted < 2; trusted++) {
		struct conn *c = connect_test(trusted);

		feed(c, "POST /tok/a/b HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN_A
			"\r\nContent-Length: 2\r\n\r\n{}");
		is(c->state, CONN_BROKER, "a known token in scope publishes (%s peer)",
		   trusted ? "trusted" : "untrusted");
		conn_close(c, "test done");
		s = answer(trusted,
			   "POST /tok/ab HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN_A
			   "\r\nContent-Length: 2\r\n\r\n{}");
		ok(strncmp(s, "HTTP/1.1 403 ", 13) == 0 &&
			   strstr(s, "\r\n\r\nthis token may not publish to this topic") &&
			   !strstr(s, "WWW-Authenticate"),
		   "out of its prefixes: 403 naming neither token nor prefix (%s peer)",
		   trusted ? "trusted" : "untrusted");
		for (size_t i = 0; i < ARRAY_SIZE(malformed); i++) {
			(void)snprintf(
				req, sizeof(req),
				"POST /tok/a HTTP/1.1\r\nHost: t\r\n%sContent-Length: 2\r\n\r\n{}",
				malformed[i]);
			s = answer(trusted, req);
			ok(strncmp(s, unauthorized, strlen(unauthorized)) == 0 &&
				   strstr(s, "\r\nWWW-Authenticate: Bearer") &&
				   !strstr(s, "gps_unit"),
			   "malformed or unknown %zu: 401 with WWW-Authenticate (%s peer)", i,
			   trusted ? "trusted" : "untrusted");
		}
	}
	s = answer(false,
		   "HEAD /tok/a HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN_A "\r\n\r\n");
	ok(strstr(s, "\r\nX-Subscribers: ") != NULL, "HEAD: statistics for a token in scope");
	s = answer(false,
		   "HEAD /tok/b HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN_A "\r\n\r\n");
	ok(strncmp(s, "HTTP/1.1 200 ", 13) == 0 && !strstr(s, "\r\nX-"),
	   "HEAD: a health check only out of scope");
	s = answer(true,
		   "HEAD / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " TOKEN_UNKNOWN "\r\n\r\n");
	ok(strncmp(s, unauthorized, strlen(unauthorized)) == 0,
	   "HEAD: 401 for an unknown token, from a trusted peer too");
	tokens_done(&fe.tokens);
	fe.cfg.tokens_file[0] = '\0';
}

int main(void)
{
	setup();
	test_head();
	test_pipeline();
	test_connection_lines();
	test_expect();
	test_errors();
	test_host_10();
	test_te_10();
	test_431();
	test_publish_without_broker();
	test_tokens();
	conn_reap(&fe);
	loop_done(&fe.loop);
	return done_testing();
}
