package workload

import (
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

func TestParamsFromSpec(t *testing.T) {
	def := DefaultParams()
	with := func(f func(*Params)) Params { p := def; f(&p); return p }
	cases := []struct {
		spec string
		ram  uint64
		want Params
		err  string
	}{
		{spec: "", ram: 64 << 20, want: def},
		{spec: "dirty=200M/s,hot=256M,pattern=random", ram: 512 << 20, want: with(func(p *Params) { p.DirtyRate = 200 << 20; p.HotSize = 256 << 20 })},
		{spec: "dirty=64K/s,hot=all", ram: 64 << 20, want: with(func(p *Params) { p.DirtyRate = 64 << 10 })},
		{spec: "dirty=6000/s", ram: 64 << 20, want: with(func(p *Params) { p.DirtyRate = 6000 })},
		{spec: "pattern=sequential,verify=250ms,hb=2s,seed=0x10", ram: 64 << 20, want: with(func(p *Params) {
			p.Pattern = PatternSequential
			p.VerifyInterval = 250 * time.Millisecond
			p.HeartbeatInterval = 2 * time.Second
			p.Seed = 16
		})},
		{spec: "touch=1G,dirty=0", ram: 2 << 30, want: with(func(p *Params) { p.TouchSize = 1 << 30 })},
		{spec: "touch=32M,hot=16M,dirty=8M/s", ram: 64 << 20, want: with(func(p *Params) { p.TouchSize = 32 << 20; p.HotSize = 16 << 20; p.DirtyRate = 8 << 20 })},
		// Each fits vm.cfg's check (hot+touch <= memory) but not the guest's own tables.
		{spec: "hot=64M", ram: 64 << 20, err: "workload layout: hot=64M does not fit in 64 MiB of memory (needs 68 MiB with the guest's own tables)"},
		{spec: "hot=32M,touch=32M", ram: 64 << 20, err: "workload layout: hot=32M plus touch=32M does not fit in 64 MiB of memory (needs 68 MiB with the guest's own tables)"},
		{spec: "touch=2047M", ram: 2 << 30, err: "workload layout: touch=2047M leaves no room for a hot set in 2048 MiB of memory (needs at least 2054 MiB with the guest's own tables)"},
		{spec: "", ram: 2 << 20, err: "leaves no room for a hot set"},
		{spec: "", ram: 3 << 20, err: "not a positive multiple of 2 MiB"},
		{spec: "", ram: 128 << 30, err: "above the 65536 MiB the workload guest maps"},
	}
	for _, c := range cases {
		w, err := vmcfg.ParseWorkload(c.spec)
		if err != nil {
			t.Fatalf("ParseWorkload(%q): %v", c.spec, err)
		}
		got, err := ParamsFromSpec(w, c.ram)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParamsFromSpec(%q, %d MiB) = %+v, %v; want error containing %q", c.spec, c.ram>>20, got, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParamsFromSpec(%q, %d MiB): %v", c.spec, c.ram>>20, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParamsFromSpec(%q) = %+v, want %+v", c.spec, got, c.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("ParamsFromSpec(%q) result does not validate: %v", c.spec, err)
		}
		if got.Spec() != w || got.String() != w.String() {
			t.Errorf("ParamsFromSpec(%q).Spec() = %+v (%q), want %+v", c.spec, got.Spec(), got.String(), w)
		}
	}
}

// ParamsFromSpec validates a Workload built in code, with vm.cfg's messages.
func TestParamsFromSpecInvalid(t *testing.T) {
	for _, c := range []struct {
		change func(*vmcfg.Workload)
		err    string
	}{
		{func(w *vmcfg.Workload) { w.Pattern = "zigzag" }, "workload: pattern=zigzag is not random or sequential"},
		{func(w *vmcfg.Workload) { w.HotBytes = 1000 }, "workload: hot=1000 is not a multiple of the 4K page size"},
		{func(w *vmcfg.Workload) { w.Touch = -4096 }, "workload: touch=-4096 is negative"},
		{func(w *vmcfg.Workload) { w.DirtyBytesPerSec = 1 }, "workload: dirty=1/s is less than one page (4K) per second"},
		{func(w *vmcfg.Workload) { w.VerifyEvery = time.Millisecond }, "workload: verify=1ms is out of range (10ms to 1h0m0s)"},
		{func(w *vmcfg.Workload) { w.HeartbeatEvery = 0 }, "workload: hb=0s is out of range (100ms to 1h0m0s)"},
	} {
		w := vmcfg.DefaultWorkload()
		c.change(&w)
		if _, err := ParamsFromSpec(w, 64<<20); err == nil || err.Error() != c.err {
			t.Errorf("ParamsFromSpec(%+v): %v, want %s", w, err, c.err)
		}
	}
	p := DefaultParams()
	p.DirtyRate = 1 << 63
	if err := p.Validate(); err == nil {
		t.Error("a dirty rate beyond int64 validates")
	}
	p = DefaultParams()
	p.Pattern = 7
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "pattern(7)") {
		t.Errorf("pattern 7: %v", err)
	}
}

// FuzzParamsFromSpec: whatever vm.cfg accepts either does not fit the
// guest's memory or becomes parameters that lay out inside it, keep the
// sizes asked for, and convert back to the same spec.
func FuzzParamsFromSpec(f *testing.F) {
	for _, s := range []string{"", "dirty=200M/s,hot=256M,pattern=random", "touch=1G,dirty=0", "hot=all,touch=60M",
		"hot=4K,touch=4K,dirty=4K/s", "verify=10ms,hb=100ms,seed=0xffffffffffffffff", "hot=2T", "touch=63M", "pattern=sequential,hot=8M,dirty=64G/s"} {
		f.Add(s, uint16(64))
		f.Add(s, uint16(2048))
	}
	f.Add("touch=1G", uint16(1))
	f.Add("", uint16(65535))
	f.Fuzz(func(t *testing.T, spec string, ramMiB uint16) {
		w, err := vmcfg.ParseWorkload(spec)
		if err != nil {
			return
		}
		ram := uint64(ramMiB) << 20
		p, err := ParamsFromSpec(w, ram)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "workload layout: ") {
				t.Fatalf("ParamsFromSpec(%q, %d MiB): error without context: %v", spec, ramMiB, err)
			}
			return
		}
		if p.Spec() != w {
			t.Fatalf("ParamsFromSpec(%q).Spec() = %+v, want %+v", spec, p.Spec(), w)
		}
		l, err := NewLayout(ram, p)
		if err != nil {
			t.Fatalf("ParamsFromSpec(%q, %d MiB) accepted, NewLayout: %v", spec, ramMiB, err)
		}
		if l.TouchPages*PageSize != p.TouchSize || (p.HotSize != 0 && l.HotPages*PageSize != p.HotSize) || l.HotPages == 0 {
			t.Fatalf("%q in %d MiB: layout %+v", spec, ramMiB, l)
		}
		if l.HotFirst*PageSize < GenTableAddr+l.TablePages()*8 || (l.HotFirst+l.TablePages())*PageSize > ram {
			t.Fatalf("%q in %d MiB: tracked pages %d+%d outside RAM or over the table", spec, ramMiB, l.HotFirst, l.TablePages())
		}
		// The parameter page describes the same layout.
		pp := NewParamPage(l, p)
		b := make([]byte, ParamPageWords*8)
		pp.Encode(b)
		if _, back, err := DecodeParamPage(b, ram); err != nil || back != l {
			t.Fatalf("%q in %d MiB: parameter page decodes to %+v, %v; want %+v", spec, ramMiB, back, err, l)
		}
	})
}
