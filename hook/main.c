/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "hook/conf.h"
#include "hook/git.h"
#include "hook/msgid.h"
#include "hook/post.h"
#include "hook/push.h"
#include "hook/repo.h"
#include "hook/spool.h"

/*
 * gitpubsub-hook: the post-receive hook (PROTOCOL 10). It must never fail or stall a
 * push: every delay is bounded by gitpubsub.timeout, delivery problems end in one plain sentence
 * on stderr (git shows it to the pusher as "remote: ...") and exit status 0, and what could not
 * be delivered waits in the spool (hook/spool.h) for the next run or --flush.
 */

#define PROG "gitpubsub-hook"

#define EXIT_OK	     0
#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

/*
 * post-receive's input is one line per pushed ref; a mirror push of a huge repository may list
 * a few hundred thousand refs of ~110 bytes. Past this, the input is not git's.
 */
#define HOOK_MAX_STDIN ((size_t)64 << 20)

struct hook_opts {
	bool done; /* --help or --version answered: exit 0 */
	bool dry_run;
	bool flush;
	char **args; /* the three-argument form: old new ref */
	int nargs;
};

/* What delivery did, for the one line the pusher sees. */
struct deliver_stats {
	size_t sent;
	size_t refused; /* by the server, for good: set aside */
	long refused_status;
	size_t unreadable; /* spool files that are no message of ours: set aside */
	size_t lost;	   /* neither spooled nor sent */
	size_t left;	   /* still in the spool afterwards */
	int stop_err;	   /* why sending stopped early, as post_send() says; 0 if it did not */
	bool busy;	   /* another run held the delivery lock until our deadline */
	bool no_spool;	   /* the spool could not be opened or written */
	bool no_post;	   /* nothing could be sent: bad URL or no libcurl */
	bool bad_url;	   /* ... because gitpubsub.url is not http(s) */
	int spool_err;
};

static void hook_usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--dry-run]                          (as post-receive: reads\n"
		"                                                         \"OLD NEW REF\" lines)\n"
		"       %s [--dry-run] OLDREV NEWREV REFNAME    (one ref update)\n"
		"       %s [--dry-run] --flush                  (send what the spool holds)\n"
		"       %s --help | --version\n"
		"\n"
		"Publishes every commit a push made reachable, and every branch deletion and tag, to a\n"
		"GitPubSub server as JSON. Undelivered messages wait in $GIT_DIR/gitpubsub/spool/ and\n"
		"go out first on the next run.\n"
		"\n"
		"  -n, --dry-run  print the messages (one JSON text per line) instead of posting them\n"
		"      --flush    deliver the spool now (for a cron job or timer)\n"
		"  -h, --help     show this help\n"
		"  -V, --version  show the version\n"
		"\n"
		"Settings (git config, or the environment, which wins):\n"
		"  gitpubsub.url         GITPUBSUB_URL         default %s\n"
		"  gitpubsub.timeout     GITPUBSUB_TIMEOUT     most time added to a push, default %us\n"
		"  gitpubsub.maxCommits  GITPUBSUB_MAXCOMMITS  commits published per ref, default %u\n"
		"  gitpubsub.token       GITPUBSUB_TOKEN       publish token (Authorization: Bearer)\n"
		"  gitpubsub.tokenFile   GITPUBSUB_TOKENFILE   file whose first line is the token\n"
		"\n"
		"Exit status: 0 success, and also when delivery failed during a push (the messages\n"
		"are kept); 1 runtime failure (not a repository; --flush left messages undelivered);\n"
		"2 usage error.\n",
		PROG, PROG, PROG, PROG, CONF_DEFAULT_URL, CONF_DEFAULT_TIMEOUT_MS / 1000,
		CONF_DEFAULT_MAX_COMMITS);
}

