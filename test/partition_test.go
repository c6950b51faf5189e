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
// (without their backoff). It listens on 127.0.0.1 and is closed, with
// every connection it holds, when the test ends.
type partitionProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	open  *sync.Cond
	cut   bool
	done  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
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

// Cut stops all traffic; Mend lets it flow again.
func (p *partitionProxy) Cut()  { p.set(true) }
func (p *partitionProxy) Mend() { p.set(false) }

func (p *partitionProxy) set(cut bool) {
	p.mu.Lock()
	p.cut = cut
	p.mu.Unlock()
	p.open.Broadcast()
}

// wait blocks while the proxy is cut; false once it is closed.
func (p *partitionProxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.cut && !p.done {
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
	if !p.wait() {
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
		p.pipe(d, c)
		d.Close()
		c.Close()
	}()
	p.pipe(c, d)
}

// pipe copies src to dst, holding each chunk while the proxy is cut.
func (p *partitionProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
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
