package repository

import (
	"fmt"
	"strings"
)

// CheckUUID returns why s is not a repository UUID, or nil. A UUID is 32
// hexadecimal digits (either case), optionally with dashes in the
// canonical 8-4-4-4-12 places. Oracle VM wrote both forms.
func CheckUUID(s string) error {
	if s == "" {
		return fmt.Errorf("empty UUID")
	}
	switch len(s) {
	case 32:
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				return fmt.Errorf("UUID %q: %q is not a hexadecimal digit", s, s[i])
			}
		}
	case 36:
		for i := 0; i < len(s); i++ {
			c := s[i]
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return fmt.Errorf("UUID %q: want a dash at position %d", s, i+1)
				}
				continue
			}
			if !isHex(c) {
				return fmt.Errorf("UUID %q: %q is not a hexadecimal digit", s, c)
			}
		}
	default:
		return fmt.Errorf("UUID %q: want 32 hexadecimal digits (dashes allowed as in 01234567-89ab-cdef-0123-456789abcdef)", clip(s, 80))
	}
	if strings.Trim(s, "0-") == "" {
		return fmt.Errorf("UUID %q is the nil UUID", s)
	}
	return nil
}

// CanonicalUUID returns the form used to compare UUIDs: lower case, no
// dashes. Two spellings of one UUID name the same repository.
func CanonicalUUID(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "-", ""))
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
