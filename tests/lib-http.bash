# shellcheck shell=bash
#
# HTTP helpers for the end-to-end tests of PROTOCOL 1, 2, 5, 6, 7 and 9 (tests/3[0-7]-*.bats).
# Load after tests/lib.bash (`load lib` then `load lib-http`): it reuses gps_config, gps_stop,
# gps_header, free_port and _gps_sleep_until.
#
#   http_send       one raw exchange on one connection; the request may hold any byte (NUL too)
#   http_open ...   the same in the background, for a connection that turns into a stream
#   http_split      cut a file of pipelined responses into one file per response
#   http_check_error  PROTOCOL 7.1: a complete error response, then the connection closed
#   http_instance_* extra service instances with their own listeners and configuration
#   http_broker_try run gitpubsub-broker alone on a configuration file (start-up errors)
#
# Every wait is bounded; only loopback addresses are used.

# `printf REQUEST | http_send ...` must set HTTP_OUT and friends in the test's shell: run the
# last command of a pipeline in the current shell (bats runs without job control, as lastpipe
# requires).
shopt -s lastpipe

# Slack added to a socat timeout before timeout(1) kills it: socat itself should end first.
HTTP_KILL_SLACK=2
# How long http_broker_try waits for a broker to exit or to open its socket.
HTTP_BROKER_TRY_TIMEOUT=5

# _http_addr HOST PORT [SOCAT_OPTS] - print socat's address for a client connection to HOST:PORT
# (an IPv6 literal without brackets is allowed) that never half-closes: the tests must see the
# server close on its own.
_http_addr()
{
	local host=$1 port=$2 opts=${3:-}
	opts="shut-none${opts:+,$opts}"
	if [[ $host == *:* ]]; then
		printf 'TCP6:[%s]:%s,%s\n' "$host" "$port" "$opts"
	else
		printf 'TCP4:%s:%s,%s\n' "$host" "$port" "$opts"
	fi
}

# http_send HOST PORT TIMEOUT [SOCAT_OPTS] < REQUEST
# Connect, send stdin (any bytes, NUL included), keep our sending half open, and read until the
# server closes the connection or TIMEOUT seconds pass. Sets:
#   HTTP_OUT     file holding every byte received
#   HTTP_MS      milliseconds from the start to the end of the exchange
#   HTTP_CLOSED  1 if the server closed the connection before TIMEOUT, else 0
# SOCAT_OPTS are added to the client address, e.g. "bind=127.0.0.2" for another source address.
# Returns 0 (the caller asserts on the results).
http_send()
{
	local host=$1 port=$2 t=$3 opts=${4:-} req addr start end
	HTTP_SEQ=$((${HTTP_SEQ:-0} + 1))
	req=$BATS_TEST_TMPDIR/http-req.$HTTP_SEQ
	HTTP_OUT=$BATS_TEST_TMPDIR/http-resp.$HTTP_SEQ
	addr=$(_http_addr "$host" "$port" "$opts")
	cat >"$req"
	start=$(date +%s%N)
	timeout -k 1 $((t + HTTP_KILL_SLACK)) socat -t "$t" - "$addr" <"$req" >"$HTTP_OUT" \
		2>"$HTTP_OUT.err" || true
	end=$(date +%s%N)
	HTTP_MS=$(((end - start) / 1000000))
	# After our EOF socat waits TIMEOUT seconds for the server; it ends early only if the server
	# closes. 100 ms of slack covers process start-up.
	if ((HTTP_MS < t * 1000 - 100)); then
		HTTP_CLOSED=1
	else
		HTTP_CLOSED=0
	fi
	return 0
}

# http_adopt FILE MS CLOSED - make FILE, received in MS milliseconds on a connection the server
# closed (CLOSED 1) or not (0), the result of the last exchange, as http_send would have set it,
# for exchanges a test runs itself (e.g. a request sent slowly).
# shellcheck disable=SC2034 # the results are read by http_check_error and the tests
http_adopt()
{
	HTTP_OUT=$1
	HTTP_MS=$2
	HTTP_CLOSED=$3
}

# http_open NAME HOST PORT TIMEOUT [SOCAT_OPTS] < REQUEST
# Like http_send, in the background: the connection stays open (our half too) for up to TIMEOUT
# seconds, everything received goes to $(http_conn_out NAME). Returns at once.
http_open()
{
	local name=$1 host=$2 port=$3 t=$4 opts=${5:-} dir addr
	dir=$BATS_FILE_TMPDIR/conn-$name
	mkdir -p "$dir"
	addr=$(_http_addr "$host" "$port" "$opts")
	cat >"$dir/req"
	: >"$dir/out"
	timeout -k 1 $((t + HTTP_KILL_SLACK)) socat -t "$t" - "$addr" <"$dir/req" >"$dir/out" \
		2>"$dir/err" 3>&- &
	echo $! >"$dir/pid"
}

