/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/log.h"
#include "common/trust.h"

/*
 * Longest line, newline excluded. The longest legitimate value is trustedPeers (4095 bytes in
 * struct config), so twice that leaves room for the key and spacing while still catching a
 * binary or runaway file early.
 */
#define CONFIG_LINE_MAX 8192

/* Longest section name kept for messages; every known one is far shorter. */
#define CONFIG_SECTION_MAX 64

/* How much of a bad value a message quotes: enough to recognise it, short enough to read. */
#define CONFIG_QUOTE_MAX 80

/*
 * Fractional digits a duration may have ("1.5s"). Nine keeps digits * 86400000 (a day in ms)
 * far inside uint64_t, and nobody writes a finer fraction than a nanosecond.
 */
#define CONFIG_FRACTION_DIGITS_MAX 9

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

#define MS_PER_S UINT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define MS_PER_D (24 * MS_PER_H)

enum config_type {
	CONFIG_STRING,	    /* free text, non-empty, fits the field */
	CONFIG_PORT,	    /* uint32_t, 1-65535 */
	CONFIG_PEERS,	    /* text checked with trust_parse() */
	CONFIG_SIZE32,	    /* uint32_t size, > 0 */
	CONFIG_SIZE64,	    /* uint64_t size, > 0 */
	CONFIG_COUNT32,	    /* uint32_t plain decimal, > 0 */
	CONFIG_DURATION_MS, /* uint32_t milliseconds, > 0 */
	CONFIG_DURATION_S,  /* uint64_t seconds, >= 1 s */
	CONFIG_DURATION_S0, /* uint64_t seconds, 0 allowed (a feature turned off) */
	CONFIG_RING,	    /* shm object name: "/name", no other '/' */
	CONFIG_PATH,	    /* socket path: non-empty, fits sun_path */
	CONFIG_HEADER,	    /* a response header's value: printable ASCII, may be empty */
	CONFIG_COUNT32_0,   /* uint32_t plain decimal, 0 allowed ("as many as fit") */
	CONFIG_MODE,	    /* [Frontend] mode: "multiplexed" or "per-connection" */
};

struct config_key {
	const char *section;
	const char *key;
	enum config_type type;
	size_t offset;
	size_t size;
};

#define CONFIG_KEY(sec, name, t, field)                         \
	{                                                       \
		.section = (sec), .key = (name), .type = (t),   \
		.offset = offsetof(struct config, field),       \
		.size = sizeof(((struct config *)NULL)->field), \
	}

/* Every key of PROTOCOL 9 and config.h; the canonical spelling is the one shown in messages. */
static const struct config_key config_keys[] = {
	CONFIG_KEY("Server", "port", CONFIG_PORT, port),
	CONFIG_KEY("Server", "IP", CONFIG_STRING, listen_ip),
	CONFIG_KEY("Clients", "trustedPeers", CONFIG_PEERS, trusted_peers),
	CONFIG_KEY("Clients", "publishOrigins", CONFIG_HEADER, publish_origins),
	CONFIG_KEY("Clients", "tokensFile", CONFIG_HEADER, tokens_file),
	CONFIG_KEY("Clients", "proxies", CONFIG_PEERS, proxies),
	CONFIG_KEY("Limits", "maxBodySize", CONFIG_SIZE64, max_body),
	CONFIG_KEY("Limits", "maxTargetSize", CONFIG_SIZE32, max_target),
	CONFIG_KEY("Limits", "maxHeaderSize", CONFIG_SIZE32, max_header),
	CONFIG_KEY("Limits", "maxHeaderLines", CONFIG_COUNT32, max_header_lines),
	CONFIG_KEY("Limits", "headerTimeout", CONFIG_DURATION_MS, header_timeout_ms),
	CONFIG_KEY("Limits", "bodyTimeout", CONFIG_DURATION_MS, body_timeout_ms),
	CONFIG_KEY("Stream", "keepalive", CONFIG_DURATION_MS, keepalive_ms),
	CONFIG_KEY("Stream", "sendTimeout", CONFIG_DURATION_MS, send_timeout_ms),
	CONFIG_KEY("Stream", "allowOrigin", CONFIG_HEADER, allow_origin),
	CONFIG_KEY("History", "retention", CONFIG_DURATION_S, retention_s),
	CONFIG_KEY("History", "ringSize", CONFIG_SIZE64, ring_size),
	CONFIG_KEY("History", "ring", CONFIG_RING, ring_name),
	CONFIG_KEY("History", "ringOwner", CONFIG_HEADER, ring_owner),
	CONFIG_KEY("History", "messageIdWindow", CONFIG_DURATION_S0, msgid_window_s),
	CONFIG_KEY("Broker", "socket", CONFIG_PATH, socket_path),
	CONFIG_KEY("Frontend", "mode", CONFIG_MODE, frontend_mode),
	CONFIG_KEY("Frontend", "workers", CONFIG_COUNT32_0, workers),
	CONFIG_KEY("Frontend", "maxConnections", CONFIG_COUNT32_0, max_connections),
	CONFIG_KEY("Frontend", "trustedReserve", CONFIG_COUNT32_0, trusted_reserve),
	CONFIG_KEY("Cluster", "nats", CONFIG_HEADER, nats),
	CONFIG_KEY("Cluster", "stream", CONFIG_STRING, stream),
	CONFIG_KEY("Cluster", "replicas", CONFIG_COUNT32, replicas),
	CONFIG_KEY("Cluster", "publishTimeout", CONFIG_DURATION_MS, publish_timeout_ms),
	CONFIG_KEY("Cluster", "credentials", CONFIG_HEADER, credentials),
	CONFIG_KEY("Cluster", "tlsCA", CONFIG_HEADER, tls_ca),
	CONFIG_KEY("Cluster", "tlsCert", CONFIG_HEADER, tls_cert),
	CONFIG_KEY("Cluster", "tlsKey", CONFIG_HEADER, tls_key),
};

