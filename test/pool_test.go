package test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// poolView is the part of host.info's pool struct the tests read.
type poolView struct {
	Name       string   `xmlrpc:"name"`
	Member     string   `xmlrpc:"member"`
	State      string   `xmlrpc:"state"`
	Lease      string   `xmlrpc:"lease"`
	LeaseTTL   float64  `xmlrpc:"lease_ttl_seconds"`
	DeadlineIn float64  `xmlrpc:"lease_deadline_in_seconds"`
	Master     string   `xmlrpc:"master"`
	Error      string   `xmlrpc:"error"`
	Domains    []string `xmlrpc:"domains"`
}

func poolOf(t testing.TB, a *Agent) *poolView {
	t.Helper()
	var hi struct {
		Pool *poolView `xmlrpc:"pool"`
	}
	if err := a.Unix().Call(context.Background(), "host.info", &hi); err != nil {
		t.Fatal(err)
	}
	return hi.Pool
}

// waitPoolState polls host.info until the agent's pool state is want.
func waitPoolState(t testing.TB, a *Agent, want string) *poolView {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for {
		p := poolOf(t, a)
		if p != nil && p.State == want {
			return p
		}
		if time.Now().After(end) {
			t.Fatalf("pool state after 30s: %+v, want %s", p, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func poolLines(c *etcdtest.Cluster, host string) []string {
	return poolLinesTTL(c, host, "4s")
}

func poolLinesTTL(c *etcdtest.Cluster, host, ttl string) []string {
	return []string{
		"name = e2e",
		"host_name = " + host,
		"endpoints = " + strings.Join(c.Endpoints(), ", "),
		"lease_ttl = " + ttl,
		"fencing_margin = 1s",
		"dial_timeout = 2s",
		// A stopping agent migrating its domains away would make every
		// test's teardown a round of migrations; the drain's own tests
		// turn it on (poolLinesDrain).
		"drain_on_stop = no",
	}
}

// poolLinesDrain is poolLinesTTL with the stop's drain on, as by default.
func poolLinesDrain(c *etcdtest.Cluster, host, ttl string) []string {
	lines := poolLinesTTL(c, host, ttl)
	for i, l := range lines {
		if strings.HasPrefix(l, "drain_on_stop") {
			lines[i] = "drain_on_stop = yes"
		}
	}
	return append(lines, "drain_timeout = 2m")
}

// Two agents with [pool] join one pool in etcd and say so in host.info;
// one agent stopping leaves the pool at once (its lease revoked, not
// left to expire); an agent without [pool] shows no pool.
func TestPoolMembershipFollowsAgent(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(c, "agent-a")}})
	b := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(c, "agent-b")}})
	pa := waitPoolState(t, a, "member")
	pb := waitPoolState(t, b, "member")
	if pa.Name != "e2e" || pa.Member != "agent-a" || pa.LeaseTTL != 4 || pa.DeadlineIn <= 0 || pa.DeadlineIn > 4 || pa.Error != "" {
		t.Errorf("agent a's pool: %+v", pa)
	}
	if pb.Member != "agent-b" || pb.Lease == pa.Lease {
		t.Errorf("agent b's pool: %+v (a's lease %s)", pb, pa.Lease)
	}
	out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "host-info")
	if code != 0 || !strings.Contains(out, "pool:      e2e as agent-a, member since ") || !strings.Contains(out, "lease "+pa.Lease+" holds ") {
		t.Errorf("ovm host-info (exit %d) does not show the pool membership:\n%s", code, out)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/ovs/pools/e2e/members/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = fmt.Sprintf("%x", kv.Lease)
	}
	if got["/ovs/pools/e2e/members/agent-a"] != pa.Lease || got["/ovs/pools/e2e/members/agent-b"] != pb.Lease || len(got) != 2 {
		t.Fatalf("member keys %v; want agent-a under %s and agent-b under %s", got, pa.Lease, pb.Lease)
	}
	for _, kv := range resp.Kvs {
		if !strings.Contains(string(kv.Value), `"free_memory_mib"`) || !strings.Contains(string(kv.Value), `"engines":["`) {
			t.Errorf("member record %s = %s: no free memory or engines", kv.Key, kv.Value)
		}
	}

	if err := a.Stop(); err != nil {
		t.Fatalf("agent a's stop: %v", err)
	}
	lease, err := strconv.ParseInt(pa.Lease, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	if ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(lease)); err != nil || ttl.TTL != -1 {
		t.Errorf("agent a's lease after its stop: %+v, %v; want revoked", ttl, err)
	}
	resp, err = cli.Get(ctx, "/ovs/pools/e2e/members/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != "/ovs/pools/e2e/members/agent-b" {
		t.Errorf("member keys after a's stop: %v, %v; want only agent-b", resp.Kvs, err)
	}
	if p := waitPoolState(t, b, "member"); p.Lease != pb.Lease {
		t.Errorf("agent b's lease changed: %+v", p)
	}

	single := startAgent(t, agentConf{})
	if p := poolOf(t, single); p != nil {
		t.Errorf("agent without [pool] shows a pool: %+v", p)
	}
}

