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
// the domain's generation, the owner key's mod revision, which is higher
// for every new owner (HandOver rewrites the key at a higher revision). If another member owns the domain the error
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
	return m.acquire(ctx, domain, 0)
}

// ErrSpecChanged is what AcquireOwnerOfSpec's error wraps when the
// domain's spec is no longer the one read (deleted or rewritten).
var ErrSpecChanged = errors.New("the domain's spec changed or was deleted since it was read")

// AcquireOwnerOfSpec is AcquireOwner that also holds only while domain's
// spec key is still at mod revision specRev (as ReadSpec returned it): a
// start cannot take the owner key of a domain the pool deleted (or
// changed) meanwhile. A key that is this member's already is answered as
// AcquireOwner answers it, whatever the spec.
func (m *Member) AcquireOwnerOfSpec(ctx context.Context, domain string, specRev int64) (int64, error) {
	if specRev <= 0 {
		return 0, fmt.Errorf("pool %s: acquire domain %s: spec revision %d", m.s.Pool, domain, specRev)
	}
	return m.acquire(ctx, domain, specRev)
}

func (m *Member) acquire(ctx context.Context, domain string, specRev int64) (int64, error) {
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
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}
	if specRev > 0 {
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(SpecKey(m.s.Pool, domain)), "=", specRev))
	}
	resp, err := m.cli.Txn(ctx).
		If(conds...).
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
		if specRev > 0 {
			return 0, fmt.Errorf("pool %s: acquire domain %s: %w; the pool master places it again if it should run", m.s.Pool, domain, ErrSpecChanged)
		}
		return 0, fmt.Errorf("pool %s: acquire domain %s: the owner key vanished during the transaction", m.s.Pool, domain)
	}
	kv := kvs[0]
	if clientv3.LeaseID(kv.Lease) == m.lease {
		return kv.ModRevision, nil
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
		zap.Int64("generation", kv.ModRevision), zap.NamedError("answer_error", txnErr))
	return kv.ModRevision, nil
}

func (m *Member) ownedError(domain string, kv *mvccpb.KeyValue) error {
	var r OwnerRecord
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		r.Host = fmt.Sprintf("(unreadable owner record: %v)", err)
	}
	return &OwnedError{Pool: m.s.Pool, Domain: domain, Host: r.Host, Generation: kv.ModRevision}
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
	return r.Host, resp.Kvs[0].ModRevision, nil
}

// ErrNotHandedOver is what a hand-over that did not happen wraps: the
// domain is not this member's at the generation given, the target is not
// a member under the lease given, or it does not expect the domain (no
// incoming record of its: ExpectIncoming).
var ErrNotHandedOver = errors.New("the domain's ownership was not handed over")

// HandOver gives domain, owned by this member at generation gen, to the
// member toHost under its lease toLease (the target of a live migration,
// which said both): in one transaction, only if the owner key is still
// this member's at gen and toHost's member key is bound to toLease, the
// owner key is rewritten for toHost, bound to toLease. It returns the new
// generation (the transaction's revision). A hand-over found done already
// (the key is toLease's) returns the key's generation. An error wrapping
// ErrNotHandedOver means it did not happen and cannot; any other error
// leaves the outcome unknown (etcd may still apply it): KeepOwner settles
// it.
func (m *Member) HandOver(ctx context.Context, domain string, gen int64, toHost string, toLease clientv3.LeaseID) (int64, error) {
	if err := checkSegment("domain", domain); err != nil {
		return 0, fmt.Errorf("pool %s: hand over: %w", m.s.Pool, err)
	}
	if err := checkSegment("host", toHost); err != nil {
		return 0, fmt.Errorf("pool %s: hand over domain %s: %w", m.s.Pool, domain, err)
	}
	val, err := json.Marshal(OwnerRecord{Host: toHost})
	if err != nil {
		return 0, err
	}
	key, mkey, ikey := ownerKey(m.s.Pool, domain), memberKey(m.s.Pool, toHost), incomingKey(m.s.Pool, domain)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", gen),
			clientv3.Compare(clientv3.LeaseValue(key), "=", m.lease),
			clientv3.Compare(clientv3.LeaseValue(mkey), "=", toLease),
			clientv3.Compare(clientv3.LeaseValue(ikey), "=", toLease)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(toLease)), clientv3.OpDelete(ikey)).
		Else(clientv3.OpGet(key), clientv3.OpGet(mkey)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("pool %s: hand domain %s over to %s: %w", m.s.Pool, domain, toHost, err)
	}
	if resp.Succeeded {
		ngen := resp.Header.Revision
		m.log.Info("domain handed over", zap.String("domain", domain), zap.String("to", toHost), zap.Int64("generation", gen), zap.Int64("new_generation", ngen))
		return ngen, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 && toLease != m.lease && clientv3.LeaseID(kvs[0].Lease) == toLease {
		return kvs[0].ModRevision, nil
	}
	switch {
	case len(kvs) == 0:
		return 0, fmt.Errorf("pool %s: hand domain %s over to %s: %w: it has no owner key (its owner's lease ended)", m.s.Pool, domain, toHost, ErrNotHandedOver)
	case clientv3.LeaseID(kvs[0].Lease) != m.lease || kvs[0].ModRevision != gen:
		return 0, fmt.Errorf("pool %s: hand domain %s over to %s: %w: %v", m.s.Pool, domain, toHost, ErrNotHandedOver, m.ownedError(domain, kvs[0]))
	}
	if mk := resp.Responses[1].GetResponseRange().Kvs; len(mk) == 0 || clientv3.LeaseID(mk[0].Lease) != toLease {
		return 0, fmt.Errorf("pool %s: hand domain %s over to %s: %w: %s is not a member under lease %x (it left, or joined again under another lease)", m.s.Pool, domain, toHost, ErrNotHandedOver, toHost, int64(toLease))
	}
	return 0, fmt.Errorf("pool %s: hand domain %s over to %s: %w: %s does not expect it (its incoming migration ended there)", m.s.Pool, domain, toHost, ErrNotHandedOver, toHost)
}