struct config_suffix {
	const char *name;
	uint64_t mult;
};

/* Size suffixes, matched case-insensitively: "64k" is as clear as "64K". */
static const struct config_suffix size_suffixes[] = {
	{ "", 1 },	{ "K", KIB }, { "KiB", KIB }, { "M", MIB },
	{ "MiB", MIB }, { "G", GIB }, { "GiB", GIB },
};

/* Duration units, matched exactly: "m" is minutes, and "M" could be read as months. */
static const struct config_suffix duration_units[] = {
	{ "", MS_PER_S },  { "ms", 1 },	      { "s", MS_PER_S },
	{ "m", MS_PER_M }, { "h", MS_PER_H }, { "d", MS_PER_D },
};

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	(void)snprintf(c->listen_ip, sizeof(c->listen_ip), "%s", "127.0.0.1");
	c->port = 2069;
	(void)snprintf(c->trusted_peers, sizeof(c->trusted_peers), "%s", "127.0.0.1 ::1");
	c->max_body = 2 * MIB;
	c->max_target = 8 * 1024;
	c->max_header = 16 * 1024;
	c->max_header_lines = 100;
	c->header_timeout_ms = 10 * 1000;
	c->body_timeout_ms = 30 * 1000;
	c->keepalive_ms = 5 * 1000;
	c->send_timeout_ms = 60 * 1000;
	/* subscriptions are public (anyone may GET), so any page may read them by default */
	(void)snprintf(c->allow_origin, sizeof(c->allow_origin), "%s", "*");
	c->retention_s = UINT64_C(48) * 3600;
	c->ring_size = 64 * MIB;
	c->msgid_window_s = UINT64_C(10) * 60;
	(void)snprintf(c->ring_name, sizeof(c->ring_name), "%s", CONFIG_DEFAULT_RING);
	(void)snprintf(c->socket_path, sizeof(c->socket_path), "%s", CONFIG_DEFAULT_SOCKET);
	(void)snprintf(c->frontend_mode, sizeof(c->frontend_mode), "%s", "multiplexed");
	c->trusted_reserve = 64;
	(void)snprintf(c->stream, sizeof(c->stream), "%s", "GITPUBSUB");
	c->replicas = 3;
	c->publish_timeout_ms = 5 * 1000;
}

/* Leading decimal digits of *ps into *ret, advancing *ps. At least one digit; no overflow. */
_must_check_ static int config_parse_digits(const char **ps, uint64_t *ret)
{
	const char *p = *ps;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return -EINVAL;
	}
	*ps = p;
	*ret = v;
	return 0;
}

int config_parse_size(const char *s, uint64_t *ret)
{
	const char *p = s;
	uint64_t v, out;

	/* own digit loop: strtoull would take leading spaces, a sign and "0x" */
	if (!s || config_parse_digits(&p, &v) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(size_suffixes); i++) {
		if (strcasecmp(p, size_suffixes[i].name) != 0)
			continue;
		if (__builtin_mul_overflow(v, size_suffixes[i].mult, &out))
			return -EINVAL;
		*ret = out;
		return 0;
	}
	return -EINVAL;
}

