package kvmengine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
	"github.com/ovs-agent/ovs-agent/vmm/kvm"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// I/O ports of the workload guest.
const (
	SerialPort = 0x3f8 // 16550 UART data register; the guest writes console bytes here
	serialEnd  = SerialPort + 8
	PortYield  = 0x510 // out: the guest is at a consistent point; the host may pause/throttle
	PortSleep  = 0x511 // out: idle for the given microseconds
	PortFatal  = 0x512 // out: the guest gave up (parameters unusable)
)

// The guest runs in 64-bit ring 3 with IOPL 3 and interrupts enabled (no
// interrupt is ever injected): ring 3 runs natively even on KVM
// implementations that emulate ring 0 (PVM), and IOPL 3 lets its I/O
// instructions exit to the host like ring-0 ones on hardware-assisted KVM.
// The selectors are Linux's, which PVM expects.
const (
	userCS      = 0x33
	userDS      = 0x2b
	guestRFLAGS = 0x3202 // IOPL 3, IF, reserved bit 1
)

// Addresses in the 3-4 GiB hole KVM needs on Intel (QEMU's choices).
const (
	tssAddr         = 0xfffbd000
	identityMapAddr = 0xfffbc000
)

// maxGuestSleep caps one sleep request (the guest asks for at most 100 ms).
const maxGuestSleep = time.Second

// DefaultSlotSize is the largest KVM memory slot the machine creates.
const DefaultSlotSize = 1 << 30

// cooperativeWait is how long Pause and Stop wait for the guest to reach
// a doorbell exit on its own before kicking the vCPU with a signal.
const cooperativeWait = 100 * time.Millisecond

// Config configures a KVM machine.
type Config struct {
	// RAM is guest memory: fresh (zero) for a new machine, or holding the
	// memory of a saved machine when State is set. Its size must be a
	// multiple of 2 MiB.
	RAM *guestmem.RAM
	// Params configures a new machine (ignored when State is set).
	Params workload.Params
	// Console receives the serial output, one Write per line. May be nil.
	Console io.Writer
	// State, when set, is a SaveState result: the new machine continues
	// the saved one over RAM.
	State []byte
	// KVM is an open /dev/kvm handle; when nil the machine opens
	// kvm.DevicePath itself and closes it when stopped.
	KVM *kvm.System
	// SlotSize caps the size of one memory slot (DefaultSlotSize when 0; a
	// multiple of 2 MiB).
	SlotSize uint64
}

type slot struct {
	region kvm.MemoryRegion
	offset uint64 // RAM offset
}

type phase int

const (
	phaseCreated phase = iota
	phaseRunning
	phasePaused
	phaseStopped
)

// Machine is the kvm engine running the workload guest on one vCPU. It
// implements workload.Machine.
type Machine struct {
	sys     *kvm.System
	ownSys  bool
	vm      *kvm.VM
	vcpu    *kvm.VCPU
	ram     *guestmem.RAM
	layout  workload.Layout
	slots   []slot
	console io.Writer
	tscKHz  uint32

	line []byte // partial console line (vCPU goroutine)

	reqs     atomic.Bool // pause or stop requested
	kicked   atomic.Bool // the vCPU was kicked because it did not reach a doorbell in time
	wake     chan struct{}
	done     chan struct{}
	throttle atomic.Int32
	exits    [5]atomic.Uint64 // serial, yield, sleep, kicks, faulted I/O

	mu       sync.Mutex
	cond     *sync.Cond
	phase    phase
	pauseReq bool
	stopReq  bool
	logging  bool
	ready    bool // booted or restored: Start may run it
	err      error
}

var _ workload.Machine = (*Machine)(nil)

// New creates the VM, its memory slots and vCPU, and either boots a new
// workload guest (loading code, page tables and parameters into RAM) or
// loads a saved state. Start runs it.
func New(cfg Config) (*Machine, error) {
	if cfg.State != nil {
		m, err := Prepare(cfg)
		if err != nil {
			return nil, err
		}
		if err := m.Restore(cfg.State); err != nil {
			m.release()
			return nil, err
		}
		return m, nil
	}
	if cfg.RAM == nil {
		return nil, errors.New("kvm machine: no guest memory")
	}
	layout, err := workload.NewLayout(cfg.RAM.Size(), cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("kvm machine: %w", err)
	}
	if len(workloadBin) == 0 || len(workloadBin) > workload.CodeMaxSize {
		return nil, fmt.Errorf("kvm machine: embedded guest binary is %d bytes", len(workloadBin))
	}
	m, err := create(cfg, layout)
	if err != nil {
		return nil, err
	}
	err = m.setSupportedCPUID()
	if err == nil {
		m.tscKHz, err = m.vcpu.GetTSCKHz()
	}
	if err == nil {
		err = m.boot(cfg.Params)
	}
	if err != nil {
		m.release()
		return nil, err
	}
	m.ready = true
	return m, nil
}

