package migration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/filexfer"
	"github.com/ovs-agent/ovs-agent/repository"
)

// incomingDir is the hidden folder of a repository where offline copies
// arrive before they are committed; a partial copy waits there for a
// resume for at most keepPartial.
const (
	incomingDir = ".ovs-incoming"
	keepPartial = 7 * 24 * time.Hour
)

// offlinePlan is where an offline migration lands on this host.
type offlinePlan struct {
	repo    repository.Status // the repository receiving copied disks
	folder  string            // running_pool/NAME there, absolute
	staging string            // the partial copy
	mounted []string          // every mounted repository
	mounts  map[string]string // canonical UUID -> mount point
	byUUID  map[string]repository.Status
	repos   []repository.Status
}

func (l *Local) mountedRepos() []repository.Status {
	if l.Repos == nil {
		return nil
	}
	return l.Repos.Mounted()
}

// checkOffline lists every reason this host could not take the offered
// stopped domain with its disks, and where it would go. Hard problems
// cannot be skipped with --force.
func (l *Local) checkOffline(h *relocation.Hello) (offlinePlan, *relocation.Checker) {
	c := &relocation.Checker{}
	o, req := h.Offer, h.Offline
	plan := newOfflinePlan(l.mountedRepos())
	if h.Protocol != l.Protocol {
		c.Soft("version", "the sending agent speaks protocol %d (version %s), this agent %d (version %s)", h.Protocol, h.AgentVersion, l.Protocol, l.AgentVersion)
	}
	mem := 0
	if req.Start {
		mem = o.MemoryMiB
	}
	c.Add(l.Domains.CheckIncoming(o, mem)...)
	cfg, ok := checkIdentity(c, o)
	if !ok {
		return plan, c
	}
	var bridges []string
	for _, v := range cfg.VIFs {
		if v.Bridge != "" {
			bridges = append(bridges, v.Bridge)
		}
	}
	c.Add(domains.MissingBridges(bridges)...)
	need, copies := plan.checkDisks(c, o)
	if copies > 0 && plan.chooseRepo(c, req.Repository, need) {
		plan.checkFolder(c, o, need)
	}
	return plan, c
}

func newOfflinePlan(repos []repository.Status) offlinePlan {
	plan := offlinePlan{repos: repos, mounts: map[string]string{}, byUUID: map[string]repository.Status{}}
	for _, r := range repos {
		plan.byUUID[repository.CanonicalUUID(r.UUID)] = r
		plan.mounted = append(plan.mounted, r.UUID)
		plan.mounts[repository.CanonicalUUID(r.UUID)] = r.MountPoint
	}
	return plan
}

// checkIdentity parses the offer's vm.cfg and checks its name and UUID,
// which name the folders written here: the name is the vm.cfg's, one path
// element, and the UUID a UUID, so no folder leaves the receiving
// repository.
func checkIdentity(c *relocation.Checker, o relocation.Offer) (*vmcfg.Config, bool) {
	cfg, err := vmcfg.Parse("vm.cfg", []byte(o.Config))
	if err != nil {
		c.Hard("config", "%v", err)
		return nil, false
	}
	if o.Name != cfg.Name || o.Name == "" || o.Name == "." || o.Name == ".." || strings.ContainsAny(o.Name, "/\\\x00") {
		c.Hard("name", "the offer names the domain %q, its vm.cfg %q (one path element, the same in both)", o.Name, cfg.Name)
		return nil, false
	}
	if err := repository.CheckUUID(o.UUID); err != nil {
		c.Hard("uuid", "%v", err)
		return nil, false
	}
	return cfg, true
}

// checkDisks checks the disks on repositories this host shares and
// returns the data and the number of the disks to copy.
func (plan *offlinePlan) checkDisks(c *relocation.Checker, o relocation.Offer) (need int64, copies int) {
	for _, d := range o.Disks {
		if r, ok := plan.byUUID[repository.CanonicalUUID(d.Repository)]; ok && d.Repository != "" {
			field := "disk " + d.Device
			if d.Rel == "" {
				c.Hard(field, "on shared repository %s, but its path there is unknown", d.Repository)
			} else if _, err := fileaccess.Resolve([]string{r.MountPoint}, filepath.Join(r.MountPoint, d.Rel)); !filepath.IsLocal(d.Rel) || err != nil {
				// The registered vm.cfg will name this path: it must stay,
				// after symlinks, inside the shared repository.
				c.Hard(field, "on shared repository %s, but %q leaves that repository here", d.Repository, d.Rel)
			} else if _, err := os.Stat(filepath.Join(r.MountPoint, d.Rel)); err != nil {
				c.Hard(field, "on shared repository %s, but %s is missing here: %v", d.Repository, d.Rel, err)
			}
			continue
		}
		if !d.File {
			c.Hard(fmt.Sprintf("disk %s (%s)", d.Device, d.Path), "a device on no repository this host shares; an offline migration copies image files only")
			continue
		}
		need += d.Data
		copies++
	}
	return need, copies
}

