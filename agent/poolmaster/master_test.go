package poolmaster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

const testTTL = 3 * time.Second

func settings(c *etcdtest.Cluster) pool.Settings {
	return pool.Settings{
		Pool:          "test",
		LeaseTTL:      testTTL,
		FencingMargin: time.Second,
		Client:        clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second},
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func outside(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// fakeAgents stands in for the members' agents: a start takes the owner
// key through the member, as pool.start_local does, and is recorded.
type fakeAgents struct {
	t   *testing.T
	cli *clientv3.Client

	mu      sync.Mutex
	members map[string]*pool.Member
	started map[string][]string // uuid -> hosts whose start took the owner key
	calls   map[string][]string // uuid -> hosts a start was asked of
	adopts  map[string][]string // uuid -> hosts an adopt was asked of
	stops   map[string][]string // uuid -> hosts a stop was asked of
	// adoptKeyFirst: an adopt takes the owner key before it waits at the
	// gate (and before it fails, with fail[host]).
	adoptKeyFirst bool
	failOnce      map[string]error // host -> error its next adopt gives (after taking the key, with adoptKeyFirst)
	// ownedAtCall counts starts asked while the domain's owner key
	// existed (of another host).
	ownedAtCall int
	fail        map[string]error       // host -> error its starts give
	hang        map[string]bool        // host -> its starts answer only when given up
	gate        chan struct{}          // when set, the next start waits for it to close
	entered     chan pool.MemberRecord // told when a gated start is entered
}

func newFake(t *testing.T, cli *clientv3.Client) *fakeAgents {
	return &fakeAgents{t: t, cli: cli, members: map[string]*pool.Member{}, started: map[string][]string{}, calls: map[string][]string{}, adopts: map[string][]string{}, stops: map[string][]string{}, fail: map[string]error{}, hang: map[string]bool{}}
}

func (f *fakeAgents) add(m *pool.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members[m.Host()] = m
}

func (f *fakeAgents) Start(ctx context.Context, to pool.MemberRecord, uuid string) (int64, error) {
	f.mu.Lock()
	f.calls[uuid] = append(f.calls[uuid], to.Host)
	m, gate, entered, ferr, hang := f.members[to.Host], f.gate, f.entered, f.fail[to.Host], f.hang[to.Host]
	f.gate = nil
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	// The owner key at the time of the call.
	if resp, err := f.cli.Get(context.Background(), pool.OwnerKey("test", uuid)); err == nil && len(resp.Kvs) > 0 {
		var o pool.OwnerRecord
		_ = json.Unmarshal(resp.Kvs[0].Value, &o)
		if o.Host != to.Host {
			f.mu.Lock()
			f.ownedAtCall++
			f.mu.Unlock()
		}
	}
	if gate != nil {
		entered <- to
		<-gate // a call that arrives late, whatever the master's context says
	}
	if ferr != nil {
		return 0, ferr
	}
	if m == nil {
		return 0, fmt.Errorf("no agent %s", to.Host)
	}
	actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gen, err := m.AcquireOwner(actx, uuid)
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.started[uuid] = append(f.started[uuid], to.Host)
	f.mu.Unlock()
	return gen, nil
}

func (f *fakeAgents) Stop(ctx context.Context, on pool.MemberRecord, uuid string) error {
	f.mu.Lock()
	m := f.members[on.Host]
	f.stops[uuid] = append(f.stops[uuid], on.Host)
	f.mu.Unlock()
	if m == nil {
		return fmt.Errorf("no agent %s", on.Host)
	}
	return m.ReleaseOwner(ctx, uuid)
}

// Adopt takes the owner key on the member, as pool.adopt_local does for a
// domain running there (guarded by the spec it reads); failing with
// fail[host]; gated like Start. With adoptKeyFirst the key is taken
// before the gate and kept when it fails (the member took it and could
// not let it go).
func (f *fakeAgents) Adopt(ctx context.Context, on pool.MemberRecord, uuid string) (int64, error) {
	f.mu.Lock()
	f.adopts[uuid] = append(f.adopts[uuid], on.Host)
	m, gate, entered, ferr, first := f.members[on.Host], f.gate, f.entered, f.fail[on.Host], f.adoptKeyFirst
	if e, ok := f.failOnce[on.Host]; ok {
		ferr = e
		delete(f.failOnce, on.Host)
	}
	f.gate = nil
	f.mu.Unlock()
	if m == nil {
		return 0, fmt.Errorf("no agent %s", on.Host)
	}
	acquire := func() (int64, error) {
		_, rev, err := m.ReadSpec(ctx, uuid)
		if err != nil {
			return 0, err
		}
		return m.AcquireOwnerOfSpec(ctx, uuid, rev)
	}
	var gen int64
	if first {
		var err error
		if gen, err = acquire(); err != nil {
			return 0, err
		}
	}
	if gate != nil {
		entered <- on
		<-gate
	}
	if ferr != nil {
		return 0, ferr
	}
	if first {
		return gen, nil
	}
	return acquire()
}

func (f *fakeAgents) stopsOf(uuid string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stops[uuid]...)
}

func (f *fakeAgents) callsOf(uuid string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls[uuid]...)
}

