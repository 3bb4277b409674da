#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# PROTOCOL section 8 (history) and the broker's crash safety: one service for the file, with a
# 64 KiB ring (its index holds 1,024 messages). The age test comes last: it restarts the service
# with a 2 s retention. Each test uses topics of its own.

bats_require_minimum_version 1.5.0

load lib

# A gap notice (PROTOCOL 3.4).
GAP_RE='^\{"gap": \{"missed": ([0-9]+), "resume": ([0-9]+)\.[0-9]{6}\}\}$'
# Subscribers and publishes of the crash test, and how often the broker is killed meanwhile.
CRASH_SUBSCRIBERS=50
CRASH_MESSAGES=1000
CRASH_KILL_AT=(200 450 700)

setup_file()
{
	gps_start "[History]" "ringSize: 64K"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	gps_unsubscribe_all
}

# padded_json N SIZE - a JSON object of about SIZE bytes carrying the number N.
padded_json()
{
	local pad
	printf -v pad '%*s' "$2" ''
	printf '{"n":%d,"pad":"%s"}\n' "$1" "${pad// /x}"
}

# seqs NAME - the "seq" numbers subscriber NAME received, one a line; fails on any other message.
seqs()
{
	gps_messages "$1" | awk '
		/^\{"seq":[0-9]+\}$/ { sub(/^\{"seq":/, ""); sub(/\}$/, ""); print; next }
		{ print "unexpected message: " $0 > "/dev/stderr"; exit 1 }'
}

# check_crash_stream NAME OKFILE - NAME got strictly increasing seqs (each once, in publish
# order), every one of OKFILE (the seqs that got a 200), and none that was never published.
check_crash_stream()
{
	local got=$BATS_FILE_TMPDIR/got-$1 missing
	seqs "$1" >"$got" || return 1
	awk -v max="$CRASH_MESSAGES" -v name="$1" '
		$1 <= prev { printf "%s: seq %d after %d\n", name, $1, prev > "/dev/stderr"; exit 1 }
		$1 < 1 || $1 > max { printf "%s: seq %d never published\n", name, $1 > "/dev/stderr"; exit 1 }
		{ prev = $1 }' "$got" || return 1
	missing=$(sort "$2" | comm -23 - <(sort "$got") | sort -n | head -n 20)
	if [[ -n $missing ]]; then
		echo "$1 lacks messages that got a 200: $(echo "$missing" | tr '\n' ' ')" >&2
		return 1
	fi
}

