package vmm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/relocation/pagexfer"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// How long the source VMM waits for its agent to decide after the target
// verified the image, and for the target's answers. A source whose agent
// never decides aborts: before Commit the source copy is authoritative;
// except a pool domain's (one with a lease), whose ownership its agent
// may have handed over already: it waits for its fence instead.
var (
	decisionTimeout = 60 * time.Second
	verdictTimeout  = 5 * time.Minute
	resumedTimeout  = 30 * time.Second
	commitTimeout   = 2 * time.Minute  // target: waiting for Commit after Verified
	attachTimeout   = 30 * time.Second // target: waiting for the other streams of a parallel image
	finalTimeout    = 2 * time.Second  // source: waiting for the agent to read the completed status
)

// phases is one migration's status as this VMM reports it. Its phase
// moves only through the transition table of its role (control.SourceVMM,
// SaveVMM or TargetVMM): a step the table does not allow is refused and
// logged, and the migration stays where it was.
type phases struct {
	mu   sync.Mutex
	st   control.MigrationStatus
	role control.Role
	log  *zap.Logger
}

func (p *phases) status() control.MigrationStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// update changes the figures of the status (f may be nil), never its
// phase.
func (p *phases) update(f func(*control.MigrationStatus)) {
	if f == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	phase := p.st.Phase
	f(&p.st)
	p.st.Phase = phase
}

// move takes the migration to phase to, and applies f (when not nil) in
// the same step. It reports whether the table allowed the step; when not,
// neither the phase nor f is applied.
func (p *phases) move(to control.Phase, f func(*control.MigrationStatus)) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	next, err := p.role.Move(p.st.Phase, to)
	if err != nil {
		p.log.Error("migration phase step refused", zap.String("migration", p.st.ID), zap.Error(err))
		return false
	}
	p.st.Phase = next
	if f != nil {
		f(&p.st)
	}
	return true
}

// fail moves the migration to phase (failed or cancelled) with err.
func (p *phases) fail(phase control.Phase, err error) {
	p.move(phase, func(st *control.MigrationStatus) { st.Error, st.BytesRemaining = err.Error(), 0 })
}

// busy says whether the migration still runs or succeeded (a failed or
// cancelled one makes room for the next).
func (p *phases) busy() bool {
	s := p.status()
	return s.Phase != control.PhaseFailed && s.Phase != control.PhaseCancelled
}

// failedOrCancelled is the phase a failure ends in: cancelled when the
// agent cancelled the migration.
func failedOrCancelled(ctx context.Context) control.Phase {
	if ctx.Err() != nil {
		return control.PhaseCancelled
	}
	return control.PhaseFailed
}

// outgoing is a migration (or save) from this VMM.
type outgoing struct {
	phases
	cancel context.CancelFunc
	decide chan control.Decision
	where  chan bool // after in-doubt: true = the target runs it
	// told is closed once the agent has read the completed status (with
	// the final downtime): the VMM ends only then, or after finalTimeout.
	told     chan struct{}
	tellOnce sync.Once
}

// incoming is a migration into this VMM.
type incoming struct {
	phases
	// extra receives the other connections of a parallel image
	// (OpMigrateAttach) until the receiver has them all.
	extra chan net.Conn
	// progress is the page-stream reads' progress timeout (0: none).
	progress time.Duration
}

func (v *VMM) handleMigration(req control.Request, files []*os.File) control.Response {
	switch req.Op {
	case control.OpMigrateSend, control.OpSave, control.OpMigrateReceive, control.OpMigrateAttach:
		return v.handleStream(req, files)
	}
	v.mu.Lock()
	out, in := v.out, v.in
	v.mu.Unlock()
	if out == nil && in != nil && req.Op == control.OpMigrateStatus {
		st := in.status()
		return control.Response{Migration: &st}
	}
	if out == nil {
		return failed(fmt.Errorf("no migration in progress"))
	}
	if r, done := out.handleDecision(req); done {
		return r
	}
	st := out.status()
	return control.Response{Migration: &st}
}

