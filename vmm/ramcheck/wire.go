package ramcheck

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version this package speaks (doc.go).
const Version = 1

const (
	magic         = "OVSRAMCK"
	headerSize    = 5  // type u8, length u32
	sumSize       = 16 // XXH3-128
	maxSumsPerMsg = 4096
	helloSize     = 36
	acceptSize    = 21
	resendSize    = 13
	chunkHdrSize  = 4 + sumSize
	verdictSize   = 21
	ioBufferSize  = 256 << 10
)

type msgType uint8

const (
	msgHello msgType = 1 + iota
	msgAccept
	msgSums
	msgResend
	msgChunk
	msgVerdict
)

func (t msgType) String() string {
	names := [...]string{"", "Hello", "Accept", "Sums", "Resend", "Chunk", "Verdict"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Status codes of Accept, Resend and Verdict.
const (
	acceptOK       = 0
	acceptMismatch = 1

	resendGo            = 0
	resendTooDifferent  = 1
	resendSourceChanged = 2

	verdictMended         = 0
	verdictStillDifferent = 1
	verdictCorrupt        = 2
)

// params are what Hello and Accept carry: the shape of one side's RAM.
type params struct {
	version   uint16
	pageSize  uint32
	chunkSize uint32
	ramSize   uint64
	maxResend uint64 // Hello only
}

func (p params) String() string {
	return fmt.Sprintf("%d bytes of RAM in chunks of %d (page size %d, protocol version %d)",
		p.ramSize, p.chunkSize, p.pageSize, p.version)
}

// sameShape says whether two sides can compare their RAM.
func (p params) sameShape(q params) bool {
	return p.version == q.version && p.pageSize == q.pageSize &&
		p.chunkSize == q.chunkSize && p.ramSize == q.ramSize
}

type resendMsg struct {
	status uint8
	chunks uint32
	bytes  uint64
}

type verdictMsg struct {
	status uint8
	chunks uint32
	pages  uint32
	still  uint32
	bytes  uint64
}

// wire frames messages over one connection. Reads never allocate beyond
// buf (sized for the largest Sums frame) and the caller's chunk buffer,
// and never read past the frame they read: the connection goes on
// carrying the caller's messages right after the check (the target's
// answer to the commit may follow its Verdict in the same segment), so
// nothing of them may be left in a buffer of ours. Writes are buffered
// and flushed at the end of each message.
type wire struct {
	r   io.Reader
	w   *bufio.Writer
	hdr [headerSize]byte
	buf []byte
}

func newWire(conn io.ReadWriter) *wire {
	return &wire{
		r:   conn,
		w:   bufio.NewWriterSize(conn, ioBufferSize),
		buf: make([]byte, 4+sumSize*maxSumsPerMsg),
	}
}

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, a...)...)
}

// header reads a frame header and checks its type and that its length lies
// in [minLen, maxLen]; the payload is still unread.
func (w *wire) header(want msgType, minLen, maxLen int) (int, error) {
	if _, err := io.ReadFull(w.r, w.hdr[:]); err != nil {
		return 0, fmt.Errorf("reading a %v frame: %w", want, err)
	}
	t := msgType(w.hdr[0])
	n := int(binary.BigEndian.Uint32(w.hdr[1:]))
	if t != want {
		return 0, protoErr("expected a %v frame, got %v (length %d)", want, t, n)
	}
	if n < minLen || n > maxLen {
		return 0, protoErr("%v frame of %d bytes, expected %d to %d", t, n, minLen, maxLen)
	}
	return n, nil
}

// fixed reads a frame of exactly n payload bytes into w.buf.
func (w *wire) fixed(want msgType, n int) ([]byte, error) {
	if _, err := w.header(want, n, n); err != nil {
		return nil, err
	}
	return w.payload(want, n)
}

func (w *wire) payload(t msgType, n int) ([]byte, error) {
	p := w.buf[:n]
	if _, err := io.ReadFull(w.r, p); err != nil {
		return nil, fmt.Errorf("reading a %v payload of %d bytes: %w", t, n, noEOF(err))
	}
	return p, nil
}

// noEOF turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (w *wire) start(t msgType, n int) {
	w.hdr[0] = byte(t)
	binary.BigEndian.PutUint32(w.hdr[1:], uint32(n))
	w.w.Write(w.hdr[:]) // a bufio.Writer error is sticky: Flush reports it
}

func (w *wire) send(t msgType, payload []byte) {
	w.start(t, len(payload))
	w.w.Write(payload)
}

func (w *wire) flush(what string) error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("sending %s: %w", what, err)
	}
	return nil
}

func putParams(b []byte, p params) {
	be := binary.BigEndian
	be.PutUint16(b[0:], p.version)
	be.PutUint16(b[2:], 0)
	be.PutUint32(b[4:], p.pageSize)
	be.PutUint32(b[8:], p.chunkSize)
	be.PutUint64(b[12:], p.ramSize)
}

func getParams(b []byte) params {
	be := binary.BigEndian
	return params{version: be.Uint16(b[0:]), pageSize: be.Uint32(b[4:]),
		chunkSize: be.Uint32(b[8:]), ramSize: be.Uint64(b[12:])}
}

func (w *wire) sendHello(p params) {
	b := make([]byte, helloSize)
	copy(b, magic)
	putParams(b[8:], p)
	binary.BigEndian.PutUint64(b[28:], p.maxResend)
	w.send(msgHello, b)
}

func (w *wire) readHello() (params, error) {
	b, err := w.fixed(msgHello, helloSize)
	if err != nil {
		return params{}, err
	}
	if string(b[:8]) != magic {
		return params{}, protoErr("the Hello does not start with %q (%q): is the peer a ramcheck target, and did the migration stream leave bytes behind?", magic, b[:8])
	}
	p := getParams(b[8:])
	p.maxResend = binary.BigEndian.Uint64(b[28:])
	return p, nil
}

