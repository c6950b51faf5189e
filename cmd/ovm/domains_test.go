package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/config/vmcfg"
)

// A vm.cfg on standard input longer than a vm.cfg may be is refused before
// anything is sent: never cut to the limit and registered half.
func TestCreateFromStdinRefusesOversized(t *testing.T) {
	g := &globals{url: "unix:///nonexistent/ovm-test.sock"}
	in := strings.NewReader("name = 'big'\n" + strings.Repeat("# padding\n", vmcfg.MaxFileSize/10+1))
	err := g.createFromFile(new(bytes.Buffer), in, "-")
	if !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized vm.cfg on stdin: %v, want a usage error saying it is too large", err)
	}
}

// ovm mem-set wants a whole number of MiB; anything else is a usage
// error before the agent is called.
func TestMemSetRefusesAMemoryThatIsNotMiB(t *testing.T) {
	for _, arg := range []string{"1G", "0", "2.5"} {
		var out, errOut bytes.Buffer
		code := run([]string{"--url", "unix:///nonexistent/ovm-test.sock", "mem-set", "vm1", arg}, strings.NewReader(""), &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), "give a whole number of MiB") {
			t.Errorf("mem-set vm1 %s: exit %d, %q; want a usage error", arg, code, errOut.String())
		}
	}
}

// The dry run of a qemu domain says what the target offers it: its QEMU
// and which files and bridges it has.
func TestPrintTargetSaysWhatTheTargetOffers(t *testing.T) {
	var out bytes.Buffer
	printTarget(&out, "host2", &dryRunTarget{QEMUVersion: "QEMU 7.2.22", Machines: []string{"pc", "q35"}, Accel: "tcg", AccelReason: "auto: no hardware virtualization",
		Files:   []dryRunPresence{{Name: "kernel", Path: "/OVS/r/vmlinux", Present: true}, {Name: "disk xvda", Path: "/OVS/r/System.img"}},
		Bridges: []dryRunPresence{{Name: "vif 0", Path: "xenbr0", Present: true}}})
	want := "target host2: QEMU 7.2.22, accel tcg (auto: no hardware virtualization), 2 machine types\n" +
		"  kernel /OVS/r/vmlinux: present\n  disk xvda /OVS/r/System.img: MISSING\n  vif 0 xenbr0: present\n"
	if out.String() != want {
		t.Errorf("printed\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	printTarget(&out, "host2", &dryRunTarget{QEMUProblem: "qemu-system-x86_64 is not installed: apt-get install qemu-system-x86, or set [qemu] binary"})
	if !strings.Contains(out.String(), "QEMU (version unknown), accel -") || !strings.Contains(out.String(), "qemu domains cannot start there: qemu-system-x86_64 is not installed") {
		t.Errorf("without QEMU: %q", out.String())
	}
	out.Reset()
	printTarget(&out, "host2", nil)
	if out.Len() != 0 {
		t.Errorf("printed %q for a workload domain", out.String())
	}
}
