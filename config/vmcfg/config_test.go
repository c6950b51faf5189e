package vmcfg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustParseFile(t *testing.T, path string) *Config {
	t.Helper()
	c, err := ParseFile(path)
	if err != nil {
		t.Fatalf("ParseFile(%s): %v", path, err)
	}
	return c
}

func diskStrings(ds []Disk) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

func extraKeys(c *Config) []string {
	return sortedOtherKeys(c.Others)
}

// Appendix C.3 of the Oracle VM Server User's Guide (the comment on the vif
// line is one line in the real file; the PDF wrapped it).
func TestOracleExampleC3(t *testing.T) {
	c := mustParseFile(t, "testdata/oracle_c3.cfg")
	if c.Name != "el4u5_64_hvm" || c.Memory != 4096 || c.MaxMem != 4096 || c.VCPUs != 2 {
		t.Errorf("scalars: %+v", c)
	}
	if got := diskStrings(c.Disks); len(got) != 1 || got[0] != "file:/mnt/el4u5_64_hvm//system.img,hda,w" {
		t.Errorf("disks %q", got)
	}
	d := c.Disks[0]
	if d.Type != "file" || d.Path != "/mnt/el4u5_64_hvm//system.img" || d.Device != "hda" || d.Mode != "w" || d.Raw != "file:/mnt/el4u5_64_hvm//system.img,hda,w" {
		t.Errorf("disk %+v", d)
	}
	// vif = [ ' ' ]: one interface with every default.
	if len(c.VIFs) != 1 || !c.VIFs[0].Equal(VIF{}) || c.VIFs[0].Raw != " " {
		t.Errorf("vifs %+v", c.VIFs)
	}
	if c.OnPoweroff != "destroy" || c.OnReboot != "restart" || c.OnCrash != "restart" {
		t.Errorf("actions %s %s %s", c.OnPoweroff, c.OnReboot, c.OnCrash)
	}
	want := []string{"device_model", "apic", "acpi", "pae"}
	if got := extraKeys(c); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("other keys %v, want %v", got, want)
	}
	if ev := c.Others["acpi"]; !ev.Value.Equal(Int(1)) || ev.Line != 13 || ev.Raw != `1` {
		t.Errorf("acpi %+v", ev)
	}
	// builder = "hvm", vnc=1, vncunused=1, serial = "pty": an HVM
	// operating system with a VNC display on the host's default address.
	if c.Guest() != GuestOS || c.Builder != BuilderHVM || c.Serial != SerialPTY || c.Kernel != "" || c.BootOrder() != "c" {
		t.Errorf("guest %v builder %q serial %q kernel %q boot %q", c.Guest(), c.Builder, c.Serial, c.Kernel, c.BootOrder())
	}
	wantVFB := VFB{Type: VFBVNC, VNCUnused: true, VNCDisplay: -1}
	if len(c.VFBs) != 1 || !c.VFBs[0].Equal(wantVFB) {
		t.Errorf("vfbs %+v, want %+v", c.VFBs, wantVFB)
	}
	// device_model is not ours to run; apic, acpi and pae = 1 are what
	// QEMU's machine does anyway.
	wantWarn := "testdata/oracle_c3.cfg:7: device_model: not applied by this agent: the agent runs its own QEMU (agent.ini), never a program a vm.cfg names"
	if len(c.Warnings) != 1 || c.Warnings[0].String() != wantWarn {
		t.Errorf("warnings %v, want %s", c.Warnings, wantWarn)
	}
	if c.WorkloadSpec != DefaultWorkload() || c.Workload != "" {
		t.Errorf("workload %q %+v", c.Workload, c.WorkloadSpec)
	}
}

