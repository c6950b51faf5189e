package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/hostinfo"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/agent/tlscert"
	"github.com/ovs-agent/ovs-agent/config"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
	"github.com/ovs-agent/ovs-agent/vmm"
)

// poolLink is the agent's membership of its [pool], when it has one: it
// joins in the background (the API serves meanwhile), taking up the lease
// a killed or crashed previous run left (state_dir/pool-lease.json) while
// etcd still holds it; joins again with a new lease after one is lost;
// keeps the member record up to date; and leaves, revoking the lease, when
// the agent stops owning no pool domain. The domains it owns (poolDomains)
// get the lease at every renewal. A lease that lapses by the agent's own
// deadline is taken up again if etcd still holds it (the guests resume);
// one etcd says is gone is final: the domains run under it are destroyed
// and the agent joins anew. An agent that stops while it owns domains
// leaves its lease to etcd (their guests run on, and the next start takes
// the lease up, or they fence and the lease expires), never revoking what
// would let another member start them while they still run here. While a
// member it takes part in the mastership (agent/poolmaster's Runner: it
// campaigns, and runs the master loop when elected; it resigns when the
// agent stops).
type poolLink struct {
	s    pool.Settings
	host string // the name the agent is a member by
	// leaseFile records the lease while the agent is a member, so that
	// the agent started again (after a crash or kill) takes it up.
	leaseFile string
	info      func() pool.Info
	log       *zap.Logger
	domains   *poolDomains
	// rpc calls the other members' agents: the master dispatching, a
	// member forwarding pool calls to the master.
	rpc *poolmaster.RPC
	// refresh asks for the member record to be written again now (a
	// domain started or stopped here: the free memory changed).
	refresh chan struct{}
	// leaving is set when the agent stops and drains (pooldrain.go): the
	// member record says so, and it gets no new placements.
	leaving atomic.Bool

	stop context.CancelFunc
	done chan struct{}

	mu     sync.Mutex
	member *pool.Member
	runner *poolmaster.Runner // the member's part in the mastership
	state  string             // joining, member, lost
	err    error              // why the last join failed or the lease was lost
	since  time.Time
}

// Pool link states, as host.info shows them.
const (
	poolJoining = "joining"
	poolMember  = "member"
	poolLost    = "lost"
)

