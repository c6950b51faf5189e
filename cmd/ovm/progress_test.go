package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Off a terminal ovm migrate prints a plain line each time the figures
// change, then the result: what scripts (and test/) parse.
func TestMigratePlainLines(t *testing.T) {
	f := newFakeAgent(t)
	out, errOut, code := f.ovm(t, nil, "migrate", "-l", "web1", "server2")
	want := "[###############...............]  50% copying    round 2  sent 64 MiB  left 64 MiB  32 MiB/s  dirty 1 MiB/s  downtime~12 ms  throttle 0%\n" +
		"[##############################] 100% completed  round 2  sent 128 MiB  left 0 B  32 MiB/s  dirty 1 MiB/s  downtime~12 ms  throttle 0%\n" +
		"migrated web1 to server2:8002 in 4.25 s, downtime 12.5 ms, 2 rounds, 128 MiB sent\n"
	if code != 0 || errOut != "" || out != want {
		t.Fatalf("exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
	}
}

// On a terminal ovm migrate draws an mpb bar in place, with the bytes,
// the rate and the ETA, and no plain lines.
func TestMigrateBarOnATerminal(t *testing.T) {
	f := newFakeAgent(t)
	g := &globals{tty: func(io.Writer) bool { return true }}
	out, errOut, code := f.ovm(t, g, "migrate", "-l", "web1", "server2")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"completed", "[=====================", "100 %", "128 MiB / 128 MiB", "32 MiB/s", "ETA 0 ms", "\x1b[1A\x1b[J",
		"\nmigrated web1 to server2:8002 in 4.25 s, downtime 12.5 ms, 2 rounds, 128 MiB sent\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the terminal output:\n%q", want, out)
		}
	}
	if strings.Contains(out, "[###") {
		t.Errorf("plain progress lines on a terminal:\n%q", out)
	}
	// A writer that is no real terminal is taken as 100 columns: the
	// live extras would leave the bar too little room.
	if strings.Contains(out, "round 2") {
		t.Errorf("the live extras squeeze the bar at 100 columns:\n%q", out)
	}
}

// A failed migration on a terminal leaves the bar where it stopped and
// says why, exit code 1.
func TestMigrateBarFailure(t *testing.T) {
	f := newFakeAgent(t)
	failed := migrationStatus("failed", 10<<20, 100<<20)
	failed["error"] = "target refused the domain"
	f.setMigration(failed)
	g := &globals{tty: func(io.Writer) bool { return true }}
	out, errOut, code := f.ovm(t, g, "migrate", "-l", "web1", "server2")
	if code != exitFault || !strings.Contains(errOut, "migration m-1 failed: target refused the domain") || !strings.Contains(out, "10 MiB / 110 MiB") {
		t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
	}
}

// With -o json the bar goes to standard error when that is a terminal;
// standard output has the one document.
func TestMigrateJSONBarOnStderr(t *testing.T) {
	f := newFakeAgent(t)
	var errBuf bytes.Buffer
	g := &globals{tty: func(w io.Writer) bool { return w != nil && w == io.Writer(&errBuf) }}
	var out bytes.Buffer
	code := runWith(g, []string{"--url", f.srv.URL, "-o", "json", "migrate", "-l", "web1", "server2"}, strings.NewReader(""), &out, &errBuf)
	var st map[string]any
	if code != 0 || json.Unmarshal(out.Bytes(), &st) != nil || st["phase"] != "completed" {
		t.Fatalf("exit %d, stdout %q", code, out.String())
	}
	if !strings.Contains(errBuf.String(), "ETA") || !strings.Contains(errBuf.String(), "128 MiB / 128 MiB") {
		t.Errorf("no bar on standard error:\n%q", errBuf.String())
	}
}

// The ETA is what is left at the agent's rate; without a rate there is
// none. An offline copy counts its share of the data to copy.
func TestBarDetails(t *testing.T) {
	st := migrationStatus("copying", 64<<20, 64<<20)
	if got, extra := barDetails(st, false); got != "64 MiB / 128 MiB  32 MiB/s  ETA 2.00 s" || extra != "  round 2  dirty 1 MiB/s  throttle 0%" {
		t.Errorf("live: %q %q", got, extra)
	}
	st["throughput"] = 0.0
	if got, _ := barDetails(st, false); !strings.Contains(got, "-  ETA -") {
		t.Errorf("no rate: %q", got)
	}
	off := map[string]any{"offline": true, "phase": "copying", "percent": 25.0, "bytes_total": int64(4 << 30), "bytes_sent": int64(1 << 30), "throughput": float64(100 << 20)}
	if got, extra := barDetails(off, false); got != "1 GiB / 4 GiB  100 MiB/s  ETA 30.72 s" || extra != "" {
		t.Errorf("offline: %q %q", got, extra)
	}
}

// isTerminal: a pty is a terminal, a pipe and /dev/null (a character
// device) are not, nor is a terminal with TERM=dumb. On the pty the whole
// migrate draws the bar without any injected decision, at the pty's width
// (160 columns: room for the live extras).
func TestIsTerminalAndBarOnAPty(t *testing.T) {
	t.Setenv("TERM", "xterm")
	ptm, tty := openPTY(t)
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	defer pw.Close()
	if !isTerminal(tty) || isTerminal(null) || isTerminal(pw) || isTerminal(&bytes.Buffer{}) {
		t.Fatalf("isTerminal: pty %v, /dev/null %v, pipe %v", isTerminal(tty), isTerminal(null), isTerminal(pw))
	}
	t.Setenv("TERM", "dumb")
	if isTerminal(tty) {
		t.Errorf("TERM=dumb is a terminal")
	}
	t.Setenv("TERM", "xterm")
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 160}); err != nil {
		t.Fatal(err)
	}

	read := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, ptm) // until the pty's tty side is closed
		read <- b.String()
	}()
	f := newFakeAgent(t)
	code := run([]string{"--url", f.srv.URL, "migrate", "-l", "web1", "server2"}, strings.NewReader(""), tty, io.Discard)
	tty.Close()
	out := <-read
	if code != 0 || !strings.Contains(out, "ETA") || !strings.Contains(out, "round 2  dirty 1 MiB/s") || !strings.Contains(out, "migrated web1") || strings.Contains(out, "[###") {
		t.Fatalf("exit %d, on the pty:\n%q", code, out)
	}
}

// openPTY opens a new pseudo-terminal (as test/qemu_guest_test.go does):
// its master and its terminal side.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("TIOCSPTLCK: %v", e)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close(); tty.Close() })
	return ptm, tty
}
