package domains

import (
	"context"
	"slices"

	"github.com/ovs-agent/ovs-agent/agent/qemuhost"
	"github.com/ovs-agent/ovs-agent/relocation"
)

// checkQEMU records (soft) what of the source's QEMU, as the offer says
// it, this host's QEMU cannot follow: a migration stream loads only into
// a QEMU at least as new, with the same machine type and accelerator. An
// offer that does not say (an older peer, a stopped domain) is checked
// for what it says only.
func (m *Manager) checkQEMU(c *relocation.Checker, o relocation.Offer) {
	if m.opts.QEMU == nil {
		return // checkEngine said so
	}
	ctx, cancel := context.WithTimeout(context.Background(), qemuProbeTimeout)
	defer cancel()
	if o.EngineVersion != "" {
		src, ok := qemuhost.ParseVersion(o.EngineVersion)
		if !ok {
			c.Soft("qemu", "the source's QEMU version %q is not one (as \"QEMU 7.2.22\")", o.EngineVersion)
		} else if _, here, err := m.opts.QEMU.Version(ctx); err == nil && here.Less(src) {
			c.Soft("qemu", "the domain runs on %s; this host has %s, which cannot load the state of a newer QEMU (install qemu-system-x86 %d.%d or newer here)", o.EngineVersion, here, src.Major, src.Minor)
		}
	}
	if o.Machine != "" {
		if ms, err := m.opts.QEMU.Machines(ctx); err != nil {
			c.Soft("qemu", "cannot list this host's QEMU machine types: %v", err)
		} else if !slices.Contains(ms, o.Machine) {
			c.Soft("qemu", "the domain runs on machine type %s, which this host's QEMU does not know (it has %d others; install the QEMU the source has)", o.Machine, len(ms))
		}
	}
	if o.Accel != "" {
		accel, why, err := m.opts.QEMU.Accel()
		switch {
		case err != nil:
			c.Soft("accel", "%v", err)
		case accel != o.Accel:
			c.Soft("accel", "the domain runs with accel %s; qemu domains here get %s (%s), and QEMU does not move a guest between the two", o.Accel, accel, why)
		}
	}
}
