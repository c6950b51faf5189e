package agent

import (
	"context"
	"errors"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/pool"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// ovm3Roles are the server roles agent 3 knows, and what this agent
// always does: run domains (xen) and the repository and storage work
// (utility).
const ovm3Roles = "xen,utility"

// serverPoolIDRE: an agent 3 server pool id (CloudStack gives its primary
// storage's uuid, Oracle VM Manager 0004fb00...).
var serverPoolIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)

// ovm3PoolMethods: agent 3's server pool calls. The pool is the one
// [pool] in agent.ini names (etcd); a manager's agent 3 server pool
// (create_server_pool, join_server_pool) is an identity recorded in it
// (agent/pool's ServerPool), not a second pool.
func (a *Agent) ovm3PoolMethods() []xmlrpc.Def {
	str := func(n string) xmlrpc.Param { return xmlrpc.Req(n, xmlrpc.String) }
	poolParams := []xmlrpc.Param{str("alias"), str("pool_uuid"), str("virtual_ip"), xmlrpc.Req("pool_size", xmlrpc.Int),
		str("host_name"), str("host_ip"), xmlrpc.Opt("roles", xmlrpc.String)}
	defs := []xmlrpc.Def{
		{Name: "discover_server_pool", Result: xmlrpc.String, Run: a.ovm3DiscoverPool,
			Help: "Oracle VM Agent 3: the Oracle VM Agent 3 server pool this server joined, as an XML document in a string (Discover_Server_Pool_Result/Server_Pool: Unique_Id, Pool_Alias, Master_Virtual_Ip as create_server_pool recorded them in the [pool]'s etcd; Member_List/Member/Registered_IP, the addresses of the members that joined it). An empty Discover_Server_Pool_Result when the server joined none (or [pool] names no pool); pool.info shows the etcd pool itself."},
		{Name: "create_server_pool", Result: xmlrpc.Nil, Params: poolParams, Run: a.ovm3CreateServerPool,
			Help: "Oracle VM Agent 3: record (alias, pool_uuid, virtual_ip) as the Oracle VM Agent 3 server pool of the [pool] this agent is a member of, created by the manager that owns this server (take_ownership first), and this server as joined to it with host_ip. One etcd transaction records it only where none is: the same pool_uuid again joins it, another is refused. virtual_ip must be empty or an address of this host (the agent does not move it); roles, when given, must be xen,utility; pool_size and host_name are agent 3's cluster inputs and only checked. Refused without [pool] (see Setting up a pool in README.md)."},
		{Name: "join_server_pool", Result: xmlrpc.Nil, Params: poolParams, Run: a.ovm3JoinServerPool,
			Help: "Oracle VM Agent 3: record this server as joined to the pool's Oracle VM Agent 3 server pool pool_uuid with host_ip. pool_uuid must be the one create_server_pool recorded in the [pool]'s etcd, by the manager that owns this server. Refused without [pool]."},
		{Name: "leave_server_pool", Result: xmlrpc.Nil, Params: []xmlrpc.Param{str("pool_uuid")}, Run: a.ovm3LeaveServerPool,
			Help: "Oracle VM Agent 3: forget this server's joining of Oracle VM Agent 3 server pool pool_uuid (Membership_State back to Owned). The server stays a member of the [pool] etcd pool (that is agent.ini's). Refused while it owns pool domains (migrate or stop them first)."},
		{Name: "destroy_server_pool", Result: xmlrpc.Nil, Params: []xmlrpc.Param{str("pool_uuid")}, Run: a.ovm3DestroyServerPool,
			Help: "Oracle VM Agent 3: remove the Oracle VM Agent 3 server pool pool_uuid recorded for the [pool] (and this server's joining of it), in one transaction refused while another member is joined to it (leave_server_pool there first). The etcd pool itself and its domains are untouched."},
		{Name: "update_server_roles", Result: xmlrpc.Nil, Params: []xmlrpc.Param{str("roles")}, Run: a.ovm3UpdateRoles,
			Help: "Oracle VM Agent 3: check the server's roles: this agent always has both agent 3 roles, xen (it runs domains) and utility (repository and storage work), which discover_server's Server_Roles shows; roles must name both. Dropping one is refused (to keep domains off a pool member, use pool.maintenance); unknown roles are refused."},
		{Name: "set_pool_member_ip_list", Result: xmlrpc.Nil, Params: []xmlrpc.Param{xmlrpc.Req("ips", xmlrpc.Array)}, Run: a.ovm3SetMemberIPs,
			Help: "Oracle VM Agent 3: check a manager's list of the server pool's member addresses against what is recorded: it must be exactly the addresses of the members joined to this server's Oracle VM Agent 3 server pool (discover_server_pool's Member_List). The member list is what members join and leave, so a list that differs is refused, saying which addresses to join or leave."},
	}
	return defs
}

