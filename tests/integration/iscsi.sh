#!/usr/bin/env bash
# virtio-blk on an iSCSI LUN (virtio/blk_iscsi.c) against a real target: each
# case starts its own tgtd on 127.0.0.1 (own portal port and control port)
# with a file-backed LUN 1, and the host checks the LUN through libiscsi
# (tests/tools/iscsi_check.c, compiled here).
# Usage: iscsi.sh CASE (rw, thin-4k, readonly, chap, bad-url, missing-lun,
# unreachable, restart, timeout, stop-while-down).  Exit 0 pass, 1 fail, 77 skip.
set -u
: "${FERRY:?}" "${TESTGUEST:?}" "${SRCDIR:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-iscsi.XXXXXX)
tgtpid=""
ferrypid=""
ctl=""
IQN=iqn.2026-11.org.ferry.test:$$

cleanup() {
	[ -n "$ferrypid" ] && kill -9 "$ferrypid" 2>/dev/null
	tgt_stop
	rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
{ [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || skip "/dev/kvm not accessible to $(id -un)"
command -v tgtd >/dev/null && command -v tgtadm >/dev/null || skip "no tgtd/tgtadm (apt-get install tgt)"
"$FERRY" run --disk iscsi://127.0.0.1/x/1 --kernel /nonexistent 2>&1 | grep -q "built without libiscsi" &&
	skip "ferry was built without libiscsi"
cc -O2 -o "$work/iscsi_check" "$SRCDIR/tests/tools/iscsi_check.c" -liscsi 2>"$work/cc.err" ||
	skip "cannot build the libiscsi checker: $(tail -1 "$work/cc.err")"

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 30000))
		ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
	echo 0
}
port=$(free_port)
ctl=$((1000 + ($$ + RANDOM) % 30000))
URL=iscsi://127.0.0.1:$port/$IQN/1

