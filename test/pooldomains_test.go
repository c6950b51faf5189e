package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// The agent side of running pool domains (issue 15, layer 2), with real
// etcd, agents and VMMs (the sim engine's workload guest: quick to start,
// and its VMM fences it like any other): pool.start_local and
// pool.stop_local, one owner per domain, leases renewed to the VMMs, and
// what a lapse, a loss and a restart do to the guests.

const poolDomUUID = "5e1f0a0e-0000-4000-8000-00000000a001"

// poolDomAgent is an agent on the sim engine, member host of pool e2e.
func poolDomAgent(t *testing.T, c *etcdtest.Cluster, host, ttl, margin string) *Agent {
	t.Helper()
	lines := poolLinesTTL(c, host, ttl)
	for i, l := range lines {
		if strings.HasPrefix(l, "fencing_margin") {
			lines[i] = "fencing_margin = " + margin
		}
	}
	return startAgent(t, agentConf{Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
		"pool":  lines,
	}})
}

func etcdClient(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// putSpec writes a pool domain's spec as the master would (the master
// writes it through Master.Write; the agent side only reads it).
func putSpec(t *testing.T, cli *clientv3.Client, uuid, name string) {
	t.Helper()
	spec := pool.DomainSpec{Name: name, UUID: uuid, HA: true, Desired: pool.DesiredRunning,
		Config: vmcfgText(name, 64, "dirty=2M/s,hot=8M,verify=200ms", "uuid = '"+uuid+"'")}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, pool.SpecKey("e2e", uuid), string(b)); err != nil {
		t.Fatal(err)
	}
}

// ownerOf reads the domain's owner key: its host and generation.
func ownerOf(t *testing.T, cli *clientv3.Client, uuid string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, pool.OwnerKey("e2e", uuid))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0
	}
	var r pool.OwnerRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	return r.Host, resp.Kvs[0].CreateRevision
}

// memberFree is a member record's free memory (MiB).
func memberFree(t *testing.T, cli *clientv3.Client, host string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/ovs/pools/e2e/members/"+host)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("member record of %s: %v, %v", host, resp, err)
	}
	var r pool.MemberRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	return r.FreeMemoryMiB
}

type startLocalResult struct {
	Name       string `xmlrpc:"name"`
	UUID       string `xmlrpc:"uuid"`
	Host       string `xmlrpc:"host"`
	Generation int64  `xmlrpc:"generation"`
}

// poolDom is what domain.info says of a pool domain.
type poolDom struct {
	State      string  `xmlrpc:"state"`
	Reason     string  `xmlrpc:"reason"`
	Generation int64   `xmlrpc:"generation"`
	RunUntil   float64 `xmlrpc:"run_until_seconds"`
	Fenced     bool    `xmlrpc:"fenced"`
	PID        int     `xmlrpc:"vmm_pid"`
	Written    int64   `xmlrpc:"pages_written"`
	Corrupt    int64   `xmlrpc:"pages_corrupt"`
}

func (a *Agent) poolDom(t *testing.T, name string) poolDom {
	t.Helper()
	var in poolDom
	a.call(t, "domain.info", &in, name)
	return in
}

