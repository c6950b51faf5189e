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
	"github.com/ovs-agent/ovs-agent/vmm/guest"
	"github.com/ovs-agent/ovs-agent/vmm/kvm"
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
}

// OptionsFromConfig maps a vm.cfg onto Options. Memory is rounded up to a
// whole 2 MiB.
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
	w := c.WorkloadSpec
	p := workload.DefaultParams()
	p.DirtyRate = uint64(w.DirtyBytesPerSec)
	if w.HotBytes == 0 {
		p.HotAll = true
	} else {
		p.HotSize = uint64(w.HotBytes)
	}
	switch w.Pattern {
	case vmcfg.PatternSequential:
		p.Pattern = workload.PatternSequential
	default:
		p.Pattern = workload.PatternRandom
	}
	if w.VerifyEvery > 0 {
		p.VerifyInterval = w.VerifyEvery
	}
	if w.Touch != 0 {
		return o, fmt.Errorf("%s: workload touch= is not supported by this VMM", c.Name)
	}
	if err := p.Validate(); err != nil {
		return o, fmt.Errorf("%s: workload: %w", c.Name, err)
	}
	o.Workload = p
	return o, nil
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// VMM is one running domain.
type VMM struct {
	opts    Options
	ram     *workload.RAM
	machine workload.Machine
	console *Console
	started time.Time

	mu       sync.Mutex
	state    string // running, paused, stopping
	throttle int
	lastAt   time.Time
	lastW    uint64

	quit chan string // reason the control socket asked the VMM to end
}

// Start creates guest memory and the machine and starts the vCPUs.
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
	v := &VMM{opts: o, state: "running", quit: make(chan string, 1)}
	var err error
	v.console, err = NewConsole(o.ConsoleRing, filepath.Join(o.Dir, ConsoleFile), o.ConsoleFileLimit)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	v.ram, err = workload.NewRAM("ovs-vmm:"+o.Name, o.MemoryBytes)
	if err != nil {
		v.console.Close()
		return nil, err
	}
	switch o.Engine {
	case EngineKVM:
		v.machine, err = guest.New(guest.Config{RAM: v.ram, Params: o.Workload, Console: v.console})
	case EngineSim:
		v.machine, err = workload.NewSim(workload.SimConfig{RAM: v.ram, Params: o.Workload, Console: v.console})
	default:
		err = fmt.Errorf("unknown engine %q (want %s or %s)", o.Engine, EngineKVM, EngineSim)
	}
	if err == nil {
		err = v.machine.Start()
	}
	if err != nil {
		v.ram.Close()
		v.console.Close()
		return nil, fmt.Errorf("start %s engine: %w", o.Engine, err)
	}
	v.started = time.Now()
	v.lastAt = v.started
	return v, nil
}

// KVMUsable says whether the kvm engine can run here, and why not.
func KVMUsable() error {
	_, err := kvm.Available("")
	return err
}

// Serve answers the control socket until the machine ends or the agent
// asks the VMM to end, then records the exit and returns it.
func (v *VMM) Serve(ctx context.Context) control.Exit {
	l, err := listenControl(v.opts.Socket)
	if err != nil {
		v.machine.Stop()
		return v.finish(control.Exit{Reason: "failed to start", Detail: err.Error(), Code: 1})
	}
	go control.Serve(l, v.handle)
	defer l.Close()

	var e control.Exit
	select {
	case <-v.machine.Done():
		if err := v.machine.Err(); err != nil {
			e = control.Exit{Reason: "crashed", Detail: err.Error(), Code: 2}
		} else {
			e = control.Exit{Reason: "shutdown", Code: 0}
		}
	case r := <-v.quit:
		e = control.Exit{Reason: r}
		if r == "shutdown" {
			if err := v.machine.Stop(); err != nil {
				e.Detail = err.Error()
			}
		}
	case <-ctx.Done():
		v.machine.Stop()
		e = control.Exit{Reason: "shutdown", Detail: "signal"}
	}
	return v.finish(e)
}

func (v *VMM) finish(e control.Exit) control.Exit {
	e.Time = time.Now().UTC()
	e.PID = os.Getpid()
	if tail := v.consoleTail(2048); tail != "" && e.Reason == "crashed" {
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
	for _, f := range files {
		f.Close()
	}
	fail := func(err error) control.Response { return control.Response{Error: err.Error()} }
	switch req.Op {
	case control.OpInfo:
		return control.Response{Info: v.info()}
	case control.OpPause:
		if err := v.machine.Pause(); err != nil {
			return fail(err)
		}
		v.setState("paused")
		return control.Response{Info: v.info()}
	case control.OpResume:
		if err := v.machine.Resume(); err != nil {
			return fail(err)
		}
		v.setState("running")
		return control.Response{Info: v.info()}
	case control.OpThrottle:
		if err := v.machine.SetThrottle(req.Percent); err != nil {
			return fail(err)
		}
		v.mu.Lock()
		v.throttle = req.Percent
		v.mu.Unlock()
		return control.Response{Info: v.info()}
	case control.OpShutdown, control.OpDestroy:
		v.setState("stopping")
		reason := "shutdown"
		if req.Op == control.OpDestroy {
			reason = "destroyed"
		}
		select {
		case v.quit <- reason:
		default:
		}
		return control.Response{}
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

func (v *VMM) setState(s string) {
	v.mu.Lock()
	v.state = s
	v.mu.Unlock()
}

func (v *VMM) info() *control.Info {
	st := v.machine.Stats()
	now := time.Now()
	v.mu.Lock()
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
	v.mu.Unlock()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		info.CPUTime = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if pages, err := v.ram.DataPages(); err == nil {
		info.ResidentBytes = pages * workload.PageSize
	}
	return info
}

// Close releases guest memory.
func (v *VMM) Close() error { return v.ram.Close() }
