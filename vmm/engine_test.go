package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// fakeEngine is an Engine with no guest: it records what the runtime asks
// of it, so that the runtime's promises can be checked in milliseconds.
type fakeEngine struct {
	mu       sync.Mutex
	built    bool
	started  bool
	paused   bool
	stopped  bool
	resumes  int // ResumeSource calls
	throttle int
	err      error // why the machine ended, for a crash
	done     chan struct{}
	doneOnce sync.Once

	// sendErr fails Send (the engine resumes the guest itself, as the
	// interface says); otherwise Send pauses the guest and reports the
	// phases in sendPhases.
	sendErr    error
	sendPhases []control.Phase
	// onPhase, when set, runs after the runtime took each reported phase
	// (and once at the start, in setup), with the send still under way.
	onPhase func(control.Phase)

	// acpi gives the guest a power button: Shutdown records the press
	// (the test then powers the guest off with crash(nil)); without one
	// Shutdown is unsupported, as for the workload guest.
	acpi     bool
	pressed  int
	typed    []byte
	memoryTo uint64

	// hangPause, when set, holds every Pause until it is closed (an
	// engine whose QMP does not answer); killed counts Kill calls.
	hangPause chan struct{}
	killed    int

	// recvID, when set, makes Receive take an image of that migration
	// (without reading the connection) and build the machine.
	recvID pagexfer.ID
}

// Kill ends the machine at once, as SIGKILL would.
func (f *fakeEngine) Kill() error {
	f.mu.Lock()
	f.killed++
	f.stopped = true
	f.mu.Unlock()
	f.doneOnce.Do(func() { close(f.done) })
	return nil
}

func (f *fakeEngine) Shutdown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.acpi {
		return fmt.Errorf("fake: no power button: %w", ErrUnsupported)
	}
	f.pressed++
	return nil
}

func (f *fakeEngine) SetMemory(b uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.memoryTo = b
	return nil
}

func (f *fakeEngine) ConsoleInput(p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typed = append(f.typed, p...)
	return nil
}

func (f *fakeEngine) Facts() Facts {
	return Facts{Accel: "tcg", VNC: "127.0.0.1:5900", BalloonBytes: f.memoryTo}
}

var errFakeNone = errors.New("fake engine: no machine")

func newFakeEngine() *fakeEngine { return &fakeEngine{done: make(chan struct{})} }

func (f *fakeEngine) Boot() error {
	f.mu.Lock()
	f.built = true
	f.mu.Unlock()
	return f.Start()
}

func (f *fakeEngine) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.built {
		return errFakeNone
	}
	f.started = true
	return nil
}

func (f *fakeEngine) Pause() error {
	f.mu.Lock()
	hang := f.hangPause
	f.mu.Unlock()
	if hang != nil {
		<-hang
	}
	return f.setPaused(true)
}
func (f *fakeEngine) Resume() error { return f.setPaused(false) }

func (f *fakeEngine) setPaused(p bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started || f.stopped {
		return errFakeNone
	}
	f.paused = p
	return nil
}

// crash ends the machine with err, as a guest fault would.
func (f *fakeEngine) crash(err error) {
	f.mu.Lock()
	f.err, f.stopped = err, true
	f.mu.Unlock()
	f.doneOnce.Do(func() { close(f.done) })
}

func (f *fakeEngine) Stop() error {
	f.mu.Lock()
	started := f.started
	f.stopped = true
	f.mu.Unlock()
	if started {
		f.doneOnce.Do(func() { close(f.done) })
	}
	return nil
}

func (f *fakeEngine) Done() <-chan struct{} { return f.done }

func (f *fakeEngine) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeEngine) Close() error { return nil }

func (f *fakeEngine) Stats() Stats { return Stats{WrittenBytes: 4096} }

func (f *fakeEngine) SetThrottle(p int) error {
	f.mu.Lock()
	f.throttle = p
	f.mu.Unlock()
	return nil
}

func (f *fakeEngine) ResidentBytes() (uint64, error) { return 8192, nil }

