package domains

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/relocation"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/config/manifest"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation/filexfer"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm"
)

// fileDisk reports whether a disk is an image file (not a device, not an
// empty CD-ROM drive).
func fileDisk(d vmcfg.Disk) bool {
	return d.Path != "" && d.IsImage()
}

// repoPath splits an absolute path into the repository it is on and the
// path relative to that repository's root.
func (m *Manager) repoPath(path string) (uuid, rel, root string, ok bool) {
	if m.opts.RepositoryOf == nil || m.opts.RepositoryRoot == nil {
		return "", "", "", false
	}
	uuid, ok = m.opts.RepositoryOf(path)
	if !ok {
		return "", "", "", false
	}
	root, ok = m.opts.RepositoryRoot(uuid)
	if !ok {
		return "", "", "", false
	}
	rel, err := filepath.Rel(root, filepath.Clean(path))
	if err != nil || !filepath.IsLocal(rel) {
		return "", "", "", false
	}
	return uuid, rel, root, true
}

// insideRoot checks that p, or its nearest existing ancestor when p does not
// exist yet, resolves after symlinks inside root.
func insideRoot(root, p string) error {
	q := filepath.Clean(p)
	for {
		if _, err := os.Lstat(q); err == nil {
			break
		}
		parent := filepath.Dir(q)
		if parent == q {
			break
		}
		q = parent
	}
	if _, err := fileaccess.Resolve([]string{root}, q); err != nil {
		if errors.Is(err, fileaccess.ErrOutside) {
			return &fileaccess.OutsideError{Path: p}
		}
		return err
	}
	return nil
}

// readManifest reads the manifest in dir, if there is one. It is opened
// without blocking (a FIFO or a device is refused, never read) and not
// through a symlink.
func readManifest(dir string) (*manifest.Manifest, error) {
	path := filepath.Join(dir, manifest.FileName)
	data, err := boundedfile.ReadFile(path, manifest.MaxSize, boundedfile.NoFollow)
	if err != nil {
		return nil, err
	}
	return manifest.Parse(path, data)
}

// foreignManifests lists, for the file disks of cfg, every folder that
// holds the detach manifest of a domain other than uuid.
func (m *Manager) foreignManifests(cfg *vmcfg.Config, uuid string) []string {
	var c relocation.Checker
	m.checkForeignManifests(&c, cfg, uuid)
	return relocation.Strings(c.Problems())
}

// checkForeignManifests records, as hard problems, every folder of the file
// disks of cfg that holds the detach manifest of a domain other than uuid.
// Only folders that resolve inside a mounted repository are looked in (a
// manifest is only ever written there): a vm.cfg naming a disk elsewhere
// never makes the agent read a file there.
func (m *Manager) checkForeignManifests(c *relocation.Checker, cfg *vmcfg.Config, uuid string) {
	seen := map[string]bool{}
	for _, d := range cfg.Disks {
		if !fileDisk(d) {
			continue
		}
		dir := filepath.Dir(d.Path)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if _, _, root, ok := m.repoPath(dir); !ok || insideRoot(root, dir) != nil {
			continue
		}
		man, err := readManifest(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			c.Hard("folder "+dir, "holds an unreadable detach manifest (%v)", err)
		} else if !strings.EqualFold(man.UUID, uuid) {
			c.Hard("folder "+dir, "holds the detach manifest of domain %s (%s); attach or remove that domain first", man.Name, man.UUID)
		}
	}
}

// DetachResult says where a detached domain's manifest is.
type DetachResult struct {
	Domain   string `xmlrpc:"domain"`
	Manifest string `xmlrpc:"manifest"`
	Disks    int    `xmlrpc:"disks"`
}

