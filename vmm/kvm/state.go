package kvm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// VCPUState is everything needed to continue a vCPU in another VM (on this
// host or another one with a compatible CPU): registers, control state,
// FPU/XSAVE, XCRs, MSRs (including the guest TSC), pending events, debug
// registers, CPUID and TSC frequency. Fields a kernel does not support are
// left empty and skipped on restore.
type VCPUState struct {
	Regs      Regs
	Sregs     Sregs
	FPU       *FPU         // always saved; restored only when XSave is empty
	XSave     []byte       // KVM_GET_XSAVE(2) area
	XCRs      []byte       // struct kvm_xcrs
	MSRs      []MSREntry   // in restore order; MSR_IA32_TSC last
	Events    []byte       // struct kvm_vcpu_events
	DebugRegs []byte       // struct kvm_debugregs
	CPUID     []CPUIDEntry // what the guest saw
	TSCKHz    uint32       // guest TSC frequency
}

// TSCTolerancePPM is the frequency difference SetState accepts without
// asking KVM to scale the guest TSC (KVM's own default tolerance).
const TSCTolerancePPM = 250

// TSC returns the saved guest TSC value and whether one was saved.
func (s *VCPUState) TSC() (uint64, bool) {
	for _, m := range s.MSRs {
		if m.Index == MSRIA32TSC {
			return m.Data, true
		}
	}
	return 0, false
}

func (vm *VM) stateMSRs() ([]uint32, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.msrs != nil {
		return vm.msrs, nil
	}
	list, err := vm.sys.MSRIndexList()
	if err != nil {
		return nil, err
	}
	have := map[uint32]bool{}
	for _, m := range list {
		have[m] = true
	}
	out := []uint32{}
	for _, m := range StateMSRs { // keeps StateMSRs order: TSC last
		if have[m] {
			out = append(out, m)
		}
	}
	vm.msrs = out
	return out, nil
}

