#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031 # GPS_URL is set per command on purpose, to reach other instances
#
# PROTOCOL 1: transport. HTTP/1.1 and 1.0 over IPv4 and IPv6, everything else refused and closed,
# persistent connections, pipelining, and a GET ending the request loop.

bats_require_minimum_version 1.5.0

load lib
load lib-http

setup_file()
{
	# A header timeout far above "at once": bytes that cannot start a request must be answered
	# when they arrive, and a keep-alive connection held for 2 s must not be timed out.
	gps_start "[Limits]" "headerTimeout: 5s"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	http_close_all
	http_unsubscribe_all
	http_instance_stop_all
}

# The TLS 1.2 ClientHello a client sends first on an https:// connection: record header (0x16,
# version 3.1, length 47), handshake header (ClientHello, length 43), version 3.3, 32 random bytes,
# no session id, one cipher suite, null compression, no extensions. It holds NUL bytes.
client_hello()
{
	printf '\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03'
	printf '\x11%.0s' {1..32}
	printf '\x00\x00\x02\xc0\x2f\x01\x00\x00\x00'
}

@test "1.1 IPv4 and IPv6 listeners serve one service" {
	local port
	http_instance_start dual 127.0.0.1:PORT '[::1]:PORT'
	port=$(http_instance_port dual)

	GPS_URL=http://127.0.0.1:$port gps_subscribe v4 /dual
	GPS_URL="http://[::1]:$port" gps_subscribe v6 /dual -g

	GPS_URL=http://127.0.0.1:$port run -0 gps_publish /dual '{"via":4}'
	[ "$output" = 200 ]
	GPS_URL="http://[::1]:$port" run -0 gps_publish /dual '{"via":6}' -g
	[ "$output" = 200 ]

	gps_wait_messages v4 2
	gps_wait_messages v6 2
	run -0 gps_messages v4
	[ "$output" = $'{"via":4}\n{"via":6}' ]
	run -0 gps_messages v6
	[ "$output" = $'{"via":4}\n{"via":6}' ]
}

@test "1.1 an HTTP/1.0 request is served" {
	gps_subscribe h10 /h10

	printf 'POST /h10 HTTP/1.0\r\nContent-Length: 8\r\n\r\n{"v":10}' |
		http_send 127.0.0.1 "$GPS_PORT" 3
	[ "$(http_split "$HTTP_OUT")" = 1 ]
	[ "$(http_status "$HTTP_OUT")" = 200 ]
	http_body_is "$HTTP_OUT" $'Message sent!\r\n'
	gps_wait_messages h10 1
	run -0 gps_messages h10
	[ "$output" = '{"v":10}' ]

	run -0 curl -sS --http1.0 --max-time 3 -I "$GPS_URL/"
	[[ ${lines[0]} =~ ^HTTP/1\.[01]\ 200\  ]]
}

@test "1.1 RFC 9112 3.2: an HTTP/1.1 request without Host, or any with two, gets 400; nothing stored" {
	local req
	gps_subscribe host /h32
	# each is answered 400 with its reason, and the connection closed (PROTOCOL 7.1)
	while IFS='|' read -r req why; do
		printf '%b' "$req" | http_send 127.0.0.1 "$GPS_PORT" 3
		echo "# ${req%%\\r*}: $(http_status "$HTTP_OUT") $(http_body "$HTTP_OUT" | tr -d '\r')" >&3
		http_check_error 400
		http_body_is "$HTTP_OUT" "$why"$'\r\n'
	done <<-'EOF'
		POST /h32 HTTP/1.1\r\nContent-Length: 8\r\n\r\n{"h":11}|an HTTP/1.1 request needs a Host header
		POST /h32 HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 8\r\n\r\n{"h":12}|several Host headers
		POST /h32 HTTP/1.0\r\nHost: a\r\nhost: a\r\nContent-Length: 8\r\n\r\n{"h":10}|several Host headers
		GET /h32 HTTP/1.1\r\n\r\n|an HTTP/1.1 request needs a Host header
		HEAD / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n|several Host headers
	EOF
	# an old hook speaking HTTP/1.0 sends no Host and needs none; curl always sends one
	printf 'POST /h32 HTTP/1.0\r\nContent-Length: 9\r\n\r\n{"h":"0"}' |
		http_send 127.0.0.1 "$GPS_PORT" 3
	[ "$(http_status "$HTTP_OUT")" = 200 ]
	run -0 gps_publish /h32 '{"h":"curl"}'
	[ "$output" = 200 ]
	gps_wait_messages host 2
	sleep 0.2
	run -0 gps_messages host
	echo "# the subscriber got: ${lines[*]}" >&3
	[ "$output" = $'{"h":"0"}\n{"h":"curl"}' ]
}

