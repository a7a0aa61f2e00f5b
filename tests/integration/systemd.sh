#!/usr/bin/env bash
# ferry under systemd's protocols, without systemd: a python3 listener plays
# NOTIFY_SOCKET, a python3 wrapper passes a listening socket the way
# systemd's socket activation does, plus the config file and the unit files.
# Usage: systemd.sh CASE (FERRY and TESTGUEST point at the binaries,
# SRCDIR at the source tree).  Exit 0 pass, 1 fail, 77 skip (reason printed).
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
srcdir=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d /tmp/ferry-sd.XXXXXX)
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
need_kvm() {
	[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then skip "/dev/kvm not accessible to $(id -un)"; fi
}
need_python() {
	command -v python3 >/dev/null || skip "no python3 (needed to play systemd's side)"
}

# The notification listener: runs ferry with NOTIFY_SOCKET pointing at a
# datagram socket, sends it SIGTERM once the guest has printed KILL_AFTER
# heartbeats (never if 0), and prints each message received, one per line
# with newlines as '|', then "EXIT <status>".  Extra environment for ferry
# comes from FERRY_ENV (NAME=VALUE words).  The serial output goes to
# $work/serial, ferry's stderr to $work/err.
notify_py='
import os, signal, socket, subprocess, sys, time
work, ferry, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
args = sys.argv[4:]
path = os.path.join(work, "notify.sock")
serial = os.path.join(work, "serial")
for f in (path, serial):
    if os.path.exists(f):
        os.unlink(f)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
env = {k: v for k, v in os.environ.items()
       if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")}
env["NOTIFY_SOCKET"] = path
for kv in os.environ.get("FERRY_ENV", "").split():
    k, v = kv.split("=", 1)
    env[k] = v
p = subprocess.Popen([ferry, "run", "--serial", "file:" + serial] + args, env=env,
                     stdin=subprocess.DEVNULL, stderr=open(os.path.join(work, "err"), "w"))
print("PID %d" % p.pid, flush=True)
s.settimeout(0.05)
end = time.monotonic() + 60
killed = False
while time.monotonic() < end:
    try:
        print(s.recv(4096).decode().replace("\n", "|"), flush=True)
        continue
    except socket.timeout:
        pass
    if p.poll() is not None:
        break
    if kill_after and not killed:
        try:
            beats = open(serial).read().count("TESTGUEST HEARTBEAT")
        except FileNotFoundError:
            beats = 0
        if beats >= kill_after:
            p.send_signal(signal.SIGTERM)
            killed = True
if p.poll() is None:
    p.kill()
    print("TIMEOUT", flush=True)
rc = p.wait()
s.settimeout(0)
try:
    while True:
        print(s.recv(4096).decode().replace("\n", "|"), flush=True)
except BlockingIOError:
    pass
print("EXIT %d" % rc, flush=True)
'

# notify KILL_AFTER ARGS...: run the listener; its output is in $work/msgs.
notify() {
	local kill_after=$1; shift
	python3 -c "$notify_py" "$work" "$FERRY" "$kill_after" --kernel "$TESTGUEST" "$@" >"$work/msgs"
	echo "--- ferry run $* (${FERRY_ENV:-})"
	sed 's/^/  msg: /' "$work/msgs"
	sed 's/^/  serial: /' "$work/serial" 2>/dev/null | tail -n 5
	sed 's/^/  err: /' "$work/err" | tail -n 20
	pid=$(sed -n 's/^PID //p' "$work/msgs")
	rc=$(sed -n 's/^EXIT //p' "$work/msgs")
	grep -q '^TIMEOUT' "$work/msgs" && fail "ferry still ran after 60 s"
	if [ -z "$pid" ] || [ -z "$rc" ]; then fail "the listener did not run ferry"; fi
}
expect_rc() { [ "$rc" = "$1" ] || fail "exit status $rc, expected $1"; }

# run_ferry TIMEOUT ARGS...: stdout in $work/out, stderr in $work/err, $rc.
run_ferry() {
	local t=$1; shift
	timeout -s KILL "$t" "$FERRY" run "$@" </dev/null >"$work/out" 2>"$work/err"
	rc=$?
	echo "--- ferry run $* -> exit $rc"
	sed 's/^/  out: /' "$work/out" | tail -n 10
	sed 's/^/  err: /' "$work/err" | tail -n 10
}
expect_out() { grep -qF -- "$1" "$work/out" || fail "stdout lacks '$1'"; }
expect_err() { grep -qF -- "$1" "$work/err" || fail "stderr lacks '$1'"; }

case $case_name in
notify-order)
	need_kvm; need_python
	notify 3 --cmdline testguest.run=heartbeat --shutdown-timeout 10
	# The whole conversation, in order, and nothing else (no watchdog
	# without WATCHDOG_USEC).  MAINPID is ferry's own pid.
	printf '%s\n' "PID $pid" "STATUS=running" "READY=1|MAINPID=$pid" \
		"STATUS=shutting-down" "STOPPING=1" "STATUS=stopped" "EXIT $rc" >"$work/expected"
	diff -u "$work/expected" "$work/msgs" || fail "notifications differ from the expected sequence"
	# The guest answered the power button (see sigterm-poweroff).
	expect_rc 0 ;;
notify-watchdog)
	need_kvm; need_python
	# Half of WATCHDOG_USEC is 100 ms: ~15 pings in the 1.5 s before the
	# 15th heartbeat (100 ms apart); ask for 3 so that a loaded host passes.
	FERRY_ENV="WATCHDOG_USEC=200000" notify 15 --cmdline testguest.run=heartbeat --shutdown-timeout 0
	n=$(grep -c '^WATCHDOG=1$' "$work/msgs")
	[ "$n" -ge 3 ] || fail "$n WATCHDOG=1 messages in ~1.5 s at WATCHDOG_USEC=200000, expected several"
	# Pings come only between READY and STOPPING.
	awk '/^READY=1/ { r = 1 } /^STOPPING=1/ { s = 1 } /^WATCHDOG=1$/ && (!r || s) { exit 1 }' "$work/msgs" ||
		fail "WATCHDOG=1 outside READY..STOPPING"
	expect_rc 4
	# WATCHDOG_PID naming another process: the watchdog is not ours.
	FERRY_ENV="WATCHDOG_USEC=200000 WATCHDOG_PID=1" notify 0 --cmdline testguest.run=poweroff
	expect_rc 0
	grep -q '^WATCHDOG=1$' "$work/msgs" && fail "WATCHDOG=1 sent although WATCHDOG_PID=1"
	true ;;
