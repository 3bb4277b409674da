#!/usr/bin/env bats
#
# Issue 14 item 5: connections are bounded, and trusted publishers are never locked out.
# Untrusted peers (127.0.0.2) open idle connections until they hold every one they may; then
# trusted peers (127.0.0.1) publish, each answer within a second, and one more untrusted
# connection gets 503 at once. In each mode: multiplexed workers, the per-connection (fork)
# listener, and processes started per connection by systemd (Accept=yes, here
# systemd-socket-activate --accept, which bounds nothing itself) or inetd, which count one
# another in the statistics object.

bats_require_minimum_version 1.5.0

load lib

IDLE=$GPS_REPO/tests/tools/idle.pl
# Trusted publishes timed while the untrusted peers hold their maximum.
PUBLISHES=20
# Kept for trusted peers, of each worker's (or the listener's) maxConnections.
RESERVE=16

teardown()
{
	[[ -z ${IDLE_PID:-} ]] || kill "$IDLE_PID" 2>/dev/null || true
	gps_stop
}

# listen_queue_empty - whether the service's listening socket has no connection waiting to be
# accepted (ss: Recv-Q of a listening socket is its accept queue)
listen_queue_empty()
{
	[[ $(ss -Hltn "sport = :$GPS_PORT" | awk '{ n += $2 } END { print n + 0 }') == 0 ]]
}

# at_cap OPEN HELD - open OPEN idle connections from 127.0.0.2, of which HELD fit; then time
# PUBLISHES trusted publishes, each answered within 1 s, and check one more untrusted
# connection and publish get 503. With SLACK, HELD - SLACK to HELD may be held (processes per
# connection that start together at the bound may all refuse); SETTLE: idle.pl's --settle.
at_cap()
{
	local open=$1 held=$2 slack=${3:-0} settle=${4:-1} ready=$BATS_TEST_TMPDIR/ready
	local hold=$BATS_TEST_TMPDIR/hold out=$BATS_TEST_TMPDIR/idle.out
	local times=$BATS_TEST_TMPDIR/times go=$BATS_TEST_TMPDIR/go k code t got
	"$IDLE" --port "$GPS_PORT" --addr 127.0.0.2 --count "$open" --ready "$ready" \
		--settle "$settle" --hold "$hold" --go "$go" --timeout 120 >"$out" &
	IDLE_PID=$!
	# counted once the server took every connection from its listening queue (a loaded
	# machine's workers may still be at it when the last connect returns)
	_gps_sleep_until 90 test -e "$go.opened"
	_gps_sleep_until 30 listen_queue_empty || true
	: >"$go"
	_gps_sleep_until 90 test -e "$ready"
	gps_figure "$open idle connections from 127.0.0.2: $(tr '\n' ' ' <"$ready")"
	got=$(sed -n 's/^held=//p' "$ready")
	((got <= held && got >= held - slack)) ||
		_gps_fail "held $got, wanted $((held - slack)) to $held"
	gps_want "$ready" refused "$((open - got))"
	gps_want "$ready" other 0
	held=$got
	: >"$times"
	for ((k = 1; k <= PUBLISHES; k++)); do
		read -r code t < <(printf '{"n":%d}' "$k" | curl -sS --max-time 5 -o /dev/null \
			-w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
			--data-binary @- "$GPS_URL/caps")
		[[ $code == 200 ]] || _gps_fail "trusted publish $k: status $code after ${t}s"
		echo "$t" >>"$times"
	done
	gps_figure "$PUBLISHES trusted publishes from 127.0.0.1 beside them: p50 $(sort -n "$times" |
		awk '{ a[NR] = $1 } END { printf "%.1f ms, max %.1f ms", a[int((NR + 1) / 2)] * 1000, a[NR] * 1000 }')"
	sort -n "$times" | tail -n 1 | awk '{ exit !($1 < 1) }'
	# one more from the untrusted peer: 503 at once, with the reason
	code=$(gps_publish /caps '{"n":0}' --interface 127.0.0.2)
	gps_figure "an untrusted publish at the cap: $code $(head -c 80 "$GPS_LAST_BODY")"
	[[ $code == 503 ]]
	grep -q 'Too many connections from untrusted peers' "$GPS_LAST_BODY"
	gps_header "$GPS_LAST_HEADERS" Retry-After >/dev/null
	# the held ones were kept all along (headerTimeout is a minute here)
	: >"$hold"
	gps_wait_pids 30 "$IDLE_PID"
	IDLE_PID=
	gps_want "$out" held_at_end "$held"
	grep -q "refused .* connection(s) with 503" "$GPS_LOG"
}

@test "5 multiplexed: 2 workers of 1,500, 3,200 idle untrusted connections; trusted publishes within 1 s" {
	GPS_MODE=mux GPS_WORKERS=2 gps_start "[Limits]" "headerTimeout: 60s" \
		"[Frontend]" "maxConnections: 1500" "trustedReserve: $RESERVE"
	at_cap 3200 $((2 * (1500 - RESERVE)))
}

@test "5 per-connection: a listener of 1,200 processes, 1,400 idle untrusted connections; trusted publishes within 1 s" {
	GPS_MODE=fork gps_start "[Limits]" "headerTimeout: 60s" \
		"[Frontend]" "maxConnections: 1200" "trustedReserve: $RESERVE"
	at_cap 1400 $((1200 - RESERVE))
}

@test "5 a process per connection (systemd Accept=yes, inetd): 400 at most, 500 idle untrusted connections; trusted publishes within 1 s" {
	local mode=accept
	[[ $GPS_MODE == inetd ]] && mode=inetd
	GPS_MODE=$mode gps_start "[Limits]" "headerTimeout: 60s" \
		"[Frontend]" "maxConnections: 400" "trustedReserve: $RESERVE"
	# each connection is a process exec'd for it: 500 of them take seconds to start
	at_cap 500 $((400 - RESERVE)) 8 10
}
