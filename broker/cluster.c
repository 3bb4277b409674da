/* SPDX-License-Identifier: MIT */
/*
 * Cluster mode: the NATS JetStream side of the broker (broker/cluster.h). Everything here runs
 * on the cluster thread or on the NATS library's threads, except cluster_publish(),
 * cluster_position() and the queue's consumer, which the broker's loop calls.
 */
/* liburcu: the queue's operations inlined (its documented switch, hence the name) */
#define _LGPL_SOURCE /* NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp) */
#include "broker/cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"
#include "common/proto.h"
#include "shm/topic.h"

/* gcc -fanalyzer loses an event where post() links it into the liburcu queue (an atomic
 * exchange it does not follow) and calls it leaked: every event posted is freed by the broker's
 * loop (cluster_next) or by cluster_stop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif

#define CONNECT_TIMEOUT_MS  2000	      /* one attempt to reach a server at start */
#define CONNECT_RETRY_MS    1000	      /* between attempts while none answers at start */
#define RECONNECT_WAIT_MS   250		      /* between the library's reconnection attempts */
#define PING_INTERVAL_MS    2000	      /* a dead server is noticed within 2 pings ... */
#define MAX_PINGS_OUT	    2		      /* ... not answered: about 4 s */
#define RECONNECT_BUF	    (8 * 1024 * 1024) /* publishes held while reconnecting */
#define JS_API_TIMEOUT_MS   2000	      /* stream info and creation requests */
#define STREAM_CHECK_MS	    1000	  /* how often the stream is looked at (lag, recreation) */
#define NEXT_MSG_WAIT_MS    100		  /* one wait of the consumer: the thread's tick */
#define CONSUME_BATCH	    512		  /* messages queued before the broker is woken */
#define PENDING_MSGS_LIMIT  (1024 * 1024) /* consumed, not yet taken by the thread */
#define PENDING_BYTES_LIMIT (256 * 1024 * 1024) /* the same in bytes */
#define INBOX_MAX	    64			/* "_GPS_ACK.<16 hex>" and room to spare */
#define HDR_TOPIC	    "Gps-Topic"
#define HDR_MSGID	    "Nats-Msg-Id" /* the publisher's id, deduplicated by JetStream */
#define HDR_ID		    "Gps-Id"	  /* the publisher's id, with messageIdWindow 0 */
#define GENERATION_DESC	    "gitpubsub generation " /* + the creating broker's clock, us */
#define HDR_ORIGIN	    "Gps-Origin" /* "<this broker's 16 hex>.<token>": its own, read back */

struct cluster {
	struct config cfg;
	char subject[96];
	char inbox[INBOX_MAX]; /* acknowledgements come to inbox.<token> */
	char origin[17];       /* this broker's 16 random hex digits (HDR_ORIGIN) */
	int efd;
	pthread_t thread;
	_Atomic bool stop;
	struct cds_wfcq_head qhead;
	struct cds_wfcq_tail qtail;
	/* written by the broker's loop, read by the cluster thread */
	_Atomic uint64_t ring_generation, ring_next;
	/* set by the cluster thread once it can publish (release); the broker's loop reads it */
	_Atomic(natsConnection *) nc;
	_Atomic uint64_t stream_generation; /* the stream as last seen; ACK events carry it */
	/* the cluster thread's own */
	natsConnection *conn;
	natsSubscription *acks;
	jsCtx *js;
	natsSubscription *sub;
	uint64_t sub_generation; /* the stream the consumer reads */
	bool warned_config, reported_down;
	uint64_t consumed; /* messages the consumer gave since the last look at the stream */
	uint64_t next_check_us;
};

static uint64_t now_us(void)
{
	return (uint64_t)nats_Now() * 1000u;
}

static void post(struct cluster *c, struct cluster_event *ev)
{
	cds_wfcq_node_init(&ev->node);
	/* enqueue returns false when the queue was empty: only then is the broker asleep on it */
	if (!cds_wfcq_enqueue(&c->qhead, &c->qtail, &ev->node)) {
		uint64_t one = 1;
		(void)!write(c->efd, &one, sizeof(one));
	}
}

