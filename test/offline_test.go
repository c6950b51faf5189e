package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/relocation/filexfer"
)

// makeRepo turns a fresh folder into a repository of agent a (the
// ovs-makerepo script) and returns its UUID, source folder and mount point.
func makeRepo(t *testing.T, a *Agent) (uuid, src, mp string) {
	t.Helper()
	src = t.TempDir()
	p, _ := filepath.Abs("../scripts/ovs-makerepo")
	out, code := runCmd(t, "", []string{"OVS_AGENT_BIN=" + bin("ovs-agent"), "OVS_AGENT_CONFIG=" + a.Config}, p, src, "1", "offline test")
	if code != 0 {
		t.Fatalf("ovs-makerepo (exit %d): %s", code, out)
	}
	uuid = strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	st := a.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	return uuid, src, st.MountPoint
}

// shareRepo adds an existing repository folder to agent a as well.
func shareRepo(t *testing.T, a *Agent, uuid, src string) string {
	t.Helper()
	var st map[string]any
	a.call(t, "repository.add", &st, src)
	return a.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" }).MountPoint
}

// writeDisk makes a sparse image of size bytes with data random bytes
// written in 4 MiB pieces spread over it; it returns the bytes written.
func writeDisk(t *testing.T, path string, size, data int64, seed uint64) int64 {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(size)
	rng := rand.New(rand.NewPCG(seed, 2))
	const piece = 4 << 20
	n := data / piece
	buf := make([]byte, piece)
	for i := range n {
		for j := range buf {
			buf[j] = byte(rng.Uint32()) | 1
		}
		if _, err := f.WriteAt(buf, i*(size/n)); err != nil {
			t.Fatal(err)
		}
	}
	return n * piece
}

