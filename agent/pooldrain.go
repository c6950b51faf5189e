package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Draining (issue 15, point 5): a member in maintenance, or whose agent
// stops with [pool] drain_on_stop, migrates its running pool domains live
// to other members, one at a time, HA ones first, each where
// poolmaster.Away places it; the ownership goes with each migration
// (poolmove.go). What cannot move (no member with room, every migration
// failed) stays here and is said so; a stopping agent then leaves its
// lease to etcd as before (its guests fenced at its end unless the agent
// is back within the TTL), and one that moved everything leaves the pool,
// revoking its lease, so that nothing waits for the TTL.

// What a drain is for (drain's why).
const (
	drainMaintenance = "maintenance"
	drainStopping    = "agent stopping"
)

// drainRetry is how often a member in maintenance looks again for a
// place for the domains it could not migrate away (a member may have
// joined or freed memory).
const drainRetry = 10 * time.Second

// poolRelocationAddress is the host:port peers migrate to this agent at
// ("" without a plain relocation listener).
func poolRelocationAddress(cfg *config.Config, host string) string {
	return peerAddress(cfg.Relocation.Server, cfg.Relocation.Address, cfg.Relocation.Port, host)
}

// drain migrates the running pool domains m owns away until none that
// can move is left, or ctx ends; it returns what stayed, each with why.
// One drain runs at a time.
func (p *poolDomains) drain(ctx context.Context, m *pool.Member, why string) []string {
	select {
	case p.drainSem <- struct{}{}:
	case <-ctx.Done():
		return []string{"another drain held the drain's time"}
	}
	defer func() { <-p.drainSem }()
	exclude := map[string][]string{}
	var left []string
	for ctx.Err() == nil {
		if why == drainMaintenance && p.a.pool.leaving.Load() {
			return nil // the agent stops: its own drain takes over
		}
		c, cancel := context.WithTimeout(ctx, opTimeout(m))
		moves, err := poolmaster.Away(c, m, exclude)
		cancel()
		if err != nil {
			p.log.Warn("drain: cannot read the pool; trying again", zap.String("for", why), zap.Error(err))
			if !sleepCtx(ctx, time.Second) {
				break
			}
			continue
		}
		moved := false
		left = left[:0]
		for _, mv := range moves {
			if ctx.Err() != nil || why == drainMaintenance && p.a.pool.leaving.Load() {
				break
			}
			in, err := p.a.domains.Info(mv.Name)
			if err != nil || !hasVMM(in.State) || !strings.EqualFold(in.UUID, mv.UUID) {
				continue // not running here: the pool settles it
			}
			if mv.To == "" {
				left = append(left, mv.Name+": "+mv.Why)
				continue
			}
			p.log.Info("drain: migrating a pool domain away", zap.String("for", why), zap.String("domain", mv.Name), zap.String("to", mv.To), zap.Bool("ha", mv.HA))
			if err := p.migrateTo(ctx, mv); err != nil {
				p.log.Warn("drain: migration failed; placing it again without that member", zap.String("domain", mv.Name), zap.String("to", mv.To), zap.Error(err))
				exclude[mv.UUID] = append(exclude[mv.UUID], mv.To)
				left = append(left, fmt.Sprintf("%s: the migration to %s failed (%v)", mv.Name, mv.To, err))
				moved = true // placed again in the next round, elsewhere
				continue
			}
			moved = true
		}
		if !moved {
			break
		}
	}
	if ctx.Err() != nil && p.ownsAny() {
		left = append(left, "the drain's time ran out")
	}
	return left
}

