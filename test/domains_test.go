package test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/vmm/workload"
)

// engines are the hypervisors every lifecycle test runs on. KVM works on
// these machines (nested); without /dev/kvm the kvm runs fail, they do not
// skip.
var engines = []string{"kvm", "sim"}

func domainAgent(t *testing.T, engine string) *Agent {
	return startAgent(t, agentConf{Extra: map[string][]string{
		"agent": {"hypervisor = " + engine, "memory_reserve = 0"},
	}})
}

type domInfo struct {
	Name     string  `xmlrpc:"name"`
	UUID     string  `xmlrpc:"uuid"`
	State    string  `xmlrpc:"state"`
	Reason   string  `xmlrpc:"reason"`
	Engine   string  `xmlrpc:"engine"`
	Memory   int     `xmlrpc:"memory"`
	VCPUs    int     `xmlrpc:"vcpus"`
	PID      int     `xmlrpc:"vmm_pid"`
	CPU      float64 `xmlrpc:"cpu_time_seconds"`
	Dirty    float64 `xmlrpc:"dirty_rate"`
	Uptime   float64 `xmlrpc:"uptime_seconds"`
	Written  int64   `xmlrpc:"pages_written"`
	Verified int64   `xmlrpc:"pages_verified"`
	Rounds   int64   `xmlrpc:"verify_rounds"`
	Corrupt  int64   `xmlrpc:"pages_corrupt"`
	LastExit *struct {
		Reason      string `xmlrpc:"reason"`
		Detail      string `xmlrpc:"detail"`
		ExitStatus  int    `xmlrpc:"exit_status"`
		ConsoleTail string `xmlrpc:"console_tail"`
	} `xmlrpc:"last_exit"`
}

func (a *Agent) call(t testing.TB, method string, reply any, args ...any) {
	t.Helper()
	if err := a.Unix().Call(context.Background(), method, reply, args...); err != nil {
		t.Fatalf("%s%v: %v", method, args, err)
	}
}

func (a *Agent) fault(t testing.TB, method string, args ...any) *client.Fault {
	t.Helper()
	err := a.Unix().Call(context.Background(), method, nil, args...)
	f, ok := err.(*client.Fault)
	if !ok {
		t.Fatalf("%s%v: %v, want a fault", method, args, err)
	}
	return f
}

func (a *Agent) info(t testing.TB, name string) domInfo {
	t.Helper()
	var in domInfo
	a.call(t, "domain.info", &in, name)
	return in
}

