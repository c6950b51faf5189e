package poolmaster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/client"
	"github.com/ovs-agent/ovs-agent/agent/pool"
)

// Dispatcher starts and stops a pool domain on a member: the agent side
// (pool.start_local / pool.stop_local on that member's agent).
type Dispatcher interface {
	// Start has the member start the domain, taking its owner key; it
	// answers the generation. An error means it does not run there.
	Start(ctx context.Context, to pool.MemberRecord, uuid string) (generation int64, err error)
	// Stop has the member stop the domain and release its owner key.
	Stop(ctx context.Context, on pool.MemberRecord, uuid string) error
	// Adopt has the member take the owner key of a domain that runs there
	// outside the pool, without stopping it; it answers the generation.
	// An error means the member does not own it.
	Adopt(ctx context.Context, on pool.MemberRecord, uuid string) (generation int64, err error)
}

// Options tune a Runner.
type Options struct {
	Dispatch Dispatcher
	Log      *zap.Logger
	// Resync is how often the master looks at the whole pool even when
	// no key changed (retries of failed starts, pending domains);
	// default 2s.
	Resync time.Duration
	// RetryAfter is how long a member where a domain's start (or stop)
	// failed is left out for that domain; default 15s.
	RetryAfter time.Duration
	// DispatchTimeout bounds one start or stop on a member; default 3m.
	DispatchTimeout time.Duration
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Resync <= 0 {
		o.Resync = 2 * time.Second
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 15 * time.Second
	}
	if o.DispatchTimeout <= 0 {
		o.DispatchTimeout = 3 * time.Minute
	}
}

// Runner is a member's part in mastering the pool: it campaigns while
// the member holds its lease and runs the master loop while it is master.
type Runner struct {
	m   *pool.Member
	o   Options
	log *zap.Logger

	mu  sync.Mutex
	cur *master

	passes atomic.Int64 // passes completed, by any mastership of this Runner
}

// New prepares a Runner for m; Run starts it.
func New(m *pool.Member, o Options) *Runner {
	o.defaults()
	return &Runner{m: m, o: o, log: o.Log.With(zap.String("pool", m.Pool()), zap.String("host", m.Host()))}
}

// Member is the Runner's member.
func (r *Runner) Member() *pool.Member { return r.m }

// Run campaigns and, on each win, masters the pool until deposed; it
// returns when ctx ends or the member's lease is lost.
func (r *Runner) Run(ctx context.Context) {
	for ctx.Err() == nil && r.m.Err() == nil {
		ms, err := r.m.Campaign(ctx)
		if err != nil {
			if ctx.Err() != nil || r.m.Err() != nil {
				return
			}
			r.log.Warn("pool master campaign failed; campaigning again", zap.Error(err))
			if !sleep(ctx, r.o.Resync) {
				return
			}
			continue
		}
		mst := newMaster(r, ms)
		// its context exists before anyone may find it current (Adopt
		// uses it)
		mctx, mcancel := context.WithCancel(ctx)
		mst.ctx = mctx
		r.mu.Lock()
		r.cur = mst
		r.mu.Unlock()
		mst.loop(mctx, mcancel)
		r.mu.Lock()
		r.cur = nil
		r.mu.Unlock()
		mst.mu.Lock()
		mst.ending = true
		mst.mu.Unlock()
		mst.wg.Wait()
		if ctx.Err() != nil && r.m.Err() == nil {
			// Stopping while the lease lives on (an agent that owns
			// domains leaves its lease to etcd): another member takes
			// the mastership over now, not when the lease expires.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := ms.Resign(rctx); err != nil {
				r.log.Warn("resign the pool mastership", zap.Error(err))
			}
			cancel()
		}
	}
}

