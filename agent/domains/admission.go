package domains

import (
	"fmt"
	"strings"
)

// CheckIncoming lists every reason this host could not take a domain
// migrated from another host; none means it can.
func (m *Manager) CheckIncoming(name, uuid string, memMiB, vcpus int, engine string) []string {
	var problems []string
	m.mu.Lock()
	for _, d := range m.doms {
		if d.rec.Name == name {
			problems = append(problems, fmt.Sprintf("name: a domain named %s exists here already (%s)", name, d.rec.State))
		} else if strings.EqualFold(d.rec.UUID, uuid) {
			problems = append(problems, fmt.Sprintf("uuid: domain %s here has the same UUID %s", d.rec.Name, uuid))
		}
	}
	used := m.committed(nil)
	m.mu.Unlock()
	if total, err := m.opts.HostMemory(); err != nil {
		problems = append(problems, "memory: cannot read this host's memory: "+err.Error())
	} else if free := saturatingSub(saturatingSub(total, m.opts.MemoryReserve), used); uint64(memMiB)<<20 > free {
		problems = append(problems, fmt.Sprintf("memory: the domain needs %d MiB, %d MiB are free for domains here", memMiB, free>>20))
	}
	if vcpus > m.opts.HostCPUs {
		problems = append(problems, fmt.Sprintf("vcpus: the domain has %d vCPUs, this host %d CPUs", vcpus, m.opts.HostCPUs))
	}
	if local, err := m.engine(); err != nil {
		problems = append(problems, "engine: "+err.Error())
	} else if engine != "" && engine != local {
		problems = append(problems, fmt.Sprintf("engine: the domain runs on the %s engine; this host runs domains on %s (hypervisor = %s)", engine, local, m.opts.Hypervisor))
	}
	return problems
}
