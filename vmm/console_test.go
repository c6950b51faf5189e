package vmm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConsoleRing(t *testing.T) {
	c, err := NewConsole(16, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	start, data, next := c.Read(0, 0)
	if start != 0 || string(data) != "hello\n" || next != 6 {
		t.Fatalf("Read = %d %q %d", start, data, next)
	}
	c.Write([]byte("0123456789abcdef-tail\n")) // longer than the ring
	start, data, next = c.Read(0, 0)
	if next != 28 || len(data) != 16 || !strings.HasSuffix(string(data), "-tail\n") || start != 12 {
		t.Fatalf("after overflow Read(0) = %d %q %d", start, data, next)
	}
	// Reading from next gives nothing new; max limits the size.
	if _, d, n := c.Read(next, 0); len(d) != 0 || n != next {
		t.Fatalf("Read(next) = %q %d", d, n)
	}
	if _, d, _ := c.Read(20, 3); string(d) != string(data[8:11]) {
		t.Fatalf("Read(20, 3) = %q, want %q", d, data[8:11])
	}
}

func TestConsoleFileBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	c, err := NewConsole(1024, p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		fmt.Fprintf(c, "line %03d\n", i)
	}
	c.Close()
	data, _ := os.ReadFile(p)
	if len(data) > 1000 || !strings.HasSuffix(string(data), "line 199\n") {
		t.Fatalf("console.log is %d bytes, ends %q", len(data), data[max(0, len(data)-20):])
	}
}

// TestConsoleTail: a negative offset reads the latest output, as `ovm
// console` (without -f) shows it, not the oldest bytes the ring holds.
func TestConsoleTail(t *testing.T) {
	c, err := NewConsole(64, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		fmt.Fprintf(c, "line %d\n", i)
	}
	start, data, next := c.Read(-1, 7)
	if string(data) != "line 9\n" || next != c.End() || start != next-7 {
		t.Fatalf("Read(-1, 7) = %d %q %d, want the last line", start, data, next)
	}
	// Asking for more than the ring holds gives what it holds.
	if _, d, _ := c.Read(-1, 1<<20); len(d) != 64 || !strings.HasSuffix(string(d), "line 9\n") {
		t.Fatalf("Read(-1, 1MiB) = %q", d)
	}
}
