/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hook/msg.h"
#include "hook/push.h"

#define PUSH_TAGS_PREFIX "refs/tags/"

bool hex_is_zero(const char *hex)
{
	if (!*hex)
		return false;
	for (; *hex; hex++)
		if (*hex != '0')
			return false;
	return true;
}

/* Copy a 40 or 64 digit hex name, lowercased, into out; false if it is not one. */
static bool push_copy_hex(char out[REPO_HEX_MAX + 1], const char *hex)
{
	size_t n = strlen(hex);

	if (n != 40 && n != REPO_HEX_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = hex[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		out[i] = c;
	}
	out[n] = '\0';
	return true;
}

int update_set(struct update *u, const char *old_hex, const char *new_hex, const char *ref)
{
	char old_buf[REPO_HEX_MAX + 1], new_buf[REPO_HEX_MAX + 1];
	size_t rlen = strlen(ref);
	char *copy;

	if (!push_copy_hex(old_buf, old_hex) || !push_copy_hex(new_buf, new_hex) ||
	    strlen(old_buf) != strlen(new_buf))
		return -EINVAL;
	if (rlen == 0 || rlen > PUSH_MAX_REF)
		return -EINVAL;
	for (size_t i = 0; i < rlen; i++)
		if ((unsigned char)ref[i] <= ' ' || ref[i] == 0x7F)
			return -EINVAL;
	copy = strdup(ref);
	if (!copy)
		return -ENOMEM;
	memcpy(u->old_hex, old_buf, sizeof(old_buf));
	memcpy(u->new_hex, new_buf, sizeof(new_buf));
	u->ref = copy;
	return 0;
}

int update_parse(const char *line, size_t len, struct update *u)
{
	/* "<old> SP <new> SP <ref>": the longest line is two 64-digit names and a maximal ref */
	char buf[2 * (REPO_HEX_MAX + 1) + PUSH_MAX_REF + 1];
	char *old_hex, *new_hex, *ref, *sp;

	if (len >= sizeof(buf) || memchr(line, '\0', len))
		return -EINVAL;
	memcpy(buf, line, len);
	buf[len] = '\0';
	old_hex = buf;
	sp = strchr(old_hex, ' ');
	if (!sp)
		return -EINVAL;
	*sp = '\0';
	new_hex = sp + 1;
	sp = strchr(new_hex, ' ');
	if (!sp)
		return -EINVAL;
	*sp = '\0';
	ref = sp + 1;
	return update_set(u, old_hex, new_hex, ref);
}

void update_free(struct update *u)
{
	free(u->ref);
	u->ref = NULL;
}

void msg_list_free(struct msg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct msg_list){ NULL, 0, 0 };
}

int msg_list_add(struct msg_list *l, const char *p, size_t n)
{
	char *copy;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? 2 * l->cap : 16;
		char **nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	copy = strndup(p, n);
	if (!copy)
		return -ENOMEM;
	l->v[l->n++] = copy;
	return 0;
}

static int push_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * "^<hex>" lines for what the repository had before the push: every ref the push did not touch
 * (symbolic refs skipped: their target is listed itself, and may be one the push moved), and the
 * old value of every touched ref that still exists.
 */
static int push_exclusions(const struct update *u, size_t n, const struct obj *old_objs,
			   struct jbuf *excl, uint64_t deadline_us)
{
	struct jbuf refs = JBUF_INIT;
	const char **touched;
	char *p, *end;
	int err;

	touched = malloc(n * sizeof(*touched));
	if (!touched)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		touched[i] = u[i].ref;
	qsort(touched, n, sizeof(*touched), push_cmp_str);

