// Package relocation will own the agent's side of moving domains between
// hosts: the relocation listener (port 8002, TLS on 8003), xend-style
// hosts-allow filtering applied before any byte is read, the versioned peer
// handshake that authenticates the sending agent and names the operation,
// and the orchestration of migrations (status, cancel, dry run).
//
// It hands accepted connections to an ovs-vmm process; it never touches
// guest memory itself. It may import config and vmm, never agent or cmd.
package relocation
