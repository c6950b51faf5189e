package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
	"github.com/ovs-agent/ovs-agent/internal/testguest/records"
)

// Issue 15, point 6: the etcd leader killed, and the pool master killed
// in the middle of a placement, with the QEMU test guest writing
// (domain, host, generation, sequence) records to a disk every agent
// sees. After each, the check of point 6: never two writers (the records
// prove it, generations never decrease), and the HA domain runs on
// exactly one server.

// recPool is a pool of qemu agents on one etcd cluster, with a records
// disk on the "shared repository" (a folder every agent may open).
type recPool struct {
	c      *etcdtest.Cluster
	cli    *clientv3.Client
	agents map[string]*Agent
	hosts  []string // in the order they joined
	shared string
}

// newRecPool starts hosts as qemu agents of pool e2e (TTL 4s, margin
// 1s), on 127.0.0.ip0, ip0+1, ... over plain HTTP: the master's calls to
// a member then reach the member's socket whole before it answers.
func newRecPool(t *testing.T, c *etcdtest.Cluster, ip0 int, hosts ...string) *recPool {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &recPool{c: c, cli: etcdClient(t, c), agents: map[string]*Agent{}, hosts: hosts, shared: t.TempDir()}
	accel := testGuestAccel(t)
	for i, host := range hosts {
		p.agents[host] = startAgent(t, agentConf{Listen: fmt.Sprintf("127.0.0.%d", ip0+i),
			FileDirs: []string{p.shared, testGuestDir(t)},
			Extra: map[string][]string{
				"agent":      {"memory_reserve = 0"},
				"qemu":       {"accel = " + accel},
				"relocation": {"peer_password_file = " + pwFile},
				"pool":       poolLinesTTL(c, host, "4s"),
			}})
		// One at a time: the first to join is the first master.
		waitPoolState(t, p.agents[host], "member")
	}
	return p
}

