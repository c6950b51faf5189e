// Package records reads and checks the log of records that the test
// guest's recorder (test/guest/recorder.c) writes on a shared raw disk:
// the evidence of the HA tests that a domain never had two writers. Each
// record is one 512-byte sector holding the domain, the host and the
// generation the guest was started with (from fw_cfg: vmm/qemu's
// FwCfgDomain, FwCfgHost, FwCfgGeneration), its boot id, a sequence number
// and the guest's monotonic time, with a CRC-32C.
//
// Verify checks a disk image: every record valid, the log contiguous
// (nothing after its first empty sector), one domain, generations never
// decreasing, sequence numbers strictly increasing along the whole log (a
// new writer continues after the last record it found, so a record that
// does not increase was written by a writer that started before its
// predecessor stopped), one host per generation, and each writer
// (generation, host, boot) in one stretch: once another writer's record
// follows, the earlier writer never writes again. It returns a Summary of
// the writers in the order of the log and, on a violation, an *Error
// naming the sectors involved (the first violation; the Summary lists
// the others).
//
// It owns the record format (the recorder's header describes the same
// bytes) and nothing else; it imports only the standard library, and only
// tests import it. Verify may read an image a guest is writing (it reads
// again what may be a torn sector or the log growing under it);
// VerifyReader reads what it is given once.
package records

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strings"
	"time"
)

// The record format (test/guest/recorder.c).
const (
	SectorSize = 512
	Version    = 1
	// MaxName is the longest domain or host name a record holds.
	MaxName = 127
)

var magic = []byte("OVSHAREC")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Offsets in a record.
const (
	offVersion  = 8
	offGen      = 16
	offSeq      = 24
	offMono     = 32
	offBoot     = 40
	lenBoot     = 40
	offDomain   = 80
	offHost     = 208
	lenName     = 128
	offChecksum = 508
)

// Record is one record of the log.
type Record struct {
	Sector      int64 // where it is on the disk (0-based); not stored in the record
	Generation  int64
	Sequence    uint64
	MonotonicNS uint64 // the guest's CLOCK_MONOTONIC when it wrote the record
	Boot        string // the guest's boot id
	Domain      string
	Host        string
}

// Writer is what tells two writers apart: a generation, on a host, in one
// boot of the guest.
type Writer struct {
	Generation int64
	Host       string
	Boot       string
}

// Writer is the writer of r.
func (r Record) Writer() Writer { return Writer{r.Generation, r.Host, r.Boot} }

func (r Record) String() string {
	return fmt.Sprintf("sector %d (generation %d, host %q, seq %d, boot %s)", r.Sector, r.Generation, r.Host, r.Sequence, r.Boot)
}

// Encode is the sector of r as the recorder writes it (Sector is not
// stored). It fails on a domain or host longer than MaxName or holding a
// NUL, and on a boot id longer than 40 bytes.
func Encode(r Record) ([]byte, error) {
	for what, s := range map[string]string{"domain": r.Domain, "host": r.Host} {
		if len(s) > MaxName || strings.IndexByte(s, 0) >= 0 {
			return nil, fmt.Errorf("records: %s %q: want at most %d bytes and no NUL", what, s, MaxName)
		}
	}
	if len(r.Boot) > lenBoot || strings.IndexByte(r.Boot, 0) >= 0 {
		return nil, fmt.Errorf("records: boot id %q: want at most %d bytes and no NUL", r.Boot, lenBoot)
	}
	b := make([]byte, SectorSize)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[offVersion:], Version)
	binary.LittleEndian.PutUint64(b[offGen:], uint64(r.Generation))
	binary.LittleEndian.PutUint64(b[offSeq:], r.Sequence)
	binary.LittleEndian.PutUint64(b[offMono:], r.MonotonicNS)
	copy(b[offBoot:], r.Boot)
	copy(b[offDomain:], r.Domain)
	copy(b[offHost:], r.Host)
	binary.LittleEndian.PutUint32(b[offChecksum:], crc32.Checksum(b[:offChecksum], castagnoli))
	return b, nil
}

