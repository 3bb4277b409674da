#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2030,SC2031 # box_sh scripts expand inside the box; $output of run
#
# Under a real booted systemd (README "Installing"): a minimal Debian 12 in a container (tests/box), the
# packages that `make deb` builds installed in it with apt, and then what a Debian user does:
# enable the socket, subscribe and publish, restart the broker under 50 subscribers, push to a
# bare repository whose post-receive is gitpubsub-hook, read systemd-analyze security and
# verify, reboot, measure the socket units, upgrade while a subscriber streams, remove, purge.
#
# The tests run in order in one box (each builds on the state the previous left), once per
# `make check`, in its own stage (scripts/check): not under ASan, which would test nothing
# more here. The box has its own loopback (--private-network), so port 2069 collides with
# nothing. teardown_file takes the box down; tests/box's watchdog does it if the runner is
# killed. The root file system is cached in $GPS_BUILD/box/root (mmdebstrap when missing).

bats_require_minimum_version 1.5.0

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
: "${GPS_BUILD:=$REPO/build}"
BOX=$REPO/tests/box
ROOT=$GPS_BUILD/box/root
# The exposure limits of the README's units section, as systemd-analyze security prints them (0.0 - 10.0).
FRONTEND_MAX_EXPOSURE=2.0
BROKER_MAX_EXPOSURE=3.0
# Connection figures (test 6): sequential connects, then connects with 64 in flight, then
# subscribers held while 1 MiB/s of messages flows (1024 messages/s of 1 KiB).
SEQ_CONNECTS=50
PAR_CONNECTS=128
HELD_SUBS=100

# Helpers that run inside the box, given to every `box_sh` script. Every wait is bounded:
#   until_ok SECONDS CMD...   run CMD every 0.1 s until it succeeds; fail after SECONDS
#   subscribe FILE PATH       start curl on http://localhost:2069/PATH in the background,
#                             head and body into FILE, its pid into FILE.pid
#   publish PATH JSON         publish; fail unless the answer is "Message sent!" (and CRLF)
BOX_LIB=$(
	cat <<'EOF'
set -euo pipefail
until_ok()
{
	local n=$(($1 * 10))
	shift
	while ! "$@" 2>/dev/null; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || { echo "timed out: $*" >&2; return 1; }
		sleep 0.1
	done
}
subscribe()
{
	curl -sN -i --max-time 600 "http://localhost:2069/$2" </dev/null >"$1" 2>&1 &
	echo $! >"$1.pid"
}
publish()
{
	local out
	out=$(curl -sS --max-time 10 -d "$2" "http://localhost:2069/$1")
	out=${out%$'\r'}
	[ "$out" = "Message sent!" ] || { echo "publish to /$1: $out" >&2; return 1; }
}
has_head() { grep -q '^HTTP/1.1 200 OK' "$1"; }
gone() { ! kill -0 "$1" 2>/dev/null; }
# quiet_journal [ARGS...]: no warning or error from or about a gitpubsub unit (this boot, or
# as ARGS say), else print them and fail.
quiet_journal()
{
	local j
	j=$(journalctl -q -b -p warning --no-pager -u "gitpubsub*" "$@")
	[ -z "$j" ] || { echo "$j" >&2; return 1; }
}
# "! cmd" never stops a set -e script: the failures below say what they found.
refute() { if "$@"; then echo "unexpected success: $*" >&2; return 1; fi; }
EOF
)

# box_sh SCRIPT: run a bash script inside the box with the helpers above.
box_sh()
{
	"$BOX" run "$STATE" bash -c "$BOX_LIB
$1"
}

diag()
{
	echo "# $*" >&3
}

