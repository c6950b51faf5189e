package vmcfg

import (
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("vm.cfg", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", src, err)
	}
	return c
}

func warningStrings(c *Config) []string {
	var out []string
	for _, w := range c.Warnings {
		out = append(out, w.String())
	}
	return out
}

func TestGuestKind(t *testing.T) {
	tests := []struct {
		src  string
		want GuestKind
	}{
		{"", GuestWorkload},
		{"workload = 'dirty=1M/s'\n", GuestWorkload},
		{"builder = 'linux'\n", GuestWorkload},
		{"disk = ['file:/x.img,xvda,w']\nvif = ['bridge=xenbr0']\n", GuestWorkload},
		{"kernel = '/boot/vmlinuz'\n", GuestOS},
		{"bootloader = '/usr/bin/pygrub'\n", GuestOS},
		{"bootloader = 'pygrub'\n", GuestOS},
		{"builder = 'hvm'\n", GuestOS},
		{"builder = 'hvm'\nkernel = '/boot/vmlinuz'\n", GuestOS},
	}
	for _, tt := range tests {
		c := mustParse(t, "name = 'd'\n"+tt.src)
		if got := c.Guest(); got != tt.want {
			t.Errorf("%q: Guest() = %v, want %v", tt.src, got, tt.want)
		}
	}
}

func TestGuestErrors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"workload = 'dirty=1M/s'\nkernel = '/boot/vmlinuz'\n",
			"vm.cfg:2: workload: the file asks for the workload guest and for an operating system (kernel): choose one, and remove either workload or kernel"},
		{"workload = ''\nbuilder = 'hvm'\n",
			"vm.cfg:2: workload: the file asks for the workload guest and for an operating system (builder = 'hvm'): choose one, and remove either workload or builder = 'hvm'"},
		{"kernel = '/boot/vmlinuz'\nbootloader = 'pygrub'\n",
			"vm.cfg:3: bootloader: kernel (line 2) and bootloader are both set: give one (a kernel from the host, or pygrub to boot what the guest's grub menu names), as xm does"},
		{"bootloader = '/usr/bin/evil'\n",
			`vm.cfg:2: bootloader: "/usr/bin/evil": only pygrub is supported (bootloader = '/usr/bin/pygrub' or 'pygrub'): the agent reads the guest's grub menu itself and never runs a program a vm.cfg names`},
		{"bootloader = 'usr/bin/pygrub'\n",
			`vm.cfg:2: bootloader: "usr/bin/pygrub": only pygrub is supported (bootloader = '/usr/bin/pygrub' or 'pygrub'): the agent reads the guest's grub menu itself and never runs a program a vm.cfg names`},
		{"bootloader = 'pygrub'\nramdisk = '/boot/initrd'\n",
			"vm.cfg:3: ramdisk: ramdisk names a file on the host, but with a bootloader the initrd comes from the guest's grub entry: remove ramdisk (or boot with kernel instead of bootloader)"},
		{"bootloader = 'pygrub'\nbuilder = 'hvm'\n",
			"vm.cfg:2: bootloader: a bootloader is for a paravirtualized guest; a builder = 'hvm' guest boots from its disk through its firmware: remove bootloader or builder"},
		{"builder = 'pv'\n", `vm.cfg:2: builder: "pv" is not 'linux' (paravirtualized, the default) or 'hvm' (hardware virtualized)`},
		{"builder = 'hvm'\nboot = 'cx'\n", `vm.cfg:3: boot: "cx" has 'x': boot devices are c (hard disk), d (CD-ROM), n (network) and a (floppy)`},
		{"builder = 'hvm'\nboot = 'cdc'\n", `vm.cfg:3: boot: "cdc" names 'c' twice`},
		{"kernel = '/boot/vmlinuz\\n'\n", `vm.cfg:2: kernel: "/boot/vmlinuz\n" contains a control character`},
		{"kernel = '/k'\nextra = 'a\\nb'\n", `vm.cfg:3: extra: contains a control character`},
		{"kernel = '/k'\nextra = '" + strings.Repeat("x", 2040) + "'\nroot = '/dev/xvda1'\n",
			`vm.cfg:3: extra: root= and extra together are 2056 bytes, longer than the kernel's limit of 2048`},
		{"bootloader = 'pygrub'\nbootargs = '-q'\nbootloader_args = '-q'\n",
			`vm.cfg:4: bootloader_args: bootargs (line 3) says the same: keep one of them (bootargs is xm's name, bootloader_args xl's)`},
		{"vfb = ['type=vnc']\nvnc = 1\n", `vm.cfg:3: vnc: vnc = 1 and vfb (line 2) both describe the display: keep one (vfb = ['type=vnc,...'] serves every guest)`},
		{"builder = 'hvm'\nvfb = ['type=vnc', 'type=vnc,vncdisplay=2']\n",
			`vm.cfg:3: vfb: the vfb on line 3 and the vfb on line 3 are both type=vnc: a domain has one display of each type`},
	}
	for _, tt := range tests {
		_, err := Parse("vm.cfg", []byte("name = 'd'\n"+tt.src))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q\n got: %v\nwant: %s", tt.src, err, tt.want)
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	tests := []struct{ src, want string }{
		{"kernel = '/k'\n", ""},
		{"kernel = '/k'\nroot = '/dev/xvda1 ro'\n", "root=/dev/xvda1 ro"},
		{"kernel = '/k'\nroot = 'root=/dev/xvda1'\n", "root=/dev/xvda1"}, // xend strips the prefix
		{"kernel = '/k'\nextra = ' console=ttyS0 '\n", "console=ttyS0"},
		{"kernel = '/k'\nroot = '/dev/sda1'\nextra = 'console=ttyS0 memcheck_mib=64'\n", "root=/dev/sda1 console=ttyS0 memcheck_mib=64"},
	}
	for _, tt := range tests {
		c := mustParse(t, "name = 'd'\n"+tt.src)
		if got := c.KernelCmdline(); got != tt.want {
			t.Errorf("%q: KernelCmdline() = %q, want %q", tt.src, got, tt.want)
		}
		roundTrip(t, c)
	}
}

