// Package diskimage says what a vm.cfg disk is and reads it without trusting
// it.
//
// Inspect reads only the header of an image file or block device and
// returns its Format (raw or qcow2), its guest-visible size and what of it
// matters for safety. The caller passes that Format to QEMU explicitly
// (format=raw or format=qcow2), so QEMU never probes a file a guest could
// have written. The rules:
//
//   - qcow2 (magic QFI\xfb, version 2 or 3) is checked field by field
//     (cluster_bits 9..21, a virtual size up to MaxVirtualSize, an L1 table
//     that covers it and fits QEMU's limit, the header extensions inside the
//     first cluster). Encrypted images (AES or LUKS), images marked corrupt,
//     images with an external data file and unknown incompatible features
//     are refused with the reason.
//   - A qcow2 that names a backing file is refused unless the caller sets
//     Options.AllowBacking: a raw disk the guest can write may start with a
//     qcow2 header naming /etc/shadow as its backing file, and a host that
//     probes would open that file for the guest. With AllowBacking the chain
//     is followed (at most MaxBackingDepth links); each link must name its
//     format in the header (qemu-img create -F), the named format must be
//     what the link really is, and each link obeys the same rules.
//   - Formats QEMU knows but the engine does not run (vmdk, vhd/vpc, vhdx,
//     vdi, qed, luks, qcow version 1, parallels, bochs, cloop) are detected
//     by their magic and refused with an error naming the format and the
//     qemu-img convert command that makes a raw or qcow2 image of it.
//   - Everything else is raw. A fixed-size VHD is raw data with a footer and
//     is reported as raw.
//
// InspectFor applies the vm.cfg prefix: tap:qcow2: and tap:qcow: declare
// qcow2 and refuse a file that is not one; file:, phy: and tap:aio: detect.
// Block devices (phy:) are sized with the BLKGETSIZE64 ioctl.
//
// Open returns a Reader, an io.ReaderAt over the bytes the guest sees: the
// file itself for raw, and for qcow2 the L1/L2 mapping, with unallocated
// clusters read from the backing image (when allowed) or as zeros, zero
// clusters as zeros, and compressed clusters (deflate, or zstd when the
// header says so) decompressed. Tables are bounded (the L1 table by QEMU's
// 32 MiB limit, a small cache of L2 tables); extended L2 entries are
// refused.
//
// It must not touch anything else: it writes nothing, starts no process,
// knows nothing of domains, engines or QEMU's command line, and imports
// nothing of the project.
package diskimage
