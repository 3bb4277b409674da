#!/usr/bin/env bats
#
# README "Reliability", hostile input: a catalogue of malformed and malicious requests, one table
# below. Each row is sent raw on a connection of its own and must get exactly the status PROTOCOL
# section 7 names, as a complete PROTOCOL 7.1 error answer (Server, Content-Type: text/plain, a
# Content-Length equal to the one-line body, Connection: close, then the connection closed), and
# must publish nothing: the ring's count of published messages is read before and after every
# row. The few rows the contract accepts (valid JSON that looks odd, dot segments, trailers, a
# pipelined request after a body) publish exactly the payloads marked "ok". At the end a
# subscriber to / that was opened before the catalogue has received exactly those, in order,
# then the control publish, and no frontend or broker died on the way.
#
# Services: "main" trusts 127.0.0.1 (the default), with header and body deadlines of 4 s, far
# above what any row may take; "short" is the same with deadlines of 1 s, for the rows that
# must get their 408 at the deadline; "untrusted" (127.0.0.1 and ::1) and "mapped" (an IPv6
# socket on ::ffff:127.0.0.1, whose IPv4 peers are IPv4-mapped) trust only 10.9.9.9, so loopback
# is untrusted there and only forged headers could make it otherwise (PROTOCOL 5.2).

bats_require_minimum_version 1.5.0

load lib
load lib-http

# Answered "at once": well below main's 4 s header and body deadlines, not at a timeout, with
# room for a loaded machine.
FAST_MS=2000
# Answered at short's 1 s deadline: not before it, and not much after.
LATE_MIN_MS=900
LATE_MAX_MS=3000
# How long a row that opens a stream is watched: more than one keepalive period (1 s); a stream
# that ends before STREAM_OPEN_MS counts as closed by the server.
STREAM_WATCH=1.5
STREAM_OPEN_MS=1300
# The issue asks for at least this many rows.
MIN_ROWS=70

# Where the contract leaves a choice, the rows decide, as follows:
# - Bare LF line ends are accepted (RFC 9112 2.2 allows it; a bare CR is refused).
# - Dot segments are ordinary topic segments: topics name no files, and 2.1 splits on '/'
#   without resolving them; "%2A" decodes to a "*" segment, refused in a publish (2.5).
# - Two equal Content-Length headers are one (RFC 9110 8.6); differing ones are 400 (4.2). A
#   Content-Length past 2^64 is no number at all: 400, not 413.
# - Several Transfer-Encoding lines make one list (RFC 9110 5.3): "chunked" then "gzip" is not
#   "chunked", so 501 (7.2). A chunk size over the body limit is 413 as soon as it is read (4.4).
# - Trailer fields are checked and dropped (RFC 9112 7.1.2), a Content-Length among them too.
# - GET and HEAD may carry no body (RFC 9110 9.3.1, 9.3.2): their "body" would otherwise be
#   parsed as the next request, so they are refused with 400.
# - RFC 8259 is the measure of valid JSON (4.3): a lone surrogate escape such as "\ud800" is
#   valid (section 7's grammar takes any four hex digits; 8.2 names the case), so is a raw DEL
#   (section 7 asks only U+0000 to U+001F to be escaped), so are huge numbers (section 6 lets an
#   implementation limit them, and this one never reads them). Nesting may be limited (section
#   9): 100,000 levels are refused with 400.
# - X-Fetch-Since past 2^64 is a plain decimal naming a time in the future: it replays nothing
#   (3.5); differing duplicates are 400, whatever the letter case of their names.

