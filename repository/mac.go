package repository

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// XenOUI is the MAC prefix of Xen's virtual interfaces.
const XenOUI = "00:16:3e"

// NewMAC returns a random MAC address in the Xen range, as Oracle VM's
// macgen.py made them: 00:16:3e, then a byte from 0x00 to 0x7f, then two
// random bytes, written in lower case. An address in used (lower case)
// is not returned.
func NewMAC(used map[string]bool) (string, error) {
	for range 1000 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate MAC address: %w", err)
		}
		mac := fmt.Sprintf("%s:%02x:%02x:%02x", XenOUI, b[0]&0x7f, b[1], b[2])
		if !used[mac] {
			return mac, nil
		}
	}
	return "", fmt.Errorf("generate MAC address: no free address found")
}

// normalMAC is the lower-case form used to compare addresses.
func normalMAC(s string) string { return strings.ToLower(s) }