func (f *fakeAgents) startedOf(uuid string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.started[uuid]...)
}

// joinRun joins host with free memory and engines, and runs its Runner
// until the test ends.
func joinRun(t *testing.T, c *etcdtest.Cluster, f *fakeAgents, host string, free int64, engines ...string) (*pool.Member, *Runner) {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)).Named(host)
	m, err := pool.Join(ctx, settings(c), pool.Info{Host: host, Address: host + ":8899", FreeMemoryMiB: free, Engines: engines}, log)
	if err != nil {
		t.Fatalf("join %s: %v", host, err)
	}
	f.add(m)
	r := New(m, Options{Dispatch: f, Log: log, Resync: 200 * time.Millisecond, RetryAfter: 2 * time.Second, DispatchTimeout: 20 * time.Second})
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		cctx, cc := context.WithTimeout(context.Background(), 5*time.Second)
		defer cc()
		_ = m.Close(cctx)
	})
	return m, r
}

// waitFor polls cond every 50ms for at most bound.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(bound)
	last := ""
	for {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		if time.Now().After(end) {
			t.Fatalf("%s: not so after %s; last seen: %s", what, bound, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func masterOf(t *testing.T, rs ...*Runner) *Runner {
	t.Helper()
	var out *Runner
	waitFor(t, 20*time.Second, "a pool master", func() (bool, string) {
		for _, r := range rs {
			if r.IsMaster() {
				out = r
				return true, ""
			}
		}
		return false, "no runner is master"
	})
	return out
}

func domainView(t *testing.T, m *pool.Member, name string) (DomainView, bool) {
	t.Helper()
	ds, err := Domains(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		if d.Name == name {
			return d, true
		}
	}
	return DomainView{}, false
}

func waitDomain(t *testing.T, m *pool.Member, name, what string, bound time.Duration, ok func(DomainView) bool) DomainView {
	t.Helper()
	var v DomainView
	waitFor(t, bound, name+" "+what, func() (bool, string) {
		var found bool
		v, found = domainView(t, m, name)
		return found && ok(v), fmt.Sprintf("%+v", v)
	})
	return v
}

func vmcfgText(name string, mib int) string {
	return fmt.Sprintf("name = '%s'\nmemory = %d\n", name, mib)
}

// passesAfter waits until r has completed n more passes.
func passesAfter(t *testing.T, r *Runner, n int64) {
	t.Helper()
	want := r.passes.Load() + n
	waitFor(t, 20*time.Second, fmt.Sprintf("%d master passes", n), func() (bool, string) {
		return r.passes.Load() >= want, fmt.Sprintf("%d passes", r.passes.Load())
	})
}

// A member whose lease expires has its HA domain started elsewhere, only
// once the owner key is gone: a member key deleted while the owner key
// stays (bound to a lease still alive) starts nothing. Its non-HA domain
// becomes stopped, with the reason.
func TestHARestartOnlyAfterOwnerGone(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 4096, "kvm")
	_, rc := joinRun(t, c, f, "c", 2048, "kvm")
	mr := masterOf(t, ra, rc)

	// Host b: a lease of its own that this test keeps alive, then lets
	// expire (power loss: nobody renews it).
	g, err := cli.Grant(ctx, int64(testTTL/time.Second))
	if err != nil {
		t.Fatal(err)
	}
	bRec, _ := json.Marshal(pool.MemberRecord{Info: pool.Info{Host: "b", Address: "b:8899", FreeMemoryMiB: 8192, Engines: []string{"kvm"}}})
	if _, err := cli.Put(ctx, pool.MembersPrefix("test")+"b", string(bRec), clientv3.WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stopRenewing := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()

	// Two domains, created stopped; b then owns them (as if it had
	// started them) and they are wanted running.
	var uuids = map[string]string{}
	for _, d := range []struct {
		name string
		ha   bool
	}{{"ha1", true}, {"plain1", false}} {
		v, err := mr.Create(ctx, vmcfgText(d.name, 1024), CreateOptions{HA: d.ha})
		if err != nil {
			t.Fatal(err)
		}
		uuids[d.name] = v.UUID
		own, _ := json.Marshal(pool.OwnerRecord{Host: "b"})
		if _, err := cli.Put(ctx, pool.OwnerKey("test", v.UUID), string(own), clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := mr.SetDesired(ctx, d.name, DesiredRunning); err != nil {
			t.Fatal(err)
		}
	}
	for name := range uuids {
		waitDomain(t, ma, name, "running on b", 20*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.StatusHost == "b" && v.Host == "b" })
	}

	// b's member key goes, its owner keys stay: nothing moves.
	if _, err := cli.Delete(ctx, pool.MembersPrefix("test")+"b"); err != nil {
		t.Fatal(err)
	}
	passesAfter(t, mr, 5)
	for name := range uuids {
		v, _ := domainView(t, ma, name)
		if v.State != StateRunning || v.Host != "b" {
			t.Errorf("%s with b's owner key alive: %+v, want still running on b", name, v)
		}
		if calls := f.callsOf(v.UUID); len(f.startedOf(v.UUID)) > 0 || len(calls) > 0 {
			t.Fatalf("%s dispatched while b's owner key exists: %v", name, calls)
		}
	}

	// b stops renewing: its lease expires, and the owner keys with it.
	stopRenewing()
	ha := waitDomain(t, ma, "ha1", "restarted on a", 30*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "a" })
	if got := f.startedOf(uuids["ha1"]); len(got) != 1 || got[0] != "a" {
		t.Errorf("ha1 started on %v, want once on a (the most free memory)", got)
	}
	if ha.Generation == 0 {
		t.Errorf("ha1's generation not shown: %+v", ha)
	}
	plain := waitDomain(t, ma, "plain1", "stopped", 30*time.Second, func(v DomainView) bool { return v.State == StateStopped })
	if !strings.Contains(plain.Reason, "b left the pool") || plain.Desired != DesiredStopped {
		t.Errorf("plain1 after b's loss: %+v, want stopped, desired stopped, saying b left the pool", plain)
	}
	if len(f.startedOf(uuids["plain1"])) != 0 {
		t.Errorf("non-HA plain1 was started again: %v", f.startedOf(uuids["plain1"]))
	}
	// Started again by request, it is placed like any domain.
	if _, err := mr.SetDesired(ctx, "plain1", DesiredRunning); err != nil {
		t.Fatal(err)
	}
	waitDomain(t, ma, "plain1", "running again", 20*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host != "" && v.Host != "b" })
	f.mu.Lock()
	if f.ownedAtCall != 0 {
		t.Errorf("%d starts were asked while another host owned the domain", f.ownedAtCall)
	}
	f.mu.Unlock()
}

// With no member that has room an HA domain is pending with the reason;
// a member that joins with room gets it. A member where the start fails
// is left out and the reason recorded.
func TestNoCapacityThenJoin(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 256, "kvm")
	_, rb := joinRun(t, c, f, "b", 512, "kvm", "qemu")
	mr := masterOf(t, ra, rb)
	if _, err := mr.Create(ctx, vmcfgText("big", 1024), CreateOptions{HA: true, Start: true, Priority: 5}); err != nil {
		t.Fatal(err)
	}
	v := waitDomain(t, ma, "big", "pending with the reason", 20*time.Second, func(v DomainView) bool {
		return v.State == StatePending && strings.Contains(v.Reason, "no server with 1024 MiB free")
	})
	for _, s := range []string{"a: 256 MiB free", "b: 512 MiB free"} {
		if !strings.Contains(v.Reason, s) {
			t.Errorf("reason %q does not say %q", v.Reason, s)
		}
	}
	// A member with room joins, but its starts fail; then another.
	f.mu.Lock()
	f.fail["c"] = errors.New("the VMM would not start")
	f.mu.Unlock()
	joinRun(t, c, f, "c", 8192, "kvm")
	waitDomain(t, ma, "big", "pending, saying c's start failed", 20*time.Second, func(v DomainView) bool {
		return v.State == StatePending && strings.Contains(v.Reason, "c: the start there failed") && strings.Contains(v.Reason, "the VMM would not start")
	})
	joinRun(t, c, f, "d", 2048, "kvm")
	v = waitDomain(t, ma, "big", "running on d", 20*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "d" })
	if got := f.startedOf(v.UUID); len(got) != 1 {
		t.Errorf("started on %v, want once", got)
	}
	_ = rb
}

