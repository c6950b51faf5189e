package pagexfer

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf8"
)

// Stream format, version 1. README.md in this directory has the byte-level
// tables; the constants here are the single source of truth for them.
//
// A stream is a preamble followed by framed records. Every record is
//
//	kind u8 | length u32 (little-endian) | body[length]
//
// and records come in this order:
//
//	preamble  header  (round-start batch* round-end)+  state  end
const (
	// Version is the stream format version this package writes and reads.
	Version = 1
	// PageSize is the page size Send uses. Receivers accept any power of
	// two from MinPageSize to MaxPageSize named by the header.
	PageSize    = 4096
	MinPageSize = 4096
	MaxPageSize = 64 << 10

	preambleSize = 12
	frameSize    = 5
)

// magic opens every stream (the first 8 bytes of the preamble).
var magic = [8]byte{'O', 'V', 'S', '-', 'P', 'X', 'F', 'R'}

// Record kinds.
const (
	recHeader     byte = 0x01
	recRoundStart byte = 0x02
	recBatch      byte = 0x03
	recRoundEnd   byte = 0x04
	recState      byte = 0x05
	recEnd        byte = 0x06
	// recCBatch is a batch record whose body is compressed (only with
	// FeatureCompression): codec u8 | raw body length u32 | compressed
	// bytes, which decompress to exactly a batch body.
	recCBatch byte = 0x07
	// recDrain asks the receiver, between rounds (only with
	// FeatureDrain), to answer Drained on the same connection once it has
	// applied everything before it: body u32, the rounds completed so far.
	recDrain byte = 0x08
)

// drainBody is the body size of a drain record.
const drainBody = 4

func recName(k byte) string {
	switch k {
	case recHeader:
		return "header"
	case recRoundStart:
		return "round-start"
	case recBatch:
		return "batch"
	case recRoundEnd:
		return "round-end"
	case recState:
		return "state"
	case recEnd:
		return "end"
	case recCBatch:
		return "compressed batch"
	case recDrain:
		return "drain"
	}
	return fmt.Sprintf("record kind %#02x", k)
}

// Page kinds inside a batch.
const (
	kindZero       byte = 0 // page is all zero; no data
	kindRaw        byte = 1 // PageSize bytes of data follow in the data area
	kindCompressed byte = 2 // reserved; compression works on whole batch records (recCBatch) instead
)

// Codecs of a compressed batch record.
const (
	codecS2   byte = 1 // github.com/klauspost/compress/s2 block format
	codecZstd byte = 2 // one zstd frame (github.com/klauspost/compress/zstd)
)

// Feature flags in the header. A stream sets only the features it uses, so
// an image without them is byte for byte what the first release of
// version 1 wrote, and a receiver that does not know a feature refuses the
// stream (ErrUnsupported) instead of misreading it.
type Feature uint32

const (
	// FeatureCompression: batches may come as compressed batch records
	// (kind 0x07), s2 or zstd.
	FeatureCompression Feature = 1 << 0
	// FeatureParallel: the image is split over StreamCount connections;
	// each carries its own header with its StreamID. Page p travels only
	// on stream (p / StripePages) % StreamCount.
	FeatureParallel Feature = 1 << 1
	// FeatureDrain: drain records (kind 0x08) may come between rounds, and
	// the receiver answers each with a Drained control message on that
	// stream's connection. Only a live migration over connections that
	// carry answers uses it (never a save image).
	FeatureDrain Feature = 1 << 2

	supportedFeatures = FeatureCompression | FeatureParallel | FeatureDrain
)

// StripePages is the stripe of the parallel-streams feature: pages
// [k*StripePages, (k+1)*StripePages) belong to stream k % StreamCount, in
// every round. A page thus always travels on the same stream, in round
// order, so no round barrier between streams is needed: an older copy of a
// page can never overtake a newer one.
const StripePages = 1024

// MaxStreams is the most streams one image may be split over.
const MaxStreams = 64

