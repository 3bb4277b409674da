/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/tokens.h"

#define DIGEST_TAG "sha256:"

/* How much of a bad word a message quotes: enough to recognise it, never a whole secret. */
#define TOKENS_QUOTE_MAX 24

void tokens_done(struct tokens *t)
{
	free(t->t);
	free(t->prefixes);
	free(t->bytes);
	t->t = NULL;
	t->prefixes = NULL;
	t->bytes = NULL;
	t->n = t->nprefixes = t->nbytes = 0;
}

bool tokens_syntax_ok(const char *token, size_t len)
{
	size_t i = 0;

	if (len == 0 || len > TOKEN_MAX)
		return false;
	while (i < len && (isalnum((unsigned char)token[i]) || strchr("-._~+/", token[i])))
		i++;
	if (i == 0)
		return false;
	while (i < len && token[i] == '=')
		i++;
	return i == len;
}

long tokens_prefix_parse(const char *s, size_t len, uint8_t *out, size_t cap)
{
	size_t n = 0, i = 0;

	if (len == 0 || s[0] != '/')
		return -EINVAL;
	while (i < len) {
		size_t start, seg;

		while (i < len && s[i] == '/')
			i++;
		start = i;
		while (i < len && s[i] != '/') {
			unsigned char ch = (unsigned char)s[i];

			if (ch <= 0x20 || ch == 0x7f || ch == '%')
				return -EINVAL;
			i++;
		}
		seg = i - start;
		if (seg == 0)
			break;
		if (seg == 1 && s[start] == '*')
			return -EINVAL;
		if (n + (n ? 1 : 0) + seg > cap)
			return -ENOBUFS;
		if (n)
			out[n++] = '\0'; /* stored segments are joined by one NUL */
		memcpy(out + n, s + start, seg);
		n += seg;
	}
	return (long)n;
}

/* Grow *p (n elements of size sz, capacity *cap) to hold one more; false when out of memory. */
static bool grow(void *pp, size_t *cap, size_t n, size_t sz, size_t more)
{
	void **p = pp;
	size_t want = *cap ? *cap : 16;
	void *np;

	if (n + more <= *cap)
		return true;
	while (want < n + more)
		want *= 2;
	np = realloc(*p, want * sz);
	if (!np)
		return false;
	*p = np;
	*cap = want;
	return true;
}

struct loader {
	struct tokens *t;
	size_t tcap, pcap, bcap;
	const char *path;
	unsigned line;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* uppercase too: the file is written one way, so it diffs and greps one way */
}

/* One line, trimmed and not a comment: 0, -EINVAL (logged) or -ENOMEM. */
static int tokens_line(struct loader *ld, char *s)
{
	struct tokens *t = ld->t;
	struct token tok = { .first = (uint32_t)t->nprefixes };
	char *word, *save = NULL;
	size_t hexlen;

	word = strtok_r(s, " \t", &save);
	hexlen = word ? strlen(word) : 0;
	if (!word || strncmp(word, DIGEST_TAG, strlen(DIGEST_TAG)) != 0 ||
	    hexlen != strlen(DIGEST_TAG) + (size_t)2 * SHA256_BYTES) {
		log_error("%s:%u: expected 'sha256:<64 lowercase hex digits> PREFIX...', ignoring "
			  "the line",
			  ld->path, ld->line);
		return -EINVAL;
	}
	word += strlen(DIGEST_TAG);
	for (size_t i = 0; i < SHA256_BYTES; i++) {
		int hi = hexval(word[2 * i]), lo = hexval(word[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			log_error("%s:%u: the digest is 64 lowercase hex digits, ignoring the line",
				  ld->path, ld->line);
			return -EINVAL;
		}
		tok.digest[i] = (uint8_t)(hi << 4 | lo);
	}
	for (size_t i = 0; i < t->n; i++) {
		if (memcmp(t->t[i].digest, tok.digest, SHA256_BYTES) == 0) {
			log_error("%s:%u: the same digest as an earlier line, ignoring the line",
				  ld->path, ld->line);
			return -EINVAL;
		}
	}
	while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
		size_t len = strlen(word);
		long n;

		if (tok.n == TOKEN_PREFIXES_MAX) {
			log_error("%s:%u: more than %u prefixes, ignoring the line", ld->path,
				  ld->line, TOKEN_PREFIXES_MAX);
			return -EINVAL;
		}
		if (!grow(&t->bytes, &ld->bcap, t->nbytes, 1, len) ||
		    !grow(&t->prefixes, &ld->pcap, t->nprefixes, sizeof(*t->prefixes), 1))
			return -ENOMEM;
		n = tokens_prefix_parse(word, len, t->bytes + t->nbytes, ld->bcap - t->nbytes);
		if (n < 0) {
			log_error("%s:%u: invalid prefix '%.*s' (a topic path like '/json/git/x': "
				  "no '%%' escape, no '*' segment), ignoring the line",
				  ld->path, ld->line, TOKENS_QUOTE_MAX, word);
			t->nprefixes = tok.first; /* drop the line's prefixes so far */
			return -EINVAL;
		}
		t->prefixes[t->nprefixes].off = (uint32_t)t->nbytes;
		t->prefixes[t->nprefixes].len = (uint32_t)n;
		t->nprefixes++;
		t->nbytes += (size_t)n;
		tok.n++;
	}
	if (tok.n == 0) {
		log_error("%s:%u: a digest without any prefix, ignoring the line", ld->path,
			  ld->line);
		return -EINVAL;
	}
	if (t->n == TOKENS_MAX) {
		log_error("%s:%u: more than %u tokens, ignoring the line", ld->path, ld->line,
			  TOKENS_MAX);
		return -EINVAL;
	}
	if (!grow(&t->t, &ld->tcap, t->n, sizeof(*t->t), 1))
		return -ENOMEM;
	t->t[t->n++] = tok;
	return 0;
}