// Detach writes the manifest of a stopped domain into its folder and
// leaves it known here but not runnable. The folder is the one holding
// its first file disk, or running_pool/NAME of repository repo when repo
// is given (the only choice for a domain without file disks).
func (m *Manager) Detach(ctx context.Context, name, repo string) (*DetachResult, error) {
	d, err := m.get(name)
	if err != nil {
		return nil, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	err = check(name, "detach", d.rec.State)
	cfg, uuid, engine := d.cfg, d.rec.UUID, d.rec.Engine
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(filepath.Join(d.dir, "vm.cfg"))
	if err != nil {
		return nil, errorf(Failed, "read vm.cfg of %s: %v", name, err)
	}
	man := m.newManifest(name, uuid, engine, cfg, text)
	var dest manifestFolder
	if repo != "" {
		root, ok := m.repoRoot(repo)
		if !ok {
			return nil, errorf(NotFound, "repository %s is not mounted here", repo)
		}
		man.Repository, man.Folder = repository.CanonicalUUID(repo), filepath.Join(repository.RunningPool, name)
		dest = manifestFolder{path: filepath.Join(root, man.Folder), root: root}
	}
	var c relocation.Checker
	m.describeDisks(ctx, &c, man, cfg, &dest)
	if dest.path == "" {
		c.Hard("", "domain %s has no disk on a repository: name the repository to hold its folder (ovm detach --repo UUID)", name)
	}
	if ps := c.Problems(); len(ps) > 0 {
		return nil, &Error{Kind: BadState, Msg: fmt.Sprintf("cannot detach %s", name), Problems: relocation.Strings(ps)}
	}
	path, err := writeManifest(name, uuid, man, dest)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.rec.Manifest = path
	m.setState(d, Detached, "detached: manifest "+path)
	d.mu.Unlock()
	m.log.Info("domain detached", zap.String("domain", name), zap.String("manifest", path), zap.Int("disks", len(man.Disks)))
	return &DetachResult{Domain: name, Manifest: path, Disks: len(man.Disks)}, nil
}

// manifestFolder is where a detach writes its manifest, and the root of
// the repository it must stay inside.
type manifestFolder struct {
	path, root string
}

// newManifest is the manifest of a domain without its disks: its vm.cfg
// and what a host must offer to run it.
func (m *Manager) newManifest(name, uuid, engine string, cfg *vmcfg.Config, text []byte) *manifest.Manifest {
	if engine == "" {
		engine = m.engineName(cfg)
	}
	host, _ := os.Hostname()
	man := &manifest.Manifest{
		Version: manifest.Version, Name: name, UUID: uuid, DetachedAt: time.Now().UTC(), DetachedFrom: host,
		AgentVersion: m.opts.AgentVersion, Config: string(text),
		Requires: manifest.Requires{Engine: engine, MemoryMiB: cfg.Memory, VCPUs: cfg.VCPUs},
	}
	if info, err := hostinfo.Read(hostinfo.DefaultPaths); err == nil && engine == vmm.EngineKVM {
		man.Requires.CPUVendor = info.CPUVendor
	}
	for _, v := range cfg.VIFs {
		if v.Bridge != "" {
			man.Requires.Bridges = append(man.Requires.Bridges, v.Bridge)
		}
	}
	return man
}

// describeDisks adds every disk of cfg to the manifest with its size and
// checksum, or records why it cannot be; the first disk on a repository
// names the folder when dest has none yet. An operating system's kernel
// and ramdisk are described as disks of devices OfferKernel and
// OfferRamdisk, after the disks.
func (m *Manager) describeDisks(ctx context.Context, c *relocation.Checker, man *manifest.Manifest, cfg *vmcfg.Config, dest *manifestFolder) {
	for _, disk := range offeredFiles(cfg) {
		if disk.Path == "" {
			continue
		}
		where := fmt.Sprintf("disk %s (%s)", disk.Device, disk.Path)
		if !fileDisk(disk) {
			c.Hard(where, "a device, not an image file; a manifest can only describe files on repositories")
			continue
		}
		ru, rel, droot, ok := m.repoPath(disk.Path)
		if !ok {
			c.Hard(where, "not on a mounted repository, so no other host could reach it")
			continue
		}
		if dest.path == "" {
			dest.path, dest.root, man.Repository, man.Folder = filepath.Dir(disk.Path), droot, ru, filepath.Dir(rel)
		}
		size, sum, err := digestDisk(ctx, droot, disk.Path)
		if err != nil {
			c.Hard("disk "+disk.Device, "%v", err)
			continue
		}
		man.Disks = append(man.Disks, manifest.Disk{Device: disk.Device, Path: rel, Repository: ru, Size: size, Digest: sum})
	}
}

// digestDisk sizes and checksums a disk file, which must resolve, after
// symlinks, inside its repository root and be a regular file: never digest
// a file elsewhere or block on a FIFO.
func digestDisk(ctx context.Context, root, path string) (int64, string, error) {
	real, exists, err := fileaccess.CheckRegular([]string{root}, path)
	if err == nil && !exists {
		err = fmt.Errorf("%s: %w", path, fs.ErrNotExist)
	}
	if err != nil {
		return 0, "", err
	}
	st, err := os.Stat(real)
	if err != nil {
		return 0, "", err
	}
	sum, err := filexfer.Digest(ctx, real)
	if err != nil {
		return 0, "", err
	}
	return st.Size(), sum, nil
}

// writeManifest writes man into its folder, which must resolve, after
// symlinks, inside its repository (before and after it is created): a
// symlinked folder never makes the agent write a manifest elsewhere.
func writeManifest(name, uuid string, man *manifest.Manifest, dest manifestFolder) (string, error) {
	if err := insideRoot(dest.root, dest.path); err != nil {
		return "", fmt.Errorf("detach %s: folder %w", name, err)
	}
	if other, err := readManifest(dest.path); err == nil && !strings.EqualFold(other.UUID, uuid) {
		return "", errorf(Exists, "folder %s holds the detach manifest of domain %s already", dest.path, other.Name)
	}
	if err := man.Validate(); err != nil {
		return "", errorf(Failed, "detach %s: %v", name, err)
	}
	data, err := man.Marshal()
	if err != nil {
		return "", errorf(Failed, "detach %s: %v", name, err)
	}
	if err := os.MkdirAll(dest.path, 0o755); err != nil {
		return "", errorf(Failed, "detach %s: %v", name, err)
	}
	if err := insideRoot(dest.root, dest.path); err != nil {
		return "", fmt.Errorf("detach %s: folder %w", name, err)
	}
	path := filepath.Join(dest.path, manifest.FileName)
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return "", errorf(Failed, "detach %s: %v", name, err)
	}
	return path, nil
}