// current is the running mastership, nil when this member is not master.
func (r *Runner) current() *master {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// IsMaster says whether this member runs the master loop now.
func (r *Runner) IsMaster() bool { return r.current() != nil }

// master is one mastership's loop and what it remembers.
type master struct {
	r    *Runner
	ms   *pool.Master
	pool string
	cli  *clientv3.Client
	log  *zap.Logger
	o    Options
	kick chan struct{}
	ctx  context.Context // ends with the mastership
	wg   sync.WaitGroup

	// pass serializes passes and API changes: each sees the other's
	// writes.
	pass sync.Mutex

	mu       sync.Mutex
	ending   bool                          // the mastership is ending: no new work counted in wg
	inflight map[string]dispatch           // uuid -> the start or stop under way
	reserved map[string]reservation        // uuid -> memory placed on a host
	failed   map[string]map[string]failure // uuid -> host -> last failed start or stop
}

// dispatch is a start or stop under way on a member.
type dispatch struct {
	host    string
	cancel  context.CancelFunc // ends it when the member leaves the pool
	givenUp bool
	adopt   bool // an adopt (Adopt, resumeAdopt): the API's changes wait for it
}

// reservation is memory the master gave a domain on a host that the
// member's record may not count yet: until the record is rewritten after
// rev.
type reservation struct {
	host string
	mib  int64
	rev  int64 // 0 while the start is under way
}

type failure struct {
	at  time.Time
	err error
}

func newMaster(r *Runner, ms *pool.Master) *master {
	return &master{
		r: r, ms: ms, pool: r.m.Pool(), cli: r.m.Client(), o: r.o,
		log:      r.log.With(zap.Int64("election_revision", ms.Revision())),
		kick:     make(chan struct{}, 1),
		inflight: map[string]dispatch{},
		reserved: map[string]reservation{},
		failed:   map[string]map[string]failure{},
	}
}

// poke asks for a pass soon.
func (m *master) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// loop runs passes on every change of the pool's keys, every Resync and
// when poked, until deposed or ctx ends.
func (m *master) loop(ctx context.Context, cancel context.CancelFunc) {
	defer cancel()
	go func() {
		select {
		case <-m.ms.Deposed():
			cancel()
		case <-ctx.Done():
		}
	}()
	m.log.Info("pool master loop started")
	defer m.log.Info("pool master loop ended")
	wch := m.cli.Watch(clientv3.WithRequireLeader(ctx), pool.Prefix(m.pool), clientv3.WithPrefix())
	t := time.NewTicker(m.o.Resync)
	defer t.Stop()
	m.poke()
	for {
		select {
		case <-ctx.Done():
			return
		case wr, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return
				}
				if !sleep(ctx, 200*time.Millisecond) {
					return
				}
				wch = m.cli.Watch(clientv3.WithRequireLeader(ctx), pool.Prefix(m.pool), clientv3.WithPrefix())
			} else if wr.Err() != nil {
				continue
			}
		case <-t.C:
		case <-m.kick:
		}
		if err := m.reconcile(ctx); err != nil {
			if errors.Is(err, pool.ErrDeposed) {
				return
			}
			if ctx.Err() == nil {
				m.log.Warn("pool master pass failed", zap.Error(err))
			}
		}
		m.r.passes.Add(1)
	}
}

// write is a guarded master write that applies ops only while the spec
// of uuid exists (a status is never left behind by a delete).
func (m *master) write(ctx context.Context, uuid string, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	return m.ms.WriteIf(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(specKey(m.pool, uuid)), ">", 0)}, ops...)
}

// setStatus writes st for uuid unless prev says the same.
func (m *master) setStatus(ctx context.Context, uuid string, prev *Status, st Status) error {
	if prev != nil && prev.State == st.State && prev.Host == st.Host && prev.Reason == st.Reason {
		return nil
	}
	st.Since = time.Now().UTC()
	if prev != nil && prev.State == st.State {
		st.Since = prev.Since
	}
	b, _ := json.Marshal(st)
	_, err := m.write(ctx, uuid, clientv3.OpPut(statusKey(m.pool, uuid), string(b)))
	if errors.Is(err, pool.ErrConditionFailed) {
		return nil // deleted meanwhile
	}
	return err
}

// queued is a domain waiting to be placed.
type queued struct {
	uuid   string
	d      *domain
	need   Need
	reason string // why it is placed again, for the status while it waits
}

