package ramcheck

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

// tcpPair is a loopback TCP connection: the target's end and the source's.
func tcpPair(t testing.TB) (target, source net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	source, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	target = <-accepted
	if target == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { target.Close(); source.Close() })
	return target, source
}

func randomRAM(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// spoil changes one byte in each of the given pages of ram.
func spoil(ram []byte, pages ...int) {
	for _, p := range pages {
		ram[p*PageSize+p%PageSize] ^= 0x5a
	}
}

type outcome struct {
	src, dst       Result
	srcErr, dstErr error
}

// check runs Source over src and Target over dst on the two ends of one
// connection, concurrently, and returns both outcomes.
func check(ctx context.Context, tc, sc io.ReadWriter, src, dst []byte, so, to Options) outcome {
	var o outcome
	var wg sync.WaitGroup
	wg.Go(func() { o.src, o.srcErr = Source(ctx, sc, src, so) })
	wg.Go(func() { o.dst, o.dstErr = Target(ctx, tc, dst, to) })
	wg.Wait()
	return o
}

func checkTCP(t testing.TB, src, dst []byte, so, to Options) outcome {
	tc, sc := tcpPair(t)
	return check(context.Background(), tc, sc, src, dst, so, to)
}

// recorder is a conn that reads from a script and records what is written.
type recorder struct {
	r io.Reader
	w bytes.Buffer
}

func (c *recorder) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *recorder) Write(p []byte) (int, error) { return c.w.Write(p) }

// peer is a hand-driven end of the protocol for the tests that play a
// misbehaving source or target.
type peer struct {
	conn net.Conn
	w    *wire
}

func newPeer(c net.Conn) *peer { return &peer{conn: c, w: newWire(c)} }

func (p *peer) flush(t testing.TB) {
	t.Helper()
	if err := p.w.flush("test message"); err != nil {
		t.Error(err)
	}
}

// frame sends a raw frame header with any type and length.
func (p *peer) frame(t testing.TB, typ msgType, length uint32, payload []byte) {
	p.w.hdr[0] = byte(typ)
	p.w.hdr[1], p.w.hdr[2], p.w.hdr[3], p.w.hdr[4] = byte(length>>24), byte(length>>16), byte(length>>8), byte(length)
	p.w.w.Write(p.w.hdr[:])
	p.w.w.Write(payload)
	p.flush(t)
}
