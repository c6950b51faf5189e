package domains

import (
	"strings"

	"github.com/ovs-agent/ovs-agent/relocation"
)

// CheckIncoming lists every reason this host could not take a domain
// migrated from another host; none means it can. A name or UUID taken is
// hard (it protects this host); the resources are soft.
func (m *Manager) CheckIncoming(name, uuid string, memMiB, vcpus int, engine string) []relocation.Problem {
	var c relocation.Checker
	m.mu.Lock()
	for _, d := range m.doms {
		if d.rec.Name == name {
			c.Hard("name", "a domain named %s exists here already (%s)", name, d.rec.State)
		} else if strings.EqualFold(d.rec.UUID, uuid) {
			c.Hard("uuid", "domain %s here has the same UUID %s", d.rec.Name, uuid)
		}
	}
	used := m.committed(nil)
	m.mu.Unlock()
	if total, err := m.opts.HostMemory(); err != nil {
		c.Soft("memory", "cannot read this host's memory: %v", err)
	} else if free := saturatingSub(saturatingSub(total, m.opts.MemoryReserve), used); uint64(memMiB)<<20 > free {
		c.Soft("memory", "the domain needs %d MiB, %d MiB are free for domains here", memMiB, free>>20)
	}
	if vcpus > m.opts.HostCPUs {
		c.Soft("vcpus", "the domain has %d vCPUs, this host %d CPUs", vcpus, m.opts.HostCPUs)
	}
	if local, err := m.engine(); err != nil {
		c.Soft("engine", "%v", err)
	} else if engine != "" && engine != local {
		c.Soft("engine", "the domain runs on the %s engine; this host runs domains on %s (hypervisor = %s)", engine, local, m.opts.Hypervisor)
	}
	return c.Problems()
}
