/* SPDX-License-Identifier: MIT */
/*
 * Cluster mode's pure parts (broker/cluster.h): a stored topic as the Gps-Topic header value
 * and back, and the stream's subject. The NATS side is tested end to end by
 * tests/96-cluster.bats.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "broker/cluster.h"
#include "tests/tap.h"

/* Encode topic[0..len), check the text, decode it and check the bytes come back. */
static void round_trip(const char *topic, uint32_t len, const char *want)
{
	char text[256];
	uint8_t back[256];
	uint32_t back_len = 0;

	is(cluster_topic_encode((const uint8_t *)topic, len, text, sizeof(text)), 0, "encode '%s'",
	   want);
	is_str(text, want, "encoded as expected");
	is(cluster_topic_decode(text, back, sizeof(back), &back_len), 0, "decode '%s'", want);
	ok(back_len == len && memcmp(back, topic, len) == 0, "'%s' decodes to the topic", want);
}

int main(void)
{
	char small[4], subject[32];
	uint8_t out[8];
	uint32_t n;

	round_trip("", 0, "/");
	round_trip("json", 4, "/json");
	round_trip("json\0git\0proj", 13, "/json/git/proj");
	/* a segment holding '/', '%', a space, a control byte and UTF-8: all escaped */
	round_trip("a/b%c d\x01\xc3\xa9", 10, "/a%2Fb%25c%20d%01%C3%A9");
	round_trip("a\0\0b", 4, "/a//b");

	is(cluster_topic_encode((const uint8_t *)"json", 4, small, sizeof(small)), -ENOSPC,
	   "encode: a buffer too small is -ENOSPC");
	is(cluster_topic_decode("json", out, sizeof(out), &n), -EINVAL,
	   "decode: no leading '/' is -EINVAL");
	is(cluster_topic_decode("/a%2", out, sizeof(out), &n), -EINVAL,
	   "decode: a cut escape is -EINVAL");
	is(cluster_topic_decode("/a%zz", out, sizeof(out), &n), -EINVAL,
	   "decode: a bad escape is -EINVAL");
	is(cluster_topic_decode("/123456789", out, sizeof(out), &n), -ENOSPC,
	   "decode: more than the buffer holds is -ENOSPC");
	is(cluster_subject("GITPUBSUB", subject, sizeof(subject)), 0, "subject");
	is_str(subject, "gitpubsub.GITPUBSUB", "the stream's subject");
	is(cluster_subject("A-VERY-LONG-STREAM-NAME-INDEED", subject, sizeof(subject)),
	   -ENAMETOOLONG, "subject: too long for the buffer");
	return done_testing();
}
