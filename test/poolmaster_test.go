package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
	"github.com/ovs-agent/ovs-agent/internal/testguest/records"
)

// The pool master end to end (issue 15, layer 2): three agents on
// 127.0.0.2-4 (HTTPS, each with its own self-signed certificate, which
// the master pins from the member record), sim guests, real etcd.

// poolDomView is one pool.domains entry.
type poolDomView struct {
	Name       string `xmlrpc:"name"`
	UUID       string `xmlrpc:"uuid"`
	Host       string `xmlrpc:"host"`
	Desired    string `xmlrpc:"desired"`
	HA         bool   `xmlrpc:"ha"`
	State      string `xmlrpc:"state"`
	Reason     string `xmlrpc:"reason"`
	Generation int64  `xmlrpc:"generation"`
}

func poolDomainsOf(t testing.TB, a *Agent) []poolDomView {
	t.Helper()
	var ds []poolDomView
	a.call(t, "pool.domains", &ds)
	return ds
}

// waitPoolDomain polls pool.domains on a (bounded) until name's entry
// satisfies ok.
func waitPoolDomain(t testing.TB, a *Agent, name, what string, bound time.Duration, ok func(poolDomView) bool) poolDomView {
	t.Helper()
	end := time.Now().Add(bound)
	var last poolDomView
	for {
		for _, d := range poolDomainsOf(t, a) {
			if d.Name == name {
				last = d
				if ok(d) {
					return d
				}
			}
		}
		if time.Now().After(end) {
			t.Fatalf("%s: %s not seen within %s; last: %+v", name, what, bound, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An HA domain created through a member that is not the master (ovm pool
// create, forwarded to the master) runs on one of the agents; that agent
// and its VMMs killed -9, it runs on another agent within TTL + margin +
// boot, at a higher generation, and pool.domains says so.
//
// Auto placement puts it on the member with the most free memory (they
// are alike here: the first name, agent-a, the first to join and so the
// master: the master's loss and the guest's at once); Manual placement
// on agent-b and agent-c keeps it off the master and moves it only
// between those two.
func TestPoolHAPowerLoss(t *testing.T) {
	t.Run("auto", func(t *testing.T) { haPowerLoss(t, nil) })
	t.Run("preferred", func(t *testing.T) { haPowerLoss(t, []string{"agent-b", "agent-c"}) })
}

func haPowerLoss(t *testing.T, preferred []string) {
	c := etcdtest.Start(t, 3)
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agents := map[string]*Agent{}
	for i, host := range []string{"agent-a", "agent-b", "agent-c"} {
		agents[host] = startAgent(t, agentConf{Listen: "127.0.0." + string(rune('2'+i)), SSL: true, Extra: map[string][]string{
			"agent":      {"hypervisor = sim", "memory_reserve = 0"},
			"relocation": {"peer_password_file = " + pwFile},
			"pool":       poolLinesTTL(c, host, "4s"),
		}})
	}
	master := ""
	for _, a := range agents {
		p := waitPoolState(t, a, "member")
		if p.Master != "" {
			master = p.Master
		}
	}
	end := time.Now().Add(20 * time.Second)
	for master == "" && time.Now().Before(end) {
		time.Sleep(100 * time.Millisecond)
		master = poolOf(t, agents["agent-a"]).Master
	}
	if master == "" {
		t.Fatal("no pool master after 20s")
	}
	var via *Agent
	for host, a := range agents {
		if host != master {
			via = a
			break
		}
	}
	var pi struct {
		Master  string `xmlrpc:"master"`
		Members []struct {
			Host    string   `xmlrpc:"host"`
			Address string   `xmlrpc:"address"`
			State   string   `xmlrpc:"state"`
			Engines []string `xmlrpc:"engines"`
			Free    int64    `xmlrpc:"free_memory_mib"`
		} `xmlrpc:"members"`
	}
	// Each member's record gets its API address once the API serves.
	end = time.Now().Add(20 * time.Second)
	for {
		pi.Members = nil
		via.call(t, "pool.info", &pi)
		all := len(pi.Members) == 3
		for _, m := range pi.Members {
			all = all && m.Address != ""
		}
		if all {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("pool.info on a member after 20s: %+v, want 3 members with their addresses", pi)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pi.Master != master {
		t.Fatalf("pool.info on a member: %+v, want master %s", pi, master)
	}
	for _, m := range pi.Members {
		if m.State != "active" || len(m.Engines) == 0 || m.Free <= 0 {
			t.Errorf("pool.info member %+v", m)
		}
	}

	cfg := filepath.Join(t.TempDir(), "ha1.cfg")
	if err := os.WriteFile(cfg, []byte(vmcfgText("ha1", 64, "dirty=2M/s,hot=8M,verify=200ms")), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--url=unix://" + via.Socket, "pool", "create", "--ha", "--priority", "5", cfg}
	if preferred != nil {
		args = append(args, "--preferred", strings.Join(preferred, ","))
	}
	out, code := runCmd(t, "", nil, bin("ovm"), args...)
	if code != 0 {
		t.Fatalf("ovm pool create through a non-master member (exit %d):\n%s", code, out)
	}
	first := waitPoolDomain(t, via, "ha1", "running", 60*time.Second, func(d poolDomView) bool { return d.State == "running" && d.Host != "" })
	if !first.HA || first.Desired != "running" || first.Generation == 0 {
		t.Errorf("ha1 in pool.domains: %+v", first)
	}
	owner := agents[first.Host]
	if preferred != nil && !slices.Contains(preferred, first.Host) {
		t.Fatalf("ha1 runs on %s, not on a preferred server %v", first.Host, preferred)
	}
	if owner == nil {
		t.Fatalf("ha1 runs on %q, not one of the agents", first.Host)
	}
	if in := owner.poolDom(t, "ha1"); in.State != "running" || in.Generation != first.Generation {
		t.Fatalf("ha1 on %s: %+v, want running at generation %d", first.Host, in, first.Generation)
	}
	// A second create of the same name is refused by the master.
	if f := via.fault(t, "pool.create_domain", vmcfgText("ha1", 64, "dirty=2M/s,hot=8M")); f.Code != 1004 {
		t.Errorf("second ha1: fault %+v, want Exists (1004)", f)
	}

	// Power loss of the server ha1 runs on: its agent and its VMMs.
	owner.Signal(syscall.SIGKILL)
	<-owner.done
	killVMMs(owner.Dir)
	lost := time.Now()
	var survivor *Agent
	for host, a := range agents {
		if host != first.Host {
			survivor = a
			break
		}
	}
	if first.Host == master {
		t.Logf("the guest's server was the pool master too")
	}
	// TTL 4s, margin 1s, a sim guest's boot: well within a minute.
	moved := waitPoolDomain(t, survivor, "ha1", "running on another agent", 60*time.Second, func(d poolDomView) bool {
		return d.State == "running" && d.Host != "" && d.Host != first.Host
	})
	t.Logf("ha1 ran on %s; %s after its power loss it runs on %s", first.Host, time.Since(lost).Round(100*time.Millisecond), moved.Host)
	if preferred != nil && !slices.Contains(preferred, moved.Host) {
		t.Errorf("ha1 restarted on %s, not on a preferred server %v", moved.Host, preferred)
	}
	if moved.Generation <= first.Generation {
		t.Errorf("generation %d on %s after %d on %s: it must grow", moved.Generation, moved.Host, first.Generation, first.Host)
	}
	if in := agents[moved.Host].poolDom(t, "ha1"); in.State != "running" || in.Generation != moved.Generation {
		t.Errorf("ha1 on %s: %+v, want running at generation %d", moved.Host, in, moved.Generation)
	}
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+survivor.Socket, "pool", "domains")
	if code != 0 || !strings.Contains(out, "ha1") || !strings.Contains(out, moved.Host) {
		t.Errorf("ovm pool domains (exit %d) does not show ha1 on %s:\n%s", code, moved.Host, out)
	}
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+survivor.Socket, "pool", "info")
	if code != 0 || strings.Contains(out, first.Host+" ") || !strings.Contains(out, moved.Host) {
		t.Errorf("ovm pool info (exit %d) after %s's loss:\n%s", code, first.Host, out)
	}

	// Stopped through the pool (ovm, on whichever member): its owner
	// stops it and releases the key; then it can be removed.
	if out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+survivor.Socket, "pool", "stop", "ha1"); code != 0 {
		t.Fatalf("ovm pool stop ha1 (exit %d):\n%s", code, out)
	}
	waitPoolDomain(t, survivor, "ha1", "stopped", 60*time.Second, func(d poolDomView) bool { return d.State == "stopped" && d.Host == "" })
	if in := agents[moved.Host].poolDom(t, "ha1"); in.State != "stopped" {
		t.Errorf("ha1 on %s after ovm pool stop: %+v", moved.Host, in)
	}
	if out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+survivor.Socket, "pool", "delete", moved.UUID); code != 0 || !strings.Contains(out, "removed from the pool") {
		t.Fatalf("ovm pool delete (exit %d):\n%s", code, out)
	}
	if ds := poolDomainsOf(t, survivor); len(ds) != 0 {
		t.Errorf("pool.domains after the delete: %+v", ds)
	}
}

// poolAgent is an agent of pool e2e on the sim engine at 127.0.0.ip,
// keeping reserve MiB of the host's memory from domains, with the peer
// password the pool's agents call each other with.
func poolAgent(t testing.TB, c *etcdtest.Cluster, ip, host string, reserve int64, pwFile string) *Agent {
	t.Helper()
	return startAgent(t, agentConf{Listen: "127.0.0." + ip, SSL: true, Extra: map[string][]string{
		"agent":      {"hypervisor = sim", fmt.Sprintf("memory_reserve = %d", reserve)},
		"relocation": {"peer_password_file = " + pwFile},
		"pool":       poolLinesTTL(c, host, "4s"),
	}})
}

// With no member that has room, an HA domain waits, pending with the
// reason; a member that joins with room starts it. A member in
// maintenance gets nothing. An agent in no pool answers the pool calls
// with Unsupported.
func TestPoolNoRoomThenJoin(t *testing.T) {
	c := etcdtest.Start(t, 3)
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The whole host's memory kept from domains: no room.
	full := int64(1 << 30)
	a := poolAgent(t, c, "5", "agent-a", full, pwFile)
	b := poolAgent(t, c, "6", "agent-b", full, pwFile)
	waitPoolState(t, a, "member")
	waitPoolState(t, b, "member")
	text := vmcfgText("ha2", 64, "dirty=2M/s,hot=8M,verify=200ms")
	var created poolDomView
	end := time.Now().Add(30 * time.Second)
	for {
		// Until a master is elected and every record has its address,
		// the call is refused with Busy (1006), saying why.
		err := b.Unix().Call(context.Background(), "pool.create_domain", &created, text, map[string]any{"ha": true})
		if err == nil {
			break
		}
		if f, ok := err.(*client.Fault); !ok || f.Code != 1006 || time.Now().After(end) {
			t.Fatalf("pool.create_domain: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	pending := waitPoolDomain(t, a, "ha2", "pending for want of room", 30*time.Second, func(d poolDomView) bool {
		return d.State == "pending" && strings.Contains(d.Reason, "no server with 64 MiB free")
	})
	if !strings.Contains(pending.Reason, "agent-a: 0 MiB free") || !strings.Contains(pending.Reason, "agent-b: 0 MiB free") {
		t.Errorf("reason %q does not say what each member has", pending.Reason)
	}
	// A member with room joins, in maintenance at first.
	cAgent := poolAgent(t, c, "7", "agent-c", 0, pwFile)
	waitPoolState(t, cAgent, "member")
	a.call(t, "pool.maintenance", nil, "agent-c", true)
	waitPoolDomain(t, a, "ha2", "pending, agent-c in maintenance", 30*time.Second, func(d poolDomView) bool {
		return d.State == "pending" && strings.Contains(d.Reason, "agent-c: in maintenance")
	})
	out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+b.Socket, "pool", "maintenance", "agent-c", "off")
	if code != 0 {
		t.Fatalf("ovm pool maintenance agent-c off (exit %d):\n%s", code, out)
	}
	started := waitPoolDomain(t, a, "ha2", "running on agent-c", 60*time.Second, func(d poolDomView) bool {
		return d.State == "running" && d.Host == "agent-c"
	})
	if in := cAgent.poolDom(t, "ha2"); in.State != "running" || in.Generation != started.Generation {
		t.Errorf("ha2 on agent-c: %+v, want running at generation %d", in, started.Generation)
	}

	// A call another member forwarded is not forwarded again: a member
	// that is not the master refuses it (no loop while the mastership
	// changes hands).
	master := poolOf(t, a).Master
	notMaster := a
	if master == "agent-a" {
		notMaster = b
	}
	fc, err := client.New(client.Options{URL: notMaster.URL(), User: "admin", Password: testPassword, Insecure: true, Timeout: 10 * time.Second,
		Header: http.Header{"X-Ovs-Pool-Forwarded": []string{"agent-x"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = fc.Call(context.Background(), "pool.start_domain", nil, "ha2")
	if f, ok := err.(*client.Fault); !ok || f.Code != 1006 || !strings.Contains(f.Message, "agent-x forwarded this call") {
		t.Errorf("a forwarded call on a member that is not the master: %v, want Busy saying agent-x forwarded it", err)
	}

	lone := startAgent(t, agentConf{Listen: "127.0.0.8"})
	if f := lone.fault(t, "pool.info"); f.Code != 1007 || !strings.Contains(f.Message, "no server pool") {
		t.Errorf("pool.info on an agent in no pool: %+v", f)
	}
}

// waitRecords polls the records disk (bounded) until ok holds of its
// summary; a violation fails the test at once.
func waitRecords(t *testing.T, disk, what string, bound time.Duration, ok func(records.Summary) bool) records.Summary {
	t.Helper()
	end := time.Now().Add(bound)
	for {
		s, err := records.Verify(disk)
		if err != nil {
			t.Fatalf("records on %s: %v\n%v", disk, err, s)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(end) {
			t.Fatalf("records: %s not seen within %s: %v", what, bound, s)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The pool master's HA restart of an operating system guest (the test
// guest under QEMU) that writes (domain, host, generation, sequence)
// records to its disk on shared storage: its server powered off (agent,
// VMM and QEMU killed -9), the master starts it on the other member; the
// records show one writer after the other, the generation grown, never
// two at once.
func TestPoolHARecordsNeverTwoWriters(t *testing.T) {
	timed(t)
	c := etcdtest.Start(t, 3)
	pwFile := filepath.Join(t.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := t.TempDir() // the "shared repository": every agent sees it
	disk := filepath.Join(shared, "records.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, 16<<20); err != nil {
		t.Fatal(err)
	}
	agents := map[string]*Agent{}
	for i, host := range []string{"agent-a", "agent-b"} {
		agents[host] = startAgent(t, agentConf{Listen: fmt.Sprintf("127.0.0.%d", 9+i), SSL: true,
			FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
			Extra: map[string][]string{
				"agent":      {"memory_reserve = 0"},
				"qemu":       {"accel = " + testGuestAccel(t)},
				"relocation": {"peer_password_file = " + pwFile},
				"pool":       poolLinesTTL(c, host, "4s"),
			}})
	}
	for _, a := range agents {
		waitPoolState(t, a, "member")
	}
	g := guestVM{Name: "rec", MemcheckMiB: -1, Cmdline: []string{"testguest_records=/dev/vda"},
		Lines: []string{"disk = ['file:" + disk + ",xvda,w!']"}}
	var first poolDomView
	end := time.Now().Add(30 * time.Second)
	for {
		err := agents["agent-b"].Unix().Call(context.Background(), "pool.create_domain", &first, g.cfg(t), map[string]any{"ha": true})
		if err == nil {
			break
		}
		if f, ok := err.(*client.Fault); !ok || f.Code != 1006 || time.Now().After(end) {
			t.Fatalf("pool.create_domain: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	run1 := waitPoolDomain(t, agents["agent-b"], "rec", "running", 2*time.Minute, func(d poolDomView) bool { return d.State == "running" && d.Host != "" })
	waitRecords(t, disk, "records of the first run", qemuBoot+30*time.Second, func(s records.Summary) bool {
		return len(s.Runs) == 1 && s.Runs[0].Generation == run1.Generation && s.Runs[0].Records >= 5
	})

	owner := agents[run1.Host]
	owner.Signal(syscall.SIGKILL)
	<-owner.done
	killVMMs(owner.Dir) // QEMU dies with its VMM (PDEATHSIG)
	var other *Agent
	for h, a := range agents {
		if h != run1.Host {
			other = a
		}
	}
	run2 := waitPoolDomain(t, other, "rec", "running on the other agent", 2*time.Minute, func(d poolDomView) bool {
		return d.State == "running" && d.Host != "" && d.Host != run1.Host
	})
	s := waitRecords(t, disk, "records of the second run", qemuBoot+30*time.Second, func(s records.Summary) bool {
		return len(s.Runs) == 2 && s.Runs[1].Generation == run2.Generation && s.Runs[1].Records >= 5
	})
	other.call(t, "pool.stop_domain", nil, "rec")
	waitPoolDomain(t, other, "rec", "stopped", 2*time.Minute, func(d poolDomView) bool { return d.State == "stopped" })
	s, err := records.Verify(disk)
	t.Logf("records: %v", s)
	if err != nil {
		t.Fatalf("records after the HA restart: %v", err)
	}
	if gens := s.Generations(); !slices.Equal(gens, []int64{run1.Generation, run2.Generation}) || run2.Generation <= run1.Generation {
		t.Errorf("generations on disk %v, want %d then %d (growing)", gens, run1.Generation, run2.Generation)
	}
	// Each writer names the pool member that ran it ([pool] host_name),
	// not the system's host name, the same for every agent here.
	if s.Runs[0].Host != run1.Host || s.Runs[1].Host != run2.Host {
		t.Errorf("records' hosts %q then %q, want the members %s then %s", s.Runs[0].Host, s.Runs[1].Host, run1.Host, run2.Host)
	}
	if s.Runs[0].Boot == s.Runs[1].Boot {
		t.Errorf("both runs have boot %s: not two boots", s.Runs[0].Boot)
	}
}
