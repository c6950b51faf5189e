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

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Options describe the domain one VMM runs.
type Options struct {
	Name        string
	UUID        string
	Engine      string // a name in the engines table: EngineKVM or EngineSim
	MemoryBytes uint64 // as the vm.cfg says; the engine may round it up
	VCPUs       int
	// Config is the domain's vm.cfg, for the engine's own options (the
	// workload engines' workload spec); nil: the engine's defaults.
	Config *vmcfg.Config
	// EngineBinary is the engine's program ("" for its default) and Accel
	// its accelerator ("" for the engine's own choice); see EngineConfig.
	EngineBinary string
	Accel        string
	// MemoryBacking is the guest memory's pages: auto ("" too), 4k,
	// hugetlb or thp (see EngineConfig).
	MemoryBacking string
	// Dir is the domain's directory: console.log and exit.json go there.
	Dir string
	// Socket is the control socket path.
	Socket string
	// ConsoleRing is the size of the in-memory console (default 256 KiB);
	// ConsoleFileLimit bounds console.log (default 4 MiB).
	ConsoleRing      int
	ConsoleFileLimit int64
	// Log receives the VMM's own log lines (none when nil).
	Log *zap.Logger
	// Mode says how the machine comes to life: booted fresh, received
	// from a migration source (Incoming), or restored from a save image
	// at RestorePath.
	Mode        Mode
	RestorePath string
	// RunUntil and Generation are the domain's lease from the start (as
	// an OpLease would give it, see lease.go): the guest is fenced if it
	// is still running at RunUntil (zero: no fencing). The timer runs
	// from before the machine boots.
	RunUntil   control.Monotonic
	Generation int64
	// Host is this host's name in the domain's pool ("" for the system's
	// host name); see EngineConfig.Host.
	Host string
}

// Mode is how a VMM gets its machine.
type Mode int

// Modes.
const (
	ModeBoot Mode = iota
	ModeIncoming
	ModeRestore
)

// OptionsFromConfig maps a vm.cfg onto Options. What is one engine's own
// (the workload spec, the rounding of memory) the engine reads from the
// vm.cfg itself as it is made, and refuses there.
func OptionsFromConfig(c *vmcfg.Config, engine, dir, socket string) Options {
	return Options{
		Name:        c.Name,
		UUID:        c.UUID,
		Engine:      engine,
		MemoryBytes: uint64(c.Memory) << 20,
		VCPUs:       c.VCPUs,
		Config:      c,
		Dir:         dir,
		Socket:      socket,
		// The vm.cfg's own; the agent gives the host's default when it
		// has none (ovs-vmm --memory-backing).
		MemoryBacking: c.MemoryBacking,
	}
}

// VMM is one running domain.
type VMM struct {
	opts    Options
	log     *zap.Logger
	console *Console
	engine  Engine
	started time.Time

	mu       sync.Mutex
	up       bool // the engine's machine has started
	state    control.State
	throttle int
	lastAt   time.Time
	lastW    uint64
	out      *outgoing // the migration or save in progress
	in       *incoming // the incoming migration
	est      estimates // the dry run's measurements (estimate.go)
	lease    lease     // the domain's lease and fence (lease.go)
	// ending: the VMM is to end (end was called: destroy, migrated,
	// saved, a failed incoming, a fence's kill); nothing it runs is
	// fenced any more.
	ending bool
	// poweringOff: the guest was asked to power off (the ACPI button)
	// and has not yet; it runs until it has, and is fenced as any other.
	poweringOff bool

	// leaseMu serialises what the lease does to the engine (fence,
	// renewal); it is taken before mu, never while holding it.
	leaseMu sync.Mutex

	quit chan control.Exit // the VMM is to end, and why
}

