#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# PROTOCOL section 4: publishing with POST and PUT. One service for the whole file, with a body
# limit of 1 KiB (4.4) and the default trusted peers (127.0.0.1 and ::1): 127.0.0.2 is an
# untrusted loopback source. Each test uses topics of its own.

bats_require_minimum_version 1.5.0

load lib

# The body limit of this file's configuration, in bytes.
MAX_BODY=1024
INVALID_JSON_BODY=$'Invalid JSON data posted :(\r\n'

setup_file()
{
	gps_start "[Limits]" "maxBodySize: 1K"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	# 4.6 stops the broker; never leave it stopped for the next test.
	if [[ -f $BATS_FILE_TMPDIR/broker-stopped ]]; then
		kill -CONT "$(<"$BATS_FILE_TMPDIR/broker-stopped")" 2>/dev/null || true
		rm -f "$BATS_FILE_TMPDIR/broker-stopped"
	fi
	gps_unsubscribe_all
}

# expect_messages NAME JSON... - subscriber NAME has received exactly these messages, in order.
# Callers end the list with a sentinel they publish last: since delivery is in publish order,
# anything wrongly delivered before the sentinel shows up in the list.
expect_messages()
{
	local name=$1 want got
	shift
	gps_wait_messages "$name" $#
	sleep 0.2
	got=$(gps_messages "$name")
	want=$(printf '%s\n' "$@")
	if [[ $got != "$want" ]]; then
		printf 'subscriber %s: expected\n%s\ngot\n%s\n' "$name" "$want" "$got" | cat -A >&2
		return 1
	fi
}

# publish_ok TOPIC JSON [CURL_ARGS...] - publish and require a 200.
publish_ok()
{
	local code
	code=$(gps_publish "$@") || return 1
	[[ $code == 200 ]] || {
		echo "publish to $1: status $code, expected 200" >&2
		return 1
	}
}

# raw REQUEST [TIMEOUT] [SOCAT_OPTS] - send REQUEST to the service, the answer in $BATS_FILE_TMPDIR/resp.
raw()
{
	RESP=$BATS_FILE_TMPDIR/resp
	gps_raw 127.0.0.1 "$GPS_PORT" "$1" "${2:-3}" "${3:-}" >"$RESP"
	echo "answer:"
	cat -A "$RESP" | head -c 2000
	echo
}

# body_of_size N - a valid JSON text of exactly N bytes (N >= 8).
body_of_size()
{
	local pad
	printf -v pad '%*s' $(($1 - 8)) ''
	printf '{"p":"%s"}' "${pad// /x}"
}

# ms_now - milliseconds since the epoch.
ms_now()
{
	echo $(($(date +%s%N) / 1000000))
}

@test "4.1 POST and PUT are the same: both publish and both get 200 Message sent!" {
	gps_subscribe s /p41
	run -0 gps_publish /p41 '{"m":"post"}'
	[ "$output" = 200 ]
	[ "$(cat -A "$GPS_LAST_BODY")" = "$(printf 'Message sent!\r\n' | cat -A)" ]
	run -0 gps_publish /p41 '{"m":"put"}' -X PUT
	[ "$output" = 200 ]
	[ "$(cat -A "$GPS_LAST_BODY")" = "$(printf 'Message sent!\r\n' | cat -A)" ]
	expect_messages s '{"m":"post"}' '{"m":"put"}'
}

@test "4.1 an untrusted peer gets 403 with the compat body, and nothing is delivered" {
	gps_subscribe s /p41u
	run -0 gps_publish /p41u '{"m":"untrusted"}' --interface 127.0.0.2
	[ "$output" = 403 ]
	[ "$(cat -A "$GPS_LAST_BODY")" = "Only trusted sources may send data!" ]
	run -0 gps_publish /p41u '{"m":"untrusted put"}' --interface 127.0.0.2 -X PUT
	[ "$output" = 403 ]
	[ "$(cat -A "$GPS_LAST_BODY")" = "Only trusted sources may send data!" ]
	publish_ok /p41u '{"m":"sentinel"}'
	expect_messages s '{"m":"sentinel"}'
}

@test "4.1 the 403 comes as soon as the head is read, without the body being sent" {
	local start elapsed
	start=$(ms_now)
	# Content-Length promises a body that never comes, and the client does not half-close.
	# headerTimeout is 1 s and bodyTimeout 2 s: the answer must come before either.
	raw $'POST /p41w HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n' \
		0.8 bind=127.0.0.2
	elapsed=$(($(ms_now) - start))
	echo "answered within ${elapsed} ms"
	[[ $(head -n 1 "$RESP") == "HTTP/1.1 403 "* ]]
	[[ $(cat "$RESP") == *$'\r\n\r\nOnly trusted sources may send data!' ]]
}