	err = repo_refs(&refs, deadline_us);
	if (err < 0)
		goto out;
	p = refs.data;
	end = refs.data + refs.len;
	while (p && p < end) {
		/* "<hex> <symref target or nothing> <refname>\n" */
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *sp1, *sp2;
		const char *name;

		if (!nl)
			break;
		*nl = '\0';
		sp1 = strchr(p, ' ');
		sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (sp2 && sp2 == sp1 + 1) {
			*sp1 = '\0';
			name = sp2 + 1;
			if (!bsearch(&name, touched, n, sizeof(*touched), push_cmp_str))
				jbuf_printf(excl, "^%s\n", p);
		}
		p = nl + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (old_objs[i].type != OBJ_MISSING)
			jbuf_printf(excl, "^%s\n", old_objs[i].hex);
	err = jbuf_error(excl);
out:
	jbuf_free(&refs);
	free(touched);
	return err;
}

/* The objects named by each update: new, new peeled to a non-tag, and old. */
struct push_objs {
	struct obj new_obj;
	struct obj peeled;
	struct obj old_obj;
};

static int push_resolve(const struct update *u, size_t n, struct push_objs *objs,
			uint64_t deadline_us)
{
	const char **names;
	char(*bufs)[REPO_HEX_MAX + 4];
	struct obj *res;
	size_t k = 0;
	int err = -ENOMEM;

	names = calloc(3 * n, sizeof(*names));
	bufs = calloc(n, sizeof(*bufs));
	res = calloc(3 * n, sizeof(*res));
	if (!names || !bufs || !res)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!hex_is_zero(u[i].new_hex)) {
			names[k++] = u[i].new_hex;
			(void)snprintf(bufs[i], sizeof(bufs[i]), "%s^{}", u[i].new_hex);
			names[k++] = bufs[i];
		}
		if (!hex_is_zero(u[i].old_hex))
			names[k++] = u[i].old_hex;
	}
	err = repo_resolve(names, k, res, deadline_us);
	if (err < 0)
		goto out;
	k = 0;
	for (size_t i = 0; i < n; i++) {
		memset(&objs[i], 0, sizeof(objs[i]));
		if (!hex_is_zero(u[i].new_hex)) {
			objs[i].new_obj = res[k++];
			objs[i].peeled = res[k++];
		}
		if (!hex_is_zero(u[i].old_hex))
			objs[i].old_obj = res[k++];
	}
out:
	free(names);
	free(bufs);
	free(res);
	return err;
}

