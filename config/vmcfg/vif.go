package vmcfg

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// VIF is one entry of the vif list: comma-separated key=value pairs such
// as 'type=ioemu, mac=00:16:3e:09:bb:c6, bridge=xenbr2, model=e1000'. An
// entry that is empty or blank is a network interface with every default.
type VIF struct {
	// Raw is the entry as written in the file. It is informational:
	// String and Marshal render the fields below.
	Raw string
	// MAC is the interface's address, as written (any case); empty means
	// the agent picks one.
	MAC string
	// Bridge is the dom0 bridge to attach to; empty means the default.
	Bridge string
	// Type is "ioemu", "netfront", ... as written; empty means the default.
	Type string
	// Model is the emulated NIC model (e1000, e100, rtl8139, ...).
	Model string
	// IP is one or more blank-separated IP addresses handed to the vif
	// script.
	IP string
	// Params holds every key=value pair of the entry, including the ones
	// copied into the fields above. For mac, bridge, type, model and ip
	// the fields are authoritative: String and Equal use them, not Params.
	Params map[string]string
}

// DefaultBridge is the bridge of a vif without bridge= on a host that has
// it: Oracle VM's network-bridge script names the bridge of the host's
// first network interface xenbr0.
const DefaultBridge = "xenbr0"

// BridgeOn returns the bridge the vif attaches to on a host whose bridges
// are hostBridges: its bridge= when it has one (whether the host has it is
// the caller's check); otherwise, as xend's vif-bridge script does,
// DefaultBridge if the host has it, else the host's first bridge by name.
// It is an error when the vif names none and the host has none.
func (v VIF) BridgeOn(hostBridges []string) (string, error) {
	if v.Bridge != "" {
		return v.Bridge, nil
	}
	first := ""
	for _, b := range hostBridges {
		if b == DefaultBridge {
			return b, nil
		}
		if first == "" || b < first {
			first = b
		}
	}
	if first == "" {
		return "", fmt.Errorf("the vif has no bridge= and this host has no bridge: create one (such as %s) or give the vif's bridge=", DefaultBridge)
	}
	return first, nil
}

// vifKeys are the options xend accepts in a vif entry.
var vifKeys = map[string]bool{
	"accel": true, "backend": true, "bridge": true, "ip": true, "label": true,
	"mac": true, "model": true, "policy": true, "rate": true, "script": true,
	"type": true, "vifname": true,
}

// vifFieldKeys are the keys with their own VIF field, in String's order.
var vifFieldKeys = []string{"type", "mac", "bridge", "model", "ip"}

func (v *VIF) field(key string) *string {
	switch key {
	case "mac":
		return &v.MAC
	case "bridge":
		return &v.Bridge
	case "type":
		return &v.Type
	case "model":
		return &v.Model
	case "ip":
		return &v.IP
	}
	return nil
}

// ParseVIF reads one vif entry. Blanks around keys and values are
// ignored, and so are empty items ('type=netfront, ' as in the Oracle VM
// guide). Unknown options are errors, as in xend.
func ParseVIF(spec string) (VIF, error) {
	v := VIF{Raw: spec}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return v, fmt.Errorf("vif %s: %s is not a key=value pair", quote(spec), quote(item))
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !vifKeys[k] {
			return v, fmt.Errorf("vif %s: unknown option %s (known: %s)", quote(spec), quote(k), strings.Join(sortedKeys(vifKeys), ", "))
		}
		if val == "" {
			return v, fmt.Errorf("vif %s: option %s has an empty value", quote(spec), k)
		}
		if _, dup := v.Params[k]; dup {
			return v, fmt.Errorf("vif %s: option %s is given twice", quote(spec), k)
		}
		if v.Params == nil {
			v.Params = map[string]string{}
		}
		v.Params[k] = val
		if f := v.field(k); f != nil {
			*f = val
		}
	}
	if err := v.check(); err != nil {
		return v, fmt.Errorf("vif %s: %w", quote(spec), err)
	}
	return v, nil
}

