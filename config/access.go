package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseAccessList splits an [access] allow or deny value into its items
// and validates each (see ValidateAccessItem). Items are separated by
// commas; blanks around an item are dropped. An empty value is an empty
// list (nil); an empty item between commas is an error.
func ParseAccessList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	items := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("item %d is empty (a stray comma?)", i+1)
		}
		if err := ValidateAccessItem(p); err != nil {
			return nil, err
		}
		items = append(items, p)
	}
	return items, nil
}

// ValidateAccessItem checks the syntax of one [access] item. An item is
// one of:
//
//	"*"                every address
//	"10.1.1.1"         one IPv4 or IPv6 address
//	"10.1.1.*"         an IPv4 wildcard range: four parts, the trailing
//	                   ones "*" (10.1.*.*, 10.*.*.*), the others 0-255
//	"10.1.1.0/24"      a CIDR range (host bits may be set: 10.1.1.1/24)
//	"2001:db8::/32"    an IPv6 CIDR range
//	"host.example.com" a host name, matched exactly (case-insensitive)
//	"*.example.com"    any name ending in .example.com
//
// The error names the item.
func ValidateAccessItem(item string) error {
	bad := func(why string) error { return fmt.Errorf("item %q: %s", item, why) }
	switch {
	case item == "*":
		return nil
	case item == "":
		return bad("empty")
	case strings.ContainsAny(item, " \t"):
		return bad("contains a blank (separate items with commas)")
	case strings.Contains(item, "/"):
		p, err := netip.ParsePrefix(item)
		if err != nil || p.Addr().Zone() != "" {
			return bad("not a CIDR range (like 10.1.1.0/24)")
		}
		return nil
	case strings.Contains(item, ":"):
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return bad("not an IPv6 address")
		}
		return nil
	}
	if _, err := netip.ParseAddr(item); err == nil {
		return nil
	}
	parts := strings.Split(item, ".")
	numeric := true
	for _, p := range parts {
		if p != "*" {
			if _, ok := parseDecimal(p); !ok {
				numeric = false
			}
		}
	}
	if numeric {
		return validateWildcard(item, parts)
	}
	name := strings.TrimPrefix(item, "*.")
	if strings.Contains(name, "*") {
		return bad("'*' may only stand alone, as the first label of a host name (*.example.com), or as trailing parts of an IPv4 range (10.1.*.*)")
	}
	if !validHostName(name) {
		return bad("not an IP address, range (10.1.1.*), CIDR (10.1.1.0/24) or host name pattern (*.example.com)")
	}
	return nil
}

func validateWildcard(item string, parts []string) error {
	bad := func(why string) error { return fmt.Errorf("item %q: %s", item, why) }
	if !strings.Contains(item, "*") {
		return bad("not a valid IPv4 address")
	}
	if len(parts) != 4 {
		return bad("an IPv4 range has four parts, the trailing ones '*' (10.1.1.*, 10.1.*.*)")
	}
	star := false
	for _, p := range parts {
		if p == "*" {
			star = true
			continue
		}
		if star {
			return bad("only the trailing parts of a range may be '*' (10.1.*.*, not 10.*.1.*)")
		}
		n, _ := parseDecimal(p)
		if n > 255 || (len(p) > 1 && p[0] == '0') {
			return bad(strconv.Quote(p) + " is not a number 0-255 without leading zeros")
		}
	}
	return nil
}
