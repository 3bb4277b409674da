#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# README "Reliability", faults 2, 3, 5 and 6 (fault 2, a crash at every step of the append, is
# tests/unit/t-ring-crash.c; here, the next broker start on a crashed 64 MiB ring is timed):
#   2  the broker SIGKILLed while publishing into a full 64 MiB ring: the next start is ready
#      (the ring recovered) in under 500 ms, and the service goes on
#   3  a subscriber lapped by the history ring: one exact gap notice, nothing overwritten
#   5  the wall clock stepped back (libfaketime): publish times, X-Timestamp and replay stay
#      ordered and correct; every timeout runs on the monotonic clock
#   6  resources: the frontend's fd limit, the listener's fd and process limits, /dev/shm full
# Each test prints its figures ("# figure: ...") and fails when one is missed.

bats_require_minimum_version 1.5.0

load lib
load lib-http

# A gap notice (PROTOCOL 3.4).
GAP_RE='^\{"gap": \{"missed": ([0-9]+), "resume": ([0-9]+)\.[0-9]{6}\}\}$'
# Repetitions of "<n>." in a lapping test message: about 16 KiB, so that the stopped reader's
# socket (its send buffer grows to 4 MiB) fills in a couple of hundred; 64 fill the ring.
LAP_PAD=4000
# Messages published per batch while the stopped reader's socket fills.
LAP_BATCH=20
# Messages published once it is full: one and a half rings.
LAP_MORE=100
# How far libfaketime steps the wall clock back, in seconds.
CLOCK_STEP=3600
# The lowest free descriptor of a frontend: 0-2 and the connection (fd 3 when accepted
# systemd-style; inetd-style it is fds 0 and 1).
FIRST_FREE_FD_ACCEPT=4
FIRST_FREE_FD_INETD=3
# The pad of the fd-limit test's publishes: bodies over PROTO_INLINE_MAX (64 KiB).
FDL_BIG_PAD=70000
# An unused uid and gid for the process-limit test (RLIMIT_NPROC does not bind root).
NPROC_UID=61792
# How long a listener restart may take before the test fails (ms).
RESTART_LIMIT_MS=3000
# Fault 2 end to end: a 64 MiB ring filled past a lap with 1 MiB messages, and the bound on the
# next broker start (README "Reliability": "recovers the ring in under 500 ms for a 64 MiB ring").
REC_RING=64M
REC_MESSAGE=$((1 << 20))
REC_FILL=80
REC_LIMIT_MS=500

setup_file()
{
	# A 1 MiB ring: more than a batch of the lapping test (so its reader is not lapped while
	# its socket fills), less than the messages that fill that socket.
	# sendTimeout 20s: the stopped reader must not be dropped while the test laps it.
	gps_start "[History]" "ringSize: 1M" "[Stream]" "sendTimeout: 20s"
}

teardown_file()
{
	http_close_all
	http_instance_stop_all
	gps_stop
	if [[ -f $BATS_FILE_TMPDIR/fdl.pid ]]; then
		kill -TERM "$(<"$BATS_FILE_TMPDIR/fdl.pid")" 2>/dev/null || true
	fi
	faketime_cleanup
}

