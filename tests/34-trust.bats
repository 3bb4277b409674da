#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031 # GPS_URL is set per command on purpose, to reach other instances
#
# PROTOCOL 5: trusted peers. Every form of trustedPeers entry, each trusting what it should and
# nothing else; bad entries refused at start-up; the peer is the socket's address, whatever the
# request says, and an IPv4-mapped IPv6 peer is checked as IPv4.
#
# Any 127.x.y.z is a loopback address, so curl --interface 127.x.y.z picks the source address.

bats_require_minimum_version 1.5.0

load lib
load lib-http

# The main instance: one entry of each form.
MAIN_TRUST="127.0.0.1 127.0.0.2 127.0.1.0/24 127.0.2.* 127.3.*.* ::1"

setup_file()
{
	gps_start "[Clients]" "trustedPeers: $MAIN_TRUST"
	# No trustedPeers line: the default list.
	http_instance_start default 127.0.0.1:PORT '[::1]:PORT'
	# An IPv6 CIDR block holding ::1, and 127.0.0.1 left out.
	http_instance_start v6cidr 127.0.0.1:PORT '[::1]:PORT' -- \
		"[Clients]" "trustedPeers: 127.0.0.2 ::/127"
	# An IPv6 block not holding ::1.
	http_instance_start v6out '[::1]:PORT' -- "[Clients]" "trustedPeers: 127.0.0.1 fd00::/8"
	# An IPv6 listener on an IPv4-mapped address: its IPv4 peers are seen as ::ffff:a.b.c.d.
	http_instance_start mapped '[::ffff:127.0.0.1]:PORT' -- \
		"[Clients]" "trustedPeers: 127.0.0.1 127.0.1.0/24 127.0.2.*"
	http_instance_start mapped6 '[::ffff:127.0.0.1]:PORT' -- "[Clients]" "trustedPeers: ::1"
}

teardown_file()
{
	http_instance_stop_all
	gps_stop
}

teardown()
{
	http_unsubscribe_all
}

# code_on INSTANCE HOST SOURCE [CURL_ARGS...] - publish to /trust on INSTANCE ("main" or a name
# given to http_instance_start) through HOST (127.0.0.1 or ::1) from address SOURCE, and print the
# status code. A 403 must carry the exact body of PROTOCOL 4.1.
code_on()
{
	local inst=$1 host=$2 src=$3 port url code
	shift 3
	if [[ $inst == main ]]; then
		port=$GPS_PORT
	else
		port=$(http_instance_port "$inst")
	fi
	if [[ $host == *:* ]]; then
		url="http://[$host]:$port"
	else
		url="http://$host:$port"
	fi
	code=$(GPS_URL=$url gps_publish /trust '{"t":1}' -g --interface "$src" "$@") || return 1
	if [[ $code == 403 && $(<"$GPS_LAST_BODY") != "Only trusted sources may send data!" ]]; then
		echo "403 from $src with body '$(<"$GPS_LAST_BODY")'" >&2
		return 1
	fi
	echo "$code"
}

# trusted INSTANCE HOST SOURCE... - require 200 for a publish from each SOURCE.
trusted()
{
	local inst=$1 host=$2 src code
	shift 2
	for src in "$@"; do
		code=$(code_on "$inst" "$host" "$src") || return 1
		[[ $code == 200 ]] || {
			echo "$inst: publish from $src got $code, wanted 200 (trusted)" >&2
			return 1
		}
	done
}

# untrusted INSTANCE HOST SOURCE... - require 403 for a publish from each SOURCE.
untrusted()
{
	local inst=$1 host=$2 src code
	shift 2
	for src in "$@"; do
		code=$(code_on "$inst" "$host" "$src") || return 1
		[[ $code == 403 ]] || {
			echo "$inst: publish from $src got $code, wanted 403 (untrusted)" >&2
			return 1
		}
	done
}

