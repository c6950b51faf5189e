package domains

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"

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
	return d.Path != "" && d.Type != "phy" && !strings.HasPrefix(d.Type, "iscsi")
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
	f, err := os.OpenFile(filepath.Join(dir, manifest.FileName), os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", f.Name(), fileaccess.ErrNotRegular)
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, manifest.MaxSize+1))
	if err != nil {
		return nil, err
	}
	return manifest.Parse(f.Name(), data)
}

// foreignManifests lists, for the file disks of cfg, every folder that
// holds the detach manifest of a domain other than uuid. Only folders that
// resolve inside a mounted repository are looked in (a manifest is only
// ever written there): a vm.cfg naming a disk elsewhere never makes the
// agent read a file there.
func (m *Manager) foreignManifests(cfg *vmcfg.Config, uuid string) []string {
	var out []string
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
			out = append(out, fmt.Sprintf("folder %s: holds an unreadable detach manifest (%v)", dir, err))
		} else if !strings.EqualFold(man.UUID, uuid) {
			out = append(out, fmt.Sprintf("folder %s: holds the detach manifest of domain %s (%s); attach or remove that domain first", dir, man.Name, man.UUID))
		}
	}
	return out
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
	if engine == "" {
		engine, _ = m.engine()
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
	var problems []string
	var folder, folderRoot string
	if repo != "" {
		root, ok := m.repoRoot(repo)
		if !ok {
			return nil, errorf(NotFound, "repository %s is not mounted here", repo)
		}
		man.Repository, man.Folder = repository.CanonicalUUID(repo), filepath.Join(repository.RunningPool, name)
		folder, folderRoot = filepath.Join(root, man.Folder), root
	}
	for _, disk := range cfg.Disks {
		if disk.Path == "" {
			continue
		}
		if !fileDisk(disk) {
			problems = append(problems, fmt.Sprintf("disk %s (%s): a device, not an image file; a manifest can only describe files on repositories", disk.Device, disk.Path))
			continue
		}
		ru, rel, droot, ok := m.repoPath(disk.Path)
		if !ok {
			problems = append(problems, fmt.Sprintf("disk %s (%s): not on a mounted repository, so no other host could reach it", disk.Device, disk.Path))
			continue
		}
		if folder == "" {
			folder, folderRoot, man.Repository, man.Folder = filepath.Dir(disk.Path), droot, ru, filepath.Dir(rel)
		}
		// The disk must resolve, after symlinks, inside its repository and
		// be a regular file: never digest a file elsewhere or block on a FIFO.
		real, exists, err := fileaccess.CheckRegular([]string{droot}, disk.Path)
		if err == nil && !exists {
			err = fmt.Errorf("%s: %w", disk.Path, fs.ErrNotExist)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("disk %s: %v", disk.Device, err))
			continue
		}
		st, err := os.Stat(real)
		if err != nil {
			problems = append(problems, fmt.Sprintf("disk %s: %v", disk.Device, err))
			continue
		}
		sum, err := filexfer.Digest(ctx, real)
		if err != nil {
			problems = append(problems, fmt.Sprintf("disk %s: %v", disk.Device, err))
			continue
		}
		man.Disks = append(man.Disks, manifest.Disk{Device: disk.Device, Path: rel, Repository: ru, Size: st.Size(), Digest: sum})
	}
	if folder == "" {
		problems = append(problems, fmt.Sprintf("domain %s has no disk on a repository: name the repository to hold its folder (ovm detach --repo UUID)", name))
	}
	if len(problems) > 0 {
		return nil, &Error{Kind: BadState, Msg: fmt.Sprintf("cannot detach %s", name), Problems: problems}
	}
	// The folder must resolve, after symlinks, inside its repository: a
	// symlinked folder never makes the agent write a manifest elsewhere.
	if err := insideRoot(folderRoot, folder); err != nil {
		return nil, fmt.Errorf("detach %s: folder %w", name, err)
	}
	if other, err := readManifest(folder); err == nil && !strings.EqualFold(other.UUID, uuid) {
		return nil, errorf(Exists, "folder %s holds the detach manifest of domain %s already", folder, other.Name)
	}
	if err := man.Validate(); err != nil {
		return nil, errorf(Failed, "detach %s: %v", name, err)
	}
	data, err := man.Marshal()
	if err != nil {
		return nil, errorf(Failed, "detach %s: %v", name, err)
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return nil, errorf(Failed, "detach %s: %v", name, err)
	}
	if err := insideRoot(folderRoot, folder); err != nil {
		return nil, fmt.Errorf("detach %s: folder %w", name, err)
	}
	path := filepath.Join(folder, manifest.FileName)
	if err := atomicfile.WriteFile(path, data, 0o644); err != nil {
		return nil, errorf(Failed, "detach %s: %v", name, err)
	}
	d.mu.Lock()
	d.rec.Manifest = path
	m.setState(d, Detached, "detached: manifest "+path)
	d.mu.Unlock()
	m.log.Info("domain detached", zap.String("domain", name), zap.String("manifest", path), zap.Int("disks", len(man.Disks)))
	return &DetachResult{Domain: name, Manifest: path, Disks: len(man.Disks)}, nil
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
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, manifest.FileName)
	}
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	man, err := readManifest(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, errorf(NotFound, "no detach manifest at %s", path)
		}
		return nil, nil, &Error{Kind: Invalid, Msg: err.Error()}
	}
	if filepath.Base(path) != manifest.FileName {
		return nil, nil, errorf(Invalid, "%s: a detach manifest is named %s", path, manifest.FileName)
	}
	hereRepo, hereRel, hereRoot, ok := m.repoPath(dir)
	if !ok {
		return nil, nil, errorf(Invalid, "%s is not on a repository mounted here; mount the repository that holds it first", dir)
	}
	cfg, err := vmcfg.Parse(path, []byte(man.Config))
	if err != nil {
		return nil, nil, &Error{Kind: Invalid, Msg: err.Error()}
	}
	var hard, soft []string
	// Identity.
	var own *domain
	m.mu.Lock()
	for _, o := range m.doms {
		o.mu.Lock()
		sameUUID := strings.EqualFold(o.rec.UUID, man.UUID)
		switch {
		case sameUUID && o.rec.Name == man.Name && o.rec.State == Detached:
			own = o
		case o.rec.Name == man.Name:
			hard = append(hard, fmt.Sprintf("name: a domain named %s exists here already (%s)", man.Name, o.rec.State))
		case sameUUID:
			hard = append(hard, fmt.Sprintf("uuid: domain %s here has the same UUID %s", o.rec.Name, man.UUID))
		}
		o.mu.Unlock()
	}
	m.mu.Unlock()
	// Disks: resolve each inside its repository root.
	newPath := map[string]string{}
	for _, md := range man.Disks {
		var root, rel string
		if r, ok := strings.CutPrefix(md.Path, man.Folder+"/"); ok {
			root, rel = hereRoot, filepath.Join(hereRel, r)
		} else if rr, ok := m.repoRoot(md.Repository); ok {
			root, rel = rr, md.Path
		} else if strings.EqualFold(repository.CanonicalUUID(md.Repository), repository.CanonicalUUID(man.Repository)) {
			root, rel = hereRoot, md.Path
		} else {
			hard = append(hard, fmt.Sprintf("disk %s: repository %s is not mounted here", md.Device, md.Repository))
			continue
		}
		full := filepath.Join(root, rel)
		newPath[md.Device] = full
		if msg := checkDiskFile(ctx, root, rel, md, force); msg != "" {
			if strings.HasPrefix(msg, "!") {
				hard = append(hard, fmt.Sprintf("disk %s (%s): %s", md.Device, full, msg[1:]))
			} else {
				soft = append(soft, fmt.Sprintf("disk %s (%s): %s", md.Device, full, msg))
			}
		}
	}
	// What the host must offer.
	if !force {
		soft = append(soft, m.hostMismatches(man)...)
	}
	want := *cfg
	want.Disks = append([]vmcfg.Disk(nil), cfg.Disks...)
	for i, d := range want.Disks {
		if p, ok := newPath[d.Device]; ok && fileDisk(d) {
			want.Disks[i].Path = p
		}
	}
	hard = append(hard, m.foreignManifests(&want, man.UUID)...)
	problems := append(hard, soft...)
	if len(hard) > 0 || len(soft) > 0 && !force {
		return nil, problems, &Error{Kind: BadState, Msg: fmt.Sprintf("cannot attach %s from %s", man.Name, path), Problems: problems}
	}
	if force && len(soft) > 0 {
		m.log.Warn("attach with validation skipped (-F)", zap.String("domain", man.Name), zap.String("manifest", path), zap.Strings("skipped", soft))
	} else if force {
		m.log.Warn("attach with validation skipped (-F)", zap.String("domain", man.Name), zap.String("manifest", path))
	}
	text := vmcfg.Render([]byte(man.Config), &want)
	var info *Info
	if own != nil {
		own.opMu.Lock()
		err := atomicfile.WriteFile(filepath.Join(own.dir, "vm.cfg"), text, 0o600)
		if err == nil {
			own.mu.Lock()
			own.cfg = &want
			own.rec.Manifest = ""
			m.setState(own, Stopped, "attached from "+path)
			own.mu.Unlock()
		}
		own.opMu.Unlock()
		if err != nil {
			return nil, nil, errorf(Failed, "attach %s: %v", man.Name, err)
		}
		in := m.info(own, false)
		info = &in
	} else {
		info, _, err = m.Create(text, "attached from "+path)
		if err != nil {
			return nil, nil, err
		}
	}
	if err := os.Remove(path); err != nil {
		m.log.Error("attach: remove the manifest", zap.String("manifest", path), zap.Error(err))
	}
	m.log.Info("domain attached", zap.String("domain", man.Name), zap.String("manifest", path), zap.String("repository", hereRepo), zap.Bool("forced", force))
	return info, problems, nil
}

