package vmcfg

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts Marshal writes
// back to an equal Config, byte-stable on a second round.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.cfg")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"name = 'd'\n",
		"name = 'd'; memory = 512; vcpus = 2\n",
		"name = \"d\"\nx = [1, (2,), {'a': None, 3: True}, -4.5e-3, 0x1f, 0o7, 0b1, 1_0]\n",
		"name = r'd'\nx = '''multi\nline''' 'concat' \"\\x41\\u00e9\\101\\q\"\n",
		"name = 'd'\nx = \\\n  [1,\n  # c\n  2,]\n",
		"name = 'd'\nmemory = '512'\nmaxmem = 1024\nworkload = 'dirty=200M/s,hot=256M,pattern=random,touch=512M,verify=2s'\n",
		"name = 'd'\ndisk = ['phy:/dev/sdb,xvda,w', 'tap:aio:/x,xvdb,w!', ',hdc:cdrom,r', 'phy:/dev/sdc,ioemu:hdd,r,0,x86_64-abi']\n",
		"name = 'd'\nvif = ['', 'type=ioemu, mac=00:16:3E:09:bb:c6, bridge=xenbr2, model=e1000, ip=10.0.0.1 ::1, rate=1MB/s@20ms']\n",
		"name = 'd'\nuuid = 'C6A2B5E0-37B1-4D0A-8B2E-4F5E6A7B8C9D'\non_crash = 'coredump-restart'\n",
		"name = 'd'\nx = 1,\ny = (1)\nz = ((1, 2))\n",
		"name = 'd'\r\nx = [1,\r\n2]\r\n",
		"\xef\xbb\xbfname = 'd'\n",
		"name = 'd'\nx = -9223372036854775808\ny = 1e308\nz = -0.0\n",
		"import os\nname = 'd'\nmemory = 'lots'\n",
		"name = 'd'\nx = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
		"name = 'd'\nx = 'unterminated\n",
		"name = 'd'\nx = {1: 2, 1: 3}\n",
		"name = 'd'\nmemroy = 1\nname = 'e'\n",
		"name = 'd'\nkernel = '/k'\nramdisk = '/i'\nroot = 'root=/dev/xvda1'\nextra = 'console=ttyS0'\n",
		"name = 'd'\nbootloader = '/usr/bin/pygrub'\nbootargs = '-q'\nvfb = ['type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secretpw']\n",
		"name = 'd'\nbuilder = 'hvm'\nboot = 'dc'\nvnc = 1\nvnclisten = '::1'\nvncunused = 0\nvncdisplay = 3\nvncpasswd = 'secretpw'\nkeymap = 'de'\nsdl = 1\n",
		"name = 'd'\nkernel = '/usr/lib/xen/boot/hvmloader'\nbuilder = 'hvm'\nserial = 'pty'\npci = ['01:00.0']\nacpi = 0\n",
		"name = 'd'\nworkload = 'dirty=1M/s'\nbootloader = 'pygrub'\n",
		"name = 'd'\nbootloader = 'pygrub'\nbootargs = '-q --entry=\"EL 5\" -i'\n",
		"name = 'd'\nkernel = '/k'\nvfb = ['type=sdl,display=:0,xauthority=/x', 'type=vnc,vncpasswd=secretpw,keymap=fr']\nvif = ['script=/x,rate=1Mb/s']\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.cfg", data)
		if err != nil {
			if c != nil {
				t.Fatal("Parse returned a Config with an error")
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		checkSecret(t, data, c)
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
		out := c.Marshal()
		back, err := Parse("marshalled.cfg", out)
		if err != nil {
			t.Fatalf("Marshal output does not parse: %v\ninput: %q\noutput:\n%s", err, data, out)
		}
		if !back.Equal(c) {
			t.Fatalf("round trip changed the config\ninput: %q\noutput:\n%s\n got: %+v\nwant: %+v", data, out, back, c)
		}
		if again := back.Marshal(); !bytes.Equal(again, out) {
			t.Fatalf("Marshal not stable:\n%s\n---\n%s", out, again)
		}
	})
}

// checkSecret: a VNC password of an accepted file is in no warning and
// not in Redacted().Marshal(). Only a password of 6 bytes or more that
// occurs once in the file is checked, so that it cannot also be part of
// another value the warnings or the text show.
func checkSecret(t *testing.T, data []byte, c *Config) {
	red := string(c.Redacted().Marshal())
	full := string(c.Marshal())
	for _, v := range c.VFBs {
		pw := v.VNCPasswd
		if len(pw) < 6 || bytes.Count(data, []byte(pw)) != 1 || strings.Contains(RedactedPassword, pw) {
			continue
		}
		for _, w := range c.Warnings {
			if strings.Contains(w.String(), pw) {
				t.Fatalf("warning %q shows the password %q\ninput: %q", w.String(), pw, data)
			}
		}
		// Marshal writes the password once per frame buffer that has it;
		// the redacted text has every other occurrence and no more.
		own := 0
		for _, o := range c.VFBs {
			own += strings.Count(o.VNCPasswd, pw)
		}
		if n, m := strings.Count(red, pw), strings.Count(full, pw); n > m-own {
			t.Fatalf("Redacted().Marshal() shows the password %q:\n%s", pw, red)
		}
	}
}