// An agent whose etcd is down serves its API and says it is joining, with
// the reason; it becomes a member when etcd answers.
func TestPoolJoinsWhenEtcdComesBack(t *testing.T) {
	c := etcdtest.Start(t, 1)
	c.Members[0].Kill()
	a := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(c, "agent-a")}})
	end := time.Now().Add(30 * time.Second)
	for {
		p := poolOf(t, a)
		if p == nil || p.State != "joining" {
			t.Fatalf("pool with etcd down: %+v, want joining", p)
		}
		if p.Error != "" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no join error after 30s: %+v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.Members[0].Restart()
	waitPoolState(t, a, "member")
}

// An agent whose lease is revoked behind its back says so (lost, with the
// reason) and joins again under a new lease.
func TestPoolRejoinsAfterLosingLease(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(c, "agent-a")}})
	p := waitPoolState(t, a, "member")
	lease, err := strconv.ParseInt(p.Lease, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Revoke(ctx, clientv3.LeaseID(lease)); err != nil {
		t.Fatal(err)
	}
	a.WaitLog("pool lease lost")
	if !strings.Contains(a.Log(), "pool lease revoked or expired in etcd") {
		t.Errorf("the log does not say why the lease was lost:\n%s", a.Log())
	}
	end := time.Now().Add(30 * time.Second)
	for {
		np := waitPoolState(t, a, "member")
		if np.Lease != p.Lease {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("still on the revoked lease %s after 30s", p.Lease)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An agent killed (-9) and started again within its lease's TTL takes
// its lease up again: the same lease, its member key still bound to it.
func TestPoolAgentKilledAndBack(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLinesTTL(c, "agent-a", "10s")}})
	old := waitPoolState(t, a, "member")
	a.Signal(syscall.SIGKILL)
	a.start()
	a.waitReady()
	p := waitPoolState(t, a, "member")
	if p.Lease != old.Lease {
		t.Fatalf("restarted agent's lease %s, want its previous one %s taken up", p.Lease, old.Lease)
	}
	a.WaitLog("took up the previous run's pool lease")
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/ovs/pools/e2e/members/agent-a")
	if err != nil || len(resp.Kvs) != 1 || fmt.Sprintf("%x", resp.Kvs[0].Lease) != old.Lease {
		t.Errorf("member key after the restart: %v, %v", resp, err)
	}
	// A graceful stop then revokes it, and the next start joins anew.
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.waitReady()
	if p := waitPoolState(t, a, "member"); p.Lease == old.Lease {
		t.Errorf("after a graceful stop the agent took up the revoked lease %s", old.Lease)
	}
}

// A second agent giving a member name a live agent holds waits, saying
// why, and joins once the first has left.
func TestPoolMemberNameTaken(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(c, "agent-a")}})
	first := waitPoolState(t, a, "member")
	b := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(c, "agent-a")}})
	end := time.Now().Add(30 * time.Second)
	for {
		p := poolOf(t, b)
		if p == nil || p.State == "member" {
			t.Fatalf("second agent with a taken name: %+v", p)
		}
		if strings.Contains(p.Error, "is already a member under lease "+first.Lease) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("second agent does not say the name is taken after 30s: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if p := waitPoolState(t, b, "member"); p.Lease == first.Lease {
		t.Errorf("second agent under the first's lease %s", first.Lease)
	}
}
