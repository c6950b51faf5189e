package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Info is what a member says about its host; the caller supplies it (from
// the registry and the host's engines) and updates it with SetInfo.
type Info struct {
	Host          string   `json:"host"`            // host name, the member's key
	Address       string   `json:"address"`         // the agent's API address
	FreeMemoryMiB int64    `json:"free_memory_mib"` // memory domains may still get
	Engines       []string `json:"engines"`         // engines domains can run on
	// TLSFingerprint is the SHA-256 (hex) of the agent's API certificate
	// when Address serves HTTPS; "" for plain HTTP. Peers calling the
	// agent (the pool master dispatching) pin it.
	TLSFingerprint string `json:"tls_sha256,omitempty"`
	// Relocation is the host:port of the agent's relocation listener
	// (where a live migration to it connects); "" when it has none.
	Relocation string `json:"relocation,omitempty"`
	// Leaving says the agent is stopping and migrating its pool domains
	// away: it gets no new placements.
	Leaving bool `json:"leaving,omitempty"`
}

// MemberRecord is a member's key's value.
type MemberRecord struct {
	Info
	Lease string `json:"lease"` // the member's lease ID, hex
}

// Errors a Member's lease ends with (Err, and wrapped by the calls that
// need a live lease).
var (
	// ErrLeaseExpired: the Member's own deadline passed without an
	// acknowledged renewal (etcd unreachable, or too slow).
	ErrLeaseExpired = errors.New("pool lease expired by this agent's reckoning: no renewal acknowledged within its TTL")
	// ErrLeaseRevoked: etcd answered that the lease does not exist
	// (revoked, or expired on the server).
	ErrLeaseRevoked = errors.New("pool lease revoked or expired in etcd")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("pool member closed")
)

// MemberExistsError is Join's answer when another live lease holds the
// host's member key (another agent with the same host name, or this one
// restarted before its old lease expired).
type MemberExistsError struct {
	Pool, Host string
	Lease      clientv3.LeaseID
}

func (e *MemberExistsError) Error() string {
	return fmt.Sprintf("pool %s: host %s is already a member under lease %x (another agent with this host name, or this agent's previous run, whose lease expires within its TTL)", e.Pool, e.Host, int64(e.Lease))
}

// Member is one agent's membership of a pool.
type Member struct {
	s       Settings
	log     *zap.Logger
	cli     *clientv3.Client
	lease   clientv3.LeaseID
	resumed bool          // the lease is Settings.Resume, taken up again
	ttl     time.Duration // the lease's TTL as etcd last answered
	session *concurrency.Session

	ctx      context.Context // ends at Close or loss
	cancel   context.CancelFunc
	loopDone chan struct{}

	mu       sync.Mutex
	info     Info
	deadline time.Time
	err      error
	lost     chan struct{}
	closed   bool
}

// Join connects to the pool's etcd cluster, takes a lease (s.Resume if
// it is still alive, else a new one of s.LeaseTTL), registers info under
// the host's member key bound to it and starts keeping the lease alive.
// ctx bounds Join only.
func Join(ctx context.Context, s Settings, info Info, log *zap.Logger) (*Member, error) {
	if err := checkSegment("pool name", s.Pool); err != nil {
		return nil, err
	}
	if err := checkSegment("host name", info.Host); err != nil {
		return nil, err
	}
	if s.LeaseTTL < time.Second || s.LeaseTTL%time.Second != 0 {
		return nil, fmt.Errorf("pool %s: lease TTL %s is not a whole number of seconds", s.Pool, s.LeaseTTL)
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("pool", s.Pool), zap.String("host", info.Host))
	cc := s.Client
	if cc.Logger == nil {
		cc.Logger = log.Named("etcd").WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	}
	cc.Context = nil // the client lives until Close, not as long as ctx
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("pool %s: connect to etcd %v: %w", s.Pool, cc.Endpoints, err)
	}
	m, err := join(ctx, s, info, log, cli)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return m, nil
}

func join(ctx context.Context, s Settings, info Info, log *zap.Logger, cli *clientv3.Client) (*Member, error) {
	id, ttl, sent, resumed, err := takeLease(ctx, s, cli)
	if err != nil {
		return nil, err
	}
	deadline := sent.Add(ttl)
	m := &Member{
		s:        s,
		log:      log.With(zap.String("lease", fmt.Sprintf("%x", int64(id)))),
		cli:      cli,
		lease:    id,
		resumed:  resumed,
		ttl:      ttl,
		info:     info,
		deadline: deadline,
		lost:     make(chan struct{}),
		loopDone: make(chan struct{}),
	}
	fail := func(err error) (*Member, error) {
		if !resumed {
			// A lease granted here holds nothing yet. A resumed one may
			// hold the previous run's keys: it is left to expire.
			rctx, cancel := context.WithTimeout(context.Background(), s.LeaseTTL)
			defer cancel()
			_, _ = cli.Revoke(rctx, id)
		}
		return nil, err
	}
	if err := m.register(ctx, info); err != nil {
		return fail(err)
	}
	// The election's session uses the member's lease; its own keep-alive
	// is ended at once, the Member keeps the lease alive.
	sess, err := concurrency.NewSession(cli, concurrency.WithLease(id))
	if err != nil {
		return fail(fmt.Errorf("pool %s: election session: %w", s.Pool, err))
	}
	sess.Orphan()
	m.session = sess
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.log.Info("joined pool", zap.Bool("resumed", resumed), zap.Duration("deadline_in", time.Until(deadline)))
	if s.OnRenew != nil {
		s.OnRenew(m.deadline)
	}
	go m.keepAlive()
	return m, nil
}

