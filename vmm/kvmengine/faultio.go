package kvmengine

import (
	"fmt"

	"github.com/ovs-agent/ovs-agent/vmm/kvm"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// Faulted I/O.
//
// Some KVM implementations run guest ring 3 natively but do not virtualise
// I/O instructions there: the PVM hypervisor (kvm-pvm, used to offer KVM
// inside cloud VMs without nested hardware virtualisation) delivers the #GP
// to the guest, which has no IDT, so the vCPU triple-faults and KVM_RUN
// returns KVM_EXIT_SHUTDOWN with the registers still at the faulting
// instruction. (Ring 0 would not help: PVM emulates ring-0 code one
// instruction at a time, about 10^4 times slower.) When a SHUTDOWN exit
// comes from the workload guest's user code segment and the instruction at
// RIP is one of the I/O instructions the guest uses, the engine performs the
// I/O exactly as for a KVM_EXIT_IO, steps RIP over the instruction and lets
// the guest continue. Anything else is a genuine triple fault. On
// hardware-assisted KVM the same instructions exit as KVM_EXIT_IO and this
// path is never taken.

// maxOutsb bounds one emulated rep outsb (the guest's console lines are
// much shorter).
const maxOutsb = 4096

// faultedIO decodes the instruction a SHUTDOWN exit stopped at. It returns
// ok=false when the exit is not a faulted I/O instruction of the guest.
// On success it returns the equivalent IO exit and the registers to set
// once the I/O is done.
func (m *Machine) faultedIO() (exit kvm.Exit, regs kvm.Regs, ok bool, err error) {
	sregs, err := m.vcpu.GetSregs()
	if err != nil {
		return exit, regs, false, err
	}
	if sregs.CS.Selector != userCS || sregs.CS.Base != 0 || sregs.CS.L != 1 || sregs.EFER&kvm.EFERLMA == 0 {
		return exit, regs, false, nil
	}
	if regs, err = m.vcpu.GetRegs(); err != nil {
		return exit, regs, false, err
	}
	mem := m.ram.Bytes()
	// The guest's code is identity mapped in low RAM.
	if regs.RIP < workload.CodeAddr || regs.RIP+16 > workload.CodeAddr+workload.CodeMaxSize || regs.RIP+16 > uint64(len(mem)) {
		return exit, regs, false, nil
	}
	insn := mem[regs.RIP : regs.RIP+16]
	exit, n, ok := decodeOut(insn, &regs, mem)
	if !ok {
		return exit, regs, false, nil
	}
	regs.RIP += uint64(n)
	regs.RFLAGS &^= 1 << 16 // RF, set by the fault
	return exit, regs, true, nil
}

// decodeOut decodes an output instruction at the start of insn: out
// %al/%ax/%eax to (%dx) or to an 8-bit immediate port, and (rep) outsb. It
// returns the IO exit, the instruction length, and updates regs for string
// output (RSI advanced, RCX zeroed). mem is guest memory (identity mapped).
func decodeOut(insn []byte, regs *kvm.Regs, mem []byte) (kvm.Exit, int, bool) {
	e := kvm.Exit{Reason: kvm.ExitIO, IODirection: kvm.IOOut, IOCount: 1}
	i := 0
	rep, opsize := false, false
prefixes:
	for ; i < len(insn); i++ {
		switch {
		case insn[i] == 0xf3 && !rep:
			rep = true
		case insn[i] == 0x66 && !opsize:
			opsize = true
		case insn[i] == 0xf3 || insn[i] == 0x66:
			return e, 0, false // repeated prefix: not something the guest emits
		default:
			break prefixes
		}
	}
	if i >= len(insn) {
		return e, 0, false
	}
	op := insn[i]
	i++
	dx := uint16(regs.RDX)
	val := func(size uint8) []byte {
		b := make([]byte, size)
		for k := range b {
			b[k] = byte(regs.RAX >> (8 * k))
		}
		return b
	}
	wide := uint8(4)
	if opsize {
		wide = 2
	}
	switch op {
	case 0xee: // out %al,(%dx)
		e.IOPort, e.IOSize = dx, 1
	case 0xef: // out %eax,(%dx) / out %ax,(%dx)
		e.IOPort, e.IOSize = dx, wide
	case 0xe6, 0xe7: // out %al/%eax,$imm8
		if i >= len(insn) {
			return e, 0, false
		}
		e.IOPort = uint16(insn[i])
		i++
		e.IOSize = 1
		if op == 0xe7 {
			e.IOSize = wide
		}
	case 0x6e: // (rep) outsb
		if regs.RFLAGS&(1<<10) != 0 { // DF: the guest never runs with it set
			return e, 0, false
		}
		count := uint64(1)
		if rep {
			count = regs.RCX
		}
		if count == 0 {
			e.IOPort, e.IOSize, e.IOCount = dx, 1, 0
			return e, i, true
		}
		if count > maxOutsb || regs.RSI > uint64(len(mem)) || count > uint64(len(mem))-regs.RSI {
			return e, 0, false
		}
		e.IOPort, e.IOSize, e.IOCount = dx, 1, uint32(count)
		e.IOData = append([]byte(nil), mem[regs.RSI:regs.RSI+count]...)
		regs.RSI += count
		if rep {
			regs.RCX = 0
		}
		return e, i, true
	default:
		return e, 0, false
	}
	if rep {
		return e, 0, false
	}
	e.IOData = val(e.IOSize)
	return e, i, true
}

// completeFaultedIO handles a SHUTDOWN exit: either a faulted I/O
// instruction, performed and stepped over, or a genuine triple fault.
func (m *Machine) completeFaultedIO() (doorbell bool, err error) {
	exit, regs, ok, err := m.faultedIO()
	if err != nil {
		return false, err
	}
	if !ok {
		return false, m.fault("guest triple fault (shutdown)")
	}
	doorbell, err = m.handleIO(&exit)
	if err != nil {
		return false, err
	}
	if err := m.vcpu.SetRegs(regs); err != nil {
		return false, fmt.Errorf("step over faulted I/O: %w", err)
	}
	m.exits[4].Add(1)
	return doorbell, nil
}
