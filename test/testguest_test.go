package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/testguest"
	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// The test guest: a Debian kernel (as a PVH vmlinux) and a busybox initrd
// built by guest/build.sh from Debian packages, cached between runs (see
// the README). These helpers boot it on plain QEMU.

// testGuestDir builds the test guest, or finds it in its cache, and returns
// the directory holding vmlinux and initrd.
func testGuestDir(t testing.TB) string { return testguest.Dir(t) }

// testGuestAccel is the accelerator the test guest runs on (tcg unless
// OVS_TESTGUEST_ACCEL says otherwise), logged with the reason.
func testGuestAccel(t testing.TB) string { return testguest.Accel(t) }

// qemuGuest is one qemu-system-x86_64 running the test guest.
type qemuGuest struct {
	cmd    *exec.Cmd
	start  time.Time
	exited chan struct{}
	stderr bytes.Buffer
	stdin  io.WriteCloser // the serial console's input

	mu    sync.Mutex
	lines []string // the serial console, a line each

	qc *qmp.Client
}

// bootTestGuest starts QEMU on the test guest with a QMP socket and reads
// its serial console; extra are more QEMU arguments (devices). The cleanup
// kills it by pid if it is still running.
func bootTestGuest(t *testing.T, dir, appendArgs string, extra ...string) *qemuGuest {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 not installed (apt-get install --no-install-recommends qemu-system-x86): %v", err)
	}
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	g := &qemuGuest{exited: make(chan struct{})}
	g.cmd = exec.Command(qemu, append([]string{"-accel", testGuestAccel(t), "-m", "256",
		"-kernel", filepath.Join(dir, "vmlinux"), "-initrd", filepath.Join(dir, "initrd"),
		// no_timer_check: on a busy host TCG can fail the kernel's IO-APIC
		// timer check, a panic ("IO-APIC + timer doesn't work!").
		"-append", "console=ttyS0 quiet no_timer_check " + appendArgs,
		"-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot",
		"-qmp", "unix:" + sock + ",server=on,wait=off"}, extra...)...)
	g.cmd.Stderr = &g.stderr
	stdout, err := g.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// An open stdin, silent unless a test types: the guest's serial input.
	if g.stdin, err = g.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	g.start = time.Now()
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := g.cmd.Process.Pid
	go g.readConsole(stdout)
	go func() { g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		select {
		case <-g.exited:
		default:
			syscall.Kill(pid, syscall.SIGKILL)
			<-g.exited
		}
		if g.qc != nil {
			g.qc.Close()
		}
		if t.Failed() {
			t.Logf("serial console:\n%s\nqemu stderr:\n%s", strings.Join(g.console(), "\n"), g.stderr.String())
		}
	})
	g.connectQMP(t, sock)
	return g
}

func (g *qemuGuest) readConsole(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		g.mu.Lock()
		g.lines = append(g.lines, line)
		g.mu.Unlock()
	}
}

// typeLine types line and a newline on the serial console.
func (g *qemuGuest) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(g.stdin, line+"\n"); err != nil {
		t.Fatalf("type %q on the console: %v", line, err)
	}
}

func (g *qemuGuest) console() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.lines...)
}

