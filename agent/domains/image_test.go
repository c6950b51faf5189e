package domains

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

// qemuImage writes a qemu engine save image of the vm.cfg text, saved by
// QEMU version, and returns its path.
func qemuImage(t *testing.T, dir, config, version string) string {
	t.Helper()
	p := filepath.Join(dir, "saved.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := qemu.WriteSaveHeader(f, qemu.SaveHeader{Config: config, MemoryBytes: 256 << 20, QEMUVersion: version, Machine: "pc-i440fx-7.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("QEVM and the rest of QEMU's stream"); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRestoreOfAQEMUImageRunsOnQEMU(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	img := qemuImage(t, e.repo, osConfig("os", k, "uuid = '6e2a1c3d-1b2c-4d5e-8f90-0123456789ab'"), "7.2.22")
	name, err := e.m.Restore(img)
	if err != nil || name != "os" {
		t.Fatalf("restore: %q, %v", name, err)
	}
	s := e.f.nextStart(t)
	if s.Mode != vmmproc.Restore || s.Engine != "qemu" || s.EngineBinary != q.binary || s.Accel != "tcg" || s.Image != img {
		t.Fatalf("restore spec %+v", s)
	}
}

func TestRestoreRefusesAnImageItsEngineCannotLoad(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	const id = "uuid = '6e2a1c3d-1b2c-4d5e-8f90-0123456789ab'"
	cases := []struct{ name, config, version, want string }{
		{"a newer QEMU's", osConfig("os", k, id), "8.1.0", "written by QEMU 8.1.0; this host has QEMU 7.2.22"},
		{"a workload vm.cfg in a qemu image", "name = 'w'\nmemory = 64\n" + id + "\n", "7.2.22", "written by the qemu engine; its domain w (the workload guest) runs on sim here"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := qemuImage(t, t.TempDir(), tc.config, tc.version)
			_, err := e.m.Restore(img)
			if KindOf(err) != Unsupported || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore: %v, want Unsupported saying %q", err, tc.want)
			}
			e.f.noStart(t)
			if len(e.m.Names()) != 0 {
				t.Fatalf("refused image registered %v", e.m.Names())
			}
		})
	}
	// Its kernel missing here: not registered, nothing started.
	img := qemuImage(t, t.TempDir(), osConfig("os", filepath.Join(e.repo, "gone"), id), "7.2.22")
	if _, err := e.m.Restore(img); KindOf(err) != Invalid || !strings.Contains(err.Error(), "kernel: ") {
		t.Fatalf("restore with its kernel missing: %v", err)
	}
	e.f.noStart(t)
}

func TestReadImageHeaderLeavesTheFileAtItsStart(t *testing.T) {
	p := qemuImage(t, t.TempDir(), "name = 'x'\nmemory = 64\n", "7.2.22")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := readImageHeader(f, p)
	if err != nil || h.engine != "qemu" || h.qemuVersion != "7.2.22" || !strings.Contains(h.config, "name = 'x'") {
		t.Fatalf("header %+v, %v", h, err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 0 {
		t.Fatalf("left at %d, want 0", off)
	}
	// Neither kind of image: refused as such.
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("OVSQ"), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := os.Open(junk)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := readImageHeader(j, junk); KindOf(err) != Invalid || !strings.Contains(err.Error(), "is not a save image") {
		t.Fatalf("junk: %v", err)
	}
}

// Starting a suspended domain checks its save image as Restore does, and
// hands the VMM the image it checked.
func TestStartOfASuspendedDomainChecksItsImage(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	cfg := osConfig("os", k, "uuid = '6e2a1c3d-1b2c-4d5e-8f90-0123456789ab'")
	mustCreate(t, e.m, cfg)
	if err := e.m.Start("os"); err != nil {
		t.Fatal(err)
	}
	e.f.nextStart(t)
	img := filepath.Join(e.repo, "os.img")
	if err := e.m.Save("os", img); err != nil {
		t.Fatal(err)
	}
	// The fake VMM writes no image: the test writes one by a newer QEMU.
	if p := qemuImage(t, t.TempDir(), cfg, "8.1.0"); os.Rename(p, img) != nil {
		t.Fatal("rename")
	}
	err := e.m.Start("os")
	if KindOf(err) != Unsupported || !strings.Contains(err.Error(), "written by QEMU 8.1.0") {
		t.Fatalf("start from a newer QEMU's image: %v", err)
	}
	e.f.noStart(t)
	if in := info(t, e.m, "os"); in.State != "suspended" {
		t.Fatalf("refused start changed the domain: %+v", in)
	}
	if p := qemuImage(t, t.TempDir(), cfg, "7.2.22"); os.Rename(p, img) != nil {
		t.Fatal("rename")
	}
	if err := e.m.Start("os"); err != nil {
		t.Fatal(err)
	}
	if s := e.f.nextStart(t); s.Mode != vmmproc.Restore || s.Image != img || s.ImageFile == nil || s.Engine != "qemu" {
		t.Fatalf("restore spec %+v", s)
	}
}
