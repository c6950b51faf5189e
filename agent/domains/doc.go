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
// The engine of a domain follows from its vm.cfg (engine.go): an
// operating system (kernel, bootloader or builder = 'hvm') runs on the
// qemu engine with the QEMU program and accelerator agent/qemuhost
// resolves, or is refused with what to install or set; the workload guest
// runs on the engine [agent] hypervisor chooses. The files an operating
// system's vm.cfg names (kernel, ramdisk, disks) must resolve inside the
// repositories, [agent] file_dirs or the domain's folder, a disk image
// must be what its type says (its header read as the engine reads it),
// a phy: disk must be a block device, and at start every vif's bridge must exist
// (paths.go): checked at create and again at start, before any VMM runs.
//
// Files: manager.go (the registry, persistence, Create, Delete, Offer),
// lifecycle.go (start, pause, shutdown, destroy, reboot), engine.go,
// paths.go, exits.go (a VMM's end and the automatic restart), recover.go
// (re-attaching after an agent restart), migrate.go (incoming migrations,
// save, restore) and image.go (which engine wrote a save image),
// offline.go, detach.go, admission.go and qemuadmission.go (what an
// incoming domain needs here, and what this host offers it), info.go.
//
// It knows nothing of XML-RPC: errors carry a Kind that the API maps to a
// fault code. It never touches guest memory, and never runs a process
// itself: that belongs to the VMM and its driver.
package domains