// The direct boot of the test guest, as an operator writes it: every
// field typed, nothing warned, and a canonical file that reads back.
func TestDirectBoot(t *testing.T) {
	c := mustParse(t, `name = 'linux1'
memory = 256
kernel = '/var/cache/ovs-agent-testguest/vmlinux'
ramdisk = "/var/cache/ovs-agent-testguest/initrd"
root = '/dev/vda'
extra = 'console=ttyS0 memcheck_mib=64'
disk = ['tap:qcow2:/OVS/running_pool/linux1/disk.qcow2,xvda,w']
vif = ['mac=00:16:3e:00:00:01, bridge=xenbr0']
vfb = ['type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secret']
`)
	if c.Guest() != GuestOS || c.Kernel != "/var/cache/ovs-agent-testguest/vmlinux" || c.Ramdisk != "/var/cache/ovs-agent-testguest/initrd" ||
		c.Builder != BuilderLinux || c.Serial != SerialPTY {
		t.Errorf("%+v", c)
	}
	if got := c.KernelCmdline(); got != "root=/dev/vda console=ttyS0 memcheck_mib=64" {
		t.Errorf("cmdline %q", got)
	}
	want := VFB{Type: VFBVNC, VNCListen: "0.0.0.0", VNCUnused: true, VNCDisplay: 1, VNCPasswd: "secret"}
	if len(c.VFBs) != 1 || !c.VFBs[0].Equal(want) {
		t.Errorf("vfb %+v", c.VFBs)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings %v", warningStrings(c))
	}
	out := string(roundTrip(t, c))
	for _, line := range []string{"kernel = '/var/cache/ovs-agent-testguest/vmlinux'\n", "root = '/dev/vda'\n",
		"    'type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secret',\n"} {
		if !strings.Contains(out, line) {
			t.Errorf("Marshal has no %q:\n%s", line, out)
		}
	}
}