func (m *Manager) repoRoot(uuid string) (string, bool) {
	if m.opts.RepositoryRoot == nil {
		return "", false
	}
	return m.opts.RepositoryRoot(uuid)
}

// Attach validates the detach manifest at path (a manifest file or the
// folder holding one) against this host and the files, then registers the
// domain and removes the manifest. Every mismatch is listed; force skips
// the checks that only protect the domain (engine, memory, bridges, CPU,
// disk sizes and checksums), never those that protect this host (paths
// inside the repository, a name or UUID taken).
func (m *Manager) Attach(ctx context.Context, path string, force bool) (*Info, []string, error) {
	at, err := m.openManifest(path)
	if err != nil {
		return nil, nil, err
	}
	path, man := at.path, at.man
	var c relocation.Checker
	own := m.checkIdentity(&c, man)
	newPath := m.checkDisks(ctx, &c, at, force)
	if !force {
		c.Add(m.hostMismatches(man, at.cfg)...)
	}
	want := *at.cfg
	want.Disks = append([]vmcfg.Disk(nil), at.cfg.Disks...)
	for i, d := range want.Disks {
		if p, ok := newPath[d.Device]; ok && fileDisk(d) {
			want.Disks[i].Path = p
		}
	}
	if want.Guest() == vmcfg.GuestOS {
		if p, ok := newPath[OfferKernel]; ok && want.Kernel != "" {
			want.Kernel = p
		}
		if p, ok := newPath[OfferRamdisk]; ok && want.Ramdisk != "" {
			want.Ramdisk = p
		}
	}
	m.checkForeignManifests(&c, &want, man.UUID)
	problems := relocation.Strings(c.Ordered())
	if c.HasHard() || len(problems) > 0 && !force {
		return nil, problems, &Error{Kind: BadState, Msg: fmt.Sprintf("cannot attach %s from %s", man.Name, path), Problems: problems}
	}
	if force && len(problems) > 0 {
		m.log.Warn("attach with validation skipped (-F)", zap.String("domain", man.Name), zap.String("manifest", path), zap.Strings("skipped", problems))
	} else if force {
		m.log.Warn("attach with validation skipped (-F)", zap.String("domain", man.Name), zap.String("manifest", path))
	}
	info, err := m.registerAttached(own, vmcfg.Render([]byte(man.Config), &want), &want, man.Name, path)
	if err != nil {
		return nil, nil, err
	}
	if err := os.Remove(path); err != nil {
		m.log.Error("attach: remove the manifest", zap.String("manifest", path), zap.Error(err))
	}
	m.log.Info("domain attached", zap.String("domain", man.Name), zap.String("manifest", path), zap.String("repository", at.repo), zap.Bool("forced", force))
	return info, problems, nil
}

