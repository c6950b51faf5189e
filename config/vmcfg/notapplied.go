package vmcfg

import (
	"sort"
)

// notApplied is every xm option this agent keeps (in Config.Others, so
// Marshal writes it back) but does not apply, with the reason Parse gives
// in its warning. An option with ifFalse set is what QEMU's machine does
// anyway when it is on (acpi = 1): only turning it off is not applied.
var notApplied = map[string]struct {
	reason  string
	ifFalse bool
}{
	"access_control":                {reason: "Xen security module labels (XSM/ACM) have no counterpart here"},
	"security":                      {reason: "Xen security module labels (XSM/ACM) have no counterpart here"},
	"ssidref":                       {reason: "Xen security module labels (XSM/ACM) have no counterpart here"},
	"acpi":                          {reason: "the guest always has ACPI (the agent shuts it down through the ACPI power button)", ifFalse: true},
	"apic":                          {reason: "the guest always has an APIC", ifFalse: true},
	"pae":                           {reason: "the guest's CPU always has PAE", ifFalse: true},
	"hpet":                          {reason: "QEMU's machine always has an HPET", ifFalse: true},
	"stdvga":                        {reason: "the display adapter is always QEMU's standard VGA", ifFalse: true},
	"bootentry":                     {reason: "xm's old way to pick a grub entry; write bootloader_args = '--entry=N'"},
	"cdrom":                         {reason: "write the CD-ROM as a disk entry: 'file:/path/to.iso,hdc:cdrom,r'"},
	"cpu":                           {reason: "pinning vCPUs to host CPUs is not implemented"},
	"cpus":                          {reason: "pinning vCPUs to host CPUs is not implemented"},
	"cpu_cap":                       {reason: "Xen's credit scheduler cap has no counterpart: QEMU runs as an ordinary process"},
	"cpu_weight":                    {reason: "Xen's credit scheduler weight has no counterpart: QEMU runs as an ordinary process"},
	"cpuid":                         {reason: "CPUID masks are not implemented: the agent chooses QEMU's CPU model"},
	"cpuid_check":                   {reason: "CPUID masks are not implemented: the agent chooses QEMU's CPU model"},
	"device_model":                  {reason: "the agent runs its own QEMU (agent.ini), never a program a vm.cfg names"},
	"loader":                        {reason: "QEMU boots with its own firmware (SeaBIOS)"},
	"dhcp":                          {reason: "xend wrote it on the kernel command line as ip=...: write that in extra"},
	"gateway":                       {reason: "xend wrote it on the kernel command line as ip=...: write that in extra"},
	"hostname":                      {reason: "xend wrote it on the kernel command line as ip=...: write that in extra"},
	"interface":                     {reason: "xend wrote it on the kernel command line as ip=...: write that in extra"},
	"ip":                            {reason: "xend wrote it on the kernel command line as ip=...: write that in extra"},
	"netmask":                       {reason: "xend wrote it on the kernel command line as ip=...: write that in extra"},
	"nfs_root":                      {reason: "xend wrote it on the kernel command line as nfsroot=...: write that in extra"},
	"nfs_server":                    {reason: "xend wrote it on the kernel command line as nfsroot=...: write that in extra"},
	"disk_other_config":             {reason: "Oracle VM's disk I/O priorities (ionice) are not implemented"},
	"vif_other_config":              {reason: "Oracle VM's traffic shaping (tbf) is not implemented"},
	"display":                       {reason: "an SDL window on an X display of the host: this agent runs headless"},
	"xauthority":                    {reason: "an SDL window on an X display of the host: this agent runs headless"},
	"opengl":                        {reason: "an SDL window on an X display of the host: this agent runs headless"},
	"vncconsole":                    {reason: "the agent starts no VNC viewer on the host: connect one to the address domain.info shows"},
	"vncviewer":                     {reason: "the agent starts no VNC viewer on the host: connect one to the address domain.info shows"},
	"nographic":                     {reason: "the display is what vfb (or vnc = 1) says; the serial console is always there"},
	"monitor":                       {reason: "QEMU's monitor belongs to the agent (QMP)"},
	"fda":                           {reason: "floppy drives are not implemented"},
	"fdb":                           {reason: "floppy drives are not implemented"},
	"soundhw":                       {reason: "sound devices are not implemented (a headless host)"},
	"usb":                           {reason: "USB devices are not implemented"},
	"usbdevice":                     {reason: "USB devices are not implemented"},
	"vusb":                          {reason: "USB devices are not implemented"},
	"videoram":                      {reason: "the display adapter's memory is QEMU's default"},
	"ne2000":                        {reason: "choose the emulated network card with model= in the vif entry"},
	"nics":                          {reason: "xm's old count of network interfaces: list them in vif"},
	"pci":                           {reason: "PCI passthrough is not implemented"},
	"pci_msitranslate":              {reason: "PCI passthrough is not implemented"},
	"pci_power_mgmt":                {reason: "PCI passthrough is not implemented"},
	"gfx_passthru":                  {reason: "PCI passthrough is not implemented"},
	"irq":                           {reason: "passing host interrupts to a guest is not implemented"},
	"ioports":                       {reason: "passing host I/O ports to a guest is not implemented"},
	"vscsi":                         {reason: "SCSI passthrough is not implemented"},
	"vtpm":                          {reason: "a virtual TPM is not implemented"},
	"tpmif":                         {reason: "a Xen driver domain setting: this agent has no driver domains"},
	"netif":                         {reason: "a Xen driver domain setting: this agent has no driver domains"},
	"blkif":                         {reason: "a Xen driver domain setting: this agent has no driver domains"},
	"vif2":                          {reason: "Xen's netchannel2 has no counterpart here"},
	"target":                        {reason: "Xen stub domains have no counterpart here"},
	"maxvcpus":                      {reason: "vCPU hot-plug is not implemented: the guest gets vcpus"},
	"vcpu_avail":                    {reason: "vCPU hot-plug is not implemented: the guest gets vcpus"},
	"localtime":                     {reason: "the guest's clock starts at the host's UTC"},
	"rtc_timeoffset":                {reason: "the guest's clock starts at the host's UTC"},
	"nomigrate":                     {reason: "the agent does not refuse to migrate a domain that sets it"},
	"on_xend_start":                 {reason: "xend's own start-up rule; the agent keeps running domains across its restarts"},
	"on_xend_stop":                  {reason: "xend's own shutdown rule; the agent keeps running domains across its restarts"},
	"restart":                       {reason: "xm's old restart policy: write on_poweroff, on_reboot and on_crash"},
	"features":                      {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"hap":                           {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"machine_address_size":          {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"oos":                           {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"s3_integrity":                  {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"shadow_memory":                 {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"superpages":                    {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"suppress_spurious_page_faults": {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"timer_mode":                    {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"tsc_mode":                      {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"vhpt":                          {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"viridian":                      {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"vpt_align":                     {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"xen_extended_power_mgmt":       {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"xen_platform_pci":              {reason: "a Xen hypervisor setting with no counterpart under QEMU"},
	"isa":                           {reason: "an ISA-only machine is not implemented"},
}

// informational are the xm options that describe a domain without asking
// for anything: kept, and no warning.
var informational = map[string]bool{"description": true, "guest_os_type": true}

// warnNotApplied warns about every option of a parsed c that this agent
// keeps but does not apply: the notApplied options, and the options that
// do not fit c's guest (see Guest).
func (c *Config) warnNotApplied(r *reporter, src *source) {
	for _, k := range sortedOtherKeys(c.Others) {
		na, ok := notApplied[k]
		if !ok {
			continue
		}
		if na.ifFalse {
			if on, isFlag := flagValue(c.Others[k].Value); on || !isFlag {
				continue
			}
		}
		r.warnf(c.Others[k].Line, k, "not applied by this agent: %s", na.reason)
	}
	if c.Guest() == GuestWorkload {
		c.warnWorkload(r, src)
	} else {
		c.warnOS(r, src)
	}
	if c.serial() != SerialPTY {
		r.warnf(src.lines[KeySerial], KeySerial, "not applied by this agent: the serial port is always the domain's console (domain.console, ovm console), as serial = 'pty'")
	}
}

// flagValue reads a kept option as a flag; isFlag is false when it is not
// one.
func flagValue(v Value) (on, isFlag bool) {
	switch v.Kind {
	case KindBool:
		return v.Bool, true
	case KindInt:
		return v.Int != 0, true
	case KindString:
		b, err := parseFlag(v.Str)
		return b, err == nil
	}
	return false, false
}

// warnWorkload warns about the operating system's options that the
// workload guest does not use. Disks and vifs are not among them: the
// agent checks them on migration for every guest.
func (c *Config) warnWorkload(r *reporter, src *source) {
	for _, k := range []string{KeyRamdisk, KeyExtra, KeyRoot} {
		if l, given := src.lines[k]; given {
			r.warnf(l, k, "not applied by this agent: it belongs to a kernel, and this file has none (it runs the workload guest)")
		}
	}
	if l, given := src.lines[KeyBoot]; given {
		r.warnf(l, KeyBoot, "not applied by this agent: a boot order is for builder = 'hvm'")
	}
	c.warnArgs(r, src)
	for i := range c.VFBs {
		_, l := listItem("vfb", i, src.vfbLines)
		r.warnf(l, KeyVFB, "not applied by this agent: the workload guest has no display")
	}
}

// warnOS warns about the options an operating system's boot does not use.
func (c *Config) warnOS(r *reporter, src *source) {
	hvm := c.builder() == BuilderHVM
	if hvm && c.Kernel == "" {
		for _, k := range []string{KeyRamdisk, KeyExtra, KeyRoot} {
			if l, given := src.lines[k]; given && (k != KeyRamdisk || c.Ramdisk != "") {
				r.warnf(l, k, "not applied by this agent: a builder = 'hvm' guest without kernel boots through its firmware, and its own boot loader chooses the kernel's command line")
			}
		}
	}
	if l, given := src.lines[KeyBoot]; given && (!hvm || c.Kernel != "") {
		what := "a boot order is for builder = 'hvm'"
		if hvm {
			what = "kernel boots the guest directly, so no boot device is chosen"
		}
		r.warnf(l, KeyBoot, "not applied by this agent: %s", what)
	}
	c.warnArgs(r, src)
	for i, f := range c.VFBs {
		_, l := listItem("vfb", i, src.vfbLines)
		if f.Type == VFBSDL {
			r.warnf(l, KeyVFB, "not applied by this agent: type=sdl opens a window on the host's X display, and this agent runs headless; use type=vnc")
		}
		for _, k := range sortedParams(f.Params) {
			r.warnf(l, KeyVFB, "not applied by this agent: %s is %s", k, vfbKeys[k])
		}
		if len(f.VNCPasswd) > VNCPasswdMaxLen {
			r.warnf(l, KeyVFB, "vncpasswd is longer than %d characters: VNC authentication uses only the first %d", VNCPasswdMaxLen, VNCPasswdMaxLen)
		}
	}
	c.warnDevices(r, src)
}

// warnArgs warns about bootloader_args without a bootloader, and about
// the pygrub options that have no effect here.
func (c *Config) warnArgs(r *reporter, src *source) {
	if c.BootloaderArgs == "" {
		return
	}
	if c.Bootloader != "" {
		p, _ := c.PygrubArgs()
		for _, o := range p.NotApplied {
			for _, k := range []string{KeyBootloaderArgs, KeyBootargs} {
				if l, given := src.lines[k]; given {
					r.warnf(l, k, "not applied by this agent: %s: there is no menu to show; the agent boots the default entry (or --entry=)", o)
				}
			}
		}
		return
	}
	for _, k := range []string{KeyBootloaderArgs, KeyBootargs} {
		if l, given := src.lines[k]; given {
			r.warnf(l, k, "not applied by this agent: there is no bootloader to hand it to")
		}
	}
}

// vifNotApplied are the vif options the qemu engine does not apply.
var vifNotApplied = map[string]string{
	"script":  "the agent puts the tap device on the bridge itself and never runs a script a vm.cfg names",
	"rate":    "bandwidth limits are not implemented",
	"vifname": "the agent names the tap device itself",
	"accel":   "Xen's netfront acceleration has no counterpart here",
	"backend": "a Xen driver domain setting: this agent has no driver domains",
	"policy":  "Xen security module labels have no counterpart here",
	"label":   "Xen security module labels have no counterpart here",
}

// warnDevices warns about the disk and vif options an operating system's
// devices do not use.
func (c *Config) warnDevices(r *reporter, src *source) {
	for i, d := range c.Disks {
		if d.Backend != "" || d.Protocol != "" {
			_, l := listItem("disk", i, src.diskLines)
			r.warnf(l, KeyDisk, "not applied by this agent: %s names a Xen backend domain or ring protocol, which QEMU does not have", quote(d.String()))
		}
	}
	for i, v := range c.VIFs {
		_, l := listItem("vif", i, src.vifLines)
		for _, k := range sortedParams(v.Params) {
			if reason, ok := vifNotApplied[k]; ok {
				r.warnf(l, KeyVIF, "not applied by this agent: %s=%s: %s", k, v.Params[k], reason)
			}
		}
	}
}

func sortedParams(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
