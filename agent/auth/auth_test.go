package auth

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestHashAndVerify(t *testing.T) {
	h, err := Hash("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "s3cret") || !strings.HasPrefix(h, "$2") {
		t.Fatalf("hash %q does not look like bcrypt", h)
	}
	h2, _ := Hash("s3cret")
	if h == h2 {
		t.Fatal("two hashes of the same password are equal: no salt")
	}
	v, err := NewVerifier("admin", h, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, pass string
		want       bool
	}{
		{"admin", "s3cret", true},
		{"admin", "s3cret", true}, // cached path
		{"admin", "S3cret", false},
		{"root", "s3cret", false},
		{"admin", "", false},
	} {
		if got := v.Verify(tc.user, tc.pass); got != tc.want {
			t.Errorf("Verify(%q, %q) = %v, want %v", tc.user, tc.pass, got, tc.want)
		}
	}
}

func TestNoPasswordConfigured(t *testing.T) {
	v, err := NewVerifier("admin", "", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Enabled() || v.Verify("admin", "") {
		t.Fatal("an empty hash must refuse every login")
	}
}

func TestBadHash(t *testing.T) {
	if _, err := NewVerifier("admin", "plaintext", Limits{}); err == nil {
		t.Fatal("a clear-text password_hash was accepted")
	}
	if _, err := Hash(strings.Repeat("x", 73)); err == nil {
		t.Fatal("a password bcrypt would truncate was accepted")
	}
}

func TestThrottle(t *testing.T) {
	th := &Throttle{Base: time.Second, Max: 8 * time.Second}
	a := netip.MustParseAddr("192.0.2.1")
	b := netip.MustParseAddr("192.0.2.2")
	var got []time.Duration
	for i := 0; i < 6; i++ {
		d, _ := th.Failed(a)
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("delays %v, want doubling capped at 8s", got)
		}
	}
	if d, n := th.Failed(b); d != time.Second || n != 1 {
		t.Fatalf("another peer is slowed by the first one's failures: %v, %d", d, n)
	}
	th.Succeeded(a)
	if d, _ := th.Failed(a); d != time.Second {
		t.Fatalf("after a success the delay is %v, want the base", d)
	}
}
