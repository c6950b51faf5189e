package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// PageSize is the guest page size and the dirty-log granularity: the page
// of guest memory (guestmem.PageSize) is the page of the workload's format.
const PageSize = guestmem.PageSize

// Guest physical memory map, shared by the KVM guest and the sim engine.
// RAM page i lives at guest physical address i*PageSize below HoleStart and
// at i*PageSize + (HoleEnd-HoleStart) above it; "page number" everywhere in
// this package (page header, dirty bitmap, checker) means the RAM page index,
// which is also the page's offset in the memfd divided by PageSize.
const (
	ParamPageAddr  = 0x1000   // parameters, written by the host before boot
	StatusPageAddr = 0x2000   // counters, written by the guest
	GDTAddr        = 0x3000   // guest GDT (null, code64, data, TSS descriptor)
	TSSAddr        = 0x4000   // 64-bit TSS (unused, but valid for VMX entry checks)
	StackBottom    = 0x8000   // guest stack, grows down from StackTop
	StackTop       = 0x10000  //
	PML4Addr       = 0x10000  // identity page tables: PML4, PDPT, then page directories
	PDPTAddr       = 0x11000  //
	PDAddr         = 0x12000  // one page directory (2 MiB pages) per GiB of guest physical space
	CodeAddr       = 0x100000 // guest code (flat binary), at most CodeMaxSize bytes
	CodeMaxSize    = 0x100000 //
	GenTableAddr   = 0x200000 // expected generation (uint64) per tracked page (hot set, touched region)
	HoleStart      = 3 << 30  // no RAM in [HoleStart, HoleEnd): room for the TSS/identity map KVM wants
	HoleEnd        = 4 << 30  //
	RAMAlign       = 2 << 20  // RAM size granularity (2 MiB guest pages)
	MaxRAM         = 64 << 30 // page directories must fit below CodeAddr
	hotAlign       = 2 << 20
)

// Layout is the concrete placement of the workload in a guest of a given
// RAM size. The pages the workload writes and verifies, the tracked pages,
// are contiguous from HotFirst: the hot set (HotPages, which the dirtying
// cycles over), then the touched region (TouchPages, filled once at
// start). Tracked page i is RAM page HotFirst+i and has entry i of the
// generation table.
type Layout struct {
	RAMSize      uint64
	RAMPages     uint64
	LowPages     uint64 // RAM pages below HoleStart
	HotFirst     uint64 // first RAM page of the hot set
	HotPages     uint64
	TouchPages   uint64 // pages of the touched region, from TouchFirst
	GenTableSize uint64 // bytes reserved at GenTableAddr (page-rounded)
}

// TouchFirst returns the first RAM page of the touched region, right after
// the hot set.
func (l Layout) TouchFirst() uint64 { return l.HotFirst + l.HotPages }

// TablePages returns the number of tracked pages (generation-table
// entries): the hot set and the touched region.
func (l Layout) TablePages() uint64 { return l.HotPages + l.TouchPages }

// MinRAM returns the smallest RAM size that can hold tablePages tracked
// pages (hot set plus touched region) with the guest's own pages and the
// generation table.
func MinRAM(tablePages uint64) uint64 {
	return GenTableAddr + roundUp(tablePages*8, hotAlign) + tablePages*PageSize
}

// MemoryLayout is the part of a layout that depends on the memory size
// alone: the RAM below the PCI hole and above it (Regions). It is all a
// machine needs to map guest memory before the workload is known.
func MemoryLayout(ramSize uint64) Layout {
	pages := ramSize / PageSize
	return Layout{RAMSize: ramSize, RAMPages: pages, LowPages: min(pages, HoleStart/PageSize)}
}

