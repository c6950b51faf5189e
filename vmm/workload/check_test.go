package workload

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// specParams parses a workload spec for a guest of ramSize bytes.
func specParams(t testing.TB, spec string, ramSize uint64) Params {
	t.Helper()
	w, err := vmcfg.ParseWorkload(spec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParamsFromSpec(w, ramSize)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// buildMemory lays out a workload in a fresh RAM and writes generation
// gens[i] of tracked page i (0: never written) directly, as the guest would.
func buildMemory(t *testing.T, size uint64, params string, gens map[uint64]uint64) (*guestmem.RAM, Layout) {
	t.Helper()
	p := specParams(t, params, size)
	r, err := guestmem.NewRAM(t.Name(), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	l, err := NewLayout(size, p)
	if err != nil {
		t.Fatal(err)
	}
	pp := NewParamPage(l, p)
	mem := r.Bytes()
	pp.Encode(mem[ParamPageAddr:])
	binary.LittleEndian.PutUint64(mem[StatusPageAddr:], StatusMagic)
	for idx, gen := range gens {
		pg := l.HotFirst + idx
		binary.LittleEndian.PutUint64(mem[GenTableAddr+8*idx:], gen)
		FillPage(mem[pg*PageSize:], p.Seed, pg, gen)
	}
	return r, l
}

func TestCheckClean(t *testing.T) {
	r, l := buildMemory(t, 64<<20, "hot=8M,seed=9", map[uint64]uint64{0: 1, 5: 3, 2047: 2})
	// RAM first: reading through BytesMemory faults every page in.
	for i, mem := range []Memory{r, BytesMemory(r.Bytes())} {
		rep, err := Check(mem)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Written != 3 || rep.Unwritten != l.HotPages-3 || rep.Corrupt != 0 || rep.Err() != nil {
			t.Fatalf("report %+v", rep)
		}
		if i == 0 {
			if rep.Holes == 0 || rep.Holes > rep.Unwritten {
				t.Fatalf("memfd holes not skipped: %+v", rep)
			}
			if n, _ := r.DataPages(); n > 16 {
				t.Fatalf("Check faulted in memory: %d data pages", n)
			}
		}
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	le := binary.LittleEndian
	cases := []struct {
		name   string
		mutate func(mem []byte, l Layout)
		page   uint64 // hot index
		word   int
	}{
		{"flipped byte", func(mem []byte, l Layout) { mem[(l.HotFirst+5)*PageSize+1234] ^= 1 }, 5, 1234 / 8},
		{"stale generation", func(mem []byte, l Layout) { le.PutUint64(mem[GenTableAddr+8*5:], 4) }, 5, 1},
		{"page lost (zero)", func(mem []byte, l Layout) { clear(mem[(l.HotFirst+5)*PageSize : (l.HotFirst+6)*PageSize]) }, 5, 0},
		{"page moved", func(mem []byte, l Layout) {
			copy(mem[(l.HotFirst+6)*PageSize:], mem[(l.HotFirst+5)*PageSize:(l.HotFirst+6)*PageSize])
			le.PutUint64(mem[GenTableAddr+8*6:], 3)
		}, 6, 0},
		{"garbage in unwritten page", func(mem []byte, l Layout) { mem[(l.HotFirst+9)*PageSize+8] = 1 }, 9, 1},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			r, l := buildMemory(t, 64<<20, "hot=8M,seed=9", map[uint64]uint64{0: 1, 5: 3})
			c.mutate(r.Bytes(), l)
			rep, err := Check(r)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Corrupt != 1 || len(rep.Mismatches) != 1 || rep.Err() == nil {
				t.Fatalf("report %+v", rep)
			}
			m := rep.Mismatches[0]
			if m.Page != l.HotFirst+c.page || m.Word != c.word {
				t.Fatalf("mismatch %s, want page %d word %d", m, l.HotFirst+c.page, c.word)
			}
		})
	}
}

// The touched region is tracked like the hot set: its written pages are
// compared in full, its unwritten ones must be zero, a page in flight
// there is skipped.
func TestCheckTouchedRegion(t *testing.T) {
	r, l := buildMemory(t, 64<<20, "hot=8M,touch=4M,seed=3", nil)
	if l.HotPages != 2048 || l.TouchPages != 1024 || l.TouchFirst() != l.HotFirst+2048 || l.TablePages() != 3072 {
		t.Fatalf("layout %+v", l)
	}
	mem := r.Bytes()
	gens := map[uint64]uint64{7: 2}
	for i := uint64(0); i < l.TouchPages; i++ {
		gens[l.HotPages+i] = 1
	}
	for idx, gen := range gens {
		pg := l.HotFirst + idx
		binary.LittleEndian.PutUint64(mem[GenTableAddr+8*idx:], gen)
		FillPage(mem[pg*PageSize:], 3, pg, gen)
	}
	rep, err := Check(r)
	if err != nil || rep.Corrupt != 0 || rep.Written != 1025 || rep.Unwritten != l.HotPages-1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	last := l.TouchFirst() + l.TouchPages - 1
	mem[last*PageSize+4000] ^= 0x10
	if rep, err := Check(r); err != nil || rep.Corrupt != 1 || rep.Mismatches[0].Page != last || rep.Mismatches[0].Word != 500 || rep.Mismatches[0].Gen != 1 {
		t.Fatalf("flip in the touched region: %+v, %v", rep, err)
	}
	binary.LittleEndian.PutUint64(mem[StatusPageAddr+8*StatusInFlight:], last+1)
	if rep, err := Check(r); err != nil || rep.Corrupt != 0 || rep.Written != 1024 {
		t.Fatalf("in-flight page of the touched region not skipped: %+v, %v", rep, err)
	}
	binary.LittleEndian.PutUint64(mem[StatusPageAddr+8*StatusInFlight:], last+2)
	if _, err := Check(r); err == nil {
		t.Fatal("in-flight page past the touched region accepted")
	}
}

func TestCheckInFlightAndErrors(t *testing.T) {
	r, l := buildMemory(t, 64<<20, "hot=8M", map[uint64]uint64{5: 3})
	mem := r.Bytes()
	mem[(l.HotFirst+5)*PageSize+100] ^= 0xff
	binary.LittleEndian.PutUint64(mem[StatusPageAddr+8*StatusInFlight:], l.HotFirst+5+1)
	rep, err := Check(r)
	if err != nil || rep.Corrupt != 0 || rep.InFlight != l.HotFirst+6 {
		t.Fatalf("in-flight page not skipped: %+v %v", rep, err)
	}
	binary.LittleEndian.PutUint64(mem[StatusPageAddr+8*StatusInFlight:], 3)
	if _, err := Check(r); err == nil {
		t.Fatal("in-flight page outside the hot set accepted")
	}
	mem[ParamPageAddr] ^= 1
	if _, err := Check(r); err == nil {
		t.Fatal("memory without a parameter page accepted")
	}
	if _, err := Check(BytesMemory(make([]byte, 4096))); err == nil {
		t.Fatal("tiny memory accepted")
	}
}
