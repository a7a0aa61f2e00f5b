#!/usr/bin/env bash
# seccomp filters (src/seccomp.c): a forbidden call from each thread role
# kills ferry and names the call, --seccomp=log lets it go on, off and bad
# values, and every thread runs filtered.  Usage: seccomp.sh CASE (FERRY and
# TESTGUEST point at the binaries).  Exit 0 pass, 1 fail, 77 skip.
# The forbidden calls come from a test hook (FERRY_TEST_SECCOMP_VIOLATE=ROLE,
# compiled only with meson -Dtest_hooks=true).
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-seccomp.XXXXXX)
sock=$work/api.sock
pid=

cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	[ -f "$work/err" ] && sed 's/^/  ferry err: /' "$work/err" | tail -n 20
	exit 1
}
need_kvm() {
	[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm on this host"; exit 77; }
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm not accessible to $(id -un)"; exit 77; }
}
need_filters() {
	grep -q '^#define HAVE_LIBSECCOMP' "$(dirname "$FERRY")/config.h" 2>/dev/null ||
		{ echo "SKIP: ferry was built without libseccomp"; exit 77; }
}
need_hooks() {
	need_filters
	grep -q '^#define FERRY_TEST_HOOKS' "$(dirname "$FERRY")/config.h" 2>/dev/null ||
		{ echo "SKIP: ferry was built without test hooks (meson -Dtest_hooks=true)"; exit 77; }
}

# run_guest TIMEOUT ARGS...: the selftest guest; stdout in $work/out, stderr
# in $work/err, exit status in $rc.
run_guest() {
	local t=$1; shift
	timeout -s KILL "$t" "$FERRY" run --kernel "$TESTGUEST" --log-level info \
		--cmdline "console=ttyS0 testguest.run=selftest" "$@" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	echo "--- ferry run $* -> exit $rc"; tail -n 3 "$work/out"; sed 's/^/  err: /' "$work/err" | tail -n 10
}
expect_err() { grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1'"; }
# SIGSYS: 128 + 31 through timeout(1) or the shell.
expect_sigsys() { [ "$rc" = 159 ] || fail "exit status $rc, expected 159 (killed by SIGSYS)"; }

# start_vm [flags]: the heartbeat guest in the background with --api.
start_vm() {
	"$FERRY" run --kernel "$TESTGUEST" --cmdline "testguest.run=heartbeat testguest.powerbutton=ignore" \
		--api "$sock" --serial "file:$work/serial" --log-level info "$@" </dev/null >"$work/out" 2>"$work/err" &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && grep -q 'TESTGUEST HEARTBEAT' "$work/serial" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || fail "ferry exited early"
		sleep 0.1
	done
	fail "no control socket or no heartbeat after 10 s"
}
wait_vm() {
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "ferry still running"
	wait "$pid"; rc=$?; pid=
}

# kill_case ROLE: the role's thread makes a forbidden call once filtered.
kill_case() {
	need_kvm; need_hooks
	FERRY_TEST_SECCOMP_VIOLATE=$1 run_guest 60 --cpus 2
	expect_err "test hook: the $1 thread calls socket(AF_PACKET)"
	expect_err "seccomp: $1 thread made a forbidden system call socket (41); ferry stops"
	expect_sigsys
	grep -q "TESTGUEST PASS selftest" "$work/out" && fail "the guest finished after the violation"
	return 0
}

case $case_name in
kill-vcpu) kill_case vcpu ;;
kill-loop) kill_case loop ;;
kill-uring)
	# io_uring work escapes seccomp: no thread may make a new ring.
	need_kvm; need_hooks
	FERRY_TEST_SECCOMP_VIOLATE=loop:io_uring_setup run_guest 60
	expect_err "test hook: the loop thread calls io_uring_setup"
	expect_err "seccomp: loop thread made a forbidden system call io_uring_setup (425); ferry stops"
	expect_sigsys
	;;
kill-migration)
	need_kvm; need_hooks
	FERRY_TEST_SECCOMP_VIOLATE=migration start_vm
	# The snapshot's thread is the migration role.
	timeout -s KILL 30 "$FERRY" snapshot --api "$sock" --to "$work/snap.bin" >"$work/snap.log" 2>&1
	echo "--- ferry snapshot -> exit $?"
	wait_vm
	expect_err "test hook: the migration thread calls socket(AF_PACKET)"
	expect_err "seccomp: migration thread made a forbidden system call socket (41); ferry stops"
	expect_sigsys ;;
log-mode)
	need_kvm; need_hooks
	FERRY_TEST_SECCOMP_VIOLATE=vcpu run_guest 60 --cpus 2 --seccomp=log
	expect_err "test hook: the vcpu thread calls socket(AF_PACKET)"
	expect_err "seccomp: filters log forbidden system calls"
	grep -q "forbidden system call socket" "$work/err" && fail "log mode stopped ferry"
	grep -q "TESTGUEST PASS selftest" "$work/out" || fail "the guest did not finish its selftest"
	[ "$rc" = 0 ] || fail "exit status $rc, expected 0" ;;
off)
	need_kvm
	# Without filters the hook has nothing to trip over: it does not run.
	FERRY_TEST_SECCOMP_VIOLATE=vcpu run_guest 60 --seccomp=off
	grep -q "seccomp:" "$work/err" && fail "--seccomp=off still set up filters"
	grep -q "TESTGUEST PASS selftest" "$work/out" || fail "the guest did not finish its selftest"
	[ "$rc" = 0 ] || fail "exit status $rc, expected 0"
	start_vm --seccomp=off
	grep -q "^Seccomp:[[:space:]]*0" "/proc/$pid/status" || fail "--seccomp=off: the main thread is filtered"
	"$FERRY" stop --api "$sock" >/dev/null
	wait_vm ;;
bad-value)
	run_guest 20 --seccomp=maybe
	[ "$rc" = 1 ] || fail "exit status $rc, expected 1"
	expect_err "--seccomp: 'maybe' is not on, log or off"
	[ "$(wc -l <"$work/err")" = 1 ] || fail "expected exactly one error line"
	grep -q TESTGUEST "$work/out" && fail "the guest ran"
	run_guest 20 --seccomp
	[ "$rc" = 1 ] || fail "--seccomp without a value: exit status $rc, expected 1" ;;
threads)
	need_kvm; need_filters
	start_vm --cpus 2
	expect_err "seccomp: filters on"
	n=0
	for st in /proc/"$pid"/task/*/status; do
		name=$(sed -n 's/^Name:[[:space:]]*//p' "$st")
		mode=$(sed -n 's/^Seccomp:[[:space:]]*//p' "$st")
		echo "thread $name: Seccomp $mode"
		[ "$mode" = 2 ] || fail "thread $name ($st) is not filtered: Seccomp $mode"
		n=$((n + 1))
	done
	[ "$n" -ge 3 ] || fail "expected the main thread and 2 vCPUs, found $n threads"
	# Control requests work under the loop's filter.
	"$FERRY" status --api "$sock" >"$work/status" || fail "ferry status failed under the filters"
	grep -q running "$work/status" || fail "status does not say running"
	"$FERRY" stop --api "$sock" >/dev/null || fail "ferry stop failed"
	wait_vm
	[ "$rc" = 4 ] || fail "exit status $rc after stop, expected 4" ;;
*) echo "unknown case $case_name"; exit 2 ;;
esac
exit 0
