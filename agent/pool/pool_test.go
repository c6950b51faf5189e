package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// settings for a member of pool "test" on cluster c.
func settings(c *etcdtest.Cluster, ttl time.Duration) Settings {
	return Settings{
		Pool:          "test",
		LeaseTTL:      ttl,
		FencingMargin: ttl / 3,
		Client:        clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second},
	}
}

func joinT(t *testing.T, s Settings, host string) *Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := Join(ctx, s, Info{Host: host, Address: host + ":8899", FreeMemoryMiB: 4096, Engines: []string{"kvm", "qemu"}}, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	if err != nil {
		t.Fatalf("Join %s: %v", host, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	return m
}

// outside is a plain client, for looking at and changing etcd behind the
// members' backs.
func outside(t *testing.T, c *etcdtest.Cluster) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitLost waits, at most bound, for m's lease to be lost.
func waitLost(t *testing.T, m *Member, bound time.Duration) {
	t.Helper()
	select {
	case <-m.Lost():
	case <-time.After(bound):
		t.Fatalf("%s: lease not lost %s after it should have been (deadline %s ago, err %v)", m.Host(), bound, time.Since(m.Deadline()), m.Err())
	}
}

// renewals counts OnRenew calls.
type renewals struct {
	n    atomic.Int64
	last atomic.Pointer[time.Time]
}

func (r *renewals) hook(s *Settings) {
	s.OnRenew = func(d time.Time) { r.n.Add(1); r.last.Store(&d) }
}

// wait waits, at most bound, until n more renewals are seen.
func (r *renewals) wait(t *testing.T, n int64, bound time.Duration) {
	t.Helper()
	r.until(t, r.n.Load()+n, bound)
}

// until waits, at most bound, until the count is at least want.
func (r *renewals) until(t *testing.T, want int64, bound time.Duration) {
	t.Helper()
	end := time.Now().Add(bound)
	for r.n.Load() < want {
		if time.Now().After(end) {
			t.Fatalf("%d renewals after %s, want %d", r.n.Load(), bound, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJoinRegistersRenewsAndLeaves(t *testing.T) {
	c := etcdtest.Start(t, 3)
	cli := outside(t, c)
	ctx := ctxFor(t, 60*time.Second)
	s := settings(c, 3*time.Second)
	var r renewals
	r.hook(&s)
	before := time.Now()
	m := joinT(t, s, "host-a")
	// The deadline is never later than what etcd itself holds: a grant or
	// renewal sent after "before" cannot outlive before + TTL... and the
	// first deadline comes from the grant.
	if d := m.Deadline(); d.Before(before) || d.After(time.Now().Add(3*time.Second)) {
		t.Fatalf("deadline %s after join is outside (join start, now+TTL]", time.Until(d))
	}
	if got, want := m.RunUntil(), m.Deadline().Add(-s.FencingMargin); !got.Equal(want) {
		t.Errorf("RunUntil = %s, want the deadline less the fencing margin (%s)", got, want)
	}

	ms, err := m.Members(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Members = %+v, %v", ms, err)
	}
	if got := ms[0]; got.Host != "host-a" || got.FreeMemoryMiB != 4096 || got.Lease != fmt.Sprintf("%x", int64(m.Lease())) {
		t.Errorf("member record %+v", got)
	}
	resp, err := cli.Get(ctx, "/ovs/pools/test/members/host-a")
	if err != nil || len(resp.Kvs) != 1 || clientv3.LeaseID(resp.Kvs[0].Lease) != m.Lease() {
		t.Fatalf("member key %v, %v: want it bound to lease %x", resp, err, int64(m.Lease()))
	}

	// Renewals move the deadline on, and the lease outlives several TTLs.
	first := m.Deadline()
	r.wait(t, 7, 20*time.Second) // 7 renewals, 7 * TTL/3 > 2 TTL
	if m.Err() != nil {
		t.Fatalf("lease lost while renewing: %v", m.Err())
	}
	if !m.Deadline().After(first.Add(3 * time.Second)) {
		t.Errorf("deadline moved from %s to %s over 7 renewals", first, m.Deadline())
	}
	// Own deadline no later than etcd's: the server's remaining TTL
	// (whole seconds, rounded down) plus a second covers it.
	sent := time.Now()
	ttl, err := cli.TimeToLive(ctx, m.Lease())
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("TimeToLive = %+v, %v", ttl, err)
	}
	if left := time.Until(m.Deadline()); left > time.Duration(ttl.TTL+1)*time.Second+time.Since(sent) {
		t.Errorf("own deadline in %s, but etcd has the lease for %ds only", left, ttl.TTL)
	}

	// A change of what the host offers is registered; the same again
	// writes nothing.
	info := Info{Host: "host-a", Address: "host-a:8899", FreeMemoryMiB: 1024, Engines: []string{"qemu"}}
	if err := m.SetInfo(ctx, info); err != nil {
		t.Fatal(err)
	}
	resp, _ = cli.Get(ctx, "/ovs/pools/test/members/host-a")
	rev := resp.Kvs[0].ModRevision
	if ms, _ := m.Members(ctx); len(ms) != 1 || ms[0].FreeMemoryMiB != 1024 || len(ms[0].Engines) != 1 {
		t.Errorf("after SetInfo: %+v", ms)
	}
	if err := m.SetInfo(ctx, info); err != nil {
		t.Fatal(err)
	}
	if resp, _ = cli.Get(ctx, "/ovs/pools/test/members/host-a"); resp.Kvs[0].ModRevision != rev {
		t.Errorf("an unchanged SetInfo wrote the key again")
	}
	if err := m.SetInfo(ctx, Info{Host: "host-b"}); err == nil {
		t.Error("SetInfo changed the host name")
	}

	// A second agent with the same host name is refused while the first
	// holds the key.
	_, err = Join(ctx, s, Info{Host: "host-a"}, zap.NewNop())
	var me *MemberExistsError
	if !errors.As(err, &me) || me.Lease != m.Lease() {
		t.Fatalf("second Join of host-a: %v, want a *MemberExistsError naming lease %x", err, int64(m.Lease()))
	}

	// Leaving revokes the lease: the key is gone at once, not after a TTL.
	lease := m.Lease()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(m.Err(), ErrClosed) {
		t.Errorf("Err after Close = %v", m.Err())
	}
	resp, err = cli.Get(ctx, "/ovs/pools/test/members/host-a")
	if err != nil || len(resp.Kvs) != 0 {
		t.Errorf("member key after Close: %v, %v", resp.Kvs, err)
	}
	if ttl, err := cli.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Errorf("lease after Close: %+v, %v; want revoked (TTL -1)", ttl, err)
	}
}

// A member cut off from etcd (every member SIGSTOPped, as a partition or
// a hung cluster looks to it) loses its lease by its own reckoning at its
// deadline, not before; a campaign waiting then is abandoned.
func TestCutOffMemberLosesLeaseAtItsDeadline(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ttl := 3 * time.Second
	s := settings(c, ttl)
	var r renewals
	r.hook(&s)
	a := joinT(t, settings(c, ttl), "host-a")
	b := joinT(t, s, "host-b")
	ctx := ctxFor(t, 60*time.Second)
	if _, err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	campaign := make(chan error, 1)
	go func() { _, err := b.Campaign(ctx); campaign <- err }()
	r.wait(t, 2, 10*time.Second)

	for _, em := range c.Members {
		em.Stop()
	}
	t.Cleanup(func() {
		for _, em := range c.Members {
			em.Continue()
		}
	})
	last := b.Deadline()
	waitLost(t, b, ttl+10*time.Second)
	lostAt := time.Now()
	if !errors.Is(b.Err(), ErrLeaseExpired) {
		t.Errorf("Err = %v, want ErrLeaseExpired", b.Err())
	}
	if lostAt.Before(b.Deadline()) {
		t.Errorf("lease reported lost %s before its deadline", b.Deadline().Sub(lostAt))
	}
	if b.Deadline().After(last.Add(ttl)) {
		t.Errorf("deadline moved on while etcd was stopped")
	}
	select {
	case err := <-campaign:
		if !errors.Is(err, ErrLeaseExpired) {
			t.Errorf("campaign ended with %v, want it abandoned with ErrLeaseExpired", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("campaign not abandoned 10s after the lease was lost")
	}
	// What needs the lease refuses at once.
	if _, err := b.AcquireOwner(ctx, "d1"); !errors.Is(err, ErrLeaseExpired) {
		t.Errorf("AcquireOwner after loss: %v", err)
	}
	if _, err := b.Campaign(ctx); !errors.Is(err, ErrLeaseExpired) {
		t.Errorf("Campaign after loss: %v", err)
	}
}

// etcd revoking the lease (an operator, or the server expiring it) is
// seen at the next renewal.
func TestRevokedLeaseIsLost(t *testing.T) {
	c := etcdtest.Start(t, 1)
	m := joinT(t, settings(c, 3*time.Second), "host-a")
	cli := outside(t, c)
	ctx := ctxFor(t, 30*time.Second)
	if _, err := cli.Revoke(ctx, m.Lease()); err != nil {
		t.Fatal(err)
	}
	waitLost(t, m, 10*time.Second)
	if !errors.Is(m.Err(), ErrLeaseRevoked) {
		t.Errorf("Err = %v, want ErrLeaseRevoked", m.Err())
	}
}

// A master whose lease ends is deposed: another member wins, and the old
// master's late writes are refused by etcd.
func TestDeposedMasterWriteRefused(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a := joinT(t, settings(c, 5*time.Second), "host-a")
	b := joinT(t, settings(c, 5*time.Second), "host-b")
	cli := outside(t, c)
	ctx := ctxFor(t, 60*time.Second)

	if _, err := a.Master(ctx); !errors.Is(err, ErrNoMaster) {
		t.Errorf("Master before any campaign: %v, want ErrNoMaster", err)
	}
	ma, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan *Master, 1)
	go func() {
		mb, err := b.Campaign(ctx)
		if err != nil {
			t.Errorf("b's campaign: %v", err)
		}
		won <- mb
	}()
	if _, err := ma.Write(ctx, clientv3.OpPut("/ovs/pools/test/placement", "by-a")); err != nil {
		t.Fatalf("master's write: %v", err)
	}
	// Conditions of the caller's are applied in the same transaction.
	const placement = "/ovs/pools/test/placement"
	resp, err := cli.Get(ctx, placement)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	rev := resp.Kvs[0].ModRevision
	if _, err := ma.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(placement), "=", rev-1)}, clientv3.OpPut(placement, "stale")); !errors.Is(err, ErrConditionFailed) {
		t.Errorf("WriteIf on a stale revision: %v, want ErrConditionFailed", err)
	}
	if _, err := ma.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(placement), "=", rev)}, clientv3.OpPut(placement, "by-a")); err != nil {
		t.Errorf("WriteIf on the current revision: %v", err)
	}
	if resp, _ := cli.Get(ctx, placement); string(resp.Kvs[0].Value) != "by-a" || resp.Kvs[0].ModRevision == rev {
		t.Errorf("placement after WriteIf: %s at %d", resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
	}
	for _, m := range []*Member{a, b} {
		if mi, err := m.Master(ctx); err != nil || mi.Host != "host-a" || mi.Revision != ma.Revision() {
			t.Errorf("%s sees master %+v, %v; want host-a at %d", m.Host(), mi, err, ma.Revision())
		}
	}
	select {
	case <-won:
		t.Fatal("b won while a is master")
	case <-time.After(time.Second):
	}

	// a's lease ends (revoked behind its back, as an expiry would).
	if _, err := cli.Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	var mb *Master
	select {
	case mb = <-won:
	case <-time.After(20 * time.Second):
		t.Fatal("b did not win within 20s of a's lease ending")
	}
	if mb == nil {
		t.FailNow()
	}
	_, err = ma.Write(ctx, clientv3.OpPut("/ovs/pools/test/placement", "late-by-a"))
	var de *DeposedError
	if !errors.As(err, &de) || !errors.Is(err, ErrDeposed) || de.Host != "host-a" || de.Revision != ma.Revision() {
		t.Fatalf("deposed master's write: %v, want a *DeposedError for host-a", err)
	}
	if _, err := ma.WriteIf(ctx, nil, clientv3.OpPut(placement, "late-by-a")); !errors.Is(err, ErrDeposed) {
		t.Fatalf("deposed master's WriteIf: %v, want ErrDeposed", err)
	}
	select {
	case <-ma.Deposed():
	case <-time.After(10 * time.Second):
		t.Error("a's Deposed not closed")
	}
	if _, err := mb.Write(ctx, clientv3.OpPut("/ovs/pools/test/placement", "by-b")); err != nil {
		t.Fatalf("new master's write: %v", err)
	}
	resp, err = cli.Get(ctx, placement)
	if err != nil || string(resp.Kvs[0].Value) != "by-b" {
		t.Errorf("placement = %v, %v; want by-b (a's late write refused)", resp, err)
	}
	if mi, err := b.Master(ctx); err != nil || mi.Host != "host-b" || mi.Revision != mb.Revision() {
		t.Errorf("master after failover: %+v, %v", mi, err)
	}
	if mb.Revision() <= ma.Revision() {
		t.Errorf("new election revision %d not above the old %d", mb.Revision(), ma.Revision())
	}
}

