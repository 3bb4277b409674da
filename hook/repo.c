/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hook/git.h"
#include "hook/repo.h"

/* `git config --get-regexp` exits 1 when nothing matches: not an error for us. */
#define GIT_CONFIG_NO_MATCH 1

/* A git status that is not success, or our own -errno: -errno either way. */
static int repo_status(int r)
{
	if (r < 0)
		return r;
	return r == 0 ? 0 : -EIO;
}

static bool repo_is_hex(const char *p, size_t n)
{
	if (n != 40 && n != REPO_HEX_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

int repo_open(struct repo *r, uint64_t deadline_us)
{
	static const char *const argv[] = { "git", "rev-parse", "--absolute-git-dir", NULL };
	struct jbuf out = JBUF_INIT;
	char *dir, *base, *slash;
	int err;

	err = git_run(argv, NULL, 0, deadline_us, &out);
	if (err == GIT_EXEC_FAILED)
		err = -ENOEXEC; /* no git to run */
	else if (err > 0)
		err = -ENOENT; /* "not a git repository" */
	if (err < 0)
		goto out_free;
	while (out.len && (out.data[out.len - 1] == '\n' || out.data[out.len - 1] == '/'))
		out.data[--out.len] = '\0';
	if (out.len == 0 || out.data[0] != '/') {
		err = -ENOENT;
		goto out_free;
	}
	dir = out.data;
	slash = strrchr(dir, '/');
	base = slash + 1;
	if (strcmp(base, ".git") == 0 && slash != dir) {
		/* a work tree's .git folder: the project is the work tree */
		const char *end = slash, *start = slash;

		while (start > dir && start[-1] != '/')
			start--;
		r->project = strndup(start, (size_t)(end - start));
	} else {
		r->project = strdup(*base ? base : "unknown");
	}
	if (!r->project) {
		err = -ENOMEM;
		goto out_free;
	}
	r->git_dir = out.data; /* ownership moves to r */
	return 0;

out_free:
	jbuf_free(&out);
	return err;
}

void repo_close(struct repo *r)
{
	free(r->git_dir);
	free(r->project);
	r->git_dir = NULL;
	r->project = NULL;
}

int repo_config(struct jbuf *raw, uint64_t deadline_us)
{
	static const char *const argv[] = { "git",	    "config",	     "-z",
					    "--get-regexp", "^gitpubsub\\.", NULL };
	int r = git_run(argv, NULL, 0, deadline_us, raw);

	if (r == GIT_CONFIG_NO_MATCH) {
		jbuf_reset(raw);
		return 0;
	}
	return repo_status(r);
}

bool repo_config_next(struct jbuf *raw, size_t *pos, const char **ret_key, const char **ret_value)
{
	static const char prefix[] = "gitpubsub.";

	while (*pos < raw->len) {
		char *p = raw->data + *pos, *end, *nl;

		end = memchr(p, '\0', raw->len - *pos);
		if (!end)
			end = raw->data + raw->len; /* the buffer's own NUL ends the last pair */
		*pos = (size_t)(end - raw->data) + 1;
		/* "key\nvalue"; a key given without "= value" comes alone */
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(p, prefix, strlen(prefix)) != 0)
			continue;
		*ret_key = p + strlen(prefix);
		*ret_value = nl ? nl + 1 : "";
		return true;
	}
	return false;
}

const char *obj_type_name(enum obj_type t)
{
	switch (t) {
	case OBJ_COMMIT:
		return "commit";
	case OBJ_TAG:
		return "tag";
	case OBJ_TREE:
		return "tree";
	case OBJ_BLOB:
		return "blob";
	case OBJ_MISSING:
	default:
		return "missing";
	}
}

static enum obj_type obj_type_parse(const char *p, size_t n)
{
	static const enum obj_type types[] = { OBJ_COMMIT, OBJ_TAG, OBJ_TREE, OBJ_BLOB };

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		const char *name = obj_type_name(types[i]);

		if (strlen(name) == n && memcmp(name, p, n) == 0)
			return types[i];
	}
	return OBJ_MISSING;
}

