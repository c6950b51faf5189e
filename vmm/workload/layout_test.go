package workload

import (
	"strings"
	"testing"
)

func TestNewLayout(t *testing.T) {
	const mib = 1 << 20
	// Pages left for tracked pages in ram bytes when the table takes tableMiB.
	left := func(ram, tableMiB uint64) uint64 { return (ram - GenTableAddr - tableMiB*mib) / PageSize }
	cases := []struct {
		ram       uint64
		hot       uint64
		touch     uint64
		wantHot   uint64 // pages
		wantTouch uint64
		err       string
	}{
		{ram: 128 * mib, wantHot: left(128*mib, 2)}, // hot=all: everything left
		{ram: 32 * mib, wantHot: left(32*mib, 2)},
		{ram: 64 * mib, hot: 16 * mib, wantHot: 4096},
		{ram: 8 << 30, hot: 64 * mib, wantHot: 16384},
		{ram: 8 << 30, wantHot: left(8<<30, 16)},
		{ram: 64 * mib, hot: 16 * mib, touch: 32 * mib, wantHot: 4096, wantTouch: 8192},
		{ram: 64 * mib, touch: 32 * mib, wantHot: left(64*mib, 2) - 8192, wantTouch: 8192},
		{ram: 2 << 30, touch: 1 << 30, wantHot: left(2<<30, 4) - 262144, wantTouch: 262144},
		{ram: 64 * mib, touch: left(64*mib, 2)*PageSize - PageSize, wantHot: 1, wantTouch: left(64*mib, 2) - 1},
		{ram: 64 * mib, touch: left(64*mib, 2) * PageSize, err: "touch=60M leaves no room for a hot set in 64 MiB of memory (needs at least 66 MiB"},
		{ram: 64 * mib, hot: 64 * mib, err: "hot=64M does not fit in 64 MiB of memory (needs 68 MiB"},
		{ram: 64 * mib, hot: 32 * mib, touch: 30 * mib, err: "hot=32M plus touch=30M does not fit in 64 MiB of memory (needs 66 MiB"},
		{ram: 2 * mib, err: "no room"},
		{ram: 3*mib + 4096, err: "multiple of 2 MiB"},
		{ram: 128 << 30, err: "above"},
	}
	for _, c := range cases {
		q := DefaultParams()
		q.HotSize, q.TouchSize = c.hot, c.touch
		l, err := NewLayout(c.ram, q)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("NewLayout(%d, hot %d, touch %d): %+v, %v; want error %q", c.ram, c.hot, c.touch, l, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewLayout(%d, hot %d, touch %d): %v", c.ram, c.hot, c.touch, err)
			continue
		}
		if l.HotPages != c.wantHot || l.TouchPages != c.wantTouch {
			t.Errorf("NewLayout(%d, hot %d, touch %d): %d hot pages and %d touched, want %d and %d", c.ram, c.hot, c.touch, l.HotPages, l.TouchPages, c.wantHot, c.wantTouch)
		}
		if l.HotFirst*PageSize != GenTableAddr+l.GenTableSize || l.GenTableSize < l.TablePages()*8 || (l.HotFirst+l.TablePages())*PageSize > c.ram {
			t.Errorf("NewLayout(%d): tracked pages %d+%d overlap the table (%d bytes) or leave RAM", c.ram, l.HotFirst, l.TablePages(), l.GenTableSize)
		}
		if l.TouchFirst() != l.HotFirst+l.HotPages {
			t.Errorf("touched region at %d, hot set %d+%d", l.TouchFirst(), l.HotFirst, l.HotPages)
		}
		// hot=all takes everything: one more page would not fit.
		if c.hot == 0 && MinRAM(l.TablePages()+1) <= c.ram {
			t.Errorf("NewLayout(%d, hot=all): %d pages leave room for more", c.ram, l.HotPages)
		}
	}
}

