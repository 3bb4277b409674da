#!/usr/bin/env bats
#
# The frontend's start-up and its memory (README "Performance"): one gitpubsub-frontend process
# serves each connection, so what it maps and keeps is paid per subscriber. It finds its connection
# the way sd_listen_fds(3) says (LISTEN_PID/LISTEN_FDS, else stdin) without linking libsystemd, and
# an idle stream keeps no more pages than it needs.

bats_require_minimum_version 1.5.0

load lib

# A message of about 20 KiB: 100 of them replay as 2 MB, eight batches of the frontend's output.
big_message()
{
	printf '{"n":%d,"pad":"%s"}' "$1" "$(head -c 20000 /dev/zero | tr '\0' x)"
}

setup_file()
{
	gps_start "[History]" "ringSize: 16M"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	gps_unsubscribe_all
}

# frontend_of NAME - print the pid of the frontend serving subscriber NAME (gps_subscribe), the
# server end of its connection.
frontend_of()
{
	local cport
	cport=$(gps_sub_port "$1") || return 1
	ss -Htnp state established "( sport = :$GPS_PORT and dport = :$cport )" 2>/dev/null |
		sed -n 's/.*"gitpubsub-front[^"]*",pid=\([0-9]*\),.*/\1/p' | head -n 1 | grep .
}

# anon_kib PID - the private anonymous memory of PID in KiB (Pss_Anon of smaps_rollup).
anon_kib()
{
	awk '/^Pss_Anon:/ { print $2; found = 1 } END { exit !found }' "/proc/$1/smaps_rollup"
}

# run_frontend ENV... - run the frontend by hand, stdin not a socket, with the given environment
# (LISTEN_PID=self stands for the frontend's own pid: exec keeps the shell's).
run_frontend()
{
	local -a env=()
	local e
	for e in "$@"; do
		env+=("${e//=self/=\$\$}")
	done
	run bash -c "export ${env[*]}; exec \"\$0\" --ring '$GPS_RING' --config '$GPS_CFG'" \
		"$GPS_BUILD/gitpubsub-frontend" </dev/null
}

@test "start-up: LISTEN_FDS of another process, or none, is ignored: stdin is the connection" {
	local v
	for v in "LISTEN_PID=1 LISTEN_FDS=1" "LISTEN_PID=self" "LISTEN_FDS=1"; do
		# shellcheck disable=SC2086 # each v is a list of assignments
		run_frontend $v
		echo "$v: status $status: $output"
		((status == 1))
		[[ $output == *"stdin is not a connected stream socket"* ]]
	done
}

@test "start-up: LISTEN_FDS=2 for us is refused: one connection per frontend (Accept=yes)" {
	run_frontend LISTEN_PID=self LISTEN_FDS=2
	((status == 1))
	[[ $output == *"got 2 sockets from systemd"* ]]
}

@test "start-up: a malformed LISTEN_FDS or LISTEN_PID is refused" {
	local v
	for v in "LISTEN_PID=self LISTEN_FDS=one" "LISTEN_PID=self LISTEN_FDS=-1" \
		"LISTEN_PID=self LISTEN_FDS=" "LISTEN_PID=self LISTEN_FDS=0" \
		"LISTEN_PID=12x LISTEN_FDS=1" "LISTEN_PID=0 LISTEN_FDS=1"; do
		# shellcheck disable=SC2086 # each v is a list of assignments
		run_frontend $v
		echo "$v: status $status: $output"
		((status == 1))
		[[ $output == *"unable to read LISTEN_PID/LISTEN_FDS"* ]]
	done
}

# children_of PID - print the pids of PID's children, one a line.
children_of()
{
	tr ' ' '\n' 2>/dev/null <"/proc/$1/task/$1/children" | grep .
}

# count_children PID N - whether PID has exactly N children.
count_children()
{
	(($(children_of "$1" | wc -l) == $2))
}

