package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// What the agent refuses of an operating system's vm.cfg before any qemu
// engine runs: its files outside the repositories and [agent] file_dirs,
// a kernel gone by the start; and what an offline migration takes along:
// the kernel and ramdisk with the disks. None of these boots a guest.

// needQEMU fails when this host has no qemu-system-x86_64 (an OS domain
// would be refused for that first, and the test would prove nothing);
// .ci/run installs Debian's.
func needQEMU(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Fatal("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86): an OS domain would be refused for that first")
	}
}

func osCfg(name, kernel string, lines ...string) string {
	return fmt.Sprintf("name = '%s'\nmemory = 64\nvcpus = 1\nkernel = '%s'\nextra = 'console=ttyS0'\n%s\n", name, kernel, strings.Join(lines, "\n"))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestQEMUConfigFilesOutsideTheRepositoriesRefused(t *testing.T) {
	a := startAgent(t, agentConf{Confined: true})
	_, _, mp := makeRepo(t, a)
	outside := filepath.Join(t.TempDir(), "vmlinux")
	writeFile(t, outside, "a kernel")
	inside := filepath.Join(mp, "running_pool", "os", "vmlinux")
	writeFile(t, inside, "a kernel")
	for _, cfg := range []string{
		osCfg("os", outside),
		osCfg("os", inside, "ramdisk = '"+outside+"'"),
		osCfg("os", inside, "disk = ['tap:qcow2:"+outside+",xvda,w']"),
	} {
		f := a.fault(t, "domain.create", cfg)
		if f.Code != 1010 || !strings.Contains(f.Message, "outside the repositories and [agent] file_dirs") || !strings.Contains(f.Message, outside) {
			t.Errorf("create naming %s: fault %d %q, want 1010 naming the path and the rule", outside, f.Code, f.Message)
		}
	}
	var list []domInfo
	a.call(t, "domain.list", &list)
	if len(list) != 0 {
		t.Fatalf("refused domains registered: %+v", list)
	}
}

func TestQEMUStartWithItsKernelGoneIsRefused(t *testing.T) {
	needQEMU(t)
	a := startAgent(t, agentConf{})
	kernel := filepath.Join(t.TempDir(), "vmlinux")
	writeFile(t, kernel, "a kernel")
	a.call(t, "domain.create", nil, osCfg("os", kernel, "vif = ['bridge=ovsnobr0']"))
	if err := os.Remove(kernel); err != nil {
		t.Fatal(err)
	}
	f := a.fault(t, "domain.start", "os")
	for _, w := range []string{"kernel: " + kernel + " does not exist on this host", "vif 0: bridge ovsnobr0 does not exist on this host", "nothing was started"} {
		if !strings.Contains(f.Message, w) {
			t.Errorf("start fault %d %q does not say %q", f.Code, f.Message, w)
		}
	}
	if f.Code != 1010 {
		t.Errorf("start fault code %d, want 1010", f.Code)
	}
	if in := a.info(t, "os"); in.State != "stopped" {
		t.Fatalf("after a refused start the domain is %s (%s)", in.State, in.Reason)
	}
	if _, err := os.Stat(filepath.Join(a.Dir, "state", "domains", "os", "vmm.log")); err == nil {
		t.Error("a VMM ran for the refused start (vmm.log exists)")
	}
}

// An offline migration of a stopped OS domain copies its kernel and
// ramdisk with its disk, and the target's vm.cfg names the copies; the
// source's kernel, outside the domain's folder, stays where it was.
func TestQEMUOfflineMigrationTakesTheKernelAlong(t *testing.T) {
	needQEMU(t)
	src, dst := pair(t, "sim", "sim")
	_, _, mpA := makeRepo(t, src)
	_, _, mpB := makeRepo(t, dst)
	kernel := filepath.Join(mpA, "kernels", "vmlinux-6.1")
	initrd := filepath.Join(mpA, "kernels", "initrd-6.1")
	writeFile(t, kernel, "the kernel")
	writeFile(t, initrd, "the initrd")
	disk := filepath.Join(mpA, "running_pool", "os", "System.img")
	writeDisk(t, disk, 64<<20, 4<<20, 7)
	src.call(t, "domain.create", nil, osCfg("os", kernel, "ramdisk = '"+initrd+"'", "disk = ['file:"+disk+",xvda,w']"))

	// The dry run says what the target offers it.
	var chk struct {
		OK       bool     `xmlrpc:"ok"`
		Problems []string `xmlrpc:"problems"`
		Target   struct {
			QEMUVersion string   `xmlrpc:"qemu_version"`
			Accel       string   `xmlrpc:"accel"`
			Machines    []string `xmlrpc:"machines"`
			Files       []struct {
				Name    string `xmlrpc:"name"`
				Path    string `xmlrpc:"path"`
				Present bool   `xmlrpc:"present"`
			} `xmlrpc:"files"`
		} `xmlrpc:"target"`
	}
	src.call(t, "migration.check", &chk, "os", dst.Reloc, migrateOpts(nil))
	if !chk.OK {
		t.Fatalf("dry run: %v", chk.Problems)
	}
	tg := chk.Target
	// No files: an offline move copies them.
	if !strings.HasPrefix(tg.QEMUVersion, "QEMU ") || (tg.Accel != "tcg" && tg.Accel != "kvm") || len(tg.Machines) == 0 || len(tg.Files) != 0 {
		t.Fatalf("the dry run's target: %+v", tg)
	}
	var id string
	src.call(t, "domain.migrate", &id, "os", dst.Reloc, migrateOpts(nil))
	st := src.waitOffline(t, id, func(s offStatus) bool { return s.Phase == "completed" || s.Phase == "failed" })
	if st.Phase != "completed" || st.Copied != 3 {
		t.Fatalf("offline migration: %+v (want completed, 3 files copied)", st)
	}
	folder := filepath.Join(mpB, "running_pool", "os")
	cfg, err := os.ReadFile(filepath.Join(dst.Dir, "state", "domains", "os", "vm.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vmlinux-6.1", "initrd-6.1", "System.img"} {
		if !strings.Contains(string(cfg), filepath.Join(folder, f)) {
			t.Errorf("the target's vm.cfg does not name its copy of %s:\n%s", f, cfg)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(folder, "vmlinux-6.1")); string(b) != "the kernel" {
		t.Errorf("the kernel's copy holds %q", b)
	}
	if d := digest(t, filepath.Join(folder, "System.img")); d == "" {
		t.Error("no disk copy")
	}
	for _, f := range []string{kernel, initrd} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the source's %s was moved away: %v", f, err)
		}
	}
	if in := dst.info(t, "os"); in.State != "stopped" || in.Engine != "qemu" {
		t.Errorf("on the target: %+v", in)
	}
}

// Without a usable QEMU an OS domain is refused at start with what to
// install or set, and nothing runs; the workload guest is not affected.
func TestQEMUMissingBinaryRefusesTheStart(t *testing.T) {
	a := startAgent(t, agentConf{Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
		"qemu":  {"binary = /nonexistent/qemu-system-x86_64"},
	}})
	kernel := filepath.Join(t.TempDir(), "vmlinux")
	writeFile(t, kernel, "a kernel")
	a.call(t, "domain.create", nil, osCfg("os", kernel))
	f := a.fault(t, "domain.start", "os")
	if f.Code != 1007 || !strings.Contains(f.Message, "apt-get install qemu-system-x86, or set [qemu] binary") || !strings.Contains(f.Message, "kernel = "+kernel) {
		t.Errorf("start without QEMU: fault %d %q, want 1007 saying what to install or set", f.Code, f.Message)
	}
	if in := a.info(t, "os"); in.State != "stopped" || in.Engine != "qemu" {
		t.Errorf("after the refused start: %+v", in)
	}
	a.call(t, "domain.create", nil, vmcfgText("w", 64, "dirty=0"))
	a.call(t, "domain.start", nil, "w")
	if in := a.info(t, "w"); in.State != "running" || in.Engine != "sim" {
		t.Errorf("the workload guest beside it: %+v", in)
	}
}

