package vmm

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// TestLeaseFenceKillsQEMUThatDoesNotAnswer: the guest of a VMM started
// with a generation reads it from QEMU's fw_cfg; a QEMU that does not answer
// QMP (stopped with SIGSTOP) when its guest's lease runs out is killed
// with SIGKILL within the fence's bound, and the VMM ends fenced: no
// write can follow, whatever QEMU does.
func TestLeaseFenceKillsQEMUThatDoesNotAnswer(t *testing.T) {
	old := fenceWithin
	fenceWithin = 500 * time.Millisecond
	t.Cleanup(func() { fenceWithin = old })
	e, con := guestEngine(t, "fence")
	e.cfg.Generation = 9 // as Start gives it from Options.Generation
	engines["qfence"] = func(EngineConfig) (Engine, error) { return e, nil }
	t.Cleanup(func() { delete(engines, "qfence") })
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl")
	v, err := Start(Options{Name: "fence", UUID: "6f0a3c52-1d7e-4b8a-9c3e-00000000fe0c", Engine: "qfence", MemoryBytes: 256 << 20, Dir: dir, Socket: sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	exit := make(chan control.Exit, 1)
	go func() { exit <- v.Serve(context.Background()) }()
	con.waitLines(t, "OK memcheck", 1, e.Done())
	// The guest read its owner's generation from QEMU's fw_cfg.
	if n := con.count("testguest: generation 9"); n != 1 {
		t.Fatalf("the guest printed %d lines with its generation 9:\n%s", n, con)
	}
	pid := e.machine().PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var c *control.Client
	for i := 0; c == nil && i < 1000; i++ {
		if c, err = control.Dial(context.Background(), sock); err != nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if c == nil {
		t.Fatalf("control socket: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Lease(ctx, control.MonotonicNow().Add(-time.Millisecond), 9); err != nil && !strings.Contains(err.Error(), "closed") && !strings.Contains(err.Error(), "EOF") {
		t.Logf("lease: %v", err) // the VMM may end before it answers
	}
	select {
	case ex := <-exit:
		if ex.Reason != control.ExitFenced || !strings.Contains(ex.Detail, "did not pause within") {
			t.Fatalf("the VMM ended with %+v", ex)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the VMM did not end after the fence could not pause QEMU")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("QEMU (pid %d) still exists after the fence", pid)
	}
}
