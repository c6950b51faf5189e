package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestValidateAccessItem(t *testing.T) {
	good := []string{
		"*", "10.1.1.1", "10.1.1.*", "10.1.*.*", "10.*.*.*", "*.*.*.*", "0.0.0.*",
		"10.1.1.1/24", "10.1.1.0/24", "0.0.0.0/0", "::1", "2001:db8::1", "2001:db8::/32",
		"localhost", "host.example.com", "*.example.com", "HOST-1.Example.COM", "example.com.",
	}
	for _, item := range good {
		if err := ValidateAccessItem(item); err != nil {
			t.Errorf("ValidateAccessItem(%q) = %v", item, err)
		}
	}
	bad := map[string]string{
		"":                  `item "": empty`,
		"10.1.1.300":        `item "10.1.1.300": not a valid IPv4 address`,
		"10.1.1":            `item "10.1.1": not a valid IPv4 address`,
		"10.1.*":            `item "10.1.*": an IPv4 range has four parts, the trailing ones '*' (10.1.1.*, 10.1.*.*)`,
		"10.1.1.1.*":        `item "10.1.1.1.*": an IPv4 range has four parts, the trailing ones '*' (10.1.1.*, 10.1.*.*)`,
		"10.*.1.*":          `item "10.*.1.*": only the trailing parts of a range may be '*' (10.1.*.*, not 10.*.1.*)`,
		"10.1.300.*":        `item "10.1.300.*": "300" is not a number 0-255 without leading zeros`,
		"10.01.1.*":         `item "10.01.1.*": "01" is not a number 0-255 without leading zeros`,
		"10.1.1.1/33":       `item "10.1.1.1/33": not a CIDR range (like 10.1.1.0/24)`,
		"10.1.1.1/":         `item "10.1.1.1/": not a CIDR range (like 10.1.1.0/24)`,
		"fe80::1%eth0":      `item "fe80::1%eth0": not an IPv6 address`,
		"2001:db8::g":       `item "2001:db8::g": not an IPv6 address`,
		"10.1.1.1 10.1.1.2": `item "10.1.1.1 10.1.1.2": contains a blank (separate items with commas)`,
		"host*.example.com": `item "host*.example.com": '*' may only stand alone, as the first label of a host name (*.example.com), or as trailing parts of an IPv4 range (10.1.*.*)`,
		"*.*.example.com":   `item "*.*.example.com": '*' may only stand alone, as the first label of a host name (*.example.com), or as trailing parts of an IPv4 range (10.1.*.*)`,
		"-bad.example.com":  `item "-bad.example.com": not an IP address, range (10.1.1.*), CIDR (10.1.1.0/24) or host name pattern (*.example.com)`,
		"under_score.com":   `item "under_score.com": not an IP address, range (10.1.1.*), CIDR (10.1.1.0/24) or host name pattern (*.example.com)`,
		"a..b":              `item "a..b": not an IP address, range (10.1.1.*), CIDR (10.1.1.0/24) or host name pattern (*.example.com)`,
		"*.":                `item "*.": not an IP address, range (10.1.1.*), CIDR (10.1.1.0/24) or host name pattern (*.example.com)`,
		"**":                `item "**": '*' may only stand alone, as the first label of a host name (*.example.com), or as trailing parts of an IPv4 range (10.1.*.*)`,
		"host.123":          `item "host.123": not an IP address, range (10.1.1.*), CIDR (10.1.1.0/24) or host name pattern (*.example.com)`,
	}
	for item, want := range bad {
		err := ValidateAccessItem(item)
		if err == nil || err.Error() != want {
			t.Errorf("ValidateAccessItem(%q) = %v\nwant %s", item, err, want)
		}
	}
}

func TestParseAccessList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"", nil, ""},
		{"   ", nil, ""},
		{"*", []string{"*"}, ""},
		{" 10.1.1.* ,10.2.2.2,  *.example.com ", []string{"10.1.1.*", "10.2.2.2", "*.example.com"}, ""},
		{"10.1.1.1,,10.1.1.2", nil, "item 2 is empty (a stray comma?)"},
		{",", nil, "item 1 is empty (a stray comma?)"},
		{"10.1.1.1, bogus!", nil, `item "bogus!": not an IP address`},
	}
	for _, tt := range tests {
		got, err := ParseAccessList(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseAccessList(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseAccessList(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
