# shellcheck shell=bash
# What the iSCSI integration scripts (iscsi.sh, iscsi_split.sh) share: the
# prerequisite checks, a tgtd of the case's own on 127.0.0.1 (start, stop,
# crash), running the test guest on the LUN and the blkloop check through
# libiscsi.  Sourced after the script has defined fail().
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

skip() { echo "SKIP: $*"; exit 77; }

tgtpid=""
ferrypid=""
ctl=""
work=""

cleanup() {
	[ -n "$ferrypid" ] && kill -9 "$ferrypid" 2>/dev/null
	tgt_stop
	[ -n "$work" ] && rm -rf "$work"
}

# iscsi_init NAME IQN: the case's work dir (/tmp/ferry-NAME.XXXXXX, removed
# on exit), the skips for what the host lacks, the libiscsi checker
# ($work/iscsi_check), a portal port and control port for tgtd, $URL of its
# LUN 1 and an empty 64 MiB $work/lun.img behind it.
iscsi_init() {
	work=$(mktemp -d "/tmp/ferry-$1.XXXXXX") || fail "cannot make a work dir"
	IQN=$2
	trap cleanup EXIT
	[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
	{ [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || skip "/dev/kvm not accessible to $(id -un)"
	command -v tgtd >/dev/null && command -v tgtadm >/dev/null ||
		skip "no tgtd/tgtadm (apt-get install tgt)"
	"$FERRY" run --disk iscsi://127.0.0.1/x/1 --kernel /nonexistent 2>&1 |
		grep -q "built without libiscsi" && skip "ferry was built without libiscsi"
	cc -O2 -o "$work/iscsi_check" "$SRCDIR/tests/tools/iscsi_check.c" -liscsi 2>"$work/cc.err" ||
		skip "cannot build the libiscsi checker: $(tail -1 "$work/cc.err")"
	port=$(free_port)
	[ -n "$port" ] && [ "$port" != 0 ] || skip "no free TCP port"
	ctl=$((1000 + ($$ + RANDOM) % 30000))
	URL=iscsi://127.0.0.1:$port/$IQN/1
	truncate -s 64M "$work/lun.img" || fail "cannot make $work/lun.img"
}

# tgt_start [CHAP-USER CHAP-SECRET [TARGET-USER TARGET-SECRET]]: tgtd with
# target 1, LUN 1 on $work/lun.img, open to every initiator.  LUN_BLOCKSIZE
# sets the LUN's block size, LUN_PARAMS its tgt parameters (for instance
# thin_provisioning=1 for UNMAP and WRITE SAME, optimal_xfer_gran=N).
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
	{ [ -z "${LUN_PARAMS:-}" ] || tgtadm -C "$ctl" --lld iscsi --op update --mode logicalunit \
		--tid 1 --lun 1 --params "$LUN_PARAMS"; } &&
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

# run_guest CMDLINE ARGS...: to completion; exit status in $rc, serial in
# $work/serial.  GUEST_LOG_LEVEL sets ferry's --log-level (info).
run_guest() {
	local cmdline=$1; shift
	rm -f "$work/serial"
	timeout -s KILL 90 "$FERRY" run --log-level "${GUEST_LOG_LEVEL:-info}" --kernel "$TESTGUEST" \
		--serial "file:$work/serial" --cmdline "$cmdline" "$@" >"$work/out" 2>"$work/err" </dev/null
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

# check_blkloop: every round the guest reported (TESTGUEST BLKLOOP n: rounds
# up to 8n+7 done, each verified by reading back) is on the LUN, read
# through libiscsi: each sector of the 64 slots (the layout of
# tests/guest/vdev_loop.c) holds its slot's latest acknowledged round or a
# later one, never an older one or garbage.  Sector by sector: a write that
# was in flight when ferry was killed may have reached the LUN in part (a
# request split at the LUN's limits is several commands), which is allowed
# for what the guest was never told is done.
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
torn = 0
for slot in range(64):
    latest = acked - ((acked - slot) % 64) if acked >= slot else -1
    rounds = set()
    for s in range(slot * 8, slot * 8 + 8):
        words = struct.unpack_from("<64Q", data, s * 512)
        base = [((s * 512 + i * 8) * 0x9e3779b97f4a7c15) & M for i in range(64)]
        rnd = (words[0] ^ base[0]) - 1
        ok = rnd >= 0 and rnd % 64 == slot and all(w ^ b == rnd + 1 for w, b in zip(words, base))
        if not ok or rnd < latest:
            print(f"slot {slot} sector {s}: holds round {rnd if ok else 'garbage'}, acknowledged up to round {latest}")
            bad += 1
        else:
            rounds.add(rnd)
    if len(rounds) > 1:
        torn += 1
        print(f"slot {slot}: rounds {sorted(rounds)} (a write in flight at the end, acknowledged up to {latest})")
print(f"LUN check: 64 slots, rounds acknowledged up to {acked}, {bad} bad sectors, {torn} slot(s) partly rewritten")
sys.exit(1 if bad else 0)
EOF
}
