#!/usr/bin/env bats
#
# Multiplexed frontends (README "Performance", gitpubsub.socket's default): a few worker
# processes serve every connection from one event loop each. What only this shape can get
# wrong: a worker's death must cost only its own connections, whose clients resume with
# cursors; one subscriber that reads nothing must cost the others of its worker nothing; and
# the workers must hold tens of thousands of subscribers under the machine's file limits.
# The protocol suites themselves run against this mode too (scripts/run-tests mux).

bats_require_minimum_version 1.5.0

load lib

SUBS=$GPS_REPO/tests/tools/subs.pl

setup_file()
{
	export GPS_MODE=mux GPS_WORKERS=2
	gps_start "[History]" "ringSize: 1M" "[Stream]" "sendTimeout: 20s"
}

teardown_file()
{
	cp "$BATS_FILE_TMPDIR/sub-stopped.raw" /tmp/stopped.raw 2>/dev/null; gps_stop
}

# The supervisor (the frontend systemd-socket-activate started) and its workers.
supervisor()
{
	pgrep -f -- "gitpubsub-frontend .*--ring $GPS_RING" | while read -r p; do
		[[ $(ps -o comm= -p "$(ps -o ppid= -p "$p" | tr -d ' ')") != gitpubsub-fron* ]] &&
			echo "$p"
	done | head -n 1
}

workers()
{
	pgrep -P "$(supervisor)" | sort -n
}

# The worker holding the most connections: the kernel need not spread them evenly.
busiest_worker()
{
	local w
	for w in $(workers); do
		echo "$(find "/proc/$w/fd" -lname 'socket:*' 2>/dev/null | wc -l) $w"
	done | sort -n | tail -n 1 | cut -d' ' -f2
}

two_workers()
{
	(($(workers | wc -l) == 2))
}

# publish_n PATH FROM TO [DELAY] - publish {"n":FROM} ... {"n":TO}, DELAY seconds apart.
publish_n()
{
	local k
	for ((k = $2; k <= $3; k++)); do
		[[ $(gps_publish "$1" "{\"n\":$k}") == 200 ]] || return 1
		[[ -z ${4:-} ]] || sleep "$4"
	done
}

@test "multiplexed: 300 subscribers, 2 workers, no process per subscriber; every one gets every message" {
	local out=$BATS_TEST_TMPDIR/subs.out ready=$BATS_TEST_TMPDIR/ready pid procs
	"$SUBS" --port "$GPS_PORT" --count 300 --path /m1 --expect 20 --timeout 30 \
		--ready "$ready" >"$out" &
	pid=$!
	_gps_sleep_until 20 test -e "$ready"
	procs=$(($(workers | wc -l) + 1))
	gps_figure "300 subscribers held by $procs frontend processes (the supervisor and $((procs - 1)) workers)"
	((procs == 3))
	# the workers share them out (EPOLLEXCLUSIVE alone would wake the same idle one each time)
	gps_figure "sockets per worker: $(for w in $(workers); do find "/proc/$w/fd" -lname 'socket:*' | wc -l; done | tr '\n' ' ')"
	for w in $(workers); do
		(($(find "/proc/$w/fd" -lname 'socket:*' | wc -l) >= 75))
	done
	publish_n /m1 1 20
	wait "$pid"
	gps_want "$out" complete 300
	gps_want "$out" lost 0
	gps_want "$out" duplicates 0
	gps_want "$out" errors 0
}

@test "multiplexed: a worker SIGKILLed mid-stream is restarted; its clients resume by cursor and miss nothing" {
	local out=$BATS_TEST_TMPDIR/subs.out ready=$BATS_TEST_TMPDIR/ready pid victim after
	"$SUBS" --port "$GPS_PORT" --count 40 --path /m2 --sse --resume --expect 200 \
		--timeout 60 --ready "$ready" >"$out" &
	pid=$!
	_gps_sleep_until 20 test -e "$ready"
	publish_n /m2 1 80 0.01
	victim=$(busiest_worker)
	kill -KILL "$victim"
	publish_n /m2 81 200 0.01
	wait "$pid"
	gps_figure "worker $victim killed after 80 of 200 messages: $(tr '\n' ' ' <"$out")"
	gps_want "$out" complete 40
	gps_want "$out" lost 0
	gps_want "$out" duplicates 0
	gps_want "$out" reordered 0
	gps_want "$out" gaps 0
	# its clients came back (to either worker), and the supervisor replaced it
	(($(sed -n 's/^reconnects=//p' "$out") > 0))
	_gps_sleep_until 5 two_workers
	after=$(workers | tr '\n' ' ')
	[[ " $after " != *" $victim "* ]]
	grep -q "worker $victim was killed by signal 9; restarting it" "$GPS_LOG"
}

@test "multiplexed: a subscriber that reads nothing costs the others of its worker nothing; lapped, it gets one gap notice" {
	local out=$BATS_TEST_TMPDIR/subs.out held=$BATS_TEST_TMPDIR/held.out
	local ready=$BATS_TEST_TMPDIR/ready hready=$BATS_TEST_TMPDIR/hready go=$BATS_TEST_TMPDIR/go
	local pid hpid pad k t0 ms
	# The stopped reader: a 4 KiB receive buffer it does not read; the server's send buffer
	# (up to net.ipv4.tcp_wmem's 4 MiB) fills, then the 1 MiB ring laps it: 6.4 MB do both.
	"$SUBS" --port "$GPS_PORT" --count 1 --path /m3 --expect 160 --timeout 90 --rcvbuf 4096 \
		--hold "$go" --ready "$hready" >"$held" &
	hpid=$!
	"$SUBS" --port "$GPS_PORT" --count 20 --path /m3 --expect 160 --timeout 90 \
		--ready "$ready" >"$out" &
	pid=$!
	_gps_sleep_until 20 test -e "$ready" -a -e "$hready"
	printf -v pad '%*s' 40000 ''
	t0=$(date +%s%N)
	for ((k = 1; k <= 160; k++)); do
		[[ $(gps_publish /m3 "{\"n\":$k,\"pad\":\"${pad// /x}\"}") == 200 ]]
	done
	wait "$pid"
	ms=$((($(date +%s%N) - t0) / 1000000))
	gps_figure "160 x 40 KB (6.4 MB) to 20 readers beside a stopped one: all read in $ms ms; $(tr '\n' ' ' <"$out")"
	gps_want "$out" complete 20
	gps_want "$out" lost 0
	gps_want "$out" duplicates 0
	gps_want "$out" errors 0
	# The stopped reader reads again: what its socket held, one gap notice, then the rest.
	touch "$go"
	[[ $(gps_publish /m3 '{"after":1}') == 200 ]]
	wait "$hpid"
	gps_figure "the stopped reader, reading again: $(tr '\n' ' ' <"$held")"
	gps_want "$held" gaps 1
	gps_want "$held" after 1
	gps_want "$held" duplicates 0
	gps_want "$held" reordered 0
	gps_want "$held" first 1
}