// reconcile is one pass: it reads the whole pool, brings every status in
// line with the owner keys, stops what should not run, and places what
// should run and has no owner, highest priority first.
func (m *master) reconcile(ctx context.Context) error {
	m.pass.Lock()
	defer m.pass.Unlock()
	// What is under way is taken before the keys are read: a start that
	// ends after this has its owner key in the read, one that ended
	// before is not counted as under way.
	m.mu.Lock()
	inflight := make(map[string]dispatch, len(m.inflight))
	for k, v := range m.inflight {
		inflight[k] = v
	}
	m.mu.Unlock()
	s, err := read(ctx, m.cli, m.pool, m.log)
	if err != nil {
		return err
	}
	now := time.Now()
	for uuid, dp := range inflight {
		if _, alive := s.members[dp.host]; !alive && !dp.givenUp {
			// A call to a member that is gone (hung, cut off, dead)
			// would hold the domain until its timeout: it is given up,
			// and the domain placed again once its owner key (if the
			// member took one) is gone.
			m.log.Warn("giving up a dispatch to a member that left the pool", zap.String("uuid", uuid), zap.String("on", dp.host))
			dp.cancel()
			m.mu.Lock()
			if cur, ok := m.inflight[uuid]; ok && cur.host == dp.host {
				cur.givenUp = true
				m.inflight[uuid] = cur
			}
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	for uuid, res := range m.reserved {
		d := s.domains[uuid]
		mem, ok := s.members[res.host]
		switch {
		case res.rev == 0: // under way
		case !ok, d == nil, d.owner != res.host, mem.modRev > res.rev:
			delete(m.reserved, uuid)
		}
	}
	for uuid, hosts := range m.failed {
		for h, f := range hosts {
			if now.Sub(f.at) >= m.o.RetryAfter {
				delete(hosts, h)
			}
		}
		if len(hosts) == 0 || s.domains[uuid] == nil {
			delete(m.failed, uuid)
		}
	}
	m.mu.Unlock()

	uuids := make([]string, 0, len(s.domains))
	for u := range s.domains {
		uuids = append(uuids, u)
	}
	sort.Strings(uuids)
	var queue []queued
	for _, uuid := range uuids {
		d := s.domains[uuid]
		if d.bad != nil {
			m.log.Warn("pool domain unreadable", zap.String("domain", uuid), zap.Error(d.bad))
			continue
		}
		if _, busy := inflight[uuid]; busy {
			continue
		}
		if d.spec.Adopting != nil {
			if err := m.adoptPending(ctx, s, uuid, d); err != nil {
				return err
			}
			continue
		}
		if d.owner != "" {
			if d.spec.Desired == DesiredStopped {
				m.stopOn(ctx, s, uuid, d)
				continue
			}
			reason := ""
			if _, ok := s.members[d.owner]; !ok {
				reason = "its host's member key is gone; it is not restarted while its owner key exists"
			}
			if err := m.setStatus(ctx, uuid, d.status, Status{State: StateRunning, Host: d.owner, Reason: reason}); err != nil {
				return err
			}
			continue
		}
		if d.spec.Desired == DesiredStopped {
			reason := "stopped"
			if d.status != nil && d.status.State == StateStopped && d.status.Reason != "" {
				reason = d.status.Reason
			}
			if err := m.setStatus(ctx, uuid, d.status, Status{State: StateStopped, Reason: reason}); err != nil {
				return err
			}
			continue
		}
		// Desired running, and no owner.
		need, err := needOf(d.spec)
		if err != nil {
			if err := m.setStatus(ctx, uuid, d.status, Status{State: StatePending, Reason: "its vm.cfg does not parse: " + err.Error()}); err != nil {
				return err
			}
			continue
		}
		q := queued{uuid: uuid, d: d, need: need}
		if d.status != nil && d.status.State == StateRunning && d.status.Host != "" {
			host := d.status.Host
			why := fmt.Sprintf("it stopped on %s (its owner key is gone)", host)
			if _, alive := s.members[host]; !alive {
				why = fmt.Sprintf("%s left the pool (its lease ended) while the domain ran there", host)
			}
			if !d.spec.HA {
				if err := m.stopLost(ctx, uuid, d, why+"; it is not HA, so it stays stopped until started again"); err != nil {
					return err
				}
				continue
			}
			q.reason = "HA restart: " + why
			m.log.Info("HA domain to restart", zap.String("domain", d.spec.Name), zap.String("uuid", uuid), zap.String("why", why))
		} else if d.status != nil && d.status.State == StatePending && d.status.Reason != "" {
			q.reason = restartPrefix(d.status.Reason)
		}
		queue = append(queue, q)
	}
	sort.SliceStable(queue, func(i, j int) bool {
		a, b := queue[i].d.spec, queue[j].d.spec
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if a.HA != b.HA {
			return a.HA
		}
		return a.Name < b.Name
	})
	cands := m.candidates(s)
	for _, q := range queue {
		cs := make([]Candidate, len(cands))
		copy(cs, cands)
		m.mu.Lock()
		for i := range cs {
			if f, ok := m.failed[q.uuid][cs[i].Host]; ok {
				// The time, not the age: the reason stays the same
				// from pass to pass, and is written once.
				cs[i].Excluded = fmt.Sprintf("the start there failed at %s, tried again after %s (%v)",
					f.at.UTC().Format(time.TimeOnly), f.at.Add(m.o.RetryAfter).UTC().Format(time.TimeOnly), f.err)
			}
		}
		m.mu.Unlock()
		host, why := Place(q.need, cs)
		if host == "" {
			if q.reason != "" {
				why = q.reason + "; waiting: " + why
			}
			if err := m.setStatus(ctx, q.uuid, q.d.status, Status{State: StatePending, Reason: why}); err != nil {
				return err
			}
			continue
		}
		for i := range cands {
			if cands[i].Host == host {
				cands[i].FreeMiB -= q.need.MemoryMiB
			}
		}
		if err := m.dispatchStart(ctx, s, q, host); err != nil {
			return err
		}
	}
	return nil
}

// restartPrefix keeps the "HA restart: ..." part of a pending reason,
// so that a domain waiting for room still says why it is placed again.
func restartPrefix(reason string) string {
	if !strings.HasPrefix(reason, "HA restart: ") {
		return ""
	}
	for _, sep := range []string{"; waiting: ", "; starting on "} {
		if i := strings.Index(reason, sep); i > 0 {
			return reason[:i]
		}
	}
	return reason
}

// candidates are the members placement may choose from, with the memory
// the master has placed on them since their records were written taken
// off.
func (m *master) candidates(s *Snapshot) []Candidate {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Candidate, 0, len(s.members))
	for host, mem := range s.members {
		free := mem.rec.FreeMemoryMiB
		for _, res := range m.reserved {
			if res.host == host {
				free -= res.mib
			}
		}
		_, maint := s.maintenance[host]
		c := Candidate{Host: host, FreeMiB: free, Engines: mem.rec.Engines, Maintenance: maint}
		if mem.rec.Leaving {
			c.Excluded = "it is stopping (its pool domains are migrating away)"
		}
		if mem.rec.Address == "" {
			c.Excluded = "its record has no API address (its API is not served yet, or [server] tcp_server = no)"
		}
		out = append(out, c)
	}
	return out
}

// stopLost marks a non-HA domain whose host is gone (or on which it
// stopped) stopped, desired stopped too, in one write that holds only if
// the spec is as read and no owner appeared.
func (m *master) stopLost(ctx context.Context, uuid string, d *domain, reason string) error {
	spec := d.spec
	spec.Desired = DesiredStopped
	sb, _ := json.Marshal(spec)
	st := Status{State: StateStopped, Reason: reason, Since: time.Now().UTC()}
	stb, _ := json.Marshal(st)
	_, err := m.ms.WriteIf(ctx, []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(specKey(m.pool, uuid)), "=", d.specRev),
		clientv3.Compare(clientv3.CreateRevision(pool.OwnerKey(m.pool, uuid)), "=", 0),
	}, clientv3.OpPut(specKey(m.pool, uuid), string(sb)), clientv3.OpPut(statusKey(m.pool, uuid), string(stb)))
	if errors.Is(err, pool.ErrConditionFailed) {
		m.poke()
		return nil
	}
	if err == nil {
		m.log.Warn("pool domain stopped", zap.String("domain", spec.Name), zap.String("uuid", uuid), zap.String("reason", reason))
	}
	return err
}

