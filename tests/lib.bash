# shellcheck shell=bash
#
# Shared helpers for the end-to-end bats tests (STYLE 11). Load with `load lib` from a .bats file.
#
# One service per .bats file: setup_file calls gps_start, teardown_file calls gps_stop. State lives
# in $BATS_FILE_TMPDIR, so helpers also work from inside `run` and across the tests of a file.
# Every wait is bounded. Only loopback addresses are used.
#
# Environment:
#   GPS_BUILD  folder holding gitpubsub-run, gitpubsub-broker, gitpubsub-frontend, gpsctl
#              (default: <repo>/build)
#   GPS_MODE   "accept" (default), "inetd", "fork" or "mux": how gitpubsub-run starts the
#              frontends
#   GPS_WORKERS  with GPS_MODE=mux: how many workers (default: one per CPU)
#
# Beware (bats 1.8.2): `run -N` calls bats helpers that assign a global variable named i, so a
# test that loops over i and calls `run` in the loop never ends. Name loop variables otherwise.
#
# Exported by gps_start: GPS_PORT, GPS_URL, GPS_RUN_DIR, GPS_RING, GPS_CFG, GPS_RUN_PID, GPS_LOG,
# GPS_LAST_BODY, GPS_LAST_HEADERS.

GPS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${GPS_BUILD:=$GPS_REPO/build}"
: "${GPS_MODE:=accept}"
export GPS_REPO GPS_BUILD GPS_MODE

# Fixed byte semantics for awk, grep, sed and ${#var}: chunk sizes count bytes, not characters.
export LC_ALL=C

# How long gps_start waits for the runner's ready file: the broker creates and stamps the ring.
GPS_START_TIMEOUT=10
# How long gps_stop waits after SIGTERM before it uses SIGKILL.
GPS_STOP_TIMEOUT=5
# How long gps_subscribe waits for the response head.
GPS_SUBSCRIBE_TIMEOUT=5
# Default wait of gps_wait_messages.
GPS_WAIT_TIMEOUT=5
# Upper bound of one curl request made by gps_publish / gps_head.
GPS_CURL_MAX_TIME=15

# _gps_fail MESSAGE... - print a message to stderr and return 1 (for `|| return 1` chains).
_gps_fail()
{
	printf 'lib.bash: %s\n' "$*" >&2
	return 1
}

# _gps_sleep_until SECONDS CMD... - run CMD every 50 ms until it succeeds (return 0) or SECONDS
# pass (return 1). The bound is a loop count, so it holds even if CMD is slow to fail.
_gps_sleep_until()
{
	local secs=$1 i n
	shift
	n=$(awk -v s="$secs" 'BEGIN { printf "%d", s * 20 + 1 }')
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# free_port - print a TCP port on 127.0.0.1 that nothing listens on. Ports are drawn at random
# below the kernel's ephemeral range (so no outgoing connection holds them) and checked with ss.
free_port()
{
	local lo hi port i
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
	if ((lo > 20000)); then
		hi=$((lo - 1))
		lo=10000
	else
		lo=61000
		hi=65000
	fi
	for ((i = 0; i < 100; i++)); do
		port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
		if [[ -z $(ss -Htan "sport = :$port" 2>/dev/null) ]]; then
			echo "$port"
			return 0
		fi
	done
	_gps_fail "free_port: no free port found"
}

# gps_config [CONFIG_LINES...] - write $BATS_FILE_TMPDIR/gitpubsub.cfg (path exported as GPS_CFG)
# with fast test defaults, then the given lines. A given "key: value" replaces the default of the
# same key in the same section (names compared case-insensitively), so e.g.
#   gps_config "[Stream]" "keepalive: 2s"
# yields one keepalive line. Uses GPS_PORT if set. Prints nothing.
gps_config()
{
	local -a defaults=(
		"[Server]" "IP: 127.0.0.1" "port: ${GPS_PORT:-2069}"
		"[Limits]" "headerTimeout: 1s" "bodyTimeout: 2s"
		"[Stream]" "keepalive: 1s" "sendTimeout: 2s"
		"[History]" "ringSize: 4M"
	)
	local -A given=()
	local line section="" key
	GPS_CFG=$BATS_FILE_TMPDIR/gitpubsub.cfg
	export GPS_CFG

	for line in "$@"; do
		if [[ $line =~ ^[[:space:]]*\[([^]]*)\] ]]; then
			section=${BASH_REMATCH[1],,}
		elif [[ $line =~ ^[[:space:]]*([A-Za-z0-9_.-]+)[[:space:]]*[:=] ]]; then
			key=${BASH_REMATCH[1],,}
			given["$section.$key"]=1
		fi
	done
	{
		echo "# written by tests/lib.bash gps_config"
		section=""
		for line in "${defaults[@]}"; do
			if [[ $line =~ ^\[([^]]*)\]$ ]]; then
				section=${BASH_REMATCH[1],,}
				echo "$line"
			elif [[ $line =~ ^([A-Za-z]+): ]]; then
				key=${BASH_REMATCH[1],,}
				[[ -n ${given["$section.$key"]:-} ]] || echo "$line"
			fi
		done
		for line in "$@"; do
			echo "$line"
		done
	} >"$GPS_CFG"
}

