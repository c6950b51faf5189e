package domains

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// A detached operating system takes its kernel and ramdisk along: the
// manifest describes them with the disks, and the attaching host's vm.cfg
// names them where that host has the repository.
func TestDetachAttachOfAnOSDomainTakesItsKernelAndRamdisk(t *testing.T) {
	q := newFakeQEMU(t)
	repo := t.TempDir()
	folder := filepath.Join(repo, "running_pool", "os")
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinux", "initrd"} {
		if err := os.WriteFile(filepath.Join(folder, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := openQEMUOn(t, q.host("auto"), repo)
	a.qcow2(t, "running_pool/os/System.img")
	mustCreate(t, a.m, osConfig("os", filepath.Join(folder, "vmlinux"), "ramdisk = '"+filepath.Join(folder, "initrd")+"'", "disk = ['tap:qcow2:"+filepath.Join(folder, "System.img")+",xvda,w']"))
	res, err := a.m.Detach(context.Background(), "os", "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Disks != 3 {
		t.Fatalf("the manifest describes %d files, want the disk, kernel and ramdisk", res.Disks)
	}
	man, err := readManifest(folder)
	if err != nil {
		t.Fatal(err)
	}
	devs := []string{}
	for _, d := range man.Disks {
		devs = append(devs, d.Device+"="+d.Path)
	}
	if got := strings.Join(devs, " "); got != "xvda=running_pool/os/System.img kernel=running_pool/os/vmlinux ramdisk=running_pool/os/initrd" {
		t.Fatalf("manifest disks %s", got)
	}
	if man.Requires.Engine != "qemu" {
		t.Errorf("manifest requires engine %q, want qemu", man.Requires.Engine)
	}

	// Another host mounts the repository elsewhere.
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Symlink(repo, mnt); err != nil {
		t.Fatal(err)
	}
	b := openQEMUOn(t, q.host("auto"), mnt)
	if _, problems, err := b.m.Attach(context.Background(), filepath.Join(mnt, "running_pool", "os"), false); err != nil {
		t.Fatalf("attach: %v %q", err, problems)
	}
	b.m.mu.Lock()
	cfg := b.m.doms["os"].cfg
	b.m.mu.Unlock()
	want := filepath.Join(mnt, "running_pool", "os")
	if cfg.Kernel != filepath.Join(want, "vmlinux") || cfg.Ramdisk != filepath.Join(want, "initrd") || cfg.Disks[0].Path != filepath.Join(want, "System.img") {
		t.Fatalf("attached vm.cfg: kernel %s ramdisk %s disk %s, want them under %s", cfg.Kernel, cfg.Ramdisk, cfg.Disks[0].Path, want)
	}
	if cfg.Guest() != vmcfg.GuestOS || cfg.Disks[0].DeclaredFormat() != "qcow2" {
		t.Fatalf("attached vm.cfg changed its guest or disk type: %+v", cfg.Disks[0])
	}
	if err := b.m.Start("os"); err != nil {
		t.Fatalf("start the attached domain: %v", err)
	}
	if s := b.f.nextStart(t); s.Engine != "qemu" {
		t.Fatalf("attached domain started on %s", s.Engine)
	}
}
