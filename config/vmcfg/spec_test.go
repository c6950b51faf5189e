package vmcfg

import (
	"fmt"
	"testing"
	"time"
)

func TestParseDisk(t *testing.T) {
	tests := []struct {
		spec string
		want Disk
		str  string // canonical String(); "" means spec itself
	}{
		{"phy:/dev/sdb1,xvda,w", Disk{Type: "phy", Path: "/dev/sdb1", Device: "xvda", Mode: "w"}, ""},
		{"file:/OVS/running_pool/x/System.img,xvda,w", Disk{Type: "file", Path: "/OVS/running_pool/x/System.img", Device: "xvda", Mode: "w"}, ""},
		{"tap:aio:/OVS/running_pool/x/System.img,xvda,r", Disk{Type: "tap:aio", Path: "/OVS/running_pool/x/System.img", Device: "xvda", Mode: "r"}, ""},
		{"tap:tapdisk:aio:/x.img,xvdb,w", Disk{Type: "tap:tapdisk:aio", Path: "/x.img", Device: "xvdb", Mode: "w"}, ""},
		{"tap2:tapdisk:vhd:/x.vhd,xvdb,w", Disk{Type: "tap2:tapdisk:vhd", Path: "/x.vhd", Device: "xvdb", Mode: "w"}, ""},
		{"tap:qcow:sync,xvdb,w", Disk{Type: "tap:qcow", Path: "sync", Device: "xvdb", Mode: "w"}, ""},
		{"phy:/dev/vgxen/sharedvol1,hdc,w!", Disk{Type: "phy", Path: "/dev/vgxen/sharedvol1", Device: "hdc", Mode: "w!"}, ""},
		{"phy:/dev/loop0,hdc:cdrom,r", Disk{Type: "phy", Path: "/dev/loop0", Device: "hdc", CDROM: true, Mode: "r"}, ""},
		{",hdc:cdrom,r", Disk{Device: "hdc", CDROM: true, Mode: "r"}, ""},
		{"file:,hdc:cdrom,r", Disk{Type: "file", Device: "hdc", CDROM: true, Mode: "r"}, ""},
		{"phy:/dev/sdb,ioemu:hda,w", Disk{Type: "phy", Path: "/dev/sdb", Device: "hda", IOEmu: true, Mode: "w"}, ""},
		{"phy:/dev/sdb,hda:disk,w", Disk{Type: "phy", Path: "/dev/sdb", Device: "hda", Mode: "w"}, "phy:/dev/sdb,hda,w"},
		{"file:System-sda.img,hda,w", Disk{Type: "file", Path: "System-sda.img", Device: "hda", Mode: "w"}, ""},
		{"phy:sdb,xvda,w", Disk{Type: "phy", Path: "sdb", Device: "xvda", Mode: "w"}, ""},
		{"iscsi:iqn.2001-04.com.example:storage,xvda,w", Disk{Type: "iscsi", Path: "iqn.2001-04.com.example:storage", Device: "xvda", Mode: "w"}, ""},
		{" phy:/dev/sdb , xvda , w ", Disk{Type: "phy", Path: "/dev/sdb", Device: "xvda", Mode: "w"}, "phy:/dev/sdb,xvda,w"},
		{"phy:/dev/sdb,xvda,w,dom1", Disk{Type: "phy", Path: "/dev/sdb", Device: "xvda", Mode: "w", Backend: "dom1"}, ""},
		{"phy:/dev/sdb,xvda,w,,x86_64-abi", Disk{Type: "phy", Path: "/dev/sdb", Device: "xvda", Mode: "w", Protocol: "x86_64-abi"}, ""},
		{"phy:/dev/sdb,xvda,w,", Disk{Type: "phy", Path: "/dev/sdb", Device: "xvda", Mode: "w"}, "phy:/dev/sdb,xvda,w"},
		{"phy:/dev/sdb,51712,w", Disk{Type: "phy", Path: "/dev/sdb", Device: "51712", Mode: "w"}, ""},
	}
	for _, tt := range tests {
		d, err := ParseDisk(tt.spec)
		if err != nil {
			t.Errorf("ParseDisk(%q): %v", tt.spec, err)
			continue
		}
		if d.Raw != tt.spec {
			t.Errorf("ParseDisk(%q).Raw = %q", tt.spec, d.Raw)
		}
		if !d.Equal(tt.want) {
			t.Errorf("ParseDisk(%q) = %+v, want %+v", tt.spec, d, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.spec
		}
		if d.String() != str {
			t.Errorf("ParseDisk(%q).String() = %q, want %q", tt.spec, d.String(), str)
		}
	}
}

func TestParseDiskErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"", `disk "": want 3 to 5 comma-separated fields (uname,device,mode[,backend[,protocol]]), got 1`},
		{"phy:/dev/sdb,xvda", `disk "phy:/dev/sdb,xvda": want 3 to 5 comma-separated fields (uname,device,mode[,backend[,protocol]]), got 2`},
		{"a,b,c,d,e,f", `disk "a,b,c,d,e,f": want 3 to 5 comma-separated fields (uname,device,mode[,backend[,protocol]]), got 6`},
		{"/dev/sdb,xvda,w", `disk "/dev/sdb,xvda,w": "/dev/sdb" has no type prefix; write phy:/dev/sdb or file:/dev/sdb`},
		{":/dev/sdb,xvda,w", `disk ":/dev/sdb,xvda,w": path "/dev/sdb" has no type`},
		{",xvda,w", `disk ",xvda,w": no uname (type:path); only a CD-ROM drive (device:cdrom) may be empty`},
		{"phy:,xvda,w", `disk "phy:,xvda,w": phy disk has no path`},
		{"PHY:/dev/sdb,xvda,w", `disk "PHY:/dev/sdb,xvda,w": type "PHY" is not a word such as phy, file or tap:aio`},
		{"tap:/x.img,xvda,w", `disk "tap:/x.img,xvda,w": type "tap" needs a sub-type, e.g. tap:aio`},
		{"tap:aio,xvda,w", `disk "tap:aio,xvda,w": type "tap" needs a sub-type, e.g. tap:aio`},
		{"phy:/dev/sdb,,w", `disk "phy:/dev/sdb,,w": no virtual device name (such as xvda or hda)`},
		{"phy:/dev/sdb,xvd a,w", `disk "phy:/dev/sdb,xvd a,w": virtual device "xvd a" must be letters and digits (such as xvda, hdc or 51712)`},
		{"phy:/dev/sdb,hdc:cdrom:cdrom,r", `disk "phy:/dev/sdb,hdc:cdrom:cdrom,r": virtual device "hdc:cdrom" must be letters and digits (such as xvda, hdc or 51712)`},
		{"phy:/dev/sdb,xvda,", `disk "phy:/dev/sdb,xvda,": no mode; use r, w or w!`},
		{"phy:/dev/sdb,xvda,rw", `disk "phy:/dev/sdb,xvda,rw": mode "rw" is not r, w or w!`},
		{"phy:/dev/sd\tb,xvda,w", `disk "phy:/dev/sd\tb,xvda,w": path "/dev/sd\tb" contains a comma or a control character`},
	}
	for _, tt := range tests {
		_, err := ParseDisk(tt.spec)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseDisk(%q)\n got: %v\nwant: %s", tt.spec, err, tt.want)
		}
	}
	// Fields that String could not write back are rejected by check.
	bad := []Disk{
		{Type: "tap:aio", Path: "sync:/x", Device: "xvda", Mode: "w"},
		{Type: "phy:aio", Path: "/x", Device: "xvda", Mode: "w"},
		{Type: "tap:bogus", Path: "/x", Device: "xvda", Mode: "w"},
		{Type: "phy", Path: " /x", Device: "xvda", Mode: "w"},
		{Type: "phy", Path: "/x", Device: "xvda", Mode: "w", Backend: "a,b"},
	}
	for _, d := range bad {
		if err := d.check(); err == nil {
			t.Errorf("check(%+v) passed", d)
		}
	}
}

