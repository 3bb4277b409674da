#!/usr/bin/env bats
#
# PROTOCOL 7: errors and limits. Every row of the table of 7.2, each answer checked against 7.1
# (a complete HTTP/1.1 response, then the connection closed), the limits' boundaries, and limits
# set in the configuration (7.3). The service must still serve afterwards.
#
# This file's service runs with headerTimeout 1s and bodyTimeout 2s (lib.bash's test defaults),
# far below the defaults of 10 s and 30 s: the 408 tests also show those two limits configurable.

bats_require_minimum_version 1.5.0

load lib
load lib-http

# The status and header PROTOCOL 7.2 wants for an unknown method.
ALLOW_LINE=$'Allow: GET, HEAD, POST, PUT\r'

setup_file()
{
	# A record may take half the ring (shm/ring.h): 8M holds a body of the default 2 MiB limit.
	gps_start "[History]" "ringSize: 8M"
	gps_broker_pid >"$BATS_FILE_TMPDIR/broker.pid0"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	local pid
	# A broker stopped by the 503 test must not stay stopped, whatever happened.
	if [[ -f $BATS_TEST_TMPDIR/stopped ]]; then
		pid=$(<"$BATS_TEST_TMPDIR/stopped")
		kill -CONT "$pid" 2>/dev/null || true
	fi
	http_close_all
	http_unsubscribe_all
	http_instance_stop_all
}

# each_gets STATUS REQUEST... - send each REQUEST (printf %b: \r, \n, \t, \xHH and \0 are
# expanded) on a connection of its own and require a complete STATUS error answer (PROTOCOL 7.1).
each_gets()
{
	local status=$1 req
	shift
	for req in "$@"; do
		printf '%b' "$req" | http_send 127.0.0.1 "$GPS_PORT" 3
		http_check_error "$status" || {
			echo "request (printf %b): $req" >&2
			return 1
		}
	done
}

# head_ok REQUEST - send REQUEST (printf %b) and require a 200, the connection then closed (the
# request should say Connection: close).
head_ok()
{
	printf '%b' "$1" | http_send 127.0.0.1 "${2:-$GPS_PORT}" 3
	[[ $(http_status "$HTTP_OUT") == 200 ]] || {
		echo "wanted 200 for (printf %b) $1; received:" >&2
		cat -A "$HTTP_OUT" | head -c 2000 >&2
		return 1
	}
}

# repeat N STRING - print STRING N times (no shell loop: bats traces every command it runs).
repeat()
{
	local s
	s=$(head -c "$1" /dev/zero | tr '\0' x)
	printf '%s' "${s//x/"$2"}"
}

# client_hello - the first bytes of a TLS 1.2 handshake (see tests/30-transport.bats).
client_hello()
{
	printf '\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03'
	printf '\x11%.0s' {1..32}
	printf '\x00\x00\x02\xc0\x2f\x01\x00\x00\x00'
}

@test "7.1 every error response is complete, then the connection is closed" {
	# One of each kind; the requests after the bad one are never answered.
	each_gets 400 'GET  / HTTP/1.1\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\n'
	each_gets 405 'DELETE / HTTP/1.1\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\n'
	each_gets 501 'POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n'
	each_gets 505 'GET / HTTP/2.0\r\nHost: t\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\n'
	each_gets 400 'POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n{HEAD / HTTP/1.1\r\n\r\n'
	http_body_is "$HTTP_OUT" $'Invalid JSON data posted :(\r\n'

	printf 'POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}' |
		http_send 127.0.0.1 "$GPS_PORT" 3 bind=127.0.0.2
	http_check_error -n 403
	http_body_is "$HTTP_OUT" "Only trusted sources may send data!"
}

@test "7.2 a malformed request line gets 400" {
	each_gets 400 \
		'GET  / HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET /  HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1.1 \r\nHost: t\r\n\r\n' \
		' GET / HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET /a b HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET\t/ HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET /\tHTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET / \r\nHost: t\r\n\r\n' \
		'GET /x\r\n' \
		'/ HTTP/1.1\r\nHost: t\r\n\r\n' \
		'G@T / HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET x HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1.1 x\r\nHost: t\r\n\r\n' \
		'hello\r\n\r\n'
}

@test "7.2 a malformed header line gets 400" {
	each_gets 400 \
		'GET / HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nName : x\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nName\t: x\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\n: x\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nNa(me: x\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nName: a\x01b\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nName: a\x7fb\r\n\r\n' \
		'POST /h HTTP/1.1\r\nHost: t\r\nContent-Length : 2\r\n\r\n{}'
}

@test "7.2 a bare CR gets 400" {
	each_gets 400 \
		'GET / HTTP/1.1\rHost: t\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n' \
		'GET /a\rb HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\n\r\r\n'
}