int config_parse_duration_ms(const char *s, uint64_t *ret)
{
	const char *p = s;
	uint64_t whole, frac = 0, scale = 1, out, frac_ms;

	if (!s || config_parse_digits(&p, &whole) < 0)
		return -EINVAL;
	if (*p == '.') {
		const char *f = ++p;

		if (config_parse_digits(&p, &frac) < 0 || p - f > CONFIG_FRACTION_DIGITS_MAX)
			return -EINVAL;
		for (; f < p; f++)
			scale *= 10;
	}
	for (size_t i = 0; i < ARRAY_SIZE(duration_units); i++) {
		uint64_t unit = duration_units[i].mult;

		if (strcmp(p, duration_units[i].name) != 0)
			continue;
		/* a fraction finer than a millisecond ("1.0005s", "0.5ms") cannot be held */
		if (frac * unit % scale != 0)
			return -EINVAL;
		frac_ms = frac * unit / scale;
		if (__builtin_mul_overflow(whole, unit, &out) ||
		    __builtin_add_overflow(out, frac_ms, &out))
			return -EINVAL;
		*ret = out;
		return 0;
	}
	return -EINVAL;
}

/* Strip leading and trailing whitespace (CR of a CRLF file included) in place. */
static char *config_trim(char *s)
{
	size_t len;

	while (isspace((unsigned char)*s))
		s++;
	len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

static const struct config_key *config_find_key(const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(config_keys); i++)
		if (strcasecmp(config_keys[i].section, section) == 0 &&
		    strcasecmp(config_keys[i].key, key) == 0)
			return &config_keys[i];
	return NULL;
}

static void config_bad_value(const char *path, unsigned line, const struct config_key *k,
			     const char *value, const char *why)
{
	log_error("%s:%u: invalid value '%.*s' for key '%s' in section '[%s]': %s", path, line,
		  CONFIG_QUOTE_MAX, value, k->key, k->section, why);
}

static void config_set_u32(struct config *c, const struct config_key *k, uint64_t v)
{
	uint32_t v32 = (uint32_t)v;

	memcpy((char *)c + k->offset, &v32, sizeof(v32));
}

static void config_set_u64(struct config *c, const struct config_key *k, uint64_t v)
{
	memcpy((char *)c + k->offset, &v, sizeof(v));
}

static void config_set_string(struct config *c, const struct config_key *k, const char *v)
{
	/* callers checked strlen(v) < k->size */
	memcpy((char *)c + k->offset, v, strlen(v) + 1);
}

/*
 * One setter per type of value: check value against k, store it in c and return 0, or return
 * -EINVAL with the reason in why[0..len) and c untouched.
 */
typedef int (*config_setter)(struct config *c, const struct config_key *k, const char *value,
			     char *why, size_t len);

/* Whether value fits k's field, terminator included; if not, why says so. */
static bool config_fits(const struct config_key *k, const char *value, char *why, size_t len)
{
	if (strlen(value) < k->size)
		return true;
	(void)snprintf(why, len, "longer than %zu bytes", k->size - 1);
	return false;
}

static int config_set_text(struct config *c, const struct config_key *k, const char *value,
			   char *why, size_t len)
{
	if (*value == '\0') {
		(void)snprintf(why, len, "empty");
		return -EINVAL;
	}
	if (!config_fits(k, value, why, len))
		return -EINVAL;
	config_set_string(c, k, value);
	return 0;
}

static int config_set_ring(struct config *c, const struct config_key *k, const char *value,
			   char *why, size_t len)
{
	if (!config_fits(k, value, why, len))
		return -EINVAL;
	/* shm_open(3): portable names are one '/' and then at least one other byte */
	if (value[0] != '/' || strlen(value) < 2 || strchr(value + 1, '/')) {
		(void)snprintf(why, len,
			       "a ring name is '/' and a name without '/', like '/gitpubsub'");
		return -EINVAL;
	}
	config_set_string(c, k, value);
	return 0;
}

static int config_set_header(struct config *c, const struct config_key *k, const char *value,
			     char *why, size_t len)
{
	if (!config_fits(k, value, why, len))
		return -EINVAL;
	/* it is sent as it is in a response head: nothing that could end or split a line */
	for (const char *p = value; *p; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			(void)snprintf(why, len, "only printable ASCII may be sent in a header");
			return -EINVAL;
		}
	}
	config_set_string(c, k, value);
	return 0;
}

