#!/usr/bin/env bash
# Live migration between two ferry processes on 127.0.0.1: the guest's
# output must go on at the destination without a gap or a repeat (and with
# the checksums a VM that never moved prints), and every failure must leave
# the source running.  Usage: migrate.sh CASE.  Exit 0 pass, 1 fail, 77 skip.
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-mig.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	for f in "$work"/*.out "$work"/*.err "$work"/*.log; do
		[ -e "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
	done
	exit 1
}
need_kvm() {
	[ -e /dev/kvm ] || { echo "SKIP: no /dev/kvm on this host"; exit 77; }
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm not accessible to $(id -un)"; exit 77; }
	command -v python3 >/dev/null || { echo "SKIP: python3 is needed for ports and the proxy"; exit 77; }
}
# vm NAME ARGS...: start ferry in the background; serial in NAME.out, log in
# NAME.err, control socket NAME.sock, pid in pid_NAME.
vm() {
	local n=$1; shift
	# --insecure: plain TCP on both ends (migrate-tls.sh covers TLS).
	"$FERRY" run --kernel "$TESTGUEST" --api "$work/$n.sock" --serial "file:$work/$n.out" \
		--log-level info --insecure "$@" </dev/null >/dev/null 2>"$work/$n.err" &
	pids+=($!)
	eval "pid_$n=$!"
}
. "$(dirname "$0")/lib.sh"
wait_listen() { # PORT
	local i
	for ((i = 0; i < 100; i++)); do
		ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
		sleep 0.1
	done
	fail "nothing listens on port $1"
}
migrate() { # SRC PORT [flags] -> $mrc, output in migrate.log
	local s=$1 p=$2; shift 2
	timeout -s KILL 120 "$FERRY" migrate --api "$work/$s.sock" --to "tcp:127.0.0.1:$p" "$@" \
		>"$work/migrate.log" 2>&1
	mrc=$?
	echo "--- ferry migrate $* -> exit $mrc"; tail -n 3 "$work/migrate.log"
}
lines() { grep -c "$2" "$work/$1.out" 2>/dev/null || true; }
# The source keeps running: its output grows after the failed migration.
expect_alive() { # NAME PATTERN
	local before
	before=$(lines "$1" "$2")
	kill -0 "$(eval echo \$pid_$1)" 2>/dev/null || fail "the source $1 died"
	for ((i = 0; i < 50; i++)); do
		[ "$(lines "$1" "$2")" -gt "$before" ] && return 0
		sleep 0.1
	done
	fail "the source $1 stopped printing '$2' after the failed migration"
}

# Heartbeat lines of the source(s) then the destination, concatenated in
# order, must number 0, 1, 2... and carry the checksums of a reference VM
# that ran the same guest without moving.
check_heartbeat() { # REF OUT...
	local ref=$1; shift
	cat "$@" | python3 -c '
import sys, re
ref = {}
# Only whole lines: a VM still running may be caught mid-line.
for l in open(sys.argv[1]):
    m = re.match(r"TESTGUEST HEARTBEAT (\d+) (\w+)\n", l)
    if m: ref[int(m.group(1))] = m.group(2)
seq = [(int(m.group(1)), m.group(2)) for m in
       (re.search(r"TESTGUEST HEARTBEAT (\d+) (\w+)\n", l) for l in sys.stdin) if m]
if len(seq) < 3: sys.exit("too few heartbeats: %d" % len(seq))
for i, (n, c) in enumerate(seq):
    if n != i: sys.exit("heartbeat %d where %d was due (gap or repeat)" % (n, i))
    if n in ref and ref[n] != c: sys.exit("heartbeat %d: checksum %s, a VM that never moved prints %s" % (n, c, ref[n]))
checked = sum(1 for n, c in seq if n in ref)
if checked < len(seq) // 2: sys.exit("reference too short (%d of %d)" % (checked, len(seq)))
print("heartbeats 0..%d continuous, %d checked against the reference" % (len(seq) - 1, checked))
' "$ref" || fail "heartbeat continuity"
}

# Dirty-workload lines: numbered without gaps, no verification errors.
check_dirty() { # OUT...
	cat "$@" | python3 -c '
import sys, re
seq = []
for l in sys.stdin:
    if "TESTGUEST FAIL" in l: sys.exit("guest: " + l.strip())
    m = re.search(r"TESTGUEST DIRTY (\d+) pass=(\d+) errors=(\d+)", l)
    if m:
        seq.append(int(m.group(1)))
        if int(m.group(3)): sys.exit("guest reports errors: " + l.strip())
for i, n in enumerate(seq):
    if n != i: sys.exit("dirty line %d where %d was due" % (n, i))
if len(seq) < 2: sys.exit("too few dirty lines")
print("dirty lines 0..%d continuous, no page errors" % (len(seq) - 1))
' || fail "dirty workload check"
}

# Device workload lines (BLKLOOP, RNGLOOP): numbered without gaps or
# repeats across the files, and no FAIL from the guest.
check_loop() { # WORD OUT...
	local word=$1; shift
	cat "$@" | python3 -c '
import sys, re
word = sys.argv[1]
seq = []
for l in sys.stdin:
    if "TESTGUEST FAIL" in l: sys.exit("guest: " + l.strip())
    m = re.search(r"TESTGUEST %s (\d+) ok" % word, l)
    if m: seq.append(int(m.group(1)))
for i, n in enumerate(seq):
    if n != i: sys.exit("%s line %d where %d was due" % (word, n, i))
if len(seq) < 4: sys.exit("too few %s lines: %d" % (word, len(seq)))
print("%s lines 0..%d continuous, no failures" % (word, len(seq) - 1))
' "$word" || fail "$word continuity"
}

# A VM using a virtio device (pci) moves while the guest keeps using it.
device_case() { # WORD GUEST_CMD DEVICE_FLAGS...
	local word=$1 cmd=$2 port n; shift 2
	port=$(free_port)
	vm src --cmdline "testguest.run=$cmd" "$@"
	vm dst --cmdline "testguest.run=$cmd" "$@" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "$word 3 " 30
	wait_listen "$port"
	migrate src "$port"
	[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
	wait_exit "$pid_src" 10
	[ "$rc" = 0 ] || fail "the source exited $rc after migrating, expected 0"
	n=$(grep -oE "$word [0-9]+ " "$work/src.out" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.out" "$word $((n + 4)) " 30
	check_loop "$word" "$work/src.out" "$work/dst.out"
}

# A TCP proxy that damages the source->destination stream: MODE is
# corrupt:OFFSET (flip one byte) or cut:OFFSET (close both sides).
proxy() { # LISTEN_PORT TARGET_PORT MODE
	cat >"$work/proxy.py" <<'EOF'
import socket, sys, threading
lport, tport, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kind, off = mode.split(":"); off = int(off)
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", lport)); ls.listen(1)
a, _ = ls.accept(); b = socket.create_connection(("127.0.0.1", tport))
def back():
    try:
        while True:
            d = b.recv(65536)
            if not d: break
            a.sendall(d)
    except OSError: pass
    try: a.shutdown(socket.SHUT_RDWR)
    except OSError: pass
threading.Thread(target=back, daemon=True).start()
seen = 0
try:
    while True:
        d = bytearray(a.recv(65536))
        if not d: break
        if kind == "corrupt" and seen <= off < seen + len(d): d[off - seen] ^= 0x40
        if kind == "cut" and seen + len(d) > off:
            b.sendall(d[:off - seen]); break
        seen += len(d); b.sendall(d)
except OSError: pass
a.close(); b.close()
EOF
	python3 "$work/proxy.py" "$@" 2>"$work/proxy.log" &
	pids+=($!)
	wait_listen "$1"
}

hb_args=(--cmdline "testguest.run=heartbeat testguest.powerbutton=ignore")

# ferry snapshot of SRC into FILE -> $src_rc, output in snapshot.log.
snapshot() { # SRC FILE [flags]
	local s=$1 f=$2; shift 2
	timeout -s KILL 120 "$FERRY" snapshot --api "$work/$s.sock" --to "$f" "$@" \
		>"$work/snapshot.log" 2>&1
	src_rc=$?
	echo "--- ferry snapshot $* -> exit $src_rc"; tail -n 3 "$work/snapshot.log"
}
hb_count() { grep -c "TESTGUEST HEARTBEAT [0-9]* [0-9a-z]*$" "$work/$1.out" 2>/dev/null || true; }

# Snapshot a heartbeat guest (FLAGS: --live or none); the source goes on,
# and a VM restored from the file continues from the snapshot point.
snapshot_case() { # FLAGS...
	local before after k
	vm ref "${hb_args[@]}"
	vm src "${hb_args[@]}"
	wait_for "$work/src.out" "HEARTBEAT 3 " 20
	before=$(hb_count src)
	snapshot src "$work/snap.bin" --json "$@"
	after=$(hb_count src)
	[ "$src_rc" = 0 ] || fail "ferry snapshot exit $src_rc"
	grep -q '"downtime_ms"' "$work/snapshot.log" || fail "--json lacks downtime_ms"
	[ "$(stat -c %a "$work/snap.bin")" = 600 ] || fail "snapshot file mode is not 0600"
	[ -e "$work/snap.bin.tmp" ] && fail "snap.bin.tmp left behind"
	expect_alive src "HEARTBEAT"
	snapshot src "$work/snap.bin"
	[ "$src_rc" = 1 ] || fail "a second snapshot over an existing file: exit $src_rc, expected 1"
	vm dst "${hb_args[@]}" --restore "$work/snap.bin"
	wait_for "$work/dst.out" "HEARTBEAT [0-9]+ " 20
	k=$(grep -oE 'HEARTBEAT [0-9]+ ' "$work/dst.out" | head -n1 | cut -d' ' -f2)
	# The restored VM's first beat is the one after the snapshot point.
	[ "$k" -ge "$before" ] && [ "$k" -le "$((after + 1))" ] ||
		fail "restored VM starts at heartbeat $k, the snapshot was taken between $before and $after"
	wait_for "$work/dst.out" "HEARTBEAT $((k + 4)) " 20
	wait_for "$work/ref.out" "HEARTBEAT $((k + 4)) " 20
	grep -E "TESTGUEST HEARTBEAT [0-9]+ " "$work/src.out" | head -n "$k" >"$work/pre.txt"
	check_heartbeat "$work/ref.out" "$work/pre.txt" "$work/dst.out"
	kill -0 "$pid_src" 2>/dev/null || fail "the source died"
}

# ferry run --restore FILE must refuse (exit 1) without running the guest.
restore_refused() { # NAME WHY FLAGS...
	local n=$1 why=$2; shift 2
	vm "$n" "${hb_args[@]}" "$@"
	wait_exit "$(eval echo \$pid_$n)" 20
	[ "$rc" = 1 ] || fail "$n: ferry run --restore exit $rc, expected 1"
	grep -q TESTGUEST "$work/$n.out" 2>/dev/null && fail "$n: the guest ran from a bad snapshot"
	grep -q -- "$why" "$work/$n.err" || fail "$n: does not say '$why'"
	echo "$n refused: $(grep -o -- "$why.*" "$work/$n.err" | head -n1)"
}

# One migration of a heartbeat guest with CPUS vCPUs, checked end to end.
heartbeat_case() { # CPUS
	local port
	port=$(free_port)
	vm ref --cpus "$1" "${hb_args[@]}"
	vm src --cpus "$1" "${hb_args[@]}"
	vm dst --cpus "$1" "${hb_args[@]}" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "HEARTBEAT 3 " 20
	wait_listen "$port"
	migrate src "$port" --json
	[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
	grep -q '"downtime_ms"' "$work/migrate.log" || fail "--json lacks downtime_ms"
	wait_exit "$pid_src" 10
	[ "$rc" = 0 ] || fail "the source exited $rc after migrating, expected 0"
	local n
	n=$(grep -oE 'HEARTBEAT [0-9]+ ' "$work/src.out" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.out" "HEARTBEAT $((n + 4)) " 20
	wait_for "$work/ref.out" "HEARTBEAT $((n + 4)) " 20
	check_heartbeat "$work/ref.out" "$work/src.out" "$work/dst.out"
}

# A migration that must fail: the source goes on, ferry migrate says why.
failed_case() { # EXPECTED_RCS... (after the migration ran)
	local ok=0
	for want in "$@"; do [ "$mrc" = "$want" ] && ok=1; done
	[ "$ok" = 1 ] || fail "ferry migrate exit $mrc, expected one of $*"
	expect_alive src "HEARTBEAT"
}

need_kvm
case $case_name in
idle-1cpu) heartbeat_case 1 ;;
idle-2cpu) heartbeat_case 2 ;;
dirty|dirty-rate|dirty-throttle)
	port=$(free_port)
	case $case_name in
	dirty) wl=dirty:64:0; flags=() ;;
	dirty-rate) wl=dirty:128:200; flags=() ;;
	# Faster than the link: only auto-converge gets it across.
	dirty-throttle) wl=dirty:64:0; flags=(--max-bandwidth 40M --timeout 60) ;;
	esac
	vm src --memory 512M --cmdline "testguest.run=$wl"
	vm dst --memory 512M --cmdline "testguest.run=$wl" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "DIRTY READY" 30
	wait_for "$work/src.out" "DIRTY 1 " 10
	wait_listen "$port"
	migrate src "$port" "${flags[@]}"
	[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
	wait_exit "$pid_src" 10
	n=$(grep -o 'DIRTY [0-9]* ' "$work/src.out" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.out" "DIRTY $((n + 3)) " 20
	check_dirty "$work/src.out" "$work/dst.out" ;;
ping-pong)
	# 20 hops, each to a fresh ferry; the heartbeat runs through all.
	vm ref "${hb_args[@]}"
	vm h0 "${hb_args[@]}"
	wait_for "$work/h0.out" "HEARTBEAT 2 " 20
	outs=("$work/h0.out")
	for ((i = 1; i <= 20; i++)); do
		port=$(free_port)
		vm "h$i" "${hb_args[@]}" --incoming "tcp:127.0.0.1:$port"
		wait_listen "$port"
		migrate "h$((i - 1))" "$port"
		[ "$mrc" = 0 ] || fail "hop $i: ferry migrate exit $mrc"
		wait_exit "$(eval echo \$pid_h$((i - 1)))" 10
		[ "$rc" = 0 ] || fail "hop $i: the source exited $rc"
		outs+=("$work/h$i.out")
	done
	wait_for "$work/h20.out" "HEARTBEAT" 10
	n=$(cat "${outs[@]}" | grep -oE 'HEARTBEAT [0-9]+ ' | tail -n1 | cut -d' ' -f2)
	wait_for "$work/h20.out" "HEARTBEAT $((n + 3)) " 10
	wait_for "$work/ref.out" "HEARTBEAT $((n + 3)) " 20
	check_heartbeat "$work/ref.out" "${outs[@]}" ;;
refused-connection)
	vm src "${hb_args[@]}"
	wait_for "$work/src.out" "HEARTBEAT 1 " 20
	migrate src "$(free_port)"
	failed_case 8
	grep -q "cannot connect" "$work/migrate.log" || fail "no reason given" ;;
mismatch-memory|mismatch-cpus)
	port=$(free_port)
	vm src "${hb_args[@]}"
	if [ "$case_name" = mismatch-memory ]; then
		vm dst "${hb_args[@]}" --memory 512M --incoming "tcp:127.0.0.1:$port"
		why="memory size differs"
	else
		vm dst "${hb_args[@]}" --cpus 2 --incoming "tcp:127.0.0.1:$port"
		why="vCPU count differs"
	fi
	wait_for "$work/src.out" "HEARTBEAT 1 " 20
	wait_listen "$port"
	migrate src "$port"
	failed_case 7
	grep -q "$why" "$work/migrate.log" || fail "ferry migrate does not say '$why'"
	wait_exit "$pid_dst" 10
	[ "$rc" != 0 ] || fail "the destination exited 0 after refusing"
	grep -q TESTGUEST "$work/dst.out" 2>/dev/null && fail "the destination ran the guest"
	grep -q "$why" "$work/dst.err" || fail "the destination does not say '$why'" ;;
corrupt-stream|cut-stream)
	port=$(free_port); pport=$(free_port)
	vm src "${hb_args[@]}"
	vm dst "${hb_args[@]}" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "HEARTBEAT 1 " 20
	wait_listen "$port"
	if [ "$case_name" = corrupt-stream ]; then
		proxy "$pport" "$port" corrupt:300000
		migrate src "$pport"
		failed_case 7 8
		wait_exit "$pid_dst" 10
		grep -qE "checksum mismatch|malformed|unexpected record|outside guest RAM" "$work/dst.err" ||
			fail "the destination does not say what was wrong"
	else
		proxy "$pport" "$port" cut:$((RANDOM * 16 % 900000 + 100))
		migrate src "$pport"
		failed_case 8 7
		wait_exit "$pid_dst" 10
	fi
	[ "$rc" != 0 ] || fail "the destination exited 0 after a broken stream"
	grep -q TESTGUEST "$work/dst.out" 2>/dev/null && fail "the destination ran a half-loaded guest"
	# The source can still migrate, and the guest has all its memory.
	port=$(free_port)
	vm dst2 "${hb_args[@]}" --incoming "tcp:127.0.0.1:$port"
	vm ref "${hb_args[@]}"
	wait_listen "$port"
	migrate src "$port"
	[ "$mrc" = 0 ] || fail "migrating after the failure: exit $mrc"
	n=$(grep -oE 'HEARTBEAT [0-9]+ ' "$work/src.out" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst2.out" "HEARTBEAT $((n + 2)) " 20
	wait_for "$work/ref.out" "HEARTBEAT $((n + 2)) " 30
	check_heartbeat "$work/ref.out" "$work/src.out" "$work/dst2.out" ;;
kill-destination)
	# A slow migration (--max-bandwidth) of a dirty guest; the
	# destination dies in the middle.
	port=$(free_port)
	vm src --memory 512M --cmdline "testguest.run=dirty:128:0:once"
	vm dst --memory 512M --cmdline "testguest.run=dirty:128:0:once" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "DIRTY READY" 30
	wait_listen "$port"
	( sleep "0.$((RANDOM % 8 + 2))"; kill -9 "$pid_dst" ) &
	migrate src "$port" --max-bandwidth 50M
	failed_case_dirty() { [ "$mrc" = 8 ] || [ "$mrc" = 7 ] || fail "ferry migrate exit $mrc, expected 8"; }
	failed_case_dirty
	kill -0 "$pid_src" || fail "the source died"
	before=$(lines src "DIRTY [0-9]")
	sleep 2.5
	[ "$(lines src "DIRTY [0-9]")" -gt "$before" ] || fail "the source stopped"
	check_dirty "$work/src.out" ;;
second-refused|cancel)
	port=$(free_port)
	vm src --memory 512M --cmdline "testguest.run=dirty:128:0:once"
	vm dst --memory 512M --cmdline "testguest.run=dirty:128:0:once" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "DIRTY READY" 30
	wait_listen "$port"
	"$FERRY" migrate --api "$work/src.sock" --to "tcp:127.0.0.1:$port" --max-bandwidth 20M \
		>"$work/first.log" 2>&1 &
	first=$!
	sleep 1
	if [ "$case_name" = second-refused ]; then
		migrate src "$(free_port)"
		[ "$mrc" = 3 ] || fail "a second migrate: exit $mrc, expected 3 (refused)"
		grep -q "already running" "$work/migrate.log" || fail "no reason given"
		wait "$first"; frc=$?
		[ "$frc" = 0 ] || fail "the first migration: exit $frc"
	else
		python3 - "$work/src.sock" <<'EOF' || fail "migrate-cancel was not accepted"
import socket, sys, json
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"request":"migrate-cancel"}\n')
r = json.loads(s.makefile().readline()); print(r)
sys.exit(0 if r.get("ok") else 1)
EOF
		wait "$first"; frc=$?
		cat "$work/first.log"
		[ "$frc" = 5 ] || fail "the cancelled migration: exit $frc, expected 5"
		mrc=5
		kill -0 "$pid_src" || fail "the source died"
		before=$(lines src "DIRTY [0-9]")
		sleep 2.5
		[ "$(lines src "DIRTY [0-9]")" -gt "$before" ] || fail "the source stopped"
		wait_exit "$pid_dst" 10
		[ "$rc" != 0 ] || fail "the destination exited 0 after a cancelled migration"
		check_dirty "$work/src.out"
	fi ;;
timeout)
	port=$(free_port)
	vm src --memory 512M --cmdline "testguest.run=dirty:64:0"
	vm dst --memory 512M --cmdline "testguest.run=dirty:64:0" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "DIRTY READY" 30
	wait_listen "$port"
	migrate src "$port" --max-bandwidth 20M --auto-converge off --timeout 3
	[ "$mrc" = 6 ] || fail "exit $mrc, expected 6 (did not converge)"
	grep -q "did not converge" "$work/migrate.log" || fail "no reason given"
	before=$(lines src "DIRTY [0-9]")
	sleep 2.5
	[ "$(lines src "DIRTY [0-9]")" -gt "$before" ] || fail "the source stopped"
	check_dirty "$work/src.out" ;;
rng-pci)
	device_case RNGLOOP rngloop --rng ;;
blk-pci)
	truncate -s 64M "$work/disk.img"
	device_case BLKLOOP blkloop --disk "path=$work/disk.img,shared=on" ;;
blk-pci-twice)
	# There and back again: the second hop starts from loaded state.
	truncate -s 64M "$work/disk.img"
	disk=(--disk "path=$work/disk.img,shared=on" --cmdline "testguest.run=blkloop")
	port=$(free_port)
	vm src "${disk[@]}"
	vm dst "${disk[@]}" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "BLKLOOP 3 " 30
	wait_listen "$port"
	migrate src "$port"
	[ "$mrc" = 0 ] || fail "first hop: ferry migrate exit $mrc"
	wait_exit "$pid_src" 10
	n=$(grep -oE "BLKLOOP [0-9]+ " "$work/src.out" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.out" "BLKLOOP $((n + 3)) " 30
	port=$(free_port)
	vm back "${disk[@]}" --incoming "tcp:127.0.0.1:$port"
	wait_listen "$port"
	migrate dst "$port"
	[ "$mrc" = 0 ] || fail "second hop: ferry migrate exit $mrc"
	wait_exit "$pid_dst" 10
	n=$(cat "$work/src.out" "$work/dst.out" | grep -oE "BLKLOOP [0-9]+ " | tail -n1 | cut -d' ' -f2)
	wait_for "$work/back.out" "BLKLOOP $((n + 3)) " 30
	check_loop BLKLOOP "$work/src.out" "$work/dst.out" "$work/back.out" ;;
mismatch-disk)
	# The destination lacks the disk: refused, the source goes on.
	truncate -s 64M "$work/disk.img"
	port=$(free_port)
	vm src --cmdline "testguest.run=blkloop" --disk "path=$work/disk.img,shared=on"
	vm dst --cmdline "testguest.run=blkloop" --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "BLKLOOP 1 " 30
	wait_listen "$port"
	migrate src "$port"
	[ "$mrc" = 7 ] || fail "ferry migrate exit $mrc, expected 7 (refused)"
	grep -q "devices differ" "$work/migrate.log" || fail "ferry migrate does not say the devices differ"
	expect_alive src "BLKLOOP"
	wait_exit "$pid_dst" 10
	[ "$rc" != 0 ] || fail "the destination exited 0 after refusing"
	check_loop BLKLOOP "$work/src.out" ;;
mismatch-queues)
	# Refused only when the state is loaded, after the source quiesced
	# its disk: the disk must take requests again there.
	truncate -s 64M "$work/disk.img"
	port=$(free_port)
	vm src --cmdline "testguest.run=blkloop" --disk "path=$work/disk.img,shared=on,queues=2"
	vm dst --cmdline "testguest.run=blkloop" --disk "path=$work/disk.img,shared=on" \
		--incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "BLKLOOP 1 " 30
	wait_listen "$port"
	migrate src "$port"
	[ "$mrc" = 7 ] || fail "ferry migrate exit $mrc, expected 7 (refused)"
	grep -q "queues" "$work/migrate.log" || fail "ferry migrate does not say the queues differ"
	expect_alive src "BLKLOOP"
	wait_exit "$pid_dst" 10
	[ "$rc" != 0 ] || fail "the destination exited 0 after refusing"
	grep -q TESTGUEST "$work/dst.out" 2>/dev/null && fail "the destination ran the guest"
	check_loop BLKLOOP "$work/src.out" ;;
snapshot-restore) snapshot_case ;;
snapshot-live) snapshot_case --live ;;
snapshot-bad)
	vm src "${hb_args[@]}"
	wait_for "$work/src.out" "HEARTBEAT 2 " 20
	snapshot src "$work/snap.bin"
	[ "$src_rc" = 0 ] || fail "ferry snapshot exit $src_rc"
	size=$(stat -c %s "$work/snap.bin")
	cp "$work/snap.bin" "$work/flip.bin"
	python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1)
f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x40]))' "$work/flip.bin" $((size / 2))
	head -c $((size / 2)) "$work/snap.bin" >"$work/cut.bin"
	restore_refused flip "bad snapshot" --restore "$work/flip.bin"
	restore_refused cut "bad snapshot" --restore "$work/cut.bin"
	restore_refused mem "memory size differs" --memory 512M --restore "$work/snap.bin"
	restore_refused none "cannot open" --restore "$work/nonexistent.bin"
	expect_alive src "HEARTBEAT" ;;
# --- The destination's control socket while the VM is incoming ---------
incoming-status|incoming-stop|incoming-sigterm|incoming-progress|incoming-stop-receiving)
	# req NAME JSON: one request on NAME's control socket; the reply line
	# goes to stdout.
	req() {
		python3 - "$work/$1.sock" "$2" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
print(s.makefile().readline().strip())
EOF
	}
	# The guest never ran here: no output, no state past incoming.
	never_ran() { # NAME
		grep -q TESTGUEST "$work/$1.out" 2>/dev/null && fail "$1: the guest ran"
		grep -q "incoming -> running" "$work/$1.err" && fail "$1: went running"
		return 0
	}
	port=$(free_port)
	case $case_name in
	incoming-status)
		vm dst "${hb_args[@]}" --incoming "tcp:127.0.0.1:$port"
		wait_listen "$port"
		r=$(req dst '{"request":"status"}'); echo "status: $r"
		grep -q '"state":"incoming"' <<<"$r" || fail "status while waiting: $r"
		r=$("$FERRY" status --api "$work/dst.sock"); echo "ferry status: $r"
		grep -q incoming <<<"$r" || fail "ferry status does not say incoming"
		r=$(req dst '{"request":"migrate-status"}'); echo "migrate-status: $r"
		grep -q '"status":"incoming"' <<<"$r" && grep -q '"phase":"waiting"' <<<"$r" &&
			grep -q '"bytes":0' <<<"$r" || fail "migrate-status while waiting: $r"
		for q in '{"request":"pause"}' '{"request":"shutdown"}' \
			 '{"request":"migrate","to":"tcp:127.0.0.1:1"}' \
			 '{"request":"snapshot","to":"'"$work"'/snap.bin"}'; do
			r=$(req dst "$q"); echo "$q -> $r"
			grep -q '"code":"refused"' <<<"$r" && grep -q 'incoming' <<<"$r" ||
				fail "$q while incoming: $r"
		done
		[ -e "$work/snap.bin" ] && fail "a snapshot was written while incoming"
		"$FERRY" pause --api "$work/dst.sock" >"$work/pause.log" 2>&1; prc=$?
		cat "$work/pause.log"
		[ "$prc" = 3 ] || fail "ferry pause while incoming: exit $prc, expected 3 (refused)"
		kill -0 "$pid_dst" || fail "the destination died"
		r=$(req dst '{"request":"status"}')
		grep -q '"state":"incoming"' <<<"$r" || fail "status after the refusals: $r"
		never_ran dst ;;
	incoming-stop|incoming-sigterm)
		vm dst "${hb_args[@]}" --incoming "tcp:127.0.0.1:$port"
		wait_listen "$port"
		if [ "$case_name" = incoming-stop ]; then
			r=$(req dst '{"request":"stop"}'); echo "stop: $r"
			grep -q '"ok":true' <<<"$r" || fail "stop while waiting: $r"
		else
			kill -TERM "$pid_dst"
		fi
		wait_exit "$pid_dst" 10
		[ "$rc" = 4 ] || fail "exit $rc after a stop while waiting, expected 4 (stopped)"
		never_ran dst
		grep -q "incoming -> stopped" "$work/dst.err" || fail "no incoming -> stopped in the log"
		ss -Hltn "sport = :$port" | grep -q . && fail "port $port still listens"
		# A source that comes later is refused at the door and goes on.
		vm src "${hb_args[@]}"
		wait_for "$work/src.out" "HEARTBEAT 1 " 20
		migrate src "$port"
		failed_case 8 ;;
	incoming-progress)
		# A slow migration of a dirty guest: the destination answers
		# all along, shows what it received, and says when it runs.
		vm src --memory 512M --cmdline "testguest.run=dirty:128:0:once"
		vm dst --memory 512M --cmdline "testguest.run=dirty:128:0:once" \
			--incoming "tcp:127.0.0.1:$port"
		wait_for "$work/src.out" "DIRTY READY" 30
		wait_listen "$port"
		python3 - "$work/dst.sock" >"$work/watch.log" 2>&1 <<'EOF' &
import json, select, socket, sys, time
ev = socket.socket(socket.AF_UNIX); ev.connect(sys.argv[1])
ev.sendall(b'{"request":"subscribe"}\n')
seen, states, lines, buf, end = [], [], [], b"", time.time() + 90
while time.time() < end and "running" not in states:
    s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])
    s.sendall(b'{"request":"migrate-status"}\n')
    r = json.loads(s.makefile().readline()); s.close()
    res = r.get("result", {})
    if res.get("status") == "incoming":
        seen.append((res["phase"], res["bytes"], res["pages"]))
    # The subscription's lines: its reply first, then events.
    while select.select([ev], [], [], 0)[0]:
        d = ev.recv(65536)
        if not d: break
        buf += d
    while b"\n" in buf:
        l, buf = buf.split(b"\n", 1)
        lines.append(l.decode())
        e = json.loads(l)
        if e.get("event") == "state": states.append(e["state"])
    time.sleep(0.05)
print("subscription:", lines[:1], flush=True)
print("phases:", sorted(set(p for p, _, _ in seen)), "samples:", len(seen), flush=True)
print("states:", states, flush=True)
rx = [(b, p) for ph, b, p in seen if ph == "receiving" and b > 0 and p > 0]
if not rx: sys.exit("never saw bytes and pages arriving in migrate-status")
bs = [b for _, b, _ in seen]
if bs != sorted(bs): sys.exit("bytes received went backwards: %s" % bs)
if "running" not in states: sys.exit("no state event for running")
print("received so far, e.g.: %d bytes, %d pages" % rx[-1])
EOF
		watch=$!
		migrate src "$port" --max-bandwidth 50M
		[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
		wait "$watch"; wrc=$?
		cat "$work/watch.log"
		[ "$wrc" = 0 ] || fail "the destination's control socket during the migration"
		r=$(req dst '{"request":"status"}')
		grep -q '"state":"running"' <<<"$r" || fail "status after the migration: $r"
		wait_exit "$pid_src" 10
		n=$(grep -o 'DIRTY [0-9]* ' "$work/src.out" | tail -n1 | cut -d' ' -f2)
		wait_for "$work/dst.out" "DIRTY $((n + 2)) " 30
		check_dirty "$work/src.out" "$work/dst.out" ;;
	incoming-stop-receiving)
		# Stopped in the middle of a slow migration: the destination
		# exits "stopped" without running anything, the source goes on.
		vm src --memory 512M --cmdline "testguest.run=dirty:128:0:once"
		vm dst --memory 512M --cmdline "testguest.run=dirty:128:0:once" \
			--incoming "tcp:127.0.0.1:$port"
		wait_for "$work/src.out" "DIRTY READY" 30
		wait_listen "$port"
		"$FERRY" migrate --api "$work/src.sock" --to "tcp:127.0.0.1:$port" \
			--max-bandwidth 20M >"$work/migrate.log" 2>&1 &
		mig=$!
		for ((i = 0; i < 100; i++)); do
			r=$(req dst '{"request":"migrate-status"}')
			grep -q '"phase":"receiving"' <<<"$r" && break
			sleep 0.1
		done
		echo "before the stop: $r"
		grep -q '"phase":"receiving"' <<<"$r" || fail "the destination never said receiving"
		r=$(req dst '{"request":"stop"}'); echo "stop: $r"
		grep -q '"ok":true' <<<"$r" || fail "stop while receiving: $r"
		wait_exit "$pid_dst" 10
		[ "$rc" = 4 ] || fail "exit $rc after a stop while receiving, expected 4 (stopped)"
		never_ran dst
		wait "$mig"; mrc=$?
		cat "$work/migrate.log"
		[ "$mrc" = 8 ] || [ "$mrc" = 7 ] || fail "ferry migrate exit $mrc, expected 8"
		kill -0 "$pid_src" || fail "the source died"
		before=$(lines src "DIRTY [0-9]")
		sleep 2.5
		[ "$(lines src "DIRTY [0-9]")" -gt "$before" ] || fail "the source stopped"
		check_dirty "$work/src.out" ;;
	esac ;;
# --- virtio devices on virtio-mmio, virtio-net and virtio-console (devmig) ---
# The same device_case as rng-pci/blk-pci, on the other transport.
rng-mmio)
	device_case RNGLOOP rngloop --rng --transport mmio ;;
blk-mmio)
	truncate -s 64M "$work/disk.img"
	device_case BLKLOOP blkloop --disk "path=$work/disk.img,shared=on" --transport mmio ;;
console-pci|console-mmio)
	# Input typed on each side reaches the guest, and the guest's hvc0
	# output goes on from the destination's stdout without a gap.
	tr=${case_name#console-}
	port=$(free_port)
	mkfifo "$work/src.in" "$work/dst.in"
	exec 7<>"$work/src.in" 8<>"$work/dst.in"   # writers that stay open
	con() { # NAME ARGS...: like vm, with hvc0 on NAME.con and input from NAME.in
		local n=$1; shift
		"$FERRY" run --kernel "$TESTGUEST" --api "$work/$n.sock" --serial "file:$work/$n.out" \
			--log-level info --insecure --console virtio --transport "$tr" \
			--cmdline "testguest.run=consoleloop" "$@" \
			<"$work/$n.in" >"$work/$n.con" 2>"$work/$n.err" &
		pids+=($!)
		eval "pid_$n=$!"
	}
	con src
	con dst --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "CONSOLELOOP 1 " 30
	echo "typed-on-the-source" >&7
	wait_for "$work/src.out" "CONSOLEIN typed-on-the-source" 10
	wait_listen "$port"
	migrate src "$port"
	[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
	wait_exit "$pid_src" 10
	[ "$rc" = 0 ] || fail "the source exited $rc after migrating, expected 0"
	echo "typed-on-the-destination" >&8
	wait_for "$work/dst.out" "CONSOLEIN typed-on-the-destination" 20
	n=$(grep -oE "CONSOLEOUT [0-9]+ " "$work/src.con" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.con" "CONSOLEOUT $((n + 20)) " 30
	grep -q "CONSOLEIN typed-on-the-source" "$work/dst.out" &&
		fail "the source's input was delivered twice"
	check_loop CONSOLEOUT "$work/src.con" "$work/dst.con"
	check_loop CONSOLELOOP "$work/src.out" "$work/dst.out" ;;
net-pci|net-mmio|net-refused)
	# virtio-net on a persistent tap that the test creates: the source
	# lets go of it at the switchover and the destination takes it (see
	# virtio/net_state.c).  The guest exchanges frames with hostnet.py
	# all along; afterwards the destination announces the guest's MAC
	# with a RARP (the test guest does not negotiate GUEST_ANNOUNCE).
	# net-refused: the destination refuses the state after the source
	# quiesced (other queues=), and the source takes its tap back.
	[ -e /dev/net/tun ] || { echo "SKIP: no /dev/net/tun"; exit 77; }
	tap=fmig$$
	# Owned by our user: ferry, without capabilities after start-up,
	# may still open it at the switchover (and again after a failure).
	ip tuntap add "$tap" mode tap user "$(id -u)" 2>/dev/null ||
		{ echo "SKIP: cannot create a tap device (needs CAP_NET_ADMIN)"; exit 77; }
	trap 'ip link del "$tap" 2>/dev/null; cleanup' EXIT
	ip link set "$tap" up
	tr=pci; [ "$case_name" = net-mmio ] && tr=mmio
	mac=52:54:00:4d:49:47
	srcdir=${SRCDIR:-$(dirname "$0")/../..}
	python3 "$srcdir/tests/guest/hostnet.py" --iface "$tap" --duration 120 --verbose \
		>"$work/host.log" 2>&1 &
	pids+=($!)
	python3 - "$tap" >"$work/rarp.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind((sys.argv[1], 0x8035))
while True:
    d = s.recv(2048)
    if len(d) >= 42 and d[12:14] == b"\x80\x35" and d[20:22] == b"\x00\x03":
        print("RARP from", d[6:12].hex(":"), "for", d[32:38].hex(":"), flush=True)
PY
	pids+=($!)
	net=(--cmdline "testguest.run=netloop" --transport "$tr" --net "tap=$tap,mac=$mac")
	port=$(free_port)
	vm src "${net[@]}"
	if [ "$case_name" = net-refused ]; then
		vm dst "${net[@]/%mac=$mac/mac=$mac,queues=2}" --incoming "tcp:127.0.0.1:$port"
	else
		vm dst "${net[@]}" --incoming "tcp:127.0.0.1:$port"
	fi
	wait_for "$work/src.out" "NETLOOP 3 ok rx=[1-9]" 40
	wait_listen "$port"
	migrate src "$port"
	rx_of() { grep -oE "NETLOOP $2 ok rx=[0-9]+" "$work/$1.out" | head -n1 | cut -d= -f2; }
	if [ "$case_name" = net-refused ]; then
		[ "$mrc" = 7 ] || fail "ferry migrate exit $mrc, expected 7 (refused)"
		grep -q "queue" "$work/migrate.log" || fail "ferry migrate does not say why"
		n=$(grep -oE "NETLOOP [0-9]+ " "$work/src.out" | tail -n1 | cut -d' ' -f2)
		wait_for "$work/src.out" "NETLOOP $((n + 4)) " 30
		[ "$(rx_of src $((n + 4)))" -gt "$(rx_of src "$n")" ] ||
			fail "the source receives nothing after taking its tap back"
		grep -q "got TESTGUEST NET $(((n + 3) * 16))\$" "$work/host.log" ||
			fail "the host got no frame the source sent after the failed migration"
		check_loop NETLOOP "$work/src.out"
	else
		[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
		wait_exit "$pid_src" 10
		[ "$rc" = 0 ] || fail "the source exited $rc after migrating, expected 0"
		n=$(grep -oE "NETLOOP [0-9]+ " "$work/src.out" | tail -n1 | cut -d' ' -f2)
		wait_for "$work/dst.out" "NETLOOP $((n + 4)) " 30
		check_loop NETLOOP "$work/src.out" "$work/dst.out"
		# Frames both ways after the move: the guest's count of host
		# frames grows, and the host sees frames only the destination sent.
		[ "$(rx_of dst $((n + 4)))" -gt "$(rx_of src "$n")" ] ||
			fail "the guest receives nothing on the destination"
		grep -q "got TESTGUEST NET $(((n + 3) * 16))\$" "$work/host.log" ||
			fail "the host got no frame the destination sent"
		wait_for "$work/rarp.log" "RARP from $mac for $mac" 10
	fi ;;
net-not-persistent)
	# A tap that ferry created goes away with its last fd: refused up
	# front, and the VM keeps its network.
	[ -e /dev/net/tun ] || { echo "SKIP: no /dev/net/tun"; exit 77; }
	tap=fmin$$
	trap 'ip link del "$tap" 2>/dev/null; cleanup' EXIT
	vm src --cmdline "testguest.run=rngloop" --rng --net "tap=$tap"
	wait_for "$work/src.out" "RNGLOOP 1 " 30
	ip link show "$tap" >/dev/null 2>&1 || { echo "SKIP: ferry could not create a tap"; exit 77; }
	migrate src "$(free_port)"
	[ "$mrc" = 0 ] && fail "migrating a VM on a non-persistent tap was accepted"
	grep -q "tap $tap is not persistent" "$work/migrate.log" || fail "no reason given"
	expect_alive src "RNGLOOP"
	ip link show "$tap" >/dev/null 2>&1 || fail "the tap went away" ;;
# ---- The migration issue's test guest workloads (tests/guest/dirty.c):
# dirty on every vCPU, the guest's verify on request, the verify's own
# failure, and the source's guest verified after a broken migration.
dirty-2cpu|dirty-2cpu-rate|dirty-2cpu-once|dirty-2cpu-throttle|dirty-2cpu-cut|dirty-corrupt)
	# vm_in NAME ARGS...: like vm, with COM1 on stdio: input from the FIFO
	# NAME.in (a writer is kept open on fd in_NAME), output in NAME.out.
	vm_in() {
		local n=$1 fd; shift
		mkfifo "$work/$n.in"
		exec {fd}<>"$work/$n.in"
		eval "in_$n=$fd"
		"$FERRY" run --kernel "$TESTGUEST" --api "$work/$n.sock" --serial stdio \
			--log-level info --insecure "$@" <"$work/$n.in" >"$work/$n.out" 2>"$work/$n.err" &
		pids+=($!)
		eval "pid_$n=$!"
	}
	# The guest's verify: every page checked again after the request.
	verify_on() { # NAME
		local before fd
		before=$(lines "$1" "TESTGUEST VERIFY ok")
		fd=$(eval echo \$in_$1)
		echo verify >&"$fd"
		for ((i = 0; i < 300; i++)); do
			grep -q "TESTGUEST FAIL verify" "$work/$1.out" && fail "$1: the guest's verify failed"
			[ "$(lines "$1" "TESTGUEST VERIFY ok")" -gt "$before" ] && {
				echo "$1: $(grep "TESTGUEST VERIFY ok" "$work/$1.out" | tail -n1)"
				return 0
			}
			sleep 0.1
		done
		fail "$1: no answer to verify within 30 s"
	}
	# A page's generation and checksum are checked on every pass: two more
	# full passes on the destination after its first line mean every page
	# was checked there.
	check_passes() { # OUT
		python3 - "$1" <<'PY' || fail "the destination did not check every page"
import re, sys
p = [int(m.group(1)) for m in re.finditer(r"TESTGUEST DIRTY \d+ pass=(\d+) errors=0\n", open(sys.argv[1]).read())]
if len(p) < 2 or p[-1] < p[0] + 2: sys.exit("passes on the destination: %s" % p)
print("destination: passes %d..%d, every page checked" % (p[0], p[-1]))
PY
	}
	if [ "$case_name" = dirty-corrupt ]; then
		# Two pages damaged on purpose (one bit flipped, one stale
		# generation): the guest must name both, and check_dirty must
		# then fail, or a broken migration could pass unnoticed.
		vm c --cpus 2 --memory 256M --cmdline "testguest.run=dirty:16:0:corrupt"
		wait_exit "$pid_c" 60
		[ "$rc" = 0 ] || fail "the guest did not power off (exit $rc)"
		grep -q "TESTGUEST PASS dirty-corrupt" "$work/c.out" || fail "the guest missed a damaged page"
		read -r flipped stale < <(sed -nE 's/.*flipped a bit in page ([0-9a-f]+), made page ([0-9a-f]+) stale.*/\1 \2/p' "$work/c.out")
		[ -n "$stale" ] || fail "the guest did not say which pages it damaged"
		grep -q "FAIL dirty: page $flipped (cpu 1) does not match its checksum" "$work/c.out" ||
			fail "no checksum failure for page $flipped (of the second vCPU)"
		grep -q "FAIL dirty: page $stale (cpu 0) holds generation 0, expected 1" "$work/c.out" ||
			fail "no stale-generation failure for page $stale"
		if (check_dirty "$work/c.out") >"$work/check.log" 2>&1; then
			fail "check_dirty passed a guest that reported damaged pages"
		fi
		echo "check_dirty fails as it must: $(grep -m1 'guest' "$work/check.log")"
	else
		port=$(free_port)
		flags=()
		case $case_name in
		dirty-2cpu) wl=dirty:64:0 ;;
		dirty-2cpu-rate) wl=dirty:128:200 ;;
		dirty-2cpu-once) wl=dirty:256:0:once ;;
		# Faster than the link from both vCPUs: auto-converge must
		# throttle both.
		dirty-2cpu-throttle) wl=dirty:32:0; flags=(--max-bandwidth 40M --timeout 60) ;;
		dirty-2cpu-cut) wl=dirty:128:0:once ;;
		esac
		vm_in src --cpus 2 --memory 512M --cmdline "testguest.run=$wl"
		vm_in dst --cpus 2 --memory 512M --cmdline "testguest.run=$wl" --incoming "tcp:127.0.0.1:$port"
		wait_for "$work/src.out" "DIRTY READY mib=[0-9]+ rate=[0-9]+ cpus=2" 30
		wait_for "$work/src.out" "DIRTY 1 " 10
		verify_on src
		wait_listen "$port"
		if [ "$case_name" = dirty-2cpu-cut ]; then
			pport=$(free_port)
			proxy "$pport" "$port" cut:$((RANDOM * 256 + (1 << 20)))
			migrate src "$pport"
			[ "$mrc" = 8 ] || [ "$mrc" = 7 ] || fail "ferry migrate exit $mrc, expected 8 or 7"
			expect_alive src "DIRTY [0-9]"
			verify_on src
			check_dirty "$work/src.out"
		else
			migrate src "$port" "${flags[@]}"
			[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
			wait_exit "$pid_src" 10
			[ "$rc" = 0 ] || fail "the source exited $rc after migrating, expected 0"
			n=$(grep -o 'DIRTY [0-9]* ' "$work/src.out" | tail -n1 | cut -d' ' -f2)
			wait_for "$work/dst.out" "DIRTY $((n + 3)) " 20
			verify_on dst
			check_dirty "$work/src.out" "$work/dst.out"
			check_passes "$work/dst.out"
		fi
	fi ;;
*)
	echo "unknown case $case_name"; exit 1 ;;
esac
echo "PASS: $case_name"
