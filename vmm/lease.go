package vmm

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Fencing: the VMM side of a pool's HA (issue 15, points 3 and 4).
//
// The agent of a pool keeps its own lease deadline in etcd and gives the
// VMM of each HA domain a run-until time short of it (control.OpLease,
// on CLOCK_BOOTTIME, which every process of the host shares and which
// counts a suspend of the host: see control.Monotonic), with the
// domain's generation: the revision of its owner key. The VMM keeps the
// deadline itself, on a timer of its own: when the run-until time passes
// without a renewal, it pauses the guest through the engine (QMP stop for
// QEMU, which also drains the block layer: no disk write follows; the
// workload engines stop their vCPUs) and records why (StateFenced, the
// time, what it did). An engine whose pause does not return within
// fenceWithin is killed (Engine.Kill: SIGKILL for QEMU), and the VMM
// ends with control.ExitFenced: writes stop whatever the engine does.
// None of it needs the agent: a dead (kill -9), hung or stopped
// (SIGSTOP) agent cannot keep a guest running past its time.
//
// Only a VMM that is ending is not fenced: destroyed, migrated or saved
// (its guest gone or going), or whose machine has ended by itself. Once
// Serve ends the VMM (for any reason, a signal too) the lease is
// finished: its timer stops and no fence starts, so the engine's clean
// stop (QMP quit and its grace) is not turned into a kill. A
// guest asked to power off (shutdown: the ACPI button) runs until it
// has, and may ignore the button: one still running at its run-until
// time is fenced as any other (paused, or killed), and a renewal gives
// it back to powering off.
//
// A later lease whose run-until time is in the future resumes a guest
// the VMM fenced, bounded (the engine's own bound on resume: QEMU's QMP
// command timeout) and logged; never one the operator paused (that one
// stays paused, but may not be resumed while the lease is expired
// either). A lease without a run-until time (zero) ends the fencing of a
// guest that is not fenced; a fenced one needs a future time, or destroy.
// A lease already past fences at once. A lower generation than the one
// the VMM has is refused: its sender is no longer the domain's owner.
//
// Migration and save of a fenced domain are refused, and a fence that
// comes during an outgoing migration or save cancels it (an abort, as
// long as the commit was not sent): the domain's owner could not renew
// its lease, so the pool may already have given the domain to another
// host, and a copy of it moving elsewhere, or a save image restored
// later, would be a second writer. The fence signals the abort before
// it pauses the guest, and the source's step to committing checks the
// lease (expired, or its run-until time passed before the timer fired)
// under the lock the fence marks it expired under: a commit goes out
// only while the lease held. A migration or save starts under that lock
// too, so a fence either refuses it or finds it and cancels it; a save
// whose lease lapsed before its image was complete removes the image.
// On the target, an incoming VMM whose lease has lapsed says failed
// instead of verified, and refuses a commit (ResumeFailed: the source
// resumes its copy, fenced or not by its own lease), and never starts
// the guest. After the cancel the guest stays
// stopped: the runtime does not give it back (ResumeSource) while fenced,
// but owes it that until the next renewal. The qemu engine resumes a
// guest whose live send failed by itself (QEMU's own cancel path); the
// runtime pauses it again as soon as the send returns, so such a guest
// may run for the few milliseconds of one QMP round trip past its time:
// the pool's fencing margin must cover that, as it covers fenceWithin.
//
// A lease can also come with the start (Options.RunUntil, ovs-vmm
// --run-until): the timer runs from before the boot, and a VMM whose
// lease has run out already does not start. A run-until time that passes
// while the engine boots (or while an incoming machine is built) fences
// the guest as soon as the machine is up; for QEMU that is the moment
// its launch returns, so the guest may run for the rest of the launch
// (well under a second) past its time. A request that holds the lease's
// lock (an operator's pause or resume, a renewal's resume) delays a due
// fence by as long as the engine takes to answer it, at most QEMU's QMP
// command timeout, after which QEMU is killed anyway.
//
// The run-until time is on CLOCK_BOOTTIME, which counts a suspend of
// the host (suspend to RAM, a virtual host paused by its hypervisor);
// Go's timers do not, so the timer wakes at least every leaseRecheck
// (250 ms) and reads the clock again: a host that wakes past the
// run-until time fences within that.
//
// What software fencing here cannot cover: a host whose VMM is stopped
// too (SIGSTOP of the VMM, or the whole host frozen or suspended) keeps
// its guest's state as it was, vCPUs included, until it continues; if
// it continues after the run-until time the timer fires within
// leaseRecheck, but QEMU's own threads run until then. A host whose
// clock runs slow relative to the pool's (drift) shifts the deadline by
// the drift: the margin must be well above it.

