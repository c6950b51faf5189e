package repository

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultRoot              = "/OVS"
	DefaultStagingDir        = "/var/ovs/mount"
	DefaultHeartbeatInterval = 10 * time.Second
	DefaultMountTimeout      = 30 * time.Second
	DefaultDebounce          = 300 * time.Millisecond
)

// Options configure a Manager. Zero values take the defaults.
type Options struct {
	// Root is where repositories appear: ROOT/<uuid>, and the cluster
	// root at ROOT itself. Default /OVS.
	Root string
	// StagingDir holds the backing mounts, STAGING/<uuid>; each
	// repository at Root is a bind mount of its backing mount. It must
	// not be inside Root (the cluster root would hide it). Default
	// /var/ovs/mount.
	StagingDir string
	// The configuration files. Defaults /etc/ovs/repositories and
	// /etc/ovs/repositories.options.
	RepositoriesFile string
	OptionsFile      string
	// StateFile records what was applied (see DefaultStateFile); a lock
	// file beside it (StateFile + ".lock") serializes the agent and
	// standalone commands.
	StateFile string
	// InUse returns the running domains that use the repository uuid
	// (as written in the repositories file). A repository with any is
	// never unmounted. nil means no domain ever uses one.
	InUse func(uuid string) []string
	// HostID names this server in the heartbeat file. Default: the host
	// name.
	HostID string
	// HeartbeatInterval is how often Run refreshes the heartbeat file on
	// the cluster root. Default 10s.
	HeartbeatInterval time.Duration
	// MountTimeout bounds every mount(8) and umount(8) run; the child is
	// killed at the deadline and the repository is in error. Default 30s.
	MountTimeout time.Duration
	// Debounce is how long the watcher waits after the last change of a
	// configuration file before it applies the files. Default 300ms.
	Debounce time.Duration
	// MountCommand and UmountCommand are the mount(8) and umount(8)
	// programs. Defaults "mount" and "umount" (looked up in PATH).
	MountCommand  string
	UmountCommand string
	// Logger gets one line per change applied and per problem. nil logs
	// nothing.
	Logger *zap.Logger
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Root, DefaultRoot)
	def(&o.StagingDir, DefaultStagingDir)
	def(&o.RepositoriesFile, DefaultRepositoriesFile)
	def(&o.OptionsFile, DefaultOptionsFile)
	def(&o.StateFile, DefaultStateFile)
	def(&o.MountCommand, "mount")
	def(&o.UmountCommand, "umount")
	if o.HostID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("repository manager: host id: %w", err)
		}
		o.HostID = h
	}
	if err := CheckHostID(o.HostID); err != nil {
		return fmt.Errorf("repository manager: %w", err)
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.MountTimeout <= 0 {
		o.MountTimeout = DefaultMountTimeout
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.InUse == nil {
		o.InUse = func(string) []string { return nil }
	}
	for name, p := range map[string]string{"root": o.Root, "staging dir": o.StagingDir,
		"repositories file": o.RepositoriesFile, "options file": o.OptionsFile, "state file": o.StateFile} {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("repository manager: %s %q is not a clean absolute path", name, p)
		}
	}
	if within(o.StagingDir, o.Root) || within(o.Root, o.StagingDir) {
		return fmt.Errorf("repository manager: staging dir %s and root %s may not contain each other", o.StagingDir, o.Root)
	}
	return nil
}

// Manager keeps the repositories mounted as the configuration files say.
// Its methods are safe for concurrent use; operations that change mounts
// run one at a time (in this process, and across processes through the
// lock file), while Status answers at once from the last published state.
type Manager struct {
	opts Options
	log  *zap.Logger
	mnt  *mounter
	stat *statfser

	sem chan struct{} // one operation at a time

	secMu sync.Mutex // one secondary mount or unmount at a time (secondary.go)

	// Guarded by sem.
	loaded  bool
	cfg     *Config
	cfgErr  error
	repos   map[string]*repo // by canonical UUID
	stopped bool
	offline map[string]bool
	hb      heartbeatState

	mu      sync.Mutex // guards snap and changed
	snap    Report
	paths   map[string]string // canonical UUID -> mount point, for Status
	changed chan struct{}
}

