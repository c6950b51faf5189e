package vmcfg

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// VFB is a virtual frame buffer: one entry of the vfb list, such as
// 'type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secret',
// or the same display given by an HVM guest's top-level keys (vnc = 1,
// vnclisten, vncunused, vncdisplay, vncpasswd, keymap; sdl = 1).
//
// VNCPasswd is a secret: no Error, Warning or String meant for a log
// carries it (see Config.Redacted).
type VFB struct {
	// Raw is the entry as written (for the top-level form, ""). It is
	// informational and may hold the password: String and Marshal
	// render the fields below.
	Raw string
	// Type is VFBVNC or VFBSDL.
	Type string
	// VNCListen is the address the VNC server listens on; "" means the
	// host's default (xend-config's vnc-listen, else 127.0.0.1).
	VNCListen string
	// VNCUnused: look for a free display from VNCDisplay (or 0) upwards
	// instead of failing when it is taken; xend's default is true.
	VNCUnused bool
	// VNCDisplay is the VNC display number (port 5900+N); -1 when unset.
	VNCDisplay int
	// VNCPasswd is the VNC password; "" means none. VNC authentication
	// uses its first 8 bytes only.
	VNCPasswd string
	// Keymap is the keyboard layout (QEMU's names: en-us, de, fr, ...);
	// "" means QEMU's default (en-us).
	Keymap string
	// Params holds the options of an entry that have no field and that
	// this agent does not apply (display, xauthority, uuid, location,
	// protocol); Parse warns about each. Written back by String.
	Params map[string]string
}

// Frame buffer types.
const (
	VFBVNC = "vnc"
	VFBSDL = "sdl"
)

// Limits of a VFB.
const (
	MaxVNCDisplay   = 65535 - 5900
	VNCPasswdMaxLen = 8 // what VNC authentication uses
)

// RedactedPassword replaces a VNC password in Config.Redacted.
const RedactedPassword = "(redacted)"

// vfbKeys are the options xend accepts in a vfb entry; the ones without a
// field are kept in Params and not applied, for the reason given.
var vfbKeys = map[string]string{
	"type": "", "vnclisten": "", "vncunused": "", "vncdisplay": "", "vncpasswd": "", "keymap": "",
	"display":    "an SDL window on an X display of the host: this agent runs headless",
	"xauthority": "an SDL window on an X display of the host: this agent runs headless",
	"uuid":       "xend's own device record, not a setting",
	"location":   "xend's own device record, not a setting",
	"protocol":   "xend's own device record, not a setting",
}

// keymaps are the keyboard layouts QEMU 7.2 ships (/usr/share/qemu/keymaps).
var keymaps = map[string]bool{
	"ar": true, "bepo": true, "cz": true, "da": true, "de": true, "de-ch": true, "en-gb": true,
	"en-us": true, "es": true, "et": true, "fi": true, "fo": true, "fr": true, "fr-be": true,
	"fr-ca": true, "fr-ch": true, "hr": true, "hu": true, "is": true, "it": true, "ja": true,
	"lt": true, "lv": true, "mk": true, "nl": true, "no": true, "pl": true, "pt": true,
	"pt-br": true, "ru": true, "sl": true, "sv": true, "th": true, "tr": true,
}

// NewVFB returns a VNC frame buffer with xend's defaults: the host's
// listen address, vncunused on, no display number, no password.
func NewVFB() VFB {
	return VFB{Type: VFBVNC, VNCUnused: true, VNCDisplay: -1}
}

// passwdInSpec matches what may be a password in a vfb entry (vncpasswd,
// or a misspelling such as the guide's vncpassword), for redaction.
var passwdInSpec = regexp.MustCompile(`(?i)vnc_?pass[^,]*`)

// redactSpec returns a vfb entry with its password replaced, for messages.
func redactSpec(spec string) string {
	return passwdInSpec.ReplaceAllString(spec, "vncpasswd="+RedactedPassword)
}

// ParseVFB reads one vfb entry. Blanks around keys and values and empty
// items are ignored; unknown options are errors, as in xend. Errors never
// show the password.
func ParseVFB(spec string) (VFB, error) {
	v := NewVFB()
	v.Raw = spec
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		if !ok {
			return v, fmt.Errorf("vfb %s: %s is not a key=value pair", quote(redactSpec(spec)), quote(redactSpec(item)))
		}
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if _, known := vfbKeys[k]; !known {
			return v, fmt.Errorf("vfb %s: unknown option %s (known: %s)", quote(redactSpec(spec)), quote(k), strings.Join(sortedVFBKeys(), ", "))
		}
		if seen[k] {
			return v, fmt.Errorf("vfb %s: option %s is given twice", quote(redactSpec(spec)), k)
		}
		seen[k] = true
		if err := v.set(k, val); err != nil {
			return v, fmt.Errorf("vfb %s: %w", quote(redactSpec(spec)), err)
		}
	}
	if !seen["type"] {
		return v, fmt.Errorf("vfb %s: no type; write type=vnc (or type=sdl)", quote(redactSpec(spec)))
	}
	if err := v.check(); err != nil {
		return v, fmt.Errorf("vfb %s: %w", quote(redactSpec(spec)), err)
	}
	return v, nil
}

