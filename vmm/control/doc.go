// Package control is the protocol between the agent and one ovs-vmm
// process: JSON requests and answers, one per line, over the VMM's unix
// control socket under the agent's state directory. The agent uses Dial and
// Client; the VMM serves with Serve.
//
// The socket is the VMM's identity: a restarted agent re-attaches to a
// running domain by connecting to it and asking for Info, whose UUID and
// PID it checks against what it persisted.
//
// A domain of a pool with HA gets a lease (OpLease, lease.go): a
// run-until time on CLOCK_BOOTTIME (Monotonic) and its owner's
// generation; the VMM states, fenced among them, and their steps are in
// vocabulary.go and transitions.go.
//
// The files a VMM keeps in its domain directory are protocol too: their
// names (ConsoleFile, ExitFile) and the exit record (Exit, WriteExit,
// ReadExit) are declared here, so that the agent reads them without
// importing the VMM runtime.
package control
