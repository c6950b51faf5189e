package vmcfg

import (
	"fmt"
	"path"
	"strings"
)

// GuestKind is what runs in a domain. It follows from the vm.cfg's own
// keys (see Config.Guest), never from a renamed key.
type GuestKind int

// Guest kinds.
const (
	// GuestWorkload is the project's self-verifying workload guest: the
	// workload option, or none of kernel, bootloader and builder = 'hvm'
	// (the default, as before operating systems were supported).
	GuestWorkload GuestKind = iota
	// GuestOS is an operating system: kernel (direct boot), bootloader
	// (pygrub: the kernel the guest's grub menu names) or builder = 'hvm'
	// (firmware boot from disk or CD-ROM).
	GuestOS
)

func (k GuestKind) String() string {
	if k == GuestOS {
		return "os"
	}
	return "workload"
}

// Builders (xend's builder option), the serial default and limits of the
// operating system's boot options.
const (
	BuilderLinux     = "linux" // a paravirtualized guest (xend's default)
	BuilderHVM       = "hvm"   // a hardware virtualized guest: firmware boot
	SerialPTY        = "pty"   // the serial port is the domain's console (the default)
	DefaultBootOrder = "c"     // xend's HVM default: the first hard disk
	MaxCmdline       = 2048    // bytes of a kernel command line (Linux on x86)
	MaxPathLen       = 4096
)

// The keys of an operating system's boot and display.
const (
	KeyKernel         = "kernel"
	KeyRamdisk        = "ramdisk"
	KeyExtra          = "extra"
	KeyRoot           = "root"
	KeyBootloader     = "bootloader"
	KeyBootloaderArgs = "bootloader_args"
	KeyBootargs       = "bootargs" // xm's name for bootloader_args
	KeyBuilder        = "builder"
	KeyBoot           = "boot"
	KeySerial         = "serial"
	KeyVFB            = "vfb"
	KeyVNC            = "vnc"
	KeyVNCListen      = "vnclisten"
	KeyVNCUnused      = "vncunused"
	KeyVNCDisplay     = "vncdisplay"
	KeyVNCPasswd      = "vncpasswd"
	KeyKeymap         = "keymap"
	KeySDL            = "sdl"
)

// displayKeys are the top-level keys of an HVM guest's display (xm's
// form); Parse maps them onto Config.VFBs.
var displayKeys = []string{KeyVNC, KeySDL, KeyVNCListen, KeyVNCUnused, KeyVNCDisplay, KeyVNCPasswd, KeyKeymap}

// Guest says what runs in the domain: GuestOS when kernel, bootloader or
// builder = 'hvm' is set, GuestWorkload otherwise. Validate refuses a
// Config that sets both the workload option and one of those.
func (c *Config) Guest() GuestKind {
	if c.Kernel != "" || c.Bootloader != "" || c.Builder == BuilderHVM {
		return GuestOS
	}
	return GuestWorkload
}

// KernelCmdline is the kernel command line as xend builds it from root
// and extra: "root=<root> <extra>", either part left out when empty. For
// a direct boot (kernel) it is the whole command line; with a bootloader,
// the engine appends it to the grub entry's own arguments (xend hands it
// to pygrub, which does the same).
func (c *Config) KernelCmdline() string {
	var parts []string
	if c.Root != "" {
		parts = append(parts, "root="+c.Root)
	}
	if e := strings.TrimSpace(c.Extra); e != "" {
		parts = append(parts, e)
	}
	return strings.Join(parts, " ")
}

// BootOrder is the HVM boot order: Boot, or DefaultBootOrder when unset.
// Letters: c hard disk, d CD-ROM, n network, a floppy.
func (c *Config) BootOrder() string {
	if c.Boot == "" {
		return DefaultBootOrder
	}
	return c.Boot
}

// IsPygrub reports whether a bootloader value names pygrub: "pygrub", or
// an absolute path whose last element is pygrub ('/usr/bin/pygrub', as
// the guide writes it). The agent never runs it: it reads the guest's
// grub menu itself.
func IsPygrub(s string) bool {
	return s == "pygrub" || (strings.HasPrefix(s, "/") && path.Base(s) == "pygrub" && path.Clean(s) == s)
}

