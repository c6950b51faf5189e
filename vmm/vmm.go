package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/kvm"
	"github.com/ovs-agent/ovs-agent/vmm/kvmengine"
	"github.com/ovs-agent/ovs-agent/vmm/simengine"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// Engine names.
const (
	EngineKVM = "kvm"
	EngineSim = "sim"
)

// Files a VMM keeps in its domain directory.
const (
	ConsoleFile = "console.log"
	ExitFile    = "exit.json"
)

// Options describe the domain one VMM runs.
type Options struct {
	Name        string
	UUID        string
	Engine      string // EngineKVM or EngineSim
	MemoryBytes uint64 // a multiple of 2 MiB
	VCPUs       int
	Workload    workload.Params
	// Dir is the domain's directory: console.log and exit.json go there.
	Dir string
	// Socket is the control socket path.
	Socket string
	// ConsoleRing is the size of the in-memory console (default 256 KiB);
	// ConsoleFileLimit bounds console.log (default 4 MiB).
	ConsoleRing      int
	ConsoleFileLimit int64
	// Mode says how the machine comes to life: booted fresh, received
	// from a migration source (Incoming), or restored from a save image
	// at RestorePath.
	Mode        Mode
	RestorePath string
}

// Mode is how a VMM gets its machine.
type Mode int

// Modes.
const (
	ModeBoot Mode = iota
	ModeIncoming
	ModeRestore
)

