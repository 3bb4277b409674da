/* SPDX-License-Identifier: MIT */
/*
 * gpsctl: a read-only inspector of the history ring, for operators and scripts.
 *
 * It opens the ring O_RDONLY and maps it PROT_READ, exactly as a frontend does (shm/ring.h,
 * section 1), so nothing it does can change history or slow the broker down: it never takes a
 * lock, and it reads messages only through the reader of shm/ring.h. The statistics object is
 * mapped read-only too.
 *
 * This file holds the verb table (as git's commands[]), the options and the choice of ring;
 * each verb lives in its own file (gpsctl/gpsctl.h). Exit status: 0 success, 1 runtime failure
 * (no ring, invalid ring, check failed), 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "gpsctl/gpsctl.h"

/* The runtime directory's file naming the current broker (gitpubsub-run writes it). */
#define RUNTIME_PID_FILE "broker.pid"

/* What a verb accepts besides its name; anything else is a usage error, not ignored. */
enum {
	VERB_TOPIC = 1u << 0,	    /* [TOPIC] and --since */
	VERB_UNTIL = 1u << 1,	    /* --until */
	VERB_COUNT = 1u << 2,	    /* --topic and --count */
	VERB_PROMETHEUS = 1u << 3,  /* --prometheus */
	VERB_MAPS_ITSELF = 1u << 4, /* maps the ring itself: a ring attach refuses is its subject */
	VERB_NO_RING = 1u << 5,	    /* needs no ring; takes its own arguments (o->args) */
};

struct verb {
	const char *name;
	const char *help; /* its --help lines after the name column; more lines indented */
	unsigned flags;
	int (*run)(struct reader *rd);
};

/* Every verb: --help, --list-verbs and the dispatch read this table, and tests/50-gpsctl.bats
 * checks the README's and the man page's lists against --list-verbs. */
static const struct verb verbs[] = {
	{ "status",
	  "ring, size, messages and bytes held, oldest and newest message,\n"
	  "head, generation, broker pid and whether it runs, subscribers,\n"
	  "and the counters of PROTOCOL 6",
	  0, gpsctl_status },
	{ "stats", "the counters of PROTOCOL 6 (--prometheus: Prometheus text format)",
	  VERB_PROMETHEUS, gpsctl_stats },
	{ "check",
	  "validate the header, the index and every held record;\n"
	  "exit 1 and say what is wrong if anything is",
	  VERB_MAPS_ITSELF, gpsctl_check },
	{ "dump", "print the held messages matching TOPIC, one JSON text a line",
	  VERB_TOPIC | VERB_UNTIL | VERB_COUNT, gpsctl_dump },
	{ "tail", "follow the ring like a subscriber to TOPIC (Ctrl-C stops)",
	  VERB_TOPIC | VERB_COUNT, gpsctl_tail },
	{ "topics", "messages and bytes per topic over the held history, busiest first",
	  VERB_TOPIC | VERB_UNTIL, gpsctl_topics },
	{ "token",
	  "new PREFIX...: print a fresh publish token (once) and its\n"
	  "line for [Clients] tokensFile, scoped to those topic prefixes",
	  VERB_NO_RING, gpsctl_token },
};

/* Width of the verb column of --help. */
#define HELP_VERB_COLUMN 18

