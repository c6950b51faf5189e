package domains

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-agent/ovs-agent/relocation"
)

// problemsSay fails unless ps are exactly one problem per want, in order,
// each of the field and saying the text given ("field: text").
func problemsSay(t *testing.T, ps []relocation.Problem, want ...string) {
	t.Helper()
	got := relocation.Strings(ps)
	if len(got) != len(want) {
		t.Fatalf("problems %q, want %d like %q", got, len(want), want)
	}
	for i, w := range want {
		field, text, _ := strings.Cut(w, ": ")
		if ps[i].Field != field || !strings.Contains(ps[i].Message, text) {
			t.Errorf("problem %q, want %q", got[i], w)
		}
	}
}

func TestCheckIncomingOfAQEMUOffer(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	cfg := osConfig("os", "/OVS/r/vmlinux")
	base := relocation.Offer{Name: "os", UUID: "6e2a1c3d-1b2c-4d5e-8f90-0123456789ab", MemoryMiB: 256, VCPUs: 2, Engine: "qemu", Config: cfg,
		EngineVersion: "QEMU 7.2.22", Machine: "pc-i440fx-7.2", Accel: "tcg"}
	if ps := e.m.CheckIncoming(base, base.MemoryMiB); len(ps) != 0 {
		t.Fatalf("a QEMU like ours: %q", relocation.Strings(ps))
	}
	// What an older peer sends (no facts) is fine too.
	old := base
	old.EngineVersion, old.Machine, old.Accel = "", "", ""
	if ps := e.m.CheckIncoming(old, old.MemoryMiB); len(ps) != 0 {
		t.Fatalf("an offer without QEMU facts: %q", relocation.Strings(ps))
	}
	cases := []struct {
		name string
		edit func(*relocation.Offer)
		want []string
	}{
		{"newer QEMU", func(o *relocation.Offer) { o.EngineVersion = "QEMU 8.1.0" }, []string{"qemu: this host has QEMU 7.2.22, which cannot load the state of a newer QEMU"}},
		{"version that is none", func(o *relocation.Offer) { o.EngineVersion = "qemu seven" }, []string{`qemu: the source's QEMU version "qemu seven" is not one`}},
		{"unknown machine", func(o *relocation.Offer) { o.Machine = "pc-i440fx-9.0" }, []string{"qemu: machine type pc-i440fx-9.0, which this host's QEMU does not know"}},
		{"other accel", func(o *relocation.Offer) { o.Accel = "kvm" }, []string{"accel: the domain runs with accel kvm; qemu domains here get tcg"}},
		{"engine the vm.cfg does not say", func(o *relocation.Offer) { o.Engine = "sim" }, []string{"engine: the domain ran on the sim engine, but its vm.cfg describes an operating system (kernel = /OVS/r/vmlinux), which runs on qemu"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			problemsSay(t, e.m.CheckIncoming(o, o.MemoryMiB), tc.want...)
		})
	}
	t.Run("no QEMU here", func(t *testing.T) {
		none := openQEMU(t, nil)
		ps := none.m.CheckIncoming(base, base.MemoryMiB)
		problemsSay(t, ps, "engine: this host cannot run it: this agent has no QEMU configured: apt-get install qemu-system-x86")
		if ps[0].Hard {
			t.Error("the engine problem is hard; it protects the domain, not the host")
		}
	})
	t.Run("accel kvm without hardware virtualization", func(t *testing.T) {
		kvm := openQEMU(t, q.host("kvm"))
		problemsSay(t, kvm.m.CheckIncoming(base, base.MemoryMiB), "engine: set [qemu] accel = auto or tcg", "accel: [qemu] accel = kvm, but this host has no usable hardware virtualization")
	})
}

func TestCheckFilesOfAQEMUOffer(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"), "xenbr0")
	k, disk := e.file(t, "vmlinux"), e.qcow2(t, "System.img")
	ok := osConfig("os", k, "disk = ['tap:qcow2:"+disk+",xvda,w']", "vif = ['bridge=xenbr0']")
	if ps := e.m.CheckFiles(ok); len(ps) != 0 {
		t.Fatalf("every file here: %q", relocation.Strings(ps))
	}
	outside := filepath.Join(t.TempDir(), "initrd")
	gone := filepath.Join(e.repo, "gone.img")
	bad := osConfig("os", k, "ramdisk = '"+outside+"'", "disk = ['file:"+gone+",xvda,w', 'file:local.img,xvdb,w']", "vif = ['bridge=br9']")
	ps := e.m.CheckFiles(bad)
	problemsSay(t, ps,
		"ramdisk: outside the repositories and [agent] file_dirs",
		"disk xvda (file:"+gone+",xvda,w): "+gone+" does not exist on this host",
		"disk xvdb (file:local.img,xvdb,w): local.img does not exist on this host",
		"vif 0: bridge br9 does not exist on this host")
	if !ps[0].Hard || ps[1].Hard || ps[3].Hard {
		t.Errorf("hard only for the path outside: %+v", ps)
	}
	// The workload guest's vm.cfg names no file the VMM opens.
	if ps := e.m.CheckFiles("name = 'w'\nmemory = 64\ndisk = ['file:/nowhere.img,xvda,w']\n"); len(ps) != 0 {
		t.Fatalf("workload: %q", relocation.Strings(ps))
	}
}

