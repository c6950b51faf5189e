// Package poolmaster is the pool master of a server pool (issue 15,
// layer 2; the Oracle VM guide's Server Pool Master): the member that
// wins the election (agent/pool Campaign) watches the pool's keys in etcd
// (members, maintenance, domain specs, owners) and keeps each pool
// domain's status record: running on a host, pending with the reason, or
// stopped. It places what should run and runs nowhere, and dispatches the
// start to the chosen member's agent (Dispatcher; RPC calls
// pool.start_local there), retrying elsewhere when a start fails.
//
// Placement (Place, a pure function): Auto is the member with the most
// free memory that fits the vm.cfg's memory and engine (qemu for an
// operating system, kvm or sim for the workload guest); Manual (the
// spec's preferred servers) only those; a member in maintenance gets no
// new placements; HA restart priority orders the pending queue (higher
// first, then HA, then name).
//
// HA: a domain runs where its owner key is, and is never dispatched while
// that key exists. When a member's lease ends, its member key and the
// owner keys bound to the lease go together; its HA domains that should
// run are then placed again (pending with the reason when no member has
// room, started when one joins or frees memory), its other domains become
// stopped (desired stopped too) with the reason. Every write goes through
// Master.Write/WriteIf, so a deposed master's late write is refused; a
// new master takes over from the records alone (a start that an old
// master had under way is either done, its owner key there, or is
// placed again; two starts of one domain cannot both take the owner key).
//
// Keys (under /ovs/pools/NAME/, besides agent/pool's):
//
//	domains/UUID/spec      JSON Spec, written by the master
//	domains/UUID/status    JSON Status, written by the master
//	maintenance/HOST       JSON Maintenance: HOST gets no new placements
//
// Runner's Create, Adopt, SetDesired, SetHA, Delete and SetMaintenance
// are the pool API's changes, done by the master only (ErrNotMaster
// elsewhere: the agent forwards them). Adopt takes a domain that already
// runs on a member into the pool without a start: its spec is written
// with the Adopting mark (no pass places, stops or changes a marked
// domain, and the API's changes of it are refused), the member is asked
// to take its owner key (Dispatcher.Adopt), then the mark is cleared. A
// failed adopt removes the spec while no owner key exists; with one (the
// member took it and could not let it go) the domain is made desired
// stopped, so that it is stopped there. A mark no adopt of this master's
// is under way for (its master went away) is settled by a pass: the
// owner asked again, or the spec removed once the adopt timeout passed
// with no owner key.
// Info and Domains read the pool through any member. Draining (drain.go): a member in maintenance or stopping moves
// its own domains away by live migration, its agent asking Away where
// each goes; the master only keeps them out of its placements. Not done
// here: a pool-wide HA switch (HA is per domain).
//
// It must not touch VMMs or the domain registry: the agent side of a
// start is pool.start_local on the member's agent. It imports agent/pool,
// agent/client, config/vmcfg and internal packages.
package poolmaster
