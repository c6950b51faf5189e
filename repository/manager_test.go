package repository

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localRepo makes a directory that is a repository already (as if
// ovs-makerepo had been run on it): the metadata file and nothing else.
func (e *testEnv) localRepo(name, uuid, shared string) string {
	e.t.Helper()
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	m := Metadata{UUID: uuid, Shared: shared, Description: name}
	if err := os.WriteFile(filepath.Join(dir, MetadataFile), m.Marshal(), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return dir
}

func find(t *testing.T, rep Report, uuid string) Status {
	t.Helper()
	s, ok := rep.Find(uuid)
	if !ok {
		t.Fatalf("no status for %s in %+v", uuid, rep)
	}
	return s
}

func mustMounted(t *testing.T, path string) MountInfo {
	t.Helper()
	mi, ok := mountAt(t, path)
	if !ok {
		t.Fatalf("nothing mounted at %s", path)
	}
	return mi
}

func mustNotMounted(t *testing.T, path string) {
	t.Helper()
	if mi, ok := mountAt(t, path); ok {
		t.Fatalf("still mounted at %s: %+v", path, mi)
	}
}

// TestBlockDevice: an ext4 image on a loop device is made a repository,
// mounted with options, remounted when the options change (ro, then rw,
// as /proc/self/mountinfo shows) and unmounted when its line goes.
func TestBlockDevice(t *testing.T) {
	e := newEnv(t, nil)
	dev := e.loop()
	ctx := ctxT(t)
	st, err := e.m.Make(ctx, MakeRequest{Source: dev, Shared: "1", Description: "loop disk", Options: "noatime"})
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(e.root, st.UUID)
	if st.State != StateMounted || st.MountPoint != mp || st.Shared != "1" || st.Description != "loop disk" || st.Options != "noatime" || st.Size == 0 || st.Free == 0 {
		t.Fatalf("after make: %+v", st)
	}
	mi := mustMounted(t, mp)
	if mi.FSType != "ext4" || !mi.HasOption("rw") || !mi.HasOption("noatime") {
		t.Fatalf("mount at %s: %+v", mp, mi)
	}
	for _, p := range PoolDirs {
		if fi, err := os.Stat(filepath.Join(mp, p)); err != nil || !fi.IsDir() {
			t.Errorf("pool folder %s: %v", p, err)
		}
	}
	if meta, err := ReadMetadata(mp); err != nil || meta.UUID != st.UUID || meta.Shared != "1" {
		t.Errorf("metadata on the device: %+v, %v", meta, err)
	}
	opts, _ := os.ReadFile(e.opts)
	if !strings.Contains(string(opts), st.UUID+" noatime\n") {
		t.Errorf("options file:\n%s", opts)
	}

	// Stopped, then started read-only.
	rep, err := e.m.Stop(ctx)
	if err != nil || !rep.Stopped || find(t, rep, st.UUID).State != StateUnmounted {
		t.Fatalf("stop: %+v, %v", rep, err)
	}
	mustNotMounted(t, mp)
	mustNotMounted(t, filepath.Join(e.staging, st.UUID))
	e.write(e.opts, st.UUID+" noatime,ro\n")
	if rep, err := e.m.Reload(ctx); err != nil || find(t, rep, st.UUID).State != StateUnmounted {
		t.Fatalf("reload while stopped mounted something: %+v, %v", rep, err)
	}
	rep, err = e.m.Start(ctx)
	if err != nil || find(t, rep, st.UUID).State != StateMounted {
		t.Fatalf("start: %+v, %v", rep, err)
	}
	mi = mustMounted(t, mp)
	if !mi.HasOption("ro") || !mi.HasOption("noatime") {
		t.Fatalf("after start with noatime,ro: %+v", mi)
	}
	if err := os.WriteFile(filepath.Join(mp, "x"), nil, 0o644); err == nil {
		t.Fatal("wrote to a read-only repository")
	}

	// Options change: remounted read-write in place.
	e.write(e.opts, st.UUID+" noatime,rw\n")
	rep, err = e.m.Reload(ctx)
	if s := find(t, rep, st.UUID); err != nil || s.State != StateMounted || s.Error != "" || s.Options != "noatime,rw" {
		t.Fatalf("reload: %+v, %v", s, err)
	}
	mi = mustMounted(t, mp)
	if !mi.HasOption("rw") || !mi.HasOption("noatime") {
		t.Fatalf("after remount rw: %+v", mi)
	}
	if err := os.WriteFile(filepath.Join(mp, "running_pool", "x"), []byte("x"), 0o644); err != nil {
		t.Fatalf("write after remount rw: %v", err)
	}

	// Removed from the file: unmounted.
	e.write(e.repos, "# nothing\n")
	rep, err = e.m.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rep.Find(st.UUID); ok {
		t.Errorf("removed repository still reported: %+v", rep)
	}
	mustNotMounted(t, mp)
	mustNotMounted(t, filepath.Join(e.staging, st.UUID))
	if _, err := os.Stat(mp); err == nil {
		t.Errorf("mount point %s left behind", mp)
	}
}

// TestLocalDirAndNFSFailure: a local directory is bind-mounted; an NFS
// source (no NFS in this kernel) fails cleanly with the reason, and a
// source that is not a repository is refused; the others mount.
func TestLocalDirAndNFSFailure(t *testing.T) {
	e := newEnv(t, nil)
	a := e.localRepo("a", u1, "0")
	b := e.localRepo("b", u3, "1")
	plain := filepath.Join(e.dir, "plain")
	os.MkdirAll(plain, 0o755)
	e.write(e.repos, u1+" "+a+"\n"+u2+" 127.0.0.1:/export/ovs\n"+"22222222-2222-4222-8222-222222222222 "+plain+"\n"+u3+" "+b+"\n")
	e.write(e.opts, u3+" ro,nosuid\n")
	rep, err := e.m.Reload(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := find(t, rep, u1), find(t, rep, u3)
	if sa.State != StateMounted || sb.State != StateMounted {
		t.Fatalf("local repositories: %+v\n%+v", sa, sb)
	}
	if mi := mustMounted(t, filepath.Join(e.root, u1)); mi.Root != a && !strings.HasSuffix(mi.Root, "/a") {
		t.Errorf("bind mount root %q, want %s", mi.Root, a)
	}
	if mi := mustMounted(t, filepath.Join(e.root, u3)); !mi.HasOption("ro") || !mi.HasOption("nosuid") {
		t.Errorf("bind mount with ro,nosuid: %+v", mi)
	}
	// Pool folders were created in the writable one.
	if _, err := os.Stat(filepath.Join(a, SeedPool)); err != nil {
		t.Errorf("pool folder: %v", err)
	}
	n := find(t, rep, u2)
	if n.State != StateError || !strings.Contains(n.Error, "nfs") {
		t.Errorf("NFS repository: %+v; want error naming nfs", n)
	}
	mustNotMounted(t, filepath.Join(e.root, u2))
	mustNotMounted(t, filepath.Join(e.staging, u2))
	p := find(t, rep, "22222222-2222-4222-8222-222222222222")
	if p.State != StateError || !strings.Contains(p.Error, "not a repository") {
		t.Errorf("plain directory: %+v", p)
	}
	mustNotMounted(t, filepath.Join(e.staging, "22222222-2222-4222-8222-222222222222"))
	if rep.OK() {
		t.Error("report OK with errors")
	}
	var out bytes.Buffer
	if code := printReport(&out, rep); code != ExitFailed || !strings.Contains(out.String(), u2+": ") {
		t.Errorf("status exit %d:\n%s", code, out.String())
	}
}

// TestMountTimeout: a mount that hangs is killed at the deadline; that
// repository is in error and the others mount meanwhile.
func TestMountTimeout(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "mount")
	os.WriteFile(fake, []byte("#!/bin/sh\nfor a; do case $a in *hang*) exec sleep 60;; esac; done\nexec mount \"$@\"\n"), 0o755)
	e := newEnv(t, func(o *Options) { o.MountCommand = fake; o.MountTimeout = 5 * time.Second })
	a := e.localRepo("a", u1, "0")
	e.write(e.repos, u2+" 127.0.0.1:/hang\n"+u1+" "+a+"\n")
	start := time.Now()
	rep, err := e.m.Reload(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Errorf("reload took %v with a 5s mount timeout and a mount that sleeps 60s", d)
	}
	h := find(t, rep, u2)
	if h.State != StateError || !strings.Contains(h.Error, "timed out") {
		t.Errorf("hung mount: %+v", h)
	}
	if s := find(t, rep, u1); s.State != StateMounted {
		t.Errorf("other repository: %+v", s)
	}
}

// TestRemovalRefusedInUse: a repository that a running domain uses stays
// mounted when its line is removed, and ovs-offlinerepo refuses it; once
// the domain is gone the next reload unmounts it.
func TestRemovalRefusedInUse(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	a := e.localRepo("a", u1, "1")
	e.write(e.repos, u1+" "+a+"\n")
	if rep, err := e.m.Reload(ctx); err != nil || find(t, rep, u1).State != StateMounted {
		t.Fatalf("%+v %v", rep, err)
	}
	e.setInUse(u1, "vm1", "vm2")
	if st, err := e.m.Get(ctx, u1); err != nil || strings.Join(st.Domains, ",") != "vm1,vm2" {
		t.Errorf("domains using it: %+v %v", st, err)
	}
	if _, err := e.m.Offline(ctx, OfflineRequest{UUID: u1, Source: a}); err == nil || !strings.Contains(err.Error(), "vm1, vm2") {
		t.Errorf("offline while in use: %v", err)
	}
	e.write(e.repos, "")
	rep, err := e.m.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := find(t, rep, u1)
	if s.State != StateInUse || !strings.Contains(s.Error, "in use by running domain(s) vm1, vm2") || s.Configured {
		t.Errorf("removed while in use: %+v", s)
	}
	mustMounted(t, filepath.Join(e.root, u1))
	if _, err := e.m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mustMounted(t, filepath.Join(e.root, u1))
	e.setInUse(u1)
	if _, err := e.m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err = e.m.Reload(ctx)
	if _, ok := rep.Find(u1); ok || err != nil {
		t.Errorf("after the domains stopped: %+v %v", rep, err)
	}
	mustNotMounted(t, filepath.Join(e.root, u1))
}

// TestWatcher: while Run watches, the files are edited (replaced by
// rename, as editors do): a repository added is mounted, a change of
// options remounts it, a bad line is reported without touching it, and a
// removal unmounts it.
func TestWatcher(t *testing.T) {
	e := newEnv(t, nil)
	a := e.localRepo("a", u1, "0")
	b := e.localRepo("b", u3, "1")
	e.write(e.repos, u1+" "+a+"\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	e.waitFor("a mounted at start", func(r Report) bool { s, ok := r.Find(u1); return ok && s.State == StateMounted })

	e.write(e.repos, u1+" "+a+"\n"+u3+" "+b+"\n")
	e.waitFor("b mounted", func(r Report) bool { s, ok := r.Find(u3); return ok && s.State == StateMounted })
	mustMounted(t, filepath.Join(e.root, u3))

	e.write(e.opts, u3+" ro\n")
	e.waitFor("b remounted ro", func(r Report) bool {
		s, ok := r.Find(u3)
		mi, mounted := mountAt(t, filepath.Join(e.root, u3))
		return ok && s.Options == "ro" && s.State == StateMounted && mounted && mi.HasOption("ro")
	})

	// A typo in b's line: reported with file and line, b left mounted.
	e.write(e.repos, u1+" "+a+"\n"+u3+" relative/path\n")
	rep := e.waitFor("problem reported", func(r Report) bool {
		s, ok := r.Find(u3)
		return len(r.Problems) > 0 && ok && s.Error != ""
	})
	if !strings.Contains(rep.Problems[0], e.repos+":2:") {
		t.Errorf("problem %q does not name the file and line", rep.Problems[0])
	}
	if s := find(t, rep, u3); s.State != StateMounted || !strings.Contains(s.Error, "left as it was") || !s.Configured || s.Options != "ro" {
		t.Errorf("b after a bad line: %+v", s)
	}
	mustMounted(t, filepath.Join(e.root, u3))

	// Removed: unmounted.
	e.write(e.repos, u1+" "+a+"\n")
	rep = e.waitFor("b unmounted", func(r Report) bool { _, ok := r.Find(u3); return !ok })
	// Its options line stays, and is reported as a likely leftover.
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "does not list") {
		t.Errorf("problems %q", rep.Problems)
	}
	mustNotMounted(t, filepath.Join(e.root, u3))
	mustMounted(t, filepath.Join(e.root, u1))
}

// TestClusterRoot: the repository marked C is mounted at the root itself,
// the others stay visible at ROOT/<uuid> on top of it, and the heartbeat
// file is written there and refreshed.
func TestClusterRoot(t *testing.T) {
	now := time.Unix(1700000000, 0)
	e := newEnv(t, func(o *Options) { o.Now = func() time.Time { return now } })
	ctx := ctxT(t)
	child := filepath.Join(e.dir, "child")
	cluster := filepath.Join(e.dir, "cluster")
	os.MkdirAll(child, 0o755)
	os.MkdirAll(cluster, 0o755)
	c, err := e.m.Make(ctx, MakeRequest{Source: child, Shared: "1", Description: "child"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.m.Make(ctx, MakeRequest{Source: cluster, Shared: "C", Description: "cluster root"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.ClusterRoot || r.MountPoint != e.root || r.State != StateMounted {
		t.Fatalf("cluster root: %+v", r)
	}
	if meta, err := ReadMetadata(e.root); err != nil || meta.UUID != r.UUID {
		t.Fatalf("metadata at the root: %+v %v", meta, err)
	}
	if meta, err := ReadMetadata(filepath.Join(e.root, c.UUID)); err != nil || meta.UUID != c.UUID {
		t.Fatalf("child not visible on top of the cluster root: %+v %v", meta, err)
	}
	if u, ok := e.m.RepositoryOf(filepath.Join(e.root, RunningPool, "vm1", "System.img")); !ok || u != r.UUID {
		t.Errorf("RepositoryOf(cluster root disk) = %s, %v", u, ok)
	}
	if u, ok := e.m.RepositoryOf(filepath.Join(e.root, c.UUID, RunningPool, "vm1", "System.img")); !ok || u != c.UUID {
		t.Errorf("RepositoryOf(child disk) = %s, %v", u, ok)
	}
	if _, ok := e.m.RepositoryOf("/elsewhere/x.img"); ok {
		t.Error("RepositoryOf(outside) found one")
	}
	hb, err := ReadHeartbeat(e.root)
	if err != nil || len(hb) != 1 || hb[0].HostID != "host-a" || !hb[0].Time.Equal(now) {
		t.Fatalf("heartbeat: %v %v", hb, err)
	}
	if _, err := os.Stat(filepath.Join(cluster, HeartbeatFile)); err != nil {
		t.Errorf("heartbeat not on the cluster root's storage: %v", err)
	}
	now = now.Add(time.Minute)
	e.m.Heartbeat(ctx)
	if hb, _ := ReadHeartbeat(e.root); len(hb) != 1 || !hb[0].Time.Equal(now) {
		t.Errorf("heartbeat not refreshed: %v", hb)
	}
	if st, _ := e.m.Get(ctx, r.UUID); !st.Heartbeat.Equal(now) {
		t.Errorf("status heartbeat %v, want %v", st.Heartbeat, now)
	}
	// A second cluster root is refused.
	other := filepath.Join(e.dir, "other")
	os.MkdirAll(other, 0o755)
	if _, err := e.m.Make(ctx, MakeRequest{Source: other, Shared: "C"}); err == nil || !strings.Contains(err.Error(), "cluster root already") {
		t.Errorf("second cluster root: %v", err)
	}
	// Removing the cluster root leaves the child where it was.
	if _, err := e.m.Offline(ctx, OfflineRequest{UUID: r.UUID, Source: cluster, Delete: true}); err != nil {
		t.Fatal(err)
	}
	mustNotMounted(t, e.root)
	if meta, err := ReadMetadata(filepath.Join(e.root, c.UUID)); err != nil || meta.UUID != c.UUID {
		t.Fatalf("child after the cluster root went: %+v %v", meta, err)
	}
	// And a cluster root that comes back goes under the child again.
	if _, err := e.m.Add(ctx, cluster, ""); err != nil {
		t.Fatal(err)
	}
	if meta, err := ReadMetadata(e.root); err != nil || meta.UUID != r.UUID {
		t.Fatalf("cluster root added back: %+v %v", meta, err)
	}
	if meta, err := ReadMetadata(filepath.Join(e.root, c.UUID)); err != nil || meta.UUID != c.UUID {
		t.Fatalf("child after the cluster root came back: %+v %v", meta, err)
	}
	if _, err := e.m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	table, _ := ReadMountInfo()
	if left := mountsUnder(table, e.dir); len(left) != 0 {
		t.Errorf("mounts left after stop: %v", left)
	}
}

// TestMakeOfflineCommands runs ovs-makerepo and ovs-offlinerepo's logic
// end to end through Commands.
func TestMakeOfflineCommands(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	cmds := Commands{Ctl: e.m}
	src := filepath.Join(e.dir, "store")
	os.MkdirAll(src, 0o755)
	var out, errOut bytes.Buffer
	if code := cmds.Make(ctx, &out, &errOut, src, "1", "shared store", ""); code != ExitOK {
		t.Fatalf("make exit %d: %s", code, errOut.String())
	}
	uuid := strings.TrimSpace(out.String())
	if CheckUUID(uuid) != nil {
		t.Fatalf("make printed %q", out.String())
	}
	repos, _ := os.ReadFile(e.repos)
	opts, _ := os.ReadFile(e.opts)
	if !strings.Contains(string(repos), uuid+" "+src+"\n") || !strings.Contains(string(opts), uuid+" defaults\n") {
		t.Fatalf("files:\n%s\n%s", repos, opts)
	}
	// Making it again is refused: it is configured, and it is a repository.
	out.Reset()
	errOut.Reset()
	if code := cmds.Make(ctx, &out, &errOut, src, "1", "again", ""); code != ExitFailed || !strings.Contains(errOut.String(), "configured already") {
		t.Errorf("make twice: %d %s", code, errOut.String())
	}
	if code := cmds.Make(ctx, &out, &errOut, src, "2", "x", ""); code != ExitFailed || !strings.Contains(errOut.String(), "want 0") {
		t.Errorf("bad shared: %d %s", code, errOut.String())
	}
	// Offline with the wrong source is refused.
	errOut.Reset()
	if code := cmds.Offline(ctx, &out, &errOut, uuid, "/elsewhere", false); code != ExitFailed || !strings.Contains(errOut.String(), "not /elsewhere") {
		t.Errorf("offline wrong source: %d %s", code, errOut.String())
	}
	// Offline: unmounted, still configured, stays so through a reload.
	if code := cmds.Offline(ctx, &out, &errOut, uuid, src, false); code != ExitOK {
		t.Fatalf("offline: %d %s", code, errOut.String())
	}
	mustNotMounted(t, filepath.Join(e.root, uuid))
	rep, _ := e.m.Reload(ctx)
	if s := find(t, rep, uuid); s.State != StateOffline || !s.Configured {
		t.Errorf("offline after reload: %+v", s)
	}
	mustNotMounted(t, filepath.Join(e.root, uuid))
	// Another manager (the CLI run later, or the agent restarted) keeps it offline.
	m2, _ := NewManager(e.m.Options())
	if rep, _ := m2.Reload(ctx); find(t, rep, uuid).State != StateOffline {
		t.Errorf("offline mark lost: %+v", rep)
	}
	// start brings it back.
	out.Reset()
	if code := cmds.Start(ctx, &out, &errOut); code != ExitOK {
		t.Fatalf("start: %d\n%s%s", code, out.String(), errOut.String())
	}
	mustMounted(t, filepath.Join(e.root, uuid))
	out.Reset()
	if code := cmds.Status(ctx, &out, &errOut); code != ExitOK || !strings.Contains(out.String(), "shared store") || !strings.Contains(out.String(), "mounted") {
		t.Errorf("status: %d\n%s", code, out.String())
	}
	// Offline -d: unmounted and gone from both files.
	if code := cmds.Offline(ctx, &out, &errOut, uuid, src, true); code != ExitOK {
		t.Fatalf("offline -d: %d %s", code, errOut.String())
	}
	mustNotMounted(t, filepath.Join(e.root, uuid))
	repos, _ = os.ReadFile(e.repos)
	opts, _ = os.ReadFile(e.opts)
	if strings.Contains(string(repos), uuid) || strings.Contains(string(opts), uuid) {
		t.Errorf("entries left:\n%s\n%s", repos, opts)
	}
	// The storage is still a repository: add registers it again.
	if code := cmds.Add(ctx, &out, &errOut, src, "ro"); code != ExitOK {
		t.Fatalf("add: %d %s", code, errOut.String())
	}
	if mi := mustMounted(t, filepath.Join(e.root, uuid)); !mi.HasOption("ro") {
		t.Errorf("added with ro: %+v", mi)
	}
	if code := cmds.Remove(ctx, &out, &errOut, uuid); code != ExitOK {
		t.Fatalf("remove: %d %s", code, errOut.String())
	}
	errOut.Reset()
	if code := cmds.Offline(ctx, &out, &errOut, uuid, "", false); code != ExitFailed || !strings.Contains(errOut.String(), "no repository") {
		t.Errorf("offline unknown: %d %s", code, errOut.String())
	}
	out.Reset()
	if code := cmds.Stop(ctx, &out, &errOut); code != ExitOK {
		t.Errorf("stop: %d %s", code, out.String())
	}
	out.Reset()
	if code := cmds.Status(ctx, &out, &errOut); code != ExitStopped {
		t.Errorf("status when stopped: %d %s", code, out.String())
	}
}

// TestAdoptAfterRestart: a new Manager (the agent restarted) finds the
// mounts in place and leaves them alone.
func TestAdoptAfterRestart(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	a := e.localRepo("a", u1, "1")
	e.write(e.repos, u1+" "+a+"\n")
	e.write(e.opts, u1+" ro\n")
	if _, err := e.m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	before := mustMounted(t, filepath.Join(e.root, u1))
	// A line added while no agent runs: the next one reports it, unmounted.
	e.write(e.repos, u1+" "+a+"\n"+u2+" 127.0.0.1:/export\n")
	m2, err := NewManager(e.m.Options())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := m2.Status(ctx)
	if s := find(t, rep, u1); err != nil || s.State != StateMounted || s.Options != "ro" || !s.Configured {
		t.Fatalf("adopted: %+v %v", s, err)
	}
	if s := find(t, rep, u2); s.State != StateError || s.Error != "not mounted (ovsrepositories reload mounts it)" || !s.Configured {
		t.Errorf("configured, never mounted: %+v", s)
	}
	if _, err := m2.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if after := mustMounted(t, filepath.Join(e.root, u1)); after.ID != before.ID {
		t.Errorf("reload after restart remounted: mount %d became %d", before.ID, after.ID)
	}
}

// TestTemplatesOnMountedRepository lists and uses templates through the
// Manager.
func TestTemplatesOnMountedRepository(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	a := e.localRepo("a", u1, "1")
	writeTemplate(t, a, "OVM_EL5", "name = 'OVM_EL5'\nmemory = 512\nvif = ['bridge=xenbr0']\n")
	os.MkdirAll(filepath.Join(a, ISOPool), 0o755)
	os.WriteFile(filepath.Join(a, ISOPool, "el5.iso"), []byte("iso"), 0o644)
	e.write(e.repos, u1+" "+a+"\n")
	if _, err := e.m.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	ts, err := e.m.Templates(u1)
	if err != nil || len(ts) != 1 || ts[0].Name != "OVM_EL5" || ts[0].Memory != 512 || ts[0].Path != filepath.Join(e.root, u1, SeedPool, "OVM_EL5") {
		t.Fatalf("templates: %+v %v", ts, err)
	}
	isos, err := e.m.ISOs(u1)
	if err != nil || len(isos) != 1 || isos[0].Name != "el5.iso" {
		t.Fatalf("isos: %+v %v", isos, err)
	}
	c, err := e.m.CreateFromTemplate(ctx, u1, "OVM_EL5", "web1")
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir != filepath.Join(e.root, u1, RunningPool, "web1") {
		t.Errorf("created in %s", c.Dir)
	}
	if _, err := e.m.Templates(u2); err == nil {
		t.Error("templates of an unknown repository")
	}
}

// TestMakeWithUUID: a caller may name the new repository's UUID (agent
// 3's create_repository); it is checked, written as given, and refused
// (nothing changed) when malformed or when any spelling of it is taken.
func TestMakeWithUUID(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	a := filepath.Join(e.dir, "a")
	b := filepath.Join(e.dir, "b")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(b, 0o755)
	const id = "0004fb0000030000aeaca859e4a8f8c0"
	if _, err := e.m.Make(ctx, MakeRequest{Source: a, Shared: "1", UUID: "0004fb00-0003-0000"}); err == nil || !errors.Is(err, ErrBadInput) {
		t.Fatalf("malformed UUID: %v", err)
	}
	st, err := e.m.Make(ctx, MakeRequest{Source: a, Shared: "1", Description: "named", UUID: id})
	if err != nil {
		t.Fatal(err)
	}
	if st.UUID != id || st.State != StateMounted || st.MountPoint != filepath.Join(e.root, id) {
		t.Fatalf("made: %+v", st)
	}
	if meta, err := ReadMetadata(filepath.Join(e.root, id)); err != nil || meta.UUID != id || meta.Description != "named" {
		t.Fatalf("metadata: %+v, %v", meta, err)
	}
	before, _ := os.ReadFile(e.repos)
	for _, taken := range []string{id, "0004FB00-0003-0000-AEAC-A859E4A8F8C0"} {
		_, err := e.m.Make(ctx, MakeRequest{Source: b, Shared: "1", UUID: taken})
		if err == nil || !errors.Is(err, ErrConfigured) || !strings.Contains(err.Error(), "taken") {
			t.Errorf("make with taken UUID %s: %v", taken, err)
		}
	}
	if after, _ := os.ReadFile(e.repos); !bytes.Equal(before, after) {
		t.Errorf("a refused make changed the repositories file:\n%s", after)
	}
	if meta, err := ReadMetadata(b); err == nil {
		t.Errorf("a refused make wrote metadata onto %s: %+v", b, meta)
	}
}
