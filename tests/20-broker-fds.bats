#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# Issue 14 item 4: a frontend cannot exhaust the broker. Requests on the broker's local socket
# that carry descriptors they do not call for (common/proto.h: the one memfd of a body over
# PROTO_INLINE_MAX is the only one) are refused with their reason, and every descriptor is closed
# in the broker; at EMFILE the broker stops watching its listener for a moment instead of
# spinning, and serves again once descriptors free. The misbehaving frontend is
# tests/tools/brokerfds.c. Each test prints what it tried and what happened.

bats_require_minimum_version 1.5.0

load lib

BROKERFDS=$GPS_BUILD/tests/tools/brokerfds
# Descriptors the broker may still open once its limit is lowered, and connections held meanwhile:
# far more than that, so that most wait in the listen queue and the broker is at EMFILE.
EMFILE_SPARE=2
EMFILE_HOLD=20
# The CPU the broker may use over a second at EMFILE, in percent (it spun at 92% before).
EMFILE_CPU_MAX=10

setup_file()
{
	gps_start
}

teardown_file()
{
	local pid
	if [[ -f $BATS_FILE_TMPDIR/hold.pid ]]; then
		kill -TERM "$(<"$BATS_FILE_TMPDIR/hold.pid")" 2>/dev/null || true
	fi
	if [[ -f $BATS_FILE_TMPDIR/nofile.orig ]] && pid=$(gps_broker_pid); then
		prlimit --pid "$pid" --nofile="$(<"$BATS_FILE_TMPDIR/nofile.orig"):" || true
	fi
	gps_stop
}

figure()
{
	echo "# figure: $*" >&3
}

# broker_fds PID - how many descriptors PID holds.
broker_fds()
{
	find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l
}

# fds_are PID N - whether PID holds exactly N descriptors.
fds_are()
{
	[[ $(broker_fds "$1") -eq $2 ]]
}

# lowest_free_fd PID - the lowest descriptor number PID does not use: the next one it opens.
lowest_free_fd()
{
	local n=0
	while [[ -e /proc/$1/fd/$n ]]; do
		n=$((n + 1))
	done
	echo "$n"
}

# cpu_ticks PID - user + system time of PID so far, in clock ticks (/proc/PID/stat 14 and 15).
cpu_ticks()
{
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

@test "14.4: every descriptor a request brings is closed in the broker unless it is the memfd it calls for; the request is refused with its reason" {
	local bpid base out c status reason
	local -A want=(
		[memfd]="200 Message sent!"
		[stray]="400 a file descriptor the request does not call for"
		[two]="400 more than one file descriptor with a request"
		[many]="400 more than one file descriptor with a request"
		[pipe-body]="400 the body's file descriptor is not a memfd"
		[empty]="none closed"
	)
	bpid=$(gps_broker_pid)
	base=$(broker_fds "$bpid")
	for c in memfd stray two many pipe-body empty; do
		out=$("$BROKERFDS" send "$GPS_RUN_DIR/broker.sock" "$c")
		[[ $out =~ ^status=([^ ]+)\ reason=(.*)\ closed=([0-9]+)/([0-9]+)$ ]]
		status=${BASH_REMATCH[1]} reason=${BASH_REMATCH[2]}
		# the broker closed each pipe end it was sent: the tool's read end saw every writer go
		[ "${BASH_REMATCH[3]}" = "${BASH_REMATCH[4]}" ]
		# and holds no more descriptors than before, once it saw the connection close
		_gps_sleep_until 2 fds_are "$bpid" "$base" || true
		figure "case $c: broker answered '$status $reason', closed ${BASH_REMATCH[3]} of the" \
			"${BASH_REMATCH[4]} pipe ends sent; broker fds $base before, $(broker_fds "$bpid") after"
		[ "$status $reason" = "${want[$c]}" ]
		[ "$(broker_fds "$bpid")" -eq "$base" ]
	done
	# of all of them, only the large body in its memfd was stored
	run -0 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" dump /fds
	echo "# gpsctl dump /fds: ${#lines[@]} message(s), the first ${#lines[0]} bytes" >&3
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} == '{"pad":"ppp'* ]]
	grep -q "refusing a request from a frontend: more than one file descriptor" "$GPS_LOG"
	# the service goes on
	[ "$(gps_publish /fds '{"after":1}')" = 200 ]
}

@test "14.4: at EMFILE the broker pauses its listener instead of spinning, and serves again once connections close" {
	local bpid low limit hpid t0 t1 hz pct x ok=0
	bpid=$(gps_broker_pid)
	prlimit --pid "$bpid" --nofile --output SOFT --noheadings | tr -d ' ' >"$BATS_FILE_TMPDIR/nofile.orig"
	low=$(lowest_free_fd "$bpid")
	limit=$((low + EMFILE_SPARE))
	prlimit --pid "$bpid" --nofile="$limit:"
	"$BROKERFDS" hold "$GPS_RUN_DIR/broker.sock" "$EMFILE_HOLD" >"$BATS_FILE_TMPDIR/hold.out" &
	hpid=$!
	echo "$hpid" >"$BATS_FILE_TMPDIR/hold.pid"
	_gps_sleep_until 5 grep -q "connected=$EMFILE_HOLD" "$BATS_FILE_TMPDIR/hold.out"
	_gps_sleep_until 5 grep -q "unable to accept a frontend: Too many open files" "$GPS_LOG"

	# a second of the broker's CPU while frontends wait that it cannot accept
	hz=$(getconf CLK_TCK)
	t0=$(cpu_ticks "$bpid")
	sleep 1
	t1=$(cpu_ticks "$bpid")
	pct=$(((t1 - t0) * 100 / hz))
	figure "broker limited to $limit fds (lowest free was $low), $EMFILE_HOLD connections held:" \
		"$((t1 - t0)) ticks of $hz in 1 s = ${pct}% CPU (at most $EMFILE_CPU_MAX%)"
	((pct <= EMFILE_CPU_MAX))
	# said once, not once per wake-up
	[ "$(grep -c "unable to accept a frontend" "$GPS_LOG")" -eq 1 ]

	# the connections close: the broker takes the ones that waited, then serves a publish,
	# still under the low limit
	kill -TERM "$hpid"
	wait "$hpid" || true
	rm -f "$BATS_FILE_TMPDIR/hold.pid"
	_gps_sleep_until 5 grep -q "accepted every waiting frontend" "$GPS_LOG"
	for ((x = 0; x < 20; x++)); do
		if [ "$(gps_publish /emfile '{"emfile":1}')" = 200 ]; then
			ok=1
			break
		fi
		sleep 0.1
	done
	figure "after the connections closed: $(grep "accepted every waiting frontend" "$GPS_LOG" | tail -1 | sed 's/.*: //'); a publish answered 200 after $x retries"
	((ok))
	prlimit --pid "$bpid" --nofile="$(<"$BATS_FILE_TMPDIR/nofile.orig"):"
	rm -f "$BATS_FILE_TMPDIR/nofile.orig"
}
