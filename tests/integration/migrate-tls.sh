#!/usr/bin/env bash
# The migration channel's TLS (migrate/tls.c) between two ferry processes on
# 127.0.0.1: a PSK and an X.509 migration go through with the guest's
# heartbeat intact; a wrong key, a plain-TCP source and a certificate from
# another CA are refused before any VM state is read, and the source keeps
# running; missing credentials and a PSK file others can read stop ferry
# run at start-up.  Keys and certificates are made here with psktool and
# certtool.  Usage: migrate-tls.sh CASE.  Exit 0 pass, 1 fail, 77 skip.
set -u
: "${FERRY:?}" "${TESTGUEST:?}"
case_name=$1
work=$(mktemp -d /tmp/ferry-mig-tls.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	for f in "$work"/*.err "$work"/*.log; do
		[ -e "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }
	done
	exit 1
}
skip() { echo "SKIP: $*"; exit 77; }
[ -e /dev/kvm ] || skip "no /dev/kvm on this host"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "/dev/kvm not accessible to $(id -un)"
command -v python3 >/dev/null || skip "python3 is needed for free ports"
command -v psktool >/dev/null || skip "psktool is missing (apt-get install gnutls-bin)"
command -v certtool >/dev/null || skip "certtool is missing (apt-get install gnutls-bin)"
"$FERRY" run --help 2>&1 | grep -q -- --tls-psk || skip "this ferry has no --tls-psk"

hb_args=(--cmdline "testguest.run=heartbeat testguest.powerbutton=ignore")
# vm NAME ARGS...: ferry in the background; serial NAME.out, log NAME.err,
# control socket NAME.sock, pid in pid_NAME.
vm() {
	local n=$1; shift
	"$FERRY" run --kernel "$TESTGUEST" --api "$work/$n.sock" --serial "file:$work/$n.out" \
		--log-level info "${hb_args[@]}" "$@" </dev/null >/dev/null 2>"$work/$n.err" &
	pids+=($!)
	eval "pid_$n=$!"
}
. "$(dirname "$0")/lib.sh"
migrate() { # SRC PORT -> $mrc, output in migrate.log
	timeout -s KILL 120 "$FERRY" migrate --api "$work/$1.sock" --to "tcp:127.0.0.1:$2" \
		>"$work/migrate.log" 2>&1
	mrc=$?
	echo "--- ferry migrate -> exit $mrc"; tail -n 2 "$work/migrate.log"
}
beats() { grep -c "TESTGUEST HEARTBEAT [0-9]* [0-9a-z]*$" "$work/$1.out" 2>/dev/null || true; }

# ---- credentials ----
psk() { # FILE [IDENTITY]
	psktool -u "${2:-ferry}" -p "$1" >/dev/null 2>&1 || fail "psktool -p $1"
	chmod 600 "$1"
}
# ca NAME: a self-signed CA in NAME-ca.pem / NAME-ca.key
ca() {
	certtool --generate-privkey --outfile "$work/$1-ca.key" >/dev/null 2>&1 &&
	printf 'cn = "ferry test CA %s"\nca\ncert_signing_key\nexpiration_days = 2\n' "$1" >"$work/$1-ca.tmpl" &&
	certtool --generate-self-signed --load-privkey "$work/$1-ca.key" --template "$work/$1-ca.tmpl" \
		--outfile "$work/$1-ca.pem" >/dev/null 2>&1 || fail "certtool: CA $1"
}
# cert NAME CA: NAME.pem / NAME.key signed by CA, for 127.0.0.1 and localhost,
# good both as a server (destination) and a client (source).
cert() {
	certtool --generate-privkey --outfile "$work/$1.key" >/dev/null 2>&1 &&
	chmod 600 "$work/$1.key" &&
	printf 'cn = "%s"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\ntls_www_client\nsigning_key\nencryption_key\nexpiration_days = 2\n' "$1" >"$work/$1.tmpl" &&
	certtool --generate-certificate --load-privkey "$work/$1.key" --load-ca-certificate "$work/$2-ca.pem" \
		--load-ca-privkey "$work/$2-ca.key" --template "$work/$1.tmpl" --outfile "$work/$1.pem" \
		>/dev/null 2>&1 || fail "certtool: certificate $1"
}
x509() { # NAME TRUSTED_CA -> the flags
	echo "--tls-cert $work/$1.pem --tls-key $work/$1.key --tls-ca $work/$2-ca.pem"
}

# A migration that goes through: the destination goes on beating from
# where the source stopped, and both ends logged the authenticated channel.
good_case() { # SRC_FLAGS DST_FLAGS
	local port n
	port=$(free_port)
	# shellcheck disable=SC2086
	vm src $1
	# shellcheck disable=SC2086
	vm dst $2 --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "HEARTBEAT 3 " 20
	wait_for "$work/dst.err" "waiting for a migration" 20
	migrate src "$port"
	[ "$mrc" = 0 ] || fail "ferry migrate exit $mrc"
	wait_exit "$pid_src" 10
	[ "$rc" = 0 ] || fail "the source exited $rc after migrating"
	grep -q "migration channel: the destination .* authenticated, .*TLS" "$work/src.err" ||
		fail "the source did not log an authenticated TLS channel"
	grep -q "migration channel: the source .* authenticated, .*TLS" "$work/dst.err" ||
		fail "the destination did not log an authenticated TLS channel"
	n=$(grep -oE 'HEARTBEAT [0-9]+ ' "$work/src.out" | tail -n1 | cut -d' ' -f2)
	wait_for "$work/dst.out" "HEARTBEAT $((n + 3)) " 20
	# No gap and no repeat across the move.
	cat "$work/src.out" "$work/dst.out" | grep -oE 'HEARTBEAT [0-9]+ ' | cut -d' ' -f2 |
		awk '$1 != NR - 1 { print "heartbeat " $1 " where " NR - 1 " was due"; bad = 1 } END { exit bad }' ||
		fail "heartbeat continuity"
	echo "migrated over $(grep -o 'authenticated, .*' "$work/dst.err" | head -n1); beats 0..$((n + 3)) continuous"
}

# A migration the destination must refuse at the handshake: nothing of the
# stream read, the destination stops (as for any rejected migration), the
# source keeps running and answers status.
refused_case() { # SRC_FLAGS DST_FLAGS DST_LOG_PATTERN
	local port before
	port=$(free_port)
	# shellcheck disable=SC2086
	vm src $1
	# shellcheck disable=SC2086
	vm dst $2 --incoming "tcp:127.0.0.1:$port"
	wait_for "$work/src.out" "HEARTBEAT 3 " 20
	wait_for "$work/dst.err" "waiting for a migration" 20
	migrate src "$port"
	[ "$mrc" = 7 ] || [ "$mrc" = 8 ] ||
		fail "ferry migrate exit $mrc, expected 7 (refused) or 8 (connection failed)"
	wait_exit "$pid_dst" 20
	[ "$rc" != 0 ] || fail "the destination exited 0 after refusing"
	grep -qE -- "$3" "$work/dst.err" || fail "the destination's log does not say '$3'"
	# Refused before the stream: no machine check, no RAM, no state.
	grep -qE "migration received|machine|RAM" "$work/dst.err" &&
		fail "the destination read VM state from a refused peer"
	grep -q TESTGUEST "$work/dst.out" 2>/dev/null && fail "the destination ran a guest"
	kill -0 "$pid_src" 2>/dev/null || fail "the source died"
	before=$(beats src)
	wait_for "$work/src.out" "HEARTBEAT $((before + 1)) " 10
	timeout 10 "$FERRY" status --api "$work/src.sock" >"$work/status.log" 2>&1 ||
		fail "the source does not answer status"
	grep -q running "$work/status.log" || fail "the source is not running: $(cat "$work/status.log")"
	echo "refused: $(grep -oE -- "$3.*" "$work/dst.err" | head -n1)"
}

# ferry run must stop at start-up: exit 1 and a clear message.
startup_refused() { # PATTERN FLAGS...
	local why=$1; shift
	vm bad "$@"
	wait_exit "$pid_bad" 20
	[ "$rc" = 1 ] || fail "ferry run exit $rc, expected 1"
	grep -q TESTGUEST "$work/bad.out" 2>/dev/null && fail "the guest ran"
	grep -q -- "$why" "$work/bad.err" || fail "the message does not say '$why': $(cat "$work/bad.err")"
	echo "refused at start-up: $(grep -o -- "ferry: .*$why.*" "$work/bad.err" | head -n1)"
}

case $case_name in
psk)
	psk "$work/k.psk"
	good_case "--tls-psk $work/k.psk" "--tls-psk $work/k.psk" ;;
x509)
	ca one
	cert src one
	cert dst one
	good_case "$(x509 src one)" "$(x509 dst one)" ;;
wrong-psk)
	psk "$work/a.psk"
	psk "$work/b.psk"
	refused_case "--tls-psk $work/a.psk" "--tls-psk $work/b.psk" "TLS handshake with the source .* failed" ;;
plain-source)
	psk "$work/k.psk"
	refused_case "--insecure" "--tls-psk $work/k.psk" "plain-TCP stream; this destination requires TLS"
	grep -q "TLS migrations only" "$work/migrate.log" ||
		fail "ferry migrate does not say the destination wants TLS" ;;
other-ca)
	ca one
	ca two
	cert dst one
	cert src two
	# The source trusts the destination; its own certificate is signed
	# by a CA the destination does not know.
	refused_case "$(x509 src one)" "$(x509 dst one)" "TLS handshake with the source .*certificate" ;;
no-credentials)
	startup_refused "no credentials for the migration channel" --incoming "tcp:127.0.0.1:$(free_port)"
	# The source refuses to send in the clear too (same rule).
	vm src
	wait_for "$work/src.out" "HEARTBEAT 1 " 20
	migrate src "$(free_port)"
	[ "$mrc" != 0 ] || fail "a source without credentials migrated in the clear"
	grep -q -- "--insecure" "$work/migrate.log" || fail "ferry migrate does not mention --insecure"
	kill -0 "$pid_src" 2>/dev/null || fail "the source died" ;;
psk-mode)
	psk "$work/k.psk"
	chmod 644 "$work/k.psk"
	startup_refused "chmod 600" --tls-psk "$work/k.psk" --incoming "tcp:127.0.0.1:$(free_port)"
	startup_refused "--tls-psk $work/missing.psk: cannot open" --tls-psk "$work/missing.psk" ;;
*)
	echo "unknown case $case_name"; exit 2 ;;
esac
echo "PASS: $case_name"
