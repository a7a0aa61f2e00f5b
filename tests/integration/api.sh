#!/usr/bin/env bash
# The control socket, the control verbs and the metrics exporter, against
# the heartbeat test guest.  Usage: api.sh CASE (FERRY and TESTGUEST point at
# the binaries).  Exit 0 pass, 1 fail, 77 skip (with the reason printed).
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-api.XXXXXX)
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
	command -v python3 >/dev/null || { echo "SKIP: python3 is needed for raw socket I/O"; exit 77; }
}

# start_vm [extra flags]: the heartbeat guest with --api $sock in the
# background, serial in $work/serial; waits for the socket and a beat.
start_vm() {
	# --serial file: appends: start each VM on an empty log, so that the
	# heartbeat waited for below is this VM's.
	rm -f "$work/serial"
	"$FERRY" run --kernel "$TESTGUEST" --cmdline "testguest.run=heartbeat ${guest_args:-}" --api "$sock" \
		--serial "file:$work/serial" --shutdown-timeout 30 "$@" </dev/null >"$work/out" 2>"$work/err" &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$sock" ] && grep -q 'TESTGUEST HEARTBEAT' "$work/serial" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || fail "ferry exited early"
		sleep 0.1
	done
	fail "no control socket or no heartbeat after 10 s"
}
# wait_vm: ferry's exit status in $rc (killed after 20 s).
wait_vm() {
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && fail "ferry still running"
	wait "$pid"; rc=$?; pid=
}
beats() { grep -c 'TESTGUEST HEARTBEAT' "$work/serial"; }
ctl() { "$FERRY" "$@" --api "$sock"; }
expect() { # WHAT ACTUAL EXPECTED
	[ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}
# raw LINES...: send lines over one connection, print the replies.
raw() {
	python3 - "$sock" "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
f = s.makefile("rb")
for line in sys.argv[2:]:
    s.sendall(line.encode() + b"\n")
    print(f.readline().decode().rstrip("\n"))
PY
}
# read_all SOCKET [REQUEST]: send REQUEST (if any), print all until EOF.
read_all() {
	python3 - "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
if len(sys.argv) > 2:
    s.sendall(sys.argv[2].encode())
data = b""
while True:
    b = s.recv(65536)
    if not b: break
    data += b
sys.stdout.write(data.decode())
PY
}
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[int(k)] if isinstance(d, list) else d[k]
print(d)' "$1"; }

case $case_name in
status)
	need_kvm; start_vm --cpus 2 --memory 512M --name api-test
	out=$(ctl status --json) || fail "status exit $?"
	expect state "$(echo "$out" | jget state)" running
	expect vcpus "$(echo "$out" | jget vcpus)" 2
	expect memory "$(echo "$out" | jget memory_bytes)" 536870912
	expect name "$(echo "$out" | jget name)" api-test
	ctl status | grep -q '^state: *running$' || fail "human status lacks the state line"
	expect mode "$(stat -c %a "$sock")" 600
	ctl stop >/dev/null; wait_vm; expect "exit status" "$rc" 4
	[ -e "$sock" ] && fail "socket file left behind"
	true ;;
pause-resume)
	need_kvm; start_vm
	ctl pause >/dev/null || fail "pause exit $?"
	expect state "$(ctl status --json | jget state)" paused
	sleep 0.3; a=$(beats); sleep 1; b=$(beats)
	expect "beats while paused" "$b" "$a"
	ctl pause 2>"$work/perr"; expect "second pause exit" "$?" 3
	grep -q paused "$work/perr" || fail "refusal does not name the state: $(cat "$work/perr")"
	ctl resume >/dev/null || fail "resume exit $?"
	sleep 1; c=$(beats)
	[ "$c" -gt "$b" ] || fail "no heartbeats after resume ($b -> $c)"
	ctl resume 2>/dev/null; expect "resume while running" "$?" 3
	ctl stop >/dev/null; wait_vm; expect "exit status" "$rc" 4 ;;
stats)
	need_kvm; start_vm
	sleep 0.5
	out=$(ctl stats --json) || fail "stats exit $?"
	io=$(echo "$out" | jget vcpus.0.exits.io)
	[ "$io" -gt 0 ] || fail "no io exits counted"
	[ "$(echo "$out" | jget vcpus.0.guest_ns)" -gt 0 ] || fail "guest_ns is 0"
	[ "$(echo "$out" | jget devices.uart0.tx_bytes)" -gt 0 ] || fail "uart tx_bytes is 0"
	[ "$(echo "$out" | jget rss_bytes)" -gt 0 ] || fail "rss_bytes is 0"
	ctl stats | grep -q 'io=' || fail "human stats lack exit reasons"
	ctl stop >/dev/null; wait_vm ;;