// handleStream starts a send, a save or a receive, or attaches one more
// connection to the receive.
func (v *VMM) handleStream(req control.Request, files []*os.File) control.Response {
	fail := func(format string, args ...any) control.Response {
		for _, f := range files {
			f.Close()
		}
		return failed(fmt.Errorf(format, args...))
	}
	v.mu.Lock()
	out, in := v.out, v.in
	v.mu.Unlock()
	switch req.Op {
	case control.OpMigrateSend, control.OpSave:
		if out != nil && out.busy() {
			s := out.status()
			return fail("a migration (%s) is already in progress", s.ID)
		}
		if !v.isUp() {
			return fail("the machine is not running")
		}
		// A fenced domain does not move: see lease.go.
		if err := v.refuseFenced(req.Op); err != nil {
			return fail("%v", err)
		}
		if req.Op == control.OpSave {
			return v.startSave(req)
		}
		if len(files) < 1 || len(files) > pagexfer.MaxStreams {
			return fail("migrate-send needs 1 to %d connections, got %d", pagexfer.MaxStreams, len(files))
		}
		return v.startSend(req, files)
	case control.OpMigrateReceive:
		if v.opts.Mode != ModeIncoming || in != nil {
			return fail("this VMM is not waiting for an incoming migration")
		}
		if len(files) != 1 {
			return fail("migrate-receive needs exactly one connection, got %d", len(files))
		}
		return v.startReceive(req, files[0])
	}
	if len(files) != 1 {
		return fail("migrate-attach needs exactly one connection, got %d", len(files))
	}
	if in == nil {
		return fail("no incoming migration to attach a connection to")
	}
	return in.attach(req.Migration, files[0])
}

// handleDecision answers the agent's word on a running migration:
// status, cancel, abort, commit, resolve. done says r is the answer;
// otherwise the answer is the status.
func (o *outgoing) handleDecision(req control.Request) (r control.Response, done bool) {
	switch req.Op {
	case control.OpMigrateStatus:
		if st := o.status(); st.Phase == control.PhaseCompleted {
			return control.Response{Migration: &st, After: func() { o.tellOnce.Do(func() { close(o.told) }) }}, true
		}
	case control.OpMigrateCancel, control.OpMigrateAbort:
		reason := req.Reason
		if reason == "" {
			reason = "cancelled by the agent"
		}
		select {
		case o.decide <- control.Abort("%s", reason):
		default:
		}
		o.cancel()
	case control.OpMigrateCommit:
		if s := o.status(); s.Phase != control.PhaseVerified {
			return failed(fmt.Errorf("cannot commit migration %s in phase %s", s.ID, s.Phase)), true
		}
		select {
		case o.decide <- control.Commit():
		default:
			return failed(fmt.Errorf("a decision was made already")), true
		}
	case control.OpMigrateResolve:
		if s := o.status(); s.Phase != control.PhaseInDoubt {
			return failed(fmt.Errorf("migration %s is %s, not in doubt", s.ID, s.Phase)), true
		}
		select {
		case o.where <- req.OnTarget:
		default:
		}
	}
	return control.Response{}, false
}

// newOutgoing records a migration or save starting; op names it. It is
// refused while the domain is fenced, checked under the lock the fence
// takes to mark the lease expired: a fence either refuses it here or
// finds it in v.out and cancels it.
func (v *VMM) newOutgoing(op, id string, role control.Role, live bool) (*outgoing, context.Context, error) {
	ctx, cancel := context.WithCancel(context.Background())
	o := &outgoing{cancel: cancel, decide: make(chan control.Decision, 1), where: make(chan bool, 1), told: make(chan struct{})}
	o.phases = phases{role: role, log: v.log, st: control.MigrationStatus{ID: id, Phase: role.First(), Live: live}}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.refuseFencedLocked(op); err != nil {
		cancel()
		return nil, nil, err
	}
	v.out = o
	return o, ctx, nil
}

