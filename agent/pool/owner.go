package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// OwnerRecord is a domain owner key's value.
type OwnerRecord struct {
	Host string `json:"host"`
}

// ErrOwned is what an *OwnedError is (errors.Is).
var ErrOwned = errors.New("the domain is owned by another member")

// OwnedError refuses to acquire (or release) a domain another member owns.
type OwnedError struct {
	Pool, Domain string
	Host         string // the owner
	Generation   int64
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("pool %s: domain %s is owned by %s (generation %d); it may run only there until that host's lease ends", e.Pool, e.Domain, e.Host, e.Generation)
}

func (e *OwnedError) Is(target error) bool { return target == ErrOwned }

// AcquireOwner makes this member the owner of domain (its UUID): in one
// transaction it creates the domain's owner key bound to the member's
// lease if there is none, or finds it already this member's. It returns
// the domain's generation, the owner key's create revision, which is
// higher for every new owner. If another member owns the domain the error
// is an *OwnedError.
//
// A transaction whose answer does not come (ctx ended: the caller, a pool
// master, gone; a timeout; a leader change) may have been carried out
// all the same. Its outcome is then read back, bounded by
// ownerReadBackTimeout on a context of its own: a key found bound to this
// member's lease is this member's, and AcquireOwner answers its
// generation although ctx has ended. Otherwise the caller would not know
// it owns the domain, would run nothing, and the key would keep every
// other member from starting the domain as long as the lease lives. Only
// when the read back fails too is the outcome unknown; the error says so.
func (m *Member) AcquireOwner(ctx context.Context, domain string) (int64, error) {
	if err := checkSegment("domain", domain); err != nil {
		return 0, fmt.Errorf("pool %s: acquire: %w", m.s.Pool, err)
	}
	if err := m.Err(); err != nil {
		return 0, fmt.Errorf("pool %s: acquire domain %s: %w", m.s.Pool, domain, err)
	}
	val, err := json.Marshal(OwnerRecord{Host: m.Host()})
	if err != nil {
		return 0, err
	}
	key := ownerKey(m.s.Pool, domain)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(m.lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return m.acquireReadBack(ctx, domain, key, err)
	}
	if resp.Succeeded {
		// The put is the transaction's only write: the key was created
		// at the revision the transaction made.
		gen := resp.Header.Revision
		m.log.Info("domain owner", zap.String("domain", domain), zap.Int64("generation", gen))
		return gen, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return 0, fmt.Errorf("pool %s: acquire domain %s: the owner key vanished during the transaction", m.s.Pool, domain)
	}
	kv := kvs[0]
	if clientv3.LeaseID(kv.Lease) == m.lease {
		return kv.CreateRevision, nil
	}
	return 0, m.ownedError(domain, kv)
}

// ownerReadBackTimeout bounds the read back of an acquire whose answer
// did not come.
const ownerReadBackTimeout = 5 * time.Second

// acquireReadBack finds out what became of an acquire transaction that
// failed with txnErr: the owner key is read on a bounded context that
// ctx's end does not cancel.
func (m *Member) acquireReadBack(ctx context.Context, domain, key string, txnErr error) (int64, error) {
	m.log.Warn("acquire of a domain's owner key got no answer: reading the owner key back, as the transaction may have been carried out",
		zap.String("domain", domain), zap.Error(txnErr))
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ownerReadBackTimeout)
	defer cancel()
	resp, err := m.cli.Get(rctx, key)
	if err != nil {
		return 0, fmt.Errorf("pool %s: acquire domain %s: %w; reading its owner key back failed too (%v): the key may be bound to this member's lease until it is released or the lease ends",
			m.s.Pool, domain, txnErr, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, fmt.Errorf("pool %s: acquire domain %s: %w (the domain has no owner)", m.s.Pool, domain, txnErr)
	}
	kv := resp.Kvs[0]
	if clientv3.LeaseID(kv.Lease) != m.lease {
		return 0, m.ownedError(domain, kv)
	}
	m.log.Warn("domain owner: the acquire was carried out though its answer did not come", zap.String("domain", domain),
		zap.Int64("generation", kv.CreateRevision), zap.NamedError("answer_error", txnErr))
	return kv.CreateRevision, nil
}

func (m *Member) ownedError(domain string, kv *mvccpb.KeyValue) error {
	var r OwnerRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		r.Host = fmt.Sprintf("(unreadable owner record: %v)", err)
	}
	return &OwnedError{Pool: m.s.Pool, Domain: domain, Host: r.Host, Generation: kv.CreateRevision}
}

// ReleaseOwner deletes domain's owner key if this member owns it. A
// domain without an owner is released already; one another member owns
// gives an *OwnedError.
func (m *Member) ReleaseOwner(ctx context.Context, domain string) error {
	if err := checkSegment("domain", domain); err != nil {
		return fmt.Errorf("pool %s: release: %w", m.s.Pool, err)
	}
	key := ownerKey(m.s.Pool, domain)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", m.lease)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: release domain %s: %w", m.s.Pool, domain, err)
	}
	if resp.Succeeded {
		m.log.Info("domain released", zap.String("domain", domain))
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return m.ownedError(domain, kvs[0])
	}
	return nil
}

// Owner says which host owns domain and at what generation; "" and 0
// when none does.
func (m *Member) Owner(ctx context.Context, domain string) (host string, generation int64, err error) {
	if err := checkSegment("domain", domain); err != nil {
		return "", 0, fmt.Errorf("pool %s: owner: %w", m.s.Pool, err)
	}
	resp, err := m.cli.Get(ctx, ownerKey(m.s.Pool, domain))
	if err != nil {
		return "", 0, fmt.Errorf("pool %s: owner of domain %s: %w", m.s.Pool, domain, err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, nil
	}
	var r OwnerRecord
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return "", 0, fmt.Errorf("pool %s: owner of domain %s: %w", m.s.Pool, domain, err)
	}
	return r.Host, resp.Kvs[0].CreateRevision, nil
}
