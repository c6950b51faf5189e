package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/kvm"
	"github.com/ovs-agent/ovs-agent/vmm/kvmengine"
	"github.com/ovs-agent/ovs-agent/vmm/simengine"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// workloadEngine is the Engine of the workload guest, for both of its
// engines: a workload.Machine (kvmengine or simengine) over guest RAM that
// it owns, whose image it moves with pagexfer (Send, Receive, SaveTo,
// Restore over its RAM and the machine's dirty log and saved state).
type workloadEngine struct {
	name string
	cfg  EngineConfig
	// memory is the guest's RAM size: the vm.cfg's rounded up to
	// workload.RAMAlign; params are the vm.cfg workload spec's, checked
	// against it (newWorkloadEngine).
	memory uint64
	params workload.Params
	// build makes a machine over ram: fresh, or from a saved state.
	build func(ram *guestmem.RAM, state []byte) (workload.Machine, error)
	// prepare, when not nil, makes a machine over ram ahead of its saved
	// state (kvm: the VM, its slots and vCPU), while an image arrives.
	prepare func(ram *guestmem.RAM) (loader, error)
	// backing is the wished memory backing (auto: the best available
	// when the memory is made, newRAM).
	backing guestmem.Backing

	mu   sync.Mutex
	why  string // why the memory is on its backing (newRAM)
	ram  *guestmem.RAM
	m    workload.Machine
	done chan struct{} // closed when the started machine ended
	last pagexfer.Result
}

// loader is a machine made ahead of its state, that Restore completes.
type loader interface {
	workload.Machine
	Restore(state []byte) error
}

func newKVMEngine(c EngineConfig) (Engine, error) {
	e, err := newWorkloadEngine(EngineKVM, c)
	if err != nil {
		return nil, err
	}
	e.build = func(ram *guestmem.RAM, state []byte) (workload.Machine, error) {
		return kvmengine.New(kvmengine.Config{RAM: ram, Params: e.params, Console: c.Console, State: state})
	}
	e.prepare = func(ram *guestmem.RAM) (loader, error) {
		return kvmengine.Prepare(kvmengine.Config{RAM: ram, Console: c.Console})
	}
	return e, nil
}

// KVMUsable says whether the kvm engine can run here, and why not.
func KVMUsable() error {
	_, err := kvm.Available("")
	return err
}

func newSimEngine(c EngineConfig) (Engine, error) {
	e, err := newWorkloadEngine(EngineSim, c)
	if err != nil {
		return nil, err
	}
	e.build = func(ram *guestmem.RAM, state []byte) (workload.Machine, error) {
		return simengine.New(simengine.Config{RAM: ram, Params: e.params, Console: c.Console, State: state})
	}
	return e, nil
}

// newWorkloadEngine reads the workload engines' own settings from the
// vm.cfg: the guest's memory is rounded up to a whole workload.RAMAlign,
// and the workload spec (parsed by vmcfg, the one grammar for it) becomes
// workload parameters, refused when the guest does not fit that memory.
// Without a vm.cfg the workload is the default spec's.
func newWorkloadEngine(name string, c EngineConfig) (*workloadEngine, error) {
	spec := vmcfg.DefaultWorkload()
	if c.Config != nil {
		spec = c.Config.WorkloadSpec
	}
	e := &workloadEngine{name: name, cfg: c, memory: roundUp(c.MemoryBytes, workload.RAMAlign), done: make(chan struct{})}
	p, err := workload.ParamsFromSpec(spec, e.memory)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	e.params = p
	if e.backing, err = guestmem.ParseBacking(c.MemoryBacking); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return e, nil
}

// newRAM makes the guest's memory on the backing this host gives it now
// (guestmem.Choose over what it has free), for a boot, an incoming
// migration or a restore alike: the backing is this host's choice, never
// the image's.
func (e *workloadEngine) newRAM() (*guestmem.RAM, error) {
	host, err := guestmem.ReadHost()
	if err != nil {
		return nil, fmt.Errorf("guest memory of %s: %w", e.cfg.Name, err)
	}
	b, why, err := guestmem.Choose(e.backing, e.memory, host)
	if err != nil {
		return nil, fmt.Errorf("guest memory of %s: %w", e.cfg.Name, err)
	}
	ram, err := guestmem.NewBackedRAM("ovs-vmm:"+e.cfg.Name, e.memory, b)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.why = why
	e.mu.Unlock()
	return ram, nil
}

