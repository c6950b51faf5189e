package vmmproc

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// The test binary doubles as a small VMM: with VMMPROC_HELPER set it
// serves the control protocol on --socket for the UUID in VMMPROC_UUID
// (VMMPROC_HELPER=fail: it writes a failed-to-start exit record instead
// and exits 1).
func TestMain(m *testing.M) {
	if mode := os.Getenv("VMMPROC_HELPER"); mode != "" {
		helperVMM(mode)
		return
	}
	os.Exit(m.Run())
}

func helperVMM(mode string) {
	var dir, sock string
	for i, a := range os.Args {
		switch a {
		case "--dir":
			dir = os.Args[i+1]
		case "--socket":
			sock = os.Args[i+1]
		}
	}
	exit := func(r control.ExitReason, code int) {
		_ = control.WriteExit(filepath.Join(dir, control.ExitFile), control.Exit{Time: time.Now().UTC(), PID: os.Getpid(), Reason: r, Code: code})
		os.Exit(code)
	}
	if mode == "fail" {
		exit(control.ExitFailedToStart, 1)
	}
	l, err := net.Listen("unix", sock)
	if err != nil {
		os.Exit(3)
	}
	started := time.Now().UTC()
	_ = control.Serve(l, func(req control.Request, _ []*os.File) control.Response {
		switch req.Op {
		case control.OpInfo:
			return control.Response{Info: &control.Info{UUID: os.Getenv("VMMPROC_UUID"), PID: os.Getpid(), State: control.StateRunning, Started: started}}
		case control.OpShutdown:
			return control.Response{After: func() { exit(control.ExitShutdown, 0) }}
		}
		return control.Response{Error: "unknown op " + req.Op}
	})
}

const testUUID = "0a1b2c3d-0000-4000-8000-00000000beef"

// helper starts the helper VMM in mode and returns the driver and spec.
func helper(t *testing.T, mode string) (*Driver, Spec) {
	t.Helper()
	dir, err := os.MkdirTemp("", "vmmproc") // short: the socket path has a limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	t.Setenv("VMMPROC_HELPER", mode)
	t.Setenv("VMMPROC_UUID", testUUID)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &Driver{Binary: exe}, Spec{UUID: testUUID, Dir: dir, Socket: filepath.Join(dir, "s.sock"), Engine: "sim"}
}

func start(t *testing.T, dr *Driver, s Spec) *VMM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := dr.Start(ctx, s)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = v.Kill() })
	return v
}

func exitOfWait(t *testing.T, v *VMM) control.Exit {
	t.Helper()
	select {
	case ex, ok := <-v.Wait():
		if !ok {
			t.Fatal("Wait closed without an exit record")
		}
		return ex
	case <-time.After(30 * time.Second):
		t.Fatal("no exit on Wait")
		return control.Exit{}
	}
}

