package qemu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// baseSpec is a valid Spec with nothing optional.
func baseSpec() Spec {
	return Spec{Accel: AccelTCG, Name: "vm1", UUID: testUUID, MemoryBytes: 256 << 20, VCPUs: 2}
}

// argAfter is the argument after the n-th (0-based) occurrence of flag.
func argAfter(t *testing.T, argv []string, flag string, n int) string {
	t.Helper()
	for i, a := range argv {
		if a == flag && i+1 < len(argv) {
			if n == 0 {
				return argv[i+1]
			}
			n--
		}
	}
	t.Fatalf("no %s (occurrence %d) in %q", flag, n, argv)
	return ""
}

func TestSpecArgvDefaults(t *testing.T) {
	s, err := baseSpec().resolve()
	if err != nil {
		t.Fatal(err)
	}
	argv := s.argv("/dev/shm/x.ram", nil)
	if slices.Contains(argv, "-fw_cfg") {
		t.Errorf("a spec without a generation has a -fw_cfg: %q", argv)
	}
	if argv[0] != DefaultBinary {
		t.Errorf("argv[0] = %q, want %q", argv[0], DefaultBinary)
	}
	for flag, want := range map[string]string{
		"-accel":   "tcg",
		"-cpu":     "qemu64",
		"-machine": "pc,memory-backend=ram0",
		"-m":       "256M",
		"-smp":     "2",
		"-uuid":    testUUID,
		"-name":    "guest=vm1,debug-threads=on",
		"-mon":     "chardev=qmp,mode=control",
		"-serial":  "chardev:ser0",
		"-display": "none",
		"-vga":     "none",
		"-action":  "panic=shutdown",
		"-object":  "memory-backend-file,id=ram0,size=268435456,mem-path=/dev/shm/x.ram,share=on",
	} {
		if got := argAfter(t, argv, flag, 0); got != want {
			t.Errorf("%s %q, want %q", flag, got, want)
		}
	}
	if got := argAfter(t, argv, "-chardev", 0); got != "socket,id=qmp,fd=3" {
		t.Errorf("QMP chardev %q, want fd 3 (the first extra file)", got)
	}
	for _, f := range []string{"-nodefaults", "-no-user-config", "-no-reboot", "-S"} {
		if !slices.Contains(argv, f) {
			t.Errorf("no %s in %q", f, argv)
		}
	}
	for _, f := range []string{"-no-shutdown", "-incoming", "-kernel", "-boot", "-vnc", "-nographic"} {
		if slices.Contains(argv, f) {
			t.Errorf("%s in %q", f, argv)
		}
	}
	if argAfter(t, argv, "-device", 0) != "pvpanic" {
		t.Errorf("no pvpanic device in %q", argv)
	}
	kvm := baseSpec()
	kvm.Accel = AccelKVM
	if s, err := kvm.resolve(); err != nil || s.CPUModel != "host" {
		t.Errorf("kvm CPU model %q, %v; want host", s.CPUModel, err)
	}
}

func TestSpecArgvEverything(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a,b.img")
	iso := filepath.Join(dir, "cd.iso")
	for _, p := range []string{img, iso} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tap0, tap1 := os.Stdin, os.Stdout // any open file: argv only counts them
	s := baseSpec()
	s.Name = "a,b"
	s.Machine = "pc-i440fx-7.2"
	s.Boot = "cd"
	s.Disks = []Disk{{Path: img, Format: "qcow2"}, {Path: iso, Format: "raw", CDROM: true}}
	s.NICs = []NIC{{Tap: tap0, MAC: "00:16:3E:00:00:01"}, {Tap: tap1, MAC: "00:16:3e:00:00:02", Model: "e1000"}}
	s.VNC = &VNC{Listen: "::1", Display: 3, Password: "secret"}
	s.Balloon = true
	s.Incoming = true
	s.Generation = 1234
	r, err := s.resolve()
	if err != nil {
		t.Fatal(err)
	}
	argv := r.argv("/m/x.ram", []string{"file", "file"})
	if got := argAfter(t, argv, "-name", 0); got != "guest=a,,b,debug-threads=on" {
		t.Errorf("-name %q: the comma must be doubled", got)
	}
	if got := argAfter(t, argv, "-boot", 0); got != "order=cd" {
		t.Errorf("-boot %q", got)
	}
	if got := argAfter(t, argv, "-incoming", 0); got != "defer" {
		t.Errorf("-incoming %q", got)
	}
	if got := argAfter(t, argv, "-fw_cfg", 0); got != "name=opt/org.ovs-agent/generation,string=1234" {
		t.Errorf("-fw_cfg %q", got)
	}
	wantBlock := []string{
		`{"driver":"file","filename":"` + img + `","node-name":"disk0-file","read-only":false}`,
		`{"driver":"qcow2","file":"disk0-file","node-name":"disk0","read-only":false}`,
		`{"driver":"file","filename":"` + iso + `","node-name":"disk1-file","read-only":true}`,
		`{"driver":"raw","file":"disk1-file","node-name":"disk1","read-only":true}`,
	}
	for i, w := range wantBlock {
		if got := argAfter(t, argv, "-blockdev", i); got != w {
			t.Errorf("-blockdev %d:\n got %s\nwant %s", i, got, w)
		}
	}
	var devices []string
	for i, a := range argv {
		if a == "-device" {
			devices = append(devices, argv[i+1])
		}
	}
	wantDev := []string{"pvpanic", "virtio-blk-pci,drive=disk0,id=disk0-dev", "ide-cd,drive=disk1,id=disk1-dev,bus=ide.0,unit=0",
		"virtio-net-pci,netdev=net0,id=net0-dev,mac=00:16:3e:00:00:01", "e1000,netdev=net1,id=net1-dev,mac=00:16:3e:00:00:02",
		"virtio-balloon-pci,id=balloon0"}
	if !slices.Equal(devices, wantDev) {
		t.Errorf("devices\n got %q\nwant %q", devices, wantDev)
	}
	// The taps are extra files 1 and 2 (descriptors 4 and 5).
	if a, b := argAfter(t, argv, "-netdev", 0), argAfter(t, argv, "-netdev", 1); a != "tap,id=net0,fd=4" || b != "tap,id=net1,fd=5" {
		t.Errorf("netdevs %q %q, want fd=4 and fd=5", a, b)
	}
	if got := argAfter(t, argv, "-vnc", 0); got != "[::1]:3,password=on" {
		t.Errorf("-vnc %q", got)
	}
	if strings.Contains(strings.Join(argv, " "), "secret") {
		t.Errorf("the VNC password is on the command line: %q", argv)
	}
	if slices.Contains(argv, "-display") {
		t.Errorf("-display with VNC: %q", argv)
	}
}

func TestSpecResolveRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Spec)
		want string
	}{
		"no accel":         {func(s *Spec) { s.Accel = "" }, "no accelerator"},
		"bad accel":        {func(s *Spec) { s.Accel = "hvf" }, "neither kvm nor tcg"},
		"negative gen":     {func(s *Spec) { s.Generation = -1 }, "generation -1"},
		"relative binary":  {func(s *Spec) { s.Binary = "qemu" }, "absolute"},
		"bad machine":      {func(s *Spec) { s.Machine = "pc,accel=kvm" }, "machine type"},
		"bad cpu":          {func(s *Spec) { s.CPUModel = "host x" }, "CPU model"},
		"no name":          {func(s *Spec) { s.Name = "" }, "domain name"},
		"newline name":     {func(s *Spec) { s.Name = "a\nb" }, "domain name"},
		"bad uuid":         {func(s *Spec) { s.UUID = "1234" }, "UUID"},
		"no memory":        {func(s *Spec) { s.MemoryBytes = 0 }, "MiB"},
		"odd memory":       {func(s *Spec) { s.MemoryBytes = 256<<20 + 4096 }, "MiB"},
		"hugetlb odd MiB":  {func(s *Spec) { s.MemoryBytes, s.MemoryBacking = 255<<20, MemoryBackingHugeTLB }, "not a whole number of 2 MiB huge pages"},
		"unknown backing":  {func(s *Spec) { s.MemoryBacking = "huge" }, "want 4k, hugetlb or thp"},
		"no vcpus":         {func(s *Spec) { s.VCPUs = 0 }, "vCPUs"},
		"many vcpus":       {func(s *Spec) { s.VCPUs = 1000 }, "vCPUs"},
		"relative memdir":  {func(s *Spec) { s.MemoryDir = "shm" }, "memory directory"},
		"initrd no kernel": {func(s *Spec) { s.Initrd = "/boot/initrd" }, "without a kernel"},
		"boot and kernel":  {func(s *Spec) { s.Kernel, s.Boot = "/boot/k", "c" }, "direct kernel boot"},
		"bad boot":         {func(s *Spec) { s.Boot = "cc" }, "boot order"},
		"boot letters":     {func(s *Spec) { s.Boot = "x" }, "boot order"},
		"disk no format":   {func(s *Spec) { s.Disks = []Disk{{Path: "/d.img"}} }, "no format"},
		"disk bad format":  {func(s *Spec) { s.Disks = []Disk{{Path: "/d.img", Format: "host_device"}} }, "not one QEMU opens"},
		"disk relative":    {func(s *Spec) { s.Disks = []Disk{{Path: "d.img", Format: "raw"}} }, "absolute"},
		"five cdroms": {func(s *Spec) {
			for range 5 {
				s.Disks = append(s.Disks, Disk{Path: "/d.iso", Format: "raw", CDROM: true})
			}
		}, "CD-ROMs"},
		"nic no tap":    {func(s *Spec) { s.NICs = []NIC{{MAC: "00:16:3e:00:00:01"}} }, "no tap"},
		"nic bad mac":   {func(s *Spec) { s.NICs = []NIC{{Tap: os.Stdin, MAC: "00:16:3e:00:00"}} }, "MAC"},
		"nic bad model": {func(s *Spec) { s.NICs = []NIC{{Tap: os.Stdin, MAC: "00:16:3e:00:00:01", Model: "ne2k"}} }, "model"},
		"vnc bad ip":    {func(s *Spec) { s.VNC = &VNC{Listen: "localhost"} }, "not an IP"},
		"vnc display":   {func(s *Spec) { s.VNC = &VNC{Listen: "127.0.0.1", Display: -1} }, "display"},
		"vnc long pass": {func(s *Spec) { s.VNC = &VNC{Listen: "127.0.0.1", Password: "123456789"} }, "at most 8"},
	} {
		s := baseSpec()
		tc.edit(&s)
		_, err := s.resolve()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "123456789") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}