# The catalogue. Columns, separated by '|' (spaces around them are ignored):
#   category  which test runs the row
#   name      what the row sends, and why the answer is what it is
#   expect    the status, or the statuses of pipelined answers in order ("200,400")
#   flags     fast: answered in under FAST_MS; late: sent to "short", answered at its 1 s
#             deadline; json: the body is PROTOCOL 4.3's "Invalid JSON data posted :("; nox: no
#             X- header (PROTOCOL 6.2); stream: a 200 stream that must replay nothing;
#             halfclose: the client shuts its sending half after the request; untrusted / v6 /
#             mapped: sent to the untrusted instance over 127.0.0.1, over ::1, or to the mapped
#             instance; a=NAME: gen_NAME's output replaces the request's one %s
#   request   the raw bytes, as a printf format: \r \n \t \xHH \0 expand, %% is a percent sign,
#             \\u is a backslash-u. @CL@ is replaced by the byte length of the body that follows
#             the next blank line, up to the end or to @@, which marks where a pipelined request
#             starts (and is removed). A leading space is written \x20.
# Only payloads the service must accept carry "ok":"<id>" (an "ok" id the subscriber must get);
# an accepted payload with "topic":"<path>" must be stored under that topic.
catalogue()
{
	cat <<'EOF'
line    | HTTP/0.9 simple request: no version at all                   | 400 | fast | GET /\r\n
line    | HTTP/0.9 named as the version                                | 400 | fast | GET / HTTP/0.9\r\nHost: h\r\n\r\n
line    | HTTP/2 connection preface                                    | 505 | fast | PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n
line    | HTTP/2 named by a GET                                        | 505 | fast | GET / HTTP/2\r\nHost: h\r\n\r\n
line    | HTTP/3.0 POST: refused on its request line, body never read  | 505 | fast | POST /x HTTP/3.0\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
line    | TLS 1.2 ClientHello                                          | 400 | fast a=random32 | \x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03%s\x00\x00\x02\xc0\x2f\x01\x00\x00\x00
line    | a TLS record header alone: refused on its first byte         | 400 | fast | \x16\x03\x01
line    | SSLv2-style ClientHello                                      | 400 | fast | \x80\x2e\x01\x00\x02\x00\x15\x00
line    | bare LF line ends, which RFC 9112 2.2 lets a server accept   | 200 |      | POST /lf HTTP/1.1\nHost: h\nContent-Length: @CL@\nConnection: close\n\n{"ok":"lf"}
line    | bare LF inside the request line                              | 400 | fast | GET /a\nb HTTP/1.1\r\nHost: h\r\n\r\n
line    | two spaces after the method                                  | 400 | fast | GET  / HTTP/1.1\r\nHost: h\r\n\r\n
line    | two spaces before the version                                | 400 | fast | GET /  HTTP/1.1\r\nHost: h\r\n\r\n
line    | a space after the version                                    | 400 | fast | GET / HTTP/1.1 \r\nHost: h\r\n\r\n
line    | a space before the method                                    | 400 | fast | \x20GET / HTTP/1.1\r\nHost: h\r\n\r\n
line    | a tab instead of a space                                     | 400 | fast | GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n
line    | lowercase method get (methods are case-sensitive)            | 405 | fast | get / HTTP/1.1\r\nHost: h\r\n\r\n
line    | lowercase method post, body never read                       | 405 | fast | post /x HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
line    | mixed-case method Put                                        | 405 | fast | Put /x HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
line    | method DELETE                                                | 405 | fast | DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n
line    | method TRACE                                                 | 405 | fast | TRACE / HTTP/1.1\r\nHost: h\r\n\r\n
line    | lowercase version http/1.1                                   | 400 | fast | GET / http/1.1\r\nHost: h\r\n\r\n
line    | unknown version HTTP/1.2                                     | 400 | fast | GET / HTTP/1.2\r\nHost: h\r\n\r\n
line    | version HTTP/1.10                                            | 400 | fast | GET / HTTP/1.10\r\nHost: h\r\n\r\n
line    | a 40-byte method                                             | 400 | fast | GETGETGETGETGETGETGETGETGETGETGETGETGETG / HTTP/1.1\r\nHost: h\r\n\r\n
line    | nine empty lines before the request line                     | 400 | fast | \r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n
line    | a NUL inside the method                                      | 400 | fast | GE\0T / HTTP/1.1\r\nHost: h\r\n\r\n
line    | no request target                                            | 400 | fast | GET HTTP/1.1\r\nHost: h\r\n\r\n
target  | raw NUL in a publish target                                  | 400 | fast | POST /a\0b HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | raw NUL in a subscription target                             | 400 | fast | GET /a\0b HTTP/1.1\r\nHost: h\r\n\r\n
target  | escaped NUL %00 in a publish target                          | 400 | fast | POST /a%%00b HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | dot segments are ordinary segments: no files behind topics   | 200 |      | POST /a/../b HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"dots","topic":"/a/../b"}
target  | escaped dot segments, decoded inside their segment           | 200 |      | POST /%%2e%%2e/%%2E/x HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"dots-escaped","topic":"/.././x"}
target  | CR LF injected raw into a target                             | 400 | fast | POST /a\r\nX-Injected: 1 HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | CR LF injected escaped into a publish target                 | 400 | fast | POST /a%%0d%%0aX-Injected:%%201 HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | escaped LF alone in a publish target                         | 400 | fast | POST /a%%0Ab HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | invalid escape %G1 in a publish target                       | 400 | fast | POST /a%%G1 HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | escape cut short at the end of a publish target              | 400 | fast | POST /a%%4 HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | invalid escape in a subscription                             | 400 | fast | GET /a%%zz HTTP/1.1\r\nHost: h\r\n\r\n
target  | escaped DEL %7f in a publish target                          | 400 | fast | POST /a%%7f HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | raw DEL in a target                                          | 400 | fast | GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n
target  | a * segment in a publish target                              | 400 | fast | POST /a/*/b HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | an escaped * segment %2A in a publish target                 | 400 | fast | POST /a/%%2A HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | asterisk-form target for a publish                           | 400 | fast | POST * HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | absolute form whose path has a * segment                     | 400 | fast | POST http://h/a/* HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
target  | absolute form with another scheme                            | 400 | fast | GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n
target  | a space inside the target                                    | 400 | fast | GET /a b HTTP/1.1\r\nHost: h\r\n\r\n
target  | a 9 KiB target                                               | 414 | fast a=a9k | GET /%s HTTP/1.1\r\nHost: h\r\n\r\n
target  | a 1 MiB publish target: refused before its end arrives       | 414 | fast a=a1m | POST /%s HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}
header  | header flood: 1 MiB of header lines                          | 431 | fast a=flood1m | HEAD / HTTP/1.1\r\nHost: h\r\n%s\r\n
header  | one 17 KiB header line                                       | 431 | fast a=b17k | HEAD / HTTP/1.1\r\nHost: h\r\nX-Long: %s\r\n\r\n
header  | 102 header lines                                             | 431 | fast a=lines101 | HEAD / HTTP/1.1\r\nHost: h\r\n%s\r\n
header  | 10,000 tiny header lines                                     | 431 | fast a=lines10k | HEAD / HTTP/1.1\r\nHost: h\r\n%s\r\n
header  | obs-fold with a space                                        | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n
header  | obs-fold with a tab                                          | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tb\r\n\r\n
header  | obs-fold on the first header line                            | 400 | fast | GET / HTTP/1.1\r\n Host: h\r\n\r\n
header  | obs-fold continuing a Content-Length                         | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n 9\r\n\r\n{"bad":1}
header  | a bare CR ending a header line                               | 400 | fast | GET / HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n
header  | a bare CR inside a value                                     | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n
header  | a NUL in a value                                             | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n
header  | a NUL in a name                                              | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-\0A: b\r\n\r\n
header  | a control byte in a value                                    | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n
header  | an 8-bit byte in a name                                      | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-\xc3\xa9: b\r\n\r\n
header  | a space before the colon                                     | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n
header  | a tab before the colon                                       | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A\t: b\r\n\r\n
header  | a space before the colon of Content-Length                   | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length : @CL@\r\n\r\n{"bad":1}
header  | a line without a colon                                       | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n
header  | an empty header name                                         | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n
header  | two differing Content-Length headers                         | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nContent-Length: 10\r\n\r\n{"bad":1}
header  | two equal Content-Length headers, which RFC 9110 8.6 allows  | 200 |      | POST /cl HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"equal-cl"}
header  | a Content-Length list in one line                            | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 9, 9\r\n\r\n{"bad":1}
header  | a Content-Length with a plus sign                            | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: +9\r\n\r\n{"bad":1}
header  | a negative Content-Length                                    | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n{"bad":1}
header  | a hex Content-Length                                         | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0x9\r\n\r\n{"bad":1}
header  | a Content-Length past 2^64                                   | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551625\r\n\r\n{"bad":1}
header  | an empty Content-Length                                      | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n{"bad":1}
framing | Content-Length of 1 GiB: 413 at once, no body read           | 413 | fast | POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 1073741824\r\n\r\n
framing | 1 GiB with Expect: 100-continue: a 413 and no 100            | 413 | fast | POST /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1073741824\r\n\r\n
framing | Content-Length with Transfer-Encoding                        | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\n\r\n
framing | Transfer-Encoding before Content-Length                      | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n9\r\n{"bad":1}\r\n0\r\n\r\n
framing | Transfer-Encoding lines chunked then gzip: not just chunked  | 501 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n9\r\n{"bad":1}\r\n0\r\n\r\n
framing | Transfer-Encoding: chunked twice                             | 501 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\n\r\n
framing | Transfer-Encoding: identity                                  | 501 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n{"bad":1}
framing | a chunk size past 2^64                                       | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n{"bad":1}\r\n0\r\n\r\n
framing | a chunk size of 2^63                                         | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n{"bad":1}\r\n0\r\n\r\n
framing | a chunk size of 2^62: over the limit as soon as it is read   | 413 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4000000000000000\r\n
framing | a chunk size in 0x notation                                  | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x9\r\n{"bad":1}\r\n0\r\n\r\n
framing | a negative chunk size                                        | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-9\r\n{"bad":1}\r\n0\r\n\r\n
framing | a 5,000-byte chunk extension                                 | 400 | fast a=e5k | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9;%s\r\n{"bad":1}\r\n0\r\n\r\n
framing | a 1 MiB chunk extension: refused before its end arrives      | 400 | fast a=e1m | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9;x=%s\r\n{"bad":1}\r\n0\r\n\r\n
framing | no CRLF after chunk data                                     | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}0\r\n\r\n
framing | chunk data longer than its size                              | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{"bad":1}\r\n0\r\n\r\n
framing | a bare CR after chunk data                                   | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r0\r\n\r\n
framing | trailer fields are checked and dropped, a Content-Length too | 200 |      | POST /tr HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\n{"ok":"trailer"}\r\n0\r\nX-Trailer: 1\r\nContent-Length: 99\r\n\r\n
framing | a trailer line without a colon                               | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\nX-Trailer\r\n\r\n
framing | obs-fold in a trailer                                        | 400 | fast | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\nX-T: 1\r\n 2\r\n\r\n
framing | a trailer section over 16 KiB                                | 400 | fast a=trailer17k | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\n%s\r\n
framing | an unframed one-line body over the 2 MiB limit               | 413 | fast a=a2m | POST /x HTTP/1.1\r\nHost: h\r\n\r\n"%s"\n
framing | a body shorter than its Content-Length: 408 at the deadline  | 408 | late | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{"bad":1}
framing | a chunked body that stops inside a chunk: 408                | 408 | late | POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n{"bad":1}
framing | a request head that never ends: 408                          | 408 | late | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n
framing | a body shorter than declared, then the client half-closes    | 400 | fast halfclose | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{"bad":1}
framing | a Content-Length cutting the JSON short                      | 400 | fast json | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n{"bad":1}
framing | an empty body                                                | 400 | fast json | POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n
framing | a request after a Content-Length body: answered in order     | 200,200 |  | POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"ok":"pipelined-1"}@@POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"pipelined-2"}
framing | a request after a chunked body: answered in order            | 200,200 |  | POST /s HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n{"ok":"pipelined-3"}\r\n0\r\n\r\n@@POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"pipelined-4"}
framing | a malformed request after a body: the first is stored        | 200,400 |  | POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"ok":"pipelined-5"}@@POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\n\r\n
framing | a HEAD whose Content-Length body is a POST                    | 400 | fast | HEAD / HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\nPOST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"bad":1}
framing | a page GET (Accept: text/html) whose body is a POST        | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nAccept: text/html\r\nContent-Length: @CL@\r\n\r\nPOST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"bad":1}
framing | a GET with a chunked body                                    | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
content | invalid UTF-8: a lone 0xff in a string                       | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xff"}
content | overlong 2-byte encoding of /                                | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xc0\xaf"}
content | overlong 3-byte encoding of /                                | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xe0\x80\xaf"}
content | overlong 4-byte encoding of /                                | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xf0\x80\x80\xaf"}
content | overlong encoding of a quote, hiding the string's end        | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xc0\xa2}
content | a surrogate U+D800 encoded in UTF-8                          | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xed\xa0\x80"}
content | a code point above U+10FFFF                                  | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xf4\x90\x80\x80"}
content | a UTF-8 sequence cut short                                   | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\xe2\x82"}
content | invalid UTF-8 after the JSON text                            | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}\xff
content | a raw control byte in a string                               | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"a\x01b"}
content | a raw NUL in a string                                        | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"a\0b"}
content | a raw LF in a string                                         | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"a\nb"}
content | a raw tab in a string                                        | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"a\tb"}
content | a raw DEL in a string, which RFC 8259 section 7 allows       | 200 |      | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"del","s":"a\x7fb"}
content | 100,000-deep array nesting                                   | 400 | fast a=deep_array | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n%s
content | 100,000-deep object nesting                                  | 400 | fast a=deep_object | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n%s
content | a 1,000-digit integer: valid JSON, accepted                  | 200 | a=digits1k | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"bigint","n":%s}
content | an exponent of 999999999: valid JSON, accepted              | 200 |      | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"bigexp","n":-1.5e999999999,"m":1E-999999999}
content | a lone high surrogate escape: valid per RFC 8259 sections 7, 8.2 | 200 | | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"lone-high","s":"\\ud800"}
content | a lone low surrogate escape, then a reversed pair            | 200 |      | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\nConnection: close\r\n\r\n{"ok":"lone-low","s":"\\udfff","t":"\\udc00\\ud800"}
content | trailing garbage after the JSON text                         | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1} x
content | two JSON texts                                               | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}{"bad":2}
content | a trailing comma                                             | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":[1,]}
content | a misspelled literal                                         | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":tru}
content | a number with a leading zero                                 | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":01}
content | NaN and Infinity                                             | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":[NaN,Infinity]}
content | a UTF-8 byte order mark before the text                      | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n\xef\xbb\xbf{"bad":1}
content | an invalid escape                                            | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\\x41"}
content | a unicode escape cut short                                   | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"\\u12"}
content | an unterminated string                                       | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":"1}
content | a single-quoted string                                       | 400 | fast json | POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{'bad':1}
trust   | X-Forwarded-For naming the trusted peer                      | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | Forwarded: for= the trusted peer                             | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nForwarded: for=10.9.9.9;proto=http\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | X-Real-IP naming the trusted peer                            | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nX-Real-IP: 10.9.9.9\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | a trusted: header, which the original obeyed                 | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\ntrusted: yes\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | every forged header at once, with PUT                        | 403 | fast untrusted | PUT /t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9, 127.0.0.1\r\nForwarded: for="10.9.9.9"\r\nX-Real-IP: 10.9.9.9\r\nX-Client-IP: 10.9.9.9\r\ntrusted: 1\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | Expect: 100-continue from an untrusted peer: a 403 and no 100 | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n
trust   | a 1 GiB body from an untrusted peer: 403 before any body     | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nX-Real-IP: 10.9.9.9\r\nContent-Length: 1073741824\r\n\r\n
trust   | an untrusted body carrying a second POST: never parsed       | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\nPOST /t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9\r\nContent-Length: 9\r\n\r\n{"bad":1}
trust   | a chunked body from an untrusted peer                        | 403 | fast untrusted | POST /t HTTP/1.1\r\nHost: h\r\nForwarded: for=10.9.9.9\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"bad":1}\r\n0\r\n\r\n
trust   | an untrusted HEAD with X-Forwarded-For: no statistics        | 200 | fast untrusted nox | HEAD / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.9.9.9\r\nForwarded: for=10.9.9.9\r\ntrusted: yes\r\nConnection: close\r\n\r\n
trust   | over ::1, X-Forwarded-For: an IPv4-mapped trusted address    | 403 | fast v6 | POST /t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: ::ffff:10.9.9.9\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | over ::1, Forwarded: for= an IPv4-mapped trusted address     | 403 | fast v6 | POST /t HTTP/1.1\r\nHost: h\r\nForwarded: for="[::ffff:10.9.9.9]"\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | over ::1, a HEAD with X-Real-IP: no statistics               | 200 | fast v6 nox | HEAD / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 10.9.9.9\r\nConnection: close\r\n\r\n
trust   | an IPv4-mapped peer ::ffff:127.0.0.1 is checked as 127.0.0.1 | 403 | fast mapped | POST /t HTTP/1.1\r\nHost: h\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
trust   | an IPv4-mapped peer with X-Forwarded-For: ::ffff:10.9.9.9    | 403 | fast mapped | POST /t HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: ::ffff:10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\nContent-Length: @CL@\r\n\r\n{"bad":1}
replay  | X-Fetch-Since: garbage                                       | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: yesterday\r\n\r\n
replay  | X-Fetch-Since: empty                                         | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since:\r\n\r\n
replay  | X-Fetch-Since: negative                                      | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: -1\r\n\r\n
replay  | X-Fetch-Since: a plus sign                                   | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: +1\r\n\r\n
replay  | X-Fetch-Since: an exponent                                   | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 1e9\r\n\r\n
replay  | X-Fetch-Since: hex                                           | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 0x10\r\n\r\n
replay  | X-Fetch-Since: a fraction without its integer part           | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: .5\r\n\r\n
replay  | X-Fetch-Since: a dot without a fraction                      | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 1.\r\n\r\n
replay  | X-Fetch-Since: two dots                                      | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 1.2.3\r\n\r\n
replay  | X-Fetch-Since: a decimal comma                               | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 1,5\r\n\r\n
replay  | X-Fetch-Since: a space inside                                | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 1 2\r\n\r\n
replay  | X-Fetch-Since: inf                                           | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: inf\r\n\r\n
replay  | X-Fetch-Since: fullwidth digits                              | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: \xef\xbc\x91\xef\xbc\x92\r\n\r\n
replay  | two differing X-Fetch-Since headers                          | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 1\r\nX-Fetch-Since: 2\r\n\r\n
replay  | differing X-Fetch-Since headers in other letter cases        | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nx-fetch-since: 0\r\nX-FETCH-SINCE: 99999999999\r\n\r\n
replay  | a valid X-Fetch-Since, then a garbage one                    | 400 | fast | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 0\r\nX-Fetch-Since: now\r\n\r\n
replay  | X-Fetch-Since past 2^64: a time in the future, replays nothing | 200 | stream | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: 18446744073709551617.5\r\n\r\n
replay  | a 4,000-digit X-Fetch-Since: in the future, replays nothing  | 200 | stream a=digits4k | GET / HTTP/1.1\r\nHost: h\r\nX-Fetch-Since: %s\r\n\r\n
EOF
}

# Generators for the a=NAME flag: each prints the bytes that replace a row's %s.
gen_random32()
{
	perl -e 'print "\x11" x 32'
}
gen_a9k()
{
	perl -e 'print "a" x 9216'
}
gen_a1m()
{
	perl -e 'print "a" x 1048576'
}
gen_a2m()
{
	perl -e 'print "a" x (2 * 1048576 + 1024)'
}
gen_flood1m()
{
	perl -e 'printf "X-Flood-%d: %s\r\n", $_, "f" x 1000 for 1 .. 1000'
}
gen_b17k()
{
	perl -e 'print "b" x 17408'
}
gen_lines101()
{
	perl -e 'print "X-$_: y\r\n" for 1 .. 101'
}
gen_lines10k()
{
	perl -e 'print "a:b\r\n" x 10000'
}
gen_e5k()
{
	perl -e 'print "e" x 5000'
}
gen_e1m()
{
	perl -e 'print "e" x 1048576'
}
gen_trailer17k()
{
	perl -e 'printf "X-T%d: %s\r\n", $_, "t" x 100 for 1 .. 170'
}
gen_deep_array()
{
	perl -e 'print "[" x 100000, "]" x 100000'
}
gen_deep_object()
{
	perl -e 'print "{\"a\":" x 100000, "1", "}" x 100000'
}
gen_digits1k()
{
	perl -e 'print "1", "234567890" x 111'
}
gen_digits4k()
{
	perl -e 'print "9" x 4000'
}

# build_request FORMAT [GENERATOR] - print the request bytes of a row (see catalogue).
build_request()
{
	local fmt=$1 gen=${2:-}
	{
		if [[ -n $gen ]]; then
			# shellcheck disable=SC2059 # the row is the format
			printf -- "${fmt%%"%s"*}"
			"gen_$gen"
			# shellcheck disable=SC2059
			printf -- "${fmt#*"%s"}"
		else
			# shellcheck disable=SC2059
			printf -- "$fmt"
		fi
	} | perl -0777 -pe '
		$_ = join "", map {
			my $s = $_;
			if ($s =~ /\@CL\@/) {
				my $b = $s =~ /\r?\n\r?\n(.*)\z/s ? $1 : "";
				my $l = length $b;
				$s =~ s/\@CL\@/$l/g;
			}
			$s
		} split /\@\@/, $_, -1'
}

# trim VAR... - remove leading and trailing spaces from each named variable (no subshell).
trim()
{
	local -n ref
	for ref in "$@"; do
		ref=${ref#"${ref%%[! ]*}"}
		ref=${ref%"${ref##*[! ]}"}
	done
}

# untraced FUNCTION ARGS... - run a function of this file in a child bash, out of bats' reach:
# bats traces every command of a test (about 5 ms each), which would cost more than sending the
# catalogue's requests. The child gets this file's functions and the variables they read; fd 3
# (the TAP output) is inherited. Returns the function's status.
untraced()
{
	local vars
	vars=$(declare -p GPS_REPO GPS_BUILD GPS_MODE GPS_PORT GPS_URL GPS_RING GPS_RUN_DIR \
		GPS_LOG BATS_FILE_TMPDIR BATS_TEST_TMPDIR HTTP_KILL_SLACK FAST_MS LATE_MIN_MS \
		LATE_MAX_MS STREAM_WATCH STREAM_OPEN_MS)
	LC_ALL=C bash -c "$vars; $(declare -f); shopt -s lastpipe; \"\$@\"" untraced "$@"
}

# ring_of INSTANCE - print the ring name of "main" or of an http_instance_start instance.
ring_of()
{
	if [[ $1 == main ]]; then
		echo "$GPS_RING"
	else
		cat "$BATS_FILE_TMPDIR/inst-$1/runner.ring"
	fi
}

# published INSTANCE - print how many messages were ever stored in INSTANCE's ring.
published()
{
	local out
	out=$("$GPS_BUILD/gpsctl" --ring "$(ring_of "$1")" status --json) || return 1
	[[ $out =~ \"published\":\ ([0-9]+) ]] || _gps_fail "no published count in: $out" ||
		return 1
	echo "${BASH_REMATCH[1]}"
}

# stream_send HOST PORT < REQUEST - send REQUEST and read for STREAM_WATCH seconds (the stream
# never ends by itself); sets HTTP_OUT, HTTP_MS and HTTP_CLOSED like http_send.
stream_send()
{
	local out=$BATS_TEST_TMPDIR/stream.$RANDOM start ms
	start=$(date +%s%N)
	timeout -k 1 "$STREAM_WATCH" socat -t 5 - "$(_http_addr "$1" "$2")" >"$out" \
		2>/dev/null || true
	ms=$(http_ms_since "$start")
	http_adopt "$out" "$ms" $((ms < STREAM_OPEN_MS ? 1 : 0))
}

# parse_answers FILE - cut the responses in FILE apart, in pure bash (no process per check):
# ANS_STATUS, ANS_HEAD (status line and header lines, CRLF-separated) and ANS_BODY hold one
# entry per response; a body is Content-Length bytes, none for a 1xx, the rest of FILE for a
# response without Content-Length (a stream). ANS_REST holds any bytes after the last one.
parse_answers()
{
	local data head cl re_status='^HTTP/1\.[01] ([0-9]{3}) '
	local re_cl=$'\r\n''content-length:[ 	]*([0-9]+)'$'\r'
	ANS_STATUS=() ANS_HEAD=() ANS_BODY=() ANS_REST=
	IFS= read -r -d '' data <"$1" || true
	while [[ $data == *$'\r\n\r\n'* ]]; do
		head=${data%%$'\r\n\r\n'*}
		[[ $head =~ $re_status ]] || break
		data=${data#*$'\r\n\r\n'}
		ANS_STATUS+=("${BASH_REMATCH[1]}")
		ANS_HEAD+=("$head")
		if [[ ${BASH_REMATCH[1]} == 1* ]]; then
			ANS_BODY+=("")
		elif [[ ${head,,}$'\r' =~ $re_cl ]]; then
			cl=${BASH_REMATCH[1]}
			ANS_BODY+=("${data:0:cl}")
			data=${data:cl}
		else
			ANS_BODY+=("$data")
			data=
		fi
	done
	ANS_REST=$data
}

# header_value HEAD NAME - set HV to the value of header NAME (lowercase name) in HEAD, without
# surrounding blanks; returns 1 if HEAD has no such header.
header_value()
{
	local re=$'\r\n'"$2"':[ 	]*([^'$'\r'']*)'
	HV=
	[[ ${1,,}$'\r' =~ $re ]] || return 1
	HV=${BASH_REMATCH[1]%"${BASH_REMATCH[1]##*[! 	]}"}
}

# check_error STATUS HEAD BODY - PROTOCOL 7.1: status line "HTTP/1.1 STATUS <reason>", Server,
# Content-Type: text/plain, Connection: close, a Content-Length equal to the body's length, and
# a one-line body ending in CRLF (the 403 body of PROTOCOL 4.1 has no line end: compat).
check_error()
{
	local status=$1 head=$2 body=$3 re_line re_body=$'^[^\r\n]+\r\n$'
	re_line='^HTTP/1\.1 '"$status"' [^[:cntrl:]]+('$'\r''|$)'
	[[ $head =~ $re_line ]] || _gps_fail "status line is not 'HTTP/1.1 $status <reason>'" ||
		return 1
	header_value "$head" server && [[ -n $HV ]] || _gps_fail "no Server header" || return 1
	header_value "$head" content-type && [[ $HV =~ ^text/plain($|[\ \;]) ]] ||
		_gps_fail "Content-Type is not text/plain" || return 1
	header_value "$head" connection && [[ $HV == close ]] ||
		_gps_fail "no 'Connection: close'" || return 1
	header_value "$head" content-length && ((HV == ${#body})) ||
		_gps_fail "Content-Length '$HV' but a body of ${#body} bytes" || return 1
	if ((status == 403)); then
		[[ $body == "Only trusted sources may send data!" ]] ||
			_gps_fail "403 body is not PROTOCOL 4.1's text" || return 1
	else
		[[ $body =~ $re_body ]] || _gps_fail "body is not one line ending in CRLF" ||
			return 1
	fi
}

# check_answer EXPECT FLAGS REQFILE - check the last exchange (HTTP_OUT, HTTP_MS, HTTP_CLOSED)
# against a row: the statuses in order, the last answer's form, and the row's flags.
check_answer()
{
	local expect=$1 flags=" $2 " req=$3 want got k last head body data rest re_x
	parse_answers "$HTTP_OUT"
	want=${expect//,/ }
	got=${ANS_STATUS[*]}
	[[ $got == "$want" ]] || _gps_fail "statuses '$got', expected '$want'" || return 1
	k=$((${#ANS_STATUS[@]} - 1))
	last=${ANS_STATUS[k]} head=${ANS_HEAD[k]} body=${ANS_BODY[k]}
	if [[ $flags == *" stream "* ]]; then
		((!HTTP_CLOSED)) || _gps_fail "the stream was closed (${HTTP_MS} ms)" || return 1
		header_value "$head" transfer-encoding && [[ $HV == chunked ]] ||
			_gps_fail "no chunked stream head" || return 1
		[[ $body == *'{"stillalive": '* ]] ||
			_gps_fail "no keepalive within ${STREAM_WATCH}s" || return 1
		data=$(printf '%s' "$body" | grep -a '^{' | grep -av '^{"stillalive": ' || true)
		[[ -z $data ]] || _gps_fail "replayed: $data" || return 1
		return 0
	fi
	[[ -z $ANS_REST ]] || _gps_fail "bytes after the last answer" || return 1
	((HTTP_CLOSED)) || _gps_fail "the connection was left open (${HTTP_MS} ms)" || return 1
	if ((last >= 400)); then
		check_error "$last" "$head" "$body" || return 1
		if ((last == 405)); then
			rest=${head,,}
			rest=${rest//$'\r\nallow:'/}
			[[ $head$'\r' == *$'\r\nAllow: GET, HEAD, POST, PUT\r'* ]] &&
				((${#head} - ${#rest} == 8)) ||
				_gps_fail "no single 'Allow: GET, HEAD, POST, PUT'" || return 1
		fi
	fi
	for ((k = 0; k < ${#ANS_STATUS[@]}; k++)); do
		[[ ${ANS_STATUS[k]} == 200 && ${ANS_HEAD[k],,} == *$'\r\nx-timestamp:'* ]] || continue
		[[ ${ANS_BODY[k]} == $'Message sent!\r\n' ]] ||
			_gps_fail "a publish's 200 without 'Message sent!'" || return 1
	done
	if [[ $flags == *" json "* ]]; then
		[[ $body == $'Invalid JSON data posted :(\r\n' ]] ||
			_gps_fail "body is not PROTOCOL 4.3's 'Invalid JSON data posted :('" || return 1
	fi
	if [[ $flags == *" nox "* ]]; then
		re_x=$'\r\n''x-'
		[[ ! ${head,,} =~ $re_x ]] || _gps_fail "X- headers shown to an untrusted peer" ||
			return 1
	fi
	if [[ $flags == *" fast "* ]]; then
		((HTTP_MS < FAST_MS)) || _gps_fail "answered after ${HTTP_MS} ms, not at once" ||
			return 1
	fi
	if [[ $flags == *" late "* ]]; then
		((HTTP_MS >= LATE_MIN_MS && HTTP_MS < LATE_MAX_MS)) ||
			_gps_fail "answered after ${HTTP_MS} ms, not at the 1 s deadline" || return 1
	fi
	return 0
}

# run_row NAME EXPECT FLAGS FORMAT - send one row and check the answer and the ring. Appends
# the row's "ok" ids to $BATS_FILE_TMPDIR/expected-ids.
run_row()
{
	local name=$1 expect=$2 flags=$3 fmt=$4 gen='' inst=main host=127.0.0.1 port=$GPS_PORT
	local opts='' f req before after oks
	for f in $flags; do
		case $f in
		a=*) gen=${f#a=} ;;
		untrusted) inst=untrusted ;;
		v6) inst=untrusted host=::1 ;;
		mapped) inst=mapped ;;
		halfclose) opts=shut-down ;;
		late) inst=short ;;
		fast | json | nox | stream) ;;
		*) _gps_fail "unknown flag '$f'" || return 1 ;;
		esac
	done
	[[ $inst != main ]] && port=$(http_instance_port "$inst")
	req=$BATS_TEST_TMPDIR/row.$((++ROW_SEQ))
	build_request "$fmt" "$gen" >"$req" || return 1
	oks=$(grep -ao '"ok":"[^"]*"' "$req" || true)
	# The count after the previous row on this instance is the count before this one.
	before=${PUBLISHED[$inst]:-}
	[[ -n $before ]] || before=$(published "$inst") || return 1
	if [[ " $flags " == *" stream "* ]]; then
		stream_send "$host" "$port" <"$req"
	else
		http_send "$host" "$port" 3 "$opts" <"$req"
	fi
	check_answer "$expect" "$flags" "$req" || return 1
	# Nothing published but the payloads marked "ok", each exactly once.
	after=$(published "$inst") || return 1
	PUBLISHED[$inst]=$after
	((after - before == $(grep -c . <<<"$oks"))) ||
		_gps_fail "ring count went from $before to $after; expected ids: ${oks:-none}" ||
		return 1
	[[ -z $oks ]] || printf '%s\n' "$oks" >>"$BATS_FILE_TMPDIR/expected-ids"
}

# run_category CATEGORY - run every row of CATEGORY; report each failing row (the request and
# the answer), and fail if any did.
run_category()
{
	local cat name expect flags fmt rows=0 failed=0 start
	local -A PUBLISHED=()
	start=$(date +%s%N)
	while IFS='|' read -r -u 9 cat name expect flags fmt; do
		[[ $cat =~ ^[[:space:]]*(#|$) ]] && continue
		trim cat name expect flags fmt
		[[ $cat == "$1" ]] || continue
		rows=$((rows + 1))
		if ! run_row "$name" "$expect" "$flags" "$fmt"; then
			failed=$((failed + 1))
			{
				echo "FAILED: $1: $name (expected $expect)"
				echo "  request (first 300 bytes, cat -A):"
				head -c 300 "$BATS_TEST_TMPDIR/row.$ROW_SEQ" | cat -A | sed 's/^/    /'
				echo
				echo "  answer (first 1000 bytes, cat -A), ${HTTP_MS:-?} ms:"
				head -c 1000 "${HTTP_OUT:-/dev/null}" | cat -A | sed 's/^/    /'
				echo
			} >&2
		fi
	done 9< <(catalogue)
	echo "# $1: $rows rows, $failed failed, $(http_ms_since "$start") ms" >&3
	((rows > 0)) || _gps_fail "no rows in category $1" || return 1
	((failed == 0))
}

setup_file()
{
	gps_start "[Limits]" "headerTimeout: 4s" "bodyTimeout: 4s"
	http_instance_start short 127.0.0.1:PORT -- "[Limits]" "headerTimeout: 1s" "bodyTimeout: 1s"
	http_instance_start untrusted 127.0.0.1:PORT '[::1]:PORT' -- \
		"[Clients]" "trustedPeers: 10.9.9.9"
	http_instance_start mapped '[::ffff:127.0.0.1]:PORT' -- \
		"[Clients]" "trustedPeers: 10.9.9.9"
	gps_broker_pid >"$BATS_FILE_TMPDIR/broker.pid0"
	# A message held before the catalogue, for replay rows to (wrongly) replay.
	[[ $(gps_publish /pre '{"pre":1}') == 200 ]]
	published main >"$BATS_FILE_TMPDIR/published0"
	: >"$BATS_FILE_TMPDIR/expected-ids"
	gps_subscribe all /
}

teardown_file()
{
	http_unsubscribe_all
	http_instance_stop_all
	gps_stop
}

@test "7.2: the catalogue has at least 70 rows, in every category of the issue" {
	local cat rows=0 c
	local -A per=()
	while IFS='|' read -r cat _; do
		trim cat
		[[ -z $cat ]] && continue
		per[$cat]=$((${per[$cat]:-0} + 1))
		rows=$((rows + 1))
	done < <(catalogue)
	echo "# $rows rows" >&3
	((rows >= MIN_ROWS))
	for c in line target header framing content trust replay; do
		((${per[$c]:-0} >= 5)) || _gps_fail "category $c has ${per[$c]:-0} rows"
	done
	((${#per[@]} == 7))
}

@test "1.1, 7.2: request line and version oddities" {
	untraced run_category line
}

@test "2.5, 2.6, 7.2: hostile request targets" {
	untraced run_category target
}

@test "7.2: hostile header sections" {
	untraced run_category header
}

# PROTOCOL 1.3 and 4.2 decide what a "smuggled" request is here: a body ends where its framing
# says, and the bytes after it are the next pipelined request of the same peer, answered in
# order. So both requests are served (each publish stored exactly once), with no more rights
# than the peer has anyway; what must never happen is a body parsed as a request (an untrusted
# body, a HEAD's body) or a request hidden from the framing (Content-Length with
# Transfer-Encoding, doubled Transfer-Encoding).
@test "1.3, 4.2, 4.4, 7.2: body framing and request smuggling" {
	untraced run_category framing
}

@test "4.3: hostile body content" {
	untraced run_category content
}

@test "5.2, 4.1, 6.2: forged trust headers from untrusted peers" {
	untraced run_category trust
}

@test "3.5: hostile X-Fetch-Since values" {
	untraced run_category replay
}

@test "4.5, 5.2: nothing the catalogue refused was published; the control publish was" {
	local want got n ids line topic stored pid0 died
	# The control: published now, after every row, so it arrives after anything they stored.
	[[ $(gps_publish /control '{"control":"after the catalogue"}') == 200 ]]
	ids=$(sed 's/^"ok":"\(.*\)"$/\1/' "$BATS_FILE_TMPDIR/expected-ids")
	n=$(grep -c . <<<"$ids" || true)
	echo "# $n accepted payloads, all others refused" >&3
	gps_wait_messages all $((n + 1)) 10
	run -0 gps_messages all
	# Exactly the accepted payloads, in order, then the control: nothing else.
	[ "${#lines[@]}" -eq $((n + 1)) ]
	[ "${lines[n]}" = '{"control":"after the catalogue"}' ]
	got=$(printf '%s\n' "${lines[@]:0:n}" | sed -n 's/^{"ok":"\([^"]*\)".*/\1/p')
	[ "$got" = "$ids" ]
	# The ring holds the pre message, the accepted ones and the control.
	[ "$(published main)" -eq $(($(<"$BATS_FILE_TMPDIR/published0") + n + 1)) ]
	[ "$(published untrusted)" -eq 0 ]
	[ "$(published short)" -eq 0 ]
	[ "$(published mapped)" -eq 0 ]
	# Accepted payloads that name a topic were stored under exactly that topic (PROTOCOL 2.1).
	while read -r _ stored line; do
		[[ $line =~ \"topic\":\"([^\"]*)\" ]] || continue
		topic=${BASH_REMATCH[1]}
		[ "$stored" = "$topic" ]
	done < <("$GPS_BUILD/gpsctl" --ring "$GPS_RING" dump --topic)
	# No broker restarted and no frontend died of anything but a normal exit.
	pid0=$(<"$BATS_FILE_TMPDIR/broker.pid0")
	[ "$(gps_broker_pid)" = "$pid0" ]
	died=$(cat "$GPS_LOG" "$BATS_FILE_TMPDIR"/inst-*/gitpubsub-run.log |
		grep -a -e 'died with code [1-9]' -e 'Sanitizer' -e 'runtime error' -e 'exited;' ||
		true)
	[ -z "$died" ]
}