socket-activation)
	need_kvm; need_python
	# The wrapper binds and listens like systemd, forks, and the child
	# puts the socket on fd 3 and execs ferry: exec keeps the pid, so
	# LISTEN_PID is the child's own.  The client connects at once (the
	# backlog holds it until ferry serves), asks for the status, then
	# SIGTERM stops ferry (shutdown timeout 0).
	python3 - "$work" "$FERRY" "$TESTGUEST" >"$work/py.out" 2>&1 <<'EOF'
import json, os, signal, socket, sys
work, ferry, guest = sys.argv[1:4]
path = os.path.join(work, "ctl.sock")
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(16)
pid = os.fork()
if pid == 0:
    os.dup2(srv.fileno(), 3)
    os.set_inheritable(3, True)
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDNAMES"):
        env.pop(k, None)
    out = os.open(os.path.join(work, "out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(os.path.join(work, "err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.execve(ferry, [ferry, "run", "--kernel", guest, "--cmdline", "testguest.run=heartbeat",
                      "--shutdown-timeout", "0"], env)
srv.close()
print("PID %d" % pid, flush=True)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.settimeout(30)
c.connect(path)
c.sendall(b'{"request":"status"}\n')
buf = b""
while not buf.endswith(b"\n"):
    chunk = c.recv(4096)
    if not chunk:
        break
    buf += chunk
c.close()
print("REPLY " + buf.decode().strip(), flush=True)
os.kill(pid, signal.SIGTERM)
_, st = os.waitpid(pid, 0)
print("EXIT %d" % os.waitstatus_to_exitcode(st), flush=True)
EOF
	cat "$work/py.out"; sed 's/^/  err: /' "$work/err"
	reply=$(sed -n 's/^REPLY //p' "$work/py.out")
	[ -n "$reply" ] || fail "no reply on the passed socket"
	fpid=$(sed -n 's/^PID //p' "$work/py.out")
	# src/api.c: {"ok": true, "result": {"state": ..., "pid": ...}}
	python3 -c 'import json, sys; r = json.loads(sys.argv[1])
sys.exit(0 if r.get("ok") is True and r["result"]["state"] == "running" and r["result"]["pid"] == int(sys.argv[2]) else 1)' "$reply" "$fpid" ||
		fail "reply is not ferry's status with state running: $reply"
	grep -qx 'EXIT 4' "$work/py.out" || fail "ferry did not exit 4 after SIGTERM with --shutdown-timeout 0"
	# ferry used the passed socket and left it alone: no other path bound.
	[ "$(find "$work" -type s | wc -l)" = 1 ] || fail "ferry created a socket of its own"
	true ;;
sigterm-poweroff)
	need_kvm; need_python
	# The guest handles the ACPI power button: SIGTERM -> SCI -> the guest
	# prints TESTGUEST POWER BUTTON and powers off: exit 0, not the
	# timeout's 4 (which would come only after 60 s).
	notify 3 --cmdline testguest.run=heartbeat --shutdown-timeout 60
	grep -q 'TESTGUEST POWER BUTTON' "$work/serial" || fail "the guest did not see the power button"
	grep -q 'did not power off' "$work/err" && fail "ferry stopped the guest itself"
	expect_rc 0 ;;
config-file)
	need_kvm
	conf=$work/vm.conf
	cat >"$conf" <<-EOF
	# a test VM
	kernel = $TESTGUEST

	cmdline = console=ttyS0 testguest.run=poweroff
	cpus = 2
	  memory	=   512M
	name = conf-test
	EOF
	run_ferry 30 --config "$conf"
	expect_rc 0
	# 512 MiB less the guest's view of the BIOS holes below 1 MiB.
	expect_out "TESTGUEST READY cpus=2 mem=511"
	expect_out "TESTGUEST PASS poweroff"
	# Flags override the file, before or after --config.
	run_ferry 30 --cpus 1 --config "$conf"
	expect_rc 0; expect_out "TESTGUEST READY cpus=1 mem=511"
	run_ferry 30 --config="$conf" --memory 256M
	expect_rc 0; expect_out "TESTGUEST READY cpus=2 mem=255"
	# Errors name the file and line and change nothing else.
	printf 'kernel = %s\n\n# comment\nbogus = 1\n' "$TESTGUEST" >"$work/bad-key.conf"
	run_ferry 20 --config "$work/bad-key.conf"
	expect_rc 1; expect_err "$work/bad-key.conf:4: unknown key 'bogus'"
	[ "$(wc -l <"$work/err")" = 1 ] || fail "expected one error line"
	printf 'kernel = %s\nmemory = 12X\n' "$TESTGUEST" >"$work/bad-value.conf"
	run_ferry 20 --config "$work/bad-value.conf"
	expect_rc 1; expect_err "$work/bad-value.conf:2: --memory: '12X' is not a size"
	printf 'kernel = %s\ncpus\n' "$TESTGUEST" >"$work/no-eq.conf"
	run_ferry 20 --config "$work/no-eq.conf"
	expect_rc 1; expect_err "$work/no-eq.conf:2: expected 'key = value'"
	printf 'config = /etc/passwd\n' >"$work/nested.conf"
	run_ferry 20 --config "$work/nested.conf"
	expect_rc 1; expect_err "$work/nested.conf:1: unknown key 'config'"
	run_ferry 20 --config "$work/missing.conf"
	expect_rc 1; expect_err "$work/missing.conf: cannot read"
	# The shipped example parses up to its (absent) kernel.
	sed 's|^kernel = .*|kernel = '"$TESTGUEST"'|; /^initrd/d; s|^serial = .*|serial = file:'"$work"'/ex.log|; s|^cmdline = .*|cmdline = testguest.run=poweroff|' \
		"$srcdir/contrib/systemd/example.conf" >"$work/example.conf"
	run_ferry 30 --config "$work/example.conf"
	expect_rc 0
	grep -qF "TESTGUEST READY cpus=2 mem=1023" "$work/ex.log" || fail "example.conf did not give 2 CPUs and 1G" ;;
