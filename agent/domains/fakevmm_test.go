package domains

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// fakeVMMs is a VMMDriver whose VMMs are records in memory. A test ends
// them (a crash with an exit record, a kill without one), and a second
// Manager on the same state directory finds the ones still "running"
// again, as after an agent restart.
type fakeVMMs struct {
	mu      sync.Mutex
	procs   map[string]*fakeProc // by domain UUID: its latest VMM
	nextPID int
	// starts receives the spec of every Start.
	starts chan vmmproc.Spec
	// What the next Start does instead of answering: refuse to run
	// (refuse), end first with an exit record (endFirst), never answer
	// (hang).
	refuse   error
	endFirst *control.Exit
	hang     bool
	// gate, when set, holds every Start back from answering until it is
	// closed.
	gate chan struct{}
	// afterLease, when set, runs after each SetLease the VMM answered
	// (before the answer reaches the Manager), with its generation.
	afterLease func(generation int64)
	// leaseFails fails that many next SetLease calls, as a VMM that
	// does not answer in time.
	leaseFails int
}

func newFakeVMMs() *fakeVMMs {
	return &fakeVMMs{procs: map[string]*fakeProc{}, starts: make(chan vmmproc.Spec, 64)}
}

// fakeProc is one fake VMM process.
type fakeProc struct {
	spec      vmmproc.Spec
	pid       int
	started   time.Time
	state     control.State
	migration *control.MigrationStatus // what migrate-status answers
	// aborts are the reasons of the migrate-abort requests it took.
	aborts []string
	// ignoreShutdown: a clean shutdown request is taken but never done.
	ignoreShutdown bool
	// ignoreDestroy: a destroy request is taken but never done either.
	ignoreDestroy bool
	// requests are the set-memory and console-input requests it took.
	requests []control.Request
	// facts are what its Info says of the engine (accelerator, version,
	// machine, I/O counters).
	facts control.Info
	// The lease as the VMM keeps it (from the spec, then SetLease); a
	// run-until time that has passed makes it report itself fenced, as
	// the real VMM's timer would.
	generation int64
	runUntil   control.Monotonic
	leases     int           // SetLease calls taken
	ended      *control.Exit // set once it has ended
	record     *control.Exit // the exit record it left, if any
	attached   []*fakeVMM
}

// fakeVMM is one Manager's hold on a fakeProc.
type fakeVMM struct {
	f      *fakeVMMs
	p      *fakeProc
	wait   chan control.Exit
	closed bool
}

func (f *fakeVMMs) Start(ctx context.Context, s vmmproc.Spec) (VMM, error) {
	f.mu.Lock()
	refuse, endFirst, hang, gate := f.refuse, f.endFirst, f.hang, f.gate
	f.refuse, f.endFirst, f.hang = nil, nil, false
	if refuse != nil {
		f.mu.Unlock()
		return nil, refuse
	}
	f.nextPID++
	p := &fakeProc{spec: s, pid: 1000 + f.nextPID, started: time.Now().UTC(), state: control.StateRunning,
		generation: s.Generation, runUntil: s.RunUntil}
	if s.Mode == vmmproc.Incoming {
		p.state = control.StateIncoming
	}
	f.procs[s.UUID] = p
	v := f.attach(p)
	f.mu.Unlock()
	f.starts <- s
	switch {
	case endFirst != nil:
		ex := *endFirst
		ex.PID = p.pid
		f.end(p, ex, true)
		return v, vmmproc.ErrEnded
	case hang:
		<-ctx.Done()
		_ = v.Kill()
		return v, ctx.Err()
	case gate != nil:
		<-gate
	}
	return v, nil
}

func (f *fakeVMMs) Recover(ctx context.Context, h vmmproc.Handle) (VMM, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[h.UUID]
	if p == nil || p.ended != nil {
		return nil, fmt.Errorf("VMM control socket %s: connection refused", h.Socket)
	}
	return f.attach(p), nil
}

func (f *fakeVMMs) Exited(h vmmproc.Handle) control.Exit {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.procs[h.UUID]; p != nil && p.record != nil && (h.PID == 0 || p.record.PID == h.PID) {
		return *p.record
	}
	return control.Exit{Time: time.Now().UTC(), PID: h.PID, Reason: control.ExitVanished, Code: -1}
}

