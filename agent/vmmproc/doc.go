// Package vmmproc is the real VMM driver: it runs one ovs-vmm process per
// domain, in its own session so that it outlives the agent, and finds it
// again after an agent restart from a Handle: the VMM that answers on the
// handle's control socket for its domain UUID is the domain's, and its pid
// and start time are taken from what it reports (the pid the registry
// persisted is what tells a gone VMM's exit record from an older one's).
//
// Its shape follows a Nomad task driver: Start returns once the VMM
// answers on its control socket; Recover re-attaches to a VMM the agent did
// not start; Wait delivers the VMM's exit record on a channel, read from
// the exit file the VMM writes before it ends (or made up, reason
// control.ExitVanished, when it left none). One goroutine per VMM blocks on
// the process's pidfd, and on an eventfd that Release signals; nothing
// polls for an exit. A released VMM's end is never reported, but a child of
// this process is still reaped when it ends (no zombie while the agent
// lives on). Inspect answers both what Nomad splits into InspectTask and
// TaskStats: control.Info carries the VMM's identity, state and counters in
// one call. Stop asks the VMM to end (cleanly or at once), Kill ends the
// process, Call makes any other control call.
//
// It owns the files a VMM is started with: the exit record, the console
// log and the socket of the previous run are removed first; vmm.log (the
// VMM's stdout and stderr) is appended to across runs. It knows nothing of
// domain states, memory accounting or restart policy: that is the
// registry's (agent/domains), which declares the interface this package
// implements. It never touches guest memory.
package vmmproc
