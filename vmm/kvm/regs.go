package kvm

import "fmt"

// Regs is struct kvm_regs: the general-purpose registers.
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment is struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable (GDT/IDT base and limit).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs is struct kvm_sregs: segment, descriptor-table and control registers.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8, EFER, APICBase    uint64
	InterruptBitmap        [4]uint64
}

// Control-register and EFER bits used to describe a long-mode vCPU.
const (
	CR0PE = 1 << 0
	CR0MP = 1 << 1
	CR0EM = 1 << 2
	CR0TS = 1 << 3
	CR0ET = 1 << 4
	CR0NE = 1 << 5
	CR0WP = 1 << 16
	CR0AM = 1 << 18
	CR0PG = 1 << 31

	CR4PAE        = 1 << 5
	CR4PGE        = 1 << 7
	CR4OSFXSR     = 1 << 9
	CR4OSXMMEXCPT = 1 << 10
	CR4OSXSAVE    = 1 << 18

	EFERSCE = 1 << 0
	EFERLME = 1 << 8
	EFERLMA = 1 << 10
	EFERNXE = 1 << 11
)

// FPU is struct kvm_fpu, kept opaque (x87, SSE registers and MXCSR).
type FPU [sizeofFPU]byte

// MSREntry is one model-specific register value.
type MSREntry struct {
	Index    uint32
	Reserved uint32
	Data     uint64
}

// Well-known MSR indices.
const (
	MSRIA32TSC          = 0x00000010
	MSRIA32TSCAdjust    = 0x0000003b
	MSRIA32SysenterCS   = 0x00000174
	MSRIA32SysenterESP  = 0x00000175
	MSRIA32SysenterEIP  = 0x00000176
	MSRIA32MiscEnable   = 0x000001a0
	MSRIA32CRPAT        = 0x00000277
	MSRSTAR             = 0xc0000081
	MSRLSTAR            = 0xc0000082
	MSRCSTAR            = 0xc0000083
	MSRSyscallMask      = 0xc0000084
	MSRKernelGSBase     = 0xc0000102
	MSRTSCAux           = 0xc0000103
	MSRIA32ArchCaps     = 0x0000010a
	MSRIA32FeatureCtrl  = 0x0000003a
	MSRIA32APICBase     = 0x0000001b
	MSRKVMSystemTimeNew = 0x4b564d01
	MSRKVMWallClockNew  = 0x4b564d00
)

// StateMSRs are the MSRs GetState saves when KVM lists them: the ones a
// 64-bit guest without interrupts or paravirtual clocks can observe.
var StateMSRs = []uint32{
	MSRIA32SysenterCS, MSRIA32SysenterESP, MSRIA32SysenterEIP,
	MSRSTAR, MSRLSTAR, MSRCSTAR, MSRSyscallMask, MSRKernelGSBase,
	MSRTSCAux, MSRIA32CRPAT, MSRIA32MiscEnable,
	MSRIA32TSCAdjust, MSRIA32TSC,
}

func (r *Regs) String() string {
	return fmt.Sprintf("rip=%#x rsp=%#x rflags=%#x rax=%#x rbx=%#x rcx=%#x rdx=%#x rsi=%#x rdi=%#x rbp=%#x",
		r.RIP, r.RSP, r.RFLAGS, r.RAX, r.RBX, r.RCX, r.RDX, r.RSI, r.RDI, r.RBP)
}
