package domains

import (
	"path/filepath"
	"strings"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/vmm"
)

// CheckIncoming lists every reason this host could not take the domain o
// offered by another host, which would hold memMiB here (0 when it is
// not to run: an offline migration that does not start it); none means
// it can. A name or UUID taken is hard (it protects this host); the
// resources and the engine are soft. The engine is the one the offer's
// vm.cfg asks for; a qemu domain also needs this host's QEMU to load what
// the source's QEMU sends (see checkQEMU). The vm.cfg itself is the
// caller's to refuse when it does not parse: then only the offer's own
// fields are checked.
func (m *Manager) CheckIncoming(o relocation.Offer, memMiB int) []relocation.Problem {
	var c relocation.Checker
	name, uuid := o.Name, o.UUID
	m.mu.Lock()
	for _, d := range m.doms {
		if d.rec.Name == name {
			c.Hard("name", "a domain named %s exists here already (%s)", name, d.rec.State)
		} else if strings.EqualFold(d.rec.UUID, uuid) {
			c.Hard("uuid", "domain %s here has the same UUID %s", d.rec.Name, uuid)
		}
	}
	m.mu.Unlock()
	cfg, err := vmcfg.Parse("vm.cfg", []byte(o.Config))
	if err != nil {
		// Only the offer's word for the engine is left to check.
		cfg = vmcfg.New(name, o.MemoryMiB)
		if o.Engine == vmm.EngineQEMU {
			cfg.Builder = vmcfg.BuilderHVM
		}
	}
	if memMiB > 0 {
		// The backing is this host's choice: the offer's vm.cfg may ask
		// for one, else this host's default applies, never the source's.
		m.mu.Lock()
		_, err := m.fit(cfg, memMiB, m.wantedBacking(cfg.MemoryBacking), nil, true)
		m.mu.Unlock()
		if err != nil {
			c.Soft("memory", "%s", err.Error())
		}
	}
	if o.VCPUs > m.opts.HostCPUs {
		c.Soft("vcpus", "the domain has %d vCPUs, this host %d CPUs", o.VCPUs, m.opts.HostCPUs)
	}
	m.checkEngine(&c, cfg, o.Engine)
	if cfg.Guest() == vmcfg.GuestOS {
		m.checkQEMU(&c, o)
	}
	return c.Problems()
}

// CheckFiles lists, one problem each, what the vm.cfg text of a domain
// coming live from another host names that this host does not offer: a
// live migration registers the vm.cfg as it is, so an operating system's
// kernel, ramdisk and disks must be here (on shared repositories), inside
// the repositories or [agent] file_dirs, and its vifs' bridges must exist
// (a file or bridge missing is soft, a path outside the roots hard, as at
// create). A relative path is the source's domain folder, which a live
// migration does not copy. The workload guest's vm.cfg names none; a
// vm.cfg that does not parse is the caller's to refuse.
func (m *Manager) CheckFiles(config string) []relocation.Problem {
	cfg, err := vmcfg.Parse("vm.cfg", []byte(config))
	if err != nil {
		return nil
	}
	// The folder it would get here holds nothing yet.
	dir := filepath.Join(m.domainsDir(), cfg.Name)
	return append(m.fileProblems(cfg, dir, false), m.bridgeProblems(cfg)...)
}

// TargetFacts is what this host offers the domain of the vm.cfg text of a
// dry run, beside the problems: its QEMU (version, machine types,
// accelerator, or why it cannot run qemu domains) and which of the files
// and bridges the vm.cfg names it has. Nil for the workload guest and a
// vm.cfg that does not parse.
func (m *Manager) TargetFacts(config string) *relocation.TargetFacts {
	cfg, err := vmcfg.Parse("vm.cfg", []byte(config))
	if err != nil || cfg.Guest() != vmcfg.GuestOS {
		return nil
	}
	tf := &relocation.TargetFacts{}
	if m.opts.QEMU == nil {
		_, _, err := m.qemuReady()
		tf.QEMUProblem = err.Error()
	} else {
		ctx, cancel := contextFor(qemuProbeTimeout)
		f := m.opts.QEMU.Facts(ctx)
		tf.QEMUVersion, tf.QEMUProblem, tf.Accel, tf.AccelReason = f.Version, f.Problem, f.Accel, f.AccelReason
		if ms, err := m.opts.QEMU.Machines(ctx); err == nil {
			tf.Machines = ms
		}
		cancel()
	}
	for _, f := range m.checkedFiles(cfg, filepath.Join(m.domainsDir(), cfg.Name)) {
		name, _, _ := strings.Cut(f.field, " (") // "disk xvda", without the entry
		tf.Files = append(tf.Files, relocation.Presence{Name: name, Path: f.path, Present: f.err == nil})
	}
	bs, _ := m.checkedBridges(cfg)
	for _, b := range bs {
		tf.Bridges = append(tf.Bridges, relocation.Presence{Name: b.field, Path: b.bridge, Present: b.err == nil})
	}
	return tf
}