// ovm3PoolMember is the agent's pool membership, for the calls that
// need one.
func (a *Agent) ovm3PoolMember(method string) (*pool.Member, error) {
	if a.pool == nil {
		return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "%s: this agent is in no server pool: an Oracle VM Agent 3 server pool is kept in the agent's own pool, so configure [pool] in agent.ini first (name and etcd endpoints; see \"Setting up a pool\" in README.md)", method)
	}
	m, _, state, err := a.pool.current()
	if m == nil {
		why := ""
		if err != nil {
			why = ": " + err.Error()
		}
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: this agent is not a member of pool %s now (%s%s); call again once pool.info says member", method, a.pool.s.Pool, state, why)
	}
	return m, nil
}

// ovm3JoinedServerPool is the id of the agent 3 server pool this server
// joined; "" when none (or no [pool]).
func (a *Agent) ovm3JoinedServerPool(ctx context.Context) (string, error) {
	if a.pool == nil {
		return "", nil
	}
	m, err := a.ovm3PoolMember("release_ownership")
	if err != nil {
		return "", err
	}
	_, members, _, err := m.ReadServerPool(ctx)
	if err != nil {
		return "", xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return members[m.Host()].PoolID, nil
}

// ovm3ServerPoolView is the id of the agent 3 server pool this server
// joined, for discover_server: "" when none, or when the pool's etcd
// cannot be read now (within 2 seconds).
func (a *Agent) ovm3ServerPoolView(ctx context.Context) string {
	if a.pool == nil {
		return ""
	}
	m, _, _, _ := a.pool.current()
	if m == nil {
		return ""
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, members, _, err := m.ReadServerPool(rctx)
	if err != nil {
		return ""
	}
	return members[m.Host()].PoolID
}

func (a *Agent) ovm3DiscoverPool(ctx context.Context, _ xmlrpc.Args) (any, error) {
	var sp *ovm3.ServerPool
	if a.pool != nil {
		m, err := a.ovm3PoolMember("discover_server_pool")
		if err != nil {
			return nil, err
		}
		rec, members, _, err := m.ReadServerPool(ctx)
		if err != nil {
			return nil, xmlrpc.Faultf(xmlrpc.Internal, "discover_server_pool: %v", err)
		}
		if mine, ok := members[m.Host()]; ok && rec != nil && mine.PoolID == rec.ID {
			sp = &ovm3.ServerPool{ID: rec.ID, Alias: rec.Alias, VirtualIP: rec.VirtualIP, MemberIPs: joinedIPs(rec.ID, members)}
		}
	}
	doc, err := ovm3.DiscoverServerPool(sp)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}

// joinedIPs are the addresses of the members joined to agent 3 pool id,
// in the order of their host names.
func joinedIPs(id string, members map[string]pool.ServerPoolMember) []string {
	hosts := make([]string, 0, len(members))
	for h, r := range members {
		if r.PoolID == id {
			hosts = append(hosts, h)
		}
	}
	sort.Strings(hosts)
	ips := make([]string, 0, len(hosts))
	for _, h := range hosts {
		ips = append(ips, members[h].IP)
	}
	return ips
}

// checkRoles checks agent 3 roles: known ones, and all of this agent's.
func checkRoles(method, roles string) error {
	have := map[string]bool{}
	for _, r := range strings.Split(roles, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(strings.Split(ovm3Roles, ","), r) {
			return xmlrpc.Faultf(xmlrpc.BadParams, "%s: invalid role %.32q: the roles are xen and utility", method, r)
		}
		have[r] = true
	}
	for _, r := range strings.Split(ovm3Roles, ",") {
		if !have[r] {
			return xmlrpc.Faultf(xmlrpc.Unsupported, "%s: this agent always runs domains (role xen) and does repository and storage work (role utility); it cannot drop role %s (nothing was changed; to keep domains off a pool member, use pool.maintenance)", method, r)
		}
	}
	return nil
}

func (a *Agent) ovm3UpdateRoles(_ context.Context, args xmlrpc.Args) (any, error) {
	if err := checkRoles("update_server_roles", args.String(0)); err != nil {
		return nil, err
	}
	return nil, nil
}

// serverPoolArgs checks create_server_pool's and join_server_pool's
// parameters and the server's ownership; the manager that owns it.
func (a *Agent) serverPoolArgs(method string, args xmlrpc.Args) (sp pool.ServerPool, ip string, err error) {
	sp = pool.ServerPool{Alias: args.String(0), ID: args.String(1), VirtualIP: args.String(2)}
	if !serverPoolIDRE.MatchString(sp.ID) {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: the pool uuid must be 1 to 64 letters, digits and dashes", method)
	}
	if len(sp.Alias) > 256 || strings.ContainsFunc(sp.Alias, func(r rune) bool { return r < ' ' }) {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: the alias must be at most 256 bytes, without control characters", method)
	}
	if sp.VirtualIP != "" && net.ParseIP(sp.VirtualIP) == nil {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: the virtual ip %.64q is not an IP address", method, sp.VirtualIP)
	}
	if n := args.Int(3); n < 1 || n > 1024 {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: pool size %d: give 1 to 1024", method, n)
	}
	if h := args.String(4); h == "" || len(h) > 255 {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: the host name must be 1 to 255 bytes", method)
	}
	ip = args.String(5)
	if net.ParseIP(ip) == nil {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadParams, "%s: the host ip %.64q is not an IP address", method, ip)
	}
	if args.Has(6) {
		if err := checkRoles(method, args.String(6)); err != nil {
			return sp, "", err
		}
	}
	owner, err := a.ovm3CurrentOwner()
	if err != nil {
		return sp, "", xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
	}
	if owner == nil {
		return sp, "", xmlrpc.Faultf(xmlrpc.BadState, "%s: this server is owned by no manager; take_ownership first", method)
	}
	sp.Manager = owner.ManagerUUID
	return sp, ip, nil
}

// serverPoolFault is the fault of a failed server pool transaction.
func serverPoolFault(method string, err error) error {
	var spe *pool.ServerPoolError
	switch {
	case errors.As(err, &spe):
		return xmlrpc.Faultf(xmlrpc.Exists, "%s: %v (nothing was changed)", method, err)
	case errors.Is(err, pool.ErrNoServerPool):
		return xmlrpc.Faultf(xmlrpc.NotFound, "%s: %v", method, err)
	}
	return xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
}

// addressIsLocal says whether ip is an address of this host (one a
// socket can be bound to).
func addressIsLocal(ip string) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func (a *Agent) ovm3CreateServerPool(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "create_server_pool"
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	ownerMu.Lock() // the owner stays while the pool is recorded
	defer ownerMu.Unlock()
	sp, ip, err := a.serverPoolArgs(method, args)
	if err != nil {
		return nil, err
	}
	if sp.VirtualIP != "" && !addressIsLocal(sp.VirtualIP) {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: the virtual ip %s is not an address of this host: this agent does not bring a pool's virtual address up; add it to the master's interface first, or give an empty one (nothing was changed)", method, sp.VirtualIP)
	}
	if err := m.CreateServerPool(ctx, sp, ip, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return nil, serverPoolFault(method, err)
	}
	a.log.Info("Oracle VM Agent 3 server pool recorded", zap.String("id", sp.ID), zap.String("manager", sp.Manager), zap.String("pool", m.Pool()))
	return nil, nil
}

func (a *Agent) ovm3JoinServerPool(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "join_server_pool"
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	ownerMu.Lock()
	defer ownerMu.Unlock()
	sp, ip, err := a.serverPoolArgs(method, args)
	if err != nil {
		return nil, err
	}
	if err := m.JoinServerPool(ctx, sp.ID, sp.Manager, ip, time.Now().UTC().Format(time.RFC3339)); err != nil {
		if errors.Is(err, pool.ErrNoServerPool) {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%s: pool %s has no Oracle VM Agent 3 server pool yet; create_server_pool %s on one of its members first", method, m.Pool(), sp.ID)
		}
		return nil, serverPoolFault(method, err)
	}
	a.log.Info("joined the Oracle VM Agent 3 server pool", zap.String("id", sp.ID), zap.String("pool", m.Pool()))
	return nil, nil
}

func (a *Agent) ovm3LeaveServerPool(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "leave_server_pool"
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	id := args.String(0)
	if owned := a.pool.domains.ownedNames(); len(owned) > 0 {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: this server runs pool domains (%s); migrate or stop them first (nothing was changed)", method, strings.Join(owned, ", "))
	}
	if err := m.LeaveServerPool(ctx, id); err != nil {
		if errors.Is(err, pool.ErrNoServerPool) {
			return nil, xmlrpc.Faultf(xmlrpc.NotFound, "%s: this server is in no Oracle VM Agent 3 server pool", method)
		}
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: %v", method, err)
	}
	a.log.Info("left the Oracle VM Agent 3 server pool", zap.String("id", id), zap.String("pool", m.Pool()))
	return nil, nil
}

func (a *Agent) ovm3DestroyServerPool(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "destroy_server_pool"
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	id := args.String(0)
	if err := m.DestroyServerPool(ctx, id); err != nil {
		return nil, serverPoolFault(method, err)
	}
	a.log.Info("Oracle VM Agent 3 server pool removed", zap.String("id", id), zap.String("pool", m.Pool()))
	return nil, nil
}

func (a *Agent) ovm3SetMemberIPs(ctx context.Context, args xmlrpc.Args) (any, error) {
	const method = "set_pool_member_ip_list"
	m, err := a.ovm3PoolMember(method)
	if err != nil {
		return nil, err
	}
	given := map[string]bool{}
	for _, v := range args.Array(0) {
		s, ok := v.(string)
		if !ok || net.ParseIP(s) == nil {
			return nil, xmlrpc.Faultf(xmlrpc.BadParams, "%s: every element must be an IP address string, got %.64v", method, v)
		}
		given[s] = true
	}
	rec, members, _, err := m.ReadServerPool(ctx)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%s: %v", method, err)
	}
	mine, ok := members[m.Host()]
	if !ok || rec == nil || mine.PoolID != rec.ID {
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: this server is in no Oracle VM Agent 3 server pool; create_server_pool or join_server_pool first", method)
	}
	joined := map[string]bool{}
	for _, ip := range joinedIPs(rec.ID, members) {
		joined[ip] = true
	}
	var extra, missing []string
	for ip := range given {
		if !joined[ip] {
			extra = append(extra, ip)
		}
	}
	for ip := range joined {
		if !given[ip] {
			missing = append(missing, ip)
		}
	}
	if len(extra)+len(missing) > 0 {
		sort.Strings(extra)
		sort.Strings(missing)
		return nil, xmlrpc.Faultf(xmlrpc.BadState, "%s: the list is not server pool %s's members (not joined: %s; joined but not listed: %s): members join_server_pool and leave_server_pool on their own servers, and the list follows",
			method, rec.ID, orDash(extra), orDash(missing))
	}
	return nil, nil
}

func orDash(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ", ")
}
