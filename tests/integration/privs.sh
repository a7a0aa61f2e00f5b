#!/usr/bin/env bash
# Least privilege (src/privs.c): after start-up ferry holds no capability in
# any thread, runs as --user, inside --chroot, and says so in status; the
# test guest's selftest, devices and a migration all work that way.
# Usage: privs.sh CASE.  Exit 0 pass, 1 fail, 77 skip (with the reason).
set -u
: "${FERRY:?}" "${TESTGUEST:?}" "${SRCDIR:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-privs.XXXXXX)
user=ferrytest
pids=()
tap=""
hostpid=""
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[ -n "$hostpid" ] && kill "$hostpid" 2>/dev/null
	wait 2>/dev/null
	[ -n "$tap" ] && ip link del "$tap" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	for f in "$work"/*.err "$work"/*.serial "$work"/*.log; do
		[ -s "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
	done
	exit 1
}
skip() { echo "SKIP: $*"; exit 77; }

[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
[ "$(id -u)" = 0 ] || skip "needs root: ferry must start privileged to drop privileges (and to switch users)"
command -v python3 >/dev/null || skip "python3 is needed for the control socket"
grep -q '^CapBnd' /proc/self/status || skip "no capability lines in /proc/PID/status"
# A test user, made once (system account, no home, no shell).
if ! getent passwd "$user" >/dev/null; then
	useradd --system --no-create-home --shell /usr/sbin/nologin "$user" 2>/dev/null ||
		getent passwd "$user" >/dev/null || skip "cannot create the test user $user (useradd)"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
# The migration channel may demand credentials or --insecure (migrate/tls.c).
insecure=()
"$FERRY" run --help 2>/dev/null | grep -q -- '--insecure' && insecure=(--insecure)

# vm NAME ARGS...: ferry in the background; serial NAME.serial, stderr
# NAME.err, control socket NAME.sock; pid in pid_NAME.
vm() {
	local n=$1; shift
	"$FERRY" run --kernel "$TESTGUEST" --api "$work/$n.sock" --serial "file:$work/$n.serial" \
		--log-level info "$@" </dev/null >"$work/$n.out" 2>"$work/$n.err" &
	pids+=($!)
	eval "pid_$n=$!"
}
. "$(dirname "$0")/lib.sh"
# status NAME: the control socket's status reply, as JSON.
status() {
	python3 - "$work/$1.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(b'{"request": "status"}\n')
print(s.makefile("rb").readline().decode().strip())
PY
}
# check_privs PID UID GID CAPS: every thread's ids are UID/GID (real,
# effective, saved, fs) and its capability sets are all zero (CAPS=none)
# or its effective set is non-zero (CAPS=some).
check_privs() {
	local pid=$1 want_uid=$2 want_gid=$3 caps=$4 n=0 st t
	for st in /proc/"$pid"/task/*/status; do
		t=${st%/status}; t=${t##*/}
		[ -r "$st" ] || continue
		# KVM's and io_uring's kernel workers (PF_USER_WORKER,
		# PF_IO_WORKER) run no user code: listed, not judged.
		flags=$(sed 's/.*) //' "${st%/status}/stat" | cut -d' ' -f7)
		if [ -n "$flags" ] && (( flags & 0x4010 )); then
			echo "thread $t ($(cat "${st%/status}/comm")): kernel worker"
			continue
		fi
		n=$((n + 1))
		read -r -a ids <<<"$(sed -n 's/^Uid:\s*//p' "$st")"
		[ "${ids[*]}" = "$want_uid $want_uid $want_uid $want_uid" ] || fail "thread $t: Uid ${ids[*]}, expected $want_uid"
		read -r -a ids <<<"$(sed -n 's/^Gid:\s*//p' "$st")"
		[ "${ids[*]}" = "$want_gid $want_gid $want_gid $want_gid" ] || fail "thread $t: Gid ${ids[*]}, expected $want_gid"
		if [ "$caps" = none ]; then
			for set in CapInh CapPrm CapEff CapBnd CapAmb; do
				v=$(sed -n "s/^$set:\s*//p" "$st")
				[ -z "$v" ] && [ "$set" = CapAmb ] && continue
				[ "$v" = 0000000000000000 ] || fail "thread $t: $set $v, expected none"
			done
			[ "$(sed -n 's/^NoNewPrivs:\s*//p' "$st")" = 1 ] || fail "thread $t: NoNewPrivs is not set"
		else
			[ "$(sed -n 's/^CapEff:\s*//p' "$st")" != 0000000000000000 ] || fail "thread $t: capabilities gone despite --allow-root"
		fi
	done
	# The event loop and one vCPU at least: a drop on one thread only
	# would show here.
	[ "$n" -ge 2 ] || fail "only $n thread(s) of ferry seen"
	echo "$n threads: uid $want_uid gid $want_gid, capabilities $caps"
}
# check_status NAME USER UID: the status reply says who ferry is.
check_status() {
	status "$1" >"$work/status.log" || fail "no status reply"
	python3 - "$work/status.log" "$2" "$3" <<'PY' || fail "status privileges: $(cat "$work/status.log")"
import json, sys
r = json.load(open(sys.argv[1]))
p = r["result"]["privileges"]
assert p["user"] == sys.argv[2], p
assert p["uid"] == int(sys.argv[3]), p
assert p["capabilities"] == [], p
assert p["no_new_privs"] is True, p
print("status privileges:", json.dumps(p))
PY
}
# run_guest NAME CMD ARGS...: a guest run to its end; exit status in $rc.
run_guest() {
	local n=$1 cmd=$2; shift 2
	timeout -s KILL 60 "$FERRY" run --kernel "$TESTGUEST" --serial "file:$work/$n.serial" \
		--cmdline "$cmd" --log-level info "$@" <"${stdin:-/dev/null}" >"$work/$n.out" 2>"$work/$n.err"
	rc=$?
	echo "--- ferry run --cmdline '$cmd' $* -> exit $rc"
	grep -q "TESTGUEST FAIL" "$work/$n.serial" 2>/dev/null && fail "the guest reported a failure"
	return 0
}
hb=(--cmdline "testguest.run=heartbeat testguest.powerbutton=ignore")

