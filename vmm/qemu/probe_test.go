package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeBinary writes a shell script that prints out on --version.
func fakeBinary(t *testing.T, script string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbeVersionParsesDebian(t *testing.T) {
	bin := fakeBinary(t, `echo 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)'; echo 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers'`)
	v, err := ProbeVersion(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	want := Version{Major: 7, Minor: 2, Micro: 22, Package: "Debian 1:7.2+dfsg-7+deb12u18+b2"}
	if v != want {
		t.Fatalf("version %+v, want %+v", v, want)
	}
	if v.String() != "QEMU 7.2.22" {
		t.Fatalf("String %q", v.String())
	}
}

func TestProbeVersionTooOld(t *testing.T) {
	bin := fakeBinary(t, `echo 'QEMU emulator version 5.2.0 (Debian 1:5.2+dfsg-11+deb11u2)'`)
	v, err := ProbeVersion(context.Background(), bin)
	if !errors.Is(err, ErrTooOld) {
		t.Fatalf("5.2.0: err %v, want ErrTooOld", err)
	}
	if v.Major != 5 || !strings.Contains(err.Error(), "5.2.0") || !strings.Contains(err.Error(), "7.2") {
		t.Fatalf("error does not name both versions: %v", err)
	}
}

func TestProbeVersionMissingBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "no-qemu")
	_, err := ProbeVersion(context.Background(), bin)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), bin) {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestProbeVersionNotQEMU(t *testing.T) {
	for name, script := range map[string]string{
		"other program": `echo 'Python 3.11.2'`,
		"fails":         `echo 'qemu: cannot open display' >&2; exit 1`,
		"endless":       `yes 'QEMU emulator version 9.9.9' | head -c 10000000 | tr -d '\n'`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ProbeVersion(context.Background(), fakeBinary(t, script)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"QEMU emulator version 8.0.4\n":                       {Major: 8, Minor: 0, Micro: 4},
		"QEMU emulator version 9.1 (v9.1.0-dirty)\nCopyright": {Major: 9, Minor: 1, Package: "v9.1.0-dirty"},
	} {
		v, err := ParseVersion([]byte(in))
		if err != nil || v != want {
			t.Errorf("%q: %+v %v, want %+v", in, v, err, want)
		}
	}
	for _, in := range []string{"", "QEMU emulator version x.y", "QEMU emulator version 99999999999999999999.1"} {
		if v, err := ParseVersion([]byte(in)); err == nil {
			t.Errorf("%q accepted as %+v", in, v)
		}
	}
}

func FuzzParseVersion(f *testing.F) {
	f.Add([]byte("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b2)\n"))
	f.Add([]byte("QEMU emulator version 10.0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVersion(b)
		if err == nil && (v.Major < 0 || v.Major > 1<<16 || v.Minor > 1<<16 || v.Micro > 1<<16) {
			t.Fatalf("%q gave %+v", b, v)
		}
	})
}

func TestProbeVersionRealQEMU(t *testing.T) {
	if _, err := os.Stat(DefaultBinary); err != nil {
		t.Skipf("no %s: %v", DefaultBinary, err)
	}
	v, err := ProbeVersion(context.Background(), DefaultBinary)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (%s)", v, v.Package)
}

// fakeHost points ProbeAccel at files of the test's.
func fakeHost(t *testing.T, kvm bool, flags string, pvm bool) {
	dir := t.TempDir()
	old := [3]string{kvmDevice, cpuinfo, pvmModule}
	t.Cleanup(func() { kvmDevice, cpuinfo, pvmModule = old[0], old[1], old[2] })
	kvmDevice = filepath.Join(dir, "kvm")
	cpuinfo = filepath.Join(dir, "cpuinfo")
	pvmModule = filepath.Join(dir, "kvm_pvm")
	if kvm {
		os.WriteFile(kvmDevice, nil, 0o600)
	}
	os.WriteFile(cpuinfo, []byte("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: "+flags+"\n\nprocessor\t: 1\n"), 0o644)
	if pvm {
		os.Mkdir(pvmModule, 0o755)
	}
}

func TestProbeAccel(t *testing.T) {
	for _, c := range []struct {
		name      string
		kvm       bool
		flags     string
		pvm       bool
		want, why string
	}{
		{"vmx", true, "fpu vme vmx sse", false, AccelKVM, "not PVM"},
		{"svm", true, "fpu svm", false, AccelKVM, "not PVM"},
		{"no /dev/kvm", false, "fpu vmx", false, AccelTCG, "does not open"},
		{"no vmx or svm", true, "fpu sse", false, AccelTCG, "neither vmx nor svm"},
		{"PVM", true, "fpu vmx", true, AccelTCG, "PVM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fakeHost(t, c.kvm, c.flags, c.pvm)
			accel, why := ProbeAccel()
			if accel != c.want || !strings.Contains(why, c.why) {
				t.Fatalf("%s (%s), want %s (%q)", accel, why, c.want, c.why)
			}
		})
	}
}

func TestProbeAccelThisHost(t *testing.T) {
	accel, why := ProbeAccel()
	t.Logf("%s: %s", accel, why)
	if _, err := os.Stat("/sys/module/kvm_pvm"); err == nil && accel != AccelTCG {
		t.Fatalf("PVM host probed as %s (%s)", accel, why)
	}
	if _, err := os.Stat("/dev/kvm"); err != nil && accel != AccelTCG {
		t.Fatalf("no /dev/kvm, probed %s", accel)
	}
}