// The master killed in the middle of a placement (its lease revoked while
// a start is under way): a new master finishes the placement; the old
// start arriving late cannot take the owner key, and the old master's
// late write is refused.
func TestMasterKilledMidPlacement(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	gate := make(chan struct{})
	f.gate, f.entered = gate, make(chan pool.MemberRecord, 1)
	ma, ra := joinRun(t, c, f, "a", 1024, "kvm")
	masterOf(t, ra) // a is master before the others join
	mb, rb := joinRun(t, c, f, "b", 4096, "kvm")
	mc, rc := joinRun(t, c, f, "c", 2048, "kvm")
	if _, err := ra.Create(ctx, vmcfgText("d1", 512), CreateOptions{HA: true, Start: true}); err != nil {
		t.Fatal(err)
	}
	var to pool.MemberRecord
	select {
	case to = <-f.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no start dispatched within 30s")
	}
	if to.Host != "b" {
		t.Fatalf("first placement on %s, want b (the most free memory)", to.Host)
	}
	old := ra.current()
	if old == nil {
		t.Fatal("a is not master while its start is under way")
	}
	// b fills up meanwhile, so that the new master chooses c.
	if err := mb.SetInfo(ctx, pool.Info{Host: "b", Address: "b:8899", FreeMemoryMiB: 0, Engines: []string{"kvm"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, ma.Lease()); err != nil {
		t.Fatal(err)
	}
	nr := masterOf(t, rb, rc)
	waitDomain(t, mc, "d1", "running on c", 30*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "c" })

	// The old master's late status write is refused.
	uuid := ""
	if v, ok := domainView(t, mc, "d1"); ok {
		uuid = v.UUID
	}
	err := old.setStatus(ctx, uuid, nil, Status{State: StateRunning, Host: "b"})
	var de *pool.DeposedError
	if !errors.As(err, &de) {
		t.Fatalf("deposed master's write: %v, want a *pool.DeposedError", err)
	}
	// The old start arrives late at b: the owner key is c's.
	close(gate)
	waitFor(t, 20*time.Second, "the late start answered", func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.calls[uuid]) >= 2, fmt.Sprint(f.calls[uuid])
	})
	passesAfter(t, nr, 5)
	if got := f.startedOf(uuid); len(got) != 1 || got[0] != "c" {
		t.Errorf("d1 took its owner key on %v, want only on c", got)
	}
	if host, _, err := mc.Owner(ctx, uuid); err != nil || host != "c" {
		t.Errorf("owner of d1 = %q, %v; want c", host, err)
	}
	v, _ := domainView(t, mc, "d1")
	if v.State != StateRunning || v.StatusHost != "c" {
		t.Errorf("d1 status after the late start: %+v", v)
	}
}

