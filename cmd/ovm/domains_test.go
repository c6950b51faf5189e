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
