package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/relocation"
)

// The secret's lines: neither a fault nor the agent's log may quote them.
const secretLine = "root:$6$confinement-sentinel-hash:19000:0:99999:7:::"

func writeSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(p, []byte(secretLine+"\nbin:*:19000:0:99999:7:::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// faultWithin calls method and requires a fault within 10 s (a FIFO must
// not block the call).
func faultWithin(t *testing.T, a *Agent, method string, args ...any) *client.Fault {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.Unix().Call(ctx, method, nil, args...)
	f, ok := err.(*client.Fault)
	if !ok {
		t.Fatalf("%s%v: %v, want a fault", method, args, err)
	}
	return f
}

func TestConfineCreateOutsideRefused(t *testing.T) {
	a := startAgent(t, agentConf{Confined: true})
	secret := writeSecret(t)
	f := faultWithin(t, a, "domain.create", secret)
	if f.Code != 1001 || !strings.Contains(f.Message, "file_dirs") {
		t.Errorf("fault %d %q, want 1001 naming the rule", f.Code, f.Message)
	}
	// A symlink inside the agent's own directories is no way around it.
	link := filepath.Join(a.Dir, "vm.cfg")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if f := faultWithin(t, a, "domain.create", link); f.Code != 1001 {
		t.Errorf("symlink: fault %d %q, want 1001", f.Code, f.Message)
	}
	for _, s := range []string{secretLine, "confinement-sentinel", "bin:*"} {
		if strings.Contains(f.Message, s) {
			t.Errorf("fault quotes the file: %q", f.Message)
		}
		if strings.Contains(a.Log(), s) {
			t.Errorf("agent log quotes the file (%q)", s)
		}
	}
}

func TestConfineCreateNotRegularRefused(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, agentConf{FileDirs: []string{dir}})
	fifo := filepath.Join(dir, "vm.cfg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Warm up, then count the agent's OS threads: a call that blocked on
	// the FIFO would hold one each.
	if f := faultWithin(t, a, "domain.create", fifo); f.Code != -32602 {
		t.Fatalf("FIFO: fault %d %q, want -32602", f.Code, f.Message)
	}
	before := threads(t, a.cmd.Process.Pid)
	for i := 0; i < 20; i++ {
		if f := faultWithin(t, a, "domain.create", fifo); f.Code != -32602 {
			t.Fatalf("FIFO: fault %d %q, want -32602", f.Code, f.Message)
		}
	}
	if after := threads(t, a.cmd.Process.Pid); after > before+4 {
		t.Errorf("the agent's threads grew from %d to %d over 20 FIFO calls", before, after)
	}
	if f := faultWithin(t, a, "domain.create", dir); f.Code != -32602 {
		t.Errorf("directory: fault %d %q, want -32602", f.Code, f.Message)
	}
}

func TestConfineSaveRestoreOutsideRefused(t *testing.T) {
	a := startAgent(t, agentConf{Confined: true})
	a.call(t, "domain.create", nil, vmcfgText("sv", 64, "dirty=0"))
	a.call(t, "domain.start", nil, "sv")
	out := filepath.Join(t.TempDir(), "new-root-file")
	if f := faultWithin(t, a, "domain.save", "sv", out); f.Code != 1001 {
		t.Errorf("save outside: fault %d %q, want 1001", f.Code, f.Message)
	}
	if _, err := os.Lstat(out); err == nil {
		t.Errorf("save outside created %s", out)
	}
	secret := writeSecret(t)
	f := faultWithin(t, a, "domain.restore", secret)
	if f.Code != 1001 {
		t.Errorf("restore outside: fault %d %q, want 1001", f.Code, f.Message)
	}
	if strings.Contains(f.Message, "root:") || strings.Contains(a.Log(), "confinement-sentinel") {
		t.Errorf("restore quotes the file: %q", f.Message)
	}
}

func TestConfineSaveRestoreFIFORefused(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, agentConf{FileDirs: []string{dir}})
	a.call(t, "domain.create", nil, vmcfgText("sf", 64, "dirty=0"))
	a.call(t, "domain.start", nil, "sf")
	fifo := filepath.Join(dir, "image")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if f := faultWithin(t, a, "domain.restore", fifo); f.Code != -32602 {
		t.Errorf("restore FIFO: fault %d %q, want -32602", f.Code, f.Message)
	}
	if f := faultWithin(t, a, "domain.save", "sf", fifo); f.Code != -32602 {
		t.Errorf("save FIFO: fault %d %q, want -32602", f.Code, f.Message)
	}
}

// An offline migration with --remove of a domain whose vm.cfg names a disk
// outside every repository neither copies nor deletes that file.
func TestConfineOfflineOutsideDiskNotCopied(t *testing.T) {
	src := startAgent(t, agentConf{Listen: "127.0.0.2", RelocPort: freePort(t, "127.0.0.2"), Confined: true,
		Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Confined: true,
		Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	makeRepo(t, src)
	repoB, _, mpB := makeRepo(t, dst)
	secret := writeSecret(t)
	want, _ := os.ReadFile(secret)
	src.call(t, "domain.create", nil, offlineCfg("esc", fmt.Sprintf("'file:%s,xvda,w'", secret), ""))
	out, code := runCmd(t, "", []string{"OVM_TARGET_PASSWORD_FILE=" + passwordFile(t)}, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "--remove", "--force", "--target-repo", repoB, "esc", dst.Reloc)
	if code == 0 {
		t.Errorf("migrate of a disk outside the repositories succeeded:\n%s", out)
	}
	if got, err := os.ReadFile(secret); err != nil || string(got) != string(want) {
		t.Errorf("the outside file was removed or changed: %v", err)
	}
	copied, _ := filepath.Glob(filepath.Join(mpB, "running_pool", "*", "*"))
	for _, c := range copied {
		if b, _ := os.ReadFile(c); strings.Contains(string(b), "confinement-sentinel") {
			t.Errorf("the outside file was copied to the target as %s", c)
		}
	}
}

// Detach and attach folders are confined: an attach from a folder outside
// every repository, or through a symlink in a repository that points
// outside, is refused with 1001 and registers nothing; a detach whose
// folder is a symlink leading outside writes no manifest there.
func TestConfineDetachAttachFolders(t *testing.T) {
	a := startAgent(t, agentConf{Confined: true, Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	_, _, mp := makeRepo(t, a)
	for _, name := range []string{"at1", "at2"} {
		disk := filepath.Join(mp, "running_pool", name, "System.img")
		writeDisk(t, disk, 16<<20, 4<<20, 7)
		a.call(t, "domain.create", nil, offlineCfg(name, fmt.Sprintf("'file:%s,xvda,w'", disk), ""))
	}
	a.call(t, "domain.detach", nil, "at1")
	outside := filepath.Join(t.TempDir(), "at1")
	if out, err := exec.Command("cp", "-a", filepath.Join(mp, "running_pool", "at1"), outside).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	a.call(t, "domain.delete", nil, "at1")
	known := func(name string) bool {
		var in map[string]any
		return a.Unix().Call(context.Background(), "domain.info", &in, name) == nil
	}
	if f := faultWithin(t, a, "domain.attach", outside); f.Code != 1001 || !strings.Contains(f.Message, "file_dirs") {
		t.Errorf("attach outside: fault %d %q, want 1001 naming the rule", f.Code, f.Message)
	}
	link := filepath.Join(mp, "running_pool", "lnk")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if f := faultWithin(t, a, "domain.attach", link); f.Code != 1001 {
		t.Errorf("attach through a symlink: fault %d %q, want 1001", f.Code, f.Message)
	}
	if f := faultWithin(t, a, "domain.attach", filepath.Join(link, "ovs-detached.json")); f.Code != 1001 {
		t.Errorf("attach of a manifest through a symlink: fault %d %q, want 1001", f.Code, f.Message)
	}
	if known("at1") {
		t.Errorf("a refused attach registered at1")
	}
	if _, err := os.Stat(filepath.Join(outside, "ovs-detached.json")); err != nil {
		t.Errorf("a refused attach removed the manifest outside: %v", err)
	}
	// at2's folder becomes a symlink to a directory outside.
	out2 := filepath.Join(t.TempDir(), "at2")
	dir2 := filepath.Join(mp, "running_pool", "at2")
	if out, err := exec.Command("cp", "-a", dir2, out2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.RemoveAll(dir2); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(out2, dir2); err != nil {
		t.Fatal(err)
	}
	if f := faultWithin(t, a, "domain.detach", "at2"); f.Code != 1001 && f.Code != 1003 || !strings.Contains(f.Message, "outside") {
		t.Errorf("detach into a symlinked folder: fault %d %q, want 1001 or 1003", f.Code, f.Message)
	}
	if _, err := os.Lstat(filepath.Join(out2, "ovs-detached.json")); err == nil {
		t.Errorf("detach wrote a manifest outside the repository")
	}
	if in := a.info(t, "at2"); in.State != "stopped" {
		t.Errorf("at2 is %s after a refused detach", in.State)
	}
}

// The target of an offline migration writes and registers only inside its
// repositories: a hostile peer's offer whose shared disk path leaves the
// repository (../..), or whose name is a path, is refused in the dry run.
func TestConfineOfflineTargetPaths(t *testing.T) {
	dst := startAgent(t, agentConf{Listen: "127.0.0.3", RelocPort: freePort(t, "127.0.0.3"), Confined: true,
		Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	repo, _, mp := makeRepo(t, dst)
	secret := writeSecret(t)
	rel, err := filepath.Rel(mp, secret)
	if err != nil {
		t.Fatal(err)
	}
	const uuid = "5a0b2f8e-1111-4222-8333-944445555667"
	check := func(name string, disk relocation.Disk) *relocation.Welcome {
		t.Helper()
		cfg := vmcfgText("esc2", 64, "", "uuid = '"+uuid+"'")
		hello := &relocation.Hello{Op: relocation.OpCheck, Protocol: 1, User: "admin", Password: testPassword, Migration: "00112233445566778899aabbccddeeaa",
			Offer:   relocation.Offer{Name: name, UUID: uuid, MemoryMiB: 64, VCPUs: 1, Engine: "sim", Config: cfg, Disks: []relocation.Disk{disk}},
			Offline: &relocation.OfflineRequest{}}
		c, wl, err := relocation.Dial(context.Background(), relocation.DialOptions{Addr: dst.Reloc}, hello)
		if c != nil {
			c.Close()
		}
		if err != nil && wl == nil {
			t.Fatalf("dry run: %v", err)
		}
		return wl
	}
	wl := check("esc2", relocation.Disk{Path: secret, Device: "xvda", Repository: repo, Rel: rel})
	if wl.OK || !strings.Contains(strings.Join(wl.Problems, "\n"), "leaves that repository") {
		t.Errorf("shared disk %q: %+v, want a refusal", rel, wl)
	}
	wl = check("../../esc2", relocation.Disk{Path: "/x/System.img", Device: "xvda", File: true, Size: 1 << 20, Data: 1 << 20})
	if wl.OK || !strings.Contains(strings.Join(wl.Problems, "\n"), "one path element") {
		t.Errorf("name ../../esc2: %+v, want a refusal", wl)
	}
}

// threads reads the Threads line of /proc/PID/status.
func threads(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			var n int
			fmt.Sscan(strings.TrimSpace(v), &n)
			return n
		}
	}
	t.Fatalf("no Threads line in /proc/%d/status", pid)
	return 0
}

// A symlink inside a repository that points outside is no way around the
// rule: create, restore and save through it are refused with 1001, and
// save creates nothing outside.
func TestConfineRepositorySymlinkOutside(t *testing.T) {
	a := startAgent(t, agentConf{Confined: true, Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	_, _, mp := makeRepo(t, a)
	secret := writeSecret(t)
	link := filepath.Join(mp, "running_pool", "vm.cfg")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	f := faultWithin(t, a, "domain.create", link)
	if f.Code != 1001 || !strings.Contains(f.Message, "file_dirs") {
		t.Errorf("create through a symlink: fault %d %q, want 1001 naming the rule", f.Code, f.Message)
	}
	if f := faultWithin(t, a, "domain.restore", link); f.Code != 1001 {
		t.Errorf("restore through a symlink: fault %d %q, want 1001", f.Code, f.Message)
	}
	outDir := t.TempDir()
	dirLink := filepath.Join(mp, "running_pool", "out")
	if err := os.Symlink(outDir, dirLink); err != nil {
		t.Fatal(err)
	}
	a.call(t, "domain.create", nil, vmcfgText("sl", 64, "dirty=0"))
	a.call(t, "domain.start", nil, "sl")
	if f := faultWithin(t, a, "domain.save", "sl", filepath.Join(dirLink, "image")); f.Code != 1001 {
		t.Errorf("save through a symlinked folder: fault %d %q, want 1001", f.Code, f.Message)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 0 {
		t.Errorf("save through a symlink wrote %s outside the repository", ents[0].Name())
	}
	for _, s := range []string{secretLine, "confinement-sentinel", "bin:*"} {
		if strings.Contains(f.Message, s) || strings.Contains(a.Log(), s) {
			t.Errorf("a fault or the log quotes the file (%q)", s)
		}
	}
}

// A vm.cfg naming a disk outside the repositories never makes the agent
// read (or block on) a file there: a FIFO named like a detach manifest
// next to that disk does not hang domain.create.
func TestConfineCreateNoManifestReadOutside(t *testing.T) {
	a := startAgent(t, agentConf{Confined: true, Extra: map[string][]string{"agent": {"hypervisor = sim", "memory_reserve = 0"}}})
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "ovs-detached.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := a.Unix().Call(ctx, "domain.create", nil, offlineCfg("fm", fmt.Sprintf("'file:%s,xvda,w'", filepath.Join(dir, "System.img")), ""))
	if _, fault := err.(*client.Fault); err != nil && !fault {
		t.Fatalf("domain.create with a FIFO beside its disk: %v (blocked?)", err)
	}
	// A file there named like a manifest is not read: the create neither
	// fails on it nor quotes it.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, "ovs-detached.json"), []byte(secretLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = a.Unix().Call(ctx, "domain.create", nil, offlineCfg("fm2", fmt.Sprintf("'file:%s,xvda,w'", filepath.Join(dir2, "System.img")), ""))
	if err != nil {
		t.Errorf("domain.create with a file named like a manifest beside its disk outside: %v", err)
	}
	if strings.Contains(a.Log(), "confinement-sentinel") {
		t.Errorf("the agent log quotes the file")
	}
}
