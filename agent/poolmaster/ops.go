package poolmaster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/internal/uuid"
)

// Kind classifies an operation's error, for the API's fault codes.
type Kind int

// Kinds of Error.
const (
	Internal  Kind = iota
	NotMaster      // this member is not the pool master
	NotFound       // no such domain
	Exists         // the name or UUID is taken
	BadState       // e.g. deleting a domain that runs
	Invalid        // a bad vm.cfg, host name or option
	Busy           // under way: its outcome is known later
)

// Error is an operation's refusal.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// KindOf is err's Kind (Internal for any other error).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, pool.ErrDeposed) {
		return NotMaster
	}
	return Internal
}

func errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// ErrNotMaster: the call must go to the pool master.
var ErrNotMaster = &Error{Kind: NotMaster, Msg: "this agent is not the pool master"}

// CreateOptions are pool.create_domain's options.
type CreateOptions struct {
	HA        bool
	Preferred []string // Manual placement; empty is Auto
	Priority  int
	Start     bool // desired running at once
}

// mastership is the running master, or ErrNotMaster.
func (r *Runner) mastership() (*master, error) {
	m := r.current()
	if m == nil {
		return nil, ErrNotMaster
	}
	return m, nil
}

// Create adds a pool domain from its vm.cfg text. A vm.cfg without a
// uuid gets one (written into the config, so that every member registers
// the domain under it).
func (r *Runner) Create(ctx context.Context, cfgText string, o CreateOptions) (DomainView, error) {
	m, err := r.mastership()
	if err != nil {
		return DomainView{}, err
	}
	c, err := vmcfg.Parse("vm.cfg", []byte(cfgText))
	if err != nil {
		return DomainView{}, errorf(Invalid, "%v", err)
	}
	if c.UUID == "" {
		u, err := uuid.New()
		if err != nil {
			return DomainView{}, err
		}
		cfgText = strings.TrimRight(cfgText, "\n") + fmt.Sprintf("\nuuid = '%s'\n", u)
		if c, err = vmcfg.Parse("vm.cfg", []byte(cfgText)); err != nil {
			return DomainView{}, errorf(Invalid, "%v", err)
		}
	}
	for _, h := range o.Preferred {
		if err := pool.CheckSegment("preferred server", h); err != nil {
			return DomainView{}, errorf(Invalid, "%v", err)
		}
	}
	spec := Spec{Name: c.Name, UUID: c.UUID, Config: cfgText, HA: o.HA, Desired: DesiredStopped,
		Preferred: append([]string{}, o.Preferred...), Priority: o.Priority}
	if o.Start {
		spec.Desired = DesiredRunning
	}
	m.pass.Lock()
	defer m.pass.Unlock()
	s, err := read(ctx, m.cli, m.pool, m.log)
	if err != nil {
		return DomainView{}, err
	}
	if _, d := s.lookup(c.Name); d != nil {
		return DomainView{}, errorf(Exists, "the pool has a domain named %s already (uuid %s)", c.Name, d.spec.UUID)
	}
	if _, ok := s.domains[c.UUID]; ok {
		return DomainView{}, errorf(Exists, "the pool has a domain with uuid %s already", c.UUID)
	}
	st := Status{State: StateStopped, Reason: "created stopped", Since: time.Now().UTC()}
	if o.Start {
		st = Status{State: StatePending, Reason: "created; waiting for placement", Since: st.Since}
	}
	sb, _ := json.Marshal(spec)
	stb, _ := json.Marshal(st)
	_, err = m.ms.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(specKey(m.pool, c.UUID)), "=", 0)},
		clientv3.OpPut(specKey(m.pool, c.UUID), string(sb)), clientv3.OpPut(statusKey(m.pool, c.UUID), string(stb)))
	if errors.Is(err, pool.ErrConditionFailed) {
		return DomainView{}, errorf(Exists, "the pool has a domain with uuid %s already", c.UUID)
	}
	if err != nil {
		return DomainView{}, err
	}
	m.poke()
	return view(c.UUID, &domain{spec: spec, status: &st}), nil
}

// SetDesired sets a pool domain's desired state (running or stopped);
// the master then starts or stops it.
func (r *Runner) SetDesired(ctx context.Context, ref, desired string) (DomainView, error) {
	if desired != DesiredRunning && desired != DesiredStopped {
		return DomainView{}, errorf(Invalid, "desired state %q: running or stopped", desired)
	}
	return r.changeSpec(ctx, ref, func(d *domain, spec *Spec) (bool, *Status) {
		if spec.Desired == desired {
			return false, nil
		}
		spec.Desired = desired
		if desired == DesiredRunning && d.owner == "" {
			return true, &Status{State: StatePending, Reason: "started by request; waiting for placement", Since: time.Now().UTC()}
		}
		return true, nil
	})
}

