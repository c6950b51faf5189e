package repository

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"

	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// testEnv is a Manager on temporary directories: root, staging, the two
// configuration files and the state file. Its cleanup detaches every
// mount below its directory and every loop device it made, even when the
// test fails.
type testEnv struct {
	t       *testing.T
	dir     string
	root    string
	staging string
	repos   string
	opts    string
	m       *Manager

	mu    sync.Mutex
	inUse map[string][]string
	loops []string
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts file systems")
	}
}

func newEnv(t *testing.T, tweak func(*Options)) *testEnv {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, root: filepath.Join(dir, "OVS"), staging: filepath.Join(dir, "mnt"),
		repos: filepath.Join(dir, "etc", "repositories"), opts: filepath.Join(dir, "etc", "repositories.options"),
		inUse: map[string][]string{}}
	t.Cleanup(e.cleanup)
	o := Options{
		Root: e.root, StagingDir: e.staging, RepositoriesFile: e.repos, OptionsFile: e.opts,
		StateFile: filepath.Join(dir, "run", "repositories.state"), HostID: "host-a",
		MountTimeout: 20 * time.Second, Debounce: 50 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		Logger: zaptest.NewLogger(t),
		InUse: func(uuid string) []string {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.inUse[CanonicalUUID(uuid)]
		},
	}
	if tweak != nil {
		tweak(&o)
	}
	m, err := NewManager(o)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	return e
}

func (e *testEnv) setInUse(uuid string, domains ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inUse[CanonicalUUID(uuid)] = domains
}

// cleanup detaches every mount under e.dir, deepest first, then the loop
// devices.
func (e *testEnv) cleanup() {
	for i := 0; i < 5; i++ {
		table, err := ReadMountInfo()
		if err != nil {
			e.t.Errorf("cleanup: %v", err)
			return
		}
		under := mountsUnder(table, e.dir)
		if len(under) == 0 {
			break
		}
		sort.Slice(under, func(i, j int) bool { return len(under[i]) > len(under[j]) })
		for _, p := range under {
			unix.Unmount(p, unix.MNT_DETACH)
		}
	}
	for _, l := range e.loops {
		if out, err := exec.Command("losetup", "-d", l).CombinedOutput(); err != nil {
			e.t.Errorf("cleanup: losetup -d %s: %v: %s", l, err, out)
		}
	}
}

// loop makes an ext4 image of 32 MiB on a loop device.
func (e *testEnv) loop() string {
	e.t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		e.t.Skip("needs mkfs.ext4 (e2fsprogs)")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		e.t.Skip("needs losetup (util-linux)")
	}
	img, err := os.CreateTemp(e.dir, "disk-*.img")
	if err != nil {
		e.t.Fatal(err)
	}
	img.Close()
	if err := os.Truncate(img.Name(), 32<<20); err != nil {
		e.t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img.Name()).CombinedOutput(); err != nil {
		e.t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img.Name()).Output()
	if err != nil {
		e.t.Skipf("no loop device available: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	e.mu.Lock()
	e.loops = append(e.loops, dev)
	e.mu.Unlock()
	return dev
}

func (e *testEnv) write(path, content string) {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		e.t.Fatal(err)
	}
	// Replace by rename, as editors do.
	if err := atomicfile.WriteFile(path, []byte(content), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// mountAt returns the mount visible at path.
func mountAt(t *testing.T, path string) (MountInfo, bool) {
	t.Helper()
	table, err := ReadMountInfo()
	if err != nil {
		t.Fatal(err)
	}
	return topMount(table, path)
}

// waitFor polls the Manager's status until cond holds.
func (e *testEnv) waitFor(what string, cond func(Report) bool) Report {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ch := e.m.Changed()
		rep, err := e.m.Status(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		if cond(rep) {
			return rep
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; status: %+v", what, rep)
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
