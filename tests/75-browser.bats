#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# The live page (README 3.11) in a real browser. Headless Chromium (Debian's /usr/bin/chromium,
# driven by playwright-core from tests/browser) opens $GPS_URL/json/git/demo, the page goes live
# over EventSource, a commit in the hook's format is published and shown; then the frontend
# serving the page's stream is killed, five more commits are published while the page waits
# to reconnect, and the page must end with every commit exactly once. Last, the stream is
# killed again and the page kept away until its cursor has left the (small) history ring: it
# must show one gap notice and then what is still held.
#
# Then README 3.13 in the browser: tests/browser/no-cors.mjs serves a page from another origin
# (http://localhost:<another port>) whose script sends a no-cors fetch POST to the service on
# 127.0.0.1, a trusted address: refused with 403, nothing stored; the same page publishes to an
# instance whose publishOrigins lists its origin (the control: the browser does reach it).
#
# The live page's browser run happens once, in setup_file: tests/browser/live-page.mjs does the steps and
# writes a JSON summary, tests/browser/kill-stream finds the frontend to kill. Each test checks
# one part of the summary. Needs node, chromium and `npm ci` in tests/browser (scripts/install-deps
# check does all three).

bats_require_minimum_version 1.5.0

load lib
load lib-http

BROWSER_DIR=$GPS_REPO/tests/browser
# The topic the page is opened on, as the hook publishes it (PROTOCOL 10.1).
TOPIC=/json/git/demo
# Bound of each wait inside the browser script, and of the whole script.
BROWSER_WAIT_MS=15000
BROWSER_TIMEOUT=120
# The gap check: a 64 KiB ring, and 8 messages of 16 KiB published while the page is away, so
# the cursor it resumes from is no longer held.
RING_SIZE=64K
GAP_FILLERS=8
GAP_BYTES=16384

setup_file()
{
	local out=$BATS_FILE_TMPDIR/browser
	export BROWSER_RESULT=$out.json BROWSER_LOG=$out.log
	export BROWSER_SHOT=$GPS_BUILD/test-artifacts/live-page.png
	rm -f "$BROWSER_RESULT" "$BROWSER_SHOT"
	# scripts/install-deps check installs all three.
	[[ -x /usr/bin/chromium ]] || _gps_fail "no /usr/bin/chromium" || return 1
	command -v node >/dev/null || _gps_fail "no node" || return 1
	[[ -d $BROWSER_DIR/node_modules/playwright-core ]] ||
		_gps_fail "no playwright-core: run npm ci in tests/browser" || return 1
	gps_start "[History]" "ringSize: $RING_SIZE"
	BROWSER_RC=0
	GPS_PAGE_URL=$(gps_url "$TOPIC") GPS_KILL_CMD="$BROWSER_DIR/kill-stream $GPS_PORT" \
		GPS_SCREENSHOT=$BROWSER_SHOT GPS_RESULT=$BROWSER_RESULT \
		GPS_WAIT_MS=$BROWSER_WAIT_MS GPS_GAP_FILLERS=$GAP_FILLERS GPS_GAP_BYTES=$GAP_BYTES \
		timeout -k 5 "$BROWSER_TIMEOUT" node "$BROWSER_DIR/live-page.mjs" \
		</dev/null >"$BROWSER_LOG" 2>&1 3>&- || BROWSER_RC=$?
	export BROWSER_RC
}

teardown_file()
{
	gps_stop
}

teardown()
{
	http_unsubscribe_all
	http_instance_stop_all
}

# result JQ_FILTER - print the filter applied to the browser run's summary (raw strings).
result()
{
	jq -r "$1" "$BROWSER_RESULT"
}

# browser_ran - the browser run left a summary; otherwise show its log and fail.
browser_ran()
{
	[[ -s $BROWSER_RESULT ]] && return 0
	echo "the browser run left no summary (exit status $BROWSER_RC); its log:" >&2
	cat "$BROWSER_LOG" >&2
	return 1
}

# show_run - print the browser run's log and failure reason (bats shows it when a test fails).
show_run()
{
	echo "--- browser run (exit status $BROWSER_RC):"
	cat "$BROWSER_LOG"
	echo "--- error: $(result '.error // "none"')"
}

@test "7: a browser asking for text/html gets frontend/page.html as is, under the CSP" {
	run -0 curl -sS --max-time 5 -H 'Accept: text/html' -D "$BATS_TEST_TMPDIR/head" \
		-o "$BATS_TEST_TMPDIR/page" "$(gps_url "$TOPIC")"
	[[ $(gps_status "$BATS_TEST_TMPDIR/head") == 200 ]]
	[[ $(gps_header "$BATS_TEST_TMPDIR/head" Content-Type) == text/html* ]]
	cmp "$GPS_REPO/frontend/page.html" "$BATS_TEST_TMPDIR/page"
	csp=$(gps_header "$BATS_TEST_TMPDIR/head" Content-Security-Policy)
	[[ $csp == *"default-src 'none'"* && $csp == *"connect-src 'self'"* ]]
}

