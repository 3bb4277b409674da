/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/utf8.h"
#include "hook/msg.h"

#define MSG_TAGS_PREFIX "refs/tags/"

void msg_format_date(int64_t t, int tz_minutes, char buf[MSG_DATE_MAX])
{
	/* git's names, not the locale's: the format is git's, whatever LANG says */
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	int tz_abs = tz_minutes < 0 ? -tz_minutes : tz_minutes;
	time_t local = (time_t)(t + (int64_t)tz_minutes * 60);
	struct tm tm;

	if (!gmtime_r(&local, &tm)) {
		buf[0] = '\0';
		return;
	}
	(void)snprintf(buf, MSG_DATE_MAX, "%s %s %d %02d:%02d:%02d %lld %c%02d%02d",
		       days[tm.tm_wday % 7], months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour,
		       tm.tm_min, tm.tm_sec, (long long)tm.tm_year + 1900,
		       tz_minutes < 0 ? '-' : '+', tz_abs / 60, tz_abs % 60);
}

void msg_format_now(char buf[MSG_DATE_MAX])
{
	time_t now = time(NULL);
	struct tm tm;

	if (!localtime_r(&now, &tm)) {
		msg_format_date((int64_t)now, 0, buf);
		return;
	}
	msg_format_date((int64_t)now, (int)(tm.tm_gmtoff / 60), buf);
}

/* A JSON string of at most max input bytes, cut at a character boundary, suffix if cut. */
static void msg_put_capped(struct jbuf *b, const char *p, size_t n, size_t max, const char *suffix)
{
	size_t cut = utf8_cut(p, n, max);

	jbuf_putc(b, '"');
	jbuf_put_json_chars(b, p, cut);
	if (cut < n)
		jbuf_put_json_chars(b, suffix, strlen(suffix));
	jbuf_putc(b, '"');
}

static void msg_key(struct jbuf *b, const char *key)
{
	jbuf_putc(b, ',');
	jbuf_put_json_str(b, key, strlen(key));
	jbuf_putc(b, ':');
}

/* The fields every message starts with, up to and including "log". */
static void msg_open(struct jbuf *b, const struct msg_ctx *m, const char *hash, struct span author,
		     struct span email, const char *date, struct span log)
{
	size_t hlen = strlen(hash);

	jbuf_puts(b, "{\"commit\":{\"repository\":\"git\"");
	msg_key(b, "project");
	jbuf_put_json_str(b, m->project, strlen(m->project));
	msg_key(b, "ref");
	jbuf_put_json_str(b, m->ref, strlen(m->ref));
	msg_key(b, "hash");
	jbuf_put_json_str(b, hash, hlen);
	msg_key(b, "shortHash");
	jbuf_put_json_str(b, hash, MIN(hlen, (size_t)MSG_SHORT_HASH));
	msg_key(b, "author");
	msg_put_capped(b, author.p, author.n, MSG_MAX_FIELD, "");
	msg_key(b, "email");
	msg_put_capped(b, email.p, email.n, MSG_MAX_FIELD, "");
	msg_key(b, "date");
	jbuf_put_json_str(b, date, strlen(date));
	msg_key(b, "log");
	/* "no trailing newline" (PROTOCOL 10), as the original stripped it */
	while (log.n && log.p[log.n - 1] == '\n')
		log.n--;
	msg_put_capped(b, log.p, log.n, MSG_MAX_LOG, MSG_TRUNCATED_LOG);
}

/* "files" and "changes" of a message about no paths. */
static void msg_no_files(struct jbuf *b)
{
	jbuf_puts(b, ",\"files\":[],\"changes\":\"0 files\"");
}

static void msg_close(struct jbuf *b)
{
	jbuf_puts(b, "}}");
}

static struct span msg_span(const char *s)
{
	return (struct span){ s, strlen(s) };
}

static const struct span msg_empty = { "", 0 };

void msg_commit(struct jbuf *b, const struct msg_ctx *m, const struct commit *c,
		const struct commit_set *s)
{
	const char *const *files = s->files + c->file0;
	size_t bytes = 0;

	msg_open(b, m, c->hash, msg_span(c->author), msg_span(c->email), c->date, msg_span(c->log));

	/* files: always an array (PROTOCOL 10 fix), capped; "changes" still counts them all */
	msg_key(b, "files");
	jbuf_putc(b, '[');
	for (size_t i = 0; i < c->nfiles && i < MSG_MAX_FILES; i++) {
		size_t len = strlen(files[i]);

		if (bytes + len > MSG_MAX_FILES_BYTES)
			break;
		bytes += len;
		if (i)
			jbuf_putc(b, ',');
		jbuf_put_json_str(b, files[i], len);
	}
	jbuf_putc(b, ']');
	msg_key(b, "changes");
	if (c->nfiles == 1)
		msg_put_capped(b, files[0], strlen(files[0]), MSG_MAX_FILES_BYTES, "");
	else
		jbuf_printf(b, "\"%zu files\"", c->nfiles);

	/* "merge": the parents' short hashes, as `git show` printed them for the original */
	if (strchr(c->parents, ' ')) {
		const char *p = c->parents;

		msg_key(b, "merge");
		jbuf_putc(b, '"');
		while (*p) {
			size_t len = strcspn(p, " ");

			if (p != c->parents)
				jbuf_putc(b, ' ');
			jbuf_put_json_chars(b, p, MIN(len, (size_t)MSG_SHORT_HASH));
			p += len;
			p += strspn(p, " ");
		}
		jbuf_putc(b, '"');
	}
	msg_close(b);
}