// checkDiskFile compares a disk file with the manifest's record. A
// message starting with "!" cannot be overridden by force.
func checkDiskFile(ctx context.Context, root, rel string, md manifest.Disk, force bool) string {
	r, err := os.OpenRoot(root)
	if err != nil {
		return "!" + err.Error()
	}
	defer r.Close()
	f, err := r.Open(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "!missing"
		}
		return "!" + err.Error() // escapes the root through a symlink, unreadable...
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return "!" + err.Error()
	}
	if !st.Mode().IsRegular() {
		return "!not a regular file"
	}
	if force {
		return ""
	}
	if st.Size() != md.Size {
		return fmt.Sprintf("size %d, the manifest says %d", st.Size(), md.Size)
	}
	sum, err := filexfer.Digest(ctx, filepath.Join(root, rel))
	if err != nil {
		return err.Error()
	}
	if sum != md.Digest {
		return "content changed since it was detached (checksum differs)"
	}
	return ""
}

// hostMismatches lists what this host lacks to run a manifest's domain.
func (m *Manager) hostMismatches(man *manifest.Manifest) []string {
	var out []string
	r := man.Requires
	if local, err := m.engine(); err != nil {
		out = append(out, "engine: "+err.Error())
	} else if r.Engine != local {
		out = append(out, fmt.Sprintf("engine: the domain runs on the %s engine; this host runs domains on %s", r.Engine, local))
	}
	if total, err := m.opts.HostMemory(); err == nil {
		if avail := saturatingSub(total, m.opts.MemoryReserve); uint64(r.MemoryMiB)<<20 > avail {
			out = append(out, fmt.Sprintf("memory: the domain needs %d MiB; this host has %d MiB for domains", r.MemoryMiB, avail>>20))
		}
	}
	if r.VCPUs > m.opts.HostCPUs {
		out = append(out, fmt.Sprintf("vcpus: the domain has %d, this host %d CPUs", r.VCPUs, m.opts.HostCPUs))
	}
	out = append(out, MissingBridges(r.Bridges)...)
	if r.CPUVendor != "" {
		if info, err := hostinfo.Read(hostinfo.DefaultPaths); err == nil && info.CPUVendor != r.CPUVendor {
			out = append(out, fmt.Sprintf("CPU: the domain ran on a %s CPU; this host's is %s", r.CPUVendor, info.CPUVendor))
		}
	}
	return out
}

// MissingBridges lists, one line each, the bridges of want that this host
// does not have (names matched exactly, one to one).
func MissingBridges(want []string) []string {
	if len(want) == 0 {
		return nil
	}
	have, err := hostinfo.Bridges(hostinfo.SysClassNet)
	if err != nil {
		return []string{"network: cannot list this host's bridges: " + err.Error()}
	}
	set := map[string]bool{}
	for _, b := range have {
		set[b] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, b := range want {
		if !set[b] && !seen[b] {
			seen[b] = true
			out = append(out, fmt.Sprintf("network: bridge %s that a vif names does not exist on this host", b))
		}
	}
	return out
}
