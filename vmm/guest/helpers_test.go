package guest

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/kvm"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// console collects console lines and lets a test wait for one.
type console struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func newConsole() *console {
	c := &console{}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, strings.TrimRight(string(p), "\n"))
	c.cond.Broadcast()
	return len(p), nil
}

func (c *console) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// wait returns the first line from index from on that satisfies ok, or
// fails the test after timeout.
func (c *console) wait(t *testing.T, from int, timeout time.Duration, what string, ok func(string) bool) (string, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := from; ; {
		for ; i < len(c.lines); i++ {
			if ok(c.lines[i]) {
				return c.lines[i], i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s on the console within %v; console:\n%s", what, timeout, strings.Join(c.lines, "\n"))
		}
		c.cond.Wait()
	}
}

func (c *console) waitHeartbeat(t *testing.T, from int, timeout time.Duration) (workload.Heartbeat, int) {
	t.Helper()
	line, i := c.wait(t, from, timeout, "heartbeat", func(l string) bool { return strings.HasPrefix(l, "HB ") })
	hb, err := workload.ParseHeartbeat(line)
	if err != nil {
		t.Fatalf("heartbeat line %q: %v", line, err)
	}
	return hb, i
}

// needKVM skips the test when /dev/kvm is absent and opens it otherwise.
func needKVM(t testing.TB) *kvm.System {
	t.Helper()
	if _, err := os.Stat(kvm.DevicePath); err != nil {
		t.Skipf("skipping: %s not present (%v); the kvm engine cannot run on this host", kvm.DevicePath, err)
	}
	sys, err := kvm.Open("")
	if err != nil {
		t.Fatalf("%s exists but cannot be used: %v", kvm.DevicePath, err)
	}
	t.Cleanup(func() { sys.Close() })
	return sys
}

func newRAM(t testing.TB, size uint64) *workload.RAM {
	t.Helper()
	r, err := workload.NewRAM(t.Name(), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustParams(t testing.TB, s string) workload.Params {
	t.Helper()
	p, err := workload.ParseParams(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start builds and starts a machine, stopping it at cleanup.
func start(t testing.TB, cfg Config) *Machine {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop() })
	return m
}
