package migration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Status is a migration as the API reports it.
type Status struct {
	ID                 string        `xmlrpc:"id"`
	Domain             string        `xmlrpc:"domain"`
	Target             string        `xmlrpc:"target"`
	Live               bool          `xmlrpc:"live"`
	Phase              control.Phase `xmlrpc:"phase"`
	Round              int           `xmlrpc:"round"`
	BytesSent          int64         `xmlrpc:"bytes_sent"`
	BytesRemaining     int64         `xmlrpc:"bytes_remaining"`
	DataPages          int64         `xmlrpc:"data_pages"`
	ZeroPages          int64         `xmlrpc:"zero_pages"`
	SkippedPages       int64         `xmlrpc:"skipped_pages"`
	Throughput         float64       `xmlrpc:"throughput"` // bytes/s
	DirtyRate          float64       `xmlrpc:"dirty_rate"` // bytes/s
	ExpectedDowntimeMs float64       `xmlrpc:"expected_downtime_ms"`
	Throttle           int           `xmlrpc:"throttle_percent"`
	MaxThrottle        int           `xmlrpc:"max_throttle_percent"`
	ThrottledSeconds   float64       `xmlrpc:"throttled_seconds"`
	Started            time.Time     `xmlrpc:"started"`
	ElapsedSeconds     float64       `xmlrpc:"elapsed_seconds"`
	TotalSeconds       float64       `xmlrpc:"total_seconds"`    // from the API call to the end
	TransferSeconds    float64       `xmlrpc:"transfer_seconds"` // the page stream alone, as the VMM timed it
	DowntimeMs         float64       `xmlrpc:"downtime_ms"`
	// The downtime of a live migration in parts: the last pages sent,
	// the target checking the image and building the machine, the commit
	// and the target's start.
	StopCopyMs float64 `xmlrpc:"stop_copy_ms"`
	VerifyMs   float64 `xmlrpc:"verify_ms"`
	ResumeMs   float64 `xmlrpc:"resume_ms"`
	// DrainMs is how long the source waited, the guest still running,
	// for the target to apply what pre-copy sent before pausing it.
	DrainMs     float64 `xmlrpc:"drain_ms"`
	StopReason  string  `xmlrpc:"stop_reason,omitempty"`
	TLSVerified bool    `xmlrpc:"tls_verified"`
	Error       string  `xmlrpc:"error,omitempty"`

	// Offline migrations (a stopped domain and its disks).
	Offline       bool    `xmlrpc:"offline"`
	Percent       float64 `xmlrpc:"percent"`
	ResumedBytes  int64   `xmlrpc:"resumed_bytes"` // already on the target from an interrupted copy
	BytesTotal    int64   `xmlrpc:"bytes_total"`   // data bytes to copy (holes excluded)
	SharedDisks   int     `xmlrpc:"shared_disks"`  // disks the target reaches itself, not copied
	CopiedDisks   int     `xmlrpc:"copied_disks"`  // disks copied
	SourceKeptAs  string  `xmlrpc:"source_kept_as,omitempty"`
	ValidationOff bool    `xmlrpc:"validation_skipped"`

	// Parallel streams and compression of a live or non-live migration.
	Streams           int     `xmlrpc:"streams"`                 // connections the page stream went over
	Compression       string  `xmlrpc:"compression"`             // none, s2, zstd or auto, as asked
	CompressedBatches int64   `xmlrpc:"compressed_batches"`      // page batches that went compressed
	CompressionSaved  int64   `xmlrpc:"compression_saved_bytes"` // bytes compression kept off the wire
	CompressionRatio  float64 `xmlrpc:"compression_ratio"`       // page batch bytes on the wire / before compression (1: no gain)
}

// maxLostCalls is how many status calls in a row may fail while the source
// VMM still runs before the migration is settled without it.
const maxLostCalls = 5