@test "4.2 a body framed by Content-Length" {
	gps_subscribe s /p42cl
	raw $'POST /p42cl HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{"cl":10}\n'
	[[ $(head -n 1 "$RESP") == $'HTTP/1.1 200 OK\r' ]]
	# Exactly Content-Length bytes: a second request may follow on the same connection.
	raw $'POST /p42cl HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n{"cl":1}POST /p42cl HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{"cl":2}'
	[ "$(grep -c '^HTTP/1.1 200 OK' "$RESP")" -eq 2 ]
	expect_messages s '{"cl":10}' '{"cl":1}' '{"cl":2}'
}

@test "4.2 a chunked body" {
	gps_subscribe s /p42ch
	raw $'POST /p42ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{"ch"\r\n6\r\n:"unk"\r\n1\r\n}\r\n0\r\n\r\n'
	[[ $(head -n 1 "$RESP") == $'HTTP/1.1 200 OK\r' ]]
	# curl's own chunked upload.
	run -0 gps_publish /p42ch '{"ch":"curl"}' -H 'Transfer-Encoding: chunked'
	[ "$output" = 200 ]
	expect_messages s '{"ch":"unk"}' '{"ch":"curl"}'
}

@test "4.2 with neither Content-Length nor Transfer-Encoding the body is one line ending at LF" {
	gps_subscribe s /p42line
	raw $'POST /p42line HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{"line":1}\n'
	[[ $(head -n 1 "$RESP") == $'HTTP/1.1 200 OK\r' ]]
	[[ $(
		cat "$RESP"
		echo x
	) == *$'\r\n\r\nMessage sent!\r\nx' ]]
	# A CRLF line end is whitespace around the JSON text.
	raw $'POST /p42line HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{"line":2}\r\n'
	[[ $(head -n 1 "$RESP") == $'HTTP/1.1 200 OK\r' ]]
	expect_messages s '{"line":1}' '{"line":2}'
}

@test "4.2 ... or at the end of the client's half of the connection (the Lua hook's way)" {
	gps_subscribe s /p42half
	# No LF: the body ends when the client shuts down its sending side.
	raw $'POST /p42half HTTP/1.1\r\nHost: x\r\n\r\n{"half":1}' 3 shut-down
	[[ $(head -n 1 "$RESP") == $'HTTP/1.1 200 OK\r' ]]
	raw $'PUT /p42half HTTP/1.0\r\n\r\n{"half":2}' 3 shut-down
	[[ $(head -n 1 "$RESP") == $'HTTP/1.1 200 OK\r' ]]
	expect_messages s '{"half":1}' '{"half":2}'
}

@test "4.2 Content-Length together with Transfer-Encoding gets 400, nothing delivered" {
	gps_subscribe s /p42smug
	raw $'POST /p42smug HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"te":1\r\n1\r\n}\r\n0\r\n\r\n'
	gps_check_error "$RESP" 400
	raw $'POST /p42smug HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 8\r\n\r\n{"te":2}'
	gps_check_error "$RESP" 400
	publish_ok /p42smug '{"sentinel":1}'
	expect_messages s '{"sentinel":1}'
}

@test "4.2 differing Content-Length headers get 400, nothing delivered" {
	gps_subscribe s /p42dup
	raw $'POST /p42dup HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\nContent-Length: 9\r\n\r\n{"dup":1}'
	gps_check_error "$RESP" 400
	raw $'POST /p42dup HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nContent-Length: 8\r\n\r\n{"dup":2}'
	gps_check_error "$RESP" 400
	raw $'POST /p42dup HTTP/1.1\r\nHost: x\r\nContent-Length: 8, 9\r\n\r\n{"dup":3}'
	gps_check_error "$RESP" 400
	publish_ok /p42dup '{"sentinel":1}'
	expect_messages s '{"sentinel":1}'
}

