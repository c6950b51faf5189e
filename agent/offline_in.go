package agent

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

	"github.com/ovs-agent/ovs-agent/internal/atomicfile"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/fileaccess"
	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
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
}

// mountedRepos lists the repositories mounted here.
func (a *Agent) mountedRepos() []repository.Status {
	if a.repos == nil {
		return nil
	}
	rep, err := a.repos.Status(context.Background())
	if err != nil {
		return nil
	}
	var out []repository.Status
	for _, s := range rep.Repositories {
		if (s.State == repository.StateMounted || s.State == repository.StateInUse) && s.MountPoint != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkOffline lists every reason this host could not take the offered
// stopped domain with its disks (each on its own line), and where it
// would go. Hard problems cannot be skipped with --force.
func (a *Agent) checkOffline(h *relocation.Hello) (plan offlinePlan, hard, soft []string) {
	o, req := h.Offer, h.Offline
	if h.Protocol != ProtocolVersion {
		soft = append(soft, fmt.Sprintf("version: the sending agent speaks protocol %d (version %s), this agent %d (version %s)", h.Protocol, h.AgentVersion, ProtocolVersion, a.opts.Version))
	}
	mem := 0
	if req.Start {
		mem = o.MemoryMiB
	}
	for _, p := range a.domains.CheckIncoming(o.Name, o.UUID, mem, o.VCPUs, o.Engine) {
		if strings.HasPrefix(p, "name:") || strings.HasPrefix(p, "uuid:") {
			hard = append(hard, p)
		} else {
			soft = append(soft, p)
		}
	}
	cfg, err := vmcfg.Parse("vm.cfg", []byte(o.Config))
	if err != nil {
		hard = append(hard, "config: "+err.Error())
		return plan, hard, soft
	}
	// The offer's name and UUID name the folders written here: the name is
	// the vm.cfg's, one path element, and the UUID a UUID, so no folder
	// leaves the receiving repository.
	if o.Name != cfg.Name || o.Name == "" || o.Name == "." || o.Name == ".." || strings.ContainsAny(o.Name, "/\\\x00") {
		hard = append(hard, fmt.Sprintf("name: the offer names the domain %q, its vm.cfg %q (one path element, the same in both)", o.Name, cfg.Name))
		return plan, hard, soft
	}
	if err := repository.CheckUUID(o.UUID); err != nil {
		hard = append(hard, "uuid: "+err.Error())
		return plan, hard, soft
	}
	var bridges []string
	for _, v := range cfg.VIFs {
		if v.Bridge != "" {
			bridges = append(bridges, v.Bridge)
		}
	}
	soft = append(soft, domains.MissingBridges(bridges)...)

	repos := a.mountedRepos()
	byUUID := map[string]repository.Status{}
	plan.mounts = map[string]string{}
	for _, r := range repos {
		byUUID[repository.CanonicalUUID(r.UUID)] = r
		plan.mounted = append(plan.mounted, r.UUID)
		plan.mounts[repository.CanonicalUUID(r.UUID)] = r.MountPoint
	}
	var need int64
	copies := 0
	for _, d := range o.Disks {
		if r, ok := byUUID[repository.CanonicalUUID(d.Repository)]; ok && d.Repository != "" {
			if d.Rel == "" {
				hard = append(hard, fmt.Sprintf("disk %s: on shared repository %s, but its path there is unknown", d.Device, d.Repository))
			} else if _, err := fileaccess.Resolve([]string{r.MountPoint}, filepath.Join(r.MountPoint, d.Rel)); !filepath.IsLocal(d.Rel) || err != nil {
				// The registered vm.cfg will name this path: it must stay,
				// after symlinks, inside the shared repository.
				hard = append(hard, fmt.Sprintf("disk %s: on shared repository %s, but %q leaves that repository here", d.Device, d.Repository, d.Rel))
			} else if _, err := os.Stat(filepath.Join(r.MountPoint, d.Rel)); err != nil {
				hard = append(hard, fmt.Sprintf("disk %s: on shared repository %s, but %s is missing here: %v", d.Device, d.Repository, d.Rel, err))
			}
			continue
		}
		if !d.File {
			hard = append(hard, fmt.Sprintf("disk %s (%s): a device on no repository this host shares; an offline migration copies image files only", d.Device, d.Path))
			continue
		}
		need += d.Data
		copies++
	}
	if copies == 0 {
		return plan, hard, soft
	}
	// The repository that receives the copies.
	switch {
	case req.Repository != "":
		r, ok := byUUID[repository.CanonicalUUID(req.Repository)]
		if !ok {
			hard = append(hard, fmt.Sprintf("repository: %s is not mounted on this host", req.Repository))
			return plan, hard, soft
		}
		plan.repo = r
	default:
		for _, r := range repos {
			if r.ClusterRoot {
				plan.repo = r
			}
		}
		if plan.repo.UUID == "" {
			for _, r := range repos {
				if r.Free >= uint64(need) {
					plan.repo = r
					break
				}
			}
		}
		if plan.repo.UUID == "" && len(repos) > 0 {
			plan.repo = repos[0]
		}
	}
	if plan.repo.UUID == "" {
		hard = append(hard, "repository: this host has no repository mounted to hold the disks (add one, or share the domain's)")
		return plan, hard, soft
	}
	// Room for the data, with 1% and 64 MiB to spare.
	if room := uint64(need) + uint64(need)/100 + 64<<20; plan.repo.Free < room {
		soft = append(soft, fmt.Sprintf("space: repository %s has %d MiB free; the disks to copy hold %d MiB of data", plan.repo.UUID, plan.repo.Free>>20, need>>20))
	}
	plan.folder = filepath.Join(plan.repo.MountPoint, repository.RunningPool, o.Name)
	plan.staging = filepath.Join(plan.repo.MountPoint, incomingDir, repository.CanonicalUUID(o.UUID))
	if _, err := os.Lstat(plan.folder); err == nil {
		hard = append(hard, fmt.Sprintf("folder: %s exists already on repository %s", filepath.Join(repository.RunningPool, o.Name), plan.repo.UUID))
	}
	return plan, hard, soft
}

// answerOfflineCheck answers the dry run of an offline migration.
func (a *Agent) answerOfflineCheck(c net.Conn, h *relocation.Hello) {
	plan, hard, soft := a.checkOffline(h)
	problems := append(hard, soft...)
	_ = relocation.WriteWelcome(c, &relocation.Welcome{OK: len(problems) == 0, Problems: problems, Repositories: plan.mounted,
		AgentVersion: a.opts.Version, Protocol: ProtocolVersion, Host: hostname()})
	c.Close()
}

// readWriter reads from the relocation server's buffered reader and
// writes to the connection.
type readWriter struct {
	*bufio.Reader
	net.Conn
}

func (rw readWriter) Read(p []byte) (int, error) { return rw.Reader.Read(p) }

// receiveOffline takes a stopped domain and its disks.
func (a *Agent) receiveOffline(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello, log *zap.Logger) {
	defer c.Close()
	welcome := func(w *relocation.Welcome) error {
		w.AgentVersion, w.Protocol, w.Host = a.opts.Version, ProtocolVersion, hostname()
		return relocation.WriteWelcome(c, w)
	}
	plan, hard, soft := a.checkOffline(h)
	if h.Offline.Force && len(soft) > 0 {
		log.Warn("offline migration: validation skipped (--force)", zap.Strings("skipped", soft))
		soft = nil
	} else if h.Offline.Force {
		log.Warn("offline migration: validation skipped (--force)")
	}
	if problems := append(hard, soft...); len(problems) > 0 {
		log.Warn("offline migration refused", zap.Strings("problems", problems))
		_ = welcome(&relocation.Welcome{Code: xmlrpc.BadState, Error: "this host cannot take the domain", Problems: problems, Repositories: plan.mounted})
		return
	}
	// The files must be exactly the disks this host does not reach.
	want := map[string]bool{}
	for _, d := range h.Offer.Disks {
		want[d.Path] = true
	}
	for _, f := range h.Offline.Files {
		if !want[f.Path] || filexfer.ValidateName(f.Name) != nil {
			_ = welcome(&relocation.Welcome{Code: xmlrpc.BadParams, Error: fmt.Sprintf("offline migration names file %q (%q) that is not a disk of the domain", f.Name, f.Path)})
			return
		}
	}
	if len(h.Offline.Files) > 0 && plan.staging == "" {
		_ = welcome(&relocation.Welcome{Code: xmlrpc.BadState, Error: "no repository here to hold the disks"})
		return
	}
	if r.Buffered() > 0 {
		log.Warn("relocation peer sent data before the answer; closing")
		return
	}
	a.dropStalePartials()
	if err := welcome(&relocation.Welcome{OK: true, Repositories: plan.mounted}); err != nil {
		return
	}
	rw := readWriter{r, c}
	var got *filexfer.ReceiveResult
	if len(h.Offline.Files) > 0 {
		if err := os.MkdirAll(filepath.Dir(plan.staging), 0o700); err != nil {
			_ = filexfer.WriteAbort(c, err.Error())
			return
		}
		t0 := time.Now()
		var err error
		got, err = filexfer.Receive(ctx, rw, filexfer.ReceiveOptions{
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
			return
		}
		log.Info("offline migration: copy verified", zap.Int64("bytes", got.Sent), zap.Int64("resumed", got.Resumed),
			zap.Duration("took", time.Since(t0)))
	}
	// Wait for the source's word.
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var cm migration.OfflineCommit
	if err := filexfer.ReadMessage(rw, &cm); err != nil || !cm.Commit {
		log.Warn("offline migration: no commit; the copy is dropped", zap.Error(err), zap.String("reason", cm.Reason))
		os.RemoveAll(plan.staging)
		return
	}
	ans := a.commitOffline(h, plan, log)
	if err := filexfer.WriteMessage(c, ans); err != nil {
		log.Warn("offline migration: answer the commit (the source will ask again)", zap.Error(err))
	}
}

// commitOffline moves the copy into place and registers the domain.
func (a *Agent) commitOffline(h *relocation.Hello, plan offlinePlan, log *zap.Logger) migration.OfflineCommitted {
	o := h.Offer
	cfg, err := vmcfg.Parse("vm.cfg", []byte(o.Config))
	if err != nil {
		return migration.OfflineCommitted{Error: err.Error()}
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
	moved := false
	if len(h.Offline.Files) > 0 {
		os.Remove(filepath.Join(plan.staging, filexfer.JournalFile))
		if err := os.MkdirAll(filepath.Dir(plan.folder), 0o755); err != nil {
			return migration.OfflineCommitted{Error: err.Error()}
		}
		if err := os.Rename(plan.staging, plan.folder); err != nil {
			os.RemoveAll(plan.staging)
			return migration.OfflineCommitted{Error: fmt.Sprintf("move the copy into %s: %v", plan.folder, err)}
		}
		os.Chmod(plan.folder, 0o755)
		moved = true
	}
	text := vmcfg.Render([]byte(o.Config), &want)
	if _, _, err := a.domains.Create(text, "offline migration from "+h.Source); err != nil {
		if moved {
			os.RemoveAll(plan.folder)
		}
		log.Error("offline migration: register the domain", zap.Error(err))
		return migration.OfflineCommitted{Error: err.Error()}
	}
	if moved {
		_ = atomicfile.WriteFile(filepath.Join(plan.folder, "vm.cfg"), text, 0o644)
	}
	log.Info("offline migration: domain registered", zap.String("folder", plan.folder))
	ans := migration.OfflineCommitted{OK: true, State: string(domains.Stopped)}
	if h.Offline.Start {
		if err := a.domains.Start(o.Name); err != nil {
			ans.Warning = "registered on the target, but it did not start: " + err.Error()
			log.Warn("offline migration: start", zap.Error(err))
		} else {
			ans.State = string(domains.Running)
		}
	}
	return ans
}

// dropStalePartials removes partial offline copies older than keepPartial.
func (a *Agent) dropStalePartials() {
	for _, r := range a.mountedRepos() {
		dir := filepath.Join(r.MountPoint, incomingDir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > keepPartial {
				a.log.Info("removing an abandoned partial offline copy", zap.String("dir", filepath.Join(dir, e.Name())))
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
}
