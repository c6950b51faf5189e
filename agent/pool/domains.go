package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The records of a pool domain (issue 15, layer 2), under
// /ovs/pools/NAME/domains/UUID/: its spec (what the master wants of it),
// its owner key (the member running it, owner.go) and its status (what
// the master last saw). Specs and statuses are written by the master
// only, through Master.Write; members read them.

// DomainSpec is a pool domain's spec key's value.
type DomainSpec struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
	// Config is the domain's vm.cfg text, with uuid = UUID in it; its
	// disks are on a repository every member mounts.
	Config string `json:"config"`
	HA     bool   `json:"ha"`
	// Desired is DesiredRunning or DesiredStopped.
	Desired string `json:"desired"`
	// Preferred are the members it may run on (Manual placement); empty:
	// any member (Auto).
	Preferred []string `json:"preferred,omitempty"`
	// Priority orders HA restarts: higher first.
	Priority int `json:"priority"`
	// Adopting is set while the domain, running on a member outside the
	// pool, is being taken into it (poolmaster's Adopt): no pass places,
	// stops or changes it then; the master that sees the member's owner
	// key clears it, and one that sees none after AdoptTimeout removes
	// the spec.
	Adopting *AdoptMark `json:"adopting,omitempty"`
}

// AdoptMark says which member a domain being adopted runs on, since when.
type AdoptMark struct {
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// DomainSpec.Desired values.
const (
	DesiredRunning = "running"
	DesiredStopped = "stopped"
)

// DomainStatus is a pool domain's status key's value.
type DomainStatus struct {
	State string `json:"state"` // StatusRunning, StatusPending or StatusStopped
	Host  string `json:"host,omitempty"`
	// Reason says why a domain is pending ("no server with 2048 MiB free
	// and engine qemu") or stopped.
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// DomainStatus.State values.
const (
	StatusRunning = "running"
	StatusPending = "pending"
	StatusStopped = "stopped"
)

// DomainsPrefix is the prefix of every domain key of pool.
func DomainsPrefix(pool string) string { return poolPrefix(pool) + "domains/" }

// SpecKey is domain uuid's spec key in pool.
func SpecKey(pool, uuid string) string { return DomainsPrefix(pool) + uuid + "/spec" }

// StatusKey is domain uuid's status key in pool.
func StatusKey(pool, uuid string) string { return DomainsPrefix(pool) + uuid + "/status" }

// OwnerKey is domain uuid's owner key in pool (bound to the owner's
// lease; see AcquireOwner).
func OwnerKey(pool, uuid string) string { return ownerKey(pool, uuid) }

// DomainOfKey returns the UUID and the record's name ("spec", "owner",
// "status") of a key under DomainsPrefix(pool); ok false for any other
// key.
func DomainOfKey(pool, key string) (uuid, record string, ok bool) {
	rest, found := strings.CutPrefix(key, DomainsPrefix(pool))
	if !found {
		return "", "", false
	}
	uuid, record, found = strings.Cut(rest, "/")
	if !found || uuid == "" || record == "" || strings.Contains(record, "/") {
		return "", "", false
	}
	return uuid, record, true
}

// ErrNoSpec: the pool has no spec for the domain.
var ErrNoSpec = errors.New("the pool has no such domain")

// Check says what is wrong with a spec, if anything, as read from key
// (named in the error).
func (s *DomainSpec) Check(uuid string) error {
	var probs []string
	if s.UUID != uuid {
		probs = append(probs, fmt.Sprintf("its uuid %q is not the key's %q", s.UUID, uuid))
	}
	if s.Name == "" {
		probs = append(probs, "it has no name")
	}
	if strings.TrimSpace(s.Config) == "" {
		probs = append(probs, "it has no config")
	}
	if s.Desired != DesiredRunning && s.Desired != DesiredStopped {
		probs = append(probs, fmt.Sprintf("desired %q is neither %q nor %q", s.Desired, DesiredRunning, DesiredStopped))
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// ReadSpec reads domain uuid's spec; ErrNoSpec (wrapped) when there is
// none. A spec that does not decode or check is an error naming its key.
// It also returns the spec key's mod revision, for a master's guarded
// rewrite (Master.WriteIf).
func (m *Member) ReadSpec(ctx context.Context, uuid string) (*DomainSpec, int64, error) {
	if err := checkSegment("domain", uuid); err != nil {
		return nil, 0, fmt.Errorf("pool %s: read spec: %w", m.s.Pool, err)
	}
	key := SpecKey(m.s.Pool, uuid)
	resp, err := m.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("pool %s: read the spec of domain %s: %w", m.s.Pool, uuid, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("pool %s: domain %s: %w (no key %s)", m.s.Pool, uuid, ErrNoSpec, key)
	}
	var s DomainSpec
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return nil, 0, fmt.Errorf("pool %s: spec %s does not decode: %w", m.s.Pool, key, err)
	}
	if err := s.Check(uuid); err != nil {
		return nil, 0, fmt.Errorf("pool %s: spec %s: %w", m.s.Pool, key, err)
	}
	return &s, resp.Kvs[0].ModRevision, nil
}

// OwnedDomains lists the domains whose owner keys are bound to this
// member's lease, with their generations: what this member owns as etcd
// says (after a restart that took the lease up, or a lapse the lease
// outlived).
func (m *Member) OwnedDomains(ctx context.Context) (map[string]int64, error) {
	resp, err := m.cli.Get(ctx, DomainsPrefix(m.s.Pool), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("pool %s: list owned domains: %w", m.s.Pool, err)
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		uuid, rec, ok := DomainOfKey(m.s.Pool, string(kv.Key))
		if ok && rec == "owner" && clientv3.LeaseID(kv.Lease) == m.lease {
			out[uuid] = kv.ModRevision
		}
	}
	return out, nil
}
