/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/config.h"
#include "common/io.h"
#include "common/tokens.h"
#include "hook/conf.h"
#include "hook/jbuf.h"

int conf_init(struct conf *c)
{
	c->url = strdup(CONF_DEFAULT_URL);
	if (!c->url)
		return -ENOMEM;
	c->timeout_ms = CONF_DEFAULT_TIMEOUT_MS;
	c->max_commits = CONF_DEFAULT_MAX_COMMITS;
	return 0;
}

/* Forget the token, its bytes too. */
static void conf_drop_token(struct conf *c)
{
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	c->token = NULL;
}

void conf_free(struct conf *c)
{
	free(c->url);
	c->url = NULL;
	conf_drop_token(c);
}

/* Take the token value[0..len) (its syntax checked). 0, -EINVAL or -ENOMEM. */
static int conf_take_token(struct conf *c, const char *value, size_t len)
{
	char *t;

	if (!tokens_syntax_ok(value, len))
		return -EINVAL;
	t = strndup(value, len);
	if (!t)
		return -ENOMEM;
	conf_drop_token(c);
	c->token = t;
	return 0;
}

/* The first line of the file at path, as the token. 0, -EINVAL (unreadable, or no token),
 * or -ENOMEM. */
static int conf_token_file(struct conf *c, const char *path)
{
	char buf[CONF_TOKEN_FILE_MAX];
	size_t got = 0, len;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	while (got < sizeof(buf) - 1) {
		ssize_t n = io_read(fd, buf + got, sizeof(buf) - 1 - got);

		if (n <= 0) {
			err = (int)n;
			break;
		}
		got += (size_t)n;
	}
	(void)close(fd);
	buf[got] = '\0';
	len = strcspn(buf, "\r\n");
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (err == 0)
		err = conf_take_token(c, buf, len);
	explicit_bzero(buf, sizeof(buf));
	return err;
}

int conf_parse_u32(const char *s, uint32_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	*ret = (uint32_t)v;
	return 0;
}

int conf_set(struct conf *c, const char *key, const char *value)
{
	uint64_t ms;
	uint32_t n;
	char *url;

	if (strcasecmp(key, "url") == 0) {
		if (!*value)
			return -EINVAL;
		url = strdup(value);
		if (!url)
			return -ENOMEM;
		free(c->url);
		c->url = url;
		return 0;
	}
	if (strcasecmp(key, "timeout") == 0) {
		if (config_parse_duration_ms(value, &ms) < 0 || ms < CONF_MIN_TIMEOUT_MS ||
		    ms > CONF_MAX_TIMEOUT_MS)
			return -EINVAL;
		c->timeout_ms = ms;
		return 0;
	}
	if (strcasecmp(key, "maxCommits") == 0) {
		if (conf_parse_u32(value, &n) < 0 || n < 1 || n > CONF_MAX_MAX_COMMITS)
			return -EINVAL;
		c->max_commits = n;
		return 0;
	}
	if (strcasecmp(key, "token") == 0)
		return conf_take_token(c, value, strlen(value));
	if (strcasecmp(key, "tokenFile") == 0) {
		int err = *value ? conf_token_file(c, value) : -EINVAL;

		return err == 0 || err == -ENOMEM ? err : -EINVAL;
	}
	return -ENOENT;
}

/* RFC 3986 section 2.3: the bytes that never need escaping in a path segment. */
static bool conf_unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

char *conf_expand_url(const char *tmpl, const char *project)
{
	static const char hex[] = "0123456789ABCDEF";
	const size_t toklen = strlen(CONF_PROJECT_TOKEN);
	struct jbuf b = JBUF_INIT;
	const char *p = tmpl, *hit;

	while ((hit = strstr(p, CONF_PROJECT_TOKEN))) {
		jbuf_put(&b, p, (size_t)(hit - p));
		for (const unsigned char *q = (const unsigned char *)project; *q; q++) {
			if (conf_unreserved(*q)) {
				jbuf_putc(&b, (char)*q);
			} else {
				char esc[3] = { '%', hex[*q >> 4], hex[*q & 0xF] };
				jbuf_put(&b, esc, sizeof(esc));
			}
		}
		p = hit + toklen;
	}
	jbuf_puts(&b, p);
	if (jbuf_error(&b) < 0) {
		jbuf_free(&b);
		return NULL;
	}
	return b.data;
}
