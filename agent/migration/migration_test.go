package migration

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovs-agent/ovs-agent/agent/domains"
	"github.com/ovs-agent/ovs-agent/relocation"
	"github.com/ovs-agent/ovs-agent/repository"
	"github.com/ovs-agent/ovs-agent/vmm/control"
)

func TestAgentPhaseMoves(t *testing.T) {
	newMig := func(role control.Role, p control.Phase) *migration {
		return &migration{role: role, st: Status{Phase: p}}
	}
	// An operator's cancel turns a failure into a cancellation...
	m := newMig(control.SourceAgent, control.PhasePrecopy)
	m.cancelled = true
	if got := m.end(control.PhaseFailed, errors.New("stream closed")); got != control.PhaseCancelled {
		t.Errorf("cancelled migration that failed in precopy ends %s, want cancelled", got)
	}
	// ...but not after the commit: the table has no cancel there.
	m = newMig(control.SourceAgent, control.PhaseCommitting)
	m.cancelled = true
	if got := m.end(control.PhaseFailed, errors.New("lost")); got != control.PhaseFailed {
		t.Errorf("cancelled migration that failed committing ends %s, want failed", got)
	}
	// A finished migration stays finished, whatever comes later.
	m = newMig(control.SourceAgent, control.PhaseCompleted)
	if got := m.end(control.PhaseFailed, nil); got != control.PhaseCompleted {
		t.Errorf("completed migration moved to %s", got)
	}
	// The agent polls, so it may see the VMM skip phases...
	m = newMig(control.SourceAgent, control.PhaseConnecting)
	for _, p := range []control.Phase{control.PhaseStopCopy, control.PhaseVerified, control.PhaseInDoubt} {
		if err := m.move(p); err != nil {
			t.Errorf("source agent: %v", err)
		}
	}
	// ...never go back.
	if err := m.move(control.PhasePrecopy); err == nil || m.st.Phase != control.PhaseInDoubt {
		t.Errorf("in-doubt went back to precopy (%v), phase %s", err, m.st.Phase)
	}
	// An offline migration takes its steps in order.
	m = newMig(control.OfflineAgent, control.PhaseCopying)
	if err := m.move(control.PhaseCommitting); err == nil || m.st.Phase != control.PhaseCopying {
		t.Errorf("offline copy committed before it was verified (%v), phase %s", err, m.st.Phase)
	}
}