// sendOptions are the engine's options for a send or save request.
func (v *VMM) sendOptions(req control.Request) (SendOptions, error) {
	o := SendOptions{
		Live: req.Live, Config: req.Config, MaxDowntime: req.MaxDowntime, RateLimit: float64(req.RateLimit),
		Compress: req.Compress, ProgressTimeout: req.ProgressTimeout,
	}
	if req.Migration != "" {
		id, err := pagexfer.ParseID(req.Migration)
		if err != nil {
			return o, err
		}
		o.ID = id
	}
	v.mu.Lock()
	o.AlreadyPaused = v.state == control.StatePaused
	v.mu.Unlock()
	if o.AlreadyPaused {
		o.Live = false
	}
	return v.engine.CheckSend(o)
}

// startSend runs a migration to the target on the other end of files:
// one connection per stream, the first one also carrying the commit.
func (v *VMM) startSend(req control.Request, files []*os.File) control.Response {
	closeFiles := func() {
		for _, f := range files {
			f.Close()
		}
	}
	opts, err := v.sendOptions(req)
	if err != nil {
		closeFiles()
		return failed(err)
	}
	conns := make([]net.Conn, 0, len(files))
	for i, f := range files {
		c, err := net.FileConn(f)
		if err != nil {
			closeFiles()
			for _, c := range conns {
				c.Close()
			}
			return failed(fmt.Errorf("migration connection %d: %v", i, err))
		}
		conns = append(conns, c)
	}
	closeFiles()
	o, ctx, err := v.newOutgoing(req.Op, req.Migration, control.SourceVMM, opts.Live)
	if err != nil {
		for _, c := range conns {
			c.Close()
		}
		return failed(err)
	}
	o.st.Target = req.Target
	o.st.Streams, o.st.Compression = len(conns), opts.Compress
	s := &sending{v: v, o: o, ctx: ctx, conn: conns[0], opts: opts, target: req.Target}
	go s.run(conns, req.AutoCommit)
	st := o.status()
	return control.Response{Migration: &st}
}

// sending is one migration from this VMM: the engine sends the image,
// then the two-phase commit runs over the first connection.
type sending struct {
	v      *VMM
	o      *outgoing
	ctx    context.Context
	conn   net.Conn // the first stream: the commit follows the image on it
	opts   SendOptions
	target string
	sent   Sent
	// pausedAt is when the guest was paused for the stop-and-copy.
	pausedAt time.Time
	// handedOver: the agent decided the commit of a leased (pool) domain
	// without auto-commit, which it does only once the domain's ownership
	// is the target's: from then on this copy is never resumed here by
	// the VMM itself, whatever the target answers.
	handedOver bool
}

func (s *sending) run(conns []net.Conn, auto bool) {
	defer s.conn.Close()
	if err := s.image(conns); err != nil {
		// The engine resumed the source itself: a fence that came
		// meanwhile stops it again at once.
		s.v.holdFence()
		s.o.fail(failedOrCancelled(s.ctx), err)
		return
	}
	if err := s.verdict(); err != nil {
		_ = pagexfer.WriteAbort(s.conn, s.sent.ID, "source: "+err.Error())
		s.fail(failedOrCancelled(s.ctx), err)
		return
	}
	if d := s.decision(auto); !d.Commit {
		_ = pagexfer.WriteAbort(s.conn, s.sent.ID, d.Reason)
		s.fail(failedOrCancelled(s.ctx), fmt.Errorf("%s", d.Reason))
		return
	}
	if !auto {
		s.v.mu.Lock()
		s.handedOver = !s.v.lease.runUntil.IsZero()
		s.v.mu.Unlock()
	}
	s.commit()
}