// changeSpec changes a pool domain's spec (by name or uuid) with change,
// which answers whether it changed it and a status to write with it, in
// one transaction guarded by the spec's revision; a domain being adopted
// is refused.
func (r *Runner) changeSpec(ctx context.Context, ref string, change func(d *domain, spec *Spec) (bool, *Status)) (DomainView, error) {
	m, err := r.mastership()
	if err != nil {
		return DomainView{}, err
	}
	m.pass.Lock()
	defer m.pass.Unlock()
	s, err := read(ctx, m.cli, m.pool, m.log)
	if err != nil {
		return DomainView{}, err
	}
	u, d := s.lookup(ref)
	if d == nil {
		return DomainView{}, errorf(NotFound, "the pool has no domain %s", ref)
	}
	if err := m.adopting(u, d); err != nil {
		return DomainView{}, err
	}
	spec := d.spec
	if changed, st := change(d, &spec); changed {
		sb, _ := json.Marshal(spec)
		ops := []clientv3.Op{clientv3.OpPut(specKey(m.pool, u), string(sb))}
		if st != nil {
			b, _ := json.Marshal(st)
			ops = append(ops, clientv3.OpPut(statusKey(m.pool, u), string(b)))
		}
		if _, err := m.ms.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(specKey(m.pool, u)), "=", d.specRev)}, ops...); err != nil {
			if errors.Is(err, pool.ErrConditionFailed) {
				return DomainView{}, errorf(BadState, "domain %s changed meanwhile; try again", ref)
			}
			return DomainView{}, err
		}
		d.spec = spec
		if st != nil {
			d.status = st
		}
	}
	m.poke()
	return view(u, d), nil
}

// Delete removes a pool domain that has no owner (it runs nowhere).
func (r *Runner) Delete(ctx context.Context, ref string) error {
	m, err := r.mastership()
	if err != nil {
		return err
	}
	m.pass.Lock()
	defer m.pass.Unlock()
	s, err := read(ctx, m.cli, m.pool, m.log)
	if err != nil {
		return err
	}
	u, d := s.lookup(ref)
	if d == nil {
		return errorf(NotFound, "the pool has no domain %s", ref)
	}
	if err := m.adopting(u, d); err != nil {
		return err
	}
	if d.owner != "" {
		return errorf(BadState, "domain %s runs on %s; stop it first (pool.stop_domain)", d.spec.Name, d.owner)
	}
	m.mu.Lock()
	_, busy := m.inflight[u]
	m.mu.Unlock()
	if busy {
		return errorf(BadState, "domain %s is being started or stopped; try again when it has", d.spec.Name)
	}
	_, err = m.ms.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(pool.OwnerKey(m.pool, u)), "=", 0)},
		clientv3.OpDelete(specKey(m.pool, u)), clientv3.OpDelete(statusKey(m.pool, u)))
	if errors.Is(err, pool.ErrConditionFailed) {
		return errorf(BadState, "domain %s was just started somewhere; stop it first", d.spec.Name)
	}
	return err
}

// SetMaintenance puts host in maintenance (no new placements) or takes
// it out. The member's own agent migrates its running domains away while
// it is in maintenance (drain.go).
func (r *Runner) SetMaintenance(ctx context.Context, host string, on bool) error {
	if err := pool.CheckSegment("host", host); err != nil {
		return errorf(Invalid, "%v", err)
	}
	m, err := r.mastership()
	if err != nil {
		return err
	}
	m.pass.Lock()
	defer m.pass.Unlock()
	key := maintenanceKey(m.pool, host)
	if !on {
		_, err = m.ms.Write(ctx, clientv3.OpDelete(key))
		m.poke()
		return err
	}
	s, err := read(ctx, m.cli, m.pool, m.log)
	if err != nil {
		return err
	}
	if _, ok := s.members[host]; !ok {
		return errorf(NotFound, "%s is not a member of pool %s", host, m.pool)
	}
	b, _ := json.Marshal(Maintenance{Since: time.Now().UTC()})
	_, err = m.ms.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, clientv3.OpPut(key, string(b)))
	if errors.Is(err, pool.ErrConditionFailed) {
		return nil // already
	}
	return err
}

