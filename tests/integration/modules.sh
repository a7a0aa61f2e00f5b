#!/usr/bin/env bash
# On-demand modules (src/module.c): ferry run with TLS credentials or an
# iscsi:// disk loads ferry-tls.so / ferry-iscsi.so from next to the
# executable (or the install directory); a missing, broken or stale module
# stops start-up with exit status 1 and one clear line, never a crash.
# Usage: modules.sh CASE.  Exit 0 pass, 1 fail, 77 skip (with the reason).
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
build=$(dirname "$FERRY")
work=$(mktemp -d /tmp/ferry-modules.XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() {
	echo "FAIL: $*"
	[ -s "$work/err" ] && { echo "--- stderr"; cat "$work/err"; }
	exit 1
}
skip() { echo "SKIP: $*"; exit 77; }

need_module() {
	[ -e "$build/ferry-$1.so" ] || skip "this build has no ferry-$1.so (-D$1=disabled or the library is missing)"
}

# run_ferry FERRY ARGS...: start-up only (it must fail before the VM runs).
run_ferry() {
	local exe=$1
	shift
	timeout 20 "$exe" run --kernel "$TESTGUEST" "$@" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	echo "ferry run $* -> $rc: $(cat "$work/err")"
}
expect_fail() {
	[ "$rc" = 1 ] || fail "exit status $rc, expected 1"
	[ "$(wc -l <"$work/err")" = 1 ] || fail "expected exactly one error line"
	grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1'"
}

# A PSK file the TLS module accepts except for its mode: its own error
# then proves that the module was loaded and ran.
printf 'ferry-test:%s\n' 00112233445566778899aabbccddeeff >"$work/psk"
chmod 644 "$work/psk"
iscsi_url="path=iscsi://127.0.0.1:1/iqn.2026-11.org.ferry:nothing/1"
# A ferry alone in a directory: the modules are looked for next to it.
alone() {
	mkdir -p "$work/bin"
	cp "$FERRY" "$work/bin/ferry"
}

case "$case_name" in
missing-tls)
	need_module tls
	alone
	run_ferry "$work/bin/ferry" --tls-psk "$work/psk"
	expect_fail "cannot load the TLS module: no ferry-tls.so in $work/bin"
	expect_fail "-Dtls=enabled" ;;
missing-iscsi)
	need_module iscsi
	alone
	run_ferry "$work/bin/ferry" --disk "$iscsi_url"
	expect_fail "cannot load the iSCSI module: no ferry-iscsi.so in $work/bin"
	expect_fail "-Discsi=enabled" ;;
next-to-exe)
	# The copy with its modules beside it: the TLS module's own check runs.
	need_module tls
	alone
	cp "$build/ferry-tls.so" "$work/bin/"
	run_ferry "$work/bin/ferry" --tls-psk "$work/psk"
	expect_fail "mode 644 lets group or others at the secret" ;;
stale-tls)
	# The real module with another build's stamp (its version bytes
	# changed) is refused, naming the file and both stamps.
	need_module tls
	alone
	python3 - "$build/ferry-tls.so" "$work/bin/ferry-tls.so" <<'PY' || fail "no stamp found in ferry-tls.so"
import re, sys
data = open(sys.argv[1], 'rb').read()
m = re.search(rb'(\d+\.\d+\.\d+) abi \d+ build [0-9a-f]{12}\0', data)
if not m:
    sys.exit(1)
start = m.start(1)
data = data[:start] + b'9' + data[start + 1:]
open(sys.argv[2], 'wb').write(data)
PY
	run_ferry "$work/bin/ferry" --tls-psk "$work/psk"
	expect_fail "cannot load the TLS module $work/bin/ferry-tls.so: built for ferry '9"
	expect_fail "this is '" ;;
broken-iscsi)
	need_module iscsi
	alone
	echo "not a shared object" >"$work/bin/ferry-iscsi.so"
	run_ferry "$work/bin/ferry" --disk "$iscsi_url"
	expect_fail "cannot load the iSCSI module $work/bin/ferry-iscsi.so" ;;
plain-needs-none)
	# No TLS, no iSCSI: no module is touched (a ferry alone gets as far as
	# its own checks: here the refused plain --incoming).
	alone
	run_ferry "$work/bin/ferry" --incoming "tcp:127.0.0.1:1"
	expect_fail "no credentials for the migration channel" ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
