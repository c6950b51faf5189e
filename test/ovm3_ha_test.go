package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// TestOVM3VMHA: CloudStack's configure_vm_ha after start_vm, on two
// agents of one pool (real etcd): the running vm becomes a pool domain
// with HA without a restart (its VMM, the same process, now keeps the
// pool lease); HA switches off and on; stop_vm stops it through the pool
// and it stays stopped; delete_vm takes it out of the pool; made HA
// again, its server's power loss (the agent and its VMMs killed) has the
// pool run it on the other agent. Without [pool] the call is refused
// (TestOVM3).
func TestOVM3VMHA(t *testing.T) {
	c := etcdtest.Start(t, 1)
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(listen, host string) *Agent {
		return startAgent(t, agentConf{Listen: listen, SSL: true, Extra: map[string][]string{
			"agent":      {"hypervisor = sim", "memory_reserve = 0"},
			"relocation": {"peer_password_file = " + pwFile},
			"pool":       poolLinesTTL(c, host, "4s"),
		}})
	}
	a, b := start("127.0.0.2", "ha-a"), start("127.0.0.3", "ha-b")
	waitPoolState(t, a, "member")
	waitPoolState(t, b, "member")
	// A master, and each member's record with its API address (once its
	// API serves): the master calls the member to adopt.
	end := time.Now().Add(20 * time.Second)
	for {
		var pi struct {
			Master  string `xmlrpc:"master"`
			Members []struct {
				Address string `xmlrpc:"address"`
			} `xmlrpc:"members"`
		}
		a.call(t, "pool.info", &pi)
		ready := pi.Master != "" && len(pi.Members) == 2
		for _, m := range pi.Members {
			ready = ready && m.Address != ""
		}
		if ready {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("pool.info after 20s: %+v, want a master and 2 members with their addresses", pi)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ca := o3Client{url: a.URL(), user: "admin", pass: testPassword}

	// A repository on a (the workload guest has no disks: b needs none).
	script, _ := filepath.Abs("../scripts/ovs-makerepo")
	out, code := runCmd(t, "", []string{"OVS_AGENT_BIN=" + bin("ovs-agent"), "OVS_AGENT_CONFIG=" + a.Config}, script, t.TempDir(), "1", "ha repository")
	if code != 0 {
		t.Fatalf("ovs-makerepo (exit %d): %s", code, out)
	}
	uuid := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	st := a.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	repo := strings.ReplaceAll(uuid, "-", "")
	const vmID, name = "6c1b7a52-3f0e-3a55-9c3e-5d8d1f3a0b11", "i-2-7-VM"
	params := map[string]any{
		"name": name, "uuid": vmID, "memory": "64", "vcpus": 1, "on_crash": "restart",
		"OVM_high_availability": false, "vif": []string{}, "workload": "dirty=1M/s,hot=8M,verify=200ms",
	}
	entry := func(via *Agent) (poolDomView, bool) {
		for _, d := range poolDomainsOf(t, via) {
			if d.Name == name {
				return d, true
			}
		}
		return poolDomView{}, false
	}

	ca.done(t, "create_vm", repo, vmID, params)
	ca.done(t, "configure_vm_ha", repo, vmID, false) // no pool domain: nothing to turn off
	if msg := ca.refused(t, 1003, "configure_vm_ha", repo, vmID, true); !strings.Contains(msg, "start_vm") {
		t.Errorf("configure_vm_ha of a stopped vm: %q", msg)
	}
	if _, found := entry(b); found {
		t.Fatalf("a refused configure_vm_ha put %s into the pool", name)
	}
	ca.done(t, "start_vm", repo, vmID)
	before := a.poolDom(t, name)
	ca.done(t, "configure_vm_ha", repo, vmID, true)
	d, found := entry(b)
	if !found || !d.HA || d.Host != "ha-a" || d.Desired != "running" || d.State != "running" || d.Generation == 0 {
		t.Fatalf("pool.domains after configure_vm_ha, read on the other member: %+v (found %v)", d, found)
	}
	after := a.poolDom(t, name)
	if after.PID != before.PID || after.State != "running" || after.Generation != d.Generation || after.RunUntil <= 0 {
		t.Errorf("the vm after configure_vm_ha: %+v (before %+v): want the same VMM, running, under the pool lease at generation %d", after, before, d.Generation)
	}
	a.waitRenewed(t, name, 15*time.Second)          // the lease's renewals reach its VMM
	ca.done(t, "configure_vm_ha", repo, vmID, true) // again: no change
	ca.done(t, "configure_vm_ha", repo, vmID, false)
	if d, _ := entry(b); d.HA || d.Host != "ha-a" {
		t.Errorf("after configure_vm_ha false: %+v", d)
	}
	ca.done(t, "configure_vm_ha", repo, vmID, true)

	// stop_vm: through the pool, and it stays stopped (no HA restart).
	ca.done(t, "stop_vm", repo, vmID, true)
	if in := a.poolDom(t, name); in.State != "stopped" {
		t.Errorf("after stop_vm: %+v", in)
	}
	// stop_vm answers once the pool has it stopped: a delete_vm at once
	// finds it settled
	if d, _ = entry(b); d.State != "stopped" || d.Desired != "stopped" || d.Host != "" {
		t.Errorf("pool.domains as stop_vm answered: %+v", d)
	}
	time.Sleep(3 * time.Second) // a few master passes
	if d, _ := entry(b); d.State != "stopped" || d.Host != "" {
		t.Errorf("3 s after stop_vm: %+v, want it stopped, nowhere", d)
	}
	ca.done(t, "delete_vm", repo, vmID)
	if _, found := entry(b); found {
		t.Errorf("delete_vm left %s in the pool", name)
	}
	if _, err := os.Stat(filepath.Join(st.MountPoint, "VirtualMachines", vmID)); !os.IsNotExist(err) {
		t.Errorf("delete_vm left the vm's folder: %v", err)
	}

	// Made HA again, its server fails: the pool runs it on the other agent.
	ca.done(t, "create_vm", repo, vmID, params)
	ca.done(t, "start_vm", repo, vmID)
	ca.done(t, "configure_vm_ha", repo, vmID, true)
	first, _ := entry(b)
	a.Signal(syscall.SIGKILL)
	<-a.done
	killVMMs(a.Dir)
	moved := waitPoolDomain(t, b, name, "running on ha-b", 60*time.Second, func(d poolDomView) bool {
		return d.State == "running" && d.Host == "ha-b"
	})
	if moved.Generation <= first.Generation || !moved.HA {
		t.Errorf("after the power loss: %+v, first %+v", moved, first)
	}
	if in := b.poolDom(t, name); in.State != "running" || in.Generation != moved.Generation {
		t.Errorf("%s on ha-b: %+v", name, in)
	}
}