// poolSettings checks [pool] and reads its files (CA, client pair,
// password); nil settings when the agent is in no pool.
func poolSettings(cfg *config.Config) (*pool.Settings, error) {
	if cfg.Pool.Name == "" {
		return nil, nil
	}
	s, err := pool.SettingsFrom(cfg)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// poolMemberName is the name the agent is a member by.
func poolMemberName(cfg *config.Config) (string, error) {
	if cfg.Pool.HostName != "" {
		return cfg.Pool.HostName, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", config.OptionError(cfg, "pool", "host_name", fmt.Errorf("empty, and the system's host name cannot be read: %w", err))
	}
	return h, nil
}

// openPool starts the pool link when [pool] names a pool; it returns
// what stops it.
func (a *Agent) openPool(cfg *config.Config) (func(), error) {
	s, err := poolSettings(cfg)
	if err != nil || s == nil {
		return func() {}, err
	}
	host, err := poolMemberName(cfg)
	if err != nil {
		return nil, err
	}
	addr := poolAPIAddress(cfg, host)
	reloc := poolRelocationAddress(cfg, host)
	reserve := uint64(cfg.Agent.MemoryReserve) << 20
	hypervisor := cfg.Agent.Hypervisor
	ssl := cfg.Server.SSL
	l := &poolLink{
		s:         *s,
		host:      host,
		leaseFile: filepath.Join(cfg.Agent.StateDir, "pool-lease.json"),
		log:       a.log.Named("pool"),
		info: func() pool.Info {
			in := pool.Info{Host: host, Address: addr, FreeMemoryMiB: a.freeForDomains(reserve), Engines: a.engines(hypervisor), Relocation: reloc}
			if ssl {
				// Until the certificate is loaded the API is not served
				// yet: no address, so that no peer calls it.
				if in.TLSFingerprint = tlscert.Fingerprint(a.cert.Load()); in.TLSFingerprint == "" {
					in.Address = ""
				}
			}
			return in
		},
		rpc:     &poolmaster.RPC{From: host, Credentials: a.peerCredentials, Timeout: poolmaster.StopTimeout*time.Second + time.Minute},
		state:   poolJoining,
		since:   time.Now(),
		done:    make(chan struct{}),
		refresh: make(chan struct{}, 1),
	}
	info := l.info
	l.info = func() pool.Info {
		in := info()
		in.Leaving = l.leaving.Load()
		return in
	}
	l.s.Resume = l.previousLease()
	l.domains = newPoolDomains(a, l.log.Named("domains"))
	stopped := l.domains.localStopped
	a.poolStopped.Store(&stopped)
	l.s.OnRenew = l.domains.renewed
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	go l.domains.run(ctx)
	go l.run(ctx)
	a.pool = l
	return l.close, nil
}

// poolAPIAddress is the host:port peers reach this agent's API at.
func poolAPIAddress(cfg *config.Config, host string) string {
	return peerAddress(cfg.Server.TCPServer, cfg.Server.ListenAddress, cfg.Server.Port, host)
}

// peerAddress is the host:port peers reach a listener of this agent at
// (on it, on addr:port; a wildcard addr is host): "" when it is off.
func peerAddress(on bool, addr string, port int, host string) string {
	if !on {
		return ""
	}
	if wildcard(addr) {
		addr = host
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func wildcard(addr string) bool {
	ip := net.ParseIP(addr)
	return addr == "" || (ip != nil && ip.IsUnspecified())
}

// freeForDomains is the memory, in MiB, domains may still be given here.
func (a *Agent) freeForDomains(reserve uint64) int64 {
	total, err := hostinfo.MemoryTotal()
	if err != nil {
		return 0
	}
	used := reserve + a.domains.Committed()
	if used >= total {
		return 0
	}
	return int64((total - used) >> 20)
}

// engines lists the engines domains can start on here.
func (a *Agent) engines(hypervisor string) []string {
	var out []string
	switch kvm := vmm.KVMUsable() == nil; {
	case hypervisor == "sim", hypervisor == "auto" && !kvm:
		out = append(out, vmm.EngineSim)
	case kvm:
		out = append(out, vmm.EngineKVM)
	}
	if a.qemu != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if a.qemu.Facts(ctx).Usable {
			out = append(out, vmm.EngineQEMU)
		}
	}
	return out
}

// leaseRecord is the lease file's content.
type leaseRecord struct {
	Pool   string `json:"pool"`
	Member string `json:"member"`
	Lease  string `json:"lease"` // hex
}

// previousLease is the lease the agent's previous run left in the lease
// file for this pool and member name, 0 for none.
func (l *poolLink) previousLease() clientv3.LeaseID {
	data, err := boundedfile.ReadFile(l.leaseFile, 4096, boundedfile.NoFollow)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.log.Warn("pool lease file unreadable; joining under a new lease", zap.String("file", l.leaseFile), zap.Error(err))
		}
		return clientv3.NoLease
	}
	var r leaseRecord
	if err := json.Unmarshal(data, &r); err != nil || r.Pool != l.s.Pool || r.Member != l.host {
		return clientv3.NoLease // another pool or name: not this membership's lease
	}
	id, err := strconv.ParseInt(r.Lease, 16, 64)
	if err != nil {
		return clientv3.NoLease
	}
	return clientv3.LeaseID(id)
}

// recordLease writes m's lease to the lease file, or removes the file
// when m is nil.
func (l *poolLink) recordLease(m *pool.Member) {
	if m == nil {
		if err := os.Remove(l.leaseFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.log.Warn("remove pool lease file", zap.Error(err))
		}
		return
	}
	data, _ := json.Marshal(leaseRecord{Pool: l.s.Pool, Member: l.host, Lease: fmt.Sprintf("%x", int64(m.Lease()))})
	if err := atomicfile.WriteFile(l.leaseFile, data, 0o600); err != nil {
		l.log.Warn("write pool lease file: a restart will join under a new lease", zap.Error(err))
	}
}

