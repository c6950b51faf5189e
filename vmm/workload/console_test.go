package workload

import (
	"strings"
	"testing"
)

func TestParseHeartbeat(t *testing.T) {
	h := Heartbeat{T: 12, Writes: 100, Verified: 2000, Rounds: 3, Corrupt: 0, WPS: 51200}
	got, err := ParseHeartbeat(h.String() + "\n")
	if err != nil || got != h {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if got, err := ParseHeartbeat("HB t=1 writes=2 verified=3 rounds=4 corrupt=5 wps=6 future=7"); err != nil || got.Corrupt != 5 {
		t.Fatalf("extra field: %+v %v", got, err)
	}
	for _, bad := range []string{"", "HB", "HB t=1", "HBt=1", "CORRUPT page=1", "HB t=x writes=2 verified=3 rounds=4 corrupt=5 wps=6",
		"HB t=1 t=1 writes=2 verified=3 rounds=4 corrupt=5 wps=6", "HB t=1 writes verified=3 rounds=4 corrupt=5 wps=6",
		"HB t=-1 writes=2 verified=3 rounds=4 corrupt=5 wps=6"} {
		if _, err := ParseHeartbeat(bad); err == nil {
			t.Errorf("ParseHeartbeat(%q) accepted", bad)
		}
	}
}

func TestParseCorrupt(t *testing.T) {
	m := Mismatch{Page: 1024, Gen: 7, Word: 511, Want: 0xdeadbeef, Got: 0}
	line := FormatCorrupt(m)
	if !strings.HasPrefix(line, "CORRUPT page=1024 ") {
		t.Fatalf("line %q", line)
	}
	got, err := ParseCorrupt(line)
	if err != nil || got != m {
		t.Fatalf("round trip %q: %+v %v", line, got, err)
	}
	for _, bad := range []string{"CORRUPT page=1", "CORRUPT page=1 gen=2 word=512 want=0x1 got=0x2", "HB t=1", "CORRUPT page=1 gen=2 word=3 want=zz got=0x2"} {
		if _, err := ParseCorrupt(bad); err == nil {
			t.Errorf("ParseCorrupt(%q) accepted", bad)
		}
	}
}

func FuzzParseConsoleLine(f *testing.F) {
	for _, s := range []string{
		Heartbeat{T: 1, Writes: 2}.String(),
		FormatCorrupt(Mismatch{Page: 5, Gen: 1, Word: 3, Want: 1, Got: 2}),
		"WORKLOAD start engine=kvm ram=16384 hot=1024+4096 rate=1024 pattern=random verify=200 seed=1",
		"HB t=1 writes=2 verified=3 rounds=4 corrupt=5 wps=6 x=y", "CORRUPT ", "HB =", "HB t==1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := ParseHeartbeat(s); err == nil {
			if again, err := ParseHeartbeat(h.String()); err != nil || again != h {
				t.Fatalf("heartbeat %q does not round trip: %+v %v", s, again, err)
			}
		}
		if m, err := ParseCorrupt(s); err == nil {
			if m.Word < 0 || m.Word >= PageWords {
				t.Fatalf("word %d out of range from %q", m.Word, s)
			}
			if again, err := ParseCorrupt(FormatCorrupt(m)); err != nil || again != m {
				t.Fatalf("corrupt line %q does not round trip: %+v %v", s, again, err)
			}
		}
	})
}