// fenceWithin bounds the wait for the engine's pause when a lease runs
// out; past it the engine is killed. A variable for the tests.
var fenceWithin = 2 * time.Second

// leaseRecheck is the longest the lease's timer sleeps before it reads
// CLOCK_BOOTTIME again: Go's timers run on CLOCK_MONOTONIC, which stops
// while the host is suspended, so a timer set for the run-until time
// would fire late by the length of a suspend. Checking at least this
// often, a host that wakes past the run-until time fences within it.
const leaseRecheck = 250 * time.Millisecond

// lease is the domain's lease as this VMM keeps it, under VMM.mu.
type lease struct {
	generation int64
	runUntil   control.Monotonic
	timer      *time.Timer
	// expired: the run-until time passed and no renewal came since.
	expired bool
	at      time.Time // when it expired
	detail  string    // what the fence did
	killed  bool      // the fence killed the engine
	// owed: a migration or save that failed while fenced did not give
	// the guest back (ResumeSource); the renewal does.
	owed bool
	// finished: Serve is ending the VMM; the lease fences nothing any
	// more (its timer is stopped), so that a clean end (QMP quit and its
	// grace) is not turned into a kill.
	finished bool
}

// arm sets the lease's timer for its run-until time (none for zero);
// the caller holds v.mu.
func (v *VMM) arm() {
	if v.lease.timer != nil {
		v.lease.timer.Stop()
		v.lease.timer = nil
	}
	if v.lease.runUntil.IsZero() || v.lease.finished {
		return
	}
	v.lease.timer = time.AfterFunc(min(max(v.lease.runUntil.Until(), 0), leaseRecheck), v.leaseDue)
}

// leaseDue runs on the lease's timer: it fences the guest if the
// run-until time has passed, and otherwise sets the timer again (for the
// time left, at most leaseRecheck).
func (v *VMM) leaseDue() {
	v.leaseMu.Lock()
	defer v.leaseMu.Unlock()
	v.mu.Lock()
	ru, expired, finished := v.lease.runUntil, v.lease.expired, v.lease.finished
	if !ru.IsZero() && !expired && ru.Until() > 0 {
		v.arm()
	}
	v.mu.Unlock()
	if ru.IsZero() || expired || finished || ru.Until() > 0 {
		return
	}
	v.fence()
}

// finishLease ends the lease's part as Serve ends the VMM: the timer
// stops, and no fence starts after this (one under way goes on).
func (v *VMM) finishLease() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ending, v.lease.finished = true, true
	if v.lease.timer != nil {
		v.lease.timer.Stop()
		v.lease.timer = nil
	}
}

