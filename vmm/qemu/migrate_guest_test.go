package qemu

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/testguest"
	"github.com/ovs-agent/ovs-agent/vmm/qmp"
)

// The migration tests run the project's test guest (test/guest/build.sh:
// a Debian kernel and a busybox initrd with a memory checker) on plain
// QEMU processes of their own, and drive them with the procedures under
// test.

// migGuestDir builds the test guest or finds it in its cache.
func migGuestDir(t *testing.T) string { return testguest.Dir(t) }

// migAccel is the test guest's accelerator: tcg unless
// OVS_TESTGUEST_ACCEL says otherwise (PVM's /dev/kvm makes QEMU crawl).
func migAccel() string { return testguest.Accelerator() }

// migQEMU is one qemu-system-x86_64 of the test guest.
type migQEMU struct {
	cmd    *exec.Cmd
	exited chan struct{}
	stderr bytes.Buffer
	qc     *qmp.Client

	ram string // the guest's RAM file (memory-backend-file share=on)

	mu    sync.Mutex
	lines []string
}

// migRAMBytes is the test guest's RAM: 256 MiB.
const migRAMBytes = 256 << 20

// migBoot starts QEMU on the test guest (memcheck over mib MiB, 256 MiB
// of RAM in a file under /dev/shm that ramcheck can map, as the engine
// keeps it) with extra arguments (-incoming defer -S for a target); the
// cleanup kills it by pid and removes the RAM file.
func migBoot(t *testing.T, mib int, extra ...string) *migQEMU {
	t.Helper()
	dir := migGuestDir(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 is missing (apt-get install qemu-system-x86): %v", err)
	}
	sock := filepath.Join(t.TempDir(), "qmp.sock")
	ram, err := os.CreateTemp("/dev/shm", "ovs-qemu-test-*.ram")
	if err != nil {
		t.Fatal(err)
	}
	ram.Close()
	t.Cleanup(func() { os.Remove(ram.Name()) })
	args := append([]string{"-accel", migAccel(), "-m", "256",
		"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%d,mem-path=%s,share=on", migRAMBytes, ram.Name()),
		"-machine", "pc-i440fx-7.2,memory-backend=ram0",
		"-kernel", filepath.Join(dir, "vmlinux"), "-initrd", filepath.Join(dir, "initrd"),
		"-append", fmt.Sprintf("console=ttyS0 quiet no_timer_check memcheck_mib=%d", mib),
		"-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot",
		"-qmp", "unix:" + sock + ",server=on,wait=off"}, extra...)
	q := &migQEMU{exited: make(chan struct{}), ram: ram.Name()}
	q.cmd = exec.Command(qemu, args...)
	q.cmd.Stderr = &q.stderr
	stdout, err := q.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.cmd.StdinPipe(); err != nil { // a silent serial input
		t.Fatal(err)
	}
	if err := q.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := q.cmd.Process.Pid
	go q.readConsole(stdout)
	go func() { q.cmd.Wait(); close(q.exited) }()
	t.Cleanup(func() {
		select {
		case <-q.exited:
		default:
			syscall.Kill(pid, syscall.SIGKILL)
			<-q.exited
		}
		if q.qc != nil {
			q.qc.Close()
		}
		if t.Failed() {
			t.Logf("QEMU %d console:\n%s\nstderr:\n%s", pid, strings.Join(q.console(), "\n"), q.stderr.String())
		}
	})
	q.dial(t, sock)
	return q
}

func (q *migQEMU) dial(t *testing.T, sock string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a safety net, not a measure
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := qmp.Dial(ctx, sock, qmp.Options{})
		cancel()
		if err == nil {
			q.qc = c
			return
		}
		select {
		case <-q.exited:
			t.Fatalf("QEMU exited (%v) before its QMP socket answered: %s", q.cmd.ProcessState, q.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("QMP socket: %v", err)
		}
	}
}

func (q *migQEMU) readConsole(r interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		q.mu.Lock()
		q.lines = append(q.lines, line)
		q.mu.Unlock()
	}
}

func (q *migQEMU) console() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.lines...)
}

// okLines counts the memory checker's OK lines, failing on a CORRUPT one.
func (q *migQEMU) okLines(t *testing.T) int {
	t.Helper()
	n := 0
	for _, l := range q.console() {
		if strings.Contains(l, "CORRUPT") {
			t.Fatalf("guest console: %s", l)
		}
		if strings.HasPrefix(l, "OK memcheck") {
			n++
		}
	}
	return n
}

// waitOK waits until the console has more than n OK lines.
func (q *migQEMU) waitOK(t *testing.T, n int, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a safety net, not a measure
	for q.okLines(t) <= n {
		select {
		case <-q.exited:
			t.Fatalf("QEMU exited (%v) before %s", q.cmd.ProcessState, what)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 3 minutes", what)
		}
	}
}

// wantRunState checks QEMU's run state.
func (q *migQEMU) wantRunState(t *testing.T, want string) {
	t.Helper()
	st, err := q.qc.QueryStatus(context.Background())
	if err != nil || st.Status != want {
		t.Fatalf("query-status: %+v, %v; want %s", st, err, want)
	}
}

// connPair is a connected pair of unix stream sockets as the VMM holds
// them (net.Conn, non-blocking), and each end's *os.File for QEMU.
func connPair(t *testing.T) (conns [2]net.Conn, files [2]*os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), fmt.Sprintf("socketpair-%d", i))
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		files[i], err = c.(*net.UnixConn).File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); files[i].Close() })
	}
	return conns, files
}