// NewLayout places the workload in ramSize bytes of RAM: the hot set of
// p.HotSize bytes (or, when 0, as many pages as fit) and the touched region
// of p.TouchSize bytes after it.
func NewLayout(ramSize uint64, p Params) (Layout, error) {
	if ramSize == 0 || ramSize%RAMAlign != 0 {
		return Layout{}, fmt.Errorf("workload layout: memory size %d is not a positive multiple of %d MiB", ramSize, RAMAlign>>20)
	}
	if ramSize > MaxRAM {
		return Layout{}, fmt.Errorf("workload layout: memory size %d MiB above the %d MiB the workload guest maps", ramSize>>20, MaxRAM>>20)
	}
	if err := p.Validate(); err != nil {
		return Layout{}, err
	}
	l := MemoryLayout(ramSize)
	touch := p.TouchSize / PageSize
	fits := func(hot uint64) bool { return MinRAM(hot+touch) <= ramSize }
	if !fits(1) {
		if touch == 0 {
			return Layout{}, fmt.Errorf("workload layout: memory size %d MiB leaves no room for a hot set (need at least %d MiB)",
				ramSize>>20, roundUp(MinRAM(1), RAMAlign)>>20)
		}
		return Layout{}, fmt.Errorf("workload layout: touch=%s leaves no room for a hot set in %d MiB of memory (needs at least %d MiB with the guest's own tables)",
			formatSize(p.TouchSize), ramSize>>20, roundUp(MinRAM(1+touch), RAMAlign)>>20)
	}
	var hot uint64
	if p.HotSize == 0 {
		// All that is left: the largest n with MinRAM(n+touch) <= ramSize.
		lo, hi := uint64(1), l.RAMPages-touch
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			if fits(mid) {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		hot = lo
	} else {
		hot = p.HotSize / PageSize
		if !fits(hot) {
			what := "hot=" + formatSize(p.HotSize)
			if touch != 0 {
				what += " plus touch=" + formatSize(p.TouchSize)
			}
			return Layout{}, fmt.Errorf("workload layout: %s does not fit in %d MiB of memory (needs %d MiB with the guest's own tables)",
				what, ramSize>>20, roundUp(MinRAM(hot+touch), RAMAlign)>>20)
		}
	}
	l.HotPages = hot
	l.TouchPages = touch
	l.GenTableSize = roundUp(l.TablePages()*8, hotAlign)
	l.HotFirst = (GenTableAddr + l.GenTableSize) / PageSize
	return l, nil
}

// PageGPA returns the guest physical address of RAM page i.
func (l Layout) PageGPA(i uint64) uint64 {
	if i < l.LowPages {
		return i * PageSize
	}
	return i*PageSize + (HoleEnd - HoleStart)
}

// GPATop returns the end of guest physical RAM (past the hole when RAM
// extends above it).
func (l Layout) GPATop() uint64 {
	if l.RAMPages <= l.LowPages {
		return l.RAMSize
	}
	return l.RAMSize + (HoleEnd - HoleStart)
}

// Region is a contiguous piece of guest RAM.
type Region struct {
	GPA    uint64 // guest physical address
	Offset uint64 // offset in RAM (memfd)
	Size   uint64
}

// Regions returns the RAM regions in guest physical order (one below the
// hole, one above when RAM is larger than HoleStart).
func (l Layout) Regions() []Region {
	low := l.LowPages * PageSize
	r := []Region{{GPA: 0, Offset: 0, Size: low}}
	if l.RAMSize > low {
		r = append(r, Region{GPA: HoleEnd, Offset: low, Size: l.RAMSize - low})
	}
	return r
}

// Page-table geometry for the identity map.
func (l Layout) PageDirectories() int { return int(roundUp(l.GPATop(), 1<<30) >> 30) }

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// Param page magic and version ("OVSWLPRM" as little-endian bytes).
const (
	ParamMagic   = 0x4d5250574c53564f
	ParamVersion = 2
	StatusMagic  = 0x5453574c4f53564f // "OVSLWST" + 'T'
)

// ParamPage is the parameter page the host writes at ParamPageAddr before
// the guest starts, as consecutive little-endian uint64 fields. The guest
// (vmm/kvmengine/src/abi.h) reads the same layout; the checker reads it back from
// memory, so memory is self-describing.
type ParamPage struct {
	Magic       uint64
	Version     uint64
	RAMPages    uint64
	LowPages    uint64
	HighGPA     uint64 // guest physical address of RAM page LowPages
	HotFirst    uint64
	HotPages    uint64
	GenTableGPA uint64
	StatusGPA   uint64
	Seed        uint64
	Pattern     uint64
	PagesPerSec uint64
	VerifyUS    uint64
	HeartbeatUS uint64
	YieldUS     uint64 // longest run between exits to the host
	MaxLagUS    uint64 // backlog dropped when the writer falls this far behind
	MinSleepUS  uint64 // shortest idle period worth a sleep request
	TSCKHz      uint64 // guest TSC frequency (KVM; 0 for the sim engine)
	SerialPort  uint64 // 16550 data port for the console (KVM)
	PortYield   uint64 // out: nothing to report, host may pause/throttle here (KVM)
	PortSleep   uint64 // out: idle for the given microseconds (KVM)
	PortFatal   uint64 // out: the guest gave up (bad parameters), code in the value (KVM)
	TouchPages  uint64 // pages filled once at start, from HotFirst+HotPages
}

// ParamPageWords is the number of uint64 fields in ParamPage.
const ParamPageWords = 23

// Engine timing defaults written into the parameter page.
const (
	DefaultYield    = time.Millisecond
	DefaultMaxLag   = 100 * time.Millisecond
	DefaultMinSleep = 100 * time.Microsecond
)

// NewParamPage fills a parameter page for layout l and params p.
func NewParamPage(l Layout, p Params) ParamPage {
	return ParamPage{
		Magic:       ParamMagic,
		Version:     ParamVersion,
		RAMPages:    l.RAMPages,
		LowPages:    l.LowPages,
		HighGPA:     HoleEnd,
		HotFirst:    l.HotFirst,
		HotPages:    l.HotPages,
		GenTableGPA: GenTableAddr,
		StatusGPA:   StatusPageAddr,
		Seed:        p.Seed,
		Pattern:     uint64(p.Pattern),
		PagesPerSec: p.PagesPerSecond(),
		VerifyUS:    uint64(p.VerifyInterval / time.Microsecond),
		HeartbeatUS: uint64(p.HeartbeatInterval / time.Microsecond),
		YieldUS:     uint64(DefaultYield / time.Microsecond),
		MaxLagUS:    uint64(DefaultMaxLag / time.Microsecond),
		MinSleepUS:  uint64(DefaultMinSleep / time.Microsecond),
		TouchPages:  l.TouchPages,
	}
}

// Encode writes the page into b (at least ParamPageWords*8 bytes).
func (pp *ParamPage) Encode(b []byte) {
	for i, v := range pp.words() {
		binary.LittleEndian.PutUint64(b[8*i:], *v)
	}
}

func (pp *ParamPage) words() []*uint64 {
	return []*uint64{&pp.Magic, &pp.Version, &pp.RAMPages, &pp.LowPages, &pp.HighGPA,
		&pp.HotFirst, &pp.HotPages, &pp.GenTableGPA, &pp.StatusGPA, &pp.Seed, &pp.Pattern,
		&pp.PagesPerSec, &pp.VerifyUS, &pp.HeartbeatUS, &pp.YieldUS, &pp.MaxLagUS,
		&pp.MinSleepUS, &pp.TSCKHz, &pp.SerialPort, &pp.PortYield, &pp.PortSleep, &pp.PortFatal, &pp.TouchPages}
}

// DecodeParamPage reads a parameter page from b (guest memory, so
// untrusted) and checks it describes a valid workload in ramSize bytes.
func DecodeParamPage(b []byte, ramSize uint64) (ParamPage, Layout, error) {
	var pp ParamPage
	if len(b) < ParamPageWords*8 {
		return pp, Layout{}, fmt.Errorf("parameter page: %d bytes, need %d", len(b), ParamPageWords*8)
	}
	for i, v := range pp.words() {
		*v = binary.LittleEndian.Uint64(b[8*i:])
	}
	if pp.Magic != ParamMagic {
		return pp, Layout{}, errors.New("parameter page: bad magic (memory does not hold a workload guest)")
	}
	if pp.Version != ParamVersion {
		return pp, Layout{}, fmt.Errorf("parameter page: version %d, want %d", pp.Version, ParamVersion)
	}
	if ramSize%PageSize != 0 || pp.RAMPages != ramSize/PageSize {
		return pp, Layout{}, fmt.Errorf("parameter page: %d RAM pages, memory holds %d bytes", pp.RAMPages, ramSize)
	}
	l := MemoryLayout(ramSize)
	l.HotFirst, l.HotPages, l.TouchPages = pp.HotFirst, pp.HotPages, pp.TouchPages
	switch {
	case pp.LowPages != l.LowPages || pp.HighGPA != HoleEnd:
		return pp, Layout{}, fmt.Errorf("parameter page: memory map (low pages %d, high at %#x) differs from this layout (%d, %#x)", pp.LowPages, pp.HighGPA, l.LowPages, uint64(HoleEnd))
	case pp.GenTableGPA != GenTableAddr || pp.StatusGPA != StatusPageAddr:
		return pp, Layout{}, fmt.Errorf("parameter page: table at %#x, status at %#x; want %#x, %#x", pp.GenTableGPA, pp.StatusGPA, GenTableAddr, StatusPageAddr)
	case pp.HotPages == 0 || pp.HotPages > pp.RAMPages || pp.TouchPages > pp.RAMPages-pp.HotPages:
		return pp, Layout{}, fmt.Errorf("parameter page: hot set of %d pages and touched region of %d pages in %d pages of RAM", pp.HotPages, pp.TouchPages, pp.RAMPages)
	case pp.HotFirst > pp.RAMPages-pp.HotPages-pp.TouchPages:
		return pp, Layout{}, fmt.Errorf("parameter page: hot set and touched region, pages %d+%d+%d, beyond RAM (%d pages)", pp.HotFirst, pp.HotPages, pp.TouchPages, pp.RAMPages)
	case pp.HotFirst*PageSize < GenTableAddr+(pp.HotPages+pp.TouchPages)*8:
		return pp, Layout{}, fmt.Errorf("parameter page: hot set at page %d overlaps the generation table", pp.HotFirst)
	case pp.Pattern != uint64(PatternRandom) && pp.Pattern != uint64(PatternSequential):
		return pp, Layout{}, fmt.Errorf("parameter page: unknown pattern %d", pp.Pattern)
	}
	l.GenTableSize = pp.HotFirst*PageSize - GenTableAddr
	return pp, l, nil
}

// Params reconstructs the workload parameters from a parameter page.
func (pp ParamPage) Params() Params {
	return Params{
		DirtyRate:         pp.PagesPerSec * PageSize,
		HotSize:           pp.HotPages * PageSize,
		TouchSize:         pp.TouchPages * PageSize,
		Pattern:           Pattern(pp.Pattern),
		VerifyInterval:    time.Duration(pp.VerifyUS) * time.Microsecond,
		HeartbeatInterval: time.Duration(pp.HeartbeatUS) * time.Microsecond,
		Seed:              pp.Seed,
	}
}

// Status page fields (uint64 each, at StatusPageAddr), written by the guest.
const (
	StatusMagicWord = iota
	StatusState
	StatusWrites
	StatusVerified
	StatusRounds
	StatusCorrupt
	StatusHeartbeats
	StatusLagResets
	StatusInFlight    // RAM page being written + 1, 0 when none
	StatusLastCorrupt // last corrupt RAM page + 1, 0 when none
	StatusTouched     // pages of the touched region filled so far
	StatusWords
)

// Guest states in StatusState.
const (
	StateBooting = 0
	StateRunning = 1
	StateFatal   = 2
)

// Stats are the workload's counters as the guest keeps them in its status
// page (the same for both engines).
type Stats struct {
	State       uint64
	Writes      uint64 // pages written (touch fill included)
	Verified    uint64 // page verifications that passed or failed
	Rounds      uint64 // completed verification rounds
	Corrupt     uint64 // pages found differing from what was written
	Heartbeats  uint64
	LagResets   uint64 // times the writer dropped a backlog (throttled or slow)
	InFlight    uint64 // page being written + 1 (0 at a consistent point)
	LastCorrupt uint64
	Touched     uint64 // pages of the touched region filled so far (Layout.TouchPages when done)
}

// ReadStats reads the workload counters from the status page in ram.
func ReadStats(ram *guestmem.RAM) Stats {
	w := func(i int) uint64 { return ram.Uint64(StatusPageAddr + 8*uint64(i)) }
	return Stats{
		State: w(StatusState), Writes: w(StatusWrites), Verified: w(StatusVerified),
		Rounds: w(StatusRounds), Corrupt: w(StatusCorrupt), Heartbeats: w(StatusHeartbeats),
		LagResets: w(StatusLagResets), InFlight: w(StatusInFlight), LastCorrupt: w(StatusLastCorrupt),
		Touched: w(StatusTouched),
	}
}