func TestLayoutHole(t *testing.T) {
	l, err := NewLayout(8<<30, DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	r := l.Regions()
	if len(r) != 2 || r[0] != (Region{0, 0, HoleStart}) || r[1] != (Region{HoleEnd, HoleStart, 8<<30 - HoleStart}) {
		t.Fatalf("regions %+v", r)
	}
	if l.GPATop() != 9<<30 || l.PageDirectories() != 9 {
		t.Fatalf("gpa top %#x, %d page directories", l.GPATop(), l.PageDirectories())
	}
	last := l.RAMPages - 1
	if got := l.PageGPA(last); got != 9<<30-PageSize {
		t.Fatalf("last page at gpa %#x", got)
	}
	if got := l.PageGPA(l.LowPages - 1); got != HoleStart-PageSize {
		t.Fatalf("last low page at gpa %#x", got)
	}
	small, _ := NewLayout(64<<20, DefaultParams())
	if len(small.Regions()) != 1 || small.GPATop() != 64<<20 || small.PageDirectories() != 1 {
		t.Fatalf("small layout: %+v top %#x", small.Regions(), small.GPATop())
	}
	if PDAddr+MaxRAM/(1<<30)*PageSize+PageSize > CodeAddr {
		t.Fatal("page directories for MaxRAM would overlap the code")
	}
}

func TestParamPageRoundTrip(t *testing.T) {
	p := specParams(t, "dirty=8M/s,hot=4M,touch=8M,pattern=sequential,verify=300ms,hb=500ms,seed=77", 64<<20)
	l, err := NewLayout(64<<20, p)
	if err != nil {
		t.Fatal(err)
	}
	pp := NewParamPage(l, p)
	pp.TSCKHz = 2000000
	b := make([]byte, PageSize)
	pp.Encode(b)
	got, gl, err := DecodeParamPage(b, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got != pp || gl != l {
		t.Fatalf("decode: %+v %+v, want %+v %+v", got, gl, pp, l)
	}
	if got.Params() != p {
		t.Fatalf("params from page %+v, want %+v", got.Params(), p)
	}
	if len(pp.words()) != ParamPageWords {
		t.Fatalf("ParamPageWords %d, struct has %d fields", ParamPageWords, len(pp.words()))
	}
	for name, mutate := range map[string]func(*ParamPage){
		"magic":   func(p *ParamPage) { p.Magic++ },
		"version": func(p *ParamPage) { p.Version = 1 },
		"pages":   func(p *ParamPage) { p.RAMPages++ },
		"hot0":    func(p *ParamPage) { p.HotPages = 0 },
		"touch":   func(p *ParamPage) { p.TouchPages = p.RAMPages },
		"touch2":  func(p *ParamPage) { p.TouchPages = p.RAMPages - p.HotFirst - p.HotPages + 1 },
		"touch3":  func(p *ParamPage) { p.TouchPages = ^uint64(0) - p.HotPages + 2 },
		"overlap": func(p *ParamPage) { p.HotFirst = GenTableAddr / PageSize },
		"beyond":  func(p *ParamPage) { p.HotFirst = p.RAMPages - 1 },
		"pattern": func(p *ParamPage) { p.Pattern = 7 },
		"table":   func(p *ParamPage) { p.GenTableGPA = 0 },
		"lowmap":  func(p *ParamPage) { p.LowPages = 1 },
	} {
		q := pp
		mutate(&q)
		q.Encode(b)
		if _, _, err := DecodeParamPage(b, 64<<20); err == nil {
			t.Errorf("%s: corrupted parameter page accepted", name)
		}
	}
	if _, _, err := DecodeParamPage(b[:10], 64<<20); err == nil {
		t.Error("short page accepted")
	}
}

func FuzzDecodeParamPage(f *testing.F) {
	p := DefaultParams()
	for _, ram := range []uint64{64 << 20, 8 << 30} {
		p.TouchSize = ram / 4
		l, _ := NewLayout(ram, p)
		pp := NewParamPage(l, p)
		b := make([]byte, ParamPageWords*8)
		pp.Encode(b)
		f.Add(b, ram)
	}
	f.Add([]byte{}, uint64(0))
	f.Add(make([]byte, PageSize), uint64(1<<40))
	f.Fuzz(func(t *testing.T, b []byte, ram uint64) {
		pp, l, err := DecodeParamPage(b, ram)
		if err != nil {
			return
		}
		// Anything accepted must describe a hot set and touched region
		// inside RAM, after the table.
		if l.HotPages == 0 || l.TablePages() < l.HotPages || l.HotFirst+l.TablePages() > l.RAMPages ||
			l.HotFirst*PageSize < GenTableAddr+l.TablePages()*8 || l.HotFirst*PageSize != GenTableAddr+l.GenTableSize {
			t.Fatalf("accepted inconsistent layout %+v from %+v", l, pp)
		}
	})
}
