package vmcfg

import (
	"fmt"
	"strings"
)

// Disk is one entry of the disk list, in xm's form
//
//	uname,device,mode[,backend[,protocol]]
//
// for example 'phy:/dev/sdb1,xvda,w', 'file:/OVS/running_pool/x/System.img,xvda,w',
// 'tap:aio:/OVS/running_pool/x/System.img,xvda,w', 'phy:/dev/loop0,hdc:cdrom,r'
// or ',hdc:cdrom,r' (an empty CD-ROM drive).
type Disk struct {
	// Raw is the entry as written in the file. It is informational:
	// String and Marshal render the fields below.
	Raw string
	// Type is the backend type before the path: "phy", "file", "tap:aio",
	// "tap:qcow", "tap2:tapdisk:aio", "iscsi", ... Empty only for an empty
	// CD-ROM drive.
	Type string
	// Path is the device or file, as written: relative paths are relative
	// to the domain's directory and "phy:sdb" means /dev/sdb, as in xend;
	// resolving them is the caller's business.
	Path string
	// Device is the virtual device name the guest sees (xvda, hda, sdb,
	// or a device number), without the "ioemu:" prefix or ":cdrom" suffix.
	Device string
	// CDROM is set by a ":cdrom" suffix on the device.
	CDROM bool
	// IOEmu is set by an "ioemu:" prefix on the device (HVM emulated disk).
	IOEmu bool
	// Mode is "r" (read-only), "w" (read-write) or "w!" (read-write even
	// if another domain has the same disk writable: shared disks).
	Mode string
	// Backend is the optional backend driver domain (4th field).
	Backend string
	// Protocol is the optional ring protocol (5th field).
	Protocol string
}

// Disk modes.
const (
	ModeRead        = "r"
	ModeWrite       = "w"
	ModeWriteShared = "w!"
)

// Sub-types that may follow "tap:" or "tap2:" in a disk uname.
var tapSubtypes = map[string]bool{
	"tapdisk": true, "aio": true, "sync": true, "qcow": true, "qcow2": true,
	"vmdk": true, "ram": true, "vhd": true, "remus": true,
}

// ParseDisk reads one disk entry. Blanks around the fields are ignored.
func ParseDisk(spec string) (Disk, error) {
	d := Disk{Raw: spec}
	f := strings.Split(spec, ",")
	if len(f) < 3 || len(f) > 5 {
		return d, fmt.Errorf("disk %s: want 3 to 5 comma-separated fields (uname,device,mode[,backend[,protocol]]), got %d", quote(spec), len(f))
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	uname, dev := f[0], f[1]
	if uname != "" {
		parts := strings.Split(uname, ":")
		if len(parts) < 2 {
			return d, fmt.Errorf("disk %s: %s has no type prefix; write phy:%s or file:%s", quote(spec), quote(uname), uname, uname)
		}
		n := 1
		if parts[0] == "tap" || parts[0] == "tap2" {
			for n < len(parts)-1 && tapSubtypes[parts[n]] {
				n++
			}
		}
		d.Type = strings.Join(parts[:n], ":")
		d.Path = strings.Join(parts[n:], ":")
	}
	if strings.HasPrefix(dev, "ioemu:") {
		d.IOEmu = true
		dev = dev[len("ioemu:"):]
	}
	switch {
	case strings.HasSuffix(dev, ":cdrom"):
		d.CDROM = true
		dev = strings.TrimSuffix(dev, ":cdrom")
	case strings.HasSuffix(dev, ":disk"):
		dev = strings.TrimSuffix(dev, ":disk")
	}
	d.Device = dev
	d.Mode = f[2]
	if len(f) > 3 {
		d.Backend = f[3]
	}
	if len(f) > 4 {
		d.Protocol = f[4]
	}
	if err := d.check(); err != nil {
		return d, fmt.Errorf("disk %s: %w", quote(spec), err)
	}
	return d, nil
}

// check validates the fields, so that String renders an entry that
// ParseDisk reads back to the same fields.
func (d Disk) check() error {
	if d.Type == "" {
		if d.Path != "" {
			return fmt.Errorf("path %s has no type", quote(d.Path))
		}
		if !d.CDROM {
			return fmt.Errorf("no uname (type:path); only a CD-ROM drive (device:cdrom) may be empty")
		}
	} else {
		segs := strings.Split(d.Type, ":")
		for i, s := range segs {
			if !isWord(s) {
				return fmt.Errorf("type %s is not a word such as phy, file or tap:aio", quote(d.Type))
			}
			if i > 0 && !tapSubtypes[s] {
				return fmt.Errorf("type %s: %s is not a tap sub-type", quote(d.Type), quote(s))
			}
		}
		if (segs[0] == "tap" || segs[0] == "tap2") && len(segs) == 1 {
			return fmt.Errorf("type %s needs a sub-type, e.g. tap:aio", quote(d.Type))
		}
		if len(segs) > 1 && segs[0] != "tap" && segs[0] != "tap2" {
			return fmt.Errorf("type %s: only tap and tap2 take sub-types", quote(d.Type))
		}
		if d.Path == "" && !d.CDROM {
			return fmt.Errorf("%s disk has no path", d.Type)
		}
		if segs[0] == "tap" || segs[0] == "tap2" {
			// The path must not start with something that reads as one
			// more sub-type.
			if i := strings.IndexByte(d.Path, ':'); i >= 0 && tapSubtypes[d.Path[:i]] {
				return fmt.Errorf("path %s starts with a tap sub-type", quote(d.Path))
			}
		}
	}
	if err := specField("path", d.Path); err != nil {
		return err
	}
	if d.Device == "" {
		return fmt.Errorf("no virtual device name (such as xvda or hda)")
	}
	if len(d.Device) > 32 || !isAlnumString(d.Device) {
		return fmt.Errorf("virtual device %s must be letters and digits (such as xvda, hdc or 51712)", quote(d.Device))
	}
	switch d.Mode {
	case ModeRead, ModeWrite, ModeWriteShared:
	case "":
		return fmt.Errorf("no mode; use r, w or w!")
	default:
		return fmt.Errorf("mode %s is not r, w or w!", quote(d.Mode))
	}
	if err := specField("backend", d.Backend); err != nil {
		return err
	}
	if err := specField("protocol", d.Protocol); err != nil {
		return err
	}
	return nil
}

// specField checks a field of a comma-separated spec: no commas, no
// control characters, no blanks around it (which parsing would drop).
func specField(name, s string) error {
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s %s has blanks around it", name, quote(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == ',' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s %s contains a comma or a control character", name, quote(s))
		}
	}
	return nil
}