func TestOfferOfAnOSDomainCarriesItsKernelRamdiskAndQEMUFacts(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"))
	k, r, disk := e.file(t, "vmlinux"), e.file(t, "initrd"), e.file(t, "System.img")
	if err := os.WriteFile(k, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	uuid := mustCreate(t, e.m, osConfig("os", k, "ramdisk = '"+r+"'", "disk = ['file:"+disk+",xvda,w']"))
	o, err := e.m.Offer("os")
	if err != nil {
		t.Fatal(err)
	}
	if o.Engine != "qemu" || len(o.Disks) != 3 {
		t.Fatalf("offer engine %q disks %+v", o.Engine, o.Disks)
	}
	if d := o.Disks[1]; d.Device != OfferKernel || d.Path != k || !d.File || d.Size != 8192 || !IsBootFile(d) {
		t.Errorf("kernel offered as %+v", d)
	}
	if d := o.Disks[2]; d.Device != OfferRamdisk || d.Path != r || !IsBootFile(d) {
		t.Errorf("ramdisk offered as %+v", d)
	}
	if IsBootFile(o.Disks[0]) {
		t.Errorf("the disk is offered as a boot file: %+v", o.Disks[0])
	}
	if o.EngineVersion != "" {
		t.Errorf("a stopped domain's offer says QEMU %q", o.EngineVersion)
	}
	if err := e.m.Start("os"); err != nil {
		t.Fatal(err)
	}
	e.f.nextStart(t)
	p := e.f.proc(t, uuid)
	e.f.mu.Lock()
	p.facts.EngineVersion, p.facts.Machine, p.facts.Accel, p.facts.CPUModel = "QEMU 7.2.22", "pc-i440fx-7.2", "tcg", "qemu64"
	e.f.mu.Unlock()
	if o, err = e.m.Offer("os"); err != nil {
		t.Fatal(err)
	}
	if o.EngineVersion != "QEMU 7.2.22" || o.Machine != "pc-i440fx-7.2" || o.Accel != "tcg" || o.CPUModel != "qemu64" {
		t.Errorf("running domain's offer: version %q machine %q accel %q cpu %q", o.EngineVersion, o.Machine, o.Accel, o.CPUModel)
	}
}

func mustCreate(t *testing.T, m *Manager, text string) string {
	t.Helper()
	in, _, err := m.Create([]byte(text), "vm.cfg")
	if err != nil {
		t.Fatal(err)
	}
	return in.UUID
}

func TestTargetFactsOfAnOSDomain(t *testing.T) {
	q := newFakeQEMU(t)
	e := openQEMU(t, q.host("auto"), "xenbr0")
	k := e.file(t, "vmlinux")
	gone := filepath.Join(e.repo, "gone.img")
	tf := e.m.TargetFacts(osConfig("os", k, "disk = ['file:"+gone+",xvda,w']", "vif = ['bridge=xenbr0', 'bridge=br9']"))
	if tf == nil {
		t.Fatal("no facts for an OS domain")
	}
	if tf.QEMUVersion != "QEMU 7.2.22" || tf.QEMUProblem != "" || tf.Accel != "tcg" || !strings.Contains(tf.AccelReason, "the test's probe") || len(tf.Machines) != 4 {
		t.Errorf("QEMU facts %+v", tf)
	}
	files := []string{}
	for _, f := range tf.Files {
		files = append(files, fmt.Sprintf("%s=%s:%v", f.Name, f.Path, f.Present))
	}
	if got, want := strings.Join(files, " "), fmt.Sprintf("kernel=%s:true disk xvda=%s:false", k, gone); got != want {
		t.Errorf("files %s, want %s", got, want)
	}
	if len(tf.Bridges) != 2 || !tf.Bridges[0].Present || tf.Bridges[0].Path != "xenbr0" || tf.Bridges[1].Present || tf.Bridges[1].Path != "br9" {
		t.Errorf("bridges %+v", tf.Bridges)
	}
	if e.m.TargetFacts("name = 'w'\nmemory = 64\n") != nil {
		t.Error("facts for the workload guest")
	}
	none := openQEMU(t, nil)
	if tf := none.m.TargetFacts(osConfig("os", k)); tf == nil || !strings.Contains(tf.QEMUProblem, "apt-get install qemu-system-x86") {
		t.Errorf("facts of a host without QEMU: %+v", tf)
	}
}
