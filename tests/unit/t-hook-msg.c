/* SPDX-License-Identifier: MIT */
/*
 * hook/msg.c, hook/push.c and hook/repo.c parsing: the message format of PROTOCOL 10, git's
 * default date format, ref update lines, and tag objects. The git-reading paths themselves are
 * exercised end to end by tests/40-hook.bats.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hook/msg.h"
#include "hook/push.h"
#include "hook/repo.h"
#include "tests/tap.h"

#define H1   "1111111111111111111111111111111111111111"
#define H2   "2222222222222222222222222222222222222222"
#define H3   "3333333333333333333333333333333333333333"
#define ZERO "0000000000000000000000000000000000000000"

static void test_date(void)
{
	char buf[MSG_DATE_MAX];

	msg_format_date(0, 0, buf);
	is_str(buf, "Thu Jan 1 00:00:00 1970 +0000", "the epoch");
	/* the example of git's own documentation (Documentation/date-formats.txt) */
	msg_format_date(1112911993, -7 * 60, buf);
	is_str(buf, "Thu Apr 7 15:13:13 2005 -0700", "git's documented example, UTC-7");
	msg_format_date(1700000000, 90, buf);
	is_str(buf, "Tue Nov 14 23:43:20 2023 +0130", "half-hour offset east");
	msg_format_date(1700000000, -(9 * 60 + 30), buf);
	is_str(buf, "Tue Nov 14 12:43:20 2023 -0930", "half-hour offset west");
	msg_format_now(buf);
	ok(strlen(buf) >= 28 && buf[3] == ' ', "now is formatted ('%s')", buf);
}

static void test_update_parse(void)
{
	static const char *const bad[] = {
		"",
		H1 " " H2,
		H1 " " H2 " ",
		H1 " " H2 " refs/heads/a b",
		H1 "  " H2 " refs/heads/a",
		"111 " H2 " refs/heads/a",
		"111111111111111111111111111111111111111g " H2 " refs/heads/a",
		H1 " 2222222222222222222222222222222222222222222222222222222222222222 refs/heads/a",
		H1 " " H2 " refs/heads/\x01",
	};
	struct update u;

	is(update_parse(H1 " " H2 " refs/heads/main", strlen(H1 " " H2 " refs/heads/main"), &u), 0,
	   "a post-receive line parses");
	is_str(u.old_hex, H1, "old");
	is_str(u.new_hex, H2, "new");
	is_str(u.ref, "refs/heads/main", "ref");
	update_free(&u);

	is(update_set(&u, "ABCDEF1111111111111111111111111111111111", ZERO, "refs/tags/v1"), 0,
	   "upper-case hex accepted");
	is_str(u.old_hex, "abcdef1111111111111111111111111111111111", "and lowercased");
	ok(hex_is_zero(u.new_hex), "all zeros is the null object");
	ok(!hex_is_zero(u.old_hex), "other hex is not");
	update_free(&u);

	is(update_set(&u, ZERO "000000000000000000000000", H3 "333333333333333333333333",
		      "refs/heads/x"),
	   0, "64-digit names of a SHA-256 repository accepted");
	ok(hex_is_zero(u.old_hex) && strlen(u.new_hex) == 64, "and kept whole");
	update_free(&u);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		is(update_parse(bad[i], strlen(bad[i]), &u), -EINVAL, "bad line %zu refused", i);
}

/* A commit set built by hand, as repo_commits() would return it. */
static const char *files[] = { "a.c", "dir/b \"q\".c", "c" };

static void test_commit(void)
{
	struct commit c = {
		.hash = H1,
		.parents = H2,
		.author = "Ann \"Q\" Dev",
		.email = "ann@example.org",
		.date = "Thu Apr 7 15:13:13 2005 -0700",
		.log = "Subject\n\nBody \\ line\n\n",
		.file0 = 0,
		.nfiles = 2,
	};
	struct commit_set s = { .files = files, .nfiles = 3 };
	struct msg_ctx m = { .project = "proj.git", .ref = "refs/heads/main", .now = "NOW" };
	struct jbuf b = JBUF_INIT;

	msg_commit(&b, &m, &c, &s);
	is_str(b.data,
	       "{\"commit\":{\"repository\":\"git\",\"project\":\"proj.git\",\"ref\":\"refs/heads/"
	       "main\",\"hash\":\"" H1 "\",\"shortHash\":\"1111111\",\"author\":\"Ann \\\"Q\\\" "
	       "Dev\",\"email\":\"ann@example.org\",\"date\":\"Thu Apr 7 15:13:13 2005 -0700\","
	       "\"log\":\"Subject\\n\\nBody \\\\ line\",\"files\":[\"a.c\",\"dir/b \\\"q\\\".c\"],"
	       "\"changes\":\"2 files\"}}",
	       "a commit: the original's fields in order, log without trailing newlines");

	jbuf_reset(&b);
	c.nfiles = 1;
	c.file0 = 2;
	c.parents = H2 " " H3;
	c.log = "";
	msg_commit(&b, &m, &c, &s);
	ok(strstr(b.data, "\"files\":[\"c\"],\"changes\":\"c\",\"merge\":\"2222222 3333333\"}}") !=
		   NULL,
	   "one file: changes is the path; a merge lists its parents' short hashes");
	ok(strstr(b.data, "\"log\":\"\"") != NULL, "empty message: empty log");

	jbuf_reset(&b);
	c.nfiles = 0;
	c.parents = "";
	msg_commit(&b, &m, &c, &s);
	ok(strstr(b.data, "\"files\":[],\"changes\":\"0 files\"}}") != NULL,
	   "no paths: an empty array (never null or a string), and no merge field for a root");
	ok(jbuf_error(&b) == 0, "no error");
	jbuf_free(&b);
}