// takeLease renews s.Resume if it is still alive, or grants a new lease.
// It returns the lease, its TTL as etcd answered, and when the request
// was sent: the deadline is that plus the TTL.
func takeLease(ctx context.Context, s Settings, cli *clientv3.Client) (id clientv3.LeaseID, ttl time.Duration, sent time.Time, resumed bool, err error) {
	if s.Resume != clientv3.NoLease {
		sent = time.Now()
		ka, err := cli.KeepAliveOnce(ctx, s.Resume)
		switch {
		case err == nil:
			return s.Resume, time.Duration(ka.TTL) * time.Second, sent, true, nil
		case !errors.Is(err, rpctypes.ErrLeaseNotFound):
			return 0, 0, sent, false, fmt.Errorf("pool %s: renew the previous lease %x: %w", s.Pool, int64(s.Resume), err)
		}
		// Gone: a new lease, as for a first join.
	}
	sent = time.Now()
	g, err := cli.Grant(ctx, int64(s.LeaseTTL/time.Second))
	if err != nil {
		return 0, 0, sent, false, fmt.Errorf("pool %s: grant a %s lease: %w", s.Pool, s.LeaseTTL, err)
	}
	return g.ID, time.Duration(g.TTL) * time.Second, sent, false, nil
}

// register creates the member key bound to the lease if no key holds the
// host name, or rewrites it if it is bound to this lease already (a
// resumed lease); another lease holding it is a *MemberExistsError.
func (m *Member) register(ctx context.Context, info Info) error {
	val, err := m.record(info)
	if err != nil {
		return err
	}
	key := memberKey(m.s.Pool, info.Host)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(m.lease))).
		Else(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(key), "=", m.lease)},
			[]clientv3.Op{clientv3.OpPut(key, val, clientv3.WithLease(m.lease))},
			[]clientv3.Op{clientv3.OpGet(key)})).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: register host %s: %w", m.s.Pool, info.Host, err)
	}
	if resp.Succeeded {
		return nil
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner.Succeeded {
		return nil // bound to this (resumed) lease already
	}
	var holder clientv3.LeaseID
	if kvs := inner.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		holder = clientv3.LeaseID(kvs[0].Lease)
	}
	return &MemberExistsError{Pool: m.s.Pool, Host: info.Host, Lease: holder}
}

// Resumed says whether Join took up Settings.Resume rather than granting
// a new lease.
func (m *Member) Resumed() bool { return m.resumed }

func (m *Member) record(info Info) (string, error) {
	b, err := json.Marshal(MemberRecord{Info: info, Lease: fmt.Sprintf("%x", int64(m.lease))})
	if err != nil {
		return "", fmt.Errorf("pool %s: encode member record: %w", m.s.Pool, err)
	}
	return string(b), nil
}

// Lease is the member's lease ID.
func (m *Member) Lease() clientv3.LeaseID { return m.lease }

// Host is the member's host name.
func (m *Member) Host() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info.Host
}

// Pool is the pool's name.
func (m *Member) Pool() string { return m.s.Pool }

// Deadline is the member's own lease deadline: the send time of the last
// acknowledged renewal plus the TTL etcd gave (monotonic clock). Until
// then etcd holds the lease, whatever happens to this host.
func (m *Member) Deadline() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deadline
}

// RunUntil is the time by which this host's HA guests must have stopped
// writing: Deadline less the fencing margin. A later layer hands it to
// the VMMs at every renewal (Settings.OnRenew gives the new deadline).
func (m *Member) RunUntil() time.Time { return m.Deadline().Add(-m.s.FencingMargin) }

// FencingMargin is Settings.FencingMargin.
func (m *Member) FencingMargin() time.Duration { return m.s.FencingMargin }

// Lost is closed when the lease is lost or the member closed; Err says
// which.
func (m *Member) Lost() <-chan struct{} { return m.lost }

