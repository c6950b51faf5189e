package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// ErrDeposed is what a *DeposedError is (errors.Is).
var ErrDeposed = errors.New("no longer the pool master")

// DeposedError refuses a write of a master that is no longer one: its
// election key (created at Revision) is gone, deleted with its lease or
// by a resignation, and another member may be master now.
type DeposedError struct {
	Pool     string
	Host     string // the deposed master
	Revision int64  // its election key's create revision
}

func (e *DeposedError) Error() string {
	return fmt.Sprintf("pool %s: %s is no longer the pool master (its election at revision %d has ended); the write was refused", e.Pool, e.Host, e.Revision)
}

func (e *DeposedError) Is(target error) bool { return target == ErrDeposed }

// ErrNoMaster: the pool has no master just now.
var ErrNoMaster = errors.New("the pool has no master")

// Master is a member that won the election.
type Master struct {
	m   *Member
	e   *concurrency.Election
	key string
	rev int64

	once    sync.Once
	deposed chan struct{}
	cancel  context.CancelFunc
}

// Campaign waits until this member is the pool master, ctx ends, or the
// member's lease is lost (then the error wraps Err). Campaigning again
// after a win, on the same Member, returns the same mastership.
func (m *Member) Campaign(ctx context.Context) (*Master, error) {
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("pool %s: campaign: %w", m.s.Pool, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(m.ctx, cancel) // the lease lost or closed
	defer stop()
	e := concurrency.NewElection(m.session, masterPrefix(m.s.Pool))
	// The library's Campaign, once cancelled, resigns on the client's own
	// context, which can block while etcd is unreachable: it runs on its
	// own, and an abandoned campaign that wins after all resigns at once.
	res := make(chan error, 1)
	go func() { res <- e.Campaign(cctx, m.Host()) }()
	var err error
	select {
	case err = <-res:
		if err == nil && cctx.Err() != nil {
			// Won just as the campaign was abandoned.
			rctx, cancel := context.WithTimeout(m.cli.Ctx(), m.s.LeaseTTL)
			_ = e.Resign(rctx)
			cancel()
			err = cctx.Err()
		}
	case <-cctx.Done():
		go func() {
			if err := <-res; err == nil {
				rctx, cancel := context.WithTimeout(m.cli.Ctx(), m.s.LeaseTTL)
				defer cancel()
				_ = e.Resign(rctx)
			}
		}()
		err = cctx.Err()
	}
	if err != nil {
		if lerr := m.Err(); lerr != nil {
			return nil, fmt.Errorf("pool %s: campaign abandoned: %w", m.s.Pool, lerr)
		}
		return nil, fmt.Errorf("pool %s: campaign: %w", m.s.Pool, err)
	}
	ms := &Master{m: m, e: e, key: e.Key(), rev: e.Rev(), deposed: make(chan struct{})}
	wctx, wcancel := context.WithCancel(m.ctx)
	ms.cancel = wcancel
	go ms.watch(wctx)
	m.log.Info("pool master", zap.Int64("election_revision", ms.rev))
	return ms, nil
}

// watch closes deposed when the election key is deleted or the lease
// lost.
func (ms *Master) watch(ctx context.Context) {
	defer ms.depose()
	wch := ms.m.cli.Watch(clientv3.WithRequireLeader(ctx), ms.key, clientv3.WithRev(ms.rev+1))
	for {
		select {
		case <-ctx.Done():
			return
		case wr, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return
				}
				// The watch ended (no leader, compaction): look again,
				// after a pause so that a cluster without a leader is
				// not asked in a tight loop.
				if !pause(ctx, retryDelay) {
					return
				}
				resp, err := ms.m.cli.Get(ctx, ms.key)
				if err == nil && (len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != ms.rev) {
					return
				}
				wch = ms.m.cli.Watch(clientv3.WithRequireLeader(ctx), ms.key, clientv3.WithRev(ms.rev+1))
				continue
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return
				}
			}
		}
	}
}

// pause waits d or until ctx ends; false if ctx ended.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (ms *Master) depose() {
	ms.once.Do(func() {
		close(ms.deposed)
		ms.m.log.Warn("no longer pool master", zap.Int64("election_revision", ms.rev))
	})
}

// Revision is the create revision of the master's election key; it
// guards every write of this mastership.
func (ms *Master) Revision() int64 { return ms.rev }

// Deposed is closed when this mastership ends as far as this member can
// tell: the election key deleted, the lease lost, a write refused. Writes
// are refused by etcd itself whether or not this has been noticed.
func (ms *Master) Deposed() <-chan struct{} { return ms.deposed }

// Write applies ops in one transaction only if this member still holds
// the mastership it won (the election key has the create revision it had
// then); otherwise nothing is written and the error is a *DeposedError.
func (ms *Master) Write(ctx context.Context, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	resp, err := ms.m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(ms.key), "=", ms.rev)).
		Then(ops...).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("pool %s: master write: %w", ms.m.s.Pool, err)
	}
	if !resp.Succeeded {
		ms.depose()
		return nil, &DeposedError{Pool: ms.m.s.Pool, Host: ms.m.Host(), Revision: ms.rev}
	}
	return resp, nil
}

// ErrConditionFailed: a WriteIf's conditions did not hold; nothing was
// written.
var ErrConditionFailed = errors.New("the write's conditions did not hold")

// WriteIf is Write with conditions of the caller's (a record's mod
// revision, say): ops are applied only if this member is still master
// and every condition holds, in one transaction. A deposed master gets a
// *DeposedError, failed conditions ErrConditionFailed.
func (ms *Master) WriteIf(ctx context.Context, conds []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	resp, err := ms.Write(ctx, clientv3.OpTxn(conds, ops, nil))
	if err != nil {
		return nil, err
	}
	inner := resp.Responses[0].GetResponseTxn()
	if inner == nil || !inner.Succeeded {
		return nil, fmt.Errorf("pool %s: master write: %w", ms.m.s.Pool, ErrConditionFailed)
	}
	return (*clientv3.TxnResponse)(inner), nil
}

// Resign gives the mastership up; another member's campaign may win.
func (ms *Master) Resign(ctx context.Context) error {
	err := ms.e.Resign(ctx)
	ms.cancel()
	ms.depose()
	if err != nil {
		return fmt.Errorf("pool %s: resign mastership: %w", ms.m.s.Pool, err)
	}
	return nil
}

// MasterInfo says who the pool master is.
type MasterInfo struct {
	Host     string
	Revision int64 // its election key's create revision
}

// Master returns the current pool master, or ErrNoMaster.
func (m *Member) Master(ctx context.Context) (MasterInfo, error) {
	e := concurrency.NewElection(m.session, masterPrefix(m.s.Pool))
	resp, err := e.Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return MasterInfo{}, fmt.Errorf("pool %s: %w", m.s.Pool, ErrNoMaster)
	}
	if err != nil {
		return MasterInfo{}, fmt.Errorf("pool %s: who is master: %w", m.s.Pool, err)
	}
	kv := resp.Kvs[0]
	return MasterInfo{Host: string(kv.Value), Revision: kv.CreateRevision}, nil
}
