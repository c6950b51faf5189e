package repository

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

func writeTemplate(t *testing.T, repo, name, cfg string) string {
	t.Helper()
	dir := filepath.Join(repo, SeedPool, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vm.cfg"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// oracleTemplate is the vm.cfg of an Oracle VM 2.x template, kept with
// the other real-world vm.cfg files of config/vmcfg's tests.
var oracleTemplate = func() string {
	data, err := os.ReadFile("../config/vmcfg/testdata/oracle_el5u2_template.cfg")
	if err != nil {
		panic(err)
	}
	return string(data)
}()

func TestCreateFromTemplate(t *testing.T) {
	repo := t.TempDir()
	tdir := writeTemplate(t, repo, "OVM_EL5U2_X86_64_PVM_10GB", oracleTemplate)
	// A sparse 64 MiB image with data at the start and the end.
	img, err := os.Create(filepath.Join(tdir, "System.img"))
	if err != nil {
		t.Fatal(err)
	}
	img.WriteAt([]byte("boot sector"), 0)
	img.WriteAt([]byte("the end"), 64<<20-7)
	img.Close()
	os.WriteFile(filepath.Join(tdir, "README"), []byte("read me\n"), 0o644)
	os.Mkdir(filepath.Join(tdir, "subdir"), 0o755)
	// A domain that already has a MAC.
	os.MkdirAll(filepath.Join(repo, RunningPool, "old"), 0o755)
	os.WriteFile(filepath.Join(repo, RunningPool, "old", "vm.cfg"), []byte("name = 'old'\nvif = ['mac=00:16:3e:11:22:33']\n"), 0o644)

	ctx := context.Background()
	c, err := CreateFromTemplate(ctx, repo, "OVM_EL5U2_X86_64_PVM_10GB", "web-1")
	if err != nil {
		t.Fatal(err)
	}
	ddir := filepath.Join(repo, RunningPool, "web-1")
	if c.Dir != ddir || c.VMCfg != filepath.Join(ddir, "vm.cfg") || strings.Join(c.Files, ",") != "README,System.img" {
		t.Errorf("created %+v", c)
	}
	text, _ := os.ReadFile(c.VMCfg)
	cfg, err := vmcfg.Parse("vm.cfg", text)
	if err != nil {
		t.Fatalf("new vm.cfg does not parse: %v\n%s", err, text)
	}
	if cfg.Name != "web-1" || cfg.UUID != c.UUID || CheckUUID(cfg.UUID) != nil || cfg.Memory != 1024 || cfg.VCPUs != 2 {
		t.Errorf("new config %+v", cfg)
	}
	if len(cfg.VIFs) != 2 || len(c.MACs) != 2 {
		t.Fatalf("vifs %+v macs %v", cfg.VIFs, c.MACs)
	}
	for i, v := range cfg.VIFs {
		if v.MAC != c.MACs[i] || !strings.HasPrefix(v.MAC, "00:16:3e:") || v.MAC == "00:16:3e:11:22:33" || strings.EqualFold(v.MAC, "00:16:3E:00:00:01") {
			t.Errorf("vif %d mac %q (reported %q)", i, v.MAC, c.MACs[i])
		}
	}
	if cfg.VIFs[0].Bridge != "xenbr0" || cfg.VIFs[1].Type != "netfront" {
		t.Errorf("vif settings lost: %+v", cfg.VIFs)
	}
	if cfg.Disks[0].Path != filepath.Join(ddir, "System.img") || cfg.Disks[1].Path != "/OVS/seed_pool/shared/extra.img" || cfg.Disks[2].Path != "/dev/sdc" {
		t.Errorf("disks %+v", cfg.Disks)
	}
	if !strings.Contains(string(text), "# Oracle VM template: Enterprise Linux 5") || !strings.Contains(string(text), "memory = '1024'   # MiB") {
		t.Errorf("comments and layout not kept:\n%s", text)
	}
	// The image is a sparse copy: same bytes, few blocks.
	got, _ := os.ReadFile(filepath.Join(ddir, "System.img"))
	want, _ := os.ReadFile(filepath.Join(tdir, "System.img"))
	if string(got) != string(want) {
		t.Error("image content differs")
	}
	var st syscall.Stat_t
	syscall.Stat(filepath.Join(ddir, "System.img"), &st)
	if st.Size != 64<<20 || st.Blocks*512 > 1<<20 {
		t.Errorf("copy is %d bytes in %d blocks: not sparse", st.Size, st.Blocks)
	}
	if _, err := os.Stat(filepath.Join(ddir, "subdir")); err == nil {
		t.Error("a sub-folder of the template was copied")
	}
	// The template itself is untouched.
	if orig, _ := os.ReadFile(filepath.Join(tdir, "vm.cfg")); string(orig) != oracleTemplate {
		t.Error("template vm.cfg changed")
	}

	// Again with the same name: refused, the first copy untouched.
	if _, err := CreateFromTemplate(ctx, repo, "OVM_EL5U2_X86_64_PVM_10GB", "web-1"); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second create: %v", err)
	}
	if again, _ := os.ReadFile(c.VMCfg); string(again) != string(text) {
		t.Error("existing domain folder changed")
	}
	// A second domain gets other MACs than the first.
	c2, err := CreateFromTemplate(ctx, repo, "OVM_EL5U2_X86_64_PVM_10GB", "web-2")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c2.MACs {
		if m == c.MACs[0] || m == c.MACs[1] {
			t.Errorf("MAC %s reused", m)
		}
	}
	if c2.UUID == c.UUID {
		t.Error("UUID reused")
	}
}

func TestCreateFromTemplateRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	repo := filepath.Join(base, "repo")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "vm.cfg"), []byte("name = 'x'\n"), 0o644)
	writeTemplate(t, repo, "good", "name = 'good'\n")
	os.MkdirAll(filepath.Join(repo, SeedPool), 0o755)
	os.Symlink(outside, filepath.Join(repo, SeedPool, "abs-link"))
	os.Symlink("../../outside", filepath.Join(repo, SeedPool, "rel-link"))
	// A template whose image is a link out of the repository.
	evil := writeTemplate(t, repo, "evil-image", "name = 'e'\n")
	os.Symlink(filepath.Join(outside, "vm.cfg"), filepath.Join(evil, "System.img"))
	// running_pool is a link out of the repository.
	repo2 := filepath.Join(base, "repo2")
	writeTemplate(t, repo2, "good", "name = 'good'\n")
	os.Symlink(outside, filepath.Join(repo2, RunningPool))

	ctx := context.Background()
	for _, tc := range []struct{ repo, template, name, err string }{
		{repo, "../..", "x", ""},
		{repo, "good/../../..", "x", "not a name"},
		{repo, "good", "../../../tmp/x", "only letters"},
		{repo, "good", ".hidden", "may not start"},
		{repo, "good", "", "want 1 to"},
		{repo, "abs-link", "x", ""},
		{repo, "rel-link", "x", ""},
		{repo, "evil-image", "x", ""},
		{repo, "missing", "x", "template missing"},
		{repo2, "good", "x", ""},
	} {
		_, err := CreateFromTemplate(ctx, tc.repo, tc.template, tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CreateFromTemplate(%q, %q) = %v, want an error with %q", tc.template, tc.name, err, tc.err)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("something was written outside: %v", entries)
	}
	if entries, _ := os.ReadDir(filepath.Join(repo, RunningPool)); len(entries) != 0 {
		t.Errorf("a failed create left %v", entries)
	}
	ts, err := ListTemplates(repo)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tpl := range ts {
		names = append(names, tpl.Name)
	}
	if strings.Join(names, ",") != "evil-image,good,rel-link" && strings.Join(names, ",") != "evil-image,good" {
		// rel-link leaves the repository: os.Root refuses it.
		t.Errorf("templates %v", names)
	}
	for _, n := range names {
		if n == "abs-link" || n == "rel-link" {
			t.Errorf("template %s lies outside the repository but is listed", n)
		}
	}
}