// repo is one repository the Manager knows: configured, mounted, or both.
type repo struct {
	uuid    string // as written in the configuration (or when mounted)
	key     string // CanonicalUUID(uuid)
	entry   *Entry // what the files say; nil if not listed
	held    string // the problem of a bad line naming it; "" if none
	backing string // the backing mount point, STAGING/<uuid as mounted>

	mounted    bool     // the backing is mounted
	ident      mountKey // which mount it is (zero: not known yet)
	src        Source   // what is mounted (Raw == "" if not known: adopted without a record)
	options    string   // the options it was mounted (or last remounted) with
	optsKnown  bool
	meta       Metadata
	metaErr    string
	target     string // where it is bound: Root or Root/<uuid>; "" if nowhere
	rebind     bool   // the backing's flags changed: bind again
	state      State
	err        string
	keepReason string // why it stays mounted although it should not
	domains    []string
}

type heartbeatState struct {
	last    time.Time
	err     string
	pending atomic.Bool // a write is running (perhaps stuck)
}

// NewManager checks opts and returns a Manager. It touches nothing: the
// files are read and the mounts examined on the first operation.
func NewManager(opts Options) (*Manager, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m := &Manager{
		opts:    opts,
		log:     opts.Logger,
		mnt:     &mounter{mountCmd: opts.MountCommand, umountCmd: opts.UmountCommand, timeout: opts.MountTimeout, grace: 2 * time.Second},
		stat:    &statfser{timeout: 2 * time.Second},
		sem:     make(chan struct{}, 1),
		repos:   map[string]*repo{},
		offline: map[string]bool{},
		changed: make(chan struct{}),
	}
	return m, nil
}

// Options returns the options in effect (defaults filled in).
func (m *Manager) Options() Options { return m.opts }

// begin starts an operation: it takes the in-process and the cross-process
// locks and brings the Manager's view up to date (sync): another process
// (the standalone command, or the agent) may have changed the mounts and
// the state file since this one last held the lock.
func (m *Manager) begin(ctx context.Context) (func(), error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("repositories: another operation is running: %w", ctx.Err())
	}
	lk, err := lockFile(ctx, m.opts.StateFile+".lock")
	if err != nil {
		<-m.sem
		return nil, err
	}
	done := func() {
		m.save() // what this operation changed, even when it failed half way
		m.publish()
		lk.unlock()
		<-m.sem
	}
	m.sync(true)
	return done, nil
}

// sync makes the Manager's view the truth: the stopped flag and the
// offline marks as the state file says, and the mounts as the mount
// table shows them. What is mounted at STAGING/<uuid> and not known (the
// agent restarted, or another process mounted it) is adopted, with the
// source and options the state file records, and never remounted; what
// is known but no longer mounted (another process unmounted it) is
// forgotten as a mount. On the first call it also reads the
// configuration files; later operations read them themselves.
//
// locked says the cross-process lock is held: only then are the probe
// mounts of an abandoned `add` cleared (without the lock, one may be
// another process's `add` at work).
func (m *Manager) sync(locked bool) {
	first := !m.loaded
	m.loaded = true
	p, err := loadState(m.opts.StateFile)
	if err != nil {
		if first {
			m.log.Warn("repository state unreadable; starting from the mount table", zap.Error(err))
		} else {
			m.log.Warn("repository state unreadable; keeping what this process knows", zap.Error(err))
			p = m.persistedNow()
		}
	}
	m.stopped = p.Stopped
	m.offline = map[string]bool{}
	for _, k := range p.Offline {
		m.offline[CanonicalUUID(k)] = true
	}
	table, err := ReadMountInfo()
	if err != nil {
		m.log.Error("cannot read the mount table", zap.Error(err))
	}
	if err == nil || first {
		m.syncMounts(table, p.Mounts, locked)
	}
	if first {
		m.cfg, m.cfgErr = LoadConfig(m.opts.RepositoriesFile, m.opts.OptionsFile)
		if m.cfg == nil {
			m.cfg = &Config{Held: map[string]string{}}
		}
	}
	want, _ := m.assignConfig()
	m.computeStates(want)
}