// Start prepares the VMM: it makes the engine, and for ModeBoot boots the
// machine; for ModeRestore it reads the save image first; for
// ModeIncoming the machine comes with the migration.
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
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if !o.RunUntil.IsZero() && o.RunUntil.Until() <= 0 {
		return nil, fmt.Errorf("the domain's lease ran out %v ago (its run-until time has passed): not started; its pool must renew the lease first",
			-o.RunUntil.Until().Round(time.Millisecond))
	}
	v := &VMM{opts: o, log: o.Log, state: control.StateIncoming, quit: make(chan control.Exit, 1)}
	var err error
	v.console, err = NewConsole(o.ConsoleRing, filepath.Join(o.Dir, control.ConsoleFile), o.ConsoleFileLimit)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	v.started = time.Now()
	v.lastAt = v.started
	v.engine, err = newEngine(o.Engine, EngineConfig{Name: o.Name, UUID: o.UUID, MemoryBytes: o.MemoryBytes, VCPUs: o.VCPUs,
		Console: v.console, Config: o.Config, Dir: o.Dir, Binary: o.EngineBinary, Accel: o.Accel, Generation: o.Generation,
		MemoryBacking: o.MemoryBacking, Host: o.Host})
	if err == nil {
		v.mu.Lock()
		v.lease.generation, v.lease.runUntil = o.Generation, o.RunUntil
		v.arm()
		v.mu.Unlock()
	}
	switch {
	case err != nil:
	case o.Mode == ModeBoot:
		if err = v.engine.Boot(); err == nil {
			v.running()
		}
	case o.Mode == ModeRestore:
		err = v.restore(o.RestorePath)
	}
	if err != nil {
		v.mu.Lock()
		v.lease.runUntil = 0
		v.arm() // stops the timer
		v.mu.Unlock()
		v.console.Close()
		return nil, err
	}
	return v, nil
}

// running records that the engine's machine runs.
func (v *VMM) running() {
	// The dirty-rate baseline is the machine's write counter as it starts:
	// a restored or received machine carries the counter of its whole life
	// on the source, and counting from zero would report every one of those
	// writes as dirtied in the first sample (a spike of 100,000+ MiB/s).
	w := v.engine.Stats().WrittenBytes
	v.mu.Lock()
	v.up = true
	v.stepLocked(control.StateRunning)
	v.lastAt, v.lastW = time.Now(), w
	v.mu.Unlock()
	// A lease that ran out before the machine came keeps it stopped.
	v.holdFence()
}

// restore reads a save image and starts the machine from it.
func (v *VMM) restore(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if err := v.engine.Restore(context.Background(), f); err != nil {
		return err
	}
	if err := v.engine.Start(); err != nil {
		return err
	}
	v.running()
	return nil
}

// abandoner is an engine whose machine runs in another process that it
// can end without waiting for it (the qemu engine): once the guest runs
// on the target, the VMM exits without waiting for the teardown of the
// machine's memory.
type abandoner interface{ Abandon() }

// Serve answers the control socket until the machine ends or the VMM is
// asked to end, then records the exit and returns it.
func (v *VMM) Serve(ctx context.Context) control.Exit {
	l, err := listenControl(v.opts.Socket)
	if err != nil {
		v.engine.Stop()
		return v.finish(control.Exit{Reason: control.ExitFailedToStart, Detail: err.Error(), Code: 1})
	}
	go control.Serve(l, v.handle)
	defer l.Close()

	var e control.Exit
	select {
	case <-v.engine.Done():
		if ex, ok := v.fenceExit(); ok {
			e = ex
		} else if err := v.engine.Err(); errors.Is(err, ErrGuestRebooted) {
			e = control.Exit{Reason: control.ExitRebooted, Code: 0}
		} else if err != nil {
			e = control.Exit{Reason: control.ExitCrashed, Detail: err.Error(), Code: 2}
		} else {
			e = control.Exit{Reason: control.ExitShutdown, Code: 0}
		}
	case e = <-v.quit:
	case <-ctx.Done():
		e = control.Exit{Reason: control.ExitShutdown, Detail: "signal"}
	}
	// The VMM ends: no fence from here (the engine's stop, and Close's
	// grace after it, are not to be cut short by a kill).
	v.finishLease()
	// Not after a save: the killed QEMU holds its taps until its address
	// space is torn down, and a restore right after the save makes taps
	// of the same names.
	if e.Reason == control.ExitMigrated {
		if a, ok := v.engine.(abandoner); ok {
			a.Abandon()
		}
	}
	if err := v.engine.Stop(); err != nil && e.Detail == "" && e.Reason == control.ExitShutdown {
		e.Detail = err.Error()
	}
	return v.finish(e)
}