// Killing etcd's raft leader: the members keep their leases (the client
// goes on with the other endpoints), the master keeps writing, and the
// election goes on when it resigns.
func TestRaftLeaderKilledKeepsLeaseAndElection(t *testing.T) {
	c := etcdtest.Start(t, 3)
	sa, sb := settings(c, 5*time.Second), settings(c, 5*time.Second)
	var ra, rb renewals
	ra.hook(&sa)
	rb.hook(&sb)
	a := joinT(t, sa, "host-a")
	b := joinT(t, sb, "host-b")
	ctx := ctxFor(t, 90*time.Second)
	ma, err := a.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan *Master, 1)
	go func() {
		mb, err := b.Campaign(ctx)
		if err != nil {
			t.Errorf("b's campaign: %v", err)
		}
		won <- mb
	}()

	leader, err := c.Leader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	na, nb := ra.n.Load(), rb.n.Load()
	leader.Kill()
	if nl, err := c.Leader(20 * time.Second); err != nil || nl == leader {
		t.Fatalf("no new raft leader: %v, %v", nl, err)
	}
	// Renewals go on past two TTLs after the kill.
	ra.until(t, na+7, 30*time.Second)
	rb.until(t, nb+7, 30*time.Second)
	if a.Err() != nil || b.Err() != nil {
		t.Fatalf("lease lost with one etcd member of three killed: %v, %v", a.Err(), b.Err())
	}
	if _, err := ma.Write(ctx, clientv3.OpPut("/ovs/pools/test/k", "v")); err != nil {
		t.Fatalf("master's write after the raft leader died: %v", err)
	}
	select {
	case <-ma.Deposed():
		t.Fatal("master deposed by the raft leader's death")
	default:
	}

	if err := ma.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case mb := <-won:
		if mb == nil {
			t.FailNow()
		}
		if _, err := mb.Write(ctx, clientv3.OpPut("/ovs/pools/test/k", "b")); err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("b did not win within 20s of a's resignation")
	}
	leader.Restart()
}