setup_file()
{
	export STATE=$GPS_BUILD/box/box-$$
	export VERSION NEXT ARCH
	ARCH=$(dpkg --print-architecture)
	VERSION=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$REPO/debian/changelog")
	NEXT=$VERSION+test1
	# The packages, as `make deb` builds them (with lintian); test 1 looks at its log.
	local make_build=$GPS_BUILD
	[[ $GPS_BUILD == "$REPO"/* ]] && make_build=${GPS_BUILD#"$REPO"/}
	echo 0 >"$BATS_FILE_TMPDIR/deb.rc"
	# Bounded, as everything here (it takes 30 s, lintian included).
	timeout -k 10 600 make -C "$REPO" --no-print-directory BUILD="$make_build" deb \
		>"$BATS_FILE_TMPDIR/deb.log" 2>&1 || echo $? >"$BATS_FILE_TMPDIR/deb.rc"
	# Without packages no test can run: say why here, where bats shows it.
	if [ "$(cat "$BATS_FILE_TMPDIR/deb.rc")" != 0 ]; then
		tail -n 40 "$BATS_FILE_TMPDIR/deb.log" >&2
		return 1
	fi
	# The same sources with a bumped version, for the upgrade: a changelog entry on top.
	local next=$BATS_FILE_TMPDIR/next/gitpubsub-$NEXT
	mkdir -p "$next"
	cp -a "$GPS_BUILD/deb/gitpubsub-$VERSION/." "$next/"
	{
		printf 'gitpubsub (%s) unstable; urgency=medium\n\n  * Upgrade test.\n\n' "$NEXT"
		printf ' -- Test <test@gitpubsub.example.org>  %s\n\n' "$(date -R)"
		cat "$next/debian/changelog"
	} >"$next/debian/changelog.new"
	mv "$next/debian/changelog.new" "$next/debian/changelog"
	(cd "$next" && timeout -k 10 600 dpkg-buildpackage -us -uc -b -j2 >../build.log 2>&1)

	"$BOX" root "$ROOT"
	"$BOX" up "$ROOT" "$STATE" "$$"
	mkdir -p "$STATE/fs/srv/gps/next"
	cp "$GPS_BUILD"/gitpubsub_"$VERSION"_"$ARCH".deb "$GPS_BUILD"/gitpubsub-hook_"$VERSION"_"$ARCH".deb \
		"$GPS_BUILD/bench/loadgen" "$STATE/fs/srv/gps/"
	cp "$BATS_FILE_TMPDIR"/next/gitpubsub_"$NEXT"_"$ARCH".deb "$STATE/fs/srv/gps/next/"
}

teardown_file()
{
	"$BOX" down "$STATE"
}

@test "make deb: gitpubsub and gitpubsub-hook, lintian-clean, versioned by debian/changelog" {
	run -0 cat "$BATS_FILE_TMPDIR/deb.rc" "$BATS_FILE_TMPDIR/deb.log"
	[ "${lines[0]}" = 0 ]
	[[ $output == *LINTIAN* ]]
	[[ $output != *$'\nE: '* && $output != *$'\nW: '* ]]
	local deb
	for deb in gitpubsub gitpubsub-hook; do
		run -0 dpkg-deb -f "$GPS_BUILD/${deb}_${VERSION}_$(dpkg --print-architecture).deb" \
			Package Version
		[ "$output" = "Package: $deb"$'\n'"Version: $VERSION" ]
	done
}

@test "apt install ./gitpubsub_*.deb: user, conffile, socket and broker enabled and running" {
	run -0 "$BOX" run "$STATE" apt-get install -y -q /srv/gps/gitpubsub_"$VERSION"_"$ARCH".deb
	box_sh '
		getent passwd gitpubsub
		[ "$(systemctl is-enabled gitpubsub.socket gitpubsub-broker.service)" = "enabled
enabled" ]
		until_ok 10 systemctl is-active -q gitpubsub.socket gitpubsub-broker.service
		dpkg-query -W -f="\${Conffiles}\n" gitpubsub | grep -q "^ /etc/gitpubsub/gitpubsub.cfg "
		[ "$(stat -c %U /dev/shm/gitpubsub)" = gitpubsub ]
		[ "$(gpsctl --version)" = "gpsctl '"$VERSION"'" ]'
}

@test "1: enable --now gitpubsub.socket; subscribe, publish, trusted HEAD; nothing failed or warned" {
	box_sh '
		systemctl enable --now gitpubsub.socket
		subscribe /tmp/t1 json
		until_ok 10 has_head /tmp/t1
		publish json/t1 "{\"hello\":\"box\"}"
		until_ok 10 grep -qx "{\"hello\":\"box\"}." /tmp/t1
		head=$(curl -sS --max-time 10 -I http://localhost:2069/)
		grep -q "^HTTP/1.1 200 OK" <<<"$head"
		grep -q "^X-Subscribers: 1" <<<"$head"
		kill "$(cat /tmp/t1.pid)"
		[ -z "$(systemctl --failed --no-legend)" ]
		quiet_journal'
}

@test "2: restart gitpubsub-broker.service under 50 subscribers: none dropped, each gets the 5 next messages in order" {
	box_sh '
		mkdir -p /tmp/t2
		for n in $(seq 50); do subscribe /tmp/t2/$n json/t2; done
		for n in $(seq 50); do until_ok 20 has_head /tmp/t2/$n; done
		before=$(systemctl show -P MainPID gitpubsub-broker.service)
		systemctl restart gitpubsub-broker.service
		[ "$(systemctl show -P MainPID gitpubsub-broker.service)" != "$before" ]
		for m in 1 2 3 4 5; do publish json/t2 "{\"after\":$m}"; done
		want=$(printf "{\"after\":%s}\r\n" 1 2 3 4 5)
		for n in $(seq 50); do
			until_ok 20 grep -qx "{\"after\":5}." /tmp/t2/$n
			[ "$(grep "^{\"after\":" /tmp/t2/$n)" = "$want" ]
			kill -0 "$(cat /tmp/t2/$n.pid)"
		done
		for n in $(seq 50); do kill "$(cat /tmp/t2/$n.pid)"; done'
}

@test "3: gitpubsub-hook as a bare repository's post-receive: a push of 20 commits reaches a subscriber" {
	run -0 "$BOX" run "$STATE" apt-get install -y -q /srv/gps/gitpubsub-hook_"$VERSION"_"$ARCH".deb
	box_sh '
		git init -q --bare /srv/git/project.git
		ln -s /usr/bin/gitpubsub-hook /srv/git/project.git/hooks/post-receive
		git init -q -b main /tmp/work
		cd /tmp/work
		git config user.name Tester
		git config user.email tester@example.org
		for n in $(seq 20); do git commit -q --allow-empty -m "commit $n"; done
		git remote add origin /srv/git/project.git
		subscribe /tmp/t3 json/git
		until_ok 10 has_head /tmp/t3
		git push -q origin main 2>/tmp/t3.push
		[ ! -s /tmp/t3.push ] || { cat /tmp/t3.push; exit 1; }
		until_ok 20 test "$(grep -c "\"commit\"" /tmp/t3)" -ge 20
		kill "$(cat /tmp/t3.pid)"
		want=$(git rev-list main | sort)
		got=$(grep -o "\"hash\": *\"[0-9a-f]*\"" /tmp/t3 | grep -o "[0-9a-f]\{40\}" | sort)
		[ "$want" = "$got" ]'
}

@test "4: systemd-analyze security within the limits, systemd-analyze verify silent, every unit shipped" {
	run -0 "$BOX" run "$STATE" dpkg-query -L gitpubsub
	local units=() unit name limit level
	for unit in "${lines[@]}"; do
		[[ $unit == /lib/systemd/system/* || $unit == /usr/lib/systemd/system/* ]] || continue
		[[ $unit == *.service || $unit == *.socket ]] && units+=("$unit")
	done
	[ ${#units[@]} -ge 3 ]
	# Documentation= names man pages; the box has no man-db, which the package does not need.
	run -0 "$BOX" run "$STATE" systemd-analyze verify --man=no "${units[@]}"
	[ -z "$output" ]
	for unit in "${units[@]}"; do
		[[ $unit == *.service ]] || continue
		name=${unit##*/}
		name=${name/@./@0.}
		limit=$FRONTEND_MAX_EXPOSURE
		[[ $name == gitpubsub-broker.service ]] && limit=$BROKER_MAX_EXPOSURE
		run -0 "$BOX" run "$STATE" systemd-analyze security --no-pager "$name"
		level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' <<<"$output")
		diag "$name: exposure $level (limit $limit)"
		[ -n "$level" ]
		awk -v l="$level" -v m="$limit" 'BEGIN { exit !(l <= m) }'
	done
}

@test "5: reboot the box: the socket comes back by itself and serves" {
	"$BOX" reboot "$STATE"
	box_sh '
		until_ok 20 systemctl is-active -q gitpubsub.socket gitpubsub-broker.service
		subscribe /tmp/t5 json
		until_ok 10 has_head /tmp/t5
		publish json "{\"after\":\"reboot\"}"
		until_ok 10 grep -qx "{\"after\":\"reboot\"}." /tmp/t5
		kill "$(cat /tmp/t5.pid)"
		[ -z "$(systemctl --failed --no-legend)" ]
		quiet_journal'
}

# loadgen_figure KEY: the value of KEY in loadgen's result line, in $output.
loadgen_figure()
{
	sed -n "s/^result .* $1=\([^ ]*\).*/\1/p" <<<"$output"
}

# only_socket SOCKET ALL...: SOCKET enabled and listening, every other one of ALL disabled and
# stopped with the service it started (an Accept=no socket's service holds the listening socket
# and would keep port 2069), as an administrator switches between them: they share the port.
only_socket()
{
	local want=$1 s
	shift
	for s in "$@"; do
		[ "$s" = "$want" ] && continue
		"$BOX" run "$STATE" systemctl disable -q --now "$s"
		box_sh 'for u in $(systemctl show -P Triggers '"$s"'); do
			case $u in *@.service) ;; *) systemctl stop "$u" ;; esac
		done'
	done
	"$BOX" run "$STATE" systemctl enable -q --now "$want"
}