func TestListTemplatesAndISOs(t *testing.T) {
	repo := t.TempDir()
	writeTemplate(t, repo, "b", "name = 'b'\nmemory = 256\nvcpus = 2\n")
	writeTemplate(t, repo, "a", "name = 'a'\nmemory = 'lots'\n")
	os.MkdirAll(filepath.Join(repo, SeedPool, "no-cfg"), 0o755)
	os.WriteFile(filepath.Join(repo, SeedPool, "b", "System.img"), make([]byte, 1000), 0o644)
	ts, err := ListTemplates(repo)
	if err != nil || len(ts) != 2 {
		t.Fatalf("%+v %v", ts, err)
	}
	if ts[0].Name != "a" || ts[0].Error == "" || ts[1].Name != "b" || ts[1].Memory != 256 || ts[1].VCPUs != 2 || ts[1].Size < 1000 {
		t.Errorf("templates %+v", ts)
	}
	os.MkdirAll(filepath.Join(repo, ISOPool, "dir.iso"), 0o755)
	os.WriteFile(filepath.Join(repo, ISOPool, "b.ISO"), []byte("12"), 0o644)
	os.WriteFile(filepath.Join(repo, ISOPool, "a.iso"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(repo, ISOPool, "notes.txt"), nil, 0o644)
	isos, err := ListISOs(repo)
	if err != nil || len(isos) != 2 || isos[0].Name != "a.iso" || isos[1].Name != "b.ISO" || isos[1].Size != 2 {
		t.Errorf("isos %+v %v", isos, err)
	}
	empty := t.TempDir()
	if ts, err := ListTemplates(empty); err != nil || len(ts) != 0 {
		t.Errorf("no seed_pool: %v %v", ts, err)
	}
}

// An operating system's template carries its kernel and ramdisk: they are
// copied with the disk (a sparse qcow2 as it is, holes kept) and the new
// vm.cfg names the copies; a kernel elsewhere stays where it is.
func TestCreateFromTemplateOfAnOSPointsItsKernelAndRamdiskAtTheCopies(t *testing.T) {
	repo := t.TempDir()
	tdir := filepath.Join(repo, SeedPool, "debian")
	cfg := "name = 'debian'\nmemory = 256\n" +
		"kernel = '" + filepath.Join("/OVS", SeedPool, "debian", "vmlinux") + "'\n" +
		"ramdisk = '" + filepath.Join("/OVS", SeedPool, "debian", "initrd") + "'\n" +
		"disk = ['tap:qcow2:" + filepath.Join("/OVS", SeedPool, "debian", "disk.qcow2") + ",xvda,w']\n"
	writeTemplate(t, repo, "debian", cfg)
	for _, f := range []string{"vmlinux", "initrd"} {
		if err := os.WriteFile(filepath.Join(tdir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img, err := os.Create(filepath.Join(tdir, "disk.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.WriteAt([]byte("QFI\xfb"), 0); err != nil {
		t.Fatal(err)
	}
	if err := img.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	img.Close()
	c, err := CreateFromTemplate(context.Background(), repo, "debian", "web")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(c.VMCfg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := vmcfg.Parse("vm.cfg", text)
	if err != nil {
		t.Fatalf("new vm.cfg: %v\n%s", err, text)
	}
	if got.Kernel != c.Dir+"/vmlinux" || got.Ramdisk != c.Dir+"/initrd" || got.Disks[0].Path != c.Dir+"/disk.qcow2" || got.Disks[0].DeclaredFormat() != "qcow2" {
		t.Fatalf("new vm.cfg kernel %s ramdisk %s disk %+v, want them in %s", got.Kernel, got.Ramdisk, got.Disks[0], c.Dir)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(c.Dir, "disk.qcow2"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 32<<20 || st.Blocks*512 >= 1<<20 {
		t.Errorf("copied qcow2: size %d, %d bytes allocated: want 32 MiB with the holes kept", st.Size, st.Blocks*512)
	}
	if k, _ := os.ReadFile(filepath.Join(c.Dir, "vmlinux")); string(k) != "vmlinux" {
		t.Errorf("copied kernel %q", k)
	}

	// A kernel outside the template's folder is left as written.
	writeTemplate(t, repo, "shared-kernel", "name = 'x'\nmemory = 256\nkernel = '/OVS/kernels/vmlinux'\n")
	c, err = CreateFromTemplate(context.Background(), repo, "shared-kernel", "web2")
	if err != nil {
		t.Fatal(err)
	}
	text, _ = os.ReadFile(c.VMCfg)
	if got, err := vmcfg.Parse("vm.cfg", text); err != nil || got.Kernel != "/OVS/kernels/vmlinux" {
		t.Fatalf("shared kernel: %v %+v", err, got)
	}
}
