#!/usr/bin/env bats
#
# Publish tokens (issue 16; README "Publishing with a token"): [Clients] tokensFile holds the
# SHA-256 of bearer tokens and the topic prefixes each may publish to. A known token publishing
# within its prefixes is trusted whatever the address; a known token outside them gets 403; any
# other token, or a malformed Authorization, gets 401 with WWW-Authenticate: Bearer, from a
# trusted address too; no Authorization is exactly address trust. Each rule is tried from an
# untrusted source address (127.0.0.2) and a trusted one (127.0.0.3: this instance trusts only
# it, so that 127.0.0.1, which the hook and socat use, is untrusted too).

bats_require_minimum_version 1.5.0

load lib
load lib-http

TRUSTED=127.0.0.3
UNTRUSTED=127.0.0.2
# The tokens of this file: A may publish to /json/git/project-a, B to two prefixes, ALL anywhere.
TOKEN_A=gps_tokenA-0123456789abcdefghijklmnopqrstuvwxyz
TOKEN_B=gps_tokenB-0123456789abcdefghijklmnopqrstuvwxyz
TOKEN_ALL=gps_tokenALL-0123456789abcdefghijklmnopqrstuvw
# A's twin but for its last character: the "almost right" guess of the timing test.
TOKEN_NEAR=gps_tokenA-0123456789abcdefghijklmnopqrstuvwxyZ
TOKEN_UNKNOWN=gps_tokenZ-this-one-is-in-no-file-at-all-0000
# How long a change of the tokens file takes to be in force (TOKENS_CHECK_US), with slack.
RELOAD_WAIT=1.6
# Requests per kind in the timing test, and the largest difference of medians it accepts: a
# generous bound (a curl process costs milliseconds), which a digest comparison cannot reach.
TIMING_ROUNDS=25
TIMING_BOUND_MS=100

digest()
{
	printf '%s' "$1" | sha256sum | cut -d' ' -f1
}

# write_tokens [EXTRA_LINES...] - the tokens file: A, B and ALL, a comment, then EXTRA_LINES.
write_tokens()
{
	local f=$BATS_FILE_TMPDIR/tokens
	{
		echo "# publish tokens of tests/34-token.bats"
		echo "sha256:$(digest "$TOKEN_A") /json/git/project-a"
		echo ""
		echo "sha256:$(digest "$TOKEN_B") /json/git/project-b /other"
		echo "sha256:$(digest "$TOKEN_ALL") /"
		printf '%s\n' "$@"
	} >"$f.new"
	chmod 600 "$f.new"
	mv "$f.new" "$f"
}

setup_file()
{
	export TOKENS=$BATS_FILE_TMPDIR/tokens
	write_tokens
	# headerTimeout: a keep-alive publisher waits out a reload between its requests
	gps_start "[Clients]" "trustedPeers: $TRUSTED" "tokensFile: $TOKENS" \
		"[Limits]" "headerTimeout: 10s"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	http_unsubscribe_all
	[[ -z ${KP_PID:-} ]] || kill "$KP_PID" 2>/dev/null || true
}