static void test_caps(void)
{
	struct commit c = { .hash = H1, .parents = H2, .author = "a", .email = "e", .date = "d" };
	struct commit_set s = { 0 };
	struct msg_ctx m = { .project = "p", .ref = "refs/heads/x", .now = "NOW" };
	struct jbuf b = JBUF_INIT;
	size_t nfiles = MSG_MAX_FILES + 500, count = 0;
	char *log = malloc(MSG_MAX_LOG + 100);
	const char **many = calloc(nfiles, sizeof(*many));
	char count_str[32];

	if (!log || !many) {
		ok(0, "allocations");
		free(log);
		free(many);
		return;
	}
	memset(log, 'x', MSG_MAX_LOG + 99);
	log[MSG_MAX_LOG + 99] = '\0';
	for (size_t i = 0; i < nfiles; i++)
		many[i] = "some/path";
	c.log = log;
	c.nfiles = nfiles;
	s.files = many;
	s.nfiles = nfiles;
	msg_commit(&b, &m, &c, &s);
	ok(strstr(b.data, MSG_TRUNCATED_LOG "\"") == NULL, "(the raw suffix is escaped)");
	ok(strstr(b.data, "\\n[message truncated]\",") != NULL, "a long log is cut and says so");
	for (const char *p = b.data; (p = strstr(p, "\"some/path\"")); p++)
		count++;
	is(count, MSG_MAX_FILES, "files lists at most MSG_MAX_FILES paths");
	(void)snprintf(count_str, sizeof(count_str), "\"changes\":\"%zu files\"", nfiles);
	ok(strstr(b.data, count_str) != NULL, "changes still counts every path");
	ok(b.len < ((size_t)1 << 20), "the message stays under 1 MiB (%zu bytes)", b.len);
	jbuf_free(&b);
	free(log);
	free(many);
}