@test "6: connect to first byte, connections/s and subscribers held at 1 MiB/s, per socket unit" {
	run -0 "$BOX" run "$STATE" dpkg-query -L gitpubsub
	local sockets=() s lg=(/srv/gps/loadgen --port 2069)
	for s in "${lines[@]}"; do
		[[ $s == */systemd/system/*.socket ]] && sockets+=("${s##*/}")
	done
	[ ${#sockets[@]} -ge 1 ]
	for s in "${sockets[@]}"; do
		only_socket "$s" "${sockets[@]}"
		"$BOX" run "$STATE" systemctl enable -q --now "$s"
		box_sh 'until_ok 10 curl -sSf --max-time 5 -o /dev/null -I http://localhost:2069/'

		run -0 "$BOX" run "$STATE" "${lg[@]}" --mode connect --sub-path /c1 --pub-path /c1 \
			--subs "$SEQ_CONNECTS" --connect-window 1
		[ "$(loadgen_figure verified)" = "$SEQ_CONNECTS" ]
		diag "$s: sequential: connect to first byte p50 $(loadgen_figure head_p50_us) us," \
			"p99 $(loadgen_figure head_p99_us) us; $(loadgen_figure subs_per_s) connections/s"

		run -0 "$BOX" run "$STATE" "${lg[@]}" --mode connect --sub-path /c64 --pub-path /c64 \
			--subs "$PAR_CONNECTS" --connect-window 64
		[ "$(loadgen_figure verified)" = "$PAR_CONNECTS" ]
		diag "$s: 64 in parallel: connect to first byte p50 $(loadgen_figure head_p50_us) us," \
			"p99 $(loadgen_figure head_p99_us) us; $(loadgen_figure subs_per_s) connections/s"

		run -0 "$BOX" run "$STATE" "${lg[@]}" --mode latency --sub-path /held --pub-path /held \
			--subs "$HELD_SUBS" --rate 1024 --size 1024 --duration 5 --window 32 --drain 20
		[ "$(loadgen_figure loss)" = 0 ] && [ "$(loadgen_figure sub_errors)" = 0 ]
		[ "$(loadgen_figure deliveries)" = "$(loadgen_figure expected)" ]
		diag "$s: $HELD_SUBS subscribers held with 1 MiB/s flowing (1024 x 1 KiB/s):" \
			"$(loadgen_figure deliveries_per_s) deliveries/s, latency p50" \
			"$(loadgen_figure p50_us) us, p99 $(loadgen_figure p99_us) us, loss 0"
	done
	# Back to the default.
	only_socket gitpubsub.socket "${sockets[@]}"
	box_sh 'until_ok 10 curl -sSf --max-time 5 -o /dev/null -I http://localhost:2069/'
}

@test "upgrade to a build with a bumped version while a subscriber streams: the stream continues" {
	box_sh '
		subscribe /tmp/up json/up
		until_ok 10 has_head /tmp/up
		publish json/up "{\"before\":\"upgrade\"}"
		until_ok 10 grep -qx "{\"before\":\"upgrade\"}." /tmp/up
		systemctl show -P MainPID gitpubsub-broker.service >/tmp/up.broker
		systemctl show -P ActiveEnterTimestampMonotonic gitpubsub.socket >/tmp/up.socket
		date +%s >/tmp/up.since'
	run -0 "$BOX" run "$STATE" apt-get install -y -q /srv/gps/next/gitpubsub_"$NEXT"_"$ARCH".deb
	box_sh '
		[ "$(dpkg-query -W -f="\${Version}" gitpubsub)" = "'"$NEXT"'" ]
		[ "$(gpsctl --version)" = "gpsctl '"$NEXT"'" ]
		# The broker was restarted (the new one runs), the socket left listening all along.
		until_ok 10 systemctl is-active -q gitpubsub-broker.service gitpubsub.socket
		[ "$(systemctl show -P MainPID gitpubsub-broker.service)" != "$(cat /tmp/up.broker)" ]
		[ "$(systemctl show -P ActiveEnterTimestampMonotonic gitpubsub.socket)" = \
			"$(cat /tmp/up.socket)" ]
		publish json/up "{\"after\":\"upgrade\"}"
		until_ok 10 grep -qx "{\"after\":\"upgrade\"}." /tmp/up
		kill -0 "$(cat /tmp/up.pid)"
		[ -z "$(systemctl --failed --no-legend)" ]
		quiet_journal --since "@$(cat /tmp/up.since)"'
}

@test "apt remove gitpubsub: every unit stopped, nothing listens, the configuration stays" {
	box_sh 'subscribe /tmp/rm json; until_ok 10 has_head /tmp/rm'
	run -0 "$BOX" run "$STATE" apt-get remove -y -q gitpubsub
	box_sh '
		until_ok 10 test -z "$(systemctl list-units --no-legend "gitpubsub*")"
		refute curl -s --max-time 5 -o /dev/null -I http://localhost:2069/
		until_ok 10 gone "$(cat /tmp/rm.pid)"
		test -f /etc/gitpubsub/gitpubsub.cfg
		test -f /dev/shm/gitpubsub'
}

@test "apt purge gitpubsub: the configuration and the rings in /dev/shm are gone" {
	run -0 "$BOX" run "$STATE" apt-get purge -y -q gitpubsub
	box_sh '
		[ "$(dpkg-query -W -f="\${db:Status-Status}" gitpubsub 2>/dev/null)" != installed ]
		test ! -e /etc/gitpubsub
		test ! -e /dev/shm/gitpubsub
		test -z "$(find /dev/shm -user gitpubsub)"
		test ! -e /etc/systemd/system/sockets.target.wants/gitpubsub.socket'
}
