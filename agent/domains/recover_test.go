package domains

import (
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// After an agent restart, a VMM found sending a migration is settled by
// its phase: before the commit the migration is aborted and the domain
// stays here; in doubt it is listed for the resolver and left alone;
// committing it finishes on its own.
func TestReattachSettlesTheMigrationTheVMMWasSending(t *testing.T) {
	const abortReason = "the source agent restarted before the commit"
	cases := []struct {
		phase   control.Phase
		state   control.State // what the VMM reports
		aborted bool
		inDoubt bool
		want    State
	}{
		{control.PhaseSetup, control.StateRunning, true, false, Running},
		{control.PhasePrecopy, control.StateRunning, true, false, Running},
		{control.PhaseStopCopy, control.StatePaused, true, false, Paused},
		{control.PhaseSent, control.StatePaused, true, false, Paused},
		{control.PhaseVerified, control.StatePaused, true, false, Paused},
		{control.PhaseInDoubt, control.StatePaused, false, true, Paused},
		{control.PhaseCommitting, control.StatePaused, false, false, Paused},
		{control.PhaseCompleted, control.StateRunning, false, false, Running},
	}
	for _, c := range cases {
		t.Run(string(c.phase), func(t *testing.T) {
			t.Parallel()
			dir, f := t.TempDir(), newFakeVMMs()
			m1 := openFake(t, dir, f, 4096)
			uuid := create(t, m1, "d", 128)
			if err := m1.Start("d"); err != nil {
				t.Fatal(err)
			}
			m1.Close() // the agent goes away mid-migration
			p := f.proc(t, uuid)
			f.mu.Lock()
			p.state = c.state
			p.migration = &control.MigrationStatus{ID: "m-1", Target: "host2", Phase: c.phase, Live: true}
			f.mu.Unlock()

			m2 := openFake(t, dir, f, 4096)
			f.mu.Lock()
			aborts := append([]string(nil), p.aborts...)
			f.mu.Unlock()
			if c.aborted && (len(aborts) != 1 || aborts[0] != abortReason) {
				t.Errorf("aborts %q, want one: %q", aborts, abortReason)
			}
			if !c.aborted && len(aborts) != 0 {
				t.Errorf("a migration %s was aborted: %q", c.phase, aborts)
			}
			doubt := m2.InDoubt()
			if c.inDoubt && (len(doubt) != 1 || doubt["d"] != "host2") {
				t.Errorf("in doubt: %v, want d on host2", doubt)
			}
			if !c.inDoubt && len(doubt) != 0 {
				t.Errorf("a migration %s is in doubt: %v", c.phase, doubt)
			}
			if in := info(t, m2, "d"); in.State != string(c.want) || in.PID != p.pid {
				t.Errorf("the domain after the agent restart: %+v (want %s here)", in, c.want)
			}
		})
	}
}