func TestParseVIF(t *testing.T) {
	tests := []struct {
		spec string
		want VIF
		str  string
	}{
		{"", VIF{}, ""},
		{"  ", VIF{}, ""},
		{"mac=00:16:3e:31:d5:4b, bridge=xenbr0", VIF{MAC: "00:16:3e:31:d5:4b", Bridge: "xenbr0"}, "mac=00:16:3e:31:d5:4b,bridge=xenbr0"},
		{"mac=00:50:56:1e:34:b5 , bridge=xenbr0", VIF{MAC: "00:50:56:1e:34:b5", Bridge: "xenbr0"}, "mac=00:50:56:1e:34:b5,bridge=xenbr0"},
		{"type=netfront, ", VIF{Type: "netfront"}, "type=netfront"},
		{"type=ioemu, mac=00:16:3e:09:bb:c6, bridge=xenbr2, model=e1000", VIF{Type: "ioemu", MAC: "00:16:3e:09:bb:c6", Bridge: "xenbr2", Model: "e1000"}, "type=ioemu,mac=00:16:3e:09:bb:c6,bridge=xenbr2,model=e1000"},
		{"mac=00:16:3E:AB:CD:EF", VIF{MAC: "00:16:3E:AB:CD:EF"}, "mac=00:16:3E:AB:CD:EF"},
		{"mac=00:16:3e:31:d5:4b,bridge=xenbr0,rate=10Mb/s@50ms", VIF{MAC: "00:16:3e:31:d5:4b", Bridge: "xenbr0", Params: map[string]string{"rate": "10Mb/s@50ms"}}, "mac=00:16:3e:31:d5:4b,bridge=xenbr0,rate=10Mb/s@50ms"},
		{"ip=10.0.0.1 fd00::1,vifname=vif-web,script=vif-bridge", VIF{IP: "10.0.0.1 fd00::1", Params: map[string]string{"vifname": "vif-web", "script": "vif-bridge"}}, "ip=10.0.0.1 fd00::1,script=vif-bridge,vifname=vif-web"},
		{"script=a=b", VIF{Params: map[string]string{"script": "a=b"}}, "script=a=b"},
	}
	for _, tt := range tests {
		v, err := ParseVIF(tt.spec)
		if err != nil {
			t.Errorf("ParseVIF(%q): %v", tt.spec, err)
			continue
		}
		if v.Raw != tt.spec || !v.Equal(tt.want) {
			t.Errorf("ParseVIF(%q) = %+v, want %+v", tt.spec, v, tt.want)
		}
		if v.String() != tt.str {
			t.Errorf("ParseVIF(%q).String() = %q, want %q", tt.spec, v.String(), tt.str)
		}
		// Params holds every pair, including the typed ones.
		if tt.want.MAC != "" && v.Params["mac"] != tt.want.MAC {
			t.Errorf("ParseVIF(%q).Params = %v", tt.spec, v.Params)
		}
	}
}

func TestParseVIFErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"xenbr0", `vif "xenbr0": "xenbr0" is not a key=value pair`},
		{"bridge=xenbr0,bridge=xenbr1", `vif "bridge=xenbr0,bridge=xenbr1": option bridge is given twice`},
		{"Bridge=xenbr0", `vif "Bridge=xenbr0": unknown option "Bridge" (known: accel, backend, bridge, ip, label, mac, model, policy, rate, script, type, vifname)`},
		{"bridge=", `vif "bridge=": option bridge has an empty value`},
		{"bridge=averyveryverylongbridge", `vif "bridge=averyveryverylongbridge": bridge "averyveryverylongbridge" is not a network interface name (at most 15 characters, no '/' or blanks)`},
		{"bridge=../x", `vif "bridge=../x": bridge "../x" is not a network interface name (at most 15 characters, no '/' or blanks)`},
		{"mac=00:16:3E:xx:xx:xx", `vif "mac=00:16:3E:xx:xx:xx": mac "00:16:3E:xx:xx:xx" is not a MAC address like 00:16:3e:01:02:03`},
		{"mac=00:16:3e:1:2:3", `vif "mac=00:16:3e:1:2:3": mac "00:16:3e:1:2:3" is not a MAC address like 00:16:3e:01:02:03`},
		{"mac=00-16-3e-01-02-03", `vif "mac=00-16-3e-01-02-03": mac "00-16-3e-01-02-03" is not a MAC address like 00:16:3e:01:02:03`},
		{"mac=00:16:3e:01:02:03:04", `vif "mac=00:16:3e:01:02:03:04": mac "00:16:3e:01:02:03:04" is not a MAC address like 00:16:3e:01:02:03`},
		{"mac=ff:ff:ff:ff:ff:ff", `vif "mac=ff:ff:ff:ff:ff:ff": mac ff:ff:ff:ff:ff:ff is a multicast address; a network interface needs a unicast one`},
		{"mac=00:00:00:00:00:00", `vif "mac=00:00:00:00:00:00": mac 00:00:00:00:00:00 is all zeros`},
		{"ip=10.0.0.300", `vif "ip=10.0.0.300": ip "10.0.0.300" is not an IP address`},
		{"ip=10.0.0.1  10.0.0.2", `vif "ip=10.0.0.1  10.0.0.2": ip "10.0.0.1  10.0.0.2": separate addresses with single spaces`},
		{"script=a\x01b", `vif "script=a\x01b": option script value "a\x01b" contains a comma or a control character`},
	}
	for _, tt := range tests {
		_, err := ParseVIF(tt.spec)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseVIF(%q)\n got: %v\nwant: %s", tt.spec, err, tt.want)
		}
	}
}