@test "4.2 Expect: 100-continue is answered with 100 Continue before the body is sent" {
	local start elapsed
	gps_subscribe s /p42exp
	# Only the head: the interim answer must come without the body.
	raw $'POST /p42exp HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n' 0.8
	[ "$(cat -A "$RESP")" = "$(printf 'HTTP/1.1 100 Continue\r\n\r\n' | cat -A)" ]
	# curl waits for it (up to 10 s here) before it sends the body.
	start=$(ms_now)
	run -0 gps_publish /p42exp '{"expect":1}' -H 'Expect: 100-continue' --expect100-timeout 10
	elapsed=$(($(ms_now) - start))
	[ "$output" = 200 ]
	grep -q $'^HTTP/1.1 100 Continue\r$' "$GPS_LAST_HEADERS"
	((elapsed < 2000))
	expect_messages s '{"expect":1}'
}

@test "4.3 every kind of JSON text is accepted and relayed" {
	local m
	local -a kinds=('{"o":1}' '[1,"a",null,{"x":[]}]' '"str"' '42' '-1.5e+3' '0' 'true' 'false'
		'null' '{}' '[]' '"esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00"' '{"utf8":"é€😀"}')
	gps_subscribe s /p43kinds
	for m in "${kinds[@]}"; do
		echo "publishing $m"
		publish_ok /p43kinds "$m"
	done
	# Whitespace around the text is removed.
	publish_ok /p43kinds $' \t\r\n {"ws":1} \r\n\t '
	publish_ok /p43kinds '{"sentinel":1}'
	expect_messages s "${kinds[@]}" '{"ws":1}' '{"sentinel":1}'
}

@test "4.3 invalid JSON gets 400 with the compat body, and nothing is delivered" {
	local m code
	local -a bad=('{' '}' '{"a":tru}' '[1,]' '{}{}' '[01]' 'nul' '' ' ' "'x'" '{"a" "b"}'
		'{"a":1,}' '1 2' '[1] x' '"\u12"' '"\x"' 'NaN' 'Infinity' '-' '01' '1.' '.5' '+1'
		'{"a":1}}' '{a:1}' $'"a\tb"' $'"a\x01b"' $'"\xff"' $'"\xc3\x28"' $'"\xed\xa0\x80"'
		$'[1,\x0b2]' 'true false' '"unterminated')
	gps_subscribe s /p43bad
	for m in "${bad[@]}"; do
		code=$(gps_publish /p43bad "$m")
		printf 'body %q: %s\n' "$m" "$code"
		[ "$code" = 400 ]
		[ "$(cat -A "$GPS_LAST_BODY")" = "$(printf '%s' "$INVALID_JSON_BODY" | cat -A)" ]
	done
	publish_ok /p43bad '{"sentinel":1}'
	expect_messages s '{"sentinel":1}'
}

@test "4.3 a multi-line body arrives as one line: CR, LF and TAB outside strings become spaces" {
	gps_subscribe s /p43norm
	publish_ok /p43norm $'{\n\t"a": "x\\ty",\r\n\t"b": [1,\n2],\t"c": "s p\\r\\n"\n}\n'
	publish_ok /p43norm $'[\r\n  1\r\n]'
	expect_messages s '{  "a": "x\ty",   "b": [1, 2], "c": "s p\r\n" }' '[    1  ]'
}

@test "4.3 a one-line body is relayed byte for byte" {
	local m='{"b":  [1 ,2] ,"u":"\u00e9é","n":1.0E+2,  "q":"\"\\/" , "z":-0.0e-0}'
	gps_subscribe s /p43bytes
	publish_ok /p43bytes "$m"
	publish_ok /p43bytes '[ 1 , 2 ]'
	expect_messages s "$m" '[ 1 , 2 ]'
	[ "$(gps_messages s | head -n 1 | od -An -tx1)" = "$(printf '%s\n' "$m" | od -An -tx1)" ]
}

@test "4.4 a body over maxBodySize gets 413 and nothing is stored" {
	local at over
	at=$(body_of_size "$MAX_BODY")
	over=$(body_of_size $((MAX_BODY + 1)))
	[ "${#at}" -eq "$MAX_BODY" ]
	gps_subscribe s /p44
	publish_ok /p44 "$at"
	run -0 gps_publish /p44 "$over"
	[ "$output" = 413 ]
	# Counted after chunked decoding.
	run -0 gps_publish /p44 "$over" -H 'Transfer-Encoding: chunked'
	[ "$output" = 413 ]
	raw $'POST /p44 HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n'"$over"
	gps_check_error "$RESP" 413
	publish_ok /p44 '{"sentinel":1}'
	expect_messages s "$at" '{"sentinel":1}'
}