/* ---- topics as header values ------------------------------------------------------------ */

static bool plain_byte(uint8_t b)
{
	return b >= 0x21 && b <= 0x7e && b != '%' && b != '/';
}

int cluster_topic_encode(const uint8_t *topic, uint32_t len, char *buf, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (cap < 2)
		return -ENOSPC;
	buf[o++] = '/';
	for (uint32_t i = 0; i < len; i++) {
		if (o + 4 > cap)
			return -ENOSPC;
		if (topic[i] == '\0') {
			buf[o++] = '/';
		} else if (plain_byte(topic[i])) {
			buf[o++] = (char)topic[i];
		} else {
			buf[o++] = '%';
			buf[o++] = hex[topic[i] >> 4];
			buf[o++] = hex[topic[i] & 15];
		}
	}
	buf[o] = '\0';
	return 0;
}

int cluster_topic_decode(const char *s, uint8_t *buf, size_t cap, uint32_t *ret_len)
{
	size_t o = 0;

	if (s[0] != '/')
		return -EINVAL;
	for (const char *p = s + 1; *p; p++) {
		int hi, lo;

		if (o >= cap)
			return -ENOSPC;
		if (*p == '/') {
			buf[o++] = '\0';
			continue;
		}
		if (*p != '%') {
			buf[o++] = (uint8_t)*p;
			continue;
		}
		hi = topic_hex_value(p[1]);
		lo = hi < 0 ? -1 : topic_hex_value(p[2]);
		if (lo < 0)
			return -EINVAL;
		buf[o++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	*ret_len = (uint32_t)o;
	return 0;
}

int cluster_subject(const char *stream, char *buf, size_t len)
{
	int n = snprintf(buf, len, "gitpubsub.%s", stream);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- publish acknowledgements (the library's thread) ------------------------------------ */

/* A number after "key": in a JetStream answer; 0 when absent. */
static uint64_t json_number(const char *s, const char *key)
{
	const char *p = strstr(s, key);

	if (!p)
		return 0;
	p += strlen(key);
	while (*p == ' ')
		p++;
	return strtoull(p, NULL, 10);
}

static void on_ack(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	struct cluster *c = closure;
	struct cluster_event *ev = calloc(1, sizeof(*ev));
	const char *subj = natsMsg_GetSubject(m), *dot = strrchr(subj, '.');
	/* a JetStream answer: {"stream":"X","seq":N,"duplicate":true} or an error */
	char text[512];
	const int len = natsMsg_GetDataLength(m);
	const size_t n = len > 0 ? MIN((size_t)len, sizeof(text) - 1) : 0;

	(void)nc;
	(void)sub;
	if (!ev || !dot) {
		free(ev);
		natsMsg_Destroy(m);
		return;
	}
	if (n)
		memcpy(text, natsMsg_GetData(m), n);
	text[n] = '\0';
	ev->type = CLUSTER_ACK;
	ev->token = strtoull(dot + 1, NULL, 10);
	ev->generation = atomic_load_explicit(&c->stream_generation, memory_order_relaxed);
	ev->seq = json_number(text, "\"seq\":");
	ev->duplicate = strstr(text, "\"duplicate\":true") != NULL;
	/* no seq: an error answer, or a "no responders" status (no stream for the subject) */
	ev->failed = strstr(text, "\"error\"") != NULL || ev->seq == 0;
	if (ev->failed)
		log_debug("JetStream refused publish %" PRIu64 ": %.200s", ev->token, text);
	natsMsg_Destroy(m);
	post(c, ev);
}

/* ---- the cluster thread ----------------------------------------------------------------- */

static void post_stream(struct cluster *c, bool failed, uint64_t last_seq)
{
	struct cluster_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return;
	ev->type = CLUSTER_STREAM;
	ev->failed = failed;
	ev->last_seq = last_seq;
	ev->generation = atomic_load_explicit(&c->stream_generation, memory_order_relaxed);
	if (c->conn &&
	    natsConnection_GetConnectedUrl(c->conn, ev->server, sizeof(ev->server)) != NATS_OK)
		ev->server[0] = '\0';
	post(c, ev);
}

#define MAX_SERVERS 32 /* URLs in [Cluster] nats */

/* The servers of [Cluster] nats, split at commas (natsOptions_SetURL's list does not work in
 * libnats 3.4: "No server available" however many answer). */
static natsStatus set_servers(const struct cluster *c, natsOptions *o)
{
	char list[sizeof(c->cfg.nats)];
	const char *urls[MAX_SERVERS];
	char *save = NULL, *tok;
	int n = 0;

	memcpy(list, c->cfg.nats, sizeof(list));
	for (tok = strtok_r(list, ",", &save); tok && n < MAX_SERVERS;
	     tok = strtok_r(NULL, ",", &save))
		if (*tok)
			urls[n++] = tok;
	return n ? natsOptions_SetServers(o, urls, n) : NATS_INVALID_ARG;
}

static int set_options(const struct cluster *c, natsOptions *o)
{
	natsStatus s = set_servers(c, o);

	if (s == NATS_OK)
		s = natsOptions_SetName(o, "gitpubsub-broker");
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, CONNECT_TIMEOUT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1); /* forever: NATS comes back, we follow */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(o, RECONNECT_WAIT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, PING_INTERVAL_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, MAX_PINGS_OUT);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(o, RECONNECT_BUF);
	if (s == NATS_OK && c->cfg.credentials[0])
		s = natsOptions_SetUserCredentialsFromFiles(o, c->cfg.credentials, NULL);
	if (s == NATS_OK && (c->cfg.tls_ca[0] || c->cfg.tls_cert[0]))
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && c->cfg.tls_ca[0])
		s = natsOptions_LoadCATrustedCertificates(o, c->cfg.tls_ca);
	if (s == NATS_OK && c->cfg.tls_cert[0])
		s = natsOptions_LoadCertificatesChain(o, c->cfg.tls_cert,
						      c->cfg.tls_key[0] ? c->cfg.tls_key : NULL);
	if (s != NATS_OK) {
		log_error("[Cluster]: %s", nats_GetLastError(NULL));
		return -EINVAL;
	}
	return 0;
}

/* One attempt to connect, subscribe to our acknowledgements and get a JetStream context. */
static int connect_once(struct cluster *c)
{
	natsOptions *o = NULL;
	char subj[INBOX_MAX + 2];
	natsStatus s;
	int err;

	if (natsOptions_Create(&o) != NATS_OK)
		return -ENOMEM;
	err = set_options(c, o);
	if (err < 0)
		goto out;
	s = natsConnection_Connect(&c->conn, o);
	if (s != NATS_OK) {
		if (!c->reported_down)
			log_warning("NATS at '%s' unreachable (%s); publishes get 503 until it is "
				    "back",
				    c->cfg.nats, natsStatus_GetText(s));
		c->reported_down = true;
		c->conn = NULL;
		err = -ENOTCONN;
		goto out;
	}
	(void)snprintf(subj, sizeof(subj), "%s.*", c->inbox);
	s = natsConnection_Subscribe(&c->acks, c->conn, subj, on_ack, c);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(c->acks, PENDING_MSGS_LIMIT,
						      PENDING_BYTES_LIMIT);
	if (s == NATS_OK) {
		jsOptions jo;

		jsOptions_Init(&jo);
		jo.Wait = JS_API_TIMEOUT_MS;
		s = natsConnection_JetStream(&c->js, c->conn, &jo);
	}
	if (s != NATS_OK) {
		log_warning("NATS: unable to set up: %s", natsStatus_GetText(s));
		natsSubscription_Destroy(c->acks);
		c->acks = NULL;
		natsConnection_Destroy(c->conn);
		c->conn = NULL;
		err = -EIO;
		goto out;
	}
	c->reported_down = false;
	log_notice("connected to NATS (%s)", c->cfg.nats);
	err = 0;
out:
	natsOptions_Destroy(o);
	return err;
}

/* Say once how an existing stream differs from what we would have made (README). */
static void compare_stream(struct cluster *c, const jsStreamConfig *sc, int64_t max_age,
			   int64_t dups)
{
	char diff[512];
	size_t n = 0;

	if (c->warned_config)
		return;
	c->warned_config = true;
#define DIFF(...)                                                                              \
	do {                                                                                   \
		int k_ = snprintf(diff + n, sizeof(diff) - n, __VA_ARGS__);                    \
		if (k_ > 0)                                                                    \
			n = (size_t)k_ < sizeof(diff) - n ? n + (size_t)k_ : sizeof(diff) - 1; \
	} while (0)
	if (sc->Replicas != (int64_t)c->cfg.replicas)
		DIFF(", replicas %" PRId64 " (configured %u)", sc->Replicas, c->cfg.replicas);
	if (sc->MaxAge != max_age)
		DIFF(", max age %" PRId64 " s (retention %" PRId64 " s)", sc->MaxAge / 1000000000,
		     max_age / 1000000000);
	if (dups && sc->Duplicates != dups)
		DIFF(", duplicate window %" PRId64 " s (messageIdWindow %" PRId64 " s)",
		     sc->Duplicates / 1000000000, dups / 1000000000);
	if (sc->Storage != js_FileStorage)
		DIFF(", memory storage");
	if (sc->SubjectsLen != 1 || strcmp(sc->Subjects[0], c->subject) != 0)
		DIFF(", subjects other than '%s' alone", c->subject);
#undef DIFF
	if (n)
		log_warning("stream '%s' exists with other settings, used as it is: %s",
			    c->cfg.stream, diff + 2);
}

/*
 * The stream's generation (shm/ring.h section 8): the time a broker created it, which it wrote
 * in the stream's description. Not jsStreamInfo.Created: each server reports its own copy's
 * creation, so the value changes (by milliseconds) when another server answers, and a broker
 * took that for a recreated stream. A stream made by someone else has only Created.
 */
static uint64_t stream_generation(const jsStreamInfo *si)
{
	const char *d = si->Config ? si->Config->Description : NULL;

	if (d && strncmp(d, GENERATION_DESC, strlen(GENERATION_DESC)) == 0) {
		char *end;
		uint64_t gen;

		errno = 0;
		gen = strtoull(d + strlen(GENERATION_DESC), &end, 10);
		if (!errno && gen && !*end)
			return gen;
	}
	return (uint64_t)si->Created / 1000u;
}

/* Look at the stream, create it when missing; its generation, or 0 if out of reach. */
static uint64_t check_stream(struct cluster *c, uint64_t *ret_last)
{
	/* JetStream counts in ns; retention and the window are whole seconds */
	const int64_t max_age = (int64_t)c->cfg.retention_s * 1000000000;
	const int64_t dups = (int64_t)c->cfg.msgid_window_s * 1000000000;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s;
	uint64_t gen;

	s = js_GetStreamInfo(&si, c->js, c->cfg.stream, NULL, &jerr);
	if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
		const char *subjects[1] = { c->subject };
		char desc[sizeof(GENERATION_DESC) + 24];
		jsStreamConfig sc;

		jsStreamConfig_Init(&sc);
		(void)snprintf(desc, sizeof(desc), "%s%" PRIu64, GENERATION_DESC, io_now_real_us());
		sc.Description = desc;
		sc.Name = c->cfg.stream;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Replicas = c->cfg.replicas;
		sc.MaxAge = max_age;
		/* JetStream's window may not exceed the age limit */
		sc.Duplicates = dups && dups <= max_age ? dups : 0;
		jerr = 0;
		s = js_AddStream(&si, c->js, &sc, NULL, &jerr);
		if (s == NATS_OK) {
			log_notice("created stream '%s' (subject '%s', %u replicas)", c->cfg.stream,
				   c->subject, c->cfg.replicas);
			c->warned_config = true; /* ours: nothing to compare */
		} else if (jerr == JSStreamNameExistErr) {
			/* another broker made it first (its description differs from ours) */
			jerr = 0;
			s = js_GetStreamInfo(&si, c->js, c->cfg.stream, NULL, &jerr);
		}
	}
	if (s != NATS_OK || !si) {
		log_info("stream '%s' out of reach: %s (%d)", c->cfg.stream, natsStatus_GetText(s),
			 (int)jerr);
		return 0;
	}
	compare_stream(c, si->Config, max_age, dups);
	gen = stream_generation(si);
	*ret_last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return gen;
}

static void unsubscribe(struct cluster *c)
{
	if (!c->sub)
		return;
	(void)natsSubscription_Unsubscribe(c->sub);
	natsSubscription_Destroy(c->sub);
	c->sub = NULL;
}

/* An ordered consumer from where the ring is, or from the start of a stream it does not copy. */
static void subscribe(struct cluster *c, uint64_t gen)
{
	const uint64_t ring_gen = atomic_load_explicit(&c->ring_generation, memory_order_acquire);
	uint64_t start = atomic_load_explicit(&c->ring_next, memory_order_acquire);
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	if (ring_gen != gen)
		start = 1;
	jsSubOptions_Init(&so);
	so.Stream = c->cfg.stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverByStartSequence;
	so.Config.OptStartSeq = start ? start : 1;
	s = js_SubscribeSync(&c->sub, c->js, c->subject, NULL, &so, &jerr);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(c->sub, PENDING_MSGS_LIMIT,
						      PENDING_BYTES_LIMIT);
	if (s != NATS_OK) {
		log_warning("unable to consume stream '%s': %s (%d)", c->cfg.stream,
			    natsStatus_GetText(s), (int)jerr);
		unsubscribe(c);
		return;
	}
	c->sub_generation = gen;
	log_info("consuming stream '%s' from seq %" PRIu64, c->cfg.stream, so.Config.OptStartSeq);
}

/* One message of the stream as an event; NULL (and a log line) when it is not one of ours. */
static struct cluster_event *msg_event(struct cluster *c, natsMsg *m)
{
	static uint8_t topic[PROTO_MAX_TOPIC]; /* the cluster thread's alone */
	const char *hv = NULL, *id = NULL, *origin = NULL;
	jsMsgMetaData *meta = NULL;
	struct cluster_event *ev;
	uint32_t topic_len = 0, id_len;
	int len = natsMsg_GetDataLength(m);

	if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
		return NULL;
	/* a message without our topic header was published by someone else: the root topic */
	if (natsMsgHeader_Get(m, HDR_TOPIC, &hv) == NATS_OK && hv &&
	    cluster_topic_decode(hv, topic, sizeof(topic), &topic_len) < 0)
		topic_len = 0;
	if (natsMsgHeader_Get(m, HDR_MSGID, &id) != NATS_OK || !id)
		(void)natsMsgHeader_Get(m, HDR_ID, &id);
	if (!id || !proto_id_valid((const uint8_t *)id, strlen(id)))
		id = "";
	id_len = (uint32_t)strlen(id);
	ev = malloc(sizeof(*ev) + id_len + topic_len + (size_t)(len > 0 ? len : 0));
	if (!ev) {
		jsMsgMetaData_Destroy(meta);
		return NULL;
	}
	memset(ev, 0, sizeof(*ev));
	ev->type = CLUSTER_MSG;
	ev->seq = meta->Sequence.Stream;
	ev->time_us = (uint64_t)meta->Timestamp / 1000u;
	ev->generation = c->sub_generation;
	if (natsMsgHeader_Get(m, HDR_ORIGIN, &origin) == NATS_OK && origin &&
	    strncmp(origin, c->origin, sizeof(c->origin) - 1) == 0 &&
	    origin[sizeof(c->origin) - 1] == '.') {
		ev->mine = true;
		ev->token = strtoull(origin + sizeof(c->origin), NULL, 10);
	}
	ev->id_len = id_len;
	ev->topic_len = topic_len;
	ev->payload_len = (uint32_t)(len > 0 ? len : 0);
	memcpy(ev->data, id, id_len);
	memcpy(ev->data + id_len, topic, topic_len);
	if (len > 0)
		memcpy(ev->data + id_len + topic_len, natsMsg_GetData(m), (size_t)len);
	jsMsgMetaData_Destroy(meta);
	return ev;
}

static void consume(struct cluster *c)
{
	for (int i = 0; i < CONSUME_BATCH; i++) {
		natsMsg *m = NULL;
		struct cluster_event *ev;
		natsStatus s = natsSubscription_NextMsg(&m, c->sub, i ? 0 : NEXT_MSG_WAIT_MS);

		if (s == NATS_TIMEOUT)
			return;
		if (s != NATS_OK) {
			/* e.g. a slow consumer or a consumer gone: start again where the ring is */
			log_info("stream consumer: %s; starting again", natsStatus_GetText(s));
			unsubscribe(c);
			return;
		}
		ev = msg_event(c, m);
		natsMsg_Destroy(m);
		c->consumed++;
		if (ev)
			post(c, ev);
	}
}

static void sleep_ms(const struct cluster *c, int ms)
{
	for (; ms > 0 && !atomic_load(&c->stop); ms -= NEXT_MSG_WAIT_MS)
		(void)poll(NULL, 0, NEXT_MSG_WAIT_MS);
}

static void *cluster_main(void *arg)
{
	struct cluster *c = arg;

	while (!atomic_load(&c->stop)) {
		uint64_t now, last = 0;

		if (!c->conn) {
			if (connect_once(c) < 0) {
				post_stream(c, true, 0);
				sleep_ms(c, CONNECT_RETRY_MS);
				continue;
			}
			atomic_store_explicit(&c->nc, c->conn, memory_order_release);
			c->next_check_us = 0;
		}
		now = now_us();
		if (now >= c->next_check_us) {
			uint64_t gen;

			c->next_check_us = now + (uint64_t)STREAM_CHECK_MS * 1000u;
			gen = check_stream(c, &last);
			if (gen)
				atomic_store_explicit(&c->stream_generation, gen,
						      memory_order_relaxed);
			post_stream(c, gen == 0, last);
			if (gen && gen != c->sub_generation) {
				if (c->sub_generation)
					log_warning("stream '%s' was recreated: following the new "
						    "one",
						    c->cfg.stream);
				unsubscribe(c);
			}
			/* the ring is behind and the consumer gave nothing for a whole period: an
			 * ordered consumer that lost its server (all of NATS restarted) may take
			 * long to notice; start it again where the ring is */
			if (gen && c->sub && !c->consumed &&
			    last >= atomic_load_explicit(&c->ring_next, memory_order_acquire)) {
				log_info("stream consumer stalled behind seq %" PRIu64
					 "; starting again",
					 last);
				unsubscribe(c);
			}
			c->consumed = 0;
			if (gen && !c->sub)
				subscribe(c, gen);
		}
		if (c->sub)
			consume(c);
		else
			sleep_ms(c, NEXT_MSG_WAIT_MS);
	}
	return NULL;
}

/* ---- the broker's side ------------------------------------------------------------------ */

int cluster_start(const struct config *cfg, uint64_t generation, uint64_t next_seq,
		  struct cluster **ret_cluster)
{
	struct cluster *c = calloc(1, sizeof(*c));
	uint64_t rnd;
	int err;

	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	/* "nats://a:4222, nats://b:4222": the library wants the list without blanks */
	{
		char *w = c->cfg.nats;

		for (const char *r = cfg->nats;; r++) {
			if (*r != ' ' && *r != '\t')
				*w++ = *r;
			if (!*r)
				break;
		}
	}
	err = cluster_subject(cfg->stream, c->subject, sizeof(c->subject));
	if (err < 0)
		goto out_free;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		err = -EIO;
		goto out_free;
	}
	(void)snprintf(c->origin, sizeof(c->origin), "%016" PRIx64, rnd);
	(void)snprintf(c->inbox, sizeof(c->inbox), "_GPS_ACK.%s", c->origin);
	cds_wfcq_init(&c->qhead, &c->qtail);
	atomic_store(&c->ring_generation, generation);
	atomic_store(&c->ring_next, next_seq);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->efd < 0) {
		err = -errno;
		goto out_free;
	}
	if (nats_Open(-1) != NATS_OK) {
		err = -ENOMEM;
		goto out_close;
	}
	err = -pthread_create(&c->thread, NULL, cluster_main, c);
	if (err < 0)
		goto out_nats;
	*ret_cluster = c;
	return 0;

