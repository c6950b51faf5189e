package agent

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// maxNFSTarget bounds a pool file system's target.
const maxNFSTarget = 1280

// ovm3PoolFSVersion is the pool file system version discover_pool_filesystem
// reports, agent 3.2's.
const ovm3PoolFSVersion = "3.0"

var (
	// nfsTargetRE: an NFS export as agent 3 takes it, host:/path (at
	// most maxNFSTarget bytes).
	nfsTargetRE = regexp.MustCompile(`^[A-Za-z0-9.\[\]:-]{1,255}:/[^\x00-\x1f]*$`)
	// clusterNameRE: an OCFS2 cluster name (at most 16 characters).
	clusterNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,16}$`)
)

// ovm3PoolFSMethods: agent 3's pool file system calls, the first step of
// CloudStack's OVM3 pool set-up. In agent 3 the pool file system is an
// OCFS2 file system on the pool's storage holding the cluster heartbeat
// and the pool's shared records; on this agent the [pool]'s etcd is both
// (member leases are the heartbeat), and the call records the manager's
// declaration there (agent/pool's PoolFilesystem), as create_server_pool
// records the server pool.
func (a *Agent) ovm3PoolFSMethods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	return []xmlrpc.Def{
		{Name: "discover_pool_filesystem", Result: xmlrpc.String, Run: a.ovm3DiscoverPoolFS,
			Help: "Oracle VM Agent 3: the pool file system create_pool_filesystem recorded for this server's pool, as an XML document in a string (Discover_Pool_Filesystem_Result/Pool_Filesystem: Pool_Filesystem_Type, _Target, _Uuid, _Nfsbase_Uuid, _Manager_Uuid, _Version, _Pool_Uuid); an empty Discover_Pool_Filesystem_Result when none is (or [pool] names no pool)."},
		{Name: "create_pool_filesystem", Result: xmlrpc.Nil, Run: a.ovm3CreatePoolFS,
			Params: []xmlrpc.Param{str("fs_type"), str("target"), str("cluster_name"), str("fs_uuid"), str("nfsbase_uuid"), str("manager_uuid"), xmlrpc.Opt("pool_uuid", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: record the pool file system of this server's pool ([pool]), by the manager that owns this server (take_ownership first): fs_type nfs and target host:/path (the export whose VirtualMachines folder CloudStack names). Agent 3 makes an OCFS2 file system there for the cluster heartbeat and the pool's shared records; this agent keeps both in the pool's etcd and makes nothing on the target. One etcd transaction records it only where none is: the same fs_uuid again is no change, another is refused. Refused without [pool]."},
		{Name: "destroy_pool_filesystem", Result: xmlrpc.Nil, Run: a.ovm3DestroyPoolFS,
			Params: []xmlrpc.Param{str("fs_type"), str("target"), str("fs_uuid"), str("nfsbase_uuid")},
			Help:   "Oracle VM Agent 3: remove the recorded pool file system fs_uuid, by the manager that owns this server; refused while an Oracle VM Agent 3 server pool is recorded (destroy_server_pool first)."},
	}
}

func (a *Agent) ovm3DiscoverPoolFS(ctx context.Context, _ xmlrpc.Args) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout)
	defer cancel()
	var fs *ovm3.PoolFilesystem
	if a.pool != nil {
		m, err := a.ovm3PoolMember("discover_pool_filesystem")
		if err != nil {
			return nil, err
		}
		rec, _, err := m.ReadPoolFilesystem(ctx)
		if err != nil {
			return nil, poolFSFault("discover_pool_filesystem", err)
		}
		if rec != nil {
			fs = &ovm3.PoolFilesystem{Type: rec.Type, Target: rec.Target, UUID: rec.UUID, NFSBaseUUID: rec.NFSBaseUUID,
				ManagerUUID: rec.Manager, Version: ovm3PoolFSVersion, PoolUUID: rec.PoolUUID}
		}
	}
	doc, err := ovm3.DiscoverPoolFilesystem(fs)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

// poolFSArgs checks the type, target and the manager (when given): the
// one that owns this server, whose id it answers.
func (a *Agent) poolFSArgs(method, fsType, target, manager string) (string, error) {
	if fsType != "nfs" {
		return "", xmlrpc.Faultf(xmlrpc.Unsupported, "%s: pool file system type %.32q: only nfs is served (this agent has no iSCSI or Fibre Channel storage: discover_server's ISCSI and FIBRE_CHANNEL are False)", method, fsType)
	}
	if len(target) > maxNFSTarget || !nfsTargetRE.MatchString(target) {
		return "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: target %.300q is not an NFS export host:/path", method, target)
	}
	owner, err := a.ovm3CurrentOwner()
	if err != nil {
		return "", xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
	}
	switch {
	case owner == nil:
		return "", xmlrpc.Faultf(xmlrpc.BadState, "%s: this server is owned by no manager; take_ownership first", method)
	case manager != "" && !strings.EqualFold(owner.ManagerUUID, manager):
		return "", xmlrpc.Faultf(xmlrpc.Owned, "%s: this server is owned by manager %s, not %.64s", method, owner.ManagerUUID, manager)
	}
	return owner.ManagerUUID, nil
}

func (a *Agent) ovm3CreatePoolFS(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "create_pool_filesystem"
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout) // etcd without quorum must not hold the call
	defer cancel()
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	ownerMu.Lock() // the owner stays while the record is made
	defer ownerMu.Unlock()
	fs := pool.PoolFilesystem{Type: args.String(0), Target: args.String(1), Cluster: args.String(2), UUID: args.String(3),
		NFSBaseUUID: args.String(4), Manager: args.String(5), PoolUUID: args.String(3)}
	if args.Has(6) && args.String(6) != "" {
		fs.PoolUUID = args.String(6)
	}
	if !serverPoolIDRE.MatchString(fs.Manager) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: manager uuid %.80q: 1 to 64 letters, digits and dashes", method, fs.Manager)
	}
	if fs.Manager, err = a.poolFSArgs(method, fs.Type, fs.Target, fs.Manager); err != nil {
		return nil, err
	}
	if !clusterNameRE.MatchString(fs.Cluster) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: cluster name %.64q: 1 to 16 letters, digits, _ and -", method, fs.Cluster)
	}
	for _, id := range []string{fs.UUID, fs.NFSBaseUUID, fs.PoolUUID} {
		if !serverPoolIDRE.MatchString(id) {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %.80q: a uuid must be 1 to 64 letters, digits and dashes", method, id)
		}
	}
	created, err := m.CreatePoolFilesystem(ctx, fs, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return nil, poolFSFault(method, err)
	}
	if created {
		a.log.Info("Oracle VM Agent 3 pool file system recorded", zap.String("uuid", fs.UUID), zap.String("manager", fs.Manager), zap.String("pool", m.Pool()))
	}
	return nil, nil
}

func (a *Agent) ovm3DestroyPoolFS(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "destroy_pool_filesystem"
	ctx, cancel := context.WithTimeout(ctx, poolCallTimeout)
	defer cancel()
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	ownerMu.Lock()
	defer ownerMu.Unlock()
	for _, id := range []string{args.String(2), args.String(3)} {
		if !serverPoolIDRE.MatchString(id) {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: %.80q: a uuid must be 1 to 64 letters, digits and dashes", method, id)
		}
	}
	if _, err := a.poolFSArgs(method, args.String(0), args.String(1), ""); err != nil {
		return nil, err
	}
	owner, _ := a.ovm3CurrentOwner()
	rec, _, err := m.ReadPoolFilesystem(ctx)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
	}
	if rec != nil && owner != nil && !strings.EqualFold(rec.Manager, owner.ManagerUUID) {
		return nil, xmlrpc.Faultf(xmlrpc.Owned, "%s: pool file system %s belongs to manager %s, and this server is owned by %s (nothing was changed)", method, rec.UUID, rec.Manager, owner.ManagerUUID)
	}
	if err := m.DestroyPoolFilesystem(ctx, args.String(0), args.String(1), args.String(2), args.String(3)); err != nil {
		return nil, poolFSFault(method, err)
	}
	a.log.Info("Oracle VM Agent 3 pool file system removed", zap.String("uuid", args.String(2)), zap.String("pool", m.Pool()))
	return nil, nil
}

func poolFSFault(method string, err error) error {
	var fe *pool.PoolFilesystemError
	switch {
	case errors.Is(err, pool.ErrNoPoolFilesystem):
		return xmlrpc.Faultf(xmlrpc.NotFound, "%s: %v", method, err)
	case errors.As(err, &fe):
		return xmlrpc.Faultf(xmlrpc.Exists, "%s: %v (nothing was changed)", method, err)
	case errors.Is(err, context.DeadlineExceeded):
		return xmlrpc.Faultf(xmlrpc.Timeout, "%s: %v (etcd did not answer in time)", method, err)
	}
	return xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
}