shutdown)
	need_kvm
	# A guest that ignores the power button is stopped after the timeout.
	guest_args=testguest.powerbutton=ignore start_vm
	ctl shutdown --timeout 1 >/dev/null || fail "shutdown exit $?"
	ctl shutdown 2>/dev/null; expect "second shutdown" "$?" 3
	expect state "$(ctl status --json | jget state)" shutting-down
	wait_vm; expect "exit status" "$rc" 4
	# One that listens powers off: exit 0, well before the timeout.
	start_vm
	ctl pause >/dev/null || fail "pause"
	ctl shutdown --timeout 20 >/dev/null || fail "shutdown of a paused VM: exit $?"
	wait_vm; expect "exit status after the guest powered off" "$rc" 0
	grep -q 'TESTGUEST POWER BUTTON' "$work/serial" || fail "the guest did not see the button" ;;
stop)
	need_kvm; start_vm
	"$FERRY" events --api "$sock" >"$work/events" &
	epid=$!
	sleep 0.3
	ctl pause >/dev/null && ctl stop >/dev/null || fail "pause/stop failed"
	wait_vm; expect "exit status" "$rc" 4
	wait "$epid"; expect "events exit" "$?" 0
	grep -q '"state":"paused"' "$work/events" || fail "no paused event: $(cat "$work/events")"
	tail -n 1 "$work/events" | grep -q '"state":"stopped"' || fail "last event is not stopped" ;;
bad-requests)
	need_kvm; start_vm
	out=$(raw '{"request":' 'nonsense' '{"request":"reboot","id":9}' '{"request":"pause","x":1}' \
		'{"request":"status","id":"after"}')
	echo "$out"
	echo "$out" | sed -n 1p | grep -q '"code":"parse_error"' || fail "malformed JSON"
	echo "$out" | sed -n 2p | grep -q '"code":"parse_error"' || fail "not JSON"
	echo "$out" | sed -n 3p | grep -q '"code":"unknown_request"' || fail "unknown request"
	echo "$out" | sed -n 3p | grep -q '"id":9' || fail "id not echoed"
	echo "$out" | sed -n 4p | grep -q '"code":"invalid_argument"' || fail "unknown argument"
	echo "$out" | sed -n 5p | grep -q '"ok":true' || fail "connection unusable after errors"
	# A 1 MiB line: one error, then the connection still works.
	python3 - "$sock" <<'PY' || fail "oversized line"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(b'{"request":"' + b"x" * (1 << 20) + b'"}\n{"request":"status"}\n')
f = s.makefile("rb")
a, b = f.readline(), f.readline()
print(a[:200], b[:200])
assert b'"too_large"' in a and b'"ok":true' in b
PY
	# 20 clients: the ones past 16 get an error and are closed.
	python3 - "$sock" <<'PY' || fail "too many clients"
import socket, sys, time
held = []
for i in range(16):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); held.append(s)
time.sleep(0.3)
refused = 0
for i in range(4):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
    line = s.makefile("rb").readline()
    assert b'"too_many_clients"' in line, line
    assert s.recv(1) == b"", "not closed"
    refused += 1
# The held ones still work.
held[0].settimeout(5); held[0].sendall(b'{"request":"status"}\n')
assert b'"ok":true' in held[0].makefile("rb").readline()
print("refused", refused)
PY
	# A client that never reads while a flood of requests comes in is
	# dropped, and the VM carries on.
	python3 - "$sock" <<'PY' || fail "slow reader"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
try:
    for i in range(20000):
        s.sendall(b'{"request":"stats"}\n' * 50)
except (BrokenPipeError, ConnectionResetError, socket.timeout):
    pass
PY
	expect state "$(ctl status --json | jget state)" running
	kill -0 "$pid" || fail "ferry died"
	ctl stop >/dev/null; wait_vm; expect "exit status" "$rc" 4 ;;
