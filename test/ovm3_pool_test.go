package test

import (
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/internal/etcdtest"
)

// TestOVM3Pool: two agents, members of one server pool ([pool], one
// etcd), taken by a manager (take_ownership) and put into an Oracle VM
// Agent 3 server pool (create_server_pool, join_server_pool) the way
// CloudStack's plugin does it when it adds hosts to a clustered pool; the
// ownership outlives a restart, the agent 3 pool identity is seen from the
// second member, and what another manager or a wrong id asks is refused.
func TestOVM3Pool(t *testing.T) {
	e := etcdtest.Start(t, 1)
	a := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(e, "ovm3-a")}})
	b := startAgent(t, agentConf{Extra: map[string][]string{"pool": poolLines(e, "ovm3-b")}})
	waitPoolState(t, a, "member")
	waitPoolState(t, b, "member")
	ca := o3Client{url: "http://" + a.Addr + "/", user: "admin", pass: testPassword}
	cb := o3Client{url: "http://" + b.Addr + "/", user: "admin", pass: testPassword}
	const mgr, other, pid = "d1a749d4295041fb99854f52ea4dea97", "0004fb0000010000aaaaaaaaaaaaaaaa", "f12842eb-f5ed-3fe7-8da1-eb0e17f5ede8"
	server := func(c o3Client) map[string]string {
		t.Helper()
		l, _ := parseDoc(t, "discover_server", c.ok(t, "discover_server").Text).path("Server")
		return l.leaves()
	}
	serverPool := func(c o3Client) (map[string]string, []string) {
		t.Helper()
		sp, ok := parseDoc(t, "discover_server_pool", c.ok(t, "discover_server_pool").Text).path("Server_Pool")
		if !ok {
			return nil, nil
		}
		var ips []string
		if ml, ok := sp.child("Member_List"); ok {
			for _, m := range ml.Children {
				ips = append(ips, m.leaves()["Registered_IP"])
			}
		}
		return sp.leaves(), ips
	}
	state := func(c o3Client, what, membership, manager, poolID string) {
		t.Helper()
		s := server(c)
		if s["Membership_State"] != membership || s["Manager_Unique_Id"] != manager || s["Pool_Unique_Id"] != poolID {
			t.Errorf("%s: discover_server says %s, manager %s, pool %s; want %s, %s, %s", what,
				s["Membership_State"], s["Manager_Unique_Id"], s["Pool_Unique_Id"], membership, manager, poolID)
		}
	}
	create := func(c o3Client, id, vip, ip string) []any {
		return []any{"Pool 0", id, vip, 1, "ovm", ip, "xen,utility"}
	}

	// Unowned and in no agent 3 pool yet (the etcd pool is pool.info's).
	state(ca, "a new member", "Unowned", "none", "none")
	if s := server(ca); s["Cluster_State"] != "Online" || s["Server_Roles"] != "xen,utility" {
		t.Errorf("discover_server in a pool: %v", s)
	}
	if sp, _ := serverPool(ca); sp != nil {
		t.Errorf("discover_server_pool before create_server_pool: %v", sp)
	}
	if msg := ca.refused(t, 1003, "create_server_pool", create(ca, pid, "", "127.0.0.1")...); !strings.Contains(msg, "take_ownership") {
		t.Errorf("create_server_pool on an unowned server: %q", msg)
	}

	// Roles: this agent has both, and drops neither.
	ca.done(t, "update_server_roles", "xen,utility")
	if msg := ca.refused(t, 1007, "update_server_roles", "utility"); !strings.Contains(msg, "xen") {
		t.Errorf("update_server_roles utility: %q", msg)
	}
	ca.refused(t, -32602, "update_server_roles", "xen,utility,broken_token")

	// Ownership: one manager at a time.
	ca.done(t, "take_ownership", mgr, "")
	ca.done(t, "take_ownership", mgr, "") // the same manager again: no change
	if msg := ca.refused(t, 1011, "take_ownership", other, ""); !strings.Contains(msg, mgr) || !strings.Contains(msg, "release_ownership") {
		t.Errorf("take_ownership by another manager: %q", msg)
	}
	ca.refused(t, 1007, "take_ownership", map[string]any{"manager_uuid": other, "manager_event_url": "http://127.0.0.1:10024/event"})
	ca.refused(t, 1007, "take_ownership", other, "https://127.0.0.1:7002/ovm/core/OVMManagerCoreServlet")
	state(ca, "owned", "Owned", mgr, "none")

	// The pool file system, which CloudStack creates before the pool: the
	// pool's etcd is it here, and the manager's declaration is recorded
	// there, seen from every member.
	poolFS := func(c o3Client) map[string]string {
		t.Helper()
		v := c.ok(t, "discover_pool_filesystem")
		root := parseDoc(t, "discover_pool_filesystem", v.Text)
		fs, ok := root.path("Pool_Filesystem")
		if root.XMLName.Local != "Discover_Pool_Filesystem_Result" || !ok {
			return nil
		}
		o3Shape(t, "discover_pool_filesystem", v)
		return fs.leaves()
	}
	if fs := poolFS(cb); fs != nil {
		t.Errorf("discover_pool_filesystem before any: %v", fs)
	}
	const target, base = "cs-mgmt:/volumes/cs-data/primary/ovm/VirtualMachines", "f12842ebf5ed3fe78da1eb0e17f5ede8"
	fsArgs := func(typ, tgt, id, manager string) []any {
		return []any{typ, tgt, mgr[:15], id, base, manager, id}
	}
	cb.refused(t, 1003, "create_pool_filesystem", fsArgs("nfs", target, pid, mgr)...) // b is owned by no manager yet
	ca.refused(t, 1007, "create_pool_filesystem", fsArgs("lun", target, pid, mgr)...)
	ca.refused(t, -32602, "create_pool_filesystem", fsArgs("nfs", "/no/host", pid, mgr)...)
	ca.refused(t, 1011, "create_pool_filesystem", fsArgs("nfs", target, pid, other)...)
	ca.refused(t, -32602, "create_pool_filesystem", fsArgs("nfs", target, pid, "")...)
	if fs := poolFS(ca); fs != nil {
		t.Fatalf("refused create_pool_filesystem calls recorded %v", fs)
	}
	ca.done(t, "create_pool_filesystem", fsArgs("nfs", target, pid, mgr)...)
	ca.done(t, "create_pool_filesystem", fsArgs("nfs", target, pid, mgr)...) // again: no change
	if msg := ca.refused(t, 1004, "create_pool_filesystem", fsArgs("nfs", "other:/export/VirtualMachines", pid, mgr)...); !strings.Contains(msg, "other:/export") {
		t.Errorf("create_pool_filesystem of the same id on another target: %q", msg)
	}
	if msg := ca.refused(t, 1004, "create_pool_filesystem", fsArgs("nfs", target, "deadbeef-dead-beef-dead-beef0000002d", mgr)...); !strings.Contains(msg, pid) {
		t.Errorf("create_pool_filesystem of a second one: %q", msg)
	}
	if fs := poolFS(cb); fs["Pool_Filesystem_Uuid"] != pid || fs["Pool_Filesystem_Target"] != target || fs["Pool_Filesystem_Type"] != "nfs" ||
		fs["Pool_Filesystem_Manager_Uuid"] != mgr || fs["Pool_Filesystem_Nfsbase_Uuid"] != base || fs["Pool_Filesystem_Pool_Uuid"] != pid {
		t.Errorf("discover_pool_filesystem on the other member: %v", fs)
	}

	// The agent 3 pool, created on a: a virtual ip it does not hold is
	// refused, an empty one or its own is not.
	if msg := ca.refused(t, 1003, "create_server_pool", create(ca, pid, "192.0.2.10", "127.0.0.1")...); !strings.Contains(msg, "192.0.2.10") {
		t.Errorf("create_server_pool with a foreign virtual ip: %q", msg)
	}
	ca.done(t, "create_server_pool", create(ca, pid, "127.0.0.1", "127.0.0.1")...)
	ca.done(t, "create_server_pool", create(ca, pid, "127.0.0.1", "127.0.0.1")...) // again: no change
	state(ca, "after create_server_pool", "Pooled", mgr, pid)
	if sp, ips := serverPool(ca); sp["Unique_Id"] != pid || sp["Pool_Alias"] != "Pool 0" || sp["Master_Virtual_Ip"] != "127.0.0.1" || strings.Join(ips, " ") != "127.0.0.1" {
		t.Errorf("discover_server_pool after create_server_pool: %v %v", sp, ips)
	}

	// b: owned by another manager, it cannot join a's pool; and no other
	// pool id is recorded beside the first.
	cb.refused(t, 1003, "join_server_pool", create(cb, pid, "127.0.0.1", "127.0.0.2")...)
	cb.done(t, "take_ownership", other, "")
	if msg := cb.refused(t, 1004, "join_server_pool", create(cb, pid, "127.0.0.1", "127.0.0.2")...); !strings.Contains(msg, mgr) {
		t.Errorf("join_server_pool by another manager's server: %q", msg)
	}
	cb.refused(t, 1011, "release_ownership", mgr) // not b's owner
	cb.done(t, "release_ownership", other)
	state(cb, "released", "Unowned", "none", "none")
	cb.done(t, "take_ownership", mgr, "")
	cb.refused(t, 1004, "join_server_pool", create(cb, "deadbeefdeadbeefdeadbeefdeadbeef", "127.0.0.1", "127.0.0.2")...)
	if msg := cb.refused(t, 1004, "create_server_pool", create(cb, "deadbeefdeadbeefdeadbeefdeadbeef", "", "127.0.0.2")...); !strings.Contains(msg, pid) {
		t.Errorf("create_server_pool of a second pool id: %q", msg)
	}
	cb.done(t, "join_server_pool", create(cb, pid, "127.0.0.1", "127.0.0.2")...)
	state(cb, "after join_server_pool", "Pooled", mgr, pid)
	if sp, ips := serverPool(cb); sp["Unique_Id"] != pid || sp["Pool_Alias"] != "Pool 0" || strings.Join(ips, " ") != "127.0.0.1 127.0.0.2" {
		t.Errorf("discover_server_pool on the second member: %v %v", sp, ips)
	}

	// The member list is checked against who joined.
	ca.done(t, "set_pool_member_ip_list", []string{"127.0.0.2", "127.0.0.1"})
	if msg := ca.refused(t, 1003, "set_pool_member_ip_list", []string{"127.0.0.1"}); !strings.Contains(msg, "127.0.0.2") {
		t.Errorf("set_pool_member_ip_list leaving a member out: %q", msg)
	}
	ca.refused(t, 1003, "set_pool_member_ip_list", []string{"127.0.0.1", "127.0.0.2", "127.0.0.9"})

	// In a pool, the owner cannot just go, nor the pool while b is in it.
	if msg := ca.refused(t, 1003, "release_ownership", mgr); !strings.Contains(msg, "leave_server_pool") {
		t.Errorf("release_ownership of a pooled server: %q", msg)
	}
	if msg := ca.refused(t, 1004, "destroy_server_pool", pid); !strings.Contains(msg, "ovm3-b") {
		t.Errorf("destroy_server_pool with a member in it: %q", msg)
	}

	// A restarted agent is still owned, and still in the agent 3 pool.
	if err := a.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	a.start()
	a.waitReady()
	waitPoolState(t, a, "member")
	state(ca, "after a restart", "Pooled", mgr, pid)

	// b leaves, then a destroys the pool and is released.
	cb.refused(t, 1003, "leave_server_pool", "deadbeefdeadbeefdeadbeefdeadbeef")
	cb.done(t, "leave_server_pool", pid)
	state(cb, "after leave_server_pool", "Owned", mgr, "none")
	if sp, _ := serverPool(cb); sp != nil {
		t.Errorf("discover_server_pool after leave_server_pool: %v", sp)
	}
	if _, ips := serverPool(ca); strings.Join(ips, " ") != "127.0.0.1" {
		t.Errorf("discover_server_pool's members after b left: %v", ips)
	}
	if msg := ca.refused(t, 1004, "destroy_pool_filesystem", "nfs", target, pid, base); !strings.Contains(msg, "destroy_server_pool") {
		t.Errorf("destroy_pool_filesystem under a server pool: %q", msg)
	}
	ca.done(t, "destroy_server_pool", pid)
	state(ca, "after destroy_server_pool", "Owned", mgr, "none")
	ca.refused(t, 1004, "destroy_pool_filesystem", "nfs", target, "deadbeef-dead-beef-dead-beef0000002d", base)
	ca.refused(t, 1004, "destroy_pool_filesystem", "nfs", "other:/export/VirtualMachines", pid, base)
	ca.done(t, "destroy_pool_filesystem", "nfs", target, pid, base)
	if fs := poolFS(cb); fs != nil {
		t.Errorf("discover_pool_filesystem after destroy_pool_filesystem: %v", fs)
	}
	ca.refused(t, 1002, "destroy_pool_filesystem", "nfs", target, pid, base)
	ca.done(t, "release_ownership", mgr)
	state(ca, "after release_ownership", "Unowned", "none", "none")
	ca.refused(t, 1003, "release_ownership", mgr) // owned by none now
}