// check validates the fields and Params, so that String renders an entry
// that ParseVIF reads back equal.
func (v VIF) check() error {
	for k, val := range v.Params {
		if !vifKeys[k] {
			return fmt.Errorf("unknown option %s", quote(k))
		}
		if v.field(k) != nil {
			continue // checked through the field
		}
		if err := vifValue(k, val); err != nil {
			return err
		}
	}
	for _, k := range vifFieldKeys {
		val := *v.field(k)
		if val == "" {
			continue
		}
		if err := vifValue(k, val); err != nil {
			return err
		}
	}
	if v.MAC != "" {
		if err := checkMAC(v.MAC); err != nil {
			return err
		}
	}
	if v.Bridge != "" {
		if len(v.Bridge) > 15 || strings.ContainsAny(v.Bridge, "/ \t") || v.Bridge == "." || v.Bridge == ".." {
			return fmt.Errorf("bridge %s is not a network interface name (at most 15 characters, no '/' or blanks)", quote(v.Bridge))
		}
	}
	if v.IP != "" {
		for _, a := range strings.Fields(v.IP) {
			if _, err := netip.ParseAddr(a); err != nil {
				return fmt.Errorf("ip %s is not an IP address", quote(a))
			}
		}
		if strings.Join(strings.Fields(v.IP), " ") != v.IP {
			return fmt.Errorf("ip %s: separate addresses with single spaces", quote(v.IP))
		}
	}
	return nil
}

func vifValue(k, val string) error {
	if val == "" {
		return fmt.Errorf("option %s has an empty value", k)
	}
	if strings.TrimSpace(val) != val {
		return fmt.Errorf("option %s has blanks around its value %s", k, quote(val))
	}
	for i := 0; i < len(val); i++ {
		if c := val[i]; c == ',' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("option %s value %s contains a comma or a control character", k, quote(val))
		}
	}
	return nil
}

// checkMAC accepts six two-digit hex octets separated by colons, unicast
// and not all zero.
func checkMAC(mac string) error {
	parts := strings.Split(mac, ":")
	ok := len(parts) == 6
	var first byte
	zero := true
	for i, p := range parts {
		if !ok {
			break
		}
		if len(p) != 2 || !isHex(p[0]) || !isHex(p[1]) {
			ok = false
			break
		}
		b := hexVal(p[0])<<4 | hexVal(p[1])
		if i == 0 {
			first = b
		}
		if b != 0 {
			zero = false
		}
	}
	if !ok {
		return fmt.Errorf("mac %s is not a MAC address like 00:16:3e:01:02:03", quote(mac))
	}
	if first&1 != 0 {
		return fmt.Errorf("mac %s is a multicast address; a network interface needs a unicast one", mac)
	}
	if zero {
		return fmt.Errorf("mac %s is all zeros", mac)
	}
	return nil
}

func isHex(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f') }

func hexVal(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// String renders the entry: type, mac, bridge, model and ip from the
// fields, then the other Params in key order.
func (v VIF) String() string {
	var items []string
	for _, k := range vifFieldKeys {
		if val := *v.field(k); val != "" {
			items = append(items, k+"="+val)
		}
	}
	var rest []string
	for k := range v.Params {
		if v.field(k) == nil {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		items = append(items, k+"="+v.Params[k])
	}
	return strings.Join(items, ",")
}

// Equal reports whether v and o describe the same interface: the same
// fields and the same other Params (Raw is ignored).
func (v VIF) Equal(o VIF) bool {
	for _, k := range vifFieldKeys {
		if *v.field(k) != *o.field(k) {
			return false
		}
	}
	n := 0
	for k, val := range v.Params {
		if v.field(k) != nil {
			continue
		}
		n++
		if ov, ok := o.Params[k]; !ok || ov != val {
			return false
		}
	}
	for k := range o.Params {
		if o.field(k) == nil {
			n--
		}
	}
	return n == 0
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
