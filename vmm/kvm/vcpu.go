package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kvm_run layout (x86-64).
const (
	runImmediateExit = 1
	runExitReason    = 8
	runUnion         = 32
	runMinSize       = 2352 // sizeof(struct kvm_run)
)

// ExitReason is kvm_run.exit_reason.
type ExitReason uint32

// Exit reasons (KVM_EXIT_*).
const (
	ExitUnknown       ExitReason = 0
	ExitException     ExitReason = 1
	ExitIO            ExitReason = 2
	ExitHypercall     ExitReason = 3
	ExitDebug         ExitReason = 4
	ExitHLT           ExitReason = 5
	ExitMMIO          ExitReason = 6
	ExitIRQWindowOpen ExitReason = 7
	ExitShutdown      ExitReason = 8
	ExitFailEntry     ExitReason = 9
	ExitIntr          ExitReason = 10
	ExitInternalError ExitReason = 17
	ExitSystemEvent   ExitReason = 24
)

var exitNames = map[ExitReason]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO", ExitHypercall: "HYPERCALL",
	ExitDebug: "DEBUG", ExitHLT: "HLT", ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR",
	ExitInternalError: "INTERNAL_ERROR", ExitSystemEvent: "SYSTEM_EVENT",
}

func (r ExitReason) String() string {
	if n, ok := exitNames[r]; ok {
		return n
	}
	return fmt.Sprintf("exit(%d)", uint32(r))
}

// IO directions.
const (
	IOIn  = 0
	IOOut = 1
)

// Exit is a decoded vCPU exit. Data slices point into the vCPU's kvm_run
// area: for an IO in or MMIO read, the handler writes the value there before
// the next Run; they are valid only until then.
type Exit struct {
	Reason ExitReason

	// ExitIO
	IODirection uint8
	IOSize      uint8 // bytes per access: 1, 2 or 4
	IOPort      uint16
	IOCount     uint32 // repetitions (rep ins/outs)
	IOData      []byte // IOSize*IOCount bytes

	// ExitMMIO
	MMIOAddr  uint64
	MMIOWrite bool
	MMIOData  []byte // len bytes

	// ExitFailEntry
	FailEntryReason uint64
	FailEntryCPU    uint32

	// ExitInternalError
	InternalSuberror uint32
	InternalData     []uint64

	// ExitSystemEvent
	SystemEventType uint32

	// ExitUnknown
	HardwareExitReason uint64

	// ExitException
	Exception          uint32
	ExceptionErrorCode uint32
}

func (e *Exit) String() string {
	switch e.Reason {
	case ExitIO:
		dir := "in"
		if e.IODirection == IOOut {
			dir = "out"
		}
		return fmt.Sprintf("IO %s port %#x size %d count %d", dir, e.IOPort, e.IOSize, e.IOCount)
	case ExitMMIO:
		dir := "read"
		if e.MMIOWrite {
			dir = "write"
		}
		return fmt.Sprintf("MMIO %s addr %#x len %d", dir, e.MMIOAddr, len(e.MMIOData))
	case ExitFailEntry:
		return fmt.Sprintf("FAIL_ENTRY hardware reason %#x cpu %d", e.FailEntryReason, e.FailEntryCPU)
	case ExitInternalError:
		return fmt.Sprintf("INTERNAL_ERROR suberror %d data %#x", e.InternalSuberror, e.InternalData)
	case ExitSystemEvent:
		return fmt.Sprintf("SYSTEM_EVENT type %d", e.SystemEventType)
	case ExitUnknown:
		return fmt.Sprintf("UNKNOWN hardware reason %#x", e.HardwareExitReason)
	case ExitException:
		return fmt.Sprintf("EXCEPTION %d error code %#x", e.Exception, e.ExceptionErrorCode)
	}
	return e.Reason.String()
}

// IOValue returns the data of a single out access as an integer.
func (e *Exit) IOValue() uint32 {
	switch {
	case len(e.IOData) >= 4 && e.IOSize == 4:
		return binary.LittleEndian.Uint32(e.IOData)
	case len(e.IOData) >= 2 && e.IOSize == 2:
		return uint32(binary.LittleEndian.Uint16(e.IOData))
	case len(e.IOData) >= 1:
		return uint32(e.IOData[0])
	}
	return 0
}