// Prepare creates the VM, its memory slots over cfg.RAM and the vCPU, and
// loads nothing: Restore then continues a saved machine over that memory.
// A migration's target prepares while the pages are still arriving, so
// that only Restore is left for the guest's pause. cfg.State and
// cfg.Params are ignored.
func Prepare(cfg Config) (*Machine, error) {
	if cfg.RAM == nil {
		return nil, errors.New("kvm machine: no guest memory")
	}
	size := cfg.RAM.Size()
	if size == 0 || size%workload.RAMAlign != 0 || size > workload.MaxRAM {
		return nil, fmt.Errorf("kvm machine: memory of %d bytes is not a multiple of %d MiB up to %d MiB", size, workload.RAMAlign>>20, workload.MaxRAM>>20)
	}
	// The slots depend only on the size; Restore takes the rest of the
	// layout from the guest's parameter page.
	return create(cfg, workload.MemoryLayout(size))
}

// Restore loads a saved state (a SaveState result) into a machine Prepare
// made, over the memory that now holds the saved machine's.
func (m *Machine) Restore(state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phaseCreated || m.ready {
		return errors.New("kvm machine: restore: only a prepared machine that has not started can take a saved state")
	}
	states, err := UnmarshalState(state)
	if err != nil {
		return fmt.Errorf("kvm machine: %w", err)
	}
	if len(states) != 1 {
		return fmt.Errorf("kvm machine: saved state has %d vCPUs, the workload guest runs on 1", len(states))
	}
	st := states[0]
	mem := m.ram.Bytes()
	pp, layout, err := workload.DecodeParamPage(mem[workload.ParamPageAddr:workload.ParamPageAddr+workload.PageSize], m.ram.Size())
	if err != nil {
		return fmt.Errorf("kvm machine: restore: %w", err)
	}
	if len(st.CPUID) == 0 { // otherwise part of the state SetState loads
		if err := m.setSupportedCPUID(); err != nil {
			return err
		}
	}
	if err := m.vcpu.SetState(st); err != nil {
		return fmt.Errorf("kvm machine: restore vcpu state: %w", err)
	}
	m.layout, m.tscKHz, m.ready = layout, uint32(pp.TSCKHz), true
	return nil
}