@test "8.1 retention by size: the oldest go first; a replay from 0 shows the newest after one gap notice" {
	local n=12 out x
	# Twelve messages of about 10 KiB: the 64 KiB ring keeps only the newest few.
	for ((x = 1; x <= n; x++)); do
		padded_json "$x" 10000
	done | gps_publish_batch /b81size >"$BATS_FILE_TMPDIR/pub.out"
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out" "$n"

	gps_subscribe r /b81size -H "X-Fetch-Since: 0"
	gps_wait_keepalives r 1 3
	run -0 gps_messages r
	printf '%s\n' "${lines[@]}" | cut -c 1-60
	[[ ${lines[0]} =~ $GAP_RE ]]
	((${#lines[@]} >= 2 && ${#lines[@]} <= 7))
	# The first test of the file: the ring held nothing else, so the count is exact.
	out=$(gps_check_sequence r n 1 "$n")
	[ "$out" -eq 1 ]
}

@test "8.2 history survives a broker SIGKILL and restart" {
	local t0 old new x
	t0=$(gps_now)
	for ((x = 1; x <= 5; x++)); do
		run -0 gps_publish /b82hist "{\"h\":$x}"
		[ "$output" = 200 ]
	done
	old=$(gps_broker_pid)
	new=$(gps_kill_broker KILL)
	echo "broker $old killed, now $new"
	[ "$new" != "$old" ]
	gps_subscribe r /b82hist -H "X-Fetch-Since: $t0"
	run -0 gps_publish /b82hist '{"h":6}'
	[ "$output" = 200 ]
	gps_wait_messages r 6
	run -0 gps_messages r
	[ "$output" = "$(seq 1 6 | sed 's/.*/{"h":&}/')" ]
}

@test "8.2 a subscriber keeps streaming across broker restarts (SIGKILL, SIGTERM)" {
	local sig k
	gps_subscribe s /b82live
	run -0 gps_publish /b82live '{"live":0}'
	[ "$output" = 200 ]
	k=0
	for sig in KILL TERM; do
		gps_kill_broker "$sig"
		k=$((k + 1))
		run -0 gps_publish /b82live "{\"live\":$k}"
		[ "$output" = 200 ]
	done
	gps_wait_messages s 3
	# Keepalives go on too: the stream is alive and well.
	run -0 gps_keepalives s
	k=${#lines[@]}
	gps_wait_keepalives s $((k + 1)) 3
	gps_sub_alive s
	run -0 gps_messages s
	[ "$output" = "$(printf '{"live":%d}\n' 0 1 2)" ]
}

@test "8.2 crash test: 50 subscribers, 1,000 publishes, broker SIGKILLed 3 times: each 200 arrives once, in order" {
	local t0 pub target pid ok n x k
	t0=$(gps_now)
	for ((x = 1; x <= CRASH_SUBSCRIBERS; x++)); do
		gps_subscribe "c$x" /b82crash
	done

	seq 1 "$CRASH_MESSAGES" | sed 's/.*/{"seq":&}/' | gps_publish_batch /b82crash \
		>"$BATS_FILE_TMPDIR/crash.out" 3>&- &
	pub=$!
	# Kill the broker as the publisher gets past each mark (as seen by one subscriber).
	for target in "${CRASH_KILL_AT[@]}"; do
		for ((x = 0; x < 300; x++)); do
			n=$(gps_count_messages c1)
			((n >= target)) && break
			sleep 0.1
		done
		pid=$(gps_kill_broker KILL)
		echo "broker killed after $n messages seen; new broker $pid"
	done
	gps_wait_pids 60 "$pub"

	# Each publish got 200, or 503 while the broker was down; nothing else.
	[ "$(wc -l <"$BATS_FILE_TMPDIR/crash.out")" -eq "$CRASH_MESSAGES" ]
	# shellcheck disable=SC2016 # an awk program
	run -0 awk '$1 != 200 && $1 != 503' "$BATS_FILE_TMPDIR/crash.out"
	[ "$output" = "" ]
	awk '$1 == 200 { print NR }' "$BATS_FILE_TMPDIR/crash.out" >"$BATS_FILE_TMPDIR/crash.ok"
	ok=$(wc -l <"$BATS_FILE_TMPDIR/crash.ok")
	echo "$ok of $CRASH_MESSAGES publishes got 200"
	# Sanity: the test checks much. An outage lasts the 0.2 s gitpubsub-run waits plus the
	# broker's start, and a frontend answers each publish meanwhile with 503 in about a
	# millisecond (a multiplexed one faster still), so up to a few hundred of the 1,000 may
	# fall in the three outages on a loaded machine.
	((ok >= CRASH_MESSAGES / 4))

	# Every subscriber has every 200'd message once, in order (waiting for the last one).
	n=$(tail -n 1 "$BATS_FILE_TMPDIR/crash.ok")
	for ((x = 1; x <= CRASH_SUBSCRIBERS; x++)); do
		for ((k = 0; k < 100; k++)); do
			[[ $(seqs "c$x" | tail -n 1) -ge $n ]] && break
			sleep 0.1
		done
		check_crash_stream "c$x" "$BATS_FILE_TMPDIR/crash.ok"
	done

	# History is intact: a fresh replay gets all of them too.
	gps_subscribe replay /b82crash -H "X-Fetch-Since: $t0"
	gps_wait_keepalives replay 1 5
	check_crash_stream replay "$BATS_FILE_TMPDIR/crash.ok"
}

@test "8.1 retention by age: after the retention time a replay gets one gap notice and nothing old" {
	local out
	# Last test of the file: a service of its own, with a 2 s retention and a fresh ring.
	gps_stop
	gps_start "[History]" "ringSize: 64K" "retention: 2s"
	run -0 gps_publish /b81age '{"age":1}'
	[ "$output" = 200 ]
	run -0 gps_publish /b81age '{"age":2}'
	[ "$output" = 200 ]
	gps_subscribe fresh /b81age -H "X-Fetch-Since: 0"
	gps_wait_messages fresh 2
	run -0 gps_messages fresh
	[ "$output" = "$(printf '{"age":%d}\n' 1 2)" ]

	sleep 3
	gps_subscribe old /b81age -H "X-Fetch-Since: 0"
	gps_wait_keepalives old 1 3
	run -0 gps_messages old
	echo "$output"
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} =~ $GAP_RE ]]
	[ "${BASH_REMATCH[1]}" -eq 2 ]
	# Then the stream is live.
	run -0 gps_publish /b81age '{"age":3}'
	[ "$output" = 200 ]
	gps_wait_messages old 2
	out=$(gps_messages old | tail -n 1)
	[ "$out" = '{"age":3}' ]
}
