#!/usr/bin/env bats
#
# PROTOCOL 2: topics. How a request target becomes a topic, how subscriptions match, what may
# not be published to, and that no target crashes anything.
#
# A "does not receive" check publishes the unwanted messages first, then a marker the subscriber
# does want, and waits for the marker: messages arrive in publish order (PROTOCOL 3.4), so an
# unwanted message would have arrived before it.

bats_require_minimum_version 1.5.0

load lib
load lib-http

setup_file()
{
	gps_start
}

teardown_file()
{
	gps_stop
}

teardown()
{
	http_close_all
	http_unsubscribe_all
}

# sub NAME TOPIC - subscribe NAME to TOPIC, sent as is (no dot-segment removal by curl).
sub()
{
	gps_subscribe "$1" "$2" --path-as-is
}

# pub TOPIC JSON - publish JSON to TOPIC (sent as is) and require 200.
pub()
{
	local code
	code=$(gps_publish "$1" "$2" --path-as-is) || return 1
	[[ $code == 200 ]] || {
		echo "publish to '$1': status $code, wanted 200" >&2
		return 1
	}
}

# messages_are NAME JSON... - wait for subscriber NAME's messages and require exactly JSON...,
# in that order.
messages_are()
{
	local name=$1 want got
	shift
	want=$(printf '%s\n' "$@")
	gps_wait_messages "$name" $# || return 1
	got=$(gps_messages "$name") || return 1
	[[ $got == "$want" ]] || {
		printf 'subscriber %s received:\n%s\nwanted:\n%s\n' "$name" "$got" "$want" >&2
		return 1
	}
}

# raw_status METHOD TARGET [BODY] - send one request with TARGET as given (printf %s: it may hold
# any byte but NUL) and print the status code of the answer ("" if none came within 3 s).
raw_status()
{
	local body=${3:-}
	printf '%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s' \
		"$1" "$2" "${#body}" "$body" | http_send 127.0.0.1 "$GPS_PORT" 3
	http_status "$HTTP_OUT" || true
}

# refused TARGET... - require that publishing to each TARGET gets a complete 400 (PROTOCOL 7.1).
refused()
{
	local t
	for t in "$@"; do
		printf 'POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n{"no":1}' "$t" |
			http_send 127.0.0.1 "$GPS_PORT" 3
		http_check_error 400 || {
			echo "publishing to target '$t' was not refused with 400" >&2
			return 1
		}
	done
}

# keepalive_after FILE OFFSET - whether FILE holds a keepalive after its first OFFSET bytes.
keepalive_after()
{
	tail -c +$(($2 + 1)) "$1" | grep -q '{"stillalive": '
}

@test "2.1 the query string is dropped" {
	sub q '/q?since=1&x=y'
	sub qa /qs/a
	pub '/q?a=1' '{"q":1}'
	pub /q '{"q":2}'
	pub '/q/r?s=/t' '{"q":3}'
	# The query goes before the path is split: this is topic /qs, not /qs/a.
	pub '/qs?/a' '{"q":4}'
	pub /qs/a '{"q":5}'
	messages_are q '{"q":1}' '{"q":2}' '{"q":3}'
	messages_are qa '{"q":5}'
}

@test "2.1 %XX escapes are decoded inside each segment" {
	sub e /enc/abc
	sub j /enc/J
	pub /enc/%61%62%63 '{"e":1}'
	pub /%65nc/ab%63 '{"e":2}'
	pub /enc/abc '{"e":3}'
	pub /enc/%4a '{"e":4}'
	pub /enc/%4A '{"e":5}'
	messages_are e '{"e":1}' '{"e":2}' '{"e":3}'
	messages_are j '{"e":4}' '{"e":5}'
}

@test "2.1 %2F is a character of its segment, not a separator" {
	sub seg '/sl/a%2Fb'
	sub deep /sl/a/b
	sub a /sl/a
	pub '/sl/a%2Fb' '{"s":1}'
	pub /sl/a/b '{"s":2}'
	pub '/sl/a%2fb' '{"s":3}'
	pub /sl/a/b '{"s":4}'
	messages_are seg '{"s":1}' '{"s":3}'
	messages_are deep '{"s":2}' '{"s":4}'
	# The segment "a/b" is not "a": /sl/a gets neither escaped publish.
	messages_are a '{"s":2}' '{"s":4}'
}

@test "2.1 empty segments are ignored" {
	sub j /json
	sub ef '//e//f/'
	pub //json '{"j":1}'
	pub /json/ '{"j":2}'
	pub /json//x// '{"j":3}'
	pub /e/f '{"j":4}'
	messages_are j '{"j":1}' '{"j":2}' '{"j":3}'
	messages_are ef '{"j":4}'
}