func (w *wire) sendAccept(status uint8, p params) {
	b := make([]byte, acceptSize)
	b[0] = status
	putParams(b[1:], p)
	w.send(msgAccept, b)
}

func (w *wire) readAccept() (uint8, params, error) {
	b, err := w.fixed(msgAccept, acceptSize)
	if err != nil {
		return 0, params{}, err
	}
	if b[0] != acceptOK && b[0] != acceptMismatch {
		return 0, params{}, protoErr("Accept with unknown status %d", b[0])
	}
	return b[0], getParams(b[1:]), nil
}

// sendSums sends all checksums in frames of at most maxSumsPerMsg.
func (w *wire) sendSums(sums []sum) {
	for first := 0; first < len(sums); first += maxSumsPerMsg {
		part := sums[first:min(first+maxSumsPerMsg, len(sums))]
		w.start(msgSums, 4+sumSize*len(part))
		var idx [4]byte
		binary.BigEndian.PutUint32(idx[:], uint32(first))
		w.w.Write(idx[:])
		for i := range part {
			w.w.Write(part[i][:])
		}
	}
}

// readSums reads the peer's checksums of all len(into) chunks, in order.
func (w *wire) readSums(into []sum) error {
	for next := 0; next < len(into); {
		n, err := w.header(msgSums, 4+sumSize, 4+sumSize*maxSumsPerMsg)
		if err != nil {
			return err
		}
		if (n-4)%sumSize != 0 {
			return protoErr("Sums frame of %d bytes is not 4 + a multiple of %d", n, sumSize)
		}
		b, err := w.payload(msgSums, n)
		if err != nil {
			return err
		}
		first, count := int(binary.BigEndian.Uint32(b)), (n-4)/sumSize
		if first != next || count > len(into)-next {
			return protoErr("Sums for chunks %d-%d, expected from chunk %d of %d", first, first+count-1, next, len(into))
		}
		for i := 0; i < count; i++ {
			copy(into[next+i][:], b[4+i*sumSize:])
		}
		next += count
	}
	return nil
}

func (w *wire) sendResend(m resendMsg) {
	b := make([]byte, resendSize)
	b[0] = m.status
	binary.BigEndian.PutUint32(b[1:], m.chunks)
	binary.BigEndian.PutUint64(b[5:], m.bytes)
	w.send(msgResend, b)
}

func (w *wire) readResend() (resendMsg, error) {
	b, err := w.fixed(msgResend, resendSize)
	if err != nil {
		return resendMsg{}, err
	}
	m := resendMsg{status: b[0], chunks: binary.BigEndian.Uint32(b[1:]), bytes: binary.BigEndian.Uint64(b[5:])}
	if m.status > resendSourceChanged {
		return resendMsg{}, protoErr("Resend with unknown status %d", m.status)
	}
	return m, nil
}

func (w *wire) sendChunk(index int, s sum, data []byte) {
	w.start(msgChunk, chunkHdrSize+len(data))
	var idx [4]byte
	binary.BigEndian.PutUint32(idx[:], uint32(index))
	w.w.Write(idx[:])
	w.w.Write(s[:])
	w.w.Write(data)
}

// readChunk reads one Chunk frame whose index must exceed after (-1 for
// the first) and lie below len(g) chunks, into buf (len >= chunk size).
func (w *wire) readChunk(g geometry, after int, buf []byte) (int, sum, []byte, error) {
	n, err := w.header(msgChunk, chunkHdrSize+1, chunkHdrSize+g.chunkSize)
	if err != nil {
		return 0, sum{}, nil, err
	}
	h, err := w.payload(msgChunk, chunkHdrSize)
	if err != nil {
		return 0, sum{}, nil, err
	}
	index := int(binary.BigEndian.Uint32(h))
	var s sum
	copy(s[:], h[4:])
	if index <= after || index >= g.chunks {
		return 0, sum{}, nil, protoErr("Chunk %d after chunk %d, of %d chunks", index, after, g.chunks)
	}
	lo, hi := g.bounds(index)
	if n-chunkHdrSize != hi-lo {
		return 0, sum{}, nil, protoErr("Chunk %d carries %d bytes, the chunk has %d", index, n-chunkHdrSize, hi-lo)
	}
	data := buf[:hi-lo]
	if _, err := io.ReadFull(w.r, data); err != nil {
		return 0, sum{}, nil, fmt.Errorf("reading chunk %d: %w", index, noEOF(err))
	}
	return index, s, data, nil
}

func (w *wire) sendVerdict(m verdictMsg) {
	b := make([]byte, verdictSize)
	b[0] = m.status
	binary.BigEndian.PutUint32(b[1:], m.chunks)
	binary.BigEndian.PutUint32(b[5:], m.pages)
	binary.BigEndian.PutUint32(b[9:], m.still)
	binary.BigEndian.PutUint64(b[13:], m.bytes)
	w.send(msgVerdict, b)
}

func (w *wire) readVerdict() (verdictMsg, error) {
	b, err := w.fixed(msgVerdict, verdictSize)
	if err != nil {
		return verdictMsg{}, err
	}
	be := binary.BigEndian
	m := verdictMsg{status: b[0], chunks: be.Uint32(b[1:]), pages: be.Uint32(b[5:]),
		still: be.Uint32(b[9:]), bytes: be.Uint64(b[13:])}
	if m.status > verdictCorrupt {
		return verdictMsg{}, protoErr("Verdict with unknown status %d", m.status)
	}
	return m, nil
}