static int config_set_peers(struct config *c, const struct config_key *k, const char *value,
			    char *why, size_t len)
{
	struct trust peers;

	if (!config_fits(k, value, why, len))
		return -EINVAL;
	/* refuse a bad list now, at start-up, rather than when a peer first publishes */
	if (trust_parse(value, &peers, why, len) < 0)
		return -EINVAL;
	config_set_string(c, k, value);
	return 0;
}

/* A plain decimal number in [min, max]; message is the reason given otherwise. */
static int config_set_number(struct config *c, const struct config_key *k, const char *value,
			     uint64_t min, uint64_t max, const char *message, char *why, size_t len)
{
	const char *p = value;
	uint64_t v;

	if (config_parse_digits(&p, &v) < 0 || *p != '\0' || v < min || v > max) {
		(void)snprintf(why, len, "%s", message);
		return -EINVAL;
	}
	config_set_u32(c, k, v);
	return 0;
}

static int config_set_port(struct config *c, const struct config_key *k, const char *value,
			   char *why, size_t len)
{
	return config_set_number(c, k, value, 1, 65535, "a port is a number from 1 to 65535", why,
				 len);
}

static int config_set_count(struct config *c, const struct config_key *k, const char *value,
			    char *why, size_t len)
{
	return config_set_number(c, k, value, 1, UINT32_MAX,
				 "expected a number from 1 to 4294967295", why, len);
}

static int config_set_count0(struct config *c, const struct config_key *k, const char *value,
			     char *why, size_t len)
{
	return config_set_number(c, k, value, 0, UINT32_MAX,
				 "expected a number from 0 to 4294967295", why, len);
}

static int config_set_mode(struct config *c, const struct config_key *k, const char *value,
			   char *why, size_t len)
{
	if (strcmp(value, "multiplexed") != 0 && strcmp(value, "per-connection") != 0) {
		(void)snprintf(why, len, "expected 'multiplexed' or 'per-connection'");
		return -EINVAL;
	}
	config_set_string(c, k, value);
	return 0;
}

static int config_set_size(struct config *c, const struct config_key *k, const char *value,
			   char *why, size_t len)
{
	bool small = k->type == CONFIG_SIZE32;
	uint64_t v;

	if (config_parse_size(value, &v) < 0) {
		(void)snprintf(why, len, "expected a size like '65536', '64K', '2M' or '1GiB'");
		return -EINVAL;
	}
	if (v == 0 || (small && v > UINT32_MAX)) {
		(void)snprintf(why, len, "%s",
			       small ? "must be from 1 byte to 4G - 1" : "must be at least 1 byte");
		return -EINVAL;
	}
	if (small)
		config_set_u32(c, k, v);
	else
		config_set_u64(c, k, v);
	return 0;
}

static int config_set_duration(struct config *c, const struct config_key *k, const char *value,
			       char *why, size_t len)
{
	uint64_t v;

	if (config_parse_duration_ms(value, &v) < 0) {
		(void)snprintf(why, len,
			       "expected a duration like '5', '250ms', '5s', '10m', '48h' or '2d'");
		return -EINVAL;
	}
	if (k->type == CONFIG_DURATION_MS) {
		if (v == 0 || v > UINT32_MAX) {
			(void)snprintf(why, len, "must be from 1ms to 49 days");
			return -EINVAL;
		}
		config_set_u32(c, k, v);
		return 0;
	}
	/* retention is kept in whole seconds; a fraction of one is dropped */
	if (k->type == CONFIG_DURATION_S0 && v != 0 && v < MS_PER_S) {
		(void)snprintf(why, len, "must be 0 (off) or at least 1s");
		return -EINVAL;
	}
	if (k->type == CONFIG_DURATION_S && v < MS_PER_S) {
		(void)snprintf(why, len, "must be at least 1s");
		return -EINVAL;
	}
	config_set_u64(c, k, v / MS_PER_S);
	return 0;
}

