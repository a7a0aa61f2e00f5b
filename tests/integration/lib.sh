# Helpers shared by the integration scripts that run several ferry
# processes (migrate.sh, migrate-tls.sh, privs.sh).  Sourced after the
# script has defined fail(), which prints that script's own logs.

# wait_for FILE PATTERN SECONDS: until an extended regex shows up in FILE.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qE -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "$1: no '$2' within $3 s"
}

# wait_exit PID SECONDS: until the process has exited; its status in $rc.
wait_exit() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1"; rc=$?; return 0; }
		sleep 0.1
	done
	fail "process $1 still running after $2 s"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