// waitInfo polls domain.info until ok says yes (at most 20s).
func (a *Agent) waitInfo(t testing.TB, name, what string, ok func(domInfo) bool) domInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var in domInfo
	for time.Now().Before(deadline) {
		in = a.info(t, name)
		if ok(in) {
			return in
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("domain %s: %s never happened; last info %+v", name, what, in)
	return in
}

func (a *Agent) console(t testing.TB, name string) string {
	var c struct {
		Data string `xmlrpc:"data"`
	}
	a.call(t, "domain.console", &c, name, 0, 1<<20)
	return c.Data
}

func vmcfgText(name string, memMiB int, workload string, extra ...string) string {
	s := fmt.Sprintf("# test domain\nname = '%s'\nmemory = %d\nvcpus = 1\nworkload = '%s'\n", name, memMiB, workload)
	return s + strings.Join(extra, "\n") + "\n"
}

func TestDomainLifecycle(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			a := domainAgent(t, engine)
			var created struct {
				Name  string `xmlrpc:"name"`
				UUID  string `xmlrpc:"uuid"`
				State string `xmlrpc:"state"`
			}
			a.call(t, "domain.create", &created, vmcfgText("web1", 128, "dirty=4M/s,hot=16M"))
			if created.State != "stopped" || len(created.UUID) != 36 {
				t.Fatalf("created: %+v", created)
			}
			// Duplicate name and UUID are refused.
			if f := a.fault(t, "domain.create", vmcfgText("web1", 128, "")); f.Code != 1004 {
				t.Errorf("duplicate name: %v", f)
			}
			if f := a.fault(t, "domain.create", vmcfgText("web2", 128, "", "uuid = '"+created.UUID+"'")); f.Code != 1004 {
				t.Errorf("duplicate uuid: %v", f)
			}
			// A vm.cfg on the agent's host, by path.
			path := filepath.Join(t.TempDir(), "vm.cfg")
			os.WriteFile(path, []byte(vmcfgText("fromfile", 64, "")), 0o600)
			a.call(t, "domain.create", nil, path)

			a.call(t, "domain.start", nil, "web1")
			in := a.info(t, "web1")
			if in.State != "running" || in.Engine != engine || in.PID == 0 || in.Memory != 128 {
				t.Fatalf("after start: %+v", in)
			}
			// The guest writes, verifies and prints heartbeats.
			a.waitInfo(t, "web1", "a verification round", func(i domInfo) bool { return i.Rounds >= 1 && i.Written > 0 })
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(a.console(t, "web1"), "HB ") && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if c := a.console(t, "web1"); !strings.Contains(c, "HB ") || strings.Contains(c, "CORRUPT") {
				t.Fatalf("console: %q", c)
			}
			// Illegal transitions get a bad-state fault naming the state.
			if f := a.fault(t, "domain.start", "web1"); f.Code != 1003 || !strings.Contains(f.Message, "running") {
				t.Errorf("start while running: %v", f)
			}
			if f := a.fault(t, "domain.unpause", "web1"); f.Code != 1003 {
				t.Errorf("unpause while running: %v", f)
			}
			if f := a.fault(t, "domain.delete", "web1"); f.Code != 1003 {
				t.Errorf("delete while running: %v", f)
			}
			if f := a.fault(t, "domain.info", "nosuch"); f.Code != 1002 {
				t.Errorf("unknown domain: %v", f)
			}

			// Pause stops the guest writing; unpause resumes it.
			a.call(t, "domain.pause", nil, "web1")
			p1 := a.info(t, "web1")
			time.Sleep(300 * time.Millisecond)
			p2 := a.info(t, "web1")
			if p1.State != "paused" || p2.Written != p1.Written {
				t.Fatalf("paused domain kept writing: %d -> %d (%s)", p1.Written, p2.Written, p2.State)
			}
			a.call(t, "domain.unpause", nil, "web1")
			a.waitInfo(t, "web1", "writes after unpause", func(i domInfo) bool { return i.State == "running" && i.Written > p2.Written })

			// Reboot gives a new VMM.
			a.call(t, "domain.reboot", nil, "web1", 10)
			rb := a.info(t, "web1")
			if rb.State != "running" || rb.PID == in.PID {
				t.Fatalf("after reboot: %+v (old pid %d)", rb, in.PID)
			}
			// Clean shutdown, then delete.
			a.call(t, "domain.shutdown", nil, "web1", 10)
			sd := a.info(t, "web1")
			if sd.State != "stopped" || sd.Reason != "shut down" {
				t.Fatalf("after shutdown: %+v", sd)
			}
			if err := syscall.Kill(rb.PID, 0); err == nil {
				t.Fatalf("VMM pid %d still alive after shutdown", rb.PID)
			}
			a.call(t, "domain.start", nil, "fromfile")
			a.call(t, "domain.destroy", nil, "fromfile")
			if st := a.info(t, "fromfile"); st.State != "stopped" || st.Reason != "destroyed" {
				t.Fatalf("after destroy: %+v", st)
			}
			a.call(t, "domain.delete", nil, "web1")
			var names []string
			a.call(t, "xend.domains", &names)
			if strings.Join(names, ",") != "fromfile" {
				t.Fatalf("xend.domains after delete: %v", names)
			}
			// xend aliases answer with xend's fault codes.
			if f := a.fault(t, "xend.domain.pause", "web1"); f.Code != 3 {
				t.Errorf("xend.domain.pause of a deleted domain: %v, want code 3", f)
			}
			if f := a.fault(t, "xend.domain.unpause", "fromfile"); f.Code != 2 {
				t.Errorf("xend.domain.unpause of a stopped domain: %v, want code 2", f)
			}
		})
	}
}

