#!/usr/bin/env bash
# shellcheck disable=SC2034 # BATS_FILE_TMPDIR and GPS_* are read by tests/lib.bash
#
# soak.bash: the soak of README "Reliability". The whole service (gitpubsub-run) for SOAK_SECONDS
# (default 1800: 30 minutes) with 500 subscribers, 20 messages a second on one keep-alive
# connection, and 5% of the subscribers hanging up and replaced by new ones every 5 s. Criteria:
#   - broker memory: its RSS (VmRSS) and its private RSS (RssAnon + RssFile: the heap, whatever
#     the ring's shared pages do) grow by at most 1 MiB from the first sample after warm-up to
#     the last (Pss is printed too);
#   - file descriptors: the broker's and the listener's (systemd-socket-activate) the same at
#     the first and the last sample (min and max printed);
#   - 0 lost messages: every subscriber gets every message published while it was connected
#     (from its response head to 1 s before it hung up), exactly once, in order, no gap notice;
#   - X-Subscribers (a trusted HEAD, PROTOCOL 6.1) equal to the streams open within 2 s of every
#     churn;
#   - every publish answered 200, X-Cursor seqs consecutive (nothing else stored).
# The ring is small (256 KiB: it wraps every couple of minutes), so every page of it is touched
# before the warm-up ends and the broker's VmRSS measures the broker, not the ring filling up.
#
# One driver does the work (tests/tools/crashload.c --soak, built by make test-programs); this
# script starts the service with tests/lib.bash, judges the figures, and ends with
# "soak: N passed, M failed". Exit 0 when every criterion holds, 1 otherwise, 2 on a usage error.
#
# Usage: tests/torture/soak.bash        (environment: SOAK_SECONDS, GPS_BUILD, GPS_MODE)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

SOAK_SECONDS=${SOAK_SECONDS:-1800}
# The issue's figures.
SOAK_SUBSCRIBERS=500
SOAK_RATE=20
SOAK_CHURN_PERCENT=5
SOAK_CHURN_MS=5000
SOAK_MEM_GROWTH_KIB=1024
SOAK_XSUB_WITHIN_MS=2000
# Samples start after this warm-up (the ring has wrapped by then); a short run takes a quarter.
SOAK_WARMUP_S=120
# A sample of memory and fds every this long.
SOAK_SAMPLE_MS=10000
# A subscriber that hangs up must have had every message answered 200 this long before.
SOAK_GRACE_MS=1000
SOAK_RING=256K
# The driver gives up this long after the soak should have ended.
SOAK_SLACK_S=300

