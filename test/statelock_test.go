package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOneAgentPerStateDir: a second `ovs-agent serve` on a state directory
// that a running agent holds (other ports, other socket, other log) refuses
// to start, names the holder's pid, and leaves the domains alone; once the
// first agent has stopped, the same configuration starts and re-attaches.
func TestOneAgentPerStateDir(t *testing.T) {
	a := domainAgent(t, "sim")
	a.call(t, "domain.create", nil, vmcfgText("solo", 64, "dirty=1M/s,hot=8M,verify=200ms"))
	a.call(t, "domain.start", nil, "solo")
	before := a.info(t, "solo")

	// The second agent: its own folder, port and socket, A's state_dir.
	dir := t.TempDir()
	text, _ := agentConf{Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}}.render(t, dir)
	own := "state_dir = " + filepath.Join(dir, "state")
	if !strings.Contains(text, own) {
		t.Fatalf("rendered agent.ini has no %q", own)
	}
	text = strings.Replace(text, own, "state_dir = "+filepath.Join(a.Dir, "state"), 1)
	cfg := filepath.Join(dir, "agent.ini")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("ovs-agent"), "serve", "--config", cfg)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("second agent on the same state_dir was still running after 20s:\n%s", out)
	}
	if err == nil {
		t.Fatalf("second agent on the same state_dir exited 0:\n%s", out)
	}
	want := fmt.Sprintf("in use by ovs-agent pid %d", a.cmd.Process.Pid)
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "state_dir") {
		t.Fatalf("second agent's message does not say %q and what to do:\n%s", want, out)
	}
	// It touched no domain: nothing re-attached in its log, the first
	// agent's domain runs on the same VMM, and there is one VMM for it.
	if b, _ := os.ReadFile(filepath.Join(dir, "agent.log")); strings.Contains(string(b), "solo") {
		t.Errorf("second agent's log mentions the domain:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.sock")); err == nil {
		t.Errorf("second agent left a socket behind")
	}
	now := a.info(t, "solo")
	if now.State != "running" || now.PID != before.PID {
		t.Fatalf("domain after the second agent's attempt: %+v (before %+v)", now, before)
	}
	if n := vmmsFor(before.UUID); n != 1 {
		t.Fatalf("%d ovs-vmm processes for the domain, want 1", n)
	}

	// With the first agent gone, the directory is free again.
	if err := a.Stop(); err != nil {
		t.Fatalf("stop first agent: %v", err)
	}
	b := &Agent{t: t, Dir: dir, Config: cfg, Socket: filepath.Join(dir, "agent.sock")}
	b.start()
	b.waitReady()
	if got := b.info(t, "solo"); got.State != "running" || got.PID != before.PID {
		t.Fatalf("domain after the second agent took over: %+v", got)
	}
}

// vmmsFor counts the ovs-vmm processes whose command line names uuid.
func vmmsFor(uuid string) int {
	n := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if s := string(b); strings.Contains(s, "ovs-vmm") && strings.Contains(s, uuid) {
			n++
		}
	}
	return n
}
