// Package hosttest is for tests only: it gives a test the host's huge
// pages it needs (raising the 2 MiB pool, allowing shmem THP) and puts the
// operator's settings back by t.Cleanup; the tests of different binaries
// that change them take turns (a flock). Nothing but tests may import it:
// outside a test the host's settings are the operator's, never changed
// behind their back.
package hosttest

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	hugeDir = "/sys/kernel/mm/hugepages/hugepages-2048kB"
	shmem   = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
)

// mu serialises the changes of one test binary's tests.
var mu sync.Mutex

// The tests of several binaries (go test runs packages at once) must not
// interleave their changes, or one puts back what another set: the first
// test of a binary to change the host takes an exclusive flock on
// lockPath, the last one's cleanup lets it go.
const lockPath = "/run/lock/ovs-agent-hosttest.lock"

var (
	hostMu   sync.Mutex
	users    int
	lockFile *os.File
)

// hold takes the host for t (blocking while another binary's test has
// it) until t and every other holder of this binary have ended. Its
// cleanup is registered before the caller's restore, so it runs after.
func hold(t testing.TB) {
	t.Helper()
	hostMu.Lock()
	defer hostMu.Unlock()
	if users == 0 {
		if err := os.MkdirAll("/run/lock", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("flock %s: %v", lockPath, err)
		}
		lockFile = f
	}
	users++
	t.Cleanup(func() {
		hostMu.Lock()
		defer hostMu.Unlock()
		if users--; users == 0 {
			lockFile.Close() // the flock goes with it
			lockFile = nil
		}
	})
}

func readUint(t testing.TB, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func write(t testing.TB, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		t.Fatalf("write %s to %s: %v", v, path, err)
	}
}

// ReserveHugePages makes pages more free 2 MiB huge pages than there are
// now (nr_hugepages raised by that much), and lowers nr_hugepages by as
// much when the test ends, back to the previous value. It fails the test
// when the kernel cannot find the memory.
func ReserveHugePages(t testing.TB, pages uint64) {
	t.Helper()
	hold(t)
	mu.Lock()
	defer mu.Unlock()
	nrPath := hugeDir + "/nr_hugepages"
	before := readUint(t, nrPath)
	want := before + pages
	write(t, nrPath, strconv.FormatUint(want, 10))
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		now := readUint(t, nrPath)
		back := now - min(now, pages)
		if err := os.WriteFile(nrPath, []byte(strconv.FormatUint(back, 10)), 0o644); err != nil {
			t.Errorf("restore %s to %d: %v", nrPath, back, err)
		}
	})
	if got := readUint(t, nrPath); got < want {
		t.Fatalf("nr_hugepages is %d after asking for %d: the kernel found no memory for %d huge pages", got, want, pages)
	}
}

// ShmemTHP sets shmem_enabled to mode (advise, never, ...) for the test
// and puts the operator's choice back at its end.
func ShmemTHP(t testing.TB, mode string) {
	t.Helper()
	hold(t)
	mu.Lock()
	defer mu.Unlock()
	b, err := os.ReadFile(shmem)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	before := s
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			before = s[i+1 : i+j]
		}
	}
	write(t, shmem, mode)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if err := os.WriteFile(shmem, []byte(before), 0o644); err != nil {
			t.Errorf("restore %s to %s: %v", shmem, before, err)
		}
	})
}
