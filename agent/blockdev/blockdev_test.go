package blockdev

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/config"
)

// loopDevice attaches a fresh sparse image of mib MiB to a loop device
// (with partition scanning) and detaches it at cleanup.
func loopDevice(t *testing.T, mib int) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, int64(mib)<<20); err != nil {
		t.Fatal(err)
	}
	out := run(t, "losetup", "--find", "--show", "--partscan", img).out()
	dev := strings.TrimSpace(out)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

type cmd struct {
	t    *testing.T
	args []string
}

func run(t *testing.T, args ...string) cmd { return cmd{t, args} }

func (c cmd) out() string {
	c.t.Helper()
	b, err := exec.Command(c.args[0], c.args[1:]...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s: %v\n%s", strings.Join(c.args, " "), err, b)
	}
	return string(b)
}

// mountExt4 makes an ext4 file system on dev and mounts it until cleanup.
func mountExt4(t *testing.T, dev string) string {
	t.Helper()
	run(t, "mkfs.ext4", "-q", "-F", dev).out()
	mp := t.TempDir()
	run(t, "mount", dev, mp).out()
	t.Cleanup(func() { exec.Command("umount", mp).Run() })
	return mp
}

func TestCheck(t *testing.T) {
	var h Host
	free := loopDevice(t, 32)
	if err := h.Check(free, config.DefaultBlockDevices()); err != nil {
		t.Fatalf("a free loop device: %v", err)
	}

	mounted := loopDevice(t, 32)
	mp := mountExt4(t, mounted)
	err := h.Check(mounted, config.DefaultBlockDevices())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "mounted on "+mp) {
		t.Fatalf("a mounted loop device: %v, want in use, mounted on %s", err, mp)
	}

	// A symlink to a free device counts as the device (/dev/disk/by-id).
	link := filepath.Join(t.TempDir(), "by-id-free")
	if err := os.Symlink(free, link); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(link, []string{"/dev/loop*"}); err != nil {
		t.Fatalf("a symlink to a free loop device, allowed by the node it resolves to: %v", err)
	}
	if err := h.Check(free, []string{"/dev/mapper/*"}); err == nil || !strings.Contains(err.Error(), "block_devices") {
		t.Fatalf("a device no pattern allows: %v, want the block_devices refusal", err)
	}

	if err := h.Check("/dev/loop-none-such", config.DefaultBlockDevices()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing device: %v, want not exist", err)
	}
	if err := h.Check("/dev/null", []string{"/dev/*"}); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Fatalf("a character device: %v, want not a block device", err)
	}
}

// TestClaimedInAnotherNamespace: a file system mounted in a mount
// namespace of its own does not show in this process's mountinfo; the
// kernel still holds the device (O_EXCL), and Check says so.
func TestClaimedInAnotherNamespace(t *testing.T) {
	dev := loopDevice(t, 32)
	run(t, "mkfs.ext4", "-q", "-F", dev).out()
	mp := t.TempDir()
	ready := filepath.Join(t.TempDir(), "ready")
	sh := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		"mount "+dev+" "+mp+" && touch "+ready+" && exec sleep 60")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.Process.Kill(); sh.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i == 3000 {
			t.Fatal("the namespace's mount did not happen within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), " "+mp+" ") {
		t.Fatalf("the mount shows in this namespace too; the test needs it private")
	}
	err := Host{}.Check(dev, config.DefaultBlockDevices())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "held by this host's kernel") {
		t.Fatalf("a device mounted in another namespace: %v, want held by the kernel", err)
	}
}

// fakeSys writes a /sys/dev/block for dev (a real device's numbers) with
// the given partitions (name -> major:minor) and holders. The kernels of
// these machines have neither device-mapper nor partition scanning on loop
// devices (losetup --partscan makes no loopNpM; dmsetup finds no driver),
// so the tree sysfs would show is written out instead.
func fakeSys(t *testing.T, dev string, parts map[string]string, holders ...string) (sys string, num string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	num = devNum{unix.Major(st.Rdev), unix.Minor(st.Rdev)}.String()
	sys = t.TempDir()
	disk := filepath.Join(sys, "..", filepath.Base(sys)+"-devices", filepath.Base(dev))
	mk := func(dir string) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk(filepath.Join(disk, "holders"))
	for _, h := range holders {
		write(filepath.Join(disk, "holders", h), "")
	}
	if err := os.Symlink(disk, filepath.Join(sys, num)); err != nil {
		t.Fatal(err)
	}
	for name, pnum := range parts {
		pd := filepath.Join(disk, name)
		mk(filepath.Join(pd, "holders"))
		write(filepath.Join(pd, "partition"), "1\n")
		write(filepath.Join(pd, "dev"), pnum+"\n")
		if err := os.Symlink(pd, filepath.Join(sys, pnum)); err != nil {
			t.Fatal(err)
		}
	}
	return sys, num
}

// TestPartitions: a whole disk one of whose partitions is mounted is in
// use; a disk whose partitions are free is not.
func TestPartitions(t *testing.T) {
	dev := loopDevice(t, 16)
	sys, _ := fakeSys(t, dev, map[string]string{"loopXp1": "259:901", "loopXp2": "259:902"})
	mi := filepath.Join(t.TempDir(), "mountinfo")
	line := "99 1 259:901 / /srv/data rw,relatime - ext4 /dev/loopXp1 rw\n"
	if err := os.WriteFile(mi, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Host{SysBlock: sys, MountInfo: mi}.Check(dev, config.DefaultBlockDevices())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "partition /dev/loopXp1") || !strings.Contains(err.Error(), "/srv/data") {
		t.Fatalf("a disk with a mounted partition: %v, want in use naming /dev/loopXp1 on /srv/data", err)
	}
	if err := os.WriteFile(mi, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (Host{SysBlock: sys, MountInfo: mi}).Check(dev, config.DefaultBlockDevices()); err != nil {
		t.Fatalf("a disk whose partitions are free: %v", err)
	}
}

// TestHolders: a device that device-mapper, LVM or md holds is in use,
// and so is a disk one of whose partitions is held.
func TestHolders(t *testing.T) {
	dev := loopDevice(t, 16)
	sys, _ := fakeSys(t, dev, nil, "dm-3")
	err := Host{SysBlock: sys}.Check(dev, config.DefaultBlockDevices())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "held by dm-3") {
		t.Fatalf("a device under device-mapper: %v, want held by dm-3", err)
	}
	dev2 := loopDevice(t, 16)
	sys2, _ := fakeSys(t, dev2, map[string]string{"loopYp1": "259:911"})
	if err := os.WriteFile(filepath.Join(sys2, "259:911", "holders", "md0"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Host{SysBlock: sys2}.Check(dev2, config.DefaultBlockDevices())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "held by md0") {
		t.Fatalf("a disk whose partition md holds: %v, want held by md0", err)
	}
}

// TestSwap: a device the host swaps on is in use (read from a /proc/swaps
// written for the test: swapping on for real would touch the host).
func TestSwap(t *testing.T) {
	dev := loopDevice(t, 16)
	swaps := filepath.Join(t.TempDir(), "swaps")
	body := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" + dev + " partition\t1024\t0\t-2\n"
	if err := os.WriteFile(swaps, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Host{Swaps: swaps}.Check(dev, config.DefaultBlockDevices())
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "swap") {
		t.Fatalf("a swap device: %v, want in use as swap", err)
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/dev/with\040space`); got != "/dev/with space" {
		t.Fatalf("unescape = %q", got)
	}
	if got := unescape(`/dev/tail\04`); got != `/dev/tail\04` {
		t.Fatalf("a short escape = %q, want it kept", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
