package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/migration"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// The live migration of a pool domain, this agent's part (migration.Pool
// has the order of the steps): as the source it hands the domain's owner
// key to the target member just before the commit, as the target it runs
// the incoming VMM under its own lease and takes the domain up once the
// guest runs here. The rule on the source: once the hand-over may have
// happened the guest is never resumed here unless KeepOwner has settled
// that it did not (the key rewritten here at a new generation, so that no
// late hand-over can move it); until then the domain gets no renewal, so
// its VMM fences it at its run-until time whatever this agent does.

var _ migration.Pool = (*poolDomains)(nil)

// handing is a pool domain being handed over: its ownership before the
// hand-over and the target's lease.
type handing struct {
	ownedDomain
	to clientv3.LeaseID
}

// Outgoing is the PoolMove of name's offer (nil: not a pool domain): a
// pool domain leaves only as this agent's, running here under its lease.
func (p *poolDomains) Outgoing(name string) (*relocation.PoolMove, error) {
	in, err := p.a.domains.Info(name)
	if err != nil {
		return nil, nil // the migration says what is wrong
	}
	id := strings.ToLower(in.UUID)
	p.mu.Lock()
	o, owned := p.owned[id]
	_, moving := p.handing[id]
	m := p.member
	p.mu.Unlock()
	switch {
	case moving:
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain whose ownership is being handed over to a migration's target already", name)
	case !owned && in.Generation > 0:
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain (generation %d) this agent does not own: it cannot leave from here", name, in.Generation)
	case !owned:
		return nil, nil
	case m == nil:
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain and this agent's pool lease is not held just now: it moves once the lease is renewed or taken up", name)
	}
	return &relocation.PoolMove{Pool: m.Pool(), Owner: m.Host(), Generation: o.generation}, nil
}

// HandOver moves name's owner key to the target member (migration.Pool).
// From the first call the domain is out of the owned set: no renewal
// reaches its VMM until KeepOwner says it stayed here.
func (p *poolDomains) HandOver(name string, to *relocation.PoolMember) (bool, error) {
	in, err := p.a.domains.Info(name)
	if err != nil {
		return false, err
	}
	id := strings.ToLower(in.UUID)
	p.mu.Lock()
	m := p.member
	h, ok := p.handing[id]
	if !ok {
		o, owned := p.owned[id]
		if !owned {
			p.mu.Unlock()
			return false, fmt.Errorf("pool domain %s is no longer owned here (the lease it ran under was lost)", name)
		}
		h = handing{ownedDomain: o, to: clientv3.LeaseID(to.Lease)}
		p.handing[id] = h
		delete(p.owned, id)
	}
	p.mu.Unlock()
	if m == nil {
		return false, errors.New("this agent's pool lease is not held just now")
	}
	ctx, cancel := context.WithTimeout(p.a.lifetime, opTimeout(m))
	defer cancel()
	gen, err := m.HandOver(ctx, h.key, h.generation, to.Host, h.to)
	if err == nil {
		p.mu.Lock()
		delete(p.handing, id)
		p.mu.Unlock()
		// Nothing may start it here again.
		_ = p.a.domains.DropLease(name)
		p.log.Info("pool domain handed over to a migration's target", zap.String("domain", name), zap.String("uuid", h.key),
			zap.String("to", to.Host), zap.Int64("generation", h.generation), zap.Int64("new_generation", gen))
		p.a.pool.refreshInfo()
		return true, nil
	}
	if !errors.Is(err, pool.ErrNotHandedOver) {
		p.log.Warn("pool domain hand-over: outcome unknown; settling it", zap.String("domain", name), zap.Error(err))
	}
	return p.keep(ctx, m, name, id, h, err)
}

// keep settles a hand-over that failed or whose outcome is unknown:
// kept (the domain owned here again at a new generation, its VMM given
// it), handed (it happened after all), or an error (still unknown).
func (p *poolDomains) keep(ctx context.Context, m *pool.Member, name, id string, h handing, why error) (bool, error) {
	kept, gen, err := m.KeepOwner(ctx, h.key, h.generation, h.to)
	if errors.Is(err, pool.ErrNotOwner) {
		p.mu.Lock()
		delete(p.handing, id)
		p.mu.Unlock()
		_ = p.a.domains.DropLease(name)
		return false, fmt.Errorf("%w: %v; settling the hand-over: %v", migration.ErrOwnershipLost, why, err)
	}
	if err != nil {
		return false, fmt.Errorf("%v; and settling it: %w", why, err)
	}
	p.mu.Lock()
	delete(p.handing, id)
	if kept && p.member == m {
		p.owned[id] = ownedDomain{name: h.name, key: h.key, generation: gen}
	}
	p.mu.Unlock()
	if !kept {
		_ = p.a.domains.DropLease(name)
		p.log.Info("pool domain hand-over happened after all", zap.String("domain", name), zap.Int64("generation", gen))
		return true, nil
	}
	p.log.Warn("pool domain kept here: its ownership was not handed over", zap.String("domain", name), zap.Int64("generation", gen), zap.NamedError("why", why))
	if ru := m.RunUntil(); time.Now().Before(ru) {
		if err := p.a.domains.SetLease(name, control.MonotonicOf(ru), gen); err != nil {
			p.log.Warn("pool domain kept: lease not handed to its VMM (the next renewal tries again)", zap.String("domain", name), zap.Error(err))
		}
	}
	return false, nil
}