if [[ $# -gt 0 || ! $SOAK_SECONDS =~ ^[0-9]+$ || $SOAK_SECONDS -lt 20 ]]; then
	echo "usage: SOAK_SECONDS=N (at least 20) $0" >&2
	exit 2
fi
((SOAK_WARMUP_S > SOAK_SECONDS / 4)) && SOAK_WARMUP_S=$((SOAK_SECONDS / 4))

BATS_FILE_TMPDIR=$(mktemp -d /tmp/gps-soak.XXXXXX) || exit 1
export BATS_FILE_TMPDIR
# shellcheck source=tests/lib.bash
source "$repo/tests/lib.bash"
trap 'gps_stop; rm -rf "$BATS_FILE_TMPDIR"' EXIT

passed=0 failed=0

# figure NAME - the driver's figure NAME.
figure()
{
	sed -n "s/^$1=//p" "$BATS_FILE_TMPDIR/figures"
}

# check DESCRIPTION EXPRESSION - one criterion: an arithmetic expression over the figures.
check()
{
	if (($2)); then
		echo "ok - soak: $1"
		passed=$((passed + 1))
	else
		echo "not ok - soak: $1"
		failed=$((failed + 1))
	fi
}

[ -x "$GPS_BUILD/tests/tools/crashload" ] || {
	echo "soak: no $GPS_BUILD/tests/tools/crashload: build it with 'make test-programs'" >&2
	exit 1
}
# headerTimeout and sendTimeout at their defaults (the test library's are short): on a busy
# machine, a process starved of CPU for a second must not end a stream. keepalive at its
# default too: what a deployment runs.
gps_start "[Limits]" "headerTimeout: 10s" "[Stream]" "keepalive: 5s" "sendTimeout: 60s" \
	"[History]" "ringSize: $SOAK_RING" || exit 1

echo "# soak: $SOAK_SECONDS s, $SOAK_SUBSCRIBERS subscribers, $SOAK_RATE messages/s," \
	"$SOAK_CHURN_PERCENT% replaced every $SOAK_CHURN_MS ms (build $GPS_BUILD, mode $GPS_MODE)"
timeout -k 10 $((SOAK_SECONDS + SOAK_SLACK_S + 30)) "$GPS_BUILD/tests/tools/crashload" --soak \
	--port "$GPS_PORT" --run-dir "$GPS_RUN_DIR" --gpsctl "$GPS_BUILD/gpsctl" --ring "$GPS_RING" \
	--subscribers "$SOAK_SUBSCRIBERS" --seconds "$SOAK_SECONDS" --rate "$SOAK_RATE" \
	--churn-percent "$SOAK_CHURN_PERCENT" --churn-ms "$SOAK_CHURN_MS" \
	--warmup "$SOAK_WARMUP_S" --sample-ms "$SOAK_SAMPLE_MS" --grace-ms "$SOAK_GRACE_MS" \
	--deadline $((SOAK_SECONDS + SOAK_SLACK_S)) >"$BATS_FILE_TMPDIR/figures" \
	2>"$BATS_FILE_TMPDIR/driver.err"
rc=$?
sed 's/^/# /' "$BATS_FILE_TMPDIR/driver.err" | tail -n 20
if ((rc != 0)) || [[ -z $(figure samples) ]]; then
	echo "not ok - soak: the driver failed (exit $rc)"
	echo "soak: $passed passed, 1 failed"
	exit 1
fi
# every figure on one commented line per group, for the record
for group in "seconds subscribers published status_200 status_other stored churns" \
	"subscribers_hung_up subscribers_total survivors deliveries_checked" \
	"lost duplicates reorders malformed phantom gaps unexpected_closes cursor_mismatch" \
	"xsub_checks xsub_late xsub_never xsub_max_settle_ms xsub_errors samples" \
	"broker_rss_kib_first broker_rss_kib_last broker_private_kib_first broker_private_kib_last" \
	"broker_pss_kib_first broker_pss_kib_last broker_shmem_kib_first broker_shmem_kib_last" \
	"broker_fds_first broker_fds_last broker_fds_min broker_fds_max" \
	"listener_fds_first listener_fds_last listener_fds_min listener_fds_max"; do
	line=""
	for f in $group; do
		line+="$f=$(figure "$f") "
	done
	echo "# figure: $line"
done

F() { figure "$1"; }
check "every publish answered 200 ($(F status_200) of $(F published))" \
	"$(F published) == SOAK_RATE * SOAK_SECONDS && $(F status_200) == $(F published)"
check "nothing else stored, X-Timestamps never back ($(F cursor_mismatch) seq breaks)" \
	"$(F stored_foreign) == 0 && $(F timestamp_backwards) == 0"
check "churn every ${SOAK_CHURN_MS} ms ($(F churns) churns, $(F subscribers_hung_up) hung up)" \
	"$(F churns) >= SOAK_SECONDS * 1000 / SOAK_CHURN_MS - 1 &&
	 $(F subscribers_hung_up) == $(F churns) * (SOAK_SUBSCRIBERS * SOAK_CHURN_PERCENT / 100)"
check "0 lost messages ($(F deliveries_checked) deliveries checked: $(F lost) lost, $(F duplicates) duplicates, $(F reorders) reorders, $(F gaps) gaps)" \
	"$(F lost) == 0 && $(F duplicates) == 0 && $(F reorders) == 0 && $(F gaps) == 0 &&
	 $(F phantom) == 0 && $(F deliveries_checked) > 0"
check "0 malformed lines, no stream closed by the service ($(F malformed), $(F unexpected_closes))" \
	"$(F malformed) == 0 && $(F unexpected_closes) == 0"
check "X-Subscribers exact within ${SOAK_XSUB_WITHIN_MS} ms of every churn (max $(F xsub_max_settle_ms) ms, $(F xsub_late) late of $(F xsub_checks))" \
	"$(F xsub_late) == 0 && $(F xsub_checks) >= $(F churns) &&
	 $(F xsub_max_settle_ms) <= SOAK_XSUB_WITHIN_MS"
check "one broker all along (pid $(F broker_pid_first))" \
	"$(F samples) >= 2 && $(F broker_pid_first) == $(F broker_pid_last)"
check "broker VmRSS growth $(($(F broker_rss_kib_last) - $(F broker_rss_kib_first))) KiB <= $SOAK_MEM_GROWTH_KIB KiB" \
	"$(F broker_rss_kib_last) - $(F broker_rss_kib_first) <= SOAK_MEM_GROWTH_KIB"
check "broker private RSS growth $(($(F broker_private_kib_last) - $(F broker_private_kib_first))) KiB <= $SOAK_MEM_GROWTH_KIB KiB (Pss $(F broker_pss_kib_first) -> $(F broker_pss_kib_last) KiB)" \
	"$(F broker_private_kib_last) - $(F broker_private_kib_first) <= SOAK_MEM_GROWTH_KIB"
check "broker fds constant ($(F broker_fds_first) -> $(F broker_fds_last), range $(F broker_fds_min)-$(F broker_fds_max))" \
	"$(F broker_fds_first) == $(F broker_fds_last) && $(F broker_fds_first) > 0"
check "listener fds constant ($(F listener_fds_first) -> $(F listener_fds_last), range $(F listener_fds_min)-$(F listener_fds_max))" \
	"$(F listener_fds_first) == $(F listener_fds_last) && $(F listener_fds_first) > 0"

echo "soak: $passed passed, $failed failed"
((failed == 0))