// sink is where an image lands in ram: a 4k memfd takes pwrite (the
// kernel allocates each page as the data lands, no fault through a
// mapping), a hugetlbfs one takes no write(2) and a thp one would get 4
// KiB pages from it: those land through the mapping (one fault per 2 MiB).
func sink(ram *guestmem.RAM) pagexfer.Sink {
	if ram.Backing() == guestmem.Backing4K {
		return pagexfer.NewFdSink(ram.Fd(), ram.Size())
	}
	return ram
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func (e *workloadEngine) MemoryBytes() uint64 { return e.memory }

// machine returns the machine and its memory (nil before one is built).
func (e *workloadEngine) machine() (workload.Machine, *guestmem.RAM) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m, e.ram
}

func (e *workloadEngine) errNone(op string) error {
	return fmt.Errorf("%s engine: %s: no machine", e.name, op)
}

// makeMachine builds the machine over ram (from state when not nil) and makes it
// the engine's, not started; on failure ram is closed.
func (e *workloadEngine) makeMachine(ram *guestmem.RAM, state []byte) error {
	m, err := e.build(ram, state)
	if err != nil {
		ram.Close()
		return fmt.Errorf("start %s engine: %w", e.name, err)
	}
	e.set(ram, m)
	return nil
}

func (e *workloadEngine) set(ram *guestmem.RAM, m workload.Machine) {
	e.mu.Lock()
	e.ram, e.m = ram, m
	e.mu.Unlock()
}

func (e *workloadEngine) Boot() error {
	ram, err := e.newRAM()
	if err != nil {
		return err
	}
	if err := e.makeMachine(ram, nil); err != nil {
		return err
	}
	return e.Start()
}

func (e *workloadEngine) Start() error {
	m, ram := e.machine()
	if m == nil {
		return e.errNone("start")
	}
	if err := m.Start(); err != nil {
		_ = m.Stop()
		ram.Close()
		e.set(nil, nil)
		return fmt.Errorf("start %s engine: %w", e.name, err)
	}
	go func() {
		<-m.Done()
		close(e.done)
	}()
	return nil
}

func (e *workloadEngine) Pause() error {
	if m, _ := e.machine(); m != nil {
		return m.Pause()
	}
	return e.errNone("pause")
}

func (e *workloadEngine) Resume() error {
	if m, _ := e.machine(); m != nil {
		return m.Resume()
	}
	return e.errNone("resume")
}

func (e *workloadEngine) Stop() error {
	if m, _ := e.machine(); m != nil {
		return m.Stop()
	}
	return nil
}

// Kill is Stop: the workload guest's vCPUs are this process's own
// threads, and it has no disk whose writes would have to be cut.
func (e *workloadEngine) Kill() error { return e.Stop() }

func (e *workloadEngine) Done() <-chan struct{} { return e.done }

func (e *workloadEngine) Err() error {
	if m, _ := e.machine(); m != nil {
		return m.Err()
	}
	return nil
}

func (e *workloadEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ram != nil {
		return e.ram.Close()
	}
	return nil
}

func (e *workloadEngine) Stats() Stats {
	m, _ := e.machine()
	if m == nil {
		return Stats{}
	}
	st := m.Stats()
	return Stats{WrittenBytes: st.Writes * workload.PageSize, Workload: &st}
}

func (e *workloadEngine) SetThrottle(percent int) error {
	if m, _ := e.machine(); m != nil {
		return m.SetThrottle(percent)
	}
	return e.errNone("throttle")
}

func (e *workloadEngine) ResidentBytes() (uint64, error) {
	_, ram := e.machine()
	if ram == nil {
		return 0, nil
	}
	pages, err := ram.DataPages()
	return pages * workload.PageSize, err
}

