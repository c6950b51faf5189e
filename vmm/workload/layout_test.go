package workload

import (
	"strings"
	"testing"
)

func TestNewLayout(t *testing.T) {
	p := DefaultParams()
	cases := []struct {
		ram     uint64
		hot     uint64
		all     bool
		wantHot uint64 // pages
		err     string
	}{
		{ram: 128 << 20, wantHot: DefaultHotSize / PageSize},
		{ram: 32 << 20, wantHot: (32<<20 - GenTableAddr - 2<<20) / PageSize}, // default shrinks to what fits
		{ram: 64 << 20, hot: 16 << 20, wantHot: 4096},
		{ram: 64 << 20, all: true, wantHot: (64<<20 - GenTableAddr - 2<<20) / PageSize},
		{ram: 8 << 30, hot: 64 << 20, wantHot: 16384},
		{ram: 64 << 20, hot: 64 << 20, err: "does not fit"},
		{ram: 2 << 20, err: "no room"},
		{ram: 3<<20 + 4096, err: "multiple of 2 MiB"},
		{ram: 128 << 30, err: "above"},
	}
	for _, c := range cases {
		q := p
		q.HotSize, q.HotAll = c.hot, c.all
		l, err := NewLayout(c.ram, q)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("NewLayout(%d, hot %d): %+v, %v; want error %q", c.ram, c.hot, l, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewLayout(%d, hot %d): %v", c.ram, c.hot, err)
			continue
		}
		if l.HotPages != c.wantHot {
			t.Errorf("NewLayout(%d, hot %d): %d hot pages, want %d", c.ram, c.hot, l.HotPages, c.wantHot)
		}
		if l.HotFirst*PageSize < GenTableAddr+l.HotPages*8 || (l.HotFirst+l.HotPages)*PageSize > c.ram {
			t.Errorf("NewLayout(%d): hot set %d+%d overlaps the table or leaves RAM", c.ram, l.HotFirst, l.HotPages)
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
	p, _ := ParseParams("dirty=8M/s,hot=4M,pattern=sequential,verify=300ms,hb=500ms,seed=77")
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
		"version": func(p *ParamPage) { p.Version = 2 },
		"pages":   func(p *ParamPage) { p.RAMPages++ },
		"hot0":    func(p *ParamPage) { p.HotPages = 0 },
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
		// Anything accepted must describe a hot set inside RAM, after the table.
		if l.HotPages == 0 || l.HotFirst+l.HotPages > l.RAMPages || l.HotFirst*PageSize < GenTableAddr+l.HotPages*8 {
			t.Fatalf("accepted inconsistent layout %+v from %+v", l, pp)
		}
	})
}
