package storagehb

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within 10s", what)
}

func TestHeartbeatWritesAndState(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	h := New(Config{Mounts: func() []string { return []string{a, b} }, Fence: func(string, time.Duration) { t.Error("fenced") }})
	defer h.Close()
	running, started, err := h.Ensure("host-1", 3*time.Second, time.Second)
	if err != nil || running || !started {
		t.Fatalf("Ensure: %v %v %v", running, started, err)
	}
	waitFor(t, "both heartbeat files", func() bool {
		ok, _, _ := State([]string{a, b}, "host-1", 3*time.Second, time.Now())
		return ok
	})
	if running, started, err := h.Ensure("host-1", 3*time.Second, time.Second); err != nil || !running || started {
		t.Fatalf("a second Ensure: %v %v %v", running, started, err)
	}
	if _, err := os.Stat(filepath.Join(a, ".hb-host-1.new")); !os.IsNotExist(err) {
		t.Errorf("the new file was left: %v", err)
	}
	// another host's file, or an old one, is not ok
	if ok, ages, _ := State([]string{a}, "host-2", 3*time.Second, time.Now()); ok || ages[0].Age != -1 {
		t.Errorf("State of a host that writes nothing: %v %+v", ok, ages)
	}
	if ok, _, _ := State([]string{a}, "host-1", 3*time.Second, time.Now().Add(time.Minute)); ok {
		t.Error("a heartbeat a minute old is ok")
	}
	if ok, _, _ := State(nil, "host-1", time.Second, time.Now()); !ok {
		t.Error("no mounts: not ok")
	}
	h.Close()
	if _, run := h.Running(); run {
		t.Error("running after Close")
	}
}

// A write that does not end (dead storage; here a FIFO nobody reads,
// where the new file would be) fences that mount once, and only that one.
func TestHeartbeatFencesAStalledMount(t *testing.T) {
	good, dead := t.TempDir(), t.TempDir()
	fifo := filepath.Join(dead, ".hb-host-1.new")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var fenced []string
	h := New(Config{Mounts: func() []string { return []string{good, dead} }, Fence: func(m string, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		fenced = append(fenced, m)
	}})
	defer h.Close()
	if _, _, err := h.Ensure("host-1", 2*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fence", func() bool { mu.Lock(); defer mu.Unlock(); return len(fenced) > 0 })
	time.Sleep(2500 * time.Millisecond) // more beats: no second fence
	mu.Lock()
	if len(fenced) != 1 || fenced[0] != dead {
		t.Errorf("fenced %v, want only %s once", fenced, dead)
	}
	mu.Unlock()
	if ok, _, _ := State([]string{good}, "host-1", 2*time.Second, time.Now()); !ok {
		t.Error("the good mount's heartbeat stopped")
	}
	// release the stuck write before the test's folders go
	if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

func TestEnsureRefusals(t *testing.T) {
	h := New(Config{Mounts: func() []string { return nil }, Fence: func(string, time.Duration) {}})
	defer h.Close()
	for _, c := range []struct {
		guid              string
		timeout, interval time.Duration
	}{
		{"../x", 120 * time.Second, time.Second},
		{"", 120 * time.Second, time.Second},
		{"h", 120 * time.Second, 0},
		{"h", time.Second, time.Second},
		{"h", 2 * time.Hour, time.Second},
		{"h", 5 * time.Second, 10 * time.Second},
	} {
		if _, _, err := h.Ensure(c.guid, c.timeout, c.interval); err == nil {
			t.Errorf("Ensure(%q, %s, %s) taken", c.guid, c.timeout, c.interval)
		}
	}
	if _, run := h.Running(); run {
		t.Error("a refused Ensure started it")
	}
}
