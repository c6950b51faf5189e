package domains

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/vmmproc"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// recover re-attaches to d's VMM after an agent restart; one that cannot
// be found again is recorded as ended while the agent was away.
func (m *Manager) recover(d *domain) {
	d.mu.Lock()
	if !d.rec.State.live() {
		d.mu.Unlock()
		return
	}
	d.gen++
	gen := d.gen
	d.exited = make(chan struct{})
	h := m.handle(d)
	d.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	v, err := m.vmms.Recover(ctx, h)
	var info *control.Info
	if err == nil {
		if info, err = v.Inspect(ctx); err != nil {
			v.Release()
		}
	}
	if err != nil {
		m.lostWhileAway(d, gen, h, err.Error())
		return
	}
	m.noteRepositories(d)
	incoming := m.reattach(d, v, info)
	go m.watch(d, gen, v)
	if incoming {
		go m.WatchIncoming(d.rec.Name)
	}
	m.settleOutgoing(d)
	m.log.Info("re-attached to running domain", zap.String("domain", d.rec.Name), zap.Int("vmm_pid", info.PID))
}

// handle is what finds d's VMM again; the caller holds d.mu.
func (m *Manager) handle(d *domain) vmmproc.Handle {
	return vmmproc.Handle{UUID: d.rec.UUID, Dir: d.dir, Socket: m.socketPath(d), PID: d.rec.PID, Started: d.rec.Started}
}

// reattach takes the VMM found again, in the state it reports; it says
// whether the VMM still waits for an incoming migration.
func (m *Manager) reattach(d *domain, v VMM, info *control.Info) (incoming bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.vmm = v
	d.rec.PID = info.PID
	d.rec.Started = info.Started
	// The VMM's lease is the truth: its generation (never lower than the
	// one persisted, unless the VMM predates the lease) and run-until.
	d.rec.Generation = max(d.rec.Generation, info.Generation)
	d.runUntil = info.RunUntil
	switch info.State {
	case control.StateIncoming:
		m.setState(d, Starting, "incoming migration from "+d.rec.IncomingFrom+" (re-attached after agent restart)")
		return true
	case control.StatePaused:
		m.setState(d, Paused, "re-attached after agent restart")
	case control.StateFenced:
		// Paused by its VMM as its lease ran out: a lease from its pool
		// resumes it (see SetLease), domain.unpause does not.
		m.setState(d, Paused, fencedReason+" (re-attached after agent restart)")
	default:
		// An incoming migration that committed while the agent was away
		// is over.
		d.rec.Incoming = false
		m.setState(d, Running, "re-attached after agent restart")
	}
	return false
}

// lostWhileAway records the end of a VMM that could not be found again,
// from the exit record it left if any.
func (m *Manager) lostWhileAway(d *domain, gen int, h vmmproc.Handle, why string) {
	m.log.Warn("VMM not found again", zap.String("domain", d.rec.Name), zap.String("why", why))
	ex := m.vmms.Exited(h)
	d.mu.Lock()
	if ex.Reason != control.ExitVanished {
		d.expect = "the VMM ended while the agent was away: " + exitText(ex)
	} else {
		d.expect = fmt.Sprintf("the VMM (pid %d) ended while the agent was away (%s)", h.PID, why)
	}
	d.mu.Unlock()
	m.vmmGone(d, gen, ex)
}

// settleOutgoing handles a migration the VMM was sending when the agent
// went away: one that has not committed is aborted (the domain stays here,
// the target discards its copy); a committing one finishes on its own; an
// in-doubt one is left to the resolver the caller installs (Resolve).
func (m *Manager) settleOutgoing(d *domain) {
	resp, err := m.ctlCall(d, control.Request{Op: control.OpMigrateStatus}, 3*time.Second)
	if err != nil || resp.Migration == nil {
		return
	}
	st := resp.Migration
	switch st.Phase {
	case control.PhaseVerified:
		if d.rec.Generation > 0 {
			// A pool domain's agent may have handed its ownership to the
			// target before it restarted: the pool settles it once the
			// agent has joined again (KeepOwner, then abort; or destroy),
			// the guest paused until then.
			m.log.Warn("a pool domain's migration waits for its commit decision after the agent restart; the pool settles it once the agent has joined",
				zap.String("domain", d.rec.Name), zap.String("migration", st.ID))
			return
		}
		m.log.Warn("aborting the migration the agent was running before its restart", zap.String("domain", d.rec.Name), zap.String("migration", st.ID), zap.String("phase", string(st.Phase)))
		_, _ = m.ctlCall(d, control.Request{Op: control.OpMigrateAbort, Reason: "the source agent restarted before the commit"}, 5*time.Second)
	case control.PhaseSetup, control.PhasePrecopy, control.PhaseStopCopy, control.PhaseSent:
		m.log.Warn("aborting the migration the agent was running before its restart", zap.String("domain", d.rec.Name), zap.String("migration", st.ID), zap.String("phase", string(st.Phase)))
		_, _ = m.ctlCall(d, control.Request{Op: control.OpMigrateAbort, Reason: "the source agent restarted before the commit"}, 5*time.Second)
	case control.PhaseInDoubt:
		m.log.Warn("a migration is in doubt after the agent restart; the domain stays paused until the target says where it runs", zap.String("domain", d.rec.Name), zap.String("target", st.Target))
		d.mu.Lock()
		d.inDoubt = st.Target
		d.mu.Unlock()
	}
}

// InDoubt lists the domains whose outgoing migration was found in doubt
// when the agent started, with their targets.
func (m *Manager) InDoubt() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for n, d := range m.doms {
		d.mu.Lock()
		if d.inDoubt != "" {
			out[n] = d.inDoubt
		}
		d.mu.Unlock()
	}
	return out
}