// MeasureDirty fetches the machine's dirty log every
// control.EstimateInterval and counts the pages it names: all of them,
// and the distinct ones since the start.
func (e *workloadEngine) MeasureDirty(ctx context.Context, window time.Duration, sample func(DirtySample)) error {
	m, ram := e.machine()
	if m == nil {
		return e.errNone("measure dirty memory")
	}
	if err := m.SetDirtyLogging(true); err != nil {
		return fmt.Errorf("turn dirty logging on: %w", err)
	}
	err := watchDirty(ctx, m, ram.Pages(), window, sample)
	if oerr := m.SetDirtyLogging(false); oerr != nil {
		err = errors.Join(err, fmt.Errorf("turn dirty logging off: %w", oerr))
	}
	return err
}

// watchDirty is MeasureDirty's loop, dirty logging on.
func watchDirty(ctx context.Context, m workload.Machine, pages uint64, window time.Duration, sample func(DirtySample)) error {
	words := guestmem.BitmapWords(pages)
	scratch, union := make([]uint64, words), make([]uint64, words)
	var tail uint64 = ^uint64(0)
	if r := pages % 64; r != 0 {
		tail = 1<<r - 1
	}
	var distinct, fetched uint64
	start := time.Now()
	t := time.NewTicker(control.EstimateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.DirtyLog(scratch); err != nil {
			return fmt.Errorf("fetch dirty log: %w", err)
		}
		at := time.Since(start)
		scratch[words-1] &= tail
		for i, x := range scratch {
			if x == 0 {
				continue
			}
			fetched += uint64(bits.OnesCount64(x))
			if n := x &^ union[i]; n != 0 {
				distinct += uint64(bits.OnesCount64(n))
				union[i] |= n
			}
		}
		sample(DirtySample{At: at, Distinct: distinct * workload.PageSize, Dirtied: fetched * workload.PageSize})
		if at >= window {
			return nil
		}
	}
}

// source adapts the machine and its RAM to pagexfer.Source.
type source struct {
	workload.Machine
	ram *guestmem.RAM
}

func (s source) Size() uint64                            { return s.ram.Size() }
func (s source) ReadAt(p []byte, off int64) (int, error) { return s.ram.ReadAt(p, off) }
func (s source) DataRanges() ([]pagexfer.Range, error) {
	rs, err := s.ram.DataRanges()
	out := make([]pagexfer.Range, len(rs))
	for i, r := range rs {
		out[i] = pagexfer.Range{Off: r.Off, Len: r.Len}
	}
	return out, err
}

func (e *workloadEngine) source() (source, error) {
	m, ram := e.machine()
	if m == nil {
		return source{}, e.errNone("send")
	}
	return source{Machine: m, ram: ram}, nil
}

func (e *workloadEngine) CheckSend(o SendOptions) (SendOptions, error) {
	c, err := pagexfer.ParseCompression(o.Compress)
	if err != nil {
		return o, err
	}
	o.Compress = c.String()
	return o, nil
}

// xferOptions are pagexfer's options for o (checked by CheckSend).
func (e *workloadEngine) xferOptions(o SendOptions) (pagexfer.Options, error) {
	c, err := pagexfer.ParseCompression(o.Compress)
	return pagexfer.Options{
		Live: o.Live, AlreadyPaused: o.AlreadyPaused, ID: o.ID, Engine: e.name, VCPUs: e.cfg.VCPUs,
		Config: o.Config, MaxDowntime: o.MaxDowntime, RateLimit: o.RateLimit, Compression: c,
	}, err
}

func (e *workloadEngine) Send(ctx context.Context, streams []net.Conn, o SendOptions, progress func(Progress)) (Sent, error) {
	return e.transfer(o, func(src source, xo pagexfer.Options) (pagexfer.Result, error) {
		ws := make([]io.Writer, len(streams))
		for i, c := range streams {
			ws[i] = pagexfer.ProgressWriter(c, o.ProgressTimeout)
		}
		return pagexfer.SendStreams(ctx, src, ws, xo, reportTo(progress))
	})
}

func (e *workloadEngine) Save(ctx context.Context, f *os.File, o SendOptions, progress func(Progress)) (Sent, error) {
	o.Live = false
	return e.transfer(o, func(src source, xo pagexfer.Options) (pagexfer.Result, error) {
		return pagexfer.SaveTo(ctx, src, f, xo, reportTo(progress))
	})
}

