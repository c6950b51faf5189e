package domains

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/agent/qemuhost"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

// fakeQEMU is a host's QEMU as the tests want it: a program file (never
// run: the probes are the test's), its version, machine types and
// accelerator.
type fakeQEMU struct {
	binary   string
	version  qemu.Version
	tooOld   bool
	machines []string
	accel    string
}

func newFakeQEMU(t *testing.T) *fakeQEMU {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(bin, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &fakeQEMU{binary: bin, version: qemu.Version{Major: 7, Minor: 2, Micro: 22}, machines: []string{"pc", "pc-i440fx-7.2", "q35", "pc-q35-7.2"}, accel: qemu.AccelTCG}
}

func (q *fakeQEMU) host(accel string) *qemuhost.Host {
	return qemuhost.New(qemuhost.Options{
		Binary: q.binary, Accel: accel,
		ProbeAccel: func() (string, string) { return q.accel, "the test's probe" },
		ProbeVersion: func(_ context.Context, b string) (qemu.Version, error) {
			if b != q.binary {
				return qemu.Version{}, fmt.Errorf("probed %s, want %s", b, q.binary)
			}
			if q.tooOld {
				return qemu.Version{Major: 5, Minor: 2}, fmt.Errorf("%s is QEMU 5.2.0: %w (need 7.2 or newer)", b, qemu.ErrTooOld)
			}
			return q.version, nil
		},
		Machines: func(context.Context, string) ([]string, error) { return q.machines, nil },
	})
}

// qemuEnv is a Manager whose host has QEMU (or none, qemu nil), a
// repository folder repo (its one file root) and the bridges given.
type qemuEnv struct {
	f    *fakeVMMs
	m    *Manager
	repo string
}

func openQEMU(t *testing.T, host *qemuhost.Host, bridges ...string) *qemuEnv {
	t.Helper()
	return openQEMUOn(t, host, t.TempDir(), bridges...)
}

// testRepoUUID is the repository of openQEMUOn.
const testRepoUUID = "0004fb00-0003-0000-5a16-8a2ac2d3e4f5"

// openQEMUOn is openQEMU with the repository at repo, known as repository
// testRepoUUID (RepositoryOf, RepositoryRoot).
func openQEMUOn(t *testing.T, host *qemuhost.Host, repo string, bridges ...string) *qemuEnv {
	t.Helper()
	e := &qemuEnv{f: newFakeVMMs(), repo: repo}
	m, err := Open(Options{
		StateDir: t.TempDir(), Hypervisor: "sim", VMMs: e.f, QEMU: host,
		HostMemory:    func() (uint64, error) { return 4096 << 20, nil },
		MemoryReserve: 128 << 20, HostCPUs: 4,
		KVMUsable: func() error { return errors.New("no KVM in unit tests") },
		FileRoots: func() []string { return []string{e.repo} },
		// The default block_devices, and the repository so that a plain
		// file there gets as far as the block-device test.
		BlockDevices: func() []string { return append(config.DefaultBlockDevices(), "/dev/null", filepath.Join(e.repo, "*")) },
		Bridges:      func() ([]string, error) { return bridges, nil },
		RepositoryOf: func(p string) (string, bool) {
			return testRepoUUID, p == e.repo || strings.HasPrefix(p, e.repo+"/")
		},
		RepositoryRoot: func(u string) (string, bool) { return e.repo, strings.EqualFold(u, testRepoUUID) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	e.m = m
	return e
}

// file writes an empty file in the repository and returns its path.
func (e *qemuEnv) file(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(e.repo, name)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// qcow2 writes a small qcow2 image (version 3, 512-byte clusters, 32 KiB,
// no backing file) in the repository and returns its path.
func (e *qemuEnv) qcow2(t *testing.T, name string) string {
	t.Helper()
	b := make([]byte, 4096)
	copy(b, "QFI\xfb")
	binary.BigEndian.PutUint32(b[4:], 3)       // version
	binary.BigEndian.PutUint32(b[20:], 9)      // cluster_bits
	binary.BigEndian.PutUint64(b[24:], 32<<10) // size: what one L1 entry covers
	binary.BigEndian.PutUint32(b[36:], 1)      // l1_size
	binary.BigEndian.PutUint64(b[40:], 512)    // l1_table_offset
	binary.BigEndian.PutUint32(b[96:], 4)      // refcount_order
	binary.BigEndian.PutUint32(b[100:], 104)   // header_length
	p := filepath.Join(e.repo, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// osConfig is a direct-boot vm.cfg with extra lines.
func osConfig(name, kernel string, extra ...string) string {
	return fmt.Sprintf("name = '%s'\nmemory = 256\nvcpus = 2\nkernel = '%s'\n%s\n", name, kernel, strings.Join(extra, "\n"))
}

func TestOSDomainStartsOnQEMUWithTheHostsBinaryAndAccel(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k, r, disk := e.file(t, "vmlinux"), e.file(t, "initrd"), e.file(t, "System.img")
	if _, _, err := e.m.Create([]byte(osConfig("os", k, "ramdisk = '"+r+"'", "disk = ['file:"+disk+",xvda,w']")), "vm.cfg"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start("os"); err != nil {
		t.Fatal(err)
	}
	s := e.f.nextStart(t)
	if s.Engine != "qemu" || s.EngineBinary != q.binary || s.Accel != "tcg" {
		t.Fatalf("spec engine %q binary %q accel %q, want qemu %s tcg", s.Engine, s.EngineBinary, s.Accel, q.binary)
	}
	if in := info(t, e.m, "os"); in.Engine != "qemu" || in.State != "running" {
		t.Fatalf("info %+v", in)
	}
}

func TestWorkloadDomainKeepsTheWorkloadEngine(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	create(t, e.m, "w", 64)
	if err := e.m.Start("w"); err != nil {
		t.Fatal(err)
	}
	if s := e.f.nextStart(t); s.Engine != "sim" || s.EngineBinary != "" || s.Accel != "" {
		t.Fatalf("workload spec engine %q binary %q accel %q, want sim and no QEMU", s.Engine, s.EngineBinary, s.Accel)
	}
}

func TestOSDomainWithoutUsableQEMUIsRefusedWithWhatToDo(t *testing.T) {
	missing := newFakeQEMU(t)
	missing.binary = filepath.Join(t.TempDir(), "no-such-qemu")
	old := newFakeQEMU(t)
	old.tooOld = true
	kvmless := newFakeQEMU(t)
	cases := []struct {
		name string
		host *qemuhost.Host
		want []string
	}{
		{"no QEMU configured", nil, []string{"apt-get install qemu-system-x86", "[qemu] binary"}},
		{"binary missing", missing.host("auto"), []string{"no-such-qemu is not installed", "apt-get install qemu-system-x86"}},
		{"too old", old.host("auto"), []string{"too old", "install a newer qemu-system-x86"}},
		{"accel kvm without hardware virtualization", kvmless.host("kvm"), []string{"[qemu] accel = kvm", "set [qemu] accel = auto or tcg"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := openQEMU(t, tc.host)
			k := e.file(t, "vmlinux")
			if _, _, err := e.m.Create([]byte(osConfig("os", k)), "vm.cfg"); err != nil {
				t.Fatal(err)
			}
			err := e.m.Start("os")
			if KindOf(err) != Unsupported {
				t.Fatalf("start: %v, want Unsupported", err)
			}
			for _, w := range append(tc.want, "kernel = "+k, "qemu engine") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			e.f.noStart(t)
			if in := info(t, e.m, "os"); in.State != "stopped" || in.Reason != "created" {
				t.Fatalf("refused domain changed: %+v", in)
			}
		})
	}
}

func TestOSDomainFilesOutsideTheRepositoriesAreRefusedAtCreate(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	outside := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(e.repo, "link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	k := e.file(t, "vmlinux")
	for _, tc := range []struct{ name, cfg, field string }{
		{"kernel", osConfig("a", outside), "kernel: "},
		{"kernel through a symlink", osConfig("b", link), "kernel: "},
		{"ramdisk", osConfig("c", k, "ramdisk = '"+outside+"'"), "ramdisk: "},
		{"disk", osConfig("d", k, "disk = ['tap:qcow2:"+outside+",xvda,w']"), "disk xvda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.m.Create([]byte(tc.cfg), "vm.cfg")
			if KindOf(err) != Invalid || !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "outside the repositories") {
				t.Fatalf("create: %v, want Invalid naming %q and the rule", err, tc.field)
			}
			if len(e.m.Names()) != 0 {
				t.Fatalf("refused domain registered: %v", e.m.Names())
			}
		})
	}
}

func TestOSDomainMissingFilesAreRefusedAtCreateAndAtStart(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	missing := filepath.Join(e.repo, "gone.img")
	_, _, err := e.m.Create([]byte(osConfig("a", k, "disk = ['file:"+missing+",xvda,w']")), "vm.cfg")
	if KindOf(err) != Invalid || !strings.Contains(err.Error(), "disk xvda") || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Fatalf("create with a missing disk: %v", err)
	}
	// A file that goes after the create stops the start, before any VMM.
	disk := e.file(t, "System.img")
	if _, _, err := e.m.Create([]byte(osConfig("b", k, "disk = ['file:"+disk+",xvda,w']")), "vm.cfg"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(k); err != nil {
		t.Fatal(err)
	}
	err = e.m.Start("b")
	if KindOf(err) != Invalid || !strings.Contains(err.Error(), "kernel: "+k+" does not exist") || !strings.Contains(err.Error(), "nothing was started") {
		t.Fatalf("start with the kernel gone: %v", err)
	}
	e.f.noStart(t)
	if in := info(t, e.m, "b"); in.State != "stopped" {
		t.Fatalf("refused domain: %+v", in)
	}
}

func TestOSDomainRelativeFilesAreTheDomainFoldersOnes(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	// Missing at create is allowed (the folder is new), not at start.
	if _, _, err := e.m.Create([]byte(osConfig("a", "vmlinux")), "vm.cfg"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start("a"); KindOf(err) != Invalid || !strings.Contains(err.Error(), "kernel: ") {
		t.Fatalf("start without the kernel in the folder: %v", err)
	}
	e.f.noStart(t)
	e.m.mu.Lock()
	dir := e.m.doms["a"].dir
	e.m.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "vmlinux"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start("a"); err != nil {
		t.Fatalf("start with the kernel in the folder: %v", err)
	}
	e.f.nextStart(t)
	// ../ leaves the folder: refused.
	if _, _, err := e.m.Create([]byte(osConfig("b", "../a/vmlinux")), "vm.cfg"); KindOf(err) != Invalid || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("create with ../: %v", err)
	}
}

func TestOSDomainPhyDiskMustBeABlockDevice(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	for _, dev := range []string{"/dev/null", "null", e.file(t, "plain")} {
		_, _, err := e.m.Create([]byte(osConfig("a", k, "disk = ['phy:"+dev+",xvda,w']")), "vm.cfg")
		if KindOf(err) != Invalid || !strings.Contains(err.Error(), "is not a block device") {
			t.Fatalf("phy:%s: %v, want refused as not a block device", dev, err)
		}
	}
	_, _, err := e.m.Create([]byte(osConfig("a", k, "disk = ['phy:/dev/loop-ovs-no-such-disk,xvda,w']")), "vm.cfg")
	if KindOf(err) != Invalid || !strings.Contains(err.Error(), "/dev/loop-ovs-no-such-disk does not exist") {
		t.Fatalf("missing phy: %v", err)
	}
	// A type that merely starts with phy is no device, and no image
	// either: refused (the engine would otherwise read one way, the
	// checks another).
	for _, typ := range []string{"physical", "phys", "iscsi"} {
		_, _, err = e.m.Create([]byte(osConfig("a", k, "disk = ['"+typ+":loop0,xvda,w']")), "vm.cfg")
		if KindOf(err) != Invalid || !strings.Contains(err.Error(), "type "+typ+" is not one this host runs") {
			t.Fatalf("%s:loop0: %v, want the type refused", typ, err)
		}
	}
	// A device no block_devices pattern allows.
	_, _, err = e.m.Create([]byte(osConfig("a", k, "disk = ['phy:/dev/zero,xvda,w']")), "vm.cfg")
	if KindOf(err) != Invalid || !strings.Contains(err.Error(), "block_devices allows") {
		t.Fatalf("phy:/dev/zero: %v, want refused by block_devices", err)
	}
}

// TestOSDomainPhyDiskInUse: a loop device with a mounted file system is
// refused (the host uses it); once unmounted the same vm.cfg registers.
func TestOSDomainPhyDiskInUse(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	img := e.file(t, "disk.img")
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	mp := t.TempDir()
	if out, err := exec.Command("mount", dev, mp).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	cfg := []byte(osConfig("a", k, "disk = ['phy:"+dev+",xvda,w']"))
	_, _, err = e.m.Create(cfg, "vm.cfg")
	if KindOf(err) != Invalid || !strings.Contains(err.Error(), "mounted on "+mp) {
		exec.Command("umount", mp).Run()
		t.Fatalf("phy:%s mounted on %s: %v, want refused as in use", dev, mp, err)
	}
	if out, err := exec.Command("umount", mp).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if _, _, err := e.m.Create(cfg, "vm.cfg"); err != nil {
		t.Fatalf("phy:%s once unmounted: %v", dev, err)
	}
}

func TestOSDomainBridgeMustExistAtStart(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"), "xenbr0")
	k := e.file(t, "vmlinux")
	// Registered all the same: the bridge may be made before the start.
	if _, _, err := e.m.Create([]byte(osConfig("a", k, "vif = ['bridge=br-missing', '']")), "vm.cfg"); err != nil {
		t.Fatal(err)
	}
	err := e.m.Start("a")
	if KindOf(err) != Invalid || !strings.Contains(err.Error(), "vif 0: bridge br-missing does not exist on this host") || strings.Contains(err.Error(), "vif 1") {
		t.Fatalf("start with a missing bridge: %v", err)
	}
	e.f.noStart(t)

	none := openQEMU(t, q.host("auto"))
	k = none.file(t, "vmlinux")
	if _, _, err := none.m.Create([]byte(osConfig("a", k, "vif = ['']")), "vm.cfg"); err != nil {
		t.Fatal(err)
	}
	if err := none.m.Start("a"); KindOf(err) != Invalid || !strings.Contains(err.Error(), "this host has no bridge") {
		t.Fatalf("start with no bridge on the host: %v", err)
	}
}

// A disk image that is not what its type says, in a format the engine
// does not run, or naming a backing file is refused before anything
// starts, as the qemu engine would read it.
func TestOSDomainDiskImagesAreReadAsTheEngineWill(t *testing.T) {
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		t.Fatalf("qemu-img not installed (apt-get install qemu-utils): %v", err)
	}
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k := e.file(t, "vmlinux")
	raw := e.file(t, "raw.img")
	qc := e.qcow2(t, "disk.qcow2")
	base := filepath.Join(e.repo, "base.qcow2")
	overlay := filepath.Join(e.repo, "overlay.qcow2")
	vmdk := filepath.Join(e.repo, "disk.vmdk")
	for _, args := range [][]string{
		{"create", "-q", "-f", "qcow2", base, "1M"},
		{"create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay},
		{"create", "-q", "-f", "vmdk", vmdk, "1M"},
	} {
		if out, err := exec.Command(qemuImg, args...).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
	}
	for _, ok := range []string{"file:" + raw, "tap:aio:" + raw, "tap:qcow2:" + qc, "file:" + qc} {
		if _, _, err := e.m.Create([]byte(osConfig("ok", k, "disk = ['"+ok+",xvda,w']")), "vm.cfg"); err != nil {
			t.Fatalf("disk %s: %v", ok, err)
		}
		if err := e.m.Delete("ok"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ disk, want string }{
		{"tap:qcow2:" + raw, "declared qcow2"},
		{"file:" + overlay, "backing file"},
		{"file:" + vmdk, "qemu-img convert"},
	} {
		_, _, err := e.m.Create([]byte(osConfig("bad", k, "disk = ['"+tc.disk+",xvda,w']")), "vm.cfg")
		if KindOf(err) != Invalid || !strings.Contains(err.Error(), "disk xvda") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "/proc/self/fd") {
			t.Errorf("disk %s: %v, want refused saying %q", tc.disk, err, tc.want)
		}
	}
	// An image that changes after the create is read again at the start.
	mustCreate(t, e.m, osConfig("later", k, "disk = ['tap:qcow2:"+qc+",xvda,w']"))
	if err := os.WriteFile(qc, []byte("not a qcow2 any more"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Start("later"); KindOf(err) != Invalid || !strings.Contains(err.Error(), "declared qcow2") {
		t.Fatalf("start with the image changed: %v", err)
	}
	e.f.noStart(t)
}
