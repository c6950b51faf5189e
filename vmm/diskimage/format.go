package diskimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Format is an image format the engine runs, as QEMU spells it.
type Format string

// The formats the engine runs.
const (
	FormatRaw   Format = "raw"
	FormatQCOW2 Format = "qcow2"
)

// Limits of what Inspect accepts.
const (
	// MaxVirtualSize is the largest guest-visible size accepted (64 TiB).
	MaxVirtualSize = 64 << 40
	// MaxBackingDepth is the longest backing chain followed.
	MaxBackingDepth = 8
)

// Info is what the header of an image says.
type Info struct {
	Path        string
	Format      Format
	VirtualSize int64 // bytes the guest sees
	FileSize    int64 // bytes of the file or device
	BlockDevice bool

	// qcow2 only.
	Version       int
	ClusterSize   int64
	BackingFile   string // as written in the header
	BackingFormat Format // the header's backing format extension
	Backing       *Info  // the backing image, inspected (AllowBacking only)
	Encrypted     bool
	Compression   string // "zlib" or "zstd": how compressed clusters are
	Dirty         bool   // refcounts not flushed (QEMU repairs on open)
	ExtendedL2    bool
}

// Options change what Inspect and Open accept.
type Options struct {
	// Declared is the format the configuration states: "" detects,
	// FormatQCOW2 refuses anything that is not qcow2, FormatRaw takes the
	// bytes as they are without looking at them.
	Declared Format
	// AllowBacking accepts a qcow2 backing chain (see the package doc).
	AllowBacking bool
}

// Error is a refused image: the path and why.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("disk image %s: %s", e.Path, e.Reason) }

func refuse(path, format string, args ...any) error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, args...)}
}

// Inspect detects the format of path and checks its header, refusing a
// backing file.
func Inspect(path string) (Info, error) { return InspectWith(path, Options{}) }

// InspectFor inspects path as the vm.cfg disk prefix says: "tap:qcow2" and
// "tap:qcow" (with or without the colon) declare qcow2; "file", "phy",
// "tap:aio" and "" detect.
func InspectFor(path, prefix string) (Info, error) {
	declared, err := DeclaredFormat(prefix)
	if err != nil {
		return Info{}, err
	}
	return InspectWith(path, Options{Declared: declared})
}

// DeclaredFormat maps a vm.cfg disk prefix to the format it declares ("":
// detect).
func DeclaredFormat(prefix string) (Format, error) {
	switch strings.TrimSuffix(strings.ToLower(prefix), ":") {
	case "tap:qcow2", "tap:qcow", "tap2:qcow2", "qcow2":
		return FormatQCOW2, nil
	case "", "file", "phy", "tap:aio", "tap2:aio", "aio":
		return "", nil
	case "raw":
		return FormatRaw, nil
	}
	return "", fmt.Errorf("disk prefix %q: not one of file:, phy:, tap:aio:, tap:qcow:, tap:qcow2:", prefix)
}

// InspectWith inspects path with the options given.
func InspectWith(path string, o Options) (Info, error) {
	return inspect(path, o, 0)
}

func inspect(path string, o Options, depth int) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, fmt.Errorf("disk image: %w", err)
	}
	defer f.Close()
	size, blk, err := fileSize(f)
	if err != nil {
		return Info{}, fmt.Errorf("disk image %s: %w", path, err)
	}
	info, err := inspectReader(path, f, size, o.Declared)
	if err != nil {
		return Info{}, err
	}
	info.BlockDevice = blk
	if info.BackingFile == "" {
		return info, nil
	}
	if !o.AllowBacking {
		return Info{}, refuse(path, "qcow2 image names the backing file %q, which is not allowed here (a guest-writable image could name any host file); use qemu-img convert -O qcow2 to make a standalone image", info.BackingFile)
	}
	if depth+1 >= MaxBackingDepth {
		return Info{}, refuse(path, "backing chain longer than %d images", MaxBackingDepth)
	}
	if info.BackingFormat == "" {
		return Info{}, refuse(path, "backing file %q without a backing format in the header; set it with qemu-img rebase -u -F raw|qcow2 -b %s", info.BackingFile, info.BackingFile)
	}
	bpath := BackingPath(path, info.BackingFile)
	b, err := inspect(bpath, Options{Declared: info.BackingFormat, AllowBacking: true}, depth+1)
	if err != nil {
		return Info{}, fmt.Errorf("disk image %s: backing file: %w", path, err)
	}
	info.Backing = &b
	return info, nil
}

// BackingPath resolves a backing file name as QEMU does: relative to the
// directory of the image naming it.
func BackingPath(image, backing string) string {
	if filepath.IsAbs(backing) {
		return backing
	}
	return filepath.Join(filepath.Dir(image), backing)
}

// fileSize is the size of a regular file or a block device.
func fileSize(f *os.File) (int64, bool, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	switch {
	case st.Mode().IsRegular():
		return st.Size(), false, nil
	case st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0:
		var n uint64
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
			return 0, true, fmt.Errorf("BLKGETSIZE64: %w", e)
		}
		return int64(n), true, nil
	}
	return 0, false, errors.New("neither a regular file nor a block device")
}

// inspectReader inspects the image held by r (size bytes).
func inspectReader(path string, r io.ReaderAt, size int64, declared Format) (Info, error) {
	info := Info{Path: path, FileSize: size}
	if declared == FormatRaw {
		info.Format, info.VirtualSize = FormatRaw, size
		return info, nil
	}
	head := make([]byte, 512)
	n, err := r.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return Info{}, fmt.Errorf("disk image %s: %w", path, err)
	}
	head = head[:n]
	if bytes.HasPrefix(head, qcowMagic) {
		if err := parseQCOW2(path, r, size, &info); err != nil {
			return Info{}, err
		}
		return info, nil
	}
	if name := foreignFormat(head); name != "" {
		return Info{}, refuse(path, "%s image: the engine runs raw and qcow2 only; convert it with qemu-img convert -O qcow2 %s NEW.qcow2 (or -O raw)", name, path)
	}
	if declared == FormatQCOW2 {
		return Info{}, refuse(path, "declared qcow2 (tap:qcow2:/tap:qcow:) but the file is not qcow2 (no QFI\\xfb magic); fix the disk entry (file: for a raw image) or convert it")
	}
	info.Format, info.VirtualSize = FormatRaw, size
	return info, nil
}

var qcowMagic = []byte("QFI\xfb")

// foreignFormat names the format whose magic starts head, or "".
func foreignFormat(head []byte) string {
	for _, m := range []struct {
		off   int
		magic string
		name  string
	}{
		{0, "KDMV", "vmdk"},
		{0, "COWD", "vmdk (ESX COW)"},
		{0, "# Disk DescriptorFile", "vmdk (descriptor)"},
		{0, "conectix", "vpc (vhd)"},
		{0, "vhdxfile", "vhdx"},
		{0, "QED\x00", "qed"},
		{0, "LUKS\xba\xbe", "luks"},
		{0, "WithoutFreeSpace", "parallels"},
		{0, "WithouFreSpacExt", "parallels"},
		{0, "Bochs Virtual HD Image", "bochs"},
		{0, "#!/bin/sh\n#V2.0 Format\n", "cloop"},
		{0x40, "\x7f\x10\xda\xbe", "vdi"},
	} {
		if len(head) >= m.off+len(m.magic) && string(head[m.off:m.off+len(m.magic)]) == m.magic {
			return m.name
		}
	}
	return ""
}

var be = binary.BigEndian
