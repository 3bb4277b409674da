#!/usr/bin/env bats
#
# gitpubsub-hook (PROTOCOL 10, README "The post-receive hook"), end to end. A bare repository with
# the hook installed as hooks/post-receive, a clone that pushes to it, and a subscriber on the real
# service; each scenario of the issue's Tests paragraph, in its order, checks that the subscriber
# receives exactly the expected messages, field by field, in order. Then the spool (server down,
# server back), the three-argument compat call, and a few more properties of the hook.
#
# The tests of this file build on each other (one repository, one subscriber): run them in order.

bats_require_minimum_version 1.5.0

load lib

# The hook's time budget in these tests (gitpubsub.timeout); a push with the server down must end
# within it, plus GIT_SLACK_MS for git itself.
HOOK_TIMEOUT_S=3
GIT_SLACK_MS=1500
# Upper bound for the subscriber to see a push's messages (they are stored before the push ends).
MSG_WAIT_S=10
# After the expected messages arrived, how long an unexpected extra one has to show up.
EXTRA_GRACE_S=0.3
# The fields of a commit message, in order: the original hook's (PROTOCOL 10).
COMMIT_KEYS='"repository","project","ref","hash","shortHash","author","email","date","log","files","changes"'

setup_file()
{
	local w=$BATS_FILE_TMPDIR
	export W=$w BARE=$w/proj.git CLONE=$w/clone HOOK=$GPS_BUILD/gitpubsub-hook
	# Only this file's settings: no user or system git config, no inherited hook settings.
	export HOME=$w GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=$w/gitconfig
	unset GITPUBSUB_URL GITPUBSUB_TIMEOUT GITPUBSUB_MAXCOMMITS GIT_DIR GIT_WORK_TREE
	printf '[user]\n\tname = Ann Author\n\temail = ann@example.org\n' >"$GIT_CONFIG_GLOBAL"
	[[ -x $HOOK ]] || {
		echo "setup_file: $HOOK not built" >&2
		return 1
	}

	gps_start || return 1
	echo "$GPS_URL" >"$w/url"

	git init -q --bare -b main "$BARE"
	ln -s "$HOOK" "$BARE/hooks/post-receive"
	git -C "$BARE" config gitpubsub.url "$GPS_URL/json/git/{project}"
	git -C "$BARE" config gitpubsub.timeout "$HOOK_TIMEOUT_S"
	git clone -q "$BARE" "$CLONE" 2>/dev/null
	echo 0 >"$w/clock"
	echo 0 >"$w/seen"
	gps_subscribe sub /json/git/proj.git || return 1
}

teardown_file()
{
	gps_stop
}

