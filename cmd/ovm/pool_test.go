package main

import (
	"bytes"
	"strings"
	"testing"
)

// ovm pool maintenance wants on or off; anything else is a usage error
// before the agent is called.
func TestPoolMaintenanceWantsOnOrOff(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--url", "unix:///nonexistent/ovm-test.sock", "pool", "maintenance", "server2", "yes"}, strings.NewReader(""), &out, &errOut)
	if code != exitUsage || !strings.Contains(errOut.String(), "want on or off") {
		t.Errorf("pool maintenance server2 yes: exit %d, %q; want a usage error", code, errOut.String())
	}
}

// pool info prints the master and one line per member, the master marked.
func TestPrintPoolInfo(t *testing.T) {
	var out bytes.Buffer
	printPoolInfo(&out, map[string]any{"name": "p1", "master": "s1", "domains": int64(2), "members": []any{
		map[string]any{"host": "s1", "state": "active", "free_memory_mib": int64(4096), "engines": []any{"kvm", "qemu"}, "address": "10.0.0.1:8899", "master": true},
		map[string]any{"host": "s2", "state": "maintenance", "free_memory_mib": int64(512), "engines": []any{"sim"}, "address": "10.0.0.2:8899", "master": false},
	}, "maintenance_not_members": []any{"s3"}})
	got := out.String()
	for _, want := range []string{"pool p1, master s1, 2 domains", "s1      active       4096      kvm,qemu  10.0.0.1:8899  *", "s2      maintenance  512       sim", "in maintenance, not members now: s3"} {
		if !strings.Contains(got, want) {
			t.Errorf("pool info output does not have %q:\n%s", want, got)
		}
	}
}
