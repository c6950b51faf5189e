package filexfer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Geometry of the stream: checksums and resume points are per block,
// holes are found per page.
const (
	BlockSize     = 1 << 20
	PageSize      = 4096
	PagesPerBlock = BlockSize / PageSize
)

// DigestPrefix starts the text form of a content digest.
const DigestPrefix = "sha256-blocks:"

// digestDomain separates this digest from any other use of SHA-256.
const digestDomain = "ovs-agent filexfer digest v1\n"

// A digester builds a file's content digest: SHA-256 over the file size
// and, for each 1 MiB block that is not all zeros, its index and its
// SHA-256. All-zero blocks count the same whether they are holes or written
// zeros, so the digest depends on the content only, not on how the file
// system stores it; a sparse copy has the digest of its original.
type digester struct {
	h hash.Hash
}

func newDigester(size int64) *digester {
	d := &digester{h: sha256.New()}
	d.h.Write([]byte(digestDomain))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(size))
	d.h.Write(b[:])
	return d
}

func (d *digester) block(index uint64, sum [32]byte) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], index)
	d.h.Write(b[:])
	d.h.Write(sum[:])
}

func (d *digester) sum() [32]byte {
	var out [32]byte
	copy(out[:], d.h.Sum(nil))
	return out
}

// FormatDigest is the text form of a digest.
func FormatDigest(sum [32]byte) string { return DigestPrefix + hex.EncodeToString(sum[:]) }

// isZero reports whether b is all zeros.
func isZero(b []byte) bool {
	for len(b) >= 64 {
		v := binary.LittleEndian.Uint64(b) | binary.LittleEndian.Uint64(b[8:]) |
			binary.LittleEndian.Uint64(b[16:]) | binary.LittleEndian.Uint64(b[24:]) |
			binary.LittleEndian.Uint64(b[32:]) | binary.LittleEndian.Uint64(b[40:]) |
			binary.LittleEndian.Uint64(b[48:]) | binary.LittleEndian.Uint64(b[56:])
		if v != 0 {
			return false
		}
		b = b[64:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// blockLen is the length of block b of a file of size bytes.
func blockLen(size int64, b uint64) int {
	off := int64(b) * BlockSize
	return int(min(BlockSize, size-off))
}

// numBlocks is how many blocks a file of size bytes has.
func numBlocks(size int64) uint64 { return uint64((size + BlockSize - 1) / BlockSize) }

// extents walks the data of f (size bytes) from block first on, calling fn
// for each block that overlaps a data extent (a file system without
// SEEK_DATA reports everything as data). Blocks wholly inside holes are
// never read. covered, when not nil, grows by the data bytes walked, so
// that it reaches DataBytes at the end.
func extents(ctx context.Context, f *os.File, size int64, first uint64, covered *int64, fn func(b uint64) error) error {
	fd := int(f.Fd())
	off := int64(first) * BlockSize
	next := first // blocks below next are done
	var dummy int64
	if covered == nil {
		covered = &dummy
	}
	for off < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil
		}
		if err != nil {
			data = off
		}
		end, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		if done := int64(next) * BlockSize; data < done {
			*covered += min(end, done) - data
		}
		for b := max(next, uint64(data/BlockSize)); int64(b)*BlockSize < end; b++ {
			lo, hi := max(data, int64(b)*BlockSize), min(end, int64(b+1)*BlockSize)
			if err := fn(b); err != nil {
				return err
			}
			*covered += hi - lo
			next = b + 1
		}
		off = max(end, int64(next)*BlockSize)
	}
	return nil
}

// DataBytes is how many bytes of f lie outside holes (what a copy may have
// to send at most).
func DataBytes(f *os.File, size int64) (int64, error) {
	fd := int(f.Fd())
	var n, off int64
	for off < size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return size - off + n, nil
		}
		end, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		n += end - data
		off = end
	}
	return n, nil
}

// blockReader reads blocks of one file and reports which pages hold data.
type blockReader struct {
	f    *os.File
	size int64
	buf  []byte
}

func newBlockReader(f *os.File, size int64) *blockReader {
	return &blockReader{f: f, size: size, buf: make([]byte, BlockSize)}
}

// read fills the block's buffer and bitmap; zero reports an all-zero block.
func (r *blockReader) read(b uint64, bitmap *[PagesPerBlock / 8]byte) (data []byte, zero bool, err error) {
	n := blockLen(r.size, b)
	data = r.buf[:n]
	if _, err := r.f.ReadAt(data, int64(b)*BlockSize); err != nil {
		if err == io.EOF {
			return nil, false, fmt.Errorf("%s shrank while being read (block %d)", r.f.Name(), b)
		}
		return nil, false, err
	}
	*bitmap = [PagesPerBlock / 8]byte{}
	zero = true
	for p := 0; p*PageSize < n; p++ {
		if !isZero(data[p*PageSize : min((p+1)*PageSize, n)]) {
			bitmap[p/8] |= 1 << (p % 8)
			zero = false
		}
	}
	return data, zero, nil
}

// Digest computes the content digest of the file at path, reading only its
// data extents. A manifest records it; Send and Receive compute the same
// value for every file they move.
func Digest(ctx context.Context, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	size := st.Size()
	d := newDigester(size)
	r := newBlockReader(f, size)
	var bm [PagesPerBlock / 8]byte
	err = extents(ctx, f, size, 0, nil, func(b uint64) error {
		data, zero, err := r.read(b, &bm)
		if err != nil {
			return err
		}
		if !zero {
			d.block(b, sha256.Sum256(data))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", path, err)
	}
	return FormatDigest(d.sum()), nil
}
