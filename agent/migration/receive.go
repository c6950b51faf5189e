package migration

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// The receiving side: what this agent answers to the relocation
// operations a sending agent names (the agent dispatches on the op). The
// relocation server has checked hosts-allow and the peer's credentials.

// channelWait is how long an extra connection of a parallel migration
// waits for the incoming VMM to be receiving that migration, asking every
// channelEvery.
var (
	channelWait  = 5 * time.Second
	channelEvery = 20 * time.Millisecond
)

// connLog is the logger of one relocation connection.
func (l *Local) connLog(h *relocation.Hello) *zap.Logger {
	return l.log().With(zap.String("op", h.Op), zap.String("domain", h.Offer.Name), zap.String("migration", h.Migration))
}

// AnswerCheck answers the dry run of a live or offline migration
// (relocation.OpCheck) with every reason this host could not take the
// domain.
func (l *Local) AnswerCheck(c net.Conn, h *relocation.Hello) {
	defer c.Close()
	if h.Offline != nil {
		plan, chk := l.checkOffline(h)
		w := &relocation.Welcome{Repositories: plan.mounted, Target: l.Domains.TargetFacts(h.Offer.Config)}
		if w.Target != nil {
			// An offline move copies the files this host does not
			// share (checkOffline's disks): whether the source's
			// paths exist here says nothing.
			w.Target.Files = nil
		}
		w.SetProblems(chk.Ordered())
		w.OK = len(w.Problems) == 0
		_ = relocation.WriteWelcome(c, l.welcome(w))
		return
	}
	w := &relocation.Welcome{Target: l.Domains.TargetFacts(h.Offer.Config)}
	w.SetProblems(l.checkIncoming(h))
	w.OK = len(w.Problems) == 0
	if err := relocation.WriteWelcome(c, l.welcome(w)); err != nil {
		l.connLog(h).Warn("answer check", zap.Error(err))
	}
}

// AnswerStatus says the offered domain's state here, "" when this host
// does not have it (relocation.OpStatus: a sending agent settling a
// commit whose answer it lost).
func (l *Local) AnswerStatus(c net.Conn, h *relocation.Hello) {
	defer c.Close()
	state := ""
	if in, err := l.Domains.Info(h.Offer.Name); err == nil && strings.EqualFold(in.UUID, h.Offer.UUID) {
		state = in.State
	}
	_ = relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{OK: true, State: state}))
}

// Refuse answers an operation this agent cannot serve.
func (l *Local) Refuse(c net.Conn, code int, format string, args ...any) {
	_ = relocation.WriteWelcome(c, &relocation.Welcome{Code: code, Error: fmt.Sprintf(format, args...)})
	c.Close()
}

// checkIncoming lists every reason this host could not take the offered
// running domain; none means it can.
func (l *Local) checkIncoming(h *relocation.Hello) []relocation.Problem {
	var c relocation.Checker
	o := h.Offer
	if h.Protocol != l.Protocol {
		c.Soft("protocol", "the sending agent speaks protocol %d (version %s), this agent %d (version %s)", h.Protocol, h.AgentVersion, l.Protocol, l.AgentVersion)
	}
	c.Add(l.Domains.CheckIncoming(o, o.MemoryMiB)...)
	if local, err := l.localConfig(o); err != nil {
		c.Hard("config", "%v", err)
	} else {
		c.Add(l.Domains.CheckFiles(local)...)
	}
	if o.Engine == "kvm" {
		checkCPU(&c, o)
	}
	if o.Pool != nil {
		if l.Pool == nil {
			c.Hard("pool", "%s belongs to pool %s; this agent is in no pool, so it cannot own it", o.Name, o.Pool.Pool)
		} else if _, _, err := l.Pool.Admit(o); err != nil {
			c.Hard("pool", "%v", err)
		}
	}
	for _, d := range o.Disks {
		if domains.IsBootFile(d) {
			continue // read-only: CheckFiles found it here or said not
		}
		if d.Repository != "" && d.Rel != "" && !filepath.IsLocal(d.Rel) {
			c.Hard("disk "+d.Path, "on repository %s, but %q leaves that repository", d.Repository, d.Rel)
		} else if d.Repository == "" {
			c.Soft("disk "+d.Path, "not on a repository, so this host cannot reach it")
		} else if _, ok := l.mountPoint(d.Repository); !ok {
			c.Soft("disk "+d.Path, "repository %s is not mounted on this host", d.Repository)
		}
	}
	return c.Problems()
}

