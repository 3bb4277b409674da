/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
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

void conf_free(struct conf *c)
{
	free(c->url);
	c->url = NULL;
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
