package bootloader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// ext superblock feature bits (fs/ext4/ext4.h).
const (
	compatSparseSuper2 = 0x200

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64Bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargeDir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	// What this reader reads; inline data and encryption are refused per
	// inode (a filesystem may have the feature and no such file on the
	// boot path).
	incompatKnown = incompatFiletype | incompatRecover | incompatMetaBG | incompatExtents | incompat64Bit |
		incompatMMP | incompatFlexBG | incompatEAInode | incompatCsumSeed | incompatLargeDir |
		incompatInlineData | incompatEncrypt | incompatCasefold

	rocompatSparseSuper  = 0x1
	rocompatMetadataCsum = 0x400

	flagEncrypt    = 0x800
	flagCompressed = 0x4
	flagExtents    = 0x80000
	flagInlineData = 0x10000000

	modeType    = 0xF000
	modeDir     = 0x4000
	modeRegular = 0x8000
	modeSymlink = 0xA000

	rootInode = 2

	maxExtentDepth = 5        // the kernel's limit
	maxDirBytes    = 16 << 20 // a directory larger than this is not a boot directory
	maxSymlinkHops = 40       // Linux's MAXSYMLINKS
	maxPathSteps   = 4096     // components looked up for one path, symlinks included
	maxSymlinkLen  = 4095     // PATH_MAX - 1
	maxRuns        = 1 << 20  // extents (or block runs) of one file
)

// extFS is an ext2/ext3/ext4 filesystem, read-only.
type extFS struct {
	dev         *device
	bs          int64 // block size
	blocks      uint64
	firstData   uint64
	bpg         uint64 // blocks per group
	ipg         uint64 // inodes per group
	inodes      uint64
	groups      uint64
	inodeSize   int64
	descSize    int64
	incompat    uint32
	rocompat    uint32
	compat      uint32
	firstMetaBG uint64
	backupBGs   [2]uint64
}

var errNotExt = errors.New("no ext2/ext3/ext4 superblock (magic EF53)")

// openExt reads and checks the superblock of the filesystem on dev.
func openExt(dev *device) (*extFS, error) {
	sb, err := dev.read(1024, 1024)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xEF53 {
		return nil, errNotExt
	}
	fs := &extFS{dev: dev, compat: le.Uint32(sb[0x5C:]), incompat: le.Uint32(sb[0x60:]), rocompat: le.Uint32(sb[0x64:])}
	if fs.rocompat&rocompatMetadataCsum != 0 {
		if sb[0x175] != 1 {
			return nil, fmt.Errorf("ext superblock: checksum type %d is not crc32c", sb[0x175])
		}
		if got, want := ^crc32.Checksum(sb[:0x3FC], crc32.MakeTable(crc32.Castagnoli)), le.Uint32(sb[0x3FC:]); got != want {
			return nil, fmt.Errorf("ext superblock checksum is %08x, the superblock says %08x: it is corrupt", got, want)
		}
	}
	if bad := fs.incompat &^ incompatKnown; bad != 0 {
		return nil, fmt.Errorf("ext filesystem has features this reader does not handle: %s", incompatNames(bad))
	}
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 {
		return nil, fmt.Errorf("ext superblock: block size 2^(10+%d) is not 1-64 KiB: it is corrupt", logBS)
	}
	fs.bs = 1024 << logBS
	fs.blocks = uint64(le.Uint32(sb[0x4:]))
	fs.firstData = uint64(le.Uint32(sb[0x14:]))
	fs.bpg = uint64(le.Uint32(sb[0x20:]))
	fs.ipg = uint64(le.Uint32(sb[0x28:]))
	fs.inodes = uint64(le.Uint32(sb[0x0:]))
	fs.inodeSize, fs.descSize = 128, 32
	if le.Uint32(sb[0x4C:]) > 0 { // dynamic revision
		fs.inodeSize = int64(le.Uint16(sb[0x58:]))
	}
	if fs.incompat&incompat64Bit != 0 {
		fs.blocks |= uint64(le.Uint32(sb[0x150:])) << 32
		fs.descSize = int64(le.Uint16(sb[0xFE:]))
	}
	fs.firstMetaBG = uint64(le.Uint32(sb[0x104:]))
	fs.backupBGs = [2]uint64{uint64(le.Uint32(sb[0x24C:])), uint64(le.Uint32(sb[0x250:]))}
	return fs, fs.checkGeometry()
}

func (fs *extFS) checkGeometry() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("ext superblock: "+format+": it is corrupt", a...)
	}
	switch {
	case fs.blocks == 0 || fs.blocks > uint64(fs.dev.size/fs.bs):
		return bad("%d blocks of %d bytes do not fit in %s (%d bytes)", fs.blocks, fs.bs, fs.dev.what, fs.dev.size)
	case fs.firstData >= fs.blocks || fs.firstData > 1 || (fs.bs > 1024 && fs.firstData != 0):
		return bad("first data block %d with %d-byte blocks", fs.firstData, fs.bs)
	case fs.bpg == 0 || fs.bpg > 8*uint64(fs.bs):
		return bad("%d blocks per group", fs.bpg)
	case fs.ipg == 0 || fs.ipg > 8*uint64(fs.bs):
		return bad("%d inodes per group", fs.ipg)
	case fs.inodeSize < 128 || fs.inodeSize > fs.bs || fs.inodeSize&(fs.inodeSize-1) != 0:
		return bad("inode size %d", fs.inodeSize)
	case fs.descSize < 32 || fs.descSize > 1024 || fs.descSize > fs.bs || fs.descSize&(fs.descSize-1) != 0 ||
		(fs.incompat&incompat64Bit != 0 && fs.descSize < 64):
		return bad("group descriptor size %d", fs.descSize)
	}
	fs.groups = (fs.blocks - fs.firstData + fs.bpg - 1) / fs.bpg
	if fs.inodes > fs.groups*fs.ipg || fs.inodes < rootInode {
		return bad("%d inodes in %d groups of %d", fs.inodes, fs.groups, fs.ipg)
	}
	return nil
}

