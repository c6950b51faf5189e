// Package pool is the agent's side of a server pool whose state is kept in
// an external etcd cluster (go.etcd.io/etcd/client/v3): membership under a
// lease the agent keeps alive itself, the pool master election, and the
// ownership of pool domains. It is the first layer of issue 15; placement,
// HA restarts and the pool API build on it.
//
// It owns:
//
//   - Member: one agent's membership. Join grants a lease of [pool]
//     lease_ttl and registers the host under a key bound to it. The lease
//     is kept alive by the Member's own loop of KeepAliveOnce, one every
//     third of the TTL, not by the library's KeepAlive or a session's Done
//     signal (which on a partitioned host arrives too late): the Member's
//     Deadline is the send time of the last acknowledged renewal plus the
//     TTL the server answered, on the monotonic clock. The lease is lost
//     when that deadline passes without a renewal or when etcd says the
//     lease is gone (revoked, expired); Lost is closed then and Err says
//     why. Loss is final for a Member: a new Member must Join. A Member
//     started again (the agent restarted or killed, or a member whose
//     own deadline passed while etcd may still hold its lease) may take
//     up the previous lease (Settings.Resume) while it is alive, with
//     every key bound to it; Detach ends a Member without revoking, for
//     that. A lease etcd says is gone is final: its keys are gone.
//   - Election: the pool master, through concurrency.Election on a
//     session that uses the Member's lease (the session's own keep-alive
//     is orphaned at once). A campaign is abandoned when the lease is
//     lost. Every write the master makes goes through Master.Write, a
//     transaction guarded by the election key's create revision, so that a
//     deposed master's late write is refused with a *DeposedError.
//   - Ownership: a pool domain has one owner at a time, the member whose
//     lease its owner key is bound to. AcquireOwner creates the key in one
//     transaction only if it is absent (or already this member's); the
//     key's mod revision is the domain's generation, which only grows: a
//     new owner's key is created at a higher revision, and a live
//     migration hands the key over (HandOver: rewritten, bound to the
//     target member's lease, in one transaction guarded by the current
//     generation and the target's member key) at a higher one again.
//     KeepOwner settles a hand-over whose outcome is unknown. The key is
//     written by nothing else. An acquire whose answer is lost is read
//     back, so that a key bound to the lease is never left unknown to the
//     caller. OwnedDomains lists what a member's lease owns.
//   - The pool domain records (domains.go): the spec (DomainSpec) and the
//     status (DomainStatus) the master writes, their keys, and ReadSpec.
//
// Key layout, for pool NAME (every key of a pool is under /ovs/pools/NAME/):
//
//	/ovs/pools/NAME/members/HOST          JSON MemberRecord, bound to HOST's lease
//	/ovs/pools/NAME/master/LEASE          concurrency.Election keys (LEASE in hex);
//	                                      the one created first is the master,
//	                                      its value the master's host name
//	/ovs/pools/NAME/domains/UUID/spec     JSON DomainSpec (name, uuid, config: the
//	                                      vm.cfg text, ha, desired, preferred,
//	                                      priority); written by the master only
//	                                      (Master.Write), read with ReadSpec
//	/ovs/pools/NAME/domains/UUID/owner    JSON OwnerRecord, bound to the owner's lease;
//	                                      its mod revision is the generation
//	/ovs/pools/NAME/domains/UUID/status   JSON DomainStatus (state running, pending
//	                                      or stopped, host, reason, since);
//	                                      written by the master only
//
//	/ovs/pools/NAME/maintenance/HOST      agent/poolmaster's: HOST gets no new
//	                                      placements; written by the master only
//
//	/ovs/pools/NAME/ovm3/pool_filesystem  JSON PoolFilesystem: the Oracle VM Agent 3 pool
//	                                      file system a manager declared (type, target,
//	                                      uuids, manager); created only where absent,
//	                                      removed only while no server_pool is (poolfs.go)
//	/ovs/pools/NAME/ovm3/server_pool      JSON ServerPool: the Oracle VM Agent 3 server
//	                                      pool identity a manager gave the pool (id,
//	                                      alias, virtual ip, manager); created only
//	                                      where absent (CreateServerPool)
//	/ovs/pools/NAME/ovm3/members/HOST     JSON ServerPoolMember: HOST joined it (with
//	                                      the address the manager registered); not
//	                                      bound to a lease (serverpool.go)
//
// SpecKey, OwnerKey, StatusKey and DomainsPrefix name them (domains.go);
// OwnedDomains lists the owner keys bound to a member's lease.
//
// Why the Member's deadline is safe: etcd's leader starts a lease's TTL
// anew when it applies a grant or receives a renewal, which is after the
// Member sent it, and a new leader extends every lease; so etcd holds the
// lease at least until the Member's Deadline, and nobody else can take
// this member's domains before then. That rests on the clocks of this
// host and of etcd's leader running at nearly the same rate (drift far
// below the fencing margin), not on their being set alike: only
// durations on monotonic clocks are compared. Software fencing cannot
// cover a host that keeps writing after its own deadline (its clock
// stopped, its VMM hung in the kernel with I/O in flight): the fencing
// margin is there for the time a stopping guest's last writes take.
//
// It must not touch VMMs or the domain registry: what it needs from them
// (the host's free memory and engines) the caller hands it as values, and
// what a later layer needs to act on (lease renewals, for the VMMs'
// run-until time; loss, to stop HA guests) it offers as a callback and a
// channel. It imports config (for [pool]) and internal packages only.
package pool
