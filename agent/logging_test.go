package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/config"
)

// TestLogSinkRotates: with a rotation size the sink renames a full file
// and begins a new one, keeping at most the given number of old files.
func TestLogSinkRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	s := &logSink{}
	if err := s.open(path, rotation{sizeMiB: 1, keep: 2}); err != nil {
		t.Fatal(err)
	}
	defer s.close()
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	for i := 0; i < 5*1024; i++ { // 5 MiB
		if _, err := s.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	// lumberjack removes the old files beyond the kept number in a
	// goroutine of its own after each rotation: wait (bounded) for it.
	var files []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		files, _ = filepath.Glob(filepath.Join(dir, "agent*.log"))
		if len(files) <= 3 || time.Now().After(deadline) {
			break
		}
	}
	if len(files) != 3 {
		t.Fatalf("files after 5 MiB at 1 MiB, 2 kept: %v, want agent.log and 2 rotated", files)
	}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, more than the 1 MiB rotation size", f, st.Size())
		}
	}
}

// TestLogSinkFallback: a sink without a file of its own writes to its
// fallback (the audit lines where the other lines go); given a file it
// writes there only; reopened without one, it falls back again.
func TestLogSinkFallback(t *testing.T) {
	dir := t.TempDir()
	main, audit := &logSink{}, &logSink{}
	audit.fallback = main
	if err := main.open(filepath.Join(dir, "agent.log"), rotation{}); err != nil {
		t.Fatal(err)
	}
	defer main.close()
	audit.Write([]byte("one\n"))
	if err := audit.open(filepath.Join(dir, "audit.log"), rotation{}); err != nil {
		t.Fatal(err)
	}
	audit.Write([]byte("two\n"))
	if err := audit.open("", rotation{}); err != nil {
		t.Fatal(err)
	}
	audit.Write([]byte("three\n"))
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return string(b)
	}
	if got := read("agent.log"); got != "one\nthree\n" {
		t.Errorf("agent.log = %q", got)
	}
	if got := read("audit.log"); got != "two\n" {
		t.Errorf("audit.log = %q", got)
	}
	if err := audit.open(filepath.Join(dir, "no-such-dir-file", "x", "\x00"), rotation{}); err == nil || !strings.Contains(err.Error(), "log file") {
		t.Errorf("a file that cannot be opened: %v", err)
	}
}

// TestRestartOnlyNamesMetrics: a reload that changes [metrics] (whose
// listener opens at start) logs that the change waits for a restart.
func TestRestartOnlyNamesMetrics(t *testing.T) {
	old, cur := config.Default(), config.Default()
	cur.Metrics.Address, cur.Metrics.Auth = "127.0.0.1:9899", false
	got := strings.Join(restartOnly(old, cur), " ")
	if !strings.Contains(got, "metrics.address") || !strings.Contains(got, "metrics.auth") {
		t.Fatalf("restartOnly = %q, want metrics.address and metrics.auth", got)
	}
}
