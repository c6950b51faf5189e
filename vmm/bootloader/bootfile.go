package bootloader

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// file resolves an entry's kernel or initrd paths (several initrds are
// one File) and checks them against limit.
func (l *loader) file(cfgVol *volume, e *bootEntry, paths []string, limit int64, what string) (*File, error) {
	f := &File{}
	var names []string
	for _, p := range paths {
		v, inner, err := l.volumeOf(cfgVol, e, p)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", what, p, err)
		}
		if inner == "" || inner[0] != '/' {
			return nil, fmt.Errorf("%s %q: not an absolute path", what, p)
		}
		in, err := v.fs.resolve(inner)
		if err != nil {
			return nil, fmt.Errorf("%s %s on %s: %w", what, inner, v.part, err)
		}
		if in.typ() != modeRegular {
			return nil, fmt.Errorf("%s %s on %s is not a regular file", what, inner, v.part)
		}
		if int64(in.size) > limit-f.size || in.size > 1<<62 {
			return nil, fmt.Errorf("%s %s on %s is %d bytes, over the limit of %d MiB", what, inner, v.part, in.size, limit>>20)
		}
		d, err := v.fs.open(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s on %s: %w", what, inner, v.part, err)
		}
		dev := *v.fs.dev
		dev.budget = nil // bounded by limit instead
		f.parts = append(f.parts, filePart{data: d, dev: &dev})
		f.size += d.size
		names = append(names, inner+" on "+v.part.String())
	}
	f.path = strings.Join(names, " + ")
	return f, nil
}

// volumeOf finds the volume a path is on: a (device) prefix, else the
// entry's root device (GRUB legacy), else the config's own partition.
func (l *loader) volumeOf(cfgVol *volume, e *bootEntry, p string) (*volume, string, error) {
	dev := e.root
	if strings.HasPrefix(p, "(") {
		end := strings.IndexByte(p, ')')
		if end < 0 {
			return nil, "", fmt.Errorf("a device without its )")
		}
		dev, p = p[1:end], p[end+1:]
	}
	if dev == "" {
		return cfgVol, p, nil
	}
	scheme, number, err := parseDevice(dev, e.legacy)
	if err != nil {
		return nil, "", err
	}
	for _, v := range l.vols {
		if v.part.number == number && (scheme == "" || scheme == v.part.scheme) {
			return v, p, nil
		}
	}
	return nil, "", fmt.Errorf("device (%s) is not a readable ext partition of this disk (%s)", dev, l.looked())
}

// parseDevice reads a GRUB device: hd0 (the whole disk: number 0),
// hd0,N, hd0,msdosN, hd0,gptN; GRUB legacy counts N from 0, GRUB 2 from 1.
func parseDevice(dev string, legacy bool) (string, int, error) {
	disk, part, hasPart := strings.Cut(dev, ",")
	if disk != "hd0" {
		return "", 0, fmt.Errorf("device (%s): only the first disk, hd0, is read", dev)
	}
	if !hasPart {
		return "", 0, nil
	}
	scheme := ""
	for _, s := range []string{"msdos", "gpt"} {
		if strings.HasPrefix(part, s) {
			scheme, part = s, part[len(s):]
		}
	}
	n, err := strconv.Atoi(part)
	if err != nil || n < 0 || n > maxGPTEntries {
		return "", 0, fmt.Errorf("device (%s): partition %q is not a number (BSD and nested partitions are not read)", dev, part)
	}
	if legacy && scheme == "" {
		n++
	}
	if n == 0 {
		return "", 0, fmt.Errorf("device (%s): GRUB 2 counts partitions from 1", dev)
	}
	return scheme, n, nil
}

// otherFS names the filesystem or volume format at the start of dev, for
// an error that says what is there.
func otherFS(dev *device) string {
	b := make([]byte, 64<<10+128)
	if dev.size < int64(len(b)) {
		b = b[:dev.size]
	}
	if err := dev.readAt(b, 0); err != nil {
		return "nothing readable"
	}
	at := func(off int, magic string) bool {
		return off+len(magic) <= len(b) && bytes.Equal(b[off:off+len(magic)], []byte(magic))
	}
	switch {
	case at(0, "XFSB"):
		return "an XFS filesystem"
	case at(0x10040, "_BHRfS_M"):
		return "a btrfs filesystem"
	case at(0, "LUKS\xba\xbe"):
		return "a LUKS encrypted volume"
	case at(0x218, "LVM2 001") || at(0x18, "LVM2 001"):
		return "an LVM physical volume"
	case at(0x52, "FAT32") || at(0x36, "FAT1"):
		return "a FAT filesystem"
	case at(0xFF6, "SWAPSPACE2"):
		return "swap space"
	case at(0x8001, "CD001"):
		return "an ISO 9660 filesystem"
	case at(3, "NTFS    "):
		return "an NTFS filesystem"
	}
	return "no filesystem this reader knows"
}
