#!/usr/bin/env bats
# shellcheck disable=SC2030,SC2031
#
# Issue 14 item 7 (README "Behind a reverse proxy, everyone is 127.0.0.1"): the README's nginx
# configuration, run. A real nginx terminates TLS in front of the service, twice: once as the
# README shows it (proxy_bind 127.0.0.2, an address trustedPeers leaves out) and once without
# proxy_bind, the mistake the README warns of. Through the first a publish gets 403 and a
# token's 200; through the second anyone's publish gets 200; the hook's direct publish from
# 127.0.0.1 gets 200; subscribers behind the proxy get every stored message. Skipped when nginx
# or openssl is not installed.

bats_require_minimum_version 1.5.0

load lib

# The token of the tests: published through the proxy, scoped to /viaproxy.
TOKEN=gps_proxytesttokenproxytesttokenproxytest0
# The address nginx connects from in the README's setup.
PROXY_ADDR=127.0.0.2

setup_file()
{
	local dir=$BATS_FILE_TMPDIR/nginx
	command -v nginx >/dev/null && command -v openssl >/dev/null || return 0
	mkdir -p "$dir/tmp"
	printf 'sha256:%s /viaproxy\n' "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" \
		>"$BATS_FILE_TMPDIR/tokens"
	chmod 600 "$BATS_FILE_TMPDIR/tokens"
	gps_start "[Clients]" "trustedPeers: 127.0.0.1 ::1" "proxies: $PROXY_ADDR" \
		"tokensFile: $BATS_FILE_TMPDIR/tokens"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj /CN=localhost -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
	SAFE_PORT=$(free_port)
	UNSAFE_PORT=$(free_port)
	export SAFE_PORT UNSAFE_PORT
	# server_block PORT [proxy_bind line]: the README's server block, on PORT
	server_block()
	{
		cat <<-EOF
			server {
			    listen 127.0.0.1:$1 ssl;
			    ssl_certificate     $dir/cert.pem;
			    ssl_certificate_key $dir/key.pem;
			    location / {
			        proxy_pass http://127.0.0.1:$GPS_PORT;
			        $2
			        proxy_http_version 1.1;
			        proxy_set_header Connection "";
			        proxy_buffering off;
			        proxy_read_timeout 1h;
			    }
			}
		EOF
	}
	{
		echo "daemon off; master_process off; pid $dir/nginx.pid; error_log $dir/error.log;"
		echo "events { worker_connections 256; }"
		echo "http { access_log off; client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp;"
		echo "fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;"
		server_block "$SAFE_PORT" "proxy_bind $PROXY_ADDR;"
		server_block "$UNSAFE_PORT" ""
		echo "}"
	} >"$dir/nginx.conf"
	setsid nginx -p "$dir" -c "$dir/nginx.conf" </dev/null >"$dir/stdout" 2>&1 3>&- &
	echo $! >"$dir/pid"
	if ! _gps_sleep_until 5 _proxy_up "$SAFE_PORT" ||
		! _gps_sleep_until 5 _proxy_up "$UNSAFE_PORT"; then
		cat "$dir/error.log" "$dir/stdout" >&2
		return 1
	fi
}

teardown_file()
{
	local f=$BATS_FILE_TMPDIR/nginx/pid
	if [[ -f $f ]]; then
		kill -TERM "$(<"$f")" 2>/dev/null || true
	fi
	for f in "$BATS_FILE_TMPDIR"/sub-*.pid; do
		[[ -f $f ]] && kill -TERM "$(<"$f")" 2>/dev/null
	done
	gps_stop
}

setup()
{
	# scripts/install-deps check installs both: missing, the test fails, it is not skipped
	command -v nginx >/dev/null || _gps_fail "nginx is not installed (scripts/install-deps check)"
	command -v openssl >/dev/null || _gps_fail "openssl is not installed (scripts/install-deps check)"
}

