package ramcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"time"
)

// PageSize is the page the target mends and counts: the guest's 4 KiB.
const PageSize = 4096

const (
	// DefaultChunkSize is the unit of comparison (BenchmarkRound: smaller
	// chunks hash slower and send more checksums, larger ones resend more
	// for a scattered page).
	DefaultChunkSize = 64 << 10
	// MaxChunkSize bounds Options.ChunkSize and so every Chunk frame.
	MaxChunkSize = 16 << 20
	// DefaultMaxResend is Options.MaxResend when it is zero.
	DefaultMaxResend = 64 << 20
)

var (
	// ErrTooDifferent: more than MaxResend bytes of RAM differ (the
	// smaller of the two sides' MaxResend); nothing was written into the
	// target's RAM. Abort the migration and resume the source.
	ErrTooDifferent = errors.New("source and target RAM differ by more than the check may resend")
	// ErrMismatch: the two sides' RAM size, chunk size, page size or
	// protocol version differ, so their RAM cannot be compared.
	ErrMismatch = errors.New("source and target cannot compare their RAM")
	// ErrSourceChanged: a chunk of the source's RAM changed during the
	// check, so the source was not paused.
	ErrSourceChanged = errors.New("the source's RAM changed during the check: is the source paused?")
	// ErrStillDifferent: after the resend, a mended chunk of the target
	// still differs from the source's (or its data arrived corrupt).
	ErrStillDifferent = errors.New("the target's RAM still differs after the resend")
	// ErrProtocol: the peer sent something this protocol does not allow
	// (a wrong type, a length out of bounds, a bad index or checksum).
	ErrProtocol = errors.New("ramcheck protocol violation")
)

// Options tune a check. The zero value is the default.
type Options struct {
	// ChunkSize is the unit of comparison and resend, a multiple of
	// PageSize up to MaxChunkSize (0: DefaultChunkSize). Both sides must
	// use the same, or the check ends with ErrMismatch.
	ChunkSize int
	// Workers is the number of goroutines hashing the RAM (0: GOMAXPROCS).
	Workers int
	// MaxResend is how many bytes may be resent before the check gives up
	// with ErrTooDifferent (0: DefaultMaxResend). The target announces its
	// own in Hello and the source applies the smaller of the two.
	MaxResend uint64
}

// Result says what a check found and mended; both sides report the same
// counts (the source learns DifferentPages from the target's Verdict).
type Result struct {
	Chunks          int           // chunks compared
	DifferentChunks int           // chunks whose checksums differed
	DifferentPages  int           // 4 KiB pages written into the target
	BytesResent     uint64        // bytes of chunk data sent again
	Duration        time.Duration // from the call to its return
}

// session is one side of one check.
type session struct {
	ctx       context.Context
	side      string
	w         *wire
	ram       []byte
	g         geometry
	workers   int
	maxResend uint64
	start     time.Time
	release   func()
}

func newSession(ctx context.Context, side string, conn io.ReadWriter, ram []byte, o Options) (*session, error) {
	s := &session{ctx: ctx, side: side, ram: ram, start: time.Now(),
		workers: o.Workers, maxResend: o.MaxResend}
	chunk := o.ChunkSize
	if chunk == 0 {
		chunk = DefaultChunkSize
	}
	if chunk < PageSize || chunk > MaxChunkSize || chunk%PageSize != 0 {
		return nil, fmt.Errorf("ramcheck: %s: chunk size %d is not a multiple of %d up to %d", side, chunk, PageSize, MaxChunkSize)
	}
	if len(ram) == 0 || len(ram)%PageSize != 0 {
		return nil, fmt.Errorf("ramcheck: %s: RAM of %d bytes is not a positive multiple of %d", side, len(ram), PageSize)
	}
	if uint64(len(ram)+chunk-1)/uint64(chunk) > math.MaxUint32 {
		return nil, fmt.Errorf("ramcheck: %s: RAM of %d bytes has more than 2^32 chunks of %d: use a larger ChunkSize", side, len(ram), chunk)
	}
	s.g = newGeometry(len(ram), chunk)
	if s.workers <= 0 {
		s.workers = runtime.GOMAXPROCS(0)
	}
	if s.maxResend == 0 {
		s.maxResend = DefaultMaxResend
	}
	s.w = newWire(conn)
	s.release = watch(ctx, conn)
	return s, nil
}

func (s *session) params() params {
	return params{version: Version, pageSize: PageSize, chunkSize: uint32(s.g.chunkSize),
		ramSize: uint64(s.g.size), maxResend: s.maxResend}
}

// finish stamps the duration, undoes watch and puts the side and, when
// ctx ended the check, ctx's error on err.
func (s *session) finish(res Result, err error) (Result, error) {
	s.release()
	res.Duration = time.Since(s.start)
	if err == nil {
		return res, nil
	}
	if ctxErr := s.ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	return res, fmt.Errorf("ramcheck: %s: %w", s.side, err)
}

// resendBytes is how many bytes the chunks list covers.
func (s *session) resendBytes(chunks []int) uint64 {
	var n uint64
	for _, i := range chunks {
		lo, hi := s.g.bounds(i)
		n += uint64(hi - lo)
	}
	return n
}

type deadliner interface{ SetDeadline(time.Time) error }

// watch makes ctx interrupt blocking I/O on conn (doc.go, Cancelling) and
// returns the function that undoes it; after that returns, nothing
// touches conn on ctx's behalf.
func watch(ctx context.Context, conn io.ReadWriter) func() {
	d, hasDeadline := conn.(deadliner)
	if dl, ok := ctx.Deadline(); ok && hasDeadline {
		d.SetDeadline(dl)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		if hasDeadline {
			d.SetDeadline(time.Unix(1, 0))
		} else if c, ok := conn.(io.Closer); ok {
			c.Close()
		}
	})
	return func() {
		if !stop() {
			<-fired
		}
		if hasDeadline {
			d.SetDeadline(time.Time{})
		}
	}
}