/* Split rev-list's "<hex>\n" lines in place into an array of strings; caller frees the array. */
static int push_split_lines(struct jbuf *b, char ***ret, size_t *ret_n)
{
	size_t n = 0, k = 0;
	char **v, *p;

	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n')
			n++;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	p = b->data;
	while (k < n) {
		char *nl = strchr(p, '\n');

		*nl = '\0';
		v[k++] = p;
		p = nl + 1;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/* Move the JSON text in b to the list; b is reset for the next message. */
static int push_emit(struct jbuf *b, struct msg_list *out)
{
	int err = jbuf_error(b);

	if (err == 0)
		err = msg_list_add(out, b->data, b->len);
	jbuf_reset(b);
	return err;
}

/* The messages of one update whose objects exist; revs holds the exclusions. */
static int push_one(const struct update *u, const struct push_objs *o, const struct msg_ctx *m,
		    uint32_t max_commits, struct jbuf *revs, struct msg_list *out,
		    uint64_t deadline_us)
{
	bool is_tag_ref = strncmp(u->ref, PUSH_TAGS_PREFIX, strlen(PUSH_TAGS_PREFIX)) == 0;
	struct jbuf list = JBUF_INIT, msg = JBUF_INIT, tag_raw = JBUF_INIT;
	struct commit_set set = { .raw = JBUF_INIT };
	const char **want = NULL;
	char **commits = NULL;
	size_t ncommits = 0, first = 0, nwant = 0;
	int err = 0;

	if (o->peeled.type == OBJ_COMMIT) {
		size_t keep = revs->len;

		/* what this ref reaches that nothing had, then it counts as had for the next refs */
		jbuf_printf(revs, "%s\n", o->peeled.hex);
		err = jbuf_error(revs);
		if (err == 0)
			err = repo_rev_list(revs, &list, deadline_us);
		revs->len = keep;
		jbuf_printf(revs, "^%s\n", o->peeled.hex);
		if (err == 0)
			err = jbuf_error(revs);
		if (err == 0)
			err = push_split_lines(&list, &commits, &ncommits);
		if (err < 0)
			goto out;
	}
	if (ncommits > max_commits)
		first = ncommits - max_commits;

	want = calloc(ncommits - first + 1, sizeof(*want));
	if (!want) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = first; i < ncommits; i++)
		want[nwant++] = commits[i];
	if (is_tag_ref && o->new_obj.type == OBJ_COMMIT)
		want[nwant++] = o->new_obj.hex; /* a lightweight tag shows its commit */
	err = repo_commits(want, nwant, &set, deadline_us);
	if (err < 0)
		goto out;

	if (first > 0) {
		msg_truncated(&msg, m, commits[first - 1], first, max_commits);
		err = push_emit(&msg, out);
		if (err < 0)
			goto out;
	}
	for (size_t i = first; i < ncommits; i++) {
		const struct commit *c = commit_set_find(&set, commits[i]);

		if (!c) {
			err = -EBADMSG;
			goto out;
		}
		msg_commit(&msg, m, c, &set);
		err = push_emit(&msg, out);
		if (err < 0)
			goto out;
	}

	if (o->new_obj.type == OBJ_TAG) {
		const char *hash = o->new_obj.hex;
		struct tag t;

		err = repo_tags(&hash, 1, &t, &tag_raw, deadline_us);
		if (err == 0 && !t.hash[0])
			err = -EBADMSG;
		if (err < 0)
			goto out;
		msg_tag_annotated(&msg, m, &t, &o->peeled);
	} else if (is_tag_ref && o->new_obj.type == OBJ_COMMIT) {
		const struct commit *c = commit_set_find(&set, o->new_obj.hex);

		if (!c) {
			err = -EBADMSG;
			goto out;
		}
		msg_tag_commit(&msg, m, c);
	} else if (is_tag_ref) {
		msg_tag_object(&msg, m, &o->new_obj);
	} else if (o->new_obj.type != OBJ_COMMIT) {
		msg_object(&msg, m, &o->new_obj);
	} else {
		goto out; /* a branch: its commits were all there is to say */
	}
	err = push_emit(&msg, out);
out:
	commit_set_free(&set);
	free(want);
	free(commits);
	jbuf_free(&list);
	jbuf_free(&msg);
	jbuf_free(&tag_raw);
	return err;
}

int push_build(const struct repo *r, const struct update *u, size_t n, uint32_t max_commits,
	       struct msg_list *out, struct push_stats *stats, uint64_t deadline_us)
{
	struct jbuf revs = JBUF_INIT, msg = JBUF_INIT;
	struct push_objs *objs;
	struct obj *olds = NULL;
	char now[MSG_DATE_MAX];
	int err;

	if (n == 0)
		return 0;
	msg_format_now(now);
	objs = calloc(n, sizeof(*objs));
	olds = calloc(n, sizeof(*olds));
	if (!objs || !olds) {
		err = -ENOMEM;
		goto out;
	}
	err = push_resolve(u, n, objs, deadline_us);
	if (err < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		olds[i] = objs[i].old_obj;
	err = push_exclusions(u, n, olds, &revs, deadline_us);
	if (err < 0)
		goto out;

	for (size_t i = 0; i < n; i++) {
		struct msg_ctx m = { .project = r->project, .ref = u[i].ref, .now = now };

		if (hex_is_zero(u[i].new_hex)) {
			msg_delete(&msg, &m, u[i].old_hex);
			err = push_emit(&msg, out);
			if (err < 0)
				goto out;
			continue;
		}
		if (objs[i].new_obj.type == OBJ_MISSING) {
			log_debug("unable to read object '%s' of ref '%s', skipping", u[i].new_hex,
				  u[i].ref);
			stats->skipped++;
			continue;
		}
		err = push_one(&u[i], &objs[i], &m, max_commits, &revs, out, deadline_us);
		if (err == -ETIMEDOUT || err == -ENOMEM)
			goto out;
		if (err < 0) {
			log_debug("unable to read the commits of ref '%s': %s, skipping", u[i].ref,
				  strerror(-err));
			stats->skipped++;
			err = 0;
		}
	}
out:
	free(objs);
	free(olds);
	jbuf_free(&revs);
	jbuf_free(&msg);
	return err;
}