static void test_special(void)
{
	struct msg_ctx m = { .project = "p", .ref = "refs/heads/gone", .now = "NOW" };
	struct obj blob = { .hex = H3, .type = OBJ_BLOB };
	struct obj target = { .hex = H2, .type = OBJ_COMMIT };
	struct commit c = { .hash = H2,
			    .parents = "",
			    .author = "A",
			    .email = "a@x",
			    .date = "D",
			    .log = "msg\n" };
	struct tag t = { .hash = H1, .has_date = true, .time = 0, .tz_minutes = 0 };
	struct jbuf b = JBUF_INIT;

	msg_delete(&b, &m, H1);
	is_str(b.data,
	       "{\"commit\":{\"repository\":\"git\",\"project\":\"p\",\"ref\":\"refs/heads/gone\","
	       "\"hash\":\"" H1 "\",\"shortHash\":\"1111111\",\"author\":\"\",\"email\":\"\","
	       "\"date\":\"NOW\",\"log\":\"Deleted refs/heads/gone (was 1111111)\",\"files\":[],"
	       "\"changes\":\"0 files\",\"type\":\"delete\"}}",
	       "a deletion");

	jbuf_reset(&b);
	m.ref = "refs/tags/v1.0";
	t.name = (struct span){ "other", 5 };
	t.tagger = (struct span){ "T Agger", 7 };
	t.email = (struct span){ "t@x", 3 };
	t.msg = (struct span){ "Release", 7 };
	msg_tag_annotated(&b, &m, &t, &target);
	is_str(b.data,
	       "{\"commit\":{\"repository\":\"git\",\"project\":\"p\",\"ref\":\"refs/tags/v1.0\","
	       "\"hash\":\"" H1 "\",\"shortHash\":\"1111111\",\"author\":\"T Agger\",\"email\":"
	       "\"t@x\",\"date\":\"Thu Jan 1 00:00:00 1970 +0000\",\"log\":\"Release\",\"files\":[],"
	       "\"changes\":\"0 files\",\"type\":\"tag\",\"tag\":\"v1.0\",\"target\":\"" H2 "\","
	       "\"targetType\":\"commit\"}}",
	       "an annotated tag: the tagger, its message, its target; the name from the ref");

	jbuf_reset(&b);
	m.ref = "refs/heads/not-a-tag-ref";
	msg_tag_annotated(&b, &m, &t, &target);
	ok(strstr(b.data, "\"tag\":\"other\"") != NULL,
	   "outside refs/tags/ the tag's own name is used");

	jbuf_reset(&b);
	m.ref = "refs/tags/light";
	msg_tag_commit(&b, &m, &c);
	ok(strstr(b.data, "\"hash\":\"" H2 "\"") && strstr(b.data, "\"author\":\"A\"") &&
		   strstr(b.data, "\"log\":\"msg\",\"files\":[],\"changes\":\"0 files\","
				  "\"type\":\"tag\",\"tag\":\"light\",\"target\":\"" H2 "\","
				  "\"targetType\":\"commit\"}}"),
	   "a lightweight tag shows its commit, with no files");

	jbuf_reset(&b);
	msg_tag_object(&b, &m, &blob);
	ok(strstr(b.data, "\"type\":\"tag\",\"tag\":\"light\",\"target\":\"" H3 "\","
			  "\"targetType\":\"blob\"}}") != NULL,
	   "a lightweight tag on a blob");

	jbuf_reset(&b);
	m.ref = "refs/blobs/b";
	msg_object(&b, &m, &blob);
	ok(strstr(b.data, "\"log\":\"Ref refs/blobs/b now points at a blob\"") &&
		   strstr(b.data, "\"type\":\"object\",\"target\":\"" H3 "\",\"targetType\":"
				  "\"blob\"}}"),
	   "a ref to a blob");

	jbuf_reset(&b);
	m.ref = "refs/heads/big";
	msg_truncated(&b, &m, H2, 50, 100);
	ok(strstr(b.data, "\"hash\":\"" H2 "\"") &&
		   strstr(b.data, "\"log\":\"50 older commits were not published: a push publishes "
				  "at most 100 commits per ref\"") &&
		   strstr(b.data, "\"type\":\"truncated\",\"omitted\":50}}"),
	   "the truncation notice");
	ok(jbuf_error(&b) == 0, "no error");
	jbuf_free(&b);
}

static void test_tag_parse(void)
{
	static const char signed_tag[] = "object " H2 "\n"
					 "type commit\n"
					 "tag v2\n"
					 "tagger T Agger <t@x> 1112911993 -0700\n"
					 "\n"
					 "Release two\n\nNotes\n"
					 "-----BEGIN PGP SIGNATURE-----\n"
					 "abc\n"
					 "-----END PGP SIGNATURE-----\n";
	static const char old_tag[] = "object " H2 "\ntype commit\ntag ancient\n\nOld\n";
	static const char bare_tag[] =
		"object " H2 "\ntype commit\ntag empty\ntagger X <x> 5 +0000\n";
	struct tag t;

	is(repo_parse_tag(signed_tag, strlen(signed_tag), &t), 0, "a signed tag parses");
	ok(t.name.n == 2 && memcmp(t.name.p, "v2", 2) == 0, "its name");
	ok(t.tagger.n == 7 && memcmp(t.tagger.p, "T Agger", 7) == 0, "its tagger");
	ok(t.email.n == 3 && memcmp(t.email.p, "t@x", 3) == 0, "its email");
	ok(t.has_date && t.time == 1112911993 && t.tz_minutes == -420, "its date and zone");
	ok(t.msg.n == strlen("Release two\n\nNotes") &&
		   memcmp(t.msg.p, "Release two\n\nNotes", t.msg.n) == 0,
	   "its message, without the signature and trailing newlines");

	is(repo_parse_tag(old_tag, strlen(old_tag), &t), 0, "a tag without tagger parses");
	ok(t.tagger.n == 0 && t.email.n == 0 && !t.has_date, "no tagger, no date");
	ok(t.msg.n == 3 && memcmp(t.msg.p, "Old", 3) == 0, "its message");

	is(repo_parse_tag(bare_tag, strlen(bare_tag), &t), 0, "a tag without message parses");
	ok(t.msg.n == 0 && t.has_date && t.time == 5, "empty message, date read");
}

int main(void)
{
	test_date();
	test_update_parse();
	test_commit();
	test_caps();
	test_special();
	test_tag_parse();
	return done_testing();
}