// The same example as printed in the PDF, with the comment wrapped onto a
// line of its own: the error points at that line.
func TestOracleExampleC3AsPrinted(t *testing.T) {
	src, err := os.ReadFile("testdata/oracle_c3.cfg")
	if err != nil {
		t.Fatal(err)
	}
	wrapped := strings.Replace(string(src), "hvm install will", "hvm\ninstall will", 1)
	_, err = Parse("vm.cfg", []byte(wrapped))
	want := `vm.cfg:6: install: expected '=' after the option name, found name "will"`
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

// Appendix C.4 is a fragment: it has no name, which is the only error.
func TestOracleExampleC4(t *testing.T) {
	_, err := ParseFile("testdata/oracle_c4.cfg")
	want := "testdata/oracle_c4.cfg: name: missing: every domain needs a name"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %s", err, want)
	}
	src, _ := os.ReadFile("testdata/oracle_c4.cfg")
	c, err := Parse("vm.cfg", append([]byte("name = 'hvm1'\n"), src...))
	if err != nil {
		t.Fatal(err)
	}
	wantDisks := []Disk{
		{Type: "phy", Path: "/dev/vgxen/lvol0", Device: "hda", Mode: "w"},
		{Type: "phy", Path: "/dev/vgxen/tls4-swap", Device: "hdb", Mode: "w"},
		{Type: "phy", Path: "/dev/vgxen/sharedvol1", Device: "hdc", Mode: "w!"},
		{Type: "phy", Path: "/dev/vgxen/sharedvol2", Device: "hdd", Mode: "w!"},
	}
	if len(c.Disks) != len(wantDisks) {
		t.Fatalf("disks %v", diskStrings(c.Disks))
	}
	for i := range wantDisks {
		if !c.Disks[i].Equal(wantDisks[i]) {
			t.Errorf("disk %d = %+v, want %+v", i, c.Disks[i], wantDisks[i])
		}
	}
	if c.Memory != DefaultMemoryMiB || c.VCPUs != 1 {
		t.Errorf("defaults: memory %d vcpus %d", c.Memory, c.VCPUs)
	}
	wantVFB := VFB{Raw: "type=vnc,vncunused=1,vnclisten=0.0.0.0", Type: VFBVNC, VNCUnused: true, VNCListen: "0.0.0.0", VNCDisplay: -1}
	if len(c.VFBs) != 1 || !c.VFBs[0].Equal(wantVFB) || c.VFBs[0].Raw != wantVFB.Raw {
		t.Errorf("vfb %+v", c.VFBs)
	}
}

// Chapter 4.6's HVM example runs Python; each construct is named.
func TestOracleExampleWithPython(t *testing.T) {
	_, err := ParseFile("testdata/oracle_hvm_4_6.cfg")
	want := []string{
		`testdata/oracle_hvm_4_6.cfg:2: "import" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`,
		`testdata/oracle_hvm_4_6.cfg:3: arch: name references such as os are not supported: vm.cfg is read as data, so write the value itself`,
		`testdata/oracle_hvm_4_6.cfg:4: "if" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`,
		`testdata/oracle_hvm_4_6.cfg:6: "else" statements are not supported: vm.cfg is read as data (key = value lines), not run as Python`,
		`testdata/oracle_hvm_4_6.cfg:22: device_model: expressions are not supported (found '+'): vm.cfg values must be literals`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors\n got: %v\nwant: %s", err, strings.Join(want, "\n"))
	}
}

// Chapter 4: memory written as a string, and a trailing comma in the list.
func TestOracleExampleStringMemory(t *testing.T) {
	c := mustParseFile(t, "testdata/oracle_el4u5.cfg")
	if c.Name != "el4u5" || c.Memory != 512 || c.MaxMem != 512 || c.VCPUs != 1 {
		t.Errorf("%+v", c)
	}
	if got := diskStrings(c.Disks); len(got) != 1 || got[0] != "phy:/dev/VolGroup00/el4u5,hda,w" {
		t.Errorf("disks %q", got)
	}
}

// P2V disk list: relative file paths, eleven disks over many lines.
func TestOracleExampleP2V(t *testing.T) {
	c := mustParseFile(t, "testdata/oracle_p2v.cfg")
	if len(c.Disks) != 11 {
		t.Fatalf("%d disks", len(c.Disks))
	}
	if d := c.Disks[10]; d.Path != "System-sdk.img" || d.Device != "sdg" {
		t.Errorf("last disk %+v", d)
	}
}

