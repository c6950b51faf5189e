package domains

import (
	"strings"
	"testing"
)

// A VMM that answers only after the agent closed the registry is let go
// like the others: it runs on, unheld, and the next agent finds it.
func TestVMMThatAnswersAfterCloseIsReleasedAndFoundAgain(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m1 := openFake(t, dir, f, 4096)
	uuid := create(t, m1, "late", 128)
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- m1.Start("late") }()
	f.nextStart(t) // the VMM runs, and has not answered yet
	m1.Close()
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("start: %v", err)
	}
	if holds, running := f.held(t, uuid); holds != 0 || !running {
		t.Fatalf("after Close: %d holds on the VMM, running %v (want none, running)", holds, running)
	}
	m2 := openFake(t, dir, f, 4096)
	if in := info(t, m2, "late"); in.State != "running" || in.PID != f.proc(t, uuid).pid {
		t.Fatalf("the VMM started across Close, after the agent restart: %+v", in)
	}
}

// Once the registry is closed it holds no VMM: a stop is refused at once,
// changing nothing, and the VMM runs on.
func TestStopAfterCloseIsRefusedAndLeavesTheVMMRunning(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "d", 128)
	if err := m.Start("d"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	for _, stop := range []func() error{
		func() error { return m.Destroy("d") },
		func() error { return m.Shutdown("d", 0) },
	} {
		err := stop()
		if KindOf(err) != Failed || !strings.Contains(err.Error(), "no longer holds its VMM") {
			t.Fatalf("stop after Close: %v", err)
		}
	}
	if in := info(t, m, "d"); in.State != "running" {
		t.Fatalf("a refused stop changed the domain: %+v", in)
	}
	if _, running := f.held(t, uuid); !running {
		t.Fatal("a refused stop ended the VMM")
	}
}
