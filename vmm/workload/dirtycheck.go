package workload

import (
	"encoding/binary"
	"fmt"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// GenTable reads the guest's expected-generation table: one entry per
// tracked page, the hot set then the touched region (Layout.TablePages).
func GenTable(mem Memory, l Layout) ([]uint64, error) {
	b := make([]byte, l.TablePages()*8)
	if _, err := mem.ReadAt(b, GenTableAddr); err != nil {
		return nil, fmt.Errorf("read generation table: %w", err)
	}
	out := make([]uint64, l.TablePages())
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// CheckNoLostWrites is the first half of CheckDirtyLog: every tracked
// page whose generation changed from before to after is in the dirty log
// (a log that names more is not checked here).
func CheckNoLostWrites(l Layout, before, after []uint64, dirty []uint64) error {
	isDirty := func(p uint64) bool { return p/64 < uint64(len(dirty)) && dirty[p/64]&(1<<(p%64)) != 0 }
	var lost []uint64
	for i := uint64(0); i < l.TablePages() && i < uint64(len(before)) && i < uint64(len(after)); i++ {
		if before[i] != after[i] && !isDirty(l.HotFirst+i) {
			lost = append(lost, l.HotFirst+i)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("dirty log misses %d written page(s), first %v", len(lost), lost[:min(8, len(lost))])
	}
	return nil
}

// CheckDirtyLog explains a dirty log taken over a period in which the
// workload's generation table went from before to after: every tracked
// page (hot set or touched region) whose generation changed must be in the
// log (no lost write), every tracked page in the log must have changed (no
// phantom write), and every
// other page in the log must be one the guest writes for itself: the status
// page, the generation table, the stack, or (A/D bits) the page tables.
func CheckDirtyLog(l Layout, before, after []uint64, dirty []uint64) error {
	tracked := l.TablePages()
	if uint64(len(before)) != tracked || uint64(len(after)) != tracked {
		return fmt.Errorf("generation tables of %d and %d entries for %d tracked pages", len(before), len(after), tracked)
	}
	isDirty := func(p uint64) bool { return p/64 < uint64(len(dirty)) && dirty[p/64]&(1<<(p%64)) != 0 }
	var lost, phantom []uint64
	changedTable := map[uint64]bool{}
	for i := uint64(0); i < tracked; i++ {
		pg := l.HotFirst + i
		changed := before[i] != after[i]
		if changed {
			changedTable[(GenTableAddr+8*i)/PageSize] = true
		}
		switch {
		case changed && !isDirty(pg):
			lost = append(lost, pg)
		case !changed && isDirty(pg):
			phantom = append(phantom, pg)
		}
	}
	if len(lost) > 0 {
		return fmt.Errorf("dirty log misses %d written page(s), first %v", len(lost), lost[:min(8, len(lost))])
	}
	if len(phantom) > 0 {
		return fmt.Errorf("dirty log reports %d unwritten tracked page(s), first %v", len(phantom), phantom[:min(8, len(phantom))])
	}
	for p := range changedTable {
		if !isDirty(p) {
			return fmt.Errorf("generation table page %d changed but is not in the dirty log", p)
		}
	}
	ptEnd := uint64(PDAddr) + uint64(l.PageDirectories())*PageSize
	for _, p := range guestmem.BitPages(dirty) {
		a := p * PageSize
		switch {
		case p >= l.HotFirst && p < l.HotFirst+tracked:
		case a == StatusPageAddr:
		case a >= GenTableAddr && a < GenTableAddr+l.GenTableSize:
		case a >= StackBottom && a < StackTop:
		case a >= PML4Addr && a < ptEnd:
		default:
			return fmt.Errorf("dirty log reports page %d (%#x), which the workload never writes", p, a)
		}
	}
	return nil
}
