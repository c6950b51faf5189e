// Package blockdev decides whether a block device that a vm.cfg names as a
// phy: disk may be given to a guest: it must match the operator's
// patterns ([agent] block_devices), be a block device, and be free on
// this host — not mounted, not swap, not held by device-mapper, md or LVM
// (holders in sysfs), and, for a whole disk, none of its partitions either.
// A guest given the disk the host runs from would corrupt the host; xend
// and the Oracle VM agent accept any phy: path, libvirt leaves it to the
// security driver. This is the host's protection against that, checked
// when a domain is registered and again when it starts.
//
// It owns the rule and reads only /proc/self/mountinfo, /proc/swaps and
// /sys/dev/block (never a device's content); last it opens the device
// with O_EXCL and closes it at once, the kernel's answer for what those
// files cannot show (a mount in another namespace, btrfs and ZFS members). It does not know about
// domains, repositories or the API; agent/domains calls Check.
package blockdev
