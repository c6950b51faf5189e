package workload

import (
	"strings"
	"testing"
	"time"
)

func TestParseParams(t *testing.T) {
	def := DefaultParams()
	with := func(f func(*Params)) Params { p := def; f(&p); return p }
	cases := []struct {
		in   string
		want Params
		err  string
	}{
		{in: "", want: def},
		{in: "  ", want: def},
		{in: "dirty=200M/s,hot=256M,pattern=random", want: with(func(p *Params) { p.DirtyRate = 200 << 20; p.HotSize = 256 << 20 })},
		{in: "dirty=0", want: with(func(p *Params) { p.DirtyRate = 0 })},
		{in: "dirty=64K/s", want: with(func(p *Params) { p.DirtyRate = 64 << 10 })},
		{in: "dirty=1GiB/s", want: with(func(p *Params) { p.DirtyRate = 1 << 30 })},
		{in: "dirty=4096/s", want: with(func(p *Params) { p.DirtyRate = 4096 })},
		{in: "DIRTY=1mb/s", want: with(func(p *Params) { p.DirtyRate = 1 << 20 })},
		{in: "hot=all", want: with(func(p *Params) { p.HotAll = true })},
		{in: "hot=4K", want: with(func(p *Params) { p.HotSize = 4096 })},
		{in: "pattern=sequential", want: with(func(p *Params) { p.Pattern = PatternSequential })},
		{in: " verify = 250ms , hb=2s ", want: with(func(p *Params) { p.VerifyInterval = 250 * time.Millisecond; p.HeartbeatInterval = 2 * time.Second })},
		{in: "verify=3", want: with(func(p *Params) { p.VerifyInterval = 3 * time.Second })},
		{in: "seed=0x10", want: with(func(p *Params) { p.Seed = 16 })},
		{in: "seed=18446744073709551615", want: with(func(p *Params) { p.Seed = ^uint64(0) })},
		{in: "dirty=200M", err: "per second"},
		{in: "dirty=100/s", err: "less than one"},
		{in: "dirty=1T/s", err: "limit"},
		{in: "dirty=-1M/s", err: "not a size"},
		{in: "dirty=/s", err: "empty size"},
		{in: "hot=1000", err: "multiple of 4096"},
		{in: "hot=0", err: "multiple of 4096"},
		{in: "hot=99999999999999999999", err: "not a size"},
		{in: "hot=17179869184T", err: "too large"},
		{in: "pattern=zigzag", err: "random"},
		{in: "verify=1ms", err: "want 10ms"},
		{in: "verify=2h", err: "want 10ms"},
		{in: "verify=soon", err: "duration"},
		{in: "hb=10ms", err: "want 100ms"},
		{in: "seed=-1", err: "unsigned"},
		{in: "speed=1", err: "unknown key"},
		{in: "dirty", err: "not key=value"},
		{in: "hot=4M,hot=8M", err: "given twice"},
	}
	for _, c := range cases {
		got, err := ParseParams(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseParams(%q) = %+v, %v; want error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseParams(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseParams(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("ParseParams(%q) result does not validate: %v", c.in, err)
		}
		again, err := ParseParams(got.String())
		if err != nil || again != got {
			t.Errorf("String() of %q = %q does not parse back: %+v, %v", c.in, got.String(), again, err)
		}
	}
}

func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"", "dirty=200M/s,hot=256M,pattern=random", "hot=all,seed=0xff", "verify=500ms,hb=1s",
		"dirty=0,pattern=sequential", "dirty=1G/s", "hot=4K", "seed=1,seed=2", "dirty=9999999999T/s", "=,=,", "verify=1e9h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParams(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParseParams(%q) = %+v which does not validate: %v", s, p, err)
		}
		again, err := ParseParams(p.String())
		if err != nil || again != p {
			t.Fatalf("ParseParams(%q).String() = %q does not round trip: %+v %v", s, p.String(), again, err)
		}
	})
}