// Redacted returns a copy of c for logs: every VNC password replaced by
// RedactedPassword, and so is the value of any other option whose name
// says it is a password (such as a misspelt vncpassword); the frame
// buffers' Raw text is dropped. Only VFBs and Others are copied; the copy
// shares everything else with c (do not modify it).
// c.Redacted().Marshal() is a vm.cfg text without the password.
func (c *Config) Redacted() *Config {
	cp := *c
	if c.VFBs != nil {
		cp.VFBs = make([]VFB, len(c.VFBs))
		for i, v := range c.VFBs {
			cp.VFBs[i] = v.Redacted()
		}
	}
	if c.Others != nil {
		cp.Others = make(map[string]OtherValue, len(c.Others))
		for k, v := range c.Others {
			if strings.Contains(strings.ToLower(k), "pass") {
				v = OtherValue{Value: String(RedactedPassword), Line: v.Line}
			}
			cp.Others[k] = v
		}
	}
	return &cp
}

// builder is c.Builder with "" read as the default.
func (c *Config) builder() string {
	if c.Builder == "" {
		return BuilderLinux
	}
	return c.Builder
}

// serial is c.Serial with "" read as the default.
func (c *Config) serial() string {
	if c.Serial == "" {
		return SerialPTY
	}
	return c.Serial
}

// decodeOS stores one assignment of an operating system's key in c; it
// returns false for any other key.
func (c *Config) decodeOS(a assignment, r *reporter, src *source) bool {
	switch a.key {
	case KeyKernel:
		c.Kernel, _ = str(a, r)
	case KeyRamdisk:
		c.Ramdisk, _ = str(a, r)
	case KeyExtra:
		c.Extra, _ = str(a, r)
	case KeyRoot:
		if s, ok := str(a, r); ok {
			c.Root = strings.TrimPrefix(strings.TrimSpace(s), "root=") // as xend
		}
	case KeyBootloader:
		c.Bootloader, _ = str(a, r)
	case KeyBootloaderArgs, KeyBootargs:
		other := KeyBootargs
		if a.key == KeyBootargs {
			other = KeyBootloaderArgs
		}
		if l, dup := src.lines[other]; dup {
			r.errorf(a.line, a.key, "%s (line %d) says the same: keep one of them (bootargs is xm's name, bootloader_args xl's)", other, l)
			return true
		}
		c.BootloaderArgs, _ = str(a, r)
	case KeyBuilder:
		c.Builder, _ = str(a, r)
	case KeyBoot:
		c.Boot, _ = str(a, r)
	case KeySerial:
		c.Serial, _ = str(a, r)
	case KeyVFB:
		items, ok := strList(a, r, "vfb strings like 'type=vnc,vnclisten=0.0.0.0,vncunused=1'")
		if !ok {
			return true
		}
		c.VFBs, src.vfbLines = parseItems(items, r, a.key, ParseVFB)
	default:
		for _, k := range displayKeys {
			if a.key == k {
				src.display[k] = a
				return true
			}
		}
		return false
	}
	return true
}

// finishOS completes the operating system's keys after every assignment
// is decoded: Xen's hvmloader named as an HVM kernel, and the top-level
// display keys.
func (c *Config) finishOS(r *reporter, src *source) {
	if c.Builder == BuilderHVM && c.Kernel != "" && path.Base(c.Kernel) == "hvmloader" {
		r.warnf(src.lines[KeyKernel], KeyKernel, "not applied by this agent: %s is Xen's HVM firmware loader; "+
			"QEMU boots a builder = 'hvm' guest with its own firmware (SeaBIOS), from the disk or CD-ROM", quote(c.Kernel))
		c.Kernel = ""
	}
	c.decodeDisplay(r, src)
}

// checkPath returns why s cannot be a file name of the host, or "".
func checkPath(s string) string {
	if len(s) > MaxPathLen {
		return fmt.Sprintf("is longer than %d bytes", MaxPathLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return "contains a control character"
		}
	}
	if strings.TrimSpace(s) != s {
		return "has blanks around it"
	}
	return ""
}

// checkCmdline returns why s cannot be (part of) a kernel command line.
func checkCmdline(s string) string {
	if len(s) > MaxCmdline {
		return fmt.Sprintf("is longer than %d bytes (the kernel's command line limit)", MaxCmdline)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "contains a control character"
		}
	}
	return ""
}

// checkBoot returns why s is not an HVM boot order, or "".
func checkBoot(s string) string {
	if s == "" || len(s) > 4 {
		return "is not a boot order: one to four of the letters c (hard disk), d (CD-ROM), n (network), a (floppy)"
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune("acdn", rune(s[i])) {
			return fmt.Sprintf("has %q: boot devices are c (hard disk), d (CD-ROM), n (network) and a (floppy)", s[i])
		}
		if strings.IndexByte(s[:i], s[i]) >= 0 {
			return fmt.Sprintf("names %q twice", s[i])
		}
	}
	return ""
}
