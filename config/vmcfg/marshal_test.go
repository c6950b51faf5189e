package vmcfg

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"
	"time"
)

// roundTrip checks that Marshal output parses back to an equal Config and
// that marshalling that again gives the same bytes.
func roundTrip(t *testing.T, c *Config) []byte {
	t.Helper()
	out := c.Marshal()
	back, err := Parse("marshalled.cfg", out)
	if err != nil {
		t.Fatalf("Marshal output does not parse: %v\n%s", err, out)
	}
	if !back.Equal(c) {
		t.Fatalf("round trip changed the config:\n got: %+v\nwant: %+v\n%s", back, c, out)
	}
	if len(back.Warnings) != 0 && len(c.Warnings) == 0 {
		t.Errorf("round trip added warnings: %v", back.Warnings)
	}
	if again := back.Marshal(); !bytes.Equal(again, out) {
		t.Fatalf("Marshal is not stable:\n%s\n---\n%s", out, again)
	}
	return out
}

func TestMarshalRoundTripTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.cfg")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	parsed := 0
	for _, f := range files {
		c, err := ParseFile(f)
		if err != nil {
			continue // the examples that must fail are tested elsewhere
		}
		parsed++
		t.Run(filepath.Base(f), func(t *testing.T) { roundTrip(t, c) })
	}
	if parsed < 4 {
		t.Errorf("only %d testdata files parsed", parsed)
	}
}

func TestMarshalCanonical(t *testing.T) {
	c, err := ParseFile("testdata/ovm_template.cfg")
	if err != nil {
		t.Fatal(err)
	}
	want := `# Domain configuration written by ovs-agent.
name = 'OVM_EL5U3_X86_64_PVM_10GB'
uuid = 'c6a2b5e0-37b1-4d0a-8b2e-4f5e6a7b8c9d'
memory = 1024
maxmem = 2048
vcpus = 2
on_poweroff = 'destroy'
on_reboot = 'restart'
on_crash = 'restart'
bootloader = '/usr/bin/pygrub'
disk = [
    'file:/OVS/running_pool/OVM_EL5U3_X86_64_PVM_10GB/System.img,xvda,w',
    'tap:aio:/OVS/sharedDisk/data1.img,xvdb,w!',
    'phy:/dev/mapper/mpath1,xvdc,r',
]
vif = [
    'type=netfront,mac=00:16:3E:12:34:56,bridge=xenbr0',
    'type=netfront,mac=00:16:3e:31:d5:4b,bridge=xenbr1,rate=10Mb/s@50ms',
]
vfb = [
    'type=vnc,vnclisten=0.0.0.0,vncunused=1,vncpasswd=oracle',
]
disk_other_config = [['xvda', 'ionice', 'sched=best-effort,prio=5']]
vif_other_config = [['00:16:3e:31:d5:4b', 'tbf', 'rate=8mbit,latency=50ms']]
`
	if got := string(c.Marshal()); got != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", got, want)
	}
}

