// Package control is the protocol between the agent and one ovs-vmm
// process: JSON requests and answers, one per line, over the VMM's unix
// control socket under the agent's state directory. The agent uses Dial and
// Client; the VMM serves with Serve.
//
// The socket is the VMM's identity: a restarted agent re-attaches to a
// running domain by connecting to it and asking for Info, whose UUID and
// PID it checks against what it persisted.
package control