// pool.create_domain's checks, stop and delete, and maintenance.
func TestLifecycleAndMaintenance(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 4096, "kvm")
	_, rb := joinRun(t, c, f, "b", 2048, "kvm")
	mr := masterOf(t, ra, rb)
	other := ra
	if mr == ra {
		other = rb
	}
	if _, err := other.Create(ctx, vmcfgText("x", 256), CreateOptions{}); KindOf(err) != NotMaster {
		t.Fatalf("create on a non-master: %v, want NotMaster", err)
	}
	if _, err := mr.Create(ctx, "name = 'bad'\nmemory = 'lots'\n", CreateOptions{}); KindOf(err) != Invalid {
		t.Fatalf("bad vm.cfg: %v, want Invalid", err)
	}
	if err := mr.SetMaintenance(ctx, "a", true); err != nil {
		t.Fatal(err)
	}
	v, err := mr.Create(ctx, vmcfgText("d1", 256), CreateOptions{Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mr.Create(ctx, vmcfgText("d1", 256), CreateOptions{}); KindOf(err) != Exists {
		t.Fatalf("second d1: %v, want Exists", err)
	}
	waitDomain(t, ma, "d1", "running on b (a in maintenance)", 20*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "b" })
	pi, err := Info(ctx, ma)
	if err != nil {
		t.Fatal(err)
	}
	if len(pi.Members) != 2 || pi.Members[0].State != "maintenance" || pi.Members[1].State != "active" || pi.Master == "" {
		t.Errorf("pool.info: %+v", pi)
	}
	if err := mr.Delete(ctx, "d1"); KindOf(err) != BadState {
		t.Fatalf("delete a running domain: %v, want BadState", err)
	}
	if _, err := mr.SetDesired(ctx, v.UUID, DesiredStopped); err != nil {
		t.Fatal(err)
	}
	waitDomain(t, ma, "d1", "stopped", 20*time.Second, func(v DomainView) bool { return v.State == StateStopped && v.Host == "" })
	if err := mr.Delete(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := domainView(t, ma, "d1"); ok {
		t.Fatal("d1 still listed after delete")
	}
	resp, _ := cli.Get(ctx, domainsPrefix("test"), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Errorf("%d keys left under domains/ after the delete", resp.Count)
	}
}

// A start dispatched to a member that then leaves the pool (hung: its
// call never answers, its lease ends) is given up, and the domain placed
// on another member, without waiting for the call's timeout.
func TestDispatchToLostMemberGivenUp(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	f.hang["b"] = true
	ma, ra := joinRun(t, c, f, "a", 1024, "kvm")
	masterOf(t, ra)
	mb, _ := joinRun(t, c, f, "b", 4096, "kvm")
	if _, err := ra.Create(ctx, vmcfgText("d1", 512), CreateOptions{HA: true, Start: true}); err != nil {
		t.Fatal(err)
	}
	waitDomain(t, ma, "d1", "being started on b", 20*time.Second, func(v DomainView) bool { return v.State == StatePending && v.StatusHost == "b" })
	if _, err := cli.Revoke(ctx, mb.Lease()); err != nil {
		t.Fatal(err)
	}
	// Well before the call's own timeout (20s).
	v := waitDomain(t, ma, "d1", "running on a", 10*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "a" })
	if got := f.startedOf(v.UUID); len(got) != 1 || got[0] != "a" {
		t.Errorf("d1 started on %v, want only a", got)
	}
}