func TestMarshalRoundTripBuilt(t *testing.T) {
	c := New("built-1", 768)
	c.UUID = "6bca1d84-e6b5-4f1f-9a7b-3e2a1c0d9e8f"
	c.MaxMem = 1024
	c.VCPUs = 4
	c.OnCrash = ActionCoredumpDestroy
	c.Disks = []Disk{
		{Type: "file", Path: "/OVS/running_pool/built-1/System.img", Device: "xvda", Mode: "w"},
		{Type: "tap:aio", Path: "/OVS/iso_pool/el5.iso", Device: "hdc", CDROM: true, IOEmu: true, Mode: "r", Backend: "0", Protocol: "x86_32-abi"},
		{Device: "hdd", CDROM: true, Mode: "r"},
	}
	c.VIFs = []VIF{
		{},
		{MAC: "00:16:3e:aa:bb:cc", Bridge: "xenbr0", Type: "ioemu", Model: "e1000", IP: "10.1.1.5 fd00::5",
			Params: map[string]string{"rate": "10Mb/s@50ms", "vifname": "web0", "mac": "stale, ignored"}},
	}
	c.WorkloadSpec = Workload{DirtyBytesPerSec: 100 << 20, HotBytes: 128 << 20, Pattern: PatternRandom, Touch: 512 << 20, VerifyEvery: 1500 * time.Millisecond,
		HeartbeatEvery: 250 * time.Millisecond, Seed: 1 << 63}
	// Informational options, and flags on what QEMU does anyway, so that
	// the re-parse has no warnings; every kind of value.
	c.Others = map[string]OtherValue{
		"description":   {Value: String("/boot/vmlinuz-2.6.18 'quoted' \"both\"\\")},
		"guest_os_type": {Value: String("console=hvc0\tnl\n\x00\xff é \u2028")},
		"pae":           {Value: Bool(true)},
		"acpi":          {Value: Int(-9223372036854775808)},
		"apic":          {Value: List(Float(256), Float(math.Copysign(0, -1)), Bool(false), None(), Tuple(String("01:00.0")), Tuple())},
		"hpet":          {Value: Value{Kind: KindDict, Dict: []DictEntry{{Key: String("1"), Value: Value{Kind: KindDict, Dict: []DictEntry{{Key: Int(-3), Value: List()}}}}}}},
		"stdvga":        {Value: List(Int(-9223372036854775808), Int(9223372036854775807), Float(1e300), Float(5e-324))},
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
}

func TestMarshalDefaultWorkloadOmitted(t *testing.T) {
	c := New("d", 64)
	c.Workload = "dirty=0" // as written; the spec is the default
	out := string(c.Marshal())
	if bytes.Contains([]byte(out), []byte("workload")) {
		t.Errorf("default workload written:\n%s", out)
	}
	roundTrip(t, c)
}

// Equal must see every difference, or the round-trip tests could not fail.
func TestEqualDetectsDifferences(t *testing.T) {
	base, err := ParseFile("testdata/ovm_template.cfg")
	if err != nil {
		t.Fatal(err)
	}
	if !base.Equal(cloneConfig(base)) {
		t.Fatal("a copy is not equal")
	}
	changes := map[string]func(c *Config){
		"name":           func(c *Config) { c.Name = "other" },
		"uuid":           func(c *Config) { c.UUID = "" },
		"memory":         func(c *Config) { c.Memory++ },
		"maxmem":         func(c *Config) { c.MaxMem++ },
		"vcpus":          func(c *Config) { c.VCPUs++ },
		"on_poweroff":    func(c *Config) { c.OnPoweroff = ActionPreserve },
		"on_reboot":      func(c *Config) { c.OnReboot = ActionDestroy },
		"on_crash":       func(c *Config) { c.OnCrash = ActionDestroy },
		"workload":       func(c *Config) { c.WorkloadSpec.Touch++ },
		"workload hb":    func(c *Config) { c.WorkloadSpec.HeartbeatEvery++ },
		"workload seed":  func(c *Config) { c.WorkloadSpec.Seed++ },
		"memory_backing": func(c *Config) { c.MemoryBacking = "thp" },
		"disk count":     func(c *Config) { c.Disks = c.Disks[1:] },
		"disk mode":      func(c *Config) { c.Disks[0].Mode = ModeRead },
		"disk cdrom":     func(c *Config) { c.Disks[0].CDROM = true },
		"vif count":      func(c *Config) { c.VIFs = c.VIFs[1:] },
		"vif bridge":     func(c *Config) { c.VIFs[0].Bridge = "xenbr9" },
		"vif param": func(c *Config) {
			c.VIFs[1].Params = map[string]string{"rate": "1Mb/s"}
		},
		"vif param removed": func(c *Config) { c.VIFs[1].Params = nil },
		"other removed":     func(c *Config) { delete(c.Others, "disk_other_config") },
		"other renamed": func(c *Config) {
			c.Others["disk_other_config2"] = c.Others["disk_other_config"]
			delete(c.Others, "disk_other_config")
		},
		"other value": func(c *Config) { c.Others["cpus"] = OtherValue{Value: String("1")} },
		"other kind":  func(c *Config) { c.Others["disk_other_config"] = OtherValue{Value: String("x")} },
		"kernel":      func(c *Config) { c.Kernel = "/boot/vmlinuz" },
		"ramdisk":     func(c *Config) { c.Ramdisk = "/boot/initrd" },
		"extra":       func(c *Config) { c.Extra = "quiet" },
		"root":        func(c *Config) { c.Root = "/dev/xvda1" },
		"bootloader":  func(c *Config) { c.Bootloader = "pygrub" },
		"bootargs":    func(c *Config) { c.BootloaderArgs = "--entry=1" },
		"builder":     func(c *Config) { c.Builder = BuilderHVM },
		"boot":        func(c *Config) { c.Boot = "d" },
		"serial":      func(c *Config) { c.Serial = "none" },
		"vfb count":   func(c *Config) { c.VFBs = nil },
		"vfb type":    func(c *Config) { c.VFBs[0].Type = VFBSDL },
		"vfb listen":  func(c *Config) { c.VFBs[0].VNCListen = "" },
		"vfb unused":  func(c *Config) { c.VFBs[0].VNCUnused = false },
		"vfb display": func(c *Config) { c.VFBs[0].VNCDisplay = 0 },
		"vfb passwd":  func(c *Config) { c.VFBs[0].VNCPasswd = "other" },
		"vfb keymap":  func(c *Config) { c.VFBs[0].Keymap = "de" },
		"vfb param":   func(c *Config) { c.VFBs[0].Params = map[string]string{"display": ":0"} },
	}
	for name, change := range changes {
		c := cloneConfig(base)
		c.VIFs = nil
		for _, v := range base.VIFs {
			p := map[string]string{}
			for k, val := range v.Params {
				p[k] = val
			}
			v.Params = p
			c.VIFs = append(c.VIFs, v)
		}
		change(c)
		if c.Equal(base) || base.Equal(c) {
			t.Errorf("%s: change not seen by Equal", name)
		}
	}
	var nilc *Config
	if !nilc.Equal(nil) || nilc.Equal(base) || base.Equal(nil) {
		t.Error("nil handling")
	}
	// What Equal ignores.
	c := cloneConfig(base)
	c.Disks[0].Raw = "x"
	c.Workload = "something else"
	c.Warnings = []Warning{{Message: "w"}}
	ev := c.Others["disk_other_config"]
	ev.Line, ev.Raw, ev.Value.Line = 99, "raw", 99
	c.Others["disk_other_config"] = ev
	c.VFBs[0].Raw = "raw"
	if !c.Equal(base) {
		t.Error("Equal looks at Raw, Workload, Warnings or lines")
	}
}

func TestValueEqual(t *testing.T) {
	vals := []Value{
		String("1"), String("2"), Int(1), Int(2), Float(1), Float(2), Float(0), Float(math.Copysign(0, -1)),
		Bool(true), Bool(false), None(), List(), List(Int(1)), List(Int(2)), List(Int(1), Int(1)),
		Tuple(), Tuple(Int(1)),
		{Kind: KindDict}, {Kind: KindDict, Dict: []DictEntry{{String("a"), Int(1)}}},
		{Kind: KindDict, Dict: []DictEntry{{String("a"), Int(2)}}},
		{Kind: KindDict, Dict: []DictEntry{{String("b"), Int(1)}}},
	}
	for i, a := range vals {
		for j, b := range vals {
			if got := a.Equal(b); got != (i == j) {
				t.Errorf("%s (%s) Equal %s (%s) = %v", a, a.Kind, b, b.Kind, got)
			}
		}
	}
	if got := Kind(42).String(); got != "Kind(42)" {
		t.Errorf("Kind(42).String() = %q", got)
	}
}
