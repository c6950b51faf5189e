package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"

	"golang.org/x/sys/unix"
)

// DefaultStateFile keeps what the agent (or the standalone CLI) applied:
// which repositories are mounted with which source and options, which
// were taken offline, and whether the repositories are stopped. It lives
// under /var/run, which is emptied at boot, when the mounts are gone too.
const DefaultStateFile = "/var/run/ovs-agent/repositories.state"

// persisted is the state file's content.
type persisted struct {
	Stopped bool                      `json:"stopped"`
	Offline []string                  `json:"offline,omitempty"` // canonical UUIDs
	Mounts  map[string]persistedMount `json:"mounts,omitempty"`  // by canonical UUID
}

type persistedMount struct {
	UUID    string `json:"uuid"`
	Source  string `json:"source"`
	Options string `json:"options"`
}

func loadState(path string) (persisted, error) {
	var p persisted
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("read state %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return persisted{}, fmt.Errorf("read state %s: %w", path, err)
	}
	return p, nil
}

func saveState(path string, p persisted) error {
	sort.Strings(p.Offline)
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	data = append(data, '\n')
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		// Unchanged: not rewritten, so that a watcher of the state file
		// (another process's Run) hears only of real changes.
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, data, 0o644)
}

// fileLock is an exclusive flock on a lock file beside the state file. It
// serializes the agent and standalone `ovs-agent repo` commands.
type fileLock struct{ f *os.File }

func lockFile(ctx context.Context, path string) (*fileLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return &fileLock{f}, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: another repository operation holds it: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *fileLock) unlock() {
	unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	l.f.Close()
}