// String renders the entry in xm's form.
func (d Disk) String() string {
	var b strings.Builder
	if d.Type != "" {
		b.WriteString(d.Type)
		b.WriteByte(':')
		b.WriteString(d.Path)
	}
	b.WriteByte(',')
	if d.IOEmu {
		b.WriteString("ioemu:")
	}
	b.WriteString(d.Device)
	if d.CDROM {
		b.WriteString(":cdrom")
	}
	b.WriteByte(',')
	b.WriteString(d.Mode)
	if d.Backend != "" || d.Protocol != "" {
		b.WriteByte(',')
		b.WriteString(d.Backend)
	}
	if d.Protocol != "" {
		b.WriteByte(',')
		b.WriteString(d.Protocol)
	}
	return b.String()
}

// Equal reports whether d and o describe the same disk (Raw is ignored).
func (d Disk) Equal(o Disk) bool {
	d.Raw, o.Raw = "", ""
	return d == o
}

// isWord reports whether s is non-empty lower-case letters and digits.
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !isDigit(c) {
			return false
		}
	}
	return true
}

func isAlnumString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// IsDevice says whether the disk is one of the host's block devices: the
// type is exactly phy (every part of the project reads phy: this way, so
// that a type that merely starts with it is not a device to one and a
// file to another).
func (d Disk) IsDevice() bool { return d.Type == "phy" }

// DevicePath is where a phy: disk is on the host: "phy:sdb" means
// /dev/sdb, as in xend.
func (d Disk) DevicePath() string {
	if strings.HasPrefix(d.Path, "/") {
		return d.Path
	}
	return "/dev/" + d.Path
}

// IsImage says whether the disk's type names an image file: file:, aio:,
// tap:... and tap2:... (tap:aio:, tap:sync:, tap:qcow2:, ...).
func (d Disk) IsImage() bool {
	switch first, _, _ := strings.Cut(d.Type, ":"); first {
	case "file", "aio", "tap", "tap2":
		return true
	}
	return false
}

// DeclaredFormat is the image format the disk's type declares, in QEMU's
// names: "qcow2" for tap:qcow2 (also tap:tapdisk:qcow2 and tap2:...),
// "qcow" for tap:qcow (blktap's qcow is QEMU's version 1 format, as libxl
// reads it), "vmdk" for tap:vmdk, "vpc" for tap:vhd. For every other type
// (file:, phy:, tap:aio:, tap:sync:, an empty CD-ROM) it is "": the
// engine detects the format.
func (d Disk) DeclaredFormat() string {
	segs := strings.Split(d.Type, ":")
	if segs[0] != "tap" && segs[0] != "tap2" {
		return ""
	}
	switch segs[len(segs)-1] {
	case "qcow2":
		return "qcow2"
	case "qcow":
		return "qcow"
	case "vmdk":
		return "vmdk"
	case "vhd":
		return "vpc"
	}
	return ""
}