// rejoinDelay is the pause between two attempts to join.
func (l *poolLink) rejoinDelay() time.Duration {
	return min(l.s.LeaseTTL/2, 5*time.Second)
}

// run joins the pool and stays a member until ctx ends.
func (l *poolLink) run(ctx context.Context) {
	defer close(l.done)
	for ctx.Err() == nil {
		bound := l.s.Client.DialTimeout + l.s.LeaseTTL
		if l.s.Resume != clientv3.NoLease {
			// Taking a lapsed lease up is a race with its expiry in
			// etcd: an attempt that hangs (on a dead connection) is
			// given up soon for a fresh one.
			bound = max(l.s.LeaseTTL/3, 2*time.Second)
		}
		jctx, cancel := context.WithTimeout(ctx, bound)
		m, err := pool.Join(jctx, l.s, l.info(), l.log)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			delay := l.rejoinDelay()
			var taken *pool.MemberExistsError
			switch {
			case l.s.Resume != clientv3.NoLease && errors.As(err, &taken):
				// The name is held by another lease than the one to
				// take up: trying again would only keep that one alive.
				l.log.Warn("the previous lease cannot be taken up: the member name is held by another; joining under a new lease",
					zap.String("lease", fmt.Sprintf("%x", int64(l.s.Resume))), zap.Error(err))
				l.s.Resume = clientv3.NoLease
			case l.s.Resume != clientv3.NoLease:
				// A lapsed lease may still be alive: its guests resume
				// only if it is taken up before etcd expires it.
				delay = resumeRetry
			}
			l.set(nil, poolJoining, err)
			l.log.Warn("cannot join the pool; trying again", zap.Error(err), zap.Duration("in", delay))
			if !sleepCtx(ctx, delay) {
				return
			}
			continue
		}
		if m.Resumed() {
			l.log.Info("took up the previous run's pool lease", zap.String("lease", fmt.Sprintf("%x", int64(m.Lease()))))
		}
		l.s.Resume = clientv3.NoLease // a lease once given up is not taken again
		l.recordLease(m)
		r := poolmaster.New(m, poolmaster.Options{Dispatch: l.rpc, Log: l.log.Named("master")})
		rctx, stopRunner := context.WithCancel(ctx)
		runnerDone := make(chan struct{})
		go func() { defer close(runnerDone); r.Run(rctx) }()
		l.set(m, poolMember, nil)
		l.mu.Lock()
		l.runner = r
		l.mu.Unlock()
		l.domains.joined(ctx, m)
		go l.watchMaintenance(rctx, m)
		l.stayMember(ctx, m)
		stopRunner()
		<-runnerDone
		if ctx.Err() != nil {
			l.domains.lost(context.Background(), m, pool.ErrClosed)
			if l.domains.holdsAny() {
				// Revoking would free the owner keys while the guests
				// still run here (or arrive, or are being handed over).
				l.log.Info("agent stopping while it owns pool domains: the lease is left to etcd (a start within its TTL takes it up)",
					zap.Strings("domains", l.domains.ownedNames()), zap.String("lease", fmt.Sprintf("%x", int64(m.Lease()))))
				m.Detach()
				return
			}
			l.leave(m)
			l.recordLease(nil)
			return
		}
		lerr := m.Err()
		l.domains.lost(ctx, m, lerr)
		l.set(nil, poolLost, lerr)
		if errors.Is(lerr, pool.ErrLeaseExpired) {
			// Lapsed by this agent's reckoning: etcd may hold the lease
			// still (it was cut off, not revoked). Join again taking
			// it up; a new lease if it is gone.
			m.Detach()
			l.s.Resume = m.Lease()
			if !sleepCtx(ctx, resumeRetry) {
				return
			}
			continue
		}
		l.leave(m) // the lease is gone or going; free the client
		l.recordLease(nil)
		if !sleepCtx(ctx, l.rejoinDelay()) {
			return
		}
	}
}