// checkCPU records what of the offered domain's CPU this host lacks.
func checkCPU(c *relocation.Checker, o relocation.Offer) {
	info, err := hostinfo.Read(hostinfo.DefaultPaths)
	if err != nil {
		c.Soft("CPU", "cannot read this host's CPU: %v", err)
		return
	}
	if o.CPUVendor != "" && o.CPUVendor != info.CPUVendor {
		c.Soft("CPU", "the domain runs on a %s CPU; this host's is %s", o.CPUVendor, info.CPUVendor)
	}
	have := make(map[string]bool, len(info.CPUFlags))
	for _, f := range info.CPUFlags {
		have[f] = true
	}
	var missing []string
	for _, f := range o.CPUFlags {
		if !have[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		c.Soft("CPU", "features the guest may use are missing here: %s", strings.Join(missing, " "))
	}
}

// localConfig is the offered vm.cfg with its files on this host: a disk
// (or kernel, ramdisk) on a repository this host mounts elsewhere than
// the source does is named by this host's mount point of that repository
// (the offer gives the repository and the path inside it). Every host
// mounting repositories at the same place gets the vm.cfg as it was.
func (l *Local) localConfig(o relocation.Offer) (string, error) {
	cfg, err := vmcfg.Parse("vm.cfg", []byte(o.Config))
	if err != nil {
		return "", err
	}
	byPath := map[string]string{}
	for _, d := range o.Disks {
		if d.Repository == "" || d.Rel == "" || !filepath.IsLocal(d.Rel) {
			continue
		}
		if mp, ok := l.mountPoint(d.Repository); ok {
			if p := filepath.Join(mp, d.Rel); p != d.Path {
				byPath[d.Path] = p
			}
		}
	}
	if len(byPath) == 0 {
		return o.Config, nil
	}
	want := *cfg
	want.Disks = append([]vmcfg.Disk(nil), cfg.Disks...)
	for i, d := range want.Disks {
		if p, ok := byPath[d.Path]; ok && !d.IsDevice() {
			want.Disks[i].Path = p
		}
	}
	for _, f := range []*string{&want.Kernel, &want.Ramdisk} {
		if p, ok := byPath[*f]; ok && *f != "" {
			*f = p
		}
	}
	return string(vmcfg.Render([]byte(o.Config), &want)), nil
}

func (l *Local) mountPoint(uuid string) (string, bool) {
	if l.Repos == nil {
		return "", false
	}
	return l.Repos.MountPoint(uuid)
}

// Receive takes an incoming migration (relocation.OpReceive): it checks
// the offer, starts an incoming VMM, accepts, and hands the connection to
// the VMM. An extra connection of a parallel migration joins the VMM
// receiving it.
func (l *Local) Receive(ctx context.Context, c net.Conn, r *bufio.Reader, h *relocation.Hello) {
	log := l.connLog(h)
	if h.Channel != 0 {
		l.attachChannel(c, r, h, log)
		return
	}
	if problems := l.checkIncoming(h); len(problems) > 0 {
		w := &relocation.Welcome{Code: xmlrpc.BadState, Error: "this host cannot take the domain"}
		w.SetProblems(problems)
		log.Warn("incoming migration refused", zap.Strings("problems", w.Problems))
		_ = relocation.WriteWelcome(c, l.welcome(w))
		c.Close()
		return
	}
	if r.Buffered() > 0 {
		log.Warn("relocation peer sent data before the answer; closing")
		c.Close()
		return
	}
	local, err := l.localConfig(h.Offer)
	if err != nil {
		c.Close()
		return
	}
	// A pool domain's incoming VMM runs under this member's lease from
	// its start (its generation, until the hand-over gives it the new
	// one, the source's: the guest's fw_cfg files are the source's).
	var (
		member   *relocation.PoolMember
		runUntil control.Monotonic
		gen      int64
	)
	if o := h.Offer; o.Pool != nil {
		if member, runUntil, err = l.Pool.Admit(o); err != nil {
			w := &relocation.Welcome{Code: xmlrpc.BadState, Error: "this host cannot take the domain"}
			w.SetProblems([]relocation.Problem{{Field: "pool", Hard: true, Message: err.Error()}})
			_ = relocation.WriteWelcome(c, l.welcome(w))
			c.Close()
			return
		}
		gen = o.Pool.Generation
	}
	if err := l.Domains.Incoming(local, h.Source, runUntil, gen); err != nil {
		log.Warn("incoming migration: VMM did not start", zap.Error(err))
		_ = relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{Code: xmlrpc.Internal, Error: err.Error()}))
		c.Close()
		return
	}
	name := h.Offer.Name
	if member != nil {
		l.Pool.Receiving(name, h.Offer)
	}
	watch := func() {
		st := l.Domains.WatchIncoming(name)
		log.Info("incoming migration ended", zap.String("state", string(st)))
		if member != nil {
			l.Pool.Arrived(name, h.Offer, st)
		}
	}
	if err := relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{OK: true, Member: member})); err != nil {
		log.Warn("incoming migration: answer the source", zap.Error(err))
		c.Close()
		_ = l.Domains.Destroy(name)
		watch()
		return
	}
	if err := l.handToVMM(c, name, control.Request{Op: control.OpMigrateReceive, Migration: h.Migration, Live: h.Live, ProgressTimeout: l.ProgressTimeout}); err != nil {
		log.Error("incoming migration: hand the connection to the VMM", zap.Error(err))
		_ = l.Domains.Destroy(name)
		watch()
		return
	}
	log.Info("incoming migration: receiving")
	go watch()
}

