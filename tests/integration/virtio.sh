#!/usr/bin/env bash
# Boot the test guest under ferry with virtio devices and check what its own
# drivers (tests/guest, written from the virtio spec) report.
# Usage: virtio.sh CASE, where CASE is DEVICE-TRANSPORT[-Ncpu], e.g. blk-pci-2cpu.
# Exit 0 pass, 1 fail, 77 skip (with the reason printed).
set -u
: "${FERRY:?}" "${TESTGUEST:?}" "${SRCDIR:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-virtio.XXXXXX)
tap=""
hostpid=""
mounted=""
cleanup() {
	[ -n "$mounted" ] && umount "$mounted"
	[ -n "$hostpid" ] && kill "$hostpid" 2>/dev/null
	[ -n "$tap" ] && ip link del "$tap" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
{ [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || skip "/dev/kvm not accessible to $(id -un)"

IFS=- read -r device transport cpus <<<"$case_name"
cpus=${cpus%cpu}
cpus=${cpus:-1}

# run_guest CMDLINE ARGS...: ferry's stdout in $work/out, stderr in
# $work/err, COM1 in $work/serial, exit status in $rc.
run_guest() {
	local cmdline=$1; shift
	rm -f "$work/serial"  # --serial file: appends; each run starts afresh
	timeout -s KILL 60 "$FERRY" run --kernel "$TESTGUEST" --cpus "$cpus" \
		--transport "$transport" --serial "file:$work/serial" \
		--cmdline "$cmdline" "$@" >"$work/out" 2>"$work/err" <"${stdin:-/dev/null}"
	rc=$?
	echo "--- ferry run --transport $transport --cpus $cpus --cmdline '$cmdline' $* -> exit $rc"
	sed 's/^/  serial: /' "$work/serial" | tail -n 20
	sed 's/^/  err: /' "$work/err" | tail -n 10
}
expect_serial() { grep -qF -- "$1" "$work/serial" || fail "serial lacks '$1'"; }
no_fail_lines() { grep -q "TESTGUEST FAIL" "$work/serial" && fail "the guest reported a failure"; return 0; }

case $device in
rng)
	run_guest testguest.run=rng --rng
	expect_serial "TESTGUEST PASS rng" ;;
blk)
	truncate -s 64M "$work/disk.img"
	run_guest testguest.run=blk --disk "path=$work/disk.img,serial=ferry-disk0"
	expect_serial "TESTGUEST PASS blk"
	expect_serial "TESTGUEST INFO blk serial=ferry-disk0"
	# What the guest wrote reached the file (its discard and write-zeroes
	# clear some sectors, not all).
	[ "$(tr -d '\0' <"$work/disk.img" | wc -c)" -gt 0 ] ||
		fail "the guest's writes did not reach the disk file" ;;
blkro)
	truncate -s 64M "$work/disk.img"
	run_guest "testguest.run=blk testguest.blk=ro" --disk "path=$work/disk.img,readonly=on"
	expect_serial "TESTGUEST PASS blk"
	[ "$(tr -d '\0' <"$work/disk.img" | wc -c)" = 0 ] || fail "a read-only disk was written" ;;
blkioerr)
	# A backend error: the disk file sits on a full file system, so the
	# host's write fails (ENOSPC) and the guest must see IOERR, then go on.
	mkdir "$work/fs"
	mount -t tmpfs -o size=1M tmpfs "$work/fs" 2>/dev/null || skip "cannot mount a tmpfs (needs CAP_SYS_ADMIN)"
	mounted=$work/fs
	truncate -s 64M "$work/fs/disk.img"
	dd if=/dev/zero of="$work/fs/fill" bs=4k 2>/dev/null  # until ENOSPC
	run_guest "testguest.run=blk testguest.blk=ioerr" --disk "path=$work/fs/disk.img"
	expect_serial "TESTGUEST INFO blk: the failed write came back as IOERR"
	expect_serial "TESTGUEST PASS blk" ;;
blkengines)
	truncate -s 64M "$work/disk.img"
	for engine in io_uring aio sync; do
		for cache in writeback none; do
			run_guest testguest.run=blk --disk "path=$work/disk.img,engine=$engine,cache=$cache"
			expect_serial "TESTGUEST PASS blk"
			[ "$rc" = 0 ] || fail "exit status $rc with engine=$engine cache=$cache"
		done
	done ;;
blklock)
	# Two VMs may not write one disk unless told it is shared.
	truncate -s 64M "$work/disk.img"
	"$FERRY" run --kernel "$TESTGUEST" --cmdline testguest.run=heartbeat --serial none \
		--disk "path=$work/disk.img" </dev/null >/dev/null 2>&1 &
	first=$!
	sleep 1
	run_guest testguest.run=blk --disk "path=$work/disk.img"
	[ "$rc" = 1 ] || fail "second writer started (exit $rc)"
	grep -q "in use by another process" "$work/err" || fail "no clear lock error"
	run_guest testguest.run=blk --disk "path=$work/disk.img,shared=on"
	expect_serial "TESTGUEST PASS blk"
	kill -KILL "$first"; wait "$first" 2>/dev/null ;;
console)
	mkfifo "$work/in"
	( sleep 2; printf 'hello through hvc0\n'; sleep 5 ) >"$work/in" &
	stdin=$work/in run_guest testguest.run=console --console virtio
	grep -qF "TESTGUEST CONSOLE hello" "$work/out" || fail "no guest output on hvc0 (stdout)"
	expect_serial "TESTGUEST CONSOLE GOT hello through hvc0"
	expect_serial "TESTGUEST PASS console" ;;
net)
	[ -e /dev/net/tun ] || skip "no /dev/net/tun"
	tap=ferryt$$
	ip tuntap add "$tap" mode tap 2>/dev/null || skip "cannot create a tap device (needs CAP_NET_ADMIN)"
	ip link set "$tap" up
	python3 "$SRCDIR/tests/guest/hostnet.py" --iface "$tap" --duration 30 --until 32 >"$work/host" 2>&1 &
	hostpid=$!
	sleep 0.5
	run_guest testguest.run=net --net "tap=$tap,mac=52:54:00:12:34:56"
	expect_serial "TESTGUEST PASS net"
	wait "$hostpid"; hostpid=""
	cat "$work/host"
	grep -q "HOSTNET sent=[0-9]* received=32 errors=0" "$work/host" ||
		fail "the host did not receive the guest's 32 frames" ;;
bad)
	run_guest testguest.run=virtio-bad --rng
	expect_serial "TESTGUEST PASS virtio-bad"
	grep -q "needs a reset" "$work/err" || fail "ferry did not log the broken queue" ;;
*) fail "unknown case $case_name" ;;
esac
no_fail_lines
[ "$rc" = 0 ] || fail "exit status $rc"
echo "PASS: $case_name"
