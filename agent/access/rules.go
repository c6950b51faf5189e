package access

import (
	"context"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/ovs-agent/ovs-agent/config"
)

// kind is the sort of one rule item.
type kind int

const (
	kindAny      kind = iota // "*"
	kindAddr                 // a single IP address
	kindWildcard             // 10.1.1.* style octet pattern
	kindPrefix               // CIDR
	kindHost                 // host-name pattern, matched against resolved names
)

type item struct {
	text   string
	kind   kind
	addr   netip.Addr
	prefix netip.Prefix
	octets [4]int // -1 is a wildcard octet
	host   string // lower-case pattern for kindHost
}

// List is a parsed, comma-separated list of rule items. The zero List
// matches nothing.
type List struct {
	items []item
}

// Parse reads a comma-separated list of items, as agent.ini's allow and
// deny hold them. The syntax is config.ParseAccessList's (one grammar for
// the configuration check and the matcher); the error names the bad item.
func Parse(s string) (List, error) {
	items, err := config.ParseAccessList(s)
	if err != nil {
		return List{}, err
	}
	var l List
	for _, t := range items {
		l.items = append(l.items, compile(t))
	}
	return l, nil
}

// compile turns one item that passed config.ValidateAccessItem into its
// matcher.
func compile(t string) item {
	it := item{text: t}
	if t == "*" {
		it.kind = kindAny
		return it
	}
	if p, err := netip.ParsePrefix(t); err == nil {
		// The Oracle guide writes 10.1.1.1/24 for the whole /24; keep the network.
		it.kind, it.prefix = kindPrefix, p.Masked()
		if it.prefix.Addr().Is4In6() && it.prefix.Bits() >= 96 {
			it.prefix = netip.PrefixFrom(it.prefix.Addr().Unmap(), it.prefix.Bits()-96)
		}
		return it
	}
	if a, err := netip.ParseAddr(t); err == nil {
		it.kind, it.addr = kindAddr, a.Unmap()
		return it
	}
	if parts := strings.Split(t, "."); len(parts) == 4 && strings.Trim(t, "0123456789.*") == "" {
		it.kind = kindWildcard
		for i, p := range parts {
			it.octets[i] = -1
			if p != "*" {
				it.octets[i], _ = strconv.Atoi(p)
			}
		}
		return it
	}
	it.kind, it.host = kindHost, strings.ToLower(strings.TrimSuffix(t, "."))
	return it
}

// Empty reports whether the list has no items.
func (l List) Empty() bool { return len(l.items) == 0 }

// String gives the list back in its canonical written form.
func (l List) String() string {
	s := make([]string, len(l.items))
	for i, it := range l.items {
		s[i] = it.text
	}
	return strings.Join(s, ",")
}

// match reports the first item that matches addr, or "" if none does.
// names is called at most once, and only when a host-name item is reached.
func (l List) match(addr netip.Addr, names func() []string) string {
	addr = addr.Unmap()
	var resolved []string
	looked := false
	for _, it := range l.items {
		switch it.kind {
		case kindAny:
			return it.text
		case kindAddr:
			if it.addr == addr {
				return it.text
			}
		case kindPrefix:
			if it.prefix.Contains(addr) {
				return it.text
			}
		case kindWildcard:
			if addr.Is4() {
				b := addr.As4()
				hit := true
				for i, o := range it.octets {
					if o >= 0 && int(b[i]) != o {
						hit = false
						break
					}
				}
				if hit {
					return it.text
				}
			}
		case kindHost:
			if !looked {
				looked = true
				if names != nil {
					resolved = names()
				}
			}
			for _, n := range resolved {
				n = strings.ToLower(strings.TrimSuffix(n, "."))
				if ok, _ := path.Match(it.host, n); ok {
					return it.text
				}
			}
		}
	}
	return ""
}

// Resolver is the part of net.Resolver that host-name rules need.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

var _ Resolver = net.DefaultResolver
