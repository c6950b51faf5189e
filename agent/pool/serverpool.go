package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The Oracle VM Agent 3 server pool identity a manager gives this pool
// (create_server_pool, join_server_pool): one record for the pool, one
// per member that joined it. They are declarations of the manager's, kept
// under the pool's prefix, not bound to a lease (a member restarting
// stays in the agent 3 pool), and written only by the transactions here.

func serverPoolKey(pool string) string { return poolPrefix(pool) + "ovm3/server_pool" }

func serverPoolMembersPrefix(pool string) string { return poolPrefix(pool) + "ovm3/members/" }

func serverPoolMemberKey(pool, host string) string { return serverPoolMembersPrefix(pool) + host }

// ServerPool is the agent 3 identity recorded for the pool.
type ServerPool struct {
	ID        string `json:"id"`
	Alias     string `json:"alias"`
	VirtualIP string `json:"virtual_ip"`
	Manager   string `json:"manager"`    // the manager that created it
	CreatedBy string `json:"created_by"` // the member it was created on
	Created   string `json:"created"`    // RFC 3339
}

// ServerPoolMember is one member's joining of the agent 3 pool.
type ServerPoolMember struct {
	Host   string `json:"host"`
	PoolID string `json:"pool_id"`
	IP     string `json:"ip"` // the address the manager registered it by
	Joined string `json:"joined"`
}

// ErrNoServerPool: no agent 3 identity is recorded for the pool.
var ErrNoServerPool = errors.New("no Oracle VM Agent 3 server pool is recorded for this pool")

// ServerPoolError says the pool's agent 3 identity is another one than
// the caller named, or is held by another manager.
type ServerPoolError struct {
	Pool     string
	Recorded ServerPool
	Msg      string
}

func (e *ServerPoolError) Error() string {
	return fmt.Sprintf("pool %s is Oracle VM Agent 3 server pool %s (alias %q, created by manager %s on %s): %s",
		e.Pool, e.Recorded.ID, e.Recorded.Alias, e.Recorded.Manager, e.Recorded.CreatedBy, e.Msg)
}

// ReadServerPool is the pool's agent 3 identity (nil when none is
// recorded), the members that joined it by host, and the revision read.
func (m *Member) ReadServerPool(ctx context.Context) (*ServerPool, map[string]ServerPoolMember, int64, error) {
	key, prefix := serverPoolKey(m.s.Pool), serverPoolMembersPrefix(m.s.Pool)
	resp, err := m.cli.Txn(ctx).Then(clientv3.OpGet(key), clientv3.OpGet(prefix, clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("pool %s: read the agent 3 server pool: %w", m.s.Pool, err)
	}
	var sp *ServerPool
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		sp = new(ServerPool)
		if err := json.Unmarshal(kvs[0].Value, sp); err != nil {
			return nil, nil, 0, fmt.Errorf("pool %s: %s: %w", m.s.Pool, key, err)
		}
	}
	members := map[string]ServerPoolMember{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var r ServerPoolMember
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, nil, 0, fmt.Errorf("pool %s: %s: %w", m.s.Pool, kv.Key, err)
		}
		members[strings.TrimPrefix(string(kv.Key), prefix)] = r
	}
	return sp, members, resp.Header.Revision, nil
}

// CreateServerPool records sp as the pool's agent 3 identity, unless one
// is recorded already, and this member as joined to it with address ip,
// in one transaction. The same identity (id and manager) recorded already
// is not an error: this member is recorded as joined. Another one is a
// *ServerPoolError.
func (m *Member) CreateServerPool(ctx context.Context, sp ServerPool, ip, now string) error {
	key := serverPoolKey(m.s.Pool)
	sp.CreatedBy = m.Host()
	sp.Created = now
	rec, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	mem, err := json.Marshal(ServerPoolMember{Host: m.Host(), PoolID: sp.ID, IP: ip, Joined: now})
	if err != nil {
		return err
	}
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(rec)), clientv3.OpPut(serverPoolMemberKey(m.s.Pool, m.Host()), string(mem))).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: record agent 3 server pool %s: %w", m.s.Pool, sp.ID, err)
	}
	if resp.Succeeded {
		return nil
	}
	// Recorded already: the same one is joined, as join_server_pool.
	return m.JoinServerPool(ctx, sp.ID, sp.Manager, ip, now)
}

