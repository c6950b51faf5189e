package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/pool"
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

// newRecPool starts hosts as qemu agents of pool e2e (lease TTL ttl,
// fencing margin margin), on 127.0.0.ip0, ip0+1, ... over plain HTTP:
// the master's calls to a member then reach the member's socket whole
// before it answers.
func newRecPool(t *testing.T, c *etcdtest.Cluster, ttl, margin string, ip0 int, hosts ...string) *recPool {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &recPool{c: c, cli: etcdClient(t, c), agents: map[string]*Agent{}, hosts: hosts, shared: t.TempDir()}
	accel := testGuestAccel(t)
	for i, host := range hosts {
		lines := poolLinesTTL(c, host, ttl)
		for j, l := range lines {
			if strings.HasPrefix(l, "fencing_margin") {
				lines[j] = "fencing_margin = " + margin
			}
		}
		p.agents[host] = startAgent(t, agentConf{Listen: fmt.Sprintf("127.0.0.%d", ip0+i),
			FileDirs: []string{p.shared, testGuestDir(t)},
			Extra: map[string][]string{
				"agent":      {"memory_reserve = 0"},
				"qemu":       {"accel = " + accel},
				"relocation": {"peer_password_file = " + pwFile},
				"pool":       lines,
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
// itself a live agent (a killed master is named until its lease
// expires), and returns it.
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
		if len(seen) == 1 {
			for m := range seen {
				if a := p.agents[m]; a != nil && !a.Exited() {
					return m
				}
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
		if a := p.agents[h]; !a.Exited() && !slices.Contains(except, h) {
			return a
		}
	}
	return nil
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
// disk, which never shows two writers, has grown by at least three
// records of that generation, its last, since the check began.
func (p *recPool) checkOneWriter(t *testing.T, name, disk string, bound time.Duration) (poolDomView, records.Summary) {
	t.Helper()
	via := p.live()
	run := waitPoolDomain(t, via, name, "running on a live agent", bound, func(d poolDomView) bool {
		a := p.agents[d.Host]
		return d.State == "running" && a != nil && !a.Exited() && d.Generation > 0
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
	s := waitRecords(t, disk, fmt.Sprintf("three more records of generation %d", run.Generation), bound, func(s records.Summary) bool {
		n := len(s.Runs)
		return n > 0 && s.Runs[n-1].Generation == run.Generation && s.Runs[n-1].Records >= base+3
	})
	// The guest is told the pool member name of the host that runs it.
	if last := s.Runs[len(s.Runs)-1]; last.Host != run.Host {
		t.Errorf("%s's records of generation %d name host %q, want the member %s", name, run.Generation, last.Host, run.Host)
	}
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
// whole. Whether the guest was fenced for a moment (no renewal for
// longer than the TTL less the margin and a renewal interval, 10s - 3s -
// 3.3s with [pool]'s defaults) is logged: a leader election takes one or
// two election timeouts, 1s here, more on a loaded machine; a fenced
// guest must have resumed in the same VMM.
func TestPoolEtcdLeaderKilled(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 3)
	// The defaults of [pool] (TTL 10s, margin 3s): nothing waits for a
	// lease to expire here.
	p := newRecPool(t, c, "10s", "3s", 11, "agent-a", "agent-b")
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
	renewFails := logLines(owner.Log(), "pool lease renewal failed")
	t.Logf("during the etcd leader change: %d fence(s) of the guest, %d failed renewal(s) on %s", fences, len(renewFails), run1.Host)
	for _, l := range renewFails {
		t.Logf("%s", l)
	}
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
	// The master's guarded writes go on: a member into maintenance and
	// out again, through the other member.
	via := p.live(master)
	for _, on := range []bool{true, false} {
		via.call(t, "pool.maintenance", nil, master, on)
		var pi struct {
			Members []struct {
				Host  string `xmlrpc:"host"`
				State string `xmlrpc:"state"`
			} `xmlrpc:"members"`
		}
		via.call(t, "pool.info", &pi)
		want := map[bool]string{true: "maintenance", false: "active"}[on]
		for _, m := range pi.Members {
			if m.Host == master && m.State != want {
				t.Errorf("pool.info after pool.maintenance %s %v: %+v", master, on, m)
			}
		}
	}
	p.checkOneWriter(t, "lead", disk, 30*time.Second)
}

// addresses waits (bounded) until pool.info lists every agent of the
// pool with its API address: the master may then place on any.
func (p *recPool) addresses(t *testing.T) {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for {
		var pi struct {
			Members []struct {
				Host    string `xmlrpc:"host"`
				Address string `xmlrpc:"address"`
			} `xmlrpc:"members"`
		}
		p.live().call(t, "pool.info", &pi)
		n := 0
		for _, m := range pi.Members {
			if m.Address != "" && p.agents[m.Host] != nil && !p.agents[m.Host].Exited() {
				n++
			}
		}
		if n == len(p.hosts) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("pool.info after 20s: %+v, want %d members with their addresses", pi, len(p.hosts))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// requestQueued says whether a TCP connection to addr (an IPv4 ip:port
// this machine serves) holds bytes its server has not read yet: a
// request that reached a server that is stopped (/proc/net/tcp lists
// connections still in the listener's accept queue too).
func requestQueued(t *testing.T, addr string) bool {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ip := net.ParseIP(host).To4()
	pn, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		t.Fatalf("address %s: want an IPv4 ip:port", addr)
	}
	local := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], pn)
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st tx_queue:rx_queue ...; st 01 is ESTABLISHED.
		if len(f) < 5 || f[1] != local || f[3] != "01" {
			continue
		}
		if _, rx, ok := strings.Cut(f[4], ":"); ok {
			if n, err := strconv.ParseUint(rx, 16, 64); err == nil && n > 0 {
				return true
			}
		}
	}
	return false
}

// dispatchedTo waits (bounded) for the master's log to say it dispatches
// domain name, and returns the member it dispatches to.
func dispatchedTo(t *testing.T, master *Agent, name string, bound time.Duration) string {
	t.Helper()
	end := time.Now().Add(bound)
	for {
		for _, l := range logLines(master.Log(), "dispatching pool domain") {
			var e struct {
				Domain string `json:"domain"`
				To     string `json:"to"`
			}
			if json.Unmarshal([]byte(l), &e) == nil && e.Domain == name && e.To != "" {
				return e.To
			}
		}
		if time.Now().After(end) {
			t.Fatalf("the master's log does not say it dispatches %s within %s", name, bound)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPoolMasterKilledMidPlacement: the pool master killed -9 (its agent;
// its VMMs run on) in the middle of a placement, twice, with the records
// guest on three qemu agents:
//
//   - the dispatch sent and not yet taken: the two other members stopped
//     (SIGSTOP, well within their TTL), the master creates an HA domain
//     preferring them, and is killed once its pool.start_local request
//     sits unread on the chosen member's socket; the members continued,
//     the chosen one answers a caller that is gone. The next master
//     (elected when the dead one's lease expires) finishes the placement
//     (the owner key is there) or makes it again;
//   - the start under way: the master (the next one; the first is started
//     again and joins anew) is killed as soon as the chosen member has
//     taken the domain's owner key (a watch on it), while its VMM starts.
//     The start goes on there, and the next master records the domain
//     running there: no second start anywhere. A domain the killed master
//     ran itself is fenced by its VMM and restarted elsewhere.
//
// After each, point 6: one writer on each records disk, generations
// never decreasing, each domain running on exactly one server.
func TestPoolMasterKilledMidPlacement(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 3)
	p := newRecPool(t, c, "4s", "1s", 13, "agent-a", "agent-b", "agent-c")
	p.addresses(t)
	m1 := p.master(t, 20*time.Second)
	var others []any
	for _, h := range p.hosts {
		if h != m1 {
			others = append(others, h)
		}
	}

	// 1: the request on the chosen member's socket, unread.
	for _, h := range others {
		p.agents[h.(string)].Signal(syscall.SIGSTOP)
	}
	continued := false
	cont := func() {
		if continued {
			return
		}
		continued = true
		for _, h := range others {
			p.agents[h.(string)].Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	disk1 := p.disk(t, "mid1")
	p.create(t, p.agents[m1], recGuest(t, "mid1", disk1), map[string]any{"ha": true, "preferred": others})
	to := dispatchedTo(t, p.agents[m1], "mid1", 10*time.Second)
	end := time.Now().Add(10 * time.Second)
	for !requestQueued(t, p.agents[to].Addr) {
		if time.Now().After(end) {
			t.Fatalf("the master's pool.start_local of mid1 never reached %s's socket", to)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.agents[m1].Signal(syscall.SIGKILL)
	<-p.agents[m1].done
	killed := time.Now()
	cont()
	t.Logf("master %s killed with its start of mid1 on %s's socket", m1, to)
	p.agents[to].WaitLog(`"method":"pool.start_local"`)
	for _, l := range logLines(p.agents[to].Log(), `"method":"pool.start_local"`) {
		t.Logf("%s answered the dead master: %s", to, l)
	}
	m2 := p.master(t, 30*time.Second)
	t.Logf("master %s %v after the kill", m2, time.Since(killed).Round(100*time.Millisecond))
	run1, s1 := p.checkOneWriter(t, "mid1", disk1, 2*time.Minute)
	t.Logf("mid1 runs on %s at generation %d, three records written %v after the kill", run1.Host, run1.Generation, time.Since(killed).Round(100*time.Millisecond))
	if len(s1.Runs) != 1 {
		t.Errorf("mid1's records: %v, want one writer (one start)", s1)
	}

	// 2: the owner key taken, the start under way.
	a1 := p.agents[m1]
	a1.start()
	a1.waitReady()
	waitPoolState(t, a1, "member")
	p.addresses(t)
	if m := p.master(t, 20*time.Second); m != m2 {
		t.Fatalf("master %s, want %s still", m, m2)
	}
	var prefer []any
	for _, h := range p.hosts {
		if h != m2 {
			prefer = append(prefer, h)
		}
	}
	const uuid2 = "5e1f0a0e-0000-4000-8000-00000000b002"
	disk2 := p.disk(t, "mid2")
	wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer wcancel()
	wch := p.cli.Watch(wctx, pool.OwnerKey("e2e", uuid2))
	cfg2 := strings.TrimRight(recGuest(t, "mid2", disk2), "\n") + "\nuuid = '" + uuid2 + "'\n"
	p.create(t, p.agents[m2], cfg2, map[string]any{"ha": true, "preferred": prefer})
	var owner2 string
	var gen2 int64
	for owner2 == "" {
		wr, ok := <-wch
		if !ok {
			t.Fatal("no owner key for mid2 within 2 minutes")
		}
		for _, ev := range wr.Events {
			var r pool.OwnerRecord
			if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &r) == nil {
				owner2, gen2 = r.Host, ev.Kv.ModRevision
			}
		}
	}
	p.agents[m2].Signal(syscall.SIGKILL)
	<-p.agents[m2].done
	killed = time.Now()
	t.Logf("master %s killed as %s took mid2's owner key (generation %d)", m2, owner2, gen2)
	m3 := p.master(t, 30*time.Second)
	run2, s2 := p.checkOneWriter(t, "mid2", disk2, 2*time.Minute)
	t.Logf("master %s; mid2 runs on %s at generation %d %v after the kill", m3, run2.Host, run2.Generation, time.Since(killed).Round(100*time.Millisecond))
	if run2.Host != owner2 || run2.Generation != gen2 || len(s2.Runs) != 1 {
		t.Errorf("mid2 on %s at generation %d, records %v; want the start the killed master dispatched finished on %s at %d, one writer",
			run2.Host, run2.Generation, s2, owner2, gen2)
	}
	// mid1 too: on where it was, or, if it ran on the killed master,
	// restarted elsewhere once that member's lease ended.
	run1b, s1b := p.checkOneWriter(t, "mid1", disk1, 2*time.Minute)
	t.Logf("mid1 on %s at generation %d; records %v", run1b.Host, run1b.Generation, s1b)
	if run1b.Generation < run1.Generation || (run1.Host != m2 && run1b.Generation != run1.Generation) {
		t.Errorf("mid1 on %s at generation %d after the second kill, was on %s at %d", run1b.Host, run1b.Generation, run1.Host, run1.Generation)
	}
}

// TestPoolAcquireAnswerLost: a pool.start_local whose
// caller goes away (a master killed mid-placement) while the agent's
// owner key transaction is under way: etcd carries it out, its answer is
// held back (a proxy between the agent and etcd keeps etcd's replies
// from the moment the key exists), and the call's context ends before it
// comes. The agent must not leave the owner key bound to its lease with
// nothing running (the pool would see the domain running here, and no
// member could start it while the lease lives): the domain runs here
// under the key, or the key is gone.
func TestPoolAcquireAnswerLost(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := etcdClient(t, c)
	px := newPartitionProxy(t, strings.TrimPrefix(c.Members[0].ClientURL(), "http://"))
	a := startAgent(t, agentConf{Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
		"pool": {"name = e2e", "host_name = agent-a", "endpoints = " + px.URL(),
			"lease_ttl = 10s", "fencing_margin = 3s", "dial_timeout = 2s"},
	}})
	waitPoolState(t, a, "member")
	putSpec(t, cli, poolDomUUID, "ha1")

	// Every reply is held, and let through (the spec read, renewals, the
	// master's reads) if the owner key did not exist after it was read
	// from etcd: a reply read once the key exists may be the acquire's
	// answer, and stays.
	px.HoldReplies()
	t.Cleanup(px.Mend)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	callErr := make(chan error, 1)
	go func() {
		cl, err := client.New(client.Options{URL: "unix://" + a.Socket, Timeout: time.Minute})
		if err != nil {
			callErr <- err
			return
		}
		callErr <- cl.Call(ctx, "pool.start_local", nil, poolDomUUID)
	}()
	end := time.Now().Add(30 * time.Second)
	var gen int64
	for {
		seen := px.Replies()
		host, g := ownerOf(t, cli, poolDomUUID)
		if host != "" {
			if host != "agent-a" {
				t.Fatalf("owner %s", host)
			}
			gen = g
			break
		}
		px.ReleaseUpTo(seen)
		if time.Now().After(end) {
			t.Fatal("no owner key 30s after pool.start_local")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the caller is gone, the acquire's answer not yet in
	if err := <-callErr; err == nil {
		t.Fatal("pool.start_local answered with the acquire's answer held")
	}
	// The agent has ended the call (it took the cancelled context for a
	// failed acquire) or reads the owner key back, before etcd's replies
	// flow again.
	end = time.Now().Add(20 * time.Second)
	for !strings.Contains(a.Log(), `"method":"pool.start_local"`) && !strings.Contains(a.Log(), "reading the owner key back") {
		if time.Now().After(end) {
			t.Fatal("the agent neither ended the call nor read the owner key back within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	px.Mend()
	end = time.Now().Add(20 * time.Second)
	for {
		host, g := ownerOf(t, cli, poolDomUUID)
		in := a.poolDom(t, "ha1")
		if host == "" && !hasVMMState(in.State) {
			t.Logf("the owner key was let go; ha1 %s here", in.State)
			break
		}
		if host == "agent-a" && g == gen && in.State == "running" && in.Generation == gen {
			t.Logf("ha1 runs here at generation %d under the owner key", gen)
			break
		}
		if time.Now().After(end) {
			t.Fatalf("20s after the caller went away: owner key %q at %d, ha1 here %+v: the key is bound to the agent's lease and nothing runs", host, g, in)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, l := range logLines(a.Log(), "owner key") {
		t.Logf("%s", l)
	}
	if p := poolOf(t, a); len(p.Domains) != 1 || p.Domains[0] != "ha1" {
		t.Errorf("host.info's pool domains %v, want ha1 (owned here)", p.Domains)
	}
}