@test "7: the page, opened in Chromium, subscribes with EventSource and goes live" {
	browser_ran
	show_run
	[[ $(result .status) == 200 ]]
	[[ $(result .content_type) == text/html* ]]
	[[ $(result .csp) == *"default-src 'none'"* ]]
	[[ $(result .page.path) == "$TOPIC" ]]
	# The first state change is to live; nothing the page did broke the CSP or threw.
	[[ $(result '.page.states[0]') == live ]]
	[[ $(result '.page.violations | length') == 0 ]]
	[[ $(result '.errors | length') == 0 ]]
	# The stream was asked for on the same path, as text/event-stream, with no cursor yet.
	[[ $(result '.streams[0].url') == "$(gps_url "$TOPIC")" ]]
	[[ $(result '.streams[0].accept') == text/event-stream ]]
	[[ $(result '.streams[0].last_event_id') == null ]]
}

@test "7: a published commit is shown: project, ref, short hash, author, subject, files, time" {
	browser_ran
	show_run
	[[ $(result '.steps | index("first commit shown")') != null ]]
	hash=$(result .first.hash)
	[[ $hash =~ ^[0-9a-f]{7}$ ]]
	[[ $(result .first.shown.cls) == "msg commit" ]]
	[[ $(result .first.shown.hash) == "$hash" ]]
	[[ $(result .first.shown.subject) == "Frontend: serve the live page to browsers" ]]
	[[ $(result .first.shown.project) == demo ]]
	[[ $(result .first.shown.ref) == refs/heads/main ]]
	[[ $(result .first.shown.author) == "Ada Lovelace" ]]
	[[ $(result '.first.shown.files | join(" ")') == "frontend/page.html frontend/stream.c" ]]
	[[ $(result .first.shown.time) =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]]
	# The page's cursor for it is the one the publish answered with (X-Cursor).
	[[ -n $(result '.first.cursor // empty') ]]
	[[ $(result .first.shown.cursor) == "$(result .first.cursor)" ]]
}

@test "7: other JSON is shown formatted; markup in a commit is shown as text, never parsed" {
	browser_ran
	show_run
	[[ $(result '[.page.msgs[] | select(.cls == "msg json")] | length') == 1 ]]
	[[ $(result '.page.msgs[] | select(.cls == "msg json") | .pre | fromjson | .note') == \
		"not a commit" ]]
	# Formatted: over several lines.
	n=$(result '.page.msgs[] | select(.cls == "msg json") | .pre | split("\n") | length')
	((n > 1))
	[[ $(result '.page.msgs[] | select(.author == "Mallory") | .subject') == \
		"<img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>" ]]
	[[ $(result .page.imgs) == 0 ]]
	[[ $(result .page.title) == "GitPubSub $TOPIC" ]]
}

@test "7: the stream's frontend killed, the page resumes by Last-Event-ID: every commit once" {
	browser_ran
	show_run
	[[ $(result .ok) == true ]]
	# Something was killed, the page noticed, and the 5 commits went out while it was away.
	[[ $(result .kill) =~ ^[0-9]+:[0-9]+ ]]
	[[ $(result .published_while) == reconnecting ]]
	[[ $(result '.page.states | join(" ")') == "live reconnecting live" ]]
	[[ $(result .page.state) == live ]]
	# The browser reconnected once, resuming exactly after the last message it had.
	[[ $(result '.streams | length') == 2 ]]
	[[ $(result '.streams[1].last_event_id') == "$(result .note_cursor)" ]]
	# Every commit exactly once, newest first, in publish order; no cursor twice.
	[[ $(result '.counts | length') == 6 ]]
	[[ $(result '[.counts[]] | unique | join(" ")') == 1 ]]
	want=$(result '[.first.hash, .more[].hash] | reverse | join(" ")')
	shown=$(result '[.page.msgs[] | select(.cls == "msg commit") | .hash] | join(" ")')
	[[ $shown == "$want" ]]
	[[ $(result '[.page.msgs[].cursor] | length == (unique | length)') == true ]]
	# What the page shows for each commit is the cursor its publish was answered with.
	[[ $(result '[.page.msgs[] | select(.cls == "msg commit") | .cursor] | join(" ")') == \
		"$(result '[.first.cursor, .more[].cursor] | reverse | join(" ")')" ]]
}