// end asks Serve to finish with e (the first request wins).
func (v *VMM) end(e control.Exit) {
	v.mu.Lock()
	v.ending = true
	v.mu.Unlock()
	select {
	case v.quit <- e:
	default:
	}
}

// isUp says whether the engine's machine has started.
func (v *VMM) isUp() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.up
}

func (v *VMM) finish(e control.Exit) control.Exit {
	e.Time = time.Now().UTC()
	e.PID = os.Getpid()
	if tail := v.consoleTail(2048); tail != "" && e.Reason == control.ExitCrashed {
		e.Detail += "; console: " + tail
	}
	_ = control.WriteExit(filepath.Join(v.opts.Dir, control.ExitFile), e)
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
	switch req.Op {
	case control.OpInfo:
		return control.Response{Info: v.info()}
	case control.OpConsole:
		return v.readConsole(req)
	case control.OpDestroy:
		return v.stop(req)
	case control.OpLease:
		return v.handleLease(req)
	}
	if !v.isUp() {
		return failed(fmt.Errorf("%s: the machine is not running yet (waiting for an incoming migration)", req.Op))
	}
	switch req.Op {
	case control.OpPause, control.OpResume, control.OpThrottle:
		return v.steer(req)
	case control.OpShutdown:
		return v.shutdown(req)
	case control.OpConsoleInput:
		return v.consoleInput(req)
	case control.OpSetMemory:
		if err := v.engine.SetMemory(req.MemoryBytes); err != nil {
			return failed(err)
		}
		return control.Response{Info: v.info()}
	case control.OpEstimate:
		return v.handleEstimate(req)
	}
	return failed(fmt.Errorf("unknown operation %q", req.Op))
}

// failed is the answer to a request that failed with err.
func failed(err error) control.Response { return control.Response{Error: err.Error()} }

// steer pauses, resumes or throttles the machine.
func (v *VMM) steer(req control.Request) control.Response {
	switch req.Op {
	case control.OpPause:
		// The operator's pause takes a fenced guest over: a renewed
		// lease no longer resumes it.
		v.leaseMu.Lock()
		defer v.leaseMu.Unlock()
		if err := v.engine.Pause(); err != nil {
			return failed(err)
		}
		v.setState(control.StatePaused)
	case control.OpResume:
		// Past the lease's run-until time only a renewal resumes.
		v.leaseMu.Lock()
		defer v.leaseMu.Unlock()
		if err := v.refuseFenced("resume"); err != nil {
			return failed(err)
		}
		if err := v.resumeEngine(); err != nil {
			return failed(err)
		}
		v.setState(control.StateRunning)
	case control.OpThrottle:
		if err := v.engine.SetThrottle(req.Percent); err != nil {
			return failed(err)
		}
		v.mu.Lock()
		v.throttle = req.Percent
		v.mu.Unlock()
	}
	return control.Response{Info: v.info()}
}

// stop ends the VMM (shutdown or destroy).
func (v *VMM) stop(req control.Request) control.Response {
	reason := control.ExitShutdown
	if req.Op == control.OpDestroy {
		reason = control.ExitDestroyed
	}
	v.end(control.Exit{Reason: reason}) // ending first: no fence pauses it
	v.setState(control.StateStopping)
	return control.Response{}
}

// shutdown asks the guest to power itself off; the VMM ends when it has
// (the agent destroys it after its timeout). A guest without an ACPI
// button is stopped by the VMM itself, as before.
func (v *VMM) shutdown(req control.Request) control.Response {
	err := v.engine.Shutdown()
	if errors.Is(err, ErrUnsupported) {
		return v.stop(req)
	}
	if err != nil {
		return failed(err)
	}
	v.mu.Lock()
	v.poweringOff = true
	// A fenced guest stays fenced (its vCPUs stopped, the button
	// pressed): the renewal resumes it, and it powers off then.
	if v.state != control.StateFenced {
		v.stepLocked(control.StateStopping)
	}
	v.mu.Unlock()
	return control.Response{}
}

