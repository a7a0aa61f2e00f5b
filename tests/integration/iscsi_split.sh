#!/usr/bin/env bash
# Requests longer than the LUN's maximum transfer length are split into
# several SCSI commands (virtio/blk_iscsi_split.c), against a real tgtd.
# tgt advertises no maximum (its Block Limits page has no such knob), so the
# test build's hook FERRY_TEST_ISCSI_LIMITS=3 makes ferry act on a 3-block
# limit for READ/WRITE, UNMAP and WRITE SAME, as it would for a target that
# sets one; tgt's optimal_xfer_gran= (a real VPD field) sets the granularity.
# The guest's 8-sector requests thus go as 3 commands each.
# Usage: iscsi_split.sh CASE (rw: every request type, checked on the LUN;
# restart: tgtd dies under split writes, which are reissued).
# Exit 0 pass, 1 fail, 77 skip.
set -u
: "${FERRY:?}" "${TESTGUEST:?}" "${SRCDIR:?}"
case_name=$1

fail() {
	echo "FAIL: $*"
	[ -e "$work/serial" ] && sed 's/^/  serial: /' "$work/serial" | tail -n 8
	[ -e "$work/err" ] && sed 's/^/  err: /' "$work/err" | tail -n 12
	exit 1
}
. "$(dirname "$0")/iscsi_lib.sh"
iscsi_init iscsisplit "iqn.2026-11.org.ferry.test:split$$"
grep -q '^#define FERRY_TEST_HOOKS' "$(dirname "$FERRY")/config.h" 2>/dev/null ||
	skip "ferry was built without test hooks (meson -Dtest_hooks=true): no way to set a LUN limit on tgt"
export FERRY_TEST_ISCSI_LIMITS=3
# Every tgt_start: a thin LUN (UNMAP, WRITE SAME) with an optimal transfer
# granularity of 2 blocks.
LUN_PARAMS=thin_provisioning=1,optimal_xfer_gran=2

expect_split_log() {
	grep -q "test hook: iSCSI limits set to 3 blocks" "$work/err" || fail "the limits hook did not apply"
	grep -q "at most 3 blocks per READ/WRITE: longer requests are split" "$work/err" ||
		fail "ferry did not report the LUN's transfer limit"
}

case $case_name in
rw)
	# Writes (1, 4 and 8 segments: parts cut inside and across the guest's
	# buffers), reads, flush, discard and write zeroes, each as 3 commands.
	tgt_start
	GUEST_LOG_LEVEL=debug run_guest testguest.run=blk --disk "$URL"
	[ "$rc" = 0 ] || fail "ferry exited $rc"
	expect_serial "TESTGUEST PASS blk"
	expect_serial "TESTGUEST INFO blk: discard ok"
	expect_serial "TESTGUEST INFO blk: write zeroes ok"
	expect_split_log
	grep -q "granularity 2" "$work/err" || fail "tgt's optimal_xfer_gran=2 was not probed"
	# What the guest wrote at sector 8 (pattern seeded by the guest) is on
	# the LUN: not all zero, and sector 0 reads back as written zeroes.
	"$work/iscsi_check" "$URL" 0 8192 "$work/dump" || fail "cannot read the LUN back"
	[ "$(head -c 4096 "$work/dump" | tr -d '\0' | wc -c)" = 0 ] || fail "write zeroes left data at sector 0"
	[ "$(tail -c 4096 "$work/dump" | tr -d '\0' | wc -c)" -gt 0 ] || fail "the guest's write at sector 8 is not on the LUN"
	;;
restart)
	# tgtd dies under a stream of split writes: the part at the target is
	# reissued on the new session, the parts done stay done, and every
	# write the guest was told is done is on the LUN.
	tgt_start
	start_guest testguest.run=blkloop --disk "$URL,queue-depth=2"
	wait_loops 10 60 || fail "blkloop did not run on the LUN"
	for round in 1 2; do
		tgt_crash
		sleep 1.5
		before=$(loops)
		tgt_start
		wait_loops $((before + 15)) 60 || fail "the guest did not go on after restart $round"
		echo "ok: restart $round: the guest went on ($(loops) lines)"
	done
	grep -q "session back" "$work/err" || fail "ferry did not report the reconnection"
	expect_split_log
	stop_guest
	check_blkloop
	;;
*)
	fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
