// Package domains is the agent's domain registry and the supervisor of
// ovs-vmm processes. It owns the lifecycle states (starting, running,
// paused, suspended, stopping, stopped) and their legal transitions, the
// persistence of every domain under the state directory (its vm.cfg and a
// domain.json), host memory accounting, starting one ovs-vmm per running
// domain in its own session, and finding those VMMs again after the agent
// restarts (noticing the ones that died meanwhile).
//
// It knows nothing of XML-RPC: errors carry a Kind that the API maps to a
// fault code. It never touches guest memory; that belongs to the VMM.
package domains