# gps_start [CONFIG_LINES...] - start the whole service for this .bats file (call from setup_file).
# Writes the config (gps_config), picks a free port and a unique ring name, starts gitpubsub-run
# in the background in its own session (--inetd when GPS_MODE=inetd), and waits up to
# GPS_START_TIMEOUT seconds for $GPS_RUN_DIR/ready. Exports GPS_PORT, GPS_URL, GPS_RUN_DIR,
# GPS_RING, GPS_CFG, GPS_RUN_PID, GPS_LOG (the runner's stdout+stderr). On failure shows the
# runner's log, stops what was started and returns 1.
gps_start()
{
	local -a mode_args=()
	local runner=$GPS_BUILD/gitpubsub-run

	[[ -x $runner ]] || _gps_fail "gps_start: $runner not found (GPS_BUILD=$GPS_BUILD)" || return 1
	GPS_PORT=$(free_port) || return 1
	GPS_URL=http://127.0.0.1:$GPS_PORT
	GPS_RING=/gps-test-$$-$RANDOM$RANDOM
	# A short runtime folder: it holds a unix socket, whose path is limited to 107 bytes.
	GPS_RUN_DIR=$(mktemp -d /tmp/gps-rt.XXXXXX) || return 1
	GPS_LOG=$BATS_FILE_TMPDIR/gitpubsub-run.log
	GPS_LAST_BODY=$BATS_FILE_TMPDIR/last-body
	GPS_LAST_HEADERS=$BATS_FILE_TMPDIR/last-headers
	export GPS_PORT GPS_URL GPS_RING GPS_RUN_DIR GPS_LOG GPS_LAST_BODY GPS_LAST_HEADERS
	gps_config "$@"

	[[ $GPS_MODE == inetd ]] && mode_args=(--inetd)
	[[ $GPS_MODE == fork ]] && mode_args=(--fork)
	[[ $GPS_MODE == mux ]] && mode_args=(--mux)
	[[ $GPS_MODE == mux && -n ${GPS_WORKERS:-} ]] && mode_args+=(--workers "$GPS_WORKERS")
	# setsid: the runner leads its own process group, so gps_stop can reap any stray child.
	setsid "$runner" --listen "127.0.0.1:$GPS_PORT" --config "$GPS_CFG" \
		--runtime-dir "$GPS_RUN_DIR" --ring "$GPS_RING" "${mode_args[@]}" \
		</dev/null >"$GPS_LOG" 2>&1 3>&- &
	GPS_RUN_PID=$!
	export GPS_RUN_PID
	echo "$GPS_RUN_PID" >"$BATS_FILE_TMPDIR/runner.pid"
	echo "$GPS_RUN_DIR" >"$BATS_FILE_TMPDIR/runner.dir"
	echo "$GPS_RING" >"$BATS_FILE_TMPDIR/runner.ring"

	if ! _gps_sleep_until "$GPS_START_TIMEOUT" _gps_ready_or_dead; then
		:
	fi
	if [[ ! -e $GPS_RUN_DIR/ready ]] || ! kill -0 "$GPS_RUN_PID" 2>/dev/null; then
		{
			echo "gps_start: gitpubsub-run did not become ready within ${GPS_START_TIMEOUT}s"
			echo "--- config $GPS_CFG:"
			cat "$GPS_CFG"
			echo "--- log $GPS_LOG:"
			cat "$GPS_LOG"
			echo "---"
		} >&2
		gps_stop
		return 1
	fi
}

# _gps_ready_or_dead - true once the runner is ready, or once it has died (nothing to wait for).
_gps_ready_or_dead()
{
	[[ -e $GPS_RUN_DIR/ready ]] || ! kill -0 "$GPS_RUN_PID" 2>/dev/null
}

# _gps_group_alive PGID - whether any process of the group is left.
_gps_group_alive()
{
	kill -0 -- "-$1" 2>/dev/null
}

# _gps_pid_dead PID - whether PID has exited (or is a zombie no one has reaped yet).
_gps_pid_dead()
{
	local state
	kill -0 "$1" 2>/dev/null || return 0
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ $state == Z ]]
}

# gps_unsubscribe NAME - stop subscriber NAME (started by gps_subscribe): SIGTERM, bounded wait,
# SIGKILL. Its received bytes stay in $BATS_FILE_TMPDIR/sub-NAME.raw.
gps_unsubscribe()
{
	local pidfile=$BATS_FILE_TMPDIR/sub-$1.pid pid
	[[ -f $pidfile ]] || return 0
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	# A subscriber a test has stopped (SIGSTOP) only acts on SIGTERM once continued.
	kill -CONT "$pid" 2>/dev/null || true
	_gps_sleep_until 2 _gps_pid_dead "$pid" || kill -KILL "$pid" 2>/dev/null || true
	# Reap it when it is our child, so no zombie is left; the status does not matter.
	wait "$pid" 2>/dev/null || true
	rm -f "$pidfile"
	return 0
}

