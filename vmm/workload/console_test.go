package workload

import (
	"strings"
	"testing"
	"time"
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

func TestParseTouch(t *testing.T) {
	for _, tl := range []Touch{{Pages: 5, Total: 10, MS: 7}, {Done: true, Pages: 10, Total: 10, MS: 99}, {Pages: 0, Total: 1}} {
		line := tl.String()
		got, err := ParseTouch(line + "\n")
		if err != nil || got != tl {
			t.Errorf("round trip %q: %+v %v", line, got, err)
		}
	}
	if s := (Touch{Done: true, Pages: 3, Total: 3, MS: 4}).String(); s != "TOUCH done pages=3 total=3 ms=4" {
		t.Errorf("done line %q", s)
	}
	if got, err := ParseTouch("TOUCH progress pages=1 total=2 ms=3 rate=9"); err != nil || got.Pages != 1 {
		t.Errorf("extra field: %+v %v", got, err)
	}
	for _, bad := range []string{"", "TOUCH", "TOUCH done", "TOUCH pages=1 total=1 ms=1", "TOUCH done pages=1 total=2 ms=3",
		"TOUCH progress pages=3 total=2 ms=3", "TOUCH progress pages=1 total=2", "TOUCH progress pages=x total=2 ms=1",
		"TOUCH done pages=1 pages=1 total=1 ms=1", "TOUCH finished pages=1 total=1 ms=1", "HB t=1 writes=2 verified=3 rounds=4 corrupt=5 wps=6"} {
		if tl, err := ParseTouch(bad); err == nil {
			t.Errorf("ParseTouch(%q) accepted: %+v", bad, tl)
		}
	}
}

func TestWaitTouchDone(t *testing.T) {
	l := &Lines{}
	l.Write([]byte("TOUCH progress pages=1 total=2 ms=5\nHB t=1 writes=2 verified=0 rounds=0 corrupt=0 wps=2\n"))
	go l.Write([]byte(Touch{Done: true, Pages: 2, Total: 2, MS: 9}.String() + "\n"))
	got, i, err := l.WaitTouchDone(0, 5*time.Second)
	if err != nil || !got.Done || got.Pages != 2 || i != 2 {
		t.Fatalf("WaitTouchDone: %+v at %d, %v", got, i, err)
	}
	if _, _, err := l.WaitTouchDone(i+1, 10*time.Millisecond); err == nil || !strings.Contains(err.Error(), "touch fill") {
		t.Fatalf("WaitTouchDone past the line: %v", err)
	}
}

func FuzzParseConsoleLine(f *testing.F) {
	for _, s := range []string{
		Heartbeat{T: 1, Writes: 2}.String(),
		FormatCorrupt(Mismatch{Page: 5, Gen: 1, Word: 3, Want: 1, Got: 2}),
		"WORKLOAD start engine=kvm ram=16384 hot=1024+4096 rate=1024 pattern=random verify=200 seed=1",
		"HB t=1 writes=2 verified=3 rounds=4 corrupt=5 wps=6 x=y", "CORRUPT ", "HB =", "HB t==1",
		Touch{Pages: 1, Total: 2, MS: 3}.String(), Touch{Done: true, Pages: 2, Total: 2, MS: 3}.String(),
		"TOUCH done pages=1 total=2 ms=0", "TOUCH progress pages=0x10 total=0x20 ms=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := ParseHeartbeat(s); err == nil {
			if again, err := ParseHeartbeat(h.String()); err != nil || again != h {
				t.Fatalf("heartbeat %q does not round trip: %+v %v", s, again, err)
			}
		}
		if tl, err := ParseTouch(s); err == nil {
			if tl.Pages > tl.Total || (tl.Done && tl.Pages != tl.Total) {
				t.Fatalf("inconsistent touch line accepted from %q: %+v", s, tl)
			}
			if again, err := ParseTouch(tl.String()); err != nil || again != tl {
				t.Fatalf("touch line %q does not round trip: %+v %v", s, again, err)
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
