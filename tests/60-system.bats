#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# Running as a system service (README "Running as a system service"): `make install` and `make
# uninstall` into scratch trees, the installed systemd units (systemd-analyze verify must print
# nothing, and systemd-analyze security --offline must meet the exposure limits), the sysusers file,
# the man pages (man -l without a warning, every configuration key and gpsctl option documented),
# and an end-to-end run of the frontend under a real inetd (openbsd-inetd) with a private
# configuration on a loopback port, publishing and streaming through it.
#
# Nothing here touches the system: every install goes into $BATS_FILE_TMPDIR.

bats_require_minimum_version 1.5.0

load lib

# The exposure limits the README sets ("Running as a system service"), as systemd-analyze security
# prints them (0.0 - 10.0).
# Every unit make install puts in place.
ALL_UNITS="gitpubsub.socket gitpubsub-frontend.service gitpubsub-accept.socket gitpubsub-accept@.service gitpubsub-broker.service"
FRONTEND_MAX_EXPOSURE=2.0
BROKER_MAX_EXPOSURE=3.0
# What the default install (PREFIX=/usr/local) names, and what inetd/ and the units expect.
DEFAULT_LIBEXEC=/usr/local/libexec/gitpubsub
# Bounded waits, in seconds.
WAIT=5

setup_file()
{
	gps_start
	# make runs with the build folder under test; relative when it is inside the repository,
	# so that the dependency files of that build apply.
	MAKE_BUILD=$GPS_BUILD
	[[ $GPS_BUILD == "$GPS_REPO"/* ]] && MAKE_BUILD=${GPS_BUILD#"$GPS_REPO"/}
	export MAKE_BUILD
}

teardown_file()
{
	stop_inetd
	gps_stop
}

teardown()
{
	gps_unsubscribe_all
}

# mk ARGS... - make in the repository with the build folder under test.
mk()
{
	make -C "$GPS_REPO" --no-print-directory BUILD="$MAKE_BUILD" "$@"
}

# tree DIR - every file and symbolic link under DIR as "MODE PATH", sorted.
tree()
{
	(cd "$1" && find . \( -type f -o -type l \) -printf '%m %P\n' | LC_ALL=C sort)
}

# systemd_dir VARIABLE PREFIX - what pkg-config says systemd's VARIABLE is under PREFIX.
systemd_dir()
{
	pkg-config --define-variable=prefix="$2" --define-variable=root_prefix="$2" \
		--variable="$1" systemd
}

# expected_tree UNITDIR SYSUSERSDIR - the files a default install (PREFIX=/usr/local) makes.
expected_tree()
{
	{
		echo "644 etc/gitpubsub/gitpubsub.cfg"
		echo "755 usr/local/bin/gpsctl"
		[[ -x $GPS_BUILD/gitpubsub-hook ]] && echo "755 usr/local/bin/gitpubsub-hook"
		echo "755 usr/local/libexec/gitpubsub/gitpubsub-broker"
		echo "755 usr/local/libexec/gitpubsub/gitpubsub-frontend"
		echo "644 ${1#/}/gitpubsub.socket"
		echo "644 ${1#/}/gitpubsub-frontend.service"
		echo "644 ${1#/}/gitpubsub-accept.socket"
		echo "644 ${1#/}/gitpubsub-accept@.service"
		echo "644 ${1#/}/gitpubsub-broker.service"
		echo "644 ${2#/}/gitpubsub.conf"
		echo "644 usr/local/share/man/man1/gpsctl.1"
		echo "644 usr/local/share/man/man1/gitpubsub-hook.1"
		echo "644 usr/local/share/man/man5/gitpubsub.cfg.5"
		echo "644 usr/local/share/man/man8/gitpubsub.8"
		echo "644 usr/local/share/man/man8/gitpubsub-broker.8"
		echo "644 usr/local/share/man/man8/gitpubsub-frontend.8"
	} | LC_ALL=C sort
}

# install_prefix DIR - a real install (no DESTDIR) into DIR, so that ExecStart= and the man
# pages exist where the units say; the configuration goes to DIR/etc. Prints the unit folder.
install_prefix()
{
	mk install PREFIX="$1" CONFDIR="$1/etc/gitpubsub" >/dev/null || return 1
	systemd_dir systemdsystemunitdir "$1"
}

@test "make install puts every file in place under DESTDIR, with modes 0755 and 0644" {
	local dest=$BATS_FILE_TMPDIR/dest unitdir sysusersdir u
	unitdir=$(systemd_dir systemdsystemunitdir /usr/local)
	sysusersdir=$(systemd_dir sysusersdir /usr/local)
	# pkg-config's directories under /usr/local are ones systemd searches
	[[ $unitdir == /usr/local/lib/systemd/system ]]
	[[ :$(pkg-config --variable=systemdsystemunitpath systemd): == *":$unitdir:"* ]]
	[[ $sysusersdir == /usr/local/lib/sysusers.d ]]

	run -0 mk install DESTDIR="$dest"
	run -0 tree "$dest"
	[[ $output == "$(expected_tree "$unitdir" "$sysusersdir")" ]]

	cmp "$GPS_BUILD/gpsctl" "$dest/usr/local/bin/gpsctl"
	cmp "$GPS_BUILD/gitpubsub-broker" "$dest$DEFAULT_LIBEXEC/gitpubsub-broker"
	cmp "$GPS_BUILD/gitpubsub-frontend" "$dest$DEFAULT_LIBEXEC/gitpubsub-frontend"
	cmp "$GPS_REPO/etc/gitpubsub.cfg" "$dest/etc/gitpubsub/gitpubsub.cfg"
	cmp "$GPS_REPO/systemd/gitpubsub.sysusers" "$dest$sysusersdir/gitpubsub.conf"
	# the units name the installed programs, and no template placeholder is left
	grep -qx "ExecStart=$DEFAULT_LIBEXEC/gitpubsub-broker" "$dest$unitdir/gitpubsub-broker.service"
	grep -qx "ExecStart=$DEFAULT_LIBEXEC/gitpubsub-frontend" "$dest$unitdir/gitpubsub-frontend.service"
	grep -qx "ExecStart=$DEFAULT_LIBEXEC/gitpubsub-frontend" "$dest$unitdir/gitpubsub-accept@.service"
	for u in $ALL_UNITS; do
		run -1 grep -n '@[A-Z_]*@' "$dest$unitdir/$u"
	done
	"$dest/usr/local/bin/gpsctl" --help >/dev/null
}

@test "PREFIX, BINDIR, LIBEXECDIR, MANDIR and UNITDIR move what they name" {
	local dest=$BATS_FILE_TMPDIR/dest-usr unitdir
	unitdir=$(systemd_dir systemdsystemunitdir /usr)
	run -0 mk install DESTDIR="$dest" PREFIX=/usr
	[[ -x $dest/usr/bin/gpsctl && -x $dest/usr/libexec/gitpubsub/gitpubsub-broker ]]
	[[ -f $dest$unitdir/gitpubsub.socket && -f $dest/usr/share/man/man8/gitpubsub.8 ]]
	grep -qx "ExecStart=/usr/libexec/gitpubsub/gitpubsub-frontend" "$dest$unitdir/gitpubsub-frontend.service"

	dest=$BATS_FILE_TMPDIR/dest-opt
	run -0 mk install DESTDIR="$dest" BINDIR=/opt/gps/bin LIBEXECDIR=/opt/gps/lib \
		MANDIR=/opt/gps/man UNITDIR=/etc/systemd/system SYSUSERSDIR=/etc/sysusers.d
	[[ -x $dest/opt/gps/bin/gpsctl && -x $dest/opt/gps/lib/gitpubsub/gitpubsub-frontend ]]
	[[ -f $dest/opt/gps/man/man1/gpsctl.1 && -f $dest/etc/sysusers.d/gitpubsub.conf ]]
	grep -qx "ExecStart=/opt/gps/lib/gitpubsub/gitpubsub-broker" \
		"$dest/etc/systemd/system/gitpubsub-broker.service"
	[[ ! -e $dest/usr ]]
}

@test "make install never overwrites an existing configuration file" {
	local dest=$BATS_FILE_TMPDIR/dest-keep
	mkdir -p "$dest/etc/gitpubsub"
	printf '[Clients]\ntrustedPeers: 192.0.2.1\n' >"$dest/etc/gitpubsub/gitpubsub.cfg"
	run -0 mk install DESTDIR="$dest"
	[[ $output == *"KEEP"*"/etc/gitpubsub/gitpubsub.cfg"* ]]
	[[ $(cat "$dest/etc/gitpubsub/gitpubsub.cfg") == $'[Clients]\ntrustedPeers: 192.0.2.1' ]]
}

@test "make uninstall removes exactly what make install put there" {
	local dest=$BATS_FILE_TMPDIR/dest-un before
	# files that were there before, in the folders install shares with others
	mkdir -p "$dest/usr/local/bin" "$dest/usr/local/share/man/man1" "$dest/usr/local/libexec"
	echo other >"$dest/usr/local/bin/other-tool"
	echo other >"$dest/usr/local/share/man/man1/other.1"
	echo other >"$dest/usr/local/libexec/other-helper"
	before=$(tree "$dest")

	run -0 mk install DESTDIR="$dest"
	[[ $(tree "$dest" | wc -l) -gt $(wc -l <<<"$before") ]]
	run -0 mk uninstall DESTDIR="$dest"
	[[ $(tree "$dest") == "$before" ]]
	# its own folders go too; shared ones stay
	[[ ! -e $dest/usr/local/libexec/gitpubsub && ! -e $dest/etc/gitpubsub ]]
	[[ -d $dest/usr/local/bin ]]

	# a configuration changed since install is the administrator's now: it stays
	run -0 mk install DESTDIR="$dest"
	echo "# edited" >>"$dest/etc/gitpubsub/gitpubsub.cfg"
	run -0 mk uninstall DESTDIR="$dest"
	[[ $output == *"KEEP"* ]]
	[[ $(tree "$dest") == "$(printf '%s\n644 etc/gitpubsub/gitpubsub.cfg' "$before" | LC_ALL=C sort)" ]]
}

@test "systemd-analyze verify prints nothing for each installed unit" {
	local prefix=$BATS_FILE_TMPDIR/prefix unitdir u
	unitdir=$(install_prefix "$prefix")
	for u in $ALL_UNITS; do
		[[ -f $unitdir/$u ]]
		# verify also runs man for Documentation=: point it at the installed pages
		MANPATH=$prefix/share/man run -0 systemd-analyze verify "$unitdir/$u"
		[[ -z $output ]] || {
			echo "systemd-analyze verify $u said: $output" >&2
			false
		}
	done
	# and it is not silent by accident: a unit with an unknown key is reported
	sed 's/^Type=notify$/Type=notify\nNoSuchKey=1/' "$unitdir/gitpubsub-broker.service" \
		>"$unitdir/gitpubsub-broken.service"
	MANPATH=$prefix/share/man run systemd-analyze verify "$unitdir/gitpubsub-broken.service"
	[[ $output == *"NoSuchKey"* ]]
	rm -f "$unitdir/gitpubsub-broken.service"
}

# exposure UNITFILE - the overall exposure systemd-analyze security --offline gives the unit.
exposure()
{
	systemd-analyze security --offline=yes "$1" 2>/dev/null |
		awk '/Overall exposure level for / { sub(/.*: /, ""); print $1; found = 1 }
		     END { exit !found }'
}

@test "systemd-analyze security --offline: frontend exposure <= 2.0, broker <= 3.0" {
	local unitdir fe fa br u
	unitdir=$(install_prefix "$BATS_FILE_TMPDIR/prefix-sec")
	fe=$(exposure "$unitdir/gitpubsub-frontend.service")
	fa=$(exposure "$unitdir/gitpubsub-accept@.service")
	br=$(exposure "$unitdir/gitpubsub-broker.service")
	echo "exposure: frontend $fe, frontend per connection unit $fa, broker $br" >&3
	for u in "$fe" "$fa"; do
		awk -v v="$u" -v max="$FRONTEND_MAX_EXPOSURE" 'BEGIN { exit !(v + 0 <= max + 0) }'
	done
	awk -v v="$br" -v max="$BROKER_MAX_EXPOSURE" 'BEGIN { exit !(v + 0 <= max + 0) }'
	# the same limits through systemd-analyze's own threshold (in tenths)
	run -0 systemd-analyze security --offline=yes --threshold=20 \
		"$unitdir/gitpubsub-frontend.service"
	run -0 systemd-analyze security --offline=yes --threshold=20 \
		"$unitdir/gitpubsub-accept@.service"
	run -0 systemd-analyze security --offline=yes --threshold=30 \
		"$unitdir/gitpubsub-broker.service"
}

# unit_has FILE KEY=VALUE - whether the unit sets exactly that line.
unit_has()
{
	grep -qx -- "$2" "$1" || _gps_fail "$(basename "$1") does not set '$2'"
}

@test "the units carry what the README requires of them" {
	local unitdir
	unitdir=$(install_prefix "$BATS_FILE_TMPDIR/prefix-keys")
	# gitpubsub.socket: one service for every connection
	unit_has "$unitdir/gitpubsub.socket" ListenStream=2069
	unit_has "$unitdir/gitpubsub.socket" BindIPv6Only=both
	unit_has "$unitdir/gitpubsub.socket" Accept=no
	unit_has "$unitdir/gitpubsub.socket" Service=gitpubsub-frontend.service
	unit_has "$unitdir/gitpubsub-frontend.service" User=gitpubsub
	unit_has "$unitdir/gitpubsub-frontend.service" RemoveIPC=no
	unit_has "$unitdir/gitpubsub-frontend.service" ReadOnlyPaths=-/dev/shm/gitpubsub
	unit_has "$unitdir/gitpubsub-frontend.service" RestrictAddressFamilies=AF_UNIX
	unit_has "$unitdir/gitpubsub-frontend.service" IPAddressDeny=any
	(($(sed -n 's/^LimitNOFILE=//p' "$unitdir/gitpubsub-frontend.service") >= 50000))

	# gitpubsub-accept.socket: a unit per connection
	unit_has "$unitdir/gitpubsub-accept.socket" ListenStream=2069
	unit_has "$unitdir/gitpubsub-accept.socket" BindIPv6Only=both
	unit_has "$unitdir/gitpubsub-accept.socket" Accept=yes
	(($(sed -n 's/^MaxConnections=//p' "$unitdir/gitpubsub-accept.socket") > 64))
	(($(sed -n 's/^MaxConnectionsPerSource=//p' "$unitdir/gitpubsub-accept.socket") > 64))
	(($(sed -n 's/^TriggerLimitBurst=//p' "$unitdir/gitpubsub-accept.socket") > 200))
	grep -q '^TriggerLimitIntervalSec=' "$unitdir/gitpubsub-accept.socket"
	unit_has "$unitdir/gitpubsub-accept@.service" StandardInput=socket
	unit_has "$unitdir/gitpubsub-accept@.service" StandardError=journal
	unit_has "$unitdir/gitpubsub-accept@.service" User=gitpubsub
	unit_has "$unitdir/gitpubsub-accept@.service" RemoveIPC=no
	unit_has "$unitdir/gitpubsub-accept@.service" ReadOnlyPaths=-/dev/shm/gitpubsub
	unit_has "$unitdir/gitpubsub-accept@.service" RestrictAddressFamilies=AF_UNIX
	unit_has "$unitdir/gitpubsub-accept@.service" IPAddressDeny=any

	unit_has "$unitdir/gitpubsub-broker.service" Type=notify
	unit_has "$unitdir/gitpubsub-broker.service" User=gitpubsub
	unit_has "$unitdir/gitpubsub-broker.service" RemoveIPC=no
	unit_has "$unitdir/gitpubsub-broker.service" Restart=always
	run -1 grep -q '^DynamicUser=' "$unitdir/gitpubsub-broker.service" \
		"$unitdir/gitpubsub-frontend.service" "$unitdir/gitpubsub-accept@.service"
	# an ordering cycle at boot: sockets.target comes before every default service
	run -1 grep -q '^Before=.*gitpubsub.socket' "$unitdir/gitpubsub-broker.service"
}

@test "the sysusers file creates the static system user and group" {
	local root=$BATS_FILE_TMPDIR/sysroot uid shell
	mkdir -p "$root/etc"
	run -0 systemd-sysusers --root="$root" "$GPS_REPO/systemd/gitpubsub.sysusers"
	run -0 grep '^gitpubsub:' "$root/etc/passwd"
	IFS=: read -r _ _ uid _ _ _ shell <<<"$output"
	((uid > 0 && uid < 1000))
	[[ $shell == */nologin ]]
	grep -q "^gitpubsub:x:[0-9]*:" "$root/etc/group"
}

