package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
	"github.com/ovs-agent/ovs-agent/internal/atomicfile"
	"github.com/ovs-agent/ovs-agent/internal/boundedfile"
)

// ovm3OwnerFile is where, under the state directory, the manager that owns
// this server (take_ownership) is kept.
const ovm3OwnerFile = "ovm3-owner.json"

// ovm3Owner is a manager's ownership of this server, as agent 3 keeps it:
// the server answers to one manager at a time until that manager releases
// it.
type ovm3Owner struct {
	ManagerUUID string `json:"manager_uuid"`
	Taken       string `json:"taken"` // RFC 3339
	By          string `json:"by"`    // the API user that took it
	Peer        string `json:"peer"`  // from where
}

// managerUUIDRE: a manager's id, as CloudStack's (32 hex digits) and
// Oracle VM Manager's (0004fb00...) are, dashes allowed.
var managerUUIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// ownerMu serialises the ownership's read-modify-write.
var ownerMu sync.Mutex

func (a *Agent) ovm3OwnerPath() (string, error) {
	st := a.state.Load()
	if st == nil || st.cfg == nil {
		return "", xmlrpc.Faultf(xmlrpc.BadState, "the agent is still starting")
	}
	return filepath.Join(st.cfg.Agent.StateDir, ovm3OwnerFile), nil
}

// ovm3CurrentOwner is the manager that owns this server; nil when none
// does.
func (a *Agent) ovm3CurrentOwner() (*ovm3Owner, error) {
	p, err := a.ovm3OwnerPath()
	if err != nil {
		return nil, err
	}
	b, err := boundedfile.ReadFile(p, 64<<10, boundedfile.NoFollow)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the server's ownership %s: %w", p, err)
	}
	var o ovm3Owner
	if err := json.Unmarshal(b, &o); err != nil || !managerUUIDRE.MatchString(o.ManagerUUID) {
		return nil, fmt.Errorf("the server's ownership %s is not a valid record (%v); remove it to make the server unowned", p, err)
	}
	return &o, nil
}

func (a *Agent) ovm3OwnerMethods() []xmlrpc.Def {
	return []xmlrpc.Def{
		{Name: "take_ownership", Result: xmlrpc.Nil, Run: a.ovm3TakeOwnership,
			Params: []xmlrpc.Param{{Name: "manager_uuid", Type: xmlrpc.String, Or: []xmlrpc.Type{xmlrpc.Struct}}, xmlrpc.Opt("api_url", xmlrpc.String)},
			Help:   "Oracle VM Agent 3 (3.2): make the manager manager_uuid this server's owner; kept in the state directory (ovm3-owner.json), so it outlives a restart. discover_server then says Membership_State Owned (Pooled once in a server pool) and Manager_Unique_Id. Taking it again by the same manager is no change; another manager's is refused until the owner calls release_ownership. api_url must be empty (as CloudStack sends it): this agent sends no events to a manager. The 3.3 form (a struct with manager certificates) is refused."},
		{Name: "release_ownership", Result: xmlrpc.Nil, Run: a.ovm3ReleaseOwnership,
			Params: []xmlrpc.Param{xmlrpc.Req("manager_uuid", xmlrpc.String)},
			Help:   "Oracle VM Agent 3: the owning manager manager_uuid gives this server up (Membership_State Unowned). Refused for another manager's id, for a server that is unowned, and while the server is in an Oracle VM Agent 3 server pool (leave_server_pool first)."},
	}
}

func (a *Agent) ovm3TakeOwnership(ctx context.Context, args xmlrpc.Args) (any, error) {
	if _, ok := args.All()[0].(map[string]any); ok {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "take_ownership: the Oracle VM 3.3 form (a struct with manager_uuid, event and statistic URLs and certificates) is not served: this agent serves the 3.2 API (take_ownership(manager_uuid, \"\")); it installs no manager certificate and sends no events or statistics to a manager")
	}
	uuid, ok := args.All()[0].(string)
	if !ok || !managerUUIDRE.MatchString(uuid) {
		return nil, xmlrpc.Faultf(xmlrpc.BadParams, "take_ownership: the manager uuid must be 1 to 64 letters, digits and dashes")
	}
	if url := args.StringOr(1, ""); url != "" {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "take_ownership: this agent calls no manager back, so it takes no api url; call take_ownership(%q, \"\") (nothing was changed)", uuid)
	}
	p, err := a.ovm3OwnerPath()
	if err != nil {
		return nil, err
	}
	ownerMu.Lock()
	defer ownerMu.Unlock()
	cur, err := a.ovm3CurrentOwner()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "take_ownership: %v", err)
	}
	if cur != nil {
		if cur.ManagerUUID == uuid {
			return nil, nil
		}
		return nil, xmlrpc.Faultf(xmlrpc.Owned, "take_ownership: this server is owned by manager %s (since %s); that manager must release_ownership first", cur.ManagerUUID, cur.Taken)
	}
	c := CallerFrom(ctx)
	b, _ := json.MarshalIndent(ovm3Owner{ManagerUUID: uuid, Taken: time.Now().UTC().Format(time.RFC3339), By: c.User, Peer: c.Peer}, "", "  ")
	if err := atomicfile.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "take_ownership: %v", err)
	}
	a.log.Info("server owned by a manager (take_ownership)", zap.String("manager", uuid), zap.String("user", c.User), zap.String("peer", c.Peer))
	return nil, nil
}

func (a *Agent) ovm3ReleaseOwnership(ctx context.Context, args xmlrpc.Args) (any, error) {
	uuid := args.String(0)
	p, err := a.ovm3OwnerPath()
	if err != nil {
		return nil, err
	}
	ownerMu.Lock()
	defer ownerMu.Unlock()
	cur, err := a.ovm3CurrentOwner()
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "release_ownership: %v", err)
	}
	if cur == nil {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "release_ownership: this server is owned by no manager")
	}
	if cur.ManagerUUID != uuid {
		return nil, xmlrpc.Faultf(xmlrpc.Owned, "release_ownership: this server is owned by manager %s, not %.64q; only its owner releases it", cur.ManagerUUID, uuid)
	}
	if id, err := a.ovm3JoinedServerPool(ctx); err != nil {
		return nil, err
	} else if id != "" {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "release_ownership: this server is in Oracle VM Agent 3 server pool %s; leave_server_pool %s first (nothing was changed)", id, id)
	}
	if err := removeSynced(p); err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "release_ownership: %v", err)
	}
	c := CallerFrom(ctx)
	a.log.Info("server released by its manager (release_ownership)", zap.String("manager", uuid), zap.String("user", c.User), zap.String("peer", c.Peer))
	return nil, nil
}

// removeSynced removes path and syncs its directory, so that the removal
// outlives a crash.
func removeSynced(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