# tgt_start [CHAP-USER CHAP-SECRET [TARGET-USER TARGET-SECRET]]: tgtd with
# target 1, LUN 1 on $work/lun.img, open to every initiator.
tgt_start() {
	tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$port" >>"$work/tgtd.log" 2>&1 &
	tgtpid=$!
	for _ in $(seq 100); do
		tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 && break
		sleep 0.1
	done
	tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$IQN" &&
	tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$work/lun.img" \
		${LUN_BLOCKSIZE:+--blocksize "$LUN_BLOCKSIZE"} &&
	{ [ -z "${LUN_THIN:-}" ] || tgtadm -C "$ctl" --lld iscsi --op update --mode logicalunit \
		--tid 1 --lun 1 --params thin_provisioning=1; } &&
	tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL ||
		fail "cannot configure tgtd (control port $ctl): $(tail -3 "$work/tgtd.log")"
	if [ $# -ge 2 ]; then
		tgtadm -C "$ctl" --lld iscsi --op new --mode account --user "$1" --password "$2" &&
		tgtadm -C "$ctl" --lld iscsi --op bind --mode account --tid 1 --user "$1" ||
			fail "cannot add the CHAP account"
	fi
	if [ $# -ge 4 ]; then
		tgtadm -C "$ctl" --lld iscsi --op new --mode account --user "$3" --password "$4" &&
		tgtadm -C "$ctl" --lld iscsi --op bind --mode account --tid 1 --user "$3" --outgoing ||
			fail "cannot add the mutual CHAP account"
	fi
	# Listening before anyone connects (without ss, give it a moment).
	command -v ss >/dev/null || { sleep 0.5; return 0; }
	for _ in $(seq 50); do
		ss -Htln "sport = :$port" | grep -q . && return 0
		sleep 0.1
	done
	fail "tgtd does not listen on 127.0.0.1:$port"
}

# tgtd ignores SIGTERM: delete the target, then kill it.
tgt_stop() {
	[ -n "$tgtpid" ] || return 0
	tgtadm -C "$ctl" --op delete --mode target --tid 1 --force >/dev/null 2>&1
	kill -9 "$tgtpid" 2>/dev/null
	wait "$tgtpid" 2>/dev/null
	tgtpid=""
}

# tgt_crash: the target dies under the initiator (no clean-up at all).
tgt_crash() {
	kill -9 "$tgtpid" 2>/dev/null
	wait "$tgtpid" 2>/dev/null
	tgtpid=""
}

# run_guest CMDLINE ARGS...: to completion; serial in $work/serial.
run_guest() {
	local cmdline=$1; shift
	rm -f "$work/serial"
	timeout -s KILL 90 "$FERRY" run --log-level info --kernel "$TESTGUEST" --serial "file:$work/serial" \
		--cmdline "$cmdline" "$@" >"$work/out" 2>"$work/err" </dev/null
	rc=$?
	echo "--- ferry run --cmdline '$cmdline' $* -> exit $rc"
	[ -e "$work/serial" ] && sed 's/^/  serial: /' "$work/serial" | tail -n 12
	sed 's/^/  err: /' "$work/err" | tail -n 8
}

# start_guest CMDLINE ARGS...: in the background ($ferrypid).
start_guest() {
	local cmdline=$1; shift
	rm -f "$work/serial"
	"$FERRY" run --log-level info --kernel "$TESTGUEST" --serial "file:$work/serial" --cmdline "$cmdline" "$@" \
		>"$work/out" 2>"$work/err" </dev/null &
	ferrypid=$!
}

# stop_guest: the guest never stops by itself (blkloop).
stop_guest() {
	kill -9 "$ferrypid" 2>/dev/null
	wait "$ferrypid" 2>/dev/null
	ferrypid=""
	sed 's/^/  serial: /' "$work/serial" | tail -n 6
	sed 's/^/  err: /' "$work/err" | tail -n 12
}

expect_serial() { grep -qF -- "$1" "$work/serial" || fail "serial lacks '$1'"; }
loops() { local n; n=$(grep -c "TESTGUEST BLKLOOP" "$work/serial" 2>/dev/null); echo "${n:-0}"; }

# wait_loops N SECS: until the guest printed N BLKLOOP lines.
wait_loops() {
	for _ in $(seq $(($2 * 10))); do
		grep -q "TESTGUEST FAIL" "$work/serial" 2>/dev/null && return 1
		[ "$(loops)" -ge "$1" ] && return 0
		kill -0 "$ferrypid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# expect_refused WHAT PATTERN ARGS...: ferry exits 1 without starting the guest.
expect_refused() {
	local what=$1 pattern=$2; shift 2
	run_guest testguest.run=blk "$@"
	[ "$rc" = 1 ] || fail "$what: exit $rc, expected 1"
	grep -qiE -- "$pattern" "$work/err" || fail "$what: stderr lacks /$pattern/"
	[ -s "$work/serial" ] && grep -q TESTGUEST "$work/serial" && fail "$what: the guest ran"
	echo "ok: $what refused"
}

# check_blkloop: every round the guest reported (TESTGUEST BLKLOOP n: rounds
# up to 8n+7 done, each verified by reading back) is on the LUN, read
# through libiscsi: each of the 64 slots holds its latest acknowledged round
# or a later one, never an older one or garbage.
check_blkloop() {
	local n
	n=$(grep -o "TESTGUEST BLKLOOP [0-9]*" "$work/serial" | tail -1 | awk '{print $3}')
	[ -n "$n" ] || fail "the guest reported no blkloop round"
	"$work/iscsi_check" "$URL" 0 $((64 * 4096)) "$work/dump" || fail "cannot read the LUN back"
	python3 - "$work/dump" "$(( n * 8 + 7 ))" <<'EOF' || fail "the LUN lacks acknowledged writes"
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
}

truncate -s 64M "$work/lun.img"

case $case_name in
rw)
	tgt_start
	run_guest testguest.run=blk --disk "$URL,serial=ferry-iscsi0"
	expect_serial "TESTGUEST PASS blk"
	expect_serial "TESTGUEST INFO blk serial=ferry-iscsi0"
	grep -q "iSCSI LUN of 67108864 bytes" "$work/err" || fail "ferry did not report the LUN"
	# The guest's writes are on the LUN, read through libiscsi.
	"$work/iscsi_check" "$URL" 0 $((64 << 20)) "$work/dump" || fail "cannot read the LUN back"
	[ "$(tr -d '\0' <"$work/dump" | wc -c)" -gt 0 ] || fail "the guest's writes are not on the LUN"
	start_guest testguest.run=blkloop --disk "$URL,queue-depth=4"
	wait_loops 20 60 || { stop_guest; fail "blkloop did not run on the LUN"; }
	stop_guest
	check_blkloop ;;
thin-4k)
	# 4096-byte blocks and thin provisioning: UNMAP and WRITE SAME(16)
	# with the UNMAP bit back the guest's discard and write zeroes.
	LUN_BLOCKSIZE=4096 LUN_THIN=1 tgt_start
	run_guest testguest.run=blk --disk "$URL"
	expect_serial "TESTGUEST PASS blk"
	expect_serial "blk_size=4096"
	expect_serial "TESTGUEST INFO blk: discard ok"
	expect_serial "TESTGUEST INFO blk: write zeroes ok"
	"$work/iscsi_check" "$URL" 0 $((64 << 20)) "$work/dump" || fail "cannot read the LUN back"
	[ "$(tr -d '\0' <"$work/dump" | wc -c)" -gt 0 ] || fail "the guest's writes are not on the LUN" ;;
readonly)
	tgt_start
	run_guest "testguest.run=blk testguest.blk=ro" --disk "$URL,readonly=on"
	expect_serial "TESTGUEST PASS blk"
	"$work/iscsi_check" "$URL" 0 $((64 << 20)) "$work/dump" || fail "cannot read the LUN back"
	[ "$(tr -d '\0' <"$work/dump" | wc -c)" = 0 ] || fail "a read-only iSCSI disk was written" ;;