// resumeRetry is the pause between two attempts to take a lapsed lease up
// again.
const resumeRetry = 500 * time.Millisecond

// infoInterval is how often the member record is compared with the
// host's state.
const infoInterval = time.Second

// stayMember keeps m's record up to date (looked at every infoInterval,
// and when refreshInfo asks; written when it changed) until its lease is
// lost or ctx
// ends.
func (l *poolLink) stayMember(ctx context.Context, m *pool.Member) {
	// Looked at every second (what placement reads: free memory, the
	// API's address and certificate); written only when it changed.
	t := time.NewTicker(infoInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.Lost():
			return
		case <-t.C:
		case <-l.refresh:
		}
		uctx, cancel := context.WithTimeout(ctx, l.s.LeaseTTL)
		if err := m.SetInfo(uctx, l.info()); err != nil {
			l.log.Warn("update pool member record", zap.Error(err))
		}
		cancel()
	}
}

// refreshInfo has the member record written again soon, without waiting
// for the next period.
func (l *poolLink) refreshInfo() {
	select {
	case l.refresh <- struct{}{}:
	default:
	}
}

// leave closes m, revoking its lease, within a bound.
func (l *poolLink) leave(m *pool.Member) {
	ctx, cancel := context.WithTimeout(context.Background(), max(l.s.Client.DialTimeout, 2*time.Second))
	defer cancel()
	if err := m.Close(ctx); err != nil {
		l.log.Warn("leave the pool", zap.Error(err))
	}
}

func (l *poolLink) set(m *pool.Member, state string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.member, l.state, l.err, l.since = m, state, err, time.Now()
	if m == nil {
		l.runner = nil
	}
}

// current is the member and its Runner while the agent is a member; the
// state and error otherwise.
func (l *poolLink) current() (*pool.Member, *poolmaster.Runner, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.member, l.runner, l.state, l.err
}

// close leaves the pool and waits for the link to end.
func (l *poolLink) close() {
	l.stop()
	<-l.done
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// poolInfo is host.info's pool struct.
type poolInfo struct {
	Name     string  `xmlrpc:"name"`
	Member   string  `xmlrpc:"member"` // the name this agent is a member by
	State    string  `xmlrpc:"state"`  // joining, member or lost
	Since    string  `xmlrpc:"since"`  // when it entered the state, RFC 3339
	Lease    string  `xmlrpc:"lease,omitempty"`
	LeaseTTL float64 `xmlrpc:"lease_ttl_seconds"`
	// DeadlineIn is how long the lease holds without another renewal, by
	// this agent's reckoning.
	DeadlineIn float64 `xmlrpc:"lease_deadline_in_seconds"`
	// FencingMargin is how long before that deadline HA guests stop
	// writing.
	FencingMargin float64 `xmlrpc:"fencing_margin_seconds"`
	Master        string  `xmlrpc:"master,omitempty"`
	Error         string  `xmlrpc:"error,omitempty"`
	// Domains are the pool domains this agent owns (names).
	Domains []string `xmlrpc:"domains"`
}

// view says how the link stands; ctx bounds asking etcd for the master.
func (l *poolLink) view(ctx context.Context) poolInfo {
	l.mu.Lock()
	m, state, err, since := l.member, l.state, l.err, l.since
	l.mu.Unlock()
	pi := poolInfo{Name: l.s.Pool, Member: l.host, State: state, Since: since.UTC().Format(time.RFC3339),
		LeaseTTL: l.s.LeaseTTL.Seconds(), FencingMargin: l.s.FencingMargin.Seconds(), Domains: l.domains.ownedNames()}
	if err != nil {
		pi.Error = err.Error()
	}
	if m == nil {
		return pi
	}
	pi.Lease = fmt.Sprintf("%x", int64(m.Lease()))
	pi.DeadlineIn = max(time.Until(m.Deadline()).Seconds(), 0)
	mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if mi, err := m.Master(mctx); err == nil {
		pi.Master = mi.Host
	}
	return pi
}