case $case_name in
selftest-user)
	run_guest st "console=ttyS0 testguest.run=selftest" --cpus 2 --user "$user"
	grep -q "TESTGUEST PASS selftest" "$work/st.serial" || fail "no selftest PASS"
	[ "$rc" = 0 ] || fail "exit status $rc"
	grep -q "running as $user (uid $uid" "$work/st.err" || fail "no log line about the user"
	# Live: every thread (event loop, vCPUs) as the user, no capabilities.
	vm hb --cpus 2 --user "$user" "${hb[@]}"
	wait_for "$work/hb.serial" "HEARTBEAT 1 " 30
	check_privs "$pid_hb" "$uid" "$gid" none
	check_status hb "$user" "$uid"
	"$FERRY" stop --api "$work/hb.sock" >/dev/null || fail "ferry stop"
	wait_exit "$pid_hb" 20
	[ "$rc" = 4 ] || fail "exit status $rc after stop, expected 4" ;;
user-group)
	# USER:GROUP with numeric ids: exactly that group, no others.
	vm hb --user "$uid:$gid" "${hb[@]}"
	wait_for "$work/hb.serial" "HEARTBEAT 1 " 30
	check_privs "$pid_hb" "$uid" "$gid" none
	groups=$(sed -n 's/^Groups:\s*//p' /proc/"$pid_hb"/status | xargs)
	[ "$groups" = "$gid" ] || fail "supplementary groups '$groups', expected only $gid" ;;
root-default)
	vm hb --cpus 2 "${hb[@]}"
	wait_for "$work/hb.serial" "HEARTBEAT 1 " 30
	check_privs "$pid_hb" 0 0 none
	check_status hb root 0
	grep -q "running as root without capabilities" "$work/hb.err" || fail "no log line about dropping" ;;
allow-root)
	vm hb --allow-root "${hb[@]}"
	wait_for "$work/hb.serial" "HEARTBEAT 1 " 30
	check_privs "$pid_hb" 0 0 some
	grep -q "warn.*--allow-root: keeping root's capabilities" "$work/hb.err" || fail "no warning for --allow-root"
	status hb | python3 -c 'import json, sys; p = json.load(sys.stdin)["result"]["privileges"]; sys.exit("sys_admin" not in p["capabilities"])' ||
		fail "status does not list the capabilities kept"
	# Not with --user.
	run_guest bad testguest.run=selftest --allow-root --user "$user"
	[ "$rc" = 1 ] || fail "--allow-root --user: exit $rc, expected 1"
	grep -q "exclude each other" "$work/bad.err" || fail "--allow-root --user: no clear error" ;;
