// Package relocation is the agent's side of moving domains between hosts:
// the relocation listener (port 8002, TLS on 8003) with xend's hosts-allow
// check made before any byte is read, the versioned peer handshake that
// authenticates the sending agent and names the operation, and the client
// side of that handshake.
//
// It hands each accepted, authenticated connection to a handler the agent
// supplies (which passes it to an ovs-vmm process); it never touches guest
// memory. The page stream itself is relocation/pagexfer's. It may import
// config and vmm, never agent or cmd: the agent injects what it owns
// (password check, host-name lookup) as functions.
package relocation