func TestTemplateExample(t *testing.T) {
	c := mustParseFile(t, "testdata/ovm_template.cfg")
	if c.UUID != "c6a2b5e0-37b1-4d0a-8b2e-4f5e6a7b8c9d" {
		t.Errorf("uuid %q (want lower case)", c.UUID)
	}
	if c.Memory != 1024 || c.MaxMem != 2048 || c.VCPUs != 2 {
		t.Errorf("memory %d maxmem %d vcpus %d", c.Memory, c.MaxMem, c.VCPUs)
	}
	if d := c.Disks[1]; d.Type != "tap:aio" || d.Path != "/OVS/sharedDisk/data1.img" || d.Mode != ModeWriteShared {
		t.Errorf("tap disk %+v", d)
	}
	v := c.VIFs[1]
	if v.MAC != "00:16:3e:31:d5:4b" || v.Bridge != "xenbr1" || v.Type != "netfront" || v.Params["rate"] != "10Mb/s@50ms" || len(v.Params) != 4 {
		t.Errorf("vif %+v", v)
	}
	if c.VIFs[0].MAC != "00:16:3E:12:34:56" {
		t.Errorf("mac kept as written: %q", c.VIFs[0].MAC)
	}
	if c.Guest() != GuestOS || c.Bootloader != "/usr/bin/pygrub" || c.Kernel != "" {
		t.Errorf("guest %v bootloader %q kernel %q", c.Guest(), c.Bootloader, c.Kernel)
	}
	wantVFB := VFB{Type: VFBVNC, VNCUnused: true, VNCListen: "0.0.0.0", VNCDisplay: -1, VNCPasswd: "oracle"}
	if len(c.VFBs) != 1 || !c.VFBs[0].Equal(wantVFB) {
		t.Errorf("vfbs %+v", c.VFBs)
	}
	dc := c.Others["disk_other_config"].Value
	if !dc.Equal(List(List(String("xvda"), String("ionice"), String("sched=best-effort,prio=5")))) {
		t.Errorf("disk_other_config %s", dc)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("vm.cfg", []byte("name = 'small'\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := New("small", DefaultMemoryMiB)
	if !c.Equal(want) {
		t.Errorf("got %+v, want %+v", c, want)
	}
	if c.Memory != 128 || c.MaxMem != 128 || c.VCPUs != 1 || c.OnPoweroff != "destroy" || c.OnReboot != "restart" || c.OnCrash != "restart" {
		t.Errorf("defaults %+v", c)
	}
	if w := c.WorkloadSpec; w.VerifyEvery != time.Second || w.HeartbeatEvery != time.Second || w.Seed != 1 || w.Pattern != "random" ||
		w.DirtyBytesPerSec != 0 || w.HotBytes != 0 || w.Touch != 0 {
		t.Errorf("workload defaults %+v", c.WorkloadSpec)
	}
	// maxmem defaults to memory.
	c, err = Parse("vm.cfg", []byte("name = 'a'\nmemory = 2048\n"))
	if err != nil || c.MaxMem != 2048 {
		t.Errorf("maxmem %d, %v", c.MaxMem, err)
	}
}

func TestTypedValues(t *testing.T) {
	tests := []struct {
		src   string
		check func(*Config) bool
	}{
		{"memory = '512'", func(c *Config) bool { return c.Memory == 512 }},
		{"memory = ' 512 '", func(c *Config) bool { return c.Memory == 512 }},
		{"memory = 0x200", func(c *Config) bool { return c.Memory == 512 }},
		{"vcpus = '4'", func(c *Config) bool { return c.VCPUs == 4 }},
		{"disk = ('phy:/dev/sdb,xvda,w',)", func(c *Config) bool { return len(c.Disks) == 1 }},
		{"disk = []", func(c *Config) bool { return len(c.Disks) == 0 }},
		{"vif = ['', 'bridge=xenbr1']", func(c *Config) bool { return len(c.VIFs) == 2 && c.VIFs[1].Bridge == "xenbr1" }},
		{"uuid = '6BCA1D84-E6B5-4F1F-9A7B-3E2A1C0D9E8F'", func(c *Config) bool { return c.UUID == "6bca1d84-e6b5-4f1f-9a7b-3e2a1c0d9e8f" }},
		{"on_crash = 'coredump-restart'", func(c *Config) bool { return c.OnCrash == ActionCoredumpRestart }},
		{"on_poweroff = 'preserve'", func(c *Config) bool { return c.OnPoweroff == ActionPreserve }},
		{"on_reboot = 'rename-restart'", func(c *Config) bool { return c.OnReboot == ActionRenameRestart }},
		{"workload = ''", func(c *Config) bool { return c.WorkloadSpec == DefaultWorkload() }},
		{"memory_backing = 'HugeTLB'", func(c *Config) bool { return c.MemoryBacking == "hugetlb" && len(c.Warnings) == 0 }},
		{"memory_backing = 'thp'", func(c *Config) bool { return c.MemoryBacking == "thp" }},
		{"name = 'x'", func(c *Config) bool { return c.MemoryBacking == "" }},
		{"memory = 512\nworkload = 'hot=256M,touch=256M'", func(c *Config) bool { return c.WorkloadSpec.HotBytes == 256<<20 }},
		{"memory = 2048\nworkload = 'touch=1G,hb=500ms,seed=0x10'", func(c *Config) bool {
			return c.WorkloadSpec.Touch == 1<<30 && c.WorkloadSpec.HeartbeatEvery == 500*time.Millisecond && c.WorkloadSpec.Seed == 16
		}},
		{"memory = 1\nmemory = 64", func(c *Config) bool { return c.Memory == 64 && len(c.Warnings) == 1 }},
	}
	for _, tt := range tests {
		c, err := Parse("vm.cfg", []byte("name = 'd'\n"+tt.src+"\n"))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		if !tt.check(c) {
			t.Errorf("Parse(%q) = %+v", tt.src, c)
		}
	}
}

// TestValueErrors checks every error about the value of a typed key, with
// its whole message.
func TestValueErrors(t *testing.T) {
	tests := []struct {
		src  string // lines after the first
		want string
	}{
		{"memory = 'lots'", `vm.cfg:2: memory: "lots" is not an integer number of MiB`},
		{"memory = 512.0", `vm.cfg:2: memory: 512.0 is not an integer number of MiB`},
		{"memory = True", `vm.cfg:2: memory: True is not an integer number of MiB`},
		{"memory = [512]", `vm.cfg:2: memory: [512] is not an integer number of MiB`},
		{"memory = '+512'", `vm.cfg:2: memory: "+512" is not an integer number of MiB`},
		{"memory = ''", `vm.cfg:2: memory: "" is not an integer number of MiB`},
		{"memory = 0", `vm.cfg:2: memory: 0 MiB is out of range (1 to 16777216 MiB)`},
		{"memory = -5", `vm.cfg:2: memory: -5 MiB is out of range (1 to 16777216 MiB)`},
		{"memory = 16777217", `vm.cfg:2: memory: 16777217 MiB is out of range (1 to 16777216 MiB)`},
		{"memory = 99999999999", `vm.cfg:2: memory: 99999999999 is out of range`},
		{"memory = '99999999999'", `vm.cfg:2: memory: "99999999999" is out of range`},
		{"maxmem = 'x'", `vm.cfg:2: maxmem: "x" is not an integer number of MiB`},
		{"maxmem = 0", `vm.cfg:2: maxmem: 0 MiB is out of range (1 to 16777216 MiB)`},
		{"memory = 512\nmaxmem = 256", `vm.cfg:3: maxmem: maxmem (256 MiB) is less than memory (512 MiB)`},
		{"maxmem = 64", `vm.cfg:2: maxmem: maxmem (64 MiB) is less than memory (128 MiB)`},
		{"vcpus = 0", `vm.cfg:2: vcpus: 0 is out of range (1 to 256)`},
		{"vcpus = 257", `vm.cfg:2: vcpus: 257 is out of range (1 to 256)`},
		{"vcpus = 'two'", `vm.cfg:2: vcpus: "two" is not an integer number of virtual CPUs`},
		{"name = 5", `vm.cfg:2: name: must be a string, not integer 5`},
		{"name = ''", `vm.cfg:2: name: "" is empty`},
		{"name = '-x'", `vm.cfg:2: name: "-x" may not start with '.' or '-'`},
		{"name = '.x'", `vm.cfg:2: name: ".x" may not start with '.' or '-'`},
		{"name = 'a/b'", `vm.cfg:2: name: "a/b" may contain only letters, digits, '_', '.' and '-'`},
		{"name = 'a b'", `vm.cfg:2: name: "a b" may contain only letters, digits, '_', '.' and '-'`},
		{"name = '" + strings.Repeat("n", 65) + "'", `vm.cfg:2: name: "` + strings.Repeat("n", 65) + `" is longer than 64 characters`},
		{"uuid = 'abc'", `vm.cfg:2: uuid: "abc" is not a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lower-case hex digits)`},
		{"uuid = '6bca1d84e6b54f1f9a7b3e2a1c0d9e8f'", `vm.cfg:2: uuid: "6bca1d84e6b54f1f9a7b3e2a1c0d9e8f" is not a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lower-case hex digits)`},
		{"uuid = '6bca1d84-e6b5-4f1f-9a7b-3e2a1c0d9e8g'", `vm.cfg:2: uuid: "6bca1d84-e6b5-4f1f-9a7b-3e2a1c0d9e8g" is not a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lower-case hex digits)`},
		{"uuid = '00000000-0000-0000-0000-000000000000'", `vm.cfg:2: uuid: "00000000-0000-0000-0000-000000000000" is the nil UUID`},
		{"uuid = 1", `vm.cfg:2: uuid: must be a string, not integer 1`},
		{"on_poweroff = 'halt'", `vm.cfg:2: on_poweroff: "halt" is not one of destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart`},
		{"on_reboot = None", `vm.cfg:2: on_reboot: must be a string, not None None`},
		{"disk = 'phy:/dev/sdb,xvda,w'", `vm.cfg:2: disk: must be a list of disk strings like 'phy:/dev/sdb1,xvda,w', not string 'phy:/dev/sdb,xvda,w'`},
		{"disk = [\n  'phy:/dev/sdb,xvda,w',\n  5]", `vm.cfg:4: disk: list items must be disk strings like 'phy:/dev/sdb1,xvda,w', not integer 5`},
		{"disk = [\n  'phy:/dev/sdb,xvda,w',\n  'phy:/dev/sdc,xvdb']", `vm.cfg:4: disk: disk "phy:/dev/sdc,xvdb": want 3 to 5 comma-separated fields (uname,device,mode[,backend[,protocol]]), got 2`},
		{"disk = ['phy:/dev/sdb,xvda,rw']", `vm.cfg:2: disk: disk "phy:/dev/sdb,xvda,rw": mode "rw" is not r, w or w!`},
		{"disk = [\n  'phy:/dev/sdb,xvda,w',\n  'file:/x.img,xvda,w']", `vm.cfg:4: disk: virtual device xvda is used by the disk on line 3 and the disk on line 4`},
		{"vif = {}", `vm.cfg:2: vif: must be a list of vif strings like 'mac=00:16:3e:01:02:03, bridge=xenbr0', not dict {}`},
		{"vif = ['mac=00:16:3e:xx:xx:xx']", `vm.cfg:2: vif: vif "mac=00:16:3e:xx:xx:xx": mac "00:16:3e:xx:xx:xx" is not a MAC address like 00:16:3e:01:02:03`},
		{"vif = ['bridge=xenbr0, colour=red']", `vm.cfg:2: vif: vif "bridge=xenbr0, colour=red": unknown option "colour" (known: accel, backend, bridge, ip, label, mac, model, policy, rate, script, type, vifname)`},
		{"vif = [\n 'mac=00:16:3e:00:00:01',\n 'mac=00:16:3E:00:00:01']", `vm.cfg:4: vif: mac 00:16:3E:00:00:01 is used by the vif on line 3 and the vif on line 4`},
		{"workload = 5", `vm.cfg:2: workload: must be a string, not integer 5`},
		{"workload = 'hot=1G'", `vm.cfg:2: workload: hot=1G is larger than memory (128 MiB)`},
		{"memory = 256\nworkload = 'touch=257M'", `vm.cfg:3: workload: touch=257M is larger than memory (256 MiB)`},
		{"workload = 'dirty=fast'", `vm.cfg:2: workload: dirty=fast: "fast" is not a rate such as 200M/s`},
		{"workload = 'speed=1'", `vm.cfg:2: workload: unknown key "speed" (known: dirty, hot, pattern, touch, verify, hb, seed)`},
		{"memory = 256\nworkload = 'hot=128M,touch=129M'", `vm.cfg:3: workload: hot=128M plus touch=129M is larger than memory (256 MiB)`},
		{"workload = 'hot=0'", `vm.cfg:2: workload: hot=0: an empty hot set; leave hot out or write hot=all for all of memory`},
	}
	for _, tt := range tests {
		_, err := Parse("vm.cfg", []byte("name = 'd'\n"+tt.src+"\n"))
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tt.src)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q)\n got: %v\nwant: %s", tt.src, err, tt.want)
		}
	}
}