// attach makes a new hold on p; the caller holds f.mu.
func (f *fakeVMMs) attach(p *fakeProc) *fakeVMM {
	v := &fakeVMM{f: f, p: p, wait: make(chan control.Exit, 1)}
	p.attached = append(p.attached, v)
	return v
}

// end ends p with exit ex (recorded: it left ex as its exit record).
func (f *fakeVMMs) end(p *fakeProc, ex control.Exit, recorded bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.endLocked(p, ex, recorded)
}

func (f *fakeVMMs) endLocked(p *fakeProc, ex control.Exit, recorded bool) {
	if p.ended != nil {
		return
	}
	if ex.Time.IsZero() {
		ex.Time = time.Now().UTC()
	}
	ex.PID = p.pid
	p.ended, p.state = &ex, ""
	if recorded {
		p.record = &ex
	}
	for _, v := range p.attached {
		if !v.closed {
			v.wait <- ex
			close(v.wait)
			v.closed = true
		}
	}
}

// proc is the latest VMM of the domain with uuid.
func (f *fakeVMMs) proc(t *testing.T, uuid string) *fakeProc {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[uuid]
	if p == nil {
		t.Fatalf("no VMM was ever started for %s", uuid)
	}
	return p
}

// crash ends the latest VMM of uuid with an exit record.
func (f *fakeVMMs) crash(t *testing.T, uuid string, reason control.ExitReason, detail string) {
	f.end(f.proc(t, uuid), control.Exit{Reason: reason, Detail: detail, Code: 1}, true)
}

// kill ends the latest VMM of uuid without an exit record, as SIGKILL does.
func (f *fakeVMMs) kill(t *testing.T, uuid string) {
	f.end(f.proc(t, uuid), control.Exit{Reason: control.ExitVanished, Detail: "signal: killed", Code: -1}, false)
}

// held counts the holds on the latest VMM of uuid that no Manager has
// released, and says whether that VMM still runs.
func (f *fakeVMMs) held(t *testing.T, uuid string) (holds int, running bool) {
	p := f.proc(t, uuid)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range p.attached {
		if !v.closed {
			holds++
		}
	}
	return holds, p.ended == nil
}

// nextStart is the spec of the next Start, waited for.
func (f *fakeVMMs) nextStart(t *testing.T) vmmproc.Spec {
	t.Helper()
	select {
	case s := <-f.starts:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no VMM started")
		return vmmproc.Spec{}
	}
}

// noStart fails when a VMM was started since the last nextStart.
func (f *fakeVMMs) noStart(t *testing.T) {
	t.Helper()
	select {
	case s := <-f.starts:
		t.Fatalf("a VMM was started for %s (mode %d)", s.UUID, s.Mode)
	default:
	}
}

func (v *fakeVMM) Handle() vmmproc.Handle {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	s := v.p.spec
	return vmmproc.Handle{UUID: s.UUID, Dir: s.Dir, Socket: s.Socket, PID: v.p.pid, Started: v.p.started}
}

func (v *fakeVMM) Wait() <-chan control.Exit { return v.wait }

func (v *fakeVMM) Inspect(ctx context.Context) (*control.Info, error) {
	resp, err := v.Call(ctx, control.Request{Op: control.OpInfo})
	if err != nil {
		return nil, err
	}
	return resp.Info, nil
}

