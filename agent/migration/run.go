package migration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// maxLostFor is how long status calls may fail in a row while the source
// VMM still runs before the migration is settled without it (a duration,
// not a count: the poll is fast).
var maxLostFor = 500 * time.Millisecond

// DefaultParallel is the number of connections a migration uses when the
// caller does not say (see relocation/pagexfer/README.md for the figures
// behind it).
const DefaultParallel = 2

// pollEvery is how often the sending agent asks the source VMM for its
// migration's status. A call costs tens of microseconds on both sides;
// what a slower poll costs is time: the source VMM stays (the guest
// already running on the target) until the agent has read the completed
// status, and the move's end waits for that read.
var pollEvery = 20 * time.Millisecond

// Start begins migrating name to tgt and returns its id at once.
func (l *Local) Start(name, tgt string, o Options) (string, error) {
	if err := l.Domains.Migrating(name, tgt); err != nil {
		return "", err
	}
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return "", err
	}
	addr, err := target(tgt, o)
	if err != nil {
		return "", err
	}
	if l.Pool != nil {
		if offer.Pool, err = l.Pool.Outgoing(name); err != nil {
			return "", err
		}
	}
	st := Status{Domain: name, Target: addr, Live: o.Live, TLSVerified: o.SSL && o.Fingerprint != ""}
	return l.launch(st, control.SourceAgent, func(ctx context.Context, m *migration) {
		l.run(ctx, m, offer, addr, o)
	})
}

// run is a live or non-live migration from the sending agent: connect and
// hand the connections to the source VMM, start its sender, follow it to
// the end.
func (l *Local) run(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options) {
	f := &follower{l: l, m: m, name: m.st.Domain, offer: offer, addr: addr, o: o, movedAt: time.Now()}
	if offer.Pool != nil {
		defer func() { l.Pool.MoveEnded(f.name, m.status().Phase == control.PhaseCompleted) }()
	}
	files, member, err := l.connect(ctx, m, offer, addr, o)
	if err != nil {
		m.end(control.PhaseFailed, err)
		return
	}
	f.member = member
	if err := l.startSender(m, offer, addr, o, files); err != nil {
		m.end(control.PhaseFailed, fmt.Errorf("start the sender in the VMM: %w", err))
		return
	}
	f.follow(ctx)
}

// connect dials the target for every stream of the migration and turns
// the connections into files for the VMM. The extra connections of a
// parallel stream are authenticated like the first; a target that
// refuses one (an older agent, a limit) gets the streams it accepted: the
// image says how many there are.
func (l *Local) connect(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options) ([]*os.File, *relocation.PoolMember, error) {
	id := m.st.ID
	streams, why := streamsFor(offer, o)
	if why != "" {
		m.set(func(st *Status) { st.StreamsReason = why })
	}
	hello := l.hello(relocation.OpReceive, id, o, offer)
	hello.Channels = streams
	conn, wl, err := l.dial(ctx, addr, o, hello)
	if err != nil {
		return nil, nil, err
	}
	if !wl.OK {
		if len(wl.Problems) > 0 {
			return nil, nil, errors.New("the target refused: " + strings.Join(wl.Problems, "; "))
		}
		return nil, nil, errors.New(wl.Error)
	}
	if offer.Pool != nil && (wl.Member == nil || wl.Member.Host == "" || wl.Member.Lease == 0) {
		conn.Close()
		return nil, nil, fmt.Errorf("the target's agent (%s, version %s) took %s without saying which member of pool %s takes it: it cannot own a pool domain (an agent that knows no pools?)", wl.Host, wl.AgentVersion, offer.Name, offer.Pool.Pool)
	}
	conns := []net.Conn{conn}
	for i := 1; i < streams; i++ {
		h := l.hello(relocation.OpReceive, id, o, offer)
		h.Channel, h.Channels = i, streams
		c, w, err := l.dial(ctx, addr, o, h)
		if err != nil || !w.OK {
			break
		}
		conns = append(conns, c)
	}
	files := make([]*os.File, 0, len(conns))
	for i, c := range conns {
		f, err := HandOff(c)
		if err != nil {
			for _, c := range conns[i:] {
				c.Close()
			}
			closeAll(files)
			return nil, nil, err
		}
		files = append(files, f)
	}
	return files, wl.Member, nil
}

// qemuEngine is vmm.EngineQEMU (this package does not import vmm).
const qemuEngine = "qemu"

