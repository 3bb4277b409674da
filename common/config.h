/* SPDX-License-Identifier: MIT */
#ifndef GPS_COMMON_CONFIG_H
#define GPS_COMMON_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "common/macro.h"

/*
 * The configuration file (PROTOCOL 9): INI-style, "[Section]" headers, "key: value" or
 * "key = value", '#' and ';' comment lines. Section and key names are case-insensitive.
 * Every program reads the same file; the README documents every key.
 *
 *   [Server]   port (1-65535), IP (listen address)                          compat
 *   [Clients]  trustedPeers (whitespace-separated list, see common/trust.h)  compat
 *              publishOrigins (whitespace-separated web origins; default none)
 *              tokensFile (path of the publish tokens, common/tokens.h; default none)
 *              proxies (the addresses reverse proxies connect from, as trustedPeers; default
 *              none; read only by gpsctl check, which warns when a trusted entry covers one)
 *   [Limits]   maxBodySize, maxTargetSize, maxHeaderSize (sizes),
 *              maxHeaderLines (count), headerTimeout, bodyTimeout (durations)
 *   [Stream]   keepalive, sendTimeout (durations), allowOrigin (header value, may be empty)
 *   [History]  retention (duration), ringSize (size), ring (shm object name, "/name"),
 *              ringOwner (a user, by name or uid, whose ring readers also trust: shm/ring.h
 *              section 1; default none: only their own user's and root's),
 *              messageIdWindow (duration, 0 turns it off)
 *   [Broker]   socket (path of the broker's local socket)
 *   [Frontend] mode ("multiplexed" or "per-connection": what a frontend given a listening
 *              socket does), workers, maxConnections (counts; 0: one per CPU, as many as
 *              the file limit allows), trustedReserve (count kept for trustedPeers)
 *   [Cluster]  nats (NATS server URLs, comma-separated; empty: single machine), stream (name),
 *              replicas (count), publishTimeout (duration), credentials, tlsCA, tlsCert,
 *              tlsKey (file paths, may be empty)
 *
 * Sizes take an optional suffix K, M, G (powers of 1024; "KiB", "MiB", "GiB" also accepted).
 * Durations take ms, s, m, h, d; a bare number is seconds.
 */

#define CONFIG_DEFAULT_PATH   "/etc/gitpubsub/gitpubsub.cfg"
#define CONFIG_DEFAULT_RING   "/gitpubsub"
#define CONFIG_DEFAULT_SOCKET "/run/gitpubsub/broker.sock"

struct config {
	char listen_ip[64];	    /* [Server] IP; default "127.0.0.1" */
	uint32_t port;		    /* [Server] port; default 2069 */
	char trusted_peers[4096];   /* [Clients] trustedPeers; default "127.0.0.1 ::1" */
	char publish_origins[1024]; /* [Clients] publishOrigins: web origins that may publish */
	char tokens_file[1024];	    /* [Clients] tokensFile: publish tokens; "" none */
	char proxies[1024];	    /* [Clients] proxies: reverse proxies' addresses; "" none */
	uint64_t max_body;	    /* [Limits] maxBodySize; default 2 MiB (PROTOCOL 4.4) */
	uint32_t max_target;	    /* [Limits] maxTargetSize; default 8 KiB (PROTOCOL 7.2) */
	uint32_t max_header;	    /* [Limits] maxHeaderSize; default 16 KiB */
	uint32_t max_header_lines;  /* [Limits] maxHeaderLines; default 100 */
	uint32_t header_timeout_ms; /* [Limits] headerTimeout; default 10 s */
	uint32_t body_timeout_ms;   /* [Limits] bodyTimeout; default 30 s */
	uint32_t keepalive_ms;	    /* [Stream] keepalive; default 5 s (PROTOCOL 3.3) */
	uint32_t send_timeout_ms;   /* [Stream] sendTimeout; default 60 s (PROTOCOL 3.7) */
	char allow_origin[256];	    /* [Stream] allowOrigin; default "*"; "" sends no header */
	uint64_t retention_s;	    /* [History] retention; default 48 h (PROTOCOL 8.1) */
	uint64_t ring_size;	    /* [History] ringSize; default 64 MiB of message data */
	char ring_name[64];	    /* [History] ring; default CONFIG_DEFAULT_RING */
	char ring_owner[64];	    /* [History] ringOwner; "" (default): no one else */
	uint64_t msgid_window_s;    /* [History] messageIdWindow; default 10 min; 0: off */
	char socket_path[108];	    /* [Broker] socket; default CONFIG_DEFAULT_SOCKET */
	char frontend_mode[16];	    /* [Frontend] mode; default "multiplexed" */
	uint32_t workers;	    /* [Frontend] workers; default 0: one per CPU */
	uint32_t max_connections;   /* [Frontend] maxConnections per worker; 0: the fd limit's */
	uint32_t trusted_reserve;   /* [Frontend] trustedReserve: of those, for trustedPeers */
	/* [Cluster] (README, "Running a cluster"): all empty or default means one machine */
	char nats[1024];	     /* nats: server URLs; "" (the default): no cluster */
	char stream[64];	     /* stream: the JetStream stream; default "GITPUBSUB" */
	uint32_t replicas;	     /* replicas: of a stream we create; default 3 */
	uint32_t publish_timeout_ms; /* publishTimeout: wait for JetStream's ack; default 5 s */
	char credentials[256];	     /* credentials: a .creds file; "" none */
	char tls_ca[256];	     /* tlsCA: CA certificates to verify servers; "" none */
	char tls_cert[256];	     /* tlsCert: client certificate chain; "" none */
	char tls_key[256];	     /* tlsKey: its private key; "" none */
};

/* Fill c with the defaults above. */
void config_defaults(struct config *c);

/*
 * Read the file at path into c (which holds defaults or earlier values). Each problem is logged
 * with file and line: unknown sections and keys as warnings (the value is ignored), malformed
 * lines and values as errors. Returns 0, -EINVAL if any error was logged (c may be partly
 * updated), or -errno if the file cannot be read (-ENOENT when missing).
 */
_must_check_ int config_load(const char *path, struct config *c);

/*
 * What every program starts from: the defaults, then the file at path, or at
 * CONFIG_DEFAULT_PATH when path is NULL, where a missing file means the defaults (a missing
 * named file is an error). Problems are logged. 0, or the -errno of config_load().
 */
_must_check_ int config_read(const char *path, struct config *ret);

/*
 * One line of f into *buf (getline's buffer, *cap its size), its line end (LF, CRLF) cut off;
 * *ret_len is its length (NUL bytes inside count). 1 for a line, 0 at the end of the file, or
 * -errno. The line reader of every file we parse: this one and the tokens file.
 */
_must_check_ int config_getline(FILE *f, char **buf, size_t *cap, size_t *ret_len);

/* Write the effective configuration c to f in the file's own syntax (every key, sizes in
 * bytes, durations in ms), so it can be read back. */
void config_write(const struct config *c, FILE *f);

/*
 * Parsers shared with the command lines and the hook. 0 or -EINVAL; *ret untouched on failure.
 * A size is decimal digits and an optional K, M, G, KiB, MiB or GiB (powers of 1024, any case).
 * A duration is decimal digits, an optional fraction of up to 9 digits, then an optional unit,
 * exact case: ms, s (the default), m, h or d. The result is whole milliseconds: a finer
 * fraction ("1.0005s") is refused, not rounded; so are signs, spaces, exponents and overflow.
 * Ranges are the caller's.
 */
_must_check_ int config_parse_size(const char *s, uint64_t *ret);
_must_check_ int config_parse_duration_ms(const char *s, uint64_t *ret);

#endif
