package access

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Policy is the pair of allow and deny lists. A peer is admitted when its
// address matches Allow and does not match Deny.
type Policy struct {
	Allow List
	Deny  List
}

// Decision explains a verdict, for the log.
type Decision struct {
	Allowed bool
	// AllowItem and DenyItem are the items that matched ("" if none).
	AllowItem string
	DenyItem  string
	// Names are the verified host names of the peer, when they were looked up.
	Names []string
}

// Reason is a short sentence for the log.
func (d Decision) Reason() string {
	switch {
	case d.Allowed:
		return "allowed by " + d.AllowItem
	case d.AllowItem == "":
		return "address matches no allow item"
	default:
		return "address matches deny item " + d.DenyItem
	}
}

// Checker applies a Policy, resolving host names when a rule needs them.
// Host-name lookups are forward-confirmed (a PTR name counts only when it
// resolves back to the peer's address) and cached for CacheTTL.
type Checker struct {
	Resolver Resolver
	Timeout  time.Duration // per lookup; default 2s
	CacheTTL time.Duration // default 1m

	mu    sync.Mutex
	cache map[netip.Addr]cached
}

type cached struct {
	names   []string
	expires time.Time
}

const maxCache = 4096

// Check decides whether addr may connect under p.
func (c *Checker) Check(ctx context.Context, p Policy, addr netip.Addr) Decision {
	addr = addr.Unmap()
	var d Decision
	looked := false
	names := func() []string {
		if !looked {
			looked = true
			d.Names = c.Names(ctx, addr)
		}
		return d.Names
	}
	d.AllowItem = p.Allow.match(addr, names)
	if d.AllowItem == "" {
		return d
	}
	d.DenyItem = p.Deny.match(addr, names)
	d.Allowed = d.DenyItem == ""
	return d
}

// Names returns the forward-confirmed host names of addr (cached).
func (c *Checker) Names(ctx context.Context, addr netip.Addr) []string {
	ttl := c.CacheTTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.cache[addr]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.names
	}
	c.mu.Unlock()

	names := c.lookup(ctx, addr)

	c.mu.Lock()
	if c.cache == nil || len(c.cache) >= maxCache {
		c.cache = make(map[netip.Addr]cached)
	}
	c.cache[addr] = cached{names: names, expires: now.Add(ttl)}
	c.mu.Unlock()
	return names
}

func (c *Checker) lookup(ctx context.Context, addr netip.Addr) []string {
	r := c.Resolver
	if r == nil {
		return nil
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ptr, err := r.LookupAddr(ctx, addr.String())
	if err != nil {
		return nil
	}
	var ok []string
	for _, n := range ptr {
		ips, err := r.LookupNetIP(ctx, "ip", n)
		if err != nil {
			continue
		}
		for _, ip := range ips {
			if ip.Unmap() == addr {
				ok = append(ok, n)
				break
			}
		}
	}
	return ok
}
