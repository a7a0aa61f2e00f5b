#!/bin/sh
# Build and run ferry's libFuzzer targets for FUZZ_SECONDS (default 60) each.
#   tests/fuzz/run.sh [TARGET...]     run targets (default: all fuzz_*.c)
#   tests/fuzz/run.sh --gen-seeds     regenerate tests/fuzz/corpus/queue and devstate
# Exits 0 with no findings, 1 on a finding (the crashing input and the log
# are kept and their path printed), 77 if $CC cannot build fuzzers.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
CC=${CC:-clang}
secs=${FUZZ_SECONDS:-60}
cflags="-g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -fno-sanitize-recover=all"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")
keep=0
trap '[ "$keep" = 1 ] || rm -rf "$tmp"' EXIT
mkdir -p "$tmp/nocfg" && echo "#define HAVE_LIBISCSI" >"$tmp/nocfg/config.h"

# The sources each target links, and its seed corpus.
srcs_of() {
	# The parsers below sit in files whose other functions need the whole
	# VMM: those stay unresolved (non-PIE, so the link succeeds); a target
	# that reached one would die on a call to address 0, its caller on the
	# stack.
	part="-no-pie -fno-pic -Wl,--unresolved-symbols=ignore-all"
	case "$1" in
	fuzz_queue) echo "virtio/queue.c src/mem.c src/err.c src/log.c src/util.c" ;;
	fuzz_net) echo "virtio/net.c virtio/net_state.c virtio/tap.c virtio/virtio.c virtio/queue.c src/loop.c src/mem.c src/err.c src/log.c src/util.c -lfdt" ;;
	fuzz_blk) echo "virtio/blk.c virtio/blk_config.c virtio/blk_file.c virtio/virtio.c virtio/queue.c src/mem.c src/err.c src/log.c src/util.c src/loop.c -lfdt" ;;
	fuzz_api) echo "$part src/api.c src/vmm.c src/privs.c src/seccomp.c src/err.c src/log.c src/util.c -ljson-c" ;;
	fuzz_cli|fuzz_config) echo "$part src/cli.c src/ctl.c src/privs.c src/seccomp.c virtio/blk.c virtio/blk_config.c virtio/blk_iscsi_url.c virtio/net.c migrate/migrate.c src/err.c src/log.c src/util.c" ;;
	fuzz_loader) echo "src/boot/boot.c src/boot/elf.c src/boot/bzimage.c src/mem.c src/err.c src/log.c src/util.c" ;;
	fuzz_state) echo "$part migrate/state.c migrate/fdt_walk.c devices/uart8250.c devices/i8042.c devices/rtc.c devices/pm.c src/bus.c src/mem.c src/err.c src/log.c src/util.c -lfdt" ;;
	fuzz_stream) echo "$part migrate/stream.c src/mem.c src/err.c src/log.c src/util.c -lisal" ;;
	# virtio/blk_iscsi*.c include config.h: libiscsi, no GnuTLS.
	fuzz_parsers) echo "$part -I$tmp/nocfg virtio/blk_iscsi_url.c virtio/blk_iscsi.c virtio/blk_iscsi_open.c migrate/tls_cfg.c src/privs.c src/seccomp.c src/err.c src/log.c src/util.c -liscsi -ljson-c" ;;
	fuzz_devstate) echo "$part migrate/fdt_walk.c virtio/virtio.c virtio/mmio.c virtio/queue.c virtio/console.c virtio/net.c virtio/net_state.c virtio/tap.c virtio/rng.c virtio/pci.c virtio/pci_irq.c virtio/pci_state.c devices/pci.c src/irqchip.c src/loop.c src/bus.c src/mem.c src/err.c src/log.c src/util.c -lfdt" ;;
	*) echo "run.sh: unknown target $1" >&2; return 1 ;;
	esac
}
corpus_of() { echo "tests/fuzz/corpus/${1#fuzz_}"; }

if ! printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n' |
	"$CC" -fsanitize=fuzzer -x c - -o "$tmp/probe" >/dev/null 2>&1; then
	echo "fuzz: skipped: $CC cannot build with -fsanitize=fuzzer (install clang with libFuzzer)"
	exit 77
fi

if [ "${1:-}" = "--gen-seeds" ]; then
	"$CC" $cflags -DFUZZ_QUEUE_GEN_SEEDS tests/fuzz/fuzz_queue.c -o "$tmp/gen"
	mkdir -p tests/fuzz/corpus/queue
	"$tmp/gen" tests/fuzz/corpus/queue
	ls -l tests/fuzz/corpus/queue
	"$CC" $cflags -DFUZZ_DEVSTATE_GEN_SEEDS tests/fuzz/fuzz_devstate.c $(srcs_of fuzz_devstate) -o "$tmp/gen-devstate"
	mkdir -p tests/fuzz/corpus/devstate
	"$tmp/gen-devstate" tests/fuzz/corpus/devstate
	ls -l tests/fuzz/corpus/devstate
	exit 0
fi

if [ $# -eq 0 ]; then
	set -- $(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
fi

status=0
for t in "$@"; do
	srcs=$(srcs_of "$t")
	"$CC" $cflags -fsanitize=fuzzer,address,undefined "tests/fuzz/$t.c" $srcs -o "$tmp/$t"
	# libFuzzer adds to the corpus it is given: work on a copy.
	mkdir -p "$tmp/corpus-$t" "$tmp/artifacts-$t"
	cp "$(corpus_of "$t")"/* "$tmp/corpus-$t/" 2>/dev/null || true
	rc=0
	"$tmp/$t" -max_total_time="$secs" -timeout=10 -print_final_stats=1 -max_len=8192 \
		-artifact_prefix="$tmp/artifacts-$t/" "$tmp/corpus-$t" >"$tmp/$t.log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$t.log" | tail -n 1)
	findings=$(ls "$tmp/artifacts-$t" | wc -l)
	if [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ]; then
		findings=1      # it died without writing an artifact
	fi
	echo "$t: ${execs:-?} executions, $findings findings"
	if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
		keep=1
		status=1
		grep -E 'ERROR|SUMMARY|runtime error' "$tmp/$t.log" | head -n 5 || true
		echo "$t: log $tmp/$t.log, crashing inputs in $tmp/artifacts-$t/"
	fi
done
exit $status