// transfer runs a send or save and keeps its result for ResumeSource.
func (e *workloadEngine) transfer(o SendOptions, run func(source, pagexfer.Options) (pagexfer.Result, error)) (Sent, error) {
	src, err := e.source()
	var xo pagexfer.Options
	if err == nil {
		xo, err = e.xferOptions(o)
	}
	if err != nil {
		return Sent{Figures: func(*control.MigrationStatus) {}}, err
	}
	res, err := run(src, xo)
	e.mu.Lock()
	e.last = res
	e.mu.Unlock()
	return Sent{
		Image:    Image{ID: res.ID, Totals: res.Totals},
		Downtime: res.Downtime,
		Figures:  func(st *control.MigrationStatus) { resultTo(st, res) },
	}, err
}

func (e *workloadEngine) ResumeSource() error {
	src, err := e.source()
	if err != nil {
		return err
	}
	e.mu.Lock()
	res := e.last
	e.mu.Unlock()
	return pagexfer.ResumeSource(src, res)
}

// reportTo turns pagexfer's progress into the engine's.
func reportTo(progress func(Progress)) func(pagexfer.Progress) {
	return func(p pagexfer.Progress) {
		progress(Progress{Phase: phaseOf(p.Phase), Figures: func(st *control.MigrationStatus) { progressTo(st, p) }})
	}
}

func phaseOf(p pagexfer.Phase) control.Phase {
	switch p {
	case pagexfer.PhasePrecopy:
		return control.PhasePrecopy
	case pagexfer.PhaseStopCopy:
		return control.PhaseStopCopy
	case pagexfer.PhaseDone:
		return control.PhaseSent
	}
	return control.PhaseSetup
}

func progressTo(st *control.MigrationStatus, p pagexfer.Progress) {
	st.Round, st.BytesSent, st.BytesRemaining = p.Round, p.BytesSent, p.BytesRemaining
	st.DataPages, st.ZeroPages, st.SkippedPages = p.DataPages, p.ZeroPages, p.SkippedPages
	st.Throughput, st.DirtyRate, st.ExpectedDowntime, st.Throttle = p.Throughput, p.DirtyRate, p.ExpectedDowntime, p.Throttle
	st.Elapsed = p.Elapsed
	compressionTo(st, p.Compression)
	if p.Throttle > st.MaxThrottle {
		st.MaxThrottle = p.Throttle
	}
}

func resultTo(st *control.MigrationStatus, r pagexfer.Result) {
	st.Total, st.Downtime, st.DrainWait = r.Total, r.Downtime, r.DrainWait
	st.MaxThrottle, st.ThrottledFor = r.Throttle.Max, r.Throttle.Duration
	st.StopReason = r.Reason.String()
	st.BytesSent = r.BytesSent
	st.BytesRemaining = 0
	st.DataPages, st.ZeroPages = r.Totals.DataPages, r.Totals.ZeroPages
	st.Round = r.Rounds()
	if r.Streams > 0 {
		st.Streams = r.Streams
	}
	compressionTo(st, r.Compression)
}

func compressionTo(st *control.MigrationStatus, c pagexfer.CompressionStats) {
	st.Batches, st.CompressedBatches, st.BatchBytes, st.BatchWireBytes = c.Batches, c.Compressed, c.RawBytes, c.WireBytes
}

// open creates guest memory for an image whose header says h.
func (e *workloadEngine) open(h pagexfer.Header) (*guestmem.RAM, error) {
	if h.Engine != e.name {
		return nil, fmt.Errorf("the image is for the %s engine; this VMM runs %s", h.Engine, e.name)
	}
	if h.MemSize != e.memory {
		return nil, fmt.Errorf("the image holds %d MiB of memory; the domain has %d MiB", h.MemSize>>20, e.memory>>20)
	}
	return e.newRAM()
}

