#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# PROTOCOL section 3: subscribing with GET. One service for the whole file, with a 64 KiB ring
# so that a slow reader can be lapped (3.4), and short timers (lib.bash gps_config). Each test
# uses topics of its own, so the messages of one test never reach another's subscribers.

bats_require_minimum_version 1.5.0

load lib

# A keepalive line (PROTOCOL 3.3): exactly 6 decimals, one space after the colon.
KEEPALIVE_RE='^\{"stillalive": [0-9]+\.[0-9]{6}\}$'
# A gap notice (PROTOCOL 3.4).
GAP_RE='^\{"gap": \{"missed": ([0-9]+), "resume": ([0-9]+)\.[0-9]{6}\}\}$'
# Payload bytes of a message big enough that two of them fill most of the 64 KiB ring.
BIG=24000

setup_file()
{
	# sendTimeout 12s: the lapping test (3.4) stops a reader for the time it takes to fill its
	# socket, 1-3 s on a quiet machine and over 5 s beside another bats file under load; it must
	# not be dropped meanwhile.
	gps_start "[History]" "ringSize: 64K" "[Stream]" "sendTimeout: 12s"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	gps_unsubscribe_all
}

# big_json N - a valid JSON object of about BIG bytes carrying the sequence number N.
big_json()
{
	local pad
	printf -v pad '%*s' "$BIG" ''
	printf '{"n":%d,"pad":"%s"}\n' "$1" "${pad// /x}"
}