static const config_setter config_setters[] = {
	[CONFIG_STRING] = config_set_text,	   [CONFIG_PATH] = config_set_text,
	[CONFIG_RING] = config_set_ring,	   [CONFIG_HEADER] = config_set_header,
	[CONFIG_PEERS] = config_set_peers,	   [CONFIG_PORT] = config_set_port,
	[CONFIG_COUNT32] = config_set_count,	   [CONFIG_SIZE32] = config_set_size,
	[CONFIG_SIZE64] = config_set_size,	   [CONFIG_DURATION_MS] = config_set_duration,
	[CONFIG_DURATION_S] = config_set_duration, [CONFIG_DURATION_S0] = config_set_duration,
	[CONFIG_COUNT32_0] = config_set_count0,	   [CONFIG_MODE] = config_set_mode,
};

_Static_assert(ARRAY_SIZE(config_setters) == CONFIG_MODE + 1, "a setter for every type");

/*
 * Check value against k's type and store it in c. A bad value is logged and leaves c alone:
 * the field keeps its default or earlier value. 0 or -EINVAL.
 */
_must_check_ static int config_set(struct config *c, const char *path, unsigned line,
				   const struct config_key *k, const char *value)
{
	char why[160];

	if (config_setters[k->type](c, k, value, why, sizeof(why)) == 0)
		return 0;
	/* trust_parse's reason quotes the bad entry itself; a list too long is quoted here */
	if (k->type == CONFIG_PEERS && strlen(value) < k->size)
		log_error("%s:%u: invalid value for key '%s' in section '[%s]': %s", path, line,
			  k->key, k->section, why);
	else
		config_bad_value(path, line, k, value, why);
	return -EINVAL;
}

/* Where config_load is between lines. */
struct config_state {
	const char *path;
	unsigned line;
	enum {
		CONFIG_NO_SECTION,  /* before the first header */
		CONFIG_IN_SECTION,  /* after a good header */
		CONFIG_BAD_SECTION, /* after a malformed header, already reported */
	} where;
	char section[CONFIG_SECTION_MAX];
};

/* A "[Section]" line (s trimmed, s[0] == '['). 0 or -EINVAL, logged. */
_must_check_ static int config_section(struct config_state *st, char *s)
{
	size_t len = strlen(s);
	char *name;

	if (s[len - 1] != ']') {
		log_error("%s:%u: malformed section header '%.*s': missing ']'", st->path, st->line,
			  CONFIG_QUOTE_MAX, s);
		st->where = CONFIG_BAD_SECTION;
		return -EINVAL;
	}
	s[len - 1] = '\0';
	name = config_trim(s + 1);
	if (*name == '\0' || strpbrk(name, "[]")) {
		log_error("%s:%u: malformed section header '[%.*s]'", st->path, st->line,
			  CONFIG_QUOTE_MAX, name);
		st->where = CONFIG_BAD_SECTION;
		return -EINVAL;
	}
	if (strlen(name) >= sizeof(st->section)) {
		log_error("%s:%u: section name '%.*s' too long", st->path, st->line,
			  CONFIG_QUOTE_MAX, name);
		st->where = CONFIG_BAD_SECTION;
		return -EINVAL;
	}
	memcpy(st->section, name, strlen(name) + 1);
	st->where = CONFIG_IN_SECTION;
	return 0;
}

/* One "key: value" or "key = value" line (s trimmed, not empty). 0 or -EINVAL, logged. */
_must_check_ static int config_assignment(struct config_state *st, char *s, struct config *c)
{
	const struct config_key *k;
	char *sep = strpbrk(s, ":="), *key, *value;
	char sepc;

	if (!sep) {
		log_error("%s:%u: malformed line '%.*s': expected 'key: value' or 'key = value'",
			  st->path, st->line, CONFIG_QUOTE_MAX, s);
		return -EINVAL;
	}
	sepc = *sep;
	*sep = '\0';
	key = config_trim(s);
	value = config_trim(sep + 1);
	if (*key == '\0') {
		log_error("%s:%u: malformed line: no key before '%c'", st->path, st->line, sepc);
		return -EINVAL;
	}

	switch (st->where) {
	case CONFIG_NO_SECTION:
		log_error("%s:%u: key '%.*s' outside any section", st->path, st->line,
			  CONFIG_QUOTE_MAX, key);
		return -EINVAL;
	case CONFIG_BAD_SECTION:
		return 0; /* the header was reported; its keys would only add noise */
	case CONFIG_IN_SECTION:
		break;
	}

	k = config_find_key(st->section, key);
	if (!k) {
		log_warning("%s:%u: unknown key '%.*s' in section '[%s]', ignoring", st->path,
			    st->line, CONFIG_QUOTE_MAX, key, st->section);
		return 0;
	}
	return config_set(c, st->path, st->line, k, value);
}

