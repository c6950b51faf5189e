package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The Oracle VM Agent 3 pool file system a manager declares for the pool
// (create_pool_filesystem): in agent 3 an OCFS2 file system on the
// manager's storage that holds the cluster's heartbeat and the pool's
// shared records; here the pool's etcd is both, and this record is the
// declaration, kept under the pool's prefix (not bound to a lease) and
// written only by the transactions here. It comes before the server pool
// (CloudStack creates it first) and goes after it.

func poolFSKey(pool string) string { return poolPrefix(pool) + "ovm3/pool_filesystem" }

// PoolFilesystem is the agent 3 pool file system recorded for the pool.
type PoolFilesystem struct {
	Type        string `json:"type"`   // nfs
	Target      string `json:"target"` // host:/path
	UUID        string `json:"uuid"`
	NFSBaseUUID string `json:"nfsbase_uuid"`
	PoolUUID    string `json:"pool_uuid"`
	Cluster     string `json:"cluster"`
	Manager     string `json:"manager"`
	CreatedBy   string `json:"created_by"`
	Created     string `json:"created"` // RFC 3339
}

// ErrNoPoolFilesystem: no agent 3 pool file system is recorded.
var ErrNoPoolFilesystem = errors.New("no Oracle VM Agent 3 pool file system is recorded for this pool")

// PoolFilesystemError says the pool's recorded pool file system is
// another one than the caller named, or is held by another manager, or
// is still in use.
type PoolFilesystemError struct {
	Pool     string
	Recorded PoolFilesystem
	Msg      string
}

func (e *PoolFilesystemError) Error() string {
	return fmt.Sprintf("pool %s has Oracle VM Agent 3 pool file system %s (%s %s, manager %s, recorded on %s): %s",
		e.Pool, e.Recorded.UUID, e.Recorded.Type, e.Recorded.Target, e.Recorded.Manager, e.Recorded.CreatedBy, e.Msg)
}

// ReadPoolFilesystem is the pool's recorded pool file system (nil when
// none) and the record's mod revision.
func (m *Member) ReadPoolFilesystem(ctx context.Context) (*PoolFilesystem, int64, error) {
	key := poolFSKey(m.s.Pool)
	resp, err := m.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("pool %s: read the agent 3 pool file system: %w", m.s.Pool, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	var fs PoolFilesystem
	if err := json.Unmarshal(resp.Kvs[0].Value, &fs); err != nil {
		return nil, 0, fmt.Errorf("pool %s: %s: %w", m.s.Pool, key, err)
	}
	return &fs, resp.Kvs[0].ModRevision, nil
}

// CreatePoolFilesystem records fs for the pool unless one is recorded. The
// same one (uuid and manager) recorded already is no error and no change
// (created false); another is a *PoolFilesystemError.
func (m *Member) CreatePoolFilesystem(ctx context.Context, fs PoolFilesystem, now string) (created bool, err error) {
	key := poolFSKey(m.s.Pool)
	fs.CreatedBy, fs.Created = m.Host(), now
	rec, err := json.Marshal(fs)
	if err != nil {
		return false, err
	}
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(rec))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("pool %s: record agent 3 pool file system %s: %w", m.s.Pool, fs.UUID, err)
	}
	if resp.Succeeded {
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return false, fmt.Errorf("pool %s: the agent 3 pool file system record changed meanwhile; call again", m.s.Pool)
	}
	var cur PoolFilesystem
	if err := json.Unmarshal(kvs[0].Value, &cur); err != nil {
		return false, fmt.Errorf("pool %s: %s: %w", m.s.Pool, key, err)
	}
	switch {
	case cur.UUID != fs.UUID:
		return false, &PoolFilesystemError{Pool: m.s.Pool, Recorded: cur, Msg: "not " + fs.UUID}
	case !strings.EqualFold(cur.Manager, fs.Manager):
		return false, &PoolFilesystemError{Pool: m.s.Pool, Recorded: cur, Msg: "this server is owned by manager " + fs.Manager + ", not by the pool file system's"}
	case cur.Type != fs.Type || cur.Target != fs.Target || cur.NFSBaseUUID != fs.NFSBaseUUID || cur.PoolUUID != fs.PoolUUID || cur.Cluster != fs.Cluster:
		return false, &PoolFilesystemError{Pool: m.s.Pool, Recorded: cur, Msg: fmt.Sprintf("it was declared with nfsbase %s, pool %s, cluster %s; not %s %s, nfsbase %s, pool %s, cluster %s",
			cur.NFSBaseUUID, cur.PoolUUID, cur.Cluster, fs.Type, fs.Target, fs.NFSBaseUUID, fs.PoolUUID, fs.Cluster)}
	}
	return false, nil
}

// DestroyPoolFilesystem removes the recorded pool file system uuid (of
// fsType at target, nfsbase), in a transaction that fails while an agent 3
// server pool is recorded (it goes first: destroy_server_pool) or if the
// record changed since read.
func (m *Member) DestroyPoolFilesystem(ctx context.Context, fsType, target, uuid, nfsbase string) error {
	fs, rev, err := m.ReadPoolFilesystem(ctx)
	if err != nil {
		return err
	}
	if fs == nil {
		return ErrNoPoolFilesystem
	}
	if fs.UUID != uuid {
		return &PoolFilesystemError{Pool: m.s.Pool, Recorded: *fs, Msg: "not " + uuid}
	}
	if fs.Type != fsType || fs.Target != target || fs.NFSBaseUUID != nfsbase {
		return &PoolFilesystemError{Pool: m.s.Pool, Recorded: *fs, Msg: fmt.Sprintf("with nfsbase %s; not %s %s, nfsbase %s", fs.NFSBaseUUID, fsType, target, nfsbase)}
	}
	key := poolFSKey(m.s.Pool)
	resp, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev),
			clientv3.Compare(clientv3.CreateRevision(serverPoolKey(m.s.Pool)), "=", 0)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("pool %s: remove agent 3 pool file system %s: %w", m.s.Pool, uuid, err)
	}
	if !resp.Succeeded {
		sp, _, _, rerr := m.ReadServerPool(ctx)
		if rerr == nil && sp != nil {
			return &PoolFilesystemError{Pool: m.s.Pool, Recorded: *fs, Msg: "agent 3 server pool " + sp.ID + " is recorded on it: destroy_server_pool first"}
		}
		return fmt.Errorf("pool %s: the agent 3 pool file system record changed meanwhile; call again", m.s.Pool)
	}
	return nil
}
