#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031 # GPS_URL is set per command on purpose, to reach other instances
#
# PROTOCOL 9: the configuration file. Both line forms, comments, sections, the original's [Server]
# and [Clients] keys, unknown keys reported without stopping anything, bad values stopping the
# broker with the file and line named. A setting is shown read by its effect on the service.

bats_require_minimum_version 1.5.0

load lib
load lib-http

teardown()
{
	http_instance_stop_all
}

# code_on INSTANCE SOURCE [TARGET] - publish to TARGET (default /cfg) on INSTANCE from address
# SOURCE; print the status code.
code_on()
{
	local port
	port=$(http_instance_port "$1")
	GPS_URL=http://127.0.0.1:$port gps_publish "${3:-/cfg}" '{"c":1}' --interface "$2"
}

# target_code INSTANCE LENGTH - print the status of a HEAD whose target is LENGTH bytes long.
target_code()
{
	local port target
	port=$(http_instance_port "$1")
	target=/$(head -c $(($2 - 1)) /dev/zero | tr '\0' a)
	printf 'HEAD %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n' "$target" |
		http_send 127.0.0.1 "$port" 3
	http_status "$HTTP_OUT" || true
}

# lines_code INSTANCE N - print the status of a HEAD with N header lines.
lines_code()
{
	local port i h=''
	port=$(http_instance_port "$1")
	for ((i = 3; i <= $2; i++)); do
		h+="X-$i: y"$'\r\n'
	done
	printf 'HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n' "$h" |
		http_send 127.0.0.1 "$port" 3
	http_status "$HTTP_OUT" || true
}

# broker_rejects FILE LINE - require gitpubsub-broker to refuse FILE: exit 1, an error naming
# FILE:LINE.
broker_rejects()
{
	http_broker_try "$1"
	[[ $BROKER_RC == 1 ]] || {
		echo "broker on $1 (line $2 bad): result '$BROKER_RC', wanted exit 1" >&2
		cat "$1" "$BROKER_ERR" >&2
		return 1
	}
	grep -qF -- "$1:$2" "$BROKER_ERR" || {
		echo "broker on $1: the error does not name '$1:$2':" >&2
		cat "$BROKER_ERR" >&2
		return 1
	}
}

@test "9.1 key: value and key = value lines are both read" {
	http_instance_start forms 127.0.0.1:PORT -- \
		"[Clients]" "trustedPeers = 127.0.0.2" \
		"[Limits]" "maxTargetSize: 1K" "maxHeaderLines = 10"
	[ "$(code_on forms 127.0.0.2)" = 200 ]
	[ "$(code_on forms 127.0.0.1)" = 403 ]
	[ "$(target_code forms 1024)" = 200 ]
	[ "$(target_code forms 1025)" = 414 ]
	[ "$(lines_code forms 10)" = 200 ]
	[ "$(lines_code forms 11)" = 431 ]
}

@test "9.1 # and ; comment lines and blank lines are ignored" {
	http_instance_start comments 127.0.0.1:PORT -- \
		"# a comment" "; another" "" \
		"[Clients]" "trustedPeers: 127.0.0.3" "# trustedPeers: 127.0.0.4" \
		"; trustedPeers: 127.0.0.5" "" \
		"[Limits]" "; [Clients]" "# [Stream]" "maxTargetSize: 1K"
	[ "$(code_on comments 127.0.0.3)" = 200 ]
	[ "$(code_on comments 127.0.0.4)" = 403 ]
	[ "$(code_on comments 127.0.0.5)" = 403 ]
	# A commented-out section header did not move maxTargetSize out of [Limits].
	[ "$(target_code comments 1025)" = 414 ]
}

@test "9.1 [Section] headers scope the keys" {
	http_instance_start sections 127.0.0.1:PORT -- \
		"[Limits]" "trustedPeers: 127.0.0.2" \
		"[Clients]" "maxTargetSize: 1K"
	# Neither key is in its section: both are unknown there, and the defaults hold.
	[ "$(code_on sections 127.0.0.2)" = 403 ]
	[ "$(code_on sections 127.0.0.1)" = 200 ]
	[ "$(target_code sections 1025)" = 200 ]
	run -0 http_instance_log sections
	[[ $output == *trustedPeers* ]]
	[[ $output == *maxTargetSize* ]]
}

@test "9.1 [Clients] trustedPeers has the original's meaning" {
	http_instance_start clients 127.0.0.1:PORT -- "[Clients]" "trustedPeers: 127.0.0.7 127.0.0.1"
	[ "$(code_on clients 127.0.0.7)" = 200 ]
	[ "$(code_on clients 127.0.0.1)" = 200 ]
	[ "$(code_on clients 127.0.0.8)" = 403 ]
}