# gps_unsubscribe_all - stop every subscriber started by gps_subscribe / gps_subscribe_raw in this
# file (e.g. from a per-test teardown), leaving the service running.
gps_unsubscribe_all()
{
	local f
	for f in "$BATS_FILE_TMPDIR"/sub-*.pid; do
		[[ -f $f ]] || continue
		f=${f##*/sub-}
		gps_unsubscribe "${f%.pid}"
	done
}

# gps_stop - stop everything gps_start and gps_subscribe started in this file (call from
# teardown_file): every subscriber, then the runner (SIGTERM, GPS_STOP_TIMEOUT seconds, then
# SIGKILL to its whole process group), then remove /dev/shm/<ring>, /dev/shm/<ring>.stats and the
# runtime folder. Safe to call twice or after a failed gps_start.
gps_stop()
{
	local pid dir ring
	gps_unsubscribe_all
	if [[ -f $BATS_FILE_TMPDIR/runner.pid ]]; then
		pid=$(<"$BATS_FILE_TMPDIR/runner.pid")
		kill -TERM "$pid" 2>/dev/null || true
		if _gps_sleep_until "$GPS_STOP_TIMEOUT" _gps_pid_dead "$pid"; then
			# Reap it if it is our child: a zombie leader would keep its group "alive".
			wait "$pid" 2>/dev/null || true
		else
			echo "gps_stop: runner $pid ignored SIGTERM for ${GPS_STOP_TIMEOUT}s" >&2
		fi
		# Frontends still serving a connection are the runner's descendants, in its group.
		if _gps_group_alive "$pid"; then
			kill -KILL -- "-$pid" 2>/dev/null || true
			_gps_sleep_until 2 _gps_group_dead "$pid" || true
		fi
		rm -f "$BATS_FILE_TMPDIR/runner.pid"
	fi
	if [[ -f $BATS_FILE_TMPDIR/runner.ring ]]; then
		ring=$(<"$BATS_FILE_TMPDIR/runner.ring")
		rm -f "/dev/shm/${ring#/}" "/dev/shm/${ring#/}.stats"
		rm -f "$BATS_FILE_TMPDIR/runner.ring"
	fi
	if [[ -f $BATS_FILE_TMPDIR/runner.dir ]]; then
		dir=$(<"$BATS_FILE_TMPDIR/runner.dir")
		if [[ $dir == /tmp/gps-rt.* ]]; then
			rm -rf "$dir"
		fi
		rm -f "$BATS_FILE_TMPDIR/runner.dir"
	fi
	return 0
}

# _gps_group_dead PGID - the negation of _gps_group_alive, for _gps_sleep_until.
_gps_group_dead()
{
	! _gps_group_alive "$1"
}

# gps_wait_pids TIMEOUT PID... - wait (bounded) until every PID (background jobs of the caller)
# has exited; returns 1, killing the ones left, if they outlive TIMEOUT seconds. Never use a bare
# `wait` in a test: it also waits for the subscribers, which never end.
gps_wait_pids()
{
	local t=$1 pid rc=0
	shift
	for pid in "$@"; do
		if ! _gps_sleep_until "$t" _gps_pid_dead "$pid"; then
			echo "gps_wait_pids: $pid still running after ${t}s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			rc=1
		fi
		wait "$pid" 2>/dev/null || true
	done
	return "$rc"
}

# gps_url TOPIC - print the URL of TOPIC ("/x/y" or "x/y") on the running service.
gps_url()
{
	local topic=$1
	[[ $topic == /* ]] || topic=/$topic
	printf '%s%s\n' "$GPS_URL" "$topic"
}

# gps_publish TOPIC JSON [CURL_ARGS...] - POST JSON (bytes as given, sent with Content-Length) to
# TOPIC. Prints the HTTP status code ("000" when no response came); the response body is saved
# in the file $GPS_LAST_BODY and the response head in the file $GPS_LAST_HEADERS. CURL_ARGS are
# added to the request, e.g. -X PUT or --interface 127.0.0.2. Returns curl's exit status.
gps_publish()
{
	local url json=$2
	url=$(gps_url "$1")
	shift 2
	: "${GPS_LAST_BODY:=$BATS_FILE_TMPDIR/last-body}" "${GPS_LAST_HEADERS:=$BATS_FILE_TMPDIR/last-headers}"
	rm -f "$GPS_LAST_BODY" "$GPS_LAST_HEADERS"
	printf '%s' "$json" | curl -sS --max-time "$GPS_CURL_MAX_TIME" -o "$GPS_LAST_BODY" \
		-D "$GPS_LAST_HEADERS" -w '%{http_code}\n' -H 'Content-Type: application/json' \
		--data-binary @- "$@" "$url"
}

# gps_publish_batch TOPIC [CURL_ARGS...] - publish each line of stdin (one JSON text a line) to
# TOPIC, in order, over one keep-alive connection (one curl with --next), each waiting for its
# answer before the next is sent. Prints one line per message: "<status> <X-Timestamp>" (status
# 000 if no answer came, X-Timestamp empty if absent). CURL_ARGS apply to every request.
gps_publish_batch()
{
	local url cfg line esc n=0
	url=$(gps_url "$1")
	shift
	cfg=$BATS_FILE_TMPDIR/batch.$$.$RANDOM.curlrc
	while IFS= read -r line || [[ -n $line ]]; do
		esc=${line//\\/\\\\}
		esc=${esc//\"/\\\"}
		((n++ > 0)) && echo "next"
		printf 'url = "%s"\ndata-binary = "%s"\noutput = "/dev/null"\n' "$url" "$esc"
		printf 'header = "Content-Type: application/json"\nmax-time = %s\n' "$GPS_CURL_MAX_TIME"
		printf 'write-out = "%%{http_code} %%header{x-timestamp}\\n"\n'
	done >"$cfg"
	((n > 0)) && curl -s -K "$cfg" "$@"
	rm -f "$cfg"
}

# gps_all_200 FILE [COUNT] - check that every line of a gps_publish_batch output FILE has status
# 200 (and that there are COUNT lines); print the offending lines and return 1 otherwise.
gps_all_200()
{
	local bad n
	bad=$(awk '$1 != 200' "$1")
	n=$(wc -l <"$1")
	if [[ -n $bad ]]; then
		printf 'gps_all_200: not 200:\n%s\n' "$bad" | head -n 20 >&2
		return 1
	fi
	[[ -z ${2:-} || $n -eq $2 ]] || _gps_fail "gps_all_200: $n answers, expected $2"
}

# gps_header FILE NAME - print the value of the first header NAME (case-insensitive) in the
# response head saved in FILE (e.g. $GPS_LAST_HEADERS), without CR; returns 1 if absent.
gps_header()
{
	awk -v name="$2" '
		BEGIN { name = tolower(name) }
		{ sub(/\r$/, "") }
		NR > 1 && $0 == "" { exit }
		NR > 1 && tolower(substr($0, 1, index($0, ":") - 1)) == name {
			v = substr($0, index($0, ":") + 1)
			sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v)
			print v; found = 1; exit
		}
		END { exit !found }' "$1"
}

# gps_status FILE - print the status code of the (first) response saved in FILE.
gps_status()
{
	head -n 1 "$1" | awk '{ print $2 }'
}

# gps_body FILE - print the body of the single response saved in FILE (the bytes after the first
# blank line of the head).
gps_body()
{
	local n
	n=$(awk '{ n += length($0) + 1 } $0 == "\r" || $0 == "" { print n; exit }' "$1")
	[[ -n $n ]] || return 1
	tail -c +$((n + 1)) "$1"
}

# gps_check_error FILE STATUS - check that FILE holds one complete error response as PROTOCOL 7.1
# requires: status line "HTTP/1.1 STATUS ...", Server, Content-Type: text/plain, Content-Length
# equal to the body's size, Connection: close, and a one-line body ending in CRLF. Prints what is
# wrong and returns 1 otherwise.
gps_check_error()
{
	local f=$1 want=$2 line body len ct re_status re_body
	re_status="^HTTP/1\.1 $want [^"$'\r\n'"]*"$'\r'"\$"
	re_body="^[^"$'\r\n'"]+"$'\r\n'"\$"
	line=$(head -n 1 "$f")
	[[ $line =~ $re_status ]] ||
		_gps_fail "expected status line 'HTTP/1.1 $want ...', got '$line'" || return 1
	gps_header "$f" Server >/dev/null || _gps_fail "no Server header" || return 1
	ct=$(gps_header "$f" Content-Type) || _gps_fail "no Content-Type header" || return 1
	[[ $ct == text/plain || $ct == "text/plain;"* ]] ||
		_gps_fail "Content-Type is '$ct', not text/plain" || return 1
	[[ $(gps_header "$f" Connection) == [Cc]lose ]] ||
		_gps_fail "no 'Connection: close'" || return 1
	len=$(gps_header "$f" Content-Length) || _gps_fail "no Content-Length" || return 1
	body=$(
		gps_body "$f"
		echo x
	)
	body=${body%x}
	((${#body} == len)) || _gps_fail "Content-Length $len but body of ${#body} bytes" || return 1
	[[ $body =~ $re_body ]] ||
		_gps_fail "body is not one non-empty line ending in CRLF: '$body'" || return 1
}

# gps_head [TOPIC] [CURL_ARGS...] - send a HEAD (statistics, PROTOCOL 6) to TOPIC (default "/")
# and print the response head, CRLF kept. Returns curl's exit status.
gps_head()
{
	local url
	url=$(gps_url "${1:-/}")
	shift || true
	curl -sS --max-time "$GPS_CURL_MAX_TIME" -I "$@" "$url"
}

# gps_stat NAME - print the value of statistics header NAME (e.g. X-Subscribers) from a trusted
# HEAD; returns 1 if the header is missing.
gps_stat()
{
	local f=$BATS_FILE_TMPDIR/stat-head.$$.$RANDOM rc=0
	gps_head / >"$f" || rc=1
	((rc == 0)) && { gps_header "$f" "$1" || rc=1; }
	rm -f "$f"
	return "$rc"
}

# gps_subscribe NAME TOPIC [CURL_ARGS...] - start a subscriber: `curl -sN --raw -i` on TOPIC in
# the background, its head and raw (still chunked) body streamed to $BATS_FILE_TMPDIR/sub-NAME.raw
# (the head also to sub-NAME.raw.head) and its pid kept in sub-NAME.pid. Returns once the whole response head has arrived (bounded by
# GPS_SUBSCRIBE_TIMEOUT), so the subscription is live; returns 1 (showing what arrived) if not.
# CURL_ARGS are added, e.g. -H 'X-Fetch-Since: 0' or --http1.0. Safe inside `run`.
gps_subscribe()
{
	local name=$1 url raw pid
	url=$(gps_url "$2")
	shift 2
	raw=$BATS_FILE_TMPDIR/sub-$name.raw
	gps_unsubscribe "$name"
	: >"$raw"
	: >"$raw.head"
	# -i puts the head into the raw file too, but curl writes it there only along with the
	# first body bytes; the -D copy is written at once, so it tells when the head has come.
	curl -sN --raw -i -D "$raw.head" -o "$raw" "$@" "$url" </dev/null >/dev/null \
		2>"$raw.err" 3>&- &
	pid=$!
	echo "$pid" >"$BATS_FILE_TMPDIR/sub-$name.pid"
	if ! _gps_sleep_until "$GPS_SUBSCRIBE_TIMEOUT" _gps_head_done "$raw.head" "$pid"; then
		:
	fi
	if ! _gps_head_complete "$raw.head"; then
		{
			echo "gps_subscribe $name: no complete response head from $url"
			echo "--- received:"
			cat -v "$raw.head" "$raw"
			echo "--- curl stderr:"
			cat "$raw.err"
		} >&2
		return 1
	fi
}

# _gps_head_complete FILE - whether FILE holds a complete response head (a line that is only CR).
_gps_head_complete()
{
	grep -q $'^\r\\?$' "$1" 2>/dev/null
}

# _gps_head_done FILE PID - the head is complete, or the client is gone (stop waiting).
_gps_head_done()
{
	_gps_head_complete "$1" || _gps_pid_dead "$2"
}

# gps_subscribe_raw NAME TOPIC [RCVBUF] [HEADER_LINES...] - start a subscriber that is a plain
# socat with a small socket receive buffer (RCVBUF bytes, default 4096), so that a test can make it
# stop reading (kill -STOP "$(gps_sub_pid NAME)") without megabytes piling up in the client's
# kernel buffers. It sends "GET TOPIC HTTP/1.1", Host and the given header lines (without CRLF),
# never half-closes, and stores what it receives in sub-NAME.raw like gps_subscribe (so
# gps_messages works on it). Returns once the response head has arrived.
gps_subscribe_raw()
{
	local name=$1 topic=$2 rcvbuf=${3:-4096} raw script req line pid
	shift 2
	shift || true
	[[ $topic == /* ]] || topic=/$topic
	raw=$BATS_FILE_TMPDIR/sub-$name.raw
	script=$BATS_FILE_TMPDIR/sub-$name.sh
	req=$BATS_FILE_TMPDIR/sub-$name.req
	gps_unsubscribe "$name"
	: >"$raw"
	rm -f "$raw.head"
	{
		printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\n' "$topic" "$GPS_PORT"
		for line in "$@"; do
			printf '%s\r\n' "$line"
		done
		printf '\r\n'
	} >"$req"
	# No exec before the second cat: the shell keeps socat's pipe open, so socat never sees
	# EOF from this side and never shuts the connection down before the server does.
	printf '#!/bin/bash\ncat %q\ncat >%q\n' "$req" "$raw" >"$script"
	chmod +x "$script"
	socat -t 1 "TCP4:127.0.0.1:$GPS_PORT,rcvbuf=$rcvbuf,shut-none" "EXEC:$script" \
		</dev/null >/dev/null 2>"$raw.err" 3>&- &
	pid=$!
	echo "$pid" >"$BATS_FILE_TMPDIR/sub-$name.pid"
	_gps_sleep_until "$GPS_SUBSCRIBE_TIMEOUT" _gps_head_done "$raw" "$pid" || true
	if ! _gps_head_complete "$raw"; then
		{
			echo "gps_subscribe_raw $name: no complete response head for $topic"
			cat -v "$raw"
			cat "$raw.err"
		} >&2
		return 1
	fi
}

# gps_sub_pid NAME - print the pid of subscriber NAME's client process (curl or socat).
gps_sub_pid()
{
	cat "$BATS_FILE_TMPDIR/sub-$1.pid"
}

# gps_sub_port NAME - print the local TCP port of subscriber NAME's connection (found with ss by
# the client's pid); returns 1 if it has none.
gps_sub_port()
{
	local pid port
	pid=$(gps_sub_pid "$1") || return 1
	port=$(ss -Htnp state established "( dport = :$GPS_PORT )" 2>/dev/null |
		awk -v pid="pid=$pid," 'index($0, pid) { n = split($3, a, ":"); print a[n]; exit }')
	[[ -n $port ]] || return 1
	echo "$port"
}

# gps_server_sendq CLIENT_PORT - print the bytes queued but not yet acknowledged (Send-Q) in the
# server's socket of the connection from 127.0.0.1:CLIENT_PORT; empty if it has no such socket.
gps_server_sendq()
{
	ss -Htn "( sport = :$GPS_PORT and dport = :$1 )" 2>/dev/null | awk '{ print $3; exit }'
}

# gps_sub_raw NAME - print the subscriber's raw bytes (head and body) received so far.
gps_sub_raw()
{
	cat "$BATS_FILE_TMPDIR/sub-$1.raw"
}

# gps_sub_head NAME - print the subscriber's response head (status line and header lines, CRLF
# kept, without the blank line).
gps_sub_head()
{
	local raw=$BATS_FILE_TMPDIR/sub-$1.raw
	[[ -s $raw.head ]] && raw=$raw.head
	awk '$0 == "\r" || $0 == "" { exit } { print }' "$raw"
}

# gps_sub_body NAME - print the raw body bytes (chunk framing kept) received so far.
gps_sub_body()
{
	local raw=$BATS_FILE_TMPDIR/sub-$1.raw n
	n=$(awk '{ n += length($0) + 1 } $0 == "\r" || $0 == "" { print n; exit }' "$raw")
	[[ -n $n ]] || return 0
	tail -c +$((n + 1)) "$raw"
}

# gps_sub_alive NAME - whether subscriber NAME's curl is still running (the server has not closed).
gps_sub_alive()
{
	local pidfile=$BATS_FILE_TMPDIR/sub-$1.pid
	[[ -f $pidfile ]] && ! _gps_pid_dead "$(<"$pidfile")"
}

# gps_messages NAME [all] - print the JSON texts received so far by subscriber NAME, one per line,
# in arrival order. The body is decoded strictly: chunked (`<lowercase hex of len+2>\r\n<json>\r\n
# \r\n`, PROTOCOL 3.2) when the head says Transfer-Encoding: chunked, else bare `<json>\r\n` lines
# (PROTOCOL 3.6). Keepalives ({"stillalive": ...}, PROTOCOL 3.3) are left out unless the second
# argument is "all". An incomplete last message (still arriving) is ignored. Any framing error
# prints a diagnostic with the byte offset to stderr and returns 1.
gps_messages()
{
	local raw=$BATS_FILE_TMPDIR/sub-$1.raw snap complete=0 rc=0
	snap=$BATS_FILE_TMPDIR/sub-$1.snap.$$.$RANDOM
	cp "$raw" "$snap" || return 1
	[[ -s $snap && $(tail -c 1 "$snap" | od -An -c | tr -d ' ') == '\n' ]] && complete=1
	awk -v complete="$complete" -v keep="${2:-}" -v name="$1" '
		function fail(msg) {
			printf "gps_messages %s: framing error at line %d (byte %d): %s: [%s]\n",
				name, NR, off, msg, line > "/dev/stderr"
			bad = 1
			exit 1
		}
		function hexval(s,    i, v, c) {
			v = 0
			for (i = 1; i <= length(s); i++) {
				c = index("0123456789abcdef", substr(s, i, 1))
				if (c == 0) return -1
				v = v * 16 + c - 1
			}
			return v
		}
		function emit(json) {
			if (keep != "all" && json ~ /^\{"stillalive": [0-9]+\.[0-9][0-9][0-9][0-9][0-9][0-9]\}$/)
				return
			print json
		}
		# The last line is only whole if the file ends in LF; delay each line by one so the
		# last can be told apart.
		NR > 1 { step(prev) }
		{ prev = $0; prevoff = thisoff; thisoff += length($0) + 1 }
		END {
			if (bad) exit 1
			if (NR > 0 && complete) step(prev)
			exit 0
		}
		function step(l) {
			line = l; off = prevoff
			if (state == "head") {
				if (l == "\r" || l == "") {
					state = chunked ? "size" : "line"
				} else if (tolower(l) ~ /^transfer-encoding:[ \t]*chunked[ \t]*\r$/) {
					chunked = 1
				}
				return
			}
			if (state == "size") {
				if (l !~ /^[0-9a-f]+\r$/) fail("chunk size line is not lowercase hex + CRLF")
				want = hexval(substr(l, 1, length(l) - 1))
				if (want == 0) fail("zero-size chunk: the stream ended")
				state = "data"
				return
			}
			if (state == "data") {
				if (length(l) + 1 != want) fail("chunk data of " length(l) + 1 " bytes (LF included), size line says " want)
				if (substr(l, length(l), 1) != "\r") fail("chunk data does not end in CRLF")
				if (length(l) < 2) fail("empty message")
				emit(substr(l, 1, length(l) - 1))
				state = "trailer"
				return
			}
			if (state == "trailer") {
				if (l != "\r") fail("chunk not followed by CRLF")
				state = "size"
				return
			}
			if (state == "line") {
				if (substr(l, length(l), 1) != "\r" || length(l) < 2) fail("line does not end in CRLF or is empty")
				emit(substr(l, 1, length(l) - 1))
				return
			}
		}
		BEGIN { state = "head" }
	' "$snap" || rc=1
	rm -f "$snap"
	return "$rc"
}

# gps_check_sequence NAME KEY FIRST LAST - check subscriber NAME's stream against PROTOCOL 3.4
# for messages that all start {"KEY":<integer>, published with the integers FIRST..LAST in this
# order (and nothing else published meanwhile, so gap counts are exact): the integers strictly
# increase and end at LAST; each jump (from FIRST - 1 on) comes right after exactly one gap
# notice whose "missed" is the number of integers skipped; no gap notice comes without a jump.
# Prints the number of gap notices; prints the stream's shape and returns 1 on any violation.
gps_check_sequence()
{
	local out
	out=$(gps_messages "$1") || return 1
	printf '%s\n' "$out" | awk -v key="$2" -v first="$3" -v last="$4" '
		function fail(msg) {
			printf "gps_check_sequence: message %d: %s: %s\n", NR, msg, substr($0, 1, 80) > "/dev/stderr"
			bad = 1
			exit 1
		}
		BEGIN { prev = first - 1; pending = -1; gaps = 0 }
		/^\{"gap": \{"missed": [0-9]+, "resume": [0-9]+\.[0-9][0-9][0-9][0-9][0-9][0-9]\}\}$/ {
			if (pending >= 0) fail("two gap notices in a row")
			split($0, f, /[:,]/)
			pending = f[3] + 0
			if (pending == 0) fail("a gap notice with nothing missed")
			gaps++
			next
		}
		{
			if (index($0, "{\"" key "\":") != 1) fail("not a gap notice nor a numbered message")
			v = substr($0, length(key) + 5) + 0
			if (v <= prev) fail("number " v " after " prev ": duplicate or out of order")
			if (v != prev + 1 && pending < 0) fail("silent skip from " prev " to " v)
			if (pending >= 0 && v - prev - 1 != pending)
				fail("gap notice says " pending " missed, but " prev " is followed by " v)
			pending = -1
			prev = v
		}
		END {
			if (bad) exit 1
			if (pending >= 0) { print "gps_check_sequence: stream ends with a gap notice" > "/dev/stderr"; exit 1 }
			if (prev != last) { print "gps_check_sequence: last message is " prev ", not " last > "/dev/stderr"; exit 1 }
			print gaps
		}'
}

# gps_count_messages NAME - print how many messages (keepalives excluded) NAME has received.
gps_count_messages()
{
	local out
	out=$(gps_messages "$1") || return 1
	if [[ -z $out ]]; then
		echo 0
	else
		printf '%s\n' "$out" | wc -l
	fi
}

# _gps_has_messages NAME N - whether NAME has received at least N messages.
_gps_has_messages()
{
	local n
	n=$(gps_count_messages "$1") || return 2
	((n >= $2))
}

# gps_wait_messages NAME N [TIMEOUT] - wait until subscriber NAME has received at least N messages
# (keepalives excluded), at most TIMEOUT seconds (default GPS_WAIT_TIMEOUT). Returns 1 on timeout
# or framing error, showing what was received.
gps_wait_messages()
{
	local name=$1 n=$2 t=${3:-$GPS_WAIT_TIMEOUT} i limit rc
	limit=$(awk -v s="$t" 'BEGIN { printf "%d", s * 20 + 1 }')
	for ((i = 0; i < limit; i++)); do
		# "|| rc=$?": a bare failing call would end the test at once under bats' set -e
		rc=0
		_gps_has_messages "$name" "$n" || rc=$?
		((rc == 0)) && return 0
		((rc == 2)) && break
		sleep 0.05
	done
	{
		echo "gps_wait_messages $name: wanted $n messages within ${t}s; received:"
		gps_messages "$name" all
	} >&2
	return 1
}

# gps_wait_keepalives NAME N [TIMEOUT] - wait until NAME has received at least N keepalives.
gps_wait_keepalives()
{
	_gps_sleep_until "${3:-$GPS_WAIT_TIMEOUT}" _gps_has_keepalives "$1" "$2" ||
		_gps_fail "gps_wait_keepalives $1: fewer than $2 keepalives within ${3:-$GPS_WAIT_TIMEOUT}s"
}

# gps_keepalives NAME - print the keepalives ({"stillalive": ...}) NAME has received, one a line.
gps_keepalives()
{
	local out
	out=$(gps_messages "$1" all) || return 1
	printf '%s\n' "$out" | grep '^{"stillalive": ' || true
}

# _gps_has_keepalives NAME N - whether NAME has received at least N keepalives.
_gps_has_keepalives()
{
	local n
	n=$(gps_keepalives "$1" | grep -c .) || true
	((n >= $2))
}

# gps_raw HOST PORT BYTES [TIMEOUT] [SOCAT_OPTS] - connect to HOST:PORT (IPv6 literal allowed),
# send BYTES (escapes already expanded by the caller, e.g. $'GET / HTTP/1.1\r\n\r\n') and print
# everything the server answers until it closes the connection or TIMEOUT seconds pass (default
# 3). The client does not half-close after sending (socat shut-none) unless SOCAT_OPTS names
# another shut-* option, e.g. "shut-down"; other SOCAT_OPTS (e.g. "bind=127.0.0.2") are added.
gps_raw()
{
	local host=$1 port=$2 bytes=$3 t=${4:-3} opts=${5:-} addr rc=0
	[[ $opts == *shut-* ]] || opts="shut-none${opts:+,$opts}"
	if [[ $host == *:* ]]; then
		addr="TCP6:[$host]:$port,$opts"
	else
		addr="TCP4:$host:$port,$opts"
	fi
	# socat's own -t restarts whenever data flows (a stream's keepalives), so timeout(1) is
	# the real bound; being cut off by it is the documented outcome, not an error.
	printf '%s' "$bytes" | timeout -k 1 "$t" socat -t "$t" - "$addr" || rc=$?
	((rc == 124)) && rc=0
	return "$rc"
}

# gps_broker_pid - print the pid of the current broker (from $GPS_RUN_DIR/broker.pid).
gps_broker_pid()
{
	local pid
	pid=$(cat "$GPS_RUN_DIR/broker.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	echo "$pid"
}

# _gps_broker_back OLDPID - a new broker is running, and its socket accepts connections.
_gps_broker_back()
{
	local pid
	pid=$(gps_broker_pid) || return 1
	[[ $pid != "$1" ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	[[ -e $GPS_RUN_DIR/ready ]] || return 1
	# The socket's type is the broker's business: try SOCK_SEQPACKET (5), then SOCK_STREAM.
	socat -u /dev/null "UNIX-CONNECT:$GPS_RUN_DIR/broker.sock,type=5" 2>/dev/null ||
		socat -u /dev/null "UNIX-CONNECT:$GPS_RUN_DIR/broker.sock" 2>/dev/null
}

# gps_kill_broker [SIGNAL] - send SIGNAL (default KILL) to the current broker, then wait (bounded,
# 10 s) until the runner has started a new one (new pid in broker.pid, alive, its socket
# accepting). Prints the new pid. Returns 1 if no new broker came up.
gps_kill_broker()
{
	local sig=${1:-KILL} old
	old=$(gps_broker_pid) || _gps_fail "gps_kill_broker: no broker pid in $GPS_RUN_DIR" || return 1
	kill "-$sig" "$old" || return 1
	if ! _gps_sleep_until 10 _gps_broker_back "$old"; then
		_gps_fail "gps_kill_broker: no new broker after SIGNAL $sig to $old; log:"
		cat "$GPS_LOG" >&2
		return 1
	fi
	gps_broker_pid
}

# gps_wait_broker_ready - wait (bounded, 10 s) until a broker is running and its socket accepts.
gps_wait_broker_ready()
{
	_gps_sleep_until 10 _gps_broker_back "" ||
		_gps_fail "gps_wait_broker_ready: the broker is not accepting connections"
}

# gps_now - print the current unix time with 6 decimals (the format of X-Fetch-Since values).
gps_now()
{
	date +%s.%6N
}

# gps_figure TEXT... - print a figure line into the TAP output ("# figure: TEXT").
gps_figure()
{
	echo "# figure: $*" >&3
}

# gps_want FILE NAME VALUE - the "NAME=value" figure of a test driver's output FILE is VALUE
# (tests/tools: subs.pl, idle.pl, ...); says what it was otherwise.
gps_want()
{
	local v
	v=$(sed -n "s/^$2=//p" "$1")
	[[ $v == "$3" ]] || _gps_fail "$2 is '$v', wanted $3 ($(tr '\n' ' ' <"$1"))"
}