@test "7: 3.4: back after its cursor left the history, the page shows a gap notice, then the rest" {
	browser_ran
	show_run
	[[ $(result .gap.ok) == true ]]
	[[ $(result .gap.kill) =~ ^[0-9]+:[0-9]+ ]]
	# One notice; it counts exactly the fillers not shown; the rest are shown in order.
	[[ $(result '.gap.gaps | length') == 1 ]]
	missed=$(result .gap.missed)
	((missed > 0 && missed < GAP_FILLERS))
	want=$(seq "$GAP_FILLERS" -1 $((missed + 1)) | paste -sd ' ')
	[[ $(result '.gap.fillers | join(" ")') == "$want" ]]
	[[ $(result .gap.streams) == 3 ]]
}

@test "7: a 1000x700 screenshot of the page is saved in GPS_BUILD/test-artifacts" {
	browser_ran
	[[ -s $BROWSER_SHOT ]]
	# PNG signature, then the IHDR chunk's width and height (big-endian) at bytes 16-23.
	[[ $(head -c 8 "$BROWSER_SHOT" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]
	[[ $(od -An -tu1 -j 16 -N 8 "$BROWSER_SHOT" | tr -s ' ' | sed 's/^ //') == \
		"0 0 3 232 0 0 2 188" ]]
}

# published RING - print the count of messages appended to RING since its creation (gpsctl).
published()
{
	"$GPS_BUILD/gpsctl" --ring "$1" status | awk '$1 == "published" { print $2; exit }'
}

@test "3.13: in Chromium, a page of another origin POSTs with a no-cors fetch: 403, nothing stored" {
	local page_port ok_port out=$BATS_TEST_TMPDIR/no-cors ok_ring before after t0 origin
	page_port=$(free_port)
	origin=http://localhost:$page_port
	# the control: an instance that lists the page's origin in publishOrigins
	http_instance_start ok 127.0.0.1:PORT -- "[Clients]" "publishOrigins: $origin"
	ok_port=$(http_instance_port ok)
	ok_ring=$(<"$BATS_FILE_TMPDIR/inst-ok/runner.ring")
	before=$(published "$GPS_RING")
	t0=$(gps_now)
	gps_subscribe live /nocors
	run timeout -k 5 60 env GPS_TARGETS="$(gps_url /nocors) http://127.0.0.1:$ok_port/nocors" \
		GPS_PAGE_PORT="$page_port" GPS_RESULT="$out.json" GPS_WAIT_MS="$BROWSER_WAIT_MS" \
		node "$BROWSER_DIR/no-cors.mjs"
	echo "--- no-cors run (exit status $status):"
	echo "$output"
	[[ -s $out.json ]] && cat "$out.json"
	[ "$status" -eq 0 ]
	jq -r '.network[] | "# \(.method) \(.url) Origin: \(.origin),"
		+ " Sec-Fetch-Site: \(.sec_fetch_site), Sec-Fetch-Mode: \(.sec_fetch_mode):"
		+ " \(.status) \(.body // "" | gsub("[\r\n]"; ""))"' "$out.json" >&3
	# The page's fetch settled as no-cors fetches do: an opaque answer it cannot read.
	[[ $(jq -r '.fetches[0].type' "$out.json") == opaque ]]
	# Chromium sent the page's origin; the service answered 403 with the reason.
	[[ $(jq -r '.network[0].origin' "$out.json") == "$origin" ]]
	[[ $(jq -r '.network[0].sec_fetch_mode' "$out.json") == no-cors ]]
	[[ $(jq -r '.network[0].status' "$out.json") == 403 ]]
	[[ $(jq -r '.network[0].body' "$out.json") == *publishOrigins* ]]
	grep -q "403 publishes from web pages are refused" "$GPS_LOG"
	# Nothing stored: the ring's count did not move, and neither the live subscriber nor a
	# replay from before the run got anything.
	after=$(published "$GPS_RING")
	gps_subscribe replay /nocors -H "X-Fetch-Since: $t0"
	sleep 1
	echo "# service: messages published $before before the page, $after after; live" \
		"subscriber got $(gps_messages live | grep -c .), replay $(gps_messages replay | grep -c .)" >&3
	[ "$before" = "$after" ]
	[ -z "$(gps_messages live)" ]
	[ -z "$(gps_messages replay)" ]
	# The control: the same page's fetch to an instance listing its origin is stored.
	[[ $(jq -r '.network[1].status' "$out.json") == 200 ]]
	echo "# control instance with publishOrigins: $origin: $(published "$ok_ring") message stored" >&3
	[ "$(published "$ok_ring")" = 1 ]
}