@test "2.1 matching is case-sensitive" {
	sub c /Case
	pub /case '{"c":1}'
	pub /CASE '{"c":2}'
	pub /Case/X '{"c":3}'
	messages_are c '{"c":3}'
}

@test "2.1 a raw byte and its %XX escape are the same byte" {
	sub raw '/caf%C3%A9'
	sub esc $'/caf\xc3\xa9/x'
	[ "$(raw_status POST $'/caf\xc3\xa9' '{"r":1}')" = 200 ]
	pub '/caf%c3%a9/x' '{"r":2}'
	pub '/cafe' '{"r":3}'
	pub '/caf%C3%A9' '{"r":4}'
	messages_are raw '{"r":1}' '{"r":2}' '{"r":4}'
	messages_are esc '{"r":2}'
}

@test "2.2 /foo receives /foo, /foo/bar and /foo/bar/baz" {
	sub foo /foo
	pub /foo '{"f":1}'
	pub /foo/bar '{"f":2}'
	pub /foo/bar/baz '{"f":3}'
	messages_are foo '{"f":1}' '{"f":2}' '{"f":3}'
}

@test "2.2 /foo does not receive /foobar" {
	sub foo /foo
	pub /foobar '{"f":1}'
	pub /fo '{"f":2}'
	pub /foo2/bar '{"f":3}'
	pub /xfoo '{"f":4}'
	pub /bar/foo '{"f":5}'
	pub /foo '{"f":6}'
	messages_are foo '{"f":6}'
}

@test "2.2 /foo/bar does not receive /foo or /foo/baz" {
	sub fb /foo/bar
	pub /foo '{"f":1}'
	pub /foo/baz '{"f":2}'
	pub /foo/barx '{"f":3}'
	pub /foo/bar/x '{"f":4}'
	messages_are fb '{"f":4}'
}

@test "2.3 a * segment matches any one segment" {
	sub g '/git/*/refs/heads'
	pub /git/a/refs/heads/main '{"g":1}'
	pub /git/b/refs/heads '{"g":2}'
	pub /git/refs/heads/main '{"g":3}'
	pub /git/a/b/refs/heads '{"g":4}'
	pub /git/a/refs/tags/v1 '{"g":5}'
	pub /git '{"g":6}'
	pub /git/c/refs/heads/x/y '{"g":7}'
	messages_are g '{"g":1}' '{"g":2}' '{"g":7}'
}

@test "2.3 a trailing * segment matches zero or more segments" {
	sub star '/json/*'
	sub plain /json
	sub two '/tw/*/*'
	pub /json '{"t":1}'
	pub /json/a '{"t":2}'
	pub /json/a/b '{"t":3}'
	pub /jsonx '{"t":4}'
	pub /json2/a '{"t":5}'
	pub /json/end '{"t":6}'
	messages_are star '{"t":1}' '{"t":2}' '{"t":3}' '{"t":6}'
	messages_are plain '{"t":1}' '{"t":2}' '{"t":3}' '{"t":6}'

	# Only the last * may match nothing: the one before it takes exactly one segment.
	pub /tw '{"w":1}'
	pub /tw/a '{"w":2}'
	pub /tw/a/b/c '{"w":3}'
	messages_are two '{"w":2}' '{"w":3}'
}

@test "2.3 a * inside a longer segment is an ordinary character" {
	sub lit '/lit/a*b'
	pub /lit/axb '{"l":1}'
	pub /lit/ab '{"l":2}'
	pub /lit/a/b '{"l":3}'
	pub '/lit/a*b' '{"l":4}'
	pub '/lit/a%2Ab' '{"l":5}'
	messages_are lit '{"l":4}' '{"l":5}'
}

@test "2.4 / subscribes to everything" {
	sub all /
	sub all2 //
	pub /x '{"a":1}'
	pub /y/z '{"a":2}'
	pub '/%41b' '{"a":3}'
	pub '/c*d/e?f' '{"a":4}'
	messages_are all '{"a":1}' '{"a":2}' '{"a":3}' '{"a":4}'
	messages_are all2 '{"a":1}' '{"a":2}' '{"a":3}' '{"a":4}'
}

@test "2.5 publishing to a * segment is refused with 400" {
	sub all /
	refused '/star/*' '/*/star' '/*' '/star/*/x' '/star/*?q=1'
	# Nothing was stored: the marker is the first message.
	pub /star '{"marker":1}'
	messages_are all '{"marker":1}'
}