// set stores option k of an entry.
func (v *VFB) set(k, val string) error {
	var err error
	switch k {
	case "type":
		v.Type = val
	case "vnclisten":
		v.VNCListen = val
	case "vncpasswd":
		v.VNCPasswd = val
	case "keymap":
		v.Keymap = val
	case "vncunused":
		v.VNCUnused, err = parseFlag(val)
		if err != nil {
			return fmt.Errorf("vncunused %s: %v", quote(val), err)
		}
	case "vncdisplay":
		n, perr := strconv.Atoi(val)
		if perr != nil || n < 0 {
			return fmt.Errorf("vncdisplay %s is not a display number (0 to %d)", quote(val), MaxVNCDisplay)
		}
		v.VNCDisplay = n
	default:
		if val == "" {
			return fmt.Errorf("option %s has an empty value", k)
		}
		if v.Params == nil {
			v.Params = map[string]string{}
		}
		v.Params[k] = val
	}
	return nil
}

// parseFlag reads a boolean as xm's set_bool does.
func parseFlag(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "y", "yes", "true", "on":
		return true, nil
	case "0", "n", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("is not a flag: write 1 or 0")
}

// check validates the fields, so that String renders an entry that
// ParseVFB reads back equal. Its errors never show the password.
func (v VFB) check() error {
	switch v.Type {
	case VFBVNC, VFBSDL:
	default:
		return fmt.Errorf("type %s is not vnc or sdl", quote(v.Type))
	}
	if v.VNCListen != "" && !validListen(v.VNCListen) {
		return fmt.Errorf("vnclisten %s is not an IP address or a host name", quote(v.VNCListen))
	}
	if v.VNCDisplay < -1 || v.VNCDisplay > MaxVNCDisplay {
		return fmt.Errorf("vncdisplay %d is out of range (0 to %d)", v.VNCDisplay, MaxVNCDisplay)
	}
	if msg := checkPasswd(v.VNCPasswd); msg != "" {
		return fmt.Errorf("the VNC password %s", msg) // not "vncpasswd": redaction would eat the message
	}
	if v.Keymap != "" && !keymaps[v.Keymap] {
		return fmt.Errorf("keymap %s is not one QEMU knows (%s)", quote(v.Keymap), strings.Join(sortedKeys(keymaps), ", "))
	}
	for k, val := range v.Params {
		if reason, known := vfbKeys[k]; !known || reason == "" {
			return fmt.Errorf("option %s cannot be in Params", quote(k))
		}
		if err := vifValue(k, val); err != nil {
			return err
		}
	}
	return nil
}

// checkPasswd returns why p cannot be a VNC password, or "". The message
// never contains p.
func checkPasswd(p string) string {
	if strings.TrimSpace(p) != p {
		return "has blanks around it (the value is not shown: it is a secret)"
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == ',' || c < 0x20 || c == 0x7f {
			return "contains a comma or a control character (the value is not shown: it is a secret)"
		}
	}
	return ""
}

// validListen accepts an IP address or a host name.
func validListen(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isDigit(c) && !(c|0x20 >= 'a' && c|0x20 <= 'z') && c != '-' {
				return false
			}
		}
	}
	return true
}

// String renders the entry, password included (Marshal writes it; for a
// log use Redacted).
func (v VFB) String() string {
	items := []string{"type=" + v.Type}
	if v.VNCListen != "" {
		items = append(items, "vnclisten="+v.VNCListen)
	}
	if v.VNCUnused {
		items = append(items, "vncunused=1")
	} else {
		items = append(items, "vncunused=0")
	}
	if v.VNCDisplay >= 0 {
		items = append(items, "vncdisplay="+strconv.Itoa(v.VNCDisplay))
	}
	if v.VNCPasswd != "" {
		items = append(items, "vncpasswd="+v.VNCPasswd)
	}
	if v.Keymap != "" {
		items = append(items, "keymap="+v.Keymap)
	}
	var rest []string
	for k := range v.Params {
		rest = append(rest, k)
	}
	sort.Strings(rest)
	for _, k := range rest {
		items = append(items, k+"="+v.Params[k])
	}
	return strings.Join(items, ",")
}

// Redacted returns v with its password replaced by RedactedPassword (when
// it has one) and without Raw.
func (v VFB) Redacted() VFB {
	v.Raw = ""
	if v.VNCPasswd != "" {
		v.VNCPasswd = RedactedPassword
	}
	if v.Params != nil {
		p := make(map[string]string, len(v.Params))
		for k, val := range v.Params {
			p[k] = val
		}
		v.Params = p
	}
	return v
}

// Equal reports whether v and o describe the same frame buffer (Raw is
// ignored).
func (v VFB) Equal(o VFB) bool {
	if v.Type != o.Type || v.VNCListen != o.VNCListen || v.VNCUnused != o.VNCUnused ||
		v.VNCDisplay != o.VNCDisplay || v.VNCPasswd != o.VNCPasswd || v.Keymap != o.Keymap ||
		len(v.Params) != len(o.Params) {
		return false
	}
	for k, val := range v.Params {
		if ov, ok := o.Params[k]; !ok || ov != val {
			return false
		}
	}
	return true
}

func sortedVFBKeys() []string {
	out := make([]string, 0, len(vfbKeys))
	for k := range vfbKeys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
