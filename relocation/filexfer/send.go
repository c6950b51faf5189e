package filexfer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// SourceFile is a file to send and the name it gets on the receiver.
type SourceFile struct {
	Path string
	Name string
}

// Progress is a copy's progress, as both sides see it.
type Progress struct {
	Total   int64 // data bytes of all files (holes excluded)
	Resumed int64 // data bytes the receiver had from an interrupted copy
	Done    int64 // data bytes covered so far, Resumed included
	Sent    int64 // bytes on the wire
	File    string
	Elapsed time.Duration
}

// Rate is the wire throughput in bytes/s.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Sent) / p.Elapsed.Seconds()
}

// SendOptions configure Send.
type SendOptions struct {
	Migration string
	Domain    string // UUID
	// RateLimit caps the wire rate in bytes/s (0: none).
	RateLimit int64
	// Progress is called now and then, and once at the end.
	Progress func(Progress)
}

// SendResult is what Send reports.
type SendResult struct {
	Progress
	Digests []string // per file, in order
}

// Send writes the offline-transfer stream of files to rw, reads where the
// receiver resumes, sends the rest and waits for the receiver's
// verification. On a cancelled ctx it tells the receiver to drop the copy.
// After a nil error the caller may exchange messages (WriteMessage,
// ReadMessage) on rw.
func Send(ctx context.Context, rw io.ReadWriter, files []SourceFile, o SendOptions) (*SendResult, error) {
	s := &sender{o: o, files: files, start: time.Now(), opened: make([]*os.File, len(files))}
	defer s.closeFiles()
	total, err := s.openFiles()
	if err != nil {
		return nil, err
	}
	if err := s.handshake(rw); err != nil {
		return nil, err
	}
	s.p = Progress{Total: total}

	// The reader goroutine reads and hashes blocks; this one writes them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.cancel = cancel
	s.items = make(chan *sendItem, 4)
	s.free = make(chan []byte, 6)
	for range 6 {
		s.free <- make([]byte, BlockSize)
	}
	s.digests = make([]string, len(files))
	go s.readFiles(ctx)

	if err := s.writeItems(ctx); err != nil {
		return s.fail(err)
	}
	if ctx.Err() != nil {
		return s.fail(ctx.Err())
	}
	if s.readErr != nil {
		return s.fail(s.readErr)
	}
	if err := writeRecord(s.w, kindEnd); err != nil {
		return s.fail(err)
	}
	if err := s.bw.Flush(); err != nil {
		return nil, err
	}
	s.report(true)
	return s.verified(rw)
}

// sender is one Send: the files, the stream's writers and the progress
// shared by the reader goroutine and the writing one.
type sender struct {
	o       SendOptions
	files   []SourceFile
	opened  []*os.File
	h       Header
	res     Resume
	start   time.Time
	bw      *bufio.Writer
	cw      *countingWriter
	w       io.Writer // cw, rate limited if asked
	cancel  context.CancelFunc
	items   chan *sendItem
	free    chan []byte
	digests []string
	readErr error // set by the reader before it closes items
	head    [blockHead]byte
	last    time.Time // of the last progress report

	pmu sync.Mutex
	p   Progress
}

// sendItem is what the reader hands the writer: a block, or a file's end.
type sendItem struct {
	file   int
	block  uint64
	bitmap [PagesPerBlock / 8]byte
	sum    [32]byte
	data   []byte
	end    bool // file end: sum is the digest
}

func (s *sender) closeFiles() {
	for _, f := range s.opened {
		if f != nil {
			f.Close()
		}
	}
}

// openFiles opens every file and builds the header; it returns the data
// bytes of all files.
func (s *sender) openFiles() (int64, error) {
	s.h = Header{Migration: s.o.Migration, Domain: s.o.Domain, BlockSize: BlockSize}
	var total int64
	for i, sf := range s.files {
		if err := ValidateName(sf.Name); err != nil {
			return 0, err
		}
		f, err := os.Open(sf.Path)
		if err != nil {
			return 0, err
		}
		s.opened[i] = f
		st, err := f.Stat()
		if err != nil {
			return 0, err
		}
		if !st.Mode().IsRegular() {
			return 0, fmt.Errorf("%s is not a regular file", sf.Path)
		}
		data, err := DataBytes(f, st.Size())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", sf.Path, err)
		}
		total += data
		s.h.Files = append(s.h.Files, File{Name: sf.Name, Size: st.Size(), ModTime: st.ModTime().UnixNano(), Data: data})
	}
	return total, s.h.Validate()
}

