#!/usr/bin/env bats
#
# Multiplexed frontends hold 50,000 subscribers (README "Performance") on a machine where one process may
# hold at most 20,000 files: four workers share them (each stops accepting when it is full and
# the kernel hands connections to another), four subscriber processes hold 12,500 each from
# their own source addresses (127.0.0.2 to .5: one address reaches one port from about 28,000
# ephemeral ports), and one message reaches every one of them.

bats_require_minimum_version 1.5.0

load lib

SUBS=$GPS_REPO/tests/tools/subs.pl
PER_PROCESS=12500
PROCESSES=4

setup_file()
{
	export GPS_MODE=mux GPS_WORKERS=4
	gps_start
}

teardown_file()
{
	gps_stop
}

# pss_kib PID... - proportional set size plus page tables, summed, in KiB.
pss_kib()
{
	local p total=0 v
	for p in "$@"; do
		v=$(awk '/^Pss:/ { s += $2 } END { print s + 0 }' "/proc/$p/smaps_rollup")
		total=$((total + v + $(awk '/^VmPTE:/ { print $2 }' "/proc/$p/status")))
	done
	echo "$total"
}

@test "multiplexed: 50,000 subscribers over 4 workers, one message reaches every one; memory per subscriber" {
	local k pids=() sup workers before after t0 t1 total=0 complete=0 lost=0 errors=0 f
	sup=$(pgrep -f -- "gitpubsub-frontend .*--ring $GPS_RING" | head -n 1)
	# the supervisor is the one whose parent is not a frontend
	for k in $(pgrep -f -- "gitpubsub-frontend .*--ring $GPS_RING"); do
		[[ $(ps -o comm= -p "$(ps -o ppid= -p "$k" | tr -d ' ')") == gitpubsub-fron* ]] ||
			sup=$k
	done
	mapfile -t workers < <(pgrep -P "$sup")
	((${#workers[@]} == 4))
	before=$(pss_kib "${workers[@]}")
	t0=$(date +%s%N)
	for ((k = 0; k < PROCESSES; k++)); do
		"$SUBS" --port "$GPS_PORT" --addr "127.0.0.$((k + 2))" --count "$PER_PROCESS" \
			--path /k50 --expect 1 --timeout 150 --ready "$BATS_TEST_TMPDIR/ready.$k" \
			>"$BATS_TEST_TMPDIR/subs.$k" &
		pids+=($!)
	done
	for ((k = 0; k < PROCESSES; k++)); do
		_gps_sleep_until 120 test -e "$BATS_TEST_TMPDIR/ready.$k"
	done
	t1=$(date +%s%N)
	sleep 1
	after=$(pss_kib "${workers[@]}")
	[[ $(gps_publish /k50 '{"n":1}') == 200 ]]
	for ((k = 0; k < PROCESSES; k++)); do
		wait "${pids[$k]}"
		f=$BATS_TEST_TMPDIR/subs.$k
		total=$((total + $(sed -n 's/^subscribers=//p' "$f")))
		complete=$((complete + $(sed -n 's/^complete=//p' "$f")))
		lost=$((lost + $(sed -n 's/^lost=//p' "$f")))
		errors=$((errors + $(sed -n 's/^errors=//p' "$f")))
	done
	echo "# figure: $total subscribers connected in $(((t1 - t0) / 1000000)) ms; the message reached $complete, lost $lost, errors $errors" >&3
	echo "# figure: workers' memory (Pss + page tables) $before KiB idle, $after KiB with $total subscribers: $(((after - before) * 1024 / total)) bytes per subscriber, kernel socket memory not counted" >&3
	((total == 50000 && complete == 50000 && lost == 0 && errors == 0))
	# no worker died, none went over the file limit: they shared the load
	((${#workers[@]} == $(pgrep -P "$sup" | wc -l)))
	run -1 grep -a -e 'was killed by signal' -e 'exited with status' "$GPS_LOG"
}