/* Parse the command line: EXIT_OK (then o->done says whether to stop), or EXIT_USAGE. */
static int hook_parse_args(int argc, char **argv, struct hook_opts *o)
{
	enum { OPT_FLUSH = 0x100 };
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "flush", no_argument, NULL, OPT_FLUSH },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	/* "+": stop at the first operand, as a ref name is never an option */
	while ((c = getopt_long(argc, argv, "+hVn", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			hook_usage(stdout);
			o->done = true;
			return EXIT_OK;
		case 'V':
			printf("%s %s\n", PROG, GPS_VERSION);
			o->done = true;
			return EXIT_OK;
		case 'n':
			o->dry_run = true;
			break;
		case OPT_FLUSH:
			o->flush = true;
			break;
		default:
			hook_usage(stderr);
			return EXIT_USAGE;
		}
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
	if (o->nargs != 0 && o->nargs != 3) {
		log_error("expected no arguments or three (OLDREV NEWREV REFNAME), got %d",
			  o->nargs);
		return EXIT_USAGE;
	}
	if (o->flush && o->nargs) {
		log_error("--flush takes no arguments");
		return EXIT_USAGE;
	}
	if (!o->flush && !o->nargs && isatty(0)) {
		log_error("ref updates are read from standard input, as git gives them to a "
			  "post-receive hook; see --help");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

/* Apply one setting; a bad one is reported and the default kept. */
static int hook_conf_apply(struct conf *c, const char *key, const char *value, const char *origin)
{
	int err = conf_set(c, key, value);

	/* a token is a secret: never quoted, not even a wrong one */
	if (err == -EINVAL && strcasecmp(key, "token") == 0)
		log_warning("%s is not a valid token; sending none", origin);
	else if (err == -EINVAL && strcasecmp(key, "tokenFile") == 0)
		log_warning("unable to read a token from %s '%s'; sending none", origin, value);
	else if (err == -EINVAL)
		log_warning("%s has an invalid value '%s', using the default", origin, value);
	else if (err == -ENOENT)
		log_debug("unknown setting %s, ignoring", origin);
	return err == -ENOMEM ? err : 0;
}

/* git config first, then the environment over it. 0 or -ENOMEM. */
static int hook_load_conf(struct conf *c, uint64_t deadline_us)
{
	static const struct {
		const char *key, *env;
	} vars[] = {
		{ "url", "GITPUBSUB_URL" },
		{ "timeout", "GITPUBSUB_TIMEOUT" },
		{ "maxCommits", "GITPUBSUB_MAXCOMMITS" },
		{ "tokenFile", "GITPUBSUB_TOKENFILE" },
		{ "token", "GITPUBSUB_TOKEN" },
	};
	struct jbuf raw = JBUF_INIT;
	const char *key, *value;
	size_t pos = 0;
	int err;

	err = repo_config(&raw, deadline_us);
	if (err < 0)
		log_debug("unable to read git config: %s, using defaults", strerror(-err));
	while (err == 0 && repo_config_next(&raw, &pos, &key, &value)) {
		char origin[64];

		(void)snprintf(origin, sizeof(origin), "gitpubsub.%s", key);
		err = hook_conf_apply(c, key, value, origin);
	}
	jbuf_free(&raw);
	if (err == -ENOMEM)
		return err;
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		value = getenv(vars[i].env);
		if (value && *value) {
			err = hook_conf_apply(c, vars[i].key, value, vars[i].env);
			if (err < 0)
				return err;
		}
	}
	return 0;
}

/* Read post-receive's standard input into updates. 0 or -errno. */
static int hook_read_updates(struct update **ret, size_t *ret_n)
{
	struct jbuf in = JBUF_INIT;
	struct update *v = NULL;
	size_t n = 0, cap = 0, bad = 0;
	const char *p, *end;
	int err = 0;

	for (;;) {
		ssize_t r;

		err = jbuf_reserve(&in, 4096);
		if (err < 0)
			goto out;
		r = io_read(0, in.data + in.len, in.cap - in.len - 1);
		if (r < 0) {
			err = (int)r;
			goto out;
		}
		if (r == 0)
			break;
		in.len += (size_t)r;
		in.data[in.len] = '\0';
		if (in.len > HOOK_MAX_STDIN) {
			err = -E2BIG;
			goto out;
		}
	}
	p = in.data;
	end = in.data + in.len;
	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		size_t len;

		if (eol > p && eol[-1] == '\r')
			eol--;
		len = (size_t)(eol - p);
		if (len) {
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				struct update *nv = realloc(v, ncap * sizeof(*nv));

				if (!nv) {
					err = -ENOMEM;
					goto out;
				}
				v = nv;
				cap = ncap;
			}
			err = update_parse(p, len, &v[n]);
			if (err == -ENOMEM)
				goto out;
			if (err < 0)
				bad++;
			else
				n++;
			err = 0;
		}
		p = nl ? nl + 1 : end;
	}
	if (bad)
		log_warning("ignored %zu line%s of input that %s not \"OLDREV NEWREV REFNAME\"",
			    bad, bad == 1 ? "" : "s", bad == 1 ? "is" : "are");
out:
	jbuf_free(&in);
	if (err < 0) {
		for (size_t i = 0; i < n; i++)
			update_free(&v[i]);
		free(v);
		return err;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/*
 * Deliver spool file name: 0 to go on with the next one, 1 to stop delivering (why is in st:
 * stop_err, or none when time ran out before sending), or the -errno of a spool failure.
 */
static int hook_deliver_file(struct spool *s, struct post *p, const char *name, struct jbuf *body,
			     uint64_t deadline_us, struct deliver_stats *st)
{
	char id[HOOK_MSGID_SIZE];
	uint64_t num;
	int err;

	err = spool_read(s, name, body);
	if (err == -ENOENT)
		return 0;
	if (err == -EFBIG) {
		/* no message of ours: set aside, so it does not block the rest */
		err = spool_reject(s, name);
		if (err == 0)
			st->unreadable++;
		return err;
	}
	if (err < 0)
		return err;
	if (io_now_mono_us() >= deadline_us)
		return 1; /* out of time before sending: say so, do not blame the server */
	/* the id comes from the spool entry alone, so a retry of this file sends the same one */
	if (hook_msgid_number(name, &num) < 0)
		num = 0; /* spool_list only lists numbered names; keep going if that changes */
	hook_msgid(num, body->data ? body->data : "", body->len, id);
	err = post_send(p, body->data ? body->data : "", body->len, id, deadline_us);
	if (err == 0) {
		err = spool_remove(s, name);
		if (err == 0)
			st->sent++;
		return err;
	}
	if (err == -EBADMSG) {
		/* refused for good: set aside, so it does not block the rest */
		st->refused_status = p->status;
		err = spool_reject(s, name);
		if (err == 0)
			st->refused++;
		return err;
	}
	st->stop_err = err;
	return 1;
}

/* Send the spool, oldest first, under the delivery lock. */
static void hook_deliver_spool(struct spool *s, struct post *p, uint64_t deadline_us,
			       struct deliver_stats *st)
{
	struct jbuf body = JBUF_INIT;
	int r = 0;

	r = spool_lock_delivery(s, deadline_us);
	if (r == -ETIMEDOUT) {
		st->busy = true;
		return;
	}
	/* list again after each pass: another run may have queued messages meanwhile */
	while (r == 0) {
		struct spool_names names;

		r = spool_list(s, &names);
		if (r < 0)
			break;
		if (names.n == 0)
			r = 1;
		for (size_t i = 0; i < names.n && r == 0; i++)
			r = hook_deliver_file(s, p, names.v[i], &body, deadline_us, st);
		spool_names_free(&names);
	}
	if (r < 0) {
		st->no_spool = true;
		st->spool_err = r;
	}
	spool_unlock_delivery(s);
	jbuf_free(&body);
}

/* Send messages that could not be spooled, straight from memory: all we can still do. */
static void hook_deliver_direct(struct post *p, char *const msgs[], size_t n, uint64_t deadline_us,
				struct deliver_stats *st)
{
	/* these have no spool number: number them by time, as spool_add would have */
	const uint64_t num = io_now_real_us();

	for (size_t i = 0; i < n; i++) {
		char id[HOOK_MSGID_SIZE];
		int err;

		hook_msgid(num + i, msgs[i], strlen(msgs[i]), id);
		err = st->stop_err ? st->stop_err
				   : post_send(p, msgs[i], strlen(msgs[i]), id, deadline_us);

		if (err == 0) {
			st->sent++;
			continue;
		}
		if (!st->stop_err && err != -EBADMSG)
			st->stop_err = err;
		st->lost++;
	}
}

/* The one line the person pushing reads (or, for --flush, the cron mail). */
static void hook_report(const struct deliver_stats *st, const struct post *p, const struct spool *s,
			const char *git_dir, bool flush)
{
	if (st->unreadable)
		log_warning("%zu file%s in %s %s not a message; moved to %s/" SPOOL_BASE_DIR
			    "/" SPOOL_REJECTED_DIR,
			    st->unreadable, st->unreadable == 1 ? "" : "s", s->path,
			    st->unreadable == 1 ? "was" : "were", git_dir);
	if (st->refused)
		log_warning("the server refused %zu message%s (HTTP %ld); %s kept in "
			    "%s/" SPOOL_BASE_DIR "/" SPOOL_REJECTED_DIR,
			    st->refused, st->refused == 1 ? "" : "s", st->refused_status,
			    st->refused == 1 ? "it is" : "they are", git_dir);
	if (st->lost)
		log_warning("%zu message%s could not be queued (%s) nor sent (%s): %s lost",
			    st->lost, st->lost == 1 ? "" : "s", strerror(-st->spool_err),
			    st->stop_err ? post_strerror(p, st->stop_err) : "refused",
			    st->lost == 1 ? "it is" : "they are");
	if (st->left) {
		const char *why = "time ran out";

		if (st->no_post)
			why = st->bad_url ? "gitpubsub.url is not an http:// or https:// URL"
					  : "libcurl could not be set up";
		else if (st->busy)
			why = "another push is still sending";
		else if (st->stop_err)
			why = post_strerror(p, st->stop_err);

		log_warning("%s; %zu message%s queued and will be sent %s", why, st->left,
			    st->left == 1 ? " is" : "s are",
			    flush ? "by the next push or --flush" : "with the next push");
	}
}

/* Print messages for --dry-run. 0 or -errno. */
static int hook_print(char *const msgs[], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fputs(msgs[i], stdout) == EOF || putchar('\n') == EOF)
			return -EIO;
	return fflush(stdout) == EOF ? -EIO : 0;
}

/* --dry-run --flush: show the spool, oldest first, without sending or removing anything. */
static int hook_print_spool(const char *git_dir)
{
	struct jbuf body = JBUF_INIT;
	struct spool_names names;
	struct spool s;
	int err;

	err = spool_open(&s, git_dir, false);
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	err = spool_list(&s, &names);
	for (size_t i = 0; err == 0 && i < names.n; i++) {
		err = spool_read(&s, names.v[i], &body);
		if (err == -ENOENT) {
			err = 0;
			continue;
		}
		if (err == 0 &&
		    (fwrite(body.data, 1, body.len, stdout) != body.len || putchar('\n') == EOF))
			err = -EIO;
	}
	if (err == 0 && fflush(stdout) == EOF)
		err = -EIO;
	spool_names_free(&names);
	jbuf_free(&body);
	spool_close(&s);
	return err;
}

/* Everything one run holds, released by hook_run_free(). */
struct hook_run {
	struct hook_opts opts;
	uint64_t start, deadline;
	struct conf conf;
	struct repo repo;
	char *url;
	struct update *updates;
	size_t nupdates;
	struct push_stats pst;
	struct msg_list msgs;
	size_t spooled; /* the first msgs.n of msgs that are in the spool */
	struct spool spool;
	struct post post;
	struct deliver_stats st;
	bool have_spool, have_post, have_curl;
};

/* The repository, the settings and the URL: 0, or -1 after saying why. */
static int hook_setup(struct hook_run *h)
{
	int err;

	/* until the configured timeout is known, the default bounds finding the repository */
	h->deadline = h->start + (uint64_t)CONF_DEFAULT_TIMEOUT_MS * 1000;
	err = repo_open(&h->repo, h->deadline);
	if (err < 0) {
		if (err == -ENOENT)
			log_error("not inside a git repository");
		else if (err == -ENOEXEC)
			log_error("unable to run git: is it installed and on PATH?");
		else
			log_error("unable to find the git repository: %s", strerror(-err));
		return -1;
	}
	if (hook_load_conf(&h->conf, h->deadline) < 0) {
		log_error("out of memory");
		return -1;
	}
	h->deadline = h->start + h->conf.timeout_ms * 1000;
	h->url = conf_expand_url(h->conf.url, h->repo.project);
	if (!h->url) {
		log_error("out of memory");
		return -1;
	}
	return 0;
}

/* The ref updates, from the arguments or from stdin: EXIT_OK, or the exit status after saying
 * why. */
static int hook_get_updates(struct hook_run *h)
{
	int err;

	if (h->opts.nargs != 3) {
		err = hook_read_updates(&h->updates, &h->nupdates);
		if (err < 0) {
			log_error("unable to read the ref updates: %s", strerror(-err));
			return EXIT_RUNTIME;
		}
		return EXIT_OK;
	}
	h->updates = calloc(1, sizeof(*h->updates));
	if (!h->updates) {
		log_error("out of memory");
		return EXIT_RUNTIME;
	}
	err = update_set(&h->updates[0], h->opts.args[0], h->opts.args[1], h->opts.args[2]);
	if (err < 0) {
		log_error("'%s %s %s' is not a ref update (OLDREV NEWREV REFNAME)", h->opts.args[0],
			  h->opts.args[1], h->opts.args[2]);
		return EXIT_USAGE;
	}
	h->nupdates = 1;
	return EXIT_OK;
}

/* The messages of the push; what could not be read is warned about, not fatal. */
static void hook_build(struct hook_run *h)
{
	int err = push_build(&h->repo, h->updates, h->nupdates, h->conf.max_commits, &h->msgs,
			     &h->pst, h->deadline);

	if (err == -ETIMEDOUT)
		log_warning("reading the repository took longer than gitpubsub.timeout; "
			    "some commits were not published");
	else if (err < 0)
		log_warning("unable to read the repository (%s); some commits were not "
			    "published",
			    strerror(-err));
	if (h->pst.skipped)
		log_warning("could not read %zu of the pushed refs; nothing was published "
			    "for %s",
			    h->pst.skipped, h->pst.skipped == 1 ? "it" : "them");
}

/* Queue first, so that a message is on disk before any attempt to send it. */
static void hook_queue(struct hook_run *h)
{
	int err = spool_open(&h->spool, h->repo.git_dir, !h->opts.flush);

	if (err == 0) {
		h->have_spool = true;
		err = spool_add(&h->spool, h->msgs.v, h->msgs.n, &h->spooled, h->deadline);
	}
	if (err < 0 && !(h->opts.flush && err == -ENOENT)) {
		h->st.no_spool = true;
		h->st.spool_err = err;
	}
}

/* Send the spool, then what could not be spooled; count what is left. */
static void hook_send(struct hook_run *h)
{
	int err;

	h->have_curl = post_global_init() == 0;
	err = h->have_curl ? post_open(&h->post, h->url, h->conf.token) : -EIO;
	if (err < 0) {
		h->st.bad_url = err == -EINVAL;
		log_debug("unable to post: %s", strerror(-err));
		h->st.no_post = true;
		h->st.lost = h->msgs.n - h->spooled;
	} else {
		h->have_post = true;
		if (h->have_spool)
			hook_deliver_spool(&h->spool, &h->post, h->deadline, &h->st);
		hook_deliver_direct(&h->post, h->msgs.v + h->spooled, h->msgs.n - h->spooled,
				    h->deadline, &h->st);
		log_debug("sent %zu messages over %ld connection%s", h->st.sent, h->post.connects,
			  h->post.connects == 1 ? "" : "s");
	}
	if (h->have_spool) {
		struct spool_names left;

		if (spool_list(&h->spool, &left) == 0) {
			h->st.left = left.n;
			spool_names_free(&left);
		}
	}
}

static void hook_run_free(struct hook_run *h)
{
	if (h->have_post)
		post_close(&h->post);
	if (h->have_curl)
		post_global_cleanup();
	if (h->have_spool)
		spool_close(&h->spool);
	for (size_t i = 0; i < h->nupdates; i++)
		update_free(&h->updates[i]);
	free(h->updates);
	msg_list_free(&h->msgs);
	free(h->url);
	repo_close(&h->repo);
	conf_free(&h->conf);
}

/* The run after the options: its exit status. */
static int hook_run(struct hook_run *h)
{
	if (hook_setup(h) < 0)
		return EXIT_RUNTIME;
	if (h->opts.flush && h->opts.dry_run) {
		int err = hook_print_spool(h->repo.git_dir);

		if (err < 0)
			log_error("unable to read the spool: %s", strerror(-err));
		return err < 0 ? EXIT_RUNTIME : EXIT_OK;
	}
	if (!h->opts.flush) {
		int ret = hook_get_updates(h);

		if (ret != EXIT_OK)
			return ret;
		hook_build(h);
	}
	if (h->opts.dry_run)
		return hook_print(h->msgs.v, h->msgs.n) < 0 ? EXIT_RUNTIME : EXIT_OK;
	hook_queue(h);
	hook_send(h);
	hook_report(&h->st, &h->post, &h->spool, h->repo.git_dir, h->opts.flush);
	/* a push never fails because of us; --flush tells its caller what is left */
	if (h->opts.flush && (h->st.left || h->st.lost))
		return EXIT_RUNTIME;
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static struct hook_run h = {
		.spool = { .base_fd = -1, .dir_fd = -1, .deliver_fd = -1 },
	};
	struct sigaction ign = { .sa_handler = SIG_IGN };
	int ret;

	h.start = io_now_mono_us();
	log_open(PROG);
	/* a pusher who hangs up must not kill us halfway through writing the spool */
	(void)sigaction(SIGPIPE, &ign, NULL);
	git_set_show_errors(log_get_level() >= LOG_DEBUG);

	ret = hook_parse_args(argc, argv, &h.opts);
	if (ret != EXIT_OK || h.opts.done)
		return ret;
	if (conf_init(&h.conf) < 0) {
		log_error("out of memory");
		return EXIT_RUNTIME;
	}
	ret = hook_run(&h);
	hook_run_free(&h);
	return ret;
}