void msg_delete(struct jbuf *b, const struct msg_ctx *m, const char *old_hex)
{
	struct jbuf log = JBUF_INIT;

	jbuf_printf(&log, "Deleted %s (was %.*s)", m->ref, MSG_SHORT_HASH, old_hex);
	msg_open(b, m, old_hex, msg_empty, msg_empty, m->now,
		 (struct span){ log.data ? log.data : "", log.len });
	msg_no_files(b);
	jbuf_puts(b, ",\"type\":\"delete\"");
	msg_close(b);
	if (jbuf_error(&log) < 0 && !b->err)
		b->err = jbuf_error(&log);
	jbuf_free(&log);
}

/* The tag's name: the ref under refs/tags/, else the name the tag object gives itself. */
static struct span msg_tag_name(const struct msg_ctx *m, const struct tag *t)
{
	size_t plen = strlen(MSG_TAGS_PREFIX);

	if (strncmp(m->ref, MSG_TAGS_PREFIX, plen) == 0)
		return msg_span(m->ref + plen);
	if (t && t->name.n)
		return t->name;
	return msg_span(m->ref);
}

/* The fields a tag message adds: its name and what it finally points at. */
static void msg_tag_fields(struct jbuf *b, struct span name, const char *target_hex,
			   enum obj_type target_type)
{
	jbuf_puts(b, ",\"type\":\"tag\"");
	msg_key(b, "tag");
	msg_put_capped(b, name.p, name.n, MSG_MAX_FIELD, "");
	msg_key(b, "target");
	jbuf_put_json_str(b, target_hex, strlen(target_hex));
	msg_key(b, "targetType");
	jbuf_puts(b, "\"");
	jbuf_puts(b, obj_type_name(target_type));
	jbuf_puts(b, "\"");
}

void msg_tag_annotated(struct jbuf *b, const struct msg_ctx *m, const struct tag *t,
		       const struct obj *target)
{
	char date[MSG_DATE_MAX] = "";

	if (t->has_date)
		msg_format_date(t->time, t->tz_minutes, date);
	msg_open(b, m, t->hash, t->tagger.n ? t->tagger : msg_empty,
		 t->email.n ? t->email : msg_empty, date, t->msg.n ? t->msg : msg_empty);
	msg_no_files(b);
	msg_tag_fields(b, msg_tag_name(m, t), target->hex, target->type);
	msg_close(b);
}

void msg_tag_commit(struct jbuf *b, const struct msg_ctx *m, const struct commit *c)
{
	/* a lightweight tag is the commit itself: `git show <tag>` shows its author and message */
	msg_open(b, m, c->hash, msg_span(c->author), msg_span(c->email), c->date, msg_span(c->log));
	msg_no_files(b);
	msg_tag_fields(b, msg_tag_name(m, NULL), c->hash, OBJ_COMMIT);
	msg_close(b);
}

/* log, date and fields of a message about a ref to a tree or blob */
static void msg_about_object(struct jbuf *b, const struct msg_ctx *m, const struct obj *o,
			     const char *what)
{
	struct jbuf log = JBUF_INIT;

	jbuf_printf(&log, "%s %s now points at a %s", what, m->ref, obj_type_name(o->type));
	msg_open(b, m, o->hex, msg_empty, msg_empty, m->now,
		 (struct span){ log.data ? log.data : "", log.len });
	msg_no_files(b);
	if (jbuf_error(&log) < 0 && !b->err)
		b->err = jbuf_error(&log);
	jbuf_free(&log);
}

void msg_tag_object(struct jbuf *b, const struct msg_ctx *m, const struct obj *o)
{
	msg_about_object(b, m, o, "Tag");
	msg_tag_fields(b, msg_tag_name(m, NULL), o->hex, o->type);
	msg_close(b);
}

void msg_object(struct jbuf *b, const struct msg_ctx *m, const struct obj *o)
{
	msg_about_object(b, m, o, "Ref");
	jbuf_puts(b, ",\"type\":\"object\"");
	msg_key(b, "target");
	jbuf_put_json_str(b, o->hex, strlen(o->hex));
	msg_key(b, "targetType");
	jbuf_printf(b, "\"%s\"", obj_type_name(o->type));
	msg_close(b);
}

void msg_truncated(struct jbuf *b, const struct msg_ctx *m, const char *newest_hex, size_t omitted,
		   uint32_t limit)
{
	struct jbuf log = JBUF_INIT;

	jbuf_printf(&log,
		    "%zu older commit%s not published: a push publishes at most %u commits per ref",
		    omitted, omitted == 1 ? " was" : "s were", limit);
	msg_open(b, m, newest_hex, msg_empty, msg_empty, m->now,
		 (struct span){ log.data ? log.data : "", log.len });
	msg_no_files(b);
	jbuf_printf(b, ",\"type\":\"truncated\",\"omitted\":%zu", omitted);
	msg_close(b);
	if (jbuf_error(&log) < 0 && !b->err)
		b->err = jbuf_error(&log);
	jbuf_free(&log);
}
