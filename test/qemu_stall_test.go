package test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQEMUTargetGivesUpOnASilentSource: the source's QEMU stops sending in
// the middle of its stream (SIGSTOP: a source host that froze or lost its
// link without closing the connection). The target reads no byte for its
// progress_timeout (2 s here) and gives up instead of waiting minutes for
// TCP keepalive: its QEMU is killed and the incoming domain removed, with
// the reason in its log. The source, continued, finds its stream broken,
// the move fails, and the guest runs on there as before.
func TestQEMUTargetGivesUpOnASilentSource(t *testing.T) {
	timed(t)
	src := qemuAgent(t, "127.0.0.2", true)
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"),
		FileDirs: []string{filepath.Dir(t.TempDir()), testGuestDir(t)},
		Extra: map[string][]string{
			"agent":      {"memory_reserve = 0"},
			"qemu":       {"accel = " + testGuestAccel(t)},
			"relocation": {"progress_timeout = 2s"},
		}})
	startGuest(t, src, guestVM{Name: "stall", MemcheckMiB: 64})

	var id string
	// 4 MB/s: 256 MiB take a minute, so the stream is surely in its
	// precopy when the source stops.
	src.call(t, "domain.migrate", &id, "stall", dst.Reloc, migrateOpts(map[string]any{"live": true, "rate": 4}))
	deadline := time.Now().Add(time.Minute)
	for {
		var st agentQEMUMig
		src.call(t, "migration.status", &st, id)
		if st.Phase == "precopy" && st.BytesSent > 8<<20 {
			break
		}
		if st.Phase == "failed" || st.Phase == "completed" || time.Now().After(deadline) {
			t.Fatalf("the move did not get into its precopy: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	qemus := childPIDs(t, src.info(t, "stall").PID)
	if len(qemus) == 0 {
		t.Fatal("no QEMU under the source's VMM")
	}
	for _, pid := range qemus {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	cont := func() {
		for _, pid := range qemus {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	// The target gives up within its progress_timeout and a poll; the
	// bound here is a safety net, well inside the source VMM's QMP timeout
	// (10 s), which would kill the stopped QEMU.
	gone := time.Now().Add(8 * time.Second)
	for dst.known(t, "stall") {
		if time.Now().After(gone) {
			cont()
			t.Fatalf("the target still has the domain 8 s after its source went silent (progress_timeout 2s)\n%s", dst.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cont()
	if !strings.Contains(dst.Log(), "no data from the source for 2s (progress_timeout)") {
		t.Errorf("the target's log does not say why it gave up:\n%s", dst.Log())
	}
	end := time.Now().Add(time.Minute)
	var st agentQEMUMig
	for {
		src.call(t, "migration.status", &st, id)
		if st.Phase == "failed" || st.Phase == "cancelled" || st.Phase == "completed" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the source's move did not end a minute after its stream broke: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Phase != "failed" {
		t.Fatalf("the move ended %s, want failed: %+v", st.Phase, st)
	}
	src.waitInfoWithin(t, "stall", "running on the source after the failed move", time.Minute, func(i qemuInfo) bool { return i.State == "running" })
	src.waitMemcheck(t, "stall", 2)
}