// consoleInput types the request's bytes into the guest's console.
func (v *VMM) consoleInput(req control.Request) control.Response {
	data := req.Bytes
	if len(data) == 0 {
		data = []byte(req.Data) // an agent older than Bytes
	}
	if len(data) > control.MaxConsoleInput {
		return failed(fmt.Errorf("console input: %d bytes at once, at most %d", len(data), control.MaxConsoleInput))
	}
	if err := v.engine.ConsoleInput(data); err != nil {
		return failed(err)
	}
	return control.Response{}
}

func (v *VMM) readConsole(req control.Request) control.Response {
	max := req.Max
	if max <= 0 || max > 1<<20 {
		max = 1 << 20
	}
	start, data, next := v.console.Read(req.Offset, max)
	return control.Response{Console: &control.Console{Offset: start, Data: string(data), Next: next}}
}

// setState moves the VMM to state s through control.StateStep; a step
// the table refuses is logged and leaves the state as it was.
func (v *VMM) setState(s control.State) {
	v.mu.Lock()
	v.stepLocked(s)
	v.mu.Unlock()
}

// moveState is setState (a name for the lease's steps).
func (v *VMM) moveState(s control.State) { v.setState(s) }

// stepLocked is setState with v.mu held.
func (v *VMM) stepLocked(s control.State) {
	next, err := control.StateStep(v.state, s)
	if err != nil {
		v.log.Error("VMM state step refused", zap.Error(err))
	}
	v.state = next
}

// fenceExit is the exit of a machine the fence killed.
func (v *VMM) fenceExit() (control.Exit, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.lease.killed {
		return control.Exit{}, false
	}
	return control.Exit{Reason: control.ExitFenced, Detail: v.lease.detail, Code: 3}, true
}

func (v *VMM) info() *control.Info {
	up := v.isUp()
	var st Stats
	if up {
		st = v.engine.Stats()
	}
	now := time.Now()
	v.mu.Lock()
	rate := 0.0
	if dt := now.Sub(v.lastAt).Seconds(); dt > 0 && st.WrittenBytes >= v.lastW {
		rate = float64(st.WrittenBytes-v.lastW) / dt
	}
	if now.Sub(v.lastAt) >= 500*time.Millisecond {
		v.lastAt, v.lastW = now, st.WrittenBytes
	}
	info := &control.Info{
		Name:        v.opts.Name,
		UUID:        v.opts.UUID,
		PID:         os.Getpid(),
		Engine:      v.opts.Engine,
		State:       v.state,
		MemoryBytes: v.engine.MemoryBytes(),
		VCPUs:       v.opts.VCPUs,
		Started:     v.started.UTC(),
		DirtyRate:   rate,
		Throttle:    v.throttle,
		ConsoleEnd:  v.console.End(),
	}
	v.leaseInfo(info)
	out := v.out
	v.mu.Unlock()
	if w := st.Workload; w != nil {
		info.Writes, info.Verified, info.Rounds, info.Corrupt = w.Writes, w.Verified, w.Rounds, w.Corrupt
	}
	if out != nil && out.status().Phase.PausesGuest() {
		info.PausedFor = control.PausedForMigration
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		info.CPUTime = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	info.CPUTime += st.CPUTime
	info.DiskReadBytes, info.DiskWriteBytes = st.DiskReadBytes, st.DiskWriteBytes
	info.DiskReadOps, info.DiskWriteOps = st.DiskReadOps, st.DiskWriteOps
	info.NetRxBytes, info.NetTxBytes = st.NetRxBytes, st.NetTxBytes
	f := v.engine.Facts()
	info.Accel, info.EngineVersion, info.Machine, info.CPUModel, info.VNC = f.Accel, f.Version, f.Machine, f.CPUModel, f.VNC
	info.BalloonBytes, info.MaxMemoryBytes = f.BalloonBytes, f.MaxMemoryBytes
	info.MemoryBacking, info.MemoryBackingWhy = f.MemoryBacking, f.MemoryBackingWhy
	if up {
		if n, err := v.engine.ResidentBytes(); err == nil {
			info.ResidentBytes = n
		}
	}
	return info
}

// Close releases guest memory.
func (v *VMM) Close() error { return v.engine.Close() }