chroot)
	mkdir "$work/jail"
	chmod 755 "$work" "$work/jail"
	run_guest st "console=ttyS0 testguest.run=selftest" --user "$user" --chroot "$work/jail"
	grep -q "TESTGUEST PASS selftest" "$work/st.serial" || fail "no selftest PASS under --chroot"
	[ "$rc" = 0 ] || fail "exit status $rc under --chroot"
	vm hb --chroot "$work/jail" --user "$user" "${hb[@]}"
	wait_for "$work/hb.serial" "HEARTBEAT 1 " 30
	[ "$(readlink /proc/"$pid_hb"/root)" = "$work/jail" ] || fail "root is $(readlink /proc/"$pid_hb"/root), not the jail"
	check_privs "$pid_hb" "$uid" "$gid" none
	status hb | python3 -c 'import json, sys; p = json.load(sys.stdin)["result"]["privileges"]; sys.exit(p["chroot"] != sys.argv[1])' \
		"$work/jail" || fail "status does not name the chroot"
	# A metrics file is written inside the chroot: its directory must
	# exist there, or ferry says so and stops before the guest runs.
	run_guest m testguest.run=selftest --chroot "$work/jail" --metrics "file:/nowhere/m.prom"
	[ "$rc" = 1 ] || fail "--metrics outside the chroot: exit $rc, expected 1"
	grep -q "cannot create files in /nowhere (inside --chroot)" "$work/m.err" || fail "no clear metrics error"
	# A missing jail is a clear error too.
	run_guest nj testguest.run=selftest --chroot "$work/nojail"
	[ "$rc" = 1 ] || fail "missing --chroot dir: exit $rc"
	grep -q -- "--chroot $work/nojail: cannot chroot" "$work/nj.err" || fail "no clear chroot error" ;;
bad-user)
	run_guest u testguest.run=selftest --user "nosuchuser$$"
	[ "$rc" = 1 ] || fail "unknown user: exit $rc, expected 1"
	grep -q "no such user" "$work/u.err" || fail "unknown user: no clear error"
	grep -q TESTGUEST "$work/u.serial" 2>/dev/null && fail "the guest ran with an unknown --user"
	run_guest g testguest.run=selftest --user "$user:nosuchgroup$$"
	[ "$rc" = 1 ] || fail "unknown group: exit $rc"
	grep -q "no such group" "$work/g.err" || fail "unknown group: no clear error"
	run_guest p testguest.run=selftest --user ":$gid"
	[ "$rc" = 1 ] || fail "':GID': exit $rc"
	grep -q "no user before" "$work/p.err" || fail "':GID': no clear error"
	# A file written later that the user cannot write: said at start-up.
	run_guest m testguest.run=selftest --user "$user" --metrics "file:$work/m.prom"
	[ "$rc" = 1 ] || fail "unwritable metrics file: exit $rc"
	grep -q "uid $uid cannot create files in $work" "$work/m.err" || fail "unwritable metrics: no clear error" ;;
virtio-blk)
	truncate -s 64M "$work/disk.img"
	run_guest blk testguest.run=blk --user "$user" --disk "path=$work/disk.img,serial=ferry-disk0"
	grep -q "TESTGUEST PASS blk" "$work/blk.serial" || fail "no blk PASS"
	[ "$rc" = 0 ] || fail "exit status $rc"
	[ "$(tr -d '\0' <"$work/disk.img" | wc -c)" -gt 0 ] || fail "the guest's writes did not reach the disk" ;;
virtio-rng)
	run_guest rng testguest.run=rng --user "$user" --rng
	grep -q "TESTGUEST PASS rng" "$work/rng.serial" || fail "no rng PASS"
	[ "$rc" = 0 ] || fail "exit status $rc" ;;
virtio-console)
	mkfifo "$work/in"
	( sleep 2; printf 'hello through hvc0\n'; sleep 5 ) >"$work/in" &
	stdin=$work/in run_guest con testguest.run=console --user "$user" --console virtio
	grep -qF "TESTGUEST CONSOLE hello" "$work/con.out" || fail "no guest output on hvc0"
	grep -qF "TESTGUEST CONSOLE GOT hello through hvc0" "$work/con.serial" || fail "hvc0 input lost"
	grep -q "TESTGUEST PASS console" "$work/con.serial" || fail "no console PASS"
	[ "$rc" = 0 ] || fail "exit status $rc" ;;