func incompatNames(bits uint32) string {
	names := map[uint32]string{incompatCompression: "compression", incompatJournalDev: "journal_dev",
		incompatDirData: "dirdata"}
	var out []string
	for b := uint32(1); b != 0; b <<= 1 {
		if bits&b == 0 {
			continue
		}
		if n, ok := names[b]; ok {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("0x%x", b))
		}
	}
	return strings.Join(out, ", ")
}

// hasSuper says whether group g holds a superblock backup (and so its
// meta_bg descriptor block comes after it).
func (fs *extFS) hasSuper(g uint64) bool {
	switch {
	case g == 0:
		return true
	case fs.compat&compatSparseSuper2 != 0:
		return g == fs.backupBGs[0] || g == fs.backupBGs[1]
	case fs.rocompat&rocompatSparseSuper == 0 || g == 1:
		return true
	}
	for _, p := range []uint64{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

// inodeTable returns the first block of group g's inode table.
func (fs *extFS) inodeTable(g uint64) (uint64, error) {
	perBlock := uint64(fs.bs / fs.descSize)
	sbBlock := uint64(1024 / fs.bs) // the block holding the superblock: 1 with 1 KiB blocks, else 0
	blk := sbBlock + 1 + g/perBlock
	if fs.incompat&incompatMetaBG != 0 && g/perBlock >= fs.firstMetaBG {
		first := g / perBlock * perBlock
		blk = fs.firstData + first*fs.bpg
		if fs.hasSuper(first) {
			blk++
		}
		if first == 0 && fs.bs == 1024 && fs.firstData == 0 {
			blk++
		}
	}
	if blk >= fs.blocks {
		return 0, fmt.Errorf("group descriptor of group %d would be at block %d, past the filesystem's end", g, blk)
	}
	d, err := fs.dev.read(int64(blk)*fs.bs+int64(g%perBlock)*fs.descSize, int(fs.descSize))
	if err != nil {
		return 0, fmt.Errorf("group descriptor %d: %w", g, err)
	}
	table := uint64(binary.LittleEndian.Uint32(d[0x8:]))
	if fs.descSize >= 64 {
		table |= uint64(binary.LittleEndian.Uint32(d[0x28:])) << 32
	}
	if tblocks := (fs.ipg*uint64(fs.inodeSize) + uint64(fs.bs) - 1) / uint64(fs.bs); table == 0 || table > fs.blocks-tblocks {
		return 0, fmt.Errorf("group %d's inode table at block %d is outside the filesystem (%d blocks): it is corrupt", g, table, fs.blocks)
	}
	return table, nil
}

// inode is what the reader needs of one inode.
type inode struct {
	num     uint64
	mode    uint16
	flags   uint32
	size    uint64
	blocks  uint64 // 512-byte units (i_blocks; huge_file ignored: only symlinks use it)
	fileACL uint64
	block   [60]byte
}

func (in *inode) typ() uint16 { return in.mode & modeType }

func (fs *extFS) inode(num uint64) (*inode, error) {
	if num < 1 || num > fs.inodes {
		return nil, fmt.Errorf("inode %d is outside 1..%d: the filesystem is corrupt", num, fs.inodes)
	}
	g, idx := (num-1)/fs.ipg, (num-1)%fs.ipg
	table, err := fs.inodeTable(g)
	if err != nil {
		return nil, err
	}
	b, err := fs.dev.read(int64(table)*fs.bs+int64(idx)*fs.inodeSize, 128)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", num, err)
	}
	le := binary.LittleEndian
	in := &inode{num: num, mode: le.Uint16(b[0:]), flags: le.Uint32(b[0x20:]),
		size:    uint64(le.Uint32(b[0x4:])) | uint64(le.Uint32(b[0x6C:]))<<32,
		blocks:  uint64(le.Uint32(b[0x1C:])) | uint64(le.Uint16(b[0x74:]))<<32,
		fileACL: uint64(le.Uint32(b[0x68:])) | uint64(le.Uint16(b[0x76:]))<<32}
	copy(in.block[:], b[0x28:0x64])
	return in, nil
}

// checkReadable refuses inodes whose data this reader cannot read.
func (fs *extFS) checkReadable(in *inode) error {
	switch {
	case in.flags&flagEncrypt != 0:
		return fmt.Errorf("inode %d is encrypted (fscrypt), which this reader does not read", in.num)
	case in.flags&flagInlineData != 0:
		return fmt.Errorf("inode %d keeps its data inline (inline_data), which this reader does not read", in.num)
	case in.flags&flagCompressed != 0:
		return fmt.Errorf("inode %d is compressed, which this reader does not read", in.num)
	}
	return nil
}