@test "4.4 the 413 comes as soon as the limit is crossed" {
	local part
	part=$(body_of_size 1100)
	part=${part%\"\}}
	# Content-Length over the limit, 1098 bytes sent, the rest never: no waiting for the body
	# (bodyTimeout is 2 s).
	raw $'POST /p44x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n'"$part" 1
	[[ $(head -n 1 "$RESP") == "HTTP/1.1 413 "* ]]
	# Chunked: a chunk of 1100 bytes announced, 1098 sent, the stream left open.
	raw $'POST /p44x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n44c\r\n'"$part" 1
	[[ $(head -n 1 "$RESP") == "HTTP/1.1 413 "* ]]
}

@test "4.5 the 200 answer: status, Server, X-Timestamp, Content-Length, body" {
	local before after ts
	before=$(date +%s)
	raw $'POST /p45 HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"ok":45}'
	after=$(date +%s)
	[ "$(head -n 1 "$RESP")" = $'HTTP/1.1 200 OK\r' ]
	[[ $(gps_header "$RESP" Server) == GitPubSub/?* ]]
	ts=$(gps_header "$RESP" X-Timestamp)
	[[ $ts =~ ^[0-9]+$ ]]
	((ts >= before && ts <= after))
	[ "$(gps_header "$RESP" Content-Length)" = 15 ]
	[ "$(gps_body "$RESP" | cat -A)" = "$(printf 'Message sent!\r\n' | cat -A)" ]
	# A 200 means it is held: a subscriber arriving now replays it.
	gps_subscribe late /p45 -H "X-Fetch-Since: $ts"
	gps_wait_messages late 1
	[ "$(gps_messages late)" = '{"ok":45}' ]
}

@test "4.5 publishes are delivered in the order their 200s were given" {
	local p
	local -a pids=()
	gps_subscribe s /p45order
	# Three publishers at once, each waiting for its 200 before the next publish.
	for p in 1 2 3; do
		seq 1 100 | sed "s/.*/{\"p$p\":&}/" | gps_publish_batch /p45order \
			>"$BATS_FILE_TMPDIR/pub-$p.out" 3>&- &
		pids+=($!)
	done
	gps_wait_pids 30 "${pids[@]}"
	for p in 1 2 3; do
		gps_all_200 "$BATS_FILE_TMPDIR/pub-$p.out" 100
	done
	gps_wait_messages s 300
	run -0 gps_messages s
	[ "${#lines[@]}" -eq 300 ]
	for p in 1 2 3; do
		[ "$(printf '%s\n' "${lines[@]}" | grep "\"p$p\"")" = "$(seq 1 100 | sed "s/.*/{\"p$p\":&}/")" ]
	done
}

@test "1.3 + 4.5: pipelined publishes are answered in order; an invalid one closes after the answers before it" {
	local req="" b one heads cursors start
	local -a seqs
	gps_subscribe s /p13pipe
	# Five publishes in one write, handed to the broker together: the fourth is invalid JSON,
	# the fifth is never answered.
	for b in '{"n":1}' '{"n":2}' '{"n":3}' '{"n":' '{"n":5}'; do
		printf -v one 'POST /p13pipe HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' \
			"${#b}" "$b"
		req+=$one
	done
	start=$(ms_now)
	raw "$req" 5 >/dev/null
	# the 400 closes the connection: well before raw's 5 s
	(($(ms_now) - start < 4000))
	heads=$(grep -a '^HTTP/1.1 ' "$RESP" | tr -d '\r' | tr '\n' ,)
	echo "answers: $heads"
	[ "$heads" = "HTTP/1.1 200 OK,HTTP/1.1 200 OK,HTTP/1.1 200 OK,HTTP/1.1 400 Bad Request," ]
	grep -aq 'Invalid JSON data posted' "$RESP"
	# the three stored got consecutive cursors, in the order sent
	cursors=$(grep -a '^X-Cursor: ' "$RESP" | tr -d '\r' | sed 's/.*-//' | tr '\n' ' ')
	echo "seqs: $cursors"
	read -r -a seqs <<<"$cursors"
	((${#seqs[@]} == 3 && seqs[1] == seqs[0] + 1 && seqs[2] == seqs[1] + 1))
	expect_messages s '{"n":1}' '{"n":2}' '{"n":3}'
}

# end_body PORT HOW WAIT REQUEST - send REQUEST on a new connection, wait WAIT seconds, then
# end it: HOW "reset" closes with SO_LINGER 0 (a TCP RST, no orderly end), "shut" half-closes
# (the original hook's end of a body) and prints the answer.
end_body()
{
	perl -MIO::Socket::INET -MSocket -e '
		my ($port, $how, $wait, $req) = @ARGV;
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port,
					      Timeout => 5) or die "connect: $!";
		$s->autoflush(1);
		print $s $req;
		select(undef, undef, undef, $wait);
		if ($how eq "reset") {
			setsockopt($s, SOL_SOCKET, SO_LINGER, pack("ii", 1, 0)) or die "linger: $!";
			close $s;
			exit 0;
		}
		shutdown($s, 1);
		local $/;
		$s->timeout(5);
		print scalar <$s>;' "$1" "$2" "$3" "$4"
}

@test "4.2 a body framed by the end of input is stored on an orderly end only, not on a reset" {
	local t0 wait req=$'POST /p42rst HTTP/1.0\r\n\r\n'
	t0=$(gps_now)
	# "12345" cut short is still JSON ("12"): only the client's half-close says it is whole
	for wait in 0 0.3; do
		run -0 end_body "$GPS_PORT" reset "$wait" "${req}12345"
		echo "# HTTP/1.0 body '12345' without Content-Length, then a reset after ${wait} s" >&3
	done
	run -0 end_body "$GPS_PORT" shut 0.3 "${req}678"
	echo "# the same ended by a half-close: $(head -n 1 <<<"$output")" >&3
	[[ $output == $'HTTP/1.1 200 OK\r'* ]]
	gps_subscribe h /p42rst -H "X-Fetch-Since: $t0"
	gps_wait_messages h 1
	sleep 0.3
	run -0 gps_messages h
	echo "# the topic's history since the test began: ${lines[*]}" >&3
	[ "$output" = 678 ]
}

# publish_stopped TOPIC JSON - stop the broker (teardown resumes it if the test does not), then
# publish; sets STOPPED_STATUS (the status code) and STOPPED_MS (how long the answer took).
publish_stopped()
{
	local start broker
	broker=$(gps_broker_pid)
	echo "$broker" >"$BATS_FILE_TMPDIR/broker-stopped"
	kill -STOP "$broker"
	start=$(ms_now)
	STOPPED_STATUS=$(gps_publish "$1" "$2") || true
	STOPPED_MS=$(($(ms_now) - start))
}

# resume_broker - resume the broker publish_stopped stopped.
resume_broker()
{
	kill -CONT "$(<"$BATS_FILE_TMPDIR/broker-stopped")"
	rm -f "$BATS_FILE_TMPDIR/broker-stopped"
}

@test "4.6 with the broker not answering, a publish gets 503 with Retry-After, never 200" {
	gps_subscribe s /p46
	publish_stopped /p46 '{"stopped":1}'
	echo "status $STOPPED_STATUS after $STOPPED_MS ms"
	cat -A "$GPS_LAST_HEADERS"
	[ "$STOPPED_STATUS" = 503 ]
	gps_header "$GPS_LAST_HEADERS" Retry-After | grep -Eq '^[0-9]+$'
	((STOPPED_MS < 10000))
	{
		cat "$GPS_LAST_HEADERS"
		cat "$GPS_LAST_BODY"
	} >"$BATS_FILE_TMPDIR/resp503"
	gps_check_error "$BATS_FILE_TMPDIR/resp503" 503

	resume_broker
	publish_ok /p46 '{"running":1}'
	gps_wait_messages s 1
	run -0 gps_messages s
	[ "${lines[-1]}" = '{"running":1}' ]
}

@test "4.6 a 503 means not stored: a stalled broker, resumed, refuses the publish it answers late" {
	publish_stopped /p46late '{"late":1}'
	echo "# broker stopped: publish answered $STOPPED_STATUS after $STOPPED_MS ms" >&3
	[ "$STOPPED_STATUS" = 503 ]
	resume_broker
	# the resumed broker reads the request now (its answer goes nowhere), then this one
	publish_ok /p46late '{"after":1}'
	# the whole history of the topic: only the publish answered 200
	gps_subscribe h /p46late -H 'X-Fetch-Since: 0'
	gps_wait_messages h 1
	sleep 0.3
	run -0 gps_messages h
	echo "# broker resumed: the topic's history holds: ${lines[*]}" >&3
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = '{"after":1}' ]
	grep -q 'came after their frontend.s deadline' "$GPS_LOG"
	echo "# broker log: $(grep -o '[0-9]* publish(es) came after.*late)' "$GPS_LOG" | tail -1)" >&3
}
