/* SPDX-License-Identifier: MIT */
/* hook/conf.c: the hook's settings (gitpubsub.url, gitpubsub.timeout, gitpubsub.maxCommits,
 * gitpubsub.token and gitpubsub.tokenFile). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "hook/conf.h"
#include "tests/tap.h"

static void test_set(void)
{
	struct conf c;
	uint32_t n = 9;

	if (!ok(conf_init(&c) == 0, "init"))
		return;
	is_str(c.url, CONF_DEFAULT_URL, "default url");
	is(c.timeout_ms, 5000, "default timeout 5 s");
	is(c.max_commits, 100, "default maxCommits 100");

	is(conf_set(&c, "timeout", "2s"), 0, "timeout set");
	is(c.timeout_ms, 2000, "timeout is 2000 ms");
	is(conf_set(&c, "timeout", "0"), -EINVAL, "timeout 0 refused");
	is(conf_set(&c, "timeout", "11m"), -EINVAL, "timeout past 10 minutes refused");
	is(conf_set(&c, "timeout", "soon"), -EINVAL, "timeout 'soon' refused");
	/* the grammar is common/config.c's (t-config.c tests it): units up to d, whole ms */
	is(conf_set(&c, "timeout", "1.5m"), 0, "timeout '1.5m' set");
	is(c.timeout_ms, 90000, "timeout '1.5m' is 90000 ms");
	is(conf_set(&c, "timeout", "1.0005s"), -EINVAL, "timeout finer than a millisecond refused");
	is(conf_set(&c, "timeout", "1d"), -EINVAL, "timeout of a day refused by the range");
	is(c.timeout_ms, 90000, "refused timeouts leave the value");

	is(conf_set(&c, "maxcommits", "3"), 0, "maxCommits set (key case-insensitive)");
	is(c.max_commits, 3, "maxCommits is 3");
	is(conf_set(&c, "maxCommits", "0"), -EINVAL, "maxCommits 0 refused");
	is(conf_set(&c, "maxCommits", "-5"), -EINVAL, "negative maxCommits refused");
	is(conf_set(&c, "maxCommits", "100001"), -EINVAL, "maxCommits past the cap refused");
	is(c.max_commits, 3, "refused values leave maxCommits");

	is(conf_set(&c, "URL", "http://h:1/x/{project}"), 0, "url set");
	is_str(c.url, "http://h:1/x/{project}", "url kept as a template");
	is(conf_set(&c, "url", ""), -EINVAL, "empty url refused");
	is(conf_set(&c, "colour", "blue"), -ENOENT, "unknown key reported");

	is(conf_parse_u32("4294967295", &n), 0, "u32 max parses");
	is(n, 4294967295U, "u32 max value");
	is(conf_parse_u32("4294967296", &n), -EINVAL, "u32 overflow refused");
	conf_free(&c);
}

static void test_token(void)
{
	char path[] = "/tmp/t-hook-conf.XXXXXX";
	struct conf c;
	FILE *f;
	int fd = mkstemp(path);

	if (fd < 0 || !(f = fdopen(fd, "w")))
		return;
	if (!ok(conf_init(&c) == 0, "init")) {
		(void)fclose(f);
		return;
	}
	ok(c.token == NULL, "no token by default");
	is(conf_set(&c, "token", "gps_abc-DEF_123"), 0, "token set");
	is_str(c.token, "gps_abc-DEF_123", "token kept");
	is(conf_set(&c, "token", "two words"), -EINVAL, "a token with a space refused");
	is(conf_set(&c, "token", ""), -EINVAL, "an empty token refused");
	is_str(c.token, "gps_abc-DEF_123", "refused tokens leave the token");
	fprintf(f, "gps_from-file \t\nsecond line\n");
	(void)fclose(f);
	is(conf_set(&c, "tokenFile", path), 0, "tokenFile read");
	is_str(c.token, "gps_from-file", "its first line, trailing blanks cut, is the token");
	(void)unlink(path);
	is(conf_set(&c, "tokenFile", path), -EINVAL, "a missing tokenFile refused");
	is(conf_set(&c, "tokenFile", ""), -EINVAL, "an empty tokenFile refused");
	is_str(c.token, "gps_from-file", "and the token stays");
	conf_free(&c);
	ok(c.token == NULL, "conf_free forgets the token");
}

static void test_url(void)
{
	static const struct {
		const char *tmpl, *project, *want;
	} cases[] = {
		{ "http://localhost:2069/json/git/{project}", "foo.git",
		  "http://localhost:2069/json/git/foo.git" },
		{ "http://h/{project}/x/{project}", "a", "http://h/a/x/a" },
		{ "http://h/fixed", "a", "http://h/fixed" },
		{ "http://h/{project}", "a b/c?d#e%f", "http://h/a%20b%2Fc%3Fd%23e%25f" },
		{ "http://h/{project}", "caf\xC3\xA9~_-.", "http://h/caf%C3%A9~_-." },
		{ "http://h/{proj}", "a", "http://h/{proj}" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *u = conf_expand_url(cases[i].tmpl, cases[i].project);

		is_str(u, cases[i].want, "expand '%s' with '%s'", cases[i].tmpl, cases[i].project);
		free(u);
	}
}

int main(void)
{
	test_set();
	test_token();
	test_url();
	return done_testing();
}