// When room comes for one of two waiting domains, the one of higher
// priority gets it; the memory placed counts at once against what the
// member's record says, so the other is not sent there too.
func TestPriorityOrdersThePendingQueue(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 0, "kvm")
	mr := masterOf(t, ra)
	for _, d := range []struct {
		name string
		prio int
	}{{"low", 1}, {"high", 9}, {"mid", 5}} {
		if _, err := mr.Create(ctx, vmcfgText(d.name, 768), CreateOptions{HA: true, Start: true, Priority: d.prio}); err != nil {
			t.Fatal(err)
		}
		waitDomain(t, ma, d.name, "pending", 20*time.Second, func(v DomainView) bool {
			return v.State == StatePending && strings.Contains(v.Reason, "no server with 768 MiB free")
		})
	}
	joinRun(t, c, f, "b", 1024, "kvm")
	waitDomain(t, ma, "high", "running on b", 20*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "b" })
	passesAfter(t, mr, 5)
	for _, name := range []string{"low", "mid"} {
		v, _ := domainView(t, ma, name)
		if v.State != StatePending || !strings.Contains(v.Reason, "b: 256 MiB free") {
			t.Errorf("%s: %+v, want pending, b having 256 MiB left", name, v)
		}
		if calls := f.callsOf(v.UUID); len(calls) != 0 {
			t.Errorf("%s was sent to %v", name, calls)
		}
	}
}