// handToVMM passes the connection to the domain's VMM with req.
func (l *Local) handToVMM(c net.Conn, name string, req control.Request) error {
	f, err := HandOff(c)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = l.Domains.Call(name, req, 10*time.Second, f)
	return err
}

// attachChannel takes an extra connection of a parallel migration: it
// checks that the domain is receiving that very migration here, accepts,
// and hands the connection to its incoming VMM.
func (l *Local) attachChannel(c net.Conn, r *bufio.Reader, h *relocation.Hello, log *zap.Logger) {
	log = log.With(zap.Int("channel", h.Channel))
	refuse := func(msg string) {
		log.Warn("migration channel refused", zap.String("reason", msg))
		_ = relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{Code: xmlrpc.BadState, Error: msg}))
		c.Close()
	}
	if h.Channel < 0 || h.Channel >= h.Channels || h.Channels > pagexfer.MaxStreams {
		refuse(fmt.Sprintf("channel %d of %d (at most %d)", h.Channel, h.Channels, pagexfer.MaxStreams))
		return
	}
	if r.Buffered() > 0 {
		log.Warn("relocation peer sent data before the answer; closing")
		c.Close()
		return
	}
	name := h.Offer.Name
	if !l.awaitReceiving(name, h.Migration) {
		refuse(fmt.Sprintf("%s is not receiving migration %s here", name, h.Migration))
		return
	}
	if err := relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{OK: true})); err != nil {
		log.Warn("migration channel: answer the source", zap.Error(err))
		c.Close()
		return
	}
	if err := l.handToVMM(c, name, control.Request{Op: control.OpMigrateAttach, Migration: h.Migration}); err != nil {
		// The VMM's receiver fails without this stream and says so to
		// the source on the first connection.
		log.Error("migration channel: hand the connection to the VMM", zap.Error(err))
		return
	}
	log.Info("migration channel attached")
}

// awaitReceiving reports whether name's incoming VMM is receiving
// migration id. The source dials the extra channels as soon as the first
// one is welcomed, which can be before that one reached the VMM: it waits
// a little (channelWait, or until the agent stops).
func (l *Local) awaitReceiving(name, id string) bool {
	if in, err := l.Domains.Info(name); err != nil || in.State != string(domains.Starting) {
		return false
	}
	deadline := time.Now().Add(channelWait)
	for {
		resp, err := l.Domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
		if err == nil && resp.Migration != nil && resp.Migration.ID == id && resp.Migration.Phase == control.PhaseReceiving {
			return true
		}
		if time.Now().After(deadline) || !sleep(l.life(), channelEvery) {
			return false
		}
	}
}

// ServeProbe answers a sending agent's link probe (relocation.OpProbe,
// the dry run's estimate): it accepts, reads and discards the data and
// says how fast it arrived.
func (l *Local) ServeProbe(c net.Conn, r *bufio.Reader, h *relocation.Hello) {
	defer c.Close()
	log := l.connLog(h)
	if err := relocation.WriteWelcome(c, l.welcome(&relocation.Welcome{OK: true})); err != nil {
		log.Warn("answer link probe", zap.Error(err))
		return
	}
	res, err := relocation.ServeProbe(c, r)
	if err != nil {
		log.Warn("link probe failed", zap.Int64("bytes", res.Bytes), zap.Error(err))
		return
	}
	log.Info("link probe", zap.Int64("bytes", res.Bytes), zap.Duration("duration", res.Duration), zap.Float64("bytes_per_second", res.Throughput))
}