// A key whose value is bad is not checked again against other keys.
func TestNoCascadingErrors(t *testing.T) {
	_, err := Parse("vm.cfg", []byte("name = 'd'\nmemory = 'x'\nworkload = 'hot=1G'\n"))
	want := `vm.cfg:2: memory: "x" is not an integer number of MiB`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestWarnings(t *testing.T) {
	src := "name = 'd'\n" + // 1
		"memroy = 512\n" + // 2
		"description = 'web' # informational: no warning\n" + // 3
		"frobnicate = 'yes'\n" + // 4
		"vcpus = 1\n" + // 5
		"vcpus = 2\n" // 6
	c, err := Parse("vm.cfg", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`vm.cfg:2: memroy: not an option xm or ovs-agent knows; kept but not used (did you mean memory?)`,
		`vm.cfg:4: frobnicate: not an option xm or ovs-agent knows; kept but not used`,
		`vm.cfg:6: vcpus: assigned again; this value replaces the one on line 5`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings\n got: %s\nwant: %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c.VCPUs != 2 {
		t.Errorf("vcpus %d: the last assignment wins", c.VCPUs)
	}
	if _, ok := c.Others["memroy"]; !ok {
		t.Error("unknown key not kept in Others")
	}
	if c.Warnings[0].File != "vm.cfg" || c.Warnings[0].Line != 2 || c.Warnings[0].Key != "memroy" {
		t.Errorf("warning fields %+v", c.Warnings[0])
	}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse("/OVS/running_pool/d/vm.cfg", []byte("name = 'd'\nmemory = 'lots'\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%T %v", err, err)
	}
	if e.File != "/OVS/running_pool/d/vm.cfg" || e.Line != 2 || e.Key != "memory" || e.Msg != `"lots" is not an integer number of MiB` {
		t.Errorf("%+v", e)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ParseFile(filepath.Join(dir, "missing.cfg")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ParseFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	big := filepath.Join(dir, "big.cfg")
	if err := os.WriteFile(big, []byte(strings.Repeat("\n", MaxFileSize+1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFile(big); err == nil || err.Error() != big+": file is larger than 1048576 bytes" {
		t.Errorf("big file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := New("vm1", 512)
	ok.Disks = []Disk{{Type: "file", Path: "/OVS/running_pool/vm1/System.img", Device: "xvda", Mode: "w"}}
	ok.VIFs = []VIF{{MAC: "00:16:3e:00:00:01", Bridge: "xenbr0"}}
	ok.Others = map[string]OtherValue{"cpus": {Value: String("0-3")}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"empty name", func(c *Config) { c.Name = "" }, `name: "" is empty`},
		{"memory", func(c *Config) { c.Memory = 0 }, `memory: 0 MiB is out of range (1 to 16777216 MiB)`},
		{"maxmem", func(c *Config) { c.MaxMem = 256 }, `maxmem: maxmem (256 MiB) is less than memory (512 MiB)`},
		{"upper-case uuid", func(c *Config) { c.UUID = "6BCA1D84-E6B5-4F1F-9A7B-3E2A1C0D9E8F" }, `uuid: "6BCA1D84-E6B5-4F1F-9A7B-3E2A1C0D9E8F" is not a UUID in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lower-case hex digits)`},
		{"zero action", func(c *Config) { c.OnCrash = "" }, `on_crash: "" is not one of destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart`},
		{"disk mode", func(c *Config) { c.Disks[0].Mode = "x" }, `disk: disk 0 "file:/OVS/running_pool/vm1/System.img,xvda,x": mode "x" is not r, w or w!`},
		{"disk path comma", func(c *Config) { c.Disks[0].Path = "/a,b" }, `disk: disk 0 "file:/a,b,xvda,w": path "/a,b" contains a comma or a control character`},
		{"duplicate device", func(c *Config) { c.Disks = append(c.Disks, c.Disks[0]) }, `disk: virtual device xvda is used by disk 0 and disk 1`},
		{"vif mac", func(c *Config) { c.VIFs[0].MAC = "01:00:5e:00:00:01" }, `vif: vif 0 "mac=01:00:5e:00:00:01,bridge=xenbr0": mac 01:00:5e:00:00:01 is a multicast address; a network interface needs a unicast one`},
		{"vif param", func(c *Config) { c.VIFs[0].Params = map[string]string{"script": "a b,c"} }, `vif: vif 0 "mac=00:16:3e:00:00:01,bridge=xenbr0,script=a b,c": option script value "a b,c" contains a comma or a control character`},
		{"workload pattern", func(c *Config) { c.WorkloadSpec.Pattern = "" }, `workload: pattern= is not random or sequential`},
		{"workload verify", func(c *Config) { c.WorkloadSpec.VerifyEvery = 0 }, `workload: verify=0s is out of range (10ms to 1h0m0s)`},
		{"workload hb", func(c *Config) { c.WorkloadSpec.HeartbeatEvery = time.Millisecond }, `workload: hb=1ms is out of range (100ms to 1h0m0s)`},
		{"workload touch", func(c *Config) { c.WorkloadSpec.Touch = 100 }, `workload: touch=100 is not a multiple of the 4K page size`},
		{"workload hot+touch", func(c *Config) { c.WorkloadSpec.HotBytes, c.WorkloadSpec.Touch = 256<<20, 257<<20 }, `workload: hot=256M plus touch=257M is larger than memory (512 MiB)`},
		{"workload hot", func(c *Config) { c.WorkloadSpec.HotBytes = 513 << 20 }, `workload: hot=513M is larger than memory (512 MiB)`},
		{"typed key in extra", func(c *Config) { c.Others["memory"] = OtherValue{Value: Int(1)} }, `memory: has a typed field in Config and may not be in Others`},
		{"bad extra key", func(c *Config) { c.Others["a-b"] = OtherValue{Value: Int(1)} }, `a-b: is not a valid option name`},
		{"keyword extra key", func(c *Config) { c.Others["import"] = OtherValue{Value: Int(1)} }, `import: is a Python keyword and cannot be an option name`},
		{"invalid extra value", func(c *Config) { c.Others["x"] = OtherValue{} }, `x: value has no kind (Kind 0)`},
		{"NaN extra value", func(c *Config) { c.Others["x"] = OtherValue{Value: Float(nan())} }, `x: float NaN cannot be written in vm.cfg`},
		{"bad dict key", func(c *Config) {
			c.Others["x"] = OtherValue{Value: Value{Kind: KindDict, Dict: []DictEntry{{Key: None(), Value: Int(1)}}}}
		}, `x: dict key None is not a string or an integer`},
		{"duplicate dict key", func(c *Config) {
			c.Others["x"] = OtherValue{Value: Value{Kind: KindDict, Dict: []DictEntry{{Key: Int(1), Value: Int(1)}, {Key: Int(1), Value: Int(2)}}}}
		}, `x: dict key 1 appears twice`},
		{"too deep extra", func(c *Config) {
			v := Int(1)
			for i := 0; i < MaxDepth+1; i++ {
				v = List(v)
			}
			c.Others["x"] = OtherValue{Value: v}
		}, `x: nested more than 32 levels deep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cloneConfig(ok)
			tt.change(c)
			err := c.Validate()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func nan() float64 {
	zero := 0.0
	return zero / zero
}

// cloneConfig copies the slices and maps of c that tests change.
func cloneConfig(c *Config) *Config {
	n := *c
	n.Disks = append([]Disk(nil), c.Disks...)
	n.VIFs = append([]VIF(nil), c.VIFs...)
	n.VFBs = append([]VFB(nil), c.VFBs...)
	n.Others = map[string]OtherValue{}
	for k, v := range c.Others {
		n.Others[k] = v
	}
	return &n
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "vm.cfg", Line: 7, Key: "memory", Msg: "m"}, "vm.cfg:7: memory: m"},
		{Error{File: "vm.cfg", Line: 7, Msg: "m"}, "vm.cfg:7: m"},
		{Error{File: "vm.cfg", Key: "name", Msg: "m"}, "vm.cfg: name: m"},
		{Error{Line: 3, Key: "k", Msg: "m"}, "line 3: k: m"},
		{Error{Key: "k", Msg: "m"}, "k: m"},
		{Error{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.e, got, tt.want)
		}
	}
	if got := (ErrorList{}).Error(); got != "no errors" {
		t.Errorf("empty list: %q", got)
	}
}

func TestErrorListRedacted(t *testing.T) {
	_, err := Parse("/srv/f", []byte("root:$6$HASH:1:2\nmemory = 'hunter2'\n"))
	var el ErrorList
	if !errors.As(err, &el) {
		t.Fatalf("Parse: %v", err)
	}
	got := el.Redacted()
	for _, w := range []string{"HASH", "root", "hunter2"} {
		if strings.Contains(got, w) {
			t.Errorf("Redacted quotes %q:\n%s", w, got)
		}
	}
	for _, w := range []string{"/srv/f:1: not valid vm.cfg (syntax or value)", "/srv/f:2: not valid vm.cfg (syntax or value)", "/srv/f: name: missing or invalid"} {
		if !strings.Contains(got, w) {
			t.Errorf("Redacted lacks %q:\n%s", w, got)
		}
	}
}
