package bootloader

import (
	"bytes"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tree is a directory to put in a filesystem: paths to contents; a
// content starting with "->" is a symlink to the rest.
type tree map[string][]byte

func symlink(target string) []byte { return []byte("->" + target) }

// randomBytes is n reproducible bytes (seeded by n).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		p = "/usr/sbin/" + name
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed (e2fsprogs, fdisk or gdisk): cannot build test images", name)
		}
	}
	return p
}

func runTool(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(needTool(t, name), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// writeTree makes tr under a new directory.
func writeTree(t testing.TB, tr tree) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range tr {
		full := filepath.Join(dir, p)
		mk := filepath.Dir(full)
		if strings.HasSuffix(p, "/") {
			mk = full
		}
		if err := os.MkdirAll(mk, 0o755); err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(c, []byte("->")) {
			if err := os.Symlink(string(c[2:]), full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasSuffix(p, "/") {
			continue
		}
		if err := os.WriteFile(full, c, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mkfs builds an ext filesystem image of sizeKiB holding tr; mkfsArgs go
// to mke2fs (-t ext2, -O ^extent, -b 4096...).
func mkfs(t testing.TB, tr tree, sizeKiB int, mkfsArgs ...string) string {
	t.Helper()
	dir := writeTree(t, tr)
	img := filepath.Join(t.TempDir(), "fs.img")
	args := append([]string{"-q", "-F"}, mkfsArgs...)
	if !hasArg(mkfsArgs, "-t") {
		args = append(args, "-t", "ext4")
	}
	args = append(args, "-d", dir, img, itoa(sizeKiB)+"k")
	runTool(t, "mke2fs", args...)
	return img
}

func hasArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }

// part is one partition of a test disk: its filesystem image (or none)
// and its size.
type part struct {
	img     string
	sizeKiB int
	typ     string // sfdisk type (83) or sgdisk type code (8300, ef02)
	boot    bool
}

// disk builds a partitioned disk image ("dos" or "gpt") from parts, each
// starting at a 1 MiB boundary, and returns its path.
func disk(t testing.TB, label string, parts ...part) string {
	t.Helper()
	total := 1024 + 1024 // the table and the GPT backup
	for _, p := range parts {
		total += (p.sizeKiB + 1023) / 1024 * 1024
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.Truncate(createFile(t, path), int64(total)<<10); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("label: " + label + "\n")
	start := 1024
	for _, p := range parts {
		script.WriteString("start=" + itoa(start*2) + ", size=" + itoa(p.sizeKiB*2) + ", type=" + p.typ)
		if p.boot {
			script.WriteString(", bootable")
		}
		script.WriteString("\n")
		start += (p.sizeKiB + 1023) / 1024 * 1024
	}
	cmd := exec.Command(needTool(t, "sfdisk"), "-q", path)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s\n%s", err, out, script.String())
	}
	start = 1024
	for _, p := range parts {
		if p.img != "" {
			copyInto(t, path, p.img, int64(start)<<10)
		}
		start += (p.sizeKiB + 1023) / 1024 * 1024
	}
	return path
}

func createFile(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func copyInto(t testing.TB, dst, src string, off int64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// load runs Load on the image file at path.
func load(t testing.TB, path string, o Options) (*Boot, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Load(f, st.Size(), o)
}

func defaults() Options { return Options{Entry: -1} }

// contents reads a File whole.
func contents(t testing.TB, f *File) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := f.WriteTo(&b)
	if err != nil {
		t.Fatalf("read %s: %v", f.Path(), err)
	}
	if n != f.Size() || int64(b.Len()) != n {
		t.Fatalf("%s: WriteTo wrote %d bytes (buffer %d), Size says %d", f.Path(), n, b.Len(), f.Size())
	}
	return b.Bytes()
}

func sameBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes read back, %d put in, first difference at byte %d", what, len(got), len(want), i)
	}
}