# render PAGE - man -l PAGE to stdout; warnings (groff's included) to stderr.
render()
{
	MANWIDTH=100 man --warnings -E UTF-8 -l "$1"
}

@test "man -l renders every installed page without a warning" {
	local dest=$BATS_FILE_TMPDIR/dest-man page
	run -0 mk install DESTDIR="$dest"
	for page in man1/gpsctl.1 man1/gitpubsub-hook.1 man8/gitpubsub.8; do
		run -0 --separate-stderr render "$dest/usr/local/share/man/$page"
		[[ -z $stderr ]] || {
			echo "man -l $page warned: $stderr" >&2
			false
		}
		[[ $output == *NAME*SYNOPSIS*DESCRIPTION*"SEE ALSO"* ]]
	done
	# the other names of gitpubsub(8) lead to it
	for page in gitpubsub-broker gitpubsub-frontend gitpubsub.cfg; do
		run -0 --separate-stderr man --warnings -M "$dest/usr/local/share/man" "$page"
		[[ -z $stderr && $output == *"gitpubsub, gitpubsub-broker, gitpubsub-frontend"* ]]
	done
}

@test "gitpubsub(8) documents every configuration key and option, gpsctl(1) every command and option" {
	local page sec key opt re
	page=$(render "$GPS_REPO/man/gitpubsub.8")
	# every key the configuration parser knows (common/config.c), with its section
	while read -r sec key; do
		[[ $page == *"[$sec]"* ]] || _gps_fail "gitpubsub.8 lacks section [$sec]" || return 1
		re=$'\n'" +$key \\(default "
		[[ $page =~ $re ]] ||
			_gps_fail "gitpubsub.8 does not document key '$key'" || return 1
	done < <(sed -n 's/.*CONFIG_KEY("\([A-Za-z]*\)", "\([A-Za-z]*\)".*/\1 \2/p' \
		"$GPS_REPO/common/config.c")
	for opt in $("$GPS_BUILD/gitpubsub-broker" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		[[ $page == *"$opt"* ]] || _gps_fail "gitpubsub.8 lacks broker option $opt" || return 1
	done

	page=$(render "$GPS_REPO/man/gpsctl.1")
	for opt in status stats check dump tail topics; do
		re=$'\n'" +$opt"
		[[ $page =~ $re ]] || _gps_fail "gpsctl.1 lacks command $opt" || return 1
	done
	for opt in $("$GPS_BUILD/gpsctl" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		[[ $page == *"$opt"* ]] || _gps_fail "gpsctl.1 lacks option $opt" || return 1
	done
}

# --- inetd ---------------------------------------------------------------------------------

# The Debian openbsd-inetd binary (scripts/install-deps installs it).
INETD=/usr/sbin/inetd

# stop_inetd - stop the inetd of this file and the frontends it started (its process group).
stop_inetd()
{
	local pid
	[[ -f $BATS_FILE_TMPDIR/inetd.pid ]] || return 0
	pid=$(<"$BATS_FILE_TMPDIR/inetd.pid")
	kill -TERM -- "-$pid" 2>/dev/null
	_gps_sleep_until "$WAIT" _gps_group_dead "$pid" || kill -KILL -- "-$pid" 2>/dev/null
	rm -f "$BATS_FILE_TMPDIR/inetd.pid"
}

# inetd_up PORT - whether something answers a HEAD on 127.0.0.1:PORT.
inetd_up()
{
	curl -sf -o /dev/null --max-time 2 -I "http://127.0.0.1:$1/"
}

@test "inetd: the frontend under openbsd-inetd streams a publish made through it" {
	local conf=$BATS_FILE_TMPDIR/inetd.conf line port url raw
	local -a f
	[[ -x $INETD ]] || _gps_fail "$INETD missing: run scripts/install-deps (openbsd-inetd)"
	# the shipped line, with a loopback port, this user, the binary under test and the test
	# service's ring, socket and configuration
	line=$(grep -v '^#' "$GPS_REPO/inetd/gitpubsub.inetd.conf" | grep .)
	[[ $(wc -l <<<"$line") == 1 ]]
	read -r -a f <<<"$line"
	[[ ${f[0]} == 2069 && ${f[1]} == stream && ${f[2]} == tcp && ${f[3]} == nowait.* ]]
	[[ ${f[4]} == gitpubsub && ${f[5]} == "$DEFAULT_LIBEXEC/gitpubsub-frontend" ]]
	grep -qE "^[[:space:]]*server[[:space:]]*= $DEFAULT_LIBEXEC/gitpubsub-frontend\$" \
		"$GPS_REPO/inetd/gitpubsub.xinetd"
	port=$(free_port)
	printf '127.0.0.1:%s %s %s %s %s %s %s --config %s --ring %s --socket %s\n' \
		"$port" "${f[1]}" "${f[2]}" "${f[3]}" "$(id -un)" "$GPS_BUILD/gitpubsub-frontend" \
		"${f[6]}" "$GPS_CFG" "$GPS_RING" "$GPS_RUN_DIR/broker.sock" >"$conf"

	# -d -i: debug, in the foreground; -E: keep the environment, so the frontends log at debug
	# level: none of it may reach a client (stderr is the client's socket under inetd).
	GITPUBSUB_LOG_LEVEL=debug setsid "$INETD" -d -i -E "$conf" \
		</dev/null >"$BATS_FILE_TMPDIR/inetd.log" 2>&1 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/inetd.pid"
	_gps_sleep_until "$WAIT" inetd_up "$port" || {
		cat "$BATS_FILE_TMPDIR/inetd.log" >&2
		false
	}
	url=http://127.0.0.1:$port

	GPS_URL=$url gps_subscribe viainetd /inetd
	[[ $(gps_sub_head viainetd) == "HTTP/1.1 200 OK"* ]]
	[[ $(GPS_URL=$url gps_publish /inetd/x '{"via":"inetd"}') == 200 ]]
	[[ $(cat "$GPS_LAST_BODY") == $'Message sent!\r' ]]
	# a publish through the systemd-socket-activate listener reaches it too: one ring
	[[ $(gps_publish /inetd '{"via":"listener"}') == 200 ]]
	gps_wait_messages viainetd 2
	[[ $(gps_messages viainetd) == '{"via":"inetd"}'$'\n''{"via":"listener"}' ]]

	# statistics through inetd count the stream
	[[ $(GPS_URL=$url gps_stat X-Subscribers) -ge 1 ]]

	# an error answer is one clean HTTP response: no log line on the way
	raw=$BATS_FILE_TMPDIR/inetd-error.raw
	gps_raw 127.0.0.1 "$port" $'BREW / HTTP/1.1\r\nHost: x\r\n\r\n' >"$raw"
	gps_check_error "$raw" 405
	run -1 grep -a -e 'gitpubsub-frontend' -e 'debug' "$raw"
	run -1 grep -a 'gitpubsub-frontend:' "$BATS_FILE_TMPDIR/sub-viainetd.raw"
}

@test "gitpubsub-run refuses a runtime folder that belongs to another user, and makes its own private" {
	local port dir=$BATS_TEST_TMPDIR/theirs rt=$BATS_TEST_TMPDIR/xdg
	port=$(free_port)
	install -d -m 0777 -o nobody "$dir"
	run -1 "$GPS_BUILD/gitpubsub-run" --listen "127.0.0.1:$port" --runtime-dir "$dir" \
		--ring "/gps-t60-$$"
	[[ $output == *"runtime folder '$dir' belongs to nobody, not to you; remove it or choose another with --runtime-dir"* ]]
	[[ ! -e $dir/broker.sock ]]
	# a symbolic link is refused too: it could lead anywhere
	ln -s "$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR/link"
	run -1 "$GPS_BUILD/gitpubsub-run" --listen "127.0.0.1:$port" \
		--runtime-dir "$BATS_TEST_TMPDIR/link" --ring "/gps-t60-$$"
	# the default is in XDG_RUNTIME_DIR, made 0700
	mkdir -m 0700 "$rt"
	XDG_RUNTIME_DIR=$rt timeout 20 "$GPS_BUILD/gitpubsub-run" --listen "127.0.0.1:$port" \
		--ring "/gps-t60-$$" >"$BATS_TEST_TMPDIR/run.log" 2>&1 3>&- &
	_gps_sleep_until 10 test -e "$rt/gitpubsub-$port/ready"
	[[ $(stat -c %a "$rt/gitpubsub-$port") == 700 ]]
	kill -TERM $!
	wait $! || true
	rm -f "/dev/shm/gps-t60-$$" "/dev/shm/gps-t60-$$.stats"
}

@test "14.10: gitpubsub-run names its ring after the user and refuses one of another user" {
	local port rt=$BATS_TEST_TMPDIR/xdg ring
	port=$(free_port)
	ring=/gitpubsub-$(id -u)-$port
	mkdir -m 0700 "$rt"
	# another user's object under the default name: refused before anything starts
	install -m 0644 -o nobody /dev/null "/dev/shm$ring"
	run -1 env XDG_RUNTIME_DIR="$rt" "$GPS_BUILD/gitpubsub-run" --listen "127.0.0.1:$port"
	echo "# $output" >&3
	[[ $output == *"ring '/dev/shm$ring' belongs to nobody, not to you; remove it or choose another with --ring"* ]]
	rm -f "/dev/shm$ring"
	# without it, the default ring is this user's: /gitpubsub-UID-PORT, 0644, ours
	XDG_RUNTIME_DIR=$rt timeout 20 "$GPS_BUILD/gitpubsub-run" --listen "127.0.0.1:$port" \
		>"$BATS_TEST_TMPDIR/run.log" 2>&1 3>&- &
	_gps_sleep_until 10 test -e "$rt/gitpubsub-$port/ready"
	echo "# $(stat -c '%n %a %U' "/dev/shm$ring")" >&3
	[[ $(stat -c '%a %u' "/dev/shm$ring") == "644 $(id -u)" ]]
	grep -q "(ring $ring," "$BATS_TEST_TMPDIR/run.log"
	kill -TERM $!
	wait $! || true
	rm -f "/dev/shm$ring" "/dev/shm$ring.stats"
}