// Adopt makes a domain running on a member a pool domain without any
// start: the owner key is that member's, the spec desired running with
// the HA asked; while the member adopts it, the master neither places nor
// stops it; an adopt that fails leaves nothing; SetHA turns HA off.
func TestAdopt(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 4096, "kvm")
	_, rb := joinRun(t, c, f, "b", 8192, "kvm")
	mr := masterOf(t, ra, rb)
	const u1, u2 = "0a0a0a0a-0000-4000-8000-000000000001", "0a0a0a0a-0000-4000-8000-000000000002"
	cfg := func(name, u string) string { return vmcfgText(name, 64) + "uuid = '" + u + "'\n" }

	if _, err := mr.Adopt(ctx, vmcfgText("nouuid", 64), CreateOptions{HA: true}, "a"); KindOf(err) != Invalid {
		t.Errorf("adopt without a uuid: %v", err)
	}
	if _, err := mr.Adopt(ctx, cfg("x", u1), CreateOptions{HA: true}, "nosuchhost"); KindOf(err) != BadState {
		t.Errorf("adopt on a host that is no member: %v", err)
	}

	// a's adopt is held while the master makes passes: nothing is placed
	// or stopped (b has the most free memory and would get a placement).
	gate, entered := make(chan struct{}), make(chan pool.MemberRecord, 1)
	f.mu.Lock()
	f.gate, f.entered, f.adoptKeyFirst = gate, entered, true
	f.mu.Unlock()
	type result struct {
		v   DomainView
		err error
	}
	res := make(chan result, 1)
	go func() {
		v, err := mr.Adopt(ctx, cfg("ha1", u1), CreateOptions{HA: true, Priority: 3}, "a")
		res <- result{v, err}
	}()
	<-entered
	// a has the owner key, the spec is marked: no pass stops it (its
	// desired state is not what the passes go by), nor places it; the
	// API's changes wait
	passesAfter(t, mr, 3)
	if calls, stops := f.callsOf(u1), f.stopsOf(u1); len(calls) != 0 || len(stops) != 0 {
		t.Errorf("while the domain was being adopted: starts asked %v, stops asked %v", calls, stops)
	}
	for name, change := range map[string]func() error{
		"SetDesired": func() error { _, err := mr.SetDesired(ctx, "ha1", DesiredStopped); return err },
		"SetHA":      func() error { _, err := mr.SetHA(ctx, "ha1", false); return err },
		"Delete":     func() error { return mr.Delete(ctx, "ha1") },
	} {
		if err := change(); KindOf(err) != BadState || !strings.Contains(err.Error(), "adopted") {
			t.Errorf("%s during the adopt: %v, want BadState", name, err)
		}
	}
	close(gate)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.v.Host != "a" || !r.v.HA || r.v.Desired != DesiredRunning || r.v.State != StateRunning {
		t.Errorf("adopted: %+v", r.v)
	}
	passesAfter(t, mr, 3)
	v := waitDomain(t, ma, "ha1", "running on a", 10*time.Second, func(v DomainView) bool { return v.State == StateRunning })
	if v.Host != "a" || v.Generation == 0 || len(f.callsOf(u1)) != 0 {
		t.Errorf("after the adopt: %+v, starts asked %v", v, f.callsOf(u1))
	}
	if _, err := mr.Adopt(ctx, cfg("ha1", u2), CreateOptions{}, "b"); KindOf(err) != Exists {
		t.Errorf("a second adopt of the name: %v", err)
	}

	// A failed adopt: no record stays, nothing is started anywhere.
	f.mu.Lock()
	f.fail["b"] = errors.New("refused by b")
	f.adoptKeyFirst = false
	f.mu.Unlock()
	if _, err := mr.Adopt(ctx, cfg("other", u2), CreateOptions{HA: true}, "b"); err == nil || !strings.Contains(err.Error(), "refused by b") {
		t.Errorf("a failed adopt: %v", err)
	}
	passesAfter(t, mr, 3)
	if _, found := domainView(t, ma, "other"); found || len(f.callsOf(u2)) != 0 {
		t.Errorf("after a failed adopt: in the pool %v, starts asked %v", found, f.callsOf(u2))
	}

	// HA off and on again.
	if v, err := mr.SetHA(ctx, "ha1", false); err != nil || v.HA {
		t.Errorf("SetHA false: %+v %v", v, err)
	}
	if v, _ := domainView(t, ma, "ha1"); v.HA || v.Host != "a" {
		t.Errorf("after SetHA false: %+v", v)
	}
	if _, err := mr.SetHA(ctx, "nosuch", true); KindOf(err) != NotFound {
		t.Errorf("SetHA of an unknown domain: %v", err)
	}
}

