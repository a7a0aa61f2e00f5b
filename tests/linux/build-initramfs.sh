#!/usr/bin/env bash
# Fetch Debian's cloud kernel and build a busybox-static initramfs whose /init
# loads the virtio modules, checks the online CPU count against expect_cpus=N
# and powers off.  Usage: build-initramfs.sh [OUTDIR]; writes OUTDIR/vmlinuz
# (a bzImage) and OUTDIR/initramfs.cpio.gz.  Downloads are cached in
# $FERRY_LINUX_CACHE (default /var/tmp/ferry-linux); FERRY_LINUX_PACKAGE
# overrides the kernel package (default: what linux-image-cloud-amd64 depends on).
set -euo pipefail

cache=${FERRY_LINUX_CACHE:-/var/tmp/ferry-linux}
out=${1:-$cache/out}
# The drivers ferry's devices may need; their dependencies are added below.
wanted_modules="virtio virtio_ring virtio_pci virtio_mmio virtio_blk virtio_net
virtio_console virtio_rng virtio_balloon"

die() { echo "build-initramfs: $*" >&2; exit 1; }

mkdir -p "$cache" "$out" || die "cannot create $cache or $out"
cache=$(cd "$cache" && pwd)
out=$(cd "$out" && pwd)

# --- 1. The kernel package: ask apt, fall back to the newest cached .deb.
pkg=${FERRY_LINUX_PACKAGE:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1) || true
fi
deb=
if [ -n "$pkg" ]; then
	deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n 1)
	if [ -z "$deb" ]; then
		echo "build-initramfs: downloading $pkg into $cache"
		# apt-get download writes into the current directory.  As root it warns
		# that _apt cannot write there; the download itself is unaffected.
		(cd "$cache" && timeout 600 apt-get download "$pkg") ||
			die "apt-get download $pkg failed (run 'apt-get update', or set FERRY_LINUX_PACKAGE)"
		deb=$(find "$cache" -maxdepth 1 -name "${pkg}_*_amd64.deb" | sort -V | tail -n 1)
	fi
else
	deb=$(find "$cache" -maxdepth 1 -name 'linux-image-*-cloud-amd64_*_amd64.deb' | sort -V | tail -n 1)
	[ -n "$deb" ] || die "apt-cache knows no linux-image-cloud-amd64 and $cache has no cached kernel (is this Debian? set FERRY_LINUX_PACKAGE)"
fi
[ -f "$deb" ] || die "no kernel package found in $cache"

# --- 2. Unpack it once.
tree=$cache/$(basename "$deb" .deb)
if [ ! -d "$tree/boot" ]; then
	rm -rf "$tree.tmp"
	dpkg-deb -x "$deb" "$tree.tmp" || die "cannot unpack $deb"
	mv "$tree.tmp" "$tree"
fi
vmlinuz=$(find "$tree/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[ -n "$vmlinuz" ] || die "$deb has no /boot/vmlinuz-*"
kver=${vmlinuz##*/vmlinuz-}
moddir=$tree/lib/modules/$kver
[ -d "$moddir" ] || die "$deb has no /lib/modules/$kver"

# --- 3. The busybox binary: the host's if it is static, else Debian's package.
busybox=/bin/busybox
if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
	bbdeb=$(find "$cache" -maxdepth 1 -name 'busybox-static_*.deb' | sort -V | tail -n 1)
	if [ -z "$bbdeb" ]; then
		(cd "$cache" && timeout 300 apt-get download busybox-static) ||
			die "no static busybox on this host and apt-get download busybox-static failed"
		bbdeb=$(find "$cache" -maxdepth 1 -name 'busybox-static_*.deb' | sort -V | tail -n 1)
	fi
	rm -rf "$cache/busybox-static"
	dpkg-deb -x "$bbdeb" "$cache/busybox-static" || die "cannot unpack $bbdeb"
	busybox=$cache/busybox-static/bin/busybox
fi

# --- 4. Module load order.  The package has no modules.dep (depmod runs at
# install time), so read each module's depends= from its .modinfo section.
declare -A mod_path=() mod_done=()
while IFS= read -r -d '' ko; do
	name=$(basename "$ko")
	name=${name%%.ko*}
	mod_path[${name//-/_}]=$ko
done < <(find "$moddir/kernel" -name '*.ko*' -print0)

modinfo_depends() {
	local ko=$1
	case $ko in
	*.ko.xz) xz -dc "$ko" ;;
	*.ko.zst) zstd -dc "$ko" ;;
	*.ko.gz) gzip -dc "$ko" ;;
	*) cat "$ko" ;;
	esac | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n 1 | tr ',' ' '
}

