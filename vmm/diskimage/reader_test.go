package diskimage

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// patternFile writes a raw image of size bytes with pseudo-random data in
// some 64 KiB stretches, compressible text in others, and holes between.
func patternFile(t *testing.T, path string, size int64, seed int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(seed))
	for off := int64(0); off < size; off += 64 << 10 {
		buf := make([]byte, 64<<10)
		switch rnd.Intn(3) {
		case 0:
			continue // a hole
		case 1:
			rnd.Read(buf)
		default:
			for i := 0; i < len(buf); i += 16 {
				copy(buf[i:], fmt.Sprintf("%015x\n", off+int64(i)))
			}
		}
		if _, err := f.WriteAt(buf[:rnd.Intn(len(buf))+1], off+int64(rnd.Intn(512))); err != nil {
			t.Fatal(err)
		}
	}
}

// qemuRaw is what qemu-img convert -O raw makes of image (the reference).
func qemuRaw(t *testing.T, image string, args ...string) []byte {
	t.Helper()
	out := image + ".ref"
	qemuImg(t, append(append([]string{"convert"}, args...), "-O", "raw", image, out)...)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compareReader reads the whole image through Open in odd-sized pieces and
// compares it with want.
func compareReader(t *testing.T, r *Reader, want []byte) {
	t.Helper()
	if r.Size() != int64(len(want)) {
		t.Fatalf("Size %d, qemu-img says %d", r.Size(), len(want))
	}
	got := make([]byte, len(want))
	for off, step := 0, 777; off < len(got); off, step = off+step, step*7%100003+1 {
		end := min(off+step, len(got))
		if n, err := r.ReadAt(got[off:end], int64(off)); n != end-off || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt %d: %d bytes, %v", off, n, err)
		}
	}
	if i := firstDiff(got, want); i >= 0 {
		t.Fatalf("byte %d differs from qemu-img convert -O raw", i)
	}
	if n, err := r.ReadAt(make([]byte, 10), int64(len(want))-4); n != 4 || err != io.EOF {
		t.Fatalf("read across the end: %d, %v; want 4, EOF", n, err)
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func TestReaderMatchesQemuImg(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	patternFile(t, src, 6<<20+12345, 1)
	for _, c := range []struct{ name, opts string }{
		{"raw", ""},
		{"v2-64k", "compat=0.10"},
		{"v3-512", "compat=1.1,cluster_size=512"},
		{"v3-2M", "compat=1.1,cluster_size=2M"},
		{"compressed-zlib", "compression_type=zlib"},
		{"compressed-zstd", "compression_type=zstd"},
		{"compressed-4k", "cluster_size=4096"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(dir, c.name+".img")
			args := []string{"convert", "-f", "raw", "-O", "qcow2"}
			if c.name == "raw" {
				args[4] = "raw"
			}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			if bytes.HasPrefix([]byte(c.name), []byte("compressed")) {
				args = append(args, "-c")
			}
			qemuImg(t, append(args, src, img)...)
			want := qemuRaw(t, img)
			r, err := Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			compareReader(t, r, want)
		})
	}
}

// TestReaderBackingChain: a qcow2 over a qcow2 over a raw, with writes in
// the top (qemu-io) and zeroed clusters; unallocated clusters come from below.
func TestReaderBackingChain(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Fatalf("qemu-io not installed (apt-get install qemu-utils): %v", err)
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	patternFile(t, base, 4<<20, 2)
	mid := filepath.Join(dir, "mid.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.raw", mid, "5M")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-F", "qcow2", "-b", mid, top)
	for _, w := range [][]string{
		{"-f", "qcow2", "-c", "write -P 0x5a 100k 300k", mid},
		{"-f", "qcow2", "-c", "write -P 0xa5 1M 70k", top},
		{"-f", "qcow2", "-c", "write -z 2M 64k", top},
		{"-f", "qcow2", "-c", "write -P 0x11 4200k 100k", top},
	} {
		if out, err := exec.Command("qemu-io", w...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-io %v: %v\n%s", w, err, out)
		}
	}
	if _, err := Open(top); err == nil {
		t.Fatal("Open accepted a backing file without AllowBacking")
	}
	want := qemuRaw(t, top)
	r, err := OpenWith(top, Options{AllowBacking: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	compareReader(t, r, want)
}

// TestReaderCorruptTables: an L2 pointer past the end of the file is an
// error on read, not a panic or silent zeros.
func TestReaderCorruptTables(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	patternFile(t, src, 1<<20, 3)
	img := filepath.Join(dir, "d.qcow2")
	qemuImg(t, "convert", "-f", "raw", "-O", "qcow2", src, img)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	l1 := be.Uint64(b[40:])
	be.PutUint64(b[l1:], 1<<63|1<<40) // L2 table far past the end
	if err := os.WriteFile(img, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.ReadAt(make([]byte, 4096), 0)
	wantRefused(t, err, "beyond the end of the file")
}

// TestBlockDevice: a phy: disk is sized by BLKGETSIZE64 and read as raw
// (a loop device over a file, detached in the cleanup).
func TestBlockDevice(t *testing.T) {
	losetup, err := exec.LookPath("losetup")
	if err != nil {
		t.Fatalf("losetup not installed (util-linux/mount): %v", err)
	}
	src := filepath.Join(t.TempDir(), "dev.raw")
	patternFile(t, src, 3<<20, 4)
	out, err := exec.Command(losetup, "--find", "--show", "--read-only", src).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := string(bytes.TrimSpace(out))
	t.Cleanup(func() { exec.Command(losetup, "--detach", dev).Run() })
	info, err := InspectFor(dev, "phy:")
	if err != nil {
		t.Fatal(err)
	}
	if !info.BlockDevice || info.Format != FormatRaw || info.VirtualSize != 3<<20 {
		t.Fatalf("%s: %+v", dev, info)
	}
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	compareReader(t, r, want)
}
