package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Pending caps the connections of one listener that have not yet
// authenticated, in all and per peer address. A connection over a cap is
// to be closed at once; the refusal is logged at most once per address per
// warnEvery, with the number of refusals since the last line.
type Pending struct {
	Max        int // 0: no cap in all
	PerAddress int // 0: no cap per address
	Log        *zap.Logger
	What       string // the listener, for the log line ("API", "relocation")

	mu      sync.Mutex
	total   int
	per     map[netip.Addr]int
	refused map[netip.Addr]*refusals
}

type refusals struct {
	last time.Time
	n    int
}

const (
	warnEvery     = 10 * time.Second
	maxRefusedLog = 4096
)

// Acquire reserves a place for a new connection from addr. It returns a
// release function (safe to call more than once) and true, or false when a
// cap is reached (the refusal is logged, rate-limited).
func (p *Pending) Acquire(addr netip.Addr) (func(), bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.per == nil {
		p.per = make(map[netip.Addr]int)
	}
	switch {
	case p.Max > 0 && p.total >= p.Max:
		p.refuse(addr, "max_pending_connections", p.Max)
		return nil, false
	case p.PerAddress > 0 && p.per[addr] >= p.PerAddress:
		p.refuse(addr, "max_pending_per_address", p.PerAddress)
		return nil, false
	}
	p.total++
	p.per[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.total--
			if p.per[addr]--; p.per[addr] <= 0 {
				delete(p.per, addr)
			}
			p.mu.Unlock()
		})
	}, true
}

// Held is the number of connections holding a place now.
func (p *Pending) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// refuse logs a refusal, at most once per address per warnEvery. p.mu is held.
func (p *Pending) refuse(addr netip.Addr, option string, limit int) {
	if p.refused == nil || len(p.refused) >= maxRefusedLog {
		p.refused = make(map[netip.Addr]*refusals)
	}
	r := p.refused[addr]
	if r == nil {
		r = &refusals{}
		p.refused[addr] = r
	}
	r.n++
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < warnEvery {
		return
	}
	if p.Log != nil {
		p.Log.Warn("connection refused: too many connections not yet logged in",
			zap.String("listener", p.What), zap.String("peer", addr.String()),
			zap.String("cap", option), zap.Int("limit", limit),
			zap.Int("refused", r.n), zap.Duration("period", warnEvery))
	}
	r.last = now
	r.n = 0
}

// PeerAddr is the IP address of c's peer, or the zero Addr.
func PeerAddr(c net.Conn) netip.Addr {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(ta.IP)
	return a.Unmap()
}
