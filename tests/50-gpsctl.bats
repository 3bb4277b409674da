#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# gpsctl (README "gpsctl"): the read-only inspector of the history ring. Every command against a
# live service (status, stats, dump, tail, topics, check), its JSON and Prometheus output, its exit
# codes, and check against copies of the ring damaged on purpose. One service for the whole
# file, with a 64 KiB ring so that a reader can be lapped; each test publishes to topics of its
# own and reads only those back.

bats_require_minimum_version 1.5.0

load lib

# Payload bytes of a message big enough that two of them fill most of the 64 KiB ring.
BIG=24000
# A gap notice (PROTOCOL 3.4), as gpsctl tail prints it.
GAP_RE='^\{"gap": \{"missed": ([0-9]+), "resume": [0-9]+\.[0-9]{6}\}\}$'
# A time as gpsctl prints it: seconds with exactly 6 decimals.
TIME_RE='[0-9]+\.[0-9]{6}'
# Bounded waits, in seconds.
WAIT=5

setup_file()
{
	gps_start "[History]" "ringSize: 64K"
	GPS_COPY=${GPS_RING}-copy
	GPS_SOLO=${GPS_RING}-solo
	export GPS_COPY GPS_SOLO
}

teardown_file()
{
	local pid
	for pid in "$BATS_FILE_TMPDIR"/bg-*.pid; do
		[[ -f $pid ]] && kill -KILL "$(<"$pid")" 2>/dev/null
	done
	rm -f "/dev/shm/${GPS_COPY#/}" "/dev/shm/${GPS_COPY#/}.stats" \
		"/dev/shm/${GPS_SOLO#/}" "/dev/shm/${GPS_SOLO#/}.stats"
	gps_stop
}

teardown()
{
	local f
	gps_unsubscribe_all
	for f in "$BATS_FILE_TMPDIR"/bg-*.pid; do
		[[ -f $f ]] || continue
		kill -KILL "$(<"$f")" 2>/dev/null
		rm -f "$f"
	done
}

# gpsctl ARGS... - the gpsctl under test, on this file's ring unless ARGS pick another.
gpsctl()
{
	"$GPS_BUILD/gpsctl" --ring "$GPS_RING" "$@"
}

# gpsctl_on RING ARGS... - gpsctl on another ring.
gpsctl_on()
{
	local ring=$1
	shift
	"$GPS_BUILD/gpsctl" --ring "$ring" "$@"
}

# pub TOPIC JSON - publish and require 200.
pub()
{
	local code
	code=$(gps_publish "$1" "$2") || return 1
	[[ $code == 200 ]] || _gps_fail "publish to $1 answered $code"
}

# big_json N - a valid JSON object of about BIG bytes carrying N.
big_json()
{
	local pad
	printf -v pad '%*s' "$BIG" ''
	printf '{"n":%d,"pad":"%s"}' "$1" "${pad// /x}"
}

# bg NAME CMD... - run CMD in the background with stdout in $BATS_FILE_TMPDIR/NAME.out and
# stderr in NAME.err; its pid is kept for teardown and printed by bg_pid NAME.
bg()
{
	local name=$1
	shift
	"$@" >"$BATS_FILE_TMPDIR/$name.out" 2>"$BATS_FILE_TMPDIR/$name.err" 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/bg-$name.pid"
}

bg_pid()
{
	cat "$BATS_FILE_TMPDIR/bg-$1.pid"
}

bg_out()
{
	cat "$BATS_FILE_TMPDIR/$1.out"
}

# _has_line NAME REGEX - whether NAME's output has a line matching REGEX.
_has_line()
{
	grep -Eq -- "$2" "$BATS_FILE_TMPDIR/$1.out"
}

# wait_line NAME REGEX - wait (bounded) until NAME's output has a line matching REGEX.
wait_line()
{
	_gps_sleep_until "$WAIT" _has_line "$1" "$2" || {
		echo "no line matching '$2' from $1 within ${WAIT}s; got:" >&2
		cat "$BATS_FILE_TMPDIR/$1.out" "$BATS_FILE_TMPDIR/$1.err" >&2
		return 1
	}
}