// VCPU is one virtual CPU. Run must be called from a goroutine locked to its
// OS thread (runtime.LockOSThread) so that Kick can interrupt it; the other
// methods must not run concurrently with Run except Kick and ClearKick.
type VCPU struct {
	fd  int
	id  int
	run []byte
	vm  *VM
	tid atomic.Int32
}

// ID returns the vCPU index.
func (c *VCPU) ID() int { return c.id }

// Fd returns the vCPU file descriptor (do not close it).
func (c *VCPU) Fd() int { return c.fd }

// Close unmaps kvm_run and closes the vCPU.
func (c *VCPU) Close() error {
	var errs []error
	if c.run != nil {
		if err := unix.Munmap(c.run); err != nil {
			errs = append(errs, fmt.Errorf("munmap kvm_run of vcpu %d: %w", c.id, err))
		}
		c.run = nil
	}
	if c.fd >= 0 {
		if err := unix.Close(c.fd); err != nil {
			errs = append(errs, fmt.Errorf("close vcpu %d: %w", c.id, err))
		}
		c.fd = -1
	}
	return errors.Join(errs...)
}

func (c *VCPU) immediateExitWord() *uint32 {
	return (*uint32)(unsafe.Pointer(&c.run[0]))
}

// Kick makes a running (or the next) KVM_RUN of this vCPU return promptly
// with ExitIntr: it sets kvm_run.immediate_exit and signals the vCPU's
// thread (SIGURG, which the Go runtime tolerates). The vCPU stays kicked
// until ClearKick; the run loop should call ClearKick first and then look at
// whatever request made the caller kick, so no request is lost.
func (c *VCPU) Kick() error {
	atomic.OrUint32(c.immediateExitWord(), 1<<(8*runImmediateExit))
	tid := c.tid.Load()
	if tid == 0 {
		return nil
	}
	err := unix.Tgkill(unix.Getpid(), int(tid), unix.SIGURG)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kick vcpu %d (tid %d): %w", c.id, tid, err)
	}
	return nil
}

// ClearKick clears kvm_run.immediate_exit.
func (c *VCPU) ClearKick() {
	atomic.AndUint32(c.immediateExitWord(), ^uint32(0xff<<(8*runImmediateExit)))
}

// Run enters the guest (KVM_RUN) until the next exit and decodes it. A
// signal or Kick ends it with ExitIntr and no error.
func (c *VCPU) Run() (Exit, error) {
	c.tid.Store(int32(unix.Gettid()))
	_, err := ioctl(c.fd, kvmRun, 0)
	c.tid.Store(0)
	if err != nil {
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			return Exit{Reason: ExitIntr}, nil
		}
		return Exit{}, fmt.Errorf("KVM_RUN vcpu %d: %w", c.id, err)
	}
	return c.decodeExit()
}

func (c *VCPU) u8(off int) uint8   { return c.run[off] }
func (c *VCPU) u16(off int) uint16 { return binary.LittleEndian.Uint16(c.run[off:]) }
func (c *VCPU) u32(off int) uint32 { return binary.LittleEndian.Uint32(c.run[off:]) }
func (c *VCPU) u64(off int) uint64 { return binary.LittleEndian.Uint64(c.run[off:]) }

func (c *VCPU) decodeExit() (Exit, error) {
	e := Exit{Reason: ExitReason(c.u32(runExitReason))}
	u := runUnion
	switch e.Reason {
	case ExitIO:
		e.IODirection = c.u8(u)
		e.IOSize = c.u8(u + 1)
		e.IOPort = c.u16(u + 2)
		e.IOCount = c.u32(u + 4)
		off := c.u64(u + 8)
		n := uint64(e.IOSize) * uint64(e.IOCount)
		if off > uint64(len(c.run)) || n > uint64(len(c.run))-off {
			return e, fmt.Errorf("vcpu %d: IO exit data offset %d size %d outside kvm_run (%d bytes)", c.id, off, n, len(c.run))
		}
		e.IOData = c.run[off : off+n]
	case ExitMMIO:
		e.MMIOAddr = c.u64(u)
		n := c.u32(u + 16)
		if n > 8 {
			return e, fmt.Errorf("vcpu %d: MMIO exit length %d > 8", c.id, n)
		}
		e.MMIOData = c.run[u+8 : u+8+int(n)]
		e.MMIOWrite = c.u8(u+20) != 0
	case ExitFailEntry:
		e.FailEntryReason = c.u64(u)
		e.FailEntryCPU = c.u32(u + 8)
	case ExitInternalError:
		e.InternalSuberror = c.u32(u)
		n := c.u32(u + 4)
		if n > 16 {
			n = 16
		}
		for i := 0; i < int(n); i++ {
			e.InternalData = append(e.InternalData, c.u64(u+8+8*i))
		}
	case ExitSystemEvent:
		e.SystemEventType = c.u32(u)
	case ExitUnknown:
		e.HardwareExitReason = c.u64(u)
	case ExitException:
		e.Exception = c.u32(u)
		e.ExceptionErrorCode = c.u32(u + 4)
	}
	return e, nil
}