int config_getline(FILE *f, char **buf, size_t *cap, size_t *ret_len)
{
	ssize_t n;
	size_t len;

	errno = 0;
	n = getline(buf, cap, f);
	if (n < 0)
		return feof(f) ? 0 : errno ? -errno : -EIO;
	len = (size_t)n;
	while (len > 0 && ((*buf)[len - 1] == '\n' || (*buf)[len - 1] == '\r'))
		(*buf)[--len] = '\0';
	*ret_len = len;
	return 1;
}

int config_load(const char *path, struct config *c)
{
	struct config_state st = { .path = path, .where = CONFIG_NO_SECTION };
	char *buf = NULL;
	size_t cap = 0;
	FILE *f;
	int ret = 0;

	f = fopen(path, "re");
	if (!f)
		return -errno; /* the caller decides whether a missing file is worth a word */

	for (;;) {
		size_t len = 0;
		char *s;
		int got = config_getline(f, &buf, &cap, &len);

		if (got <= 0) {
			ret = got < 0 ? got : ret;
			break;
		}
		st.line++;
		if (memchr(buf, '\0', len)) {
			log_error("%s:%u: NUL byte in line", path, st.line);
			ret = -EINVAL;
			continue;
		}
		if (len > CONFIG_LINE_MAX) {
			log_error("%s:%u: line longer than %d bytes", path, st.line,
				  CONFIG_LINE_MAX);
			ret = -EINVAL;
			continue;
		}

		s = buf;
		/* a UTF-8 byte order mark, as some editors write, is not part of the first line */
		if (st.line == 1 && len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
			s += 3;
		s = config_trim(s);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			if (config_section(&st, s) < 0)
				ret = -EINVAL;
			continue;
		}
		if (config_assignment(&st, s, c) < 0)
			ret = -EINVAL;
	}

	free(buf);
	(void)fclose(f);
	return ret;
}

int config_read(const char *path, struct config *ret)
{
	const char *file = path ? path : CONFIG_DEFAULT_PATH;
	int err;

	config_defaults(ret);
	err = config_load(file, ret);
	if (err == -ENOENT && !path) {
		log_debug("no %s, using built-in defaults", file);
		return 0;
	}
	if (err == -EINVAL)
		log_error("invalid configuration '%s'", file);
	else if (err < 0)
		log_error("unable to read configuration '%s': %s", file, strerror(-err));
	return err;
}

void config_write(const struct config *c, FILE *f)
{
	fprintf(f,
		"[Server]\nport: %u\nIP: %s\n\n"
		"[Clients]\ntrustedPeers: %s\npublishOrigins: %s\ntokensFile: %s\nproxies: %s\n\n"
		"[Limits]\nmaxBodySize: %llu\nmaxTargetSize: %u\nmaxHeaderSize: %u\n"
		"maxHeaderLines: %u\nheaderTimeout: %ums\nbodyTimeout: %ums\n\n"
		"[Stream]\nkeepalive: %ums\nsendTimeout: %ums\nallowOrigin: %s\n\n"
		"[History]\nretention: %llus\nringSize: %llu\nring: %s\nringOwner: %s\n"
		"messageIdWindow: %llus\n\n"
		"[Broker]\nsocket: %s\n\n"
		"[Frontend]\nmode: %s\nworkers: %u\nmaxConnections: %u\ntrustedReserve: %u\n",
		c->port, c->listen_ip, c->trusted_peers, c->publish_origins, c->tokens_file,
		c->proxies, (unsigned long long)c->max_body, c->max_target, c->max_header,
		c->max_header_lines, c->header_timeout_ms, c->body_timeout_ms, c->keepalive_ms,
		c->send_timeout_ms, c->allow_origin, (unsigned long long)c->retention_s,
		(unsigned long long)c->ring_size, c->ring_name, c->ring_owner,
		(unsigned long long)c->msgid_window_s, c->socket_path, c->frontend_mode, c->workers,
		c->max_connections, c->trusted_reserve);
	if (c->nats[0]) /* one machine: the output stays what it was before clusters */
		fprintf(f,
			"\n[Cluster]\nnats: %s\nstream: %s\nreplicas: %u\npublishTimeout: %ums\n"
			"credentials: %s\ntlsCA: %s\ntlsCert: %s\ntlsKey: %s\n",
			c->nats, c->stream, c->replicas, c->publish_timeout_ms, c->credentials,
			c->tls_ca, c->tls_cert, c->tls_key);
}
