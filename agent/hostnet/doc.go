// Package hostnet makes and removes the host network devices a manager
// asks for through the Oracle VM Agent 3 network calls: Linux bridges
// (with or without a port), VLAN devices <device>.<vlan>, a device's place
// in a bridge, and a device's IPv4 address. It runs iproute2's ip, each
// command bounded in time, and reads the devices' state from
// /sys/class/net and the kernel's address list.
//
// It owns the record of what it changed (a JSON file in the agent's state
// directory, written atomically after every change): that record is all a
// stop may undo, and Restore makes it again after a reboot (the devices
// are the kernel's and do not outlive it). It touches only device names
// the caller's patterns allow ([agent] network_devices), never removes a
// device it did not make, never puts into a bridge a device that is
// another bridge's port or carries an IPv4 address, and leaves every
// other setting of the host's network (routes, firewall, the
// distribution's network configuration files) alone. A change that fails
// half-way is undone before the error is returned.
//
// Errors wrap the sentinels below (ErrInvalid, ErrNotAllowed, ErrNotFound,
// ErrBusy, ErrExists, ErrNotMade, ErrUnsupported); the agent translates
// them into fault codes. It imports nothing of the project but
// internal/atomicfile.
package hostnet