// migrateTo migrates one domain live to mv.To and waits for the end; ctx
// ending cancels it (a cancel after its commit decision changes nothing).
func (p *poolDomains) migrateTo(ctx context.Context, mv poolmaster.Move) error {
	if mv.ToRec.Relocation == "" {
		return fmt.Errorf("%s has no relocation listener", mv.To)
	}
	o := migration.Options{Live: true}
	if err := p.a.withPeerCredentials(&o); err != nil {
		return err
	}
	id, err := p.a.migrations.Start(mv.Name, mv.ToRec.Relocation, o)
	if err != nil {
		return err
	}
	cancelled := false
	for {
		st, err := p.a.migrations.Status(id)
		if err != nil {
			return err
		}
		switch st.Phase {
		case control.PhaseCompleted:
			p.log.Info("drain: pool domain migrated", zap.String("domain", mv.Name), zap.String("to", mv.To), zap.Float64("seconds", st.TotalSeconds))
			return nil
		case control.PhaseFailed, control.PhaseCancelled:
			return fmt.Errorf("%s: %s", st.Phase, st.Error)
		}
		select {
		case <-ctx.Done():
			if !cancelled {
				_, _ = p.a.migrations.Cancel(id)
				cancelled = true
			}
			time.Sleep(100 * time.Millisecond)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchMaintenance drains this member while it is in maintenance, looking
// again every drainRetry for what could not move, until ctx ends (the
// membership ends). Out of maintenance it only watches the key.
func (l *poolLink) watchMaintenance(ctx context.Context, m *pool.Member) {
	key := poolmaster.MaintenanceKey(m.Pool(), m.Host())
	for ctx.Err() == nil {
		c, cancel := context.WithTimeout(ctx, opTimeout(m))
		in, rev, err := poolmaster.InMaintenance(c, m, m.Host())
		cancel()
		if err != nil {
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		var (
			wait context.Context
			stop context.CancelFunc
		)
		if in {
			if l.domains.ownsAny() {
				if left := l.domains.drain(ctx, m, drainMaintenance); len(left) > 0 {
					l.log.Warn("in maintenance, but pool domains could not migrate away; trying again", zap.Strings("left", left), zap.Duration("in", drainRetry))
				}
			}
			wait, stop = context.WithTimeout(ctx, drainRetry)
		} else {
			wait, stop = context.WithCancel(ctx) // until the key changes
		}
		wch := m.Client().Watch(clientv3.WithRequireLeader(wait), key, clientv3.WithRev(rev+1))
		select {
		case <-wch:
		case <-wait.Done():
		}
		stop()
	}
}

// evacuate is a stopping agent's drain ([pool] drain_on_stop): marked
// leaving in its member record (no new placements), it migrates its pool
// domains away within drain_timeout, before the API closes. It returns
// once none is left or the time is up.
func (a *Agent) evacuate() {
	l := a.pool
	if l == nil {
		return
	}
	pc := a.state.Load().cfg.Pool
	// No new placements, nor incoming pool domains, from here on.
	l.leaving.Store(true)
	m, _, _, _ := l.current()
	if m == nil {
		return
	}
	c, cancel := context.WithTimeout(a.lifetime, opTimeout(m))
	if err := m.SetInfo(c, l.info()); err != nil {
		l.log.Warn("stopping: member record not marked leaving", zap.Error(err))
	}
	cancel()
	if !pc.DrainOnStop || !l.domains.ownsAny() {
		return
	}
	notify(a.log, fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (pc.DrainTimeout+time.Minute).Microseconds()), "STATUS=migrating pool domains away")
	l.log.Info("stopping: migrating the pool domains away", zap.Strings("domains", l.domains.ownedNames()), zap.Duration("timeout", pc.DrainTimeout))
	ctx, cancel := context.WithTimeout(a.lifetime, pc.DrainTimeout)
	defer cancel()
	start := time.Now()
	left := l.domains.drain(ctx, m, drainStopping)
	if l.domains.holdsAny() {
		l.log.Warn("stopping: pool domains left here (they run on; the lease is left to etcd: fenced at its end unless the agent is back within its TTL)",
			zap.Strings("domains", l.domains.ownedNames()), zap.Strings("why", left), zap.Duration("after", time.Since(start)))
		return
	}
	l.log.Info("stopping: every pool domain migrated away; leaving the pool", zap.Duration("after", time.Since(start)))
}
