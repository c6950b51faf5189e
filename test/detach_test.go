package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOfflineValidation provokes each reason a target refuses a stopped
// domain, checks the dry run lists them one per line (CLI exit 1), and
// that --force skips what may be skipped and says so in the target's log.
func TestOfflineValidation(t *testing.T) {
	src, dst := pair(t, "sim", "kvm")
	_, _, mpA := makeRepo(t, src)
	// The target's only repository is a 48 MiB file system.
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	p, _ := filepath.Abs("../scripts/ovs-makerepo")
	out, code := runCmd(t, "", []string{"OVS_AGENT_BIN=" + bin("ovs-agent"), "OVS_AGENT_CONFIG=" + dst.Config}, p, small, "1", "small")
	if code != 0 {
		t.Fatalf("ovs-makerepo: %s", out)
	}
	repoB := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	dst.waitRepo(t, repoB, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })

	sys := filepath.Join(mpA, "running_pool", "v1", "System.img")
	writeDisk(t, sys, 1<<30, 96<<20, 5)
	var res map[string]any
	src.call(t, "domain.create", &res, offlineCfg("v1", fmt.Sprintf("'file:%s,xvda,w'", sys), "vif = ['mac=00:16:3e:00:00:11, bridge=ovsnobr0', 'mac=00:16:3e:00:00:12, bridge=ovsnobr1']\n"))
	dst.call(t, "domain.create", &res, "name = 'v1'\nmemory = 64\n")

	pw := passwordFile(t)
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "-n", "--target-password-file", pw, "v1", dst.Reloc)
	if code != 1 {
		t.Fatalf("dry run exit %d (want 1):\n%s", code, out)
	}
	for _, want := range []string{"name: a domain named v1 exists", "bridge ovsnobr0", "bridge ovsnobr1", "engine: the domain runs on the sim engine", "space: repository"} {
		n := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, want) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("dry run: %q on %d lines (want 1):\n%s", want, n, out)
		}
	}
	// The real migration refuses with the same reasons and moves nothing.
	var id string
	src.call(t, "domain.migrate", &id, "v1", dst.Reloc, migrateOpts(nil))
	st := src.waitOffline(t, id, func(s offStatus) bool { return s.Phase == "failed" })
	if !strings.Contains(st.Error, "ovsnobr0") || src.info(t, "v1").State != "stopped" {
		t.Errorf("refused migration: %+v, source %s", st, src.info(t, "v1").State)
	}
	// --force skips bridges, engine and space, but not a name taken.
	src.call(t, "domain.migrate", &id, "v1", dst.Reloc, migrateOpts(map[string]any{"force": true}))
	st = src.waitOffline(t, id, func(s offStatus) bool { return s.Phase == "failed" })
	if !strings.Contains(st.Error, "name: a domain named v1") || strings.Contains(st.Error, "ovsnobr0") {
		t.Errorf("forced migration with the name taken: %q", st.Error)
	}
	var deleted bool
	dst.call(t, "domain.delete", &deleted, "v1")
	// Smaller data fits; --force passes the missing bridges and engine.
	sys2 := filepath.Join(mpA, "running_pool", "v2", "System.img")
	writeDisk(t, sys2, 1<<30, 8<<20, 6)
	src.call(t, "domain.create", &res, offlineCfg("v2", fmt.Sprintf("'file:%s,xvda,w'", sys2), "vif = ['bridge=ovsnobr0']\n"))
	src.call(t, "domain.migrate", &id, "v2", dst.Reloc, migrateOpts(map[string]any{"force": true}))
	st = src.waitOffline(t, id, func(s offStatus) bool { return s.Phase == "completed" || s.Phase == "failed" })
	if st.Phase != "completed" {
		t.Fatalf("forced migration: %+v", st)
	}
	dst.WaitLog("validation skipped (--force)")
	if d := digest(t, filepath.Join(small, "running_pool", "v2", "System.img")); d != digest(t, kept(t, mpA, "v2")) {
		t.Errorf("forced copy differs from the source")
	}
}

func kept(t *testing.T, mp, name string) string {
	m, _ := filepath.Glob(filepath.Join(mp, "running_pool", name+".migrated-*", "System.img"))
	if len(m) != 1 {
		t.Fatalf("kept copy of %s: %v", name, m)
	}
	return m[0]
}