// syncMounts sets every repository's mount facts from the mount table
// and the state file's records.
func (m *Manager) syncMounts(table []MountInfo, records map[string]persistedMount, locked bool) {
	seen := map[string]bool{}
	observe := func(uuid string, rec *persistedMount) {
		backing := filepath.Join(m.opts.StagingDir, uuid)
		bm, ok := topMount(table, backing)
		if !ok || seen[CanonicalUUID(uuid)] {
			return
		}
		seen[CanonicalUUID(uuid)] = true
		r := m.repo(uuid)
		// Not the mount this process knows: mounted by another process
		// (or before a restart), or unmounted and mounted again.
		fresh := !r.mounted || r.backing != backing || (r.ident != mountKey{} && r.ident != keyOf(bm))
		switch {
		case rec != nil:
			if src, err := ParseSource(rec.Source); err == nil {
				r.src = src
			}
			r.options, r.optsKnown = rec.Options, true
		case fresh:
			r.src, r.options, r.optsKnown = Source{}, "", false
		}
		r.backing, r.mounted, r.ident = backing, true, keyOf(bm)
		if fresh {
			r.readMeta()
			r.target, r.rebind, r.err, r.keepReason, r.domains = "", false, "", "", nil
		}
		if r.target != "" {
			if tm, ok := topMount(table, r.target); !ok || !sameFS(tm, bm) {
				r.target = "" // unbound by another process: layout binds it again
			}
		}
		if r.target == "" {
			for _, t := range []string{m.opts.Root, filepath.Join(m.opts.Root, uuid)} {
				if tm, ok := topMount(table, t); ok && sameFS(tm, bm) {
					r.target = t
				}
			}
		}
		if fresh {
			r.state = StateMounted
			m.log.Info("repository adopted", zap.String("uuid", uuid), zap.String("backing", backing), zap.String("mount_point", r.target))
		}
	}
	for _, rec := range records {
		if CheckUUID(rec.UUID) == nil {
			rec := rec
			observe(rec.UUID, &rec)
		}
	}
	for _, mi := range table {
		if filepath.Dir(mi.MountPoint) != m.opts.StagingDir {
			continue
		}
		u := filepath.Base(mi.MountPoint)
		if strings.HasPrefix(u, ".probe-") {
			if locked {
				// Left by an `add` whose mount finished after it was abandoned.
				unbind(mi.MountPoint, true)
				os.Remove(mi.MountPoint)
			}
			continue
		}
		if CheckUUID(u) == nil {
			observe(u, nil)
		}
	}
	for _, r := range m.repos {
		if !r.mounted || seen[r.key] {
			continue
		}
		// Unmounted by another process (or by hand): not an error, and
		// nothing left to unmount.
		m.log.Info("repository no longer mounted", zap.String("uuid", r.uuid), zap.String("backing", r.backing))
		r.mounted, r.ident, r.target, r.rebind = false, mountKey{}, "", false
		r.src, r.options, r.optsKnown = Source{}, "", false
		r.err, r.keepReason, r.domains, r.state = "", "", nil, StateUnmounted
	}
}

// mountKey tells one mount from another. The mount ID alone does not:
// the kernel reuses the ID of a mount that is gone.
type mountKey struct {
	id           int
	major, minor uint32
	root         string
}

func keyOf(mi MountInfo) mountKey {
	return mountKey{id: mi.ID, major: mi.Major, minor: mi.Minor, root: mi.Root}
}

// sameFS reports whether two mounts show the same directory of the same
// file system (a bind mount and what it binds).
func sameFS(a, b MountInfo) bool {
	return a.Major == b.Major && a.Minor == b.Minor && a.Root == b.Root
}

// noteMounts records which mount every backing mount is, so that the
// next sync can tell a mount this process made from one another process
// made in its place.
func (m *Manager) noteMounts() {
	table, err := ReadMountInfo()
	if err != nil {
		return
	}
	for _, r := range m.repos {
		if !r.mounted {
			r.ident = mountKey{}
			continue
		}
		if bm, ok := topMount(table, r.backing); ok {
			r.ident = keyOf(bm)
		}
	}
}

// isMounted reports whether the mount table shows a mount on path. When
// the table cannot be read it says yes: the caller then tries.
func isMounted(path string) bool {
	table, err := ReadMountInfo()
	if err != nil {
		return true
	}
	_, ok := topMount(table, path)
	return ok
}

