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
	start := time.Now()
	opened := make([]*os.File, len(files))
	defer func() {
		for _, f := range opened {
			if f != nil {
				f.Close()
			}
		}
	}()
	h := Header{Migration: o.Migration, Domain: o.Domain, BlockSize: BlockSize}
	var total int64
	for i, sf := range files {
		if err := ValidateName(sf.Name); err != nil {
			return nil, err
		}
		f, err := os.Open(sf.Path)
		if err != nil {
			return nil, err
		}
		opened[i] = f
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", sf.Path)
		}
		data, err := DataBytes(f, st.Size())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sf.Path, err)
		}
		total += data
		h.Files = append(h.Files, File{Name: sf.Name, Size: st.Size(), ModTime: st.ModTime().UnixNano(), Data: data})
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(rw, 256<<10)
	cw := &countingWriter{w: bw}
	var w io.Writer = cw
	if o.RateLimit > 0 {
		w = &limitedWriter{w: cw, lim: rate.NewLimiter(rate.Limit(o.RateLimit), 256<<10)}
	}
	if err := writePreamble(w); err != nil {
		return nil, err
	}
	if err := writeJSON(w, kindHeader, &h); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	var res Resume
	if err := readJSON(rw, kindResume, &res); err != nil {
		return nil, fmt.Errorf("read the receiver's resume points: %w", err)
	}
	if len(res.Files) != len(files) {
		return nil, fmt.Errorf("receiver answered for %d files, %d were offered", len(res.Files), len(files))
	}
	for i, rf := range res.Files {
		if rf.NextBlock > numBlocks(h.Files[i].Size) {
			return nil, fmt.Errorf("receiver resumes %s at block %d of %d", h.Files[i].Name, rf.NextBlock, numBlocks(h.Files[i].Size))
		}
	}

	p := Progress{Total: total}
	var pmu sync.Mutex
	report := func(force bool, last *time.Time) {
		if o.Progress == nil {
			return
		}
		if !force && time.Since(*last) < 200*time.Millisecond {
			return
		}
		*last = time.Now()
		pmu.Lock()
		q := p
		pmu.Unlock()
		q.Sent, q.Elapsed = cw.n, time.Since(start)
		o.Progress(q)
	}

	// The reader goroutine reads and hashes blocks; this one writes them.
	type item struct {
		file   int
		block  uint64
		bitmap [PagesPerBlock / 8]byte
		sum    [32]byte
		data   []byte
		end    bool // file end: sum is the digest
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan *item, 4)
	free := make(chan []byte, 6)
	for range 6 {
		free <- make([]byte, BlockSize)
	}
	var readErr error
	digests := make([]string, len(files))
	go func() {
		defer close(items)
		for i, f := range opened {
			size := h.Files[i].Size
			d := newDigester(size)
			r := newBlockReader(f, size)
			first := res.Files[i].NextBlock
			pmu.Lock()
			p.File = h.Files[i].Name
			pmu.Unlock()
			// The receiver's prefix is not sent, but it is part of the
			// digest the receiver checks against.
			var covered int64
			if first > 0 {
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
					readErr = err
					return
				}
				pmu.Lock()
				p.Resumed += covered
				p.Done += covered
				pmu.Unlock()
			}
			var last int64
			covered = 0
			err := extents(ctx, f, size, first, &covered, func(b uint64) error {
				it := &item{file: i, block: b}
				select {
				case it.data = <-free:
				case <-ctx.Done():
					return ctx.Err()
				}
				data, zero, err := r.read(b, &it.bitmap)
				if err != nil {
					return err
				}
				pmu.Lock()
				p.Done += covered - last
				pmu.Unlock()
				last = covered
				if zero {
					free <- it.data
					return nil
				}
				it.data = it.data[:copy(it.data[:cap(it.data)], data)]
				it.sum = sha256.Sum256(it.data)
				d.block(b, it.sum)
				select {
				case items <- it:
				case <-ctx.Done():
					return ctx.Err()
				}
				return nil
			})
			if err != nil {
				readErr = fmt.Errorf("read %s: %w", files[i].Path, err)
				return
			}
			pmu.Lock()
			p.Done += covered - last
			pmu.Unlock()
			sum := d.sum()
			digests[i] = FormatDigest(sum)
			select {
			case items <- &item{file: i, end: true, sum: sum}:
			case <-ctx.Done():
				return
			}
		}
	}()

	var last time.Time
	var head [blockHead]byte
	fail := func(err error) (*SendResult, error) {
		cancel()
		for range items {
		}
		reason := err.Error()
		if errors.Is(err, context.Canceled) {
			reason = "cancelled"
		}
		_ = WriteAbort(cw, reason) // not rate limited: the peer must hear it
		_ = bw.Flush()
		return nil, err
	}
	for it := range items {
		if ctx.Err() != nil {
			break // the abort must start at a record boundary
		}
		if it.end {
			var b [4 + 32]byte
			binary.LittleEndian.PutUint32(b[:], uint32(it.file))
			copy(b[4:], it.sum[:])
			if err := writeRecord(w, kindFileEnd, b[:]); err != nil {
				return fail(err)
			}
			continue
		}
		binary.LittleEndian.PutUint32(head[0:], uint32(it.file))
		binary.LittleEndian.PutUint64(head[4:], it.block)
		copy(head[12:], it.bitmap[:])
		copy(head[12+PagesPerBlock/8:], it.sum[:])
		bodies := [][]byte{head[:]}
		n := len(it.data)
		// Coalesce runs of set pages into one slice each.
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
		err := writeRecord(w, kindBlock, bodies...)
		free <- it.data[:cap(it.data)]
		if err != nil {
			return fail(err)
		}
		report(false, &last)
	}
	if ctx.Err() != nil {
		return fail(ctx.Err())
	}
	if readErr != nil {
		return fail(readErr)
	}
	if err := writeRecord(w, kindEnd); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	report(true, &last)
	var v Verified
	if err := readJSON(rw, kindVerified, &v); err != nil {
		return nil, fmt.Errorf("read the receiver's verification: %w", err)
	}
	if !v.OK {
		return nil, fmt.Errorf("the receiver rejected the copy: %s", v.Error)
	}
	for i := range digests {
		if i >= len(v.Digests) || v.Digests[i] != digests[i] {
			return nil, fmt.Errorf("the receiver's digest of %s differs from this host's", h.Files[i].Name)
		}
	}
	pmu.Lock()
	out := &SendResult{Progress: p, Digests: digests}
	pmu.Unlock()
	out.Sent, out.Elapsed = cw.n, time.Since(start)
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