@test "7.2 a NUL gets 400" {
	each_gets 400 \
		'GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n' \
		'GET /\0 HTTP/1.1\r\nHost: t\r\n\r\n' \
		'\0GET / HTTP/1.1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nX\0: b\r\n\r\n' \
		'GET / HTTP/1.1\0\r\nHost: t\r\n\r\n'
}

@test "7.2 obsolete line folding gets 400" {
	each_gets 400 \
		'GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n' \
		'GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n\tb\r\n\r\n' \
		'POST /f HTTP/1.1\r\nHost: t\r\nContent-Length:\r\n 2\r\n\r\n{}'
}

@test "7.2 an unknown HTTP version gets 400" {
	each_gets 400 \
		'GET / HTTP/1.2\r\nHost: t\r\n\r\n' \
		'GET / HTTP/0.9\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1.1.1\r\nHost: t\r\n\r\n' \
		'GET / http/1.1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/A.B\r\nHost: t\r\n\r\n' \
		'GET / FTP/1.1\r\nHost: t\r\n\r\n' \
		'GET / HTTP/1.1x\r\nHost: t\r\n\r\n'
}

@test "7.2 a request line naming HTTP/2 or later gets 505" {
	each_gets 505 \
		'GET / HTTP/2.0\r\nHost: t\r\n\r\n' \
		'POST /x HTTP/2.0\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}' \
		'GET / HTTP/3.0\r\nHost: t\r\n\r\n' \
		'HEAD / HTTP/9.9\r\nHost: t\r\n\r\n' \
		'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
}

@test "7.2 bytes that cannot start a request get 400 at once" {
	local req
	client_hello | http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
	# The header timeout is 1 s: this was not it.
	((HTTP_MS < 800))
	# The first bytes of a handshake are enough, whatever follows.
	for req in '\x16\x03\x01' '\x16\x03\x03\x00' '\x80\x2e\x01\x00\x02' '\xff\xfe\xfd'; do
		printf '%b' "$req" | http_send 127.0.0.1 "$GPS_PORT" 3
		http_check_error 400
		((HTTP_MS < 800))
	done
}

@test "7.2 a method other than GET, HEAD, POST, PUT gets 405 with its Allow header" {
	local m
	for m in DELETE OPTIONS PATCH TRACE CONNECT FOO get Get post head put GETS; do
		each_gets 405 "$m / HTTP/1.1\r\nHost: t\r\n\r\n"
		[ "$(grep -c "^Allow:" "$HTTP_OUT")" = 1 ]
		grep -qxF -- "$ALLOW_LINE" "$HTTP_OUT" || {
			echo "$m: no '$ALLOW_LINE' line" >&2
			return 1
		}
	done
}

@test "7.2 a request target longer than 8 KiB gets 414" {
	local t8k t8k1 t9k
	t8k=/$(repeat 8191 a)
	t8k1=/$(repeat 8192 a)
	t9k=/$(repeat 9215 a)
	each_gets 414 "HEAD $t9k HTTP/1.1\r\nHost: t\r\n\r\n" \
		"GET $t9k HTTP/1.1\r\nHost: t\r\n\r\n" \
		"POST $t9k HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}" \
		"HEAD $t8k1 HTTP/1.1\r\nHost: t\r\n\r\n"
	# 8 KiB exactly is not longer than 8 KiB.
	head_ok "HEAD $t8k HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
}

@test "7.2 a header block larger than 16 KiB gets 431" {
	local big line
	line="X-Pad: $(repeat 890 p)\r\n"
	big=$(repeat 20 "$line")
	each_gets 431 "GET / HTTP/1.1\r\nHost: t\r\n$big\r\n" \
		"HEAD / HTTP/1.1\r\nHost: t\r\nX-Big: $(repeat 17408 b)\r\n\r\n"
}

@test "7.2 more than 100 header lines get 431" {
	local i h99='' h100=''
	for ((i = 1; i <= 99; i++)); do
		h99+="X-$i: y\r\n"
	done
	h100="${h99}X-100: y\r\n"
	# Host and 100 more lines: 101.
	each_gets 431 "HEAD / HTTP/1.1\r\nHost: t\r\n$h100\r\n"
	# Host, Connection and 98 more: 100 exactly.
	head_ok "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n${h99/X-1: y\\r\\n/}\r\n"
}

