// Package migration is both sides of moving a domain between agents, and
// the only place that knows how: the sending side (the dry run with every
// reason it would fail and its estimate; live and non-live migrations with
// their status, progress, cancellation and two-phase commit; offline
// migrations of a stopped domain with its disks; the in-doubt resolution
// after a lost commit answer or an agent restart) and the receiving side
// (the relocation operations check, status, probe, receive with its extra
// channels, offline receive and commit), which the agent dispatches to it
// on the op of an authenticated relocation connection.
//
// Files: local.go (Local, Options, the interfaces the package needs:
// Registry for the domain registry, Repositories, Dialer), check.go (dry
// run, estimate), registry.go (the migrations of this agent and their
// phase moves), run.go (live: connect, start the sender, follow),
// offline.go (offline: validate, copy, commit), resolve.go (in-doubt and
// lost commits, asked again until the agent's lifetime ends), receive.go
// and receive_offline.go (the receiving side), handoff.go (a connection
// handed to a VMM). A pool domain's live migration hands its ownership
// over through the Pool interface (local.go has the order of its steps);
// this package keeps its rule: a source that may have handed the
// ownership over commits and never resumes the guest.
//
// Phases move only through vmm/control's transition table
// (control.SourceAgent for a live or non-live migration, control.OfflineAgent
// for an offline one); an illegal step is refused. Problems a check finds
// are relocation.Problem values built by one relocation.Checker (field,
// hard/soft, message); the API reports them as "field: message".
//
// The page stream runs inside the VMM processes (relocation/pagexfer), the
// disk stream here (relocation/filexfer). The wire types of migration
// (Offer, Disk, OfflineRequest, OfflineFile, OfflineCommit,
// OfflineCommitted, ProbeResult, Problem) sit together in relocation
// (wire.go), next to Hello and Welcome, because the domain registry builds
// the Offer and must not import this package, and a wire type belongs
// below every package that speaks it. Every long retry or wait takes the
// agent's lifetime context (Local.Lifetime, or the ctx of
// ResolveInDoubt/ResolveOfflineInDoubt). It may import agent/domains,
// agent/fileaccess, agent/hostinfo, agent/xmlrpc (fault codes), repository,
// relocation and its streams, config and vmm/control; never agent itself.
package migration