func (f *fakeEngine) MemoryBytes() uint64 { return 2 << 20 }

func (f *fakeEngine) MeasureDirty(ctx context.Context, window time.Duration, sample func(DirtySample)) error {
	sample(DirtySample{At: window, Distinct: 4096, Dirtied: 4096})
	return nil
}

func (f *fakeEngine) CheckSend(o SendOptions) (SendOptions, error) {
	if o.Compress == "" {
		o.Compress = "none"
	}
	return o, nil
}

func (f *fakeEngine) Send(ctx context.Context, streams []net.Conn, o SendOptions, progress func(Progress)) (Sent, error) {
	return f.image(o, progress)
}

func (f *fakeEngine) Save(ctx context.Context, w *os.File, o SendOptions, progress func(Progress)) (Sent, error) {
	return f.image(o, progress)
}

func (f *fakeEngine) image(o SendOptions, progress func(Progress)) (Sent, error) {
	sent := Sent{Image: Image{ID: o.ID, Totals: pagexfer.Totals{Rounds: 1, DataPages: 2}},
		Figures: func(st *control.MigrationStatus) { st.DataPages = 2 }}
	f.mu.Lock()
	sendErr, phases, onPhase := f.sendErr, f.sendPhases, f.onPhase
	f.mu.Unlock()
	if sendErr != nil {
		return sent, sendErr
	}
	if onPhase != nil {
		onPhase(control.PhaseSetup)
	}
	for _, p := range phases {
		progress(Progress{Phase: p, Figures: func(st *control.MigrationStatus) { st.Round = 1 }})
		if onPhase != nil {
			onPhase(p)
		}
	}
	return sent, f.Pause()
}

func (f *fakeEngine) ResumeSource() error {
	f.mu.Lock()
	f.resumes++
	f.mu.Unlock()
	return f.Resume()
}

func (f *fakeEngine) Receive(ctx context.Context, first net.Conn, more func(context.Context) (net.Conn, error), o ReceiveOptions) (Received, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.recvID == (pagexfer.ID{}) {
		return Received{}, errors.New("fake engine: no image")
	}
	f.built = true
	return Received{Image: Image{ID: f.recvID, Totals: pagexfer.Totals{Rounds: 1, DataPages: 2}}}, nil
}

func (f *fakeEngine) Restore(ctx context.Context, r *os.File) error {
	return errors.New("fake engine: no image")
}

// fakeState is what a fakeEngine was asked to do.
type fakeState struct {
	started, paused, stopped bool
	resumes, throttle        int
	killed                   int
}

func (f *fakeEngine) snapshot() fakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeState{started: f.started, paused: f.paused, stopped: f.stopped, resumes: f.resumes, throttle: f.throttle, killed: f.killed}
}

// fakeVMM serves a VMM over a fake engine on a control socket. The exit
// channel delivers what Serve returned.
type fakeVMM struct {
	v    *VMM
	eng  *fakeEngine
	c    *control.Client
	dir  string
	exit chan control.Exit
	logs *observer.ObservedLogs
}

func startFake(t *testing.T, eng *fakeEngine) *fakeVMM {
	t.Helper()
	return startFakeWith(t, eng, nil)
}

// startFakeWith is startFake with the options changed by with (when not
// nil) before the start.
func startFakeWith(t *testing.T, eng *fakeEngine, with func(*Options)) *fakeVMM {
	t.Helper()
	engines["fake"] = func(EngineConfig) (Engine, error) { return eng, nil }
	t.Cleanup(func() { delete(engines, "fake") })
	core, logs := observer.New(zap.InfoLevel)
	dir := t.TempDir()
	o := Options{Name: "fake", UUID: "00000000-0000-0000-0000-00000000000f", Engine: "fake",
		MemoryBytes: 2 << 20, Dir: dir, Socket: filepath.Join(dir, "ctl"), Log: zap.New(core)}
	if with != nil {
		with(&o)
	}
	v, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeVMM{v: v, eng: eng, dir: dir, exit: make(chan control.Exit, 1), logs: logs}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { f.exit <- v.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-f.exit
	})
	for f.c == nil {
		if f.c, err = control.Dial(context.Background(), o.Socket); err != nil {
			select {
			case e := <-f.exit:
				t.Fatalf("VMM ended before serving: %+v", e)
			case <-time.After(time.Millisecond):
			}
		}
	}
	t.Cleanup(func() { f.c.Close() })
	return f
}