// create opens KVM and makes the VM, its memory slots over cfg.RAM (placed
// by layout's regions) and the vCPU.
func create(cfg Config, layout workload.Layout) (m *Machine, err error) {
	slotSize := cfg.SlotSize
	if slotSize == 0 {
		slotSize = DefaultSlotSize
	}
	if slotSize%workload.RAMAlign != 0 {
		return nil, fmt.Errorf("kvm machine: slot size %d is not a multiple of 2 MiB", slotSize)
	}
	m = &Machine{
		ram:     cfg.RAM,
		layout:  layout,
		console: cfg.Console,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	m.cond = sync.NewCond(&m.mu)
	m.sys = cfg.KVM
	if m.sys == nil {
		if m.sys, err = kvm.Open(""); err != nil {
			return nil, err
		}
		m.ownSys = true
	}
	defer func() {
		if err != nil {
			m.release()
		}
	}()
	if m.vm, err = m.sys.CreateVM(); err != nil {
		return nil, err
	}
	if n, _ := m.sys.CheckExtension(kvm.CapSetTSSAddr); n > 0 {
		if err = m.vm.SetTSSAddr(tssAddr); err != nil {
			return nil, err
		}
	}
	if n, _ := m.sys.CheckExtension(kvm.CapSetIdentityMapAddr); n > 0 {
		if err = m.vm.SetIdentityMapAddr(identityMapAddr); err != nil {
			return nil, err
		}
	}
	if err = m.addSlots(slotSize); err != nil {
		return nil, err
	}
	if m.vcpu, err = m.vm.CreateVCPU(0); err != nil {
		return nil, err
	}
	return m, nil
}

// setSupportedCPUID gives the vCPU the CPUID KVM supports.
func (m *Machine) setSupportedCPUID() error {
	cpuid, err := m.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	return m.vcpu.SetCPUID2(cpuid)
}

func (m *Machine) addSlots(slotSize uint64) error {
	mem := m.ram.Bytes()
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	n := uint32(0)
	for _, r := range m.layout.Regions() {
		for off := uint64(0); off < r.Size; off += slotSize {
			size := min(slotSize, r.Size-off)
			s := slot{
				region: kvm.MemoryRegion{Slot: n, GuestPhysAddr: r.GPA + off, MemorySize: size,
					UserspaceAddr: base + r.Offset + off},
				offset: r.Offset + off,
			}
			if err := m.vm.SetUserMemoryRegion(s.region); err != nil {
				return err
			}
			m.slots = append(m.slots, s)
			n++
		}
	}
	return nil
}

// boot writes the parameter page, GDT, TSS, page tables and code into RAM
// and puts the vCPU in 64-bit mode at the guest's entry point.
func (m *Machine) boot(p workload.Params) error {
	mem := m.ram.Bytes()
	pp := workload.NewParamPage(m.layout, p)
	pp.TSCKHz = uint64(m.tscKHz)
	pp.SerialPort = SerialPort
	pp.PortYield = PortYield
	pp.PortSleep = PortSleep
	pp.PortFatal = PortFatal
	pp.Encode(mem[workload.ParamPageAddr:])

	le := binary.LittleEndian
	gdt := mem[workload.GDTAddr:]
	le.PutUint64(gdt[0x00:], 0)
	le.PutUint64(gdt[0x08:], 0x00af9b000000ffff) // kernel code, 64-bit (unused: the guest never enters ring 0)
	le.PutUint64(gdt[0x10:], 0x00cf93000000ffff) // kernel data
	tss := uint64(workload.TSSAddr)
	le.PutUint64(gdt[0x18:], 0x67|(tss&0xffffff)<<16|0x8b<<40|(tss>>24&0xff)<<56) // 64-bit TSS, busy
	le.PutUint64(gdt[0x20:], tss>>32)
	le.PutUint64(gdt[0x28:], 0x00cff3000000ffff)              // user data, DPL 3: selector 0x2b
	le.PutUint64(gdt[0x30:], 0x00affb000000ffff)              // user code, 64-bit, DPL 3: selector 0x33
	le.PutUint64(mem[workload.TSSAddr+4:], workload.StackTop) // RSP0, should anything ever enter ring 0
	le.PutUint16(mem[workload.TSSAddr+0x66:], 0x68)           // I/O map base beyond the limit: IOPL decides

	const present, writable, user, huge = 1, 2, 4, 0x80
	le.PutUint64(mem[workload.PML4Addr:], workload.PDPTAddr|present|writable|user)
	nPD := m.layout.PageDirectories()
	for i := 0; i < nPD; i++ {
		pd := uint64(workload.PDAddr + i*workload.PageSize)
		le.PutUint64(mem[workload.PDPTAddr+8*i:], pd|present|writable|user)
		for j := uint64(0); j < 512; j++ {
			le.PutUint64(mem[pd+8*j:], (uint64(i)<<30+j<<21)|present|writable|user|huge)
		}
	}
	copy(mem[workload.CodeAddr:], workloadBin)

	sregs, err := m.vcpu.GetSregs()
	if err != nil {
		return err
	}
	sregs.CS = kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: userCS, Type: 0xb, Present: 1, DPL: 3, S: 1, L: 1, G: 1}
	data := kvm.Segment{Base: 0, Limit: 0xffffffff, Selector: userDS, Type: 0x3, Present: 1, DPL: 3, S: 1, DB: 1, G: 1}
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = data, data, data, data, data
	sregs.TR = kvm.Segment{Base: tss, Limit: 0x67, Selector: 0x18, Type: 0xb, Present: 1}
	sregs.LDT = kvm.Segment{Type: 0x2, Unusable: 1}
	sregs.GDT = kvm.DTable{Base: workload.GDTAddr, Limit: 0x37}
	sregs.IDT = kvm.DTable{Base: 0, Limit: 0}
	sregs.CR0 = kvm.CR0PE | kvm.CR0MP | kvm.CR0ET | kvm.CR0NE | kvm.CR0WP | kvm.CR0PG
	sregs.CR3 = workload.PML4Addr
	sregs.CR4 = kvm.CR4PAE | kvm.CR4OSFXSR | kvm.CR4OSXMMEXCPT
	sregs.EFER = kvm.EFERLME | kvm.EFERLMA
	if err := m.vcpu.SetSregs(sregs); err != nil {
		return err
	}
	return m.vcpu.SetRegs(kvm.Regs{
		RIP:    workload.CodeAddr,
		RSP:    workload.StackTop,
		RDI:    workload.ParamPageAddr,
		RFLAGS: guestRFLAGS,
	})
}

