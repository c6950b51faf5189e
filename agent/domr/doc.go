// Package domr reaches Apache CloudStack's system VMs (virtual routers,
// console proxy, secondary storage VM) over ssh from the host, as the
// Python module CloudStack installs into Oracle VM Agent 3 does: run a
// command (exec_domr) and copy a file in (ovs_domr_upload_file) as root on
// port 3922 of their link-local control address, with the system VM key
// the manager uploaded; check that a TCP port answers; and ping an address
// (ICMP echo, for the module's ping: another host, a pool's address).
//
// The system VMs are rebuilt with new host keys at the same addresses, on
// a network that is this host's own (a bridge with no device: control0),
// so their host keys are not checked, as CloudStack's module does not
// check them; the caller keeps the targets on that network. Every dial,
// handshake and command is bounded in time and what a command prints is
// bounded in size. It owns only those connections: it keeps no key and no
// state; it imports nothing of the project.
package domr