// waitPoolDom polls domain.info (bounded) until ok.
func (a *Agent) waitPoolDom(t *testing.T, name, what string, bound time.Duration, ok func(poolDom) bool) poolDom {
	t.Helper()
	end := time.Now().Add(bound)
	for {
		in := a.poolDom(t, name)
		if ok(in) {
			return in
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %s not seen within %v: %+v", name, what, bound, in)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRenewed waits (bounded) until the run-until time the domain's VMM
// keeps has moved at least a second later than it was: a renewal
// reached the VMM.
func (a *Agent) waitRenewed(t *testing.T, name string, bound time.Duration) {
	t.Helper()
	first := a.poolDom(t, name)
	was := time.Now().Add(time.Duration(first.RunUntil * float64(time.Second)))
	a.waitPoolDom(t, name, "a renewed run-until time", bound, func(in poolDom) bool {
		return in.RunUntil > 0 && time.Now().Add(time.Duration(in.RunUntil*float64(time.Second))).After(was.Add(time.Second))
	})
}

// TestPoolStartLocalOneOwner: pool.start_local runs the domain on agent
// A under A's lease at a generation; B is refused, naming A; a short
// SIGSTOP of A changes nothing; A SIGSTOPped past its TTL has its guest
// fenced by its VMM, and then B's start_local succeeds at a higher
// generation; A continued destroys its copy (it never resumes it): one
// copy runs, on B.
func TestPoolStartLocalOneOwner(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "4s", "1s")
	b := poolDomAgent(t, c, "agent-b", "4s", "1s")
	pa := waitPoolState(t, a, "member")
	waitPoolState(t, b, "member")

	if f := a.fault(t, "pool.start_local", poolDomUUID); f.Code != 1002 || !strings.Contains(f.Message, "no such domain") {
		t.Errorf("start_local without a spec: %+v", f)
	}
	putSpec(t, cli, poolDomUUID, "ha1")
	freeBefore := memberFree(t, cli, "agent-a")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	if r.Host != "agent-a" || r.Name != "ha1" || r.Generation <= 0 {
		t.Fatalf("start_local on a: %+v", r)
	}
	// The member record says the domain's memory is taken.
	started := time.Now()
	for memberFree(t, cli, "agent-a") != freeBefore-64 {
		if time.Since(started) > 30*time.Second {
			t.Fatalf("a's member record: free memory %d MiB, want %d after a 64 MiB domain started", memberFree(t, cli, "agent-a"), freeBefore-64)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("member record updated %v after start_local", time.Since(started).Round(time.Millisecond))
	if host, gen := ownerOf(t, cli, poolDomUUID); host != "agent-a" || gen != r.Generation {
		t.Fatalf("owner key: %s at %d, want agent-a at %d", host, gen, r.Generation)
	}
	in := a.poolDom(t, "ha1")
	if in.State != "running" || in.Generation != r.Generation || in.RunUntil <= 0 || in.RunUntil > 3 {
		t.Fatalf("a's domain after start_local: %+v (run-until within the TTL less the margin, 3s)", in)
	}
	// (A live migration hands the ownership over: test/poolmove_test.go.)
	var again startLocalResult
	a.call(t, "pool.start_local", &again, poolDomUUID)
	if again != r {
		t.Errorf("start_local again on a: %+v, want %+v", again, r)
	}
	if p := poolOf(t, a); p == nil {
		t.Fatal("no pool in host.info")
	}
	f := b.fault(t, "pool.start_local", poolDomUUID)
	if f.Code != 1011 || !strings.Contains(f.Message, "owned by agent-a") {
		t.Fatalf("start_local on b while a owns it: %+v", f)
	}
	if bi := b.poolDom(t, "ha1"); bi.State != "stopped" {
		t.Errorf("b's copy after the refusal: %+v", bi)
	}
	// Nor may B start its copy by hand.
	if f := b.fault(t, "domain.start", "ha1"); f.Code != 1003 || !strings.Contains(f.Message, "does not own") {
		t.Errorf("domain.start of the pool domain on b: %+v", f)
	}
	a.waitRenewed(t, "ha1", 10*time.Second)

	// Stopped for less than the TTL less the margin, and less than that
	// less a renewal interval (3s - 1.33s): nothing happens.
	a.Signal(syscall.SIGSTOP)
	time.Sleep(700 * time.Millisecond)
	a.Signal(syscall.SIGCONT)
	a.waitRenewed(t, "ha1", 10*time.Second)
	if in := a.poolDom(t, "ha1"); in.State != "running" || in.Fenced || in.Generation != r.Generation {
		t.Errorf("after a short SIGSTOP: %+v", in)
	}
	if p := poolOf(t, a); p.State != "member" || p.Lease != pa.Lease {
		t.Errorf("pool after a short SIGSTOP: %+v, want a member under %s", p, pa.Lease)
	}

	// Stopped past the TTL: the VMM fences the guest by itself.
	v := vmmOf(t, a, poolDomUUID)
	a.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { a.Signal(syscall.SIGCONT) })
	fenced := waitVMM(t, v, "the fence", 20*time.Second, func(i *control.Info) bool { return i.State == control.StateFenced })
	// B may take it over once etcd has expired A's lease.
	var rb startLocalResult
	end := time.Now().Add(30 * time.Second)
	for {
		err := b.Unix().Call(context.Background(), "pool.start_local", &rb, poolDomUUID)
		if err == nil {
			break
		}
		if f, ok := err.(interface{ Error() string }); ok && !strings.Contains(f.Error(), "owned by agent-a") {
			t.Fatalf("start_local on b while a is stopped: %v", err)
		}
		if time.Now().After(end) {
			t.Fatalf("b could not start the domain 30s after a was stopped: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rb.Host != "agent-b" || rb.Generation <= r.Generation {
		t.Fatalf("start_local on b after a's lease expired: %+v, want a generation above %d", rb, r.Generation)
	}
	if now, err := v.Inspect(context.Background()); err != nil || now.State != control.StateFenced || now.Writes != fenced.Writes {
		t.Fatalf("a's VMM when b started its copy: %+v, %v (fenced with %d pages written)", now, err, fenced.Writes)
	}

	// A continued: it finds its lease gone and destroys its copy, which
	// stays fenced until then.
	a.Signal(syscall.SIGCONT)
	end = time.Now().Add(30 * time.Second)
	for {
		now, err := v.Inspect(context.Background())
		if err != nil {
			break // the VMM is gone
		}
		// Fenced until the destroy begins (then its VMM says it is
		// ending); never running again, never another page written.
		if now.State == control.StateRunning || now.Writes != fenced.Writes {
			t.Fatalf("a's fenced guest after SIGCONT: %+v (fenced with %d pages written)", now, fenced.Writes)
		}
		if time.Now().After(end) {
			t.Fatalf("a's copy still there 30s after SIGCONT: %+v", now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.waitPoolDom(t, "ha1", "destroyed", 20*time.Second, func(in poolDom) bool { return in.State == "stopped" })
	a.WaitLog("destroyed a pool domain this agent no longer owns")
	if f := a.fault(t, "domain.start", "ha1"); f.Code != 1003 || !strings.Contains(f.Message, "does not own") {
		t.Errorf("domain.start of the destroyed copy on a: %+v", f)
	}
	if !strings.Contains(a.Log(), "owned by agent-b at generation") {
		t.Errorf("a's log does not say who owns the domain now")
	}
	if bi := b.poolDom(t, "ha1"); bi.State != "running" || bi.Generation != rb.Generation || bi.Fenced {
		t.Errorf("b's copy: %+v", bi)
	}
	if host, gen := ownerOf(t, cli, poolDomUUID); host != "agent-b" || gen != rb.Generation {
		t.Errorf("owner key: %s at %d, want agent-b at %d", host, gen, rb.Generation)
	}
	p := waitPoolState(t, a, "member")
	if p.Lease == pa.Lease {
		t.Errorf("a is a member under its expired lease %s", pa.Lease)
	}
	// A may not start it now; B stops it and lets it go, and then A can.
	if f := a.fault(t, "pool.start_local", poolDomUUID); f.Code != 1011 || !strings.Contains(f.Message, "owned by agent-b") {
		t.Errorf("start_local on a while b owns it: %+v", f)
	}
	var st struct {
		State    string `xmlrpc:"state"`
		Released bool   `xmlrpc:"released"`
	}
	b.call(t, "pool.stop_local", &st, poolDomUUID, true)
	if st.State != "stopped" || !st.Released {
		t.Errorf("stop_local on b: %+v", st)
	}
	if host, _ := ownerOf(t, cli, poolDomUUID); host != "" {
		t.Errorf("owner after b's stop_local: %s", host)
	}
	var r3 startLocalResult
	a.call(t, "pool.start_local", &r3, poolDomUUID)
	if r3.Generation <= rb.Generation {
		t.Errorf("a's new generation %d, want above %d", r3.Generation, rb.Generation)
	}
}

// TestPoolEtcdOutageSameLeaseResumes: agent A's etcd goes quiet (every
// etcd member SIGSTOPped: to A it looks like a cut connection; the
// sockets stay, so the renewal in flight is answered the moment they are
// continued, with no TCP retransmission backoff to wait out) and comes
// back, twice:
//
//   - for longer than RunUntil but less than the lease's TTL: a TTL of 6s
//     with a 3s margin leaves a 3s window between the VMM's fence
//     (RunUntil) and the deadline at which A and etcd would give the
//     lease up; etcd is continued as soon as the fence is seen. The
//     member never lapses: its next renewal answers, under the same
//     lease, and the guest resumes.
//   - for longer than A's own deadline, with the lease kept alive in etcd
//     meanwhile: the etcd leader is killed while stopped, and the other
//     two continued; their new leader extends every lease by its TTL (as
//     etcd does on a leader change), so etcd holds A's lease past A's own
//     deadline. A has lapsed by its reckoning (the guest stays fenced);
//     it takes the same lease up again and the guest resumes.
func TestPoolEtcdOutageSameLeaseResumes(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "6s", "3s")
	pa := waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	a.waitRenewed(t, "ha1", 10*time.Second)
	stopAll := func() {
		for _, m := range c.Members {
			m.Stop()
		}
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			if m.Running() {
				m.Continue()
			}
		}
	})

	// 1: fenced at RunUntil, etcd back before the deadline.
	stopAll()
	fenced := a.waitPoolDom(t, "ha1", "the fence", 10*time.Second, func(in poolDom) bool { return in.Fenced })
	for _, m := range c.Members {
		m.Continue()
	}
	if fenced.State != "paused" || fenced.Reason != "fenced" || fenced.Generation != r.Generation {
		t.Errorf("fenced guest: %+v", fenced)
	}
	resumed := a.waitPoolDom(t, "ha1", "resumed", 10*time.Second, func(in poolDom) bool { return in.State == "running" && !in.Fenced })
	if resumed.Generation != r.Generation || resumed.PID != fenced.PID {
		t.Errorf("resumed guest: %+v, want generation %d in VMM %d", resumed, r.Generation, fenced.PID)
	}
	a.waitPoolDom(t, "ha1", "writing again", 10*time.Second, func(in poolDom) bool { return in.Written > fenced.Written })
	if p := poolOf(t, a); p.State != "member" || p.Lease != pa.Lease {
		t.Errorf("pool after the short outage: %+v, want a member under %s", p, pa.Lease)
	}
	if strings.Contains(a.Log(), "pool lease lost") {
		t.Errorf("the lease was given up in the short outage")
	}

	// 2: A lapses, etcd keeps the lease through a leader change.
	leader, err := c.Leader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	stopAll()
	a.WaitLog("pool lease lapsed")
	if in := a.poolDom(t, "ha1"); !in.Fenced || in.State != "paused" {
		t.Errorf("guest of the lapsed member: %+v", in)
	}
	leader.Kill()
	for _, m := range c.Members {
		if m != leader {
			m.Continue()
		}
	}
	a.WaitLog("took up the previous run's pool lease")
	p := waitPoolState(t, a, "member")
	if p.Lease != pa.Lease {
		t.Fatalf("after the lapse: lease %s, want %s taken up again", p.Lease, pa.Lease)
	}
	in := a.waitPoolDom(t, "ha1", "resumed after the lapse", 10*time.Second, func(in poolDom) bool { return in.State == "running" && !in.Fenced })
	if in.Generation != r.Generation || in.PID != fenced.PID || in.Corrupt != 0 {
		t.Errorf("guest after the lapse: %+v", in)
	}
	if host, gen := ownerOf(t, cli, poolDomUUID); host != "agent-a" || gen != r.Generation {
		t.Errorf("owner key after the lapse: %s at %d", host, gen)
	}
	if strings.Contains(a.Log(), "destroyed a pool domain") {
		t.Errorf("a destroyed its guest though it kept its lease")
	}
}

// TestPoolAgentRestartKeepsDomains: an agent killed -9 and started again
// within its lease's TTL takes its lease and its domains up: the guest
// runs on in the same VMM, never fenced, and the renewals of the new run
// reach its VMM. An agent stopped gracefully while it owns a domain does
// not revoke its lease (that would free the owner key while the guest
// runs here): started again, it takes both up the same way.
func TestPoolAgentRestartKeepsDomains(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "10s", "2s")
	pa := waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	before := a.poolDom(t, "ha1")

	for _, how := range []string{"killed", "stopped"} {
		if how == "killed" {
			a.Signal(syscall.SIGKILL)
		} else if err := a.Stop(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		<-a.done
		a.start()
		a.waitReady()
		p := waitPoolState(t, a, "member")
		// The owned set is rebuilt from etcd just after the join.
		for end := time.Now().Add(10 * time.Second); len(p.Domains) == 0 && time.Now().Before(end); p = poolOf(t, a) {
			time.Sleep(20 * time.Millisecond)
		}
		if p.Lease != pa.Lease || len(p.Domains) != 1 || p.Domains[0] != "ha1" {
			t.Fatalf("agent %s and started again: pool %+v, want lease %s owning ha1", how, p, pa.Lease)
		}
		a.waitRenewed(t, "ha1", 15*time.Second)
		in := a.poolDom(t, "ha1")
		if in.State != "running" || in.Fenced || in.PID != before.PID || in.Generation != r.Generation || in.Corrupt != 0 {
			t.Fatalf("the guest after the agent was %s and started again: %+v, before %+v", how, in, before)
		}
		if host, gen := ownerOf(t, cli, poolDomUUID); host != "agent-a" || gen != r.Generation {
			t.Fatalf("owner key after the agent was %s: %s at %d", how, host, gen)
		}
	}
	// Owned, it is neither stopped nor deleted through the local API:
	// through the pool.
	for _, m := range []string{"domain.destroy", "domain.shutdown", "domain.delete"} {
		if f := a.fault(t, m, "ha1"); f.Code != 1003 || !strings.Contains(f.Message, "pool.stop_local") {
			t.Errorf("%s of an owned pool domain: %+v", m, f)
		}
	}
	if in := a.poolDom(t, "ha1"); in.State != "running" {
		t.Errorf("after the refused local stops: %+v, want running", in)
	}
	// The ownership it took up is its own: stop_local releases it.
	var st struct {
		State    string `xmlrpc:"state"`
		Released bool   `xmlrpc:"released"`
	}
	a.call(t, "pool.stop_local", &st, poolDomUUID, false, 10)
	if st.State != "stopped" || !st.Released {
		t.Errorf("stop_local: %+v", st)
	}
	if host, _ := ownerOf(t, cli, poolDomUUID); host != "" {
		t.Errorf("owner after stop_local: %s", host)
	}
	// Owning nothing, a graceful stop revokes the lease.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ttl, err := cli.TimeToLive(ctx, leaseID(t, pa.Lease)); err != nil || ttl.TTL != -1 {
		t.Errorf("lease after a stop owning nothing: %+v, %v; want revoked", ttl, err)
	}
}

func leaseID(t *testing.T, hex string) clientv3.LeaseID {
	t.Helper()
	var id int64
	if _, err := fmt.Sscanf(hex, "%x", &id); err != nil {
		t.Fatal(err)
	}
	return clientv3.LeaseID(id)
}

// pool.start_local and pool.stop_local need a pool member: an agent in no
// pool says so, and one whose pool's etcd is down says it is not a member
// just now, and why.
func TestPoolStartLocalNeedsMember(t *testing.T) {
	single := startAgent(t, agentConf{})
	for _, m := range []string{"pool.start_local", "pool.stop_local"} {
		if f := single.fault(t, m, poolDomUUID); f.Code != 1007 || !strings.Contains(f.Message, "in no server pool") {
			t.Errorf("%s on an agent in no pool: %+v", m, f)
		}
	}
	c := etcdtest.Start(t, 1)
	c.Members[0].Kill()
	a := poolDomAgent(t, c, "agent-a", "4s", "1s")
	for _, m := range []string{"pool.start_local", "pool.stop_local"} {
		if f := a.fault(t, m, poolDomUUID); f.Code != 1003 || !strings.Contains(f.Message, "not a pool member just now") || !strings.Contains(f.Message, "joining") {
			t.Errorf("%s on an agent joining: %+v", m, f)
		}
	}
}

// start_local refuses a spec this host cannot honour, with nothing taken:
// a different domain here by the spec's name, a config whose uuid is not
// the spec's; the owner key stays free.
func TestPoolStartLocalRefusesClash(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "4s", "1s")
	waitPoolState(t, a, "member")
	a.call(t, "domain.create", nil, vmcfgText("ha1", 64, "dirty=1M/s"))
	putSpec(t, cli, poolDomUUID, "ha1")
	if f := a.fault(t, "pool.start_local", poolDomUUID); f.Code != 1004 || !strings.Contains(f.Message, `a different domain named "ha1"`) {
		t.Errorf("start_local with another ha1 here: %+v", f)
	}
	const other = "5e1f0a0e-0000-4000-8000-00000000a002"
	spec := pool.DomainSpec{Name: "ha2", UUID: other, Desired: pool.DesiredRunning,
		Config: vmcfgText("ha2", 64, "dirty=1M/s", "uuid = '"+poolDomUUID+"'")}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, pool.SpecKey("e2e", other), string(b)); err != nil {
		t.Fatal(err)
	}
	if f := a.fault(t, "pool.start_local", other); f.Code != 1010 || !strings.Contains(f.Message, "does not match") {
		t.Errorf("start_local of a spec whose config has another uuid: %+v", f)
	}
	for _, u := range []string{poolDomUUID, other} {
		if host, _ := ownerOf(t, cli, u); host != "" {
			t.Errorf("owner of %s after a refused start_local: %s", u, host)
		}
	}
	if p := poolOf(t, a); len(p.Domains) != 0 {
		t.Errorf("owned after refusals: %v", p.Domains)
	}
	// A UUID in capitals is the pool's keys' spelling: owned under it,
	// renewed, and released by it.
	const upper = "5E1F0A0E-0000-4000-8000-00000000A003"
	putSpec(t, cli, upper, "ha3")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, upper)
	if host, gen := ownerOf(t, cli, upper); host != "agent-a" || gen != r.Generation {
		t.Errorf("owner of %s: %s at %d, want agent-a at %d", upper, host, gen, r.Generation)
	}
	a.waitRenewed(t, "ha3", 10*time.Second)
	if p := poolOf(t, a); len(p.Domains) != 1 || p.Domains[0] != "ha3" {
		t.Errorf("owned: %v", p.Domains)
	}
	a.call(t, "pool.stop_local", nil, upper, true)
	if host, _ := ownerOf(t, cli, upper); host != "" {
		t.Errorf("owner of %s after stop_local: %s", upper, host)
	}
	// The pool's spec changes (more memory): the stopped copy here is
	// registered again from it before it starts.
	spec3 := pool.DomainSpec{Name: "ha3", UUID: upper, Desired: pool.DesiredRunning,
		Config: vmcfgText("ha3", 96, "dirty=1M/s", "uuid = '"+upper+"'")}
	if b, err = json.Marshal(spec3); err != nil {
		t.Fatal(err)
	}
	// The master (this agent) may record the stop meanwhile, rewriting
	// the spec (desired stopped: ha3 is not HA); a start_local that read
	// the spec before that is refused (fault 1006, the spec changed under
	// it), and the test writes its spec again.
	for try := 0; ; try++ {
		if _, err := cli.Put(ctx, pool.SpecKey("e2e", upper), string(b)); err != nil {
			t.Fatal(err)
		}
		err := a.Unix().Call(context.Background(), "pool.start_local", nil, upper)
		if err == nil {
			break
		}
		if f, ok := err.(*client.Fault); !ok || f.Code != 1006 || !strings.Contains(f.Message, "spec changed") || try == 3 {
			t.Fatalf("pool.start_local after the spec changed: %v", err)
		}
	}
	if in := a.info(t, "ha3"); in.Memory != 96 || in.State != "running" {
		t.Errorf("ha3 after its spec changed: %+v, want 96 MiB running", in)
	}
}

// poolQEMUAgent is an agent for qemu domains on listen, member host of
// pool e2e (TTL 4s, margin 1s).
func poolQEMUAgent(t *testing.T, c *etcdtest.Cluster, listen, host string) *Agent {
	t.Helper()
	return startAgent(t, agentConf{Listen: listen, FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
		Extra: map[string][]string{
			"agent": {"memory_reserve = 0"},
			"qemu":  {"accel = " + testGuestAccel(t)},
			"pool":  poolLines(c, host),
		}})
}

// TestPoolQEMUFailover: where QEMU matters, an operating system guest.
// start_local's generation reaches the guest (fw_cfg, printed by the
// test guest at boot); the agent SIGSTOPped past its TTL has its QEMU
// paused by its VMM (the memory checker's console stops), the other
// member starts the domain at a higher generation (the guest there says
// so), and the first agent, continued, destroys its paused copy without
// resuming it.
func TestPoolQEMUFailover(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolQEMUAgent(t, c, "127.0.0.2", "agent-a")
	b := poolQEMUAgent(t, c, "127.0.0.3", "agent-b")
	waitPoolState(t, a, "member")
	waitPoolState(t, b, "member")
	g := guestVM{Name: "hq", Lines: []string{"uuid = '" + poolDomUUID + "'"}}
	spec := pool.DomainSpec{Name: g.Name, UUID: poolDomUUID, HA: true, Desired: pool.DesiredRunning, Config: g.cfg(t)}
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, pool.SpecKey("e2e", poolDomUUID), string(data)); err != nil {
		t.Fatal(err)
	}
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	genLine := func(gen int64) func([]string) bool {
		return func(lines []string) bool {
			for _, l := range lines {
				if strings.TrimSpace(l) == fmt.Sprintf("testguest: generation %d", gen) {
					return true
				}
			}
			return false
		}
	}
	a.waitConsoleLines(t, g.Name, fmt.Sprintf("the guest's generation %d", r.Generation), qemuBoot, genLine(r.Generation))
	a.waitMemcheck(t, g.Name, 2)

	v := vmmOf(t, a, poolDomUUID)
	a.Signal(syscall.SIGSTOP)
	t.Cleanup(func() { a.Signal(syscall.SIGCONT) })
	fenced := waitVMM(t, v, "the fence", 20*time.Second, func(i *control.Info) bool { return i.State == control.StateFenced })
	if fenced.FenceDetail != "guest paused" {
		t.Errorf("fence: %+v", fenced)
	}
	var rb startLocalResult
	end := time.Now().Add(30 * time.Second)
	for {
		err := b.Unix().Call(context.Background(), "pool.start_local", &rb, poolDomUUID)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "owned by agent-a") || time.Now().After(end) {
			t.Fatalf("start_local on b while a is stopped: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rb.Generation <= r.Generation {
		t.Fatalf("b's generation %d, want above a's %d", rb.Generation, r.Generation)
	}
	b.waitConsoleLines(t, g.Name, fmt.Sprintf("the guest's generation %d", rb.Generation), qemuBoot, genLine(rb.Generation))
	b.waitMemcheck(t, g.Name, 2)
	if now, err := v.Inspect(context.Background()); err != nil || now.State != control.StateFenced || now.ConsoleEnd != fenced.ConsoleEnd {
		t.Fatalf("a's copy while b's runs: %+v, %v (fenced at console offset %d)", now, err, fenced.ConsoleEnd)
	}

	a.Signal(syscall.SIGCONT)
	end = time.Now().Add(30 * time.Second)
	for {
		now, err := v.Inspect(context.Background())
		if err != nil {
			break // the VMM is gone
		}
		if now.State == control.StateRunning || now.ConsoleEnd != fenced.ConsoleEnd {
			t.Fatalf("a's fenced copy after SIGCONT: %+v (fenced at console offset %d)", now, fenced.ConsoleEnd)
		}
		if time.Now().After(end) {
			t.Fatalf("a's copy still there 30s after SIGCONT: %+v", now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.waitPoolDom(t, g.Name, "destroyed", 20*time.Second, func(in poolDom) bool { return in.State == "stopped" })
	b.waitMemcheck(t, g.Name, 1)
}

// TestPoolAgentBackAfterTTL: an agent killed -9 and started again after
// its lease expired finds its guest fenced by its VMM and no owner key:
// it joins under a new lease and destroys the guest (it may run
// elsewhere now), and will not start it by hand.
func TestPoolAgentBackAfterTTL(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "4s", "1s")
	pa := waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	v := vmmOf(t, a, poolDomUUID)
	a.Signal(syscall.SIGKILL)
	<-a.done
	fenced := waitVMM(t, v, "the fence", 20*time.Second, func(i *control.Info) bool { return i.State == control.StateFenced })
	end := time.Now().Add(30 * time.Second)
	for {
		if host, _ := ownerOf(t, cli, poolDomUUID); host == "" {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the owner key outlived the killed agent's lease by 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.start()
	a.waitReady()
	a.waitPoolDom(t, "ha1", "destroyed", 20*time.Second, func(in poolDom) bool { return in.State == "stopped" })
	if p := waitPoolState(t, a, "member"); p.Lease == pa.Lease || len(p.Domains) != 0 {
		t.Errorf("pool after the late restart: %+v (old lease %s)", p, pa.Lease)
	}
	if now, err := v.Inspect(context.Background()); err == nil && (now.State == control.StateRunning || now.Writes != fenced.Writes) {
		t.Errorf("the fenced guest ran again: %+v", now)
	}
	a.WaitLog("destroyed a pool domain this agent no longer owns")
	if !strings.Contains(a.Log(), "its owner key is gone") {
		t.Errorf("the log does not say the owner key is gone")
	}
	if f := a.fault(t, "domain.start", "ha1"); f.Code != 1003 || !strings.Contains(f.Message, "does not own") {
		t.Errorf("domain.start of the destroyed copy: %+v", f)
	}
}

// TestPoolAgentCutOff: agent A alone is cut off from etcd (a proxy between
// A and each etcd member stops forwarding, as a partition of A's host
// would) while etcd and agent B go on:
//
//   - mended after A's guest is fenced (RunUntil: TTL 6s less a 3s
//     margin) and before A's deadline, when etcd would expire the lease:
//     A's renewal answers under the same lease and the guest resumes;
//   - cut until etcd has expired A's lease and B has started the domain
//     at a higher generation, then mended: A, lapsed meanwhile, finds its
//     lease gone, joins under a new one and destroys its fenced copy
//     without resuming it.
func TestPoolAgentCutOff(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	var proxies []*partitionProxy
	var eps []string
	for _, m := range c.Members {
		p := newPartitionProxy(t, strings.TrimPrefix(m.ClientURL(), "http://"))
		proxies = append(proxies, p)
		eps = append(eps, p.URL())
	}
	cut := func(on bool) {
		for _, p := range proxies {
			if on {
				p.Cut()
			} else {
				p.Mend()
			}
		}
	}
	a := startAgent(t, agentConf{Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
		"pool": {"name = e2e", "host_name = agent-a", "endpoints = " + strings.Join(eps, ", "),
			"lease_ttl = 6s", "fencing_margin = 3s", "dial_timeout = 2s"},
	}})
	b := poolDomAgent(t, c, "agent-b", "6s", "3s")
	pa := waitPoolState(t, a, "member")
	waitPoolState(t, b, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	a.waitRenewed(t, "ha1", 10*time.Second)

	cut(true)
	fenced := a.waitPoolDom(t, "ha1", "the fence", 10*time.Second, func(in poolDom) bool { return in.Fenced })
	cut(false)
	in := a.waitPoolDom(t, "ha1", "resumed", 10*time.Second, func(in poolDom) bool { return in.State == "running" && !in.Fenced })
	if in.Generation != r.Generation || in.PID != fenced.PID {
		t.Errorf("resumed guest: %+v, want generation %d in VMM %d", in, r.Generation, fenced.PID)
	}
	if p := poolOf(t, a); p.State != "member" || p.Lease != pa.Lease {
		t.Errorf("pool after the short cut: %+v, want a member under %s", p, pa.Lease)
	}
	if strings.Contains(a.Log(), "pool lease lost") {
		t.Errorf("a gave its lease up in the short cut")
	}

	v := vmmOf(t, a, poolDomUUID)
	a.waitRenewed(t, "ha1", 10*time.Second)
	cut(true)
	t.Cleanup(func() { cut(false) })
	fv := waitVMM(t, v, "the fence", 20*time.Second, func(i *control.Info) bool { return i.State == control.StateFenced })
	var rb startLocalResult
	end := time.Now().Add(30 * time.Second)
	for {
		err := b.Unix().Call(context.Background(), "pool.start_local", &rb, poolDomUUID)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "owned by agent-a") || time.Now().After(end) {
			t.Fatalf("start_local on b while a is cut off: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rb.Generation <= r.Generation {
		t.Fatalf("b's generation %d, want above a's %d", rb.Generation, r.Generation)
	}
	a.WaitLog("pool lease lapsed")
	if in := a.poolDom(t, "ha1"); !in.Fenced {
		t.Errorf("a's copy while b runs it: %+v", in)
	}
	cut(false)
	end = time.Now().Add(30 * time.Second)
	for {
		now, err := v.Inspect(context.Background())
		if err != nil {
			break // the VMM is gone
		}
		if now.State == control.StateRunning || now.Writes != fv.Writes {
			t.Fatalf("a's fenced copy after the cut was mended: %+v (fenced with %d pages written)", now, fv.Writes)
		}
		if time.Now().After(end) {
			t.Fatalf("a's copy still there 30s after the cut was mended: %+v", now)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.waitPoolDom(t, "ha1", "destroyed", 20*time.Second, func(in poolDom) bool { return in.State == "stopped" })
	if !strings.Contains(a.Log(), "owned by agent-b at generation") {
		t.Errorf("a's log does not say who owns the domain now")
	}
	if p := waitPoolState(t, a, "member"); p.Lease == pa.Lease {
		t.Errorf("a is a member under its expired lease %s", pa.Lease)
	}
	if bi := b.poolDom(t, "ha1"); bi.State != "running" || bi.Generation != rb.Generation {
		t.Errorf("b's copy: %+v", bi)
	}
}

// TestPoolQuorumOutagePausesGuests: etcd loses its quorum (two of three
// members killed) for longer than the lease's TTL, then gets it back
// (restarted): the agent's guest is fenced meanwhile and the agent lapses
// by its own deadline, but etcd expires no lease without a quorum, and
// the leader elected when the quorum returns extends every lease: the
// agent takes its lease up again and the guest resumes in the same VMM.
// A quorum outage pauses guests; it does not reboot the pool.
func TestPoolQuorumOutagePausesGuests(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "6s", "3s")
	pa := waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	a.waitRenewed(t, "ha1", 10*time.Second)

	c.Members[1].Kill()
	c.Members[2].Kill()
	fenced := a.waitPoolDom(t, "ha1", "the fence", 15*time.Second, func(in poolDom) bool { return in.Fenced })
	a.WaitLog("pool lease lapsed")
	time.Sleep(2 * time.Second) // past the lease's TTL in etcd too
	c.Members[1].Restart()
	c.Members[2].Restart()
	a.WaitLog("took up the previous run's pool lease")
	if p := waitPoolState(t, a, "member"); p.Lease != pa.Lease {
		t.Fatalf("after the quorum came back: lease %s, want %s taken up again", p.Lease, pa.Lease)
	}
	in := a.waitPoolDom(t, "ha1", "resumed", 15*time.Second, func(in poolDom) bool { return in.State == "running" && !in.Fenced })
	if in.PID != fenced.PID || in.Generation != r.Generation {
		t.Errorf("guest after the quorum came back: %+v, want generation %d in VMM %d", in, r.Generation, fenced.PID)
	}
	a.waitPoolDom(t, "ha1", "writing again", 10*time.Second, func(in poolDom) bool { return in.Written > fenced.Written })
	if strings.Contains(a.Log(), "destroyed a pool domain") {
		t.Errorf("the guest was destroyed though the lease survived")
	}
}

// TestPoolOwnedButNotRegistered: an agent that comes back (killed -9,
// started within the TTL) to a lease owning a domain its registry no
// longer has (the domain's folder gone; its VMM running on, unknown to
// the registry) does not release the owner key at once, which would let
// another member start the domain while that VMM still runs: it refuses
// start_local and stop_local of it (Busy), renews that VMM no more, and
// releases the key once the VMM has fenced itself.
func TestPoolOwnedButNotRegistered(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "4s", "1s")
	waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	var r startLocalResult
	a.call(t, "pool.start_local", &r, poolDomUUID)
	v := vmmOf(t, a, poolDomUUID)
	a.Signal(syscall.SIGKILL)
	<-a.done
	if err := os.Rename(filepath.Join(a.Dir, "state", "domains", "ha1"), filepath.Join(t.TempDir(), "ha1")); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.waitReady()
	a.WaitLog("a pool domain this agent owns is not registered here")
	for _, m := range []string{"pool.start_local", "pool.stop_local"} {
		if f := a.fault(t, m, poolDomUUID); f.Code != 1006 || !strings.Contains(f.Message, "not registered here") {
			t.Errorf("%s of the unregistered domain: %+v", m, f)
		}
	}
	end := time.Now().Add(30 * time.Second)
	for {
		host, _ := ownerOf(t, cli, poolDomUUID)
		info, err := v.Inspect(context.Background())
		if err != nil {
			t.Fatalf("the unregistered domain's VMM: %v", err)
		}
		if host == "" {
			if info.State != control.StateFenced {
				t.Fatalf("owner key released while the VMM is %s", info.State)
			}
			break
		}
		if host != "agent-a" || time.Now().After(end) {
			t.Fatalf("owner %q, VMM %s, 30s after the restart", host, info.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.WaitLog("released a pool domain this agent owned but does not have")
}

// TestPoolLeaseRevokedDestroys: a lease etcd revokes (an operator's
// etcdctl lease revoke) frees the owner keys at once, so the agent
// destroys the domains it ran under it as soon as it hears (its next
// renewal), saying why, and joins under a new lease.
func TestPoolLeaseRevokedDestroys(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	a := poolDomAgent(t, c, "agent-a", "6s", "2s")
	pa := waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")
	a.call(t, "pool.start_local", nil, poolDomUUID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, leaseID(t, pa.Lease)); err != nil {
		t.Fatal(err)
	}
	a.waitPoolDom(t, "ha1", "destroyed", 20*time.Second, func(in poolDom) bool { return in.State == "stopped" })
	a.WaitLog("destroyed a pool domain this agent no longer owns")
	if !strings.Contains(a.Log(), "its owner's lease was revoked or expired in etcd; its owner key is gone") {
		t.Errorf("the log does not say why the domain was destroyed")
	}
	if p := waitPoolState(t, a, "member"); p.Lease == pa.Lease || len(p.Domains) != 0 {
		t.Errorf("pool after the revocation: %+v", p)
	}
}
