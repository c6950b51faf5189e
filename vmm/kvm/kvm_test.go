package kvm

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// needKVM opens /dev/kvm or skips the test when the device is absent.
func needKVM(t testing.TB) *System {
	t.Helper()
	if _, err := os.Stat(DevicePath); err != nil {
		t.Skipf("skipping: %s not present (%v): this host cannot run KVM guests", DevicePath, err)
	}
	s, err := Open("")
	if err != nil {
		t.Fatalf("%s exists but Open failed: %v", DevicePath, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Real-mode test program, loaded at 0x1000 (assembled with GNU as, .code16):
//
//	0x00 mov $0x1000,%ax; mov %ax,%ds; movb $1,0x0      page 0x10
//	0x0a mov $0x2000,%ax; mov %ax,%ds; movb $1,0x100    page 0x20
//	0x14 mov $0x3300,%ax; mov %ax,%ds; movw $1,0xffe    page 0x33
//	0x1f hlt
//	0x20 mov $0x4000,%ax; mov %ax,%ds; movb $2,0x10     page 0x40
//	0x2a mov $0x3f8,%dx; mov $0x41,%al; out %al,(%dx)
//	0x30 in (%dx),%al; mov %al,%bl
//	0x33 movb $7,0xf000                                 0x4f000: MMIO (no slot)
//	0x38 hlt
//	0x39 jmp 0x39
var realModeProg = []byte{
	0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x00, 0x01,
	0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xc6, 0x06, 0x00, 0x01, 0x01,
	0xb8, 0x00, 0x33, 0x8e, 0xd8, 0xc7, 0x06, 0xfe, 0x0f, 0x01, 0x00,
	0xf4,
	0xb8, 0x00, 0x40, 0x8e, 0xd8, 0xc6, 0x06, 0x10, 0x00, 0x02,
	0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee,
	0xec, 0x88, 0xc3,
	0xc6, 0x06, 0x00, 0xf0, 0x07,
	0xf4,
	0xeb, 0xfe,
}

const (
	progAddr = 0x1000
	memSize  = 0x4f000 // RAM ends where the MMIO write lands
)

type testVM struct {
	vm   *VM
	cpu  *VCPU
	mem  []byte
	slot MemoryRegion
}

func newTestVM(t *testing.T, sys *System, mem []byte) *testVM {
	t.Helper()
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	if err := vm.SetTSSAddr(0xfffbd000); err != nil {
		t.Fatal(err)
	}
	slot := MemoryRegion{Slot: 0, Flags: MemLogDirtyPages, GuestPhysAddr: 0, MemorySize: uint64(len(mem)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if err := vm.SetUserMemoryRegion(slot); err != nil {
		t.Fatal(err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	cpuid, err := sys.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	if err := cpu.SetCPUID2(cpuid); err != nil {
		t.Fatal(err)
	}
	return &testVM{vm: vm, cpu: cpu, mem: mem, slot: slot}
}

func anonMem(t *testing.T, size int) []byte {
	t.Helper()
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

func (v *testVM) bootRealMode(t *testing.T, rip uint64) {
	t.Helper()
	s, err := v.cpu.GetSregs()
	if err != nil {
		t.Fatal(err)
	}
	s.CS.Base, s.CS.Selector = 0, 0
	s.DS.Base, s.DS.Selector = 0, 0
	if err := v.cpu.SetSregs(s); err != nil {
		t.Fatal(err)
	}
	if err := v.cpu.SetRegs(Regs{RIP: rip, RFLAGS: 2}); err != nil {
		t.Fatal(err)
	}
}

func (v *testVM) run(t *testing.T, want ExitReason) Exit {
	t.Helper()
	e, err := v.cpu.Run()
	if err != nil {
		t.Fatal(err)
	}
	if e.Reason != want {
		r, _ := v.cpu.GetRegs()
		t.Fatalf("exit %s, want %s (%s)", e.String(), want, r.String())
	}
	return e
}

func dirtyPages(t *testing.T, v *testVM) []uint64 {
	t.Helper()
	bm := make([]uint64, v.slot.BitmapWords())
	for i := range bm {
		bm[i] = 0xdeadbeef // must be overwritten, not ORed
	}
	if err := v.vm.GetDirtyLog(0, bm); err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for i, w := range bm {
		for b := 0; b < 64; b++ {
			if w&(1<<b) != 0 {
				out = append(out, uint64(i*64+b))
			}
		}
	}
	return out
}

func equalPages(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRunExitsAndDirtyLog(t *testing.T) {
	sys := needKVM(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mem := anonMem(t, memSize)
	copy(mem[progAddr:], realModeProg)
	v := newTestVM(t, sys, mem)
	v.bootRealMode(t, progAddr)

	v.run(t, ExitHLT)
	if got, want := dirtyPages(t, v), []uint64{0x10, 0x20, 0x33}; !equalPages(got, want) {
		t.Fatalf("dirty pages after first block: %#x, want %#x", got, want)
	}
	if got := dirtyPages(t, v); len(got) != 0 {
		t.Fatalf("dirty log not cleared by the previous get: %#x", got)
	}
	if mem[0x10000] != 1 || mem[0x20100] != 1 || mem[0x33ffe] != 1 {
		t.Fatalf("guest writes not visible in host memory")
	}

	e := v.run(t, ExitIO)
	if e.IODirection != IOOut || e.IOPort != 0x3f8 || e.IOSize != 1 || e.IOCount != 1 || string(e.IOData) != "A" || e.IOValue() != 'A' {
		t.Fatalf("out exit decoded as %s data %q", e.String(), e.IOData)
	}
	e = v.run(t, ExitIO)
	if e.IODirection != IOIn || e.IOPort != 0x3f8 || len(e.IOData) != 1 {
		t.Fatalf("in exit decoded as %s", e.String())
	}
	e.IOData[0] = 0x5a
	e = v.run(t, ExitMMIO)
	if !e.MMIOWrite || e.MMIOAddr != 0x4f000 || len(e.MMIOData) != 1 || e.MMIOData[0] != 7 {
		t.Fatalf("mmio exit decoded as %s data %x", e.String(), e.MMIOData)
	}
	v.run(t, ExitHLT)
	r, err := v.cpu.GetRegs()
	if err != nil {
		t.Fatal(err)
	}
	if r.RBX&0xff != 0x5a {
		t.Fatalf("value supplied for the in instruction not seen by the guest: bl=%#x", r.RBX&0xff)
	}
	if got, want := dirtyPages(t, v), []uint64{0x40}; !equalPages(got, want) {
		t.Fatalf("dirty pages after second block: %#x, want %#x", got, want)
	}

	// Turning logging off makes GetDirtyLog an error; on again starts clean.
	if err := v.vm.SetDirtyLogging(0, false); err != nil {
		t.Fatal(err)
	}
	if err := v.vm.GetDirtyLog(0, make([]uint64, v.slot.BitmapWords())); err == nil {
		t.Fatal("GetDirtyLog succeeded on a slot without dirty logging")
	}
	if err := v.vm.SetDirtyLogging(0, true); err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(t, v); len(got) != 0 {
		t.Fatalf("freshly enabled dirty log not empty: %#x", got)
	}
	if err := v.vm.GetDirtyLog(0, make([]uint64, v.slot.BitmapWords()-1)); err == nil {
		t.Fatal("GetDirtyLog accepted a short bitmap")
	}
	if err := v.vm.GetDirtyLog(7, make([]uint64, 8)); err == nil {
		t.Fatal("GetDirtyLog accepted an unknown slot")
	}
}

func TestKick(t *testing.T) {
	sys := needKVM(t)
	mem := anonMem(t, memSize)
	copy(mem[progAddr:], realModeProg)
	v := newTestVM(t, sys, mem)
	v.bootRealMode(t, progAddr+0x39) // jmp $

	type result struct {
		e   Exit
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		e, err := v.cpu.Run()
		done <- result{e, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("vcpu in a jmp $ loop exited by itself: %v %v", r.e.String(), r.err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := v.cpu.Kick(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.e.Reason != ExitIntr {
			t.Fatalf("after a kick: exit %v, err %v; want INTR", r.e.String(), r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("kick did not interrupt KVM_RUN")
	}
	// Still kicked: the next Run returns at once.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if e := v.run(t, ExitIntr); e.Reason != ExitIntr {
		t.Fatal("kick not sticky")
	}
	v.cpu.ClearKick()
	if r, _ := v.cpu.GetRegs(); r.RIP != progAddr+0x39 {
		t.Fatalf("rip moved to %#x", r.RIP)
	}
}

func TestStateMovesToNewVM(t *testing.T) {
	sys := needKVM(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mem := anonMem(t, memSize)
	copy(mem[progAddr:], realModeProg)
	a := newTestVM(t, sys, mem)
	a.bootRealMode(t, progAddr)
	a.run(t, ExitHLT) // stopped after the first block, before the second
	st, err := a.cpu.GetState()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.TSC(); !ok {
		t.Fatal("state has no TSC")
	}
	if len(st.CPUID) == 0 || st.FPU == nil || st.TSCKHz == 0 {
		t.Fatalf("state incomplete: %d cpuid entries, fpu %v, tsc %d kHz", len(st.CPUID), st.FPU != nil, st.TSCKHz)
	}
	blob, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var st2 VCPUState
	if err := st2.UnmarshalBinary(blob); err != nil {
		t.Fatal(err)
	}

	b := newTestVM(t, sys, mem)
	if err := b.cpu.SetState(&st2); err != nil {
		t.Fatal(err)
	}
	got, err := b.cpu.GetState()
	if err != nil {
		t.Fatal(err)
	}
	if got.Regs != st.Regs {
		t.Errorf("regs differ after restore:\n got %s\nwant %s", got.Regs.String(), st.Regs.String())
	}
	gs, ws := got.Sregs, st.Sregs
	gs.InterruptBitmap, ws.InterruptBitmap = [4]uint64{}, [4]uint64{}
	if gs != ws {
		t.Errorf("sregs differ after restore:\n got %+v\nwant %+v", gs, ws)
	}
	tscA, _ := st.TSC()
	tscB, _ := got.TSC()
	if tscB < tscA || tscB-tscA > uint64(st.TSCKHz)*1000 { // within a second
		t.Errorf("guest TSC not carried over: saved %d, new vm reads %d", tscA, tscB)
	}
	for _, m := range st.MSRs {
		if m.Index == MSRIA32TSC {
			continue
		}
		for _, n := range got.MSRs {
			if n.Index == m.Index && n.Data != m.Data {
				t.Errorf("MSR %#x = %#x after restore, saved %#x", m.Index, n.Data, m.Data)
			}
		}
	}
	// The restored vCPU continues with the second block in the new VM.
	b.run(t, ExitIO)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open("/nonexistent/kvm")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Open of a missing device: %v; want ErrUnavailable wrapping ENOENT", err)
	}
	if ok, _ := Available("/nonexistent/kvm"); ok {
		t.Fatal("Available reported a missing device as usable")
	}
	f, err := os.CreateTemp(t.TempDir(), "notkvm")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Open(f.Name()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open of a regular file: %v; want ErrUnavailable", err)
	}
}

func TestStructLayouts(t *testing.T) {
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"Regs", unsafe.Sizeof(Regs{}), sizeofRegs},
		{"Sregs", unsafe.Sizeof(Sregs{}), sizeofSregs},
		{"Segment", unsafe.Sizeof(Segment{}), 24},
		{"DTable", unsafe.Sizeof(DTable{}), 16},
		{"CPUIDEntry", unsafe.Sizeof(CPUIDEntry{}), sizeofCPUIDEntry2},
		{"MSREntry", unsafe.Sizeof(MSREntry{}), sizeofMSREntry},
		{"MemoryRegion", unsafe.Sizeof(MemoryRegion{}), 32},
		{"dirtyLog", unsafe.Sizeof(dirtyLog{}), 16},
		{"clearDirtyLog", unsafe.Sizeof(clearDirtyLog{}), 24},
		{"enableCap", unsafe.Sizeof(enableCap{}), 104},
		{"Sregs.CR0 offset", unsafe.Offsetof(Sregs{}.CR0), 224},
		{"Sregs.EFER offset", unsafe.Offsetof(Sregs{}.EFER), 264},
		{"Sregs.InterruptBitmap offset", unsafe.Offsetof(Sregs{}.InterruptBitmap), 280},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d (uapi layout)", c.name, c.got, c.want)
		}
	}
	// The ioctl numbers encode the argument sizes (_IOC size field, bits 16-29).
	for _, c := range []struct {
		req  uintptr
		size uintptr
	}{
		{kvmGetRegs, sizeofRegs}, {kvmSetSregs, sizeofSregs}, {kvmGetFPU, sizeofFPU},
		{kvmGetXSave, sizeofXSave}, {kvmSetXCRs, sizeofXCRs}, {kvmGetVCPUEvents, sizeofVCPUEvents},
		{kvmSetDebugRegs, sizeofDebugRegs}, {kvmSetUserMemoryRegion, 32}, {kvmGetDirtyLog, 16},
		{kvmClearDirtyLog, 24}, {kvmEnableCap, 104}, {kvmSetIdentityMapAddr, 8},
	} {
		if got := c.req >> 16 & 0x3fff; got != c.size {
			t.Errorf("%s encodes size %d, struct is %d", ioctlName(c.req), got, c.size)
		}
	}
}

func TestManualDirtyLogProtect(t *testing.T) {
	sys := needKVM(t)
	if n, _ := sys.CheckExtension(CapManualDirtyLogProtect2); n == 0 {
		t.Skip("skipping: kernel lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	mem := anonMem(t, memSize)
	copy(mem[progAddr:], realModeProg)
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.EnableManualDirtyLogProtect(false); err != nil {
		t.Fatal(err)
	}
	slot := MemoryRegion{Slot: 0, Flags: MemLogDirtyPages, MemorySize: memSize, UserspaceAddr: uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if err := vm.SetUserMemoryRegion(slot); err != nil {
		t.Fatal(err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	v := &testVM{vm: vm, cpu: cpu, mem: mem, slot: slot}
	v.bootRealMode(t, progAddr)
	v.run(t, ExitHLT)
	want := []uint64{0x10, 0x20, 0x33}
	for i := 0; i < 2; i++ { // reading does not clear in manual mode
		if got := dirtyPages(t, v); !equalPages(got, want) {
			t.Fatalf("read %d: dirty pages %#x, want %#x", i, got, want)
		}
	}
	bits := make([]uint64, slot.BitmapWords())
	bits[0] = 1 << 0x10
	if err := vm.ClearDirtyLog(0, 0, uint32(slot.Pages()), bits); err != nil {
		t.Fatal(err)
	}
	if got := dirtyPages(t, v); !equalPages(got, []uint64{0x20, 0x33}) {
		t.Fatalf("after clearing page 0x10: %#x", got)
	}
	if err := vm.ClearDirtyLog(0, 0, uint32(slot.Pages()), []uint64{}); err == nil {
		t.Fatal("ClearDirtyLog accepted a short bitmap")
	}
}