// fence stops the guest because its run-until time passed; the caller
// holds v.leaseMu.
func (v *VMM) fence() {
	v.mu.Lock()
	if v.lease.expired || v.lease.finished {
		v.mu.Unlock()
		return
	}
	// Info says fenced from here on: with a detail, until the final one.
	v.lease.expired, v.lease.at = true, time.Now()
	v.lease.detail = "the lease's run-until time passed: the guest is being stopped"
	state, up, out := v.state, v.up, v.out
	gen, ru := v.lease.generation, v.lease.runUntil
	// The migration's phase is read under v.mu, the lock under which a
	// send takes the step to committing (sending.decision): either the
	// commit was sent while the lease held, or it will not be.
	var phase control.Phase
	if out != nil {
		phase = out.status().Phase
	}
	v.mu.Unlock()
	log := v.log.With(zap.Int64("generation", gen), zap.Duration("overdue", -ru.Until()))
	// An outgoing migration or save is stopped first, before the guest
	// (whose pause may take up to fenceWithin): a verdict or a decision
	// that comes meanwhile must find the abort.
	var cancelled string
	if out != nil && !phase.Finished() {
		cancelled = v.cancelOutgoing(out, phase)
	}
	var detail string
	switch gone := v.gone(); {
	case gone != "":
		detail = gone
	case !up:
		detail = "no machine yet: it stays stopped as it comes"
	case state == control.StatePaused:
		detail = "paused by the operator already; it may not resume until a lease in the future comes"
	}
	if detail != "" {
		detail += cancelled
		v.mu.Lock()
		v.lease.detail = detail
		v.mu.Unlock()
	} else {
		detail = v.stopGuest(log, true, cancelled)
	}
	log.Warn("lease run-until time passed: guest fenced", zap.String("detail", detail))
}

// cancelOutgoing stops the outgoing migration or save out, in phase, as
// the lease runs out, and says what became of it (for the fence's
// detail). Before the commit it is aborted and cancelled; once the
// commit was sent nothing can call it back: the target may run the
// guest, and this copy stays paused until the commit's answer, or the
// target's agent, says where it runs.
func (v *VMM) cancelOutgoing(out *outgoing, phase control.Phase) string {
	what := "outgoing migration"
	if out.role == control.SaveVMM {
		what = "save"
	}
	switch phase {
	case control.PhaseCommitting:
		return "; its " + what + " had sent the commit already and goes on (the target may run the guest; this copy stays paused)"
	case control.PhaseInDoubt:
		return "; its " + what + " is in doubt (the commit was sent): this copy stays paused until the target's agent says where the guest runs"
	}
	select {
	case out.decide <- control.Abort("the domain's lease ran out (fenced)"):
	default:
	}
	out.cancel()
	return "; its " + what + " was cancelled"
}

// stopGuest pauses the engine within fenceWithin, or kills it, and
// moves the VMM to fenced; it says what it did, suffix appended. When
// record, that is the fence's detail, set with the step to fenced so
// that Info never shows the one without the other (a fence held again
// keeps the first fence's); a kill's is always set, as the exit's. The
// caller holds v.leaseMu.
func (v *VMM) stopGuest(log *zap.Logger, record bool, suffix string) string {
	paused := make(chan error, 1)
	go func() { paused <- v.engine.Pause() }()
	var why string
	select {
	case err := <-paused:
		if err == nil {
			detail := "guest paused"
			v.mu.Lock()
			if v.poweringOff {
				detail = "guest paused (it had been asked to power off and had not)"
			}
			detail += suffix
			if record {
				v.lease.detail = detail
			}
			v.stepLocked(control.StateFenced)
			v.mu.Unlock()
			return detail
		}
		why = "the engine's pause failed: " + err.Error()
	case <-time.After(fenceWithin):
		why = fmt.Sprintf("the engine did not pause within %v", fenceWithin)
	}
	log.Error("fence: killing the engine", zap.String("why", why))
	detail := why + "; the engine was killed"
	// The exit's detail is set before the kill: the engine's end may
	// reach Serve first (fenceExit).
	v.mu.Lock()
	v.lease.killed, v.lease.detail = true, detail+suffix
	v.mu.Unlock()
	v.moveState(control.StateStopping)
	if err := v.engine.Kill(); err != nil {
		detail += " (" + err.Error() + ")"
		log.Error("fence: kill failed", zap.Error(err))
	}
	detail += suffix
	v.end(control.Exit{Reason: control.ExitFenced, Detail: detail, Code: 3})
	return detail
}

