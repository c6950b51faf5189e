package testnet

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// candidates are the networks Free picks from, in order.
var candidates = []string{"203.0.113.0/24", "198.51.100.0/24", "198.18.77.0/24", "198.19.77.0/24"}

// Free is a /24 no route or address of the host overlaps; it fails the
// test when every candidate does.
func Free(t testing.TB) netip.Prefix {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip -4 route show table all: %v", err)
	}
	used := used(string(out))
	for _, c := range candidates {
		p := netip.MustParsePrefix(c)
		if !overlaps(used, p) {
			return p
		}
	}
	t.Fatalf("every test network (%s) overlaps this host's routes %v", strings.Join(candidates, " "), used)
	return netip.Prefix{}
}

// used are the prefixes and addresses the route listing names (a
// destination, a gateway, a source, a local or broadcast address).
func used(routes string) []netip.Prefix {
	var ps []netip.Prefix
	for _, w := range strings.Fields(routes) {
		if p, err := netip.ParsePrefix(w); err == nil && p.Addr().Is4() {
			ps = append(ps, p.Masked())
		} else if a, err := netip.ParseAddr(w); err == nil && a.Is4() {
			ps = append(ps, netip.PrefixFrom(a, 32))
		}
	}
	return ps
}

func overlaps(used []netip.Prefix, p netip.Prefix) bool {
	for _, u := range used {
		if u.Bits() > 0 && u.Overlaps(p) {
			return true
		}
	}
	return false
}

// Addr is host n of network p, as a prefix of p's length (203.0.113.1/24).
func Addr(p netip.Prefix, n byte) netip.Prefix {
	b := p.Addr().As4()
	b[3] = n
	return netip.PrefixFrom(netip.AddrFrom4(b), p.Bits())
}
