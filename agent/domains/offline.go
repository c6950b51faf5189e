package domains

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/repository"
)

// BeginOffline marks a stopped domain as migrating to target: until
// EndOffline or FinishOffline nothing can start, change or delete it. The
// mark survives an agent restart (OfflineInDoubt).
func (m *Manager) BeginOffline(name, target string) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := check(name, "offline", d.rec.State); err != nil {
		return err
	}
	d.rec.OfflineTarget = target
	m.setState(d, Migrating, "offline migration to "+target)
	return nil
}

// EndOffline puts a migrating domain back as it was (stopped), giving the
// reason (a failed or cancelled copy).
func (m *Manager) EndOffline(name, reason string) {
	d, err := m.get(name)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rec.State == Migrating {
		d.rec.OfflineTarget = ""
		m.setState(d, Stopped, reason)
	}
}

// OfflineInDoubt lists the domains found migrating (an agent restart cut
// their offline migration short) and their targets.
func (m *Manager) OfflineInDoubt() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for name, d := range m.doms {
		d.mu.Lock()
		if d.rec.State == Migrating {
			out[name] = d.rec.OfflineTarget
		}
		d.mu.Unlock()
	}
	return out
}

// FinishOffline settles the source side of a committed offline migration:
// the domain leaves this host's registry and the disks that were copied
// are kept renamed (NAME.migrated-TIME for the domain's running_pool
// folder, FILE.migrated-TIME for other files) or, with remove, deleted.
// Disks on repositories the target shares are left alone. It returns what
// the data was kept as ("" when removed).
func (m *Manager) FinishOffline(name string, copied []string, remove bool) (string, error) {
	d, err := m.get(name)
	if err != nil {
		return "", err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	if d.rec.State != Migrating {
		st := d.rec.State
		d.mu.Unlock()
		return "", errorf(BadState, "domain %s is %s, not migrating", name, st)
	}
	text, _ := os.ReadFile(filepath.Join(d.dir, "vm.cfg"))
	d.mu.Unlock()
	m.forget(d)
	m.log.Info("domain moved away (offline migration)", zap.String("domain", name))

	suffix := ".migrated-" + time.Now().UTC().Format("20060102T150405Z")
	byDir := map[string][]string{}
	for _, p := range copied {
		byDir[filepath.Dir(p)] = append(byDir[filepath.Dir(p)], p)
	}
	var kept []string
	var errs []error
	for dir, files := range byDir {
		if filepath.Base(dir) == name && filepath.Base(filepath.Dir(dir)) == repository.RunningPool {
			// The domain's own folder moves as one.
			if remove {
				if err := os.RemoveAll(dir); err != nil {
					errs = append(errs, err)
				}
				continue
			}
			if len(text) > 0 {
				_ = atomicfile.WriteFile(filepath.Join(dir, "vm.cfg"+suffix), text, 0o600)
			}
			if err := os.Rename(dir, dir+suffix); err != nil {
				errs = append(errs, err)
			} else {
				kept = append(kept, dir+suffix)
			}
			continue
		}
		for _, f := range files {
			if remove {
				if err := os.Remove(f); err != nil {
					errs = append(errs, err)
				}
			} else if err := os.Rename(f, f+suffix); err != nil {
				errs = append(errs, err)
			} else {
				kept = append(kept, f+suffix)
			}
		}
	}
	keptAs := ""
	if len(kept) > 0 {
		keptAs = kept[0]
		if len(kept) > 1 {
			keptAs = fmt.Sprintf("%s and %d more", kept[0], len(kept)-1)
		}
	}
	if len(errs) > 0 {
		m.log.Error("offline migration: settle the source copy", zap.String("domain", name), zap.Errors("errors", errs))
		return keptAs, errorf(Failed, "domain %s moved, but its source copy could not all be renamed or removed: %v", name, errs[0])
	}
	return keptAs, nil
}
