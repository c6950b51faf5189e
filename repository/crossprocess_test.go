package repository

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mountIDs returns the IDs of every mount on path (stacked ones too).
func mountIDs(t *testing.T, path string) []int {
	t.Helper()
	table, err := ReadMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, mi := range table {
		if mi.MountPoint == path {
			ids = append(ids, mi.ID)
		}
	}
	return ids
}

// sameIDs fails unless path carries exactly one mount, the one it had.
func sameIDs(t *testing.T, what, path string, before []int) {
	t.Helper()
	after := mountIDs(t, path)
	if len(before) != 1 || len(after) != 1 || after[0] != before[0] {
		t.Errorf("%s: mounts on %s were %v, now %v (remounted or stacked)", what, path, before, after)
	}
}

// noError fails the test at once if the repository uuid is in error, so
// a regression shows its message instead of a timeout.
func noError(t *testing.T, rep Report, uuid string) {
	t.Helper()
	if s, ok := rep.Find(uuid); ok && (s.State == StateError || s.Error != "") {
		t.Fatalf("agent shows %s in error: %+v", uuid, s)
	}
}

// TestAgentAndCLI runs two Managers on the same files, state file and
// mounts, as the agent (Run, its watcher) and the standalone
// `ovs-agent repo ...` command do. Each change the command makes behind
// the agent's back is what the agent then shows, and the agent neither
// undoes it nor fails on it: a repository the command unmounted and
// removed disappears, one it took offline is offline, and one it mounted
// is adopted, never mounted again.
func TestAgentAndCLI(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	a := e.localRepo("a", u1, "1")
	b := e.localRepo("b", u3, "0")
	e.write(e.repos, u1+" "+a+"\n"+u3+" "+b+"\n")

	agent := e.m
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	e.waitFor("a and b mounted by the agent", func(r Report) bool {
		sa, oka := r.Find(u1)
		sb, okb := r.Find(u3)
		return oka && okb && sa.State == StateMounted && sb.State == StateMounted
	})
	// The command line: a Manager of its own, as `ovs-agent repo` makes.
	cli := func() Commands {
		m, err := NewManager(agent.Options())
		if err != nil {
			t.Fatal(err)
		}
		return Commands{Ctl: m}
	}
	var out, errOut strings.Builder

	// 1. ovs-offlinerepo -d: the command unmounts a and removes its
	// lines; the agent, told by its watcher, finds it gone.
	if code := cli().Offline(ctx, &out, &errOut, u1, a, true); code != ExitOK {
		t.Fatalf("offline -d: exit %d: %s", code, errOut.String())
	}
	mustNotMounted(t, filepath.Join(e.root, u1))
	mustNotMounted(t, filepath.Join(e.staging, u1))
	e.waitFor("a gone from the agent", func(r Report) bool {
		noError(t, r, u1)
		_, ok := r.Find(u1)
		return !ok
	})
	// Whatever the watcher did, a reload of the agent finds nothing to
	// do and no error.
	rep, err := agent.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rep.Find(u1); ok || !rep.OK() {
		t.Errorf("agent after offline -d: %+v", rep)
	}
	if s := find(t, rep, u3); s.State != StateMounted {
		t.Errorf("b after a went: %+v", s)
	}

	// 2. ovs-offlinerepo without -d: only the state file changes; the
	// agent shows b offline and keeps it so through a reload.
	if code := cli().Offline(ctx, &out, &errOut, u3, b, false); code != ExitOK {
		t.Fatalf("offline: exit %d: %s", code, errOut.String())
	}
	mustNotMounted(t, filepath.Join(e.staging, u3))
	e.waitFor("b offline in the agent", func(r Report) bool {
		noError(t, r, u3)
		s, ok := r.Find(u3)
		return ok && s.State == StateOffline
	})
	if rep, err := agent.Reload(ctx); err != nil || find(t, rep, u3).State != StateOffline {
		t.Errorf("agent reload after offline: %+v %v", rep, err)
	}
	mustNotMounted(t, filepath.Join(e.staging, u3))

	// 3. The other way: the command mounts what the agent does not know.
	// ovs-makerepo makes a new repository ...
	c := filepath.Join(e.dir, "c")
	os.MkdirAll(c, 0o755)
	out.Reset()
	if code := cli().Make(ctx, &out, &errOut, c, "1", "made by the command", "noatime"); code != ExitOK {
		t.Fatalf("make: exit %d: %s", code, errOut.String())
	}
	uc := strings.TrimSpace(out.String())
	cBacking, cPoint := filepath.Join(e.staging, uc), filepath.Join(e.root, uc)
	backingIDs, pointIDs := mountIDs(t, cBacking), mountIDs(t, cPoint)
	e.waitFor("c adopted by the agent", func(r Report) bool {
		noError(t, r, uc)
		s, ok := r.Find(uc)
		return ok && s.State == StateMounted && s.Description == "made by the command"
	})
	// ... and the agent adopts it: the mounts are the command's.
	rep, err = agent.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := find(t, rep, uc); s.State != StateMounted || s.Error != "" || s.MountPoint != cPoint || s.Options != "noatime" {
		t.Errorf("c in the agent: %+v", s)
	}
	sameIDs(t, "agent reload after make", cBacking, backingIDs)
	sameIDs(t, "agent reload after make", cPoint, pointIDs)

	// `ovsrepositories start` brings b back, mounted by the command; the
	// agent adopts it too.
	out.Reset()
	if code := cli().Start(ctx, &out, &errOut); code != ExitOK {
		t.Fatalf("start: exit %d: %s%s", code, out.String(), errOut.String())
	}
	bBacking, bPoint := filepath.Join(e.staging, u3), filepath.Join(e.root, u3)
	backingIDs, pointIDs = mountIDs(t, bBacking), mountIDs(t, bPoint)
	e.waitFor("b mounted again in the agent", func(r Report) bool {
		noError(t, r, u3)
		s, ok := r.Find(u3)
		return ok && s.State == StateMounted
	})
	rep, err = agent.Reload(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("agent reload after start: %+v %v", rep, err)
	}
	sameIDs(t, "agent reload after start", bBacking, backingIDs)
	sameIDs(t, "agent reload after start", bPoint, pointIDs)

	// 4. The agent works on what the command left: removing c through
	// the agent unmounts the command's mounts.
	if _, err := agent.Remove(ctx, uc); err != nil {
		t.Fatalf("agent removes c: %v", err)
	}
	mustNotMounted(t, cPoint)
	mustNotMounted(t, cBacking)

	// 5. Stopped by the command: the agent shows it and mounts nothing.
	out.Reset()
	if code := cli().Stop(ctx, &out, &errOut); code != ExitOK {
		t.Fatalf("stop: exit %d: %s", code, out.String())
	}
	e.waitFor("stopped in the agent", func(r Report) bool {
		noError(t, r, u3)
		s, ok := r.Find(u3)
		return r.Stopped && ok && s.State == StateUnmounted
	})
	if rep, err := agent.Reload(ctx); err != nil || !rep.Stopped || find(t, rep, u3).State != StateUnmounted {
		t.Errorf("agent reload while stopped: %+v %v", rep, err)
	}
	mustNotMounted(t, bBacking)
}

// TestUnmountNotMounted: unmounting a backing point that the mount table
// shows is not mounted succeeds without running umount(8).
func TestUnmountNotMounted(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.UmountCommand = "/nonexistent/umount" })
	dir := filepath.Join(e.staging, u1)
	os.MkdirAll(dir, 0o755)
	if err := e.m.unmountBacking(ctxT(t), dir); err != nil {
		t.Errorf("unmount of a plain directory: %v", err)
	}
}
