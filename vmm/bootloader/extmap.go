package bootloader

import (
	"encoding/binary"
	"fmt"
)

// run maps n logical blocks of a file from logical to physical block phys;
// zero runs (unwritten extents) read as zeros, as do blocks no run covers
// (holes).
type run struct {
	logical, phys, n uint64
	zero             bool
}

// runs maps the blocks of in's first size bytes.
func (fs *extFS) runs(in *inode) ([]run, error) {
	nblocks := (in.size + uint64(fs.bs) - 1) / uint64(fs.bs)
	if in.flags&flagExtents != 0 {
		m := extentMapper{fs: fs, in: in, nblocks: nblocks}
		if err := m.node(in.block[:], maxExtentDepth+1, true); err != nil {
			return nil, fmt.Errorf("inode %d's extent tree: %w", in.num, err)
		}
		return m.out, nil
	}
	m := indirectMapper{fs: fs, nblocks: nblocks, perBlock: uint64(fs.bs / 4)}
	if err := m.all(in.block[:]); err != nil {
		return nil, fmt.Errorf("inode %d's block map: %w", in.num, err)
	}
	return m.out, nil
}

type extentMapper struct {
	fs      *extFS
	in      *inode
	nblocks uint64
	out     []run
	next    uint64 // the first logical block a following extent may map
}

// node reads one extent tree node; parentDepth bounds its depth (each level
// must be exactly one less than its parent's).
func (m *extentMapper) node(b []byte, parentDepth uint16, root bool) error {
	le := binary.LittleEndian
	if le.Uint16(b) != 0xF30A {
		return fmt.Errorf("node without the extent magic F30A")
	}
	entries, max, depth := le.Uint16(b[2:]), le.Uint16(b[4:]), le.Uint16(b[6:])
	switch {
	case depth > maxExtentDepth:
		return fmt.Errorf("depth %d is over the limit of %d", depth, maxExtentDepth)
	case !root && depth != parentDepth-1:
		return fmt.Errorf("node of depth %d under a node of depth %d", depth, parentDepth)
	case entries > max || 12+12*int(max) > len(b):
		return fmt.Errorf("node with %d of %d entries does not fit in %d bytes", entries, max, len(b))
	}
	for i := 0; i < int(entries); i++ {
		e := b[12+12*i : 24+12*i]
		if depth == 0 {
			if err := m.leaf(e); err != nil {
				return err
			}
			continue
		}
		if uint64(le.Uint32(e)) >= m.nblocks {
			break // the rest lies past the file's size
		}
		child := uint64(le.Uint32(e[4:])) | uint64(le.Uint16(e[8:]))<<32
		if child >= m.fs.blocks {
			return fmt.Errorf("index to block %d, past the filesystem's end", child)
		}
		cb, err := m.fs.dev.read(int64(child)*m.fs.bs, int(m.fs.bs))
		if err != nil {
			return err
		}
		if err := m.node(cb, depth, false); err != nil {
			return err
		}
	}
	return nil
}

func (m *extentMapper) leaf(e []byte) error {
	le := binary.LittleEndian
	logical, n := uint64(le.Uint32(e)), uint64(le.Uint16(e[4:]))
	zero := n > 32768
	if zero {
		n -= 32768
	}
	phys := uint64(le.Uint32(e[8:])) | uint64(le.Uint16(e[6:]))<<32
	switch {
	case logical < m.next:
		return fmt.Errorf("extent at block %d overlaps or precedes the one before", logical)
	case n == 0 || phys+n > m.fs.blocks || phys+n < phys:
		return fmt.Errorf("extent of %d blocks at block %d is outside the filesystem", n, phys)
	case len(m.out) == maxRuns:
		return fmt.Errorf("more than %d extents", maxRuns)
	}
	m.next = logical + n
	if logical < m.nblocks {
		m.out = append(m.out, run{logical: logical, phys: phys, n: min(n, m.nblocks-logical), zero: zero})
	}
	return nil
}

type indirectMapper struct {
	fs       *extFS
	nblocks  uint64
	perBlock uint64
	out      []run
}

// all maps the twelve direct blocks, then the single, double and triple
// indirect trees.
func (m *indirectMapper) all(iblock []byte) error {
	le := binary.LittleEndian
	for i := uint64(0); i < 12 && i < m.nblocks; i++ {
		if err := m.add(i, uint64(le.Uint32(iblock[4*i:]))); err != nil {
			return err
		}
	}
	start, span := uint64(12), m.perBlock
	for level := 1; level <= 3 && start < m.nblocks; level++ {
		if err := m.walk(level, uint64(le.Uint32(iblock[4*(11+level):])), start); err != nil {
			return err
		}
		start += span
		span *= m.perBlock
	}
	return nil
}

func (m *indirectMapper) walk(level int, blk, start uint64) error {
	if blk == 0 {
		return nil // a hole
	}
	if blk >= m.fs.blocks {
		return fmt.Errorf("indirect block %d is past the filesystem's end", blk)
	}
	b, err := m.fs.dev.read(int64(blk)*m.fs.bs, int(m.fs.bs))
	if err != nil {
		return err
	}
	span := uint64(1)
	for l := 1; l < level; l++ {
		span *= m.perBlock
	}
	for i := uint64(0); i < m.perBlock && start+i*span < m.nblocks; i++ {
		ptr := uint64(binary.LittleEndian.Uint32(b[4*i:]))
		if level == 1 {
			err = m.add(start+i, ptr)
		} else {
			err = m.walk(level-1, ptr, start+i*span)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *indirectMapper) add(logical, phys uint64) error {
	if phys == 0 {
		return nil
	}
	if phys >= m.fs.blocks {
		return fmt.Errorf("block %d is past the filesystem's end", phys)
	}
	if k := len(m.out); k > 0 && m.out[k-1].logical+m.out[k-1].n == logical && m.out[k-1].phys+m.out[k-1].n == phys {
		m.out[k-1].n++
		return nil
	}
	if len(m.out) == maxRuns {
		return fmt.Errorf("more than %d block runs", maxRuns)
	}
	m.out = append(m.out, run{logical: logical, phys: phys, n: 1})
	return nil
}
