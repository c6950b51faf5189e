package test

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// slowSource prepares a domain whose migration at rate MB/s takes several
// seconds: 256 MiB with a 128 MiB hot set written at 64 MiB/s.
func slowSource(t *testing.T, src *Agent, name string) {
	src.call(t, "domain.create", nil, vmcfgText(name, 256, "dirty=64M/s,hot=128M,verify=200ms"))
	src.call(t, "domain.start", nil, name)
	src.waitInfo(t, name, "100 MiB written", func(i domInfo) bool { return i.Written*4096 >= 100<<20 })
}

// startSlowMigration starts a live migration capped at 4 MB/s and waits
// until it is well into pre-copy.
func startSlowMigration(t *testing.T, src *Agent, name, target string) string {
	var id string
	src.call(t, "domain.migrate", &id, name, target, migrateOpts(map[string]any{"live": true, "rate": 4}))
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var st migStatus
		src.call(t, "migration.status", &st, id)
		if st.Phase == "precopy" && st.BytesSent > 2<<20 {
			return id
		}
		if st.Phase == "failed" || st.Phase == "completed" {
			t.Fatalf("migration ended before the test could act: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("migration never reached pre-copy")
	return ""
}

// nothingOnTarget waits until the target has no trace of the domain.
func nothingOnTarget(t *testing.T, dst *Agent, name string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var names []string
		dst.call(t, "xend.domains", &names)
		if len(names) == 0 {
			entries, _ := os.ReadDir(dst.Dir + "/state/domains")
			if len(entries) == 0 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var names []string
	dst.call(t, "xend.domains", &names)
	t.Fatalf("target kept %v after the migration failed", names)
}

func stillHere(t *testing.T, src *Agent, name string) {
	t.Helper()
	in := src.waitInfo(t, name, "running on the source", func(i domInfo) bool { return i.State == "running" })
	if in.PID == 0 {
		t.Fatalf("source: %+v", in)
	}
	verifiesCleanly(t, src, name)
}

func TestMigrationCancel(t *testing.T) {
	src, dst := pair(t, "kvm", "kvm", "memory_reserve = 0")
	slowSource(t, src, "c1")
	id := startSlowMigration(t, src, "c1", dst.Reloc)
	var st migStatus
	src.call(t, "migration.cancel", &st, id)
	st = waitMigration(t, src, id)
	if st.Phase != "cancelled" {
		t.Fatalf("after cancel: %+v", st)
	}
	stillHere(t, src, "c1")
	nothingOnTarget(t, dst, "c1")
}

func TestMigrationTargetVMMKilled(t *testing.T) {
	src, dst := pair(t, "kvm", "kvm", "memory_reserve = 0")
	slowSource(t, src, "k1")
	id := startSlowMigration(t, src, "k1", dst.Reloc)
	in := dst.info(t, "k1")
	if in.State != "starting" || in.PID == 0 {
		t.Fatalf("target during the migration: %+v", in)
	}
	syscall.Kill(in.PID, syscall.SIGKILL)
	if st := waitMigration(t, src, id); st.Phase != "failed" {
		t.Fatalf("after the target VMM died: %+v", st)
	}
	stillHere(t, src, "k1")
	nothingOnTarget(t, dst, "k1")
}

// cutProxy forwards connections to target and cuts them (both ways) after
// limit bytes from the client.
type cutProxy struct {
	l     net.Listener
	limit int64
	cut   atomic.Bool
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string, limit int64) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, limit: limit}
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				io.Copy(c, up)
				c.Close()
			}()
			go func() {
				defer p.wg.Done()
				var n int64
				buf := make([]byte, 64<<10)
				for {
					k, err := c.Read(buf)
					if k > 0 {
						if n+int64(k) > p.limit {
							p.cut.Store(true)
							// Reset both sides, as a failed link would.
							c.(*net.TCPConn).SetLinger(0)
							up.(*net.TCPConn).SetLinger(0)
							c.Close()
							up.Close()
							return
						}
						n += int64(k)
						up.Write(buf[:k])
					}
					if err != nil {
						up.Close()
						return
					}
				}
			}()
		}
	}()
	return p
}

