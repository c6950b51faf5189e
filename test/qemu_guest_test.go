package test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/internal/testguest"
)

// End-to-end tests of what an operating system's guest does with the
// agent: typing into its console (domain.console_input and an interactive
// ovm console on a terminal), its balloon (domain.set_memory), a reboot
// and a poweroff it does itself (on_reboot, on_poweroff), two guests
// talking over a bridge before and after one of them moved, and booting
// from its own disk (pygrub from raw and qcow2, builder = 'hvm').

// TestQEMUGuestConsoleMemoryPower: one guest; echo typed through the API
// and through `ovm console` on a pseudo-terminal comes back on its
// console; its balloon shrinks and grows it within maxmem; a reboot it
// does itself restarts it (on_reboot = 'restart'), so does a kernel panic
// reported through pvpanic (on_crash = 'restart'), and a poweroff it does
// itself stops it (on_poweroff = 'destroy').
func TestQEMUGuestConsoleMemoryPower(t *testing.T) {
	// Parallel: a TCG guest takes one core, and the test package runs
	// its sequential tests first; the parallel ones share the two cores.
	t.Parallel()
	timed(t)
	a := qemuAgent(t, "127.0.0.2", false)
	v := guestVM{Name: "gc", MemcheckMiB: 16, Lines: []string{"maxmem = 384", "on_reboot = 'restart'", "on_crash = 'restart'", "on_poweroff = 'destroy'"}}
	startGuest(t, a, v)
	a.waitConsoleLines(t, "gc", "the console reader", qemuBoot, func(l []string) bool { return countFrom(l, "", "testguest: console ready") > 0 })

	// Typed through the API.
	a.call(t, "domain.console_input", nil, "gc", "echo typed-by-the-api\n")
	a.waitConsoleLines(t, "gc", "the echo of the API's input", time.Minute, func(l []string) bool {
		return countFrom(l, "", "testguest: echo typed-by-the-api") > 0
	})
	// Typed on a terminal into ovm console, which Ctrl-] leaves.
	out := ovmConsoleTTY(t, a, "gc", "echo typed-on-a-tty\r", "testguest: echo typed-on-a-tty")
	if !strings.Contains(out, "Ctrl-] detaches") {
		t.Errorf("ovm console on a terminal did not say how to detach:\n%s", out)
	}

	// The balloon: down to 128 MiB, then up to maxmem.
	for _, mib := range []int{128, 384} {
		a.call(t, "domain.set_memory", nil, "gc", mib)
		a.waitBalloon(t, "gc", int64(mib)<<20)
	}
	if f := a.fault(t, "domain.set_memory", "gc", 512); f == nil || !strings.Contains(f.Message, "maxmem") {
		t.Errorf("a target over maxmem: %v", f)
	}
	a.waitMemcheck(t, "gc", 2)

	// A reboot by the guest itself: on_reboot = 'restart'.
	before := a.info(t, "gc").PID
	a.call(t, "domain.console_input", nil, "gc", "reboot\n")
	a.waitInfoWithin(t, "gc", "running again after the guest's reboot", 2*time.Minute, func(i qemuInfo) bool {
		return i.State == "running" && i.PID != before && i.PID != 0
	})
	// The new run has a console of its own.
	a.waitConsoleLines(t, "gc", "a second boot's console reader", qemuBoot, func(l []string) bool {
		return countFrom(l, "", "TESTGUEST READY") > 0 && countFrom(l, "", "testguest: console ready") > 0
	})
	if l := logLines(a.Log(), `"action":"restart"`); len(l) != 1 || !strings.Contains(l[0], `"reason":"rebooted"`) {
		t.Errorf("the agent's log of the guest's reboot: %q", l)
	}

	// A panic of the guest's kernel, reported through pvpanic: on_crash =
	// 'restart' starts it again.
	before = a.info(t, "gc").PID
	a.call(t, "domain.console_input", nil, "gc", "panic\n")
	a.waitInfoWithin(t, "gc", "running again after the guest's panic", 2*time.Minute, func(i qemuInfo) bool {
		return i.State == "running" && i.PID != before && i.PID != 0
	})
	if l := logLines(a.Log(), `"action":"restart"`); len(l) != 2 || !strings.Contains(l[1], "panicked") {
		t.Errorf("the agent's log of the guest's panic: %q", l)
	}
	a.waitConsoleLines(t, "gc", "a third boot's console reader", qemuBoot, func(l []string) bool {
		return countFrom(l, "", "testguest: console ready") > 0
	})

	// A poweroff by the guest itself: on_poweroff = 'destroy'.
	a.call(t, "domain.console_input", nil, "gc", "poweroff\n")
	in := a.waitInfoWithin(t, "gc", "stopped after the guest's poweroff", 2*time.Minute, func(i qemuInfo) bool { return i.State == "stopped" })
	if in.LastExit == nil || in.LastExit.Reason != "shutdown" {
		t.Errorf("last exit after the guest's poweroff: %+v", in.LastExit)
	}
}