// TestDetachAttach detaches a domain, copies its folder by hand to another
// host's repository and attaches it there; a disk changed after the detach
// is caught; a folder holding another domain's manifest is refused.
func TestDetachAttach(t *testing.T) {
	src, dst := pair(t, "sim", "sim")
	_, _, mpA := makeRepo(t, src)
	_, _, mpB := makeRepo(t, dst)
	ovm := func(a *Agent, args ...string) (string, int) {
		return runCmd(t, "", nil, bin("ovm"), append([]string{"--url=unix://" + a.Socket}, args...)...)
	}
	var res map[string]any
	for i, name := range []string{"d1", "d2"} {
		sys := filepath.Join(mpA, "running_pool", name, "System.img")
		writeDisk(t, sys, 512<<20, 16<<20, uint64(10+i))
		src.call(t, "domain.create", &res, offlineCfg(name, fmt.Sprintf("'file:%s,xvda,w'", sys), ""))
		out, code := ovm(src, "detach", name)
		if code != 0 || !strings.Contains(out, "ovs-detached.json") {
			t.Fatalf("ovm detach %s (exit %d): %s", name, code, out)
		}
	}
	if in := src.info(t, "d1"); in.State != "detached" {
		t.Fatalf("detached domain is %s", in.State)
	}
	if out, code := ovm(src, "start", "d1"); code == 0 || !strings.Contains(out, "detached") {
		t.Errorf("start of a detached domain (exit %d): %s", code, out)
	}
	// A create onto a folder holding d1's manifest is refused.
	f := src.fault(t, "domain.create", offlineCfg("intruder", fmt.Sprintf("'file:%s,xvdb,w'", filepath.Join(mpA, "running_pool", "d1", "other.img")), ""))
	if f == nil || !strings.Contains(f.Message, "detach manifest of domain d1") {
		t.Errorf("create onto a detached folder: %v", f)
	}
	// Copy both folders by hand, sparse.
	for _, name := range []string{"d1", "d2"} {
		if out, err := exec.Command("cp", "-a", "--sparse=always", filepath.Join(mpA, "running_pool", name), filepath.Join(mpB, "running_pool", name)).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	// d2's disk is changed on the way: attach lists it and registers nothing.
	img := filepath.Join(mpB, "running_pool", "d2", "System.img")
	fh, _ := os.OpenFile(img, os.O_RDWR, 0)
	fh.WriteAt([]byte{0x42}, 4096)
	fh.Close()
	out, code := ovm(dst, "attach", filepath.Join(mpB, "running_pool", "d2"))
	if code == 0 || !strings.Contains(out, "checksum differs") {
		t.Errorf("attach of a tampered disk (exit %d): %s", code, out)
	}
	if dst.fault(t, "domain.info", "d2") == nil {
		t.Errorf("a failed attach registered d2")
	}
	// -F skips the checksum; the manifest is consumed.
	if out, code := ovm(dst, "attach", "-F", filepath.Join(mpB, "running_pool", "d2")); code != 0 {
		t.Errorf("attach -F (exit %d): %s", code, out)
	}
	dst.WaitLog("attach with validation skipped (-F)")

	out, code = ovm(dst, "attach", filepath.Join(mpB, "running_pool", "d1", "ovs-detached.json"))
	if code != 0 || !strings.Contains(out, "attached d1") {
		t.Fatalf("attach d1 (exit %d): %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(mpB, "running_pool", "d1", "ovs-detached.json")); !os.IsNotExist(err) {
		t.Errorf("the manifest stays after a successful attach")
	}
	cfg, _ := os.ReadFile(filepath.Join(dst.Dir, "state", "domains", "d1", "vm.cfg"))
	if !strings.Contains(string(cfg), filepath.Join(mpB, "running_pool", "d1", "System.img")) {
		t.Errorf("attached vm.cfg does not name the disk where it is now:\n%s", cfg)
	}
	dst.call(t, "domain.start", &res, "d1")
	dst.waitInfo(t, "d1", "running", func(i domInfo) bool { return i.State == "running" })
	dst.call(t, "domain.destroy", &res, "d1")
	// Attaching again (the same name) is refused.
	out, code = ovm(dst, "attach", filepath.Join(mpA, "running_pool", "d1"))
	if code == 0 {
		t.Errorf("attach from a folder not on a repository here, or a name taken, succeeded: %s", out)
	}
	// Back on the source, the detached d1 can be attached in place again.
	if out, code := ovm(src, "attach", filepath.Join(mpA, "running_pool", "d1")); code != 0 || src.info(t, "d1").State != "stopped" {
		t.Errorf("re-attach on the source (exit %d): %s", code, out)
	}
}

// TestManifestPathEscape: a manifest whose disk path leaves the repository
// is rejected with a clear error.
func TestManifestPathEscape(t *testing.T) {
	a := domainAgent(t, "sim")
	_, _, mp := makeRepo(t, a)
	dir := filepath.Join(mp, "running_pool", "evil")
	os.MkdirAll(dir, 0o755)
	uuid := "3f2a9c1e-0b7d-4e55-9a21-6c8d0e4f1a2b"
	man := fmt.Sprintf(`{"version":1,"name":"evil","uuid":"%s","detached_at":"2026-11-22T00:00:00Z","detached_from":"x","agent_version":"x",
"config":"name = 'evil'\nuuid = '%s'\nmemory = 64\n","folder":"running_pool/evil","repository":"%s",
"disks":[{"device":"xvda","path":"../../../etc/shadow","repository":"%s","size":1,"digest":"sha256-blocks:%s"}],
"requires":{"engine":"sim","memory_mib":64,"vcpus":1}}`, uuid, uuid, uuid, uuid, strings.Repeat("0", 64))
	os.WriteFile(filepath.Join(dir, "ovs-detached.json"), []byte(man), 0o644)
	f := a.fault(t, "domain.attach", dir)
	if f == nil || !strings.Contains(f.Message, "not a clean path inside the repository") {
		t.Errorf("escaping manifest: %v", f)
	}
}
