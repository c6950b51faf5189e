package fileaccess

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func setup(t *testing.T) (root, outside string) {
	d := t.TempDir()
	root = filepath.Join(d, "repo")
	outside = filepath.Join(d, "outside")
	for _, p := range []string{root, outside} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func TestResolveEscapes(t *testing.T) {
	root, outside := setup(t)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "link"))
	os.Symlink(filepath.Join(outside, "nope"), filepath.Join(root, "dangling"))
	roots := []string{root}
	for _, p := range []string{
		filepath.Join(outside, "secret"),
		filepath.Join(root, "link"),
		filepath.Join(root, "..", "outside", "secret"),
		filepath.Join(root, "dangling"),
	} {
		if _, err := Resolve(roots, p); !errors.Is(err, ErrOutside) {
			t.Errorf("%s: got %v, want ErrOutside", p, err)
		}
	}
	if _, err := Resolve([]string{"/"}, "/etc/passwd"); !errors.Is(err, ErrOutside) {
		t.Errorf("root / accepted: %v", err)
	}
	got, err := Resolve(roots, filepath.Join(root, "new.img"))
	if err != nil || got != filepath.Join(root, "new.img") {
		t.Errorf("new file in root: %q %v", got, err)
	}
}

func TestOpenRegularRefusesWithoutBlocking(t *testing.T) {
	root, _ := setup(t)
	fifo := filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(root, "dir"), 0o755)
	for _, p := range []string{fifo, filepath.Join(root, "dir")} {
		if f, err := OpenRegular([]string{root}, p); !errors.Is(err, ErrNotRegular) {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s: got %v, want ErrNotRegular", p, err)
		}
		if _, _, err := CheckRegular([]string{root}, p); !errors.Is(err, ErrNotRegular) {
			t.Errorf("check %s: got %v", p, err)
		}
	}
	// A device where a file is expected, reached through a root.
	os.Symlink("/dev/null", filepath.Join(root, "null"))
	if _, err := OpenRegular([]string{root, "/dev"}, filepath.Join(root, "null")); !errors.Is(err, ErrNotRegular) {
		t.Errorf("device: got %v", err)
	}
	good := filepath.Join(root, "vm.cfg")
	os.WriteFile(good, []byte("name='a'\n"), 0o644)
	f, err := OpenRegular([]string{root}, good)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func TestRootsReadPerCall(t *testing.T) {
	root, outside := setup(t)
	p := filepath.Join(outside, "secret")
	if _, err := Resolve([]string{root}, p); !errors.Is(err, ErrOutside) {
		t.Fatalf("got %v", err)
	}
	if _, err := Resolve([]string{root, outside}, p); err != nil {
		t.Fatalf("after adding the dir: %v", err)
	}
	if _, err := Resolve([]string{root}, p); !errors.Is(err, ErrOutside) {
		t.Fatalf("after removing the dir: %v", err)
	}
}
