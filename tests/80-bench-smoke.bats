#!/usr/bin/env bats
#
# The benchmark suite (README "Performance", bench/README.md) keeps working: bench/run --smoke runs
# every scenario once against our service in each mode the report compares (multiplexed and
# per-connection, and the suite's GPS_MODE if it is another), with tiny parameters, and checks
# that nothing was lost, duplicated or reordered and that every figure is a positive number.
# Scenarios 8 and 9 spread their subscribers over several loadgen processes and source
# addresses, as they must at full size; scenario 10 runs three nodes sharing three NATS servers
# (issue 12) and measures cross-node delivery. The load generator's own
# checks are tested against a scripted server that breaks the rules on purpose, so a smoke run
# that passes means something.

bats_require_minimum_version 1.5.0

load lib

# Upper bound of the whole smoke run (it takes seconds; sanitizer builds are slower).
SMOKE_TIMEOUT=150

setup_file()
{
	[[ -x $GPS_BUILD/bench/loadgen ]] || {
		echo "no $GPS_BUILD/bench/loadgen: build with 'make all' (bench/bench.mk)" >&2
		return 1
	}
}

teardown()
{
	local f
	for f in "$BATS_TEST_TMPDIR"/*.pid; do
		[[ -f $f ]] || continue
		kill -TERM "$(<"$f")" 2>/dev/null || true
		gps_wait_pids 5 "$(<"$f")" || true
	done
}

# result_value OUTPUT KEY - print the value of KEY in the "result ..." line of OUTPUT.
result_value()
{
	awk -v k="$2" '/^result / {
		for (i = 2; i <= NF; i++) if (index($i, k "=") == 1) { print substr($i, length(k) + 2); exit }
	}' <<<"$1"
}

# chunk TEXT - print TEXT framed as one PROTOCOL 3.2 chunk: the JSON text and CRLF.
chunk()
{
	printf '%x\r\n%s\r\n\r\n' $((${#1} + 2)) "$1"
}

# bench_line P SEQ - the text of bench message SEQ of publisher P, as loadgen sends it.
bench_line()
{
	printf '{"bench":{"p":%s,"seq":%s,"t":1,"pad":""}}' "$1" "$2"
}

@test "bench smoke: every scenario in every mode, nothing lost, every figure positive" {
	local modes="mux fork" runs out
	[[ " $modes " == *" $GPS_MODE "* ]] || modes+=" $GPS_MODE"
	# One result line per scenario (5 and 10 twice each: 12) and mode, each kept in the raw
	# results.
	runs=$((12 * $(wc -w <<<"$modes")))
	run -0 timeout -k 5 "$SMOKE_TIMEOUT" "$GPS_REPO/bench/run" --smoke --build "$GPS_BUILD" \
		--modes "$modes"
	[[ $output == *"bench-smoke: $runs runs,"* ]] || {
		echo "$output"
		false
	}
	[[ $output == *$'\n'"$runs passed, 0 failed"* ]] || {
		echo "$output"
		false
	}
	run -0 grep -c '^rep=1 key=' "$GPS_BUILD/bench/smoke/data/results.txt"
	[[ $output == "$runs" ]]
	# Scenario 9 ran the multiplexed service with 4 workers, as at full size.
	run -0 grep -c '^rep=1 key=9 srv=ours-mux .* workers=4$' "$GPS_BUILD/bench/smoke/data/results.txt"
	# Scenario 10 (issue 12): in every mode, three nodes, and subscriber i on node i % 3 and
	# publisher j on node j % 3 make exactly two deliveries in three cross-node.
	out=$(awk '/^rep=1 key=10@/ {
		delete v
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "# %s on %s: %d deliveries, %d cross-node, cross p99 %s us, %s publishes/s\n",
			v["key"], v["srv"], v["deliveries"], v["cross_deliveries"], v["cross_p99_us"],
			v["pub_per_s"]
		n++
		if (v["nodes"] == 3 && v["cross_deliveries"] * 3 == v["deliveries"] * 2) good++
	} END { print good + 0, n + 0 }' "$GPS_BUILD/bench/smoke/data/results.txt")
	grep '^#' <<<"$out" >&3
	output=$(tail -1 <<<"$out")
	echo "# scenario 10 lines with 3 nodes and 2/3 of deliveries cross-node, of all: $output" >&3
	[[ $output == "$((2 * $(wc -w <<<"$modes"))) $((2 * $(wc -w <<<"$modes")))" ]]
}

@test "3.2, 3.4: loadgen counts duplicates, reordering, gaps, framing errors and strangers" {
	local port resp out
	port=$(free_port)
	resp=$BATS_TEST_TMPDIR/stream
	{
		printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'
		chunk "$(bench_line 0 0)"
		chunk "$(bench_line 0 2)"
		chunk "$(bench_line 0 1)" # after 2: reordered
		chunk "$(bench_line 0 1)" # again: a duplicate
		# Two messages in one chunk: legal HTTP, but not PROTOCOL 3.2's one message a chunk.
		chunk "$(bench_line 0 3)"$'\r\n'"$(bench_line 0 4)"
		chunk '{"gap": {"missed": 3, "resume": 1795700000.000001}}'
		chunk '{"stillalive": 1795700000.000002}'
		chunk '{"other":1}'
	} >"$resp"
	socat "TCP4-LISTEN:$port,bind=127.0.0.1,reuseaddr" SYSTEM:"cat $resp; sleep 5" \
		</dev/null >/dev/null 2>&1 3>&- &
	echo $! >"$BATS_TEST_TMPDIR/socat.pid"
	_gps_sleep_until 5 port_listening "$port"

	out=$(timeout 20 "$GPS_BUILD/bench/loadgen" --mode idle --no-verify --hold 1 --port "$port" \
		--subs 1 --label t)
	echo "$out"
	[[ $(result_value "$out" connected) == 1 ]]
	[[ $(result_value "$out" dup) == 1 ]]
	[[ $(result_value "$out" reorder) == 1 ]]
	[[ $(result_value "$out" gaps) == 1 ]]
	[[ $(result_value "$out" framing_errors) == 1 ]]
	[[ $(result_value "$out" unknown) == 1 ]]
	[[ $(result_value "$out" keepalives) == 1 ]]
}

@test "loadgen reports subscribers it could not connect, and a usage error with exit 2" {
	local port out
	port=$(free_port) # nothing listens there
	out=$(timeout 20 "$GPS_BUILD/bench/loadgen" --mode connect --no-verify --port "$port" \
		--subs 2 --label t)
	echo "$out"
	[[ $(result_value "$out" connected) == 0 ]]
	[[ $(result_value "$out" sub_errors) == 2 ]]
	run -2 "$GPS_BUILD/bench/loadgen" --mode nonsense --port "$port"
	run -2 "$GPS_BUILD/bench/loadgen" --mode replay --port "$port" # replay needs --count
	# --ports (issue 12's cluster scenario): ports separated by commas, nothing else
	run -2 "$GPS_BUILD/bench/loadgen" --mode latency --ports "$port,"
	run -2 "$GPS_BUILD/bench/loadgen" --mode latency --ports "$port,,$port"
	run -2 "$GPS_BUILD/bench/loadgen" --mode latency --ports "$port,70000"
	run -2 "$GPS_BUILD/bench/loadgen" --mode latency --ports "$port;$port"
	# well formed, but no node listens: a runtime failure, said at once (it used to spin)
	run -1 timeout -s KILL 20 "$GPS_BUILD/bench/loadgen" --mode latency --ports "$port,$port"
	[[ $output == *"publisher 0: unable to connect"* ]]
}

# port_listening PORT - whether something listens on 127.0.0.1:PORT.
port_listening()
{
	[[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

@test "a multiplexed worker that was full accepts again once its connections end" {
	local GPS_MODE=mux out lg
	gps_start "[Frontend]" "workers: 1" "maxConnections: 20"
	echo "$GPS_RUN_PID" >"$BATS_TEST_TMPDIR/runner.pid" # teardown stops it if we fail
	# 20 subscribers fill the one worker; a 21st connection waits in the backlog, which makes
	# the worker stop accepting; the 20 leave after 1 s.
	timeout 30 "$GPS_BUILD/bench/loadgen" --mode idle --no-verify --hold 2 --port "$GPS_PORT" \
		--subs 20 --label t --sub-path /bench/full >"$BATS_TEST_TMPDIR/full.out" &
	lg=$!
	_gps_sleep_until 10 _worker_holds 20
	exec 5<>"/dev/tcp/127.0.0.1/$GPS_PORT"
	wait "$lg"
	exec 5>&-
	out=$(<"$BATS_TEST_TMPDIR/full.out")
	echo "$out"
	[[ $(result_value "$out" connected) == 20 ]]
	# Once they are gone, new subscribers are served (the worker used to stay paused forever).
	out=$(timeout 20 "$GPS_BUILD/bench/loadgen" --mode connect --port "$GPS_PORT" --subs 5 \
		--label t --sub-path /bench/after --pub-path /bench/after)
	echo "$out"
	[[ $(result_value "$out" connected) == 5 ]]
	[[ $(result_value "$out" verified) == 5 ]]
	run -0 grep -c 'its maximum' "$GPS_LOG"
	gps_stop
}

# _worker_holds N - whether N connections to the service are established.
_worker_holds()
{
	(($(ss -Htn state established "( sport = :$GPS_PORT )" | wc -l) >= $1))
}