# body_without_keepalives NAME - the subscriber's raw chunked body with every keepalive chunk
# (three lines: size, data, empty) removed, every other byte kept as received.
body_without_keepalives()
{
	gps_sub_body "$1" | awk '
		{ l[++n] = $0 }
		END {
			for (i = 1; i + 2 <= n; i += 3) {
				if (l[i + 1] ~ /^\{"stillalive": /)
					continue
				printf "%s\n%s\n%s\n", l[i], l[i + 1], l[i + 2]
			}
		}'
}

# chunk JSON - the exact chunk a message is sent as (PROTOCOL 3.2).
chunk()
{
	printf '%x\r\n%s\r\n\r\n' "$((${#1} + 2))" "$1"
}

# wait_stat VALUE [TIMEOUT] - wait until the HEAD statistic X-Subscribers equals VALUE.
wait_stat()
{
	local x n v
	n=$(awk -v s="${2:-3}" 'BEGIN { printf "%d", s * 10 + 1 }')
	for ((x = 0; x < n; x++)); do
		v=$(gps_stat X-Subscribers) && [[ $v == "$1" ]] && return 0
		sleep 0.1
	done
	echo "X-Subscribers is '$v', expected $1 within ${2:-3}s" >&2
	return 1
}

# expect_replay NAME JSON... - subscriber NAME has received exactly the given messages once its
# first keepalive arrived (a keepalive follows everything held at the time it was sent, ring.h
# section 5, so by then the replay is over).
expect_replay()
{
	local name=$1 want got
	shift
	gps_wait_keepalives "$name" 1 3
	got=$(gps_messages "$name")
	want=$(if (($# > 0)); then printf '%s\n' "$@"; fi)
	if [[ $got != "$want" ]]; then
		printf 'subscriber %s: expected\n%s\ngot\n%s\n' "$name" "$want" "$got" >&2
		return 1
	fi
}

# next_second - wait (at most a second) for the clock to enter a new second, so that a message
# published now is the first of its second: an X-Fetch-Since of that whole second then covers no
# message evicted by an earlier test (which would rightly add a gap notice).
next_second()
{
	local s0 x
	s0=$(date +%s)
	for ((x = 0; x < 25; x++)); do
		[[ $(date +%s) != "$s0" ]] && return 0
		sleep 0.05
	done
	return 1
}

# ms_now - milliseconds since the epoch.
ms_now()
{
	echo $(($(date +%s%N) / 1000000))
}

@test "3.1 the response head is exactly the documented one, and no body comes before a message" {
	local -a head want
	gps_subscribe s /t31

	mapfile -t head < <(gps_sub_head s)
	[ "${head[0]}" = $'HTTP/1.1 200 OK\r' ]
	[[ ${head[1]:-} ]]
	mapfile -t got < <(printf '%s\n' "${head[@]:1}" |
		sed -E 's|^Server: GitPubSub/[^[:space:]]+\r$|Server: GitPubSub/<version>\r|' | sort)
	# Access-Control-Allow-Origin: README 3.12 ([Stream] allowOrigin, default *).
	mapfile -t want < <(printf '%s\r\n' "Server: GitPubSub/<version>" \
		"Transfer-Encoding: chunked" "Content-Type: application/x-gitpubsub" \
		"Cache-Control: no-cache" "X-Accel-Buffering: no" \
		"Access-Control-Allow-Origin: *" | sort)
	echo "head: ${head[*]}"
	[ "${got[*]}" = "${want[*]}" ]

	# Until a message is published, the body holds nothing but (well-framed) keepalives.
	sleep 0.3
	run -0 gps_messages s
	[ "$output" = "" ]
	run -0 gps_publish /t31 '{"m":31}'
	[ "$output" = 200 ]
	gps_wait_messages s 1
	run -0 gps_messages s
	[ "$output" = '{"m":31}' ]
}

@test "3.2 each message is exactly one chunk: lowercase hex of len+2, CRLF, JSON, CRLF, CRLF" {
	local pad long expected got m
	# 298 bytes: the size is 300 = 0x12c, with a hex letter in it.
	printf -v pad '%*s' 287 ''
	long="{\"long\":\"${pad// /y}\"}"
	local -a msgs=('{"a":1}' '{"text":"0123456789abcdef"}' "$long" '{"s":"é€"}' '[1,2,3]')
	gps_subscribe s /t32

	for m in "${msgs[@]}"; do
		run -0 gps_publish /t32 "$m"
		[ "$output" = 200 ]
	done
	gps_wait_messages s "${#msgs[@]}"

	expected=$(for m in "${msgs[@]}"; do chunk "$m"; done; echo x)
	got=$(body_without_keepalives s; echo x)
	printf 'expected:\n%s\ngot:\n%s\n' "$expected" "$got" | cat -A
	[ "$got" = "$expected" ]
	[ "${#long}" -eq 298 ]
	[[ $got == *$'\r\n12c\r\n{"long":'* ]]
	run -0 gps_messages s
	[ "$output" = "$(printf '%s\n' "${msgs[@]}")" ]
}

@test "3.3 keepalives have the exact format, come every period to every topic while messages flow" {
	local k prev x n
	gps_subscribe busy /t33/busy
	gps_subscribe quiet /t33/quiet/deep/topic
	gps_subscribe root /

	# Messages every 0.2 s for 2.4 s to one of the topics: keepalives must not wait for a pause.
	for ((x = 1; x <= 12; x++)); do
		run -0 gps_publish /t33/busy "{\"x\":$x}"
		[ "$output" = 200 ]
		sleep 0.2
	done
	gps_wait_messages busy 12
	for n in busy quiet root; do
		gps_wait_keepalives "$n" 3 3
		run -0 gps_keepalives "$n"
		echo "$n: $output"
		prev=""
		for k in "${lines[@]}"; do
			[[ $k =~ $KEEPALIVE_RE ]]
			k=${k#*: }
			k=${k%\}}
			if [[ -n $prev ]]; then
				# One period (1 s) apart, give or take scheduling.
				awk -v a="$prev" -v b="$k" 'BEGIN { d = b - a; exit !(d >= 0.5 && d <= 1.6) }'
			fi
			prev=$k
		done
	done
	# The busy subscriber got keepalives while messages were flowing (2.4 s of them).
	run -0 gps_messages busy all
	n=$(printf '%s\n' "${lines[@]}" | sed '/^{"x":12}$/q' | grep -c stillalive) || true
	echo "keepalives before the last message: $n"
	((n >= 2))
	# The stream never ends by itself, nor does a header or body timeout (1 s, 2 s) cut it.
	gps_sub_alive busy
	gps_sub_alive quiet
	gps_sub_alive root
}

@test "3.3 a keepalive's value as X-Fetch-Since replays exactly what was published after it" {
	local k
	gps_subscribe s /t33r
	run -0 gps_publish /t33r '{"before":1}'
	[ "$output" = 200 ]
	gps_wait_messages s 1
	# The first keepalive after the message in the stream.
	for ((x = 0; x < 40; x++)); do
		k=$(gps_messages s all | sed -n '/^{"before":1}$/,$p' | grep stillalive | head -n 1)
		[[ -n $k ]] && break
		sleep 0.1
	done
	[[ $k =~ $KEEPALIVE_RE ]]
	k=${k#*: }
	k=${k%\}}
	run -0 gps_publish /t33r '{"after":1}'
	[ "$output" = 200 ]
	run -0 gps_publish /t33r '{"after":2}'
	[ "$output" = 200 ]

	gps_subscribe r /t33r -H "X-Fetch-Since: $k"
	expect_replay r '{"after":1}' '{"after":2}'
}

@test "3.4 messages arrive in publish order, each once, with concurrent publishers" {
	local x
	local -a pids=()
	gps_subscribe all /t34
	gps_subscribe a /t34/a
	gps_subscribe b /t34/b
	for x in a b; do
		seq 1 150 | sed "s/.*/{\"$x\":&}/" | gps_publish_batch "/t34/$x" \
			>"$BATS_FILE_TMPDIR/pub-$x.out" 3>&- &
		pids+=($!)
	done
	gps_wait_pids 30 "${pids[@]}"
	for x in a b; do
		gps_all_200 "$BATS_FILE_TMPDIR/pub-$x.out"
		[ "$(wc -l <"$BATS_FILE_TMPDIR/pub-$x.out")" -eq 150 ]
	done
	gps_wait_messages all 300
	gps_wait_messages a 150
	gps_wait_messages b 150
	sleep 0.3
	run -0 gps_messages a
	[ "$output" = "$(seq 1 150 | sed 's/.*/{"a":&}/')" ]
	run -0 gps_messages b
	[ "$output" = "$(seq 1 150 | sed 's/.*/{"b":&}/')" ]
	run -0 gps_messages all
	[ "${#lines[@]}" -eq 300 ]
	[ "$(printf '%s\n' "${lines[@]}" | grep '"a"')" = "$(seq 1 150 | sed 's/.*/{"a":&}/')" ]
	[ "$(printf '%s\n' "${lines[@]}" | grep '"b"')" = "$(seq 1 150 | sed 's/.*/{"b":&}/')" ]
}

@test "3.4 a lapped reader gets one gap notice per lapping, with the exact count, then the rest" {
	local pid cport q prevq n=0 batch x last
	gps_subscribe_raw slow /t34gap 4096
	pid=$(gps_sub_pid slow)
	cport=$(gps_sub_port slow)
	kill -STOP "$pid"

	# Publish big messages until the server's socket to the stopped reader stops filling: then
	# the frontend is blocked writing to it. Then lap it: more than the ring holds.
	prevq=-1
	for ((batch = 0; batch < 40; batch++)); do
		for ((x = n + 1; x <= n + 10; x++)); do
			big_json "$x"
		done | gps_publish_batch /t34gap >"$BATS_FILE_TMPDIR/pub.out"
		n=$((n + 10))
		gps_all_200 "$BATS_FILE_TMPDIR/pub.out"
		q=$(gps_server_sendq "$cport")
		echo "after $n messages: server Send-Q $q"
		[[ -n $q ]]
		((q > 0 && q == prevq)) && break
		prevq=$q
	done
	((batch < 40))
	for ((x = n + 1; x <= n + 5; x++)); do
		big_json "$x"
	done | gps_publish_batch /t34gap >"$BATS_FILE_TMPDIR/pub.out"
	n=$((n + 5))
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out"
	kill -CONT "$pid"

	# Everything up to message n. The forced lapping gives a gap notice; the reader may also
	# have been lapped while the socket was filling (the ring holds two of these messages), and
	# each lapping must give exactly one notice with the exact count. Up to 30 s: through a
	# 4 KiB receive buffer, with other test files sharing both cores, catching up is slow.
	for ((x = 0; x < 300; x++)); do
		last=$(gps_messages slow | tail -n 1 | sed -n 's/^{"n":\([0-9]*\),.*/\1/p')
		[[ $last == "$n" ]] && break
		sleep 0.1
	done
	run -0 gps_messages slow
	printf '%s\n' "${lines[@]}" | cut -c 1-60 | sed 's/"pad.*//' | tr '\n' ' '
	echo
	run -0 gps_check_sequence slow n 1 "$n"
	echo "gap notices: $output"
	((output >= 1))
	gps_sub_alive slow
}

@test "3.4 a replay from a time whose messages were evicted starts with one gap notice" {
	local t0 x
	t0=$(gps_now)
	for x in 1 2 3; do
		run -0 gps_publish /t34ev "{\"ev\":$x}"
		[ "$output" = 200 ]
	done
	# Evict them: four big messages on another topic overflow the 64 KiB ring.
	for x in 1 2 3 4; do
		big_json "$x"
	done | gps_publish_batch /t34other >"$BATS_FILE_TMPDIR/pub.out"
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out"

	gps_subscribe r /t34ev -H "X-Fetch-Since: $t0"
	gps_wait_messages r 1
	run -0 gps_messages r
	[ "${#lines[@]}" -eq 1 ]
	[[ ${lines[0]} =~ $GAP_RE ]]
	# The three of this topic, and the big ones evicted since: every message it skipped.
	((BASH_REMATCH[1] >= 3 && BASH_REMATCH[1] <= 7))
	((BASH_REMATCH[2] >= ${t0%.*}))
	# Then the stream goes on live.
	run -0 gps_publish /t34ev '{"ev":4}'
	[ "$output" = 200 ]
	gps_wait_messages r 2
	run -0 gps_messages r
	[ "${lines[1]}" = '{"ev":4}' ]
	[ "${#lines[@]}" -eq 2 ]
}

# ring_field NAME - print a number of `gpsctl status` for this file's ring (e.g. tail, head).
ring_field()
{
	"$GPS_BUILD/gpsctl" --ring "$GPS_RING" status | awk -v k="$1" '$1 == k { print $2; exit }'
}

@test "3.4 a replay from before every message counts every message gone, not the index size" {
	local x pad head tail nidx
	# 3,000 messages of about 300 bytes: the 64 KiB ring holds some 200 of them, its index
	# (1,024 entries) remembers the last 1,024, the rest are gone without a trace
	printf -v pad '%*s' 280 ''
	for ((x = 1; x <= 3000; x++)); do
		printf '{"all":%d,"pad":"%s"}\n' "$x" "${pad// /y}"
	done | gps_publish_batch /t34all >"$BATS_FILE_TMPDIR/pub.out"
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out" 3000
	head=$(ring_field head)
	tail=$(ring_field tail)
	nidx=$("$GPS_BUILD/gpsctl" --ring "$GPS_RING" status | awk '$1 == "size" { print $6 }')
	# X-Fetch-Since: 0 is before the ring's first message: every message below the tail is
	# missed, as a cursor at the first message would count
	gps_subscribe r /t34all -H "X-Fetch-Since: 0"
	gps_wait_messages r 2
	run -0 gps_messages r
	[[ ${lines[0]} =~ $GAP_RE ]]
	echo "# ring: head $head, tail $tail, $nidx index entries; X-Fetch-Since: 0 got" \
		"missed ${BASH_REMATCH[1]} (messages gone: $((tail - 1)); what the index shows:" \
		"$((tail - (head - nidx))))" >&3
	((BASH_REMATCH[1] == tail - 1))
	((tail - 1 > nidx))
	# then the oldest held message of the topic, in order
	[[ ${lines[1]} == "{\"all\":"* ]]
}

@test "3.5 an X-Fetch-Since beyond 64 bits of microseconds is in the future: it replays nothing" {
	run -0 gps_publish /t35far '{"far":1}'
	[ "$output" = 200 ]
	# 2^64 us exactly, and far beyond: neither may wrap around to the past
	gps_subscribe far1 /t35far -H "X-Fetch-Since: 18446744073709.551616"
	gps_subscribe far2 /t35far -H "X-Fetch-Since: 99999999999999999999999"
	run -0 gps_publish /t35far '{"far":2}'
	gps_wait_messages far1 1
	gps_wait_messages far2 1
	[ "$(gps_messages far1)" = '{"far":2}' ]
	[ "$(gps_messages far2)" = '{"far":2}' ]
}

@test "3.5 X-Fetch-Since is inclusive: a publish's X-Timestamp as value replays that message" {
	local ts
	next_second
	run -0 gps_publish /t35inc '{"inc":1}'
	[ "$output" = 200 ]
	ts=$(gps_header "$GPS_LAST_HEADERS" X-Timestamp)
	[[ $ts =~ ^[0-9]+$ ]]
	gps_subscribe r /t35inc -H "X-Fetch-Since: $ts"
	expect_replay r '{"inc":1}'
}

@test "3.5 X-Fetch-Since takes fractions; a value after the message replays nothing" {
	local ts
	next_second
	run -0 gps_publish /t35frac '{"frac":1}'
	[ "$output" = 200 ]
	ts=$(gps_header "$GPS_LAST_HEADERS" X-Timestamp)
	gps_subscribe before /t35frac -H "X-Fetch-Since: $((ts - 1)).999999"
	gps_subscribe zero /t35frac -H "X-Fetch-Since: $ts.0"
	gps_subscribe long /t35frac -H "X-Fetch-Since: $((ts - 1)).5000000000001"
	gps_subscribe after /t35frac -H "X-Fetch-Since: $((ts + 1)).000001"
	expect_replay before '{"frac":1}'
	expect_replay zero '{"frac":1}'
	expect_replay long '{"frac":1}'
	expect_replay after
}

@test "3.5 the X-Fetch-Since name is case-insensitive and the space after the colon optional" {
	local ts
	next_second
	run -0 gps_publish /t35case '{"case":1}'
	[ "$output" = 200 ]
	ts=$(gps_header "$GPS_LAST_HEADERS" X-Timestamp)
	gps_subscribe lower /t35case -H "x-fetch-since: $ts"
	gps_subscribe upper /t35case -H "X-FETCH-SINCE: $ts"
	gps_subscribe nospace /t35case -H "X-Fetch-Since:$ts"
	expect_replay lower '{"case":1}'
	expect_replay upper '{"case":1}'
	expect_replay nospace '{"case":1}'
	# curl sends the header as given: check the raw request form too.
	run -0 gps_raw 127.0.0.1 "$GPS_PORT" \
		$'GET /t35case HTTP/1.1\r\nHost: x\r\nx-FeTcH-sInCe:'"$ts"$'\r\n\r\n' 1.5
	[[ $output == *'{"case":1}'* ]]
}

@test "3.5 an X-Fetch-Since in the future replays nothing" {
	next_second
	run -0 gps_publish /t35fut '{"fut":1}'
	[ "$output" = 200 ]
	gps_subscribe r /t35fut -H "X-Fetch-Since: $(($(date +%s) + 3600))"
	expect_replay r
}

@test "3.5 an X-Fetch-Since that is not a plain decimal gets 400" {
	local v f=$BATS_FILE_TMPDIR/resp
	local -a bad=(abc -1 +1 1e9 1E9 1.5e3 0x10 0X1A 1.2.3 "1,5" NaN inf "" "1 2" 12abc)
	for v in "${bad[@]}"; do
		echo "X-Fetch-Since: '$v'"
		gps_raw 127.0.0.1 "$GPS_PORT" \
			$'GET /t35bad HTTP/1.1\r\nHost: x\r\nX-Fetch-Since: '"$v"$'\r\n\r\n' 3 >"$f"
		cat -A "$f"
		gps_check_error "$f" 400
	done
}

@test "3.5 replay then live: no duplicate and no loss at the seam" {
	local t0 x
	t0=$(gps_now)
	seq 1 400 | sed 's/.*/{"seam":&}/' | gps_publish_batch /t35seam \
		>"$BATS_FILE_TMPDIR/pub.out" 3>&- &
	pub=$!
	# Join while the publisher is running.
	for ((x = 0; x < 100; x++)); do
		(($(wc -l <"$BATS_FILE_TMPDIR/pub.out") >= 100)) && break
		sleep 0.02
	done
	gps_subscribe r /t35seam -H "X-Fetch-Since: $t0"
	echo "joined after $(wc -l <"$BATS_FILE_TMPDIR/pub.out") publishes"
	gps_wait_pids 30 "$pub"
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out"
	gps_wait_messages r 400
	sleep 0.3
	run -0 gps_messages r
	[ "$output" = "$(seq 1 400 | sed 's/.*/{"seam":&}/')" ]
}

@test "3.5 replay runs at network speed: 1,000 held messages in well under a second" {
	local t0 start end
	t0=$(gps_now)
	seq 1 1000 | sed 's/.*/{"fast":&}/' | gps_publish_batch /t35fast >"$BATS_FILE_TMPDIR/pub.out"
	gps_all_200 "$BATS_FILE_TMPDIR/pub.out"
	start=$(ms_now)
	gps_subscribe r /t35fast -H "X-Fetch-Since: $t0"
	gps_wait_messages r 1000 5
	end=$(ms_now)
	echo "1000 messages replayed in $((end - start)) ms"
	run -0 gps_messages r
	[ "$output" = "$(seq 1 1000 | sed 's/.*/{"fast":&}/')" ]
	((end - start < 1000))
}

@test "3.6 an HTTP/1.0 subscriber gets HTTP/1.1 200 OK, no Transfer-Encoding, bare JSON lines" {
	local got
	gps_subscribe old /t36 --http1.0
	run -0 gps_sub_head old
	[ "${lines[0]}" = $'HTTP/1.1 200 OK\r' ]
	[[ $output != *[Tt]ransfer-[Ee]ncoding* ]]
	[[ $output == *$'Content-Type: application/x-gitpubsub\r'* ]]
	run -0 gps_publish /t36 '{"old":1}'
	run -0 gps_publish /t36 '{"old":"two","x":[1,2]}'
	gps_wait_messages old 2
	gps_wait_keepalives old 1
	got=$(gps_sub_body old | grep -v '^{"stillalive": ' | cat -A)
	[ "$got" = "$(printf '%s\r\n' '{"old":1}' '{"old":"two","x":[1,2]}' | cat -A)" ]
	run -0 gps_messages old all
	for got in "${lines[@]}"; do
		[[ $got =~ $KEEPALIVE_RE || $got == '{"old"'* ]]
	done
}

@test "3.7 a subscriber that disconnects is released within about two keepalive periods" {
	local x
	wait_stat 0 3
	for x in 1 2 3; do
		gps_subscribe "s$x" /t37
	done
	wait_stat 3 3
	for x in 1 2 3; do
		gps_unsubscribe "s$x"
	done
	wait_stat 0 2.5
}

@test "3.7 a subscriber that reads nothing is dropped after sendTimeout; others keep receiving" {
	local pid cport q prevq n=0 batch x start
	wait_stat 0 3
	gps_subscribe_raw stuck /t37s 4096
	pid=$(gps_sub_pid stuck)
	cport=$(gps_sub_port stuck)
	kill -STOP "$pid"
	prevq=-1
	for ((batch = 0; batch < 40; batch++)); do
		for ((x = n + 1; x <= n + 10; x++)); do
			big_json "$x"
		done | gps_publish_batch /t37s >"$BATS_FILE_TMPDIR/pub.out"
		n=$((n + 10))
		gps_all_200 "$BATS_FILE_TMPDIR/pub.out"
		q=$(gps_server_sendq "$cport")
		echo "after $n messages: server Send-Q ${q:-none}"
		[[ -n $q ]]
		((q > 0 && q == prevq)) && break
		prevq=$q
	done
	((batch < 40))
	start=$(ms_now)

	# Blocked on the stuck one, the server still serves another subscriber at once.
	gps_subscribe reader /t37s
	wait_stat 2 2
	run -0 gps_publish /t37s '{"live":1}'
	[ "$output" = 200 ]
	gps_wait_messages reader 1 1
	run -0 gps_messages reader
	[ "$output" = '{"live":1}' ]

	# sendTimeout is 12 s (counted from when the write blocked, or from when the client stopped
	# reading, up to a few seconds earlier): by then plus a keepalive period or two, it is gone.
	wait_stat 1 16
	echo "dropped $(($(ms_now) - start)) ms after the socket filled"
	(($(ms_now) - start >= 1000))
	run -0 gps_publish /t37s '{"live":2}'
	[ "$output" = 200 ]
	gps_wait_messages reader 2 1
	run -0 gps_messages reader
	[ "$output" = "$(printf '{"live":%d}\n' 1 2)" ]
	# Once it reads again, it gets the bytes already in flight, then the end of the stream.
	kill -CONT "$pid"
	for ((x = 0; x < 50; x++)); do
		gps_sub_alive stuck || break
		sleep 0.1
	done
	run -1 gps_sub_alive stuck
}
