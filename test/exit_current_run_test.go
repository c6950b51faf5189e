package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitReasonIsOfThisRun: when a start fails before the new VMM has
// written anything, domain.info's last exit and console tail describe that
// start, not the run before it.
func TestExitReasonIsOfThisRun(t *testing.T) {
	a := domainAgent(t, "sim")
	a.call(t, "domain.create", nil, vmcfgText("twice", 64, "dirty=1M/s,hot=8M,verify=100ms"))
	a.call(t, "domain.start", nil, "twice")
	a.waitInfo(t, "twice", "verification rounds", func(i domInfo) bool { return i.Rounds >= 2 })
	a.call(t, "domain.destroy", nil, "twice")
	if in := a.info(t, "twice"); in.LastExit == nil || !strings.Contains(in.LastExit.ConsoleTail, "WORKLOAD") {
		t.Fatalf("first run's exit has no console tail: %+v", in.LastExit)
	}

	// The next VMM cannot read its vm.cfg: it fails before its console opens.
	cfgs, _ := filepath.Glob(filepath.Join(a.Dir, "state", "domains", "*", "vm.cfg"))
	if len(cfgs) != 1 {
		t.Fatalf("vm.cfg files in the state dir: %v", cfgs)
	}
	if err := os.WriteFile(cfgs[0], []byte("name = 'twice'\nmemory = (\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f := a.fault(t, "domain.start", "twice"); f == nil {
		t.Fatal("start with an unreadable vm.cfg succeeded")
	}
	in := a.info(t, "twice")
	if in.State != "stopped" {
		t.Fatalf("after the failed start: %+v", in)
	}
	if in.LastExit != nil && (strings.Contains(in.LastExit.ConsoleTail, "WORKLOAD") || in.LastExit.Reason == "destroyed") {
		t.Fatalf("last exit after the failed start is the previous run's: %+v", *in.LastExit)
	}
	if c := a.console(t, "twice"); strings.Contains(c, "WORKLOAD") {
		t.Fatalf("console after the failed start shows the previous run:\n%s", c)
	}
}