// Chapter 4.6 of the guide, without its Python: an HVM guest whose kernel
// is Xen's hvmloader, with the display in top-level keys.
func TestHVMGuide46(t *testing.T) {
	c := mustParse(t, `kernel="/usr/lib/xen/boot/hvmloader"
builder='hvm'
memory=3000
name="hvm-dom"
vcpus=4
vif=[ 'mac=00:50:56:1e:34:b5 , bridge=xenbr0' ]
disk=[ 'phy:/dev/cciss/c0d1,hda,w' ]
device_model='/usr/lib64/xen/bin/qemu-dm'
sdl=0
vnc=1
vncviewer=1
vncpasswd="welcome"
vnclisten="0.0.0.0"
ne2000=1
serial='pty'
usb=1
usbdevice='mouse'
`)
	if c.Guest() != GuestOS || c.Builder != BuilderHVM || c.Kernel != "" || c.BootOrder() != "c" {
		t.Errorf("guest %v builder %q kernel %q", c.Guest(), c.Builder, c.Kernel)
	}
	want := VFB{Type: VFBVNC, VNCListen: "0.0.0.0", VNCUnused: true, VNCDisplay: -1, VNCPasswd: "welcome"}
	if len(c.VFBs) != 1 || !c.VFBs[0].Equal(want) {
		t.Errorf("vfbs %+v, want %+v", c.VFBs, want)
	}
	wantWarn := []string{
		`vm.cfg:1: kernel: not applied by this agent: "/usr/lib/xen/boot/hvmloader" is Xen's HVM firmware loader; QEMU boots a builder = 'hvm' guest with its own firmware (SeaBIOS), from the disk or CD-ROM`,
		`vm.cfg:8: device_model: not applied by this agent: the agent runs its own QEMU (agent.ini), never a program a vm.cfg names`,
		`vm.cfg:11: vncviewer: not applied by this agent: the agent starts no VNC viewer on the host: connect one to the address domain.info shows`,
		`vm.cfg:14: ne2000: not applied by this agent: choose the emulated network card with model= in the vif entry`,
		`vm.cfg:16: usb: not applied by this agent: USB devices are not implemented`,
		`vm.cfg:17: usbdevice: not applied by this agent: USB devices are not implemented`,
	}
	if got := warningStrings(c); strings.Join(got, "\n") != strings.Join(wantWarn, "\n") {
		t.Errorf("warnings\n got: %s\nwant: %s", strings.Join(got, "\n"), strings.Join(wantWarn, "\n"))
	}
	roundTrip(t, c)
}

func TestTopLevelDisplay(t *testing.T) {
	c := mustParse(t, "name = 'd'\nbuilder = 'hvm'\nvnc = True\nvncunused = 0\nvncdisplay = '3'\nkeymap = 'de'\nsdl = 1\n")
	want := []VFB{
		{Type: VFBVNC, VNCUnused: false, VNCDisplay: 3, Keymap: "de"},
		{Type: VFBSDL, VNCUnused: true, VNCDisplay: -1, Keymap: "de"},
	}
	if len(c.VFBs) != 2 || !c.VFBs[0].Equal(want[0]) || !c.VFBs[1].Equal(want[1]) {
		t.Errorf("vfbs %+v", c.VFBs)
	}
	wantWarn := "vm.cfg:7: vfb: not applied by this agent: type=sdl opens a window on the host's X display, and this agent runs headless; use type=vnc"
	if got := warningStrings(c); len(got) != 1 || got[0] != wantWarn {
		t.Errorf("warnings %q", got)
	}
	roundTrip(t, c)

	// vnc = 0: no display, and what would configure one is not applied.
	c = mustParse(t, "name = 'd'\nbuilder = 'hvm'\nvnc = 0\nvnclisten = '0.0.0.0'\nvncpasswd = 'hush'\n")
	if len(c.VFBs) != 0 {
		t.Errorf("vnc = 0 gave %+v", c.VFBs)
	}
	wantWarns := []string{
		"vm.cfg:4: vnclisten: not applied by this agent: the file has no vnc = 1 (nor a vfb entry) to apply it to",
		"vm.cfg:5: vncpasswd: not applied by this agent: the file has no vnc = 1 (nor a vfb entry) to apply it to",
	}
	if got := warningStrings(c); strings.Join(got, "\n") != strings.Join(wantWarns, "\n") {
		t.Errorf("warnings %q", got)
	}
	// keymap fills in a vfb entry that has none.
	c = mustParse(t, "name = 'd'\nkernel = '/k'\nkeymap = 'fr'\nvfb = ['type=vnc', 'type=sdl,keymap=de']\n")
	if c.VFBs[0].Keymap != "fr" || c.VFBs[1].Keymap != "de" {
		t.Errorf("keymaps %q %q", c.VFBs[0].Keymap, c.VFBs[1].Keymap)
	}
}

