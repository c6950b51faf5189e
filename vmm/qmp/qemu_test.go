package qmp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// qemuBinary finds Debian's qemu-system-x86_64; the test does not skip
// without it.
func qemuBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 is missing (%v): .ci/run installs it (apt-get install qemu-system-x86)", err)
	}
	return path
}

// qemuVersion is what `qemu-system-x86_64 --version` says.
func qemuVersion(t *testing.T, qemu string) string {
	t.Helper()
	out, err := exec.Command(qemu, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", qemu, err)
	}
	m := regexp.MustCompile(`version (\d+\.\d+\.\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version said %q", qemu, out)
	}
	return string(m[1])
}

// startQEMU runs a QEMU with no machine and no guest and connects to its
// QMP socket. exited is closed once the process is reaped; cleanup kills
// it if the test did not end it.
func startQEMU(t *testing.T, qemu string, extra ...string) (c *Client, cmd *exec.Cmd, exited chan struct{}) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	var stderr bytes.Buffer
	cmd = exec.Command(qemu, append([]string{"-machine", "none", "-nodefaults", "-nographic",
		"-qmp", "unix:" + sock + ",server=on,wait=off"}, extra...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a safety net, not a measure
	defer cancel()
	for {
		c, err := Dial(ctx, sock, Options{})
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c, cmd, exited
		}
		select { // the socket appears once QEMU has parsed its options
		case <-exited:
			t.Fatalf("qemu exited before its QMP socket answered (%v): %s", cmd.ProcessState, stderr.String())
		case <-ctx.Done():
			t.Fatalf("qemu's QMP socket: %v", err)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func TestRealQEMU(t *testing.T) {
	qemu := qemuBinary(t)
	want := qemuVersion(t, qemu)
	c, cmd, exited := startQEMU(t, qemu)
	ctx := context.Background()
	if got := c.Greeting().Version.String(); got != want {
		t.Errorf("greeting version %s, --version says %s", got, want)
	}
	wantStatus(t, c, StatusRunning, true)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, StatusPaused, false)
	if err := c.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, c, StatusRunning, true)
	wantEvents(t, c, "STOP", "RESUME")
	passFD(t, c, cmd.Process.Pid)
	migrationSettings(t, c)

	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	<-exited
	if !cmd.ProcessState.Success() {
		t.Errorf("qemu after quit: %v", cmd.ProcessState)
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrDisconnected) {
		t.Errorf("client after quit: %v, want ErrDisconnected", c.Err())
	}
	wantEvents(t, c, "SHUTDOWN")
}

func wantStatus(t *testing.T, c *Client, status string, running bool) {
	t.Helper()
	s, err := c.QueryStatus(context.Background())
	if err != nil || s.Status != status || s.Running != running {
		t.Fatalf("query-status: %+v, %v; want %s (running %v)", s, err, status, running)
	}
}

// wantEvents reads events until it has seen names in this order.
func wantEvents(t *testing.T, c *Client, names ...string) {
	t.Helper()
next:
	for _, n := range names {
		for e := range c.Events() {
			if e.Name == n {
				continue next
			}
		}
		t.Fatalf("events ended before %s", n)
	}
}

// passFD sends a file by getfd and finds it among QEMU's descriptors, then
// closefd takes it away again.
func passFD(t *testing.T, c *Client, pid int) {
	ctx := context.Background()
	name := filepath.Join(t.TempDir(), "passed")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	err = c.SendFD(ctx, "passed", int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n := openedBy(t, pid, name); n != 1 {
		t.Errorf("qemu holds %d descriptors of %s after getfd, want 1", n, name)
	}
	if err := c.CloseFD(ctx, "passed"); err != nil {
		t.Fatal(err)
	}
	if n := openedBy(t, pid, name); n != 0 {
		t.Errorf("qemu holds %d descriptors of %s after closefd, want 0", n, name)
	}
	var qe *Error
	if err := c.CloseFD(ctx, "passed"); !errors.As(err, &qe) || qe.Class != "GenericError" {
		t.Errorf("second closefd: %v, want a GenericError", err)
	}
}

// openedBy counts pid's descriptors open on path.
func openedBy(t *testing.T, pid int, path string) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

// migrationSettings checks the JSON names of the migration helpers
// against QEMU's schema: a wrong name is a GenericError.
func migrationSettings(t *testing.T, c *Client) {
	ctx := context.Background()
	bw, downtime := int64(64<<20), int64(300)
	if err := c.MigrateSetParameters(ctx, MigrationParameters{MaxBandwidth: &bw, DowntimeLimit: &downtime,
		CPUThrottleInitial: ptr(int64(20)), CPUThrottleIncrement: ptr(int64(10)),
		MaxCPUThrottle: ptr(int64(90)), AnnounceRounds: ptr(int64(5))}); err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := c.Execute(ctx, "query-migrate-parameters", nil, &p); err != nil {
		t.Fatal(err)
	}
	if p["max-bandwidth"] != float64(bw) || p["downtime-limit"] != float64(downtime) {
		t.Errorf("parameters after set: %v", p)
	}
	if err := c.MigrateSetCapabilities(ctx, map[string]bool{"auto-converge": true, "events": true}); err != nil {
		t.Fatal(err)
	}
	m, err := c.QueryMigrate(ctx)
	if err != nil || m.Status != "" || m.RAM != nil {
		t.Errorf("query-migrate before any migration: %+v, %v", m, err)
	}
	if err := c.MigrateCancel(ctx); err != nil {
		t.Errorf("migrate_cancel with no migration: %v", err)
	}
	var qe *Error
	if err := c.MigrateIncoming(ctx, "fd:nosuch"); !errors.As(err, &qe) || !strings.Contains(qe.Desc, "-incoming") {
		t.Errorf("migrate-incoming without -incoming defer: %v", err)
	}
}

// A migration between two QEMUs over a socketpair passed to both by
// getfd, as the engine will do with the relocation connection.
func TestRealQEMUMigrationOverPassedFD(t *testing.T) {
	qemu := qemuBinary(t)
	src, _, srcExited := startQEMU(t, qemu)
	dst, _, dstExited := startQEMU(t, qemu, "-incoming", "defer", "-S")
	ctx := context.Background()
	wantStatus(t, dst, StatusInMigrate, false)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []*Client{src, dst} {
		err := c.SendFD(ctx, "relocation", fds[i])
		unix.Close(fds[i]) // QEMU has its own copy
		if err != nil {
			t.Fatal(err)
		}
		if err := c.MigrateSetCapabilities(ctx, map[string]bool{"events": true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.MigrateIncoming(ctx, "fd:relocation"); err != nil {
		t.Fatal(err)
	}
	if err := src.Migrate(ctx, "fd:relocation"); err != nil {
		t.Fatal(err)
	}
	wantMigration(t, src, MigrationCompleted)
	wantMigration(t, dst, MigrationCompleted)
	if m, err := src.QueryMigrate(ctx); err != nil || m.Status != MigrationCompleted || m.RAM == nil {
		t.Errorf("source query-migrate: %+v, %v", m, err)
	}
	// QEMU 7.2 sets the source's postmigrate just after it says completed.
	if s, err := src.QueryStatus(ctx); err != nil || s.Running ||
		(s.Status != StatusPostMigrate && s.Status != StatusFinishMigrate) {
		t.Errorf("source after the migration: %+v, %v; want postmigrate", s, err)
	}
	wantStatus(t, dst, StatusPaused, false)
	if err := dst.Cont(ctx); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, dst, StatusRunning, true)
	for _, c := range []*Client{src, dst} {
		if err := c.Quit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	<-srcExited
	<-dstExited
}

// wantMigration reads MIGRATION events until one says status.
func wantMigration(t *testing.T, c *Client, status string) {
	t.Helper()
	for e := range c.Events() {
		var d struct{ Status string }
		if e.Name != "MIGRATION" || json.Unmarshal(e.Data, &d) != nil {
			continue
		}
		switch d.Status {
		case status:
			return
		case MigrationFailed, MigrationCancelled:
			t.Fatalf("migration %s, want %s", d.Status, status)
		}
	}
	t.Fatalf("events ended before migration %s", status)
}

func ptr[T any](v T) *T { return &v }
