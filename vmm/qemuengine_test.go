package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/testguest"
	"github.com/ovs-agent/ovs-agent/vmm/control"
	"github.com/ovs-agent/ovs-agent/vmm/tap"
)

// The qemu engine's own tests: its refusals before anything runs, and the
// test guest (test/guest/build.sh) booted, migrated between two engines
// over a socketpair and shut down, with real QEMU processes. The runtime
// and the agent around it are tested end to end in test/.

func qemuGuestDir(t *testing.T) string { return testguest.Dir(t) }

func qemuTestAccel() string { return testguest.Accelerator() }

// lines is a console that keeps what the guest printed.
type lines struct {
	mu sync.Mutex
	b  []string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b = append(l.b, strings.TrimRight(string(p), "\r\n"))
	l.mu.Unlock()
	return len(p), nil
}

func (l *lines) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.b {
		if strings.Contains(s, "CORRUPT") {
			n = -1 << 30
		}
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// settled is the count of prefix lines once it has not changed for
// 300 ms (bounded at 10 s): what a paused guest printed before its pause
// may still be on its way through the console.
func (l *lines) settled(t *testing.T, prefix string) int {
	t.Helper()
	n := l.count(prefix)
	for i, still := 0, 0; still < 3; i++ {
		if i == 100 {
			t.Fatalf("%q lines still come 10 s after the pause:\n%s", prefix, l)
		}
		time.Sleep(100 * time.Millisecond)
		if c := l.count(prefix); c != n {
			n, still = c, 0
		} else {
			still++
		}
	}
	return n
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.b, "\n")
}

// waitLines waits until the console has more than n lines starting with
// prefix, failing on a CORRUPT line or after a generous bound.
func (l *lines) waitLines(t *testing.T, prefix string, n int, done <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a safety net, not a measure
	for {
		c := l.count(prefix)
		if c < 0 {
			t.Fatalf("CORRUPT line on the console:\n%s", l)
		}
		if c > n {
			return
		}
		select {
		case <-done:
			t.Fatalf("the machine ended before %d %q lines:\n%s", n+1, prefix, l)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d %q lines within 3 minutes:\n%s", n+1, prefix, l)
		}
	}
}