// run starts a live migration of domain vm1 against reg and tgt and
// returns its status once it ended.
func run(t *testing.T, reg *fakeRegistry, tgt *fakeTarget) Status {
	t.Helper()
	fast(t)
	t.Cleanup(tgt.close)
	l := &Local{Domains: reg, Dial: tgt.dial}
	id, err := l.Start("vm1", "host2", Options{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.find(id)
	if err != nil {
		t.Fatal(err)
	}
	<-m.done
	return m.status()
}

func TestRunCompletes(t *testing.T) {
	reg := &fakeRegistry{info: domains.Info{State: string(domains.Running)},
		phases: []control.Phase{control.PhaseSetup, control.PhasePrecopy, control.PhaseSent, control.PhaseCommitting, control.PhaseCompleted}}
	st := run(t, reg, &fakeTarget{})
	if st.Phase != control.PhaseCompleted || st.Error != "" || st.Streams != DefaultParallel {
		t.Fatalf("migration ended %s (%q) over %d streams; want completed over %d", st.Phase, st.Error, st.Streams, DefaultParallel)
	}
	if send := reg.called(control.OpMigrateSend); len(send) != 1 || !send[0].AutoCommit || !send[0].Live {
		t.Fatalf("the VMM was told to send %+v", send)
	}
}

// A qemu domain migrates over one connection whatever parallel asks, and
// the status says why.
func TestRunOfAQEMUDomainOpensOneStream(t *testing.T) {
	fast(t)
	reg := &fakeRegistry{info: domains.Info{State: string(domains.Running)}, engine: qemuEngine,
		phases: []control.Phase{control.PhaseSetup, control.PhaseSent, control.PhaseCommitting, control.PhaseCompleted}}
	tgt := &fakeTarget{}
	t.Cleanup(tgt.close)
	l := &Local{Domains: reg, Dial: tgt.dial}
	id, err := l.Start("vm1", "host2", Options{Live: true, Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	m, err := l.find(id)
	if err != nil {
		t.Fatal(err)
	}
	<-m.done
	st := m.status()
	if st.Phase != control.PhaseCompleted || st.Streams != 1 || !strings.Contains(st.StreamsReason, "not the 4 asked") {
		t.Fatalf("qemu migration ended %s over %d streams (%q); want completed over 1, saying why", st.Phase, st.Streams, st.StreamsReason)
	}
	tgt.mu.Lock()
	dialed := len(tgt.peers)
	tgt.mu.Unlock()
	if dialed != 1 {
		t.Fatalf("the target was dialed %d times for the receive, want 1", dialed)
	}
}

// The RAM check of a qemu domain's move (its time, the pages it mended)
// reaches the agent's status.
func TestRunReportsTheRAMCheck(t *testing.T) {
	reg := &fakeRegistry{info: domains.Info{State: string(domains.Running)}, engine: qemuEngine}
	phases := []control.Phase{control.PhasePrecopy, control.PhaseSent, control.PhaseCommitting, control.PhaseCompleted}
	reg.statusFn = func(n int) (*control.Response, error) {
		vs := &control.MigrationStatus{Phase: phases[min(n, len(phases))-1]}
		if vs.Phase != control.PhasePrecopy {
			vs.RAMCheck, vs.MendedPages = 42*time.Millisecond, 7
		}
		if vs.Phase == control.PhaseCompleted {
			reg.gone = true // statusFn runs under reg.mu
		}
		return &control.Response{Migration: vs}, nil
	}
	st := run(t, reg, &fakeTarget{})
	if st.Phase != control.PhaseCompleted || st.RAMCheckMs != 42 || st.MendedPages != 7 {
		t.Fatalf("migration ended %s with ram_check_ms %v, mended_pages %d; want completed, 42 and 7", st.Phase, st.RAMCheckMs, st.MendedPages)
	}
}

func TestRunVMMLost(t *testing.T) {
	lostAfter := func(phases ...control.Phase) func(n int) (*control.Response, error) {
		return func(n int) (*control.Response, error) {
			if n <= len(phases) {
				return &control.Response{Migration: &control.MigrationStatus{Phase: phases[n-1]}}, nil
			}
			return nil, errors.New("control socket: connection refused")
		}
	}
	for _, tc := range []struct {
		name   string
		phases []control.Phase
		target []string
		want   control.Phase
		err    string
	}{
		{"before the stop-and-copy", []control.Phase{control.PhasePrecopy}, []string{"running"}, control.PhaseFailed, "before its stop-and-copy"},
		{"committed, the target runs it", []control.Phase{control.PhaseSent}, []string{"-", "starting", "running"}, control.PhaseCompleted, ""},
		{"not committed, the target lacks it", []control.Phase{control.PhaseStopCopy}, []string{""}, control.PhaseFailed, "the target does not run the domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &fakeRegistry{info: domains.Info{State: string(domains.Running)}, statusFn: lostAfter(tc.phases...)}
			tgt := &fakeTarget{states: tc.target}
			if tc.want == control.PhaseCompleted {
				// Its VMM ended; the registry forgets the domain after that.
				reg.info.State, reg.goneAt = string(domains.Stopped), 2
			}
			st := run(t, reg, tgt)
			if st.Phase != tc.want || !strings.Contains(st.Error, tc.err) {
				t.Fatalf("ended %s (%q); want %s (%q)", st.Phase, st.Error, tc.want, tc.err)
			}
		})
	}
}

func TestResolveInDoubt(t *testing.T) {
	fast(t)
	resolved := make(chan control.Request, 1)
	reg := &fakeRegistry{info: domains.Info{UUID: "u1"}, inDoubt: map[string]string{"vm1": "host2:8002"}}
	reg.statusFn = func(n int) (*control.Response, error) {
		for _, c := range reg.calls {
			if c.Op == control.OpMigrateResolve {
				resolved <- c
				return &control.Response{Migration: &control.MigrationStatus{Phase: control.PhaseFailed}}, nil
			}
		}
		return &control.Response{Migration: &control.MigrationStatus{Phase: control.PhaseInDoubt}}, nil
	}
	// The target cannot tell at first (down, then the domain starting),
	// then says it runs the guest.
	tgt := &fakeTarget{states: []string{"-", "starting", "running"}}
	l := &Local{Domains: reg, Dial: tgt.dial}
	l.ResolveInDoubt(context.Background())
	if r := <-resolved; !r.OnTarget {
		t.Fatalf("resolved with %+v; the target runs the guest", r)
	}
	if tgt.asked != 3 {
		t.Fatalf("the target was asked %d times, want 3", tgt.asked)
	}
}

func TestSettleLostEndsWithTheAgent(t *testing.T) {
	saved := askEvery
	askEvery = 24 * 3600e9 // a retry that ignored ctx would hang the test
	t.Cleanup(func() { askEvery = saved })
	l := &Local{Domains: &fakeRegistry{}, Dial: (&fakeTarget{states: []string{"-"}}).dial}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.settleLost(ctx, relocation.Offer{}, "host2:8002", Options{}); !errors.Is(err, errStopping) {
		t.Fatalf("settleLost after the agent stopped: %v", err)
	}
}

// TestCheckOfflineProblems: the target's check of an offline migration
// says which problems --force may skip, and sends them structured and as
// the strings older peers read.
func TestCheckOfflineProblems(t *testing.T) {
	reg := &fakeRegistry{incoming: []relocation.Problem{
		{Field: "memory", Message: "the domain needs 64 MiB, 0 MiB are free for domains here"},
		{Field: "name", Hard: true, Message: "a domain named vm1 exists here already (stopped)"},
	}}
	l := &Local{Domains: reg, Protocol: 2, Repos: fakeRepos{}}
	h := &relocation.Hello{Protocol: 1, Offer: relocation.Offer{Name: "vm1", UUID: "4c1a0a4e-2b61-4d8b-9d8c-2f0e7c3a1b55",
		Config: "name = 'vm1'\nmemory = 64\n", Disks: []relocation.Disk{{Path: "/data/vm1.img", Device: "xvda", File: true, Data: 1 << 20}}},
		Offline: &relocation.OfflineRequest{}}
	_, chk := l.checkOffline(h)
	want := []string{
		"name: a domain named vm1 exists here already (stopped)",
		"repository: this host has no repository mounted to hold the disks (add one, or share the domain's)",
		"version: the sending agent speaks protocol 1 (version ), this agent 2 (version )",
		"memory: the domain needs 64 MiB, 0 MiB are free for domains here",
	}
	if got := relocation.Strings(chk.Ordered()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if skipped := chk.Skip(); len(skipped) != 2 || len(chk.Problems()) != 2 || !chk.HasHard() {
		t.Fatalf("--force skipped %v and kept %v", skipped, chk.Problems())
	}

	a, b := net.Pipe()
	defer b.Close()
	go l.AnswerCheck(a, h)
	w := readWelcome(t, b)
	if w.OK || len(w.Problems) != 4 || len(w.ProblemDetails) != 4 || w.Problems[0] != want[0] || !w.ProblemDetails[0].Hard || w.ProblemDetails[3].Hard {
		t.Fatalf("check answered %+v", w)
	}
}

func TestCheckIncomingDisks(t *testing.T) {
	l := &Local{Domains: &fakeRegistry{}, Repos: fakeRepos{{UUID: "r1", MountPoint: "/OVS/r1", State: repository.StateMounted}}}
	h := &relocation.Hello{Offer: relocation.Offer{Name: "vm1", Config: "name = 'vm1'\nmemory = 64\n", Disks: []relocation.Disk{
		{Path: "/OVS/r1/a.img", Repository: "r1"}, {Path: "/OVS/r2/b.img", Repository: "r2"}, {Path: "/tmp/c.img"},
	}}}
	got := relocation.Strings(l.checkIncoming(h))
	want := []string{"disk /OVS/r2/b.img: repository r2 is not mounted on this host", "disk /tmp/c.img: not on a repository, so this host cannot reach it"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems %q, want %q", got, want)
	}
}

// A live migration registers the offer's vm.cfg as it is: one that does
// not parse is refused, and what the registry finds missing of the files
// and bridges it names is listed.
func TestCheckIncomingConfigAndFiles(t *testing.T) {
	reg := &fakeRegistry{files: []relocation.Problem{{Field: "kernel", Message: "/OVS/r1/vmlinuz does not exist on this host"}}}
	l := &Local{Domains: reg}
	h := &relocation.Hello{Offer: relocation.Offer{Name: "vm1", Config: "name = 'vm1'\nmemory = 64\nkernel = '/OVS/r1/vmlinuz'\n"}}
	if got := relocation.Strings(l.checkIncoming(h)); len(got) != 1 || got[0] != "kernel: /OVS/r1/vmlinuz does not exist on this host" {
		t.Fatalf("problems %q, want the registry's", got)
	}
	h.Offer.Config = "name = 'vm1'\nmemory = 'x'\n"
	ps := l.checkIncoming(h)
	if len(ps) != 1 || ps[0].Field != "config" || !ps[0].Hard {
		t.Fatalf("problems %+v, want the vm.cfg refused (hard)", ps)
	}
}

// An offline migration copies an operating system's kernel and ramdisk
// with its disks, but leaves them here as they are: other domains may
// boot the same files. A path confine resolved through a symlink is the
// kernel all the same.
func TestMovedAwayKeepsBootFiles(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "vmlinux-6.1")
	if err := os.WriteFile(real, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "vmlinux")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	offer := relocation.Offer{Disks: []relocation.Disk{
		{Path: "/OVS/r/os/System.img", Device: "xvda", File: true},
		{Path: link, Device: domains.OfferKernel, File: true},
		{Path: "/OVS/r/os/initrd", Device: domains.OfferRamdisk, File: true},
	}}
	files := []relocation.OfflineFile{{Path: "/OVS/r/os/System.img"}, {Path: real}, {Path: "/OVS/r/os/initrd"}}
	if got := movedAway(offer, files); len(got) != 1 || got[0] != "/OVS/r/os/System.img" {
		t.Fatalf("moved away %q, want the disk only", got)
	}
}

// The dry run reports what the target says it offers a qemu domain: the
// target's answer carries its registry's facts, and Check hands them on.
func TestCheckReportsTheTargetsQEMUFacts(t *testing.T) {
	facts := &relocation.TargetFacts{QEMUVersion: "QEMU 7.2.22", Machines: []string{"pc", "pc-i440fx-7.2"}, Accel: "tcg",
		Files:   []relocation.Presence{{Name: "kernel", Path: "/OVS/r1/vmlinux", Present: true}},
		Bridges: []relocation.Presence{{Name: "vif 0", Path: "xenbr0", Present: false}}}
	tgt := &Local{Domains: &fakeRegistry{facts: facts}}
	h := &relocation.Hello{Offer: relocation.Offer{Name: "os", Config: "name = 'os'\nmemory = 64\nkernel = '/OVS/r1/vmlinux'\n"}}
	a, b := net.Pipe()
	defer b.Close()
	go tgt.AnswerCheck(a, h)
	w := readWelcome(t, b)
	if w.Target == nil || w.Target.QEMUVersion != "QEMU 7.2.22" || len(w.Target.Files) != 1 || w.Target.Bridges[0].Present {
		t.Fatalf("the target answered %+v", w.Target)
	}

	reg := &fakeRegistry{info: domains.Info{Name: "os", State: string(domains.Running)}}
	dial := func(_ context.Context, _ relocation.DialOptions, h *relocation.Hello) (net.Conn, *relocation.Welcome, error) {
		if h.Op != relocation.OpCheck {
			return nil, &relocation.Welcome{Error: "unexpected " + h.Op}, nil
		}
		return nil, &relocation.Welcome{OK: true, Target: facts}, nil
	}
	src := &Local{Domains: reg, Dial: dial}
	rep, err := src.Check(context.Background(), "os", "127.0.0.2", Options{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 || rep.Target != facts {
		t.Fatalf("report %+v", rep)
	}
}