func TestVIFFieldsAuthoritative(t *testing.T) {
	v, err := ParseVIF("mac=00:16:3e:00:00:01,bridge=xenbr0,vifname=v1")
	if err != nil {
		t.Fatal(err)
	}
	v.Bridge = "xenbr1"
	v.MAC = ""
	if got := v.String(); got != "bridge=xenbr1,vifname=v1" {
		t.Errorf("String() = %q", got)
	}
	w, _ := ParseVIF("bridge=xenbr1,vifname=v1")
	if !v.Equal(w) {
		t.Errorf("%+v != %+v", v, w)
	}
	w.Params["vifname"] = "v2"
	if v.Equal(w) {
		t.Error("different Params compare equal")
	}
}

// wl returns DefaultWorkload changed by f.
func wl(f func(w *Workload)) Workload {
	w := DefaultWorkload()
	f(&w)
	return w
}

func TestParseWorkload(t *testing.T) {
	tests := []struct {
		spec string
		want Workload
		str  string
	}{
		{"", DefaultWorkload(), ""},
		{"dirty=200M/s,hot=256M,pattern=random", wl(func(w *Workload) { w.DirtyBytesPerSec = 200 << 20; w.HotBytes = 256 << 20 }), "dirty=200M/s,hot=256M"},
		{" dirty = 1G/s , pattern = sequential ,", wl(func(w *Workload) { w.DirtyBytesPerSec = 1 << 30; w.Pattern = PatternSequential }), "dirty=1G/s,pattern=sequential"},
		{"dirty=0", DefaultWorkload(), ""},
		{"dirty=0/s,hot=all,touch=0,verify=1s,hb=1s,seed=1", DefaultWorkload(), ""},
		{"touch=1G,verify=250ms", wl(func(w *Workload) { w.Touch = 1 << 30; w.VerifyEvery = 250 * time.Millisecond }), "touch=1G,verify=250ms"},
		{"hot=4096,touch=8k,dirty=3m/s", wl(func(w *Workload) { w.HotBytes = 4096; w.Touch = 8192; w.DirtyBytesPerSec = 3 << 20 }), "dirty=3M/s,hot=4K,touch=8K"},
		{"dirty=4096/s", wl(func(w *Workload) { w.DirtyBytesPerSec = 4096 }), "dirty=4K/s"},
		{"dirty=6000/s", wl(func(w *Workload) { w.DirtyBytesPerSec = 6000 }), "dirty=6000/s"},
		{"hot=12288", wl(func(w *Workload) { w.HotBytes = 3 * 4096 }), "hot=12K"},
		{"hot=2T", wl(func(w *Workload) { w.HotBytes = 2 << 40 }), "hot=2T"},
		{"verify=1m30s", wl(func(w *Workload) { w.VerifyEvery = 90 * time.Second }), "verify=1m30s"},
		{"verify=10ms,hb=100ms", wl(func(w *Workload) { w.VerifyEvery = 10 * time.Millisecond; w.HeartbeatEvery = 100 * time.Millisecond }), "verify=10ms,hb=100ms"},
		{"hb=1h", wl(func(w *Workload) { w.HeartbeatEvery = time.Hour }), "hb=1h0m0s"},
		{"dirty=64G/s", wl(func(w *Workload) { w.DirtyBytesPerSec = 64 << 30 }), "dirty=64G/s"},
		{"seed=0", wl(func(w *Workload) { w.Seed = 0 }), "seed=0"},
		{"seed=010", wl(func(w *Workload) { w.Seed = 10 }), "seed=10"},
		{"seed=0xFF", wl(func(w *Workload) { w.Seed = 255 }), "seed=255"},
		{"seed=18446744073709551615", wl(func(w *Workload) { w.Seed = ^uint64(0) }), "seed=18446744073709551615"},
		{"seed=0xffffffffffffffff", wl(func(w *Workload) { w.Seed = ^uint64(0) }), "seed=18446744073709551615"},
		{"touch=1G,dirty=0,hot=all", wl(func(w *Workload) { w.Touch = 1 << 30 }), "touch=1G"},
		{"seed=7,hb=2s,verify=3s,touch=4M,pattern=sequential,hot=8M,dirty=1M/s",
			Workload{DirtyBytesPerSec: 1 << 20, HotBytes: 8 << 20, Pattern: PatternSequential, Touch: 4 << 20, VerifyEvery: 3 * time.Second, HeartbeatEvery: 2 * time.Second, Seed: 7},
			"dirty=1M/s,hot=8M,pattern=sequential,touch=4M,verify=3s,hb=2s,seed=7"},
	}
	for _, tt := range tests {
		w, err := ParseWorkload(tt.spec)
		if err != nil {
			t.Errorf("ParseWorkload(%q): %v", tt.spec, err)
			continue
		}
		if w != tt.want {
			t.Errorf("ParseWorkload(%q) = %+v, want %+v", tt.spec, w, tt.want)
		}
		if w.String() != tt.str {
			t.Errorf("ParseWorkload(%q).String() = %q, want %q", tt.spec, w.String(), tt.str)
		}
		if err := w.Validate(); err != nil {
			t.Errorf("ParseWorkload(%q) does not validate: %v", tt.spec, err)
		}
	}
}

func TestParseWorkloadErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"idle", `"idle" is not a key=value pair`},
		{"speed=1", `unknown key "speed" (known: dirty, hot, pattern, touch, verify, hb, seed)`},
		{"Dirty=1M/s", `unknown key "Dirty" (known: dirty, hot, pattern, touch, verify, hb, seed)`},
		{"hot=1M,hot=2M", `hot is given twice`},
		{"hot=all,hot=all", `hot is given twice`},
		{"dirty=200M", `dirty=200M: "200M" is not a rate such as 200M/s`},
		{"dirty=/s", `dirty=/s: "" is not a size such as 4096, 512K, 256M or 1G`},
		{"dirty=65G/s", `dirty=65G/s is out of range (0 to 64G/s)`},
		{"dirty=1T/s", `dirty=1T/s is out of range (0 to 64G/s)`},
		{"dirty=100/s", `dirty=100/s is less than one page (4K) per second`},
		{"dirty=4095/s", `dirty=4095/s is less than one page (4K) per second`},
		{"hot=1.5G", `hot=1.5G: "1.5G" is not a size such as 4096, 512K, 256M or 1G`},
		{"hot=-1", `hot=-1: "-1" is not a size such as 4096, 512K, 256M or 1G`},
		{"hot=1P", `hot=1P: "1P" is not a size such as 4096, 512K, 256M or 1G`},
		{"hot=M", `hot=M: "M" is not a size such as 4096, 512K, 256M or 1G`},
		{"hot=", `hot=: "" is not a size such as 4096, 512K, 256M or 1G`},
		{"hot=ALL", `hot=ALL: "ALL" is not a size such as 4096, 512K, 256M or 1G`},
		{"hot=0", `hot=0: an empty hot set; leave hot out or write hot=all for all of memory`},
		{"hot=0K", `hot=0K: an empty hot set; leave hot out or write hot=all for all of memory`},
		{"hot=1000", `hot=1000 is not a multiple of the 4K page size`},
		{"hot=1k", `hot=1K is not a multiple of the 4K page size`},
		{"touch=1k", `touch=1K is not a multiple of the 4K page size`},
		{"touch=99999999999999999999", `touch=99999999999999999999: "99999999999999999999" is too large`},
		{"touch=9999999T", `touch=9999999T: "9999999T" is too large`},
		{"touch=all", `touch=all: "all" is not a size such as 4096, 512K, 256M or 1G`},
		{"pattern=zigzag", `pattern=zigzag is not random or sequential`},
		{"pattern=Random", `pattern=Random is not random or sequential`},
		{"verify=soon", `verify=soon: "soon" is not a duration such as 500ms or 2s`},
		{"verify=3", `verify=3: "3" is not a duration such as 500ms or 2s`},
		{"verify=0s", `verify=0s is out of range (10ms to 1h0m0s)`},
		{"verify=1ms", `verify=1ms is out of range (10ms to 1h0m0s)`},
		{"verify=2h", `verify=2h0m0s is out of range (10ms to 1h0m0s)`},
		{"verify=-1s", `verify=-1s is out of range (10ms to 1h0m0s)`},
		{"hb=10ms", `hb=10ms is out of range (100ms to 1h0m0s)`},
		{"hb=1h1s", `hb=1h0m1s is out of range (100ms to 1h0m0s)`},
		{"hb=", `hb=: "" is not a duration such as 500ms or 2s`},
		{"seed=-1", `seed=-1: "-1" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
		{"seed=+1", `seed=+1: "+1" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
		{"seed=0x", `seed=0x: "0x" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
		{"seed=0b1", `seed=0b1: "0b1" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
		{"seed=1_000", `seed=1_000: "1_000" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
		{"seed=18446744073709551616", `seed=18446744073709551616: "18446744073709551616" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
		{"seed=0x10000000000000000", `seed=0x10000000000000000: "0x10000000000000000" is not an unsigned 64-bit integer (decimal, or hex with 0x)`},
	}
	for _, tt := range tests {
		_, err := ParseWorkload(tt.spec)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseWorkload(%q)\n got: %v\nwant: %s", tt.spec, err, tt.want)
		}
	}
}