// DefaultParallel is the number of connections a migration uses when the
// caller does not say (see relocation/pagexfer/README.md for the figures
// behind it).
const DefaultParallel = 2

func (s Status) finished() bool {
	return s.Phase.Finished()
}

type migration struct {
	mu        sync.Mutex
	st        Status
	cancel    context.CancelFunc
	cancelled bool
	done      chan struct{}
}

func (m *migration) status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.st
	if !st.finished() {
		st.ElapsedSeconds = time.Since(st.Started).Seconds()
	}
	return st
}

// registry holds the migrations of this agent, finished ones included
// (the newest maxKept).
type registry struct {
	mu   sync.Mutex
	byID map[string]*migration
}

const maxKept = 100

func (l *Local) reg() *registry {
	l.once.Do(func() { l.migs = &registry{byID: make(map[string]*migration)} })
	return l.migs
}

func (r *registry) add(m *migration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byID) >= maxKept {
		var oldest *migration
		var oldestID string
		for id, x := range r.byID {
			st := x.status()
			if st.finished() && (oldest == nil || st.Started.Before(oldest.status().Started)) {
				oldest, oldestID = x, id
			}
		}
		if oldest != nil {
			delete(r.byID, oldestID)
		}
	}
	r.byID[m.st.ID] = m
}

// ErrNoMigration says an id is unknown.
var ErrNoMigration = errors.New("no such migration")

func (l *Local) find(id string) (*migration, error) {
	r := l.reg()
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q (migration.list shows them)", ErrNoMigration, id)
	}
	return m, nil
}

// Status reports one migration.
func (l *Local) Status(id string) (Status, error) {
	m, err := l.find(id)
	if err != nil {
		return Status{}, err
	}
	return m.status(), nil
}

// List reports every migration this agent knows, newest first.
func (l *Local) List() []Status {
	r := l.reg()
	r.mu.Lock()
	out := make([]Status, 0, len(r.byID))
	for _, m := range r.byID {
		out = append(out, m.status())
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out
}

// Cancel stops a migration that has not committed: the domain keeps
// running here. It returns the status after the cancel took effect.
func (l *Local) Cancel(id string) (Status, error) {
	m, err := l.find(id)
	if err != nil {
		return Status{}, err
	}
	st := m.status()
	switch st.Phase {
	case control.PhaseCommitting, control.PhaseInDoubt, control.PhaseCompleted:
		return st, fmt.Errorf("migration %s is %s: too late to cancel", id, st.Phase)
	case control.PhaseFailed, control.PhaseCancelled:
		return st, nil
	}
	m.mu.Lock()
	m.cancelled = true
	m.mu.Unlock()
	m.cancel()
	_, _ = l.Domains.Call(st.Domain, control.Request{Op: control.OpMigrateCancel, Reason: "cancelled by the operator"}, 5*time.Second)
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
	}
	return m.status(), nil
}

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
	id, err := pagexfer.NewID()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &migration{cancel: cancel, done: make(chan struct{}), st: Status{
		ID: id.String(), Domain: name, Target: addr, Live: o.Live, Phase: control.PhaseConnecting, Started: time.Now().UTC(),
		TLSVerified: o.SSL && o.Fingerprint != "",
	}}
	l.reg().add(m)
	go l.run(ctx, m, offer, addr, o)
	return m.st.ID, nil
}