@test "2.5 publishing to a target with a NUL or a control character is refused with 400" {
	sub all /
	refused /c/%00 /c/%01 /c/%09 /c/%0A /c/%0d /c/%1F /c/%7F /c/%7f/x
	refused $'/c/a\x01b' $'/c/\x1b' $'/c/\x7f'
	printf 'POST /c/a\x00b HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n{"no":1}' |
		http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
	pub /c '{"marker":2}'
	messages_are all '{"marker":2}'
}

@test "2.5 publishing to an invalid % escape is refused with 400" {
	sub all /
	refused /p/%G1 /p/%4 /p/% /p/%% /p/%4g /p/%/x '/p/a%' /p/%-1 /p/%+f /p/%%41
	pub /p '{"marker":3}'
	messages_are all '{"marker":3}'
}

@test "2.5 a subscription with an invalid % escape is refused with 400" {
	local t
	for t in /s/%G1 /s/%4 /s/% /s/%zz /s/%/x '/s/%4?q=%41'; do
		printf 'GET %s HTTP/1.1\r\nHost: t\r\n\r\n' "$t" | http_send 127.0.0.1 "$GPS_PORT" 3
		http_check_error 400
	done
}

@test "2.5 odd subscriber paths crash nothing" {
	local -a targets=(
		/%00 /%0A /%7F /%FF /%C3%A9 $'/\xc3\xa9' $'/\xff\xfe' '/*' '/*/*/*/*' '/**' '/a/*b*/c'
		/./../.. ////// /%2F%2F%2F /%25 /%252F '/a?b?c' '/?' '/#frag' '/;x' '/a/%2e%2e/b'
		"/$(printf 'a/%.0s' {1..4000})" "/$(printf '*/%.0s' {1..4000})"
		"/$(printf 'x%.0s' {1..8000})" "/$(printf '%%41%.0s' {1..2600})"
		http://h:1 http://h:1/ 'http://h/*/x' https://h/a '*' '%2F' 'x/y'
	)
	local i t code pid out
	local -a streams=() sizes=()
	pid=$(gps_broker_pid)
	for i in "${!targets[@]}"; do
		printf 'GET %s HTTP/1.1\r\nHost: t\r\n\r\n' "${targets[i]}" |
			http_open "odd$i" 127.0.0.1 "$GPS_PORT" 8
	done
	for i in "${!targets[@]}"; do
		http_wait_head "odd$i" 3 || {
			echo "no complete answer to GET '${targets[i]}'" >&2
			return 1
		}
		t=${targets[i]}
		code=$(http_status "$(http_conn_out "odd$i")") || true
		[[ $code == 200 || $code == 400 ]] || {
			echo "GET '$t': status '$code', wanted 200 or 400" >&2
			return 1
		}
		[[ $code == 200 ]] && streams+=("$i")
	done

	# A message, matched against every odd subscription; each stream must live on after it:
	# a keepalive (1 s) arrives after the message was published.
	for i in "${streams[@]}"; do
		sizes[i]=$(stat -c %s "$(http_conn_out "odd$i")")
	done
	pub /odd '{"odd":1}'
	for i in "${streams[@]}"; do
		out=$(http_conn_out "odd$i")
		_gps_sleep_until 3 keepalive_after "$out" "${sizes[i]}" || {
			echo "GET '${targets[i]}': the stream ended or stalled after a publish:" >&2
			cat -v "$out" >&2
			return 1
		}
	done
	http_close_all

	# Still serving, with the same broker.
	sub after /odd
	pub /odd '{"odd":2}'
	messages_are after '{"odd":2}'
	[ "$(gps_broker_pid)" = "$pid" ]
}

@test "2.6 an absolute-form target is reduced to its path" {
	sub abs /abs
	[ "$(raw_status POST "http://127.0.0.1:$GPS_PORT/abs/x" '{"b":1}')" = 200 ]
	[ "$(raw_status POST "http://example.org/abs/y?z=1" '{"b":2}')" = 200 ]
	messages_are abs '{"b":1}' '{"b":2}'

	printf 'GET http://127.0.0.1:%s/abs2?x=1 HTTP/1.1\r\nHost: t\r\n\r\n' "$GPS_PORT" |
		http_open abs2 127.0.0.1 "$GPS_PORT" 5
	http_wait_conn abs2 'application/x-gitpubsub'
	pub /abs2/z '{"b":3}'
	http_wait_conn abs2 '{"b":3}'
}
