package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileOwnedCleansUp(t *testing.T) {
	dir := t.TempDir()
	// Renaming a file over a non-empty directory fails after the
	// temporary file was written; it must not be left behind.
	target := filepath.Join(dir, "target")
	os.Mkdir(target, 0o755)
	os.WriteFile(filepath.Join(target, "x"), nil, 0o600)
	if err := WriteFileOwned(target, []byte("data"), 0o600, -1, -1); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("left behind: %v", names)
	}
	ok := filepath.Join(dir, "ok")
	if err := WriteFileOwned(ok, []byte("data"), 0o600, -1, -1); err != nil {
		t.Fatalf("WriteFileOwned: %v", err)
	}
	if got, _ := os.ReadFile(ok); !bytes.Equal(got, []byte("data")) {
		t.Errorf("content %q, want %q", got, "data")
	}
}
