package pagexfer

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// streamWriter writes records on its own goroutine, so reading and
// encoding the next batch overlaps with writing the previous one. Batch
// buffers circulate through free; the encoder blocks on free when the
// writer falls behind (that is the back-pressure). A rate limit, when set,
// is applied in chunks of at most the limiter's burst.
type streamWriter struct {
	ctx     context.Context // cancelled by the caller's context or by close(false)
	cancel  context.CancelFunc
	w       io.Writer
	lim     *rate.Limiter
	jobs    chan writeJob
	free    chan []byte
	failed  chan struct{} // closed after the first error; err is set before
	err     error
	done    chan struct{}
	written atomic.Uint64
}

type writeJob struct {
	rec   []byte
	buf   []byte     // pool buffer to return once rec is written (nil for small records)
	flush chan error // answered when every earlier job is written
}

// newStreamWriter starts the writer with nbuf pool buffers of bufSize
// bytes. limit is in bytes per second (0: unlimited).
func newStreamWriter(ctx context.Context, w io.Writer, limit float64, nbuf, bufSize int) *streamWriter {
	ctx, cancel := context.WithCancel(ctx)
	s := &streamWriter{
		ctx:    ctx,
		cancel: cancel,
		w:      w,
		jobs:   make(chan writeJob, nbuf+4),
		free:   make(chan []byte, nbuf),
		failed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	if limit > 0 {
		s.lim = rate.NewLimiter(rate.Limit(limit), limiterBurst(limit))
	}
	for i := 0; i < nbuf; i++ {
		s.free <- make([]byte, bufSize)
	}
	go s.run()
	return s
}

// limiterBurst picks the token bucket size for a rate: about 1/16 s of
// traffic, between one page and 1 MiB, so the cap holds over short windows
// and writes stay large.
func limiterBurst(limit float64) int {
	b := int(limit / 16)
	return max(PageSize, min(b, 1<<20))
}

func (s *streamWriter) run() {
	defer close(s.done)
	for j := range s.jobs {
		if j.rec != nil && s.err == nil {
			if err := s.write(j.rec); err != nil {
				if e := s.ctx.Err(); e != nil {
					err = e
				}
				s.err = err
				close(s.failed)
			}
		}
		if j.buf != nil {
			s.free <- j.buf
		}
		if j.flush != nil {
			j.flush <- s.err
		}
	}
}

func (s *streamWriter) write(p []byte) error {
	for len(p) > 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
		n := len(p)
		if s.lim != nil {
			n = min(n, s.lim.Burst())
			if err := s.lim.WaitN(s.ctx, n); err != nil {
				if e := s.ctx.Err(); e != nil {
					return e
				}
				return fmt.Errorf("write stream: rate limit: %w", err)
			}
		}
		m, err := s.w.Write(p[:n])
		s.written.Add(uint64(m))
		if err != nil {
			return fmt.Errorf("write stream: %w", err)
		}
		if m != n {
			return fmt.Errorf("write stream: %w", io.ErrShortWrite)
		}
		p = p[n:]
	}
	return nil
}

func (s *streamWriter) fail() error {
	if e := s.ctx.Err(); e != nil {
		return e
	}
	return s.err
}

// get returns a free batch buffer.
func (s *streamWriter) get() ([]byte, error) {
	select {
	case <-s.failed:
		return nil, s.fail()
	default:
	}
	select {
	case b := <-s.free:
		return b, nil
	case <-s.failed:
		return nil, s.fail()
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

// put queues a record; buf (may be nil) goes back to the pool once the
// record is written.
func (s *streamWriter) put(rec, buf []byte) error {
	return s.queue(writeJob{rec: rec, buf: buf})
}

func (s *streamWriter) queue(j writeJob) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.failed:
		return s.fail()
	default:
	}
	select {
	case s.jobs <- j:
		return nil
	case <-s.failed:
		return s.fail()
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// flush waits until everything queued so far is written.
func (s *streamWriter) flush() error {
	ch := make(chan error, 1)
	if err := s.queue(writeJob{flush: ch}); err != nil {
		return err
	}
	select {
	case err := <-ch:
		if err != nil {
			return s.fail()
		}
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// close ends the writer goroutine. With wait it lets the goroutine drain
// its queue and waits for it. Without, it abandons the queue: nothing more
// is written, and the goroutine is not waited for (it may be blocked in a
// Write that only the caller can unblock, by closing the writer).
func (s *streamWriter) close(wait bool) {
	if !wait {
		s.cancel()
	}
	close(s.jobs)
	if wait {
		<-s.done
		s.cancel()
	}
}
