#!/usr/bin/env bats
#
# Issue 14, item 1: shared memory belongs to the service (shm/ring.h section 1). A copy of a
# valid ring planted under a ring's name, writable by others or owned by another user, is
# refused by the broker (even with --recreate), by a frontend and by gpsctl, each with one
# line naming the file, its owner and its mode; the file is left as it was. The statistics
# object is 0644, and a world-writable one is refused too. The tests run as root, so a planted
# file can be given to nobody.

bats_require_minimum_version 1.5.0

load lib

setup_file()
{
	gps_start "[History]" "ringSize: 64K"
	gps_publish /owner '{"n":1}' >/dev/null
}

teardown_file()
{
	gps_stop
}

setup()
{
	PLANTED=/gps-planted-$$-$RANDOM
	PFILE=/dev/shm${PLANTED}
	FE_PID=""
}

teardown()
{
	[[ -n $FE_PID ]] && kill "$FE_PID" 2>/dev/null && wait "$FE_PID" 2>/dev/null
	rm -f "$PFILE" "$PFILE.stats"
}

# plant MODE [OWNER] - a byte-for-byte copy of the service's ring (and a 0644 copy of its
# statistics object) under $PLANTED, with MODE and OWNER; a copy of it in $BATS_TEST_TMPDIR/orig.
plant()
{
	cp "/dev/shm$GPS_RING" "$PFILE"
	cp "/dev/shm$GPS_RING.stats" "$PFILE.stats"
	chmod 0644 "$PFILE.stats"
	chmod "$1" "$PFILE"
	[[ -z ${2:-} ]] || chown "$2" "$PFILE"
	cp "$PFILE" "$BATS_TEST_TMPDIR/orig"
	echo "# planted $PFILE: $(stat -c '%a %U' "$PFILE")" >&3
}

# refused OUTPUT FILE MODE OWNER - OUTPUT has the one refusal line for FILE.
refused()
{
	local want="is owned by $4 with mode $3"
	grep -F "'$2' $want" <<<"$1" | head -n 1 | sed 's/^/# /' >&3
	grep -qF "'$2' $want" <<<"$1" || {
		echo "no refusal line with '$2' $want in: $1" >&2
		return 1
	}
	grep -F "'$2'" <<<"$1" | grep -q "refusing ring"
}

# untouched - the planted file has its bytes still, whatever was tried on it.
untouched()
{
	cmp "$BATS_TEST_TMPDIR/orig" "$PFILE"
}

# frontend_on RING - a frontend for RING on its own port (a process per connection, as
# gitpubsub-accept.socket runs them), logging to $BATS_TEST_TMPDIR/fe.log; sets FE_PORT.
frontend_on()
{
	FE_PORT=$(free_port)
	systemd-socket-activate --accept -l "127.0.0.1:$FE_PORT" \
		"$GPS_BUILD/gitpubsub-frontend" --config "$GPS_CFG" --ring "$1" \
		--socket "$GPS_RUN_DIR/broker.sock" 2>"$BATS_TEST_TMPDIR/fe.log" &
	FE_PID=$!
	_gps_sleep_until 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$FE_PORT" 2>/dev/null
}

# broker_on RING [ARGS...] - run a broker on RING (it must refuse and exit).
broker_on()
{
	local ring=$1
	shift
	run -1 timeout 10 "$GPS_BUILD/gitpubsub-broker" --config "$GPS_CFG" --ring "$ring" \
		--socket "$BATS_TEST_TMPDIR/b.sock" "$@"
}

@test "14.1: the ring and its statistics object are 0644 and the broker's user's, not 0666" {
	local me ring stats
	me=$(id -un)
	ring=$(stat -c '%F %a %U' "/dev/shm$GPS_RING")
	stats=$(stat -c '%F %a %U' "/dev/shm$GPS_RING.stats")
	echo "# ring: $ring; statistics: $stats (broker's user: $me)" >&3
	[[ $ring == "regular file 644 $me" ]]
	[[ $stats == "regular file 644 $me" ]]
	# nothing else of the ring's in /dev/shm: no temporary name left
	run ls "/dev/shm${GPS_RING}".*
	[[ $output == "/dev/shm$GPS_RING.stats" ]]
}