out_nats:
	nats_Close();
out_close:
	(void)close(c->efd);
out_free:
	free(c);
	return err;
}

void cluster_stop(struct cluster *c)
{
	struct cluster_event *ev;

	if (!c)
		return;
	atomic_store(&c->stop, true);
	(void)pthread_join(c->thread, NULL);
	atomic_store(&c->nc, NULL);
	unsubscribe(c);
	natsSubscription_Destroy(c->acks);
	jsCtx_Destroy(c->js);
	natsConnection_Destroy(c->conn);
	nats_Close();
	while ((ev = cluster_next(c)))
		free(ev);
	cds_wfcq_destroy(&c->qhead, &c->qtail);
	(void)close(c->efd);
	free(c);
}

int cluster_fd(const struct cluster *c)
{
	return c->efd;
}

void cluster_clear_fd(const struct cluster *c)
{
	uint64_t n;

	(void)!read(c->efd, &n, sizeof(n));
}

void cluster_position(struct cluster *c, uint64_t generation, uint64_t next_seq)
{
	atomic_store_explicit(&c->ring_generation, generation, memory_order_release);
	atomic_store_explicit(&c->ring_next, next_seq, memory_order_release);
}

struct cluster_event *cluster_next(struct cluster *c)
{
	struct cds_wfcq_node *n = cds_wfcq_dequeue_blocking(&c->qhead, &c->qtail);

