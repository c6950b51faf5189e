package main

import (
	"io"
	"strings"
	"testing"
)

// ovm save on a terminal draws the save's progress (from domain.info)
// while domain.save runs, then prints what it always printed; off a
// terminal it prints only that.
func TestSaveProgress(t *testing.T) {
	f := newFakeAgent(t)
	f.saveShown = make(chan struct{})
	g := &globals{tty: func(io.Writer) bool { return true }}
	out, errOut, code := f.ovm(t, g, "save", "web1", "/OVS/web1.save")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.HasSuffix(out, "web1: suspended (saved to /OVS/web1.save)\n") {
		t.Fatalf("stdout %q", out)
	}
	for _, want := range []string{"precopy", "32 MiB / 64 MiB", "64 MiB/s"} {
		if !strings.Contains(errOut+out, want) {
			t.Errorf("no %q in the terminal's progress:\n%q", want, errOut+out)
		}
	}
	f.saveFor = 2 * saveProgressEvery
	out, errOut, code = f.ovm(t, nil, "save", "web1", "/OVS/web1.save")
	if code != 0 || errOut != "" || out != "web1: suspended (saved to /OVS/web1.save)\n" {
		t.Fatalf("off a terminal: exit %d, stderr %q, stdout %q", code, errOut, out)
	}
}
