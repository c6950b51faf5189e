package domains

import (
	"fmt"
	"testing"
	"time"
)

// removed is the outcome of an operation after which the domain is no
// longer known here.
const removed State = "(removed)"

// TestOperationsFromEachState runs every lifecycle operation from every
// state a domain can be brought to, and checks the state it ends in, or,
// for an operation the state does not allow, a bad-state error that
// changed nothing (no VMM started, the state and reason as they were).
func TestOperationsFromEachState(t *testing.T) {
	ops := []struct {
		name string
		do   func(m *Manager) error
	}{
		{"start", func(m *Manager) error { return m.Start("d") }},
		{"pause", func(m *Manager) error { return m.Pause("d") }},
		{"unpause", func(m *Manager) error { return m.Unpause("d") }},
		{"shutdown", func(m *Manager) error { return m.Shutdown("d", time.Second) }},
		{"destroy", func(m *Manager) error { return m.Destroy("d") }},
		{"reboot", func(m *Manager) error { return m.Reboot("d", time.Second) }},
		{"save", func(m *Manager) error { return m.Save("d", "/images/d.img") }},
		{"delete", func(m *Manager) error { return m.Delete("d") }},
	}
	// The outcome of each operation allowed from a state; the others are
	// refused.
	allowed := map[State]map[string]State{
		Stopped:   {"start": Running, "delete": removed},
		Running:   {"pause": Paused, "shutdown": Stopped, "destroy": Stopped, "reboot": Running, "save": Suspended},
		Paused:    {"unpause": Running, "shutdown": Stopped, "destroy": Stopped, "reboot": Running, "save": Suspended},
		Suspended: {"start": Running, "delete": removed},
		Starting:  {"destroy": removed}, // an incoming migration's VMM: the domain goes with it
		Migrating: {},
	}
	for from, outcomes := range allowed {
		for _, op := range ops {
			want, ok := outcomes[op.name]
			title := fmt.Sprintf("%s from %s is refused", op.name, from)
			if ok {
				title = fmt.Sprintf("%s from %s gives %s", op.name, from, want)
			}
			t.Run(title, func(t *testing.T) {
				t.Parallel()
				f := newFakeVMMs()
				m := openFake(t, t.TempDir(), f, 4096)
				bringTo(t, m, from)
				for len(f.starts) > 0 {
					<-f.starts
				}
				before := info(t, m, "d")
				err := op.do(m)
				switch {
				case !ok:
					if KindOf(err) != BadState {
						t.Fatalf("%s: %v (want a bad-state error)", op.name, err)
					}
					if now := info(t, m, "d"); now.State != before.State || now.Reason != before.Reason || now.PID != before.PID {
						t.Fatalf("a refused %s changed the domain: %+v, was %+v", op.name, now, before)
					}
					f.noStart(t)
				case err != nil:
					t.Fatalf("%s: %v", op.name, err)
				case want == removed:
					// A domain that leaves with its VMM is stopped first,
					// then forgotten.
					eventually(t, "the domain forgotten after "+op.name, func() bool {
						_, err := m.Info("d")
						return KindOf(err) == NotFound
					})
				default:
					if now := info(t, m, "d"); now.State != string(want) {
						t.Fatalf("after %s: %+v", op.name, now)
					}
				}
			})
		}
	}
}

// bringTo creates domain d and brings it to state s.
func bringTo(t *testing.T, m *Manager, s State) {
	t.Helper()
	if s == Starting {
		if err := m.Incoming("name = 'd'\nuuid = '6f1d3c2e-0000-4000-8000-0000000000d0'\nmemory = 128\n", "host1", 0, 0); err != nil {
			t.Fatal(err)
		}
		return
	}
	create(t, m, "d", 128)
	var steps []func() error
	switch s {
	case Running:
		steps = []func() error{func() error { return m.Start("d") }}
	case Paused:
		steps = []func() error{func() error { return m.Start("d") }, func() error { return m.Pause("d") }}
	case Suspended:
		steps = []func() error{func() error { return m.Start("d") }, func() error { return m.Save("d", "/images/d.img") }}
	case Migrating:
		steps = []func() error{func() error { return m.BeginOffline("d", "host2") }}
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if in := info(t, m, "d"); in.State != string(s) {
		t.Fatalf("brought to %s: %+v", s, in)
	}
}
