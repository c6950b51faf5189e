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
)

// OpProbe measures the link for the dry run's estimate: after the
// handshake the sender writes data chunks for a moment, the receiver
// discards them and answers how fast they arrived. Hosts-allow and
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

// ProbeResult is what the receiver measured.
type ProbeResult struct {
	Bytes int64 `json:"bytes"`
	// Duration runs from the first chunk's arrival to the end marker's.
	Duration   time.Duration `json:"duration_ns"`
	Throughput float64       `json:"throughput"` // bytes per second
	Error      string        `json:"error,omitempty"`
}

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
// follows the hello), discards them and answers on w. It never reads more
// than MaxProbeBytes nor for longer than MaxProbeTime.
func ServeProbe(c net.Conn, r io.Reader) (ProbeResult, error) {
	c.SetDeadline(time.Now().Add(MaxProbeTime))
	defer c.SetDeadline(time.Time{})
	buf := make([]byte, MaxProbeChunk)
	var res ProbeResult
	var first time.Time
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
		res.Bytes += int64(n)
	}
	res.Duration = time.Since(first)
	if res.Duration > 0 {
		res.Throughput = float64(res.Bytes) / res.Duration.Seconds()
	}
	if res.Bytes == 0 {
		return fail(errors.New("the probe sent no data"))
	}
	if err := writeMsg(c, &res); err != nil {
		return res, fmt.Errorf("link probe: answer: %w", err)
	}
	return res, nil
}
