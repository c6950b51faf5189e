package test

import (
	"net"
	"sync"
	"testing"
)

// partitionProxy stands between one agent and one etcd member, so that a test
// can cut that agent off from etcd while the rest of the pool goes on: a
// network partition of one host, as iptables DROP on its etcd client
// ports would make one. While cut it forwards nothing in either
// direction and connects nowhere; what was sent meanwhile is delivered
// when the cut is mended, as TCP's retransmissions would deliver it
// (without their backoff). HoldReplies cuts one way only: requests go
// on, etcd's answers are kept back until released. It listens on
// 127.0.0.1 and is closed, with every connection it holds, when the test
// ends.
type partitionProxy struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	open *sync.Cond
	cut  bool
	done bool
	// While held, what the target answers (a reply) is kept back unless
	// released: replies counts the reply chunks read, released those let
	// through.
	held              bool
	replies, released int64
	conns             map[net.Conn]struct{}
	wg                sync.WaitGroup
}

func newPartitionProxy(t *testing.T, target string) *partitionProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &partitionProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.open = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// URL is the proxy's etcd client URL.
func (p *partitionProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Cut stops all traffic; Mend lets it flow again (held replies too).
func (p *partitionProxy) Cut()  { p.set(true) }
func (p *partitionProxy) Mend() { p.set(false) }

func (p *partitionProxy) set(cut bool) {
	p.mu.Lock()
	p.cut, p.held = cut, false
	p.mu.Unlock()
	p.open.Broadcast()
}

// HoldReplies lets requests through and keeps back what the target
// answers from now on, until ReleaseUpTo or Mend: a request is carried
// out while its caller hears nothing.
func (p *partitionProxy) HoldReplies() {
	p.mu.Lock()
	p.held, p.released = true, p.replies
	p.mu.Unlock()
	p.open.Broadcast()
}

// Replies counts the reply chunks read from the target so far (each
// numbered in turn from 1).
func (p *partitionProxy) Replies() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.replies
}

// ReleaseUpTo lets the held reply chunks numbered up to n through and
// goes on holding the later ones.
func (p *partitionProxy) ReleaseUpTo(n int64) {
	p.mu.Lock()
	p.released = max(p.released, n)
	p.mu.Unlock()
	p.open.Broadcast()
}

// wait blocks while the proxy is cut, or while reply chunk seq (0: a
// request) is held; false once the proxy is closed.
func (p *partitionProxy) wait(seq int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for (p.cut || (seq > 0 && p.held && seq > p.released)) && !p.done {
		p.open.Wait()
	}
	return !p.done
}

func (p *partitionProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *partitionProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *partitionProxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	if !p.wait(0) {
		return
	}
	d, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(d) {
		return
	}
	defer d.Close()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.pipe(d, c, false)
		d.Close()
		c.Close()
	}()
	p.pipe(c, d, true)
}

// pipe copies src to dst, holding each chunk while the proxy is cut (and
// each reply chunk while replies are held).
func (p *partitionProxy) pipe(dst, src net.Conn, reply bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			var seq int64
			if reply {
				p.mu.Lock()
				p.replies++
				seq = p.replies
				p.mu.Unlock()
			}
			if !p.wait(seq) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or closed
		}
	}
}

func (p *partitionProxy) close() {
	p.mu.Lock()
	p.done = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	p.open.Broadcast()
	p.ln.Close()
	for c := range conns {
		c.Close()
	}
	p.wg.Wait()
}
