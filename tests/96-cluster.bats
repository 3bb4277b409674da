#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031,SC2016
# (SC2016: awk programs and NATS subjects with '$' are meant literally)
#
# Issue 12: three nodes share one history through NATS JetStream (README, "Running a cluster").
# Three nats-server (JetStream, clustered, replicas 3) and three gitpubsub-run nodes, all on free
# loopback ports, in temporary folders, started once for the file. The tests are the seven
# faults of the issue, named by number; each uses its own tag, so the checker
# (tests/tools/clustercheck.c) looks only at its own messages.

load lib
bats_require_minimum_version 1.5.0

NODES=3
# The publish token of the tokens test (issue 16).
CL_TOKEN=gps_cluster-token-0123456789abcdefghijklmnopq
# How long a test waits for every subscriber to hold what was acknowledged.
CL_DELIVERY_TIMEOUT=30
# publishTimeout of the nodes: a publish is answered 503 after this when NATS does not ack.
CL_PUBLISH_TIMEOUT_S=3

setup_file()
{
	local k urls="" routes=""
	CL_DIR=$(mktemp -d /tmp/gps-cluster.XXXXXX)
	export CL_DIR
	# the checker: built by make test-programs (with the build's flags and sanitizers)
	[[ -x $GPS_BUILD/tests/tools/clustercheck ]] || {
		echo "no $GPS_BUILD/tests/tools/clustercheck: build it with 'make test-programs'" >&2
		return 1
	}
	cp "$GPS_BUILD/tests/tools/clustercheck" "$CL_DIR/clustercheck"
	for ((k = 1; k <= NODES; k++)); do
		free_port >"$CL_DIR/nats$k.port"
		free_port >"$CL_DIR/route$k.port"
		free_port >"$CL_DIR/http$k.port"
	done
	for ((k = 1; k <= NODES; k++)); do
		urls+="${urls:+, }nats://127.0.0.1:$(<"$CL_DIR/nats$k.port")"
		routes+="${routes:+, }nats-route://127.0.0.1:$(<"$CL_DIR/route$k.port")"
	done
	# issue 16: every node reads the same tokens file; CL_TOKEN may publish under /cluster/tok
	printf 'sha256:%s /cluster/tok\n' "$(printf '%s' "$CL_TOKEN" | sha256sum | cut -d' ' -f1)" \
		>"$CL_DIR/tokens"
	chmod 600 "$CL_DIR/tokens"
	for ((k = 1; k <= NODES; k++)); do
		cat >"$CL_DIR/nats$k.conf" <<-EOF
			server_name: n$k
			listen: 127.0.0.1:$(<"$CL_DIR/nats$k.port")
			jetstream { store_dir: "$CL_DIR/js$k", max_file_store: 1G, max_memory_store: 64M }
			cluster {
			  name: gpstest
			  listen: 127.0.0.1:$(<"$CL_DIR/route$k.port")
			  routes: [ $routes ]
			}
		EOF
		cat >"$CL_DIR/node$k.cfg" <<-EOF
			[Server]
			IP: 127.0.0.1
			port: $(<"$CL_DIR/http$k.port")
			[Clients]
			tokensFile: $CL_DIR/tokens
			[Limits]
			headerTimeout: 2s
			[Stream]
			keepalive: 1s
			sendTimeout: 20s
			[History]
			ringSize: 16M
			[Cluster]
			nats: $urls
			replicas: 3
			publishTimeout: ${CL_PUBLISH_TIMEOUT_S}s
		EOF
		nats_start "$k"
	done
	for ((k = 1; k <= NODES; k++)); do
		node_start "$k"
	done
	# JetStream elects its leaders and a broker makes the stream: wait until every node
	# publishes (these probes are on a topic no test subscribes to)
	for ((k = 1; k <= NODES; k++)); do
		_gps_sleep_until 30 probe "$k" || {
			tail -20 "$CL_DIR/node$k.log" >&2
			return 1
		}
	done
}

