package test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// TestPoolStopStartRace: a domain.start of an owned pool
// domain that comes while pool.stop_local is shutting it down (its VMM
// stopped with SIGSTOP, so the shutdown runs to its timeout) does not boot
// it again once the stop is done: the start waits for the pool's lock and
// is then refused, the owner key is gone and nothing runs it here. Before,
// the start booted it after the stop and the key was released under it.
func TestPoolStopStartRace(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "20s", "3s")
	waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	in := a.poolDom(t, "ha1")
	if in.State != "running" || in.PID == 0 {
		t.Fatalf("ha1 after start_local: %+v", in)
	}
	if err := syscall.Kill(in.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(in.PID, syscall.SIGCONT) })
	stopped := make(chan error, 1)
	go func() {
		cl, err := client.New(client.Options{URL: "unix://" + a.Socket, Timeout: 2 * time.Minute})
		if err != nil {
			stopped <- err
			return
		}
		var st map[string]any
		stopped <- cl.Call(context.Background(), "pool.stop_local", &st, poolDomUUID, false, 2)
	}()
	// The stop is under way (its shutdown waits 2 s for the stopped VMM).
	time.Sleep(500 * time.Millisecond)
	cl, err := client.New(client.Options{URL: "unix://" + a.Socket, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var si map[string]any
	startErr := cl.Call(context.Background(), "domain.start", &si, "ha1")
	if err := <-stopped; err != nil {
		t.Fatalf("pool.stop_local: %v", err)
	}
	if startErr == nil || !strings.Contains(startErr.Error(), "does not own") {
		t.Errorf("domain.start during stop_local: %v, want refused (the agent no longer owns it)", startErr)
	}
	if host, _ := ownerOf(t, cli, poolDomUUID); host != "" {
		t.Errorf("owner key after stop_local: %q, want none", host)
	}
	if now := a.poolDom(t, "ha1"); now.State == "running" || now.State == "starting" {
		t.Fatalf("ha1 runs on agent-a with no owner key: %+v", now)
	}
}

// TestPoolSaveAndRestoreGuarded: a pool domain is not saved (its image
// would be a copy the pool does not know of), and an image whose uuid is
// a pool domain's is not restored outside the pool: a restore would run
// it with no owner key beside the copy the pool starts.
func TestPoolSaveAndRestoreGuarded(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	dir := t.TempDir()
	a := poolDomAgent(t, c, "agent-a", "20s", "3s")
	waitPoolState(t, a, "member")

	// An image saved while the domain was no pool domain yet.
	a.call(t, "domain.create", nil, vmcfgText("img1", 64, "dirty=2M/s,hot=8M", "uuid = '"+poolDomUUID+"'"))
	a.call(t, "domain.start", nil, "img1")
	img := filepath.Join(filepath.Dir(dir), "img1.save")
	a.call(t, "domain.save", nil, "img1", img)
	a.waitPoolDom(t, "img1", "suspended", time.Minute, func(in poolDom) bool { return in.State == "suspended" })
	a.call(t, "domain.delete", nil, "img1")

	// Now the pool has a domain of that uuid.
	putSpec(t, cli, poolDomUUID, "ha1")
	if f := a.fault(t, "domain.restore", img); !strings.Contains(f.Message, "not restored outside the pool") {
		t.Errorf("restore of a pool domain's image: %+v, want refused", f)
	} else if !strings.Contains(f.Message, "pool.start_domain") {
		t.Errorf("the refusal does not say what to do: %s", f.Message)
	}
	if a.known(t, "img1") || a.known(t, "ha1") {
		t.Error("the refused restore left a domain registered")
	}

	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	if f := a.fault(t, "domain.save", "ha1", filepath.Join(filepath.Dir(dir), "ha1.save")); !strings.Contains(f.Message, "is a pool domain: saving it is not supported") {
		t.Errorf("save of a pool domain: %+v, want refused", f)
	}
	if in := a.poolDom(t, "ha1"); in.State != "running" {
		t.Errorf("ha1 after the refused save: %+v, want running", in)
	}
}