// unmountBacking unmounts a backing point with umount(8). A backing point
// that the mount table shows is not mounted (another process unmounted
// it) is unmounted already: that is not an error.
func (m *Manager) unmountBacking(ctx context.Context, backing string) error {
	if !isMounted(backing) {
		return nil
	}
	err := m.mnt.unmountBacking(ctx, backing)
	if err != nil && !isMounted(backing) {
		return nil
	}
	return err
}

func (m *Manager) repo(uuid string) *repo {
	k := CanonicalUUID(uuid)
	r := m.repos[k]
	if r == nil {
		r = &repo{uuid: uuid, key: k}
		m.repos[k] = r
	}
	return r
}

func (r *repo) readMeta() {
	meta, err := ReadMetadata(r.backing)
	if err != nil {
		r.meta, r.metaErr = Metadata{}, err.Error()
		return
	}
	r.meta, r.metaErr = meta, ""
}

// persistedNow is what this process knows, as the state file holds it.
func (m *Manager) persistedNow() persisted {
	p := persisted{Stopped: m.stopped, Mounts: map[string]persistedMount{}}
	for k := range m.offline {
		p.Offline = append(p.Offline, k)
	}
	for k, r := range m.repos {
		if r.mounted && r.src.Raw != "" {
			p.Mounts[k] = persistedMount{UUID: filepath.Base(r.backing), Source: r.src.Raw, Options: r.options}
		}
	}
	return p
}

// save writes the state file.
func (m *Manager) save() {
	if err := saveState(m.opts.StateFile, m.persistedNow()); err != nil {
		m.log.Error("cannot record repository state", zap.Error(err))
	}
}

// reloadConfig reads the files. On an unreadable file it keeps the
// configuration it had and returns the error: nothing changes.
func (m *Manager) reloadConfig() error {
	cfg, err := LoadConfig(m.opts.RepositoriesFile, m.opts.OptionsFile)
	m.cfgErr = err
	if err != nil {
		m.log.Error("repositories configuration unreadable; nothing changed", zap.Error(err))
		return fmt.Errorf("repositories not applied: %w", err)
	}
	m.cfg = cfg
	for _, p := range cfg.Problems {
		m.log.Warn("repositories configuration: line skipped", zap.String("file", p.File), zap.Int("line", p.Line), zap.String("problem", p.Msg))
	}
	return nil
}

// Reload reads the configuration files and applies them: mounts what was
// added, unmounts what was removed (unless running domains use it),
// remounts what has new options. After Stop it only reads the files.
func (m *Manager) Reload(ctx context.Context) (Report, error) {
	return m.reloadApply(ctx, func() {})
}

// Start clears Stop and every offline mark and applies the files.
func (m *Manager) Start(ctx context.Context) (Report, error) {
	return m.reloadApply(ctx, func() {
		m.stopped = false
		clear(m.offline)
	})
}

// reloadApply reads the configuration files, makes change and applies
// the result, under the lock.
func (m *Manager) reloadApply(ctx context.Context, change func()) (Report, error) {
	done, err := m.begin(ctx)
	if err != nil {
		return Report{}, err
	}
	defer done()
	if err := m.reloadConfig(); err != nil {
		return m.reportLocked(), err
	}
	change()
	m.apply(ctx)
	return m.reportLocked(), nil
}

// Stop unmounts every repository that no running domain uses and keeps
// them unmounted (across reloads and agent restarts, not across a
// reboot) until Start.
func (m *Manager) Stop(ctx context.Context) (Report, error) {
	done, err := m.begin(ctx)
	if err != nil {
		return Report{}, err
	}
	defer done()
	m.reloadConfig() // best effort: only for the statuses
	m.stopped = true
	m.apply(ctx)
	return m.reportLocked(), nil
}

// Status reports every repository. It does not wait for a running
// operation (a mount can take up to the mount timeout); before the first
// operation it reads the files and the mount table.
func (m *Manager) Status(ctx context.Context) (Report, error) {
	select {
	case m.sem <- struct{}{}:
		if !m.loaded {
			m.sync(false)
			m.publish()
		}
		<-m.sem
	default:
	}
	return m.snapshot(), nil
}