// image has the engine send the guest's image over conns.
func (s *sending) image(conns []net.Conn) error {
	sent, err := s.v.engine.Send(s.ctx, conns, s.opts, func(p Progress) {
		s.o.move(p.Phase, p.Figures)
	})
	s.sent = sent
	// The commit exchange that follows sets its own bounds: the progress
	// deadline of the last page write must not linger on the connection.
	_ = s.conn.SetWriteDeadline(time.Time{})
	// The other streams end with the image: closing them after the last
	// write is an orderly end of stream for the target, and after a
	// failure it stops the target's readers.
	for _, c := range conns[1:] {
		c.Close()
	}
	s.o.update(sent.Figures)
	if err != nil {
		return err
	}
	s.pausedAt = time.Now().Add(-sent.Downtime)
	s.o.move(control.PhaseSent, func(st *control.MigrationStatus) { st.StopCopy = sent.Downtime })
	return nil
}

// verdict waits for the target to verify the image. The guest is paused
// until then: a target that stalls gets progress_timeout, then the guest
// resumes here.
func (s *sending) verdict() error {
	sentAt := time.Now()
	wait := verdictTimeout
	if p := s.opts.ProgressTimeout; p > 0 && p < wait {
		wait = p
	}
	s.conn.SetReadDeadline(time.Now().Add(wait))
	stop := context.AfterFunc(s.ctx, func() { s.conn.SetReadDeadline(time.Unix(1, 0)) })
	err := pagexfer.AwaitVerified(s.conn, pagexfer.Result{ID: s.sent.ID, Totals: s.sent.Totals})
	stop()
	if err != nil && s.ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("peer made no progress for %s (the target did not say verified; resumed here): %w", wait, err)
	}
	if err != nil {
		return err
	}
	s.o.move(control.PhaseVerified, func(st *control.MigrationStatus) { st.Verify = time.Since(sentAt) })
	return nil
}

// decision is the agent's: given up front (auto: commit unless it
// cancelled meanwhile; every millisecond here is downtime), or awaited.
// A commit is taken only while the domain's lease holds: the step to
// committing is made under v.mu, where the fence marks the lease
// expired, so a fence that came before it (or a run-until time passed
// whose timer has not fired yet) turns the commit into an abort.
func (s *sending) decision(auto bool) control.Decision {
	d := s.await(auto)
	if !d.Commit {
		return d
	}
	s.v.mu.Lock()
	defer s.v.mu.Unlock()
	if why := s.v.leaseLapsedLocked(); why != "" {
		return control.Abort("%s", why)
	}
	if !s.o.move(control.PhaseCommitting, nil) {
		return control.Abort("the migration cannot commit from phase %s", s.o.status().Phase)
	}
	return d
}

// await is the agent's decision, as it comes.
func (s *sending) await(auto bool) control.Decision {
	if auto {
		select {
		case d := <-s.o.decide:
			return d
		default:
			return control.Commit()
		}
	}
	s.v.mu.Lock()
	leased := !s.v.lease.runUntil.IsZero()
	s.v.mu.Unlock()
	if leased {
		// A pool domain's agent may have handed its ownership to the
		// target already: resuming the guest here on a timeout could
		// make a second writer. It waits for the agent's word, bounded
		// by the lease: a fence (no renewal came) aborts it and keeps
		// the guest stopped.
		return <-s.o.decide
	}
	select {
	case d := <-s.o.decide:
		return d
	case <-time.After(decisionTimeout):
		return control.Abort("no decision from the agent within %s", decisionTimeout)
	}
}