static void stamp_of(const struct stat *st, struct tokens_stamp *ret)
{
	ret->present = 1;
	ret->dev = (uint64_t)st->st_dev;
	ret->ino = (uint64_t)st->st_ino;
	ret->size = (uint64_t)st->st_size;
	ret->mode = (uint64_t)st->st_mode;
	ret->mtime_ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
	ret->ctime_ns = (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
}

/* Read the lines of f into ld->t: 0, -EINVAL (a line was bad), or -errno. */
static int tokens_read(struct loader *ld, FILE *f)
{
	char *buf = NULL;
	size_t cap = 0;
	int ret = 0;

	for (;;) {
		size_t len = 0;
		char *s;
		int err = config_getline(f, &buf, &cap, &len);

		if (err <= 0) {
			ret = err < 0 ? err : ret;
			break;
		}
		ld->line++;
		if (memchr(buf, '\0', len) || len > TOKENS_LINE_MAX) {
			log_error("%s:%u: NUL byte or line longer than %u bytes, ignoring the line",
				  ld->path, ld->line, TOKENS_LINE_MAX);
			ret = -EINVAL;
			continue;
		}
		s = buf + strspn(buf, " \t");
		if (*s == '\0' || *s == '#')
			continue;
		err = tokens_line(ld, s);
		if (err == -ENOMEM) {
			ret = err;
			break;
		}
		if (err < 0)
			ret = err;
	}
	free(buf);
	return ret;
}

int tokens_load(const char *path, struct tokens *ret)
{
	struct loader ld = { .t = ret, .path = path };
	struct stat st;
	FILE *f;
	int fd, err;

	tokens_done(ret);
	memset(&ret->stamp, 0, sizeof(ret->stamp));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = -errno;
		log_error("unable to read the tokens file '%s': %s; accepting no token", path,
			  strerror(-err));
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		(void)close(fd);
		log_error("unable to read the tokens file '%s': %s; accepting no token", path,
			  strerror(-err));
		return err;
	}
	stamp_of(&st, &ret->stamp);
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		(void)close(fd);
		log_error("the tokens file '%s' has mode %04o: group and others may not read or "
			  "write it (chmod 600); accepting no token",
			  path, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	f = fdopen(fd, "r");
	if (!f) {
		err = -errno;
		(void)close(fd);
		return err;
	}
	err = tokens_read(&ld, f);
	(void)fclose(f);
	if (err == -ENOMEM || (err < 0 && err != -EINVAL)) {
		tokens_done(ret);
		log_error("unable to read the tokens file '%s': %s; accepting no token", path,
			  strerror(-err));
		return err;
	}
	/* debug: an inetd frontend reads the file for every connection */
	log_debug("tokens file '%s': %zu tokens", path, ret->n);
	return err < 0 ? err : (int)MIN(ret->n, (size_t)INT32_MAX);
}

int tokens_refresh(const char *path, struct tokens *t, uint64_t now_us)
{
	struct tokens_stamp now = { 0 };
	bool first = t->checked_us == 0;
	struct stat st;

	t->checked_us = now_us;
	if (stat(path, &st) == 0)
		stamp_of(&st, &now);
	if (!first && memcmp(&now, &t->stamp, sizeof(now)) == 0)
		return 0;
	(void)!tokens_load(path, t); /* logged; whatever it left is what we accept */
	t->checked_us = now_us;
	return 1;
}

long tokens_find(const struct tokens *t, const char *token, size_t len)
{
	uint8_t d[SHA256_BYTES];
	long found = -1;

	sha256_digest(token, len, d);
	for (size_t i = 0; i < t->n; i++) {
		/* no early exit and no branch on the result: a select by mask */
		long hit = -(long)sha256_equal(d, t->t[i].digest);

		found = (found & ~hit) | ((long)i & hit);
	}
	return found;
}

bool tokens_allows(const struct tokens *t, size_t i, const uint8_t *topic, size_t len)
{
	const struct token *tok = &t->t[i];

	for (uint32_t j = 0; j < tok->n; j++) {
		const struct token_prefix *p = &t->prefixes[tok->first + j];

		/* the prefix's segments begin the topic's: equal, or followed by a separator */
		if (p->len == 0)
			return true; /* "/" */
		if (p->len <= len && memcmp(t->bytes + p->off, topic, p->len) == 0 &&
		    (p->len == len || topic[p->len] == '\0'))
			return true;
	}
	return false;
}