// holdFence keeps a fenced guest stopped after something may have let it
// run (an engine whose failed send resumed it, a machine that started
// after the fence): it pauses it again.
func (v *VMM) holdFence() {
	v.leaseMu.Lock()
	defer v.leaseMu.Unlock()
	v.mu.Lock()
	expired, state, up := v.lease.expired, v.state, v.up
	v.mu.Unlock()
	if !expired || !up || state == control.StatePaused || v.gone() != "" {
		return
	}
	v.stopGuest(v.log.With(zap.String("fence", "held")), false, "")
}

// gone says why nothing of the VMM's machine runs any more, or is about
// to (the VMM ends: destroy, migrated, saved; or the machine ended by
// itself), and "" while it may run: then a fence stops it. A guest
// asked to power off that has not yet is not gone.
func (v *VMM) gone() string {
	v.mu.Lock()
	ending, out := v.ending, v.out
	v.mu.Unlock()
	select {
	case <-v.engine.Done():
		return "the machine had ended already"
	default:
	}
	if ending {
		return "the VMM was ending already"
	}
	if out != nil && out.status().Phase == control.PhaseCompleted {
		return "the guest had left already (migrated or saved)"
	}
	return ""
}

// giveBack returns the guest to this host after a migration or save that
// did not complete: ResumeSource, unless it was paused before, or the
// lease ran out meanwhile (then the renewal owes it). A run-until time
// that has passed before the lease's timer fired fences the guest here.
func (v *VMM) giveBack(alreadyPaused bool) {
	if alreadyPaused {
		return
	}
	v.leaseMu.Lock()
	v.mu.Lock()
	lapsed := v.leaseLapsedLocked() != "" && !v.lease.expired
	v.mu.Unlock()
	if lapsed {
		v.fence()
	}
	v.mu.Lock()
	expired := v.lease.expired
	if expired {
		v.lease.owed = true
	}
	v.mu.Unlock()
	v.leaseMu.Unlock()
	if !expired {
		_ = v.engine.ResumeSource()
	}
	v.holdFence()
}

// handleLease takes an OpLease.
func (v *VMM) handleLease(req control.Request) control.Response {
	v.leaseMu.Lock()
	defer v.leaseMu.Unlock()
	v.mu.Lock()
	cur, expired, state, killed := v.lease.generation, v.lease.expired, v.state, v.lease.killed
	v.mu.Unlock()
	if req.Generation < cur {
		return failed(fmt.Errorf("%w: generation %d refused, this VMM runs the domain under generation %d (a newer owner holds it)",
			control.ErrStaleGeneration, req.Generation, cur))
	}
	future := !req.RunUntil.IsZero() && req.RunUntil.Until() > 0
	if killed {
		return failed(fmt.Errorf("lease refused: the lease ran out and the engine was killed; the VMM is ending"))
	}
	if expired && !future {
		what := "none"
		if !req.RunUntil.IsZero() {
			what = fmt.Sprintf("%v ago", -req.RunUntil.Until().Round(time.Millisecond))
		}
		return failed(fmt.Errorf("%w (the lease's run-until time: %s)", control.ErrFenceNeedsFuture, what))
	}
	v.mu.Lock()
	if req.Generation != cur {
		v.log.Info("domain generation", zap.Int64("from", cur), zap.Int64("to", req.Generation))
	}
	v.lease.generation, v.lease.runUntil = req.Generation, req.RunUntil
	v.arm()
	v.mu.Unlock()
	switch {
	case !req.RunUntil.IsZero() && !future:
		v.fence() // already past
	case expired:
		if err := v.lift(state); err != nil {
			return failed(err)
		}
	}
	return control.Response{Info: v.info()}
}