// Get returns the status of one repository.
func (m *Manager) Get(ctx context.Context, uuid string) (Status, error) {
	rep, err := m.Status(ctx)
	if err != nil {
		return Status{}, err
	}
	s, ok := rep.Find(uuid)
	if !ok {
		return Status{}, fmt.Errorf("no repository %s", uuid)
	}
	return s, nil
}

// MountPoint returns where repository uuid is mounted now ("" and false
// if it is not).
func (m *Manager) MountPoint(uuid string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.paths[CanonicalUUID(uuid)]
	return p, ok
}

// Changed returns a channel that is closed at the next change of the
// published state (tests and pollers wait on it).
func (m *Manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// assignConfig records on every repository what the files say, and
// returns the repositories to be mounted (by canonical UUID) and the file
// order.
func (m *Manager) assignConfig() (want map[string]Entry, order map[string]int) {
	want, order = map[string]Entry{}, map[string]int{}
	for i, e := range m.cfg.Entries {
		order[CanonicalUUID(e.UUID)] = i
	}
	for _, r := range m.repos {
		r.entry, r.held = nil, ""
	}
	for _, p := range m.cfg.Problems {
		if why, held := m.cfg.Held[CanonicalUUID(p.UUID)]; held && p.UUID != "" {
			m.repo(p.UUID).held = why
		}
	}
	for i := range m.cfg.Entries {
		e := m.cfg.Entries[i]
		r := m.repo(e.UUID)
		r.uuid, r.entry = e.UUID, &e
		if !m.stopped && !m.offline[r.key] {
			want[r.key] = e
		}
	}
	for k := range m.offline {
		if _, listed := order[k]; !listed && m.cfg.Held[k] == "" {
			delete(m.offline, k) // removed from the files: the mark goes with it
		}
	}
	return want, order
}

// apply makes the mounts match m.cfg, m.stopped and m.offline.
func (m *Manager) apply(ctx context.Context) {
	want, order := m.assignConfig()
	for _, r := range m.repos {
		r.keepReason, r.err, r.domains = "", "", nil
	}
	m.unmountUnwanted(ctx, order, want)
	m.remountChanged(ctx, order, want)
	m.mountNew(ctx, order, want)
	m.layout(order, want)
	m.computeStates(want)
	m.noteMounts()
	m.save()
}

// unmountUnwanted unmounts what must go: mounted, not held, and not
// wanted (or wanted from another source), unless running domains use it.
func (m *Manager) unmountUnwanted(ctx context.Context, order map[string]int, want map[string]Entry) {
	var remove []*repo
	for _, r := range m.sorted(order) {
		if !r.mounted || r.held != "" {
			continue
		}
		e, wanted := want[r.key]
		if wanted && (r.src.Raw == "" || r.src.Raw == e.Source.Raw) {
			continue
		}
		why := m.removeReason(r, e, wanted)
		if d := m.opts.InUse(r.uuid); len(d) > 0 {
			r.domains = d
			r.state = StateInUse
			r.keepReason = fmt.Sprintf("%s, but not unmounted: in use by running domain(s) %s", why, strings.Join(d, ", "))
			r.err = r.keepReason
			m.log.Warn("repository kept mounted: in use", zap.String("uuid", r.uuid), zap.Strings("domains", d), zap.String("reason", why))
			continue
		}
		m.log.Info("repository to unmount", zap.String("uuid", r.uuid), zap.String("reason", why))
		remove = append(remove, r)
	}
	m.unmountAll(ctx, remove)
}

// removeReason says why mounted repository r is to be unmounted; e is
// its entry when it is still wanted (from another source).
func (m *Manager) removeReason(r *repo, e Entry, wanted bool) string {
	switch {
	case wanted:
		return fmt.Sprintf("source changed from %s to %s", r.src.Raw, e.Source.Raw)
	case m.stopped:
		return "repositories stopped"
	case m.offline[r.key]:
		return "taken offline"
	}
	return "removed from " + m.opts.RepositoriesFile
}

// remountChanged applies new options to what stays mounted.
func (m *Manager) remountChanged(ctx context.Context, order map[string]int, want map[string]Entry) {
	for _, r := range m.sorted(order) {
		e, wanted := want[r.key]
		if !r.mounted || !wanted || r.held != "" || (r.optsKnown && r.options == e.Options) {
			continue
		}
		if r.src.Raw == "" {
			r.src = e.Source
		}
		r.state, r.err = StateMounting, ""
		m.publish()
		if err := m.mnt.remountBacking(ctx, r.src, e.Options, r.backing); err != nil {
			r.err = fmt.Sprintf("new options %q not applied (still mounted with %q): %v", e.Options, r.options, err)
			m.log.Error("repository remount failed", zap.String("uuid", r.uuid), zap.Error(err))
			continue
		}
		m.log.Info("repository remounted", zap.String("uuid", r.uuid), zap.String("options", e.Options))
		r.options, r.optsKnown, r.rebind = e.Options, true, true
	}
}

// mountNew mounts what is new, in parallel: a hung server delays nothing
// else.
func (m *Manager) mountNew(ctx context.Context, order map[string]int, want map[string]Entry) {
	var wg sync.WaitGroup
	var fresh []*repo
	for _, r := range m.sorted(order) {
		e, wanted := want[r.key]
		if !wanted || r.mounted || r.held != "" {
			continue
		}
		r.state, r.err, r.src = StateMounting, "", e.Source
		fresh = append(fresh, r)
	}
	if len(fresh) > 0 {
		m.publish()
	}
	for _, r := range fresh {
		wg.Add(1)
		go func(r *repo, e Entry) {
			defer wg.Done()
			r.err = m.mountBacking(ctx, r, e)
		}(r, want[r.key])
	}
	wg.Wait()
	for _, r := range fresh {
		if r.err != "" {
			r.state = StateError
			m.log.Error("repository not mounted", zap.String("uuid", r.uuid), zap.String("source", r.src.Raw), zap.String("error", r.err))
		} else {
			m.log.Info("repository mounted", zap.String("uuid", r.uuid), zap.String("source", r.src.Raw), zap.String("options", r.options))
		}
	}
}

// computeStates sets every repository's state from the facts; a
// repository neither configured nor mounted is forgotten.
func (m *Manager) computeStates(want map[string]Entry) {
	for _, r := range m.repos {
		_, wanted := want[r.key]
		switch {
		case r.keepReason != "":
			r.state, r.err = StateInUse, r.keepReason
		case r.mounted && (wanted || r.held != ""):
			if r.target == "" {
				r.state = StateError
				if r.err == "" {
					r.err = "mounted at " + r.backing + " but not at its mount point"
				}
				break
			}
			r.state = StateMounted
			if r.held != "" {
				r.err = "configuration line ignored, mount left as it was: " + r.held
			}
		case r.mounted:
			r.state = StateError
			if r.err == "" {
				r.err = "mounted at " + r.backing + " but no longer configured to be (a reload unmounts it)"
			}
		case r.held != "":
			r.state, r.err = StateError, r.held
		case wanted:
			r.state = StateError
			if r.err == "" {
				r.err = "not mounted (ovsrepositories reload mounts it)"
			}
		case r.entry != nil && m.offline[r.key]:
			r.state, r.err = StateOffline, ""
		case r.entry != nil:
			r.state, r.err = StateUnmounted, ""
		default:
			delete(m.repos, r.key) // forgotten: not listed, not mounted
		}
	}
}

// sorted returns the repositories in configuration order, then the rest
// by UUID.
func (m *Manager) sorted(order map[string]int) []*repo {
	out := make([]*repo, 0, len(m.repos))
	for _, r := range m.repos {
		out = append(out, r)
	}
	pos := func(r *repo) int {
		if i, ok := order[r.key]; ok {
			return i
		}
		return len(order)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0; j-- {
			a, b := out[j-1], out[j]
			if pos(a) < pos(b) || pos(a) == pos(b) && a.key <= b.key {
				break
			}
			out[j-1], out[j] = b, a
		}
	}
	return out
}

// mountBacking mounts e at STAGING/<uuid>, checks its metadata and the
// pool folders. It returns "" or the reason it failed; on failure nothing
// stays mounted.
func (m *Manager) mountBacking(ctx context.Context, r *repo, e Entry) string {
	if e.Source.Kind == LocalDir && (within(e.Source.Path, m.opts.Root) || within(e.Source.Path, m.opts.StagingDir) ||
		within(m.opts.Root, e.Source.Path) || within(m.opts.StagingDir, e.Source.Path)) {
		return fmt.Sprintf("source %s overlaps %s or %s; a repository cannot contain repositories", e.Source.Raw, m.opts.Root, m.opts.StagingDir)
	}
	backing := filepath.Join(m.opts.StagingDir, e.UUID)
	if err := os.MkdirAll(backing, 0o755); err != nil {
		return fmt.Sprintf("create mount point: %v", err)
	}
	if table, err := ReadMountInfo(); err == nil {
		if _, stale := topMount(table, backing); stale {
			// Left by a mount that finished after it was abandoned.
			unbind(backing, true)
		}
	}
	if err := m.mnt.mountBacking(ctx, e.Source, e.Options, backing); err != nil {
		return err.Error()
	}
	fail := func(format string, args ...any) string {
		if err := m.unmountBacking(context.WithoutCancel(ctx), backing); err != nil {
			unbind(backing, true)
		}
		return fmt.Sprintf(format, args...)
	}
	meta, err := ReadMetadata(backing)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("%s is not a repository: it has no %s (make one with ovs-makerepo)", e.Source.Raw, MetadataFile)
	}
	if err != nil {
		return fail("%v", err)
	}
	if CanonicalUUID(meta.UUID) != CanonicalUUID(e.UUID) {
		return fail("%s holds repository %s, not %s", e.Source.Raw, meta.UUID, e.UUID)
	}
	if root, err := os.OpenRoot(backing); err == nil {
		err = ensurePools(root, backing)
		root.Close()
		if err != nil {
			return fail("%v", err)
		}
	}
	r.backing, r.mounted, r.options, r.optsKnown, r.meta, r.metaErr = backing, true, e.Options, true, meta, ""
	r.target = ""
	return ""
}