// attaching is a detach manifest read for an attach, and where its folder
// is on this host.
type attaching struct {
	path string // the manifest file
	man  *manifest.Manifest
	cfg  *vmcfg.Config
	// The repository holding the manifest's folder here, the folder
	// relative to its root, and the root.
	repo, rel, root string
}

// openManifest reads and parses the manifest at path (a file or the
// folder holding one), which must be on a repository mounted here.
func (m *Manager) openManifest(path string) (*attaching, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, manifest.FileName)
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	man, err := readManifest(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errorf(NotFound, "no detach manifest at %s", path)
		}
		return nil, &Error{Kind: Invalid, Msg: err.Error()}
	}
	if filepath.Base(path) != manifest.FileName {
		return nil, errorf(Invalid, "%s: a detach manifest is named %s", path, manifest.FileName)
	}
	repo, rel, root, ok := m.repoPath(dir)
	if !ok {
		return nil, errorf(Invalid, "%s is not on a repository mounted here; mount the repository that holds it first", dir)
	}
	cfg, err := vmcfg.Parse(path, []byte(man.Config))
	if err != nil {
		return nil, &Error{Kind: Invalid, Msg: err.Error()}
	}
	return &attaching{path: path, man: man, cfg: cfg, repo: repo, rel: rel, root: root}, nil
}

// checkIdentity records a name or UUID taken here (hard) and returns the
// domain's own detached record, if this host has it.
func (m *Manager) checkIdentity(c *relocation.Checker, man *manifest.Manifest) *domain {
	var own *domain
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.doms {
		o.mu.Lock()
		sameUUID := strings.EqualFold(o.rec.UUID, man.UUID)
		switch {
		case sameUUID && o.rec.Name == man.Name && o.rec.State == Detached:
			own = o
		case o.rec.Name == man.Name:
			c.Hard("name", "a domain named %s exists here already (%s)", man.Name, o.rec.State)
		case sameUUID:
			c.Hard("uuid", "domain %s here has the same UUID %s", o.rec.Name, man.UUID)
		}
		o.mu.Unlock()
	}
	return own
}

// checkDisks resolves each disk of the manifest inside its repository
// root here, checks the file against the manifest's record and returns
// the disks' paths here by device.
func (m *Manager) checkDisks(ctx context.Context, c *relocation.Checker, at *attaching, force bool) map[string]string {
	man := at.man
	newPath := map[string]string{}
	for _, md := range man.Disks {
		var root, rel string
		if r, ok := strings.CutPrefix(md.Path, man.Folder+"/"); ok {
			root, rel = at.root, filepath.Join(at.rel, r)
		} else if rr, ok := m.repoRoot(md.Repository); ok {
			root, rel = rr, md.Path
		} else if strings.EqualFold(repository.CanonicalUUID(md.Repository), repository.CanonicalUUID(man.Repository)) {
			root, rel = at.root, md.Path
		} else {
			c.Hard("disk "+md.Device, "repository %s is not mounted here", md.Repository)
			continue
		}
		full := filepath.Join(root, rel)
		newPath[md.Device] = full
		checkDiskFile(ctx, c, fmt.Sprintf("disk %s (%s)", md.Device, full), root, rel, md, force)
	}
	return newPath
}

