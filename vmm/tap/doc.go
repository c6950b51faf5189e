// Package tap makes the tap device of a domain's network interface (a
// vm.cfg vif) and puts it on the interface's bridge, for the qemu engine:
// Create opens /dev/net/tun, makes a tap device (IFF_TAP, IFF_NO_PI,
// IFF_VNET_HDR) with the given name, enslaves it to the bridge, sets it up
// and returns its file descriptor, which the engine hands to QEMU
// (-netdev tap,fd=N; QEMU probes the descriptor for the virtio-net
// header, and every NIC model works with it).
//
// The device is not persistent: it goes away when the last descriptor
// closes, so a VMM that crashes leaves nothing behind. Remove deletes a
// device of that name for certainty (one made persistent by someone
// else, or left by an older release).
//
// Name gives the interface name of a domain's vif (15 bytes at most, see
// Name), MAC the address of a vif without mac= (Xen's 00:16:3e prefix, derived from the domain and the vif), and
// BridgeExists the clear error an operator needs when a vif names a
// bridge the host does not have.
//
// This package talks to the kernel only (the tun driver, interface
// ioctls and an rtnetlink query of one link, all in the calling thread's
// network namespace); it runs no program, never creates or changes a
// bridge, and knows nothing of vm.cfg or QEMU beyond the descriptor it
// returns. It imports only golang.org/x/sys/unix.
package tap