// unmountAll unbinds and unmounts the given repositories, children of the
// root before the cluster root. One that cannot be unmounted stays, in
// error.
func (m *Manager) unmountAll(ctx context.Context, list []*repo) {
	if len(list) == 0 {
		return
	}
	var rootRepo *repo
	for _, r := range list {
		r.state, r.err = StateUnmounting, ""
	}
	m.publish()
	for _, r := range list {
		if r.target == m.opts.Root {
			rootRepo = r
			continue
		}
		if r.target != "" {
			if err := unbind(r.target, false); err != nil && !notMounted(err) {
				r.state, r.err = StateError, fmt.Sprintf("unmount failed, still mounted: %v (files are open on it)", err)
				continue
			}
			m.dropMountPoint(r.target)
			r.target = ""
		}
	}
	if rootRepo != nil {
		// Everything mounted under the root goes first, and comes back
		// in layout (on the plain directory).
		for _, o := range m.repos {
			if o != rootRepo && o.target != "" && o.target != m.opts.Root {
				unbind(o.target, true)
				o.target = ""
			}
		}
		if err := unbind(m.opts.Root, false); err != nil && !notMounted(err) {
			rootRepo.state, rootRepo.err = StateError, fmt.Sprintf("unmount failed, still mounted: %v (files are open on it)", err)
		} else {
			rootRepo.target = ""
		}
	}
	for _, r := range list {
		if r.target != "" {
			continue
		}
		if err := m.unmountBacking(ctx, r.backing); err != nil {
			r.state, r.err = StateError, fmt.Sprintf("unmount failed, still mounted at %s: %v", r.backing, err)
			m.log.Error("repository unmount failed", zap.String("uuid", r.uuid), zap.Error(err))
			continue
		}
		os.Remove(r.backing)
		r.mounted, r.ident, r.target, r.rebind, r.state, r.err = false, mountKey{}, "", false, StateUnmounted, ""
		r.domains = nil
		m.log.Info("repository unmounted", zap.String("uuid", r.uuid))
	}
}

