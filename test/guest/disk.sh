#!/usr/bin/env bash
# Builds disk.img, a bootable disk of the test guest, beside the files of
# build.sh (in the directory build.sh prints), and prints its path. For
# builder='hvm' (SeaBIOS boots it) and bootloader='pygrub' (vmm/bootloader
# reads its grub.cfg) tests:
#
#   raw, 64 MiB (sparse), MBR with one bootable Linux partition (type 0x83)
#   from sector 2048 to the end, ext4 (mkfs.ext4 -d) holding
#     /boot/vmlinuz          the bzImage of build.sh (vmlinuz)
#     /boot/initrd.img       build.sh's initrd
#     /boot/grub/grub.cfg    one menuentry "testguest", the default, timeout 0:
#                            linux /boot/vmlinuz console=ttyS0 quiet
#                            memcheck_mib=16 no_timer_check root=/dev/vda1
#                            initrd /boot/initrd.img
#   and GRUB i386-pc: boot.img in the first 440 bytes of the MBR, core.img
#   (biosdisk, part_msdos, ext2 and what grub.cfg needs, prefix
#   (hd0,msdos1)/boot/grub) in sectors 1-2047.
#
# Beside it, cd.iso: ISO 9660 (xorriso) with the same kernel and initrd and
# a grub.cfg without root=, booted by SeaBIOS through El Torito into GRUB
# (i386-pc-eltorito), for builder='hvm' with boot='d' and an hdc:cdrom disk.
#
# The guest's /init mounts that partition (/dev/vda1) on /mnt and counts its
# boots in /testguest-boots: tests copy disk.img (cp --sparse=always) and
# boot the copy. no_timer_check: on a busy host TCG can fail the kernel's
# IO-APIC timer check ("IO-APIC + timer doesn't work!" panic).
#
# GRUB comes from the grub-pc-bin and grub-common packages (apt-get
# download, dpkg-deb -x: nothing is installed); grub-mkimage from them runs
# on the host (it needs liblzma and libdevmapper). The image is rebuilt when
# this script, the GRUB version or build.sh's output changes (disk.stamp).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=build.sh
. "$here/build.sh"

disk_args="console=ttyS0 quiet memcheck_mib=16 no_timer_check root=/dev/vda1"
cd_args="console=ttyS0 quiet memcheck_mib=16 no_timer_check"
disk_mib=64
part_start=2048 # sectors

# grubversion prints the candidate version of grub-pc-bin, asking apt only
# when its package lists changed.
grubversion() {
	local fp v
	fp=$(listsfp)
	if [ -s "$cache/grub-$fp" ]; then
		cat "$cache/grub-$fp"
		return
	fi
	v=$(apt-cache show --no-all-versions grub-pc-bin 2>/dev/null | awk '/^Version:/ { print $2; exit }')
	[ -n "$v" ] || die "apt knows no grub-pc-bin package (apt-get update?)"
	rm -f "$cache"/grub-*
	echo "$v" >"$cache/grub-$fp"
	echo "$v"
}

# le32 N prints N as 4 little-endian bytes.
le32() {
	printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"
}