@test "1.1 the HTTP/2 preface gets 505 and the connection is closed" {
	printf 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n' | http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 505
}

@test "1.1 a TLS ClientHello gets 400 at once and the connection is closed" {
	client_hello | http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
	# The header timeout is 5 s: an answer within 1 s was not a timeout.
	((HTTP_MS < 1000))
}

@test "1.1 an https client fails at once instead of waiting" {
	local start ms
	start=$(date +%s%N)
	run curl -sk --max-time 4 "https://127.0.0.1:$GPS_PORT/"
	ms=$(http_ms_since "$start")
	# 28 would be curl's own timeout: the server must have answered (with HTTP) and closed.
	((status != 0 && status != 28))
	((ms < 1000))
}

@test "1.1 an HTTP/0.9 request gets 400 and the connection is closed" {
	printf 'GET /h09\r\n' | http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
}

@test "1.2 two publishes and a HEAD share one connection" {
	local t0 t1 fmt='%{http_code} %{num_connects}\n'
	gps_subscribe ka /ka
	t0=$(gps_stat X-Total-Connections)

	run -0 curl -sS --max-time 5 -o /dev/null -w "$fmt" --data-binary '{"ka":1}' "$GPS_URL/ka" \
		--next -sS --max-time 5 -o /dev/null -w "$fmt" --data-binary '{"ka":2}' "$GPS_URL/ka" \
		--next -sS --max-time 5 -I -o "$BATS_TEST_TMPDIR/head" -w "$fmt" "$GPS_URL/"
	# One new connection for the first request, none for the two others.
	[ "$output" = $'200 1\n200 0\n200 0' ]

	# The server agrees: one connection since the statistics HEAD of t0.
	t1=$(gps_header "$BATS_TEST_TMPDIR/head" X-Total-Connections)
	((t1 == t0 + 1))

	gps_wait_messages ka 2
	run -0 gps_messages ka
	[ "$output" = $'{"ka":1}\n{"ka":2}' ]
}

@test "1.2 Connection: close is honoured" {
	gps_subscribe cc /cc

	{
		printf 'POST /cc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n'
		printf 'Content-Length: 8\r\n\r\n{"cc":1}'
		printf 'POST /cc HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n{"cc":2}'
	} | http_send 127.0.0.1 "$GPS_PORT" 3
	# One answer, saying close, then the server closes: the second request is never read.
	[ "$(http_statuses "$HTTP_OUT")" = 200 ]
	[ "$(gps_header "$HTTP_OUT" Connection)" = close ]
	((HTTP_CLOSED))

	run -0 gps_publish /cc '{"cc":3}'
	[ "$output" = 200 ]
	gps_wait_messages cc 2
	run -0 gps_messages cc
	[ "$output" = $'{"cc":1}\n{"cc":3}' ]
}

@test "1.2 HTTP/1.0 closes after one request unless keep-alive" {
	printf 'HEAD / HTTP/1.0\r\n\r\nHEAD / HTTP/1.0\r\n\r\n' | http_send 127.0.0.1 "$GPS_PORT" 3
	[ "$(http_statuses "$HTTP_OUT")" = 200 ]
	((HTTP_CLOSED))

	{
		printf 'HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
		printf 'HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
	} | http_send 127.0.0.1 "$GPS_PORT" 2
	[ "$(http_statuses "$HTTP_OUT")" = "200 200" ]
	# Still open after 2 s: the header timeout (5 s) is the only thing that may close it.
	((HTTP_CLOSED == 0))
}