func TestParseVFB(t *testing.T) {
	tests := []struct {
		spec string
		want VFB
		str  string
	}{
		{"type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secret",
			VFB{Type: VFBVNC, VNCListen: "0.0.0.0", VNCUnused: true, VNCDisplay: 1, VNCPasswd: "secret"},
			"type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secret"},
		{" type = vnc , vncunused=0, keymap=en-gb, ", VFB{Type: VFBVNC, VNCDisplay: -1, Keymap: "en-gb"}, "type=vnc,vncunused=0,keymap=en-gb"},
		{"type=vnc,vnclisten=::1", VFB{Type: VFBVNC, VNCListen: "::1", VNCUnused: true, VNCDisplay: -1}, "type=vnc,vnclisten=::1,vncunused=1"},
		{"type=vnc,vnclisten=localhost,vncdisplay=0", VFB{Type: VFBVNC, VNCListen: "localhost", VNCUnused: true, VNCDisplay: 0}, "type=vnc,vnclisten=localhost,vncunused=1,vncdisplay=0"},
		{"type=sdl,display=:0.0,xauthority=/root/.Xauthority", VFB{Type: VFBSDL, VNCUnused: true, VNCDisplay: -1,
			Params: map[string]string{"display": ":0.0", "xauthority": "/root/.Xauthority"}}, "type=sdl,vncunused=1,display=:0.0,xauthority=/root/.Xauthority"},
	}
	for _, tt := range tests {
		v, err := ParseVFB(tt.spec)
		if err != nil {
			t.Errorf("ParseVFB(%q): %v", tt.spec, err)
			continue
		}
		if !v.Equal(tt.want) || v.Raw != tt.spec {
			t.Errorf("ParseVFB(%q) = %+v, want %+v", tt.spec, v, tt.want)
		}
		if v.String() != tt.str {
			t.Errorf("ParseVFB(%q).String() = %q, want %q", tt.spec, v.String(), tt.str)
		}
	}
}

func TestParseVFBErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"vnclisten=0.0.0.0", `vfb "vnclisten=0.0.0.0": no type; write type=vnc (or type=sdl)`},
		{"type=rdp", `vfb "type=rdp": type "rdp" is not vnc or sdl`},
		{"type=vnc,vncdisplay=-1", `vfb "type=vnc,vncdisplay=-1": vncdisplay "-1" is not a display number (0 to 59635)`},
		{"type=vnc,vncdisplay=59636", `vfb "type=vnc,vncdisplay=59636": vncdisplay 59636 is out of range (0 to 59635)`},
		{"type=vnc,vncunused=maybe", `vfb "type=vnc,vncunused=maybe": vncunused "maybe": is not a flag: write 1 or 0`},
		{"type=vnc,vnclisten=a b", `vfb "type=vnc,vnclisten=a b": vnclisten "a b" is not an IP address or a host name`},
		{"type=vnc,keymap=klingon", `vfb "type=vnc,keymap=klingon": keymap "klingon" is not one QEMU knows (ar, bepo, cz, da, de, de-ch, en-gb, en-us, es, et, fi, fo, fr, fr-be, fr-ca, fr-ch, hr, hu, is, it, ja, lt, lv, mk, nl, no, pl, pt, pt-br, ru, sl, sv, th, tr)`},
		{"type=vnc,type=sdl", `vfb "type=vnc,type=sdl": option type is given twice`},
		{"type=vnc,colour=red", `vfb "type=vnc,colour=red": unknown option "colour" (known: display, keymap, location, protocol, type, uuid, vncdisplay, vnclisten, vncpasswd, vncunused, xauthority)`},
		// The password never shows, even misspelt.
		{"type=vnc,vncpasswd=s3cret,colour=red", `vfb "type=vnc,vncpasswd=(redacted),colour=red": unknown option "colour" (known: display, keymap, location, protocol, type, uuid, vncdisplay, vnclisten, vncpasswd, vncunused, xauthority)`},
		{"type=vnc,vncpassword=s3cret", `vfb "type=vnc,vncpasswd=(redacted)": unknown option "vncpassword" (known: display, keymap, location, protocol, type, uuid, vncdisplay, vnclisten, vncpasswd, vncunused, xauthority)`},
		{"type=vnc,vncpasswd s3cret", `vfb "type=vnc,vncpasswd=(redacted)": "vncpasswd=(redacted)" is not a key=value pair`},
	}
	for _, tt := range tests {
		_, err := ParseVFB(tt.spec)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseVFB(%q)\n got: %v\nwant: %s", tt.spec, err, tt.want)
		}
	}
}

// A VNC password appears in no error, no warning, and no redacted text;
// Marshal keeps it (the agent's own copy of the file must).
func TestVNCPasswordNeverShown(t *testing.T) {
	const pw = "Sekr1tPw"
	bad := []string{
		"vncpasswd = Sekr1tPw\nvnc = 1\n",                                    // a name, not a string
		"vncpasswd = 'Sekr1tPw,x'\nvnc = 1\nbuilder = 'hvm'\n",               // a comma
		"vncpasswd = ' Sekr1tPw'\nvnc = 1\nbuilder = 'hvm'\n",                // blanks
		"vncpasswd = ['Sekr1tPw']\nvnc = 1\n",                                // a list
		"vncpasswd = 'Sekr1tPw\nvnc = 1\n",                                   // unterminated
		"vfb = 'type=vnc,vncpasswd=Sekr1tPw'\n",                              // not a list
		"vfb = ['type=vnc,vncpasswd=Sekr1tPw,vncdisplay=x']\n",               // bad entry
		"vfb = ['type=vnc,vncpasswd=Sekr1tPw', 3]\n",                         // bad item
		"vfb = ['type=vnc,vncpasswd=Sekr1tPw', 'type=vnc']\nkernel = '/k'\n", // two of a type
	}
	for _, src := range bad {
		_, err := Parse("vm.cfg", []byte("name = 'd'\n"+src))
		if err == nil {
			t.Errorf("%q: no error", src)
			continue
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%q: the error shows the password:\n%v", src, err)
		}
	}
	good := []string{
		"kernel = '/k'\nvfb = ['type=vnc,vncpasswd=Sekr1tPw']\n",
		"kernel = '/k'\nvfb = ['type=vnc,vncpasswd=Sekr1tPwLonger,display=:0']\nvncpasswd = 'Sekr1tPw'\n",
		"builder = 'hvm'\nvnc = 1\nvncpasswd = 'Sekr1tPw'\nvncpasswd = 'Sekr1tPw'\n",
		"vfb = ['type=vnc,vncpasswd=Sekr1tPw']\n", // the workload guest: not applied
		"builder = 'hvm'\nvnc = 0\nvncpasswd = 'Sekr1tPw'\n",
	}
	for _, src := range good {
		c := mustParse(t, "name = 'd'\n"+src)
		for _, w := range warningStrings(c) {
			if strings.Contains(w, pw) {
				t.Errorf("%q: a warning shows the password: %s", src, w)
			}
		}
		if red := string(c.Redacted().Marshal()); strings.Contains(red, pw) {
			t.Errorf("%q: Redacted().Marshal() shows the password:\n%s", src, red)
		}
		if len(c.VFBs) > 0 && !strings.Contains(string(c.Marshal()), pw) {
			t.Errorf("%q: Marshal lost the password", src)
		}
	}
	// The guide's own misspelling (vncpassword) is kept as an unknown
	// option; Redacted hides it too.
	c := mustParse(t, "name = 'd'\nbuilder = 'hvm'\nvnc = 1\nvncpassword = 'Sekr1tPw'\n")
	if red := string(c.Redacted().Marshal()); strings.Contains(red, pw) || !strings.Contains(red, "vncpassword = '(redacted)'") {
		t.Errorf("Redacted().Marshal() of vncpassword:\n%s", red)
	}
	if c.Others["vncpassword"].Value.Str != pw {
		t.Error("Redacted changed the original's Others")
	}
	c = mustParse(t, "name = 'd'\nkernel = '/k'\nvfb = ['type=vnc,vncpasswd=Sekr1tPw']\n")
	if r := c.Redacted(); r.VFBs[0].VNCPasswd != RedactedPassword || c.VFBs[0].VNCPasswd != pw {
		t.Errorf("Redacted changed the original or kept the password: %q %q", r.VFBs[0].VNCPasswd, c.VFBs[0].VNCPasswd)
	}
}