// dispatchStart records the domain as starting on host and has the
// member start it, in the background.
func (m *master) dispatchStart(ctx context.Context, s *Snapshot, q queued, host string) error {
	why := "starting on " + host
	if q.reason != "" {
		why = q.reason + "; " + why
	}
	if err := m.setStatus(ctx, q.uuid, q.d.status, Status{State: StatePending, Host: host, Reason: why}); err != nil {
		return err
	}
	rec := s.members[host].rec
	dctx, cancel := context.WithTimeout(m.ctx, m.o.DispatchTimeout)
	m.mu.Lock()
	m.inflight[q.uuid] = dispatch{host: host, cancel: cancel}
	m.reserved[q.uuid] = reservation{host: host, mib: q.need.MemoryMiB}
	m.mu.Unlock()
	m.log.Info("dispatching pool domain", zap.String("domain", q.d.spec.Name), zap.String("uuid", q.uuid), zap.String("to", host), zap.Int64("memory_mib", q.need.MemoryMiB))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		gen, err := m.o.Dispatch.Start(dctx, rec, q.uuid)
		cancel()
		m.mu.Lock()
		delete(m.inflight, q.uuid)
		if err != nil {
			delete(m.reserved, q.uuid)
			if m.failed[q.uuid] == nil {
				m.failed[q.uuid] = map[string]failure{}
			}
			m.failed[q.uuid][host] = failure{at: time.Now(), err: err}
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("pool domain start failed; placing it elsewhere", zap.String("domain", q.d.spec.Name), zap.String("uuid", q.uuid), zap.String("on", host), zap.Error(err))
			m.poke()
			return
		}
		m.log.Info("pool domain started", zap.String("domain", q.d.spec.Name), zap.String("uuid", q.uuid), zap.String("on", host), zap.Int64("generation", gen))
		m.pass.Lock()
		b, _ := json.Marshal(Status{State: StateRunning, Host: host, Since: time.Now().UTC()})
		resp, werr := m.write(m.ctx, q.uuid, clientv3.OpPut(statusKey(m.pool, q.uuid), string(b)))
		m.pass.Unlock()
		m.mu.Lock()
		if werr == nil {
			m.reserved[q.uuid] = reservation{host: host, mib: q.need.MemoryMiB, rev: resp.Header.Revision}
		} else {
			delete(m.reserved, q.uuid)
		}
		m.mu.Unlock()
		if werr != nil && !errors.Is(werr, pool.ErrConditionFailed) {
			m.log.Warn("record a started pool domain", zap.String("uuid", q.uuid), zap.Error(werr))
		}
		m.poke()
	}()
	return nil
}

