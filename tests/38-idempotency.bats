#!/usr/bin/env bats
#
# Publish idempotency (README "Publishing exactly once"): X-Message-Id. A repeat
# of an id within [History] messageIdWindow is answered 200 with the original message's
# X-Timestamp (and X-Cursor) and is not stored again: one delivery to subscribers, one more
# message in the HEAD counters. It holds across a SIGKILLed broker (the ids are in the ring),
# for concurrent repeats, and for the hook's retries from its spool. Invalid ids get 400.
#
# One service for the file, with the default window (10 minutes); the last tests restart it
# with a 2 s window and with the window off. Each test uses topics of its own.

bats_require_minimum_version 1.5.0

load lib

# X-Timestamp has whole seconds: wait this long before a repeat, so that a message stored again
# would get another X-Timestamp than the original.
NEXT_SECOND_S=1.1
# The short window of the expiry test, and how long it waits past it.
SHORT_WINDOW_S=1
PAST_WINDOW_S=1.5
# Concurrent publishers of one id.
CONCURRENT=8
# After the expected messages arrived, how long an unexpected extra one has to show up.
EXTRA_GRACE_S=0.3
# The hook's time budget (gitpubsub.timeout).
HOOK_TIMEOUT_S=5

setup_file()
{
	gps_start
}

teardown_file()
{
	gps_stop
}

teardown()
{
	gps_unsubscribe_all
}

# publish_id TOPIC JSON ID [CURL_ARGS...] - publish with X-Message-Id: ID; prints the status.
publish_id()
{
	local topic=$1 json=$2 id=$3
	shift 3
	gps_publish "$topic" "$json" -H "X-Message-Id: $id" "$@"
}

# held - the number of messages in the ring, from a trusted HEAD (PROTOCOL 6.1).
held()
{
	gps_stat X-Messages
}

# last_ts / last_cursor - X-Timestamp / X-Cursor of the last gps_publish ("" if absent).
last_ts()
{
	gps_header "$GPS_LAST_HEADERS" X-Timestamp || true
}

last_cursor()
{
	gps_header "$GPS_LAST_HEADERS" X-Cursor || true
}

# expect_stream NAME JSON... - subscriber NAME received exactly these messages, in order (the
# caller publishes a sentinel last, so anything delivered wrongly shows up before it).
expect_stream()
{
	local name=$1 want got
	shift
	gps_wait_messages "$name" $# || return 1
	sleep "$EXTRA_GRACE_S"
	got=$(gps_messages "$name")
	want=$(printf '%s\n' "$@")
	if [[ $got != "$want" ]]; then
		printf 'subscriber %s: expected\n%s\ngot\n%s\n' "$name" "$want" "$got" >&2
		return 1
	fi
}

# raw_publish TOPIC JSON HEADER_LINES... - a raw POST with exactly these header lines (each
# without CRLF); prints the whole response (the server closes after an error).
raw_publish()
{
	local topic=$1 json=$2 req line
	shift 2
	req="POST $topic HTTP/1.1"$'\r\n'"Host: 127.0.0.1:$GPS_PORT"$'\r\n'
	req+="Content-Length: ${#json}"$'\r\n'"Connection: close"$'\r\n'
	for line in "$@"; do
		req+="$line"$'\r\n'
	done
	req+=$'\r\n'"$json"
	gps_raw 127.0.0.1 "$GPS_PORT" "$req" 3
}

