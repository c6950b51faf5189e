package tlscert

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGeneratedOnceThenReused: with no pair configured, the first start
// generates one (key readable by its owner only) that names the given
// hosts, and the next start loads the same pair instead of a new one, so
// the fingerprint clients pinned stays valid.
func TestGeneratedOnceThenReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	c, generated, err := LoadOrCreate("", "", dir, []string{"10.1.2.3", "agent.example", "0.0.0.0"})
	if err != nil || !generated {
		t.Fatalf("first start: generated %v, %v", generated, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Contains(ips, "10.1.2.3") || !slices.Contains(ips, "127.0.0.1") || slices.Contains(ips, "0.0.0.0") ||
		!slices.Contains(leaf.DNSNames, "agent.example") || !slices.Contains(leaf.DNSNames, "localhost") {
		t.Fatalf("certificate names IPs %v and DNS names %v", ips, leaf.DNSNames)
	}
	if fi, err := os.Stat(filepath.Join(dir, "agent.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	again, generated, err := LoadOrCreate("", "", dir, nil)
	if err != nil || generated {
		t.Fatalf("second start: generated %v, %v", generated, err)
	}
	if fp := Fingerprint(again); fp != Fingerprint(c) || len(fp) != 64 {
		t.Fatalf("fingerprint %q after a restart, %q before", fp, Fingerprint(c))
	}
}

// TestConfiguredPair: a configured pair is loaded as it is, both files or
// neither, and a bad generated pair is not silently replaced.
func TestConfiguredPair(t *testing.T) {
	dir := t.TempDir()
	gen, _, err := LoadOrCreate("", "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	c, generated, err := LoadOrCreate(crt, key, t.TempDir(), nil)
	if err != nil || generated || Fingerprint(c) != Fingerprint(gen) {
		t.Fatalf("configured pair: generated %v, %v", generated, err)
	}
	if _, _, err := LoadOrCreate(crt, "", dir, nil); err == nil || !strings.Contains(err.Error(), "together") {
		t.Fatalf("certificate without key: %v", err)
	}
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate("", "", dir, nil); err == nil || !strings.Contains(err.Error(), "remove both files") {
		t.Fatalf("damaged generated pair: %v", err)
	}
	if Fingerprint(nil) != "" {
		t.Fatal("fingerprint of no certificate")
	}
}