func (l *Local) run(ctx context.Context, m *migration, offer relocation.Offer, addr string, o Options) {
	defer close(m.done)
	defer m.cancel()
	fail := func(phase control.Phase, err error) {
		m.mu.Lock()
		if m.cancelled {
			phase = control.PhaseCancelled
		}
		m.st.Phase, m.st.Error = phase, err.Error()
		m.st.TotalSeconds = time.Since(m.st.Started).Seconds()
		m.mu.Unlock()
	}
	name, id := m.st.Domain, m.st.ID
	streams := o.Parallel
	if streams <= 0 {
		streams = DefaultParallel
	}
	streams = min(streams, pagexfer.MaxStreams)
	hello := l.hello(relocation.OpReceive, id, o, offer)
	hello.Channels = streams
	conn, wl, err := l.dial(ctx, addr, o, hello)
	if err != nil {
		fail(control.PhaseFailed, err)
		return
	}
	if !wl.OK {
		msg := wl.Error
		if len(wl.Problems) > 0 {
			msg = "the target refused: " + strings.Join(wl.Problems, "; ")
		}
		fail(control.PhaseFailed, errors.New(msg))
		return
	}
	// The extra connections of a parallel stream, authenticated like the
	// first. A target that refuses one (an older agent, a limit) gets the
	// streams it accepted: the image says how many there are.
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
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for i, c := range conns {
		f, err := HandOff(c)
		if err != nil {
			for _, c := range conns[i:] {
				c.Close()
			}
			closeFiles()
			fail(control.PhaseFailed, err)
			return
		}
		files = append(files, f)
	}
	maxDown := o.MaxDowntime
	if maxDown == 0 {
		maxDown = DefaultMaxDowntime
	}
	m.mu.Lock()
	m.st.Streams, m.st.Compression = len(files), o.Compress
	if m.st.Compression == "" {
		m.st.Compression = "none"
	}
	m.mu.Unlock()
	_, err = l.Domains.Call(name, control.Request{
		Op: control.OpMigrateSend, Migration: id, Target: addr, Live: o.Live,
		RateLimit: o.RateLimit, MaxDowntime: maxDown, Config: offer.Config, Compress: o.Compress,
		AutoCommit: true, ProgressTimeout: l.ProgressTimeout,
	}, 10*time.Second, files...)
	closeFiles()
	if err != nil {
		fail(control.PhaseFailed, fmt.Errorf("start the sender in the VMM: %w", err))
		return
	}
	complete := func() {
		// The registry forgets the domain once its VMM ended as migrated:
		// report completed then, so that nobody sees it completed and
		// still here.
		l.awaitGone(name)
		m.mu.Lock()
		m.st.Phase, m.st.Error = control.PhaseCompleted, ""
		m.st.TotalSeconds = time.Since(m.st.Started).Seconds()
		m.mu.Unlock()
	}
	committed, stopping, cancelSent := false, false, false
	lost := 0 // status calls in a row that failed while the VMM still ran
	// The watchdog: a status that has not moved for progress_timeout plus
	// a margin (the VMM bounds its own waits by progress_timeout; this
	// catches one that does not) ends the migration as failed, the VMM
	// told to cancel. After the commit the in-doubt rules decide.
	var (
		seen     progressMark
		movedAt  = time.Now()
		stalled  error
		stallAt  time.Time
		stallFor = l.ProgressTimeout + stallMargin
	)
	for {
		if l.ProgressTimeout > 0 && !committed {
			switch {
			case stalled == nil && time.Since(movedAt) > stallFor:
				stalled = fmt.Errorf("migration made no progress for %s (progress_timeout %s): cancelled", time.Since(movedAt).Round(time.Second), l.ProgressTimeout)
				stallAt = time.Now()
				_, _ = l.Domains.Call(name, control.Request{Op: control.OpMigrateCancel, Reason: stalled.Error()}, 5*time.Second)
			case stalled != nil && time.Since(stallAt) > stallMargin:
				// The VMM did not end the migration when told to.
				fail(control.PhaseFailed, stalled)
				return
			}
		}
		select {
		case <-ctx.Done():
			if !committed && !cancelSent {
				_, _ = l.Domains.Call(name, control.Request{Op: control.OpMigrateCancel, Reason: "cancelled"}, 5*time.Second)
				cancelSent = true
			}
			time.Sleep(20 * time.Millisecond)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := l.Domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
		if err != nil {
			in, ierr := l.Domains.Info(name)
			switch {
			case domains.KindOf(ierr) == domains.NotFound, ierr == nil && in.LastExit != nil && in.LastExit.Reason == string(control.ExitMigrated):
				// Its VMM ended as migrated (the registry is forgetting the
				// domain, or has): the target runs the guest.
				complete()
				return
			case ierr == nil && (in.State == string(domains.Running) || in.State == string(domains.Paused)) && lost < maxLostCalls:
				// The VMM still runs (busy, or ending): ask it again.
				lost++
				continue
			}
			if !committed && !stopping {
				fail(control.PhaseFailed, fmt.Errorf("lost the source VMM before its stop-and-copy: %w", err))
				return
			}
			// The VMM may have committed (it does so by itself once the
			// target verified the image) before it ended or stopped
			// answering: only the target can say where the guest runs.
			on, serr := l.settleLost(offer, addr, o)
			if serr != nil {
				fail(control.PhaseFailed, serr)
				return
			}
			if !on {
				fail(control.PhaseFailed, fmt.Errorf("lost the source VMM during its stop-and-copy or commit, and the target does not run the domain: %w", err))
				return
			}
			complete()
			return
		}
		lost = 0
		vs := resp.Migration
		if vs == nil {
			continue
		}
		if mk := markOf(vs); mk != seen {
			seen, movedAt = mk, time.Now()
		}
		m.mu.Lock()
		if vs.Phase != control.PhaseCompleted { // said below, once the domain has left
			m.st.Phase = vs.Phase
		}
		m.st.Round = vs.Round
		if int64(vs.BytesSent) > m.st.BytesSent {
			m.st.BytesSent = int64(vs.BytesSent)
		}
		m.st.BytesRemaining = int64(vs.BytesRemaining)
		m.st.DataPages, m.st.ZeroPages, m.st.SkippedPages = int64(vs.DataPages), int64(vs.ZeroPages), int64(vs.SkippedPages)
		m.st.Throughput, m.st.DirtyRate = vs.Throughput, vs.DirtyRate
		m.st.ExpectedDowntimeMs = float64(vs.ExpectedDowntime) / float64(time.Millisecond)
		m.st.Throttle, m.st.MaxThrottle = vs.Throttle, vs.MaxThrottle
		m.st.ThrottledSeconds = vs.ThrottledFor.Seconds()
		m.st.StopReason = vs.StopReason
		m.st.DowntimeMs = float64(vs.Downtime) / float64(time.Millisecond)
		m.st.StopCopyMs = float64(vs.StopCopy) / float64(time.Millisecond)
		m.st.VerifyMs = float64(vs.Verify) / float64(time.Millisecond)
		m.st.ResumeMs = float64(vs.Resume) / float64(time.Millisecond)
		m.st.DrainMs = float64(vs.DrainWait) / float64(time.Millisecond)
		m.st.TransferSeconds = vs.Total.Seconds()
		m.st.Error = vs.Error
		if vs.Streams > 0 {
			m.st.Streams = vs.Streams
		}
		m.st.CompressedBatches = int64(vs.CompressedBatches)
		if vs.BatchWireBytes < vs.BatchBytes {
			m.st.CompressionSaved = int64(vs.BatchBytes - vs.BatchWireBytes)
		}
		if vs.BatchBytes > 0 {
			m.st.CompressionRatio = float64(vs.BatchWireBytes) / float64(vs.BatchBytes)
		}
		cancelled := m.cancelled
		m.mu.Unlock()
		switch vs.Phase {
		case control.PhaseStopCopy, control.PhaseSent:
			stopping = true
		case control.PhaseVerified:
			stopping = true
			// The VMM commits by itself (AutoCommit); one that predates
			// that waits for this call, the guest paused meanwhile.
			if cancelled {
				_, _ = l.Domains.Call(name, control.Request{Op: control.OpMigrateAbort, Reason: "cancelled"}, 5*time.Second)
				continue
			}
			if _, err := l.Domains.Call(name, control.Request{Op: control.OpMigrateCommit}, 5*time.Second); err == nil {
				committed = true
			}
		case control.PhaseCommitting:
			committed = true
		case control.PhaseInDoubt:
			committed = true
			l.resolve(name, offer, addr, o)
		case control.PhaseCompleted:
			complete()
			return
		case control.PhaseFailed, control.PhaseCancelled:
			if stalled != nil {
				fail(control.PhaseFailed, stalled)
				return
			}
			fail(vs.Phase, errors.New(vs.Error))
			return
		}
	}
}

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

// awaitGone waits, for a bounded time, until the registry has forgotten
// name after its VMM ended as migrated.
func (l *Local) awaitGone(name string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := l.Domains.Info(name); domains.KindOf(err) == domains.NotFound {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resolve settles an in-doubt commit by asking the target's agent whether
// the domain runs there.
func (l *Local) resolve(name string, offer relocation.Offer, addr string, o Options) {
	on, known := l.onTarget(offer, addr, o)
	if !known {
		return // ask again on the next poll; the guest stays paused meanwhile
	}
	_, _ = l.Domains.Call(name, control.Request{Op: control.OpMigrateResolve, OnTarget: on}, 5*time.Second)
}

// onTarget asks the target's agent whether the domain runs there; known is
// false when it cannot tell yet (no answer, or the domain still starting).
func (l *Local) onTarget(offer relocation.Offer, addr string, o Options) (on, known bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, wl, err := l.dial(ctx, addr, o, l.hello(relocation.OpStatus, "", o, offer))
	if err != nil || wl == nil {
		return false, false
	}
	if c != nil {
		c.Close()
	}
	if !wl.OK || wl.State == string(domains.Starting) {
		return false, false
	}
	return wl.State == string(domains.Running) || wl.State == string(domains.Paused), true
}

// settleLost decides a migration whose source VMM ended or stopped
// answering during its stop-and-copy or commit, when it may have committed
// by itself: the target's agent says whether the guest runs there.
func (l *Local) settleLost(offer relocation.Offer, addr string, o Options) (bool, error) {
	for i := 0; i < 12; i++ {
		if on, known := l.onTarget(offer, addr, o); known {
			return on, nil
		}
		time.Sleep(5 * time.Second)
	}
	return false, fmt.Errorf("lost the source VMM during its stop-and-copy or commit, and the target's agent at %s did not say within a minute whether the domain runs there", addr)
}

// ResolveInDoubt settles, in the background, the migrations the domain
// registry found in doubt at start: each domain stays paused until its
// target's agent says whether it runs there.
func (l *Local) ResolveInDoubt() {
	for name, tgt := range l.Domains.InDoubt() {
		go func(name, tgt string) {
			offer, err := l.Domains.Offer(name)
			if err != nil {
				return
			}
			for i := 0; i < 720; i++ { // an hour
				resp, err := l.Domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
				if err != nil || resp.Migration == nil || resp.Migration.Phase != control.PhaseInDoubt {
					return
				}
				l.resolve(name, offer, tgt, Options{})
				time.Sleep(5 * time.Second)
			}
		}(name, tgt)
	}
}

// HandOff turns an established relocation connection into a file that can
// be passed to a VMM. A plain TCP connection is passed as it is; a TLS
// connection cannot leave this process, so a socket pair carries its
// plaintext and this process keeps doing the TLS.
func HandOff(conn net.Conn) (*os.File, error) {
	if tc, ok := conn.(*net.TCPConn); ok {
		f, err := tc.File()
		conn.Close()
		return f, err
	}
	fds, err := socketpair()
	if err != nil {
		return nil, err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "relocation-proxy"), os.NewFile(uintptr(fds[1]), "relocation-vmm")
	local, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, err
	}
	go proxy(conn, local)
	return theirs, nil
}
