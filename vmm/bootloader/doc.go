// Package bootloader does what vm.cfg's `bootloader = '/usr/bin/pygrub'`
// does in the Oracle VM guide: it reads the default entry of a guest's
// GRUB 2 grub.cfg or GRUB legacy menu.lst from the disk image and hands
// back that entry's kernel, initrd and arguments, so that the engine boots
// them directly, as pygrub does for Xen.
//
// The disk image belongs to the guest and is untrusted, so nothing from it
// is run, mounted or given to a host tool: Load reads it through an
// io.ReaderAt (a raw file, or vmm/diskimage's qcow2 reader) with a reader
// of its own, read-only and bounded everywhere (bytes read, config size,
// entries, directory size, extent depth, symlink hops, path steps). It
// reads an MBR (primary and logical partitions) or a GPT (header and entry
// CRCs checked, the backup header when the primary is bad) or a
// whole-disk filesystem, and ext2/ext3/ext4 (extents and indirect block
// maps, linear and htree directories read linearly, fast and slow
// symlinks, 32- and 64-bit group descriptors, meta_bg, the superblock
// checksum when metadata_csum is on). What it does not read it refuses by
// name: other filesystems (xfs, btrfs, vfat, LVM, LUKS...), compressed or
// journal-device ext filesystems, encrypted or inline-data files.
//
// It owns only that reading: it must not open files (its caller hands it
// the image), start processes, or know anything of domains, engines,
// vm.cfg or the agent beyond pygrub's bootloader_args (ParseArgs). It
// imports nothing of the project.
package bootloader