// guestEngine makes a qemu engine of the test guest from a vm.cfg as the
// guide writes it.
func guestEngine(t *testing.T, name string, more ...string) (*qemuEngine, *lines) {
	t.Helper()
	dir := qemuGuestDir(t)
	text := fmt.Sprintf("name = '%s'\nuuid = '6f0a3c52-1d7e-4b8a-9c3e-%012x'\nmemory = 256\nvcpus = 1\nkernel = '%s'\nramdisk = '%s'\nextra = 'console=ttyS0 quiet no_timer_check memcheck_mib=32'\n%s",
		name, time.Now().UnixNano()&0xffffffffffff, filepath.Join(dir, "vmlinux"), filepath.Join(dir, "initrd"), strings.Join(more, "\n"))
	cfg, err := vmcfg.Parse("vm.cfg", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	con := &lines{}
	eng, err := newQEMUEngine(EngineConfig{Name: name, UUID: cfg.UUID, MemoryBytes: uint64(cfg.Memory) << 20, VCPUs: cfg.VCPUs,
		Console: con, Config: cfg, Dir: t.TempDir(), Accel: qemuTestAccel(),
		// Not auto: tests of other binaries reserve huge pages for their
		// own guests, which auto would take.
		MemoryBacking: "4k"})
	if err != nil {
		t.Fatal(err)
	}
	e := eng.(*qemuEngine)
	t.Cleanup(func() {
		e.Stop()
		e.Close()
		if t.Failed() {
			t.Logf("console of %s:\n%s", name, con)
		}
	})
	return e, con
}

func TestQEMUEngineRefusesBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	workload, _ := vmcfg.Parse("vm.cfg", []byte("name = 'w'\nmemory = 64\n"))
	osCfg, _ := vmcfg.Parse("vm.cfg", []byte("name = 'k'\nmemory = 64\nkernel = '/nonexistent/vmlinuz'\n"))
	cases := []struct {
		name string
		c    EngineConfig
		want string
	}{
		{"no vm.cfg", EngineConfig{Name: "x", MemoryBytes: 64 << 20}, "has no vm.cfg"},
		{"workload guest", EngineConfig{Name: "w", MemoryBytes: 64 << 20, Config: workload}, "names no operating system"},
		{"bad accel", EngineConfig{Name: "k", MemoryBytes: 64 << 20, Config: osCfg, Accel: "hax"}, "want kvm or tcg"},
		{"missing binary", EngineConfig{Name: "k", MemoryBytes: 64 << 20, Config: osCfg, Accel: "tcg", Binary: filepath.Join(dir, "no-qemu")}, "no-qemu"},
	}
	for _, c := range cases {
		if _, err := newQEMUEngine(c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// A missing kernel is refused at boot, naming the key, with nothing
	// left running.
	e, err := newQEMUEngine(EngineConfig{Name: "k", UUID: "0f0a3c52-1d7e-4b8a-9c3e-000000000001", MemoryBytes: 64 << 20, Config: osCfg, Accel: "tcg", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Boot(); err == nil || !strings.Contains(err.Error(), "kernel /nonexistent/vmlinuz") || !strings.Contains(err.Error(), "fix the vm.cfg's kernel") {
		t.Fatalf("boot of a missing kernel: %v", err)
	}
	if m := e.(*qemuEngine).machine(); m != nil {
		t.Fatalf("a machine was left after a failed boot: pid %d", m.PID())
	}
}

func TestQEMUEngineOptions(t *testing.T) {
	e := &qemuEngine{}
	if o, err := e.CheckSend(SendOptions{Compress: "auto"}); err != nil || o.Compress != "none" {
		t.Errorf("auto: %+v %v", o, err)
	}
	if _, err := e.CheckSend(SendOptions{Compress: "zstd"}); err == nil || !strings.Contains(err.Error(), "none or auto") {
		t.Errorf("zstd: %v", err)
	}
	if err := e.SetThrottle(50); !errors.Is(err, ErrUnsupported) {
		t.Errorf("throttle: %v", err)
	}
	a, b := tap.MAC("u-1", 0), tap.MAC("u-1", 1)
	if a == b || a != tap.MAC("u-1", 0) || !strings.HasPrefix(a, "00:16:3e:") || len(a) != 17 {
		t.Errorf("MACs %s %s", a, b)
	}
	for m, want := range map[string]string{"": "virtio-net-pci", "e1000": "e1000", "rtl8139": "rtl8139"} {
		if got, err := nicModel(m); err != nil || got != want {
			t.Errorf("model %q: %s %v", m, got, err)
		}
	}
	if _, err := nicModel("ne2k_isa"); err == nil || !strings.Contains(err.Error(), "virtio-net, e1000 and rtl8139") {
		t.Errorf("ne2k_isa: %v", err)
	}
}

// TestQEMUEngineLifecycle boots the test guest, pauses and resumes it,
// migrates it live to a second engine over a socketpair (the RAM check
// mending what QEMU left different), starts it there, and shuts it down
// with the ACPI button.
func TestQEMUEngineLifecycle(t *testing.T) {
	src, srcCon := guestEngine(t, "lifecycle")
	if err := src.Boot(); err != nil {
		t.Fatal(err)
	}
	srcCon.waitLines(t, "OK memcheck", 1, src.Done())
	f := src.Facts()
	if f.Accel != qemuTestAccel() || !strings.HasPrefix(f.Version, "QEMU ") || f.MaxMemoryBytes != 256<<20 {
		t.Errorf("facts %+v", f)
	}
	if st := src.Stats(); st.CPUTime <= 0 {
		t.Errorf("stats %+v: no CPU time", st)
	}
	if r, err := src.ResidentBytes(); err != nil || r == 0 || r > 256<<20 {
		t.Errorf("resident %d %v", r, err)
	}

	if err := src.Pause(); err != nil {
		t.Fatal(err)
	}
	n := srcCon.settled(t, "OK memcheck")
	time.Sleep(1500 * time.Millisecond) // the checker prints each second
	if srcCon.count("OK memcheck") != n {
		t.Errorf("OK lines went on while paused")
	}
	if err := src.Resume(); err != nil {
		t.Fatal(err)
	}
	srcCon.waitLines(t, "OK memcheck", n, src.Done())

	// The migration: the target engine has the same vm.cfg.
	dst, dstCon := guestEngine(t, "lifecycle")
	dst.cfg.UUID, dst.vm.UUID = src.cfg.UUID, src.cfg.UUID
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		conns[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer conns[i].Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type recv struct {
		r   Received
		err error
	}
	got := make(chan recv, 1)
	go func() {
		r, err := dst.Receive(ctx, conns[1], nil, ReceiveOptions{})
		got <- recv{r, err}
	}()
	var phases []string
	sent, err := src.Send(ctx, conns[:1], SendOptions{Live: true}, func(p Progress) { phases = append(phases, string(p.Phase)) })
	r := <-got
	if err != nil || r.err != nil {
		t.Fatalf("send %v, receive %v", err, r.err)
	}
	if sent.ID != r.r.ID || sent.Totals != r.r.Totals || sent.ID.IsZero() {
		t.Fatalf("the two sides name the image apart: sent %v %+v, received %v %+v", sent.ID, sent.Totals, r.r.ID, r.r.Totals)
	}
	if len(phases) == 0 {
		t.Errorf("no progress reported")
	}
	var st control.MigrationStatus
	sent.Figures(&st)
	t.Logf("sent in %v, downtime %v (RAM check %v, %d pages mended), %d rounds, %d bytes", st.Total, st.Downtime, st.RAMCheck, st.MendedPages, st.Round, st.BytesSent)
	if st.BytesSent == 0 || st.Round == 0 || st.RAMCheck == 0 {
		t.Errorf("final figures %+v", st)
	}
	before := dstCon.count("OK memcheck")
	if err := dst.Start(); err != nil {
		t.Fatal(err)
	}
	src.Stop()
	dstCon.waitLines(t, "OK memcheck", before+1, dst.Done())

	// Shutdown: the ACPI button; the guest powers itself off.
	if err := dst.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dst.Done():
	case <-time.After(2 * time.Minute): // a safety net
		t.Fatal("the guest did not power off within 2 minutes of the button")
	}
	if err := dst.Err(); err != nil {
		t.Fatalf("after a poweroff: %v", err)
	}
}

// TestQEMUEngineSharedDisk: a disk given w! in two domains' vm.cfg is
// opened by both QEMUs at once; given w, QEMU's lock refuses the second
// domain, with QEMU's reason.
func TestQEMUEngineSharedDisk(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "shared.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"w!", "w"} {
		var es [2]*qemuEngine
		for i := range es {
			es[i], _ = guestEngine(t, fmt.Sprintf("shared%d", i), fmt.Sprintf("disk = ['file:%s,xvdb,%s']", disk, mode))
		}
		if err := es[0].Boot(); err != nil {
			t.Fatalf("mode %s: the first domain: %v", mode, err)
		}
		err := es[1].Boot()
		switch {
		case mode == "w!" && err != nil:
			t.Errorf("mode w!: the second domain did not start: %v", err)
		case mode == "w" && (err == nil || !strings.Contains(err.Error(), "Is another process using the image")):
			t.Errorf("mode w: the second domain: %v, want QEMU's refusal to share the image", err)
		}
		for _, e := range es {
			if err := e.Stop(); err != nil {
				t.Errorf("mode %s: stop: %v", mode, err)
			}
		}
	}
}

// A pool domain's guest is told its name, its generation and the pool
// member name of the host that runs it (fw_cfg); with no member name
// given, the system's host name; a domain outside a pool is told
// nothing.
func TestQEMUEngineTellsPoolGuestWhoRunsIt(t *testing.T) {
	e, _ := guestEngine(t, "told")
	fw := func() map[string]string {
		t.Helper()
		s, err := e.spec(launchAs{tapID: e.cfg.UUID})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range s.FwCfg {
			out[f.Name] = f.Value
		}
		return out
	}
	if got := fw(); len(got) != 0 {
		t.Errorf("fw_cfg of a domain outside a pool: %v, want none", got)
	}
	e.cfg.Generation, e.cfg.Host = 42, "agent-b"
	got := fw()
	if got["opt/org.ovs-agent/host"] != "agent-b" || got["opt/org.ovs-agent/domain"] != "told" {
		t.Errorf("fw_cfg of a pool domain on member agent-b: %v", got)
	}
	e.cfg.Host = ""
	if h, err := os.Hostname(); err == nil && fw()["opt/org.ovs-agent/host"] != h {
		t.Errorf("fw_cfg host without a member name: %q, want the system's %q", fw()["opt/org.ovs-agent/host"], h)
	}
}
