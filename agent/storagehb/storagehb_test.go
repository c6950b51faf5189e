package storagehb

import (
	"fmt"
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

// fences records the fences.
type fences struct {
	mu sync.Mutex
	m  []string
}

func (f *fences) fence(m string, _ time.Duration) { f.mu.Lock(); f.m = append(f.m, m); f.mu.Unlock() }
func (f *fences) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.m...)
}

func TestHeartbeatWritesAndState(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	var f fences
	h := New(Config{Mounts: func() []string { return []string{a, b} }, Fence: f.fence})
	defer h.Close()
	running, started, err := h.Ensure("host-1", 3*time.Second, time.Second)
	if err != nil || running || !started {
		t.Fatalf("Ensure: %v %v %v", running, started, err)
	}
	waitFor(t, "both heartbeat files", func() bool {
		_, ages, _ := h.State([]string{a, b}, "host-1", 3*time.Second, time.Second)
		return len(ages) == 2 && ages[0].Found && ages[1].Found
	})
	if ok, _, _ := h.State([]string{a, b}, "host-1", 3*time.Second, time.Second); !ok {
		t.Fatal("State while it beats: not ok")
	}
	if running, started, err := h.Ensure("host-1", 3*time.Second, time.Second); err != nil || !running || started {
		t.Fatalf("a second Ensure: %v %v %v", running, started, err)
	}
	if _, err := os.Stat(filepath.Join(a, ".hb-host-1.new")); !os.IsNotExist(err) {
		t.Errorf("the new file was left: %v", err)
	}
	// a host that writes nowhere here: no file found, alive (its storage
	// is not these mounts); one whose file is old: dead
	if ok, ages, _ := h.State([]string{a}, "host-2", 3*time.Second, time.Second); !ok || ages[0].Found {
		t.Errorf("State of a host without files here: %v %+v", ok, ages)
	}
	old := t.TempDir()
	os.WriteFile(filepath.Join(old, ".hb-host-3"), fmt.Appendf(nil, "%.6f", float64(time.Now().Add(-time.Minute).Unix())), 0o644)
	if ok, _, _ := h.State([]string{a, old}, "host-3", 3*time.Second, time.Second); ok {
		t.Error("a heartbeat a minute old is alive")
	}
	// a writer whose clock is ahead: fresh
	os.WriteFile(filepath.Join(old, ".hb-host-4"), fmt.Appendf(nil, "%.6f", float64(time.Now().Add(200*time.Millisecond).UnixMicro())/1e6), 0o644)
	if ok, _, _ := h.State([]string{old}, "host-4", 3*time.Second, time.Second); !ok {
		t.Error("a heartbeat from a clock 200 ms ahead is dead")
	}
	if len(f.list()) != 0 {
		t.Errorf("fenced %v", f.list())
	}
	h.Close()
	if _, run := h.Running(); run {
		t.Error("running after Close")
	}
	if _, _, err := h.Ensure("host-1", 3*time.Second, time.Second); err == nil {
		t.Error("Ensure after Close started it")
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
	var f fences
	h := New(Config{Mounts: func() []string { return []string{good, dead} }, Fence: f.fence})
	defer h.Close()
	if _, _, err := h.Ensure("host-1", 3*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fence", func() bool { return len(f.list()) > 0 })
	// a read of the stuck mount's file answers (the FIFO is the new
	// file, not the heartbeat file); the good one stays fresh
	time.Sleep(2500 * time.Millisecond) // more beats: no second fence
	if got := f.list(); len(got) != 1 || got[0] != dead {
		t.Errorf("fenced %v, want only %s once", got, dead)
	}
	if ok, _, _ := h.State([]string{good}, "host-1", 3*time.Second, time.Second); !ok {
		t.Error("the good mount's heartbeat stopped")
	}
	// release the stuck write before the test's folders go
	if r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
		r.Close()
	}
}

// Writes that fail at once (EIO, a read-only file system; here the new
// file's name is a folder) fence as a stuck one does.
func TestHeartbeatFencesFailingWrites(t *testing.T) {
	dead := t.TempDir()
	os.Mkdir(filepath.Join(dead, ".hb-host-1.new"), 0o755)
	var f fences
	h := New(Config{Mounts: func() []string { return []string{dead} }, Fence: f.fence})
	defer h.Close()
	if _, _, err := h.Ensure("host-1", 3*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fence", func() bool { return len(f.list()) == 1 })
	// it writes again: the storage answers, and a later loss fences again
	os.Remove(filepath.Join(dead, ".hb-host-1.new"))
	waitFor(t, "the heartbeat back", func() bool {
		_, ages, _ := h.State([]string{dead}, "host-1", 3*time.Second, time.Second)
		return len(ages) == 1 && ages[0].Found && ages[0].Age < 2*time.Second
	})
	os.Mkdir(filepath.Join(dead, ".hb-host-1.new"), 0o755)
	waitFor(t, "the second fence", func() bool { return len(f.list()) == 2 })
}

func TestSettingsResume(t *testing.T) {
	dir, mount := t.TempDir(), t.TempDir()
	set := filepath.Join(dir, "hb.json")
	h := New(Config{Mounts: func() []string { return []string{mount} }, Fence: func(string, time.Duration) {}, SettingsFile: set})
	if _, _, err := h.Ensure("host-1", 4*time.Second, time.Second); err != nil {
		t.Fatal(err)
	}
	h.Close()
	// the agent again: the heartbeat runs before the manager's ping
	h2 := New(Config{Mounts: func() []string { return []string{mount} }, Fence: func(string, time.Duration) {}, SettingsFile: set})
	defer h2.Close()
	if err := h2.Resume(); err != nil {
		t.Fatal(err)
	}
	if guid, run := h2.Running(); !run || guid != "host-1" {
		t.Fatalf("after Resume: %q %v", guid, run)
	}
	os.WriteFile(set, []byte(`{"guid":"../x"}`), 0o600)
	if err := New(Config{SettingsFile: set}).Resume(); err == nil {
		t.Error("bad settings resumed")
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
		{"h", 2 * time.Second, time.Second},
		{"h", 2 * time.Hour, time.Second},
		{"h", 20 * time.Second, 10 * time.Second},
	} {
		if _, _, err := h.Ensure(c.guid, c.timeout, c.interval); err == nil {
			t.Errorf("Ensure(%q, %s, %s) taken", c.guid, c.timeout, c.interval)
		}
	}
	if _, run := h.Running(); run {
		t.Error("a refused Ensure started it")
	}
}

// A read that hangs (dead storage; here the heartbeat file is a FIFO
// nobody writes) answers dead after the wait, and is not read again
// while it hangs.
func TestStateHungRead(t *testing.T) {
	m := t.TempDir()
	fifo := filepath.Join(m, ".hb-host-1")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	h := New(Config{Mounts: func() []string { return nil }})
	start := time.Now()
	if ok, ages, _ := h.State([]string{m}, "host-1", 3*time.Second, 300*time.Millisecond); ok || !ages[0].Hung || time.Since(start) > 2*time.Second {
		t.Fatalf("a hung read: %v %+v after %v", ok, ages, time.Since(start))
	}
	start = time.Now()
	if ok, ages, _ := h.State([]string{m}, "host-1", 3*time.Second, 5*time.Second); ok || !ages[0].Hung || time.Since(start) > time.Second {
		t.Fatalf("the same mount again while its read hangs: %v %+v after %v", ok, ages, time.Since(start))
	}
	h.mu.Lock()
	n := len(h.reading)
	h.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d reads outstanding, want 1", n)
	}
	if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil { // release it
		w.Close()
	}
	waitFor(t, "the read to end", func() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.reading) == 0 })
}