func TestDomainBadInput(t *testing.T) {
	a := domainAgent(t, "sim")
	for _, tc := range []struct {
		cfg  string
		code int
		want string
	}{
		{"name = '../etc'\nmemory = 64\n", 1010, "name"},
		{"name = 'x'\nmemory = 'lots'\n", 1010, "vm.cfg:2: memory"},
		{"name = 'huge'\nmemory = 4000000\n", 1005, "MiB"},
		{"name = 'cpus'\nmemory = 64\nvcpus = 200\n", 1005, "vCPUs"},
		{"/nonexistent/vm.cfg", 1002, "/nonexistent/vm.cfg"},
	} {
		f := a.fault(t, "domain.create", tc.cfg)
		if f.Code != tc.code || !strings.Contains(f.Message, tc.want) {
			t.Errorf("create %q: %v, want code %d and %q", tc.cfg, f, tc.code, tc.want)
		}
	}
	// Two domains that each fit but not together: the second start is refused.
	var host struct {
		Total int64 `xmlrpc:"memory_total"`
	}
	a.call(t, "host.info", &host)
	half := int(host.Total>>20)/2 + 64
	a.call(t, "domain.create", nil, vmcfgText("big1", half, "dirty=0"))
	a.call(t, "domain.create", nil, vmcfgText("big2", half, "dirty=0"))
	a.call(t, "domain.start", nil, "big1")
	if f := a.fault(t, "domain.start", "big2"); f.Code != 1005 || !strings.Contains(f.Message, "not enough free memory") {
		t.Errorf("second big start: %v", f)
	}
	a.call(t, "domain.destroy", nil, "big1")
	a.call(t, "domain.start", nil, "big2")
	a.call(t, "domain.destroy", nil, "big2")
}