// GetRegs reads the general-purpose registers.
func (c *VCPU) GetRegs() (Regs, error) {
	var r Regs
	if _, err := ioctlPtr(c.fd, kvmGetRegs, unsafe.Pointer(&r)); err != nil {
		return r, fmt.Errorf("KVM_GET_REGS vcpu %d: %w", c.id, err)
	}
	return r, nil
}

// SetRegs writes the general-purpose registers.
func (c *VCPU) SetRegs(r Regs) error {
	if _, err := ioctlPtr(c.fd, kvmSetRegs, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_SET_REGS vcpu %d: %w", c.id, err)
	}
	return nil
}

// GetSregs reads the special registers.
func (c *VCPU) GetSregs() (Sregs, error) {
	var s Sregs
	if _, err := ioctlPtr(c.fd, kvmGetSregs, unsafe.Pointer(&s)); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS vcpu %d: %w", c.id, err)
	}
	return s, nil
}

// SetSregs writes the special registers.
func (c *VCPU) SetSregs(s Sregs) error {
	if _, err := ioctlPtr(c.fd, kvmSetSregs, unsafe.Pointer(&s)); err != nil {
		return fmt.Errorf("KVM_SET_SREGS vcpu %d: %w", c.id, err)
	}
	return nil
}

// GetFPU reads the x87/SSE state (KVM_GET_FPU).
func (c *VCPU) GetFPU() (FPU, error) {
	var f FPU
	if _, err := ioctlPtr(c.fd, kvmGetFPU, unsafe.Pointer(&f)); err != nil {
		return f, fmt.Errorf("KVM_GET_FPU vcpu %d: %w", c.id, err)
	}
	return f, nil
}

// SetFPU writes the x87/SSE state (KVM_SET_FPU).
func (c *VCPU) SetFPU(f FPU) error {
	if _, err := ioctlPtr(c.fd, kvmSetFPU, unsafe.Pointer(&f)); err != nil {
		return fmt.Errorf("KVM_SET_FPU vcpu %d: %w", c.id, err)
	}
	return nil
}

// XSaveSize returns the size of the XSAVE area GetXSave returns: 4096, or
// more when KVM_CAP_XSAVE2 reports a larger one (AMX). 0 means no XSAVE.
func (c *VCPU) XSaveSize() (int, error) {
	n, err := c.vm.CheckExtension(CapXSave)
	if err != nil || n == 0 {
		return 0, err
	}
	n2, err := c.vm.CheckExtension(CapXSave2)
	if err != nil {
		return 0, err
	}
	if n2 > sizeofXSave {
		return n2, nil
	}
	return sizeofXSave, nil
}

// GetXSave reads the XSAVE area (KVM_GET_XSAVE, or KVM_GET_XSAVE2 when the
// area is larger than 4 KiB).
func (c *VCPU) GetXSave() ([]byte, error) {
	size, err := c.XSaveSize()
	if err != nil {
		return nil, fmt.Errorf("vcpu %d: xsave size: %w", c.id, err)
	}
	if size == 0 {
		return nil, fmt.Errorf("vcpu %d: KVM_CAP_XSAVE not supported", c.id)
	}
	buf := make([]byte, size)
	req := uintptr(kvmGetXSave)
	if size > sizeofXSave {
		req = kvmGetXSave2
	}
	if _, err := ioctlPtr(c.fd, req, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("%s vcpu %d: %w", ioctlName(req), c.id, err)
	}
	return buf, nil
}

