// Package repository owns ovs-agent's storage repositories: the places
// where guests (running_pool), templates (seed_pool), ISO images
// (iso_pool), published guests (publish_pool) and shared virtual disks
// (sharedDisk) live, as in Oracle VM Server 2.x.
//
// It owns:
//
//   - the configuration files /etc/ovs/repositories (`uuid source`) and
//     /etc/ovs/repositories.options (`uuid options`): parsing
//     (ParseConfig, LoadConfig), and atomic edits that keep comments;
//   - the metadata file .ovsrepo at the top of every repository (uuid,
//     shared 0/1/C, description: what ovs-makerepo was given), and the
//     standard pool folders;
//   - mounting: every repository is mounted by mount(8) (run as a child
//     process that is killed, and abandoned, at a deadline, so a hung NFS
//     server costs one repository a timeout and nothing else) at a backing
//     point STAGING/<uuid> (default /var/ovs/mount/<uuid>, as in Oracle VM
//     2.2), then bind-mounted to its place: ROOT/<uuid>, or ROOT itself
//     (default /OVS) for the cluster root (shared = C). Local directories
//     are bind mounts, block devices and NFS real mounts with the options
//     exactly as written;
//   - the Manager, which keeps the mounts equal to the files: on start, on
//     reload and on every change of the files' directory (fsnotify,
//     debounced). It refuses to unmount a repository that running domains
//     use (Options.InUse), and refreshes the pool heartbeat file
//     .server_pool_hb on the cluster root;
//   - secondary mounts (secondary.go): file systems a manager mounts
//     beside the repositories at DIR/<name> of one directory (agent 3's
//     storage_plugin_mount at /nfsmnt/<uuid>, CloudStack's secondary
//     storage). NFS exports and block devices only, always nosuid and
//     nodev (block devices noexec too), with the caller's options held to
//     an allow-list; the mount table is their only record (they are not
//     in the repositories files and are not mounted again at boot);
//   - listing templates and ISO images of a repository and creating a
//     domain folder from a template (fresh UUID and 00:16:3e MAC; the
//     files are copied by internal/sparsecopy, holes kept);
//   - the logic of the `ovs-agent repo ...` commands (Commands), which the
//     shell wrappers ovs-makerepo, ovs-offlinerepo and ovsrepositories
//     call.
//
// Agent and command line: the agent runs Manager.Run (watcher, heartbeat)
// and serves the Controller methods through its API. `ovs-agent repo ...`
// uses the agent when it answers (so the agent mounts, and its watcher
// also sees the edited files and finds nothing left to do), and a Manager
// of its own otherwise (standalone: it edits the files and mounts
// itself). Both take an flock on STATEFILE.lock around every change, and
// both record what they applied in the state file (default
// /var/run/ovs-agent/repositories.state: mounts with their source and
// options, offline marks, stopped), so either picks up where the other
// left off; a restarted agent adopts the mounts it finds and never
// remounts them. Neither trusts what it remembers: every operation, under
// the lock, first re-reads the state file and /proc/self/mountinfo, so
// what the other process mounted is adopted (not mounted again) and what
// it unmounted is known to be gone (unmounting what is not mounted is no
// error). Run also watches the state file, so the agent shows what the
// command did even when the files did not change (offline, stop, start).
//
// Every name or path a caller gives is checked: nothing escapes a
// repository (os.Root, symlinks included).
//
// It may import config/vmcfg, internal/atomicfile (every file it
// writes), internal/boundedfile (the repositories files, metadata,
// heartbeats and vm.cfg files it reads: regular files only, never
// blocking, bounded) and internal/sparsecopy, never agent or cmd. It knows running
// domains only through the InUse callback.
package repository