// RAM returns guest memory.
func (m *Machine) RAM() *guestmem.RAM { return m.ram }

// Layout returns the workload layout.
func (m *Machine) Layout() workload.Layout { return m.layout }

// TSCKHz returns the guest TSC frequency.
func (m *Machine) TSCKHz() uint32 { return m.tscKHz }

// MemoryRegions returns the KVM memory slots.
func (m *Machine) MemoryRegions() []kvm.MemoryRegion {
	out := make([]kvm.MemoryRegion, len(m.slots))
	for i, s := range m.slots {
		out[i] = s.region
	}
	return out
}

// ExitCounts are the vCPU exits a machine handled, by kind.
type ExitCounts struct {
	Serial    uint64 // console output (one per line for the workload guest)
	Yield     uint64 // yield doorbells
	Sleep     uint64 // sleep doorbells
	Kick      uint64 // signals or kicks (the guest did not reach a doorbell in time)
	FaultedIO uint64 // of the above I/O exits, those completed after a fault (PVM)
}

// ExitCounts returns how many vCPU exits of each kind the machine handled.
func (m *Machine) ExitCounts() ExitCounts {
	return ExitCounts{Serial: m.exits[0].Load(), Yield: m.exits[1].Load(), Sleep: m.exits[2].Load(),
		Kick: m.exits[3].Load(), FaultedIO: m.exits[4].Load()}
}

// Start runs the vCPU.
func (m *Machine) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phaseCreated {
		return errors.New("kvm machine: already started")
	}
	if !m.ready {
		return errors.New("kvm machine: prepared but given no saved state to run")
	}
	m.phase = phaseRunning
	go m.loop()
	return nil
}

// waitLeave waits, with m.mu held, until the vCPU leaves phaseRunning,
// kicking it if it does not reach a doorbell by itself in time.
func (m *Machine) waitLeave() {
	timer := time.AfterFunc(cooperativeWait, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.phase == phaseRunning { // the vCPU (and its kvm_run mapping) still exists
			m.kicked.Store(true)
			m.vcpu.Kick()
		}
	})
	defer timer.Stop()
	for m.phase == phaseRunning {
		m.cond.Wait()
	}
}

// Pause stops the vCPU at its next doorbell exit (the guest reaches one at
// least every millisecond), so no page is half written and no console line
// half printed; it kicks the vCPU with a signal if the guest does not get
// there within 100 ms. Pending I/O is completed before Pause returns, so
// SaveState captures a state that resumes cleanly elsewhere.
func (m *Machine) Pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.phase {
	case phaseCreated:
		return errors.New("kvm machine: pause: not started")
	case phaseStopped:
		return m.stoppedErr("pause")
	case phasePaused:
		return nil
	}
	m.pauseReq = true
	m.reqs.Store(true)
	m.wakeUp()
	m.waitLeave()
	if m.phase == phaseStopped {
		return m.stoppedErr("pause")
	}
	return nil
}

func (m *Machine) stoppedErr(op string) error {
	if m.err != nil {
		return fmt.Errorf("kvm machine: %s: machine stopped: %w", op, m.err)
	}
	return fmt.Errorf("kvm machine: %s: machine stopped", op)
}

// Resume continues after Pause.
func (m *Machine) Resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.phase {
	case phaseCreated:
		return errors.New("kvm machine: resume: not started")
	case phaseStopped:
		return m.stoppedErr("resume")
	}
	m.pauseReq = false
	m.reqs.Store(m.stopReq)
	m.cond.Broadcast()
	for m.phase == phasePaused {
		m.cond.Wait()
	}
	return nil
}

