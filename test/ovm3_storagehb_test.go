package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOVM3StorageHeartbeat: CloudStack's storage heartbeat
// (check_dom0_storage_health_check with each ping, check_dom0_storage_health
// from its HA investigator) on a repository on an ext4 file system on a
// loop device. While the file system is frozen (fsfreeze: storage that no
// longer answers) the heartbeat's write does not end; after the timeout
// the domain whose disk is there is destroyed ([agent] storage_fence's
// default), and the heartbeat reads as stale.
func TestOVM3StorageHeartbeat(t *testing.T) {
	img := filepath.Join(t.TempDir(), "primary.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	dev := loopDevice(t, img)
	a := startAgent(t, agentConf{Extra: map[string][]string{
		"auth":  {"failed_login_delay = 0s"},
		"agent": {"hypervisor = sim", "memory_reserve = 0"},
	}})
	c := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	const repo = "0004fb0000030000aeaca859e4a8f8c3"
	c.done(t, "create_repository", dev, "/OVS/Repositories/"+repo, repo, "primary")
	st := a.waitRepo(t, repo, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	frozen := false
	thaw := func() {
		if frozen {
			exec.Command("fsfreeze", "--unfreeze", st.MountPoint).Run()
			frozen = false
		}
	}
	t.Cleanup(thaw) // before the agent stops: a write stuck there holds it
	const guid = "5a1c0f3e-7d1b-4c2a-9e8f-0b1c2d3e4f50-ovm3"

	// a domain with its disk on the repository
	disk := filepath.Join(st.MountPoint, "VirtualDisks", "root.img")
	os.MkdirAll(filepath.Dir(disk), 0o755)
	os.WriteFile(disk, make([]byte, 1<<20), 0o644)
	a.call(t, "domain.create", nil, vmcfgText("fenced1", 64, "dirty=1M/s,hot=4M", "disk = ['file:"+disk+",xvda,w']"))
	a.call(t, "domain.start", nil, "fenced1")

	c.refused(t, -32602, "check_dom0_storage_health_check", "/opt/cloudstack/bin", "storagehealth.py", "../x", 120, 1)
	c.refused(t, -32602, "check_dom0_storage_health_check", "/opt/cloudstack/bin", "storagehealth.py", guid, 1, 5)
	// a domain that does not use the repository is stopped too: the other
	// hosts read this one as dead, whole
	a.call(t, "domain.create", nil, vmcfgText("fenced2", 64, "dirty=1M/s,hot=4M"))
	a.call(t, "domain.start", nil, "fenced2")
	// the first ping starts it, the next finds it running
	first := c.ok(t, "check_dom0_storage_health_check", "/opt/cloudstack/bin", "storagehealth.py", guid, 3, 1)
	o3Shape(t, "check_dom0_storage_health_check", first)
	if v := first; len(v.Items) != 2 || v.Items[0].Text != "0" || v.Items[1].Text != "1" {
		t.Fatalf("the first check_dom0_storage_health_check: %s, want [false, true]", v)
	}
	if v := c.ok(t, "check_dom0_storage_health_check", "/opt/cloudstack/bin", "storagehealth.py", guid, 3, 1); len(v.Items) != 2 || v.Items[0].Text != "1" || v.Items[1].Text != "0" {
		t.Fatalf("the second check_dom0_storage_health_check: %s, want [true, false]", v)
	}
	hb := filepath.Join(st.MountPoint, ".hb-"+guid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(hb)
		if secs, perr := strconv.ParseFloat(string(b), 64); err == nil && perr == nil && time.Since(time.Unix(int64(secs), 0)) < 3*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fresh heartbeat in %s: %q %v", hb, b, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := c.ok(t, "check_dom0_storage_health", "/opt/cloudstack/bin", "storagehealth.py", guid, 3); v.Text != "1" {
		t.Fatalf("check_dom0_storage_health while it beats: %s", v)
	}
	// another host whose heartbeat here is a minute old: dead; one that
	// writes nothing here (its storage is elsewhere): alive
	os.WriteFile(filepath.Join(st.MountPoint, ".hb-another-host"), []byte(strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)), 0o644)
	if v := c.ok(t, "check_dom0_storage_health", "/opt/cloudstack/bin", "storagehealth.py", "another-host", 3); v.Text != "0" {
		t.Fatalf("check_dom0_storage_health of a host whose heartbeat stopped: %s", v)
	}
	if v := c.ok(t, "check_dom0_storage_health", "/opt/cloudstack/bin", "storagehealth.py", "elsewhere-host", 3); v.Text != "1" {
		t.Fatalf("check_dom0_storage_health of a host without files here: %s", v)
	}

	// the storage stops answering
	// a safety net, should the test be killed before its cleanup: the
	// file system thaws within a minute whatever happens (stopped by pid)
	net := exec.Command("sh", "-c", "sleep 60; fsfreeze --unfreeze "+st.MountPoint)
	if err := net.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Process.Kill(); net.Wait() })
	if out, err := exec.Command("fsfreeze", "--freeze", st.MountPoint).CombinedOutput(); err != nil {
		t.Fatalf("fsfreeze: %v: %s", err, out)
	}
	frozen = true
	deadline = time.Now().Add(20 * time.Second)
	for a.info(t, "fenced1").State != "stopped" || a.info(t, "fenced2").State != "stopped" {
		if time.Now().After(deadline) {
			t.Fatalf("the domains still %s and %s after 20 s on lost storage\n%s", a.info(t, "fenced1").State, a.info(t, "fenced2").State, a.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(logLines(a.Log(), "domain destroyed so that it does not run twice")); n != 2 {
		t.Errorf("%d fence lines in the log, want 2", n)
	}
	// fenced before the other hosts read it as dead: then they do (a
	// frozen file system still reads, its file only grows old)
	deadline = time.Now().Add(10 * time.Second)
	for c.ok(t, "check_dom0_storage_health", "/opt/cloudstack/bin", "storagehealth.py", guid, 3).Text != "0" {
		if time.Now().After(deadline) {
			t.Fatal("check_dom0_storage_health still alive 10 s after the storage stopped answering")
		}
		time.Sleep(200 * time.Millisecond)
	}
	thaw()
	// back: the heartbeat goes on
	deadline = time.Now().Add(15 * time.Second)
	for {
		v := c.ok(t, "check_dom0_storage_health", "/opt/cloudstack/bin", "storagehealth.py", guid, 3)
		if v.Text == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the heartbeat did not come back after the thaw\n%s", a.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(a.Log(), "the storage answers again") {
		t.Error("no recovery line in the log")
	}

	// a restart: the heartbeat runs again before the manager's next ping
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	a.start()
	a.waitReady()
	deadline = time.Now().Add(15 * time.Second)
	for len(logLines(a.Log(), "storage heartbeat started")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the heartbeat did not resume after the restart\n%s", a.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