// KeepOwner settles a hand-over of domain (owned here at gen) whose
// outcome is unknown, or makes sure none can happen any more: in one
// transaction, if the key is still this member's at gen it is rewritten,
// still this member's, at a new generation (so that a hand-over guarded
// by gen that etcd applies later fails). It returns kept true and the new
// generation; kept false with the key's generation when the key is
// toLease's (the hand-over happened). Anything else is an error: the
// domain is no longer this member's.
func (m *Member) KeepOwner(ctx context.Context, domain string, gen int64, toLease clientv3.LeaseID) (kept bool, ngen int64, err error) {
	if err := checkSegment("domain", domain); err != nil {
		return false, 0, fmt.Errorf("pool %s: keep owner: %w", m.s.Pool, err)
	}
	val, err := json.Marshal(OwnerRecord{Host: m.Host()})
	if err != nil {
		return false, 0, err
	}
	key := ownerKey(m.s.Pool, domain)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", gen),
			clientv3.Compare(clientv3.LeaseValue(key), "=", m.lease)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(m.lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, 0, fmt.Errorf("pool %s: keep domain %s: %w", m.s.Pool, domain, err)
	}
	if resp.Succeeded {
		m.log.Info("domain kept (hand-over given up)", zap.String("domain", domain), zap.Int64("generation", gen), zap.Int64("new_generation", resp.Header.Revision))
		return true, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	switch {
	case len(kvs) == 0:
		return false, 0, fmt.Errorf("pool %s: keep domain %s: %w: it has no owner key any more", m.s.Pool, domain, ErrNotOwner)
	case toLease != 0 && toLease != m.lease && clientv3.LeaseID(kvs[0].Lease) == toLease:
		return false, kvs[0].ModRevision, nil
	case clientv3.LeaseID(kvs[0].Lease) == m.lease:
		// This member's at another generation: an earlier KeepOwner
		// whose answer was lost rewrote it.
		return true, kvs[0].ModRevision, nil
	}
	return false, 0, fmt.Errorf("pool %s: keep domain %s: %w: %v", m.s.Pool, domain, ErrNotOwner, m.ownedError(domain, kvs[0]))
}

// ErrNotOwner is what KeepOwner's error wraps when the domain is not this
// member's any more (no owner key, or another's): definite, unlike an
// error of etcd's.
var ErrNotOwner = errors.New("the domain is not this member's any more")

func incomingKey(pool, domain string) string {
	return poolPrefix(pool) + "domains/" + domain + "/incoming"
}

// ExpectIncoming records, bound to this member's lease, that a migration
// of domain is arriving here: a HandOver to this member holds only while
// the record exists (it goes with the hand-over), so that once EndIncoming
// removed it no late hand-over can give this member a domain it does not
// run.
func (m *Member) ExpectIncoming(ctx context.Context, domain string) error {
	if err := checkSegment("domain", domain); err != nil {
		return fmt.Errorf("pool %s: expect incoming: %w", m.s.Pool, err)
	}
	val, _ := json.Marshal(OwnerRecord{Host: m.Host()})
	if _, err := m.cli.Put(ctx, incomingKey(m.s.Pool, domain), string(val), clientv3.WithLease(m.lease)); err != nil {
		return fmt.Errorf("pool %s: expect incoming domain %s: %w", m.s.Pool, domain, err)
	}
	return nil
}

// EndIncoming removes this member's incoming record of domain (none, or
// another's, is left alone): from here a hand-over to this member fails.
func (m *Member) EndIncoming(ctx context.Context, domain string) error {
	if err := checkSegment("domain", domain); err != nil {
		return fmt.Errorf("pool %s: end incoming: %w", m.s.Pool, err)
	}
	key := incomingKey(m.s.Pool, domain)
	if _, err := m.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(key), "=", m.lease)).Then(clientv3.OpDelete(key)).Commit(); err != nil {
		return fmt.Errorf("pool %s: end incoming domain %s: %w", m.s.Pool, domain, err)
	}
	return nil
}

// EndAllIncoming removes every incoming record bound to this member's
// lease (after a lapse the lease outlived: what arrived then is settled
// anew).
func (m *Member) EndAllIncoming(ctx context.Context) error {
	resp, err := m.cli.Get(ctx, DomainsPrefix(m.s.Pool), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("pool %s: list incoming records: %w", m.s.Pool, err)
	}
	for _, kv := range resp.Kvs {
		if uuid, rec, ok := DomainOfKey(m.s.Pool, string(kv.Key)); ok && rec == "incoming" && clientv3.LeaseID(kv.Lease) == m.lease {
			if err := m.EndIncoming(ctx, uuid); err != nil {
				return err
			}
		}
	}
	return nil
}

// OwnerLease says which lease owns domain and at what generation (0, 0
// when none does).
func (m *Member) OwnerLease(ctx context.Context, domain string) (clientv3.LeaseID, int64, error) {
	if err := checkSegment("domain", domain); err != nil {
		return 0, 0, fmt.Errorf("pool %s: owner: %w", m.s.Pool, err)
	}
	resp, err := m.cli.Get(ctx, ownerKey(m.s.Pool, domain))
	if err != nil {
		return 0, 0, fmt.Errorf("pool %s: owner of domain %s: %w", m.s.Pool, domain, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0, nil
	}
	return clientv3.LeaseID(resp.Kvs[0].Lease), resp.Kvs[0].ModRevision, nil
}
