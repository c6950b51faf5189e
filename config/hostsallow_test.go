package config

import (
	"strings"
	"testing"
)

func TestCompileHostsAllow(t *testing.T) {
	res, err := CompileHostsAllow([]string{`^localhost$`, `10\.1\.1\.`, `.*\.example\.org$`, `(?i)^HOST[0-9]+$`})
	if err != nil {
		t.Fatal(err)
	}
	match := func(s string) bool {
		for _, re := range res {
			if re.MatchString(s) {
				return true
			}
		}
		return false
	}
	for s, want := range map[string]bool{
		"localhost":          true,
		"localhost.evil.com": false,
		"10.1.1.7":           true,
		"110.1.1.7":          false, // anchored at the start like re.match
		"a.example.org":      true,
		"example.org":        false,
		"a.example.org.evil": false,
		"host12":             true,
		"evil-host12":        false,
	} {
		if got := match(s); got != want {
			t.Errorf("match(%q) = %v, want %v", s, got, want)
		}
	}
	if res, err := CompileHostsAllow(nil); err != nil || len(res) != 0 {
		t.Errorf("no patterns: %v, %v", res, err)
	}
}

func TestCompileHostsAllowRejects(t *testing.T) {
	tests := map[string]string{
		`^(?=a)`:         "no look-ahead, look-behind",
		`(?<!a)b`:        "no look-behind",
		`(?P<x>a)(?P=x)`: "no look-ahead, look-behind or (?P=name) back-references",
		`(a)\1`:          "no back-references",
		`^localhost\Z`:   `Python's \Z is written $ or \z`,
		`(?x) a b`:       "no verbose flag",
		`*.example.org`:  "not host name patterns",
		`a++`:            "possessive",
		`a)|(b`:          "unexpected )",
		`[a-`:            "missing closing ]",
	}
	for p, want := range tests {
		_, err := CompileHostsAllow([]string{`^ok$`, p})
		if err == nil {
			t.Errorf("%q compiled", p)
			continue
		}
		if !strings.HasPrefix(err.Error(), "pattern "+`"`) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v\nwant it to mention %q", p, err, want)
		}
	}
}