// waitBalloon waits until domain.info's balloon_bytes is within 4 MiB of
// want.
func (a *Agent) waitBalloon(t *testing.T, name string, want int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var got int64
	for time.Now().Before(deadline) {
		var in struct {
			Balloon int64 `xmlrpc:"balloon_bytes"`
			Target  int   `xmlrpc:"memory_target"`
		}
		a.call(t, "domain.info", &in, name)
		got = in.Balloon
		if d := got - want; d < 4<<20 && d > -4<<20 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: balloon at %d MiB, want %d MiB", name, got>>20, want>>20)
}

// ovmConsoleTTY runs `ovm console NAME` on a new pseudo-terminal, types
// keys once it is connected, waits for want on the domain's console,
// detaches with Ctrl-] and returns what ovm printed.
func ovmConsoleTTY(t *testing.T, a *Agent, name, keys, want string) string {
	t.Helper()
	ptm, pts := openPTY(t)
	cmd := exec.Command(bin("ovm"), "--url=unix://"+a.Socket, "console", name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pts.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var mu sync.Mutex
	var out bytes.Buffer
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := ptm.Read(b)
			mu.Lock()
			out.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	printed := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	deadline := time.Now().Add(30 * time.Second) // a safety net
	for !strings.Contains(printed(), "Connected to the console") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("ovm console did not connect:\n%s", printed())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := ptm.Write([]byte(keys)); err != nil {
		t.Fatal(err)
	}
	a.waitConsoleLines(t, name, "the echo of the terminal's input", time.Minute, func(l []string) bool { return countFrom(l, "", want) > 0 })
	if _, err := ptm.Write([]byte{0x1d}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("ovm console after Ctrl-]: %v\n%s", err, printed())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("ovm console did not end on Ctrl-]:\n%s", printed())
	}
	ptm.Close()
	if in := a.info(t, name); in.State != "running" {
		t.Errorf("the domain is %s after detaching its console", in.State)
	}
	return printed()
}

// openPTY opens a pseudo-terminal pair (/dev/ptmx and its /dev/pts/N).
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("TIOCSPTLCK: %v", e)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close(); pts.Close() })
	return ptm, pts
}