// Two members racing for one domain, round after round: exactly one wins
// each time, and the generation only grows.
func TestAcquireOwnerRace(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a := joinT(t, settings(c, 5*time.Second), "host-a")
	b := joinT(t, settings(c, 5*time.Second), "host-b")
	ctx := ctxFor(t, 60*time.Second)
	const domain = "0004fb00-0006-0000-1234-56789abcdef0"
	var prev int64
	for round := 0; round < 20; round++ {
		var wg sync.WaitGroup
		gens, errs := make([]int64, 2), make([]error, 2)
		start := make(chan struct{})
		for i, m := range []*Member{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				gens[i], errs[i] = m.AcquireOwner(ctx, domain)
			}()
		}
		close(start)
		wg.Wait()
		var winner, loser *Member
		var gen int64
		switch {
		case errs[0] == nil && errs[1] != nil:
			winner, loser, gen = a, b, gens[0]
		case errs[1] == nil && errs[0] != nil:
			winner, loser, gen = b, a, gens[1]
		default:
			t.Fatalf("round %d: a: %d, %v; b: %d, %v; want exactly one owner", round, gens[0], errs[0], gens[1], errs[1])
		}
		loserErr := errs[0]
		if loser == b {
			loserErr = errs[1]
		}
		var oe *OwnedError
		if !errors.As(loserErr, &oe) || !errors.Is(loserErr, ErrOwned) || oe.Host != winner.Host() || oe.Generation != gen {
			t.Fatalf("round %d: loser's error %v, want an *OwnedError naming %s at %d", round, loserErr, winner.Host(), gen)
		}
		if gen <= prev {
			t.Fatalf("round %d: generation %d, previous %d: generations must grow", round, gen, prev)
		}
		prev = gen
		if host, g, err := loser.Owner(ctx, domain); err != nil || host != winner.Host() || g != gen {
			t.Fatalf("round %d: Owner = %s, %d, %v; want %s, %d", round, host, g, err, winner.Host(), gen)
		}
		// Acquiring again is idempotent for the owner.
		if g, err := winner.AcquireOwner(ctx, domain); err != nil || g != gen {
			t.Fatalf("round %d: owner's second AcquireOwner = %d, %v", round, g, err)
		}
		// The loser cannot release it.
		if err := loser.ReleaseOwner(ctx, domain); !errors.Is(err, ErrOwned) {
			t.Fatalf("round %d: loser's ReleaseOwner = %v", round, err)
		}
		if err := winner.ReleaseOwner(ctx, domain); err != nil {
			t.Fatal(err)
		}
		if host, g, err := a.Owner(ctx, domain); err != nil || host != "" || g != 0 {
			t.Fatalf("round %d: owner after release: %s, %d, %v", round, host, g, err)
		}
	}

	// Released by one, acquired by the other: a higher generation.
	g1, err := a.AcquireOwner(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ReleaseOwner(ctx, domain); err != nil {
		t.Fatal(err)
	}
	g2, err := b.AcquireOwner(ctx, domain)
	if err != nil || g2 <= g1 {
		t.Fatalf("b's AcquireOwner after a's release: %d, %v; want above %d", g2, err, g1)
	}
	if err := b.ReleaseOwner(ctx, domain); err != nil {
		t.Fatal(err)
	}
}