# The service is restarted on another port halfway (a test's exports die with it): the current
# URL is kept in a file.
setup()
{
	GPS_URL=$(<"$W/url")
	GPS_PORT=${GPS_URL##*:}
	export GPS_URL GPS_PORT
}

# gitc ARGS...: git in the clone.
gitc()
{
	git -C "$CLONE" "$@"
}

# commit FILE [MESSAGE]: a commit in the clone writing FILE, at its own fixed date (UTC+2).
commit()
{
	local file=$1 msg=${2:-"Change $1"} n when
	n=$(($(<"$W/clock") + 1))
	echo "$n" >"$W/clock"
	when="@$((1700000000 + n * 60)) +0200"
	echo "$n" >"$CLONE/$file"
	gitc add "$file"
	GIT_AUTHOR_DATE=$when GIT_COMMITTER_DATE=$when gitc commit -q -m "$msg"
}

# push ARGS...: git push from the clone; fails the test if the push fails.
push()
{
	gitc push -q origin "$@"
}

# expect_messages N: the subscriber receives exactly N new messages, which are then in $W/new,
# one per line. Waits (bounded) for N, then EXTRA_GRACE_S for any unexpected extra one.
expect_messages()
{
	local n=$1 seen total
	seen=$(<"$W/seen")
	if ((n > 0)); then
		gps_wait_messages sub $((seen + n)) "$MSG_WAIT_S" || total=$(gps_count_messages sub)
	fi
	if [[ -z ${total:-} ]]; then
		sleep "$EXTRA_GRACE_S"
		total=$(gps_count_messages sub) || return 1
	fi
	if ((total != seen + n)); then
		echo "expected $n new messages, got $((total - seen)):"
		gps_messages sub | tail -n +$((seen + 1))
		# start the next test from here, so one failure does not fail every test after it
		echo "$total" >"$W/seen"
		return 1
	fi
	gps_messages sub | tail -n +$((seen + 1)) >"$W/new"
	echo "$total" >"$W/seen"
}

# msg I: the I-th new message (from 1).
msg()
{
	sed -n "${1}p" "$W/new"
}

# expect_json I FILTER WANT: jq -c FILTER of message I is exactly WANT.
expect_json()
{
	local got
	got=$(msg "$1" | jq -c "$2") || {
		echo "message $1 is not JSON: $(msg "$1")"
		return 1
	}
	if [[ $got != "$3" ]]; then
		printf 'message %s, %s:\n  got  %s\n  want %s\n' "$1" "$2" "$got" "$3"
		return 1
	fi
}

# expect_str I FIELD WANT: the string .commit.FIELD of message I is exactly WANT.
expect_str()
{
	local got
	got=$(msg "$1" | jq -j ".commit.$2") || return 1
	if [[ $got != "$3" ]]; then
		printf 'message %s, .commit.%s:\n  got  %q\n  want %q\n' "$1" "$2" "$got" "$3"
		return 1
	fi
}

# expect_common I REF HASH: the fields every message has, from PROTOCOL 10.
expect_common()
{
	expect_json "$1" 'keys' '["commit"]' &&
		expect_str "$1" repository git &&
		expect_str "$1" project proj.git &&
		expect_str "$1" ref "$2" &&
		expect_str "$1" hash "$3" &&
		expect_str "$1" shortHash "${3:0:7}"
}

# expect_commit I HASH REF FILES CHANGES [MERGE]: message I is commit HASH of REF, every field
# compared with what git says about the commit in the clone.
expect_commit()
{
	local i=$1 hash=$2 ref=$3 files=$4 changes=$5 merge=${6:-} keys=$COMMIT_KEYS
	[[ -n $merge ]] && keys+=',"merge"'
	expect_json "$i" '.commit | keys_unsorted' "[$keys]" &&
		expect_common "$i" "$ref" "$hash" &&
		expect_str "$i" author "$(gitc log -1 --format=%an "$hash")" &&
		expect_str "$i" email "$(gitc log -1 --format=%ae "$hash")" &&
		expect_str "$i" date "$(gitc log -1 --date=default --format=%ad "$hash")" &&
		expect_str "$i" log "$(gitc log -1 --format=%B "$hash")" &&
		expect_json "$i" .commit.files "$files" &&
		expect_str "$i" changes "$changes" &&
		{ [[ -z $merge ]] || expect_str "$i" merge "$merge"; }
}

# spool_files: the spool's message files, oldest first.
spool_files()
{
	find "$BARE/gitpubsub/spool" -maxdepth 1 -name '*.json' 2>/dev/null | sort
}

# dangling N: N new commits in the bare repository that no ref reaches, on top of main; prints
# the newest. Lets a test run the hook by hand on commits no push has published.
dangling()
{
	local c i
	c=$(git -C "$BARE" rev-parse main)
	for ((i = 1; i <= $1; i++)); do
		c=$(git -C "$BARE" commit-tree -p "$c" -m "Dangling $i" "$c^{tree}")
	done
	echo "$c"
}

@test "a new branch publishes its commit" {
	commit a.txt "First commit"
	push main
	expect_messages 1
	expect_commit 1 "$(gitc rev-parse main)" refs/heads/main '["a.txt"]' a.txt
}

@test "a fast-forward of 3 commits publishes them oldest first" {
	commit b.txt "Second"
	commit c.txt "Third"
	commit d.txt $'Fourth\n\nWith a body\nof two lines.'
	push main
	expect_messages 3
	expect_commit 1 "$(gitc rev-parse main~2)" refs/heads/main '["b.txt"]' b.txt
	expect_commit 2 "$(gitc rev-parse main~1)" refs/heads/main '["c.txt"]' c.txt
	expect_commit 3 "$(gitc rev-parse main)" refs/heads/main '["d.txt"]' d.txt
}

@test "a merge publishes both sides and the merge, with its parents" {
	local old order merge p1 p2
	old=$(gitc rev-parse main)
	gitc checkout -q -b topic
	commit topic.txt "Topic work"
	gitc checkout -q main
	commit main.txt "Main work"
	GIT_AUTHOR_DATE="@1800000000 +0000" GIT_COMMITTER_DATE="@1800000000 +0000" \
		gitc merge -q --no-ff -m "Merge branch 'topic'" topic
	push main
	expect_messages 3

	merge=$(gitc rev-parse main)
	p1=$(gitc rev-parse main^1)
	p2=$(gitc rev-parse main^2)
	# oldest first: parents before children, in git's topological order
	mapfile -t order < <(gitc rev-list --topo-order --reverse "$old..$merge")
	[[ ${#order[@]} -eq 3 && ${order[2]} == "$merge" ]]
	for i in 0 1; do
		if [[ ${order[i]} == "$p1" ]]; then
			expect_commit $((i + 1)) "$p1" refs/heads/main '["main.txt"]' main.txt
		else
			[[ ${order[i]} == "$p2" ]]
			expect_commit $((i + 1)) "$p2" refs/heads/main '["topic.txt"]' topic.txt
		fi
	done
	# a merge's files are what it brought to the branch: its diff against the first parent
	expect_commit 3 "$merge" refs/heads/main '["topic.txt"]' topic.txt "${p1:0:7} ${p2:0:7}"
}

@test "a force-push publishes only the commits no ref had" {
	gitc reset -q --hard main^1
	commit e.txt "Rewritten history"
	gitc push -q --force origin main
	expect_messages 1
	expect_commit 1 "$(gitc rev-parse main)" refs/heads/main '["e.txt"]' e.txt
}

@test "a lightweight and an annotated tag publish one message each" {
	local target tagobj
	target=$(gitc rev-parse main)
	gitc tag v1.0-light
	push v1.0-light
	expect_messages 1
	expect_json 1 '.commit | keys_unsorted' "[$COMMIT_KEYS,\"type\",\"tag\",\"target\",\"targetType\"]"
	expect_common 1 refs/tags/v1.0-light "$target"
	expect_str 1 author "Ann Author"
	expect_str 1 email ann@example.org
	expect_str 1 date "$(gitc log -1 --date=default --format=%ad "$target")"
	expect_str 1 log "Rewritten history"
	expect_json 1 .commit.files '[]'
	expect_str 1 changes "0 files"
	expect_str 1 type tag
	expect_str 1 tag v1.0-light
	expect_str 1 target "$target"
	expect_str 1 targetType commit

	GIT_COMMITTER_DATE="@1800000600 -0500" gitc tag -a -m $'Release 1.0\n\nThe first one.' v1.0 main^1
	tagobj=$(gitc rev-parse v1.0)
	push v1.0
	expect_messages 1
	expect_json 1 '.commit | keys_unsorted' "[$COMMIT_KEYS,\"type\",\"tag\",\"target\",\"targetType\"]"
	expect_common 1 refs/tags/v1.0 "$tagobj"
	expect_str 1 author "Ann Author"
	expect_str 1 email ann@example.org
	expect_str 1 date "Fri Jan 15 03:10:00 2027 -0500"
	expect_str 1 log $'Release 1.0\n\nThe first one.'
	expect_json 1 .commit.files '[]'
	expect_str 1 changes "0 files"
	expect_str 1 type tag
	expect_str 1 tag v1.0
	expect_str 1 target "$(gitc rev-parse main^1)"
	expect_str 1 targetType commit
}

@test "a branch deletion publishes one message" {
	local was
	was=$(gitc rev-parse main~1)
	push "$was:refs/heads/doomed"
	# a new branch on commits every other ref already had: nothing new to say
	expect_messages 0
	push :doomed
	expect_messages 1
	expect_json 1 '.commit | keys_unsorted' "[$COMMIT_KEYS,\"type\"]"
	expect_common 1 refs/heads/doomed "$was"
	expect_str 1 author ""
	expect_str 1 email ""
	expect_json 1 '.commit.date | test("^[A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4} [-+][0-9]{4}$")' true
	expect_str 1 log "Deleted refs/heads/doomed (was ${was:0:7})"
	expect_json 1 .commit.files '[]'
	expect_str 1 changes "0 files"
	expect_str 1 type delete
}

@test "a push of 150 commits publishes the newest 100 and a notice" {
	local old c i hashes want
	old=$(gitc rev-parse main)
	c=$old
	for ((i = 1; i <= 150; i++)); do
		c=$(GIT_AUTHOR_DATE="@$((1800001000 + i)) +0000" GIT_COMMITTER_DATE="@$((1800001000 + i)) +0000" \
			gitc commit-tree -p "$c" -m "Bulk $i" "$c^{tree}")
	done
	gitc update-ref refs/heads/main "$c"
	push main
	expect_messages 101

	mapfile -t hashes < <(gitc rev-list --reverse "$old..$c")
	[[ ${#hashes[@]} -eq 150 ]]
	expect_json 1 '.commit | keys_unsorted' "[$COMMIT_KEYS,\"type\",\"omitted\"]"
	expect_common 1 refs/heads/main "${hashes[49]}"
	expect_str 1 type truncated
	expect_json 1 .commit.omitted 50
	expect_str 1 log "50 older commits were not published: a push publishes at most 100 commits per ref"
	expect_json 1 .commit.files '[]'
	expect_str 1 changes "0 files"
	# then commits 51 to 150, in order
	want=$(printf '%s\n' "${hashes[@]:50}")
	[[ $(tail -n +2 "$W/new" | jq -r .commit.hash) == "$want" ]]
	expect_commit 2 "${hashes[50]}" refs/heads/main '[]' "0 files"
	expect_commit 101 "${hashes[149]}" refs/heads/main '[]' "0 files"
	expect_str 101 log "Bulk 150"
}

@test "a commit message with invalid UTF-8, a quote and a backslash arrives as valid JSON" {
	local parent tree c body
	parent=$(gitc rev-parse main)
	tree=$(gitc rev-parse 'main^{tree}')
	# git commit would re-encode the bytes; hash-object stores them as they are
	c=$(printf 'tree %s\nparent %s\nauthor Bad \xc3 Name <bad@example.org> 1800002000 +0000\ncommitter C <c@example.org> 1800002000 +0000\n\nInvalid \xff\xfe "quoted" back\\slash \xed\xa0\x80 end\n' \
		"$tree" "$parent" | gitc hash-object -t commit -w --stdin)
	gitc update-ref refs/heads/main "$c"
	push main
	expect_messages 1
	# the raw message is valid UTF-8 (iconv refuses anything else) and valid JSON (jq)
	msg 1 | iconv -f UTF-8 -t UTF-8 >/dev/null
	expect_json 1 '.commit | keys_unsorted' "[$COMMIT_KEYS]"
	expect_common 1 refs/heads/main "$c"
	expect_str 1 author $'Bad \xef\xbf\xbd Name'
	expect_str 1 email bad@example.org
	expect_str 1 date "Fri Jan 15 08:33:20 2027 +0000"
	body=$'Invalid \xef\xbf\xbd\xef\xbf\xbd "quoted" back\\slash \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end'
	expect_str 1 log "$body"
	expect_json 1 .commit.files '[]'
	expect_str 1 changes "0 files"
	# on the wire: the quote and the backslash escaped, never raw
	[[ $(msg 1) == *'"log":"Invalid '$'\xef\xbf\xbd\xef\xbf\xbd'' \"quoted\" back\\slash '* ]]
}

@test "two refs in one push publish each ref's own commits" {
	local a1 a2 b1
	gitc fetch -q origin
	gitc checkout -q -b ra main
	commit ra1.txt "On ra, first"
	commit ra2.txt "On ra, second"
	a1=$(gitc rev-parse ra~1)
	a2=$(gitc rev-parse ra)
	gitc checkout -q -b rb main
	commit rb1.txt "On rb"
	b1=$(gitc rev-parse rb)
	push ra rb
	expect_messages 3
	# refs in the order git hands them to the hook; each ref's commits oldest first
	if [[ $(msg 1 | jq -r .commit.ref) == refs/heads/ra ]]; then
		expect_commit 1 "$a1" refs/heads/ra '["ra1.txt"]' ra1.txt
		expect_commit 2 "$a2" refs/heads/ra '["ra2.txt"]' ra2.txt
		expect_commit 3 "$b1" refs/heads/rb '["rb1.txt"]' rb1.txt
	else
		expect_commit 1 "$b1" refs/heads/rb '["rb1.txt"]' rb1.txt
		expect_commit 2 "$a1" refs/heads/ra '["ra1.txt"]' ra1.txt
		expect_commit 3 "$a2" refs/heads/ra '["ra2.txt"]' ra2.txt
	fi
	gitc checkout -q main
}

@test "server stopped: the push succeeds within the timeout and the spool holds the messages" {
	local t0 ms files
	gps_stop
	commit s1.txt "While the server was down, 1"
	commit s2.txt "While the server was down, 2"
	gitc rev-parse main~1 main >"$W/spooled"

	t0=$(date +%s%3N)
	run -0 gitc push origin main
	ms=$(($(date +%s%3N) - t0))
	echo "$output"
	((ms < HOOK_TIMEOUT_S * 1000 + GIT_SLACK_MS))
	# one plain line for the pusher
	[[ $(grep -c '^remote: gitpubsub-hook' <<<"$output") -eq 1 ]]
	[[ $output == *"remote: gitpubsub-hook: warning: could not connect to http://127.0.0.1:"*"; 2 messages are queued and will be sent with the next push"* ]]
	[[ $(gitc ls-remote origin refs/heads/main | cut -f1) == "$(gitc rev-parse main)" ]]

	mapfile -t files < <(spool_files)
	[[ ${#files[@]} -eq 2 ]]
	[[ $(jq -r .commit.hash "${files[0]}") == "$(sed -n 1p "$W/spooled")" ]]
	[[ $(jq -r .commit.hash "${files[1]}") == "$(sed -n 2p "$W/spooled")" ]]
	[[ $(jq -r .commit.log "${files[1]}") == "While the server was down, 2" ]]
}

@test "server started: the next push delivers the spooled messages first, then the new ones" {
	gps_start || return 1
	echo "$GPS_URL" >"$W/url"
	git -C "$BARE" config gitpubsub.url "$GPS_URL/json/git/{project}"
	gps_subscribe sub /json/git/proj.git
	echo 0 >"$W/seen"

	commit s3.txt "After the server came back"
	run -0 gitc push origin main
	[[ $output != *gitpubsub* ]]
	expect_messages 3
	expect_commit 1 "$(sed -n 1p "$W/spooled")" refs/heads/main '["s1.txt"]' s1.txt
	expect_commit 2 "$(sed -n 2p "$W/spooled")" refs/heads/main '["s2.txt"]' s2.txt
	expect_commit 3 "$(gitc rev-parse main)" refs/heads/main '["s3.txt"]' s3.txt
	[[ -z $(spool_files) ]]
}

@test "compat: called with three arguments from a shell loop, as the original hook was" {
	rm "$BARE/hooks/post-receive"
	cat >"$BARE/hooks/post-receive" <<EOF
#!/bin/sh
while read oldrev newrev refname
do
	"$HOOK" \$oldrev \$newrev \$refname
done
EOF
	chmod +x "$BARE/hooks/post-receive"
	commit compat.txt "Through the compat call"
	push main
	rm "$BARE/hooks/post-receive"
	ln -s "$HOOK" "$BARE/hooks/post-receive"
	expect_messages 1
	expect_commit 1 "$(gitc rev-parse main)" refs/heads/main '["compat.txt"]' compat.txt
}

@test "--dry-run prints exactly the messages the hook publishes, and sends nothing" {
	local old new
	old=$(gitc rev-parse main~1)
	new=$(gitc rev-parse main)
	run -0 --separate-stderr env -C "$BARE" "$HOOK" --dry-run "$old" "$new" refs/heads/main
	[[ $output == "$(gps_messages sub | tail -n 1)" ]]
	run -0 --separate-stderr env -C "$BARE" "$HOOK" --dry-run <<<"$old $new refs/heads/main"
	[[ $output == "$(gps_messages sub | tail -n 1)" ]]
	expect_messages 0
}

@test "two hooks flushing at once deliver every spooled message exactly once" {
	local tip hashes
	tip=$(dangling 20)
	mapfile -t hashes < <(git -C "$BARE" rev-list --reverse "main..$tip")
	# queue them with the server unreachable (port 1 refuses), then flush twice at once
	run -0 env -C "$BARE" GITPUBSUB_URL=http://127.0.0.1:1/json/git/proj.git \
		"$HOOK" "$(git -C "$BARE" rev-parse main)" "$tip" refs/heads/main
	[[ $(spool_files | wc -l) -eq 20 ]]
	local -a pids=()
	(cd "$BARE" && "$HOOK" --flush) 3>&- &
	pids+=($!)
	(cd "$BARE" && "$HOOK" --flush) 3>&- &
	pids+=($!)
	# not a bare wait: that would also wait for the subscriber, which never ends
	gps_wait_pids 30 "${pids[@]}"
	expect_messages 20
	[[ $(jq -r .commit.hash "$W/new") == "$(printf '%s\n' "${hashes[@]}")" ]]
	[[ -z $(spool_files) ]]
}

@test "a server that never answers costs the push no more than the timeout" {
	local port t0 ms tip pid
	port=$(free_port)
	timeout 20 socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" EXEC:"sleep 10" 3>&- &
	pid=$!
	_gps_sleep_until 5 bash -c "ss -Htln 'sport = :$port' | grep -q ." || true
	tip=$(dangling 3)
	t0=$(date +%s%3N)
	run -0 env -C "$BARE" GITPUBSUB_URL="http://127.0.0.1:$port/x" GITPUBSUB_TIMEOUT=1 \
		"$HOOK" "$(git -C "$BARE" rev-parse main)" "$tip" refs/heads/main
	ms=$(($(date +%s%3N) - t0))
	kill "$pid" 2>/dev/null || true
	echo "$output (${ms} ms)"
	((ms < 1000 + GIT_SLACK_MS))
	[[ $output == "gitpubsub-hook: warning: the server did not answer in time; 3 messages are queued and will be sent with the next push" ]]
	[[ $(spool_files | wc -l) -eq 3 ]]
	# and they are not lost: the next run delivers them
	run -0 env -C "$BARE" "$HOOK" --flush
	expect_messages 3
	[[ -z $(spool_files) ]]
}

@test "one connection carries all the messages of a push" {
	local before after
	before=$(gps_stat X-Total-Connections)
	commit r1.txt "Reuse 1"
	commit r2.txt "Reuse 2"
	commit r3.txt "Reuse 3"
	push main
	expect_messages 3
	after=$(gps_stat X-Total-Connections)
	# the hook's one connection, and the second statistics request itself
	((after - before == 2))
}

@test "--help, --version and usage errors" {
	run -0 "$HOOK" --help
	[[ $output == *"Usage: gitpubsub-hook"* && $output == *"gitpubsub.maxCommits"* ]]
	run -0 "$HOOK" --version
	[[ $output =~ ^gitpubsub-hook\ [0-9] ]]
	run -2 "$HOOK" one two
	run -2 "$HOOK" --no-such-option
	run -2 "$HOOK" --flush a b c
	run -2 env -C "$BARE" "$HOOK" not-a-hash "$(gitc rev-parse main)" refs/heads/main
	run -1 env -C / "$HOOK" --flush
	[[ $output == *"not inside a git repository"* ]]
}
