package repository

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Run is the agent's side of the Manager: it applies the files (unless
// the repositories were stopped), then keeps them applied: it watches the
// directories of the two files with fsnotify (editors replace a file by
// renaming a new one over it, so the directory is watched, not the
// file), waits until changes have settled for Options.Debounce, and
// reloads; and it refreshes the heartbeat file on the cluster root every
// HeartbeatInterval. It watches the state file too: when another process
// (the standalone `ovs-agent repo` command) records a change that leaves
// the files as they were (offline, stop, start), Run refreshes what it
// shows from the state file and the mount table, changing nothing. It returns when ctx ends, leaving every mount in
// place (restarting the agent never disturbs repositories), or at once
// if the watcher cannot be set up.
func (m *Manager) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch repositories configuration: %w", err)
	}
	defer w.Close()
	names := map[string]bool{m.opts.RepositoriesFile: true, m.opts.OptionsFile: true}
	dirs := map[string]bool{filepath.Dir(m.opts.RepositoriesFile): true, filepath.Dir(m.opts.OptionsFile): true,
		filepath.Dir(m.opts.StateFile): true}
	for d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("watch repositories configuration: %w", err)
		}
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watch repositories configuration: %s: %w", d, err)
		}
	}
	m.log.Info("watching repositories configuration", zap.String("repositories", m.opts.RepositoriesFile), zap.String("options", m.opts.OptionsFile))

	// Watching starts before the first apply, so no change is missed.
	if _, err := m.Reload(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("repositories not applied at start", zap.Error(err))
	}

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	// What the debounce timer does when it fires: reload (a file
	// changed), or only refresh (the state file changed).
	var reload, refresh bool
	hb := time.NewTicker(m.opts.HeartbeatInterval)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("watch repositories configuration: watcher closed")
			}
			switch name := filepath.Clean(ev.Name); {
			case names[name]:
				reload = true
				debounce.Reset(m.opts.Debounce)
			case name == m.opts.StateFile:
				refresh = true
				debounce.Reset(m.opts.Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("watch repositories configuration: watcher closed")
			}
			// An overflow loses events: reload to be sure.
			m.log.Warn("watching repositories configuration", zap.Error(err))
			reload = true
			debounce.Reset(m.opts.Debounce)
		case <-debounce.C:
			switch {
			case reload:
				m.log.Info("repositories configuration changed; applying")
				if _, err := m.Reload(ctx); err != nil && ctx.Err() == nil {
					m.log.Error("repositories not applied", zap.Error(err))
				}
			case refresh:
				if err := m.refresh(ctx); err != nil && ctx.Err() == nil {
					m.log.Error("repository state not refreshed", zap.Error(err))
				}
			}
			reload, refresh = false, false
		case <-hb.C:
			m.Heartbeat(ctx)
		}
	}
}

// Heartbeat refreshes the heartbeat file on the cluster root, if one is
// mounted. It skips a beat rather than wait for a running operation.
func (m *Manager) Heartbeat(ctx context.Context) {
	select {
	case m.sem <- struct{}{}:
	default:
		return
	}
	defer func() { <-m.sem }()
	if !m.loaded {
		return
	}
	m.heartbeatLocked()
	m.publish()
}

// refresh brings the published state up to date with the files, the
// state file and the mount table (see sync) without applying anything:
// another process changed the mounts, and this one only has to show
// them. An unreadable file leaves the configuration as it was.
func (m *Manager) refresh(ctx context.Context) error {
	done, err := m.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	cfg, err := LoadConfig(m.opts.RepositoriesFile, m.opts.OptionsFile)
	m.cfgErr = err
	if err == nil {
		m.cfg = cfg
	}
	want, _ := m.assignConfig()
	m.computeStates(want)
	return err
}
