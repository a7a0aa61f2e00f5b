#!/usr/bin/env bash
# virtio-blk on an iSCSI LUN (virtio/blk_iscsi.c) against a real target: each
# case starts its own tgtd on 127.0.0.1 (own portal port and control port)
# with a file-backed LUN 1, and the host checks the LUN through libiscsi
# (tests/tools/iscsi_check.c, compiled by iscsi_lib.sh).
# Usage: iscsi.sh CASE (rw, thin-4k, readonly, chap, bad-url, missing-lun,
# unreachable, restart, timeout, stop-while-down; SCSI-3 reservations:
# reserve, migrate, migrate-fails, stale, reservation-off).
# Exit 0 pass, 1 fail, 77 skip.
set -u
: "${FERRY:?}" "${TESTGUEST:?}" "${SRCDIR:?}"
case_name=$1
fail() { echo "FAIL: $*"; exit 1; }
. "$(dirname "$0")/iscsi_lib.sh"
iscsi_init iscsi "iqn.2026-11.org.ferry.test:$$"

# expect_refused WHAT PATTERN ARGS...: ferry exits 1 without starting the guest.
expect_refused() {
	local what=$1 pattern=$2; shift 2
	run_guest testguest.run=blk "$@"
	[ "$rc" = 1 ] || fail "$what: exit $rc, expected 1"
	grep -qiE -- "$pattern" "$work/err" || fail "$what: stderr lacks /$pattern/"
	[ -s "$work/serial" ] && grep -q TESTGUEST "$work/serial" && fail "$what: the guest ran"
	echo "ok: $what refused"
}

# ---- SCSI-3 persistent reservations (virtio/blk_iscsi_pr.c) ----

# bg_vm NAME ARGS...: a ferry in the background with its API socket,
# serial in $work/NAME.out, stderr in $work/NAME.err, pid in pid_NAME.
bg_vm() {
	local n=$1; shift
	"$FERRY" run --kernel "$TESTGUEST" --api "$work/$n.sock" --serial "file:$work/$n.out" \
		--log-level info --insecure "$@" </dev/null >/dev/null 2>"$work/$n.err" &
	eval "pid_$n=$!"
	bgpids="$bgpids $!"
}
wait_file() { # FILE PATTERN SECONDS
	for _ in $(seq $(($3 * 10))); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
blkloops() { local n; n=$(grep -c "TESTGUEST BLKLOOP" "$work/$1.out" 2>/dev/null); echo "${n:-0}"; }
dump_vm() { sed "s/^/  $1 err: /" "$work/$1.err" | tail -n 10; sed "s/^/  $1 serial: /" "$work/$1.out" | tail -n 4; }
# status_key NAME: blk0's reservation key in `ferry status` ("" if off).
status_res() {
	"$FERRY" status --api "$work/$1.sock" --json | python3 -c '
import json, sys
r = json.load(sys.stdin)["disks"][0]["reservation"]
print("off" if r == "off" else "%s %s" % (r["key"], "holder" if r["holder"] else "not-holder"))'
}
pr_show() { "$work/iscsi_check" "$URL" pr || fail "cannot read the reservation"; }
pr_holder() { pr_show | sed -n 's/^reservation: key=\(0x[0-9a-f]*\) type=1$/\1/p'; }
stop_vm() { # NAME: SIGTERM, a normal exit
	local p; p=$(eval echo "\$pid_$1")
	kill -TERM "$p" 2>/dev/null
	for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && fail "$1 still runs 20 s after SIGTERM"
	wait "$p"
}
bgpids=""
reap_bg() { for p in $bgpids; do kill -9 "$p" 2>/dev/null; done; }
trap 'reap_bg; cleanup' EXIT

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
	LUN_BLOCKSIZE=4096 LUN_PARAMS=thin_provisioning=1 tgt_start
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
reserve)
	tgt_start
	bg_vm a --cmdline testguest.run=blkloop --disk "$URL" --shutdown-timeout 1
	wait_file "$work/a.out" "BLKLOOP 3 " 60 || { dump_vm a; fail "blkloop did not run"; }
	read -r key holder <<<"$(status_res a)"
	[ "$holder" = holder ] || fail "status says blk0 is not the holder: $key $holder"
	[ "$(pr_holder)" = "$key" ] || { pr_show; fail "the LUN's WRITE EXCLUSIVE holder is not $key"; }
	echo "ok: $key holds a WRITE EXCLUSIVE reservation, as status says"
	expect_refused "a second ferry on the reserved LUN" "reserved by key $key" --disk "$URL"
	grep -q "another host runs this disk" "$work/err" || fail "the refusal does not say why"
	kill -0 "$pid_a" || fail "the first ferry died"
	stop_vm a
	pr_show | grep -qx "reservation: none" || { pr_show; fail "the reservation outlived a normal exit"; }
	pr_show | grep -qx "keys:" || { pr_show; fail "the key outlived a normal exit"; }
	grep -q "released the reservation and removed" "$work/a.err" || fail "no release logged"
	run_guest testguest.run=blk --disk "$URL"
	expect_serial "TESTGUEST PASS blk"
	echo "ok: the next ferry starts on the released LUN" ;;
