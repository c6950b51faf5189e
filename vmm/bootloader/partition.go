package bootloader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"
)

const (
	sectorSize     = 512
	maxGPTEntries  = 1024 // sgdisk writes 128
	maxGPTEntrySz  = 4096
	maxLogicalPart = 128
)

// partition is one filesystem candidate on the disk.
type partition struct {
	scheme   string // "msdos", "gpt", or "" for a whole-disk filesystem
	number   int    // as GRUB 2 counts: msdos1..4 primary, msdos5.. logical, gpt1..
	start    int64  // bytes
	size     int64  // bytes
	bootable bool   // MBR active flag, GPT legacy BIOS bootable attribute
	linux    bool   // MBR type 0x83, GPT Linux filesystem or XBOOTLDR type
	typ      string // the type as the table says it, for errors
}

func (p partition) String() string {
	if p.scheme == "" {
		return "the whole disk"
	}
	return fmt.Sprintf("partition %d (%s%d)", p.number, p.scheme, p.number)
}

// partitions reads the disk's partition table: a GPT (behind its
// protective MBR), an MBR, or none (then the disk is one whole-disk
// candidate). The order is the order in which to look for a boot config:
// the bootable partition first (else the first Linux one), then the others
// in table order.
func partitions(disk *device) ([]partition, error) {
	if disk.size < sectorSize {
		return nil, fmt.Errorf("the disk is %d bytes, smaller than one sector", disk.size)
	}
	mbr, err := disk.read(0, sectorSize)
	if err != nil {
		return nil, err
	}
	entries, ok := parseMBR(mbr)
	if !ok {
		return []partition{{start: 0, size: disk.size, typ: "whole disk"}}, nil
	}
	var parts []partition
	if isProtectiveMBR(entries) {
		parts, err = readGPT(disk)
	} else {
		parts, err = mbrPartitions(disk, entries)
	}
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		// An MBR signature but no partitions: a whole-disk filesystem
		// whose boot sector happens to end in 55 AA.
		return []partition{{start: 0, size: disk.size, typ: "whole disk"}}, nil
	}
	return bootOrder(parts), nil
}

func bootOrder(parts []partition) []partition {
	first := -1
	for i, p := range parts {
		if p.bootable {
			first = i
			break
		}
	}
	if first < 0 {
		for i, p := range parts {
			if p.linux {
				first = i
				break
			}
		}
	}
	if first <= 0 {
		return parts
	}
	out := []partition{parts[first]}
	out = append(out, parts[:first]...)
	return append(out, parts[first+1:]...)
}

type mbrEntry struct {
	status byte
	typ    byte
	lba    uint32
	count  uint32
}

// parseMBR reads the four primary entries; ok is false when the sector is
// not an MBR (no 55 AA, or a status byte other than 0x00/0x80).
func parseMBR(s []byte) ([4]mbrEntry, bool) {
	var e [4]mbrEntry
	if len(s) < sectorSize || s[510] != 0x55 || s[511] != 0xAA {
		return e, false
	}
	for i := range e {
		b := s[446+16*i:]
		e[i] = mbrEntry{status: b[0], typ: b[4], lba: binary.LittleEndian.Uint32(b[8:]), count: binary.LittleEndian.Uint32(b[12:])}
		if e[i].status != 0 && e[i].status != 0x80 {
			return e, false
		}
	}
	return e, true
}

