#!/usr/bin/env bats
#
# Multiplexed frontends hold 50,000 subscribers (README "Performance") on a machine where one
# process may hold fewer files than that (20,000 under scripts/run-tests): the workers share
# them (each stops accepting when it is full and the kernel hands connections to another), the
# subscriber processes hold their share each from their own source addresses (127.0.0.2 on: one
# address reaches one port from about 28,000 ephemeral ports), and one message reaches every
# one of them. How many workers and subscriber processes follows from the hard descriptor
# limit: four of each at 20,000, more where a process may hold fewer.

bats_require_minimum_version 1.5.0

load lib

SUBS=$GPS_REPO/tests/tools/subs.pl
TOTAL=50000
# descriptors a process keeps for itself besides its connections (the frontend's FD_RESERVE
# is smaller; this leaves room for the balance between workers)
SPARE=1000

setup_file()
{
	local limit
	ulimit -Sn "$(ulimit -Hn)"
	limit=$(ulimit -Hn)
	[[ $limit == unlimited ]] && limit=1048576
	((limit > 2 * SPARE)) || {
		echo "a process may hold $limit files: too few for this test" >&2
		return 1
	}
	PROCESSES=$(((TOTAL + limit - SPARE - 1) / (limit - SPARE)))
	((PROCESSES >= 4)) || PROCESSES=4
	PER_PROCESS=$(((TOTAL + PROCESSES - 1) / PROCESSES))
	export PROCESSES PER_PROCESS GPS_MODE=mux GPS_WORKERS=$PROCESSES
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

# ready_or_gone K PID - subscriber process K said it is ready, or it ended
ready_or_gone()
{
	[[ -e $BATS_TEST_TMPDIR/ready.$1 ]] || ! kill -0 "$2" 2>/dev/null
}

@test "multiplexed: 50,000 subscribers over the workers, one message reaches every one; memory per subscriber" {
	local k n pids=() sup workers before after t0 t1 total=0 complete=0 lost=0 errors=0 f
	sup=$(pgrep -f -- "gitpubsub-frontend .*--ring $GPS_RING" | head -n 1)
	# the supervisor is the one whose parent is not a frontend
	for k in $(pgrep -f -- "gitpubsub-frontend .*--ring $GPS_RING"); do
		[[ $(ps -o comm= -p "$(ps -o ppid= -p "$k" | tr -d ' ')") == gitpubsub-fron* ]] ||
			sup=$k
	done
	mapfile -t workers < <(pgrep -P "$sup")
	((${#workers[@]} == GPS_WORKERS))
	before=$(pss_kib "${workers[@]}")
	t0=$(date +%s%N)
	for ((k = 0; k < PROCESSES; k++)); do
		n=$((k < PROCESSES - 1 ? PER_PROCESS : TOTAL - k * PER_PROCESS))
		"$SUBS" --port "$GPS_PORT" --addr "127.0.0.$((k + 2))" --count "$n" \
			--path /k50 --expect 1 --timeout 150 --ready "$BATS_TEST_TMPDIR/ready.$k" \
			>"$BATS_TEST_TMPDIR/subs.$k" 2>&1 &
		pids+=($!)
	done
	# each subscriber process says when every head is in; one that ended before that failed
	for ((k = 0; k < PROCESSES; k++)); do
		_gps_sleep_until 120 ready_or_gone "$k" "${pids[$k]}"
		[[ -e $BATS_TEST_TMPDIR/ready.$k ]] || {
			echo "subscriber process $k ended before its subscribers were in:" >&2
			cat "$BATS_TEST_TMPDIR/subs.$k" >&2
			return 1
		}
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
	echo "# figure: $GPS_WORKERS workers, $PROCESSES subscriber processes (hard descriptor limit $(ulimit -Hn))" >&3
	((total == TOTAL && complete == TOTAL && lost == 0 && errors == 0))
	# no worker died, none went over the file limit: they shared the load
	((${#workers[@]} == $(pgrep -P "$sup" | wc -l)))
	run -1 grep -a -e 'was killed by signal' -e 'exited with status' "$GPS_LOG"
}
