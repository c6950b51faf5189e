package domains

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// openFake opens a Manager on dir whose VMMs are f's, on a host with
// hostMiB of memory (128 MiB of it reserved) and 4 CPUs.
func openFake(t *testing.T, dir string, f *fakeVMMs, hostMiB uint64) *Manager {
	t.Helper()
	m, err := Open(Options{
		StateDir: dir, Hypervisor: "sim", VMMs: f,
		HostMemory:    func() (uint64, error) { return hostMiB << 20, nil },
		MemoryReserve: 128 << 20, HostCPUs: 4,
		KVMUsable: func() error { return errors.New("no KVM in unit tests") },
		// No huge pages: what a test of another package does to the
		// real host's pool is not this host's.
		HostBacking: func() (guestmem.Host, error) { return guestmem.Host{ShmemTHP: "never"}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// create registers a domain of memMiB with extra vm.cfg lines and
// returns its UUID.
func create(t *testing.T, m *Manager, name string, memMiB int, extra ...string) string {
	t.Helper()
	text := fmt.Sprintf("name = '%s'\nmemory = %d\nvcpus = 1\n%s\n", name, memMiB, strings.Join(extra, "\n"))
	in, _, err := m.Create([]byte(text), "vm.cfg")
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return in.UUID
}

func info(t *testing.T, m *Manager, name string) Info {
	t.Helper()
	in, err := m.Info(name)
	if err != nil {
		t.Fatalf("info %s: %v", name, err)
	}
	return in
}

// waitFor waits until name's Info satisfies ok: the registry settles an
// exit in the goroutine that receives it.
func waitFor(t *testing.T, m *Manager, name, what string, ok func(Info) bool) Info {
	t.Helper()
	var in Info
	eventually(t, name+" "+what, func() bool {
		var err error
		in, err = m.Info(name)
		return err == nil && ok(in)
	})
	return in
}

// eventually waits until cond holds (failing after 10 s: it never came).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
	}
}

func isState(s State) func(Info) bool { return func(i Info) bool { return i.State == string(s) } }

func TestReopenReattachesRunningVMMsAndRecordsThoseThatEnded(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m1 := openFake(t, dir, f, 4096)
	uuids := map[string]string{}
	for _, n := range []string{"up", "held", "crashed", "killed"} {
		uuids[n] = create(t, m1, n, 128)
		if err := m1.Start(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := m1.Pause("held"); err != nil {
		t.Fatal(err)
	}
	pid := info(t, m1, "up").PID
	m1.Close() // the agent goes away; the VMMs do not
	f.crash(t, uuids["crashed"], control.ExitCrashed, "engine failed\nstack trace")
	f.kill(t, uuids["killed"])
	killedPID := f.proc(t, uuids["killed"]).pid

	m2 := openFake(t, dir, f, 4096)
	if in := info(t, m2, "up"); in.State != "running" || in.PID != pid || in.Reason != "re-attached after agent restart" {
		t.Errorf("running VMM after the agent restart: %+v", in)
	}
	if in := info(t, m2, "held"); in.State != "paused" || in.Reason != "re-attached after agent restart" {
		t.Errorf("paused VMM after the agent restart: %+v", in)
	}
	in := info(t, m2, "crashed")
	if in.State != "stopped" || in.Reason != "the VMM ended while the agent was away: crashed: engine failed" || in.LastExit == nil || in.LastExit.Reason != "crashed" {
		t.Errorf("VMM that crashed while the agent was away: %+v %+v", in, in.LastExit)
	}
	in = info(t, m2, "killed")
	want := fmt.Sprintf("the VMM (pid %d) ended while the agent was away (", killedPID)
	if in.State != "stopped" || !strings.HasPrefix(in.Reason, want) || in.LastExit == nil || in.LastExit.Detail != in.Reason {
		t.Errorf("VMM killed while the agent was away: %+v %+v", in, in.LastExit)
	}
	// A VMM that ended while the agent was away is not restarted, and the
	// re-attached one is still under control.
	for range 4 {
		f.nextStart(t) // the four starts through m1
	}
	f.noStart(t)
	if err := m2.Shutdown("up", time.Second); err != nil {
		t.Fatal(err)
	}
	if in := info(t, m2, "up"); in.State != "stopped" || in.Reason != "shut down" {
		t.Errorf("re-attached domain after shutdown: %+v", in)
	}
}

func TestReopenForgetsADomainThatMigratedAwayWhileTheAgentWasAway(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m1 := openFake(t, dir, f, 4096)
	uuid := create(t, m1, "mover", 128)
	if err := m1.Start("mover"); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	f.crash(t, uuid, control.ExitMigrated, "host2")
	m2 := openFake(t, dir, f, 4096)
	if _, err := m2.Info("mover"); KindOf(err) != NotFound {
		t.Fatalf("a domain that runs on host2 now is still here: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "domains", "mover")); !os.IsNotExist(err) {
		t.Fatalf("its folder is still here: %v", err)
	}
}

func TestReopenFindsADomainSavedWhileTheAgentWasAwaySuspended(t *testing.T) {
	dir, f := t.TempDir(), newFakeVMMs()
	m1 := openFake(t, dir, f, 4096)
	uuid := create(t, m1, "s", 128)
	if err := m1.Start("s"); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	f.crash(t, uuid, control.ExitSaved, "/images/s.img")
	m2 := openFake(t, dir, f, 4096)
	f.nextStart(t)
	if in := info(t, m2, "s"); in.State != "suspended" || in.Reason != "saved to /images/s.img" {
		t.Fatalf("domain saved while the agent was away: %+v", in)
	}
	if err := m2.Start("s"); err != nil {
		t.Fatal(err)
	}
	if s := f.nextStart(t); s.Mode != vmmproc.Restore || s.Image != "/images/s.img" {
		t.Fatalf("start of a suspended domain: %+v", s)
	}
}

func TestCrashesRestartTheDomainUpToTheBudgetThenItStaysStopped(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "r", 128, "on_crash = 'restart'")
	if err := m.Start("r"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	for i := 1; i <= 3; i++ {
		f.crash(t, uuid, control.ExitCrashed, "guest triple fault")
		if s := f.nextStart(t); s.Mode != vmmproc.Boot {
			t.Fatalf("restart %d: %+v", i, s)
		}
		waitFor(t, m, "r", "running again", isState(Running))
	}
	f.crash(t, uuid, control.ExitCrashed, "guest triple fault")
	in := waitFor(t, m, "r", "given up on", func(i Info) bool { return strings.Contains(i.Reason, "not restarted") })
	if in.State != "stopped" || in.Reason != "crashed: guest triple fault; not restarted: 3 restarts within 1m0s" {
		t.Fatalf("after the fourth crash within a minute: %+v", in)
	}
	f.noStart(t)
}

func TestCrashLeavesTheDomainStoppedWhenOnCrashIsDestroy(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "d", 128, "on_crash = 'destroy'")
	if err := m.Start("d"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	pid := info(t, m, "d").PID
	f.kill(t, uuid)
	in := waitFor(t, m, "d", "stopped", isState(Stopped))
	want := fmt.Sprintf("ovs-vmm (pid %d) ended unexpectedly: signal: killed", pid)
	if in.Reason != want || in.LastExit == nil || in.LastExit.Reason != "vanished" || in.LastExit.Detail != "signal: killed" || in.PID != 0 {
		t.Fatalf("killed VMM: %+v %+v", in, in.LastExit)
	}
	f.noStart(t)
}

func TestGuestPoweroffRestartsOnlyWhenOnPoweroffSaysSo(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	off := create(t, m, "off", 128) // on_poweroff defaults to destroy
	again := create(t, m, "again", 128, "on_poweroff = 'restart'")
	for _, n := range []string{"off", "again"} {
		if err := m.Start(n); err != nil {
			t.Fatal(err)
		}
		f.nextStart(t)
	}
	f.crash(t, again, control.ExitShutdown, "the guest powered off")
	if s := f.nextStart(t); s.UUID != again {
		t.Fatalf("restarted %s, not the domain with on_poweroff = restart", s.UUID)
	}
	waitFor(t, m, "again", "running again", isState(Running))
	f.crash(t, off, control.ExitShutdown, "the guest powered off")
	if in := waitFor(t, m, "off", "stopped", isState(Stopped)); in.Reason != "shutdown: the guest powered off" {
		t.Fatalf("powered off: %+v", in)
	}
	f.noStart(t)
}

func TestStartOfAVMMThatEndsBeforeAnsweringSaysWhy(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	create(t, m, "bad", 128)
	f.endFirst = &control.Exit{Reason: control.ExitFailedToStart, Detail: "guest image unreadable\nmore", Code: 2}
	err := m.Start("bad")
	if KindOf(err) != Failed || err.Error() != "domain bad did not start: failed to start: guest image unreadable" {
		t.Fatalf("start: %v", err)
	}
	f.nextStart(t)
	if in := info(t, m, "bad"); in.State != "stopped" || in.LastExit == nil || in.LastExit.ExitStatus != 2 {
		t.Fatalf("after the failed start: %+v", in)
	}
	f.noStart(t) // failed to start is not a crash: no restart
}

func TestStartOfAVMMThatNeverAnswersKillsIt(t *testing.T) {
	f := newFakeVMMs()
	dir := t.TempDir()
	m, err := Open(Options{StateDir: dir, Hypervisor: "sim", VMMs: f, StartTimeout: time.Millisecond,
		HostMemory: func() (uint64, error) { return 4 << 30, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	uuid := create(t, m, "mute", 128, "on_crash = 'destroy'")
	f.hang = true
	err = m.Start("mute")
	if KindOf(err) != Failed || err.Error() != "domain mute did not start: its VMM did not answer within 1ms" {
		t.Fatalf("start: %v", err)
	}
	if p := f.proc(t, uuid); p.ended == nil {
		t.Fatal("the VMM that did not answer still runs")
	}
	if in := info(t, m, "mute"); in.State != "stopped" {
		t.Fatalf("after the start: %+v", in)
	}
}

func TestStartThatCannotRunAVMMLeavesTheDomainStopped(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	create(t, m, "x", 128)
	f.refuse = errors.New("run ovs-vmm: no such file")
	if err := m.Start("x"); KindOf(err) != Failed || err.Error() != "domain x did not start: run ovs-vmm: no such file" {
		t.Fatalf("start: %v", err)
	}
	if in := info(t, m, "x"); in.State != "stopped" || in.Reason != "failed to start: run ovs-vmm: no such file" {
		t.Fatalf("after the start: %+v", in)
	}
}

func TestShutdownOfAVMMThatDoesNotEndForcesIt(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	uuid := create(t, m, "h", 128)
	if err := m.Start("h"); err != nil {
		t.Fatal(err)
	}
	f.proc(t, uuid).ignoreShutdown = true
	if err := m.Shutdown("h", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	in := info(t, m, "h")
	if in.State != "stopped" || in.Reason != "shut down (forced after 1ms)" {
		t.Fatalf("after a forced shutdown: %+v", in)
	}
	// Destroyed through the VMM, which wrote its exit record (a qemu
	// guest's QEMU is quit), not killed.
	if in.LastExit == nil || in.LastExit.Reason != string(control.ExitDestroyed) {
		t.Fatalf("last exit after a forced shutdown: %+v, want reason destroyed", in.LastExit)
	}
}

func TestShutdownOfAVMMThatIgnoresDestroyKillsIt(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	m.opts.DestroyTimeout = time.Millisecond
	uuid := create(t, m, "h", 128)
	if err := m.Start("h"); err != nil {
		t.Fatal(err)
	}
	p := f.proc(t, uuid)
	p.ignoreShutdown, p.ignoreDestroy = true, true
	if err := m.Shutdown("h", time.Millisecond); err != nil {
		t.Fatal(err)
	}
	in := info(t, m, "h")
	if in.State != "stopped" || in.LastExit == nil || in.LastExit.Reason != string(control.ExitVanished) {
		t.Fatalf("after a shutdown and a destroy that were both ignored: %+v (last exit %+v), want stopped and killed", in, in.LastExit)
	}
}

func TestSaveSuspendsAndStartRestoresFromTheImage(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	create(t, m, "s", 128)
	if err := m.Start("s"); err != nil {
		t.Fatal(err)
	}
	f.nextStart(t)
	if err := m.Save("s", "/images/s.img"); err != nil {
		t.Fatal(err)
	}
	if in := info(t, m, "s"); in.State != "suspended" || in.Reason != "saved to /images/s.img" {
		t.Fatalf("after save: %+v", in)
	}
	if err := m.Start("s"); err != nil {
		t.Fatal(err)
	}
	if s := f.nextStart(t); s.Mode != vmmproc.Restore || s.Image != "/images/s.img" {
		t.Fatalf("start of a suspended domain: %+v", s)
	}
	if in := info(t, m, "s"); in.State != "running" || in.Reason != "restored from /images/s.img" {
		t.Fatalf("after the restore: %+v", in)
	}
}

const incomingCfg = "name = 'in'\nuuid = '6f1d3c2e-0000-4000-8000-000000000001'\nmemory = 128\n"

func TestIncomingDomainRunsOnceTheMigrationCommits(t *testing.T) {
	f := newFakeVMMs()
	m := openFake(t, t.TempDir(), f, 4096)
	if err := m.Incoming(incomingCfg, "host1", 0, 0); err != nil {
		t.Fatal(err)
	}
	s := f.nextStart(t)
	if s.Mode != vmmproc.Incoming {
		t.Fatalf("incoming VMM started as %+v", s)
	}
	if in := info(t, m, "in"); in.State != "starting" || in.Reason != "incoming migration from host1" {
		t.Fatalf("before the commit: %+v", in)
	}
	p := f.proc(t, s.UUID)
	f.mu.Lock()
	p.migration = &control.MigrationStatus{ID: "m1", Phase: control.PhaseRunning}
	f.mu.Unlock()
	if st := m.WatchIncoming("in"); st != Running {
		t.Fatalf("WatchIncoming: %s", st)
	}
	if in := info(t, m, "in"); in.State != "running" || in.Reason != "migrated from host1" {
		t.Fatalf("after the commit: %+v", in)
	}
}

func TestIncomingMigrationThatDoesNotCompleteLeavesNothing(t *testing.T) {
	f := newFakeVMMs()
	dir := t.TempDir()
	m := openFake(t, dir, f, 4096)
	if err := m.Incoming(incomingCfg, "host1", 0, 0); err != nil {
		t.Fatal(err)
	}
	s := f.nextStart(t)
	f.crash(t, s.UUID, control.ExitIncomingAborted, "the source aborted")
	if st := m.WatchIncoming("in"); st != Stopped {
		t.Fatalf("WatchIncoming: %s", st)
	}
	// The domain is stopped first, then forgotten.
	eventually(t, "the domain and its folder removed", func() bool {
		_, err := os.Stat(filepath.Join(dir, "domains", "in"))
		return len(m.Names()) == 0 && os.IsNotExist(err)
	})
}