reservation-off)
	tgt_start
	run_guest testguest.run=blk --disk "$URL,reservation=off"
	expect_serial "TESTGUEST PASS blk"
	bg_vm a --cmdline testguest.run=blkloop --disk "$URL,reservation=off"
	wait_file "$work/a.out" "BLKLOOP 3 " 60 || { dump_vm a; fail "blkloop did not run"; }
	[ "$(status_res a)" = off ] || fail "status: $(status_res a), expected off"
	pr_show | grep -qx "reservation: none" || { pr_show; fail "reservation=off reserved"; }
	pr_show | grep -qx "keys:" || { pr_show; fail "reservation=off registered a key"; }
	# Read-only disks take none, even with reservation=on (nothing to
	# fence): they start beside a holder.
	kill -9 "$pid_a"; wait "$pid_a" 2>/dev/null
	bg_vm w --cmdline testguest.run=blkloop --disk "$URL"
	wait_file "$work/w.err" "holds a WRITE EXCLUSIVE" 30 || { dump_vm w; fail "the writer did not reserve"; }
	bg_vm ro --cmdline "testguest.run=blk testguest.blk=ro" --disk "$URL,readonly=on,reservation=on"
	wait_file "$work/ro.out" "TESTGUEST (PASS|FAIL)" 60; dump_vm ro
	grep -q "TESTGUEST PASS blk" "$work/ro.out" || fail "a read-only disk did not run beside the holder"
	grep -q "no reservation taken" "$work/ro.err" || fail "readonly=on,reservation=on was not explained"
	echo "ok: no reservation taken" ;;
stale)
	tgt_start
	bg_vm a --cmdline testguest.run=blkloop --disk "$URL"
	wait_file "$work/a.out" "BLKLOOP 3 " 60 || { dump_vm a; fail "blkloop did not run"; }
	read -r key _ <<<"$(status_res a)"
	kill -9 "$pid_a"; wait "$pid_a" 2>/dev/null
	[ "$(pr_holder)" = "$key" ] || { pr_show; fail "the crashed ferry's reservation is not there"; }
	expect_refused "start on a crashed ferry's reservation" "reserved by key $key.*takeover" --disk "$URL"
	bg_vm b --cmdline testguest.run=blkloop --disk "$URL,reservation=takeover"
	wait_file "$work/b.out" "BLKLOOP 3 " 60 || { dump_vm b; fail "reservation=takeover did not start"; }
	read -r key2 holder <<<"$(status_res b)"
	[ "$holder" = holder ] && [ "$(pr_holder)" = "$key2" ] && [ "$key2" != "$key" ] ||
		{ pr_show; fail "reservation=takeover does not hold the LUN"; }
	grep -q "took the reservation over from key $key" "$work/b.err" || fail "the takeover was not logged"
	grep -q "TESTGUEST FAIL" "$work/b.out" && fail "the guest saw an error after the takeover"
	echo "ok: reservation=takeover preempted $key" ;;
