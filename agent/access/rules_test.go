package access

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"10.1.1.300", `item "10.1.1.300"`},
		{"10.1.1", `item "10.1.1"`},
		{"10.1.300.*", `"300" is not a number`},
		{"10.*.1", `four parts`},
		{"10.*.*.5", `only the trailing parts`},
		{"10.1.1.1/33", `not a CIDR range`},
		{"10.1.1.0/24, bad host!", `item "bad host!"`},
		{"10.1.1.1,,10.1.1.2", `empty`},
		{"[ab", `item "[ab"`},
	} {
		_, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

// fakeResolver answers PTR and forward lookups from tables.
type fakeResolver struct {
	ptr     map[string][]string
	forward map[string][]string
	calls   int
}

func (f *fakeResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	f.calls++
	if n, ok := f.ptr[addr]; ok {
		return n, nil
	}
	return nil, errors.New("no PTR")
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range f.forward[host] {
		out = append(out, netip.MustParseAddr(s))
	}
	if out == nil {
		return nil, errors.New("no such host")
	}
	return out, nil
}

func TestPolicy(t *testing.T) {
	res := &fakeResolver{
		ptr: map[string][]string{
			"192.0.2.10": {"mgr.example.com."},
			"192.0.2.66": {"evil.example.com."}, // PTR lies: forward does not confirm
		},
		forward: map[string][]string{
			"mgr.example.com":   {"192.0.2.10"},
			"mgr.example.com.":  {"192.0.2.10"},
			"evil.example.com.": {"198.51.100.1"},
		},
	}
	for _, tc := range []struct {
		allow, deny, addr string
		want              bool
	}{
		// Oracle's default: allow all, deny none.
		{"*", "", "10.0.0.1", true},
		{"*", "", "::1", true},
		// Empty allow admits nobody (the rule is literal: must match allow).
		{"", "", "10.0.0.1", false},
		{"10.1.1.1", "", "10.1.1.1", true},
		{"10.1.1.1", "", "10.1.1.2", false},
		{"10.1.1.*", "", "10.1.1.200", true},
		{"10.1.1.*", "", "10.1.2.1", false},
		{"10.1.*.*", "", "10.1.77.3", true},
		{"10.1.*.*", "", "10.2.77.3", false},
		// The guide's form: host bits set in a CIDR item mean the whole network.
		{"10.1.1.1/24", "", "10.1.1.77", true},
		{"10.1.1.1/24", "", "10.1.2.77", false},
		{"*", "10.1.1.1/24", "10.1.1.77", false},
		{"*", "10.1.1.1/24", "10.1.2.77", true},
		{"*", "*", "127.0.0.1", false},
		{"127.0.0.1, 127.0.0.3", "", "127.0.0.3", true},
		{"*", "127.0.0.2", "127.0.0.2", false},
		{"*", "127.0.0.2", "127.0.0.1", true},
		// IPv4-mapped IPv6 peers match IPv4 rules.
		{"10.1.1.*", "", "::ffff:10.1.1.9", true},
		{"2001:db8::/32", "", "2001:db8::1", true},
		{"2001:db8::/32", "", "2001:db9::1", false},
		// Host-name patterns via forward-confirmed reverse lookup.
		{"*.example.com", "", "192.0.2.10", true},
		{"mgr.example.com", "", "192.0.2.10", true},
		{"*.EXAMPLE.com", "", "192.0.2.10", true},
		{"*.example.com", "", "192.0.2.66", false},
		{"*.example.com", "", "192.0.2.99", false},
		{"*", "*.example.com", "192.0.2.10", false},
	} {
		p := policy(t, tc.allow, tc.deny)
		c := &Checker{Resolver: res}
		d := c.Check(context.Background(), p, netip.MustParseAddr(tc.addr))
		if d.Allowed != tc.want {
			t.Errorf("allow=%q deny=%q addr=%s: allowed=%v (%s), want %v", tc.allow, tc.deny, tc.addr, d.Allowed, d.Reason(), tc.want)
		}
	}
}

// policy parses the allow and deny lists, as the agent does from its
// configuration.
func policy(t *testing.T, allow, deny string) Policy {
	t.Helper()
	a, err := Parse(allow)
	if err != nil {
		t.Fatalf("allow %q: %v", allow, err)
	}
	d, err := Parse(deny)
	if err != nil {
		t.Fatalf("deny %q: %v", deny, err)
	}
	return Policy{Allow: a, Deny: d}
}

func TestNoLookupWithoutHostRules(t *testing.T) {
	res := &fakeResolver{}
	p := policy(t, "10.0.0.0/8, 192.168.1.*", "10.9.9.9")
	c := &Checker{Resolver: res}
	for _, a := range []string{"10.1.1.1", "172.16.0.1", "10.9.9.9"} {
		c.Check(context.Background(), p, netip.MustParseAddr(a))
	}
	if res.calls != 0 {
		t.Fatalf("resolver called %d times for address-only rules", res.calls)
	}
}

func TestLookupCached(t *testing.T) {
	res := &fakeResolver{ptr: map[string][]string{"192.0.2.10": {"a.example.com"}}, forward: map[string][]string{"a.example.com": {"192.0.2.10"}}}
	p := policy(t, "*.example.com", "*.bad.example.com")
	c := &Checker{Resolver: res}
	for i := 0; i < 3; i++ {
		if !c.Check(context.Background(), p, netip.MustParseAddr("192.0.2.10")).Allowed {
			t.Fatal("not allowed")
		}
	}
	if res.calls != 1 {
		t.Fatalf("PTR looked up %d times, want 1 (cached, and shared by allow and deny)", res.calls)
	}
}

func TestString(t *testing.T) {
	l, err := Parse(" 10.1.1.1 ,10.1.1.*, *.example.com ")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "10.1.1.1,10.1.1.*,*.example.com" {
		t.Fatalf("String() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"*", "10.1.1.1/24", "10.1.1.*", "*.example.com", "a,b,c", "::1", "10.*.*.*", "1.2.3.4.5"} {
		f.Add(s, "10.1.1.1")
	}
	f.Fuzz(func(t *testing.T, rules, addr string) {
		l, err := Parse(rules)
		if err != nil {
			return
		}
		// The canonical form parses to the same list.
		l2, err := Parse(l.String())
		if err != nil || l2.String() != l.String() {
			t.Fatalf("round trip of %q: %q, %v", rules, l2.String(), err)
		}
		if a, err := netip.ParseAddr(addr); err == nil {
			l.match(a, func() []string { return []string{"x.example.com"} })
		}
	})
}