// MoveEnded settles what an ended outgoing migration of pool domain name
// leaves (migration.Pool). Committed: the target owns and runs it. Not:
// a hand-over whose outcome is unknown is settled now (settleLater).
func (p *poolDomains) MoveEnded(name string, committed bool) {
	var id string
	if in, err := p.a.domains.Info(name); err == nil {
		id = strings.ToLower(in.UUID)
	}
	p.mu.Lock()
	var (
		h       handing
		pending bool
	)
	for u, x := range p.handing {
		if u == id || x.name == name {
			id, h, pending = u, x, true
		}
	}
	m := p.member
	p.mu.Unlock()
	if committed {
		p.mu.Lock()
		delete(p.handing, id)
		p.mu.Unlock()
		p.a.pool.refreshInfo()
		return
	}
	if pending && m != nil {
		p.settleLater(m, name, id, h, errors.New("the migration ended without its commit"))
	}
}

// settleLater settles, in the background, a hand-over of domain name
// (entry h of p.handing) whose outcome is unknown, asked again every
// second until it is known or m's lease is lost (the key goes with it, or
// the next join settles it): kept, the domain is owned here again, its
// VMM given the new generation and its migration, if it still waits for
// the decision, aborted (the guest resumes); handed over, or no longer
// this agent's at all, its copy here is destroyed.
func (p *poolDomains) settleLater(m *pool.Member, name, id string, h handing, why error) {
	go func() {
		for {
			select {
			case <-m.Lost():
				return
			case <-p.a.lifetime.Done():
				return
			default:
			}
			ctx, cancel := context.WithTimeout(p.a.lifetime, opTimeout(m))
			handed, err := p.keep(ctx, m, name, id, h, why)
			cancel()
			switch {
			case errors.Is(err, migration.ErrOwnershipLost):
				p.destroy(p.a.lifetime, m, h.key, name, h.generation, "its ownership was lost while it was being handed over")
				return
			case err == nil && handed:
				p.destroy(p.a.lifetime, m, h.key, name, h.generation, "its ownership went to the migration's target")
				return
			case err == nil:
				p.abortUndecided(name, "its ownership stayed here")
				return
			}
			p.log.Warn("pool domain hand-over still unsettled; asking again", zap.String("domain", name), zap.Error(err))
			if !p.retryWait(m) {
				return
			}
		}
	}()
}

