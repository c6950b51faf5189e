package qemuhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/vmm/qemu"
)

const machineHelp = `Supported machines are:
microvm              microvm (i386)
pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)
pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)
pc-i440fx-7.1        Standard PC (i440FX + PIIX, 1996)
q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)
pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)
none                 empty machine
`

func TestParseMachinesListsTypesAndAliasTargets(t *testing.T) {
	got, err := ParseMachines([]byte(machineHelp))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"microvm", "pc", "pc-i440fx-7.2", "pc-i440fx-7.1", "q35", "pc-q35-7.2", "none"}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseMachines = %q, want %q", got, want)
	}
	for _, bad := range []string{
		"", "qemu-system-x86_64: -machine: unknown option\n",
		"Supported machines are:\npc$(reboot) Standard\n",
		"Supported machines are:\n",
		"Supported machines are:\n" + strings.Repeat("x", MaxMachineName+1) + " long\n",
	} {
		if ms, err := ParseMachines([]byte(bad)); err == nil {
			t.Errorf("ParseMachines(%q) = %q, want an error", bad, ms)
		}
	}
}

// The installed QEMU lists the machine type this project's guests use.
func TestListMachinesOfTheInstalledQEMU(t *testing.T) {
	if _, err := os.Stat(qemu.DefaultBinary); err != nil {
		t.Skipf("%s: %v (apt-get install qemu-system-x86)", qemu.DefaultBinary, err)
	}
	ms, err := ListMachines(context.Background(), qemu.DefaultBinary)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ms, "pc") || !slices.Contains(ms, "q35") {
		t.Fatalf("machine types of %s: %q, want pc and q35 among them", qemu.DefaultBinary, ms)
	}
}

// fakeBinary is a file standing for a QEMU program (never run: the
// probes are fakes).
func fakeBinary(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	if err := os.WriteFile(p, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// probes counts what a Host asked.
type probes struct {
	versions, machines int
	version            qemu.Version
	versionErr         error
	accel, why         string
}

func (p *probes) host(binary, accel string) *Host {
	return New(Options{Binary: binary, Accel: accel,
		ProbeAccel: func() (string, string) { return p.accel, p.why },
		ProbeVersion: func(_ context.Context, b string) (qemu.Version, error) {
			p.versions++
			return p.version, p.versionErr
		},
		Machines: func(_ context.Context, b string) ([]string, error) {
			p.machines++
			return ParseMachines([]byte(machineHelp))
		},
	})
}

func TestVersionAndMachinesAreCachedUntilTheBinaryChanges(t *testing.T) {
	bin := fakeBinary(t)
	p := &probes{version: qemu.Version{Major: 7, Minor: 2, Micro: 22}, accel: "tcg", why: "no vmx"}
	h := p.host(bin, "auto")
	ctx := context.Background()
	for range 3 {
		if _, v, err := h.Version(ctx); err != nil || v.String() != "QEMU 7.2.22" {
			t.Fatalf("Version = %v, %v", v, err)
		}
		if _, err := h.Machines(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if p.versions != 1 || p.machines != 1 {
		t.Fatalf("asked the binary %d times for its version and %d for its machines, want once each", p.versions, p.machines)
	}
	// An upgrade (another build at the same path) is asked again.
	if err := os.WriteFile(bin, []byte("#!/bin/false\n# 7.2.23\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(bin, later, later); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Version(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Machines(ctx); err != nil {
		t.Fatal(err)
	}
	if p.versions != 2 || p.machines != 2 {
		t.Fatalf("after the binary changed: %d version and %d machine probes, want 2 each", p.versions, p.machines)
	}
}

func TestMissingOrTooOldBinaryIsNotReadyAndSaysWhatToDo(t *testing.T) {
	p := &probes{accel: "tcg", why: "no vmx"}
	missing := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	_, _, err := p.host(missing, "auto").Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "is not installed: apt-get install qemu-system-x86, or set [qemu] binary") {
		t.Fatalf("Ready with no binary: %v", err)
	}
	_, _, err = p.host("no-such-qemu-here", "auto").Ready(context.Background())
	if err == nil || err.Error() != "no-such-qemu-here is not installed: apt-get install qemu-system-x86, or set [qemu] binary" {
		t.Fatalf("Ready with a command not in PATH: %v", err)
	}
	if p.versions != 0 {
		t.Fatalf("a missing binary was asked its version")
	}
	p.version, p.versionErr = qemu.Version{Major: 6, Minor: 2}, fmt.Errorf("x is QEMU 6.2.0: %w", qemu.ErrTooOld)
	h := p.host(fakeBinary(t), "auto")
	_, _, err = h.Ready(context.Background())
	if !errors.Is(err, qemu.ErrTooOld) || !strings.Contains(err.Error(), "install a newer qemu-system-x86") {
		t.Fatalf("Ready with QEMU 6.2: %v", err)
	}
	f := h.Facts(context.Background())
	if f.Usable || f.Version != "QEMU 6.2.0" || !strings.Contains(f.Problem, "too old") {
		t.Fatalf("Facts with QEMU 6.2: %+v", f)
	}
	// A failure is not cached: a newer QEMU installed since is found.
	p.version, p.versionErr = qemu.Version{Major: 7, Minor: 2}, nil
	if _, _, err := h.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after the upgrade: %v", err)
	}
}

func TestAccelFollowsTheProbeAndRefusesKVMWithoutIt(t *testing.T) {
	bin := fakeBinary(t)
	p := &probes{version: qemu.Version{Major: 7, Minor: 2}, accel: "tcg", why: "/dev/kvm is PVM's"}
	for _, tc := range []struct {
		setting, probe, want, why, err string
	}{
		{"auto", "tcg", "tcg", "auto: /dev/kvm is PVM's", ""},
		{"auto", "kvm", "kvm", "auto: /dev/kvm is PVM's", ""},
		{"tcg", "kvm", "tcg", "[qemu] accel = tcg", ""},
		{"kvm", "kvm", "kvm", "[qemu] accel = kvm; /dev/kvm is PVM's", ""},
		{"kvm", "tcg", "", "/dev/kvm is PVM's", "[qemu] accel = kvm, but this host has no usable hardware virtualization: /dev/kvm is PVM's (set [qemu] accel = auto or tcg)"},
	} {
		p.accel = tc.probe
		h := p.host(bin, tc.setting)
		a, why, err := h.Accel()
		if a != tc.want || why != tc.why || fmt.Sprint(err) != map[bool]string{true: "<nil>", false: tc.err}[tc.err == ""] {
			t.Errorf("accel = %s, probe %s: %q, %q, %v; want %q, %q, %q", tc.setting, tc.probe, a, why, err, tc.want, tc.why, tc.err)
		}
		f := h.Facts(context.Background())
		if f.Usable != (tc.err == "") || f.Accel != tc.want || f.Version != "QEMU 7.2.0" || f.Binary != bin {
			t.Errorf("accel = %s, probe %s: Facts %+v", tc.setting, tc.probe, f)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]string{"QEMU 7.2.22": "QEMU 7.2.22", "QEMU 8.1": "QEMU 8.1.0", " QEMU 10.0.3 ": "QEMU 10.0.3"} {
		if v, ok := ParseVersion(s); !ok || v.String() != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %s", s, v, ok, want)
		}
	}
	for _, s := range []string{"", "7.2.22", "QEMU 7", "QEMU 7.x", "QEMU 7.2.2.2", "QEMU 999999.1"} {
		if v, ok := ParseVersion(s); ok {
			t.Errorf("ParseVersion(%q) = %v, want not a version", s, v)
		}
	}
}
