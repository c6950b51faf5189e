#!/usr/bin/env bash
# Builds the test guest from Debian packages and prints the directory that
# holds it:
#
#   vmlinux   the kernel as an uncompressed ELF with the PVH entry note, for
#             qemu -kernel (pulled out of the package's bzImage);
#   initrd    an uncompressed cpio with busybox-static, the modules below,
#             /init, the memory checker and the recorder, for qemu -initrd;
#   vmlinuz   the package's bzImage (the same kernel), for bootloaders;
#   memcheck  the memory checker (memcheck.c) as the initrd holds it, for
#             tests that run it on the host;
#   info      the kernel and busybox packages and versions it came from;
#   disk.img, disk.stamp  only once test/guest/disk.sh ran: a bootable disk
#             (GRUB, grub.cfg, vmlinuz and initrd on ext4), see disk.sh.
#
# Kernel command line: console=ttyS0 quiet memcheck_mib=N [testguest_ip=A/L]
# [testguest_ping=A] [testguest_records=/dev/vdX], and no_timer_check on TCG (a busy host can make the
# kernel's IO-APIC timer check fail: "IO-APIC + timer doesn't work!" panic).
# What the guest does and prints on its console (the lines tests match) is
# in the header of init. testguest_records=/dev/vdX starts the recorder
# (recorder.c): it reads the domain, host and generation from QEMU's fw_cfg
# (qemu_fw_cfg module; vmm/qemu's FwCfg* names) and appends a record of
# them every 50 ms to that raw disk, one 512-byte sector each, continuing
# the log it finds there; internal/testguest/records checks such a disk
# (one writer at a time, generations never going back).
#
# The result is cached in $OVS_TESTGUEST_CACHE (default
# $XDG_CACHE_HOME/ovs-agent-testguest, else /var/cache/ovs-agent-testguest,
# else ~/.cache/ovs-agent-testguest when that is not writable)
# under a key made of the kernel and busybox package versions and a hash of
# this script, init, memcheck.c and recorder.c; a second run only finds it. Needs
# apt-get, dpkg-deb, tar, xz, gcc and readelf (binutils); nothing is installed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${OVS_TESTGUEST_CACHE:-${XDG_CACHE_HOME:+$XDG_CACHE_HOME/ovs-agent-testguest}}
if [ -z "$cache" ]; then
	cache=/var/cache/ovs-agent-testguest
	mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ] || cache=$HOME/.cache/ovs-agent-testguest
fi
# The modules /init loads, in this order: build.sh checks that each one's
# modinfo depends= come before it.
modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
virtio_balloon virtio_blk failover net_failover virtio_net virtio_console crc16 crc32c_generic
mbcache jbd2 ext4 button evdev pvpanic pvpanic-mmio qemu_fw_cfg"

log() { echo "testguest: $*" >&2; }
die() { log "$*"; exit 1; }

# listsfp fingerprints apt's sources and package lists.
listsfp() {
	{ ls -l --time-style=+%s /var/lib/apt/lists/ /etc/apt/sources.list* 2>/dev/null || true; } | sha256sum | cut -c1-16
}

