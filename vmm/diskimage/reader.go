package diskimage

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Reader reads the bytes the guest sees of an image: an io.ReaderAt that
// is safe for concurrent use.
type Reader struct {
	info  Info
	files []*os.File
	raw   io.ReaderAt // raw: the file
	q     *qcowMap    // qcow2: the mapping
}

// Open inspects path (a backing file refused) and opens it for reading.
func Open(path string) (*Reader, error) { return OpenWith(path, Options{}) }

// OpenWith inspects path with the options given and opens it, the backing
// chain too when allowed.
func OpenWith(path string, o Options) (*Reader, error) {
	info, err := InspectWith(path, o)
	if err != nil {
		return nil, err
	}
	r := &Reader{}
	if err := r.open(info); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Reader) open(info Info) error {
	f, err := os.Open(info.Path)
	if err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	r.files = append(r.files, f)
	r.info = info
	size, _, err := fileSize(f)
	if err != nil {
		return fmt.Errorf("disk image %s: %w", info.Path, err)
	}
	if info.Format == FormatRaw {
		r.raw = f
		r.info.VirtualSize, r.info.FileSize = size, size
		return nil
	}
	var backing *Reader
	if info.Backing != nil {
		backing = &Reader{}
		err := backing.open(*info.Backing)
		r.files = append(r.files, backing.files...)
		if err != nil {
			return err
		}
	}
	r.q, err = newQcowMap(info.Path, f, size, backing)
	if err != nil {
		return err
	}
	r.info.VirtualSize, r.info.FileSize = r.q.l.size, size
	return nil
}

// Info is what Inspect found.
func (r *Reader) Info() Info { return r.info }

// Size is the number of bytes the guest sees.
func (r *Reader) Size() int64 { return r.info.VirtualSize }

// Close closes the image and its backing chain.
func (r *Reader) Close() error {
	var first error
	for _, f := range r.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	r.files = nil
	return first
}

// ReadAt reads len(p) guest bytes at off; short at the end with io.EOF.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk image %s: negative offset %d", r.info.Path, off)
	}
	size := r.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		p = p[:size-off]
	}
	var n int
	var err error
	if r.q != nil {
		n, err = r.q.readAt(p, off)
	} else {
		n, err = r.raw.ReadAt(p, off)
	}
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// qcow2 L1/L2 entry bits.
const (
	entryOffsetMask = 0x00fffffffffffe00
	entryCompressed = 1 << 62
	entryZero       = 1 << 0
	l2CacheTables   = 16
)

// qcowMap maps guest offsets to the clusters of a qcow2 file.
type qcowMap struct {
	path     string
	r        io.ReaderAt
	fileSize int64
	l        qcowLayout
	v3       bool
	l1       []uint64
	backing  *Reader

	mu      sync.Mutex
	l2      map[int64][]uint64
	l2order []int64
	zOff    int64 // host offset of the cluster in zData
	zData   []byte
}

func newQcowMap(path string, r io.ReaderAt, fileSize int64, backing *Reader) (*qcowMap, error) {
	var info Info
	l, err := readQCOW2(path, r, fileSize, &info)
	if err != nil {
		return nil, err
	}
	if l.extendedL2 {
		return nil, refuse(path, "qcow2 with extended L2 entries (subclusters): not readable here; convert it with qemu-img convert -O qcow2 -o extended_l2=off")
	}
	buf := make([]byte, l.l1Size*8)
	if _, err := r.ReadAt(buf, l.l1Offset); err != nil {
		return nil, refuse(path, "qcow2 L1 table unreadable: %v", err)
	}
	m := &qcowMap{path: path, r: r, fileSize: fileSize, l: l, v3: info.Version == 3,
		backing: backing, l2: map[int64][]uint64{}, zOff: -1}
	m.l1 = make([]uint64, l.l1Size)
	for i := range m.l1 {
		m.l1[i] = be.Uint64(buf[i*8:])
	}
	return m, nil
}

func (m *qcowMap) readAt(p []byte, off int64) (int, error) {
	cs := int64(1) << m.l.clusterBits
	done := 0
	for done < len(p) {
		within := off & (cs - 1)
		n := min(int64(len(p)-done), cs-within)
		if err := m.readCluster(off>>m.l.clusterBits, within, p[done:done+int(n)]); err != nil {
			return done, err
		}
		done += int(n)
		off += n
	}
	return done, nil
}