	return n ? caa_container_of(n, struct cluster_event, node) : NULL;
}

int cluster_publish(struct cluster *c, uint64_t token, const uint8_t *id, uint32_t id_len,
		    const uint8_t *topic, uint32_t topic_len, const char *payload,
		    uint32_t payload_len)
{
	natsConnection *nc = atomic_load_explicit(&c->nc, memory_order_acquire);
	char reply[INBOX_MAX + 24], origin[sizeof(c->origin) + 24], idbuf[PROTO_MAX_ID + 1];
	char *hv;
	natsMsg *m = NULL;
	natsStatus s;
	int err = 0;

	if (!nc || natsConnection_Status(nc) != NATS_CONN_STATUS_CONNECTED)
		return -ENOTCONN;
	hv = malloc((size_t)topic_len * 3 + 2); /* every byte as %XX at worst, and the '/' */
	if (!hv)
		return -ENOMEM;
	err = cluster_topic_encode(topic, topic_len, hv, (size_t)topic_len * 3 + 2);
	if (err < 0)
		goto out;
	(void)snprintf(reply, sizeof(reply), "%s.%" PRIu64, c->inbox, token);
	s = natsMsg_Create(&m, c->subject, reply, payload, (int)payload_len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(m, HDR_TOPIC, hv);
	if (s == NATS_OK && id_len) {
		memcpy(idbuf, id, id_len);
		idbuf[id_len] = '\0';
		s = natsMsgHeader_Set(m, c->cfg.msgid_window_s ? HDR_MSGID : HDR_ID, idbuf);
	}
	if (s == NATS_OK) {
		(void)snprintf(origin, sizeof(origin), "%s.%" PRIu64, c->origin, token);
		s = natsMsgHeader_Set(m, HDR_ORIGIN, origin);
	}
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(nc, m);
	if (s != NATS_OK)
		err = s == NATS_NO_MEMORY ? -ENOMEM : -ENOTCONN;
out:
	natsMsg_Destroy(m);
	free(hv);
	return err;
}