func TestStartedVMMAnswersAndWaitDeliversItsExitRecord(t *testing.T) {
	dr, s := helper(t, "serve")
	v := start(t, dr, s)
	info, err := v.Inspect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h := v.Handle(); h.PID != info.PID || !h.Started.Equal(info.Started) || info.UUID != testUUID {
		t.Fatalf("handle %+v, info %+v", h, info)
	}
	if err := v.Stop(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if ex := exitOfWait(t, v); ex.Reason != control.ExitShutdown || ex.PID != info.PID {
		t.Fatalf("exit after shutdown: %+v", ex)
	}
	if _, ok := <-v.Wait(); ok {
		t.Fatal("Wait delivered a second exit")
	}
	if _, err := v.Call(context.Background(), control.Request{Op: control.OpInfo}); err == nil {
		t.Fatal("a call to an ended VMM succeeded")
	}
}

func TestKilledVMMEndsVanishedWithItsWaitStatus(t *testing.T) {
	dr, s := helper(t, "serve")
	v := start(t, dr, s)
	if err := v.Kill(); err != nil {
		t.Fatal(err)
	}
	ex := exitOfWait(t, v)
	if ex.Reason != control.ExitVanished || ex.Detail != "signal: killed" || ex.Code != -1 || ex.PID != v.Handle().PID {
		t.Fatalf("exit of a killed VMM: %+v", ex)
	}
}

func TestVMMThatEndsBeforeAnsweringGivesErrEndedAndItsRecord(t *testing.T) {
	dr, s := helper(t, "fail")
	v, err := dr.Start(context.Background(), s)
	if v == nil || !errors.Is(err, ErrEnded) {
		t.Fatalf("start: %v, %v", v, err)
	}
	if ex := exitOfWait(t, v); ex.Reason != control.ExitFailedToStart || ex.Code != 1 {
		t.Fatalf("exit: %+v", ex)
	}
}

func TestReleasedVMMKeepsRunningAndIsRecovered(t *testing.T) {
	dr, s := helper(t, "serve")
	v := start(t, dr, s)
	h := v.Handle()
	v.Release()
	if _, ok := <-v.Wait(); ok {
		t.Fatal("a released VMM's Wait delivered an exit")
	}
	if err := syscall.Kill(h.PID, 0); err != nil {
		t.Fatalf("the released VMM is gone: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := dr.Recover(ctx, Handle{UUID: h.UUID, Dir: h.Dir, Socket: h.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Handle(); got.PID != h.PID || !got.Started.Equal(h.Started) {
		t.Fatalf("recovered handle %+v, started as %+v", got, h)
	}
	_ = r.Kill()
	// Not ended through our own wait here: the recovered VMM's exit has
	// no wait status, but it comes all the same.
	if ex := exitOfWait(t, r); ex.Reason != control.ExitVanished || ex.PID != h.PID {
		t.Fatalf("exit of the recovered VMM: %+v", ex)
	}
}

func TestRecoverRefusesASocketThatAnswersForAnotherDomain(t *testing.T) {
	dr, s := helper(t, "serve")
	v := start(t, dr, s)
	h := v.Handle()
	h.UUID = "0a1b2c3d-0000-4000-8000-00000000f00d"
	_, err := dr.Recover(context.Background(), h)
	if err == nil || err.Error() != "the socket answers for UUID "+testUUID {
		t.Fatalf("recover with another UUID: %v", err)
	}
}

func TestStartRefusesASocketPathTooLong(t *testing.T) {
	dr, s := helper(t, "serve")
	s.Socket = "/" + strings.Repeat("s", maxSocketPath)
	if v, err := dr.Start(context.Background(), s); v != nil || err == nil || !strings.Contains(err.Error(), "longer than 107 bytes") {
		t.Fatalf("start: %v, %v", v, err)
	}
}

func TestExitedIgnoresTheRecordOfAnotherRun(t *testing.T) {
	dir := t.TempDir()
	if err := control.WriteExit(filepath.Join(dir, control.ExitFile), control.Exit{PID: 41, Reason: control.ExitCrashed}); err != nil {
		t.Fatal(err)
	}
	var dr Driver
	if ex := dr.Exited(Handle{Dir: dir, PID: 41}); ex.Reason != control.ExitCrashed {
		t.Fatalf("the record of pid 41: %+v", ex)
	}
	if ex := dr.Exited(Handle{Dir: dir, PID: 42}); ex.Reason != control.ExitVanished || ex.PID != 42 || ex.Code != -1 {
		t.Fatalf("pid 42 with pid 41's record: %+v", ex)
	}
}

func TestReleasedChildIsReapedWhenItEndsAndItsExitIsNotReported(t *testing.T) {
	dr, s := helper(t, "serve")
	v := start(t, dr, s)
	pid := v.Handle().PID
	v.Release()
	if _, ok := <-v.Wait(); ok {
		t.Fatal("a released VMM's Wait delivered an exit")
	}
	// Still our unreaped child: its pid cannot have been reused.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join("/proc", strconv.Itoa(pid), "stat")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(stat)
		if errors.Is(err, os.ErrNotExist) {
			break // reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the released child was never reaped: %s", b)
		}
	}
	if _, ok := <-v.Wait(); ok {
		t.Fatal("the end of a released VMM was reported")
	}
}

// A qemu domain's VMM is told the QEMU program and accelerator the agent
// chose; a workload domain's gets neither flag.
func TestSpecArgsPassTheEngineBinaryAndAccel(t *testing.T) {
	s := Spec{UUID: testUUID, Dir: "/d", Socket: "/s.sock", Engine: "qemu", EngineBinary: "/usr/bin/qemu-system-x86_64", Accel: "tcg", Mode: Incoming}
	args, _ := s.args()
	if got, want := strings.Join(args, " "), "--config /d/vm.cfg --engine qemu --dir /d --socket /s.sock --engine-binary /usr/bin/qemu-system-x86_64 --accel tcg --incoming"; got != want {
		t.Errorf("qemu args %q, want %q", got, want)
	}
	s = Spec{UUID: testUUID, Dir: "/d", Socket: "/s.sock", Engine: "kvm"}
	if args, _ := s.args(); strings.Contains(strings.Join(args, " "), "--engine-binary") || strings.Contains(strings.Join(args, " "), "--accel") {
		t.Errorf("workload args %q name an engine binary or accelerator", args)
	}
}

func TestSpecArgsPassTheLease(t *testing.T) {
	s := Spec{UUID: testUUID, Dir: "/d", Socket: "/s.sock", Engine: "sim", RunUntil: 123456789, Generation: 42, Host: "agent-b"}
	args, _ := s.args()
	if got, want := strings.Join(args, " "), "--config /d/vm.cfg --engine sim --dir /d --socket /s.sock --run-until 123456789 --generation 42 --host agent-b"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	s.RunUntil, s.Generation, s.Host = 0, 0, ""
	if args, _ := s.args(); strings.Contains(strings.Join(args, " "), "--run-until") || strings.Contains(strings.Join(args, " "), "--generation") || strings.Contains(strings.Join(args, " "), "--host") {
		t.Errorf("args without a lease or a pool %q", args)
	}
}
