package kvm

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

func sampleState() *VCPUState {
	var fpu FPU
	for i := range fpu {
		fpu[i] = byte(i)
	}
	st := &VCPUState{
		Regs:      Regs{RAX: 1, RBX: 2, RIP: 0x100000, RSP: 0x10000, RFLAGS: 0x3202},
		Sregs:     Sregs{CR0: 0x80050033, CR3: 0x10000, CR4: 0x620, EFER: 0x500, CS: Segment{Selector: 0x33, DPL: 3, L: 1, Present: 1}},
		FPU:       &fpu,
		XSave:     bytes.Repeat([]byte{0xab}, 4096),
		XCRs:      bytes.Repeat([]byte{1}, sizeofXCRs),
		MSRs:      []MSREntry{{Index: MSRSTAR, Data: 0x23 << 48}, {Index: MSRIA32TSC, Data: 123456789}},
		Events:    bytes.Repeat([]byte{0}, sizeofVCPUEvents),
		DebugRegs: bytes.Repeat([]byte{2}, sizeofDebugRegs),
		CPUID:     []CPUIDEntry{{Function: 1, EAX: 0xa00f11, ECX: 0x80202001, EDX: 0x178bfbff}, {Function: 7, EBX: 0x219c07ab}},
		TSCKHz:    2445424,
	}
	return st
}

func TestStateRoundTrip(t *testing.T) {
	st := sampleState()
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got VCPUState
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, st) {
		t.Fatalf("round trip changed the state:\n got %+v\nwant %+v", got, *st)
	}
	if tsc, ok := got.TSC(); !ok || tsc != 123456789 {
		t.Fatalf("TSC() = %d, %v", tsc, ok)
	}
	// Minimal state: registers only.
	min := &VCPUState{Regs: Regs{RIP: 5}}
	b, _ = min.MarshalBinary()
	if err := got.UnmarshalBinary(b); err != nil || got.Regs.RIP != 5 || got.FPU != nil || got.XSave != nil {
		t.Fatalf("minimal state: %+v, %v", got, err)
	}
}

func TestStateUnmarshalRejects(t *testing.T) {
	good, _ := sampleState().MarshalBinary()
	section := func(tag uint16, payload []byte) []byte {
		var b []byte
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, 0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
		return append(b, payload...)
	}
	header := append(append([]byte(nil), stateMagic[:]...), 1, 0, 0, 0)
	regs := section(tagRegs, make([]byte, sizeofRegs))
	sregs := section(tagSregs, make([]byte, sizeofSregs))
	cases := map[string][]byte{
		"empty":           nil,
		"short":           good[:10],
		"bad magic":       append([]byte("NOTVCPU\x00"), good[8:]...),
		"bad version":     append(append(append([]byte(nil), stateMagic[:]...), 9, 0, 0, 0), good[12:]...),
		"truncated":       good[:len(good)-1],
		"no sregs":        append(append([]byte(nil), header...), regs...),
		"duplicate regs":  append(append(append(append([]byte(nil), header...), regs...), sregs...), regs...),
		"short regs":      append(append(append([]byte(nil), header...), section(tagRegs, make([]byte, 10))...), sregs...),
		"unknown section": append(append(append(append([]byte(nil), header...), regs...), sregs...), section(99, nil)...),
		"odd msrs":        append(append(append(append([]byte(nil), header...), regs...), sregs...), section(tagMSRs, make([]byte, 17))...),
		"small xsave":     append(append(append(append([]byte(nil), header...), regs...), sregs...), section(tagXSave, make([]byte, 100))...),
		"huge length":     append(append([]byte(nil), header...), 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff),
	}
	for name, b := range cases {
		var st VCPUState
		if err := st.UnmarshalBinary(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCPUIDMissing(t *testing.T) {
	host := []CPUIDEntry{{Function: 1, ECX: 0x0000ffff, EDX: 0xffffffff}, {Function: 7, Flags: CPUIDFlagSignificantIndex, Index: 0, EBX: 0xff}}
	ok := []CPUIDEntry{{Function: 1, ECX: 0x08000001 /* OSXSAVE ignored */, EDX: 1}, {Function: 7, EBX: 0x0f}}
	if m := CPUIDMissing(ok, host); len(m) != 0 {
		t.Fatalf("compatible CPUID reported missing %v", m)
	}
	bad := []CPUIDEntry{{Function: 1, ECX: 0x00010000}, {Function: 7, EBX: 0x100}}
	if m := CPUIDMissing(bad, host); len(m) != 2 {
		t.Fatalf("missing bits not reported: %v", m)
	}
}

func FuzzUnmarshalVCPUState(f *testing.F) {
	good, _ := sampleState().MarshalBinary()
	f.Add(good)
	min, _ := (&VCPUState{}).MarshalBinary()
	f.Add(min)
	f.Add([]byte{})
	f.Add(append(append([]byte(nil), stateMagic[:]...), 1, 0, 0, 0, 6, 0, 0, 0, 16, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		var st VCPUState
		if err := st.UnmarshalBinary(b); err != nil {
			return
		}
		// Whatever decodes must encode and decode to the same state.
		again, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var st2 VCPUState
		if err := st2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatalf("unstable round trip")
		}
	})
}