// stopOn has the owner of a domain whose desired state is stopped stop
// it, in the background.
func (m *master) stopOn(ctx context.Context, s *Snapshot, uuid string, d *domain) {
	mem, ok := s.members[d.owner]
	m.mu.Lock()
	f, failed := m.failed[uuid][d.owner]
	m.mu.Unlock()
	switch {
	case !ok:
		_ = m.setStatus(ctx, uuid, d.status, Status{State: StateRunning, Host: d.owner, Reason: "to be stopped, but its host's member record is gone"})
		return
	case failed:
		_ = m.setStatus(ctx, uuid, d.status, Status{State: StateRunning, Host: d.owner, Reason: fmt.Sprintf("to be stopped; the stop failed (%v), trying again", f.err)})
		return
	}
	dctx, cancel := context.WithTimeout(m.ctx, m.o.DispatchTimeout)
	m.mu.Lock()
	m.inflight[uuid] = dispatch{host: d.owner, cancel: cancel}
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := m.o.Dispatch.Stop(dctx, mem.rec, uuid)
		cancel()
		m.mu.Lock()
		delete(m.inflight, uuid)
		if err != nil {
			if m.failed[uuid] == nil {
				m.failed[uuid] = map[string]failure{}
			}
			m.failed[uuid][d.owner] = failure{at: time.Now(), err: err}
		}
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("pool domain stop failed", zap.String("uuid", uuid), zap.String("on", d.owner), zap.Error(err))
		} else {
			m.log.Info("pool domain stopped", zap.String("uuid", uuid), zap.String("on", d.owner))
			m.pass.Lock()
			_ = m.setStatus(m.ctx, uuid, d.status, Status{State: StateStopped, Reason: "stopped by request on " + d.owner})
			m.pass.Unlock()
		}
		m.poke()
	}()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// AdoptTimeout is how long a spec marked Adopting may stay so with no
// owner key before a master removes it (its adopt failed, or its master
// went away half way).
func (m *master) adoptTimeout() time.Duration { return m.o.DispatchTimeout + 30*time.Second }

// enter counts work of this mastership's that its end must wait for
// (wg); false once the mastership is ending.
func (m *master) enter() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ending {
		return false
	}
	m.wg.Add(1)
	return true
}

// definite says whether an adopt's error is the member's own answer (a
// fault it gave), not a call that may not have reached it or whose answer
// was lost.
func definite(err error) bool {
	var f *client.Fault
	return errors.As(err, &f)
}