func TestMigrationConnectionCut(t *testing.T) {
	src, dst := pair(t, "kvm", "kvm", "memory_reserve = 0")
	slowSource(t, src, "n1")
	proxy := newCutProxy(t, dst.Reloc, 16<<20)
	var id string
	src.call(t, "domain.migrate", &id, "n1", proxy.l.Addr().String(), migrateOpts(map[string]any{"live": true, "rate": 16}))
	st := waitMigration(t, src, id)
	if st.Phase != "failed" || !proxy.cut.Load() {
		t.Fatalf("after the link was cut: %+v (cut %v)", st, proxy.cut.Load())
	}
	stillHere(t, src, "n1")
	nothingOnTarget(t, dst, "n1")
}

// TestMigrationTargetAgentRestarted restarts the target agent in the middle
// of a migration. The VMMs carry on without it; whatever the outcome, the
// domain must end up running on exactly one host and both agents agree.
func TestMigrationTargetAgentRestarted(t *testing.T) {
	src, dst := pair(t, "kvm", "kvm", "memory_reserve = 0")
	// A non-live move of 48 MiB at 16 MB/s: about 3 s, with no convergence
	// to wait for.
	src.call(t, "domain.create", nil, vmcfgText("r1", 128, "dirty=64M/s,hot=48M,verify=200ms"))
	src.call(t, "domain.start", nil, "r1")
	src.waitInfo(t, "r1", "the hot set written", func(i domInfo) bool { return i.Written*4096 >= 60<<20 })
	var id string
	src.call(t, "domain.migrate", &id, "r1", dst.Reloc, migrateOpts(map[string]any{"rate": 16}))
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st migStatus
		src.call(t, "migration.status", &st, id)
		if st.BytesSent > 4<<20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	dst.Stop()
	dst.start()
	dst.waitReady()
	st := waitMigration(t, src, id)
	t.Logf("migration: %+v", st)
	exactlyOneHost(t, src, dst, "r1", st.Phase)
}

// TestMigrationSourceAgentKilled kills the source agent (SIGKILL) during
// pre-copy and restarts it.
func TestMigrationSourceAgentKilled(t *testing.T) {
	src, dst := pair(t, "kvm", "kvm", "memory_reserve = 0")
	slowSource(t, src, "s1")
	startSlowMigration(t, src, "s1", dst.Reloc)
	src.cmd.Process.Kill()
	<-src.done
	src.start()
	src.waitReady()
	exactlyOneHost(t, src, dst, "s1", "")
}

// exactlyOneHost waits until the domain runs on one of the two agents and
// is unknown to the other, then checks it verifies cleanly there.
func exactlyOneHost(t *testing.T, src, dst *Agent, name, phase string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	state := func(a *Agent) string {
		var names []string
		a.call(t, "xend.domains", &names)
		if strings.Join(names, ",") != name {
			return "absent"
		}
		// The domain may go between the two calls (a target forgets an
		// incoming domain whose migration aborted): absent then too.
		var in domInfo
		err := a.Unix().Call(context.Background(), "domain.info", &in, name)
		if f, ok := err.(*client.Fault); ok && f.Code == xmlrpc.NotFound {
			return "absent"
		} else if err != nil {
			t.Fatalf("domain.info[%s]: %v", name, err)
		}
		return in.State
	}
	for time.Now().Before(deadline) {
		s, d := state(src), state(dst)
		switch {
		case s == "running" && d == "absent":
			if phase == "completed" {
				t.Fatalf("the migration says completed but the domain runs on the source")
			}
			verifiesCleanly(t, src, name)
			return
		case d == "running" && s == "absent":
			if phase == "failed" || phase == "cancelled" {
				t.Fatalf("the migration says %s but the domain runs on the target", phase)
			}
			verifiesCleanly(t, dst, name)
			return
		case s == "running" && d == "running":
			t.Fatalf("%s runs on both hosts", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s never settled: source %q, target %q", name, state(src), state(dst))
}
