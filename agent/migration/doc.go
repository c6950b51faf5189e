// Package migration orchestrates moving a running domain to another host
// from the sending agent's side: the dry run (every reason it would fail),
// live and non-live migrations with their status, progress and
// cancellation, and the two-phase commit between the two VMMs. The page
// stream itself runs inside the VMM processes (relocation/pagexfer); this
// package dials the peer (relocation), hands the connection to the source
// VMM, follows it, and settles the domain's place in the registry.
package migration