// chooseRepo picks the repository that receives the copies: the one asked
// for, else the cluster root, else the first with room, else the first.
func (plan *offlinePlan) chooseRepo(c *relocation.Checker, want string, need int64) bool {
	if want != "" {
		r, ok := plan.byUUID[repository.CanonicalUUID(want)]
		if !ok {
			c.Hard("repository", "%s is not mounted on this host", want)
			return false
		}
		plan.repo = r
		return true
	}
	for _, r := range plan.repos {
		if r.ClusterRoot {
			plan.repo = r
		}
	}
	if plan.repo.UUID == "" {
		for _, r := range plan.repos {
			if r.Free >= uint64(need) {
				plan.repo = r
				break
			}
		}
	}
	if plan.repo.UUID == "" && len(plan.repos) > 0 {
		plan.repo = plan.repos[0]
	}
	if plan.repo.UUID == "" {
		c.Hard("repository", "this host has no repository mounted to hold the disks (add one, or share the domain's)")
		return false
	}
	return true
}

// checkFolder checks the room on the chosen repository (the data, with 1%
// and 64 MiB to spare) and that the domain's folder is free there.
func (plan *offlinePlan) checkFolder(c *relocation.Checker, o relocation.Offer, need int64) {
	if room := uint64(need) + uint64(need)/100 + 64<<20; plan.repo.Free < room {
		c.Soft("space", "repository %s has %d MiB free; the disks to copy hold %d MiB of data", plan.repo.UUID, plan.repo.Free>>20, need>>20)
	}
	plan.folder = filepath.Join(plan.repo.MountPoint, repository.RunningPool, o.Name)
	plan.staging = filepath.Join(plan.repo.MountPoint, incomingDir, repository.CanonicalUUID(o.UUID))
	if _, err := os.Lstat(plan.folder); err == nil {
		c.Hard("folder", "%s exists already on repository %s", filepath.Join(repository.RunningPool, o.Name), plan.repo.UUID)
	}
}

// readWriter reads from the relocation server's buffered reader and
// writes to the connection.
type readWriter struct {
	*bufio.Reader
	net.Conn
}

func (rw readWriter) Read(p []byte) (int, error) { return rw.Reader.Read(p) }

// ReceiveOffline takes a stopped domain and its disks
// (relocation.OpOffline): it checks the offer, receives the copy, waits
// for the source's commit and registers the domain.
func (l *Local) ReceiveOffline(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello) {
	defer c.Close()
	if h.Offline == nil {
		_ = relocation.WriteWelcome(c, &relocation.Welcome{Code: xmlrpc.BadParams, Error: "an offline migration without its request"})
		return
	}
	log := l.connLog(h)
	plan, ok := l.admitOffline(c, r, h, log)
	if !ok {
		return
	}
	rw := readWriter{r, c}
	if len(h.Offline.Files) > 0 && !receiveCopy(ctx, rw, h, plan, log) {
		return
	}
	// Wait for the source's word.
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var cm relocation.OfflineCommit
	if err := filexfer.ReadMessage(rw, &cm); err != nil || !cm.Commit {
		log.Warn("offline migration: no commit; the copy is dropped", zap.Error(err), zap.String("reason", cm.Reason))
		os.RemoveAll(plan.staging)
		return
	}
	ans := l.commitOffline(h, plan, log)
	if err := filexfer.WriteMessage(c, ans); err != nil {
		log.Warn("offline migration: answer the commit (the source will ask again)", zap.Error(err))
	}
}

// admitOffline checks the offer (its soft problems skipped with --force)
// and the files announced, and welcomes the source; false when it
// refused.
func (l *Local) admitOffline(c net.Conn, r *bufio.Reader, h *relocation.Hello, log *zap.Logger) (offlinePlan, bool) {
	refuse := func(w *relocation.Welcome) (offlinePlan, bool) {
		_ = relocation.WriteWelcome(c, l.welcome(w))
		return offlinePlan{}, false
	}
	plan, chk := l.checkOffline(h)
	if h.Offline.Force {
		if skipped := chk.Skip(); len(skipped) > 0 {
			log.Warn("offline migration: validation skipped (--force)", zap.Strings("skipped", relocation.Strings(skipped)))
		} else {
			log.Warn("offline migration: validation skipped (--force)")
		}
	}
	if problems := chk.Ordered(); len(problems) > 0 {
		w := &relocation.Welcome{Code: xmlrpc.BadState, Error: "this host cannot take the domain", Repositories: plan.mounted}
		w.SetProblems(problems)
		log.Warn("offline migration refused", zap.Strings("problems", w.Problems))
		return refuse(w)
	}
	// The files must be exactly the disks this host does not reach.
	want := map[string]bool{}
	for _, d := range h.Offer.Disks {
		want[d.Path] = true
	}
	for _, f := range h.Offline.Files {
		if !want[f.Path] || filexfer.ValidateName(f.Name) != nil {
			return refuse(&relocation.Welcome{Code: xmlrpc.BadParams, Error: fmt.Sprintf("offline migration names file %q (%q) that is not a disk of the domain", f.Name, f.Path)})
		}
	}
	if len(h.Offline.Files) > 0 && plan.staging == "" {
		return refuse(&relocation.Welcome{Code: xmlrpc.BadState, Error: "no repository here to hold the disks"})
	}
	if r.Buffered() > 0 {
		log.Warn("relocation peer sent data before the answer; closing")
		return offlinePlan{}, false
	}
	l.dropStalePartials()
	if err := relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{OK: true, Repositories: plan.mounted})); err != nil {
		return offlinePlan{}, false
	}
	return plan, true
}