// TestKVMMissingIsClear runs an agent with hypervisor = kvm in a mount
// namespace where /dev/kvm is /dev/null: starting a domain fails with a
// sentence that says what to do, and host.info says why KVM is unusable.
func TestKVMMissingIsClear(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare (util-linux) is needed")
	}
	dir := t.TempDir()
	text, c := agentConf{Extra: map[string][]string{"agent": {"hypervisor = kvm"}}}.render(t, dir)
	cfg := filepath.Join(dir, "agent.ini")
	os.WriteFile(cfg, []byte(text), 0o600)
	a := &Agent{t: t, Dir: dir, Config: cfg, Socket: filepath.Join(dir, "agent.sock"), Addr: fmt.Sprintf("127.0.0.1:%d", c.Port)}
	a.out = &syncBuffer{}
	a.done = make(chan struct{})
	a.cmd = exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind /dev/null /dev/kvm && exec "$0" serve --config "$1"`, bin("ovs-agent"), cfg)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.waitErr = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() { a.Stop(); killVMMs(dir) })
	a.waitReady()
	var info struct {
		KVM    bool   `xmlrpc:"kvm_usable"`
		Detail string `xmlrpc:"kvm_detail"`
	}
	a.call(t, "host.info", &info)
	if info.KVM || info.Detail == "" {
		t.Fatalf("host.info with /dev/kvm hidden: %+v", info)
	}
	a.call(t, "domain.create", nil, vmcfgText("k", 64, ""))
	f := a.fault(t, "domain.start", "k")
	if f.Code != 1007 || !strings.Contains(f.Message, "hypervisor = kvm") || !strings.Contains(f.Message, "hypervisor = sim") {
		t.Fatalf("start with hypervisor = kvm and no usable KVM: %v", f)
	}
	if in := a.info(t, "k"); in.State != "stopped" {
		t.Fatalf("domain after a refused start: %+v", in)
	}
}

// TestAgentKill9KeepsDomains kills the agent with SIGKILL while two domains
// run: they keep running, and a restarted agent finds both again.
func TestAgentKill9KeepsDomains(t *testing.T) {
	a := domainAgent(t, "kvm")
	for _, n := range []string{"a1", "a2"} {
		a.call(t, "domain.create", nil, vmcfgText(n, 128, "dirty=4M/s,hot=16M,verify=200ms"))
		a.call(t, "domain.start", nil, n)
	}
	before := map[string]domInfo{"a1": a.info(t, "a1"), "a2": a.info(t, "a2")}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	time.Sleep(500 * time.Millisecond)
	for n, in := range before {
		if err := syscall.Kill(in.PID, 0); err != nil {
			t.Fatalf("VMM of %s (pid %d) died with the agent: %v", n, in.PID, err)
		}
	}
	a.start()
	a.waitReady()
	for n, in := range before {
		now := a.info(t, n)
		if now.State != "running" || now.PID != in.PID || !strings.Contains(now.Reason, "re-attached") {
			t.Fatalf("%s after agent restart: %+v", n, now)
		}
		// Still writing and verifying, with no corruption.
		a.waitInfo(t, n, "more verification rounds", func(i domInfo) bool { return i.Rounds > now.Rounds+1 && i.Written > now.Written })
		if got := a.info(t, n); got.Corrupt != 0 || strings.Contains(a.console(t, n), "CORRUPT") {
			t.Fatalf("%s corrupt after agent restart: %+v", n, got)
		}
	}
	// The re-attached VMMs are still under control.
	a.call(t, "domain.shutdown", nil, "a1", 10)
	a.call(t, "domain.destroy", nil, "a2")
	if in := a.info(t, "a1"); in.State != "stopped" {
		t.Fatalf("a1 after shutdown: %+v", in)
	}
}

// TestVMMKilledIsNoticed kills a VMM behind the agent's back, both while the
// agent runs and while it is away.
func TestVMMKilledIsNoticed(t *testing.T) {
	a := domainAgent(t, "kvm")
	a.call(t, "domain.create", nil, vmcfgText("v1", 64, "dirty=1M/s,hot=8M", "on_crash = 'destroy'"))
	a.call(t, "domain.create", nil, vmcfgText("v2", 64, "dirty=1M/s,hot=8M", "on_crash = 'destroy'"))
	a.call(t, "domain.start", nil, "v1")
	a.call(t, "domain.start", nil, "v2")
	a.waitInfo(t, "v1", "a heartbeat", func(i domInfo) bool { return i.Rounds >= 1 })
	in := a.info(t, "v1")
	syscall.Kill(in.PID, syscall.SIGKILL)
	got := a.waitInfo(t, "v1", "the VMM's death noticed", func(i domInfo) bool { return i.State == "stopped" })
	if !strings.Contains(got.Reason, "ended unexpectedly") || got.LastExit == nil || !strings.Contains(got.LastExit.Detail, "killed") || !strings.Contains(got.LastExit.ConsoleTail, "HB ") {
		t.Fatalf("killed VMM reported as %+v %+v", got, got.LastExit)
	}
	// While the agent is away.
	in2 := a.info(t, "v2")
	a.Stop()
	syscall.Kill(in2.PID, syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)
	a.start()
	a.waitReady()
	got2 := a.info(t, "v2")
	if got2.State != "stopped" || !strings.Contains(got2.Reason, "while the agent was away") {
		t.Fatalf("VMM killed while the agent was away: %+v", got2)
	}
}

// TestCorruptionIsDetected flips one byte of a page the guest wrote, in the
// VMM's guest memory (through its memfd), and expects the guest to report
// CORRUPT for exactly that page.
func TestCorruptionIsDetected(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			a := domainAgent(t, engine)
			// Few writes over many pages: the flipped page is unlikely to be
			// rewritten before the next verification.
			a.call(t, "domain.create", nil, vmcfgText("c1", 128, "dirty=64K/s,hot=64M,verify=200ms"))
			a.call(t, "domain.start", nil, "c1")
			in := a.waitInfo(t, "c1", "pages written", func(i domInfo) bool { return i.Written >= 8 })
			mem := openGuestMemory(t, in.PID)
			defer mem.Close()
			page := writtenHotPage(t, mem)
			off := int64(page*workload.PageSize + 1000)
			b := make([]byte, 1)
			mem.ReadAt(b, off)
			b[0] ^= 0x5a
			if _, err := mem.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("CORRUPT page=%d", page)
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(a.console(t, "c1"), want) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if c := a.console(t, "c1"); !strings.Contains(c, want) {
				t.Fatalf("no %q on the console:\n%s", want, c)
			}
			if got := a.info(t, "c1"); got.Corrupt == 0 {
				t.Fatalf("domain.info does not count the corrupt page: %+v", got)
			}
			a.call(t, "domain.destroy", nil, "c1")
		})
	}
}

// openGuestMemory opens the memfd holding a VMM's guest RAM.
func openGuestMemory(t *testing.T, pid int) *os.File {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		p := fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())
		target, _ := os.Readlink(p)
		if strings.HasPrefix(target, "/memfd:ovs-vmm:") {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no guest memfd in VMM pid %d", pid)
	return nil
}

// writtenHotPage finds a hot-set page with a non-zero expected generation.
func writtenHotPage(t *testing.T, mem *os.File) uint64 {
	st, _ := mem.Stat()
	pp := make([]byte, workload.PageSize)
	mem.ReadAt(pp, workload.ParamPageAddr)
	_, layout, err := workload.DecodeParamPage(pp, uint64(st.Size()))
	if err != nil {
		t.Fatal(err)
	}
	table := make([]byte, layout.HotPages*8)
	mem.ReadAt(table, workload.GenTableAddr)
	for i := uint64(0); i < layout.HotPages; i++ {
		if binary.LittleEndian.Uint64(table[i*8:]) != 0 {
			return layout.HotFirst + i
		}
	}
	t.Fatal("no written page in the hot set")
	return 0
}
