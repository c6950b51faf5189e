package access

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
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

// Parse reads a comma-separated list of items. Whitespace around items is
// ignored and an empty string gives an empty List. The error names the
// offending item.
func Parse(s string) (List, error) {
	var l List
	for _, raw := range strings.Split(s, ",") {
		t := strings.TrimSpace(raw)
		if t == "" {
			continue
		}
		it, err := parseItem(t)
		if err != nil {
			return List{}, err
		}
		l.items = append(l.items, it)
	}
	return l, nil
}

func parseItem(t string) (item, error) {
	it := item{text: t}
	switch {
	case t == "*":
		it.kind = kindAny
		return it, nil
	case strings.Contains(t, "/"):
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return it, fmt.Errorf("item %q: not a CIDR range such as 10.1.1.0/24", t)
		}
		// The Oracle guide writes 10.1.1.1/24 for the whole /24; keep the network.
		it.kind, it.prefix = kindPrefix, p.Masked()
		if it.prefix.Addr().Is4In6() {
			it.prefix = netip.PrefixFrom(it.prefix.Addr().Unmap(), it.prefix.Bits()-96).Masked()
		}
		return it, nil
	}
	if a, err := netip.ParseAddr(t); err == nil {
		it.kind, it.addr = kindAddr, a.Unmap()
		return it, nil
	}
	if octets, ok, err := parseWildcard(t); ok {
		if err != nil {
			return it, fmt.Errorf("item %q: %v", t, err)
		}
		it.kind, it.octets = kindWildcard, octets
		return it, nil
	}
	if err := checkHostPattern(t); err != nil {
		return it, fmt.Errorf("item %q: %v", t, err)
	}
	it.kind, it.host = kindHost, strings.ToLower(strings.TrimSuffix(t, "."))
	return it, nil
}

// parseWildcard recognises dotted patterns made only of numbers and '*'
// (10.1.1.*, 10.1.*, 10.*.*.5). Fewer than four parts are allowed when the
// last one is '*' and stands for the rest. ok reports whether t looked
// like such a pattern at all.
func parseWildcard(t string) (octets [4]int, ok bool, err error) {
	parts := strings.Split(t, ".")
	for _, p := range parts {
		if p != "*" && strings.Trim(p, "0123456789") != "" {
			return octets, false, nil
		}
	}
	if !strings.Contains(t, "*") {
		// All digits but not a valid address (e.g. 10.1.1 or 300.1.1.1).
		return octets, true, fmt.Errorf("not an IPv4 address")
	}
	if len(parts) > 4 || (len(parts) < 4 && parts[len(parts)-1] != "*") {
		return octets, true, fmt.Errorf("a wildcard range has four parts, such as 10.1.1.*")
	}
	for i := range octets {
		if i >= len(parts) {
			octets[i] = -1
			continue
		}
		if parts[i] == "*" {
			octets[i] = -1
			continue
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil || n > 255 || parts[i] == "" {
			return octets, true, fmt.Errorf("part %q is not a number from 0 to 255", parts[i])
		}
		octets[i] = n
	}
	return octets, true, nil
}

func checkHostPattern(t string) error {
	if len(t) > 253 {
		return fmt.Errorf("host name pattern is longer than 253 characters")
	}
	for _, r := range t {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '*', r == '_':
		default:
			return fmt.Errorf("not an IP address, wildcard range, CIDR range or host name pattern (character %q)", r)
		}
	}
	if _, err := path.Match(strings.ToLower(t), "x"); err != nil {
		return fmt.Errorf("bad host name pattern: %v", err)
	}
	return nil
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

// NeedsNames reports whether matching may need the peer's host names.
func (l List) NeedsNames() bool {
	for _, it := range l.items {
		if it.kind == kindHost {
			return true
		}
	}
	return false
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