int repo_resolve(const char *const names[], size_t n, struct obj *out, uint64_t deadline_us)
{
	static const char *const argv[] = { "git", "cat-file",
					    "--batch-check=%(objectname) %(objecttype)", NULL };
	struct jbuf in = JBUF_INIT, res = JBUF_INIT;
	const char *p, *end;
	int err;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		jbuf_puts(&in, names[i]);
		jbuf_putc(&in, '\n');
	}
	err = jbuf_error(&in);
	if (err < 0)
		goto out;
	err = repo_status(git_run(argv, in.data, in.len, deadline_us, &res));
	if (err < 0)
		goto out;

	p = res.data;
	end = res.data + res.len;
	for (size_t i = 0; i < n; i++) {
		const char *nl, *sp;

		nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		if (!nl) {
			err = -EBADMSG;
			goto out;
		}
		/* "<hex> <type>", or "<name> missing" / "<name> ambiguous" */
		sp = memchr(p, ' ', (size_t)(nl - p));
		out[i].hex[0] = '\0';
		out[i].type = OBJ_MISSING;
		if (sp && repo_is_hex(p, (size_t)(sp - p))) {
			out[i].type = obj_type_parse(sp + 1, (size_t)(nl - sp - 1));
			if (out[i].type != OBJ_MISSING) {
				memcpy(out[i].hex, p, (size_t)(sp - p));
				out[i].hex[sp - p] = '\0';
			}
		}
		p = nl + 1;
	}
out:
	jbuf_free(&in);
	jbuf_free(&res);
	return err;
}

int repo_refs(struct jbuf *out, uint64_t deadline_us)
{
	static const char *const argv[] = { "git", "for-each-ref",
					    "--format=%(objectname) %(symref) %(refname)", NULL };

	return repo_status(git_run(argv, NULL, 0, deadline_us, out));
}

int repo_rev_list(const struct jbuf *revs, struct jbuf *out, uint64_t deadline_us)
{
	static const char *const argv[] = { "git",	 "rev-list", "--topo-order",
					    "--reverse", "--stdin",  NULL };

	return repo_status(git_run(argv, revs->data, revs->len, deadline_us, out));
}

static int repo_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int repo_cmp_commit(const void *a, const void *b)
{
	return strcmp(((const struct commit *)a)->hash, ((const struct commit *)b)->hash);
}

/* The next NUL-terminated token of [*p, end), or NULL at the end. */
static const char *repo_token(const char **p, const char *end)
{
	const char *tok = *p, *nul;

	if (tok >= end)
		return NULL;
	nul = memchr(tok, '\0', (size_t)(end - tok));
	if (!nul)
		return NULL; /* -z output always ends its tokens with a NUL */
	*p = nul + 1;
	return tok;
}

/*
 * git log -z with our format prints, per commit: "/" hash, parents, author, email, date and
 * message, each ended by a NUL; then, if the commit changed anything, "\n" and the paths, each
 * ended by a NUL. A path never starts with "/", so a token that does starts the next commit.
 */
static int repo_parse_log(struct commit_set *s, size_t want)
{
	const char *p = s->raw.data, *end = s->raw.data + s->raw.len;
	size_t fcap = 0;

	s->v = calloc(want ? want : 1, sizeof(*s->v));
	if (!s->v)
		return -ENOMEM;
	while (p < end) {
		struct commit *c;
		const char *tok = repo_token(&p, end);
		const char **fields[] = { NULL, NULL, NULL, NULL, NULL };

		if (!tok || tok[0] != '/' || s->n == want)
			return -EBADMSG;
		c = &s->v[s->n++];
		c->hash = tok + 1;
		fields[0] = &c->parents;
		fields[1] = &c->author;
		fields[2] = &c->email;
		fields[3] = &c->date;
		fields[4] = &c->log;
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
			*fields[i] = repo_token(&p, end);
			if (!*fields[i])
				return -EBADMSG;
		}
		c->file0 = s->nfiles;
		while (p < end && *p != '/') {
			tok = repo_token(&p, end);
			if (!tok)
				return -EBADMSG;
			if (c->nfiles == 0 && tok[0] == '\n')
				tok++; /* the separator line before the first path */
			if (!*tok)
				continue;
			if (s->nfiles == fcap) {
				size_t ncap = fcap ? 2 * fcap : 64;
				const char **nf = realloc(s->files, ncap * sizeof(*nf));

				if (!nf)
					return -ENOMEM;
				s->files = nf;
				fcap = ncap;
			}
			s->files[s->nfiles++] = tok;
			c->nfiles++;
		}
	}
	return 0;
}

