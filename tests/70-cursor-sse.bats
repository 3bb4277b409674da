#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# Browsers and exact resume (README "Browsers and exact resume (PROTOCOL additions)", 3.8-3.12):
# cursors and X-Cursor, X-Fetch-Since-Cursor, Server-Sent Events with Last-Event-ID and
# ?lastEventId=, the Accept negotiation that serves the live page, and CORS. One service for the
# file with a 64 KiB ring, so that a test can evict messages; each test uses topics of its own.
# The last test replaces the ring (--recreate) under the running service.

bats_require_minimum_version 1.5.0

load lib
load lib-http

# A cursor (3.8): the ring's generation as 16 lowercase hex digits, '-', the seq in decimal.
CURSOR_RE='^[0-9a-f]{16}-(0|[1-9][0-9]*)$'
# A gap notice (PROTOCOL 3.4).
GAP_RE='^\{"gap": \{"missed": ([0-9]+), "resume": [0-9]+\.[0-9]{6}\}\}$'
# Payload bytes of a message big enough that three of them fill most of the 64 KiB ring.
BIG=20000

setup_file()
{
	# keepalive 300ms: expect_messages waits for one to know a replay is over
	# publishOrigins: 3.12 publishes from an origin (README 3.13 refuses unlisted ones)
	gps_start "[History]" "ringSize: 64K" "[Stream]" "keepalive: 300ms" \
		"[Clients]" "publishOrigins: https://example.org"
}

teardown_file()
{
	gps_stop
}

teardown()
{
	# A runner paused by the --recreate test must not stay paused, whatever happened.
	if [[ -f $BATS_FILE_TMPDIR/runner.stopped ]]; then
		kill -CONT "$(<"$BATS_FILE_TMPDIR/runner.stopped")" 2>/dev/null || true
		rm -f "$BATS_FILE_TMPDIR/runner.stopped"
	fi
	gps_unsubscribe_all
	http_close_all
	http_instance_stop_all
}

# pub TOPIC JSON - publish JSON to TOPIC, require a 200, and print the answer's X-Cursor.
pub()
{
	local code
	code=$(gps_publish "$1" "$2") || return 1
	[[ $code == 200 ]] || _gps_fail "publish to $1: status $code" || return 1
	gps_header "$GPS_LAST_HEADERS" X-Cursor || _gps_fail "publish to $1: no X-Cursor"
}

# seq_of CURSOR / gen_of CURSOR - the parts of a cursor.
seq_of()
{
	echo "${1##*-}"
}

gen_of()
{
	echo "${1%-*}"
}

# big_json N - a valid JSON object of about BIG bytes carrying the number N.
big_json()
{
	local pad
	printf -v pad '%*s' "$BIG" ''
	printf '{"big":%d,"pad":"%s"}' "$1" "${pad// /x}"
}