static void usage_verbs(FILE *f)
{
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		const struct verb *v = &verbs[i];
		const char *line = v->help;
		char name[HELP_VERB_COLUMN];
		int col;

		(void)snprintf(name, sizeof(name), "%s%s", v->name,
			       v->flags & VERB_TOPIC ? " [TOPIC]" : "");
		col = fprintf(f, "  %s", name);
		for (;;) {
			const char *nl = strchr(line, '\n');
			int len = nl ? (int)(nl - line) : (int)strlen(line);

			fprintf(f, "%*s%.*s\n", HELP_VERB_COLUMN + 2 - col, "", len, line);
			if (!nl)
				break;
			line = nl + 1;
			col = 0;
		}
	}
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: gpsctl [OPTIONS] COMMAND [TOPIC]\n"
		   "\n"
		   "Inspect a GitPubSub history ring, read-only.\n"
		   "\n"
		   "Commands:\n");
	usage_verbs(f);
	fprintf(f,
		"\n"
		"TOPIC is a subscription path with the server's matching rules (default \"/\": all).\n"
		"\n"
		"Options:\n"
		"  -r, --ring NAME        ring to inspect (default: [History] ring of the configuration,\n"
		"                         " CONFIG_DEFAULT_RING ")\n"
		"  -d, --runtime-dir DIR  inspect the ring written by the broker whose pid is in\n"
		"                         DIR/" RUNTIME_PID_FILE " (a gitpubsub-run instance)\n"
		"  -c, --config FILE      configuration file (default " CONFIG_DEFAULT_PATH ")\n"
		"  -j, --json             JSON output (tail and dump: one object per message)\n"
		"      --since TIME       dump, tail, topics: from the first message at or after TIME\n"
		"      --until TIME       dump, topics: stop before the first message at or after TIME\n"
		"  -t, --topic            dump, tail: prefix each message with its time and topic\n"
		"  -n, --count N          dump, tail: exit after N messages\n"
		"      --prometheus       stats: Prometheus text exposition format\n"
		"      --list-verbs       the commands, one a line\n"
		"  -h, --help             this text\n"
		"  -V, --version          the version\n"
		"\n"
		"TIME is a unix time (1795700000 or 1795700000.250000, as X-Fetch-Since), a UTC time\n"
		"(2026-11-26T16:27:06Z, a fraction allowed), 'now', or a duration before now (-10m, -2h).\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure (no ring, invalid ring, a failed check),\n"
		"2 usage error.\n");
}

/* Whether s ends with suffix. */
static bool ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/*
 * The ring written by the broker whose pid is in dir/broker.pid: every object in /dev/shm that
 * validates as a ring is looked at (read-only), and the one whose header names that pid is
 * chosen. 0 with the name ("/x") in buf, or -errno (-ESRCH: no ring names that broker).
 */
_must_check_ static int ring_from_runtime_dir(const char *dir, char *buf, size_t len)
{
	char path[PATH_MAX], line[32];
	unsigned long pid;
	struct dirent *de;
	int n, found = -ESRCH;
	char *end;
	FILE *f;
	DIR *d;

	n = snprintf(path, sizeof(path), "%s/" RUNTIME_PID_FILE, dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		(void)fclose(f);
		return -EINVAL;
	}
	(void)fclose(f);
	errno = 0;
	pid = strtoul(line, &end, 10);
	if (errno || end == line || (*end && *end != '\n') || pid == 0)
		return -EINVAL;

	d = opendir(SHM_DIR);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct ring r = { 0 };
		uint64_t writer;

		if (de->d_name[0] == '.' || ends_with(de->d_name, RING_STATS_SUFFIX))
			continue;
		n = snprintf(buf, len, "/%s", de->d_name);
		if (n < 0 || (size_t)n >= len || ring_attach(buf, &r) < 0)
			continue;
		writer = atomic_load_explicit(&r.hdr->broker_pid, memory_order_relaxed);
		ring_detach(&r);
		if (writer == pid) {
			found = 0;
			break;
		}
	}
	(void)closedir(d);
	return found;
}

/* The verbs that accept flag, as "dump, tail and topics", for usage errors. */
static const char *verbs_with(unsigned flag, char *buf, size_t len)
{
	size_t n = 0, k = 0, at = 0;

	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		n += (verbs[i].flags & flag) != 0;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(verbs) && at < len; i++) {
		if (!(verbs[i].flags & flag))
			continue;
		k++;
		at += (size_t)snprintf(buf + at, len - at, "%s%s",
				       k == 1	? ""
				       : k == n ? " and "
						: ", ",
				       verbs[i].name);
	}
	return buf;
}

