package sparsecopy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A sparse file with data at the start and the end copies to the same
// bytes in about as few blocks.
func TestCopyKeepsHoles(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 20
	head, tail := bytes.Repeat([]byte("head"), 1024), bytes.Repeat([]byte("tail"), 1024)
	src, err := os.Create(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := src.WriteAt(tail, size-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := Copy(context.Background(), dst, src, size); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src.Name())
	got, _ := os.ReadFile(dst.Name())
	if !bytes.Equal(got, want) {
		t.Fatal("the copy's bytes differ from the source's")
	}
	fi, _ := dst.Stat()
	if st := fi.Sys().(*syscall.Stat_t); fi.Size() != size || st.Blocks*512 > 1<<20 {
		t.Errorf("copy is %d bytes in %d blocks: not sparse", fi.Size(), st.Blocks)
	}
}

// A cancelled context stops the copy.
func TestCopyCancelled(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.Create(filepath.Join(dir, "src"))
	defer src.Close()
	src.WriteAt([]byte("data"), 0)
	dst, _ := os.Create(filepath.Join(dir, "dst"))
	defer dst.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Copy(ctx, dst, src, 4); err != context.Canceled {
		t.Errorf("Copy with a cancelled context: %v, want context.Canceled", err)
	}
}