func isProtectiveMBR(e [4]mbrEntry) bool {
	for _, x := range e {
		if x.typ == 0xEE {
			return true
		}
	}
	return false
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

// mbrPartitions turns the primary entries into partitions and follows the
// extended partition's chain of logical ones (msdos5 on).
func mbrPartitions(disk *device, e [4]mbrEntry) ([]partition, error) {
	var parts, logical []partition
	for i, x := range e {
		if x.typ == 0 || x.count == 0 {
			continue
		}
		if isExtended(x.typ) {
			if logical != nil {
				return nil, fmt.Errorf("the MBR has more than one extended partition")
			}
			l, err := logicalPartitions(disk, int64(x.lba), int64(x.count))
			if err != nil {
				return nil, err
			}
			logical = append([]partition{}, l...)
			continue
		}
		p, err := mbrPartition(disk, x, 0, i+1)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return append(parts, logical...), nil
}

func mbrPartition(disk *device, x mbrEntry, base int64, number int) (partition, error) {
	start := (base + int64(x.lba)) * sectorSize
	size := int64(x.count) * sectorSize
	if start+size > disk.size {
		return partition{}, fmt.Errorf("MBR partition %d (sectors %d-%d) goes past the end of the disk (%d sectors)",
			number, start/sectorSize, (start+size)/sectorSize-1, disk.size/sectorSize)
	}
	return partition{scheme: "msdos", number: number, start: start, size: size, bootable: x.status == 0x80,
		linux: x.typ == 0x83, typ: fmt.Sprintf("MBR type 0x%02x", x.typ)}, nil
}

// logicalPartitions follows the chain of extended boot records of the
// extended partition at sector ext (count sectors), at most
// maxLogicalPart links.
func logicalPartitions(disk *device, ext, count int64) ([]partition, error) {
	var parts []partition
	next := int64(0)
	for n := 0; ; n++ {
		if n == maxLogicalPart {
			return nil, fmt.Errorf("the MBR's extended partition has more than %d logical partitions (a loop?)", maxLogicalPart)
		}
		if next >= count {
			return nil, fmt.Errorf("extended boot record %d points outside the extended partition", n+1)
		}
		s, err := disk.read((ext+next)*sectorSize, sectorSize)
		if err != nil {
			return nil, fmt.Errorf("logical partition %d: %w", n+5, err)
		}
		e, ok := parseMBR(s)
		if !ok {
			return nil, fmt.Errorf("extended boot record %d at sector %d has no 55 AA signature", n+1, ext+next)
		}
		if e[0].typ != 0 && e[0].count != 0 {
			p, err := mbrPartition(disk, e[0], ext+next, 5+len(parts))
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		}
		if !isExtended(e[1].typ) || e[1].lba == 0 {
			return parts, nil
		}
		next = int64(e[1].lba)
	}
}

var (
	guidLinuxFS  = mustGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	guidXBootLdr = mustGUID("BC13C2FF-59E6-4262-A352-B275FD6F7172")
)

// readGPT reads the primary GPT header at LBA 1, or the backup at the
// disk's last sector when the primary's CRC or entries are bad.
func readGPT(disk *device) ([]partition, error) {
	parts, err := readGPTAt(disk, 1)
	if err == nil {
		return parts, nil
	}
	last := disk.size/sectorSize - 1
	parts, berr := readGPTAt(disk, last)
	if berr == nil {
		return parts, nil
	}
	return nil, fmt.Errorf("GPT: primary header: %v; backup header: %v", err, berr)
}

func readGPTAt(disk *device, lba int64) ([]partition, error) {
	h, err := disk.read(lba*sectorSize, sectorSize)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(h[:8], []byte("EFI PART")) {
		return nil, fmt.Errorf("no \"EFI PART\" signature at sector %d", lba)
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < 92 || hsize > sectorSize {
		return nil, fmt.Errorf("header size %d at sector %d is not in 92..512", hsize, lba)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	hc := append([]byte(nil), h[:hsize]...)
	clear(hc[16:20])
	if got := crc32.ChecksumIEEE(hc); got != want {
		return nil, fmt.Errorf("header CRC at sector %d is %08x, its field says %08x", lba, got, want)
	}
	entLBA := int64(binary.LittleEndian.Uint64(h[72:]))
	num := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if num > maxGPTEntries || esize < 128 || esize > maxGPTEntrySz || esize%8 != 0 {
		return nil, fmt.Errorf("%d entries of %d bytes: at most %d entries of 128..%d bytes are read", num, esize, maxGPTEntries, maxGPTEntrySz)
	}
	if entLBA < 0 || entLBA > disk.size/sectorSize {
		return nil, fmt.Errorf("partition entries at sector %d are outside the disk", entLBA)
	}
	tab, err := disk.read(entLBA*sectorSize, int(num*esize))
	if err != nil {
		return nil, fmt.Errorf("partition entries: %w", err)
	}
	if got, want := crc32.ChecksumIEEE(tab), binary.LittleEndian.Uint32(h[88:]); got != want {
		return nil, fmt.Errorf("partition entries' CRC is %08x, the header says %08x", got, want)
	}
	return gptEntries(disk, tab, int(esize))
}

func gptEntries(disk *device, tab []byte, esize int) ([]partition, error) {
	var parts []partition
	for i := 0; (i+1)*esize <= len(tab); i++ {
		e := tab[i*esize : (i+1)*esize]
		var typ [16]byte
		copy(typ[:], e[:16])
		if typ == ([16]byte{}) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if last < first || last >= uint64(disk.size/sectorSize) {
			return nil, fmt.Errorf("GPT partition %d (sectors %d-%d) is not inside the disk (%d sectors)", i+1, first, last, disk.size/sectorSize)
		}
		attr := binary.LittleEndian.Uint64(e[48:])
		parts = append(parts, partition{scheme: "gpt", number: i + 1, start: int64(first) * sectorSize,
			size: int64(last-first+1) * sectorSize, bootable: attr&(1<<2) != 0,
			linux: typ == guidLinuxFS || typ == guidXBootLdr, typ: "GPT type " + guidString(typ)})
	}
	sort.SliceStable(parts, func(a, b int) bool { return parts[a].number < parts[b].number })
	return parts, nil
}

// guidString formats a GUID stored in GPT's mixed-endian layout.
func guidString(g [16]byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

func mustGUID(s string) [16]byte {
	var g [16]byte
	var a uint32
	var b, c uint16
	var d [8]byte
	n, err := fmt.Sscanf(s, "%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		&a, &b, &c, &d[0], &d[1], &d[2], &d[3], &d[4], &d[5], &d[6], &d[7])
	if err != nil || n != 11 {
		panic("bad GUID " + s)
	}
	binary.LittleEndian.PutUint32(g[0:], a)
	binary.LittleEndian.PutUint16(g[4:], b)
	binary.LittleEndian.PutUint16(g[6:], c)
	copy(g[8:], d[:])
	return g
}