// Err is nil while the lease is held, else ErrLeaseExpired,
// ErrLeaseRevoked or ErrClosed.
func (m *Member) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// lose records why the lease ended, once.
func (m *Member) lose(err error) {
	m.mu.Lock()
	if m.err != nil {
		m.mu.Unlock()
		return
	}
	m.err = err
	close(m.lost)
	dl := m.deadline
	m.mu.Unlock()
	if err != ErrClosed {
		m.log.Error("pool lease lost", zap.Error(err), zap.Time("deadline", dl))
	}
	m.cancel()
}

// renewInterval is how often the lease is renewed: a third of its TTL (as
// etcd answered it: a resumed lease keeps the TTL it was granted), as
// etcd's own keep-alive does.
func (m *Member) renewInterval() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ttl / 3
}

// retryDelay is the pause after a failed renewal before the next try.
const retryDelay = 200 * time.Millisecond

// keepAlive renews the lease until it is lost or the member is closed.
func (m *Member) keepAlive() {
	defer close(m.loopDone)
	for {
		interval := m.renewInterval()
		dl := m.Deadline()
		now := time.Now()
		if !now.Before(dl) {
			m.lose(ErrLeaseExpired)
			return
		}
		// One attempt lasts at most a renewal interval, so that a
		// connection that hangs is given up while there is time for
		// another endpoint; never past the deadline.
		end := now.Add(interval)
		if end.After(dl) {
			end = dl
		}
		actx, cancel := context.WithDeadline(m.ctx, end)
		sent := time.Now()
		resp, err := m.cli.KeepAliveOnce(actx, m.lease)
		cancel()
		if m.ctx.Err() != nil {
			return // closed, or lost meanwhile
		}
		wait := retryDelay
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			m.lose(ErrLeaseRevoked)
			return
		case err != nil:
			m.log.Warn("pool lease renewal failed", zap.Error(err), zap.Duration("left", time.Until(dl)))
		default:
			ttl := time.Duration(resp.TTL) * time.Second
			ndl := sent.Add(ttl)
			m.mu.Lock()
			m.ttl = ttl
			if ndl.After(m.deadline) {
				m.deadline = ndl
			}
			dl = m.deadline
			m.mu.Unlock()
			if m.s.OnRenew != nil {
				m.s.OnRenew(dl)
			}
			wait = ttl / 3
		}
		if left := time.Until(dl); wait > left {
			wait = left
		}
		t := time.NewTimer(wait)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// SetInfo updates the member's record when info differs from what was
// registered. The host name cannot change.
func (m *Member) SetInfo(ctx context.Context, info Info) error {
	m.mu.Lock()
	host, same := m.info.Host, reflect.DeepEqual(m.info, info)
	m.mu.Unlock()
	if info.Host != host {
		return fmt.Errorf("pool %s: a member's host name cannot change (%s to %s)", m.s.Pool, host, info.Host)
	}
	if same {
		return nil
	}
	if err := m.Err(); err != nil {
		return fmt.Errorf("pool %s: update member %s: %w", m.s.Pool, host, err)
	}
	val, err := m.record(info)
	if err != nil {
		return err
	}
	key := memberKey(m.s.Pool, host)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", m.lease)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(m.lease))).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: update member %s: %w", m.s.Pool, host, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("pool %s: update member %s: its key is no longer bound to lease %x: %w", m.s.Pool, host, int64(m.lease), ErrLeaseRevoked)
	}
	m.mu.Lock()
	m.info = info
	m.mu.Unlock()
	return nil
}

// Members lists the pool's members as their records say.
func (m *Member) Members(ctx context.Context) ([]MemberRecord, error) {
	resp, err := m.cli.Get(ctx, membersPrefix(m.s.Pool), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("pool %s: list members: %w", m.s.Pool, err)
	}
	out := make([]MemberRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r MemberRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("pool %s: member key %s: %w", m.s.Pool, kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Detach ends this Member without leaving the pool: it stops the
// renewals and closes the client but leaves the lease, and every key
// bound to it, to etcd, which expires it within its TTL unless a Member
// takes it up first (Settings.Resume): the agent restarting, or a member
// whose deadline passed joining again in case the lease outlived it.
// Guests whose leases a lapsed member handed out stay fenced meanwhile.
func (m *Member) Detach() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	m.lose(ErrClosed)
	<-m.loopDone
	m.log.Info("detached from the pool; the lease is left to expire or be taken up again")
	m.cli.Close()
}

// Close leaves the pool: it stops the renewals, revokes the lease (every
// key bound to it goes: the member record, an election key, domain
// owner keys), and closes the client. ctx bounds the revoke; Close
// returns its error, if any (the lease then expires within its TTL).
func (m *Member) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.lose(ErrClosed)
	<-m.loopDone
	_, err := m.cli.Revoke(ctx, m.lease)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		err = fmt.Errorf("pool %s: revoke lease %x: %w", m.s.Pool, int64(m.lease), err)
	} else {
		err = nil
		m.log.Info("left pool")
	}
	m.cli.Close()
	return err
}