// JoinServerPool records this member as joined to the pool's agent 3
// server pool id, which must be the one recorded, created by manager, in
// a transaction guarded by the record's revision.
func (m *Member) JoinServerPool(ctx context.Context, id, manager, ip, now string) error {
	key := serverPoolKey(m.s.Pool)
	resp, err := m.cli.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("pool %s: read the agent 3 server pool: %w", m.s.Pool, err)
	}
	if len(resp.Kvs) == 0 {
		return ErrNoServerPool
	}
	var sp ServerPool
	if err := json.Unmarshal(resp.Kvs[0].Value, &sp); err != nil {
		return fmt.Errorf("pool %s: %s: %w", m.s.Pool, key, err)
	}
	if sp.ID != id {
		return &ServerPoolError{Pool: m.s.Pool, Recorded: sp, Msg: "not " + id}
	}
	if sp.Manager != manager {
		return &ServerPoolError{Pool: m.s.Pool, Recorded: sp, Msg: "this server is owned by manager " + manager + ", not by the pool's"}
	}
	mem, err := json.Marshal(ServerPoolMember{Host: m.Host(), PoolID: id, IP: ip, Joined: now})
	if err != nil {
		return err
	}
	tr, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpPut(serverPoolMemberKey(m.s.Pool, m.Host()), string(mem))).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: join agent 3 server pool %s: %w", m.s.Pool, id, err)
	}
	if !tr.Succeeded {
		return fmt.Errorf("pool %s: the agent 3 server pool record changed while joining it; call again", m.s.Pool)
	}
	return nil
}

// LeaveServerPool forgets this member's joining of agent 3 server pool
// id; it must be the one this member joined.
func (m *Member) LeaveServerPool(ctx context.Context, id string) error {
	mkey := serverPoolMemberKey(m.s.Pool, m.Host())
	resp, err := m.cli.Get(ctx, mkey)
	if err != nil {
		return fmt.Errorf("pool %s: read this member's agent 3 server pool: %w", m.s.Pool, err)
	}
	if len(resp.Kvs) == 0 {
		return ErrNoServerPool
	}
	var r ServerPoolMember
	if err := json.Unmarshal(resp.Kvs[0].Value, &r); err != nil {
		return fmt.Errorf("pool %s: %s: %w", m.s.Pool, mkey, err)
	}
	if r.PoolID != id {
		return fmt.Errorf("this server is in agent 3 server pool %s, not %s", r.PoolID, id)
	}
	tr, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(mkey), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(mkey)).Commit()
	if err != nil {
		return fmt.Errorf("pool %s: leave agent 3 server pool %s: %w", m.s.Pool, id, err)
	}
	if !tr.Succeeded {
		return fmt.Errorf("pool %s: this member's agent 3 server pool record changed while leaving it; call again", m.s.Pool)
	}
	return nil
}

// DestroyServerPool removes the pool's agent 3 identity id and this
// member's joining of it, in one transaction that fails if any other
// member's joining is recorded or the records changed since they were
// read: the other members leave first.
func (m *Member) DestroyServerPool(ctx context.Context, id string) error {
	sp, members, rev, err := m.ReadServerPool(ctx)
	if err != nil {
		return err
	}
	if sp == nil {
		return ErrNoServerPool
	}
	if sp.ID != id {
		return &ServerPoolError{Pool: m.s.Pool, Recorded: *sp, Msg: "not " + id}
	}
	var others []string
	for h := range members {
		if h != m.Host() {
			others = append(others, h)
		}
	}
	if len(others) > 0 {
		sort.Strings(others)
		return &ServerPoolError{Pool: m.s.Pool, Recorded: *sp, Msg: "members " + strings.Join(others, ", ") + " are still in it (leave_server_pool on them first)"}
	}
	key, prefix := serverPoolKey(m.s.Pool), serverPoolMembersPrefix(m.s.Pool)
	tr, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "<", rev+1),
			clientv3.Compare(clientv3.ModRevision(prefix).WithPrefix(), "<", rev+1)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(serverPoolMemberKey(m.s.Pool, m.Host()))).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: destroy agent 3 server pool %s: %w", m.s.Pool, id, err)
	}
	if !tr.Succeeded {
		return fmt.Errorf("pool %s: the agent 3 server pool's records changed while destroying it (a member joined or left); call again", m.s.Pool)
	}
	return nil
}
