package domains

import (
	"fmt"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// memoryFit is where a domain's memory would come from on this host now
// (fit): the backing it gets and why, or why it does not fit.
type memoryFit struct {
	backing guestmem.Backing
	why     string
}

// wantedBacking is the memory backing d's vm.cfg asks for, else the
// host's [agent] memory_backing.
func (m *Manager) wantedBacking(cfgBacking string) guestmem.Backing {
	s := cfgBacking
	if s == "" {
		s = m.opts.MemoryBacking
	}
	b, err := guestmem.ParseBacking(s)
	if err != nil {
		return guestmem.BackingAuto // both were checked when read
	}
	return b
}

// hugeMiB is the memory a domain of cfg maps on huge pages: its maxmem
// (a qemu guest's RAM is its maxmem; a workload guest's maxmem is its
// memory).
func hugeMiB(cfg *vmcfg.Config) uint64 { return uint64(max(cfg.Memory, cfg.MaxMem)) }

// hugeBytes is the memory of n 2 MiB huge pages.
func hugeBytes(n uint64) uint64 { return n * guestmem.HugePageSize }

// committedMemory sums the memory of the live domains other than skip:
// on 4 KiB pages (or transparent huge pages: ordinary memory) and on
// reserved huge pages; the caller holds m.mu.
func (m *Manager) committedMemory(skip *domain) (ordinary, hugePages uint64) {
	for _, d := range m.doms {
		if d == skip {
			continue
		}
		d.mu.Lock()
		if d.rec.State.live() {
			if d.rec.MemoryBacking == string(guestmem.BackingHugeTLB) {
				hugePages += guestmem.HugePagesFor(hugeMiB(d.cfg) << 20)
			} else {
				ordinary += uint64(d.holds()) << 20
			}
		}
		d.mu.Unlock()
	}
	return ordinary, hugePages
}

// fit says where memMiB of memory on backing want would come from beside
// the live domains other than skip (the caller holds m.mu), or an error
// with fault code NoResources saying what is short and what to do. The
// huge-page pool is not free memory for ordinary pages: they get the
// host's memory less memory_reserve, less the whole pool, less the other
// domains' ordinary memory. A hugetlb domain gets the pool's free pages:
// the kernel's free and unreserved ones, less those of domains counted
// here that have not mapped theirs yet. offer phrases the error for the
// check of a domain offered by another host.
func (m *Manager) fit(cfg *vmcfg.Config, memMiB int, want guestmem.Backing, skip *domain, offer bool) (memoryFit, error) {
	name := cfg.Name
	total, err := m.opts.HostMemory()
	if err != nil {
		return memoryFit{}, errorf(Failed, "read host memory: %v", err)
	}
	host, err := m.opts.HostBacking()
	if err != nil {
		return memoryFit{}, errorf(Failed, "read the host's huge pages: %v", err)
	}
	used, usedHuge := m.committedMemory(skip)
	if left := host.HugePages - min(host.HugePages, usedHuge); left < host.HugeFree {
		host.HugeFree = left
	}
	need := uint64(memMiB) << 20
	choice := host
	huge := hugeMiB(cfg)
	if want == guestmem.BackingAuto && cfg.Guest() == vmcfg.GuestOS && huge%2 != 0 {
		// QEMU's hugetlb RAM is whole 2 MiB pages: auto does not offer
		// them to an odd maxmem (an explicit hugetlb is QEMU's to refuse).
		choice.HugeFree = 0
	}
	b, why, err := guestmem.Choose(want, huge<<20, choice)
	if err != nil {
		if offer {
			return memoryFit{}, errorf(NoResources, "%v", err)
		}
		return memoryFit{}, errorf(NoResources, "domain %s cannot start: %v", name, err)
	}
	if b == guestmem.BackingHugeTLB {
		return memoryFit{backing: b, why: why}, nil
	}
	pool := hugeBytes(host.HugePages)
	free := saturatingSub(saturatingSub(saturatingSub(total, m.opts.MemoryReserve), pool), used)
	if need > free {
		held := ""
		if pool > 0 {
			held = fmt.Sprintf("%d MiB held as %d reserved huge pages, which only memory_backing = hugetlb domains use", pool>>20, host.HugePages)
		}
		if offer {
			msg := fmt.Sprintf("the domain needs %d MiB, %d MiB are free for domains here", memMiB, free>>20)
			if held != "" {
				msg += " (" + held + ")"
			}
			return memoryFit{}, errorf(NoResources, "%s", msg)
		}
		msg := fmt.Sprintf("not enough free memory to start %s: it needs %d MiB, %d MiB are free for domains (%d MiB total, %d MiB reserved for the host, %d MiB used by running domains",
			name, memMiB, free>>20, total>>20, m.opts.MemoryReserve>>20, used>>20)
		if held != "" {
			msg += ", " + held
		}
		return memoryFit{}, errorf(NoResources, "%s)", msg)
	}
	return memoryFit{backing: b, why: why}, nil
}
