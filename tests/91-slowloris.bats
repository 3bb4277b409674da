#!/usr/bin/env bats
#
# README "Reliability", slowloris: 1,000 connections each trickle one byte of a request head
# every 9 s. The header deadline (PROTOCOL 7.2: "header block not complete within 10 s" gets
# 408) runs from the connect, not from the last byte: every one of them is answered 408 and closed between 10 and
# 12.5 s after its connect (a deadline restarted by each byte would never end them, since the next
# byte always comes 9 s after the last). Meanwhile a subscriber connects and receives a message
# published every 100 ms: its response head within 1 s of its connect (3 s on a sanitizer build,
# see SUB_HEAD_MAX_MS), and a publish-to-receive p99 under 1 s throughout.
#
# One driver process does it all (tests/tools/slowloris.c, built by make test-programs): it opens
# the connections no faster than the service starts frontends for them (each is a process of its
# own, whose deadline starts when it does), so a slow-starting sanitizer build is attacked more
# slowly instead of having its start-up counted as deadline. It prints its figures; this file
# judges them.

bats_require_minimum_version 1.5.0

load lib

# The attack (README "Reliability").
SLOW_CONNS=1000
SLOW_INTERVAL_MS=9000
# The header deadline under test: PROTOCOL 7.2's default, set explicitly.
HEADER_TIMEOUT_S=10
# Each slow connection must be closed within this window after its connect: not before the
# deadline, and not much after it (process start and scheduling on a loaded machine); a
# deadline restarted by the byte sent 9 s after the connect would close it at 19 s.
CLOSE_MIN_MS=10000
CLOSE_MAX_MS=12500
# The subscriber's bounds (README "Reliability": it "connects and receives with p99 under 1 s"):
# from its connect to its response head, and publish-to-receive p99; and the publishing period. Its
# connection waits in the listener's queue behind the attack's (up to the driver's backlog, a
# frontend process each): a sanitizer build's frontends take tens of milliseconds each to start,
# so there the head may take up to 3 s (the plain build's is a few milliseconds).
SUB_HEAD_MAX_MS=1000
if grep -qa __asan_init "$GPS_BUILD/gitpubsub-frontend" 2>/dev/null; then
	SUB_HEAD_MAX_MS=3000
fi
P99_MAX_US=1000000
# Multiplexed (README "Performance"): one worker serves the attack and the subscriber alike, and the 1,000
# trickling connections must not delay the subscriber's messages by more than 100 ms.
if [[ $GPS_MODE == mux ]]; then
	export GPS_WORKERS=1
	P99_MAX_US=100000
fi
PUBLISH_MS=100
# The driver gives up after this long; the test allows a little more. A plain build takes
# about 16 s; a sanitizer build's frontends take tens of milliseconds each to start, so its
# attack is opened more slowly (up to 40 s on a loaded 2-CPU machine).
DRIVER_DEADLINE_S=90

setup_file()
{
	[[ -x $GPS_BUILD/tests/tools/slowloris ]] || {
		echo "no $GPS_BUILD/tests/tools/slowloris: build it with 'make test-programs'" >&2
		return 1
	}
	# Under a sanitizer build, a leak check at each of the 1,000 frontends' exits would double
	# their CPU cost and so the time the attack takes to open, without covering anything new:
	# tests/90-hostile.bats runs the same 408 path with leak checking on.
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	gps_start "[Limits]" "headerTimeout: ${HEADER_TIMEOUT_S}s"
}

teardown_file()
{
	gps_stop
}

# figure NAME - print the driver's figure NAME from its output.
figure()
{
	local v
	v=$(sed -n "s/^$1=//p" "$BATS_FILE_TMPDIR/figures")
	[[ $v =~ ^-?[0-9]+$ ]] || _gps_fail "no figure '$1' in the driver's output" || return 1
	echo "$v"
}

# want NAME OP VALUE - require figure NAME OP VALUE (OP: == >= <= <); say which one is not.
want()
{
	local v ok=0
	v=$(figure "$1") || return 1
	case $2 in
	==) ((v == $3)) && ok=1 ;;
	'>=') ((v >= $3)) && ok=1 ;;
	'<=') ((v <= $3)) && ok=1 ;;
	'<') ((v < $3)) && ok=1 ;;
	*) _gps_fail "want: unknown comparison '$2'" || return 1 ;;
	esac
	((ok)) || _gps_fail "$1 is $v, wanted $2 $3"
}

@test "7.2: 1,000 slowloris connections get 408 at the header deadline from their connect; a subscriber keeps p99 < 1 s" {
	local start rc=0 died
	# One fd per connection in the driver.
	(($(ulimit -n) >= SLOW_CONNS + 100)) || ulimit -n $((SLOW_CONNS + 100))
	start=$(date +%s)
	timeout -k 5 $((DRIVER_DEADLINE_S + 10)) \
		"$GPS_BUILD/tests/tools/slowloris" --port "$GPS_PORT" --ring "$GPS_RING" \
		--conns "$SLOW_CONNS" --interval-ms "$SLOW_INTERVAL_MS" \
		--publish-ms "$PUBLISH_MS" --deadline-s "$DRIVER_DEADLINE_S" \
		>"$BATS_FILE_TMPDIR/figures" 2>"$BATS_FILE_TMPDIR/summary" || rc=$?
	sed 's/^/# /' "$BATS_FILE_TMPDIR/summary" >&3
	printf '# %s\n' "$(tr '\n' ' ' <"$BATS_FILE_TMPDIR/figures")" >&3
	echo "# run took $(($(date +%s) - start)) s" >&3
	[ "$rc" -eq 0 ]

	# Every connection was made, answered 408 and closed by the server.
	want connected == "$SLOW_CONNS"
	want failed == 0
	want closed == "$SLOW_CONNS"
	want answered_408 == "$SLOW_CONNS"
	# ... at the deadline counted from its connect: not before, and not 9 s later.
	want close_min_ms '>=' "$CLOSE_MIN_MS"
	want close_max_ms '<=' "$CLOSE_MAX_MS"

	# The subscriber connected during the attack and got every message, on time.
	want sub_status == 200
	want sub_head_ms '<' "$SUB_HEAD_MAX_MS"
	want sub_closed == 0
	want sub_bad_frames == 0
	want published '>=' $((CLOSE_MIN_MS / PUBLISH_MS / 2))
	want publish_failed == 0
	want lost == 0
	want latency_p99_us '<' "$P99_MAX_US"

	# No frontend died of anything but a normal exit, and the broker never restarted.
	died=$(grep -a -e 'died with code [1-9]' -e 'Sanitizer' -e 'runtime error' -e 'exited;' \
		"$GPS_LOG" || true)
	[ -z "$died" ]
}