# _proxy_up PORT - whether nginx answers on PORT over TLS.
_proxy_up()
{
	curl -sk -o /dev/null --max-time 1 -I "https://127.0.0.1:$1/"
}

# via PORT TOPIC JSON [CURL_ARGS...] - publish through the proxy on PORT; print the status.
via()
{
	local port=$1 topic=$2 json=$3
	shift 3
	GPS_URL=https://127.0.0.1:$port gps_publish "$topic" "$json" -k "$@"
}

# subscribe NAME PORT TOPIC - a subscriber through the proxy on PORT, its body in sub-NAME.out.
subscribe()
{
	curl -skN -o "$BATS_FILE_TMPDIR/sub-$1.out" "https://127.0.0.1:$2$3" </dev/null 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/sub-$1.pid"
}

# received NAME - the lines subscriber NAME received, their CRs cut (compat: lines end CRLF).
received()
{
	tr -d '\r' <"$BATS_FILE_TMPDIR/sub-$1.out" 2>/dev/null
}

# has NAME TEXT - whether subscriber NAME received a line TEXT.
has()
{
	received "$1" | grep -qxF "$2"
}

@test "14.7: behind the README's nginx (proxy_bind $PROXY_ADDR) a publish gets 403, a token's 200; without proxy_bind anyone's gets 200" {
	local safe unsafe direct token got
	subscribe s "$SAFE_PORT" /viaproxy
	# the subscription is live once a keepalive came (1 s in the tests' configuration)
	_gps_sleep_until 5 test -s "$BATS_FILE_TMPDIR/sub-s.out"

	# a client of the proxy, on this very machine (127.0.0.1, a trusted address)
	safe=$(via "$SAFE_PORT" /viaproxy '{"via":"safe"}')
	echo "# through the README's proxy (proxy_bind $PROXY_ADDR): $safe '$(tr -d '\r\n' <"$GPS_LAST_BODY")'" >&3
	[ "$safe" = 403 ]
	grep -q "Only trusted sources may send data!" "$GPS_LAST_BODY"
	# the same through the proxy without proxy_bind: it connects from 127.0.0.1, and the
	# whole world with it
	unsafe=$(via "$UNSAFE_PORT" /viaproxy '{"via":"unsafe"}')
	echo "# through the proxy without proxy_bind (from 127.0.0.1): $unsafe" >&3
	[ "$unsafe" = 200 ]
	# the hook's way: straight to the service from 127.0.0.1
	direct=$(gps_publish /viaproxy '{"via":"direct"}')
	echo "# straight to the service from 127.0.0.1: $direct" >&3
	[ "$direct" = 200 ]
	# a publisher elsewhere: through the proxy with a token, which nginx passes on untouched
	token=$(via "$SAFE_PORT" /viaproxy '{"via":"token"}' -H "Authorization: Bearer $TOKEN")
	echo "# through the README's proxy with a token: $token" >&3
	[ "$token" = 200 ]

	# the subscriber behind the proxy gets what was stored, and nothing else
	_gps_sleep_until 5 has s '{"via":"token"}'
	got=$(received s | grep -v stillalive | tr '\n' ' ')
	echo "# the subscriber through the proxy received: $got" >&3
	[ "$got" = '{"via":"unsafe"} {"via":"direct"} {"via":"token"} ' ]

	# and gpsctl check, on this configuration, warns of nothing; told the proxy is 127.0.0.1,
	# it does
	run -0 "$GPS_BUILD/gpsctl" --config "$GPS_CFG" --ring "$GPS_RING" check
	[[ $output != *WARNING* ]]
	sed 's/^proxies: .*/proxies: 127.0.0.1/' "$GPS_CFG" >"$BATS_FILE_TMPDIR/unsafe.cfg"
	run -0 "$GPS_BUILD/gpsctl" --config "$BATS_FILE_TMPDIR/unsafe.cfg" --ring "$GPS_RING" check
	[[ $output == *"WARNING: [Clients] trustedPeers entry '127.0.0.1' covers the reverse proxy '127.0.0.1'"* ]]
}
