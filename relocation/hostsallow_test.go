package relocation

import "testing"

func TestHostsAllow(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		ip       string
		names    []string
		want     bool
	}{
		{nil, "10.1.1.1", nil, true}, // empty allows everyone
		// The examples of the Oracle VM guide, appendix B.
		{[]string{`^localhost$`, `^.*\.example\.org$`}, "127.0.0.1", []string{"localhost"}, true},
		{[]string{`^localhost$`, `^.*\.example\.org$`}, "10.0.0.5", []string{"db.example.org"}, true},
		{[]string{`^localhost$`, `^.*\.example\.org$`}, "10.0.0.5", []string{"db.example.org.evil.com"}, false},
		{[]string{`^localhost$`}, "10.0.0.5", nil, false},
		// Anchored at the start as Python's re.match, not at the end.
		{[]string{`127\.0\.0\.`}, "127.0.0.3", nil, true},
		{[]string{`127\.0\.0\.`}, "10.127.0.0", nil, false},
		{[]string{`10\.1\.1\.[0-9]+$`}, "10.1.1.77", nil, true},
		{[]string{`127\.0\.0\.2$`}, "127.0.0.3", nil, false},
	} {
		h, err := NewHostsAllow(tc.patterns)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := h.Match(tc.ip, func() []string { return tc.names })
		if got != tc.want {
			t.Errorf("patterns %q, peer %s %v: allowed = %v, want %v", tc.patterns, tc.ip, tc.names, got, tc.want)
		}
	}
}