func (e *workloadEngine) Receive(ctx context.Context, first net.Conn, more func(context.Context) (net.Conn, error), o ReceiveOptions) (Received, error) {
	var ram *guestmem.RAM
	var pre *prepared // the machine, made while the pages arrive
	next := func(ctx context.Context) (io.Reader, error) {
		c, err := more(ctx)
		if err != nil {
			return nil, err
		}
		return pagexfer.ProgressConn(c, o.ProgressTimeout), nil
	}
	h, state, st, err := pagexfer.ReceiveStreams(ctx, pagexfer.ProgressConn(first, o.ProgressTimeout), next, func(h pagexfer.Header) (pagexfer.Sink, error) {
		r, err := e.open(h)
		if err != nil {
			return nil, err
		}
		ram, pre = r, e.prepareOn(r)
		return sink(r), nil
	})
	rec := Received{Image: Image{ID: h.ID, Totals: st.Totals}, Figures: func(s *control.MigrationStatus) {
		s.Streams, s.CompressedBatches = st.Streams, st.CompressedBatches
		if err == nil {
			s.DataPages, s.ZeroPages, s.Round, s.BytesSent = st.DataPages, st.ZeroPages, int(st.Rounds), st.Bytes
		}
	}}
	if err != nil {
		pre.discard()
		if ram != nil {
			ram.Close()
		}
		return rec, err
	}
	// Finish the machine (made while the pages arrived), so that after
	// the commit only its start stands between the source's pause and
	// the guest's resume here.
	return rec, e.makeMachineOn(pre, ram, state)
}

func (e *workloadEngine) Restore(ctx context.Context, f *os.File) error {
	var ram *guestmem.RAM
	_, state, _, err := pagexfer.Restore(ctx, f, func(h pagexfer.Header) (pagexfer.Sink, error) {
		r, err := e.open(h)
		if err != nil {
			return nil, err
		}
		ram = r
		return sink(r), nil
	})
	if err != nil {
		if ram != nil {
			ram.Close()
		}
		return fmt.Errorf("restore %s: %w", f.Name(), err)
	}
	return e.makeMachine(ram, state)
}

// prepared is a machine made ahead of its memory, waiting for the saved
// state: an incoming migration makes it while the pages arrive, so that
// the guest's pause only pays for loading the vCPU state.
type prepared struct {
	done chan struct{}
	m    loader
	err  error
}

// prepareOn starts making the machine over ram in the background; nil for
// an engine with nothing to make ahead.
func (e *workloadEngine) prepareOn(ram *guestmem.RAM) *prepared {
	if e.prepare == nil {
		return nil
	}
	p := &prepared{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.m, p.err = e.prepare(ram)
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

// makeMachineOn is makeMachine for a machine prepareOn began: it loads state into it,
// or builds from scratch when preparing failed. On failure ram is closed.
func (e *workloadEngine) makeMachineOn(p *prepared, ram *guestmem.RAM, state []byte) error {
	if p == nil {
		return e.makeMachine(ram, state)
	}
	<-p.done
	if p.err != nil {
		return e.makeMachine(ram, state)
	}
	if err := p.m.Restore(state); err != nil {
		_ = p.m.Stop()
		ram.Close()
		return fmt.Errorf("start %s engine: %w", e.name, err)
	}
	e.set(ram, p.m)
	return nil
}

// Shutdown: the workload guest has no ACPI power button; the runtime
// ends the machine itself.
func (e *workloadEngine) Shutdown() error {
	return fmt.Errorf("shutdown: the workload guest has no ACPI power button: %w", ErrUnsupported)
}

// SetMemory: the workload guest has no balloon.
func (e *workloadEngine) SetMemory(uint64) error {
	return fmt.Errorf("set memory: the workload guest has no balloon; change memory in its vm.cfg and start it again: %w", ErrUnsupported)
}

// ConsoleInput: the workload guest reads no console input.
func (e *workloadEngine) ConsoleInput([]byte) error {
	return fmt.Errorf("console input: the workload guest reads no console input: %w", ErrUnsupported)
}

// Facts: the workload engines have no accelerator choice, no program
// version of their own and no display; their memory's backing, once it
// is made.
func (e *workloadEngine) Facts() Facts {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ram == nil {
		return Facts{}
	}
	return Facts{MemoryBacking: string(e.ram.Backing()), MemoryBackingWhy: e.why}
}