verbs)
	"$FERRY" status --api "$work/nothing.sock" 2>"$work/verr"; expect "no socket" "$?" 2
	grep -q "cannot connect to $work/nothing.sock: No such file or directory (is the VM running with --api?)" \
		"$work/verr" || fail "unclear connect error: $(cat "$work/verr")"
	"$FERRY" status 2>/dev/null; expect "no --api" "$?" 1
	"$FERRY" pause --api x --bogus 2>/dev/null; expect "bad flag" "$?" 1
	"$FERRY" status --help | grep -q 'Usage: ferry status' || fail "status --help"
	"$FERRY" shutdown --help | grep -q -- '--timeout' || fail "shutdown --help"
	"$FERRY" shutdown --api x --timeout abc 2>/dev/null; expect "bad timeout" "$?" 1
	true ;;
metrics)
	need_kvm; start_vm --metrics "unix:$work/metrics.sock"
	sleep 0.3
	# HTTP/1.0 GET, as curl --unix-socket sends it.
	read_all "$work/metrics.sock" $'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n' >"$work/http" ||
		fail "metrics over HTTP"
	head -n 1 "$work/http" | grep -q '^HTTP/1.0 200' || fail "not an HTTP 200: $(head -n 3 "$work/http")"
	grep -q '^ferry_vcpu_exits_total{vcpu="0",reason="io"} [1-9]' "$work/http" || fail "no exits in metrics"
	grep -q '^ferry_uptime_seconds ' "$work/http" || fail "no uptime in metrics"
	grep -q '^ferry_state{state="running"} 1' "$work/http" || fail "no state in metrics"
	# A client that sends nothing gets the bare text.
	read_all "$work/metrics.sock" >"$work/bare" || fail "bare metrics"
	head -n 1 "$work/bare" | grep -q '^# HELP' || fail "bare text does not start with # HELP"
	grep -q '^ferry_uptime_seconds ' "$work/bare" || fail "no uptime in bare metrics"
	if command -v curl >/dev/null; then
		curl -sf --unix-socket "$work/metrics.sock" http://localhost/metrics | grep -q ferry_rss_bytes ||
			fail "curl --unix-socket"
	fi
	expect mode "$(stat -c %a "$work/metrics.sock")" 600
	ctl stop >/dev/null; wait_vm
	[ -e "$work/metrics.sock" ] && fail "metrics socket left behind"
	true ;;
metrics-file)
	need_kvm; start_vm --metrics "file:$work/metrics.prom"
	for _ in $(seq 50); do [ -s "$work/metrics.prom" ] && break; sleep 0.1; done
	grep -q '^ferry_vcpu_exits_total{vcpu="0",reason="io"}' "$work/metrics.prom" || fail "no exits in the file"
	grep -q '^ferry_uptime_seconds ' "$work/metrics.prom" || fail "no uptime in the file"
	t1=$(grep '^ferry_uptime_seconds ' "$work/metrics.prom")
	sleep 5.5
	t2=$(grep '^ferry_uptime_seconds ' "$work/metrics.prom")
	[ "$t1" != "$t2" ] || fail "file not rewritten after 5 s"
	ls "$work" | grep -q 'metrics.prom.' && fail "temporary file left behind"
	ctl stop >/dev/null; wait_vm
	grep -q '^ferry_state{state="stopped"} 1' "$work/metrics.prom" || fail "no final snapshot"
	true ;;
socket-files)
	need_kvm
	# A stale socket (nobody listening) is replaced.
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$sock"
	[ -S "$sock" ] || fail "could not make a stale socket"
	start_vm
	ctl status >/dev/null || fail "status over the replaced socket"
	# A second ferry on the live socket is refused and leaves it alone.
	timeout 20 "$FERRY" run --kernel "$TESTGUEST" --api "$sock" --serial none </dev/null \
		>/dev/null 2>"$work/err2"
	expect "second ferry" "$?" 1
	grep -q "another process is listening" "$work/err2" || fail "unclear refusal: $(cat "$work/err2")"
	ctl status >/dev/null || fail "the first VM lost its socket"
	ctl stop >/dev/null; wait_vm
	# A path that is not a socket is never removed.
	echo keep >"$work/file"
	timeout 20 "$FERRY" run --kernel "$TESTGUEST" --api "$work/file" --serial none </dev/null \
		>/dev/null 2>"$work/err3"
	expect "non-socket path" "$?" 1
	grep -q keep "$work/file" || fail "a regular file was replaced"
	true ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
exit 0