# bg_wait NAME - wait (bounded) for NAME to exit; its exit status is returned.
bg_wait()
{
	local pid
	pid=$(bg_pid "$1")
	_gps_sleep_until "$WAIT" _gps_pid_dead "$pid" || _gps_fail "$1 still runs after ${WAIT}s" ||
		return 1
	wait "$pid"
}

# put_le FILE OFFSET BYTES VALUE - write VALUE as a little-endian integer of BYTES bytes.
put_le()
{
	local f=$1 off=$2 n=$3 v=$4 i s=""
	for ((i = 0; i < n; i++)); do
		s+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255)))
	done
	# shellcheck disable=SC2059 # s is made of \xHH escapes on purpose
	printf "$s" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# get_le FILE OFFSET BYTES - print the little-endian unsigned integer of BYTES bytes there.
get_le()
{
	od -An -t "u$3" -j "$2" -N "$3" "$1" | tr -d ' '
}

# copy_ring - copy this file's ring and its statistics to $GPS_COPY (a quiet moment's state).
copy_ring()
{
	cp "/dev/shm/${GPS_RING#/}" "/dev/shm/${GPS_COPY#/}" &&
		cp "/dev/shm/${GPS_RING#/}.stats" "/dev/shm/${GPS_COPY#/}.stats"
}

@test "--help lists every command and the exit codes; misuse exits 2" {
	run -0 gpsctl --help
	for cmd in status stats check dump tail topics; do
		[[ $output == *"  $cmd"* ]]
	done
	[[ $output == *"Exit status: 0 success, 1 runtime failure"*"2 usage error"* ]]

	run -2 gpsctl
	run -2 gpsctl bogus
	[[ $output == *"unknown command 'bogus'"* ]]
	run -2 gpsctl --no-such-option status
	run -2 gpsctl status /extra
	run -2 gpsctl tail --until now
	[[ $output == *"--until applies to dump and topics"* ]]
	run -2 gpsctl status --since now
	run -2 gpsctl dump --since yesterday
	run -2 gpsctl dump --since 1e9
	run -2 gpsctl dump --count -1
	run -2 gpsctl stats --prometheus --json
	run -2 gpsctl dump '/bad%zzescape'
	run -0 gpsctl --version
	[[ $output =~ ^gpsctl\ [0-9]+\.[0-9]+ ]]
}

@test "the README and the man page list exactly the verbs of gpsctl's table, in its order" {
	local verbs readme man
	run -0 gpsctl --list-verbs
	verbs=$output
	[[ $verbs == *status*check*tail* ]]
	readme=$(grep -oE '^\| `gpsctl [a-z]+' "$GPS_REPO/README.md" | sed 's/.*gpsctl //')
	man=$(sed -n '/^\.Sh COMMANDS/,/^\.Sh OPTIONS/s/^\.It Cm \([a-z]*\).*/\1/p' \
		"$GPS_REPO/man/gpsctl.1")
	[[ $readme == "$verbs" ]]
	[[ $man == "$verbs" ]]
}

