package migration

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		o    Options
		want string
		err  bool
	}{
		{"host2", Options{}, "host2:8002", false},
		{"host2", Options{SSL: true}, "host2:8003", false},
		{"host2", Options{Port: 9000}, "host2:9000", false},
		{"host2:7000", Options{Port: 9000, SSL: true}, "host2:7000", false},
		{"127.0.0.3:8002", Options{}, "127.0.0.3:8002", false},
		{"[::1]:8002", Options{}, "[::1]:8002", false},
		{"", Options{}, "", true},
		{":8002", Options{}, "", true},
	} {
		got, err := target(tc.in, tc.o)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("target(%q, %+v) = %q, %v; want %q (error %v)", tc.in, tc.o, got, err, tc.want, tc.err)
		}
	}
}

func TestTLSPin(t *testing.T) {
	if tlsConfig(Options{}) != nil {
		t.Fatal("plain migrations get a TLS config")
	}
	der := []byte("a certificate's DER bytes")
	sum := sha256.Sum256(der)
	pin := hex.EncodeToString(sum[:])
	// Pins may be written with colons and in upper case, as tools print them.
	var colons []string
	for i := 0; i < len(pin); i += 2 {
		colons = append(colons, strings.ToUpper(pin[i:i+2]))
	}
	for _, fp := range []string{pin, strings.Join(colons, ":")} {
		c := tlsConfig(Options{SSL: true, Fingerprint: fp})
		if err := c.VerifyPeerCertificate([][]byte{der}, nil); err != nil {
			t.Errorf("pin %q refused the right certificate: %v", fp, err)
		}
		if err := c.VerifyPeerCertificate([][]byte{[]byte("another")}, nil); err == nil {
			t.Errorf("pin %q accepted the wrong certificate", fp)
		}
	}
	if c := tlsConfig(Options{SSL: true}); c.VerifyPeerCertificate != nil || c.MinVersion < tls.VersionTLS12 {
		t.Fatalf("unpinned TLS config: %+v", c)
	}
}
