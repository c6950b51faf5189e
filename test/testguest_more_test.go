package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/bootloader"
)

// More of the test guest's interface (test/guest/init): its disk, the
// balloon driver and the console commands, on one boot; and disk.sh's
// disk.img as vmm/bootloader reads it.

var testDiskOnce struct {
	sync.Once
	path string
	err  error
}

// testGuestDisk builds disk.img (guest/disk.sh), or finds it in its cache,
// and returns its path. Tests copy it before booting it: the guest writes
// to it.
func testGuestDisk(t testing.TB) string {
	testDiskOnce.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command("guest/disk.sh")
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			testDiskOnce.err = fmt.Errorf("guest/disk.sh: %v\n%s", err, stderr.Bytes())
			return
		}
		testDiskOnce.path = strings.TrimSpace(string(out))
	})
	if testDiskOnce.err != nil {
		t.Fatal(testDiskOnce.err)
	}
	return testDiskOnce.path
}

// TestTestGuestDiskImage reads disk.img as bootloader = 'pygrub' does: the
// default entry must be grub.cfg's, with build.sh's bzImage and initrd.
func TestTestGuestDiskImage(t *testing.T) {
	dir := testGuestDir(t)
	p := testGuestDisk(t)
	if filepath.Dir(p) != dir {
		t.Fatalf("disk.sh put %s outside build.sh's directory %s", p, dir)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootloader.Load(f, st.Size(), bootloader.Options{Entry: -1})
	if err != nil {
		t.Fatalf("vmm/bootloader cannot read %s: %v", p, err)
	}
	if b.Title != "testguest" || !strings.Contains(" "+b.Args+" ", " console=ttyS0 ") || !strings.Contains(b.Args, "memcheck_mib=16") {
		t.Fatalf("entry %q args %q, want disk.sh's testguest entry", b.Title, b.Args)
	}
	for _, c := range []struct {
		f    *bootloader.File
		want string
	}{{b.Kernel, "vmlinuz"}, {b.Initrd, "initrd"}} {
		if c.f == nil {
			t.Fatalf("no %s in the entry", c.want)
		}
		want, err := os.ReadFile(filepath.Join(dir, c.want))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := c.f.WriteTo(&got); err != nil {
			t.Fatalf("read %s: %v", c.f.Path(), err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s in disk.img (%d bytes) differs from build.sh's %s (%d bytes)", c.f.Path(), got.Len(), c.want, len(want))
		}
	}
	t.Logf("%s: %q %q from %s", p, b.Title, b.Args, b.Config)
}

// TestTestGuestConsoleDiskBalloon boots the test guest with an ext4 disk
// and a balloon: the disk is mounted and counted, a balloon target is
// reached, "echo" typed on the console answers, and "reboot" typed there
// unmounts the disk and resets the guest (QEMU under -no-reboot exits 0
// with SHUTDOWN reason guest-reset); the disk is clean afterwards.
func TestTestGuestConsoleDiskBalloon(t *testing.T) {
	dir := testGuestDir(t)
	e2fsck, err := exec.LookPath("e2fsck")
	if err != nil {
		t.Fatalf("e2fsck not installed (apt-get install e2fsprogs): %v", err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	g := bootTestGuest(t, dir, "memcheck_mib=0", "-drive", "file="+img+",format=raw,if=virtio",
		"-device", "virtio-balloon-pci")
	g.waitConsole(t, "TESTGUEST READY", 90*time.Second, func(l []string) bool {
		return countFrom(l, "TESTGUEST READY", "") >= 0
	})
	if countFrom(g.console(), "testguest: disk mounted dev=/dev/vda boots=1", "") < 0 {
		t.Fatalf("no disk line for the first boot of the disk")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.qc.Execute(ctx, "balloon", map[string]any{"value": 128 << 20}, nil); err != nil {
		t.Fatal(err)
	}
	var actual int64
	for i := 0; i < 300 && actual != 128<<20; i++ {
		var b struct {
			Actual int64 `json:"actual"`
		}
		if err := g.qc.Execute(ctx, "query-balloon", nil, &b); err != nil {
			t.Fatal(err)
		}
		if actual = b.Actual; actual != 128<<20 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if actual != 128<<20 {
		t.Fatalf("balloon at %d MiB, want the 128 MiB target", actual>>20)
	}

	g.typeLine(t, "echo hello  there")
	g.waitConsole(t, "the echo", 30*time.Second, func(l []string) bool {
		return countFrom(l, "TESTGUEST READY", "testguest: echo hello  there") == 1
	})
	g.typeLine(t, "reboot")
	ev := g.qmpWaitEvent(t, "SHUTDOWN", 30*time.Second)
	var data struct {
		Guest  bool   `json:"guest"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || !data.Guest || data.Reason != "guest-reset" {
		t.Fatalf("SHUTDOWN event %v, want a guest-initiated reset", ev)
	}
	if code := g.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("QEMU exit status %d, want 0", code)
	}
	if countFrom(g.console(), "testguest: console: rebooting", "testguest: unmounted /mnt") != 1 {
		t.Fatalf("the disk was not unmounted before the reboot")
	}
	if out, err := exec.Command(e2fsck, "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn after the reboot: %v\n%s", err, out)
	}
}