func (f *fakeVMM) call(t *testing.T, req control.Request, files ...*os.File) *control.Response {
	t.Helper()
	r, err := f.c.CallFiles(context.Background(), req, files...)
	if err != nil {
		t.Fatalf("%s: %v", req.Op, err)
	}
	return r
}

func (f *fakeVMM) state(t *testing.T) control.State {
	t.Helper()
	return f.call(t, control.Request{Op: control.OpInfo}).Info.State
}

// ended waits for the VMM to end and checks its exit record.
func (f *fakeVMM) ended(t *testing.T, want control.ExitReason) {
	t.Helper()
	e := <-f.exit
	if e.Reason != want {
		t.Fatalf("Serve ended with %+v, want %s", e, want)
	}
	rec, err := control.ReadExit(filepath.Join(f.dir, control.ExitFile))
	if err != nil || rec.Reason != want || rec.PID != os.Getpid() {
		t.Fatalf("exit record %+v (%v), want reason %s", rec, err, want)
	}
	f.exit <- e // for the cleanup
}

// migration polls migrate-status until the migration has finished.
func (f *fakeVMM) migration(t *testing.T) control.MigrationStatus {
	t.Helper()
	for {
		st := f.call(t, control.Request{Op: control.OpMigrateStatus}).Migration
		if st.Phase.Finished() {
			return *st
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEngineStatesThroughSocket: the agent's pause, resume and throttle
// reach the engine and Info says what the machine does.
func TestEngineStatesThroughSocket(t *testing.T) {
	f := startFake(t, newFakeEngine())
	info := f.call(t, control.Request{Op: control.OpInfo}).Info
	if info.State != control.StateRunning || info.Engine != "fake" || info.ResidentBytes != 8192 || info.Writes != 0 {
		t.Fatalf("info of a booted fake: %+v", info)
	}
	if s := f.call(t, control.Request{Op: control.OpPause}).Info.State; s != control.StatePaused || !f.eng.snapshot().paused {
		t.Fatalf("after pause: state %s, engine %+v", s, f.eng.snapshot())
	}
	if s := f.call(t, control.Request{Op: control.OpResume}).Info.State; s != control.StateRunning || f.eng.snapshot().paused {
		t.Fatalf("after resume: state %s, engine %+v", s, f.eng.snapshot())
	}
	if th := f.call(t, control.Request{Op: control.OpThrottle, Percent: 30}).Info.Throttle; th != 30 || f.eng.snapshot().throttle != 30 {
		t.Fatalf("after throttle: info %d%%, engine %+v", th, f.eng.snapshot())
	}
}

// TestEngineShutdownDestroyCrash: each way a VMM ends leaves the exit
// record with its reason, and the engine stopped.
func TestEngineShutdownDestroyCrash(t *testing.T) {
	for _, c := range []struct {
		op   string
		want control.ExitReason
	}{{control.OpShutdown, control.ExitShutdown}, {control.OpDestroy, control.ExitDestroyed}, {"", control.ExitCrashed}} {
		t.Run(string(c.want), func(t *testing.T) {
			f := startFake(t, newFakeEngine())
			if c.op == "" {
				f.eng.crash(errors.New("guest fault"))
			} else {
				f.call(t, control.Request{Op: c.op})
				if s := f.v.info().State; s != control.StateStopping {
					t.Fatalf("after %s: state %s", c.op, s)
				}
			}
			f.ended(t, c.want)
			if !f.eng.snapshot().stopped {
				t.Fatal("the engine was not stopped")
			}
		})
	}
}

// socketPair returns the VMM's end of a connection (to hand over) and
// the test's end, playing the target.
func socketPair(t *testing.T) (*os.File, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours := os.NewFile(uintptr(fds[0]), "vmm-end")
	peerFile := os.NewFile(uintptr(fds[1]), "target-end")
	peer, err := net.FileConn(peerFile)
	peerFile.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ours.Close(); peer.Close() })
	return ours, peer
}

// TestEngineSendFailsResumesSource: a send whose image the target
// refuses ends failed, with the guest given back to the source (the
// runtime calls ResumeSource) and the VMM still serving it; a send whose
// engine fails ends failed without the VMM ending either.
func TestEngineSendFailsResumesSource(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	id, _ := pagexfer.NewID()
	ours, target := socketPair(t)
	if err := pagexfer.WriteFailed(target, id, "page 7 does not check"); err != nil {
		t.Fatal(err)
	}
	f.call(t, control.Request{Op: control.OpMigrateSend, Migration: id.String(), Live: true, Target: "peer"}, ours)
	st := f.migration(t)
	if st.Phase != control.PhaseFailed || st.Error == "" || st.DataPages != 2 {
		t.Fatalf("refused image: %+v", st)
	}
	if e := eng.snapshot(); e.resumes != 1 || e.paused {
		t.Fatalf("after a refused image the engine is %+v, want resumed once", e)
	}
	if s := f.state(t); s != control.StateRunning {
		t.Fatalf("state %s after the failed migration", s)
	}

	eng.mu.Lock()
	eng.sendErr = errors.New("stream broke")
	eng.mu.Unlock()
	ours, _ = socketPair(t)
	f.call(t, control.Request{Op: control.OpMigrateSend, Migration: id.String()}, ours)
	if st := f.migration(t); st.Phase != control.PhaseFailed || st.Error != "stream broke" {
		t.Fatalf("failed send: %+v", st)
	}
	if s := f.state(t); s != control.StateRunning {
		t.Fatalf("state %s after the failed send", s)
	}
}

// TestEngineIllegalPhaseRefused: an engine that reports a phase the
// save's table does not have (pre-copy: a save is never live) gets the
// step refused and logged; the save goes on and completes.
func TestEngineIllegalPhaseRefused(t *testing.T) {
	eng := newFakeEngine()
	eng.sendPhases = []control.Phase{control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent}
	f := startFake(t, eng)
	img := filepath.Join(t.TempDir(), "img")
	f.call(t, control.Request{Op: control.OpSave, Path: img})
	if st := f.migration(t); st.Phase != control.PhaseCompleted {
		t.Fatalf("save: %+v", st)
	}
	f.ended(t, control.ExitSaved)
	refused := f.logs.FilterMessage("migration phase step refused").All()
	if len(refused) != 1 {
		t.Fatalf("refused steps logged: %v", refused)
	}
	if err, _ := refused[0].ContextMap()["error"].(string); err != "saving VMM: a migration in phase setup cannot go to precopy" {
		t.Fatalf("refusal logged as %q", err)
	}
}

// TestPhasesMoveOnlyThroughTable: a step the role's table refuses leaves
// the phase and the rest of the status as they were.
func TestPhasesMoveOnlyThroughTable(t *testing.T) {
	p := phases{role: control.TargetVMM, log: zap.NewNop(), st: control.MigrationStatus{Phase: control.PhaseReceiving}}
	if p.move(control.PhaseRunning, func(st *control.MigrationStatus) { st.Error = "applied" }) {
		t.Fatal("receiving to running (no verified, no commit) was allowed")
	}
	if st := p.status(); st.Phase != control.PhaseReceiving || st.Error != "" {
		t.Fatalf("after a refused step: %+v", st)
	}
	p.update(func(st *control.MigrationStatus) { st.Phase, st.Round = control.PhaseRunning, 3 })
	if st := p.status(); st.Phase != control.PhaseReceiving || st.Round != 3 {
		t.Fatalf("update changed the phase: %+v", st)
	}
	if !p.move(control.PhaseVerified, nil) || !p.move(control.PhaseRunning, nil) {
		t.Fatalf("the target's own steps were refused: %+v", p.status())
	}
}