@test "start-up: given a listening socket as fd 3 (Accept=no) in mode per-connection, the frontend forks one process per connection" {
	local port log=$BATS_TEST_TMPDIR/activate.log pid first
	port=$(free_port)
	# Without --accept, systemd-socket-activate hands over the listening socket itself and
	# execs the frontend in its own process: pid is the listening frontend.
	systemd-socket-activate -l "127.0.0.1:$port" "$GPS_BUILD/gitpubsub-frontend" \
		--ring "$GPS_RING" --config "$GPS_CFG" --socket "$GPS_RUN_DIR/broker.sock" \
		--mode per-connection </dev/null >"$log" 2>&1 3>&- &
	pid=$!
	_gps_sleep_until 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
	GPS_URL=http://127.0.0.1:$port gps_subscribe forked1 /t39fork
	GPS_URL=http://127.0.0.1:$port gps_subscribe forked2 /t39fork
	# each stream is served by a child of its own; the listener stays
	_gps_sleep_until 5 count_children "$pid" 2
	first=$(children_of "$pid" | head -n 1)
	[[ $(awk '{ print $4 }' "/proc/$first/stat") == "$pid" ]]
	# a publish through the listener is a third child, gone with its connection
	[[ $(GPS_URL=http://127.0.0.1:$port gps_publish /t39fork '{"f":1}') == 200 ]]
	gps_wait_messages forked1 1
	gps_wait_messages forked2 1
	gps_unsubscribe forked1
	_gps_sleep_until 5 count_children "$pid" 1
	# the listener going away ends no stream: its children are on their own
	kill -TERM "$pid"
	gps_wait_pids 5 "$pid"
	[[ $(gps_publish /t39fork '{"f":2}') == 200 ]]
	gps_wait_messages forked2 2
	[ "$(gps_messages forked2)" = $'{"f":1}\n{"f":2}' ]
	cat "$log"
}

@test "start-up: given a connection as fd 3 (Accept=yes), a frontend serves it" {
	local port log=$BATS_TEST_TMPDIR/activate.log pid
	port=$(free_port)
	systemd-socket-activate --accept -l "127.0.0.1:$port" "$GPS_BUILD/gitpubsub-frontend" \
		--ring "$GPS_RING" --config "$GPS_CFG" --socket "$GPS_RUN_DIR/broker.sock" \
		</dev/null >"$log" 2>&1 3>&- &
	pid=$!
	_gps_sleep_until 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
	GPS_URL=http://127.0.0.1:$port gps_subscribe accepted /t39acc
	[[ $(GPS_URL=http://127.0.0.1:$port gps_publish /t39acc '{"a":1}') == 200 ]]
	gps_wait_messages accepted 1
	[ "$(gps_messages accepted)" = '{"a":1}' ]
	gps_unsubscribe accepted
	kill -TERM "$pid"
	gps_wait_pids 5 "$pid"
}

@test "start-up: a stream's frontend maps none of libsystemd's libraries" {
	local pid
	gps_subscribe plain /json
	pid=$(frontend_of plain)
	[[ -n $pid ]]
	grep -c . "/proc/$pid/maps"
	run ! grep -E 'libsystemd|libgcrypt|liblz4|libzstd|liblzma|libcap' "/proc/$pid/maps"
}

@test "3.5: after a replay an idle subscriber's frontend gives the burst's pages back" {
	local x live replayed grown
	for ((x = 1; x <= 100; x++)); do
		big_message "$x"
		echo
	done | gps_publish_batch /t39 >"$BATS_FILE_TMPDIR/pub.out"
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out" 100

	gps_subscribe live /t39
	gps_subscribe replayed /t39 -H "X-Fetch-Since: 0"
	gps_wait_messages replayed 100 10
	gps_publish /t39 '{"after":1}'
	gps_wait_messages live 1
	gps_wait_messages replayed 101
	sleep 0.3 # both frontends back asleep
	live=$(anon_kib "$(frontend_of live)")
	replayed=$(anon_kib "$(frontend_of replayed)")
	grown=$((replayed - live))
	echo "private memory: live $live KiB, after a 2 MB replay $replayed KiB (+$grown KiB)"
	# The replay wrote 2 MB in batches of 256 KiB: kept, they would be 256 KiB or more.
	((grown < 96))
}
