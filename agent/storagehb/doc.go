// Package storagehb is Apache CloudStack's storage heartbeat on this host,
// what its storagehealth.py does on Oracle VM Server: every interval it
// writes the time (seconds since the epoch) into .hb-<host guid> at the
// top of every repository mounted here (CloudStack's primary storage), by
// a new file synced and renamed over the old one, so that another host can
// tell from the file's age whether this one still reaches the storage
// (State: CloudStack's HA investigator asks that before it restarts this
// host's VMs elsewhere). A mount whose file has not been written for the
// timeout less an interval (a write that hangs or fails) is storage this
// host has lost: the Fence callback runs once for that mount (the agent
// stops every domain here, or crashes the kernel as the script does, as
// configured) before the other hosts read the file as stale, so that the
// VMs are not running here when CloudStack starts them elsewhere. The
// settings may be kept in a file, to run again when the agent starts.
//
// It owns only the heartbeat files, its settings file and its goroutines:
// at most one write and one read per mount are outstanding (one stuck on
// dead storage is waited for, not repeated). It imports nothing of the
// project.
package storagehb