// Options this agent keeps but does not apply are warned about, each with
// its reason; the workload guest's disks and vifs are not.
func TestNotApplied(t *testing.T) {
	c := mustParse(t, `name = 'd'
kernel = '/k'
pci = ['01:00.0']
cpus = '0-3'
cpu_cap = 50
cpu_weight = 512
vscsi = ['/dev/sdx, 0:0:0:0']
irq = [7]
ioports = ['2f8-2ff']
acpi = 0
apic = 1
serial = 'file:/tmp/console'
vif = ['bridge=xenbr0,rate=10Mb/s@50ms,script=/etc/xen/scripts/evil']
disk = ['phy:/dev/sdb,xvda,w,dom1']
boot = 'd'
`)
	want := []string{
		`vm.cfg:3: pci: not applied by this agent: PCI passthrough is not implemented`,
		`vm.cfg:4: cpus: not applied by this agent: pinning vCPUs to host CPUs is not implemented`,
		`vm.cfg:5: cpu_cap: not applied by this agent: Xen's credit scheduler cap has no counterpart: QEMU runs as an ordinary process`,
		`vm.cfg:6: cpu_weight: not applied by this agent: Xen's credit scheduler weight has no counterpart: QEMU runs as an ordinary process`,
		`vm.cfg:7: vscsi: not applied by this agent: SCSI passthrough is not implemented`,
		`vm.cfg:8: irq: not applied by this agent: passing host interrupts to a guest is not implemented`,
		`vm.cfg:9: ioports: not applied by this agent: passing host I/O ports to a guest is not implemented`,
		`vm.cfg:10: acpi: not applied by this agent: the guest always has ACPI (the agent shuts it down through the ACPI power button)`,
		`vm.cfg:12: serial: not applied by this agent: the serial port is always the domain's console (domain.console, ovm console), as serial = 'pty'`,
		`vm.cfg:13: vif: not applied by this agent: rate=10Mb/s@50ms: bandwidth limits are not implemented`,
		`vm.cfg:13: vif: not applied by this agent: script=/etc/xen/scripts/evil: the agent puts the tap device on the bridge itself and never runs a script a vm.cfg names`,
		`vm.cfg:14: disk: not applied by this agent: "phy:/dev/sdb,xvda,w,dom1" names a Xen backend domain or ring protocol, which QEMU does not have`,
		`vm.cfg:15: boot: not applied by this agent: a boot order is for builder = 'hvm'`,
	}
	if got := warningStrings(c); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings\n got: %s\nwant: %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The workload guest: disks and vifs (the migration checks use them)
	// are not warned about; what belongs to a kernel or a display is.
	c = mustParse(t, `name = 'w'
workload = 'dirty=1M/s'
disk = ['file:/OVS/running_pool/w/System.img,xvda,w', 'phy:/dev/sdb,xvdb,w,dom1']
vif = ['bridge=xenbr0,rate=10Mb/s@50ms']
extra = 'quiet'
vfb = ['type=vnc']
`)
	want = []string{
		`vm.cfg:5: extra: not applied by this agent: it belongs to a kernel, and this file has none (it runs the workload guest)`,
		`vm.cfg:6: vfb: not applied by this agent: the workload guest has no display`,
	}
	if got := warningStrings(c); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("workload warnings\n got: %s\nwant: %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Every option xm knows is typed, informational, or in the table of
// options not applied: none is silently kept.
func TestEveryXMKeyClassified(t *testing.T) {
	for k := range xmKeys {
		if _, na := notApplied[k]; !typedKeys[k] && !na && !informational[k] {
			t.Errorf("xm option %s is neither typed, informational nor in notApplied", k)
		}
	}
	for k := range notApplied {
		if !xmKeys[k] {
			t.Errorf("notApplied has %s, which xm does not know", k)
		}
	}
}

func TestIsPygrub(t *testing.T) {
	for s, want := range map[string]bool{
		"pygrub": true, "/usr/bin/pygrub": true, "/usr/lib/xen/bin/pygrub": true,
		"": false, "usr/bin/pygrub": false, "/usr/bin/pygrub2": false, "/usr/bin/../bin/pygrub": false,
		"/bin/sh": false, "pygrub --x": false,
	} {
		if IsPygrub(s) != want {
			t.Errorf("IsPygrub(%q) = %v", s, !want)
		}
	}
}

func TestPygrubArgs(t *testing.T) {
	tests := []struct {
		args string
		want PygrubArgs
	}{
		{"", PygrubArgs{}},
		{"-q", PygrubArgs{}},
		{"--entry=1", PygrubArgs{Entry: "1"}},
		{`-q --entry="Enterprise Linux (2.6.18-92.el5xen)"`, PygrubArgs{Entry: "Enterprise Linux (2.6.18-92.el5xen)"}},
		{"--kernel=/boot/vmlinuz-6.1 --ramdisk='/boot/initrd 6.1.img'", PygrubArgs{Kernel: "/boot/vmlinuz-6.1", Ramdisk: "/boot/initrd 6.1.img"}},
		{`--entry=a\ b -i`, PygrubArgs{Entry: "a b", NotApplied: []string{"-i"}}},
	}
	for _, tt := range tests {
		got, err := ParsePygrubArgs(tt.args)
		if err != nil || got.Entry != tt.want.Entry || got.Kernel != tt.want.Kernel || got.Ramdisk != tt.want.Ramdisk ||
			strings.Join(got.NotApplied, " ") != strings.Join(tt.want.NotApplied, " ") {
			t.Errorf("ParsePygrubArgs(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
	errs := []struct{ args, want string }{
		{"--args=quiet", "bootloader arguments: --args is not supported: write the kernel's arguments in extra (and root)"},
		{"--output=/tmp/x", `bootloader arguments: "--output=/tmp/x" is not supported (pygrub's -q, --entry=N or TITLE, --kernel=PATH and --ramdisk=PATH are)`},
		{"--entry=", `bootloader arguments: "--entry=" is not supported (pygrub's -q, --entry=N or TITLE, --kernel=PATH and --ramdisk=PATH are)`},
		{"--entry='1", `bootloader arguments "--entry='1": unterminated '`},
	}
	for _, tt := range errs {
		if _, err := ParsePygrubArgs(tt.args); err == nil || err.Error() != tt.want {
			t.Errorf("ParsePygrubArgs(%q)\n got: %v\nwant: %s", tt.args, err, tt.want)
		}
	}
	// In a file: errors name the key as written, -i is not applied.
	_, err := Parse("vm.cfg", []byte("name = 'd'\nbootloader = 'pygrub'\nbootargs = '--output=x'\n"))
	if want := `vm.cfg:3: bootargs: bootloader arguments: "--output=x" is not supported (pygrub's -q, --entry=N or TITLE, --kernel=PATH and --ramdisk=PATH are)`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	c := mustParse(t, "name = 'd'\nbootloader = 'pygrub'\nbootloader_args = '-i --entry=2'\n")
	if p, err := c.PygrubArgs(); err != nil || p.Entry != "2" {
		t.Errorf("PygrubArgs %+v %v", p, err)
	}
	want := "vm.cfg:3: bootloader_args: not applied by this agent: -i: there is no menu to show; the agent boots the default entry (or --entry=)"
	if got := warningStrings(c); len(got) != 1 || got[0] != want {
		t.Errorf("warnings %q", got)
	}
	roundTrip(t, c)
}

// Validate checks the operating system's fields of a Config built in
// code as Parse checks a file, without showing a password.
func TestValidateOS(t *testing.T) {
	ok := New("os1", 256)
	ok.Kernel, ok.Ramdisk, ok.Root, ok.Extra = "/boot/vmlinuz", "/boot/initrd", "/dev/vda", "console=ttyS0"
	v := NewVFB()
	v.VNCPasswd = "Sekr1tPw"
	ok.VFBs = []VFB{v}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if ok.Guest() != GuestOS {
		t.Errorf("Guest() = %v", ok.Guest())
	}
	roundTrip(t, ok)
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"workload too", func(c *Config) { c.WorkloadSpec.Touch = 4096 }, "workload: the file asks for the workload guest and for an operating system (kernel): choose one, and remove either workload or kernel"},
		{"bootloader too", func(c *Config) { c.Ramdisk = ""; c.Bootloader = "pygrub" }, "bootloader: kernel and bootloader are both set: give one (a kernel from the host, or pygrub to boot what the guest's grub menu names), as xm does"},
		{"builder", func(c *Config) { c.Builder = "xen" }, `builder: "xen" is not 'linux' (paravirtualized, the default) or 'hvm' (hardware virtualized)`},
		{"vfb type", func(c *Config) { c.VFBs[0].Type = "" }, `vfb: vfb 0: type "" is not vnc or sdl`},
		{"vfb passwd", func(c *Config) { c.VFBs[0].VNCPasswd = "Sekr1tPw,x" }, "vfb: vfb 0: the VNC password contains a comma or a control character (the value is not shown: it is a secret)"},
		{"vfb display", func(c *Config) { c.VFBs[0].VNCDisplay = -2 }, "vfb: vfb 0: vncdisplay -2 is out of range (0 to 59635)"},
		{"two vnc", func(c *Config) { c.VFBs = append(c.VFBs, c.VFBs[0]) }, "vfb: vfb 0 and vfb 1 are both type=vnc: a domain has one display of each type"},
		{"bootloader args", func(c *Config) { c.Kernel, c.Ramdisk, c.Bootloader, c.BootloaderArgs = "", "", "pygrub", "--args=x" }, "bootloader_args: bootloader arguments: --args is not supported: write the kernel's arguments in extra (and root)"},
	}
	for _, tt := range tests {
		c := cloneConfig(ok)
		tt.change(c)
		err := c.Validate()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s\n got: %v\nwant: %s", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "Sekr1tPw") {
			t.Errorf("%s: the error shows the password", tt.name)
		}
	}
}