// TestQEMUBridgeTraffic: two guests on one bridge ping each other, and
// go on after one of them moved live to another agent (on this host, the
// same bridge: the moved guest's tap is on it again and QEMU announces
// it).
func TestQEMUBridgeTraffic(t *testing.T) {
	timed(t)
	src, dst := qemuPair(t)
	br := testBridge(t)
	a := guestVM{Name: "na", MemcheckMiB: -1, Bridge: br, MAC: testMAC(t), IP: "10.0.0.2/24", Ping: "10.0.0.3"}
	b := guestVM{Name: "nb", MemcheckMiB: -1, Bridge: br, IP: "10.0.0.3/24", Ping: "10.0.0.2"}
	startGuest(t, src, a)
	startGuest(t, src, b)
	for _, n := range []string{"na", "nb"} {
		src.waitConsoleLines(t, n, "answered pings", 2*time.Minute, func(l []string) bool { return countFrom(l, "", "testguest: PING OK") >= 2 })
	}
	var st struct {
		Rx int64 `xmlrpc:"net_rx_bytes"`
		Tx int64 `xmlrpc:"net_tx_bytes"`
	}
	src.call(t, "domain.info", &st, "na")
	if st.Rx <= 0 || st.Tx <= 0 {
		t.Errorf("domain.info's network bytes of a pinging guest: %+v", st)
	}

	var id string
	src.call(t, "domain.migrate", &id, "nb", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if mig := waitQEMUMigration(t, src, id, nil); mig.Phase != "completed" {
		t.Fatalf("move of nb: %+v", mig)
	}
	dst.waitInfoWithin(t, "nb", "running on the target", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	seenA := countFrom(src.consoleLines(t, "na"), "", "testguest: PING OK")
	seenB := countFrom(dst.consoleLines(t, "nb"), "", "testguest: PING OK")
	src.waitConsoleLines(t, "na", "pings answered by the moved guest", 2*time.Minute, func(l []string) bool {
		return countFrom(l, "", "testguest: PING OK") >= seenA+3
	})
	dst.waitConsoleLines(t, "nb", "pings answered after the move", 2*time.Minute, func(l []string) bool {
		return countFrom(l, "", "testguest: PING OK") >= seenB+3
	})

	// And back: on one host the returning guest's taps must not clash
	// with those its source VMM still holds until the commit.
	var back string
	dst.call(t, "domain.migrate", &back, "nb", src.Reloc, migrateOpts(map[string]any{"live": true}))
	if mig := waitQEMUMigration(t, dst, back, nil); mig.Phase != "completed" {
		t.Fatalf("move of nb back: %+v", mig)
	}
	src.waitInfoWithin(t, "nb", "running back on the source", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	seenB = countFrom(src.consoleLines(t, "nb"), "", "testguest: PING OK")
	src.waitConsoleLines(t, "nb", "pings answered after the move back", 2*time.Minute, func(l []string) bool {
		return countFrom(l, "", "testguest: PING OK") >= seenB+3
	})
}

// guestDisk copies the test guest's bootable disk.img (test/guest/disk.sh)
// sparsely into the test's folder, raw or as qcow2.
func guestDisk(t *testing.T, format string) string {
	t.Helper()
	src := testguest.Disk(t)
	dst := filepath.Join(t.TempDir(), "System."+format)
	var cmd *exec.Cmd
	if format == "qcow2" {
		cmd = exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, dst)
	} else {
		cmd = exec.Command("cp", "--sparse=always", src, dst)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
	}
	return dst
}

// loopDevice attaches img to a free loop device until the test ends.
func loopDevice(t testing.TB, img string) string {
	t.Helper()
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

// TestQEMUDiskBoot boots the test guest from its own disk: pygrub reads
// grub.cfg from a raw image, from a qcow2 copy (tap:qcow2:) and from the
// raw image on a loop device (phy:, [agent] block_devices' default) and the
// agent boots that entry's kernel directly; builder = 'hvm' has SeaBIOS
// boot the disk's GRUB (each counts its boot on the disk), and a CD-ROM's;
// a disk given read-only stays as it was.
func TestQEMUDiskBoot(t *testing.T) {
	// Parallel: a TCG guest takes one core, and the test package runs
	// its sequential tests first; the parallel ones share the two cores.
	t.Parallel()
	timed(t)
	a := qemuAgent(t, "127.0.0.2", false)
	cases := []struct {
		name, format, disk string
		lines              []string
	}{
		{"pyraw", "raw", "file:%s,xvda,w", []string{"bootloader = '/usr/bin/pygrub'"}},
		{"pyqcow", "qcow2", "tap:qcow2:%s,xvda,w", []string{"bootloader = '/usr/bin/pygrub'"}},
		{"pyphy", "phy", "phy:%s,xvda,w", []string{"bootloader = '/usr/bin/pygrub'"}},
		{"hvm", "raw", "file:%s,hda,w", []string{"builder = 'hvm'", "boot = 'c'"}},
	}
	for _, c := range cases {
		var disk string
		if c.format == "phy" {
			disk = loopDevice(t, guestDisk(t, "raw"))
		} else {
			disk = guestDisk(t, c.format)
		}
		cfg := fmt.Sprintf("name = '%s'\nmemory = 256\n%s\ndisk = ['%s']\n", c.name, strings.Join(c.lines, "\n"), fmt.Sprintf(c.disk, disk))
		a.call(t, "domain.create", nil, cfg)
		a.call(t, "domain.start", nil, c.name)
		lines := a.waitConsoleLines(t, c.name, "TESTGUEST READY from its disk", qemuBoot, func(l []string) bool {
			return countFrom(l, "", "TESTGUEST READY") > 0 && countFrom(l, "", "testguest: disk mounted") > 0
		})
		if countFrom(lines, "", "testguest: disk mounted dev=/dev/vda1 boots=1") != 1 && countFrom(lines, "", "testguest: disk mounted dev=/dev/sda1 boots=1") != 1 {
			t.Errorf("%s: the disk's boot counter:\n%s", c.name, strings.Join(lines, "\n"))
		}
		a.call(t, "domain.destroy", nil, c.name)
	}

	// builder = 'hvm' from a CD-ROM (boot = 'd', hdc:cdrom, r): SeaBIOS
	// boots the ISO's El Torito GRUB.
	iso := filepath.Join(filepath.Dir(testguest.Disk(t)), "cd.iso")
	a.call(t, "domain.create", nil, fmt.Sprintf("name = 'cd'\nmemory = 256\nbuilder = 'hvm'\nboot = 'd'\ndisk = ['file:%s,hdc:cdrom,r']\n", iso))
	a.call(t, "domain.start", nil, "cd")
	a.waitConsoleLines(t, "cd", "TESTGUEST READY from its CD-ROM", qemuBoot, func(l []string) bool { return countFrom(l, "", "TESTGUEST READY") > 0 })
	a.call(t, "domain.destroy", nil, "cd")

	// A disk given read-only ('r'): the guest reads it but cannot write
	// its boot counter back.
	ro := ext4Disk(t, 16, map[string]string{"testguest-boots": "41\n"})
	v := guestVM{Name: "ro", MemcheckMiB: -1, Disk: ro}
	a.call(t, "domain.create", nil, strings.Replace(v.cfg(t), ",xvda,w'", ",xvda,r'", 1))
	a.call(t, "domain.start", nil, "ro")
	a.waitConsoleLines(t, "ro", "the read-only disk mounted", qemuBoot, func(l []string) bool {
		return countFrom(l, "", "testguest: disk mounted dev=/dev/vda boots=42") > 0
	})
	a.call(t, "domain.destroy", nil, "ro")
	if n := strings.TrimSpace(diskFile(t, ro, "testguest-boots")); n != "41" {
		t.Errorf("the guest wrote %q on a disk given read-only", n)
	}
}