// handshake sets up the writers, sends the preamble and the header and
// reads where the receiver resumes each file.
func (s *sender) handshake(rw io.ReadWriter) error {
	s.bw = bufio.NewWriterSize(rw, 256<<10)
	s.cw = &countingWriter{w: s.bw}
	s.w = s.cw
	if s.o.RateLimit > 0 {
		s.w = &limitedWriter{w: s.cw, lim: rate.NewLimiter(rate.Limit(s.o.RateLimit), 256<<10)}
	}
	if err := writePreamble(s.w); err != nil {
		return err
	}
	if err := writeJSON(s.w, kindHeader, &s.h); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if err := readJSON(rw, kindResume, &s.res); err != nil {
		return fmt.Errorf("read the receiver's resume points: %w", err)
	}
	if len(s.res.Files) != len(s.files) {
		return fmt.Errorf("receiver answered for %d files, %d were offered", len(s.res.Files), len(s.files))
	}
	for i, rf := range s.res.Files {
		if rf.NextBlock > numBlocks(s.h.Files[i].Size) {
			return fmt.Errorf("receiver resumes %s at block %d of %d", s.h.Files[i].Name, rf.NextBlock, numBlocks(s.h.Files[i].Size))
		}
	}
	return nil
}

// report calls o.Progress at most every 200 ms, or now if force.
func (s *sender) report(force bool) {
	if s.o.Progress == nil {
		return
	}
	if !force && time.Since(s.last) < 200*time.Millisecond {
		return
	}
	s.last = time.Now()
	s.pmu.Lock()
	q := s.p
	s.pmu.Unlock()
	q.Sent, q.Elapsed = s.cw.n, time.Since(s.start)
	s.o.Progress(q)
}

// addDone adds to the progress's Done (and Resumed, for a prefix the
// receiver already has).
func (s *sender) addDone(n int64, resumed bool) {
	s.pmu.Lock()
	if resumed {
		s.p.Resumed += n
	}
	s.p.Done += n
	s.pmu.Unlock()
}

// readFiles is the reader goroutine: it hands every block to send, and
// every file's end, to the writer, and closes items when it stops.
func (s *sender) readFiles(ctx context.Context) {
	defer close(s.items)
	for i, f := range s.opened {
		sum, err := s.readFile(ctx, i, f)
		if err != nil {
			s.readErr = err
			return
		}
		s.digests[i] = FormatDigest(sum)
		select {
		case s.items <- &sendItem{file: i, end: true, sum: sum}:
		case <-ctx.Done():
			return
		}
	}
}

