#!/usr/bin/env bash
# Boot the test guest under ferry and check what it reports and how ferry
# exits.  Usage: guest.sh CASE (FERRY and TESTGUEST point at the binaries).
# Exit 0 pass, 1 fail, 77 skip (with the reason printed).
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-it.XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
need_kvm() {
	[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm on this host"; exit 77; }
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm not accessible to $(id -un)"; exit 77; }
}

# run_guest TIMEOUT ARGS...: runs ferry, leaves stdout in $work/out, stderr
# in $work/err and the exit status in $rc.
run_guest() {
	local t=$1; shift
	timeout -s KILL "$t" "$FERRY" run --kernel "$TESTGUEST" "$@" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	echo "--- ferry run $* -> exit $rc"; sed 's/^/  out: /' "$work/out" | tail -n 30; sed 's/^/  err: /' "$work/err" | tail -n 30
}
expect_out() { grep -qF -- "$1" "$work/out" || fail "stdout lacks '$1'"; }
expect_err() { grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1'"; }
expect_rc() { [ "$rc" = "$1" ] || fail "exit status $rc, expected $1"; }

selftest() { # CPUS MEMORY [extra flags]
	local cpus=$1 mem=$2; shift 2
	need_kvm
	run_guest 100 --cpus "$cpus" --memory "$mem" --cmdline "console=ttyS0 testguest.run=selftest" "$@"
	expect_out "TESTGUEST READY cpus=$cpus "
	expect_out "TESTGUEST PASS selftest"
	grep -q "TESTGUEST FAIL" "$work/out" && fail "a sub-test failed"
	expect_rc 0
}

bad_kernel() { # FILE NEEDLE
	run_guest 20 --kernel "$1"
	expect_rc 1
	expect_err "$2"
	[ "$(wc -l <"$work/err")" = 1 ] || fail "expected exactly one error line"
	grep -q TESTGUEST "$work/out" && fail "a bad kernel ran"
	return 0
}

case $case_name in
selftest-1cpu) selftest 1 256M ;;
selftest-2cpu) selftest 2 256M ;;
selftest-4cpu) selftest 4 256M ;;
selftest-512M) selftest 2 512M ;;
selftest-4G) selftest 2 4G ;;
selftest-memfd) selftest 2 256M,backing=memfd ;;
poweroff)
	need_kvm
	run_guest 30 --cmdline testguest.run=poweroff
	expect_out "TESTGUEST PASS poweroff"; expect_rc 0 ;;
reset-i8042)
	need_kvm
	run_guest 30 --cmdline testguest.run=reset
	expect_out "TESTGUEST READY"; expect_rc 2 ;;
reset-cf9)
	need_kvm
	run_guest 30 --cmdline testguest.run=reset-cf9
	expect_out "TESTGUEST READY"; expect_rc 2 ;;
triplefault)
	need_kvm
	run_guest 30 --cmdline testguest.run=triplefault
	expect_out "TESTGUEST READY"; expect_rc 3
	expect_err "triple fault"; expect_err "rip " ;;
serial-echo)
	need_kvm
	mkfifo "$work/in"
	( sleep 1; printf 'hello ferry\r'; sleep 0.5; printf 'second line\nquit\n'; sleep 5 ) >"$work/in" &
	timeout -s KILL 30 "$FERRY" run --kernel "$TESTGUEST" --cmdline testguest.run=echo <"$work/in" >"$work/out" 2>"$work/err"
	rc=$?
	cat "$work/out" "$work/err"
	expect_out "TESTGUEST ECHO hello ferry"
	expect_out "TESTGUEST ECHO second line"
	expect_out "TESTGUEST PASS echo"; expect_rc 0 ;;
