package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type repoStatus struct {
	UUID       string   `xmlrpc:"uuid"`
	State      string   `xmlrpc:"state"`
	Options    string   `xmlrpc:"options"`
	MountPoint string   `xmlrpc:"mount_point"`
	Source     string   `xmlrpc:"source"`
	Shared     string   `xmlrpc:"shared"`
	Error      string   `xmlrpc:"error"`
	Domains    []string `xmlrpc:"domains"`
}

type repoReport struct {
	Repositories []repoStatus `xmlrpc:"repositories"`
	Problems     []string     `xmlrpc:"problems"`
}

func (a *Agent) repos(t *testing.T) repoReport {
	var r repoReport
	a.call(t, "repository.list", &r)
	return r
}

// waitRepo polls repository.list until ok holds for the repository uuid.
func (a *Agent) waitRepo(t *testing.T, uuid, what string, ok func(repoStatus, bool) bool) repoStatus {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last repoStatus
	for time.Now().Before(deadline) {
		found := false
		for _, r := range a.repos(t).Repositories {
			if r.UUID == uuid {
				last, found = r, true
			}
		}
		if ok(last, found) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("repository %s: %s never happened; last %+v", uuid, what, last)
	return last
}

// TestRepositoriesEndToEnd drives repositories as an operator does: the
// ovs-makerepo script, the live watcher, templates, a domain using a
// repository, ovs-offlinerepo.
func TestRepositoriesEndToEnd(t *testing.T) {
	a := domainAgent(t, "sim")
	script := func(name string, args ...string) (string, int) {
		p, _ := filepath.Abs("../scripts/" + name)
		return runCmd(t, "", []string{"OVS_AGENT_BIN=" + bin("ovs-agent"), "OVS_AGENT_CONFIG=" + a.Config}, p, args...)
	}
	src := t.TempDir()
	out, code := script("ovs-makerepo", src, "1", "test repository")
	if code != 0 {
		t.Fatalf("ovs-makerepo (exit %d): %s", code, out)
	}
	uuid := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	if len(uuid) != 36 {
		t.Fatalf("ovs-makerepo printed %q, not a UUID", out)
	}
	st := a.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	for _, d := range []string{"running_pool", "seed_pool", "iso_pool", "publish_pool", "sharedDisk"} {
		if fi, err := os.Stat(filepath.Join(st.MountPoint, d)); err != nil || !fi.IsDir() {
			t.Fatalf("repository lacks %s: %v", d, err)
		}
	}
	// A template with a sparse disk image.
	tdir := filepath.Join(st.MountPoint, "seed_pool", "tmpl1")
	os.MkdirAll(tdir, 0o755)
	img := filepath.Join(tdir, "System.img")
	f, _ := os.Create(img)
	f.Truncate(1 << 30)
	f.WriteAt([]byte("boot"), 0)
	f.Close()
	os.WriteFile(filepath.Join(tdir, "vm.cfg"), []byte(fmt.Sprintf("# template\nname = 'tmpl1'\nmemory = 64\nvcpus = 1\ndisk = ['file:%s,xvda,w']\nvif = ['mac=00:16:3e:00:00:01, bridge=xenbr0']\nworkload = 'dirty=1M/s,hot=8M'\n", img)), 0o644)
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "template", "list", uuid)
	if code != 0 || !strings.Contains(out, "tmpl1") {
		t.Fatalf("ovm template list (exit %d): %s", code, out)
	}
	out, code = runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "create", "--from-template", "tmpl1", "web9")
	if code != 0 || !strings.Contains(out, "created web9") {
		t.Fatalf("ovm create --from-template (exit %d): %s", code, out)
	}
	copied, err := os.ReadFile(filepath.Join(st.MountPoint, "running_pool", "web9", "vm.cfg"))
	if err != nil || strings.Contains(string(copied), "00:16:3e:00:00:01") || !strings.Contains(string(copied), "00:16:3e:") || !strings.Contains(string(copied), "running_pool/web9/System.img") {
		t.Fatalf("copied vm.cfg (fresh MAC, disk in running_pool expected):\n%s", copied)
	}
	// The domain runs with its disk on the repository: removal is refused.
	a.call(t, "domain.start", nil, "web9")
	f2 := a.fault(t, "repository.remove", uuid)
	if !strings.Contains(f2.Message, "web9") {
		t.Fatalf("removing a repository in use: %v", f2)
	}
	a.waitRepo(t, uuid, "still mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" || r.State == "in use" })
	a.call(t, "domain.destroy", nil, "web9")

	// Live change of the options file: remounted read-only, then back.
	optsFile := filepath.Join(a.Dir, "ovs", "repositories.options")
	setOpts := func(o string) {
		data, _ := os.ReadFile(optsFile)
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
			if !strings.HasPrefix(l, uuid) {
				lines = append(lines, l)
			}
		}
		lines = append(lines, uuid+" "+o)
		os.WriteFile(optsFile+".new", []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		os.Rename(optsFile+".new", optsFile)
	}
	setOpts("ro")
	ro := a.waitRepo(t, uuid, "remounted ro", func(r repoStatus, found bool) bool { return found && r.Options == "ro" && r.State == "mounted" })
	if err := os.WriteFile(filepath.Join(ro.MountPoint, "probe"), []byte("x"), 0o644); err == nil {
		t.Fatal("a repository remounted ro took a write")
	}
	setOpts("rw")
	a.waitRepo(t, uuid, "remounted rw", func(r repoStatus, found bool) bool { return found && r.Options == "rw" && r.State == "mounted" })
	if err := os.WriteFile(filepath.Join(ro.MountPoint, "probe"), []byte("x"), 0o644); err != nil {
		t.Fatalf("write after the remount rw: %v", err)
	}

	// Live change of the files: an NFS repository that cannot mount here
	// is added by hand; it fails with a reason while the other stays up.
	nfsUUID := "0004fb00-0000-0000-0000-00000000beef"
	reposFile := filepath.Join(a.Dir, "ovs", "repositories")
	old, _ := os.ReadFile(reposFile)
	os.WriteFile(reposFile+".new", append(old, []byte(nfsUUID+" 127.0.0.1:/export/ovs\n")...), 0o644)
	os.Rename(reposFile+".new", reposFile) // as editors do
	bad := a.waitRepo(t, nfsUUID, "an error", func(r repoStatus, found bool) bool { return found && r.State == "error" })
	if bad.Error == "" {
		t.Fatalf("failed NFS repository without a reason: %+v", bad)
	}
	a.waitRepo(t, uuid, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })

	// ovs-offlinerepo -d unmounts and removes the entries.
	out, code = script("ovs-offlinerepo", "-d", uuid, src)
	if code != 0 {
		t.Fatalf("ovs-offlinerepo -d (exit %d): %s", code, out)
	}
	a.waitRepo(t, uuid, "gone", func(r repoStatus, found bool) bool { return !found })
	if data, _ := os.ReadFile(reposFile); strings.Contains(string(data), uuid) {
		t.Fatalf("repositories file still names %s:\n%s", uuid, data)
	}
	out, code = script("ovsrepositories", "status")
	if !strings.Contains(out, nfsUUID) {
		t.Fatalf("ovsrepositories status (exit %d): %s", code, out)
	}
}