// SetXSave writes an XSAVE area obtained from GetXSave.
func (c *VCPU) SetXSave(b []byte) error {
	size, err := c.XSaveSize()
	if err != nil {
		return fmt.Errorf("vcpu %d: xsave size: %w", c.id, err)
	}
	if size == 0 {
		return fmt.Errorf("vcpu %d: KVM_CAP_XSAVE not supported", c.id)
	}
	if len(b) < sizeofXSave || len(b) > size {
		return fmt.Errorf("KVM_SET_XSAVE vcpu %d: area of %d bytes, this host takes %d to %d", c.id, len(b), sizeofXSave, size)
	}
	buf := make([]byte, size)
	copy(buf, b)
	if _, err := ioctlPtr(c.fd, kvmSetXSave, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_XSAVE vcpu %d: %w", c.id, err)
	}
	return nil
}

// GetXCRs reads the extended control registers (struct kvm_xcrs, opaque).
func (c *VCPU) GetXCRs() ([]byte, error) {
	buf := make([]byte, sizeofXCRs)
	if _, err := ioctlPtr(c.fd, kvmGetXCRs, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("KVM_GET_XCRS vcpu %d: %w", c.id, err)
	}
	return buf, nil
}

// SetXCRs writes the extended control registers.
func (c *VCPU) SetXCRs(b []byte) error {
	if len(b) != sizeofXCRs {
		return fmt.Errorf("KVM_SET_XCRS vcpu %d: %d bytes, want %d", c.id, len(b), sizeofXCRs)
	}
	buf := append([]byte(nil), b...)
	if _, err := ioctlPtr(c.fd, kvmSetXCRs, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_XCRS vcpu %d: %w", c.id, err)
	}
	return nil
}

// GetVCPUEvents reads pending exceptions, interrupts, NMIs and SMIs
// (struct kvm_vcpu_events, opaque).
func (c *VCPU) GetVCPUEvents() ([]byte, error) {
	buf := make([]byte, sizeofVCPUEvents)
	if _, err := ioctlPtr(c.fd, kvmGetVCPUEvents, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("KVM_GET_VCPU_EVENTS vcpu %d: %w", c.id, err)
	}
	return buf, nil
}

// SetVCPUEvents writes state from GetVCPUEvents.
func (c *VCPU) SetVCPUEvents(b []byte) error {
	if len(b) != sizeofVCPUEvents {
		return fmt.Errorf("KVM_SET_VCPU_EVENTS vcpu %d: %d bytes, want %d", c.id, len(b), sizeofVCPUEvents)
	}
	buf := append([]byte(nil), b...)
	if _, err := ioctlPtr(c.fd, kvmSetVCPUEvents, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_VCPU_EVENTS vcpu %d: %w", c.id, err)
	}
	return nil
}

// GetDebugRegs reads DR0-3, DR6, DR7 (struct kvm_debugregs, opaque).
func (c *VCPU) GetDebugRegs() ([]byte, error) {
	buf := make([]byte, sizeofDebugRegs)
	if _, err := ioctlPtr(c.fd, kvmGetDebugRegs, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("KVM_GET_DEBUGREGS vcpu %d: %w", c.id, err)
	}
	return buf, nil
}

// SetDebugRegs writes state from GetDebugRegs.
func (c *VCPU) SetDebugRegs(b []byte) error {
	if len(b) != sizeofDebugRegs {
		return fmt.Errorf("KVM_SET_DEBUGREGS vcpu %d: %d bytes, want %d", c.id, len(b), sizeofDebugRegs)
	}
	buf := append([]byte(nil), b...)
	if _, err := ioctlPtr(c.fd, kvmSetDebugRegs, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_DEBUGREGS vcpu %d: %w", c.id, err)
	}
	return nil
}

// GetMSRs reads the given MSRs. Every index must be readable.
func (c *VCPU) GetMSRs(indices []uint32) ([]MSREntry, error) {
	if len(indices) == 0 {
		return nil, nil
	}
	buf := make([]byte, 8+len(indices)*sizeofMSREntry)
	binary.LittleEndian.PutUint32(buf, uint32(len(indices)))
	for i, idx := range indices {
		binary.LittleEndian.PutUint32(buf[8+i*sizeofMSREntry:], idx)
	}
	n, err := ioctlPtr(c.fd, kvmGetMSRs, unsafe.Pointer(&buf[0]))
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_MSRS vcpu %d: %w", c.id, err)
	}
	if int(n) != len(indices) {
		return nil, fmt.Errorf("KVM_GET_MSRS vcpu %d: MSR %#x cannot be read (read %d of %d)", c.id, indices[n], n, len(indices))
	}
	out := make([]MSREntry, len(indices))
	for i := range out {
		e := buf[8+i*sizeofMSREntry:]
		out[i] = MSREntry{Index: binary.LittleEndian.Uint32(e), Data: binary.LittleEndian.Uint64(e[8:])}
	}
	return out, nil
}

