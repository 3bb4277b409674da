/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "common/io.h"
#include "hook/post.h"

/* Room for "X-Message-Id: " and an id: hook/msgid.h's are 58 bytes, the server's limit 128. */
#define POST_ID_HEADER_MAX 160

/* The statuses that mean "this body will never be accepted" (PROTOCOL 4.3, 4.4). */
#define POST_HTTP_OK	      200L
#define POST_HTTP_BAD_REQUEST 400L
#define POST_HTTP_TOO_LARGE   413L

/*
 * The answer's body is not needed; this keeps curl from printing it to stdout. The signature is
 * curl's CURLOPT_WRITEFUNCTION type, hence the non-const pointer.
 */
static size_t post_discard(char *ptr, size_t size, size_t nmemb, /* NOLINT */ void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

int post_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void post_global_cleanup(void)
{
	curl_global_cleanup();
}

/* The request headers, with X-Message-Id if msg_id is not NULL and the Authorization line auth
 * if not NULL; NULL when out of memory. */
static struct curl_slist *post_headers(const char *msg_id, const char *auth)
{
	struct curl_slist *h, *h2;

	h = curl_slist_append(NULL, "Content-Type: application/json");
	if (!h)
		return NULL;
	/* no "Expect: 100-continue" round trip before a large message: the server is ours */
	h2 = curl_slist_append(h, "Expect:");
	if (h2 && msg_id) {
		char line[POST_ID_HEADER_MAX];

		(void)snprintf(line, sizeof(line), "X-Message-Id: %s", msg_id);
		h2 = curl_slist_append(h2, line);
	}
	if (h2 && auth)
		h2 = curl_slist_append(h2, auth);
	if (!h2) {
		curl_slist_free_all(h);
		return NULL;
	}
	return h2;
}

/*
 * url as messages show it: the user and password of its authority (http://user:secret@host/)
 * replaced by "***", so a credential in gitpubsub.url never reaches the pusher's screen or a
 * log. Caller frees; NULL when out of memory.
 */
static char *url_shown(const char *url)
{
	const char *auth = strstr(url, "://"), *end, *at = NULL;
	char *s;

	if (!auth)
		return strdup(url);
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	for (const char *q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	if (!at)
		return strdup(url);
	s = malloc(strlen(url) + 4);
	if (!s)
		return NULL;
	(void)sprintf(s, "%.*s***%s", (int)(auth - url), url, at);
	return s;
}

/* Free p's strings; the Authorization line's bytes are wiped first. */
static void post_free_strings(struct post *p)
{
	if (p->auth) {
		explicit_bzero(p->auth, strlen(p->auth));
		free(p->auth);
	}
	free(p->url);
	free(p->shown);
	p->url = p->shown = p->auth = NULL;
}

int post_open(struct post *p, const char *url, const char *token)
{
	struct curl_slist *h = NULL;
	CURL *c;
	CURLcode rc = CURLE_OK;

	*p = (struct post){ 0 };
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return -EINVAL;
	p->url = strdup(url);
	p->shown = url_shown(url);
	if (token && asprintf(&p->auth, "Authorization: Bearer %s", token) < 0)
		p->auth = NULL;
	if (!p->url || !p->shown || (token && !p->auth)) {
		post_free_strings(p);
		return -ENOMEM;
	}
	c = curl_easy_init();
	if (!c)
		goto out_nomem;
	h = post_headers(NULL, p->auth);
	if (!h)
		goto out_nomem;

	rc |= curl_easy_setopt(c, CURLOPT_URL, p->url);
	rc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	rc |= curl_easy_setopt(c, CURLOPT_POST, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, "gitpubsub-hook/" GPS_VERSION);
	rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, post_discard);
	/* no signals: the hook bounds time with curl's own timeouts, not alarm() */
	rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* gitpubsub.url comes from config: never let it read files or speak other protocols */
#if LIBCURL_VERSION_NUM >= 0x075500
	rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (rc != CURLE_OK) {
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
		post_free_strings(p);
		return -EINVAL;
	}
	p->curl = c;
	p->headers = h;
	return 0;

out_nomem:
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	post_free_strings(p);
	return -ENOMEM;
}

void post_close(struct post *p)
{
	if (p->curl)
		curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->headers);
	post_free_strings(p);
	*p = (struct post){ 0 };
}

static int post_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

int post_send(struct post *p, const char *body, size_t len, const char *msg_id,
	      uint64_t deadline_us)
{
	uint64_t now = io_now_mono_us();
	long ms, connects = 0;
	struct curl_slist *h;
	CURLcode rc;

	p->status = 0;
	p->curl_code = CURLE_OK;
	if (now >= deadline_us) {
		p->curl_code = CURLE_OPERATION_TIMEDOUT;
		return -ETIMEDOUT;
	}
	ms = (long)MIN((deadline_us - now + 999) / 1000, (uint64_t)INT32_MAX);
	/* each message its own id: a new header list, the old one freed once curl uses this */
	h = post_headers(msg_id, p->auth);
	if (!h)
		return -ENOMEM;
	rc = curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, h);
	if (rc != CURLE_OK) {
		curl_slist_free_all(h);
		return -EIO;
	}
	curl_slist_free_all(p->headers);
	p->headers = h;
	rc = curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, ms);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, ms);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, body);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	if (rc == CURLE_OK)
		rc = curl_easy_perform(p->curl);
	p->curl_code = (int)rc;
	if (curl_easy_getinfo(p->curl, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK)
		p->connects += connects;
	if (rc != CURLE_OK)
		return post_errno(rc);
	if (curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &p->status) != CURLE_OK)
		return -EIO;
	if (p->status == POST_HTTP_OK)
		return 0;
	if (p->status == POST_HTTP_BAD_REQUEST || p->status == POST_HTTP_TOO_LARGE)
		return -EBADMSG;
	return -EPROTO;
}

const char *post_strerror(const struct post *p, int err)
{
	static char buf[512];

	switch (err) {
	case -ETIMEDOUT:
		return "the server did not answer in time";
	case -ECONNREFUSED:
		(void)snprintf(buf, sizeof(buf), "could not connect to %s", p->shown);
		return buf;
	case -EHOSTUNREACH:
		(void)snprintf(buf, sizeof(buf), "could not find the server of %s", p->shown);
		return buf;
	case -EBADMSG:
	case -EPROTO:
		/* the two refusals a person can fix: say which setting */
		(void)snprintf(buf, sizeof(buf), "the server answered HTTP %ld%s", p->status,
			       p->status == 401 ? ": it does not know gitpubsub.token"
			       : p->status == 403
				       ? (p->auth ? ": gitpubsub.token may not publish here"
						  : ": this host may not publish without "
						    "gitpubsub.token")
				       : "");
		return buf;
	default:
		(void)snprintf(buf, sizeof(buf), "could not send to %s (%s)", p->shown,
			       curl_easy_strerror((CURLcode)p->curl_code));
		return buf;
	}
}