/* Whether verb v takes the options and arguments given: 0, or -EINVAL after saying why. */
_must_check_ static int check_usage(const struct verb *v, const struct options *o, int nargs)
{
	char list[128];

	if (!(v->flags & VERB_NO_RING) && nargs > (v->flags & VERB_TOPIC ? 1 : 0)) {
		log_error("too many arguments for '%s'", v->name);
		return -EINVAL;
	}
	if (o->has_since && !(v->flags & VERB_TOPIC)) {
		log_error("--since applies to %s", verbs_with(VERB_TOPIC, list, sizeof(list)));
		return -EINVAL;
	}
	if (o->has_until && !(v->flags & VERB_UNTIL)) {
		log_error("--until applies to %s", verbs_with(VERB_UNTIL, list, sizeof(list)));
		return -EINVAL;
	}
	if (o->has_since && o->has_until && o->until_us < o->since_us) {
		log_error("--until is before --since");
		return -EINVAL;
	}
	if ((o->show_topic || o->has_count) && !(v->flags & VERB_COUNT)) {
		log_error("--topic and --count apply to %s",
			  verbs_with(VERB_COUNT, list, sizeof(list)));
		return -EINVAL;
	}
	if (o->prometheus && (!(v->flags & VERB_PROMETHEUS) || o->json)) {
		log_error("--prometheus applies to %s, without --json",
			  verbs_with(VERB_PROMETHEUS, list, sizeof(list)));
		return -EINVAL;
	}
	if (o->show_topic && o->json) {
		log_error("--topic and --json exclude each other (--json carries the topic)");
		return -EINVAL;
	}
	if (o->ring_name && o->runtime_dir) {
		log_error("--ring and --runtime-dir exclude each other");
		return -EINVAL;
	}
	return 0;
}

enum {
	OPT_SINCE = 0x100,
	OPT_UNTIL,
	OPT_PROMETHEUS,
	OPT_LIST_VERBS,
};

/* --list-verbs, --help or --version: what gpsctl says about itself. */
static void print_about(int opt)
{
	if (opt == 'h')
		usage(stdout);
	else if (opt == 'V')
		printf("gpsctl " GPS_VERSION "\n");
	else
		for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
			printf("%s\n", verbs[i].name);
}

/* Outcomes of parse_options() besides "go on" (-1): an exit status for main(). */
#define PARSE_GO_ON (-1)

/* --count N: 0 or -EINVAL. */
_must_check_ static int parse_count(const char *s, struct options *o)
{
	char *end;

	errno = 0;
	o->count = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-') {
		log_error("invalid --count '%s': a number of messages", s);
		return -EINVAL;
	}
	o->has_count = true;
	return 0;
}

/* --since or --until TIME into *ret_us, *ret_has: 0 or -EINVAL. */
_must_check_ static int parse_time_option(const char *name, const char *s, uint64_t *ret_us,
					  bool *ret_has)
{
	if (gpsctl_parse_time(s, ret_us) < 0) {
		log_error("invalid --%s '%s' (see gpsctl --help for TIME)", name, s);
		return -EINVAL;
	}
	*ret_has = true;
	return 0;
}

/* The options before the verb: PARSE_GO_ON, or the exit status when done (help, version,
 * usage error). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "ring", required_argument, NULL, 'r' },
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "topic", no_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
		{ "list-verbs", no_argument, NULL, OPT_LIST_VERBS },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int opt, err = 0;

	while ((opt = getopt_long(argc, argv, "c:r:d:jtn:hV", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->config_path = optarg;
			break;
		case 'r':
			o->ring_name = optarg;
			break;
		case 'd':
			o->runtime_dir = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 't':
			o->show_topic = true;
			break;
		case 'n':
			err = parse_count(optarg, o);
			break;
		case OPT_SINCE:
			err = parse_time_option("since", optarg, &o->since_us, &o->has_since);
			break;
		case OPT_UNTIL:
			err = parse_time_option("until", optarg, &o->until_us, &o->has_until);
			break;
		case OPT_PROMETHEUS:
			o->prometheus = true;
			break;
		case OPT_LIST_VERBS:
		case 'h':
		case 'V':
			print_about(opt);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
		if (err < 0)
			return 2;
	}
	return PARSE_GO_ON;
}

/* The verb named by argv[optind], its arguments and the topic pattern: the verb, or NULL
 * after a usage error. */