// commit hands the guest to the target and ends this VMM once the
// target runs it; decision took the step to committing.
func (s *sending) commit() {
	s.conn.SetDeadline(time.Now().Add(resumedTimeout))
	committedAt := time.Now()
	if err := pagexfer.WriteCommit(s.conn, s.sent.ID); err == nil {
		err = pagexfer.AwaitResumed(s.conn, s.sent.ID)
		var re *pagexfer.RemoteError
		switch {
		case err == nil:
			s.o.update(func(st *control.MigrationStatus) { st.Resume = time.Since(committedAt) })
			s.migrated()
			return
		case errors.As(err, &re) && !s.handedOver:
			// The target destroyed its copy: the guest is ours again.
			s.fail(control.PhaseFailed, err)
			return
		case errors.As(err, &re):
			// A pool domain whose ownership went to the target before the
			// commit: refused there, it is not this copy's to run again.
			// It stays paused; the agent settles it (the target does not
			// run it: this copy is destroyed, and the pool restarts the
			// domain).
			s.o.move(control.PhaseInDoubt, func(st *control.MigrationStatus) {
				st.Error = "the target refused the commit (" + err.Error() + "); the ownership was handed over, so this copy stays paused for the agent to settle"
			})
			s.settleHandedOver()
			return
		}
	}
	// In doubt: the target may or may not run the guest. Stay paused
	// until the agent finds out from the target's agent.
	s.o.move(control.PhaseInDoubt, func(st *control.MigrationStatus) {
		st.Error = "the target's answer to commit was lost; asking its agent"
	})
	if s.handedOver {
		s.settleHandedOver()
		return
	}
	if <-s.o.where {
		s.migrated()
		return
	}
	s.fail(control.PhaseFailed, fmt.Errorf("the target did not take the domain; resumed here"))
}

// settleHandedOver waits, in doubt, for the agent's word on a handed-over
// pool domain's commit: on the target it ends this VMM as migrated; not
// there, the migration fails and the guest stays paused (never resumed
// here: the agent destroys this copy).
func (s *sending) settleHandedOver() {
	if <-s.o.where {
		s.migrated()
		return
	}
	s.o.fail(control.PhaseFailed, fmt.Errorf("the target did not take the domain, whose ownership was handed over to it: this copy stays paused (not resumed) until it is destroyed"))
}

// fail resumes the guest here (unless it was paused before) and ends the
// migration in phase.
func (s *sending) fail(phase control.Phase, err error) {
	s.v.giveBack(s.opts.AlreadyPaused)
	s.o.fail(phase, err)
}

// migrated ends this VMM after the target resumed the guest.
func (s *sending) migrated() {
	s.o.move(control.PhaseCompleted, func(st *control.MigrationStatus) {
		st.Error = ""
		st.Downtime = time.Since(s.pausedAt)
	})
	// Stay until the agent has the final figures: once this VMM is gone
	// it cannot ask. The guest runs on the target already.
	select {
	case <-s.o.told:
	case <-time.After(finalTimeout):
	}
	s.v.setState(control.StateStopping)
	s.v.end(control.Exit{Reason: control.ExitMigrated, Detail: s.target})
}

// startSave writes a save image to req.Path and ends the VMM.
func (v *VMM) startSave(req control.Request) control.Response {
	opts, err := v.sendOptions(req)
	if err != nil {
		return failed(err)
	}
	opts.Live = false
	f, err := os.OpenFile(req.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return control.Response{Error: "save image: " + err.Error()}
	}
	o, ctx, err := v.newOutgoing(req.Op, req.Migration, control.SaveVMM, false)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return failed(err)
	}
	go v.save(ctx, o, f, opts)
	st := o.status()
	return control.Response{Migration: &st}
}

// save has the engine write the image to f, and ends the VMM once it is
// on disk.
func (v *VMM) save(ctx context.Context, o *outgoing, f *os.File, opts SendOptions) {
	sent, err := v.engine.Save(ctx, f, opts, func(p Progress) { o.move(p.Phase, p.Figures) })
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	o.update(sent.Figures)
	if err == nil {
		// A save image of a guest whose lease ran out is not kept: the
		// pool may have given the domain to another host already.
		if why := v.leaseLapsed(); why != "" {
			err = fmt.Errorf("save abandoned: %s", why)
		}
	}
	if err != nil {
		os.Remove(f.Name())
		v.giveBack(opts.AlreadyPaused)
		o.move(control.PhaseFailed, func(st *control.MigrationStatus) { st.Error = err.Error() })
		return
	}
	o.move(control.PhaseCompleted, nil)
	v.setState(control.StateStopping)
	v.end(control.Exit{Reason: control.ExitSaved, Detail: f.Name()})
}