// FuzzParseVFB: no panic; an accepted entry's String parses back equal; an
// error never shows the password.
func FuzzParseVFB(f *testing.F) {
	for _, s := range []string{
		"type=vnc", "type=vnc,vnclisten=0.0.0.0,vncunused=1,vncdisplay=1,vncpasswd=secret",
		" type = sdl , display=:0 ,", "type=vnc,keymap=de,vncunused=no", "type=vnc,vncpasswd=a b",
		"type=vnc,vncpasswd=secret,vncdisplay=x", "vncpassword=secret", "type=vnc,vnclisten=::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVFB(s)
		if err != nil {
			return
		}
		back, err := ParseVFB(v.String())
		if err != nil {
			t.Fatalf("ParseVFB(%q).String() = %q does not parse: %v", s, v.String(), err)
		}
		if !back.Equal(v) {
			t.Fatalf("ParseVFB(%q) = %+v, re-parsed %+v", s, v, back)
		}
	})
}

// FuzzParseDisk: no panic; an accepted entry's String parses back equal.
func FuzzParseDisk(f *testing.F) {
	for _, s := range []string{
		"phy:/dev/sdb1,xvda,w", "file:/OVS/running_pool/x/System.img,xvda,w",
		"tap:aio:/x.img,xvda,r", "tap:tapdisk:aio:/x,xvdb,w!", "tap:qcow:sync,xvdb,w",
		"phy:/dev/loop0,hdc:cdrom,r", ",hdc:cdrom,r", "phy:/dev/sdb,ioemu:hda,w",
		"phy:/dev/sdb,hda:disk,w", " phy:/dev/sdb , xvda , w ", "phy:/dev/sdb,xvda,w,,x86_64-abi",
		"iscsi:iqn.2001-04.com.example:storage,xvda,w", "/dev/sdb,xvda,w", "tap:aio,xvda,w",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDisk(s)
		if err != nil {
			return
		}
		back, err := ParseDisk(d.String())
		if err != nil {
			t.Fatalf("ParseDisk(%q).String() = %q does not parse: %v", s, d.String(), err)
		}
		if !back.Equal(d) {
			t.Fatalf("ParseDisk(%q) = %+v, re-parsed %+v", s, d, back)
		}
	})
}

// FuzzParseVIF: no panic; an accepted entry's String parses back equal.
func FuzzParseVIF(f *testing.F) {
	for _, s := range []string{
		"", " ", "mac=00:16:3e:31:d5:4b, bridge=xenbr0", "type=netfront, ",
		"type=ioemu, mac=00:16:3e:09:bb:c6, bridge=xenbr2, model=e1000",
		"mac=00:16:3e:31:d5:4b,bridge=xenbr0,rate=10Mb/s@50ms", "ip=10.0.0.1 fd00::1,vifname=v",
		"script=a=b", "mac=00:16:3E:xx:xx:xx", "bridge=", "colour=red",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVIF(s)
		if err != nil {
			return
		}
		back, err := ParseVIF(v.String())
		if err != nil {
			t.Fatalf("ParseVIF(%q).String() = %q does not parse: %v", s, v.String(), err)
		}
		if !back.Equal(v) {
			t.Fatalf("ParseVIF(%q) = %+v, re-parsed %+v", s, v, back)
		}
	})
}

// FuzzParseWorkload: no panic; an accepted spec's String parses back equal.
func FuzzParseWorkload(f *testing.F) {
	for _, s := range []string{
		"", "dirty=200M/s,hot=256M,pattern=random", "touch=1G,verify=250ms",
		"dirty=0", "hot=4096,touch=8k,dirty=3m/s", "verify=1m30s", "dirty=64G/s",
		"hot=1.5G", "verify=2h", "pattern=sequential, ,", "hot=all,touch=1G,dirty=0",
		"hb=100ms,seed=0xdeadbeef", "seed=18446744073709551615", "seed=0x", "hot=0",
		"dirty=4K/s,hot=4k", "seed=7,hb=2s,verify=3s,touch=4M,pattern=sequential,hot=8M,dirty=1M/s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWorkload(s)
		if err != nil {
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("ParseWorkload(%q) = %+v, which does not validate: %v", s, w, err)
		}
		str := w.String()
		if strings.Contains(str, ",,") {
			t.Fatalf("bad String %q", str)
		}
		back, err := ParseWorkload(str)
		if err != nil {
			t.Fatalf("ParseWorkload(%q).String() = %q does not parse: %v", s, str, err)
		}
		if back != w {
			t.Fatalf("ParseWorkload(%q) = %+v, re-parsed %+v", s, w, back)
		}
	})
}

// FuzzParsePygrubArgs: no panic; what it accepts has paths vm.cfg can
// hold, and quoting a word that needs none changes nothing.
func FuzzParsePygrubArgs(f *testing.F) {
	for _, s := range []string{
		"", "-q", "--entry=1", `-q --entry="Enterprise Linux (2.6.18)"`, "--kernel=/boot/vmlinuz --ramdisk='/boot/initrd x'",
		`--entry=a\ b -i`, "--args=quiet", "--entry='1", `"\"`, `a\`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePygrubArgs(s)
		if err != nil {
			return
		}
		for _, path := range []string{p.Kernel, p.Ramdisk} {
			if msg := checkPath(path); msg != "" {
				t.Fatalf("ParsePygrubArgs(%q) accepted path %q: %s", s, path, msg)
			}
		}
		if p.Entry != "" && !strings.ContainsAny(p.Entry, "'\"\\ \t") {
			back, err := ParsePygrubArgs("--entry=" + p.Entry)
			if err != nil || back.Entry != p.Entry {
				t.Fatalf("entry %q does not read back: %+v %v", p.Entry, back, err)
			}
		}
	})
}
