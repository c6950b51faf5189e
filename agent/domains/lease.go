package domains

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// leaseTimeout bounds one lease call to a VMM: a renewal that cannot
// reach the VMM in time is an error for the pool (the VMM fences by
// itself when its run-until time passes).
const leaseTimeout = 2 * time.Second

// SetLease gives domain name the lease of its owner in a pool with HA
// (issue 15): its VMM runs the guest until runUntil (CLOCK_BOOTTIME,
// see control.Monotonic; zero: no fencing) and fences it by itself past
// that time, and generation is the owner's (the revision of the owner
// key), which never decreases: a lower one than the domain's is refused
// (BadState), here and by the VMM. The generation is persisted in
// domain.json. A domain without a VMM keeps the lease for its next
// start: its VMM then starts with it (the timer running from before the
// boot), so that a pool domain never runs without one. The run-until time
// is kept in memory only: a stopped domain with a generation (a pool's)
// that has no run-until time (none given since the agent started, or a
// zero one) is not started (BadState): its pool starts it, with a lease.
//
// SetLease does not wait for the domain's other operations (a renewal
// is urgent): a lease that arrives while a VMM is starting is recorded,
// and handed to that VMM as soon as it answers, tried again until the
// VMM takes it; one that cannot be delivered before its run-until time
// (or within the start timeout, for a lease without one) ends that VMM,
// and the start fails saying so (leaseSince). The leases of one domain
// are handed over one at a time (d.leaseMu), in the order they come, and
// what is recorded never goes back to an older generation.
func (m *Manager) SetLease(name string, runUntil control.Monotonic, generation int64) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	if generation < 0 {
		return errorf(Invalid, "lease of %s: generation %d is negative", name, generation)
	}
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	d.mu.Lock()
	if generation < d.rec.Generation {
		cur := d.rec.Generation
		d.mu.Unlock()
		return errorf(BadState, "lease of %s: %v: generation %d refused, the domain is at generation %d (a newer owner holds it)",
			name, control.ErrStaleGeneration, generation, cur)
	}
	v := d.vmm
	if v == nil {
		m.takeLease(d, runUntil, generation)
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	info, err := v.SetLease(ctx, runUntil, generation)
	if err != nil {
		var ve *control.ErrVMM
		if errors.As(err, &ve) && (strings.HasPrefix(ve.Msg, control.ErrStaleGeneration.Error()) || strings.HasPrefix(ve.Msg, control.ErrFenceNeedsFuture.Error())) {
			return errorf(BadState, "lease of %s: %s", name, ve.Msg)
		}
		return errorf(Failed, "lease of %s: %v", name, err)
	}
	d.mu.Lock()
	m.takeLease(d, runUntil, generation)
	d.mu.Unlock()
	m.followFence(d, info)
	if info.Fenced {
		m.log.Warn("domain fenced", zap.String("domain", name), zap.Int64("generation", info.Generation), zap.String("detail", info.FenceDetail))
	}
	return nil
}

// DropLease forgets the run-until time of name's lease, keeping its
// generation: from here no start, reboot or restore of it runs until a new
// lease comes (a pool domain with a generation and no run-until time does
// not start). The pool code calls it before it gives the domain's owner
// key up, so that nothing already waiting to start it can run it after.
// A running VMM keeps the run-until time it has and fences by itself.
func (m *Manager) DropLease(name string) error {
	d, err := m.get(name)
	if err != nil {
		return err
	}
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	d.mu.Lock()
	d.runUntil, d.droppedGen = 0, d.rec.Generation
	d.mu.Unlock()
	return nil
}

// takeLease records a lease taken; the caller holds d.mu. A lease of a
// generation older than the one recorded changes nothing: neither the
// generation nor the run-until time go back to an older owner's.
func (m *Manager) takeLease(d *domain, runUntil control.Monotonic, generation int64) {
	if generation < d.rec.Generation {
		m.log.Warn("an older generation's lease is not recorded", zap.String("domain", d.rec.Name),
			zap.Int64("generation", generation), zap.Int64("recorded", d.rec.Generation))
		return
	}
	if generation <= d.droppedGen {
		m.log.Info("a lease of a generation given up is not recorded", zap.String("domain", d.rec.Name),
			zap.Int64("generation", generation))
		return
	}
	d.runUntil = runUntil
	if generation == d.rec.Generation {
		return
	}
	m.log.Info("domain generation", zap.String("domain", d.rec.Name), zap.Int64("from", d.rec.Generation), zap.Int64("to", generation))
	d.rec.Generation = generation
	if err := d.persist(); err != nil {
		m.log.Error("persist domain generation", zap.String("domain", d.rec.Name), zap.Error(err))
	}
}

// fencedReason starts the reason of a domain recorded paused because its
// VMM had fenced it (found so on re-attach).
const fencedReason = "fenced: its lease ran out"

// followFence takes what the VMM says (v) of a domain recorded paused
// because its VMM had fenced it: once the VMM runs the guest again (a
// lease renewed it, given through SetLease or straight to the VMM), the
// domain is running. It says whether it moved the domain so, and why.
func (m *Manager) followFence(d *domain, v *control.Info) (reason string, moved bool) {
	if v == nil || v.State != control.StateRunning || v.Fenced {
		return "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rec.State != Paused || !strings.HasPrefix(d.rec.Reason, fencedReason) {
		return "", false
	}
	reason = "its lease was renewed"
	m.setState(d, Running, reason)
	return reason, true
}