// A failed adopt whose member kept the owner key: the domain is made
// desired stopped and stopped there (never placed elsewhere while it may
// run there).
func TestAdoptFailedWithKey(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 4096, "kvm")
	_, rb := joinRun(t, c, f, "b", 8192, "kvm")
	mr := masterOf(t, ra, rb)
	const u = "0a0a0a0a-0000-4000-8000-000000000003"
	f.mu.Lock()
	f.adoptKeyFirst = true
	f.fail["a"] = &client.Fault{Code: 1003, Message: "lease not handed to the VMM"} // the member's own refusal
	f.mu.Unlock()
	if _, err := mr.Adopt(ctx, vmcfgText("kept", 64)+"uuid = '"+u+"'\n", CreateOptions{HA: true}, "a"); KindOf(err) != BadState || !strings.Contains(err.Error(), "stops it") {
		t.Errorf("adopt refused with the key taken: %v", err)
	}
	v := waitDomain(t, ma, "kept", "stopped", 10*time.Second, func(v DomainView) bool { return v.State == StateStopped })
	if v.Desired != DesiredStopped || len(f.stopsOf(u)) == 0 || len(f.callsOf(u)) != 0 {
		t.Errorf("after the failed adopt: %+v, stops %v, starts %v", v, f.stopsOf(u), f.callsOf(u))
	}
	// no answer (not the member's refusal), and none again: the mark
	// stays, nothing is stopped; once the member answers, a pass settles
	// it adopted
	const u3 = "0a0a0a0a-0000-4000-8000-000000000008"
	f.mu.Lock()
	f.fail["a"] = errors.New("connection reset")
	f.mu.Unlock()
	if _, err := mr.Adopt(ctx, vmcfgText("unsure", 64)+"uuid = '"+u3+"'\n", CreateOptions{HA: true}, "a"); KindOf(err) != Busy {
		t.Errorf("adopt with no answer: %v, want Busy", err)
	}
	if v, _ := domainView(t, ma, "unsure"); v.State != StatePending || len(f.stopsOf(u3)) != 0 {
		t.Errorf("an adopt with no answer: %+v, stops %v", v, f.stopsOf(u3))
	}
	f.mu.Lock()
	delete(f.fail, "a")
	f.mu.Unlock()
	v = waitDomain(t, ma, "unsure", "adopted by a later pass", 20*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Desired == DesiredRunning })
	if v.Host != "a" || len(f.stopsOf(u3)) != 0 || len(f.callsOf(u3)) != 0 {
		t.Errorf("settled: %+v, stops %v, starts %v", v, f.stopsOf(u3), f.callsOf(u3))
	}

	// an answer lost once: the member, holding the key, is asked again
	const u2 = "0a0a0a0a-0000-4000-8000-000000000007"
	f.mu.Lock()
	delete(f.fail, "a")
	f.failOnce = map[string]error{"a": errors.New("answer lost")}
	f.mu.Unlock()
	if v, err := mr.Adopt(ctx, vmcfgText("lost", 64)+"uuid = '"+u2+"'\n", CreateOptions{HA: true}, "a"); err != nil || v.Host != "a" {
		t.Errorf("adopt whose first answer was lost: %+v %v", v, err)
	}
	passesAfter(t, mr, 3)
	if v, _ := domainView(t, ma, "lost"); v.State != StateRunning || v.Desired != DesiredRunning || len(f.stopsOf(u2)) != 0 || len(f.adopts[u2]) != 2 {
		t.Errorf("after the retried adopt: %+v, stops %v, adopts %v", v, f.stopsOf(u2), f.adopts[u2])
	}
}

