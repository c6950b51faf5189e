package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOVM3Storage: agent 3's create_repository and the storage plugin's
// file system calls, on a folder and on an ext4 file system on a loop
// device, as CloudStack names them (the manager's UUID, the mount point
// /OVS/Repositories/<id>).
func TestOVM3Storage(t *testing.T) {
	// The loop device first: its cleanup (detach) then runs after the
	// agent's.
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 64<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	dev := loopDevice(t, img)
	a := startAgent(t, agentConf{Extra: map[string][]string{"auth": {"failed_login_delay = 0s"}}})
	c := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	const ocfs2, nfs = "oracle.ocfs2.OCFS2.OCFS2Plugin", "oracle.generic.NFSPlugin.GenericNFSPlugin"

	// The plugins: the two whose calls are served, each with its abilities.
	sp := c.ok(t, "discover_storage_plugins")
	o3Shape(t, "discover_storage_plugins", sp)
	plugins := map[string]o3Node{}
	for _, p := range parseDoc(t, "discover_storage_plugins", sp.Text).Children[0].Children {
		plugins[p.attr("plugin_impl_name")] = p
	}
	if len(plugins) != 2 || plugins[nfs].leaves()["filesys_type"] != "NetworkFS" || plugins[ocfs2].leaves()["filesys_type"] != "LocalFS" {
		t.Errorf("discover_storage_plugins: %s", sp.Text)
	}
	if ab, _ := plugins[ocfs2].child("abilities"); ab.leaves()["snapshot"] != "UNSUPPORTED" {
		t.Errorf("discover_storage_plugins: OCFS2 abilities %v", ab.leaves())
	}

	// create_repository of a folder inside [agent] file_dirs (the
	// harness's: the test's temporary root).
	dir := t.TempDir()
	const id1 = "0004fb0000030000aeaca859e4a8f8c0"
	mp1 := "/OVS/Repositories/" + id1
	c.refused(t, -32602, "create_repository", dir, mp1, "not-a-uuid", "Repo")
	c.refused(t, -32602, "create_repository", dir, "/OVS/Repositories/"+strings.Repeat("b", 32), id1, "Repo")
	c.refused(t, -32602, "create_repository", dir, "/nfsmnt/"+id1, id1, "Repo")
	c.refused(t, 1001, "create_repository", "/etc", mp1, id1, "Repo")
	c.refused(t, 1001, "create_repository", "/dev/null", mp1, id1, "Repo") // not in [agent] block_devices
	// NFS cannot mount on this machine: the fault says so and nothing stays.
	if msg := c.refused(t, 1003, "create_repository", "127.0.0.1:/export", mp1, id1, "Repo"); !strings.Contains(msg, "127.0.0.1:/export") {
		t.Errorf("create_repository of an NFS export that does not mount: %q", msg)
	}
	if r := a.repos(t); len(r.Repositories) != 0 {
		t.Fatalf("a refused create_repository left %+v", r.Repositories)
	}
	c.done(t, "create_repository", dir, mp1, id1, "OVS Repository")
	st := a.waitRepo(t, id1, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	if b, err := os.ReadFile(filepath.Join(dir, ".ovsrepo")); err != nil || !strings.Contains(string(b), id1) || !strings.Contains(string(b), "OVS Repository") {
		t.Errorf(".ovsrepo of the new repository: %q, %v", b, err)
	}
	db := parseDoc(t, "discover_repository_db", c.ok(t, "discover_repository_db").Text)
	if e, _ := db.path("RepositoryDbList/Repository"); e.attr("Uuid") != id1 || e.leaves()["Alias"] != "OVS Repository" || e.leaves()["Status"] != "Mounted" || e.leaves()["Mount_point"] != mp1 {
		t.Errorf("discover_repository_db after create_repository: %+v", e)
	}
	// The new repository is where the file calls work.
	fp := c.ok(t, "storage_plugin_create", nfs, map[string]any{"uuid": id1}, map[string]any{"uuid": dashedID(id1)}, mp1+"/VirtualDisks/d.raw", "File", o3I8(1<<20))
	if fp.Members["file_sz"].Text != "1048576" {
		t.Errorf("storage_plugin_create in the new repository: %s", fp)
	}
	if _, err := os.Stat(filepath.Join(st.MountPoint, "VirtualDisks", "d.raw")); err != nil {
		t.Errorf("storage_plugin_create: %v", err)
	}
	// Taken: the same id (either spelling), or the same source.
	other := t.TempDir()
	c.refused(t, 1004, "create_repository", other, mp1, dashedID(id1), "again")
	c.refused(t, 1004, "create_repository", dir, "/OVS/Repositories/"+strings.Repeat("c", 32), strings.Repeat("c", 32), "again")
	if _, err := os.Stat(filepath.Join(other, ".ovsrepo")); !os.IsNotExist(err) {
		t.Errorf("a refused create_repository wrote onto %s: %v", other, err)
	}

	// An ext4 file system on a loop device: made a repository, then
	// unmounted and mounted through the OCFS2 (local file system) plugin.
	const id2 = "0004fb00000300001111222233334444"
	mp2 := "/OVS/Repositories/" + id2
	c.done(t, "create_repository", dev, mp2, id2, "on a disk")
	a.waitRepo(t, id2, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	ss := map[string]any{"uuid": id2, "storage_type": "FileSys", "access_host": ""}
	sd := map[string]any{"uuid": dashedID(id2), "ss_uuid": id2, "access_path": dev}
	info := c.ok(t, "storage_plugin_getFileSystemInfo", ocfs2, ss, sd)
	o3Shape(t, "storage_plugin_getFileSystemInfo", info)
	checkDetails(t, "storage_plugin_getFileSystemInfo", info, dev, "ext4:"+dev, "1")
	c.refused(t, 1007, "storage_plugin_unmount", "oracle.s_iscsi.SCSIPlugin.SCSIPlugin", ss, sd, mp2, true)
	c.done(t, "storage_plugin_unmount", ocfs2, ss, sd, mp2, true)
	if r := a.repos(t); len(r.Repositories) != 1 || r.Repositories[0].UUID != id1 {
		t.Fatalf("after storage_plugin_unmount: %+v", r.Repositories)
	}
	c.refused(t, 1002, "storage_plugin_unmount", ocfs2, ss, sd, mp2, true)
	c.refused(t, 1002, "storage_plugin_getFileSystemInfo", ocfs2, ss, sd)
	// Mounted again; it must be the repository the mount point names.
	c.refused(t, 1010, "storage_plugin_mount", ocfs2, ss, sd, "/OVS/Repositories/"+strings.Repeat("d", 32), "", true, []string{})
	c.refused(t, -32602, "storage_plugin_mount", nfs, ss, sd, mp2, "", true, []string{}) // a device is not an NFS file system
	if r := a.repos(t); len(r.Repositories) != 1 {
		t.Fatalf("a refused storage_plugin_mount left %+v", r.Repositories)
	}
	m := c.ok(t, "storage_plugin_mount", ocfs2, ss, sd, mp2, "", true, []string{"noatime"})
	o3Shape(t, "storage_plugin_mount", m)
	checkDetails(t, "storage_plugin_mount", m, dev, "ext4:"+dev, "1")
	if opts := m.Members["mount_options"]; len(opts.Items) != 1 || opts.Items[0].Text != "noatime" {
		t.Errorf("storage_plugin_mount: mount_options %s", opts)
	}
	st2 := a.waitRepo(t, id2, "mounted", func(r repoStatus, found bool) bool { return found && r.State == "mounted" })
	if _, err := os.Stat(filepath.Join(st2.MountPoint, ".ovsrepo")); err != nil || st2.Options != "noatime" {
		t.Errorf("mounted again: %+v, %v", st2, err)
	}
	// A second mount of the same is answered as it is.
	checkDetails(t, "storage_plugin_mount again", c.ok(t, "storage_plugin_mount", ocfs2, ss, sd, mp2, "", true, []string{}), dev, "ext4:"+dev, "1")
	// listFileSystems: by uuid, or the one local repository... of which
	// there are two here.
	lfs := c.ok(t, "storage_plugin_listFileSystems", ocfs2, map[string]any{"uuid": id2})
	o3Shape(t, "storage_plugin_listFileSystems", lfs)
	checkDetails(t, "storage_plugin_listFileSystems", lfs, dev, "ext4:"+dev, "1")
	if msg := c.refused(t, -32602, "storage_plugin_listFileSystems", ocfs2, map[string]any{"uuid": "", "access_host": ""}); !strings.Contains(msg, "2 repositories") {
		t.Errorf("storage_plugin_listFileSystems without a uuid: %q", msg)
	}
	c.refused(t, 1002, "storage_plugin_listFileSystems", nfs, map[string]any{"uuid": "", "access_host": "cs-mgmt"})
	c.done(t, "delete_repository", id2, false)
	c.done(t, "delete_repository", id1, false)
	if r := a.repos(t); len(r.Repositories) != 0 {
		t.Errorf("after delete_repository: %+v", r.Repositories)
	}
}

func dashedID(id string) string {
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}

// checkDetails checks a storage plugin file system description: every
// member of the shape the plugin's client reads, with its type.
func checkDetails(t *testing.T, what string, v o3Value, source, name, state string) {
	t.Helper()
	if v.Type != "struct" {
		t.Fatalf("%s: %s, want a struct", what, v)
	}
	for k, typ := range map[string]string{"status": "string", "uuid": "string", "ss_uuid": "string", "size": "string", "free_sz": "string",
		"state": "string", "mount_options": "array", "access_grp_names": "array", "access_path": "string", "name": "string"} {
		if v.Members[k].Type != typ {
			t.Errorf("%s: %s is %s, want %s", what, k, v.Members[k], typ)
		}
	}
	if v.Members["access_path"].Text != source || v.Members["name"].Text != name || v.Members["state"].Text != state ||
		v.Members["size"].Text == "0" || v.Members["free_sz"].Text == "0" {
		t.Errorf("%s: %s", what, v)
	}
}