// Stop ends the machine: the vCPU stops at its next doorbell exit (or is
// kicked), then the VM is closed. Guest memory stays with its owner.
func (m *Machine) Stop() error {
	m.mu.Lock()
	if m.phase == phaseCreated {
		m.phase = phaseStopped
		close(m.done)
		m.mu.Unlock()
		m.release()
		return nil
	}
	if m.phase != phaseStopped {
		m.stopReq = true
		m.reqs.Store(true)
		m.wakeUp()
		m.cond.Broadcast()
		if m.phase == phaseRunning {
			m.waitLeave()
		}
	}
	m.mu.Unlock()
	<-m.done
	return nil
}

// Done is closed when the machine has stopped and its VM is closed.
func (m *Machine) Done() <-chan struct{} { return m.done }

// Err says why the machine stopped: nil after Stop, otherwise the guest
// fault or engine error.
func (m *Machine) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// SetDirtyLogging turns KVM dirty logging on (with a clean log) or off on
// every memory slot. Turning it on when it is on already (a migration
// after one that was aborted before its source turned it off) clears the
// log, which the slot update alone would not.
func (m *Machine) SetDirtyLogging(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase == phaseStopped {
		return m.stoppedErr("dirty logging")
	}
	if on && m.logging {
		scratch := make([]uint64, guestmem.BitmapWords(m.ram.Pages()))
		for _, s := range m.slots {
			first := s.offset / workload.PageSize / 64
			if err := m.vm.GetDirtyLog(s.region.Slot, scratch[first:]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, s := range m.slots {
		if err := m.vm.SetDirtyLogging(s.region.Slot, on); err != nil {
			return err
		}
	}
	m.logging = on
	return nil
}

// DirtyLog fetches and clears the dirty log of every slot into dst, indexed
// by RAM page.
func (m *Machine) DirtyLog(dst []uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase == phaseStopped {
		return m.stoppedErr("dirty log")
	}
	if !m.logging {
		return errors.New("kvm machine: dirty log: dirty logging is off")
	}
	if need := guestmem.BitmapWords(m.ram.Pages()); len(dst) < need {
		return fmt.Errorf("kvm machine: dirty log: bitmap of %d words, need %d", len(dst), need)
	}
	for _, s := range m.slots {
		first := s.offset / workload.PageSize / 64 // slots are multiples of 2 MiB: word aligned
		if err := m.vm.GetDirtyLog(s.region.Slot, dst[first:]); err != nil {
			return err
		}
	}
	return nil
}

// SaveState returns the vCPU state of a paused machine (see MarshalState).
func (m *Machine) SaveState() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != phasePaused {
		return nil, errors.New("kvm machine: save state: machine is not paused")
	}
	st, err := m.vcpu.GetState()
	if err != nil {
		return nil, fmt.Errorf("kvm machine: save state: %w", err)
	}
	return MarshalState([]*kvm.VCPUState{st})
}

// Stats returns the workload counters from the guest's status page.
func (m *Machine) Stats() workload.Stats { return workload.ReadStats(m.ram) }

// SetThrottle makes the vCPU sleep percent% of the time: after each exit
// it sleeps in proportion to the time it just ran.
func (m *Machine) SetThrottle(percent int) error {
	if percent < 0 || percent > 99 {
		return fmt.Errorf("kvm machine: throttle %d%% outside 0..99", percent)
	}
	m.throttle.Store(int32(percent))
	return nil
}

func (m *Machine) wakeUp() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Machine) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-m.wake:
		t.Stop()
	}
}

// release closes the VM (and the KVM handle when the machine opened it).
func (m *Machine) release() {
	if m.vm != nil {
		m.vm.Close()
	}
	if m.ownSys && m.sys != nil {
		m.sys.Close()
	}
}

// control handles pause and stop requests on the vCPU thread at a doorbell
// exit; it returns false when the machine must stop.
func (m *Machine) control() (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pauseReq && !m.stopReq {
		// Complete the I/O the guest is in the middle of (KVM finishes it
		// on the next KVM_RUN, which immediate_exit then ends at once), so
		// registers read while paused are final.
		m.vcpu.Kick()
		if e, err := m.vcpu.Run(); err != nil || e.Reason != kvm.ExitIntr {
			if err == nil {
				err = fmt.Errorf("unexpected %s", e.String())
			}
			return false, fmt.Errorf("complete pending I/O before pausing: %w", err)
		}
		m.vcpu.ClearKick()
		m.kicked.Store(false)
		m.phase = phasePaused
		m.cond.Broadcast()
		for m.pauseReq && !m.stopReq {
			m.cond.Wait()
		}
		m.phase = phaseRunning
		m.cond.Broadcast()
	}
	if m.stopReq {
		return false, nil
	}
	m.kicked.Store(false)
	m.reqs.Store(false)
	return true, nil
}

