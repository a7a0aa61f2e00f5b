#!/usr/bin/env bash
# Boot Debian's cloud kernel under ferry with a busybox initramfs (built by
# build-initramfs.sh) and check that Linux sees both vCPUs and powers off.
# Needs VT-x/AMD-V (PVM cannot run Linux).  Exit 0 pass, 1 fail, 77 skip, 99 setup error.
set -u
: "${FERRY:?FERRY must point at the ferry binary}"
here=$(cd "$(dirname "$0")" && pwd)
cpus=2

if ! grep -qwE 'vmx|svm' /proc/cpuinfo; then
	echo "SKIP: host has no VT-x/AMD-V (PVM /dev/kvm cannot run Linux, see TESTING.md)"
	exit 77
fi
[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm on this host"; exit 77; }
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm not accessible to $(id -un)"
	exit 77
fi

work=$(mktemp -d /tmp/ferry-linux.XXXXXX)
trap 'rm -rf "$work"' EXIT

if ! timeout 240 "$here/build-initramfs.sh" "$work"; then
	echo "ERROR: could not build the kernel and initramfs (see above)"
	exit 99
fi

timeout -s KILL 120 "$FERRY" run --kernel "$work/vmlinuz" --initrd "$work/initramfs.cpio.gz" \
	--cmdline "console=ttyS0 expect_cpus=$cpus panic=-1" --cpus "$cpus" --memory 512M \
	</dev/null >"$work/out" 2>"$work/err"
rc=$?
echo "--- ferry exited with $rc; guest console (last 60 lines):"
tail -n 60 "$work/out"
echo "--- ferry stderr:"
tail -n 30 "$work/err"

fail() { echo "FAIL: $*"; exit 1; }
[ "$rc" = 137 ] && fail "ferry was killed after 120 s (guest hung or did not power off)"
grep -q 'LINUXGUEST BOOTED' "$work/out" || fail "Linux never reached /init"
grep -q 'LINUXGUEST FAIL' "$work/out" && fail "the guest reported a failure"
grep -q "LINUXGUEST PASS cpus=$cpus" "$work/out" || fail "no 'LINUXGUEST PASS cpus=$cpus' on the console"
[ "$rc" = 0 ] || fail "ferry exited with $rc, expected 0 (guest power-off)"
echo "PASS: Linux booted with $cpus CPUs and powered off"
exit 0