// Views, for the API (xmlrpc tags: the agent encodes them as they are).

// MemberView is one member in pool.info.
type MemberView struct {
	Host          string   `xmlrpc:"host"`
	Address       string   `xmlrpc:"address"`
	FreeMemoryMiB int64    `xmlrpc:"free_memory_mib"`
	Engines       []string `xmlrpc:"engines"`
	// State is "active" or "maintenance".
	State  string `xmlrpc:"state"`
	Master bool   `xmlrpc:"master"`
}

// PoolView is pool.info.
type PoolView struct {
	Name    string       `xmlrpc:"name"`
	Master  string       `xmlrpc:"master"` // "" when none
	Members []MemberView `xmlrpc:"members"`
	// Maintenance lists hosts in maintenance that are not members now.
	Maintenance []string `xmlrpc:"maintenance_not_members"`
	Domains     int      `xmlrpc:"domains"`
}

// DomainView is one domain in pool.domains.
type DomainView struct {
	Name      string   `xmlrpc:"name"`
	UUID      string   `xmlrpc:"uuid"`
	Host      string   `xmlrpc:"host"` // where it runs (its owner), "" when nowhere
	Desired   string   `xmlrpc:"desired"`
	HA        bool     `xmlrpc:"ha"`
	Preferred []string `xmlrpc:"preferred"`
	Priority  int      `xmlrpc:"priority"`
	// State, StatusHost and Reason are the master's status record:
	// running, pending (Reason says why; StatusHost is set while it is
	// being started there) or stopped.
	State      string `xmlrpc:"state"`
	StatusHost string `xmlrpc:"status_host"`
	Reason     string `xmlrpc:"reason"`
	Since      string `xmlrpc:"since"` // RFC 3339, "" when no status yet
	Generation int64  `xmlrpc:"generation"`
	MemoryMiB  int64  `xmlrpc:"memory_mib"`
}

func view(u string, d *domain) DomainView {
	v := DomainView{Name: d.spec.Name, UUID: u, Host: d.owner, Desired: d.spec.Desired, HA: d.spec.HA,
		Preferred: append([]string{}, d.spec.Preferred...), Priority: d.spec.Priority, Generation: d.ownerGen}
	if d.status != nil {
		v.State, v.StatusHost, v.Reason = d.status.State, d.status.Host, d.status.Reason
		if !d.status.Since.IsZero() {
			v.Since = d.status.Since.UTC().Format(time.RFC3339)
		}
	}
	if n, err := needOf(d.spec); err == nil {
		v.MemoryMiB = n.MemoryMiB
	}
	return v
}

// Info reads pool.info through any member.
func Info(ctx context.Context, m *pool.Member) (PoolView, error) {
	s, err := read(ctx, m.Client(), m.Pool(), zapNop)
	if err != nil {
		return PoolView{}, err
	}
	pv := PoolView{Name: m.Pool(), Members: []MemberView{}, Maintenance: []string{}, Domains: len(s.domains)}
	if mi, err := m.Master(ctx); err == nil {
		pv.Master = mi.Host
	} else if !errors.Is(err, pool.ErrNoMaster) {
		return PoolView{}, err
	}
	for host, mem := range s.members {
		st := "active"
		if _, ok := s.maintenance[host]; ok {
			st = "maintenance"
		}
		eng := mem.rec.Engines
		if eng == nil {
			eng = []string{}
		}
		pv.Members = append(pv.Members, MemberView{Host: host, Address: mem.rec.Address, FreeMemoryMiB: mem.rec.FreeMemoryMiB,
			Engines: eng, State: st, Master: host == pv.Master})
	}
	sort.Slice(pv.Members, func(i, j int) bool { return pv.Members[i].Host < pv.Members[j].Host })
	for host := range s.maintenance {
		if _, ok := s.members[host]; !ok {
			pv.Maintenance = append(pv.Maintenance, host)
		}
	}
	sort.Strings(pv.Maintenance)
	return pv, nil
}

// Domains reads pool.domains through any member, by name.
func Domains(ctx context.Context, m *pool.Member) ([]DomainView, error) {
	s, err := read(ctx, m.Client(), m.Pool(), zapNop)
	if err != nil {
		return nil, err
	}
	out := []DomainView{}
	for u, d := range s.domains {
		if d.bad != nil {
			out = append(out, DomainView{UUID: u, Host: d.owner, Reason: d.bad.Error()})
			continue
		}
		out = append(out, view(u, d))
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || (out[i].Name == out[j].Name && out[i].UUID < out[j].UUID)
	})
	return out, nil
}