@test "4.7: a repeat of an id is answered 200 with the original X-Timestamp and X-Cursor, and stored once" {
	local before ts cursor
	gps_subscribe sub /idem/repeat
	before=$(held)

	[[ $(publish_id /idem/repeat '{"n":1}' repeat-1) == 200 ]]
	ts=$(last_ts)
	cursor=$(last_cursor)
	[[ $ts =~ ^[0-9]+$ ]]
	sleep "$NEXT_SECOND_S"

	[[ $(publish_id /idem/repeat '{"n":1}' repeat-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]
	[[ $(last_cursor) == "$cursor" ]]
	[[ $(cat "$GPS_LAST_BODY") == $'Message sent!\r' ]]
	# the id names the message: a repeat with other bytes is the same message
	[[ $(publish_id /idem/repeat '{"n":2}' repeat-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]

	[[ $(gps_publish /idem/repeat '{"n":3}') == 200 ]]
	(($(last_ts) > ts))
	expect_stream sub '{"n":1}' '{"n":3}'
	(($(held) == before + 2))
}

@test "4.7: an id is scoped to the whole service, not to one topic" {
	local before ts
	gps_subscribe other /idem/scope/b
	before=$(held)
	[[ $(publish_id /idem/scope/a '{"s":1}' scope-1) == 200 ]]
	ts=$(last_ts)
	[[ $(publish_id /idem/scope/b '{"s":2}' scope-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]
	[[ $(gps_publish /idem/scope/b '{"s":3}') == 200 ]]
	expect_stream other '{"s":3}'
	(($(held) == before + 2))
}

@test "4.7: ids are compared byte for byte, and messages without one are never deduplicated" {
	local before
	gps_subscribe sub /idem/bytes
	before=$(held)
	[[ $(publish_id /idem/bytes '{"b":1}' Case-1) == 200 ]]
	[[ $(publish_id /idem/bytes '{"b":2}' case-1) == 200 ]]
	[[ $(publish_id /idem/bytes '{"b":3}' case-1x) == 200 ]]
	[[ $(gps_publish /idem/bytes '{"b":4}') == 200 ]]
	[[ $(gps_publish /idem/bytes '{"b":4}') == 200 ]]
	expect_stream sub '{"b":1}' '{"b":2}' '{"b":3}' '{"b":4}' '{"b":4}'
	(($(held) == before + 5))
}

@test "4.7: an invalid X-Message-Id, or several that differ, get 400 and nothing is stored" {
	local before f id128 id129 value
	before=$(held)
	f=$BATS_TEST_TMPDIR/resp
	id128=$(printf 'x%.0s' {1..128})
	id129=${id128}x
	for value in "" "a b" "$id129" $'caf\xc3\xa9' 'a,b c'; do
		raw_publish /idem/bad '{"bad":1}' "X-Message-Id: $value" >"$f"
		gps_check_error "$f" 400 || {
			echo "X-Message-Id: '$value'"
			cat -A "$f"
			return 1
		}
		grep -q 'X-Message-Id' "$f" || {
			echo "the reason does not name the header: $(cat "$f")"
			return 1
		}
	done
	# a control byte: refused by the header parser already (PROTOCOL 7.2), a 400 all the same
	raw_publish /idem/bad '{"bad":2}' $'X-Message-Id: a\x7fb' >"$f"
	gps_check_error "$f" 400
	raw_publish /idem/bad '{"bad":3}' "X-Message-Id: one" "x-message-id: two" >"$f"
	gps_check_error "$f" 400
	grep -q 'several differing X-Message-Id' "$f"
	(($(held) == before))

	# the limits themselves are fine: 128 bytes, the extremes of visible ASCII, a repeated
	# header with one value, and optional whitespace around the value
	raw_publish /idem/bad '{"good":1}' "X-Message-Id: $id128" >"$f"
	[[ $(gps_status "$f") == 200 ]]
	raw_publish /idem/bad '{"good":2}' 'X-Message-Id: !"#,~' >"$f"
	[[ $(gps_status "$f") == 200 ]]
	raw_publish /idem/bad '{"good":3}' "X-Message-Id: same" "X-MESSAGE-ID:same " >"$f"
	[[ $(gps_status "$f") == 200 ]]
	raw_publish /idem/bad '{"good":4}' "X-Message-Id:   same" >"$f"
	[[ $(gps_status "$f") == 200 ]]
	(($(held) == before + 3))
}

@test "4.7: concurrent publishes of one id: exactly one is stored, all get 200 with the same X-Timestamp" {
	local before k pids=() out=$BATS_TEST_TMPDIR
	gps_subscribe sub /idem/race
	before=$(held)
	for ((k = 0; k < CONCURRENT; k++)); do
		curl -sS --max-time "$GPS_CURL_MAX_TIME" -o /dev/null -D "$out/head-$k" \
			-w '%{http_code}\n' -H 'X-Message-Id: race-1' --data-binary "{\"race\":$k}" \
			"$GPS_URL/idem/race" >"$out/code-$k" 3>&- &
		pids+=($!)
	done
	gps_wait_pids 30 "${pids[@]}"
	for ((k = 0; k < CONCURRENT; k++)); do
		[[ $(<"$out/code-$k") == 200 ]] || {
			echo "publisher $k: status $(<"$out/code-$k")"
			return 1
		}
		gps_header "$out/head-$k" X-Timestamp >>"$out/stamps"
	done
	(($(wc -l <"$out/stamps") == CONCURRENT))
	(($(sort -u "$out/stamps" | wc -l) == 1))
	[[ $(gps_publish /idem/race '{"race":"end"}') == 200 ]]
	gps_wait_messages sub 2
	sleep "$EXTRA_GRACE_S"
	run -0 gps_messages sub
	[[ ${#lines[@]} -eq 2 && ${lines[0]} =~ ^\{\"race\":[0-9]+\}$ && ${lines[1]} == '{"race":"end"}' ]]
	(($(held) == before + 2))
}

@test "4.7: a broker SIGKILLed between a publish and its retry still answers the retry from the ring" {
	local before ts cursor
	gps_subscribe sub /idem/crash
	before=$(held)
	[[ $(publish_id /idem/crash '{"k":1}' crash-1) == 200 ]]
	ts=$(last_ts)
	cursor=$(last_cursor)
	sleep "$NEXT_SECOND_S"
	run -0 gps_kill_broker KILL
	[[ $(publish_id /idem/crash '{"k":1}' crash-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]
	[[ $(last_cursor) == "$cursor" ]]
	# and again after a clean restart
	run -0 gps_kill_broker TERM
	[[ $(publish_id /idem/crash '{"k":1}' crash-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]
	[[ $(gps_publish /idem/crash '{"k":2}') == 200 ]]
	expect_stream sub '{"k":1}' '{"k":2}'
	(($(held) == before + 2))
	# the ring with ids in its records is consistent, and gpsctl shows the messages without them
	run -0 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" check
	run -0 "$GPS_BUILD/gpsctl" --ring "$GPS_RING" dump /idem/crash
	[[ $output == *'{"k":1}'* && $output != *crash-1* ]]
}

@test "4.7: a client that gave up before the answer retries safely" {
	local before ts
	gps_subscribe sub /idem/gaveup
	before=$(held)
	# send the request and close at once, without reading the answer
	printf 'POST /idem/gaveup HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nX-Message-Id: gaveup-1\r\n\r\n{"g":1}' |
		timeout 5 socat -u - "TCP4:127.0.0.1:$GPS_PORT"
	gps_wait_messages sub 1
	[[ $(publish_id /idem/gaveup '{"g":1}' gaveup-1) == 200 ]]
	ts=$(last_ts)
	[[ $(publish_id /idem/gaveup '{"g":1}' gaveup-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]
	[[ $(gps_publish /idem/gaveup '{"g":2}') == 200 ]]
	expect_stream sub '{"g":1}' '{"g":2}'
	(($(held) == before + 2))
}

@test "4.7: the hook's retry from its spool publishes each message once" {
	local w=$BATS_FILE_TMPDIR bare before c k files
	bare=$w/proj.git
	export HOME=$w GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$w/gitconfig
	unset GITPUBSUB_URL GITPUBSUB_TIMEOUT GITPUBSUB_MAXCOMMITS GIT_DIR GIT_WORK_TREE
	printf '[user]\n\tname = Ann Author\n\temail = ann@example.org\n' >"$GIT_CONFIG_GLOBAL"
	git init -q --bare -b main "$bare"
	git -C "$bare" config gitpubsub.url "$GPS_URL/json/git/{project}"
	git -C "$bare" config gitpubsub.timeout "$HOOK_TIMEOUT_S"
	c=$(git -C "$bare" commit-tree -m "Root" "$(git -C "$bare" mktree </dev/null)")
	git -C "$bare" update-ref refs/heads/main "$c"
	for ((k = 1; k <= 3; k++)); do
		c=$(git -C "$bare" commit-tree -p "$c" -m "Spooled $k" "$c^{tree}")
	done
	gps_subscribe sub /json/git/proj.git
	before=$(held)

	# queued with the server unreachable (port 1 refuses)
	run -0 env -C "$bare" GITPUBSUB_URL=http://127.0.0.1:1/json/git/proj.git \
		"$GPS_BUILD/gitpubsub-hook" "$(git -C "$bare" rev-parse main)" "$c" refs/heads/main
	mapfile -t files < <(find "$bare/gitpubsub/spool" -maxdepth 1 -name '*.json' | sort)
	((${#files[@]} == 3))
	cp -p "${files[@]}" "$w/"

	run -0 env -C "$bare" "$GPS_BUILD/gitpubsub-hook" --flush
	gps_wait_messages sub 3
	[[ -z $(find "$bare/gitpubsub/spool" -maxdepth 1 -name '*.json') ]]

	# a hook killed after the server's 200s but before removing the files: they come back
	for f in "${files[@]}"; do
		cp -p "$w/${f##*/}" "$f"
	done
	run -0 env -C "$bare" "$GPS_BUILD/gitpubsub-hook" --flush
	[[ -z $(find "$bare/gitpubsub/spool" -maxdepth 1 -name '*.json') ]]
	sleep "$EXTRA_GRACE_S"
	run -0 gps_messages sub
	((${#lines[@]} == 3))
	[[ $(printf '%s\n' "${lines[@]}" | jq -r .commit.log) == $'Spooled 1\nSpooled 2\nSpooled 3' ]]
	(($(held) == before + 3))
}

@test "4.7: [History] messageIdWindow: a repeat after the window is stored again" {
	local before ts
	gps_stop
	gps_start "[History]" "messageIdWindow: ${SHORT_WINDOW_S}s"
	gps_subscribe sub /idem/window
	before=$(held)
	[[ $(publish_id /idem/window '{"w":1}' window-1) == 200 ]]
	ts=$(last_ts)
	[[ $(publish_id /idem/window '{"w":1}' window-1) == 200 ]]
	[[ $(last_ts) == "$ts" ]]
	sleep "$PAST_WINDOW_S"
	[[ $(publish_id /idem/window '{"w":1}' window-1) == 200 ]]
	(($(last_ts) >= ts + SHORT_WINDOW_S))
	expect_stream sub '{"w":1}' '{"w":1}'
	(($(held) == before + 2))
}

@test "4.7: messageIdWindow 0 turns deduplication off, not the syntax check" {
	local before f
	gps_stop
	gps_start "[History]" "messageIdWindow: 0"
	gps_subscribe sub /idem/off
	before=$(held)
	[[ $(publish_id /idem/off '{"o":1}' off-1) == 200 ]]
	[[ $(publish_id /idem/off '{"o":1}' off-1) == 200 ]]
	expect_stream sub '{"o":1}' '{"o":1}'
	(($(held) == before + 2))
	f=$BATS_TEST_TMPDIR/resp
	raw_publish /idem/off '{"o":2}' "X-Message-Id: a b" >"$f"
	gps_check_error "$f" 400
}