// disk makes an empty records disk on the shared storage.
func (p *recPool) disk(t *testing.T, name string) string {
	t.Helper()
	disk := filepath.Join(p.shared, name+".img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	return disk
}

// recGuest is the test guest writing records to disk.
func recGuest(t *testing.T, name, disk string) string {
	g := guestVM{Name: name, MemcheckMiB: -1, Cmdline: []string{"testguest_records=/dev/vda"},
		Lines: []string{"disk = ['file:" + disk + ",xvda,w!']"}}
	return g.cfg(t)
}

// master waits (bounded) until every live agent names one pool master,
// and returns it.
func (p *recPool) master(t *testing.T, bound time.Duration) string {
	t.Helper()
	end := time.Now().Add(bound)
	for {
		seen := map[string]bool{}
		for _, a := range p.agents {
			if a.Exited() {
				continue
			}
			pv := poolOf(t, a)
			seen[pv.Master] = true
		}
		if len(seen) == 1 && !seen[""] {
			for m := range seen {
				return m
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no one pool master within %s: the agents name %v", bound, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// live is a running agent other than except.
func (p *recPool) live(except ...string) *Agent {
	for _, h := range p.hosts {
		if a := p.agents[h]; !a.Exited() && !contains(except, h) {
			return a
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// create has the pool create and start an HA domain, through via,
// retrying while the pool answers Busy (no master yet, a member record
// without its address).
func (p *recPool) create(t *testing.T, via *Agent, cfg string, opts map[string]any) poolDomView {
	t.Helper()
	var v poolDomView
	end := time.Now().Add(30 * time.Second)
	for {
		err := via.Unix().Call(context.Background(), "pool.create_domain", &v, cfg, opts)
		if err == nil {
			return v
		}
		if f, ok := err.(*client.Fault); !ok || f.Code != 1006 || time.Now().After(end) {
			t.Fatalf("pool.create_domain: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOneWriter is the check of point 6 for domain name with records
// on disk: within bound, pool.domains (through any live agent) says it
// runs on a host at a generation, that host's agent runs it at that
// generation, no other live agent has a VMM for it, and the records
// disk, which never shows two writers, has grown by at least five
// records of that generation, its last, since the check began.
func (p *recPool) checkOneWriter(t *testing.T, name, disk string, bound time.Duration) (poolDomView, records.Summary) {
	t.Helper()
	via := p.live()
	run := waitPoolDomain(t, via, name, "running on one host", bound, func(d poolDomView) bool {
		return d.State == "running" && d.Host != "" && d.Generation > 0
	})
	owner := p.agents[run.Host]
	if owner == nil || owner.Exited() {
		t.Fatalf("%s runs on %q, not a live agent of the pool", name, run.Host)
	}
	owner.waitPoolDom(t, name, "running at the owner's generation", bound, func(in poolDom) bool {
		return in.State == "running" && !in.Fenced && in.Generation == run.Generation
	})
	for h, a := range p.agents {
		if h == run.Host || a.Exited() || !a.known(t, name) {
			continue
		}
		if in := a.poolDom(t, name); hasVMMState(in.State) {
			t.Errorf("%s has a copy of %s too: %+v (it runs on %s at generation %d)", h, name, in, run.Host, run.Generation)
		}
	}
	start, err := records.Verify(disk)
	if err != nil {
		t.Fatalf("records of %s: %v\n%v", name, err, start)
	}
	base := 0
	if n := len(start.Runs); n > 0 && start.Runs[n-1].Generation == run.Generation {
		base = start.Runs[n-1].Records
	}
	s := waitRecords(t, disk, fmt.Sprintf("five more records of generation %d", run.Generation), bound, func(s records.Summary) bool {
		n := len(s.Runs)
		return n > 0 && s.Runs[n-1].Generation == run.Generation && s.Runs[n-1].Records >= base+5
	})
	return run, s
}

func hasVMMState(s string) bool {
	switch s {
	case "starting", "running", "paused", "stopping":
		return true
	}
	return false
}

// TestPoolEtcdLeaderKilled: the etcd leader (found by asking each
// member's Status) killed -9 while an HA guest runs: the cluster elects
// another leader, every member keeps its lease, the pool has a master,
// the guest runs on in the same VMM at the same generation and keeps
// writing its records, one writer; the member restarted, the cluster is
// whole. Whether the guest was fenced for a moment (the outage longer
// than the TTL less the margin and a renewal interval) is logged: a
// leader election takes about the election timeout, 1s here.
func TestPoolEtcdLeaderKilled(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 3)
	p := newRecPool(t, c, 11, "agent-a", "agent-b")
	disk := p.disk(t, "lead")
	p.create(t, p.agents["agent-b"], recGuest(t, "lead", disk), map[string]any{"ha": true})
	run1, _ := p.checkOneWriter(t, "lead", disk, 2*time.Minute)
	owner := p.agents[run1.Host]
	before := owner.poolDom(t, "lead")
	master := p.master(t, 20*time.Second)
	leases := map[string]string{}
	for h, a := range p.agents {
		leases[h] = poolOf(t, a).Lease
	}

	leader, err := c.Leader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killing etcd leader %s (pid %d); pool master %s, lead runs on %s at generation %d", leader.Name, leader.Pid(), master, run1.Host, run1.Generation)
	leader.Kill()
	killed := time.Now()
	next, err := c.Leader(30 * time.Second)
	if err != nil {
		t.Fatalf("after the leader's kill: %v", err)
	}
	t.Logf("etcd leader %s %v after the kill", next.Name, time.Since(killed).Round(10*time.Millisecond))
	owner.waitRenewed(t, "lead", 20*time.Second)
	t.Logf("a renewal reached the guest's VMM %v after the kill", time.Since(killed).Round(10*time.Millisecond))

	for h, a := range p.agents {
		if pv := waitPoolState(t, a, "member"); pv.Lease != leases[h] {
			t.Errorf("%s after the etcd leader's kill: lease %s, want %s kept", h, pv.Lease, leases[h])
		}
	}
	if m := p.master(t, 30*time.Second); m != master {
		t.Logf("pool master %s after the etcd leader's kill (was %s)", m, master)
	}
	run2, s := p.checkOneWriter(t, "lead", disk, 30*time.Second)
	if run2.Host != run1.Host || run2.Generation != run1.Generation {
		t.Errorf("lead after the etcd leader's kill: on %s at generation %d, want on %s at %d as before", run2.Host, run2.Generation, run1.Host, run1.Generation)
	}
	if in := owner.poolDom(t, "lead"); in.PID != before.PID {
		t.Errorf("lead's VMM after the etcd leader's kill: pid %d, want %d (the same VMM)", in.PID, before.PID)
	}
	if len(s.Runs) != 1 {
		t.Errorf("records after the etcd leader's kill: %v, want one run (one boot, one writer)", s)
	}
	vmmLog, _ := os.ReadFile(filepath.Join(owner.Dir, "state", "domains", "lead", "vmm.log"))
	fences := strings.Count(string(vmmLog), "guest fenced")
	renewFails := len(logLines(owner.Log(), "pool lease renewal failed"))
	t.Logf("during the etcd leader change: %d fence(s) of the guest, %d failed renewal(s) on %s", fences, renewFails, run1.Host)
	for _, h := range p.hosts {
		if n := len(logLines(p.agents[h].Log(), "pool lease lost")); n > 0 {
			t.Errorf("%s lost its pool lease in the etcd leader change", h)
		}
	}

	leader.Restart()
	if err := c.WaitHealthy(etcdtest.StartTimeout); err != nil {
		t.Fatal(err)
	}
	var running []string
	for _, m := range c.Members {
		if m.Running() {
			running = append(running, m.Name)
		}
	}
	sort.Strings(running)
	if len(running) != 3 {
		t.Errorf("etcd members running after the restart: %v", running)
	}
	p.checkOneWriter(t, "lead", disk, 30*time.Second)
	_ = syscall.SIGKILL
}