// MasterRecord is the member record of the pool master, for forwarding
// calls to it; ErrNoMaster (wrapped) when there is none.
func MasterRecord(ctx context.Context, m *pool.Member) (pool.MemberRecord, error) {
	mi, err := m.Master(ctx)
	if err != nil {
		return pool.MemberRecord{}, err
	}
	resp, err := m.Client().Get(ctx, pool.MembersPrefix(m.Pool())+mi.Host)
	if err != nil {
		return pool.MemberRecord{}, fmt.Errorf("pool %s: read the master's member record: %w", m.Pool(), err)
	}
	if len(resp.Kvs) == 0 {
		return pool.MemberRecord{}, fmt.Errorf("pool %s: the master %s has no member record", m.Pool(), mi.Host)
	}
	var r pool.MemberRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return pool.MemberRecord{}, fmt.Errorf("pool %s: the master's member record: %w", m.Pool(), err)
	}
	return r, nil
}

// Adopt makes a domain that already runs on member host, outside the
// pool, a pool domain without stopping it (an Oracle VM Agent 3
// manager's configure_vm_ha of a running vm). The spec is written with
// the Adopting mark, desired stopped (what does not know the mark neither
// places nor starts it) and o's HA; while it is marked no pass places,
// stops or changes it, the API's changes are refused and no member's
// start_local starts it. host's agent is asked to adopt it
// (Dispatcher.Adopt: its owner key taken under host's lease and its VMM
// given the lease, the guest running on), asked once more if it holds the
// key but gave no answer, and finishAdopt writes the end: adopted, the
// mark cleared and desired running; refused, the spec removed while no
// owner key exists, and with host's key made desired stopped (stopped
// there, the key let go); no answer, the mark kept (Busy: a pass asks
// again, adoptPending), as when this master goes away half way. The
// domain is never placed elsewhere on the way: it runs on host all along.
func (r *Runner) Adopt(ctx context.Context, cfgText string, o CreateOptions, host string) (DomainView, error) {
	m, err := r.mastership()
	if err != nil {
		return DomainView{}, err
	}
	c, err := vmcfg.Parse("vm.cfg", []byte(cfgText))
	if err != nil {
		return DomainView{}, errorf(Invalid, "%v", err)
	}
	if c.UUID == "" {
		return DomainView{}, errorf(Invalid, "an adopted domain keeps its uuid: its vm.cfg has none")
	}
	for _, h := range o.Preferred {
		if err := pool.CheckSegment("preferred server", h); err != nil {
			return DomainView{}, errorf(Invalid, "%v", err)
		}
	}
	if len(o.Preferred) > 0 && !slices.Contains(o.Preferred, host) {
		return DomainView{}, errorf(Invalid, "the preferred servers %v leave out %s, where the domain runs", o.Preferred, host)
	}
	u := strings.ToLower(c.UUID)
	now := time.Now().UTC()
	// desired stopped while marked: what does not know the mark neither
	// places it nor starts it elsewhere
	spec := Spec{Name: c.Name, UUID: c.UUID, Config: cfgText, HA: o.HA, Desired: DesiredStopped,
		Preferred: append([]string{}, o.Preferred...), Priority: o.Priority, Adopting: &pool.AdoptMark{Host: host, Since: now}}
	dctx, cancel := context.WithTimeout(m.ctx, m.o.DispatchTimeout)
	defer cancel()
	if !m.enter() { // the mastership's end waits for this adopt's end to be written
		return DomainView{}, ErrNotMaster
	}
	defer m.wg.Done()

	m.pass.Lock()
	s, err := read(ctx, m.cli, m.pool, m.log)
	if err != nil {
		m.pass.Unlock()
		return DomainView{}, err
	}
	mem, ok := s.members[host]
	if !ok {
		m.pass.Unlock()
		return DomainView{}, errorf(BadState, "%s is not a member of pool %s just now", host, m.pool)
	}
	if _, d := s.lookup(c.Name); d != nil {
		m.pass.Unlock()
		return DomainView{}, errorf(Exists, "the pool has a domain named %s already (uuid %s)", c.Name, d.spec.UUID)
	}
	if _, ok := s.domains[c.UUID]; ok {
		m.pass.Unlock()
		return DomainView{}, errorf(Exists, "the pool has a domain with uuid %s already", c.UUID)
	}
	st := Status{State: StatePending, Host: host, Reason: "being adopted: it runs on " + host, Since: now}
	sb, _ := json.Marshal(spec)
	stb, _ := json.Marshal(st)
	// Under way before the spec exists: this master's passes skip it.
	m.mu.Lock()
	m.inflight[c.UUID] = dispatch{host: host, cancel: cancel, adopt: true}
	m.mu.Unlock()
	done := func() {
		m.mu.Lock()
		delete(m.inflight, c.UUID)
		m.mu.Unlock()
		m.poke()
	}
	_, err = m.ms.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(specKey(m.pool, c.UUID)), "=", 0)},
		clientv3.OpPut(specKey(m.pool, c.UUID), string(sb)), clientv3.OpPut(statusKey(m.pool, c.UUID), string(stb)))
	var specRev int64
	if err == nil {
		// the revision it was written at (a nested transaction's answer
		// has none), read while no pass can change it
		var got *clientv3.GetResponse
		if got, err = m.cli.Get(ctx, specKey(m.pool, c.UUID)); err == nil && len(got.Kvs) == 1 {
			specRev = got.Kvs[0].ModRevision
		} else if err == nil {
			err = fmt.Errorf("the spec of %s just written is not there", c.UUID)
		}
	}
	m.pass.Unlock()
	if err != nil {
		done()
		if errors.Is(err, pool.ErrConditionFailed) {
			return DomainView{}, errorf(Exists, "the pool has a domain with uuid %s already", c.UUID)
		}
		return DomainView{}, err // a spec written stays marked: a pass removes it after the adopt timeout
	}
	m.log.Info("adopting a domain", zap.String("domain", c.Name), zap.String("uuid", u), zap.String("on", host))
	gen, aerr := m.o.Dispatch.Adopt(dctx, mem.rec, c.UUID)
	if aerr != nil {
		// The member holds the owner key: its answer may have been lost
		// (it answers an adopt of one it holds the same, handing its VMM
		// the lease if that had not reached it), so it is asked once
		// more, on a call of its own, before the domain is stopped there.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(m.ctx), m.o.DispatchTimeout)
		if resp, err := m.cli.Get(rctx, pool.OwnerKey(m.pool, c.UUID)); err == nil && len(resp.Kvs) == 1 {
			var o pool.OwnerRecord
			if json.Unmarshal(resp.Kvs[0].Value, &o) == nil && o.Host == host {
				g, err := m.o.Dispatch.Adopt(rctx, mem.rec, c.UUID)
				if err == nil {
					gen = g
				}
				aerr = err
			}
		}
		rcancel()
	}

	m.pass.Lock()
	adopted, ferr := m.finishAdopt(c.UUID, host, specRev, aerr, definite(aerr))
	m.pass.Unlock()
	done()
	if !adopted {
		switch {
		case errors.Is(ferr, errAdoptUnsettled):
			return DomainView{}, errorf(Busy, "%s on %s: %v", c.Name, host, ferr)
		case ferr == aerr:
			return DomainView{}, errorf(BadState, "%s was not adopted on %s (it runs there as before, outside the pool): %v", c.Name, host, aerr)
		}
		return DomainView{}, errorf(BadState, "%s was not adopted on %s: %v", c.Name, host, ferr)
	}
	spec.Adopting, spec.Desired = nil, DesiredRunning
	return view(c.UUID, &domain{spec: spec, status: &Status{State: StateRunning, Host: host, Since: time.Now().UTC()}, owner: host, ownerGen: gen}), nil
}

// adopting refuses an API change of a domain being adopted.
func (m *master) adopting(u string, d *domain) error {
	m.mu.Lock()
	dp, busy := m.inflight[u]
	m.mu.Unlock()
	if d.spec.Adopting != nil || busy && dp.adopt {
		host := dp.host
		if d.spec.Adopting != nil {
			host = d.spec.Adopting.Host
		}
		return errorf(BadState, "domain %s is being adopted into the pool on %s; try again when it is (pool.domains shows it running)", d.spec.Name, host)
	}
	return nil
}

// SetHA turns a pool domain's HA on or off: whether the master places it
// again when the member it runs on leaves the pool.
func (r *Runner) SetHA(ctx context.Context, ref string, ha bool) (DomainView, error) {
	return r.changeSpec(ctx, ref, func(_ *domain, spec *Spec) (bool, *Status) {
		changed := spec.HA != ha
		spec.HA = ha
		return changed, nil
	})
}