int repo_commits(const char *const hashes[], size_t n, struct commit_set *out, uint64_t deadline_us)
{
	static const char *const argv[] = { "git",
					    "log",
					    "--no-walk=unsorted",
					    "--stdin",
					    "-z",
					    "--encoding=UTF-8",
					    "--date=default",
					    "--no-show-signature",
					    "--no-color",
					    "--root",
					    "--no-renames",
					    "--no-relative",
					    "--diff-merges=first-parent",
					    "--name-only",
					    "--format=/%H%x00%P%x00%an%x00%ae%x00%ad%x00%B",
					    NULL };
	struct jbuf in = JBUF_INIT;
	const char **sorted;
	size_t uniq = 0;
	int err;

	*out = (struct commit_set){ .raw = JBUF_INIT };
	if (n == 0)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, hashes, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), repo_cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
			continue;
		jbuf_puts(&in, sorted[i]);
		jbuf_putc(&in, '\n');
		uniq++;
	}
	err = jbuf_error(&in);
	if (err < 0)
		goto out;
	err = repo_status(git_run(argv, in.data, in.len, deadline_us, &out->raw));
	if (err < 0)
		goto out;
	err = repo_parse_log(out, uniq);
	if (err < 0)
		goto out;
	qsort(out->v, out->n, sizeof(*out->v), repo_cmp_commit);
out:
	free(sorted);
	jbuf_free(&in);
	if (err < 0)
		commit_set_free(out);
	return err;
}

const struct commit *commit_set_find(const struct commit_set *s, const char *hex)
{
	struct commit key = { .hash = hex };

	if (s->n == 0)
		return NULL;
	return bsearch(&key, s->v, s->n, sizeof(*s->v), repo_cmp_commit);
}

void commit_set_free(struct commit_set *s)
{
	free(s->v);
	free(s->files);
	jbuf_free(&s->raw);
	*s = (struct commit_set){ .raw = JBUF_INIT };
}

/* Whether [p, p + n) begins with the NUL-terminated s. */
static bool repo_starts(const char *p, size_t n, const char *s)
{
	size_t len = strlen(s);

	return n >= len && memcmp(p, s, len) == 0;
}

/* "Name <email> 1700000000 +0100" (git's ident line); lenient, as git itself is. */
static void repo_parse_ident(const char *p, size_t n, struct tag *t)
{
	const char *lt = memchr(p, '<', n), *gt, *q, *end = p + n;
	int64_t when = 0;
	int sign, hh, mm;

	if (!lt)
		return;
	gt = memchr(lt, '>', (size_t)(end - lt));
	if (!gt)
		return;
	t->tagger.p = p;
	t->tagger.n = (size_t)(lt - p);
	while (t->tagger.n && t->tagger.p[t->tagger.n - 1] == ' ')
		t->tagger.n--;
	t->email.p = lt + 1;
	t->email.n = (size_t)(gt - lt - 1);

	q = gt + 1;
	if (q >= end || *q++ != ' ' || q >= end || *q < '0' || *q > '9')
		return;
	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		if (when > (INT64_MAX - 9) / 10)
			return;
		when = when * 10 + (*q - '0');
	}
	if (end - q != 6 || q[0] != ' ' || (q[1] != '+' && q[1] != '-'))
		return;
	for (int i = 2; i < 6; i++)
		if (q[i] < '0' || q[i] > '9')
			return;
	sign = q[1] == '-' ? -1 : 1;
	hh = (q[2] - '0') * 10 + (q[3] - '0');
	mm = (q[4] - '0') * 10 + (q[5] - '0');
	t->time = when;
	t->tz_minutes = sign * (hh * 60 + mm);
	t->has_date = true;
}