# mkdisk GUESTDIR GRUBVERSION OUT
mkdisk() {
	local g=$1 gv=$2 out=$3 w sectors
	w="$out.work.$$"
	rm -rf "$w"
	mkdir -p "$w/fs/boot/grub"
	trap "rm -rf '$w'" EXIT
	dpkg-deb -x "$(fetch grub-pc-bin "$gv")" "$w/grub"
	dpkg-deb -x "$(fetch grub-common "$gv")" "$w/grub"
	local mkimage=$w/grub/usr/bin/grub-mkimage mods=$w/grub/usr/lib/grub/i386-pc
	[ -x "$mkimage" ] && [ -s "$mods/boot.img" ] || die "grub-common/grub-pc-bin $gv have no grub-mkimage or i386-pc/boot.img"
	if ldd "$mkimage" | grep -q 'not found'; then
		die "grub-mkimage cannot run: $(ldd "$mkimage" | grep 'not found' | tr -s ' \n' ' ')(apt-get install liblzma5 libdevmapper1.02.1)"
	fi

	cp "$g/vmlinuz" "$w/fs/boot/vmlinuz"
	cp "$g/initrd" "$w/fs/boot/initrd.img"
	cat >"$w/fs/boot/grub/grub.cfg" <<EOF
# The test guest (test/guest/disk.sh).
set default=0
set timeout=0
menuentry 'testguest' {
	linux /boot/vmlinuz $disk_args
	initrd /boot/initrd.img
}
EOF
	sectors=$((disk_mib * 2048 - part_start))
	truncate -s $((sectors * 512)) "$w/part.img"
	mkfs.ext4 -q -F -L testguest -d "$w/fs" "$w/part.img" >&2 || die "mkfs.ext4 -d failed"

	"$mkimage" -O i386-pc -d "$mods" -o "$w/core.img" -p '(hd0,msdos1)/boot/grub' \
		biosdisk part_msdos ext2 normal linux configfile echo test || die "grub-mkimage failed"
	[ "$(stat -c %s "$w/core.img")" -le $(((part_start - 1) * 512)) ] || die "core.img does not fit before sector $part_start"

	truncate -s $((disk_mib << 20)) "$w/disk.img"
	dd if="$mods/boot.img" of="$w/disk.img" bs=440 count=1 conv=notrunc status=none
	# The partition table: one entry, bootable, CHS fields saying "use LBA".
	{
		printf '\x80\xfe\xff\xff\x83\xfe\xff\xff'
		le32 $part_start
		le32 $sectors
	} | dd of="$w/disk.img" bs=1 seek=446 conv=notrunc status=none
	printf '\x55\xaa' | dd of="$w/disk.img" bs=1 seek=510 conv=notrunc status=none
	dd if="$w/core.img" of="$w/disk.img" bs=512 seek=1 conv=notrunc status=none
	dd if="$w/part.img" of="$w/disk.img" bs=1M seek=$((part_start / 2048)) conv=notrunc,sparse status=none
	mv "$w/disk.img" "$out"
	mkcd "$g" "$w" "$mkimage" "$mods" "${out%/*}/cd.iso"
	rm -rf "$w"
	trap - EXIT
}

# mkcd GUESTDIR WORKDIR MKIMAGE MODS OUT builds cd.iso: an ISO 9660 image
# (xorriso) that SeaBIOS boots through El Torito, no emulation, into GRUB
# (i386-pc-eltorito), whose grub.cfg boots the same kernel and initrd
# without a disk (builder = 'hvm' with boot = 'd' and an hdc:cdrom entry).
mkcd() {
	local g=$1 w=$2 mkimage=$3 mods=$4 out=$5
	command -v xorriso >/dev/null || die "xorriso is missing (apt-get install xorriso)"
	mkdir -p "$w/cd/boot/grub"
	cp "$g/vmlinuz" "$w/cd/boot/vmlinuz"
	cp "$g/initrd" "$w/cd/boot/initrd.img"
	printf '%s\n' "# The test guest's CD-ROM (test/guest/disk.sh)." "set default=0" "set timeout=0" \
		"menuentry 'testguest-cd' {" "	linux /boot/vmlinuz $cd_args" "	initrd /boot/initrd.img" "}" >"$w/cd/boot/grub/grub.cfg"
	"$mkimage" -O i386-pc-eltorito -d "$mods" -o "$w/cd/boot/grub/eltorito.img" -p '(cd)/boot/grub' \
		biosdisk iso9660 normal linux configfile echo test || die "grub-mkimage (eltorito) failed"
	xorriso -as mkisofs -quiet -R -V TESTGUEST -b boot/grub/eltorito.img -no-emul-boot -boot-load-size 4 \
		-boot-info-table -o "$out.tmp" "$w/cd" >&2 || die "xorriso failed"
	mv "$out.tmp" "$out"
}

diskmain() {
	local dir gv stamp
	dir=$(main)
	gv=$(grubversion)
	stamp=$( (echo "grub $gv $disk_args $cd_args $disk_mib $part_start"; cat "$here/disk.sh" "$dir/info") | sha256sum | cut -c1-16)
	if [ ! -s "$dir/disk.img" ] || [ ! -s "$dir/cd.iso" ] || [ "$(cat "$dir/disk.stamp" 2>/dev/null)" != "$stamp" ]; then
		log "building $dir/disk.img (GRUB $gv)"
		local t0=$SECONDS
		mkdisk "$dir" "$gv" "$dir/disk.img.tmp.$$"
		mv "$dir/disk.img.tmp.$$" "$dir/disk.img"
		echo "$stamp" >"$dir/disk.stamp"
		log "built disk.img in $((SECONDS - t0)) s"
	fi
	echo "$dir/disk.img"
}

diskmain "$@"