// streamsFor is the number of connections a migration of offer opens,
// and why it is not what the options asked, if it is not: a qemu domain
// migrates over one (QEMU's migration stream is one file descriptor),
// whatever parallel says.
func streamsFor(offer relocation.Offer, o Options) (int, string) {
	if offer.Engine == qemuEngine {
		if o.Parallel > 1 {
			return 1, fmt.Sprintf("one stream, not the %d asked: the qemu engine migrates over one connection (QEMU's migration stream is one file descriptor)", o.Parallel)
		}
		return 1, "one stream: the qemu engine migrates over one connection (QEMU's migration stream is one file descriptor)"
	}
	streams := o.Parallel
	if streams <= 0 {
		streams = DefaultParallel
	}
	return min(streams, pagexfer.MaxStreams), ""
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// startSender hands the connections to the source VMM and starts its
// page stream (it commits by itself once the target verified the image).
func (l *Local) startSender(m *migration, offer relocation.Offer, addr string, o Options, files []*os.File) error {
	defer closeAll(files)
	maxDown := o.MaxDowntime
	if maxDown == 0 {
		maxDown = DefaultMaxDowntime
	}
	m.set(func(st *Status) {
		st.Streams, st.Compression = len(files), o.Compress
		if st.Compression == "" {
			st.Compression = "none"
		}
	})
	_, err := l.Domains.Call(m.st.Domain, control.Request{
		Op: control.OpMigrateSend, Migration: m.st.ID, Target: addr, Live: o.Live,
		RateLimit: o.RateLimit, MaxDowntime: maxDown, Config: offer.Config, Compress: o.Compress,
		// A pool domain commits only once its ownership is the target's
		// (follower.step, HandOver).
		AutoCommit: offer.Pool == nil, ProgressTimeout: l.ProgressTimeout,
	}, 10*time.Second, files...)
	return err
}

// follower follows a migration the source VMM runs, polling its status,
// until it ends.
type follower struct {
	l     *Local
	m     *migration
	name  string
	offer relocation.Offer
	addr  string
	o     Options

	committed, stopping, cancelSent bool
	lostSince                       time.Time // when status calls began to fail while the VMM still ran (zero: they answer)

	// A pool domain's: the target member (from its Welcome), and whether
	// the ownership went to it (from then on the source commits and
	// never resumes the guest), or stayed here (aborted).
	member       *relocation.PoolMember
	handed, kept bool
	handOverAt   time.Time // the last hand-over attempt that did not settle
	// tried: a hand-over was asked for; until it is settled (handed or
	// kept) nothing but a fence may abort the migration: an abort resumes
	// the guest here, and the ownership may be the target's.
	tried bool

	// The watchdog: a status that has not moved for progress_timeout plus
	// a margin (the VMM bounds its own waits by progress_timeout; this
	// catches one that does not) ends the migration as failed, the VMM
	// told to cancel. After the commit the in-doubt rules decide.
	seen    progressMark
	movedAt time.Time
	stalled error
	stallAt time.Time
}

// follow polls the source VMM until the migration ends, or the agent
// stops (the VMM goes on; the next agent resolves what it left).
func (f *follower) follow(ctx context.Context) {
	for {
		if f.watchdog() || !f.wait(ctx) {
			return
		}
		resp, err := f.l.Domains.Call(f.name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
		if err != nil {
			if f.lostVMM(err) {
				return
			}
			continue
		}
		f.lostSince = time.Time{}
		vs := resp.Migration
		if vs == nil {
			continue
		}
		if mk := markOf(vs); mk != f.seen {
			f.seen, f.movedAt = mk, time.Now()
		}
		f.record(vs)
		if f.step(vs) {
			return
		}
	}
}

// watchdog cancels a migration that stopped moving, and fails it when the
// VMM does not end it once told to; true when it ended the migration.
func (f *follower) watchdog() bool {
	l := f.l
	if l.ProgressTimeout <= 0 || f.committed || !f.mayAbort() {
		return false
	}
	switch {
	case f.stalled == nil && time.Since(f.movedAt) > l.ProgressTimeout+stallMargin:
		f.stalled = fmt.Errorf("migration made no progress for %s (progress_timeout %s): cancelled", time.Since(f.movedAt).Round(time.Second), l.ProgressTimeout)
		f.stallAt = time.Now()
		_, _ = l.Domains.Call(f.name, control.Request{Op: control.OpMigrateCancel, Reason: f.stalled.Error()}, 5*time.Second)
	case f.stalled != nil && time.Since(f.stallAt) > stallMargin:
		f.m.end(control.PhaseFailed, f.stalled)
		return true
	}
	return false
}

// mayAbort says whether the agent may have the source VMM abort (which
// resumes the guest here): not while a pool domain's hand-over is
// unsettled, nor once it was handed over.
func (f *follower) mayAbort() bool {
	return !f.handed && (!f.tried || f.kept)
}

// wait waits for the next poll; once the migration is cancelled it tells
// the VMM (before the commit) and polls faster. False: the agent stops.
func (f *follower) wait(ctx context.Context) bool {
	life := f.l.life()
	select {
	case <-ctx.Done():
		if !f.committed && !f.cancelSent && f.mayAbort() {
			_, _ = f.l.Domains.Call(f.name, control.Request{Op: control.OpMigrateCancel, Reason: "cancelled"}, 5*time.Second)
			f.cancelSent = true
		}
		return sleep(life, 20*time.Millisecond)
	case <-life.Done():
		return false
	case <-time.After(pollEvery):
		return true
	}
}

// stillLosing starts the clock of failing status calls, and says whether
// they have failed for less than maxLostFor.
func (f *follower) stillLosing() bool {
	if f.lostSince.IsZero() {
		f.lostSince = time.Now()
	}
	return time.Since(f.lostSince) < maxLostFor
}

// lostVMM handles a status call that failed; true when that ended the
// migration.
func (f *follower) lostVMM(err error) bool {
	in, ierr := f.l.Domains.Info(f.name)
	switch {
	case domains.KindOf(ierr) == domains.NotFound, ierr == nil && in.LastExit != nil && in.LastExit.Reason == string(control.ExitMigrated):
		// Its VMM ended as migrated (the registry is forgetting the
		// domain, or has): the target runs the guest.
		f.complete()
		return true
	case ierr == nil && (in.State == string(domains.Running) || in.State == string(domains.Paused)) && f.stillLosing():
		// The VMM still runs (busy, or ending): ask it again.
		return false
	}
	if !f.committed && !f.stopping {
		f.m.end(control.PhaseFailed, fmt.Errorf("lost the source VMM before its stop-and-copy: %w", err))
		return true
	}
	// The VMM may have committed (it does so by itself once the target
	// verified the image) before it ended or stopped answering: only the
	// target can say where the guest runs.
	on, serr := f.l.settleLost(f.l.life(), f.offer, f.addr, f.o)
	switch {
	case serr != nil:
		f.m.end(control.PhaseFailed, serr)
	case !on:
		f.m.end(control.PhaseFailed, fmt.Errorf("lost the source VMM during its stop-and-copy or commit, and the target does not run the domain: %w", err))
	default:
		f.complete()
	}
	return true
}

// complete ends the migration completed once the registry has forgotten
// the domain (its VMM ended as migrated), so that nobody sees it
// completed and still here.
func (f *follower) complete() {
	f.l.awaitGone(f.l.life(), f.name)
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.moveLocked(control.PhaseCompleted); err != nil {
		f.l.log().Warn("migration ended here but its phase cannot go to completed", zap.String("domain", f.name), zap.Error(err))
	}
	m.st.Error = ""
	m.st.TotalSeconds = time.Since(m.st.Started).Seconds()
}

// step acts on the phase the VMM reported; true when the migration ended.
func (f *follower) step(vs *control.MigrationStatus) bool {
	l := f.l
	switch vs.Phase {
	case control.PhaseStopCopy, control.PhaseSent:
		f.stopping = true
	case control.PhaseVerified:
		f.stopping = true
		// The VMM commits by itself (AutoCommit); one that predates that,
		// or a pool domain's, waits for this call, the guest paused
		// meanwhile.
		if f.kept || (f.mayAbort() && f.m.isCancelled()) {
			reason := "cancelled"
			if f.kept {
				reason = "the target could not take the pool domain's ownership"
			}
			_, _ = l.Domains.Call(f.name, control.Request{Op: control.OpMigrateAbort, Reason: reason}, 5*time.Second)
			return false
		}
		if f.offer.Pool != nil && !f.handed {
			if time.Since(f.handOverAt) < handOverRetry {
				return false
			}
			// The operator's cancel and the hand-over exclude each other:
			// a cancel that came first aborts; once handing, Cancel is
			// refused.
			f.m.mu.Lock()
			if !f.tried && f.m.cancelled {
				f.m.mu.Unlock()
				_, _ = l.Domains.Call(f.name, control.Request{Op: control.OpMigrateAbort, Reason: "cancelled"}, 5*time.Second)
				return false
			}
			f.m.handing = true
			f.m.mu.Unlock()
			f.tried = true
			handed, err := l.Pool.HandOver(f.name, f.member)
			switch {
			case errors.Is(err, ErrOwnershipLost):
				// Neither here's nor the target's: this copy must not run
				// again (an abort would resume it).
				l.log().Error("pool domain's ownership lost during its migration: its copy here is destroyed", zap.String("domain", f.name), zap.Error(err))
				_ = l.Domains.Destroy(f.name)
				f.m.end(control.PhaseFailed, err)
				return true
			case err != nil:
				f.handOverAt = time.Now()
				l.log().Warn("pool domain's ownership not handed over yet; asking again (the guest stays paused)", zap.String("domain", f.name), zap.Error(err), zap.Duration("in", handOverRetry))
				return false
			case !handed:
				f.kept = true
				f.m.mu.Lock()
				f.m.handing = false
				f.m.mu.Unlock()
				return false
			}
			f.handed = true
		}
		if _, err := l.Domains.Call(f.name, control.Request{Op: control.OpMigrateCommit}, 5*time.Second); err == nil {
			f.committed = true
		}
	case control.PhaseCommitting:
		f.committed = true
	case control.PhaseInDoubt:
		f.committed = true
		l.resolve(l.life(), f.name, f.offer, f.addr, f.o, f.handed)
	case control.PhaseCompleted:
		f.complete()
		return true
	case control.PhaseFailed, control.PhaseCancelled:
		if f.stalled != nil {
			f.m.end(control.PhaseFailed, f.stalled)
		} else {
			f.m.end(vs.Phase, errors.New(vs.Error))
		}
		return true
	}
	return false
}

// record copies the VMM's migration status into the migration's; the
// phase moves through the agent's table (completed is said once the
// domain has left).
func (f *follower) record(vs *control.MigrationStatus) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if vs.Phase != control.PhaseCompleted {
		if err := m.moveLocked(vs.Phase); err != nil {
			f.l.log().Warn("source VMM reported an illegal phase step", zap.String("domain", f.name), zap.Error(err))
		}
	}
	st := &m.st
	st.Round = vs.Round
	st.BytesSent = max(st.BytesSent, int64(vs.BytesSent))
	st.BytesRemaining = int64(vs.BytesRemaining)
	st.DataPages, st.ZeroPages, st.SkippedPages = int64(vs.DataPages), int64(vs.ZeroPages), int64(vs.SkippedPages)
	st.Throughput, st.DirtyRate = vs.Throughput, vs.DirtyRate
	st.ExpectedDowntimeMs = ms(vs.ExpectedDowntime)
	st.Throttle, st.MaxThrottle = vs.Throttle, vs.MaxThrottle
	st.ThrottledSeconds = vs.ThrottledFor.Seconds()
	st.StopReason = vs.StopReason
	st.DowntimeMs, st.StopCopyMs, st.VerifyMs = ms(vs.Downtime), ms(vs.StopCopy), ms(vs.Verify)
	st.ResumeMs, st.DrainMs = ms(vs.Resume), ms(vs.DrainWait)
	st.RAMCheckMs, st.MendedPages = ms(vs.RAMCheck), vs.MendedPages
	st.TransferSeconds = vs.Total.Seconds()
	st.Error = vs.Error
	if vs.Streams > 0 {
		st.Streams = vs.Streams
	}
	st.CompressedBatches = int64(vs.CompressedBatches)
	if vs.BatchWireBytes < vs.BatchBytes {
		st.CompressionSaved = int64(vs.BatchBytes - vs.BatchWireBytes)
	}
	if vs.BatchBytes > 0 {
		st.CompressionRatio = float64(vs.BatchWireBytes) / float64(vs.BatchBytes)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// handOverRetry is how long a pool domain's migration waits before it
// asks again for a hand-over whose outcome was not known.
var handOverRetry = time.Second

// stallMargin is what the agent's watchdog allows on top of
// progress_timeout before it ends a migration whose status stands still,
// and again for the VMM to end it once told to cancel.
const stallMargin = 10 * time.Second

// progressMark is what of a VMM's migration status moves while the
// migration makes progress (the dirty figures move also when it does not).
type progressMark struct {
	phase        control.Phase
	round        int
	sent, pages  uint64
	verify, done time.Duration
}

func markOf(vs *control.MigrationStatus) progressMark {
	return progressMark{phase: vs.Phase, round: vs.Round, sent: uint64(vs.BytesSent),
		pages: uint64(vs.DataPages) + uint64(vs.ZeroPages) + uint64(vs.SkippedPages), verify: vs.Verify, done: vs.Resume}
}
