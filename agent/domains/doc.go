// Package domains is the agent's domain registry. It owns the lifecycle
// states (starting, running, paused, suspended, stopping, stopped,
// migrating, detached) and their legal transitions (state.go), the
// persistence of every domain under the state directory (its vm.cfg and a
// domain.json), host memory accounting (a start that does not fit is
// refused before anything changes), and what happens when a VMM ends: the
// domain is stopped, suspended (saved), forgotten (migrated away, or an
// incoming migration that did not complete), or restarted as its vm.cfg
// asks, within the restart budget of agent/restarts.
//
// The VMM processes are behind a seam, VMMDriver (driver.go), in the shape
// of a Nomad task driver: Start (boot, restore, incoming; it returns once
// the VMM answers), Recover (after an agent restart: the VMM that answers
// on the control socket derived from the domain's UUID, for that UUID, is
// the domain's; the pid and start time the registry persisted are replaced
// by what it reports, and the pid picks the exit record of one that is
// gone), a Wait channel per VMM that delivers its exit record (exits.go
// receives it in one goroutine per VMM; nothing polls for exits), Inspect
// (state and counters), Stop, Kill, Call (the other control calls) and
// Release (Close lets go of the VMMs without stopping them; a start that
// answers after Close is released too). A live domain holds its VMM until
// the VMM ends; only after Close does it hold none, and a stop is then
// refused at once. The real driver is agent/vmmproc; the unit tests drive
// the registry through a fake one, without processes.
//
// Files: manager.go (the registry, persistence, Create, Delete, Offer),
// lifecycle.go (start, pause, shutdown, destroy, reboot), exits.go (a
// VMM's end and the automatic restart), recover.go (re-attaching after an
// agent restart), migrate.go (incoming migrations, save, restore),
// offline.go, detach.go, admission.go, info.go.
//
// It knows nothing of XML-RPC: errors carry a Kind that the API maps to a
// fault code. It never touches guest memory, and never runs a process
// itself: that belongs to the VMM and its driver.
package domains