# pub SOURCE TOPIC [TOKEN [CURL_ARGS...]] - publish from SOURCE with TOKEN ("" or absent: no
# Authorization) and print the status; the answer is in $GPS_LAST_HEADERS and $GPS_LAST_BODY.
pub()
{
	local src=$1 topic=$2 token=${3:-}
	local -a auth=()
	shift 2
	(($#)) && shift
	[[ -n $token ]] && auth=(-H "Authorization: Bearer $token")
	gps_publish "$topic" '{"tok":1}' --interface "$src" "${auth[@]}" "$@"
}

# raw SOURCE HEADER_LINES - send a publish to /json/git/project-a with these header lines
# (CRLF-separated, may be empty) from SOURCE, by socat, for what curl would not send.
raw()
{
	printf 'POST /json/git/project-a HTTP/1.1\r\nHost: x\r\n%sContent-Length: 2\r\n\r\n{}' "$2" |
		http_send 127.0.0.1 "$GPS_PORT" 3 "bind=$1"
}

# both STATUS TOPIC TOKEN - require STATUS for a publish from the untrusted and the trusted
# address.
both()
{
	local src code
	for src in "$UNTRUSTED" "$TRUSTED"; do
		code=$(pub "$src" "$2" "$3") || return 1
		[[ $code == "$1" ]] || {
			echo "publish to $2 from $src got $code, wanted $1" >&2
			cat "$GPS_LAST_HEADERS" "$GPS_LAST_BODY" >&2
			return 1
		}
	done
}

# is_401 - the last answer ($GPS_LAST_HEADERS) is a 401 with WWW-Authenticate: Bearer.
is_401()
{
	[[ $(gps_status "$GPS_LAST_HEADERS") == 401 ]] &&
		[[ $(gps_header "$GPS_LAST_HEADERS" WWW-Authenticate) == Bearer* ]]
}

@test "a known token within its prefixes publishes, from any address, and is delivered" {
	gps_subscribe a /json/git/project-a
	both 200 /json/git/project-a "$TOKEN_A"
	both 200 /json/git/project-a/refs/heads "$TOKEN_A"
	both 200 /other/x "$TOKEN_B"
	both 200 /json/git/project-a "$TOKEN_ALL"
	# PUT is a publish too
	[ "$(pub "$UNTRUSTED" /json/git/project-a "$TOKEN_A" -X PUT)" = 200 ]
	gps_wait_messages a 7
	[ "$(gps_messages a | wc -l)" = 7 ]
}

@test "a known token outside its prefixes gets 403 naming neither token nor prefix" {
	gps_subscribe b /json/git
	both 403 /json/git/project-b "$TOKEN_A"
	# prefixes match whole segments, as subscriptions do (PROTOCOL 2.2)
	both 403 /json/git/project-ab "$TOKEN_A"
	both 403 /json/git "$TOKEN_A"
	both 403 /json/git/project-a "$TOKEN_B"
	[ "$(<"$GPS_LAST_BODY")" = "this token may not publish to this topic" ]
	run ! gps_header "$GPS_LAST_HEADERS" WWW-Authenticate
	# its answer is a whole error answer (PROTOCOL 7.1)
	raw "$UNTRUSTED" "Authorization: Bearer $TOKEN_B"$'\r\n'
	http_check_error -n 403
	run ! grep -e "$TOKEN_B" -e project-b -e other "$HTTP_OUT"
	# nothing was stored
	[ "$(pub "$TRUSTED" /json/git/marker)" = 200 ]
	gps_wait_messages b 1
	[ "$(gps_messages b)" = '{"tok":1}' ]
}

@test "an unknown token gets 401 with WWW-Authenticate: Bearer, from a trusted address too" {
	local src
	for src in "$UNTRUSTED" "$TRUSTED"; do
		[ "$(pub "$src" /json/git/project-a "$TOKEN_UNKNOWN")" = 401 ]
		is_401
		[ "$(pub "$src" /json/git/project-a "$TOKEN_NEAR")" = 401 ]
		is_401
		run ! grep -e "$TOKEN_NEAR" "$GPS_LAST_BODY" "$GPS_LAST_HEADERS"
	done
	raw "$TRUSTED" "Authorization: Bearer $TOKEN_UNKNOWN"$'\r\n'
	http_check_error 401
	grep -q $'^WWW-Authenticate: Bearer' "$HTTP_OUT"
}

@test "a malformed Authorization gets the same 401 as an unknown token" {
	local src want first=""
	for src in "$UNTRUSTED" "$TRUSTED"; do
		for h in "Authorization: Bearer"$'\r\n' \
			"Authorization: Bearer "$'\r\n' \
			"Authorization: Bearer $TOKEN_A"$'\r\n'"Authorization: Bearer $TOKEN_A"$'\r\n' \
			"Authorization: Bearer $TOKEN_A"$'\r\n'"Authorization: Bearer $TOKEN_B"$'\r\n' \
			"Authorization: Bearer gps_token with spaces"$'\r\n' \
			"Authorization: Bearer $TOKEN_A extra"$'\r\n' \
			"Authorization: Basic $(printf 'a:%s' "$TOKEN_A" | base64 -w0)"$'\r\n' \
			"Authorization: $TOKEN_A"$'\r\n' \
			"Authorization: Bearer $TOKEN_A;"$'\r\n' \
			"Authorization: Bearer $TOKEN_UNKNOWN"$'\r\n'; do
			raw "$src" "$h"
			http_check_error 401 || {
				echo "from $src with: $h" >&2
				return 1
			}
			# the same answer, byte for byte, whatever was wrong
			want=$(grep -v '^Date' "$HTTP_OUT")
			[[ -z $first ]] && first=$want
			[[ $want == "$first" ]] || {
				echo "from $src with '$h' a different answer:" >&2
				cat "$HTTP_OUT" >&2
				return 1
			}
		done
	done
	# the scheme is case-insensitive (RFC 9110 11.1)
	raw "$UNTRUSTED" "Authorization: bearer $TOKEN_A"$'\r\n'
	grep -q '^HTTP/1.1 200 ' "$HTTP_OUT"
}

@test "without Authorization nothing changes: a trusted address publishes, others get 403" {
	[ "$(pub "$TRUSTED" /json/git/project-a)" = 200 ]
	[ "$(pub "$UNTRUSTED" /json/git/project-a)" = 403 ]
	[ "$(<"$GPS_LAST_BODY")" = "Only trusted sources may send data!" ]
	[ "$(pub 127.0.0.1 /json/git/project-a)" = 403 ]
}

@test "HEAD statistics follow the publishing rules" {
	local h
	h=$(gps_head /json/git/project-a --interface "$UNTRUSTED" -H "Authorization: Bearer $TOKEN_A")
	grep -q '^X-Subscribers: ' <<<"$h"
	h=$(gps_head /json/git/project-b --interface "$UNTRUSTED" -H "Authorization: Bearer $TOKEN_A")
	grep -q '^HTTP/1.1 200 ' <<<"$h"
	run ! grep -q '^X-Subscribers: ' <<<"$h"
	h=$(gps_head / --interface "$TRUSTED" -H "Authorization: Bearer $TOKEN_UNKNOWN")
	grep -q '^HTTP/1.1 401 ' <<<"$h"
	grep -q '^WWW-Authenticate: Bearer' <<<"$h"
	h=$(gps_head / --interface "$TRUSTED")
	grep -q '^X-Subscribers: ' <<<"$h"
	h=$(gps_head / --interface "$UNTRUSTED")
	run ! grep -q '^X-Subscribers: ' <<<"$h"
}

# A keep-alive publisher from the untrusted address, as a coprocess: kp_open, then kp_publish
# TOKEN TOPIC sets KP_STATUS to each answer's status.
kp_open()
{
	coproc KP { exec socat - "TCP4:127.0.0.1:$GPS_PORT,bind=$UNTRUSTED"; }
}

kp_publish()
{
	local body='{"kp":1}' line len=0
	KP_STATUS=none
	printf 'POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s' \
		"$2" "$1" "${#body}" "$body" >&"${KP[1]}"
	IFS= read -r -t 5 line <&"${KP[0]}" || return 0
	KP_STATUS=$(awk '{ print $2 }' <<<"$line")
	while IFS= read -r -t 5 line <&"${KP[0]}"; do
		line=${line%$'\r'}
		[[ -z $line ]] && break
		[[ ${line,,} == content-length:* ]] && len=${line#*: }
	done
	((len > 0)) && IFS= read -r -t 5 -N "$len" line <&"${KP[0]}"
	return 0
}

@test "the file is read again when it changes, without dropping publishers or subscribers" {
	local new=gps_tokenNEW-0123456789abcdefghijklmnopqrstuv
	gps_subscribe r /json/git
	kp_open
	kp_publish "$TOKEN_A" /json/git/project-a
	[ "$KP_STATUS" = 200 ]
	[ "$(pub "$UNTRUSTED" /json/git/project-c "$new")" = 401 ]
	# A loses project-a for project-c; a new token appears
	sed -i "s|/json/git/project-a\$|/json/git/project-c|" "$TOKENS"
	echo "sha256:$(digest "$new") /json/git/new" >>"$TOKENS"
	sleep "$RELOAD_WAIT"
	# the connected publisher goes on under the new rules
	kp_publish "$TOKEN_A" /json/git/project-c
	[ "$KP_STATUS" = 200 ]
	kp_publish "$new" /json/git/new
	[ "$KP_STATUS" = 200 ]
	kp_publish "$TOKEN_A" /json/git/project-a
	[ "$KP_STATUS" = 403 ]
	both 200 /json/git/new "$new"
	both 403 /json/git/project-a "$TOKEN_A"
	# the subscriber stayed and got every accepted message
	gps_wait_messages r 5
	[ "$(gps_messages r | wc -l)" = 5 ]
	write_tokens
	sleep "$RELOAD_WAIT"
	both 200 /json/git/project-a "$TOKEN_A"
	both 401 /json/git/new "$new"
}

@test "a malformed line is reported with its number and the other lines still load" {
	write_tokens "sha256:0123 /json/git/short" "sha256:$(digest x) json/no-slash" \
		"sha256:$(digest y)" "sha256:$(digest z) /a/*/b"
	sleep "$RELOAD_WAIT"
	both 200 /json/git/project-a "$TOKEN_A"
	both 200 /other "$TOKEN_B"
	local n
	for n in 6 7 8 9; do
		_gps_sleep_until 3 grep -q "tokens:$n: " "$GPS_LOG" || {
			echo "line $n not reported:" >&2
			cat "$GPS_LOG" >&2
			return 1
		}
	done
	# gpsctl check says the same, and exits 1
	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$GPS_RING" check
	[[ $output == *"tokens:6:"* ]]
	write_tokens
}

@test "a tokens file readable by others is refused whole, with a clear message" {
	chmod 0644 "$TOKENS"
	sleep "$RELOAD_WAIT"
	both 401 /json/git/project-a "$TOKEN_A"
	is_401
	# address trust is untouched
	[ "$(pub "$TRUSTED" /json/git/project-a)" = 200 ]
	_gps_sleep_until 3 grep -q "tokens' has mode 0644" "$GPS_LOG"
	chmod 0600 "$TOKENS"
	sleep "$RELOAD_WAIT"
	both 200 /json/git/project-a "$TOKEN_A"
}

# median FILE - the median of the numbers in FILE, one a line.
median()
{
	sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

@test "unknown and almost-right tokens take the same time (figures printed)" {
	local k mu mn diff
	: >"$BATS_TEST_TMPDIR/unknown"
	: >"$BATS_TEST_TMPDIR/near"
	for ((k = 0; k < TIMING_ROUNDS; k++)); do
		curl -s -o /dev/null -w '%{time_total}\n' --interface "$UNTRUSTED" -d '{}' \
			-H "Authorization: Bearer $TOKEN_UNKNOWN" "$GPS_URL/json/git/project-a" \
			>>"$BATS_TEST_TMPDIR/unknown"
		curl -s -o /dev/null -w '%{time_total}\n' --interface "$UNTRUSTED" -d '{}' \
			-H "Authorization: Bearer $TOKEN_NEAR" "$GPS_URL/json/git/project-a" \
			>>"$BATS_TEST_TMPDIR/near"
	done
	mu=$(median "$BATS_TEST_TMPDIR/unknown")
	mn=$(median "$BATS_TEST_TMPDIR/near")
	diff=$(awk -v a="$mu" -v b="$mn" 'BEGIN { d = (a - b) * 1000; if (d < 0) d = -d; printf "%.3f", d }')
	echo "# figure: 401 median over $TIMING_ROUNDS requests: unknown ${mu}s, almost right ${mn}s, difference ${diff} ms ($GPS_MODE)" >&3
	awk -v d="$diff" -v b="$TIMING_BOUND_MS" 'BEGIN { exit !(d < b) }'
}

@test "tokens never appear in the logs" {
	run ! grep -e "$TOKEN_A" -e "$TOKEN_B" -e "$TOKEN_ALL" -e "$TOKEN_NEAR" -e "$TOKEN_UNKNOWN" \
		-e gps_tokenNEW "$GPS_LOG"
}

@test "the hook publishes with a token through an untrusted address" {
	local w=$BATS_FILE_TMPDIR bare clone
	bare=$w/project-h.git
	clone=$w/clone-h
	export HOME=$w GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$w/gitconfig
	printf '[user]\n\tname = Ann Author\n\temail = ann@example.org\n' >"$GIT_CONFIG_GLOBAL"
	git init -q --bare -b main "$bare"
	ln -s "$GPS_BUILD/gitpubsub-hook" "$bare/hooks/post-receive"
	# 127.0.0.1 is not trusted by this instance: only the token lets the hook publish
	git -C "$bare" config gitpubsub.url "$GPS_URL/json/git/{project}"
	git -C "$bare" config gitpubsub.timeout 3
	git clone -q "$bare" "$clone" 2>/dev/null
	gps_subscribe h /json/git/project-h.git
	echo "sha256:$(digest gps_tokenHOOK-0123456789abcdefghijklmnopqr) /json/git/project-h.git" \
		>>"$TOKENS"
	printf 'gps_tokenHOOK-0123456789abcdefghijklmnopqr\n' >"$w/hook-token"
	chmod 600 "$w/hook-token"
	sleep "$RELOAD_WAIT"

	# without a token: refused (the hook says so and the push still succeeds)
	echo 1 >"$clone/f"
	git -C "$clone" add f
	git -C "$clone" commit -q -m one
	run -0 git -C "$clone" push -q origin main
	[[ $output == *403* || $output == *rusted* ]]

	# with gitpubsub.tokenFile: delivered, and the token is never printed
	git -C "$bare" config gitpubsub.tokenFile "$w/hook-token"
	echo 2 >"$clone/f"
	git -C "$clone" commit -q -am two
	run -0 git -C "$clone" push -q origin main
	[[ $output != *gps_tokenHOOK* ]]
	gps_wait_messages h 1
	[[ $(gps_messages h) == *'"log":"two'* ]]

	# gitpubsub.token: the same; a wrong one is refused and not printed either
	git -C "$bare" config --unset gitpubsub.tokenFile
	git -C "$bare" config gitpubsub.token gps_tokenHOOK-wrong
	echo 3 >"$clone/f"
	git -C "$clone" commit -q -am three
	run -0 git -C "$clone" push -q origin main
	[[ $output == *401* || $output == *oken* ]]
	[[ $output != *gps_tokenHOOK-wrong* ]]
	git -C "$bare" config gitpubsub.token gps_tokenHOOK-0123456789abcdefghijklmnopqr
	echo 4 >"$clone/f"
	git -C "$clone" commit -q -am four
	run -0 git -C "$clone" push -q origin main
	gps_wait_messages h 2
	[[ $(gps_messages h | tail -n 1) == *'"log":"four'* ]]
}