@test "14.1: a planted copy of the ring, mode 0666, is refused by gpsctl, the broker and a frontend" {
	local owner
	owner="$(id -un) (uid $(id -u))"
	plant 0666

	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$PLANTED" status
	refused "$output" "$PFILE" 0666 "$owner"
	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$PLANTED" check
	refused "$output" "$PFILE" 0666 "$owner"
	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$PLANTED" dump
	refused "$output" "$PFILE" 0666 "$owner"

	broker_on "$PLANTED"
	echo "# broker: status $status" >&3
	refused "$output" "$PFILE" 0666 "$owner"
	broker_on "$PLANTED" --recreate
	echo "# broker --recreate: status $status" >&3
	refused "$output" "$PFILE" 0666 "$owner"
	untouched
	[[ $(stat -c %a "$PFILE") == 666 ]]

	frontend_on "$PLANTED"
	run curl -sS -m 5 -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' "http://127.0.0.1:$FE_PORT/json"
	echo "# frontend: GET /json: $output $(cat "$BATS_TEST_TMPDIR/body")" >&3
	[[ $output == 503 ]]
	grep -q "refuses its ring" "$BATS_TEST_TMPDIR/body"
	refused "$(cat "$BATS_TEST_TMPDIR/fe.log")" "$PFILE" 0666 "$owner"
	untouched
}

@test "14.1: a planted ring of another owner (nobody), mode 0644, is refused; [History] ringOwner trusts it" {
	local cfg=$BATS_TEST_TMPDIR/owner.cfg
	[[ $(id -u) == 0 ]] || skip "chown to nobody needs root"
	plant 0644 nobody

	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$PLANTED" status
	refused "$output" "$PFILE" 0644 "nobody (uid $(id -u nobody))"
	[[ $output == *"[History] ringOwner"* ]]
	broker_on "$PLANTED" --recreate
	refused "$output" "$PFILE" 0644 "nobody (uid $(id -u nobody))"
	untouched
	frontend_on "$PLANTED"
	run curl -sS -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FE_PORT/json"
	echo "# frontend: GET /json: $output" >&3
	[[ $output == 503 ]]
	refused "$(cat "$BATS_TEST_TMPDIR/fe.log")" "$PFILE" 0644 "nobody (uid $(id -u nobody))"

	{ cat "$GPS_CFG"; printf '[History]\nringOwner: nobody\n'; } >"$cfg"
	run -0 "$GPS_BUILD/gpsctl" --config "$cfg" --ring "$PLANTED" dump
	echo "# gpsctl dump with ringOwner nobody: $output" >&3
	[[ $output == '{"n":1}' ]]
}

@test "14.1: a world-writable statistics object is refused; the broker replaces its own, refuses another's" {
	local owner nobody ino
	owner="$(id -un) (uid $(id -u))"
	nobody="nobody (uid $(id -u nobody))"
	plant 0644
	chmod 0666 "$PFILE.stats"

	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$PLANTED" status
	echo "# gpsctl status: status $status" >&3
	refused "$output" "$PFILE.stats" 0666 "$owner"
	# the ring's status, and no counter read from the refused object
	[[ $output == *"total connections"*"- (no statistics object)"* ]]
	run -1 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$PLANTED" check
	[[ $output == *"statistics: refused: '$PFILE.stats' is owned by $owner with mode 0666"* ]]

	# the frontend serves the (good) ring and counts nothing into the bad object
	frontend_on "$PLANTED"
	run curl -sS -m 5 -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:$FE_PORT/"
	echo "# frontend: HEAD /: $output" >&3
	[[ $output == 200 ]]
	refused "$(cat "$BATS_TEST_TMPDIR/fe.log")" "$PFILE.stats" 0666 "$owner"

	# another user's: the broker refuses it and leaves it alone
	[[ $(id -u) == 0 ]] || skip "chown to nobody needs root"
	chown nobody "$PFILE.stats"
	ino=$(stat -c %i "$PFILE.stats")
	broker_on "$PLANTED"
	echo "# broker: status $status" >&3
	refused "$output" "$PFILE.stats" 0666 "$nobody"
	[[ $(stat -c '%i %a %U' "$PFILE.stats") == "$ino 666 nobody" ]]

	# its own (as versions before issue 14 made it): replaced by a new 0644 object at start
	chown "$(id -u)" "$PFILE.stats"
	run timeout 3 "$GPS_BUILD/gitpubsub-broker" --config "$GPS_CFG" --ring "$PLANTED" \
		--socket "$BATS_TEST_TMPDIR/b.sock"
	echo "# broker on its own 0666 statistics object: status $status (124: ran until stopped); now $(stat -c '%a %U' "$PFILE.stats")" >&3
	((status == 124))
	[[ $(stat -c '%a %u' "$PFILE.stats") == "644 $(id -u)" ]]
	[[ $(stat -c %i "$PFILE.stats") != "$ino" ]]
}
