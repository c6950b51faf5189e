package repository

// MountPoints returns the mount points of the repositories mounted now
// (mounted or in use), for callers that confine file access to them.
func (m *Manager) MountPoints() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, s := range m.snap.Repositories {
		if s.State == StateMounted || s.State == StateInUse {
			out = append(out, s.MountPoint)
		}
	}
	return out
}