// decode reads the record in a sector, or says why it is not one.
func decode(b []byte, sector int64) (Record, error) {
	if !bytes.Equal(b[:len(magic)], magic) {
		return Record{}, fmt.Errorf("no record magic (starts % x)", b[:len(magic)])
	}
	if v := binary.LittleEndian.Uint32(b[offVersion:]); v != Version {
		return Record{}, fmt.Errorf("record version %d, want %d", v, Version)
	}
	if want, got := crc32.Checksum(b[:offChecksum], castagnoli), binary.LittleEndian.Uint32(b[offChecksum:]); want != got {
		return Record{}, fmt.Errorf("checksum %08x, the record's bytes give %08x", got, want)
	}
	return Record{
		Sector:      sector,
		Generation:  int64(binary.LittleEndian.Uint64(b[offGen:])),
		Sequence:    binary.LittleEndian.Uint64(b[offSeq:]),
		MonotonicNS: binary.LittleEndian.Uint64(b[offMono:]),
		Boot:        cstring(b[offBoot : offBoot+lenBoot]),
		Domain:      cstring(b[offDomain : offDomain+lenName]),
		Host:        cstring(b[offHost : offHost+lenName]),
	}, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Run is one writer's stretch of the log.
type Run struct {
	Writer
	Domain                  string
	FirstSector, LastSector int64
	FirstSeq, LastSeq       uint64
	Records                 int
}

// Summary is the log of one disk: its writers in order.
type Summary struct {
	Records int
	Domain  string // "" for an empty log
	Runs    []Run
	End     int64 // the first sector that is not a record (the size in sectors when the disk is full)
	// Violations are the first MaxViolations violations in the order of
	// the log (Verify returns the first); Dropped counts the ones after.
	Violations []*Error
	Dropped    int
}

// MaxViolations bounds Summary.Violations.
const MaxViolations = 32

// maxRunsShown bounds the runs String lists (two writers at once make a
// run of every record).
const maxRunsShown = 16

// Generations are the generations of the runs, in order, once each.
func (s Summary) Generations() []int64 {
	var g []int64
	for _, r := range s.Runs {
		if len(g) == 0 || g[len(g)-1] != r.Generation {
			g = append(g, r.Generation)
		}
	}
	return g
}

func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d records of domain %q, sectors 0-%d, %d runs", s.Records, s.Domain, s.End-1, len(s.Runs))
	for i, r := range s.Runs {
		if i == maxRunsShown {
			fmt.Fprintf(&b, "; %d more runs", len(s.Runs)-i)
			break
		}
		fmt.Fprintf(&b, "; generation %d on host %q (boot %s): %d records, seq %d-%d, sectors %d-%d",
			r.Generation, r.Host, r.Boot, r.Records, r.FirstSeq, r.LastSeq, r.FirstSector, r.LastSector)
	}
	return b.String()
}

// The kinds of violation.
var (
	ErrInvalid     = errors.New("a sector of the log is not a valid record")
	ErrGap         = errors.New("data after the end of the log")
	ErrDomain      = errors.New("records of two domains")
	ErrGeneration  = errors.New("generation decreased: an older generation wrote after a newer one (two writers)")
	ErrInterleaved = errors.New("a writer wrote again after another writer (two writers at once)")
	ErrTwoHosts    = errors.New("one generation written from two hosts (two writers)")
	ErrSequence    = errors.New("sequence did not increase: a writer started before the previous one stopped (two writers at once)")
)

// Error is the first violation Verify found: Kind is one of the Err
// values, Record the offending record (nil for ErrInvalid and ErrGap),
// Previous the record it conflicts with.
type Error struct {
	Kind     error
	Sector   int64
	Record   *Record
	Previous *Record
	Detail   string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("records: sector %d: %v", e.Sector, e.Kind)
	if e.Record != nil {
		s += ": " + e.Record.String()
	}
	if e.Previous != nil {
		s += " after " + e.Previous.String()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *Error) Unwrap() error { return e.Kind }

// Verify reads the disk image at path (a file or a block device) and
// checks its log. The Summary covers every valid record before the end of
// the log even when there is an error.
//
// A guest may be writing the log meanwhile. The image is not read at one
// instant: a sector read while it is being written can be torn, and
// sectors the guest wrote after Verify found the end of the log empty
// look like a gap. Records are written once, in order, so what comes
// before the end is consistent; only ErrInvalid and ErrGap can come from
// reading a log that grows. So when every violation is of those kinds,
// Verify reads the image again (at most rereads times, rereadPause
// apart); damage that stays is reported.
func Verify(path string) (Summary, error) {
	var (
		s   Summary
		err error
	)
	for try := 0; ; try++ {
		s, err = verifyFile(path)
		if try == rereads || !growing(s) {
			return s, err
		}
		time.Sleep(rereadPause)
	}
}

// growing says whether every violation of s may come from reading a log
// while it grows.
func growing(s Summary) bool {
	for _, v := range s.Violations {
		if v.Kind != ErrInvalid && v.Kind != ErrGap {
			return false
		}
	}
	return len(s.Violations) > 0 && s.Dropped == 0
}

const (
	rereads     = 3
	rereadPause = 20 * time.Millisecond
)

func verifyFile(path string) (Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return Summary{}, fmt.Errorf("records: %w", err)
	}
	defer f.Close()
	return VerifyReader(bufio.NewReaderSize(f, 1<<20))
}