// dropMountPoint removes the empty folder a repository was mounted on, so
// that ROOT/<uuid> exists only while the repository is there. Not while
// a cluster root is mounted at the root: the folder is then on shared
// storage, where it may be another server's mount point.
func (m *Manager) dropMountPoint(dir string) {
	if dir == m.opts.Root {
		return
	}
	for _, r := range m.repos {
		if r.target == m.opts.Root {
			return
		}
	}
	os.Remove(dir) // only an empty folder goes
}

// layout binds every mounted repository that should be visible to its
// mount point: the cluster root on Root, the others on Root/<uuid>.
func (m *Manager) layout(order map[string]int, want map[string]Entry) {
	shown := m.shown(order, want)
	cr := clusterRoot(shown, m.opts.Root)
	var holder *repo // bound on root now
	for _, r := range m.repos {
		if r.target == m.opts.Root {
			holder = r
		}
	}
	rootChanged := holder != cr || (cr != nil && cr.rebind)
	m.detachMoved(shown, cr, rootChanged)
	if rootChanged {
		m.bindRoot(holder, cr)
	}
	m.bindOthers(shown, cr)
}

// shown returns the mounted repositories that should be visible, in
// configuration order.
func (m *Manager) shown(order map[string]int, want map[string]Entry) []*repo {
	var shown []*repo
	for _, r := range m.sorted(order) {
		if !r.mounted {
			continue
		}
		_, wanted := want[r.key]
		if wanted || r.keepReason != "" || r.held != "" {
			shown = append(shown, r)
		}
	}
	return shown
}