// adoptPending handles a spec marked Adopting that no adopt of this
// master's is under way for (its master went away, or its end was not
// written): with the marked member's owner key, the member is asked again
// whether it holds the domain (it answers the same for one it holds,
// handing its VMM the lease if that had not reached it), and finishAdopt
// writes the end; an answer that did not come is tried again after
// RetryAfter, the mark kept. Without a key after the adopt timeout, the
// spec is removed (the guest runs on outside the pool); before it, the
// mark is kept.
func (m *master) adoptPending(ctx context.Context, s *Snapshot, uuid string, d *domain) error {
	mark := d.spec.Adopting
	if d.owner != "" {
		if d.owner != mark.Host {
			// not the adopting member's key (an agent that started it
			// against the mark): it is stopped there, never left running
			// beside the copy outside the pool
			m.log.Error("a domain being adopted on one member is owned by another: stopped there", zap.String("domain", d.spec.Name), zap.String("adopting", mark.Host), zap.String("owner", d.owner))
			_, err := m.finishAdopt(uuid, mark.Host, d.specRev, fmt.Errorf("%s took its owner key while it was being adopted on %s", d.owner, mark.Host), true)
			if err != nil {
				m.log.Warn("settle a foreign owner of a domain being adopted", zap.String("uuid", uuid), zap.Error(err))
			}
			return nil
		}
		mem, ok := s.members[d.owner]
		m.mu.Lock()
		f, failed := m.failed[uuid][d.owner]
		m.mu.Unlock()
		switch {
		case !ok:
			return m.setStatus(ctx, uuid, d.status, Status{State: StatePending, Host: d.owner, Reason: "being adopted on " + d.owner + ", whose member record is gone"})
		case failed:
			return m.setStatus(ctx, uuid, d.status, Status{State: StatePending, Host: d.owner,
				Reason: fmt.Sprintf("being adopted on %s; asking it failed at %s (%v), tried again after %s", d.owner, f.at.UTC().Format(time.TimeOnly), f.err, f.at.Add(m.o.RetryAfter).UTC().Format(time.TimeOnly))})
		case !m.enter():
			return nil
		}
		dctx, cancel := context.WithTimeout(m.ctx, m.o.DispatchTimeout)
		m.mu.Lock()
		m.inflight[uuid] = dispatch{host: d.owner, cancel: cancel, adopt: true}
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			defer cancel()
			_, err := m.o.Dispatch.Adopt(dctx, mem.rec, uuid)
			m.pass.Lock()
			if err != nil && !definite(err) {
				m.mu.Lock()
				if m.failed[uuid] == nil {
					m.failed[uuid] = map[string]failure{}
				}
				m.failed[uuid][d.owner] = failure{at: time.Now(), err: err}
				m.mu.Unlock()
			} else if _, ferr := m.finishAdopt(uuid, d.owner, d.specRev, err, true); ferr != nil && err == nil {
				m.log.Warn("settle an adopt", zap.String("uuid", uuid), zap.Error(ferr))
			}
			m.pass.Unlock()
			m.mu.Lock()
			delete(m.inflight, uuid)
			m.mu.Unlock()
			m.poke()
		}()
		return nil
	}
	if time.Since(mark.Since) < m.adoptTimeout() {
		return m.setStatus(ctx, uuid, d.status, Status{State: StatePending, Host: mark.Host, Reason: "being adopted: it runs on " + mark.Host})
	}
	_, err := m.ms.WriteIf(ctx, []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(pool.OwnerKey(m.pool, uuid)), "=", 0),
		clientv3.Compare(clientv3.ModRevision(specKey(m.pool, uuid)), "=", d.specRev),
	}, clientv3.OpDelete(specKey(m.pool, uuid)), clientv3.OpDelete(statusKey(m.pool, uuid)))
	if errors.Is(err, pool.ErrConditionFailed) {
		m.poke()
		return nil
	}
	if err == nil {
		m.log.Warn("an adopt that did not end removed: the domain runs on outside the pool", zap.String("domain", d.spec.Name), zap.String("uuid", uuid), zap.String("on", mark.Host))
	}
	return err
}

// errAdoptUnsettled: an adopt's outcome is not known yet (the member's
// answer did not come); the mark stays and a pass asks again.
var errAdoptUnsettled = errors.New("its outcome is not known yet: the pool asks the member again (pool.domains shows it pending until then)")

