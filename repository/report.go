package repository

import (
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// publish copies the state into the snapshot that Status serves. The
// caller holds the operation lock.
func (m *Manager) publish() {
	order := map[string]int{}
	for i, e := range m.cfg.Entries {
		order[CanonicalUUID(e.UUID)] = i
	}
	rep := Report{Stopped: m.stopped}
	for _, p := range m.cfg.Problems {
		rep.Problems = append(rep.Problems, p.Error())
	}
	if m.cfgErr != nil {
		rep.Problems = append(rep.Problems, m.cfgErr.Error())
	}
	paths := map[string]string{}
	for _, r := range m.repos {
		s := Status{
			UUID: r.uuid, State: r.state, Error: r.err,
			Shared: r.meta.Shared, Description: r.meta.Description,
			Configured: r.entry != nil || r.held != "", Domains: r.domains,
		}
		if s.State == "" {
			s.State = StateUnmounted
		}
		if r.entry != nil {
			s.Source, s.Options = r.entry.Source.Raw, r.entry.Options
		} else {
			s.Source, s.Options = r.src.Raw, r.options
		}
		s.MountPoint = r.target
		if s.MountPoint == "" {
			s.MountPoint = filepath.Join(m.opts.Root, r.uuid)
			if r.meta.Shared == SharedClusterRoot {
				s.MountPoint = m.opts.Root
			}
		} else {
			paths[r.key] = r.target
		}
		if r.target == m.opts.Root && r.target != "" {
			s.ClusterRoot = true
			s.Heartbeat = m.hb.last
			if m.hb.err != "" && s.Error == "" {
				s.Error = "heartbeat: " + m.hb.err
			}
		}
		rep.Repositories = append(rep.Repositories, s)
	}
	sortStatuses(rep.Repositories, order)
	m.mu.Lock()
	m.snap, m.paths = rep, paths
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// snapshot returns the published state with the live facts added: the
// domains that use each mounted repository and its size and free space.
func (m *Manager) snapshot() Report {
	m.mu.Lock()
	rep := m.snap
	rep.Repositories = append([]Status(nil), m.snap.Repositories...)
	rep.Problems = append([]string(nil), m.snap.Problems...)
	m.mu.Unlock()
	for i := range rep.Repositories {
		s := &rep.Repositories[i]
		if s.State != StateMounted && s.State != StateInUse {
			continue
		}
		if s.State == StateMounted {
			s.Domains = m.opts.InUse(s.UUID)
		}
		if size, free, ok := m.stat.size(s.MountPoint); ok {
			s.Size, s.Free = size, free
		}
	}
	return rep
}

// reportLocked publishes and returns the report (operation lock held).
func (m *Manager) reportLocked() Report {
	m.publish()
	return m.snapshot()
}

// heartbeatLocked refreshes the heartbeat file on the cluster root now.
// The write runs in its own goroutine and is waited for at most the
// mount timeout: a dead server costs a timeout, not a hang; while one
// write is stuck no other is started.
func (m *Manager) heartbeatLocked() {
	var cr *repo
	for _, r := range m.repos {
		if r.mounted && r.target == m.opts.Root {
			cr = r
		}
	}
	if cr == nil {
		return
	}
	if table, err := ReadMountInfo(); err == nil {
		if bm, ok := topMount(table, cr.backing); !ok || (cr.ident != mountKey{} && keyOf(bm) != cr.ident) {
			// Unmounted (or replaced) by another process since the last
			// operation: the heartbeat would land on the wrong file
			// system. The next operation (or refresh) sorts it out.
			return
		}
	}
	if !m.hb.pending.CompareAndSwap(false, true) {
		return
	}
	now := m.opts.Now()
	done := make(chan error, 1)
	dir := cr.backing
	go func() {
		done <- writeHeartbeat(dir, m.opts.HostID, now)
		m.hb.pending.Store(false)
	}()
	select {
	case err := <-done:
		if err != nil {
			m.hb.err = err.Error()
			m.log.Warn("heartbeat not written", zap.Error(err))
			return
		}
		m.hb.last, m.hb.err = now, ""
	case <-time.After(m.opts.MountTimeout):
		m.hb.err = "writing " + HeartbeatFile + " timed out"
	}
}

// RepositoryOf returns the mounted repository that holds path (an
// absolute path, cleaned): the one with the longest mount point that
// contains it. A disk on the cluster root (ROOT/running_pool/...) is on
// the cluster root; ROOT/<uuid>/... is on repository uuid.
func (m *Manager) RepositoryOf(path string) (uuid string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	best := -1
	for _, s := range m.snap.Repositories {
		if s.State != StateMounted && s.State != StateInUse {
			continue
		}
		if within(path, s.MountPoint) && len(s.MountPoint) > best {
			uuid, best = s.UUID, len(s.MountPoint)
		}
	}
	return uuid, best >= 0
}
