package migration

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// How the sending side asks the target's agent again about a commit whose
// answer was lost: every askEvery, up to lostTries times for a migration
// whose source VMM was lost, inDoubtTries times (an hour) for one the
// registry found in doubt at start; an offline one every askOfflineEvery,
// offlineTries times (an hour). Every wait ends with the agent's lifetime.
var (
	askEvery        = 5 * time.Second
	lostTries       = 12
	inDoubtTries    = 720
	askOfflineEvery = 10 * time.Second
	offlineTries    = 360
	goneEvery       = 10 * time.Millisecond
)

// errStopping ends a retry when the agent stops.
var errStopping = errors.New("the agent is stopping")

// awaitGone waits, for a bounded time, until the registry has forgotten
// name after its VMM ended as migrated.
func (l *Local) awaitGone(ctx context.Context, name string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := l.Domains.Info(name); domains.KindOf(err) == domains.NotFound {
			return
		}
		if !sleep(ctx, goneEvery) {
			return
		}
	}
}

// resolve settles an in-doubt commit by asking the target's agent whether
// the domain runs there. A pool domain whose ownership was handed over
// (handed) is never resumed here, even when the target does not run it:
// the target member owns it, and gives its owner key up once it knows
// its incoming guest does not run; the pool restarts it from there. Its
// copy here is destroyed.
func (l *Local) resolve(ctx context.Context, name string, offer relocation.Offer, addr string, o Options, handed bool) {
	on, known := l.onTarget(ctx, offer, addr, o)
	if !known {
		return // ask again on the next poll; the guest stays paused meanwhile
	}
	if handed && !on {
		l.log().Error("pool domain handed over to the target, which does not run it: its copy here is destroyed, not resumed (the target member owns it)", zap.String("domain", name), zap.String("target", addr))
		_ = l.Domains.Destroy(name)
		return
	}
	_, _ = l.Domains.Call(name, control.Request{Op: control.OpMigrateResolve, OnTarget: on}, 5*time.Second)
}

// onTarget asks the target's agent whether the domain runs there; known is
// false when it cannot tell yet (no answer, or the domain still starting).
func (l *Local) onTarget(ctx context.Context, offer relocation.Offer, addr string, o Options) (on, known bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
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
func (l *Local) settleLost(ctx context.Context, offer relocation.Offer, addr string, o Options) (bool, error) {
	for range lostTries {
		if on, known := l.onTarget(ctx, offer, addr, o); known {
			return on, nil
		}
		if !sleep(ctx, askEvery) {
			return false, fmt.Errorf("lost the source VMM during its stop-and-copy or commit, and %w before the target's agent at %s said whether the domain runs there", errStopping, addr)
		}
	}
	return false, fmt.Errorf("lost the source VMM during its stop-and-copy or commit, and the target's agent at %s did not say within %s whether the domain runs there", addr, time.Duration(lostTries)*askEvery)
}

// ResolveInDoubt settles, in the background, the migrations the domain
// registry found in doubt at start: each domain stays paused until its
// target's agent says whether it runs there, asked again until the answer
// comes, an hour passes or ctx (the agent's lifetime) ends.
func (l *Local) ResolveInDoubt(ctx context.Context) {
	for name, tgt := range l.Domains.InDoubt() {
		go l.resolveInDoubt(ctx, name, tgt)
	}
}

func (l *Local) resolveInDoubt(ctx context.Context, name, tgt string) {
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return
	}
	// A pool domain's ownership may have gone to the target before the
	// restart (this agent does not know): it is not resumed here, and if
	// the target does not run it either, what this agent still owns of it
	// is given up (MoveEnded) for the pool to restart it.
	in, _ := l.Domains.Info(name)
	pooled := in.Generation > 0
	for range inDoubtTries {
		resp, err := l.Domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
		if err != nil || resp.Migration == nil || resp.Migration.Phase != control.PhaseInDoubt {
			return
		}
		l.resolve(ctx, name, offer, tgt, Options{}, pooled)
		if pooled && l.Pool != nil && !l.inDoubt(name) {
			_, err := l.Domains.Info(name)
			l.Pool.MoveEnded(name, domains.KindOf(err) == domains.NotFound)
			return
		}
		if !sleep(ctx, askEvery) {
			return
		}
	}
}

// inDoubt says whether name's VMM still says its migration is in doubt.
func (l *Local) inDoubt(name string) bool {
	resp, err := l.Domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 5*time.Second)
	return err == nil && resp.Migration != nil && resp.Migration.Phase == control.PhaseInDoubt
}

// targetState asks the target's agent for the domain's state there.
func (l *Local) targetState(ctx context.Context, addr string, o Options, offer relocation.Offer) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, wl, err := l.dial(ctx, addr, o, l.hello(relocation.OpStatus, "", o, offer))
	if err != nil {
		return "", err
	}
	if c != nil {
		c.Close()
	}
	if !wl.OK {
		return "", errors.New(wl.Error)
	}
	return wl.State, nil
}

// ResolveOfflineInDoubt settles the offline migrations an agent restart
// cut short: a domain the target has is let go of here (the data it had to
// copy kept renamed, disks on repositories it shares left alone); one it
// has not is stopped again. Unreachable targets are asked again for an
// hour, or until ctx (the agent's lifetime) ends.
func (l *Local) ResolveOfflineInDoubt(ctx context.Context) {
	for name, addr := range l.Domains.OfflineInDoubt() {
		go l.resolveOfflineInDoubt(ctx, name, addr)
	}
}

func (l *Local) resolveOfflineInDoubt(ctx context.Context, name, addr string) {
	offer, err := l.Domains.Offer(name)
	if err != nil {
		return
	}
	for range offlineTries {
		if l.settleOffline(ctx, name, addr, offer) || !sleep(ctx, askOfflineEvery) {
			return
		}
	}
}

// settleOffline asks the target about an in-doubt offline migration and
// settles it; false means the target could not be asked.
func (l *Local) settleOffline(ctx context.Context, name, addr string, offer relocation.Offer) bool {
	state, err := l.targetState(ctx, addr, Options{}, offer)
	if err != nil {
		return false
	}
	if state == "" {
		l.Domains.EndOffline(name, "offline migration to "+addr+" was cut short by an agent restart; the target does not have it")
		return true
	}
	// Which disks were copied depends on what the target shares.
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, wl, err := l.dial(ctx, addr, Options{}, l.offlineHello(relocation.OpCheck, "", Options{}, offer, nil))
	if c != nil {
		c.Close()
	}
	if err != nil {
		return false
	}
	files, _ := copyPlan(offer, wl.Repositories)
	_, _ = l.Domains.FinishOffline(name, movedAway(offer, files), false)
	return true
}
