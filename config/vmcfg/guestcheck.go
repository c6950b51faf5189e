package vmcfg

import (
	"fmt"
	"strings"
)

// guest checks the operating system's keys: each value, and the
// combinations xm refuses or that say two different things.
func (v *validation) guest() {
	c, r, line := v.c, v.r, v.line
	for _, f := range []struct{ key, val string }{{KeyKernel, c.Kernel}, {KeyRamdisk, c.Ramdisk}} {
		if v.ok(f.key) && f.val != "" {
			if msg := checkPath(f.val); msg != "" {
				r.errorf(line(f.key), f.key, "%s %s", quote(f.val), msg)
			}
		}
	}
	for _, f := range []struct{ key, val string }{{KeyExtra, c.Extra}, {KeyRoot, c.Root}} {
		if v.ok(f.key) {
			if msg := checkCmdline(f.val); msg != "" {
				r.errorf(line(f.key), f.key, "%s", msg)
			}
		}
	}
	if k := v.argsKey(); v.ok(KeyBootloaderArgs, KeyBootargs) && c.BootloaderArgs != "" {
		if msg := checkCmdline(c.BootloaderArgs); msg != "" {
			r.errorf(line(k), k, "%s", msg)
		} else if _, err := c.PygrubArgs(); err != nil {
			r.errorf(line(k), k, "%v", err)
		}
	}
	if v.ok(KeyExtra, KeyRoot) && len(c.KernelCmdline()) > MaxCmdline {
		r.errorf(line(KeyExtra), KeyExtra, "root= and extra together are %d bytes, longer than the kernel's limit of %d", len(c.KernelCmdline()), MaxCmdline)
	}
	if v.ok(KeyBuilder) && c.builder() != BuilderLinux && c.builder() != BuilderHVM {
		r.errorf(line(KeyBuilder), KeyBuilder, "%s is not 'linux' (paravirtualized, the default) or 'hvm' (hardware virtualized)", quote(c.Builder))
	}
	if v.ok(KeyBootloader) && c.Bootloader != "" && !IsPygrub(c.Bootloader) {
		r.errorf(line(KeyBootloader), KeyBootloader, "%s: only pygrub is supported (bootloader = '/usr/bin/pygrub' or 'pygrub'): "+
			"the agent reads the guest's grub menu itself and never runs a program a vm.cfg names", quote(c.Bootloader))
	}
	if v.ok(KeyBoot) && c.Boot != "" {
		if msg := checkBoot(c.Boot); msg != "" {
			r.errorf(line(KeyBoot), KeyBoot, "%s %s", quote(c.Boot), msg)
		}
	}
	if v.ok(KeySerial) {
		if msg := checkCmdline(c.Serial); msg != "" || len(c.Serial) > 256 {
			r.errorf(line(KeySerial), KeySerial, "%s is not a serial port setting such as 'pty'", quote(c.Serial))
		}
	}
	v.vfbs()
	v.combinations()
}

// argsKey is the name bootloader_args has in the file (xm's bootargs, or
// bootloader_args).
func (v *validation) argsKey() string {
	if _, ok := v.src.lines[KeyBootargs]; ok {
		return KeyBootargs
	}
	return KeyBootloaderArgs
}

// vfbs checks the frame buffers of a Config built in code, and that there
// is at most one of each type.
func (v *validation) vfbs() {
	seen := map[string]int{}
	for i, f := range v.c.VFBs {
		if !v.parsed {
			if err := f.check(); err != nil {
				v.r.errorf(0, KeyVFB, "vfb %d: %v", i, err)
				continue
			}
		}
		if j, dup := seen[f.Type]; dup {
			first, _ := listItem("vfb", j, v.src.vfbLines)
			this, l := listItem("vfb", i, v.src.vfbLines)
			v.r.errorf(l, KeyVFB, "%s and %s are both type=%s: a domain has one display of each type", first, this, f.Type)
		}
		seen[f.Type] = i
	}
}

// combinations checks the keys that together say two different things:
// the workload guest and an operating system, a kernel and a bootloader.
func (v *validation) combinations() {
	c, r, line := v.c, v.r, v.line
	workload := c.Workload != "" || c.WorkloadSpec != DefaultWorkload()
	if v.parsed {
		_, workload = v.src.lines[KeyWorkload]
	}
	if os := v.osKeys(); workload && os != "" {
		r.errorf(line(KeyWorkload), KeyWorkload, "the file asks for the workload guest and for an operating system (%s): choose one, "+
			"and remove either workload or %s", os, os)
	}
	if c.Kernel != "" && c.Bootloader != "" {
		r.errorf(line(KeyBootloader), KeyBootloader, "kernel%s and bootloader are both set: give one (a kernel from the host, or pygrub "+
			"to boot what the guest's grub menu names), as xm does", v.where(KeyKernel))
	}
	if c.Ramdisk != "" && c.Bootloader != "" {
		r.errorf(line(KeyRamdisk), KeyRamdisk, "ramdisk names a file on the host, but with a bootloader the initrd comes from the guest's "+
			"grub entry: remove ramdisk (or boot with kernel instead of bootloader)")
	}
	if c.Bootloader != "" && c.builder() == BuilderHVM {
		r.errorf(line(KeyBootloader), KeyBootloader, "a bootloader is for a paravirtualized guest; a builder = 'hvm' guest boots from its "+
			"disk through its firmware: remove bootloader or builder")
	}
}

// where is " (line N)" for a key of a parsed file, "" otherwise.
func (v *validation) where(key string) string {
	if l := v.line(key); l > 0 {
		return fmt.Sprintf(" (line %d)", l)
	}
	return ""
}

// osKeys names the keys that make c an operating system, or "".
func (v *validation) osKeys() string {
	var keys []string
	if v.c.Kernel != "" {
		keys = append(keys, KeyKernel)
	}
	if v.c.Bootloader != "" {
		keys = append(keys, KeyBootloader)
	}
	if v.c.Builder == BuilderHVM {
		keys = append(keys, "builder = 'hvm'")
	}
	return strings.Join(keys, ", ")
}
