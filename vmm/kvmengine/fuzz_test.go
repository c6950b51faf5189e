package kvmengine

import (
	"testing"

	"github.com/ovs-agent/ovs-agent/vmm/kvm"
)

func TestDecodeOut(t *testing.T) {
	mem := make([]byte, 0x2000)
	copy(mem[0x1000:], "hello\n")
	cases := []struct {
		insn               []byte
		regs               kvm.Regs
		ok                 bool
		n                  int
		port               uint16
		size               uint8
		count              uint32
		data               string
		rsiAfter, rcxAfter uint64
	}{
		{insn: []byte{0xee}, regs: kvm.Regs{RAX: 0x41, RDX: 0x3f8}, ok: true, n: 1, port: 0x3f8, size: 1, count: 1, data: "A"},
		{insn: []byte{0xef}, regs: kvm.Regs{RAX: 0x04030201, RDX: 0x510}, ok: true, n: 1, port: 0x510, size: 4, count: 1, data: "\x01\x02\x03\x04"},
		{insn: []byte{0x66, 0xef}, regs: kvm.Regs{RAX: 0x0201, RDX: 0x511}, ok: true, n: 2, port: 0x511, size: 2, count: 1, data: "\x01\x02"},
		{insn: []byte{0xe6, 0x80}, regs: kvm.Regs{RAX: 7}, ok: true, n: 2, port: 0x80, size: 1, count: 1, data: "\x07"},
		{insn: []byte{0xe7, 0x70}, regs: kvm.Regs{RAX: 7}, ok: true, n: 2, port: 0x70, size: 4, count: 1, data: "\x07\x00\x00\x00"},
		{insn: []byte{0xf3, 0x6e}, regs: kvm.Regs{RSI: 0x1000, RCX: 6, RDX: 0x3f8}, ok: true, n: 2, port: 0x3f8, size: 1, count: 6, data: "hello\n", rsiAfter: 0x1006},
		{insn: []byte{0x6e}, regs: kvm.Regs{RSI: 0x1000, RCX: 6, RDX: 0x3f8}, ok: true, n: 1, port: 0x3f8, size: 1, count: 1, data: "h", rsiAfter: 0x1001, rcxAfter: 6},
		{insn: []byte{0xf3, 0x6e}, regs: kvm.Regs{RSI: 0x1ffe, RCX: 6, RDX: 0x3f8}}, // beyond memory
		{insn: []byte{0xf3, 0x6e}, regs: kvm.Regs{RSI: 0x1000, RCX: 1 << 20}},       // too long
		{insn: []byte{0xf3, 0x6e}, regs: kvm.Regs{RSI: 0x1000, RCX: 6, RFLAGS: 1 << 10}},
		{insn: []byte{0xf3, 0xee}},                   // rep out: not an encoding the guest uses
		{insn: []byte{0xec}},                         // in
		{insn: []byte{0x0f, 0x0b}},                   // ud2
		{insn: []byte{0xe6}},                         // truncated
		{insn: []byte{0x66, 0x66, 0x66, 0x66, 0xee}}, // too many prefixes
		{insn: nil},
	}
	for i, c := range cases {
		regs := c.regs
		e, n, ok := decodeOut(c.insn, &regs, mem)
		if ok != c.ok {
			t.Errorf("case %d (% x): ok=%v", i, c.insn, ok)
			continue
		}
		if !ok {
			continue
		}
		if n != c.n || e.IOPort != c.port || e.IOSize != c.size || e.IOCount != c.count || string(e.IOData) != c.data || e.IODirection != kvm.IOOut {
			t.Errorf("case %d (% x): n=%d %s data %q", i, c.insn, n, e.String(), e.IOData)
		}
		if c.rsiAfter != 0 && (regs.RSI != c.rsiAfter || regs.RCX != c.rcxAfter) {
			t.Errorf("case %d: rsi %#x rcx %d after", i, regs.RSI, regs.RCX)
		}
	}
}

func FuzzDecodeOut(f *testing.F) {
	f.Add([]byte{0xee}, uint64(0x41), uint64(0x3f8), uint64(0), uint64(0), uint64(2))
	f.Add([]byte{0xf3, 0x6e}, uint64(0), uint64(0x3f8), uint64(0x100), uint64(16), uint64(2))
	f.Add([]byte{0x66, 0xef, 0x90}, uint64(1), uint64(0x510), uint64(0), uint64(0), uint64(0x402))
	f.Add([]byte{0xe7, 0x80}, uint64(0), uint64(0), uint64(0), uint64(0), uint64(2))
	mem := make([]byte, 0x1000)
	f.Fuzz(func(t *testing.T, insn []byte, rax, rdx, rsi, rcx, rflags uint64) {
		regs := kvm.Regs{RAX: rax, RDX: rdx, RSI: rsi, RCX: rcx, RFLAGS: rflags}
		e, n, ok := decodeOut(insn, &regs, mem)
		if !ok {
			return
		}
		if n <= 0 || n > len(insn) {
			t.Fatalf("length %d for % x", n, insn)
		}
		if uint64(len(e.IOData)) != uint64(e.IOSize)*uint64(e.IOCount) {
			t.Fatalf("%d data bytes for size %d count %d", len(e.IOData), e.IOSize, e.IOCount)
		}
		if e.IOCount > maxOutsb {
			t.Fatalf("count %d", e.IOCount)
		}
	})
}

func TestStateRoundTrip(t *testing.T) {
	b := mustState(t, 3)
	vs, err := UnmarshalState(b)
	if err != nil || len(vs) != 3 || vs[2].Regs.RIP != 2 {
		t.Fatalf("round trip: %v %v", vs, err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := UnmarshalState(b[:i]); err == nil {
			t.Fatalf("truncated state of %d bytes accepted", i)
		}
	}
	if _, err := UnmarshalState(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func FuzzUnmarshalState(f *testing.F) {
	one, _ := MarshalState([]*kvm.VCPUState{{Regs: kvm.Regs{RIP: 0x100000}}})
	f.Add(one)
	two, _ := MarshalState([]*kvm.VCPUState{{}, {MSRs: []kvm.MSREntry{{Index: kvm.MSRIA32TSC, Data: 5}}}})
	f.Add(two)
	f.Add([]byte("OVSKVMMS\x01\x00\x00\x00\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		vs, err := UnmarshalState(b)
		if err != nil {
			return
		}
		again, err := MarshalState(vs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalState(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}