// clusterRoot picks the cluster root among shown: the one on root now if
// it still is one, else the first C in file order; nil if none.
func clusterRoot(shown []*repo, root string) *repo {
	var cr *repo
	for _, r := range shown {
		if r.meta.Shared == SharedClusterRoot && r.target == root {
			cr = r
		}
	}
	if cr == nil {
		for _, r := range shown {
			if r.meta.Shared == SharedClusterRoot {
				cr = r
				break
			}
		}
	}
	return cr
}

// targetOf is where r belongs when cr is the cluster root.
func (m *Manager) targetOf(r, cr *repo) string {
	if r == cr {
		return m.opts.Root
	}
	return filepath.Join(m.opts.Root, r.uuid)
}

// detachMoved detaches the children of the root that move (or whose
// parent moves).
func (m *Manager) detachMoved(shown []*repo, cr *repo, rootChanged bool) {
	for _, r := range m.repos {
		if r.target == "" || r.target == m.opts.Root {
			continue
		}
		keep := false
		for _, s := range shown {
			if s == r && !rootChanged && !r.rebind && r.target == m.targetOf(r, cr) {
				keep = true
			}
		}
		if !keep {
			if err := unbind(r.target, true); err != nil && !notMounted(err) {
				m.log.Warn("detach failed", zap.String("mount_point", r.target), zap.Error(err))
			}
			r.target = ""
		}
	}
}

// bindRoot moves the root from holder (bound there now, or nil) to the
// cluster root cr (or nil).
func (m *Manager) bindRoot(holder, cr *repo) {
	root := m.opts.Root
	if holder != nil {
		if err := unbind(root, true); err != nil && !notMounted(err) {
			m.log.Warn("detach failed", zap.String("mount_point", root), zap.Error(err))
		}
		holder.target = ""
	}
	if cr == nil {
		return
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		cr.err = fmt.Sprintf("cluster root: %v", err)
	} else if err := bind(cr.backing, root); err != nil {
		cr.err = fmt.Sprintf("cluster root: %v", err)
	} else {
		cr.target, cr.rebind = root, false
		m.log.Info("cluster root mounted", zap.String("uuid", cr.uuid), zap.String("mount_point", root))
		m.heartbeatLocked()
	}
}

// bindOthers binds every shown repository but the cluster root cr on
// Root/<uuid>.
func (m *Manager) bindOthers(shown []*repo, cr *repo) {
	for _, r := range shown {
		if r == cr {
			continue
		}
		if r.meta.Shared == SharedClusterRoot && cr != nil {
			r.err = fmt.Sprintf("also marked C, but %s is the cluster root; mounted as an ordinary repository", cr.uuid)
		}
		if r.target != "" {
			continue
		}
		t := m.targetOf(r, cr)
		if err := os.MkdirAll(t, 0o755); err != nil {
			r.err = fmt.Sprintf("create mount point: %v", err)
			continue
		}
		if err := bind(r.backing, t); err != nil {
			r.err = err.Error()
			continue
		}
		r.target, r.rebind = t, false
	}
}

func notMounted(err error) bool {
	return errors.Is(err, errEINVAL) || errors.Is(err, fs.ErrNotExist)
}
