// Package storagehb is Apache CloudStack's storage heartbeat on this host,
// what its storagehealth.py does on Oracle VM Server: every interval it
// writes the time (seconds since the epoch) into .hb-<host guid> at the
// top of every repository mounted here (CloudStack's primary storage), by
// a new file renamed over the old one and synced, so that another host can
// tell from the file's age whether this one still reaches the storage
// (State: CloudStack's HA investigator asks that before it restarts this
// host's VMs elsewhere). A write that has not ended after the timeout is
// storage this host has lost: the Fence callback runs once for that
// mount (the agent stops the domains whose disks are there, or crashes
// the kernel as the script does, as configured), so that the VMs are not
// running here when CloudStack starts them elsewhere.
//
// It owns only the heartbeat files and its goroutines: at most one write
// per mount is outstanding (one stuck on dead storage is waited for, not
// repeated). It imports nothing of the project.
package storagehb