func digest(t *testing.T, path string) string {
	t.Helper()
	d, err := filexfer.Digest(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func allocatedBytes(t *testing.T, path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

type offStatus struct {
	ID           string  `xmlrpc:"id"`
	Phase        string  `xmlrpc:"phase"`
	Offline      bool    `xmlrpc:"offline"`
	BytesSent    int64   `xmlrpc:"bytes_sent"`
	BytesTotal   int64   `xmlrpc:"bytes_total"`
	Resumed      int64   `xmlrpc:"resumed_bytes"`
	Percent      float64 `xmlrpc:"percent"`
	Copied       int     `xmlrpc:"copied_disks"`
	Shared       int     `xmlrpc:"shared_disks"`
	SourceKeptAs string  `xmlrpc:"source_kept_as"`
	Error        string  `xmlrpc:"error"`
}

func (a *Agent) offStatus(t *testing.T, id string) offStatus {
	t.Helper()
	var st offStatus
	a.call(t, "migration.status", &st, id)
	return st
}

func (a *Agent) waitOffline(t *testing.T, id string, ok func(offStatus) bool) offStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var st offStatus
	for time.Now().Before(deadline) {
		st = a.offStatus(t, id)
		if ok(st) {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("migration %s: last status %+v", id, st)
	return st
}

func offlineCfg(name, disks string, extra string) string {
	return fmt.Sprintf("name = '%s'\nmemory = 64\nvcpus = 1\ndisk = [%s]\n%s", name, disks, extra)
}

// TestOfflineMigration moves stopped domains with their disks between two
// agents: a sparse multi-GiB disk (bytes sent close to bytes written), a
// disk on a repository both share (not copied), an interrupted copy that
// resumes, the source data kept renamed or removed, --start, and a cancel.
func TestOfflineMigration(t *testing.T) {
	src, dst := pair(t, "sim", "sim")
	repoA, _, mpA := makeRepo(t, src)
	repoB, _, mpB := makeRepo(t, dst)
	shared, sharedSrc, mpS := makeRepo(t, src)
	mpS2 := shareRepo(t, dst, shared, sharedSrc)

	// off1: a 4 GiB sparse disk with 96 MiB of data, and a shared disk.
	sys := filepath.Join(mpA, "running_pool", "off1", "System.img")
	written := writeDisk(t, sys, 4<<30, 96<<20, 1)
	data := filepath.Join(mpS, "sharedDisk", "data.img")
	writeDisk(t, data, 64<<20, 8<<20, 2)
	want := digest(t, sys)
	var created map[string]any
	src.call(t, "domain.create", &created, offlineCfg("off1", fmt.Sprintf("'file:%s,xvda,w', 'file:%s,xvdb,w'", sys, data), ""))

	var chk checkRes
	src.call(t, "migration.check", &chk, "off1", dst.Reloc, migrateOpts(nil))
	if !chk.OK {
		t.Fatalf("dry run of a movable stopped domain: %v", chk.Problems)
	}

	// Interrupt the copy: the target agent dies after a few MiB.
	var id string
	src.call(t, "domain.migrate", &id, "off1", dst.Reloc, migrateOpts(map[string]any{"rate": 24}))
	src.waitOffline(t, id, func(s offStatus) bool { return s.BytesSent > 40<<20 })
	dst.Signal(syscall.SIGKILL)
	st := src.waitOffline(t, id, func(s offStatus) bool { return s.Phase == "failed" })
	if !strings.Contains(st.Error, "resume") {
		t.Errorf("an interrupted copy says %q; it should say it can resume", st.Error)
	}
	if in := src.info(t, "off1"); in.State != "stopped" {
		t.Fatalf("after a failed copy the source domain is %s", in.State)
	}
	if _, err := os.Stat(filepath.Join(mpB, "running_pool", "off1")); !os.IsNotExist(err) {
		t.Fatalf("a failed copy left running_pool/off1 on the target")
	}
	dst.start()
	dst.waitReady()
	dst.waitRepo(t, repoB, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	dst.waitRepo(t, shared, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })

	out, code := runCmd(t, "", []string{"OVM_TARGET_PASSWORD_FILE=" + passwordFile(t)}, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "off1", dst.Reloc)
	if code != 0 || !strings.Contains(out, "moved off1") {
		t.Fatalf("ovm migrate (resume) exit %d:\n%s", code, out)
	}
	var list []offStatus
	src.call(t, "migration.list", &list)
	st = list[0]
	t.Logf("resumed: %+v", st)
	if st.Resumed < 16<<20 || st.Copied != 1 || st.Shared != 1 {
		t.Errorf("resumed copy: %+v (want >= 16 MiB resumed, 1 disk copied, 1 shared)", st)
	}
	if st.BytesSent > written-st.Resumed+8<<20 {
		t.Errorf("the resumed copy sent %d bytes; %d of %d were on the target already", st.BytesSent, st.Resumed, written)
	}
	// The target has it, stopped, with its disk copied sparse and intact.
	if in := dst.info(t, "off1"); in.State != "stopped" {
		t.Fatalf("on the target off1 is %s", in.State)
	}
	got := filepath.Join(mpB, "running_pool", "off1", "System.img")
	if d := digest(t, got); d != want {
		t.Fatalf("copied disk digest %s, source %s", d, want)
	}
	if a := allocatedBytes(t, got); a > written+8<<20 {
		t.Errorf("the copy allocates %d bytes for %d written: holes were filled", a, written)
	}
	cfg, _ := os.ReadFile(filepath.Join(dst.Dir, "state", "domains", "off1", "vm.cfg"))
	if !strings.Contains(string(cfg), got) || !strings.Contains(string(cfg), filepath.Join(mpS2, "sharedDisk", "data.img")) {
		t.Errorf("target vm.cfg does not name the copied and the shared disk:\n%s", cfg)
	}
	// The source forgot it and kept its data renamed; the shared disk stays.
	if f := src.fault(t, "domain.info", "off1"); f == nil {
		t.Errorf("off1 is still a domain on the source")
	}
	kept, _ := filepath.Glob(filepath.Join(mpA, "running_pool", "off1.migrated-*", "System.img"))
	if len(kept) != 1 || st.SourceKeptAs == "" {
		t.Errorf("source copy kept as %q, found %v", st.SourceKeptAs, kept)
	}
	if _, err := os.Stat(data); err != nil {
		t.Errorf("the shared disk was touched: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(mpB, ".ovs-incoming"))
	if len(entries) != 0 {
		t.Errorf("the target kept partial copies after the commit: %v", entries)
	}

	// off2: --remove and --start.
	sys2 := filepath.Join(mpA, "running_pool", "off2", "System.img")
	writeDisk(t, sys2, 256<<20, 8<<20, 3)
	src.call(t, "domain.create", &created, offlineCfg("off2", fmt.Sprintf("'file:%s,xvda,w'", sys2), ""))
	out, code = runCmd(t, "", []string{"OVM_TARGET_PASSWORD_FILE=" + passwordFile(t)}, bin("ovm"), "--url=unix://"+src.Socket, "migrate", "--remove", "--start", "--target-repo", repoB, "off2", dst.Reloc)
	if code != 0 {
		t.Fatalf("ovm migrate --remove --start exit %d:\n%s", code, out)
	}
	if in := dst.info(t, "off2"); in.State != "running" {
		t.Errorf("--start: off2 is %s on the target", in.State)
	}
	if left, _ := filepath.Glob(filepath.Join(mpA, "running_pool", "off2*")); len(left) != 0 {
		t.Errorf("--remove left %v on the source", left)
	}
	dst.call(t, "domain.destroy", &created, "off2")

	// off3: a cancelled copy leaves the source as it was and nothing on the target.
	sys3 := filepath.Join(mpA, "running_pool", "off3", "System.img")
	writeDisk(t, sys3, 1<<30, 64<<20, 4)
	src.call(t, "domain.create", &created, offlineCfg("off3", fmt.Sprintf("'file:%s,xvda,w'", sys3), ""))
	src.call(t, "domain.migrate", &id, "off3", dst.Reloc, migrateOpts(map[string]any{"rate": 16}))
	src.waitOffline(t, id, func(s offStatus) bool { return s.BytesSent > 4<<20 })
	var cst offStatus
	src.call(t, "migration.cancel", &cst, id)
	if cst.Phase != "cancelled" {
		t.Fatalf("cancel: %+v", cst)
	}
	if in := src.info(t, "off3"); in.State != "stopped" {
		t.Errorf("after a cancel the source domain is %s", in.State)
	}
	dst.WaitLog("offline migration: copy not complete")
	if left, _ := filepath.Glob(filepath.Join(mpB, "*", "*off3*")); len(left) != 0 {
		t.Errorf("a cancelled copy left %v on the target", left)
	}
	if entries, _ := os.ReadDir(filepath.Join(mpB, ".ovs-incoming")); len(entries) != 0 {
		t.Errorf("a cancelled copy left a partial copy on the target: %v", entries)
	}
	_ = repoA
}

func passwordFile(t *testing.T) string {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte(testPassword+"\n"), 0o600)
	return pw
}

// TestOfflineMigrationSharedOnly moves a stopped domain whose only disk is
// on a repository both hosts share: nothing is copied, the disk stays.
func TestOfflineMigrationSharedOnly(t *testing.T) {
	src, dst := pair(t, "sim", "sim")
	shared, sharedSrc, mpS := makeRepo(t, src)
	shareRepo(t, dst, shared, sharedSrc)
	disk := filepath.Join(mpS, "sharedDisk", "only.img")
	writeDisk(t, disk, 64<<20, 4<<20, 7)
	var res map[string]any
	src.call(t, "domain.create", &res, offlineCfg("sh1", fmt.Sprintf("'file:%s,xvda,w'", disk), ""))
	var id string
	src.call(t, "domain.migrate", &id, "sh1", dst.Reloc, migrateOpts(nil))
	st := src.waitOffline(t, id, func(s offStatus) bool { return s.Phase == "completed" || s.Phase == "failed" })
	if st.Phase != "completed" || st.Copied != 0 || st.Shared != 1 {
		t.Fatalf("shared-only offline migration: %+v", st)
	}
	if dst.info(t, "sh1").State != "stopped" {
		t.Errorf("sh1 not registered on the target")
	}
	if _, err := os.Stat(disk); err != nil {
		t.Errorf("the shared disk was moved: %v", err)
	}
}
