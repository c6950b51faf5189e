package agent

import (
	"context"
	"net"

	"github.com/ovs-agent/ovs-agent/agent/ovm3"
	"github.com/ovs-agent/ovs-agent/agent/poolmaster"
	"github.com/ovs-agent/ovs-agent/agent/xmlrpc"
)

// ovm3PoolMethods: agent 3's server pool calls. The pool this agent is a
// member of is the one [pool] in agent.ini names (etcd); it is read here
// and not created, joined or left over the API.
func (a *Agent) ovm3PoolMethods() []xmlrpc.Def {
	refuse := func(name string) xmlrpc.Def {
		return xmlrpc.Def{Name: name, Result: xmlrpc.Nil, Variadic: true,
			Help: "Oracle VM Agent 3: refused here: this agent's server pool is the one [pool] in agent.ini names (its etcd cluster); membership, roles and ownership are not changed over the API. discover_server_pool shows it.",
			Run: func(context.Context, xmlrpc.Args) (any, error) {
				return nil, xmlrpc.Faultf(xmlrpc.Unsupported, "%s: this agent's server pool is configured in agent.ini ([pool] name and etcd endpoints) and joined when the agent starts; it is not created, joined, left or owned over the API (discover_server_pool and pool.info show it)", name)
			}}
	}
	defs := []xmlrpc.Def{
		{Name: "discover_server_pool", Result: xmlrpc.String, Run: a.ovm3DiscoverPool,
			Help: "Oracle VM Agent 3: the server pool this host is a member of as an XML document in a string (Discover_Server_Pool_Result/Server_Pool: Unique_Id and Pool_Alias, the [pool] name; Member_List/Member/Registered_IP, the members' API addresses); an empty Discover_Server_Pool_Result when [pool] names none. The pool has no virtual IP: Master_Virtual_Ip is empty."},
	}
	for _, n := range []string{"create_server_pool", "join_server_pool", "leave_server_pool", "destroy_server_pool",
		"take_ownership", "release_ownership", "update_server_roles", "set_pool_member_ip_list"} {
		defs = append(defs, refuse(n))
	}
	return defs
}

func (a *Agent) ovm3DiscoverPool(ctx context.Context, _ xmlrpc.Args) (any, error) {
	var sp *ovm3.ServerPool
	if a.pool != nil {
		res, err := a.rpc.Call(ctx, "pool.info", nil)
		if err != nil {
			return nil, err
		}
		pv, ok := res.(poolmaster.PoolView)
		if !ok {
			return nil, xmlrpc.Faultf(xmlrpc.Internal, "pool.info answered %T", res)
		}
		sp = &ovm3.ServerPool{ID: pv.Name, Alias: pv.Name}
		for _, m := range pv.Members {
			if m.Address == "" {
				continue // a member without a TCP API
			}
			host, _, err := net.SplitHostPort(m.Address)
			if err != nil {
				host = m.Address
			}
			sp.MemberIPs = append(sp.MemberIPs, host)
		}
	}
	doc, err := ovm3.DiscoverServerPool(sp)
	if err != nil {
		return nil, xmlrpc.Faultf(xmlrpc.Internal, "%v", err)
	}
	return doc, nil
}
