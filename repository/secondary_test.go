package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecondaryMount mounts a block device as a manager's secondary
// storage: forced nosuid,nodev,noexec, a repeated call answered as it is,
// another source or a non-empty folder refused, options outside the
// allow-list refused, and unmount removing the folder.
func TestSecondaryMount(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	dir := filepath.Join(e.dir, "nfsmnt")
	dev := e.loop()
	src, err := ParseSource(dev)
	if err != nil {
		t.Fatal(err)
	}
	const name = "0a1b2c3d-0000-4000-8000-00000000000a"
	target := filepath.Join(dir, name)

	// Refusals before anything is made.
	for _, c := range []struct {
		req  SecondaryRequest
		want string
	}{
		{SecondaryRequest{Dir: dir, Name: "../etc", Source: src}, "mount name"},
		{SecondaryRequest{Dir: dir, Name: name, Source: src, Options: []string{"suid"}}, "nosuid"},
		{SecondaryRequest{Dir: dir, Name: name, Source: src, Options: []string{"loop=/dev/x"}}, "not allowed"},
		{SecondaryRequest{Dir: dir, Name: name, Source: src, Options: []string{"noatime=1"}}, "takes no value"},
		{SecondaryRequest{Dir: e.root, Name: name, Source: src}, "overlaps"},
		{SecondaryRequest{Dir: dir, Name: name, Source: Source{Raw: "/srv", Path: "/srv", Kind: LocalDir}}, "cannot be a secondary mount"},
	} {
		_, err := e.m.MountSecondary(ctx, c.req)
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MountSecondary(%+v) = %v, want ErrBadInput saying %q", c.req, err, c.want)
		}
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused mount made %s (%v)", dir, err)
	}

	got, err := e.m.MountSecondary(ctx, SecondaryRequest{Dir: dir, Name: name, Source: src, Options: []string{"rw", "noatime"}})
	if err != nil {
		t.Fatal(err)
	}
	if got.MountPoint != target || got.FSType != "ext4" || got.Size == 0 || got.Free == 0 {
		t.Errorf("mounted %+v, want ext4 at %s with a size", got, target)
	}
	mi, ok := topMount(mustTable(t), target)
	if !ok {
		t.Fatalf("%s is not in the mount table", target)
	}
	for _, o := range []string{"rw", "noatime", "nosuid", "nodev", "noexec"} {
		if !mi.HasOption(o) {
			t.Errorf("mount options %q lack %s", mi.Options, o)
		}
	}
	again, err := e.m.MountSecondary(ctx, SecondaryRequest{Dir: dir, Name: name, Source: src})
	if err != nil || again.MountPoint != target {
		t.Errorf("repeated mount = %+v, %v; want the same mount answered", again, err)
	}
	list, err := e.m.SecondaryMounts(dir)
	if err != nil || len(list) != 1 || list[0].Name != name || list[0].Source != dev {
		t.Errorf("SecondaryMounts = %+v, %v; want the one mount of %s", list, err, dev)
	}

	// Another source at the same place, and a folder that is not empty.
	other := e.loop()
	osrc, _ := ParseSource(other)
	if _, err := e.m.MountSecondary(ctx, SecondaryRequest{Dir: dir, Name: name, Source: osrc}); !errors.Is(err, ErrConfigured) {
		t.Errorf("another source on a used mount point: %v, want ErrConfigured", err)
	}
	busy := filepath.Join(dir, "full")
	if err := os.MkdirAll(busy, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(busy, "x"), nil, 0o644)
	if _, err := e.m.MountSecondary(ctx, SecondaryRequest{Dir: dir, Name: "full", Source: osrc}); !errors.Is(err, ErrConfigured) || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("a non-empty mount point: %v, want ErrConfigured saying it is not empty", err)
	}

	// A file open on it keeps it mounted.
	f, err := os.Create(filepath.Join(target, "iso"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.UnmountSecondary(ctx, dir, name); err == nil || !isMounted(target) {
		t.Errorf("unmount of a busy file system = %v (mounted %v), want an error and the mount kept", err, isMounted(target))
	}
	f.Close()
	if was, err := e.m.UnmountSecondary(ctx, dir, name); err != nil || was.Source != dev {
		t.Fatalf("UnmountSecondary = %+v, %v; want the mount of %s", was, err, dev)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the mount point stays after unmount (%v)", err)
	}
	if _, err := e.m.UnmountSecondary(ctx, dir, name); !errors.Is(err, ErrNotMounted) {
		t.Errorf("unmount of nothing = %v, want ErrNotMounted", err)
	}
}

// TestSecondaryMountFails: a mount that fails (an NFS server that is not
// there, on a host that may lack NFS) leaves no folder and no mount.
func TestSecondaryMountFails(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MountTimeout = 5e9 })
	dir := filepath.Join(e.dir, "nfsmnt")
	src, err := ParseSource("127.0.0.1:/no/such/export")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.m.MountSecondary(context.Background(), SecondaryRequest{Dir: dir, Name: "sec", Source: src, Options: []string{"vers=3", "soft", "timeo=10", "retrans=1"}})
	if err == nil {
		t.Fatal("mounting a missing NFS export succeeded")
	}
	if _, serr := os.Lstat(filepath.Join(dir, "sec")); !os.IsNotExist(serr) {
		t.Errorf("a failed mount (%v) left its mount point (%v)", err, serr)
	}
	if isMounted(filepath.Join(dir, "sec")) {
		t.Error("a failed mount left a mount")
	}
}

func mustTable(t *testing.T) []MountInfo {
	t.Helper()
	table, err := ReadMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	return table
}