func (m *Machine) loop() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := m.run()
	if len(m.line) > 0 {
		m.flushLine()
	}
	m.mu.Lock()
	m.err = err
	m.phase = phaseStopped
	m.cond.Broadcast()
	m.mu.Unlock()
	m.release()
	close(m.done)
}

func (m *Machine) run() error {
	var ran time.Duration // guest run time since the last doorbell
	for {
		m.vcpu.ClearKick()
		entered := time.Now()
		exit, err := m.vcpu.Run()
		ran += time.Since(entered)
		if err != nil {
			return err
		}
		doorbell := false
		switch exit.Reason {
		case kvm.ExitIO:
			if doorbell, err = m.handleIO(&exit); err != nil {
				return err
			}
		case kvm.ExitShutdown:
			if doorbell, err = m.completeFaultedIO(); err != nil {
				return err
			}
		case kvm.ExitIntr:
			// Our kick (the guest did not reach a doorbell in time) stops
			// it where it is; any other signal just re-enters the guest.
			if m.kicked.Load() {
				m.exits[3].Add(1)
				doorbell = true
			}
		case kvm.ExitHLT:
			return m.fault("guest halted")
		case kvm.ExitMMIO:
			return m.fault(fmt.Sprintf("guest accessed unbacked memory: %s", exit.String()))
		default:
			return m.fault(exit.String())
		}
		if !doorbell {
			continue
		}
		if p := m.throttle.Load(); p > 0 && !m.reqs.Load() {
			m.sleep(ran * time.Duration(p) / time.Duration(100-p))
		}
		ran = 0
		if m.reqs.Load() {
			if cont, err := m.control(); err != nil || !cont {
				return err
			}
		}
	}
}

// handleIO performs an I/O exit (or a faulted I/O instruction decoded into
// one). It reports whether the exit is a doorbell, where the guest is at a
// consistent point.
func (m *Machine) handleIO(exit *kvm.Exit) (doorbell bool, err error) {
	switch {
	case exit.IOPort >= SerialPort && exit.IOPort < serialEnd:
		m.exits[0].Add(1)
		m.serial(exit)
		return false, nil
	case exit.IOPort == PortYield && exit.IODirection == kvm.IOOut:
		m.exits[1].Add(1)
		return true, nil
	case exit.IOPort == PortSleep && exit.IODirection == kvm.IOOut:
		m.exits[2].Add(1)
		if !m.reqs.Load() {
			m.sleep(min(time.Duration(exit.IOValue())*time.Microsecond, maxGuestSleep))
		}
		return true, nil
	case exit.IOPort == PortFatal && exit.IODirection == kvm.IOOut:
		return false, fmt.Errorf("guest gave up (code %d); see its console", exit.IOValue())
	}
	return false, m.fault(fmt.Sprintf("unexpected %s", exit.String()))
}

// fault builds an error for a guest that cannot continue, with its registers.
func (m *Machine) fault(what string) error {
	regs, err := m.vcpu.GetRegs()
	if err != nil {
		return fmt.Errorf("%s (registers unreadable: %v)", what, err)
	}
	return fmt.Errorf("%s at %s", what, regs.String())
}

// serial emulates the transmit side of a 16550 at SerialPort: bytes written
// to the data register go to the console; reads of the line status register
// say the transmitter is empty; other registers read as zero.
func (m *Machine) serial(e *kvm.Exit) {
	if e.IODirection == kvm.IOIn {
		for i := range e.IOData {
			e.IOData[i] = 0
		}
		if e.IOPort == SerialPort+5 && len(e.IOData) > 0 { // LSR: THR empty, transmitter empty
			e.IOData[0] = 0x60
		}
		return
	}
	if e.IOPort != SerialPort {
		return // divisor, FIFO and modem control writes: nothing to emulate
	}
	for _, b := range e.IOData {
		m.line = append(m.line, b)
		if b == '\n' || len(m.line) >= 4096 {
			m.flushLine()
		}
	}
}

func (m *Machine) flushLine() {
	if m.console != nil {
		m.console.Write(m.line)
	}
	m.line = m.line[:0]
}