// receiveCopy receives the announced files into the staging folder
// (resuming a partial copy there); false when the copy did not complete.
func receiveCopy(ctx context.Context, rw readWriter, h *relocation.Hello, plan offlinePlan, log *zap.Logger) bool {
	if err := os.MkdirAll(filepath.Dir(plan.staging), 0o700); err != nil {
		_ = filexfer.WriteAbort(rw.Conn, err.Error())
		return false
	}
	t0 := time.Now()
	got, err := filexfer.Receive(ctx, rw, filexfer.ReceiveOptions{
		Staging: plan.staging,
		Check: func(fh *filexfer.Header) error {
			if !strings.EqualFold(fh.Domain, h.Offer.UUID) || len(fh.Files) != len(h.Offline.Files) {
				return errors.New("the stream does not carry the files the migration announced")
			}
			for i, f := range fh.Files {
				if f.Name != h.Offline.Files[i].Name {
					return fmt.Errorf("the stream carries %q where %q was announced", f.Name, h.Offline.Files[i].Name)
				}
			}
			return nil
		},
	})
	if err != nil {
		log.Warn("offline migration: copy not complete", zap.Error(err), zap.Bool("resumable", errors.Is(err, filexfer.ErrInterrupted)))
		return false
	}
	log.Info("offline migration: copy verified", zap.Int64("bytes", got.Sent), zap.Int64("resumed", got.Resumed),
		zap.Duration("took", time.Since(t0)))
	return true
}

// commitOffline moves the copy into place and registers the domain.
func (l *Local) commitOffline(h *relocation.Hello, plan offlinePlan, log *zap.Logger) relocation.OfflineCommitted {
	o := h.Offer
	cfg, err := vmcfg.Parse("vm.cfg", []byte(o.Config))
	if err != nil {
		return relocation.OfflineCommitted{Error: err.Error()}
	}
	byPath := map[string]string{}
	for _, f := range h.Offline.Files {
		byPath[f.Path] = filepath.Join(plan.folder, f.Name)
	}
	for _, d := range o.Disks {
		if _, copied := byPath[d.Path]; !copied && d.Repository != "" {
			if mp, ok := plan.mounts[repository.CanonicalUUID(d.Repository)]; ok {
				byPath[d.Path] = filepath.Join(mp, d.Rel)
			}
		}
	}
	want := *cfg
	want.Disks = append([]vmcfg.Disk(nil), cfg.Disks...)
	for i, d := range want.Disks {
		if p, ok := byPath[d.Path]; ok {
			want.Disks[i].Path = p
		}
	}
	// An operating system's kernel and ramdisk came with the disks.
	for _, f := range []*string{&want.Kernel, &want.Ramdisk} {
		if p, ok := byPath[*f]; ok && *f != "" {
			*f = p
		}
	}
	moved := false
	if len(h.Offline.Files) > 0 {
		os.Remove(filepath.Join(plan.staging, filexfer.JournalFile))
		if err := os.MkdirAll(filepath.Dir(plan.folder), 0o755); err != nil {
			return relocation.OfflineCommitted{Error: err.Error()}
		}
		if err := os.Rename(plan.staging, plan.folder); err != nil {
			os.RemoveAll(plan.staging)
			return relocation.OfflineCommitted{Error: fmt.Sprintf("move the copy into %s: %v", plan.folder, err)}
		}
		os.Chmod(plan.folder, 0o755)
		moved = true
	}
	text := vmcfg.Render([]byte(o.Config), &want)
	if _, _, err := l.Domains.Create(text, "offline migration from "+h.Source); err != nil {
		if moved {
			os.RemoveAll(plan.folder)
		}
		log.Error("offline migration: register the domain", zap.Error(err))
		return relocation.OfflineCommitted{Error: err.Error()}
	}
	if moved {
		_ = atomicfile.WriteFile(filepath.Join(plan.folder, "vm.cfg"), text, 0o644)
	}
	log.Info("offline migration: domain registered", zap.String("folder", plan.folder))
	ans := relocation.OfflineCommitted{OK: true, State: string(domains.Stopped)}
	if h.Offline.Start {
		if err := l.Domains.Start(o.Name); err != nil {
			ans.Warning = "registered on the target, but it did not start: " + err.Error()
			log.Warn("offline migration: start", zap.Error(err))
		} else {
			ans.State = string(domains.Running)
		}
	}
	return ans
}

// dropStalePartials removes partial offline copies older than keepPartial.
func (l *Local) dropStalePartials() {
	for _, r := range l.mountedRepos() {
		dir := filepath.Join(r.MountPoint, incomingDir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > keepPartial {
				l.log().Info("removing an abandoned partial offline copy", zap.String("dir", filepath.Join(dir, e.Name())))
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}
