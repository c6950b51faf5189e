package diskimage

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// qcowSeed is a minimal valid qcow2 v3 header for a size-byte disk with
// 512-byte clusters and its L1 table in the second cluster.
func qcowSeed(size uint64) []byte {
	b := make([]byte, 4096)
	copy(b, "QFI\xfb")
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint32(b[20:], 9)
	binary.BigEndian.PutUint64(b[24:], size)
	binary.BigEndian.PutUint32(b[36:], 1)
	binary.BigEndian.PutUint64(b[40:], 512)
	binary.BigEndian.PutUint32(b[96:], 4)
	binary.BigEndian.PutUint32(b[100:], 104)
	return b
}

// FuzzInspect feeds arbitrary bytes to the header parser: it must never
// panic, and an accepted image must be sane.
func FuzzInspect(f *testing.F) {
	f.Add(qcowSeed(1 << 20))
	f.Add([]byte("QFI\xfb\x00\x00\x00\x02"))
	f.Add([]byte("KDMV"))
	f.Add(make([]byte, 600))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := inspectReader("fuzz", bytes.NewReader(data), int64(len(data)), "")
		if err != nil {
			return
		}
		if info.VirtualSize < 0 || info.VirtualSize > MaxVirtualSize {
			t.Fatalf("accepted virtual size %d", info.VirtualSize)
		}
		if info.Format == FormatQCOW2 && (info.ClusterSize < 512 || info.ClusterSize > 2<<20) {
			t.Fatalf("accepted cluster size %d", info.ClusterSize)
		}
	})
}

// FuzzQCOW2Read opens arbitrary bytes as a qcow2 image and reads through
// its mapping: errors are fine, a panic or a read past its buffer is not.
func FuzzQCOW2Read(f *testing.F) {
	seed := qcowSeed(1 << 20)
	binary.BigEndian.PutUint64(seed[512:], 1024|1<<63)   // L1[0]: L2 at 1024
	binary.BigEndian.PutUint64(seed[1024:], 1536|1<<63)  // cluster 0 at 1536
	binary.BigEndian.PutUint64(seed[1032:], 1)           // cluster 1 reads as zeros
	binary.BigEndian.PutUint64(seed[1040:], 2048|1<<62)  // cluster 2 compressed
	binary.BigEndian.PutUint64(seed[1048:], 1<<40|1<<63) // past the end
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := newQcowMap("fuzz", bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			return
		}
		r := &Reader{info: Info{Path: "fuzz", Format: FormatQCOW2, VirtualSize: m.l.size}, q: m}
		buf := make([]byte, 3000)
		for _, off := range []int64{0, 511, 1000, 4096, m.l.size / 2, m.l.size - 100} {
			n, _ := r.ReadAt(buf, off)
			if n < 0 || n > len(buf) {
				t.Fatalf("ReadAt returned %d", n)
			}
		}
	})
}