// OptionsFromConfig maps a vm.cfg onto Options. Memory is rounded up to a
// whole 2 MiB. The workload spec (parsed by vmcfg, the one grammar for it)
// becomes workload parameters, checked against the guest's memory.
func OptionsFromConfig(c *vmcfg.Config, engine, dir, socket string) (Options, error) {
	o := Options{
		Name:        c.Name,
		UUID:        c.UUID,
		Engine:      engine,
		MemoryBytes: roundUp(uint64(c.Memory)<<20, workload.RAMAlign),
		VCPUs:       c.VCPUs,
		Dir:         dir,
		Socket:      socket,
	}
	p, err := workload.ParamsFromSpec(c.WorkloadSpec, o.MemoryBytes)
	if err != nil {
		return o, fmt.Errorf("%s: %w", c.Name, err)
	}
	o.Workload = p
	return o, nil
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// VMM is one running domain.
type VMM struct {
	opts    Options
	console *Console
	started time.Time

	mu       sync.Mutex
	ram      *guestmem.RAM
	machine  workload.Machine
	ended    chan struct{} // closed when the machine has ended
	state    control.State
	throttle int
	lastAt   time.Time
	lastW    uint64
	out      *outgoing // the migration or save in progress
	in       *incoming // the incoming migration
	est      estimates // the dry run's measurements (estimate.go)

	quit chan control.Exit // the VMM is to end, and why
}

// Start prepares the VMM: for ModeBoot it creates guest memory and the
// machine and starts the vCPUs; for ModeRestore it reads the save image
// first; for ModeIncoming the machine comes with the migration.
func Start(o Options) (*VMM, error) {
	if o.ConsoleRing <= 0 {
		o.ConsoleRing = 256 << 10
	}
	if o.ConsoleFileLimit <= 0 {
		o.ConsoleFileLimit = 4 << 20
	}
	if o.VCPUs <= 0 {
		o.VCPUs = 1
	}
	v := &VMM{opts: o, state: control.StateIncoming, quit: make(chan control.Exit, 1), ended: make(chan struct{})}
	var err error
	v.console, err = NewConsole(o.ConsoleRing, filepath.Join(o.Dir, ConsoleFile), o.ConsoleFileLimit)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	v.started = time.Now()
	v.lastAt = v.started
	switch o.Mode {
	case ModeBoot:
		ram, err := guestmem.NewRAM("ovs-vmm:"+o.Name, o.MemoryBytes)
		if err == nil {
			err = v.run(ram, nil)
		}
		if err != nil {
			v.console.Close()
			return nil, err
		}
	case ModeRestore:
		if err := v.restore(o.RestorePath); err != nil {
			v.console.Close()
			return nil, err
		}
	}
	return v, nil
}

// run builds the machine over ram (from state when not nil) and starts it.
func (v *VMM) run(ram *guestmem.RAM, state []byte) error {
	m, err := v.build(ram, state)
	if err != nil {
		return err
	}
	return v.start(ram, m)
}

// build makes the machine over ram (from state when not nil) without
// starting it; on failure ram is closed.
func (v *VMM) build(ram *guestmem.RAM, state []byte) (workload.Machine, error) {
	var m workload.Machine
	var err error
	switch v.opts.Engine {
	case EngineKVM:
		m, err = kvmengine.New(kvmengine.Config{RAM: ram, Params: v.opts.Workload, Console: v.console, State: state})
	case EngineSim:
		m, err = simengine.New(simengine.Config{RAM: ram, Params: v.opts.Workload, Console: v.console, State: state})
	default:
		err = fmt.Errorf("unknown engine %q (want %s or %s)", v.opts.Engine, EngineKVM, EngineSim)
	}
	if err != nil {
		ram.Close()
		return nil, fmt.Errorf("start %s engine: %w", v.opts.Engine, err)
	}
	return m, nil
}

// prepared is a kvm machine made ahead of its memory (the VM, its slots
// and vCPU), waiting for the saved state: an incoming migration makes it
// while the pages arrive, so that the guest's pause only pays for loading
// the vCPU state.
type prepared struct {
	done chan struct{}
	m    *kvmengine.Machine
	err  error
}

// prepare starts making the machine over ram in the background; nil for
// an engine with nothing to make ahead.
func (v *VMM) prepare(ram *guestmem.RAM) *prepared {
	if v.opts.Engine != EngineKVM {
		return nil
	}
	p := &prepared{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.m, p.err = kvmengine.Prepare(kvmengine.Config{RAM: ram, Console: v.console})
	}()
	return p
}

// discard stops a prepared machine that will not run.
func (p *prepared) discard() {
	if p == nil {
		return
	}
	<-p.done
	if p.m != nil {
		_ = p.m.Stop()
	}
}

// buildOn is build for a machine prepare began: it loads state into it,
// or builds from scratch when preparing failed. On failure ram is closed.
func (v *VMM) buildOn(p *prepared, ram *guestmem.RAM, state []byte) (workload.Machine, error) {
	if p == nil {
		return v.build(ram, state)
	}
	<-p.done
	if p.err != nil {
		return v.build(ram, state)
	}
	if err := p.m.Restore(state); err != nil {
		_ = p.m.Stop()
		ram.Close()
		return nil, fmt.Errorf("start %s engine: %w", v.opts.Engine, err)
	}
	return p.m, nil
}

// start starts a machine build made and makes it this VMM's; on failure
// the machine is stopped and ram closed.
func (v *VMM) start(ram *guestmem.RAM, m workload.Machine) error {
	if err := m.Start(); err != nil {
		_ = m.Stop()
		ram.Close()
		return fmt.Errorf("start %s engine: %w", v.opts.Engine, err)
	}
	// The dirty-rate baseline is the machine's write counter as it starts:
	// a restored or received machine carries the counter of its whole life
	// on the source, and counting from zero would report every one of those
	// writes as dirtied in the first sample (a spike of 100,000+ MiB/s).
	w := m.Stats().Writes
	v.mu.Lock()
	v.ram, v.machine, v.state = ram, m, control.StateRunning
	v.lastAt, v.lastW = time.Now(), w
	v.mu.Unlock()
	go func() {
		<-m.Done()
		close(v.ended)
	}()
	return nil
}

// KVMUsable says whether the kvm engine can run here, and why not.
func KVMUsable() error {
	_, err := kvm.Available("")
	return err
}

// Serve answers the control socket until the machine ends or the VMM is
// asked to end, then records the exit and returns it.
func (v *VMM) Serve(ctx context.Context) control.Exit {
	l, err := listenControl(v.opts.Socket)
	if err != nil {
		if m := v.mach(); m != nil {
			m.Stop()
		}
		return v.finish(control.Exit{Reason: control.ExitFailedToStart, Detail: err.Error(), Code: 1})
	}
	go control.Serve(l, v.handle)
	defer l.Close()

	var e control.Exit
	select {
	case <-v.ended:
		if err := v.mach().Err(); err != nil {
			e = control.Exit{Reason: control.ExitCrashed, Detail: err.Error(), Code: 2}
		} else {
			e = control.Exit{Reason: control.ExitShutdown, Code: 0}
		}
	case e = <-v.quit:
	case <-ctx.Done():
		e = control.Exit{Reason: control.ExitShutdown, Detail: "signal"}
	}
	if m := v.mach(); m != nil {
		if err := m.Stop(); err != nil && e.Detail == "" && e.Reason == control.ExitShutdown {
			e.Detail = err.Error()
		}
	}
	return v.finish(e)
}

// end asks Serve to finish with e (the first request wins).
func (v *VMM) end(e control.Exit) {
	select {
	case v.quit <- e:
	default:
	}
}

func (v *VMM) mach() workload.Machine {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.machine
}

func (v *VMM) finish(e control.Exit) control.Exit {
	e.Time = time.Now().UTC()
	e.PID = os.Getpid()
	if tail := v.consoleTail(2048); tail != "" && e.Reason == control.ExitCrashed {
		e.Detail += "; console: " + tail
	}
	_ = control.WriteExit(filepath.Join(v.opts.Dir, ExitFile), e)
	v.console.Close()
	return e
}

func (v *VMM) consoleTail(n int) string {
	end := v.console.End()
	_, data, _ := v.console.Read(end-int64(n), n)
	return string(data)
}

// listenControl creates the control socket, mode 0600.
func listenControl(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return l, nil
}

func (v *VMM) handle(req control.Request, files []*os.File) control.Response {
	fail := func(err error) control.Response { return control.Response{Error: err.Error()} }
	switch req.Op {
	case control.OpMigrateSend, control.OpMigrateReceive, control.OpSave:
		return v.exclusive(func() control.Response { return v.handleMigration(req, files) })
	case control.OpMigrateStatus, control.OpMigrateCancel, control.OpMigrateCommit, control.OpMigrateAbort, control.OpMigrateResolve:
		return v.handleMigration(req, nil)
	case control.OpMigrateAttach:
		return v.handleMigration(req, files)
	}
	for _, f := range files {
		f.Close()
	}
	m := v.mach()
	if m == nil && req.Op != control.OpInfo && req.Op != control.OpConsole && req.Op != control.OpDestroy {
		return fail(fmt.Errorf("%s: the machine is not running yet (waiting for an incoming migration)", req.Op))
	}
	switch req.Op {
	case control.OpInfo:
		return control.Response{Info: v.info()}
	case control.OpPause:
		if err := m.Pause(); err != nil {
			return fail(err)
		}
		v.setState(control.StatePaused)
		return control.Response{Info: v.info()}
	case control.OpResume:
		if err := m.Resume(); err != nil {
			return fail(err)
		}
		v.setState(control.StateRunning)
		return control.Response{Info: v.info()}
	case control.OpThrottle:
		if err := m.SetThrottle(req.Percent); err != nil {
			return fail(err)
		}
		v.mu.Lock()
		v.throttle = req.Percent
		v.mu.Unlock()
		return control.Response{Info: v.info()}
	case control.OpShutdown, control.OpDestroy:
		v.setState(control.StateStopping)
		reason := control.ExitShutdown
		if req.Op == control.OpDestroy {
			reason = control.ExitDestroyed
		}
		v.end(control.Exit{Reason: reason})
		return control.Response{}
	case control.OpEstimate:
		return v.handleEstimate(req)
	case control.OpConsole:
		max := req.Max
		if max <= 0 || max > 1<<20 {
			max = 1 << 20
		}
		start, data, next := v.console.Read(req.Offset, max)
		return control.Response{Console: &control.Console{Offset: start, Data: string(data), Next: next}}
	}
	return fail(fmt.Errorf("unknown operation %q", req.Op))
}

func (v *VMM) setState(s control.State) {
	v.mu.Lock()
	v.state = s
	v.mu.Unlock()
}

func (v *VMM) info() *control.Info {
	var st workload.Stats
	if m := v.mach(); m != nil {
		st = m.Stats()
	}
	now := time.Now()
	v.mu.Lock()
	ram := v.ram
	rate := 0.0
	if dt := now.Sub(v.lastAt).Seconds(); dt > 0 && st.Writes >= v.lastW {
		rate = float64(st.Writes-v.lastW) * workload.PageSize / dt
	}
	if now.Sub(v.lastAt) >= 500*time.Millisecond {
		v.lastAt, v.lastW = now, st.Writes
	}
	info := &control.Info{
		Name:        v.opts.Name,
		UUID:        v.opts.UUID,
		PID:         os.Getpid(),
		Engine:      v.opts.Engine,
		State:       v.state,
		MemoryBytes: v.opts.MemoryBytes,
		VCPUs:       v.opts.VCPUs,
		Started:     v.started.UTC(),
		DirtyRate:   rate,
		Throttle:    v.throttle,
		Writes:      st.Writes,
		Verified:    st.Verified,
		Rounds:      st.Rounds,
		Corrupt:     st.Corrupt,
		ConsoleEnd:  v.console.End(),
	}
	out := v.out
	v.mu.Unlock()
	if out != nil {
		if out.status().Phase.PausesGuest() {
			info.PausedFor = "migration"
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		info.CPUTime = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if ram != nil {
		if pages, err := ram.DataPages(); err == nil {
			info.ResidentBytes = pages * workload.PageSize
		}
	}
	return info
}

// Close releases guest memory.
func (v *VMM) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ram != nil {
		return v.ram.Close()
	}
	return nil
}