heartbeat-sigterm)
	need_kvm
	"$FERRY" run --kernel "$TESTGUEST" --cmdline "testguest.run=heartbeat testguest.powerbutton=ignore" --shutdown-timeout 1 \
		</dev/null >"$work/out" 2>"$work/err" &
	pid=$!
	for _ in $(seq 100); do
		[ "$(grep -c 'TESTGUEST HEARTBEAT' "$work/out")" -ge 5 ] && break
		sleep 0.1
	done
	kill -TERM "$pid"
	wait "$pid"; rc=$?
	cat "$work/out" | tail -n 5; cat "$work/err"
	[ "$(grep -c 'TESTGUEST HEARTBEAT' "$work/out")" -ge 5 ] || fail "fewer than 5 heartbeats"
	# Beats are numbered 0, 1, 2, ... without gaps.
	grep -o 'HEARTBEAT [0-9]*' "$work/out" | awk '{ if ($2 != NR - 1) exit 1 }' || fail "heartbeats out of sequence"
	# The guest was told to ignore the power button, so ferry stops it
	# after the timeout.
	expect_rc 4
	expect_err "did not power off within 1 s" ;;
serial-file)
	need_kvm
	run_guest 30 --cmdline testguest.run=poweroff --serial "file:$work/serial.log"
	expect_rc 0
	grep -qF "TESTGUEST PASS poweroff" "$work/serial.log" || fail "serial file lacks the guest's output"
	grep -q TESTGUEST "$work/out" && fail "serial output leaked to stdout"
	true ;;
bad-kernels)
	need_kvm
	: >"$work/empty"
	head -c 100 "$TESTGUEST" >"$work/truncated"
	head -c 4096 /dev/urandom >"$work/random"
	printf '\x7fELF\x02\x01\x01' >"$work/tiny-elf"
	bad_kernel "$work/missing" "--kernel $work/missing: cannot read: No such file or directory"
	bad_kernel "$work/empty" "--kernel $work/empty:"
	bad_kernel "$work/truncated" "--kernel $work/truncated:"
	bad_kernel "$work/random" "--kernel $work/random:"
	bad_kernel "$work/tiny-elf" "--kernel $work/tiny-elf:"
	bad_kernel "$work" "--kernel $work: cannot read" ;;
bad-flags)
	for args in "--memory 12X" "--cpus 0" "--cpus 100000" "--serial tty" "--bogus" "--memory 100000G"; do
		# shellcheck disable=SC2086
		timeout 20 "$FERRY" run --kernel "$TESTGUEST" $args </dev/null >"$work/out" 2>"$work/err"
		rc=$?
		echo "ferry run $args -> $rc: $(cat "$work/err")"
		expect_rc 1
		[ "$(wc -l <"$work/err")" = 1 ] || fail "expected one error line for $args"
		flag=${args%% *}
		grep -qF -- "$flag" "$work/err" || fail "error for $args does not name $flag"
	done
	if [ -e /dev/kvm ]; then
		# More memory than the host can give: a clear error, no crash.
		timeout 20 "$FERRY" run --kernel "$TESTGUEST" --memory 900G </dev/null >"$work/out" 2>"$work/err"
		rc=$?; cat "$work/err"
		expect_rc 1; expect_err "cannot allocate 921600 MiB of guest RAM"
	fi ;;
kvm-permission)
	[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm on this host"; exit 77; }
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to run ferry as another user"; exit 77; }
	[ "$(stat -c %a /dev/kvm)" = 600 ] || [ "$(stat -c %a /dev/kvm)" = 660 ] ||
		{ echo "SKIP: /dev/kvm is world-accessible here"; exit 77; }
	chmod 755 "$work"; cp "$TESTGUEST" "$FERRY" "$work/"; chmod 755 "$work/ferry"; chmod 644 "$work/$(basename "$TESTGUEST")"
	timeout 20 setpriv --reuid=65534 --regid=65534 --clear-groups "$work/ferry" run \
		--kernel "$work/$(basename "$TESTGUEST")" </dev/null >"$work/out" 2>"$work/err"
	rc=$?; cat "$work/err"
	expect_rc 1
	expect_err "cannot open /dev/kvm: Permission denied (add your user to the kvm group" ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
exit 0