migrate|migrate-fails)
	tgt_start
	mport=$(free_port)
	if [ "$case_name" = migrate ]; then
		FERRY_TEST_LATE_WRITE=1 bg_vm src --cmdline testguest.run=blkloop --disk "$URL"
	else
		bg_vm src --cmdline testguest.run=blkloop --disk "$URL"
	fi
	wait_file "$work/src.out" "BLKLOOP 5 " 60 || { dump_vm src; fail "blkloop did not run"; }
	read -r skey _ <<<"$(status_res src)"
	if [ "$case_name" = migrate-fails ]; then
		# 1: the destination refuses at its state load (reservation=off
		# there), after the source quiesced and sent its state.
		bg_vm dst --cmdline testguest.run=blkloop --disk "$URL,reservation=off" --incoming "tcp:127.0.0.1:$mport"
		wait_file "$work/dst.err" "waiting|listen" 30 || sleep 1
		timeout -s KILL 120 "$FERRY" migrate --api "$work/src.sock" --to "tcp:127.0.0.1:$mport" >"$work/mig.log" 2>&1
		mrc=$?
		[ "$mrc" != 0 ] || fail "the migration to a destination without reservation succeeded"
		grep -q "reservation=off" "$work/mig.log" "$work/dst.err" || { cat "$work/mig.log"; fail "no reason given"; }
		echo "ok: a destination with reservation=off refuses (migrate exit $mrc)"
		# 2: the destination dies in the middle (stopped, then killed).
		mport=$(free_port)
		bg_vm dst2 --cmdline testguest.run=blkloop --disk "$URL" --incoming "tcp:127.0.0.1:$mport"
		wait_file "$work/dst2.err" "registered reservation key" 30 || { dump_vm dst2; fail "the destination did not register"; }
		kill -STOP "$pid_dst2"
		( sleep 2; kill -9 "$pid_dst2" ) &
		timeout -s KILL 120 "$FERRY" migrate --api "$work/src.sock" --to "tcp:127.0.0.1:$mport" >"$work/mig2.log" 2>&1
		mrc=$?
		[ "$mrc" != 0 ] || fail "the migration to a killed destination succeeded"
		echo "ok: the destination was killed (migrate exit $mrc)"
		kill -0 "$pid_src" || fail "the source died"
		[ "$(status_res src)" = "$skey holder" ] || fail "the source's status: $(status_res src)"
		[ "$(pr_holder)" = "$skey" ] || { pr_show; fail "the source lost its reservation"; }
		before=$(blkloops src)
		wait_file "$work/src.out" "BLKLOOP $((before + 5)) " 60 || { dump_vm src; fail "the source's guest stopped writing"; }
		grep -q "TESTGUEST FAIL" "$work/src.out" && { dump_vm src; fail "the source's guest saw an error"; }
		echo "ok: the source keeps its reservation ($skey) and its guest writes on"
	else
		bg_vm dst --cmdline testguest.run=blkloop --disk "$URL" --shutdown-timeout 1 --incoming "tcp:127.0.0.1:$mport"
		wait_file "$work/dst.err" "registered reservation key" 30 || { dump_vm dst; fail "the destination did not register"; }
		read -r dkey _ <<<"$(status_res dst)"
		pr_show | grep -q "$dkey" || { pr_show; fail "the destination's key is not registered"; }
		timeout -s KILL 120 "$FERRY" migrate --api "$work/src.sock" --to "tcp:127.0.0.1:$mport" >"$work/mig.log" 2>&1
		mrc=$?
		[ "$mrc" = 0 ] || { cat "$work/mig.log"; dump_vm dst; fail "ferry migrate exit $mrc"; }
		for _ in $(seq 100); do kill -0 "$pid_src" 2>/dev/null || break; sleep 0.1; done
		wait "$pid_src"; rc=$?
		[ "$rc" = 0 ] || { dump_vm src; fail "the source exited $rc after migrating"; }
		n=$(blkloops src)
		wait_file "$work/dst.out" "BLKLOOP $((n + 5)) " 60 || { dump_vm dst; fail "the guest did not go on at the destination"; }
		grep -q "TESTGUEST FAIL" "$work/dst.out" && { dump_vm dst; fail "the guest's verify failed on the destination"; }
		[ "$(pr_holder)" = "$dkey" ] || { pr_show; fail "the LUN is not reserved by the destination's $dkey"; }
		pr_show | grep -q "$skey" && { pr_show; fail "the source's key $skey is still registered"; }
		[ "$(status_res dst)" = "$dkey holder" ] || fail "the destination's status: $(status_res dst)"
		echo "ok: the destination ($dkey) holds the LUN, the source's $skey is gone"
		if grep -q "test hook: late write" "$work/src.err"; then
			grep -q "late write after hand-over: RESERVATION CONFLICT" "$work/src.err" ||
				{ dump_vm src; fail "the source's late write was not refused"; }
			last=$(( (64 << 20) - 512 ))
			"$work/iscsi_check" "$URL" "$last" 512 "$work/last" || fail "cannot read the LUN back"
			[ "$(tr -d '\0' <"$work/last" | wc -c)" = 0 ] || fail "the source's late write landed"
			echo "ok: the source's late write was refused: RESERVATION CONFLICT, the block unchanged"
		else
			echo "note: built without test hooks (meson -Dtest_hooks=true): late write not tried"
			late_skip=1
		fi
		stop_vm dst
		pr_show | grep -qx "reservation: none" || { pr_show; fail "the destination's reservation outlived its exit"; }
		[ -n "${late_skip:-}" ] && skip "the late-write fence needs test hooks (meson -Dtest_hooks=true); the rest passed"
	fi ;;
*)
	fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
exit 0