// readFile reads file i from the receiver's resume point and returns its
// digest.
func (s *sender) readFile(ctx context.Context, i int, f *os.File) ([32]byte, error) {
	size := s.h.Files[i].Size
	d := newDigester(size)
	r := newBlockReader(f, size)
	first := s.res.Files[i].NextBlock
	s.pmu.Lock()
	s.p.File = s.h.Files[i].Name
	s.pmu.Unlock()
	if first > 0 {
		if err := s.digestPrefix(ctx, f, size, first, d, r); err != nil {
			return [32]byte{}, err
		}
	}
	var covered, last int64
	err := extents(ctx, f, size, first, &covered, func(b uint64) error {
		it := &sendItem{file: i, block: b}
		select {
		case it.data = <-s.free:
		case <-ctx.Done():
			return ctx.Err()
		}
		data, zero, err := r.read(b, &it.bitmap)
		if err != nil {
			return err
		}
		s.addDone(covered-last, false)
		last = covered
		if zero {
			s.free <- it.data
			return nil
		}
		it.data = it.data[:copy(it.data[:cap(it.data)], data)]
		it.sum = sha256.Sum256(it.data)
		d.block(b, it.sum)
		select {
		case s.items <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
		return nil
	})
	if err != nil {
		return [32]byte{}, fmt.Errorf("read %s: %w", s.files[i].Path, err)
	}
	s.addDone(covered-last, false)
	return d.sum(), nil
}

// digestPrefix hashes the blocks below first: the receiver's prefix is not
// sent, but it is part of the digest the receiver checks against.
func (s *sender) digestPrefix(ctx context.Context, f *os.File, size int64, first uint64, d *digester, r *blockReader) error {
	var covered int64
	err := extents(ctx, f, size, 0, &covered, func(b uint64) error {
		if b >= first {
			return errStop
		}
		var bm [PagesPerBlock / 8]byte
		data, zero, err := r.read(b, &bm)
		if err == nil && !zero {
			d.block(b, sha256.Sum256(data))
		}
		return err
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	s.addDone(covered, true)
	return nil
}

// writeItems writes what the reader hands over until it stops or ctx is
// cancelled; it returns the first write error.
func (s *sender) writeItems(ctx context.Context) error {
	for it := range s.items {
		if ctx.Err() != nil {
			break // the abort must start at a record boundary
		}
		if it.end {
			var b [4 + 32]byte
			binary.LittleEndian.PutUint32(b[:], uint32(it.file))
			copy(b[4:], it.sum[:])
			if err := writeRecord(s.w, kindFileEnd, b[:]); err != nil {
				return err
			}
			continue
		}
		err := s.writeBlock(it)
		s.free <- it.data[:cap(it.data)]
		if err != nil {
			return err
		}
		s.report(false)
	}
	return nil
}

// writeBlock writes one block record: its head, then each run of set
// pages as one slice.
func (s *sender) writeBlock(it *sendItem) error {
	head := s.head[:]
	binary.LittleEndian.PutUint32(head[0:], uint32(it.file))
	binary.LittleEndian.PutUint64(head[4:], it.block)
	copy(head[12:], it.bitmap[:])
	copy(head[12+PagesPerBlock/8:], it.sum[:])
	bodies := [][]byte{head}
	n := len(it.data)
	for pg := 0; pg*PageSize < n; {
		if it.bitmap[pg/8]&(1<<(pg%8)) == 0 {
			pg++
			continue
		}
		run := pg
		for run*PageSize < n && it.bitmap[run/8]&(1<<(run%8)) != 0 {
			run++
		}
		bodies = append(bodies, it.data[pg*PageSize:min(run*PageSize, n)])
		pg = run
	}
	return writeRecord(s.w, kindBlock, bodies...)
}

// fail stops the reader and tells the receiver to drop the copy.
func (s *sender) fail(err error) (*SendResult, error) {
	s.cancel()
	for range s.items {
	}
	reason := err.Error()
	if errors.Is(err, context.Canceled) {
		reason = "cancelled"
	}
	_ = WriteAbort(s.cw, reason) // not rate limited: the peer must hear it
	_ = s.bw.Flush()
	return nil, err
}

// verified reads the receiver's verification and checks its digests
// against this host's.
func (s *sender) verified(rw io.ReadWriter) (*SendResult, error) {
	var v Verified
	if err := readJSON(rw, kindVerified, &v); err != nil {
		return nil, fmt.Errorf("read the receiver's verification: %w", err)
	}
	if !v.OK {
		return nil, fmt.Errorf("the receiver rejected the copy: %s", v.Error)
	}
	for i := range s.digests {
		if i >= len(v.Digests) || v.Digests[i] != s.digests[i] {
			return nil, fmt.Errorf("the receiver's digest of %s differs from this host's", s.h.Files[i].Name)
		}
	}
	s.pmu.Lock()
	out := &SendResult{Progress: s.p, Digests: s.digests}
	s.pmu.Unlock()
	out.Sent, out.Elapsed = s.cw.n, time.Since(s.start)
	return out, nil
}

var errStop = errors.New("stop")

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// limitedWriter paces writes to a token bucket. It never gives up in the
// middle of a write (a cancel takes effect between records, so that the
// abort record can follow), and waits at most a burst's time per chunk.
type limitedWriter struct {
	w   io.Writer
	lim *rate.Limiter
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	done := 0
	for done < len(b) {
		n := min(len(b)-done, l.lim.Burst())
		if err := l.lim.WaitN(context.Background(), n); err != nil {
			return done, err
		}
		k, err := l.w.Write(b[done : done+n])
		done += k
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