@test "5.1 an address entry trusts exactly that address" {
	gps_subscribe all /
	trusted main 127.0.0.1 127.0.0.1 127.0.0.2
	untrusted main 127.0.0.1 127.0.0.3 127.0.0.20 127.1.0.1
	# Refused publishes stored nothing: the subscriber has only the two accepted ones.
	run -0 gps_publish /trust '{"marker":1}'
	[ "$output" = 200 ]
	gps_wait_messages all 3
	run -0 gps_messages all
	[ "$output" = $'{"t":1}\n{"t":1}\n{"marker":1}' ]
}

@test "5.1 a CIDR entry trusts its block" {
	trusted main 127.0.0.1 127.0.1.0 127.0.1.1 127.0.1.77 127.0.1.255
	untrusted main 127.0.0.1 127.0.3.1 127.0.0.254 127.1.1.1
	trusted v6cidr ::1 ::1
	untrusted v6cidr 127.0.0.1 127.0.0.1
	untrusted v6out ::1 ::1
}

@test "5.1 a dotted pattern with trailing * octets trusts its block" {
	trusted main 127.0.0.1 127.0.2.1 127.0.2.200 127.3.0.1 127.3.4.5 127.3.255.254
	untrusted main 127.0.0.1 127.0.20.1 127.2.2.1 127.4.3.2 127.33.1.1
}

@test "5.1 the default list trusts 127.0.0.1 and ::1 only" {
	trusted default 127.0.0.1 127.0.0.1
	trusted default ::1 ::1
	untrusted default 127.0.0.1 127.0.0.2 127.0.1.1
}

@test "5.1 a bad entry is a start-up error naming the entry" {
	local bad cfg=$BATS_TEST_TMPDIR/bad.cfg
	local -a entries=(
		10.0.0.0/33 300.1.1.1 '127.0.*.1' '*.0.0.1' localhost ::1/129 10.0.0.1/ 1.2.3 1.2.3.4.5
		'127.0.0.1,::1' fd00::/8x 10.0.0.0/-1 '127.0.0.*/24' 127.0.0.0/8/8 fd00:::1 '127.0.0.**'
	)
	for bad in "${entries[@]}"; do
		printf '[Clients]\ntrustedPeers: 127.0.0.1 %s ::1\n' "$bad" >"$cfg"
		http_broker_try "$cfg"
		[[ $BROKER_RC == 1 ]] || {
			echo "trustedPeers entry '$bad': broker result '$BROKER_RC', wanted exit 1" >&2
			cat "$BROKER_ERR" >&2
			return 1
		}
		grep -qF -- "$bad" "$BROKER_ERR" || {
			echo "trustedPeers entry '$bad': the error does not name it:" >&2
			cat "$BROKER_ERR" >&2
			return 1
		}
	done

	# The same file with good entries of every form starts.
	printf '[Clients]\ntrustedPeers: 127.0.0.1 10.0.0.0/8 fd00::/8 192.168.0.* 10.*.*.* ::1\n' \
		>"$cfg"
	http_broker_try "$cfg"
	[ "$BROKER_RC" = ready ]
}

@test "5.2 X-Forwarded-For, trusted and other headers do not grant trust" {
	local h code
	for h in 'X-Forwarded-For: 127.0.0.1' 'trusted: true' 'trusted: 1' 'X-Real-IP: 127.0.0.1' \
		'Forwarded: for=127.0.0.1' 'Client-IP: 127.0.0.1' 'X-Client-IP: 127.0.0.1'; do
		code=$(code_on main 127.0.0.1 127.0.0.9 -H "$h")
		[[ $code == 403 ]] || {
			echo "untrusted peer with '$h' got $code, wanted 403" >&2
			return 1
		}
	done
}

@test "5.2 headers do not take trust away" {
	local code
	code=$(code_on main 127.0.0.1 127.0.0.1 -H 'X-Forwarded-For: 10.9.9.9' -H 'trusted: no')
	[ "$code" = 200 ]
}

@test "5.2 an IPv4-mapped peer is checked as its IPv4 address" {
	trusted mapped 127.0.0.1 127.0.0.1 127.0.1.9 127.0.2.3
	untrusted mapped 127.0.0.1 127.0.0.5 127.0.3.1
	# ::1 is an IPv6 entry: it does not cover the peer ::ffff:127.0.0.1.
	untrusted mapped6 127.0.0.1 127.0.0.1
}