// GetState captures the vCPU's state. The vCPU must not be running.
func (c *VCPU) GetState() (*VCPUState, error) {
	var st VCPUState
	var err error
	if st.Regs, err = c.GetRegs(); err != nil {
		return nil, err
	}
	if st.Sregs, err = c.GetSregs(); err != nil {
		return nil, err
	}
	fpu, err := c.GetFPU()
	if err != nil {
		return nil, err
	}
	st.FPU = &fpu
	if n, err := c.XSaveSize(); err != nil {
		return nil, err
	} else if n > 0 {
		if st.XSave, err = c.GetXSave(); err != nil {
			return nil, err
		}
	}
	if ok, err := c.vm.CheckExtension(CapXCRs); err != nil {
		return nil, err
	} else if ok > 0 {
		if st.XCRs, err = c.GetXCRs(); err != nil {
			return nil, err
		}
	}
	msrs, err := c.vm.stateMSRs()
	if err != nil {
		return nil, err
	}
	if st.MSRs, err = c.GetMSRs(msrs); err != nil {
		return nil, err
	}
	if ok, err := c.vm.CheckExtension(CapVCPUEvents); err != nil {
		return nil, err
	} else if ok > 0 {
		if st.Events, err = c.GetVCPUEvents(); err != nil {
			return nil, err
		}
	}
	if ok, err := c.vm.CheckExtension(CapDebugRegs); err != nil {
		return nil, err
	} else if ok > 0 {
		if st.DebugRegs, err = c.GetDebugRegs(); err != nil {
			return nil, err
		}
	}
	if st.CPUID, err = c.GetCPUID2(); err != nil {
		return nil, err
	}
	if ok, err := c.vm.CheckExtension(CapGetTSCKHz); err != nil {
		return nil, err
	} else if ok > 0 {
		if st.TSCKHz, err = c.GetTSCKHz(); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// SetState loads a state captured by GetState into this vCPU, normally a
// fresh vCPU in a new VM that has not run yet. The order follows what KVM
// needs: CPUID, TSC frequency, registers, XSAVE/FPU, XCRs, special
// registers, MSRs (TSC last), events, debug registers.
func (c *VCPU) SetState(st *VCPUState) error {
	if st == nil {
		return fmt.Errorf("vcpu %d: set state: nil state", c.id)
	}
	if len(st.CPUID) > 0 {
		if err := c.SetCPUID2(st.CPUID); err != nil {
			return fmt.Errorf("restore cpuid: %w", err)
		}
	}
	if st.TSCKHz != 0 {
		cur, err := c.GetTSCKHz()
		if err != nil {
			return fmt.Errorf("restore tsc frequency: %w", err)
		}
		diff := int64(cur) - int64(st.TSCKHz)
		if diff < 0 {
			diff = -diff
		}
		if diff*1_000_000 > int64(st.TSCKHz)*TSCTolerancePPM {
			if err := c.SetTSCKHz(st.TSCKHz); err != nil {
				return fmt.Errorf("restore tsc frequency: guest ran at %d kHz, this host at %d kHz and cannot scale: %w", st.TSCKHz, cur, err)
			}
		}
	}
	if err := c.SetRegs(st.Regs); err != nil {
		return err
	}
	switch {
	case len(st.XSave) > 0:
		if err := c.SetXSave(st.XSave); err != nil {
			return err
		}
	case st.FPU != nil:
		if err := c.SetFPU(*st.FPU); err != nil {
			return err
		}
	}
	if len(st.XCRs) > 0 {
		if err := c.SetXCRs(st.XCRs); err != nil {
			return err
		}
	}
	if err := c.SetSregs(st.Sregs); err != nil {
		return err
	}
	if err := c.SetMSRs(st.MSRs); err != nil {
		return err
	}
	if len(st.Events) > 0 {
		if err := c.SetVCPUEvents(st.Events); err != nil {
			return err
		}
	}
	if len(st.DebugRegs) > 0 {
		if err := c.SetDebugRegs(st.DebugRegs); err != nil {
			return err
		}
	}
	return nil
}

// Serialized state format: magic, version, then sections (tag u16, reserved
// u16, length u32, payload), all little-endian.
var stateMagic = [8]byte{'O', 'V', 'S', 'V', 'C', 'P', 'U', 0}

const stateVersion = 1

const (
	tagRegs      = 1
	tagSregs     = 2
	tagFPU       = 3
	tagXSave     = 4
	tagXCRs      = 5
	tagMSRs      = 6
	tagEvents    = 7
	tagDebugRegs = 8
	tagCPUID     = 9
	tagTSCKHz    = 10
)

// Limits on decoded sections (the stream comes from a peer).
const (
	maxXSave    = 1 << 20
	maxMSRs     = 4096
	maxCPUID    = 4096
	maxSections = 64
)

// MarshalBinary encodes the state for a save image or migration stream.
func (s *VCPUState) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.Write(stateMagic[:])
	binary.Write(&b, binary.LittleEndian, uint32(stateVersion))
	section := func(tag uint16, payload []byte) {
		binary.Write(&b, binary.LittleEndian, tag)
		binary.Write(&b, binary.LittleEndian, uint16(0))
		binary.Write(&b, binary.LittleEndian, uint32(len(payload)))
		b.Write(payload)
	}
	enc := func(v any) []byte {
		var e bytes.Buffer
		if err := binary.Write(&e, binary.LittleEndian, v); err != nil {
			panic(err) // fixed-size types only
		}
		return e.Bytes()
	}
	section(tagRegs, enc(&s.Regs))
	section(tagSregs, enc(&s.Sregs))
	if s.FPU != nil {
		section(tagFPU, s.FPU[:])
	}
	if len(s.XSave) > 0 {
		section(tagXSave, s.XSave)
	}
	if len(s.XCRs) > 0 {
		section(tagXCRs, s.XCRs)
	}
	if len(s.MSRs) > 0 {
		section(tagMSRs, enc(s.MSRs))
	}
	if len(s.Events) > 0 {
		section(tagEvents, s.Events)
	}
	if len(s.DebugRegs) > 0 {
		section(tagDebugRegs, s.DebugRegs)
	}
	if len(s.CPUID) > 0 {
		section(tagCPUID, enc(s.CPUID))
	}
	if s.TSCKHz != 0 {
		section(tagTSCKHz, enc(s.TSCKHz))
	}
	return b.Bytes(), nil
}

// UnmarshalBinary decodes a state written by MarshalBinary. Input is treated
// as untrusted: sizes are checked and unknown sections are rejected.
func (s *VCPUState) UnmarshalBinary(data []byte) error {
	*s = VCPUState{}
	if len(data) < 12 {
		return fmt.Errorf("vcpu state: %d bytes, too short for the header", len(data))
	}
	if !bytes.Equal(data[:8], stateMagic[:]) {
		return errors.New("vcpu state: bad magic (not a vCPU state record)")
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != stateVersion {
		return fmt.Errorf("vcpu state: version %d, this agent reads version %d", v, stateVersion)
	}
	p := data[12:]
	seen := map[uint16]bool{}
	for n := 0; len(p) > 0; n++ {
		if n >= maxSections {
			return fmt.Errorf("vcpu state: more than %d sections", maxSections)
		}
		tag, payload, rest, err := nextSection(p)
		if err != nil {
			return err
		}
		p = rest
		if seen[tag] {
			return fmt.Errorf("vcpu state: duplicate section %d", tag)
		}
		seen[tag] = true
		if err := s.decodeSection(tag, payload); err != nil {
			return err
		}
	}
	if !seen[tagRegs] || !seen[tagSregs] {
		return errors.New("vcpu state: registers or special registers missing")
	}
	return nil
}

// nextSection cuts the first section off p: its tag, its payload and
// what follows it.
func nextSection(p []byte) (tag uint16, payload, rest []byte, err error) {
	if len(p) < 8 {
		return 0, nil, nil, fmt.Errorf("vcpu state: truncated section header (%d bytes left)", len(p))
	}
	tag = binary.LittleEndian.Uint16(p)
	length := binary.LittleEndian.Uint32(p[4:])
	p = p[8:]
	if uint64(length) > uint64(len(p)) {
		return 0, nil, nil, fmt.Errorf("vcpu state: section %d claims %d bytes, %d left", tag, length, len(p))
	}
	return tag, p[:length], p[length:], nil
}

// decodeSection decodes the payload of section tag into s.
func (s *VCPUState) decodeSection(tag uint16, payload []byte) error {
	fixed := func(v any, size int) error {
		if len(payload) != size {
			return fmt.Errorf("vcpu state: section %d is %d bytes, want %d", tag, len(payload), size)
		}
		return binary.Read(bytes.NewReader(payload), binary.LittleEndian, v)
	}
	var err error
	switch tag {
	case tagRegs:
		err = fixed(&s.Regs, sizeofRegs)
	case tagSregs:
		err = fixed(&s.Sregs, sizeofSregs)
	case tagFPU:
		var f FPU
		if err = fixed(&f, sizeofFPU); err == nil {
			s.FPU = &f
		}
	case tagXSave:
		if len(payload) < sizeofXSave || len(payload) > maxXSave || len(payload)%4 != 0 {
			err = fmt.Errorf("vcpu state: xsave area of %d bytes (want %d..%d, multiple of 4)", len(payload), sizeofXSave, maxXSave)
		}
		s.XSave = append([]byte(nil), payload...)
	case tagXCRs:
		if len(payload) != sizeofXCRs {
			err = fmt.Errorf("vcpu state: xcrs of %d bytes, want %d", len(payload), sizeofXCRs)
		}
		s.XCRs = append([]byte(nil), payload...)
	case tagMSRs:
		if len(payload)%sizeofMSREntry != 0 || len(payload)/sizeofMSREntry > maxMSRs {
			err = fmt.Errorf("vcpu state: msr section of %d bytes (entries of %d, at most %d)", len(payload), sizeofMSREntry, maxMSRs)
			break
		}
		if len(payload) == 0 {
			break
		}
		s.MSRs = make([]MSREntry, len(payload)/sizeofMSREntry)
		err = binary.Read(bytes.NewReader(payload), binary.LittleEndian, s.MSRs)
	case tagEvents:
		if len(payload) != sizeofVCPUEvents {
			err = fmt.Errorf("vcpu state: events of %d bytes, want %d", len(payload), sizeofVCPUEvents)
		}
		s.Events = append([]byte(nil), payload...)
	case tagDebugRegs:
		if len(payload) != sizeofDebugRegs {
			err = fmt.Errorf("vcpu state: debug registers of %d bytes, want %d", len(payload), sizeofDebugRegs)
		}
		s.DebugRegs = append([]byte(nil), payload...)
	case tagCPUID:
		if len(payload)%sizeofCPUIDEntry2 != 0 || len(payload)/sizeofCPUIDEntry2 > maxCPUID {
			err = fmt.Errorf("vcpu state: cpuid section of %d bytes (entries of %d, at most %d)", len(payload), sizeofCPUIDEntry2, maxCPUID)
			break
		}
		if len(payload) == 0 {
			break
		}
		s.CPUID = make([]CPUIDEntry, len(payload)/sizeofCPUIDEntry2)
		err = binary.Read(bytes.NewReader(payload), binary.LittleEndian, s.CPUID)
	case tagTSCKHz:
		err = fixed(&s.TSCKHz, 4)
	default:
		err = fmt.Errorf("vcpu state: unknown section %d (written by a newer agent?)", tag)
	}
	return err
}

// CPUIDMissing lists the feature bits the saved CPUID shows in leaves 1 and
// 7 (ECX/EDX, EBX/ECX/EDX) that supported lacks: a target host that cannot
// present them cannot resume the guest safely. Empty means compatible.
func CPUIDMissing(saved, supported []CPUIDEntry) []string {
	find := func(list []CPUIDEntry, fn, idx uint32) (CPUIDEntry, bool) {
		for _, e := range list {
			if e.Function == fn && (e.Flags&CPUIDFlagSignificantIndex == 0 || e.Index == idx) {
				return e, true
			}
		}
		return CPUIDEntry{}, false
	}
	var out []string
	check := func(fn uint32, reg string, want, have uint32) {
		if miss := want &^ have; miss != 0 {
			out = append(out, fmt.Sprintf("cpuid leaf %#x %s bits %#x", fn, reg, miss))
		}
	}
	for _, fn := range []uint32{1, 7, 0x80000001} {
		s, ok := find(saved, fn, 0)
		if !ok {
			continue
		}
		h, _ := find(supported, fn, 0)
		if fn == 1 {
			// ECX bit 27 (OSXSAVE) mirrors CR4 and is not a capability.
			check(fn, "ecx", s.ECX&^(1<<27), h.ECX)
			check(fn, "edx", s.EDX, h.EDX)
			continue
		}
		check(fn, "ebx", s.EBX, h.EBX)
		check(fn, "ecx", s.ECX, h.ECX)
		check(fn, "edx", s.EDX, h.EDX)
	}
	sort.Strings(out)
	return out
}