# http_conn_out NAME - print the path of the file receiving connection NAME's bytes.
http_conn_out()
{
	printf '%s\n' "$BATS_FILE_TMPDIR/conn-$1/out"
}

# _http_conn_has NAME STRING - whether connection NAME has received STRING (a fixed string
# within one line: no LF).
_http_conn_has()
{
	grep -qF -- "$2" "$BATS_FILE_TMPDIR/conn-$1/out" 2>/dev/null
}

# http_wait_conn NAME STRING [TIMEOUT] - wait (default 5 s) until connection NAME has received
# STRING; on timeout show what arrived and return 1.
http_wait_conn()
{
	local t=${3:-5}
	_gps_sleep_until "$t" _http_conn_has "$1" "$2" && return 0
	{
		echo "http_wait_conn $1: '$2' not received within ${t}s; received:"
		cat -v "$BATS_FILE_TMPDIR/conn-$1/out"
	} >&2
	return 1
}

# http_wait_head NAME [TIMEOUT] - wait (default 5 s) until connection NAME has received a whole
# response head (a blank line); on timeout show what arrived and return 1.
http_wait_head()
{
	local t=${2:-5}
	_gps_sleep_until "$t" _gps_head_complete "$BATS_FILE_TMPDIR/conn-$1/out" && return 0
	{
		echo "http_wait_head $1: no complete response head within ${t}s; received:"
		cat -v "$BATS_FILE_TMPDIR/conn-$1/out"
	} >&2
	return 1
}

# http_conn_alive NAME - whether connection NAME's client is still running (the server has not
# closed the connection).
http_conn_alive()
{
	local pidfile=$BATS_FILE_TMPDIR/conn-$1/pid
	[[ -f $pidfile ]] && ! _gps_pid_dead "$(<"$pidfile")"
}

