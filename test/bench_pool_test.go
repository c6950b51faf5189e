package test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// The pool's figures (issue 15, point 7), in make bench: a pool of three
// agents (sim guests, lease_ttl 4s, fencing_margin 1s) on a real
// three-member etcd. Reported, not asserted:
//   - idle-etcd-bytes/s: the etcd traffic of the idle pool (every
//     member's client gRPC bytes in and out, from etcd's own /metrics,
//     over 10 s);
//   - failover-s: an HA guest's server killed (agent and VMMs, -9) to the
//     guest's first console output on its new server, and failover/TTL;
//   - master-failover-s: the master's agent killed -9 to another member
//     named master.

const benchPoolTTL = 4 * time.Second

// etcdClientBytes sums etcd_network_client_grpc_{received,sent}_bytes_total
// over the cluster's members.
func etcdClientBytes(b *testing.B, c *etcdtest.Cluster) float64 {
	b.Helper()
	var sum float64
	for _, m := range c.Members {
		resp, err := http.Get(m.ClientURL() + "/metrics")
		if err != nil {
			b.Fatalf("etcd metrics of %s: %v", m.Name, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "etcd_network_client_grpc_received_bytes_total") || strings.HasPrefix(l, "etcd_network_client_grpc_sent_bytes_total") {
				f := strings.Fields(l)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err == nil {
					sum += v
				}
			}
		}
		resp.Body.Close()
	}
	return sum
}

// benchPool starts the pool and waits for its master and for every
// member's address in pool.info.
func benchPool(b *testing.B) (*etcdtest.Cluster, map[string]*Agent, string) {
	c := etcdtest.Start(b, 3)
	pwFile := filepath.Join(b.TempDir(), "peer-pw")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	agents := map[string]*Agent{}
	for i, host := range []string{"agent-a", "agent-b", "agent-c"} {
		agents[host] = poolAgent(b, c, strconv.Itoa(2+i), host, 0, pwFile)
	}
	master := ""
	end := time.Now().Add(30 * time.Second)
	for {
		all := true
		for _, a := range agents {
			p := poolOf(b, a)
			all = all && p != nil && p.State == "member"
			if p != nil && p.Master != "" {
				master = p.Master
			}
		}
		if all && master != "" {
			var pi struct {
				Members []struct {
					Address string `xmlrpc:"address"`
				} `xmlrpc:"members"`
			}
			agents[master].call(b, "pool.info", &pi)
			ready := len(pi.Members) == 3
			for _, m := range pi.Members {
				ready = ready && m.Address != ""
			}
			if ready {
				return c, agents, master
			}
		}
		if time.Now().After(end) {
			b.Fatalf("the pool was not ready (members, master, addresses) within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func BenchmarkPool(b *testing.B) {
	var idle, failover, masterFailover []float64
	for i := 0; i < b.N; i++ {
		c, agents, master := benchPool(b)

		// The idle pool's etcd traffic.
		before, t0 := etcdClientBytes(b, c), time.Now()
		time.Sleep(10 * time.Second)
		idle = append(idle, (etcdClientBytes(b, c)-before)/time.Since(t0).Seconds())

		// An HA guest's failover.
		var via *Agent
		for host, a := range agents {
			if host != master {
				via = a
			}
		}
		via.call(b, "pool.create_domain", nil, vmcfgText("fo1", 64, "dirty=2M/s,hot=8M,verify=200ms"), map[string]any{"ha": true})
		first := waitPoolDomain(b, via, "fo1", "running", time.Minute, func(d poolDomView) bool { return d.State == "running" && d.Host != "" })
		owner := agents[first.Host]
		owner.Signal(syscall.SIGKILL)
		<-owner.done
		killVMMs(owner.Dir)
		lost := time.Now()
		delete(agents, first.Host)
		var moved *Agent
		end := time.Now().Add(time.Minute)
		for moved == nil {
			for _, a := range agents {
				if a.known(b, "fo1") && a.console(b, "fo1") != "" {
					moved = a
				}
			}
			if time.Now().After(end) {
				b.Fatalf("fo1 had no console output on another server a minute after its server's loss")
			}
			time.Sleep(20 * time.Millisecond)
		}
		failover = append(failover, time.Since(lost).Seconds())

		// The master's loss (of the two left, whichever is master now).
		var cur string
		end = time.Now().Add(time.Minute)
		for cur == "" || agents[cur] == nil {
			for _, a := range agents {
				if p := poolOf(b, a); p != nil && p.Master != "" {
					cur = p.Master
				}
			}
			if time.Now().After(end) {
				b.Fatalf("no live master a minute after the failover")
			}
			time.Sleep(20 * time.Millisecond)
		}
		m := agents[cur]
		m.Signal(syscall.SIGKILL)
		<-m.done
		killVMMs(m.Dir)
		lost = time.Now()
		delete(agents, cur)
		end = time.Now().Add(time.Minute)
		for done := false; !done; {
			for host, a := range agents {
				if p := poolOf(b, a); p != nil && p.Master == host {
					done = true
				}
			}
			if time.Now().After(end) {
				b.Fatalf("no new master a minute after the master's loss")
			}
			time.Sleep(20 * time.Millisecond)
		}
		masterFailover = append(masterFailover, time.Since(lost).Seconds())
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.ReportMetric(mean(idle), "idle-etcd-bytes/s")
	b.ReportMetric(mean(failover), "failover-s")
	b.ReportMetric(mean(failover)/benchPoolTTL.Seconds(), "failover/TTL")
	b.ReportMetric(mean(masterFailover), "master-failover-s")
	b.ReportMetric(mean(masterFailover)/benchPoolTTL.Seconds(), "master-failover/TTL")
	fmt.Printf("pool of three agents, lease_ttl %v, fencing_margin 1s, sim guests: idle etcd traffic %.0f bytes/s (all members, client gRPC in and out); HA failover (server killed to the guest's first console output elsewhere) %.2f s = %.2f TTL; master failover %.2f s = %.2f TTL\n",
		benchPoolTTL, mean(idle), mean(failover), mean(failover)/benchPoolTTL.Seconds(), mean(masterFailover), mean(masterFailover)/benchPoolTTL.Seconds())
}