// A spec marked Adopting that no adopt of the master's is under way for
// (its master went away half way): with the member's owner key the
// member is asked again and the mark cleared; with no key past the adopt
// timeout the spec is removed; before it, it is kept.
func TestAdoptPendingSettled(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 2*time.Minute)
	f := newFake(t, cli)
	ma, ra := joinRun(t, c, f, "a", 4096, "kvm")
	mb, rb := joinRun(t, c, f, "b", 8192, "kvm")
	mr := masterOf(t, ra, rb)
	put := func(name, u string, since time.Time) {
		spec := Spec{Name: name, UUID: u, Config: vmcfgText(name, 64) + "uuid = '" + u + "'\n", HA: true, Desired: DesiredRunning,
			Adopting: &pool.AdoptMark{Host: "a", Since: since}}
		b, _ := json.Marshal(spec)
		if _, err := cli.Put(ctx, specKey("test", u), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	const owned, stale, fresh = "0a0a0a0a-0000-4000-8000-000000000004", "0a0a0a0a-0000-4000-8000-000000000005", "0a0a0a0a-0000-4000-8000-000000000006"
	// written as a master that went away would have left them; a took
	// the first one's key
	put("owned", owned, time.Now())
	if _, err := ma.AcquireOwner(ctx, owned); err != nil {
		t.Fatal(err)
	}
	put("stale", stale, time.Now().Add(-10*time.Minute))
	put("fresh", fresh, time.Now())
	// being adopted on a, but b took its key (an agent that started it
	// against the mark): stopped on b
	const foreign = "0a0a0a0a-0000-4000-8000-000000000009"
	put("foreign", foreign, time.Now())
	if _, err := mb.AcquireOwner(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	v := waitDomain(t, ma, "owned", "adopted", 10*time.Second, func(v DomainView) bool { return v.State == StateRunning && v.Host == "a" })
	if !v.HA || v.Desired != DesiredRunning || len(f.callsOf(owned)) != 0 || len(f.stopsOf(owned)) != 0 {
		t.Errorf("a marked domain with its owner key: %+v, starts %v, stops %v", v, f.callsOf(owned), f.stopsOf(owned))
	}
	waitFor(t, 10*time.Second, "the stale mark's spec removed", func() (bool, string) {
		_, found := domainView(t, ma, "stale")
		return !found, "still there"
	})
	passesAfter(t, mr, 3)
	if v, found := domainView(t, ma, "fresh"); !found || v.State != StatePending || len(f.callsOf(fresh)) != 0 {
		t.Errorf("a fresh mark without a key: %+v (found %v), starts %v", v, found, f.callsOf(fresh))
	}
	fv := waitDomain(t, ma, "foreign", "stopped on b", 10*time.Second, func(v DomainView) bool { return v.State == StateStopped })
	if fv.Desired != DesiredStopped || len(f.stopsOf(foreign)) == 0 || f.stopsOf(foreign)[0] != "b" || len(f.adopts[foreign]) != 0 {
		t.Errorf("a domain being adopted on a but owned by b: %+v, stops %v, adopts %v", fv, f.stopsOf(foreign), f.adopts[foreign])
	}
	if _, err := mr.SetDesired(ctx, "fresh", DesiredStopped); KindOf(err) != BadState {
		t.Errorf("SetDesired of a marked domain: %v", err)
	}
	spec, _, err := ma.ReadSpec(ctx, owned)
	if err != nil || spec.Adopting != nil {
		t.Errorf("the settled spec: %+v %v", spec, err)
	}
}
