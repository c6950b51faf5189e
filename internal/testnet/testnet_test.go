package testnet

import (
	"net/netip"
	"testing"
)

func TestUsedAndOverlaps(t *testing.T) {
	routes := `default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
local 203.0.113.7 dev eth1 table local proto kernel scope host src 203.0.113.7
198.51.0.0/16 via 192.0.2.1 dev eth0`
	u := used(routes)
	for c, want := range map[string]bool{"192.0.2.0/24": true, "203.0.113.0/24": true, "198.51.100.0/24": true, "198.18.77.0/24": false} {
		if got := overlaps(u, netip.MustParsePrefix(c)); got != want {
			t.Errorf("%s overlaps %v: %v, want %v", c, u, got, want)
		}
	}
	if got := Addr(netip.MustParsePrefix("198.18.77.0/24"), 9).String(); got != "198.18.77.9/24" {
		t.Errorf("Addr: %s", got)
	}
}

func TestFree(t *testing.T) {
	p := Free(t)
	if p.Bits() != 24 || !p.Addr().Is4() {
		t.Fatalf("Free: %v", p)
	}
}