// A target without a usable QEMU says so in the dry run of an OS domain:
// a problem naming what to install or set, and its facts.
func TestQEMUDryRunToATargetWithoutQEMU(t *testing.T) {
	needQEMU(t)
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
	}})
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Extra: map[string][]string{
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
		"qemu":  {"binary = /nonexistent/qemu-system-x86_64"},
	}})
	_, _, mp := makeRepo(t, src)
	makeRepo(t, dst)
	kernel := filepath.Join(mp, "running_pool", "os", "vmlinux")
	writeFile(t, kernel, "a kernel")
	src.call(t, "domain.create", nil, osCfg("os", kernel))
	var chk struct {
		OK       bool     `xmlrpc:"ok"`
		Problems []string `xmlrpc:"problems"`
		Target   struct {
			QEMUProblem string `xmlrpc:"qemu_problem"`
		} `xmlrpc:"target"`
	}
	src.call(t, "migration.check", &chk, "os", dst.Reloc, migrateOpts(nil))
	found := false
	for _, p := range chk.Problems {
		found = found || strings.HasPrefix(p, "engine: ") && strings.Contains(p, "apt-get install qemu-system-x86, or set [qemu] binary")
	}
	if chk.OK || !found {
		t.Errorf("dry run to a target without QEMU: ok %v, problems %q", chk.OK, chk.Problems)
	}
	if !strings.Contains(chk.Target.QEMUProblem, "/nonexistent/qemu-system-x86_64 is not installed") {
		t.Errorf("the target's qemu_problem: %q", chk.Target.QEMUProblem)
	}
}