static const struct verb *parse_verb(int argc, char **argv, struct options *o,
				     struct topic_pattern *pat)
{
	const struct verb *v = NULL;

	if (optind >= argc) {
		log_error("no command given");
		usage(stderr);
		return NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (strcmp(argv[optind], verbs[i].name) == 0)
			v = &verbs[i];
	if (!v) {
		log_error("unknown command '%s'", argv[optind]);
		usage(stderr);
		return NULL;
	}
	optind++;
	if (check_usage(v, o, argc - optind) < 0)
		return NULL;
	if (v->flags & VERB_NO_RING) {
		o->args = argv + optind;
		o->nargs = argc - optind;
		return v;
	}
	if (optind < argc)
		o->topic = argv[optind];
	if (topic_pattern_parse(o->topic, strlen(o->topic), pat) < 0) {
		log_error("invalid topic '%s'", o->topic);
		return NULL;
	}
	return v;
}

/* The ring to inspect: --ring, the broker of --runtime-dir, or the configuration's. 0, or 1
 * after logging the failure. */
static int choose_ring(const struct options *o, struct reader *rd)
{
	static char found_name[NAME_MAX + 2];
	static struct config cfg;
	int err;

	if (config_read(o->config_path, &cfg) < 0)
		return 1;
	ring_set_owner(cfg.ring_owner); /* shm/ring.h section 1 */
	if (o->ring_name) {
		rd->name = o->ring_name;
	} else if (o->runtime_dir) {
		err = ring_from_runtime_dir(o->runtime_dir, found_name, sizeof(found_name));
		if (err < 0) {
			log_error("unable to find the ring of the broker in '%s': %s",
				  o->runtime_dir,
				  err == -ESRCH ? "no ring names its pid" : strerror(-err));
			return 1;
		}
		rd->name = found_name;
	} else {
		rd->name = cfg.ring_name;
	}
	rd->cfg = &cfg;
	return 0;
}

/* Attach the ring (unless the verb maps it itself) and run the verb: its exit status. */
static int run_verb(const struct verb *v, struct reader *rd)
{
	int err;

	if (v->flags & (VERB_MAPS_ITSELF | VERB_NO_RING))
		return v->run(rd);
	err = ring_attach(rd->name, &rd->r);
	if (err == -EPERM) {
		gpsctl_log_refusal(rd->name);
		return 1;
	}
	if (err < 0) {
		log_error("unable to attach ring '%s': %s", rd->name,
			  err == -ENOENT   ? "no such ring (has the broker ever run?)"
			  : err == -EPROTO ? "not a valid ring of this version (see gpsctl check)"
					   : strerror(-err));
		return 1;
	}
	return v->run(rd);
}

int main(int argc, char **argv)
{
	static struct topic_pattern pattern;
	struct options o = { .topic = "/" };
	struct reader rd = { .o = &o, .pat = &pattern };
	const struct verb *v;
	int rc;

	log_open(argv[0]);
	rc = parse_options(argc, argv, &o);
	if (rc != PARSE_GO_ON)
		return rc;
	v = parse_verb(argc, argv, &o, &pattern);
	if (!v)
		return 2;
	if (!(v->flags & VERB_NO_RING) && choose_ring(&o, &rd))
		return 1;
	rc = run_verb(v, &rd);
	ring_detach(&rd.r);
	free(rd.buf);
	if (fflush(stdout) != 0 && rc == 0)
		rc = 1;
	return rc;
}