chap)
	tgt_start ferryuser secret-0123456789 targetuser tsecret-0123456789
	printf 'secret-0123456789\n' >"$work/pw"
	chmod 600 "$work/pw"
	curl=iscsi://ferryuser@127.0.0.1:$port/$IQN/1
	run_guest testguest.run=blk --disk "$curl,password-file=$work/pw"
	expect_serial "TESTGUEST PASS blk"
	echo "ok: CHAP log-in"
	printf 'secret-0123456789\ntargetuser:tsecret-0123456789\n' >"$work/pw2"
	chmod 400 "$work/pw2"
	run_guest testguest.run=blk --disk "$curl,password-file=$work/pw2"
	expect_serial "TESTGUEST PASS blk"
	echo "ok: mutual CHAP log-in"
	printf 'wrong-secret-0000\n' >"$work/bad"
	chmod 600 "$work/bad"
	expect_refused "wrong CHAP secret" "cannot log in" --disk "$curl,password-file=$work/bad"
	printf 'secret-0123456789\ntargetuser:wrong-target-secret\n' >"$work/bad2"
	chmod 600 "$work/bad2"
	expect_refused "wrong mutual CHAP secret" "cannot log in" --disk "$curl,password-file=$work/bad2"
	expect_refused "no CHAP at all" "cannot log in" --disk "$URL"
	chmod 644 "$work/pw"
	expect_refused "password file readable by others" "chmod 600" --disk "$curl,password-file=$work/pw"
	expect_refused "user without password-file" "password-file" --disk "$curl"
	expect_refused "secret in the URL" "does not belong in the URL" \
		--disk "iscsi://ferryuser%secret@127.0.0.1:$port/$IQN/1" ;;
bad-url)
	for u in "iscsi://" "iscsi://127.0.0.1" "iscsi://127.0.0.1/$IQN" "iscsi://127.0.0.1/$IQN/x" \
		 "iscsi://127.0.0.1:0/$IQN/1" "iscsi://127.0.0.1:99999/$IQN/1" "iscsi://[::1/$IQN/1" \
		 "iscsi://127.0.0.1//1"; do
		expect_refused "URL $u" "iscsi|URL|port|LUN|target" --disk "$u"
	done
	expect_refused "engine= on iSCSI" "apply to files" --disk "$URL,engine=sync"
	expect_refused "password-file= on a file" "iscsi:// disks only" --disk "$work/lun.img,password-file=/x"
	expect_refused "timeout=abc" "timeout" --disk "$URL,timeout=abc"
	expect_refused "reservation=maybe" "reservation" --disk "$URL,reservation=maybe" ;;
missing-lun)
	tgt_start
	expect_refused "LUN 7" "LUN 7|log in" --disk "iscsi://127.0.0.1:$port/$IQN/7"
	expect_refused "LUN 0 (the controller)" "not a disk|LUN 0|log in" --disk "iscsi://127.0.0.1:$port/$IQN/0"
	expect_refused "unknown target" "cannot log in" --disk "iscsi://127.0.0.1:$port/$IQN.nope/1" ;;
unreachable)
	expect_refused "nothing listening" "cannot log in" --disk "$URL" ;;
restart)
	# Kill the target under the guest's I/O and start it again on the same
	# port with the same LUN: the guest waits, then goes on, and everything
	# it was told was written is on the LUN.
	tgt_start
	start_guest testguest.run=blkloop --disk "$URL"
	wait_loops 10 60 || { stop_guest; fail "blkloop did not start"; }
	for round in 1 2; do
		tgt_crash
		sleep 1.5
		before=$(loops)
		tgt_start
		wait_loops $((before + 15)) 60 || { stop_guest; fail "the guest did not go on after restart $round"; }
		echo "ok: restart $round: the guest went on ($(loops) lines)"
	done
	grep -q "TESTGUEST FAIL" "$work/serial" && { stop_guest; fail "the guest saw an error"; }
	grep -q "session back" "$work/err" || { stop_guest; fail "ferry did not report the reconnection"; }
	stop_guest
	check_blkloop ;;
timeout)
	# With timeout=2 and the target gone for good, requests fail (IOERR)
	# instead of waiting forever.
	tgt_start
	start_guest testguest.run=blkloop --disk "$URL,timeout=2"
	wait_loops 5 60 || { stop_guest; fail "blkloop did not start"; }
	tgt_crash
	for _ in $(seq 150); do
		grep -q "TESTGUEST FAIL" "$work/serial" && break
		sleep 0.1
	done
	stop_guest
	grep -q "TESTGUEST FAIL.*status 1" "$work/serial" || fail "the guest saw no IOERR after timeout=2" ;;
stop-while-down)
	# The target is gone and requests wait for it (no timeout=): stopping
	# the VM must still end ferry, not hang on the I/O in flight.
	tgt_start
	start_guest testguest.run=blkloop --disk "$URL" --shutdown-timeout 1
	wait_loops 5 60 || { stop_guest; fail "blkloop did not start"; }
	tgt_crash
	sleep 1
	kill -TERM "$ferrypid"
	for _ in $(seq 300); do
		kill -0 "$ferrypid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$ferrypid" 2>/dev/null && { stop_guest; fail "ferry still runs 30 s after SIGTERM"; }
	wait "$ferrypid"
	echo "ok: ferry exited with status $? while the target was down"
	ferrypid=""
	sed 's/^/  err: /' "$work/err" | tail -n 5 ;;
*)
	fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
exit 0