# sse_decode FILE [chunks] - decode a response saved with its head (curl -i --raw, or socat):
# undo chunked framing strictly when the head says so (lowercase hex size lines, CRLF after each
# chunk's data, no zero-size chunk: the stream never ends), then print each complete SSE event
# (text up to a blank line) on one line, its lines joined by " | ". With "chunks", print each
# chunk's data instead, its line feeds shown as "\n". Dies (status 1) on a framing error; an
# incomplete last chunk or event is left out.
sse_decode()
{
	perl -e '
		my ($file, $mode) = @ARGV;
		open(my $f, "<:raw", $file) or die "sse_decode: $file: $!\n";
		local $/;
		my $raw = <$f> // "";
		my $i = index($raw, "\r\n\r\n");
		exit 0 if $i < 0;
		my ($head, $body) = (substr($raw, 0, $i), substr($raw, $i + 4));
		my @chunks;
		if ($head =~ /^transfer-encoding:[ \t]*chunked[ \t]*\r?$/mi) {
			my $out = "";
			while (length $body) {
				if ($body !~ /^([0-9a-f]+)\r\n/) {
					last if $body =~ /^[0-9a-f]*\r?\z/;
					die "sse_decode: bad chunk size line at: " . substr($body, 0, 20) . "\n";
				}
				my ($n, $hl) = (hex $1, length($1) + 2);
				die "sse_decode: zero-size chunk: the stream ended\n" if $n == 0;
				last if length($body) < $hl + $n + 2;
				die "sse_decode: chunk data not followed by CRLF\n"
					if substr($body, $hl + $n, 2) ne "\r\n";
				push @chunks, substr($body, $hl, $n);
				$out .= substr($body, $hl, $n);
				$body = substr($body, $hl + $n + 2);
			}
			$body = $out;
		}
		if (($mode // "") eq "chunks") {
			for (@chunks) { (my $c = $_) =~ s/\n/\\n/g; print "$c\n"; }
			exit 0;
		}
		die "sse_decode: a CR in the event stream\n" if $body =~ /\r/;
		while ($body =~ s/\A(.*?)\n\n//s) {
			print join(" | ", split(/\n/, $1)), "\n";
		}
	' "$1" "${2:-}"
}

# sse_events NAME - the events subscriber NAME has received so far, one a line (sse_decode).
sse_events()
{
	sse_decode "$BATS_FILE_TMPDIR/sub-$1.raw"
}

# _sse_has NAME N [REGEX] - whether NAME has received at least N events (matching REGEX).
_sse_has()
{
	local n
	n=$(sse_events "$1" | grep -cE -- "${3:-.}") || true
	((n >= $2))
}

# sse_wait NAME N [REGEX] - wait (5 s) until NAME has received N events (matching REGEX);
# show what came otherwise.
sse_wait()
{
	_gps_sleep_until 5 _sse_has "$@" && return 0
	{
		echo "sse_wait $1: wanted $2 events matching '${3:-.}'; received:"
		sse_events "$1"
	} >&2
	return 1
}

# sse_data NAME - the data lines of NAME's message events (no gap events, no comments), in order.
sse_data()
{
	sse_events "$1" | awk -F' [|] ' '$1 ~ /^id: / && $2 ~ /^data: / { print substr($2, 7) }'
}

# expect_messages NAME JSON... - subscriber NAME (chunked stream) has received exactly these
# messages (keepalives aside) once a keepalive shows the replay is over.
expect_messages()
{
	local name=$1 want got
	shift
	gps_wait_keepalives "$name" 1 3
	got=$(gps_messages "$name")
	want=$(printf '%s\n' "$@")
	[[ $got == "$want" ]] && return 0
	printf 'subscriber %s: expected\n%s\ngot\n%s\n' "$name" "$want" "$got" >&2
	return 1
}

# answer_head PORT PATH [HEADER...] - send "GET PATH HTTP/1.1" with the given header lines to
# 127.0.0.1:PORT and print the response head (CRs kept), without waiting for a body: a stream's
# head is all that counts. Bounded: 3 s per line.
answer_head()
{
	local port=$1 path=$2 line fd
	shift 2
	exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
	{
		printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n' "$path"
		(($# == 0)) || printf '%s\r\n' "$@"
		printf '\r\n'
	} >&"$fd"
	while IFS= read -r -t 3 line <&"$fd"; do
		printf '%s\n' "$line"
		[[ $line == $'\r' ]] && break
	done
	exec {fd}>&-
}

# held_tail - the seq of the oldest held message: the next seq minus the messages held (trusted
# HEAD, PROTOCOL 6.1), given the cursor of the last message published.
held_tail()
{
	local held
	held=$(gps_stat X-Messages) || return 1
	echo $(($(seq_of "$1") + 1 - held))
}

@test "3.8: a publish answer carries X-Cursor beside X-Timestamp; cursors count up in one generation" {
	local c1 c2 gen
	c1=$(pub /c38 '{"n":1}')
	[[ $c1 =~ $CURSOR_RE ]]
	# The rest of the answer is PROTOCOL 4.5's.
	[ "$(gps_status "$GPS_LAST_HEADERS")" = 200 ]
	[[ $(gps_header "$GPS_LAST_HEADERS" X-Timestamp) =~ ^[0-9]+$ ]]
	[ "$(gps_header "$GPS_LAST_HEADERS" Content-Length)" = 15 ]
	[ "$(cat "$GPS_LAST_BODY")" = $'Message sent!\r' ]
	run -1 gps_header "$GPS_LAST_HEADERS" Access-Control-Allow-Origin
	c2=$(pub /c38/deeper '{"n":2}')
	[ "$(gen_of "$c2")" = "$(gen_of "$c1")" ]
	[ "$(seq_of "$c2")" -eq $(($(seq_of "$c1") + 1)) ]
	# The generation is the ring's (gpsctl shows it in decimal).
	gen=$("$GPS_BUILD/gpsctl" --ring "$GPS_RING" status --json | jq -r .generation)
	[ "$(printf '%016x' "$gen")" = "$(gen_of "$c1")" ]
	# An error answer has none.
	run -0 gps_publish /c38 '{"n":'
	[ "$output" = 400 ]
	run -1 gps_header "$GPS_LAST_HEADERS" X-Cursor
}

@test "3.9: X-Fetch-Since-Cursor replays exactly the messages after the cursor, then goes on live" {
	local -a c
	local x
	for x in 1 2 3 4 5; do
		c[x]=$(pub /c39/exact "{\"e\":$x}")
		pub /c39/other "{\"other\":$x}" >/dev/null
	done
	gps_subscribe s /c39/exact -H "X-Fetch-Since-Cursor: ${c[2]}"
	pub /c39/exact '{"e":6}' >/dev/null
	gps_wait_messages s 4
	expect_messages s '{"e":3}' '{"e":4}' '{"e":5}' '{"e":6}'
	# The name is case-insensitive and the space optional; the last message replays nothing.
	gps_subscribe t /c39/exact -H "x-fetch-since-cursor:${c[5]}"
	expect_messages t '{"e":6}'
}

@test "3.9: no duplicate and no loss at the seam between the replay and live publishes" {
	local last pid
	seq 1 39 | sed 's/.*/{"s":&}/' | gps_publish_batch /c39/seam >"$BATS_TEST_TMPDIR/answers"
	gps_all_200 "$BATS_TEST_TMPDIR/answers" 39
	last=$(pub /c39/seam '{"s":40}')
	seq 41 400 | sed 's/.*/{"s":&}/' >"$BATS_TEST_TMPDIR/more"
	gps_publish_batch /c39/seam <"$BATS_TEST_TMPDIR/more" >"$BATS_TEST_TMPDIR/answers" &
	pid=$!
	# Resume from message 40 while 41-400 are being published.
	sleep 0.05
	gps_subscribe s /c39/seam -H "X-Fetch-Since-Cursor: $last"
	gps_wait_pids 30 "$pid"
	gps_all_200 "$BATS_TEST_TMPDIR/answers" 360
	gps_wait_messages s 360 10
	run -0 gps_check_sequence s s 41 400
	[ "$output" = 0 ]
}

@test "3.9 + 3.10: an evicted cursor gets one gap notice with the exact count, then the oldest held message" {
	local c0 tail last x gen events
	local -a want
	c0=$(pub /c39/evict '{"small":0}')
	gen=$(gen_of "$c0")
	# Five messages of 20 KB through a 64 KiB ring: the small one and the first bigs go.
	for x in 1 2 3 4 5; do
		last=$(pub /c39/evict/big "$(big_json "$x")")
	done
	tail=$(held_tail "$last")
	echo "cursor $c0, last $last, tail $tail"
	((tail > $(seq_of "$c0") + 1))

	gps_subscribe s /c39/evict -H "X-Fetch-Since-Cursor: $c0"
	gps_wait_messages s 2
	run -0 gps_messages s
	[[ ${lines[0]} =~ $GAP_RE ]]
	[ "${BASH_REMATCH[1]}" -eq $((tail - $(seq_of "$c0") - 1)) ]
	# Then every held message from the tail on: big number x has seq last - 5 + x.
	want=("${lines[0]}")
	for ((x = tail - $(seq_of "$last") + 5; x <= 5; x++)); do
		want+=("$(big_json "$x")")
	done
	expect_messages s "${want[@]}"

	# The same as Server-Sent Events, resumed by Last-Event-ID: the id block names the event
	# before the oldest held message, so a reconnect from it is exact.
	gps_subscribe e /c39/evict -H 'Accept: text/event-stream' -H "Last-Event-ID: $c0"
	sse_wait e 3
	events=$(sse_events e)
	run -0 head -n 2 <<<"$events"
	[ "${lines[0]}" = "retry: 2000 | id: $gen-$((tail - 1))" ]
	[[ ${lines[1]} =~ ^event:\ gap\ \|\ data:\ (.*)$ ]]
	[[ ${BASH_REMATCH[1]} =~ $GAP_RE ]]
	[ "${BASH_REMATCH[1]}" -eq $((tail - $(seq_of "$c0") - 1)) ]
	run -0 sed -n 3p <<<"$events"
	[[ ${lines[0]} == "id: $gen-$tail | data: {\"big\":"* ]]
}

@test "3.9: a cursor not yet published (seq >= head) gets a gap notice with missed 0, then the oldest held" {
	local c1 c2 future
	c1=$(pub /c39/future '{"f":1}')
	c2=$(pub /c39/future '{"f":2}')
	future="$(gen_of "$c2")-$(($(seq_of "$c2") + 1000))"
	gps_subscribe s /c39/future -H "X-Fetch-Since-Cursor: $future"
	gps_wait_messages s 3
	run -0 gps_messages s
	[[ ${lines[0]} =~ $GAP_RE ]]
	[ "${BASH_REMATCH[1]}" = 0 ]
	expect_messages s "${lines[0]}" '{"f":1}' '{"f":2}'
	# seq == head is not published either.
	gps_subscribe t /c39/future -H "X-Fetch-Since-Cursor: $(gen_of "$c2")-$(($(seq_of "$c2") + 1))"
	gps_wait_messages t 3
	run -0 gps_messages t
	[[ ${lines[0]} =~ $GAP_RE ]]
	[ "${BASH_REMATCH[1]}" = 0 ]
	[ "$c1" != "$c2" ]
}

@test "3.9: a malformed cursor is a 400 with a one-line reason, wherever it comes from" {
	local c bad req
	c=$(pub /c39/bad '{"b":1}')
	for bad in junk "${c^^}" "$(gen_of "$c")-0$(seq_of "$c")" "$(gen_of "$c")-" \
		"$(gen_of "$c")-18446744073709551616" 1795700000.5; do
		for req in "X-Fetch-Since-Cursor: $bad" "Last-Event-ID: $bad"; do
			printf 'GET /c39/bad HTTP/1.1\r\nHost: x\r\n%s\r\n\r\n' "$req" |
				http_send 127.0.0.1 "$GPS_PORT" 3
			http_check_error 400
			grep -qF ' is not a cursor' "$HTTP_OUT"
		done
	done
	# In the query: the value is %-decoded first; an empty X-Fetch-Since-Cursor is no cursor.
	for req in '/c39/bad?lastEventId=junk' '/c39/bad?x=1&lastEventId=%zz' \
		'/c39/bad?lastEventId=0000000000000000-00'; do
		printf 'GET %s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n' "$req" |
			http_send 127.0.0.1 "$GPS_PORT" 3
		http_check_error 400
	done
	printf 'GET /c39/bad HTTP/1.1\r\nHost: x\r\nX-Fetch-Since-Cursor:\r\n\r\n' |
		http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
	# Two different cursors in two headers of one name.
	printf 'GET /c39/bad HTTP/1.1\r\nHost: x\r\nLast-Event-ID: %s\r\nLast-Event-ID: %s\r\n\r\n' \
		"$c" "$(gen_of "$c")-1" | http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
	grep -qF 'conflicting Last-Event-ID' "$HTTP_OUT"
}

@test "3.9: the most exact start wins: cursor over X-Fetch-Since, Last-Event-ID over ?lastEventId=" {
	local -a c
	local x
	for x in 1 2 3 4; do
		c[x]=$(pub /c39/wins "{\"w\":$x}")
	done
	# X-Fetch-Since: 0 alone would replay every held message.
	gps_subscribe a /c39/wins -H 'X-Fetch-Since: 0' -H "X-Fetch-Since-Cursor: ${c[3]}"
	expect_messages a '{"w":4}'
	gps_subscribe b /c39/wins -H "X-Fetch-Since-Cursor: ${c[3]}" -H "Last-Event-ID: ${c[1]}"
	expect_messages b '{"w":4}'
	# The query is dropped from the topic (PROTOCOL 2.1) and resumes like the header.
	gps_subscribe q "/c39/wins?lastEventId=${c[1]}"
	expect_messages q '{"w":2}' '{"w":3}' '{"w":4}'
	gps_subscribe h "/c39/wins?lastEventId=${c[1]}" -H "Last-Event-ID: ${c[2]}"
	expect_messages h '{"w":3}' '{"w":4}'
	# An empty Last-Event-ID or ?lastEventId= means "none": live.
	gps_subscribe n "/c39/wins?lastEventId=" -H 'Last-Event-ID;'
	pub /c39/wins '{"w":5}' >/dev/null
	expect_messages n '{"w":5}'
}

@test "3.10: an SSE stream has the documented head, a retry/id block, then id/data per message" {
	local last gen c1 c2 x n after
	local -a head got want
	last=$(pub /c310/other '{"before":1}')
	gen=$(gen_of "$last")
	gps_subscribe e /c310 -H 'Accept: text/event-stream'

	mapfile -t head < <(gps_sub_head e)
	[ "${head[0]}" = $'HTTP/1.1 200 OK\r' ]
	mapfile -t got < <(printf '%s\n' "${head[@]:1}" |
		sed -E 's|^Server: GitPubSub/[^[:space:]]+\r$|Server: GitPubSub/<version>\r|' | sort)
	mapfile -t want < <(printf '%s\r\n' "Server: GitPubSub/<version>" \
		"Content-Type: text/event-stream" "Cache-Control: no-cache" \
		"X-Accel-Buffering: no" "Access-Control-Allow-Origin: *" \
		"Transfer-Encoding: chunked" | sort)
	echo "head: ${head[*]}"
	[ "${got[*]}" = "${want[*]}" ]

	# First the reconnection delay and the cursor of the last message published (head - 1).
	sse_wait e 1
	run -0 sse_events e
	[ "${lines[0]}" = "retry: 2000 | id: $last" ]

	c1=$(pub /c310/a '{"m":1}')
	pub /c310x '{"not":"ours"}' >/dev/null
	c2=$(pub /c310 '[2,"two"]')
	sse_wait e 2 '^id: '
	run -0 sse_events e
	run -0 grep -v '^: ' <<<"$output"
	[ "${lines[1]}" = "id: $c1 | data: {\"m\":1}" ]
	[ "${lines[2]}" = "id: $c2 | data: [2,\"two\"]" ]
	[ "${#lines[@]}" -eq 3 ]
	[ "$(gen_of "$c1")" = "$gen" ]

	# Keepalives are SSE comments with PROTOCOL 3.3's time, every period (300 ms here), and
	# the id of the last message looked at (c2), so a quiet browser's lastEventId keeps up.
	n=$(sse_events e | grep -c '^: stillalive ') || true # none yet: grep -c says 0 and fails
	sse_wait e $((n + 1)) '^: stillalive '
	run -0 sse_events e
	after=0
	for x in "${lines[@]}"; do
		[[ $x != :* ]] || [[ $x =~ ^:\ stillalive\ [0-9]+\.[0-9]{6}\ \|\ id:\ (.*)$ ]]
		[[ $x != :* ]] || ((!after)) || [ "${BASH_REMATCH[1]}" = "$c2" ]
		[[ $x != "id: $c2 |"* ]] || after=1
	done
	((after))
}

@test "3.10: everything pending leaves in one write: the retry/id block and a replay share a chunk" {
	local c1 c2 c3 c4 gen
	c1=$(pub /c310/batch '{"b":1}')
	c2=$(pub /c310/batch '{"b":2}')
	c3=$(pub /c310/batch '{"b":3}')
	c4=$(pub /c310/batch '{"b":4}')
	gen=$(gen_of "$c1")
	gps_subscribe e /c310/batch -H 'Accept: text/event-stream' -H "Last-Event-ID: $c1"
	sse_wait e 4
	run -0 sse_decode "$BATS_FILE_TMPDIR/sub-e.raw" chunks
	[ "${lines[0]}" = "retry: 2000\nid: $c1\n\nid: $c2\ndata: {\"b\":2}\n\nid: $c3\ndata: {\"b\":3}\n\nid: $c4\ndata: {\"b\":4}\n\n" ]
	[ "$(gen_of "$c4")" = "$gen" ]
}

@test "3.10: resuming from the first id block alone loses nothing published after it" {
	local id c1 c2
	pub /c310/first '{"before":0}' >/dev/null
	gps_subscribe e /c310/first -H 'Accept: text/event-stream'
	sse_wait e 1
	id=$(sse_events e | sed -n '1s/^retry: 2000 | id: //p')
	[[ $id =~ $CURSOR_RE ]]
	gps_unsubscribe e
	# Published while no browser was connected.
	c1=$(pub /c310/first '{"after":1}')
	c2=$(pub /c310/first/sub '{"after":2}')
	gps_subscribe e /c310/first -H 'Accept: text/event-stream' -H "Last-Event-ID: $id"
	sse_wait e 3
	run -0 sse_events e
	[ "${lines[0]}" = "retry: 2000 | id: $id" ]
	[ "${lines[1]}" = "id: $c1 | data: {\"after\":1}" ]
	[ "${lines[2]}" = "id: $c2 | data: {\"after\":2}" ]
	# ?lastEventId= (for a new EventSource, which cannot set the header) does the same.
	gps_subscribe q "/c310/first?lastEventId=$id" -H 'Accept: text/event-stream'
	sse_wait q 3
	run -0 sse_data q
	[ "$output" = $'{"after":1}\n{"after":2}' ]
}

@test "3.10: an HTTP/1.0 SSE subscriber gets the events close-delimited, without chunks" {
	local c
	gps_subscribe e /c310/h10 --http1.0 -H 'Accept: text/event-stream'
	run -0 gps_sub_head e
	[[ $output == *$'Content-Type: text/event-stream\r'* ]]
	[[ $output != *Transfer-Encoding* ]]
	c=$(pub /c310/h10 '{"old":"client"}')
	sse_wait e 1 '^id: '
	run -0 gps_sub_body e
	[[ $output == "retry: 2000"$'\n'"id: "* ]]
	run -0 sse_events e
	[[ ${lines[0]} =~ ^retry:\ 2000\ \|\ id:\ [0-9a-f]{16}-[0-9]+$ ]]
	run -0 grep -v '^: ' <<<"$output"
	[ "${lines[1]}" = "id: $c | data: {\"old\":\"client\"}" ]
}

@test "3.11: curl's default Accept gets the chunked stream of PROTOCOL 3, byte for byte" {
	local json='{"curl":"default"}' x
	gps_subscribe s /c311/curl
	gps_subscribe j /c311/curl -H 'Accept: application/json, */*;q=0.5'
	pub /c311/curl "$json" >/dev/null
	gps_wait_messages s 1
	gps_wait_messages j 1
	run -0 gps_sub_head s
	[[ $output == *$'Content-Type: application/x-gitpubsub\r'* ]]
	[[ $output == *$'Transfer-Encoding: chunked\r'* ]]
	for x in s j; do
		run -0 gps_messages "$x"
		[ "$output" = "$json" ]
		run -0 gps_sub_body "$x"
		[[ $output == *"$(printf '%x\r\n%s\r\n\r\n' $((${#json} + 2)) "$json")"* ]]
	done
}

@test "3.11: text/html gets the live page (Content-Length of page.html), then the connection serves its EventSource" {
	local page=$GPS_REPO/frontend/page.html size n
	size=$(wc -c <"$page")
	printf '%s\r\n' 'GET /c311/page HTTP/1.1' 'Host: x' \
		'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' '' \
		'GET /c311/page HTTP/1.1' 'Host: x' 'Accept: text/event-stream' '' |
		http_open page 127.0.0.1 "$GPS_PORT" 10
	# The stream's first event ends the exchange; the connection is still open then.
	http_wait_conn page 'retry: 2000'
	http_conn_alive page
	http_close page
	http_adopt "$(http_conn_out page)" 0 0
	n=$(http_split "$HTTP_OUT")
	[ "$n" -eq 2 ]
	[ "$(http_status "$HTTP_OUT.1")" = 200 ]
	[ "$(gps_header "$HTTP_OUT.1" Content-Type)" = 'text/html; charset=utf-8' ]
	[ "$(gps_header "$HTTP_OUT.1" Content-Length)" -eq "$size" ]
	[ "$(gps_header "$HTTP_OUT.1" Cache-Control)" = no-cache ]
	[ "$(gps_header "$HTTP_OUT.1" Content-Security-Policy)" = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:" ]
	[ "$(gps_header "$HTTP_OUT.1" Access-Control-Allow-Origin)" = '*' ]
	gps_header "$HTTP_OUT.1" Server
	run -1 gps_header "$HTTP_OUT.1" Connection
	cmp <(http_body "$HTTP_OUT.1") "$page"
	# The second request on the same connection is the page's EventSource.
	[ "$(gps_header "$HTTP_OUT.2" Content-Type)" = text/event-stream ]

	# HTTP/1.0 without keep-alive: the page, then the connection is closed.
	printf 'GET /c311/page HTTP/1.0\r\nAccept: text/html\r\n\r\n' | http_send 127.0.0.1 "$GPS_PORT" 3
	[ "$HTTP_CLOSED" = 1 ]
	[ "$(gps_header "$HTTP_OUT" Connection)" = close ]
	cmp <(http_body "$HTTP_OUT") "$page"
	# A topic its EventSource could not subscribe to is refused now.
	printf 'GET /c311/%%zz HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n' |
		http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
}

@test "3.11: Accept negotiation: text/event-stream wins a tie with text/html; */* alone is no html" {
	local accept want
	while IFS='|' read -r accept want; do
		run -0 answer_head "$GPS_PORT" /c311/neg "Accept: $accept"
		echo "Accept: $accept -> $output"
		[[ $output == *$'\nContent-Type: '"$want"$'\r'* ]]
	done <<-'EOF'
		*/*|application/x-gitpubsub
		text/*|application/x-gitpubsub
		text/html|text/html; charset=utf-8
		text/html, text/event-stream|text/event-stream
		text/event-stream;q=0.5, text/html;q=0.5|text/event-stream
		text/html;q=0.9, text/event-stream;q=0.8|text/html; charset=utf-8
		text/html;q=0.8, text/event-stream;q=0.9|text/event-stream
		text/html;q=0|application/x-gitpubsub
		text/event-stream;q=0, text/html|text/html; charset=utf-8
		text/event-stream;q=0|application/x-gitpubsub
	EOF
}

@test "3.12: Access-Control-Allow-Origin: * by default on streams and the page; never on publish, HEAD or errors" {
	local f
	for f in 'Accept: text/event-stream' 'Accept: */*' 'Accept: text/html'; do
		run -0 answer_head "$GPS_PORT" /c312 "$f"
		[[ $output == *$'\nAccess-Control-Allow-Origin: *\r'* ]]
	done
	run -0 gps_publish /c312 '{"cors":1}' -H 'Origin: https://example.org'
	[ "$output" = 200 ]
	run -1 gps_header "$GPS_LAST_HEADERS" Access-Control-Allow-Origin
	run -0 gps_head /c312 -H 'Accept: text/html'
	[[ $output != *Access-Control* ]]
	[[ $output == *$'Content-Length: 0\r'* ]]
	printf 'GET /c312 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: x\r\n\r\n' |
		http_send 127.0.0.1 "$GPS_PORT" 3
	http_check_error 400
	run -1 grep -q Access-Control "$HTTP_OUT"
}

@test "3.12: [Stream] allowOrigin sets the header; an empty value sends none; a bad one stops the broker" {
	local port cfg f
	http_instance_start origin 127.0.0.1:PORT -- "[Stream]" "allowOrigin: https://example.org"
	port=$(http_instance_port origin)
	for f in 'Accept: text/event-stream' 'Accept: */*' 'Accept: text/html'; do
		run -0 answer_head "$port" /c312 "$f"
		[[ $output == *$'\nAccess-Control-Allow-Origin: https://example.org\r'* ]]
	done
	http_instance_start none 127.0.0.1:PORT -- "[Stream]" "allowOrigin:"
	port=$(http_instance_port none)
	for f in 'Accept: text/event-stream' 'Accept: */*' 'Accept: text/html'; do
		run -0 answer_head "$port" /c312 "$f"
		[[ $output == *$'HTTP/1.1 200 OK\r'* ]]
		[[ $output != *Access-Control* ]]
	done
	# The broker shows it in the effective configuration ...
	run -0 "$GPS_BUILD/gitpubsub-broker" --config "$BATS_FILE_TMPDIR/inst-origin/gitpubsub.cfg" \
		--check-config
	[[ $output == *$'\nallowOrigin: https://example.org\n'* ]]
	# ... and refuses a value that cannot go in a header.
	cfg=$BATS_TEST_TMPDIR/bad.cfg
	printf '[Stream]\nallowOrigin: https://ex\001ample.org\n' >"$cfg"
	http_broker_try "$cfg"
	[ "$BROKER_RC" = 1 ]
	grep -q "allowOrigin" "$BROKER_ERR"
}

@test "3.9 + 3.10: across a --recreate, a live SSE stream gets the new generation's id; an old cursor gets a gap notice with missed 0" {
	local c_old c_new gen2 ready pid broker
	c_old=$(pub /c39/gen '{"gen":"old"}')
	gps_subscribe e /c39/gen -H 'Accept: text/event-stream'
	sse_wait e 1

	# Replace the ring under the running frontends, as an operator would: stop the broker (the
	# runner paused, so it does not restart it at once), run one with --recreate, then let the
	# runner start the broker again on the new ring.
	broker=$(gps_broker_pid)
	kill -STOP "$GPS_RUN_PID"
	echo "$GPS_RUN_PID" >"$BATS_FILE_TMPDIR/runner.stopped"
	kill -TERM "$broker"
	_gps_sleep_until 5 _gps_pid_dead "$broker"
	# --recreate replaces a ring of another size only: ask for one.
	sed -i 's/^ringSize: .*/ringSize: 128K/' "$GPS_CFG"
	ready=$BATS_TEST_TMPDIR/recreate.ready
	: >"$ready"
	"$GPS_BUILD/gitpubsub-broker" --config "$GPS_CFG" --ring "$GPS_RING" \
		--socket "$GPS_RUN_DIR/recreate.sock" --recreate --ready-fd 3 3>"$ready" \
		</dev/null >"$BATS_TEST_TMPDIR/recreate.log" 2>&1 &
	pid=$!
	_gps_sleep_until 10 test -s "$ready"
	kill -TERM "$pid"
	gps_wait_pids 5 "$pid"
	kill -CONT "$GPS_RUN_PID"
	rm -f "$BATS_FILE_TMPDIR/runner.stopped"
	_gps_sleep_until 10 _gps_broker_back "$broker"

	c_new=$(pub /c39/gen '{"gen":"new"}')
	gen2=$(gen_of "$c_new")
	[ "$gen2" != "$(gen_of "$c_old")" ]
	[ "$(seq_of "$c_new")" = 1 ]
	# The live stream followed the new ring: an id-only block for its start, then the message.
	sse_wait e 1 "^id: $c_new "
	run -0 sse_events e
	run -0 grep -v '^: ' <<<"$output"
	[ "${lines[0]}" = "retry: 2000 | id: $c_old" ]
	[ "${lines[1]}" = "id: $gen2-0" ]
	[ "${lines[2]}" = "id: $c_new | data: {\"gen\":\"new\"}" ]

	# A cursor of the old generation: one gap notice (missed 0), then everything held.
	gps_subscribe s /c39/gen -H "X-Fetch-Since-Cursor: $c_old"
	gps_wait_messages s 2
	run -0 gps_messages s
	[[ ${lines[0]} =~ $GAP_RE ]]
	[ "${BASH_REMATCH[1]}" = 0 ]
	expect_messages s "${lines[0]}" '{"gen":"new"}'
	gps_subscribe f /c39/gen -H 'Accept: text/event-stream' -H "Last-Event-ID: $c_old"
	sse_wait f 3
	run -0 sse_events f
	[ "${lines[0]}" = "retry: 2000 | id: $gen2-0" ]
	[[ ${lines[1]} == 'event: gap | data: {"gap": {"missed": 0, "resume": '* ]]
	[ "${lines[2]}" = "id: $c_new | data: {\"gen\":\"new\"}" ]
}