unit-verify)
	command -v systemd-analyze >/dev/null || skip "no systemd-analyze (apt-get install systemd)"
	mkdir "$work/units"
	# An instance name, and an ExecStart binary that exists here.
	sed "s|/usr/bin/ferry|$FERRY|g" "$srcdir/contrib/systemd/ferry@.service" >"$work/units/ferry@test.service"
	cp "$srcdir/contrib/systemd/ferry@.socket" "$work/units/ferry@test.socket"
	grep -q "^ExecStart=$FERRY run" "$work/units/ferry@test.service" || fail "ExecStart does not run /usr/bin/ferry"
	# man:ferry(1) resolves against contrib/ferry.1.
	mkdir -p "$work/man/man1"; cp "$srcdir/contrib/ferry.1" "$work/man/man1/"
	for u in ferry@test.service ferry@test.socket; do
		MANPATH=$work/man SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$work/units/$u" >"$work/out" 2>&1
		rc=$?
		echo "systemd-analyze verify $u -> $rc"; cat "$work/out"
		[ "$rc" = 0 ] || fail "systemd-analyze verify $u failed"
		[ -s "$work/out" ] && fail "systemd-analyze verify $u warned"
	done
	# The instance settings that the rest of ferry relies on.
	for kv in Type=notify NotifyAccess=main WatchdogSec=30s KillSignal=SIGTERM \
		RuntimeDirectoryPreserve=yes RestartForceExitStatus=2 'DeviceAllow=/dev/kvm rw'; do
		grep -qx "$kv" "$work/units/ferry@test.service" || fail "ferry@.service lacks $kv"
	done
	# TimeoutStopSec outlasts the example's shutdown-timeout.
	stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$work/units/ferry@test.service")
	grace=$(sed -n 's/^shutdown-timeout = //p' "$srcdir/contrib/systemd/example.conf")
	if [ -z "$stop" ] || [ -z "$grace" ] || [ "$stop" -le "$grace" ]; then
		fail "TimeoutStopSec=${stop}s is not above shutdown-timeout ${grace}"
	fi
	grep -qx 'ListenStream=/run/ferry/%i.sock' "$work/units/ferry@test.socket" || fail "socket path differs"
	grep -qF -- '--api /run/ferry/%i.sock' "$work/units/ferry@test.service" || fail "--api path differs" ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
exit 0