// lift ends the fence after a renewal with a future run-until time: a
// guest the VMM fenced resumes (given back to the source, when a
// migration's failure owes it that); one the operator paused stays
// paused (and keeps what is owed for the operator's resume). The caller
// holds v.leaseMu.
func (v *VMM) lift(state control.State) error {
	v.mu.Lock()
	owed := v.lease.owed
	v.mu.Unlock()
	if state == control.StateFenced {
		start := time.Now()
		resume := v.engine.Resume
		if owed {
			resume = v.engine.ResumeSource
		}
		if err := resume(); err != nil {
			v.log.Error("lease renewed, but the fenced guest did not resume", zap.Error(err))
			return fmt.Errorf("lease taken, but the fenced guest did not resume: %w", err)
		}
		// A guest asked to power off before the fence goes on doing so.
		v.mu.Lock()
		if v.poweringOff {
			v.stepLocked(control.StateStopping)
		} else {
			v.stepLocked(control.StateRunning)
		}
		v.mu.Unlock()
		v.log.Info("lease renewed: fenced guest resumed", zap.Duration("took", time.Since(start)))
		v.mu.Lock()
		v.lease.owed = false
		v.mu.Unlock()
	} else {
		// The operator's pause: the give-back a migration's failure
		// owes stays owed until the operator resumes the guest.
		v.log.Info("lease renewed: the guest stays as it is", zap.String("state", string(state)))
	}
	v.mu.Lock()
	v.lease.expired, v.lease.detail, v.lease.at = false, "", time.Time{}
	v.mu.Unlock()
	return nil
}

// resumeEngine resumes the guest at the operator's word: given back to
// this host (ResumeSource) when a migration's failure while it was
// fenced owes it that, resumed otherwise. The caller holds v.leaseMu.
func (v *VMM) resumeEngine() error {
	v.mu.Lock()
	owed := v.lease.owed
	v.mu.Unlock()
	if !owed {
		return v.engine.Resume()
	}
	if err := v.engine.ResumeSource(); err != nil {
		return err
	}
	v.mu.Lock()
	v.lease.owed = false
	v.mu.Unlock()
	return nil
}

// leaseInfo fills Info's lease fields; the caller holds v.mu.
func (v *VMM) leaseInfo(info *control.Info) {
	l := &v.lease
	info.Generation, info.RunUntil = l.generation, l.runUntil
	if !l.runUntil.IsZero() {
		info.RunUntilRemaining = l.runUntil.Until()
	}
	if l.expired {
		info.Fenced, info.FencedAt, info.FenceDetail = true, l.at.UTC(), l.detail
	}
	if v.state == control.StateFenced {
		info.PausedFor = control.PausedForFence
	}
}

// refuseFenced refuses op while the lease is expired.
func (v *VMM) refuseFenced(op string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.refuseFencedLocked(op)
}

// refuseFencedLocked is refuseFenced with v.mu held.
func (v *VMM) refuseFencedLocked(op string) error {
	if !v.lease.expired {
		return nil
	}
	return fmt.Errorf("%w: %s refused (the lease ran out at %s); a lease whose run-until time is in the future resumes it, or destroy it",
		control.ErrFenced, op, v.lease.at.UTC().Format(time.RFC3339Nano))
}

// leaseLapsedLocked says how the domain's lease has run out: fenced, or
// its run-until time passed before the lease's timer fired (the timer
// runs late, or the host slept); "" while it holds. A guest whose lease
// has lapsed may not move: no commit, no verified image, no save. The
// caller holds v.mu.
func (v *VMM) leaseLapsedLocked() string {
	if v.lease.expired {
		return "the domain's lease ran out (fenced)"
	}
	if ru := v.lease.runUntil; !ru.IsZero() && ru.Until() <= 0 {
		return fmt.Sprintf("the domain's lease ran out %v ago", -ru.Until().Round(time.Millisecond))
	}
	return ""
}

// leaseLapsed is leaseLapsedLocked, taking v.mu.
func (v *VMM) leaseLapsed() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.leaseLapsedLocked()
}
