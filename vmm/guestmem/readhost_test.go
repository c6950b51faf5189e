package guestmem

import (
	"os"
	"path/filepath"
	"testing"
)

// ReadHost reads the pool (free less reserved) and the shmem THP choice,
// the 2 MiB size's own setting winning over the global one unless it
// inherits it; a kernel without either offers nothing.
func TestReadHostParsesSysfs(t *testing.T) {
	write := func(root, rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	saved := sysfsRoot
	t.Cleanup(func() { sysfsRoot = saved })
	for _, c := range []struct {
		name, global, per string // per "": no per-size file (before 6.11)
		wantMode          string
		wantTHP           bool
	}{
		{"never", "always within_size advise [never] deny force\n", "", "never", false},
		{"advise", "always within_size [advise] never deny force\n", "", "advise", true},
		{"inherit", "always within_size [advise] never deny force\n", "always [inherit] within_size advise never\n", "advise", true},
		{"per-size advise", "always within_size advise [never] deny force\n", "always inherit within_size [advise] never\n", "advise", true},
		{"per-size never", "[always] within_size advise never deny force\n", "always inherit within_size advise [never]\n", "never", false},
		{"deny", "always within_size advise never [deny] force\n", "", "deny", false},
	} {
		root := t.TempDir()
		sysfsRoot = root
		write(root, "hugepages/hugepages-2048kB/nr_hugepages", "64\n")
		write(root, "hugepages/hugepages-2048kB/free_hugepages", "40\n")
		write(root, "hugepages/hugepages-2048kB/resv_hugepages", "8\n")
		write(root, "transparent_hugepage/shmem_enabled", c.global)
		if c.per != "" {
			write(root, "transparent_hugepage/hugepages-2048kB/shmem_enabled", c.per)
		}
		h, err := ReadHost()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if h.HugePages != 64 || h.HugeFree != 32 || h.ShmemTHP != c.wantMode || h.THP != c.wantTHP {
			t.Errorf("%s: ReadHost = %+v, want 64 pages, 32 free, %s, THP %v", c.name, h, c.wantMode, c.wantTHP)
		}
	}
	sysfsRoot = t.TempDir() // neither huge pages nor THP
	if h, err := ReadHost(); err != nil || h != (Host{ShmemTHP: "never"}) {
		t.Errorf("a kernel without huge pages: %+v, %v", h, err)
	}
}