# resolve prints "KERNEL_PACKAGE KERNEL_VERSION BUSYBOX_VERSION", asking apt
# only when its package lists changed since the last answer (apt-cache takes
# about a second a call here).
resolve() {
	local fp
	fp=$(listsfp)
	if [ -s "$cache/resolved-$fp" ]; then
		cat "$cache/resolved-$fp"
		return
	fi
	if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
		log "no apt package lists: apt-get update"
		apt-get update -qq >&2 || die "apt-get update failed"
		fp=$(listsfp)
	fi
	local kpkg kver bver
	kpkg=$(apt-cache depends linux-image-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	[ -n "$kpkg" ] || die "linux-image-amd64 names no linux-image-6.x package"
	kver=$(apt-cache show --no-all-versions "$kpkg" | awk '/^Version:/ { print $2; exit }')
	bver=$(apt-cache show --no-all-versions busybox-static | awk '/^Version:/ { print $2; exit }')
	[ -n "$kver" ] && [ -n "$bver" ] || die "cannot find the versions of $kpkg and busybox-static"
	mkdir -p "$cache"
	rm -f "$cache"/resolved-*
	echo "$kpkg $kver $bver" >"$cache/resolved-$fp"
	echo "$kpkg $kver $bver"
}

# fetch PACKAGE VERSION prints the path of its .deb, downloading it once.
fetch() {
	local dir="$cache/debs/$1_${2//:/_}" tmp old
	if ! ls "$dir"/*.deb >/dev/null 2>&1; then
		log "downloading $1 $2"
		tmp="$dir.tmp.$$"
		mkdir -p "$tmp"
		# As root, apt would try to drop to _apt, who cannot write here.
		local sandbox=()
		[ "$(id -u)" != 0 ] || sandbox=(-o APT::Sandbox::User=root)
		(cd "$tmp" && apt-get download -q "${sandbox[@]}" "$1=$2" >&2) || die "apt-get download $1=$2 failed"
		mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp" # another run was first
		for old in "$cache/debs/$1_"*; do
			case $old in "$dir" | *.tmp.*) ;; *) rm -rf "$old" ;; esac
		done
	fi
	ls "$dir"/*.deb
}

# vmlinux BZIMAGE OUT: the kernel is an xz stream after the setup code.
vmlinux() {
	local off
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | head -1 | cut -d: -f1)
	[ -n "$off" ] || die "no xz stream in $1"
	# xz stops reading at the end of its stream: tail may die of SIGPIPE.
	tail -c +$((off + 1)) "$1" | xz -dc --single-stream >"$2" || [ "${PIPESTATUS[1]}" = 0 ] || die "xz: cannot decompress the kernel"
	readelf -n "$2" 2>/dev/null | grep -q 'Xen.*(0x00000012)' || die "$2 is not an ELF with a PVH (XEN_ELFNOTE_PHYS32_ENTRY) note"
}

# initrd WORK OUT: the root file system from the extracted packages.
initrd() {
	local w=$1 root=$1/root m f
	mkdir -p "$root"/{bin,etc/testguest,lib/modules,proc,sys,dev,tmp,mnt}
	cp "$w/bb/bin/busybox" "$root/bin/busybox"
	install -m 0755 "$here/init" "$root/init"
	local prog
	for prog in memcheck recorder; do
		gcc -static -no-pie -nostdlib -ffreestanding -fno-builtin -fno-stack-protector \
			-fno-tree-loop-distribute-patterns -O2 -Wall -o "$root/bin/$prog" "$here/$prog.c"
	done
	local loaded=" " dep deps
	for m in $modules; do
		f=$(find "$w/k/lib/modules" -name "$m.ko" | head -1)
		[ -n "$f" ] || die "module $m.ko not in the kernel package"
		deps=$(tr '\0' '\n' <"$f" | grep -a -m1 '^depends=' || true)
		for dep in $(echo "${deps#depends=}" | tr ',' ' '); do
			case $loaded in *" $dep "*) ;; *) die "module $m needs $dep first: fix the order of \$modules in build.sh" ;; esac
		done
		loaded="$loaded$m "
		cp "$f" "$root/lib/modules/$m.ko"
		echo "$m" >>"$root/etc/testguest/modules"
	done
	(cd "$root" && find . | "$w/bb/bin/busybox" cpio -o -H newc 2>/dev/null) >"$2"
}

build() {
	local kpkg=$1 kver=$2 bver=$3 out=$4 w kdeb bdeb
	kdeb=$(fetch "$kpkg" "$kver")
	bdeb=$(fetch busybox-static "$bver")
	w="$out.work.$$"
	mkdir -p "$w/k"
	trap "rm -rf '$w'" EXIT
	# Only the kernel and the modules the guest loads leave the package.
	local pats=('./boot/vmlinuz-*')
	for m in $modules; do pats+=("*/$m.ko"); done
	dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$w/k" --wildcards "${pats[@]}"
	dpkg-deb -x "$bdeb" "$w/bb"
	mv "$(ls "$w"/k/boot/vmlinuz-*)" "$w/vmlinuz"
	vmlinux "$w/vmlinuz" "$w/vmlinux"
	initrd "$w" "$w/initrd"
	printf 'kernel %s %s\nbusybox-static %s\n' "$kpkg" "$kver" "$bver" >"$w/info"
	# memcheck also beside them: the tests run the guest's own binary on the host.
	mkdir -p "$w/out" && cp "$w/root/bin/memcheck" "$w/memcheck" &&
		mv "$w/vmlinux" "$w/vmlinuz" "$w/initrd" "$w/memcheck" "$w/info" "$w/out/"
	mv -T "$w/out" "$out" 2>/dev/null || [ -s "$out/initrd" ] || die "cannot create $out"
	rm -rf "$w"
}

main() {
	local kpkg kver bver key dir
	read -r kpkg kver bver < <(resolve)
	[ -n "$bver" ] || exit 1
	key=$( (echo "$kpkg $kver $bver $modules"; cat "$here/build.sh" "$here/init" "$here/memcheck.c" "$here/recorder.c") | sha256sum | cut -c1-16)
	dir="$cache/$key"
	if [ ! -s "$dir/vmlinux" ] || [ ! -s "$dir/vmlinuz" ] || [ ! -s "$dir/initrd" ] || [ ! -x "$dir/memcheck" ]; then
		log "building $dir ($kpkg $kver, busybox-static $bver)"
		local t0=$SECONDS
		build "$kpkg" "$kver" "$bver" "$dir"
		log "built in $((SECONDS - t0)) s"
		# Builds unused for a week go (each use touches its directory).
		find "$cache" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f]*' ! -name debs ! -name "$key" -mtime +7 -exec rm -rf {} + || true
	else
		touch "$dir"
	fi
	echo "$dir"
}

# disk.sh sources this file for its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	main "$@"
fi