// waitConsole waits until done says the console is far enough, failing on
// a CORRUPT or FAILED line, QEMU's exit or the timeout.
func (g *qemuGuest) waitConsole(t *testing.T, what string, timeout time.Duration, done func([]string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := g.console()
		for _, l := range lines {
			if strings.Contains(l, "CORRUPT") || strings.Contains(l, "FAILED") {
				t.Fatalf("guest console: %s", l)
			}
		}
		if done(lines) {
			t.Logf("%s after %v", what, time.Since(g.start).Round(time.Millisecond))
			return
		}
		select {
		case <-g.exited:
			t.Fatalf("QEMU exited (%v) before %s", g.cmd.ProcessState, what)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// connectQMP dials QEMU's QMP socket (it appears once QEMU is up) with the
// project's QMP client, which reads the greeting and leaves capabilities
// negotiation mode.
func (g *qemuGuest) connectQMP(t *testing.T, sock string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := qmp.Dial(ctx, sock, qmp.Options{})
		cancel()
		if err == nil {
			g.qc = c
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("QMP socket: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// qmpWaitEvent waits for the event named, within timeout.
func (g *qemuGuest) qmpWaitEvent(t *testing.T, name string, timeout time.Duration) qmp.Event {
	t.Helper()
	limit := time.After(timeout)
	for {
		select {
		case ev := <-g.qc.Events():
			if ev.Name == name {
				return ev
			}
		case <-limit:
			t.Fatalf("no %s event within %s", name, timeout)
		}
	}
}

// waitExit waits for QEMU to exit by itself and returns its exit status.
func (g *qemuGuest) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-g.exited:
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("QEMU still running %v after the guest shut down", timeout)
		return -1
	}
}

// countFrom counts the lines with prefix after the first line containing mark.
func countFrom(lines []string, mark, prefix string) int {
	n, seen := 0, false
	for _, l := range lines {
		if !seen {
			seen = strings.Contains(l, mark)
			continue
		}
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	if !seen {
		return -1
	}
	return n
}

// TestTestGuestBoots boots the test guest on QEMU to its READY line and a
// few OK lines of its memory checker, presses the ACPI power button over
// QMP and checks that the guest powers itself off and QEMU exits 0.
func TestTestGuestBoots(t *testing.T) {
	dir := testGuestDir(t)
	g := bootTestGuest(t, dir, "memcheck_mib=32")
	g.waitConsole(t, "TESTGUEST READY", 90*time.Second, func(l []string) bool {
		return countFrom(l, "TESTGUEST READY", "") >= 0
	})
	g.waitConsole(t, "3 OK lines of the memory checker", 30*time.Second, func(l []string) bool {
		return countFrom(l, "TESTGUEST READY", "OK memcheck") >= 3
	})
	pressed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.qc.SystemPowerdown(ctx); err != nil {
		t.Fatal(err)
	}
	ev := g.qmpWaitEvent(t, "SHUTDOWN", 30*time.Second)
	var data struct {
		Guest  bool   `json:"guest"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || !data.Guest || data.Reason != "guest-shutdown" {
		t.Fatalf("SHUTDOWN event %v, want a guest-initiated shutdown", ev)
	}
	if code := g.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("QEMU exit status %d, want 0\n%s", code, g.stderr.String())
	}
	t.Logf("powered off %v after the power button; QEMU exited 0", time.Since(pressed).Round(time.Millisecond))
	if countFrom(g.console(), "TESTGUEST READY", "testguest: power button") < 1 {
		t.Fatalf("no power-button line on the console")
	}
}

// TestMemcheckReportsCorruption runs the test guest's memory checker on the
// host and overwrites a word of its memory through /proc/PID/mem: it must
// print a CORRUPT line (and OK lines before). It is the guest's own binary,
// as build.sh compiled it for the initrd.
func TestMemcheckReportsCorruption(t *testing.T) {
	cmd := exec.Command(filepath.Join(testGuestDir(t), "memcheck"), "3")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine(t, lines, "OK memcheck")
	addr := memcheckRegion(t, cmd.Process.Pid, 3<<20) + 1<<20 + 808
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a rewrite may hide one write: repeat until seen
		for {
			if f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", cmd.Process.Pid), os.O_WRONLY, 0); err == nil {
				f.WriteAt([]byte("corrupt!"), int64(addr))
				f.Close()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Log(waitLine(t, lines, "CORRUPT memcheck offset="))
}

// memcheckRegion finds the start of the anonymous mapping of size bytes.
func memcheckRegion(t *testing.T, pid, size int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		var lo, hi uint64
		if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && hi-lo == uint64(size) {
			return lo
		}
	}
	t.Fatalf("no %d-byte mapping in\n%s", size, data)
	return 0
}

// waitLine waits up to 10 s for a line with prefix.
func waitLine(t *testing.T, lines <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("memcheck exited before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %q line within 10 s", prefix)
		}
	}
}
