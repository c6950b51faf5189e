package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// Adopting: a domain that runs here outside the pool becomes a pool
// domain without stopping (poolmaster's Runner.Adopt, which an Oracle VM
// Agent 3 manager's configure_vm_ha asks for): the master writes its spec
// from this host's vm.cfg of it and asks this agent (pool.adopt_local) to
// take its owner key under the lease and give its VMM the lease, as a
// start here would, the guest running on.

var errNotHere = errors.New("no such domain runs here")

// adoptLocal takes the owner key of pool domain uuid, which runs here
// with exactly the spec's vm.cfg and has never run in the pool, and hands
// its VMM the lease. One owned here already answers the same.
func (p *poolDomains) adoptLocal(ctx context.Context, uuid string) (*startResult, error) {
	p.ops.Lock()
	defer p.ops.Unlock()
	m, spec, specRev, err := p.specOf(ctx, uuid)
	if err != nil {
		return nil, err
	}
	id := strings.ToLower(uuid)
	var in domains.Info
	found := false
	for _, d := range p.a.domains.List(false) {
		if strings.EqualFold(d.UUID, spec.UUID) && d.Name == spec.Name {
			in, found = d, true
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%w: domain %s (%s) is not registered on %s", errNotHere, spec.Name, uuid, m.Host())
	}
	res := &startResult{Name: in.Name, UUID: uuid, Host: m.Host()}
	p.mu.Lock()
	o, owned := p.owned[id]
	p.mu.Unlock()
	if owned {
		// Adopted already (an adopt asked again): only if its VMM holds
		// the lease; one whose lease did not reach it gets it now.
		if cur, err := p.a.domains.Info(in.Name); err == nil && cur.Live && cur.Generation == o.generation && cur.RunUntilSeconds > 0 {
			res.Generation = o.generation
			return res, nil
		}
		ru := m.RunUntil()
		if !time.Now().Before(ru) {
			return nil, fmt.Errorf("%w: its lease was not renewed in time", errNotMember)
		}
		if err := p.a.domains.SetLease(in.Name, control.MonotonicOf(ru), o.generation); err != nil {
			return nil, fmt.Errorf("domain %s is held as the pool's here but its VMM does not have the lease: %w", in.Name, err)
		}
		res.Generation = o.generation
		return res, nil
	}
	if spec.Adopting == nil || spec.Adopting.Host != m.Host() {
		return nil, fmt.Errorf("%w: the pool's spec of %s is not being adopted on %s", errSpecMismatch, spec.Name, m.Host())
	}
	switch {
	case in.State != string(domains.Running) && in.State != string(domains.Paused):
		return nil, fmt.Errorf("%w: domain %s is %s on %s: only a running (or paused) domain is adopted (a stopped one is started by the pool)", errNotHere, in.Name, in.State, m.Host())
	case in.Generation > 0:
		return nil, fmt.Errorf("%w: domain %s ran in the pool before (generation %d); it is not adopted again", errLocalClash, in.Name, in.Generation)
	}
	for _, st := range p.a.migrations.List() {
		if st.Domain == in.Name && !st.Phase.Finished() {
			return nil, fmt.Errorf("%w: domain %s is migrating (%s, to %s): it is adopted where it runs once that has ended", errNotHere, in.Name, st.ID, st.Target)
		}
	}
	data, err := boundedfile.ReadFile(in.ConfigFile, vmcfg.MaxFileSize, boundedfile.NoFollow)
	if err != nil || string(data) != spec.Config {
		why := "it differs"
		if err != nil {
			why = err.Error()
		}
		return nil, fmt.Errorf("%w: the vm.cfg domain %s runs with here is not the spec's (%s)", errSpecMismatch, in.Name, why)
	}
	gen, err := p.acquire(ctx, m, uuid, specRev)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.owned[id] = ownedDomain{name: in.Name, key: uuid, generation: gen}
	p.mu.Unlock()
	fail := func(err error) (*startResult, error) {
		rctx, cancel := context.WithTimeout(context.Background(), opTimeout(m))
		defer cancel()
		if rerr := m.ReleaseOwner(rctx, uuid); rerr != nil {
			// The key stays bound to this lease: the domain stays owned
			// here, so that every renewal hands its VMM the lease (and
			// a join under a new lease destroys it), never unfenced
			// while the pool may start it elsewhere.
			p.log.Warn("a domain not adopted keeps its owner key (its release failed): it is held as owned", zap.String("domain", in.Name), zap.Error(rerr))
			return nil, fmt.Errorf("%w (its owner key could not be let go: %v; it is held here as the pool's)", err, rerr)
		}
		p.mu.Lock()
		delete(p.owned, id)
		p.mu.Unlock()
		// the guest runs on as before: outside the pool, with no lease
		_ = p.a.domains.DropLease(in.Name)
		return nil, err
	}
	ru := m.RunUntil()
	if !time.Now().Before(ru) {
		return fail(fmt.Errorf("%w: its lease was not renewed in time", errNotMember))
	}
	if err := p.a.domains.SetLease(in.Name, control.MonotonicOf(ru), gen); err != nil {
		// an answer lost: the VMM may hold the lease (its generation says)
		if cur, ierr := p.a.domains.Info(in.Name); ierr != nil || cur.Generation != gen {
			return fail(err)
		}
		p.log.Warn("the lease reached the adopted domain's VMM though its answer did not", zap.String("domain", in.Name), zap.Error(err))
	}
	// It still runs (a stop that came meanwhile is not adopted as running).
	if cur, err := p.a.domains.Info(in.Name); err != nil || !hasVMM(cur.State) {
		return fail(fmt.Errorf("%w: domain %s stopped while it was being adopted", errNotHere, in.Name))
	}
	p.log.Info("domain adopted into the pool", zap.String("domain", in.Name), zap.String("uuid", uuid), zap.Int64("generation", gen))
	p.a.pool.refreshInfo()
	res.Generation = gen
	return res, nil
}

// stopOwned stops a pool domain this agent owns for a local caller (an
// Oracle VM Agent 3 manager's stop_vm): the pool is told first that it is
// to stay stopped (so that its owner key given up is no HA restart), then
// it is stopped here and its key released.
func (a *Agent) stopOwned(ctx context.Context, name string, destroy bool, timeout time.Duration) error {
	in, _, owned, ok := a.pool.domains.localOwned(name)
	if !ok || !owned {
		return fmt.Errorf("%w: %s is not a pool domain this agent owns", errNotHere, name)
	}
	if err := a.callOwn(ctx, "pool.stop_domain", in.UUID); err != nil {
		return err
	}
	if _, err := a.pool.domains.stopLocal(ctx, in.UUID, destroy, timeout); err != nil {
		return err
	}
	// Until the pool records it stopped (the master's own stop of it has
	// ended then), so that what the caller does next (delete_vm) finds
	// it settled.
	m, _, err := a.poolMember()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, stopSettleTimeout)
	defer cancel()
	for {
		ds, err := poolmaster.Domains(wctx, m)
		if err == nil {
			settled := true
			for _, d := range ds {
				if strings.EqualFold(d.UUID, in.UUID) {
					settled = d.State == poolmaster.StateStopped && d.Host == ""
				}
			}
			if settled {
				return nil
			}
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("%w: %s is stopped here, but the pool has not recorded it stopped within %s; pool.domains shows it", errNotHere, name, stopSettleTimeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stopSettleTimeout bounds stopOwned's wait for the pool's record.
const stopSettleTimeout = 90 * time.Second
