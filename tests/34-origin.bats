#!/usr/bin/env bats
#
# Browsers cannot publish for a page (README "Reliability", local and browser threats): a
# POST/PUT from a trusted address that a browser sent for a web page (it carries Origin, or
# Sec-Fetch-Site other than none or same-origin) is refused with 403 unless that origin is in
# [Clients] publishOrigins; trusted HEAD statistics likewise (DNS rebinding). curl and the hook
# send neither header and are unaffected.

bats_require_minimum_version 1.5.0

load lib

setup_file()
{
	gps_start "[Clients]" "publishOrigins: https://ci.example.org http://localhost:8080"
}

teardown_file()
{
	gps_stop
}

# post PATH BODY CURL_ARGS... - the status of a publish with extra curl arguments
post()
{
	curl -sS -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' --max-time 10 -d "$2" "${@:3}" \
		"$GPS_URL$1"
}

@test "3.13: a publish carrying an Origin not listed is refused 403, and nothing is stored" {
	gps_subscribe o /origin
	[ "$(post /origin '{"o":1}' -H 'Origin: https://evil.example')" = 403 ]
	grep -q 'publishOrigins' "$BATS_TEST_TMPDIR/body"
	[ "$(post /origin '{"o":2}' -H 'Origin: null')" = 403 ]
	[ "$(post /origin '{"o":3}' -H 'Sec-Fetch-Site: cross-site')" = 403 ]
	[ "$(post /origin '{"o":4}' -H 'Sec-Fetch-Site: same-site')" = 403 ]
	# PUT is the same (PROTOCOL 4.1)
	[ "$(post /origin '{"o":5}' -X PUT -H 'Origin: https://evil.example')" = 403 ]
	# what may publish: no browser header (curl, the hook), a listed origin, a same-origin
	# or user-typed request
	[ "$(post /origin '{"o":6}')" = 200 ]
	[ "$(post /origin '{"o":7}' -H 'Origin: https://ci.example.org')" = 200 ]
	[ "$(post /origin '{"o":8}' -H 'Origin: http://localhost:8080' -H 'Sec-Fetch-Site: cross-site')" = 200 ]
	[ "$(post /origin '{"o":9}' -H 'Sec-Fetch-Site: none')" = 200 ]
	[ "$(post /origin '{"o":10}' -H 'Sec-Fetch-Site: same-origin')" = 200 ]
	gps_wait_messages o 5
	[ "$(gps_messages o | tr '\n' ' ')" = '{"o":6} {"o":7} {"o":8} {"o":9} {"o":10} ' ]
}

@test "3.13: an origin is listed exactly: no prefix, no other scheme or port" {
	[ "$(post /origin '{"x":1}' -H 'Origin: https://ci.example.org.evil.example')" = 403 ]
	[ "$(post /origin '{"x":2}' -H 'Origin: http://ci.example.org')" = 403 ]
	[ "$(post /origin '{"x":3}' -H 'Origin: http://localhost:8081')" = 403 ]
}

@test "3.13: trusted HEAD statistics are not shown to a page of another origin" {
	local h
	h=$(curl -sS -I --max-time 10 "$GPS_URL/")
	grep -q '^X-Subscribers: ' <<<"$h"
	h=$(curl -sS -I --max-time 10 -H 'Origin: https://evil.example' "$GPS_URL/")
	grep -q '^HTTP/1.1 200 ' <<<"$h"
	run -1 grep -q '^X-' <<<"$h"
	h=$(curl -sS -I --max-time 10 -H 'Sec-Fetch-Site: cross-site' "$GPS_URL/")
	run -1 grep -q '^X-' <<<"$h"
	h=$(curl -sS -I --max-time 10 -H 'Origin: https://ci.example.org' "$GPS_URL/")
	grep -q '^X-Subscribers: ' <<<"$h"
}