// An owner whose lease ends loses its domains with it: the key goes, and
// another member acquires at a higher generation.
func TestOwnershipEndsWithLease(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := joinT(t, settings(c, 3*time.Second), "host-a")
	b := joinT(t, settings(c, 3*time.Second), "host-b")
	cli := outside(t, c)
	ctx := ctxFor(t, 30*time.Second)
	const domain = "d-1"
	g1, err := a.AcquireOwner(ctx, domain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireOwner(ctx, domain); !errors.Is(err, ErrOwned) {
		t.Fatalf("b's AcquireOwner while a owns: %v", err)
	}
	if _, err := cli.Revoke(ctx, a.Lease()); err != nil {
		t.Fatal(err)
	}
	g2, err := b.AcquireOwner(ctx, domain)
	if err != nil || g2 <= g1 {
		t.Fatalf("b's AcquireOwner after a's lease ended: %d, %v; want above %d", g2, err, g1)
	}
	if host, g, err := b.Owner(ctx, domain); err != nil || host != "host-b" || g != g2 {
		t.Errorf("Owner = %s, %d, %v", host, g, err)
	}
	if err := b.ReleaseOwner(ctx, "bad/name"); err == nil {
		t.Error("a domain name with a slash was taken as a key segment")
	}
}

// A member started again with its previous run's lease (Settings.Resume)
// takes it up with what is bound to it: its member key and its domains,
// at their generations. A lease that is gone gives a new one.
func TestJoinResumesPreviousLease(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := outside(t, c)
	ctx := ctxFor(t, 30*time.Second)
	s := settings(c, 3*time.Second)

	// The previous run: its lease (granted with another TTL than this
	// run's), member key and one owned domain.
	prev := joinT(t, settings(c, 6*time.Second), "host-a")
	gen, err := prev.AcquireOwner(ctx, "d-1")
	if err != nil {
		t.Fatal(err)
	}
	// It dies without revoking: its loop stops, the lease lives on in etcd.
	prev.cancel()
	<-prev.loopDone

	s.Resume = prev.Lease()
	before := time.Now()
	m := joinT(t, s, "host-a")
	if !m.Resumed() || m.Lease() != prev.Lease() {
		t.Fatalf("Join with Resume = %x: lease %x, resumed %v", int64(prev.Lease()), int64(m.Lease()), m.Resumed())
	}
	// The deadline comes from the renewal just sent, with the lease's own
	// TTL (6s), not this run's setting.
	if d := m.Deadline(); d.Before(before.Add(6*time.Second)) || d.After(time.Now().Add(6*time.Second)) {
		t.Errorf("resumed deadline in %s, want about 6s", time.Until(d))
	}
	if g, err := m.AcquireOwner(ctx, "d-1"); err != nil || g != gen {
		t.Errorf("resumed member's AcquireOwner(d-1) = %d, %v; want its generation %d", g, err, gen)
	}
	if ms, err := m.Members(ctx); err != nil || len(ms) != 1 || ms[0].Lease != fmt.Sprintf("%x", int64(prev.Lease())) {
		t.Errorf("members after resuming: %+v, %v", ms, err)
	}
	// It renews the resumed lease.
	first := m.Deadline()
	for end := time.Now().Add(15 * time.Second); !m.Deadline().After(first); {
		if time.Now().After(end) || m.Err() != nil {
			t.Fatalf("resumed lease not renewed: deadline %s, err %v", time.Until(m.Deadline()), m.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Another host's lease holding the name: refused, and the resumed
	// lease is not revoked by the refusal.
	other, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/ovs/pools/test/members/host-b", "{}", clientv3.WithLease(other.ID)); err != nil {
		t.Fatal(err)
	}
	lone, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	sb := settings(c, 3*time.Second)
	sb.Resume = lone.ID
	_, err = Join(ctx, sb, Info{Host: "host-b"}, zap.NewNop())
	var me *MemberExistsError
	if !errors.As(err, &me) || me.Lease != other.ID {
		t.Fatalf("Join of host-b resuming %x: %v, want a *MemberExistsError naming %x", int64(lone.ID), err, int64(other.ID))
	}
	if ttl, err := cli.TimeToLive(ctx, lone.ID); err != nil || ttl.TTL <= 0 {
		t.Errorf("the resumed lease after a refused Join: %+v, %v; want it alive", ttl, err)
	}

	// A lease that is gone: a new one.
	if _, err := cli.Revoke(ctx, lone.ID); err != nil {
		t.Fatal(err)
	}
	sc := settings(c, 3*time.Second)
	sc.Resume = lone.ID
	n := joinT(t, sc, "host-c")
	if n.Resumed() || n.Lease() == lone.ID {
		t.Errorf("Join resuming a revoked lease: lease %x, resumed %v; want a new lease", int64(n.Lease()), n.Resumed())
	}
}

// A hand-over moves the owner key to the target's lease at a higher
// generation, only from the generation given and only to a member under
// the lease it names; KeepOwner after it finds it done, and before it
// makes a late hand-over of the old generation fail.
func TestHandOverAndKeepOwner(t *testing.T) {
	c := etcdtest.Start(t, 1)
	s := settings(c, 6*time.Second)
	a, b := joinT(t, s, "a"), joinT(t, s, "b")
	ctx := ctxFor(t, 30*time.Second)
	const dom = "0004fb00-0006-0000-0000-00000000f00d"
	g1, err := a.AcquireOwner(ctx, dom)
	if err != nil {
		t.Fatal(err)
	}
	// b does not expect it yet: refused.
	if _, err := a.HandOver(ctx, dom, g1, "b", b.Lease()); !errors.Is(err, ErrNotHandedOver) || !strings.Contains(err.Error(), "does not expect it") {
		t.Fatalf("hand-over to a b that expects nothing: %v, want ErrNotHandedOver", err)
	}
	// Expected, then the incoming ended there: refused again.
	if err := b.ExpectIncoming(ctx, dom); err != nil {
		t.Fatal(err)
	}
	if err := b.EndIncoming(ctx, dom); err != nil {
		t.Fatal(err)
	}
	if _, err := a.HandOver(ctx, dom, g1, "b", b.Lease()); !errors.Is(err, ErrNotHandedOver) {
		t.Fatalf("hand-over after b's incoming ended: %v, want ErrNotHandedOver", err)
	}
	if err := b.ExpectIncoming(ctx, dom); err != nil {
		t.Fatal(err)
	}
	// A wrong lease for b, a stale generation: refused, nothing moved.
	if _, err := a.HandOver(ctx, dom, g1, "b", a.Lease()); !errors.Is(err, ErrNotHandedOver) {
		t.Fatalf("hand-over to b under a's lease: %v, want ErrNotHandedOver", err)
	}
	if _, err := a.HandOver(ctx, dom, g1-1, "b", b.Lease()); !errors.Is(err, ErrNotHandedOver) {
		t.Fatalf("hand-over at a stale generation: %v, want ErrNotHandedOver", err)
	}
	if host, gen, _ := a.Owner(ctx, dom); host != "a" || gen != g1 {
		t.Fatalf("after refused hand-overs the owner is %s at %d, want a at %d", host, gen, g1)
	}
	// KeepOwner moves a's own generation on: a hand-over guarded by the
	// old one fails afterwards.
	kept, g2, err := a.KeepOwner(ctx, dom, g1, b.Lease())
	if err != nil || !kept || g2 <= g1 {
		t.Fatalf("KeepOwner: kept %v gen %d err %v, want kept at a generation above %d", kept, g2, err, g1)
	}
	if _, err := a.HandOver(ctx, dom, g1, "b", b.Lease()); !errors.Is(err, ErrNotHandedOver) {
		t.Fatalf("hand-over at the generation KeepOwner replaced: %v, want ErrNotHandedOver", err)
	}
	g3, err := a.HandOver(ctx, dom, g2, "b", b.Lease())
	if err != nil || g3 <= g2 {
		t.Fatalf("hand-over: gen %d err %v, want a generation above %d", g3, err, g2)
	}
	if host, gen, _ := b.Owner(ctx, dom); host != "b" || gen != g3 {
		t.Fatalf("after the hand-over the owner is %s at %d, want b at %d", host, gen, g3)
	}
	if owned, _ := b.OwnedDomains(ctx); owned[dom] != g3 {
		t.Fatalf("b owns %v, want %s at %d", owned, dom, g3)
	}
	if owned, _ := a.OwnedDomains(ctx); len(owned) != 0 {
		t.Fatalf("a still owns %v", owned)
	}
	// The incoming record went with the hand-over; an incoming that
	// ended on b (EndIncoming) makes a later hand-over fail.
	if resp, _ := outside(t, c).Get(ctx, incomingKey("test", dom)); len(resp.Kvs) != 0 {
		t.Fatalf("incoming record left after the hand-over: %v", resp.Kvs)
	}
	// Done already: the same hand-over answers the generation; KeepOwner
	// says it happened; a's AcquireOwner is refused.
	if g, err := a.HandOver(ctx, dom, g2, "b", b.Lease()); err != nil || g != g3 {
		t.Fatalf("repeated hand-over: gen %d err %v, want %d", g, err, g3)
	}
	if kept, g, err := a.KeepOwner(ctx, dom, g2, b.Lease()); err != nil || kept || g != g3 {
		t.Fatalf("KeepOwner after the hand-over: kept %v gen %d err %v, want not kept at %d", kept, g, err, g3)
	}
	if _, err := a.AcquireOwner(ctx, dom); !errors.Is(err, ErrOwned) {
		t.Fatalf("a acquires b's domain: %v, want ErrOwned", err)
	}
	// The key goes with b's lease.
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if host, _, _ := a.Owner(ctx, dom); host != "" {
		t.Fatalf("after b left the owner is %q", host)
	}
}

// AcquireOwnerOfSpec takes the owner key only while the spec is the one
// read: a spec deleted or rewritten meanwhile refuses it.
func TestAcquireOwnerOfSpec(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := joinT(t, settings(c, 6*time.Second), "a")
	cli := outside(t, c)
	ctx := ctxFor(t, 30*time.Second)
	const dom = "0004fb00-0006-0000-0000-00000000beef"
	put, err := cli.Put(ctx, SpecKey("test", dom), `{"name":"x"}`)
	if err != nil {
		t.Fatal(err)
	}
	rev := put.Header.Revision
	if _, err := cli.Put(ctx, SpecKey("test", dom), `{"name":"x2"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AcquireOwnerOfSpec(ctx, dom, rev); !errors.Is(err, ErrSpecChanged) {
		t.Fatalf("acquire with a rewritten spec: %v, want ErrSpecChanged", err)
	}
	resp, err := cli.Get(ctx, SpecKey("test", dom))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := a.AcquireOwnerOfSpec(ctx, dom, resp.Kvs[0].ModRevision)
	if err != nil || gen <= resp.Kvs[0].ModRevision {
		t.Fatalf("acquire with the current spec: gen %d err %v", gen, err)
	}
	if err := a.ReleaseOwner(ctx, dom); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, SpecKey("test", dom)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AcquireOwnerOfSpec(ctx, dom, resp.Kvs[0].ModRevision); !errors.Is(err, ErrSpecChanged) {
		t.Fatalf("acquire with the spec deleted: %v, want ErrSpecChanged", err)
	}
	if host, _, _ := a.Owner(ctx, dom); host != "" {
		t.Fatalf("owner %q after the refused acquires", host)
	}
}