// retryWait waits a second before a settling step is asked again; false
// when the agent stops or m's lease is lost meanwhile.
func (p *poolDomains) retryWait(m *pool.Member) bool {
	select {
	case <-p.a.lifetime.Done():
		return false
	case <-m.Lost():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// abortUndecided aborts name's outgoing migration if its VMM still waits
// for the commit decision (a pool domain's does not decide by itself).
func (p *poolDomains) abortUndecided(name, why string) {
	resp, err := p.a.domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 3*time.Second)
	if err != nil || resp.Migration == nil || resp.Migration.Phase != control.PhaseVerified {
		return
	}
	_, err = p.a.domains.Call(name, control.Request{Op: control.OpMigrateAbort, Reason: why}, 5*time.Second)
	p.log.Warn("aborted an undecided migration of a pool domain; the guest stays here", zap.String("domain", name), zap.String("why", why), zap.Error(err))
}

// Admit says who takes pool domain o here (migration.Pool): this agent,
// as a member of o's pool holding its lease, with the run-until time its
// incoming VMM starts with.
func (p *poolDomains) Admit(o relocation.Offer) (*relocation.PoolMember, control.Monotonic, error) {
	if p.a.pool.leaving.Load() || p.a.lifetime.Err() != nil {
		return nil, 0, fmt.Errorf("%s belongs to pool %s, and this agent is stopping: it takes no pool domain now", o.Name, o.Pool.Pool)
	}
	m, err := p.current()
	if err != nil {
		return nil, 0, fmt.Errorf("%s belongs to pool %s: %v", o.Name, o.Pool.Pool, err)
	}
	if m.Pool() != o.Pool.Pool {
		return nil, 0, fmt.Errorf("%s belongs to pool %s; this agent is a member of pool %s", o.Name, o.Pool.Pool, m.Pool())
	}
	if o.Pool.Owner == m.Host() {
		return nil, 0, fmt.Errorf("%s is owned by %s, which is this agent: it cannot migrate to itself", o.Name, m.Host())
	}
	return &relocation.PoolMember{Host: m.Host(), Lease: int64(m.Lease())}, control.MonotonicOf(m.RunUntil()), nil
}

// Receiving renews the incoming VMM of pool domain o with this agent's
// lease until Arrived (migration.Pool).
func (p *poolDomains) Receiving(name string, o relocation.Offer) {
	p.mu.Lock()
	p.incoming[strings.ToLower(o.UUID)] = ownedDomain{name: name, key: o.UUID, generation: o.Pool.Generation}
	m := p.member
	p.mu.Unlock()
	if m == nil {
		return // the hand-over finds no incoming record, and fails
	}
	// The source's hand-over holds only while this record exists
	// (Arrived removes it before it decides).
	ctx, cancel := context.WithTimeout(p.a.lifetime, opTimeout(m))
	defer cancel()
	if err := m.ExpectIncoming(ctx, o.UUID); err != nil {
		p.log.Warn("incoming pool domain: its incoming record not written; the source's hand-over will fail and it keeps the guest", zap.String("domain", name), zap.Error(err))
	}
}

// Arrived takes an incoming pool domain up once its migration ended here
// (migration.Pool). First its incoming record goes (EndIncoming): from
// then on no hand-over to this agent can land, so what the owner key says
// next is final. Running, it is owned here at the generation of its owner
// key, which the source handed to this agent's lease before the commit;
// not running, a key the source handed over is released (the source does
// not resume a guest it handed over), for the pool to start the domain
// again. One that runs without the key is destroyed. It asks again until
// it has settled or the lease is lost (the next join settles it then).
func (p *poolDomains) Arrived(name string, o relocation.Offer, st domains.State) {
	id := strings.ToLower(o.UUID)
	running := st == domains.Running || st == domains.Paused
	ended := false
	forget := func() {
		p.mu.Lock()
		delete(p.incoming, id)
		p.mu.Unlock()
	}
	for {
		p.mu.Lock()
		m := p.member
		p.mu.Unlock()
		if m == nil {
			return
		}
		ctx, cancel := context.WithTimeout(p.a.lifetime, opTimeout(m))
		var err error
		if !ended {
			if err = m.EndIncoming(ctx, o.UUID); err == nil {
				ended = true
			}
		}
		var (
			lease clientv3.LeaseID
			gen   int64
		)
		if err == nil {
			lease, gen, err = m.OwnerLease(ctx, o.UUID)
		}
		mine := err == nil && lease == m.Lease()
		switch {
		case err != nil:
		case running && mine:
			p.mu.Lock()
			delete(p.incoming, id)
			p.owned[id] = ownedDomain{name: name, key: o.UUID, generation: gen}
			p.mu.Unlock()
			if serr := p.a.domains.SetLease(name, control.MonotonicOf(m.RunUntil()), gen); serr != nil {
				p.log.Warn("pool domain arrived: its new generation not handed to its VMM yet (the next renewal does)", zap.String("domain", name), zap.Error(serr))
			}
			p.log.Info("pool domain arrived by migration: owned here", zap.String("domain", name), zap.String("uuid", o.UUID), zap.String("from", o.Pool.Owner), zap.Int64("generation", gen))
			p.a.pool.refreshInfo()
		case running:
			forget()
			p.destroy(p.a.lifetime, m, o.UUID, name, o.Pool.Generation, "it arrived by migration but its owner key was not handed to this agent")
		case mine:
			if err = m.ReleaseOwner(ctx, o.UUID); err == nil {
				forget()
				p.log.Warn("pool domain handed over by a migration that did not run here: owner key released for the pool to start it", zap.String("domain", name), zap.String("uuid", o.UUID), zap.Int64("generation", gen))
			}
		default:
			forget()
		}
		cancel()
		if err == nil {
			return
		}
		p.log.Warn("incoming pool domain not settled yet; asking again", zap.String("domain", name), zap.Error(err))
		if !p.retryWait(m) {
			return
		}
	}
}
