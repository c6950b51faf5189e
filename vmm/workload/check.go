package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/ovs-agent/ovs-agent/vmm/guestmem"
)

// Memory is guest RAM as the checker reads it.
type Memory interface {
	io.ReaderAt
	Size() uint64
}

// Sparse is implemented by memories that can say which ranges hold data
// (RAM does, with SEEK_DATA); the checker then skips holes without reading.
type Sparse interface {
	DataRanges() ([]guestmem.Range, error)
}

// BytesMemory adapts a byte slice (a copy of guest RAM) to Memory.
type BytesMemory []byte

// ReadAt implements io.ReaderAt.
func (b BytesMemory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, fmt.Errorf("read at %d outside %d bytes", off, len(b))
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size implements Memory.
func (b BytesMemory) Size() uint64 { return uint64(len(b)) }

// MaxMismatches is how many mismatches a Report lists (all are counted).
const MaxMismatches = 64

// Report is the result of Check.
type Report struct {
	Params    ParamPage
	Layout    Layout
	Written   uint64 // written pages (hot set and touched region) whose content matched their generation
	Unwritten uint64 // never-written tracked pages, zero as they must be
	Holes     uint64 // of Unwritten, pages that were holes (not read at all)
	InFlight  uint64 // page that was being written (+1) and was skipped; 0 when none
	Corrupt   uint64
	// Mismatches lists the first MaxMismatches corrupt pages.
	Mismatches []Mismatch
}

// Err returns an error naming the first corrupt pages, or nil.
func (r *Report) Err() error {
	if r.Corrupt == 0 {
		return nil
	}
	msg := fmt.Sprintf("%d corrupt page(s)", r.Corrupt)
	for i, m := range r.Mismatches {
		if i == 4 {
			msg += "; ..."
			break
		}
		msg += "; " + m.String()
	}
	return errors.New(msg)
}

// Check validates guest memory written by either engine. The layout and
// parameters come from the parameter page in memory; the expected
// generation of every tracked page (hot set and touched region) comes from
// the guest's own table; every
// written page is compared in full and every never-written page must be
// zero. A page the status page marks in flight (the guest was stopped in
// the middle of writing it, which a Pause at a consistent point never does)
// is skipped. Check must run while the guest is paused or stopped.
func Check(mem Memory) (*Report, error) {
	rep, table, err := readHeader(mem)
	if err != nil {
		return nil, err
	}
	holes, err := newHoleFinder(mem)
	if err != nil {
		return nil, err
	}
	l, tracked := rep.Layout, rep.Layout.TablePages()
	const chunk = 256
	buf := make([]byte, chunk*PageSize)
	for first := uint64(0); first < tracked; first += chunk {
		n := min(chunk, tracked-first)
		off := (l.HotFirst + first) * PageSize
		gens := table[8*first : 8*(first+n)]
		if allZero(gens) && !holes.hasData(off, n*PageSize) {
			rep.Unwritten += n
			rep.Holes += n
			continue
		}
		if _, err := mem.ReadAt(buf[:n*PageSize], int64(off)); err != nil {
			return nil, fmt.Errorf("check: read pages %d+%d: %w", l.HotFirst+first, n, err)
		}
		rep.checkPages(buf, l.HotFirst+first, gens)
	}
	return rep, nil
}

// readHeader reads the parameter page, the status page's in-flight page
// and the generation table: a Report with nothing counted yet, and the
// table.
func readHeader(mem Memory) (*Report, []byte, error) {
	size := mem.Size()
	if size < StatusPageAddr+PageSize {
		return nil, nil, fmt.Errorf("check: memory of %d bytes is too small for a workload guest", size)
	}
	page := make([]byte, PageSize)
	if _, err := mem.ReadAt(page, ParamPageAddr); err != nil {
		return nil, nil, fmt.Errorf("check: read parameter page: %w", err)
	}
	pp, l, err := DecodeParamPage(page, size)
	if err != nil {
		return nil, nil, fmt.Errorf("check: %w", err)
	}
	rep := &Report{Params: pp, Layout: l}
	if _, err := mem.ReadAt(page, StatusPageAddr); err != nil {
		return nil, nil, fmt.Errorf("check: read status page: %w", err)
	}
	inflight := binary.LittleEndian.Uint64(page[8*StatusInFlight:])
	tracked := l.TablePages()
	if inflight != 0 && (inflight-1 < l.HotFirst || inflight-1 >= l.HotFirst+tracked) {
		return nil, nil, fmt.Errorf("check: status page says page %d is in flight, outside the hot set and touched region", inflight-1)
	}
	rep.InFlight = inflight
	table := make([]byte, tracked*8)
	if _, err := mem.ReadAt(table, GenTableAddr); err != nil {
		return nil, nil, fmt.Errorf("check: read generation table: %w", err)
	}
	return rep, table, nil
}

// checkPages checks the pages in buf, the first of them RAM page first,
// against their generations gens (8 bytes each), skipping the one in
// flight.
func (rep *Report) checkPages(buf []byte, first uint64, gens []byte) {
	for i := uint64(0); i < uint64(len(gens)/8); i++ {
		pg := first + i
		gen := binary.LittleEndian.Uint64(gens[8*i:])
		if pg+1 == rep.InFlight {
			continue
		}
		m, ok := CheckPage(buf[i*PageSize:(i+1)*PageSize], rep.Params.Seed, pg, gen)
		switch {
		case !ok:
			rep.Corrupt++
			if len(rep.Mismatches) < MaxMismatches {
				rep.Mismatches = append(rep.Mismatches, m)
			}
		case gen == 0:
			rep.Unwritten++
		default:
			rep.Written++
		}
	}
}

// allZero says whether every generation in gens is 0 (never written).
func allZero(gens []byte) bool {
	for i := 0; i+8 <= len(gens); i += 8 {
		if binary.LittleEndian.Uint64(gens[i:]) != 0 {
			return false
		}
	}
	return true
}

// holeFinder tells which ranges of a Sparse memory hold no data, asked in
// increasing order; every range may hold data in a memory that is not
// Sparse.
type holeFinder struct {
	sparse bool
	data   []guestmem.Range
	ri     int
}

func newHoleFinder(mem Memory) (*holeFinder, error) {
	sparse, ok := mem.(Sparse)
	if !ok {
		return &holeFinder{}, nil
	}
	data, err := sparse.DataRanges()
	if err != nil {
		return nil, fmt.Errorf("check: %w", err)
	}
	sort.Slice(data, func(i, j int) bool { return data[i].Off < data[j].Off })
	return &holeFinder{sparse: true, data: data}, nil
}

// hasData reports whether any byte of [off, off+n) may hold data.
func (h *holeFinder) hasData(off, n uint64) bool {
	if !h.sparse {
		return true
	}
	for h.ri < len(h.data) && h.data[h.ri].Off+h.data[h.ri].Len <= off {
		h.ri++
	}
	return h.ri < len(h.data) && h.data[h.ri].Off < off+n
}
