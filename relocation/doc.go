// Package relocation is the wire between agents that move domains: the
// relocation listener (port 8002, TLS on 8003) with xend's hosts-allow
// check made before any byte is read, the versioned peer handshake that
// authenticates the sending agent and names the operation (handshake.go,
// server.go), the client side of that handshake (Dial), the link probe
// (probe.go), and the wire types of migration (wire.go: Offer, Disk,
// OfflineRequest, OfflineFile, OfflineCommit, OfflineCommitted,
// ProbeResult, TargetFacts (what a dry run's receiver offers a qemu
// domain), and Problem with its Checker, the one way every check of
// an incoming domain records what it found: field, hard or soft, message).
// A Welcome carries problems both as the "field: message" strings older
// peers send and read and, structured, as problem_details.
//
// It hands each accepted, authenticated connection to a handler the agent
// supplies (which dispatches it to agent/migration); it never touches
// guest memory. The page stream itself is relocation/pagexfer's. It
// imports config and internal/ only, never vmm, agent or cmd: the agent
// injects what it owns (password check, host-name lookup) as functions.
package relocation
