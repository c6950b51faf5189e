package test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// The VMM side of a pool's fencing (issue 15, point 4), with real
// processes: a domain's VMM gets a lease a little ahead, the agent goes
// away (kill -9, or SIGSTOP), and the VMM fences the guest by itself when
// the run-until time passes; a fresh lease after the agent is back
// resumes it. The lease goes through the agent's real VMM driver
// (vmmproc), as the pool code's Manager.SetLease sends it.

// fenceInfo is what domain.info says of a domain's lease.
type fenceInfo struct {
	State      string `xmlrpc:"state"`
	Reason     string `xmlrpc:"reason"`
	Generation int64  `xmlrpc:"generation"`
	Fenced     bool   `xmlrpc:"fenced"`
	PID        int    `xmlrpc:"vmm_pid"`
}

func (a *Agent) fenceInfo(t testing.TB, name string) fenceInfo {
	t.Helper()
	var in fenceInfo
	a.call(t, "domain.info", &in, name)
	return in
}

// vmmOf attaches to the VMM of domain uuid of agent a through the real
// driver, as a restarted agent does, and lets go of it at the end.
func vmmOf(t testing.TB, a *Agent, uuid string) *vmmproc.VMM {
	t.Helper()
	h := vmmproc.Handle{UUID: uuid, Dir: filepath.Join(a.Dir, "state", "domains"), Socket: filepath.Join(a.Dir, "state", "vmm", uuid+".sock")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := (&vmmproc.Driver{}).Recover(ctx, h)
	if err != nil {
		t.Fatalf("attach to the VMM of %s: %v", uuid, err)
	}
	t.Cleanup(v.Release)
	return v
}

func lease(t testing.TB, v *vmmproc.VMM, ahead time.Duration, gen int64) *control.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := v.SetLease(ctx, control.MonotonicNow().Add(ahead), gen)
	if err != nil {
		t.Fatalf("lease %v ahead, generation %d: %v", ahead, gen, err)
	}
	return info
}

// waitVMM polls the VMM's Info until ok (bounded).
func waitVMM(t testing.TB, v *vmmproc.VMM, what string, timeout time.Duration, ok func(*control.Info) bool) *control.Info {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := v.Inspect(context.Background())
		if err != nil {
			t.Fatalf("VMM info: %v", err)
		}
		if ok(info) {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("VMM: %s never happened within %v; info %+v", what, timeout, info)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFenceQEMUGuestAgentKilled: a qemu guest whose VMM has a lease 2 s
// ahead keeps running when its agent is killed -9, until the run-until
// time: then its VMM pauses QEMU by itself (the memory checker's console
// lines stop), and a restarted agent reports it paused, fenced. A lease
// from the new agent with a future time resumes it, and the memory
// checker goes on with no corruption.
func TestFenceQEMUGuestAgentKilled(t *testing.T) {
	timed(t)
	a := qemuAgent(t, "127.0.0.2", false)
	g := guestVM{Name: "fq"}
	startGuest(t, a, g)
	uuid := a.info(t, g.Name).UUID
	v := vmmOf(t, a, uuid)
	if info := lease(t, v, 2*time.Second, 17); info.State != control.StateRunning || info.Generation != 17 {
		t.Fatalf("VMM after the lease: %+v", info)
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	info := waitVMM(t, v, "the fence", 30*time.Second, func(i *control.Info) bool { return i.State == control.StateFenced })
	if !info.Fenced || info.FenceDetail != "guest paused" || info.PausedFor != control.PausedForFence {
		t.Fatalf("fenced VMM: %+v", info)
	}
	// The guest's memory checker prints a line a second while it runs:
	// paused, it prints nothing.
	end := info.ConsoleEnd
	time.Sleep(3 * time.Second)
	if now, _ := v.Inspect(context.Background()); now.ConsoleEnd != end || now.State != control.StateFenced {
		t.Fatalf("the fenced guest's console went on from %d to %d (state %s)", end, now.ConsoleEnd, now.State)
	}
	if err := syscall.Kill(info.PID, 0); err != nil {
		t.Fatalf("the VMM is gone: %v", err)
	}

	a.start()
	a.waitReady()
	if in := a.fenceInfo(t, g.Name); in.State != "paused" || in.Reason != "fenced" || !in.Fenced || in.Generation != 17 || in.PID != info.PID {
		t.Fatalf("domain.info of the fenced guest after the agent restart: %+v", in)
	}
	// domain.unpause does not lift a fence: the guest's agent is not
	// its lease.
	if err := a.Unix().Call(context.Background(), "domain.unpause", nil, g.Name); err == nil {
		t.Fatal("domain.unpause resumed a fenced guest")
	}
	v2 := vmmOf(t, a, uuid)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := v2.SetLease(ctx, control.MonotonicNow().Add(time.Hour), 16); err == nil || !strings.Contains(err.Error(), "generation 16 refused") {
		t.Fatalf("a lease of an older generation: %v", err)
	}
	if info := lease(t, v2, time.Hour, 17); info.State != control.StateRunning || info.Fenced {
		t.Fatalf("VMM after the fresh lease: %+v", info)
	}
	a.waitMemcheck(t, g.Name, 2)
	if in := a.fenceInfo(t, g.Name); in.State != "running" || in.Fenced {
		t.Fatalf("domain.info after the fresh lease: %+v", in)
	}
}

// TestFenceAgentStopped: a workload guest (kvm and sim
// engines) whose agent is stopped with SIGSTOP is fenced when its
// run-until time passes, its vCPU stops writing, and a lease after
// SIGCONT resumes it.
func TestFenceAgentStopped(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) { fenceWorkload(t, engine) })
	}
}

func fenceWorkload(t *testing.T, engine string) {
	a := domainAgent(t, engine)
	a.call(t, "domain.create", nil, vmcfgText("fs", 64, "dirty=2M/s,hot=8M,verify=200ms"))
	a.call(t, "domain.start", nil, "fs")
	uuid := a.info(t, "fs").UUID
	v := vmmOf(t, a, uuid)
	lease(t, v, time.Second, 3)
	a.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { a.Signal(syscall.SIGCONT) })
	info := waitVMM(t, v, "the fence", 20*time.Second, func(i *control.Info) bool { return i.State == control.StateFenced })
	time.Sleep(500 * time.Millisecond)
	now, err := v.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if now.Writes != info.Writes {
		t.Fatalf("the fenced guest went on writing: %d, then %d pages", info.Writes, now.Writes)
	}
	a.Signal(syscall.SIGCONT)
	if in := a.fenceInfo(t, "fs"); in.Reason != "fenced" || !in.Fenced || in.Generation != 3 {
		t.Fatalf("domain.info of the fenced guest: %+v", in)
	}
	lease(t, v, time.Hour, 4)
	waitVMM(t, v, "writes again", 20*time.Second, func(i *control.Info) bool { return i.Writes > now.Writes })
	if in := a.info(t, "fs"); in.Corrupt != 0 || in.State != "running" {
		t.Fatalf("after the renewal: %+v", in)
	}
}
