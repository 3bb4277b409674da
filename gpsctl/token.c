/* SPDX-License-Identifier: MIT */
/*
 * gpsctl token new PREFIX...: a fresh publish token and its line for [Clients] tokensFile
 * (common/tokens.h); and the tokens file's part of gpsctl check.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/tokens.h"
#include "gpsctl/gpsctl.h"

/* 256 bits: beyond any guessing, online or offline against a stolen tokens file. */
#define TOKEN_RANDOM_BYTES 32u
/* What every generated token starts with, so secret scanners and people recognise one. */
#define TOKEN_TAG	   "gps_"

/* base64url (RFC 4648 5), no padding: letters, digits, '-' and '_', all b64token bytes. */
static void base64url(const uint8_t *in, size_t len, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t acc = 0;
	unsigned bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*out++ = abc[(acc >> bits) & 63u];
		}
	}
	if (bits)
		*out++ = abc[(acc << (6 - bits)) & 63u];
	*out = '\0';
}

/* TOKEN_RANDOM_BYTES from the kernel's generator into buf: 0 or -errno. */
static int random_bytes(uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	return 0;
}

int gpsctl_token(struct reader *rd)
{
	const struct options *o = rd->o;
	uint8_t raw[TOKEN_RANDOM_BYTES], digest[SHA256_BYTES];
	char token[sizeof(TOKEN_TAG) + (TOKEN_RANDOM_BYTES * 4 + 2) / 3 + 1];
	int err;

	if (o->nargs < 2 || strcmp(o->args[0], "new") != 0) {
		log_error("usage: gpsctl token new PREFIX... (topic prefixes like /json/git/x)");
		return 2;
	}
	for (int i = 1; i < o->nargs; i++) {
		static uint8_t stored[TOPIC_MAX_BYTES]; /* 64 KiB: not on the stack */
		size_t len = strlen(o->args[i]);

		if (len > sizeof(stored) ||
		    tokens_prefix_parse(o->args[i], len, stored, sizeof(stored)) < 0) {
			log_error("invalid prefix '%s': a topic path like '/json/git/x', without "
				  "'%%' escapes or '*' segments",
				  o->args[i]);
			return 2;
		}
	}
	err = random_bytes(raw, sizeof(raw));
	if (err < 0) {
		log_error("unable to get random bytes: %s", strerror(-err));
		return 1;
	}
	(void)snprintf(token, sizeof(token), "%s", TOKEN_TAG);
	base64url(raw, sizeof(raw), token + strlen(TOKEN_TAG));
	explicit_bzero(raw, sizeof(raw));
	sha256_digest(token, strlen(token), digest);
	/* the token, shown this once; then its line for the tokens file, which holds only the
	 * digest */
	printf("%s\nsha256:", token);
	explicit_bzero(token, sizeof(token));
	for (size_t i = 0; i < sizeof(digest); i++)
		printf("%02x", digest[i]);
	for (int i = 1; i < o->nargs; i++)
		printf(" %s", o->args[i]);
	printf("\n");
	return 0;
}

int gpsctl_check_tokens(const struct reader *rd)
{
	const char *path = rd->cfg ? rd->cfg->tokens_file : "";
	struct tokens t = { 0 };
	int n;

	if (!*path)
		return 0;
	n = tokens_load(path, &t); /* each problem is logged with its line */
	tokens_done(&t);
	if (!rd->o->json) {
		if (n < 0)
			printf("BAD: tokens file '%s': %s\n", path,
			       n == -EINVAL
				       ? "malformed lines (see above), skipped by the server"
				       : "refused or unreadable (see above): no token is accepted");
		else
			printf("ok: tokens file '%s': %d tokens\n", path, n);
	}
	return n < 0 ? 1 : 0;
}