# http_close NAME - end connection NAME (bounded); its received bytes stay in its out file.
http_close()
{
	local pidfile=$BATS_FILE_TMPDIR/conn-$1/pid pid
	[[ -f $pidfile ]] || return 0
	pid=$(<"$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	_gps_sleep_until 2 _gps_pid_dead "$pid" || kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
	return 0
}

# http_close_all - end every connection opened by http_open in this file.
http_close_all()
{
	local f
	for f in "$BATS_FILE_TMPDIR"/conn-*/pid; do
		[[ -f $f ]] || continue
		f=${f%/pid}
		http_close "${f##*/conn-}"
	done
	return 0
}

# http_split FILE - cut FILE, the bytes of a connection carrying responses one after another,
# into FILE.1, FILE.2, ... (head and body each; a response with Content-Length gets exactly that
# many body bytes, a response without one gets the rest of the file, e.g. a stream; a response to
# HEAD must say Content-Length: 0, as PROTOCOL 6 wants). Prints the number of responses. Bytes
# after the last complete head, if any, go to a last part of their own.
http_split()
{
	local file=$1 data head cl n=0 line
	IFS= read -r -d '' data <"$file" || true
	while [[ -n $data ]]; do
		n=$((n + 1))
		if [[ $data != *$'\r\n\r\n'* ]]; then
			printf '%s' "$data" >"$file.$n"
			break
		fi
		head=${data%%$'\r\n\r\n'*}
		data=${data#*$'\r\n\r\n'}
		cl=
		while IFS= read -r line; do
			line=${line%$'\r'}
			if [[ ${line,,} =~ ^content-length:[[:space:]]*([0-9]+)[[:space:]]*$ ]]; then
				cl=${BASH_REMATCH[1]}
				break
			fi
		done <<<"$head"
		if [[ -z $cl ]]; then
			printf '%s\r\n\r\n%s' "$head" "$data" >"$file.$n"
			break
		fi
		printf '%s\r\n\r\n%s' "$head" "${data:0:cl}" >"$file.$n"
		data=${data:cl}
	done
	echo "$n"
}

# http_status FILE - print the status code of the response in FILE (its first line).
http_status()
{
	local line
	IFS= read -r line <"$1" || true
	line=${line%$'\r'}
	[[ $line =~ ^HTTP/1\.[01]\ ([0-9]{3})\  ]] || return 1
	echo "${BASH_REMATCH[1]}"
}

# http_statuses FILE - print the status code of each status line in FILE, space-separated (for
# pipelined answers whose bodies never start with "HTTP/").
http_statuses()
{
	local codes
	codes=$(grep -a -o $'^HTTP/1\\.[01] [0-9][0-9][0-9] ' "$1" | cut -d' ' -f2 | tr '\n' ' ')
	echo "${codes% }"
}

# http_body FILE - print the body of the response in FILE (everything after the first blank line).
http_body()
{
	local data
	IFS= read -r -d '' data <"$1" || true
	[[ $data == *$'\r\n\r\n'* ]] || return 1
	printf '%s' "${data#*$'\r\n\r\n'}"
}

# http_body_is FILE EXPECTED - whether the body of the response in FILE is exactly EXPECTED
# (trailing line ends included, which $(http_body) would strip); shows both if not.
http_body_is()
{
	local data body
	IFS= read -r -d '' data <"$1" || true
	[[ $data == *$'\r\n\r\n'* ]] && body=${data#*$'\r\n\r\n'}
	[[ ${body-} == "$2" ]] && return 0
	{
		printf 'body of %s is:\n' "$1"
		printf '%s' "${body-(no complete head)}" | cat -A
		printf '\nwanted:\n'
		printf '%s' "$2" | cat -A
		echo
	} >&2
	return 1
}

# http_has_header FILE NAME - whether the response head in FILE has a header NAME.
http_has_header()
{
	gps_header "$1" "$2" >/dev/null
}

# http_x_headers FILE - print the names of the response head's headers starting with "X-".
http_x_headers()
{
	local data head line
	IFS= read -r -d '' data <"$1" || true
	head=${data%%$'\r\n\r\n'*}
	while IFS= read -r line; do
		line=${line%$'\r'}
		[[ ${line,,} == x-* ]] && printf '%s\n' "${line%%:*}"
	done <<<"$head"
	return 0
}

# _http_error_fail FILE MESSAGE - report why FILE is not a proper error response; return 1.
_http_error_fail()
{
	{
		echo "not a PROTOCOL 7.1 error response: $2"
		echo "--- received (cat -A):"
		cat -A "$1"
		echo "---"
	} >&2
	return 1
}

# http_check_error [-n] STATUS - check the last http_send (HTTP_OUT, HTTP_CLOSED) against
# PROTOCOL 7.1: exactly one response, status line "HTTP/1.1 STATUS <reason>", a Server header,
# Content-Type: text/plain, a Content-Length equal to the body's length, Connection: close, a
# one-line body ending in CRLF (-n: the body has no line end, as the 403 text), nothing after the
# body, and the connection closed by the server. Prints a diagnostic and returns 1 otherwise.
http_check_error()
{
	local crlf=1 status data head body line cl ctype conn
	local re_crlf_line=$'^[^\r\n]+\r\n$' re_bare_line=$'^[^\r\n]+$'
	if [[ $1 == -n ]]; then
		crlf=0
		shift
	fi
	status=$1
	IFS= read -r -d '' data <"$HTTP_OUT" || true
	[[ $data == *$'\r\n\r\n'* ]] || _http_error_fail "$HTTP_OUT" "no complete head" || return 1
	head=${data%%$'\r\n\r\n'*}
	body=${data#*$'\r\n\r\n'}
	IFS= read -r line <<<"$head"
	line=${line%$'\r'}
	[[ $line =~ ^HTTP/1\.1\ $status\ [^[:cntrl:]]+$ ]] ||
		_http_error_fail "$HTTP_OUT" "status line is not 'HTTP/1.1 $status <reason>'" || return 1
	[[ -n $(gps_header "$HTTP_OUT" Server) ]] ||
		_http_error_fail "$HTTP_OUT" "no Server header" || return 1
	ctype=$(gps_header "$HTTP_OUT" Content-Type) || true
	[[ ${ctype,,} =~ ^text/plain([[:space:]]*\;.*)?$ ]] ||
		_http_error_fail "$HTTP_OUT" "Content-Type is not text/plain" || return 1
	conn=$(gps_header "$HTTP_OUT" Connection) || true
	[[ ${conn,,} == close ]] ||
		_http_error_fail "$HTTP_OUT" "no 'Connection: close'" || return 1
	cl=$(gps_header "$HTTP_OUT" Content-Length) ||
		_http_error_fail "$HTTP_OUT" "no Content-Length" || return 1
	[[ $cl =~ ^[0-9]+$ ]] && ((cl == ${#body})) ||
		_http_error_fail "$HTTP_OUT" "Content-Length $cl, but ${#body} bytes follow the head" ||
		return 1
	if ((crlf)); then
		[[ $body =~ $re_crlf_line ]] ||
			_http_error_fail "$HTTP_OUT" "body is not one non-empty line ending in CRLF" ||
			return 1
	else
		[[ $body =~ $re_bare_line ]] ||
			_http_error_fail "$HTTP_OUT" "body is not one line without line end" || return 1
	fi
	((HTTP_CLOSED)) ||
		_http_error_fail "$HTTP_OUT" "the server kept the connection open (${HTTP_MS} ms)" ||
		return 1
}

# http_expect_error [-n] STATUS HOST PORT [SOCAT_OPTS] < REQUEST - send REQUEST (http_send,
# 3 s) and check the answer with http_check_error.
http_expect_error()
{
	local flag=()
	if [[ $1 == -n ]]; then
		flag=(-n)
		shift
	fi
	http_send "$2" "$3" 3 "${4:-}"
	http_check_error "${flag[@]}" "$1"
}

# http_code URL [CURL_ARGS...] - print the status code curl gets for URL within 2 s ("000" for
# none). A stream (200 to a GET) is cut at 2 s: its code is still printed.
http_code()
{
	local url=$1
	shift
	curl -s -g -o /dev/null --max-time 2 -w '%{http_code}\n' "$@" "$url" || true
}

# http_instance_start NAME LISTEN... [-- CONFIG_LINES...] - start another service instance, next
# to the one of gps_start: gitpubsub-run with one --listen per LISTEN, where the word PORT is
# replaced by a free port (e.g. 127.0.0.1:PORT '[::1]:PORT'), with the configuration gps_config
# writes for CONFIG_LINES, its own ring and runtime folder, --inetd when GPS_MODE=inetd. Waits
# (GPS_START_TIMEOUT) for its ready file. State lives in $BATS_FILE_TMPDIR/inst-NAME, in the
# layout gps_stop reads, so http_instance_stop can use it. Returns 1 (with the log) on failure.
# Opt-in, from the environment: HTTP_INSTANCE_RING, the ring to use (one a stopped instance left,
# see http_instance_keep_ring); HTTP_INSTANCE_MUX=1, --mux when GPS_MODE=mux.
http_instance_start()
{
	local name=$1 dir port rundir ring pid l i
	local -a listens=() cfg=() mode_args=()
	shift
	while (($#)) && [[ $1 != -- ]]; do
		listens+=("$1")
		shift
	done
	(($#)) && shift
	cfg=("$@")
	dir=$BATS_FILE_TMPDIR/inst-$name
	mkdir -p "$dir"
	port=$(free_port) || return 1
	echo "$port" >"$dir/port"
	for i in "${!listens[@]}"; do
		l=${listens[$i]}
		listens[i]=${l//PORT/$port}
	done
	ring=${HTTP_INSTANCE_RING:-/gps-test-$$-$name-$RANDOM}
	rundir=$(mktemp -d /tmp/gps-rt.XXXXXX) || return 1
	(BATS_FILE_TMPDIR=$dir GPS_PORT=$port gps_config "${cfg[@]}") || return 1
	[[ $GPS_MODE == inetd ]] && mode_args=(--inetd)
	[[ $GPS_MODE == mux && ${HTTP_INSTANCE_MUX:-} == 1 ]] && mode_args=(--mux)
	local -a largs=()
	for l in "${listens[@]}"; do
		largs+=(--listen "$l")
	done
	setsid "$GPS_BUILD/gitpubsub-run" "${largs[@]}" --config "$dir/gitpubsub.cfg" \
		--runtime-dir "$rundir" --ring "$ring" "${mode_args[@]}" \
		</dev/null >"$dir/gitpubsub-run.log" 2>&1 3>&- &
	pid=$!
	echo "$pid" >"$dir/runner.pid"
	echo "$rundir" >"$dir/runner.dir"
	echo "$ring" >"$dir/runner.ring"
	echo "$rundir" >"$dir/rundir"
	_gps_sleep_until "$GPS_START_TIMEOUT" _http_ready_or_dead "$rundir" "$pid" || true
	if [[ ! -e $rundir/ready ]] || _gps_pid_dead "$pid"; then
		{
			echo "http_instance_start $name: not ready within ${GPS_START_TIMEOUT}s"
			echo "--- config:"
			cat "$dir/gitpubsub.cfg"
			echo "--- log:"
			cat "$dir/gitpubsub-run.log"
			echo "---"
		} >&2
		http_instance_stop "$name"
		return 1
	fi
}

# _http_ready_or_dead RUNDIR PID - the instance is ready, or its runner is gone.
_http_ready_or_dead()
{
	[[ -e $1/ready ]] || _gps_pid_dead "$2"
}

# http_instance_port NAME - print the port of instance NAME.
http_instance_port()
{
	cat "$BATS_FILE_TMPDIR/inst-$1/port"
}

# http_instance_log NAME - print the runner's log (its and its children's stderr) of NAME.
http_instance_log()
{
	cat "$BATS_FILE_TMPDIR/inst-$1/gitpubsub-run.log"
}

# http_instance_stop NAME - stop instance NAME and remove its ring (gps_stop on its state).
http_instance_stop()
{
	local dir=$BATS_FILE_TMPDIR/inst-$1
	[[ -d $dir ]] || return 0
	(BATS_FILE_TMPDIR=$dir gps_stop)
}

# http_instance_keep_ring NAME - print instance NAME's ring and leave it in place when the
# instance stops (the caller removes it, or hands it to the next instance: HTTP_INSTANCE_RING).
http_instance_keep_ring()
{
	cat "$BATS_FILE_TMPDIR/inst-$1/runner.ring" &&
		rm -f "$BATS_FILE_TMPDIR/inst-$1/runner.ring"
}

# http_instance_stop_all - stop every instance started by http_instance_start in this file.
http_instance_stop_all()
{
	local d
	for d in "$BATS_FILE_TMPDIR"/inst-*; do
		[[ -d $d ]] || continue
		http_instance_stop "${d##*/inst-}"
	done
	return 0
}

# http_broker_try CONFIG_FILE - run gitpubsub-broker alone on CONFIG_FILE, with a ring and socket
# of its own, until it exits or opens its socket (bounded by HTTP_BROKER_TRY_TIMEOUT); then stop
# it and remove its ring. Sets BROKER_RC (its exit status, or "ready" if it opened its socket, or
# "hung") and BROKER_ERR (a file holding its stderr). Returns 0.
# shellcheck disable=SC2034 # BROKER_RC and BROKER_ERR are the results, read by the tests
http_broker_try()
{
	local cfgfile=$1 dir ring pid
	dir=$(mktemp -d /tmp/gps-bt.XXXXXX) || return 1
	ring=/gps-test-$$-broker-$RANDOM
	BROKER_ERR=$BATS_TEST_TMPDIR/broker-try.$RANDOM.err
	"$GPS_BUILD/gitpubsub-broker" --config "$cfgfile" --ring "$ring" --socket "$dir/broker.sock" \
		</dev/null >/dev/null 2>"$BROKER_ERR" 3>&- &
	pid=$!
	_gps_sleep_until "$HTTP_BROKER_TRY_TIMEOUT" _http_broker_settled "$dir/broker.sock" "$pid" ||
		true
	if _gps_pid_dead "$pid"; then
		BROKER_RC=0
		wait "$pid" || BROKER_RC=$?
	else
		if [[ -S $dir/broker.sock ]]; then
			BROKER_RC=ready
		else
			BROKER_RC=hung
		fi
		kill -TERM "$pid" 2>/dev/null || true
		_gps_sleep_until 3 _gps_pid_dead "$pid" || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -f "/dev/shm/${ring#/}" "/dev/shm/${ring#/}.stats"
	rm -rf "$dir"
	return 0
}

# _http_broker_settled SOCKET PID - the broker has opened SOCKET or has exited.
_http_broker_settled()
{
	[[ -S $1 ]] || _gps_pid_dead "$2"
}

# http_unsubscribe_all - stop every subscriber gps_subscribe started in this file (for teardown).
http_unsubscribe_all()
{
	local f
	for f in "$BATS_FILE_TMPDIR"/sub-*.pid; do
		[[ -f $f ]] || continue
		f=${f##*/sub-}
		# Guarded: a subscriber the server already closed is no failure here.
		gps_unsubscribe "${f%.pid}" || true
	done
	return 0
}

# http_ms_since START_NS - print the milliseconds elapsed since START_NS (from `date +%s%N`).
http_ms_since()
{
	echo $((($(date +%s%N) - $1) / 1000000))
}
