package pagexfer

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
)

// memSource is a deterministic in-memory Source: pages become populated
// when written, the dirty log is exact, and onRead (when set) runs after
// every ReadAt while the source is not paused, standing in for a guest
// that writes while it is copied.
type memSource struct {
	mu        sync.Mutex
	mem       []byte
	populated []bool
	dirty     []uint64
	logging   bool
	paused    bool
	throttle  int
	throttles []int
	pauses    int
	resumes   int
	state     []byte
	onRead    func(m *memSource)
	readErr   error
	reads     [][2]int64 // off, len of every ReadAt
	failState error
}

// filled[b] is a page of bytes b.
var filled = func() (f [256][PageSize]byte) {
	for b := range f {
		for i := range f[b] {
			f[b][i] = byte(b)
		}
	}
	return f
}()

func newMemSource(pages int) *memSource {
	return &memSource{
		mem:       make([]byte, pages*PageSize),
		populated: make([]bool, pages),
		dirty:     make([]uint64, (pages+63)/64),
		state:     []byte("vcpu-state"),
	}
}

// write fills page p with b (b == 0 writes a zero page) as the guest would.
func (m *memSource) write(p int, b byte) {
	pg := m.mem[p*PageSize : (p+1)*PageSize]
	copy(pg, filled[b][:])
	if b != 0 {
		pg[0], pg[1] = byte(p), byte(p>>8) // distinct pages
	}
	m.populated[p] = true
	if m.logging {
		m.dirty[p/64] |= 1 << (p % 64)
	}
}

func (m *memSource) Size() uint64 { return uint64(len(m.mem)) }

func (m *memSource) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readErr != nil {
		return 0, m.readErr
	}
	if off < 0 || off+int64(len(p)) > int64(len(m.mem)) {
		return 0, fmt.Errorf("read %d+%d outside memory", off, len(p))
	}
	m.reads = append(m.reads, [2]int64{off, int64(len(p))})
	n := copy(p, m.mem[off:])
	if m.onRead != nil && !m.paused {
		m.onRead(m)
	}
	return n, nil
}

func (m *memSource) DataRanges() ([]Range, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rs []Range
	for i, p := range m.populated {
		if !p {
			continue
		}
		off := uint64(i) * PageSize
		if n := len(rs); n > 0 && rs[n-1].Off+rs[n-1].Len == off {
			rs[n-1].Len += PageSize
		} else {
			rs = append(rs, Range{Off: off, Len: PageSize})
		}
	}
	return rs, nil
}

func (m *memSource) SetDirtyLogging(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		clear(m.dirty)
	}
	m.logging = on
	return nil
}

func (m *memSource) DirtyLog(dst []uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.logging {
		return errors.New("dirty logging is off")
	}
	copy(dst, m.dirty)
	clear(m.dirty)
	return nil
}

func (m *memSource) Pause() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = true
	m.pauses++
	return nil
}

func (m *memSource) Resume() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused = false
	m.resumes++
	return nil
}

func (m *memSource) SaveState() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.paused {
		return nil, errors.New("save state of a running source")
	}
	if m.failState != nil {
		return nil, m.failState
	}
	return append([]byte(nil), m.state...), nil
}

func (m *memSource) SetThrottle(p int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.throttle = p
	m.throttles = append(m.throttles, p)
	return nil
}

func (m *memSource) snapshot() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]byte(nil), m.mem...)
}

// memSink is an in-memory Sink that checks every call is page aligned and
// inside memory, and counts all-zero pages written as data.
type memSink struct {
	mem        []byte
	ps         int
	zeroWrites int // all-zero pages that arrived as data (must stay 0)
	dataWrites int
	zeroed     uint64
	writeErr   error
	bad        error
}

func newMemSink(size uint64, ps int) *memSink { return &memSink{mem: make([]byte, size), ps: ps} }

func (s *memSink) Size() uint64 { return uint64(len(s.mem)) }

func (s *memSink) WriteAt(p []byte, off int64) (int, error) {
	if s.writeErr != nil {
		return 0, s.writeErr
	}
	if off < 0 || off%int64(s.ps) != 0 || len(p)%s.ps != 0 || len(p) == 0 || off+int64(len(p)) > int64(len(s.mem)) {
		s.bad = fmt.Errorf("bad write %d+%d into %d bytes", off, len(p), len(s.mem))
		return 0, s.bad
	}
	for i := 0; i < len(p); i += s.ps {
		if isZero(p[i : i+s.ps]) {
			s.zeroWrites++
		}
		s.dataWrites++
	}
	return copy(s.mem[off:], p), nil
}

func (s *memSink) ZeroRange(off, n uint64) error {
	if off%uint64(s.ps) != 0 || n%uint64(s.ps) != 0 || n == 0 || off+n > uint64(len(s.mem)) {
		s.bad = fmt.Errorf("bad zero range %d+%d in %d bytes", off, n, len(s.mem))
		return s.bad
	}
	clear(s.mem[off : off+n])
	s.zeroed += n / uint64(s.ps)
	return nil
}

// sparseSink is a Sink that stores only written pages (for fuzzing streams
// that claim large memories).
type sparseSink struct {
	size  uint64
	ps    uint64
	pages map[uint64][]byte
	bad   error
}

func (s *sparseSink) Size() uint64 { return s.size }

func (s *sparseSink) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || uint64(off)%s.ps != 0 || uint64(len(p))%s.ps != 0 || len(p) == 0 || uint64(off)+uint64(len(p)) > s.size {
		s.bad = fmt.Errorf("bad write %d+%d into %d bytes", off, len(p), s.size)
		return 0, s.bad
	}
	for i := uint64(0); i < uint64(len(p)); i += s.ps {
		s.pages[(uint64(off)+i)/s.ps] = bytes.Clone(p[i : i+s.ps])
	}
	return len(p), nil
}

func (s *sparseSink) ZeroRange(off, n uint64) error {
	if off%s.ps != 0 || n%s.ps != 0 || n == 0 || off+n > s.size || off+n < off {
		s.bad = fmt.Errorf("bad zero range %d+%d in %d bytes", off, n, s.size)
		return s.bad
	}
	for p := off / s.ps; p < (off+n)/s.ps; p++ {
		delete(s.pages, p)
	}
	return nil
}