@test "1.2 a Connection: keep-alive HEAD does not hang" {
	local start fmt='%{http_code} %{num_connects}\n'
	{
		printf 'HEAD / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n'
		printf 'HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'
	} | http_send 127.0.0.1 "$GPS_PORT" 3
	[ "$(http_split "$HTTP_OUT")" = 2 ]
	[ "$(http_status "$HTTP_OUT.1")" = 200 ]
	[ "$(gps_header "$HTTP_OUT.1" Content-Length)" = 0 ]
	[ "$(http_status "$HTTP_OUT.2")" = 200 ]
	[ "$(gps_header "$HTTP_OUT.2" Content-Length)" = 0 ]
	((HTTP_CLOSED && HTTP_MS < 1000))

	start=$(date +%s%N)
	run -0 curl -sS --max-time 4 -o /dev/null -I -H 'Connection: keep-alive' -w "$fmt" \
		"$GPS_URL/" --next -sS --max-time 4 -o /dev/null -I -w "$fmt" "$GPS_URL/"
	[ "$output" = $'200 1\n200 0' ]
	(($(http_ms_since "$start") < 2000))
}

@test "1.3 pipelined POST, HEAD, POST are answered in order" {
	gps_subscribe pipe /pipe

	{
		printf 'POST /pipe/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{"p":1}'
		printf 'HEAD /pipe HTTP/1.1\r\nHost: t\r\n\r\n'
		printf 'POST /pipe/2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n'
		printf 'Content-Length: 7\r\n\r\n{"p":2}'
	} | http_send 127.0.0.1 "$GPS_PORT" 3
	((HTTP_CLOSED))
	[ "$(http_split "$HTTP_OUT")" = 3 ]

	[ "$(http_status "$HTTP_OUT.1")" = 200 ]
	http_has_header "$HTTP_OUT.1" X-Timestamp
	run ! http_has_header "$HTTP_OUT.1" X-Uptime
	http_body_is "$HTTP_OUT.1" $'Message sent!\r\n'

	[ "$(http_status "$HTTP_OUT.2")" = 200 ]
	http_has_header "$HTTP_OUT.2" X-Uptime
	run ! http_has_header "$HTTP_OUT.2" X-Timestamp
	[ "$(gps_header "$HTTP_OUT.2" Content-Length)" = 0 ]

	[ "$(http_status "$HTTP_OUT.3")" = 200 ]
	http_has_header "$HTTP_OUT.3" X-Timestamp
	http_body_is "$HTTP_OUT.3" $'Message sent!\r\n'

	gps_wait_messages pipe 2
	run -0 gps_messages pipe
	[ "$output" = $'{"p":1}\n{"p":2}' ]
}

@test "1.3 a GET at the end of a pipeline streams and ends the request loop" {
	local out body
	{
		printf 'POST /pl/a HTTP/1.1\r\nHost: t\r\nContent-Length: 7\r\n\r\n{"q":1}'
		printf 'GET /pl HTTP/1.1\r\nHost: t\r\n\r\n'
		printf 'HEAD / HTTP/1.1\r\nHost: t\r\n\r\n'
	} | http_open pl 127.0.0.1 "$GPS_PORT" 5
	http_wait_conn pl 'application/x-gitpubsub'

	run -0 gps_publish /pl/b '{"q":2}'
	[ "$output" = 200 ]
	http_wait_conn pl '{"q":2}'
	http_close pl

	out=$(http_conn_out pl)
	# The POST's answer and the stream's head; the HEAD after the GET is stream input, unanswered.
	[ "$(http_statuses "$out")" = "200 200" ]
	[ "$(http_split "$out")" = 2 ]
	http_body_is "$out.1" $'Message sent!\r\n'
	[ "$(gps_header "$out.2" Transfer-Encoding)" = chunked ]
	# The message as one chunk (PROTOCOL 3.2), after the head or another chunk.
	IFS= read -r -d '' body <"$out.2" || true
	[[ $body == *$'\n9\r\n{"q":2}\r\n\r\n'* ]]
}