// registerAttached registers the attached domain: its own detached
// record made runnable again, or a new one.
func (m *Manager) registerAttached(own *domain, text []byte, cfg *vmcfg.Config, name, path string) (*Info, error) {
	if own == nil {
		info, _, err := m.Create(text, "attached from "+path)
		return info, err
	}
	own.opMu.Lock()
	err := atomicfile.WriteFile(filepath.Join(own.dir, "vm.cfg"), text, 0o600)
	if err == nil {
		own.mu.Lock()
		own.cfg = cfg
		own.rec.Manifest = ""
		m.setState(own, Stopped, "attached from "+path)
		own.mu.Unlock()
	}
	own.opMu.Unlock()
	if err != nil {
		return nil, errorf(Failed, "attach %s: %v", name, err)
	}
	in := m.info(own, false)
	return &in, nil
}

// checkDiskFile compares a disk file with the manifest's record. What
// protects this host (the file missing, not regular, outside the root) is
// hard; what protects the domain (size, checksum) soft, and not checked
// with force.
func checkDiskFile(ctx context.Context, c *relocation.Checker, field, root, rel string, md manifest.Disk, force bool) {
	r, err := os.OpenRoot(root)
	if err != nil {
		c.Hard(field, "%v", err)
		return
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			c.Hard(field, "missing")
		} else {
			c.Hard(field, "%v", err) // escapes the root through a symlink, unreadable...
		}
		return
	}
	st, err := f.Stat()
	f.Close()
	switch {
	case err != nil:
		c.Hard(field, "%v", err)
		return
	case !st.Mode().IsRegular():
		c.Hard(field, "not a regular file")
		return
	case force:
		return
	case st.Size() != md.Size:
		c.Soft(field, "size %d, the manifest says %d", st.Size(), md.Size)
		return
	}
	sum, err := filexfer.Digest(ctx, filepath.Join(root, rel))
	if err != nil {
		c.Soft(field, "%v", err)
	} else if sum != md.Digest {
		c.Soft(field, "content changed since it was detached (checksum differs)")
	}
}

// hostMismatches lists what this host lacks to run a manifest's domain,
// whose vm.cfg is cfg (soft: they protect the domain, not this host).
func (m *Manager) hostMismatches(man *manifest.Manifest, cfg *vmcfg.Config) []relocation.Problem {
	var c relocation.Checker
	r := man.Requires
	m.checkEngine(&c, cfg, r.Engine)
	if total, err := m.opts.HostMemory(); err == nil {
		if avail := saturatingSub(total, m.opts.MemoryReserve); uint64(r.MemoryMiB)<<20 > avail {
			c.Soft("memory", "the domain needs %d MiB; this host has %d MiB for domains", r.MemoryMiB, avail>>20)
		}
	}
	if r.VCPUs > m.opts.HostCPUs {
		c.Soft("vcpus", "the domain has %d, this host %d CPUs", r.VCPUs, m.opts.HostCPUs)
	}
	c.Add(MissingBridges(r.Bridges)...)
	if r.CPUVendor != "" {
		if info, err := hostinfo.Read(hostinfo.DefaultPaths); err == nil && info.CPUVendor != r.CPUVendor {
			c.Soft("CPU", "the domain ran on a %s CPU; this host's is %s", r.CPUVendor, info.CPUVendor)
		}
	}
	return c.Problems()
}

// MissingBridges lists, one problem each (soft), the bridges of want
// that this host does not have (names matched exactly, one to one).
func MissingBridges(want []string) []relocation.Problem {
	if len(want) == 0 {
		return nil
	}
	var c relocation.Checker
	have, err := hostinfo.Bridges(hostinfo.SysClassNet)
	if err != nil {
		c.Soft("network", "cannot list this host's bridges: %v", err)
		return c.Problems()
	}
	set := map[string]bool{}
	for _, b := range have {
		set[b] = true
	}
	seen := map[string]bool{}
	for _, b := range want {
		if !set[b] && !seen[b] {
			seen[b] = true
			c.Soft("network", "bridge %s that a vif names does not exist on this host", b)
		}
	}
	return c.Problems()
}
