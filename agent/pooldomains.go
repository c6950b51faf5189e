package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

// poolDomains is the agent's side of running pool domains (issue 15,
// layer 2): the domains this agent owns under its current lease, their
// leases handed to their VMMs at every renewal, and what happens to them
// when the lease lapses or ends. It acts on the registry only through
// domains.Manager's methods and on etcd only through pool.Member.
//
// The rules: a pool domain runs here only while its owner key is bound
// to this agent's lease; its VMM gets the member's RunUntil at every
// renewal and fences the guest by itself when that passes. A lease that
// lapses by this agent's reckoning hands out nothing more (the guests
// stay fenced); when the agent joins again under the same lease (etcd
// held it meanwhile) the owner keys are read back and the guests resume;
// under a new lease every pool domain that still runs here is destroyed,
// since it may run elsewhere now.
type poolDomains struct {
	a   *Agent
	log *zap.Logger

	// ops makes start_local, stop_local, a join's reconciliation and a
	// loss one at a time. Renewals do not take it.
	ops sync.Mutex
	// drainSem makes drains (maintenance, stopping) one at a time; a
	// drain waits for it only as long as its context allows.
	drainSem chan struct{}

	mu sync.Mutex
	// member is the lease the owned set is under: nil from a loss until
	// the next join has been reconciled, and renewals then hand out
	// nothing.
	member   *pool.Member
	owned    map[string]ownedDomain // by UUID in lower case
	deadline time.Time              // of the last renewal
	kick     chan struct{}
	// orphans are domains owned under the lease but not in the registry
	// (its record lost while its VMM may run on): released once such a
	// VMM has fenced itself, at the time given (lower-case UUIDs).
	orphans map[string]time.Time
	// handing are owned domains whose ownership a migration hands over
	// (poolmove.go): out of owned, renewed no more; incoming are pool
	// domains arriving by migration, renewed under this lease until they
	// are owned here (lower-case UUIDs).
	handing  map[string]handing
	incoming map[string]ownedDomain
}

type ownedDomain struct {
	name       string
	key        string // the UUID as the pool's keys spell it
	generation int64
}

func newPoolDomains(a *Agent, log *zap.Logger) *poolDomains {
	return &poolDomains{a: a, log: log, owned: map[string]ownedDomain{}, kick: make(chan struct{}, 1), orphans: map[string]time.Time{},
		handing: map[string]handing{}, incoming: map[string]ownedDomain{}, drainSem: make(chan struct{}, 1)}
}

// renewed is the Member's OnRenew: it must not block, so the leases go
// out from run.
func (p *poolDomains) renewed(deadline time.Time) {
	p.mu.Lock()
	p.deadline = deadline
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run hands each renewal's RunUntil to the owned domains' VMMs until ctx
// ends.
func (p *poolDomains) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		p.mu.Lock()
		m, dl := p.member, p.deadline
		set := p.ownedList()
		for u, o := range p.incoming {
			set = append(set, ownedEntry{u, o})
		}
		p.mu.Unlock()
		if m == nil || len(set) == 0 {
			continue
		}
		runUntil := dl.Add(-m.FencingMargin())
		if !time.Now().Before(runUntil) {
			// A renewal acknowledged too late to help (the agent was
			// stopped meanwhile): nothing to extend.
			continue
		}
		p.lease(set, runUntil, "renewal")
	}
}

// ownedEntry is one owned domain with its UUID; the caller holds p.mu.
type ownedEntry struct {
	uuid string
	ownedDomain
}