// VerifyReader is Verify on an image read from r.
func VerifyReader(r io.Reader) (Summary, error) {
	var (
		s       Summary
		prev    *Record
		ended   bool
		gapped  bool // a gap is reported once
		seen    = map[Writer]bool{}
		hostOf  = map[int64]Record{}
		sector  = make([]byte, SectorSize)
		n       int64
		violate = func(e *Error) {
			if len(s.Violations) < MaxViolations {
				s.Violations = append(s.Violations, e)
			} else {
				s.Dropped++
			}
		}
	)
	for ; ; n++ {
		if _, err := io.ReadFull(r, sector); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return s, fmt.Errorf("records: the image ends inside sector %d (its size is not a multiple of %d)", n, SectorSize)
			}
			return s, fmt.Errorf("records: read sector %d: %w", n, err)
		}
		if ended {
			if !gapped && !allZero(sector) {
				gapped = true
				violate(&Error{Kind: ErrGap, Sector: n, Detail: fmt.Sprintf("the log ends at sector %d", s.End)})
			}
			continue
		}
		if allZero(sector) {
			ended, s.End = true, n
			continue
		}
		rec, err := decode(sector, n)
		if err != nil {
			violate(&Error{Kind: ErrInvalid, Sector: n, Previous: prev, Detail: err.Error()})
			ended, s.End = true, n
			continue
		}
		s.Records++
		if prev == nil {
			s.Domain = rec.Domain
		}
		w := rec.Writer()
		owner, owned := hostOf[rec.Generation]
		switch {
		case rec.Domain != s.Domain:
			violate(&Error{Kind: ErrDomain, Sector: n, Record: &rec, Previous: prev,
				Detail: fmt.Sprintf("domain %q, the log's is %q", rec.Domain, s.Domain)})
		case prev != nil && rec.Generation < prev.Generation:
			violate(&Error{Kind: ErrGeneration, Sector: n, Record: &rec, Previous: prev})
		case prev != nil && w != prev.Writer() && seen[w]:
			last := s.lastOf(w)
			violate(&Error{Kind: ErrInterleaved, Sector: n, Record: &rec, Previous: prev,
				Detail: fmt.Sprintf("this writer's previous record is at sector %d", last)})
		case owned && owner.Host != rec.Host:
			violate(&Error{Kind: ErrTwoHosts, Sector: n, Record: &rec, Previous: &owner})
		case prev != nil && rec.Sequence <= prev.Sequence:
			violate(&Error{Kind: ErrSequence, Sector: n, Record: &rec, Previous: prev})
		}
		if !owned {
			hostOf[rec.Generation] = rec
		}
		seen[w] = true
		if prev == nil || w != prev.Writer() {
			s.Runs = append(s.Runs, Run{Writer: w, Domain: rec.Domain, FirstSector: n, FirstSeq: rec.Sequence})
		}
		run := &s.Runs[len(s.Runs)-1]
		run.LastSector, run.LastSeq = n, rec.Sequence
		run.Records++
		prev = &rec
	}
	if !ended {
		s.End = n
	}
	switch n := len(s.Violations) + s.Dropped; {
	case n == 1:
		return s, s.Violations[0]
	case n > 1:
		return s, fmt.Errorf("%w (and %d more violations)", s.Violations[0], n-1)
	}
	return s, nil
}

// lastOf is the last sector of w's latest run.
func (s Summary) lastOf(w Writer) int64 {
	for i := len(s.Runs) - 1; i >= 0; i-- {
		if s.Runs[i].Writer == w {
			return s.Runs[i].LastSector
		}
	}
	return -1
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
