package vmcfg

import (
	"strings"
)

// decodeDisplay maps an HVM guest's top-level display keys (vnc = 1,
// vnclisten, vncunused, vncdisplay, vncpasswd, keymap; sdl = 1) onto
// c.VFBs, the same frame buffer a vfb entry describes. With a vfb list
// the list is the display: vnc = 1 or sdl = 1 as well is an error, the
// other keys are not applied (a warning), and keymap fills in the
// entries that have none.
func (c *Config) decodeDisplay(r *reporter, src *source) {
	d := src.display
	if len(d) == 0 {
		return
	}
	on := map[string]bool{}
	for _, k := range []string{KeyVNC, KeySDL} {
		if a, ok := d[k]; ok {
			on[k], _ = flag(a, r)
		}
	}
	keymap := ""
	if a, ok := d[KeyKeymap]; ok {
		if s, ok := str(a, r); ok {
			if !keymaps[s] {
				r.errorf(a.line, a.key, "%s is not a keyboard layout QEMU knows (%s)", quote(s), strings.Join(sortedKeys(keymaps), ", "))
			}
			keymap = s
		}
	}
	if vfbLine, given := src.lines[KeyVFB]; given {
		for _, k := range []string{KeyVNC, KeySDL} {
			if on[k] {
				r.errorf(d[k].line, k, "%s = 1 and vfb (line %d) both describe the display: keep one (vfb = ['type=vnc,...'] serves every guest)", k, vfbLine)
			}
		}
		for _, k := range []string{KeyVNCListen, KeyVNCUnused, KeyVNCDisplay, KeyVNCPasswd} {
			if a, ok := d[k]; ok {
				r.warnf(a.line, k, "not applied by this agent: vfb (line %d) describes the display; give %s in its entry", vfbLine, k)
			}
		}
		for i := range c.VFBs {
			if c.VFBs[i].Keymap == "" {
				c.VFBs[i].Keymap = keymap
			}
		}
		return
	}
	if on[KeyVNC] {
		v := NewVFB()
		v.Keymap = keymap
		c.vncKeys(&v, r, d)
		c.VFBs = append(c.VFBs, v)
		src.vfbLines = append(src.vfbLines, d[KeyVNC].line)
	} else {
		for _, k := range []string{KeyVNCListen, KeyVNCUnused, KeyVNCDisplay, KeyVNCPasswd} {
			if a, ok := d[k]; ok {
				r.warnf(a.line, k, "not applied by this agent: the file has no vnc = 1 (nor a vfb entry) to apply it to")
			}
		}
	}
	if on[KeySDL] {
		v := NewVFB()
		v.Type, v.Keymap = VFBSDL, keymap
		c.VFBs = append(c.VFBs, v)
		src.vfbLines = append(src.vfbLines, d[KeySDL].line)
	}
	if keymap != "" && !on[KeyVNC] && !on[KeySDL] {
		r.warnf(d[KeyKeymap].line, KeyKeymap, "not applied by this agent: the file has no display (vfb, vnc = 1) to apply it to")
	}
}

// vncKeys reads the top-level vnc options into v.
func (c *Config) vncKeys(v *VFB, r *reporter, d map[string]assignment) {
	if a, ok := d[KeyVNCListen]; ok {
		if s, ok := str(a, r); ok {
			if !validListen(s) {
				r.errorf(a.line, a.key, "%s is not an IP address or a host name", quote(s))
			}
			v.VNCListen = s
		}
	}
	if a, ok := d[KeyVNCUnused]; ok {
		if b, ok := flag(a, r); ok {
			v.VNCUnused = b
		}
	}
	if a, ok := d[KeyVNCDisplay]; ok {
		if n, ok := integer(a, r, "is not a VNC display number"); ok {
			if n < 0 || n > MaxVNCDisplay {
				r.errorf(a.line, a.key, "%d is out of range (0 to %d)", n, MaxVNCDisplay)
			} else {
				v.VNCDisplay = n
			}
		}
	}
	if a, ok := d[KeyVNCPasswd]; ok {
		if s, ok := str(a, r); ok {
			if msg := checkPasswd(s); msg != "" {
				r.errorf(a.line, a.key, "%s", msg)
			}
			v.VNCPasswd = s
		}
	}
}

// flag reads a boolean option as xm does: True/False, an integer (0 is
// false), or a string such as '1', 'yes' or 'no'.
func flag(a assignment, r *reporter) (bool, bool) {
	v := a.value
	switch v.Kind {
	case KindBool:
		return v.Bool, true
	case KindInt:
		return v.Int != 0, true
	case KindString:
		b, err := parseFlag(v.Str)
		if err == nil {
			return b, true
		}
		r.errorf(a.line, a.key, "%s %v", quote(v.Str), err)
	default:
		r.errorf(a.line, a.key, "%s is not a flag: write 1 or 0", v.describe())
	}
	return false, false
}
