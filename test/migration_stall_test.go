package test

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// stallPair starts a source and a target agent, both with
// [relocation] progress_timeout = 3s.
func stallPair(t *testing.T) (*Agent, *Agent) {
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent":      {"hypervisor = kvm", "memory_reserve = 0"},
		"relocation": {"progress_timeout = 3s"},
	}})
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{
		"agent":      {"hypervisor = kvm", "memory_reserve = 0"},
		"relocation": {"progress_timeout = 3s"},
	}})
	return src, dst
}

// stopVMM sends SIGSTOP to pid and makes sure it is continued and then
// killed when the test ends, whatever happens.
func stopVMM(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGCONT)
		syscall.Kill(pid, syscall.SIGKILL)
	})
}

// waitStall waits (at most bound) for the migration to end and returns its
// status and the time it took.
func waitStall(t *testing.T, src *Agent, id string, since time.Time, bound time.Duration) (migStatus, time.Duration) {
	t.Helper()
	var st migStatus
	for time.Since(since) < bound {
		st = migStatus{}
		src.call(t, "migration.status", &st, id)
		switch st.Phase {
		case "completed", "failed", "cancelled":
			return st, time.Since(since)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("migration %s still not ended %s after the target VMM was stopped: %+v", id, bound, st)
	return st, 0
}

// TestMigrationTargetStalledPrecopy stops (SIGSTOP) the target's incoming
// VMM during pre-copy. The source's page-stream writes stop moving; with
// progress_timeout = 3s the migration fails within the bound, naming the
// stall, the source guest keeps running and verifying, and once the
// stopped VMM is continued the target drops what it had.
func TestMigrationTargetStalledPrecopy(t *testing.T) {
	src, dst := stallPair(t)
	slowSource(t, src, "p1")
	id := startSlowMigration(t, src, "p1", dst.Reloc)
	in := dst.info(t, "p1")
	if in.State != "starting" || in.PID == 0 {
		t.Fatalf("target during the migration: %+v", in)
	}
	stopped := time.Now()
	stopVMM(t, in.PID)
	st, took := waitStall(t, src, id, stopped, 20*time.Second)
	t.Logf("stall in pre-copy detected %.2f s after SIGSTOP (progress_timeout 3s): %s", took.Seconds(), st.Error)
	if st.Phase != "failed" || !strings.Contains(st.Error, "no progress") {
		t.Fatalf("after the target VMM stalled: %+v", st)
	}
	stillHere(t, src, "p1")
	// The stopped VMM, continued, finds its stream gone.
	syscall.Kill(in.PID, syscall.SIGCONT)
	nothingOnTarget(t, dst, "p1")
}

// TestMigrationSourceStalledPrecopy stops (SIGSTOP) the source's VMM
// during pre-copy. The target's page-stream reads receive nothing; with
// its own progress_timeout = 3s its incoming VMM fails the image and the
// target agent drops the domain within the bound. Continued, the source
// VMM finds the stream gone, fails the migration and keeps the guest.
func TestMigrationSourceStalledPrecopy(t *testing.T) {
	src, dst := stallPair(t)
	slowSource(t, src, "q1")
	id := startSlowMigration(t, src, "q1", dst.Reloc)
	in := src.info(t, "q1")
	if in.PID == 0 {
		t.Fatalf("source during the migration: %+v", in)
	}
	stopped := time.Now()
	if err := syscall.Kill(in.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(in.PID, syscall.SIGCONT) })
	var names []string
	for {
		names = nil
		dst.call(t, "xend.domains", &names)
		if len(names) == 0 {
			break
		}
		if time.Since(stopped) > 20*time.Second {
			t.Fatalf("the target still has %v 20 s after the source VMM was stopped", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(stopped)
	t.Logf("target dropped the incoming domain %.2f s after the source VMM's SIGSTOP (progress_timeout 3s)", took.Seconds())
	if l := logLines(dst.Log(), "no progress"); len(l) == 0 {
		t.Errorf("the target's log does not name the stall")
	}
	syscall.Kill(in.PID, syscall.SIGCONT)
	if st := waitMigration(t, src, id); st.Phase != "failed" {
		t.Fatalf("after the target dropped the stream: %+v", st)
	}
	stillHere(t, src, "q1")
	nothingOnTarget(t, dst, "q1")
}

// TestMigrationTargetStalledStopCopy stops (SIGSTOP) the target's
// incoming VMM at the end of stop-and-copy (a non-live move, the guest
// paused on the source, the last MiB going out): the last writes fit in
// the socket buffers, so what stalls is the source's wait for the
// target's verify answer (or the last writes). Either way the migration
// fails within the bound naming the stall and the source guest runs
// again, verifying cleanly; the continued target VMM leaves nothing.
func TestMigrationTargetStalledStopCopy(t *testing.T) {
	src, dst := stallPair(t)
	src.call(t, "domain.create", nil, vmcfgText("z1", 128, "dirty=64M/s,hot=48M,verify=200ms"))
	src.call(t, "domain.start", nil, "z1")
	src.waitInfo(t, "z1", "the hot set written", func(i domInfo) bool { return i.Written*4096 >= 60<<20 })
	var id string
	src.call(t, "domain.migrate", &id, "z1", dst.Reloc, migrateOpts(map[string]any{"rate": 16}))
	var st migStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st = migStatus{}
		src.call(t, "migration.status", &st, id)
		if st.Phase == "stop-copy" && st.BytesSent > 8<<20 && st.Remaining < 2<<20 {
			break
		}
		if st.Phase == "completed" || st.Phase == "failed" || time.Now().After(deadline) {
			t.Fatalf("never caught the end of stop-and-copy: %+v", st)
		}
	}
	if in := src.info(t, "z1"); in.State != "paused" || in.Reason != "migration" {
		t.Errorf("source during stop-and-copy: %+v", in)
	}
	in := dst.info(t, "z1")
	if in.PID == 0 {
		t.Fatalf("target during the migration: %+v", in)
	}
	stopped := time.Now()
	stopVMM(t, in.PID)
	st, took := waitStall(t, src, id, stopped, 20*time.Second)
	t.Logf("stall at stop-and-copy detected %.2f s after SIGSTOP (progress_timeout 3s): %s", took.Seconds(), st.Error)
	if st.Phase != "failed" || !strings.Contains(st.Error, "no progress") {
		t.Fatalf("after the target VMM stalled at stop-and-copy: %+v", st)
	}
	stillHere(t, src, "z1")
	syscall.Kill(in.PID, syscall.SIGCONT)
	nothingOnTarget(t, dst, "z1")
}
