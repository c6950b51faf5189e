package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestOVM3SecondaryStorage walks what CloudStack does with its secondary
// storage on an agent 3 host, on an ext4 file system on a loop device
// under the OCFS2 (local file system) plugin (NFS does not mount on this
// machine; test/ovm3_test.go checks that its fault is clean): the plugin
// mounts it at /nfsmnt/<uuid>, the host's mounted file systems show it
// there, a template is copied from it into the primary repository's
// Templates folder, the file system info names it, and it is unmounted
// again. Then mount_repository_fs and add_repository in the order the
// plugin makes a primary repository.
func TestOVM3SecondaryStorage(t *testing.T) {
	// The secondary storage's content: a template and an ISO image, as
	// CloudStack lays them out.
	content := t.TempDir()
	tmpl := filepath.Join("template", "tmpl", "1", "3", "f0e2a0c6-5a3b-4e0b-a1c1-8d1e1a2b3c4d.raw")
	tmplData := bytes.Repeat([]byte("template block\n"), 70000)
	for name, data := range map[string][]byte{tmpl: tmplData, "iso/systemvm.iso": []byte("an ISO image")} {
		if err := os.MkdirAll(filepath.Join(content, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(content, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "sec.img")
	other := filepath.Join(t.TempDir(), "other.img")
	for _, f := range []struct{ img, from string }{{img, content}, {other, ""}} {
		if err := os.WriteFile(f.img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Truncate(f.img, 32<<20)
		args := []string{"-q", "-F", f.img}
		if f.from != "" {
			args = append(args, "-d", f.from)
		}
		if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
	}
	dev, dev2 := loopDevice(t, img), loopDevice(t, other)
	a := startAgent(t, agentConf{Extra: map[string][]string{"auth": {"failed_login_delay = 0s"}}})
	secDir := filepath.Join(a.Dir, "nfsmnt")
	t.Cleanup(func() { detachUnder(t, secDir) }) // before the loop devices go, if the test failed half way
	c := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	const ocfs2, nfs = "oracle.ocfs2.OCFS2.OCFS2Plugin", "oracle.generic.NFSPlugin.GenericNFSPlugin"

	// The primary repository, on a folder.
	const prim = "0004fb0000030000aeaca859e4a8f8c1"
	pdir := t.TempDir()
	c.done(t, "create_repository", pdir, "/OVS/Repositories/"+prim, prim, "primary")
	a.waitRepo(t, prim, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })

	const secUUID = "6a5c8e3d-9f1b-3c2a-8e7d-1b2c3d4e5f60"
	mp := "/nfsmnt/" + secUUID
	ss := map[string]any{"uuid": strings.ReplaceAll(secUUID, "-", ""), "storage_type": "FileSys", "access_host": "", "name": "secondary"}
	sd := map[string]any{"uuid": secUUID, "ss_uuid": strings.ReplaceAll(secUUID, "-", ""), "access_path": dev, "state": 1}

	// Refused, each changing nothing.
	c.refused(t, -32602, "storage_plugin_mount", ocfs2, ss, sd, "/nfsmnt/../etc", "", true, []string{})
	c.refused(t, -32602, "storage_plugin_mount", ocfs2, ss, sd, "/mnt/"+secUUID, "", true, []string{})
	c.refused(t, -32602, "storage_plugin_mount", ocfs2, ss, sd, mp, "", true, []string{"suid"})
	c.refused(t, -32602, "storage_plugin_mount", ocfs2, ss, sd, mp, "", true, []string{"loop"})
	c.refused(t, -32602, "storage_plugin_mount", nfs, ss, sd, mp, "", true, []string{}) // a device is not NFS
	c.refused(t, -32602, "storage_plugin_mount", ocfs2, ss, map[string]any{"access_path": t.TempDir()}, mp, "", true, []string{})
	c.refused(t, 1001, "storage_plugin_mount", ocfs2, ss, map[string]any{"access_path": "/dev/null"}, mp, "", true, []string{})
	if _, err := os.Lstat(filepath.Join(secDir, secUUID)); !os.IsNotExist(err) {
		t.Fatalf("a refused storage_plugin_mount left %s: %v", filepath.Join(secDir, secUUID), err)
	}

	m := c.ok(t, "storage_plugin_mount", ocfs2, ss, sd, mp, "", true, []string{"ro"})
	o3Shape(t, "storage_plugin_mount", m)
	checkDetails(t, "storage_plugin_mount at /nfsmnt", m, dev, "ext4:"+dev, "1")
	if m.Members["uuid"].Text != secUUID {
		t.Errorf("storage_plugin_mount: uuid %s, want the caller's %s", m.Members["uuid"], secUUID)
	}
	on := filepath.Join(secDir, secUUID)
	mi := mountOptions(t, on)
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !strings.Contains(","+mi+",", ","+o+",") {
			t.Errorf("the secondary mount's options %q lack %s", mi, o)
		}
	}
	// Again: the same answer; another device there: refused.
	checkDetails(t, "storage_plugin_mount again", c.ok(t, "storage_plugin_mount", ocfs2, ss, sd, mp, "", true, []string{}), dev, "ext4:"+dev, "1")
	c.refused(t, 1004, "storage_plugin_mount", ocfs2, ss, map[string]any{"access_path": dev2}, mp, "", true, []string{})

	// The operator sees it (ovm repo secondary: repository.secondary_list).
	if out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "repo", "secondary"); code != 0 ||
		!strings.Contains(out, secUUID) || !strings.Contains(out, dev) || !strings.Contains(out, "ext4") {
		t.Errorf("ovm repo secondary (exit %d):\n%s", code, out)
	}
	// The host shows it where agent 3 has it.
	mfs := parseDoc(t, "discover_mounted_file_systems", c.ok(t, "discover_mounted_file_systems", "ext4").Text)
	found := false
	for _, fs := range mfs.Children {
		for _, d := range fs.Children {
			found = found || d.attr("Dir") == mp
		}
	}
	if !found {
		t.Errorf("discover_mounted_file_systems does not show %s", mp)
	}
	info := c.ok(t, "storage_plugin_getFileSystemInfo", ocfs2, ss, sd)
	checkDetails(t, "storage_plugin_getFileSystemInfo of the secondary storage", info, dev, "ext4:"+dev, "1")

	// The template into the primary repository, as the plugin copies it.
	dst := "/OVS/Repositories/" + prim + "/Templates/f0e2a0c6.raw"
	c.done(t, "copy_file", mp+"/"+tmpl, dst, true)
	if got, err := os.ReadFile(filepath.Join(a.Dir, "OVS", primUUIDDir(t, a, prim), "Templates", "f0e2a0c6.raw")); err != nil || !bytes.Equal(got, tmplData) {
		t.Errorf("copy_file from the secondary storage: %d bytes, %v; want the template's %d", len(got), err, len(tmplData))
	}
	// Read-only as mounted: a copy into it fails and leaves nothing.
	c.refused(t, 1003, "copy_file", dst, mp+"/iso/copy.raw", true)
	// Nothing outside: the secondary storage's name does not reach beyond it.
	c.refused(t, 1001, "copy_file", "/nfsmnt/"+secUUID+"/../../agent.ini", dst+".2", true)

	// A vm with an ISO image of the secondary storage, as the plugin
	// attaches one: registered, and named there in its vm.cfg.
	vm := "33333333-2222-4333-8444-555555555555"
	isoDisk := "file:" + mp + "/iso/systemvm.iso,hdc:cdrom,r"
	c.done(t, "create_vm", prim, vm, map[string]any{"name": "with-iso", "uuid": vm, "memory": "64", "vcpus": 1,
		"bootloader": "/usr/bin/pygrub", "disk": []string{"file:/OVS/Repositories/" + prim + "/Templates/f0e2a0c6.raw,xvda,w", isoDisk}})
	if d := c.ok(t, "get_vm_config", prim, vm).Members["disk"]; len(d.Items) != 2 || d.Items[1].Text != isoDisk {
		t.Errorf("get_vm_config of a vm with an ISO image on the secondary storage: disk %s, want %s second", d, isoDisk)
	}
	c.done(t, "delete_vm", prim, vm)

	// Busy while a file on it is open (a domain's ISO image), then
	// unmounted and its folder gone.
	f, err := os.Open(filepath.Join(on, "iso", "systemvm.iso"))
	if err != nil {
		t.Fatal(err)
	}
	c.refused(t, 1003, "storage_plugin_unmount", ocfs2, ss, sd, mp, true)
	f.Close()
	c.done(t, "storage_plugin_unmount", ocfs2, ss, sd, mp, true)
	if _, err := os.Lstat(on); !os.IsNotExist(err) {
		t.Errorf("after storage_plugin_unmount %s stays: %v", on, err)
	}
	c.refused(t, 1002, "storage_plugin_unmount", ocfs2, ss, sd, mp, true)
	c.refused(t, 1002, "storage_plugin_getFileSystemInfo", ocfs2, ss, sd)
	// Mounted again, writable: a template made from a volume goes onto
	// it as the plugin's storage processor puts it there (ovs_mkdirs,
	// copy_file, ovs_check_file).
	c.ok(t, "storage_plugin_mount", ocfs2, ss, sd, mp, "", true, []string{})
	newDir := mp + "/template/tmpl/2/7"
	if v := c.ok(t, "ovs_mkdirs", newDir); v.Type != "nil" {
		t.Errorf("ovs_mkdirs of a new folder answered %s, want nil", v)
	}
	if fi, err := os.Stat(filepath.Join(on, "template", "tmpl", "2", "7")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("ovs_mkdirs made %v, %v; want a folder with mode 0700", fi, err)
	}
	if v := c.ok(t, "ovs_mkdirs", newDir, 0o755); v.Type != "boolean" || v.Text != "1" {
		t.Errorf("ovs_mkdirs of an existing folder answered %s, want true", v)
	}
	c.done(t, "copy_file", dst, newDir+"/t.raw", true)
	if v := c.ok(t, "ovs_check_file", newDir+"/t.raw"); v.Text != "1" {
		t.Errorf("ovs_check_file of the copied template: %s", v)
	}
	for _, f := range []string{newDir + "/missing.raw", newDir} {
		if v := c.ok(t, "ovs_check_file", f); v.Type != "boolean" || v.Text != "0" {
			t.Errorf("ovs_check_file(%s) = %s, want false", f, v)
		}
	}
	c.refused(t, 1004, "ovs_mkdirs", newDir+"/t.raw")
	c.refused(t, -32602, "ovs_mkdirs", newDir+"/x", 0o4755)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(on, "escape")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{outside + "/made", mp + "/../../made", mp + "/escape/made"} {
		c.refused(t, 1001, "ovs_mkdirs", d)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("ovs_mkdirs made %v outside the mount", ents)
	}
	c.refused(t, 1001, "ovs_check_file", "/etc/passwd")
	c.refused(t, 1001, "ovs_check_file", mp+"/escape/x")

	// What a manager left mounted, the operator unmounts.
	if out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "repo", "secondary-unmount", secUUID); code != 0 || !strings.Contains(out, dev) {
		t.Errorf("ovm repo secondary-unmount (exit %d):\n%s", code, out)
	}
	if _, err := os.Lstat(on); !os.IsNotExist(err) {
		t.Errorf("after ovm repo secondary-unmount %s stays: %v", on, err)
	}
	if out, code := runCmd(t, "", nil, bin("ovm"), "--url=unix://"+a.Socket, "repo", "secondary-unmount", secUUID); code == 0 || !strings.Contains(out, "nothing is mounted") {
		t.Errorf("ovm repo secondary-unmount of nothing (exit %d):\n%s", code, out)
	}

	// The plugin's order for a primary repository: mount_repository_fs
	// (here: add the repository the file system holds), add_repository
	// (added already: no error), and for a file system without one,
	// mount_repository_fs and add_repository refused, create_repository.
	c.done(t, "delete_repository", prim, false)
	pmp := "/OVS/Repositories/" + prim
	c.refused(t, -32602, "mount_repository_fs", pdir, "/nfsmnt/"+prim)
	c.refused(t, 1010, "mount_repository_fs", pdir, "/OVS/Repositories/"+strings.Repeat("e", 32))
	c.done(t, "mount_repository_fs", pdir, pmp)
	a.waitRepo(t, prim, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	c.done(t, "add_repository", pdir, pmp)
	c.done(t, "mount_repository_fs", pdir, pmp)
	if r := a.repos(t); len(r.Repositories) != 1 {
		t.Errorf("after mount_repository_fs and add_repository: %+v", r.Repositories)
	}
	c.done(t, "unmount_repository_fs", pmp)
	if r := a.repos(t); len(r.Repositories) != 0 {
		t.Errorf("after unmount_repository_fs: %+v", r.Repositories)
	}
	c.refused(t, 1002, "unmount_repository_fs", pmp)
	fresh := t.TempDir()
	const newID = "0004fb0000030000aeaca859e4a8f8c2"
	nmp := "/OVS/Repositories/" + newID
	if msg := c.refused(t, 1010, "mount_repository_fs", fresh, nmp); !strings.Contains(msg, "create_repository") {
		t.Errorf("mount_repository_fs of a file system without a repository: %q", msg)
	}
	c.refused(t, 1010, "add_repository", fresh, nmp)
	if r := a.repos(t); len(r.Repositories) != 0 {
		t.Errorf("a refused mount_repository_fs left %+v", r.Repositories)
	}
	c.done(t, "create_repository", fresh, nmp, newID, "made")
	c.done(t, "delete_repository", newID, false)
}

// primUUIDDir is the folder under [repository] root the repository id is
// mounted on (its UUID as configured).
func primUUIDDir(t *testing.T, a *Agent, id string) string {
	t.Helper()
	for _, r := range a.repos(t).Repositories {
		if strings.ReplaceAll(strings.ToLower(r.UUID), "-", "") == id {
			return filepath.Base(r.MountPoint)
		}
	}
	t.Fatalf("no repository %s", id)
	return ""
}

// mountOptions are the per-mount options of the mount at dir.
func mountOptions(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	opts := ""
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 5 && f[4] == dir {
			opts = f[5]
		}
	}
	if opts == "" {
		t.Fatalf("nothing is mounted at %s", dir)
	}
	return opts
}

// detachUnder detaches every mount below dir (a test that failed half
// way), so that its loop devices can go.
func detachUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			t.Logf("detaching %s, left mounted", f[4])
			unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
}
