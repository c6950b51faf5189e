// Package qemuhost is what this host offers qemu domains, as the agent
// sees it: the QEMU program [qemu] binary names (a command looked up in
// PATH, or an absolute path), its version or why it cannot be used, the
// machine types it knows (`-machine help`), and the accelerator [qemu]
// accel and the host's probe choose (kvm only where hardware
// virtualization works; PVM's /dev/kvm counts as none). The domain
// registry asks it before a qemu domain starts and when it admits an
// incoming one, host.info shows its Facts.
//
// It runs the program only to ask it (--version, -machine help), with
// bounded output, and caches the answers per binary (path, size and
// modification time: an upgraded package is asked again). It never runs a
// guest: that is ovs-vmm's qemu engine (vmm/qemu), whose probes it calls.
package qemuhost