func (p *poolDomains) ownedList() []ownedEntry {
	out := make([]ownedEntry, 0, len(p.owned))
	for u, o := range p.owned {
		out = append(out, ownedEntry{u, o})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// lease hands runUntil to the VMMs of set, each on its own (one hung VMM
// does not hold the others' renewals back).
func (p *poolDomains) lease(set []ownedEntry, runUntil time.Time, why string) {
	mono := control.MonotonicOf(runUntil)
	var wg sync.WaitGroup
	for _, o := range set {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.a.domains.SetLease(o.name, mono, o.generation); err != nil {
				p.log.Warn("pool domain lease not handed to its VMM (it fences itself at its last run-until time)",
					zap.String("domain", o.name), zap.String("uuid", o.uuid), zap.Int64("generation", o.generation), zap.String("for", why), zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// ownedNames lists the owned domains' names, for host.info.
func (p *poolDomains) ownedNames() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []string{}
	for _, o := range p.ownedList() {
		out = append(out, o.name)
	}
	return out
}

// ownsAny says whether the agent owns a domain, or may (a lapsed lease
// whose domains are not settled yet).
func (p *poolDomains) ownsAny() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.owned) > 0
}

// holdsAny says whether anything of a pool domain here depends on the
// lease: owned, being handed over, or arriving. An agent that stops
// revokes its lease only when it holds nothing.
func (p *poolDomains) holdsAny() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.owned)+len(p.handing)+len(p.incoming) > 0
}

// localByUUID maps the registry's domains by UUID (lower case).
func (p *poolDomains) localByUUID() map[string]domains.Info {
	out := map[string]domains.Info{}
	for _, in := range p.a.domains.List(false) {
		out[strings.ToLower(in.UUID)] = in
	}
	return out
}

// hasVMM says whether a domain in state s has a VMM (a guest that may
// run).
func hasVMM(s string) bool {
	switch domains.State(s) {
	case domains.Starting, domains.Running, domains.Paused, domains.Stopping:
		return true
	}
	return false
}

// opTimeout bounds one etcd call of the pool domains' work.
func opTimeout(m *pool.Member) time.Duration { return max(5*time.Second, 2*m.FencingMargin()) }

// joined takes the domains m's lease owns up (after a restart that took
// the lease up, or a lapse the lease outlived): their VMMs get m's
// RunUntil, which resumes a fenced guest; and destroys every pool domain
// with a VMM here that m does not own. Only then do renewals reach VMMs.
// It returns when that is done or m's lease is lost.
func (p *poolDomains) joined(ctx context.Context, m *pool.Member) {
	p.ops.Lock()
	defer p.ops.Unlock()
	var owned map[string]int64
	for {
		c, cancel := context.WithTimeout(ctx, opTimeout(m))
		var err error
		owned, err = m.OwnedDomains(c)
		cancel()
		if err == nil {
			break
		}
		p.log.Warn("cannot read which pool domains this agent owns; trying again", zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-m.Lost():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	local := p.localByUUID()
	p.mu.Lock()
	wasHanding := p.handing
	p.handing = map[string]handing{}
	p.mu.Unlock()
	set := map[string]ownedDomain{}
	settle := map[string]handing{} // by lower-case UUID
	for uuid, gen := range owned {
		id := strings.ToLower(uuid)
		in, ok := local[id]
		if !ok {
			p.releaseOrphan(ctx, m, uuid, gen)
			continue
		}
		od := ownedDomain{name: in.Name, key: uuid, generation: gen}
		// A hand-over this agent had under way when the lease lapsed, or
		// a migration an agent before this one left waiting for its
		// commit decision (a pool domain's VMM does not decide by itself):
		// the ownership may be the target's any moment; it is settled
		// (KeepOwner) before the domain is leased again.
		if h, ok := wasHanding[id]; ok {
			settle[id] = h
			continue
		}
		if hasVMM(in.State) && p.waitsForDecision(in.Name) {
			settle[id] = handing{ownedDomain: od}
			continue
		}
		set[id] = od
	}
	p.mu.Lock()
	prev := p.owned
	p.member, p.owned = m, set
	for id, h := range settle {
		p.handing[id] = h
	}
	// An incoming migration under way ran under the lease before: under
	// an old lease it is destroyed below (the source keeps its guest: the
	// hand-over to the old lease fails); under this one it is settled anew
	// (its incoming record removed: the hand-over fails, the source keeps
	// it).
	p.incoming = map[string]ownedDomain{}
	list := p.ownedList()
	p.mu.Unlock()
	if m.Resumed() {
		c, cancel := context.WithTimeout(ctx, opTimeout(m))
		if err := m.EndAllIncoming(c); err != nil {
			p.log.Warn("incoming records of this lease not removed (a hand-over to this agent may still land; Arrived settles it)", zap.Error(err))
		}
		cancel()
	}
	for _, o := range list {
		p.log.Info("pool domain owned under this lease", zap.String("domain", o.name), zap.String("uuid", o.uuid), zap.Int64("generation", o.generation), zap.Bool("resumed_lease", m.Resumed()))
	}
	if ru := m.RunUntil(); time.Now().Before(ru) && len(list) > 0 {
		p.lease(list, ru, "join")
	}
	for id, h := range settle {
		p.log.Warn("pool domain's migration left undecided: settling its hand-over before it runs again", zap.String("domain", h.name), zap.String("uuid", h.key))
		p.settleLater(m, h.name, id, h, errors.New("its migration was left undecided"))
	}
	for _, o := range list {
		// One that stopped while the agent was away (its VMM died, its
		// guest powered off) is given up for the pool to place again.
		if in, ok := local[o.uuid]; ok && !hasVMM(in.State) {
			if now, err := p.a.domains.Info(o.name); err == nil && !hasVMM(now.State) {
				p.releaseStopped(m, o.ownedDomain, o.uuid, "it was found stopped when the agent joined")
			}
		}
	}
	// Every other pool domain with a VMM here ran under a lease this
	// agent no longer holds.
	for uuid, in := range local {
		if _, ok := set[uuid]; ok {
			continue
		}
		if _, ok := settle[uuid]; ok {
			continue
		}
		_, wasOwned := prev[uuid]
		if (in.Generation > 0 || wasOwned) && hasVMM(in.State) {
			p.destroy(ctx, m, in.UUID, in.Name, in.Generation, "the lease it ran under has ended")
		}
	}
}

// waitsForDecision says whether name's VMM has an outgoing migration
// waiting for the commit decision.
func (p *poolDomains) waitsForDecision(name string) bool {
	resp, err := p.a.domains.Call(name, control.Request{Op: control.OpMigrateStatus}, 3*time.Second)
	return err == nil && resp.Migration != nil && resp.Migration.Phase == control.PhaseVerified
}

// localStopped gives up the owner key of an owned domain whose guest
// stopped here on its own and stays stopped (it powered off, or crashed
// past its restarts): the pool then places it again if it is HA (as after
// a server's loss: a guest shut down from inside is restarted, as in
// Oracle VM), or records it stopped. A domain stopped by an operation of
// this agent (stop_local, a destroy of a copy no longer owned, the local
// API) is not given up here.
func (p *poolDomains) localStopped(name, uuid string) {
	p.ops.Lock()
	defer p.ops.Unlock()
	id := strings.ToLower(uuid)
	p.mu.Lock()
	o, owned := p.owned[id]
	m := p.member
	p.mu.Unlock()
	if !owned || m == nil {
		return // not ours, or the lease is not held: the next join settles it
	}
	if in, err := p.a.domains.Info(name); err != nil || hasVMM(in.State) {
		return // started again meanwhile, or gone
	}
	p.releaseStopped(m, o, id, "its guest stopped on its own")
}

// releaseStopped drops the lease of owned domain o, stopped here, and
// releases its owner key; the caller holds p.ops.
func (p *poolDomains) releaseStopped(m *pool.Member, o ownedDomain, id, why string) {
	_ = p.a.domains.DropLease(o.name)
	c, cancel := context.WithTimeout(p.a.lifetime, opTimeout(m))
	err := m.ReleaseOwner(c, o.key)
	cancel()
	if err != nil {
		p.log.Warn("pool domain stopped here, but its owner key was not released (the next join tries again)", zap.String("domain", o.name), zap.String("why", why), zap.Error(err))
		return
	}
	p.mu.Lock()
	delete(p.owned, id)
	p.mu.Unlock()
	p.log.Info("pool domain stopped here: owner key released for the pool to place it again", zap.String("domain", o.name), zap.String("uuid", o.key), zap.Int64("generation", o.generation), zap.String("why", why))
	p.a.pool.refreshInfo()
}

// releaseOrphan lets a domain go that m's lease owns but the registry
// does not have (its record lost, or deleted while the agent was away):
// not at once, since a VMM of it may still run here unknown to the
// registry, but after a lease TTL, when such a VMM, renewed no more, has
// fenced itself. Until then start_local and stop_local refuse it.
func (p *poolDomains) releaseOrphan(ctx context.Context, m *pool.Member, uuid string, gen int64) {
	wait := time.Until(m.Deadline())
	at := time.Now().Add(wait)
	id := strings.ToLower(uuid)
	p.mu.Lock()
	p.orphans[id] = at
	p.mu.Unlock()
	p.log.Warn("a pool domain this agent owns is not registered here: its owner key is released once any VMM it may still have here has fenced itself",
		zap.String("uuid", uuid), zap.Int64("generation", gen), zap.Time("release_at", at))
	go func() {
		t := time.NewTimer(wait)
		defer t.Stop()
		forget := func() {
			p.mu.Lock()
			if p.orphans[id] == at {
				delete(p.orphans, id)
			}
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			forget()
			return
		case <-m.Lost():
			forget()
			return // the key goes with the lease, or the next join looks again
		case <-t.C:
		}
		p.ops.Lock()
		defer p.ops.Unlock()
		forget()
		if _, here := p.localByUUID()[id]; here {
			return
		}
		c, cancel := context.WithTimeout(ctx, opTimeout(m))
		err := m.ReleaseOwner(c, uuid)
		cancel()
		p.log.Warn("released a pool domain this agent owned but does not have", zap.String("uuid", uuid), zap.Int64("generation", gen), zap.Error(err))
	}()
}

// orphan refuses start_local and stop_local of a domain releaseOrphan
// will release.
func (p *poolDomains) orphan(uuid string) error {
	p.mu.Lock()
	at, ok := p.orphans[strings.ToLower(uuid)]
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return fmt.Errorf("%w: pool domain %s is owned by this agent but not registered here; its owner key is released at %s, once any VMM it may still have here has fenced itself; try again then",
		errOrphan, uuid, at.UTC().Format(time.RFC3339))
}

// lost is called when m's lease is lost: renewals stop reaching VMMs at
// once. A lease etcd says is gone (revoked or expired there) means every
// owned domain may be started elsewhere now: each is destroyed here. A
// lease that lapsed by this agent's own deadline may still be alive in
// etcd: the guests stay fenced until the agent has joined again (joined
// then resumes or destroys them).
func (p *poolDomains) lost(ctx context.Context, m *pool.Member, why error) {
	p.mu.Lock()
	p.member = nil
	p.mu.Unlock()
	if !errors.Is(why, pool.ErrLeaseRevoked) {
		if errors.Is(why, pool.ErrLeaseExpired) && p.ownsAny() {
			p.log.Warn("pool lease lapsed: the owned domains' VMMs fence their guests at their run-until time; they resume if the lease is still alive when etcd answers again, else they are destroyed",
				zap.Strings("domains", p.ownedNames()))
		}
		return
	}
	p.ops.Lock()
	defer p.ops.Unlock()
	p.mu.Lock()
	list := p.ownedList()
	for u, h := range p.handing {
		list = append(list, ownedEntry{u, h.ownedDomain})
	}
	p.owned, p.handing = map[string]ownedDomain{}, map[string]handing{}
	p.mu.Unlock()
	local := p.localByUUID()
	for _, o := range list {
		if in, ok := local[o.uuid]; ok && hasVMM(in.State) {
			p.destroy(ctx, m, o.key, o.name, o.generation, "its owner's lease was revoked or expired in etcd")
		}
	}
}

// destroy stops a pool domain this agent no longer owns, saying why and
// who owns it now, as etcd answers.
func (p *poolDomains) destroy(ctx context.Context, m *pool.Member, uuid, name string, gen int64, why string) {
	c, cancel := context.WithTimeout(ctx, opTimeout(m))
	host, ogen, err := m.Owner(c, uuid)
	cancel()
	var owner string
	switch {
	case err != nil:
		owner = fmt.Sprintf("its owner is unknown (%v)", err)
	case host == "":
		owner = "its owner key is gone"
	default:
		owner = fmt.Sprintf("it is owned by %s at generation %d and may run there", host, ogen)
	}
	reason := why + "; " + owner
	_ = p.a.domains.DropLease(name)
	if derr := p.a.domains.Destroy(name); derr != nil && domains.KindOf(derr) != domains.BadState {
		p.log.Error("pool domain not ours any more, and its destroy failed", zap.String("domain", name), zap.String("uuid", uuid), zap.Int64("generation", gen), zap.String("reason", reason), zap.Error(derr))
		return
	}
	p.log.Warn("destroyed a pool domain this agent no longer owns", zap.String("domain", name), zap.String("uuid", uuid), zap.Int64("generation", gen), zap.String("reason", reason))
}

// mayStart refuses domain.start of a pool domain that this agent does
// not own under its current lease: it may run elsewhere. A pool domain
// is one that ran under a pool lease here (it has a generation) or that
// the pool has a spec for (registered here by a start_local that another
// owner refused).
func (p *poolDomains) mayStart(ctx context.Context, name string) error {
	in, err := p.a.domains.Info(name)
	if err != nil {
		return nil // the start itself says what is wrong
	}
	p.mu.Lock()
	o, owned := p.owned[strings.ToLower(in.UUID)]
	m := p.member
	p.mu.Unlock()
	if owned && m != nil {
		return nil
	}
	if owned {
		return xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain (generation %d) and this agent's pool lease is not held just now: it starts again once the lease is renewed or taken up", name, o.generation)
	}
	if in.Generation > 0 {
		return xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain (generation %d) this agent does not own: it starts through the pool (pool.start_local on the member chosen for it), which takes its owner key first", name, in.Generation)
	}
	if m == nil {
		return xmlrpc.Faultf(xmlrpc.BadState, "%s: this agent is not a pool member just now and cannot tell whether it is a pool domain; try again once host.info shows it a member", name)
	}
	c, cancel := context.WithTimeout(ctx, opTimeout(m))
	defer cancel()
	_, _, err = m.ReadSpec(c, in.UUID)
	switch {
	case errors.Is(err, pool.ErrNoSpec):
		return nil
	case err != nil:
		return xmlrpc.Faultf(xmlrpc.BadState, "%s: cannot tell whether it is a pool domain (%v); try again", name, err)
	}
	return xmlrpc.Faultf(xmlrpc.BadState, "%s is a domain of pool %s this agent does not own: it starts through the pool (pool.start_local on the member chosen for it), which takes its owner key first", name, m.Pool())
}

// mayMove refuses to migrate a pool domain that is not running here
// under this agent's ownership: a live migration hands a running one's
// ownership over to the target (poolmove.go), but a stopped one would
// move offline, its copy on the target with no owner key; the pool
// places it (pool.start_domain).
func (p *poolDomains) mayMove(name string) error {
	in, _, owned, ok := p.localOwned(name)
	if !ok || !owned && in.Generation == 0 {
		return nil // not a pool domain; or unknown, and the migration says so
	}
	if !hasVMM(in.State) {
		return xmlrpc.Faultf(xmlrpc.Unsupported, "%s is a pool domain and it is %s: only a running pool domain migrates (its ownership goes with it); the pool starts a stopped one where it places it (pool.start_domain)", name, in.State)
	}
	return nil
}

// ranInPool says whether this host's domain name is a pool domain: owned
// here, or one that ran under a pool lease (it has a generation).
func (p *poolDomains) ranInPool(name string) bool {
	in, _, owned, ok := p.localOwned(name)
	return ok && (owned || in.Generation > 0)
}

// localOwned is this host's domain name (ok false when it is not
// registered) and, when this agent owns it in the pool, its ownership.
func (p *poolDomains) localOwned(name string) (in domains.Info, o ownedDomain, owned, ok bool) {
	in, err := p.a.domains.Info(name)
	if err != nil {
		return in, o, false, false
	}
	p.mu.Lock()
	o, owned = p.owned[strings.ToLower(in.UUID)]
	p.mu.Unlock()
	return in, o, owned, true
}

// maySave refuses to save a pool domain: its save image would be a copy
// of the guest the pool does not know of, which a restore could run beside
// the one the pool restarts (the owner key stays with the saved VMM's
// agent, and a restore elsewhere takes none).
func (p *poolDomains) maySave(name string) error {
	if !p.ranInPool(name) {
		return nil // not a pool domain; or unknown, and the save says so
	}
	return xmlrpc.Faultf(xmlrpc.Unsupported, "%s is a pool domain: saving it is not supported yet (its image would be a copy the pool does not know of); stop it through the pool (pool.stop_domain) instead", name)
}

// mayRestore refuses to restore an image of a pool domain (its uuid has
// a spec or an owner key in the pool): the pool starts its domains, each
// under an owner key, and a restored copy would have none. While the
// agent cannot ask etcd it refuses too, saying so.
func (p *poolDomains) mayRestore(ctx context.Context, name, uuid string) error {
	p.mu.Lock()
	m := p.member
	p.mu.Unlock()
	if m == nil {
		return xmlrpc.Faultf(xmlrpc.BadState, "this agent is not a pool member just now and cannot tell whether %s (%s) is a pool domain; try the restore again once host.info shows it a member", name, uuid)
	}
	c, cancel := context.WithTimeout(ctx, opTimeout(m))
	defer cancel()
	_, _, err := m.ReadSpec(c, uuid)
	switch {
	case err == nil:
		return xmlrpc.Faultf(xmlrpc.Unsupported, "%s (%s) is a domain of pool %s: its image is not restored outside the pool; start it through the pool (pool.start_domain)", name, uuid, m.Pool())
	case !errors.Is(err, pool.ErrNoSpec):
		return xmlrpc.Faultf(xmlrpc.BadState, "%s: cannot tell whether it is a pool domain (%v); try again", name, err)
	}
	host, _, err := m.Owner(c, uuid)
	switch {
	case err != nil:
		return xmlrpc.Faultf(xmlrpc.BadState, "%s: cannot tell whether the pool runs it (%v); try again", name, err)
	case host != "":
		return xmlrpc.Faultf(xmlrpc.Unsupported, "%s (%s) has an owner in pool %s (%s): its image is not restored beside it", name, uuid, m.Pool(), host)
	}
	return nil
}

// mayStop refuses to shut down or destroy, through the local API, a
// domain this agent owns in the pool: the pool stops it (pool.stop_domain,
// or pool.stop_local here, which also releases its owner key).
func (p *poolDomains) mayStop(name string) error {
	in, o, owned, _ := p.localOwned(name)
	if !owned {
		return nil
	}
	return xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain this agent owns (generation %d): stop it through the pool (pool.stop_domain %s, or here pool.stop_local %s [destroy], which also gives its owner key up)", name, o.generation, name, in.UUID)
}

// mayDelete refuses to delete a domain this agent owns in the pool: its
// owner key would stay bound to the lease with nothing here to run.
func (p *poolDomains) mayDelete(name string) error {
	_, o, owned, _ := p.localOwned(name)
	if !owned {
		return nil
	}
	return xmlrpc.Faultf(xmlrpc.BadState, "%s is a pool domain this agent owns (generation %d): release it first with pool.stop_local", name, o.generation)
}

// current is the member whose lease the owned set is under, if its lease
// is held: what start_local and stop_local need.
func (p *poolDomains) current() (*pool.Member, error) {
	p.mu.Lock()
	m := p.member
	p.mu.Unlock()
	if m == nil {
		return nil, errNotMember
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotMember, err)
	}
	if !time.Now().Before(m.RunUntil()) {
		return nil, fmt.Errorf("%w: its lease has not been renewed in time (its guests are being fenced)", errNotMember)
	}
	return m, nil
}

var errNotMember = errors.New("this agent is not a pool member just now")

// Errors of startLocal and stopLocal that the API maps to fault codes.
var (
	errSpecMismatch = errors.New("the pool's spec does not match this host's domain")
	errLocalClash   = errors.New("a different domain holds the name or uuid here")
	errOrphan       = errors.New("the domain's owner key is being let go")
)

// startResult is pool.start_local's answer.
type startResult struct {
	Name       string `xmlrpc:"name"`
	UUID       string `xmlrpc:"uuid"`
	Host       string `xmlrpc:"host"`
	Generation int64  `xmlrpc:"generation"`
}

// startLocal runs pool domain uuid here: the spec read, the domain
// registered from it if absent, its owner key taken under this agent's
// lease, its VMM given the lease (RunUntil, generation), then started.
// A domain already running here under this lease answers the same.
func (p *poolDomains) startLocal(ctx context.Context, uuid string) (*startResult, error) {
	p.ops.Lock()
	defer p.ops.Unlock()
	m, spec, specRev, err := p.specOf(ctx, uuid)
	if err != nil {
		return nil, err
	}
	id := strings.ToLower(uuid)
	if spec.Adopting != nil {
		// it runs on that member, outside the pool, until the adopt ends
		return nil, fmt.Errorf("%w: pool domain %s is being adopted on %s, where it runs; it is not started elsewhere", errOrphan, spec.Name, spec.Adopting.Host)
	}
	in, err := p.registerFrom(spec)
	if err != nil {
		return nil, err
	}
	res := &startResult{Name: in.Name, UUID: uuid, Host: m.Host()}
	p.mu.Lock()
	o, owned := p.owned[id]
	p.mu.Unlock()
	if hasVMM(in.State) {
		if owned {
			res.Generation = o.generation
			return res, nil
		}
		return nil, fmt.Errorf("%w: domain %s (%s) has a VMM here (state %s) but this agent does not own it in pool %s; destroy it first",
			errLocalClash, in.Name, uuid, in.State, m.Pool())
	}
	gen, err := p.acquire(ctx, m, uuid, specRev)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.owned[id] = ownedDomain{name: in.Name, key: uuid, generation: gen}
	p.mu.Unlock()
	fail := func(err error) (*startResult, error) {
		p.mu.Lock()
		delete(p.owned, id)
		p.mu.Unlock()
		// Nothing that waits to start it may run it once the key is given
		// up.
		_ = p.a.domains.DropLease(in.Name)
		rctx, cancel := context.WithTimeout(context.Background(), opTimeout(m))
		defer cancel()
		if rerr := m.ReleaseOwner(rctx, uuid); rerr != nil {
			p.log.Warn("release a pool domain that did not start", zap.String("domain", in.Name), zap.Error(rerr))
		}
		return nil, err
	}
	ru := m.RunUntil()
	if !time.Now().Before(ru) {
		return fail(fmt.Errorf("%w: its lease was not renewed in time", errNotMember))
	}
	if err := p.a.domains.SetLease(in.Name, control.MonotonicOf(ru), gen); err != nil {
		return fail(err)
	}
	if err := p.a.domains.Start(in.Name); err != nil {
		return fail(err)
	}
	p.log.Info("pool domain started", zap.String("domain", in.Name), zap.String("uuid", uuid), zap.Int64("generation", gen))
	p.a.pool.refreshInfo()
	res.Generation = gen
	return res, nil
}

// specOf is what start_local and adopt_local begin with, ops held: the
// member whose lease is held, and pool domain uuid's spec as read (an
// orphan of this agent's, being let go, is refused).
func (p *poolDomains) specOf(ctx context.Context, uuid string) (*pool.Member, *pool.DomainSpec, int64, error) {
	m, err := p.current()
	if err != nil {
		return nil, nil, 0, err
	}
	if err := p.orphan(uuid); err != nil {
		return nil, nil, 0, err
	}
	spec, specRev, err := m.ReadSpec(ctx, uuid)
	if err != nil {
		return nil, nil, 0, err
	}
	return m, spec, specRev, nil
}

// acquire takes pool domain uuid's owner key under m's lease, only for
// the spec as read (a pool.delete_domain or a change that came meanwhile
// leaves no owner key of a domain the pool does not have). An acquire
// whose outcome is unknown (no answer, and none read back) is released:
// a key that may be bound to this lease with nothing run under it would
// keep every other member from starting the domain.
func (p *poolDomains) acquire(ctx context.Context, m *pool.Member, uuid string, specRev int64) (int64, error) {
	gen, err := m.AcquireOwnerOfSpec(ctx, uuid, specRev)
	if err != nil && !errors.Is(err, pool.ErrOwned) && !errors.Is(err, pool.ErrSpecChanged) {
		rctx, cancel := context.WithTimeout(p.a.lifetime, opTimeout(m))
		if rerr := m.ReleaseOwner(rctx, uuid); rerr != nil {
			p.log.Warn("an acquire whose outcome is unknown: its key not released either (it goes with the lease)", zap.String("uuid", uuid), zap.Error(rerr))
		}
		cancel()
	}
	return gen, err
}

// registerFrom finds spec's domain here, or registers it from its config.
func (p *poolDomains) registerFrom(spec *pool.DomainSpec) (domains.Info, error) {
	cfg, err := vmcfg.Parse("pool spec of "+spec.UUID, []byte(spec.Config))
	if err != nil {
		return domains.Info{}, fmt.Errorf("%w: its config does not parse: %v", errSpecMismatch, err)
	}
	if !strings.EqualFold(cfg.UUID, spec.UUID) || cfg.Name != spec.Name {
		return domains.Info{}, fmt.Errorf("%w: its config names domain %q uuid %q, the spec %q uuid %q", errSpecMismatch, cfg.Name, cfg.UUID, spec.Name, spec.UUID)
	}
	for _, in := range p.a.domains.List(false) {
		sameUUID, sameName := strings.EqualFold(in.UUID, spec.UUID), in.Name == spec.Name
		switch {
		case sameUUID && sameName:
			if in.State != string(domains.Stopped) || p.sameConfig(in, spec) {
				return in, nil
			}
			// Stopped here with an older config than the pool's: the
			// pool's spec is what runs.
			if err := p.a.domains.Delete(in.Name); err != nil {
				return domains.Info{}, err
			}
			p.log.Info("pool domain's config changed in its spec: registered again from it", zap.String("domain", in.Name), zap.String("uuid", in.UUID))
			return p.create(spec)
		case sameUUID:
			return domains.Info{}, fmt.Errorf("%w: domain uuid %s is registered here as %q, the pool's spec names it %q", errLocalClash, spec.UUID, in.Name, spec.Name)
		case sameName:
			return domains.Info{}, fmt.Errorf("%w: a different domain named %q (uuid %s) is registered here; the pool's has uuid %s", errLocalClash, in.Name, in.UUID, spec.UUID)
		}
	}
	return p.create(spec)
}

func (p *poolDomains) create(spec *pool.DomainSpec) (domains.Info, error) {
	in, _, err := p.a.domains.Create([]byte(spec.Config), "pool "+spec.UUID)
	if err != nil {
		return domains.Info{}, err
	}
	p.log.Info("pool domain registered from its spec", zap.String("domain", in.Name), zap.String("uuid", in.UUID))
	return *in, nil
}

// sameConfig says whether the registered domain's vm.cfg is the spec's
// (a file that cannot be read counts as the same: nothing is replaced on
// a doubt).
func (p *poolDomains) sameConfig(in domains.Info, spec *pool.DomainSpec) bool {
	data, err := boundedfile.ReadFile(in.ConfigFile, vmcfg.MaxFileSize, boundedfile.NoFollow)
	if err != nil {
		p.log.Warn("pool domain's registered config unreadable; kept", zap.String("domain", in.Name), zap.Error(err))
		return true
	}
	return string(data) == spec.Config
}

// stopResult is pool.stop_local's answer.
type stopResult struct {
	Name     string `xmlrpc:"name,omitempty"`
	UUID     string `xmlrpc:"uuid"`
	Host     string `xmlrpc:"host"`
	State    string `xmlrpc:"state"`    // the local domain's, "" when it is not here
	Released bool   `xmlrpc:"released"` // the owner key was this agent's and is gone
}

// stopLocal stops pool domain uuid here (a clean shutdown within timeout,
// then destroyed; or destroyed at once) and then releases its owner key.
func (p *poolDomains) stopLocal(ctx context.Context, uuid string, destroy bool, timeout time.Duration) (*stopResult, error) {
	p.ops.Lock()
	defer p.ops.Unlock()
	m, err := p.current()
	if err != nil {
		return nil, err
	}
	id := strings.ToLower(uuid)
	if err := p.orphan(uuid); err != nil {
		return nil, err
	}
	res := &stopResult{UUID: uuid, Host: m.Host()}
	in, here := p.localByUUID()[id]
	if here {
		res.Name = in.Name
		if hasVMM(in.State) {
			if destroy {
				err = p.a.domains.Destroy(in.Name)
			} else {
				err = p.a.domains.Shutdown(in.Name, timeout)
			}
			if err != nil {
				return nil, err
			}
		}
		if now, err := p.a.domains.Info(in.Name); err == nil {
			res.State = now.State
		}
	}
	if here {
		// A domain.start that waited for the shutdown must not boot it
		// again now: without its run-until time it does not start, and the
		// key can go.
		if err := p.a.domains.DropLease(in.Name); err != nil {
			return nil, err
		}
	}
	// The release must not fail because the caller gave up waiting for
	// the shutdown: it is bounded on its own. The domain stays in the
	// owned set until its key is really gone.
	rctx, cancel := context.WithTimeout(context.Background(), opTimeout(m))
	defer cancel()
	if err := m.ReleaseOwner(rctx, uuid); err != nil {
		return nil, err
	}
	p.mu.Lock()
	_, owned := p.owned[id]
	delete(p.owned, id)
	p.mu.Unlock()
	res.Released = owned
	p.log.Info("pool domain stopped and released", zap.String("domain", res.Name), zap.String("uuid", uuid), zap.Bool("was_owned", owned))
	p.a.pool.refreshInfo()
	return res, nil
}
