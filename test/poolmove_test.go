package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
	"github.com/ovs-agent/ovs-agent/internal/testguest/records"
)

// poolPair is two pool agents (HTTPS, relocation on) on 127.0.0.13 and
// .14 sharing one repository, and the path of a records disk on it.
func poolPair(t *testing.T, c *etcdtest.Cluster, ttl string, lines func(*etcdtest.Cluster, string, string) []string) (map[string]*Agent, string) {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agents := map[string]*Agent{}
	for i, host := range []string{"agent-a", "agent-b"} {
		listen := fmt.Sprintf("127.0.0.%d", 13+i)
		agents[host] = startAgent(t, agentConf{Listen: listen, SSL: true, RelocPort: freePort(t, listen),
			FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
			Extra: map[string][]string{
				"agent":      {"memory_reserve = 0"},
				"qemu":       {"accel = " + testGuestAccel(t)},
				"relocation": {"peer_password_file = " + pwFile},
				"pool":       lines(c, host, ttl),
			}})
	}
	repo, repoSrc, mp := makeRepo(t, agents["agent-a"])
	shareRepo(t, agents["agent-b"], repo, repoSrc)
	for _, a := range agents {
		waitPoolState(t, a, "member")
	}
	disk := filepath.Join(mp, "records.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	return agents, disk
}

// createPoolRecords creates the HA records guest "rec" through agent via
// the pool (the master may not be elected yet: asked again) and waits
// for it to run and write five records.
func createPoolRecords(t *testing.T, via *Agent, disk string) poolDomView {
	t.Helper()
	g := guestVM{Name: "rec", MemcheckMiB: -1, Cmdline: []string{"testguest_records=/dev/vda"},
		Lines: []string{"disk = ['file:" + disk + ",xvda,w!']"}}
	var first poolDomView
	end := time.Now().Add(30 * time.Second)
	for {
		err := via.Unix().Call(context.Background(), "pool.create_domain", &first, g.cfg(t), map[string]any{"ha": true})
		if err == nil {
			break
		}
		if f, ok := err.(*client.Fault); !ok || f.Code != 1006 || time.Now().After(end) {
			t.Fatalf("pool.create_domain: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	run := waitPoolDomain(t, via, "rec", "running", 2*time.Minute, func(d poolDomView) bool { return d.State == "running" && d.Host != "" })
	waitRecords(t, disk, "records of the first run", qemuBoot+30*time.Second, func(s records.Summary) bool {
		return len(s.Runs) == 1 && s.Runs[0].Generation == run.Generation && s.Runs[0].Records >= 5
	})
	return run
}

// A running HA pool domain migrates live between two members: its
// ownership goes with it (the owner key bound to the target's lease at a
// higher generation, which the target's VMM gets), the pool says it runs
// on the target, and the guest's records show one writer throughout. A
// migration to an agent outside the pool is refused and changes nothing.
func TestPoolLiveMigrationHandsOwnership(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 1)
	agents, disk := poolPair(t, c, "4s", poolLinesTTL)
	run1 := createPoolRecords(t, agents["agent-a"], disk)
	src := agents[run1.Host]
	var dstName string
	for h := range agents {
		if h != run1.Host {
			dstName = h
		}
	}
	dst := agents[dstName]

	// Outside the pool: refused by the target, the guest runs on.
	outside := startAgent(t, agentConf{Listen: "127.0.0.15", RelocPort: freePort(t, "127.0.0.15"),
		FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
		Extra:    map[string][]string{"agent": {"memory_reserve = 0"}, "qemu": {"accel = " + testGuestAccel(t)}}})
	var id string
	src.call(t, "domain.migrate", &id, "rec", outside.Reloc, migrateOpts(map[string]any{"live": true}))
	st := waitQEMUMigration(t, src, id, nil)
	if st.Phase != "failed" || !strings.Contains(st.Error, "pool") {
		t.Fatalf("migration of a pool domain to an agent in no pool: %+v, want failed naming the pool", st)
	}
	if in := src.poolDom(t, "rec"); in.State != "running" || in.Generation != run1.Generation {
		t.Fatalf("after the refused migration the source has %+v, want running at generation %d", in, run1.Generation)
	}

	// Into the pool: the ownership moves.
	before, err := records.Verify(disk)
	if err != nil {
		t.Fatal(err)
	}
	src.call(t, "domain.migrate", &id, "rec", dst.Reloc, migrateOpts(map[string]any{"live": true}))
	if st := waitQEMUMigration(t, src, id, nil); st.Phase != "completed" {
		t.Fatalf("live migration of the pool domain: %+v", st)
	}
	run2 := waitPoolDomain(t, dst, "rec", "running on the target", 30*time.Second, func(d poolDomView) bool {
		return d.State == "running" && d.Host == dstName
	})
	if run2.Generation <= run1.Generation {
		t.Fatalf("generation after the migration %d, want above %d", run2.Generation, run1.Generation)
	}
	in := dst.waitPoolDomInfo(t, "rec", "the new generation on the target", func(d poolDom) bool { return d.Generation == run2.Generation })
	if in.State != "running" || in.RunUntil <= 0 {
		t.Fatalf("target's domain after the migration: %+v, want running under a lease", in)
	}
	var list []domInfo
	src.call(t, "domain.list", &list)
	for _, d := range list {
		if d.Name == "rec" {
			t.Fatalf("the source still lists rec after the migration: %+v", d)
		}
	}
	s := waitRecords(t, disk, "records after the migration", time.Minute, func(s records.Summary) bool {
		return len(s.Runs) == 1 && s.Runs[0].Records >= before.Runs[0].Records+5
	})
	t.Logf("records: %v", s)

	// The pool knows where it runs: it stops there.
	src.call(t, "pool.stop_domain", nil, "rec")
	waitPoolDomain(t, src, "rec", "stopped", 2*time.Minute, func(d poolDomView) bool { return d.State == "stopped" })
	if s, err := records.Verify(disk); err != nil || len(s.Runs) != 1 {
		t.Fatalf("records after the stop: %v (%v), want one writer", err, s)
	}
}

// waitPoolDomInfo polls domain.info of a pool domain until ok.
func (a *Agent) waitPoolDomInfo(t *testing.T, name, what string, ok func(poolDom) bool) poolDom {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for {
		in := a.poolDom(t, name)
		if ok(in) {
			return in
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %s not seen within 30s: %+v", name, what, in)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// poolMembers is pool.info's member names, read through a.
func poolMembers(t *testing.T, a *Agent) []string {
	t.Helper()
	var pi struct {
		Members []struct {
			Host string `xmlrpc:"host"`
		} `xmlrpc:"members"`
	}
	a.call(t, "pool.info", &pi)
	var out []string
	for _, m := range pi.Members {
		out = append(out, m.Host)
	}
	return out
}

// A member put in maintenance has its running HA domain migrated live to
// the other member (its ownership with it); an agent that stops
// (SIGTERM, drain_on_stop) migrates it away first and then leaves the
// pool at once, its lease revoked rather than left to expire: the guest
// never stopped, one writer on disk throughout, each move at a higher
// generation. Then the guest powers itself off: the pool restarts it.
func TestPoolDrainMigratesAway(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 1)
	agents, disk := poolPair(t, c, "4s", poolLinesDrain)
	run1 := createPoolRecords(t, agents["agent-a"], disk)
	first := run1.Host
	var other string
	for h := range agents {
		if h != first {
			other = h
		}
	}

	// Maintenance: moved to the other member.
	agents[other].call(t, "pool.maintenance", nil, first, true)
	run2 := waitPoolDomain(t, agents[other], "rec", "migrated away from the member in maintenance", 2*time.Minute, func(d poolDomView) bool {
		return d.State == "running" && d.Host == other
	})
	if run2.Generation <= run1.Generation {
		t.Fatalf("generation after the maintenance move %d, want above %d", run2.Generation, run1.Generation)
	}
	agents[first].WaitLog("pool domain migrated")
	agents[other].call(t, "pool.maintenance", nil, first, false)
	s := waitRecords(t, disk, "records after the maintenance move", time.Minute, func(s records.Summary) bool {
		return len(s.Runs) == 1 && s.Runs[0].Records >= 10
	})

	// The agent stopping: moved back, and its member gone with it.
	if err := agents[other].Stop(); err != nil {
		t.Fatalf("stop the agent running the domain: %v", err)
	}
	if !strings.Contains(agents[other].Log(), "every pool domain migrated away; leaving the pool") {
		t.Fatalf("the stopping agent did not say it migrated everything away; its log:\n%s", lastLines(agents[other].Log(), 40))
	}
	if ms := poolMembers(t, agents[first]); len(ms) != 1 || ms[0] != first {
		t.Fatalf("members right after the drained agent stopped: %v, want only %s (its lease revoked, not left to expire)", ms, first)
	}
	run3 := waitPoolDomain(t, agents[first], "rec", "running where the drain moved it", 30*time.Second, func(d poolDomView) bool {
		return d.State == "running" && d.Host == first
	})
	if run3.Generation <= run2.Generation {
		t.Fatalf("generation after the stop's move %d, want above %d", run3.Generation, run2.Generation)
	}
	s = waitRecords(t, disk, "records after the stop's move", time.Minute, func(r records.Summary) bool {
		return len(r.Runs) == 1 && r.Runs[0].Records >= s.Runs[0].Records+5
	})
	t.Logf("records: %v", s)

	// The guest powers itself off: its owner key is given up and the pool
	// restarts the HA domain (as Oracle VM's HA does), at a higher
	// generation, a second writer after the first.
	agents[first].call(t, "domain.console_input", nil, "rec", "poweroff\n")
	run4 := waitPoolDomain(t, agents[first], "rec", "restarted after the guest's own poweroff", 2*time.Minute, func(d poolDomView) bool {
		return d.State == "running" && d.Generation > run3.Generation
	})
	waitRecords(t, disk, "records of the restart", qemuBoot+30*time.Second, func(r records.Summary) bool {
		return len(r.Runs) == 2 && r.Runs[1].Generation == run4.Generation && r.Runs[1].Records >= 3
	})
	agents[first].call(t, "pool.stop_domain", nil, "rec")
	waitPoolDomain(t, agents[first], "rec", "stopped", 2*time.Minute, func(d poolDomView) bool { return d.State == "stopped" })
	if s, err := records.Verify(disk); err != nil || len(s.Runs) != 2 {
		t.Fatalf("records at the end: %v (%v), want the first writer then the restart's", err, s)
	}
}

// lastLines is the last n lines of text.
func lastLines(text string, n int) string {
	ls := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
