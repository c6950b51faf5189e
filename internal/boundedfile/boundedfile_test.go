package boundedfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A FIFO without a writer is refused at once, naming the file and what it
// is, in both modes and inside a root: a read would block forever.
func TestFIFORefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []Symlinks{Follow, NoFollow} {
		_, err := ReadFile(fifo, 10, s)
		if !errors.Is(err, ErrNotRegular) || err.Error() != fifo+": not a regular file (a FIFO)" {
			t.Errorf("ReadFile(fifo, %v): %v", s, err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := ReadFileIn(root, "fifo", 10); !errors.Is(err, ErrNotRegular) || err.Error() != "fifo: not a regular file (a FIFO)" {
		t.Errorf("ReadFileIn(fifo): %v", err)
	}
	if _, err := ReadFile(dir, 10, Follow); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "(a directory)") {
		t.Errorf("ReadFile(dir): %v", err)
	}
}

func TestSymlink(t *testing.T) {
	dir := t.TempDir()
	target, link := filepath.Join(dir, "target"), filepath.Join(dir, "link")
	write(t, target, "text")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if data, err := ReadFile(link, 10, Follow); err != nil || string(data) != "text" {
		t.Errorf("ReadFile(link, Follow) = %q, %v", data, err)
	}
	if _, err := ReadFile(link, 10, NoFollow); !errors.Is(err, syscall.ELOOP) || !strings.Contains(err.Error(), link) {
		t.Errorf("ReadFile(link, NoFollow): %v, want ELOOP naming %s", err, link)
	}
	// Inside a root, a symlink may not lead out of it.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	os.Symlink(target, filepath.Join(sub, "out"))
	root, err := os.OpenRoot(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := ReadFileIn(root, "out", 10); err == nil {
		t.Error("ReadFileIn followed a symlink out of its root")
	}
}

func TestSizeBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "12345")
	if data, err := ReadFile(path, 5, Follow); err != nil || string(data) != "12345" {
		t.Errorf("a file of exactly the bound: %q, %v", data, err)
	}
	_, err := ReadFile(path, 4, Follow)
	if !errors.Is(err, ErrTooLarge) || err.Error() != path+": larger than 4 bytes" {
		t.Errorf("a file over the bound: %v", err)
	}
	if _, err := ReadFile(path+".missing", 4, Follow); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path+".missing") {
		t.Errorf("a missing file: %v", err)
	}
}

// The file Open returns reads blocking, as a plain os.Open would.
func TestOpenClearsNonblock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "x")
	f, err := Open(path, NoFollow)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := fcntlFlags(f)
	if err != nil {
		t.Fatal(err)
	}
	if fl&syscall.O_NONBLOCK != 0 {
		t.Error("the returned file is still O_NONBLOCK")
	}
}

func fcntlFlags(f *os.File) (int, error) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_GETFL, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}