@test "9.1 [Server] port and IP are known keys" {
	local cfg=$BATS_TEST_TMPDIR/server.cfg
	printf '[Server]\nport: 2069\nIP: 127.0.0.1\n[Clients]\ntrustedPeers: 127.0.0.1 ::1\n' >"$cfg"
	http_broker_try "$cfg"
	[ "$BROKER_RC" = ready ]
	# Known keys: no warning names them.
	run -1 grep -iE 'warning.*\b(port|ip)\b' "$BROKER_ERR"
}

@test "9.1 [Server] port is checked like any value" {
	local cfg=$BATS_TEST_TMPDIR/port.cfg v
	for v in 70000 0 http; do
		printf '# port %s\n[Server]\nport: %s\n' "$v" "$v" >"$cfg"
		broker_rejects "$cfg" 3
	done
}

@test "9.1 --listen overrides [Server] port and IP" {
	http_instance_start server 127.0.0.1:PORT -- "[Server]" "port: 9" "IP: 127.0.0.9"
	[ "$(code_on server 127.0.0.1)" = 200 ]
}

@test "9.1 unknown keys are reported at start-up and the service starts" {
	local cfg=$BATS_TEST_TMPDIR/unknown.cfg
	http_instance_start unknown 127.0.0.1:PORT -- \
		"[Limits]" "noSuchLimit: 5" "[NoSuchSection]" "someKey: x" "[Stream]" "keepAliveX: 1s"
	[ "$(code_on unknown 127.0.0.1)" = 200 ]
	run -0 http_instance_log unknown
	[[ $output == *noSuchLimit* ]]
	[[ $output == *keepAliveX* ]]
	[[ $output == *someKey* || $output == *NoSuchSection* ]]

	# The broker alone: it starts, and its stderr names the key.
	printf '[Limits]\nmaxBodySize: 1M\nnoSuchLimit: 5\n' >"$cfg"
	http_broker_try "$cfg"
	[ "$BROKER_RC" = ready ]
	grep -qF noSuchLimit "$BROKER_ERR"
}

@test "9.1 a bad value stops the broker with an error naming file and line" {
	local cfg=$BATS_TEST_TMPDIR/bad.cfg line
	for line in 'maxBodySize: lots' 'maxBodySize: 2X' 'maxTargetSize: -1' 'maxHeaderLines: many' \
		'headerTimeout: soon' 'headerTimeout: 5x' 'bodyTimeout: ms' 'this line has no separator'; do
		printf '# bad value\n[Limits]\n%s\n' "$line" >"$cfg"
		broker_rejects "$cfg" 3
	done
	for line in 'keepalive: often' 'sendTimeout: 1y'; do
		printf '# bad value\n[Stream]\n%s\n' "$line" >"$cfg"
		broker_rejects "$cfg" 3
	done
	for line in 'retention: forever' 'ringSize: big'; do
		printf '# bad value\n[History]\n%s\n' "$line" >"$cfg"
		broker_rejects "$cfg" 3
	done
}

@test "9.1 sizes and durations take their suffixes" {
	local cfg=$BATS_TEST_TMPDIR/suffix.cfg port
	printf '%s\n' "[Limits]" "maxBodySize: 1M" "maxTargetSize: 4K" "maxHeaderSize: 16K" \
		"headerTimeout: 1500ms" "bodyTimeout: 1m" "[Stream]" "keepalive: 2s" "sendTimeout: 1h" \
		"[History]" "retention: 2d" "ringSize: 1M" >"$cfg"
	http_broker_try "$cfg"
	[ "$BROKER_RC" = ready ]

	# Their effect: 1500ms is not 1 s, a bare 2 is 2 s.
	http_instance_start units 127.0.0.1:PORT -- \
		"[Limits]" "headerTimeout: 1500ms" "bodyTimeout: 2" "maxTargetSize: 1K"
	port=$(http_instance_port units)
	printf 'GET / HTTP/1.1\r\nHost: t\r\n' | http_send 127.0.0.1 "$port" 4
	http_check_error 408
	((HTTP_MS >= 1300 && HTTP_MS < 2800))
	printf 'POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n\r\n{' |
		http_send 127.0.0.1 "$port" 5
	http_check_error 408
	((HTTP_MS >= 1700 && HTTP_MS < 3800))
	[ "$(target_code units 1025)" = 414 ]
}