// readCluster fills p from guest cluster idx, at within bytes into it.
func (m *qcowMap) readCluster(idx, within int64, p []byte) error {
	perL2 := int64(1) << (m.l.clusterBits - 3)
	l1e := m.l1[idx/perL2] & entryOffsetMask
	var e uint64
	if l1e != 0 {
		l2, err := m.table(int64(l1e))
		if err != nil {
			return err
		}
		e = l2[idx%perL2]
	}
	switch {
	case e&entryCompressed != 0:
		data, err := m.compressed(e)
		if err != nil {
			return err
		}
		copy(p, data[within:])
		return nil
	case m.v3 && e&entryZero != 0:
		clear(p)
		return nil
	case e&entryOffsetMask == 0:
		return m.unallocated(idx<<m.l.clusterBits+within, p)
	}
	host := int64(e & entryOffsetMask)
	if host&(int64(1)<<m.l.clusterBits-1) != 0 || host+within+int64(len(p)) > m.fileSize {
		return refuse(m.path, "qcow2 data cluster at %#x misaligned or beyond the end of the file (corrupt image)", host)
	}
	_, err := m.r.ReadAt(p, host+within)
	if err != nil {
		return fmt.Errorf("disk image %s: %w", m.path, err)
	}
	return nil
}

// unallocated reads what the backing image has at off, zeros beyond it.
func (m *qcowMap) unallocated(off int64, p []byte) error {
	clear(p)
	if m.backing == nil || off >= m.backing.Size() {
		return nil
	}
	if _, err := m.backing.ReadAt(p, off); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// table returns the L2 table at host offset off, cached.
func (m *qcowMap) table(off int64) ([]uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.l2[off]; ok {
		return t, nil
	}
	cs := int64(1) << m.l.clusterBits
	if off&(cs-1) != 0 || off+cs > m.fileSize {
		return nil, refuse(m.path, "qcow2 L2 table at %#x misaligned or beyond the end of the file (corrupt image)", off)
	}
	buf := make([]byte, cs)
	if _, err := m.r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("disk image %s: L2 table: %w", m.path, err)
	}
	t := make([]uint64, cs/8)
	for i := range t {
		t[i] = be.Uint64(buf[i*8:])
	}
	if len(m.l2order) >= l2CacheTables {
		delete(m.l2, m.l2order[0])
		m.l2order = m.l2order[1:]
	}
	m.l2[off] = t
	m.l2order = append(m.l2order, off)
	return t, nil
}

// compressed returns the decompressed cluster of a compressed L2 entry.
func (m *qcowMap) compressed(e uint64) ([]byte, error) {
	cbits := m.l.clusterBits
	x := 62 - (cbits - 8)
	host := int64(e & (1<<x - 1))
	sectors := int64(e>>x) & (1<<(cbits-8) - 1)
	csize := (sectors+1)*512 - host&511
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.zOff == host {
		return m.zData, nil
	}
	if host >= m.fileSize {
		return nil, refuse(m.path, "qcow2 compressed cluster at %#x beyond the end of the file (corrupt image)", host)
	}
	csize = min(csize, m.fileSize-host) // the last one may end past EOF
	in := make([]byte, csize)
	if _, err := m.r.ReadAt(in, host); err != nil && err != io.EOF {
		return nil, fmt.Errorf("disk image %s: compressed cluster: %w", m.path, err)
	}
	out := make([]byte, int64(1)<<cbits)
	if err := m.inflate(in, out); err != nil {
		return nil, refuse(m.path, "qcow2 compressed cluster at %#x: %v (corrupt image)", host, err)
	}
	m.zOff, m.zData = host, out
	return out, nil
}

func (m *qcowMap) inflate(in, out []byte) error {
	var rd io.Reader
	switch m.l.compression {
	case "zstd":
		d, err := zstd.NewReader(bytes.NewReader(in), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return err
		}
		defer d.Close()
		rd = d
	default:
		fr := flate.NewReader(bytes.NewReader(in))
		defer fr.Close()
		rd = fr
	}
	_, err := io.ReadFull(rd, out)
	return err
}