# probe K - whether a publish on node K is acknowledged
probe()
{
	[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' -d '{"probe":1}' \
		"http://127.0.0.1:$(node_port "$1")/probe")" = 200 ]
}

# publish_head K NAME JSON - publish JSON to /cluster/NAME on node K; its answer's head in
# $CL_DIR/NAME.K.head. Succeeds on 200.
publish_head()
{
	[ "$(curl -s -m 5 -D "$CL_DIR/$2.$1.head" -o /dev/null -w '%{http_code}' -d "$3" \
		"http://127.0.0.1:$(node_port "$1")/cluster/$2")" = 200 ]
}

teardown_file()
{
	local k
	subs_stop
	for ((k = 1; k <= NODES; k++)); do
		node_stop "$k"
		nats_kill "$k"
		rm -f "/dev/shm/$(node_ring "$k")" "/dev/shm/$(node_ring "$k").stats"
	done
	# CL_KEEP=1 keeps the folder (logs, streams) for a look after a failure
	[[ -n ${CL_KEEP:-} || $CL_DIR != /tmp/gps-cluster.* ]] || rm -rf "$CL_DIR"
}

teardown()
{
	local k
	subs_stop
	# a failed test: what each node said of the stream and of its answers, for the reader
	[[ -n ${BATS_TEST_COMPLETED:-} ]] && return 0
	for ((k = 1; k <= NODES; k++)); do
		echo "--- node $k, last lines about the stream, gaps and refusals:" >&2
		grep -a -e stream -e gap -e ' 503 ' -e warning "$CL_DIR/node$k.log" | tail -n 15 >&2
	done
}

# ---- helpers --------------------------------------------------------------------------------

# nats_start K - start NATS server K in its own session; wait until it takes connections.
nats_start()
{
	setsid nats-server -c "$CL_DIR/nats$1.conf" </dev/null >>"$CL_DIR/nats$1.log" 2>&1 &
	echo $! >"$CL_DIR/nats$1.pid"
	_gps_sleep_until 10 nats_up "$1"
}

nats_up()
{
	[[ -n $(ss -Htln "sport = :$(<"$CL_DIR/nats$1.port")") ]]
}

# nats_kill K [SIGNAL] - stop NATS server K (SIGKILL by default) and wait until it is gone.
nats_kill()
{
	local pid
	[[ -f $CL_DIR/nats$1.pid ]] || return 0
	pid=$(<"$CL_DIR/nats$1.pid")
	kill "-${2:-KILL}" "$pid" 2>/dev/null || true
	_gps_sleep_until 10 _gps_pid_dead "$pid"
	wait "$pid" 2>/dev/null || true
	rm -f "$CL_DIR/nats$1.pid"
}

# node_ring K - the ring of node K: named after the folder, the same in every test
node_ring()
{
	echo "/${CL_DIR#/tmp/}-$1"
}

node_port()
{
	cat "$CL_DIR/http$1.port"
}

# node_start K - start node K (a gitpubsub-run with its own ring and runtime folder); wait until
# it is ready: its broker caught up with the stream (or found NATS away).
node_start()
{
	mkdir -p "$CL_DIR/rt$1"
	setsid "$GPS_BUILD/gitpubsub-run" --config "$CL_DIR/node$1.cfg" \
		--runtime-dir "$CL_DIR/rt$1" --ring "$(node_ring "$1")" \
		</dev/null >>"$CL_DIR/node$1.log" 2>&1 3>&- &
	echo $! >"$CL_DIR/node$1.pid"
	if ! _gps_sleep_until 15 test -e "$CL_DIR/rt$1/ready"; then
		cat "$CL_DIR/node$1.log" >&2
		return 1
	fi
}

# node_stop K - stop node K (its runner, broker and frontends); its ring stays.
node_stop()
{
	local pid
	[[ -f $CL_DIR/node$1.pid ]] || return 0
	pid=$(<"$CL_DIR/node$1.pid")
	kill -TERM "$pid" 2>/dev/null || true
	_gps_sleep_until 5 _gps_pid_dead "$pid" || true
	wait "$pid" 2>/dev/null || true
	kill -KILL -- "-$pid" 2>/dev/null || true
	rm -f "$CL_DIR/node$1.pid" "$CL_DIR/rt$1/ready"
}

# sub_start NAME K [CURL_ARGS...] - subscribe to /cluster on node K in the background; the stream
# goes to $CL_DIR/NAME.out. Waits until the response head arrived.
sub_start()
{
	local name=$1 k=$2
	shift 2
	curl -sN -D "$CL_DIR/$name.head" "$@" "http://127.0.0.1:$(node_port "$k")/cluster" \
		>"$CL_DIR/$name.out" 2>/dev/null &
	echo $! >>"$CL_DIR/subs.pids"
	_gps_sleep_until 5 grep -qs '^HTTP/1.1 200' "$CL_DIR/$name.head"
}

subs_stop()
{
	local pid
	[[ -f $CL_DIR/subs.pids ]] || return 0
	while read -r pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done <"$CL_DIR/subs.pids"
	rm -f "$CL_DIR/subs.pids"
}

# publish TAG COUNT CONNS NODE... - COUNT publishes of TAG spread over NODEs; "k status" lines in
# $CL_DIR/TAG.acked, a summary in $CL_DIR/TAG.summary.
publish()
{
	local tag=$1 count=$2 conns=$3 ports="" k
	shift 3
	for k in "$@"; do ports+="${ports:+,}$(node_port "$k")"; done
	"$CL_DIR/clustercheck" publish --ports "$ports" --count "$count" --conns "$conns" \
		--tag "$tag" >"$CL_DIR/$tag.acked" 2>"$CL_DIR/$tag.summary"
}

acked()
{
	awk '$2 == 200' "$CL_DIR/$1.acked" | wc -l
}

# check TAG NAME... - wait until the streams hold everything acknowledged, then run the checker
# (its output in $output, for the test to look at).
check()
{
	local tag=$1 files=() name
	shift
	for name in "$@"; do files+=("$CL_DIR/$name.out"); done
	_gps_sleep_until "$CL_DELIVERY_TIMEOUT" "$CL_DIR/clustercheck" check \
		--acked "$CL_DIR/$tag.acked" --tag "$tag" "${files[@]}" >/dev/null 2>&1 || true
	run "$CL_DIR/clustercheck" check --acked "$CL_DIR/$tag.acked" --tag "$tag" "${files[@]}"
	echo "$output" >&2
	cat "$CL_DIR/$tag.summary" >&2
}

# gaps NAME - the gap notices in NAME.out
gaps()
{
	grep -c '^{"gap"' "$CL_DIR/$1.out" || true
}

# holds K CURSOR JSON - whether a replay from CURSOR on node K holds JSON
holds()
{
	curl -s -m 0.5 -H "X-Fetch-Since-Cursor: $2" "http://127.0.0.1:$(node_port "$1")/cluster/f7" |
		grep -qF "$3"
}

# broker_replaced K PID - whether node K runs a broker other than PID
broker_replaced()
{
	[ "$(cat "$CL_DIR/rt$1/broker.pid")" != "$2" ]
}

# pub1 K TAG JSON [CURL_ARGS...] - one publish on node K; prints the answer's X-Cursor.
pub1()
{
	curl -s -m 15 -D - -o /dev/null -d "$3" "${@:4}" \
		"http://127.0.0.1:$(node_port "$1")/cluster/$2" |
		tr -d '\r' | awk -F': ' 'tolower($1) == "x-cursor" { print $2 }'
}

# ---- the cluster's faults ------------------------------------------------------------------

@test "fault 1: publishes spread over three nodes reach every node once, in one shared order" {
	local k
	for ((k = 1; k <= NODES; k++)); do sub_start f1-$k "$k"; done
	publish f1 3000 9 1 2 3
	[ "$(acked f1)" -eq 3000 ]
	check f1 f1-1 f1-2 f1-3
	[ "$status" -eq 0 ]
	for ((k = 1; k <= NODES; k++)); do [ "$(gaps f1-$k)" -eq 0 ]; done
}

@test "fault 7: a cursor from node 1 resumes exactly on nodes 2 and 3" {
	local c1 k out
	c1=$(pub1 1 f7 '{"f7":1}')
	[[ $c1 =~ ^[0-9a-f]{16}-[0-9]+$ ]]
	[ -n "$(pub1 2 f7 '{"f7":2}')" ]
	[ -n "$(pub1 3 f7 '{"f7":3}')" ]
	for k in 2 3; do
		# the answer came once the publishing node held it; the others follow within moments
		_gps_sleep_until 5 holds "$k" "$c1" '{"f7":3}'
		out=$(curl -s -m 1.5 -H "X-Fetch-Since-Cursor: $c1" \
			"http://127.0.0.1:$(node_port "$k")/cluster/f7" | tr -d '\r' | grep -v stillalive)
		echo "node $k: $out" >&2
		[ "$out" = $'{"f7":2}\n{"f7":3}' ]
		# Last-Event-ID, as a browser moving to another node sends it
		out=$(curl -s -m 1.5 -H 'Accept: text/event-stream' -H "Last-Event-ID: $c1" \
			"http://127.0.0.1:$(node_port "$k")/cluster/f7" | grep '^data:')
		[ "$out" = $'data: {"f7":2}\ndata: {"f7":3}' ]
	done
	# every node names every message alike: the same cursors for the same messages
	for k in 1 2 3; do
		curl -s -m 1.5 -H "X-Fetch-Since-Cursor: ${c1%-*}-0" -H 'Accept: text/event-stream' \
			"http://127.0.0.1:$(node_port "$k")/cluster/f7" |
			awk '/^id:/ { id = $0 } /^data:/ { print id, $0 }' >"$CL_DIR/f7-ids.$k"
	done
	[ "$(wc -l <"$CL_DIR/f7-ids.1")" -eq 3 ]
	cmp "$CL_DIR/f7-ids.1" "$CL_DIR/f7-ids.2"
	cmp "$CL_DIR/f7-ids.1" "$CL_DIR/f7-ids.3"
}

@test "fault 4: a node's broker SIGKILLed during publishes: no gap, no duplicate on that node" {
	local k pid broker
	for ((k = 1; k <= NODES; k++)); do sub_start f4-$k "$k"; done
	publish f4 4000 6 1 2 3 &
	pid=$!
	sleep 0.5
	broker=$(<"$CL_DIR/rt2/broker.pid")
	kill -KILL "$broker"
	gps_wait_pids 60 "$pid"
	# the runner restarted it
	_gps_sleep_until 10 broker_replaced 2 "$broker"
	[ "$(acked f4)" -gt 3000 ]
	check f4 f4-1 f4-2 f4-3
	[ "$status" -eq 0 ]
	for ((k = 1; k <= NODES; k++)); do [ "$(gaps f4-$k)" -eq 0 ]; done
}

@test "fault 2: a NATS server SIGKILLed during 10,000 publishes: nothing acknowledged is lost" {
	local k pid
	for ((k = 1; k <= NODES; k++)); do sub_start f2-$k "$k"; done
	publish f2 10000 9 1 2 3 &
	pid=$!
	sleep 1
	nats_kill 1
	gps_wait_pids 120 "$pid"
	# the rest waited for the election or got 503 (or, rarely, no answer: status 0); how many
	# depends on whether the server killed led the stream. Whatever got 200 is everywhere.
	[ "$(acked f2)" -gt 1000 ]
	run -0 awk '$2 != 200 && $2 != 503 && $2 != 0' "$CL_DIR/f2.acked"
	[ -z "$output" ]
	check f2 f2-1 f2-2 f2-3
	[ "$status" -eq 0 ]
	nats_start 1
	# a server that just came back answers "no responders" for the stream until it is current
	all_publish
}

# all_publish - wait until every node's publishes are acknowledged
all_publish()
{
	local k
	for ((k = 1; k <= NODES; k++)); do _gps_sleep_until 30 probe "$k" || return 1; done
}

@test "fault 3: all NATS servers down 30 s: 503 within publishTimeout, keepalives, then all there" {
	local k t0 t1 code ka1 ka2
	all_publish
	for ((k = 1; k <= NODES; k++)); do sub_start f3-$k "$k"; done
	publish f3a 300 3 1 2 3
	[ "$(acked f3a)" -ge 290 ]
	for ((k = 1; k <= NODES; k++)); do nats_kill "$k"; done
	t0=$(date +%s)
	for ((k = 1; k <= NODES; k++)); do
		SECONDS=0
		code=$(curl -s -m 15 -o /dev/null -w '%{http_code}' -d '{"f3":"down"}' \
			"http://127.0.0.1:$(node_port "$k")/cluster/f3")
		[ "$code" = 503 ]
		[ "$SECONDS" -le $((CL_PUBLISH_TIMEOUT_S + 1)) ]
	done
	ka1=$(grep -c stillalive "$CL_DIR/f3-1.out" || true)
	sleep $((30 - ($(date +%s) - t0)))
	ka2=$(grep -c stillalive "$CL_DIR/f3-1.out")
	# the streams stayed open: a keepalive a second
	[ $((ka2 - ka1)) -ge 10 ]
	for ((k = 1; k <= NODES; k++)); do nats_start "$k"; done
	t1=$(date +%s)
	_gps_sleep_until 60 probe 1
	echo "publishing again $(($(date +%s) - t1)) s after NATS came back" >&2
	publish f3b 300 3 1 2 3
	# (a publish may find its keep-alive connection closed: status 0, not acknowledged)
	[ "$(acked f3b)" -ge 295 ]
	check f3a f3-1 f3-2 f3-3
	[ "$status" -eq 0 ]
	check f3b f3-1 f3-2 f3-3
	[ "$status" -eq 0 ]
}

@test "fault 5: a node stopped while publishes go on elsewhere: X-Fetch-Since gets what it missed" {
	local since
	since=$(date +%s)
	sleep 1
	node_stop 3
	publish f5 1000 4 1 2
	[ "$(acked f5)" -eq 1000 ]
	node_start 3
	# ready means caught up: a replay at once holds everything
	curl -s -m 3 -H "X-Fetch-Since: $since" "http://127.0.0.1:$(node_port 3)/cluster" \
		>"$CL_DIR/f5-3.out" || true
	curl -s -m 3 -H "X-Fetch-Since: $since" "http://127.0.0.1:$(node_port 1)/cluster" \
		>"$CL_DIR/f5-1.out" || true
	run "$CL_DIR/clustercheck" check --acked "$CL_DIR/f5.acked" --tag f5 \
		"$CL_DIR/f5-1.out" "$CL_DIR/f5-3.out"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(gaps f5-3)" -eq 0 ]
	# and HEAD and gpsctl say it is not behind
	run curl -sI "http://127.0.0.1:$(node_port 3)/"
	[[ $output == *$'X-Cluster-Lag: 0\r'* ]]
	run -0 "$GPS_BUILD/gpsctl" --ring "$(node_ring 3)" status
	[[ $output == *"cluster              connected"* ]]
	[[ $output == *"stream               GITPUBSUB"* ]]
	[[ $output == *"ring lag             0 messages behind the stream"* ]]
}

@test "4.7 across the cluster: an X-Message-Id repeated on other nodes is stored once" {
	local id=idem-$RANDOM$RANDOM c k out
	c=$(pub1 1 idem '{"idem":1}' -H "X-Message-Id: $id")
	[[ $c =~ ^[0-9a-f]{16}-[0-9]+$ ]]
	for k in 2 3; do
		# at once, before node k may have copied it: JetStream's window answers then
		[ "$(pub1 "$k" idem '{"idem":2}' -H "X-Message-Id: $id")" = "$c" ]
	done
	for k in 1 2 3; do
		out=$(curl -s -m 1.5 -H "X-Fetch-Since-Cursor: ${c%-*}-0" \
			"http://127.0.0.1:$(node_port "$k")/cluster/idem" | tr -d '\r' | grep -v stillalive)
		[ "$out" = '{"idem":1}' ]
	done
}

# tok_code K TOPIC [CURL_ARGS...] - the status of a publish on node K from 127.0.0.2, which no
# node trusts
tok_code()
{
	curl -s -m 15 -o /dev/null -w '%{http_code}' --interface 127.0.0.2 -d '{"tok":1}' "${@:3}" \
		"http://127.0.0.1:$(node_port "$1")$2"
}

@test "issue 16 across the cluster: a token publishes on every node from an untrusted address" {
	local k
	sub_start tok-3 3
	for k in 1 2 3; do
		[ "$(tok_code "$k" /cluster/tok/$k -H "Authorization: Bearer $CL_TOKEN")" = 200 ]
		[ "$(tok_code "$k" /cluster/other -H "Authorization: Bearer $CL_TOKEN")" = 403 ]
		[ "$(tok_code "$k" /cluster/tok -H "Authorization: Bearer ${CL_TOKEN}x")" = 401 ]
		[ "$(tok_code "$k" /cluster/tok)" = 403 ]
	done
	# node 3's subscriber has the three accepted ones, from every node
	_gps_sleep_until 10 test "$(grep -c '^{"tok":1}' "$CL_DIR/tok-3.out")" -ge 3
	[ "$(grep -c '^{"tok":1}' "$CL_DIR/tok-3.out")" -eq 3 ]
}

@test "fault 6: the stream deleted and recreated: one gap notice on every node, then on" {
	local k n
	for ((k = 1; k <= NODES; k++)); do sub_start f6-$k "$k"; done
	publish f6a 100 3 1 2 3
	[ "$(acked f6a)" -eq 100 ]
	check f6a f6-1 f6-2 f6-3
	[ "$status" -eq 0 ]
	# delete it with JetStream's API, as `nats stream rm` would; the connection stays until the
	# answer is in (socat's output, read while it is written)
	# shellcheck disable=SC2094
	{
		printf 'CONNECT {"verbose":false}\r\nSUB _cl.r 1\r\n'
		printf 'PUB $JS.API.STREAM.DELETE.GITPUBSUB _cl.r 0\r\n\r\n'
		_gps_sleep_until 10 grep -qs -e '"success"' -e '"error"' "$CL_DIR/f6.delete" || true
	} | timeout 15 socat - "TCP:127.0.0.1:$(<"$CL_DIR/nats2.port")" >"$CL_DIR/f6.delete" || true
	cat "$CL_DIR/f6.delete" >&2
	grep -q '"success":true' "$CL_DIR/f6.delete"
	# the brokers make it again (within a second) and publishing goes on; a publish at once on
	# every node, while some may still copy the old stream, is answered with a cursor of the
	# new one: a replay from it holds what follows, not the message itself after a gap notice
	for ((k = 1; k <= NODES; k++)); do
		_gps_sleep_until 20 publish_head "$k" f6c "{\"f6c\":$k}"
	done
	_gps_sleep_until 20 probe 1
	publish f6b 100 3 1 2 3
	[ "$(acked f6b)" -eq 100 ]
	check f6b f6-1 f6-2 f6-3
	[ "$status" -eq 0 ]
	for ((k = 1; k <= NODES; k++)); do
		n=$(gaps f6-$k)
		echo "node $k: $n gap notices" >&2
		[ "$n" -eq 1 ]
	done
	for ((k = 1; k <= NODES; k++)); do
		n=$(tr -d '\r' <"$CL_DIR/f6c.$k.head" | sed -n 's/^X-Cursor: //p')
		curl -s -m 1 -H "X-Fetch-Since-Cursor: $n" "http://127.0.0.1:$(node_port "$k")/cluster/f6c" \
			>"$CL_DIR/f6c.$k.replay" || true
		echo "node $k: published at once after the deletion, cursor $n; replay from it:" \
			"$(tr '\n' ' ' <"$CL_DIR/f6c.$k.replay")" >&2
		run ! grep -q -e "{\"f6c\":$k}" -e '"gap"' "$CL_DIR/f6c.$k.replay"
	done
}
