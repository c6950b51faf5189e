package workload

import (
	"encoding/binary"
	"fmt"
)

// GenTable reads the guest's expected-generation table.
func GenTable(mem Memory, l Layout) ([]uint64, error) {
	b := make([]byte, l.HotPages*8)
	if _, err := mem.ReadAt(b, GenTableAddr); err != nil {
		return nil, fmt.Errorf("read generation table: %w", err)
	}
	out := make([]uint64, l.HotPages)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// CheckDirtyLog explains a dirty log taken over a period in which the
// workload's generation table went from before to after: every hot-set
// page whose generation changed must be in the log (no lost write), every
// hot-set page in the log must have changed (no phantom write), and every
// other page in the log must be one the guest writes for itself: the status
// page, the generation table, the stack, or (A/D bits) the page tables.
func CheckDirtyLog(l Layout, before, after []uint64, dirty []uint64) error {
	if len(before) != int(l.HotPages) || len(after) != int(l.HotPages) {
		return fmt.Errorf("generation tables of %d and %d entries for %d hot pages", len(before), len(after), l.HotPages)
	}
	isDirty := func(p uint64) bool { return p/64 < uint64(len(dirty)) && dirty[p/64]&(1<<(p%64)) != 0 }
	var lost, phantom []uint64
	changedTable := map[uint64]bool{}
	for i := uint64(0); i < l.HotPages; i++ {
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
		return fmt.Errorf("dirty log reports %d unwritten hot page(s), first %v", len(phantom), phantom[:min(8, len(phantom))])
	}
	for p := range changedTable {
		if !isDirty(p) {
			return fmt.Errorf("generation table page %d changed but is not in the dirty log", p)
		}
	}
	ptEnd := uint64(PDAddr) + uint64(l.PageDirectories())*PageSize
	for _, p := range BitPages(dirty) {
		a := p * PageSize
		switch {
		case p >= l.HotFirst && p < l.HotFirst+l.HotPages:
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