func TestDiskDriver(t *testing.T) {
	f := filepath.Join(t.TempDir(), "d.img")
	os.WriteFile(f, nil, 0o600)
	if d, err := diskDriver(f); err != nil || d != "file" {
		t.Errorf("regular file: %q, %v", d, err)
	}
	if _, err := diskDriver(filepath.Dir(f)); err == nil || !strings.Contains(err.Error(), filepath.Dir(f)) {
		t.Errorf("directory: %v, want an error naming it", err)
	}
	missing := filepath.Join(t.TempDir(), "missing.img")
	if _, err := diskDriver(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing: %v, want an error naming it", err)
	}
	if _, err := os.Stat("/dev/loop0"); err == nil {
		if d, err := diskDriver("/dev/loop0"); err != nil || d != "host_device" {
			t.Errorf("/dev/loop0: %q, %v; want host_device", d, err)
		}
	}
	if _, err := diskDriver("/dev/null"); err == nil {
		t.Error("/dev/null (a character device) taken as a disk")
	}
}

// splitOpts splits a QEMU option value the way QEMU does: a single comma
// separates, a doubled one is a comma.
func splitOpts(v string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == ',' {
			if i+1 < len(v) && v[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(v[i])
	}
	return append(parts, cur.String())
}

// FuzzSpecArgv: whatever a Spec holds, one that resolve accepts gives a
// command line where no field spills into options of its own, the disk
// paths reach QEMU as they are, and the VNC password is nowhere.
func FuzzSpecArgv(f *testing.F) {
	f.Add("vm1", "pc", "qemu64", "/dev/shm", "console=ttyS0", "/d/a.img", "raw", "00:16:3e:00:00:01", "secret")
	f.Add("a,b=c,debug-threads=off", "q35", "host,+vmx", "/x,share=off", "a,b", "/d/x\",\"driver\":\"y", "qcow2", "00:16:3E:AA:BB:CC", "")
	f.Fuzz(func(t *testing.T, name, machine, cpu, memDir, cmdline, disk, format, mac, password string) {
		s := Spec{Accel: AccelTCG, Name: name, UUID: testUUID, MemoryBytes: 64 << 20, VCPUs: 1, Machine: machine,
			CPUModel: cpu, MemoryDir: memDir, Kernel: "/k", Cmdline: cmdline,
			Disks: []Disk{{Path: disk, Format: format}},
			NICs:  []NIC{{Tap: os.Stdin, MAC: mac}},
			VNC:   &VNC{Listen: "127.0.0.1", Password: password}}
		r, err := s.resolve()
		if err != nil {
			return
		}
		memPath := filepath.Join(r.MemoryDir, "x.ram")
		argv := r.argv(memPath, []string{"file"})
		other := r
		other.VNC = &VNC{Listen: "127.0.0.1", Password: "p"}
		if password == "" {
			other.VNC.Password = ""
		}
		if !slices.Equal(argv, other.argv(memPath, []string{"file"})) {
			t.Fatal("the command line depends on the VNC password")
		}
		if got := splitOpts(argAfter(t, argv, "-name", 0)); !slices.Equal(got, []string{"guest=" + name, "debug-threads=on"}) {
			t.Fatalf("-name splits into %q", got)
		}
		obj := splitOpts(argAfter(t, argv, "-object", 0))
		if len(obj) != 5 || obj[3] != "mem-path="+memPath || obj[4] != "share=on" {
			t.Fatalf("-object splits into %q", obj)
		}
		if got := splitOpts(argAfter(t, argv, "-machine", 0)); !slices.Equal(got, []string{machine, "memory-backend=ram0"}) {
			t.Fatalf("-machine splits into %q", got)
		}
		var b map[string]any
		if err := json.Unmarshal([]byte(argAfter(t, argv, "-blockdev", 0)), &b); err != nil || b["filename"] != disk || b["driver"] != "file" || len(b) != 4 {
			t.Fatalf("-blockdev %v, %v", b, err)
		}
		if err := json.Unmarshal([]byte(argAfter(t, argv, "-blockdev", 1)), &b); err != nil || b["driver"] != format {
			t.Fatalf("-blockdev %v, %v", b, err)
		}
		if got := argAfter(t, argv, "-append", 0); got != cmdline {
			t.Fatalf("-append %q", got)
		}
		if got := splitOpts(argAfter(t, argv, "-cpu", 0)); got[0] != strings.Split(cpu, ",")[0] {
			t.Fatalf("-cpu %q", got)
		}
	})
}
