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
work=$(mktemp -d /tmp/ferry-iscsisplit.XXXXXX)
tgtpid=""
ferrypid=""
ctl=""
IQN=iqn.2026-11.org.ferry.test:split$$

fail() {
	echo "FAIL: $*"
	[ -e "$work/serial" ] && sed 's/^/  serial: /' "$work/serial" | tail -n 8
	[ -e "$work/err" ] && sed 's/^/  err: /' "$work/err" | tail -n 12
	exit 1
}
skip() { echo "SKIP: $*"; exit 77; }

# tgtd ignores SIGTERM: delete the target, then kill it.
tgt_stop() {
	[ -n "$tgtpid" ] || return 0
	tgtadm -C "$ctl" --op delete --mode target --tid 1 --force >/dev/null 2>&1
	kill -9 "$tgtpid" 2>/dev/null
	wait "$tgtpid" 2>/dev/null
	tgtpid=""
}
cleanup() {
	[ -n "$ferrypid" ] && kill -9 "$ferrypid" 2>/dev/null
	tgt_stop
	rm -rf "$work"
}
trap cleanup EXIT

[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
{ [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || skip "/dev/kvm not accessible to $(id -un)"
command -v tgtd >/dev/null && command -v tgtadm >/dev/null || skip "no tgtd/tgtadm (apt-get install tgt)"
"$FERRY" run --disk iscsi://127.0.0.1/x/1 --kernel /nonexistent 2>&1 | grep -q "built without libiscsi" &&
	skip "ferry was built without libiscsi"
grep -q '^#define FERRY_TEST_HOOKS' "$(dirname "$FERRY")/config.h" 2>/dev/null ||
	skip "ferry was built without test hooks (meson -Dtest_hooks=true): no way to set a LUN limit on tgt"
cc -O2 -o "$work/iscsi_check" "$SRCDIR/tests/tools/iscsi_check.c" -liscsi 2>"$work/cc.err" ||
	skip "cannot build the libiscsi checker: $(tail -1 "$work/cc.err")"
. "$(dirname "$0")/lib.sh"

port=$(free_port)
[ "$port" != 0 ] || skip "no free TCP port"
ctl=$((1000 + ($$ + RANDOM) % 30000))
URL=iscsi://127.0.0.1:$port/$IQN/1
truncate -s 64M "$work/lun.img"
export FERRY_TEST_ISCSI_LIMITS=3

# tgt_start: target 1, thin LUN 1 (UNMAP, WRITE SAME) on $work/lun.img with
# an optimal transfer granularity of 2 blocks.
tgt_start() {
	tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$port" >>"$work/tgtd.log" 2>&1 &
	tgtpid=$!
	for _ in $(seq 100); do
		tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 && break
		sleep 0.1
	done
	tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$IQN" &&
	tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$work/lun.img" &&
	tgtadm -C "$ctl" --lld iscsi --op update --mode logicalunit --tid 1 --lun 1 \
		--params thin_provisioning=1,optimal_xfer_gran=2 &&
	tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL ||
		fail "cannot configure tgtd (control port $ctl): $(tail -3 "$work/tgtd.log")"
	for _ in $(seq 50); do
		ss -Htln "sport = :$port" 2>/dev/null | grep -q . && return 0
		sleep 0.1
	done
	fail "tgtd does not listen on 127.0.0.1:$port"
}

tgt_crash() {
	kill -9 "$tgtpid" 2>/dev/null
	wait "$tgtpid" 2>/dev/null
	tgtpid=""
}

loops() { local n; n=$(grep -c "TESTGUEST BLKLOOP" "$work/serial" 2>/dev/null); echo "${n:-0}"; }
wait_loops() { # N SECS
	for _ in $(seq $(($2 * 10))); do
		grep -q "TESTGUEST FAIL" "$work/serial" 2>/dev/null && return 1
		[ "$(loops)" -ge "$1" ] && return 0
		kill -0 "$ferrypid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

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
	timeout -s KILL 90 "$FERRY" run --log-level debug --kernel "$TESTGUEST" \
		--serial "file:$work/serial" --cmdline testguest.run=blk --disk "$URL" \
		>"$work/out" 2>"$work/err" </dev/null
	rc=$?
	[ "$rc" = 0 ] || fail "ferry exited $rc"
	grep -q "TESTGUEST PASS blk" "$work/serial" || fail "the guest's disk test failed"
	grep -q "TESTGUEST INFO blk: discard ok" "$work/serial" || fail "no discard"
	grep -q "TESTGUEST INFO blk: write zeroes ok" "$work/serial" || fail "no write zeroes"
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
	"$FERRY" run --log-level info --kernel "$TESTGUEST" --serial "file:$work/serial" \
		--cmdline testguest.run=blkloop --disk "$URL,queue-depth=2" \
		>"$work/out" 2>"$work/err" </dev/null &
	ferrypid=$!
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
	kill -9 "$ferrypid" 2>/dev/null
	wait "$ferrypid" 2>/dev/null
	ferrypid=""
	n=$(grep -o "TESTGUEST BLKLOOP [0-9]*" "$work/serial" | tail -1 | awk '{print $3}')
	"$work/iscsi_check" "$URL" 0 $((64 * 4096)) "$work/dump" || fail "cannot read the LUN back"
	# Each of blkloop's 64 slots holds its latest acknowledged round or a
	# later one (the layout of tests/guest/vdev_loop.c, as iscsi.sh checks).
	python3 - "$work/dump" "$((n * 8 + 7))" <<'EOF' || fail "the LUN lacks acknowledged writes"
import struct, sys
data = open(sys.argv[1], "rb").read()
acked = int(sys.argv[2])
M = (1 << 64) - 1
bad = 0
for slot in range(64):
    sector = slot * 8
    words = struct.unpack_from("<512Q", data, slot * 4096)
    base = [((sector * 512 + i * 8) * 0x9e3779b97f4a7c15) & M for i in range(512)]
    rnd = (words[0] ^ base[0]) - 1
    ok = rnd >= 0 and rnd % 64 == slot and all(w ^ b == rnd + 1 for w, b in zip(words, base))
    latest = acked - ((acked - slot) % 64) if acked >= slot else -1
    if not ok or rnd < latest:
        print(f"slot {slot}: holds round {rnd if ok else 'garbage'}, acknowledged up to round {latest}")
        bad += 1
print(f"LUN check: 64 slots, rounds acknowledged up to {acked}, {bad} bad")
sys.exit(1 if bad else 0)
EOF
	;;
*)
	fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
