package migration

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// fakePool is the agent's pool membership on the sending side: a pool
// domain whose hand-overs answer from a script (the last repeats).
type fakePool struct {
	Pool // the receiving side's methods panic

	mu       sync.Mutex
	answers  []handOverAnswer
	handOver int
	ended    []bool
}

type handOverAnswer struct {
	handed bool
	err    error
}

func (p *fakePool) Outgoing(string) (*relocation.PoolMove, error) {
	return &relocation.PoolMove{Pool: "p1", Owner: "a", Generation: 7}, nil
}

func (p *fakePool) HandOver(_ string, to *relocation.PoolMember) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handOver++
	a := p.answers[min(p.handOver, len(p.answers))-1]
	return a.handed, a.err
}

func (p *fakePool) MoveEnded(_ string, committed bool) {
	p.mu.Lock()
	p.ended = append(p.ended, committed)
	p.mu.Unlock()
}

// A pool domain's migration commits only after its ownership went to the
// target, aborts (the guest resumes here) only when it stayed here, and
// while the hand-over's outcome is unknown neither commits nor aborts,
// whatever the operator asks.
func TestPoolDomainMigrationHandsOver(t *testing.T) {
	unknown := handOverAnswer{err: errors.New("etcd did not answer")}
	for _, tc := range []struct {
		name      string
		answers   []handOverAnswer
		cancel    bool // the operator cancels while it waits
		want      control.Phase
		commits   int
		aborts    int
		handOvers int
	}{
		{"handed over", []handOverAnswer{{handed: true}}, false, control.PhaseCompleted, 1, 0, 1},
		{"kept here", []handOverAnswer{{handed: false}}, false, control.PhaseCancelled, 0, 1, 1},
		{"unknown, then handed, a cancel ignored", []handOverAnswer{unknown, unknown, {handed: true}}, true, control.PhaseCompleted, 1, 0, 3},
		{"unknown, then kept", []handOverAnswer{unknown, {handed: false}}, false, control.PhaseCancelled, 0, 1, 2},
		{"ownership lost", []handOverAnswer{{err: fmt.Errorf("%w: no owner key", ErrOwnershipLost)}}, false, control.PhaseFailed, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fast(t)
			reg := &fakeRegistry{info: domains.Info{State: string(domains.Running)}}
			reg.statusFn = func(n int) (*control.Response, error) {
				// Verified until the agent decides; then committing and
				// completed, or cancelled.
				phase := control.PhaseVerified
				if n == 1 {
					phase = control.PhaseSent
				}
				for _, c := range reg.calls {
					switch c.Op {
					case control.OpMigrateCommit:
						phase = control.PhaseCompleted
						reg.gone = true
					case control.OpMigrateAbort, control.OpMigrateCancel:
						phase = control.PhaseCancelled
					}
				}
				return &control.Response{Migration: &control.MigrationStatus{Phase: phase}}, nil
			}
			pool := &fakePool{answers: tc.answers}
			tgt := &fakeTarget{member: &relocation.PoolMember{Host: "b", Lease: 42}}
			t.Cleanup(tgt.close)
			l := &Local{Domains: reg, Dial: tgt.dial, Pool: pool}
			id, err := l.Start("vm1", "host2", Options{Live: true})
			if err != nil {
				t.Fatal(err)
			}
			m, err := l.find(id)
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancel {
				for deadline := time.Now().Add(10 * time.Second); ; {
					pool.mu.Lock()
					n := pool.handOver
					pool.mu.Unlock()
					if n >= 1 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("no hand-over asked for within 10s")
					}
					time.Sleep(time.Millisecond)
				}
				if _, err := l.Cancel(id); err == nil || !strings.Contains(err.Error(), "too late to cancel") {
					t.Fatalf("cancel during the hand-over: %v, want refused", err)
				}
			}
			select {
			case <-m.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("the migration did not end within 10s: %+v", m.status())
			}
			st := m.status()
			if st.Phase != tc.want {
				t.Fatalf("ended %s (%q), want %s", st.Phase, st.Error, tc.want)
			}
			if send := reg.called(control.OpMigrateSend); len(send) != 1 || send[0].AutoCommit {
				t.Fatalf("the VMM was told to send %+v, want once without auto-commit", send)
			}
			commits, aborts := len(reg.called(control.OpMigrateCommit)), len(reg.called(control.OpMigrateAbort))+len(reg.called(control.OpMigrateCancel))
			pool.mu.Lock()
			defer pool.mu.Unlock()
			if commits != tc.commits || aborts != tc.aborts || pool.handOver != tc.handOvers {
				t.Fatalf("commits %d, aborts %d, hand-overs %d; want %d, %d, %d", commits, aborts, pool.handOver, tc.commits, tc.aborts, tc.handOvers)
			}
			if len(pool.ended) != 1 || pool.ended[0] != (tc.want == control.PhaseCompleted) {
				t.Fatalf("MoveEnded %v", pool.ended)
			}
			if destroyed := len(reg.called("destroy")) > 0; destroyed != (tc.name == "ownership lost") {
				t.Fatalf("destroyed %v: the copy is destroyed only when the ownership is lost", destroyed)
			}
		})
	}
}

// A target that takes a pool domain without naming the member that owns
// it there (an agent that knows no pools) gets nothing: the migration
// fails before the VMM sends a page.
func TestPoolDomainMigrationNeedsAMember(t *testing.T) {
	reg := &fakeRegistry{info: domains.Info{State: string(domains.Running)}, phases: []control.Phase{control.PhaseSetup}}
	fast(t)
	tgt := &fakeTarget{}
	t.Cleanup(tgt.close)
	pool := &fakePool{answers: []handOverAnswer{{handed: true}}}
	l := &Local{Domains: reg, Dial: tgt.dial, Pool: pool}
	id, err := l.Start("vm1", "host2", Options{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := l.find(id)
	<-m.done
	st := m.status()
	if st.Phase != control.PhaseFailed || !strings.Contains(st.Error, "cannot own a pool domain") {
		t.Fatalf("ended %s (%q), want failed saying the target cannot own it", st.Phase, st.Error)
	}
	if len(reg.called(control.OpMigrateSend)) != 0 || pool.handOver != 0 {
		t.Fatalf("sent %v, hand-overs %d; want neither", reg.called(control.OpMigrateSend), pool.handOver)
	}
}