load_order=()
add_module() { # NAME: appends NAME after its dependencies
	local name=$1 dep
	[ -n "${mod_done[$name]:-}" ] && return 0
	mod_done[$name]=1
	[ -n "${mod_path[$name]:-}" ] || { echo "build-initramfs: note: module $name not in $kver, skipped"; return 0; }
	for dep in $(modinfo_depends "${mod_path[$name]}"); do
		add_module "$dep"
	done
	load_order+=("$name")
}
for m in $wanted_modules; do
	add_module "$m"
done

# --- 5. The initramfs tree.
root=$(mktemp -d "${TMPDIR:-/tmp}/ferry-initramfs.XXXXXX")
chmod 755 "$root"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in sh mount umount cat echo grep sed tr cut seq insmod nproc poweroff sleep ls dmesg uname; do
	ln -s busybox "$root/bin/$applet"
done
: >"$root/etc/modules"
for name in "${load_order[@]}"; do
	src=${mod_path[$name]}
	# Store modules uncompressed, so insmod works whatever busybox was built with.
	case $src in
	*.ko.xz) xz -dc "$src" >"$root/lib/modules/$name.ko" ;;
	*.ko.zst) zstd -dc "$src" >"$root/lib/modules/$name.ko" ;;
	*.ko.gz) gzip -dc "$src" >"$root/lib/modules/$name.ko" ;;
	*) cp "$src" "$root/lib/modules/$name.ko" ;;
	esac
	echo "/lib/modules/$name.ko" >>"$root/etc/modules"
done
# The kernel opens /dev/console for init before /init can mount devtmpfs;
# its built-in initramfs has the node, but make it where we can.
if [ "$(id -u)" = 0 ]; then
	mknod -m 600 "$root/dev/console" c 5 1
	mknod -m 666 "$root/dev/null" c 1 3
fi

cat >"$root/init" <<'EOF'
#!/bin/sh
# ferry's Linux guest check: report boot, load virtio drivers, compare the
# online CPU count with expect_cpus=N from the command line, power off.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
echo "LINUXGUEST BOOTED kernel=$(uname -r)"

loaded=0 failed=0
while read -r ko; do
	# A driver loads without its device; a failure here is the module's fault.
	if insmod "$ko" 2>/tmp/insmod.err; then
		loaded=$((loaded + 1))
	else
		failed=$((failed + 1))
		echo "LINUXGUEST WARN insmod $ko: $(cat /tmp/insmod.err)"
	fi
done </etc/modules
ndev=$(ls /sys/bus/virtio/devices 2>/dev/null | grep -c .)
echo "LINUXGUEST MODULES loaded=$loaded failed=$failed virtio_devices=$ndev"

expect=
for arg in $(cat /proc/cmdline); do
	case $arg in expect_cpus=*) expect=${arg#expect_cpus=} ;; esac
done
# /sys/devices/system/cpu/online is a list of ranges such as "0-3,5".
online=0
if [ -r /sys/devices/system/cpu/online ]; then
	for range in $(tr ',' ' ' </sys/devices/system/cpu/online); do
		first=${range%-*} last=${range#*-}
		online=$((online + last - first + 1))
	done
else
	online=$(nproc)
fi
if [ -z "$expect" ]; then
	echo "LINUXGUEST FAIL cpus: no expect_cpus=N on the kernel command line ($online online)"
elif [ "$online" = "$expect" ]; then
	echo "LINUXGUEST PASS cpus=$online"
else
	echo "LINUXGUEST FAIL cpus: $online online ($(cat /sys/devices/system/cpu/online 2>/dev/null)), expected $expect"
fi
poweroff -f
# Reached only if the VMM's power-off path failed; panic=-1 then reboots.
echo "LINUXGUEST FAIL poweroff -f returned"
sleep 5
EOF
chmod 755 "$root/init"

cp "$vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --quiet) | gzip -9 >"$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
echo "build-initramfs: kernel $kver, modules: ${load_order[*]}"
echo "build-initramfs: wrote $out/vmlinuz and $out/initramfs.cpio.gz"