func TestWorkloadMemory(t *testing.T) {
	tests := []struct {
		spec   string
		memMiB int
		want   string
	}{
		{"", 1, ""},
		{"hot=256M,touch=256M", 512, ""},
		{"touch=1G", 2048, ""},
		{"hot=256M,touch=256M", 511, `hot=256M plus touch=256M is larger than memory (511 MiB)`},
		{"hot=1G", 128, `hot=1G is larger than memory (128 MiB)`},
		{"touch=257M", 256, `touch=257M is larger than memory (256 MiB)`},
		{"touch=256M", 256, `touch=256M leaves no memory for a hot set (memory is 256 MiB)`},
	}
	for _, tt := range tests {
		w, err := ParseWorkload(tt.spec)
		if err != nil {
			t.Fatalf("ParseWorkload(%q): %v", tt.spec, err)
		}
		err = w.checkMemory(tt.memMiB)
		if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
			t.Errorf("%q in %d MiB: %v, want %q", tt.spec, tt.memMiB, err, tt.want)
		}
	}
}

// The disk entries as the guide writes them, and the format each declares.
func TestDiskDeclaredFormat(t *testing.T) {
	tests := []struct {
		spec, typ, path, device string
		cdrom                   bool
		format                  string
	}{
		{"phy:/dev/loop0,hdc:cdrom,r", "phy", "/dev/loop0", "hdc", true, ""},
		{"file:/OVS/iso_pool/el5.iso,hdc:cdrom,r", "file", "/OVS/iso_pool/el5.iso", "hdc", true, ""},
		{"tap:aio:/OVS/sharedDisk/data1.img,xvdb,w!", "tap:aio", "/OVS/sharedDisk/data1.img", "xvdb", false, ""},
		{"tap:qcow2:/OVS/running_pool/v/disk.qcow2,xvda,w", "tap:qcow2", "/OVS/running_pool/v/disk.qcow2", "xvda", false, "qcow2"},
		{"tap:tapdisk:qcow2:/x.qcow2,xvda,w", "tap:tapdisk:qcow2", "/x.qcow2", "xvda", false, "qcow2"},
		{"tap:qcow:/x.qcow,xvda,w", "tap:qcow", "/x.qcow", "xvda", false, "qcow"},
		{"tap:vmdk:/x.vmdk,xvda,w", "tap:vmdk", "/x.vmdk", "xvda", false, "vmdk"},
		{"tap2:tapdisk:vhd:/x.vhd,xvda,w", "tap2:tapdisk:vhd", "/x.vhd", "xvda", false, "vpc"},
		{"phy:/dev/vgxen/lvol0,hda,w", "phy", "/dev/vgxen/lvol0", "hda", false, ""},
		{"file:/mnt/el4u5_64_hvm//system.img,hda,w", "file", "/mnt/el4u5_64_hvm//system.img", "hda", false, ""},
		{",hdc:cdrom,r", "", "", "hdc", true, ""},
	}
	for _, tt := range tests {
		d, err := ParseDisk(tt.spec)
		if err != nil {
			t.Errorf("ParseDisk(%q): %v", tt.spec, err)
			continue
		}
		if d.Type != tt.typ || d.Path != tt.path || d.Device != tt.device || d.CDROM != tt.cdrom {
			t.Errorf("ParseDisk(%q) = %+v", tt.spec, d)
		}
		if got := d.DeclaredFormat(); got != tt.format {
			t.Errorf("%q: DeclaredFormat() = %q, want %q", tt.spec, got, tt.format)
		}
	}
}

func TestVIFBridgeOn(t *testing.T) {
	tests := []struct {
		vif     VIF
		host    []string
		want    string
		wantErr bool
	}{
		{VIF{Bridge: "xenbr1"}, nil, "xenbr1", false},
		{VIF{}, []string{"virbr0", "xenbr0", "br0"}, "xenbr0", false},
		{VIF{}, []string{"virbr0", "br1", "br0"}, "br0", false},
		{VIF{}, nil, "", true},
	}
	for _, tt := range tests {
		got, err := tt.vif.BridgeOn(tt.host)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%+v on %v: %q, %v", tt.vif, tt.host, got, err)
		}
	}
	_, err := VIF{}.BridgeOn(nil)
	if want := "the vif has no bridge= and this host has no bridge: create one (such as xenbr0) or give the vif's bridge="; err == nil || err.Error() != want {
		t.Errorf("error %v", err)
	}
}