@test "7.2 a header block not complete within headerTimeout gets 408" {
	local start ms i out=$BATS_TEST_TMPDIR/trickle
	printf 'GET / HTTP/1.1\r\nHost: t\r\n' | http_send 127.0.0.1 "$GPS_PORT" 4
	http_check_error 408
	((HTTP_MS >= 700 && HTTP_MS < 2500))

	# A header line every 200 ms does not extend the time a header block may take.
	start=$(date +%s%N)
	{
		printf 'GET / HTTP/1.1\r\nHost: t\r\n'
		for ((i = 0; i < 25; i++)); do
			sleep 0.2
			printf 'X-%d: y\r\n' "$i" || exit 0
		done
	} 2>/dev/null | timeout -k 1 8 socat -t 1 - "TCP4:127.0.0.1:$GPS_PORT,shut-none" \
		>"$out" 2>/dev/null || true
	ms=$(http_ms_since "$start")
	http_adopt "$out" "$ms" $((ms < 4000))
	http_check_error 408
}

@test "7.2 a body not complete within bodyTimeout gets 408" {
	gps_subscribe all /
	printf 'POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{"a":' |
		http_send 127.0.0.1 "$GPS_PORT" 5
	http_check_error 408
	((HTTP_MS >= 1500 && HTTP_MS < 3500))

	printf 'POST /slow HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{"a":1}' |
		http_send 127.0.0.1 "$GPS_PORT" 5
	http_check_error 408
	((HTTP_MS >= 1500 && HTTP_MS < 3500))

	run -0 gps_publish /slow '{"marker":1}'
	gps_wait_messages all 1
	run -0 gps_messages all
	[ "$output" = '{"marker":1}' ]
}

@test "7.2 a body larger than the limit gets 413" {
	local limit=$((2 * 1024 * 1024)) body=$BATS_TEST_TMPDIR/body i
	gps_subscribe big /big

	# 2 MiB exactly is accepted.
	{
		printf '"'
		head -c $((limit - 2)) /dev/zero | tr '\0' a
		printf '"'
	} >"$body"
	run -0 curl -sS --max-time 10 -o /dev/null -w '%{http_code}' --data-binary "@$body" \
		"$GPS_URL/big"
	[ "$output" = 200 ]

	{
		printf 'POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"' $((limit + 1))
		head -c $((limit - 1)) /dev/zero | tr '\0' b
		printf '"'
	} | http_send 127.0.0.1 "$GPS_PORT" 5
	http_check_error 413

	# Counted after chunked decoding: 33 chunks of 64 KiB.
	{
		printf 'POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
		printf '10000\r\n"'
		head -c 65535 /dev/zero | tr '\0' c
		printf '\r\n'
		for ((i = 1; i < 33; i++)); do
			printf '10000\r\n'
			head -c 65536 /dev/zero | tr '\0' c
			printf '\r\n'
		done
		printf '1\r\n"\r\n0\r\n\r\n'
	} | http_send 127.0.0.1 "$GPS_PORT" 5
	http_check_error 413

	# Only the first was stored.
	run -0 gps_publish /big '{"marker":2}'
	gps_wait_messages big 2 10
	run -0 gps_messages big
	[ "${#lines[@]}" = 2 ]
	[ "${#lines[0]}" = "$limit" ]
	[ "${lines[1]}" = '{"marker":2}' ]
}

@test "7.2 a Transfer-Encoding other than chunked gets 501" {
	local te
	for te in gzip 'gzip, chunked' deflate x-custom; do
		each_gets 501 "POST /te HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: $te\r\n\r\n"
	done
}

@test "7.2 an untrusted publisher gets 403" {
	local m
	for m in POST PUT; do
		printf '%s /u HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}' "$m" |
			http_send 127.0.0.1 "$GPS_PORT" 3 bind=127.0.0.2
		http_check_error -n 403
		http_body_is "$HTTP_OUT" "Only trusted sources may send data!"
	done
}

@test "7.2 invalid JSON, a bad X-Fetch-Since and a bad topic get 400" {
	local v
	each_gets 400 'POST /j HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n{"a":'
	http_body_is "$HTTP_OUT" $'Invalid JSON data posted :(\r\n'
	for v in abc -1 +1 1e9 0x10 1.2.3 now; do
		each_gets 400 "GET / HTTP/1.1\r\nHost: t\r\nX-Fetch-Since: $v\r\n\r\n"
	done
	each_gets 400 'POST /j/* HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}' \
		'POST /j/%G1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}'
}

# values_body N FILE - write "[0,0,...,0]" with N - 1 zeros to FILE: a JSON text of N values.
values_body()
{
	awk -v n="$1" 'BEGIN { printf "["; for (i = 2; i < n; i++) printf "0,"; printf "0]" }' >"$2"
}

# post_file PORT TOPIC FILE - POST FILE's bytes; print the status, the body to $GPS_LAST_BODY.
post_file()
{
	curl -sS --max-time 20 -o "$GPS_LAST_BODY" -w '%{http_code}\n' \
		-H 'Content-Type: application/json' --data-binary "@$3" "http://127.0.0.1:$1$2"
}