virtio-net)
	[ -e /dev/net/tun ] || skip "no /dev/net/tun"
	tap=fprv$$
	ip tuntap add "$tap" mode tap 2>/dev/null || skip "cannot create a tap device"
	ip link set "$tap" up
	python3 "$SRCDIR/tests/guest/hostnet.py" --iface "$tap" --duration 30 --until 32 >"$work/host.log" 2>&1 &
	hostpid=$!
	sleep 0.5
	# The guest's offload settings reach the tap after the drop.
	run_guest net testguest.run=net --user "$user" --net "tap=$tap,mac=52:54:00:12:34:56"
	grep -q "TESTGUEST PASS net" "$work/net.serial" || fail "no net PASS"
	wait "$hostpid"; hostpid=""
	grep -q "HOSTNET sent=[0-9]* received=32 errors=0" "$work/host.log" ||
		fail "the host did not receive the guest's 32 frames"
	[ "$rc" = 0 ] || fail "exit status $rc" ;;
migrate|migrate-tls)
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	chan=("${insecure[@]}") dst_extra=()
	if [ "$case_name" = migrate-tls ]; then
		# Credentials are read before the drop: a root-only key file
		# serves a ferry that then runs as the user, in a chroot.
		"$FERRY" run --help | grep -q -- --tls-psk || skip "this ferry has no --tls-psk"
		printf 'ferry:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/psk"
		chmod 600 "$work/psk"
		mkdir -m 755 "$work/jail"; chmod 755 "$work"
		chan=(--tls-psk "$work/psk") dst_extra=(--chroot "$work/jail")
	fi
	vm src --user "$user" "${hb[@]}" "${chan[@]}"        # the source too
	vm dst --user "$user" "${hb[@]}" --incoming "tcp:127.0.0.1:$port" "${chan[@]}" "${dst_extra[@]}"
	wait_for "$work/src.serial" "HEARTBEAT 3 " 30
	wait_for "$work/dst.err" "waiting for a migration" 30
	# Waiting, the destination has dropped already.
	check_privs "$pid_dst" "$uid" "$gid" none
	timeout -s KILL 120 "$FERRY" migrate --api "$work/src.sock" --to "tcp:127.0.0.1:$port" \
		>"$work/migrate.log" 2>&1 || fail "ferry migrate exit $?"
	wait_exit "$pid_src" 20
	[ "$rc" = 0 ] || fail "the source exited $rc after migrating"
	n=$(grep -oE 'HEARTBEAT [0-9]+ ' "$work/src.serial" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.serial" "HEARTBEAT $((n + 3)) " 30
	grep -oE 'HEARTBEAT [0-9]+ ' "$work/src.serial" "$work/dst.serial" | cut -d' ' -f2 |
		awk '{ if ($1 != NR - 1) exit 1 }' || fail "heartbeats not continuous across the migration"
	check_privs "$pid_dst" "$uid" "$gid" none
	check_status dst "$user" "$uid" ;;
snapshot)
	# `ferry snapshot --to FILE` is written by the VM's ferry, after the
	# drop: as the user, and inside --chroot.
	mkdir -m 755 "$work/jail"; chmod 755 "$work"
	chown "$user" "$work/jail"
	vm src --user "$user" --chroot "$work/jail" "${hb[@]}"
	wait_for "$work/src.serial" "HEARTBEAT 2 " 30
	"$FERRY" snapshot --api "$work/src.sock" --to /snap.bin >"$work/snap.log" 2>&1 ||
		fail "ferry snapshot --to /snap.bin (inside the chroot) exit $?"
	[ -s "$work/jail/snap.bin" ] || fail "the snapshot is not at $work/jail/snap.bin"
	[ "$(stat -c %U "$work/jail/snap.bin")" = "$user" ] || fail "the snapshot is not owned by $user"
	# Where the user cannot write: refused with the reason, VM goes on.
	"$FERRY" snapshot --api "$work/src.sock" --to /nowhere/snap.bin >"$work/snap2.log" 2>&1 &&
		fail "a snapshot into a missing directory succeeded"
	grep -q "nowhere" "$work/snap2.log" || fail "no clear snapshot error: $(cat "$work/snap2.log")"
	kill -0 "$pid_src" 2>/dev/null || fail "the VM died after a refused snapshot"
	# --restore opens its file before the drop: a root-only file works.
	chmod 600 "$work/jail/snap.bin"; chown root "$work/jail/snap.bin"
	vm dst --user "$user" "${hb[@]}" --restore "$work/jail/snap.bin"
	wait_for "$work/dst.serial" "HEARTBEAT [0-9]+ " 30
	check_privs "$pid_dst" "$uid" "$gid" none ;;
*) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
