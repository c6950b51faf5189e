package qemu

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The Machine tests boot the project's test guest (test/guest) on real
// QEMU with tcg (migAccel), and reuse one boot for several checks.

const testUUID = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"

// lines is a Console that keeps what it was written, one Write a line.
type lines struct {
	mu     sync.Mutex
	l      []string
	broken bool // a Write that was not one whole line
}

func (c *lines) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bytes.HasSuffix(p, []byte("\n")) || bytes.Count(p, []byte("\n")) != 1 || bytes.ContainsRune(p, '\r') {
		c.broken = true
	}
	c.l = append(c.l, strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (c *lines) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.l...)
}

// count is how many lines start with prefix; it fails on a CORRUPT line.
func (c *lines) count(t *testing.T, prefix string) int {
	t.Helper()
	n := 0
	for _, l := range c.all() {
		if strings.Contains(l, "CORRUPT") {
			t.Fatalf("guest console: %s", l)
		}
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// waitLines waits until the console has more than n lines starting with
// prefix, or the machine ends.
func (c *lines) waitLines(t *testing.T, m *Machine, prefix string, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a safety net, not a measure
	for c.count(t, prefix) <= n {
		select {
		case <-m.Done():
			t.Fatalf("QEMU ended (%v) before %q line %d; console:\n%s", m.Err(), prefix, n+1, strings.Join(c.all(), "\n"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line %d within 3 minutes; console:\n%s", prefix, n+1, strings.Join(c.all(), "\n"))
		}
	}
}

// guestSpec is a Spec of the test guest with mib MiB of memory checked.
func guestSpec(t *testing.T, console *lines, mib int) Spec {
	t.Helper()
	dir := migGuestDir(t)
	return Spec{
		Accel:       migAccel(),
		Name:        "test," + t.Name(),
		UUID:        testUUID,
		MemoryBytes: 128 << 20,
		VCPUs:       1,
		MemoryDir:   t.TempDir(),
		Kernel:      filepath.Join(dir, "vmlinux"),
		Initrd:      filepath.Join(dir, "initrd"),
		Cmdline:     "console=ttyS0 quiet memcheck_mib=" + itoa(mib),
		Console:     console,
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// startMachine starts s; the cleanup kills it and checks that nothing is
// left behind.
func startMachine(t *testing.T, s Spec) *Machine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Kill(); err != nil {
			t.Errorf("Kill: %v", err)
		}
		checkGone(t, m)
	})
	return m
}

// checkGone checks that an ended Machine left no process and no RAM file.
func checkGone(t *testing.T, m *Machine) {
	t.Helper()
	select {
	case <-m.Done():
	default:
		t.Fatal("Done is not closed")
	}
	if err := syscall.Kill(m.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("QEMU pid %d: kill 0 says %v, want ESRCH", m.PID(), err)
	}
	if _, err := os.Stat(m.MemoryFile()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RAM file %s: %v, want it gone", m.MemoryFile(), err)
	}
}

func TestMachineBootAndPowerdown(t *testing.T) {
	console := &lines{}
	m := startMachine(t, guestSpec(t, console, 16))
	console.waitLines(t, m, "TESTGUEST READY", 0)
	console.waitLines(t, m, "OK memcheck", 0)
	if err := m.Powerdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(2 * time.Minute): // a safety net, not a measure
		t.Fatal("the guest did not power off within 2 minutes")
	}
	if err := m.Err(); err != nil {
		t.Fatalf("Err after a guest poweroff: %v", err)
	}
	checkGone(t, m)
}