# faketime_cleanup - remove the shared-memory objects libfaketime left in /dev/shm for the clock
# instance (faketime_shm_PID, sem.faketime_sem_PID): those made since clock_start whose process
# is gone.
faketime_cleanup()
{
	local f pid
	[[ -f $BATS_FILE_TMPDIR/faketime.before ]] || return 0
	for f in /dev/shm/faketime_shm_* /dev/shm/sem.faketime_sem_*; do
		[[ -e $f ]] || continue
		grep -qxF "$f" "$BATS_FILE_TMPDIR/faketime.before" && continue
		pid=${f##*_}
		[[ $pid =~ ^[0-9]+$ ]] && ! kill -0 "$pid" 2>/dev/null && rm -f "$f"
	done
	return 0
}

teardown()
{
	gps_unsubscribe_all
}

figure()
{
	echo "# figure: $*" >&3
}

# lap_json N - message N of the lapping test: its number and a pad made of it, so that bytes
# of any other message inside it would show.
lap_json()
{
	local pad
	printf -v pad '%0*d' "$LAP_PAD" 0
	printf '{"n":%d,"pad":"%s"}\n' "$1" "${pad//0/$1.}"
}

# lap_check NAME - check each message subscriber NAME received: print "ok N" for an exact copy
# of lap_json N, "gap NOTICE" for a gap notice, "bad ..." for anything else.
lap_check()
{
	gps_messages "$1" | awk -v reps="$LAP_PAD" '
		function pad_of(u,    p, k) {
			p = ""
			for (k = reps; k > 0; k = int(k / 2)) {
				if (k % 2)
					p = p u
				u = u u
			}
			return p
		}
		/^\{"gap": / { print "gap " $0; next }
		match($0, /^\{"n":[0-9]+,/) {
			n = substr($0, 6, RLENGTH - 6)
			if ($0 == "{\"n\":" n ",\"pad\":\"" pad_of(n ".") "\"}") {
				print "ok " n
				next
			}
		}
		{ print "bad " substr($0, 1, 60) }'
}

@test "3.4: a reader that stops while the ring wraps gets one exact gap notice, then the rest, byte for byte" {
	local pid cport q prevq n=0 batch x line ngap=0 missed=0 got=0 first_after=0 prev=0
	local resume_s=""
	local -A ts=()
	gps_subscribe_raw slow /lap 4096
	pid=$(gps_sub_pid slow)
	cport=$(gps_sub_port slow)
	kill -STOP "$pid"

	# Fill the stopped reader's socket: once the server's Send-Q stops growing, its frontend is
	# blocked in a write, holding what it copied. A batch is a third of the ring, so the
	# reader is never lapped meanwhile: the one lapping is the one that follows.
	prevq=-1
	for ((batch = 0; batch < 40; batch++)); do
		for ((x = n + 1; x <= n + LAP_BATCH; x++)); do
			lap_json "$x"
		done | gps_publish_batch /lap >"$BATS_FILE_TMPDIR/pub.batch"
		n=$((n + LAP_BATCH))
		gps_all_200 "$BATS_FILE_TMPDIR/pub.batch" "$LAP_BATCH"
		cat "$BATS_FILE_TMPDIR/pub.batch" >>"$BATS_FILE_TMPDIR/pub.all"
		q=$(gps_server_sendq "$cport")
		[[ -n $q ]]
		((q > 0 && q == prevq)) && break
		prevq=$q
	done
	((batch < 40))
	# Now lap it: two and a half rings' worth while it is stopped.
	for ((x = n + 1; x <= n + LAP_MORE; x++)); do
		lap_json "$x"
	done | gps_publish_batch /lap >"$BATS_FILE_TMPDIR/pub.batch"
	n=$((n + LAP_MORE))
	gps_all_200 "$BATS_FILE_TMPDIR/pub.batch" "$LAP_MORE"
	cat "$BATS_FILE_TMPDIR/pub.batch" >>"$BATS_FILE_TMPDIR/pub.all"
	kill -CONT "$pid"

	# the last message's head is within the last chunk of the raw stream
	for ((x = 0; x < 100; x++)); do
		tail -c 20000 "$BATS_FILE_TMPDIR/sub-slow.raw" | grep -q "{\"n\":$n," && break
		sleep 0.1
	done
	# Byte for byte: every delivered message is exactly one that was published (lap_check).
	run -0 lap_check slow
	for line in "${lines[@]}"; do
		case $line in
		gap\ *)
			[[ ${line#gap } =~ $GAP_RE ]]
			ngap=$((ngap + 1))
			missed=${BASH_REMATCH[1]}
			resume_s=${BASH_REMATCH[2]}
			;;
		ok\ *)
			x=${line#ok }
			((x > prev))
			((ngap == 0 || first_after > 0)) || first_after=$x
			prev=$x
			got=$((got + 1))
			;;
		*)
			echo "not a published message: $line"
			false
			;;
		esac
	done
	# The X-Timestamp of each published message, by number (publish order).
	x=0
	while read -r line; do
		x=$((x + 1))
		ts[$x]=${line#* }
	done <"$BATS_FILE_TMPDIR/pub.all"
	figure "lapped reader: published $n, delivered $got, $ngap gap notice(s), missed $missed" \
		"(published - delivered = $((n - got))), resume at message $first_after"
	[ "$ngap" -eq 1 ]
	# exact: what was published and not delivered, and the jump in the numbers
	[ "$missed" -eq $((n - got)) ]
	run -0 gps_check_sequence slow n 1 "$n"
	[ "$output" = 1 ]
	# the notice's resume time is the next message's time (X-Timestamp: its whole seconds)
	[ "$resume_s" = "${ts[$first_after]}" ]
	# the stream goes on live
	[ "$(gps_publish /lap "$(lap_json $((n + 1)))")" = 200 ]
	gps_wait_messages slow $((got + 2))
	[ "$(gps_messages slow | tail -n 1)" = "$(lap_json $((n + 1)))" ]
	gps_sub_alive slow
}

# --- 2. a crash inside the append: the next broker start ---------------------------------------

# rec_ms_since T0 - milliseconds since T0, an $EPOCHREALTIME value.
rec_ms_since()
{
	local now=$EPOCHREALTIME
	echo $(((${now/./} - ${1/./}) / 1000))
}

@test "2 (8.1): the broker SIGKILLed while publishing into a full 64 MiB ring: the next start recovers it in under ${REC_LIMIT_MS} ms" {
	local dir=$BATS_FILE_TMPDIR/inst-rec port ring rundir runner old pid t0 ms x k line
	local bg held_before held_after
	local -a urls=()
	http_instance_start rec 127.0.0.1:PORT -- "[History]" "ringSize: $REC_RING"
	port=$(http_instance_port rec)
	ring=$(<"$dir/runner.ring")
	rundir=$(<"$dir/runner.dir")
	runner=$(<"$dir/runner.pid")
	# Fill it past a lap: every later append evicts, and recovery has a whole ring to check.
	perl -e 'print "{\"fill\":\"", "f" x ($ARGV[0] - 12), "\"}"' "$REC_MESSAGE" \
		>"$BATS_FILE_TMPDIR/rec.json"
	for ((k = 0; k < REC_FILL; k++)); do
		urls+=(-o /dev/null "http://127.0.0.1:$port/rec")
	done
	curl -s -w '%{http_code}\n' -H 'Content-Type: application/json' \
		--data-binary "@$BATS_FILE_TMPDIR/rec.json" "${urls[@]}" >"$BATS_FILE_TMPDIR/rec.fill"
	[ "$(grep -c '^200$' "$BATS_FILE_TMPDIR/rec.fill")" -eq "$REC_FILL" ]
	run -0 "$GPS_BUILD/gpsctl" --ring "$ring" status --json
	[[ $output =~ \"messages\":\ ([0-9]+) ]]
	held_before=${BASH_REMATCH[1]}
	# lapped: the oldest messages were evicted
	[[ $output =~ \"tail\":\ ([0-9]+) ]]
	((BASH_REMATCH[1] > 1 && held_before < REC_FILL))

	# The runner is stopped so that it does not restart the broker itself; the broker is
	# SIGKILLed in the middle of a stream of publishes of that size (each append copies 1 MiB:
	# the kill often lands inside one; tests/unit/t-ring-crash.c kills at every step).
	kill -STOP "$runner"
	(
		for ((k = 0; k < 200; k++)); do
			curl -s -o /dev/null -H 'Content-Type: application/json' --max-time 2 \
				--data-binary "@$BATS_FILE_TMPDIR/rec.json" "http://127.0.0.1:$port/rec"
		done
	) &
	bg=$!
	sleep 0.3
	old=$(<"$rundir/broker.pid")
	kill -KILL "$old"
	gps_wait_pids 60 "$bg"

	# The next start, alone on the crashed ring, timed from its exec to its readiness line.
	mkfifo "$BATS_FILE_TMPDIR/rec.ready"
	exec 4<>"$BATS_FILE_TMPDIR/rec.ready"
	t0=$EPOCHREALTIME
	"$GPS_BUILD/gitpubsub-broker" --ring "$ring" --socket "$BATS_FILE_TMPDIR/rec.sock" \
		--config "$dir/gitpubsub.cfg" --ready-fd 3 3>"$BATS_FILE_TMPDIR/rec.ready" \
		</dev/null >/dev/null 2>"$BATS_FILE_TMPDIR/rec.err" &
	pid=$!
	read -r -t 10 -u 4 line || true
	ms=$(rec_ms_since "$t0")
	exec 4<&-
	kill -TERM "$pid"
	gps_wait_pids 10 "$pid"
	run -0 "$GPS_BUILD/gpsctl" --ring "$ring" status --json
	[[ $output =~ \"messages\":\ ([0-9]+) ]]
	held_after=${BASH_REMATCH[1]}
	figure "a broker SIGKILLed while publishing into a full $REC_RING ring ($held_before to" \
		"$held_after messages of $((REC_MESSAGE >> 10)) KiB held): the next start ready in" \
		"$ms ms (limit $REC_LIMIT_MS ms): $(grep -o 'attached to ring.*' "$BATS_FILE_TMPDIR/rec.err")"
	grep -q "attached to ring" "$BATS_FILE_TMPDIR/rec.err"
	((ms < REC_LIMIT_MS))
	"$GPS_BUILD/gpsctl" --ring "$ring" check

	# The runner goes on: it restarts its broker, and the service publishes and delivers again.
	kill -CONT "$runner"
	GPS_URL=http://127.0.0.1:$port gps_subscribe recsub /rec2
	for ((x = 0; x < 100; x++)); do
		[[ $(GPS_URL=http://127.0.0.1:$port gps_publish /rec2 '{"rec":1}') == 200 ]] && break
		sleep 0.1
	done
	((x < 100))
	gps_wait_messages recsub 1
	[ "$(gps_messages recsub)" = '{"rec":1}' ]
	http_instance_stop rec
}

# --- 7. history written under other limits ---------------------------------------------------

# A message stored under maxBodySize 2M, replayed by a frontend whose limit is 64K: the frontend's
# buffers are sized from its own limit, the record's length from the ring (README "Reliability").
LIM_BIG=$((1 << 20))

@test "7 (3.5, 8): a 1 MiB message stored under maxBodySize 2M replays whole after a restart with 64K; the frontend lives" {
	local dir=$BATS_FILE_TMPDIR/inst-limsmall port ring t0 big got n
	export HTTP_INSTANCE_MUX=1
	http_instance_start limbig 127.0.0.1:PORT -- "[History]" "ringSize: 4M" \
		"[Limits]" "maxBodySize: 2M"
	port=$(http_instance_port limbig)
	big=$BATS_FILE_TMPDIR/lim-big.json
	perl -e 'print "{\"big\":\"", join("", map { chr(97 + $_ % 26) } 0 .. $ARGV[0] - 13), "\"}"' \
		"$LIM_BIG" >"$big"
	t0=$(gps_now)
	[ "$(GPS_URL=http://127.0.0.1:$port gps_publish /lim '{"n":1}')" = 200 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "@$big" "http://127.0.0.1:$port/lim")" = 200 ]
	[ "$(GPS_URL=http://127.0.0.1:$port gps_publish /lim '{"n":3}')" = 200 ]
	ring=$(http_instance_keep_ring limbig)
	http_instance_stop limbig

	# The same ring, the limit lowered: a new publish of that size is refused, history is not.
	HTTP_INSTANCE_RING=$ring http_instance_start limsmall 127.0.0.1:PORT -- \
		"[History]" "ringSize: 4M" "[Limits]" "maxBodySize: 64K"
	port=$(http_instance_port limsmall)
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "@$big" "http://127.0.0.1:$port/lim")" = 413 ]
	GPS_URL=http://127.0.0.1:$port gps_subscribe lim /lim -H "X-Fetch-Since: $t0"
	gps_wait_messages lim 3
	gps_messages lim >"$BATS_FILE_TMPDIR/lim.got"
	got=$(sed -n 2p "$BATS_FILE_TMPDIR/lim.got" | tr -d '\n' | wc -c)
	n=$(wc -l <"$BATS_FILE_TMPDIR/lim.got")
	figure "mode ${GPS_MODE:-accept}: ring $ring written under maxBodySize 2M, replayed under 64K:" \
		"$n messages, the second of $got bytes (published $(wc -c <"$big"))," \
		"$(grep -c '"gap"' "$BATS_FILE_TMPDIR/lim.got") gap notices"
	[ "$(sed -n 1p "$BATS_FILE_TMPDIR/lim.got")" = '{"n":1}' ]
	sed -n 2p "$BATS_FILE_TMPDIR/lim.got" | tr -d '\n' | cmp - "$big"
	[ "$(sed -n 3p "$BATS_FILE_TMPDIR/lim.got")" = '{"n":3}' ]
	[ "$n" -eq 3 ]
	# The same replay as Server-Sent Events: one data line of the whole message.
	got=$(curl -sN --max-time 2 -H 'Accept: text/event-stream' -H "X-Fetch-Since: $t0" \
		"http://127.0.0.1:$port/lim" | sed -n 's/^data: //p' | sed -n 2p | tr -d '\r\n' |
		cmp - "$big" && echo same)
	figure "the SSE replay's second data line is the message: ${got:-no}"
	[ "$got" = same ]
	# The stream the replay went to is live, and the service serves: nothing died.
	[ "$(GPS_URL=http://127.0.0.1:$port gps_publish /lim '{"n":4}')" = 200 ]
	gps_wait_messages lim 4
	[ "$(gps_messages lim | tail -n 1)" = '{"n":4}' ]
	grep -q "the write buffer grows" "$dir/gitpubsub-run.log"
	gps_unsubscribe lim
	http_instance_stop limsmall
}

# --- 5. clock steps --------------------------------------------------------------------------

# clock_start - start instance "clock" (lib-http) with every process under libfaketime, its wall
# clock offset read from $BATS_FILE_TMPDIR/faketime.rc at each reading ("+0" now; clock_step
# changes it). The monotonic clock is left alone: an NTP step moves only the wall clock.
clock_start()
{
	local lib
	lib=$(find /usr/lib -name libfaketime.so.1 -path '*faketime*' 2>/dev/null | head -n 1)
	[[ -n $lib ]] || _gps_fail "libfaketime not installed (Debian package libfaketime)" || return 1
	echo "$lib" >"$BATS_FILE_TMPDIR/faketime.lib"
	echo "+0" >"$BATS_FILE_TMPDIR/faketime.rc"
	[[ -d $BATS_FILE_TMPDIR/inst-clock ]] && return 0
	compgen -G '/dev/shm/*faketime_*' >"$BATS_FILE_TMPDIR/faketime.before" || true
	(
		export LD_PRELOAD=$lib FAKETIME_TIMESTAMP_FILE=$BATS_FILE_TMPDIR/faketime.rc \
			FAKETIME_NO_CACHE=1 FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_DISABLE_SHM=1
		# a sanitizer runtime must otherwise come first in the library list
		export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
		http_instance_start clock 127.0.0.1:PORT
	)
}

# clock_step OFFSET - set the faked wall clock's offset ("-3600": an hour back, "+0": true).
clock_step()
{
	echo "$1" >"$BATS_FILE_TMPDIR/faketime.rc"
}

# faked_now - the unix time the clock instance's processes see now.
faked_now()
{
	LD_PRELOAD=$(<"$BATS_FILE_TMPDIR/faketime.lib") \
		FAKETIME_TIMESTAMP_FILE=$BATS_FILE_TMPDIR/faketime.rc FAKETIME_NO_CACHE=1 \
		FAKETIME_DISABLE_SHM=1 date +%s
}

# us TIME - a "S.UUUUUU" time as integer microseconds.
us()
{
	echo $((10#${1%.*} * 1000000 + 10#${1#*.}))
}

@test "5 (3.5, 4.5): the wall clock stepped back an hour: publish times, X-Timestamp and replay stay ordered" {
	local ring real fake x k line prev=0 since n keep
	local -a times=() xts=() msgs=()
	clock_start
	GPS_PORT=$(http_instance_port clock)
	GPS_URL=http://127.0.0.1:$GPS_PORT
	ring=$(<"$BATS_FILE_TMPDIR/inst-clock/runner.ring")
	gps_subscribe live /clock

	printf '{"a":%d}\n' 1 2 3 | gps_publish_batch /clock >"$BATS_FILE_TMPDIR/clock.out"
	# a keepalive after them: its time is a resume point (3.3) that the step must not spoil
	n=$(gps_keepalives live | wc -l)
	gps_wait_keepalives live $((n + 1))
	keep=$(gps_keepalives live | tail -n 1)
	keep=${keep#*: }
	keep=${keep%\}}
	clock_step "-$CLOCK_STEP"
	real=$(date +%s)
	fake=$(faked_now)
	printf '{"b":%d}\n' 1 2 3 | gps_publish_batch /clock >>"$BATS_FILE_TMPDIR/clock.out"
	clock_step "+0"
	sleep 1.1 # the true clock now runs past every message: the next ones take it again
	printf '{"c":%d}\n' 1 2 | gps_publish_batch /clock >>"$BATS_FILE_TMPDIR/clock.out"
	gps_all_200 "$BATS_FILE_TMPDIR/clock.out" 8
	# the step took: the service's processes saw the wall clock an hour back
	((real - fake >= CLOCK_STEP - 2 && real - fake <= CLOCK_STEP + 2))

	# The stored times, in publish order (gpsctl reads the ring, outside the faked clock).
	run -0 "$GPS_BUILD/gpsctl" --ring "$ring" --topic dump /clock
	[ "${#lines[@]}" -eq 8 ]
	for line in "${lines[@]}"; do
		times+=("$(us "${line%% *}")")
		msgs+=("${line#* /clock }")
	done
	while read -r x line; do
		xts+=("$line")
	done <"$BATS_FILE_TMPDIR/clock.out"
	[ "${msgs[*]}" = '{"a":1} {"a":2} {"a":3} {"b":1} {"b":2} {"b":3} {"c":1} {"c":2}' ]
	for ((k = 0; k < 8; k++)); do
		# strictly increasing times; X-Timestamp is the stored time's whole seconds, never back
		((times[k] > prev))
		[ "${xts[k]}" = $((times[k] / 1000000)) ]
		((k == 0 || xts[k] >= xts[k - 1]))
		prev=${times[k]}
	done
	# while the wall clock was behind, the ring clock (shm/ring.h 5) went on with true time
	((times[3] > times[2] && times[3] - times[2] < 5000000))
	((times[3] / 1000000 >= real - 1))
	# so the keepalive sent before the step is still a valid resume point: no message after it
	# has an earlier time
	((times[3] >= $(us "$keep")))
	((times[6] > times[5] + 1000))
	figure "clock stepped back ${CLOCK_STEP}s: 8 publishes, stored times strictly increasing;" \
		"keepalive before the step $keep <= first time after it;" \
		"X-Timestamps ${xts[*]}"

	# Live: every message once, in publish order.
	gps_wait_messages live 8
	[ "$(gps_messages live | tr '\n' ' ')" = "${msgs[*]} " ]
	# Replay from the first message timed during the step: exactly it and what followed.
	since=$((times[3] / 1000000)).$(printf '%06d' $((times[3] % 1000000)))
	gps_subscribe replay /clock -H "X-Fetch-Since: $since"
	gps_wait_keepalives replay 1
	[ "$(gps_messages replay | tr '\n' ' ')" = '{"b":1} {"b":2} {"b":3} {"c":1} {"c":2} ' ]
	# Replay from an X-Timestamp of the step: that second's messages, in order, each once.
	gps_subscribe replay2 /clock -H "X-Fetch-Since: ${xts[4]}"
	gps_wait_keepalives replay2 1
	run -0 gps_messages replay2
	x=0
	for ((k = 0; k < 8; k++)); do
		((times[k] >= xts[4] * 1000000)) || continue
		[ "${lines[x]}" = "${msgs[k]}" ]
		x=$((x + 1))
	done
	[ "${#lines[@]}" -eq "$x" ]
}

@test "5: every timeout runs on the monotonic clock: wall clock steps move no deadline and no keepalive" {
	local n0 t0 ms
	clock_start
	GPS_PORT=$(http_instance_port clock)
	GPS_URL=http://127.0.0.1:$GPS_PORT

	# keepalives (1 s) keep their period when the wall clock goes an hour back
	gps_subscribe ka /ka
	gps_wait_keepalives ka 1
	clock_step "-$CLOCK_STEP"
	n0=$(gps_keepalives ka | wc -l)
	t0=$(date +%s%N)
	gps_wait_keepalives ka $((n0 + 2)) 4
	ms=$(http_ms_since "$t0")
	figure "keepalive period 1 s, wall clock an hour back: 2 more keepalives in $ms ms"
	((ms < 3500))

	# the header deadline (headerTimeout 1 s) fires on time with the clock stepped back ...
	printf 'GET /x HTTP/1.1\r\nHost: x\r\n' | http_open slowhead 127.0.0.1 "$GPS_PORT" 10
	sleep 0.3
	clock_step "-$((2 * CLOCK_STEP))"
	t0=$(date +%s%N)
	http_wait_conn slowhead "HTTP/1.1 408 " 5
	ms=$(($(http_ms_since "$t0") + 300))
	figure "headerTimeout 1 s, wall clock stepped back an hour mid-request: 408 after $ms ms"
	((ms >= 900 && ms < 3000))
	# ... and not early with the clock stepped forward
	clock_step "+0"
	printf 'GET /x HTTP/1.1\r\nHost: x\r\n' | http_open slowhead2 127.0.0.1 "$GPS_PORT" 10
	t0=$(date +%s%N)
	sleep 0.3
	clock_step "+$CLOCK_STEP"
	http_wait_conn slowhead2 "HTTP/1.1 408 " 5
	ms=$(http_ms_since "$t0")
	clock_step "+0"
	figure "headerTimeout 1 s, wall clock stepped forward an hour mid-request: 408 after $ms ms"
	((ms >= 900 && ms < 3000))
}

# --- 6. resources ----------------------------------------------------------------------------

# fdl_start - a second listener on the service's ring and broker whose frontends run with
# RLIMIT_NOFILE = first free fd + the number in $BATS_FILE_TMPDIR/fdl.spare, read at each
# connection (so a test can take descriptors away and give them back). Prints its port.
fdl_start()
{
	local port wrapper=$BATS_FILE_TMPDIR/fdl-frontend first=$FIRST_FREE_FD_ACCEPT
	local -a mode=()
	if [[ $GPS_MODE == inetd ]]; then
		mode=(--inetd)
		first=$FIRST_FREE_FD_INETD
	fi
	port=$(free_port) || return 1
	cat >"$wrapper" <<-EOF
		#!/bin/bash
		n=\$((\$(<"$BATS_FILE_TMPDIR/fdl.spare") + $first))
		exec prlimit --nofile="\$n:\$n" -- "$GPS_BUILD/gitpubsub-frontend" "\$@"
	EOF
	chmod +x "$wrapper"
	echo 16 >"$BATS_FILE_TMPDIR/fdl.spare"
	setsid systemd-socket-activate --accept "${mode[@]}" -l "127.0.0.1:$port" "$wrapper" \
		--config "$GPS_CFG" --ring "$GPS_RING" --socket "$GPS_RUN_DIR/broker.sock" \
		</dev/null >"$BATS_FILE_TMPDIR/fdl.log" 2>&1 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/fdl.pid"
	_gps_sleep_until 5 _port_open "$port" || return 1
	echo "$port"
}

# _port_open PORT - whether 127.0.0.1:PORT accepts a connection.
_port_open()
{
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# curl_outcome URL [CURL_ARGS...] - print what a client sees: "<http code> <curl exit status>"
# (000 when no response came: 7 refused, 52 closed without a byte, 56 reset).
curl_outcome()
{
	local url=$1 code rc=0
	shift
	code=$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$@" "$url") || rc=$?
	echo "$code $rc"
}

@test "6: a frontend at its fd limit answers 503 with the reason, or is reset; streams go on; more fds, all works" {
	local fport x out big99 big2
	fport=$(fdl_start)
	gps_subscribe keep /fdl
	GPS_URL=http://127.0.0.1:$fport gps_subscribe viafdl /fdl
	[ "$(gps_publish /fdl '{"fdl":1}')" = 200 ]
	# Bodies over PROTO_INLINE_MAX (common/proto.h): the frontend hands them to the broker in a
	# memfd, so such a publish needs two descriptors at once (memfd, broker socket).
	big99=$(perl -e 'print "{\"fdl\":99,\"pad\":\"", "p" x $ARGV[0], "\"}"' "$FDL_BIG_PAD")
	big2=$(perl -e 'print "{\"fdl\":2,\"pad\":\"", "p" x $ARGV[0], "\"}"' "$FDL_BIG_PAD")

	# Two spare descriptors: one is the event loop's (epoll), and the ring and statistics open
	# and close again in the other, so a GET streams; a large publish needs two at once: 503
	# with its reason.
	echo 2 >"$BATS_FILE_TMPDIR/fdl.spare"
	GPS_URL=http://127.0.0.1:$fport gps_subscribe one /fdl
	printf 'POST /fdl HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' "${#big99}" "$big99" |
		http_send 127.0.0.1 "$fport" 3
	http_check_error 503
	http_body_is "$HTTP_OUT" $'the server is out of file descriptors; try again\r\n'
	[ "$(gps_header "$HTTP_OUT" Retry-After)" = 1 ]
	figure "frontend with 2 spare fds (one its epoll): GET streams, a ${#big99}-byte POST gets 503 '$(http_body "$HTTP_OUT" | tr -d '\r\n')'"

	# Three: the publish holds two on its keep-alive connection, and a GET after it gets 503.
	echo 3 >"$BATS_FILE_TMPDIR/fdl.spare"
	printf 'POST /fdl HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /fdl HTTP/1.1\r\nHost: x\r\n\r\n' \
		"${#big2}" "$big2" | http_send 127.0.0.1 "$fport" 3
	[ "$(http_statuses "$HTTP_OUT")" = "200 503" ]
	grep -q "the server is out of file descriptors; try again" "$HTTP_OUT"
	figure "frontend with 3 spare fds: a ${#big2}-byte POST 200, then a GET on that connection 503"

	# None: the dynamic loader cannot even open libc; no byte of ours runs, the client is reset
	# or closed without a response, and the listener goes on.
	echo 0 >"$BATS_FILE_TMPDIR/fdl.spare"
	out=$(curl_outcome "http://127.0.0.1:$fport/fdl")
	figure "frontend with 0 spare fds: the client sees http code ${out% *}, curl exit ${out#* } (52: closed without a response, 56: reset)"
	[[ $out == "000 52" || $out == "000 56" ]]
	kill -0 "$(<"$BATS_FILE_TMPDIR/fdl.pid")"

	# The resource comes back: everything works again; the streams never stopped.
	echo 16 >"$BATS_FILE_TMPDIR/fdl.spare"
	[ "$(GPS_URL=http://127.0.0.1:$fport gps_publish /fdl '{"fdl":3}')" = 200 ]
	for x in keep viafdl; do
		gps_wait_messages "$x" 3
		[ "$(gps_messages "$x" | tr '\n' ' ')" = "{\"fdl\":1} $big2 {\"fdl\":3} " ]
	done
	gps_wait_messages one 2
	[ "$(gps_messages one | tr '\n' ' ')" = "$big2 {\"fdl\":3} " ]
}

@test "6: a listener at its fd limit exits; its streams go on and gitpubsub-run restarts it" {
	local lpid nfd out t0 ms x
	gps_subscribe keep /lst
	lpid=$(<"$GPS_RUN_DIR/listener.pid")
	# the listener's descriptors are 0-2 and its socket: the next accept() needs one more
	nfd=$(find "/proc/$lpid/fd" -mindepth 1 | wc -l)
	prlimit --pid "$lpid" --nofile="$nfd:$nfd"
	t0=$(date +%s%N)
	out=$(curl_outcome "$GPS_URL/lst")
	[[ $out == "000 "* ]]
	_gps_sleep_until 5 _gps_pid_dead "$lpid"
	# back: a new listener that serves
	for ((x = 0; x < 100; x++)); do
		[[ $(curl_outcome "$GPS_URL/lst" -I) == "200 0" ]] && break
		sleep 0.05
	done
	ms=$(http_ms_since "$t0")
	figure "listener at its fd limit: the client sees http code ${out% *}, curl exit ${out#* };" \
		"serving again after $ms ms"
	((ms < RESTART_LIMIT_MS))
	[ "$(<"$GPS_RUN_DIR/listener.pid")" != "$lpid" ]
	grep -q "the listener (pid $lpid) exited; restarting it" "$GPS_LOG"
	# the stream it had started goes on
	gps_sub_alive keep
	[ "$(gps_publish /lst '{"lst":1}')" = 200 ]
	gps_wait_messages keep 1
	[ "$(gps_messages keep)" = '{"lst":1}' ]
}

# nproc_start LIMIT - start instance "nproc": gitpubsub-run as uid NPROC_UID (root is exempt
# from RLIMIT_NPROC) with RLIMIT_NPROC = LIMIT for every process of it. Prints its port.
nproc_start()
{
	local dir=$BATS_FILE_TMPDIR/inst-nproc d port ring
	local -a mode=()
	[[ $GPS_MODE == inetd ]] && mode=(--inetd)
	mkdir -p "$dir"
	d=$(mktemp -d /tmp/gps-rt.XXXXXX) || return 1
	port=$(free_port) || return 1
	ring=/gps-test-$$-nproc-$RANDOM
	printf '[Server]\nIP: 127.0.0.1\nport: %s\n[Stream]\nkeepalive: 1s\n[History]\nringSize: 256K\n' \
		"$port" >"$d/cfg"
	chmod 0755 "$d"
	chmod 0644 "$d/cfg"
	chown "$NPROC_UID:$NPROC_UID" "$d"
	echo "$d" >"$dir/runner.dir"
	echo "$ring" >"$dir/runner.ring"
	# LeakSanitizer's exit-time thread would count against the limit too
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		setsid setpriv --reuid="$NPROC_UID" --regid="$NPROC_UID" --clear-groups \
		prlimit --nproc="$1:$1" -- "$GPS_BUILD/gitpubsub-run" --listen "127.0.0.1:$port" \
		--config "$d/cfg" --runtime-dir "$d/rt" --ring "$ring" "${mode[@]}" \
		</dev/null >"$dir/gitpubsub-run.log" 2>&1 3>&- &
	echo $! >"$dir/runner.pid"
	_gps_sleep_until "$GPS_START_TIMEOUT" test -e "$d/rt/ready" || {
		cat "$dir/gitpubsub-run.log" >&2
		return 1
	}
	echo "$port"
}

# nproc_count - the processes of NPROC_UID.
nproc_count()
{
	pgrep -c -u "$NPROC_UID" || true
}

@test "6: process limit reached: the new client is reset, existing streams go on, service returns when a process frees" {
	local port out out2 k1 k2 t0 ms x
	# runner, broker and listener, then room for exactly two frontends
	port=$(nproc_start 5)
	GPS_URL=http://127.0.0.1:$port
	gps_subscribe s1 /np
	[ "$(gps_publish /np '{"np":1}')" = 200 ]
	gps_subscribe s2 /np
	_gps_sleep_until 3 test "$(nproc_count)" -ge 5
	[ "$(nproc_count)" -eq 5 ]

	# the listener cannot fork: what does a new client see?
	out=$(curl_outcome "$GPS_URL/np")
	out2=$(curl_outcome "$GPS_URL/np")
	figure "process limit reached: a new client sees http code ${out% *}, curl exit ${out#* }" \
		"(56: reset); the next one ${out2% *}/${out2#* } (7: refused while the listener restarts)"
	[[ $out == "000 "* && $out2 == "000 "* ]]
	grep -q "Failed to fork" "$BATS_FILE_TMPDIR/inst-nproc/gitpubsub-run.log"

	# the two streams are still served: their keepalives keep coming
	k1=$(gps_keepalives s1 | wc -l)
	k2=$(gps_keepalives s2 | wc -l)
	gps_wait_keepalives s1 $((k1 + 2)) 4
	gps_wait_keepalives s2 $((k2 + 2)) 4
	gps_sub_alive s1
	gps_sub_alive s2

	# a process frees: the service takes connections again
	gps_unsubscribe s2
	t0=$(date +%s%N)
	for ((x = 0; x < 200; x++)); do
		[[ $(gps_publish /np '{"np":2}' 2>/dev/null) == 200 ]] && break
		sleep 0.05
	done
	ms=$(http_ms_since "$t0")
	figure "process limit: publishing again $ms ms after a subscriber left"
	((x < 200))
	gps_wait_messages s1 2
	[ "$(gps_messages s1 | tr '\n' ' ')" = '{"np":1} {"np":2} ' ]
	http_instance_stop nproc
}

@test "6: /dev/shm full at start-up: a clear error and exit 1, nothing left behind; starts once there is room" {
	local script=$BATS_FILE_TMPDIR/shm-full.sh
	printf '[History]\nringSize: 4M\n' >"$BATS_FILE_TMPDIR/shm.cfg"
	cat >"$script" <<-'EOF'
		# Runs in a private mount namespace (unshare -m): /dev/shm here is a tiny tmpfs of
		# our own, never the real one, which other tests use.
		set -u
		build=$1 cfg=$2 dir=$3
		broker() {
			"$build/gitpubsub-broker" --config "$cfg" --ring /gps-shm-test \
				--socket "$dir/b.sock" 2>>"$dir/err" &
			pid=$!
			for _ in $(seq 100); do
				[ -S "$dir/b.sock" ] && return 0
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.05
			done
			[ -S "$dir/b.sock" ]
		}
		stop() {
			kill "-$1" "$pid"
			wait "$pid" 2>/dev/null
			echo "$?"
			rm -f "$dir/b.sock"
		}
		mount -t tmpfs -o size=1m,mode=1777 gps-test-shm /dev/shm || exit 99
		if broker; then
			printf 'small: started, '
			stop TERM
		else
			wait "$pid"
			echo "small: exit $?"
		fi
		echo "left: $(ls -A /dev/shm | tr '\n' ' ')"
		mount -o remount,size=16m /dev/shm
		broker && echo "room: ready" || echo "room: not ready"
		# full again: a restart needs no room, the ring exists
		dd if=/dev/zero of=/dev/shm/filler bs=1M 2>/dev/null
		echo "filled: $(df --output=avail -k /dev/shm | tail -n 1 | tr -d ' ') KiB free"
		printf 'killed: '
		stop KILL
		broker && echo "restart: ready" || echo "restart: not ready"
		"$build/gpsctl" --ring /gps-shm-test check >/dev/null && echo "check: ok"
		printf 'stopped: '
		stop TERM
	EOF
	mkdir -p "$BATS_FILE_TMPDIR/shm"
	rm -f "$BATS_FILE_TMPDIR/shm/err"
	run -0 timeout 30 unshare -m bash "$script" "$GPS_BUILD" "$BATS_FILE_TMPDIR/shm.cfg" \
		"$BATS_FILE_TMPDIR/shm"
	printf '%s\n' "${lines[@]}"
	cat "$BATS_FILE_TMPDIR/shm/err"
	[ "${lines[0]}" = "small: exit 1" ]
	[ "${lines[1]}" = "left: " ]
	[ "${lines[2]}" = "room: ready" ]
	[ "${lines[3]}" = "filled: 0 KiB free" ]
	[ "${lines[4]}" = "killed: 137" ]
	[ "${lines[5]}" = "restart: ready" ]
	[ "${lines[6]}" = "check: ok" ]
	[ "${lines[7]}" = "stopped: 0" ]
	grep -q "unable to create ring '/gps-shm-test': no space left in /dev/shm for 4096 KiB of history; free some there or lower \[History\] ringSize" \
		"$BATS_FILE_TMPDIR/shm/err"
	figure "/dev/shm of 1 MiB, ringSize 4M: exit ${lines[0]#small: exit }, '$(grep -o "no space left[^;]*" "$BATS_FILE_TMPDIR/shm/err" | head -n 1)'; ready once there is room; a restart on a full /dev/shm works"
}
