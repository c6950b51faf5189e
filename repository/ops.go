package repository

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ovs-agent/ovs-agent/internal/uuid"

	"go.uber.org/zap"
)

// MakeRequest is what ovs-makerepo is given.
type MakeRequest struct {
	Source      string // NFS export, block device or local directory
	Shared      string // 0, 1 or C
	Description string
	// Options are the mount options written to the options file; empty
	// writes "defaults".
	Options string
	// UUID, when given, is the new repository's UUID (a manager that
	// names its repositories itself: agent 3's create_repository), in
	// either form CheckUUID accepts and written as given; it must not
	// name a repository this host knows already. Empty generates one.
	UUID string
}

// DefaultMountOptions is what Make writes to the options file when no
// options are given.
const DefaultMountOptions = "defaults"

// Make turns a file system into a new repository (ovs-makerepo): it
// generates a UUID, mounts the source, writes the metadata file and the
// pool folders onto it, adds `uuid options` to the options file and
// `uuid source` to the repositories file (each replaced atomically), and
// puts the repository in its place. The source must not be a repository
// already (Add registers one), and must not be configured.
func (m *Manager) Make(ctx context.Context, req MakeRequest) (Status, error) {
	src, err := ParseSource(req.Source)
	if err != nil {
		return Status{}, fmt.Errorf("make repository: %w", classify(ErrBadInput, err))
	}
	shared, err := ParseShared(req.Shared)
	if err != nil {
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	if err := CheckDescription(req.Description); err != nil {
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	opts := req.Options
	if opts == "" {
		opts = DefaultMountOptions
	}
	if err := CheckOptions(opts); err != nil {
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	if req.UUID != "" {
		if err := CheckUUID(req.UUID); err != nil {
			return Status{}, fmt.Errorf("make repository: %w", classify(ErrBadInput, err))
		}
	}
	done, err := m.begin(ctx)
	if err != nil {
		return Status{}, err
	}
	defer done()
	if err := m.reloadConfig(); err != nil {
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	if err := m.checkNew(src, shared); err != nil {
		return Status{}, fmt.Errorf("make repository: %w", classify(ErrConfigured, err))
	}
	id := req.UUID
	if id == "" {
		if id, err = uuid.New(); err != nil {
			return Status{}, err
		}
	} else if err := m.checkFreeUUID(id); err != nil {
		return Status{}, fmt.Errorf("make repository: %w", classify(ErrConfigured, err))
	}
	meta := Metadata{UUID: id, Version: MetadataVersion, Shared: shared, Description: req.Description}
	e := Entry{UUID: id, Source: src, Options: opts}
	r := &repo{uuid: id, key: CanonicalUUID(id)}
	backing := filepath.Join(m.opts.StagingDir, id)
	if err := os.MkdirAll(backing, 0o755); err != nil {
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	if err := m.mnt.mountBacking(ctx, src, opts, backing); err != nil {
		os.Remove(backing)
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	undo := func(err error) (Status, error) {
		if uerr := m.mnt.unmountBacking(context.WithoutCancel(ctx), backing); uerr != nil {
			unbind(backing, true)
		}
		os.Remove(backing)
		return Status{}, fmt.Errorf("make repository: %w", err)
	}
	if old, err := ReadMetadata(backing); err == nil {
		return undo(fmt.Errorf("%s is already repository %s (%q); register it with `ovs-agent repo add %s`", src.Raw, old.UUID, old.Description, src.Raw))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return undo(err)
	}
	if err := initRepository(backing, meta); err != nil {
		return undo(err)
	}
	if err := appendEntry(m.opts.OptionsFile, optionsHeader, id, opts); err != nil {
		return undo(err)
	}
	if err := appendEntry(m.opts.RepositoriesFile, repositoriesHeader, id, src.Raw); err != nil {
		removeEntries(m.opts.OptionsFile, id)
		return undo(err)
	}
	r.backing, r.mounted, r.src, r.options, r.optsKnown, r.meta = backing, true, src, e.Options, true, meta
	m.repos[r.key] = r
	m.log.Info("repository made", zap.String("uuid", id), zap.String("source", src.Raw), zap.String("shared", shared), zap.String("description", req.Description))
	if err := m.reloadConfig(); err != nil {
		return Status{}, err
	}
	m.apply(ctx)
	return m.statusLocked(id)
}

// checkFreeUUID refuses a UUID (in any spelling) that a configured
// repository has, or one this manager still knows (mounted, or offline),
// or whose backing folder exists.
func (m *Manager) checkFreeUUID(id string) error {
	if e, ok := m.cfg.Lookup(id); ok {
		return fmt.Errorf("UUID %s is taken: repository %s (%s) is configured already", id, e.UUID, e.Source.Raw)
	}
	if why, ok := m.cfg.Held[CanonicalUUID(id)]; ok {
		return fmt.Errorf("UUID %s is taken: a line of the repositories files names it (%s)", id, why)
	}
	if r, ok := m.repos[CanonicalUUID(id)]; ok {
		return fmt.Errorf("UUID %s is taken: repository %s is known to this host (state file)", id, r.uuid)
	}
	if _, err := os.Lstat(filepath.Join(m.opts.StagingDir, id)); err == nil {
		return fmt.Errorf("UUID %s is taken: %s exists", id, filepath.Join(m.opts.StagingDir, id))
	}
	return nil
}

// checkNew refuses a source that is configured already, and a second
// cluster root.
func (m *Manager) checkNew(src Source, shared string) error {
	for _, e := range m.cfg.Entries {
		if e.Source.Raw == src.Raw {
			return fmt.Errorf("%s is configured already as repository %s", src.Raw, e.UUID)
		}
	}
	if shared == SharedClusterRoot {
		for _, r := range m.repos {
			if r.mounted && r.meta.Shared == SharedClusterRoot && r.entry != nil {
				return fmt.Errorf("repository %s is the cluster root already; a pool has one", r.uuid)
			}
		}
	}
	return nil
}

// Add registers an existing repository (one made by ovs-makerepo,
// perhaps on another server of the pool): it mounts the source to read
// its metadata, adds it to both files (the options file only when options
// are given) and mounts it in its place.
func (m *Manager) Add(ctx context.Context, source, options string) (Status, error) {
	src, err := ParseSource(source)
	if err != nil {
		return Status{}, fmt.Errorf("add repository: %w", classify(ErrBadInput, err))
	}
	if options != "" {
		if err := CheckOptions(options); err != nil {
			return Status{}, fmt.Errorf("add repository: %w", classify(ErrBadInput, err))
		}
	}
	done, err := m.begin(ctx)
	if err != nil {
		return Status{}, err
	}
	defer done()
	if err := m.reloadConfig(); err != nil {
		return Status{}, fmt.Errorf("add repository: %w", err)
	}
	if err := m.checkNew(src, ""); err != nil {
		return Status{}, fmt.Errorf("add repository: %w", classify(ErrConfigured, err))
	}
	probe, err := os.MkdirTemp(m.opts.StagingDir, ".probe-")
	if err != nil {
		if err := os.MkdirAll(m.opts.StagingDir, 0o755); err != nil {
			return Status{}, fmt.Errorf("add repository: %w", err)
		}
		if probe, err = os.MkdirTemp(m.opts.StagingDir, ".probe-"); err != nil {
			return Status{}, fmt.Errorf("add repository: %w", err)
		}
	}
	defer os.Remove(probe)
	if err := m.mnt.mountBacking(ctx, src, options, probe); err != nil {
		return Status{}, fmt.Errorf("add repository: %w", err)
	}
	meta, merr := ReadMetadata(probe)
	if err := m.mnt.unmountBacking(context.WithoutCancel(ctx), probe); err != nil {
		unbind(probe, true)
	}
	if errors.Is(merr, fs.ErrNotExist) {
		return Status{}, classify(ErrNotRepository, fmt.Errorf("add repository: %s is not a repository (no %s); make one with ovs-makerepo", src.Raw, MetadataFile))
	}
	if merr != nil {
		return Status{}, fmt.Errorf("add repository: %w", classify(ErrNotRepository, merr))
	}
	if _, dup := m.cfg.Lookup(meta.UUID); dup {
		return Status{}, classify(ErrConfigured, fmt.Errorf("add repository: %s holds repository %s, which is configured already", src.Raw, meta.UUID))
	}
	if meta.Shared == SharedClusterRoot {
		if err := m.checkNew(src, SharedClusterRoot); err != nil {
			return Status{}, fmt.Errorf("add repository: %w", classify(ErrConfigured, err))
		}
	}
	if options != "" {
		if err := appendEntry(m.opts.OptionsFile, optionsHeader, meta.UUID, options); err != nil {
			return Status{}, fmt.Errorf("add repository: %w", err)
		}
	}
	if err := appendEntry(m.opts.RepositoriesFile, repositoriesHeader, meta.UUID, src.Raw); err != nil {
		removeEntries(m.opts.OptionsFile, meta.UUID)
		return Status{}, fmt.Errorf("add repository: %w", err)
	}
	delete(m.offline, CanonicalUUID(meta.UUID))
	if err := m.reloadConfig(); err != nil {
		return Status{}, err
	}
	m.apply(ctx)
	st, err := m.statusLocked(meta.UUID)
	if err == nil && st.State != StateMounted {
		err = fmt.Errorf("repository %s added to %s but not mounted: %s", meta.UUID, m.opts.RepositoriesFile, st.Error)
	}
	return st, err
}

// OfflineRequest is what ovs-offlinerepo is given.
type OfflineRequest struct {
	UUID string
	// Source, when given, must be the repository's configured source (a
	// guard against a mistyped UUID).
	Source string
	// Delete also removes the repository's lines from both files
	// (ovs-offlinerepo -d). Without it the repository stays configured
	// but offline until the repositories are started again.
	Delete bool
}

// Offline unmounts a repository (ovs-offlinerepo). It refuses, changing
// nothing, while running domains use it.
func (m *Manager) Offline(ctx context.Context, req OfflineRequest) (Status, error) {
	if err := CheckUUID(req.UUID); err != nil {
		return Status{}, fmt.Errorf("offline repository: %w", err)
	}
	done, err := m.begin(ctx)
	if err != nil {
		return Status{}, err
	}
	defer done()
	if err := m.reloadConfig(); err != nil {
		return Status{}, fmt.Errorf("offline repository: %w", err)
	}
	k := CanonicalUUID(req.UUID)
	e, listed := m.cfg.Lookup(req.UUID)
	r := m.repos[k]
	if !listed && (r == nil || !r.mounted) {
		if _, held := m.cfg.Held[k]; !held {
			return Status{}, fmt.Errorf("offline repository: no repository %s in %s", req.UUID, m.opts.RepositoriesFile)
		}
	}
	if req.Source != "" {
		known := e.Source.Raw
		if !listed && r != nil {
			known = r.src.Raw
		}
		if known != "" && known != req.Source {
			return Status{}, fmt.Errorf("offline repository: repository %s is %s, not %s", req.UUID, known, req.Source)
		}
	}
	uuid := req.UUID
	if listed {
		uuid = e.UUID
	}
	if d := m.opts.InUse(uuid); len(d) > 0 {
		m.publish()
		st, _ := m.statusLocked(uuid)
		return st, fmt.Errorf("offline repository: %s is in use by running domain(s) %s; nothing changed", uuid, strings.Join(d, ", "))
	}
	if req.Delete {
		if _, err := removeEntries(m.opts.RepositoriesFile, uuid); err != nil {
			return Status{}, fmt.Errorf("offline repository: %w", err)
		}
		if _, err := removeEntries(m.opts.OptionsFile, uuid); err != nil {
			return Status{}, fmt.Errorf("offline repository: %w", err)
		}
		delete(m.offline, k)
		if err := m.reloadConfig(); err != nil {
			return Status{}, err
		}
	} else {
		m.offline[k] = true
	}
	m.apply(ctx)
	st, err := m.statusLocked(uuid)
	if err != nil {
		// Deleted and unmounted: forgotten.
		return Status{UUID: uuid, Source: e.Source.Raw, State: StateUnmounted}, nil
	}
	if st.State == StateMounted || st.State == StateError || st.State == StateInUse {
		return st, fmt.Errorf("offline repository: %s is still mounted: %s", uuid, st.Error)
	}
	return st, nil
}

// Remove is Offline with Delete: unmount and remove from both files.
func (m *Manager) Remove(ctx context.Context, uuid string) (Status, error) {
	return m.Offline(ctx, OfflineRequest{UUID: uuid, Delete: true})
}

// statusLocked returns one repository's status (operation lock held).
func (m *Manager) statusLocked(uuid string) (Status, error) {
	s, ok := m.reportLocked().Find(uuid)
	if !ok {
		return Status{}, fmt.Errorf("no repository %s", uuid)
	}
	return s, nil
}
