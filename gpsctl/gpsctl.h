/* SPDX-License-Identifier: MIT */
#ifndef GPS_GPSCTL_H
#define GPS_GPSCTL_H

/*
 * What gpsctl's verbs share. Each verb (or group of verbs) has a file of its own; main.c holds
 * the table naming every verb, its usage and the options it takes, which --help, --list-verbs
 * and the dispatch all read. Adding a verb is one row there and one function here.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/config.h"
#include "shm/ring.h"
#include "shm/topic.h"

/* Where POSIX shared-memory objects live on Linux: shm_open("/x") is the file /dev/shm/x. */
#define SHM_DIR "/dev/shm"

/* Longest topic as a path: every stored byte may become a %XX escape. */
#define TOPIC_PATH_MAX (3u * TOPIC_MAX_BYTES + 2u)

/* The command line, as main() parsed it. */
struct options {
	const char *config_path;
	const char *ring_name;
	const char *runtime_dir;
	bool json;
	bool show_topic;
	bool prometheus;
	bool has_since, has_until, has_count;
	uint64_t since_us, until_us, count;
	const char *topic;
	char **args; /* the arguments of a verb that takes several (token) */
	int nargs;
};

/* One verb's view of the ring: the ring, where it reads, and what it was asked for. */
struct reader {
	struct ring r;		/* attached by main(), except for VERB_MAPS_ITSELF */
	struct ring_cursor cur; /* dump, tail, topics: the next message (shm/ring.h reader) */
	const char *name;
	const struct options *o;
	const struct config *cfg; /* the configuration file's settings */
	const struct topic_pattern *pat;
	uint64_t printed; /* messages printed (gap notices not counted) */
	bool gaps_to_log; /* topics: a gap is a warning, not a line of the table */
	uint8_t *buf;	  /* the copy of the current record: topic then payload; main() frees */
	size_t cap;
};

/* Set by SIGINT and SIGTERM while tail runs. */
extern volatile sig_atomic_t gpsctl_stop;

/* The verbs: each returns gpsctl's exit status (0, 1; usage errors are main()'s). */
int gpsctl_status(struct reader *rd);
int gpsctl_stats(struct reader *rd);
int gpsctl_check(struct reader *rd);
int gpsctl_dump(struct reader *rd);
int gpsctl_tail(struct reader *rd);
int gpsctl_topics(struct reader *rd);
int gpsctl_token(struct reader *rd);
/* check's part for [Clients] tokensFile (token.c): 0 when it loads clean or is not set, 1 after
 * saying what is wrong. */
int gpsctl_check_tokens(const struct reader *rd);

/* Output helpers (util.c). Times are microseconds since the epoch. */
void gpsctl_print_unix_us(FILE *f, uint64_t us);
void gpsctl_format_iso(char *buf, size_t len, uint64_t us);
void gpsctl_print_json_string(FILE *f, const char *s, size_t len);
void gpsctl_print_json_time(FILE *f, uint64_t us);
/* TIME of --since and --until (see --help): 0 or -EINVAL. */
_must_check_ int gpsctl_parse_time(const char *s, uint64_t *ret_us);
/* Log why ring 'name' or its statistics object is refused (-EPERM, shm/ring.h section 1). */
void gpsctl_log_refusal(const char *name);
/* "/dev/shm/<name without its slash>" into buf: 0 or -ENAMETOOLONG. */
_must_check_ int gpsctl_ring_file(const char *name, char *buf, size_t len);
/* The pid holding the ring's writer lock, 0 if none (util.c): 0 or -errno. */
_must_check_ int gpsctl_writer_lock_holder(const char *name, pid_t *ret_pid);

#endif
