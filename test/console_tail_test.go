package test

import (
	"strings"
	"testing"
)

// TestConsoleTail: domain.console with offset -1 (what `ovm console`
// without -f asks for) gives the latest output of a running domain and of a
// stopped one, not the first bytes.
func TestConsoleTail(t *testing.T) {
	a := domainAgent(t, "sim")
	a.call(t, "domain.create", nil, vmcfgText("tail", 64, "dirty=1M/s,hot=8M,verify=100ms"))
	a.call(t, "domain.start", nil, "tail")
	a.waitInfo(t, "tail", "a few verification rounds", func(i domInfo) bool { return i.Rounds >= 3 })
	type piece struct {
		Offset int64  `xmlrpc:"offset"`
		Data   string `xmlrpc:"data"`
		Next   int64  `xmlrpc:"next"`
		Live   bool   `xmlrpc:"live"`
	}
	check := func(what string) string {
		t.Helper()
		var all, tail piece
		a.call(t, "domain.console", &all, "tail", 0)
		a.call(t, "domain.console", &tail, "tail", -1, 40)
		if all.Next < 80 {
			t.Fatalf("%s: console too short for the test: %q", what, all.Data)
		}
		if tail.Offset == 0 || tail.Offset < all.Next-40 || len(tail.Data) > 40 || tail.Next != tail.Offset+int64(len(tail.Data)) {
			t.Fatalf("%s: domain.console(-1, 40) = offset %d next %d %q; the console runs to %d", what, tail.Offset, tail.Next, tail.Data, all.Next)
		}
		if !strings.HasSuffix(all.Data, tail.Data) && tail.Next <= all.Next {
			t.Fatalf("%s: tail %q is not the end of %q", what, tail.Data, all.Data)
		}
		return all.Data
	}
	check("running")
	a.call(t, "domain.destroy", nil, "tail")
	whole := check("stopped")

	out, code := runCmd(t, "", nil, bin("ovm"), "--url", "unix://"+a.Socket, "console", "tail")
	if code != 0 || out == "" || !strings.HasSuffix(whole, out) {
		t.Fatalf("ovm console tail: exit %d\n%s", code, out)
	}
}