func (v *fakeVMM) Call(ctx context.Context, req control.Request, files ...*os.File) (*control.Response, error) {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	p := v.p
	if p.ended != nil || v.closed {
		return nil, fmt.Errorf("VMM %s: %s: connection closed", p.spec.Socket, req.Op)
	}
	switch req.Op {
	case control.OpInfo:
		in := p.facts
		in.UUID, in.PID, in.Engine, in.State, in.Started = p.spec.UUID, p.pid, p.spec.Engine, p.state, p.started
		p.leaseInfo(&in)
		return &control.Response{Info: &in}, nil
	case control.OpLease:
		if req.Generation < p.generation {
			return nil, &control.ErrVMM{Msg: fmt.Sprintf("%v: generation %d refused, this VMM runs the domain under generation %d", control.ErrStaleGeneration, req.Generation, p.generation)}
		}
		if p.fenced() && (req.RunUntil == 0 || req.RunUntil.Until() <= 0) {
			return nil, &control.ErrVMM{Msg: control.ErrFenceNeedsFuture.Error()}
		}
		p.generation, p.runUntil = req.Generation, req.RunUntil
		p.leases++
		in := control.Info{UUID: p.spec.UUID, PID: p.pid, State: p.state}
		p.leaseInfo(&in)
		return &control.Response{Info: &in}, nil
	case control.OpPause:
		p.state = control.StatePaused
	case control.OpResume:
		if p.fenced() {
			return nil, &control.ErrVMM{Msg: control.ErrFenced.Error() + ": resume refused"}
		}
		p.state = control.StateRunning
	case control.OpShutdown:
		if !p.ignoreShutdown {
			v.f.endLocked(p, control.Exit{Reason: control.ExitShutdown}, true)
		}
	case control.OpDestroy:
		if !p.ignoreDestroy {
			v.f.endLocked(p, control.Exit{Reason: control.ExitDestroyed}, true)
		}
	case control.OpSetMemory, control.OpConsoleInput:
		p.requests = append(p.requests, req)
	case control.OpSave:
		v.f.endLocked(p, control.Exit{Reason: control.ExitSaved, Detail: req.Path}, true)
		return &control.Response{Migration: &control.MigrationStatus{ID: "save-1", Phase: control.PhaseSetup}}, nil
	case control.OpMigrateStatus:
		return &control.Response{Migration: p.migration}, nil
	case control.OpMigrateAbort:
		if p.migration == nil {
			return nil, &control.ErrVMM{Msg: "no migration to abort"}
		}
		p.aborts = append(p.aborts, req.Reason)
		p.migration.Phase = control.PhaseCancelled
	case control.OpConsole:
		return &control.Response{Console: &control.Console{Offset: req.Offset}}, nil
	default:
		return nil, &control.ErrVMM{Msg: "unknown op " + req.Op}
	}
	return &control.Response{}, nil
}

// fenced says whether the fake's run-until time has passed.
func (p *fakeProc) fenced() bool { return p.runUntil != 0 && p.runUntil.Until() <= 0 }

// leaseInfo fills the lease fields of in as the real VMM does.
func (p *fakeProc) leaseInfo(in *control.Info) {
	in.Generation, in.RunUntil = p.generation, p.runUntil
	if p.runUntil != 0 {
		in.RunUntilRemaining = p.runUntil.Until()
	}
	if p.fenced() {
		in.Fenced, in.FenceDetail = true, "guest paused"
		if p.state == control.StateRunning {
			in.State, in.PausedFor = control.StateFenced, control.PausedForFence
		}
	}
}

func (v *fakeVMM) SetLease(ctx context.Context, runUntil control.Monotonic, generation int64) (*control.Info, error) {
	v.f.mu.Lock()
	fail := v.f.leaseFails > 0
	if fail {
		v.f.leaseFails--
	}
	after := v.f.afterLease
	v.f.mu.Unlock()
	if fail {
		return nil, fmt.Errorf("VMM %s: lease: %w", v.p.spec.Socket, context.DeadlineExceeded)
	}
	resp, err := v.Call(ctx, control.Request{Op: control.OpLease, RunUntil: runUntil, Generation: generation})
	if err != nil {
		return nil, err
	}
	if after != nil {
		after(generation)
	}
	return resp.Info, nil
}

func (v *fakeVMM) Stop(ctx context.Context, force bool) error {
	op := control.OpShutdown
	if force {
		op = control.OpDestroy
	}
	_, err := v.Call(ctx, control.Request{Op: op})
	return err
}

func (v *fakeVMM) Kill() error {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	v.f.endLocked(v.p, control.Exit{Reason: control.ExitVanished, Detail: "signal: killed", Code: -1}, false)
	return nil
}

func (v *fakeVMM) Release() {
	v.f.mu.Lock()
	defer v.f.mu.Unlock()
	if !v.closed {
		close(v.wait)
		v.closed = true
	}
}
