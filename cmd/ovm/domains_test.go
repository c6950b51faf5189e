package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// A vm.cfg on standard input longer than a vm.cfg may be is refused before
// anything is sent: never cut to the limit and registered half.
func TestCreateFromStdinRefusesOversized(t *testing.T) {
	g := &globals{url: "unix:///nonexistent/ovm-test.sock"}
	in := strings.NewReader("name = 'big'\n" + strings.Repeat("# padding\n", vmcfg.MaxFileSize/10+1))
	err := g.createFromFile(new(bytes.Buffer), in, "-")
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized vm.cfg on stdin: %v, want a usage error saying it is too large", err)
	}
}

// ovm mem-set wants a whole number of MiB; anything else is a usage
// error before the agent is called.
func TestMemSetRefusesAMemoryThatIsNotMiB(t *testing.T) {
	for _, arg := range []string{"1G", "0", "2.5"} {
		var out, errOut bytes.Buffer
		code := run([]string{"--url", "unix:///nonexistent/ovm-test.sock", "mem-set", "vm1", arg}, strings.NewReader(""), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), "give a whole number of MiB") {
			t.Errorf("mem-set vm1 %s: exit %d, %q; want a usage error", arg, code, errOut.String())
		}
	}
}