// Limits the decoder enforces; a stream that exceeds one is rejected
// before anything is allocated for it.
const (
	MaxMemSize    = 1 << 40  // 1 TiB of guest memory
	MaxVCPUs      = 4096     //
	MaxEngineLen  = 64       // bytes of engine name
	MaxConfigSize = 1 << 20  // bytes of domain configuration text
	MaxStateSize  = 16 << 20 // bytes of vCPU/engine state
	MaxBatchData  = 4 << 20  // bytes of page data in one batch
	MaxBatchPages = 1 << 16  // pages (data and zero) described by one batch
	maxBatchDesc  = 1 << 20  // bytes of run descriptors in one batch
	maxBatchBody  = MaxBatchData + maxBatchDesc
	cbatchHead    = 5 // codec and raw length of a compressed batch

	headerFixed    = 41 // features..engine length
	maxHeaderBody  = headerFixed + MaxEngineLen + 4 + MaxConfigSize + 4
	roundStartBody = 8
	roundEndBody   = 32
	endBody        = 28
)

// Round-start flags.
const (
	roundFinal uint32 = 1 << 0 // the source is paused: this is the stop-and-copy round
)

// Errors a stream can fail with. Errors returned by Receive and the
// control-message readers wrap one of these (test with errors.Is) and say
// where the stream went wrong.
var (
	ErrFormat      = errors.New("malformed page-transfer stream")
	ErrChecksum    = errors.New("page-transfer checksum mismatch")
	ErrVersion     = errors.New("unsupported page-transfer stream version")
	ErrUnsupported = errors.New("unsupported page-transfer feature")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(c uint32, b []byte) uint32 { return crc32.Update(c, castagnoli, b) }

// ID names one migration (or save image); it travels in the header and in
// every control message.
type ID [16]byte

// NewID returns a random ID (RFC 4122 version 4 layout).
func NewID() (ID, error) {
	var id ID
	if _, err := rand.Read(id[:]); err != nil {
		return ID{}, fmt.Errorf("migration id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id, nil
}

// ParseID parses the String form (8-4-4-4-12 hex digits).
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return ID{}, fmt.Errorf("migration id %q: want 8-4-4-4-12 hex digits", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return ID{}, fmt.Errorf("migration id %q: %w", s, err)
	}
	return id, nil
}

// String formats the ID as 8-4-4-4-12 hex digits.
func (id ID) String() string {
	h := hex.EncodeToString(id[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// IsZero reports whether the ID is unset.
func (id ID) IsZero() bool { return id == ID{} }

// Header describes the image; it is the first record of every stream.
type Header struct {
	Version     uint16  // stream format version (Version)
	Features    Feature // feature flags: only those the stream uses
	StreamID    uint16  // this stream's index among StreamCount (0 of 1 without FeatureParallel)
	StreamCount uint16
	PageSize    uint32 // bytes per page
	MemSize     uint64 // bytes of guest memory (a multiple of PageSize)
	VCPUs       uint32
	Engine      string // engine that produced the state blob ("kvm", "sim")
	ID          ID     // migration id
	Config      string // domain configuration text (vm.cfg)
}

// Pages returns the number of pages of guest memory.
func (h Header) Pages() uint64 { return h.MemSize / uint64(h.PageSize) }

// validate checks the fields a version 1 stream may carry.
func (h Header) validate() error {
	if h.Features&^supportedFeatures != 0 {
		return fmt.Errorf("%w: header feature flags %#x (this version supports %#x)", ErrUnsupported, uint32(h.Features), uint32(supportedFeatures))
	}
	switch {
	case h.Features&FeatureParallel == 0 && (h.StreamCount != 1 || h.StreamID != 0):
		return fmt.Errorf("%w: header: stream %d of %d without the parallel-streams feature", ErrFormat, h.StreamID, h.StreamCount)
	case h.StreamCount == 0 || h.StreamCount > MaxStreams || h.StreamID >= h.StreamCount:
		return fmt.Errorf("%w: header: stream %d of %d (1..%d streams)", ErrFormat, h.StreamID, h.StreamCount, MaxStreams)
	}
	ps := h.PageSize
	if ps < MinPageSize || ps > MaxPageSize || ps&(ps-1) != 0 {
		return fmt.Errorf("%w: header: page size %d is not a power of two in %d..%d", ErrFormat, ps, MinPageSize, MaxPageSize)
	}
	if h.MemSize == 0 || h.MemSize%uint64(ps) != 0 || h.MemSize > MaxMemSize {
		return fmt.Errorf("%w: header: memory size %d is not a positive multiple of the page size up to %d", ErrFormat, h.MemSize, uint64(MaxMemSize))
	}
	if h.VCPUs == 0 || h.VCPUs > MaxVCPUs {
		return fmt.Errorf("%w: header: %d vCPUs (1..%d)", ErrFormat, h.VCPUs, MaxVCPUs)
	}
	if err := checkEngine(h.Engine); err != nil {
		return fmt.Errorf("%w: header: %v", ErrFormat, err)
	}
	if len(h.Config) > MaxConfigSize || !utf8.ValidString(h.Config) {
		return fmt.Errorf("%w: header: domain configuration of %d bytes is not UTF-8 text up to %d bytes", ErrFormat, len(h.Config), MaxConfigSize)
	}
	return nil
}

func checkEngine(s string) error {
	if s == "" || len(s) > MaxEngineLen {
		return fmt.Errorf("engine name of %d bytes (1..%d)", len(s), MaxEngineLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("engine name %q has a byte outside printable ASCII", s)
		}
	}
	return nil
}

// appendPreamble appends the 12-byte preamble.
func appendPreamble(b []byte) []byte {
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint16(b, Version)
	return binary.LittleEndian.AppendUint16(b, 0)
}

// parsePreamble checks magic, version and the reserved field.
func parsePreamble(p []byte) error {
	if len(p) != preambleSize {
		return fmt.Errorf("%w: preamble of %d bytes", ErrFormat, len(p))
	}
	if [8]byte(p[:8]) != magic {
		return fmt.Errorf("%w: bad magic %q (not a page-transfer stream)", ErrFormat, p[:8])
	}
	if v := binary.LittleEndian.Uint16(p[8:]); v != Version {
		return fmt.Errorf("%w: stream version %d, this receiver reads version %d", ErrVersion, v, Version)
	}
	if r := binary.LittleEndian.Uint16(p[10:]); r != 0 {
		return fmt.Errorf("%w: preamble reserved field %#x is not zero", ErrFormat, r)
	}
	return nil
}

func appendFrame(b []byte, kind byte, n int) []byte {
	b = append(b, kind)
	return binary.LittleEndian.AppendUint32(b, uint32(n))
}

// appendHeader appends preamble and header record; the header's checksum
// covers both.
func appendHeader(b []byte, h Header) []byte {
	start := len(b)
	b = appendPreamble(b)
	body := headerFixed + len(h.Engine) + 4 + len(h.Config) + 4
	b = appendFrame(b, recHeader, body)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Features))
	b = binary.LittleEndian.AppendUint16(b, h.StreamID)
	b = binary.LittleEndian.AppendUint16(b, h.StreamCount)
	b = binary.LittleEndian.AppendUint32(b, h.PageSize)
	b = binary.LittleEndian.AppendUint64(b, h.MemSize)
	b = binary.LittleEndian.AppendUint32(b, h.VCPUs)
	b = append(b, h.ID[:]...)
	b = append(b, byte(len(h.Engine)))
	b = append(b, h.Engine...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.Config)))
	b = append(b, h.Config...)
	return binary.LittleEndian.AppendUint32(b, crc(0, b[start:]))
}

// parseHeader decodes a header body; pre is the preamble and frame header
// that precede it (covered by the checksum).
func parseHeader(pre, body []byte) (Header, error) {
	if len(body) < headerFixed+4+4 {
		return Header{}, fmt.Errorf("%w: header of %d bytes is too short", ErrFormat, len(body))
	}
	le := binary.LittleEndian
	want := le.Uint32(body[len(body)-4:])
	if got := crc(crc(0, pre), body[:len(body)-4]); got != want {
		return Header{}, fmt.Errorf("%w: header: computed %#08x, stream says %#08x", ErrChecksum, got, want)
	}
	h := Header{
		Version:     Version,
		Features:    Feature(le.Uint32(body[0:])),
		StreamID:    le.Uint16(body[4:]),
		StreamCount: le.Uint16(body[6:]),
		PageSize:    le.Uint32(body[8:]),
		MemSize:     le.Uint64(body[12:]),
		VCPUs:       le.Uint32(body[20:]),
	}
	copy(h.ID[:], body[24:40])
	rest := body[headerFixed : len(body)-4]
	n := int(body[40])
	if n > len(rest) {
		return Header{}, fmt.Errorf("%w: header: engine name of %d bytes overruns the record", ErrFormat, n)
	}
	h.Engine, rest = string(rest[:n]), rest[n:]
	if len(rest) < 4 {
		return Header{}, fmt.Errorf("%w: header: no room for the configuration length", ErrFormat)
	}
	m := le.Uint32(rest)
	rest = rest[4:]
	if uint64(m) != uint64(len(rest)) {
		return Header{}, fmt.Errorf("%w: header: configuration of %d bytes in %d remaining", ErrFormat, m, len(rest))
	}
	h.Config = string(rest)
	if err := h.validate(); err != nil {
		return Header{}, err
	}
	return h, nil
}

// Totals are the counts an image carries in its end record; the receiver
// recomputes them, and the Verified control message echoes them.
type Totals struct {
	Rounds    uint32 // rounds in the stream, the final (stop-and-copy) one included
	DataPages uint64 // pages sent with data
	ZeroPages uint64 // pages sent as zero flags
	Bytes     uint64 // stream bytes before the end record
}

func appendTotals(b []byte, t Totals) []byte {
	b = binary.LittleEndian.AppendUint32(b, t.Rounds)
	b = binary.LittleEndian.AppendUint64(b, t.DataPages)
	b = binary.LittleEndian.AppendUint64(b, t.ZeroPages)
	return binary.LittleEndian.AppendUint64(b, t.Bytes)
}

func parseTotals(b []byte) Totals {
	le := binary.LittleEndian
	return Totals{Rounds: le.Uint32(b), DataPages: le.Uint64(b[4:]), ZeroPages: le.Uint64(b[12:]), Bytes: le.Uint64(b[20:])}
}

// roundEnd is the body of a round-end record.
type roundEnd struct {
	Round     uint32
	DataPages uint64
	ZeroPages uint64
	Bytes     uint64 // bytes of the round's records (round-start and batches)
	CRC       uint32 // CRC-32C of those bytes
}

func appendRoundEnd(b []byte, e roundEnd) []byte {
	b = appendFrame(b, recRoundEnd, roundEndBody)
	b = binary.LittleEndian.AppendUint32(b, e.Round)
	b = binary.LittleEndian.AppendUint64(b, e.DataPages)
	b = binary.LittleEndian.AppendUint64(b, e.ZeroPages)
	b = binary.LittleEndian.AppendUint64(b, e.Bytes)
	return binary.LittleEndian.AppendUint32(b, e.CRC)
}

func parseRoundEnd(b []byte) roundEnd {
	le := binary.LittleEndian
	return roundEnd{Round: le.Uint32(b), DataPages: le.Uint64(b[4:]), ZeroPages: le.Uint64(b[12:]),
		Bytes: le.Uint64(b[20:]), CRC: le.Uint32(b[28:])}
}

func appendRoundStart(b []byte, round, flags uint32) []byte {
	b = appendFrame(b, recRoundStart, roundStartBody)
	b = binary.LittleEndian.AppendUint32(b, round)
	return binary.LittleEndian.AppendUint32(b, flags)
}

func appendDrain(b []byte, rounds uint32) []byte {
	b = appendFrame(b, recDrain, drainBody)
	return binary.LittleEndian.AppendUint32(b, rounds)
}

func appendState(b []byte, state []byte) []byte {
	b = appendFrame(b, recState, 4+len(state))
	b = binary.LittleEndian.AppendUint32(b, crc(0, state))
	return append(b, state...)
}

func appendEnd(b []byte, t Totals) []byte {
	b = appendFrame(b, recEnd, endBody)
	return appendTotals(b, t)
}

// maxBody is the largest body a record of kind k may have (0: unknown kind).
func maxBody(k byte) int {
	switch k {
	case recHeader:
		return maxHeaderBody
	case recRoundStart:
		return roundStartBody
	case recBatch:
		return maxBatchBody
	case recRoundEnd:
		return roundEndBody
	case recState:
		return 4 + MaxStateSize
	case recEnd:
		return endBody
	case recCBatch:
		return cbatchHead + maxBatchBody
	case recDrain:
		return drainBody
	}
	return 0
}

// minBody is the smallest body a record of kind k may have.
func minBody(k byte) int {
	switch k {
	case recHeader:
		return headerFixed + 8
	case recRoundStart:
		return roundStartBody
	case recBatch:
		return 4 // run count and one run (gap, count, kind)
	case recRoundEnd:
		return roundEndBody
	case recState:
		return 4
	case recEnd:
		return endBody
	case recCBatch:
		return cbatchHead + 1
	case recDrain:
		return drainBody
	}
	return 0
}