@test "4.3 JSON deeper than 64 levels, or of more than 1,048,576 values, is 400 with its reason" {
	local deep64 deep65 f=$BATS_TEST_TMPDIR/values port
	deep64=$(repeat 64 '[')$(repeat 64 ']')
	deep65=$(repeat 65 '[')$(repeat 65 ']')
	run -0 gps_publish /j43 "$deep64"
	echo "# 64 nested arrays: $output" >&3
	[ "$output" = 200 ]
	run -0 gps_publish /j43 "$deep65"
	echo "# 65 nested arrays: $output $(tr -d '\r' <"$GPS_LAST_BODY")" >&3
	[ "$output" = 400 ]
	[ "$(cat "$GPS_LAST_BODY")" = $'JSON nests deeper than 64 levels\r' ]
	# The most values the default 2 MiB body holds is the limit: it never refuses such a body.
	values_body 1048576 "$f"
	run -0 post_file "$GPS_PORT" /j43 "$f"
	echo "# 1,048,576 values ($(stat -c %s "$f") bytes, maxBodySize 2M): $output" >&3
	[ "$output" = 200 ]
	# Only a larger maxBodySize lets a body pass it.
	http_instance_start big 127.0.0.1:PORT -- "[Limits]" "maxBodySize: 3M" \
		"[History]" "ringSize: 8M"
	port=$(http_instance_port big)
	values_body 1048577 "$f"
	run -0 post_file "$port" /j43 "$f"
	echo "# 1,048,577 values ($(stat -c %s "$f") bytes, maxBodySize 3M):" \
		"$output $(tr -d '\r' <"$GPS_LAST_BODY")" >&3
	[ "$output" = 400 ]
	[ "$(cat "$GPS_LAST_BODY")" = $'JSON has more than 1048576 values\r' ]
}

@test "7.2 a message that cannot be stored gets 503" {
	local pid
	pid=$(gps_broker_pid)
	# A stopped broker is not answering; the runner only restarts a broker that died.
	echo "$pid" >"$BATS_TEST_TMPDIR/stopped"
	kill -STOP "$pid"
	printf 'POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{"s":503}' |
		http_send 127.0.0.1 "$GPS_PORT" 20
	kill -CONT "$pid"
	http_check_error 503
	http_has_header "$HTTP_OUT" Retry-After
}

@test "7.2 after all of that the service still serves" {
	gps_subscribe after /after
	run -0 gps_publish /after '{"still":"serving"}'
	[ "$output" = 200 ]
	gps_wait_messages after 1
	run -0 gps_messages after
	[ "$output" = '{"still":"serving"}' ]
	# No broker died on the way.
	[ "$(gps_broker_pid)" = "$(<"$BATS_FILE_TMPDIR/broker.pid0")" ]
}

@test "7.3 the limits are configurable" {
	local port t1k t1k1 h10='' i body
	http_instance_start small 127.0.0.1:PORT -- "[Limits]" "maxTargetSize: 1K" \
		"maxHeaderSize: 2K" "maxHeaderLines: 10" "maxBodySize: 1K"
	port=$(http_instance_port small)
	t1k=/$(repeat 1023 a)
	t1k1=/$(repeat 1024 a)

	# Targets: 1 KiB passes, one byte more is 414 here (and not on the default service).
	head_ok "HEAD $t1k HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" "$port"
	printf '%b' "HEAD $t1k1 HTTP/1.1\r\nHost: t\r\n\r\n" | http_send 127.0.0.1 "$port" 3
	http_check_error 414
	head_ok "HEAD $t1k1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

	# Header lines: 10 pass, 11 are 431.
	for ((i = 1; i <= 8; i++)); do
		h10+="X-$i: y\r\n"
	done
	head_ok "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n$h10\r\n" "$port"
	printf '%b' "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n${h10}X-9: y\r\n\r\n" |
		http_send 127.0.0.1 "$port" 3
	http_check_error 431

	# Header bytes: 3 KiB is 431 here, fine on the default service.
	printf '%b' "HEAD / HTTP/1.1\r\nHost: t\r\nX-Big: $(repeat 3072 b)\r\n\r\n" |
		http_send 127.0.0.1 "$port" 3
	http_check_error 431
	head_ok "HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: $(repeat 3072 b)\r\n\r\n"

	# Bodies: 1 KiB passes, 1 KiB + 1 is 413.
	body="\"$(repeat 1022 d)\""
	printf 'POST /l HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 1024\r\n\r\n%s' \
		"$body" | http_send 127.0.0.1 "$port" 3
	[ "$(http_status "$HTTP_OUT")" = 200 ]
	printf 'POST /l HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n%s ' "$body" |
		http_send 127.0.0.1 "$port" 3
	http_check_error 413
}
