#!/usr/bin/env bats
#
# PROTOCOL 6: statistics. A trusted HEAD gets the statistics headers, as decimal integers that
# follow what happens; an untrusted HEAD gets a bare health check.

bats_require_minimum_version 1.5.0

load lib
load lib-http

# The statistics headers PROTOCOL 6.1 requires on a trusted HEAD.
STATS_HEADERS=(X-Uptime X-Connections X-Subscribers X-Total-Connections X-Received X-Sent)

setup_file()
{
	date +%s >"$BATS_FILE_TMPDIR/started"
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

# head_from SOURCE TARGET [HEADER_LINES] - send "HEAD TARGET" with Connection: close from address
# SOURCE (http_send; HEADER_LINES are added, each ending in CRLF); require a 200 answered in full
# with an empty body and the connection closed.
head_from()
{
	printf 'HEAD %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n' "$2" "${3:-}" |
		http_send 127.0.0.1 "$GPS_PORT" 3 "bind=$1"
	[[ $(http_status "$HTTP_OUT") == 200 ]] || {
		echo "HEAD $2 from $1: no 200:" >&2
		cat -A "$HTTP_OUT" >&2
		return 1
	}
	[[ -n $(gps_header "$HTTP_OUT" Server) ]] || {
		echo "HEAD $2 from $1: no Server header" >&2
		return 1
	}
	[[ $(gps_header "$HTTP_OUT" Content-Length) == 0 ]] || {
		echo "HEAD $2 from $1: Content-Length is not 0" >&2
		return 1
	}
	http_body_is "$HTTP_OUT" "" || {
		echo "HEAD $2 from $1: bytes after the head" >&2
		return 1
	}
	((HTTP_CLOSED))
}

# stat_is NAME VALUE - whether statistics header NAME equals VALUE now.
stat_is()
{
	[[ $(gps_stat "$1") == "$2" ]]
}

# stat_becomes NAME VALUE [TIMEOUT] - wait (default 3 s) until NAME equals VALUE.
stat_becomes()
{
	_gps_sleep_until "${3:-3}" stat_is "$1" "$2" && return 0
	echo "$1 is $(gps_stat "$1"), wanted $2 within ${3:-3}s" >&2
	return 1
}

# stat_at_least NAME VALUE - whether statistics header NAME is at least VALUE now.
stat_at_least()
{
	local v
	v=$(gps_stat "$1") || return 1
	((v >= $2))
}

@test "6.1 a trusted HEAD on any path answers 200 with the statistics headers" {
	local target h v
	for target in / /some/path '/x?y=1' /%41 '/*' '/json/*'; do
		head_from 127.0.0.1 "$target"
		for h in "${STATS_HEADERS[@]}"; do
			v=$(gps_header "$HTTP_OUT" "$h") || {
				echo "HEAD $target: no $h" >&2
				return 1
			}
			[[ $v =~ ^[0-9]+$ ]] || {
				echo "HEAD $target: $h is '$v', not a decimal integer" >&2
				return 1
			}
		done
	done
}

@test "6.1 X-Subscribers and X-Connections count the open streams" {
	local s0
	s0=$(gps_stat X-Subscribers)
	[ "$(gps_stat X-Connections)" = "$s0" ]

	gps_subscribe a /stats/a
	gps_subscribe b /
	stat_becomes X-Subscribers $((s0 + 2))
	stat_becomes X-Connections $((s0 + 2))

	# A connection that is not a stream is not counted.
	printf 'HEAD / HTTP/1.1\r\nHost: t\r\n\r\n' | http_open idle 127.0.0.1 "$GPS_PORT" 3
	http_wait_head idle
	stat_is X-Subscribers $((s0 + 2))

	gps_unsubscribe a || true # its kill may lose a race with curl's exit
	stat_becomes X-Subscribers $((s0 + 1))
	stat_becomes X-Connections $((s0 + 1))
	gps_unsubscribe b || true # its kill may lose a race with curl's exit
	stat_becomes X-Subscribers "$s0"
}

# server_of PID - the frontend processes holding the server end of client PID's connections.
server_of()
{
	local port
	for port in $(ss -Htnp state established "dport = :$GPS_PORT" | grep "pid=$1," |
		awk '{ n = split($3, a, ":"); print a[n] }'); do
		ss -Htnp state established "( sport = :$GPS_PORT and dport = :$port )"
	done | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

@test "6.1 X-Subscribers stays exact when a frontend is SIGKILLed with its streams open (issue 14 item 9)" {
	local s0 k p want n=0 victims=()
	s0=$(gps_stat X-Subscribers)
	for k in 1 2 3 4 5 6; do
		gps_subscribe "kill$k" /stats/kill
	done
	stat_becomes X-Subscribers $((s0 + 6))
	# multiplexed: the worker serving the first subscriber; else the processes of four of them
	if [[ $GPS_MODE == mux ]]; then
		mapfile -t victims < <(server_of "$(<"$BATS_FILE_TMPDIR/sub-kill1.pid")")
	else
		mapfile -t victims < <(for k in 1 2 3 4; do
			server_of "$(<"$BATS_FILE_TMPDIR/sub-kill$k.pid")"
		done)
	fi
	((${#victims[@]} > 0))
	for k in 1 2 3 4 5 6; do
		p=$(server_of "$(<"$BATS_FILE_TMPDIR/sub-kill$k.pid")")
		[[ " ${victims[*]} " == *" $p "* ]] && n=$((n + 1))
	done
	kill -KILL "${victims[@]}"
	want=$((s0 + 6 - n))
	stat_becomes X-Subscribers "$want"
	echo "# $GPS_MODE: SIGKILLed ${#victims[@]} frontend process(es) serving $n of 6 subscribers: X-Subscribers $((s0 + 6)) -> $(gps_stat X-Subscribers), want $want" >&3
	((n >= 1))
	stat_is X-Connections "$want"
	# gpsctl, which maps the object read-only, sums the same live slots
	[[ $("$GPS_BUILD/gpsctl" --ring "$GPS_RING" stats | awk '$1 == "X-Subscribers" { print $2 }') == "$want" ]]
	for k in 1 2 3 4 5 6; do
		gps_unsubscribe "kill$k" || true
	done
	stat_becomes X-Subscribers "$s0"
}

@test "6.1 X-Total-Connections counts the connections accepted" {
	local t0 t1 n
	t0=$(gps_stat X-Total-Connections)
	for n in 1 2 3; do
		run -0 curl -sS --max-time 3 -o /dev/null -I "$GPS_URL/c$n"
	done
	t1=$(gps_stat X-Total-Connections)
	# Three connections in the loop, and the one of the second HEAD.
	((t1 == t0 + 4))
}

@test "6.1 X-Received and X-Sent count the bytes read and written" {
	local r0 s0 r1 json
	json=$(printf '{"pad":"%s"}' "$(printf 'x%.0s' {1..2000})")
	r0=$(gps_stat X-Received)
	s0=$(gps_stat X-Sent)

	gps_subscribe big /big
	run -0 gps_publish /big "$json"
	[ "$output" = 200 ]
	gps_wait_messages big 1

	# The publisher's body was read; the subscriber's copy was written (and it is still live).
	r1=$(gps_stat X-Received)
	((r1 >= r0 + ${#json}))
	_gps_sleep_until 3 stat_at_least X-Sent $((s0 + ${#json}))
}

@test "6.1 X-Received counts the bytes of a connection still open" {
	local r0 json
	json=$(printf '{"pad":"%s"}' "$(printf 'y%.0s' {1..3000})")
	r0=$(gps_stat X-Received)
	# A keep-alive publish whose connection stays open after its answer.
	printf 'POST /live HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s' "${#json}" "$json" |
		http_open live 127.0.0.1 "$GPS_PORT" 5
	http_wait_conn live 'Message sent!'
	http_conn_alive live
	_gps_sleep_until 3 stat_at_least X-Received $((r0 + ${#json}))
	http_conn_alive live
}

@test "6.1 X-Uptime counts the seconds since the broker started" {
	local u0 started now
	started=$(<"$BATS_FILE_TMPDIR/started")
	u0=$(gps_stat X-Uptime)
	now=$(date +%s)
	((u0 <= now - started + 1))
	_gps_sleep_until 3 stat_at_least X-Uptime $((u0 + 1))
}

@test "6.2 an untrusted HEAD gets 200, Server and Content-Length: 0 only" {
	local target
	for target in / /some/path '/x?y=1'; do
		head_from 127.0.0.2 "$target"
		run -0 http_x_headers "$HTTP_OUT"
		[ "$output" = "" ]
	done
	# Asking for trust does not help.
	head_from 127.0.0.2 / $'X-Forwarded-For: 127.0.0.1\r\ntrusted: true\r\n'
	run -0 http_x_headers "$HTTP_OUT"
	[ "$output" = "" ]
}
