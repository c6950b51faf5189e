package poolmaster

import (
	"strings"
	"testing"
)

func TestPlace(t *testing.T) {
	kvm := []string{"kvm"}
	both := []string{"kvm", "qemu"}
	tests := []struct {
		name   string
		need   Need
		cands  []Candidate
		want   string
		reason []string // substrings of the reason when want is ""
	}{
		{"auto takes the most free memory", Need{MemoryMiB: 512, Kind: KindWorkload},
			[]Candidate{{Host: "a", FreeMiB: 1024, Engines: kvm}, {Host: "b", FreeMiB: 4096, Engines: kvm}, {Host: "c", FreeMiB: 2048, Engines: kvm}}, "b", nil},
		{"ties go to the first name", Need{MemoryMiB: 512, Kind: KindWorkload},
			[]Candidate{{Host: "c", FreeMiB: 2048, Engines: kvm}, {Host: "a", FreeMiB: 2048, Engines: kvm}}, "a", nil},
		{"exactly enough fits", Need{MemoryMiB: 2048, Kind: KindWorkload},
			[]Candidate{{Host: "a", FreeMiB: 2048, Engines: []string{"sim"}}}, "a", nil},
		{"qemu needs the qemu engine", Need{MemoryMiB: 512, Kind: KindQEMU},
			[]Candidate{{Host: "a", FreeMiB: 8192, Engines: kvm}, {Host: "b", FreeMiB: 1024, Engines: both}}, "b", nil},
		{"maintenance and excluded are left out", Need{MemoryMiB: 512, Kind: KindWorkload},
			[]Candidate{{Host: "a", FreeMiB: 8192, Engines: kvm, Maintenance: true}, {Host: "b", FreeMiB: 4096, Engines: kvm, Excluded: "start failed"}, {Host: "c", FreeMiB: 600, Engines: kvm}}, "c", nil},
		{"manual takes only preferred servers", Need{MemoryMiB: 512, Kind: KindWorkload, Preferred: []string{"a", "c"}},
			[]Candidate{{Host: "a", FreeMiB: 1024, Engines: kvm}, {Host: "b", FreeMiB: 8192, Engines: kvm}, {Host: "c", FreeMiB: 2048, Engines: kvm}}, "c", nil},
		{"no room", Need{MemoryMiB: 2048, Kind: KindQEMU},
			[]Candidate{{Host: "a", FreeMiB: 1024, Engines: both}, {Host: "b", FreeMiB: 8192, Engines: kvm}}, "",
			[]string{"no server with 2048 MiB free and engine qemu", "a: 1024 MiB free", "b: no qemu (has kvm)"}},
		{"manual with its servers gone", Need{MemoryMiB: 512, Kind: KindWorkload, Preferred: []string{"x"}},
			[]Candidate{{Host: "a", FreeMiB: 8192, Engines: kvm}}, "",
			[]string{"no preferred server (x)", "x: not a member"}},
		{"manual in maintenance", Need{MemoryMiB: 512, Kind: KindWorkload, Preferred: []string{"a"}},
			[]Candidate{{Host: "a", FreeMiB: 8192, Engines: kvm, Maintenance: true}, {Host: "b", FreeMiB: 8192, Engines: kvm}}, "",
			[]string{"a: in maintenance"}},
		{"no members", Need{MemoryMiB: 512, Kind: KindWorkload}, nil, "", []string{"the pool has no members"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, why := Place(tc.need, tc.cands)
			if got != tc.want {
				t.Fatalf("Place = %q (%s), want %q", got, why, tc.want)
			}
			if got != "" && why != "" {
				t.Errorf("a placement with a reason: %q", why)
			}
			for _, s := range tc.reason {
				if !strings.Contains(why, s) {
					t.Errorf("reason %q does not say %q", why, s)
				}
			}
		})
	}
}