// SetMSRs writes MSRs in order. Every entry must be accepted.
func (c *VCPU) SetMSRs(entries []MSREntry) error {
	if len(entries) == 0 {
		return nil
	}
	buf := make([]byte, 8+len(entries)*sizeofMSREntry)
	binary.LittleEndian.PutUint32(buf, uint32(len(entries)))
	for i, m := range entries {
		e := buf[8+i*sizeofMSREntry:]
		binary.LittleEndian.PutUint32(e, m.Index)
		binary.LittleEndian.PutUint64(e[8:], m.Data)
	}
	n, err := ioctlPtr(c.fd, kvmSetMSRs, unsafe.Pointer(&buf[0]))
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS vcpu %d: %w", c.id, err)
	}
	if int(n) != len(entries) {
		return fmt.Errorf("KVM_SET_MSRS vcpu %d: MSR %#x = %#x rejected (set %d of %d)", c.id, entries[n].Index, entries[n].Data, n, len(entries))
	}
	return nil
}

// SetCPUID2 sets the CPUID the guest sees (KVM_SET_CPUID2). Build entries
// from System.SupportedCPUID. KVM refuses changes after the first Run.
func (c *VCPU) SetCPUID2(entries []CPUIDEntry) error {
	if len(entries) == 0 {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d: no entries", c.id)
	}
	buf := make([]byte, 8+len(entries)*sizeofCPUIDEntry2)
	binary.LittleEndian.PutUint32(buf, uint32(len(entries)))
	for i := range entries {
		*(*CPUIDEntry)(unsafe.Pointer(&buf[8+i*sizeofCPUIDEntry2])) = entries[i]
	}
	if _, err := ioctlPtr(c.fd, kvmSetCPUID2, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d (%d entries): %w", c.id, len(entries), err)
	}
	return nil
}

// GetCPUID2 reads back the CPUID set with SetCPUID2.
func (c *VCPU) GetCPUID2() ([]CPUIDEntry, error) {
	for n := 64; n <= 4096; n *= 2 {
		buf := make([]byte, 8+n*sizeofCPUIDEntry2)
		binary.LittleEndian.PutUint32(buf, uint32(n))
		_, err := ioctlPtr(c.fd, kvmGetCPUID2, unsafe.Pointer(&buf[0]))
		if errors.Is(err, unix.E2BIG) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_CPUID2 vcpu %d: %w", c.id, err)
		}
		got := int(binary.LittleEndian.Uint32(buf))
		if got > n {
			return nil, fmt.Errorf("KVM_GET_CPUID2 vcpu %d: %d entries for a buffer of %d", c.id, got, n)
		}
		out := make([]CPUIDEntry, got)
		for i := range out {
			out[i] = *(*CPUIDEntry)(unsafe.Pointer(&buf[8+i*sizeofCPUIDEntry2]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("KVM_GET_CPUID2 vcpu %d: more than 4096 entries", c.id)
}

// GetTSCKHz returns the guest TSC frequency in kHz (KVM_GET_TSC_KHZ).
func (c *VCPU) GetTSCKHz() (uint32, error) {
	r, err := ioctl(c.fd, kvmGetTSCKHz, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ vcpu %d: %w", c.id, err)
	}
	if r == 0 {
		return 0, fmt.Errorf("KVM_GET_TSC_KHZ vcpu %d: kernel reports 0 kHz (unstable TSC?)", c.id)
	}
	return uint32(r), nil
}

// SetTSCKHz sets the guest TSC frequency (KVM_SET_TSC_KHZ, needs TSC
// scaling in hardware unless khz equals the host's).
func (c *VCPU) SetTSCKHz(khz uint32) error {
	if _, err := ioctl(c.fd, kvmSetTSCKHz, uintptr(khz)); err != nil {
		return fmt.Errorf("KVM_SET_TSC_KHZ(%d) vcpu %d: %w", khz, c.id, err)
	}
	return nil
}
