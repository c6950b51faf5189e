package relocation

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// OpProbe measures the link for the dry run's estimate: after the
// handshake the sender writes data chunks for a moment, the receiver
// writes them into scratch memory as a migration would and answers how
// fast they arrived. Hosts-allow and
// authentication apply as for any operation.
//
// The stream after the Welcome: chunks of a 4-byte big-endian length n
// (1..MaxProbeChunk) and n bytes; a length of 0 ends it. The receiver then
// answers with one ProbeResult message (the handshake's framing).
const OpProbe = "probe"

// Probe bounds.
const (
	MaxProbeChunk = 1 << 20
	// DefaultProbeDuration and DefaultProbeBytes bound what the sender
	// sends (the first reached ends the probe).
	DefaultProbeDuration = 500 * time.Millisecond
	DefaultProbeBytes    = 1 << 30
	// The receiver reads at most MaxProbeBytes within MaxProbeTime.
	MaxProbeBytes = 4 << 30
	MaxProbeTime  = 10 * time.Second
)

// ProbeOptions bound a probe from the sending side.
type ProbeOptions struct {
	Duration time.Duration // DefaultProbeDuration when 0, at most MaxProbeTime/2
	MaxBytes int64         // DefaultProbeBytes when 0, at most MaxProbeBytes
}

// probeWindow is the memory a probe's receiver writes the chunks into,
// over and over: its pages are given back (hole punched) before each
// pass, so that every write allocates as a migration's does while the
// probe never holds more than this.
const probeWindow = 64 << 20

// landing is the receiver's scratch guest memory.
type landing struct {
	fd   int
	off  int64
	busy time.Duration
}

func newLanding() (*landing, error) {
	fd, err := unix.MemfdCreate("ovs-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.Ftruncate(fd, probeWindow); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &landing{fd: fd}, nil
}

func (l *landing) write(p []byte) error {
	start := time.Now()
	defer func() { l.busy += time.Since(start) }()
	if l.off+int64(len(p)) > probeWindow {
		if err := unix.Fallocate(l.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, probeWindow); err != nil {
			return err
		}
		l.off = 0
	}
	for len(p) > 0 {
		n, err := unix.Pwrite(l.fd, p, l.off)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		p, l.off = p[n:], l.off+int64(n)
	}
	return nil
}

func (l *landing) close() { unix.Close(l.fd) }

// Probe runs the sending side on a connection that Dial returned for an
// OpProbe hello, and returns the receiver's measurement.
func Probe(ctx context.Context, c net.Conn, o ProbeOptions) (ProbeResult, error) {
	if o.Duration <= 0 {
		o.Duration = DefaultProbeDuration
	}
	o.Duration = min(o.Duration, MaxProbeTime/2)
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultProbeBytes
	}
	o.MaxBytes = min(o.MaxBytes, MaxProbeBytes)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.SetDeadline(time.Now().Add(MaxProbeTime))
	// Incompressible data, so that no compressing hop flatters the link.
	buf := make([]byte, 4+MaxProbeChunk)
	rng := rand.NewChaCha8([32]byte{'o', 'v', 's'})
	rng.Read(buf[4:])
	binary.BigEndian.PutUint32(buf, MaxProbeChunk)
	var sent int64
	end := time.Now().Add(o.Duration)
	for sent < o.MaxBytes && time.Now().Before(end) {
		n := min(int64(MaxProbeChunk), o.MaxBytes-sent)
		binary.BigEndian.PutUint32(buf, uint32(n))
		if _, err := c.Write(buf[:4+n]); err != nil {
			return ProbeResult{}, probeErr(ctx, "send", err)
		}
		sent += n
	}
	if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
		return ProbeResult{}, probeErr(ctx, "send", err)
	}
	var res ProbeResult
	if err := readMsg(c, &res); err != nil {
		return ProbeResult{}, probeErr(ctx, "read the answer", err)
	}
	if res.Error != "" {
		return res, fmt.Errorf("link probe: the target: %s", res.Error)
	}
	if res.Bytes != sent {
		return res, fmt.Errorf("link probe: the target received %d bytes of %d", res.Bytes, sent)
	}
	return res, nil
}

func probeErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("link probe: %s: %w", what, err)
}

// ServeProbe runs the receiving side: it reads the chunks from r (what
// follows the hello), writes them into a scratch memfd of probeWindow
// bytes and answers on c. It never reads more
// than MaxProbeBytes nor for longer than MaxProbeTime.
func ServeProbe(c net.Conn, r io.Reader) (ProbeResult, error) {
	c.SetDeadline(time.Now().Add(MaxProbeTime))
	defer c.SetDeadline(time.Time{})
	buf := make([]byte, MaxProbeChunk)
	var res ProbeResult
	var first time.Time
	land, lerr := newLanding() // without a memfd the probe measures the link alone
	if lerr == nil {
		defer land.close()
	}
	fail := func(err error) (ProbeResult, error) {
		res.Error = err.Error()
		_ = writeMsg(c, &res)
		return res, err
	}
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return res, fmt.Errorf("link probe: read: %w", err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			break
		}
		if n > MaxProbeChunk {
			return fail(fmt.Errorf("chunk of %d bytes is above the %d allowed", n, MaxProbeChunk))
		}
		if res.Bytes+int64(n) > MaxProbeBytes {
			return fail(fmt.Errorf("more than the %d bytes a probe may send", int64(MaxProbeBytes)))
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return res, fmt.Errorf("link probe: read: %w", err)
		}
		if land != nil {
			if err := land.write(buf[:n]); err != nil {
				return fail(fmt.Errorf("write into memory: %w", err))
			}
		}
		res.Bytes += int64(n)
	}
	res.Duration = time.Since(first)
	if res.Duration > 0 {
		res.Throughput = float64(res.Bytes) / res.Duration.Seconds()
	}
	if land != nil && land.busy > 0 {
		res.Landed, res.MemoryWriteRate = true, float64(res.Bytes)/land.busy.Seconds()
	}
	if res.Bytes == 0 {
		return fail(errors.New("the probe sent no data"))
	}
	if err := writeMsg(c, &res); err != nil {
		return res, fmt.Errorf("link probe: answer: %w", err)
	}
	return res, nil
}