// finishAdopt writes an adopt's end, with pass held. Adopted (the member
// answered it holds the domain), the mark is cleared and the domain is
// desired running there. Not adopted: without an owner key the spec is
// removed (the guest runs on outside the pool); with host's key and a
// definite refusal it is made desired stopped, so that host is asked to
// stop it and let the key go (never placed elsewhere while it may run
// there); with host's key and no answer, the mark stays (errAdoptUnsettled:
// a pass asks again). It answers whether the domain is adopted, and why
// not.
func (m *master) finishAdopt(uuid, host string, specRev int64, aerr error, isDefinite bool) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 30*time.Second)
	defer cancel()
	got, err := m.cli.Txn(ctx).Then(clientv3.OpGet(specKey(m.pool, uuid)), clientv3.OpGet(pool.OwnerKey(m.pool, uuid))).Commit()
	if err != nil {
		return false, fmt.Errorf("read the records of %s: %w (a master settles the adopt later)", uuid, err)
	}
	specKVs, ownerKVs := got.Responses[0].GetResponseRange().Kvs, got.Responses[1].GetResponseRange().Kvs
	if len(specKVs) == 0 || specKVs[0].ModRevision != specRev {
		return false, fmt.Errorf("the spec of %s changed while it was being adopted (a master settles it)", uuid)
	}
	var spec Spec
	if err := json.Unmarshal(specKVs[0].Value, &spec); err != nil {
		return false, err
	}
	owner := ""
	if len(ownerKVs) == 1 {
		var o pool.OwnerRecord
		if err := json.Unmarshal(ownerKVs[0].Value, &o); err != nil {
			return false, err
		}
		owner = o.Host
	}
	specCond := clientv3.Compare(clientv3.ModRevision(specKey(m.pool, uuid)), "=", specRev)
	write := func(spec Spec, st Status, conds ...clientv3.Cmp) error {
		sb, _ := json.Marshal(spec)
		stb, _ := json.Marshal(st)
		_, err := m.ms.WriteIf(ctx, append([]clientv3.Cmp{specCond}, conds...),
			clientv3.OpPut(specKey(m.pool, uuid), string(sb)), clientv3.OpPut(statusKey(m.pool, uuid), string(stb)))
		return err
	}
	switch {
	case aerr == nil && owner == host:
		spec.Adopting, spec.Desired = nil, DesiredRunning
		if err := write(spec, Status{State: StateRunning, Host: host, Since: time.Now().UTC()}); err != nil {
			m.log.Warn("an adopted domain's record not written (a master writes it later)", zap.String("uuid", uuid), zap.Error(err))
		} else {
			m.log.Info("domain adopted", zap.String("domain", spec.Name), zap.String("uuid", uuid), zap.String("on", host))
		}
		return true, nil
	case aerr == nil:
		aerr, isDefinite = fmt.Errorf("%s answered it adopted %s, but the owner key is %q's", host, spec.Name, owner), true
	}
	if owner == "" {
		_, err := m.ms.WriteIf(ctx, []clientv3.Cmp{specCond, clientv3.Compare(clientv3.CreateRevision(pool.OwnerKey(m.pool, uuid)), "=", 0)},
			clientv3.OpDelete(specKey(m.pool, uuid)), clientv3.OpDelete(statusKey(m.pool, uuid)))
		if err != nil {
			return false, fmt.Errorf("%w; and its record could not be removed (%v): a master settles it", aerr, err)
		}
		m.log.Warn("domain not adopted", zap.String("domain", spec.Name), zap.String("on", host), zap.Error(aerr))
		return false, aerr
	}
	if owner == host && !isDefinite {
		return false, fmt.Errorf("%v: %w", aerr, errAdoptUnsettled)
	}
	spec.Adopting, spec.Desired = nil, DesiredStopped
	if err := write(spec, Status{State: StateRunning, Host: owner, Reason: "its adopt did not end (" + aerr.Error() + "); to be stopped", Since: time.Now().UTC()}); err != nil {
		return false, fmt.Errorf("%v; %s holds its owner key and the record could not be made desired stopped (%v): a master settles it", aerr, owner, err)
	}
	m.log.Warn("an adopt that did not end on a member holding the owner key: the domain is stopped there", zap.String("domain", spec.Name), zap.String("owner", owner), zap.Error(aerr))
	return false, fmt.Errorf("%v; %s holds its owner key without holding the domain: the pool stops it there (start it again with pool.start_domain)", aerr, owner)
}
