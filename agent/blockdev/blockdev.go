package blockdev

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInUse is wrapped by Check's error when the host uses the device.
var ErrInUse = errors.New("in use by this host")

// Host is where Check reads the host's use of its devices; the zero value
// is the real host.
type Host struct {
	MountInfo string // default /proc/self/mountinfo
	Swaps     string // default /proc/swaps
	SysBlock  string // default /sys/dev/block
}

func (h Host) mountInfo() string { return or(h.MountInfo, "/proc/self/mountinfo") }
func (h Host) swaps() string     { return or(h.Swaps, "/proc/swaps") }
func (h Host) sysBlock() string  { return or(h.SysBlock, "/sys/dev/block") }

func or(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Check returns nil when the device at path (as the vm.cfg names it, a
// symlink such as /dev/disk/by-id/... allowed) matches one of patterns
// (filepath.Match; [agent] block_devices, which config validates) and is
// a block device free on this host. An error wrapping
// fs.ErrNotExist says it is missing; one wrapping ErrInUse that the host
// uses it, and how.
func (h Host) Check(path string, patterns []string) error {
	if !matches(path, patterns) {
		return fmt.Errorf("%s is not a device [agent] block_devices allows (%s); add a pattern for it there if the guest may have it", path, strings.Join(patterns, " "))
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s does not exist on this host: %w", path, fs.ErrNotExist)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return fmt.Errorf("%s is not a block device (a phy: disk is a block device; an image file is file:, tap:aio: or tap:qcow2:)", path)
	}
	dev := devNum{unix.Major(st.Rdev), unix.Minor(st.Rdev)}
	if err := h.free(path, dev); err != nil {
		return err
	}
	return claimed(path)
}

// claimed asks the kernel: a block device opened with O_EXCL fails with
// EBUSY while anything holds it exclusively — a mounted file system in
// any mount namespace, a btrfs or ZFS member (which mountinfo does not
// name by its device), swap, device-mapper, md, LVM, or a whole disk one
// of whose partitions is held. free says how a device is used where it
// can tell; this is the kernel's word for the rest. The descriptor is
// closed at once and no byte is read.
func claimed(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("%s is held by this host's kernel (mounted, perhaps in another mount namespace, or a member of a btrfs, ZFS, LVM, md or device-mapper set, or swap): %w", path, ErrInUse)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	unix.Close(fd)
	return nil
}

// matches reports whether path, or the device node it resolves to,
// matches one of patterns.
func matches(path string, patterns []string) bool {
	cands := []string{filepath.Clean(path)}
	if r, err := filepath.EvalSymlinks(path); err == nil && r != cands[0] {
		cands = append(cands, r)
	}
	for _, p := range patterns {
		for _, c := range cands {
			if ok, _ := filepath.Match(p, c); ok {
				return true
			}
		}
	}
	return false
}

type devNum struct{ major, minor uint32 }

func (d devNum) String() string { return fmt.Sprintf("%d:%d", d.major, d.minor) }

// free checks that the host does not use dev (path as named) or, when it
// is a whole disk, any of its partitions.
func (h Host) free(path string, dev devNum) error {
	devs := append([]devNum{dev}, h.partitions(dev)...)
	mounts, err := h.mounted()
	if err != nil {
		return err
	}
	swaps, err := h.swapDevices()
	if err != nil {
		return err
	}
	for _, d := range devs {
		what := path
		if d != dev {
			what = fmt.Sprintf("%s (its partition %s)", path, h.name(d))
		}
		if mp, ok := mounts[d]; ok {
			return fmt.Errorf("%s is mounted on %s: %w", what, mp, ErrInUse)
		}
		if swaps[d] {
			return fmt.Errorf("%s is a swap device: %w", what, ErrInUse)
		}
		if hs := h.holders(d); len(hs) > 0 {
			return fmt.Errorf("%s is held by %s (device-mapper, LVM or md): %w", what, strings.Join(hs, ", "), ErrInUse)
		}
	}
	return nil
}

// mounted maps the devices of the mounted file systems to a mount point.
func (h Host) mounted() (map[devNum]string, error) {
	f, err := os.Open(h.mountInfo())
	if err != nil {
		return nil, fmt.Errorf("read the host's mounts: %w", err)
	}
	defer f.Close()
	out := map[devNum]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		var d devNum
		if _, err := fmt.Sscanf(fs[2], "%d:%d", &d.major, &d.minor); err != nil {
			continue
		}
		if _, seen := out[d]; !seen {
			out[d] = fs[4]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the host's mounts: %w", err)
	}
	return out, nil
}

// swapDevices are the block devices in use as swap.
func (h Host) swapDevices() (map[devNum]bool, error) {
	b, err := os.ReadFile(h.swaps())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the host's swap devices: %w", err)
	}
	out := map[devNum]bool{}
	for i, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if i == 0 || len(fs) < 2 || fs[1] != "partition" {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(unescape(fs[0]), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			out[devNum{unix.Major(st.Rdev), unix.Minor(st.Rdev)}] = true
		}
	}
	return out, nil
}

// unescape undoes the octal escapes (\040 for a space) of /proc/swaps.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// sysDir is dev's directory in sysfs.
func (h Host) sysDir(d devNum) string { return filepath.Join(h.sysBlock(), d.String()) }

// name is dev's kernel name (sdb1), or its numbers.
func (h Host) name(d devNum) string {
	if r, err := filepath.EvalSymlinks(h.sysDir(d)); err == nil {
		return "/dev/" + filepath.Base(r)
	}
	return d.String()
}

// holders are the kernel names of what holds dev (dm-0, md0).
func (h Host) holders(d devNum) []string {
	es, err := os.ReadDir(filepath.Join(h.sysDir(d), "holders"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// partitions are the partitions of dev when it is a whole disk.
func (h Host) partitions(d devNum) []devNum {
	dir := h.sysDir(d)
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		return nil // a partition itself
	}
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []devNum
	for _, e := range es {
		sub := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(sub, "partition")); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sub, "dev"))
		if err != nil {
			continue
		}
		var p devNum
		if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &p.major, &p.minor); err == nil {
			out = append(out, p)
		}
	}
	return out
}