int repo_parse_tag(const char *p, size_t n, struct tag *t)
{
	/* the armour lines git writes for gpg, x509 (gpgsm) and ssh signatures */
	static const char *const sig_starts[] = {
		"-----BEGIN PGP SIGNATURE-----",
		"-----BEGIN PGP MESSAGE-----",
		"-----BEGIN SIGNED MESSAGE-----",
		"-----BEGIN SSH SIGNATURE-----",
	};
	const char *end = p + n, *line = p, *body;

	t->name = (struct span){ NULL, 0 };
	t->tagger = (struct span){ NULL, 0 };
	t->email = (struct span){ NULL, 0 };
	t->msg = (struct span){ NULL, 0 };
	t->has_date = false;

	/* header lines up to the first empty line */
	for (;;) {
		const char *nl, *eol;
		size_t len;

		if (line >= end)
			return 0; /* headers only: an empty message */
		if (*line == '\n')
			break; /* the empty line between headers and message */
		nl = memchr(line, '\n', (size_t)(end - line));
		eol = nl ? nl : end;
		len = (size_t)(eol - line);
		if (repo_starts(line, len, "tag ")) {
			t->name.p = line + 4;
			t->name.n = len - 4;
		} else if (repo_starts(line, len, "tagger ")) {
			repo_parse_ident(line + 7, len - 7, t);
		}
		if (!nl)
			return 0;
		line = nl + 1;
	}
	body = line + 1;
	if (body > end)
		return -EBADMSG;
	t->msg.p = body;
	t->msg.n = (size_t)(end - body);

	/* the signature is the rest of the message from a line starting with an armour line */
	for (const char *l = body; l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t rest = (size_t)(end - l);
		bool sig = false;

		for (size_t i = 0; i < ARRAY_SIZE(sig_starts); i++)
			sig = sig || repo_starts(l, rest, sig_starts[i]);
		if (sig) {
			t->msg.n = (size_t)(l - body);
			break;
		}
		if (!nl)
			break;
		l = nl + 1;
	}
	while (t->msg.n && t->msg.p[t->msg.n - 1] == '\n')
		t->msg.n--;
	return 0;
}

int repo_tags(const char *const hashes[], size_t n, struct tag *out, struct jbuf *raw,
	      uint64_t deadline_us)
{
	static const char *const argv[] = { "git", "cat-file", "--batch", NULL };
	struct jbuf in = JBUF_INIT;
	const char *p, *end;
	int err;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		jbuf_puts(&in, hashes[i]);
		jbuf_putc(&in, '\n');
	}
	err = jbuf_error(&in);
	if (err < 0)
		goto out;
	err = repo_status(git_run(argv, in.data, in.len, deadline_us, raw));
	if (err < 0)
		goto out;

	/* per object "<hex> <type> <size>\n<content>\n", or "<name> missing\n" */
	p = raw->data;
	end = raw->data + raw->len;
	for (size_t i = 0; i < n; i++) {
		const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		const char *sp1, *sp2;
		size_t size = 0;

		memset(&out[i], 0, sizeof(out[i]));
		if (!nl) {
			err = -EBADMSG;
			goto out;
		}
		sp1 = memchr(p, ' ', (size_t)(nl - p));
		sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(nl - sp1 - 1)) : NULL;
		if (!sp2) {
			p = nl + 1; /* missing or ambiguous: no content follows */
			continue;
		}
		for (const char *q = sp2 + 1; q < nl; q++) {
			if (*q < '0' || *q > '9' || size > JBUF_MAX) {
				err = -EBADMSG;
				goto out;
			}
			size = size * 10 + (size_t)(*q - '0');
		}
		if (size > (size_t)(end - nl - 1)) {
			err = -EBADMSG;
			goto out;
		}
		if (obj_type_parse(sp1 + 1, (size_t)(sp2 - sp1 - 1)) == OBJ_TAG &&
		    repo_is_hex(p, (size_t)(sp1 - p))) {
			memcpy(out[i].hash, p, (size_t)(sp1 - p));
			out[i].hash[sp1 - p] = '\0';
			err = repo_parse_tag(nl + 1, size, &out[i]);
			if (err < 0)
				goto out;
		}
		p = nl + 1 + size + 1; /* the content, then its newline */
	}
out:
	jbuf_free(&in);
	return err;
}