@test "every program reports the one version, debian/changelog's" {
	local want prog
	want=$(sed -n '1s/^gitpubsub (\([^)]*\)) .*/\1/p' "$GPS_REPO/debian/changelog")
	[[ $want =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]
	for prog in gpsctl gitpubsub-hook gitpubsub-broker gitpubsub-frontend; do
		run -0 "$GPS_BUILD/$prog" --version
		[[ $output == "$prog $want" ]]
	done
}

@test "a ring that does not exist is a runtime failure (exit 1) that says so" {
	run -1 gpsctl_on "/gps-none-$$-$RANDOM" status
	[[ $output == *"no such ring"* ]]
	run -1 gpsctl_on "/gps-none-$$-$RANDOM" dump
	run -1 gpsctl_on "/gps-none-$$-$RANDOM" check
}

@test "status shows the ring, what it holds, the broker and the counters" {
	local st pid ts
	pub /st/a '{"st":1}'
	pub /st/b '{"st":2}'
	pub /st/a '{"st":3}'
	ts=$(gps_header "$GPS_LAST_HEADERS" X-Timestamp)
	gps_subscribe s1 /st
	pid=$(gps_broker_pid)

	run -0 gpsctl status --json
	st=$output
	[[ $(jq -r .ring <<<"$st") == "$GPS_RING" ]]
	[[ $(jq -r .file <<<"$st") == "/dev/shm/${GPS_RING#/}" ]]
	[[ $(jq -r .size <<<"$st") == 65536 ]]
	jq -e '.messages >= 3 and .messages == .head - .tail and .bytes > 0' <<<"$st"
	jq -e --argjson v "$(sed -n 's/^#define RING_VERSION UINT32_C(\([0-9]*\)).*/\1/p' \
		"$GPS_REPO/shm/ring.h")" '.oldest <= .newest and .generation > 0 and .version == $v' \
		<<<"$st"
	# the newest message is the last publish: X-Timestamp is its whole second (PROTOCOL 4.5)
	[[ $(jq -r '.newest | floor' <<<"$st") == "$ts" ]]
	[[ $(jq -r .broker.pid <<<"$st") == "$pid" ]]
	jq -e '.broker.running == true and .broker.state == "running"' <<<"$st"
	jq -e '.subscribers == 1 and .connections == 1' <<<"$st"
	[[ $(gps_stat X-Subscribers) == 1 ]]

	run -0 gpsctl status
	[[ $output == *"broker pid           $pid (running)"* ]]
	[[ $output =~ "oldest message       "[0-9-]+T[0-9:.]+Z\ \($TIME_RE\) ]]
	[[ $output =~ "subscribers          1" ]]
	[[ $output =~ "size                 65536 bytes of messages" ]]
}

@test "stats gives PROTOCOL 6's counters, as a HEAD does, in text, JSON and Prometheus form" {
	local js total prom name
	gps_subscribe s2 /stats
	# earlier tests' subscribers are released within a keepalive period (3.7): wait for that
	for _ in $(seq 50); do
		run -0 gpsctl stats --json
		js=$output
		jq -e '.subscribers == 1 and .connections == 1' <<<"$js" >/dev/null && break
		sleep 0.1
	done
	jq -e '.subscribers == 1 and .connections == 1 and .received > 0 and .sent > 0' <<<"$js"
	total=$(jq -r .total_connections <<<"$js")
	# the HEAD's own connection is counted before it answers: exactly one more
	[[ $(gps_stat X-Total-Connections) == $((total + 1)) ]]
	(($(gps_stat X-Received) >= $(jq -r .received <<<"$js")))
	[[ $(gps_stat X-Subscribers) == "$(jq -r .subscribers <<<"$js")" ]]

	run -0 gpsctl stats
	for name in X-Uptime X-Connections X-Subscribers X-Total-Connections X-Received X-Sent; do
		[[ $output =~ (^|$'\n')$name\ +[0-9]+($'\n'|$) ]]
	done

	run -0 gpsctl stats --prometheus
	prom=$output
	# every sample is 'name{ring="..."} integer', after its HELP and TYPE lines
	awk -v ring="$GPS_RING" '
		/^# HELP [a-z_]+ / { help[$3] = 1; next }
		/^# TYPE [a-z_]+ (counter|gauge)$/ { type[$3] = 1; next }
		{
			if ($0 !~ /^[a-z_]+\{ring="[^"]*"\} [0-9]+$/) { print "bad line: " $0; exit 1 }
			name = substr($0, 1, index($0, "{") - 1)
			if (!help[name] || !type[name]) { print "no HELP/TYPE before " name; exit 1 }
			if (index($0, "ring=\"" ring "\"") == 0) { print "wrong label: " $0; exit 1 }
			n++
		}
		END { if (n < 10) { print "only " n " samples"; exit 1 } }' <<<"$prom"
	grep -qxF "gitpubsub_subscribers{ring=\"$GPS_RING\"} 1" <<<"$prom"
	grep -qxF "gitpubsub_broker_up{ring=\"$GPS_RING\"} 1" <<<"$prom"
	[[ $prom =~ $'\n'"gitpubsub_connections_total{ring=\"$GPS_RING\"} "[0-9]+ ]]
	[[ $prom == *"# TYPE gitpubsub_connections_total counter"* ]]
}

@test "dump prints the held messages of a topic, oldest first, with the server's matching" {
	pub /dump/a '{"n":1}'
	pub /dump/b '{"n":2}'
	pub /dumpx '{"n":3}'
	pub /dump/a/c '{"n":4}'
	pub /dump%2Fa '{"n":5}'

	run -0 gpsctl dump /dump
	[[ $output == '{"n":1}'$'\n''{"n":2}'$'\n''{"n":4}' ]]
	run -0 gpsctl dump /dump/a
	[[ $output == '{"n":1}'$'\n''{"n":4}' ]]
	run -0 gpsctl dump '/dump/*/c'
	[[ $output == '{"n":4}' ]]
	run -0 gpsctl dump /dump --count 2
	[[ $output == '{"n":1}'$'\n''{"n":2}' ]]

	run -0 gpsctl dump /dump --topic
	[[ ${lines[0]} =~ ^$TIME_RE\ /dump/a\ \{\"n\":1\}$ ]]
	[[ ${lines[2]} =~ ^$TIME_RE\ /dump/a/c\ \{\"n\":4\}$ ]]
	run -0 gpsctl dump /dump%2Fa --topic
	[[ $output =~ ^$TIME_RE\ /dump%2Fa\ \{\"n\":5\}$ ]]

	run -0 gpsctl dump /dump --json
	[[ $(jq -c '[.topic, .message]' <<<"$output" | paste -sd' ') == \
		'["/dump/a",{"n":1}] ["/dump/b",{"n":2}] ["/dump/a/c",{"n":4}]' ]]
	jq -se '.[0].seq < .[1].seq and .[1].seq < .[2].seq and .[0].time < .[1].time' <<<"$output"
}

@test "dump --since and --until select by publish time, as X-Fetch-Since does" {
	local t1 t2 t3 x2 iso
	pub /win '{"w":1}'
	pub /win '{"w":2}'
	x2=$(gps_header "$GPS_LAST_HEADERS" X-Timestamp)
	pub /win '{"w":3}'
	run -0 gpsctl dump /win --json
	t1=$(jq -r .time <<<"${lines[0]}")
	t2=$(jq -r .time <<<"${lines[1]}")
	t3=$(jq -r .time <<<"${lines[2]}")
	# jq prints numbers its own way; take the times as gpsctl wrote them
	t1=$(grep -Eo '"time": [0-9.]+' <<<"${lines[0]}" | cut -d' ' -f2)
	t2=$(grep -Eo '"time": [0-9.]+' <<<"${lines[1]}" | cut -d' ' -f2)
	t3=$(grep -Eo '"time": [0-9.]+' <<<"${lines[2]}" | cut -d' ' -f2)

	run -0 gpsctl dump /win --since "$t2"
	[[ $output == '{"w":2}'$'\n''{"w":3}' ]]
	run -0 gpsctl dump /win --since "$t1" --until "$t3"
	[[ $output == '{"w":1}'$'\n''{"w":2}' ]]
	run -0 gpsctl dump /win --since "$t2" --until "$t3"
	[[ $output == '{"w":2}' ]]
	# X-Timestamp (the whole second) replays its message, like X-Fetch-Since (PROTOCOL 4.5)
	run -0 gpsctl dump /win --since "$x2"
	[[ $output == *'{"w":2}'$'\n''{"w":3}' ]]
	run -0 gpsctl dump /win --since -1h
	[[ $output == '{"w":1}'$'\n''{"w":2}'$'\n''{"w":3}' ]]
	iso=$(date -u -d "@${t1%.*}" +%Y-%m-%dT%H:%M:%SZ)
	run -0 gpsctl dump /win --since "$iso"
	[[ $output == '{"w":1}'$'\n''{"w":2}'$'\n''{"w":3}' ]]
	run -0 gpsctl dump /win --since now
	[[ -z $output ]]
	run -0 gpsctl dump /win --since "$((${t3%.*} + 3600))"
	[[ -z $output ]]
	run -2 gpsctl dump /win --since "$t3" --until "$t1"
}

@test "tail follows new messages like a subscriber to its topic" {
	bg tail1 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" tail /tail --since now --count 2 --topic
	pub /tailx '{"t":0}'
	pub /tail/a '{"t":1}'
	pub /tailfoo '{"t":2}'
	pub /tail '{"t":3}'
	bg_wait tail1
	run -0 bg_out tail1
	[[ ${#lines[@]} == 2 ]]
	[[ ${lines[0]} =~ ^$TIME_RE\ /tail/a\ \{\"t\":1\}$ ]]
	[[ ${lines[1]} =~ ^$TIME_RE\ /tail\ \{\"t\":3\}$ ]]
}

@test "tail --since replays what is held, then goes on live without loss or duplicate" {
	local t
	pub /rep '{"r":1}'
	pub /rep '{"r":2}'
	run -0 gpsctl dump /rep --json
	t=$(grep -Eo '"time": [0-9.]+' <<<"${lines[0]}" | cut -d' ' -f2)
	bg tail2 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" tail /rep --since "$t" --count 3
	wait_line tail2 '^\{"r":2\}$'
	pub /rep '{"r":3}'
	bg_wait tail2
	run -0 bg_out tail2
	[[ $output == '{"r":1}'$'\n''{"r":2}'$'\n''{"r":3}' ]]
}

@test "tail that is lapped prints one gap notice and goes on with the oldest held message" {
	local pid missed got n
	bg tail3 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" tail /lap --since now
	pub /lap '{"n":0}'
	wait_line tail3 '^\{"n":0\}$'
	pid=$(bg_pid tail3)
	kill -STOP "$pid"
	for n in 1 2 3 4 5 6 7 8; do
		pub /lap "$(big_json "$n")"
	done
	kill -CONT "$pid"
	wait_line tail3 '^\{"n":8,'
	kill -TERM "$pid"
	bg_wait tail3
	run -0 bg_out tail3
	[[ ${lines[0]} == '{"n":0}' ]]
	[[ ${lines[1]} =~ $GAP_RE ]]
	missed=${BASH_REMATCH[1]}
	# after the gap: the newest messages, in order, each once; none skipped silently
	got=$(printf '%s\n' "${lines[@]:2}" | jq -r .n | paste -sd' ')
	[[ $got == "$(seq -s ' ' $((missed + 1)) 8)" ]]
	((missed >= 1))
	grep -q "lapped by the writer: $missed messages missed" "$BATS_FILE_TMPDIR/tail3.err"
}

@test "tail ends cleanly on SIGINT and SIGTERM (exit 0)" {
	local pid sig
	for sig in INT TERM; do
		bg tail4 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" tail /quiet
		pid=$(bg_pid tail4)
		# it is waiting once it has mapped the ring (read-only: r--s)
		_gps_sleep_until "$WAIT" grep -q "r--s .*/dev/shm/${GPS_RING#/}\$" "/proc/$pid/maps"
		kill "-$sig" "$pid"
		bg_wait tail4
	done
}

@test "gpsctl maps the ring read-only" {
	local pid maps
	bg tail5 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" tail /ro
	pid=$(bg_pid tail5)
	_gps_sleep_until "$WAIT" grep -q "/dev/shm/${GPS_RING#/}\$" "/proc/$pid/maps"
	maps=$(grep "/dev/shm/${GPS_RING#/}\$" "/proc/$pid/maps")
	[[ -n $maps ]]
	# every mapping of the ring is shared and read-only: nothing gpsctl does can write it
	run -1 grep -v ' r--s ' <<<"$maps"
}

@test "topics counts messages and bytes per topic, busiest first" {
	pub /tp/a '{"a":1}'
	pub /tp/b '{"b":22}'
	pub /tp/c '{"c":333}'
	pub /tp/a '{"a":2}'
	pub /tp/c '{"c":4}'
	pub /tp/a '{"a":3}'
	pub /tpx '{"x":1}'

	run -0 gpsctl topics /tp --json
	[[ $output == '[{"topic": "/tp/a", "messages": 3, "bytes": 21}, {"topic": "/tp/c", "messages": 2, "bytes": 16}, {"topic": "/tp/b", "messages": 1, "bytes": 8}]' ]]
	run -0 gpsctl topics /tp
	[[ ${lines[0]} =~ MESSAGES\ +BYTES\ +TOPIC ]]
	[[ ${lines[1]} =~ ^\ +3\ +21\ +/tp/a$ ]]
	[[ ${lines[2]} =~ ^\ +2\ +16\ +/tp/c$ ]]
	[[ ${lines[3]} =~ ^\ +1\ +8\ +/tp/b$ ]]
	[[ ${#lines[@]} == 4 ]]
}

@test "check passes on the live ring, also while it is being published to" {
	local i
	run -0 gpsctl check
	[[ $output =~ ^ok:\ ring\ \'$GPS_RING\':\ [0-9]+\ messages\ checked$ ]]
	run -0 gpsctl check --json
	jq -e '.ok == true and .problems == 0 and .checked > 0' <<<"$output"

	# shellcheck disable=SC2016 # the loop runs in its own bash, with $0 = the URL
	bg pubs bash -c 'for i in $(seq 60); do
		curl -s -o /dev/null -d "{\"busy\":$i}" "$0/busy" || exit 1
	done' "$GPS_URL"
	for i in 1 2 3 4 5 6; do
		run -0 gpsctl check
	done
	bg_wait pubs
	run -0 gpsctl check
}

@test "check finds a damaged ring and says what is wrong (exit 1)" {
	local copy nidx seq pos tl dsize
	pub /chk '{"c":1}'
	pub /chk '{"c":2}'
	pub /chk '{"c":3}'
	copy="/dev/shm/${GPS_COPY#/}"
	copy_ring
	run -0 gpsctl_on "$GPS_COPY" check
	run -0 gpsctl_on "$GPS_COPY" status --json
	nidx=$(jq -r .index_entries <<<"$output")
	dsize=$(jq -r .size <<<"$output")
	run -0 gpsctl_on "$GPS_COPY" dump /chk --json
	seq=$(jq -r .seq <<<"${lines[1]}")

	# a message whose time goes back: the time index (binary search) would be wrong
	put_le "$copy" $((4096 + 32 * (seq & (nidx - 1)) + 8)) 8 1
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"seq $seq: time does not increase"* ]]
	[[ $output == *"BAD: ring '$GPS_COPY'"* ]]
	run -1 gpsctl_on "$GPS_COPY" check --json
	jq -e '.ok == false and .problems >= 1' <<<"$output"

	# a line break inside a stored payload
	copy_ring
	pos=$(get_le "$copy" $((4096 + 32 * (seq & (nidx - 1)) + 16)) 8)
	tl=$(get_le "$copy" $((4096 + 32 * (seq & (nidx - 1)) + 24)) 4)
	put_le "$copy" $((4096 + 32 * nidx + (pos & (dsize - 1)) + tl + 1)) 1 10
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"seq $seq: payload holds a control byte"* ]]

	# counters that contradict each other
	copy_ring
	put_le "$copy" 72 8 $(($(get_le "$copy" 64 8) + 5))
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"counters: tail "*" is above head "* ]]

	# another magic, another version, a truncated object: the header is refused
	copy_ring
	put_le "$copy" 0 4 0
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"header: magic is 0x00000000"* ]]
	run -1 gpsctl_on "$GPS_COPY" status
	[[ $output == *"not a valid ring of this version"* ]]
	copy_ring
	put_le "$copy" 4 4 99
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"header: version 99"* ]]
	copy_ring
	truncate -s 100 "$copy"
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"the object is 100 bytes, smaller than the 4096-byte header"* ]]

	# no statistics object beside the ring
	copy_ring
	rm -f "$copy.stats"
	run -1 gpsctl_on "$GPS_COPY" check
	[[ $output == *"statistics: unable to open"* ]]
}

# proxy_cfg NAME TRUSTED PROXIES - write configuration NAME with those [Clients] lines (empty:
# the key is left out); print its path.
proxy_cfg()
{
	local f=$BATS_FILE_TMPDIR/proxy-$1.cfg
	{
		echo "[Clients]"
		[[ -z $2 ]] || echo "trustedPeers: $2"
		[[ -z $3 ]] || echo "proxies: $3"
	} >"$f"
	echo "$f"
}

@test "14.7: check warns when a trusted address is also a reverse proxy's ([Clients] proxies), and only then" {
	local cfg t p want
	# trustedPeers | proxies | the trusted entry warned about ("" none)
	local -a cases=(
		"||"
		"|127.0.0.1|127.0.0.1"
		"|::1 10.0.0.5|::1"
		"127.0.0.1 ::1|127.0.0.2||"
		"127.0.0.0/8|127.0.0.2|127.0.0.0/8"
		"10.0.0.0/8 192.168.1.*|192.168.1.40|192.168.1.*"
		"10.0.0.0/8|192.168.1.40||"
		"::/0|203.0.113.9|::/0"
		"::ffff:127.0.0.1|127.0.0.1|::ffff:127.0.0.1"
	)
	for c in "${cases[@]}"; do
		IFS='|' read -r t p want <<<"$c"
		cfg=$(proxy_cfg x "$t" "$p")
		# a warning does not fail the check: a proxy that lets only some clients publish
		# (nginx limit_except) may be trusted on purpose
		run -0 "$GPS_BUILD/gpsctl" --config "$cfg" --ring "$GPS_RING" check
		echo "# trustedPeers '${t:-(default) 127.0.0.1 ::1}', proxies '${p:-(none)}':" \
			"$(grep -c '^WARNING' <<<"$output") warning(s), wanted for '${want:-none}'" >&3
		if [[ -z $want ]]; then
			[[ $output != *WARNING* ]]
		else
			[ "$(grep -c '^WARNING' <<<"$output")" -eq 1 ]
			[[ ${lines[0]} == "WARNING: [Clients] trustedPeers entry '$want' covers the reverse proxy '"*"' of [Clients] proxies: every client of the proxy arrives with its address and may publish; give publishers an address of their own, or tokens" ]]
		fi
		[[ ${lines[-1]} == "ok: ring '$GPS_RING': "* ]]
	done
	# --json: in the object's "warnings"
	cfg=$(proxy_cfg j "" "127.0.0.1")
	run -0 "$GPS_BUILD/gpsctl" --config "$cfg" --ring "$GPS_RING" check --json
	jq -e '.ok == true and (.warnings | length) == 1 and (.warnings[0] | test("127.0.0.1"))' <<<"$output"
	run -0 "$GPS_BUILD/gpsctl" --config "$(proxy_cfg k "" "")" --ring "$GPS_RING" check --json
	jq -e '.warnings == []' <<<"$output"
	# said even when there is no ring to check
	run -1 "$GPS_BUILD/gpsctl" --config "$(proxy_cfg n "" "::1")" --ring "/gps-none-$$" check
	[[ $output == *"WARNING: [Clients] trustedPeers entry '::1' covers the reverse proxy '::1'"* ]]
	# a bad entry is a configuration error, named
	run -1 "$GPS_BUILD/gpsctl" --config "$(proxy_cfg b "" "proxy.example.org")" --ring "$GPS_RING" check
	[[ $output == *"invalid value for key 'proxies' in section '[Clients]': bad entry 'proxy.example.org'"* ]]
}

# solo_running - whether the broker of the solo ring is up (holds the ring's writer lock).
solo_running()
{
	gpsctl_on "$GPS_SOLO" status --json 2>/dev/null | jq -e '.broker.running' >/dev/null
}

@test "status tells a broker that died from one that stopped cleanly" {
	local pid st
	# a copy of the live ring names the live broker, but nobody holds the copy's writer lock
	copy_ring
	run -0 gpsctl_on "$GPS_COPY" status --json
	jq -e '.broker.running == false and .broker.state == "dead"' <<<"$output"
	[[ $(jq -r .broker.pid <<<"$output") == "$(gps_broker_pid)" ]]
	run -0 gpsctl_on "$GPS_COPY" stats --prometheus
	grep -qxF "gitpubsub_broker_up{ring=\"$GPS_COPY\"} 0" <<<"$output"

	# a broker of its own on another ring: running, then stopped with SIGTERM
	bg solo "$GPS_BUILD/gitpubsub-broker" --config "$GPS_CFG" --ring "$GPS_SOLO" \
		--socket "$BATS_FILE_TMPDIR/solo.sock"
	pid=$(bg_pid solo)
	_gps_sleep_until "$WAIT" solo_running
	run -0 gpsctl_on "$GPS_SOLO" status --json
	st=$output
	jq -e '.broker.running == true and .messages == 0 and .oldest == null' <<<"$st"
	[[ $(jq -r .broker.pid <<<"$st") == "$pid" ]]
	kill -TERM "$pid"
	bg_wait solo
	run -0 gpsctl_on "$GPS_SOLO" status --json
	jq -e '.broker.pid == 0 and .broker.running == false and .broker.state == "stopped"' \
		<<<"$output"
	run -0 gpsctl_on "$GPS_SOLO" status
	[[ $output == *"broker pid           0 (stopped: shut down cleanly)"* ]]
}

# _broker_replaced OLDPID - a new broker pid is in broker.pid and gpsctl sees it running.
_broker_replaced()
{
	local pid
	pid=$(gps_broker_pid) && [[ $pid != "$1" ]] &&
		gpsctl status --json 2>/dev/null | jq -e --argjson pid "$pid" \
			'.broker.pid == $pid and .broker.running' >/dev/null
}

@test "status follows a broker restart: the new pid, running, the history kept" {
	local before old new
	pub /restart '{"k":1}'
	run -0 gpsctl status --json
	before=$output
	old=$(gps_broker_pid)
	kill -KILL "$old"
	# the runner restarts it after 0.2 s; until then gpsctl sees no writer
	_gps_sleep_until 10 _broker_replaced "$old"
	new=$(gps_broker_pid)
	run -0 gpsctl status --json
	[[ $(jq -r .broker.pid <<<"$output") == "$new" ]]
	jq -e '.broker.running == true' <<<"$output"
	[[ $(jq -r .head <<<"$output") == "$(jq -r .head <<<"$before")" ]]
	[[ $(jq -r .generation <<<"$output") == "$(jq -r .generation <<<"$before")" ]]
	run -0 gpsctl dump /restart
	[[ $output == '{"k":1}' ]]
	run -0 gpsctl check
}

@test "--runtime-dir and --config pick the instance" {
	run -0 "$GPS_BUILD/gpsctl" --runtime-dir "$GPS_RUN_DIR" status --json
	[[ $(jq -r .ring <<<"$output") == "$GPS_RING" ]]
	run -1 "$GPS_BUILD/gpsctl" --runtime-dir "$BATS_FILE_TMPDIR/no-such-dir" status
	[[ $output == *"unable to find the ring"* ]]

	printf '[History]\nring: %s\n' "$GPS_RING" >"$BATS_FILE_TMPDIR/pick.cfg"
	run -0 "$GPS_BUILD/gpsctl" --config "$BATS_FILE_TMPDIR/pick.cfg" status --json
	[[ $(jq -r .ring <<<"$output") == "$GPS_RING" ]]
	run -1 "$GPS_BUILD/gpsctl" --config "$BATS_FILE_TMPDIR/no-such.cfg" status
}
